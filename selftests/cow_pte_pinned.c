// SPDX-License-Identifier: GPL-2.0
/*
 * cow_pte_pinned - a CoW fork copies the PTE table that holds a pinned page,
 * and only that table, however the page came to be in it.
 *
 * A pin marks the table it is taken through, and fork looks for pins only
 * in marked tables.  A pinned page can reach a table without a pin taken
 * through it: a huge page pinned through its PMD entry and split later, or
 * a page mremap moved out of the table it was pinned through.  Each case
 * pins one page with an io_uring fixed buffer (a long-term pin, held until
 * the end), brings it where the case says, CoW-forks, and checks:
 *
 *  - the fork counted exactly one table in cow_pte_pinned, and shared the
 *    other tables of the region;
 *  - the parent writes the pinned page and still maps the same page frame
 *    (fork gave the child a copy, as fork() does; a shared table would
 *    make the parent's write copy the page away from the pin);
 *  - the child still reads the data of before the fork.
 *
 * Needs root (page frame numbers in pagemap), io_uring and, for the huge
 * page case, THP.
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "cowpt.h"
#include "cow_pte_util.h"

#define NTABLES		4
#define LEN		(NTABLES * PMD_SZ)
#define PIN_AT		(PMD_SZ + 7 * PG)	/* a page of the second table */

enum how { PIN_TABLE, PIN_THP_SPLIT, PIN_MREMAP };

/* The page frame @p maps in this process, or 0. */
static uint64_t pfn_of(const char *p)
{
	uint64_t ent;
	int fd = open("/proc/self/pagemap", O_RDONLY);
	ssize_t n = fd < 0 ? -1 :
		pread(fd, &ent, sizeof(ent), (uintptr_t)p / PG * sizeof(ent));

	if (fd >= 0)
		close(fd);
	if (n != sizeof(ent) || !(ent & PM_PRESENT))
		return 0;
	return ent & ((1ULL << 55) - 1);
}

FIXTURE(pinned) {
	char *base;
	int ring;
};

FIXTURE_VARIANT(pinned) {
	enum how how;
};

FIXTURE_VARIANT_ADD(pinned, in_its_table) { PIN_TABLE };
FIXTURE_VARIANT_ADD(pinned, huge_page_split_after) { PIN_THP_SPLIT };
FIXTURE_VARIANT_ADD(pinned, moved_by_mremap) { PIN_MREMAP };

FIXTURE_SETUP(pinned)
{
	self->ring = -1;
	if (geteuid())
		SKIP(return, "needs root for page frame numbers");
}

FIXTURE_TEARDOWN(pinned)
{
	if (self->ring >= 0)
		close(self->ring);
}

/*
 * Map the region and pin the page at PIN_AT as the variant says.  Returns
 * NULL with a reason in *why for a skip.
 */
static char *setup_region(struct __test_metadata *_metadata, int *ring,
			  enum how how, const char **why)
{
	char *base = map_at_phase(LEN, 0), *src;
	const char *what;

	ASSERT_NE(NULL, base);
	switch (how) {
	case PIN_TABLE:
		pattern_fill(base, base, LEN, 1);
		*ring = pin_page(base + PIN_AT, &what);
		break;
	case PIN_THP_SPLIT:
		/* the second table is a huge page when pinned */
		if (madvise(base, LEN, MADV_NOHUGEPAGE) ||
		    madvise(base + PMD_SZ, PMD_SZ, MADV_HUGEPAGE)) {
			*why = "MADV_HUGEPAGE refused";
			return NULL;
		}
		pattern_fill(base, base, LEN, 1);
		if (kpageflag_pages(getpid(), base + PIN_AT, 1, KPF_THP) != 1) {
			*why = "no huge page for the second table";
			return NULL;
		}
		*ring = pin_page(base + PIN_AT, &what);
		/*
		 * Split the PMD mapping, not the VMA: zap one other page of
		 * the huge page, which only a PTE mapping can do, and write
		 * it again.
		 */
		ASSERT_EQ(0, madvise(base + PMD_SZ, PG, MADV_DONTNEED));
		ASSERT_EQ(0, pfn_of(base + PMD_SZ));
		pattern_fill(base, base + PMD_SZ, PG, 1);
		break;
	case PIN_MREMAP:
		/*
		 * Pin in a mapping that starts one page into a table, then
		 * move all of it to the region: mremap moves its PTEs one by
		 * one (it cannot move whole tables), and the second table of
		 * the region gets the pinned page without a pin through it.
		 */
		src = map_at_phase(LEN, PG);
		ASSERT_NE(NULL, src);
		pattern_fill(src, src, LEN, 1);
		*ring = pin_page(src + PIN_AT, &what);
		ASSERT_EQ(base, mremap(src, LEN, LEN,
				       MREMAP_MAYMOVE | MREMAP_FIXED, base));
		break;
	}
	if (*ring < 0) {
		*why = what;
		return NULL;
	}
	return base;
}

TEST_F(pinned, fork_copies_its_table)
{
	const char *why = NULL;
	long shared0, pinned0, shared, pinned;
	uint64_t pfn0, pfn1;
	char *p, *pin;
	int go[2], code;
	pid_t child;

	p = setup_region(_metadata, &self->ring, variant->how, &why);
	if (!p)
		SKIP(return, "%s: %s", why, strerror(errno));
	pin = p + PIN_AT;
	pfn0 = pfn_of(pin);
	ASSERT_NE(0, pfn0);
	ASSERT_EQ(0, pipe(go));

	shared0 = vmstat_get("cow_pte_shared");
	pinned0 = vmstat_get("cow_pte_pinned");
	child = cowpt_fork(CLONE_COW_PTE);
	if (child < 0 && errno == EOPNOTSUPP)
		SKIP(return, "clone3(CLONE_COW_PTE) refused: cow_pte_mode off?");
	ASSERT_LE(0, child);
	if (child == 0) {
		char c;

		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(2);
		_exit(pattern_check(p, p, LEN, 1) >= 0);
	}
	close(go[0]);
	shared = vmstat_get("cow_pte_shared") - shared0;
	pinned = vmstat_get("cow_pte_pinned") - pinned0;
	EXPECT_EQ(1, pinned);
	EXPECT_LE(NTABLES - 1, shared);

	/* The parent writes the pinned page: it must keep that page. */
	pattern_fill(p, pin, PG, 2);
	pfn1 = pfn_of(pin);
	EXPECT_EQ(pfn0, pfn1) {
		TH_LOG("the parent's write moved the pinned page away from the pin");
	}
	ASSERT_EQ(1, write(go[1], "x", 1));
	code = wait_code(child);
	EXPECT_EQ(0, code) {
		TH_LOG("the child's data changed");
	}
}

TEST_HARNESS_MAIN
