// SPDX-License-Identifier: GPL-2.0
/*
 * cow_pte_reclaim - memory pressure, migration and the OOM paths on pages
 * mapped through shared PTE tables, compared with what a plain fork does:
 *
 *  - pressure: a process in a memory cgroup forks a child that sleeps,
 *    then allocates mlocked memory past memory.max.  Reclaim must swap out
 *    pages that only the shared tables map, as it swaps out a plain fork's
 *    pages; the OOM killer must not run where it does not after a plain
 *    fork.  Then both sides read their data at once, and the child writes;
 *  - migrate: move_pages(MPOL_MF_MOVE_ALL) of memory behind shared tables
 *    moves every page, from the owner, from the sharer and from a sharer
 *    whose tables the owner left (orphans); data and isolation hold after;
 *  - shared_stay: without MPOL_MF_MOVE_ALL, move_pages() and mbind() leave
 *    the pages a sleeping child also maps where they are, as after a plain
 *    fork;
 *  - swapped: with swap entries in shared tables (memory.reclaim), the
 *    owner or the sharer dies by a memcg OOM kill or by SIGKILL followed
 *    by process_mrelease(); the survivor keeps its data and no mm ends
 *    with a "Bad rss-counter";
 *  - mlocked: a sharer's mlock survives the owner's migration of the pages;
 *  - split: splitting a large folio behind a table the owner left maps its
 *    zero-filled subpages to the zero page without charging the sharer;
 *  - survivor: the memcg OOM killer chooses the big child of an owner that
 *    exited, as after a plain fork: the child is charged for its tables;
 *  - race: move_pages() of the owner's memory while the sharer drops,
 *    breaks and exits the same tables: an rmap walker must never change a
 *    table that a break or a drop has just taken away from its mm;
 *  - lazyfree: pages swapped in by a read (around the swap cache: swap is
 *    a synchronous device) keep their data in a child, plain or CoW, when
 *    the parent MADV_FREEs them and reclaim runs; so do pages that a
 *    read-only pin copied (unshared) before the fork.  Faults of stock
 *    6.12 that cow_pte_fuzz found, fixed in the series;
 *  - swapoff: swap entries a fork shared, in tables only the child maps
 *    once the parent has unmapped its side, come back with their data:
 *    swapoff finds a child that never swapped a page itself, as it finds
 *    a plain fork's child (it walks the mmlist, which fork puts both mms
 *    on when it shares a table).
 *
 * Needs root (cgroups, MPOL_MF_MOVE_ALL, process_mrelease, swapon), a swap
 * device, for swapoff a block device of its own to swap on (COWPT_SWAP_DEV,
 * default /dev/ram1), two NUMA nodes for the migrate and race cases, and
 * CLONE_COW_PTE.  A case fails rather than pass when its tables were not
 * shared.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <time.h>

#include "kselftest_harness.h"
#include "cow_pte_util.h"

#define MiB		(1UL << 20)
#define COW_WARNING	"cow_pte: shared PTE table"

static int oom_adj(int adj)
{
	char val[16];

	snprintf(val, sizeof(val), "%d", adj);
	return write_text("/proc/self/oom_score_adj", val) < 0 ? -1 : 0;
}

/* ---------------------------------------------------------------- move_pages */

static long move_pages(pid_t pid, unsigned long count, void **pages,
		       const int *nodes, int *status, int flags)
{
	return syscall(SYS_move_pages, pid, count, pages, nodes, status, flags);
}

/* Node of every page of [p, p + len) into @status; 0 or -1. */
static int page_nodes(char *p, size_t len, void **pages, int *status)
{
	size_t n = len / PG;

	for (size_t i = 0; i < n; i++)
		pages[i] = p + i * PG;
	return move_pages(0, n, pages, NULL, status, 0) ? -1 : 0;
}

/*
 * Move every page of [p, p + len) of this process to @node with @flags;
 * the number of pages now on @node, or -1.  *@eacces (if not NULL): how
 * many move_pages() left where they were as mapped by other processes.
 */
static long move_to(char *p, size_t len, int node, int flags, long *eacces)
{
	size_t n = len / PG;
	void **pages = calloc(n, sizeof(*pages));
	int *nodes = calloc(n, sizeof(*nodes));
	int *status = calloc(n, sizeof(*status));
	long on = -1;

	if (!pages || !nodes || !status)
		goto out;
	for (size_t i = 0; i < n; i++) {
		pages[i] = p + i * PG;
		nodes[i] = node;
	}
	if (move_pages(0, n, pages, nodes, status, flags) < 0)
		goto out;
	if (eacces) {
		*eacces = 0;
		for (size_t i = 0; i < n; i++)
			*eacces += status[i] == -EACCES;
	}
	if (page_nodes(p, len, pages, status))
		goto out;
	on = 0;
	for (size_t i = 0; i < n; i++)
		on += status[i] == node;
out:
	free(pages);
	free(nodes);
	free(status);
	return on;
}

static long move_all(char *p, size_t len, int node)
{
	return move_to(p, len, node, MPOL_MF_MOVE_ALL, NULL);
}

/* How many pages of [p, p + len) are on @node, or -1. */
static long pages_on(char *p, size_t len, int node)
{
	size_t n = len / PG;
	void **pages = calloc(n, sizeof(*pages));
	int *status = calloc(n, sizeof(*status));
	long on = -1;

	if (pages && status && !page_nodes(p, len, pages, status)) {
		on = 0;
		for (size_t i = 0; i < n; i++)
			on += status[i] == node;
	}
	free(pages);
	free(status);
	return on;
}

/* The node of the page at @p, or -1. */
static int node_of(char *p)
{
	void *page = p;
	int status;

	return page_nodes(page, PG, &page, &status) ? -1 : status;
}

static bool two_nodes(void)
{
	return !access("/sys/devices/system/node/node1", F_OK);
}

/* ---------------------------------------------------------------- pressure */

#define P_SHARED	(40 * MiB)	/* touched before the fork */
#define P_LOCKED	(32 * MiB)	/* mlocked after it */
#define P_MAX		"64M"		/* memory.max: the two do not fit */
#define P_MAX_BYTES	(64 * MiB)

/* Exit codes of the process in the cgroup. */
enum { RC_OK, RC_SETUP, RC_FORK, RC_NOT_SHARED, RC_DATA, RC_CHILD,
       RC_NOT_SWAPPED, RC_NOT_MOVED, RC_WAIT, RC_NOT_FREED, RC_NOT_UNSHARED,
       RC_NOT_UNSWAPPED };

static const char *const result[] = {
	[RC_OK] = "ok",
	[RC_SETUP] = "setup failed (mmap, mlock, pipe, cgroup, oom_score_adj)",
	[RC_FORK] = "fork failed",
	[RC_NOT_SHARED] = "the fork did not share the tables",
	[RC_DATA] = "the parent's data changed",
	[RC_CHILD] = "the child's data changed",
	[RC_NOT_SWAPPED] = "memory.reclaim swapped out no page of the shared tables",
	[RC_NOT_MOVED] = "move_pages(MPOL_MF_MOVE_ALL) did not move every page",
	[RC_WAIT] = "a process did not exit as planned",
	[RC_NOT_FREED] = "reclaim discarded fewer than half of the parent's own lazily freed pages",
	[RC_NOT_UNSHARED] = "the R/O pin left pages mapped twice: nothing was unshared",
	[RC_NOT_UNSWAPPED] = "pages still on the swap device after its swapoff",
};

