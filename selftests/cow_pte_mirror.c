// SPDX-License-Identifier: GPL-2.0
/*
 * cow_pte_mirror - a device that mirrors a process's memory, and
 * copy-on-write PTE tables.  lib/test_hmm's /dev/hmm_dmirror0 is such a
 * device: opening it registers an mmu notifier on the opener's mm, and its
 * ioctls read and write the process's memory through hmm_range_fault(), as
 * a GPU would.
 *
 * A secondary MMU (a device mirror, KVM, an IOMMU bound with SVA) hears of
 * PTE changes through the mmu notifiers of its own mm.  Reclaim, migration
 * and a break by another mapper change a shared table in place for all of
 * its mappers and notify one mm only.  So an mm with notifiers maps no
 * shared table: registering its first notifier copies the tables it
 * shares, and it does not share at fork.  What the device reads and writes
 * must be what the process's CPU reads and writes, as after a plain fork.
 *
 * Each case CoW-forks; one side (the parent or the child: the variants)
 * opens the device, the other only uses its CPU:
 *
 *  - the opener's shared tables are copied when it opens the device
 *    (cow_pte_break_other counts one per table of the region at least);
 *  - the device reads the opener's data, and the opener's device writes
 *    reach the opener's CPU but not the other side;
 *  - the other side's CPU writes do not reach the opener or its device,
 *    and the opener's CPU writes do reach its device;
 *  - a CoW fork by the opener shares nothing, and its child sees the
 *    opener's data.
 *
 * Needs CONFIG_TEST_HMM (the debug kernel has it) and CLONE_COW_PTE
 * (cow_pte_mode opt-in or always).
 */
#define _GNU_SOURCE
#include <sys/ioctl.h>

#include "kselftest_harness.h"
#include "cow_pte_util.h"
#include "test_hmm_uapi.h"	/* lib/ of the kernel tree */

#define DEVICE		"/dev/hmm_dmirror0"
#define TABLES		2
#define LEN		(TABLES * PMD_SZ)
#define NPAGES		(LEN / PG)

/* Generations of pattern_fill(): who wrote a page last. */
enum { GEN_FORK = 1, GEN_DEVICE, GEN_OTHER, GEN_CPU };

/*
 * Let the device read (@write false) or write (@write true) the region at
 * @p from or into @buf; the number of pages it copied, or -1 (errno).
 */
static long device_rw(int fd, char *p, char *buf, bool write)
{
	struct hmm_dmirror_cmd cmd = {
		.addr = (uintptr_t)p,
		.ptr = (uintptr_t)buf,
		.npages = NPAGES,
	};

	if (ioctl(fd, write ? HMM_DMIRROR_WRITE : HMM_DMIRROR_READ, &cmd))
		return -1;
	return cmd.cpages;
}

/* The first page of what the device reads at @p that does not hold @gen. */
static long device_check(int fd, char *p, char *buf, unsigned int gen)
{
	long n = device_rw(fd, p, buf, false);

	if (n != NPAGES) {
		fprintf(stderr, "device read: %ld of %lu pages (%s)\n", n,
			NPAGES, n < 0 ? strerror(errno) : "short");
		return -2;
	}
	/* pattern() is of the offset in the region, @buf stands for it */
	return pattern_check(buf, buf, LEN, gen);
}

/*
 * One side of a case.  The two sides take turns: each step() hands over
 * to the other one and waits for it.  A side exits with 0 or the number of
 * the check that failed, which the parent reports.
 */
struct side {
	int in, out;		/* pipe ends: wait on @in, hand over on @out */
	char *p, *buf;
};

static int step(struct side *s)
{
	char c = 0;

	if (write(s->out, &c, 1) != 1)
		return -1;
	return read(s->in, &c, 1) == 1 ? 0 : -1;
}

/* The end: hand over without waiting, so the other side can finish. */
static void done(struct side *s)
{
	char c = 0;

	if (write(s->out, &c, 1) != 1)
		perror("write");
}

/* Report a failed check and go on: a side returns its first failure. */
#define CHECK(n, cond, ...) do {					\
		if (!(cond)) {						\
			fprintf(stderr, __VA_ARGS__);			\
			fputc('\n', stderr);				\
			if (!bad)					\
				bad = (n);				\
		}							\
	} while (0)

/* The grandchild of cow_pte_mirror's last check: it sees its parent's data. */
static int grandchild(void *arg)
{
	char *p = arg;

	return pattern_check(p, p + PMD_SZ, PMD_SZ, GEN_DEVICE) == -1 &&
	       pattern_check(p, p, PMD_SZ, GEN_CPU) == -1 ? 0 : 1;
}

