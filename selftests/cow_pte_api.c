// SPDX-License-Identifier: GPL-2.0
/*
 * cow_pte_api - the user interface of copy-on-write PTE tables:
 *
 *  - clone3(CLONE_COW_PTE) works and gives a working child, and is
 *    rejected with EINVAL together with CLONE_VM, CLONE_VFORK or CLONE_THREAD
 *    (while the same flags without CLONE_COW_PTE are accepted, so the
 *    EINVAL is really about the combination);
 *  - /proc/sys/vm/cow_pte_mode reads "off", "opt-in" or "always", accepts
 *    exactly those words (optional trailing newline), rejects anything else
 *    with EINVAL and keeps its value;
 *  - "off": CLONE_COW_PTE fails with EOPNOTSUPP, plain forks work and
 *    nothing is shared; "opt-in": only CLONE_COW_PTE shares; "always":
 *    every fork shares (vmstat cow_pte_shared).
 *  - a machine that cannot share tables (a Xen PV guest) keeps the mode
 *    "off" whatever the command line says, and refuses every request to
 *    share with EOPNOTSUPP.
 *
 * Tests that change the mode need root and restore the original mode in
 * the fixture teardown.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "cowpt.h"
#include "cow_pte_util.h"

/* Programs written against the flag's old name keep working. */
_Static_assert(CLONE_COW_PGTABLE == CLONE_COW_PTE,
	       "cowpt.h: CLONE_COW_PGTABLE is not an alias of CLONE_COW_PTE");

/* Fully covered (shareable) PTE tables in the region forked by the tests. */
#define API_PMDS	8
#define API_PAGES	(API_PMDS * PMD_PAGES)

/*
 * clone3() with flags whose child must not touch memory (CLONE_VM without
 * a stack, CLONE_THREAD, CLONE_VFORK): if the kernel wrongly creates a
 * child, the child exits at once without using the stack it shares with
 * the parent.  Returns the child's pid (or tid), or -1 with errno.
 */
static long clone3_exit_child(uint64_t flags, uint64_t exit_signal)
{
	struct cowpt_clone_args args;
	long ret;

	memset(&args, 0, sizeof(args));
	args.flags = flags;
	args.exit_signal = exit_signal;
#if defined(__x86_64__)
	asm volatile("syscall\n\t"
		     "test %%rax, %%rax\n\t"
		     "jnz 1f\n\t"
		     "mov $60, %%eax\n\t"	/* child: exit(0), stack untouched */
		     "xor %%edi, %%edi\n\t"
		     "syscall\n\t"
		     "1:\n\t"
		     : "=a"(ret)
		     : "0"((long)__NR_clone3), "D"(&args), "S"(sizeof(args))
		     : "rcx", "r11", "memory");
	if (ret < 0 && ret > -4096) {
		errno = -ret;
		return -1;
	}
#else
	ret = syscall(__NR_clone3, &args, sizeof(args));
	if (ret == 0)
		syscall(SYS_exit, 0);
#endif
	return ret;
}

/* Reap a child that clone3_exit_child() should not have created. */
static void reap_unexpected(long pid, uint64_t flags)
{
	int status;

	if (pid > 0 && !(flags & CLONE_THREAD))
		waitpid(pid, &status, __WALL);
}

static uint64_t word_of(size_t page)
{
	return 0xc0de000000000000ULL | page;
}

/* API_PMDS 2 MiB aligned, fully touched PTE tables. */
static char *touched_region(void)
{
	char *mem = map_at_phase(API_PMDS * PMD_SZ, 0);

	if (!mem)
		return NULL;
	madvise(mem, API_PMDS * PMD_SZ, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < API_PAGES; i++)
		*(uint64_t *)(mem + i * PG) = word_of(i);
	return mem;
}

enum fork_how { FORK_LIBC, FORK_CLONE3, FORK_COW };

static const char *const how_name[] = {
	[FORK_LIBC] = "fork()",
	[FORK_CLONE3] = "clone3(0)",
	[FORK_COW] = "clone3(CLONE_COW_PTE)",
};