static const char *result_str(int code)
{
	if (code >= 0 && code <= RC_NOT_UNSWAPPED)
		return result[code];
	return code == 128 + SIGKILL ? "killed (OOM?)" : "died";
}

/* Fork as the variant says; *shared is the tables it shared. */
static pid_t fork_as(bool cow, long *shared)
{
	long before = vmstat_get("cow_pte_shared");
	pid_t pid = cowpt_fork(cow ? CLONE_COW_PTE : 0);

	if (pid > 0)
		*shared = vmstat_get("cow_pte_shared") - before;
	return pid;
}

/* Wait until @fd (the read end of a pipe) is at EOF. */
static void wait_eof(int fd)
{
	char c;

	while (read(fd, &c, 1) > 0 || errno == EINTR)
		;
}

FIXTURE(pressure) {
	char cg[128];
};

FIXTURE_VARIANT(pressure) {
	bool cow;		/* CLONE_COW_PTE, or a plain fork */
	bool owner_writes;	/* the owner rewrites everything after the fork */
};

FIXTURE_VARIANT_ADD(pressure, plain) { .cow = false };
FIXTURE_VARIANT_ADD(pressure, cow) { .cow = true };
/* The child's tables are orphans: the owner broke every one of them. */
FIXTURE_VARIANT_ADD(pressure, plain_rewritten) { .cow = false, .owner_writes = true };
FIXTURE_VARIANT_ADD(pressure, cow_orphans) { .cow = true, .owner_writes = true };

FIXTURE_SETUP(pressure)
{
	if (geteuid())
		SKIP(return, "needs root for a memory cgroup");
	if (!have_swap())
		SKIP(return, "no swap device");
	ASSERT_EQ(0, cg_create(self->cg, sizeof(self->cg), "reclaim-pressure"))
		TH_LOG("memory cgroup: %s", strerror(errno));
	ASSERT_EQ(0, cg_write(self->cg, "memory.max", P_MAX));
}

FIXTURE_TEARDOWN(pressure)
{
	cg_remove(self->cg);
}

/*
 * The child sleeps through the pressure, as a snapshot child that has not
 * started writing does; then it reads its view while the parent reads
 * its own, and writes one page of each 2 MiB (rewriting all of it would
 * need more than the cgroup allows, plain fork or not).
 */
static int pressure_child(char *a, int go)
{
	char c;

	if (read(go, &c, 1) != 1)
		return RC_SETUP;
	if (pattern_check(a, a, P_SHARED, 1) >= 0)
		return RC_CHILD;
	for (size_t off = 0; off < P_SHARED; off += PMD_SZ) {
		pattern_fill(a, a + off, PG, 3);
		if (pattern_check(a, a + off, PG, 3) >= 0 ||
		    pattern_check(a, a + off + PG, PMD_SZ - PG, 1) >= 0)
			return RC_CHILD;
	}
	return RC_OK;
}

static int pressure_run(const char *cg, bool cow, bool owner_writes)
{
	unsigned int gen = owner_writes ? 2 : 1;
	char *a = map_at_phase(P_SHARED, 0), *b;
	long shared = 0;
	int go[2], code;
	pid_t child;

	if (!a || cg_enter(cg) || pipe(go))
		return RC_SETUP;
	pattern_fill(a, a, P_SHARED, 1);
	child = fork_as(cow, &shared);
	if (child < 0)
		return RC_FORK;
	if (child == 0) {
		close(go[1]);
		_exit(pressure_child(a, go[0]));
	}
	close(go[0]);
	if (cow && shared < (long)(P_SHARED / PMD_SZ))
		return RC_NOT_SHARED;
	if (owner_writes)
		pattern_fill(a, a, P_SHARED, 2);
	b = mmap(NULL, P_LOCKED, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED || mlock2(b, P_LOCKED, MLOCK_ONFAULT))
		return RC_SETUP;
	pattern_fill(b, b, P_LOCKED, 4);
	/*
	 * Both read what reclaim swapped out, at the same time, with the
	 * limit lifted: reading back all of it within the limit would thrash
	 * into an OOM kill after a plain fork too.
	 */
	if (cg_write(cg, "memory.max", "max") || write(go[1], "x", 1) != 1)
		return RC_SETUP;
	if (pattern_check(a, a, P_SHARED, gen) >= 0 ||
	    pattern_check(b, b, P_LOCKED, 4) >= 0)
		return RC_DATA;
	code = wait_code(child);
	return code ? (code == RC_CHILD ? RC_CHILD : 128 + SIGKILL) : RC_OK;
}

/*
 * What a plain fork does: the pages the child maps too are swapped out,
 * and nothing is killed.  CoW tables must not change that.
 */
TEST_F_TIMEOUT(pressure, no_oom, 300)
{
	long out = vmstat_get("pswpout");
	pid_t pid;
	int code;

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(pressure_run(self->cg, variant->cow, variant->owner_writes));
	code = wait_code(pid);
	out = vmstat_get("pswpout") - out;
	TH_LOG("pswpout %ld pages, oom_kill %ld", out,
	       cg_key(self->cg, "memory.events", "oom_kill"));
	if (code == RC_FORK)
		SKIP(return, "clone3(CLONE_COW_PTE) refused: cow_pte_mode off?");
	EXPECT_EQ(0, cg_key(self->cg, "memory.events", "oom_kill"));
	ASSERT_EQ(RC_OK, code) TH_LOG("%s", result_str(code));
	/* at least what does not fit had to go out */
	EXPECT_LE((long)((P_SHARED + P_LOCKED - P_MAX_BYTES) / PG), out);
}

/* ---------------------------------------------------------------- migrate */

#define M_LEN		(16 * MiB)

FIXTURE(migrate) {
	char *a;
};

FIXTURE_VARIANT(migrate) {
	bool child_moves;	/* the sharer moves, not the owner */
	bool owner_writes;	/* the owner broke every table first */
};

FIXTURE_VARIANT_ADD(migrate, owner) { };
FIXTURE_VARIANT_ADD(migrate, sharer) { .child_moves = true };
FIXTURE_VARIANT_ADD(migrate, sharer_of_orphans) {
	.child_moves = true, .owner_writes = true,
};

FIXTURE_SETUP(migrate)
{
	if (geteuid())
		SKIP(return, "MPOL_MF_MOVE_ALL needs CAP_SYS_NICE");
	if (!two_nodes())
		SKIP(return, "one NUMA node");
	self->a = map_at_phase(M_LEN, 0);
	ASSERT_NE(NULL, self->a);
	pattern_fill(self->a, self->a, M_LEN, 1);
}

FIXTURE_TEARDOWN(migrate)
{
	munmap(self->a, M_LEN);
}

/*
 * Move everything to the other node; then check our view, write our own
 * and check it.  A R_* code.
 */
static int move_and_check(char *a, unsigned int gen, unsigned int next)
{
	int node = node_of(a);
	long on;

	if (node < 0)
		return RC_SETUP;
	on = move_all(a, M_LEN, !node);
	if (on != (long)(M_LEN / PG)) {
		fprintf(stderr, "# %ld of %lu pages moved to node %d\n",
			on, M_LEN / PG, !node);
		return RC_NOT_MOVED;
	}
	if (pattern_check(a, a, M_LEN, gen) >= 0)
		return RC_DATA;
	pattern_fill(a, a, M_LEN, next);
	return pattern_check(a, a, M_LEN, next) >= 0 ? RC_DATA : RC_OK;
}

