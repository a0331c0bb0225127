// SPDX-License-Identifier: GPL-2.0
/*
 * touchbench - the deferred cost of CoW page tables: a fork that shares PTE
 * tables is cheap, but the first write into each shared 2 MiB region after
 * it copies the table.  This measures fork plus the writes that follow it,
 * plain fork() against clone3 with CLONE_COW_PTE, side by side.
 *
 * For each size, maps that much private anonymous memory, 2 MiB aligned,
 * MADV_NOHUGEPAGE (4 KiB pages), and writes every page.  Then, for each
 * repetition, toucher (child, parent), touch percentage and mode (plain,
 * cow, plain, cow, ... so that drift hits both alike):
 *
 *   1. every page of the region is written again (untimed), so that every
 *      fork starts from the same state whatever the previous fork left;
 *   2. fork      the fork call alone, timed in the parent;
 *   3. touch     the toucher writes one byte into PCT percent of the pages,
 *                timed in the toucher (a child sends its time back through
 *                a pipe); the other process stays alive meanwhile, so
 *                every write hits memory (and, with cow, a table) still
 *                shared;
 *   4. while the child is still alive: its VmPTE (/proc/PID/status) and
 *      the change of the system's PageTables (/proc/meminfo) since just
 *      before the fork;
 *   5. the child is released and reaped.
 *
 *   total = fork + touch, per repetition.
 *
 * Which pages are touched (--pattern):
 *   spread  page floor(i * N / K) for i < K (K of the N pages): evenly over
 *           the whole region, every (N/K)th page.  Every 2 MiB table gets a
 *           write as soon as K >= N / 512 (0.2%), so every shared table is
 *           copied: the worst case for CoW page tables, and what scattered
 *           writes (a hash table, a key-value store) do.  The default.
 *   prefix  the first K pages: only ceil(K / 512) tables are written, the
 *           best case (writes clustered in part of the memory).
 *
 * Times are CLOCK_MONOTONIC wall clock; median, min and max are reported.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>

#include "bench_util.h"

#define MAX_SIZES	MAX_LIST
#define MAX_PCTS	MAX_LIST
#define PAGES_PER_TABLE	(PMD_SZ / PG)
#define STAT_REFRESH_PATH	"/proc/sys/vm/stat_refresh"

enum { WHO_CHILD, WHO_PARENT, NR_WHO };
enum { PAT_SPREAD, PAT_PREFIX, NR_PATTERNS };
/*
 * Per repetition: three wall times (ms), two sizes (kB), then the perf
 * software events: CPU time of the fork call and of the touch phase (ms) and
 * the touch phase's page faults, all of the process that did the work.
 */
enum { MET_FORK, MET_TOUCH, MET_TOTAL, NR_TIMES,
       MET_VMPTE = NR_TIMES, MET_PGTABLES,
       MET_FORK_CPU, MET_TOUCH_CPU, MET_TOUCH_FAULTS, NR_METRICS };

/* What the touch phase measured, as the toucher reports it. */
struct touch_result {
	double ms, cpu_ms, faults;
};

static const char *const who_name[NR_WHO] = { "child", "parent" };
static const char *const pattern_name[NR_PATTERNS] = { "spread", "prefix" };
static const char *const time_name[NR_TIMES] = { "fork", "touch", "total" };

struct sample {
	double v[NR_METRICS];
};

/* One measured combination of toucher, percentage (index) and mode. */
struct cell {
	int who, pct, mode;
};

