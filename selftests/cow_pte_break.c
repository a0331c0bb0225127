// SPDX-License-Identifier: GPL-2.0
/*
 * cow_pte_break - breaking a shared PTE table where the VMA layout or the
 * pages make it hard:
 *
 *  - merge: a VMA change whose range merges into a neighbour instead of
 *    splitting (madvise, mlock, mprotect, mseal, UFFDIO_REGISTER, mbind,
 *    anon names all go through vma_merge_existing_range()) moves a VMA
 *    boundary into a 2 MiB region without __split_vma().  A shared table
 *    must never span two VMAs, so the merge breaks it first, exactly as a
 *    split does.  Seen from the CoW child that does it (not the owner):
 *    the break charges it the table's pages at once, so its RssAnon grows
 *    by a table at the merge, and unmapping one side afterwards needs no
 *    second break;
 *  - pinned: a break that has to copy more than one maybe-pinned page (the
 *    breaking mm has MMF_HAS_PINNED, and the pages hold more than 1024
 *    references each, from vmsplice) finishes, and the breaker keeps its
 *    data.  Each round of the break used to free the copies it had made
 *    when it found it needed one more, so it never finished;
 *  - pinned/breaker_tlb_forgets_copied_page: the breaker's TLB does not
 *    keep its translation to a maybe-pinned page the break copied (a
 *    break that copies no page flushes only the switch of tables);
 *  - madv: MADV_DONTNEED, MADV_FREE and MADV_PAGEOUT of part of a shared
 *    table do not fail, even when every allocation the caller makes fails
 *    (fail_page_alloc): after a stock fork they allocate nothing and
 *    cannot fail for want of memory.  DONTNEED and FREE give the caller
 *    its own copy of the table with allocations that do not fail; they
 *    used to break the table first with allocations that may, and return
 *    ENOMEM.  PAGEOUT copies nothing: the pages of a shared table are
 *    mapped by two mms, and pageout leaves those alone, as after a stock
 *    fork; it used to copy the table to find that out.  In the pinned
 *    variants the copy also needs new folios for two maybe-pinned pages,
 *    over several rounds.
 *
 * Every CoW fork here checks /proc/vmstat cow_pte_shared: a test fails
 * rather than pass when the tables were not shared.  Needs CLONE_COW_PTE
 * (cow_pte_mode opt-in or always); root for the larger pipes.
 */
#define _GNU_SOURCE
#include <sys/syscall.h>

#include "kselftest_harness.h"
#include "cow_pte_util.h"

#define TABLE_KB	2048L		/* the pages of one fully touched table */
#define TOL_KB		1024L		/* RssAnon noise: stack, libc, counter batching */

/* Is there a VMA boundary (a VMA starting) at @addr in /proc/self/maps? */
static bool vma_starts_at(const char *addr)
{
	unsigned long start, end;
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/self/maps", "r");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx", &start, &end) == 2 &&
		    start == (unsigned long)addr)
			found = true;
	fclose(f);
	return found;
}

/* ------------------------------------------------------------------ merge */

/*
 * Four MiB in two 2 MiB VMAs of the owner: one of them gets MADV_DONTDUMP
 * before the fork.  After it the owner MADV_DODUMPs 1 MiB of that VMA next
 * to the other one, which merges the 1 MiB into its neighbour: the boundary
 * between the VMAs moves into the middle of a shared table.  (The child's
 * copies of the two VMAs cannot merge: each has an anon_vma of its own.)
 * Then the owner unmaps the 1 MiB beyond the moved boundary, and the child
 * checks that it still sees what it saw at the fork.
 */
FIXTURE(merge) {
	char *base;
};

FIXTURE_VARIANT(merge) {
	size_t dontdump;	/* offset of the 2 MiB that gets MADV_DONTDUMP */
	size_t dodump;		/* offset of the 1 MiB that gets MADV_DODUMP */
	size_t boundary;	/* where the VMA boundary moves to */
	size_t unmap;		/* offset of the 1 MiB unmapped after */
};

/* The upper VMA's lower half joins the lower VMA (merge with prev). */
FIXTURE_VARIANT_ADD(merge, into_prev) {
	.dontdump = PMD_SZ,
	.dodump = PMD_SZ,
	.boundary = PMD_SZ + PMD_SZ / 2,
	.unmap = PMD_SZ + PMD_SZ / 2,
};

