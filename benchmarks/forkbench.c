// SPDX-License-Identifier: GPL-2.0
/*
 * forkbench - fork latency as a function of touched anonymous memory,
 * plain fork() against CoW page-table fork (clone3 with CLONE_COW_PGTABLE),
 * side by side in the same run.
 *
 * For each size, maps that much private anonymous memory, 2 MiB aligned
 * (4 KiB pages: MADV_NOHUGEPAGE, or THPs with --thp), touches every 4 KiB
 * page, then for each repetition runs every selected mode in turn (plain,
 * cow, plain, cow, ... so that drift hits both alike) and times:
 *
 *   fork             the fork call alone, in the parent: from just before
 *                    fork() / cowpt_fork() until it returns in the parent.
 *                    The child blocks reading a pipe until the parent has
 *                    taken its time, so its exit does not overlap.
 *   fork_exit_wait   fork, child _exit(0)s at once, parent waitpid()s.
 *
 * Times are CLOCK_MONOTONIC wall clock; median, min and max are reported.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cowpt.h>

#define SZ_2M		(2UL << 20)
#define PAGE_4K		4096UL
#define MAX_SIZES	64
#define MAX_REPS	100000
#define MAX_MIB		(1L << 20)	/* 1 TiB */

enum { MODE_PLAIN, MODE_COW, NR_MODES };
enum { MET_FORK, MET_FULL, NR_METRICS };

static const char *const mode_name[NR_MODES] = { "plain", "cow" };
static const char *const metric_name[NR_METRICS] = { "fork", "fork_exit_wait" };

static const char *prog = "forkbench";

struct stats {
	double median, min, max;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Sorts v in place.  Median of an even count is the mean of the middle two. */
static struct stats summarize(double *v, int n)
{
	struct stats s;

	qsort(v, n, sizeof(*v), cmp_double);
	s.min = v[0];
	s.max = v[n - 1];
	s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	return s;
}

static const char *errno_name(int err)
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

static void usage(FILE *f)
{
	fprintf(f,
"usage: %s [--modes plain,cow] [--sizes MIB,...] [--reps N] [--thp]\n"
"       %*s [--retouch] [--csv FILE] [--help]\n"
"\n"
"Time fork of a process with SIZE MiB of touched private anonymous memory,\n"
"plain fork() against clone3(CLONE_COW_PGTABLE) (copy-on-write PTE tables),\n"
"side by side in the same run.\n"
"\n"
"For each size the memory is mapped 2 MiB aligned, advised MADV_NOHUGEPAGE\n"
"(4 KiB pages) and every 4 KiB page is written.  Each repetition then runs\n"
"each selected mode in turn (plain, cow, plain, cow, ...) and measures:\n"
"  fork            the fork call alone, in the parent (child blocks on a pipe\n"
"                  until the time is taken, then exits and is reaped)\n"
"  fork_exit_wait  fork, child _exit(0)s at once, parent waits for it\n"
"Times are CLOCK_MONOTONIC wall clock in ms.\n"
"\n"
"Options:\n"
"  --modes LIST   comma-separated subset of plain,cow (default plain,cow).\n"
"                 plain: cowpt_fork(0), i.e. clone3 like fork().  cow: cowpt_fork(CLONE_COW_PGTABLE).\n"
"                 If the CoW fork fails (EINVAL: kernel without\n"
"                 CONFIG_COW_PTE; EOPNOTSUPP: /proc/sys/vm/cow_pte_mode is\n"
"                 off) the error is printed and the exit status is 2; there\n"
"                 is no fallback.  Use --modes plain on such kernels.\n"
"  --sizes LIST   comma-separated sizes in MiB, 1..%ld (default 64,256,1024)\n"
"  --reps N       repetitions per size, mode and metric, 1..%d (default 5)\n"
"  --thp          MADV_HUGEPAGE instead of MADV_NOHUGEPAGE (THP-mapped\n"
"                 memory is never shared by CoW page tables: a control)\n"
"  --retouch      write every page again before each timed fork, so every\n"
"                 fork sees freshly written memory instead of the state the\n"
"                 previous fork left (pages already write-protected)\n"
"  --csv FILE     also write CSV rows, after a header line:\n"
"                   size_mib,mode,metric,median_ms,min_ms,max_ms,reps\n"
"                 metric is fork or fork_exit_wait\n"
"  -h, --help     this text\n"
"\n"
"Output: a '# cow_pte_mode: ...' line, one detail line per size and mode:\n"
"  SIZE MiB MODE: fork median M ms (min A, max B); fork+exit+wait median M ms (min A, max B)\n"
"then, at the end, one line per size (medians of the fork call alone):\n"
"  fork SIZE MiB: plain P ms, cow C ms, ratio R     (R = P/C; both modes)\n"
"  fork SIZE MiB: plain P ms                        (--modes plain)\n"
"  fork SIZE MiB: cow C ms                          (--modes cow)\n"
"\n"
"Exit status: 0 success, 1 runtime failure, 2 bad arguments or CoW fork\n"
"not available.\n",
		prog, (int)strlen(prog), "", MAX_MIB, MAX_REPS);
}

static void __attribute__((noreturn, format(printf, 1, 2))) bad_arg(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(try %s --help)\n", prog);
	exit(2);
}

static long parse_long(const char *s, long lo, long hi, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < lo || v > hi)
		bad_arg("bad %s '%s': want an integer in %ld..%ld", what, s, lo, hi);
	return v;
}

