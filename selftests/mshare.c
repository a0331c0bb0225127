// SPDX-License-Identifier: GPL-2.0
/*
 * mshare - msharefs regions: processes that map a region use one set of
 * page tables for it (Documentation/mshare-design.md).
 *
 *  - iface: mshare_info, the size rules, the errors of
 *    MSHAREFS_CREATE_MAPPING and of mmap();
 *  - share: a write by one process is seen by all, a second process
 *    takes one fault per GiB instead of one per page and adds no PTE
 *    tables (PageTables in /proc/meminfo), fork gives the child the same
 *    region in every cow_pte mode (plain, CLONE_COW_PTE);
 *  - refuse: what would change tables every process uses fails with
 *    EINVAL (partial munmap, mprotect, mremap, madvise), a read-only
 *    attach cannot write, MSHAREFS_UNMAP takes the memory from everyone;
 *  - life: the creator exiting first, a process that only keeps the fd,
 *    two regions, a file-backed object, unlink, detach;
 *  - mm: migration (move_pages()) of region pages, read back through
 *    another process; no "Bad rss-counter" at any teardown.  (To come:
 *    reclaim through memory.reclaim of the creator's memcg, which the
 *    region is charged to, once the cgroup helpers of cow_pte_reclaim.c
 *    are shared.)
 *
 * Needs root (mount, cgroups, kpageflags).
 */
#define _GNU_SOURCE
#include <linux/msharefs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "kselftest_harness.h"
#include "cow_pte_util.h"

#define MSHARE_DIR	"/sys/fs/mshare"
#define MSHARE_MAGIC	0x4d534852
#define GiB		(1UL << 30)
#define OBJ		(16UL << 20)	/* the object most tests map */

/* msharefs at MSHARE_DIR, mounted if need be; 0 or -errno. */
static int mshare_mount(void)
{
	struct statfs sf;

	if (!statfs(MSHARE_DIR, &sf) && sf.f_type == MSHARE_MAGIC)
		return 0;
	if (mount("none", MSHARE_DIR, "msharefs", 0, NULL))
		return -errno;
	return 0;
}

static long mshare_align(void)
{
	char buf[32];

	if (read_text(MSHARE_DIR "/mshare_info", buf, sizeof(buf)) < 0)
		return -1;
	return strtol(buf, NULL, 10);
}

/* A new region file (O_RDWR) named after the test; -1 on error. */
static int region_new(char *path, size_t len, mode_t mode)
{
	static int seq;

	snprintf(path, len, MSHARE_DIR "/t-%d-%d", getpid(), seq++);
	return open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
}

static int map_object(int fd, uint64_t off, uint64_t size, int obj_fd,
		      uint32_t prot)
{
	struct mshare_create mc = {
		.region_offset = off,
		.size = size,
		.prot = prot,
		.flags = MAP_SHARED | MAP_FIXED |
			 (obj_fd < 0 ? MAP_ANONYMOUS : 0),
		.fd = obj_fd,
	};

	return ioctl(fd, MSHAREFS_CREATE_MAPPING, &mc) ? -errno : 0;
}

static char *attach(int fd, size_t len, int prot)
{
	char *p = mmap(NULL, len, prot, MAP_SHARED, fd, 0);

	return p == MAP_FAILED ? NULL : p;
}