/* What one touch phase writes: K of the N pages at p, in a pattern. */
struct touch_plan {
	char *p;
	size_t npages, k;
	int pattern;
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: %s [--modes plain,cow] [--who child,parent] [--sizes MIB,...]\n"
"       %*s [--pcts PCT,...] [--pattern spread|prefix] [--reps N]\n"
"       %*s [--csv FILE] [--help]\n"
"\n"
"The deferred cost of copy-on-write PTE tables: time fork plus the writes\n"
"that follow it, plain fork() against clone3(CLONE_COW_PTE), side by\n"
"side in the same run.\n"
"\n"
"For each size the memory is mapped 2 MiB aligned, advised MADV_NOHUGEPAGE\n"
"(4 KiB pages) and every 4 KiB page is written.  Each repetition then runs,\n"
"for each toucher, touch percentage and selected mode in turn (plain, cow,\n"
"plain, cow, ...): rewrite every page (untimed, so each fork starts from\n"
"the same state), fork, and let the toucher write one byte into PCT%% of\n"
"the pages while the other process is alive.  It measures:\n"
"  fork     the fork call alone, in the parent\n"
"  touch    the writes, timed by the toucher (a child reports through a pipe)\n"
"  total    fork + touch\n"
"  child_vmpte_kb     the child's VmPTE after the touch phase (child alive)\n"
"  sys_pagetables_kb  /proc/meminfo PageTables after the touch phase minus\n"
"                     before the fork (system-wide, child alive; exact only\n"
"                     as root, who can fold the per-CPU counters first)\n"
"  fork_cpu_ms, touch_cpu_ms, touch_faults\n"
"                     perf software events (perf_event_open of the process\n"
"                     doing the work, this thread only): task-clock of the\n"
"                     fork call (parent) and of the touch phase (toucher),\n"
"                     page-faults of the touch phase.  They need root or\n"
"                     perf_event_paranoid <= 1: without them touchbench fails\n"
"Times are CLOCK_MONOTONIC wall clock in ms.\n"
"\n"
"Options:\n"
"  --modes LIST    comma-separated subset of plain,cow (default plain,cow).\n"
"                  plain: cowpt_fork(0), i.e. clone3 like fork().\n"
"                  cow: cowpt_fork(CLONE_COW_PTE).  If the CoW fork fails\n"
"                  (EINVAL: kernel without CONFIG_COW_PTE; EOPNOTSUPP:\n"
"                  %s is off) the error is printed\n"
"                  and the exit status is 2; there is no fallback.  Use\n"
"                  --modes plain on such kernels.\n"
"  --who LIST      who writes after the fork: comma-separated subset of\n"
"                  child,parent (default child,parent)\n"
"  --sizes LIST    comma-separated sizes in MiB, 1..%ld (default 1024).\n"
"                  (one size per process: the benchmark suite does that)\n"
"  --pcts LIST     comma-separated percentages of the pages to write, 0..100,\n"
"                  decimals allowed (default 0,1,10,50,100); a non-zero\n"
"                  percentage writes at least one page\n"
"  --pattern P     spread (default): every (100/PCT)th page, evenly over the\n"
"                  whole region, so from 0.2%% on every 2 MiB table is written\n"
"                  (worst case for CoW page tables, like scattered writes);\n"
"                  prefix: the first PCT%% of the pages (fewest tables)\n"
"  --reps N        repetitions per size, toucher, percentage and mode,\n"
"                  1..%d (default 5)\n"
"  --csv FILE      also write CSV rows, after a header line:\n"
"                    size_mib,mode,who,pattern,touch_pct,tables_touched,\n"
"                    fork_median_ms,fork_min_ms,fork_max_ms,\n"
"                    touch_median_ms,touch_min_ms,touch_max_ms,\n"
"                    total_median_ms,total_min_ms,total_max_ms,\n"
"                    child_vmpte_kb,sys_pagetables_kb,reps,\n"
"                    fork_cpu_ms,touch_cpu_ms,touch_faults\n"
"                  (one line; the kB and perf columns are medians)\n"
"  -h, --help      this text\n"
"\n"
"Output: '# cow_pte_mode: ...', '# pattern: ...' and '# PageTables: ...'\n"
"lines, one detail line per size, toucher, percentage and mode:\n"
"  SIZE MiB MODE who=W pct=P: fork F ms, touch T ms, total S ms (medians;\n"
"  total min A, max B); child VmPTE V kB, PageTables +D kB, tables touched X/Y;\n"
"  CPU fork C ms, touch U ms, touch faults N\n"
"then, at the end, one line per size, toucher and percentage (medians):\n"
"  touch SIZE MiB who=W pct=P: plain total T ms, cow total C ms, ratio R\n"
"(R = C/T: the price of CoW page tables once the memory is written; with\n"
"--modes plain or cow only the one total is printed).\n"
"\n"
"Check: the CoW forks of a size must have shared every PTE table of the\n"
"region (/proc/vmstat cow_pte_shared), else touchbench fails (exit 1).\n"
"Exit status: 0 success, 1 runtime failure or failed check, 2 bad arguments or CoW fork\n"
"not available.\n",
		prog, (int)strlen(prog), "", (int)strlen(prog), "", COWPT_MODE_PATH,
		MAX_MIB, MAX_REPS);
}

