// SPDX-License-Identifier: GPL-2.0
/*
 * cow_pte_torture - forks that race other threads changing VMAs and PTEs,
 * and children that write while the parent keeps changing them.
 *
 * The shape of the lost write of issue 11, item 4: in a multithreaded
 * process, "churn" threads munmap/mmap, MADV_DONTNEED, MADV_FREE,
 * MADV_PAGEOUT, MADV_COLD, mprotect, mremap (PMD-aligned and not),
 * move_pages and write their ranges while the main thread forks with
 * clone3(CLONE_COW_PTE) (or a plain clone3, --fork plain, the control)
 * and a "writer" thread keeps rewriting its own range without any lock,
 * so that writes race the fork itself.  Each child checks its snapshot,
 * writes its own pattern into pages of every thread's range, pages some of
 * them out, migrates them, zaps some, and reads everything back several
 * times while the parent goes on changing the same ranges and tables.
 *
 * What is checked, exactly:
 *  - Each churn thread keeps a model of its range (per page: unmapped, a
 *    tag or zero, lazily freed, read-only) and checks the pages an
 *    operation touched, and now and then its whole range, in the parent.
 *  - The model the children see is a published copy.  An operation either
 *    runs under the read side of a rwlock whose write side the main thread
 *    holds across fork(), or marks its pages "uncertain" in the published
 *    copy before it starts and publishes the result after: so at any fork
 *    the published copy is exact for every page no operation is changing.
 *    A child requires exactly that content (an unmapped page must fault),
 *    and for an uncertain page a valid tag, zero, or a fault.
 *  - The writer's pages must always hold a valid tag of the writer in the
 *    child (never zero: the writer's range is never unmapped or zapped),
 *    and each write reads back in the parent.
 *  - A child's own writes must read back, every round, and the rest of its
 *    snapshot must not change under it.
 *
 * A page's content is its first and last word: a tag and its complement.
 * Failures name the page, the expected and the seen words.  Kernel reports
 * are the console's to catch (tools/scan-console).
 *
 * Usage: cow_pte_torture [--time S] [--fork cow|plain] [--threads N]
 *                        [--children N] [--seed N]
 * TAP output: one case, "torture.<fork>"; the last line is
 * "torture: N forks, N failures, ...".
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <time.h>

#include "cow_pte_util.h"
#include "kselftest.h"

#define AREA_POS	5			/* 2 MiB positions per churn area */
#define AREA_PAGES	(AREA_POS * PMD_PAGES)
#define AREA_SZ		(AREA_PAGES * PG)
#define WRITER_PAGES	(2 * PMD_PAGES)
#define MAX_THREADS	6
#define OWN_PAGES	64			/* a child's own writes */
#define MAX_LIVE	8
#define AREAS_BASE	0x300000000000UL

#define MAGIC_CHURN	0xc0feULL		/* tag >> 48 */
#define MAGIC_WRITER	0xd00dULL
#define MAGIC_CHILD	0xc41dULL


/* Page states of a model */
enum { ST_UNMAPPED, ST_DATA, ST_FREED, ST_UNCERTAIN };

struct model {
	uint64_t val[AREA_PAGES];	/* DATA: the tag, 0 for zero; FREED: tag or zero */
	uint8_t st[AREA_PAGES];
	uint8_t ro[AREA_PAGES];
};

struct churn {
	int id;
	pthread_t thread;
	char *base;
	uint64_t rng;
	uint64_t seq;
	struct model exact;		/* this thread's own view, always exact */
	struct model pub;		/* what a child may rely on */
	long ops[16];
};

enum op { OP_FILL, OP_DONTNEED, OP_FREE, OP_PAGEOUT, OP_COLD, OP_MPROTECT,
	  OP_MUNMAP, OP_MMAP, OP_MREMAP, OP_MOVE_PAGES, OP_VERIFY, NR_OPS };
static const char *const op_names[NR_OPS] = {
	"fill", "dontneed", "free", "pageout", "cold", "mprotect",
	"munmap", "mmap", "mremap", "move_pages", "verify",
};
static const int op_weight[NR_OPS] = { 8, 3, 2, 2, 2, 2, 1, 2, 3, 1, 1 };

/* Shared with the children (MAP_SHARED): the first failure wins. */
struct mailbox {
	atomic_int failed;
	char msg[512];
	/*
	 * The writer's generation right after fork N returned, for child N:
	 * an upper bound of what its snapshot may hold (a higher one is a
	 * later write of the parent showing in the child).
	 */
	atomic_long posted;
	unsigned long gen_after[256];
};

