// SPDX-License-Identifier: GPL-2.0
/*
 * ops_io.c: the other operations: GUP from another process, file I/O,
 * io_uring fixed buffers, userfaultfd, vmsplice(), NUMA migration, remote
 * pageout and memcg reclaim, and the process tree (fork, exit, wait,
 * thread); then the table of all operations, whose order fixes the op
 * numbering and the names in repro files.
 */

#include "fuzz.h"

/* ------------------------------------------------------------------ */
/* Operations: another process's memory (GUP), files                    */

static const char *const gup_names[] = { "vm", "mem" };

static unsigned int gup_need(int64_t how, bool write)
{
	if (!write)
		return NEED_R | NO_UFFD;
	return NO_UFFD | (how == GUP_MEM ? NEED_FORCE_W : NEED_W);
}

static bool gen_gup(struct op *op, bool write)
{
	uint64_t s, e;

	op->w = pick_live();
	op->t = pick_live();
	op->how = rnd(2);
	if (!pick_span(wk[op->t], gup_need(op->how, write),
		       write ? MAX_GUP_PAGES : READ_CHUNK, &s, &e))
		return false;
	set_range(op, s, e);
	if (write)
		op->tag = op_tag(op->idx);
	return true;
}

static bool valid_gup(const struct op *op, bool write)
{
	return have.root && live(op->w) && live(op->t) &&
	       in_arena(op->addr, op->len) && (op->how == 0 || op->how == 1) &&
	       op->len / PG <= (write ? MAX_GUP_PAGES : READ_CHUNK) &&
	       range_ok(wk[op->t], OP_S(op), OP_E(op), gup_need(op->how, write));
}

static bool gen_gup_write(struct op *op)
{
	return gen_gup(op, true);
}

static bool valid_gup_write(const struct op *op)
{
	return valid_gup(op, true);
}

static void run_gup_write(const struct op *op)
{
	struct cmd c = {
		.type = C_RWRITE, .arg = (int)op->how, .pid = wk[op->t]->pid,
		.addr = op->addr, .len = op->len, .tag = op->tag,
	};

	if (call(op->w, &c, (long)op->len, 0))
		return;
	store_range(wk[op->t], OP_S(op), OP_E(op), op->tag);
	touch(OP_S(op), OP_E(op));
}

static bool gen_gup_read(struct op *op)
{
	return gen_gup(op, false);
}

static bool valid_gup_read(const struct op *op)
{
	return valid_gup(op, false);
}

static void run_gup_read(const struct op *op)
{
	struct worker *t = wk[op->t];
	struct cmd c = {
		.type = C_RREAD, .arg = (int)op->how, .pid = t->pid,
		.addr = op->addr, .len = op->len,
	};
	char how[64];

	if (call(op->w, &c, (long)op->len, 0))
		return;
	snprintf(how, sizeof(how), "%s by worker %" PRId64,
		 op->how == GUP_VM ? "process_vm_readv" : "/proc/PID/mem read",
		 op->w);
	for (uint64_t pg = OP_S(op); pg < OP_E(op) && !failure.failed; pg++)
		check_page(op->t, reg_at(t, pg), pg,
			   co_rep.tags[pg - OP_S(op)], &co_rep, how);
	touch(OP_S(op), OP_E(op));
}

static bool gen_file_io(struct op *op, uint64_t maxn, bool write)
{
	uint64_t n = gen_npages(maxn);

	op->w = pick_live();
	op->obj = rnd(NR_FILES);
	op->off = pick_file_pages(n) * PG;
	op->len = n * PG;
	if (write)
		op->tag = op_tag(op->idx);
	return true;
}

static bool valid_file_io(const struct op *op, uint64_t maxn)
{
	return live(op->w) && op->obj >= 0 && op->obj < NR_FILES &&
	       !(op->off % PG) && !(op->len % PG) && op->len &&
	       op->len / PG <= maxn && op->off / PG + op->len / PG <= FILE_PAGES;
}

static bool gen_file_write(struct op *op)
{
	return gen_file_io(op, 256, true);
}

static bool valid_file_write(const struct op *op)
{
	return valid_file_io(op, 256);
}

static void run_file_write(const struct op *op)
{
	struct cmd c = {
		.type = C_FWRITE, .file = (int)op->obj, .off = op->off,
		.len = op->len, .tag = op->tag,
	};
	uint64_t first = op->off / PG, n = op->len / PG;

	if (call(op->w, &c, (long)op->len, 0))
		return;
	for (uint64_t i = 0; i < n; i++)
		objs[op->obj].tag[first + i] = op->tag + i;
	touch_obj(op->obj, first, first + n);
}