struct migrate_arg {
	char *a;
	bool moves;
	int go[2];
};

static int migrate_child(void *p)
{
	struct migrate_arg *m = p;
	int code;

	close(m->go[1]);
	wait_eof(m->go[0]);
	if (m->moves) {
		code = move_and_check(m->a, 1, 3);
		return code == RC_DATA ? RC_CHILD : code;
	}
	if (pattern_check(m->a, m->a, M_LEN, 1) >= 0)
		return RC_CHILD;
	return RC_OK;
}

TEST_F_TIMEOUT(migrate, moves_every_page, 180)
{
	struct migrate_arg arg = { .a = self->a, .moves = variant->child_moves };
	long shared;
	int code;
	pid_t pid;

	ASSERT_EQ(0, pipe(arg.go));
	pid = cow_child(migrate_child, &arg, &shared);
	if (pid < 0 && (errno == EINVAL || errno == EOPNOTSUPP))
		SKIP(return, "clone3(CLONE_COW_PTE): %s", strerror(errno));
	ASSERT_LT(0, pid);
	close(arg.go[0]);
	ASSERT_LE((long)(M_LEN / PMD_SZ), shared) TH_LOG("the fork shared %ld tables", shared);
	if (variant->owner_writes)
		pattern_fill(self->a, self->a, M_LEN, 2);
	if (!variant->child_moves) {
		code = move_and_check(self->a, 1, 2);
		EXPECT_EQ(RC_OK, code) TH_LOG("owner: %s", result_str(code));
	}
	close(arg.go[1]);
	code = wait_code(pid);
	EXPECT_EQ(RC_OK, code) TH_LOG("child: %s", result_str(code));
	EXPECT_EQ(-1, pattern_check(self->a, self->a, M_LEN,
				    variant->owner_writes || !variant->child_moves ? 2 : 1))
		TH_LOG("the owner's data changed");
}

/*
 * Without MPOL_MF_MOVE_ALL, move_pages() and mbind(MPOL_MF_MOVE) leave a
 * page that other processes map where it is (move_pages: status EACCES).
 * After a plain fork that is every page; after a CoW fork it must be too,
 * though each page of a shared table is mapped through one PTE
 * (mapcount 1).
 */
FIXTURE(shared_stay) {
	char *a;
};

FIXTURE_VARIANT(shared_stay) {
	bool cow;
	bool mbind;	/* mbind(MPOL_BIND, MPOL_MF_MOVE), not move_pages() */
};

FIXTURE_VARIANT_ADD(shared_stay, move_pages_plain) { };
FIXTURE_VARIANT_ADD(shared_stay, move_pages_cow) { .cow = true };
FIXTURE_VARIANT_ADD(shared_stay, mbind_plain) { .mbind = true };
FIXTURE_VARIANT_ADD(shared_stay, mbind_cow) { .cow = true, .mbind = true };

FIXTURE_SETUP(shared_stay)
{
	if (!two_nodes())
		SKIP(return, "one NUMA node");
	self->a = map_at_phase(M_LEN, 0);
	ASSERT_NE(NULL, self->a);
	pattern_fill(self->a, self->a, M_LEN, 1);
}

FIXTURE_TEARDOWN(shared_stay)
{
	munmap(self->a, M_LEN);
}

static int sleep_child(void *p)
{
	int *go = p;

	close(go[1]);
	wait_eof(go[0]);
	return RC_OK;
}

TEST_F_TIMEOUT(shared_stay, not_moved_without_move_all, 180)
{
	int go[2], from = node_of(self->a), code;
	long shared = 0, on, eacces = 0;
	pid_t pid;

	ASSERT_LE(0, from);
	ASSERT_EQ(0, pipe(go));
	if (variant->cow) {
		pid = cow_child(sleep_child, go, &shared);
		if (pid < 0 && (errno == EINVAL || errno == EOPNOTSUPP))
			SKIP(return, "clone3(CLONE_COW_PTE): %s", strerror(errno));
	} else {
		pid = fork();
		if (!pid)
			_exit(sleep_child(go));
	}
	ASSERT_LT(0, pid);
	close(go[0]);
	if (variant->cow)
		ASSERT_LE((long)(M_LEN / PMD_SZ), shared)
			TH_LOG("the fork shared %ld tables", shared);
	if (variant->mbind) {
		unsigned long mask = 1UL << !from;

		ASSERT_EQ(0, syscall(SYS_mbind, self->a, M_LEN, 2 /* MPOL_BIND */,
				     &mask, 8 * sizeof(mask), MPOL_MF_MOVE))
			TH_LOG("mbind: %s", strerror(errno));
		on = pages_on(self->a, M_LEN, !from);
	} else {
		on = move_to(self->a, M_LEN, !from, MPOL_MF_MOVE, &eacces);
		EXPECT_EQ((long)(M_LEN / PG), eacces)
			TH_LOG("%ld of %lu pages refused as shared", eacces, M_LEN / PG);
	}
	EXPECT_EQ(0, on) TH_LOG("%ld of %lu pages moved to node %d", on,
				M_LEN / PG, !from);
	EXPECT_EQ(-1, pattern_check(self->a, self->a, M_LEN, 1));
	close(go[1]);
	code = wait_code(pid);
	EXPECT_EQ(RC_OK, code) TH_LOG("child: %s", result_str(code));
}

/* ---------------------------------------------------------------- swapped */

#define S_LEN		(16 * MiB)
#define S_RECLAIM	"12M"		/* memory.reclaim: most of the tables */
#define S_LOCKED	(64 * MiB)	/* what the victim allocates to be killed */
#define S_MAX		"48M"		/* memory.max once the entries are there */

FIXTURE(swapped) {
	char cg[128];
	int bad_rss;
};

FIXTURE_VARIANT(swapped) {
	bool kill_owner;	/* the victim: the owner, or the sharer */
	bool oom;		/* memcg OOM kill, or SIGKILL + process_mrelease */
};

FIXTURE_VARIANT_ADD(swapped, oom_owner) { .kill_owner = true, .oom = true };
FIXTURE_VARIANT_ADD(swapped, oom_sharer) { .kill_owner = false, .oom = true };
FIXTURE_VARIANT_ADD(swapped, mrelease_owner) { .kill_owner = true };
FIXTURE_VARIANT_ADD(swapped, mrelease_sharer) { .kill_owner = false };

FIXTURE_SETUP(swapped)
{
	if (geteuid())
		SKIP(return, "needs root for a memory cgroup");
	if (!have_swap())
		SKIP(return, "no swap device");
	self->bad_rss = bad_rss_reports();
	ASSERT_LE(0, self->bad_rss) TH_LOG("cannot read the kernel log");
	ASSERT_EQ(0, cg_create(self->cg, sizeof(self->cg), "reclaim-swapped"))
		TH_LOG("memory cgroup: %s", strerror(errno));
}

FIXTURE_TEARDOWN(swapped)
{
	cg_remove(self->cg);
}

