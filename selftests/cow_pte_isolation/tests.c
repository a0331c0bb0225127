// SPDX-License-Identifier: GPL-2.0
/*
 * cow_pte_isolation - after clone3(CLONE_COW_PTE) no process ever sees
 * another one's writes, whatever path the write takes: CPU stores from any
 * of three generations in any order and across exits, a thread storing
 * while its process forks, GUP writes (process_vm_writev, /proc/PID/mem,
 * ptrace), O_DIRECT, vmsplice, io_uring fixed buffers, userfaultfd,
 * mprotect/mremap/munmap/madvise on whole, partial and straddling ranges,
 * THP and mTHP, swap and KSM.
 *
 * The memory: a private anonymous mapping that starts HEAD pages before a
 * PMD boundary, covers FULL whole PMDs (whose PTE tables are shared at
 * fork) and ends TAIL pages into the next PMD (its end tables are only
 * partly inside the VMA and so copied).  Every page holds a pattern made
 * of its page index and a generation in each of its 512 words, so a wrong
 * page or a stale generation is detected, not only a wrong byte.
 *
 * The test process drives "actors" (parent, child, grandchild: the parent
 * is a plain fork of the test process, the others CoW forks) one command
 * at a time (../actor.h; the actors' side is serve.c).
 * Each actor keeps a model of what each of its pages must hold (a
 * generation, zero, "old data or zero", or unmapped) and after every step
 * every live actor checks all its pages against its model.
 *
 * COWPT_TEST_FORK_FLAGS=0 in the environment makes every CoW fork a plain
 * clone3() fork: the same checks then validate the tests on a stock kernel
 * and give the stock baseline of each (tests.list runs it so, as
 * cowpt/isolation_plain_fork, in the opt-in boot).
 */
#include "kselftest_harness.h"
#include "isolation.h"

/* 3 shared tables and two partial (copied) ones: 1584 pages */
static const struct layout lay_default = { 32, 3, 16, MADV_NOHUGEPAGE };
/* 2 shared tables and two partial ones: 1072 pages */
static const struct layout lay_small = { 32, 2, 16, MADV_NOHUGEPAGE };


/* ------------------------------------------------------------------ */
/* Test side: the engine                                                */

struct knob {
	char path[160];
	char old[64];
};

struct eng {
	struct actors a;	/* parent, child, grandchild */
	int gen;		/* next generation to write */
	const char *ctx;	/* what the test is doing, for messages */
	struct reply r;		/* the last reply */
	struct knob knob[8];
	int nknobs;
};

static void eng_init(struct eng *e)
{
	const char *f = getenv("COWPT_TEST_FORK_FLAGS");

	memset(e, 0, sizeof(*e));
	actors_init(&e->a);
	e->gen = 2;
	if (f)
		cow_flags = strtoull(f, NULL, 0);
}

static int knob_set(struct eng *e, const char *path, const char *val)
{
	struct knob *k;
	char old[64];
	int ret;

	if (e->nknobs >= (int)ARRAY_SIZE(e->knob))
		return -ENOSPC;
	ret = bracket_word(path, old, sizeof(old));
	if (ret == -EINVAL) {
		ret = read_text(path, old, sizeof(old));
		old[strcspn(old, "\n")] = '\0';
	}
	if (ret < 0)
		return ret;
	ret = write_text(path, val);
	if (ret)
		return ret;
	k = &e->knob[e->nknobs++];
	snprintf(k->path, sizeof(k->path), "%s", path);
	snprintf(k->old, sizeof(k->old), "%s", old);
	return 0;
}

static void eng_fini(struct eng *e)
{
	actors_stop(&e->a);
	while (e->nknobs > 0) {
		struct knob *k = &e->knob[--e->nknobs];

		write_text(k->path, k->old);
	}
}

static int eng_wait(struct eng *e, int a)
{
	ssize_t n = actor_wait(&e->a, a, &e->r, sizeof(e->r));

	if (n < 0)
		return n;
	return n == sizeof(e->r) ? 0 : -EIO;
}

static int eng_start(struct __test_metadata *_metadata, struct eng *e,
		     const struct layout *lay)
{
	pid_t pid;

	L = *lay;
	pid = actor_spawn(&e->a, A_P, ACTOR_LIBC_FORK, actor_first, NULL);
	if (pid < 0) {
		TH_LOG("fork: %s", strerror(-pid));
		return -1;
	}
	if (eng_wait(e, A_P)) {
		TH_LOG("the parent actor did not start");
		return -1;
	}
	if (e->r.err) {
		TH_LOG("%s", e->r.msg);
		return -1;
	}
	return 0;
}

/*
 * Send one command to an actor and wait for its reply.  Returns 0, 1 if
 * the actor says the test cannot run here (skip), 2 if a CoW fork was
 * refused with EOPNOTSUPP, -1 on a failure (logged).
 */
static int eng_cmd(struct __test_metadata *_metadata, struct eng *e, int a,
		   const struct cmd *c)
{
	const char *ctx = e->ctx ? e->ctx : "";
	const char *sep = e->ctx ? ", during " : "";
	int ret;

	if (!e->a.alive[a]) {
		TH_LOG("%s: %s is not running%s%s", op_name[c->op], aname[a], sep, ctx);
		return -1;
	}
	if (c->op == OP_FORK) {
		ret = actor_fork_call(&e->a, a, c, sizeof(*c), &e->r,
				      sizeof(e->r), false);
	} else {
		ret = actor_send_cmd(&e->a, a, c, sizeof(*c), -1);
		if (ret) {
			TH_LOG("cannot send %s to %s: %s", op_name[c->op],
			       aname[a], strerror(-ret));
			return -1;
		}
		ret = eng_wait(e, a);
	}
	if (ret) {
		TH_LOG("%s: no reply from %s (pid %d): %s%s%s", op_name[c->op],
		       aname[a], e->a.pid[a],
		       ret == -ESRCH ? "it died" : strerror(-ret), sep, ctx);
		return -1;
	}
	switch (e->r.err) {
	case ACTOR_OK:
		break;
	case ACTOR_SKIP:
		return 1;
	case ACTOR_NOTSUPP:
		return 2;
	default:
		if (c->op == OP_FORK)
			TH_LOG("%s: clone3(%#llx): %s%s%s", aname[a],
			       (unsigned long long)c->flags,
			       strerror(-e->r.info), sep, ctx);
		else
			TH_LOG("%s: %s%s%s", op_name[c->op], e->r.msg, sep, ctx);
		return -1;
	}
	if (c->op == OP_EXIT && actor_wait_exit(&e->a, a)) {
		/* its mm must be gone before the next step */
		TH_LOG("%s did not exit", aname[a]);
		return -1;
	}
	return 0;
}

static int eng_check_all(struct __test_metadata *_metadata, struct eng *e)
{
	struct cmd c = { .op = OP_CHECK };

	for (int a = 0; a < NACT; a++)
		if (e->a.alive[a] && eng_cmd(_metadata, e, a, &c))
			return -1;
	return 0;
}

