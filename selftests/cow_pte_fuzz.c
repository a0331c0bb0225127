// SPDX-License-Identifier: GPL-2.0
/*
 * cow_pte_fuzz - a seeded, reproducible, randomized differential tester for
 * copy-on-write page tables (clone3(CLONE_COW_PGTABLE)).
 *
 * A coordinator process holds a model of what every page of a tree of
 * worker processes must contain, and a seeded PRNG.  It generates random
 * operations (CPU writes, mmap/munmap/mremap/mprotect/madvise/mlock, GUP
 * writes and reads from one worker into another, file writes, io_uring
 * fixed-buffer reads, userfaultfd fills, NUMA page migration, remote
 * pageout, memcg reclaim, fork with or without CLONE_COW_PGTABLE, exit,
 * wait, threads), has a worker execute each one,
 * checks the syscall result against the one the model predicts, and then
 * reads the touched range back in every live worker; every --check-every
 * operations and at the end it reads back everything and scans the kernel
 * log.
 *
 * Workers are dumb command executors, each connected to the coordinator by
 * its own SOCK_SEQPACKET socket.  All test mappings live in a fixed arena,
 * so every address is a function of the seed.  The run is recorded as a
 * list of concrete operations; the first failure is reduced by delta
 * debugging over that list (each candidate replayed in a fresh tree) and
 * written to a repro file that --replay runs again.
 *
 * See Documentation/cow-pte-fuzz.md.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <liburing.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cowpt.h"
#include "cow_pte_util.h"


#define ARENA_BASE	0x100000000000UL	/* 16 TiB: 1 TiB aligned */
#define ARENA_PAGES	(1UL << 18)		/* 1 GiB of address space */
#define MAX_REGIONS	512			/* model regions per worker */
#define NR_FILES	3			/* memfd, memfd, file in tmpdir */
#define FILE_PAGES	4096UL			/* 16 MiB per file */
#define MAX_OBJS	4096			/* files + shared anon objects */
#define READ_CHUNK	1024			/* pages per read command */
#define MAX_OP_PAGES	1024			/* pages written by one op */
#define MAX_GUP_PAGES	512
#define MAX_SPLICE_PAGES 16			/* a default pipe's buffers */
#define MAX_MOVE_PAGES	64			/* pages per move_pages() */
#define RECLAIM_MAX	(16UL << 20)		/* bytes per memory.reclaim */
#define CG_ROOT		"/sys/fs/cgroup"
#define NODE_DIR	"/sys/devices/system/node"
#define MAX_PROCS	32
#define REPLY_TIMEOUT_S	60
#define COORD		(-1)			/* parent: the coordinator */
#define WORDS		(PG / sizeof(uint64_t))
#define TAG_MARK	(0xc0ULL << 56)
#define TAG_CORRUPT	(~0ULL)

#define MIN(a, b)	((a) < (b) ? (a) : (b))
#define MAX(a, b)	((a) > (b) ? (a) : (b))

static inline uint64_t pg_addr(uint64_t pg)
{
	return ARENA_BASE + pg * PG;
}