/*
 * Fork one way; the child checks that it sees the parent's data, writes
 * its own and checks that, then exits 0 (1-2 on a mismatch).  The parent
 * then checks its data is unchanged (100 on a mismatch).  Returns the
 * child's exit code, or -1 with errno if the fork failed.
 */
static int fork_and_check(char *mem, enum fork_how how)
{
	pid_t pid;
	int code;

	switch (how) {
	case FORK_LIBC:
		pid = fork();
		break;
	case FORK_CLONE3:
		pid = cowpt_fork(0);
		break;
	default:
		pid = cowpt_fork(CLONE_COW_PTE);
		break;
	}
	if (pid < 0)
		return -1;
	if (!pid) {
		for (size_t i = 0; i < API_PAGES; i++)
			if (*(uint64_t *)(mem + i * PG) != word_of(i))
				_exit(1);
		for (size_t i = 0; i < API_PAGES; i += 7)
			*(uint64_t *)(mem + i * PG) = ~word_of(i);
		for (size_t i = 0; i < API_PAGES; i++)
			if (*(uint64_t *)(mem + i * PG) !=
			    (i % 7 ? word_of(i) : ~word_of(i)))
				_exit(2);
		_exit(0);
	}
	code = wait_code(pid);
	for (size_t i = 0; i < API_PAGES; i++)
		if (*(uint64_t *)(mem + i * PG) != word_of(i))
			return 100;
	return code;
}

/*
 * A Xen PV guest: Xen owns the page tables of every mm (it pins them per
 * mm), so the kernel must refuse to share any.  Told from /sys/hypervisor,
 * not from anything cowpt reports.
 */
static bool xen_pv_guest(void)
{
	char type[16], guest[16];

	return read_text("/sys/hypervisor/type", type, sizeof(type)) > 0 &&
	       !strcmp(type, "xen\n") &&
	       read_text("/sys/hypervisor/guest_type", guest, sizeof(guest)) > 0 &&
	       !strcmp(guest, "PV\n");
}

FIXTURE(api) {
	char orig[32];
	bool have_mode;
	bool refused;		/* the machine cannot share tables */
};

/*
 * Remember the mode; as root, start every test from the default "opt-in"
 * (the tests may run under cow_pte=off or always).
 */
FIXTURE_SETUP(api)
{
	char now[32];

	self->have_mode = !cow_mode_get(self->orig, sizeof(self->orig));
	self->refused = xen_pv_guest();
	if (self->have_mode && !self->refused && geteuid() == 0 &&
	    !cow_mode_get(now, sizeof(now)) && strcmp(now, "opt-in"))
		cow_mode_set("opt-in");
}

FIXTURE_TEARDOWN(api)
{
	char now[32];

	if (!self->have_mode || geteuid() != 0)
		return;
	if (cow_mode_get(now, sizeof(now)) || strcmp(now, self->orig)) {
		cow_mode_set(self->orig);
		EXPECT_EQ(0, cow_mode_get(now, sizeof(now)));
		EXPECT_STREQ(self->orig, now);
	}
}

#define REQUIRE_MODE_FILE() do { \
	if (!self->have_mode) { \
		TH_LOG("%s missing: kernel without cowpt?", COWPT_MODE_PATH); \
		ASSERT_TRUE(self->have_mode); \
	} \
} while (0)

#define SET_MODE(word) do { \
	REQUIRE_MODE_FILE(); \
	if (geteuid() != 0) \
		SKIP(return, "changing cow_pte_mode needs root"); \
	if (self->refused && strcmp(word, "off")) \
		SKIP(return, "a Xen PV guest cannot share tables (machine_refuses)"); \
	ASSERT_EQ(0, cow_mode_set(word)); \
} while (0)

/* Run with opt-in or always, which both accept CLONE_COW_PTE. */
#define REQUIRE_COW_ALLOWED() do { \
	char __m[32]; \
	REQUIRE_MODE_FILE(); \
	if (self->refused) \
		SKIP(return, "a Xen PV guest cannot share tables (machine_refuses)"); \
	ASSERT_EQ(0, cow_mode_get(__m, sizeof(__m))); \
	if (!strcmp(__m, "off")) \
		SKIP(return, "cow_pte_mode is off and we are not root"); \
} while (0)