/* The test bodies use a local "struct eng *e". */
#define START(lay)	ASSERT_EQ(0, eng_start(_metadata, e, lay))

#define DO(a, ...) do { \
	struct cmd __c = { __VA_ARGS__ }; \
	int __r = eng_cmd(_metadata, e, a, &__c); \
	if (__r == 1) \
		SKIP(return, "%s", e->r.msg); \
	ASSERT_EQ(0, __r); \
} while (0)

#define CHECK_ALL()	ASSERT_EQ(0, eng_check_all(_metadata, e))

/* one step, then every live actor checks all its pages */
#define STEP(a, ...) do { \
	DO(a, __VA_ARGS__); \
	CHECK_ALL(); \
} while (0)

#define FORK_NC(p, c, fl) do { \
	struct cmd __c = { .op = OP_FORK, .child = (c), .flags = (fl) }; \
	int __r = eng_cmd(_metadata, e, p, &__c); \
	if (__r == 2) \
		SKIP(return, "clone3(CLONE_COW_PTE): EOPNOTSUPP (cow_pte_mode off)"); \
	ASSERT_EQ(0, __r); \
} while (0)

#define FORK(p, c, fl) do { \
	FORK_NC(p, c, fl); \
	CHECK_ALL(); \
} while (0)

#define WRITE(a, f, cnt)	STEP(a, .op = OP_WRITE, .first = (f), .n = (cnt), \
				     .gen = e->gen++)
#define WRITE_ALL(a)		WRITE(a, 0, NPAGES)
#define MM(a, m, f, cnt)	STEP(a, .op = OP_MM, .arg = (m), .first = (f), \
				     .n = (cnt))
#define EXIT(a)			STEP(a, .op = OP_EXIT)

static int other(int a)
{
	return a == A_P ? A_C : A_P;
}

/* ------------------------------------------------------------------ */
/* CPU stores: three generations, every write order and exit order     */

/*
 * A fixture whose tests drive a fresh engine (self->e, torn down after
 * the test).  The fixture's variant, if any, is declared next to it.
 */
#define ENG_FIXTURE(name)				\
	FIXTURE(name) {					\
		struct eng e;				\
	};						\
	FIXTURE_SETUP(name) { eng_init(&self->e); }	\
	FIXTURE_TEARDOWN(name) { eng_fini(&self->e); }

/* ... whose variant says which actor acts: the parent or the child */
#define WHO_FIXTURE(name, by_parent, by_child)			\
	ENG_FIXTURE(name);					\
	FIXTURE_VARIANT(name) {					\
		int who;					\
	};							\
	FIXTURE_VARIANT_ADD(name, by_parent) { A_P };		\
	FIXTURE_VARIANT_ADD(name, by_child) { A_C }

ENG_FIXTURE(gens);

FIXTURE_VARIANT(gens) {
	const char *order;	/* who writes, in which order (two rounds) */
	const char *exits;	/* who exits, in which order */
	bool late_g;		/* the grandchild forks after the first round */
};

#define GENS(o, x) \
	FIXTURE_VARIANT_ADD(gens, w##o##_exit##x) { .order = #o, .exits = #x }
/* the six write orders, each with the parent, child or grandchild exiting first */
GENS(PCG, PCG); GENS(PCG, CGP); GENS(PCG, GPC);
GENS(PGC, PCG); GENS(PGC, CGP); GENS(PGC, GPC);
GENS(CPG, PCG); GENS(CPG, CGP); GENS(CPG, GPC);
GENS(CGP, PCG); GENS(CGP, CGP); GENS(CGP, GPC);
GENS(GPC, PCG); GENS(GPC, CGP); GENS(GPC, GPC);
GENS(GCP, PCG); GENS(GCP, CGP); GENS(GCP, GPC);
/* two processes: parent first, child first, one only */
GENS(P, PC); GENS(P, CP); GENS(C, PC); GENS(C, CP);
GENS(PC, PC); GENS(PC, CP); GENS(CP, PC); GENS(CP, CP);
/* the grandchild forks from a child whose tables are partly broken */
FIXTURE_VARIANT_ADD(gens, late_wPCG_exitPCG) {
	.order = "PCG", .exits = "PCG", .late_g = true };
FIXTURE_VARIANT_ADD(gens, late_wCPG_exitCGP) {
	.order = "CPG", .exits = "CGP", .late_g = true };
FIXTURE_VARIANT_ADD(gens, late_wGCP_exitGPC) {
	.order = "GCP", .exits = "GPC", .late_g = true };

static int actor_of(char ch)
{
	return ch == 'P' ? A_P : ch == 'C' ? A_C : A_G;
}

/* The k-th write of a script: all, a lower part, sparse, an upper part. */
static void range_of(int k, long *first, long *n, long *stride)
{
	long half = NPAGES / 2 + 3;	/* not at a table boundary */

	*stride = 1;
	switch (k % 4) {
	case 0:
		*first = 0;
		*n = NPAGES;
		break;
	case 1:
		*first = 0;
		*n = half;
		break;
	case 2:	/* one page in every table, at different offsets */
		*first = k % 7;
		*n = NPAGES;
		*stride = 173;
		break;
	default:
		*first = half;
		*n = NPAGES - half;
		break;
	}
}

#define SCRIPT_WRITE(a) do { \
	long __f, __n, __s; \
	range_of(k++, &__f, &__n, &__s); \
	STEP(a, .op = OP_WRITE, .first = __f, .n = __n, .stride = __s, \
	     .gen = e->gen++); \
} while (0)

TEST_F_TIMEOUT(gens, write_then_exit, 120)
{
	struct eng *e = &self->e;
	bool has_g = strchr(variant->order, 'G') || strchr(variant->exits, 'G');
	int k = 0;

	START(&lay_small);
	FORK(A_P, A_C, cow_flags);
	if (has_g && !variant->late_g)
		FORK(A_C, A_G, cow_flags);
	for (int round = 0; round < 2; round++) {
		if (round == 1 && has_g && variant->late_g)
			FORK(A_C, A_G, cow_flags);
		for (const char *o = variant->order; *o; o++) {
			int a = actor_of(*o);

			if (e->a.alive[a])
				SCRIPT_WRITE(a);
		}
	}
	for (const char *x = variant->exits; *x; x++) {
		int a = actor_of(*x);

		if (!e->a.alive[a])
			continue;
		EXIT(a);
		/* the survivors still see their data and can still write */
		for (int s = 0; s < NACT; s++)
			if (e->a.alive[s])
				SCRIPT_WRITE(s);
	}
}

/* ------------------------------------------------------------------ */
/* Threads storing while the process CoW-forks                         */

ENG_FIXTURE(eng);

struct cw {
	char *mem;
	long first, n;
	long round;
	int stop;
};