static inline uint64_t addr_pg(uint64_t addr)
{
	return (addr - ARENA_BASE) / PG;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ */
/* Options, environment, failure state                                  */

enum { COW_OFF, COW_ON, COW_MIXED };
static const char *const cow_names[] = { "off", "on", "mixed" };

static struct {
	uint64_t seed;
	long ops;		/* stop after this many ops (0: no bound) */
	double time;		/* stop after this many seconds (0: no bound) */
	int procs;
	long mem_mib;
	int cow;
	long check_every;
	bool verbose;
	bool keep_going;
	const char *replay;
	const char *repro;
	double reduce_time;
} opt = {
	.procs = 6,
	.mem_mib = 64,
	.cow = COW_MIXED,
	.check_every = 64,
	.repro = "./cow_pte_fuzz.repro",
	.reduce_time = 120,
};

/* What the running kernel and our privileges allow. */
static struct {
	bool thp, ksm, swap, uffd, uring, root;
	bool numa;		/* move_pages() between nodes 0 and 1 */
	bool pmadv;		/* process_madvise() */
	bool memcg;		/* our own cgroup with memory.reclaim */
} have;

static struct {
	bool failed;
	long op;
	char msg[1024];
} failure;

static long cur_op = -1;	/* index of the operation being executed */
static bool generating;		/* the generation-only limits apply */
static bool quiet;		/* a reduction replay: no per-op output */
static double replay_end;	/* a replay stops here (now()); 0: never */
static bool replay_cut;		/* the last replay stopped at replay_end */
static volatile sig_atomic_t stop_requested;

static void __attribute__((format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;

	if (failure.failed)
		return;
	failure.failed = true;
	failure.op = cur_op;
	va_start(ap, fmt);
	vsnprintf(failure.msg, sizeof(failure.msg), fmt, ap);
	va_end(ap);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "cow_pte_fuzz: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(2);
}

static const char *errname(int err)
{
	const char *s = err ? strerrorname_np(err) : "0";

	return s ? s : "E?";
}

/* ------------------------------------------------------------------ */
/* PRNG: xoshiro256** seeded by splitmix64                              */

static uint64_t rng_state[4];

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void rng_seed(uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		rng_state[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
	uint64_t *s = rng_state;
	uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* 0..n-1 (0 if n is 0) */
static uint64_t rnd(uint64_t n)
{
	return n ? rng_next() % n : 0;
}

static bool chance(unsigned int pct)
{
	return rnd(100) < pct;
}

/* An index chosen with probability proportional to weights[i]. */
static int pick_weighted(const int *weights, int n)
{
	long total = 0, x;
	int i;

	for (i = 0; i < n; i++)
		total += weights[i];
	if (!total)
		return -1;
	x = (long)rnd(total);
	for (i = 0; i < n; i++) {
		x -= weights[i];
		if (x < 0)
			break;
	}
	return i;
}

/* ------------------------------------------------------------------ */
/* Page contents                                                        */

/*
 * A page written with tag T holds T ^ (i * K) in word i (word 0 is T), so a
 * page is identified by its tag and a torn or mixed page is detected.  Tag 0
 * is the zero page.  Tags are TAG_MARK | op index << 20 | page in the op.
 */
static inline uint64_t word_of(uint64_t tag, size_t i)
{
	return tag ? tag ^ (i * 0x9e3779b97f4a7c15ULL) : 0;
}

static void fill_page(void *p, uint64_t tag)
{
	uint64_t *q = p;

	for (size_t i = 0; i < WORDS; i++)
		q[i] = word_of(tag, i);
}

static inline uint64_t op_tag(long idx)
{
	return TAG_MARK | (uint64_t)idx << 20;
}

static const char *tag_str(uint64_t tag, char *buf, size_t len)
{
	if (!tag)
		snprintf(buf, len, "zero");
	else if (tag == TAG_CORRUPT)
		snprintf(buf, len, "corrupt page");
	else if ((tag & ~((1ULL << 56) - 1)) == TAG_MARK)
		snprintf(buf, len, "tag %#" PRIx64 " (op %" PRIu64 " page %" PRIu64 ")",
			 tag, (uint64_t)((tag >> 20) & ((1ULL << 36) - 1)),
			 (uint64_t)tag & 0xfffff);
	else
		snprintf(buf, len, "%#" PRIx64 " (not a tag)", tag);
	return buf;
}

/* ------------------------------------------------------------------ */
/* Protocol between the coordinator and the workers                     */

enum cmd_type {
	C_WRITE, C_READ, C_MMAP, C_MUNMAP, C_MREMAP, C_MPROTECT, C_MADVISE,
	C_MLOCK, C_MUNLOCK, C_RWRITE, C_RREAD, C_FWRITE, C_FREAD, C_URING_REG,
	C_URING_READ, C_URING_UNREG, C_UFFD_REG, C_UFFD_FILL, C_UFFD_UNREG,
	C_FORK, C_EXIT, C_WAIT, C_THREAD, C_VMSPLICE, C_PIPE_READ,
	C_MOVE_PAGES, NR_CMDS,
};

static const char *const cmd_names[NR_CMDS] = {
	"write", "read", "mmap", "munmap", "mremap", "mprotect", "madvise",
	"mlock", "munlock", "remote-write", "remote-read", "pwrite", "pread",
	"io_uring_register_buffers", "IORING_OP_READ_FIXED",
	"io_uring_unregister_buffers", "UFFDIO_REGISTER", "uffd-fill",
	"UFFDIO_UNREGISTER", "fork", "exit", "waitpid", "thread", "vmsplice",
	"pipe read", "move_pages",
};

enum { GUP_VM, GUP_MEM };		/* process_vm_*v, /proc/PID/mem */
enum { FILL_COPY, FILL_ZERO };		/* UFFDIO_COPY, UFFDIO_ZEROPAGE */
enum { FORK_LIBC, FORK_CLONE3, FORK_COW };

struct cmd {
	int32_t type;
	int32_t arg;		/* prot, advice, method, mode, count ... */
	int32_t arg2;		/* mmap flags */
	int32_t file;		/* index into file_fd[], or -1 */
	int32_t pid;		/* target of remote access and waitpid */
	int32_t pad;
	uint64_t addr, len;
	uint64_t addr2, len2;	/* mremap destination and new length */
	uint64_t off;		/* file offset */
	uint64_t tag;		/* tag of the first page written */
};

struct reply {
	int64_t ret;		/* result; -1 with err on failure */
	int32_t err;
	int32_t sig;		/* SIGSEGV/SIGBUS taken touching memory */
	uint64_t fault_addr;
	uint64_t bad_page;	/* first corrupt page: index, word, value */
	uint64_t bad_word;
	uint64_t bad_value;
	uint32_t n;		/* entries in tags[] */
	uint32_t pad;
	uint64_t tags[READ_CHUNK];
};
#define REPLY_HDR	offsetof(struct reply, tags)

/* The tag a page holds, or TAG_CORRUPT (the first one noted in r). */
static uint64_t page_tag(const void *p, struct reply *r, uint64_t idx)
{
	const uint64_t *q = p;
	size_t i;

	for (i = 1; i < WORDS; i++)
		if (q[i] != word_of(q[0], i))
			break;
	if (i == WORDS)
		return q[0];
	if (!r->bad_word) {
		r->bad_page = idx;
		r->bad_word = i;
		r->bad_value = q[i];
	}
	return TAG_CORRUPT;
}

/* ------------------------------------------------------------------ */
/* Worker processes: dumb command executors                             */

static int file_fd[NR_FILES] = { -1, -1, -1 };
static int w_chan = -1;
static struct io_uring w_ring;
static bool w_ring_on;
static int w_uffd = -1;
static int w_pipe[2] = { -1, -1 };	/* what vmsplice gave, until read */
static bool w_in_thread;
static struct reply w_rep;
static uint64_t w_page[WORDS] __attribute__((aligned(4096)));
static uint64_t w_page_buf[MAX_SPLICE_PAGES * WORDS];

static void w_result(struct reply *r, long ret)
{
	r->ret = ret;
	r->err = ret < 0 ? errno : 0;
}

/* CPU writes of the pattern, or CPU reads reporting each page's tag. */
static void w_touch(const struct cmd *c, struct reply *r, bool write)
{
	char *p = (char *)c->addr;
	uint64_t n = c->len / PG;

	if (!write && n > READ_CHUNK) {
		r->ret = -1;
		r->err = E2BIG;
		return;
	}
	if (sigsetjmp(fault_jmp, 1)) {
		r->ret = -1;
		r->sig = fault_sig;
		r->fault_addr = (uintptr_t)fault_addr;
		r->n = 0;
		return;
	}
	fault_armed = 1;
	for (uint64_t i = 0; i < n; i++) {
		if (write)
			fill_page(p + i * PG, c->tag + i);
		else
			r->tags[i] = page_tag(p + i * PG, r, i);
	}
	fault_armed = 0;
	r->n = write ? 0 : n;
}

static void w_write(const struct cmd *c, struct reply *r)
{
	w_touch(c, r, true);
}

static void w_read(const struct cmd *c, struct reply *r)
{
	w_touch(c, r, false);
}

static void w_mmap(const struct cmd *c, struct reply *r)
{
	int fd = c->file >= 0 ? file_fd[c->file] : -1;

	w_result(r, (long)mmap((void *)c->addr, c->len, c->arg, c->arg2, fd,
			       c->off));
}

static void w_munmap(const struct cmd *c, struct reply *r)
{
	w_result(r, munmap((void *)c->addr, c->len));
}

static void w_mremap(const struct cmd *c, struct reply *r)
{
	w_result(r, (long)mremap((void *)c->addr, c->len, c->len2, c->arg,
				 (void *)c->addr2));
}

static void w_mprotect(const struct cmd *c, struct reply *r)
{
	w_result(r, mprotect((void *)c->addr, c->len, c->arg));
}

static void w_madvise(const struct cmd *c, struct reply *r)
{
	w_result(r, madvise((void *)c->addr, c->len, c->arg));
}

static void w_mlock(const struct cmd *c, struct reply *r)
{
	w_result(r, mlock2((void *)c->addr, c->len,
			   c->arg ? MLOCK_ONFAULT : 0));
}

static void w_munlock(const struct cmd *c, struct reply *r)
{
	w_result(r, munlock((void *)c->addr, c->len));
}

/* Move len bytes between buf and another process (or this one). */
static ssize_t w_remote_io(const struct cmd *c, char *buf, bool write)
{
	struct iovec l = { buf, c->len }, rv = { (void *)c->addr, c->len };
	char path[64];
	ssize_t n;
	int fd, err;

	if (c->arg == GUP_VM)
		return write ? process_vm_writev(c->pid, &l, 1, &rv, 1, 0) :
			       process_vm_readv(c->pid, &l, 1, &rv, 1, 0);
	snprintf(path, sizeof(path), "/proc/%d/mem", c->pid);
	fd = open(path, write ? O_RDWR : O_RDONLY);
	if (fd < 0)
		return -1;
	n = write ? pwrite(fd, buf, c->len, (off_t)c->addr) :
		    pread(fd, buf, c->len, (off_t)c->addr);
	err = errno;
	close(fd);
	errno = err;
	return n;
}

/* Write the pattern to another process (C_RWRITE) or a file (C_FWRITE). */
static void w_buf_write(const struct cmd *c, struct reply *r)
{
	char *buf = malloc(c->len);
	ssize_t n;

	if (!buf) {
		r->ret = -1;
		r->err = ENOMEM;
		return;
	}
	for (uint64_t i = 0; i < c->len / PG; i++)
		fill_page(buf + i * PG, c->tag + i);
	if (c->type == C_FWRITE)
		n = pwrite(file_fd[c->file], buf, c->len, c->off);
	else
		n = w_remote_io(c, buf, true);
	w_result(r, n);
	free(buf);
}

/* Read another process (C_RREAD) or a file (C_FREAD), report the tags. */
static void w_buf_read(const struct cmd *c, struct reply *r)
{
	uint64_t n = c->len / PG;
	char *buf = n <= READ_CHUNK ? malloc(c->len) : NULL;
	ssize_t got;

	if (!buf) {
		r->ret = -1;
		r->err = n <= READ_CHUNK ? ENOMEM : E2BIG;
		return;
	}
	if (c->type == C_FREAD)
		got = pread(file_fd[c->file], buf, c->len, c->off);
	else
		got = w_remote_io(c, buf, false);
	w_result(r, got);
	if (got == (ssize_t)c->len) {
		for (uint64_t i = 0; i < n; i++)
			r->tags[i] = page_tag(buf + i * PG, r, i);
		r->n = n;
	}
	free(buf);
}

static void w_uring_reg(const struct cmd *c, struct reply *r)
{
	struct iovec iov = { (void *)c->addr, c->len };
	int ret;

	if (w_ring_on) {
		r->ret = -1;
		r->err = EBUSY;
		return;
	}
	ret = io_uring_queue_init(4, &w_ring, 0);
	if (!ret) {
		ret = io_uring_register_buffers(&w_ring, &iov, 1);
		if (ret)
			io_uring_queue_exit(&w_ring);
	}
	w_ring_on = !ret;
	r->ret = ret ? -1 : 0;
	r->err = -ret;
}

static void w_uring_read(const struct cmd *c, struct reply *r)
{
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	int ret;

	r->ret = -1;
	r->err = ENXIO;
	if (!w_ring_on)
		return;
	sqe = io_uring_get_sqe(&w_ring);
	if (!sqe)
		return;
	io_uring_prep_read_fixed(sqe, file_fd[c->file], (void *)c->addr,
				 c->len, c->off, 0);
	ret = io_uring_submit(&w_ring);
	if (ret != 1) {
		r->err = ret < 0 ? -ret : EIO;
		return;
	}
	ret = io_uring_wait_cqe(&w_ring, &cqe);
	if (ret) {
		r->err = -ret;
		return;
	}
	r->ret = cqe->res < 0 ? -1 : cqe->res;
	r->err = cqe->res < 0 ? -cqe->res : 0;
	io_uring_cqe_seen(&w_ring, cqe);
}

static void w_uring_unreg(const struct cmd *c, struct reply *r)
{
	int ret;

	(void)c;
	if (!w_ring_on) {
		r->ret = -1;
		r->err = ENXIO;
		return;
	}
	ret = io_uring_unregister_buffers(&w_ring);
	io_uring_queue_exit(&w_ring);
	w_ring_on = false;
	r->ret = ret ? -1 : 0;
	r->err = -ret;
}

/*
 * vmsplice() the pages into a pipe without SPLICE_F_GIFT: the pipe holds
 * references to the pages themselves (GUP without FOLL_PIN), the reference
 * that fork's copy-on-write must not let another process's writes reach.
 */
static void w_vmsplice(const struct cmd *c, struct reply *r)
{
	struct iovec iov = { (void *)c->addr, c->len };

	if (w_pipe[0] < 0 && pipe2(w_pipe, O_CLOEXEC)) {
		w_result(r, -1);
		return;
	}
	w_result(r, vmsplice(w_pipe[1], &iov, 1, SPLICE_F_NONBLOCK));
}

/* Read back what the pipe holds (c->len bytes) and report the tags. */
static void w_pipe_read(const struct cmd *c, struct reply *r)
{
	uint64_t n = c->len / PG;
	ssize_t got = 0, k;

	if (w_pipe[0] < 0 || n > MAX_SPLICE_PAGES) {
		r->ret = -1;
		r->err = w_pipe[0] < 0 ? EBADF : E2BIG;
		return;
	}
	while ((uint64_t)got < c->len) {
		k = read(w_pipe[0], (char *)w_page_buf + got, c->len - got);
		if (k <= 0)
			break;
		got += k;
	}
	w_result(r, got < (ssize_t)c->len ? -1 : got);
	if (got == (ssize_t)c->len) {
		for (uint64_t i = 0; i < n; i++)
			r->tags[i] = page_tag((char *)w_page_buf + i * PG, r, i);
		r->n = n;
	}
}

/*
 * move_pages() of the worker's own pages to the other node: first ask where
 * each page is (nodes == NULL), then move the present ones, a page on node
 * 0 to node 1 and any other to node 0.  Holes, PROT_NONE, missing and zero
 * pages only get a negative status in the query and are left out.  ret is
 * the second call's: the number of pages not migrated (busy, pinned), or
 * -1 with errno.  MPOL_MF_MOVE_ALL: pages mapped by several processes, the
 * ones that shared tables map, move too.
 */
static void w_move_pages(const struct cmd *c, struct reply *r)
{
	void *pages[MAX_MOVE_PAGES];
	int nodes[MAX_MOVE_PAGES], status[MAX_MOVE_PAGES];
	uint64_t i, k = 0, n = c->len / PG;
	long ret;

	if (n > MAX_MOVE_PAGES) {
		r->ret = -1;
		r->err = E2BIG;
		return;
	}
	for (i = 0; i < n; i++)
		pages[i] = (char *)c->addr + i * PG;
	ret = syscall(SYS_move_pages, 0, n, pages, NULL, status,
		      MPOL_MF_MOVE_ALL);
	if (ret) {
		w_result(r, ret);
		return;
	}
	for (i = 0; i < n; i++) {
		if (status[i] < 0)
			continue;
		pages[k] = pages[i];
		nodes[k++] = status[i] ? 0 : 1;
	}
	ret = k ? syscall(SYS_move_pages, 0, k, pages, nodes, status,
			  MPOL_MF_MOVE_ALL) : 0;
	w_result(r, ret);
}

/* A userfaultfd whose missing faults raise SIGBUS instead of blocking. */
static int uffd_open(void)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_SIGBUS,
	};
	int fd, err;

	fd = syscall(__NR_userfaultfd,
		     O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0 && errno == EINVAL)
		fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -1;
	if (ioctl(fd, UFFDIO_API, &api)) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

static void w_uffd_reg(const struct cmd *c, struct reply *r)
{
	struct uffdio_register reg = {
		.range = { c->addr, c->len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	if (w_uffd < 0)
		w_uffd = uffd_open();
	if (w_uffd < 0)
		w_result(r, -1);
	else
		w_result(r, ioctl(w_uffd, UFFDIO_REGISTER, &reg));
}

/* UFFDIO_COPY or UFFDIO_ZEROPAGE page by page; ret = pages filled. */
static void w_uffd_fill(const struct cmd *c, struct reply *r)
{
	uint64_t i, n = c->len / PG;

	for (i = 0; i < n; i++) {
		uint64_t dst = c->addr + i * PG;
		int rc;

		if (c->arg == FILL_COPY) {
			struct uffdio_copy cp = {
				.dst = dst,
				.src = (uintptr_t)w_page,
				.len = PG,
			};

			fill_page(w_page, c->tag + i);
			rc = ioctl(w_uffd, UFFDIO_COPY, &cp);
		} else {
			struct uffdio_zeropage zp = { .range = { dst, PG } };

			rc = ioctl(w_uffd, UFFDIO_ZEROPAGE, &zp);
		}
		if (rc) {
			r->err = errno;
			break;
		}
	}
	r->ret = i;
}

static void w_uffd_unreg(const struct cmd *c, struct reply *r)
{
	struct uffdio_range range = { c->addr, c->len };

	w_result(r, ioctl(w_uffd, UFFDIO_UNREGISTER, &range));
}

static void w_wait(const struct cmd *c, struct reply *r)
{
	int status = 0;
	pid_t pid = waitpid(c->pid, &status, 0);

	w_result(r, pid < 0 ? -1 : status);
}

typedef void (*w_handler)(const struct cmd *c, struct reply *r);

static const w_handler w_handlers[NR_CMDS] = {
	[C_WRITE] = w_write,
	[C_READ] = w_read,
	[C_MMAP] = w_mmap,
	[C_MUNMAP] = w_munmap,
	[C_MREMAP] = w_mremap,
	[C_MPROTECT] = w_mprotect,
	[C_MADVISE] = w_madvise,
	[C_MLOCK] = w_mlock,
	[C_MUNLOCK] = w_munlock,
	[C_RWRITE] = w_buf_write,
	[C_RREAD] = w_buf_read,
	[C_FWRITE] = w_buf_write,
	[C_FREAD] = w_buf_read,
	[C_URING_REG] = w_uring_reg,
	[C_URING_READ] = w_uring_read,
	[C_URING_UNREG] = w_uring_unreg,
	[C_UFFD_REG] = w_uffd_reg,
	[C_UFFD_FILL] = w_uffd_fill,
	[C_UFFD_UNREG] = w_uffd_unreg,
	[C_WAIT] = w_wait,
	[C_VMSPLICE] = w_vmsplice,
	[C_PIPE_READ] = w_pipe_read,
	[C_MOVE_PAGES] = w_move_pages,
};

static void w_send(const struct reply *r)
{
	size_t len = REPLY_HDR + r->n * sizeof(uint64_t);

	if (send(w_chan, r, len, MSG_NOSIGNAL) != (ssize_t)len)
		_exit(3);
}

/* One command and, for C_FORK, the new child's channel. */
static int w_recv(struct cmd *c, int *fd)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { c, sizeof(*c) };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl,
		.msg_controllen = sizeof(ctl),
	};
	struct cmsghdr *cm;
	ssize_t n;

	do
		n = recvmsg(w_chan, &mh, 0);
	while (n < 0 && errno == EINTR);
	if (n != sizeof(*c))
		return -1;
	*fd = -1;
	cm = CMSG_FIRSTHDR(&mh);
	if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
		memcpy(fd, CMSG_DATA(cm), sizeof(int));
	return 0;
}

/* In a new child: forget the parent's io_uring, userfaultfd and pipe. */
static void w_child_reset(void)
{
	if (w_pipe[0] >= 0) {
		close(w_pipe[0]);
		close(w_pipe[1]);
		w_pipe[0] = w_pipe[1] = -1;
	}
	if (w_ring_on) {
		io_uring_queue_exit(&w_ring);
		w_ring_on = false;
	}
	if (w_uffd >= 0) {
		close(w_uffd);
		w_uffd = -1;
	}
}

/* Returns true in the child, which then serves the channel it was sent. */
static bool w_fork(const struct cmd *c, struct reply *r, int fd)
{
	pid_t pid;

	if (fd < 0) {
		r->ret = -1;
		r->err = EBADF;
		return false;
	}
	if (c->arg == FORK_LIBC)
		pid = fork();
	else
		pid = cowpt_fork(c->arg == FORK_COW ? CLONE_COW_PGTABLE : 0);
	if (!pid) {
		close(w_chan);
		w_chan = fd;
		w_child_reset();
		return true;
	}
	close(fd);
	w_result(r, pid);
	return false;
}

static bool w_step(void);

static void __attribute__((noreturn)) w_serve(void)
{
	w_in_thread = false;
	for (;;)
		w_step();
}

/* The next arg commands are executed by this thread. */
static void *w_thread_main(void *arg)
{
	for (long n = (long)arg; n > 0; n--)
		if (w_step())
			w_serve();	/* a child forked from this thread */
	return NULL;
}

static void w_thread(const struct cmd *c)
{
	pthread_t th;
	int err;

	if (w_in_thread) {		/* at most two threads */
		w_send(&w_rep);
		return;
	}
	w_in_thread = true;
	err = pthread_create(&th, NULL, w_thread_main, (void *)(long)c->arg);
	if (err) {
		w_rep.ret = -1;
		w_rep.err = err;
		w_in_thread = false;
	}
	/* the new thread only reads the socket after this answer */
	w_send(&w_rep);
	if (!err)
		pthread_join(th, NULL);
	w_in_thread = false;
}

/* Receive, execute and answer one command.  True in a new child. */
static bool w_step(void)
{
	struct cmd c;
	int fd;

	if (w_recv(&c, &fd))
		_exit(0);		/* the coordinator went away */
	memset(&w_rep, 0, REPLY_HDR);
	switch (c.type) {
	case C_FORK:
		if (w_fork(&c, &w_rep, fd)) {
			w_rep.ret = getpid();	/* hello on the new channel */
			w_send(&w_rep);
			return true;
		}
		break;
	case C_EXIT:
		w_send(&w_rep);
		_exit(c.arg);
	case C_THREAD:
		w_thread(&c);
		return false;
	default:
		if (fd >= 0)
			close(fd);
		if (c.type < 0 || c.type >= NR_CMDS || !w_handlers[c.type]) {
			w_rep.ret = -1;
			w_rep.err = ENOSYS;
		} else {
			w_handlers[c.type](&c, &w_rep);
		}
	}
	w_send(&w_rep);
	return false;
}

static void __attribute__((noreturn)) worker_main(int chan)
{
	catch_faults();
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_DFL);
	w_chan = chan;
	memset(&w_rep, 0, REPLY_HDR);
	w_rep.ret = getpid();
	w_send(&w_rep);
	w_serve();
}

/* ------------------------------------------------------------------ */
/* The model                                                            */

enum { K_ANON, K_SHANON, K_PFILE, K_SFILE, NR_KINDS };
static const char *const kind_names[NR_KINDS] = {
	"anon", "shanon", "pfile", "sfile",
};

static inline bool kind_shared(int k)
{
	return k == K_SHANON || k == K_SFILE;
}

static inline bool kind_file(int k)
{
	return k == K_PFILE || k == K_SFILE;
}

/* region flags */
enum {
	RF_DONTFORK = 1, RF_WIPE = 2, RF_LOCKED = 4, RF_ONFAULT = 8,
	RF_UFFD = 16,
};
static const char *const rf_names[] = {
	"dontfork", "wipeonfork", "locked", "onfault", "uffd",
};

/* What a private page holds (shared pages always show their object). */
enum {
	ST_PRIV,	/* its own content: tag[] */
	ST_MAYBE0,	/* tag[] or zero (MADV_FREE) */
	ST_OBJ,		/* the file's page (private file mapping) */
	ST_MISSING,	/* userfaultfd: not filled, must not be touched */
};
static const char *const st_names[] = {
	"private", "private-or-zero", "file page", "uffd-missing",
};

static const char *const prot_names[] = { "none", "r", "w", "rw" };

struct region {
	uint64_t s, e;		/* arena pages [s, e) */
	uint64_t pgoff;		/* object page mapped at s */
	int prot;
	int kind;
	int obj;		/* object of shared and file kinds */
	unsigned int fl;
};

/* A file (0..NR_FILES-1) or a shared anonymous object. */
struct object {
	uint64_t npages;
	uint64_t *tag;
};

enum { W_NONE, W_LIVE, W_ZOMBIE, W_GONE };

struct worker {
	int state;
	pid_t pid;
	int chan;
	int parent;		/* worker id or COORD */
	int nreg;
	uint64_t ur_s, ur_e;	/* io_uring fixed buffer (pages), s == e: none */
	struct splice *sp;	/* pages in the worker's pipe, or NULL */
	uint64_t *tag;		/* per arena page */
	uint8_t *st;		/* per arena page: ST_* */
	struct region reg[MAX_REGIONS];
};

static struct worker **wk;
static int nwk;			/* slots used in wk[] */
static struct object objs[MAX_OBJS];
static int nobjs;
static long cap_pages;		/* --mem, in pages */

static void __attribute__((noreturn)) bug(const char *what)
{
	die("internal error: %s", what);
}

static bool live(int64_t id)
{
	return id >= 0 && id < nwk && wk[id] && wk[id]->state == W_LIVE;
}

static int live_ids(int *ids)
{
	int n = 0;

	for (int i = 0; i < nwk && n < MAX_PROCS * 4; i++)
		if (live(i))
			ids[n++] = i;
	return n;
}

static int live_count(void)
{
	int ids[MAX_PROCS * 4];

	return live_ids(ids);
}

/* Index of the first region ending after page pg (nreg if none). */
static int reg_first(const struct worker *w, uint64_t pg)
{
	int i;

	for (i = 0; i < w->nreg && w->reg[i].e <= pg; i++)
		;
	return i;
}

static struct region *reg_at(struct worker *w, uint64_t pg)
{
	int i = reg_first(w, pg);

	return i < w->nreg && w->reg[i].s <= pg ? &w->reg[i] : NULL;
}

/* Make pg a region boundary. */
static void reg_split(struct worker *w, uint64_t pg)
{
	int i = reg_first(w, pg);
	struct region *r;

	if (i == w->nreg || w->reg[i].s >= pg)
		return;
	if (w->nreg == MAX_REGIONS)
		bug("too many regions");
	r = &w->reg[i];
	memmove(r + 1, r, (w->nreg - i) * sizeof(*r));
	w->nreg++;
	r->e = pg;
	r[1].pgoff += pg - r[1].s;
	r[1].s = pg;
}

static void reg_unmap(struct worker *w, uint64_t s, uint64_t e)
{
	int i, j;

	reg_split(w, s);
	reg_split(w, e);
	i = reg_first(w, s);
	for (j = i; j < w->nreg && w->reg[j].s < e; j++)
		;
	memmove(&w->reg[i], &w->reg[j], (w->nreg - j) * sizeof(w->reg[0]));
	w->nreg -= j - i;
}

/* Insert a region into a free range. */
static struct region *reg_add(struct worker *w, const struct region *nr)
{
	int i = reg_first(w, nr->s);

	if (w->nreg == MAX_REGIONS)
		bug("too many regions");
	if (i < w->nreg && w->reg[i].s < nr->e)
		bug("region added over another");
	memmove(&w->reg[i + 1], &w->reg[i], (w->nreg - i) * sizeof(*nr));
	w->reg[i] = *nr;
	w->nreg++;
	return &w->reg[i];
}

static bool range_free(const struct worker *w, uint64_t s, uint64_t e)
{
	int i = reg_first(w, s);

	return i == w->nreg || w->reg[i].s >= e;
}

static uint64_t overlap_pages(const struct worker *w, uint64_t s, uint64_t e)
{
	uint64_t n = 0;

	for (int i = reg_first(w, s); i < w->nreg && w->reg[i].s < e; i++)
		n += MIN(e, w->reg[i].e) - MAX(s, w->reg[i].s);
	return n;
}

/*
 * Whether w may map add more pages after [s, e) is unmapped: the --mem cap,
 * only while generating (a replay never refuses what was generated).
 */
static bool under_cap(const struct worker *w, uint64_t add, uint64_t s,
		      uint64_t e)
{
	return !generating ||
	       overlap_pages(w, 0, ARENA_PAGES) - overlap_pages(w, s, e) + add <=
	       (uint64_t)cap_pages;
}

/* Room for the splits and additions of one operation. */
static bool room(const struct worker *w)
{
	return w->nreg <= MAX_REGIONS - 8;
}

static uint64_t *obj_slot(const struct region *r, uint64_t pg)
{
	return &objs[r->obj].tag[r->pgoff + (pg - r->s)];
}

/* A free slot for a shared anonymous object, or -1. */
static int obj_slot_free(void)
{
	for (int i = NR_FILES; i < MAX_OBJS; i++)
		if (!objs[i].tag)
			return i;
	return -1;
}

static int obj_new(uint64_t npages)
{
	int i = obj_slot_free();

	if (i < 0)
		bug("too many objects");
	objs[i].npages = npages;
	objs[i].tag = calloc(npages, sizeof(uint64_t));
	if (!objs[i].tag)
		bug("out of memory");
	nobjs = MAX(nobjs, i + 1);
	return i;
}

struct expect {
	uint64_t tag;
	bool or_zero;
	bool skip;
};

/*
 * The pages a worker vmsplice()d into its pipe: what each held then, and
 * every tag stored into the worker's memory since.  Read back, a page must
 * show what it held, or a later store of the splicer's own (its write can
 * land in the page while the page is exclusively its), never what another
 * process wrote: that would be a write leaking through copy-on-write.
 */
struct splice {
	int64_t op;			/* the vmsplice op */
	uint64_t n;
	uint64_t s;			/* first page spliced */
	struct expect x[MAX_SPLICE_PAGES];
	uint64_t *later;		/* tags stored since */
	size_t nlater, cap;
};

static struct expect page_expect(const struct worker *w,
				 const struct region *r, uint64_t pg)
{
	struct expect x = { 0, false, false };

	if (kind_shared(r->kind)) {
		x.tag = *obj_slot(r, pg);
		return x;
	}
	switch (w->st[pg]) {
	case ST_MAYBE0:
		x.or_zero = true;
		/* fall through */
	case ST_PRIV:
		x.tag = w->tag[pg];
		break;
	case ST_OBJ:
		x.tag = *obj_slot(r, pg);
		break;
	default:
		x.skip = true;
	}
	return x;
}

/* Remember a store into a worker that has pages in its pipe. */
static void splice_note(struct splice *sp, uint64_t tag)
{
	if (sp->nlater == sp->cap) {
		size_t cap = sp->cap ? 2 * sp->cap : 256;
		uint64_t *n = realloc(sp->later, cap * sizeof(*n));

		if (!n)
			bug("out of memory");
		sp->later = n;
		sp->cap = cap;
	}
	sp->later[sp->nlater++] = tag;
}

static void splice_free(struct worker *w)
{
	if (w->sp) {
		free(w->sp->later);
		free(w->sp);
		w->sp = NULL;
	}
}

/* A store of tag to page pg of w, by any path. */
static void page_store(struct worker *w, const struct region *r, uint64_t pg,
		       uint64_t tag)
{
	if (w->sp)
		splice_note(w->sp, tag);
	if (kind_shared(r->kind)) {
		*obj_slot(r, pg) = tag;
	} else {
		w->st[pg] = ST_PRIV;
		w->tag[pg] = tag;
	}
}

/* Pages [s, e) of w get tag, tag + 1, ... */
static void store_range(struct worker *w, uint64_t s, uint64_t e, uint64_t tag)
{
	for (uint64_t pg = s; pg < e; pg++) {
		struct region *r = reg_at(w, pg);

		if (!r)
			bug("store outside the regions");
		page_store(w, r, pg, tag + (pg - s));
	}
}

/* Fresh pages of r (new mapping, grown part): zero, missing or the file. */
static void pages_init(struct worker *w, const struct region *r, uint64_t s,
		       uint64_t e)
{
	int st = kind_file(r->kind) || kind_shared(r->kind) ? ST_OBJ :
		 (r->fl & RF_UFFD) ? ST_MISSING : ST_PRIV;

	memset(&w->st[s], st, e - s);
	memset(&w->tag[s], 0, (e - s) * sizeof(uint64_t));
}

/*
 * Populating a writable private mapping (mlock, MAP_POPULATE, mremap of a
 * locked VMA, MADV_POPULATE_WRITE) write-faults it: file pages are copied.
 */
static void populate_write(struct worker *w, const struct region *r,
			   uint64_t s, uint64_t e)
{
	if (r->kind != K_PFILE || !(r->prot & PROT_WRITE))
		return;
	for (uint64_t pg = s; pg < e; pg++) {
		if (w->st[pg] == ST_OBJ) {
			w->st[pg] = ST_PRIV;
			w->tag[pg] = *obj_slot(r, pg);
		}
	}
}

/* MADV_DONTNEED: private pages go, file pages show the file again. */
static void zap_pages(struct worker *w, const struct region *r, uint64_t s,
		      uint64_t e)
{
	if (!kind_shared(r->kind))
		pages_init(w, r, s, e);
}

static struct region *map_region(struct worker *w, const struct region *nr)
{
	struct region *r;

	reg_unmap(w, nr->s, nr->e);
	r = reg_add(w, nr);
	pages_init(w, r, r->s, r->e);
	return r;
}

/* The child's model after fork (DONTFORK, WIPEONFORK, mlock, uffd). */
static void model_fork(const struct worker *p, struct worker *c)
{
	memcpy(c->tag, p->tag, ARENA_PAGES * sizeof(uint64_t));
	memcpy(c->st, p->st, ARENA_PAGES);
	c->nreg = 0;
	for (int i = 0; i < p->nreg; i++) {
		struct region r = p->reg[i];

		if (r.fl & RF_DONTFORK)
			continue;
		r.fl &= ~(RF_LOCKED | RF_ONFAULT | RF_UFFD);
		for (uint64_t pg = r.s; pg < r.e; pg++) {
			if (r.kind == K_ANON && ((r.fl & RF_WIPE) ||
						 c->st[pg] == ST_MISSING)) {
				c->st[pg] = ST_PRIV;
				c->tag[pg] = 0;
			}
		}
		c->reg[c->nreg++] = r;
	}
	c->ur_s = c->ur_e = 0;
	c->sp = NULL;		/* the child closes its copy of the pipe */
}

/*
 * mremap of [s, e) (inside one region) to [to, to + newn): the pages move,
 * the grown part is fresh and populated if the region is mlocked.  With
 * MREMAP_DONTUNMAP the old range stays mapped, empty and unlocked.
 */
static void model_move(struct worker *w, uint64_t s, uint64_t e, uint64_t to,
		       uint64_t newn, bool dontunmap)
{
	uint64_t n = e - s;
	uint64_t *tags = malloc(n * sizeof(uint64_t));
	uint8_t *sts = malloc(n);
	struct region nr, *r;

	if (!tags || !sts)
		bug("out of memory");
	reg_split(w, s);
	reg_split(w, e);
	nr = *reg_at(w, s);
	memcpy(tags, &w->tag[s], n * sizeof(uint64_t));
	memcpy(sts, &w->st[s], n);
	if (dontunmap) {
		r = reg_at(w, s);
		r->fl &= ~(RF_LOCKED | RF_ONFAULT);
		pages_init(w, r, s, e);
	} else {
		reg_unmap(w, s, e);
	}
	reg_unmap(w, to, to + newn);
	nr.s = to;
	nr.e = to + newn;
	r = reg_add(w, &nr);
	memcpy(&w->tag[to], tags, n * sizeof(uint64_t));
	memcpy(&w->st[to], sts, n);
	pages_init(w, r, to + n, to + newn);
	if ((r->fl & RF_LOCKED) && !(r->fl & RF_ONFAULT))
		populate_write(w, r, to + n, to + newn);
	free(tags);
	free(sts);
}

/* Range requirements */
#define NEED_R		0x001	/* PROT_READ */
#define NEED_W		0x002	/* PROT_WRITE */
#define NEED_ANON	0x004	/* private anonymous */
#define NEED_FORCE_W	0x008	/* writable, or readable and private */
#define NO_UFFD		0x010	/* no userfaultfd-registered region */
#define ONLY_UFFD	0x020	/* only userfaultfd-registered regions */
#define NO_URING	0x040	/* not the io_uring fixed buffer */
#define ONE_REGION	0x080	/* inside one region */
#define HOLES_OK	0x100	/* need not be mapped */
#define NO_LOCKED	0x200	/* no mlocked region */

static bool region_ok(const struct region *r, unsigned int need)
{
	if ((need & NEED_R) && !(r->prot & PROT_READ))
		return false;
	if ((need & NEED_W) && !(r->prot & PROT_WRITE))
		return false;
	if ((need & NEED_ANON) && r->kind != K_ANON)
		return false;
	if ((need & NEED_FORCE_W) && !(r->prot & PROT_WRITE) &&
	    !((r->prot & PROT_READ) && !kind_shared(r->kind)))
		return false;
	if ((need & NO_UFFD) && (r->fl & RF_UFFD))
		return false;
	if ((need & ONLY_UFFD) && !(r->fl & RF_UFFD))
		return false;
	if ((need & NO_LOCKED) && (r->fl & RF_LOCKED))
		return false;
	return true;
}

static bool overlaps(uint64_t s1, uint64_t e1, uint64_t s2, uint64_t e2)
{
	return s1 < e2 && s2 < e1;
}

static bool range_ok(const struct worker *w, uint64_t s, uint64_t e,
		     unsigned int need)
{
	uint64_t pg = s;
	int i = reg_first(w, s), first = i;

	if ((need & NO_URING) && overlaps(s, e, w->ur_s, w->ur_e))
		return false;
	for (; i < w->nreg && w->reg[i].s < e; i++) {
		const struct region *r = &w->reg[i];

		if (r->s > pg && !(need & HOLES_OK))
			return false;
		if (!region_ok(r, need))
			return false;
		if ((need & ONE_REGION) && i != first)
			return false;
		pg = r->e;
	}
	return (need & HOLES_OK) || pg >= e;
}

static bool in_arena(uint64_t addr, uint64_t len)
{
	return addr >= ARENA_BASE && len && !(addr % PG) && !(len % PG) &&
	       len <= ARENA_PAGES * PG &&
	       addr - ARENA_BASE <= ARENA_PAGES * PG - len;
}

static const char *reg_str(const struct region *r, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s %s %#" PRIx64 "-%#" PRIx64,
			 kind_names[r->kind], prot_names[r->prot & 3],
			 pg_addr(r->s), pg_addr(r->e));

	if (r->kind != K_ANON)
		n += snprintf(buf + n, len - n, " obj %d page %#" PRIx64,
			      r->obj, r->pgoff);
	for (int b = 0; b < 5; b++)
		if (r->fl & (1u << b))
			n += snprintf(buf + n, len - n, " %s", rf_names[b]);
	return buf;
}

/* ------------------------------------------------------------------ */
/* Talking to workers                                                   */

static struct reply co_rep;	/* the last answer */

static int co_send(int chan, const struct cmd *c, int fd)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { (void *)c, sizeof(*c) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	if (fd >= 0) {
		memset(ctl, 0, sizeof(ctl));
		mh.msg_control = ctl;
		mh.msg_controllen = sizeof(ctl);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	return sendmsg(chan, &mh, MSG_NOSIGNAL) == sizeof(*c) ? 0 : -1;
}

/* 0, -1 if the worker is gone, -2 if it did not answer in time. */
static int co_recv(int chan, struct reply *r)
{
	struct pollfd p = { .fd = chan, .events = POLLIN };
	ssize_t len;
	int n;

	do
		n = poll(&p, 1, REPLY_TIMEOUT_S * 1000);
	while (n < 0 && errno == EINTR);
	if (!n)
		return -2;
	len = recv(chan, r, sizeof(*r), 0);
	if (len < (ssize_t)REPLY_HDR || r->n > READ_CHUNK ||
	    (size_t)len != REPLY_HDR + r->n * sizeof(uint64_t))
		return -1;
	return 0;
}

/* "exited with N", "killed by signal N (NAME)" or "running". */
static const char *proc_status(pid_t pid, char *buf, size_t len)
{
	char path[64], stat[1024], *p, *last;
	int code;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_text(path, stat, sizeof(stat)) <= 0 ||
	    !(p = strrchr(stat, ')'))) {
		snprintf(buf, len, "already reaped");
		return buf;
	}
	stat[strcspn(stat, "\n")] = '\0';
	last = strrchr(p, ' ');
	code = last ? atoi(last + 1) : 0;
	if (p[2] != 'Z' && p[2] != 'X')
		snprintf(buf, len, "still running (state %c)", p[2]);
	else if (WIFSIGNALED(code))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(code),
			 strsignal(WTERMSIG(code)));
	else
		snprintf(buf, len, "exited with %d", WEXITSTATUS(code));
	return buf;
}

