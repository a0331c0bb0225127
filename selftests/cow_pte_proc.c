// SPDX-License-Identifier: GPL-2.0
/*
 * cow_pte_proc - what /proc says about memory behind shared PTE tables
 * must be what it says after a plain fork.  Tools read it: Redis measures
 * its snapshot's copy-on-write cost from the child's Private_Dirty in
 * /proc/self/smaps, smem sums Pss, CRIU and others read pagemap's
 * PM_MMAP_EXCLUSIVE.  A page in a shared table is mapped through one PTE
 * (mapcount 1) but reaches every sharer; reported as private, a snapshot
 * child looked as if it had copied everything.
 *
 * Each case forks twice, plainly and with CLONE_COW_PTE, does the same
 * writes after each fork, and compares the smaps fields of the region and
 * its PM_MMAP_EXCLUSIVE pages, in parent and child, between the two.
 * RSS in /proc/PID/status is not compared: it follows the owner model
 * (Documentation/cow-pte-design.md, "Accounting model").
 */
#define _GNU_SOURCE
#include "kselftest_harness.h"
#include "cow_pte_util.h"

#define LEN		(8UL << 20)

static const char *const fields[] = {
	"Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean",
	"Private_Dirty", "Anonymous",
};
#define NR_FIELDS	(sizeof(fields) / sizeof(fields[0]))
#define NR_VALUES	(NR_FIELDS + 1)	/* and the exclusive pages */

/* The smaps fields (kB) of the VMA starting at @addr in @pid; 0 or -1. */
static int smaps_of(pid_t pid, const char *addr, long *val)
{
	char path[64], line[256];
	bool in = false;
	int found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end;

		/* a VMA's line starts with its range, in lower-case hex */
		if (!(line[0] >= 'A' && line[0] <= 'Z') &&
		    sscanf(line, "%lx-%lx ", &start, &end) == 2) {
			in = start == (unsigned long)addr;
			continue;
		}
		for (size_t i = 0; in && i < NR_FIELDS; i++) {
			size_t n = strlen(fields[i]);

			if (!strncmp(line, fields[i], n) && line[n] == ':') {
				val[i] = strtol(line + n + 1, NULL, 10);
				found++;
			}
		}
	}
	fclose(f);
	return found == NR_FIELDS ? 0 : -1;
}

static int values_of(pid_t pid, const char *addr, long *val)
{
	if (smaps_of(pid, addr, val))
		return -1;
	val[NR_FIELDS] = pagemap_pages(pid, addr, LEN, PM_EXCLUSIVE);
	return val[NR_FIELDS] < 0 ? -1 : 0;
}

enum writer { NOBODY, CHILD_ONE_PER_TABLE, PARENT_ALL };

struct snap {
	long parent[NR_VALUES], child[NR_VALUES];
	long shared;		/* tables the fork shared */
};

/*
 * Fork (@cow: with CLONE_COW_PTE), let @who write, and read both
 * sides' values while the child is still alive.  0 or -1.
 */
static int measure(char *a, bool cow, enum writer who, struct snap *s)
{
	int go[2], done[2], ret = -1;
	long before = vmstat_get("cow_pte_shared");
	char c;
	pid_t pid;

	if (pipe(go) || pipe(done))
		return -1;
	pid = cowpt_fork(cow ? CLONE_COW_PTE : 0);
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(go[1]);
		close(done[0]);
		if (who == CHILD_ONE_PER_TABLE)
			for (size_t off = 0; off < LEN; off += PMD_SZ)
				pattern_fill(a, a + off, PG, 3);
		if (write(done[1], "x", 1) != 1)
			_exit(1);
		/* stay mapped until the parent has looked */
		_exit(read(go[0], &c, 1) < 0);
	}
	s->shared = vmstat_get("cow_pte_shared") - before;
	close(go[0]);
	close(done[1]);
	if (who == PARENT_ALL)
		pattern_fill(a, a, LEN, 2);
	if (read(done[0], &c, 1) == 1 &&
	    !values_of(getpid(), a, s->parent) && !values_of(pid, a, s->child))
		ret = 0;
	close(go[1]);
	close(done[0]);
	if (wait_code(pid))
		ret = -1;
	return ret;
}

FIXTURE(proc) {
	char *a;
};

FIXTURE_VARIANT(proc) {
	enum writer who;
};

/* A snapshot child that only reads: everything is shared. */
FIXTURE_VARIANT_ADD(proc, nobody_writes) { .who = NOBODY };
/* The child writes one page per 2 MiB: tables broken, one page each copied. */
FIXTURE_VARIANT_ADD(proc, child_writes_one_per_table) { .who = CHILD_ONE_PER_TABLE };
/* The parent rewrites everything: the child alone maps the old pages. */
FIXTURE_VARIANT_ADD(proc, parent_writes_all) { .who = PARENT_ALL };

FIXTURE_SETUP(proc)
{
	self->a = map_at_phase(LEN, 0);
	ASSERT_NE(NULL, self->a);
	pattern_fill(self->a, self->a, LEN, 1);
}

FIXTURE_TEARDOWN(proc)
{
	munmap(self->a, LEN);
}

TEST_F(proc, smaps_and_pagemap_as_plain_fork)
{
	struct snap plain, cow;

	/* the same start for both: every page private to the parent again */
	ASSERT_EQ(0, measure(self->a, false, variant->who, &plain));
	munmap(self->a, LEN);
	self->a = map_at_phase(LEN, 0);
	ASSERT_NE(NULL, self->a);
	pattern_fill(self->a, self->a, LEN, 1);
	if (measure(self->a, true, variant->who, &cow) && (errno == EINVAL || errno == EOPNOTSUPP))
		SKIP(return, "clone3(CLONE_COW_PTE): %s", strerror(errno));
	ASSERT_LE((long)(LEN / PMD_SZ), cow.shared) TH_LOG("the fork shared %ld tables", cow.shared);

	for (size_t i = 0; i < NR_VALUES; i++) {
		const char *name = i < NR_FIELDS ? fields[i] : "PM_MMAP_EXCLUSIVE pages";

		TH_LOG("%-24s parent %6ld %6ld   child %6ld %6ld   (plain, cow)", name,
		       plain.parent[i], cow.parent[i], plain.child[i], cow.child[i]);
	}
	for (size_t i = 0; i < NR_VALUES; i++) {
		const char *name = i < NR_FIELDS ? fields[i] : "PM_MMAP_EXCLUSIVE pages";

		EXPECT_EQ(plain.parent[i], cow.parent[i]) TH_LOG("parent %s", name);
		EXPECT_EQ(plain.child[i], cow.child[i]) TH_LOG("child %s", name);
	}
}

TEST_HARNESS_MAIN