static bool gen_file_read(struct op *op)
{
	return gen_file_io(op, READ_CHUNK, false);
}

static bool valid_file_read(const struct op *op)
{
	return valid_file_io(op, READ_CHUNK);
}

static void run_file_read(const struct op *op)
{
	struct cmd c = {
		.type = C_FREAD, .file = (int)op->obj, .off = op->off,
		.len = op->len,
	};
	char how[64];

	if (call(op->w, &c, (long)op->len, 0))
		return;
	snprintf(how, sizeof(how), "pread by worker %" PRId64, op->w);
	for (uint64_t i = 0; i < op->len / PG && !failure.failed; i++)
		check_obj_page(op->obj, op->off / PG + i, co_rep.tags[i],
			       &co_rep, how);
}

/* ------------------------------------------------------------------ */
/* Operations: io_uring fixed buffers                                   */

static bool has_uring(const struct worker *w)
{
	return w->ur_s != w->ur_e;
}

/* A live worker for which has() is want, or -1. */
static int pick_worker_if(bool (*has)(const struct worker *), bool want)
{
	int ids[MAX_PROCS * 4], n = live_ids(ids), k = 0;

	for (int i = 0; i < n; i++)
		if (has(wk[ids[i]]) == want)
			ids[k++] = ids[i];
	return k ? ids[rnd(k)] : -1;
}

/* A live worker with (or without) a registered fixed buffer, or -1. */
static int pick_uring_worker(bool registered)
{
	return pick_worker_if(has_uring, registered);
}

static bool no_maybe0(const struct worker *w, uint64_t s, uint64_t e)
{
	for (uint64_t pg = s; pg < e; pg++)
		if (w->st[pg] == ST_MAYBE0)
			return false;
	return true;
}

#define URING_NEED	(NEED_ANON | NEED_W | NO_UFFD)

static bool gen_uring_reg(struct op *op)
{
	uint64_t s, e;

	op->w = pick_uring_worker(false);
	if (op->w < 0 ||
	    !pick_span(wk[op->w], URING_NEED, MAX_GUP_PAGES, &s, &e))
		return false;
	set_range(op, s, e);
	return true;
}

/*
 * Lazily freed pages are excluded: the kernel's writes into a pinned page
 * do not dirty it, so after the unpin reclaim could discard them.
 */
static bool valid_uring_reg(const struct op *op)
{
	return have.uring && op_ok(op) && !has_uring(wk[op->w]) &&
	       op->len / PG <= MAX_GUP_PAGES &&
	       range_ok(wk[op->w], OP_S(op), OP_E(op), URING_NEED) &&
	       no_maybe0(wk[op->w], OP_S(op), OP_E(op));
}

static void run_uring_reg(const struct op *op)
{
	struct worker *w = wk[op->w];
	struct cmd c = {
		.type = C_URING_REG, .addr = op->addr, .len = op->len,
	};

	if (call(op->w, &c, 0, 0))
		return;
	w->ur_s = OP_S(op);
	w->ur_e = OP_E(op);
	touch(OP_S(op), OP_E(op));
}

static bool gen_uring_read(struct op *op)
{
	struct worker *w;
	uint64_t s, e;

	op->w = pick_uring_worker(true);
	if (op->w < 0)
		return false;
	w = wk[op->w];
	pick_range(w->ur_s, w->ur_e, MAX_GUP_PAGES, &s, &e);
	set_range(op, s, e);
	op->obj = rnd(NR_FILES);
	op->off = pick_file_pages(e - s) * PG;
	return true;
}

static bool valid_uring_read(const struct op *op)
{
	return have.uring && op_ok(op) && has_uring(wk[op->w]) &&
	       OP_S(op) >= wk[op->w]->ur_s && OP_E(op) <= wk[op->w]->ur_e &&
	       op->obj >= 0 && op->obj < NR_FILES && !(op->off % PG) &&
	       op->off / PG + op->len / PG <= FILE_PAGES;
}

/* The file's pages land in the pinned pages: a write by the worker. */
static void run_uring_read(const struct op *op)
{
	struct worker *w = wk[op->w];
	struct cmd c = {
		.type = C_URING_READ, .addr = op->addr, .len = op->len,
		.file = (int)op->obj, .off = op->off,
	};
	uint64_t *src = &objs[op->obj].tag[op->off / PG];

	if (call(op->w, &c, (long)op->len, 0))
		return;
	for (uint64_t pg = OP_S(op); pg < OP_E(op); pg++)
		page_store(w, reg_at(w, pg), pg, src[pg - OP_S(op)]);
	touch(OP_S(op), OP_E(op));
}

