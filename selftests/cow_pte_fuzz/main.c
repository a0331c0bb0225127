// SPDX-License-Identifier: GPL-2.0
/*
 * cow_pte_fuzz - a seeded, reproducible, randomized differential tester for
 * copy-on-write page tables (clone3(CLONE_COW_PTE)).
 *
 * A coordinator process holds a model of what every page of a tree of
 * worker processes must contain, and a seeded PRNG.  It generates random
 * operations (CPU writes, mmap/munmap/mremap/mprotect/madvise/mlock, GUP
 * writes and reads from one worker into another, file writes, io_uring
 * fixed-buffer reads, userfaultfd fills, NUMA page migration, remote
 * pageout, memcg reclaim, fork with or without CLONE_COW_PTE, exit,
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

/*
 * main.c: the options and the failure state, the tree of workers (starting
 * it, executing operations in it, tearing it down), the main loop that
 * generates operations and executes them, the detection of what the kernel
 * and our privileges allow, the option parsing and the summary.  The other
 * modules and what they share: fuzz.h.
 */

#include "fuzz.h"

double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ */
/* Options, environment, failure state                                  */

static const char *const cow_names[] = { "off", "on", "mixed" };

struct opt opt = {
	.procs = 6,
	.mem_mib = 64,
	.cow = COW_MIXED,
	.check_every = 64,
	.repro = "./cow_pte_fuzz.repro",
	.reduce_time = 120,
	.relocate = -1,
};

struct have have;
struct failure failure;

#define RELOCATE_PATH	"/proc/sys/vm/mremap_relocate_anon"

/* vm.mremap_relocate_anon before --relocate changed it, or "" */
static char relocate_saved[16];

static long cur_op = -1;	/* index of the operation being executed */
bool generating;		/* the generation-only limits apply */
bool quiet;			/* a reduction replay: no per-op output */
double replay_end;		/* a replay stops here (now()); 0: never */
bool replay_cut;		/* the last replay stopped at replay_end */
volatile sig_atomic_t stop_requested;

void __attribute__((format(printf, 1, 2))) fail(const char *fmt, ...)
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

void __attribute__((noreturn, format(printf, 1, 2)))
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

const char *errname(int err)
{
	const char *s = err ? strerrorname_np(err) : "0";

	return s ? s : "E?";
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
	mshare_create();
	nobjs = FIRST_SHANON;
}

static void files_free(void)
{
	char path[4200];

	for (int f = 0; f <= MSH_FILE; f++) {
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
			    fd != file_fd[1] && fd != file_fd[2] &&
			    fd != file_fd[MSH_FILE])
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
long run_ops(const struct op *ops, long n)
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

struct stats stats;

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

/* 0 if clone3(CLONE_COW_PTE) works, else the errno (in a helper). */
static int cow_probe(void)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (!pid) {
		pid_t c = cowpt_fork(CLONE_COW_PTE);

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
	mshare_detect();
	if (!have.root)
		printf("# not root: mlock, GUP (process_vm_writev, /proc/PID/mem), move-pages, pageout-remote and reclaim ops disabled\n");
	else
		detect_root();
	if (opt.cow != COW_OFF) {
		ret = cow_probe();
		if (ret == EINVAL)
			die("clone3(CLONE_COW_PTE) failed with EINVAL: this kernel has no copy-on-write page tables (CONFIG_COW_PTE); run with --cow off");
		if (ret == EOPNOTSUPP)
			die("clone3(CLONE_COW_PTE) failed with EOPNOTSUPP: %s is \"off\"; set it to opt-in or run with --cow off",
			    COWPT_MODE_PATH);
		if (ret)
			die("clone3(CLONE_COW_PTE) failed (%s, exit code %d); run with --cow off",
			    ret < 256 ? errname(ret) : "?", ret);
	}
	if (opt.relocate >= 0) {
		char val[4];

		ret = read_text(RELOCATE_PATH, relocate_saved,
				sizeof(relocate_saved));
		if (ret < 0) {
			relocate_saved[0] = '\0';
			die("--relocate: %s: %s (a kernel without mremap relocation?)",
			    RELOCATE_PATH, strerror(-ret));
		}
		snprintf(val, sizeof(val), "%d", opt.relocate);
		ret = write_text(RELOCATE_PATH, val);
		if (ret) {
			relocate_saved[0] = '\0';
			die("--relocate: cannot write %s: %s", RELOCATE_PATH,
			    strerror(-ret));
		}
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
	if (relocate_saved[0])
		write_text(RELOCATE_PATH, relocate_saved);
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
"  --cow on|off|mixed  forks with CLONE_COW_PTE: all, none, or a random\n"
"                    half (default mixed)\n"
"  --check-every N   read back everything every N operations (default 64)\n"
"  --verbose         print every operation\n"
"  --keep-going      after a failure, start a fresh tree and go on\n"
"  --replay FILE     run the operations of a repro file\n"
"  --repro-file F    where to write the reduced failure\n"
"                    (default ./cow_pte_fuzz.repro)\n"
"  --reduce-time S   time budget of the replay and reduction of a failure\n"
"                    (default 120; 0: no replay, no reduction)\n"
"  --relocate 0|1|2  set vm.mremap_relocate_anon for the run (restored at\n"
"                    exit; 2: every eligible move relocates)\n"
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
		{ "relocate", required_argument, NULL, 'L' },
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
		case 'L':
			opt.relocate = num_arg("relocate", optarg, 0, 2);
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
	/* moves that gave pages new indexes (the mremap-beside operation) */
	if (stats.relocated >= 0)
		printf(", relocated %ld",
		       vmstat_get("mremap_relocate") - stats.relocated);
	if (have.mshare)
		printf(", mshare %ld", stats.mshare);
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
		/* probe CLONE_COW_PTE only if the file uses it */
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
	stats.relocated = vmstat_get("mremap_relocate");
	stats.start = now();
	if (opt.replay)
		replay_file(replay, nreplay);
	else
		fuzz();
	summary();
	free(replay);
	return stats.failures ? 1 : 0;
}
