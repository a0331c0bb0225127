/* SPDX-License-Identifier: GPL-2.0 */
/*
 * cow_pte_util.h - small helpers shared by the cow_pte_* selftests:
 * /proc and /sys text files, the cow_pte_mode sysctl, /proc/vmstat
 * counters, /proc/PID/status fields, the THP knobs, the kernel log, and
 * a long-term pin.  What the benchmarks use too (sizes, read_text,
 * vmstat_get, wait_code, map_at_phase_flags) is in include/cowpt_common.h.
 *
 * Everything is static inline so that each program uses what it needs
 * without unused-function warnings.  Include after _GNU_SOURCE and the
 * libc headers.
 */
#ifndef COW_PTE_UTIL_H
#define COW_PTE_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <linux/io_uring.h>	/* guarded as liburing's copy is */
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/klog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cowpt.h"
#include "cowpt_common.h"

/* What older libc headers lack. */
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK		18
#define MADV_KEEPONFORK		19
#endif
#ifndef MADV_COLD
#define MADV_COLD		20
#define MADV_PAGEOUT		21
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#define MADV_POPULATE_WRITE	23
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE		25
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE	0x100000
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP	4
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY	1
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT		1
#endif
#ifndef MPOL_MF_MOVE
#define MPOL_MF_MOVE		(1 << 1)
#define MPOL_MF_MOVE_ALL	(1 << 2)
#endif
#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC	0x63677270
#endif
#ifndef SYSFS_MAGIC
#define SYSFS_MAGIC		0x62656572
#endif

#define THP_DIR		"/sys/kernel/mm/transparent_hugepage"
#define KSM_DIR		"/sys/kernel/mm/ksm"

/* The vmstat counters of the spec, in its order. */
static const char *const cow_pte_counters[] = {
	"cow_pte_shared",
	"cow_pte_break_fault",
	"cow_pte_break_zap",
	"cow_pte_break_split",
	"cow_pte_break_mremap",
	"cow_pte_break_mprotect",
	"cow_pte_break_madvise",
	"cow_pte_break_other",
	"cow_pte_reuse",
	"cow_pte_drop",
	"cow_pte_adopt",
	"cow_pte_orphan",
};
#define NR_COW_PTE_COUNTERS \
	(sizeof(cow_pte_counters) / sizeof(cow_pte_counters[0]))

/* Every table copied by a break so far, whatever the cause. */
static inline long cow_pte_breaks(void)
{
	long n = 0;

	for (size_t i = 0; i < NR_COW_PTE_COUNTERS; i++)
		if (!strncmp(cow_pte_counters[i], "cow_pte_break_", 14))
			n += vmstat_get(cow_pte_counters[i]);
	return n;
}

/* One write(2) of exactly the given bytes at offset 0; 0 or -errno. */
static inline int write_bytes(const char *path, const char *s, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, len);
	if (n < 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	close(fd);
	return (size_t)n == len ? 0 : -EIO;
}

static inline int write_text(const char *path, const char *s)
{
	return write_bytes(path, s, strlen(s));
}

/* The current cow_pte_mode word without the newline; 0 or -errno. */
static inline int cow_mode_get(char *word, size_t len)
{
	int n = read_text(COWPT_MODE_PATH, word, len);

	if (n < 0)
		return n;
	word[strcspn(word, "\n")] = '\0';
	return 0;
}

static inline int cow_mode_set(const char *word)
{
	return write_text(COWPT_MODE_PATH, word);
}

/* The number a file (sysctl, debugfs attribute) holds, or -1. */
static inline long file_long(const char *path)
{
	char buf[32];

	if (read_text(path, buf, sizeof(buf)) < 0)
		return -1;
	return strtol(buf, NULL, 10);
}

/*
 * The number after "Field:" in a /proc file of "Field:   N kB" lines
 * (/proc/PID/status, smaps_rollup), or -1.  No heap use: safe in a child
 * forked from a threaded process.
 */
static inline long file_kb(const char *path, const char *field)
{
	char buf[4096];

	if (read_text(path, buf, sizeof(buf)) < 0)
		return -1;
	return line_value(buf, field, ':');
}

/* A field of /proc/PID/status (pid 0: self) in kB, or -1. */
static inline long status_kb(pid_t pid, const char *field)
{
	char path[64];

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/status", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/status");
	return file_kb(path, field);
}

/* "always [madvise] never" -> "madvise"; 0 or -errno. */
static inline int bracket_word(const char *path, char *word, size_t len)
{
	char buf[256], *l, *r;
	int n = read_text(path, buf, sizeof(buf));

	if (n < 0)
		return n;
	l = strchr(buf, '[');
	r = l ? strchr(l, ']') : NULL;
	if (!l || !r || (size_t)(r - l) >= len)
		return -EINVAL;
	memcpy(word, l + 1, r - l - 1);
	word[r - l - 1] = '\0';
	return 0;
}