static struct {
	int secs;
	bool cow;
	int threads;
	int children;
	uint64_t seed;
	bool numa;
	int move_flag;
} opt = { .secs = 60, .cow = true, .threads = 3, .children = 3 };

static struct churn churn[MAX_THREADS];
static char *writer_base;
static atomic_ulong writer_gen;
static pthread_rwlock_t fork_lock;
static struct mailbox *mbox;
static atomic_bool stop;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;
	int zero = 0;

	if (atomic_compare_exchange_strong(&mbox->failed, &zero, 1)) {
		va_start(ap, fmt);
		vsnprintf(mbox->msg, sizeof(mbox->msg), fmt, ap);
		va_end(ap);
	}
	atomic_store(&stop, true);
}

static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static long rnd_below(uint64_t *s, long n)
{
	return (long)(rnd(s) % (uint64_t)n);
}

static inline void page_write(char *p, uint64_t tag)
{
	*(volatile uint64_t *)p = tag;
	*(volatile uint64_t *)(p + PG - 8) = ~tag;
}

static inline void page_read(const char *p, uint64_t *w0, uint64_t *wl)
{
	*w0 = *(volatile const uint64_t *)p;
	*wl = *(volatile const uint64_t *)(p + PG - 8);
}

/*
 * Content that a page some thread may be writing may hold: each of its two
 * words zero or (the complement of) a tag of @magic, not necessarily the
 * same one, since a fork can copy the page between the two stores.
 */
static bool valid_content(uint64_t w0, uint64_t wl, uint64_t magic)
{
	return (!w0 || (w0 >> 48) == magic) && (!wl || (~wl >> 48) == magic);
}

/* Does the page hold model value v (a tag, or 0 for a zero page)? */
static bool holds(uint64_t w0, uint64_t wl, uint64_t v)
{
	return v ? (w0 == v && wl == ~v) : (!w0 && !wl);
}

/* ---- churn threads: operations on their own area, with the model ---- */

struct range {
	long first, n;
};

static bool range_mapped(const struct model *m, struct range r)
{
	for (long i = r.first; i < r.first + r.n; i++)
		if (m->st[i] == ST_UNMAPPED)
			return false;
	return true;
}

static bool range_same_prot(const struct model *m, struct range r)
{
	for (long i = r.first + 1; i < r.first + r.n; i++)
		if (m->ro[i] != m->ro[r.first])
			return false;
	return true;
}

static struct range pick_range(struct churn *c)
{
	long kind = rnd_below(&c->rng, 100);
	struct range r;

	if (kind < 15) {		/* whole 2 MiB positions */
		r.first = rnd_below(&c->rng, AREA_POS) * PMD_PAGES;
		r.n = PMD_PAGES * (1 + rnd_below(&c->rng, 2));
	} else {
		r.first = rnd_below(&c->rng, AREA_PAGES);
		r.n = kind < 60 ? 1 + rnd_below(&c->rng, 8) :
				  9 + rnd_below(&c->rng, 256);
	}
	if (r.first + r.n > AREA_PAGES)
		r.n = AREA_PAGES - r.first;
	return r;
}

/* Check pages of the exact model in the parent (lazily freed: tag or zero). */
static void verify(struct churn *c, struct range r, const char *after)
{
	const struct model *m = &c->exact;

	for (long i = r.first; i < r.first + r.n && !atomic_load(&stop); i++) {
		char *p = c->base + i * PG;
		uint64_t w0, wl;

		if (m->st[i] == ST_UNMAPPED) {
			unsigned char vec;

			if (mincore(p, PG, &vec) == 0 || errno != ENOMEM)
				fail("parent thread %d: page %ld (%p) mapped, want unmapped, after %s",
				     c->id, i, p, after);
			continue;
		}
		page_read(p, &w0, &wl);
		if (holds(w0, wl, m->val[i]) ||
		    (m->st[i] == ST_FREED && holds(w0, wl, 0)))
			continue;
		fail("parent thread %d: page %ld (%p) seen=%#018llx/%#018llx want=%#018llx%s, after %s",
		     c->id, i, p, (unsigned long long)w0, (unsigned long long)wl,
		     (unsigned long long)m->val[i],
		     m->st[i] == ST_FREED ? " or zero (freed)" : "", after);
	}
}

