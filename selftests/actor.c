// SPDX-License-Identifier: GPL-2.0
/*
 * actor - processes that a test drives one command at a time (actor.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cowpt.h"
#include "actor.h"

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int actor_chan_send(int chan, const void *msg, size_t len, int fd)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { (void *)msg, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	ssize_t n;

	if (fd >= 0) {
		memset(ctl, 0, sizeof(ctl));
		mh.msg_control = ctl;
		mh.msg_controllen = sizeof(ctl);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	do
		n = sendmsg(chan, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == (ssize_t)len ? 0 : -EIO;
}

ssize_t actor_chan_wait(int chan, int pidfd, void *msg, size_t len,
			int timeout_ms)
{
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = chan, .events = POLLIN },
			{ .fd = pidfd, .events = POLLIN },
		};
		ssize_t n = poll(p, pidfd >= 0 ? 2 : 1, timeout_ms);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		/* a reply sent just before the actor exited comes first */
		if (p[0].revents & POLLIN) {
			n = recv(chan, msg, len, 0);
			if (n > 0)
				return n;
			return n == 0 ? -EPIPE : -errno;
		}
		if (p[1].revents)
			return -ESRCH;
		if (p[0].revents & (POLLHUP | POLLERR))
			return -EPIPE;
	}
}

int actor_recv(int chan, void *cmd, size_t len, int *fd)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { cmd, len };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl,
		.msg_controllen = sizeof(ctl),
	};
	struct cmsghdr *cm;
	ssize_t n;

	*fd = -1;
	do
		n = recvmsg(chan, &mh, 0);
	while (n < 0 && errno == EINTR);
	cm = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
	if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
		memcpy(fd, CMSG_DATA(cm), sizeof(int));
	if (n != (ssize_t)len || (mh.msg_flags & MSG_TRUNC)) {
		close_fd(fd);
		return -1;
	}
	return 0;
}

void actor_send(int chan, const void *rep, size_t len)
{
	if (actor_chan_send(chan, rep, len, -1))
		_exit(91);
}

pid_t actor_fork(int *chan, int newchan, uint64_t flags)
{
	pid_t pid;

	if (newchan < 0) {
		errno = EBADF;
		return -1;
	}
	pid = flags == ACTOR_LIBC_FORK ? fork() : cowpt_fork(flags);
	if (pid == 0) {
		close(*chan);
		*chan = newchan;
		return 0;
	}
	if (pid < 0) {
		int err = errno;

		close(newchan);
		errno = err;
		return pid;
	}
	close(newchan);
	return pid;
}

void actor_loop(int chan, const struct actor_proto *p)
{
	struct actor_cmd *c = calloc(1, p->cmd_size);
	struct actor_rep *r = calloc(1, p->rep_size);

	if (!c || !r)
		_exit(93);
	if (p->hello)
		actor_send(chan, r, p->rep_size);
	for (;;) {
		pid_t pid;
		int fd;

		if (actor_recv(chan, c, p->cmd_size, &fd))
			_exit(0);	/* the test process is gone */
		memset(r, 0, p->rep_size);
		if (c->op == p->fork_op) {
			pid = actor_fork(&chan, fd, c->flags);
			if (!pid) {
				/* the new actor; its parent replies */
				p->born(c);
				if (p->hello)
					actor_send(chan, r, p->rep_size);
				continue;
			}
			if (pid < 0)
				r->err = errno == EOPNOTSUPP ? ACTOR_NOTSUPP : ACTOR_FAIL;
			r->info = pid < 0 ? -errno : pid;
		} else {
			if (fd >= 0)
				close(fd);
			p->serve(c, r);
		}
		actor_send(chan, r, p->rep_size);
		if (c->op == p->exit_op)
			_exit(0);
	}
}

