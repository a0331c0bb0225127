// SPDX-License-Identifier: GPL-2.0
/*
 * cow_pte_accounting - who is charged for shared PTE tables and the pages
 * they map (/proc/PID/status RssAnon and VmPTE), and the /proc/vmstat
 * cow_pte_* counters, as specified:
 *
 *  - at a CoW fork the parent keeps its charge and the child is charged
 *    nothing for shared tables (2048 kB RssAnon and 4 kB VmPTE less per
 *    fully touched table than the child of a plain fork);
 *  - a non-owner that breaks a table is charged all its pages and 4 kB;
 *    an owner that breaks keeps its counters (now for its copy);
 *  - unmapping or exit drops shared tables without a copy; an owner that
 *    breaks or drops a table others still map hands its charge to one of
 *    them, which adopts the table;
 *  - the owner, last to map a table, reuses it without a copy; any other
 *    last mapper, an adopter too, copies it;
 *  - partial zaps, madvise, mprotect, munmap, mremap break for the caller;
 *  - a pin keeps its table copied at fork, and only its table.
 *
 * The test process maps NPMD 2 MiB aligned PMDs of private anonymous
 * memory, touches every page and CoW-forks "actors" (actor.h, slots 0 to
 * 3) that it drives one command at a time; it reads their /proc/PID/status while they wait.  RssAnon is
 * compared with a tolerance (per-CPU counter batching, stack, libc) far
 * below one table's 2048 kB; VmPTE is exact to one table.  vmstat is
 * system-wide, so counter deltas are lower bounds only.
 *
 * Runs in cow_pte_mode "opt-in" (set as root, restored afterwards) so that
 * plain forks are the stock baseline.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "cowpt.h"
#include "cow_pte_util.h"
#include "actor.h"

#define NPMD		16
#define NPAGES		(NPMD * PMD_PAGES)
#define REGION		(NPMD * PMD_SZ)
#define REGION_KB	((long)(REGION >> 10))
#define TABLE_KB	2048L		/* pages of one fully touched table */
#define PTE_KB		4L		/* one PTE table */
#define TOL_KB		1024L		/* RssAnon noise, half a table */
#define PTE_TOL_KB	4L		/* VmPTE noise: one table */
#define MAGIC		0x0ac0c0a7ab1e0000ULL
#define MARK_OFF	2048		/* byte of a page that touches write */

/* ------------------------------------------------------------------ */

static char *region;

static uint64_t word_of(long page)
{
	return MAGIC ^ (uint64_t)page;
}

static char *table(long t)
{
	return region + t * PMD_SZ;
}

/*
 * Marks a process may see at MARK_OFF: 0, its own, and those its ancestors
 * wrote before forking it (inherited with the memory).
 */
static bool mark_ok[256] = { [0] = true };

/*
 * Every page of tables first..first+n-1 must hold its word (or zeros) and
 * at MARK_OFF a mark this process may see.  Returns the first bad page,
 * or -1.
 */
static long verify_tables(long first, long n, bool zero)
{
	for (long i = first * PMD_PAGES; i < (first + n) * PMD_PAGES; i++) {
		volatile char *p = region + i * PG;
		uint64_t w = *(volatile uint64_t *)p;

		if (w != (zero ? 0 : word_of(i)))
			return i;
		if (!mark_ok[(unsigned char)p[MARK_OFF]])
			return i;
	}
	return -1;
}

/* A write to one page (at offset 'page' into the table) of each table. */
static void touch_tables(long first, long n, long page, char mark)
{
	for (long t = first; t < first + n; t++)
		*(volatile char *)(table(t) + page * PG + MARK_OFF) = mark;
}

static void touch_all(long first, long n, char mark)
{
	for (long i = first * PMD_PAGES; i < (first + n) * PMD_PAGES; i++)
		*(volatile char *)(region + i * PG + MARK_OFF) = mark;
}

struct ms {
	long rss, pte;
};

static struct ms stat_of(pid_t pid)
{
	struct ms m = { status_kb(pid, "RssAnon"), status_kb(pid, "VmPTE") };

	return m;
}

static long vm(const char *name)
{
	return vmstat_get(name);
}

/* ------------------------------------------------------------------ */
/* Actors                                                               */

enum aop {
	A_TOUCH, A_TOUCH_ALL, A_READ, A_VERIFY, A_MADV, A_MPROTECT, A_MUNMAP,
	A_MREMAP, A_FORK, A_EXIT, A_PIN_URING, A_PIN_ODIRECT, A_MLOCK_ONFAULT,
};

static const char *const aop_name[] = {
	"touch", "touch-all", "read", "verify", "madvise", "mprotect",
	"munmap", "mremap", "fork", "exit", "pin-io_uring", "pin-O_DIRECT",
	"mlock2-onfault",
};

struct acmd {
	ACTOR_CMD_HEAD;		/* op; A_FORK: child (its slot), flags */
	int arg;
	long first, n;		/* tables, or pages for the mm ops */
};

struct arep {
	ACTOR_REP_HEAD;		/* err, info */
	char msg[240];
};