static long minflt(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

/* Does touching @p fault (SIGSEGV or SIGBUS)? */
static bool faults(volatile char *p, bool write)
{
	if (sigsetjmp(fault_jmp, 1))
		return true;
	fault_armed = 1;
	if (write)
		*p = 1;
	else
		(void)*p;
	fault_armed = 0;
	return false;
}

/* ---------------------------------------------------------------- fixture */

FIXTURE(region) {
	char path[128];
	int fd;
	long align;
	char *p;		/* the creator's attach of the whole region */
};

FIXTURE_SETUP(region)
{
	int ret = mshare_mount();

	self->fd = -1;
	if (ret)
		SKIP(return, "cannot mount msharefs: %s", strerror(-ret));
	self->align = mshare_align();
	ASSERT_LT(0, self->align);
	self->fd = region_new(self->path, sizeof(self->path), 0600);
	ASSERT_LE(0, self->fd);
	catch_faults();
}

FIXTURE_TEARDOWN(region)
{
	if (self->p)
		munmap(self->p, self->align);
	if (self->fd >= 0) {
		close(self->fd);
		unlink(self->path);
	}
}

/* The region sized to one unit, an anonymous object at its start, attached. */
static void region_ready(struct __test_metadata *_metadata,
			 FIXTURE_DATA(region) *self)
{
	ASSERT_EQ(0, ftruncate(self->fd, self->align));
	ASSERT_EQ(0, map_object(self->fd, 0, OBJ, -1, PROT_READ | PROT_WRITE));
	self->p = attach(self->fd, self->align, PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, self->p);
}

/* ------------------------------------------------------------------ iface */

TEST_F(region, info_is_one_pud)
{
	char buf[32];

	ASSERT_LT(0, read_text(MSHARE_DIR "/mshare_info", buf, sizeof(buf)));
	EXPECT_STREQ("1073741824\n", buf);
	EXPECT_EQ(-1, unlink(MSHARE_DIR "/mshare_info"));
	EXPECT_EQ(EPERM, errno);
}

TEST_F(region, size_once_in_units)
{
	EXPECT_EQ(-EINVAL, map_object(self->fd, 0, OBJ, -1, PROT_READ));
	EXPECT_EQ(NULL, attach(self->fd, self->align, PROT_READ));
	EXPECT_EQ(-1, ftruncate(self->fd, self->align / 2));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ftruncate(self->fd, 0));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(EOPNOTSUPP, fallocate(self->fd, FALLOC_FL_KEEP_SIZE, 0, self->align) ? errno : 0);
	EXPECT_EQ(0, ftruncate(self->fd, self->align));
	EXPECT_EQ(-1, ftruncate(self->fd, 2 * self->align));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(region, create_mapping_errors)
{
	struct mshare_create mc = {
		.size = OBJ, .prot = PROT_READ, .flags = MAP_SHARED | MAP_FIXED | MAP_ANONYMOUS,
	};
	int ro, memfd;

	ASSERT_EQ(0, ftruncate(self->fd, self->align));
	EXPECT_EQ(-EINVAL, map_object(self->fd, 100, OBJ, -1, PROT_READ));
	EXPECT_EQ(-EINVAL, map_object(self->fd, 0, 0, -1, PROT_READ));
	EXPECT_EQ(-EINVAL, map_object(self->fd, self->align - OBJ / 2, OBJ, -1, PROT_READ));
	EXPECT_EQ(-EINVAL, map_object(self->fd, self->align, OBJ, -1, PROT_READ));
	mc.flags = MAP_SHARED | MAP_ANONYMOUS;
	EXPECT_EQ(-1, ioctl(self->fd, MSHAREFS_CREATE_MAPPING, &mc));
	EXPECT_EQ(EINVAL, errno);
	mc.flags = MAP_SHARED | MAP_FIXED | MAP_ANONYMOUS | MAP_POPULATE;
	EXPECT_EQ(-1, ioctl(self->fd, MSHAREFS_CREATE_MAPPING, &mc));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-EBADF, map_object(self->fd, 0, OBJ, 12345, PROT_READ));
	EXPECT_EQ(-EINVAL, map_object(self->fd, 0, OBJ, self->fd, PROT_READ));
	EXPECT_EQ(0, map_object(self->fd, 0, OBJ, -1, PROT_READ));
	/* a second object over the first */
	EXPECT_EQ(-EEXIST, map_object(self->fd, OBJ / 2, OBJ, -1, PROT_READ));
	/* a file opened read-only cannot back a writable object */
	memfd = memfd_create("mshare-obj", MFD_CLOEXEC);
	ASSERT_LE(0, memfd);
	ASSERT_EQ(0, ftruncate(memfd, OBJ));
	ro = open(self->path, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, ro);
	/* only a writer of the region adds objects */
	EXPECT_EQ(-EBADF, map_object(ro, OBJ, OBJ, memfd, PROT_READ));
	close(ro);
	EXPECT_EQ(0, map_object(self->fd, OBJ, OBJ, memfd, PROT_READ | PROT_WRITE));
	close(memfd);
}

