// SPDX-License-Identifier: GPL-2.0
/*
 * ops_mem.c: the recorded, concrete form of an operation, the random
 * choices of ranges and places (biased towards 2 MiB boundaries), and the
 * operations on a worker's own address space: CPU writes and reads, mmap,
 * munmap, mremap, mprotect, madvise, mlock and munlock.  Each operation has
 * a generator (gen_), a precondition check (valid_) and an executor (run_).
 */

#include "fuzz.h"

/* ------------------------------------------------------------------ */
/* Operations: the recorded, concrete form                              */

const struct field fields[NR_FIELDS] = {
	[F_W] = { "w", offsetof(struct op, w), FMT_DEC },
	[F_T] = { "t", offsetof(struct op, t), FMT_DEC },
	[F_ADDR] = { "addr", offsetof(struct op, addr), FMT_HEX },
	[F_LEN] = { "len", offsetof(struct op, len), FMT_HEX },
	[F_TO] = { "to", offsetof(struct op, to), FMT_HEX },
	[F_NEWLEN] = { "newlen", offsetof(struct op, newlen), FMT_HEX },
	[F_PROT] = { "prot", offsetof(struct op, prot), FMT_PROT },
	[F_KIND] = { "kind", offsetof(struct op, kind), FMT_KIND },
	[F_OBJ] = { "obj", offsetof(struct op, obj), FMT_DEC },
	[F_OFF] = { "off", offsetof(struct op, off), FMT_HEX },
	[F_HOW] = { "how", offsetof(struct op, how), FMT_HOW },
	[F_FLAGS] = { "flags", offsetof(struct op, flags), FMT_FLAGS },
	[F_TAG] = { "tag", offsetof(struct op, tag), FMT_HEX },
};

const char *const mf_names[] = { "populate", "fixed" };

void set_range(struct op *op, uint64_t s, uint64_t e)
{
	op->addr = pg_addr(s);
	op->len = (e - s) * PG;
}

/* The op's worker is live and its range lies in the arena. */
bool op_ok(const struct op *op)
{
	return live(op->w) && in_arena(op->addr, op->len);
}

/* ------------------------------------------------------------------ */
/* Random choices, biased towards 2 MiB (PTE table) boundaries          */

int pick_live(void)
{
	int ids[MAX_PROCS * 4], n = live_ids(ids);

	if (!n)
		bug("no live worker");
	return ids[rnd(n)];
}

/* A page in [lo, hi]: an end, on or near a PMD boundary, or anywhere. */
static uint64_t pick_point(uint64_t lo, uint64_t hi)
{
	uint64_t b, k = 1 + rnd(16);

	if (hi <= lo)
		return lo;
	switch (rnd(6)) {
	case 0:
		return lo;
	case 1:
		return hi;
	case 2:
	case 3:
		b = (lo + PMD_PAGES - 1) / PMD_PAGES * PMD_PAGES;
		if (b > hi)
			break;
		b += rnd((hi - b) / PMD_PAGES + 1) * PMD_PAGES;
		switch (rnd(3)) {
		case 0:
			return b;
		case 1:
			return MIN(b + k, hi);
		default:
			return b >= lo + k ? b - k : lo;
		}
	}
	return lo + rnd(hi - lo + 1);
}

/* [s, e) inside [lo, hi), at most maxn pages. */
void pick_range(uint64_t lo, uint64_t hi, uint64_t maxn, uint64_t *s,
		uint64_t *e)
{
	*s = pick_point(lo, hi - 1);
	*e = pick_point(*s + 1, MIN(hi, *s + maxn));
}

/* A random region of w passing region_ok(need), or -1. */
static int pick_region(const struct worker *w, unsigned int need)
{
	int i, n = 0, k;

	for (i = 0; i < w->nreg; i++)
		n += region_ok(&w->reg[i], need);
	if (!n)
		return -1;
	k = rnd(n);
	for (i = 0; i < w->nreg; i++)
		if (region_ok(&w->reg[i], need) && !k--)
			break;
	return i;
}