static int parse_pcts(const char *arg, double *pcts)
{
	char *items[MAX_PCTS], *end;
	int n = split_list("--pcts", arg, "a comma-separated list of percentages",
			   items, MAX_PCTS);

	for (int i = 0; i < n; i++) {
		errno = 0;
		pcts[i] = strtod(items[i], &end);
		if (!*items[i] || *end || errno || !(pcts[i] >= 0 && pcts[i] <= 100))
			bad_arg("bad percentage '%s' in --pcts: want a number in 0..100",
				items[i]);
	}
	free(items[0]);
	return n;
}

/* K pages for pct percent of npages: rounded, at least one if pct > 0. */
static size_t pages_for(double pct, size_t npages)
{
	size_t k = (size_t)(pct / 100 * npages + 0.5);

	return pct > 0 && !k ? 1 : k;
}

/* The page written i-th, i < t->k. */
static size_t page_of(const struct touch_plan *t, size_t i)
{
	return t->pattern == PAT_SPREAD ? i * t->npages / t->k : i;
}

/* How many 2 MiB tables the plan writes into. */
static size_t tables_of(const struct touch_plan *t)
{
	size_t n = 0, last = (size_t)-1;

	for (size_t i = 0; i < t->k; i++) {
		size_t table = page_of(t, i) / PAGES_PER_TABLE;

		n += table != last;
		last = table;
	}
	return n;
}

/*
 * The touch phase: one byte into each page of the plan, timed, and counted
 * with the caller's software event counters.
 */
static struct touch_result touch_phase(const struct touch_plan *t,
				       const struct sw_counters *sw)
{
	double c0[NR_SW], c1[NR_SW], t0;
	struct touch_result r;

	sw_read(sw, c0);
	t0 = now_ms();
	for (size_t i = 0; i < t->k; i++)
		((volatile char *)t->p)[page_of(t, i) * PG] = (char)i | 2;
	r.ms = now_ms() - t0;
	sw_read(sw, c1);
	r.cpu_ms = c1[SW_TASK_CLOCK] - c0[SW_TASK_CLOCK];
	r.faults = c1[SW_PAGE_FAULTS] - c0[SW_PAGE_FAULTS];
	return r;
}

/* The "KEY: N kB" value of a /proc file such as status or meminfo. */
static long proc_kb(const char *path, const char *key)
{
	char line[256];
	size_t klen = strlen(key);
	long v = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		die_errno(path);
	while (v < 0 && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':')
			v = strtol(line + klen + 1, NULL, 10);
	fclose(f);
	if (v < 0) {
		fprintf(stderr, "%s: no %s in %s\n", prog, key, path);
		exit(1);
	}
	return v;
}

/*
 * Folds the per-CPU vmstat deltas into the totals /proc/meminfo shows, which
 * otherwise lag by up to a stat threshold per CPU (root only); 1 if done.
 */
static int refresh_vmstat(void)
{
	int fd = open(STAT_REFRESH_PATH, O_WRONLY);
	int ok;

	if (fd < 0)
		return 0;
	ok = write(fd, "1\n", 2) == 2;
	close(fd);
	return ok;
}