TEST_F(region, mmap_errors)
{
	int ro;

	ASSERT_EQ(0, ftruncate(self->fd, self->align));
	EXPECT_EQ(MAP_FAILED, mmap(NULL, self->align, PROT_READ, MAP_PRIVATE, self->fd, 0));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(MAP_FAILED, mmap(NULL, self->align / 2, PROT_READ, MAP_SHARED, self->fd, 0));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(MAP_FAILED, mmap(NULL, self->align, PROT_READ, MAP_SHARED, self->fd, PG));
	EXPECT_EQ(MAP_FAILED, mmap((void *)(self->align * 3 + PG), self->align, PROT_READ,
				   MAP_SHARED | MAP_FIXED_NOREPLACE, self->fd, 0));
	ro = open(self->path, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, ro);
	EXPECT_EQ(MAP_FAILED, mmap(NULL, self->align, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0));
	EXPECT_EQ(EACCES, errno);
	close(ro);
}

/* ------------------------------------------------------------------ share */

/*
 * A second process (a plain fork, and one with CLONE_COW_PTE, which must
 * not change the region) sees the creator's writes and writes back; it
 * maps the region itself too, at another address.
 */
static int child_sees(void *arg)
{
	FIXTURE_DATA(region) *self = arg;
	char *q;

	if (pattern_check(self->p, self->p, OBJ, 1) >= 0)
		return 1;
	pattern_fill(self->p, self->p, OBJ / 2, 2);	/* through the inherited VMA */
	q = attach(self->fd, self->align, PROT_READ | PROT_WRITE);
	if (!q)
		return 2;
	pattern_fill(q, q + OBJ / 2, OBJ / 2, 2);	/* through its own */
	return 0;
}

TEST_F(region, writes_seen_by_all)
{
	long shared;
	pid_t pid;

	region_ready(_metadata, self);
	for (int cow = 0; cow < 2; cow++) {
		pattern_fill(self->p, self->p, OBJ, 1);
		shared = 0;
		if (cow)
			pid = cow_child(child_sees, self, &shared);
		else if ((pid = fork()) == 0)
			_exit(child_sees(self));
		ASSERT_LT(0, pid);
		EXPECT_EQ(0, shared);	/* the region is never copy-on-write */
		ASSERT_EQ(0, wait_code(pid)) TH_LOG("%s fork", cow ? "CoW" : "plain");
		EXPECT_EQ(-1, pattern_check(self->p, self->p, OBJ, 2));
	}
}

/*
 * The creator touches every page; a second attach reads them all with
 * about one fault per GiB, and PageTables hardly grows.
 */
TEST_F(region, one_set_of_tables)
{
	long before_pt, faults_before;
	char *q;

	region_ready(_metadata, self);
	pattern_fill(self->p, self->p, OBJ, 1);
	before_pt = file_kb("/proc/meminfo", "PageTables");
	faults_before = minflt();
	q = attach(self->fd, self->align, PROT_READ);
	ASSERT_NE(NULL, q);
	EXPECT_EQ(-1, pattern_check(q, q, OBJ, 1));
	EXPECT_GT(8, minflt() - faults_before);
	EXPECT_GT(64, file_kb("/proc/meminfo", "PageTables") - before_pt);
	munmap(q, self->align);
}

/* ----------------------------------------------------------------- refuse */

