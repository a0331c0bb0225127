// SPDX-License-Identifier: GPL-2.0
/*
 * cow_pte_isolation - after clone3(CLONE_COW_PGTABLE) no process ever sees
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
 * is a plain fork of the test process, the others CoW forks) over pipes.
 * Each actor keeps a model of what each of its pages must hold (a
 * generation, zero, "old data or zero", or unmapped) and after every step
 * every live actor checks all its pages against its model.
 *
 * COWPT_TEST_FORK_FLAGS=0 in the environment makes every CoW fork a plain
 * clone3() fork: the same checks then validate the tests on a stock kernel.
 */
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

#include "kselftest_harness.h"
#include "cowpt.h"
#include "cow_pte_util.h"

/* ------------------------------------------------------------------ */
/* Layout and page patterns                                             */

struct layout {
	long head;	/* pages before the first PMD boundary */
	long full;	/* whole PMDs */
	long tail;	/* pages after the last whole PMD */
	int advice;	/* madvise() for the whole mapping, or -1 */
};

/* 3 shared tables and two partial (copied) ones: 1584 pages */
static const struct layout lay_default = { 32, 3, 16, MADV_NOHUGEPAGE };
/* 2 shared tables and two partial ones: 1072 pages */
static const struct layout lay_small = { 32, 2, 16, MADV_NOHUGEPAGE };

static struct layout L;		/* the layout of the running engine */
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

static uint64_t tmpl[WORDS];

static void __attribute__((constructor)) init_tmpl(void)
{
	for (size_t w = 0; w < WORDS; w++)
		tmpl[w] = (uint64_t)w << 4 | 0xa;
}

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

static void fill_page(void *p, unsigned int gen, long page)
{
	uint64_t *q = p, hi = page_hi(gen, page);

	for (size_t w = 0; w < WORDS; w++)
		q[w] = tmpl[w] | hi;
}

/* -1 if words from..511 of p hold gen's pattern of page, else a bad word. */
static int page_diff_from(const void *p, unsigned int gen, long page,
			  size_t from)
{
	const uint64_t *q = p;
	uint64_t diff = 0, hi = gen == G_ZERO ? 0 : page_hi(gen, page);
	size_t w;

	if (gen == G_ZERO) {
		for (w = from; w < WORDS; w++)
			diff |= q[w];
	} else {
		for (w = from; w < WORDS; w++)
			diff |= q[w] ^ (tmpl[w] | hi);
	}
	if (!diff)
		return -1;
	for (w = from; w < WORDS; w++)
		if (q[w] != expected_word(gen, page, w))
			return w;
	return from;
}

static int page_diff(const void *p, unsigned int gen, long page)
{
	return page_diff_from(p, gen, page, 0);
}

static const char *describe(uint64_t v, char *buf, size_t len)
{
	if (!v)
		snprintf(buf, len, "zero");
	else if ((v & 0xf) == 0xa && ((v >> 4) & 0xffff) < WORDS)
		snprintf(buf, len, "gen %#x of page %llu, word %llu",
			 (unsigned int)(v >> 56),
			 (unsigned long long)((v >> 20) & ((1ULL << 36) - 1)),
			 (unsigned long long)((v >> 4) & 0xffff));
	else
		snprintf(buf, len, "not a pattern word");
	return buf;
}

static const char *where(long i, char *buf, size_t len)
{
	if (i < L.head)
		snprintf(buf, len, "head table, %ld pages before pmd 0",
			 L.head - i);
	else if (i >= FULL(L.full))
		snprintf(buf, len, "tail table +%ld", i - FULL(L.full));
	else
		snprintf(buf, len, "pmd %ld +%ld", (i - L.head) / (long)PMD_PAGES,
			 (i - L.head) % (long)PMD_PAGES);
	return buf;
}

/* ------------------------------------------------------------------ */
/* Protocol between the test process and the actors                    */

#define NACT	3
enum { A_P, A_C, A_G };
static const char *const aname[NACT] = { "parent", "child", "grandchild" };

enum op {
	OP_CHECK, OP_WRITE, OP_SET, OP_FORK, OP_EXIT, OP_MM, OP_GUP_WRITE,
	OP_GUP_READ, OP_ODIRECT, OP_VMSPLICE, OP_VMSPLICE_READ, OP_URING_REG,
	OP_URING_READ, OP_UFFD, OP_MERGE, OP_UNMERGE, OP_INFO,
};

static const char *const op_name[] = {
	"check", "write", "set-model", "fork", "exit", "mm-op", "gup-write",
	"gup-read", "o_direct-read", "vmsplice", "vmsplice-read",
	"io_uring-register", "io_uring-read-fixed", "userfaultfd",
	"madv-mergeable", "madv-unmergeable", "info",
};

enum mmop {
	MM_MPROTECT, MM_MREMAP_MOVE, MM_MREMAP_GROW, MM_MREMAP_SHRINK,
	MM_MREMAP_DONTUNMAP, MM_MUNMAP, MM_DONTNEED, MM_FREE, MM_PAGEOUT,
	MM_COLD, MM_WILLNEED, MM_POPULATE_WRITE,
};

static const char *const mm_name[] = {
	"mprotect", "mremap-move", "mremap-grow", "mremap-shrink",
	"mremap-dontunmap", "munmap", "MADV_DONTNEED", "MADV_FREE",
	"MADV_PAGEOUT", "MADV_COLD", "MADV_WILLNEED", "MADV_POPULATE_WRITE",
};

