/* SPDX-License-Identifier: GPL-2.0 */
/*
 * bench_util.h - helpers shared by the cowpt benchmarks (forkbench,
 * touchbench): timing and statistics, option parsing with exit status 2 on
 * bad arguments, plain and CoW fork with loud failure (no fallback), and the
 * 2 MiB aligned, fully written anonymous region they measure.  What the
 * selftests use too is in include/cowpt_common.h.
 *
 * Each program sets prog (set_prog()) before it reports anything.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/perf_event.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cowpt.h>
#include <cowpt_common.h>

#define MAX_REPS	100000
#define MAX_MIB		(1L << 20)	/* 1 TiB */
#define MAX_LIST	64		/* items in one comma-separated option */

enum { MODE_PLAIN, MODE_COW, NR_MODES };

static const char *const mode_name[NR_MODES] = { "plain", "cow" };

static const char *prog = "bench";

struct stats {
	double median, min, max;
};

/* prog = basename of argv0, or fallback if there is none. */
static inline void set_prog(const char *argv0, const char *fallback)
{
	const char *slash;

	prog = fallback;
	if (argv0 && *argv0) {
		slash = strrchr(argv0, '/');
		prog = slash ? slash + 1 : argv0;
	}
}

static inline double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Sorts v in place.  Median of an even count is the mean of the middle two. */
static inline struct stats summarize(double *v, int n)
{
	struct stats s;

	qsort(v, n, sizeof(*v), cmp_double);
	s.min = v[0];
	s.max = v[n - 1];
	s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	return s;
}

static inline const char *errno_name(int err)
{
	switch (err) {
	case EINVAL:	return "EINVAL";
	case EOPNOTSUPP:	return "EOPNOTSUPP";
	case ENOSYS:	return "ENOSYS";
	case ENOMEM:	return "ENOMEM";
	case EAGAIN:	return "EAGAIN";
	case EPERM:	return "EPERM";
	case E2BIG:	return "E2BIG";
	case EFAULT:	return "EFAULT";
	default:	return "errno";
	}
}

/* "prog: what: strerror(errno)" and exit status 1. */
static inline void __attribute__((noreturn)) die_errno(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
	exit(1);
}

static inline void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (!p)
		die_errno("calloc");
	return p;
}

static inline void __attribute__((noreturn, format(printf, 1, 2)))
bad_arg(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(try %s --help)\n", prog);
	exit(2);
}

/* The error for what getopt_long() returned as opt ('?' or ':'). */
static inline void __attribute__((noreturn)) bad_option(int opt, char **argv)
{
	if (opt == ':')
		bad_arg("option '%s' needs an argument", argv[optind - 1]);
	if (optopt)
		bad_arg("unknown option '-%c'", optopt);
	bad_arg("unknown option '%s'", argv[optind - 1]);
}

static inline long parse_long(const char *s, long lo, long hi, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < lo || v > hi)
		bad_arg("bad %s '%s': want an integer in %ld..%ld", what, s, lo, hi);
	return v;
}

/*
 * Splits the comma-separated value arg of option opt into at most max items
 * (want describes a good value, for the error).  The items point into one
 * allocation, freed with free(items[0]).  Returns the number of items.
 */
static inline int split_list(const char *opt, const char *arg, const char *want,
			     char **items, int max)
{
	char *copy, *save, *tok;
	int n = 0;

	if (!*arg || arg[0] == ',' || arg[strlen(arg) - 1] == ',' || strstr(arg, ",,"))
		bad_arg("bad %s '%s': want %s", opt, arg, want);
	copy = strdup(arg);
	if (!copy)
		die_errno("strdup");
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (n == max)
			bad_arg("too many %s (at most %d)", opt, max);
		items[n++] = tok;
	}
	return n;
}

/* Comma-separated sizes in MiB, 1..MAX_MIB, into sizes[MAX_LIST]. */
static inline int parse_sizes(const char *arg, long *sizes)
{
	char *items[MAX_LIST];
	int n = split_list("--sizes", arg, "a comma-separated list of MiB",
			   items, MAX_LIST);

	for (int i = 0; i < n; i++)
		sizes[i] = parse_long(items[i], 1, MAX_MIB, "size (MiB)");
	free(items[0]);
	return n;
}

/* "a, b, c": names[n] joined, into buf[size]. */
static inline const char *join_names(const char *const *names, int n,
				     char *buf, size_t size)
{
	buf[0] = 0;
	for (int i = 0; i < n; i++)
		snprintf(buf + strlen(buf), size - strlen(buf), "%s%s",
			 i ? ", " : "", names[i]);
	return buf;
}

