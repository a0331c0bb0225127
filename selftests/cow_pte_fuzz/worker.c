// SPDX-License-Identifier: GPL-2.0
/*
 * worker.c: the page contents (tags), the protocol between the coordinator
 * and the workers, the worker processes themselves (dumb command executors,
 * each serving one SOCK_SEQPACKET socket, the channel of ../actor.h), and
 * the coordinator's side of the protocol: sending a command, waiting for
 * the answer, and judging a result against the one expected.
 */

#include "fuzz.h"

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

const char *tag_str(uint64_t tag, char *buf, size_t len)
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

static const char *const cmd_names[NR_CMDS] = {
	"write", "read", "mmap", "munmap", "mremap", "mprotect", "madvise",
	"mlock", "munlock", "remote-write", "remote-read", "pwrite", "pread",
	"io_uring_register_buffers", "IORING_OP_READ_FIXED",
	"io_uring_unregister_buffers", "UFFDIO_REGISTER", "uffd-fill",
	"UFFDIO_UNREGISTER", "fork", "exit", "waitpid", "thread", "vmsplice",
	"pipe read", "move_pages",
};

/* The tag a page holds, or TAG_CORRUPT (the first one noted in r). */
uint64_t page_tag(const void *p, struct reply *r, uint64_t idx)
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

int file_fd[NR_FILES + 1] = { -1, -1, -1, -1 };
static int w_chan = -1;
static struct io_uring w_ring;
static bool w_ring_on;
static int w_uffd = -1;
static int w_pipe[2] = { -1, -1 };	/* what vmsplice gave, until read */
static bool w_in_thread;
static struct reply w_rep;
uint64_t w_page[WORDS] __attribute__((aligned(4096)));
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
int uffd_open(void)
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
	actor_send(w_chan, r, REPLY_HDR + r->n * sizeof(uint64_t));
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

	pid = actor_fork(&w_chan, fd, c->arg == FORK_LIBC ? ACTOR_LIBC_FORK :
			 c->arg == FORK_COW ? CLONE_COW_PTE : 0);
	if (!pid) {
		w_child_reset();
		return true;
	}
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

	if (actor_recv(w_chan, &c, sizeof(c), &fd))
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

void __attribute__((noreturn)) worker_main(int chan)
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
/* Talking to workers                                                   */

struct reply co_rep;		/* the last answer */

/* 0, -1 if the worker is gone, -2 if it did not answer in time. */
int co_recv(int chan, struct reply *r)
{
	ssize_t len = actor_chan_wait(chan, -1, r, sizeof(*r),
				      REPLY_TIMEOUT_S * 1000);

	if (len == -ETIMEDOUT)
		return -2;
	if (len < (ssize_t)REPLY_HDR || r->n > READ_CHUNK ||
	    (size_t)len != REPLY_HDR + r->n * sizeof(uint64_t))
		return -1;
	return 0;
}

/* "exited with N", "killed by signal N (NAME)" or "running". */
const char *proc_status(pid_t pid, char *buf, size_t len)
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

char proc_state(pid_t pid)
{
	char path[64], stat[1024], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_text(path, stat, sizeof(stat)) <= 0 ||
	    !(p = strrchr(stat, ')')))
		return '?';
	return p[2];
}

void worker_lost(int id, const char *what, int rc)
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

int co_call(int id, const struct cmd *c, int fd, struct reply *r)
{
	struct worker *w = wk[id];
	int rc = actor_chan_send(w->chan, c, sizeof(*c), fd) ? -1 : 0;

	if (!rc)
		rc = co_recv(w->chan, r);
	if (rc) {
		worker_lost(id, cmd_names[c->type], rc);
		return -1;
	}
	return 0;
}

const char *res_str(long ret, int err, char *buf, size_t len)
{
	if (ret == -1 && err)
		snprintf(buf, len, "-1 %s", errname(err));
	else
		snprintf(buf, len, "%#lx", ret);
	return buf;
}

/* The answer to c must be ret, or -1 with errno err when err != 0. */
bool expect_res(int id, const struct cmd *c, const struct reply *r,
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
int call(int id, const struct cmd *c, long ret, int err)
{
	if (co_call(id, c, -1, &co_rep))
		return -1;
	return expect_res(id, c, &co_rep, ret, err) ? 0 : -1;
}