static void set_range(struct model *m, struct range r, int st, uint64_t val, int ro)
{
	for (long i = r.first; i < r.first + r.n; i++) {
		m->st[i] = st;
		m->val[i] = val;
		if (ro >= 0)
			m->ro[i] = ro;
	}
}

static void publish(struct churn *c, const struct range *r, int nr, bool uncertain)
{
	for (int k = 0; k < nr; k++) {
		if (uncertain) {
			memset(c->pub.st + r[k].first, ST_UNCERTAIN, r[k].n);
			continue;
		}
		memcpy(c->pub.st + r[k].first, c->exact.st + r[k].first, r[k].n);
		memcpy(c->pub.ro + r[k].first, c->exact.ro + r[k].first, r[k].n);
		memcpy(c->pub.val + r[k].first, c->exact.val + r[k].first,
		       r[k].n * sizeof(uint64_t));
	}
}

/*
 * Run one operation on ranges r[0] (and r[1] for mremap's destination);
 * returns the number of ranges it changes (0: skipped).
 */
static int run_op(struct churn *c, enum op op, struct range *r)
{
	struct model *m = &c->exact;
	char *p = c->base + r[0].first * PG;
	size_t len = r[0].n * PG;
	int adv;

	switch (op) {
	case OP_FILL:
		for (long i = r[0].first; i < r[0].first + r[0].n; i++) {
			uint64_t tag;

			if (m->st[i] == ST_UNMAPPED || m->ro[i])
				continue;
			tag = MAGIC_CHURN << 48 | (uint64_t)c->id << 40 | ++c->seq;
			page_write(c->base + i * PG, tag);
			m->st[i] = ST_DATA;
			m->val[i] = tag;
		}
		return 1;
	case OP_DONTNEED:
	case OP_FREE:
	case OP_PAGEOUT:
	case OP_COLD:
		adv = op == OP_DONTNEED ? MADV_DONTNEED : op == OP_FREE ?
		      MADV_FREE : op == OP_PAGEOUT ? MADV_PAGEOUT : MADV_COLD;
		if (madvise(p, len, adv)) {
			fail("parent thread %d: madvise(%p, %zu, %s): %s", c->id,
			     p, len, op_names[op], strerror(errno));
			return 0;
		}
		for (long i = r[0].first; i < r[0].first + r[0].n; i++) {
			if (op == OP_DONTNEED) {
				m->st[i] = ST_DATA;
				m->val[i] = 0;
			} else if (op == OP_FREE && m->val[i]) {
				m->st[i] = ST_FREED;
			}
		}
		return 1;
	case OP_MPROTECT:
		adv = rnd_below(&c->rng, 2);
		if (mprotect(p, len, adv ? PROT_READ : PROT_READ | PROT_WRITE)) {
			fail("parent thread %d: mprotect(%p, %zu): %s", c->id, p,
			     len, strerror(errno));
			return 0;
		}
		for (long i = r[0].first; i < r[0].first + r[0].n; i++)
			m->ro[i] = adv;
		return 1;
	case OP_MUNMAP:
		if (munmap(p, len)) {
			fail("parent thread %d: munmap(%p, %zu): %s", c->id, p,
			     len, strerror(errno));
			return 0;
		}
		set_range(m, r[0], ST_UNMAPPED, 0, 0);
		return 1;
	case OP_MMAP:
		if (mmap(p, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != p) {
			fail("parent thread %d: mmap(%p, %zu, MAP_FIXED): %s",
			     c->id, p, len, strerror(errno));
			return 0;
		}
		set_range(m, r[0], ST_DATA, 0, 0);
		return 1;
	case OP_MREMAP: {
		char *dst = c->base + r[1].first * PG;
		struct model save;

		if (mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst) == dst) {
			/* via a copy: source and destination may overlap in index */
			memcpy(save.st, m->st + r[0].first, r[0].n);
			memcpy(save.ro, m->ro + r[0].first, r[0].n);
			memcpy(save.val, m->val + r[0].first, r[0].n * 8);
			set_range(m, r[0], ST_UNMAPPED, 0, 0);
			memcpy(m->st + r[1].first, save.st, r[0].n);
			memcpy(m->ro + r[1].first, save.ro, r[0].n);
			memcpy(m->val + r[1].first, save.val, r[0].n * 8);
			return 2;
		}
		/*
		 * The source spans VMAs that did not merge (EFAULT): mremap
		 * unmapped the destination before it looked at the source.
		 */
		if (errno != EFAULT) {
			fail("parent thread %d: mremap(%p, %zu, -> %p): %s",
			     c->id, p, len, dst, strerror(errno));
			return 0;
		}
		set_range(m, r[1], ST_UNMAPPED, 0, 0);
		return 2;
	}
	case OP_MOVE_PAGES: {
		void *pages[256];
		int nodes[256], status[256];
		long n = r[0].n > 256 ? 256 : r[0].n, ret;

		if (!opt.numa)
			return 0;
		for (long i = 0; i < n; i++) {
			pages[i] = p + i * PG;
			nodes[i] = (i + c->seq) & 1;
		}
		ret = syscall(SYS_move_pages, 0, n, pages, nodes, status,
			      opt.move_flag);
		if (ret < 0 && errno != ENOMEM) {
			fail("parent thread %d: move_pages(%p, %ld): %s", c->id,
			     p, n, strerror(errno));
			return 0;
		}
		return 1;
	}
	default:
		return 0;
	}
}