enum gup_method { GUP_VM, GUP_MEM, GUP_PTRACE };
static const char *const gup_name[] = {
	"process_vm_writev/readv", "/proc/PID/mem", "ptrace(POKEDATA/PEEKDATA)",
};

enum info { INFO_THP, INFO_SWAPPED, INFO_KSM };

struct cmd {
	int op;
	int arg;	/* mm op, gup method, info, new generation, keep... */
	int gen;
	int actor;	/* OP_FORK: id of the new actor */
	long first, n, stride;
	pid_t pid;	/* GUP target */
	uint64_t flags;	/* OP_FORK: clone3 flags */
};

enum { ERR_OK, ERR_FAIL, ERR_SKIP, ERR_NOTSUPP };

struct reply {
	int err;
	long info, info2;
	char msg[480];
};

/* ------------------------------------------------------------------ */
/* Actor side                                                           */

static uint64_t cow_flags = CLONE_COW_PGTABLE;
static char odirect_dev[128];
#define URING_FILE	"cow_pte_uring.dat"

static char *base;		/* the region in this actor */
static uint8_t *model;		/* per page: what it must hold */
static int me;			/* actor id */
static int cmd_rd[NACT] = { -1, -1, -1 };
static int rep_wr = -1;
static int vs_pipe[2] = { -1, -1 };
static struct io_uring ring;
static int kept_uffd = -1;

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void __attribute__((format(printf, 3, 4)))
rset(struct reply *r, int err, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (r->err)
		return;
	r->err = err;
	n = snprintf(r->msg, sizeof(r->msg), "%s (pid %d): ", aname[me],
		     getpid());
	va_start(ap, fmt);
	vsnprintf(r->msg + n, sizeof(r->msg) - n, fmt, ap);
	va_end(ap);
}

#define rfail(r, ...)	rset(r, ERR_FAIL, __VA_ARGS__)
#define rskip(r, ...)	rset(r, ERR_SKIP, __VA_ARGS__)

static bool is_unmapped(const void *p)
{
	unsigned char v;

	return mincore((void *)p, PG, &v) && errno == ENOMEM;
}

/*
 * Check pages first..first+n-1 of the model against the memory at 'at'
 * (base + first * PG unless the range was moved).  Reports the first bad
 * page and returns -1, or returns 0.
 */
static int check_pages(const char *at, long first, long n, struct reply *r,
		       const char *what)
{
	char b1[64], b2[96], b3[96];

	if (sigsetjmp(fault_jmp, 1)) {
		long i = first + ((char *)fault_addr - at) / (long)PG;

		rfail(r, "%s: %s reading page %ld (%s) at %p", what,
		      fault_sig == SIGBUS ? "SIGBUS" : "SIGSEGV", i,
		      i >= first && i < first + n ? where(i, b1, sizeof(b1)) : "?",
		      fault_addr);
		return -1;
	}
	fault_armed = 1;
	for (long i = first; i < first + n; i++) {
		const char *p = at + (i - first) * PG;
		unsigned int m = model[i], gen = m & ~G_OR_ZERO;
		int w;

		if (m == G_UNMAPPED) {
			if (!is_unmapped(p)) {
				fault_armed = 0;
				rfail(r, "%s: page %ld (%s) is mapped, expected unmapped",
				      what, i, where(i, b1, sizeof(b1)));
				return -1;
			}
			continue;
		}
		w = page_diff(p, gen, i);
		if (w >= 0 && (m & G_OR_ZERO) && page_diff(p, G_ZERO, i) < 0)
			w = -1;
		if (w >= 0) {
			uint64_t got = ((const uint64_t *)p)[w];

			fault_armed = 0;
			rfail(r, "%s: page %ld (%s) word %d: expected %s%s, found %#llx (%s)",
			      what, i, where(i, b1, sizeof(b1)), w,
			      describe(expected_word(gen, i, w), b2, sizeof(b2)),
			      m & G_OR_ZERO ? " or zero" : "",
			      (unsigned long long)got, describe(got, b3, sizeof(b3)));
			return -1;
		}
	}
	fault_armed = 0;
	return 0;
}

static void write_pages(long first, long n, long stride, unsigned int gen)
{
	if (stride < 1)
		stride = 1;
	for (long i = first; i < first + n && i < NPAGES; i += stride) {
		if (model[i] == G_UNMAPPED)
			continue;
		fill_page(base + i * PG, gen, i);
		model[i] = gen;
	}
}

static void set_model(long first, long n, unsigned int gen)
{
	for (long i = first; i < first + n; i++)
		if (model[i] != G_UNMAPPED)
			model[i] = gen;
}

/*
 * A PROT_NONE reservation with room for len bytes at the same offset
 * into a PMD as src (so that whole-PMD moves are possible).
 */