/* Is there an active swap device? */
static inline bool have_swap(void)
{
	char buf[4096];
	char *nl;

	if (read_text("/proc/swaps", buf, sizeof(buf)) <= 0)
		return false;
	nl = strchr(buf, '\n');
	return nl && nl[1] != '\0';
}

/*
 * Occurrences of @needle in the kernel log buffer, or -1 if the log cannot
 * be read (no CAP_SYSLOG and dmesg_restrict).
 */
static inline int klog_count(const char *needle)
{
	int size = klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0);
	char *buf, *p;
	int n, count = 0;

	if (size <= 0)
		return -1;
	buf = malloc(size + 1);
	if (!buf)
		return -1;
	n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, size);
	if (n < 0) {
		free(buf);
		return -1;
	}
	buf[n] = '\0';
	for (p = buf; (p = strstr(p, needle)); p++)
		count++;
	free(buf);
	return count;
}

/* Occurrences of "Bad rss-counter" in the kernel log buffer, or -1. */
static inline int bad_rss_reports(void)
{
	return klog_count("Bad rss-counter");
}

/*
 * A word per page that says which page it is and which generation of
 * writes put it there: pattern_fill() writes one, pattern_check() finds
 * the first page that does not hold it.  Offsets are from @base, so that
 * a region keeps its pattern when it moves.
 */
static inline uint64_t pattern(const char *base, const char *p, unsigned int gen)
{
	return ((uint64_t)gen << 48) ^ (uint64_t)(p - base) ^ 0x5a5a0000cafe0000ULL;
}

/* Write a word into every page of [p, p + len), derived from its offset. */
static inline void pattern_fill(char *base, char *p, size_t len, unsigned int gen)
{
	for (size_t off = 0; off < len; off += PG)
		*(volatile uint64_t *)(p + off) = pattern(base, p + off, gen);
}

/* The offset of the first page of [p, p + len) that does not hold @gen, or -1. */
static inline long pattern_check(const char *base, const char *p, size_t len, unsigned int gen)
{
	for (size_t off = 0; off < len; off += PG)
		if (*(volatile uint64_t *)(p + off) != pattern(base, p + off, gen))
			return (long)(p + off - base);
	return -1;
}

/*
 * CoW-fork a child that runs @fn and exits with its result; *shared is the
 * number of tables the fork shared (vmstat delta, a lower bound only when
 * something else forks at the same time, which nothing here does).
 */
static inline pid_t cow_child(int (*fn)(void *), void *arg, long *shared)
{
	long before = vmstat_get("cow_pte_shared");
	pid_t pid = cowpt_fork(CLONE_COW_PTE);
	int err = errno;

	if (pid == 0)
		_exit(fn(arg));
	*shared = vmstat_get("cow_pte_shared") - before;
	errno = err;
	return pid;
}

/* Wait up to @secs for @pid; its exit code, 128 + signal, or -1 on timeout. */
static inline int wait_code_timeout(pid_t pid, int secs)
{
	struct pollfd pfd = { .events = POLLIN };

	pfd.fd = syscall(SYS_pidfd_open, pid, 0);
	if (pfd.fd < 0)
		return wait_code(pid);
	if (poll(&pfd, 1, secs * 1000) != 1) {
		close(pfd.fd);
		return -1;
	}
	close(pfd.fd);
	return wait_code(pid);
}

/* Bits of /proc/kpageflags (include/uapi/linux/kernel-page-flags.h) */
#define KPF_MLOCKED	33
#define KPF_THP		22

#define PM_EXCLUSIVE	(1ULL << 56)	/* /proc/PID/pagemap entry bits */
#define PM_SWAP		(1ULL << 62)
#define PM_PRESENT	(1ULL << 63)

/* /proc/PID/pagemap of @pid, opened for reading. */
static inline int pagemap_open(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	return open(path, O_RDONLY);
}

/*
 * How many pages of [p, p + len) in @pid's address space have all of the
 * pagemap bits @mask set, or -1 if /proc/PID/pagemap cannot be read.
 */
static inline long pagemap_pages(pid_t pid, const char *p, size_t len,
				 uint64_t mask)
{
	uint64_t ent[512];
	long n = 0;
	int fd = pagemap_open(pid);

	if (fd < 0)
		return -1;
	for (size_t off = 0; off < len; off += sizeof(ent) / 8 * PG) {
		size_t cnt = (len - off) / PG < 512 ? (len - off) / PG : 512;
		off_t pos = (uintptr_t)(p + off) / PG * 8;

		if (pread(fd, ent, cnt * 8, pos) != (ssize_t)(cnt * 8)) {
			close(fd);
			return -1;
		}
		for (size_t i = 0; i < cnt; i++)
			n += (ent[i] & mask) == mask;
	}
	close(fd);
	return n;
}