static void *cw_fn(void *arg)
{
	struct cw *w = arg;

	for (long r = 1;; r++) {
		__atomic_store_n(&w->round, r, __ATOMIC_SEQ_CST);
		for (long i = w->first; i < w->first + w->n; i++) {
			volatile uint64_t *q = (volatile uint64_t *)(w->mem + i * PG);

			q[0] = r;
			q[1] = ~r;
		}
		if (__atomic_load_n(&w->stop, __ATOMIC_SEQ_CST))
			break;
	}
	return NULL;
}

struct snap_report {
	int err;
	long min[2], max[2];
	char msg[200];
};

#define CHILD_MARK	0x5ca1ab1e00000000ULL

/*
 * In the CoW child of a threaded process: no malloc, no stdio.  Every page
 * must hold a value its writer stored (words 0 and 1: the round, possibly
 * torn between the two stores) and the original pattern in the rest; and
 * nothing may change afterwards while the writers go on in the parent.
 */
static void snap_check(char *mem, const struct cw *w, uint64_t *s0,
		       uint64_t *s1, struct snap_report *rep)
{
	long n = NPAGES;

	for (int j = 0; j < 2; j++) {
		rep->min[j] = LONG_MAX;
		rep->max[j] = LONG_MIN;
	}
	for (long i = 0; i < n; i++) {
		volatile uint64_t *q = (volatile uint64_t *)(mem + i * PG);

		s0[i] = q[0];
		s1[i] = q[1];
	}
	for (long i = 0; i < n; i++) {
		int j = i < w[1].first ? 0 : 1;

		if (s1[i] != ~s0[i] && s1[i] != ~(s0[i] - 1)) {
			snprintf(rep->msg, sizeof(rep->msg),
				 "page %ld: words 0/1 %#llx/%#llx are no store sequence",
				 i, (unsigned long long)s0[i],
				 (unsigned long long)s1[i]);
			rep->err = 1;
			return;
		}
		if (page_diff_from(mem + i * PG, G_FIRST, i, 2) >= 0) {
			snprintf(rep->msg, sizeof(rep->msg),
				 "page %ld: not the page's own contents", i);
			rep->err = 2;
			return;
		}
		if ((long)s0[i] < rep->min[j])
			rep->min[j] = s0[i];
		if ((long)s0[i] > rep->max[j])
			rep->max[j] = s0[i];
	}
	for (int t = 0; t < 4; t++) {
		usleep(3000);
		for (long i = 0; i < n; i++) {
			volatile uint64_t *q = (volatile uint64_t *)(mem + i * PG);

			if (q[0] != s0[i] || q[1] != s1[i]) {
				snprintf(rep->msg, sizeof(rep->msg),
					 "page %ld changed after fork: %#llx -> %#llx",
					 i, (unsigned long long)s0[i],
					 (unsigned long long)q[0]);
				rep->err = 3;
				return;
			}
		}
	}
	for (long i = 0; i < n; i++) {
		volatile uint64_t *q = (volatile uint64_t *)(mem + i * PG);

		q[0] = CHILD_MARK | i;
		q[1] = ~(CHILD_MARK | i);
	}
	for (long i = 0; i < n; i++) {
		volatile uint64_t *q = (volatile uint64_t *)(mem + i * PG);

		if (q[0] != (CHILD_MARK | i) || q[1] != ~(CHILD_MARK | i) ||
		    page_diff_from(mem + i * PG, G_FIRST, i, 2) >= 0) {
			snprintf(rep->msg, sizeof(rep->msg),
				 "page %ld: the child's own store is lost", i);
			rep->err = 4;
			return;
		}
	}
}

/*
 * Two threads keep storing into all pages while the main thread CoW-forks
 * twelve times.  Each child sees a frozen snapshot made of values the
 * threads had stored before the fork returned; the parent's threads never
 * lose a store (at the end every page holds its writer's last round).
 */
TEST_F_TIMEOUT(eng, concurrent_writer_threads, 120)
{
	struct snap_report rep;
	pthread_t th[2];
	struct cw w[2];
	uint64_t *s0, *s1;
	int fds[2], failed = 0, it;
	char *mem;
	long h;

	L = lay_small;
	h = NPAGES / 2 + 3;
	mem = map_at_phase(NPAGES * PG, (PMD_SZ - L.head * PG) % PMD_SZ);
	ASSERT_NE(NULL, mem);
	ASSERT_EQ(0, madvise(mem, NPAGES * PG, MADV_NOHUGEPAGE));
	for (long i = 0; i < NPAGES; i++)
		fill_page(mem + i * PG, G_FIRST, i);
	s0 = calloc(NPAGES, sizeof(*s0));
	s1 = calloc(NPAGES, sizeof(*s1));
	ASSERT_TRUE(s0 && s1);
	ASSERT_EQ(0, pipe(fds));
	ASSERT_EQ(0, fcntl(fds[0], F_SETFL, O_NONBLOCK));
	memset(w, 0, sizeof(w));
	w[0].mem = w[1].mem = mem;
	w[0].n = h;
	w[1].first = h;
	w[1].n = NPAGES - h;
	for (int j = 0; j < 2; j++)
		ASSERT_EQ(0, pthread_create(&th[j], NULL, cw_fn, &w[j]));
	while (__atomic_load_n(&w[0].round, __ATOMIC_SEQ_CST) < 2 ||
	       __atomic_load_n(&w[1].round, __ATOMIC_SEQ_CST) < 2)
		usleep(1000);

	for (it = 0; it < 12 && !failed; it++) {
		long rb[2], ra[2];
		pid_t pid;
		int code;

		for (int j = 0; j < 2; j++)
			rb[j] = __atomic_load_n(&w[j].round, __ATOMIC_SEQ_CST);
		pid = cowpt_fork(cow_flags);
		if (!pid) {
			memset(&rep, 0, sizeof(rep));
			snap_check(mem, w, s0, s1, &rep);
			_exit(write(fds[1], &rep, sizeof(rep)) == sizeof(rep) ? 0 : 1);
		}
		for (int j = 0; j < 2; j++)
			ra[j] = __atomic_load_n(&w[j].round, __ATOMIC_SEQ_CST);
		if (pid < 0) {
			failed = errno == EOPNOTSUPP ? -1 : 1;
			TH_LOG("clone3: %s", strerror(errno));
			break;
		}
		code = wait_code(pid);
		memset(&rep, 0, sizeof(rep));
		if (code || read(fds[0], &rep, sizeof(rep)) != sizeof(rep)) {
			TH_LOG("fork %d: child exit %d, no report", it, code);
			failed = 1;
			break;
		}
		if (rep.err) {
			TH_LOG("fork %d: child: %s", it, rep.msg);
			failed = 1;
		}
		for (int j = 0; j < 2 && !failed; j++) {
			if (rep.min[j] < rb[j] - 1 || rep.max[j] > ra[j]) {
				TH_LOG("fork %d: writer %d: child sees rounds %ld..%ld, "
				       "the writer was at %ld before and %ld after the fork",
				       it, j, rep.min[j], rep.max[j], rb[j], ra[j]);
				failed = 1;
			}
		}
	}
	for (int j = 0; j < 2; j++)
		__atomic_store_n(&w[j].stop, 1, __ATOMIC_SEQ_CST);
	for (int j = 0; j < 2; j++)
		pthread_join(th[j], NULL);
	if (failed < 0)
		SKIP(return, "clone3(CLONE_COW_PTE): EOPNOTSUPP (cow_pte_mode off)");
	ASSERT_EQ(0, failed);
	TH_LOG("writer rounds: %ld, %ld", w[0].round, w[1].round);
	for (long i = 0; i < NPAGES; i++) {
		const uint64_t *q = (const uint64_t *)(mem + i * PG);
		long r = w[i < h ? 0 : 1].round;

		ASSERT_EQ((uint64_t)r, q[0]) {
			TH_LOG("page %ld lost its writer's store of round %ld", i, r);
		}
		ASSERT_EQ(~(uint64_t)r, q[1]);
		ASSERT_EQ(-1, page_diff_from(q, G_FIRST, i, 2)) {
			TH_LOG("page %ld: not the page's own contents", i);
		}
	}
}

