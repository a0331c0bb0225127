// SPDX-License-Identifier: GPL-2.0
/*
 * cow_pte_trace - the cow_pte tracepoints say what happened to each table,
 * in the process that did it, so that `perf stat -e 'cow_pte:*'` counts
 * them per process and `perf record -e cow_pte:break -g` finds the path
 * that copies tables.
 *
 * A parent maps 8 MiB (four tables), a 1 MiB region that covers half a
 * table, and 2 MiB registered with userfaultfd, and CoW-forks.  Then:
 *
 *   fork            parent: share x4 (first=1), fork_copy partial and uffd
 *   child writes    child:  break why=fault owner=0 entries=512 (table 0)
 *   child DONTNEED  child:  drop owner=0 (table 1)
 *   child exits     child:  drop owner=0 (tables 2 and 3)
 *   parent writes   parent: reuse x4
 *   second fork, parent writes table 0:
 *                   parent: share (first=1), break why=fault owner=1
 *                   entries=512, adopt adopted=1 (the child is charged)
 *
 * Every event of the cow_pte system on the test's range is compared with
 * this list, with the pid that must have caused it; nothing more, nothing
 * less.  Needs tracefs (mounted here if it is not) and root.
 */
#define _GNU_SOURCE
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>

#include "kselftest_harness.h"
#include "cow_pte_util.h"

#define TRACEFS		"/sys/kernel/tracing"
#define TABLES		4
#define LEN		(TABLES * PMD_SZ)

struct event {
	char name[32];
	pid_t pid;
	unsigned long addr;
	char args[96];		/* the fields after addr, as printed */
};

/* Truncate a tracefs file and write @s (nothing: clear it); 0 or -1. */
static int tracefs_write(const char *file, const char *s)
{
	size_t len = strlen(s);
	char path[128];
	int fd, ret = 0;

	snprintf(path, sizeof(path), TRACEFS "/%s", file);
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (len && write(fd, s, len) != (ssize_t)len)
		ret = -1;
	close(fd);
	return ret;
}

/* Start tracing the cow_pte events of this process and its children. */
static int trace_start(void)
{
	char pid[32];

	if (access(TRACEFS "/trace", F_OK) &&
	    mount("tracefs", TRACEFS, "tracefs", 0, NULL))
		return -1;
	snprintf(pid, sizeof(pid), "%d", getpid());
	if (tracefs_write("tracing_on", "0") || tracefs_write("trace", "") ||
	    tracefs_write("options/event-fork", "1") ||
	    tracefs_write("set_event_pid", pid) ||
	    tracefs_write("events/cow_pte/enable", "1"))
		return -1;
	return tracefs_write("tracing_on", "1");
}

/*
 * Stop, and read the events on [lo, hi) into @ev (at most @max); their
 * number, or -1.
 */
static int trace_stop(unsigned long lo, unsigned long hi, struct event *ev, int max)
{
	char line[512];
	int n = 0;
	FILE *f;

	tracefs_write("tracing_on", "0");
	tracefs_write("events/cow_pte/enable", "0");
	tracefs_write("set_event_pid", "");
	f = fopen(TRACEFS "/trace", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		struct event e = { 0 };
		char *dash, *name, *addr;

		/* "  comm-PID  [CPU] flags  TIME: cow_pte_NAME: addr=0x... rest" */
		name = strstr(line, ": cow_pte_");
		addr = strstr(line, ": addr=");
		if (line[0] == '#' || !name || !addr)
			continue;
		*name = '\0';
		dash = strrchr(line, '[');
		while (dash && dash > line && *dash != '-')
			dash--;
		if (!dash || sscanf(dash + 1, "%d", &e.pid) != 1)
			continue;
		sscanf(name + 2, "%31[^:]", e.name);
		e.addr = strtoul(addr + 7, &addr, 16);
		while (*addr == ' ')
			addr++;
		snprintf(e.args, sizeof(e.args), "%s", addr);
		e.args[strcspn(e.args, "\n")] = '\0';
		if (e.addr < lo || e.addr >= hi)
			continue;
		if (n < max)
			ev[n] = e;
		n++;
	}
	fclose(f);
	return n;
}

/*
 * Take the first event of @ev that matches and mark it used; false if
 * there is none.
 */
static bool take(struct event *ev, int n, const char *name, pid_t pid,
		 unsigned long addr, const char *args)
{
	for (int i = 0; i < n; i++) {
		if (ev[i].pid && ev[i].pid == pid && ev[i].addr == addr &&
		    !strcmp(ev[i].name, name) && !strcmp(ev[i].args, args)) {
			ev[i].pid = 0;
			return true;
		}
	}
	return false;
}

/* The child of the first fork: a break, a drop, and the drops of exit. */
static int first_child(char *p)
{
	p[0] = 1;				/* table 0: break */
	return madvise(p + PMD_SZ, PMD_SZ, MADV_DONTNEED) ? 1 : 0; /* table 1 */
}

