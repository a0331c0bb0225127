// SPDX-License-Identifier: GPL-2.0
/*
 * mremapbench - what relocation on mremap() (vm.mremap_relocate_anon)
 * buys and costs, with relocation off and on side by side in one boot.
 *
 * grow: K buffers of faulted anonymous memory, laid out one after the
 * other, grow by moving: each round moves every buffer, in order, into a
 * fresh area with mremap(MREMAP_MAYMOVE | MREMAP_FIXED), G pages larger,
 * right after the buffer moved before it, and writes the new pages (a
 * realloc() of each buffer into a compacting arena).  Without relocation
 * each moved buffer stays a VMA of its own (its page offset is the old
 * one); with it they merge.  Reports the VMAs of the process at the end
 * and the largest count seen, the time of the moves, and the time per
 * moved MiB.
 *
 * cost: one faulted region moves back and forth between two places
 * nothing can merge with, with relocation off (a plain move) and with
 * vm.mremap_relocate_anon = 2 (every move relocates, so every page's
 * index is rewritten): the time per page of relocation against the move,
 * at a PMD-aligned destination (page tables move whole) and at an
 * unaligned one (PTEs move one by one).
 *
 * Fails rather than report a number if relocation did not happen where it
 * should have (/proc/vmstat mremap_relocate) or happened where it is off.
 * Needs root (the sysctls).
 */
#define _GNU_SOURCE
#include "bench_util.h"

#define MODE_PATH	"/proc/sys/vm/mremap_relocate_anon"
#define MAX_KB_PATH	"/proc/sys/vm/mremap_relocate_max_kbytes"

static int sysctl_write(const char *path, long val)
{
	char buf[32];
	int fd = open(path, O_WRONLY);
	int len = snprintf(buf, sizeof(buf), "%ld", val);

	if (fd < 0)
		return -1;
	if (write(fd, buf, len) != len) {
		close(fd);
		return -1;
	}
	return close(fd);
}

static long sysctl_read(const char *path)
{
	char buf[32];

	if (read_text(path, buf, sizeof(buf)) < 0)
		return -1;
	return strtol(buf, NULL, 10);
}

static long saved_mode = -1, saved_max = -1;

/* Whatever happens, the sysctls are left as they were. */
static void restore_sysctls(void)
{
	if (saved_mode >= 0)
		sysctl_write(MODE_PATH, saved_mode);
	if (saved_max >= 0)
		sysctl_write(MAX_KB_PATH, saved_max);
}

static void set_mode(long mode)
{
	if (sysctl_write(MODE_PATH, mode))
		die_errno(MODE_PATH);
}

