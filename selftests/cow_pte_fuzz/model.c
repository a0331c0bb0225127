// SPDX-License-Identifier: GPL-2.0
/*
 * model.c: the reference model (per worker, its regions and per arena page
 * a state and a tag; the objects and their pages) and how each kind of
 * change transforms it, the checks that read pages back in the workers and
 * compare them with the model, and the kernel log scan.
 */

#include "fuzz.h"

/* ------------------------------------------------------------------ */
/* The model                                                            */

const char *const kind_names[NR_KINDS] = {
	"anon", "shanon", "pfile", "sfile",
};

static const char *const rf_names[] = {
	"dontfork", "wipeonfork", "locked", "onfault", "uffd",
};

static const char *const st_names[] = {
	"private", "private-or-zero", "file page", "uffd-missing",
};

const char *const prot_names[] = { "none", "r", "w", "rw" };

struct worker **wk;
int nwk;			/* slots used in wk[] */
struct object objs[MAX_OBJS];
int nobjs;
long cap_pages;			/* --mem, in pages */

void __attribute__((noreturn)) bug(const char *what)
{
	die("internal error: %s", what);
}

bool live(int64_t id)
{
	return id >= 0 && id < nwk && wk[id] && wk[id]->state == W_LIVE;
}

int live_ids(int *ids)
{
	int n = 0;

	for (int i = 0; i < nwk && n < MAX_PROCS * 4; i++)
		if (live(i))
			ids[n++] = i;
	return n;
}

int live_count(void)
{
	int ids[MAX_PROCS * 4];

	return live_ids(ids);
}

/* Index of the first region ending after page pg (nreg if none). */
int reg_first(const struct worker *w, uint64_t pg)
{
	int i;

	for (i = 0; i < w->nreg && w->reg[i].e <= pg; i++)
		;
	return i;
}

struct region *reg_at(struct worker *w, uint64_t pg)
{
	int i = reg_first(w, pg);

	return i < w->nreg && w->reg[i].s <= pg ? &w->reg[i] : NULL;
}

/* Make pg a region boundary. */
void reg_split(struct worker *w, uint64_t pg)
{
	int i = reg_first(w, pg);
	struct region *r;

	if (i == w->nreg || w->reg[i].s >= pg)
		return;
	if (w->nreg == MAX_REGIONS)
		bug("too many regions");
	r = &w->reg[i];
	memmove(r + 1, r, (w->nreg - i) * sizeof(*r));
	w->nreg++;
	r->e = pg;
	r[1].pgoff += pg - r[1].s;
	r[1].s = pg;
}

void reg_unmap(struct worker *w, uint64_t s, uint64_t e)
{
	int i, j;

	reg_split(w, s);
	reg_split(w, e);
	i = reg_first(w, s);
	for (j = i; j < w->nreg && w->reg[j].s < e; j++)
		;
	memmove(&w->reg[i], &w->reg[j], (w->nreg - j) * sizeof(w->reg[0]));
	w->nreg -= j - i;
}

/* Insert a region into a free range. */
static struct region *reg_add(struct worker *w, const struct region *nr)
{
	int i = reg_first(w, nr->s);

	if (w->nreg == MAX_REGIONS)
		bug("too many regions");
	if (i < w->nreg && w->reg[i].s < nr->e)
		bug("region added over another");
	memmove(&w->reg[i + 1], &w->reg[i], (w->nreg - i) * sizeof(*nr));
	w->reg[i] = *nr;
	w->nreg++;
	return &w->reg[i];
}

bool range_free(const struct worker *w, uint64_t s, uint64_t e)
{
	int i = reg_first(w, s);

	return i == w->nreg || w->reg[i].s >= e;
}

static uint64_t overlap_pages(const struct worker *w, uint64_t s, uint64_t e)
{
	uint64_t n = 0;

	for (int i = reg_first(w, s); i < w->nreg && w->reg[i].s < e; i++)
		n += MIN(e, w->reg[i].e) - MAX(s, w->reg[i].s);
	return n;
}