static int parse_sizes(const char *arg, long *sizes)
{
	char *copy = strdup(arg), *save, *tok;
	int n = 0;

	if (!copy) {
		perror("strdup");
		exit(1);
	}
	if (!*arg || arg[0] == ',' || arg[strlen(arg) - 1] == ',' || strstr(arg, ",,"))
		bad_arg("bad --sizes '%s': want a comma-separated list of MiB", arg);
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (n == MAX_SIZES)
			bad_arg("too many --sizes (at most %d)", MAX_SIZES);
		sizes[n++] = parse_long(tok, 1, MAX_MIB, "size (MiB)");
	}
	free(copy);
	return n;
}

static unsigned int parse_modes(const char *arg)
{
	char *copy = strdup(arg), *save, *tok;
	unsigned int mask = 0;

	if (!copy) {
		perror("strdup");
		exit(1);
	}
	if (!*arg || arg[0] == ',' || arg[strlen(arg) - 1] == ',' || strstr(arg, ",,"))
		bad_arg("bad --modes '%s': want plain, cow or plain,cow", arg);
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "plain"))
			mask |= 1u << MODE_PLAIN;
		else if (!strcmp(tok, "cow"))
			mask |= 1u << MODE_COW;
		else
			bad_arg("bad mode '%s' in --modes: want plain or cow", tok);
	}
	free(copy);
	return mask;
}