TEST_F(region, changes_refused)
{
	char *to;

	region_ready(_metadata, self);
	EXPECT_EQ(-1, munmap(self->p, OBJ));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, mprotect(self->p, self->align, PROT_READ));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, madvise(self->p, OBJ, MADV_DONTNEED));
	EXPECT_EQ(EINVAL, errno);
	to = mmap(NULL, 2 * self->align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(MAP_FAILED, to);
	EXPECT_EQ(MAP_FAILED, mremap(self->p, self->align, self->align,
				     MREMAP_MAYMOVE | MREMAP_FIXED, to));
	EXPECT_EQ(EINVAL, errno);
	munmap(to, 2 * self->align);
	/* and the region is still there for everyone */
	pattern_fill(self->p, self->p, OBJ, 3);
	EXPECT_EQ(-1, pattern_check(self->p, self->p, OBJ, 3));
}

TEST_F(region, read_only_attach)
{
	char *q;

	region_ready(_metadata, self);
	self->p[0] = 7;
	q = attach(self->fd, self->align, PROT_READ);
	ASSERT_NE(NULL, q);
	EXPECT_EQ(7, q[0]);
	EXPECT_TRUE(faults(q, true));
	EXPECT_EQ(7, self->p[0]);
	munmap(q, self->align);
}

TEST_F(region, unmap_for_everyone)
{
	struct mshare_unmap mu = { .region_offset = 0, .size = OBJ };
	pid_t pid;

	region_ready(_metadata, self);
	self->p[0] = 1;
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		usleep(300 * 1000);	/* after the unmap below */
		_exit(faults(self->p, false) ? 0 : 1);
	}
	ASSERT_EQ(0, ioctl(self->fd, MSHAREFS_UNMAP, &mu));
	EXPECT_TRUE(faults(self->p, false));
	EXPECT_EQ(0, wait_code(pid));
	/* a new object there is a new one, zero-filled */
	EXPECT_EQ(0, map_object(self->fd, 0, OBJ, -1, PROT_READ | PROT_WRITE));
	EXPECT_EQ(0, self->p[0]);
}

/* ------------------------------------------------------------------- life */

TEST_F(region, creator_exits_first)
{
	char path[128];
	int ready[2];
	pid_t creator;
	int fd;

	ASSERT_EQ(0, pipe(ready));
	creator = fork();
	ASSERT_LE(0, creator);
	if (creator == 0) {
		char *p;

		fd = region_new(path, sizeof(path), 0600);
		if (fd < 0 || ftruncate(fd, self->align) ||
		    map_object(fd, 0, OBJ, -1, PROT_READ | PROT_WRITE))
			_exit(1);
		p = attach(fd, self->align, PROT_READ | PROT_WRITE);
		if (!p)
			_exit(2);
		pattern_fill(p, p, OBJ, 5);
		if (write(ready[1], path, sizeof(path)) != sizeof(path))
			_exit(3);
		_exit(0);
	}
	ASSERT_EQ(sizeof(path), read(ready[0], path, sizeof(path)));
	ASSERT_EQ(0, wait_code(creator));
	fd = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, unlink(path));		/* lives on through fd */
	self->p = attach(fd, self->align, PROT_READ);
	ASSERT_NE(NULL, self->p);
	EXPECT_EQ(-1, pattern_check(self->p, self->p, OBJ, 5));
	close(fd);				/* and through the mapping */
	EXPECT_EQ(-1, pattern_check(self->p, self->p, OBJ, 5));
}

TEST_F(region, fd_only_holder)
{
	region_ready(_metadata, self);
	pattern_fill(self->p, self->p, OBJ, 6);
	ASSERT_EQ(0, munmap(self->p, self->align));
	self->p = NULL;
	/* no mapping left, only the fd: the memory stays */
	self->p = attach(self->fd, self->align, PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, self->p);
	EXPECT_EQ(-1, pattern_check(self->p, self->p, OBJ, 6));
	ASSERT_EQ(0, munmap(self->p, self->align));
	EXPECT_TRUE(faults(self->p, false));		/* detached */
	self->p = NULL;
}