static bool gen_uring_unreg(struct op *op)
{
	op->w = pick_uring_worker(true);
	return op->w >= 0;
}

static bool valid_uring_unreg(const struct op *op)
{
	return have.uring && live(op->w) && has_uring(wk[op->w]);
}

static void run_uring_unreg(const struct op *op)
{
	struct cmd c = { .type = C_URING_UNREG };

	if (!call(op->w, &c, 0, 0))
		wk[op->w]->ur_s = wk[op->w]->ur_e = 0;
}

/* ------------------------------------------------------------------ */
/* Operations: userfaultfd                                              */

static bool gen_uffd_reg(struct op *op)
{
	uint64_t n = gen_npages(MAX_OP_PAGES), s;

	op->w = pick_live();
	if (!pick_free_place(wk[op->w], n, &s))
		return false;
	set_range(op, s, s + n);
	return true;
}

static bool valid_uffd_reg(const struct op *op)
{
	return have.uffd && op_ok(op) && room(wk[op->w]) &&
	       range_free(wk[op->w], OP_S(op), OP_E(op)) &&
	       under_cap(wk[op->w], op->len / PG, 0, 0);
}

/* A new private anonymous mapping, registered MISSING. */
static void run_uffd_reg(const struct op *op)
{
	struct cmd c = {
		.type = C_MMAP, .addr = op->addr, .len = op->len,
		.arg = PROT_READ | PROT_WRITE, .file = -1,
		.arg2 = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
	};
	struct region r = {
		.s = OP_S(op), .e = OP_E(op), .prot = PROT_READ | PROT_WRITE,
		.kind = K_ANON, .fl = RF_UFFD,
	};

	if (call(op->w, &c, (long)op->addr, 0))
		return;
	map_region(wk[op->w], &r);	/* the worker maps it even if ... */
	c.type = C_UFFD_REG;
	call(op->w, &c, 0, 0);		/* ... registering fails */
}

static const char *const fill_names[] = { "copy", "zero" };

static bool gen_uffd_fill(struct op *op)
{
	op->how = chance(25) ? FILL_ZERO : FILL_COPY;
	op->tag = op_tag(op->idx);
	return gen_span(op, ONLY_UFFD | ONE_REGION, MAX_GUP_PAGES);
}

static bool valid_uffd_fill(const struct op *op)
{
	return have.uffd && op_ok(op) && (op->how == 0 || op->how == 1) &&
	       op->len / PG <= MAX_GUP_PAGES &&
	       range_ok(wk[op->w], OP_S(op), OP_E(op), ONLY_UFFD | ONE_REGION);
}

/* Page by page until the first present one (EEXIST). */
static void run_uffd_fill(const struct op *op)
{
	struct worker *w = wk[op->w];
	uint64_t s = OP_S(op), n = op->len / PG, k = 0;
	struct cmd c = {
		.type = C_UFFD_FILL, .addr = op->addr, .len = op->len,
		.arg = (int)op->how, .tag = op->tag,
	};
	int err;

	while (k < n && w->st[s + k] == ST_MISSING)
		k++;
	err = k < n ? EEXIST : 0;
	if (co_call(op->w, &c, -1, &co_rep))
		return;
	if (co_rep.ret != (int64_t)k || co_rep.err != err) {
		fail("worker %" PRId64 " (pid %d): uffd-%s at %#" PRIx64 " filled %" PRId64 " pages (%s), expected %" PRIu64 " (%s)",
		     op->w, w->pid, fill_names[op->how], op->addr, co_rep.ret,
		     errname(co_rep.err), k, errname(err));
		return;
	}
	for (uint64_t i = 0; i < k; i++) {
		w->st[s + i] = ST_PRIV;
		w->tag[s + i] = op->how == FILL_COPY ? op->tag + i : 0;
	}
	touch(s, s + k);
}

static bool gen_uffd_unreg(struct op *op)
{
	return gen_span(op, ONLY_UFFD | ONE_REGION, ARENA_PAGES);
}

static bool valid_uffd_unreg(const struct op *op)
{
	return have.uffd && op_ok(op) && room(wk[op->w]) &&
	       range_ok(wk[op->w], OP_S(op), OP_E(op), ONLY_UFFD | ONE_REGION);
}

