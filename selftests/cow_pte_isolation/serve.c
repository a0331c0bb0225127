// SPDX-License-Identifier: GPL-2.0
/*
 * The actors of cow_pte_isolation: each serves one channel (../actor.h),
 * keeps a model of what each page of its region must hold, and does the
 * writes, mm operations, GUP, O_DIRECT, vmsplice, io_uring and
 * userfaultfd accesses that tests.c asks for, checking every page against
 * the model when told to.
 */
#include "isolation.h"

struct layout L;

uint64_t tmpl[WORDS];

static void __attribute__((constructor)) init_tmpl(void)
{
	for (size_t w = 0; w < WORDS; w++)
		tmpl[w] = (uint64_t)w << 4 | 0xa;
}

void fill_page(void *p, unsigned int gen, long page)
{
	uint64_t *q = p, hi = page_hi(gen, page);

	for (size_t w = 0; w < WORDS; w++)
		q[w] = tmpl[w] | hi;
}

/* -1 if words from..511 of p hold gen's pattern of page, else a bad word. */
int page_diff_from(const void *p, unsigned int gen, long page,
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

int page_diff(const void *p, unsigned int gen, long page)
{
	return page_diff_from(p, gen, page, 0);
}

const char *describe(uint64_t v, char *buf, size_t len)
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

const char *where(long i, char *buf, size_t len)
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


const char *const aname[NACT] = { "parent", "child", "grandchild" };

const char *const op_name[] = {
	"check", "write", "set-model", "fork", "exit", "mm-op", "gup-write",
	"gup-read", "o_direct-read", "vmsplice", "vmsplice-read",
	"io_uring-register", "io_uring-read-fixed", "userfaultfd",
	"madv-mergeable", "madv-unmergeable", "info",
};

const char *const mm_name[] = {
	"mprotect", "mremap-move", "mremap-grow", "mremap-shrink",
	"mremap-dontunmap", "munmap", "MADV_DONTNEED", "MADV_FREE",
	"MADV_PAGEOUT", "MADV_COLD", "MADV_WILLNEED", "MADV_POPULATE_WRITE",
};

const char *const gup_name[] = {
	"process_vm_writev/readv", "/proc/PID/mem", "ptrace(POKEDATA/PEEKDATA)",
};

/* ------------------------------------------------------------------ */
/* Actor side                                                           */

uint64_t cow_flags = CLONE_COW_PTE;
char odirect_dev[128];

static char *base;		/* the region in this actor */
static uint8_t *model;		/* per page: what it must hold */
static int me;			/* actor id */
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

#define rfail(r, ...)	rset(r, ACTOR_FAIL, __VA_ARGS__)
#define rskip(r, ...)	rset(r, ACTOR_SKIP, __VA_ARGS__)

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
	case INFO_REFERENCED:
		r->info = file_kb("/proc/self/smaps_rollup", "Referenced");
		break;
	}
}

static void do_op(const void *cmd, void *rep)
{
	const struct cmd *c = cmd;
	struct reply *r = rep;

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

/* In a new actor forked by another. */
static void born(const void *cmd)
{
	me = ((const struct cmd *)cmd)->child;
	prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
	/* its own vmsplice pipe, not the parent's */
	close_fd(&vs_pipe[0]);
	close_fd(&vs_pipe[1]);
}

static const struct actor_proto proto = {
	.cmd_size = sizeof(struct cmd), .rep_size = sizeof(struct reply),
	.fork_op = OP_FORK, .exit_op = OP_EXIT,
	.serve = do_op,
	.born = born,
};

/* The first actor: map and fill the region, report, serve. */
void actor_first(int chan, void *arg)
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
	actor_send(chan, &r, sizeof(r));
	actor_loop(chan, &proto);
}