static char proc_state(pid_t pid)
{
	char path[64], stat[1024], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_text(path, stat, sizeof(stat)) <= 0 ||
	    !(p = strrchr(stat, ')')))
		return '?';
	return p[2];
}

static void worker_lost(int id, const char *what, int rc)
{
	struct worker *w = wk[id];
	char st[96];

	if (rc == -2) {
		fail("worker %d (pid %d) hung: no answer to %s in %d s",
		     id, w->pid, what, REPLY_TIMEOUT_S);
	} else {
		for (int i = 0; i < 1000 && strchr("?ZX", proc_state(w->pid)) == NULL; i++)
			usleep(1000);
		fail("worker %d (pid %d) died during %s: %s", id, w->pid,
		     what, proc_status(w->pid, st, sizeof(st)));
	}
	kill(w->pid, SIGKILL);
	w->state = W_GONE;
}

static int co_call(int id, const struct cmd *c, int fd, struct reply *r)
{
	struct worker *w = wk[id];
	int rc = co_send(w->chan, c, fd);

	if (!rc)
		rc = co_recv(w->chan, r);
	if (rc) {
		worker_lost(id, cmd_names[c->type], rc);
		return -1;
	}
	return 0;
}

static const char *res_str(long ret, int err, char *buf, size_t len)
{
	if (ret == -1 && err)
		snprintf(buf, len, "-1 %s", errname(err));
	else
		snprintf(buf, len, "%#lx", ret);
	return buf;
}

/* The answer to c must be ret, or -1 with errno err when err != 0. */
static bool expect_res(int id, const struct cmd *c, const struct reply *r,
		       long ret, int err)
{
	char b1[64], b2[64];

	if (r->sig) {
		fail("worker %d (pid %d): %s(%#" PRIx64 ", %#" PRIx64 ") took %s at %#" PRIx64,
		     id, wk[id]->pid, cmd_names[c->type], c->addr, c->len,
		     strsignal(r->sig), r->fault_addr);
		return false;
	}
	if (err ? r->ret == -1 && r->err == err : r->ret == ret)
		return true;
	fail("worker %d (pid %d): %s(%#" PRIx64 ", %#" PRIx64 ") returned %s, expected %s",
	     id, wk[id]->pid, cmd_names[c->type], c->addr, c->len,
	     res_str(r->ret, r->err, b1, sizeof(b1)),
	     res_str(err ? -1 : ret, err, b2, sizeof(b2)));
	return false;
}

