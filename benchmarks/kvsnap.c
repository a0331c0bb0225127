// SPDX-License-Identifier: GPL-2.0
/*
 * kvsnap - a fork-heavy server: an in-memory key-value store served over
 * io_uring that snapshots its data to a file from a forked child while it
 * keeps serving (as Redis BGSAVE does), with a load generator that reports
 * request latency during the snapshots and outside them.
 *
 * One run is one mode: plain (the snapshot child is a plain fork through
 * clone3) or cow (clone3 with CLONE_COW_PTE).  The load generator is a
 * separate process, forked before the store is filled, connected by one
 * AF_UNIX stream socketpair per client; it runs closed-loop clients (one
 * request in flight each) and timestamps every request.  The server runs
 * every connection and the snapshot schedule in one io_uring loop: recv,
 * send, a timeout that starts the next snapshot, and a poll on the
 * snapshot child's pidfd that ends it.  A SET rewrites the whole value, so
 * SETs during a snapshot make the serving parent copy pages (and, with
 * cow, PTE tables): the deferred cost shows up as request latency.
 */
#define _GNU_SOURCE

#include "bench_util.h"

#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define VSIZE		1024		/* bytes per value */
#define MAX_CLIENTS	64
#define MAX_SNAPS	64
#define OP_GET		1
#define OP_SET		2

struct req {
	uint32_t op;
	uint32_t key;
	uint64_t val;
};

/* Written by the server, read by the load generator at the end. */
struct shared {
	int nsnaps;
	double start_ms[MAX_SNAPS];	/* just before the fork */
	double end_ms[MAX_SNAPS];	/* child reaped */
	double fork_us[MAX_SNAPS];	/* the fork call in the server */
	long shared_tables;		/* /proc/vmstat cow_pte_shared delta */
	int failed;
};

struct opts {
	long mib;
	int mode;
	int clients;
	int set_pct;
	int snaps;
	long interval_ms;
	long warmup_ms;
	const char *dir;
	const char *csv;
};

struct sample {
	double t;	/* request sent, CLOCK_MONOTONIC ms */
	float us;	/* latency */
};

struct client {
	int fd;
	uint64_t nkeys;
	int set_pct;
	uint64_t rng;
	struct sample *s;
	size_t n, cap;
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: %s [--mode plain|cow] [--mib N] [--clients N] [--set-pct P]\n"
"       %*s [--snapshots N] [--interval MS] [--warmup MS] [--dir DIR]\n"
"       %*s [--csv FILE] [--help]\n"
"\n"
"A key-value server on io_uring that snapshots its store from a forked child\n"
"while serving, and a load generator measuring request latency during the\n"
"snapshots.  The store is N MiB of %d-byte values (4 KiB pages, every page\n"
"written before the load starts).\n"
"\n"
"  --mode M       plain: the snapshot child is clone3() like fork();\n"
"                 cow: clone3(CLONE_COW_PTE) (default cow).  A failed\n"
"                 CoW fork is reported, exit status 2; there is no fallback\n"
"  --mib N        store size in MiB, 1..%ld (default 1024)\n"
"  --clients N    closed-loop clients, 1..%d (default 4)\n"
"  --set-pct P    percentage of SETs, 0..100 (default 50)\n"
"  --snapshots N  snapshots, 1..%d (default 3)\n"
"  --interval MS  from the end of one snapshot to the start of the next\n"
"                 (default 1000); --warmup MS of load before the first\n"
"                 (default 1000) and after the last\n"
"  --dir DIR      where the snapshot file goes (default $TMPDIR or /tmp)\n"
"  --csv FILE     also write CSV rows, after a header line:\n"
"                   mib,mode,clients,set_pct,snapshots,fork_median_us,\n"
"                   fork_max_us,snap_median_ms,during_reqs,during_p50_us,\n"
"                   during_p99_us,during_max_us,outside_reqs,outside_p50_us,\n"
"                   outside_p99_us,outside_max_us,cow_pte_shared\n"
"\n"
"Output: one line,\n"
"  kvsnap N MiB MODE: fork median F us (max M), snapshot median S ms;\n"
"  during snapshots p50/p99/max A/B/C us (R reqs); outside D/E/F us (Q reqs)\n"
"(on one line).  Checks: every snapshot file has the store's size and the\n"
"child exited 0; cow: every snapshot fork shared all the store's PTE\n"
"tables (/proc/vmstat cow_pte_shared).  Exit status: 0\n"
"success, 1 runtime failure or failed check, 2 bad arguments or CoW fork\n"
"not available.\n",
		prog, (int)strlen(prog), "", (int)strlen(prog), "", VSIZE,
		MAX_MIB, MAX_CLIENTS, MAX_SNAPS);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Reads or writes exactly len bytes; 0, or -1 on EOF or error. */
