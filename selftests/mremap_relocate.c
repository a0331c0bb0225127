// SPDX-License-Identifier: GPL-2.0
/*
 * mremap_relocate - mremap() of faulted private anonymous memory gives the
 * moved VMA a page offset that fits its new place, so that it merges with
 * its neighbours there (vm.mremap_relocate_anon, mm/mremap.c).
 *
 *  - merge: the layouts that merge only with relocation (halves swapped,
 *    a buffer grown by moving next to another, a mapping made beside a
 *    moved VMA), in each mode: 0 leaves every VMA as stock 6.12 does, 1
 *    merges at once, 2 also gives an unmergeable VMA the offset of its
 *    address;
 *  - reloc, thp: what relocates, and the rmap finding every page at its
 *    new place afterwards (MADV_PAGEOUT, move_pages(), KSM, pages swapped
 *    out before the move), for small pages, mTHP, PMD-mapped and
 *    PTE-mapped THP, mlocked memory and MREMAP_DONTUNMAP; and what must
 *    move as before, with the reason counted in /proc/vmstat: a huge page
 *    cut by the move, a range that stays registered with userfaultfd, a
 *    VMA over vm.mremap_relocate_max_kbytes;
 *  - forked: memory a child (plain or CLONE_COW_PTE fork) or a grandchild
 *    can reach is not relocated, and once the child has exited it is.
 *
 * Every test checks the data.  Needs root (the sysctls, kpageflags).
 */
#define _GNU_SOURCE
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "kselftest_harness.h"
#include "cow_pte_util.h"

#define MODE_PATH	"/proc/sys/vm/mremap_relocate_anon"
#define MAX_KB_PATH	"/proc/sys/vm/mremap_relocate_max_kbytes"
#define SANDBOX_SZ	(64UL << 20)
#define NPG		16UL		/* pages in a small test region */

/* The vmstat counters of relocation, in the order of vm_event_item.h. */
enum { RELOC, FOLIOS, MERGED, NO_MERGE, F_FORKED, F_FOLIO, F_BUSY, F_UFFD,
	F_SIZE, NR_RELOC_COUNTERS };
static const char *const reloc_counters[NR_RELOC_COUNTERS] = {
	"mremap_relocate",
	"mremap_relocate_folios",
	"mremap_relocate_merged",
	"mremap_relocate_no_merge",
	"mremap_relocate_fail_forked",
	"mremap_relocate_fail_folio",
	"mremap_relocate_fail_busy",
	"mremap_relocate_fail_uffd",
	"mremap_relocate_fail_size",
};

struct counts {
	long v[NR_RELOC_COUNTERS];
};

static void counts_read(struct counts *c)
{
	for (int i = 0; i < NR_RELOC_COUNTERS; i++)
		c->v[i] = vmstat_get(reloc_counters[i]);
}

/* Counter @i's growth since @before. */
static long counted(const struct counts *before, int i)
{
	return vmstat_get(reloc_counters[i]) - before->v[i];
}

/*
 * The VMA that contains @addr, from /proc/self/maps: 0 and its bounds, or
 * -1 if no VMA does.
 */
static int vma_at(const void *addr, uintptr_t *start, uintptr_t *end)
{
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long s, e;
	char line[512];
	int ret = -1;

	if (!f)
		return -1;
	while (ret && fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx", &s, &e) == 2 &&
		    s <= (uintptr_t)addr && (uintptr_t)addr < e) {
			*start = s;
			*end = e;
			ret = 0;
		}
	fclose(f);
	return ret;
}

/* Is [p, p + len) exactly one VMA? */
static bool one_vma(const char *p, size_t len)
{
	uintptr_t start, end;

	return !vma_at(p, &start, &end) && start == (uintptr_t)p &&
	       end == (uintptr_t)p + len;
}

static char *map_fixed(char *p, size_t len)
{
	return mmap(p, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
}

static char *move(char *from, size_t len, size_t new_len, char *to, int flags)
{
	return mremap(from, len, new_len, MREMAP_MAYMOVE | MREMAP_FIXED | flags, to);
}

static int sysctl_set(const char *path, long val)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%ld", val);
	return write_text(path, buf);
}

/*
 * A PROT_NONE reservation, PMD-aligned, that the tests map into with
 * MAP_FIXED: its remains never merge with the tests' mappings (other
 * flags), so every merge a test sees is one it made.
 */
static char *sandbox_map(void)
{
	char *p = map_at_phase(SANDBOX_SZ, 0);

	if (p && mprotect(p, SANDBOX_SZ, PROT_NONE))
		return NULL;
	return p;
}

