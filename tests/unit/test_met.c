// SPDX-License-Identifier: MIT
/* Unit tests for common/met: Prometheus text output, label escaping, threads, overflow. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "met.h"
#include "svc.h"

/* Renders r and checks the returned length. Caller frees. */
static char *
render(struct met_registry *r)
{
	size_t len = (size_t)-1;
	char *text = met_render(r, &len);

	assert_non_null(text);
	assert_int_equal(len, strlen(text));
	return text;
}

/* How many lines of text start with prefix. */
static size_t
count_lines(const char *text, const char *prefix)
{
	size_t n = 0, plen = strlen(prefix);

	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		if (strncmp(p, prefix, plen) == 0)
			n++;
		if (!nl)
			break;
		p = nl + 1;
	}
	return n;
}

/* The value text of the one sample line whose series (name and labels, as rendered)
 * is `series`; fails if it appears zero or several times. Returns a static buffer. */
static const char *
sample(const char *text, const char *series)
{
	static char val[128];
	size_t slen = strlen(series);
	const char *found = NULL;

	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		if (!nl)
			fail_msg("last line not terminated: \"%s\"", p);
		if (strncmp(p, series, slen) == 0 && p[slen] == ' ') {
			if (found)
				fail_msg("series %s appears twice", series);
			found = p + slen + 1;
			size_t vlen = (size_t)(nl - found);
			assert_true(vlen < sizeof(val));
			memcpy(val, found, vlen);
			val[vlen] = '\0';
		}
		p = nl + 1;
	}
	if (!found)
		fail_msg("series %s not found in:\n%s", series, text);
	return val;
}

/* ---- rendering ---- */

static void
test_counter(void **state)
{
	struct met_registry *r = met_registry_new();
	struct met *m;
	char *text;

	(void)state;
	assert_non_null(r);
	m = met_new(r, MET_COUNTER, "t_requests_total", "Requests served.", NULL, NULL, 0);
	assert_non_null(m);

	/* An untouched unlabelled family still shows its 0. */
	text = render(r);
	assert_string_equal(text, "# HELP t_requests_total Requests served.\n"
				  "# TYPE t_requests_total counter\n"
				  "t_requests_total 0\n");
	free(text);

	met_add(met_child(m), 3);
	met_add(met_child(m), 0.5);
	assert_true(met_value(met_child(m)) == 3.5);
	text = render(r);
	assert_string_equal(text, "# HELP t_requests_total Requests served.\n"
				  "# TYPE t_requests_total counter\n"
				  "t_requests_total 3.5\n");
	free(text);
	met_registry_free(r);
	met_registry_free(NULL);
}

static void
test_gauge_labels(void **state)
{
	struct met_registry *r = met_registry_new();
	struct met *m, *empty;
	struct met_child *a, *b;
	char *text;

	(void)state;
	m = met_new(r, MET_GAUGE, "t_conns", "Open connections.", "listener,proto", NULL, 0);
	empty = met_new(r, MET_GAUGE, "t_unused", "", "x", NULL, 0);
	assert_non_null(m);
	assert_non_null(empty);
	a = met_child(m, "api", "tcp");
	b = met_child(m, "admin", "tcp");
	assert_ptr_not_equal(a, b);
	assert_ptr_equal(met_child(m, "api", "tcp"), a); /* looked up, not duplicated */
	met_set(a, 10);
	met_add(a, -3);
	met_set(b, -2.25);
	assert_true(met_value(a) == 7);

	text = render(r);
	assert_non_null(strstr(text, "# HELP t_conns Open connections.\n# TYPE t_conns gauge\n"));
	assert_string_equal(sample(text, "t_conns{listener=\"api\",proto=\"tcp\"}"), "7");
	assert_string_equal(sample(text, "t_conns{listener=\"admin\",proto=\"tcp\"}"), "-2.25");
	assert_int_equal(count_lines(text, "t_conns{"), 2);
	/* A labelled family without children shows only its header. */
	assert_non_null(strstr(text, "# HELP t_unused \n# TYPE t_unused gauge\n"));
	assert_int_equal(count_lines(text, "t_unused"), 0);
	/* Families come in registration order. */
	assert_true(strstr(text, "t_conns") < strstr(text, "t_unused"));
	free(text);
	met_registry_free(r);
}

