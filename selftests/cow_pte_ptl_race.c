// SPDX-License-Identifier: GPL-2.0
/*
 * cow_pte_ptl_race - a table must outlive the walkers of a sharer that has
 * let go of it (Documentation/cow-pte-design.md, "Concurrency").
 *
 * Rounds, in several processes at once: A fills 2 MiB (one PTE table) and
 * CoW-forks B.  Threads of B walk the range without pause (mincore():
 * pte_offset_map_lock() under B's mmap lock for reading).  B's main thread
 * drops its share of the table (MADV_DONTNEED of the whole 2 MiB, under
 * the same lock for reading) and tells A, which munmap()s the range and,
 * as the last mapper, frees the table: its split lock at once, the page
 * after A's TLB flush.  A walker that read B's PMD entry before the drop
 * and takes the table's lock after the free locks freed memory.  Only a
 * walker stalled in between can: on a guest, a preempted vCPU.
 *
 * Nothing here looks at that memory; the kernel does (a lock and unlock
 * of the freed lock write over the slab's free pointer, and a later
 * allocation oopses), and make test fails on any report in the console.
 * The program checks that it did what it says: every round shared a
 * table and dropped it.
 *
 * Before "mm: free PTE tables after an RCU grace period" an earlier form
 * of it (3 processes with 2, 2 and 1 walkers) corrupted the page->ptl
 * slab after 4 minutes in one of its three runs (debug kernel, TCG, 3
 * vCPUs).  A run that passes says little: the window is a few
 * instructions wide.  cow_pte_walker holds a walker in it instead (debug
 * kernels), and fails every time without the fix; this one is the same
 * race left to chance, with every walker and CPU the machine has.
 *
 * usage: cow_pte_ptl_race [SECONDS [PROCESSES [WALKERS]]]  (240 3 2)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "cow_pte_util.h"
#include "kselftest.h"

#define MAX_WALKERS	8

static char *region;
static atomic_int stop;

static void *walker(void *arg)
{
	unsigned char vec[PMD_SZ / 4096];

	while (!atomic_load(&stop))
		mincore(region, PMD_SZ, vec);
	return NULL;
}

/* B: walk the shared table, drop it, wait until A has freed it. */
static int sharer(int walkers, int dropped_fd, int freed_fd)
{
	pthread_t t[MAX_WALKERS];
	char c = 1;
	int i;

	for (i = 0; i < walkers; i++)
		if (pthread_create(&t[i], NULL, walker, NULL))
			return 1;
	/*
	 * Let the walkers go over the shared table for a while first: spin,
	 * not sleep, so that B's threads outnumber the CPUs as in the run
	 * that showed the bug.
	 */
	for (int spin = rand() % 20000; spin < 40000; spin++)
		__asm__ __volatile__("" ::: "memory");
	if (madvise(region, PMD_SZ, MADV_DONTNEED))
		return 1;
	if (write(dropped_fd, &c, 1) != 1 || read(freed_fd, &c, 1) != 1)
		return 1;
	atomic_store(&stop, 1);
	for (i = 0; i < walkers; i++)
		pthread_join(t[i], NULL);
	return 0;
}

/* A: one round; 0 if it shared and freed a table, -1 on an error. */
static int round_once(int walkers)
{
	int dropped[2], freed[2], ret = -1;
	pid_t pid;
	char c;

	region = map_at_phase(PMD_SZ, 0);
	if (!region)
		return -1;
	madvise(region, PMD_SZ, MADV_NOHUGEPAGE);
	memset(region, 0x5a, PMD_SZ);
	if (pipe(dropped))
		goto unmap;
	if (pipe(freed))
		goto close_dropped;
	pid = cowpt_fork(CLONE_COW_PTE);
	if (pid < 0)
		goto close_freed;
	if (pid == 0)
		_exit(sharer(walkers, dropped[1], freed[0]));
	if (read(dropped[0], &c, 1) == 1) {
		munmap(region, PMD_SZ);
		region = NULL;
		ret = write(freed[1], &c, 1) == 1 ? 0 : -1;
	}
	if (wait_code(pid))
		ret = -1;
close_freed:
	close(freed[0]);
	close(freed[1]);
close_dropped:
	close(dropped[0]);
	close(dropped[1]);
unmap:
	if (region)
		munmap(region, PMD_SZ);
	return ret;
}

int main(int argc, char **argv)
{
	int secs = argc > 1 ? atoi(argv[1]) : 240;
	int procs = argc > 2 ? atoi(argv[2]) : 3;
	int walkers = argc > 3 ? atoi(argv[3]) : 2;
	long shared0, dropped0, shared, drops;
	atomic_long *rounds;
	int failed = 0, i;

	ksft_print_header();
	ksft_set_plan(1);
	if (secs < 1 || procs < 1 || walkers < 1 || walkers > MAX_WALKERS)
		ksft_exit_fail_msg("usage: %s [SECONDS [PROCESSES [WALKERS (1-%d)]]]\n",
				   argv[0], MAX_WALKERS);
	rounds = mmap(NULL, sizeof(*rounds), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (rounds == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	shared0 = vmstat_get("cow_pte_shared");
	dropped0 = vmstat_get("cow_pte_drop");

	for (i = 0; i < procs; i++) {
		pid_t pid = fork();

		if (pid < 0)
			ksft_exit_fail_msg("fork: %s\n", strerror(errno));
		if (pid == 0) {
			time_t end = time(NULL) + secs;

			srand(getpid());
			while (time(NULL) < end) {
				if (round_once(walkers)) {
					perror("# round");
					_exit(1);
				}
				atomic_fetch_add(rounds, 1);
			}
			_exit(0);
		}
	}
	for (i = 0; i < procs; i++) {
		int status;

		if (wait(&status) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status))
			failed = 1;
	}
	shared = vmstat_get("cow_pte_shared") - shared0;
	drops = vmstat_get("cow_pte_drop") - dropped0;
	ksft_print_msg("%ld rounds in %d s, %d processes of %d walkers: ",
		       atomic_load(rounds), secs, procs, walkers);
	printf("cow_pte_shared +%ld, cow_pte_drop +%ld\n", shared, drops);
	ksft_test_result(!failed && atomic_load(rounds) > 0 &&
			 shared >= atomic_load(rounds) &&
			 drops >= atomic_load(rounds),
			 "drop_then_free_under_walkers\n");
	ksft_finished();
}