static int xfer(int fd, void *buf, size_t len, int out)
{
	char *p = buf;

	while (len) {
		ssize_t r = out ? write(fd, p, len) : read(fd, p, len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		len -= r;
	}
	return 0;
}

/* ------------------------------------------------------------ load */

static void *client_main(void *arg)
{
	struct client *c = arg;
	struct req q;
	uint64_t resp;

	for (;;) {
		double t0, t1;

		q.key = xorshift(&c->rng) % c->nkeys;
		q.op = (int)(xorshift(&c->rng) % 100) < c->set_pct ? OP_SET : OP_GET;
		q.val = xorshift(&c->rng);
		t0 = now_ms();
		if (xfer(c->fd, &q, sizeof(q), 1) || xfer(c->fd, &resp, sizeof(resp), 0))
			break;		/* the server closed: the run is over */
		t1 = now_ms();
		if (q.op == OP_GET && resp != 0 && (resp & 0xff) != 0x5a) {
			fprintf(stderr, "%s: GET of key %u returned a value no SET wrote\n",
				prog, q.key);
			exit(1);
		}
		if (c->n == c->cap) {
			c->cap = c->cap ? 2 * c->cap : 65536;
			c->s = realloc(c->s, c->cap * sizeof(*c->s));
			if (!c->s)
				die_errno("realloc");
		}
		c->s[c->n].t = t0;
		c->s[c->n].us = (t1 - t0) * 1e3;
		c->n++;
	}
	return NULL;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return x < y ? -1 : x > y;
}

struct lat {
	size_t n;
	double p50, p99, max;
};

static struct lat percentiles(float *v, size_t n)
{
	struct lat l = { n, 0, 0, 0 };

	if (!n)
		return l;
	qsort(v, n, sizeof(*v), cmp_float);
	l.p50 = v[(n - 1) / 2];
	l.p99 = v[(size_t)((n - 1) * 0.99)];
	l.max = v[n - 1];
	return l;
}

static int in_snapshot(const struct shared *sh, double t)
{
	for (int i = 0; i < sh->nsnaps; i++)
		if (t >= sh->start_ms[i] && t < sh->end_ms[i])
			return 1;
	return 0;
}

static void __attribute__((noreturn))
load_main(const struct opts *o, int *fds, const struct shared *sh, int done_fd)
{
	struct client c[MAX_CLIENTS];
	pthread_t th[MAX_CLIENTS];
	double fork_us[MAX_SNAPS], snap_ms[MAX_SNAPS];
	float *during, *outside;
	size_t total = 0, nd = 0, no = 0;
	struct lat ld, lo;
	struct stats fs, ss;
	FILE *csv;

	for (int i = 0; i < o->clients; i++) {
		c[i] = (struct client){ .fd = fds[i], .set_pct = o->set_pct,
			.nkeys = ((size_t)o->mib << 20) / VSIZE,
			.rng = 0x9e3779b97f4a7c15ULL * (i + 1) };
		if (pthread_create(&th[i], NULL, client_main, &c[i]))
			die_errno("pthread_create");
	}
	for (int i = 0; i < o->clients; i++) {
		pthread_join(th[i], NULL);
		total += c[i].n;
	}
	wait_fd(done_fd);		/* the server filled in *sh */
	if (sh->failed)
		exit(1);

	during = xcalloc(total + 1, sizeof(float));
	outside = xcalloc(total + 1, sizeof(float));
	for (int i = 0; i < o->clients; i++)
		for (size_t k = 0; k < c[i].n; k++) {
			if (in_snapshot(sh, c[i].s[k].t))
				during[nd++] = c[i].s[k].us;
			else
				outside[no++] = c[i].s[k].us;
		}
	ld = percentiles(during, nd);
	lo = percentiles(outside, no);
	for (int i = 0; i < sh->nsnaps; i++) {
		fork_us[i] = sh->fork_us[i];
		snap_ms[i] = sh->end_ms[i] - sh->start_ms[i];
	}
	fs = summarize(fork_us, sh->nsnaps);
	ss = summarize(snap_ms, sh->nsnaps);

	printf("kvsnap %ld MiB %s: fork median %.0f us (max %.0f), snapshot median"
	       " %.1f ms; during snapshots p50/p99/max %.0f/%.0f/%.0f us (%zu reqs);"
	       " outside %.0f/%.0f/%.0f us (%zu reqs)\n",
	       o->mib, mode_name[o->mode], fs.median, fs.max, ss.median,
	       ld.p50, ld.p99, ld.max, nd, lo.p50, lo.p99, lo.max, no);
	csv = csv_open(o->csv, "mib,mode,clients,set_pct,snapshots,fork_median_us,"
		       "fork_max_us,snap_median_ms,during_reqs,during_p50_us,"
		       "during_p99_us,during_max_us,outside_reqs,outside_p50_us,"
		       "outside_p99_us,outside_max_us,cow_pte_shared");
	if (csv) {
		fprintf(csv, "%ld,%s,%d,%d,%d,%.0f,%.0f,%.1f,%zu,%.0f,%.0f,%.0f,"
			"%zu,%.0f,%.0f,%.0f,", o->mib, mode_name[o->mode],
			o->clients, o->set_pct, sh->nsnaps, fs.median, fs.max,
			ss.median, nd, ld.p50, ld.p99, ld.max, no, lo.p50,
			lo.p99, lo.max);
		if (sh->shared_tables < 0)
			fprintf(csv, "NA\n");
		else
			fprintf(csv, "%ld\n", sh->shared_tables);
		csv_close(csv, o->csv);
	}
	if (!nd) {
		fprintf(stderr, "%s: no request was issued during a snapshot\n", prog);
		exit(1);
	}
	exit(0);
}

/* ------------------------------------------------------------ server */

enum { EV_RECV, EV_SEND, EV_TIMEOUT, EV_CHILD };

#define UDATA(ev, i)	((uint64_t)(ev) << 32 | (uint32_t)(i))

struct conn {
	int fd;
	struct req q;
	size_t got;
	uint64_t resp;
	int open;
};

static struct io_uring ring;

static struct io_uring_sqe *get_sqe(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

	if (!sqe) {
		io_uring_submit(&ring);
		sqe = io_uring_get_sqe(&ring);
		if (!sqe) {
			fprintf(stderr, "%s: io_uring: no free SQE\n", prog);
			exit(1);
		}
	}
	return sqe;
}

static void queue_recv(struct conn *c, int i)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_recv(sqe, c->fd, (char *)&c->q + c->got,
			   sizeof(c->q) - c->got, 0);
	io_uring_sqe_set_data64(sqe, UDATA(EV_RECV, i));
}