/* The lower VMA's upper half joins the upper VMA (merge with next). */
FIXTURE_VARIANT_ADD(merge, into_next) {
	.dontdump = 0,
	.dodump = PMD_SZ / 2,
	.boundary = PMD_SZ / 2,
	.unmap = 0,
};

FIXTURE_SETUP(merge)
{
	self->base = map_at_phase(2 * PMD_SZ, 0);
	ASSERT_NE(NULL, self->base);
	pattern_fill(self->base, self->base, 2 * PMD_SZ, 1);
	ASSERT_EQ(0, madvise(self->base + variant->dontdump, PMD_SZ, MADV_DONTDUMP));
	ASSERT_TRUE(vma_starts_at(self->base + PMD_SZ));
}

FIXTURE_TEARDOWN(merge)
{
	munmap(self->base, 2 * PMD_SZ);
}

struct sleeper_arg {
	char *base;
	size_t len;
	int go[2];		/* EOF on go[0] when the test is done */
};

/* Wait for the test, then check the view of the fork and write our own. */
static int sleeper(void *p)
{
	struct sleeper_arg *a = p;
	char c;
	long bad;

	close(a->go[1]);
	if (read(a->go[0], &c, 1) < 0)
		return 2;
	bad = pattern_check(a->base, a->base, a->len, 1);
	if (bad >= 0) {
		fprintf(stderr, "# child: offset %#lx changed\n", bad);
		return 1;
	}
	pattern_fill(a->base, a->base, a->len, 3);
	return pattern_check(a->base, a->base, a->len, 3) >= 0;
}

/*
 * CoW-fork a sleeper() over @a; *@shared gets the tables the fork shared.
 * Returns its pid, or -1 with errno set.
 */
static pid_t start_sleeper(struct sleeper_arg *a, long *shared)
{
	pid_t pid;

	if (pipe(a->go))
		return -1;
	pid = cow_child(sleeper, a, shared);
	close(a->go[0]);
	return pid;
}

TEST_F(merge, breaks_at_moved_boundary)
{
	struct sleeper_arg arg = { .base = self->base, .len = 2 * PMD_SZ };
	int *go = arg.go;
	long shared, broken, bad;
	pid_t pid;

	pid = start_sleeper(&arg, &shared);
	if (pid < 0 && (errno == EINVAL || errno == EOPNOTSUPP))
		SKIP(return, "clone3(CLONE_COW_PTE): %s", strerror(errno));
	ASSERT_LT(0, pid);
	ASSERT_LE(2, shared) TH_LOG("the fork shared %ld tables, not 2", shared);

	broken = vmstat_get("cow_pte_break_split");
	ASSERT_EQ(0, madvise(self->base + variant->dodump, PMD_SZ / 2, MADV_DODUMP));
	ASSERT_TRUE(vma_starts_at(self->base + variant->boundary) &&
		    !vma_starts_at(self->base + PMD_SZ))
		TH_LOG("MADV_DODUMP did not merge: the case did not happen");
	broken = vmstat_get("cow_pte_break_split") - broken;
	EXPECT_LE(1, broken)
		TH_LOG("the merge left the table at the moved boundary shared");

	ASSERT_EQ(0, munmap(self->base + variant->unmap, PMD_SZ / 2));
	for (size_t off = 0; off < 2 * PMD_SZ; off += PMD_SZ / 2) {
		if (off == variant->unmap)
			continue;
		bad = pattern_check(self->base, self->base + off, PMD_SZ / 2, 1);
		EXPECT_EQ(-1, bad) TH_LOG("parent: offset %#lx changed", bad);
		pattern_fill(self->base, self->base + off, PMD_SZ / 2, 2);
	}
	close(go[1]);
	EXPECT_EQ(0, wait_code(pid)) TH_LOG("the child's view changed");
	/* the teardown unmaps the rest */
}

/* ----------------------------------------------------------------- pinned */

#define NPIPES		10
#define PIPE_BUFS	256		/* a 1 MiB pipe holds 256 page buffers */
#define NPINNED		2		/* pages with more than 1024 references */
#define BREAK_SECS	120		/* a break finishes in far less under TCG */
#define BREAKER_LOG	"breaker.log"	/* in the test's own directory */