/*
 * A range satisfying need: part of a region, often extended over its
 * neighbours (and, with HOLES_OK, beyond them).
 */
bool pick_span(const struct worker *w, unsigned int need,
	       uint64_t maxn, uint64_t *s, uint64_t *e)
{
	for (int tries = 0; tries < 8; tries++) {
		int i = pick_region(w, need), j;
		uint64_t lo, hi;

		if (i < 0)
			return false;
		lo = w->reg[i].s;
		hi = w->reg[i].e;
		for (j = i + 1; !(need & ONE_REGION) && j < w->nreg &&
		     chance(35); j++) {
			if ((w->reg[j].s != hi && !(need & HOLES_OK)) ||
			    !region_ok(&w->reg[j], need))
				break;
			hi = w->reg[j].e;
		}
		for (j = i - 1; !(need & ONE_REGION) && j >= 0 && chance(25);
		     j--) {
			if ((w->reg[j].e != lo && !(need & HOLES_OK)) ||
			    !region_ok(&w->reg[j], need))
				break;
			lo = w->reg[j].s;
		}
		if (need & HOLES_OK) {
			hi = MIN(hi + rnd(PMD_PAGES / 2), ARENA_PAGES);
			lo -= MIN(lo, rnd(PMD_PAGES / 2));
		}
		pick_range(lo, hi, maxn, s, e);
		if (range_ok(w, *s, *e, need))
			return true;
	}
	return false;
}

/* A mapping length: a few pages, whole tables, a bit more or less. */
uint64_t gen_npages(uint64_t max)
{
	uint64_t n;

	switch (rnd(8)) {
	case 0:
		n = 1 + rnd(8);
		break;
	case 1:
		n = PMD_PAGES;
		break;
	case 2:
		n = PMD_PAGES * (2 + rnd(3));
		break;
	case 3:
		n = PMD_PAGES + 1 + rnd(16);
		break;
	case 4:
		n = PMD_PAGES - 1 - rnd(16);
		break;
	case 5:
		n = 2 * PMD_PAGES + rnd(PMD_PAGES);
		break;
	default:
		n = 1 + rnd(PMD_PAGES);
	}
	return MAX(1, MIN(n, max));
}

/* Where to put n pages: next to a mapping of w, or near a PMD boundary. */
static uint64_t pick_place(const struct worker *w, uint64_t n)
{
	uint64_t s = rnd(ARENA_PAGES / PMD_PAGES) * PMD_PAGES, k = 1 + rnd(16);
	const struct region *r = w->nreg ? &w->reg[rnd(w->nreg)] : NULL;

	switch (rnd(8)) {
	case 0:
		if (r)
			s = r->e;
		break;
	case 1:
		if (r)
			s = r->s >= n ? r->s - n : 0;
		break;
	case 2:
		s += k;
		break;
	case 3:
		s = s >= k ? s - k : 0;
		break;
	case 4:
		s += rnd(PMD_PAGES);
		break;
	}
	return MIN(s, ARENA_PAGES - n);
}

bool pick_free_place(const struct worker *w, uint64_t n, uint64_t *s)
{
	for (int i = 0; i < 32; i++) {
		*s = pick_place(w, n);
		if (range_free(w, *s, *s + n))
			return true;
	}
	return false;
}

/* A first file page for n pages, often PMD aligned. */
uint64_t pick_file_pages(uint64_t n)
{
	uint64_t max = FILE_PAGES - n;

	if (chance(50))
		return rnd(max / PMD_PAGES + 1) * PMD_PAGES;
	return pick_point(0, max);
}

/* Split at s and e; regions [*first, *last) then make up [s, e). */
void reg_range(struct worker *w, uint64_t s, uint64_t e, int *first,
	       int *last)
{
	reg_split(w, s);
	reg_split(w, e);
	*first = reg_first(w, s);
	for (*last = *first; *last < w->nreg && w->reg[*last].s < e; (*last)++)
		;
}