/*
 * The system's PageTables.  First waits for an RCU grace period
 * (membarrier MEMBARRIER_CMD_GLOBAL), so that tables the previous child
 * freed are off the counter on kernels that uncount them at RCU free time
 * (6.14 on; 6.12 uncounts at once), then folds the per-CPU counters.
 */
static long sys_pagetables_kb(void)
{
	syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0);
	refresh_vmstat();
	return proc_kb("/proc/meminfo", "PageTables");
}

static long child_vmpte_kb(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	return proc_kb(path, "VmPTE");
}

/*
 * The forked child: touches if it is the toucher and writes what it
 * measured to up, then stays alive until down reaches EOF.
 */
static void __attribute__((noreturn))
child_main(const struct touch_plan *t, int who, int up, int down)
{
	if (who == WHO_CHILD) {
		struct sw_counters sw;
		struct touch_result r;

		sw_open(&sw);
		r = touch_phase(t, &sw);
		if (write(up, &r, sizeof(r)) != sizeof(r))
			_exit(1);
	}
	wait_fd(down);
	_exit(0);
}

/* The child's touch result from fd; exits if the child died first. */
static struct touch_result read_child_result(int fd)
{
	struct touch_result r;
	ssize_t n;

	do
		n = read(fd, &r, sizeof(r));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		die_errno("read from child");
	if (n != sizeof(r)) {
		fprintf(stderr, "%s: child exited before reporting its touch time\n", prog);
		exit(1);
	}
	return r;
}

/*
 * One fork and touch phase; the region is rewritten first.  sw: the
 * parent's counters.
 */
static void run_once(const struct touch_plan *t, int mode, int who,
		     const struct sw_counters *sw, struct sample *s)
{
	int up[2], down[2];	/* child -> parent: touch result; parent -> child: EOF */
	double t0, c0[NR_SW], c1[NR_SW];
	struct touch_result r;
	long pt0;
	pid_t pid;

	touch(t->p, t->npages * PG);
	if (pipe(up) || pipe(down))
		die_errno("pipe");
	pt0 = sys_pagetables_kb();
	sw_read(sw, c0);
	t0 = now_ms();
	pid = do_fork(mode);
	if (!pid) {
		close(up[0]);
		close(down[1]);
		child_main(t, who, up[1], down[0]);
	}
	s->v[MET_FORK] = now_ms() - t0;
	sw_read(sw, c1);
	s->v[MET_FORK_CPU] = c1[SW_TASK_CLOCK] - c0[SW_TASK_CLOCK];
	close(up[1]);
	close(down[0]);
	if (who == WHO_PARENT)
		r = touch_phase(t, sw);
	else
		r = read_child_result(up[0]);
	s->v[MET_TOUCH] = r.ms;
	s->v[MET_TOUCH_CPU] = r.cpu_ms;
	s->v[MET_TOUCH_FAULTS] = r.faults;
	s->v[MET_TOTAL] = s->v[MET_FORK] + s->v[MET_TOUCH];
	s->v[MET_VMPTE] = child_vmpte_kb(pid);
	s->v[MET_PGTABLES] = sys_pagetables_kb() - pt0;
	close(down[1]);		/* EOF: the child exits */
	close(up[0]);
	reap(pid);
}

/* The selected combinations, in run order (modes alternate); returns the count. */
static int make_cells(struct cell *cells, unsigned int whos, int npcts,
		      unsigned int modes)
{
	int n = 0;

	for (int w = 0; w < NR_WHO; w++)
		for (int p = 0; p < npcts && (whos >> w & 1); p++)
			for (int m = 0; m < NR_MODES; m++)
				if (modes >> m & 1)
					cells[n++] = (struct cell){ w, p, m };
	return n;
}

/* Metric k of samples[reps], summarized (scratch: reps doubles). */
static struct stats metric_stats(const struct sample *samples, int reps, int k,
				 double *scratch)
{
	for (int r = 0; r < reps; r++)
		scratch[r] = samples[r].v[k];
	return summarize(scratch, reps);
}