static void run_uffd_unreg(const struct op *op)
{
	struct worker *w = wk[op->w];
	struct cmd c = {
		.type = C_UFFD_UNREG, .addr = op->addr, .len = op->len,
	};
	int first, last;

	if (call(op->w, &c, 0, 0))
		return;
	reg_range(w, OP_S(op), OP_E(op), &first, &last);
	for (int i = first; i < last; i++)
		w->reg[i].fl &= ~RF_UFFD;
	for (uint64_t pg = OP_S(op); pg < OP_E(op); pg++) {
		if (w->st[pg] == ST_MISSING) {
			w->st[pg] = ST_PRIV;
			w->tag[pg] = 0;
		}
	}
	touch(OP_S(op), OP_E(op));
}

/* ------------------------------------------------------------------ */
/* Operations: vmsplice() and reading the pipe back                     */

static bool has_splice(const struct worker *w)
{
	return w->sp;
}

/* A live worker with (or without) pages in its pipe, or -1. */
static int pick_splice_worker(bool spliced)
{
	return pick_worker_if(has_splice, spliced);
}

/* Readable private anonymous memory; a userfaultfd hole would block. */
#define SPLICE_NEED	(NEED_ANON | NEED_R | NO_UFFD)

static bool gen_vmsplice(struct op *op)
{
	uint64_t s, e;

	op->w = pick_splice_worker(false);
	if (op->w < 0 ||
	    !pick_span(wk[op->w], SPLICE_NEED, MAX_SPLICE_PAGES, &s, &e))
		return false;
	set_range(op, s, e);
	return true;
}

static bool valid_vmsplice(const struct op *op)
{
	return op_ok(op) && !wk[op->w]->sp &&
	       op->len / PG <= MAX_SPLICE_PAGES &&
	       range_ok(wk[op->w], OP_S(op), OP_E(op), SPLICE_NEED);
}

static void run_vmsplice(const struct op *op)
{
	struct worker *w = wk[op->w];
	struct cmd c = {
		.type = C_VMSPLICE, .addr = op->addr, .len = op->len,
	};
	struct splice *sp;

	if (call(op->w, &c, (long)op->len, 0))
		return;
	sp = calloc(1, sizeof(*sp));
	if (!sp)
		bug("out of memory");
	sp->op = op->idx;
	sp->s = OP_S(op);
	sp->n = OP_E(op) - OP_S(op);
	for (uint64_t i = 0; i < sp->n; i++)
		sp->x[i] = page_expect(w, reg_at(w, sp->s + i), sp->s + i);
	w->sp = sp;
}

static bool gen_pipe_read(struct op *op)
{
	op->w = pick_splice_worker(true);
	return op->w >= 0;
}

static bool valid_pipe_read(const struct op *op)
{
	return live(op->w) && wk[op->w]->sp;
}

static bool splice_later(const struct splice *sp, uint64_t tag)
{
	for (size_t i = 0; i < sp->nlater; i++)
		if (sp->later[i] == tag)
			return true;
	return false;
}

static void run_pipe_read(const struct op *op)
{
	struct worker *w = wk[op->w];
	struct splice *sp = w->sp;
	struct cmd c = { .type = C_PIPE_READ, .len = sp->n * PG };
	char b1[80], b2[80], b3[64];

	if (call(op->w, &c, (long)c.len, 0))
		return;
	for (uint64_t i = 0; i < sp->n && !failure.failed; i++) {
		const struct expect *x = &sp->x[i];
		uint64_t got = co_rep.tags[i];

		if (x->skip || got == x->tag || (x->or_zero && !got) ||
		    splice_later(sp, got))
			continue;
		corrupt_str(got, &co_rep, b3, sizeof(b3));
		fail("worker %" PRId64 " (pid %d): page %#" PRIx64 " vmsplice()d at op %" PRId64
		     " reads back from the pipe as %s%s, expected %s%s or a later store"
		     " of the worker's own",
		     op->w, w->pid, pg_addr(sp->s + i), sp->op,
		     tag_str(got, b2, sizeof(b2)), b3,
		     tag_str(x->tag, b1, sizeof(b1)), x->or_zero ? " or zero" : "");
	}
	splice_free(w);
}

/* ------------------------------------------------------------------ */
/* Operations: NUMA migration, remote pageout, memcg reclaim            */