/* A random live worker and a range of it satisfying need. */
bool gen_span(struct op *op, unsigned int need, uint64_t maxn)
{
	uint64_t s, e;

	op->w = pick_live();
	if (!pick_span(wk[op->w], need, maxn, &s, &e))
		return false;
	set_range(op, s, e);
	return true;
}

/* ------------------------------------------------------------------ */
/* Operations: CPU access                                               */

bool gen_write(struct op *op)
{
	op->tag = op_tag(op->idx);
	return gen_span(op, NEED_W | NO_UFFD, MAX_OP_PAGES);
}

bool valid_write(const struct op *op)
{
	return op_ok(op) && op->len / PG <= MAX_OP_PAGES &&
	       range_ok(wk[op->w], OP_S(op), OP_E(op), NEED_W | NO_UFFD);
}

void run_write(const struct op *op)
{
	struct cmd c = {
		.type = C_WRITE, .addr = op->addr, .len = op->len,
		.tag = op->tag,
	};

	if (call(op->w, &c, 0, 0))
		return;
	store_range(wk[op->w], OP_S(op), OP_E(op), op->tag);
	touch(OP_S(op), OP_E(op));
}

bool gen_read(struct op *op)
{
	return gen_span(op, NEED_R, 4 * READ_CHUNK);
}

bool valid_read(const struct op *op)
{
	return op_ok(op);
}

void run_read(const struct op *op)
{
	verify_range(op->w, OP_S(op), OP_E(op));
	touch(OP_S(op), OP_E(op));
}

/* ------------------------------------------------------------------ */
/* Operations: mmap, munmap, mremap, mprotect                           */

bool gen_mmap(struct op *op)
{
	static const int kind_weights[NR_KINDS] = { 50, 15, 20, 15 };
	struct worker *w;
	uint64_t n, s;
	int i;

	op->w = pick_live();
	w = wk[op->w];
	op->kind = pick_weighted(kind_weights, NR_KINDS);
	n = gen_npages(kind_file(op->kind) ? FILE_PAGES : (uint64_t)cap_pages / 4);
	op->prot = chance(85) ? PROT_READ | PROT_WRITE :
		   chance(70) ? PROT_READ : PROT_NONE;
	op->flags = chance(20) ? MF_POPULATE : 0;
	i = rnd(20);
	if (!i && w->nreg) {
		/* over a mapping, without MAP_FIXED: EEXIST */
		const struct region *r = &w->reg[rnd(w->nreg)];

		s = MIN(pick_point(r->s, r->e - 1), ARENA_PAGES - n);
	} else if (i < 6) {
		/* MAP_FIXED, replacing whatever is there */
		op->flags |= MF_FIXED;
		s = pick_place(w, n);
	} else if (!pick_free_place(w, n, &s)) {
		return false;
	}
	if (kind_file(op->kind)) {
		op->obj = rnd(NR_FILES);
		op->off = pick_file_pages(n) * PG;
	}
	set_range(op, s, s + n);
	return true;
}

bool valid_mmap(const struct op *op)
{
	uint64_t s = OP_S(op), e = OP_E(op);
	bool fixed = op->flags & MF_FIXED;
	struct worker *w;

	if (!op_ok(op) || op->kind < 0 || op->kind >= NR_KINDS ||
	    op->prot < 0 || op->prot > 3 || (op->flags & ~3))
		return false;
	w = wk[op->w];
	if (kind_file(op->kind) &&
	    (op->obj < 0 || op->obj >= NR_FILES || op->off % PG ||
	     op->off / PG + (e - s) > FILE_PAGES))
		return false;
	if ((op->kind == K_SHANON && obj_slot_free() < 0) ||
	    (fixed && overlaps(s, e, w->ur_s, w->ur_e)))
		return false;
	if (fixed)
		return room(w) && under_cap(w, e - s, s, e);
	return room(w) && under_cap(w, range_free(w, s, e) ? e - s : 0, 0, 0);
}