/* Allocate and lock until the memcg OOM killer takes us. */
static int allocate_to_death(void)
{
	char *b = mmap(NULL, S_LOCKED, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (b == MAP_FAILED || mlock2(b, S_LOCKED, MLOCK_ONFAULT))
		return RC_SETUP;
	pattern_fill(b, b, S_LOCKED, 5);
	return RC_WAIT;		/* still alive: no OOM kill */
}

/*
 * Kill @pid and reap its memory at once; 0 or -1 with errno.  The reap can
 * find the mmap lock taken or the exit not yet begun (EAGAIN, EINVAL): try
 * again.  ESRCH: the exit got there first, with nothing left to reap.
 */
static int kill_and_reap(pid_t pid)
{
	int fd = syscall(SYS_pidfd_open, pid, 0);
	int ret = -1;

	if (fd < 0)
		return -1;
	if (!syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0)) {
		for (int i = 0; i < 100; i++) {
			if (!syscall(SYS_process_mrelease, fd, 0) || errno == ESRCH) {
				ret = 0;
				break;
			}
			if (errno != EAGAIN && errno != EINVAL)
				break;
			usleep(10000);
		}
	}
	close(fd);
	return ret;
}

/*
 * The sharer: its view must survive the owner's death; if it is the
 * victim it allocates until killed.  @go: the owner says "die" (one byte)
 * or goes away (EOF).
 */
static int swapped_child(char *a, int go, bool victim, bool oom)
{
	char c;

	if (oom_adj(victim ? 1000 : -1000))
		return RC_SETUP;
	if (read(go, &c, 1) == 1 && victim)
		return oom ? allocate_to_death() : (pause(), RC_WAIT);
	if (pattern_check(a, a, S_LEN, 1) >= 0)
		return RC_CHILD;
	return RC_OK;
}

/*
 * The owner, in the cgroup: share, push most of the shared pages out to
 * swap, then let the victim die.  Reports the sharer's pid on @report.
 */
static int swapped_owner(const char *cg, bool kill_owner, bool oom, int report)
{
	char *a = map_at_phase(S_LEN, 0);
	long shared = 0, out;
	int go[2], code;
	pid_t child;

	if (!a || cg_enter(cg) || pipe(go) || oom_adj(kill_owner ? 1000 : -1000))
		return RC_SETUP;
	pattern_fill(a, a, S_LEN, 1);
	child = fork_as(true, &shared);
	if (child < 0)
		return RC_FORK;
	if (child == 0) {
		close(go[1]);
		close(report);
		_exit(swapped_child(a, go[0], !kill_owner, oom));
	}
	close(go[0]);
	if (write(report, &child, sizeof(child)) != sizeof(child))
		return RC_SETUP;
	if (shared < (long)(S_LEN / PMD_SZ))
		return RC_NOT_SHARED;
	cg_write(cg, "memory.reclaim", S_RECLAIM);	/* EAGAIN if it fell short */
	out = pagemap_pages(child, a, S_LEN, PM_SWAP);
	fprintf(stderr, "# %ld pages of the shared tables swapped out\n", out);
	if (out < 1)
		return RC_NOT_SWAPPED;
	if (oom && cg_write(cg, "memory.max", S_MAX))
		return RC_SETUP;
	if (kill_owner) {
		/* the test kills us, or the OOM killer does */
		close(report);
		return oom ? allocate_to_death() : (pause(), RC_WAIT);
	}
	if (write(go[1], "x", 1) != 1)
		return RC_SETUP;
	if (!oom && kill_and_reap(child)) {
		fprintf(stderr, "# process_mrelease: %s\n", strerror(errno));
		return RC_SETUP;
	}
	code = wait_code(child);
	if (code != 128 + SIGKILL)
		return RC_WAIT;
	return pattern_check(a, a, S_LEN, 1) >= 0 ? RC_DATA : RC_OK;
}

TEST_F_TIMEOUT(swapped, survivor_keeps_data, 300)
{
	long kills = cg_key(self->cg, "memory.events", "oom_kill");
	int report[2], code, child_code;
	pid_t pid, child = 0;

	/* The sharer is ours to wait for once the owner is gone. */
	ASSERT_EQ(0, prctl(PR_SET_CHILD_SUBREAPER, 1));
	ASSERT_EQ(0, pipe(report));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(report[0]);
		_exit(swapped_owner(self->cg, variant->kill_owner, variant->oom,
				    report[1]));
	}
	close(report[1]);
	if (read(report[0], &child, sizeof(child)) != sizeof(child))
		child = 0;
	if (variant->kill_owner && !variant->oom) {
		char c;

		/* EOF: the owner has its entries swapped out and waits */
		while (read(report[0], &c, 1) > 0)
			;
		EXPECT_EQ(0, kill_and_reap(pid)) TH_LOG("process_mrelease: %s", strerror(errno));
	}
	code = wait_code(pid);
	child_code = child > 0 ? wait_code(child) : -1;
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	if (code == RC_FORK)
		SKIP(return, "clone3(CLONE_COW_PTE) refused: cow_pte_mode off?");
	kills = cg_key(self->cg, "memory.events", "oom_kill") - kills;
	if (variant->kill_owner) {
		ASSERT_EQ(128 + SIGKILL, code) TH_LOG("owner: %s", result_str(code));
		EXPECT_EQ(RC_OK, child_code) TH_LOG("sharer: %s", result_str(child_code));
	} else {
		ASSERT_EQ(RC_OK, code) TH_LOG("owner: %s", result_str(code));
	}
	if (variant->oom)
		EXPECT_LE(1, kills) TH_LOG("no OOM kill happened");
	EXPECT_EQ(0, new_bad_rss(self->bad_rss));
}

/* ---------------------------------------------------------------- mlocked */

#define L_LEN		(8 * MiB)

/*
 * A sharer that mlocks its memory keeps it locked when the owner migrates
 * it: migration restores a page's mapping through the VMA it visits, and
 * only a locked VMA mlocks the new page.
 */
struct mlock_arg {
	char *a;
	int ready[2], go[2];
};

static int mlock_child(void *p)
{
	struct mlock_arg *m = p;

	close(m->ready[0]);
	close(m->go[1]);
	if (mlock2(m->a, L_LEN, MLOCK_ONFAULT))
		return RC_SETUP;
	if (write(m->ready[1], "x", 1) != 1)
		return RC_SETUP;
	wait_eof(m->go[0]);
	return pattern_check(m->a, m->a, L_LEN, 1) >= 0 ? RC_CHILD : RC_OK;
}

FIXTURE(mlocked) {
	char *a;
};

FIXTURE_SETUP(mlocked)
{
	if (geteuid())
		SKIP(return, "MPOL_MF_MOVE_ALL and /proc/kpageflags need root");
	if (!two_nodes())
		SKIP(return, "one NUMA node");
	self->a = map_at_phase(L_LEN, 0);
	ASSERT_NE(NULL, self->a);
	pattern_fill(self->a, self->a, L_LEN, 1);
}

FIXTURE_TEARDOWN(mlocked)
{
	munmap(self->a, L_LEN);
}