/*
 * Whether w may map add more pages after [s, e) is unmapped: the --mem cap,
 * only while generating (a replay never refuses what was generated).
 */
bool under_cap(const struct worker *w, uint64_t add, uint64_t s,
	       uint64_t e)
{
	return !generating ||
	       overlap_pages(w, 0, ARENA_PAGES) - overlap_pages(w, s, e) + add <=
	       (uint64_t)cap_pages;
}

/* Room for the splits and additions of one operation. */
bool room(const struct worker *w)
{
	return w->nreg <= MAX_REGIONS - 8;
}

static uint64_t *obj_slot(const struct region *r, uint64_t pg)
{
	return &objs[r->obj].tag[r->pgoff + (pg - r->s)];
}

/* A free slot for a shared anonymous object, or -1. */
int obj_slot_free(void)
{
	for (int i = FIRST_SHANON; i < MAX_OBJS; i++)
		if (!objs[i].tag)
			return i;
	return -1;
}

int obj_new(uint64_t npages)
{
	int i = obj_slot_free();

	if (i < 0)
		bug("too many objects");
	objs[i].npages = npages;
	objs[i].tag = calloc(npages, sizeof(uint64_t));
	if (!objs[i].tag)
		bug("out of memory");
	nobjs = MAX(nobjs, i + 1);
	return i;
}

struct expect page_expect(const struct worker *w,
			  const struct region *r, uint64_t pg)
{
	struct expect x = { 0, false, false };

	if (kind_shared(r->kind)) {
		x.tag = *obj_slot(r, pg);
		return x;
	}
	switch (w->st[pg]) {
	case ST_MAYBE0:
		x.or_zero = true;
		/* fall through */
	case ST_PRIV:
		x.tag = w->tag[pg];
		break;
	case ST_OBJ:
		x.tag = *obj_slot(r, pg);
		break;
	default:
		x.skip = true;
	}
	return x;
}

/* Remember a store into a worker that has pages in its pipe. */
static void splice_note(struct splice *sp, uint64_t tag)
{
	if (sp->nlater == sp->cap) {
		size_t cap = sp->cap ? 2 * sp->cap : 256;
		uint64_t *n = realloc(sp->later, cap * sizeof(*n));

		if (!n)
			bug("out of memory");
		sp->later = n;
		sp->cap = cap;
	}
	sp->later[sp->nlater++] = tag;
}

void splice_free(struct worker *w)
{
	if (w->sp) {
		free(w->sp->later);
		free(w->sp);
		w->sp = NULL;
	}
}

/* A store of tag to page pg of w, by any path. */
void page_store(struct worker *w, const struct region *r, uint64_t pg,
		uint64_t tag)
{
	if (w->sp)
		splice_note(w->sp, tag);
	if (kind_shared(r->kind)) {
		*obj_slot(r, pg) = tag;
	} else {
		w->st[pg] = ST_PRIV;
		w->tag[pg] = tag;
	}
}

/* Pages [s, e) of w get tag, tag + 1, ... */
void store_range(struct worker *w, uint64_t s, uint64_t e, uint64_t tag)
{
	for (uint64_t pg = s; pg < e; pg++) {
		struct region *r = reg_at(w, pg);

		if (!r)
			bug("store outside the regions");
		page_store(w, r, pg, tag + (pg - s));
	}
}

/* Fresh pages of r (new mapping, grown part): zero, missing or the file. */
void pages_init(struct worker *w, const struct region *r, uint64_t s,
		uint64_t e)
{
	int st = kind_file(r->kind) || kind_shared(r->kind) ? ST_OBJ :
		 (r->fl & RF_UFFD) ? ST_MISSING : ST_PRIV;

	memset(&w->st[s], st, e - s);
	memset(&w->tag[s], 0, (e - s) * sizeof(uint64_t));
}

/*
 * Populating a writable private mapping (mlock, MAP_POPULATE, mremap of a
 * locked VMA, MADV_POPULATE_WRITE) write-faults it: file pages are copied.
 */