/*
 * None of these changes what a page holds: the model stays as it is (but
 * for the region splits of process_madvise) and the read-back after the op
 * checks that nothing changed, in every worker.  What they exercise is the
 * kernel reaching pages through the rmap rather than through the acting
 * process's tables: migration and reclaim unmap a page from every process
 * that maps it, shared tables included, and fault it back in on the next
 * touch.
 */

static bool gen_move_pages(struct op *op)
{
	return gen_span(op, HOLES_OK, MAX_MOVE_PAGES);
}

static bool valid_move_pages(const struct op *op)
{
	return have.root && have.numa && op_ok(op) &&
	       op->len / PG <= MAX_MOVE_PAGES;
}

/*
 * The pages move to the other node or stay where they are: any of them may
 * be busy (an io_uring pin, a pipe's reference, a transient one), so a
 * count of pages not migrated is no failure, nor is ENOMEM (no free page
 * on the target node).  Any other error is: detect() made sure of
 * CAP_SYS_NICE and of nodes 0 and 1 with memory in our cpuset (no EPERM,
 * ENODEV, EACCES), the flags are valid and the pid is 0 (no EINVAL,
 * ESRCH), the arrays are the worker's own (no EFAULT).
 */
static void run_move_pages(const struct op *op)
{
	struct cmd c = {
		.type = C_MOVE_PAGES, .addr = op->addr, .len = op->len,
	};
	int64_t n = op->len / PG;
	char b[64];

	if (co_call(op->w, &c, -1, &co_rep))
		return;
	if (co_rep.ret >= 0 ? co_rep.ret > n :
	    co_rep.ret != -1 || co_rep.err != ENOMEM) {
		fail("worker %" PRId64 " (pid %d): move_pages(%#" PRIx64 ", %" PRId64 " pages) returned %s, expected at most %" PRId64 " pages not migrated, or -1 ENOMEM",
		     op->w, wk[op->w]->pid, op->addr, n,
		     res_str(co_rep.ret, co_rep.err, b, sizeof(b)), n);
		return;
	}
	touch(OP_S(op), OP_E(op));
}

enum { RADV_PAGEOUT, RADV_COLD };
static const char *const radv_names[] = { "pageout", "cold" };

/* The ranges the local madvise() COLD and PAGEOUT get. */
static bool gen_pageout_remote(struct op *op)
{
	op->how = chance(70) ? RADV_PAGEOUT : RADV_COLD;
	return gen_span(op, NO_UFFD, 4 * PMD_PAGES);
}

static bool valid_pageout_remote(const struct op *op)
{
	return have.root && have.pmadv && op_ok(op) &&
	       (op->how == RADV_PAGEOUT || op->how == RADV_COLD) &&
	       room(wk[op->w]) &&
	       range_ok(wk[op->w], OP_S(op), OP_E(op), NO_UFFD);
}

/*
 * The coordinator, a third process, advises worker w's memory with
 * process_madvise(): another mm's tables walked under its mmap lock, the
 * pages possibly mapped through shared tables by other workers too.  The
 * result is predicted as madvise()'s: EINVAL at the first mlocked VMA,
 * else the whole length (one iovec: no partial count).
 */
static void run_pageout_remote(const struct op *op)
{
	struct worker *w = wk[op->w];
	int advice = op->how == RADV_COLD ? MADV_COLD : MADV_PAGEOUT;
	struct iovec iov = { (void *)op->addr, op->len };
	int first, last, err = 0, got, pidfd;
	char b1[64], b2[64];
	long ret;

	reg_range(w, OP_S(op), OP_E(op), &first, &last);
	for (int i = first; i < last && !err; i++)
		err = madv_region(w, &w->reg[i], advice);
	pidfd = syscall(SYS_pidfd_open, w->pid, 0);
	if (pidfd < 0) {
		fail("coordinator: pidfd_open(%d) of worker %" PRId64 ": %s",
		     w->pid, op->w, errname(errno));
		return;
	}
	ret = syscall(SYS_process_madvise, pidfd, &iov, 1, advice, 0);
	got = ret < 0 ? errno : 0;
	close(pidfd);
	if (err ? ret != -1 || got != err : ret != (long)op->len) {
		fail("coordinator: process_madvise(worker %" PRId64 " (pid %d), %#" PRIx64 ", %#" PRIx64 ", %s) returned %s, expected %s",
		     op->w, w->pid, op->addr, op->len, radv_names[op->how],
		     res_str(ret, got, b1, sizeof(b1)),
		     res_str(err ? -1 : (long)op->len, err, b2, sizeof(b2)));
		return;
	}
	touch(OP_S(op), OP_E(op));
}