/* Execute c in worker id; 0 if the answer is the expected one. */
static int call(int id, const struct cmd *c, long ret, int err)
{
	if (co_call(id, c, -1, &co_rep))
		return -1;
	return expect_res(id, c, &co_rep, ret, err) ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Checking contents                                                    */

static void corrupt_str(uint64_t got, const struct reply *rep, char *buf,
			size_t len)
{
	if (got == TAG_CORRUPT)
		snprintf(buf, len, " (word %" PRIu64 " is %#" PRIx64 ")",
			 rep->bad_word, rep->bad_value);
	else
		buf[0] = '\0';
}

static bool page_ok(const struct worker *w, const struct region *r,
		    uint64_t pg, uint64_t got)
{
	struct expect x = page_expect(w, r, pg);

	return x.skip || got == x.tag || (x.or_zero && !got);
}

/* Page pg of worker id read back as got (how: the path that read it). */
static void check_page(int id, struct region *r, uint64_t pg, uint64_t got,
		       const struct reply *rep, const char *how)
{
	struct worker *w = wk[id];
	struct expect x = page_expect(w, r, pg);
	char b1[80], b2[80], b3[64], b4[160];

	if (page_ok(w, r, pg, got))
		return;
	corrupt_str(got, rep, b3, sizeof(b3));
	fail("worker %d (pid %d) page %#" PRIx64 " (%s): expected %s%s, found %s%s [%s, %s]",
	     id, w->pid, pg_addr(pg), how, tag_str(x.tag, b1, sizeof(b1)),
	     x.or_zero ? " or zero" : "", tag_str(got, b2, sizeof(b2)), b3,
	     reg_str(r, b4, sizeof(b4)),
	     kind_shared(r->kind) ? "shared" : st_names[w->st[pg]]);
}

static void read_check(int id, struct region *r, uint64_t pg, uint64_t n)
{
	struct cmd c = {
		.type = C_READ, .addr = pg_addr(pg), .len = n * PG,
	};
	char b[160];

	if (co_call(id, &c, -1, &co_rep))
		return;
	if (co_rep.sig) {
		fail("worker %d (pid %d): %s reading page %#" PRIx64 " [%s]",
		     id, wk[id]->pid, strsignal(co_rep.sig),
		     co_rep.fault_addr, reg_str(r, b, sizeof(b)));
		return;
	}
	if (co_rep.ret || co_rep.n != n) {
		fail("worker %d: bad answer to read (%" PRId64 ", %u pages)",
		     id, co_rep.ret, co_rep.n);
		return;
	}
	/*
	 * Report the first wrong page, and how many more this read found
	 * (and how many of them read zero): one lost PTE, or a whole table?
	 */
	for (uint64_t i = 0; i < n; i++) {
		char how[96];
		uint64_t bad = 0, zero = 0;

		if (page_ok(wk[id], r, pg + i, co_rep.tags[i]))
			continue;
		for (uint64_t j = i; j < n; j++) {
			if (page_ok(wk[id], r, pg + j, co_rep.tags[j]))
				continue;
			bad++;
			zero += !co_rep.tags[j];
		}
		snprintf(how, sizeof(how),
			 "cpu read; %" PRIu64 " of the %" PRIu64 " pages read wrong, %" PRIu64 " of them zero",
			 bad, n, zero);
		check_page(id, r, pg + i, co_rep.tags[i], &co_rep, how);
		break;
	}
}

/* Read back every readable page of [s, e) in worker id. */
static void verify_range(int id, uint64_t s, uint64_t e)
{
	struct worker *w = wk[id];

	for (int i = reg_first(w, s); i < w->nreg && w->reg[i].s < e; i++) {
		struct region *r = &w->reg[i];
		uint64_t pg = MAX(r->s, s), end = MIN(r->e, e), n;

		if (!(r->prot & PROT_READ))
			continue;
		while (pg < end && !failure.failed) {
			if (!kind_shared(r->kind) && w->st[pg] == ST_MISSING) {
				pg++;
				continue;
			}
			for (n = 0; pg + n < end && n < READ_CHUNK; n++)
				if (!kind_shared(r->kind) &&
				    w->st[pg + n] == ST_MISSING)
					break;
			read_check(id, r, pg, n);
			pg += n;
		}
		if (failure.failed)
			return;
	}
}

/* Read back the mappings of object pages [s, e) in worker id. */
static void verify_obj_range(int id, int obj, uint64_t s, uint64_t e)
{
	struct worker *w = wk[id];

	for (int i = 0; i < w->nreg && !failure.failed; i++) {
		struct region *r = &w->reg[i];
		uint64_t lo = r->pgoff, hi = r->pgoff + (r->e - r->s);

		if (r->kind == K_ANON || r->obj != obj || !overlaps(lo, hi, s, e))
			continue;
		verify_range(id, r->s + (MAX(lo, s) - lo),
			     r->s + (MIN(hi, e) - lo));
	}
}

static void check_obj_page(int obj, uint64_t pg, uint64_t got,
			   const struct reply *rep, const char *how)
{
	uint64_t want = objs[obj].tag[pg];
	char b1[80], b2[80], b3[64];

	if (got == want)
		return;
	corrupt_str(got, rep, b3, sizeof(b3));
	fail("file %d page %#" PRIx64 " (%s): expected %s, found %s%s", obj,
	     pg, how, tag_str(want, b1, sizeof(b1)),
	     tag_str(got, b2, sizeof(b2)), b3);
}

/* The files as read(2) sees them, read by the coordinator itself. */
static void verify_files(void)
{
	static char buf[READ_CHUNK * PG];
	struct reply r;

	for (int f = 0; f < NR_FILES && !failure.failed; f++) {
		for (uint64_t pg = 0; pg < FILE_PAGES && !failure.failed;
		     pg += READ_CHUNK) {
			uint64_t n = MIN(READ_CHUNK, FILE_PAGES - pg);

			if (pread(file_fd[f], buf, n * PG, pg * PG) !=
			    (ssize_t)(n * PG)) {
				fail("pread of file %d: %s", f, strerror(errno));
				return;
			}
			memset(&r, 0, REPLY_HDR);
			for (uint64_t i = 0; i < n && !failure.failed; i++)
				check_obj_page(f, pg + i,
					       page_tag(buf + i * PG, &r, i),
					       &r, "coordinator pread");
		}
	}
}

/* ------------------------------------------------------------------ */
/* Kernel log                                                           */

static int kmsg_fd = -1;

static const char *const klog_patterns[] = {
	"WARNING:", "BUG:", "Bad rss-counter", "Bad page", "page_table_check",
	"Oops", "general protection", "kernel BUG",
};

static void klog_open(void)
{
	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (kmsg_fd < 0 || lseek(kmsg_fd, 0, SEEK_END) < 0) {
		printf("# kernel log unreadable (/dev/kmsg: %s): not checked\n",
		       strerror(errno));
		if (kmsg_fd >= 0)
			close(kmsg_fd);
		kmsg_fd = -1;
	}
}

/* New kernel messages with a report in them are a failure. */
static void klog_scan(void)
{
	char buf[8192], *msg;
	ssize_t n;

	while (kmsg_fd >= 0) {
		n = read(kmsg_fd, buf, sizeof(buf) - 1);
		if (n < 0 && (errno == EPIPE || errno == EINTR))
			continue;	/* overwritten records, signal */
		if (n <= 0)
			break;
		buf[n] = '\0';
		msg = strchr(buf, ';');
		msg = msg ? msg + 1 : buf;
		msg[strcspn(msg, "\n")] = '\0';
		for (size_t i = 0; i < sizeof(klog_patterns) / sizeof(char *); i++) {
			if (!strstr(msg, klog_patterns[i]))
				continue;
			if (!quiet)
				printf("# kernel: %s\n", msg);
			fail("kernel log: %s", msg);
			break;
		}
	}
}

/* Free the shared anonymous objects no live worker maps any more. */
static void objs_gc(void)
{
	static bool used[MAX_OBJS];
	int ids[MAX_PROCS * 4], n = live_ids(ids);

	memset(used, 0, sizeof(used));
	for (int i = 0; i < n; i++)
		for (int j = 0; j < wk[ids[i]]->nreg; j++)
			used[wk[ids[i]]->reg[j].obj] = true;
	for (int o = NR_FILES; o < nobjs; o++) {
		if (!used[o]) {
			free(objs[o].tag);
			objs[o].tag = NULL;
		}
	}
}

/* Everything: every readable page of every worker, the files, the log. */
static void verify_all(void)
{
	int ids[MAX_PROCS * 4], n = live_ids(ids);

	objs_gc();
	for (int i = 0; i < n && !failure.failed; i++)
		verify_range(ids[i], 0, ARENA_PAGES);
	if (!failure.failed)
		verify_files();
	klog_scan();
}

/* Ranges an operation touched, read back in every live worker after it. */
static struct { uint64_t s, e; int obj; } touched[4];
static int ntouched;

static void touch(uint64_t s, uint64_t e)
{
	if (ntouched < 4 && s < e)
		touched[ntouched++] = (typeof(touched[0])){ s, e, -1 };
}

static void touch_obj(int obj, uint64_t s, uint64_t e)
{
	if (ntouched < 4 && s < e)
		touched[ntouched++] = (typeof(touched[0])){ s, e, obj };
}

static void verify_touched(void)
{
	int ids[MAX_PROCS * 4], n = live_ids(ids);

	for (int t = 0; t < ntouched; t++) {
		for (int i = 0; i < n && !failure.failed; i++) {
			if (touched[t].obj < 0)
				verify_range(ids[i], touched[t].s, touched[t].e);
			else
				verify_obj_range(ids[i], touched[t].obj,
						 touched[t].s, touched[t].e);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Operations: the recorded, concrete form                              */

struct op {
	int64_t idx;		/* position in the generated sequence */
	int64_t type;		/* OP_* */
	int64_t w;		/* the worker executing it */
	int64_t t;		/* target / new / waited-for worker */
	uint64_t addr, len;	/* bytes */
	uint64_t to, newlen;	/* mremap destination, new length */
	int64_t prot, kind, obj;
	uint64_t off;		/* file offset, bytes */
	int64_t how;		/* op-specific choice, see op_desc.how */
	int64_t flags;		/* mmap: MF_* */
	uint64_t tag;		/* tag of the first page written */
};

enum {
	F_W, F_T, F_ADDR, F_LEN, F_TO, F_NEWLEN, F_PROT, F_KIND, F_OBJ, F_OFF,
	F_HOW, F_FLAGS, F_TAG, NR_FIELDS,
};
enum { FMT_DEC, FMT_HEX, FMT_PROT, FMT_KIND, FMT_HOW, FMT_FLAGS };

static const struct field {
	const char *name;
	size_t off;
	int fmt;
} fields[NR_FIELDS] = {
	[F_W] = { "w", offsetof(struct op, w), FMT_DEC },
	[F_T] = { "t", offsetof(struct op, t), FMT_DEC },
	[F_ADDR] = { "addr", offsetof(struct op, addr), FMT_HEX },
	[F_LEN] = { "len", offsetof(struct op, len), FMT_HEX },
	[F_TO] = { "to", offsetof(struct op, to), FMT_HEX },
	[F_NEWLEN] = { "newlen", offsetof(struct op, newlen), FMT_HEX },
	[F_PROT] = { "prot", offsetof(struct op, prot), FMT_PROT },
	[F_KIND] = { "kind", offsetof(struct op, kind), FMT_KIND },
	[F_OBJ] = { "obj", offsetof(struct op, obj), FMT_DEC },
	[F_OFF] = { "off", offsetof(struct op, off), FMT_HEX },
	[F_HOW] = { "how", offsetof(struct op, how), FMT_HOW },
	[F_FLAGS] = { "flags", offsetof(struct op, flags), FMT_FLAGS },
	[F_TAG] = { "tag", offsetof(struct op, tag), FMT_HEX },
};

#define FB(f)		(1u << F_##f)
#define RANGE		(FB(W) | FB(ADDR) | FB(LEN))
#define OP_S(op)	addr_pg((op)->addr)
#define OP_E(op)	addr_pg((op)->addr + (op)->len)

enum { MF_POPULATE = 1, MF_FIXED = 2 };
static const char *const mf_names[] = { "populate", "fixed" };

static void set_range(struct op *op, uint64_t s, uint64_t e)
{
	op->addr = pg_addr(s);
	op->len = (e - s) * PG;
}

/* The op's worker is live and its range lies in the arena. */
static bool op_ok(const struct op *op)
{
	return live(op->w) && in_arena(op->addr, op->len);
}

/* ------------------------------------------------------------------ */
/* Random choices, biased towards 2 MiB (PTE table) boundaries          */

static int pick_live(void)
{
	int ids[MAX_PROCS * 4], n = live_ids(ids);

	if (!n)
		bug("no live worker");
	return ids[rnd(n)];
}

/* A page in [lo, hi]: an end, on or near a PMD boundary, or anywhere. */
static uint64_t pick_point(uint64_t lo, uint64_t hi)
{
	uint64_t b, k = 1 + rnd(16);

	if (hi <= lo)
		return lo;
	switch (rnd(6)) {
	case 0:
		return lo;
	case 1:
		return hi;
	case 2:
	case 3:
		b = (lo + PMD_PAGES - 1) / PMD_PAGES * PMD_PAGES;
		if (b > hi)
			break;
		b += rnd((hi - b) / PMD_PAGES + 1) * PMD_PAGES;
		switch (rnd(3)) {
		case 0:
			return b;
		case 1:
			return MIN(b + k, hi);
		default:
			return b >= lo + k ? b - k : lo;
		}
	}
	return lo + rnd(hi - lo + 1);
}

/* [s, e) inside [lo, hi), at most maxn pages. */
static void pick_range(uint64_t lo, uint64_t hi, uint64_t maxn, uint64_t *s,
		       uint64_t *e)
{
	*s = pick_point(lo, hi - 1);
	*e = pick_point(*s + 1, MIN(hi, *s + maxn));
}

/* A random region of w passing region_ok(need), or -1. */
static int pick_region(const struct worker *w, unsigned int need)
{
	int i, n = 0, k;

	for (i = 0; i < w->nreg; i++)
		n += region_ok(&w->reg[i], need);
	if (!n)
		return -1;
	k = rnd(n);
	for (i = 0; i < w->nreg; i++)
		if (region_ok(&w->reg[i], need) && !k--)
			break;
	return i;
}

/*
 * A range satisfying need: part of a region, often extended over its
 * neighbours (and, with HOLES_OK, beyond them).
 */
static bool pick_span(const struct worker *w, unsigned int need,
		      uint64_t maxn, uint64_t *s, uint64_t *e)
{
	for (int tries = 0; tries < 8; tries++) {
		int i = pick_region(w, need), j;
		uint64_t lo, hi;

		if (i < 0)
			return false;
		lo = w->reg[i].s;
		hi = w->reg[i].e;
		for (j = i + 1; !(need & ONE_REGION) && j < w->nreg &&
		     chance(35); j++) {
			if ((w->reg[j].s != hi && !(need & HOLES_OK)) ||
			    !region_ok(&w->reg[j], need))
				break;
			hi = w->reg[j].e;
		}
		for (j = i - 1; !(need & ONE_REGION) && j >= 0 && chance(25);
		     j--) {
			if ((w->reg[j].e != lo && !(need & HOLES_OK)) ||
			    !region_ok(&w->reg[j], need))
				break;
			lo = w->reg[j].s;
		}
		if (need & HOLES_OK) {
			hi = MIN(hi + rnd(PMD_PAGES / 2), ARENA_PAGES);
			lo -= MIN(lo, rnd(PMD_PAGES / 2));
		}
		pick_range(lo, hi, maxn, s, e);
		if (range_ok(w, *s, *e, need))
			return true;
	}
	return false;
}

/* A mapping length: a few pages, whole tables, a bit more or less. */
static uint64_t gen_npages(uint64_t max)
{
	uint64_t n;

	switch (rnd(8)) {
	case 0:
		n = 1 + rnd(8);
		break;
	case 1:
		n = PMD_PAGES;
		break;
	case 2:
		n = PMD_PAGES * (2 + rnd(3));
		break;
	case 3:
		n = PMD_PAGES + 1 + rnd(16);
		break;
	case 4:
		n = PMD_PAGES - 1 - rnd(16);
		break;
	case 5:
		n = 2 * PMD_PAGES + rnd(PMD_PAGES);
		break;
	default:
		n = 1 + rnd(PMD_PAGES);
	}
	return MAX(1, MIN(n, max));
}

/* Where to put n pages: next to a mapping of w, or near a PMD boundary. */
static uint64_t pick_place(const struct worker *w, uint64_t n)
{
	uint64_t s = rnd(ARENA_PAGES / PMD_PAGES) * PMD_PAGES, k = 1 + rnd(16);
	const struct region *r = w->nreg ? &w->reg[rnd(w->nreg)] : NULL;

	switch (rnd(8)) {
	case 0:
		if (r)
			s = r->e;
		break;
	case 1:
		if (r)
			s = r->s >= n ? r->s - n : 0;
		break;
	case 2:
		s += k;
		break;
	case 3:
		s = s >= k ? s - k : 0;
		break;
	case 4:
		s += rnd(PMD_PAGES);
		break;
	}
	return MIN(s, ARENA_PAGES - n);
}

static bool pick_free_place(const struct worker *w, uint64_t n, uint64_t *s)
{
	for (int i = 0; i < 32; i++) {
		*s = pick_place(w, n);
		if (range_free(w, *s, *s + n))
			return true;
	}
	return false;
}

/* A first file page for n pages, often PMD aligned. */
static uint64_t pick_file_pages(uint64_t n)
{
	uint64_t max = FILE_PAGES - n;

	if (chance(50))
		return rnd(max / PMD_PAGES + 1) * PMD_PAGES;
	return pick_point(0, max);
}

/* Split at s and e; regions [*first, *last) then make up [s, e). */
static void reg_range(struct worker *w, uint64_t s, uint64_t e, int *first,
		      int *last)
{
	reg_split(w, s);
	reg_split(w, e);
	*first = reg_first(w, s);
	for (*last = *first; *last < w->nreg && w->reg[*last].s < e; (*last)++)
		;
}

/* A random live worker and a range of it satisfying need. */
static bool gen_span(struct op *op, unsigned int need, uint64_t maxn)
{
	uint64_t s, e;

	op->w = pick_live();
	if (!pick_span(wk[op->w], need, maxn, &s, &e))
		return false;
	set_range(op, s, e);
	return true;
}

/* ------------------------------------------------------------------ */
/* Operations: CPU access                                               */

static bool gen_write(struct op *op)
{
	op->tag = op_tag(op->idx);
	return gen_span(op, NEED_W | NO_UFFD, MAX_OP_PAGES);
}

static bool valid_write(const struct op *op)
{
	return op_ok(op) && op->len / PG <= MAX_OP_PAGES &&
	       range_ok(wk[op->w], OP_S(op), OP_E(op), NEED_W | NO_UFFD);
}

static void run_write(const struct op *op)
{
	struct cmd c = {
		.type = C_WRITE, .addr = op->addr, .len = op->len,
		.tag = op->tag,
	};

	if (call(op->w, &c, 0, 0))
		return;
	store_range(wk[op->w], OP_S(op), OP_E(op), op->tag);
	touch(OP_S(op), OP_E(op));
}

static bool gen_read(struct op *op)
{
	return gen_span(op, NEED_R, 4 * READ_CHUNK);
}

static bool valid_read(const struct op *op)
{
	return op_ok(op);
}

static void run_read(const struct op *op)
{
	verify_range(op->w, OP_S(op), OP_E(op));
	touch(OP_S(op), OP_E(op));
}

/* ------------------------------------------------------------------ */
/* Operations: mmap, munmap, mremap, mprotect                           */

static bool gen_mmap(struct op *op)
{
	static const int kind_weights[NR_KINDS] = { 50, 15, 20, 15 };
	struct worker *w;
	uint64_t n, s;
	int i;

	op->w = pick_live();
	w = wk[op->w];
	op->kind = pick_weighted(kind_weights, NR_KINDS);
	n = gen_npages(kind_file(op->kind) ? FILE_PAGES : (uint64_t)cap_pages / 4);
	op->prot = chance(85) ? PROT_READ | PROT_WRITE :
		   chance(70) ? PROT_READ : PROT_NONE;
	op->flags = chance(20) ? MF_POPULATE : 0;
	i = rnd(20);
	if (!i && w->nreg) {
		/* over a mapping, without MAP_FIXED: EEXIST */
		const struct region *r = &w->reg[rnd(w->nreg)];

		s = MIN(pick_point(r->s, r->e - 1), ARENA_PAGES - n);
	} else if (i < 6) {
		/* MAP_FIXED, replacing whatever is there */
		op->flags |= MF_FIXED;
		s = pick_place(w, n);
	} else if (!pick_free_place(w, n, &s)) {
		return false;
	}
	if (kind_file(op->kind)) {
		op->obj = rnd(NR_FILES);
		op->off = pick_file_pages(n) * PG;
	}
	set_range(op, s, s + n);
	return true;
}

static bool valid_mmap(const struct op *op)
{
	uint64_t s = OP_S(op), e = OP_E(op);
	bool fixed = op->flags & MF_FIXED;
	struct worker *w;

	if (!op_ok(op) || op->kind < 0 || op->kind >= NR_KINDS ||
	    op->prot < 0 || op->prot > 3 || (op->flags & ~3))
		return false;
	w = wk[op->w];
	if (kind_file(op->kind) &&
	    (op->obj < 0 || op->obj >= NR_FILES || op->off % PG ||
	     op->off / PG + (e - s) > FILE_PAGES))
		return false;
	if ((op->kind == K_SHANON && obj_slot_free() < 0) ||
	    (fixed && overlaps(s, e, w->ur_s, w->ur_e)))
		return false;
	if (fixed)
		return room(w) && under_cap(w, e - s, s, e);
	return room(w) && under_cap(w, range_free(w, s, e) ? e - s : 0, 0, 0);
}

static void run_mmap(const struct op *op)
{
	struct worker *w = wk[op->w];
	uint64_t s = OP_S(op), e = OP_E(op);
	bool clash = !(op->flags & MF_FIXED) && !range_free(w, s, e);
	struct cmd c = {
		.type = C_MMAP, .addr = op->addr, .len = op->len,
		.arg = op->prot, .off = op->off,
		.file = kind_file(op->kind) ? op->obj : -1,
	};
	struct region r = {
		.s = s, .e = e, .prot = op->prot, .kind = op->kind,
	};
	struct region *nr;

	c.arg2 = (kind_shared(op->kind) ? MAP_SHARED : MAP_PRIVATE) |
		 (kind_file(op->kind) ? 0 : MAP_ANONYMOUS) |
		 (op->flags & MF_FIXED ? MAP_FIXED : MAP_FIXED_NOREPLACE) |
		 (op->flags & MF_POPULATE ? MAP_POPULATE : 0);
	if (call(op->w, &c, clash ? 0 : (long)op->addr, clash ? EEXIST : 0) ||
	    clash)
		return;
	if (kind_file(op->kind)) {
		r.obj = op->obj;
		r.pgoff = op->off / PG;
	} else if (op->kind == K_SHANON) {
		r.obj = obj_new(e - s);
	}
	nr = map_region(w, &r);
	if (op->flags & MF_POPULATE)
		populate_write(w, nr, s, e);
	touch(s, e);
}

static bool gen_munmap(struct op *op)
{
	return gen_span(op, HOLES_OK, 4 * PMD_PAGES);
}

static bool valid_munmap(const struct op *op)
{
	return op_ok(op) && room(wk[op->w]);
}

static void run_munmap(const struct op *op)
{
	struct worker *w = wk[op->w];
	struct cmd c = { .type = C_MUNMAP, .addr = op->addr, .len = op->len };
	struct cmd unreg = { .type = C_URING_UNREG };

	if (overlaps(OP_S(op), OP_E(op), w->ur_s, w->ur_e)) {
		/* unregister the fixed buffer before unmapping it */
		if (call(op->w, &unreg, 0, 0))
			return;
		w->ur_s = w->ur_e = 0;
	}
	if (call(op->w, &c, 0, 0))
		return;
	reg_unmap(w, OP_S(op), OP_E(op));
	touch(OP_S(op), OP_E(op));
}

#define MREMAP_NEED	(NO_UFFD | NO_URING | ONE_REGION)

static bool gen_mremap_grow(struct op *op)
{
	struct worker *w;
	const struct region *r;
	int i;

	op->w = pick_live();
	w = wk[op->w];
	i = pick_region(w, NO_UFFD);
	if (i < 0)
		return false;
	r = &w->reg[i];
	set_range(op, pick_point(r->s, r->e - 1), r->e);
	op->newlen = op->len + gen_npages(2 * PMD_PAGES) * PG;
	return true;
}

static bool valid_mremap_grow(const struct op *op)
{
	uint64_t s = OP_S(op), e = OP_E(op), ne;
	struct worker *w;
	struct region *r;

	if (!op_ok(op) || !in_arena(op->addr, op->newlen) ||
	    op->newlen <= op->len)
		return false;
	w = wk[op->w];
	r = reg_at(w, s);
	ne = s + op->newlen / PG;
	return r && r->e == e && r->kind != K_SHANON &&
	       range_ok(w, s, e, MREMAP_NEED) && range_free(w, e, ne) &&
	       (!kind_file(r->kind) || r->pgoff + (ne - r->s) <= FILE_PAGES) &&
	       under_cap(w, ne - e, 0, 0) && room(w);
}

static void run_mremap_grow(const struct op *op)
{
	struct worker *w = wk[op->w];
	uint64_t s = OP_S(op), e = OP_E(op), ne = s + op->newlen / PG;
	struct cmd c = {
		.type = C_MREMAP, .addr = op->addr, .len = op->len,
		.len2 = op->newlen,
	};
	struct region *r;

	if (call(op->w, &c, (long)op->addr, 0))
		return;
	r = reg_at(w, s);
	r->e = ne;
	pages_init(w, r, e, ne);
	if ((r->fl & RF_LOCKED) && !(r->fl & RF_ONFAULT))
		populate_write(w, r, e, ne);
	touch(s, ne);
}

static bool gen_mremap_shrink(struct op *op)
{
	if (!gen_span(op, MREMAP_NEED, 4 * PMD_PAGES) || op->len < 2 * PG)
		return false;
	op->newlen = (pick_point(OP_S(op) + 1, OP_E(op) - 1) - OP_S(op)) * PG;
	return true;
}

static bool valid_mremap_shrink(const struct op *op)
{
	return op_ok(op) && op->newlen && !(op->newlen % PG) &&
	       op->newlen < op->len && room(wk[op->w]) &&
	       range_ok(wk[op->w], OP_S(op), OP_E(op), MREMAP_NEED);
}

static void run_mremap_shrink(const struct op *op)
{
	struct cmd c = {
		.type = C_MREMAP, .addr = op->addr, .len = op->len,
		.len2 = op->newlen,
	};

	if (call(op->w, &c, (long)op->addr, 0))
		return;
	reg_unmap(wk[op->w], OP_S(op) + op->newlen / PG, OP_E(op));
	touch(OP_S(op), OP_E(op));
}

/*
 * Not from an mlocked VMA: 6.12 splits it first and unlocks only the moved
 * part of the old range, 6.18 unlocks the whole old VMA, whose extent the
 * model does not know.
 */
#define DONTUNMAP_NEED	(NEED_ANON | NO_LOCKED)

/* mremap(MREMAP_MAYMOVE | MREMAP_FIXED [| MREMAP_DONTUNMAP]) */
static bool gen_move(struct op *op, unsigned int need, bool grow)
{
	struct worker *w;
	uint64_t s, e, nn, to;
	int tries;

	op->w = pick_live();
	w = wk[op->w];
	if (!pick_span(w, need | MREMAP_NEED, 4 * PMD_PAGES, &s, &e))
		return false;
	nn = e - s;
	if (grow && reg_at(w, s)->kind != K_SHANON && chance(30))
		nn += gen_npages(PMD_PAGES);
	for (tries = 0; tries < 16; tries++) {
		to = pick_place(w, nn);
		if (!overlaps(to, to + nn, s, e) &&
		    !overlaps(to, to + nn, w->ur_s, w->ur_e))
			break;
	}
	if (tries == 16)
		return false;
	set_range(op, s, e);
	op->to = pg_addr(to);
	op->newlen = nn * PG;
	return true;
}

static bool valid_move(const struct op *op, bool dontunmap)
{
	unsigned int need = dontunmap ? DONTUNMAP_NEED : 0;
	uint64_t newlen = dontunmap ? op->len : op->newlen;
	uint64_t s = OP_S(op), e = OP_E(op), to, ne;
	struct worker *w;
	struct region *r;

	if (!op_ok(op) || !in_arena(op->to, newlen) || newlen < op->len)
		return false;
	w = wk[op->w];
	r = reg_at(w, s);
	to = addr_pg(op->to);
	ne = to + newlen / PG;
	if (!r || !range_ok(w, s, e, need | MREMAP_NEED) ||
	    overlaps(s, e, to, ne) || overlaps(to, ne, w->ur_s, w->ur_e))
		return false;
	if (newlen > op->len &&
	    (r->kind == K_SHANON ||
	     (kind_file(r->kind) &&
	      r->pgoff + (s - r->s) + (ne - to) > FILE_PAGES)))
		return false;
	return room(w) &&
	       under_cap(w, (ne - to) - (dontunmap ? 0 : e - s), to, ne);
}

static void run_move(const struct op *op, uint64_t newlen, bool dontunmap)
{
	uint64_t to = addr_pg(op->to);
	struct cmd c = {
		.type = C_MREMAP, .addr = op->addr, .len = op->len,
		.addr2 = op->to, .len2 = newlen,
		.arg = MREMAP_MAYMOVE | MREMAP_FIXED |
		       (dontunmap ? MREMAP_DONTUNMAP : 0),
	};

	if (call(op->w, &c, (long)op->to, 0))
		return;
	model_move(wk[op->w], OP_S(op), OP_E(op), to, newlen / PG, dontunmap);
	touch(OP_S(op), OP_E(op));
	touch(to, to + newlen / PG);
}

static bool gen_mremap_move(struct op *op)
{
	return gen_move(op, 0, true);
}

static bool valid_mremap_move(const struct op *op)
{
	return valid_move(op, false);
}

static void run_mremap_move(const struct op *op)
{
	run_move(op, op->newlen, false);
}

static bool gen_mremap_dontunmap(struct op *op)
{
	return gen_move(op, DONTUNMAP_NEED, false);
}

static bool valid_mremap_dontunmap(const struct op *op)
{
	return valid_move(op, true);
}

static void run_mremap_dontunmap(const struct op *op)
{
	run_move(op, op->len, true);
}

static bool gen_mprotect(struct op *op)
{
	if (!gen_span(op, NO_UFFD, 4 * PMD_PAGES))
		return false;
	op->prot = chance(50) ? PROT_READ | PROT_WRITE :
		   chance(70) ? PROT_READ : PROT_NONE;
	return true;
}

static bool valid_mprotect(const struct op *op)
{
	return op_ok(op) && (op->prot == PROT_NONE || op->prot == PROT_READ ||
			     op->prot == (PROT_READ | PROT_WRITE)) &&
	       room(wk[op->w]) &&
	       range_ok(wk[op->w], OP_S(op), OP_E(op), NO_UFFD);
}

static void run_mprotect(const struct op *op)
{
	struct worker *w = wk[op->w];
	struct cmd c = {
		.type = C_MPROTECT, .addr = op->addr, .len = op->len,
		.arg = op->prot,
	};
	int first, last;

	if (call(op->w, &c, 0, 0))
		return;
	reg_range(w, OP_S(op), OP_E(op), &first, &last);
	for (int i = first; i < last; i++)
		w->reg[i].prot = op->prot;
	touch(OP_S(op), OP_E(op));
}

/* ------------------------------------------------------------------ */
/* Operations: madvise, mlock                                           */

static const struct advice {
	const char *name;
	int advice;
	int weight;
	unsigned int need;	/* what the range must satisfy */
} advices[] = {
	{ "dontneed", MADV_DONTNEED, 8, NO_URING },
	{ "free", MADV_FREE, 6, NO_UFFD | NO_URING },
	{ "cold", MADV_COLD, 3, NO_UFFD },
	{ "pageout", MADV_PAGEOUT, 4, NO_UFFD },
	{ "willneed", MADV_WILLNEED, 2, NO_UFFD },
	{ "populate_read", MADV_POPULATE_READ, 3, NEED_R | NO_UFFD },
	{ "populate_write", MADV_POPULATE_WRITE, 3, NEED_W | NO_UFFD },
	{ "hugepage", MADV_HUGEPAGE, 4, NO_UFFD },
	{ "nohugepage", MADV_NOHUGEPAGE, 2, NO_UFFD },
	{ "collapse", MADV_COLLAPSE, 3, NO_UFFD },
	{ "dontfork", MADV_DONTFORK, 2, NO_UFFD },
	{ "dofork", MADV_DOFORK, 2, NO_UFFD },
	{ "wipeonfork", MADV_WIPEONFORK, 2, NO_UFFD },
	{ "keeponfork", MADV_KEEPONFORK, 2, NO_UFFD },
	{ "mergeable", MADV_MERGEABLE, 1, NO_UFFD },
	{ "unmergeable", MADV_UNMERGEABLE, 1, NO_UFFD },
};
#define NR_ADVICES	((int)(sizeof(advices) / sizeof(advices[0])))
static const char *adv_names[NR_ADVICES];	/* filled from advices[] */

/*
 * madvise() on the whole region r: the errno the kernel returns for it
 * (0: success), with the model updated.  The kernel walks the VMAs in
 * address order and stops at the first error.
 */
static int madv_region(struct worker *w, struct region *r, int advice)
{
	bool locked = r->fl & RF_LOCKED;

	switch (advice) {
	case MADV_DONTNEED:
		if (locked)
			return EINVAL;
		zap_pages(w, r, r->s, r->e);
		return 0;
	case MADV_FREE:
		if (locked || r->kind != K_ANON)
			return EINVAL;
		for (uint64_t pg = r->s; pg < r->e; pg++)
			if (w->st[pg] == ST_PRIV && w->tag[pg])
				w->st[pg] = ST_MAYBE0;
		return 0;
	case MADV_COLD:
	case MADV_PAGEOUT:
		return locked ? EINVAL : 0;
	case MADV_WILLNEED:
		return r->kind == K_ANON && !have.swap ? EBADF : 0;
	case MADV_POPULATE_WRITE:
		populate_write(w, r, r->s, r->e);
		return 0;
	case MADV_HUGEPAGE:
	case MADV_NOHUGEPAGE:
		return have.thp ? 0 : EINVAL;
	case MADV_DONTFORK:
		r->fl |= RF_DONTFORK;
		return 0;
	case MADV_DOFORK:
		r->fl &= ~RF_DONTFORK;
		return 0;
	case MADV_WIPEONFORK:
		if (r->kind != K_ANON)
			return EINVAL;
		r->fl |= RF_WIPE;
		return 0;
	case MADV_KEEPONFORK:
		r->fl &= ~RF_WIPE;
		return 0;
	case MADV_MERGEABLE:
	case MADV_UNMERGEABLE:
		return have.ksm ? 0 : EINVAL;
	}
	return 0;	/* POPULATE_READ, COLLAPSE (see run_madvise) */
}

static bool gen_madvise(struct op *op)
{
	int weights[NR_ADVICES];

	for (int i = 0; i < NR_ADVICES; i++)
		weights[i] = advices[i].weight;
	op->how = pick_weighted(weights, NR_ADVICES);
	return gen_span(op, advices[op->how].need, 4 * PMD_PAGES);
}

static bool valid_madvise(const struct op *op)
{
	return op_ok(op) && op->how >= 0 && op->how < NR_ADVICES &&
	       room(wk[op->w]) &&
	       range_ok(wk[op->w], OP_S(op), OP_E(op), advices[op->how].need);
}

static void run_madvise(const struct op *op)
{
	const struct advice *a = &advices[op->how];
	struct worker *w = wk[op->w];
	struct cmd c = {
		.type = C_MADVISE, .addr = op->addr, .len = op->len,
		.arg = a->advice,
	};
	int first, last, err = 0, got;

	reg_range(w, OP_S(op), OP_E(op), &first, &last);
	for (int i = first; i < last && !err; i++)
		err = madv_region(w, &w->reg[i], a->advice);
	if (a->advice != MADV_COLLAPSE) {
		if (call(op->w, &c, 0, err))
			return;
	} else {
		/* no content change; it may legitimately fail */
		if (co_call(op->w, &c, -1, &co_rep))
			return;
		got = co_rep.ret ? co_rep.err : 0;
		if (got != EAGAIN && got != EINVAL && got != ENOMEM &&
		    !expect_res(op->w, &c, &co_rep, 0, 0))
			return;
	}
	touch(OP_S(op), OP_E(op));
}

static const char *const mlock_names[] = { "lock", "onfault" };

static bool gen_lock(struct op *op)
{
	op->how = chance(25);
	return gen_span(op, NO_UFFD, 4 * PMD_PAGES);
}

static bool valid_lock(const struct op *op)
{
	return have.root && op_ok(op) && (op->how == 0 || op->how == 1) &&
	       room(wk[op->w]) &&
	       range_ok(wk[op->w], OP_S(op), OP_E(op), NO_UFFD);
}

/*
 * mlock() locks the whole range, then populates it VMA by VMA (breaking
 * COW of writable private file pages) and fails with ENOMEM at the first
 * PROT_NONE one; MLOCK_ONFAULT populates nothing.
 */
static void run_mlock(const struct op *op)
{
	struct worker *w = wk[op->w];
	struct cmd c = {
		.type = C_MLOCK, .addr = op->addr, .len = op->len,
		.arg = (int)op->how,
	};
	int first, last, i, err = 0;

	reg_range(w, OP_S(op), OP_E(op), &first, &last);
	for (i = first; i < last; i++) {
		w->reg[i].fl |= RF_LOCKED;
		if (op->how)
			w->reg[i].fl |= RF_ONFAULT;
		else
			w->reg[i].fl &= ~RF_ONFAULT;
	}
	for (i = first; i < last && !op->how; i++) {
		struct region *r = &w->reg[i];

		if (r->prot == PROT_NONE) {
			err = ENOMEM;
			break;
		}
		populate_write(w, r, r->s, r->e);
	}
	if (call(op->w, &c, 0, err))
		return;
	touch(OP_S(op), OP_E(op));
}

static void run_munlock(const struct op *op)
{
	struct worker *w = wk[op->w];
	struct cmd c = { .type = C_MUNLOCK, .addr = op->addr, .len = op->len };
	int first, last;

	reg_range(w, OP_S(op), OP_E(op), &first, &last);
	for (int i = first; i < last; i++)
		w->reg[i].fl &= ~(RF_LOCKED | RF_ONFAULT);
	if (!call(op->w, &c, 0, 0))
		touch(OP_S(op), OP_E(op));
}

/* ------------------------------------------------------------------ */
/* Operations: another process's memory (GUP), files                    */

static const char *const gup_names[] = { "vm", "mem" };

static unsigned int gup_need(int64_t how, bool write)
{
	if (!write)
		return NEED_R | NO_UFFD;
	return NO_UFFD | (how == GUP_MEM ? NEED_FORCE_W : NEED_W);
}

static bool gen_gup(struct op *op, bool write)
{
	uint64_t s, e;

	op->w = pick_live();
	op->t = pick_live();
	op->how = rnd(2);
	if (!pick_span(wk[op->t], gup_need(op->how, write),
		       write ? MAX_GUP_PAGES : READ_CHUNK, &s, &e))
		return false;
	set_range(op, s, e);
	if (write)
		op->tag = op_tag(op->idx);
	return true;
}

static bool valid_gup(const struct op *op, bool write)
{
	return have.root && live(op->w) && live(op->t) &&
	       in_arena(op->addr, op->len) && (op->how == 0 || op->how == 1) &&
	       op->len / PG <= (write ? MAX_GUP_PAGES : READ_CHUNK) &&
	       range_ok(wk[op->t], OP_S(op), OP_E(op), gup_need(op->how, write));
}

static bool gen_gup_write(struct op *op)
{
	return gen_gup(op, true);
}

static bool valid_gup_write(const struct op *op)
{
	return valid_gup(op, true);
}

static void run_gup_write(const struct op *op)
{
	struct cmd c = {
		.type = C_RWRITE, .arg = (int)op->how, .pid = wk[op->t]->pid,
		.addr = op->addr, .len = op->len, .tag = op->tag,
	};

	if (call(op->w, &c, (long)op->len, 0))
		return;
	store_range(wk[op->t], OP_S(op), OP_E(op), op->tag);
	touch(OP_S(op), OP_E(op));
}

static bool gen_gup_read(struct op *op)
{
	return gen_gup(op, false);
}

static bool valid_gup_read(const struct op *op)
{
	return valid_gup(op, false);
}

static void run_gup_read(const struct op *op)
{
	struct worker *t = wk[op->t];
	struct cmd c = {
		.type = C_RREAD, .arg = (int)op->how, .pid = t->pid,
		.addr = op->addr, .len = op->len,
	};
	char how[64];

	if (call(op->w, &c, (long)op->len, 0))
		return;
	snprintf(how, sizeof(how), "%s by worker %" PRId64,
		 op->how == GUP_VM ? "process_vm_readv" : "/proc/PID/mem read",
		 op->w);
	for (uint64_t pg = OP_S(op); pg < OP_E(op) && !failure.failed; pg++)
		check_page(op->t, reg_at(t, pg), pg,
			   co_rep.tags[pg - OP_S(op)], &co_rep, how);
	touch(OP_S(op), OP_E(op));
}

static bool gen_file_io(struct op *op, uint64_t maxn, bool write)
{
	uint64_t n = gen_npages(maxn);

	op->w = pick_live();
	op->obj = rnd(NR_FILES);
	op->off = pick_file_pages(n) * PG;
	op->len = n * PG;
	if (write)
		op->tag = op_tag(op->idx);
	return true;
}

static bool valid_file_io(const struct op *op, uint64_t maxn)
{
	return live(op->w) && op->obj >= 0 && op->obj < NR_FILES &&
	       !(op->off % PG) && !(op->len % PG) && op->len &&
	       op->len / PG <= maxn && op->off / PG + op->len / PG <= FILE_PAGES;
}

static bool gen_file_write(struct op *op)
{
	return gen_file_io(op, 256, true);
}

static bool valid_file_write(const struct op *op)
{
	return valid_file_io(op, 256);
}

static void run_file_write(const struct op *op)
{
	struct cmd c = {
		.type = C_FWRITE, .file = (int)op->obj, .off = op->off,
		.len = op->len, .tag = op->tag,
	};
	uint64_t first = op->off / PG, n = op->len / PG;

	if (call(op->w, &c, (long)op->len, 0))
		return;
	for (uint64_t i = 0; i < n; i++)
		objs[op->obj].tag[first + i] = op->tag + i;
	touch_obj(op->obj, first, first + n);
}

static bool gen_file_read(struct op *op)
{
	return gen_file_io(op, READ_CHUNK, false);
}

static bool valid_file_read(const struct op *op)
{
	return valid_file_io(op, READ_CHUNK);
}

static void run_file_read(const struct op *op)
{
	struct cmd c = {
		.type = C_FREAD, .file = (int)op->obj, .off = op->off,
		.len = op->len,
	};
	char how[64];

	if (call(op->w, &c, (long)op->len, 0))
		return;
	snprintf(how, sizeof(how), "pread by worker %" PRId64, op->w);
	for (uint64_t i = 0; i < op->len / PG && !failure.failed; i++)
		check_obj_page(op->obj, op->off / PG + i, co_rep.tags[i],
			       &co_rep, how);
}

/* ------------------------------------------------------------------ */
/* Operations: io_uring fixed buffers                                   */

static bool has_uring(const struct worker *w)
{
	return w->ur_s != w->ur_e;
}

/* A live worker for which has() is want, or -1. */
static int pick_worker_if(bool (*has)(const struct worker *), bool want)
{
	int ids[MAX_PROCS * 4], n = live_ids(ids), k = 0;

	for (int i = 0; i < n; i++)
		if (has(wk[ids[i]]) == want)
			ids[k++] = ids[i];
	return k ? ids[rnd(k)] : -1;
}

/* A live worker with (or without) a registered fixed buffer, or -1. */
static int pick_uring_worker(bool registered)
{
	return pick_worker_if(has_uring, registered);
}

static bool no_maybe0(const struct worker *w, uint64_t s, uint64_t e)
{
	for (uint64_t pg = s; pg < e; pg++)
		if (w->st[pg] == ST_MAYBE0)
			return false;
	return true;
}

#define URING_NEED	(NEED_ANON | NEED_W | NO_UFFD)

static bool gen_uring_reg(struct op *op)
{
	uint64_t s, e;

	op->w = pick_uring_worker(false);
	if (op->w < 0 ||
	    !pick_span(wk[op->w], URING_NEED, MAX_GUP_PAGES, &s, &e))
		return false;
	set_range(op, s, e);
	return true;
}

/*
 * Lazily freed pages are excluded: the kernel's writes into a pinned page
 * do not dirty it, so after the unpin reclaim could discard them.
 */
static bool valid_uring_reg(const struct op *op)
{
	return have.uring && op_ok(op) && !has_uring(wk[op->w]) &&
	       op->len / PG <= MAX_GUP_PAGES &&
	       range_ok(wk[op->w], OP_S(op), OP_E(op), URING_NEED) &&
	       no_maybe0(wk[op->w], OP_S(op), OP_E(op));
}

static void run_uring_reg(const struct op *op)
{
	struct worker *w = wk[op->w];
	struct cmd c = {
		.type = C_URING_REG, .addr = op->addr, .len = op->len,
	};

	if (call(op->w, &c, 0, 0))
		return;
	w->ur_s = OP_S(op);
	w->ur_e = OP_E(op);
	touch(OP_S(op), OP_E(op));
}

static bool gen_uring_read(struct op *op)
{
	struct worker *w;
	uint64_t s, e;

	op->w = pick_uring_worker(true);
	if (op->w < 0)
		return false;
	w = wk[op->w];
	pick_range(w->ur_s, w->ur_e, MAX_GUP_PAGES, &s, &e);
	set_range(op, s, e);
	op->obj = rnd(NR_FILES);
	op->off = pick_file_pages(e - s) * PG;
	return true;
}

static bool valid_uring_read(const struct op *op)
{
	return have.uring && op_ok(op) && has_uring(wk[op->w]) &&
	       OP_S(op) >= wk[op->w]->ur_s && OP_E(op) <= wk[op->w]->ur_e &&
	       op->obj >= 0 && op->obj < NR_FILES && !(op->off % PG) &&
	       op->off / PG + op->len / PG <= FILE_PAGES;
}

/* The file's pages land in the pinned pages: a write by the worker. */
static void run_uring_read(const struct op *op)
{
	struct worker *w = wk[op->w];
	struct cmd c = {
		.type = C_URING_READ, .addr = op->addr, .len = op->len,
		.file = (int)op->obj, .off = op->off,
	};
	uint64_t *src = &objs[op->obj].tag[op->off / PG];

	if (call(op->w, &c, (long)op->len, 0))
		return;
	for (uint64_t pg = OP_S(op); pg < OP_E(op); pg++)
		page_store(w, reg_at(w, pg), pg, src[pg - OP_S(op)]);
	touch(OP_S(op), OP_E(op));
}

static bool gen_uring_unreg(struct op *op)
{
	op->w = pick_uring_worker(true);
	return op->w >= 0;
}

static bool valid_uring_unreg(const struct op *op)
{
	return have.uring && live(op->w) && has_uring(wk[op->w]);
}

static void run_uring_unreg(const struct op *op)
{
	struct cmd c = { .type = C_URING_UNREG };

	if (!call(op->w, &c, 0, 0))
		wk[op->w]->ur_s = wk[op->w]->ur_e = 0;
}

/* ------------------------------------------------------------------ */
/* Operations: userfaultfd                                              */

static bool gen_uffd_reg(struct op *op)
{
	uint64_t n = gen_npages(MAX_OP_PAGES), s;

	op->w = pick_live();
	if (!pick_free_place(wk[op->w], n, &s))
		return false;
	set_range(op, s, s + n);
	return true;
}

static bool valid_uffd_reg(const struct op *op)
{
	return have.uffd && op_ok(op) && room(wk[op->w]) &&
	       range_free(wk[op->w], OP_S(op), OP_E(op)) &&
	       under_cap(wk[op->w], op->len / PG, 0, 0);
}

/* A new private anonymous mapping, registered MISSING. */
static void run_uffd_reg(const struct op *op)
{
	struct cmd c = {
		.type = C_MMAP, .addr = op->addr, .len = op->len,
		.arg = PROT_READ | PROT_WRITE, .file = -1,
		.arg2 = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
	};
	struct region r = {
		.s = OP_S(op), .e = OP_E(op), .prot = PROT_READ | PROT_WRITE,
		.kind = K_ANON, .fl = RF_UFFD,
	};

	if (call(op->w, &c, (long)op->addr, 0))
		return;
	map_region(wk[op->w], &r);	/* the worker maps it even if ... */
	c.type = C_UFFD_REG;
	call(op->w, &c, 0, 0);		/* ... registering fails */
}

static const char *const fill_names[] = { "copy", "zero" };

static bool gen_uffd_fill(struct op *op)
{
	op->how = chance(25) ? FILL_ZERO : FILL_COPY;
	op->tag = op_tag(op->idx);
	return gen_span(op, ONLY_UFFD | ONE_REGION, MAX_GUP_PAGES);
}

static bool valid_uffd_fill(const struct op *op)
{
	return have.uffd && op_ok(op) && (op->how == 0 || op->how == 1) &&
	       op->len / PG <= MAX_GUP_PAGES &&
	       range_ok(wk[op->w], OP_S(op), OP_E(op), ONLY_UFFD | ONE_REGION);
}

/* Page by page until the first present one (EEXIST). */
static void run_uffd_fill(const struct op *op)
{
	struct worker *w = wk[op->w];
	uint64_t s = OP_S(op), n = op->len / PG, k = 0;
	struct cmd c = {
		.type = C_UFFD_FILL, .addr = op->addr, .len = op->len,
		.arg = (int)op->how, .tag = op->tag,
	};
	int err;

	while (k < n && w->st[s + k] == ST_MISSING)
		k++;
	err = k < n ? EEXIST : 0;
	if (co_call(op->w, &c, -1, &co_rep))
		return;
	if (co_rep.ret != (int64_t)k || co_rep.err != err) {
		fail("worker %" PRId64 " (pid %d): uffd-%s at %#" PRIx64 " filled %" PRId64 " pages (%s), expected %" PRIu64 " (%s)",
		     op->w, w->pid, fill_names[op->how], op->addr, co_rep.ret,
		     errname(co_rep.err), k, errname(err));
		return;
	}
	for (uint64_t i = 0; i < k; i++) {
		w->st[s + i] = ST_PRIV;
		w->tag[s + i] = op->how == FILL_COPY ? op->tag + i : 0;
	}
	touch(s, s + k);
}

static bool gen_uffd_unreg(struct op *op)
{
	return gen_span(op, ONLY_UFFD | ONE_REGION, ARENA_PAGES);
}

static bool valid_uffd_unreg(const struct op *op)
{
	return have.uffd && op_ok(op) && room(wk[op->w]) &&
	       range_ok(wk[op->w], OP_S(op), OP_E(op), ONLY_UFFD | ONE_REGION);
}

static void run_uffd_unreg(const struct op *op)
{
	struct worker *w = wk[op->w];
	struct cmd c = {
		.type = C_UFFD_UNREG, .addr = op->addr, .len = op->len,
	};
	int first, last;

	if (call(op->w, &c, 0, 0))
		return;
	reg_range(w, OP_S(op), OP_E(op), &first, &last);
	for (int i = first; i < last; i++)
		w->reg[i].fl &= ~RF_UFFD;
	for (uint64_t pg = OP_S(op); pg < OP_E(op); pg++) {
		if (w->st[pg] == ST_MISSING) {
			w->st[pg] = ST_PRIV;
			w->tag[pg] = 0;
		}
	}
	touch(OP_S(op), OP_E(op));
}

/* ------------------------------------------------------------------ */
/* Operations: vmsplice() and reading the pipe back                     */

static bool has_splice(const struct worker *w)
{
	return w->sp;
}

/* A live worker with (or without) pages in its pipe, or -1. */
static int pick_splice_worker(bool spliced)
{
	return pick_worker_if(has_splice, spliced);
}

/* Readable private anonymous memory; a userfaultfd hole would block. */
#define SPLICE_NEED	(NEED_ANON | NEED_R | NO_UFFD)

static bool gen_vmsplice(struct op *op)
{
	uint64_t s, e;

	op->w = pick_splice_worker(false);
	if (op->w < 0 ||
	    !pick_span(wk[op->w], SPLICE_NEED, MAX_SPLICE_PAGES, &s, &e))
		return false;
	set_range(op, s, e);
	return true;
}

static bool valid_vmsplice(const struct op *op)
{
	return op_ok(op) && !wk[op->w]->sp &&
	       op->len / PG <= MAX_SPLICE_PAGES &&
	       range_ok(wk[op->w], OP_S(op), OP_E(op), SPLICE_NEED);
}

static void run_vmsplice(const struct op *op)
{
	struct worker *w = wk[op->w];
	struct cmd c = {
		.type = C_VMSPLICE, .addr = op->addr, .len = op->len,
	};
	struct splice *sp;

	if (call(op->w, &c, (long)op->len, 0))
		return;
	sp = calloc(1, sizeof(*sp));
	if (!sp)
		bug("out of memory");
	sp->op = op->idx;
	sp->s = OP_S(op);
	sp->n = OP_E(op) - OP_S(op);
	for (uint64_t i = 0; i < sp->n; i++)
		sp->x[i] = page_expect(w, reg_at(w, sp->s + i), sp->s + i);
	w->sp = sp;
}

static bool gen_pipe_read(struct op *op)
{
	op->w = pick_splice_worker(true);
	return op->w >= 0;
}

static bool valid_pipe_read(const struct op *op)
{
	return live(op->w) && wk[op->w]->sp;
}

static bool splice_later(const struct splice *sp, uint64_t tag)
{
	for (size_t i = 0; i < sp->nlater; i++)
		if (sp->later[i] == tag)
			return true;
	return false;
}

static void run_pipe_read(const struct op *op)
{
	struct worker *w = wk[op->w];
	struct splice *sp = w->sp;
	struct cmd c = { .type = C_PIPE_READ, .len = sp->n * PG };
	char b1[80], b2[80], b3[64];

	if (call(op->w, &c, (long)c.len, 0))
		return;
	for (uint64_t i = 0; i < sp->n && !failure.failed; i++) {
		const struct expect *x = &sp->x[i];
		uint64_t got = co_rep.tags[i];

		if (x->skip || got == x->tag || (x->or_zero && !got) ||
		    splice_later(sp, got))
			continue;
		corrupt_str(got, &co_rep, b3, sizeof(b3));
		fail("worker %" PRId64 " (pid %d): page %#" PRIx64 " vmsplice()d at op %" PRId64
		     " reads back from the pipe as %s%s, expected %s%s or a later store"
		     " of the worker's own",
		     op->w, w->pid, pg_addr(sp->s + i), sp->op,
		     tag_str(got, b2, sizeof(b2)), b3,
		     tag_str(x->tag, b1, sizeof(b1)), x->or_zero ? " or zero" : "");
	}
	splice_free(w);
}

/* ------------------------------------------------------------------ */
/* Operations: NUMA migration, remote pageout, memcg reclaim            */

/*
 * None of these changes what a page holds: the model stays as it is (but
 * for the region splits of process_madvise) and the read-back after the op
 * checks that nothing changed, in every worker.  What they exercise is the
 * kernel reaching pages through the rmap rather than through the acting
 * process's tables: migration and reclaim unmap a page from every process
 * that maps it, shared tables included, and fault it back in on the next
 * touch.
 */

static bool gen_move_pages(struct op *op)
{
	return gen_span(op, HOLES_OK, MAX_MOVE_PAGES);
}

static bool valid_move_pages(const struct op *op)
{
	return have.root && have.numa && op_ok(op) &&
	       op->len / PG <= MAX_MOVE_PAGES;
}

/*
 * The pages move to the other node or stay where they are: any of them may
 * be busy (an io_uring pin, a pipe's reference, a transient one), so a
 * count of pages not migrated is no failure, nor is ENOMEM (no free page
 * on the target node).  Any other error is: detect() made sure of
 * CAP_SYS_NICE and of nodes 0 and 1 with memory in our cpuset (no EPERM,
 * ENODEV, EACCES), the flags are valid and the pid is 0 (no EINVAL,
 * ESRCH), the arrays are the worker's own (no EFAULT).
 */
static void run_move_pages(const struct op *op)
{
	struct cmd c = {
		.type = C_MOVE_PAGES, .addr = op->addr, .len = op->len,
	};
	int64_t n = op->len / PG;
	char b[64];

	if (co_call(op->w, &c, -1, &co_rep))
		return;
	if (co_rep.ret >= 0 ? co_rep.ret > n :
	    co_rep.ret != -1 || co_rep.err != ENOMEM) {
		fail("worker %" PRId64 " (pid %d): move_pages(%#" PRIx64 ", %" PRId64 " pages) returned %s, expected at most %" PRId64 " pages not migrated, or -1 ENOMEM",
		     op->w, wk[op->w]->pid, op->addr, n,
		     res_str(co_rep.ret, co_rep.err, b, sizeof(b)), n);
		return;
	}
	touch(OP_S(op), OP_E(op));
}

enum { RADV_PAGEOUT, RADV_COLD };
static const char *const radv_names[] = { "pageout", "cold" };

/* The ranges the local madvise() COLD and PAGEOUT get. */
static bool gen_pageout_remote(struct op *op)
{
	op->how = chance(70) ? RADV_PAGEOUT : RADV_COLD;
	return gen_span(op, NO_UFFD, 4 * PMD_PAGES);
}

static bool valid_pageout_remote(const struct op *op)
{
	return have.root && have.pmadv && op_ok(op) &&
	       (op->how == RADV_PAGEOUT || op->how == RADV_COLD) &&
	       room(wk[op->w]) &&
	       range_ok(wk[op->w], OP_S(op), OP_E(op), NO_UFFD);
}

/*
 * The coordinator, a third process, advises worker w's memory with
 * process_madvise(): another mm's tables walked under its mmap lock, the
 * pages possibly mapped through shared tables by other workers too.  The
 * result is predicted as madvise()'s: EINVAL at the first mlocked VMA,
 * else the whole length (one iovec: no partial count).
 */
static void run_pageout_remote(const struct op *op)
{
	struct worker *w = wk[op->w];
	int advice = op->how == RADV_COLD ? MADV_COLD : MADV_PAGEOUT;
	struct iovec iov = { (void *)op->addr, op->len };
	int first, last, err = 0, got, pidfd;
	char b1[64], b2[64];
	long ret;

	reg_range(w, OP_S(op), OP_E(op), &first, &last);
	for (int i = first; i < last && !err; i++)
		err = madv_region(w, &w->reg[i], advice);
	pidfd = syscall(SYS_pidfd_open, w->pid, 0);
	if (pidfd < 0) {
		fail("coordinator: pidfd_open(%d) of worker %" PRId64 ": %s",
		     w->pid, op->w, errname(errno));
		return;
	}
	ret = syscall(SYS_process_madvise, pidfd, &iov, 1, advice, 0);
	got = ret < 0 ? errno : 0;
	close(pidfd);
	if (err ? ret != -1 || got != err : ret != (long)op->len) {
		fail("coordinator: process_madvise(worker %" PRId64 " (pid %d), %#" PRIx64 ", %#" PRIx64 ", %s) returned %s, expected %s",
		     op->w, w->pid, op->addr, op->len, radv_names[op->how],
		     res_str(ret, got, b1, sizeof(b1)),
		     res_str(err ? -1 : (long)op->len, err, b2, sizeof(b2)));
		return;
	}
	touch(OP_S(op), OP_E(op));
}

/* Our cgroup, which every worker is in (see memcg_setup()). */
static struct {
	char path[64];		/* CG_ROOT/cow_pte_fuzz-PID, "" if none */
	char orig[4200];	/* the coordinator's cgroup before */
	pid_t owner;		/* the coordinator: only it tears down */
	bool mounted;		/* we mounted cgroup2 on CG_ROOT */
	bool joined;		/* the coordinator is in path */
} memcg;

static bool gen_reclaim(struct op *op)
{
	op->len = (2 + rnd(15)) << 20;		/* 2..16 MiB */
	return true;
}

static bool valid_reclaim(const struct op *op)
{
	return have.memcg && op->len && op->len <= RECLAIM_MAX;
}

/*
 * Proactive reclaim of the workers' cgroup: pages of any worker, mapped
 * through shared tables or not, are unmapped through the rmap, swapped out
 * or dropped (clean file pages, lazily freed ones).  EAGAIN (less reclaimed
 * than asked) is no failure, nor EINTR when we are being stopped.  Any
 * page may have gone, so everything is read back.
 */
static void run_reclaim(const struct op *op)
{
	char path[96], val[32];
	int ret;

	snprintf(path, sizeof(path), "%s/memory.reclaim", memcg.path);
	snprintf(val, sizeof(val), "%" PRIu64, op->len);
	ret = write_text(path, val);
	if (ret && ret != -EAGAIN && !(ret == -EINTR && stop_requested)) {
		fail("coordinator: writing %s to %s: %s", val, path,
		     errname(-ret));
		return;
	}
	verify_all();
}

/* ------------------------------------------------------------------ */
/* Operations: the process tree                                         */

static struct worker *worker_new(int id, pid_t pid, int chan, int parent)
{
	struct worker *w;

	if (id >= nwk) {
		struct worker **n = realloc(wk, (id + 1) * sizeof(*wk));

		if (!n)
			bug("out of memory");
		memset(n + nwk, 0, (id + 1 - nwk) * sizeof(*wk));
		wk = n;
		nwk = id + 1;
	}
	w = calloc(1, sizeof(*w));
	if (!w || !(w->tag = calloc(ARENA_PAGES, sizeof(uint64_t))) ||
	    !(w->st = calloc(ARENA_PAGES, 1)))
		bug("out of memory");
	w->state = W_LIVE;
	w->pid = pid;
	w->chan = chan;
	w->parent = parent;
	wk[id] = w;
	return w;
}

static void worker_drop_model(struct worker *w)
{
	splice_free(w);
	free(w->tag);
	free(w->st);
	w->tag = NULL;
	w->st = NULL;
	w->nreg = 0;
}

static const char *const fork_names[] = { "fork", "clone3", "cow" };

static bool gen_fork(struct op *op)
{
	if (live_count() >= opt.procs)
		return false;
	op->w = pick_live();
	op->t = nwk;
	switch (opt.cow) {
	case COW_OFF:
		op->how = chance(60) ? FORK_LIBC : FORK_CLONE3;
		break;
	case COW_ON:
		op->how = FORK_COW;
		break;
	default:
		op->how = chance(50) ? FORK_COW :
			  chance(60) ? FORK_LIBC : FORK_CLONE3;
	}
	return true;
}

static bool valid_fork(const struct op *op)
{
	return live(op->w) && op->t >= 0 && op->t < (1 << 20) &&
	       (op->t >= nwk || !wk[op->t]) && op->how >= 0 && op->how <= 2;
}

/*
 * The worker is sent one end of a new socketpair with the command; its
 * child serves it and says hello; the child's model is its parent's,
 * transformed as fork transforms the address space.
 */
static void run_fork(const struct op *op)
{
	struct cmd c = { .type = C_FORK, .arg = (int)op->how };
	struct worker *child;
	char b[64];
	int sv[2], rc;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		fail("socketpair: %s", strerror(errno));
		return;
	}
	rc = co_call(op->w, &c, sv[1], &co_rep);
	close(sv[1]);
	if (rc || co_rep.ret <= 0) {
		if (!rc)
			fail("worker %" PRId64 " (pid %d): %s returned %s",
			     op->w, wk[op->w]->pid, fork_names[op->how],
			     res_str(co_rep.ret, co_rep.err, b, sizeof(b)));
		close(sv[0]);
		return;
	}
	child = worker_new(op->t, co_rep.ret, sv[0], op->w);
	model_fork(wk[op->w], child);
	rc = co_recv(child->chan, &co_rep);
	if (rc)
		worker_lost(op->t, "its first steps", rc);
	else if (co_rep.ret != child->pid)
		fail("worker %" PRId64 ": hello from pid %" PRId64 ", expected %d",
		     op->t, co_rep.ret, child->pid);
}

static bool reapable(int64_t id);

static bool gen_exit(struct op *op)
{
	int zombies = 0;

	for (int i = 0; i < nwk; i++)
		zombies += reapable(i);
	if (live_count() < 2 || zombies >= 8)	/* keep the zombies few */
		return false;
	op->w = pick_live();
	return true;
}

static bool valid_exit(const struct op *op)
{
	return live(op->w) && live_count() >= 2;
}

/*
 * The worker exits; its children are reparented to the coordinator (the
 * subreaper).  Wait until it is a zombie: then the reparenting is done.
 */
static void run_exit(const struct op *op)
{
	struct worker *w = wk[op->w];
	struct cmd c = { .type = C_EXIT };
	char st[96];
	int i;

	if (call(op->w, &c, 0, 0))
		return;
	close(w->chan);
	w->chan = -1;
	w->state = W_ZOMBIE;
	worker_drop_model(w);
	for (i = 0; i < nwk; i++)
		if (wk[i] && wk[i]->parent == op->w)
			wk[i]->parent = COORD;
	for (i = 0; i < 10000 && proc_state(w->pid) != 'Z'; i++)
		usleep(1000);
	if (i == 10000)
		fail("worker %" PRId64 " (pid %d) did not exit: %s", op->w,
		     w->pid, proc_status(w->pid, st, sizeof(st)));
}

static bool reapable(int64_t id)
{
	return id >= 0 && id < nwk && wk[id] && wk[id]->state == W_ZOMBIE &&
	       (wk[id]->parent == COORD || live(wk[id]->parent));
}

static bool gen_wait(struct op *op)
{
	int ids[64], n = 0;

	for (int i = 0; i < nwk && n < 64; i++)
		if (reapable(i))
			ids[n++] = i;
	if (!n)
		return false;
	op->t = ids[rnd(n)];
	return true;
}

static bool valid_wait(const struct op *op)
{
	return reapable(op->t);
}

static int co_waitpid(pid_t pid, int *status)
{
	for (int i = 0; i < REPLY_TIMEOUT_S * 1000; i++) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return 0;
		if (r < 0)
			return -1;
		usleep(1000);
	}
	errno = ETIMEDOUT;
	return -1;
}

/* The parent (a worker, or the coordinator) reaps it: status 0 expected. */
static void run_wait(const struct op *op)
{
	struct worker *z = wk[op->t];
	struct cmd c = { .type = C_WAIT, .pid = z->pid };
	int status;

	if (z->parent == COORD) {
		if (co_waitpid(z->pid, &status)) {
			fail("coordinator: waitpid(%d) of worker %" PRId64 ": %s",
			     z->pid, op->t, strerror(errno));
			return;
		}
	} else {
		if (co_call(z->parent, &c, -1, &co_rep))
			return;
		if (co_rep.ret < 0) {
			fail("worker %d: waitpid(%d) of worker %" PRId64 ": %s",
			     z->parent, z->pid, op->t, errname(co_rep.err));
			return;
		}
		status = (int)co_rep.ret;
	}
	z->state = W_GONE;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail("worker %" PRId64 " (pid %d) ended with status %#x",
		     op->t, z->pid, status);
}

static bool gen_thread(struct op *op)
{
	op->w = pick_live();
	op->how = 2 + rnd(7);
	return true;
}

static bool valid_thread(const struct op *op)
{
	return live(op->w) && op->how >= 1 && op->how <= 64;
}

/* The worker's next how commands are executed by a second thread. */
static void run_thread(const struct op *op)
{
	struct cmd c = { .type = C_THREAD, .arg = (int)op->how };

	call(op->w, &c, 0, 0);
}

/* ------------------------------------------------------------------ */
/* The table of operations                                              */

enum op_type {
	OP_WRITE, OP_READ, OP_MMAP, OP_MUNMAP, OP_MREMAP_GROW,
	OP_MREMAP_SHRINK, OP_MREMAP_MOVE, OP_MREMAP_DONTUNMAP, OP_MPROTECT,
	OP_MADVISE, OP_MLOCK, OP_MUNLOCK, OP_GUP_WRITE, OP_GUP_READ,
	OP_FILE_WRITE, OP_FILE_READ, OP_URING_REG, OP_URING_READ,
	OP_URING_UNREG, OP_UFFD_REG, OP_UFFD_FILL, OP_UFFD_UNREG, OP_FORK,
	OP_EXIT, OP_WAIT, OP_THREAD, OP_VMSPLICE, OP_PIPE_READ, OP_MOVE_PAGES,
	OP_PAGEOUT_REMOTE, OP_RECLAIM, NR_OPS,
};

struct op_desc {
	const char *name;
	int weight;
	unsigned int fields;		/* FB(): what the op uses */
	const char *const *how;		/* names of op->how, NULL: a number */
	int nhow;
	bool (*gen)(struct op *op);	/* random parameters from the model */
	bool (*valid)(const struct op *op);	/* preconditions hold */
	void (*run)(const struct op *op);	/* execute, check, update */
};

#define ARRAY_SIZE(a)	((int)(sizeof(a) / sizeof((a)[0])))
#define OPD(n, w, f, fn)						\
	{ n, w, f, NULL, 0, gen_##fn, valid_##fn, run_##fn }
#define OPDH(n, w, f, names, fn)					\
	{ n, w, f, names, ARRAY_SIZE(names), gen_##fn, valid_##fn, run_##fn }

static const struct op_desc op_tab[NR_OPS] = {
	[OP_WRITE] = OPD("write", 18, RANGE | FB(TAG), write),
	[OP_READ] = OPD("read", 5, RANGE, read),
	[OP_MMAP] = OPD("mmap", 10, RANGE | FB(KIND) | FB(PROT) | FB(FLAGS) |
			FB(OBJ) | FB(OFF), mmap),
	[OP_MUNMAP] = OPD("munmap", 4, RANGE, munmap),
	[OP_MREMAP_GROW] = OPD("mremap-grow", 2, RANGE | FB(NEWLEN),
			       mremap_grow),
	[OP_MREMAP_SHRINK] = OPD("mremap-shrink", 2, RANGE | FB(NEWLEN),
				 mremap_shrink),
	[OP_MREMAP_MOVE] = OPD("mremap-move", 3, RANGE | FB(TO) | FB(NEWLEN),
			       mremap_move),
	[OP_MREMAP_DONTUNMAP] = OPD("mremap-dontunmap", 2, RANGE | FB(TO),
				    mremap_dontunmap),
	[OP_MPROTECT] = OPD("mprotect", 5, RANGE | FB(PROT), mprotect),
	[OP_MADVISE] = OPDH("madvise", 14, RANGE | FB(HOW), adv_names,
			    madvise),
	[OP_MLOCK] = { "mlock", 2, RANGE | FB(HOW), mlock_names,
		       ARRAY_SIZE(mlock_names), gen_lock, valid_lock,
		       run_mlock },
	[OP_MUNLOCK] = { "munlock", 1, RANGE, NULL, 0, gen_lock, valid_lock,
			 run_munlock },
	[OP_GUP_WRITE] = OPDH("gup-write", 4, RANGE | FB(T) | FB(HOW) |
			      FB(TAG), gup_names, gup_write),
	[OP_GUP_READ] = OPDH("gup-read", 2, RANGE | FB(T) | FB(HOW), gup_names,
			     gup_read),
	[OP_FILE_WRITE] = OPD("file-write", 3, FB(W) | FB(OBJ) | FB(OFF) |
			      FB(LEN) | FB(TAG), file_write),
	[OP_FILE_READ] = OPD("file-read", 1, FB(W) | FB(OBJ) | FB(OFF) |
			     FB(LEN), file_read),
	[OP_URING_REG] = OPD("uring-register", 1, RANGE, uring_reg),
	[OP_URING_READ] = OPD("uring-read-fixed", 2, RANGE | FB(OBJ) | FB(OFF),
			      uring_read),
	[OP_URING_UNREG] = OPD("uring-unregister", 1, FB(W), uring_unreg),
	[OP_UFFD_REG] = OPD("uffd-register", 2, RANGE, uffd_reg),
	[OP_UFFD_FILL] = OPDH("uffd-fill", 5, RANGE | FB(HOW) | FB(TAG),
			      fill_names, uffd_fill),
	[OP_UFFD_UNREG] = OPD("uffd-unregister", 1, RANGE, uffd_unreg),
	[OP_FORK] = OPDH("fork", 6, FB(W) | FB(T) | FB(HOW), fork_names, fork),
	[OP_EXIT] = OPD("exit", 3, FB(W), exit),
	[OP_WAIT] = OPD("wait", 4, FB(T), wait),
	[OP_THREAD] = OPD("thread", 2, FB(W) | FB(HOW), thread),
	[OP_VMSPLICE] = OPD("vmsplice", 2, RANGE, vmsplice),
	[OP_PIPE_READ] = OPD("pipe-read", 2, FB(W), pipe_read),
	[OP_MOVE_PAGES] = OPD("move-pages", 2, RANGE, move_pages),
	[OP_PAGEOUT_REMOTE] = OPDH("pageout-remote", 2, RANGE | FB(HOW),
				   radv_names, pageout_remote),
	[OP_RECLAIM] = OPD("reclaim", 1, FB(LEN), reclaim),
};

/* ------------------------------------------------------------------ */
/* Printing and parsing operations                                      */

static uint64_t *op_field(struct op *op, int f)
{
	return (uint64_t *)((char *)op + fields[f].off);
}

static void op_format(const struct op *op, char *buf, size_t len)
{
	const struct op_desc *d = &op_tab[op->type];
	size_t n = snprintf(buf, len, "%" PRId64 " %s", op->idx, d->name);

	for (int f = 0; f < NR_FIELDS && n < len; f++) {
		uint64_t v = *op_field((struct op *)op, f);
		char val[64];

		if (!(d->fields & (1u << f)))
			continue;
		switch (fields[f].fmt) {
		case FMT_HEX:
			snprintf(val, sizeof(val), "%#" PRIx64, v);
			break;
		case FMT_PROT:
			snprintf(val, sizeof(val), "%s", prot_names[v & 3]);
			break;
		case FMT_KIND:
			snprintf(val, sizeof(val), "%s",
				 v < NR_KINDS ? kind_names[v] : "?");
			break;
		case FMT_HOW:
			if (d->how && v < (uint64_t)d->nhow) {
				snprintf(val, sizeof(val), "%s", d->how[v]);
				break;
			}
			/* fall through */
		case FMT_DEC:
			snprintf(val, sizeof(val), "%" PRId64, (int64_t)v);
			break;
		case FMT_FLAGS:
			snprintf(val, sizeof(val), "%s%s%s",
				 v & MF_POPULATE ? mf_names[0] : "",
				 v == (MF_POPULATE | MF_FIXED) ? "|" : "",
				 v & MF_FIXED ? mf_names[1] : v ? "" : "none");
			break;
		}
		n += snprintf(buf + n, len - n, " %s=%s", fields[f].name, val);
	}
}

static int name_index(const char *const *names, int n, const char *s)
{
	for (int i = 0; i < n; i++)
		if (names[i] && !strcmp(names[i], s))
			return i;
	return -1;
}

static bool parse_num(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return !errno && end != s && !*end;
}

static bool parse_value(const struct op_desc *d, int f, const char *s,
			uint64_t *v)
{
	int i = -1;

	switch (fields[f].fmt) {
	case FMT_PROT:
		i = name_index(prot_names, 4, s);
		break;
	case FMT_KIND:
		i = name_index(kind_names, NR_KINDS, s);
		break;
	case FMT_HOW:
		if (d->how)
			i = name_index(d->how, d->nhow, s);
		break;
	case FMT_FLAGS:
		if (!strcmp(s, "none"))
			i = 0;
		else if (!strcmp(s, "populate|fixed"))
			i = MF_POPULATE | MF_FIXED;
		else if ((i = name_index(mf_names, 2, s)) >= 0)
			i = 1 << i;
		break;
	}
	if (i >= 0) {
		*v = i;
		return true;
	}
	return parse_num(s, v);
}

/* "IDX NAME key=value ..." as written by op_format(); 0 or -1. */
static int op_parse(char *line, struct op *op)
{
	char *save, *tok, *eq;
	const struct op_desc *d;
	uint64_t v;
	int f;

	memset(op, 0, sizeof(*op));
	tok = strtok_r(line, " \t\n", &save);
	if (!tok || !parse_num(tok, &v))
		return -1;
	op->idx = v;
	tok = strtok_r(NULL, " \t\n", &save);
	for (op->type = 0; tok && op->type < NR_OPS; op->type++)
		if (!strcmp(op_tab[op->type].name, tok))
			break;
	if (!tok || op->type == NR_OPS)
		return -1;
	d = &op_tab[op->type];
	while ((tok = strtok_r(NULL, " \t\n", &save))) {
		eq = strchr(tok, '=');
		if (!eq)
			return -1;
		*eq = '\0';
		for (f = 0; f < NR_FIELDS; f++)
			if (!strcmp(fields[f].name, tok))
				break;
		if (f == NR_FIELDS || !parse_value(d, f, eq + 1, &v))
			return -1;
		*op_field(op, f) = v;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The tree: start, run operations, tear down                           */

static char tmpdir[4096];
static long n_exec;		/* operations executed in this tree */

static void files_create(void)
{
	char path[4200];

	for (int f = 0; f < NR_FILES; f++) {
		if (f < NR_FILES - 1) {
			file_fd[f] = memfd_create("cow_pte_fuzz", 0);
		} else {
			snprintf(path, sizeof(path), "%s/file", tmpdir);
			file_fd[f] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		}
		if (file_fd[f] < 0 || ftruncate(file_fd[f], FILE_PAGES * PG))
			die("creating test file %d: %s", f, strerror(errno));
		objs[f].npages = FILE_PAGES;
		objs[f].tag = calloc(FILE_PAGES, sizeof(uint64_t));
		if (!objs[f].tag)
			bug("out of memory");
	}
	nobjs = NR_FILES;
}

static void files_free(void)
{
	char path[4200];

	for (int f = 0; f < NR_FILES; f++) {
		if (file_fd[f] >= 0)
			close(file_fd[f]);
		file_fd[f] = -1;
	}
	snprintf(path, sizeof(path), "%s/file", tmpdir);
	unlink(path);
	for (int i = 0; i < nobjs; i++) {
		free(objs[i].tag);
		objs[i].tag = NULL;
	}
	nobjs = 0;
}

/* The first worker: a plain fork of the coordinator. */
static int tree_start(void)
{
	int sv[2], rc;
	pid_t pid;

	files_create();
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		die("socketpair: %s", strerror(errno));
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (!pid) {
		for (int fd = 3; fd < 1024; fd++)
			if (fd != sv[1] && fd != file_fd[0] &&
			    fd != file_fd[1] && fd != file_fd[2])
				close(fd);
		worker_main(sv[1]);
	}
	close(sv[1]);
	worker_new(0, pid, sv[0], COORD);
	n_exec = 0;
	rc = co_recv(sv[0], &co_rep);
	if (rc)
		worker_lost(0, "its first steps", rc);
	return rc;
}

/* SIGKILL the children the kernel lists for us (workers we do not know). */
static void kill_children(void)
{
	char path[64], buf[4096], *p, *end;
	long pid;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", getpid(),
		 getpid());
	if (read_text(path, buf, sizeof(buf)) <= 0)
		return;
	for (p = buf; (pid = strtol(p, &end, 10)) > 0; p = end)
		kill(pid, SIGKILL);
}

static void tree_stop(void)
{
	int i;

	for (i = 0; i < nwk; i++) {
		struct worker *w = wk[i];

		if (!w)
			continue;
		if (w->state == W_LIVE || w->state == W_ZOMBIE)
			kill(w->pid, SIGKILL);
		if (w->chan >= 0)
			close(w->chan);
		worker_drop_model(w);
		free(w);
		wk[i] = NULL;
	}
	nwk = 0;
	/* we are the subreaper: every worker ends up our child */
	for (i = 0; i < 10000; i++) {
		pid_t pid;

		while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
			;
		if (pid < 0 && errno == ECHILD)
			break;
		kill_children();
		usleep(1000);
	}
	if (i == 10000)
		printf("# warning: some workers could not be reaped\n");
	files_free();
}

/* Execute one operation if its preconditions hold; true if executed. */
static bool exec_op(const struct op *op)
{
	const struct op_desc *d = &op_tab[op->type];
	char buf[320];

	cur_op = op->idx;
	if (opt.verbose && !quiet)
		op_format(op, buf, sizeof(buf));
	if (!d->valid(op)) {
		if (opt.verbose && !quiet)
			printf("# skip %s\n", buf);
		return false;
	}
	if (opt.verbose && !quiet)
		printf("# %s\n", buf);
	ntouched = 0;
	d->run(op);
	if (!failure.failed)
		verify_touched();
	n_exec++;
	if (!failure.failed && n_exec % opt.check_every == 0)
		verify_all();
	return true;
}

/* A fresh tree runs ops[0..n), then everything is checked; ops executed. */
static long run_ops(const struct op *ops, long n)
{
	long done = 0;

	replay_cut = false;
	if (tree_start())
		goto out;
	for (long i = 0; i < n && !failure.failed && !stop_requested; i++) {
		if (replay_end && now() >= replay_end) {
			replay_cut = true;
			goto out;
		}
		done += exec_op(&ops[i]);
	}
	if (!failure.failed) {
		cur_op = n ? ops[n - 1].idx : 0;
		verify_all();
	}
out:
	tree_stop();
	return done;
}

static struct {
	long ops;		/* executed in the main run */
	int failures;
	double start;
	long vm[NR_COW_PTE_COUNTERS];
} stats;

/* ------------------------------------------------------------------ */
/* Reduction and repro files                                            */

/*
 * Does this list of operations fail in a fresh tree?  A replay that reaches
 * replay_end first stops there and counts as not failing (replay_cut).
 */
static bool replay_fails(const struct op *ops, long n, char *msg, size_t len)
{
	bool failed, was_generating = generating;

	memset(&failure, 0, sizeof(failure));
	quiet = true;
	generating = false;	/* a replay never refuses what was generated */
	run_ops(ops, n);
	generating = was_generating;
	quiet = false;
	failed = failure.failed;
	if (failed && msg)
		snprintf(msg, len, "op=%ld: %s", failure.op, failure.msg);
	memset(&failure, 0, sizeof(failure));
	return failed;
}

/*
 * ddmin over the list: try to drop each of k chunks (k = 2, 4, ... up to
 * single operations), keep any smaller list that still fails.  Returns the
 * new length; msg gets the last failure seen.
 */
static long reduce(struct op *ops, long n, double budget, char *msg,
		   size_t len)
{
	double end = now() + budget, start = now();
	struct op *cand = malloc(n * sizeof(*ops));
	long k = 2, replays = 0, orig = n;

	if (!cand)
		bug("out of memory");
	replay_end = end;
	while (n >= 2 && now() < end && !stop_requested) {
		long size = (n + k - 1) / k, m;
		bool smaller = false;

		for (long c = 0; c < n && now() < end; c += size) {
			m = 0;
			for (long i = 0; i < n; i++)
				if (i < c || i >= c + size)
					cand[m++] = ops[i];
			replays++;
			if (replay_fails(cand, m, msg, len)) {
				memcpy(ops, cand, m * sizeof(*ops));
				n = m;
				k = MAX(k - 1, 2);
				smaller = true;
				break;
			}
		}
		if (!smaller) {
			if (k >= n)
				break;
			k = MIN(2 * k, n);
		}
	}
	replay_end = 0;
	printf("# reduced %ld ops to %ld in %ld replays (%.1f s%s)\n", orig, n,
	       replays, now() - start,
	       now() >= end ? ", time budget used up" : "");
	free(cand);
	return n;
}

static void write_repro(const struct op *ops, long n, const char *what)
{
	char buf[320], path[4200];
	FILE *f;

	/* --keep-going: the second failure goes to FILE.2 and so on */
	if (stats.failures > 1)
		snprintf(path, sizeof(path), "%s.%d", opt.repro,
			 stats.failures);
	else
		snprintf(path, sizeof(path), "%s", opt.repro);
	f = fopen(path, "w");

	printf("# failing sequence (%ld ops):\n", n);
	if (f)
		fprintf(f, "# cow_pte_fuzz repro: seed=%" PRIu64 "\n# %s\n",
			opt.seed, what);
	for (long i = 0; i < n; i++) {
		op_format(&ops[i], buf, sizeof(buf));
		if (i < 100)
			printf("#   %s\n", buf);
		else if (i == 100)
			printf("#   ... %ld more in the file\n", n - 100);
		if (f)
			fprintf(f, "%s\n", buf);
	}
	if (!f || fclose(f))
		printf("# cannot write %s: %s\n", path, strerror(errno));
	else
		printf("# written to %s; replay with: cow_pte_fuzz --replay %s\n",
		       path, path);
}

/*
 * After a failure in the list ops[0..n): report it, check that it
 * reproduces, reduce it, write the repro file.
 */
static void handle_failure(const struct op *ops, long n)
{
	long m = 0, fop = failure.op;
	struct op *copy = malloc((n ? n : 1) * sizeof(*ops));
	char msg[1200], what[1300];

	printf("FAIL seed=%" PRIu64 " op=%ld: %s\n", opt.seed, fop, failure.msg);
	fflush(stdout);
	snprintf(what, sizeof(what), "failure: op=%ld: %s", fop, failure.msg);
	if (!copy)
		bug("out of memory");
	for (long i = 0; i < n; i++)
		if (ops[i].idx <= fop)
			copy[m++] = ops[i];
	if (opt.reduce_time > 0) {
		double end = now() + opt.reduce_time;
		bool failed;

		/* The replay counts against the budget: a test has a timeout. */
		printf("# replaying %ld ops in a fresh tree\n", m);
		fflush(stdout);
		replay_end = end;
		failed = replay_fails(copy, m, msg, sizeof(msg));
		replay_end = 0;
		if (replay_cut) {
			printf("# the replay used up the reduction budget (%.0f s) before the failing op; writing the sequence unreduced\n",
			       opt.reduce_time);
		} else if (!failed) {
			printf("# did not reproduce: the failure did not recur on replay (non-deterministic); writing the sequence unreduced\n");
		} else {
			printf("# reproduced: %s\n", msg);
			m = reduce(copy, m, MAX(end - now(), 0.0), msg,
				   sizeof(msg));
			printf("# reduced failure: %s\n", msg);
			snprintf(what, sizeof(what), "failure: %s", msg);
		}
	}
	write_repro(copy, m, what);
	free(copy);
	memset(&failure, 0, sizeof(failure));
}

static long read_repro(const char *path, struct op **ops)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	long n = 0, cap = 0, lineno = 0;
	char *p;

	if (!f)
		die("cannot open %s: %s", path, strerror(errno));
	*ops = NULL;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		p = strstr(line, "seed=");
		if (line[0] == '#') {
			if (p && lineno == 1)
				opt.seed = strtoull(p + 5, NULL, 10);
			continue;
		}
		if (line[strspn(line, " \t\n")] == '\0')
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			*ops = realloc(*ops, cap * sizeof(**ops));
			if (!*ops)
				bug("out of memory");
		}
		if (op_parse(line, &(*ops)[n]))
			die("%s:%ld: cannot parse the operation", path, lineno);
		n++;
	}
	fclose(f);
	return n;
}

/* ------------------------------------------------------------------ */
/* Main                                                                 */

static struct op gen_op(long idx)
{
	int weights[NR_OPS], i;
	struct op op;

	for (i = 0; i < NR_OPS; i++)
		weights[i] = op_tab[i].weight;
	if (live_count() <= 2)
		weights[OP_FORK] *= 3;
	for (int tries = 0; tries < 100000; tries++) {
		memset(&op, 0, sizeof(op));
		op.idx = idx;
		op.type = pick_weighted(weights, NR_OPS);
		if (op_tab[op.type].gen(&op) && op_tab[op.type].valid(&op))
			return op;
	}
	bug("cannot generate an operation");
}

static void progress(double *last)
{
	double t = now();

	if (t - *last < 10)
		return;
	*last = t;
	printf("# %ld ops, %.1f ops/s, %d live workers\n", stats.ops,
	       stats.ops / (t - stats.start), live_count());
	fflush(stdout);
}

/* Generate and execute until --ops/--time; the list is kept for reduction. */
static void fuzz(void)
{
	struct op *list = NULL;
	long n = 0, cap = 0, idx = 0;
	double last = now();
	bool up;

	rng_seed(opt.seed);
	generating = true;
	up = !tree_start();
	while (up && !stop_requested && (!opt.ops || stats.ops < opt.ops) &&
	       (!opt.time || now() - stats.start < opt.time)) {
		if (n == cap) {
			cap = cap ? 2 * cap : 4096;
			list = realloc(list, cap * sizeof(*list));
			if (!list)
				bug("out of memory");
		}
		list[n] = gen_op(idx++);
		stats.ops += exec_op(&list[n++]);
		if (failure.failed) {
			tree_stop();
			stats.failures++;
			handle_failure(list, n);
			if (!opt.keep_going)
				goto out;
			n = 0;		/* a fresh tree, the same stream */
			up = !tree_start();
		}
		progress(&last);
	}
	if (up) {
		cur_op = idx;
		verify_all();
	}
	tree_stop();
	if (failure.failed) {	/* the final check, or a tree that never started */
		stats.failures++;
		handle_failure(list, n);
	}
out:
	free(list);
}

static void replay_file(struct op *list, long n)
{
	printf("# replaying %ld ops from %s\n", n, opt.replay);
	stats.ops = run_ops(list, n);
	if (failure.failed) {
		stats.failures++;
		handle_failure(list, n);
	} else {
		printf("# replay of %s passed: the failure did not reproduce\n",
		       opt.replay);
	}
}

/* 0 if clone3(CLONE_COW_PGTABLE) works, else the errno (in a helper). */
static int cow_probe(void)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (!pid) {
		pid_t c = cowpt_fork(CLONE_COW_PGTABLE);

		if (!c)
			_exit(0);
		if (c < 0)
			_exit(errno > 0 && errno < 256 ? errno : 255);
		_exit(wait_code(c) ? 255 : 0);
	}
	return wait_code(pid);
}

/* Whether node is in a node list like "0-1,3". */
static bool node_listed(const char *list, int node)
{
	const char *p = list;
	char *end;
	long a, b;

	for (;;) {
		a = b = strtol(p, &end, 10);
		if (end == p)
			return false;
		if (*end == '-') {
			p = end + 1;
			b = strtol(p, &end, 10);
			if (end == p)
				return false;
		}
		if (node >= a && node <= b)
			return true;
		if (*end != ',')
			return false;
		p = end + 1;
	}
}

/* A field of /proc/self/status (in buf), or NULL. */
static const char *self_status(const char *field, char *buf, size_t len)
{
	size_t n = strlen(field);
	char *p;

	if (read_text("/proc/self/status", buf, len) <= 0)
		return NULL;
	for (p = buf; p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, field, n) || p[n] != ':')
			continue;
		p += n + 1;
		p += strspn(p, " \t");
		p[strcspn(p, "\n")] = '\0';
		return p;
	}
	return NULL;
}