/*
 * The halves of the 2 * @n pages at @src swap places at @dst: the upper
 * half moves to @dst, then the lower half right after it.  Stock mremap
 * cannot merge them (the lower half's offset is below the upper's), so
 * one VMA at @dst means the second move (or both) relocated.  Returns -1
 * when both halves hold their data, 0 if a move failed, 1 or 2 for the
 * half that lost data.
 */
static long swap_halves(char *src, size_t n, char *dst)
{
	size_t half = n * PG;

	if (move(src + half, half, half, dst, 0) != dst ||
	    move(src, half, half, dst + half, 0) != dst + half)
		return 0;
	if (pattern_check(dst - half, dst, half, 1) >= 0)
		return 1;
	if (pattern_check(dst + half, dst + half, half, 1) >= 0)
		return 2;
	return -1;
}

/*
 * 2 * @n faulted small pages at @p, in one VMA, each page holding its
 * pattern.
 */
static int fault_region(char *p, size_t n)
{
	if (map_fixed(p, 2 * n * PG) != p ||
	    madvise(p, 2 * n * PG, MADV_NOHUGEPAGE))
		return -1;
	pattern_fill(p, p, 2 * n * PG, 1);
	return 0;
}

/* A /sys knob a test changes, and what to write back. */
struct knob {
	const char *path;
	char saved[32];
};

/*
 * What every fixture here has: the sandbox, the sysctls and knobs to
 * restore, and the counters before the move a test checks.
 */
struct env {
	char *sb;		/* the sandbox */
	char *src, *dst;	/* PMD-aligned places in it, far apart */
	long saved_mode, saved_max;
	struct knob knobs[3];
	int nr_knobs;
	struct counts c;
};

/*
 * NULL, or why the test cannot run.  Changes the sysctls last, so that a
 * skip leaves nothing behind (the harness runs no teardown after a setup
 * that skipped or failed).  Pins the test to one CPU: MADV_PAGEOUT drains
 * only this CPU's LRU batches, and every page must reach the LRU.
 */
static const char *env_setup(struct env *e, int mode)
{
	cpu_set_t one;

	e->saved_mode = file_long(MODE_PATH);
	e->saved_max = file_long(MAX_KB_PATH);
	if (e->saved_mode < 0 || e->saved_max < 0)
		return "kernel without mremap relocation (no " MODE_PATH ")";
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	if (sched_setaffinity(0, sizeof(one), &one))
		return "cannot pin to one CPU";
	e->sb = sandbox_map();
	if (!e->sb)
		return "no room for the sandbox";
	/* a PMD away from its ends, whatever lies beyond them */
	e->src = e->sb + PMD_SZ;
	e->dst = e->sb + SANDBOX_SZ / 2;
	if (sysctl_set(MAX_KB_PATH, 65536) || sysctl_set(MODE_PATH, mode)) {
		sysctl_set(MAX_KB_PATH, e->saved_max);
		sysctl_set(MODE_PATH, e->saved_mode);
		return "cannot set " MODE_PATH;
	}
	return NULL;
}

/*
 * Set the /sys knob @path to @val, to be restored at teardown; its value
 * is the bracketed word of a THP knob, or the whole text (one line).
 * 0, or -errno.
 */
static int env_knob(struct env *e, const char *path, const char *val)
{
	struct knob *k = &e->knobs[e->nr_knobs];
	int n;

	if (e->nr_knobs == (int)(sizeof(e->knobs) / sizeof(e->knobs[0])))
		return -ENOSPC;
	if (strchr(path, '/') && strstr(path, "transparent_hugepage")) {
		n = bracket_word(path, k->saved, sizeof(k->saved));
	} else {
		n = read_text(path, k->saved, sizeof(k->saved));
		if (n >= 0)
			k->saved[strcspn(k->saved, "\n")] = '\0';
	}
	if (n < 0)
		return n;
	k->path = path;
	e->nr_knobs++;
	return write_text(path, val);
}

static void env_teardown(struct env *e)
{
	while (e->nr_knobs > 0) {
		struct knob *k = &e->knobs[--e->nr_knobs];

		write_text(k->path, k->saved);
	}
	if (e->saved_mode >= 0)
		sysctl_set(MODE_PATH, e->saved_mode);
	if (e->saved_max >= 0)
		sysctl_set(MAX_KB_PATH, e->saved_max);
	if (e->sb)
		munmap(e->sb, SANDBOX_SZ);
}

/* Are there two NUMA nodes to move pages between? */
static bool two_nodes(void)
{
	return !access("/sys/devices/system/node/node1", F_OK);
}

/*
 * Swap the halves of the faulted 2 * @n pages at e->src to e->dst and
 * check the data; then whether they merged, and counter @why grown by one
 * (relocated, or the reason they were not).
 */
