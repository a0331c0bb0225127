// SPDX-License-Identifier: GPL-2.0
/*
 * cow_pte_walker - a shared PTE table outlives the walkers that reached it.
 *
 * pte_offset_map_lock() reads a PMD entry and takes the lock of the table
 * it points to before it checks the entry again; until then only
 * rcu_read_lock() holds the table.  With copy-on-write tables the mm that
 * frees a table need not be the walker's: B, a CoW child, walks the range
 * in one thread, and in another lets go of the table (drops it with
 * MADV_DONTNEED of its whole 2 MiB, or breaks away by writing to it), both
 * under its mmap lock for reading; A, the last mapper, then frees the
 * table (munmap(), or exit).  The table and its lock must stay until the
 * walker's RCU section ends (Documentation/cow-pte-design.md,
 * "Concurrency").
 *
 * The walker is held in that section by the debug kernel
 * (CONFIG_DEBUG_COW_PTE: debugfs cow_pte/walk_delay_ms), which checks
 * every millisecond that the table is still a page table and warns if it
 * is not.  Each case checks that B let go of the table, that A freed it
 * while the walker was held, and that the kernel did not warn.
 * Walkers: mincore() and a read of /proc/self/pagemap.  Without the debug
 * knob (a production kernel) the cases skip: cow_pte_ptl_race is the same
 * race left to chance.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "kselftest_harness.h"
#include "cow_pte_util.h"

#define DELAY_PATH	"/sys/kernel/debug/cow_pte/walk_delay_ms"
#define DELAY_MS	3000	/* the walker's hold, in mdelay(1)s */
#define LEAD_MS		100	/* B lets go this long into it */
#define WARNING		"freed under a walker"

enum walk { WALK_MINCORE, WALK_PAGEMAP };
enum leave { LEAVE_DROP, LEAVE_BREAK };
enum free_by { FREE_MUNMAP, FREE_EXIT, FREE_MUNMAP_NOBATCH };

/*
 * FREE_MUNMAP_NOBATCH: A's munmap() fails every allocation that cannot
 * sleep (fail_page_alloc), the mmu_gather's batch of tables among them,
 * so that the table takes the path for a failed batch allocation.
 */
static const char *const fail_attr[][2] = {
	{ "task-filter", "Y" },		/* only A, while it unmaps */
	{ "probability", "100" },
	{ "interval", "1" },
	{ "times", "100000" },
	{ "space", "0" },
	{ "verbose", "0" },
	{ "ignore-gfp-wait", "Y" },	/* GFP_NOWAIT fails, GFP_KERNEL not */
	{ "ignore-gfp-highmem", "N" },
	{ "min-order", "0" },
};

/* What B reports to the test through its pipe, after its walker is done. */
struct report {
	long walk_ms;		/* how long the walk took */
	int freed_in_walk;	/* A had freed the table before it ended */
	long left;		/* cow_pte_drop or cow_pte_break_fault, + */
	int err;		/* an errno, or 0 */
	long bad;		/* first page of B's data that is wrong, or -1 */
};

static char *region;
static enum walk walk_how;
static atomic_int walking;
static long walk_ms;

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *walker(void *arg)
{
	static unsigned char vec[PMD_SZ / PG];
	static unsigned long long ents[PMD_SZ / PG];
	long t0 = now_ms();
	int fd;

	atomic_store(&walking, 1);
	if (walk_how == WALK_MINCORE) {
		if (mincore(region, PMD_SZ, vec))
			return (void *)(long)errno;
	} else {
		fd = open("/proc/self/pagemap", O_RDONLY);
		if (fd < 0)
			return (void *)(long)errno;
		if (pread(fd, ents, sizeof(ents), (uintptr_t)region / PG * 8) !=
		    sizeof(ents)) {
			close(fd);
			return (void *)(long)EIO;
		}
		close(fd);
	}
	walk_ms = now_ms() - t0;
	atomic_store(&walking, 2);
	return NULL;
}

/*
 * B: start the walker, let go of the table while it is held, tell A to
 * free it (@to_a), hear that it did (@from_a: a byte, or EOF when A
 * exits), and report on @to_test once the walker is done.
 */
