// SPDX-License-Identifier: GPL-2.0
/*
 * fork_isolation - after fork, no CPU store of one process is visible to
 * another, in every order of parent, child and grandchild writes.
 *
 * The memory spans several 2 MiB (PMD) regions and is not PMD-aligned, so
 * partially covered page tables at both ends are exercised too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"

#define PMD_SIZE	(2UL << 20)
#define PAGE		4096UL
/* 3 PMDs and a bit, starting half-way into a PMD */
#define MAP_LEN		(3 * PMD_SIZE + 5 * PAGE)
/* a page-aligned split point that is not PMD-aligned */
#define HALF		((MAP_LEN / 2) & ~(PAGE - 1))

static void fill(char *p, size_t len, char tag)
{
	for (size_t off = 0; off < len; off += PAGE)
		p[off] = tag;
}

/* Return the offset of the first page not holding tag, or -1. */
static long check(const char *p, size_t len, char tag)
{
	for (size_t off = 0; off < len; off += PAGE)
		if (p[off] != tag)
			return off;
	return -1;
}

static char *map_unaligned(void)
{
	char *p = mmap(NULL, MAP_LEN + 2 * PMD_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t start;

	if (p == MAP_FAILED)
		return NULL;
	/* no THP: we want PTE tables */
	start = ((uintptr_t)p + PMD_SIZE - 1) & ~(PMD_SIZE - 1);
	start += PMD_SIZE / 2;
	madvise(p, MAP_LEN + 2 * PMD_SIZE, MADV_NOHUGEPAGE);
	return (char *)start;
}

static int wait_ok(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

FIXTURE(fork) {
	char *mem;
	int to_child[2], to_parent[2];
};

FIXTURE_SETUP(fork)
{
	self->mem = map_unaligned();
	ASSERT_NE(NULL, self->mem);
	fill(self->mem, MAP_LEN, 'A');
	ASSERT_EQ(0, pipe(self->to_child));
	ASSERT_EQ(0, pipe(self->to_parent));
}

FIXTURE_TEARDOWN(fork)
{
}

static void sync_send(int fd)
{
	char c = 'x';

	if (write(fd, &c, 1) != 1)
		_exit(99);
}

static void sync_recv(int fd)
{
	char c;

	if (read(fd, &c, 1) != 1)
		_exit(98);
}

/* Parent writes first, then the child checks it still sees the old data. */
TEST_F(fork, parent_writes_first)
{
	pid_t pid = fork();

	ASSERT_GE(pid, 0);
	if (!pid) {
		sync_recv(self->to_child[0]);
		if (check(self->mem, MAP_LEN, 'A') >= 0)
			_exit(1);
		fill(self->mem, MAP_LEN, 'C');
		_exit(check(self->mem, MAP_LEN, 'C') >= 0 ? 2 : 0);
	}
	fill(self->mem, MAP_LEN, 'P');
	sync_send(self->to_child[1]);
	ASSERT_EQ(0, wait_ok(pid));
	ASSERT_EQ(-1, check(self->mem, MAP_LEN, 'P'));
}

/* Child writes first; the parent must not see it, before or after exit. */
TEST_F(fork, child_writes_first)
{
	pid_t pid = fork();

	ASSERT_GE(pid, 0);
	if (!pid) {
		fill(self->mem, MAP_LEN, 'C');
		sync_send(self->to_parent[1]);
		sync_recv(self->to_child[0]);
		_exit(check(self->mem, MAP_LEN, 'C') >= 0 ? 1 : 0);
	}
	sync_recv(self->to_parent[0]);
	EXPECT_EQ(-1, check(self->mem, MAP_LEN, 'A'));
	fill(self->mem, MAP_LEN, 'P');
	sync_send(self->to_child[1]);
	ASSERT_EQ(0, wait_ok(pid));
	ASSERT_EQ(-1, check(self->mem, MAP_LEN, 'P'));
}

/* Three generations, each writing in turn while the others still live. */
TEST_F(fork, three_generations)
{
	pid_t pid = fork();

	ASSERT_GE(pid, 0);
	if (!pid) {
		int g2c[2], c2g[2];
		pid_t gpid;

		if (pipe(g2c) || pipe(c2g))
			_exit(10);
		gpid = fork();
		if (gpid < 0)
			_exit(11);
		if (!gpid) {
			sync_recv(g2c[0]);
			if (check(self->mem, MAP_LEN, 'A') >= 0)
				_exit(1);
			fill(self->mem, MAP_LEN, 'G');
			sync_send(c2g[1]);
			sync_recv(g2c[0]);
			_exit(check(self->mem, MAP_LEN, 'G') >= 0 ? 2 : 0);
		}
		/* the child writes only one half, after the grandchild forked */
		fill(self->mem, HALF, 'C');
		sync_send(g2c[1]);
		sync_recv(c2g[0]);
		if (check(self->mem, HALF, 'C') >= 0 ||
		    check(self->mem + HALF, MAP_LEN - HALF, 'A') >= 0)
			_exit(3);
		sync_send(g2c[1]);
		_exit(wait_ok(gpid) ? 4 : 0);
	}
	ASSERT_EQ(0, wait_ok(pid));
	ASSERT_EQ(-1, check(self->mem, MAP_LEN, 'A'));
}

/* Threads keep storing while the process forks: the child sees a snapshot. */
struct writer {
	char *mem;
	volatile int stop;
	unsigned long rounds;
};

static void *writer_fn(void *arg)
{
	struct writer *w = arg;

	while (!w->stop) {
		fill(w->mem, MAP_LEN, (char)('a' + w->rounds % 26));
		w->rounds++;
	}
	return NULL;
}

TEST_F(fork, concurrent_writer_thread)
{
	struct writer w = { .mem = self->mem };
	pthread_t th;

	ASSERT_EQ(0, pthread_create(&th, NULL, writer_fn, &w));
	for (int i = 0; i < 20; i++) {
		pid_t pid = fork();

		ASSERT_GE(pid, 0);
		if (!pid) {
			/* the snapshot must not change under the child */
			char snap[MAP_LEN / PAGE];

			for (size_t j = 0; j < MAP_LEN / PAGE; j++)
				snap[j] = self->mem[j * PAGE];
			usleep(2000);
			for (size_t j = 0; j < MAP_LEN / PAGE; j++)
				if (self->mem[j * PAGE] != snap[j])
					_exit(1);
			_exit(0);
		}
		ASSERT_EQ(0, wait_ok(pid));
	}
	w.stop = 1;
	pthread_join(th, NULL);
	TH_LOG("writer rounds: %lu", w.rounds);
}

TEST_HARNESS_MAIN