struct bad_combo {
	const char *name;
	uint64_t flags;
	uint64_t exit_signal;
};

static const struct bad_combo bad_combos[] = {
	{ "CLONE_VM", CLONE_VM, SIGCHLD },
	{ "CLONE_VFORK", CLONE_VFORK, SIGCHLD },
	{ "CLONE_VM|CLONE_VFORK", CLONE_VM | CLONE_VFORK, SIGCHLD },
	/* CLONE_THREAD needs exit_signal 0, or clone3 says EINVAL anyway */
	{ "CLONE_THREAD|CLONE_SIGHAND|CLONE_VM",
	  CLONE_THREAD | CLONE_SIGHAND | CLONE_VM, 0 },
};

/*
 * CLONE_COW_PTE with CLONE_VM, CLONE_VFORK or CLONE_THREAD is EINVAL,
 * while the same flags without it create a child (which exits at once).
 */
TEST_F(api, bad_flag_combinations_einval)
{
	REQUIRE_COW_ALLOWED();
	for (size_t i = 0; i < ARRAY_SIZE(bad_combos); i++) {
		const struct bad_combo *c = &bad_combos[i];
		long ret;

		/* baseline: the flags alone are valid */
		ret = clone3_exit_child(c->flags, c->exit_signal);
		EXPECT_LT(0, ret) {
			TH_LOG("clone3(%s) failed: %s", c->name, strerror(errno));
		}
		reap_unexpected(ret, c->flags);

		errno = 0;
		ret = clone3_exit_child(c->flags | CLONE_COW_PTE,
					c->exit_signal);
		reap_unexpected(ret, c->flags);
		EXPECT_EQ(-1, ret) {
			TH_LOG("clone3(CLONE_COW_PTE|%s) created %ld", c->name, ret);
		}
		EXPECT_EQ(EINVAL, errno) {
			TH_LOG("clone3(CLONE_COW_PTE|%s): errno %d (%s)",
			       c->name, errno, strerror(errno));
		}
	}
}

/*
 * A plain clone3(CLONE_COW_PTE) works like fork(): the child sees the
 * parent's memory, its writes stay its own, it exits 0 and is waited for;
 * and its fully covered PTE tables were shared (vmstat cow_pte_shared).
 */
TEST_F(api, cow_fork_works)
{
	char *mem;
	long before, after;
	pid_t pid, me = getpid();
	int code;

	REQUIRE_COW_ALLOWED();
	mem = touched_region();
	ASSERT_NE(NULL, mem);

	/* the child's identity */
	pid = cowpt_fork(CLONE_COW_PTE);
	ASSERT_LE(0, pid) {
		TH_LOG("clone3(CLONE_COW_PTE): %s", strerror(errno));
	}
	if (!pid)
		_exit(getppid() == me && getpid() != me ? 0 : 1);
	ASSERT_EQ(0, wait_code(pid));

	before = vmstat_get("cow_pte_shared");
	code = fork_and_check(mem, FORK_COW);
	after = vmstat_get("cow_pte_shared");
	ASSERT_EQ(0, code) {
		TH_LOG("child/parent data check failed: %d (errno %s)", code,
		       strerror(errno));
	}
	ASSERT_LE(0, before) {
		TH_LOG("no cow_pte_shared in /proc/vmstat");
	}
	EXPECT_LE(before + API_PMDS, after) {
		TH_LOG("cow_pte_shared grew by %ld, expected >= %d: tables not shared",
		       after - before, API_PMDS);
	}
	munmap(mem, API_PMDS * PMD_SZ);
}

/* The mode file reads exactly one of the three words and a newline. */
TEST_F(api, mode_reads_a_word)
{
	char buf[64];
	int n;

	REQUIRE_MODE_FILE();
	n = read_text(COWPT_MODE_PATH, buf, sizeof(buf));
	ASSERT_LT(0, n);
	EXPECT_TRUE(!strcmp(buf, "off\n") || !strcmp(buf, "opt-in\n") ||
		    !strcmp(buf, "always\n")) {
		TH_LOG("cow_pte_mode reads '%s'", buf);
	}
}