static char *reserve_like(size_t len, const char *src, char **res,
			  size_t *res_len)
{
	size_t span = len + 2 * PMD_SZ;
	char *raw = mmap(NULL, span, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (raw == MAP_FAILED)
		return NULL;
	*res = raw;
	*res_len = span;
	return (char *)((((uintptr_t)raw + PMD_SZ - 1) & ~(PMD_SZ - 1)) +
			((uintptr_t)src & (PMD_SZ - 1)));
}

static void do_mm(const struct cmd *c, struct reply *r)
{
	char *a = base + c->first * PG, *t, *res = NULL;
	size_t len = c->n * PG, nlen, rlen = 0;
	long i, keep;
	int advice = -1;

	switch (c->arg) {
	case MM_MPROTECT:
		if (mprotect(a, len, PROT_NONE) || mprotect(a, len, PROT_READ)) {
			rfail(r, "mprotect: %s", strerror(errno));
			break;
		}
		check_pages(a, c->first, c->n, r, "read-only after mprotect");
		if (mprotect(a, len, PROT_READ | PROT_WRITE))
			rfail(r, "mprotect(RW): %s", strerror(errno));
		break;
	case MM_MREMAP_MOVE:
	case MM_MREMAP_GROW:
		nlen = len + (c->arg == MM_MREMAP_GROW ? 16 * PG : 0);
		t = reserve_like(nlen, a, &res, &rlen);
		if (!t) {
			rfail(r, "mmap: %s", strerror(errno));
			break;
		}
		if (mremap(a, len, nlen, MREMAP_MAYMOVE | MREMAP_FIXED, t) != t) {
			rfail(r, "mremap to %p: %s", t, strerror(errno));
			munmap(res, rlen);
			break;
		}
		check_pages(t, c->first, c->n, r, "moved by mremap");
		for (i = 0; i < c->n; i++)
			if (!is_unmapped(a + i * PG))
				rfail(r, "page %ld still mapped after mremap",
				      c->first + i);
		for (size_t off = len; off < nlen; off += PG)
			if (page_diff(t + off, G_ZERO, 0) >= 0)
				rfail(r, "page %zu of the grown part is not zero",
				      off / PG);
		if (mremap(t, nlen, len, MREMAP_MAYMOVE | MREMAP_FIXED, a) != a)
			rfail(r, "mremap back: %s", strerror(errno));
		munmap(res, rlen);
		break;
	case MM_MREMAP_SHRINK:
		keep = c->n / 2 ? c->n / 2 : 1;
		if (mremap(a, len, keep * PG, 0) != a) {
			rfail(r, "mremap shrink: %s", strerror(errno));
			break;
		}
		for (i = c->first + keep; i < c->first + c->n; i++)
			model[i] = G_UNMAPPED;
		break;
	case MM_MREMAP_DONTUNMAP:
		t = reserve_like(len, a, &res, &rlen);
		if (!t) {
			rfail(r, "mmap: %s", strerror(errno));
			break;
		}
		if (mremap(a, len, len,
			   MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, t) != t) {
			rfail(r, "mremap(MREMAP_DONTUNMAP): %s", strerror(errno));
			munmap(res, rlen);
			break;
		}
		check_pages(t, c->first, c->n, r, "moved by mremap(DONTUNMAP)");
		set_model(c->first, c->n, G_ZERO);
		munmap(res, rlen);
		break;
	case MM_MUNMAP:
		if (munmap(a, len)) {
			rfail(r, "munmap: %s", strerror(errno));
			break;
		}
		for (i = c->first; i < c->first + c->n; i++)
			model[i] = G_UNMAPPED;
		break;
	case MM_DONTNEED:
		if (madvise(a, len, MADV_DONTNEED)) {
			rfail(r, "MADV_DONTNEED: %s", strerror(errno));
			break;
		}
		set_model(c->first, c->n, G_ZERO);
		break;
	case MM_FREE:
		if (madvise(a, len, MADV_FREE)) {
			rfail(r, "MADV_FREE: %s", strerror(errno));
			break;
		}
		/* try to really discard the lazily freed pages */
		madvise(a, len, MADV_PAGEOUT);
		for (i = c->first; i < c->first + c->n; i++)
			if (model[i] != G_UNMAPPED && model[i] != G_ZERO)
				model[i] |= G_OR_ZERO;
		break;
	case MM_PAGEOUT:
		advice = MADV_PAGEOUT;
		break;
	case MM_COLD:
		advice = MADV_COLD;
		break;
	case MM_WILLNEED:
		advice = MADV_WILLNEED;
		break;
	case MM_POPULATE_WRITE:
		advice = MADV_POPULATE_WRITE;
		break;
	default:
		rfail(r, "unknown mm op %d", c->arg);
	}
	if (advice >= 0 && madvise(a, len, advice))
		rfail(r, "%s: %s", mm_name[c->arg], strerror(errno));
}

static int ptrace_grab(pid_t pid, struct reply *r)
{
	int st;

	if (ptrace(PTRACE_SEIZE, pid, 0, 0)) {
		if (errno == EPERM)
			rskip(r, "ptrace(PTRACE_SEIZE, %d) not permitted", pid);
		else
			rfail(r, "ptrace(PTRACE_SEIZE, %d): %s", pid, strerror(errno));
		return -1;
	}
	if (ptrace(PTRACE_INTERRUPT, pid, 0, 0)) {
		rfail(r, "ptrace(PTRACE_INTERRUPT): %s", strerror(errno));
		ptrace(PTRACE_DETACH, pid, 0, 0);
		return -1;
	}
	if (waitpid(pid, &st, __WALL) != pid || !WIFSTOPPED(st)) {
		rfail(r, "waitpid on tracee %d: %s (status %#x)", pid,
		      strerror(errno), st);
		ptrace(PTRACE_DETACH, pid, 0, 0);
		return -1;
	}
	return 0;
}

/*
 * Move len bytes between buf and raddr in another actor (c->pid) through
 * the GUP path c->arg: process_vm_{read,write}v, /proc/pid/mem or ptrace.
 */
static void gup_xfer(const struct cmd *c, struct reply *r, char *buf,
		     size_t len, bool write)
{
	char *raddr = base + c->first * PG, path[64];
	ssize_t n;
	int fd;

	switch (c->arg) {
	case GUP_VM: {
		struct iovec l = { buf, len }, rv = { raddr, len };

		n = write ? process_vm_writev(c->pid, &l, 1, &rv, 1, 0) :
			    process_vm_readv(c->pid, &l, 1, &rv, 1, 0);
		if (n != (ssize_t)len)
			rfail(r, "process_vm_%sv: %zd: %s", write ? "write" : "read",
			      n, strerror(errno));
		break;
	}
	case GUP_MEM:
		snprintf(path, sizeof(path), "/proc/%d/mem", c->pid);
		fd = open(path, write ? O_RDWR : O_RDONLY);
		if (fd < 0) {
			rfail(r, "open %s: %s", path, strerror(errno));
			break;
		}
		n = write ? pwrite(fd, buf, len, (off_t)(uintptr_t)raddr) :
			    pread(fd, buf, len, (off_t)(uintptr_t)raddr);
		if (n != (ssize_t)len)
			rfail(r, "%s %s: %zd: %s", write ? "pwrite" : "pread",
			      path, n, strerror(errno));
		close(fd);
		break;
	case GUP_PTRACE:
		if (ptrace_grab(c->pid, r))
			break;
		for (size_t off = 0; off < len; off += sizeof(long)) {
			long v;

			errno = 0;
			if (write) {
				if (ptrace(PTRACE_POKEDATA, c->pid, raddr + off,
					   *(long *)(buf + off))) {
					rfail(r, "PTRACE_POKEDATA at %p: %s",
					      raddr + off, strerror(errno));
					break;
				}
				continue;
			}
			v = ptrace(PTRACE_PEEKDATA, c->pid, raddr + off, 0);
			if (v == -1 && errno) {
				rfail(r, "PTRACE_PEEKDATA: %s", strerror(errno));
				break;
			}
			*(long *)(buf + off) = v;
		}
		if (ptrace(PTRACE_DETACH, c->pid, 0, 0))
			rfail(r, "PTRACE_DETACH: %s", strerror(errno));
		break;
	}
}

/* Write gen's pattern into pages first.. of another actor. */
static void gup_write(const struct cmd *c, struct reply *r)
{
	size_t len = c->n * PG;
	char *buf = malloc(len);

	if (!buf) {
		rfail(r, "malloc");
		return;
	}
	for (long j = 0; j < c->n; j++)
		fill_page(buf + j * PG, c->gen, c->first + j);
	gup_xfer(c, r, buf, len, true);
	free(buf);
}

/* Read pages first.. of another actor, which must hold gen's pattern. */
static void gup_read(const struct cmd *c, struct reply *r)
{
	size_t len = c->n * PG;
	char *buf = calloc(1, len);
	char b1[96], b2[96];

	if (!buf) {
		rfail(r, "malloc");
		return;
	}
	gup_xfer(c, r, buf, len, false);
	for (long j = 0; !r->err && j < c->n; j++) {
		int w = page_diff(buf + j * PG, c->gen, c->first + j);

		if (w >= 0) {
			uint64_t got = ((uint64_t *)(buf + j * PG))[w];

			rfail(r, "remote read (%s) of pid %d page %ld word %d: expected %s, found %s",
			      gup_name[c->arg], c->pid, c->first + j, w,
			      describe(expected_word(c->gen, c->first + j, w), b1,
				       sizeof(b1)),
			      describe(got, b2, sizeof(b2)));
		}
	}
	free(buf);
}

static void odirect_read(const struct cmd *c, struct reply *r)
{
	size_t len = c->n * PG;
	int fd = open(odirect_dev, O_RDONLY | O_DIRECT);
	ssize_t n;

	if (fd < 0) {
		rfail(r, "open %s O_DIRECT: %s", odirect_dev, strerror(errno));
		return;
	}
	n = pread(fd, base + c->first * PG, len, c->first * PG);
	if (n != (ssize_t)len)
		rfail(r, "O_DIRECT pread: %zd: %s", n, strerror(errno));
	else
		set_model(c->first, c->n, G_DEV);
	close(fd);
}

static void vmsplice_pages(const struct cmd *c, struct reply *r)
{
	struct iovec iov = { base + c->first * PG, c->n * PG };

	if (vs_pipe[0] < 0) {
		if (pipe(vs_pipe)) {
			rfail(r, "pipe: %s", strerror(errno));
			return;
		}
		fcntl(vs_pipe[1], F_SETPIPE_SZ, 1 << 20);
		fcntl(vs_pipe[0], F_SETFL, O_NONBLOCK);
	}
	while (iov.iov_len) {
		ssize_t n = vmsplice(vs_pipe[1], &iov, 1, SPLICE_F_NONBLOCK);

		if (n <= 0) {
			rfail(r, "vmsplice: %zd: %s", n, strerror(errno));
			return;
		}
		iov.iov_base = (char *)iov.iov_base + n;
		iov.iov_len -= n;
	}
}

/*
 * Read c->n pages from the vmsplice pipe; info = pages holding the old
 * generation c->gen, info2 = pages holding the new generation c->arg.
 */
static void vmsplice_read(const struct cmd *c, struct reply *r)
{
	size_t len = c->n * PG, got = 0;
	char *buf = malloc(len);

	if (!buf || vs_pipe[0] < 0) {
		rfail(r, "no vmsplice pipe");
		free(buf);
		return;
	}
	while (got < len) {
		ssize_t n = read(vs_pipe[0], buf + got, len - got);

		if (n <= 0) {
			rfail(r, "pipe read: %zd of %zu bytes: %s", got, len,
			      n ? strerror(errno) : "EOF");
			free(buf);
			return;
		}
		got += n;
	}
	for (long j = 0; j < c->n; j++) {
		if (page_diff(buf + j * PG, c->gen, c->first + j) < 0)
			r->info++;
		else if (page_diff(buf + j * PG, c->arg, c->first + j) < 0)
			r->info2++;
	}
	free(buf);
}

static void uring_register(const struct cmd *c, struct reply *r)
{
	struct iovec iov = { base + c->first * PG, c->n * PG };
	int ret = io_uring_queue_init(4, &ring, 0);

	if (ret < 0) {
		rskip(r, "io_uring_queue_init: %s", strerror(-ret));
		return;
	}
	ret = io_uring_register_buffers(&ring, &iov, 1);
	if (ret)
		rskip(r, "io_uring_register_buffers: %s", strerror(-ret));
}

static void uring_read(const struct cmd *c, struct reply *r)
{
	size_t len = c->n * PG;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	int fd = open(URING_FILE, O_RDONLY), ret;

	if (fd < 0) {
		rfail(r, "open " URING_FILE ": %s", strerror(errno));
		return;
	}
	sqe = io_uring_get_sqe(&ring);
	if (!sqe) {
		rfail(r, "io_uring_get_sqe");
		close(fd);
		return;
	}
	io_uring_prep_read_fixed(sqe, fd, base + c->first * PG, len,
				 c->first * PG, 0);
	ret = io_uring_submit(&ring);
	if (ret != 1) {
		rfail(r, "io_uring_submit: %d", ret);
		close(fd);
		return;
	}
	ret = io_uring_wait_cqe(&ring, &cqe);
	if (ret) {
		rfail(r, "io_uring_wait_cqe: %s", strerror(-ret));
	} else {
		if (cqe->res != (int)len)
			rfail(r, "READ_FIXED: res %d, expected %zu", cqe->res, len);
		else
			set_model(c->first, c->n, G_FILE);
		io_uring_cqe_seen(&ring, cqe);
	}
	close(fd);
}

struct uffd_handler {
	int uffd;
	long want, done;
	unsigned int gen;
	int err;
	bool closed;
};

static void *uffd_handler_fn(void *arg)
{
	struct uffd_handler *h = arg;
	char *src = aligned_alloc(PG, PG);

	while (src && h->done < h->want) {
		struct pollfd p = { .fd = h->uffd, .events = POLLIN };
		struct uffdio_copy cp;
		struct uffd_msg msg;
		uintptr_t addr;

		if (poll(&p, 1, 20000) <= 0) {
			h->err = ETIMEDOUT;
			break;
		}
		if (read(h->uffd, &msg, sizeof(msg)) != sizeof(msg)) {
			if (errno == EAGAIN)
				continue;
			h->err = errno;
			break;
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT) {
			h->err = EPROTO;
			break;
		}
		addr = msg.arg.pagefault.address & ~(PG - 1);
		fill_page(src, h->gen, (long)((char *)addr - base) / (long)PG);
		memset(&cp, 0, sizeof(cp));
		cp.dst = addr;
		cp.src = (uintptr_t)src;
		cp.len = PG;
		if (ioctl(h->uffd, UFFDIO_COPY, &cp) && errno != EEXIST) {
			h->err = errno;
			break;
		}
		h->done++;
	}
	if (!src)
		h->err = ENOMEM;
	if (h->err) {
		/* release the faulting thread: the pages then read as zeros */
		close(h->uffd);
		h->closed = true;
	}
	free(src);
	return NULL;
}

/*
 * MADV_DONTNEED the range, register it MISSING with userfaultfd and fill
 * it with UFFDIO_COPY: most pages ahead of time, the last few through
 * faults resolved by a handler thread.  arg 1: keep it registered.
 */
static void uffd_fill(const struct cmd *c, struct reply *r)
{
	char *a = base + c->first * PG, *src = aligned_alloc(PG, PG);
	size_t len = c->n * PG;
	struct uffdio_register reg;
	struct uffdio_api api;
	struct uffd_handler h;
	long nfault = c->n / 2 < 4 ? c->n / 2 : 4, ncopy = c->n - nfault;
	pthread_t th;
	int uffd;

	if (!src) {
		rfail(r, "malloc");
		return;
	}
	if (madvise(a, len, MADV_DONTNEED)) {
		rfail(r, "MADV_DONTNEED: %s", strerror(errno));
		goto out;
	}
	set_model(c->first, c->n, G_ZERO);
	uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (uffd < 0 && errno == EINVAL)
		uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0) {
		rskip(r, "userfaultfd: %s", strerror(errno));
		goto out;
	}
	memset(&api, 0, sizeof(api));
	api.api = UFFD_API;
	memset(&reg, 0, sizeof(reg));
	reg.range.start = (uintptr_t)a;
	reg.range.len = len;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(uffd, UFFDIO_API, &api) || ioctl(uffd, UFFDIO_REGISTER, &reg)) {
		rfail(r, "UFFDIO_API/REGISTER: %s", strerror(errno));
		close(uffd);
		goto out;
	}
	for (long j = 0; j < ncopy; j++) {
		struct uffdio_copy cp;

		fill_page(src, c->gen, c->first + j);
		memset(&cp, 0, sizeof(cp));
		cp.dst = (uintptr_t)(a + j * PG);
		cp.src = (uintptr_t)src;
		cp.len = PG;
		if (ioctl(uffd, UFFDIO_COPY, &cp) || cp.copy != (long)PG) {
			rfail(r, "UFFDIO_COPY page %ld: %s (copy %lld)",
			      c->first + j, strerror(errno), (long long)cp.copy);
			close(uffd);
			goto out;
		}
		model[c->first + j] = c->gen;
	}
	memset(&h, 0, sizeof(h));
	h.uffd = uffd;
	h.want = nfault;
	h.gen = c->gen;
	if (pthread_create(&th, NULL, uffd_handler_fn, &h)) {
		rfail(r, "pthread_create");
		close(uffd);
		goto out;
	}
	for (long j = ncopy; j < c->n; j++) {
		(void)*(volatile char *)(a + j * PG + 8);
		model[c->first + j] = c->gen;
	}
	pthread_join(th, NULL);
	if (h.err)
		rfail(r, "userfaultfd handler: %s", strerror(h.err));
	if (h.closed)
		goto out;
	if (c->arg) {
		kept_uffd = uffd;
	} else {
		if (ioctl(uffd, UFFDIO_UNREGISTER, &reg.range))
			rfail(r, "UFFDIO_UNREGISTER: %s", strerror(errno));
		close(uffd);
	}