static void swap_and_expect(struct __test_metadata *_metadata, struct env *e,
			    size_t n, bool merge, int why)
{
	counts_read(&e->c);
	ASSERT_EQ(-1, swap_halves(e->src, n, e->dst));
	EXPECT_EQ(merge, one_vma(e->dst, 2 * n * PG));
	EXPECT_EQ(1, counted(&e->c, why));
	if (!merge)
		EXPECT_EQ(0, counted(&e->c, RELOC));
}

/*
 * The rmap finds every relocated page: MADV_PAGEOUT swaps out each of them
 * (a page the rmap cannot find stays mapped), and they read back intact
 * (@base: where the pattern's offsets start; NULL: not a pattern).
 */
static void expect_pageout(struct __test_metadata *_metadata, char *p,
			   size_t len, char *base, unsigned int gen)
{
	if (!have_swap()) {
		TH_LOG("no swap: MADV_PAGEOUT not checked");
		return;
	}
	ASSERT_EQ(0, madvise(p, len, MADV_PAGEOUT));
	/* every page was on this CPU's LRU batches, which pageout drained */
	EXPECT_EQ((long)(len / PG), pagemap_pages(getpid(), p, len, PM_SWAP));
	if (base)
		EXPECT_EQ(-1, pattern_check(base, p, len, gen));
}

/*
 * move_pages() moves every relocated page to the other node: a page the
 * rmap cannot find stays where it is.  Where each page is comes from a
 * second query: the move itself reports -EBUSY for the pages of a large
 * folio after its first, as that page took the whole folio.
 */
static void expect_migrate(struct __test_metadata *_metadata, char *p,
			   size_t len, char *base, unsigned int gen)
{
	long n = len / PG;
	void **pages = calloc(n, sizeof(*pages));
	int *nodes = calloc(n, sizeof(int)), *status = calloc(n, sizeof(int));
	int target;

	ASSERT_NE(NULL, pages);
	ASSERT_NE(NULL, nodes);
	ASSERT_NE(NULL, status);
	for (long i = 0; i < n; i++)
		pages[i] = p + i * PG;
	ASSERT_EQ(0, syscall(__NR_move_pages, 0, 1, pages, NULL, status, 0));
	ASSERT_LE(0, status[0]);
	target = !status[0];
	for (long i = 0; i < n; i++)
		nodes[i] = target;
	EXPECT_LE(0, syscall(__NR_move_pages, 0, n, pages, nodes, status, MPOL_MF_MOVE));
	ASSERT_EQ(0, syscall(__NR_move_pages, 0, n, pages, NULL, status, 0));
	for (long i = 0; i < n; i++)
		if (status[i] != target) {
			EXPECT_EQ(target, status[i]) TH_LOG("page %ld", i);
			break;
		}
	EXPECT_EQ(-1, pattern_check(base, p, len, gen));
	free(pages);
	free(nodes);
	free(status);
}

/* ------------------------------------------------------------------ merge */

FIXTURE(merge) {
	struct env e;
};

FIXTURE_VARIANT(merge) {
	int mode;
};

FIXTURE_VARIANT_ADD(merge, off) { .mode = 0 };
FIXTURE_VARIANT_ADD(merge, on_merge) { .mode = 1 };
FIXTURE_VARIANT_ADD(merge, always) { .mode = 2 };

FIXTURE_SETUP(merge)
{
	const char *why = env_setup(&self->e, variant->mode);

	if (why)
		SKIP(return, "%s", why);
}

FIXTURE_TEARDOWN(merge)
{
	env_teardown(&self->e);
}

/*
 * Halves swapped: mode 1 relocates the second move (its prev is the first
 * half) and merges; mode 2 relocates both; mode 0 leaves two VMAs.
 */
TEST_F(merge, swapped_halves)
{
	struct env *e = &self->e;

	ASSERT_EQ(0, fault_region(e->src, NPG));
	counts_read(&e->c);
	ASSERT_EQ(-1, swap_halves(e->src, NPG, e->dst));
	if (variant->mode == 0) {
		EXPECT_TRUE(one_vma(e->dst, NPG * PG));
		EXPECT_TRUE(one_vma(e->dst + NPG * PG, NPG * PG));
		EXPECT_EQ(0, counted(&e->c, RELOC));
		return;
	}
	EXPECT_TRUE(one_vma(e->dst, 2 * NPG * PG));
	EXPECT_EQ(variant->mode == 1 ? 1 : 2, counted(&e->c, RELOC));
	EXPECT_EQ(variant->mode == 1 ? 1 : 0, counted(&e->c, NO_MERGE));
	EXPECT_EQ(1, counted(&e->c, MERGED));
	EXPECT_LE((long)NPG, counted(&e->c, FOLIOS));
}

/*
 * realloc(): of three faulted buffers in one VMA, the middle one grows by
 * moving to the end, right after the last one, where it merges.
 */