static void
test_histogram(void **state)
{
	static const double bounds[] = { 0.125, 1, 10 };
	struct met_registry *r = met_registry_new();
	struct met *h, *hl;
	struct met_child *c;
	char *text;

	(void)state;
	h = met_new(r, MET_HISTOGRAM, "t_seconds", "Latency.", NULL, bounds, 3);
	hl = met_new(r, MET_HISTOGRAM, "t_size", "Sizes.", "route", bounds, 3);
	assert_non_null(h);
	assert_non_null(hl);

	/* Empty: all zero, still rendered. */
	text = render(r);
	assert_string_equal(text, "# HELP t_seconds Latency.\n"
				  "# TYPE t_seconds histogram\n"
				  "t_seconds_bucket{le=\"0.125\"} 0\n"
				  "t_seconds_bucket{le=\"1\"} 0\n"
				  "t_seconds_bucket{le=\"10\"} 0\n"
				  "t_seconds_bucket{le=\"+Inf\"} 0\n"
				  "t_seconds_sum 0\n"
				  "t_seconds_count 0\n"
				  "# HELP t_size Sizes.\n"
				  "# TYPE t_size histogram\n");
	free(text);

	/* Upper bounds are inclusive; buckets are cumulative; above the last bound only
	 * +Inf counts it. Values are exact in binary so the sum prints exactly. */
	c = met_child(h);
	met_observe(c, 0.0625);
	met_observe(c, 0.125);
	met_observe(c, 0.5);
	met_observe(c, 4);
	met_observe(c, 64);
	met_observe(met_child(hl, "/a"), 1);
	text = render(r);
	assert_string_equal(text, "# HELP t_seconds Latency.\n"
				  "# TYPE t_seconds histogram\n"
				  "t_seconds_bucket{le=\"0.125\"} 2\n"
				  "t_seconds_bucket{le=\"1\"} 3\n"
				  "t_seconds_bucket{le=\"10\"} 4\n"
				  "t_seconds_bucket{le=\"+Inf\"} 5\n"
				  "t_seconds_sum 68.6875\n"
				  "t_seconds_count 5\n"
				  "# HELP t_size Sizes.\n"
				  "# TYPE t_size histogram\n"
				  "t_size_bucket{route=\"/a\",le=\"0.125\"} 0\n"
				  "t_size_bucket{route=\"/a\",le=\"1\"} 1\n"
				  "t_size_bucket{route=\"/a\",le=\"10\"} 1\n"
				  "t_size_bucket{route=\"/a\",le=\"+Inf\"} 1\n"
				  "t_size_sum{route=\"/a\"} 1\n"
				  "t_size_count{route=\"/a\"} 1\n");
	free(text);
	met_registry_free(r);
}

static void
test_latency_buckets(void **state)
{
	struct met_registry *r = met_registry_new();
	struct met *h;
	char *text;

	(void)state;
	assert_true(met_latency_nbuckets <= MET_MAX_BUCKETS);
	assert_true(met_latency_buckets[0] == 0.0001);
	assert_true(met_latency_buckets[met_latency_nbuckets - 1] == 10);
	for (size_t i = 1; i < met_latency_nbuckets; i++)
		assert_true(met_latency_buckets[i - 1] < met_latency_buckets[i]);
	h = met_new(r, MET_HISTOGRAM, "t_lat", "x", NULL, met_latency_buckets,
		    met_latency_nbuckets);
	assert_non_null(h);
	met_observe(met_child(h), 0.0003);
	text = render(r);
	assert_string_equal(sample(text, "t_lat_bucket{le=\"0.0001\"}"), "0");
	assert_string_equal(sample(text, "t_lat_bucket{le=\"0.00025\"}"), "0");
	assert_string_equal(sample(text, "t_lat_bucket{le=\"0.0005\"}"), "1");
	assert_string_equal(sample(text, "t_lat_bucket{le=\"10\"}"), "1");
	assert_string_equal(sample(text, "t_lat_bucket{le=\"+Inf\"}"), "1");
	assert_int_equal(count_lines(text, "t_lat_bucket{"), met_latency_nbuckets + 1);
	free(text);
	met_registry_free(r);
}

/* Values print as integers when whole, otherwise round-trip exactly. */
static void
test_number_format(void **state)
{
	static const struct {
		double v;
		const char *text;
	} cases[] = {
		{ 0, "0" },
		{ -3, "-3" },
		{ 123456789012, "123456789012" },
		{ 0.1, "0.10000000000000001" },
		{ 1e15, "1000000000000000" },
		{ -1e18, "-1e+18" },
		{ 1e300, "1.0000000000000001e+300" },
		{ 1.5e19, "1.5e+19" },
		{ -9.5e18, "-9.5e+18" },
	};
	struct met_registry *r = met_registry_new();
	struct met *m = met_new(r, MET_GAUGE, "t_g", "g", NULL, NULL, 0);
	char *text;
	double back;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		met_set(met_child(m), cases[i].v);
		text = render(r);
		back = strtod(sample(text, "t_g"), NULL);
		if (back != cases[i].v)
			fail_msg("%.17g rendered as %s", cases[i].v, sample(text, "t_g"));
		assert_string_equal(sample(text, "t_g"), cases[i].text);
		free(text);
	}
	met_set(met_child(m), INFINITY);
	text = render(r);
	assert_string_equal(sample(text, "t_g"), "+Inf");
	free(text);
	met_set(met_child(m), -INFINITY);
	text = render(r);
	assert_string_equal(sample(text, "t_g"), "-Inf");
	free(text);
	met_set(met_child(m), NAN);
	text = render(r);
	assert_string_equal(sample(text, "t_g"), "NaN");
	free(text);
	met_registry_free(r);
}