void run_mmap(const struct op *op)
{
	struct worker *w = wk[op->w];
	uint64_t s = OP_S(op), e = OP_E(op);
	bool clash = !(op->flags & MF_FIXED) && !range_free(w, s, e);
	struct cmd c = {
		.type = C_MMAP, .addr = op->addr, .len = op->len,
		.arg = op->prot, .off = op->off,
		.file = kind_file(op->kind) ? op->obj : -1,
	};
	struct region r = {
		.s = s, .e = e, .prot = op->prot, .kind = op->kind,
	};
	struct region *nr;

	c.arg2 = (kind_shared(op->kind) ? MAP_SHARED : MAP_PRIVATE) |
		 (kind_file(op->kind) ? 0 : MAP_ANONYMOUS) |
		 (op->flags & MF_FIXED ? MAP_FIXED : MAP_FIXED_NOREPLACE) |
		 (op->flags & MF_POPULATE ? MAP_POPULATE : 0);
	if (call(op->w, &c, clash ? 0 : (long)op->addr, clash ? EEXIST : 0) ||
	    clash)
		return;
	if (kind_file(op->kind)) {
		r.obj = op->obj;
		r.pgoff = op->off / PG;
	} else if (op->kind == K_SHANON) {
		r.obj = obj_new(e - s);
	}
	nr = map_region(w, &r);
	if (op->flags & MF_POPULATE)
		populate_write(w, nr, s, e);
	touch(s, e);
}

bool gen_munmap(struct op *op)
{
	return gen_span(op, HOLES_OK, 4 * PMD_PAGES);
}

bool valid_munmap(const struct op *op)
{
	return op_ok(op) && room(wk[op->w]);
}

void run_munmap(const struct op *op)
{
	struct worker *w = wk[op->w];
	struct cmd c = { .type = C_MUNMAP, .addr = op->addr, .len = op->len };
	struct cmd unreg = { .type = C_URING_UNREG };

	if (overlaps(OP_S(op), OP_E(op), w->ur_s, w->ur_e)) {
		/* unregister the fixed buffer before unmapping it */
		if (call(op->w, &unreg, 0, 0))
			return;
		w->ur_s = w->ur_e = 0;
	}
	if (call(op->w, &c, 0, 0))
		return;
	reg_unmap(w, OP_S(op), OP_E(op));
	touch(OP_S(op), OP_E(op));
}

#define MREMAP_NEED	(NO_UFFD | NO_URING | ONE_REGION)

bool gen_mremap_grow(struct op *op)
{
	struct worker *w;
	const struct region *r;
	int i;

	op->w = pick_live();
	w = wk[op->w];
	i = pick_region(w, NO_UFFD);
	if (i < 0)
		return false;
	r = &w->reg[i];
	set_range(op, pick_point(r->s, r->e - 1), r->e);
	op->newlen = op->len + gen_npages(2 * PMD_PAGES) * PG;
	return true;
}

bool valid_mremap_grow(const struct op *op)
{
	uint64_t s = OP_S(op), e = OP_E(op), ne;
	struct worker *w;
	struct region *r;

	if (!op_ok(op) || !in_arena(op->addr, op->newlen) ||
	    op->newlen <= op->len)
		return false;
	w = wk[op->w];
	r = reg_at(w, s);
	ne = s + op->newlen / PG;
	return r && r->e == e && r->kind != K_SHANON &&
	       range_ok(w, s, e, MREMAP_NEED) && range_free(w, e, ne) &&
	       (!kind_file(r->kind) || r->pgoff + (ne - r->s) <= FILE_PAGES) &&
	       under_cap(w, ne - e, 0, 0) && room(w);
}

