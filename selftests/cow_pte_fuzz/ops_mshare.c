// SPDX-License-Identifier: GPL-2.0
/*
 * ops_mshare.c - an msharefs region in the tree: workers attach it, detach
 * it, write and read it, and fork with it (every fork method keeps it, as
 * a shared mapping), while the rest of the fuzzer shares, breaks and drops
 * PTE tables around it.
 *
 * Each tree gets one region (mshare_create(), from files_create()) of
 * MSH_SIZE with one shared anonymous object of MSH_PAGES at its start,
 * modelled as object MSH_OBJ: a page reads the last tag any worker wrote
 * into it, or zero.  Every worker maps it at MSH_ADDR, outside the arena,
 * so no arena operation reaches it; w->msh says whether a worker maps it.
 */
#include <linux/msharefs.h>

#include "fuzz.h"

#define MSHARE_DIR	"/sys/fs/mshare"
#define MSHARE_MAGIC	0x4d534852

/* msharefs is there, or mounted now: the mshare ops run. */
void mshare_detect(void)
{
	struct statfs sf;

	if (statfs(MSHARE_DIR, &sf) || sf.f_type != MSHARE_MAGIC)
		if (!have.root || mount("none", MSHARE_DIR, "msharefs", 0, NULL)) {
			printf("# no msharefs at %s (%s): mshare ops disabled\n",
			       MSHARE_DIR, strerror(errno));
			return;
		}
	have.mshare = true;
}

/* This tree's region into file_fd[MSH_FILE] and its model, MSH_OBJ. */
void mshare_create(void)
{
	struct mshare_create mc = {
		.size = MSH_PAGES * PG,
		.prot = PROT_READ | PROT_WRITE,
		.flags = MAP_SHARED | MAP_FIXED | MAP_ANONYMOUS,
	};
	char path[128];
	int fd;

	if (!have.mshare)
		return;
	snprintf(path, sizeof(path), MSHARE_DIR "/cow_pte_fuzz-%d", getpid());
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		die("creating %s: %s", path, strerror(errno));
	/* the fd keeps it; the workers inherit the fd */
	if (unlink(path) || ftruncate(fd, MSH_SIZE) ||
	    ioctl(fd, MSHAREFS_CREATE_MAPPING, &mc))
		die("setting up the msharefs region: %s", strerror(errno));
	file_fd[MSH_FILE] = fd;
	objs[MSH_OBJ].npages = MSH_PAGES;
	objs[MSH_OBJ].tag = calloc(MSH_PAGES, sizeof(uint64_t));
	if (!objs[MSH_OBJ].tag)
		bug("out of memory");
}

static int pick_attached(bool attached)
{
	int ids[MAX_PROCS * 4], n = live_ids(ids), m = 0;

	for (int i = 0; i < n; i++)
		if (wk[ids[i]]->msh == attached)
			ids[m++] = ids[i];
	return m ? ids[rnd(m)] : -1;
}

static bool attached(const struct op *op, bool want)
{
	return have.mshare && live(op->w) && wk[op->w]->msh == want;
}

/* A range of the object: op->off and op->len in bytes, at most max pages. */
static bool msh_range_ok(const struct op *op, uint64_t max)
{
	return !(op->off % PG) && !(op->len % PG) && op->len &&
	       op->len / PG <= max && op->off / PG < MSH_PAGES &&
	       op->len / PG <= MSH_PAGES - op->off / PG;
}

static void msh_pick_range(struct op *op, uint64_t max)
{
	uint64_t s = rnd(MSH_PAGES), n = 1 + rnd(MIN(max, MSH_PAGES - s));

	op->off = s * PG;
	op->len = n * PG;
}

bool gen_msh_attach(struct op *op)
{
	op->w = pick_attached(false);
	return op->w >= 0;
}

bool valid_msh_attach(const struct op *op)
{
	return attached(op, false);
}

