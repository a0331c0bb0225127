// SPDX-License-Identifier: GPL-2.0
/*
 * cow_pte_forker - helper for cow_pte_run.sh: touch MIB MiB of private
 * anonymous memory in 2 MiB aligned tables, fork() with libc (no cowpt
 * flag), let the child check and change the data, check the parent's,
 * and print how many PTE tables the fork shared (/proc/vmstat
 * cow_pte_shared delta; no other fork may run meanwhile).
 *
 *   cow_pte_forker MIB      prints "shared N"; exit 0 if the data was right
 */
#define _GNU_SOURCE
#include "cow_pte_util.h"

int main(int argc, char **argv)
{
	long mib = argc == 2 ? strtol(argv[1], NULL, 10) : 0;
	size_t len, pages, i;
	long before, after;
	uint64_t *w;
	char *mem;
	pid_t pid;
	int code;

	if (mib <= 0 || mib % 2) {
		fprintf(stderr, "usage: cow_pte_forker MIB (even, > 0)\n");
		return 2;
	}
	len = (size_t)mib << 20;
	pages = len / PG;
	mem = map_at_phase(len, 0);
	if (!mem) {
		perror("cow_pte_forker: mmap");
		return 2;
	}
	madvise(mem, len, MADV_NOHUGEPAGE);
	for (i = 0; i < pages; i++)
		*(uint64_t *)(mem + i * PG) = i + 1;

	before = vmstat_get("cow_pte_shared");
	pid = fork();
	if (pid < 0) {
		perror("cow_pte_forker: fork");
		return 2;
	}
	if (!pid) {
		for (i = 0; i < pages; i++) {
			w = (uint64_t *)(mem + i * PG);
			if (*w != i + 1)
				_exit(1);
			*w = ~(i + 1);
		}
		_exit(0);
	}
	code = wait_code(pid);
	after = vmstat_get("cow_pte_shared");
	for (i = 0; i < pages; i++)
		if (*(uint64_t *)(mem + i * PG) != i + 1) {
			fprintf(stderr, "cow_pte_forker: parent page %zu changed\n", i);
			return 1;
		}
	if (code) {
		fprintf(stderr, "cow_pte_forker: child exit %d\n", code);
		return 1;
	}
	printf("shared %ld\n", before < 0 ? 0 : after - before);
	return 0;
}