void run_mremap_grow(const struct op *op)
{
	struct worker *w = wk[op->w];
	uint64_t s = OP_S(op), e = OP_E(op), ne = s + op->newlen / PG;
	struct cmd c = {
		.type = C_MREMAP, .addr = op->addr, .len = op->len,
		.len2 = op->newlen,
	};
	struct region *r;

	if (call(op->w, &c, (long)op->addr, 0))
		return;
	r = reg_at(w, s);
	r->e = ne;
	pages_init(w, r, e, ne);
	if ((r->fl & RF_LOCKED) && !(r->fl & RF_ONFAULT))
		populate_write(w, r, e, ne);
	touch(s, ne);
}

bool gen_mremap_shrink(struct op *op)
{
	if (!gen_span(op, MREMAP_NEED, 4 * PMD_PAGES) || op->len < 2 * PG)
		return false;
	op->newlen = (pick_point(OP_S(op) + 1, OP_E(op) - 1) - OP_S(op)) * PG;
	return true;
}

bool valid_mremap_shrink(const struct op *op)
{
	return op_ok(op) && op->newlen && !(op->newlen % PG) &&
	       op->newlen < op->len && room(wk[op->w]) &&
	       range_ok(wk[op->w], OP_S(op), OP_E(op), MREMAP_NEED);
}

void run_mremap_shrink(const struct op *op)
{
	struct cmd c = {
		.type = C_MREMAP, .addr = op->addr, .len = op->len,
		.len2 = op->newlen,
	};

	if (call(op->w, &c, (long)op->addr, 0))
		return;
	reg_unmap(wk[op->w], OP_S(op) + op->newlen / PG, OP_E(op));
	touch(OP_S(op), OP_E(op));
}

/*
 * Not from an mlocked VMA: 6.12 splits it first and unlocks only the moved
 * part of the old range, 6.18 unlocks the whole old VMA, whose extent the
 * model does not know.
 */
#define DONTUNMAP_NEED	(NEED_ANON | NO_LOCKED)

/* mremap(MREMAP_MAYMOVE | MREMAP_FIXED [| MREMAP_DONTUNMAP]) */
static bool gen_move(struct op *op, unsigned int need, bool grow)
{
	struct worker *w;
	uint64_t s, e, nn, to;
	int tries;

	op->w = pick_live();
	w = wk[op->w];
	if (!pick_span(w, need | MREMAP_NEED, 4 * PMD_PAGES, &s, &e))
		return false;
	nn = e - s;
	if (grow && reg_at(w, s)->kind != K_SHANON && chance(30))
		nn += gen_npages(PMD_PAGES);
	for (tries = 0; tries < 16; tries++) {
		to = pick_place(w, nn);
		if (!overlaps(to, to + nn, s, e) &&
		    !overlaps(to, to + nn, w->ur_s, w->ur_e))
			break;
	}
	if (tries == 16)
		return false;
	set_range(op, s, e);
	op->to = pg_addr(to);
	op->newlen = nn * PG;
	return true;
}

static bool valid_move(const struct op *op, bool dontunmap)
{
	unsigned int need = dontunmap ? DONTUNMAP_NEED : 0;
	uint64_t newlen = dontunmap ? op->len : op->newlen;
	uint64_t s = OP_S(op), e = OP_E(op), to, ne;
	struct worker *w;
	struct region *r;

	if (!op_ok(op) || !in_arena(op->to, newlen) || newlen < op->len)
		return false;
	w = wk[op->w];
	r = reg_at(w, s);
	to = addr_pg(op->to);
	ne = to + newlen / PG;
	if (!r || !range_ok(w, s, e, need | MREMAP_NEED) ||
	    overlaps(s, e, to, ne) || overlaps(to, ne, w->ur_s, w->ur_e))
		return false;
	if (newlen > op->len &&
	    (r->kind == K_SHANON ||
	     (kind_file(r->kind) &&
	      r->pgoff + (s - r->s) + (ne - to) > FILE_PAGES)))
		return false;
	return room(w) &&
	       under_cap(w, (ne - to) - (dontunmap ? 0 : e - s), to, ne);
}