TEST_F(region, two_regions_and_a_file)
{
	char path2[128];
	int fd2, memfd;
	char *q;

	region_ready(_metadata, self);
	fd2 = region_new(path2, sizeof(path2), 0600);
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, ftruncate(fd2, self->align));
	memfd = memfd_create("mshare-file", MFD_CLOEXEC);
	ASSERT_LE(0, memfd);
	ASSERT_EQ(0, ftruncate(memfd, OBJ));
	ASSERT_EQ(0, map_object(fd2, OBJ, OBJ, memfd, PROT_READ | PROT_WRITE));
	q = attach(fd2, self->align, PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, q);
	memset(self->p, 'a', PG);
	memset(q + OBJ, 'b', PG);
	EXPECT_EQ('a', self->p[PG - 1]);
	EXPECT_EQ('b', q[OBJ + PG - 1]);
	EXPECT_TRUE(faults(q, false));		/* nothing at offset 0 there */
	/* the file sees the writes made through the region */
	ASSERT_EQ(1, pread(memfd, path2, 1, 10));
	EXPECT_EQ('b', path2[0]);
	munmap(q, self->align);
	close(memfd);
	close(fd2);
	unlink(path2);
}

TEST_F(region, other_user_cannot_open)
{
	pid_t pid;

	region_ready(_metadata, self);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		if (setgid(65534) || setuid(65534))
			_exit(2);
		_exit(open(self->path, O_RDONLY) < 0 && errno == EACCES ? 0 : 1);
	}
	EXPECT_EQ(0, wait_code(pid));
}

/* --------------------------------------------------------------------- mm */

TEST_F(region, migrate_and_read_back)
{
	long n = OBJ / PG;
	void **pages = calloc(n, sizeof(*pages));
	int *nodes = calloc(n, sizeof(int)), *status = calloc(n, sizeof(int));
	char *q;

	if (access("/sys/devices/system/node/node1", F_OK))
		SKIP(return, "one NUMA node");
	region_ready(_metadata, self);
	pattern_fill(self->p, self->p, OBJ, 8);
	for (long i = 0; i < n; i++) {
		pages[i] = self->p + i * PG;
		nodes[i] = 1;
	}
	ASSERT_LE(0, syscall(__NR_move_pages, 0, n, pages, nodes, status, MPOL_MF_MOVE_ALL));
	ASSERT_EQ(0, syscall(__NR_move_pages, 0, n, pages, NULL, status, 0));
	for (long i = 0; i < n; i++)
		if (status[i] != 1) {
			EXPECT_EQ(1, status[i]) TH_LOG("page %ld", i);
			break;
		}
	q = attach(self->fd, self->align, PROT_READ);
	ASSERT_NE(NULL, q);
	EXPECT_EQ(-1, pattern_check(q, q, OBJ, 8));
	munmap(q, self->align);
	free(pages);
	free(nodes);
	free(status);
}

TEST_F(region, no_bad_rss_counter)
{
	int before = bad_rss_reports();
	pid_t pid;

	region_ready(_metadata, self);
	pattern_fill(self->p, self->p, OBJ, 9);
	for (int i = 0; i < 4; i++) {
		pid = fork();
		ASSERT_LE(0, pid);
		if (pid == 0) {
			char *q = attach(self->fd, self->align, PROT_READ);

			_exit(!q || pattern_check(q, q, OBJ, 9) >= 0);
		}
		EXPECT_EQ(0, wait_code(pid));
	}
	munmap(self->p, self->align);
	self->p = NULL;
	close(self->fd);
	self->fd = -1;
	unlink(self->path);
	usleep(200 * 1000);
	EXPECT_EQ(before, bad_rss_reports());
}

TEST_HARNESS_MAIN