static int slot;

static char mark_of(int s)
{
	return (char)(0x40 + s);
}

#define T_MARK	((char)0x3f)	/* the test process's own mark */

/* An io_uring fixed buffer at @p: pinned until the actor exits. */
static void pin_uring(struct arep *r, char *p)
{
	const char *what;

	if (pin_page(p, &what) < 0) {
		r->err = ACTOR_SKIP;
		snprintf(r->msg, sizeof(r->msg), "%s: %s", what, strerror(errno));
	}
}

static const char *odirect_path(void)
{
	const char *env = getenv("COWPT_ODIRECT_DEV");

	return env ? env : "/dev/ram1";
}

/*
 * An O_DIRECT read into the page at @p: pinned while the read runs.  The
 * device's bytes replace the page; put back what verify_tables() checks.
 */
static void pin_odirect(struct arep *r, char *p)
{
	int fd = open(odirect_path(), O_RDONLY | O_DIRECT);
	uint64_t word = *(volatile uint64_t *)p;
	char mark = p[MARK_OFF];

	if (fd < 0 || pread(fd, p, PG, 0) != (ssize_t)PG) {
		r->err = ACTOR_SKIP;
		snprintf(r->msg, sizeof(r->msg), "O_DIRECT read from %s: %s",
			 odirect_path(), strerror(errno));
	}
	*(volatile uint64_t *)p = word;
	p[MARK_OFF] = mark;
	if (fd >= 0)
		close(fd);
}

static void aop(const void *cmd, void *rep)
{
	const struct acmd *c = cmd;
	struct arep *r = rep;
	char *p = region + c->first * PG;
	size_t len = c->n * PG;
	long bad;

	switch (c->op) {
	case A_TOUCH:
		touch_tables(c->first, c->n, c->arg, mark_of(slot));
		break;
	case A_TOUCH_ALL:
		touch_all(c->first, c->n, mark_of(slot));
		break;
	case A_READ:
		for (long i = c->first * PMD_PAGES; i < (c->first + c->n) * PMD_PAGES; i++)
			r->info += *(volatile uint64_t *)(region + i * PG) & 1;
		break;
	case A_VERIFY:
		bad = verify_tables(c->first, c->n, c->arg);
		if (bad >= 0) {
			r->err = ACTOR_FAIL;
			snprintf(r->msg, sizeof(r->msg),
				 "slot %d: page %ld (table %ld): word %#llx mark %#x",
				 slot, bad, bad / (long)PMD_PAGES,
				 (unsigned long long)*(uint64_t *)(region + bad * PG),
				 (unsigned char)region[bad * PG + MARK_OFF]);
		}
		break;
	case A_MADV:
		if (madvise(p, len, c->arg))
			r->err = ACTOR_FAIL;
		break;
	case A_MPROTECT:
		if (mprotect(p, len, PROT_READ))
			r->err = ACTOR_FAIL;
		break;
	case A_MUNMAP:
		if (munmap(p, len))
			r->err = ACTOR_FAIL;
		break;
	case A_MREMAP: {
		/* to a PMD of its own: exactly one new PTE table */
		char *to = map_at_phase(len, 0);

		if (!to || mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to) != to)
			r->err = ACTOR_FAIL;
		break;
	}
	case A_PIN_URING:
		pin_uring(r, p);
		break;
	case A_PIN_ODIRECT:
		pin_odirect(r, p);
		break;
	case A_MLOCK_ONFAULT:
		/* mlocks what is mapped, faults nothing in */
		if (syscall(SYS_mlock2, p, len, MLOCK_ONFAULT))
			r->err = ACTOR_FAIL;
		break;
	case A_EXIT:
		break;
	}
	if (r->err == ACTOR_FAIL && !r->msg[0])
		snprintf(r->msg, sizeof(r->msg), "slot %d: %s: %s", slot,
			 aop_name[c->op], strerror(errno));
}

/* In a new actor forked by another: its slot, and its mark is valid. */
static void born(const void *cmd)
{
	slot = ((const struct acmd *)cmd)->child;
	mark_ok[(unsigned char)mark_of(slot)] = true;
}

/* An actor says "ready" (a reply of zeros), then serves. */
static const struct actor_proto aproto = {
	.hello = true,
	.cmd_size = sizeof(struct acmd), .rep_size = sizeof(struct arep),
	.fork_op = A_FORK, .exit_op = A_EXIT,
	.serve = aop,
	.born = born,
};

struct aeng {
	struct actors a;
	struct arep r;		/* the last reply */
};

static int wait_rep(struct aeng *e, int s)
{
	ssize_t n = actor_wait(&e->a, s, &e->r, sizeof(e->r));

	if (n < 0)
		return n;
	return n == sizeof(e->r) ? 0 : -EIO;
}

/* In slot s, forked by the test process. */
static void __attribute__((noreturn)) spawned(int chan, void *arg)
{
	struct acmd c = { .child = (int)(long)arg };

	/* the test process writes its mark only after forking */
	mark_ok[(unsigned char)T_MARK] = false;
	born(&c);
	actor_loop(chan, &aproto);	/* it says "ready" first */
}