/* ------------------------------------------------------------------ */
/* GUP writes into another process, and reads back                      */

ENG_FIXTURE(gup);

FIXTURE_VARIANT(gup) {
	int method;
	int writer;
};

FIXTURE_VARIANT_ADD(gup, process_vm_writev_into_child) { GUP_VM, A_P };
FIXTURE_VARIANT_ADD(gup, process_vm_writev_into_parent) { GUP_VM, A_C };
FIXTURE_VARIANT_ADD(gup, proc_pid_mem_into_child) { GUP_MEM, A_P };
FIXTURE_VARIANT_ADD(gup, proc_pid_mem_into_parent) { GUP_MEM, A_C };
FIXTURE_VARIANT_ADD(gup, ptrace_poke_into_child) { GUP_PTRACE, A_P };
FIXTURE_VARIANT_ADD(gup, ptrace_poke_into_parent) { GUP_PTRACE, A_C };

/*
 * The writer writes into the target's memory (partial head table,
 * inside shared tables, across a shared-table boundary, partial tail
 * table): the target sees the new data, the writer's own memory is
 * unchanged, remote reads in both directions return each one's data, and
 * later CPU stores stay isolated.
 */
TEST_F_TIMEOUT(gup, remote_write, 120)
{
	struct eng *e = &self->e;
	int wr = variant->writer, tg = other(wr);

	START(&lay_default);
	FORK(A_P, A_C, cow_flags);
	{
		const long ranges[][2] = {
			{ L.head - 2, 4 }, { FULL(0) + 200, 3 }, { FULL(1) - 1, 2 },
			{ FULL(2) + 300, 5 }, { NPAGES - 3, 3 },
		};

		for (size_t i = 0; i < ARRAY_SIZE(ranges); i++) {
			long f = ranges[i][0], n = ranges[i][1];
			int g = e->gen++;

			e->ctx = gup_name[variant->method];
			DO(wr, .op = OP_GUP_WRITE, .arg = variant->method,
			   .pid = e->a.pid[tg], .first = f, .n = n, .gen = g);
			DO(tg, .op = OP_SET, .first = f, .n = n, .gen = g);
			CHECK_ALL();
			DO(wr, .op = OP_GUP_READ, .arg = variant->method,
			   .pid = e->a.pid[tg], .first = f, .n = n, .gen = g);
			DO(tg, .op = OP_GUP_READ, .arg = variant->method,
			   .pid = e->a.pid[wr], .first = f, .n = n, .gen = G_FIRST);
			CHECK_ALL();
		}
	}
	e->ctx = NULL;
	WRITE_ALL(tg);
	WRITE(wr, 0, NPAGES / 2 + 3);
	EXIT(tg);
	WRITE_ALL(wr);
}

/* ------------------------------------------------------------------ */
/* O_DIRECT reads into a CoW-shared buffer                              */

/* the reader: the parent or the child */
WHO_FIXTURE(odirect, in_parent, in_child);