TEST_F(merge, grown_beside_neighbour)
{
	struct env *e = &self->e;
	size_t len = NPG * PG;
	char *a = e->src, *b = a + len, *c = b + len, *to = c + len;

	ASSERT_EQ(a, map_fixed(a, 3 * len));
	ASSERT_EQ(0, madvise(a, 3 * len, MADV_NOHUGEPAGE));
	pattern_fill(a, a, 3 * len, 1);
	counts_read(&e->c);
	ASSERT_EQ(to, move(b, len, 2 * len, to, 0));
	EXPECT_EQ(-1, pattern_check(to - len, to, len, 1));
	pattern_fill(to, to + len, len, 2);	/* the grown part */
	EXPECT_EQ(-1, pattern_check(to, to + len, len, 2));
	EXPECT_EQ(-1, pattern_check(a, c, len, 1));
	EXPECT_EQ(-1, pattern_check(a, a, len, 1));
	EXPECT_TRUE(one_vma(a, len));
	if (variant->mode == 0) {
		EXPECT_TRUE(one_vma(to, 2 * len));
		EXPECT_TRUE(one_vma(c, len));
		EXPECT_EQ(0, counted(&e->c, RELOC));
	} else {
		EXPECT_TRUE(one_vma(c, 3 * len));
		EXPECT_EQ(1, counted(&e->c, RELOC));
		EXPECT_EQ(1, counted(&e->c, MERGED));
	}
}

/*
 * A VMA moved where nothing can merge with it, then a mapping made right
 * after it: only mode 2 gave the moved VMA the offset of its address,
 * which the new mapping's offset follows, so only there do they merge.
 */
TEST_F(merge, mapping_made_beside)
{
	struct env *e = &self->e;
	size_t len = 2 * NPG * PG;

	ASSERT_EQ(0, fault_region(e->src, NPG));
	counts_read(&e->c);
	ASSERT_EQ(e->dst, move(e->src, len, len, e->dst, 0));
	EXPECT_EQ(variant->mode == 2 ? 1 : 0, counted(&e->c, RELOC));
	EXPECT_EQ(variant->mode == 1 ? 1 : 0, counted(&e->c, NO_MERGE));
	ASSERT_EQ(e->dst + len, map_fixed(e->dst + len, len));
	ASSERT_EQ(0, madvise(e->dst + len, len, MADV_NOHUGEPAGE));
	pattern_fill(e->dst + len, e->dst + len, len, 2);
	EXPECT_EQ(variant->mode == 2, one_vma(e->dst, 2 * len));
	EXPECT_EQ(-1, pattern_check(e->dst, e->dst, len, 1));
	EXPECT_EQ(-1, pattern_check(e->dst + len, e->dst + len, len, 2));
}

/* --------------------------------------------------------------- eligible */

FIXTURE(reloc) {
	struct env e;
};

FIXTURE_SETUP(reloc)
{
	const char *why = env_setup(&self->e, 1);

	if (why)
		SKIP(return, "%s", why);
}

FIXTURE_TEARDOWN(reloc)
{
	env_teardown(&self->e);
}

/* How a test finds the pages at their new place: expect_pageout/migrate. */
typedef void (*rmap_check)(struct __test_metadata *_metadata, char *p,
			   size_t len, char *base, unsigned int gen);

/* Small pages relocated by swapping halves, then @check on each half. */
static void relocate_then(struct __test_metadata *_metadata, struct env *e,
			  rmap_check check)
{
	size_t half = NPG * PG;

	ASSERT_EQ(0, fault_region(e->src, NPG));
	swap_and_expect(_metadata, e, NPG, true, RELOC);
	check(_metadata, e->dst, half, e->dst - half, 1);
	check(_metadata, e->dst + half, half, e->dst + half, 1);
}

TEST_F(reloc, pageout)
{
	if (!have_swap())
		SKIP(return, "no swap");
	relocate_then(_metadata, &self->e, expect_pageout);
}

TEST_F(reloc, migrate)
{
	if (!two_nodes())
		SKIP(return, "one NUMA node");
	relocate_then(_metadata, &self->e, expect_migrate);
}

/*
 * Pages swapped out before the move: the moved range holds swap entries,
 * some with their folio still in the swap cache, whose index is rewritten
 * too.  Swap-in must not need KSM's copy of a folio with a stale index
 * (ksm_swpin_copy), and must find the data.
 */
TEST_F(reloc, swapped_out_before)
{
	struct env *e = &self->e;
	size_t half = NPG * PG;
	long copies;

	if (!have_swap())
		SKIP(return, "no swap");
	ASSERT_EQ(0, fault_region(e->src, NPG));
	ASSERT_EQ(0, madvise(e->src, 2 * half, MADV_PAGEOUT));
	ASSERT_EQ((long)(2 * NPG), pagemap_pages(getpid(), e->src, 2 * half, PM_SWAP));
	copies = vmstat_get("ksm_swpin_copy");
	swap_and_expect(_metadata, e, NPG, true, RELOC);
	if (copies >= 0)
		EXPECT_EQ(copies, vmstat_get("ksm_swpin_copy"));
	expect_pageout(_metadata, e->dst, half, e->dst - half, 1);
	expect_pageout(_metadata, e->dst + half, half, e->dst + half, 1);
}

