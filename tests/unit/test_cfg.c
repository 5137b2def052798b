// SPDX-License-Identifier: MIT
/* Unit tests for common/cfg: INI loading against a table, file:line errors, command line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cfg.h"

static const struct cfg_key test_table[] = {
	{ "server", "listen", CFG_STR, "127.0.0.1:80", 1, 64, false, "addresses" },
	{ "server", "name", CFG_STR, NULL, 1, 16, false, "required name" },
	{ "server", "threads", CFG_INT, "4", 1, 64, false, "workers" },
	{ "server", "verbose", CFG_BOOL, "false", 0, 1, true, "chatty" },
	{ "server", "offset", CFG_INT, "-5", -100, 100, true, "signed" },
	{ "redis", "url", CFG_STR, "redis://localhost", 0, 1000, false, "where" },
	{ "redis", "timeout_ms", CFG_INT, "500", 0, 10000, true, "patience" },
	{ "admin", "admin_token", CFG_STR, "", 0, 64, true, "secret" },
};
#define TEST_N (sizeof(test_table) / sizeof(test_table[0]))

/* Each test writes its files into these, removed in teardown. */
struct cfg_test {
	char path[32][64];
	size_t npath;
	char err[512];
};

static int
setup(void **state)
{
	struct cfg_test *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct cfg_test *t = *state;

	for (size_t i = 0; i < t->npath; i++)
		unlink(t->path[i]);
	free(t);
	return 0;
}