void populate_write(struct worker *w, const struct region *r,
		    uint64_t s, uint64_t e)
{
	if (r->kind != K_PFILE || !(r->prot & PROT_WRITE))
		return;
	for (uint64_t pg = s; pg < e; pg++) {
		if (w->st[pg] == ST_OBJ) {
			w->st[pg] = ST_PRIV;
			w->tag[pg] = *obj_slot(r, pg);
		}
	}
}

/* MADV_DONTNEED: private pages go, file pages show the file again. */
void zap_pages(struct worker *w, const struct region *r, uint64_t s,
	       uint64_t e)
{
	if (!kind_shared(r->kind))
		pages_init(w, r, s, e);
}

struct region *map_region(struct worker *w, const struct region *nr)
{
	struct region *r;

	reg_unmap(w, nr->s, nr->e);
	r = reg_add(w, nr);
	if (r->kind == K_ANON)
		r->fl |= RF_FRESH;
	pages_init(w, r, r->s, r->e);
	return r;
}

/* The child's model after fork (DONTFORK, WIPEONFORK, mlock, uffd). */
void model_fork(const struct worker *p, struct worker *c)
{
	memcpy(c->tag, p->tag, ARENA_PAGES * sizeof(uint64_t));
	memcpy(c->st, p->st, ARENA_PAGES);
	c->nreg = 0;
	for (int i = 0; i < p->nreg; i++) {
		struct region r = p->reg[i];

		if (r.fl & RF_DONTFORK)
			continue;
		r.fl &= ~(RF_LOCKED | RF_ONFAULT | RF_UFFD | RF_FRESH);
		for (uint64_t pg = r.s; pg < r.e; pg++) {
			if (r.kind == K_ANON && ((r.fl & RF_WIPE) ||
						 c->st[pg] == ST_MISSING)) {
				c->st[pg] = ST_PRIV;
				c->tag[pg] = 0;
			}
		}
		c->reg[c->nreg++] = r;
	}
	c->ur_s = c->ur_e = 0;
	c->msh = p->msh;
	c->sp = NULL;		/* the child closes its copy of the pipe */
}

/*
 * mremap of [s, e) (inside one region) to [to, to + newn): the pages move,
 * the grown part is fresh and populated if the region is mlocked.  With
 * MREMAP_DONTUNMAP the old range stays mapped, empty and unlocked.
 */
void model_move(struct worker *w, uint64_t s, uint64_t e, uint64_t to,
		uint64_t newn, bool dontunmap)
{
	uint64_t n = e - s;
	uint64_t *tags = malloc(n * sizeof(uint64_t));
	uint8_t *sts = malloc(n);
	struct region nr, *r;

	if (!tags || !sts)
		bug("out of memory");
	reg_split(w, s);
	reg_split(w, e);
	nr = *reg_at(w, s);
	memcpy(tags, &w->tag[s], n * sizeof(uint64_t));
	memcpy(sts, &w->st[s], n);
	if (dontunmap) {
		r = reg_at(w, s);
		r->fl &= ~(RF_LOCKED | RF_ONFAULT);
		pages_init(w, r, s, e);
	} else {
		reg_unmap(w, s, e);
	}
	reg_unmap(w, to, to + newn);
	nr.s = to;
	nr.e = to + newn;
	r = reg_add(w, &nr);
	memcpy(&w->tag[to], tags, n * sizeof(uint64_t));
	memcpy(&w->st[to], sts, n);
	pages_init(w, r, to + n, to + newn);
	if ((r->fl & RF_LOCKED) && !(r->fl & RF_ONFAULT))
		populate_write(w, r, to + n, to + newn);
	free(tags);
	free(sts);
}