/* The PFN mapping @p in @pid (/proc/PID/pagemap), or 0: none, or not root. */
static inline uint64_t pagemap_pfn(pid_t pid, const void *p)
{
	uint64_t ent = 0;
	int fd = pagemap_open(pid);

	if (fd < 0)
		return 0;
	if (pread(fd, &ent, sizeof(ent), (uintptr_t)p / PG * sizeof(ent)) != sizeof(ent) ||
	    !(ent & PM_PRESENT))
		ent = 0;
	close(fd);
	return ent & ((1ULL << 55) - 1);
}

/*
 * How many of the n pages at addr in pid's address space are mapped and
 * have kpageflags bit @bit (/proc/PID/pagemap for the PFN, /proc/kpageflags
 * for the flags).  -1 if the PFNs cannot be read (not root).
 */
static inline long kpageflag_pages(pid_t pid, const char *addr, long n, int bit)
{
	long count = 0;
	int pm, kpf;

	pm = pagemap_open(pid);
	kpf = open("/proc/kpageflags", O_RDONLY);
	if (pm < 0 || kpf < 0)
		goto fail;
	for (long i = 0; i < n; i++) {
		off_t off = ((uintptr_t)addr / PG + i) * sizeof(uint64_t);
		uint64_t ent, flags;
		uint64_t pfn;

		if (pread(pm, &ent, sizeof(ent), off) != sizeof(ent))
			goto fail;
		if (!(ent >> 63))
			continue;
		pfn = ent & ((1ULL << 55) - 1);
		if (!pfn)		/* present, but PFNs hidden from us */
			goto fail;
		if (pread(kpf, &flags, sizeof(flags), pfn * sizeof(flags)) !=
		    sizeof(flags))
			goto fail;
		count += (flags >> bit) & 1;
	}
	close(pm);
	close(kpf);
	return count;
fail:
	if (pm >= 0)
		close(pm);
	if (kpf >= 0)
		close(kpf);
	return -1;
}

/* map_at_phase_flags() without commit accounting (MAP_NORESERVE) */
static inline char *map_at_phase(size_t len, size_t phase)
{
	return map_at_phase_flags(len, phase, MAP_NORESERVE);
}

/*
 * Pin the page at @buf with a long-term FOLL_PIN (io_uring fixed buffer):
 * sets MMF_HAS_PINNED on this mm.  Returns the ring's fd, which keeps the
 * pin, or -1 with *what naming the call that failed (errno is set).
 */
