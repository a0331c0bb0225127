// SPDX-License-Identifier: GPL-2.0
/*
 * guest_env - check that the test VM provides what the cowpt tests rely on.
 *
 * If one of these fails, later results mean little: tests that need the
 * feature would skip (or pass vacuously) instead of exercising it.  The
 * last test fails on purpose when COWPT_INJECT_FAILURE=1 is set, to show
 * that a failing test fails the whole run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return n;
}

/* Both vCPUs must really be up, or concurrency tests test nothing. */
TEST(smp_online)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	TH_LOG("online CPUs: %ld", n);
	ASSERT_GE(n, 2);
}

/* Latency numbers need a clock that resolves well below a microsecond. */
TEST(clock_monotonic_resolution)
{
	struct timespec res, a, b;
	long best = 1000000000L;
	char cs[64] = "";
	int i;

	ASSERT_EQ(0, clock_getres(CLOCK_MONOTONIC, &res));
	EXPECT_EQ(0, res.tv_sec);
	EXPECT_LT(res.tv_nsec, 1000);
	for (i = 0; i < 100000; i++) {
		long d;

		clock_gettime(CLOCK_MONOTONIC, &a);
		do {
			clock_gettime(CLOCK_MONOTONIC, &b);
		} while (b.tv_sec == a.tv_sec && b.tv_nsec == a.tv_nsec);
		d = (b.tv_sec - a.tv_sec) * 1000000000L + b.tv_nsec - a.tv_nsec;
		if (d < best)
			best = d;
	}
	read_file("/sys/devices/system/clocksource/clocksource0/current_clocksource",
		  cs, sizeof(cs));
	TH_LOG("clocksource %.*s, getres %ld ns, smallest observed step %ld ns",
	       (int)strcspn(cs, "\n"), cs, res.tv_nsec, best);
	EXPECT_LT(best, 1000);
}

TEST(swap_active)
{
	char buf[4096];

	ASSERT_GT(read_file("/proc/swaps", buf, sizeof(buf)), 0);
	/* header line plus at least one device */
	ASSERT_NE(NULL, strchr(buf, '\n'));
	ASSERT_NE(NULL, strstr(buf, "/dev/"));
}

TEST(thp_and_mthp)
{
	struct stat st;

	ASSERT_EQ(0, stat("/sys/kernel/mm/transparent_hugepage/enabled", &st));
	ASSERT_EQ(0, stat("/sys/kernel/mm/transparent_hugepage/hugepages-64kB/enabled", &st));
	ASSERT_EQ(0, stat("/sys/kernel/mm/transparent_hugepage/khugepaged/pages_to_scan", &st));
}

TEST(hugetlbfs)
{
	char buf[4096];

	ASSERT_GT(read_file("/proc/mounts", buf, sizeof(buf)), 0);
	ASSERT_NE(NULL, strstr(buf, "hugetlbfs"));
	ASSERT_GT(read_file("/proc/meminfo", buf, sizeof(buf)), 0);
	ASSERT_NE(NULL, strstr(buf, "HugePages_Total"));
}

TEST(userfaultfd)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = syscall(__NR_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);

	ASSERT_GE(fd, 0);
	ASSERT_EQ(0, ioctl(fd, UFFDIO_API, &api));
	/* write-protect of anonymous memory needs PTE markers */
	EXPECT_NE(0, api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP);
	EXPECT_NE(0, api.features & UFFD_FEATURE_WP_UNPOPULATED);
	close(fd);
}

TEST(io_uring)
{
	struct io_uring_params p = { 0 };
	int fd = syscall(__NR_io_uring_setup, 4, &p);

	ASSERT_GE(fd, 0);
	close(fd);
}

TEST(ksm)
{
	struct stat st;

	ASSERT_EQ(0, stat("/sys/kernel/mm/ksm/run", &st));
}

TEST(soft_dirty)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY);

	ASSERT_GE(fd, 0);
	ASSERT_EQ(1, write(fd, "4", 1));
	close(fd);
}

TEST(gup_test_and_debugfs)
{
	struct stat st;

	ASSERT_EQ(0, stat("/sys/kernel/debug/gup_test", &st));
	ASSERT_EQ(0, stat("/sys/kernel/debug/split_huge_pages", &st));
}

TEST(numa_nodes)
{
	struct stat st;

	/* migration tests need a second node */
	ASSERT_EQ(0, stat("/sys/devices/system/node/node1", &st));
}

TEST(perf_software_events)
{
	struct perf_event_attr attr = {
		.type = PERF_TYPE_SOFTWARE,
		.size = sizeof(attr),
		.config = PERF_COUNT_SW_PAGE_FAULTS,
		.disabled = 0,
		.exclude_kernel = 1,
	};
	long long count = 0;
	volatile char *p;
	int fd;

	fd = syscall(__NR_perf_event_open, &attr, 0, -1, -1, 0);
	ASSERT_GE(fd, 0) TH_LOG("perf_event_open: %s", strerror(errno));
	p = mmap(NULL, 16 * 4096, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, p);
	for (int i = 0; i < 16; i++)
		p[i * 4096] = 1;
	ASSERT_EQ((ssize_t)sizeof(count), read(fd, &count, sizeof(count)));
	EXPECT_GE(count, 16);
	munmap((void *)p, 16 * 4096);
	close(fd);
}

/* The harness must turn a failing test into a failed run. */
TEST(deliberate_failure)
{
	const char *inject = getenv("COWPT_INJECT_FAILURE");

	if (!inject || strcmp(inject, "1"))
		SKIP(return, "set COWPT_INJECT_FAILURE=1 to fail on purpose");
	EXPECT_EQ(0, 1) TH_LOG("failing on purpose (COWPT_INJECT_FAILURE=1)");
}

TEST_HARNESS_MAIN
