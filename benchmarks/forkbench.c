// SPDX-License-Identifier: GPL-2.0
/*
 * forkbench - fork latency as a function of touched anonymous memory,
 * plain fork() against CoW page-table fork (clone3 with CLONE_COW_PTE),
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

#include "bench_util.h"

#define MAX_SIZES	MAX_LIST

enum { MET_FORK, MET_FULL, NR_METRICS };

static const char *const metric_name[NR_METRICS] = { "fork", "fork_exit_wait" };

static void usage(FILE *f)
{
	fprintf(f,
"usage: %s [--modes plain,cow] [--sizes MIB,...] [--reps N] [--thp]\n"
"       %*s [--retouch] [--csv FILE] [--help]\n"
"\n"
"Time fork of a process with SIZE MiB of touched private anonymous memory,\n"
"plain fork() against clone3(CLONE_COW_PTE) (copy-on-write PTE tables),\n"
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
"                 plain: cowpt_fork(0), i.e. clone3 like fork().  cow: cowpt_fork(CLONE_COW_PTE).\n"
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
"Check: the CoW forks of a size (4 KiB pages) must have shared every PTE\n"
"table of the region (/proc/vmstat cow_pte_shared); if not (a table that\n"
"holds a pinned page is copied) forkbench fails rather than report\n"
"copying forks as CoW forks.\n"
"Exit status: 0 success, 1 runtime failure or failed check, 2 bad arguments\n"
"or CoW fork not available.\n",
		prog, (int)strlen(prog), "", MAX_MIB, MAX_REPS);
}

/* The fork call alone, parent side; the child lives until it is timed. */
static double time_fork(int mode)
{
	int pfd[2];
	double t0, t1;
	pid_t pid;

	if (pipe(pfd))
		die_errno("pipe");
	t0 = now_ms();
	pid = do_fork(mode);
	if (!pid) {
		close(pfd[1]);
		wait_fd(pfd[0]);
		_exit(0);
	}
	t1 = now_ms();
	close(pfd[0]);
	close(pfd[1]);		/* EOF: the child exits */
	reap(pid);
	return t1 - t0;
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

	set_prog(argv[0], "forkbench");
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'm': modes = parse_mask("--modes", optarg, mode_name, NR_MODES); break;
		case 's': nsizes = parse_sizes(optarg, sizes); break;
		case 'r': reps = parse_long(optarg, 1, MAX_REPS, "--reps"); break;
		case 't': thp = 1; break;
		case 'R': retouch = 1; break;
		case 'c': csv_path = optarg; break;
		case 'h': usage(stdout); return 0;
		default: bad_option(opt, argv);
		}
	}
	no_operands(argc, argv);

	for (int m = 0; m < NR_MODES; m++)
		for (int k = 0; k < NR_METRICS; k++)
			samples[m][k] = xcalloc(reps, sizeof(double));
	csv = csv_open(csv_path, "size_mib,mode,metric,median_ms,min_ms,max_ms,reps");

	start_report(modes);

	for (int i = 0; i < nsizes; i++) {
		long mib = sizes[i];
		size_t len = (size_t)mib << 20;
		char *p = map_region(mib, thp);
		long shared0 = vmstat_get("cow_pte_shared");

		for (int r = 0; r < reps; r++) {
			for (int m = 0; m < NR_MODES; m++) {
				if (!(modes & (1u << m)))
					continue;
				if (retouch)
					touch(p, len);
				samples[m][MET_FORK][r] = time_fork(m);
				if (retouch)
					touch(p, len);
				samples[m][MET_FULL][r] = fork_exit_wait(m);
			}
		}

		/* two CoW forks per repetition, each sharing every table */
		if ((modes & (1u << MODE_COW)) && !thp)
			check_shared(shared0, 2L * reps * (long)(len / PMD_SZ), "forkbench");
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

	csv_close(csv, csv_path);
	return 0;
}