static void
test_escaping(void **state)
{
	struct met_registry *r = met_registry_new();
	struct met *m;
	char *text;

	(void)state;
	m = met_new(r, MET_COUNTER, "t_esc_total", "Help with \\ and\nnewline and \"quotes\".", "v",
		    NULL, 0);
	assert_non_null(m);
	met_add(met_child(m, "a\"b\\c\nd"), 1);
	met_add(met_child(m, ""), 2);
	text = render(r);
	/* In HELP only backslash and newline are escaped; in label values quotes too. */
	assert_non_null(
		strstr(text, "# HELP t_esc_total Help with \\\\ and\\nnewline and \"quotes\".\n"));
	assert_string_equal(sample(text, "t_esc_total{v=\"a\\\"b\\\\c\\nd\"}"), "1");
	assert_string_equal(sample(text, "t_esc_total{v=\"\"}"), "2");
	/* No raw newline slipped into a sample line: 2 header lines + 2 samples. */
	assert_int_equal(count_lines(text, ""), 4);
	free(text);
	met_registry_free(r);
}

static void
test_bad_arguments(void **state)
{
	static const double b[MET_MAX_BUCKETS + 1] = { 1 };
	struct met_registry *r = met_registry_new();

	(void)state;
	assert_null(met_new(NULL, MET_COUNTER, "x", "", NULL, NULL, 0));
	assert_null(met_new(r, MET_COUNTER, NULL, "", NULL, NULL, 0));
	assert_null(met_new(r, MET_HISTOGRAM, "h", "", NULL, NULL, 0));
	assert_null(met_new(r, MET_HISTOGRAM, "h", "", NULL, b, 0));
	assert_null(met_new(r, MET_HISTOGRAM, "h", "", NULL, b, MET_MAX_BUCKETS + 1));
	assert_null(met_new(r, MET_COUNTER, "x", "", "a,b,c,d,e", NULL, 0));
	assert_null(met_new(r, MET_COUNTER, "x", "", "a,,b", NULL, 0));
	assert_non_null(met_new(r, MET_COUNTER, "x", NULL, "a,b,c,d", NULL, 0));
	met_registry_free(r);
}

/* ---- concurrency ---- */

#define THREADS    8
#define PER_THREAD 50000

struct worker {
	struct met *counter, *hist;
	pthread_barrier_t *start;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct met_child *c, *h;

	pthread_barrier_wait(w->start);
	/* Every thread races to create the same children. */
	c = met_child(w->counter, "shared");
	h = met_child(w->hist, "shared");
	for (int i = 0; i < PER_THREAD; i++) {
		met_add(c, 1);
		met_observe(h, (i & 1) ? 0.5 : 2);
	}
	return c;
}

static void
test_threads(void **state)
{
	static const double bounds[] = { 1 };
	struct met_registry *r = met_registry_new();
	pthread_t th[THREADS];
	pthread_barrier_t start;
	struct worker w;
	void *ret[THREADS];
	char *text, want[64];

	(void)state;
	w.counter = met_new(r, MET_COUNTER, "t_hits_total", "h", "k", NULL, 0);
	w.hist = met_new(r, MET_HISTOGRAM, "t_h", "h", "k", bounds, 1);
	w.start = &start;
	assert_int_equal(pthread_barrier_init(&start, NULL, THREADS), 0);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w), 0);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(th[i], &ret[i]), 0);
	pthread_barrier_destroy(&start);
	for (int i = 1; i < THREADS; i++)
		assert_ptr_equal(ret[i], ret[0]);

	assert_true(met_value(ret[0]) == (double)THREADS * PER_THREAD);
	text = render(r);
	snprintf(want, sizeof(want), "%d", THREADS * PER_THREAD);
	assert_string_equal(sample(text, "t_hits_total{k=\"shared\"}"), want);
	assert_string_equal(sample(text, "t_h_count{k=\"shared\"}"), want);
	assert_string_equal(sample(text, "t_h_bucket{k=\"shared\",le=\"+Inf\"}"), want);
	snprintf(want, sizeof(want), "%d", THREADS * PER_THREAD / 2);
	assert_string_equal(sample(text, "t_h_bucket{k=\"shared\",le=\"1\"}"), want);
	snprintf(want, sizeof(want), "%d", THREADS * PER_THREAD / 2 * 5 / 2);
	assert_string_equal(sample(text, "t_h_sum{k=\"shared\"}"), want);
	assert_int_equal(count_lines(text, "t_hits_total{"), 1);
	free(text);
	met_registry_free(r);
}

