// SPDX-License-Identifier: GPL-2.0
/*
 * reduce.c: the text form of operations (printing and parsing, as in repro
 * files and --verbose output), the replay of an operation list in a fresh
 * tree, its reduction by delta debugging, and writing and reading repro
 * files.
 */

#include "fuzz.h"

/* ------------------------------------------------------------------ */
/* Printing and parsing operations                                      */

static uint64_t *op_field(struct op *op, int f)
{
	return (uint64_t *)((char *)op + fields[f].off);
}

void op_format(const struct op *op, char *buf, size_t len)
{
	const struct op_desc *d = &op_tab[op->type];
	size_t n = snprintf(buf, len, "%" PRId64 " %s", op->idx, d->name);

	for (int f = 0; f < NR_FIELDS && n < len; f++) {
		uint64_t v = *op_field((struct op *)op, f);
		char val[64];

		if (!(d->fields & (1u << f)))
			continue;
		switch (fields[f].fmt) {
		case FMT_HEX:
			snprintf(val, sizeof(val), "%#" PRIx64, v);
			break;
		case FMT_PROT:
			snprintf(val, sizeof(val), "%s", prot_names[v & 3]);
			break;
		case FMT_KIND:
			snprintf(val, sizeof(val), "%s",
				 v < NR_KINDS ? kind_names[v] : "?");
			break;
		case FMT_HOW:
			if (d->how && v < (uint64_t)d->nhow) {
				snprintf(val, sizeof(val), "%s", d->how[v]);
				break;
			}
			/* fall through */
		case FMT_DEC:
			snprintf(val, sizeof(val), "%" PRId64, (int64_t)v);
			break;
		case FMT_FLAGS:
			snprintf(val, sizeof(val), "%s%s%s",
				 v & MF_POPULATE ? mf_names[0] : "",
				 v == (MF_POPULATE | MF_FIXED) ? "|" : "",
				 v & MF_FIXED ? mf_names[1] : v ? "" : "none");
			break;
		}
		n += snprintf(buf + n, len - n, " %s=%s", fields[f].name, val);
	}
}

int name_index(const char *const *names, int n, const char *s)
{
	for (int i = 0; i < n; i++)
		if (names[i] && !strcmp(names[i], s))
			return i;
	return -1;
}

bool parse_num(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return !errno && end != s && !*end;
}

static bool parse_value(const struct op_desc *d, int f, const char *s,
			uint64_t *v)
{
	int i = -1;

	switch (fields[f].fmt) {
	case FMT_PROT:
		i = name_index(prot_names, 4, s);
		break;
	case FMT_KIND:
		i = name_index(kind_names, NR_KINDS, s);
		break;
	case FMT_HOW:
		if (d->how)
			i = name_index(d->how, d->nhow, s);
		break;
	case FMT_FLAGS:
		if (!strcmp(s, "none"))
			i = 0;
		else if (!strcmp(s, "populate|fixed"))
			i = MF_POPULATE | MF_FIXED;
		else if ((i = name_index(mf_names, 2, s)) >= 0)
			i = 1 << i;
		break;
	}
	if (i >= 0) {
		*v = i;
		return true;
	}
	return parse_num(s, v);
}