out:
	free(src);
}

static long count_swapped(void)
{
	long n = NPAGES, count = 0;
	uint64_t *ent = calloc(n, sizeof(*ent));
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0 || !ent ||
	    pread(fd, ent, n * sizeof(*ent), (uintptr_t)base / PG * sizeof(*ent)) !=
	    (ssize_t)(n * sizeof(*ent))) {
		count = -1;
	} else {
		for (long i = 0; i < n; i++)
			count += !!(ent[i] & (1ULL << 62));
	}
	if (fd >= 0)
		close(fd);
	free(ent);
	return count;
}

static void do_info(const struct cmd *c, struct reply *r)
{
	char buf[64];

	switch (c->arg) {
	case INFO_THP:
		r->info = file_kb("/proc/self/smaps_rollup", "AnonHugePages");
		break;
	case INFO_SWAPPED:
		r->info = count_swapped();
		break;
	case INFO_KSM:
		r->info = read_text("/proc/self/ksm_merging_pages", buf,
				    sizeof(buf)) > 0 ? strtol(buf, NULL, 10) : -1;
		break;
	}
}

static void do_op(const struct cmd *c, struct reply *r)
{
	switch (c->op) {
	case OP_CHECK:
		check_pages(base, 0, NPAGES, r, "check");
		break;
	case OP_WRITE:
		write_pages(c->first, c->n, c->stride, c->gen);
		break;
	case OP_SET:
		set_model(c->first, c->n, c->gen);
		break;
	case OP_EXIT:
		break;
	case OP_MM:
		do_mm(c, r);
		break;
	case OP_GUP_WRITE:
		gup_write(c, r);
		break;
	case OP_GUP_READ:
		gup_read(c, r);
		break;
	case OP_ODIRECT:
		odirect_read(c, r);
		break;
	case OP_VMSPLICE:
		vmsplice_pages(c, r);
		break;
	case OP_VMSPLICE_READ:
		vmsplice_read(c, r);
		break;
	case OP_URING_REG:
		uring_register(c, r);
		break;
	case OP_URING_READ:
		uring_read(c, r);
		break;
	case OP_UFFD:
		uffd_fill(c, r);
		break;
	case OP_MERGE:
	case OP_UNMERGE:
		if (madvise(base, NPAGES * PG,
			    c->op == OP_MERGE ? MADV_MERGEABLE : MADV_UNMERGEABLE))
			rskip(r, "%s: %s", op_name[c->op], strerror(errno));
		break;
	case OP_INFO:
		do_info(c, r);
		break;
	default:
		rfail(r, "unknown op %d", c->op);
	}
}