/*
 * move-pages needs nodes 0 and 1 with memory, both in our cpuset (the
 * workers', as we are in their cgroup by now), and a kernel with
 * move_pages(); then ENODEV and EACCES from it are failures.
 */
static const char *numa_detect(void)
{
	static char why[96];
	char buf[8192];
	void *page = buf;
	const char *v;
	int status;

	if (access(NODE_DIR "/node1", F_OK))
		return "no second NUMA node (" NODE_DIR "/node1)";
	if (read_text(NODE_DIR "/has_memory", buf, sizeof(buf)) <= 0 ||
	    !node_listed(buf, 0) || !node_listed(buf, 1))
		return "NUMA nodes 0 and 1 do not both have memory";
	v = self_status("Mems_allowed_list", buf, sizeof(buf));
	if (!v || !node_listed(v, 0) || !node_listed(v, 1))
		return "NUMA nodes 0 and 1 are not both in our cpuset";
	if (syscall(SYS_move_pages, 0, 1, &page, NULL, &status,
		    MPOL_MF_MOVE_ALL)) {
		snprintf(why, sizeof(why), "move_pages: %s", strerror(errno));
		return why;
	}
	return NULL;
}

/* process_madvise() of ourselves: is it there at all? */
static const char *pmadv_detect(void)
{
	static char why[96];
	struct iovec iov = { w_page, PG };
	int fd = syscall(SYS_pidfd_open, getpid(), 0), err;
	long ret;

	if (fd < 0) {
		snprintf(why, sizeof(why), "pidfd_open: %s", strerror(errno));
		return why;
	}
	ret = syscall(SYS_process_madvise, fd, &iov, 1, MADV_COLD, 0);
	err = errno;
	close(fd);
	if (ret != (long)PG) {
		snprintf(why, sizeof(why), "process_madvise: %s",
			 ret < 0 ? strerror(err) : "short count");
		return why;
	}
	return NULL;
}