/* Each word can be written, with or without a newline, and reads back. */
TEST_F(api, mode_write_each_word)
{
	static const char *const words[] = { "off", "always", "opt-in" };
	char buf[32], now[32];

	SET_MODE("opt-in");
	for (int nl = 0; nl < 2; nl++) {
		for (size_t i = 0; i < ARRAY_SIZE(words); i++) {
			snprintf(buf, sizeof(buf), "%s%s", words[i], nl ? "\n" : "");
			EXPECT_EQ(0, write_text(COWPT_MODE_PATH, buf)) {
				TH_LOG("writing '%s' failed", words[i]);
			}
			ASSERT_EQ(0, cow_mode_get(now, sizeof(now)));
			EXPECT_STREQ(words[i], now);
		}
	}
}

static void expect_rejected(struct __test_metadata *_metadata,
			    const char *start, const char *const *bad, size_t n)
{
	char now[32];

	ASSERT_EQ(0, cow_mode_set(start));
	for (size_t i = 0; i < n; i++) {
		int ret = write_bytes(COWPT_MODE_PATH, bad[i], strlen(bad[i]));

		EXPECT_EQ(-EINVAL, ret) {
			TH_LOG("writing '%s' (mode %s) returned %d, expected -EINVAL",
			       bad[i], start, ret);
		}
		ASSERT_EQ(0, cow_mode_get(now, sizeof(now)));
		EXPECT_STREQ(start, now) {
			TH_LOG("after writing '%s'", bad[i]);
		}
	}
}

/* Anything but the three words is EINVAL and leaves the mode unchanged. */
TEST_F(api, mode_write_garbage_einval)
{
	static const char *const bad[] = {
		"on", "OFF", "Off", "ALWAYS", "Opt-in", "optin", "opt_in",
		"opt", "opt-", "opt-i", "opt-inn", "opt-in-", "alway", "alwaysx",
		"always!", "of", "offf", "0", "1", "2", "-1", "\n", "x\n",
		"always always", "off opt-in",
		"alwaysalwaysalwaysalwaysalwaysalwaysalwaysalwaysalwaysalways"
		"alwaysalwaysalwaysalwaysalwaysalwaysalwaysalwaysalwaysalways",
	};

	SET_MODE("opt-in");
	expect_rejected(_metadata, "opt-in", bad, ARRAY_SIZE(bad));
	expect_rejected(_metadata, "always", bad, ARRAY_SIZE(bad));
	expect_rejected(_metadata, "off", bad, ARRAY_SIZE(bad));
}

/*
 * "exactly those words (optional trailing newline)": surrounding blanks,
 * a second newline or anything after the newline are not accepted either.
 * (proc_dostring() stops at the first newline, so a handler built on it
 * alone accepts "off\nx".)
 */
TEST_F(api, mode_write_strict_einval)
{
	static const char *const bad[] = {
		" always", "always ", "\talways", "always\t", " off\n", "off \n",
		"opt-in\n\n", "off\nx", "always\nopt-in",
	};

	SET_MODE("opt-in");
	expect_rejected(_metadata, "opt-in", bad, ARRAY_SIZE(bad));
}

/*
 * Fork in every way up to @last_how in mode @mode (already set) and check
 * which of them shared the region's tables: those in @sharing (one bit per
 * fork_how) at least API_PMDS tables; the others none at all in mode off,
 * and fewer than API_PMDS otherwise (cow_pte_shared is system-wide).
 */
static void check_sharing(struct __test_metadata *_metadata, char *mem,
			  const char *mode, int last_how, unsigned int sharing)
{
	long before, after;
	int code;

	for (int how = FORK_LIBC; how <= last_how; how++) {
		before = vmstat_get("cow_pte_shared");
		code = fork_and_check(mem, how);
		after = vmstat_get("cow_pte_shared");
		EXPECT_EQ(0, code) {
			TH_LOG("%s in mode %s: %d (%s)", how_name[how], mode,
			       code, strerror(errno));
		}
		ASSERT_LE(0, before);
		if (sharing & (1u << how)) {
			EXPECT_LE(before + API_PMDS, after) {
				TH_LOG("%s in mode %s shared %ld tables, expected >= %d",
				       how_name[how], mode, after - before, API_PMDS);
			}
		} else if (!strcmp(mode, "off")) {
			EXPECT_EQ(before, after) {
				TH_LOG("%s in mode off: cow_pte_shared grew by %ld",
				       how_name[how], after - before);
			}
		} else {
			EXPECT_GT(before + API_PMDS, after) {
				TH_LOG("%s in mode %s shared %ld tables",
				       how_name[how], mode, after - before);
			}
		}
	}
}

