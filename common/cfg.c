// SPDX-License-Identifier: MIT
/* INI configuration checked against one table per daemon, and the command line. */
#include "cfg.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

struct cfg_val {
	char *str; /* text as given (or default); NULL only for missing required */
	long long num;
	int line; /* 0 = default */
};

struct cfg {
	const struct cfg_key *table;
	size_t n;
	struct cfg_val *vals;
};

struct cfg_parse {
	struct cfg *c;
	FILE *f;
	const char *path;
	int line;
	bool too_long;
	char *err;
	size_t errsize;
	bool failed;
	int err_line;
};

static void cfg_error(struct cfg_parse *p, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
cfg_error(struct cfg_parse *p, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (p->failed)
		return; /* keep the first error: later ones are often consequences */
	p->failed = true;
	p->err_line = line;
	n = snprintf(p->err, p->errsize, "%s:%d: ", p->path, line);
	if (n < 0 || (size_t)n >= p->errsize)
		return;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->errsize - (size_t)n, fmt, ap);
	va_end(ap);
}

static long
cfg_find(const struct cfg_key *table, size_t n, const char *section, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(table[i].section, section) == 0 && strcmp(table[i].name, name) == 0)
			return (long)i;
	return -1;
}

static bool
cfg_section_known(const struct cfg_key *table, size_t n, const char *section)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(table[i].section, section) == 0)
			return true;
	return false;
}

static int
cfg_parse_bool(const char *s, long long *ret)
{
	static const char *yes[] = { "true", "yes", "on", "1" };
	static const char *no[] = { "false", "no", "off", "0" };
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*ret = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*ret = 0;
			return 0;
		}
	}
	return -EINVAL;
}

/* Converts and range-checks one value; on error writes a message to msg. */
static int
cfg_convert(const struct cfg_key *k, const char *s, long long *ret, char *msg, size_t msgsize)
{
	char *end;
	long long v;
	size_t len;

	switch (k->type) {
	case CFG_BOOL:
		if (cfg_parse_bool(s, ret) < 0) {
			snprintf(msg, msgsize, "%s.%s: expected true or false, got \"%s\"",
				 k->section, k->name, s);
			return -EINVAL;
		}
		return 0;
	case CFG_INT:
		errno = 0;
		v = strtoll(s, &end, 10);
		if (errno || end == s || *end) {
			snprintf(msg, msgsize, "%s.%s: expected an integer, got \"%s\"", k->section,
				 k->name, s);
			return -EINVAL;
		}
		if (v < k->min || v > k->max) {
			snprintf(msg, msgsize, "%s.%s: %lld out of range [%lld, %lld]", k->section,
				 k->name, v, k->min, k->max);
			return -ERANGE;
		}
		*ret = v;
		return 0;
	case CFG_STR:
		len = strlen(s);
		if ((long long)len < k->min || (long long)len > k->max) {
			snprintf(msg, msgsize, "%s.%s: length %zu out of range [%lld, %lld]",
				 k->section, k->name, len, k->min, k->max);
			return -ERANGE;
		}
		*ret = (long long)len;
		return 0;
	}
	return -EINVAL;
}

static int
cfg_handler(void *user, const char *section, const char *name, const char *value)
{
	struct cfg_parse *p = user;
	struct cfg *c = p->c;
	char msg[256];
	long idx;

	if (p->failed)
		return 0;
	if (!cfg_section_known(c->table, c->n, section)) {
		cfg_error(p, p->line, "unknown section [%s]", section);
		return 0;
	}
	idx = cfg_find(c->table, c->n, section, name);
	if (idx < 0) {
		cfg_error(p, p->line, "unknown key \"%s\" in section [%s]", name, section);
		return 0;
	}
	if (c->vals[idx].line) {
		cfg_error(p, p->line, "%s.%s set twice (first at line %d)", section, name,
			  c->vals[idx].line);
		return 0;
	}
	if (cfg_convert(&c->table[idx], value, &c->vals[idx].num, msg, sizeof(msg)) < 0) {
		cfg_error(p, p->line, "%s", msg);
		return 0;
	}
	free(c->vals[idx].str);
	c->vals[idx].str = strdup(value);
	if (!c->vals[idx].str) {
		cfg_error(p, p->line, "out of memory");
		return 0;
	}
	c->vals[idx].line = p->line;
	return 1;
}

/* Reads one line for inih while counting lines, so errors carry file:line;
 * a line longer than inih's buffer is an error, not a silent split. */
static char *
cfg_reader(char *str, int num, void *stream)
{
	struct cfg_parse *p = stream;
	char *r = fgets(str, num, p->f);
	size_t len;

	if (!r)
		return NULL;
	p->line++;
	len = strlen(str);
	if (len == (size_t)num - 1 && str[len - 1] != '\n' && !feof(p->f)) {
		cfg_error(p, p->line, "line longer than %d bytes", num - 2);
		p->too_long = true;
		return NULL;
	}
	/* libinih reads an indented line as the continuation of the previous
	 * value; operators indent keys under sections, so drop the indent. */
	size_t lead = strspn(str, " \t");
	if (lead)
		memmove(str, str + lead, len - lead + 1);
	return r;
}