/* A block device for O_DIRECT (not swap); fills it with G_DEV pages. */
static int odirect_prepare(long npages, char *why, size_t wlen)
{
	const char *env = getenv("COWPT_ODIRECT_DEV");
	char swaps[4096] = "", *buf;
	struct stat st;
	off_t size;
	int fd;

	snprintf(odirect_dev, sizeof(odirect_dev), "%s", env ? env : "/dev/ram1");
	if (stat(odirect_dev, &st) || !S_ISBLK(st.st_mode)) {
		snprintf(why, wlen, "no block device %s for O_DIRECT", odirect_dev);
		return -1;
	}
	read_text("/proc/swaps", swaps, sizeof(swaps));
	if (strstr(swaps, odirect_dev)) {
		snprintf(why, wlen, "%s is a swap device", odirect_dev);
		return -1;
	}
	fd = open(odirect_dev, O_RDWR | O_DIRECT);
	if (fd < 0) {
		snprintf(why, wlen, "open %s O_DIRECT: %s", odirect_dev,
			 strerror(errno));
		return -1;
	}
	close(fd);
	/* buffered writes: this process must not pin anything */
	fd = open(odirect_dev, O_RDWR);
	size = fd < 0 ? 0 : lseek(fd, 0, SEEK_END);
	if (size < npages * (off_t)PG) {
		snprintf(why, wlen, "%s too small or unusable", odirect_dev);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	buf = malloc(PG);
	for (long i = 0; buf && i < npages; i++) {
		fill_page(buf, G_DEV, i);
		if (pwrite(fd, buf, PG, i * PG) != (ssize_t)PG) {
			snprintf(why, wlen, "write %s: %s", odirect_dev, strerror(errno));
			free(buf);
			close(fd);
			return -1;
		}
	}
	free(buf);
	fsync(fd);
	close(fd);
	return 0;
}

/*
 * O_DIRECT reads (FOLL_PIN | FOLL_WRITE) into the reader's memory after a
 * CoW fork: the reader sees the device data, the other process keeps the
 * old data; afterwards the reader, whose pins are over, forks once more
 * (its marked tables are scanned and shared again).
 */
TEST_F_TIMEOUT(odirect, read_after_fork, 120)
{
	struct eng *e = &self->e;
	int rd = variant->who, ot = other(rd);
	char why[200];

	L = lay_default;
	if (odirect_prepare(NPAGES, why, sizeof(why)))
		SKIP(return, "%s", why);
	START(&lay_default);
	FORK(A_P, A_C, cow_flags);
	{
		const long ranges[][2] = {
			{ L.head - 2, 4 }, { FULL(0) + 100, 16 }, { FULL(1) - 8, 16 },
			{ FULL(2), PMD_PAGES }, { NPAGES - 5, 5 },
		};

		for (size_t i = 0; i < ARRAY_SIZE(ranges); i++)
			STEP(rd, .op = OP_ODIRECT, .first = ranges[i][0],
			     .n = ranges[i][1]);
	}
	WRITE_ALL(ot);
	WRITE(rd, 0, NPAGES / 2 + 3);
	/* the reader pinned through these tables: its next fork scans them */
	FORK(rd, A_G, cow_flags);
	WRITE(A_G, NPAGES / 2, NPAGES / 2);
	STEP(rd, .op = OP_ODIRECT, .first = FULL(1) + 10, .n = 8);
	EXIT(A_G);
	EXIT(ot);
	WRITE_ALL(rd);
}

/* ------------------------------------------------------------------ */
/* vmsplice: same results as with a plain fork                          */

struct vs_res {
	long old, new;
};

TEST_F_TIMEOUT(eng, vmsplice_like_plain_fork, 120)
{
	static const char *const what[] = {
		"spliced before fork, parent writes, parent's pipe",
		"spliced after fork by parent, child writes, parent's pipe",
		"spliced by child, parent writes, child's pipe",
		"spliced before fork, child exits, parent writes, parent's pipe",
	};
	struct vs_res res[2][4];
	struct eng *e = &self->e;
	const long n = 16;

	memset(res, 0, sizeof(res));
	for (int pass = 0; pass < 2; pass++) {
		uint64_t fl = pass ? cow_flags : 0;
		long f[4];
		int g[4];

		START(&lay_default);
		f[0] = FULL(1) - 8;	/* across two shared tables */
		f[1] = FULL(0) + 100;
		f[2] = FULL(2) + 40;
		f[3] = FULL(0) + 300;
		for (int s = 0; s < 4; s++)
			g[s] = e->gen++;
		e->ctx = pass ? "CoW fork pass" : "plain fork pass";
		DO(A_P, .op = OP_VMSPLICE, .first = f[0], .n = n);
		DO(A_P, .op = OP_VMSPLICE, .first = f[3], .n = n);
		FORK(A_P, A_C, fl);
		/* 0: the parent writes what it spliced before the fork */
		STEP(A_P, .op = OP_WRITE, .first = f[0], .n = n, .gen = g[0]);
		DO(A_P, .op = OP_VMSPLICE_READ, .first = f[0], .n = n,
		   .gen = G_FIRST, .arg = g[0]);
		res[pass][0] = (struct vs_res){ e->r.info, e->r.info2 };
		/* 3 is read after 1 and 2 (pipe order: it was spliced second) */
		/* 1: spliced by the parent after the fork, the child writes */
		DO(A_P, .op = OP_VMSPLICE, .first = f[1], .n = n);
		STEP(A_C, .op = OP_WRITE, .first = f[1], .n = n, .gen = g[1]);
		/* 2: the child splices, the parent writes */
		DO(A_C, .op = OP_VMSPLICE, .first = f[2], .n = n);
		STEP(A_P, .op = OP_WRITE, .first = f[2], .n = n, .gen = g[2]);
		DO(A_C, .op = OP_VMSPLICE_READ, .first = f[2], .n = n,
		   .gen = G_FIRST, .arg = g[2]);
		res[pass][2] = (struct vs_res){ e->r.info, e->r.info2 };
		/* 3: the child exits, then the parent writes */
		EXIT(A_C);
		STEP(A_P, .op = OP_WRITE, .first = f[3], .n = n, .gen = g[3]);
		DO(A_P, .op = OP_VMSPLICE_READ, .first = f[3], .n = n,
		   .gen = G_FIRST, .arg = g[3]);
		res[pass][3] = (struct vs_res){ e->r.info, e->r.info2 };
		DO(A_P, .op = OP_VMSPLICE_READ, .first = f[1], .n = n,
		   .gen = G_FIRST, .arg = g[1]);
		res[pass][1] = (struct vs_res){ e->r.info, e->r.info2 };
		e->ctx = NULL;
		actors_stop(&e->a);
	}
	for (int s = 0; s < 4; s++)
		TH_LOG("%s: plain fork %ld old/%ld new, CoW fork %ld old/%ld new (of %ld)",
		       what[s], res[0][s].old, res[0][s].new, res[1][s].old,
		       res[1][s].new, n);
	/* a write by one process never shows in the other's pipe */
	EXPECT_EQ(n, res[1][1].old);
	EXPECT_EQ(n, res[1][2].old);
	/* while the child lives, CoW fork gives what plain fork gives */
	for (int s = 0; s < 3; s++) {
		EXPECT_EQ(res[0][s].old, res[1][s].old) {
			TH_LOG("differs from plain fork: %s", what[s]);
		}
		EXPECT_EQ(res[0][s].new, res[1][s].new);
	}
	/*
	 * Case 3 is not compared: after the child is gone the parent may
	 * reuse its table and write in place, as if it had never forked.
	 */
	EXPECT_EQ(n, res[1][3].old + res[1][3].new);
}

/* ------------------------------------------------------------------ */
/* io_uring fixed buffers registered before the fork                    */

static int write_file_pattern(const char *path, long npages, unsigned int gen)
{
	char *buf = malloc(PG);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || !buf) {
		free(buf);
		return -1;
	}
	for (long i = 0; i < npages; i++) {
		fill_page(buf, gen, i);
		if (pwrite(fd, buf, PG, i * PG) != (ssize_t)PG) {
			free(buf);
			close(fd);
			return -1;
		}
	}
	free(buf);
	close(fd);
	return 0;
}

/*
 * The parent registers a fixed buffer (FOLL_PIN | FOLL_LONGTERM), forks,
 * modifies the buffer and READ_FIXEDs file data into it: the parent sees
 * the file data where read and its own writes elsewhere, the child only
 * the old data - with a plain fork and with a CoW fork alike.
 */
TEST_F_TIMEOUT(eng, iouring_fixed_buffer, 120)
{
	struct eng *e = &self->e;

	L = lay_default;
	ASSERT_EQ(0, write_file_pattern(URING_FILE, NPAGES, G_FILE));
	for (int pass = 0; pass < 2; pass++) {
		uint64_t fl = pass ? cow_flags : 0;
		long f;

		START(&lay_default);
		f = FULL(1) - 64;	/* 128 pages across two tables */
		e->ctx = pass ? "CoW fork pass" : "plain fork pass";
		DO(A_P, .op = OP_URING_REG, .first = f, .n = 128);
		FORK(A_P, A_C, fl);
		WRITE(A_P, f, 128);
		STEP(A_P, .op = OP_URING_READ, .first = f, .n = 32);
		STEP(A_P, .op = OP_URING_READ, .first = f + 48, .n = 32);
		WRITE(A_C, f, 128);
		STEP(A_P, .op = OP_URING_READ, .first = f + 96, .n = 32);
		WRITE(A_P, f + 40, 8);
		EXIT(A_C);
		STEP(A_P, .op = OP_URING_READ, .first = f + 8, .n = 16);
		e->ctx = NULL;
		actors_stop(&e->a);
	}
	unlink(URING_FILE);
}

