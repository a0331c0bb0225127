/* SPDX-License-Identifier: GPL-2.0 */
/*
 * fuzz.h - what the modules of cow_pte_fuzz share: the arena and its
 * limits, the options and the failure state, the protocol between the
 * coordinator and the workers, the model's types, the recorded form of an
 * operation and the table of operations, and the functions and globals one
 * module uses from another, grouped under the banner and the file that
 * defines them.  What the fuzzer does: main.c and
 * Documentation/cow-pte-fuzz.md.
 */
#ifndef COW_PTE_FUZZ_H
#define COW_PTE_FUZZ_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <liburing.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cowpt.h"
#include "../actor.h"
#include "../cow_pte_util.h"

#define ARENA_BASE	0x100000000000UL	/* 16 TiB: 1 TiB aligned */
#define ARENA_PAGES	(1UL << 18)		/* 1 GiB of address space */
#define MAX_REGIONS	512			/* model regions per worker */
#define NR_FILES	3			/* memfd, memfd, file in tmpdir */
#define MSH_FILE	NR_FILES		/* file_fd[]: the msharefs region */
#define MSH_OBJ		NR_FILES		/* objs[]: its object */
#define FIRST_SHANON	(NR_FILES + 1)		/* objs[]: shared anonymous */
#define MSH_ADDR	(ARENA_BASE + (4UL << 30))	/* outside the arena */
#define MSH_SIZE	(1UL << 30)		/* msharefs's alignment */
#define MSH_PAGES	1024UL			/* its object: 4 MiB */
#define FILE_PAGES	4096UL			/* 16 MiB per file */
#define MAX_OBJS	4096			/* files + shared anon objects */
#define READ_CHUNK	1024			/* pages per read command */
#define MAX_OP_PAGES	1024			/* pages written by one op */
#define MAX_GUP_PAGES	512
#define MAX_SPLICE_PAGES 16			/* a default pipe's buffers */
#define MAX_MOVE_PAGES	64			/* pages per move_pages() */
#define RECLAIM_MAX	(16UL << 20)		/* bytes per memory.reclaim */
#define CG_ROOT		"/sys/fs/cgroup"
#define NODE_DIR	"/sys/devices/system/node"
#define MAX_PROCS	32
#define REPLY_TIMEOUT_S	60
#define COORD		(-1)			/* parent: the coordinator */
#define WORDS		(PG / sizeof(uint64_t))
#define TAG_MARK	(0xc0ULL << 56)
#define TAG_CORRUPT	(~0ULL)

#define MIN(a, b)	((a) < (b) ? (a) : (b))
#define MAX(a, b)	((a) > (b) ? (a) : (b))

static inline uint64_t pg_addr(uint64_t pg)
{
	return ARENA_BASE + pg * PG;
}

static inline uint64_t addr_pg(uint64_t addr)
{
	return (addr - ARENA_BASE) / PG;
}

/* ------------------------------------------------------------------ */
/* Options, environment, failure state (main.c)                         */

enum { COW_OFF, COW_ON, COW_MIXED };

extern struct opt {
	uint64_t seed;
	long ops;		/* stop after this many ops (0: no bound) */
	double time;		/* stop after this many seconds (0: no bound) */
	int procs;
	long mem_mib;
	int cow;
	long check_every;
	bool verbose;
	bool keep_going;
	const char *replay;
	const char *repro;
	double reduce_time;
	int relocate;		/* vm.mremap_relocate_anon to set, or -1 */
} opt;

/* What the running kernel and our privileges allow. */
extern struct have {
	bool thp, ksm, swap, uffd, uring, root;
	bool numa;		/* move_pages() between nodes 0 and 1 */
	bool pmadv;		/* process_madvise() */
	bool memcg;		/* our own cgroup with memory.reclaim */
	bool mshare;		/* msharefs mounted at /sys/fs/mshare */
} have;

extern struct failure {
	bool failed;
	long op;
	char msg[1024];
} failure;

extern bool generating;		/* the generation-only limits apply */
extern bool quiet;		/* a reduction replay: no per-op output */
extern double replay_end;	/* a replay stops here (now()); 0: never */
extern bool replay_cut;		/* the last replay stopped at replay_end */
extern volatile sig_atomic_t stop_requested;

double now(void);
void __attribute__((format(printf, 1, 2))) fail(const char *fmt, ...);
void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...);
const char *errname(int err);

/* ------------------------------------------------------------------ */
/* PRNG (prng.c)                                                        */

