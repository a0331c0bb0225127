/* SPDX-License-Identifier: GPL-2.0 */
/*
 * cowpt_common.h - the helpers that cowpt's selftests (through
 * selftests/cow_pte_util.h) and benchmarks (benchmarks/bench_util.h) both
 * use: page and PMD sizes, small /proc files, /proc/vmstat counters, a
 * child's exit code and PMD-placed anonymous memory.  Not an interface of
 * cowpt (that is cowpt.h); not installed.
 *
 * Everything is static inline.  Include after _GNU_SOURCE.
 */
#ifndef COWPT_COMMON_H
#define COWPT_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG		4096UL
#define PMD_SZ		(2UL << 20)
#define PMD_PAGES	(PMD_SZ / PG)

/* Read a whole (small) file; returns its length or -errno. */
static inline int read_text(const char *path, char *buf, size_t len)
{
	ssize_t n, total = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while ((size_t)total < len - 1) {
		n = read(fd, buf + total, len - 1 - total);
		if (n < 0) {
			int err = errno;

			close(fd);
			return -err;
		}
		if (!n)
			break;
		total += n;
	}
	close(fd);
	buf[total] = '\0';
	return total;
}

/*
 * The number after "KEY" and the separator @sep at the start of a line of
 * @buf ("key value" files: sep ' '; "Field:   N kB" files: sep ':'), or -1.
 */
static inline long line_value(const char *buf, const char *key, char sep)
{
	size_t klen = strlen(key);
	const char *line;

	for (line = buf; line && *line; line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		if (!strncmp(line, key, klen) && line[klen] == sep)
			return strtol(line + klen + 1, NULL, 10);
	}
	return -1;
}

/* A /proc/vmstat counter, or -1 if there is no such line. */
static inline long vmstat_get(const char *name)
{
	static char buf[1 << 16];

	if (read_text("/proc/vmstat", buf, sizeof(buf)) < 0)
		return -1;
	return line_value(buf, name, ' ');
}

/* Exit code of a child, 128 + signal if killed, -1 if waitpid failed. */
static inline int wait_code(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) != pid)
		if (errno != EINTR)
			return -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

/*
 * Map len bytes of private anonymous memory so that the mapping starts
 * phase bytes after a PMD boundary, and nothing else is in the same VMA
 * (the slack of the over-sized reservation is unmapped again).  @flags:
 * more mmap flags (MAP_NORESERVE).
 */
static inline char *map_at_phase_flags(size_t len, size_t phase, int flags)
{
	size_t span = len + 2 * PMD_SZ;
	char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
	uintptr_t start;

	if (raw == MAP_FAILED)
		return NULL;
	start = (((uintptr_t)raw + PMD_SZ - 1) & ~(PMD_SZ - 1)) + phase;
	if (start > (uintptr_t)raw)
		munmap(raw, start - (uintptr_t)raw);
	munmap((char *)start + len, (uintptr_t)raw + span - start - len);
	return (char *)start;
}

#endif /* COWPT_COMMON_H */