/*
 * Reports samples[reps] of one size and cell, whose touch phase was t and
 * percentage pct: a detail line, a CSV row; returns the median total.
 */
static double report(FILE *csv, long mib, const struct cell *c, double pct,
		     const struct touch_plan *t, const struct sample *samples,
		     int reps, double *scratch)
{
	int mode = c->mode, who = c->who;
	struct stats st[NR_METRICS];
	size_t tables = tables_of(t);

	for (int k = 0; k < NR_METRICS; k++)
		st[k] = metric_stats(samples, reps, k, scratch);
	printf("%ld MiB %s who=%s pct=%g: fork %.3f ms, touch %.3f ms, total %.3f ms"
	       " (medians; total min %.3f, max %.3f); child VmPTE %.0f kB,"
	       " PageTables %+.0f kB, tables touched %zu/%zu; CPU fork %.3f ms,"
	       " touch %.3f ms, touch faults %.0f\n",
	       mib, mode_name[mode], who_name[who], pct,
	       st[MET_FORK].median, st[MET_TOUCH].median, st[MET_TOTAL].median,
	       st[MET_TOTAL].min, st[MET_TOTAL].max, st[MET_VMPTE].median,
	       st[MET_PGTABLES].median, tables,
	       (t->npages + PAGES_PER_TABLE - 1) / PAGES_PER_TABLE,
	       st[MET_FORK_CPU].median, st[MET_TOUCH_CPU].median,
	       st[MET_TOUCH_FAULTS].median);
	if (csv) {
		fprintf(csv, "%ld,%s,%s,%s,%g,%zu", mib, mode_name[mode],
			who_name[who], pattern_name[t->pattern], pct, tables);
		for (int k = 0; k < NR_TIMES; k++)
			fprintf(csv, ",%.3f,%.3f,%.3f",
				st[k].median, st[k].min, st[k].max);
		fprintf(csv, ",%.0f,%.0f,%d,%.3f,%.3f,%.0f\n", st[MET_VMPTE].median,
			st[MET_PGTABLES].median, reps, st[MET_FORK_CPU].median,
			st[MET_TOUCH_CPU].median, st[MET_TOUCH_FAULTS].median);
	}
	return st[MET_TOTAL].median;
}

static void print_final(long mib, int who, double pct, unsigned int modes,
			const double *total)
{
	int both = (modes >> MODE_PLAIN & 1) && (modes >> MODE_COW & 1);

	printf("touch %ld MiB who=%s pct=%g:", mib, who_name[who], pct);
	for (int m = 0; m < NR_MODES; m++)
		if (modes >> m & 1)
			printf("%s %s total %.3f ms", m && both ? "," : "",
			       mode_name[m], total[m]);
	if (both && total[MODE_PLAIN] > 0)
		printf(", ratio %.2f", total[MODE_COW] / total[MODE_PLAIN]);
	else if (both)
		printf(", ratio inf");
	printf("\n");
}