void rng_seed(uint64_t seed);
uint64_t rnd(uint64_t n);
bool chance(unsigned int pct);
int pick_weighted(const int *weights, int n);

/* ------------------------------------------------------------------ */
/* Page contents (worker.c)                                             */

static inline uint64_t op_tag(long idx)
{
	return TAG_MARK | (uint64_t)idx << 20;
}

const char *tag_str(uint64_t tag, char *buf, size_t len);

/* ------------------------------------------------------------------ */
/* Protocol between the coordinator and the workers (worker.c)          */

enum cmd_type {
	C_WRITE, C_READ, C_MMAP, C_MUNMAP, C_MREMAP, C_MPROTECT, C_MADVISE,
	C_MLOCK, C_MUNLOCK, C_RWRITE, C_RREAD, C_FWRITE, C_FREAD, C_URING_REG,
	C_URING_READ, C_URING_UNREG, C_UFFD_REG, C_UFFD_FILL, C_UFFD_UNREG,
	C_FORK, C_EXIT, C_WAIT, C_THREAD, C_VMSPLICE, C_PIPE_READ,
	C_MOVE_PAGES, NR_CMDS,
};

enum { GUP_VM, GUP_MEM };		/* process_vm_*v, /proc/PID/mem */
enum { FILL_COPY, FILL_ZERO };		/* UFFDIO_COPY, UFFDIO_ZEROPAGE */
enum { FORK_LIBC, FORK_CLONE3, FORK_COW };

struct cmd {
	int32_t type;
	int32_t arg;		/* prot, advice, method, mode, count ... */
	int32_t arg2;		/* mmap flags */
	int32_t file;		/* index into file_fd[], or -1 */
	int32_t pid;		/* target of remote access and waitpid */
	int32_t pad;
	uint64_t addr, len;
	uint64_t addr2, len2;	/* mremap destination and new length */
	uint64_t off;		/* file offset */
	uint64_t tag;		/* tag of the first page written */
};

struct reply {
	int64_t ret;		/* result; -1 with err on failure */
	int32_t err;
	int32_t sig;		/* SIGSEGV/SIGBUS taken touching memory */
	uint64_t fault_addr;
	uint64_t bad_page;	/* first corrupt page: index, word, value */
	uint64_t bad_word;
	uint64_t bad_value;
	uint32_t n;		/* entries in tags[] */
	uint32_t pad;
	uint64_t tags[READ_CHUNK];
};
#define REPLY_HDR	offsetof(struct reply, tags)

uint64_t page_tag(const void *p, struct reply *r, uint64_t idx);

/* ------------------------------------------------------------------ */
/* Worker processes (worker.c)                                          */

extern int file_fd[NR_FILES + 1];	/* and MSH_FILE */
extern uint64_t w_page[WORDS];

int uffd_open(void);
void __attribute__((noreturn)) worker_main(int chan);

/* ------------------------------------------------------------------ */
/* The model (model.c)                                                  */

enum { K_ANON, K_SHANON, K_PFILE, K_SFILE, NR_KINDS };
extern const char *const kind_names[NR_KINDS];

static inline bool kind_shared(int k)
{
	return k == K_SHANON || k == K_SFILE;
}

static inline bool kind_file(int k)
{
	return k == K_PFILE || k == K_SFILE;
}

/* region flags */
enum {
	RF_DONTFORK = 1, RF_WIPE = 2, RF_LOCKED = 4, RF_ONFAULT = 8,
	RF_UFFD = 16,
	/*
	 * private anonymous, mapped since its worker last forked: no forked
	 * process reaches its anon_vma, so mremap may relocate it
	 */
	RF_FRESH = 32,
};

/* What a private page holds (shared pages always show their object). */
enum {
	ST_PRIV,	/* its own content: tag[] */
	ST_MAYBE0,	/* tag[] or zero (MADV_FREE) */
	ST_OBJ,		/* the file's page (private file mapping) */
	ST_MISSING,	/* userfaultfd: not filled, must not be touched */
};

extern const char *const prot_names[];

struct region {
	uint64_t s, e;		/* arena pages [s, e) */
	uint64_t pgoff;		/* object page mapped at s */
	int prot;
	int kind;
	int obj;		/* object of shared and file kinds */
	unsigned int fl;
};

/* A file (0..NR_FILES-1) or a shared anonymous object. */
struct object {
	uint64_t npages;
	uint64_t *tag;
};

enum { W_NONE, W_LIVE, W_ZOMBIE, W_GONE };