static void run_move(const struct op *op, uint64_t newlen, bool dontunmap)
{
	uint64_t to = addr_pg(op->to);
	struct cmd c = {
		.type = C_MREMAP, .addr = op->addr, .len = op->len,
		.addr2 = op->to, .len2 = newlen,
		.arg = MREMAP_MAYMOVE | MREMAP_FIXED |
		       (dontunmap ? MREMAP_DONTUNMAP : 0),
	};

	if (call(op->w, &c, (long)op->to, 0))
		return;
	model_move(wk[op->w], OP_S(op), OP_E(op), to, newlen / PG, dontunmap);
	touch(OP_S(op), OP_E(op));
	touch(to, to + newlen / PG);
}

bool gen_mremap_move(struct op *op)
{
	return gen_move(op, 0, true);
}

bool valid_mremap_move(const struct op *op)
{
	return valid_move(op, false);
}

void run_mremap_move(const struct op *op)
{
	run_move(op, op->newlen, false);
}

bool gen_mremap_dontunmap(struct op *op)
{
	return gen_move(op, DONTUNMAP_NEED, false);
}

bool valid_mremap_dontunmap(const struct op *op)
{
	return valid_move(op, true);
}

void run_mremap_dontunmap(const struct op *op)
{
	run_move(op, op->len, true);
}

/*
 * mremap() of part of a region to right beside the rest of it, maybe
 * growing.  For private anonymous memory the two pieces share an
 * anon_vma, so the kernel may give the moved part's pages new indexes to
 * merge it there (vm.mremap_relocate_anon).  Whatever it does, every page
 * must read the same afterwards, and the rmap must still find them
 * (reclaim, move-pages, pageout-remote).
 */
bool gen_mremap_beside(struct op *op)
{
	const struct region *r;
	struct worker *w;
	uint64_t s, e, n, to;

	op->w = pick_live();
	w = wk[op->w];
	/* mostly memory no forked process reaches, which may relocate */
	if ((!chance(70) ||
	     !pick_span(w, MREMAP_NEED | NEED_FRESH, 4 * PMD_PAGES, &s, &e)) &&
	    !pick_span(w, MREMAP_NEED, 4 * PMD_PAGES, &s, &e))
		return false;
	r = reg_at(w, s);
	n = e - s;
	if (e < r->e && (s == r->s || chance(50)))
		to = r->e;		/* after the rest */
	else if (s > r->s && r->s >= n)
		to = r->s - n;		/* before it */
	else
		return false;
	if (to == r->e && r->kind != K_SHANON && chance(30))
		n += gen_npages(PMD_PAGES);
	if (kind_file(r->kind) && r->pgoff + (s - r->s) + n > FILE_PAGES)
		n = e - s;	/* the file ends there */
	if (!in_arena(pg_addr(to), n * PG) || !range_free(w, to, to + n) ||
	    overlaps(to, to + n, w->ur_s, w->ur_e))
		return false;
	set_range(op, s, e);
	op->to = pg_addr(to);
	op->newlen = n * PG;
	return true;
}

bool valid_mremap_beside(const struct op *op)
{
	return valid_move(op, false);
}

void run_mremap_beside(const struct op *op)
{
	run_move(op, op->newlen, false);
}

bool gen_mprotect(struct op *op)
{
	if (!gen_span(op, NO_UFFD, 4 * PMD_PAGES))
		return false;
	op->prot = chance(50) ? PROT_READ | PROT_WRITE :
		   chance(70) ? PROT_READ : PROT_NONE;
	return true;
}

bool valid_mprotect(const struct op *op)
{
	return op_ok(op) && (op->prot == PROT_NONE || op->prot == PROT_READ ||
			     op->prot == (PROT_READ | PROT_WRITE)) &&
	       room(wk[op->w]) &&
	       range_ok(wk[op->w], OP_S(op), OP_E(op), NO_UFFD);
}