/* The test process forks slot s itself (flags 0: a plain clone3 fork). */
static pid_t spawn(struct __test_metadata *_metadata, struct aeng *e, int s,
		   uint64_t flags)
{
	pid_t pid = actor_spawn(&e->a, s, flags, spawned, (void *)(long)s);

	if (pid < 0) {
		TH_LOG("clone3(%#llx): %s", (unsigned long long)flags, strerror(-pid));
		return -1;
	}
	if (wait_rep(e, s)) {
		TH_LOG("slot %d did not start", s);
		return -1;
	}
	return pid;
}

static int acmd(struct __test_metadata *_metadata, struct aeng *e, int s,
		const struct acmd *c)
{
	int ret;

	if (c->op == A_FORK) {
		/* the parent's reply (the pid), then the child's "ready" */
		ret = actor_fork_call(&e->a, s, c, sizeof(*c), &e->r,
				      sizeof(e->r), true);
		if (ret || e->r.err) {
			TH_LOG("fork from slot %d to slot %d: %s", s, c->child,
			       ret ? strerror(-ret) : strerror(-e->r.info));
			return -1;
		}
		return 0;
	}
	ret = actor_send_cmd(&e->a, s, c, sizeof(*c), -1);
	if (ret) {
		TH_LOG("slot %d: cannot send %s: %s", s, aop_name[c->op],
		       strerror(-ret));
		return -1;
	}
	ret = wait_rep(e, s);
	if (ret) {
		TH_LOG("slot %d: no reply to %s: %s", s, aop_name[c->op],
		       ret == -ESRCH ? "it died" : strerror(-ret));
		return -1;
	}
	if (e->r.err == ACTOR_SKIP)
		return 1;
	if (e->r.err) {
		TH_LOG("%s", e->r.msg);
		return -1;
	}
	if (c->op == A_EXIT && actor_wait_exit(&e->a, s)) {
		TH_LOG("slot %d did not exit", s);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */

struct actx {
	struct aeng e;
	char orig_mode[32];
	bool restore_mode;
	int bad_rss;
};

/* opt-in mode, the touched region, no actors yet; 1 to skip */
static int actx_setup(struct __test_metadata *_metadata, struct actx *x)
{
	char mode[32];

	x->restore_mode = false;
	x->bad_rss = bad_rss_reports();
	ASSERT_EQ(0, cow_mode_get(mode, sizeof(mode))) {
		TH_LOG("no %s: kernel without cowpt?", COWPT_MODE_PATH);
	}
	if (strcmp(mode, "opt-in")) {
		if (geteuid())
			SKIP(return 1, "cow_pte_mode is %s and we are not root", mode);
		snprintf(x->orig_mode, sizeof(x->orig_mode), "%s", mode);
		ASSERT_EQ(0, cow_mode_set("opt-in"));
		x->restore_mode = true;
	}
	mark_ok[(unsigned char)T_MARK] = true;
	region = map_at_phase(REGION, 0);
	ASSERT_NE(NULL, region);
	ASSERT_EQ(0, madvise(region, REGION, MADV_NOHUGEPAGE));
	for (long i = 0; i < NPAGES; i++)
		*(uint64_t *)(region + i * PG) = word_of(i);
	actors_init(&x->e.a);
	return 0;
}

static void actx_teardown(struct __test_metadata *_metadata, struct actx *x)
{
	int now;

	actors_stop(&x->e.a);
	if (x->restore_mode)
		cow_mode_set(x->orig_mode);
	/* no "Bad rss-counter state" from any mm torn down by the test */
	usleep(100000);
	now = bad_rss_reports();
	if (x->bad_rss >= 0 && now >= 0) {
		/* >=: the log may have wrapped */
		EXPECT_GE(x->bad_rss, now) {
			TH_LOG("new \"Bad rss-counter state\" in the kernel log");
		}
	}
}

FIXTURE(acct) {
	struct actx x;
};

FIXTURE_SETUP(acct)
{
	actx_setup(_metadata, &self->x);
}

FIXTURE_TEARDOWN(acct)
{
	actx_teardown(_metadata, &self->x);
}

#define SPAWN(s, fl)	ASSERT_LT(0, spawn(_metadata, &self->x.e, s, fl))

#define ACT(s, ...) do { \
	struct acmd __c = { __VA_ARGS__ }; \
	int __r = acmd(_metadata, &self->x.e, s, &__c); \
	if (__r == 1) \
		SKIP(return, "%s", self->x.e.r.msg); \
	ASSERT_EQ(0, __r); \
} while (0)

#define PID(s)		(self->x.e.a.pid[s])

#define EXPECT_NEAR(exp, seen, tol, what) do { \
	long __e = (exp), __s = (seen); \
	EXPECT_TRUE(__s >= __e - (tol) && __s <= __e + (tol)) { \
		TH_LOG("%s: expected %ld kB (+-%ld), got %ld kB (%+ld)", what, \
		       __e, (long)(tol), __s, __s - __e); \
	} \
} while (0)