struct worker {
	int state;
	pid_t pid;
	int chan;
	int parent;		/* worker id or COORD */
	int nreg;
	bool msh;		/* maps the msharefs region at MSH_ADDR */
	uint64_t ur_s, ur_e;	/* io_uring fixed buffer (pages), s == e: none */
	struct splice *sp;	/* pages in the worker's pipe, or NULL */
	uint64_t *tag;		/* per arena page */
	uint8_t *st;		/* per arena page: ST_* */
	struct region reg[MAX_REGIONS];
};

struct expect {
	uint64_t tag;
	bool or_zero;
	bool skip;
};

/*
 * The pages a worker vmsplice()d into its pipe: what each held then, and
 * every tag stored into the worker's memory since.  Read back, a page must
 * show what it held, or a later store of the splicer's own (its write can
 * land in the page while the page is exclusively its), never what another
 * process wrote: that would be a write leaking through copy-on-write.
 */
struct splice {
	int64_t op;			/* the vmsplice op */
	uint64_t n;
	uint64_t s;			/* first page spliced */
	struct expect x[MAX_SPLICE_PAGES];
	uint64_t *later;		/* tags stored since */
	size_t nlater, cap;
};

/* Range requirements */
#define NEED_R		0x001	/* PROT_READ */
#define NEED_W		0x002	/* PROT_WRITE */
#define NEED_ANON	0x004	/* private anonymous */
#define NEED_FORCE_W	0x008	/* writable, or readable and private */
#define NO_UFFD		0x010	/* no userfaultfd-registered region */
#define ONLY_UFFD	0x020	/* only userfaultfd-registered regions */
#define NO_URING	0x040	/* not the io_uring fixed buffer */
#define ONE_REGION	0x080	/* inside one region */
#define HOLES_OK	0x100	/* need not be mapped */
#define NO_LOCKED	0x200	/* no mlocked region */
#define NEED_FRESH	0x400	/* RF_FRESH regions only */

extern struct worker **wk;
extern int nwk;			/* slots used in wk[] */
extern struct object objs[MAX_OBJS];
extern int nobjs;
extern long cap_pages;		/* --mem, in pages */

void __attribute__((noreturn)) bug(const char *what);
bool live(int64_t id);
int live_ids(int *ids);
int live_count(void);
int reg_first(const struct worker *w, uint64_t pg);
struct region *reg_at(struct worker *w, uint64_t pg);
void reg_split(struct worker *w, uint64_t pg);
void reg_unmap(struct worker *w, uint64_t s, uint64_t e);
bool range_free(const struct worker *w, uint64_t s, uint64_t e);
bool under_cap(const struct worker *w, uint64_t add, uint64_t s,
	       uint64_t e);
bool room(const struct worker *w);
int obj_slot_free(void);
int obj_new(uint64_t npages);
struct expect page_expect(const struct worker *w,
			  const struct region *r, uint64_t pg);
void splice_free(struct worker *w);
void page_store(struct worker *w, const struct region *r, uint64_t pg,
		uint64_t tag);
void store_range(struct worker *w, uint64_t s, uint64_t e, uint64_t tag);
void pages_init(struct worker *w, const struct region *r, uint64_t s,
		uint64_t e);
void populate_write(struct worker *w, const struct region *r,
		    uint64_t s, uint64_t e);
void zap_pages(struct worker *w, const struct region *r, uint64_t s,
	       uint64_t e);
struct region *map_region(struct worker *w, const struct region *nr);
void model_fork(const struct worker *p, struct worker *c);
void model_move(struct worker *w, uint64_t s, uint64_t e, uint64_t to,
		uint64_t newn, bool dontunmap);
bool region_ok(const struct region *r, unsigned int need);
bool overlaps(uint64_t s1, uint64_t e1, uint64_t s2, uint64_t e2);
bool range_ok(const struct worker *w, uint64_t s, uint64_t e,
	      unsigned int need);
bool in_arena(uint64_t addr, uint64_t len);

/* ------------------------------------------------------------------ */
/* Talking to workers (worker.c)                                        */

extern struct reply co_rep;	/* the last answer */

int co_recv(int chan, struct reply *r);
const char *proc_status(pid_t pid, char *buf, size_t len);
char proc_state(pid_t pid);
void worker_lost(int id, const char *what, int rc);
int co_call(int id, const struct cmd *c, int fd, struct reply *r);
const char *res_str(long ret, int err, char *buf, size_t len);
bool expect_res(int id, const struct cmd *c, const struct reply *r,
		long ret, int err);
int call(int id, const struct cmd *c, long ret, int err);

