// SPDX-License-Identifier: GPL-2.0
/*
 * forkbench - fork latency as a function of touched anonymous memory.
 *
 * For each size, maps that much private anonymous memory (4 KiB pages:
 * MADV_NOHUGEPAGE), touches every page, then times fork() (parent side:
 * until fork returns) and fork+exit+wait over several repetitions, and
 * prints the median and spread.  Times are CLOCK_MONOTONIC wall clock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [--sizes MIB,MIB,...] [--reps N] [--csv FILE]\n"
		"\n"
		"Time fork() of a process with SIZE MiB of touched 4 KiB anonymous\n"
		"memory (default sizes 64,256,1024; 5 repetitions each).  Prints one\n"
		"line per size and optionally writes CSV rows:\n"
		"  mode,size_mib,rep,fork_ms,fork_exit_wait_ms\n", prog);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "sizes", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "csv", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *sizes = strdup("64,256,1024");
	const char *csv_path = NULL;
	FILE *csv = NULL;
	int reps = 5, opt;

	while ((opt = getopt_long(argc, argv, "s:r:c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's': sizes = strdup(optarg); break;
		case 'r': reps = atoi(optarg); break;
		case 'c': csv_path = optarg; break;
		case 'h': usage(stdout, argv[0]); return 0;
		default: usage(stderr, argv[0]); return 2;
		}
	}
	if (reps < 1) {
		fprintf(stderr, "forkbench: --reps must be at least 1\n");
		return 2;
	}
	if (csv_path) {
		csv = fopen(csv_path, "w");
		if (!csv) {
			fprintf(stderr, "forkbench: %s: %s\n", csv_path, strerror(errno));
			return 1;
		}
		fprintf(csv, "mode,size_mib,rep,fork_ms,fork_exit_wait_ms\n");
	}

	for (char *tok = strtok(sizes, ","); tok; tok = strtok(NULL, ",")) {
		long mib = atol(tok);
		size_t len = (size_t)mib << 20;
		double *fork_ms = calloc(reps, sizeof(double));
		double *full_ms = calloc(reps, sizeof(double));
		char *p;

		if (mib <= 0) {
			fprintf(stderr, "forkbench: bad size '%s'\n", tok);
			return 2;
		}
		p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			fprintf(stderr, "forkbench: mmap %ld MiB: %s\n", mib, strerror(errno));
			return 1;
		}
		madvise(p, len, MADV_NOHUGEPAGE);
		for (size_t off = 0; off < len; off += 4096)
			p[off] = (char)off;

		for (int r = 0; r < reps; r++) {
			double t0 = now_ms(), t1;
			pid_t pid = fork();
			int status;

			if (pid < 0) {
				fprintf(stderr, "forkbench: fork: %s\n", strerror(errno));
				return 1;
			}
			if (!pid)
				_exit(0);
			t1 = now_ms();
			if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
				fprintf(stderr, "forkbench: child did not exit cleanly\n");
				return 1;
			}
			fork_ms[r] = t1 - t0;
			full_ms[r] = now_ms() - t0;
			if (csv)
				fprintf(csv, "plain,%ld,%d,%.3f,%.3f\n", mib, r,
					fork_ms[r], full_ms[r]);
		}
		qsort(fork_ms, reps, sizeof(double), cmp_double);
		qsort(full_ms, reps, sizeof(double), cmp_double);
		printf("fork %ld MiB: plain %.3f ms (min %.3f, max %.3f); fork+exit+wait %.3f ms\n",
		       mib, fork_ms[reps / 2], fork_ms[0], fork_ms[reps - 1],
		       full_ms[reps / 2]);
		fflush(stdout);
		munmap(p, len);
		free(fork_ms);
		free(full_ms);
	}
	if (csv)
		fclose(csv);
	return 0;
}