static void __attribute__((noreturn)) actor_loop(void)
{
	struct reply r;
	struct cmd c;

	for (;;) {
		ssize_t n = read(cmd_rd[me], &c, sizeof(c));

		if (n != sizeof(c))
			_exit(n == 0 ? 0 : 90);	/* EOF: the test is gone */
		memset(&r, 0, sizeof(r));
		if (c.op == OP_FORK) {
			pid_t pid = cowpt_fork(c.flags);

			if (!pid) {
				me = c.actor;
				prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
				/* its own vmsplice pipe, not the parent's */
				close_fd(&vs_pipe[0]);
				close_fd(&vs_pipe[1]);
				continue;	/* the parent replies */
			}
			if (pid < 0)
				rset(&r, errno == EOPNOTSUPP ? ERR_NOTSUPP : ERR_FAIL,
				     "clone3(%#llx): %s", (unsigned long long)c.flags,
				     strerror(errno));
			r.info = pid;
		} else {
			do_op(&c, &r);
		}
		if (write(rep_wr, &r, sizeof(r)) != sizeof(r))
			_exit(91);
		if (c.op == OP_EXIT)
			_exit(0);
	}
}

/* The first actor: map and fill the region, report, serve. */
static void __attribute__((noreturn)) actor_first(void)
{
	size_t len = NPAGES * PG;
	struct reply r;

	memset(&r, 0, sizeof(r));
	me = A_P;
	prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
	catch_faults();
	base = map_at_phase(len, (PMD_SZ - L.head * PG) % PMD_SZ);
	model = malloc(NPAGES);
	if (!base || !model) {
		rfail(&r, "mmap: %s", strerror(errno));
	} else if (L.advice >= 0 && madvise(base, len, L.advice)) {
		rfail(&r, "madvise(%d): %s", L.advice, strerror(errno));
	} else {
		memset(model, G_ZERO, NPAGES);
		write_pages(0, NPAGES, 1, G_FIRST);
		r.info = (long)base;
	}
	if (write(rep_wr, &r, sizeof(r)) != sizeof(r))
		_exit(91);
	actor_loop();
}

