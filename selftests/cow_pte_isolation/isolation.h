/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the two halves of cow_pte_isolation share: the layout of the
 * region, the page patterns and the protocol between the test process
 * (tests.c) and the actors (serve.c).  See tests.c for what is tested.
 */
#ifndef COW_PTE_ISOLATION_H
#define COW_PTE_ISOLATION_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cowpt.h"
#include "../cow_pte_util.h"
#include "../actor.h"

/* ------------------------------------------------------------------ */
/* Layout and page patterns                                             */

struct layout {
	long head;	/* pages before the first PMD boundary */
	long full;	/* whole PMDs */
	long tail;	/* pages after the last whole PMD */
	int advice;	/* madvise() for the whole mapping, or -1 */
};

extern struct layout L;		/* the layout of the running engine */
#define NPAGES		(L.head + L.full * (long)PMD_PAGES + L.tail)
#define FULL(k)		(L.head + (long)(k) * (long)PMD_PAGES)

/* Generations (model values) */
#define G_ZERO		0x00	/* page reads as zeros */
#define G_FIRST		0x01	/* what the parent writes at start */
#define G_DEV		0x3d	/* O_DIRECT device contents */
#define G_FILE		0x3e	/* io_uring file contents */
#define G_KSM		0x40	/* 0x40..0x7e: the same contents in every page */
#define G_OR_ZERO	0x80	/* flag: this generation or zeros (MADV_FREE) */
#define G_UNMAPPED	0xff	/* must not be mapped */

#define WORDS		(PG / sizeof(uint64_t))

extern uint64_t tmpl[WORDS];

static inline uint64_t page_hi(unsigned int gen, long page)
{
	if (gen >= G_KSM)
		page = 0;
	return (uint64_t)gen << 56 | (uint64_t)page << 20;
}

static inline uint64_t expected_word(unsigned int gen, long page, size_t w)
{
	return gen == G_ZERO ? 0 : tmpl[w] | page_hi(gen, page);
}

void fill_page(void *p, unsigned int gen, long page);
/* -1 if words from..511 of p hold gen's pattern of page, else a bad word. */
int page_diff_from(const void *p, unsigned int gen, long page, size_t from);
int page_diff(const void *p, unsigned int gen, long page);
const char *describe(uint64_t v, char *buf, size_t len);
const char *where(long i, char *buf, size_t len);

/* ------------------------------------------------------------------ */
/* Protocol between the test process and the actors                    */

#define NACT	3
enum { A_P, A_C, A_G };
extern const char *const aname[];

enum op {
	OP_CHECK, OP_WRITE, OP_SET, OP_FORK, OP_EXIT, OP_MM, OP_GUP_WRITE,
	OP_GUP_READ, OP_ODIRECT, OP_VMSPLICE, OP_VMSPLICE_READ, OP_URING_REG,
	OP_URING_READ, OP_UFFD, OP_MERGE, OP_UNMERGE, OP_INFO,
};

extern const char *const op_name[];

enum mmop {
	MM_MPROTECT, MM_MREMAP_MOVE, MM_MREMAP_GROW, MM_MREMAP_SHRINK,
	MM_MREMAP_DONTUNMAP, MM_MUNMAP, MM_DONTNEED, MM_FREE, MM_PAGEOUT,
	MM_COLD, MM_WILLNEED, MM_POPULATE_WRITE,
};

extern const char *const mm_name[];

enum gup_method { GUP_VM, GUP_MEM, GUP_PTRACE };
extern const char *const gup_name[];

/* INFO_REFERENCED: smaps_rollup Referenced, kB (the whole process) */
enum info { INFO_THP, INFO_SWAPPED, INFO_KSM, INFO_REFERENCED };

struct cmd {
	ACTOR_CMD_HEAD;	/* op; OP_FORK: child (the new actor), clone3 flags */
	int arg;	/* mm op, gup method, info, new generation, keep... */
	int gen;
	long first, n, stride;
	pid_t pid;	/* GUP target */
};

struct reply {
	ACTOR_REP_HEAD;	/* err (ACTOR_OK...), info */
	long info2;
	char msg[480];
};

/* ------------------------------------------------------------------ */
/* The actor side (serve.c)                                             */

extern uint64_t cow_flags;	/* of a "CoW fork": COWPT_TEST_FORK_FLAGS */
extern char odirect_dev[128];	/* the block device of the O_DIRECT tests */
#define URING_FILE	"cow_pte_uring.dat"

/* actor_spawn()'s serve: the parent actor maps and fills the region */
void __attribute__((noreturn)) actor_first(int chan, void *arg);

#endif /* COW_PTE_ISOLATION_H */