TEST_F_TIMEOUT(mlocked, sharer_keeps_mlock_across_migration, 180)
{
	struct mlock_arg m = { .a = self->a };
	long shared, locked, on;
	int node, code;
	pid_t pid;
	char c;

	ASSERT_EQ(0, pipe(m.ready));
	ASSERT_EQ(0, pipe(m.go));
	pid = cow_child(mlock_child, &m, &shared);
	if (pid < 0 && (errno == EINVAL || errno == EOPNOTSUPP))
		SKIP(return, "clone3(CLONE_COW_PTE): %s", strerror(errno));
	ASSERT_LT(0, pid);
	close(m.ready[1]);
	close(m.go[0]);
	ASSERT_LE((long)(L_LEN / PMD_SZ), shared);
	ASSERT_EQ(1, read(m.ready[0], &c, 1)) TH_LOG("the child could not mlock");
	locked = kpageflag_pages(pid, self->a, L_LEN / PG, KPF_MLOCKED);
	ASSERT_EQ((long)(L_LEN / PG), locked) TH_LOG("mlocked before the move");
	node = node_of(self->a);
	ASSERT_LE(0, node);
	on = move_all(self->a, L_LEN, !node);
	EXPECT_EQ((long)(L_LEN / PG), on) TH_LOG("pages moved by the owner");
	locked = kpageflag_pages(pid, self->a, L_LEN / PG, KPF_MLOCKED);
	EXPECT_EQ((long)(L_LEN / PG), locked) TH_LOG("the child's pages mlocked after the move");
	close(m.go[1]);
	code = wait_code(pid);
	EXPECT_EQ(RC_OK, code) TH_LOG("child: %s", result_str(code));
}

/* ---------------------------------------------------------------- split */

/*
 * Splitting a large folio maps its zero-filled subpages to the shared zero
 * page, and uncharges them from the mm whose mapping it restores.  Behind
 * a shared table that mm need not be the one charged: a table the owner
 * left was charged to nobody (an orphan) before its remaining mapper
 * adopted it, and that mapper ended with a "Bad rss-counter".
 */
FIXTURE(split) {
	char *a;
	int bad_rss;
};

FIXTURE_SETUP(split)
{
	char mode[32];

	if (geteuid())
		SKIP(return, "debugfs split_huge_pages and /proc/kpageflags need root");
	if (access("/sys/kernel/debug/split_huge_pages", W_OK))
		SKIP(return, "no /sys/kernel/debug/split_huge_pages");
	if (bracket_word(THP_DIR "/enabled", mode, sizeof(mode)))
		SKIP(return, "no THP");
	if (!strcmp(mode, "never"))
		ASSERT_EQ(0, write_text(THP_DIR "/enabled", "madvise") < 0);
	self->bad_rss = bad_rss_reports();
	ASSERT_LE(0, self->bad_rss);
	self->a = map_at_phase(PMD_SZ, 0);
	ASSERT_NE(NULL, self->a);
	ASSERT_EQ(0, madvise(self->a, PMD_SZ, MADV_HUGEPAGE));
	*(volatile char *)self->a = 1;		/* a zero-filled THP */
	if (kpageflag_pages(getpid(), self->a, 1, KPF_THP) != 1)
		SKIP(return, "no THP for the region");
	/*
	 * Keep khugepaged away: it may collapse the PTE-mapped folio back
	 * into a PMD mapping, and then fork has no table to share (the
	 * test failed once so, "1 <= shared (0)", in a full make test).
	 */
	ASSERT_EQ(0, madvise(self->a, PMD_SZ, MADV_NOHUGEPAGE));
	/* map it with PTEs, still one folio: a PTE table to share */
	ASSERT_EQ(0, madvise(self->a + PMD_SZ - PG, PG, MADV_DONTNEED));
	pattern_fill(self->a, self->a, PG, 1);
}

FIXTURE_TEARDOWN(split)
{
	munmap(self->a, PMD_SZ);
}

struct split_arg {
	int go[2];
	char *a;
};

static int split_child(void *p)
{
	struct split_arg *arg = p;
	char *a = arg->a;

	close(arg->go[1]);
	wait_eof(arg->go[0]);
	if (pattern_check(a, a, PG, 1) >= 0)
		return RC_CHILD;
	for (size_t off = PG; off < PMD_SZ; off += PG)
		if (*(volatile uint64_t *)(a + off))
			return RC_CHILD;
	return RC_OK;
}

TEST_F_TIMEOUT(split, zero_subpages_of_orphan, 120)
{
	struct split_arg arg = { .a = self->a };
	char cmd[128];
	long shared;
	int code;
	pid_t pid;

	ASSERT_EQ(0, pipe(arg.go));
	pid = cow_child(split_child, &arg, &shared);
	if (pid < 0 && (errno == EINVAL || errno == EOPNOTSUPP))
		SKIP(return, "clone3(CLONE_COW_PTE): %s", strerror(errno));
	ASSERT_LT(0, pid);
	close(arg.go[0]);
	ASSERT_LE(1, shared);
	/* the owner breaks the table: the child alone maps it, and adopts it */
	*(volatile uint64_t *)(self->a + PG) = 7;
	ASSERT_LT(0, kpageflag_pages(pid, self->a, PMD_PAGES - 1, KPF_THP));
	snprintf(cmd, sizeof(cmd), "%d,%#lx,%#lx", getpid(), (unsigned long)self->a,
		 (unsigned long)self->a + PMD_SZ);
	ASSERT_EQ(0, write_text("/sys/kernel/debug/split_huge_pages", cmd) < 0);
	EXPECT_EQ(0, kpageflag_pages(pid, self->a, PMD_PAGES - 1, KPF_THP))
		TH_LOG("the folio was not split");
	close(arg.go[1]);
	code = wait_code(pid);
	EXPECT_EQ(RC_OK, code) TH_LOG("child: %s", result_str(code));
	EXPECT_EQ(0, new_bad_rss(self->bad_rss));
}

/* ---------------------------------------------------------------- survivor */

#define V_HELD		(64 * MiB)
#define V_HOG		(64 * MiB)
#define V_MAX		"100M"		/* V_HELD fits, V_HELD + V_HOG does not */

/*
 * The OOM killer must see memory whose tables' owner has exited.  A
 * process in a memory cgroup fills V_HELD, forks a child (plain, or CoW:
 * the child maps the owner's tables) and exits; the child sleeps.  Then a
 * hog in the same cgroup allocates V_HOG, more than is left: the child,
 * the biggest process by far, must be the one killed, as after a plain
 * fork.  Before a table's charge went to a remaining mapper when its
 * owner left, the CoW child's RssAnon was a few hundred kB, and the hog
 * died instead.
 */
FIXTURE(survivor) {
	char cg[128];
};

FIXTURE_VARIANT(survivor) {
	bool cow;
};

FIXTURE_VARIANT_ADD(survivor, plain) { .cow = false };
FIXTURE_VARIANT_ADD(survivor, cow) { .cow = true };

FIXTURE_SETUP(survivor)
{
	if (geteuid())
		SKIP(return, "needs root for a memory cgroup");
	ASSERT_EQ(0, cg_create(self->cg, sizeof(self->cg), "reclaim-survivor"))
		TH_LOG("memory cgroup: %s", strerror(errno));
	ASSERT_EQ(0, cg_write(self->cg, "memory.max", V_MAX));
	/* no swap: the limit must end in an OOM kill, not in swapping */
	if (cg_write(self->cg, "memory.swap.max", "0") && have_swap())
		SKIP(return, "cannot set memory.swap.max with swap present");
	/* the owner's child must become ours when the owner exits */
	ASSERT_EQ(0, prctl(PR_SET_CHILD_SUBREAPER, 1));
}

FIXTURE_TEARDOWN(survivor)
{
	cg_remove(self->cg);
}

/* The owner: fill V_HELD, fork the survivor, tell its PID, exit. */
static int survivor_owner(const char *cg, bool cow, int report)
{
	char *a = map_at_phase(V_HELD, 0);
	long shared = 0;
	pid_t child;

	if (!a || cg_enter(cg))
		return RC_SETUP;
	pattern_fill(a, a, V_HELD, 1);
	child = fork_as(cow, &shared);
	if (child < 0)
		return RC_FORK;
	if (child == 0) {
		for (;;)
			pause();
	}
	if (cow && shared < (long)(V_HELD / PMD_SZ)) {
		kill(child, SIGKILL);
		return RC_NOT_SHARED;
	}
	if (write(report, &child, sizeof(child)) != sizeof(child))
		return RC_SETUP;
	return RC_OK;
}