/* clone3(CLONE_COW_PTE) fails with EOPNOTSUPP and creates no child. */
static void expect_cow_fork_refused(struct __test_metadata *_metadata)
{
	pid_t pid;

	errno = 0;
	pid = cowpt_fork(CLONE_COW_PTE);
	if (!pid)
		_exit(0);
	if (pid > 0)
		wait_code(pid);
	EXPECT_EQ(-1, pid);
	EXPECT_EQ(EOPNOTSUPP, errno) {
		TH_LOG("clone3(CLONE_COW_PTE): errno %d (%s), expected EOPNOTSUPP",
		       errno, strerror(errno));
	}
}

/*
 * "off": clone3(CLONE_COW_PTE) is EOPNOTSUPP; fork() and clone3(0)
 * still work and share nothing.
 */
TEST_F(api, mode_off)
{
	char *mem = touched_region();

	ASSERT_NE(NULL, mem);
	SET_MODE("off");

	expect_cow_fork_refused(_metadata);

	check_sharing(_metadata, mem, "off", FORK_CLONE3, 0);
	munmap(mem, API_PMDS * PMD_SZ);
}

/* "opt-in": only clone3(CLONE_COW_PTE) shares. */
TEST_F(api, mode_opt_in)
{
	char *mem = touched_region();

	ASSERT_NE(NULL, mem);
	SET_MODE("opt-in");
	check_sharing(_metadata, mem, "opt-in", FORK_COW, 1u << FORK_COW);
	munmap(mem, API_PMDS * PMD_SZ);
}

/* "always": every fork shares, and CLONE_COW_PTE is accepted too. */
TEST_F(api, mode_always)
{
	char *mem = touched_region();

	ASSERT_NE(NULL, mem);
	SET_MODE("always");
	check_sharing(_metadata, mem, "always", FORK_COW,
		      (1u << FORK_LIBC) | (1u << FORK_CLONE3) | (1u << FORK_COW));
	munmap(mem, API_PMDS * PMD_SZ);
}

/*
 * A Xen PV guest keeps the mode "off", even when the command line asked
 * for another (the xen-pv boot of make test passes cow_pte=always):
 * writing another word is EOPNOTSUPP and changes nothing, writing "off"
 * works, a malformed word is still EINVAL; clone3(CLONE_COW_PTE) and
 * PR_SET_COW_PTE are EOPNOTSUPP; every fork copies.
 */
TEST_F(api, machine_refuses)
{
	static const char *const refused[] = {
		"opt-in", "always", "opt-in\n", "always\n",
	};
	char now[32], *mem;

	REQUIRE_MODE_FILE();
	if (!self->refused)
		SKIP(return, "not a Xen PV guest");
	ASSERT_EQ(0, cow_mode_get(now, sizeof(now)));
	EXPECT_STREQ("off", now);

	if (geteuid() == 0) {
		for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
			int ret = write_bytes(COWPT_MODE_PATH, refused[i],
					      strlen(refused[i]));

			EXPECT_EQ(-EOPNOTSUPP, ret) {
				TH_LOG("writing '%s' returned %d", refused[i], ret);
			}
			ASSERT_EQ(0, cow_mode_get(now, sizeof(now)));
			EXPECT_STREQ("off", now);
		}
		EXPECT_EQ(0, cow_mode_set("off"));
		EXPECT_EQ(-EINVAL, write_bytes(COWPT_MODE_PATH, "on", 2));
	}

	expect_cow_fork_refused(_metadata);
	errno = 0;
	EXPECT_EQ(-1, cowpt_set_inherit(1));
	EXPECT_EQ(EOPNOTSUPP, errno) {
		TH_LOG("PR_SET_COW_PTE: errno %d (%s)", errno, strerror(errno));
	}
	EXPECT_EQ(0, cowpt_get_inherit());

	mem = touched_region();
	ASSERT_NE(NULL, mem);
	check_sharing(_metadata, mem, "off", FORK_CLONE3, 0);
	munmap(mem, API_PMDS * PMD_SZ);
}