#define EXPECT_SAME(a, b, what) do { \
	EXPECT_NEAR((a).rss, (b).rss, TOL_KB, what " RssAnon"); \
	EXPECT_NEAR((a).pte, (b).pte, PTE_TOL_KB, what " VmPTE"); \
} while (0)

#define EXPECT_COUNTER_GE(name, before, n) do { \
	long __d = vm(name) - (before); \
	EXPECT_LE((long)(n), __d) { \
		TH_LOG("%s grew by %ld, expected >= %ld", name, __d, (long)(n)); \
	} \
} while (0)

/* Every counter of the spec is in /proc/vmstat. */
TEST_F(acct, vmstat_counters_exist)
{
	for (size_t i = 0; i < NR_COW_PTE_COUNTERS; i++) {
		EXPECT_LE(0, vm(cow_pte_counters[i])) {
			TH_LOG("no %s in /proc/vmstat", cow_pte_counters[i]);
		}
	}
}

/*
 * Right after the fork: the parent's counters are unchanged, the CoW child
 * has exactly the region's pages and tables less than a plain-fork child,
 * and NPMD tables were shared.  Reading everything changes nothing.
 */
TEST_F(acct, fork_charges_parent_only)
{
	struct ms t0, t1, plain, cow, cow2;
	long v0, v1, v2;

	t0 = stat_of(0);
	ASSERT_LE(REGION_KB, t0.rss);
	v0 = vm("cow_pte_shared");
	ASSERT_LE(0, v0);
	SPAWN(0, 0);
	v1 = vm("cow_pte_shared");
	plain = stat_of(PID(0));
	SPAWN(1, CLONE_COW_PTE);
	v2 = vm("cow_pte_shared");
	cow = stat_of(PID(1));
	t1 = stat_of(0);
	TH_LOG("parent %ld/%ld kB, plain child %ld/%ld kB, CoW child %ld/%ld kB (RssAnon/VmPTE)",
	       t1.rss, t1.pte, plain.rss, plain.pte, cow.rss, cow.pte);

	EXPECT_SAME(t0, t1, "parent after forks");
	EXPECT_LE(REGION_KB - TOL_KB, plain.rss);
	EXPECT_NEAR(plain.rss - REGION_KB, cow.rss, TOL_KB,
		    "CoW child RssAnon (plain child's less the region)");
	EXPECT_NEAR(plain.pte - NPMD * PTE_KB, cow.pte, PTE_TOL_KB,
		    "CoW child VmPTE (plain child's less NPMD tables)");
	EXPECT_GT(REGION_KB - TOL_KB, cow.rss);
	EXPECT_LE(v1 + NPMD, v2) {
		TH_LOG("cow_pte_shared grew by %ld at the CoW fork", v2 - v1);
	}
	EXPECT_GT(v0 + NPMD, v1) {
		TH_LOG("a plain fork in opt-in mode shared %ld tables", v1 - v0);
	}

	/* reads of resident pages never fault, never break */
	ACT(1, .op = A_VERIFY, .first = 0, .n = NPMD);
	ACT(0, .op = A_VERIFY, .first = 0, .n = NPMD);
	cow2 = stat_of(PID(1));
	EXPECT_SAME(cow, cow2, "CoW child after reading everything");
	EXPECT_EQ(-1, verify_tables(0, NPMD, false));
}

/*
 * The child writes one byte in k tables: it is charged k tables of pages
 * and k PTE tables, once; reading other tables charges nothing; the parent
 * is not affected.
 */
TEST_F(acct, child_break_charges_child)
{
	static const long tabs[] = { 1, 5, 9, 13 };
	const long k = ARRAY_SIZE(tabs);
	struct ms p0, p1, c0, c1, c2, c3;
	long b0;

	p0 = stat_of(0);
	SPAWN(0, CLONE_COW_PTE);
	c0 = stat_of(PID(0));
	b0 = vm("cow_pte_break_fault");
	for (long i = 0; i < k; i++)
		ACT(0, .op = A_TOUCH, .first = tabs[i], .n = 1, .arg = 7);
	c1 = stat_of(PID(0));
	EXPECT_NEAR(c0.rss + k * TABLE_KB, c1.rss, TOL_KB,
		    "child RssAnon after breaking k tables");
	EXPECT_NEAR(c0.pte + k * PTE_KB, c1.pte, PTE_TOL_KB,
		    "child VmPTE after breaking k tables");
	EXPECT_COUNTER_GE("cow_pte_break_fault", b0, k);

	/* the same tables again, other pages: already private */
	for (long i = 0; i < k; i++)
		ACT(0, .op = A_TOUCH, .first = tabs[i], .n = 1, .arg = 300);
	c2 = stat_of(PID(0));
	EXPECT_SAME(c1, c2, "child after touching its private tables");

	/* reading shared tables */
	ACT(0, .op = A_READ, .first = 2, .n = 3);
	c3 = stat_of(PID(0));
	EXPECT_SAME(c2, c3, "child after reading shared tables");

	p1 = stat_of(0);
	EXPECT_SAME(p0, p1, "parent");
	ACT(0, .op = A_VERIFY, .first = 0, .n = NPMD);
	EXPECT_EQ(-1, verify_tables(0, NPMD, false));
}