struct cfg *
cfg_load(const struct cfg_key *table, size_t n, const char *path, char *err, size_t errsize)
{
	struct cfg_parse p = { .path = path, .err = err, .errsize = errsize };
	struct cfg *c;
	char msg[256];
	int r;

	if (errsize)
		err[0] = '\0';
	c = calloc(1, sizeof(*c));
	if (!c)
		goto fail_nomem;
	c->table = table;
	c->n = n;
	c->vals = calloc(n, sizeof(*c->vals));
	if (!c->vals)
		goto fail_nomem;
	p.c = c;
	p.f = fopen(path, "re");
	if (!p.f) {
		snprintf(err, errsize, "%s: cannot open: %s", path, strerror(errno));
		goto fail;
	}
	r = ini_parse_stream(cfg_reader, &p, cfg_handler, &p);
	fclose(p.f);
	/* libinih goes on after a syntax error and returns its line at the
	 * end, so a later handler error may have been recorded first. */
	if (r > 0 && (!p.failed || r < p.err_line)) {
		p.failed = false;
		cfg_error(&p, r, "syntax error (expected [section], key = value or a comment)");
		goto fail;
	}
	if (p.failed)
		goto fail;
	if (r < 0) {
		cfg_error(&p, 0, "cannot read");
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		if (c->vals[i].str)
			continue;
		if (!table[i].def) {
			snprintf(err, errsize, "%s: required key %s.%s is missing", path,
				 table[i].section, table[i].name);
			goto fail;
		}
		if (cfg_convert(&table[i], table[i].def, &c->vals[i].num, msg, sizeof(msg)) < 0) {
			snprintf(err, errsize, "%s: bad built-in default: %s", path, msg);
			goto fail;
		}
		c->vals[i].str = strdup(table[i].def);
		if (!c->vals[i].str)
			goto fail_nomem;
	}
	return c;

fail_nomem:
	snprintf(err, errsize, "%s: out of memory", path);
fail:
	cfg_free(c);
	return NULL;
}

static bool
cfg_is_secret(const struct cfg_key *k)
{
	return strstr(k->name, "password") || strstr(k->name, "token") ||
	       strstr(k->name, "secret") || strstr(k->name, "_key");
}

void
cfg_free(struct cfg *c)
{
	if (!c)
		return;
	if (c->vals) {
		for (size_t i = 0; i < c->n; i++) {
			if (c->vals[i].str && cfg_is_secret(&c->table[i]))
				sodium_memzero(c->vals[i].str, strlen(c->vals[i].str));
			free(c->vals[i].str);
		}
		free(c->vals);
	}
	free(c);
}

static const struct cfg_val *
cfg_get(const struct cfg *c, const char *section, const char *name, enum cfg_type type)
{
	long idx = cfg_find(c->table, c->n, section, name);
	if (idx < 0 || c->table[idx].type != type) {
		fprintf(stderr, "BUG: config key %s.%s not in table or wrong type\n", section,
			name);
		abort();
	}
	return &c->vals[idx];
}

const char *
cfg_str(const struct cfg *c, const char *section, const char *name)
{
	return cfg_get(c, section, name, CFG_STR)->str;
}

long long
cfg_int(const struct cfg *c, const char *section, const char *name)
{
	return cfg_get(c, section, name, CFG_INT)->num;
}

bool
cfg_bool(const struct cfg *c, const char *section, const char *name)
{
	return cfg_get(c, section, name, CFG_BOOL)->num != 0;
}

int
cfg_diff_fixed(const struct cfg *a, const struct cfg *b, char *buf, size_t size)
{
	int count = 0;
	size_t used = 0;

	if (size)
		buf[0] = '\0';
	for (size_t i = 0; i < a->n && i < b->n; i++) {
		if (a->table[i].reloadable || strcmp(a->vals[i].str, b->vals[i].str) == 0)
			continue;
		count++;
		if (used < size) {
			int w = snprintf(buf + used, size - used, "%s%s.%s", count > 1 ? ", " : "",
					 a->table[i].section, a->table[i].name);
			if (w > 0)
				used += (size_t)w;
		}
	}
	return count;
}

static void
cfg_print_help(const char *prog, const char *summary, const struct cfg_key *table, size_t n)
{
	const char *section = "";

	printf("%s %s — %s\n\n", prog, P2PCDN_VERSION, summary);
	printf("usage: %s --config FILE            run in the foreground\n"
	       "       %s --config FILE --check-config   validate FILE and exit\n"
	       "       %s --config FILE --migrate  apply PostgreSQL migrations and exit\n"
	       "       %s --version | --help\n\n"
	       "Signals: SIGTERM/SIGINT drain and exit, SIGHUP reloads keys marked (R).\n\n"
	       "Config keys (INI), with defaults:\n",
	       prog, prog, prog, prog);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(section, table[i].section) != 0) {
			section = table[i].section;
			printf("\n[%s]\n", section);
		}
		printf("  %-22s = %-20s %s%s\n", table[i].name,
		       table[i].def ? table[i].def : "(required)",
		       table[i].reloadable ? "(R) " : "", table[i].help);
	}
}

int
cfg_args_parse(int argc, char **argv, const char *prog, const char *summary,
	       const struct cfg_key *table, size_t n, struct cfg_args *ret)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'n' },
		{ "migrate", no_argument, NULL, 'm' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cfg_args a = { 0 };
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:nmVh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			a.config = optarg;
			break;
		case 'n':
			a.check = true;
			break;
		case 'm':
			a.migrate = true;
			break;
		case 'V':
			printf("%s %s\n", prog, P2PCDN_VERSION);
			return 1;
		case 'h':
			cfg_print_help(prog, summary, table, n);
			return 1;
		default:
			fprintf(stderr, "%s: try --help\n", prog);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument \"%s\"; try --help\n", prog, argv[optind]);
		return -EINVAL;
	}
	if (!a.config) {
		fprintf(stderr, "%s: --config FILE is required; try --help\n", prog);
		return -EINVAL;
	}
	if (a.check && a.migrate) {
		fprintf(stderr, "%s: --check-config and --migrate exclude each other\n", prog);
		return -EINVAL;
	}
	*ret = a;
	return 0;
}