/* ------------------------------------------------------------------ */
/* Checking contents, kernel log (model.c)                              */

void corrupt_str(uint64_t got, const struct reply *rep, char *buf,
		 size_t len);
void check_page(int id, struct region *r, uint64_t pg, uint64_t got,
		const struct reply *rep, const char *how);
void verify_range(int id, uint64_t s, uint64_t e);
void check_obj_page(int obj, uint64_t pg, uint64_t got,
		    const struct reply *rep, const char *how);
void klog_open(void);
void verify_all(void);

extern int ntouched;
void touch(uint64_t s, uint64_t e);
void touch_obj(int obj, uint64_t s, uint64_t e);
void verify_touched(void);

/* ------------------------------------------------------------------ */
/* Operations: the recorded, concrete form (ops_mem.c)                  */

struct op {
	int64_t idx;		/* position in the generated sequence */
	int64_t type;		/* OP_* */
	int64_t w;		/* the worker executing it */
	int64_t t;		/* target / new / waited-for worker */
	uint64_t addr, len;	/* bytes */
	uint64_t to, newlen;	/* mremap destination, new length */
	int64_t prot, kind, obj;
	uint64_t off;		/* file offset, bytes */
	int64_t how;		/* op-specific choice, see op_desc.how */
	int64_t flags;		/* mmap: MF_* */
	uint64_t tag;		/* tag of the first page written */
};

enum {
	F_W, F_T, F_ADDR, F_LEN, F_TO, F_NEWLEN, F_PROT, F_KIND, F_OBJ, F_OFF,
	F_HOW, F_FLAGS, F_TAG, NR_FIELDS,
};
enum { FMT_DEC, FMT_HEX, FMT_PROT, FMT_KIND, FMT_HOW, FMT_FLAGS };

struct field {
	const char *name;
	size_t off;
	int fmt;
};
extern const struct field fields[NR_FIELDS];

#define FB(f)		(1u << F_##f)
#define RANGE		(FB(W) | FB(ADDR) | FB(LEN))
#define OP_S(op)	addr_pg((op)->addr)
#define OP_E(op)	addr_pg((op)->addr + (op)->len)

enum { MF_POPULATE = 1, MF_FIXED = 2 };
extern const char *const mf_names[];

void set_range(struct op *op, uint64_t s, uint64_t e);
bool op_ok(const struct op *op);

/* ------------------------------------------------------------------ */
/* Random choices (ops_mem.c)                                           */

int pick_live(void);
void pick_range(uint64_t lo, uint64_t hi, uint64_t maxn, uint64_t *s,
		uint64_t *e);
bool pick_span(const struct worker *w, unsigned int need,
	       uint64_t maxn, uint64_t *s, uint64_t *e);
uint64_t gen_npages(uint64_t max);
bool pick_free_place(const struct worker *w, uint64_t n, uint64_t *s);
uint64_t pick_file_pages(uint64_t n);
void reg_range(struct worker *w, uint64_t s, uint64_t e, int *first,
	       int *last);
bool gen_span(struct op *op, unsigned int need, uint64_t maxn);

/* ------------------------------------------------------------------ */
/* Operations on the address space (ops_mem.c)                          */

bool gen_write(struct op *op);
bool valid_write(const struct op *op);
void run_write(const struct op *op);
bool gen_read(struct op *op);
bool valid_read(const struct op *op);
void run_read(const struct op *op);
bool gen_mmap(struct op *op);
bool valid_mmap(const struct op *op);
void run_mmap(const struct op *op);
bool gen_munmap(struct op *op);
bool valid_munmap(const struct op *op);
void run_munmap(const struct op *op);
bool gen_mremap_grow(struct op *op);
bool valid_mremap_grow(const struct op *op);
void run_mremap_grow(const struct op *op);
bool gen_mremap_shrink(struct op *op);
bool valid_mremap_shrink(const struct op *op);
void run_mremap_shrink(const struct op *op);
bool gen_mremap_move(struct op *op);
bool valid_mremap_move(const struct op *op);
void run_mremap_move(const struct op *op);
bool gen_mremap_dontunmap(struct op *op);
bool valid_mremap_dontunmap(const struct op *op);
void run_mremap_dontunmap(const struct op *op);
bool gen_mremap_beside(struct op *op);
bool valid_mremap_beside(const struct op *op);
void run_mremap_beside(const struct op *op);
bool gen_mprotect(struct op *op);
bool valid_mprotect(const struct op *op);
void run_mprotect(const struct op *op);
bool gen_madvise(struct op *op);
bool valid_madvise(const struct op *op);
void run_madvise(const struct op *op);
bool gen_lock(struct op *op);
bool valid_lock(const struct op *op);
void run_mlock(const struct op *op);
void run_munlock(const struct op *op);

