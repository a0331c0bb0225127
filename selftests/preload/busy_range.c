// SPDX-License-Identifier: GPL-2.0
/*
 * busy_range.so: an LD_PRELOAD library that occupies an address range
 * before the program's main() runs, so that a test can show what the
 * program does when a range it assumed to be free is already mapped (as
 * it is when, for instance, the randomized brk heap lands there).
 *
 *   BUSY_RANGE=START:LEN LD_PRELOAD=busy_range.so PROGRAM ARGS...
 *
 * START and LEN are numbers as strtoul() reads them with base 0.  The
 * range is mapped PROT_NONE with MAP_FIXED_NOREPLACE.  If BUSY_RANGE is
 * unset, malformed or the range cannot be mapped, the program is not run:
 * the process exits with status 2 and a message on stderr, so a test
 * using this library cannot pass without the range being occupied.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static void busy_fail(const char *what, const char *val)
{
	fprintf(stderr, "busy_range: %s: %s\n", what, val ? val : "(unset)");
	_exit(2);
}

__attribute__((constructor))
static void busy_range(void)
{
	const char *spec = getenv("BUSY_RANGE");
	unsigned long start, len;
	char *end;
	void *p;

	if (!spec)
		busy_fail("BUSY_RANGE is not set", NULL);
	errno = 0;
	start = strtoul(spec, &end, 0);
	if (errno || end == spec || *end != ':')
		busy_fail("BUSY_RANGE is not START:LEN", spec);
	spec = end + 1;
	len = strtoul(spec, &end, 0);
	if (errno || end == spec || *end || !len)
		busy_fail("BUSY_RANGE is not START:LEN", getenv("BUSY_RANGE"));

	p = mmap((void *)start, len, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
		 MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED)
		busy_fail(strerror(errno), getenv("BUSY_RANGE"));
	if (p != (void *)start) {
		/* A kernel older than 4.17 takes the flag as a hint. */
		munmap(p, len);
		busy_fail("range not mapped where asked", getenv("BUSY_RANGE"));
	}
	fprintf(stderr, "busy_range: %#lx-%#lx mapped PROT_NONE\n",
		start, start + len);
}