bool region_ok(const struct region *r, unsigned int need)
{
	if ((need & NEED_R) && !(r->prot & PROT_READ))
		return false;
	if ((need & NEED_W) && !(r->prot & PROT_WRITE))
		return false;
	if ((need & NEED_ANON) && r->kind != K_ANON)
		return false;
	if ((need & NEED_FORCE_W) && !(r->prot & PROT_WRITE) &&
	    !((r->prot & PROT_READ) && !kind_shared(r->kind)))
		return false;
	if ((need & NO_UFFD) && (r->fl & RF_UFFD))
		return false;
	if ((need & ONLY_UFFD) && !(r->fl & RF_UFFD))
		return false;
	if ((need & NO_LOCKED) && (r->fl & RF_LOCKED))
		return false;
	if ((need & NEED_FRESH) && !(r->fl & RF_FRESH))
		return false;
	return true;
}

bool overlaps(uint64_t s1, uint64_t e1, uint64_t s2, uint64_t e2)
{
	return s1 < e2 && s2 < e1;
}

bool range_ok(const struct worker *w, uint64_t s, uint64_t e,
	      unsigned int need)
{
	uint64_t pg = s;
	int i = reg_first(w, s), first = i;

	if ((need & NO_URING) && overlaps(s, e, w->ur_s, w->ur_e))
		return false;
	for (; i < w->nreg && w->reg[i].s < e; i++) {
		const struct region *r = &w->reg[i];

		if (r->s > pg && !(need & HOLES_OK))
			return false;
		if (!region_ok(r, need))
			return false;
		if ((need & ONE_REGION) && i != first)
			return false;
		pg = r->e;
	}
	return (need & HOLES_OK) || pg >= e;
}

bool in_arena(uint64_t addr, uint64_t len)
{
	return addr >= ARENA_BASE && len && !(addr % PG) && !(len % PG) &&
	       len <= ARENA_PAGES * PG &&
	       addr - ARENA_BASE <= ARENA_PAGES * PG - len;
}

static const char *reg_str(const struct region *r, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s %s %#" PRIx64 "-%#" PRIx64,
			 kind_names[r->kind], prot_names[r->prot & 3],
			 pg_addr(r->s), pg_addr(r->e));

	if (r->kind != K_ANON)
		n += snprintf(buf + n, len - n, " obj %d page %#" PRIx64,
			      r->obj, r->pgoff);
	for (int b = 0; b < 5; b++)
		if (r->fl & (1u << b))
			n += snprintf(buf + n, len - n, " %s", rf_names[b]);
	return buf;
}

/* ------------------------------------------------------------------ */
/* Checking contents                                                    */

void corrupt_str(uint64_t got, const struct reply *rep, char *buf,
		 size_t len)
{
	if (got == TAG_CORRUPT)
		snprintf(buf, len, " (word %" PRIu64 " is %#" PRIx64 ")",
			 rep->bad_word, rep->bad_value);
	else
		buf[0] = '\0';
}

static bool page_ok(const struct worker *w, const struct region *r,
		    uint64_t pg, uint64_t got)
{
	struct expect x = page_expect(w, r, pg);

	return x.skip || got == x.tag || (x.or_zero && !got);
}

/* Page pg of worker id read back as got (how: the path that read it). */
void check_page(int id, struct region *r, uint64_t pg, uint64_t got,
		const struct reply *rep, const char *how)
{
	struct worker *w = wk[id];
	struct expect x = page_expect(w, r, pg);
	char b1[80], b2[80], b3[64], b4[160];

	if (page_ok(w, r, pg, got))
		return;
	corrupt_str(got, rep, b3, sizeof(b3));
	fail("worker %d (pid %d) page %#" PRIx64 " (%s): expected %s%s, found %s%s [%s, %s]",
	     id, w->pid, pg_addr(pg), how, tag_str(x.tag, b1, sizeof(b1)),
	     x.or_zero ? " or zero" : "", tag_str(got, b2, sizeof(b2)), b3,
	     reg_str(r, b4, sizeof(b4)),
	     kind_shared(r->kind) ? "shared" : st_names[w->st[pg]]);
}