static int sharer(enum leave leave, int to_a, int from_a, int to_test)
{
	const char *counter = leave == LEAVE_DROP ? "cow_pte_drop" :
						    "cow_pte_break_fault";
	struct report r = { .bad = -1 };
	long before = vmstat_get(counter);
	pthread_t t;
	void *ret;
	char c = 1;

	if (pthread_create(&t, NULL, walker, NULL))
		return 1;
	while (!atomic_load(&walking))
		usleep(1000);
	usleep(LEAD_MS * 1000);
	if (leave == LEAVE_DROP) {
		if (madvise(region, PMD_SZ, MADV_DONTNEED))
			r.err = errno;
	} else {
		pattern_fill(region, region, PG, 2);
	}
	r.left = vmstat_get(counter) - before;
	if (write(to_a, &c, 1) != 1 && !r.err)
		r.err = errno;
	if (read(from_a, &c, 1) < 0 && !r.err)
		r.err = errno;
	r.freed_in_walk = atomic_load(&walking) == 1;
	pthread_join(t, &ret);
	if (ret && !r.err)
		r.err = (long)ret;
	r.walk_ms = walk_ms;
	if (leave == LEAVE_BREAK)
		r.bad = pattern_check(region, region + PG, PMD_SZ - PG, 1);
	return write(to_test, &r, sizeof(r)) == sizeof(r) ? 0 : 1;
}

/*
 * A: map and fill a table, CoW-fork B, free the table when B has let go of
 * it.  @to_test carries the number of tables the fork shared.  2: with
 * FREE_MUNMAP_NOBATCH, no allocation failed in munmap(), or the allowance
 * of failures ran out.
 */
static int mapper(enum leave leave, enum free_by free_by, int b_to_test,
		  int to_test)
{
	int to_a[2], to_b[2], code;
	long shared;
	pid_t b;
	char c;

	region = map_at_phase(PMD_SZ, 0);
	if (!region || madvise(region, PMD_SZ, MADV_NOHUGEPAGE))
		return 1;
	pattern_fill(region, region, PMD_SZ, 1);
	if (pipe(to_a) || pipe(to_b))
		return 1;
	shared = vmstat_get("cow_pte_shared");
	b = cowpt_fork(CLONE_COW_PTE);
	if (b < 0)
		return 1;
	if (b == 0) {
		close(to_a[0]);
		close(to_b[1]);
		_exit(sharer(leave, to_a[1], to_b[0], b_to_test));
	}
	shared = vmstat_get("cow_pte_shared") - shared;
	close(to_a[1]);
	close(to_b[0]);
	if (write(to_test, &shared, sizeof(shared)) != sizeof(shared))
		return 1;
	if (read(to_a[0], &c, 1) != 1)
		return 1;
	if (free_by == FREE_EXIT)
		_exit(0);	/* B is the test's: a subreaper's orphan */
	if (free_by == FREE_MUNMAP_NOBATCH) {
		long left = file_long(FAIL_DIR "times");

		if (left <= 0 || write_text("/proc/self/make-it-fail", "1"))
			return 1;
		if (munmap(region, PMD_SZ))
			return 1;
		if (write_text("/proc/self/make-it-fail", "0"))
			return 1;
		code = file_long(FAIL_DIR "times");
		if (code >= left || code <= 0)
			return 2;
	} else if (munmap(region, PMD_SZ)) {
		return 1;
	}
	if (write(to_b[1], &c, 1) != 1)
		return 1;
	code = wait_code(b);
	return code;
}

FIXTURE(walker)
{
	long saved_delay;
	int warnings;
	char saved[ARRAY_SIZE(fail_attr)][32];
	int nsaved;
};

FIXTURE_VARIANT(walker)
{
	enum walk walk;
	enum leave leave;
	enum free_by free_by;
};

FIXTURE_VARIANT_ADD(walker, mincore_drop_munmap) {
	.walk = WALK_MINCORE, .leave = LEAVE_DROP, .free_by = FREE_MUNMAP,
};

FIXTURE_VARIANT_ADD(walker, mincore_drop_exit) {
	.walk = WALK_MINCORE, .leave = LEAVE_DROP, .free_by = FREE_EXIT,
};

FIXTURE_VARIANT_ADD(walker, mincore_break_munmap) {
	.walk = WALK_MINCORE, .leave = LEAVE_BREAK, .free_by = FREE_MUNMAP,
};

FIXTURE_VARIANT_ADD(walker, mincore_break_exit) {
	.walk = WALK_MINCORE, .leave = LEAVE_BREAK, .free_by = FREE_EXIT,
};

FIXTURE_VARIANT_ADD(walker, mincore_drop_munmap_nobatch) {
	.walk = WALK_MINCORE, .leave = LEAVE_DROP, .free_by = FREE_MUNMAP_NOBATCH,
};