/*
 * Folios in the swap cache behind swap entries: a pipe holds a reference
 * to 8 pages of the half that relocates (vmsplice), so reclaim unmaps
 * them and writes them out but cannot free them.  Swap-in maps such a
 * folio again as it is, index included: the relocation must rewrite it,
 * or KSM's swap-in check copies the page (ksm_swpin_copy) and, without
 * KSM, the rmap could not find the page.
 */
TEST_F(reloc, swapcache_folios)
{
	struct env *e = &self->e;
	size_t half = NPG * PG;
	/* the lower half, which goes second and relocates in mode 1 */
	struct iovec iov = { .iov_base = e->src, .iov_len = 8 * PG };
	int fds[2];
	long copies;

	if (!have_swap())
		SKIP(return, "no swap");
	copies = vmstat_get("ksm_swpin_copy");
	if (copies < 0)
		SKIP(return, "no KSM: nothing counts a stale index at swap-in");
	ASSERT_EQ(0, fault_region(e->src, NPG));
	ASSERT_EQ(0, pipe(fds));
	ASSERT_EQ((ssize_t)iov.iov_len, vmsplice(fds[1], &iov, 1, 0));
	ASSERT_EQ(0, madvise(e->src, 2 * half, MADV_PAGEOUT));
	ASSERT_EQ((long)(2 * NPG), pagemap_pages(getpid(), e->src, 2 * half, PM_SWAP));
	swap_and_expect(_metadata, e, NPG, true, RELOC);
	/* nothing else was mapped: the 8 spliced folios, still cached */
	EXPECT_EQ(8, counted(&e->c, FOLIOS));
	/* swap_and_expect() read every page back in */
	EXPECT_EQ(copies, vmstat_get("ksm_swpin_copy"));
	close(fds[0]);
	close(fds[1]);
	expect_pageout(_metadata, e->dst + half, half, e->dst + half, 1);
}

/* mTHP: 64 KiB folios, each wholly inside the half it moves with. */
TEST_F(reloc, mthp)
{
	const char *knob = THP_DIR "/hugepages-64kB/enabled";
	struct env *e = &self->e;
	size_t half = 64 * PG;
	long large;

	if (access(knob, F_OK))
		SKIP(return, "no 64 KiB mTHP");
	ASSERT_EQ(0, env_knob(e, knob, "always"));
	ASSERT_EQ(e->src, map_fixed(e->src, 2 * half));
	pattern_fill(e->src, e->src, 2 * half, 1);
	large = kpageflag_pages(getpid(), e->src, 128, KPF_THP);
	if (large <= 0)
		SKIP(return, "no 64 KiB folios");
	swap_and_expect(_metadata, e, 64, true, RELOC);
	EXPECT_EQ(large, kpageflag_pages(getpid(), e->dst, 128, KPF_THP));
	if (two_nodes())
		expect_migrate(_metadata, e->dst, half, e->dst - half, 1);
	expect_pageout(_metadata, e->dst + half, half, e->dst + half, 1);
}

/* mlock()ed memory relocates and stays locked. */
TEST_F(reloc, mlocked)
{
	struct env *e = &self->e;
	size_t len = 2 * NPG * PG;
	long locked;

	ASSERT_EQ(0, fault_region(e->src, NPG));
	ASSERT_EQ(0, mlock(e->src, len));
	locked = status_kb(getpid(), "VmLck");
	swap_and_expect(_metadata, e, NPG, true, RELOC);
	EXPECT_EQ(locked, status_kb(getpid(), "VmLck"));
	EXPECT_EQ((long)(2 * NPG), kpageflag_pages(getpid(), e->dst, 2 * NPG, KPF_MLOCKED));
	EXPECT_EQ(0, munlock(e->dst, len));
}

/*
 * MREMAP_DONTUNMAP of a whole VMA right before another piece of its
 * anon_vma: the moved pages relocate and the two merge; the old range
 * stays mapped, empty.
 */