/* Copy what the breaker printed into the test's log. */
static void show_file(struct __test_metadata *_metadata, const char *path)
{
	char line[256];
	FILE *f = fopen(path, "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		TH_LOG("breaker: %s", strtok(line, "\n") ?: "");
	fclose(f);
}

/* Exit codes of the process that breaks. */
enum { P_OK, P_PIPE, P_VMSPLICE, P_FORK, P_NOT_SHARED, P_PIN, P_DATA, P_COPY, P_CHILD,
       P_CPUS, P_NOT_COPIED, P_NOT_REUSED, P_STALE, P_END };

static const char *const pinned_result[] = {
	[P_OK] = "ok",
	[P_PIPE] = "pipe or F_SETPIPE_SZ failed",
	[P_VMSPLICE] = "vmsplice failed",
	[P_FORK] = "clone3(CLONE_COW_PTE) failed",
	[P_NOT_SHARED] = "the fork did not share the table",
	[P_PIN] = "cannot pin a page (io_uring)",
	[P_DATA] = "the breaker's data changed",
	[P_COPY] = "the pipe does not hold what the page held",
	[P_CHILD] = "the child's view changed",
	[P_CPUS] = "needs two CPUs to run on",
	[P_NOT_COPIED] = "the break did not copy the maybe-pinned page",
	[P_NOT_REUSED] = "the child did not write the original page in place",
	[P_STALE] = "the breaker read the child's write through its old translation",
};

/*
 * More than 1024 references on each of the NPINNED pages at @p make them
 * maybe-pinned (folio_maybe_dma_pinned()) without setting MMF_HAS_PINNED,
 * so a fork still shares their table.  Returns a P_* code.
 */
static int splice_refs(char *p, int pipes[NPIPES][2])
{
	for (int i = 0; i < NPIPES; i++) {
		struct iovec iov = {
			.iov_base = p + (i % NPINNED) * PG,
			.iov_len = PG,
		};

		if (pipe(pipes[i]) || fcntl(pipes[i][1], F_SETPIPE_SZ, PIPE_BUFS * PG) < 0)
			return P_PIPE;
		for (int j = 0; j < PIPE_BUFS; j++)
			if (vmsplice(pipes[i][1], &iov, 1, 0) != (ssize_t)PG)
				return P_VMSPLICE;
	}
	return P_OK;
}

/*
 * The process that breaks: its own process, so that the test process
 * never gets MMF_HAS_PINNED.  Returns a P_* code.
 */
static int pinned_breaker(void)
{
	char *base = map_at_phase(PMD_SZ, 0);
	struct sleeper_arg arg = { .base = base, .len = PMD_SZ };
	int pipes[NPIPES][2], *go = arg.go;
	long shared, bad;
	const char *what;
	uint64_t word;
	pid_t child;
	int code;

	if (!base)
		return P_PIPE;
	pattern_fill(base, base, PMD_SZ, 1);
	/* Before the fork, while the table is private. */
	code = splice_refs(base, pipes);
	if (code != P_OK)
		return code;
	if (pipe(go))
		return P_PIPE;
	child = cow_child(sleeper, &arg, &shared);
	if (child < 0)
		return P_FORK;
	close(go[0]);
	if (shared < 1)
		return P_NOT_SHARED;
	/* Now the breaker pins something else: MMF_HAS_PINNED. */
	if (pin_one_page(&what) < 0) {
		fprintf(stderr, "# %s: %s\n", what, strerror(errno));
		return P_PIN;
	}
	/*
	 * A write to a third page breaks the table: fork's rules copy both
	 * maybe-pinned exclusive pages into new folios for the breaker.
	 */
	*(volatile uint64_t *)(base + NPINNED * PG) = pattern(base, base + NPINNED * PG, 2);
	if (*(volatile uint64_t *)(base + NPINNED * PG) != pattern(base, base + NPINNED * PG, 2))
		return P_DATA;
	bad = pattern_check(base, base, NPINNED * PG, 1);
	if (bad < 0)
		bad = pattern_check(base, base + (NPINNED + 1) * PG, PMD_SZ - (NPINNED + 1) * PG, 1);
	if (bad >= 0) {
		fprintf(stderr, "# breaker: offset %#lx changed\n", bad);
		return P_DATA;
	}
	if (read(pipes[0][0], &word, sizeof(word)) != sizeof(word) ||
	    word != pattern(base, base, 1))
		return P_COPY;
	close(go[1]);
	return wait_code(child) ? P_CHILD : P_OK;
}

/* A fixture only for the timeout: the harness's default is 30 s. */
FIXTURE(pinned) {
};

FIXTURE_SETUP(pinned)
{
}

FIXTURE_TEARDOWN(pinned)
{
}

/*
 * Run @breaker in a process of its own (so that the test process never gets
 * MMF_HAS_PINNED) with its output in BREAKER_LOG; its P_* code, or -1 if it
 * did not finish in BREAK_SECS.
 */
static int run_breaker(struct __test_metadata *_metadata, int (*breaker)(void))
{
	pid_t pid = fork();
	int code;

	if (pid < 0)
		return P_FORK;
	if (pid == 0) {
		/*
		 * A breaker stuck in the kernel cannot be killed: it must not
		 * hold the test's output open, or the runner waits for ever.
		 */
		int fd = open(BREAKER_LOG, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(P_PIPE);
		_exit(breaker());
	}
	code = wait_code_timeout(pid, BREAK_SECS);
	show_file(_metadata, BREAKER_LOG);
	if (code == -1) {
		kill(pid, SIGKILL);
		TH_LOG("the break did not finish in %d s (pid %d is stuck in the kernel)",
		       BREAK_SECS, pid);
	}
	return code;
}

/* Why a breaker's P_* code means the test cannot run here, or NULL. */
static const char *breaker_skip(int code)
{
	switch (code) {
	case P_FORK:
		return "clone3(CLONE_COW_PTE) refused: cow_pte_mode off?";
	case P_PIN:
		return "no io_uring to pin with";
	case P_CPUS:
		return pinned_result[code];
	}
	return NULL;
}

TEST_F_TIMEOUT(pinned, break_finishes, BREAK_SECS + 60)
{
	int code;

	if (geteuid())
		SKIP(return, "needs root for %d-buffer pipes", PIPE_BUFS);
	code = run_breaker(_metadata, pinned_breaker);
	ASSERT_NE(-1, code);
	if (breaker_skip(code))
		SKIP(return, "%s", breaker_skip(code));
	ASSERT_EQ(P_OK, code) TH_LOG("breaker: %s",
		(code >= 0 && code < P_END) ? pinned_result[code] : "died");
}

/*
 * tlb: a break that copies a maybe-pinned page for the breaker maps it
 * elsewhere than the shared table did, so the breaker's TLB entry for it
 * must go; a break that copies no page flushes less, as its translations
 * stay what they were.  The breaker, on one CPU, reads the page (its TLB
 * keeps the translation to the original), breaks the table by writing
 * another page, and drops the pipes' references.  The child, on another
 * CPU, then writes the original in place: the last to map it.  A
 * translation the breaker kept would show it the child's write.
 */
struct tlb_child_arg {
	char *base;
	volatile uint64_t *shm;	/* [0] go, [1] the child's PFN of the page */
};

#define TLB_PAGE	1	/* a maybe-pinned page, not the table's first */

static void run_on(int cpu)
{
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	sched_setaffinity(0, sizeof(one), &one);
}

static int tlb_child(void *p)
{
	struct tlb_child_arg *a = p;
	char *page = a->base + TLB_PAGE * PG;

	run_on(1);
	while (a->shm[0] != 1)
		;
	*(volatile uint64_t *)page = pattern(a->base, page, 3);
	a->shm[1] = pagemap_pfn(getpid(), page);
	a->shm[0] = 2;
	return 0;
}

static int tlb_breaker(void)
{
	char *base = map_at_phase(PMD_SZ, 0), *page = base + TLB_PAGE * PG;
	volatile uint64_t *shm = mmap(NULL, PG, PROT_READ | PROT_WRITE,
				      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct tlb_child_arg arg = { .base = base, .shm = shm };
	uint64_t orig, word, buf[PG / sizeof(uint64_t)];
	int pipes[NPIPES][2], code;
	const char *what;
	long shared;
	pid_t child;

	if (!base || shm == MAP_FAILED)
		return P_PIPE;
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return P_CPUS;
	run_on(0);
	pattern_fill(base, base, PMD_SZ, 1);
	code = splice_refs(base, pipes);
	if (code != P_OK)
		return code;
	child = cow_child(tlb_child, &arg, &shared);
	if (child < 0)
		return P_FORK;
	if (shared < 1)
		return P_NOT_SHARED;
	/* After the fork, as in pinned_breaker(): MMF_HAS_PINNED. */
	if (pin_one_page(&what) < 0) {
		fprintf(stderr, "# %s: %s\n", what, strerror(errno));
		return P_PIN;
	}
	orig = pagemap_pfn(getpid(), page);
	/* The translation to the original, from the shared table. */
	(void)*(volatile uint64_t *)page;
	*(volatile uint64_t *)(base + NPINNED * PG) = pattern(base, base + NPINNED * PG, 2);
	if (!orig || pagemap_pfn(getpid(), page) == orig)
		return P_NOT_COPIED;
	/* The child has the pipes open too: read what they hold, no EOF. */
	for (int i = 0; i < NPIPES; i++)
		for (int j = 0; j < PIPE_BUFS; j++)
			if (read(pipes[i][0], buf, sizeof(buf)) != sizeof(buf))
				return P_COPY;
	shm[0] = 1;
	while (shm[0] != 2)
		if (waitpid(child, NULL, WNOHANG) == child)
			return P_CHILD;
	if (wait_code(child))
		return P_CHILD;
	if (shm[1] != orig)
		return P_NOT_REUSED;
	word = *(volatile uint64_t *)page;
	if (word == pattern(base, page, 3))
		return P_STALE;
	return word == pattern(base, page, 1) ? P_OK : P_DATA;
}

TEST_F_TIMEOUT(pinned, breaker_tlb_forgets_copied_page, BREAK_SECS + 60)
{
	int code;

	if (geteuid())
		SKIP(return, "needs root for %d-buffer pipes and PFNs", PIPE_BUFS);
	code = run_breaker(_metadata, tlb_breaker);
	ASSERT_NE(-1, code);
	if (breaker_skip(code))
		SKIP(return, "%s", breaker_skip(code));
	ASSERT_EQ(P_OK, code) TH_LOG("breaker: %s",
		(code >= 0 && code < P_END) ? pinned_result[code] : "died");
}

/* ------------------------------------------------------------------- madv */

#define ADV_OFF		(100 * PG)	/* the madvise() range, in table 1 */
#define ADV_LEN		(3 * PG)

/*
 * fail_page_alloc set to fail the next page allocations of a task that
 * writes 1 to its /proc/self/make-it-fail (a bounded number: an allocation
 * the kernel retries, such as a page fault's, would otherwise never end),
 * the settings it had kept to restore.
 */
static const char *const fail_attr[][2] = {
	{ "task-filter", "Y" },		/* only make-it-fail tasks */
	{ "probability", "100" },
	{ "interval", "1" },
	{ "times", "64" },
	{ "space", "0" },
	{ "verbose", "0" },		/* no stack trace in the console */
	{ "ignore-gfp-wait", "N" },	/* fail allocations that may sleep too */
	{ "ignore-gfp-highmem", "N" },
	{ "min-order", "0" },
};

FIXTURE(madv) {
	char *base;
	int pipes[NPIPES][2];
	char saved[ARRAY_SIZE(fail_attr)][32];
	int nsaved;
	int make_it_fail;		/* /proc/self/make-it-fail, open */
};

/*
 * advice: what the parent does to part of table 1 while every allocation
 * it makes fails; breaks: the counter of the copy it makes (NULL: it
 * must copy nothing); zeroes: the range reads as zeroes afterwards (else
 * as before).  pinned: the copy must also copy NPINNED maybe-pinned pages
 * (table 1's first pages) into folios of their own, allocated over several
 * rounds; those allocations must not fail either.
 */
FIXTURE_VARIANT(madv) {
	int advice;
	const char *breaks;
	bool zeroes;
	bool pinned;
};

FIXTURE_VARIANT_ADD(madv, dontneed_plain) {
	.advice = MADV_DONTNEED, .breaks = "cow_pte_break_zap", .zeroes = true,
};

FIXTURE_VARIANT_ADD(madv, dontneed_pinned) {
	.advice = MADV_DONTNEED, .breaks = "cow_pte_break_zap", .zeroes = true,
	.pinned = true,
};

/* the pages stay until reclaim needs them, and it need not here */
FIXTURE_VARIANT_ADD(madv, free_plain) {
	.advice = MADV_FREE, .breaks = "cow_pte_break_madvise",
};

FIXTURE_VARIANT_ADD(madv, free_pinned) {
	.advice = MADV_FREE, .breaks = "cow_pte_break_madvise", .pinned = true,
};

FIXTURE_VARIANT_ADD(madv, pageout_plain) {
	.advice = MADV_PAGEOUT,
};

FIXTURE_SETUP(madv)
{
	memset(self->pipes, -1, sizeof(self->pipes));
	self->make_it_fail = -1;
	self->base = map_at_phase(2 * PMD_SZ, 0);
	ASSERT_NE(NULL, self->base);
	pattern_fill(self->base, self->base, 2 * PMD_SZ, 1);
	if (access(FAIL_DIR, F_OK))
		SKIP(return, "no %s: needs CONFIG_FAIL_PAGE_ALLOC and debugfs", FAIL_DIR);
	self->nsaved = fail_alloc_setup(fail_attr, ARRAY_SIZE(fail_attr),
					self->saved);
	ASSERT_EQ((int)ARRAY_SIZE(fail_attr), self->nsaved)
		TH_LOG(FAIL_DIR "%s: %s", fail_attr[self->nsaved][0],
		       strerror(errno));
	self->make_it_fail = open("/proc/self/make-it-fail", O_WRONLY);
	ASSERT_LE(0, self->make_it_fail);
}

FIXTURE_TEARDOWN(madv)
{
	if (self->make_it_fail >= 0) {
		if (write(self->make_it_fail, "0", 1) != 1)
			TH_LOG("cannot clear make-it-fail: %s", strerror(errno));
		close(self->make_it_fail);
	}
	/* task-filter last: only this task fails until the rest is back */
	fail_alloc_restore(fail_attr, self->nsaved, self->saved);
	for (int i = 0; i < NPIPES; i++) {
		close(self->pipes[i][0]);
		close(self->pipes[i][1]);
	}
	munmap(self->base, 2 * PMD_SZ);
}

TEST_F(madv, partial_does_not_fail)
{
	struct sleeper_arg arg = { .base = self->base, .len = 2 * PMD_SZ };
	char *adv = self->base + PMD_SZ + ADV_OFF;
	long shared, breaks, all, bad;
	int *go = arg.go, ret, err, code;
	const char *what;
	pid_t pid;

	if (variant->pinned) {
		if (geteuid())
			SKIP(return, "needs root for %d-buffer pipes", PIPE_BUFS);
		code = splice_refs(self->base + PMD_SZ, self->pipes);
		ASSERT_EQ(P_OK, code) TH_LOG("%s", pinned_result[code]);
	}
	pid = start_sleeper(&arg, &shared);
	if (pid < 0 && (errno == EINVAL || errno == EOPNOTSUPP))
		SKIP(return, "clone3(CLONE_COW_PTE): %s", strerror(errno));
	ASSERT_LT(0, pid);
	ASSERT_LE(2, shared) TH_LOG("the fork shared %ld tables, not 2", shared);
	/* Fork copies maybe-pinned pages only for an mm that has pinned. */
	if (variant->pinned && pin_one_page(&what) < 0)
		SKIP(return, "%s: %s", what, strerror(errno));

	breaks = variant->breaks ? vmstat_get(variant->breaks) : 0;
	all = cow_pte_breaks();
	/*
	 * Nothing between the two writes may fault: the fault's allocation
	 * would fail too, and be retried.  errno's page in particular must
	 * have been written since the fork, which write-protected it, and so
	 * must madvise()'s GOT entry, which lazy binding writes at the first
	 * call: make one that changes nothing.
	 */
	errno = 0;
	ASSERT_EQ(0, madvise(self->base, 2 * PMD_SZ, MADV_NORMAL));
	ASSERT_EQ(1, write(self->make_it_fail, "1", 1));
	ret = madvise(adv, ADV_LEN, variant->advice);
	err = errno;
	ASSERT_EQ(1, write(self->make_it_fail, "0", 1));
	ASSERT_EQ(0, ret) TH_LOG("madvise(%d) of part of a shared table: %s",
				 variant->advice, strerror(err));
	if (variant->breaks) {
		breaks = vmstat_get(variant->breaks) - breaks;
		EXPECT_LE(1, breaks) TH_LOG("no table was copied (%s)", variant->breaks);
	} else {
		EXPECT_EQ(all, cow_pte_breaks()) TH_LOG("a table was copied");
	}

	if (variant->zeroes) {
		for (size_t off = 0; off < ADV_LEN; off += PG) {
			EXPECT_EQ(0, *(volatile uint64_t *)(adv + off))
				TH_LOG("offset %#zx not zero after madvise(%d)",
				       off, variant->advice);
		}
		bad = pattern_check(self->base, self->base, PMD_SZ + ADV_OFF, 1);
		if (bad < 0)
			bad = pattern_check(self->base, adv + ADV_LEN,
					    PMD_SZ - ADV_OFF - ADV_LEN, 1);
	} else {
		bad = pattern_check(self->base, self->base, 2 * PMD_SZ, 1);
	}
	EXPECT_EQ(-1, bad) TH_LOG("parent: offset %#lx changed", bad);
	close(go[1]);
	EXPECT_EQ(0, wait_code(pid)) TH_LOG("the child's view changed");
}

TEST_HARNESS_MAIN