/* ------------------------------------------------------------------ */
/* Test side: the engine                                                */

#define REPLY_TIMEOUT_MS	30000

struct knob {
	char path[160];
	char old[64];
};

struct eng {
	int cmd[NACT][2];
	int rep[2];
	pid_t pid[NACT];
	int pidfd[NACT];
	bool alive[NACT];
	int gen;		/* next generation to write */
	const char *ctx;	/* what the test is doing, for messages */
	struct reply r;		/* the last reply */
	struct knob knob[8];
	int nknobs;
};

static int pidfd_open(pid_t pid)
{
	return syscall(SYS_pidfd_open, pid, 0);
}

static void eng_init(struct eng *e)
{
	const char *f = getenv("COWPT_TEST_FORK_FLAGS");

	memset(e, 0, sizeof(*e));
	for (int a = 0; a < NACT; a++) {
		e->cmd[a][0] = e->cmd[a][1] = -1;
		e->pidfd[a] = -1;
	}
	e->rep[0] = e->rep[1] = -1;
	e->gen = 2;
	if (f)
		cow_flags = strtoull(f, NULL, 0);
}

/* Kill the actors that still run and reap everything. */
static void eng_stop(struct eng *e)
{
	for (int a = 0; a < NACT; a++) {
		if (e->alive[a] && e->pid[a] > 0)
			kill(e->pid[a], SIGKILL);
		e->alive[a] = false;
		e->pid[a] = 0;
		close_fd(&e->pidfd[a]);
		close_fd(&e->cmd[a][0]);
		close_fd(&e->cmd[a][1]);
	}
	close_fd(&e->rep[0]);
	close_fd(&e->rep[1]);
	/* actors are our children or were reparented to us (subreaper) */
	for (;;) {
		pid_t w = waitpid(-1, NULL, __WALL);

		if (w < 0 && errno != EINTR)
			break;
	}
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
	eng_stop(e);
	while (e->nknobs > 0) {
		struct knob *k = &e->knob[--e->nknobs];

		write_text(k->path, k->old);
	}
}