TEST_F(reloc, dontunmap)
{
	struct env *e = &self->e;
	size_t len = NPG * PG;
	char *a = e->src, *b = a + len, *to = e->dst + len;

	ASSERT_EQ(0, fault_region(a, NPG));
	/* a goes first, where nothing can merge with it */
	ASSERT_EQ(to, move(a, len, len, to, 0));
	/* then b, the whole VMA left, right before it, keeping its range */
	counts_read(&e->c);
	ASSERT_EQ(to - len, move(b, len, len, to - len, MREMAP_DONTUNMAP));
	EXPECT_EQ(1, counted(&e->c, RELOC));
	EXPECT_TRUE(one_vma(to - len, 2 * len));
	EXPECT_EQ(-1, pattern_check(to - 2 * len, to - len, len, 1));
	EXPECT_EQ(-1, pattern_check(to, to, len, 1));
	EXPECT_TRUE(one_vma(b, len));
	EXPECT_EQ(0, b[0]);
	EXPECT_EQ(0, b[len - 1]);
	expect_pageout(_metadata, to - len, len, to - 2 * len, 1);
}

/*
 * KSM after relocation: ksmd merges the relocated pages, and they unmerge
 * intact.  (mremap() unmerges KSM pages before it moves them.)
 */
TEST_F_TIMEOUT(reloc, ksm, 120)
{
	struct env *e = &self->e;
	size_t len = 2 * NPG * PG;
	char stat[4096];
	long merging = -1;

	if (access(KSM_DIR "/run", F_OK))
		SKIP(return, "no KSM");
	ASSERT_EQ(e->src, map_fixed(e->src, len));
	ASSERT_EQ(0, madvise(e->src, len, MADV_NOHUGEPAGE));
	memset(e->src, 0x5a, len);	/* every page the same: no pattern */
	ASSERT_EQ(0, madvise(e->src, len, MADV_MERGEABLE));
	counts_read(&e->c);
	ASSERT_EQ(e->dst, move(e->src + len / 2, len / 2, len / 2, e->dst, 0));
	ASSERT_EQ(e->dst + len / 2, move(e->src, len / 2, len / 2, e->dst + len / 2, 0));
	EXPECT_EQ(1, counted(&e->c, RELOC));
	EXPECT_TRUE(one_vma(e->dst, len));
	for (size_t off = 0; off < len; off += 512)
		ASSERT_EQ(0x5a, e->dst[off]);
	ASSERT_EQ(0, env_knob(e, KSM_DIR "/sleep_millisecs", "0"));
	ASSERT_EQ(0, env_knob(e, KSM_DIR "/run", "1"));
	for (int i = 0; i < 600 && merging < (long)len / (long)PG; i++) {
		usleep(100 * 1000);
		if (read_text("/proc/self/ksm_stat", stat, sizeof(stat)) > 0)
			merging = line_value(stat, "ksm_merging_pages", ' ');
	}
	EXPECT_EQ((long)len / (long)PG, merging);
	ASSERT_EQ(0, madvise(e->dst, len, MADV_UNMERGEABLE));
	for (size_t off = 0; off < len; off += 512)
		ASSERT_EQ(0x5a, e->dst[off]);
	expect_pageout(_metadata, e->dst, len, NULL, 0);
	for (size_t off = 0; off < len; off += 512)
		ASSERT_EQ(0x5a, e->dst[off]);
}

/* Reads the remap events of a userfaultfd until it is closed. */
static void *uffd_reader(void *arg)
{
	int fd = *(int *)arg;
	struct uffd_msg msg;

	while (read(fd, &msg, sizeof(msg)) == sizeof(msg))
		;
	return NULL;
}

/*
 * A range registered with userfaultfd stays registered after a move only
 * with UFFD_FEATURE_EVENT_REMAP; then it is not relocated.  Without it
 * the moved range is no longer registered and relocates.
 */
static void uffd_move(struct __test_metadata *_metadata, struct env *e,
		      bool follow)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = follow ? UFFD_FEATURE_EVENT_REMAP : 0,
	};
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)e->src, .len = 2 * NPG * PG },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	pthread_t reader;
	int fd;

	ASSERT_EQ(0, fault_region(e->src, NPG));
	fd = syscall(__NR_userfaultfd, O_CLOEXEC);
	if (fd < 0)
		SKIP(return, "userfaultfd: %s", strerror(errno));
	ASSERT_EQ(0, ioctl(fd, UFFDIO_API, &api));
	ASSERT_EQ(0, ioctl(fd, UFFDIO_REGISTER, &reg));
	/* mremap() waits until the remap event is read */
	ASSERT_EQ(0, pthread_create(&reader, NULL, uffd_reader, &fd));
	swap_and_expect(_metadata, e, NPG, !follow, follow ? F_UFFD : RELOC);
	close(fd);
	pthread_cancel(reader);
	pthread_join(reader, NULL);
}

TEST_F(reloc, userfaultfd_remap)
{
	uffd_move(_metadata, &self->e, true);
}

TEST_F(reloc, userfaultfd_dropped)
{
	uffd_move(_metadata, &self->e, false);
}