/* Choose an operation and its ranges; false if it does not apply here. */
static bool plan_op(struct churn *c, enum op op, struct range *r)
{
	r[0] = pick_range(c);
	switch (op) {
	case OP_FILL:
	case OP_MUNMAP:
	case OP_MMAP:
		return true;
	case OP_MREMAP:
		if (!range_mapped(&c->exact, r[0]) ||
		    !range_same_prot(&c->exact, r[0]))
			return false;
		for (int tries = 0; tries < 8; tries++) {
			r[1].n = r[0].n;
			if (r[0].n % PMD_PAGES == 0)	/* keep the PMD phase */
				r[1].first = rnd_below(&c->rng, AREA_POS) * PMD_PAGES +
					     r[0].first % PMD_PAGES;
			else
				r[1].first = rnd_below(&c->rng, AREA_PAGES);
			if (r[1].first + r[1].n <= AREA_PAGES &&
			    (r[1].first >= r[0].first + r[0].n ||
			     r[1].first + r[1].n <= r[0].first))
				return true;
		}
		return false;
	case OP_VERIFY:
		r[0].first = 0;
		r[0].n = AREA_PAGES;
		return true;
	default:
		return range_mapped(&c->exact, r[0]);
	}
}

static enum op pick_op(struct churn *c)
{
	int total = 0, x;

	for (int i = 0; i < NR_OPS; i++)
		total += op_weight[i];
	x = rnd_below(&c->rng, total);
	for (int i = 0; i < NR_OPS; i++) {
		x -= op_weight[i];
		if (x < 0)
			return i;
	}
	return OP_FILL;
}

static void *churn_main(void *arg)
{
	struct churn *c = arg;

	while (!atomic_load(&stop)) {
		enum op op = pick_op(c);
		struct range r[2];
		bool locked = rnd_below(&c->rng, 2);
		int nr;

		if (!plan_op(c, op, r))
			continue;
		if (op == OP_VERIFY) {
			verify(c, r[0], "a full check");
			c->ops[op]++;
			continue;
		}
		/*
		 * Either no fork sees the operation half done (locked), or
		 * the pages it may change are published as uncertain first.
		 */
		pthread_rwlock_rdlock(&fork_lock);
		if (!locked) {
			publish(c, r, op == OP_MREMAP ? 2 : 1, true);
			pthread_rwlock_unlock(&fork_lock);
		}
		nr = run_op(c, op, r);
		if (!locked)
			pthread_rwlock_rdlock(&fork_lock);
		publish(c, r, op == OP_MREMAP ? 2 : 1, false);
		pthread_rwlock_unlock(&fork_lock);
		if (!nr)
			continue;
		c->ops[op]++;
		for (int k = 0; k < nr; k++)
			verify(c, r[k], op_names[op]);
	}
	return NULL;
}

/* ---- the writer: rewrites its range without any lock, racing forks ---- */

static void *writer_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		unsigned long gen = atomic_fetch_add(&writer_gen, 1) + 1;

		for (long i = 0; i < WRITER_PAGES && !atomic_load(&stop); i++) {
			char *p = writer_base + i * PG;
			uint64_t tag = MAGIC_WRITER << 48 | (uint64_t)gen << 16 | i;
			uint64_t w0, wl;

			page_write(p, tag);
			page_read(p, &w0, &wl);
			if (!holds(w0, wl, tag))
				fail("parent writer: page %ld (%p) seen=%#018llx/%#018llx right after writing %#018llx",
				     i, p, (unsigned long long)w0,
				     (unsigned long long)wl, (unsigned long long)tag);
			/* leave the CPUs to the forks and the children */
			if (i % 64 == 63)
				usleep(100);
		}
	}
	return NULL;
}