static void queue_timeout(struct __kernel_timespec *ts, long ms)
{
	struct io_uring_sqe *sqe = get_sqe();

	ts->tv_sec = ms / 1000;
	ts->tv_nsec = (ms % 1000) * 1000000L;
	io_uring_prep_timeout(sqe, ts, 0, 0);
	io_uring_sqe_set_data64(sqe, UDATA(EV_TIMEOUT, 0));
}

/* The snapshot child: the whole store into DIR/kvsnap.rdb, then exit. */
static void __attribute__((noreturn))
snapshot_child(const char *path, const char *store, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0)
		_exit(3);
	for (size_t off = 0; off < len; off += PMD_SZ)
		if (xfer(fd, (char *)store + off, len - off < PMD_SZ ? len - off : PMD_SZ, 1))
			_exit(4);
	_exit(close(fd) ? 5 : 0);
}

static int server_main(const struct opts *o, struct conn *conns,
		       struct shared *sh, int done_fd)
{
	size_t len = (size_t)o->mib << 20;
	char *store = map_region(o->mib, 0);
	struct __kernel_timespec ts;
	char path[4096];
	int open_conns = o->clients, snap = 0, running = 0, pidfd = -1;
	pid_t child = 0;
	long shared0 = vmstat_get("cow_pte_shared");
	struct stat st;