/* Exits: 2 if the CoW fork is not available, 1 for any other failure. */
static void __attribute__((noreturn)) fork_failed(int mode, int err)
{
	if (mode == MODE_PLAIN) {
		fprintf(stderr, "%s: fork: %s (%s)\n", prog, errno_name(err), strerror(err));
		exit(1);
	}
	fprintf(stderr, "%s: clone3(CLONE_COW_PGTABLE) failed: %s (%s)",
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

static pid_t do_fork(int mode)
{
	return cowpt_fork(mode == MODE_COW ? CLONE_COW_PGTABLE : 0);
}

static void reap(pid_t pid)
{
	int status;
	pid_t r;

	do
		r = waitpid(pid, &status, 0);
	while (r < 0 && errno == EINTR);
	if (r != pid) {
		fprintf(stderr, "%s: waitpid: %s\n", prog, strerror(errno));
		exit(1);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "%s: child did not exit cleanly (status 0x%x)\n",
			prog, status);
		exit(1);
	}
}

/* The fork call alone, parent side; the child lives until it is timed. */
static double time_fork(int mode)
{
	int pfd[2];
	double t0, t1;
	pid_t pid;

	if (pipe(pfd)) {
		fprintf(stderr, "%s: pipe: %s\n", prog, strerror(errno));
		exit(1);
	}
	t0 = now_ms();
	pid = do_fork(mode);
	if (pid < 0) {
		int err = errno;

		close(pfd[0]);
		close(pfd[1]);
		fork_failed(mode, err);
	}
	if (!pid) {
		char c;

		close(pfd[1]);
		while (read(pfd[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	t1 = now_ms();
	close(pfd[0]);
	close(pfd[1]);		/* EOF: the child exits */
	reap(pid);
	return t1 - t0;
}

/* fork, immediate _exit(0) in the child, waitpid in the parent. */
static double time_fork_exit_wait(int mode)
{
	double t0 = now_ms();
	pid_t pid = do_fork(mode);

	if (pid < 0)
		fork_failed(mode, errno);
	if (!pid)
		_exit(0);
	reap(pid);
	return now_ms() - t0;
}

static void touch(char *p, size_t len)
{
	for (size_t off = 0; off < len; off += PAGE_4K)
		((volatile char *)p)[off] = (char)(off >> 12) | 1;
}

/* len bytes of private anonymous memory at a 2 MiB aligned address. */
static char *map_aligned(size_t len)
{
	size_t span = len + SZ_2M;
	char *raw, *p;
	size_t head, tail;

	raw = mmap(NULL, span, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	p = (char *)(((uintptr_t)raw + SZ_2M - 1) & ~(uintptr_t)(SZ_2M - 1));
	head = p - raw;
	tail = span - head - len;
	if (head)
		munmap(raw, head);
	if (tail)
		munmap(p + len, tail);
	return p;
}

static void print_mode(void)
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

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "modes", required_argument, NULL, 'm' },
		{ "sizes", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "thp", no_argument, NULL, 't' },
		{ "retouch", no_argument, NULL, 'R' },
		{ "csv", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	long sizes[MAX_SIZES];
	int nsizes = parse_sizes("64,256,1024", sizes);
	unsigned int modes = (1u << MODE_PLAIN) | (1u << MODE_COW);
	struct stats st[MAX_SIZES][NR_MODES][NR_METRICS];
	const char *csv_path = NULL;
	int reps = 5, thp = 0, retouch = 0, opt;
	double *samples[NR_MODES][NR_METRICS];
	FILE *csv = NULL;

	if (argv[0] && *argv[0]) {
		const char *slash = strrchr(argv[0], '/');

		prog = slash ? slash + 1 : argv[0];
	}
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'm': modes = parse_modes(optarg); break;
		case 's': nsizes = parse_sizes(optarg, sizes); break;
		case 'r': reps = parse_long(optarg, 1, MAX_REPS, "--reps"); break;
		case 't': thp = 1; break;
		case 'R': retouch = 1; break;
		case 'c': csv_path = optarg; break;
		case 'h': usage(stdout); return 0;
		case ':': bad_arg("option '%s' needs an argument", argv[optind - 1]);
		default:
			if (optopt)
				bad_arg("unknown option '-%c'", optopt);
			bad_arg("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		bad_arg("unexpected argument '%s'", argv[optind]);

	for (int m = 0; m < NR_MODES; m++)
		for (int k = 0; k < NR_METRICS; k++) {
			samples[m][k] = calloc(reps, sizeof(double));
			if (!samples[m][k]) {
				perror("calloc");
				return 1;
			}
		}

	if (csv_path) {
		csv = fopen(csv_path, "w");
		if (!csv) {
			fprintf(stderr, "%s: %s: %s\n", prog, csv_path, strerror(errno));
			return 1;
		}
		fprintf(csv, "size_mib,mode,metric,median_ms,min_ms,max_ms,reps\n");
	}

	print_mode();
	fflush(stdout);
	/* Fail early, before mapping gigabytes, if the CoW fork is unavailable. */
	if (modes & (1u << MODE_COW))
		time_fork_exit_wait(MODE_COW);

	for (int i = 0; i < nsizes; i++) {
		long mib = sizes[i];
		size_t len = (size_t)mib << 20;
		char *p = map_aligned(len);

		if (!p) {
			fprintf(stderr, "%s: mmap %ld MiB: %s\n", prog, mib, strerror(errno));
			return 1;
		}
		if (madvise(p, len, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE))
			fprintf(stderr, "%s: warning: madvise(%s): %s\n", prog,
				thp ? "MADV_HUGEPAGE" : "MADV_NOHUGEPAGE", strerror(errno));
		touch(p, len);

		for (int r = 0; r < reps; r++) {
			for (int m = 0; m < NR_MODES; m++) {
				if (!(modes & (1u << m)))
					continue;
				if (retouch)
					touch(p, len);
				samples[m][MET_FORK][r] = time_fork(m);
				if (retouch)
					touch(p, len);
				samples[m][MET_FULL][r] = time_fork_exit_wait(m);
			}
		}

		for (int m = 0; m < NR_MODES; m++) {
			if (!(modes & (1u << m)))
				continue;
			for (int k = 0; k < NR_METRICS; k++) {
				struct stats *s = &st[i][m][k];

				*s = summarize(samples[m][k], reps);
				if (csv)
					fprintf(csv, "%ld,%s,%s,%.3f,%.3f,%.3f,%d\n",
						mib, mode_name[m], metric_name[k],
						s->median, s->min, s->max, reps);
			}
			printf("%ld MiB %s: fork median %.3f ms (min %.3f, max %.3f);"
			       " fork+exit+wait median %.3f ms (min %.3f, max %.3f)\n",
			       mib, mode_name[m],
			       st[i][m][MET_FORK].median, st[i][m][MET_FORK].min,
			       st[i][m][MET_FORK].max,
			       st[i][m][MET_FULL].median, st[i][m][MET_FULL].min,
			       st[i][m][MET_FULL].max);
		}
		fflush(stdout);
		if (csv)
			fflush(csv);
		munmap(p, len);
	}

	for (int i = 0; i < nsizes; i++) {
		double pl = st[i][MODE_PLAIN][MET_FORK].median;
		double cw = st[i][MODE_COW][MET_FORK].median;

		printf("fork %ld MiB: ", sizes[i]);
		if ((modes & (1u << MODE_PLAIN)) && (modes & (1u << MODE_COW))) {
			printf("plain %.3f ms, cow %.3f ms, ", pl, cw);
			if (cw > 0)
				printf("ratio %.1f\n", pl / cw);
			else
				printf("ratio inf\n");
		} else if (modes & (1u << MODE_PLAIN)) {
			printf("plain %.3f ms\n", pl);
		} else {
			printf("cow %.3f ms\n", cw);
		}
	}

	if (csv && fclose(csv)) {
		fprintf(stderr, "%s: %s: %s\n", prog, csv_path, strerror(errno));
		return 1;
	}
	return 0;
}