TEST(events_name_the_table_the_process_and_the_cause)
{
	struct event ev[64];
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_api api = { .api = UFFD_API };
	char *p, *half, *uf, args[96];
	unsigned long lo, hi;
	pid_t parent = getpid(), c1, c2;
	int uffd, n, sleeper[2];

	if (geteuid())
		SKIP(return, "tracefs needs root");
	/* one reservation, so that the three regions sit in [lo, hi) */
	p = map_at_phase(LEN + 3 * PMD_SZ, 0);
	ASSERT_NE(NULL, p);
	half = p + LEN + PMD_SZ;		/* half a table, a hole before */
	uf = p + LEN + 2 * PMD_SZ;		/* a whole table, uffd */
	ASSERT_EQ(0, munmap(p + LEN, PMD_SZ));
	ASSERT_EQ(0, munmap(half + PMD_SZ / 2, PMD_SZ / 2));
	ASSERT_EQ(0, madvise(p, LEN, MADV_NOHUGEPAGE));
	ASSERT_EQ(0, madvise(half, PMD_SZ / 2, MADV_NOHUGEPAGE));
	ASSERT_EQ(0, madvise(uf, PMD_SZ, MADV_NOHUGEPAGE));
	memset(p, 0x5a, LEN);
	memset(half, 0x5a, PMD_SZ / 2);
	memset(uf, 0x5a, PMD_SZ);
	uffd = syscall(__NR_userfaultfd, O_CLOEXEC);
	ASSERT_LE(0, uffd) TH_LOG("userfaultfd: %s", strerror(errno));
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_API, &api));
	reg.range.start = (uintptr_t)uf;
	reg.range.len = PMD_SZ;
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_REGISTER, &reg));
	lo = (uintptr_t)p;
	hi = (uintptr_t)uf + PMD_SZ;

	ASSERT_EQ(0, trace_start()) TH_LOG("tracefs: %s", strerror(errno));
	c1 = cowpt_fork(CLONE_COW_PTE);
	ASSERT_LE(0, c1) TH_LOG("clone3(CLONE_COW_PTE): %s", strerror(errno));
	if (c1 == 0)
		_exit(first_child(p));
	ASSERT_EQ(0, wait_code(c1));
	for (int t = 0; t < TABLES; t++)
		p[t * PMD_SZ] = 2;			/* reuse x4 */

	ASSERT_EQ(0, pipe(sleeper));
	c2 = cowpt_fork(CLONE_COW_PTE);
	ASSERT_LE(0, c2);
	if (c2 == 0) {
		char c;

		close(sleeper[1]);
		_exit(read(sleeper[0], &c, 1) == 0 ? 0 : 1);
	}
	close(sleeper[0]);
	p[0] = 3;			/* the owner copies, the child adopts */
	n = trace_stop(lo, hi, ev, 64);
	close(sleeper[1]);
	ASSERT_EQ(0, wait_code(c2));
	ASSERT_LE(0, n) TH_LOG("reading " TRACEFS "/trace: %s", strerror(errno));
	ASSERT_GE(64, n);

#define EXPECT_EVENT(name, pid, addr, args)				\
	EXPECT_TRUE(take(ev, n, name, pid, (uintptr_t)(addr), args))	\
		TH_LOG("no %s %s at %p from %d", name, args, (void *)(addr), pid)

	/* first fork, in the parent: then the second fork shares them anew */
	for (int t = 0; t < TABLES; t++) {
		EXPECT_EVENT("cow_pte_share", parent, p + t * PMD_SZ, "first=1");
		EXPECT_EVENT("cow_pte_reuse", parent, p + t * PMD_SZ, "");
		EXPECT_EVENT("cow_pte_share", parent, p + t * PMD_SZ, "first=1");
	}
	EXPECT_EVENT("cow_pte_fork_copy", parent, half, "why=partial");
	EXPECT_EVENT("cow_pte_fork_copy", parent, uf, "why=uffd");
	EXPECT_EVENT("cow_pte_fork_copy", parent, half, "why=partial");
	EXPECT_EVENT("cow_pte_fork_copy", parent, uf, "why=uffd");
	/* the first child */
	EXPECT_EVENT("cow_pte_break", c1, p, "why=fault owner=0 entries=512");
	EXPECT_EVENT("cow_pte_drop", c1, p + PMD_SZ, "owner=0");
	EXPECT_EVENT("cow_pte_drop", c1, p + 2 * PMD_SZ, "owner=0");
	EXPECT_EVENT("cow_pte_drop", c1, p + 3 * PMD_SZ, "owner=0");
	/* the owner's copy of a table the second child still maps */
	EXPECT_EVENT("cow_pte_break", parent, p, "why=fault owner=1 entries=512");
	EXPECT_EVENT("cow_pte_adopt", parent, p, "adopted=1");

	for (int i = 0; i < n && i < 64; i++) {
		snprintf(args, sizeof(args), "%s", ev[i].args);
		EXPECT_EQ(0, ev[i].pid)
			TH_LOG("unexpected: %s %s at %#lx from %d", ev[i].name,
			       args, ev[i].addr, ev[i].pid);
	}
	close(uffd);
	munmap(p, hi - lo);
}

TEST_HARNESS_MAIN