/* The hog: allocate and touch V_HOG, in the cgroup. */
static int survivor_hog(const char *cg)
{
	char *b;

	if (cg_enter(cg))
		return RC_SETUP;
	b = mmap(NULL, V_HOG, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED)
		return RC_SETUP;
	pattern_fill(b, b, V_HOG, 2);
	return RC_OK;
}

TEST_F_TIMEOUT(survivor, oom_kills_the_big_survivor, 180)
{
	int pfd[2], code, hog_code, child_code;
	long kills, rss;
	pid_t owner, child = 0, hog;

	ASSERT_EQ(0, pipe(pfd));
	owner = fork();
	ASSERT_LE(0, owner);
	if (owner == 0) {
		close(pfd[0]);
		_exit(survivor_owner(self->cg, variant->cow, pfd[1]));
	}
	close(pfd[1]);
	code = wait_code(owner);
	if (code == RC_FORK)
		SKIP(return, "clone3(CLONE_COW_PTE) refused: cow_pte_mode off?");
	ASSERT_EQ(RC_OK, code) TH_LOG("owner: %s", result_str(code));
	ASSERT_EQ(sizeof(child), read(pfd[0], &child, sizeof(child)));
	close(pfd[0]);
	rss = status_kb(child, "RssAnon");
	TH_LOG("survivor RssAnon %ld kB after its owner's exit", rss);

	kills = cg_key(self->cg, "memory.events", "oom_kill");
	hog = fork();
	ASSERT_LE(0, hog);
	if (hog == 0)
		_exit(survivor_hog(self->cg));
	hog_code = wait_code(hog);
	kills = cg_key(self->cg, "memory.events", "oom_kill") - kills;
	/* the survivor is dead by now if the OOM killer chose it */
	kill(child, SIGKILL);
	child_code = wait_code(child);
	TH_LOG("hog: %s; %ld OOM kills", result_str(hog_code), kills);
	EXPECT_LE(1, kills);
	EXPECT_EQ(RC_OK, hog_code)
		TH_LOG("the hog was killed, not the %ld kB survivor", rss);
	EXPECT_EQ(128 + SIGKILL, child_code);
	EXPECT_LE((long)(V_HELD / 1024) - 1024, rss)
		TH_LOG("the survivor is not charged for what it maps");
}

/* ---------------------------------------------------------------- race */

#define RACE_LEN	(32 * MiB)
#define RACE_SECS	30

/*
 * The racing sharer says which table it is about to break or drop; the
 * mover moves a page of that table, and says when it has started, so that
 * the walk is under way while the table changes hands.
 */
struct race_sync {
	volatile long table;	/* -1: none */
	volatile long started;	/* move_pages() calls begun */
};

struct mover {
	char *a;
	struct race_sync *sync;
	volatile bool stop;
	long moves;
};

/* Move single pages of the owner's memory back and forth between nodes. */
static void *mover_thread(void *p)
{
	struct mover *m = p;
	unsigned int seed = 1;

	while (!m->stop) {
		long table = m->sync->table;
		size_t idx = table >= 0 ? table * PMD_PAGES + rand_r(&seed) % PMD_PAGES :
					  rand_r(&seed) % (RACE_LEN / PG);
		void *page = m->a + idx * PG;
		int node = node_of(page), status;

		m->sync->started++;
		if (node < 0 || move_pages(0, 1, &page, (int[]){ !node }, &status,
					   MPOL_MF_MOVE_ALL) < 0)
			break;
		m->moves++;
	}
	return NULL;
}

/* A second sharer, so that a table one sharer dropped is still shared. */
static int race_sleeper(void *p)
{
	int *go = p;

	close(go[1]);
	wait_eof(go[0]);
	return 0;
}

struct race_arg {
	char *a;
	struct race_sync *sync;
};

/* The racing sharer: break or drop each table in turn, mid-migration. */
static int race_child(void *p)
{
	struct race_arg *r = p;

	for (long t = 0; t < (long)(RACE_LEN / PMD_SZ); t++) {
		char *table = r->a + t * PMD_SZ;
		long started = r->sync->started;

		r->sync->table = t;
		for (int spin = 0; r->sync->started < started + 2 && spin < 1000000; spin++)
			;
		if (t % 2)
			pattern_fill(r->a, table, PMD_SZ, 7);
		else
			madvise(table, PMD_SZ, MADV_DONTNEED);
	}
	r->sync->table = -1;
	return 0;
}

FIXTURE(race) {
	int warnings, bad_rss;
};

FIXTURE_SETUP(race)
{
	if (geteuid())
		SKIP(return, "MPOL_MF_MOVE_ALL needs CAP_SYS_NICE");
	if (!two_nodes())
		SKIP(return, "one NUMA node");
	self->warnings = klog_count(COW_WARNING);
	self->bad_rss = bad_rss_reports();
	ASSERT_LE(0, self->warnings) TH_LOG("cannot read the kernel log");
}

FIXTURE_TEARDOWN(race)
{
}

/*
 * Three mms share each table; one of them drops or breaks it while
 * migration walks the rmap.  A walker that waited for the table's lock
 * through the racing sharer's PMD entry must not go on to change the
 * table, which the other two still map.
 */