struct memcg memcg;

static bool gen_reclaim(struct op *op)
{
	op->len = (2 + rnd(15)) << 20;		/* 2..16 MiB */
	return true;
}

static bool valid_reclaim(const struct op *op)
{
	return have.memcg && op->len && op->len <= RECLAIM_MAX;
}

/*
 * Proactive reclaim of the workers' cgroup: pages of any worker, mapped
 * through shared tables or not, are unmapped through the rmap, swapped out
 * or dropped (clean file pages, lazily freed ones).  EAGAIN (less reclaimed
 * than asked) is no failure, nor EINTR when we are being stopped.  Any
 * page may have gone, so everything is read back.
 */
static void run_reclaim(const struct op *op)
{
	char path[96], val[32];
	int ret;

	snprintf(path, sizeof(path), "%s/memory.reclaim", memcg.path);
	snprintf(val, sizeof(val), "%" PRIu64, op->len);
	ret = write_text(path, val);
	if (ret && ret != -EAGAIN && !(ret == -EINTR && stop_requested)) {
		fail("coordinator: writing %s to %s: %s", val, path,
		     errname(-ret));
		return;
	}
	verify_all();
}

/* ------------------------------------------------------------------ */
/* Operations: the process tree                                         */

struct worker *worker_new(int id, pid_t pid, int chan, int parent)
{
	struct worker *w;

	if (id >= nwk) {
		struct worker **n = realloc(wk, (id + 1) * sizeof(*wk));

		if (!n)
			bug("out of memory");
		memset(n + nwk, 0, (id + 1 - nwk) * sizeof(*wk));
		wk = n;
		nwk = id + 1;
	}
	w = calloc(1, sizeof(*w));
	if (!w || !(w->tag = calloc(ARENA_PAGES, sizeof(uint64_t))) ||
	    !(w->st = calloc(ARENA_PAGES, 1)))
		bug("out of memory");
	w->state = W_LIVE;
	w->pid = pid;
	w->chan = chan;
	w->parent = parent;
	wk[id] = w;
	return w;
}

void worker_drop_model(struct worker *w)
{
	splice_free(w);
	free(w->tag);
	free(w->st);
	w->tag = NULL;
	w->st = NULL;
	w->nreg = 0;
}

static const char *const fork_names[] = { "fork", "clone3", "cow" };

static bool gen_fork(struct op *op)
{
	if (live_count() >= opt.procs)
		return false;
	op->w = pick_live();
	op->t = nwk;
	switch (opt.cow) {
	case COW_OFF:
		op->how = chance(60) ? FORK_LIBC : FORK_CLONE3;
		break;
	case COW_ON:
		op->how = FORK_COW;
		break;
	default:
		op->how = chance(50) ? FORK_COW :
			  chance(60) ? FORK_LIBC : FORK_CLONE3;
	}
	return true;
}

static bool valid_fork(const struct op *op)
{
	return live(op->w) && op->t >= 0 && op->t < (1 << 20) &&
	       (op->t >= nwk || !wk[op->t]) && op->how >= 0 && op->how <= 2;
}

/*
 * The worker is sent one end of a new socketpair with the command; its
 * child serves it and says hello; the child's model is its parent's,
 * transformed as fork transforms the address space.
 */
static void run_fork(const struct op *op)
{
	struct cmd c = { .type = C_FORK, .arg = (int)op->how };
	struct worker *child;
	char b[64];
	int sv[2], rc;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		fail("socketpair: %s", strerror(errno));
		return;
	}
	rc = co_call(op->w, &c, sv[1], &co_rep);
	close(sv[1]);
	if (rc || co_rep.ret <= 0) {
		if (!rc)
			fail("worker %" PRId64 " (pid %d): %s returned %s",
			     op->w, wk[op->w]->pid, fork_names[op->how],
			     res_str(co_rep.ret, co_rep.err, b, sizeof(b)));
		close(sv[0]);
		return;
	}
	child = worker_new(op->t, co_rep.ret, sv[0], op->w);
	model_fork(wk[op->w], child);
	/* the child now reaches every anon_vma of its parent */
	for (int i = 0; i < wk[op->w]->nreg; i++)
		wk[op->w]->reg[i].fl &= ~RF_FRESH;
	rc = co_recv(child->chan, &co_rep);
	if (rc)
		worker_lost(op->t, "its first steps", rc);
	else if (co_rep.ret != child->pid)
		fail("worker %" PRId64 ": hello from pid %" PRId64 ", expected %d",
		     op->t, co_rep.ret, child->pid);
}