/*
 * Our own cgroup for the reclaim op, CG_ROOT/cow_pte_fuzz-PID with the
 * memory controller, and the coordinator in it before the first worker is
 * forked, so that every worker is.  cgroup2 is mounted on CG_ROOT if
 * nothing is (a cgroup v1 tmpfs there is left alone).  No memory.max: no
 * OOM kills, only the reclaim we ask for.
 */
static const char *memcg_try(void)
{
	static char why[160];
	char path[4300], buf[4096], val[32], *p;
	struct statfs sfs;
	int ret;

	if (statfs(CG_ROOT, &sfs))
		return "no " CG_ROOT;
	if ((uint32_t)sfs.f_type != CGROUP2_SUPER_MAGIC) {
		if ((uint32_t)sfs.f_type != SYSFS_MAGIC)
			return CG_ROOT " is not cgroup2";
		if (mount("none", CG_ROOT, "cgroup2", 0, NULL)) {
			snprintf(why, sizeof(why), "mounting cgroup2 on %s: %s",
				 CG_ROOT, strerror(errno));
			return why;
		}
		memcg.mounted = true;
	}
	if (read_text("/proc/self/cgroup", buf, sizeof(buf)) <= 0)
		return "/proc/self/cgroup unreadable";
	for (p = buf; p && strncmp(p, "0::/", 4);
	     p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		;
	if (!p)
		return "not in a cgroup v2 hierarchy";
	p += 3;
	p[strcspn(p, "\n")] = '\0';
	snprintf(memcg.orig, sizeof(memcg.orig), "%s%s", CG_ROOT,
		 strcmp(p, "/") ? p : "");
	ret = write_text(CG_ROOT "/cgroup.subtree_control", "+memory");
	if (ret) {
		snprintf(why, sizeof(why), "enabling the memory controller: %s",
			 strerror(-ret));
		return why;
	}
	snprintf(memcg.path, sizeof(memcg.path), "%s/cow_pte_fuzz-%d",
		 CG_ROOT, (int)getpid());
	if (mkdir(memcg.path, 0755)) {
		snprintf(why, sizeof(why), "mkdir %s: %s", memcg.path,
			 strerror(errno));
		memcg.path[0] = '\0';
		return why;
	}
	snprintf(path, sizeof(path), "%s/cgroup.procs", memcg.path);
	snprintf(val, sizeof(val), "%d", (int)getpid());
	ret = write_text(path, val);
	if (ret) {
		snprintf(why, sizeof(why), "joining %s: %s", memcg.path,
			 strerror(-ret));
		return why;
	}
	memcg.joined = true;
	snprintf(path, sizeof(path), "%s/memory.reclaim", memcg.path);
	if (access(path, W_OK))
		return "no memory.reclaim";
	return NULL;
}

/* Back to where the coordinator was; remove the cgroup once it is empty. */
static void memcg_teardown(void)
{
	char path[4300], val[32];

	if (memcg.owner != getpid())
		return;		/* a child running our atexit handlers */
	if (memcg.joined) {
		snprintf(path, sizeof(path), "%s/cgroup.procs", memcg.orig);
		snprintf(val, sizeof(val), "%d", (int)getpid());
		if (write_text(path, val))
			write_text(CG_ROOT "/cgroup.procs", val);
		memcg.joined = false;
	}
	if (memcg.path[0]) {
		/* reaped workers may take a moment to leave it */
		for (int i = 0; i < 100 && rmdir(memcg.path) && errno == EBUSY;
		     i++)
			usleep(10000);
		memcg.path[0] = '\0';
	}
	if (memcg.mounted) {
		umount(CG_ROOT);	/* best effort: others may use it */
		memcg.mounted = false;
	}
}

/* CAP_SYS_NICE: move_pages(MPOL_MF_MOVE_ALL), another's process_madvise() */
static bool have_sys_nice(void)
{
	char buf[8192];
	const char *v = self_status("CapEff", buf, sizeof(buf));

	return v && (strtoull(v, NULL, 16) >> 23 & 1);
}

/* Root only, like mlock and GUP: the cgroup first, see numa_detect(). */
static void detect_root(void)
{
	const char *why;

	memcg.owner = getpid();
	why = memcg_try();
	have.memcg = !why;
	if (why) {
		printf("# %s: reclaim disabled\n", why);
		memcg_teardown();
	}
	if (!have_sys_nice()) {
		printf("# no CAP_SYS_NICE: move-pages and pageout-remote disabled\n");
		return;
	}
	why = numa_detect();
	have.numa = !why;
	if (why)
		printf("# %s: move-pages disabled\n", why);
	why = pmadv_detect();
	have.pmadv = !why;
	if (why)
		printf("# %s: pageout-remote disabled\n", why);
}

static void detect(void)
{
	struct io_uring ring;
	int fd, ret;

	have.thp = !access(THP_DIR, F_OK);
	have.ksm = !access(KSM_DIR, F_OK);
	have.swap = !access("/proc/swaps", F_OK);
	have.root = !geteuid();
	fd = uffd_open();
	have.uffd = fd >= 0;
	if (fd >= 0)
		close(fd);
	else
		printf("# userfaultfd unavailable (%s): uffd ops disabled\n",
		       strerror(errno));
	ret = io_uring_queue_init(2, &ring, 0);
	have.uring = !ret;
	if (!ret)
		io_uring_queue_exit(&ring);
	else
		printf("# io_uring unavailable (%s): io_uring ops disabled\n",
		       strerror(-ret));
	if (!have.root)
		printf("# not root: mlock, GUP (process_vm_writev, /proc/PID/mem), move-pages, pageout-remote and reclaim ops disabled\n");
	else
		detect_root();
	if (opt.cow != COW_OFF) {
		ret = cow_probe();
		if (ret == EINVAL)
			die("clone3(CLONE_COW_PGTABLE) failed with EINVAL: this kernel has no copy-on-write page tables (CONFIG_COW_PTE); run with --cow off");
		if (ret == EOPNOTSUPP)
			die("clone3(CLONE_COW_PGTABLE) failed with EOPNOTSUPP: %s is \"off\"; set it to opt-in or run with --cow off",
			    COWPT_MODE_PATH);
		if (ret)
			die("clone3(CLONE_COW_PGTABLE) failed (%s, exit code %d); run with --cow off",
			    ret < 256 ? errname(ret) : "?", ret);
	}
}

static void cleanup(void)
{
	char path[4200];

	if (nwk)
		tree_stop();
	if (tmpdir[0]) {
		snprintf(path, sizeof(path), "%s/file", tmpdir);
		unlink(path);
		rmdir(tmpdir);
	}
	memcg_teardown();	/* after tree_stop(): no worker is left in it */
}

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: cow_pte_fuzz [options]\n"
"Randomized differential test of copy-on-write page tables: a tree of\n"
"worker processes executes random memory operations, every result and\n"
"every page is checked against a model.  Exit 0: no failure, 1: failures,\n"
"2: usage or setup error.\n"
"  --seed N          PRNG seed (default: from the time; printed)\n"
"  --ops N           stop after N operations (default 2000 without --time)\n"
"  --time S          stop after S seconds (with --ops: whichever first)\n"
"  --procs N         at most N live workers (default 6, max %d)\n"
"  --mem MIB         mapped memory cap per worker in MiB (default 64)\n"
"  --cow on|off|mixed  forks with CLONE_COW_PGTABLE: all, none, or a random\n"
"                    half (default mixed)\n"
"  --check-every N   read back everything every N operations (default 64)\n"
"  --verbose         print every operation\n"
"  --keep-going      after a failure, start a fresh tree and go on\n"
"  --replay FILE     run the operations of a repro file\n"
"  --repro-file F    where to write the reduced failure\n"
"                    (default ./cow_pte_fuzz.repro)\n"
"  --reduce-time S   time budget of the replay and reduction of a failure\n"
"                    (default 120; 0: no replay, no reduction)\n"
"  --help            this text\n", MAX_PROCS);
}