void run_msh_attach(const struct op *op)
{
	struct cmd c = {
		.type = C_MMAP, .addr = MSH_ADDR, .len = MSH_SIZE,
		.arg = PROT_READ | PROT_WRITE, .arg2 = MAP_SHARED | MAP_FIXED,
		.file = MSH_FILE,
	};

	if (call(op->w, &c, MSH_ADDR, 0))
		return;
	wk[op->w]->msh = true;
	stats.mshare++;
}

bool gen_msh_detach(struct op *op)
{
	op->w = pick_attached(true);
	return op->w >= 0;
}

bool valid_msh_detach(const struct op *op)
{
	return attached(op, true);
}

void run_msh_detach(const struct op *op)
{
	struct cmd c = { .type = C_MUNMAP, .addr = MSH_ADDR, .len = MSH_SIZE };

	if (call(op->w, &c, 0, 0))
		return;
	wk[op->w]->msh = false;
	stats.mshare++;
}

/* Pages [pg, pg + n) of the object as worker id reads them. */
static void msh_check(int id, uint64_t pg, uint64_t n, const char *how)
{
	struct cmd c = { .type = C_READ, .addr = MSH_ADDR + pg * PG, .len = n * PG };

	if (co_call(id, &c, -1, &co_rep))
		return;
	if (co_rep.sig) {
		fail("worker %d (pid %d): %s reading the msharefs region at page %#" PRIx64,
		     id, wk[id]->pid, strsignal(co_rep.sig), pg);
		return;
	}
	if (co_rep.ret || co_rep.n != n) {
		fail("worker %d: bad answer to a read of the msharefs region (%" PRId64 ", %u pages)",
		     id, co_rep.ret, co_rep.n);
		return;
	}
	for (uint64_t i = 0; i < n && !failure.failed; i++)
		check_obj_page(MSH_OBJ, pg + i, co_rep.tags[i], &co_rep, how);
}

bool gen_msh_write(struct op *op)
{
	op->w = pick_attached(true);
	if (op->w < 0)
		return false;
	msh_pick_range(op, 64);
	op->tag = op_tag(op->idx);
	return true;
}

bool valid_msh_write(const struct op *op)
{
	return attached(op, true) && msh_range_ok(op, MAX_OP_PAGES);
}

void run_msh_write(const struct op *op)
{
	struct cmd c = {
		.type = C_WRITE, .addr = MSH_ADDR + op->off, .len = op->len,
		.tag = op->tag,
	};

	int ids[MAX_PROCS * 4], n = live_ids(ids);

	if (call(op->w, &c, 0, 0))
		return;
	for (uint64_t i = 0; i < op->len / PG; i++)
		objs[MSH_OBJ].tag[op->off / PG + i] = op->tag + i;
	stats.mshare++;
	/* one set of page tables: every other worker reads the write */
	for (int i = 0; i < n && !failure.failed; i++)
		if (ids[i] != op->w && wk[ids[i]]->msh)
			msh_check(ids[i], op->off / PG, op->len / PG,
				  "mshare write, read by another worker");
}

bool gen_msh_read(struct op *op)
{
	op->w = pick_attached(true);
	if (op->w < 0)
		return false;
	msh_pick_range(op, READ_CHUNK);
	return true;
}

bool valid_msh_read(const struct op *op)
{
	return attached(op, true) && msh_range_ok(op, READ_CHUNK);
}

void run_msh_read(const struct op *op)
{
	msh_check(op->w, op->off / PG, op->len / PG, "mshare read");
	stats.mshare++;
}

/* verify_all(): the whole object, through every worker that maps it. */
void verify_mshare(void)
{
	int ids[MAX_PROCS * 4], n = live_ids(ids);

	for (int i = 0; i < n && !failure.failed; i++)
		if (wk[ids[i]]->msh)
			for (uint64_t pg = 0; pg < MSH_PAGES && !failure.failed;
			     pg += READ_CHUNK)
				msh_check(ids[i], pg, MIN(READ_CHUNK, MSH_PAGES - pg),
					  "mshare verify");
}
