// SPDX-License-Identifier: GPL-2.0
/*
 * msharebench - what N processes that map one region pay in page tables,
 * page faults and time: through msharefs (one set of page tables for all)
 * and as a plain MAP_SHARED memfd (a set per process), side by side in
 * one boot.
 *
 * For each N (1, 16, 64, 256) and each way: N processes are forked and
 * wait; /proc/meminfo PageTables is read (system-wide, so no accounting
 * choice can hide a table).  The first process maps the region and writes
 * every 4 KiB page; then the other N - 1 map it and read every page, all
 * at once.  Everyone still mapped, PageTables is read again: the growth
 * is the page-table memory of the region in N processes.  Page faults are
 * each process's own (getrusage), time is the wall time of the first
 * process and of the N - 1 others.
 *
 * Fails rather than report a number if the region was not shared (an
 * mshare process that faults about once per page instead of once per
 * GiB) or a process read something the first did not write.  Needs root
 * (mount of msharefs).
 */
#define _GNU_SOURCE
#include "bench_util.h"

#include <fcntl.h>
#include <linux/msharefs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/vfs.h>

#define MSHARE_DIR	"/sys/fs/mshare"
#define MSHARE_MAGIC	0x4d534852
#define SHMEM_THP	"/sys/kernel/mm/transparent_hugepage/shmem_enabled"

enum { WAY_PLAIN, WAY_MSHARE, NR_WAYS };
static const char *const way_name[NR_WAYS] = { "plain", "mshare" };

/* What a process sends back after mapping and touching the region. */
struct proc_report {
	long faults;	/* minor + major, while mapping and touching */
	long bad;	/* pages that did not read what the first wrote */
	int err;	/* errno of a failed mmap, or 0 */
};

struct result {
	long procs;
	long pt_kib;		/* PageTables growth */
	long faults_first;	/* the process that wrote every page */
	long faults_rest;	/* the others, together */
	double first_ms, rest_ms;
};

static long faults_now(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt + ru.ru_majflt;
}

static long pagetables_kib(void)
{
	char buf[8192];
	long kb = -1;

	if (read_text("/proc/meminfo", buf, sizeof(buf)) >= 0)
		kb = line_value(buf, "PageTables", ':');
	if (kb < 0)
		die_errno("/proc/meminfo PageTables");
	return kb;
}

/* The region's object as an fd that maps it: a memfd or an msharefs file. */
static int object_open(int way, size_t len)
{
	struct mshare_create mc = {
		.size = len,
		.prot = PROT_READ | PROT_WRITE,
		.flags = MAP_SHARED | MAP_FIXED | MAP_ANONYMOUS,
	};
	char path[64];
	int fd;

	if (way == WAY_PLAIN) {
		fd = memfd_create("msharebench", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, len))
			die_errno("memfd");
		return fd;
	}
	snprintf(path, sizeof(path), MSHARE_DIR "/msharebench-%d", getpid());
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		die_errno(path);
	/* the fd keeps the region */
	if (unlink(path) || ftruncate(fd, len))
		die_errno("msharefs region");
	if (ioctl(fd, MSHAREFS_CREATE_MAPPING, &mc))
		die_errno("MSHAREFS_CREATE_MAPPING");
	return fd;
}

/*
 * One of the N processes: wait for @go, map @fd, write every page (the
 * first) or read every page and check it, report on @rep, and keep the
 * mapping until @end is closed.
 */
static void __attribute__((noreturn))
proc_main(int fd, size_t len, int first, int go, int rep, int end)
{
	struct proc_report r = { 0 };
	char *p;
	long f0;

	wait_fd(go);
	f0 = faults_now();
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		r.err = errno;
	} else if (first) {
		touch(p, len);
	} else {
		for (size_t off = 0; off < len; off += PG)
			if (((volatile char *)p)[off] != ((char)(off >> 12) | 1))
				r.bad++;
	}
	r.faults = faults_now() - f0;
	if (write(rep, &r, sizeof(r)) != sizeof(r))
		_exit(1);
	wait_fd(end);
	_exit(0);
}