static int eng_wait(struct eng *e, int a)
{
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = e->rep[0], .events = POLLIN },
			{ .fd = e->pidfd[a], .events = POLLIN },
		};
		int n = poll(p, e->pidfd[a] >= 0 ? 2 : 1, REPLY_TIMEOUT_MS);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		if (p[0].revents & POLLIN)
			return read(e->rep[0], &e->r, sizeof(e->r)) == sizeof(e->r) ?
				0 : -EIO;
		if (p[0].revents & (POLLHUP | POLLERR))
			return -EPIPE;
		if (p[1].revents)
			return -ESRCH;
	}
}

static int eng_start(struct __test_metadata *_metadata, struct eng *e,
		     const struct layout *lay)
{
	pid_t pid;

	L = *lay;
	for (int a = 0; a < NACT; a++)
		if (pipe(e->cmd[a]))
			return -1;
	if (pipe(e->rep))
		return -1;
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		for (int a = 0; a < NACT; a++) {
			close(e->cmd[a][1]);
			cmd_rd[a] = e->cmd[a][0];
		}
		close(e->rep[0]);
		rep_wr = e->rep[1];
		actor_first();
	}
	for (int a = 0; a < NACT; a++)
		close_fd(&e->cmd[a][0]);
	close_fd(&e->rep[1]);
	e->pid[A_P] = pid;
	e->pidfd[A_P] = pidfd_open(pid);
	e->alive[A_P] = true;
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

	if (!e->alive[a]) {
		TH_LOG("%s: %s is not running%s%s", op_name[c->op], aname[a], sep, ctx);
		return -1;
	}
	if (write(e->cmd[a][1], c, sizeof(*c)) != sizeof(*c)) {
		TH_LOG("cannot send %s to %s: %s", op_name[c->op], aname[a],
		       strerror(errno));
		return -1;
	}
	ret = eng_wait(e, a);
	if (ret) {
		TH_LOG("%s: no reply from %s (pid %d): %s%s%s", op_name[c->op],
		       aname[a], e->pid[a],
		       ret == -ESRCH ? "it died" : strerror(-ret), sep, ctx);
		if (ret == -ESRCH)
			e->alive[a] = false;
		return -1;
	}
	switch (e->r.err) {
	case ERR_OK:
		break;
	case ERR_SKIP:
		return 1;
	case ERR_NOTSUPP:
		return 2;
	default:
		TH_LOG("%s: %s%s%s", op_name[c->op], e->r.msg, sep, ctx);
		return -1;
	}
	if (c->op == OP_FORK) {
		e->pid[c->actor] = e->r.info;
		e->pidfd[c->actor] = pidfd_open(e->r.info);
		e->alive[c->actor] = true;
	} else if (c->op == OP_EXIT) {
		struct pollfd p = { .fd = e->pidfd[a], .events = POLLIN };

		/* make sure its mm is gone before the next step */
		if (p.fd >= 0 && poll(&p, 1, REPLY_TIMEOUT_MS) != 1) {
			TH_LOG("%s did not exit", aname[a]);
			return -1;
		}
		close_fd(&e->pidfd[a]);
		e->alive[a] = false;
	}
	return 0;
}