void actors_init(struct actors *a)
{
	memset(a, 0, sizeof(*a));
	for (int i = 0; i < ACTOR_MAX; i++)
		a->chan[i] = a->pidfd[i] = -1;
	a->timeout_ms = ACTOR_TIMEOUT_MS;
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

static int pidfd_of(pid_t pid)
{
	return syscall(SYS_pidfd_open, pid, 0);
}

void actor_forked(struct actors *a, int child, pid_t pid)
{
	a->pid[child] = pid;
	close_fd(&a->pidfd[child]);
	a->pidfd[child] = pidfd_of(pid);
	a->alive[child] = true;
}

pid_t actor_spawn(struct actors *a, int id, uint64_t flags,
		  void (*serve)(int chan, void *arg), void *arg)
{
	int sv[2];
	pid_t pid;

	if (id < 0 || id >= ACTOR_MAX || a->alive[id])
		return -EINVAL;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv))
		return -errno;
	fflush(NULL);
	pid = flags == ACTOR_LIBC_FORK ? fork() : cowpt_fork(flags);
	if (pid < 0) {
		int err = errno;

		close(sv[0]);
		close(sv[1]);
		return -err;
	}
	if (!pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		close(sv[0]);
		for (int i = 0; i < ACTOR_MAX; i++) {
			close_fd(&a->chan[i]);
			close_fd(&a->pidfd[i]);
		}
		serve(sv[1], arg);
		_exit(92);
	}
	close(sv[1]);
	close_fd(&a->chan[id]);
	a->chan[id] = sv[0];
	actor_forked(a, id, pid);
	return pid;
}

int actor_send_cmd(struct actors *a, int id, const void *cmd, size_t len,
		   int fd)
{
	if (!a->alive[id] || a->chan[id] < 0)
		return -ESRCH;
	return actor_chan_send(a->chan[id], cmd, len, fd);
}

ssize_t actor_wait(struct actors *a, int id, void *rep, size_t len)
{
	ssize_t n = actor_chan_wait(a->chan[id], a->pidfd[id], rep, len,
				    a->timeout_ms);

	if (n == -ESRCH)
		a->alive[id] = false;
	return n;
}

ssize_t actor_call(struct actors *a, int id, const void *cmd, size_t clen,
		   void *rep, size_t rlen)
{
	int ret = actor_send_cmd(a, id, cmd, clen, -1);

	return ret ? ret : actor_wait(a, id, rep, rlen);
}

int actor_fork_send(struct actors *a, int parent, int child, const void *cmd,
		    size_t len)
{
	int sv[2], ret;

	if (child < 0 || child >= ACTOR_MAX || a->alive[child])
		return -EINVAL;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv))
		return -errno;
	ret = actor_send_cmd(a, parent, cmd, len, sv[1]);
	close(sv[1]);
	if (ret) {
		close(sv[0]);
		return ret;
	}
	close_fd(&a->chan[child]);
	a->chan[child] = sv[0];
	return 0;
}

int actor_fork_call(struct actors *a, int parent, const void *cmd,
		    size_t clen, void *rep, size_t rlen, bool hello)
{
	const struct actor_cmd *c = cmd;
	const struct actor_rep *r = rep;
	ssize_t n;

	n = actor_fork_send(a, parent, c->child, cmd, clen);
	if (!n)
		n = actor_wait(a, parent, rep, rlen);
	if (n < 0)
		return n;
	if (r->err != ACTOR_OK)
		return 0;
	actor_forked(a, c->child, r->info);
	n = hello ? actor_wait(a, c->child, rep, rlen) : 0;
	return n < 0 ? n : 0;
}

int actor_wait_exit(struct actors *a, int id)
{
	struct pollfd p = { .fd = a->pidfd[id], .events = POLLIN };
	int n;

	if (p.fd >= 0) {
		do
			n = poll(&p, 1, a->timeout_ms);
		while (n < 0 && errno == EINTR);
		if (n != 1)
			return -ETIMEDOUT;
	}
	close_fd(&a->pidfd[id]);
	close_fd(&a->chan[id]);
	a->alive[id] = false;
	return 0;
}

void actors_stop(struct actors *a)
{
	for (int i = 0; i < ACTOR_MAX; i++) {
		if (a->alive[i] && a->pid[i] > 0)
			kill(a->pid[i], SIGKILL);
		a->alive[i] = false;
		a->pid[i] = 0;
		close_fd(&a->pidfd[i]);
		close_fd(&a->chan[i]);
	}
	/* actors are our children or were reparented to us (subreaper) */
	for (;;) {
		pid_t w = waitpid(-1, NULL, __WALL);

		if (w < 0 && errno != EINTR)
			break;
	}
}