static long nr_vmas(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	long n = 0;
	int c;

	if (!f)
		die_errno("/proc/self/maps");
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* A word per page that says which buffer and page it is. */
static inline uint64_t word(long buf, size_t page)
{
	return ((uint64_t)buf << 32) ^ page ^ 0x6d72656dULL;
}

static void fill(char *p, long buf, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		*(volatile uint64_t *)(p + i * PG) = word(buf, i);
}

static void check(const char *p, long buf, size_t pages)
{
	for (size_t i = 0; i < pages; i++)
		if (*(volatile uint64_t *)(p + i * PG) != word(buf, i)) {
			fprintf(stderr, "%s: buffer %ld lost page %zu in a move\n",
				prog, buf, i);
			exit(1);
		}
}

static char *reserve(size_t len)
{
	char *p = mmap(NULL, len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		die_errno("mmap");
	return p;
}

struct grow_result {
	long vmas_end, vmas_max;	/* beyond those before; max: after a round */
	double ms;			/* in mremap() */
	double moved_mib;
	long relocated;			/* mremap_relocate grew by */
};

/*
 * K buffers of @pages pages, R rounds that move each of them @grow pages
 * larger into the next area.
 */
static void run_grow(long k, long rounds, long pages, long grow,
		     struct grow_result *r)
{
	size_t *len = xcalloc(k, sizeof(*len));
	char **buf = xcalloc(k, sizeof(*buf));
	long base = nr_vmas(), reloc = vmstat_get("mremap_relocate");
	size_t total = 0, off;
	char *area, *next;
	double t;

	memset(r, 0, sizeof(*r));
	for (long i = 0; i < k; i++) {
		len[i] = pages * PG;
		total += len[i];
	}
	area = mmap(NULL, total, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		die_errno("mmap");
	madvise(area, total, MADV_NOHUGEPAGE);
	for (long i = 0, o = 0; i < k; o += len[i], i++) {
		buf[i] = area + o;
		fill(buf[i], i, 0, pages);
	}
	for (long round = 0; round < rounds; round++) {
		total += k * grow * PG;
		next = reserve(total);
		off = 0;
		for (long i = 0; i < k; i++) {
			char *to = next + off, *got;

			t = now_ms();
			got = mremap(buf[i], len[i], len[i] + grow * PG,
				     MREMAP_MAYMOVE | MREMAP_FIXED, to);
			r->ms += now_ms() - t;
			if (got != to)
				die_errno("mremap");
			r->moved_mib += (double)len[i] / (1 << 20);
			fill(to, i, len[i] / PG, len[i] / PG + grow);
			buf[i] = to;
			len[i] += grow * PG;
			off += len[i];
		}
		if (nr_vmas() - base > r->vmas_max)
			r->vmas_max = nr_vmas() - base;
		for (long i = 0; i < k; i++)
			check(buf[i], i, len[i] / PG);
	}
	r->vmas_end = nr_vmas() - base;
	r->relocated = vmstat_get("mremap_relocate") - reloc;
	munmap(buf[0], total);
	free(len);
	free(buf);
}

struct cost_result {
	double ns_per_page[2];		/* relocation off, on */
};

/*
 * @pages faulted 4 KiB pages moved @moves times between two places
 * @phase bytes after a PMD boundary; ns per page per move, off and on.
 */
static void run_cost(long pages, long moves, size_t phase, struct cost_result *r)
{
	size_t len = pages * PG, span = len + 2 * PMD_SZ;
	long reloc;

	for (int on = 0; on < 2; on++) {
		char *a = reserve(span), *b = reserve(span), *p, *q;
		double t = 0, t0;

		set_mode(on ? 2 : 0);
		/* the region, and the place it alternates with */
		p = (char *)(((uintptr_t)a + PMD_SZ - 1) & ~(PMD_SZ - 1)) + phase;
		q = (char *)(((uintptr_t)b + PMD_SZ - 1) & ~(PMD_SZ - 1)) + phase;
		if (mmap(p, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != p)
			die_errno("mmap");
		madvise(p, len, MADV_NOHUGEPAGE);
		fill(p, 0, 0, pages);
		reloc = vmstat_get("mremap_relocate");
		for (long m = 0; m < moves; m++) {
			char *to = m % 2 ? p : q, *from = m % 2 ? q : p;

			t0 = now_ms();
			if (mremap(from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to) != to)
				die_errno("mremap");
			t += now_ms() - t0;
		}
		check(moves % 2 ? q : p, 0, pages);
		reloc = vmstat_get("mremap_relocate") - reloc;
		if (reloc != (on ? moves : 0)) {
			fprintf(stderr, "%s: cost: %ld of %ld moves relocated with relocation %s\n",
				prog, reloc, moves, on ? "on" : "off");
			exit(1);
		}
		r->ns_per_page[on] = t * 1e6 / moves / pages;
		munmap(a, span);
		munmap(b, span);
	}
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: %s [--buffers K] [--rounds R] [--pages P] [--grow G]\n"
"          [--cost-sizes KIB,...] [--moves N] [--csv FILE]\n"
"\n"
"grow: K buffers (100) of P pages (16) move R rounds (100) into fresh\n"
"areas, G pages (1) larger each time, with relocation off and on.\n"
"cost: a region of each size moves N times (50) back and forth, with\n"
"relocation off and on, to PMD-aligned and unaligned places.\n"
"Prints one line per measurement and\n"
"  mremap relocate: VMAs plain P, relocated R; time ratio T\n",
		prog);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "buffers", required_argument, NULL, 'k' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "pages", required_argument, NULL, 'p' },
		{ "grow", required_argument, NULL, 'g' },
		{ "cost-sizes", required_argument, NULL, 'c' },
		{ "moves", required_argument, NULL, 'm' },
		{ "csv", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	long k = 100, rounds = 100, pages = 16, grow = 1, moves = 50;
	long cost_kib[MAX_LIST] = { 64, 1024, 16384 }, ncost = 3;
	const char *csv = NULL;
	struct grow_result g[2];
	char *items[MAX_LIST];
	FILE *f;
	int opt;

	set_prog(argv[0], "mremapbench");
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'k': k = parse_long(optarg, 1, 100000, "--buffers"); break;
		case 'r': rounds = parse_long(optarg, 1, 100000, "--rounds"); break;
		case 'p': pages = parse_long(optarg, 1, 1 << 16, "--pages"); break;
		case 'g': grow = parse_long(optarg, 1, 1 << 16, "--grow"); break;
		case 'm': moves = parse_long(optarg, 2, MAX_REPS, "--moves"); break;
		case 'o': csv = optarg; break;
		case 'c':
			ncost = split_list("--cost-sizes", optarg, "sizes in KiB", items, MAX_LIST);
			for (long i = 0; i < ncost; i++)
				cost_kib[i] = parse_long(items[i], 4, 1 << 22, "--cost-sizes");
			free(items[0]);
			break;
		case 'h': usage(stdout); return 0;
		default: bad_option(opt, argv);
		}
	}
	no_operands(argc, argv);

	saved_mode = sysctl_read(MODE_PATH);
	saved_max = sysctl_read(MAX_KB_PATH);
	if (saved_mode < 0 || saved_max < 0) {
		fprintf(stderr, "%s: no %s: the kernel cannot relocate on mremap\n",
			prog, MODE_PATH);
		return 1;
	}
	atexit(restore_sysctls);
	/* grow runs under the default cap */
	if (sysctl_write(MAX_KB_PATH, 65536))
		die_errno(MAX_KB_PATH);
	f = csv_open(csv, "test,size_kib,relocation,vmas_end,vmas_max,ms,ms_per_mib,ns_per_page");

	for (int on = 0; on < 2; on++) {
		set_mode(on ? 1 : 0);
		run_grow(k, rounds, pages, grow, &g[on]);
		printf("grow %s: %ld buffers x %ld moves: %ld VMAs at the end (max %ld), %.1f ms in mremap, %.3f ms per moved MiB\n",
		       on ? "relocated" : "plain", k, rounds, g[on].vmas_end,
		       g[on].vmas_max, g[on].ms, g[on].ms / g[on].moved_mib);
		if (f)
			fprintf(f, "grow,%ld,%s,%ld,%ld,%.3f,%.4f,NA\n", pages * PG / 1024,
				on ? "on" : "off", g[on].vmas_end, g[on].vmas_max,
				g[on].ms, g[on].ms / g[on].moved_mib);
	}
	/* the first buffer of a round has no neighbour to merge with */
	if (g[0].relocated || g[1].relocated < (k - 1) * rounds) {
		fprintf(stderr, "%s: grow: %ld moves relocated with relocation off, %ld of %ld with it on\n",
			prog, g[0].relocated, g[1].relocated, (k - 1) * rounds);
		return 1;
	}

	/* the largest cap the kernel takes (4 GiB) */
	if (sysctl_write(MAX_KB_PATH, 4L << 20))
		die_errno(MAX_KB_PATH);
	for (long i = 0; i < ncost; i++) {
		for (int aligned = 1; aligned >= 0; aligned--) {
			struct cost_result c;
			long pg = cost_kib[i] * 1024 / PG;

			run_cost(pg, moves, aligned ? 0 : 16 * PG, &c);
			printf("cost %ld KiB %s: move %.1f ns/page, with relocation %.1f ns/page (+%.1f ns/page, %.2fx)\n",
			       cost_kib[i], aligned ? "aligned" : "unaligned",
			       c.ns_per_page[0], c.ns_per_page[1],
			       c.ns_per_page[1] - c.ns_per_page[0],
			       c.ns_per_page[1] / c.ns_per_page[0]);
			for (int on = 0; f && on < 2; on++)
				fprintf(f, "cost-%s,%ld,%s,NA,NA,NA,NA,%.2f\n",
					aligned ? "aligned" : "unaligned", cost_kib[i],
					on ? "on" : "off", c.ns_per_page[on]);
		}
	}
	csv_close(f, csv);

	printf("mremap relocate: VMAs plain %ld, relocated %ld; time ratio %.2f\n",
	       g[0].vmas_end, g[1].vmas_end, g[1].ms / g[0].ms);
	return 0;
}