static inline int pin_page(void *buf, const char **what)
{
	struct io_uring_params p;
	struct iovec iov;
	int fd;

	memset(&p, 0, sizeof(p));
	*what = "io_uring_setup";
	fd = syscall(__NR_io_uring_setup, 4, &p);
	if (fd < 0)
		return -1;
	iov.iov_base = buf;
	iov.iov_len = PG;
	*what = "IORING_REGISTER_BUFFERS";
	if (syscall(__NR_io_uring_register, fd, IORING_REGISTER_BUFFERS, &iov, 1)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* pin_page() of a fresh page. */
static inline int pin_one_page(const char **what)
{
	void *buf = aligned_alloc(PG, PG);

	*what = "aligned_alloc";
	if (!buf)
		return -1;
	memset(buf, 1, PG);
	return pin_page(buf, what);
}

/* ---------------------------------------------------------------- cgroups */

#define CG_ROOT		"/sys/fs/cgroup"

/* A new memory cgroup under the cgroup2 root, mounted if need be. */
static inline int cg_create(char *dir, size_t len, const char *name)
{
	static int seq;
	struct statfs sf;

	if (statfs(CG_ROOT, &sf) || sf.f_type != CGROUP2_SUPER_MAGIC)
		if (mount("none", CG_ROOT, "cgroup2", 0, NULL))
			return -1;
	/* EBUSY-free when already enabled; fails only without memcg */
	if (write_text(CG_ROOT "/cgroup.subtree_control", "+memory") < 0)
		return -1;
	snprintf(dir, len, CG_ROOT "/cowpt-%s-%d-%d", name, getpid(), seq++);
	return mkdir(dir, 0755);
}

static inline int cg_write(const char *dir, const char *file, const char *val)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	return write_text(path, val) < 0 ? -1 : 0;
}

/* A "key value" line of a cgroup file (memory.events), or -1. */
static inline long cg_key(const char *dir, const char *file, const char *key)
{
	char path[256], buf[4096];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (read_text(path, buf, sizeof(buf)) < 0)
		return -1;
	return line_value(buf, key, ' ');
}

static inline int cg_enter(const char *dir)
{
	return cg_write(dir, "cgroup.procs", "0");
}

/* rmdir once the last process has left (exits are asynchronous). */
static inline void cg_remove(const char *dir)
{
	for (int i = 0; i < 100 && rmdir(dir) && errno == EBUSY; i++)
		usleep(50000);
}

/*
 * fail_page_alloc (CONFIG_FAIL_PAGE_ALLOC, debugfs): set its @n attributes
 * @attr (name and value pairs), keeping the old values in @saved for
 * fail_alloc_restore().  Returns how many were set: @n, or fewer after a
 * failure (errno set), which fail_alloc_restore() undoes too.
 */
#define FAIL_DIR	"/sys/kernel/debug/fail_page_alloc/"

static inline int fail_alloc_setup(const char *const attr[][2], int n,
				   char saved[][32])
{
	char path[128];
	int i;

	for (i = 0; i < n; i++) {
		FILE *f;

		snprintf(path, sizeof(path), FAIL_DIR "%s", attr[i][0]);
		f = fopen(path, "r");
		if (!f)
			break;
		if (!fgets(saved[i], 32, f)) {
			fclose(f);
			break;
		}
		fclose(f);
		saved[i][strcspn(saved[i], "\n")] = '\0';
		if (write_text(path, attr[i][1]))
			break;
	}
	return i;
}

/* Put back the first @nset attributes fail_alloc_setup() changed, last first. */
static inline void fail_alloc_restore(const char *const attr[][2], int nset,
				      char saved[][32])
{
	char path[128];

	while (nset-- > 0) {
		snprintf(path, sizeof(path), FAIL_DIR "%s", attr[nset][0]);
		write_text(path, saved[nset]);
	}
}

/*
 * MADV_PAGEOUT of [p, p + len) from every CPU we may run on.  The kernel
 * drains only the calling CPU's LRU batches before it looks for pages to
 * reclaim: a page faulted in on another CPU and still in that CPU's batch
 * is not on the LRU and is skipped.  Asking from each CPU in turn drains
 * every batch.  0, or -1 with errno set by the first madvise() that failed.
 */
static inline int pageout_everywhere(void *p, size_t len)
{
	cpu_set_t all, one;
	int ret = 0;

	if (sched_getaffinity(0, sizeof(all), &all))
		return madvise(p, len, MADV_PAGEOUT);
	for (int cpu = 0; cpu < CPU_SETSIZE && !ret; cpu++) {
		if (!CPU_ISSET(cpu, &all))
			continue;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		if (!sched_setaffinity(0, sizeof(one), &one))
			ret = madvise(p, len, MADV_PAGEOUT);
	}
	sched_setaffinity(0, sizeof(all), &all);
	return ret;
}

/*
 * "Bad rss-counter" reports since @before, once the mms of exited processes
 * have been freed: an idle CPU in lazy TLB mode keeps the last mm it ran
 * until it runs something else, so run on every CPU first.
 */
static inline int new_bad_rss(int before)
{
	cpu_set_t all, one;

	if (!sched_getaffinity(0, sizeof(all), &all)) {
		for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
			if (!CPU_ISSET(cpu, &all))
				continue;
			CPU_ZERO(&one);
			CPU_SET(cpu, &one);
			if (!sched_setaffinity(0, sizeof(one), &one))
				sched_yield();
		}
		sched_setaffinity(0, sizeof(all), &all);
	}
	for (int i = 0; i < 20; i++) {
		if (bad_rss_reports() != before)
			break;
		usleep(100000);
	}
	return bad_rss_reports() - before;
}

/*
 * Expected SIGSEGV/SIGBUS as an error instead of a death: after
 * catch_faults(),
 *
 *	if (sigsetjmp(fault_jmp, 1)) { ... fault_addr, fault_sig ... }
 *	fault_armed = 1;  ... touch memory ...  fault_armed = 0;
 *
 * A fault while not armed is fatal, as without the handler.
 */
static sigjmp_buf fault_jmp __attribute__((unused));
static volatile sig_atomic_t fault_armed __attribute__((unused));
static void *volatile fault_addr __attribute__((unused));
static volatile int fault_sig __attribute__((unused));

static inline void fault_catch_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (!fault_armed) {
		signal(sig, SIG_DFL);
		return;		/* fault again, fatally */
	}
	fault_armed = 0;
	fault_addr = si->si_addr;
	fault_sig = sig;
	siglongjmp(fault_jmp, 1);
}

static inline void catch_faults(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fault_catch_handler;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
}

#endif /* COW_PTE_UTIL_H */