static void __attribute__((noreturn)) bad_option(const char *name,
						  const char *val)
{
	fprintf(stderr, "cow_pte_fuzz: invalid value for --%s: '%s'\n", name,
		val);
	usage(stderr);
	exit(2);
}

static double num_arg(const char *name, const char *val, double min,
		      double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(val, &end);
	if (errno || end == val || *end || v < min || v > max)
		bad_option(name, val);
	return v;
}

static void parse_options(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "seed", required_argument, NULL, 's' },
		{ "ops", required_argument, NULL, 'n' },
		{ "time", required_argument, NULL, 't' },
		{ "procs", required_argument, NULL, 'p' },
		{ "mem", required_argument, NULL, 'm' },
		{ "cow", required_argument, NULL, 'c' },
		{ "check-every", required_argument, NULL, 'e' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "keep-going", no_argument, NULL, 'k' },
		{ "replay", required_argument, NULL, 'r' },
		{ "repro-file", required_argument, NULL, 'f' },
		{ "reduce-time", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool seed_set = false;
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (!parse_num(optarg, &v))
				bad_option("seed", optarg);
			opt.seed = v;
			seed_set = true;
			break;
		case 'n':
			opt.ops = num_arg("ops", optarg, 1, 1e12);
			break;
		case 't':
			opt.time = num_arg("time", optarg, 0.001, 1e9);
			break;
		case 'p':
			opt.procs = num_arg("procs", optarg, 1, MAX_PROCS);
			break;
		case 'm':
			opt.mem_mib = num_arg("mem", optarg, 4, 1024);
			break;
		case 'c':
			opt.cow = name_index(cow_names, 3, optarg);
			if (opt.cow < 0)
				bad_option("cow", optarg);
			break;
		case 'e':
			opt.check_every = num_arg("check-every", optarg, 1, 1e9);
			break;
		case 'v':
			opt.verbose = true;
			break;
		case 'k':
			opt.keep_going = true;
			break;
		case 'r':
			opt.replay = optarg;
			break;
		case 'f':
			opt.repro = optarg;
			break;
		case 'R':
			opt.reduce_time = num_arg("reduce-time", optarg, 0, 1e9);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "cow_pte_fuzz: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		exit(2);
	}
	if (!seed_set) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		opt.seed = (uint64_t)ts.tv_sec * 1000003 + ts.tv_nsec / 1000;
	}
	if (!opt.ops && !opt.time)
		opt.ops = 2000;
}