/* ------------------------------------------------------------------ */
/* userfaultfd in the child                                             */

TEST_F_TIMEOUT(eng, userfaultfd_in_child, 120)
{
	struct eng *e = &self->e;
	int fd = syscall(__NR_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);

	if (fd < 0 && errno == EINVAL)
		fd = syscall(__NR_userfaultfd, O_CLOEXEC);
	if (fd < 0)
		SKIP(return, "userfaultfd: %s", strerror(errno));
	close(fd);

	START(&lay_default);
	FORK(A_P, A_C, cow_flags);
	/* a whole shared table: DONTNEED drops it, then fill it again */
	STEP(A_C, .op = OP_UFFD, .first = FULL(1), .n = PMD_PAGES,
	     .gen = e->gen++);
	/* a few pages inside a shared table (and a VMA split there) */
	STEP(A_C, .op = OP_UFFD, .first = FULL(0) + 100, .n = 8,
	     .gen = e->gen++);
	WRITE_ALL(A_P);
	WRITE(A_C, 0, NPAGES / 2 + 3);
	/* stay registered and fork: the registered VMA is copied, not shared */
	STEP(A_C, .op = OP_UFFD, .first = FULL(2), .n = PMD_PAGES,
	     .gen = e->gen++, .arg = 1);
	FORK(A_C, A_G, cow_flags);
	WRITE(A_G, FULL(2) - 5, 20);
	WRITE(A_C, FULL(2) + 50, 20);
	WRITE(A_P, FULL(2), PMD_PAGES);
	EXIT(A_C);
	WRITE_ALL(A_G);
}

/* ------------------------------------------------------------------ */
/* mprotect, mremap, munmap, madvise by one side, checked by both       */

WHO_FIXTURE(mmops, by_parent, by_child);

/*
 * The operation on a whole 2 MiB aligned (shared) table, a few pages in the
 * middle of one, a range across two shared tables, and a range across the
 * copied head table and a shared one.  After each: both check; the other
 * side writes over and around the range; the operating side writes the
 * range; both check again.
 */
static void mm_scenario(struct __test_metadata *_metadata, struct eng *e,
			int who, int mmop)
{
	int y = other(who);
	char ctx[96];

	START(&lay_default);
	FORK(A_P, A_C, cow_flags);
	{
		const struct { const char *name; long first, n; } R[] = {
			{ "whole table", FULL(2), PMD_PAGES },
			{ "partial table", FULL(0) + 100, 6 },
			{ "across two shared tables", FULL(1) - 10, 20 },
			{ "across head and shared table", L.head - 4, 8 },
		};

		for (size_t i = 0; i < ARRAY_SIZE(R); i++) {
			long f = R[i].first, n = R[i].n;
			long yf = f - 4, yn = n + 8;

			snprintf(ctx, sizeof(ctx), "%s by %s on %s", mm_name[mmop],
				 aname[who], R[i].name);
			e->ctx = ctx;
			MM(who, mmop, f, n);
			WRITE(y, yf, yn);
			WRITE(who, f, n);
		}
	}
	e->ctx = NULL;
	EXIT(y);
	WRITE_ALL(who);
}

#define MM_TEST(name, op) \
	TEST_F_TIMEOUT(mmops, name, 120) \
	{ \
		mm_scenario(_metadata, &self->e, variant->who, op); \
	}

MM_TEST(mprotect, MM_MPROTECT)
MM_TEST(mremap_move, MM_MREMAP_MOVE)
MM_TEST(mremap_grow, MM_MREMAP_GROW)
MM_TEST(mremap_shrink, MM_MREMAP_SHRINK)
MM_TEST(mremap_dontunmap, MM_MREMAP_DONTUNMAP)
MM_TEST(munmap, MM_MUNMAP)
MM_TEST(madv_dontneed, MM_DONTNEED)
MM_TEST(madv_free, MM_FREE)
MM_TEST(madv_pageout, MM_PAGEOUT)
MM_TEST(madv_cold, MM_COLD)
MM_TEST(madv_willneed, MM_WILLNEED)
MM_TEST(madv_populate_write, MM_POPULATE_WRITE)

/* ------------------------------------------------------------------ */
/* THP and mTHP                                                         */

/*
 * A MADV_HUGEPAGE region of two 2 MiB aligned PMDs: PMD-mapped THPs are
 * not shared but must stay isolated, also once split by partial writes and
 * operations and then CoW-forked again as PTE-mapped THPs.
 */
TEST_F_TIMEOUT(eng, thp_pmd, 120)
{
	static const struct layout lay_thp = { 0, 2, 0, MADV_HUGEPAGE };
	struct eng *e = &self->e;
	char mode[32];

	if (bracket_word(THP_DIR "/enabled", mode, sizeof(mode)))
		SKIP(return, "no THP");
	if (!strcmp(mode, "never") &&
	    (geteuid() || knob_set(e, THP_DIR "/enabled", "madvise")))
		SKIP(return, "THP disabled");
	START(&lay_thp);
	DO(A_P, .op = OP_INFO, .arg = INFO_THP);
	TH_LOG("AnonHugePages of the parent: %ld kB%s", e->r.info,
	       e->r.info > 0 ? "" : " (no THP: the test degenerates to small pages)");
	FORK(A_P, A_C, cow_flags);
	WRITE(A_C, 5, 3);
	WRITE(A_P, PMD_PAGES + 7, 2);
	FORK(A_C, A_G, cow_flags);
	WRITE(A_G, 0, PMD_PAGES);
	WRITE(A_C, 300, 10);
	MM(A_P, MM_DONTNEED, 100, 4);
	MM(A_C, MM_MPROTECT, PMD_PAGES + 200, 8);
	MM(A_G, MM_DONTNEED, PMD_PAGES, PMD_PAGES);
	WRITE(A_G, PMD_PAGES + 3, 40);
	EXIT(A_G);
	WRITE_ALL(A_P);
	EXIT(A_C);
	WRITE_ALL(A_P);
}