/* The index of s in names[n]; a bad value of option opt is an error. */
static inline int parse_name(const char *opt, const char *s,
			     const char *const *names, int n)
{
	char buf[256];

	for (int i = 0; i < n; i++)
		if (!strcmp(s, names[i]))
			return i;
	bad_arg("bad value '%s' for %s: want one of %s", s, opt,
		join_names(names, n, buf, sizeof(buf)));
}

/* A comma-separated subset of names[n] as a bit mask (bit i: names[i]). */
static inline unsigned int parse_mask(const char *opt, const char *arg,
				      const char *const *names, int n)
{
	char *items[MAX_LIST], want[300] = "a comma-separated subset of ";
	unsigned int mask = 0;
	int k;

	join_names(names, n, want + strlen(want), sizeof(want) - strlen(want));
	k = split_list(opt, arg, want, items, MAX_LIST);
	for (int i = 0; i < k; i++)
		mask |= 1u << parse_name(opt, items[i], names, n);
	free(items[0]);
	return mask;
}

/* Exits: 2 if the CoW fork is not available, 1 for any other failure. */
static inline void __attribute__((noreturn)) fork_failed(int mode, int err)
{
	if (mode == MODE_PLAIN) {
		fprintf(stderr, "%s: fork: %s (%s)\n", prog, errno_name(err), strerror(err));
		exit(1);
	}
	fprintf(stderr, "%s: clone3(CLONE_COW_PTE) failed: %s (%s)",
		prog, errno_name(err), strerror(err));
	switch (err) {
	case EINVAL:
		fprintf(stderr, ": the running kernel does not support CoW page tables"
			" (no CONFIG_COW_PTE)");
		break;
	case EOPNOTSUPP:
		fprintf(stderr, ": CoW page tables are disabled (%s is \"off\";"
			" write opt-in or always to it)", COWPT_MODE_PATH);
		break;
	case ENOSYS:
		fprintf(stderr, ": the running kernel has no clone3()");
		break;
	default:
		fprintf(stderr, "\n");
		exit(1);
	}
	fprintf(stderr, ".\n%s: no fallback to plain fork; use --modes plain to"
		" measure plain fork only.\n", prog);
	exit(2);
}

/* fork() like cowpt_fork(); a failure is reported and exits (fork_failed). */
static inline pid_t do_fork(int mode)
{
	pid_t pid = cowpt_fork(mode == MODE_COW ? CLONE_COW_PTE : 0);

	if (pid < 0)
		fork_failed(mode, errno);
	return pid;
}

/* Waits for pid, which must exit with status 0. */
static inline void reap(pid_t pid)
{
	int code = wait_code(pid);

	if (code < 0)
		die_errno("waitpid");
	if (code) {
		fprintf(stderr, "%s: child did not exit cleanly (%s %d)\n", prog,
			code > 128 ? "signal" : "exit status",
			code > 128 ? code - 128 : code);
		exit(1);
	}
}

/* fork, immediate _exit(0) in the child, waitpid in the parent: ms. */
static inline double fork_exit_wait(int mode)
{
	double t0 = now_ms();
	pid_t pid = do_fork(mode);

	if (!pid)
		_exit(0);
	reap(pid);
	return now_ms() - t0;
}

/* Blocks until fd has data or is at EOF (the other end closed). */
static inline void wait_fd(int fd)
{
	char c;

	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
}

/*
 * Software event counters of the calling thread only (no inherit: a forked
 * child opens its own): task-clock (ns on CPU) and page-faults.  They count
 * kernel work too, which needs root or perf_event_paranoid <= 1: failing to
 * open them is fatal, so a run never reports numbers it did not measure.
 */
enum { SW_TASK_CLOCK, SW_PAGE_FAULTS, NR_SW };

struct sw_counters {
	int fd[NR_SW];
};

static inline void sw_open(struct sw_counters *c)
{
	static const unsigned long long config[NR_SW] = {
		[SW_TASK_CLOCK]		= PERF_COUNT_SW_TASK_CLOCK,
		[SW_PAGE_FAULTS]	= PERF_COUNT_SW_PAGE_FAULTS,
	};

	for (int i = 0; i < NR_SW; i++) {
		struct perf_event_attr a = {
			.type	= PERF_TYPE_SOFTWARE,
			.size	= sizeof(a),
			.config	= config[i],
		};

		c->fd[i] = syscall(__NR_perf_event_open, &a, 0, -1, -1,
				   PERF_FLAG_FD_CLOEXEC);
		if (c->fd[i] < 0)
			die_errno("perf_event_open of a software event (needs root or "
				  "/proc/sys/kernel/perf_event_paranoid <= 1)");
	}
}