/* A VMA larger than vm.mremap_relocate_max_kbytes moves as before. */
TEST_F(reloc, over_max_kbytes)
{
	struct env *e = &self->e;

	ASSERT_EQ(0, fault_region(e->src, NPG));
	ASSERT_EQ(0, sysctl_set(MAX_KB_PATH, NPG * PG / 1024 - 4));
	swap_and_expect(_metadata, e, NPG, false, F_SIZE);
}

/* -------------------------------------------------------------------- THP */

FIXTURE(thp) {
	struct env e;
};

FIXTURE_VARIANT(thp) {
	size_t dst_phase;	/* offset of the destination from a PMD boundary */
};

/* moved by PMD: the huge pages stay PMD-mapped */
FIXTURE_VARIANT_ADD(thp, aligned) { .dst_phase = 0 };
/* moved by PTE: each huge page is then mapped by 512 PTEs */
FIXTURE_VARIANT_ADD(thp, unaligned) { .dst_phase = 16 * PG };

FIXTURE_SETUP(thp)
{
	const char *why;

	if (access(THP_DIR "/enabled", F_OK))
		SKIP(return, "no THP");
	why = env_setup(&self->e, 1);
	if (why)
		SKIP(return, "%s", why);
	self->e.dst += variant->dst_phase;
}

FIXTURE_TEARDOWN(thp)
{
	env_teardown(&self->e);
}

/* @len bytes of huge pages at @p with their pattern; false if not huge. */
static bool fault_huge(struct env *e, char *p, size_t len)
{
	if (env_knob(e, THP_DIR "/enabled", "madvise") ||
	    map_fixed(p, len) != p || madvise(p, len, MADV_HUGEPAGE))
		return false;
	pattern_fill(p, p, len, 1);
	return kpageflag_pages(getpid(), p, len / PG, KPF_THP) == (long)(len / PG);
}

TEST_F(thp, swap_halves)
{
	struct env *e = &self->e;

	if (!fault_huge(e, e->src, 2 * PMD_SZ))
		SKIP(return, "no huge pages to move");
	swap_and_expect(_metadata, e, PMD_PAGES, true, RELOC);
	/* still huge pages, which the rmap finds where they are */
	EXPECT_EQ((long)(2 * PMD_PAGES), kpageflag_pages(getpid(), e->dst, 2 * PMD_PAGES, KPF_THP));
	if (two_nodes())
		expect_migrate(_metadata, e->dst, PMD_SZ, e->dst - PMD_SZ, 1);
	expect_pageout(_metadata, e->dst + PMD_SZ, PMD_SZ, e->dst + PMD_SZ, 1);
	expect_pageout(_metadata, e->dst, PMD_SZ, e->dst - PMD_SZ, 1);
}

/*
 * A move that takes half of a huge page: the other half stays mapped at
 * the old place, and the folio has one index for both, so the move must
 * not relocate.
 */
TEST_F(thp, cut_huge_page)
{
	struct env *e = &self->e;
	size_t part = PMD_SZ / 2;
	char *src = e->src, *nb = e->dst - part;

	if (!fault_huge(e, src, 2 * PMD_SZ))
		SKIP(return, "no huge pages to move");
	/* the last part of the second huge page: a neighbour at dst */
	ASSERT_EQ(nb, move(src + 2 * PMD_SZ - part, part, part, nb, 0));
	counts_read(&e->c);
	/* the first part of the first huge page goes after it */
	ASSERT_EQ(e->dst, move(src, part, part, e->dst, 0));
	EXPECT_EQ(1, counted(&e->c, F_FOLIO));
	EXPECT_EQ(0, counted(&e->c, RELOC));
	EXPECT_TRUE(one_vma(e->dst, part));
	EXPECT_EQ(-1, pattern_check(e->dst, e->dst, part, 1));
	EXPECT_EQ(-1, pattern_check(src, src + part, 2 * PMD_SZ - 2 * part, 1));
	expect_pageout(_metadata, e->dst, part, e->dst, 1);
	expect_pageout(_metadata, src + part, part, src, 1);
}

/* ----------------------------------------------------------------- forked */

FIXTURE(forked) {
	struct env e;
};

FIXTURE_VARIANT(forked) {
	bool cow;	/* the fork shares PTE tables (CLONE_COW_PTE) */
};

FIXTURE_VARIANT_ADD(forked, plain) { .cow = false };
FIXTURE_VARIANT_ADD(forked, cow) { .cow = true };

FIXTURE_SETUP(forked)
{
	const char *why = env_setup(&self->e, 1);

	if (why)
		SKIP(return, "%s", why);
}

FIXTURE_TEARDOWN(forked)
{
	env_teardown(&self->e);
}

/* A child that holds its copy until told, then checks it. */
struct holder {
	int go[2];		/* the parent writes a byte when done */
	char *p;
	size_t len;
};

