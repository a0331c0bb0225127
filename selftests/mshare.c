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
 *    region in every cow_pte mode (off, opt-in, always; plain and
 *    CLONE_COW_PTE), smaps and GUP's
 *    slow path walk the linked tables;
 *  - refuse: what would change tables every process uses fails with
 *    EINVAL (partial munmap, mprotect, mremap, madvise), a read-only
 *    attach cannot write, MSHAREFS_UNMAP takes the memory from everyone;
 *  - life: the creator exiting first, a process that only keeps the fd,
 *    two regions, a file-backed object, unlink, detach;
 *  - objects: do_mmap()'s checks hold for an object (seals, append-only,
 *    secretmem), long-term writable pins follow the object's rules; an
 *    mm with a secondary MMU (mmu notifier) and a region exclude each
 *    other;
 *  - mm: migration (move_pages()) of region pages and reclaim to swap
 *    (memory.reclaim of the creator's memcg), read back through another
 *    process; pages and page tables charged to the creator's memcg,
 *    whoever faults them; a process killed while it writes; no "Bad
 *    rss-counter" at any teardown.
 *
 * Needs root (mount, cgroups, chattr, mkfs).
 */
#define _GNU_SOURCE
#include <linux/fs.h>
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

/* -errno of a plain MAP_SHARED mmap() of @fd, 0 if it maps. */
static int plain_mmap_error(int fd, int prot)
{
	void *p = mmap(NULL, OBJ, prot, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	munmap(p, OBJ);
	return 0;
}

/* A memfd of OBJ bytes, sealable; -1 on error. */
static int obj_memfd(void)
{
	int fd = memfd_create("mshare-obj", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd >= 0 && ftruncate(fd, OBJ)) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * An object passes the checks mmap() would make of it, with mmap()'s
 * errors: seals, append-only files; and no secretmem (not in the direct
 * map, so never reachable through another mm).
 */
TEST_F(region, object_checks)
{
	int flags = FS_APPEND_FL, memfd, sec;

	ASSERT_EQ(0, ftruncate(self->fd, self->align));

	memfd = obj_memfd();
	ASSERT_LE(0, memfd);
	ASSERT_EQ(0, fcntl(memfd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE));
	EXPECT_EQ(-EPERM, plain_mmap_error(memfd, PROT_READ | PROT_WRITE));
	EXPECT_EQ(-EPERM, map_object(self->fd, 0, OBJ, memfd, PROT_READ | PROT_WRITE));
	EXPECT_EQ(0, map_object(self->fd, 0, OBJ, memfd, PROT_READ));
	close(memfd);

	memfd = obj_memfd();
	ASSERT_LE(0, memfd);
	ASSERT_EQ(0, fcntl(memfd, F_ADD_SEALS, F_SEAL_WRITE));
	EXPECT_EQ(-EPERM, plain_mmap_error(memfd, PROT_READ | PROT_WRITE));
	EXPECT_EQ(-EPERM, map_object(self->fd, OBJ, OBJ, memfd, PROT_READ | PROT_WRITE));
	close(memfd);

	memfd = obj_memfd();
	ASSERT_LE(0, memfd);
	ASSERT_EQ(0, ioctl(memfd, FS_IOC_SETFLAGS, &flags)) TH_LOG("chattr +a: %s", strerror(errno));
	EXPECT_EQ(-EACCES, plain_mmap_error(memfd, PROT_READ));
	EXPECT_EQ(-EACCES, map_object(self->fd, OBJ, OBJ, memfd, PROT_READ));
	close(memfd);

	sec = syscall(__NR_memfd_secret, 0);
	if (sec < 0) {
		TH_LOG("memfd_secret: %s: not checked", strerror(errno));
	} else {
		ASSERT_EQ(0, ftruncate(sec, OBJ));
		EXPECT_EQ(0, plain_mmap_error(sec, PROT_READ | PROT_WRITE));
		EXPECT_EQ(-EINVAL, map_object(self->fd, OBJ, OBJ, sec, PROT_READ | PROT_WRITE));
		close(sec);
	}
	/* nothing of the refused ones got in */
	EXPECT_EQ(0, map_object(self->fd, OBJ, OBJ, -1, PROT_READ));
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

/*
 * A secondary MMU (here lib/test_hmm's device mirror, as a GPU or KVM
 * would be) hears of PTE changes through its own mm's notifiers, never
 * of the host mm's: an mm has one or the other, whichever came first.
 */
TEST_F(region, secondary_mmu_refused)
{
	const char *dev = "/dev/hmm_dmirror0";
	pid_t pid;

	if (access(dev, F_OK))
		SKIP(return, "no %s (CONFIG_TEST_HMM)", dev);
	region_ready(_metadata, self);
	/* this process maps the region: no mirror */
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd = open(dev, O_RDWR | O_CLOEXEC);

		_exit(fd < 0 && errno == EBUSY ? 0 : 1);
	}
	EXPECT_EQ(0, wait_code(pid)) TH_LOG("a mirror of an mm that maps a region");
	/* a process with a mirror: no region */
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd;

		munmap(self->p, self->align);
		fd = open(dev, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			_exit(2);
		_exit(!attach(self->fd, self->align, PROT_READ) && errno == EBUSY ? 0 : 1);
	}
	EXPECT_EQ(0, wait_code(pid)) TH_LOG("a region in an mm with a mirror (2: open failed)");
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

/*
 * A write by one process is seen by the other, both ways.  In every
 * cow_pte mode a plain fork (and a CLONE_COW_PTE one where the mode allows
 * it) gives the child the same region, never a copy-on-write share of it:
 * in mode always a plain fork shares private tables, never the region's.
 */
TEST_F(region, writes_seen_by_all)
{
	static const char *const modes[] = { "off", "opt-in", "always" };
	char orig[32];
	long shared;
	pid_t pid;

	if (cow_mode_get(orig, sizeof(orig)))
		SKIP(return, "no cow_pte_mode");
	region_ready(_metadata, self);
	for (int m = 0; m < 3; m++) {
		ASSERT_EQ(0, cow_mode_set(modes[m]));
		for (int cow = 0; cow < (m ? 2 : 1); cow++) {
			pattern_fill(self->p, self->p, OBJ, 1);
			shared = 0;
			if (cow)
				pid = cow_child(child_sees, self, &shared);
			else if ((pid = fork()) == 0)
				_exit(child_sees(self));
			EXPECT_LT(0, pid);
			if (pid <= 0)
				break;
			EXPECT_EQ(0, shared);
			EXPECT_EQ(0, wait_code(pid)) TH_LOG("mode %s, %s fork", modes[m],
							    cow ? "CoW" : "plain");
			EXPECT_EQ(-1, pattern_check(self->p, self->p, OBJ, 2));
		}
	}
	EXPECT_EQ(0, cow_mode_set(orig));
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

/* The Rss of the mapping at @p in /proc/self/smaps, in kB, or -1. */
static long smaps_rss(const void *p)
{
	char line[256], start[32];
	bool in = false;
	long kb = -1;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	snprintf(start, sizeof(start), "%lx-", (unsigned long)p);
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, start, strlen(start)))
			in = true;
		else if (in && sscanf(line, "Rss: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

/*
 * A process's page-table walkers go through the linked tables: smaps,
 * and GUP's slow path (/proc/self/mem).  The PUD entry of a mapping
 * without PROT_EXEC has NX set, which no walker may take for a bad entry
 * (pud_clear_bad() would unlink the region behind msharefs's back).
 */
TEST_F(region, walkers_through_the_region)
{
	int bad = klog_count("bad pud");
	char buf[PG];
	int mem;

	region_ready(_metadata, self);
	pattern_fill(self->p, self->p, OBJ, 11);
	EXPECT_LE((long)(OBJ / 1024), smaps_rss(self->p));
	mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, mem);
	ASSERT_EQ(PG, pread(mem, buf, PG, (off_t)(unsigned long)(self->p + 5 * PG)));
	EXPECT_EQ(0, memcmp(buf, self->p + 5 * PG, PG));
	close(mem);
	EXPECT_EQ(bad, klog_count("bad pud"));
	EXPECT_EQ(-1, pattern_check(self->p, self->p, OBJ, 11));
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

/*
 * A long-term writable pin (io_uring fixed buffer) of a page-cache page
 * whose writes the filesystem must be told of is refused through a plain
 * mapping (gup's writable_file_mapping_allowed()): through a region too,
 * where the file is the host's object and not the process's.  Shared
 * anonymous memory pins as it would anywhere.
 */
TEST_F(region, longterm_pin_follows_object)
{
	const char *dev = getenv("COWPT_EXT2_DEV") ?: "/dev/ram1", *what;
	char dir[] = "/tmp/mshare-ext2-XXXXXX", cmd[256], file[64];
	int ffd, ring;
	char *q;

	region_ready(_metadata, self);
	ring = pin_page(self->p, &what);
	EXPECT_LE(0, ring) TH_LOG("shared anonymous: %s: %s", what, strerror(errno));
	if (ring >= 0)
		close(ring);

	ASSERT_NE(NULL, mkdtemp(dir));
	snprintf(cmd, sizeof(cmd), "mkfs.ext2 -q -F %s >/dev/null 2>&1", dev);
	if (system(cmd) || mount(dev, dir, "ext2", 0, NULL)) {
		rmdir(dir);
		SKIP(return, "no ext2 on %s", dev);
	}
	snprintf(file, sizeof(file), "%s/obj", dir);
	ffd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	ASSERT_LE(0, ffd);
	ASSERT_EQ(0, ftruncate(ffd, OBJ));

	q = mmap(NULL, OBJ, PROT_READ | PROT_WRITE, MAP_SHARED, ffd, 0);
	ASSERT_NE(MAP_FAILED, q);
	q[0] = 1;
	ring = pin_page(q, &what);
	EXPECT_EQ(-1, ring) TH_LOG("a plain mapping of an ext2 file pinned");
	EXPECT_EQ(EFAULT, errno);
	munmap(q, OBJ);

	/* the region's second object: the file */
	ASSERT_EQ(0, map_object(self->fd, OBJ, OBJ, ffd, PROT_READ | PROT_WRITE));
	self->p[OBJ] = 1;
	ring = pin_page(self->p + OBJ, &what);
	EXPECT_EQ(-1, ring) TH_LOG("an ext2 file pinned through a region");
	EXPECT_EQ(EFAULT, errno);
	if (ring >= 0)
		close(ring);

	munmap(self->p, self->align);
	self->p = NULL;
	close(self->fd);
	self->fd = -1;
	unlink(self->path);
	close(ffd);
	usleep(100 * 1000);	/* the region's teardown runs in a worker */
	EXPECT_EQ(0, umount2(dir, MNT_DETACH));
	rmdir(dir);
}

/*
 * A child in cgroup @cg (NULL: ours) creates the region @path, sized
 * @align, with an anonymous object of @bytes at its start, writes pattern
 * @gen into it unless @gen is 0, and exits: the region is charged to @cg
 * from its creation on.  The child's exit status (0: done).
 */
static int region_by_child(const char *path, const char *cg, long align,
			   size_t bytes, unsigned int gen)
{
	pid_t pid = fork();
	char *q;
	int fd;

	if (pid < 0)
		return -1;
	if (pid)
		return wait_code(pid);
	if (cg && cg_enter(cg))
		_exit(1);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, align) ||
	    map_object(fd, 0, bytes, -1, PROT_READ | PROT_WRITE))
		_exit(2);
	if (gen) {
		q = attach(fd, align, PROT_READ | PROT_WRITE);
		if (!q)
			_exit(3);
		pattern_fill(q, q, bytes, gen);
	}
	_exit(0);
}

#define CHARGE	(256UL << 20)

/* memory.stat's @key of @cg, in bytes, or -1. */
static long cg_stat(const char *cg, const char *key)
{
	return cg_key(cg, "memory.stat", key);
}

/*
 * The creator, in cgroup @a: make a region with a CHARGE-byte object and
 * exit.  Then a process in cgroup @b touches all of it: the pages and
 * the region's page tables are charged to @a, only @b's own tables to @b.
 */
TEST_F(region, charged_to_creator_memcg)
{
	char a[128], b[128], path[160];
	long shmem_a, pt_a;
	pid_t pid;
	int fd;

	if (cg_create(a, sizeof(a), "mshare-creator") ||
	    cg_create(b, sizeof(b), "mshare-user"))
		SKIP(return, "memory cgroups: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s-charged", self->path);
	ASSERT_EQ(0, region_by_child(path, a, self->align, CHARGE, 0));
	shmem_a = cg_stat(a, "shmem");
	pt_a = cg_stat(a, "pagetables");

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		long pt_b;
		char *q;

		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0 || cg_enter(b))
			_exit(1);
		q = attach(fd, self->align, PROT_READ | PROT_WRITE);
		if (!q)
			_exit(2);
		q[0] = 1;	/* its own tables: the PUD table at most */
		pt_b = cg_stat(b, "pagetables");
		pattern_fill(q, q, CHARGE, 10);
		if (cg_stat(b, "shmem") >= (long)(CHARGE / 8))
			_exit(3);
		if (cg_stat(b, "pagetables") - pt_b >= (long)(CHARGE / 512 / 8))
			_exit(4);
		_exit(pattern_check(q, q, CHARGE, 10) >= 0 ? 5 : 0);
	}
	EXPECT_EQ(0, wait_code(pid)) TH_LOG("1 setup, 2 attach, 3 pages or 4 page tables charged to the user, 5 data");
	EXPECT_LE((long)CHARGE, cg_stat(a, "shmem") - shmem_a);
	/* the region's PTE tables: one per 2 MiB */
	EXPECT_LE((long)(CHARGE / 512), cg_stat(a, "pagetables") - pt_a);
	unlink(path);
	cg_remove(b);
	/* a holds the region's pages until its teardown, in a worker */
	usleep(200 * 1000);
	cg_remove(a);
}

/* A single-number cgroup file (memory.swap.current), or -1. */
static long cg_value(const char *cg, const char *file)
{
	char path[256], buf[64];

	snprintf(path, sizeof(path), "%s/%s", cg, file);
	if (read_text(path, buf, sizeof(buf)) < 0)
		return -1;
	return strtol(buf, NULL, 10);
}

/*
 * Reclaim finds region pages through the host mm (the shmem object's
 * rmap lists the host VMA, whose tables every process walks): the
 * creator's memcg reclaims them to swap while another process maps the
 * region, and that process reads them back through the shared tables.
 */
TEST_F(region, reclaim_and_read_back)
{
	char cg[128], path[160];
	char *q;
	int fd;

	if (!have_swap())
		SKIP(return, "no swap");
	if (cg_create(cg, sizeof(cg), "mshare-reclaim"))
		SKIP(return, "memory cgroups: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s-reclaim", self->path);
	ASSERT_EQ(0, region_by_child(path, cg, self->align, OBJ, 12));
	fd = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	q = attach(fd, self->align, PROT_READ);
	ASSERT_NE(NULL, q);
	EXPECT_EQ(-1, pattern_check(q, q, PG, 12));	/* linked */
	for (int i = 0; i < 16 && cg_value(cg, "memory.swap.current") < (long)(OBJ / 2); i++)
		cg_write(cg, "memory.reclaim", "32M");	/* EAGAIN if short */
	EXPECT_LE((long)(OBJ / 2), cg_value(cg, "memory.swap.current"));
	EXPECT_EQ(-1, pattern_check(q, q, OBJ, 12));	/* swapped back in */
	munmap(q, self->align);
	close(fd);
	unlink(path);
	usleep(200 * 1000);	/* the region's teardown, in a worker */
	cg_remove(cg);
}

/* A process killed while it writes through the region leaves it whole. */
TEST_F(region, killed_while_writing)
{
	int before = bad_rss_reports();
	pid_t pid;
	int st;

	region_ready(_metadata, self);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		char *q = attach(self->fd, self->align, PROT_READ | PROT_WRITE);

		for (unsigned int gen = 30; q; gen++) {
			pattern_fill(self->p, self->p, OBJ / 2, gen);
			pattern_fill(q, q + OBJ / 2, OBJ / 2, gen);
		}
		_exit(1);
	}
	usleep(300 * 1000);
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(pid, waitpid(pid, &st, 0));
	EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	pattern_fill(self->p, self->p, OBJ, 14);
	EXPECT_EQ(-1, pattern_check(self->p, self->p, OBJ, 14));
	EXPECT_EQ(0, new_bad_rss(before));
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
	EXPECT_EQ(0, new_bad_rss(before));
}

TEST_HARNESS_MAIN