/* ---- children ---- */

struct own {
	char *p;
	uint64_t tag;
};

static int child_no;

/* Read a page that may be unmapped: 0 if it faulted, 1 if read. */
static int probe(const char *p, uint64_t *w0, uint64_t *wl)
{
	if (sigsetjmp(fault_jmp, 0))
		return 0;
	fault_armed = 1;
	page_read(p, w0, wl);
	fault_armed = 0;
	return 1;
}

/* Write a page that may be read-only or unmapped: false if it faulted. */
static bool try_write(char *p, uint64_t tag)
{
	if (sigsetjmp(fault_jmp, 0))
		return false;
	fault_armed = 1;
	page_write(p, tag);
	fault_armed = 0;
	return true;
}

static int child_fail(const char *what, int t, long i, const char *p,
		      uint64_t w0, uint64_t wl, uint64_t want, int round)
{
	fail("child %d round %d: %s: thread %d page %ld (%p) seen=%#018llx/%#018llx want=%#018llx",
	     child_no, round, what, t, i, p, (unsigned long long)w0,
	     (unsigned long long)wl, (unsigned long long)want);
	return 1;
}

/* The child's snapshot of every area against the published models. */
static int child_check_all(unsigned long wgen_max, int round)
{
	uint64_t w0, wl;

	for (int t = 0; t < opt.threads; t++) {
		const struct model *m = &churn[t].pub;

		for (long i = 0; i < AREA_PAGES; i++) {
			const char *p = churn[t].base + i * PG;
			int mapped = probe(p, &w0, &wl);

			switch (m->st[i]) {
			case ST_UNMAPPED:
				if (mapped)
					return child_fail("unmapped page readable", t, i, p, w0, wl, 0, round);
				break;
			case ST_DATA:
			case ST_FREED:
				if (!mapped)
					return child_fail("page faulted", t, i, p, 0, 0, m->val[i], round);
				if (holds(w0, wl, m->val[i]) ||
				    (m->st[i] == ST_FREED && holds(w0, wl, 0)))
					break;
				return child_fail(m->st[i] == ST_DATA ? "snapshot wrong" :
						  "freed page neither old nor zero",
						  t, i, p, w0, wl, m->val[i], round);
			default:
				if (mapped && !valid_content(w0, wl, MAGIC_CHURN))
					return child_fail("uncertain page holds garbage", t, i, p, w0, wl, 0, round);
			}
		}
	}
	for (long i = 0; i < WRITER_PAGES; i++) {
		const char *p = writer_base + i * PG;
		unsigned long gen;

		page_read(p, &w0, &wl);
		if ((w0 >> 48) == MAGIC_CHILD && wl == ~w0 &&
		    ((w0 >> 24) & 0xffffff) == (uint64_t)(child_no & 0xffffff))
			continue;	/* our own: checked by the caller */
		/* the fork may have copied it between the writer's two stores */
		gen = (w0 >> 16) & 0xffffffffUL;
		if ((w0 >> 48) != MAGIC_WRITER || (w0 & 0xffff) != (uint64_t)i ||
		    (wl != ~w0 && (!gen || wl != ~(w0 - (1UL << 16)))))
			return child_fail("writer's page wrong", -1, i, p, w0, wl, 0, round);
		if (gen > wgen_max)
			return child_fail("writer's page from after the fork", -1, i, p,
					  w0, wl, wgen_max, round);
	}
	return 0;
}

/* Mark a child's own write in the model it checks against. */
static void child_model_own(char *p, uint64_t tag)
{
	for (int t = 0; t < opt.threads; t++) {
		struct churn *c = &churn[t];

		if (p >= c->base && p < c->base + AREA_SZ) {
			long i = (p - c->base) / PG;

			c->pub.st[i] = ST_DATA;
			c->pub.val[i] = tag;
		}
	}
}

/*
 * Pages the child may write: known at the fork (lazily freed ones too: a
 * write must make them the child's for good) and writable.
 */
