/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * cowpt.h - userspace interface to copy-on-write PTE tables (cowpt).
 *
 * The kernel's uapi <linux/sched.h> of a cowpt kernel defines
 * CLONE_COW_PTE; this header also works against older headers.
 *
 *   pid_t pid = cowpt_fork(CLONE_COW_PTE);       like fork(), tables shared
 *   pid_t pid = cowpt_fork(0);                   plain fork() through clone3
 *   cowpt_set_inherit(1);    every later fork of this process and of its
 *                            descendants shares, across execve() too
 *                            (not one that gains privilege: set-user-ID)
 *
 * Errors (errno, with a return of -1):
 *   EINVAL      CLONE_COW_PTE with CLONE_VM or CLONE_VFORK, or a kernel
 *               without CONFIG_COW_PTE (unknown clone3 flag or prctl)
 *   EOPNOTSUPP  /proc/sys/vm/cow_pte_mode is "off" (clone3 with the flag,
 *               or opting in with PR_SET_COW_PTE)
 *
 * See Documentation/cow-pte.md in the cowpt repository.
 */
#ifndef COWPT_H
#define COWPT_H

#include <signal.h>
#include <sys/prctl.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef CLONE_COW_PTE
#define CLONE_COW_PTE	0x400000000ULL
#endif
/*
 * The flag's name until cowpt 2026-12, when it took the spelling of every
 * other name of the feature.  Kept for programs written against it; the
 * kernel's uapi headers have only CLONE_COW_PTE.
 */
#ifndef CLONE_COW_PGTABLE
#define CLONE_COW_PGTABLE	CLONE_COW_PTE
#endif

/* <linux/prctl.h> of a cowpt kernel; outside upstream's sequential range */
#ifndef PR_SET_COW_PTE
#define PR_SET_COW_PTE		0x43505401
#define PR_GET_COW_PTE		0x43505402
#endif

#ifndef __NR_clone3
#define __NR_clone3		435
#endif

#define COWPT_MODE_PATH		"/proc/sys/vm/cow_pte_mode"

struct cowpt_clone_args {
	uint64_t flags;
	uint64_t pidfd;
	uint64_t child_tid;
	uint64_t parent_tid;
	uint64_t exit_signal;
	uint64_t stack;
	uint64_t stack_size;
	uint64_t tls;
};

/*
 * fork() through clone3() with extra flags (CLONE_COW_PTE and/or other
 * CLONE_* flags that do not need a new stack).  SIGCHLD is the exit signal.
 * Returns the child's pid in the parent, 0 in the child, -1 and errno on
 * error.  The child must not return into frames of the caller that do not
 * exist any more; it returns normally, as from fork().
 */
static inline pid_t cowpt_fork(uint64_t flags)
{
	struct cowpt_clone_args args;

	memset(&args, 0, sizeof(args));
	args.flags = flags;
	args.exit_signal = SIGCHLD;
	return (pid_t)syscall(__NR_clone3, &args, sizeof(args));
}

/*
 * Opt every later fork of this process, of its children and of the
 * programs they exec in (on = 1) or out (on = 0): prctl(PR_SET_COW_PTE).
 * Returns 0, or -1 and errno (EOPNOTSUPP: mode off; EINVAL: no cowpt).
 */
static inline int cowpt_set_inherit(int on)
{
	return prctl(PR_SET_COW_PTE, (unsigned long)on, 0UL, 0UL, 0UL);
}

/* 1 if this process opted in with PR_SET_COW_PTE, 0 if not, -1 on error. */
static inline int cowpt_get_inherit(void)
{
	return prctl(PR_GET_COW_PTE, 0UL, 0UL, 0UL, 0UL);
}

#endif /* COWPT_H */