/*
 * The owner writes k tables: its counters do not change (it is charged
 * for its copies instead), and the child, which still maps the old
 * tables, adopts them: it is charged for them at once, as a plain-fork
 * child always is.  Its first touch of each still copies it (the pages
 * may be exclusive for the owner: cow_pte_isolation's
 * vmsplice_then_unmap) and frees the old table, with no further charge.
 */
TEST_F(acct, owner_break_hands_tables_to_child)
{
	static const long tabs[] = { 0, 4, 8, 12 };
	const long k = ARRAY_SIZE(tabs);
	struct ms p0, p1, c0, c1, c2;
	long b0, a0;

	SPAWN(0, CLONE_COW_PTE);
	p0 = stat_of(0);
	c0 = stat_of(PID(0));
	b0 = vm("cow_pte_break_fault");
	a0 = vm("cow_pte_adopt");
	for (long i = 0; i < k; i++)
		touch_tables(tabs[i], 1, 11, T_MARK);
	p1 = stat_of(0);
	EXPECT_SAME(p0, p1, "owner after breaking k tables");
	EXPECT_COUNTER_GE("cow_pte_break_fault", b0, k);
	EXPECT_COUNTER_GE("cow_pte_adopt", a0, k);
	c1 = stat_of(PID(0));
	EXPECT_NEAR(c0.rss + k * TABLE_KB, c1.rss, TOL_KB,
		    "child RssAnon after adopting k tables");
	EXPECT_NEAR(c0.pte + k * PTE_KB, c1.pte, PTE_TOL_KB,
		    "child VmPTE after adopting k tables");

	b0 = vm("cow_pte_break_fault");
	for (long i = 0; i < k; i++)
		ACT(0, .op = A_TOUCH, .first = tabs[i], .n = 1, .arg = 200);
	c2 = stat_of(PID(0));
	EXPECT_SAME(c1, c2, "child after copying the k tables it adopted");
	EXPECT_COUNTER_GE("cow_pte_break_fault", b0, k);

	ACT(0, .op = A_VERIFY, .first = 0, .n = NPMD);
	EXPECT_EQ(-1, verify_tables(0, NPMD, false));
	EXPECT_SAME(p0, stat_of(0), "owner at the end");
}

/*
 * mlock of shared tables.  Two children, one forked plainly (the stock
 * baseline) and one CoW, each mlock two tables of their own with
 * MLOCK_ONFAULT (different ones: a folio's mlock count covers every
 * locked VMA mapping it).  The CoW child's mlock breaks both tables
 * (cow_pte_break_other): reclaim and migration change a shared table
 * through the owner's VMA, which would not see the child's VM_LOCKED.
 * Every page is mlocked, and stays so when the owner writes a page in
 * each table and when both children mprotect their tables, as in the
 * plain child.  (Before mlock broke the tables, this case checked that
 * copying the orphans the owner's writes left kept PG_mlocked, which the
 * first version of the break lost on all but one page of 1024.)
 */
TEST_F(acct, mlock_breaks_shared_tables)
{
	const long n = 2, npg = n * PMD_PAGES;
	const long first[2] = { 2, 6 };
	const char *what[2] = { "plain", "CoW" };
	long m[2][3], b[2], b0;

	if (geteuid())
		SKIP(return, "reading PFNs and /proc/kpageflags needs root");
	SPAWN(0, 0);
	SPAWN(1, CLONE_COW_PTE);
	for (int s = 0; s < 2; s++) {
		b0 = vm("cow_pte_break_other");
		ACT(s, .op = A_MLOCK_ONFAULT, .first = first[s] * PMD_PAGES, .n = npg);
		b[s] = vm("cow_pte_break_other") - b0;
		m[s][0] = kpageflag_pages(PID(s), table(first[s]), npg, KPF_MLOCKED);
		if (m[s][0] < 0)
			SKIP(return, "cannot read PFNs or /proc/kpageflags");
	}
	/* the CoW child's mlock broke both of its tables */
	EXPECT_LE(n, b[1]);
	for (int s = 0; s < 2; s++)
		touch_tables(first[s], n, 5, T_MARK);
	for (int s = 0; s < 2; s++)
		m[s][1] = kpageflag_pages(PID(s), table(first[s]), npg, KPF_MLOCKED);
	for (int s = 0; s < 2; s++) {
		ACT(s, .op = A_MPROTECT, .first = first[s] * PMD_PAGES, .n = npg);
		m[s][2] = kpageflag_pages(PID(s), table(first[s]), npg, KPF_MLOCKED);
	}
	for (int s = 0; s < 2; s++) {
		TH_LOG("%s child: %ld, %ld, %ld of %ld pages mlocked (after mlock2, owner's writes, mprotect); %ld breaks at mlock",
		       what[s], m[s][0], m[s][1], m[s][2], npg, b[s]);
		for (int k = 0; k < 3; k++)
			EXPECT_EQ(npg, m[s][k]);
		ACT(s, .op = A_VERIFY, .first = first[s], .n = n);
	}
}