static char *child_pick(uint64_t *rng)
{
	for (int tries = 0; tries < 64; tries++) {
		int t = rnd_below(rng, opt.threads + 1);
		long i;

		if (t == opt.threads)
			return writer_base + rnd_below(rng, WRITER_PAGES) * PG;
		i = rnd_below(rng, AREA_PAGES);
		if ((churn[t].pub.st[i] == ST_DATA ||
		     churn[t].pub.st[i] == ST_FREED) && !churn[t].pub.ro[i])
			return churn[t].base + i * PG;
	}
	return NULL;
}

/*
 * MADV_DONTNEED of a range the child knows exactly (our own pages in it
 * included: they must read zero until written again).
 */
static void child_zap(uint64_t *rng, struct own *own, int nown)
{
	struct churn *c = &churn[rnd_below(rng, opt.threads)];
	long first = rnd_below(rng, AREA_PAGES), n = 1 + rnd_below(rng, 64);
	char *p = c->base + first * PG;

	if (first + n > AREA_PAGES)
		n = AREA_PAGES - first;
	for (long i = first; i < first + n; i++)
		if (c->pub.st[i] != ST_DATA && c->pub.st[i] != ST_FREED)
			return;
	if (madvise(p, n * PG, MADV_DONTNEED)) {
		fail("child %d: madvise(%p, %ld pages, DONTNEED): %s", child_no,
		     p, n, strerror(errno));
		return;
	}
	set_range(&c->pub, (struct range){ first, n }, ST_DATA, 0, -1);
	for (int k = 0; k < nown; k++)
		if (own[k].p >= p && own[k].p < p + n * PG)
			own[k].tag = 0;
}

static int child_main(uint64_t seed)
{
	struct own own[OWN_PAGES];
	uint64_t rng = seed | 1;
	int nown = 0, rounds = 4 + rnd_below(&rng, 5);
	unsigned long wgen_max;

	catch_faults();
	while (atomic_load(&mbox->posted) < child_no)
		sched_yield();
	wgen_max = mbox->gen_after[child_no % 256];
	if (child_check_all(wgen_max, 0))
		return 1;
	for (int k = 0; k < OWN_PAGES; k++) {
		char *p = child_pick(&rng);
		bool dup = false;

		for (int j = 0; j < nown; j++)
			dup |= own[j].p == p;
		if (p && !dup)
			own[nown++].p = p;
	}
	for (int round = 1; round <= rounds; round++) {
		long action = rnd_below(&rng, 8);

		for (int k = 0; k < nown; k++) {
			uint64_t tag = MAGIC_CHILD << 48 |
				       (uint64_t)(child_no & 0xffffff) << 24 |
				       round << 16 | k;

			if (round > 1 && rnd_below(&rng, 2))
				continue;
			if (!try_write(own[k].p, tag))
				return child_fail("own page not writable", -1, k,
						  own[k].p, 0, 0, tag, round);
			own[k].tag = tag;
			child_model_own(own[k].p, tag);
		}
		if (atomic_load(&mbox->failed))
			return 1;
		switch (action) {
		case 0:
		case 1:
			for (int k = 0; k < nown; k++)
				madvise(own[k].p, PG, action ? MADV_COLD : MADV_PAGEOUT);
			break;
		case 2:
			if (opt.numa) {
				void *pages[OWN_PAGES];
				int nodes[OWN_PAGES], status[OWN_PAGES];

				for (int k = 0; k < nown; k++) {
					pages[k] = own[k].p;
					nodes[k] = (k + round) & 1;
				}
				syscall(SYS_move_pages, 0, nown, pages, nodes,
					status, opt.move_flag);
			}
			break;
		case 3:
			usleep(1000 + rnd_below(&rng, 4000));
			break;
		case 4:
			child_zap(&rng, own, nown);
			break;
		default:
			sched_yield();
		}
		for (int k = 0; k < nown; k++) {
			uint64_t w0, wl;

			page_read(own[k].p, &w0, &wl);
			if (!holds(w0, wl, own[k].tag))
				return child_fail("child-own-view-wrong", -1, k,
						  own[k].p, w0, wl, own[k].tag, round);
		}
		if (round == rounds)
			if (child_check_all(wgen_max, round))
				return 1;
	}
	return 0;
}

/* ---- main ---- */

static bool numa_ok(void)
{
	char buf[256];

	if (access("/sys/devices/system/node/node1", F_OK))
		return false;
	if (read_text("/sys/devices/system/node/has_memory", buf, sizeof(buf)) <= 0)
		return false;
	return strchr(buf, '-') || strchr(buf, ',');
}