void run_mprotect(const struct op *op)
{
	struct worker *w = wk[op->w];
	struct cmd c = {
		.type = C_MPROTECT, .addr = op->addr, .len = op->len,
		.arg = op->prot,
	};
	int first, last;

	if (call(op->w, &c, 0, 0))
		return;
	reg_range(w, OP_S(op), OP_E(op), &first, &last);
	for (int i = first; i < last; i++)
		w->reg[i].prot = op->prot;
	touch(OP_S(op), OP_E(op));
}

/* ------------------------------------------------------------------ */
/* Operations: madvise, mlock                                           */

const struct advice advices[] = {
	{ "dontneed", MADV_DONTNEED, 8, NO_URING },
	{ "free", MADV_FREE, 6, NO_UFFD | NO_URING },
	{ "cold", MADV_COLD, 3, NO_UFFD },
	{ "pageout", MADV_PAGEOUT, 4, NO_UFFD },
	{ "willneed", MADV_WILLNEED, 2, NO_UFFD },
	{ "populate_read", MADV_POPULATE_READ, 3, NEED_R | NO_UFFD },
	{ "populate_write", MADV_POPULATE_WRITE, 3, NEED_W | NO_UFFD },
	{ "hugepage", MADV_HUGEPAGE, 4, NO_UFFD },
	{ "nohugepage", MADV_NOHUGEPAGE, 2, NO_UFFD },
	{ "collapse", MADV_COLLAPSE, 3, NO_UFFD },
	{ "dontfork", MADV_DONTFORK, 2, NO_UFFD },
	{ "dofork", MADV_DOFORK, 2, NO_UFFD },
	{ "wipeonfork", MADV_WIPEONFORK, 2, NO_UFFD },
	{ "keeponfork", MADV_KEEPONFORK, 2, NO_UFFD },
	{ "mergeable", MADV_MERGEABLE, 1, NO_UFFD },
	{ "unmergeable", MADV_UNMERGEABLE, 1, NO_UFFD },
};
_Static_assert(sizeof(advices) / sizeof(advices[0]) == NR_ADVICES,
	       "NR_ADVICES in fuzz.h is not the number of advices[]");
const char *adv_names[NR_ADVICES];		/* filled from advices[] */

/*
 * madvise() on the whole region r: the errno the kernel returns for it
 * (0: success), with the model updated.  The kernel walks the VMAs in
 * address order and stops at the first error.
 */
int madv_region(struct worker *w, struct region *r, int advice)
{
	bool locked = r->fl & RF_LOCKED;

	switch (advice) {
	case MADV_DONTNEED:
		if (locked)
			return EINVAL;
		zap_pages(w, r, r->s, r->e);
		return 0;
	case MADV_FREE:
		if (locked || r->kind != K_ANON)
			return EINVAL;
		for (uint64_t pg = r->s; pg < r->e; pg++)
			if (w->st[pg] == ST_PRIV && w->tag[pg])
				w->st[pg] = ST_MAYBE0;
		return 0;
	case MADV_COLD:
	case MADV_PAGEOUT:
		return locked ? EINVAL : 0;
	case MADV_WILLNEED:
		return r->kind == K_ANON && !have.swap ? EBADF : 0;
	case MADV_POPULATE_WRITE:
		populate_write(w, r, r->s, r->e);
		return 0;
	case MADV_HUGEPAGE:
	case MADV_NOHUGEPAGE:
		return have.thp ? 0 : EINVAL;
	case MADV_DONTFORK:
		r->fl |= RF_DONTFORK;
		return 0;
	case MADV_DOFORK:
		r->fl &= ~RF_DONTFORK;
		return 0;
	case MADV_WIPEONFORK:
		if (r->kind != K_ANON)
			return EINVAL;
		r->fl |= RF_WIPE;
		return 0;
	case MADV_KEEPONFORK:
		r->fl &= ~RF_WIPE;
		return 0;
	case MADV_MERGEABLE:
	case MADV_UNMERGEABLE:
		return have.ksm ? 0 : EINVAL;
	}
	return 0;	/* POPULATE_READ, COLLAPSE (see run_madvise) */
}