FIXTURE_VARIANT_ADD(walker, pagemap_drop_munmap) {
	.walk = WALK_PAGEMAP, .leave = LEAVE_DROP, .free_by = FREE_MUNMAP,
};

FIXTURE_VARIANT_ADD(walker, pagemap_drop_exit) {
	.walk = WALK_PAGEMAP, .leave = LEAVE_DROP, .free_by = FREE_EXIT,
};

FIXTURE_VARIANT_ADD(walker, pagemap_break_munmap) {
	.walk = WALK_PAGEMAP, .leave = LEAVE_BREAK, .free_by = FREE_MUNMAP,
};

FIXTURE_VARIANT_ADD(walker, pagemap_break_exit) {
	.walk = WALK_PAGEMAP, .leave = LEAVE_BREAK, .free_by = FREE_EXIT,
};

static int delay_set(long ms)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%ld\n", ms);
	return write_text(DELAY_PATH, buf);
}

FIXTURE_SETUP(walker)
{
	if (geteuid())
		SKIP(return, "needs root for debugfs");
	self->saved_delay = file_long(DELAY_PATH);
	if (self->saved_delay < 0)
		SKIP(return, "no %s: not a CONFIG_DEBUG_COW_PTE kernel", DELAY_PATH);
	self->warnings = klog_count(WARNING);
	ASSERT_LE(0, self->warnings) TH_LOG("cannot read the kernel log");
	if (variant->free_by == FREE_MUNMAP_NOBATCH) {
		if (access(FAIL_DIR, F_OK))
			SKIP(return, "no %s: needs CONFIG_FAIL_PAGE_ALLOC", FAIL_DIR);
		self->nsaved = fail_alloc_setup(fail_attr, ARRAY_SIZE(fail_attr),
						self->saved);
		ASSERT_EQ((int)ARRAY_SIZE(fail_attr), self->nsaved)
			TH_LOG(FAIL_DIR "%s: %s", fail_attr[self->nsaved][0],
			       strerror(errno));
	}
	ASSERT_EQ(0, prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0));
	ASSERT_EQ(0, delay_set(DELAY_MS));
}

FIXTURE_TEARDOWN(walker)
{
	delay_set(self->saved_delay);
	prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
	fail_alloc_restore(fail_attr, self->nsaved, self->saved);
}

TEST_F_TIMEOUT(walker, table_outlives_walk, 60)
{
	int from_a[2], from_b[2];
	struct report r;
	long shared;
	int code;
	pid_t a;

	ASSERT_EQ(0, pipe(from_a));
	ASSERT_EQ(0, pipe(from_b));
	walk_how = variant->walk;	/* inherited by A, then by B */
	a = fork();
	ASSERT_LE(0, a);
	if (a == 0) {
		close(from_a[0]);
		close(from_b[0]);
		_exit(mapper(variant->leave, variant->free_by, from_b[1],
			     from_a[1]));
	}
	close(from_a[1]);
	close(from_b[1]);
	ASSERT_EQ(sizeof(shared), read(from_a[0], &shared, sizeof(shared)));
	ASSERT_EQ(sizeof(r), read(from_b[0], &r, sizeof(r)))
		TH_LOG("B did not report");
	code = wait_code(a);
	EXPECT_EQ(0, code) TH_LOG("%s", code == 2 ?
		"no allocation failed in munmap(), or too many did" : "A failed");
	/* B, A's child, or the orphan it left us */
	while (wait(NULL) > 0)
		;
	ASSERT_EQ(1, shared) TH_LOG("%s", "the fork shared no table");
	ASSERT_EQ(0, r.err) TH_LOG("B: %s", strerror(r.err));
	ASSERT_LE(1, r.left) TH_LOG("B did not let go of the table");
	/* The kernel's check ends the walker's wait when it fires. */
	ASSERT_EQ(self->warnings, klog_count(WARNING))
		TH_LOG("the table was freed while the walker held it");
	/*
	 * The walk outlasted B's letting go and A's free: it was held on the
	 * shared table.  (Its length says less: mdelay() counts the TSC, which
	 * a TCG guest's clock need not follow; 1,500 of them took 618-1,401
	 * ms of CLOCK_MONOTONIC.)
	 */
	ASSERT_TRUE(r.freed_in_walk)
		TH_LOG("the walk (%ld ms) ended before A freed the table: it was not held on it",
		       r.walk_ms);
	EXPECT_EQ(-1, r.bad) TH_LOG("B's page %ld lost its data", r.bad);
}

TEST_HARNESS_MAIN