/* ---- PR_SET_COW_PTE / PR_GET_COW_PTE ---- */

/* The CowPTE field of /proc/self/status, or -1. */
static long status_cow_pte(void)
{
	return file_kb("/proc/self/status", "CowPTE");
}

/* Set, clear, read back (prctl and /proc/self/status); bad arguments. */
TEST_F(api, prctl_get_set)
{
	REQUIRE_COW_ALLOWED();
	ASSERT_EQ(0, cowpt_get_inherit()) {
		TH_LOG("PR_GET_COW_PTE: %s", strerror(errno));
	}
	EXPECT_EQ(0, status_cow_pte());

	ASSERT_EQ(0, cowpt_set_inherit(1)) {
		TH_LOG("PR_SET_COW_PTE 1: %s", strerror(errno));
	}
	EXPECT_EQ(1, cowpt_get_inherit());
	EXPECT_EQ(1, status_cow_pte());

	errno = 0;
	EXPECT_EQ(-1, prctl(PR_SET_COW_PTE, 2UL, 0UL, 0UL, 0UL));
	EXPECT_EQ(EINVAL, errno);
	errno = 0;
	EXPECT_EQ(-1, prctl(PR_SET_COW_PTE, 0UL, 1UL, 0UL, 0UL));
	EXPECT_EQ(EINVAL, errno);
	errno = 0;
	EXPECT_EQ(-1, prctl(PR_GET_COW_PTE, 1UL, 0UL, 0UL, 0UL));
	EXPECT_EQ(EINVAL, errno);
	/* the failed calls changed nothing */
	EXPECT_EQ(1, cowpt_get_inherit());

	ASSERT_EQ(0, cowpt_set_inherit(0));
	EXPECT_EQ(0, cowpt_get_inherit());
	EXPECT_EQ(0, status_cow_pte());
}

/*
 * The setting is kept by a forked child and across execve(): the child
 * checks it with prctl, then execs sh, which execs grep, which reads its
 * own /proc/self/status.  A child forked after opting out has it clear.
 */
static int child_sees(int want)
{
	char cmd[96];
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (!pid) {
		if (cowpt_get_inherit() != want)
			_exit(10);
		snprintf(cmd, sizeof(cmd),
			 "exec grep -q '^CowPTE:[[:space:]]*%d$' /proc/self/status",
			 want);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(11);
	}
	return wait_code(pid);
}

TEST_F(api, prctl_inherited_by_fork_and_exec)
{
	REQUIRE_COW_ALLOWED();
	ASSERT_EQ(0, cowpt_set_inherit(1));
	EXPECT_EQ(0, child_sees(1)) {
		TH_LOG("10: not inherited by fork, 1: not kept across execve");
	}
	ASSERT_EQ(0, cowpt_set_inherit(0));
	EXPECT_EQ(0, child_sees(0));
}

/* Copy @src to a new file @dst and give it @mode (set-user-ID included). */
static int copy_prog(const char *src, const char *dst, mode_t mode)
{
	char buf[65536];
	ssize_t n;
	int in = open(src, O_RDONLY | O_CLOEXEC), out, ret = -1;

	if (in < 0)
		return -1;
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
	if (out < 0)
		goto close_in;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, n) != n)
			goto close_out;
	/* after the writes: a write by anyone clears set-user-ID */
	if (!n && !fchown(out, 0, 0) && !fchmod(out, mode))
		ret = 0;
close_out:
	close(out);
close_in:
	close(in);
	return ret;
}

/*
 * Opt in as user nobody, then exec @prog as grep, which looks for
 * "CowPTE: @want" in its own /proc/self/status.
 */
static int exec_as_nobody_sees(const char *prog, int want)
{
	char pat[48];
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (!pid) {
		if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) ||
		    setresuid(65534, 65534, 65534))
			_exit(12);
		if (cowpt_set_inherit(1))
			_exit(13);
		snprintf(pat, sizeof(pat), "^CowPTE:[[:space:]]*%d$", want);
		execl(prog, "grep", "-q", pat, "/proc/self/status", (char *)NULL);
		_exit(14);
	}
	return wait_code(pid);
}