static int eng_check_all(struct __test_metadata *_metadata, struct eng *e)
{
	struct cmd c = { .op = OP_CHECK };

	for (int a = 0; a < NACT; a++)
		if (e->alive[a] && eng_cmd(_metadata, e, a, &c))
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
	struct cmd __c = { .op = OP_FORK, .actor = (c), .flags = (fl) }; \
	int __r = eng_cmd(_metadata, e, p, &__c); \
	if (__r == 2) \
		SKIP(return, "clone3(CLONE_COW_PGTABLE): EOPNOTSUPP (cow_pte_mode off)"); \
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

FIXTURE(gens) {
	struct eng e;
};

FIXTURE_VARIANT(gens) {
	const char *order;	/* who writes, in which order (two rounds) */
	const char *exits;	/* who exits, in which order */
	bool late_g;		/* the grandchild forks after the first round */
};

FIXTURE_SETUP(gens)
{
	eng_init(&self->e);
}

FIXTURE_TEARDOWN(gens)
{
	eng_fini(&self->e);
}

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

			if (e->alive[a])
				SCRIPT_WRITE(a);
		}
	}
	for (const char *x = variant->exits; *x; x++) {
		int a = actor_of(*x);

		if (!e->alive[a])
			continue;
		EXIT(a);
		/* the survivors still see their data and can still write */
		for (int s = 0; s < NACT; s++)
			if (e->alive[s])
				SCRIPT_WRITE(s);
	}
}

/* ------------------------------------------------------------------ */
/* Threads storing while the process CoW-forks                         */

FIXTURE(eng) {
	struct eng e;
};

FIXTURE_SETUP(eng)
{
	eng_init(&self->e);
}

FIXTURE_TEARDOWN(eng)
{
	eng_fini(&self->e);
}

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
		SKIP(return, "clone3(CLONE_COW_PGTABLE): EOPNOTSUPP (cow_pte_mode off)");
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

FIXTURE(gup) {
	struct eng e;
};

FIXTURE_VARIANT(gup) {
	int method;
	int writer;
};

FIXTURE_SETUP(gup)
{
	eng_init(&self->e);
}

FIXTURE_TEARDOWN(gup)
{
	eng_fini(&self->e);
}

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
			   .pid = e->pid[tg], .first = f, .n = n, .gen = g);
			DO(tg, .op = OP_SET, .first = f, .n = n, .gen = g);
			CHECK_ALL();
			DO(wr, .op = OP_GUP_READ, .arg = variant->method,
			   .pid = e->pid[tg], .first = f, .n = n, .gen = g);
			DO(tg, .op = OP_GUP_READ, .arg = variant->method,
			   .pid = e->pid[wr], .first = f, .n = n, .gen = G_FIRST);
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

FIXTURE(odirect) {
	struct eng e;
};

FIXTURE_VARIANT(odirect) {
	int reader;
};

FIXTURE_SETUP(odirect)
{
	eng_init(&self->e);
}

FIXTURE_TEARDOWN(odirect)
{
	eng_fini(&self->e);
}

FIXTURE_VARIANT_ADD(odirect, in_parent) { A_P };
FIXTURE_VARIANT_ADD(odirect, in_child) { A_C };

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
	int rd = variant->reader, ot = other(rd);
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
		eng_stop(e);
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
		eng_stop(e);
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

FIXTURE(mmops) {
	struct eng e;
};

FIXTURE_VARIANT(mmops) {
	int who;
};

FIXTURE_SETUP(mmops)
{
	eng_init(&self->e);
}

FIXTURE_TEARDOWN(mmops)
{
	eng_fini(&self->e);
}

FIXTURE_VARIANT_ADD(mmops, by_child) { A_C };
FIXTURE_VARIANT_ADD(mmops, by_parent) { A_P };

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
		long plain = vsu_run(c, 0), cow = vsu_run(c, CLONE_COW_PGTABLE);

		if (cow < 0 && errno == EOPNOTSUPP)
			SKIP(return, "clone3(CLONE_COW_PGTABLE): EOPNOTSUPP (cow_pte_mode off)");
		TH_LOG("%s: plain fork %ld, CoW fork %ld bytes changed",
		       vsu_name[c], plain, cow);
		ASSERT_EQ(0, plain);
		EXPECT_EQ(0, cow);
	}
}

TEST_HARNESS_MAIN