TEST_F_TIMEOUT(race, migrate_vs_break_and_drop, RACE_SECS + 120)
{
	struct race_sync *sync = mmap(NULL, PG, PROT_READ | PROT_WRITE,
				      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct mover m = { .sync = sync };
	struct race_arg r = { .sync = sync };
	time_t end = time(NULL) + RACE_SECS;
	long rounds = 0, shared;
	pthread_t t;
	int code, go[2];
	pid_t pid, sleeper;

	ASSERT_NE(MAP_FAILED, sync);
	while (time(NULL) < end) {
		char *a = map_at_phase(RACE_LEN, 0);

		ASSERT_NE(NULL, a);
		sync->table = -1;
		pattern_fill(a, a, RACE_LEN, 1);
		ASSERT_EQ(0, pipe(go));
		sleeper = cow_child(race_sleeper, go, &shared);
		if (sleeper < 0 && (errno == EINVAL || errno == EOPNOTSUPP))
			SKIP(return, "clone3(CLONE_COW_PTE): %s", strerror(errno));
		ASSERT_LT(0, sleeper);
		close(go[0]);
		ASSERT_LE((long)(RACE_LEN / PMD_SZ), shared);
		m.a = a;
		m.stop = false;
		ASSERT_EQ(0, pthread_create(&t, NULL, mover_thread, &m));
		r.a = a;
		pid = cow_child(race_child, &r, &shared);
		ASSERT_LT(0, pid);
		code = wait_code(pid);
		m.stop = true;
		pthread_join(t, NULL);
		close(go[1]);
		ASSERT_EQ(0, code);
		ASSERT_EQ(0, wait_code(sleeper));
		ASSERT_EQ(-1, pattern_check(a, a, RACE_LEN, 1))
			TH_LOG("round %ld: the owner's data changed", rounds);
		munmap(a, RACE_LEN);
		rounds++;
	}
	TH_LOG("%ld rounds, %ld single-page moves", rounds, m.moves);
	ASSERT_LT(0, m.moves);
	EXPECT_EQ(self->warnings, klog_count(COW_WARNING))
		TH_LOG("an rmap walker changed a shared table in place");
	EXPECT_EQ(0, new_bad_rss(self->bad_rss));
}

/* --------------------------------------------------------------- lazyfree */

#define F_LEN		(4 * MiB)
#define F_RECLAIM	"64M"		/* more than the cgroup holds */

FIXTURE(lazyfree) {
	char cg[128];
};

FIXTURE_VARIANT(lazyfree) {
	bool cow;
};

FIXTURE_VARIANT_ADD(lazyfree, plain) { .cow = false };
FIXTURE_VARIANT_ADD(lazyfree, cow) { .cow = true };

FIXTURE_SETUP(lazyfree)
{
	if (geteuid())
		SKIP(return, "needs root for a memory cgroup");
	if (!have_swap())
		SKIP(return, "no swap device");
	ASSERT_EQ(0, cg_create(self->cg, sizeof(self->cg), "lazyfree"))
		TH_LOG("memory cgroup: %s", strerror(errno));
}

FIXTURE_TEARDOWN(lazyfree)
{
	cg_remove(self->cg);
}

/* Swap out all of [p, p + len), then read it back: PTEs clean again. */
static int swap_out_in(char *p, size_t len)
{
	if (pageout_everywhere(p, len))
		return RC_SETUP;
	if (pagemap_pages(getpid(), p, len, PM_SWAP) != (long)(len / PG))
		return RC_NOT_SWAPPED;
	return pattern_check(p, p, len, 1) >= 0 ? RC_DATA : RC_OK;
}

/*
 * Fork a child that maps @a too, give up @a and @own (NULL: none) with
 * MADV_FREE, reclaim the cgroup: @a must stay intact in the child, and at
 * least half of @own must be discarded (or the test shows nothing).
 */
static int lazyfree_in_parent(const char *cg, char *a, char *own, bool cow)
{
	long shared = 0, freed;
	int go[2], code;
	pid_t child;

	if (pipe(go))
		return RC_SETUP;
	child = fork_as(cow, &shared);
	if (child < 0)
		return RC_FORK;
	if (child == 0) {
		char c;

		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(RC_SETUP);
		_exit(pattern_check(a, a, F_LEN, 1) >= 0 ? RC_CHILD : RC_OK);
	}
	close(go[0]);
	if (cow && shared < (long)(F_LEN / PMD_SZ))
		return RC_NOT_SHARED;
	freed = vmstat_get("pglazyfreed");
	if (madvise(a, F_LEN, MADV_FREE) ||
	    (own && madvise(own, F_LEN, MADV_FREE)))
		return RC_SETUP;
	/* Less reclaimed than asked (EAGAIN) is expected: ask twice. */
	cg_write(cg, "memory.reclaim", F_RECLAIM);
	cg_write(cg, "memory.reclaim", F_RECLAIM);
	freed = vmstat_get("pglazyfreed") - freed;
	if (write(go[1], "x", 1) != 1)
		return RC_SETUP;
	code = wait_code(child);
	if (code)
		return code == RC_CHILD ? RC_CHILD : RC_WAIT;
	/*
	 * MADV_FREE skips a folio it cannot lock or take out of the swap
	 * cache, and the swap-out may have left a few there (1022 of 1024
	 * were discarded in 1 of 50 runs): ask for half.
	 */
	if (own && freed < (long)(F_LEN / PG / 2)) {
		fprintf(stderr, "# pglazyfreed +%ld, want %ld\n",
			freed, (long)(F_LEN / PG / 2));
		return RC_NOT_FREED;
	}
	return RC_OK;
}

/*
 * @a is mapped by the child too, @own (MADV_DONTFORK) by the parent alone,
 * and each was swapped in by a read before the fork.
 */
static int lazyfree_run(const char *cg, bool cow)
{
	char *a = map_at_phase(F_LEN, 0), *own = map_at_phase(F_LEN, 0);
	int code;

	if (!a || !own || cg_enter(cg) ||
	    madvise(a, F_LEN, MADV_NOHUGEPAGE) ||
	    madvise(own, F_LEN, MADV_NOHUGEPAGE) ||
	    madvise(own, F_LEN, MADV_DONTFORK))
		return RC_SETUP;
	pattern_fill(a, a, F_LEN, 1);
	pattern_fill(own, own, F_LEN, 1);
	code = swap_out_in(a, F_LEN);
	if (!code)
		code = swap_out_in(own, F_LEN);
	return code ? code : lazyfree_in_parent(cg, a, own, cow);
}

/*
 * Pages that a read-only pin unshared: a pin of a page that another
 * process maps too copies it (FAULT_FLAG_UNSHARE), and maps the copy
 * without making it writable or dirty.  A process that pinned never
 * shares its tables again, so a child of it forks and frees.
 */
static int unshared_run(const char *cg, bool cow)
{
	char *a = map_at_phase(F_LEN, 0), *buf = malloc(F_LEN);
	struct iovec local = { buf, F_LEN }, remote = { a, F_LEN };
	pid_t holder, mid;
	int code;

	if (!a || !buf || cg_enter(cg) || madvise(a, F_LEN, MADV_NOHUGEPAGE))
		return RC_SETUP;
	pattern_fill(a, a, F_LEN, 1);
	holder = fork();		/* maps every page a second time */
	if (holder < 0)
		return RC_FORK;
	if (holder == 0) {
		pause();
		_exit(0);
	}
	/* process_vm_readv() pins the source pages read-only. */
	code = process_vm_readv(getpid(), &local, 1, &remote, 1, 0) ==
	       (ssize_t)F_LEN ? RC_OK : RC_SETUP;
	if (!code && pagemap_pages(getpid(), a, F_LEN, PM_EXCLUSIVE) !=
		     (long)(F_LEN / PG))
		code = RC_NOT_UNSHARED;
	kill(holder, SIGKILL);
	waitpid(holder, NULL, 0);
	if (code)
		return code;
	mid = fork();
	if (mid < 0)
		return RC_FORK;
	if (mid == 0)
		_exit(lazyfree_in_parent(cg, a, NULL, cow));
	code = wait_code(mid);
	if (!code && pattern_check(a, a, F_LEN, 1) >= 0)
		code = RC_DATA;
	return code;
}

/* @run(@cg, @cow) in a child of its own; the child's RC_* code. */
static int run_in_child(int (*run)(const char *, bool), const char *cg,
			bool cow)
{
	pid_t pid = fork();

	if (pid < 0)
		return RC_SETUP;
	if (pid == 0)
		_exit(run(cg, cow));
	return wait_code(pid);
}

/*
 * After a plain fork the child's copy of a PTE is as clean as the
 * parent's, and a page read from a synchronous swap device is not in the
 * swap cache: the folio must carry the dirty flag (its only copy is in
 * memory), or MADV_FREE in the parent takes it for one nobody wrote and
 * reclaim discards it from under the child.
 */
TEST_F_TIMEOUT(lazyfree, sharer_keeps_swapped_in_pages, 120)
{
	int code = run_in_child(lazyfree_run, self->cg, variant->cow);

	if (code == RC_FORK)
		SKIP(return, "clone3(CLONE_COW_PTE) refused: cow_pte_mode off?");
	ASSERT_EQ(RC_OK, code) TH_LOG("%s", result_str(code));
}

/*
 * The copy that an R/O pin makes of a page mapped twice is as clean as a
 * page swapped in around the swap cache: fork copies its clean PTE, and
 * MADV_FREE in one process must not let reclaim discard it from the
 * others, which include the process that pinned.
 */
TEST_F_TIMEOUT(lazyfree, sharer_keeps_unshared_pages, 120)
{
	int code = run_in_child(unshared_run, self->cg, variant->cow);

	if (code == RC_FORK)
		SKIP(return, "clone3(CLONE_COW_PTE) refused: cow_pte_mode off?");
	ASSERT_EQ(RC_OK, code) TH_LOG("%s", result_str(code));
}

#define O_LEN		(8 * MiB)	/* four tables */
#define O_SECS		60		/* swapoff of O_LEN takes well under 1 s */
#define O_TYPES		32		/* pagemap: swap type in bits 0-4 */

FIXTURE(swapoff) {
	char dev[64];
	bool on;	/* our swap device is on */
	pid_t child;
};

FIXTURE_VARIANT(swapoff) {
	bool cow;
};

FIXTURE_VARIANT_ADD(swapoff, plain) { .cow = false };
FIXTURE_VARIANT_ADD(swapoff, cow) { .cow = true };

/* KiB used on swap device @dev (/proc/swaps), or -1 if it is not on. */
static long swap_used_kb(const char *dev)
{
	char name[128], line[256];
	long size, used = -1;
	FILE *f = fopen("/proc/swaps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%127s %*s %ld %ld", name, &size, &used) == 3 &&
		    !strcmp(name, dev))
			break;
		else
			used = -1;
	fclose(f);
	return used;
}