static void read_report(int rep, struct proc_report *r, const char *way)
{
	if (read(rep, r, sizeof(*r)) != sizeof(*r))
		die_errno("a process's report");
	if (r->err) {
		errno = r->err;
		fprintf(stderr, "%s: %s: mmap of the region: %s\n", prog, way,
			strerror(errno));
		exit(1);
	}
	if (r->bad) {
		fprintf(stderr, "%s: %s: %ld pages did not read what the first process wrote\n",
			prog, way, r->bad);
		exit(1);
	}
}

/*
 * Wait until PageTables is back to @kib (and a little): a region's tables
 * are freed by a worker after its last reference, and must not be counted
 * in the next measurement.
 */
static void settle(long kib)
{
	for (int i = 0; i < 1000; i++) {
		if (pagetables_kib() <= kib + 256)
			return;
		usleep(10000);
	}
	fprintf(stderr, "%s: PageTables still %ld KiB above where it was before the run,"
		" 10 s after every process exited\n", prog, pagetables_kib() - kib);
	exit(1);
}

static void run(int way, long procs, size_t len, struct result *res)
{
	int go_first[2], go_rest[2], rep[2], end[2];
	struct proc_report r;
	long pt0, pt_before = pagetables_kib();
	pid_t *pids = xcalloc(procs, sizeof(*pids));
	int fd = object_open(way, len);
	double t0;

	if (pipe(go_first) || pipe(go_rest) || pipe(rep) || pipe(end))
		die_errno("pipe");
	for (long i = 0; i < procs; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			die_errno("fork");
		if (!pids[i]) {
			close(go_first[1]);
			close(go_rest[1]);
			close(end[1]);
			proc_main(fd, len, i == 0, i ? go_rest[0] : go_first[0],
				  rep[1], end[0]);
		}
	}
	close(end[0]);
	close(rep[1]);

	memset(res, 0, sizeof(*res));
	res->procs = procs;
	pt0 = pagetables_kib();

	t0 = now_ms();
	close(go_first[1]);			/* the first one goes */
	read_report(rep[0], &r, way_name[way]);
	res->first_ms = now_ms() - t0;
	res->faults_first = r.faults;

	t0 = now_ms();
	close(go_rest[1]);			/* then everyone else */
	for (long i = 1; i < procs; i++) {
		read_report(rep[0], &r, way_name[way]);
		res->faults_rest += r.faults;
	}
	res->rest_ms = now_ms() - t0;
	res->pt_kib = pagetables_kib() - pt0;

	close(end[1]);				/* all detach and exit */
	for (long i = 0; i < procs; i++)
		reap(pids[i]);
	close(rep[0]);
	close(go_first[0]);
	close(go_rest[0]);
	close(fd);
	free(pids);
	settle(pt_before);
}

/* msharefs mounted at MSHARE_DIR; its alignment. */
static long mshare_setup(void)
{
	struct statfs sf;
	char buf[32];

	if ((statfs(MSHARE_DIR, &sf) || sf.f_type != MSHARE_MAGIC) &&
	    mount("none", MSHARE_DIR, "msharefs", 0, NULL))
		die_errno("mount of msharefs at " MSHARE_DIR " (a kernel with CONFIG_MSHARE?)");
	if (read_text(MSHARE_DIR "/mshare_info", buf, sizeof(buf)) < 0)
		die_errno(MSHARE_DIR "/mshare_info");
	return strtol(buf, NULL, 10);
}