/* 64 kB mTHPs mapped by PTEs in shared tables. */
TEST_F_TIMEOUT(eng, mthp_64k, 120)
{
	static const struct layout lay_mthp = { 32, 3, 16, -1 };
	struct eng *e = &self->e;
	const char *knob64 = THP_DIR "/hugepages-64kB/enabled";
	const char *knob2m = THP_DIR "/hugepages-2048kB/enabled";
	const char *stat64 = THP_DIR "/hugepages-64kB/stats/anon_fault_alloc";
	char buf[32] = "";
	long before = -1;

	if (access(knob64, F_OK))
		SKIP(return, "no 64 kB mTHP");
	if (geteuid())
		SKIP(return, "setting mTHP sizes needs root");
	ASSERT_EQ(0, knob_set(e, knob64, "always"));
	/* PTE-mapped only: no PMD-sized THP in the fully covered PMDs */
	if (!access(knob2m, F_OK))
		ASSERT_EQ(0, knob_set(e, knob2m, "never"));
	if (read_text(stat64, buf, sizeof(buf)) > 0)
		before = strtol(buf, NULL, 10);
	START(&lay_mthp);
	if (before >= 0 && read_text(stat64, buf, sizeof(buf)) > 0)
		TH_LOG("64 kB mTHP faults while filling: %ld",
		       strtol(buf, NULL, 10) - before);
	FORK(A_P, A_C, cow_flags);
	WRITE(A_C, FULL(0) + 3, 2);	/* inside a 64 kB folio */
	WRITE(A_P, FULL(1) + 17, 1);
	MM(A_C, MM_DONTNEED, FULL(0) + 33, 2);
	MM(A_P, MM_MPROTECT, FULL(2) + 5, 3);
	FORK(A_C, A_G, cow_flags);
	STEP(A_G, .op = OP_WRITE, .first = 1, .n = NPAGES, .stride = 16,
	     .gen = e->gen++);
	MM(A_P, MM_DONTNEED, FULL(1), PMD_PAGES);
	WRITE(A_C, FULL(1) - 20, 40);
	MM(A_G, MM_FREE, FULL(2) + 64, 32);
	EXIT(A_C);
	WRITE_ALL(A_G);
	EXIT(A_P);
	WRITE_ALL(A_G);
}

/* ------------------------------------------------------------------ */
/* Swap                                                                 */

TEST_F_TIMEOUT(eng, swapped_out_pages, 120)
{
	struct eng *e = &self->e;

	if (!have_swap())
		SKIP(return, "no swap");
	START(&lay_default);
	/* no check in between: it would swap everything in again */
	DO(A_P, .op = OP_MM, .arg = MM_PAGEOUT, .first = 0, .n = NPAGES);
	DO(A_P, .op = OP_INFO, .arg = INFO_SWAPPED);
	TH_LOG("swapped out before fork: %ld of %ld pages", e->r.info, NPAGES);
	/* the child reads first: read faults on non-resident pages */
	FORK_NC(A_P, A_C, cow_flags);
	DO(A_C, .op = OP_CHECK);
	DO(A_P, .op = OP_CHECK);
	WRITE(A_P, 0, NPAGES / 2 + 3);
	MM(A_C, MM_PAGEOUT, 0, NPAGES);
	MM(A_P, MM_PAGEOUT, 0, NPAGES);
	WRITE(A_C, NPAGES / 2, NPAGES / 2);
	MM(A_P, MM_PAGEOUT, FULL(1), PMD_PAGES);
	FORK(A_C, A_G, cow_flags);
	MM(A_G, MM_PAGEOUT, 0, NPAGES);
	WRITE(A_G, FULL(0) + 7, 30);
	EXIT(A_C);
	STEP(A_P, .op = OP_WRITE, .first = 3, .n = NPAGES, .stride = 11,
	     .gen = e->gen++);
	EXIT(A_P);
	WRITE_ALL(A_G);
}

/* @a pages its whole area out; e->r.info is then how many pages are out */
static void pageout_all(struct __test_metadata *_metadata, struct eng *e, int a)
{
	DO(a, .op = OP_MM, .arg = MM_PAGEOUT, .first = 0, .n = NPAGES);
	DO(a, .op = OP_INFO, .arg = INFO_SWAPPED);
}

/*
 * MADV_PAGEOUT leaves alone the pages another process maps, as after a
 * stock fork, where both map every page until one writes it: all the
 * pages of a shared table are such pages, and the table is not copied to
 * find that out.  Once the other process has exited they are the caller's
 * alone and go out: through the owner's table, which it takes over, and
 * through the copy that a last mapper which is not the owner makes.  (A
 * page still in a CPU's LRU batch is not paged out: hence 9/10.)
 */
TEST_F_TIMEOUT(eng, pageout_leaves_shared_pages, 120)
{
	struct eng *e = &self->e;

	if (!have_swap())
		SKIP(return, "no swap");
	START(&lay_default);
	FORK(A_P, A_C, cow_flags);
	pageout_all(_metadata, e, A_P);
	EXPECT_EQ(0, e->r.info)
		TH_LOG("the parent paged out %ld pages the child maps", e->r.info);
	pageout_all(_metadata, e, A_C);
	EXPECT_EQ(0, e->r.info)
		TH_LOG("the child paged out %ld pages the parent maps", e->r.info);
	CHECK_ALL();

	EXIT(A_C);			/* the parent (the owner) alone */
	pageout_all(_metadata, e, A_P);
	EXPECT_LE(NPAGES * 9 / 10, e->r.info)
		TH_LOG("the parent alone paged out %ld of %ld pages", e->r.info, NPAGES);
	CHECK_ALL();

	FORK(A_P, A_G, cow_flags);
	EXIT(A_P);			/* a child (not the owner) alone */
	pageout_all(_metadata, e, A_G);
	EXPECT_LE(NPAGES * 9 / 10, e->r.info)
		TH_LOG("the child alone paged out %ld of %ld pages", e->r.info, NPAGES);
	WRITE_ALL(A_G);
}

/* @a's smaps_rollup Referenced (kB) fall by *@drop at MADV_COLD of its area */
static void cold_all(struct __test_metadata *_metadata, struct eng *e, int a,
		     long *drop)
{
	DO(a, .op = OP_INFO, .arg = INFO_REFERENCED);
	*drop = e->r.info;
	DO(a, .op = OP_MM, .arg = MM_COLD, .first = 0, .n = NPAGES);
	DO(a, .op = OP_INFO, .arg = INFO_REFERENCED);
	*drop -= e->r.info;
}

/*
 * MADV_COLD, like MADV_PAGEOUT, leaves alone the pages another process
 * maps (their accessed bits stay set) and ages the pages of a process
 * left alone, whose tables were shared: the owner's, taken over, and a
 * last mapper's that is not the owner, copied.  The area is read (by the
 * checks) just before each MADV_COLD, so all of it is referenced then.
 */
TEST_F_TIMEOUT(eng, cold_leaves_shared_pages, 120)
{
	struct eng *e = &self->e;
	long area_kb, drop;

	START(&lay_default);
	area_kb = NPAGES * (PG / 1024);
	FORK(A_P, A_C, cow_flags);
	cold_all(_metadata, e, A_P, &drop);
	EXPECT_GT(area_kb / 10, drop)
		TH_LOG("the parent aged %ld kB the child maps", drop);
	CHECK_ALL();

	EXIT(A_C);			/* the parent (the owner) alone */
	cold_all(_metadata, e, A_P, &drop);
	EXPECT_LE(area_kb * 9 / 10, drop)
		TH_LOG("the parent alone aged %ld of %ld kB", drop, area_kb);
	CHECK_ALL();

	FORK(A_P, A_G, cow_flags);
	EXIT(A_P);			/* a child (not the owner) alone */
	cold_all(_metadata, e, A_G, &drop);
	EXPECT_LE(area_kb * 9 / 10, drop)
		TH_LOG("the child alone aged %ld of %ld kB", drop, area_kb);
	WRITE_ALL(A_G);
}