/*
 * A child that exits without touching anything drops all NPMD shared
 * tables without a copy; a second one breaks 4 tables and exits: the 12
 * still shared are dropped.  The parent, sole mapper of all 16, reuses
 * each on its next touch; its counters never change.
 */
TEST_F(acct, child_exit_drops_shared_tables)
{
	struct ms p0, p1, p2;
	long d0, r0;

	p0 = stat_of(0);
	SPAWN(0, CLONE_COW_PTE);
	d0 = vm("cow_pte_drop");
	ACT(0, .op = A_EXIT);
	EXPECT_COUNTER_GE("cow_pte_drop", d0, NPMD);
	EXPECT_SAME(p0, stat_of(0), "owner after the first child's exit");

	SPAWN(1, CLONE_COW_PTE);
	ACT(1, .op = A_TOUCH, .first = 2, .n = 2, .arg = 5);
	ACT(1, .op = A_TOUCH, .first = 6, .n = 2, .arg = 5);
	d0 = vm("cow_pte_drop");
	ACT(1, .op = A_EXIT);
	EXPECT_COUNTER_GE("cow_pte_drop", d0, NPMD - 4);
	p1 = stat_of(0);
	EXPECT_SAME(p0, p1, "owner after the second child's exit");

	r0 = vm("cow_pte_reuse");
	touch_tables(0, NPMD, 9, T_MARK);
	EXPECT_COUNTER_GE("cow_pte_reuse", r0, NPMD);
	p2 = stat_of(0);
	EXPECT_SAME(p0, p2, "owner after reusing all tables");
	EXPECT_EQ(-1, verify_tables(0, NPMD, false));
}

/*
 * The owner MADV_DONTNEEDs 4 whole tables: they are dropped without a copy,
 * the owner's RssAnon and VmPTE fall by their pages and 4 kB each, and the
 * child, which still sees the data, adopts the tables and is charged for
 * them, as a plain-fork child always is.  Its first write copies each one
 * (it is not their first owner) without a further charge.
 */
TEST_F(acct, owner_dontneed_hands_tables_to_child)
{
	struct ms p0, p1, c0, c1, c2, c3;
	long d0, b0, a0;

	SPAWN(0, CLONE_COW_PTE);
	p0 = stat_of(0);
	c0 = stat_of(PID(0));
	d0 = vm("cow_pte_drop");
	a0 = vm("cow_pte_adopt");
	ASSERT_EQ(0, madvise(table(8), 4 * PMD_SZ, MADV_DONTNEED));
	p1 = stat_of(0);
	EXPECT_NEAR(p0.rss - 4 * TABLE_KB, p1.rss, TOL_KB,
		    "owner RssAnon after dropping 4 tables");
	EXPECT_NEAR(p0.pte - 4 * PTE_KB, p1.pte, PTE_TOL_KB,
		    "owner VmPTE after dropping 4 tables");
	EXPECT_COUNTER_GE("cow_pte_drop", d0, 4);
	EXPECT_COUNTER_GE("cow_pte_adopt", a0, 4);
	c1 = stat_of(PID(0));
	EXPECT_NEAR(c0.rss + 4 * TABLE_KB, c1.rss, TOL_KB,
		    "child RssAnon after adopting 4 tables");
	EXPECT_NEAR(c0.pte + 4 * PTE_KB, c1.pte, PTE_TOL_KB,
		    "child VmPTE after adopting 4 tables");

	ACT(0, .op = A_VERIFY, .first = 0, .n = NPMD);
	c2 = stat_of(PID(0));
	EXPECT_SAME(c1, c2, "child after reading the adopted tables");

	b0 = vm("cow_pte_break_fault");
	ACT(0, .op = A_TOUCH, .first = 8, .n = 4, .arg = 17);
	c3 = stat_of(PID(0));
	EXPECT_SAME(c2, c3, "child after copying the 4 tables it adopted");
	EXPECT_COUNTER_GE("cow_pte_break_fault", b0, 4);
	ACT(0, .op = A_VERIFY, .first = 0, .n = NPMD);

	EXPECT_EQ(-1, verify_tables(0, 8, false));
	EXPECT_EQ(-1, verify_tables(8, 4, true));
	EXPECT_EQ(-1, verify_tables(12, 4, false));
}

/*
 * Partial operations on a shared table break it for the caller first: the
 * child (non-owner) is charged that table, and the right counters move.
 * MADV_COLD and MADV_PAGEOUT copy nothing: they leave alone the pages
 * another mm maps, as after a stock fork, and so the whole shared table.
 */