bool gen_madvise(struct op *op)
{
	int weights[NR_ADVICES];

	for (int i = 0; i < NR_ADVICES; i++)
		weights[i] = advices[i].weight;
	op->how = pick_weighted(weights, NR_ADVICES);
	return gen_span(op, advices[op->how].need, 4 * PMD_PAGES);
}

bool valid_madvise(const struct op *op)
{
	return op_ok(op) && op->how >= 0 && op->how < NR_ADVICES &&
	       room(wk[op->w]) &&
	       range_ok(wk[op->w], OP_S(op), OP_E(op), advices[op->how].need);
}

void run_madvise(const struct op *op)
{
	const struct advice *a = &advices[op->how];
	struct worker *w = wk[op->w];
	struct cmd c = {
		.type = C_MADVISE, .addr = op->addr, .len = op->len,
		.arg = a->advice,
	};
	int first, last, err = 0, got;

	reg_range(w, OP_S(op), OP_E(op), &first, &last);
	for (int i = first; i < last && !err; i++)
		err = madv_region(w, &w->reg[i], a->advice);
	if (a->advice != MADV_COLLAPSE) {
		if (call(op->w, &c, 0, err))
			return;
	} else {
		/* no content change; it may legitimately fail */
		if (co_call(op->w, &c, -1, &co_rep))
			return;
		got = co_rep.ret ? co_rep.err : 0;
		if (got != EAGAIN && got != EINVAL && got != ENOMEM &&
		    !expect_res(op->w, &c, &co_rep, 0, 0))
			return;
	}
	touch(OP_S(op), OP_E(op));
}

const char *const mlock_names[] = { "lock", "onfault" };

bool gen_lock(struct op *op)
{
	op->how = chance(25);
	return gen_span(op, NO_UFFD, 4 * PMD_PAGES);
}

bool valid_lock(const struct op *op)
{
	return have.root && op_ok(op) && (op->how == 0 || op->how == 1) &&
	       room(wk[op->w]) &&
	       range_ok(wk[op->w], OP_S(op), OP_E(op), NO_UFFD);
}

/*
 * mlock() locks the whole range, then populates it VMA by VMA (breaking
 * COW of writable private file pages) and fails with ENOMEM at the first
 * PROT_NONE one; MLOCK_ONFAULT populates nothing.
 */
void run_mlock(const struct op *op)
{
	struct worker *w = wk[op->w];
	struct cmd c = {
		.type = C_MLOCK, .addr = op->addr, .len = op->len,
		.arg = (int)op->how,
	};
	int first, last, i, err = 0;

	reg_range(w, OP_S(op), OP_E(op), &first, &last);
	for (i = first; i < last; i++) {
		w->reg[i].fl |= RF_LOCKED;
		if (op->how)
			w->reg[i].fl |= RF_ONFAULT;
		else
			w->reg[i].fl &= ~RF_ONFAULT;
	}
	for (i = first; i < last && !op->how; i++) {
		struct region *r = &w->reg[i];

		if (r->prot == PROT_NONE) {
			err = ENOMEM;
			break;
		}
		populate_write(w, r, r->s, r->e);
	}
	if (call(op->w, &c, 0, err))
		return;
	touch(OP_S(op), OP_E(op));
}

void run_munlock(const struct op *op)
{
	struct worker *w = wk[op->w];
	struct cmd c = { .type = C_MUNLOCK, .addr = op->addr, .len = op->len };
	int first, last;

	reg_range(w, OP_S(op), OP_E(op), &first, &last);
	for (int i = first; i < last; i++)
		w->reg[i].fl &= ~(RF_LOCKED | RF_ONFAULT);
	if (!call(op->w, &c, 0, 0))
		touch(OP_S(op), OP_E(op));
}