static bool reapable(int64_t id);

static bool gen_exit(struct op *op)
{
	int zombies = 0;

	for (int i = 0; i < nwk; i++)
		zombies += reapable(i);
	if (live_count() < 2 || zombies >= 8)	/* keep the zombies few */
		return false;
	op->w = pick_live();
	return true;
}

static bool valid_exit(const struct op *op)
{
	return live(op->w) && live_count() >= 2;
}

/*
 * The worker exits; its children are reparented to the coordinator (the
 * subreaper).  Wait until it is a zombie: then the reparenting is done.
 */
static void run_exit(const struct op *op)
{
	struct worker *w = wk[op->w];
	struct cmd c = { .type = C_EXIT };
	char st[96];
	int i;

	if (call(op->w, &c, 0, 0))
		return;
	close(w->chan);
	w->chan = -1;
	w->state = W_ZOMBIE;
	worker_drop_model(w);
	for (i = 0; i < nwk; i++)
		if (wk[i] && wk[i]->parent == op->w)
			wk[i]->parent = COORD;
	for (i = 0; i < 10000 && proc_state(w->pid) != 'Z'; i++)
		usleep(1000);
	if (i == 10000)
		fail("worker %" PRId64 " (pid %d) did not exit: %s", op->w,
		     w->pid, proc_status(w->pid, st, sizeof(st)));
}

static bool reapable(int64_t id)
{
	return id >= 0 && id < nwk && wk[id] && wk[id]->state == W_ZOMBIE &&
	       (wk[id]->parent == COORD || live(wk[id]->parent));
}

static bool gen_wait(struct op *op)
{
	int ids[64], n = 0;

	for (int i = 0; i < nwk && n < 64; i++)
		if (reapable(i))
			ids[n++] = i;
	if (!n)
		return false;
	op->t = ids[rnd(n)];
	return true;
}

static bool valid_wait(const struct op *op)
{
	return reapable(op->t);
}

static int co_waitpid(pid_t pid, int *status)
{
	for (int i = 0; i < REPLY_TIMEOUT_S * 1000; i++) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return 0;
		if (r < 0)
			return -1;
		usleep(1000);
	}
	errno = ETIMEDOUT;
	return -1;
}

/* The parent (a worker, or the coordinator) reaps it: status 0 expected. */
static void run_wait(const struct op *op)
{
	struct worker *z = wk[op->t];
	struct cmd c = { .type = C_WAIT, .pid = z->pid };
	int status;

	if (z->parent == COORD) {
		if (co_waitpid(z->pid, &status)) {
			fail("coordinator: waitpid(%d) of worker %" PRId64 ": %s",
			     z->pid, op->t, strerror(errno));
			return;
		}
	} else {
		if (co_call(z->parent, &c, -1, &co_rep))
			return;
		if (co_rep.ret < 0) {
			fail("worker %d: waitpid(%d) of worker %" PRId64 ": %s",
			     z->parent, z->pid, op->t, errname(co_rep.err));
			return;
		}
		status = (int)co_rep.ret;
	}
	z->state = W_GONE;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail("worker %" PRId64 " (pid %d) ended with status %#x",
		     op->t, z->pid, status);
}

static bool gen_thread(struct op *op)
{
	op->w = pick_live();
	op->how = 2 + rnd(7);
	return true;
}

static bool valid_thread(const struct op *op)
{
	return live(op->w) && op->how >= 1 && op->how <= 64;
}

/* The worker's next how commands are executed by a second thread. */
static void run_thread(const struct op *op)
{
	struct cmd c = { .type = C_THREAD, .arg = (int)op->how };

	call(op->w, &c, 0, 0);
}

/* ------------------------------------------------------------------ */
/* The table of operations                                              */