TEST_F(acct, partial_ops_break_for_caller)
{
	static const struct {
		const char *name;
		int op, arg;
		long tab, off, n;	/* table, first page in it, pages */
		long rss_kb;		/* expected RssAnon growth */
		long pte_kb;		/* expected VmPTE growth */
		const char *ctr[3];	/* one of these grows; none: no break */
	} ops[] = {
		{ "partial MADV_DONTNEED", A_MADV, MADV_DONTNEED, 1, 100, 3,
		  TABLE_KB - 3 * 4, PTE_KB,
		  { "cow_pte_break_zap" } },
		{ "MADV_FREE", A_MADV, MADV_FREE, 2, 0, PMD_PAGES,
		  TABLE_KB, PTE_KB, { "cow_pte_break_madvise" } },
		{ "MADV_PAGEOUT", A_MADV, MADV_PAGEOUT, 3, 0, PMD_PAGES,
		  0, 0, { NULL } },
		{ "MADV_COLD", A_MADV, MADV_COLD, 3, 0, PMD_PAGES,
		  0, 0, { NULL } },
		{ "partial mprotect", A_MPROTECT, 0, 4, 100, 3,
		  TABLE_KB, PTE_KB,
		  { "cow_pte_break_split", "cow_pte_break_mprotect" } },
		{ "partial munmap", A_MUNMAP, 0, 5, 100, 3,
		  TABLE_KB - 3 * 4, PTE_KB,
		  { "cow_pte_break_split", "cow_pte_break_zap" } },
		/* the moved pages stay charged; a new table at the target */
		{ "partial mremap", A_MREMAP, 0, 6, 100, 4,
		  TABLE_KB, 2 * PTE_KB,
		  { "cow_pte_break_split", "cow_pte_break_mremap",
		    "cow_pte_break_zap" } },
	};
	struct ms p0, c0, c1;

	SPAWN(0, CLONE_COW_PTE);
	p0 = stat_of(0);
	for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
		long before[3] = { 0, 0, 0 }, grew = 0, all = cow_pte_breaks();

		for (int j = 0; j < 3 && ops[i].ctr[j]; j++)
			before[j] = vm(ops[i].ctr[j]);
		c0 = stat_of(PID(0));
		ACT(0, .op = ops[i].op, .arg = ops[i].arg,
		    .first = ops[i].tab * PMD_PAGES + ops[i].off, .n = ops[i].n);
		c1 = stat_of(PID(0));
		for (int j = 0; j < 3 && ops[i].ctr[j]; j++)
			grew += vm(ops[i].ctr[j]) - before[j];
		EXPECT_NEAR(c0.rss + ops[i].rss_kb, c1.rss, TOL_KB, ops[i].name);
		EXPECT_NEAR(c0.pte + ops[i].pte_kb, c1.pte, PTE_TOL_KB, ops[i].name);
		if (!ops[i].ctr[0]) {
			EXPECT_EQ(all, cow_pte_breaks())
				TH_LOG("%s: a table was copied", ops[i].name);
			continue;
		}
		EXPECT_LE(1, grew) {
			TH_LOG("%s: no break counted in %s%s%s", ops[i].name,
			       ops[i].ctr[0], ops[i].ctr[1] ? "/" : "",
			       ops[i].ctr[1] ? ops[i].ctr[1] : "");
		}
	}
	EXPECT_SAME(p0, stat_of(0), "owner");
	EXPECT_EQ(-1, verify_tables(0, NPMD, false));
	/* untouched tables of the child still shared and intact */
	ACT(0, .op = A_VERIFY, .first = 7, .n = NPMD - 7);
	ACT(0, .op = A_VERIFY, .first = 0, .n = 1);
}

/*
 * The owner exits while a child and a grandchild share its tables: the
 * owner drops them and one of the two adopts each, so that between them
 * they are charged the region once, as soon as the owner is gone (before,
 * nobody was until they touched it, and the OOM killer overlooked them).
 * Each then touches everything: both are charged the whole region, like
 * plain-fork children, and see their own data.
 */