/* Writes text to a new temp file and returns its path (owned by t). */
static const char *
tmp_file(struct cfg_test *t, const char *text)
{
	char *path;
	size_t len = strlen(text);
	int fd;

	assert_true(t->npath < 32);
	path = t->path[t->npath];
	strcpy(path, "/tmp/test_cfg.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	t->npath++;
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

static struct cfg *
load(struct cfg_test *t, const char *text, const char **ret_path)
{
	const char *path = tmp_file(t, text);

	if (ret_path)
		*ret_path = path;
	memset(t->err, 'x', sizeof(t->err));
	return cfg_load(test_table, TEST_N, path, t->err, sizeof(t->err));
}

/* Loads text that must fail; checks the error starts with "PATH:LINE: " and holds `what`. */
static void
load_fails_at(struct cfg_test *t, const char *text, int line, const char *what)
{
	const char *path;
	char want[128];
	struct cfg *c = load(t, text, &path);

	assert_null(c);
	snprintf(want, sizeof(want), "%s:%d: ", path, line);
	if (strncmp(t->err, want, strlen(want)) != 0)
		fail_msg("error \"%s\" does not start with \"%s\"", t->err, want);
	if (!strstr(t->err, what))
		fail_msg("error \"%s\" does not mention \"%s\"", t->err, what);
}

/* ---- loading ---- */

static void
test_valid_file(void **state)
{
	struct cfg_test *t = *state;
	struct cfg *c = load(t,
			     "; a comment\n"
			     "# another comment\n"
			     "\n"
			     "[server]\n"
			     "listen = 10.0.0.1:8080, [::1]:8080\n"
			     "name=edge-1\n"
			     "threads   =   12  \n"
			     "verbose = yes ; inline comment after a space\n"
			     "offset = -42\n"
			     "[redis]\n"
			     "url = redis://r:6379/0\n"
			     "timeout_ms = 0\n"
			     "[admin]\n"
			     "admin_token = s3cr;et\n",
			     NULL);

	if (!c)
		fail_msg("load failed: %s", t->err);
	assert_string_equal(t->err, "");
	assert_string_equal(cfg_str(c, "server", "listen"), "10.0.0.1:8080, [::1]:8080");
	assert_string_equal(cfg_str(c, "server", "name"), "edge-1");
	assert_int_equal(cfg_int(c, "server", "threads"), 12);
	assert_true(cfg_bool(c, "server", "verbose"));
	assert_int_equal(cfg_int(c, "server", "offset"), -42);
	assert_string_equal(cfg_str(c, "redis", "url"), "redis://r:6379/0");
	assert_int_equal(cfg_int(c, "redis", "timeout_ms"), 0);
	/* ';' starts a comment only after whitespace. */
	assert_string_equal(cfg_str(c, "admin", "admin_token"), "s3cr;et");
	cfg_free(c);
}

static void
test_defaults(void **state)
{
	struct cfg_test *t = *state;
	struct cfg *c = load(t, "[server]\nname = n\n", NULL);

	assert_non_null(c);
	assert_string_equal(cfg_str(c, "server", "listen"), "127.0.0.1:80");
	assert_string_equal(cfg_str(c, "server", "name"), "n");
	assert_int_equal(cfg_int(c, "server", "threads"), 4);
	assert_false(cfg_bool(c, "server", "verbose"));
	assert_int_equal(cfg_int(c, "server", "offset"), -5);
	assert_string_equal(cfg_str(c, "redis", "url"), "redis://localhost");
	assert_int_equal(cfg_int(c, "redis", "timeout_ms"), 500);
	assert_string_equal(cfg_str(c, "admin", "admin_token"), "");
	cfg_free(c);
	cfg_free(NULL);
}

static void
test_required_missing(void **state)
{
	struct cfg_test *t = *state;
	const char *path;
	char want[256];
	struct cfg *c = load(t, "[server]\nthreads = 2\n", &path);

	assert_null(c);
	snprintf(want, sizeof(want), "%s: required key server.name is missing", path);
	assert_string_equal(t->err, want);

	/* An empty file lacks it too. */
	c = load(t, "", &path);
	assert_null(c);
	snprintf(want, sizeof(want), "%s: required key server.name is missing", path);
	assert_string_equal(t->err, want);
}

static void
test_missing_file(void **state)
{
	struct cfg_test *t = *state;
	struct cfg *c =
		cfg_load(test_table, TEST_N, "/nonexistent/p2pcdn.ini", t->err, sizeof(t->err));

	assert_null(c);
	assert_non_null(strstr(t->err, "/nonexistent/p2pcdn.ini: cannot open"));
}

static void
test_unknown_section(void **state)
{
	struct cfg_test *t = *state;

	load_fails_at(t, "[server]\nname = a\n\n[bogus]\nx = 1\n", 5, "unknown section [bogus]");
	/* A key before any section belongs to the unnamed section. */
	load_fails_at(t, "; top\nname = a\n[server]\n", 2, "unknown section []");
}

static void
test_unknown_key(void **state)
{
	struct cfg_test *t = *state;

	load_fails_at(t,
		      "; header\n"
		      "[server]\n"
		      "name = a\n"
		      "\n"
		      "# comment\n"
		      "thread = 4\n",
		      6, "unknown key \"thread\" in section [server]");
	/* A key of another section is unknown here. */
	load_fails_at(t, "[server]\nname = a\n[redis]\nthreads = 3\n", 4,
		      "unknown key \"threads\" in section [redis]");
	/* Names are case-sensitive. */
	load_fails_at(t, "[server]\nName = a\n", 2, "unknown key \"Name\"");
}

static void
test_duplicate_key(void **state)
{
	struct cfg_test *t = *state;

	load_fails_at(t, "[server]\nname = a\nthreads = 2\n\nthreads = 3\n", 5,
		      "server.threads set twice (first at line 3)");
	/* Reopening the section does not make a second value legal. */
	load_fails_at(t, "[server]\nname = a\n[redis]\nurl = x\n[server]\nname = b\n", 6,
		      "server.name set twice (first at line 2)");
}

static void
test_int_range(void **state)
{
	struct cfg_test *t = *state;
	struct cfg *c;

	load_fails_at(t, "[server]\nname = a\nthreads = 65\n", 3,
		      "server.threads: 65 out of range [1, 64]");
	load_fails_at(t, "[server]\nname = a\nthreads = 0\n", 3,
		      "server.threads: 0 out of range [1, 64]");
	load_fails_at(t, "[server]\nname = a\noffset = -101\n", 3, "out of range [-100, 100]");

	c = load(t, "[server]\nname = a\nthreads = 64\noffset = -100\n", NULL);
	assert_non_null(c);
	assert_int_equal(cfg_int(c, "server", "threads"), 64);
	assert_int_equal(cfg_int(c, "server", "offset"), -100);
	cfg_free(c);
}

static void
test_int_syntax(void **state)
{
	struct cfg_test *t = *state;
	static const char *bad[] = {
		"4x", "x4", "", "0x10", "1.5", "4 # four", "99999999999999999999"
	};
	char text[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[server]\nname = a\n\nthreads = %s\n", bad[i]);
		load_fails_at(t, text, 4, "server.threads: expected an integer");
	}
}

static void
test_bool_forms(void **state)
{
	struct cfg_test *t = *state;
	static const struct {
		const char *text;
		bool value;
	} ok[] = {
		{ "true", true }, { "TRUE", true },   { "yes", true }, { "On", true },
		{ "1", true },    { "false", false }, { "No", false }, { "off", false },
		{ "0", false },   { "FALSE", false },
	};
	static const char *bad[] = { "maybe", "2", "", "y", "truee", "-1" };
	char text[128];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct cfg *c;

		snprintf(text, sizeof(text), "[server]\nname = a\nverbose = %s\n", ok[i].text);
		c = load(t, text, NULL);
		if (!c)
			fail_msg("\"%s\" rejected: %s", ok[i].text, t->err);
		assert_int_equal(cfg_bool(c, "server", "verbose"), ok[i].value);
		cfg_free(c);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[server]\nname = a\nverbose = %s\n", bad[i]);
		load_fails_at(t, text, 3, "server.verbose: expected true or false");
	}
}

static void
test_string_length(void **state)
{
	struct cfg_test *t = *state;
	struct cfg *c;

	load_fails_at(t, "[server]\nname =\n", 2, "server.name: length 0 out of range [1, 16]");
	load_fails_at(t, "[server]\nname = 0123456789abcdefg\n", 2,
		      "server.name: length 17 out of range [1, 16]");
	c = load(t, "[server]\nname = 0123456789abcdef\n", NULL);
	assert_non_null(c);
	assert_string_equal(cfg_str(c, "server", "name"), "0123456789abcdef");
	cfg_free(c);
}

static void
test_long_line(void **state)
{
	struct cfg_test *t = *state;
	char text[1024], val[512];
	struct cfg *c;

	/* inih's line buffer is 200 bytes: 198 characters and the newline fit. */
	memset(val, 'v', 192);
	val[192] = '\0';
	snprintf(text, sizeof(text), "[server]\nname = a\n[redis]\nurl = %s\n", val);
	c = load(t, text, NULL);
	if (!c)
		fail_msg("a 198-byte line was rejected: %s", t->err);
	assert_int_equal(strlen(cfg_str(c, "redis", "url")), 192);
	cfg_free(c);

	/* One more byte is an error, never a silent split into two lines. */
	memset(val, 'v', 193);
	val[193] = '\0';
	snprintf(text, sizeof(text), "[server]\nname = a\n[redis]\nurl = %s\n", val);
	load_fails_at(t, text, 4, "line longer than");

	/* Same for the last line without a newline. */
	memset(val, 'w', 400);
	val[400] = '\0';
	snprintf(text, sizeof(text), "[server]\nname = a\n[redis]\n\nurl = %s", val);
	load_fails_at(t, text, 5, "line longer than");
}

static void
test_syntax_error(void **state)
{
	struct cfg_test *t = *state;

	load_fails_at(t, "[server]\nname = a\nthis line has no equals sign\n", 3, "syntax error");
	load_fails_at(t, "; c\n\n[server\n", 3, "syntax error");
}

/* The contract promises the first error; a syntax error followed by a bad key must be
 * reported at the syntax error's line. */
static void
test_first_error_wins(void **state)
{
	struct cfg_test *t = *state;

	load_fails_at(t, "[server]\nname = a\nno equals here\nthreads = 999\n", 3, "syntax error");
	/* An unclosed section header, then a key that lands in the unnamed section. */
	load_fails_at(t, "; c\n\n[server\nname = a\n", 3, "syntax error");
}

/* Indented keys are ordinary keys. libinih (built with INI_ALLOW_MULTILINE) takes an
 * indented line after a key as a continuation of that key's value, so cfg must not let
 * "threads = 4" below "name = a" turn into a second value for name. */
static void
test_indented_keys(void **state)
{
	struct cfg_test *t = *state;
	struct cfg *c = load(t, "[server]\n\tname = a\n\tthreads = 4\n    verbose = on\n", NULL);

	if (!c)
		fail_msg("indented keys rejected: %s", t->err);
	assert_string_equal(cfg_str(c, "server", "name"), "a");
	assert_int_equal(cfg_int(c, "server", "threads"), 4);
	assert_true(cfg_bool(c, "server", "verbose"));
	cfg_free(c);
}

static void
test_diff_fixed(void **state)
{
	struct cfg_test *t = *state;
	struct cfg *a, *b, *same;
	char buf[256], small[8];

	a = load(t, "[server]\nname = a\nthreads = 2\nverbose = no\n[redis]\ntimeout_ms = 1\n",
		 NULL);
	b = load(t,
		 "[server]\nname = a\nlisten = 0.0.0.0:1\nthreads = 3\nverbose = yes\n"
		 "[redis]\ntimeout_ms = 2\n[admin]\nadmin_token = t\n",
		 NULL);
	same = load(t, "[server]\nname = a\nthreads = 2\nverbose = yes\n", NULL);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(same);

	/* Only non-reloadable keys count, in table order. */
	assert_int_equal(cfg_diff_fixed(a, b, buf, sizeof(buf)), 2);
	assert_string_equal(buf, "server.listen, server.threads");

	/* Reloadable changes alone are no difference. */
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(cfg_diff_fixed(a, same, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");

	/* A short buffer still counts everything and stays terminated. */
	memset(small, 'x', sizeof(small));
	assert_int_equal(cfg_diff_fixed(a, b, small, sizeof(small)), 2);
	assert_int_equal(strnlen(small, sizeof(small)), sizeof(small) - 1);
	assert_int_equal(cfg_diff_fixed(b, a, NULL, 0), 2);

	cfg_free(a);
	cfg_free(b);
	cfg_free(same);
}

/* cfg_int on a key the table lacks is a programming error: it aborts. */
static void
test_typo_aborts(void **state)
{
	struct cfg_test *t = *state;
	struct cfg *c = load(t, "[server]\nname = a\n", NULL);
	int status;
	pid_t pid;

	assert_non_null(c);
	for (int which = 0; which < 2; which++) {
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			int devnull = open("/dev/null", O_WRONLY);
			dup2(devnull, 2);
			if (which == 0)
				(void)cfg_int(c, "server", "thread");
			else
				(void)cfg_int(c, "server", "name"); /* wrong type */
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGABRT);
	}
	cfg_free(c);
}

/* ---- command line ---- */

/* Runs cfg_args_parse on a NULL-terminated argument list (after argv[0] "prog") with
 * stdout and stderr sent to a temp file whose text is returned in out. */
static int
args(char *out, size_t outsize, struct cfg_args *ret, ...)
{
	static char prog[] = "prog";
	char *argv[16], path[] = "/tmp/test_cfg_out.XXXXXX";
	int argc = 0, fd, save1, save2, r;
	ssize_t n;
	va_list ap;
	char *s;

	argv[argc++] = prog;
	va_start(ap, ret);
	while ((s = va_arg(ap, char *)) && argc < 15)
		argv[argc++] = s;
	va_end(ap);
	argv[argc] = NULL;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	fflush(stdout);
	fflush(stderr);
	save1 = dup(1);
	save2 = dup(2);
	dup2(fd, 1);
	dup2(fd, 2);
	r = cfg_args_parse(argc, argv, "prog", "a test", test_table, TEST_N, ret);
	fflush(stdout);
	fflush(stderr);
	dup2(save1, 1);
	dup2(save2, 2);
	close(save1);
	close(save2);
	n = pread(fd, out, outsize - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	return r;
}

static char a_config[] = "--config", a_file[] = "/etc/x.ini", a_config_eq[] = "--config=/y.ini",
	    a_check[] = "--check-config", a_migrate[] = "--migrate", a_c[] = "-c", a_n[] = "-n",
	    a_version[] = "--version", a_help[] = "--help", a_bogus[] = "--bogus",
	    a_stray[] = "stray";

static void
test_args_ok(void **state)
{
	struct cfg_args a;
	char out[512];

	(void)state;
	memset(&a, 0xff, sizeof(a));
	assert_int_equal(args(out, sizeof(out), &a, a_config, a_file, NULL), 0);
	assert_string_equal(a.config, "/etc/x.ini");
	assert_false(a.check);
	assert_false(a.migrate);
	assert_string_equal(out, "");

	assert_int_equal(args(out, sizeof(out), &a, a_config, a_file, a_check, NULL), 0);
	assert_string_equal(a.config, "/etc/x.ini");
	assert_true(a.check);
	assert_false(a.migrate);

	assert_int_equal(args(out, sizeof(out), &a, a_migrate, a_config_eq, NULL), 0);
	assert_string_equal(a.config, "/y.ini");
	assert_false(a.check);
	assert_true(a.migrate);

	assert_int_equal(args(out, sizeof(out), &a, a_c, a_file, a_n, NULL), 0);
	assert_string_equal(a.config, "/etc/x.ini");
	assert_true(a.check);
	assert_false(a.migrate);
}

static void
test_args_errors(void **state)
{
	struct cfg_args a, untouched;
	char out[4096];

	(void)state;
	memset(&a, 0x5a, sizeof(a));
	untouched = a;

	/* Both modes at once. */
	assert_int_equal(args(out, sizeof(out), &a, a_config, a_file, a_check, a_migrate, NULL),
			 -EINVAL);
	assert_non_null(strstr(out, "exclude each other"));
	assert_memory_equal(&a, &untouched, sizeof(a));

	/* No --config. */
	assert_int_equal(args(out, sizeof(out), &a, a_check, NULL), -EINVAL);
	assert_non_null(strstr(out, "--config FILE is required"));
	assert_memory_equal(&a, &untouched, sizeof(a));
	assert_int_equal(args(out, sizeof(out), &a, NULL), -EINVAL);
	assert_memory_equal(&a, &untouched, sizeof(a));

	/* Unknown option, stray argument, option without its value. */
	assert_int_equal(args(out, sizeof(out), &a, a_config, a_file, a_bogus, NULL), -EINVAL);
	assert_non_null(strstr(out, "try --help"));
	assert_memory_equal(&a, &untouched, sizeof(a));
	assert_int_equal(args(out, sizeof(out), &a, a_config, a_file, a_stray, NULL), -EINVAL);
	assert_non_null(strstr(out, "unexpected argument \"stray\""));
	assert_memory_equal(&a, &untouched, sizeof(a));
	assert_int_equal(args(out, sizeof(out), &a, a_config, NULL), -EINVAL);
	assert_memory_equal(&a, &untouched, sizeof(a));

	/* A good call after the failures still parses (getopt state is reset). */
	assert_int_equal(args(out, sizeof(out), &a, a_c, a_file, NULL), 0);
	assert_string_equal(a.config, "/etc/x.ini");
}

static void
test_args_version_help(void **state)
{
	struct cfg_args a, untouched;
	char out[8192];

	(void)state;
	memset(&a, 0x5a, sizeof(a));
	untouched = a;
	assert_int_equal(args(out, sizeof(out), &a, a_version, NULL), 1);
	assert_string_equal(out, "prog " P2PCDN_VERSION "\n");
	assert_memory_equal(&a, &untouched, sizeof(a));
	assert_int_equal(args(out, sizeof(out), &a, a_config, a_file, a_version, NULL), 1);
	assert_string_equal(out, "prog " P2PCDN_VERSION "\n");

	assert_int_equal(args(out, sizeof(out), &a, a_help, NULL), 1);
	assert_non_null(strstr(out, "usage: prog --config FILE"));
	/* Every key with its default; required ones marked, reloadable ones with (R). */
	assert_non_null(strstr(out, "[redis]"));
	assert_non_null(strstr(out, "timeout_ms"));
	assert_non_null(strstr(out, "(required)"));
	assert_non_null(strstr(out, "(R) patience"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_valid_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_required_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_section, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_int_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_int_syntax, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bool_forms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_string_length, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syntax_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_error_wins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_indented_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_diff_fixed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_typo_aborts, setup, teardown),
		cmocka_unit_test(test_args_ok),
		cmocka_unit_test(test_args_errors),
		cmocka_unit_test(test_args_version_help),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