/* ------------------------------------------------------------------ */
/* KSM                                                                  */

TEST_F_TIMEOUT(eng, ksm_merged_pages, 120)
{
	struct eng *e = &self->e;
	char buf[32];
	long merged = 0;

	if (access(KSM_DIR "/run", F_OK))
		SKIP(return, "no KSM");
	if (geteuid())
		SKIP(return, "running KSM needs root");
	ASSERT_EQ(0, knob_set(e, KSM_DIR "/pages_to_scan", "5000"));
	ASSERT_EQ(0, knob_set(e, KSM_DIR "/sleep_millisecs", "10"));
	ASSERT_EQ(0, knob_set(e, KSM_DIR "/run", "1"));
	START(&lay_default);
	/* identical pages everywhere */
	STEP(A_P, .op = OP_WRITE, .first = 0, .n = NPAGES, .gen = G_KSM + 1);
	DO(A_P, .op = OP_MERGE);
	for (int t = 0; t < 200 && merged <= 0; t++) {
		usleep(100000);
		DO(A_P, .op = OP_INFO, .arg = INFO_KSM);
		merged = e->r.info;
		if (merged < 0 && read_text(KSM_DIR "/pages_sharing", buf,
					    sizeof(buf)) > 0)
			merged = strtol(buf, NULL, 10);
	}
	if (merged <= 0)
		SKIP(return, "KSM merged nothing within 20 s");
	TH_LOG("KSM merged %ld pages", merged);
	FORK(A_P, A_C, cow_flags);
	WRITE(A_C, FULL(0) + 10, 20);
	WRITE(A_P, FULL(1) - 5, 10);
	usleep(300000);		/* ksmd keeps scanning both */
	CHECK_ALL();
	STEP(A_C, .op = OP_WRITE, .first = 0, .n = NPAGES, .gen = G_KSM + 2);
	usleep(300000);
	CHECK_ALL();
	STEP(A_C, .op = OP_UNMERGE);
	STEP(A_P, .op = OP_WRITE, .first = 2, .n = NPAGES, .stride = 9,
	     .gen = e->gen++);
	FORK(A_P, A_G, cow_flags);
	WRITE(A_G, 0, NPAGES / 2);
	EXIT(A_C);
	WRITE_ALL(A_P);
}

/* ------------------------------------------------------------------ */
/* vmsplice, then the splicing or the other process unmaps             */

/*
 * A page spliced into a pipe (vmsplice: a GUP reference, not a pin) must
 * keep what it held at splice time when the *other* process writes its
 * copy, also after one of the two has unmapped the range, as with plain
 * fork (tools/testing/selftests/mm/cow.c, "vmsplice() + unmap ...").  The
 * CoW-fork bugs this catches: a read-only GUP through a shared table that
 * did not break it, and the last sharer of a table reusing it (pages still
 * exclusive and writable) when it was not the owner.
 */
enum vsu_case { VSU_BEFORE_FORK, VSU_CHILD, VSU_PARENT_AFTER };

static const char *const vsu_name[] = {
	"spliced by the parent before fork, parent unmaps, child writes",
	"spliced by the child, child unmaps, parent writes",
	"spliced by the parent after fork, parent unmaps, child writes",
};

#define VSU_LEN		(4 * PMD_SZ)
#define VSU_PAGES	16

/* Splices the first VSU_PAGES pages of mem into pfd[1]; 0 or -1. */
static int vsu_splice(char *mem, int *pfd)
{
	struct iovec iov = { .iov_base = mem, .iov_len = VSU_PAGES * PG };

	return vmsplice(pfd[1], &iov, 1, 0) == (ssize_t)iov.iov_len ? 0 : -1;
}

/* Reads the spliced pages back: the number of bytes that are not 'A'. */
static long vsu_changed(int *pfd)
{
	static char buf[VSU_PAGES * PG];
	long bad = 0;

	if (read(pfd[0], buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		return -1;
	for (size_t i = 0; i < sizeof(buf); i++)
		bad += buf[i] != 'A';
	return bad;
}

/*
 * One case; the process that must not see the other's write reports.
 * Returns the number of changed bytes seen through the pipe, or -1.
 */
static long vsu_run(enum vsu_case c, uint64_t flags)
{
	char *mem = map_at_phase(VSU_LEN, 0);
	int pfd[2], go[2], done[2];
	long changed = -1;
	char t = 0;
	pid_t pid;

	if (!mem || pipe(pfd) || pipe(go) || pipe(done))
		return -1;
	madvise(mem, VSU_LEN, MADV_NOHUGEPAGE);
	memset(mem, 'A', VSU_LEN);
	if (c == VSU_BEFORE_FORK && vsu_splice(mem, pfd))
		return -1;
	pid = cowpt_fork(flags);
	if (pid < 0)
		return -1;
	if (!pid) {
		if (c == VSU_CHILD) {
			if (vsu_splice(mem, pfd) || munmap(mem, VSU_LEN))
				_exit(100);
			if (write(done[1], &t, 1) != 1 || read(go[0], &t, 1) != 1)
				_exit(100);
			changed = vsu_changed(pfd);
			_exit(changed < 0 ? 100 : changed > 0);
		}
		/* wait until the parent has unmapped, then write */
		if (read(go[0], &t, 1) != 1)
			_exit(100);
		memset(mem, 'B', VSU_LEN);
		_exit(write(done[1], &t, 1) != 1 ? 100 : 0);
	}
	if (c == VSU_CHILD) {
		if (read(done[0], &t, 1) != 1)
			return -1;
		memset(mem, 'B', VSU_LEN);
		if (write(go[1], &t, 1) != 1)
			return -1;
		changed = wait_code(pid);
		return changed == 100 ? -1 : changed;
	}
	if (c == VSU_PARENT_AFTER && vsu_splice(mem, pfd))
		return -1;
	if (munmap(mem, VSU_LEN) || write(go[1], &t, 1) != 1 ||
	    read(done[0], &t, 1) != 1 || wait_code(pid) != 0)
		return -1;
	return vsu_changed(pfd);
}

TEST(vmsplice_then_unmap)
{
	for (int c = VSU_BEFORE_FORK; c <= VSU_PARENT_AFTER; c++) {
		long plain = vsu_run(c, 0), cow = vsu_run(c, CLONE_COW_PTE);

		if (cow < 0 && errno == EOPNOTSUPP)
			SKIP(return, "clone3(CLONE_COW_PTE): EOPNOTSUPP (cow_pte_mode off)");
		TH_LOG("%s: plain fork %ld, CoW fork %ld bytes changed",
		       vsu_name[c], plain, cow);
		ASSERT_EQ(0, plain);
		EXPECT_EQ(0, cow);
	}
}

TEST_HARNESS_MAIN