static void setup_areas(void)
{
	/*
	 * Far below mmap_base, so that no mmap(NULL) of another thread (a
	 * thread stack, a malloc arena) ever lands in a hole an operation
	 * left.  Two guard PMDs between areas, odd areas 64 KiB after a PMD
	 * boundary.
	 */
	size_t stride = AREA_SZ + 2 * PMD_SZ;
	char *start = (char *)AREAS_BASE;
	for (int t = 0; t < opt.threads; t++) {
		struct churn *c = &churn[t];
		char *b = start + t * stride + (t & 1 ? 16 * PG : 0);

		c->id = t;
		c->rng = (opt.seed + 0x9e3779b97f4a7c15ULL * (t + 1)) | 1;
		c->base = mmap(b, AREA_SZ, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			       -1, 0);
		if (c->base != b)
			ksft_exit_fail_msg("mmap area %d: %s\n", t, strerror(errno));
		set_range(&c->exact, (struct range){ 0, AREA_PAGES }, ST_DATA, 0, 0);
		run_op(c, OP_FILL, (struct range[]){ { 0, AREA_PAGES } });
		publish(c, (struct range[]){ { 0, AREA_PAGES } }, 1, false);
	}
	writer_base = mmap(start + opt.threads * stride, WRITER_PAGES * PG,
			   PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (writer_base == MAP_FAILED)
		ksft_exit_fail_msg("mmap writer: %s\n", strerror(errno));
	for (long i = 0; i < WRITER_PAGES; i++)
		page_write(writer_base + i * PG, MAGIC_WRITER << 48 | i);
}

static void usage(void)
{
	fprintf(stderr, "usage: cow_pte_torture [--time S] [--fork cow|plain] [--threads 1-%d] [--children 1-%d] [--seed N]\n",
		MAX_THREADS, MAX_LIVE);
	exit(KSFT_FAIL);
}

static void parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "time", 1, NULL, 't' }, { "fork", 1, NULL, 'f' },
		{ "threads", 1, NULL, 'n' }, { "children", 1, NULL, 'c' },
		{ "seed", 1, NULL, 's' }, { NULL, 0, NULL, 0 },
	};
	int ch;

	opt.seed = (uint64_t)time(NULL) * 1000003 ^ getpid();
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 't': opt.secs = atoi(optarg); break;
		case 'f':
			if (strcmp(optarg, "cow") && strcmp(optarg, "plain"))
				usage();
			opt.cow = !strcmp(optarg, "cow");
			break;
		case 'n': opt.threads = atoi(optarg); break;
		case 'c': opt.children = atoi(optarg); break;
		case 's': opt.seed = strtoull(optarg, NULL, 0); break;
		default: usage();
		}
	}
	if (opt.secs < 1 || opt.threads < 1 || opt.threads > MAX_THREADS ||
	    opt.children < 1 || opt.children > MAX_LIVE || optind != argc)
		usage();
}

static long long ns_between(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1000000000LL + b->tv_nsec - a->tv_nsec;
}