#define ARRAY_SIZE(a)	((int)(sizeof(a) / sizeof((a)[0])))
#define OPD(n, w, f, fn)						\
	{ n, w, f, NULL, 0, gen_##fn, valid_##fn, run_##fn }
#define OPDH(n, w, f, names, fn)					\
	{ n, w, f, names, ARRAY_SIZE(names), gen_##fn, valid_##fn, run_##fn }

const struct op_desc op_tab[NR_OPS] = {
	[OP_WRITE] = OPD("write", 18, RANGE | FB(TAG), write),
	[OP_READ] = OPD("read", 5, RANGE, read),
	[OP_MMAP] = OPD("mmap", 10, RANGE | FB(KIND) | FB(PROT) | FB(FLAGS) |
			FB(OBJ) | FB(OFF), mmap),
	[OP_MUNMAP] = OPD("munmap", 4, RANGE, munmap),
	[OP_MREMAP_GROW] = OPD("mremap-grow", 2, RANGE | FB(NEWLEN),
			       mremap_grow),
	[OP_MREMAP_SHRINK] = OPD("mremap-shrink", 2, RANGE | FB(NEWLEN),
				 mremap_shrink),
	[OP_MREMAP_MOVE] = OPD("mremap-move", 3, RANGE | FB(TO) | FB(NEWLEN),
			       mremap_move),
	[OP_MREMAP_DONTUNMAP] = OPD("mremap-dontunmap", 2, RANGE | FB(TO),
				    mremap_dontunmap),
	[OP_MREMAP_BESIDE] = OPD("mremap-beside", 4, RANGE | FB(TO) | FB(NEWLEN),
				 mremap_beside),
	[OP_MPROTECT] = OPD("mprotect", 5, RANGE | FB(PROT), mprotect),
	[OP_MADVISE] = OPDH("madvise", 14, RANGE | FB(HOW), adv_names,
			    madvise),
	[OP_MLOCK] = { "mlock", 2, RANGE | FB(HOW), mlock_names,
		       ARRAY_SIZE(mlock_names), gen_lock, valid_lock,
		       run_mlock },
	[OP_MUNLOCK] = { "munlock", 1, RANGE, NULL, 0, gen_lock, valid_lock,
			 run_munlock },
	[OP_GUP_WRITE] = OPDH("gup-write", 4, RANGE | FB(T) | FB(HOW) |
			      FB(TAG), gup_names, gup_write),
	[OP_GUP_READ] = OPDH("gup-read", 2, RANGE | FB(T) | FB(HOW), gup_names,
			     gup_read),
	[OP_FILE_WRITE] = OPD("file-write", 3, FB(W) | FB(OBJ) | FB(OFF) |
			      FB(LEN) | FB(TAG), file_write),
	[OP_FILE_READ] = OPD("file-read", 1, FB(W) | FB(OBJ) | FB(OFF) |
			     FB(LEN), file_read),
	[OP_URING_REG] = OPD("uring-register", 1, RANGE, uring_reg),
	[OP_URING_READ] = OPD("uring-read-fixed", 2, RANGE | FB(OBJ) | FB(OFF),
			      uring_read),
	[OP_URING_UNREG] = OPD("uring-unregister", 1, FB(W), uring_unreg),
	[OP_UFFD_REG] = OPD("uffd-register", 2, RANGE, uffd_reg),
	[OP_UFFD_FILL] = OPDH("uffd-fill", 5, RANGE | FB(HOW) | FB(TAG),
			      fill_names, uffd_fill),
	[OP_UFFD_UNREG] = OPD("uffd-unregister", 1, RANGE, uffd_unreg),
	[OP_FORK] = OPDH("fork", 6, FB(W) | FB(T) | FB(HOW), fork_names, fork),
	[OP_EXIT] = OPD("exit", 3, FB(W), exit),
	[OP_WAIT] = OPD("wait", 4, FB(T), wait),
	[OP_THREAD] = OPD("thread", 2, FB(W) | FB(HOW), thread),
	[OP_VMSPLICE] = OPD("vmsplice", 2, RANGE, vmsplice),
	[OP_PIPE_READ] = OPD("pipe-read", 2, FB(W), pipe_read),
	[OP_MOVE_PAGES] = OPD("move-pages", 2, RANGE, move_pages),
	[OP_PAGEOUT_REMOTE] = OPDH("pageout-remote", 2, RANGE | FB(HOW),
				   radv_names, pageout_remote),
	[OP_RECLAIM] = OPD("reclaim", 1, FB(LEN), reclaim),
	[OP_MSH_ATTACH] = OPD("mshare-attach", 2, FB(W), msh_attach),
	[OP_MSH_DETACH] = OPD("mshare-detach", 1, FB(W), msh_detach),
	[OP_MSH_WRITE] = OPD("mshare-write", 3, FB(W) | FB(OFF) | FB(LEN) |
			     FB(TAG), msh_write),
	[OP_MSH_READ] = OPD("mshare-read", 2, FB(W) | FB(OFF) | FB(LEN),
			    msh_read),
};
