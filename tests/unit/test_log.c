// SPDX-License-Identifier: MIT
/* Unit tests for common/log: level names, line format on stderr, request ids, filtering. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* stderr is sent to a temp file between capture_start and capture_end. */
static int capture_fd = -1, saved_stderr = -1;

static void
capture_start(void)
{
	char path[] = "/tmp/test_log.XXXXXX";

	capture_fd = mkstemp(path);
	assert_true(capture_fd >= 0);
	unlink(path);
	saved_stderr = dup(2);
	assert_true(saved_stderr >= 0);
	assert_int_equal(dup2(capture_fd, 2), 2);
}

/* Restores stderr and returns what was written (malloc'd, caller frees). */
static char *
capture_end(void)
{
	off_t len;
	char *buf;

	assert_int_equal(dup2(saved_stderr, 2), 2);
	close(saved_stderr);
	len = lseek(capture_fd, 0, SEEK_END);
	assert_true(len >= 0);
	buf = malloc((size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(pread(capture_fd, buf, (size_t)len, 0), len);
	buf[len] = '\0';
	close(capture_fd);
	return buf;
}

static int
setup(void **state)
{
	(void)state;
	log_init("tident");
	log_set_level(LOG_DEBUG);
	log_set_request_id(NULL);
	return 0;
}

static void
test_parse_level(void **state)
{
	(void)state;
	assert_int_equal(log_parse_level("debug"), LOG_DEBUG);
	assert_int_equal(log_parse_level("info"), LOG_INFO);
	assert_int_equal(log_parse_level("notice"), LOG_NOTICE);
	assert_int_equal(log_parse_level("warning"), LOG_WARNING);
	assert_int_equal(log_parse_level("warn"), LOG_WARNING);
	assert_int_equal(log_parse_level("err"), LOG_ERR);
	assert_int_equal(log_parse_level("error"), LOG_ERR);
	assert_int_equal(log_parse_level("DEBUG"), LOG_DEBUG);
	assert_int_equal(log_parse_level("Warning"), LOG_WARNING);
	assert_int_equal(log_parse_level(NULL), -EINVAL);
	assert_int_equal(log_parse_level(""), -EINVAL);
	assert_int_equal(log_parse_level("verbose"), -EINVAL);
	assert_int_equal(log_parse_level("info "), -EINVAL);
	assert_int_equal(log_parse_level("6"), -EINVAL);
	assert_int_equal(log_parse_level("errors"), -EINVAL);
}

static void
test_format(void **state)
{
	char *out;

	(void)state;
	capture_start();
	log_info("hello %d %s", 5, "world");
	log_err("broken");
	log_warn("w");
	log_notice("n");
	log_debug("d");
	out = capture_end();
	assert_string_equal(out, "<6>tident: hello 5 world\n"
				 "<3>tident: broken\n"
				 "<4>tident: w\n"
				 "<5>tident: n\n"
				 "<7>tident: d\n");
	free(out);

	/* NULL keeps the current ident. */
	log_init(NULL);
	capture_start();
	log_info("x");
	out = capture_end();
	assert_string_equal(out, "<6>tident: x\n");
	free(out);
}

static void
test_request_id(void **state)
{
	char *out;

	(void)state;
	capture_start();
	log_set_request_id("abc123");
	log_info("with id");
	log_set_request_id(NULL);
	log_info("without");
	out = capture_end();
	assert_string_equal(out, "<6>tident: rid=abc123 with id\n"
				 "<6>tident: without\n");
	free(out);
}

static void *
other_thread(void *arg)
{
	(void)arg;
	log_info("from the other thread");
	return NULL;
}

/* The request id belongs to the thread that set it. */
static void
test_request_id_per_thread(void **state)
{
	pthread_t th;
	char *out;

	(void)state;
	capture_start();
	log_set_request_id("mine");
	assert_int_equal(pthread_create(&th, NULL, other_thread, NULL), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	log_info("from main");
	log_set_request_id(NULL);
	out = capture_end();
	assert_string_equal(out, "<6>tident: from the other thread\n"
				 "<6>tident: rid=mine from main\n");
	free(out);
}

/* A newline inside a message (or an id) must not start a forged line. */
static void
test_newlines_flattened(void **state)
{
	char *out;

	(void)state;
	capture_start();
	log_warn("user said \"%s\"", "hi\n<3>tident: forged\r\nline");
	log_set_request_id("r\nid");
	log_info("tail\n");
	log_set_request_id(NULL);
	out = capture_end();
	assert_string_equal(out, "<4>tident: user said \"hi <3>tident: forged  line\"\n"
				 "<6>tident: rid=r id tail \n");
	free(out);
}

static void
test_level_filter(void **state)
{
	char *out;

	(void)state;
	log_set_level(LOG_WARNING);
	assert_int_equal(log_get_level(), LOG_WARNING);
	assert_true(log_enabled(LOG_ERR));
	assert_true(log_enabled(LOG_WARNING));
	assert_false(log_enabled(LOG_NOTICE));
	assert_false(log_enabled(LOG_INFO));
	assert_false(log_enabled(LOG_DEBUG));
	capture_start();
	log_debug("no");
	log_info("no");
	log_notice("no");
	log_warn("yes w");
	log_err("yes e");
	out = capture_end();
	assert_string_equal(out, "<4>tident: yes w\n<3>tident: yes e\n");
	free(out);

	log_set_level(LOG_ERR);
	capture_start();
	log_warn("no");
	log_err("e");
	out = capture_end();
	assert_string_equal(out, "<3>tident: e\n");
	free(out);

	log_set_level(LOG_DEBUG);
	assert_true(log_enabled(LOG_DEBUG));
	capture_start();
	log_debug("d");
	out = capture_end();
	assert_string_equal(out, "<7>tident: d\n");
	free(out);
}

/* An over-long message is cut but stays one whole line with its prefix. */
static void
test_truncation(void **state)
{
	char *big = malloc(5001), *out;
	size_t len;

	(void)state;
	assert_non_null(big);
	memset(big, 'z', 5000);
	big[5000] = '\0';
	capture_start();
	log_set_request_id("rid1");
	log_info("%s", big);
	log_set_request_id(NULL);
	log_info("after");
	out = capture_end();
	len = strcspn(out, "\n");
	assert_int_equal(len, 2046);
	assert_int_equal(strncmp(out, "<6>tident: rid=rid1 zzz", 23), 0);
	assert_int_equal(strspn(out + 20, "z"), 2046 - 20);
	assert_string_equal(out + len + 1, "<6>tident: after\n");
	free(out);
	free(big);
}

#define LOG_THREADS 8
#define LOG_LINES   2000

static void *
spam_thread(void *arg)
{
	long id = (long)(intptr_t)arg;
	char rid[16];

	snprintf(rid, sizeof(rid), "t%ld", id);
	log_set_request_id(rid);
	for (int i = 0; i < LOG_LINES; i++)
		log_info("thread %ld line %d %s", id, i, "padding-padding-padding-padding");
	log_set_request_id(NULL);
	return NULL;
}

/* One write per line: lines from several threads never interleave. */
static void
test_threads_whole_lines(void **state)
{
	pthread_t th[LOG_THREADS];
	int seen[LOG_THREADS] = { 0 };
	char *out, *line, *save = NULL;
	size_t nlines = 0;

	(void)state;
	capture_start();
	for (long i = 0; i < LOG_THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, spam_thread, (void *)(intptr_t)i), 0);
	for (int i = 0; i < LOG_THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	out = capture_end();
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		long id, id2;
		int n, end = -1;

		if (sscanf(line,
			   "<6>tident: rid=t%ld thread %ld line %d "
			   "padding-padding-padding-padding%n",
			   &id, &id2, &n, &end) != 3 ||
		    end != (int)strlen(line) || id != id2 || id < 0 || id >= LOG_THREADS)
			fail_msg("mangled line: \"%s\"", line);
		if (n != seen[id])
			fail_msg("thread %ld: line %d where %d was expected", id, n, seen[id]);
		seen[id]++;
		nlines++;
	}
	assert_int_equal(nlines, LOG_THREADS * LOG_LINES);
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_parse_level, setup),
		cmocka_unit_test_setup(test_format, setup),
		cmocka_unit_test_setup(test_request_id, setup),
		cmocka_unit_test_setup(test_request_id_per_thread, setup),
		cmocka_unit_test_setup(test_newlines_flattened, setup),
		cmocka_unit_test_setup(test_level_filter, setup),
		cmocka_unit_test_setup(test_truncation, setup),
		cmocka_unit_test_setup(test_threads_whole_lines, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