static char *csv_header(void)
{
	static char buf[512] = "size_mib,mode,who,pattern,touch_pct,tables_touched";

	for (int k = 0; k < NR_TIMES; k++)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf),
			 ",%s_median_ms,%s_min_ms,%s_max_ms",
			 time_name[k], time_name[k], time_name[k]);
	strcat(buf, ",child_vmpte_kb,sys_pagetables_kb,reps,fork_cpu_ms,"
	       "touch_cpu_ms,touch_faults");
	return buf;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "modes", required_argument, NULL, 'm' },
		{ "who", required_argument, NULL, 'w' },
		{ "sizes", required_argument, NULL, 's' },
		{ "pcts", required_argument, NULL, 'p' },
		{ "pattern", required_argument, NULL, 'P' },
		{ "reps", required_argument, NULL, 'r' },
		{ "csv", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	/* median totals for the final lines */
	static double final[MAX_SIZES][NR_WHO][MAX_PCTS][NR_MODES];
	long sizes[MAX_SIZES];
	double pcts[MAX_PCTS];
	int nsizes, npcts, reps = 5, pattern = PAT_SPREAD, opt;
	unsigned int modes = (1u << MODE_PLAIN) | (1u << MODE_COW);
	unsigned int whos = (1u << WHO_CHILD) | (1u << WHO_PARENT);
	const char *csv_path = NULL;
	struct cell cells[NR_WHO * MAX_PCTS * NR_MODES];
	struct sample *samples;
	struct sw_counters sw;
	double *scratch;
	int ncells;
	FILE *csv;

	set_prog(argv[0], "touchbench");
	nsizes = parse_sizes("1024", sizes);
	npcts = parse_pcts("0,1,10,50,100", pcts);
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'm': modes = parse_mask("--modes", optarg, mode_name, NR_MODES); break;
		case 'w': whos = parse_mask("--who", optarg, who_name, NR_WHO); break;
		case 's': nsizes = parse_sizes(optarg, sizes); break;
		case 'p': npcts = parse_pcts(optarg, pcts); break;
		case 'P': pattern = parse_name("--pattern", optarg, pattern_name,
					       NR_PATTERNS); break;
		case 'r': reps = parse_long(optarg, 1, MAX_REPS, "--reps"); break;
		case 'c': csv_path = optarg; break;
		case 'h': usage(stdout); return 0;
		default: bad_option(opt, argv);
		}
	}
	no_operands(argc, argv);

	ncells = make_cells(cells, whos, npcts, modes);
	/* samples[cell * reps + rep] */
	samples = xcalloc((size_t)ncells * reps, sizeof(*samples));
	scratch = xcalloc(reps, sizeof(*scratch));
	csv = csv_open(csv_path, csv_header());
	sw_open(&sw);

	start_report(modes);
	printf("# pattern: %s\n", pattern == PAT_SPREAD ?
	       "spread (every (100/PCT)th page over the whole region)" :
	       "prefix (the first PCT% of the pages)");
	printf("# PageTables: %s\n", refresh_vmstat() ? "exact (" STAT_REFRESH_PATH
	       " written before each read)" : "approximate (per-CPU counter drift: "
	       "cannot write " STAT_REFRESH_PATH ", not root)");
	fflush(stdout);

	for (int i = 0; i < nsizes; i++) {
		long mib = sizes[i];
		struct touch_plan plan = {
			.p = map_region(mib, 0),
			.npages = ((size_t)mib << 20) / PG,
			.pattern = pattern,
		};

		long shared0 = vmstat_get("cow_pte_shared"), cow_forks = 0;

		for (int r = 0; r < reps; r++)
			for (int c = 0; c < ncells; c++) {
				plan.k = pages_for(pcts[cells[c].pct], plan.npages);
				run_once(&plan, cells[c].mode, cells[c].who, &sw,
					 &samples[c * reps + r]);
				cow_forks += cells[c].mode == MODE_COW;
			}
		check_shared(shared0, cow_forks * (long)(((size_t)mib << 20) / PMD_SZ),
			     "touchbench");
		for (int c = 0; c < ncells; c++) {
			const struct cell *cl = &cells[c];

			plan.k = pages_for(pcts[cl->pct], plan.npages);
			final[i][cl->who][cl->pct][cl->mode] =
				report(csv, mib, cl, pcts[cl->pct], &plan,
				       &samples[c * reps], reps, scratch);
		}
		fflush(stdout);
		if (csv)
			fflush(csv);
		munmap(plan.p, plan.npages * PG);
	}

	for (int i = 0; i < nsizes; i++)
		for (int w = 0; w < NR_WHO; w++)
			for (int p = 0; p < npcts && (whos >> w & 1); p++)
				print_final(sizes[i], w, pcts[p], modes, final[i][w][p]);

	sw_close(&sw);
	csv_close(csv, csv_path);
	return 0;
}