struct advice {
	const char *name;
	int advice;
	int weight;
	unsigned int need;	/* what the range must satisfy */
};
#define NR_ADVICES	16	/* entries in advices[] */
extern const struct advice advices[];
extern const char *adv_names[NR_ADVICES];	/* filled from advices[] */
extern const char *const mlock_names[2];

int madv_region(struct worker *w, struct region *r, int advice);

/* ------------------------------------------------------------------ */
/* Operations: memcg reclaim, the process tree (ops_io.c)               */

/* Our cgroup, which every worker is in (see memcg_setup()). */
extern struct memcg {
	char path[64];		/* CG_ROOT/cow_pte_fuzz-PID, "" if none */
	char orig[4200];	/* the coordinator's cgroup before */
	pid_t owner;		/* the coordinator: only it tears down */
	bool mounted;		/* we mounted cgroup2 on CG_ROOT */
	bool joined;		/* the coordinator is in path */
} memcg;

struct worker *worker_new(int id, pid_t pid, int chan, int parent);
void worker_drop_model(struct worker *w);

/* ------------------------------------------------------------------ */
/* The table of operations (ops_io.c)                                   */

enum op_type {
	OP_WRITE, OP_READ, OP_MMAP, OP_MUNMAP, OP_MREMAP_GROW,
	OP_MREMAP_SHRINK, OP_MREMAP_MOVE, OP_MREMAP_DONTUNMAP, OP_MREMAP_BESIDE,
	OP_MPROTECT,
	OP_MADVISE, OP_MLOCK, OP_MUNLOCK, OP_GUP_WRITE, OP_GUP_READ,
	OP_FILE_WRITE, OP_FILE_READ, OP_URING_REG, OP_URING_READ,
	OP_URING_UNREG, OP_UFFD_REG, OP_UFFD_FILL, OP_UFFD_UNREG, OP_FORK,
	OP_EXIT, OP_WAIT, OP_THREAD, OP_VMSPLICE, OP_PIPE_READ, OP_MOVE_PAGES,
	OP_PAGEOUT_REMOTE, OP_RECLAIM, OP_MSH_ATTACH, OP_MSH_DETACH,
	OP_MSH_WRITE, OP_MSH_READ, NR_OPS,
};

struct op_desc {
	const char *name;
	int weight;
	unsigned int fields;		/* FB(): what the op uses */
	const char *const *how;		/* names of op->how, NULL: a number */
	int nhow;
	bool (*gen)(struct op *op);	/* random parameters from the model */
	bool (*valid)(const struct op *op);	/* preconditions hold */
	void (*run)(const struct op *op);	/* execute, check, update */
};

extern const struct op_desc op_tab[NR_OPS];

/* ------------------------------------------------------------------ */
/* An msharefs region every worker may map (ops_mshare.c)               */

void mshare_detect(void);
void mshare_create(void);
void verify_mshare(void);
bool gen_msh_attach(struct op *op);
bool valid_msh_attach(const struct op *op);
void run_msh_attach(const struct op *op);
bool gen_msh_detach(struct op *op);
bool valid_msh_detach(const struct op *op);
void run_msh_detach(const struct op *op);
bool gen_msh_write(struct op *op);
bool valid_msh_write(const struct op *op);
void run_msh_write(const struct op *op);
bool gen_msh_read(struct op *op);
bool valid_msh_read(const struct op *op);
void run_msh_read(const struct op *op);

/* ------------------------------------------------------------------ */
/* Printing and parsing operations, reduction (reduce.c)                */

void op_format(const struct op *op, char *buf, size_t len);
int name_index(const char *const *names, int n, const char *s);
bool parse_num(const char *s, uint64_t *v);
void handle_failure(const struct op *ops, long n);
long read_repro(const char *path, struct op **ops);

/* ------------------------------------------------------------------ */
/* The tree (main.c)                                                    */

long run_ops(const struct op *ops, long n);

extern struct stats {
	long ops;		/* executed in the main run */
	int failures;
	double start;
	long vm[NR_COW_PTE_COUNTERS];
	long relocated;		/* mremap_relocate at the start, or -1 */
	long mshare;		/* mshare-* operations done */
} stats;

#endif /* COW_PTE_FUZZ_H */