/* 4 KiB pages in both ways: no shmem THP unless asked for. */
static void check_small_pages(void)
{
	char buf[128], word[32] = "", *lb, *rb;

	if (read_text(SHMEM_THP, buf, sizeof(buf)) < 0)
		return;				/* no THP: 4 KiB pages */
	lb = strchr(buf, '[');
	rb = lb ? strchr(lb, ']') : NULL;
	if (rb && rb - lb - 1 < (long)sizeof(word))
		memcpy(word, lb + 1, rb - lb - 1);
	if (strcmp(word, "never") && strcmp(word, "deny") && strcmp(word, "advise")) {
		fprintf(stderr, "%s: %s is [%s]: the region would be THP-backed;"
			" this measures 4 KiB pages (echo never > %s)\n",
			prog, SHMEM_THP, word, SHMEM_THP);
		exit(1);
	}
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: %s [--procs N,...] [--mib M] [--csv FILE]\n"
"\n"
"N processes (1,16,64,256) map one region of M MiB (1024; a multiple of\n"
"msharefs's alignment), through msharefs and as a plain MAP_SHARED memfd:\n"
"the first writes every page, the others read every page.  Prints one\n"
"line per way and N, and\n"
"  mshare N procs: plain P KiB, mshare M KiB of page tables, ratio R\n"
"  mshare page tables from 1 to N procs: A..B KiB (spread S%%)\n",
		prog);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "procs", required_argument, NULL, 'n' },
		{ "mib", required_argument, NULL, 'm' },
		{ "csv", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	long procs[MAX_LIST] = { 1, 16, 64, 256 }, nprocs = 4, mib = 1024;
	struct result res[MAX_LIST][NR_WAYS];
	const char *csv = NULL;
	long align, lo = -1, hi = -1;
	char *items[MAX_LIST];
	size_t len;
	FILE *f;
	int opt;

	set_prog(argv[0], "msharebench");
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			nprocs = split_list("--procs", optarg, "process counts", items, MAX_LIST);
			for (long i = 0; i < nprocs; i++)
				procs[i] = parse_long(items[i], 1, 4096, "--procs");
			free(items[0]);
			break;
		case 'm': mib = parse_long(optarg, 1, MAX_MIB, "--mib"); break;
		case 'o': csv = optarg; break;
		case 'h': usage(stdout); return 0;
		default: bad_option(opt, argv);
		}
	}
	no_operands(argc, argv);
	len = (size_t)mib << 20;
	align = mshare_setup();
	if (align <= 0 || len % align)
		bad_arg("--mib %ld: not a multiple of msharefs's alignment (%ld bytes)",
			mib, align);
	check_small_pages();

	f = csv_open(csv, "way,procs,mib,pagetables_kib,pagetables_kib_per_proc,"
		     "faults_first,faults_per_other,first_ms,others_ms");
	for (long i = 0; i < nprocs; i++) {
		for (int way = NR_WAYS - 1; way >= 0; way--) {
			struct result *r = &res[i][way];
			long others = procs[i] - 1;

			run(way, procs[i], len, r);
			printf("%s %ld procs: page tables +%ld KiB (%.1f KiB per process), "
			       "faults %ld first, %.1f per other, %.1f ms first, %.1f ms others\n",
			       way_name[way], procs[i], r->pt_kib,
			       (double)r->pt_kib / procs[i], r->faults_first,
			       others ? (double)r->faults_rest / others : 0.0,
			       r->first_ms, r->rest_ms);
			fflush(stdout);
			if (f)
				fprintf(f, "%s,%ld,%ld,%ld,%.2f,%ld,%.2f,%.3f,%.3f\n",
					way_name[way], procs[i], mib, r->pt_kib,
					(double)r->pt_kib / procs[i], r->faults_first,
					others ? (double)r->faults_rest / others : 0.0,
					r->first_ms, r->rest_ms);
			/*
			 * Shared: the others link the first's tables, about
			 * one fault per GiB (and a few of their own stack).
			 */
			if (way == WAY_MSHARE && others &&
			    r->faults_rest > others * (8 + (long)(len / align))) {
				fprintf(stderr, "%s: mshare: %ld faults in %ld processes that"
					" should have found every page mapped: the region's"
					" tables were not shared\n", prog, r->faults_rest, others);
				return 1;
			}
		}
		if (lo < 0 || res[i][WAY_MSHARE].pt_kib < lo)
			lo = res[i][WAY_MSHARE].pt_kib;
		if (res[i][WAY_MSHARE].pt_kib > hi)
			hi = res[i][WAY_MSHARE].pt_kib;
	}
	csv_close(f, csv);

	{
		struct result *p = &res[nprocs - 1][WAY_PLAIN];
		struct result *m = &res[nprocs - 1][WAY_MSHARE];

		printf("mshare %ld procs: plain %ld KiB, mshare %ld KiB of page tables, ratio %.1f\n",
		       p->procs, p->pt_kib, m->pt_kib,
		       m->pt_kib > 0 ? (double)p->pt_kib / m->pt_kib : 0.0);
		printf("mshare page tables from %ld to %ld procs: %ld..%ld KiB (spread %.1f%%)\n",
		       procs[0], procs[nprocs - 1], lo, hi,
		       lo > 0 ? 100.0 * (hi - lo) / lo : 0.0);
	}
	return 0;
}
