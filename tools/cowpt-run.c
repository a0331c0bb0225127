// SPDX-License-Identifier: GPL-2.0
/*
 * cowpt-run - run a program with copy-on-write PTE tables for all its forks.
 *
 *   cowpt-run [--off] [--] COMMAND [ARGS...]
 *
 * Sets prctl(PR_SET_COW_PTE) (or clears it with --off) and execs COMMAND.
 * The setting is kept across execve() and by every child, so every fork of
 * COMMAND and of its descendants shares PTE tables (in cow_pte_mode
 * "opt-in"; "always" shares anyway, "off" refuses).  An unmodified program
 * (redis-server, a test runner, a fork server) gets the feature this way.
 *
 * Exit status: COMMAND's; 125 if cowpt-run itself failed (bad usage, the
 * kernel refused the setting), 126 if COMMAND could not be executed, 127
 * if it was not found, as env(1) does.  It never runs COMMAND without the
 * requested setting.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cowpt.h"

#define EXIT_CANCELED	125
#define EXIT_CANNOT_RUN	126
#define EXIT_ENOENT	127

static void usage(FILE *f)
{
	fprintf(f,
"usage: cowpt-run [--off] [--] COMMAND [ARGS...]\n"
"\n"
"Run COMMAND so that every fork of it and of its descendants shares page\n"
"tables copy-on-write (prctl PR_SET_COW_PTE, kept across fork and execve).\n"
"\n"
"  --off      clear the setting instead (undo an inherited cowpt-run)\n"
"  --help     this text\n"
"\n"
"Needs a kernel with the cowpt series and %s set to opt-in or\n"
"always.  Exit status: COMMAND's; 125 if the setting could not be made\n"
"(COMMAND is then not run), 126 if COMMAND cannot be executed, 127 if it\n"
"is not found.\n", COWPT_MODE_PATH);
}

/* Why the kernel refused the setting, in the user's terms. */
static void explain(int err, int on)
{
	char mode[32] = "";
	FILE *f;

	fprintf(stderr, "cowpt-run: prctl(PR_SET_COW_PTE, %d): %s\n", on,
		strerror(err));
	if (err == EINVAL) {
		fprintf(stderr,
			"cowpt-run: this kernel has no copy-on-write PTE tables (CONFIG_COW_PTE)\n");
	} else if (err == EOPNOTSUPP) {
		f = fopen(COWPT_MODE_PATH, "r");
		if (f) {
			if (!fgets(mode, sizeof(mode), f))
				mode[0] = '\0';
			fclose(f);
		}
		mode[strcspn(mode, "\n")] = '\0';
		fprintf(stderr,
			"cowpt-run: %s is '%s'; set it to opt-in or always first\n",
			COWPT_MODE_PATH, mode);
	}
}

int main(int argc, char **argv)
{
	int on = 1;
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--off")) {
			on = 0;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--")) {
			i++;
			break;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "cowpt-run: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return EXIT_CANCELED;
		} else {
			break;
		}
	}
	if (i >= argc) {
		fprintf(stderr, "cowpt-run: no COMMAND given\n");
		usage(stderr);
		return EXIT_CANCELED;
	}

	if (cowpt_set_inherit(on)) {
		explain(errno, on);
		return EXIT_CANCELED;
	}
	execvp(argv[i], argv + i);
	fprintf(stderr, "cowpt-run: cannot run '%s': %s\n", argv[i],
		strerror(errno));
	return errno == ENOENT ? EXIT_ENOENT : EXIT_CANNOT_RUN;
}
