/* SPDX-License-Identifier: MIT */
/* INI configuration checked against one table per daemon, and the command line. */
#ifndef P2PCDN_CFG_H
#define P2PCDN_CFG_H

#include <stdbool.h>
#include <stddef.h>

enum cfg_type {
	CFG_STR,
	CFG_INT,  /* decimal integer within [min, max] */
	CFG_BOOL, /* true/false/yes/no/on/off/1/0 */
};

/* One row of a daemon's config table. `def` is the default as text (NULL =
 * the key is required). Strings are checked against [min, max] as length. */
struct cfg_key {
	const char *section;
	const char *name;
	enum cfg_type type;
	const char *def;
	long long min, max;
	bool reloadable;
	const char *help;
};

/* One row of a table, written one key a line in the daemons' *_conf.c. */
#define CFG_KEY(sec, name, type, def, min, max, rel, help)                                         \
	{                                                                                          \
		sec, name, type, def, min, max, rel, help                                          \
	}

/* A parsed, validated, immutable config: one value per table row. */
struct cfg;

/* Reads and validates path against table[0..n). Unknown sections or keys,
 * duplicates, bad values, over-long lines and missing required keys are
 * errors; the first is written to err as "PATH:LINE: message".
 * Returns a new config (free with cfg_free) or NULL. */
struct cfg *cfg_load(const struct cfg_key *table, size_t n, const char *path, char *err,
		     size_t errsize);

/* NULL-safe. Values that look like secrets (names containing "password",
 * "token" or "key") are wiped first. */
void cfg_free(struct cfg *c);

/* Typed access by "section", "name"; the key must be in the table (a typo
 * is a programming error and aborts). Strings live as long as c. */
const char *cfg_str(const struct cfg *c, const char *section, const char *name);
long long cfg_int(const struct cfg *c, const char *section, const char *name);
bool cfg_bool(const struct cfg *c, const char *section, const char *name);

/* After a reload: writes into buf the comma-separated non-reloadable keys
 * whose values differ between a and b. Returns how many differ. */
int cfg_diff_fixed(const struct cfg *a, const struct cfg *b, char *buf, size_t size);

/* Command line shared by every daemon:
 *   NAME --config FILE [--check-config | --migrate] | --version | --help
 * Returns 0 to go on (ret filled), 1 when --version/--help was printed (exit
 * 0), -EINVAL after printing a usage error to stderr (exit 2). */
struct cfg_args {
	const char *config;
	bool check;
	bool migrate;
};
int cfg_args_parse(int argc, char **argv, const char *prog, const char *summary,
		   const struct cfg_key *table, size_t n, struct cfg_args *ret);

#endif