static int holder_check(void *arg)
{
	struct holder *h = arg;
	char c;

	close(h->go[1]);
	if (read(h->go[0], &c, 1) != 1)
		return 2;
	return pattern_check(h->p, h->p, h->len, 1) >= 0;
}

/* Fork (plain or CoW) a holder of [p, p + len); -1, or its pid. */
static pid_t holder_start(struct __test_metadata *_metadata, struct holder *h,
			  char *p, size_t len, bool cow)
{
	long shared = 0;
	pid_t pid;

	h->p = p;
	h->len = len;
	if (pipe(h->go))
		return -1;
	if (cow) {
		pid = cow_child(holder_check, h, &shared);
		if (pid > 0 && shared <= 0)
			TH_LOG("the CoW fork shared no table");
		return shared > 0 ? pid : -1;
	}
	pid = fork();
	if (pid == 0)
		_exit(holder_check(h));
	return pid;
}

static int holder_finish(struct holder *h, pid_t pid)
{
	close(h->go[0]);
	if (write(h->go[1], "x", 1) != 1)
		return -1;
	close(h->go[1]);
	return wait_code(pid);
}

/*
 * A live child can reach the pages through the anon_vma: after a plain
 * fork they are mapped twice; after CLONE_COW_PTE the tables are shared,
 * and the mapcount of 1 and PageAnonExclusive say nothing.  Neither
 * relocates (the tables move whole, still shared), and the child keeps
 * its data whatever the parent writes after the move.
 */
TEST_F(forked, child_alive)
{
	struct env *e = &self->e;
	size_t len = 4 * PMD_SZ;
	struct holder h;
	pid_t pid;

	ASSERT_EQ(0, fault_region(e->src, 2 * PMD_PAGES));
	pid = holder_start(_metadata, &h, e->src, len, variant->cow);
	ASSERT_LT(0, pid);
	swap_and_expect(_metadata, e, 2 * PMD_PAGES, false, F_FORKED);
	pattern_fill(e->dst, e->dst, len, 2);
	EXPECT_EQ(0, holder_finish(&h, pid));
	EXPECT_EQ(-1, pattern_check(e->dst, e->dst, len, 2));
}

/*
 * Once the child has exited nothing else can reach the pages; after a CoW
 * fork the tables are still write-protected, mapped by this mm alone.
 */
TEST_F(forked, child_exited)
{
	struct env *e = &self->e;
	size_t len = 4 * PMD_SZ;
	struct holder h;
	pid_t pid;

	ASSERT_EQ(0, fault_region(e->src, 2 * PMD_PAGES));
	pid = holder_start(_metadata, &h, e->src, len, variant->cow);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, holder_finish(&h, pid));
	swap_and_expect(_metadata, e, 2 * PMD_PAGES, true, RELOC);
	expect_pageout(_metadata, e->dst, len / 2, e->dst - len / 2, 1);
	pattern_fill(e->dst, e->dst, len, 2);
	EXPECT_EQ(-1, pattern_check(e->dst, e->dst, len, 2));
}

/*
 * A grandchild whose parent has exited still reaches the pages (the
 * exited child's anon_vma still links it): no relocation, and it keeps
 * its data.
 */
TEST_F(forked, grandchild)
{
	struct env *e = &self->e;
	size_t len = 4 * PMD_SZ;
	int ready[2], go[2];
	pid_t mid, g;
	char c;

	ASSERT_EQ(0, fault_region(e->src, 2 * PMD_PAGES));
	/* the grandchild is reparented to us, so we can wait for it */
	ASSERT_EQ(0, prctl(PR_SET_CHILD_SUBREAPER, 1));
	ASSERT_EQ(0, pipe(ready));
	ASSERT_EQ(0, pipe(go));
	mid = fork();
	ASSERT_LE(0, mid);
	if (mid == 0) {
		g = variant->cow ? cowpt_fork(CLONE_COW_PTE) : fork();
		if (g == 0) {
			/* a parent that gives up closes go[1]: no hang */
			close(go[1]);
			close(ready[0]);
			if (read(go[0], &c, 1) != 1)
				_exit(2);
			_exit(pattern_check(e->src, e->src, len, 1) >= 0);
		}
		_exit(write(ready[1], &g, sizeof(g)) != sizeof(g) || g < 0);
	}
	close(go[0]);
	close(ready[1]);
	ASSERT_EQ(0, wait_code(mid));
	ASSERT_EQ(sizeof(g), read(ready[0], &g, sizeof(g)));
	swap_and_expect(_metadata, e, 2 * PMD_PAGES, false, F_FORKED);
	pattern_fill(e->dst, e->dst, len, 2);
	ASSERT_EQ(1, write(go[1], "x", 1));
	close(go[1]);
	EXPECT_EQ(0, wait_code(g));
	close(ready[0]);
}

TEST_HARNESS_MAIN