/*
 * Count the pages of [a, a + O_LEN) in @pid's pagemap that are swapped out,
 * by swap type, into @by_type; return how many are present, or -1.
 */
static long swap_types(pid_t pid, const char *a, long *by_type)
{
	int fd = pagemap_open(pid);
	long present = 0;
	uint64_t ent;

	if (fd < 0)
		return -1;
	memset(by_type, 0, O_TYPES * sizeof(*by_type));
	for (size_t off = 0; off < O_LEN; off += PG) {
		if (pread(fd, &ent, 8, (uintptr_t)(a + off) / PG * 8) != 8) {
			close(fd);
			return -1;
		}
		if (ent & PM_PRESENT)
			present++;
		else if (ent & PM_SWAP)
			by_type[ent % O_TYPES]++;
	}
	close(fd);
	return present;
}

/*
 * Swap on a device of our own at the highest priority, so that what we
 * page out goes there and swapoff of it is ours to do.
 */
FIXTURE_SETUP(swapoff)
{
	const char *dev = getenv("COWPT_SWAP_DEV") ?: "/dev/ram1";
	char cmd[128];
	struct stat st;

	if (geteuid())
		SKIP(return, "needs root for swapon");
	if (stat(dev, &st) || !S_ISBLK(st.st_mode))
		SKIP(return, "no block device %s to swap on (COWPT_SWAP_DEV)", dev);
	snprintf(self->dev, sizeof(self->dev), "%s", dev);
	ASSERT_GT(0, swap_used_kb(dev)) TH_LOG("%s is already swap", dev);
	snprintf(cmd, sizeof(cmd), "mkswap -f %s >/dev/null 2>&1", dev);
	ASSERT_EQ(0, system(cmd)) TH_LOG("mkswap %s failed", dev);
	ASSERT_EQ(0, swapon(dev, SWAP_FLAG_PREFER | SWAP_FLAG_PRIO_MASK))
		TH_LOG("swapon %s: %s", dev, strerror(errno));
	self->on = true;
}

/* In the parent, which outlives a test that failed an assertion. */
FIXTURE_TEARDOWN_PARENT(swapoff)
{
	/* A child left holding entries would keep swapoff from ending. */
	if (self->child > 0)
		kill(self->child, SIGKILL);
	if (self->on && swapoff(self->dev))
		TH_LOG("swapoff %s in teardown: %s", self->dev, strerror(errno));
}

/*
 * The child: when told, none of its pages may be left on swap type @type,
 * and all must hold its data (reading them swaps in those on other
 * devices).
 */
static int swapoff_child(char *a, int go, int type)
{
	long by_type[O_TYPES];
	char c;

	if (read(go, &c, 1) != 1)
		return RC_WAIT;
	if (swap_types(getpid(), a, by_type) < 0)
		return RC_SETUP;
	if (by_type[type]) {
		fprintf(stderr, "# child: %ld pages still on swap type %d\n",
			by_type[type], type);
		return RC_NOT_UNSWAPPED;
	}
	return pattern_check(a, a, O_LEN, 1) >= 0 ? RC_CHILD : RC_OK;
}

static void swapoff_alarm(int sig)
{
}

TEST_F_TIMEOUT(swapoff, finds_every_mapper, O_SECS + 120)
{
	struct sigaction sa = { .sa_handler = swapoff_alarm };	/* no SA_RESTART */
	char *a = map_at_phase(O_LEN, 0);
	long shared = 0, by_type[O_TYPES];
	int go[2], ret, type = 0;
	pid_t child;

	ASSERT_NE(NULL, a);
	ASSERT_EQ(0, pipe(go));
	pattern_fill(a, a, O_LEN, 1);
	ASSERT_EQ(0, pageout_everywhere(a, O_LEN));
	ASSERT_EQ(0, swap_types(getpid(), a, by_type))
		TH_LOG("MADV_PAGEOUT left pages in memory");
	/*
	 * Our device has the highest priority, but each CPU's cache of swap
	 * slots may still hold a few of another device's: most pages, not
	 * all, are on ours.  Its type is the one that holds most of them.
	 */
	for (int t = 1; t < O_TYPES; t++)
		if (by_type[t] > by_type[type])
			type = t;
	TH_LOG("%ld of %lu pages swapped out to type %d, %ld KiB used on %s",
	       by_type[type], O_LEN / PG, type, swap_used_kb(self->dev),
	       self->dev);
	ASSERT_LE((long)(O_LEN / PG / 2), by_type[type]);
	ASSERT_LE(by_type[type] * (long)(PG / 1024), swap_used_kb(self->dev))
		TH_LOG("the pages went to another swap device");

	child = fork_as(variant->cow, &shared);
	if (child == 0) {
		close(go[1]);
		_exit(swapoff_child(a, go[0], type));
	}
	ASSERT_LT(0, child) TH_LOG("fork: %s", strerror(errno));
	self->child = child;	/* self is shared with the child: not before */
	close(go[0]);
	if (variant->cow)
		ASSERT_LE((long)(O_LEN / PMD_SZ), shared)
			TH_LOG("%s", result_str(RC_NOT_SHARED));
	/* The child, which swapped nothing, is left the only mapper. */
	ASSERT_EQ(0, munmap(a, O_LEN));

	ASSERT_EQ(0, sigaction(SIGALRM, &sa, NULL));
	alarm(O_SECS);
	ret = swapoff(self->dev);
	alarm(0);
	ASSERT_EQ(0, ret)
		TH_LOG("swapoff %s: %s: it did not find the child's swap entries",
		       self->dev, strerror(errno));
	self->on = false;

	ASSERT_EQ(1, write(go[1], "x", 1));
	ret = wait_code(child);
	self->child = 0;
	EXPECT_EQ(RC_OK, ret) TH_LOG("child: %s", result_str(ret));
}

TEST_HARNESS_MAIN