static int opener(struct side *s)
{
	long b0, b1, off, shared;
	int fd, code, bad = 0;
	pid_t pid;

	b0 = vmstat_get("cow_pte_break_other");
	fd = open(DEVICE, O_RDWR);
	b1 = vmstat_get("cow_pte_break_other");
	CHECK(10, fd >= 0, "open %s: %s", DEVICE, strerror(errno));
	if (fd < 0)
		return bad;
	CHECK(11, b1 - b0 >= TABLES,
	      "opening the device copied %ld shared tables, want %d at least "
	      "(the region's): an mm with notifiers must map no shared table",
	      b1 - b0, TABLES);

	off = device_check(fd, s->p, s->buf, GEN_FORK);
	CHECK(12, off == -1, "device read of the data at fork: page %ld", off / (long)PG);

	/* The device writes: the opener's CPU sees it, the other side not. */
	pattern_fill(s->buf, s->buf, LEN, GEN_DEVICE);
	CHECK(13, device_rw(fd, s->p, s->buf, true) == NPAGES,
	      "device write: %s", strerror(errno));
	off = pattern_check(s->p, s->p, LEN, GEN_DEVICE);
	CHECK(14, off == -1, "CPU read of the device's write: page %ld", off / (long)PG);
	if (step(s))
		return bad ?: 1;

	/* The other side wrote with its CPU: neither CPU nor device sees it. */
	off = pattern_check(s->p, s->p, LEN, GEN_DEVICE);
	CHECK(15, off == -1, "CPU read after the other side's write: page %ld",
	      off / (long)PG);
	off = device_check(fd, s->p, s->buf, GEN_DEVICE);
	CHECK(16, off == -1, "device read after the other side's write: page %ld",
	      off / (long)PG);

	/* The opener's CPU writes the first table: its device sees that. */
	pattern_fill(s->p, s->p, PMD_SZ, GEN_CPU);
	CHECK(17, device_rw(fd, s->p, s->buf, false) == NPAGES, "device read: %s",
	      strerror(errno));
	off = pattern_check(s->buf, s->buf, PMD_SZ, GEN_CPU);
	CHECK(18, off == -1, "device read of the CPU's write: page %ld", off / (long)PG);
	off = pattern_check(s->buf, s->buf + PMD_SZ, PMD_SZ, GEN_DEVICE);
	CHECK(19, off == -1, "device read of the second table: page %ld", off / (long)PG);

	/* An mm with notifiers does not share its tables at fork. */
	pid = cow_child(grandchild, s->p, &shared);
	CHECK(20, pid > 0, "clone3(CLONE_COW_PTE): %s", strerror(errno));
	code = pid > 0 ? wait_code(pid) : 0;
	CHECK(21, shared == 0, "a fork of an mm with notifiers shared %ld tables", shared);
	CHECK(22, code == 0, "the grandchild read wrong data (exit %d)", code);
	close(fd);
	done(s);
	return bad;
}

static int other(struct side *s)
{
	int bad = 0;
	long off;

	/* wait for the opener's device write */
	if (read(s->in, &(char){0}, 1) != 1)
		return 1;
	off = pattern_check(s->p, s->p, LEN, GEN_FORK);
	CHECK(30, off == -1,
	      "the other side's data changed with the opener's device write: page %ld",
	      off / (long)PG);
	pattern_fill(s->p, s->p, LEN, GEN_OTHER);
	if (step(s))
		return bad ?: 1;
	off = pattern_check(s->p, s->p, LEN, GEN_OTHER);
	CHECK(31, off == -1, "the other side's own write: page %ld", off / (long)PG);
	return bad;
}

FIXTURE(mirror) {
	char *p, *buf;
};

FIXTURE_VARIANT(mirror) {
	bool child_opens;	/* the CoW child opens the device, or the parent */
};

FIXTURE_VARIANT_ADD(mirror, parent_opens) { .child_opens = false };
FIXTURE_VARIANT_ADD(mirror, child_opens) { .child_opens = true };

FIXTURE_SETUP(mirror)
{
	if (access(DEVICE, F_OK))
		SKIP(return, "no %s (CONFIG_TEST_HMM)", DEVICE);
	self->p = map_at_phase(LEN, 0);
	ASSERT_NE(NULL, self->p);
	self->buf = malloc(LEN);
	ASSERT_NE(NULL, self->buf);
	/* THP would map the region without PTE tables to share */
	ASSERT_EQ(0, madvise(self->p, LEN, MADV_NOHUGEPAGE));
	pattern_fill(self->p, self->p, LEN, GEN_FORK);
}

FIXTURE_TEARDOWN(mirror)
{
	free(self->buf);
	if (self->p)
		munmap(self->p, LEN);
}

TEST_F(mirror, device_and_cpu_agree)
{
	int to_child[2], to_parent[2];
	struct side s = { .p = self->p, .buf = self->buf };
	long before, shared;
	int mine, code;
	pid_t pid;

	ASSERT_EQ(0, pipe(to_child));
	ASSERT_EQ(0, pipe(to_parent));
	before = vmstat_get("cow_pte_shared");
	pid = cowpt_fork(CLONE_COW_PTE);
	ASSERT_LE(0, pid) TH_LOG("clone3(CLONE_COW_PTE): %s", strerror(errno));
	if (pid == 0) {
		close(to_child[1]);
		close(to_parent[0]);
		s.in = to_child[0];
		s.out = to_parent[1];
		_exit(variant->child_opens ? opener(&s) : other(&s));
	}
	shared = vmstat_get("cow_pte_shared") - before;
	close(to_child[0]);
	close(to_parent[1]);
	s.in = to_parent[0];
	s.out = to_child[1];
	/* the opener goes first; the other side waits for its device write */
	mine = variant->child_opens ? other(&s) : opener(&s);
	/* a side that stops early leaves the other one end of file */
	close(s.out);
	code = wait_code(pid);
	close(s.in);
	ASSERT_LE(TABLES, shared) TH_LOG("the fork shared %ld tables", shared);
	EXPECT_EQ(0, mine) TH_LOG("the parent's check %d failed", mine);
	EXPECT_EQ(0, code) TH_LOG("the child's check %d failed", code);
}

TEST_HARNESS_MAIN