static void vm_snap(long *v)
{
	for (size_t i = 0; i < NR_COW_PTE_COUNTERS; i++)
		v[i] = vmstat_get(cow_pte_counters[i]);
}

/* The last line: fuzz: N ops, N failures, extra fields. */
static void summary(void)
{
	long end[NR_COW_PTE_COUNTERS], shared = 0, breaks = 0, drops = 0;
	long adopts = 0;
	double t = now() - stats.start;

	vm_snap(end);
	printf("fuzz: %ld ops, %d failures, %.1f ops/s, seed %" PRIu64,
	       stats.ops, stats.failures, t > 0 ? stats.ops / t : 0.0,
	       opt.seed);
	if (stats.vm[0] >= 0 && end[0] >= 0) {
		for (size_t i = 0; i < NR_COW_PTE_COUNTERS; i++) {
			long d = end[i] - stats.vm[i];

			if (!strcmp(cow_pte_counters[i], "cow_pte_shared"))
				shared = d;
			else if (!strncmp(cow_pte_counters[i],
					  "cow_pte_break_", 14))
				breaks += d;
			else if (!strcmp(cow_pte_counters[i], "cow_pte_drop"))
				drops = d;
			else if (!strcmp(cow_pte_counters[i], "cow_pte_adopt"))
				adopts = d;
		}
		printf(", shared %ld, breaks %ld, drops %ld, adopts %ld",
		       shared, breaks, drops, adopts);
	}
	printf("\n");
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	const char *base = getenv("TMPDIR");
	struct op *replay = NULL;
	long nreplay = 0;

	parse_options(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 0; i < NR_ADVICES; i++)
		adv_names[i] = advices[i].name;
	cap_pages = opt.mem_mib * (1L << 20) / (long)PG;

	snprintf(tmpdir, sizeof(tmpdir), "%s/cow_pte_fuzz.XXXXXX",
		 base && *base ? base : ".");
	if (!mkdtemp(tmpdir))
		die("mkdtemp %s: %s", tmpdir, strerror(errno));
	atexit(cleanup);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
		die("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (opt.replay) {
		/* probe CLONE_COW_PGTABLE only if the file uses it */
		nreplay = read_repro(opt.replay, &replay);
		opt.cow = COW_OFF;
		for (long i = 0; i < nreplay; i++)
			if (replay[i].type == OP_FORK && replay[i].how == FORK_COW)
				opt.cow = COW_ON;
	}
	detect();
	if (opt.replay)
		printf("# cow_pte_fuzz: replay of %s (%ld ops, seed %" PRIu64 ")\n",
		       opt.replay, nreplay, opt.seed);
	else
		printf("# cow_pte_fuzz: seed %" PRIu64 ", %ld ops, %.0f s, procs %d, mem %ld MiB, cow %s (0: no limit)\n",
		       opt.seed, opt.ops, opt.time, opt.procs, opt.mem_mib,
		       cow_names[opt.cow]);
	klog_open();
	vm_snap(stats.vm);
	stats.start = now();
	if (opt.replay)
		replay_file(replay, nreplay);
	else
		fuzz();
	summary();
	free(replay);
	return stats.failures ? 1 : 0;
}