static void read_check(int id, struct region *r, uint64_t pg, uint64_t n)
{
	struct cmd c = {
		.type = C_READ, .addr = pg_addr(pg), .len = n * PG,
	};
	char b[160];

	if (co_call(id, &c, -1, &co_rep))
		return;
	if (co_rep.sig) {
		fail("worker %d (pid %d): %s reading page %#" PRIx64 " [%s]",
		     id, wk[id]->pid, strsignal(co_rep.sig),
		     co_rep.fault_addr, reg_str(r, b, sizeof(b)));
		return;
	}
	if (co_rep.ret || co_rep.n != n) {
		fail("worker %d: bad answer to read (%" PRId64 ", %u pages)",
		     id, co_rep.ret, co_rep.n);
		return;
	}
	/*
	 * Report the first wrong page, and how many more this read found
	 * (and how many of them read zero): one lost PTE, or a whole table?
	 */
	for (uint64_t i = 0; i < n; i++) {
		char how[96];
		uint64_t bad = 0, zero = 0;

		if (page_ok(wk[id], r, pg + i, co_rep.tags[i]))
			continue;
		for (uint64_t j = i; j < n; j++) {
			if (page_ok(wk[id], r, pg + j, co_rep.tags[j]))
				continue;
			bad++;
			zero += !co_rep.tags[j];
		}
		snprintf(how, sizeof(how),
			 "cpu read; %" PRIu64 " of the %" PRIu64 " pages read wrong, %" PRIu64 " of them zero",
			 bad, n, zero);
		check_page(id, r, pg + i, co_rep.tags[i], &co_rep, how);
		break;
	}
}

/* Read back every readable page of [s, e) in worker id. */
void verify_range(int id, uint64_t s, uint64_t e)
{
	struct worker *w = wk[id];

	for (int i = reg_first(w, s); i < w->nreg && w->reg[i].s < e; i++) {
		struct region *r = &w->reg[i];
		uint64_t pg = MAX(r->s, s), end = MIN(r->e, e), n;

		if (!(r->prot & PROT_READ))
			continue;
		while (pg < end && !failure.failed) {
			if (!kind_shared(r->kind) && w->st[pg] == ST_MISSING) {
				pg++;
				continue;
			}
			for (n = 0; pg + n < end && n < READ_CHUNK; n++)
				if (!kind_shared(r->kind) &&
				    w->st[pg + n] == ST_MISSING)
					break;
			read_check(id, r, pg, n);
			pg += n;
		}
		if (failure.failed)
			return;
	}
}

/* Read back the mappings of object pages [s, e) in worker id. */
static void verify_obj_range(int id, int obj, uint64_t s, uint64_t e)
{
	struct worker *w = wk[id];

	for (int i = 0; i < w->nreg && !failure.failed; i++) {
		struct region *r = &w->reg[i];
		uint64_t lo = r->pgoff, hi = r->pgoff + (r->e - r->s);

		if (r->kind == K_ANON || r->obj != obj || !overlaps(lo, hi, s, e))
			continue;
		verify_range(id, r->s + (MAX(lo, s) - lo),
			     r->s + (MIN(hi, e) - lo));
	}
}

void check_obj_page(int obj, uint64_t pg, uint64_t got,
		    const struct reply *rep, const char *how)
{
	uint64_t want = objs[obj].tag[pg];
	char b1[80], b2[80], b3[64];

	if (got == want)
		return;
	corrupt_str(got, rep, b3, sizeof(b3));
	fail("file %d page %#" PRIx64 " (%s): expected %s, found %s%s", obj,
	     pg, how, tag_str(want, b1, sizeof(b1)),
	     tag_str(got, b2, sizeof(b2)), b3);
}

/* The files as read(2) sees them, read by the coordinator itself. */
static void verify_files(void)
{
	static char buf[READ_CHUNK * PG];
	struct reply r;

	for (int f = 0; f < NR_FILES && !failure.failed; f++) {
		for (uint64_t pg = 0; pg < FILE_PAGES && !failure.failed;
		     pg += READ_CHUNK) {
			uint64_t n = MIN(READ_CHUNK, FILE_PAGES - pg);

			if (pread(file_fd[f], buf, n * PG, pg * PG) !=
			    (ssize_t)(n * PG)) {
				fail("pread of file %d: %s", f, strerror(errno));
				return;
			}
			memset(&r, 0, REPLY_HDR);
			for (uint64_t i = 0; i < n && !failure.failed; i++)
				check_obj_page(f, pg + i,
					       page_tag(buf + i * PG, &r, i),
					       &r, "coordinator pread");
		}
	}
}