	snprintf(path, sizeof(path), "%s/kvsnap.rdb", o->dir);
	for (size_t k = 0; k < len / VSIZE; k++)
		memset(store + k * VSIZE, 0, VSIZE);	/* GET of it reads 0 */
	if (io_uring_queue_init(256, &ring, 0))
		die_errno("io_uring_queue_init");
	for (int i = 0; i < o->clients; i++)
		queue_recv(&conns[i], i);
	queue_timeout(&ts, o->warmup_ms);

	while (open_conns) {
		struct io_uring_cqe *cqe;
		uint64_t ud;
		int res, i, ev;

		io_uring_submit(&ring);
		res = io_uring_wait_cqe(&ring, &cqe);
		if (res == -EINTR)
			continue;
		if (res) {
			errno = -res;
			die_errno("io_uring_wait_cqe");
		}
		ud = io_uring_cqe_get_data64(cqe);
		res = cqe->res;
		io_uring_cqe_seen(&ring, cqe);
		ev = ud >> 32;
		i = (int)(uint32_t)ud;

		switch (ev) {
		case EV_RECV: {
			struct conn *c = &conns[i];

			if (res <= 0) {		/* client gone */
				c->open = 0;
				open_conns--;
				break;
			}
			c->got += res;
			if (c->got < sizeof(c->q)) {
				queue_recv(c, i);
				break;
			}
			c->got = 0;
			if (c->q.key >= len / VSIZE) {
				fprintf(stderr, "%s: bad key %u\n", prog, c->q.key);
				sh->failed = 1;
				goto out;
			}
			char *v = store + (size_t)c->q.key * VSIZE;
			if (c->q.op == OP_SET) {
				uint64_t w = (c->q.val << 8) | 0x5a;

				for (size_t k = 0; k < VSIZE / 8; k++)
					((uint64_t *)v)[k] = w;
				c->resp = 0;
			} else {
				memcpy(&c->resp, v, sizeof(c->resp));
			}
			struct io_uring_sqe *sqe = get_sqe();

			io_uring_prep_send(sqe, c->fd, &c->resp, sizeof(c->resp), 0);
			io_uring_sqe_set_data64(sqe, UDATA(EV_SEND, i));
			break;
		}
		case EV_SEND:
			if (res != sizeof(uint64_t)) {
				conns[i].open = 0;
				open_conns--;
				break;
			}
			queue_recv(&conns[i], i);
			break;
		case EV_TIMEOUT:
			if (snap == o->snaps) {		/* tail done: end the run */
				for (int k = 0; k < o->clients; k++)
					if (conns[k].open)
						shutdown(conns[k].fd, SHUT_RDWR);
				break;
			}
			sh->start_ms[snap] = now_ms();
			child = cowpt_fork(o->mode == MODE_COW ? CLONE_COW_PTE : 0);
			if (child < 0)
				fork_failed(o->mode, errno);
			if (!child)
				snapshot_child(path, store, len);
			sh->fork_us[snap] = (now_ms() - sh->start_ms[snap]) * 1e3;
			running = 1;
			pidfd = syscall(SYS_pidfd_open, child, 0);
			if (pidfd < 0)
				die_errno("pidfd_open");
			struct io_uring_sqe *sqe = get_sqe();

			io_uring_prep_poll_add(sqe, pidfd, POLLIN);
			io_uring_sqe_set_data64(sqe, UDATA(EV_CHILD, 0));
			break;
		case EV_CHILD: {
			int status;

			if (waitpid(child, &status, 0) != child)
				die_errno("waitpid");
			sh->end_ms[snap] = now_ms();
			close(pidfd);
			running = 0;
			if (!WIFEXITED(status) || WEXITSTATUS(status)) {
				fprintf(stderr, "%s: snapshot child failed (status 0x%x)\n",
					prog, status);
				sh->failed = 1;
				goto out;
			}
			if (stat(path, &st) || (size_t)st.st_size != len) {
				fprintf(stderr, "%s: snapshot %s is not %zu bytes\n",
					prog, path, len);
				sh->failed = 1;
				goto out;
			}
			unlink(path);
			snap++;
			sh->nsnaps = snap;
			queue_timeout(&ts, snap == o->snaps ? o->warmup_ms : o->interval_ms);
			break;
		}
		}
	}
out:
	if (running)
		reap(child);
	sh->shared_tables = shared0 < 0 ? -1 : vmstat_get("cow_pte_shared") - shared0;
	if (!sh->failed && o->mode == MODE_COW &&
	    sh->shared_tables < (long)snap * (long)(len / PMD_SZ)) {
		fprintf(stderr, "%s: cow mode, but the %d snapshot forks shared %ld"
			" PTE tables, not the %zu each that the store takes"
			" (/proc/vmstat cow_pte_shared; does the store hold pinned"
			" pages?)\n", prog, snap, sh->shared_tables, len / PMD_SZ);
		sh->failed = 1;
	}
	for (int k = 0; k < o->clients; k++)
		close(conns[k].fd);
	close(done_fd);			/* the load generator may report */
	io_uring_queue_exit(&ring);
	munmap(store, len);
	return sh->failed;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "mib", required_argument, NULL, 's' },
		{ "clients", required_argument, NULL, 'c' },
		{ "set-pct", required_argument, NULL, 'p' },
		{ "snapshots", required_argument, NULL, 'n' },
		{ "interval", required_argument, NULL, 'i' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "dir", required_argument, NULL, 'd' },
		{ "csv", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .mib = 1024, .mode = MODE_COW, .clients = 4,
			  .set_pct = 50, .snaps = 3, .interval_ms = 1000,
			  .warmup_ms = 1000 };
	struct conn conns[MAX_CLIENTS];
	int lfds[MAX_CLIENTS], done[2], opt, status, ret;
	struct shared *sh;
	pid_t loader;

	set_prog(argv[0], "kvsnap");
	signal(SIGPIPE, SIG_IGN);	/* the run ends with shutdown(): EPIPE */
	o.dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", lopts, NULL)) != -1) {
		switch (opt) {
		case 'm': o.mode = parse_name("--mode", optarg, mode_name, NR_MODES); break;
		case 's': o.mib = parse_long(optarg, 1, MAX_MIB, "--mib"); break;
		case 'c': o.clients = parse_long(optarg, 1, MAX_CLIENTS, "--clients"); break;
		case 'p': o.set_pct = parse_long(optarg, 0, 100, "--set-pct"); break;
		case 'n': o.snaps = parse_long(optarg, 1, MAX_SNAPS, "--snapshots"); break;
		case 'i': o.interval_ms = parse_long(optarg, 0, 3600000, "--interval"); break;
		case 'w': o.warmup_ms = parse_long(optarg, 0, 3600000, "--warmup"); break;
		case 'd': o.dir = optarg; break;
		case 'C': o.csv = optarg; break;
		case 'h': usage(stdout); return 0;
		default: bad_option(opt, argv);
		}
	}
	no_operands(argc, argv);

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		die_errno("mmap");
	memset(sh, 0, sizeof(*sh));
	for (int i = 0; i < o.clients; i++) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
			die_errno("socketpair");
		conns[i] = (struct conn){ .fd = sv[0], .open = 1 };
		lfds[i] = sv[1];
	}
	if (pipe(done))
		die_errno("pipe");

	start_report(1u << o.mode);
	fflush(stdout);
	loader = fork();		/* before the store exists: small */
	if (loader < 0)
		die_errno("fork");
	if (!loader) {
		close(done[1]);
		for (int i = 0; i < o.clients; i++)
			close(conns[i].fd);
		load_main(&o, lfds, sh, done[0]);
	}
	close(done[0]);
	for (int i = 0; i < o.clients; i++)
		close(lfds[i]);

	ret = server_main(&o, conns, sh, done[1]);
	if (waitpid(loader, &status, 0) != loader)
		die_errno("waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		if (WIFSIGNALED(status))
			fprintf(stderr, "%s: load generator killed by signal %d\n",
				prog, WTERMSIG(status));
		ret = 1;
	}
	return ret;
}
