/* SPDX-License-Identifier: GPL-2.0 */
/*
 * actor - processes that a test drives one command at a time.
 *
 * An actor is a process that serves one channel, a SOCK_SEQPACKET socket:
 * it receives a command, does it in its own mm, and answers with exactly
 * one reply.  The messages are each program's own structs; this library
 * only carries them, spawns and forks actors, and stops them.
 *
 * The test process keeps, per actor id, the channel, pid and pidfd in a
 * struct actors.  It spawns the first actor itself (actor_spawn(), with
 * any clone3 flags).  An actor forks another actor on command: the test
 * process sends the program's fork command together with one end of a
 * new channel (actor_fork_send()); the actor forks, and the new process
 * serves that end (actor_fork()) while its parent answers the command.
 * The test process is a child subreaper, so actors_stop() reaps every
 * descendant, also those whose parent actor exited first.
 *
 * A wait for a reply also watches the actor's pidfd: an actor that dies
 * is reported as -ESRCH at once, not after the timeout.
 *
 * cow_pte_isolation, cow_pte_accounting and cow_pte_fuzz are built on
 * this; each keeps its own commands and what they do.
 */
#ifndef COWPT_ACTOR_H
#define COWPT_ACTOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define ACTOR_MAX		8
#define ACTOR_TIMEOUT_MS	30000

struct actors {
	int chan[ACTOR_MAX];	/* the test process's end, -1 if none */
	pid_t pid[ACTOR_MAX];
	int pidfd[ACTOR_MAX];
	bool alive[ACTOR_MAX];
	int timeout_ms;		/* for one reply */
};

/* ---- in an actor ---- */

/*
 * Receive one command of exactly @len bytes and the fd sent with it
 * (*fd = -1 if none).  Returns 0, or -1 when the channel is closed (the
 * test process is gone) or the message has another size.
 */
int actor_recv(int chan, void *cmd, size_t len, int *fd);

/* Send one reply; an actor that cannot reply exits with status 91. */
void actor_send(int chan, const void *rep, size_t len);

/* @flags for glibc's fork() instead of clone3 */
#define ACTOR_LIBC_FORK		(~0ULL)

/*
 * Fork for a fork command received with @newchan: like fork() with the
 * clone3 @flags (or glibc's fork(), ACTOR_LIBC_FORK).  In the new process @*chan becomes @newchan (the old
 * channel is closed); in the parent @newchan is closed.  Returns what
 * cowpt_fork() returns; on failure @newchan is closed and errno kept.
 */
pid_t actor_fork(int *chan, int newchan, uint64_t flags);

/*
 * Each program's command and reply structs start with these fields, in
 * this order: the library reads a command's operation (and for a fork its
 * flags and new actor) and writes a fork's reply through them.
 */
#define ACTOR_CMD_HEAD	int op; int child; uint64_t flags
#define ACTOR_REP_HEAD	int err; long info
struct actor_cmd { ACTOR_CMD_HEAD; };
struct actor_rep { ACTOR_REP_HEAD; };

/* err of a reply: done, failed, cannot run here, CoW fork refused */
enum { ACTOR_OK, ACTOR_FAIL, ACTOR_SKIP, ACTOR_NOTSUPP };

/*
 * An actor's life as a loop, for programs whose actors do one command at
 * a time: receive a command of @cmd_size bytes, do it with serve() and
 * send a reply of @rep_size bytes (zeroed before each command).  Two operations are the library's.  fork_op forks
 * with the command's flags; the parent's reply has info = the pid, or err
 * ACTOR_FAIL (ACTOR_NOTSUPP for EOPNOTSUPP) and info = -errno; the new
 * actor runs born() and goes on in the loop.  With @hello an actor sends
 * a reply of zeros ("ready") when it enters the loop, and a new actor of
 * a fork does so right after born().  exit_op replies and exits.  The loop ends (exit 0) when the
 * test process closes the channel.
 */
struct actor_proto {
	size_t cmd_size, rep_size;
	int fork_op, exit_op;
	bool hello;
	void (*serve)(const void *cmd, void *rep);
	void (*born)(const void *cmd);	/* in the new actor of a fork */
};

void __attribute__((noreturn)) actor_loop(int chan, const struct actor_proto *p);

/* ---- in the test process ---- */

/*
 * The channel itself, for a program that keeps its own table of actors:
 * send a message with @fd (-1: none), 0 or -errno; wait at most
 * @timeout_ms for one of at most @len bytes, also watching @pidfd (-1:
 * none).  actor_chan_wait() returns the length, -ETIMEDOUT, -ESRCH (the
 * pidfd became readable: the actor died) or -EPIPE (channel closed).
 */
int actor_chan_send(int chan, const void *msg, size_t len, int fd);
ssize_t actor_chan_wait(int chan, int pidfd, void *msg, size_t len,
			int timeout_ms);

/* Subreaper, SIGPIPE ignored, no actors. */
void actors_init(struct actors *a);

/*
 * Fork actor @id from the test process with the clone3 @flags (or
 * ACTOR_LIBC_FORK); the new
 * process gets SIGKILL when the test process dies and runs @serve with
 * its channel (@serve must not return).  Returns the pid or -errno.  The
 * actor's first message (if it sends one) is read with actor_wait().
 */
pid_t actor_spawn(struct actors *a, int id, uint64_t flags,
		  void (*serve)(int chan, void *arg), void *arg);

/* Send a command to @id, with @fd if it is not -1.  0 or -errno. */
int actor_send_cmd(struct actors *a, int id, const void *cmd, size_t len,
		   int fd);

/*
 * Wait for @id's next reply, at most @len bytes.  Returns its length,
 * -ETIMEDOUT, -ESRCH if the actor died (it is then marked dead), or
 * -EPIPE if its channel closed.
 */
ssize_t actor_wait(struct actors *a, int id, void *rep, size_t len);

/* actor_send_cmd() then actor_wait(): the reply's length or -errno. */
ssize_t actor_call(struct actors *a, int id, const void *cmd, size_t clen,
		   void *rep, size_t rlen);

/*
 * Send @parent a fork command for a new actor @child: a new channel is
 * made, one end goes with the command, the other becomes @child's.  The
 * parent's reply is read with actor_wait(); when it gives the pid, record
 * it with actor_forked().  0 or -errno.
 */
int actor_fork_send(struct actors *a, int parent, int child, const void *cmd,
		    size_t len);
void actor_forked(struct actors *a, int child, pid_t pid);

/*
 * A fork command in one call: actor_fork_send(), the parent's reply into
 * @rep, actor_forked() if its err is ACTOR_OK, and with @hello the new
 * actor's first reply (into @rep too).  0 or -errno (-ESRCH: an actor
 * died); the caller looks at the reply's err.
 */
int actor_fork_call(struct actors *a, int parent, const void *cmd,
		    size_t clen, void *rep, size_t rlen, bool hello);

/*
 * Wait until @id (which was told to exit) is gone, so that its mm is torn
 * down before the next step.  0, or -ETIMEDOUT.
 */
int actor_wait_exit(struct actors *a, int id);

/* SIGKILL every live actor, close every channel, reap every descendant. */
void actors_stop(struct actors *a);

#endif /* COWPT_ACTOR_H */