/* ------------------------------------------------------------------ */
/* Kernel log                                                           */

static int kmsg_fd = -1;

static const char *const klog_patterns[] = {
	"WARNING:", "BUG:", "Bad rss-counter", "Bad page", "page_table_check",
	"Oops", "general protection", "kernel BUG",
};

void klog_open(void)
{
	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (kmsg_fd < 0 || lseek(kmsg_fd, 0, SEEK_END) < 0) {
		printf("# kernel log unreadable (/dev/kmsg: %s): not checked\n",
		       strerror(errno));
		if (kmsg_fd >= 0)
			close(kmsg_fd);
		kmsg_fd = -1;
	}
}

/* New kernel messages with a report in them are a failure. */
static void klog_scan(void)
{
	char buf[8192], *msg;
	ssize_t n;

	while (kmsg_fd >= 0) {
		n = read(kmsg_fd, buf, sizeof(buf) - 1);
		if (n < 0 && (errno == EPIPE || errno == EINTR))
			continue;	/* overwritten records, signal */
		if (n <= 0)
			break;
		buf[n] = '\0';
		msg = strchr(buf, ';');
		msg = msg ? msg + 1 : buf;
		msg[strcspn(msg, "\n")] = '\0';
		for (size_t i = 0; i < sizeof(klog_patterns) / sizeof(char *); i++) {
			if (!strstr(msg, klog_patterns[i]))
				continue;
			if (!quiet)
				printf("# kernel: %s\n", msg);
			fail("kernel log: %s", msg);
			break;
		}
	}
}

/* Free the shared anonymous objects no live worker maps any more. */
static void objs_gc(void)
{
	static bool used[MAX_OBJS];
	int ids[MAX_PROCS * 4], n = live_ids(ids);

	memset(used, 0, sizeof(used));
	for (int i = 0; i < n; i++)
		for (int j = 0; j < wk[ids[i]]->nreg; j++)
			used[wk[ids[i]]->reg[j].obj] = true;
	for (int o = FIRST_SHANON; o < nobjs; o++) {
		if (!used[o]) {
			free(objs[o].tag);
			objs[o].tag = NULL;
		}
	}
}

/* Everything: every readable page of every worker, the files, the log. */
void verify_all(void)
{
	int ids[MAX_PROCS * 4], n = live_ids(ids);

	objs_gc();
	for (int i = 0; i < n && !failure.failed; i++)
		verify_range(ids[i], 0, ARENA_PAGES);
	if (!failure.failed)
		verify_files();
	if (!failure.failed)
		verify_mshare();
	klog_scan();
}

/* Ranges an operation touched, read back in every live worker after it. */
static struct { uint64_t s, e; int obj; } touched[4];
int ntouched;

void touch(uint64_t s, uint64_t e)
{
	if (ntouched < 4 && s < e)
		touched[ntouched++] = (typeof(touched[0])){ s, e, -1 };
}

void touch_obj(int obj, uint64_t s, uint64_t e)
{
	if (ntouched < 4 && s < e)
		touched[ntouched++] = (typeof(touched[0])){ s, e, obj };
}

void verify_touched(void)
{
	int ids[MAX_PROCS * 4], n = live_ids(ids);

	for (int t = 0; t < ntouched; t++) {
		for (int i = 0; i < n && !failure.failed; i++) {
			if (touched[t].obj < 0)
				verify_range(ids[i], touched[t].s, touched[t].e);
			else
				verify_obj_range(ids[i], touched[t].obj,
						 touched[t].s, touched[t].e);
		}
	}
}