/* "IDX NAME key=value ..." as written by op_format(); 0 or -1. */
static int op_parse(char *line, struct op *op)
{
	char *save, *tok, *eq;
	const struct op_desc *d;
	uint64_t v;
	int f;

	memset(op, 0, sizeof(*op));
	tok = strtok_r(line, " \t\n", &save);
	if (!tok || !parse_num(tok, &v))
		return -1;
	op->idx = v;
	tok = strtok_r(NULL, " \t\n", &save);
	for (op->type = 0; tok && op->type < NR_OPS; op->type++)
		if (!strcmp(op_tab[op->type].name, tok))
			break;
	if (!tok || op->type == NR_OPS)
		return -1;
	d = &op_tab[op->type];
	while ((tok = strtok_r(NULL, " \t\n", &save))) {
		eq = strchr(tok, '=');
		if (!eq)
			return -1;
		*eq = '\0';
		for (f = 0; f < NR_FIELDS; f++)
			if (!strcmp(fields[f].name, tok))
				break;
		if (f == NR_FIELDS || !parse_value(d, f, eq + 1, &v))
			return -1;
		*op_field(op, f) = v;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Reduction and repro files                                            */

/*
 * Does this list of operations fail in a fresh tree?  A replay that reaches
 * replay_end first stops there and counts as not failing (replay_cut).
 */
static bool replay_fails(const struct op *ops, long n, char *msg, size_t len)
{
	bool failed, was_generating = generating;

	memset(&failure, 0, sizeof(failure));
	quiet = true;
	generating = false;	/* a replay never refuses what was generated */
	run_ops(ops, n);
	generating = was_generating;
	quiet = false;
	failed = failure.failed;
	if (failed && msg)
		snprintf(msg, len, "op=%ld: %s", failure.op, failure.msg);
	memset(&failure, 0, sizeof(failure));
	return failed;
}

/*
 * ddmin over the list: try to drop each of k chunks (k = 2, 4, ... up to
 * single operations), keep any smaller list that still fails.  Returns the
 * new length; msg gets the last failure seen.
 */
static long reduce(struct op *ops, long n, double budget, char *msg,
		   size_t len)
{
	double end = now() + budget, start = now();
	struct op *cand = malloc(n * sizeof(*ops));
	long k = 2, replays = 0, orig = n;

	if (!cand)
		bug("out of memory");
	replay_end = end;
	while (n >= 2 && now() < end && !stop_requested) {
		long size = (n + k - 1) / k, m;
		bool smaller = false;

		for (long c = 0; c < n && now() < end; c += size) {
			m = 0;
			for (long i = 0; i < n; i++)
				if (i < c || i >= c + size)
					cand[m++] = ops[i];
			replays++;
			if (replay_fails(cand, m, msg, len)) {
				memcpy(ops, cand, m * sizeof(*ops));
				n = m;
				k = MAX(k - 1, 2);
				smaller = true;
				break;
			}
		}
		if (!smaller) {
			if (k >= n)
				break;
			k = MIN(2 * k, n);
		}
	}
	replay_end = 0;
	printf("# reduced %ld ops to %ld in %ld replays (%.1f s%s)\n", orig, n,
	       replays, now() - start,
	       now() >= end ? ", time budget used up" : "");
	free(cand);
	return n;
}

static void write_repro(const struct op *ops, long n, const char *what)
{
	char buf[320], path[4200];
	FILE *f;

	/* --keep-going: the second failure goes to FILE.2 and so on */
	if (stats.failures > 1)
		snprintf(path, sizeof(path), "%s.%d", opt.repro,
			 stats.failures);
	else
		snprintf(path, sizeof(path), "%s", opt.repro);
	f = fopen(path, "w");

	printf("# failing sequence (%ld ops):\n", n);
	if (f)
		fprintf(f, "# cow_pte_fuzz repro: seed=%" PRIu64 "\n# %s\n",
			opt.seed, what);
	for (long i = 0; i < n; i++) {
		op_format(&ops[i], buf, sizeof(buf));
		if (i < 100)
			printf("#   %s\n", buf);
		else if (i == 100)
			printf("#   ... %ld more in the file\n", n - 100);
		if (f)
			fprintf(f, "%s\n", buf);
	}
	if (!f || fclose(f))
		printf("# cannot write %s: %s\n", path, strerror(errno));
	else
		printf("# written to %s; replay with: cow_pte_fuzz --replay %s\n",
		       path, path);
}

/*
 * After a failure in the list ops[0..n): report it, check that it
 * reproduces, reduce it, write the repro file.
 */
void handle_failure(const struct op *ops, long n)
{
	long m = 0, fop = failure.op;
	struct op *copy = malloc((n ? n : 1) * sizeof(*ops));
	char msg[1200], what[1300];

	printf("FAIL seed=%" PRIu64 " op=%ld: %s\n", opt.seed, fop, failure.msg);
	fflush(stdout);
	snprintf(what, sizeof(what), "failure: op=%ld: %s", fop, failure.msg);
	if (!copy)
		bug("out of memory");
	for (long i = 0; i < n; i++)
		if (ops[i].idx <= fop)
			copy[m++] = ops[i];
	if (opt.reduce_time > 0) {
		double end = now() + opt.reduce_time;
		bool failed;

		/* The replay counts against the budget: a test has a timeout. */
		printf("# replaying %ld ops in a fresh tree\n", m);
		fflush(stdout);
		replay_end = end;
		failed = replay_fails(copy, m, msg, sizeof(msg));
		replay_end = 0;
		if (replay_cut) {
			printf("# the replay used up the reduction budget (%.0f s) before the failing op; writing the sequence unreduced\n",
			       opt.reduce_time);
		} else if (!failed) {
			printf("# did not reproduce: the failure did not recur on replay (non-deterministic); writing the sequence unreduced\n");
		} else {
			printf("# reproduced: %s\n", msg);
			m = reduce(copy, m, MAX(end - now(), 0.0), msg,
				   sizeof(msg));
			printf("# reduced failure: %s\n", msg);
			snprintf(what, sizeof(what), "failure: %s", msg);
		}
	}
	write_repro(copy, m, what);
	free(copy);
	memset(&failure, 0, sizeof(failure));
}

long read_repro(const char *path, struct op **ops)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	long n = 0, cap = 0, lineno = 0;
	char *p;

	if (!f)
		die("cannot open %s: %s", path, strerror(errno));
	*ops = NULL;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		p = strstr(line, "seed=");
		if (line[0] == '#') {
			if (p && lineno == 1)
				opt.seed = strtoull(p + 5, NULL, 10);
			continue;
		}
		if (line[strspn(line, " \t\n")] == '\0')
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			*ops = realloc(*ops, cap * sizeof(**ops));
			if (!*ops)
				bug("out of memory");
		}
		if (op_parse(line, &(*ops)[n]))
			die("%s:%ld: cannot parse the operation", path, lineno);
		n++;
	}
	fclose(f);
	return n;
}