TEST_F(acct, owner_exits_first)
{
	struct ms pp, c0, g0, c1, g1, c2, g2;
	long s0, d0, a0;

	/* the owner: a plain fork of the test process, with its own pages */
	SPAWN(0, 0);
	ACT(0, .op = A_TOUCH_ALL, .first = 0, .n = NPMD);
	pp = stat_of(PID(0));
	ASSERT_LE(REGION_KB - TOL_KB, pp.rss);
	s0 = vm("cow_pte_shared");
	ACT(0, .op = A_FORK, .child = 1, .flags = CLONE_COW_PTE);
	ACT(1, .op = A_FORK, .child = 2, .flags = CLONE_COW_PTE);
	EXPECT_COUNTER_GE("cow_pte_shared", s0, 2 * NPMD);
	c0 = stat_of(PID(1));
	g0 = stat_of(PID(2));
	EXPECT_GT(REGION_KB - TOL_KB, c0.rss);
	EXPECT_GT(REGION_KB - TOL_KB, g0.rss);

	d0 = vm("cow_pte_drop");
	a0 = vm("cow_pte_adopt");
	ACT(0, .op = A_EXIT);
	EXPECT_COUNTER_GE("cow_pte_drop", d0, NPMD);
	EXPECT_COUNTER_GE("cow_pte_adopt", a0, NPMD);
	c1 = stat_of(PID(1));
	g1 = stat_of(PID(2));
	TH_LOG("after the owner's exit: child %ld kB, grandchild %ld kB RssAnon",
	       c1.rss, g1.rss);
	EXPECT_NEAR(c0.rss + g0.rss + REGION_KB, c1.rss + g1.rss, 2 * TOL_KB,
		    "child + grandchild RssAnon after the owner's exit");
	EXPECT_NEAR(c0.pte + g0.pte + NPMD * PTE_KB, c1.pte + g1.pte,
		    2 * PTE_TOL_KB,
		    "child + grandchild VmPTE after the owner's exit");

	ACT(1, .op = A_TOUCH_ALL, .first = 0, .n = NPMD);
	c2 = stat_of(PID(1));
	EXPECT_NEAR(c0.rss + REGION_KB, c2.rss, TOL_KB, "child RssAnon after touching all");
	EXPECT_NEAR(c0.pte + NPMD * PTE_KB, c2.pte, PTE_TOL_KB,
		    "child VmPTE after touching all");

	ACT(2, .op = A_TOUCH_ALL, .first = 0, .n = NPMD);
	g2 = stat_of(PID(2));
	EXPECT_NEAR(g0.rss + REGION_KB, g2.rss, TOL_KB,
		    "grandchild RssAnon after touching all");
	EXPECT_NEAR(g0.pte + NPMD * PTE_KB, g2.pte, PTE_TOL_KB,
		    "grandchild VmPTE after touching all");

	ACT(1, .op = A_VERIFY, .first = 0, .n = NPMD);
	ACT(2, .op = A_VERIFY, .first = 0, .n = NPMD);
	ACT(2, .op = A_EXIT);
	ACT(1, .op = A_EXIT);
	EXPECT_EQ(-1, verify_tables(0, NPMD, false));
}

/*
 * A pin marks the PTE table it is taken through, and a CoW fork copies a
 * marked table only while a page in it may still be pinned.  An io_uring
 * fixed buffer in one table of the region keeps that table copied at every
 * fork (the child gets its own copy of the pinned page, as from fork());
 * an O_DIRECT read pins only while it runs, so its table is shared.  Every
 * other table of the region is shared either way.
 */
#define PIN_TABLE	5

FIXTURE(pinned) {
	struct actx x;
};

FIXTURE_VARIANT(pinned) {
	int pin_op;
	long copied;		/* tables the fork copies for the pin */
};

FIXTURE_VARIANT_ADD(pinned, io_uring) { A_PIN_URING, 1 };
FIXTURE_VARIANT_ADD(pinned, o_direct) { A_PIN_ODIRECT, 0 };

FIXTURE_SETUP(pinned)
{
	actx_setup(_metadata, &self->x);
}

FIXTURE_TEARDOWN(pinned)
{
	actx_teardown(_metadata, &self->x);
}

TEST_F(pinned, shares_tables_without_pins)
{
	const long copied_kb = variant->copied * TABLE_KB;
	long s0, s1, p0, p1;
	struct ms y0;

	SPAWN(0, 0);
	ACT(0, .op = A_TOUCH_ALL, .first = 0, .n = NPMD);
	ACT(0, .op = variant->pin_op, .first = PIN_TABLE * PMD_PAGES + 7);
	s0 = vm("cow_pte_shared");
	p0 = vm("cow_pte_pinned");
	ACT(0, .op = A_FORK, .child = 1, .flags = CLONE_COW_PTE);
	s1 = vm("cow_pte_shared");
	p1 = vm("cow_pte_pinned");
	EXPECT_EQ(variant->copied, p1 - p0);
	EXPECT_LE(s0 + NPMD - variant->copied, s1) {
		TH_LOG("the fork shared %ld tables, want %ld of the region",
		       s1 - s0, NPMD - variant->copied);
	}
	/* The child is charged for what it got a copy of, and nothing else. */
	y0 = stat_of(PID(1));
	EXPECT_NEAR(copied_kb, y0.rss, TOL_KB, "child RssAnon after the fork");

	/* Each side keeps its own data, the pinned page included. */
	ACT(1, .op = A_VERIFY, .first = 0, .n = NPMD);
	ACT(1, .op = A_TOUCH_ALL, .first = 0, .n = NPMD);
	ACT(0, .op = A_VERIFY, .first = 0, .n = NPMD);
	ACT(0, .op = A_TOUCH_ALL, .first = 0, .n = NPMD);
	ACT(1, .op = A_VERIFY, .first = 0, .n = NPMD);

	/* A second fork finds the same: the mark stays while the pin does. */
	p0 = vm("cow_pte_pinned");
	ACT(0, .op = A_FORK, .child = 2, .flags = CLONE_COW_PTE);
	p1 = vm("cow_pte_pinned");
	EXPECT_EQ(variant->copied, p1 - p0);
	ACT(2, .op = A_VERIFY, .first = 0, .n = NPMD);
	ACT(2, .op = A_EXIT);
	ACT(1, .op = A_EXIT);
}

TEST_HARNESS_MAIN