/* The counters' values: task-clock in ms, page-faults as a count. */
static inline void sw_read(const struct sw_counters *c, double *v)
{
	for (int i = 0; i < NR_SW; i++) {
		uint64_t n;

		if (read(c->fd[i], &n, sizeof(n)) != sizeof(n))
			die_errno("read of a perf counter");
		v[i] = i == SW_TASK_CLOCK ? n / 1e6 : (double)n;
	}
}

static inline void sw_close(struct sw_counters *c)
{
	for (int i = 0; i < NR_SW; i++)
		close(c->fd[i]);
}

/* Writes every 4 KiB page of p[len]. */
static inline void touch(char *p, size_t len)
{
	for (size_t off = 0; off < len; off += PG)
		((volatile char *)p)[off] = (char)(off >> 12) | 1;
}

/*
 * mib MiB mapped 2 MiB aligned, advised MADV_NOHUGEPAGE (4 KiB pages) or
 * MADV_HUGEPAGE (thp), every 4 KiB page written.  Exits if mmap fails.
 */
static inline char *map_region(long mib, int thp)
{
	size_t len = (size_t)mib << 20;
	char *p = map_at_phase_flags(len, 0, 0);

	if (!p) {
		fprintf(stderr, "%s: mmap %ld MiB: %s\n", prog, mib, strerror(errno));
		exit(1);
	}
	if (madvise(p, len, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE))
		fprintf(stderr, "%s: warning: madvise(%s): %s\n", prog,
			thp ? "MADV_HUGEPAGE" : "MADV_NOHUGEPAGE", strerror(errno));
	touch(p, len);
	return p;
}

/* Prints "# cow_pte_mode: ..."; warns if plain fork is not a stock baseline. */
static inline void print_mode(void)
{
	char buf[64] = "";
	FILE *f = fopen(COWPT_MODE_PATH, "r");

	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
		buf[strcspn(buf, "\n")] = 0;
	}
	printf("# cow_pte_mode: %s\n", f ? buf : "(absent: kernel without CoW page tables)");
	if (f && !strcmp(buf, "always"))
		fprintf(stderr, "%s: warning: cow_pte_mode is \"always\": plain fork()"
			" shares page tables too, so plain is not a stock baseline\n", prog);
}

/*
 * The start of a report: the '# cow_pte_mode' line, flushed; then, if the
 * CoW fork is one of modes, one such fork, so that a kernel without it
 * fails early (exit 2), before gigabytes are mapped.
 */
static inline void start_report(unsigned int modes)
{
	print_mode();
	fflush(stdout);
	if (modes & (1u << MODE_COW))
		fork_exit_wait(MODE_COW);
}

/*
 * After CoW forks that should have shared at least @want PTE tables since
 * /proc/vmstat cow_pte_shared read @before: exits 1 if they did not, rather
 * than report copying forks as CoW forks.  Causes: a table that holds a
 * pinned page (cow_pte_pinned), a mapping that is not private anonymous
 * memory, a process with mmu notifiers.
 */
static inline void check_shared(long before, long want, const char *what)
{
	long got = vmstat_get("cow_pte_shared") - before;

	if (before < 0 || got >= want)
		return;
	fprintf(stderr, "%s: %s: the CoW forks shared %ld PTE tables, expected at"
		" least %ld (/proc/vmstat cow_pte_shared).  A table that holds a"
		" pinned page (an io_uring fixed buffer, O_DIRECT in flight;"
		" cow_pte_pinned) is copied at fork; these numbers would be plain"
		" forks.\n", prog, what, got, want);
	exit(1);
}

/* Operands after the options (optind) are an error. */
static inline void no_operands(int argc, char **argv)
{
	if (optind < argc)
		bad_arg("unexpected argument '%s'", argv[optind]);
}

/* Opens path for writing and writes the header line; NULL path: NULL. */
static inline FILE *csv_open(const char *path, const char *header)
{
	FILE *f;

	if (!path)
		return NULL;
	f = fopen(path, "w");
	if (!f)
		die_errno(path);
	fprintf(f, "%s\n", header);
	return f;
}

/* Closes f (if any) and exits with status 1 if a write failed. */
static inline void csv_close(FILE *f, const char *path)
{
	if (f && fclose(f))
		die_errno(path);
}

#endif /* BENCH_UTIL_H */