/* ---- overflow ---- */

static void
test_overflow(void **state)
{
	struct met_registry *r = met_registry_new();
	struct met *m = met_new(r, MET_COUNTER, "t_by_user_total", "u", "user,kind", NULL, 0);
	struct met_child *first, *o1, *o2;
	char name[32], *text;

	(void)state;
	for (int i = 0; i < MET_MAX_CHILDREN; i++) {
		struct met_child *c;
		snprintf(name, sizeof(name), "u%d", i);
		c = met_child(m, name, "x");
		assert_non_null(c);
		met_add(c, 1);
	}
	first = met_child(m, "u0", "x");
	o1 = met_child(m, "one-too-many", "x");
	o2 = met_child(m, "another", "y");
	assert_non_null(o1);
	assert_ptr_equal(o1, o2);
	assert_ptr_not_equal(o1, first);
	/* Known label sets still find their own child. */
	snprintf(name, sizeof(name), "u%d", MET_MAX_CHILDREN - 1);
	assert_ptr_not_equal(met_child(m, name, "x"), o1);
	met_add(o1, 1);
	met_add(o2, 1);

	text = render(r);
	assert_string_equal(sample(text, "t_by_user_total{user=\"_overflow\",kind=\"_overflow\"}"),
			    "2");
	assert_string_equal(sample(text, "t_by_user_total{user=\"u0\",kind=\"x\"}"), "1");
	assert_int_equal(count_lines(text, "t_by_user_total{"), MET_MAX_CHILDREN + 1);
	assert_null(strstr(text, "one-too-many"));
	free(text);
	met_registry_free(r);
}

/* ---- collectors ---- */

struct coll {
	struct met_child *g;
	int calls;
};

static void
collect(void *arg)
{
	struct coll *c = arg;

	c->calls++;
	met_set(c->g, c->calls * 10);
}

static void
test_collectors(void **state)
{
	struct met_registry *r = met_registry_new();
	struct met *m = met_new(r, MET_GAUGE, "t_computed", "c", "which", NULL, 0);
	struct coll a = { .g = met_child(m, "a") }, b = { .g = met_child(m, "b") };
	char *text;

	(void)state;
	assert_int_equal(met_add_collector(r, collect, &a), 0);
	assert_int_equal(met_add_collector(r, collect, &b), 0);
	assert_int_equal(a.calls, 0);
	text = render(r);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
	/* Collectors run before the families are written. */
	assert_string_equal(sample(text, "t_computed{which=\"a\"}"), "10");
	assert_string_equal(sample(text, "t_computed{which=\"b\"}"), "10");
	free(text);
	text = render(r);
	assert_int_equal(a.calls, 2);
	assert_string_equal(sample(text, "t_computed{which=\"a\"}"), "20");
	free(text);
	met_registry_free(r);
}

/* met_scalar, and the standard metrics of svc.c without Redis (the
 * tracker's case): no redis families, uptime and build_info set. */
static void
test_scalar_and_std(void **state)
{
	struct met_registry *r = met_registry_new();
	struct svc_metrics std;
	struct met_child *c;
	char *text;

	(void)state;
	c = met_scalar(r, MET_COUNTER, "t_plain_total", "Plain.");
	assert_non_null(c);
	met_add(c, 2);
	assert_int_equal(svc_metrics_init(r, &std, false), 0);
	assert_null(std.redis_up);
	svc_metrics_collect(&std, NULL, NULL, 0);
	text = render(r);
	assert_string_equal(sample(text, "t_plain_total"), "2");
	assert_non_null(strstr(text, "# TYPE p2pcdn_uptime_seconds gauge\n"));
	assert_non_null(strstr(text, "p2pcdn_build_info{version=\"" P2PCDN_VERSION "\"} 1\n"));
	assert_null(strstr(text, "p2pcdn_redis_up"));
	free(text);
	met_registry_free(r);
	r = met_registry_new();
	assert_int_equal(svc_metrics_init(r, &std, true), 0);
	svc_metrics_collect(&std, NULL, NULL, 0);
	text = render(r);
	assert_string_equal(sample(text, "p2pcdn_redis_up"), "0");
	assert_string_equal(sample(text, "p2pcdn_redis_commands_total"), "0");
	free(text);
	met_registry_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counter),
		cmocka_unit_test(test_gauge_labels),
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_latency_buckets),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_overflow),
		cmocka_unit_test(test_collectors),
		cmocka_unit_test(test_scalar_and_std),
		/* Last: under clang's UBSan an out-of-range cast aborts the whole binary. */
		cmocka_unit_test(test_number_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