int main(int argc, char **argv)
{
	long long lock_ns = 0, fork_ns = 0;
	pthread_rwlockattr_t attr;
	pthread_t writer;
	pid_t live[MAX_LIVE] = { 0 };
	struct timespec born[MAX_LIVE];
	long long life_ns = 0;
	long forks = 0, checked = 0, shared0, breaks0, shared, breaks = 0;
	const char *name;
	struct timespec t0, now;
	uint64_t rng;
	int nlive = 0;

	parse(argc, argv);
	name = opt.cow ? "torture.cow" : "torture.plain";
	setvbuf(stdout, NULL, _IOLBF, 0);
	ksft_print_header();
	ksft_set_plan(1);
	opt.numa = numa_ok();
	opt.move_flag = geteuid() ? MPOL_MF_MOVE : MPOL_MF_MOVE_ALL;
	printf("# seed %llu, %d s, fork %s, %d churn threads, %d children at a time, move_pages %s\n",
	       (unsigned long long)opt.seed, opt.secs, opt.cow ? "cow" : "plain",
	       opt.threads, opt.children, opt.numa ? "between nodes 0 and 1" :
	       "off (one NUMA node)");
	rng = opt.seed | 1;

	mbox = mmap(NULL, sizeof(*mbox), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mbox == MAP_FAILED)
		ksft_exit_fail_msg("mmap mailbox: %s\n", strerror(errno));
	setup_areas();

	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr,
				      PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&fork_lock, &attr);
	for (int t = 0; t < opt.threads; t++)
		pthread_create(&churn[t].thread, NULL, churn_main, &churn[t]);
	pthread_create(&writer, NULL, writer_main, NULL);

	shared0 = vmstat_get("cow_pte_shared");
	breaks0 = vmstat_get("cow_pte_break_fault");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int status;
		pid_t pid;

		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec >= opt.secs || atomic_load(&stop) ||
		    atomic_load(&mbox->failed))
			break;
		/* reap */
		for (int k = 0; k < nlive; k++) {
			pid = waitpid(live[k], &status, WNOHANG);
			if (pid == 0)
				continue;
			if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
				if (!atomic_load(&mbox->failed))
					fail("child pid %d: %s %d", live[k],
					     pid < 0 ? "waitpid failed" : WIFSIGNALED(status) ?
					     "killed by signal" : "exit", pid < 0 ? errno :
					     WIFSIGNALED(status) ? WTERMSIG(status) :
					     WEXITSTATUS(status));
			} else {
				checked++;
				clock_gettime(CLOCK_MONOTONIC, &now);
				life_ns += ns_between(&born[k], &now);
			}
			born[k] = born[nlive - 1];
			live[k--] = live[--nlive];
		}
		if (nlive >= opt.children) {
			usleep(1000);
			continue;
		}
		child_no = forks + 1;
		{
			uint64_t seed = rnd(&rng);

			struct timespec a, b, c;

			clock_gettime(CLOCK_MONOTONIC, &a);
			pthread_rwlock_wrlock(&fork_lock);
			clock_gettime(CLOCK_MONOTONIC, &b);
			pid = cowpt_fork(opt.cow ? CLONE_COW_PTE : 0);
			if (pid == 0)
				_exit(child_main(seed));
			clock_gettime(CLOCK_MONOTONIC, &c);
			lock_ns += ns_between(&a, &b);
			fork_ns += ns_between(&b, &c);
			mbox->gen_after[child_no % 256] = atomic_load(&writer_gen);
			atomic_store(&mbox->posted, child_no);
			pthread_rwlock_unlock(&fork_lock);
		}
		if (pid < 0) {
			fail("clone3(%s): %s", opt.cow ? "CLONE_COW_PTE" : "0",
			     strerror(errno));
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &born[nlive]);
		live[nlive++] = pid;
		forks++;
		if (forks % 200 == 0)
			printf("# %ld forks, %ld children checked\n", forks, checked);
		usleep(rnd_below(&rng, 5000));
	}
	atomic_store(&stop, true);
	for (int k = 0; k < nlive; k++) {
		int code = wait_code_timeout(live[k], 60);

		if (code == -1) {
			kill(live[k], SIGKILL);
			wait_code(live[k]);
			fail("child pid %d did not finish within 60 s", live[k]);
		} else if (code) {
			fail("child pid %d: exit code %d", live[k], code);
		} else {
			checked++;
		}
	}
	for (int t = 0; t < opt.threads; t++)
		pthread_join(churn[t].thread, NULL);
	pthread_join(writer, NULL);

	shared = vmstat_get("cow_pte_shared") - shared0;
	if (breaks0 >= 0)
		breaks = vmstat_get("cow_pte_break_fault") - breaks0;
	printf("# ops:");
	for (int op = 0; op < NR_OPS; op++) {
		long n = 0;

		for (int t = 0; t < opt.threads; t++)
			n += churn[t].ops[op];
		printf(" %s %ld", op_names[op], n);
	}
	printf("\n");
	if (forks)
		printf("# per fork: %.1f ms waiting for the operations in flight, %.1f ms in clone3; a child lives %.1f ms\n",
		       lock_ns / 1e6 / forks, fork_ns / 1e6 / forks,
		       checked ? life_ns / 1e6 / checked : 0.0);
	if (!atomic_load(&mbox->failed) && opt.cow && shared <= 0)
		fail("no PTE table was shared in %ld CoW forks (cow_pte_shared +%ld)",
		     forks, shared);
	if (atomic_load(&mbox->failed))
		printf("# FAIL: %s\n", mbox->msg);
	ksft_test_result(!atomic_load(&mbox->failed), "%s\n", name);
	printf("torture: %ld forks, %d failures, %ld children checked, shared %ld, fault breaks %ld, seed %llu\n",
	       forks, atomic_load(&mbox->failed), checked, shared, breaks,
	       (unsigned long long)opt.seed);
	return atomic_load(&mbox->failed) ? KSFT_FAIL : KSFT_PASS;
}