/*
 * PR_SET_COW_PTE needs no privilege, so a program that gains privilege at
 * execve() (set-user-ID, set-group-ID, file capabilities: AT_SECURE) does
 * not keep it, as it does not keep the caller's parent-death signal or
 * its PER_CLEAR_ON_SETID personality flags: whether a privileged program
 * shares its tables at fork is its own business.  An exec that gains
 * nothing keeps the setting (the control).  /dev/shm, as the test's own
 * directory may be on a filesystem mounted nosuid.
 */
TEST_F(api, prctl_cleared_by_setuid_exec)
{
	char dir[] = "/dev/shm/cow_pte_api.XXXXXX", plain[64], suid[64];
	int code;

	REQUIRE_COW_ALLOWED();
	if (geteuid())
		SKIP(return, "needs root to make a set-user-ID root program");
	ASSERT_NE(NULL, mkdtemp(dir));
	ASSERT_EQ(0, chmod(dir, 0755));
	snprintf(plain, sizeof(plain), "%s/grep", dir);
	snprintf(suid, sizeof(suid), "%s/grep-suid", dir);
	ASSERT_EQ(0, copy_prog("/bin/grep", plain, 0755)) {
		TH_LOG("copy /bin/grep: %s", strerror(errno));
	}
	ASSERT_EQ(0, copy_prog("/bin/grep", suid, 04755)) {
		TH_LOG("copy /bin/grep: %s", strerror(errno));
	}
	code = exec_as_nobody_sees(plain, 1);
	EXPECT_EQ(0, code) {
		TH_LOG("plain exec: code %d (1: CowPTE not 1, 12: setresuid, 13: PR_SET_COW_PTE, 14: execve)",
		       code);
	}
	code = exec_as_nobody_sees(suid, 0);
	EXPECT_EQ(0, code) {
		TH_LOG("set-user-ID exec: code %d (1: the privileged program still has CowPTE 1)",
		       code);
	}
	unlink(plain);
	unlink(suid);
	rmdir(dir);
}

/*
 * In opt-in mode a process that opted in shares on every fork, fork()
 * included; after opting out only CLONE_COW_PTE shares again.
 */
TEST_F(api, prctl_opt_in_shares_every_fork)
{
	char *mem = touched_region();
	unsigned int all = (1u << FORK_LIBC) | (1u << FORK_CLONE3) |
			   (1u << FORK_COW);

	ASSERT_NE(NULL, mem);
	SET_MODE("opt-in");
	ASSERT_EQ(0, cowpt_set_inherit(1));
	check_sharing(_metadata, mem, "opt-in + PR_SET_COW_PTE", FORK_COW, all);
	ASSERT_EQ(0, cowpt_set_inherit(0));
	check_sharing(_metadata, mem, "opt-in", FORK_COW, 1u << FORK_COW);
	munmap(mem, API_PMDS * PMD_SZ);
}

/*
 * Mode "off": opting in is EOPNOTSUPP, opting out works.  A process that
 * opted in before the mode was switched off keeps the flag but does not
 * share until the mode is switched on again.
 */
TEST_F(api, prctl_mode_off)
{
	char *mem = touched_region();

	ASSERT_NE(NULL, mem);
	SET_MODE("opt-in");
	ASSERT_EQ(0, cowpt_set_inherit(1));
	SET_MODE("off");
	EXPECT_EQ(1, cowpt_get_inherit());
	check_sharing(_metadata, mem, "off", FORK_CLONE3, 0);

	ASSERT_EQ(0, cowpt_set_inherit(0));
	errno = 0;
	EXPECT_EQ(-1, cowpt_set_inherit(1));
	EXPECT_EQ(EOPNOTSUPP, errno) {
		TH_LOG("errno %d (%s), expected EOPNOTSUPP", errno, strerror(errno));
	}
	EXPECT_EQ(0, cowpt_get_inherit());
	munmap(mem, API_PMDS * PMD_SZ);
}

TEST_HARNESS_MAIN
