/* SPDX-License-Identifier: MIT */
/* Unit tests for common/rds_async.c against real redis-servers started by the test. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "evl.h"
#include "rds_async.h"
#include "test_util_servers.h"

#define PASSWORD "async-secret"

/* Generous so that a loaded machine never turns a slow reply into a
 * timeout; the tests that are about timeouts set their own. */
#define CONNECT_MS 200
#define COMMAND_MS 3000
#define BACKOFF_MS 400

/* Every wait is bounded so that a lost callback fails the test instead of
 * hanging it. */
#define WAIT_MS 15000

#define N_THREADS 8
#define N_ITER    2000
#define QUEUE_MAX 65536 /* RDS_ASYNC_QUEUE_MAX in rds_async.c */

/* The redis-server shared by the tests that do not break their server. */
static struct tu_redis g_redis;

/* What one callback saw. The loop thread writes it, then bumps the
 * fixture's counter under its mutex; the test reads it after waiting on
 * that counter, so the mutex orders the accesses. */
struct rec {
	struct fx *fx;
	atomic_int ran;
	int err;
	bool has_reply;
	bool on_loop;
	int type;
	long long integer;
	size_t len;   /* of the string reply, full length */
	char str[48]; /* its first bytes */
	size_t elements;
};

/* Holds the loop thread inside a job, so that submissions pile up in the
 * queue. Teardown opens it, so a failed test cannot leave the loop stuck. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool entered;
	bool open;
};

/* Per-test state, freed by the teardown even when an assertion jumped out
 * of the test: instances first (their callbacks write into recs), then the
 * loop, the recs and the test's own redis-server. */
struct fx {
	struct evl *loop;
	pthread_t loop_thread;
	bool loop_known;
	struct rds_async *a[4];
	struct rec *recs;
	size_t nrecs;
	size_t used;
	struct gate gate;
	bool gate_used;
	struct tu_redis own;
	bool has_own;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done; /* callbacks run so far */
};

/* ------------------------------------------------------------- helpers */

static void
fx_done_add(struct fx *fx)
{
	pthread_mutex_lock(&fx->lock);
	fx->done++;
	pthread_cond_broadcast(&fx->cond);
	pthread_mutex_unlock(&fx->lock);
}

static int
fx_done(struct fx *fx)
{
	int n;

	pthread_mutex_lock(&fx->lock);
	n = fx->done;
	pthread_mutex_unlock(&fx->lock);
	return n;
}

/* Waits until n callbacks in all have run. False after ms. */
static bool
fx_wait(struct fx *fx, int n, int ms)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&fx->lock);
	while (fx->done < n)
		if (pthread_cond_timedwait(&fx->cond, &fx->lock, &ts) == ETIMEDOUT)
			break;
	ok = fx->done >= n;
	pthread_mutex_unlock(&fx->lock);
	return ok;
}

static void
must_wait(struct fx *fx, int n)
{
	if (!fx_wait(fx, n, WAIT_MS))
		fail_msg("only %d of %d callbacks ran within %d ms", fx_done(fx), n, WAIT_MS);
}

static void
rec_cb(redisReply *reply, int err, void *arg)
{
	struct rec *r = arg;

	r->on_loop = pthread_equal(pthread_self(), r->fx->loop_thread);
	r->err = err;
	r->has_reply = reply != NULL;
	if (reply != NULL) {
		r->type = reply->type;
		r->integer = reply->integer;
		r->elements = reply->elements;
		if (reply->str != NULL) {
			r->len = reply->len;
			memcpy(r->str, reply->str,
			       reply->len < sizeof(r->str) - 1 ? reply->len : sizeof(r->str) - 1);
		}
	}
	atomic_fetch_add(&r->ran, 1);
	fx_done_add(r->fx);
}

/* The next n unused records. */
static struct rec *
recs_take(struct fx *fx, size_t n)
{
	struct rec *r;
	size_t i;

	if (fx->used + n > fx->nrecs)
		fail_msg("test bug: %zu records wanted, %zu left", n, fx->nrecs - fx->used);
	r = fx->recs + fx->used;
	fx->used += n;
	for (i = 0; i < n; i++)
		r[i].fx = fx;
	return r;
}

static void
recs_alloc(struct fx *fx, size_t n)
{
	fx->recs = calloc(n, sizeof(*fx->recs));
	assert_non_null(fx->recs);
	fx->nrecs = n;
}

/* Submits a NULL-terminated list of C strings as one command. */
static int
submit(struct rds_async *a, struct rec *r, ...)
{
	const char *argv[16];
	size_t len[16];
	const char *s;
	va_list ap;
	int argc = 0;

	va_start(ap, r);
	while ((s = va_arg(ap, const char *)) != NULL && argc < 16) {
		argv[argc] = s;
		len[argc] = strlen(s);
		argc++;
	}
	va_end(ap);
	return rds_async_argv(a, rec_cb, r, argc, argv, len);
}

/* Submits a command that must be accepted. */
#define SUBMIT(a, r, ...)                                                                          \
	do {                                                                                       \
		int rc_ = submit((a), (r), __VA_ARGS__, (const char *)NULL);                       \
		if (rc_ != 0)                                                                      \
			fail_msg("submission refused: %d (%s)", rc_, strerror(-rc_));              \
	} while (0)

/* A record that must hold a successful reply of the given type. */
static void
rec_ok(const struct rec *r, int type)
{
	if (atomic_load(&r->ran) != 1)
		fail_msg("callback ran %d times", atomic_load(&r->ran));
	if (r->err != 0 || !r->has_reply)
		fail_msg("command failed: err %d (%s), reply %s", r->err, strerror(-r->err),
			 r->has_reply ? "set" : "NULL");
	assert_true(r->on_loop);
	assert_int_equal(r->type, type);
}

/* A record that must hold a failure (reply NULL) with one of two errors. */
static void
rec_failed(const struct rec *r, int err1, int err2)
{
	if (atomic_load(&r->ran) != 1)
		fail_msg("callback ran %d times", atomic_load(&r->ran));
	assert_false(r->has_reply);
	assert_true(r->on_loop);
	if (r->err != err1 && r->err != err2)
		fail_msg("err %d (%s), wanted %d or %d", r->err, strerror(-r->err), err1, err2);
}

static struct rds_async *
fx_new_async(struct fx *fx, const struct rds_opts *o)
{
	struct rds_async *a;
	size_t i;

	for (i = 0; i < sizeof(fx->a) / sizeof(fx->a[0]) && fx->a[i] != NULL; i++)
		;
	assert_true(i < sizeof(fx->a) / sizeof(fx->a[0]));
	a = rds_async_new(fx->loop, o);
	assert_non_null(a);
	fx->a[i] = a;
	return a;
}

/* The test frees a itself: teardown must not. */
static void
fx_forget(struct fx *fx, const struct rds_async *a)
{
	size_t i;

	for (i = 0; i < sizeof(fx->a) / sizeof(fx->a[0]); i++)
		if (fx->a[i] == a)
			fx->a[i] = NULL;
}

static void
fx_free_async(struct fx *fx, struct rds_async *a)
{
	fx_forget(fx, a);
	rds_async_free(a);
}

static struct rds_opts
opts_for(const struct tu_redis *s, const char *password, int db)
{
	struct rds_opts o = {
		.host = "127.0.0.1",
		.port = s->port,
		.password = password,
		.db = db,
		.prefix = "p2pcdn:",
		.connect_timeout_ms = CONNECT_MS,
		.command_timeout_ms = COMMAND_MS,
		.max_backoff_ms = BACKOFF_MS,
	};

	return o;
}

static struct rds_async *
fx_new_default(struct fx *fx, int db)
{
	struct rds_opts o = opts_for(&g_redis, PASSWORD, db);

	return fx_new_async(fx, &o);
}

/* Runs one command and waits for its callback. */
static struct rec *
run(struct fx *fx, struct rds_async *a, const char *c0, const char *c1, const char *c2)
{
	struct rec *r = recs_take(fx, 1);
	int want = fx_done(fx) + 1;

	SUBMIT(a, r, c0, c1, c2);
	must_wait(fx, want);
	return r;
}

static void
gate_job(void *arg)
{
	struct gate *g = arg;

	pthread_mutex_lock(&g->lock);
	g->entered = true;
	pthread_cond_broadcast(&g->cond);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

/* Blocks the loop thread until gate_open. */
static void
gate_close(struct fx *fx)
{
	struct gate *g = &fx->gate;
	long long end = tu_now_ms() + WAIT_MS;
	bool in;

	g->entered = false;
	g->open = false;
	fx->gate_used = true;
	assert_int_equal(evl_call(fx->loop, gate_job, g), 0);
	for (;;) {
		pthread_mutex_lock(&g->lock);
		in = g->entered;
		pthread_mutex_unlock(&g->lock);
		if (in)
			break;
		if (tu_now_ms() > end)
			fail_msg("the loop thread never ran the gate job");
		tu_sleep_ms(1);
	}
}

static void
gate_open(struct fx *fx)
{
	struct gate *g = &fx->gate;

	pthread_mutex_lock(&g->lock);
	g->open = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static void
record_thread(void *arg)
{
	struct fx *fx = arg;

	pthread_mutex_lock(&fx->lock);
	fx->loop_thread = pthread_self();
	fx->loop_known = true;
	pthread_cond_broadcast(&fx->cond);
	pthread_mutex_unlock(&fx->lock);
}

/* Polls the stats until up equals want. False after ms. */
static bool
wait_up(struct rds_async *a, bool want, int ms)
{
	long long end = tu_now_ms() + ms;
	struct rds_stats st;

	for (;;) {
		rds_async_stats(a, &st);
		if (st.up == want)
			return true;
		if (tu_now_ms() > end)
			return false;
		tu_sleep_ms(1);
	}
}

/* Polls the stats until at least n commands were handed to the connection. */
static bool
wait_sent(struct rds_async *a, unsigned long long n, int ms)
{
	long long end = tu_now_ms() + ms;
	struct rds_stats st;

	for (;;) {
		rds_async_stats(a, &st);
		if (st.commands >= n)
			return true;
		if (tu_now_ms() > end)
			return false;
		tu_sleep_ms(1);
	}
}

/* ------------------------------------------------------ setup, teardown */

static int
group_setup(void **state)
{
	(void)state;
	if (tu_redis_start(&g_redis, PASSWORD) < 0) {
		fprintf(stderr, "test_rds_async: FAILED to start redis-server; every test fails\n");
		tu_redis_stop(&g_redis);
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	tu_redis_stop(&g_redis);
	return 0;
}

static int
fx_setup_common(void **state, bool own_redis)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct timespec ts;

	*state = fx;
	if (fx == NULL)
		return -1;
	pthread_mutex_init(&fx->lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&fx->cond, &ca);
		pthread_cond_init(&fx->gate.cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	pthread_mutex_init(&fx->gate.lock, NULL);
	/* Its own redis-server first: the helpers fork, better before the
	 * loop thread exists. */
	if (own_redis) {
		fx->has_own = true;
		if (tu_redis_start(&fx->own, PASSWORD) < 0) {
			fprintf(stderr, "test_rds_async: FAILED to start a redis-server\n");
			return -1;
		}
	}
	fx->loop = evl_new();
	if (fx->loop == NULL || evl_call(fx->loop, record_thread, fx) != 0) {
		fprintf(stderr, "test_rds_async: FAILED to start the loop\n");
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += 5;
	pthread_mutex_lock(&fx->lock);
	while (!fx->loop_known)
		if (pthread_cond_timedwait(&fx->cond, &fx->lock, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&fx->lock);
	if (!fx->loop_known) {
		fprintf(stderr, "test_rds_async: the loop thread did not run a job\n");
		return -1;
	}
	return 0;
}

static int
fx_setup(void **state)
{
	return fx_setup_common(state, false);
}

static int
fx_setup_own(void **state)
{
	return fx_setup_common(state, true);
}

static int
fx_teardown(void **state)
{
	struct fx *fx = *state;
	size_t i;

	if (fx == NULL)
		return 0;
	if (fx->gate_used)
		gate_open(fx);
	/* A stopped server would ignore the SIGTERM of tu_redis_stop. */
	if (fx->has_own && fx->own.pid > 0)
		kill(fx->own.pid, SIGCONT);
	for (i = sizeof(fx->a) / sizeof(fx->a[0]); i-- > 0;)
		rds_async_free(fx->a[i]);
	evl_free(fx->loop);
	if (fx->has_own)
		tu_redis_stop(&fx->own);
	free(fx->recs);
	pthread_cond_destroy(&fx->gate.cond);
	pthread_mutex_destroy(&fx->gate.lock);
	pthread_cond_destroy(&fx->cond);
	pthread_mutex_destroy(&fx->lock);
	free(fx);
	return 0;
}

/* --------------------------------------------------------------- tests */

static void
test_basic(void **state)
{
	struct fx *fx = *state;
	struct rds_opts bare_o = { .host = "127.0.0.1", .port = g_redis.port };
	struct rds_async *a, *bare;
	struct rds_stats st;
	struct rec *r;

	recs_alloc(fx, 64);
	a = fx_new_default(fx, 0);
	assert_string_equal(rds_async_prefix(a), "p2pcdn:");
	bare = fx_new_async(fx, &bare_o);
	assert_string_equal(rds_async_prefix(bare), "");

	/* Connects on first use only. */
	rds_async_stats(a, &st);
	assert_int_equal(st.commands, 0);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.connects, 0);
	assert_false(st.up);

	r = run(fx, a, "SET", "ta:basic", "hello");
	rec_ok(r, REDIS_REPLY_STATUS);
	assert_string_equal(r->str, "OK");
	r = run(fx, a, "GET", "ta:basic", NULL);
	rec_ok(r, REDIS_REPLY_STRING);
	assert_int_equal(r->len, 5);
	assert_string_equal(r->str, "hello");
	r = run(fx, a, "GET", "ta:missing", NULL);
	rec_ok(r, REDIS_REPLY_NIL);
	r = run(fx, a, "PING", NULL, NULL);
	rec_ok(r, REDIS_REPLY_STATUS);
	assert_string_equal(r->str, "PONG");
	r = run(fx, a, "LRANGE", "ta:missing", "0");
	rec_ok(r, REDIS_REPLY_ERROR); /* wrong number of arguments */

	rds_async_stats(a, &st);
	assert_int_equal(st.commands, 5);
	assert_int_equal(st.errors, 1); /* the LRANGE error reply counts */
	assert_int_equal(st.connects, 1);
	assert_true(st.up);

	/* The instance without a password reaches the server, which answers
	 * NOAUTH: a reply, not a failure. */
	r = run(fx, bare, "GET", "ta:basic", NULL);
	rec_ok(r, REDIS_REPLY_ERROR);
	assert_non_null(strstr(r->str, "NOAUTH"));

	rds_async_free(NULL);
}

/* Binary-safe arguments: NUL bytes, empty strings and a large value. */
static void
test_binary(void **state)
{
	struct fx *fx = *state;
	const char key[] = "ta:bin\0key";
	const char val[] = "a\0b\0\0c";
	const char *set_argv[] = { "SET", key, val };
	const size_t set_len[] = { 3, sizeof(key) - 1, sizeof(val) - 1 };
	const char *get_argv[] = { "GET", key };
	const size_t get_len[] = { 3, sizeof(key) - 1 };
	const char *other_argv[] = { "GET", "ta:bin" };
	const size_t other_len[] = { 3, 6 };
	const char *push_argv[] = { "RPUSH", "ta:binlist", "", "x\0y", "" };
	const size_t push_len[] = { 5, 10, 0, 3, 0 };
	const char *big_argv[3] = { "SET", "ta:big", NULL };
	size_t big_len[3] = { 3, 6, 1 << 20 };
	const char *strlen_argv[] = { "STRLEN", "ta:big" };
	const size_t strlen_len[] = { 6, 6 };
	struct rds_async *a;
	struct rec *r;
	char *big;

	recs_alloc(fx, 16);
	a = fx_new_default(fx, 0);
	big = malloc(big_len[2]);
	assert_non_null(big);
	memset(big, 0, big_len[2]);
	big[12345] = 'x';
	big_argv[2] = big;

	r = recs_take(fx, 8);
	assert_int_equal(rds_async_argv(a, rec_cb, &r[0], 3, set_argv, set_len), 0);
	assert_int_equal(rds_async_argv(a, rec_cb, &r[1], 2, get_argv, get_len), 0);
	/* The key is "ta:bin\0key", not "ta:bin". */
	assert_int_equal(rds_async_argv(a, rec_cb, &r[2], 2, other_argv, other_len), 0);
	assert_int_equal(submit(a, &r[3], "DEL", "ta:binlist", (const char *)NULL), 0);
	assert_int_equal(rds_async_argv(a, rec_cb, &r[4], 5, push_argv, push_len), 0);
	assert_int_equal(rds_async_argv(a, rec_cb, &r[5], 3, big_argv, big_len), 0);
	free(big); /* the command was copied */
	assert_int_equal(rds_async_argv(a, rec_cb, &r[6], 2, strlen_argv, strlen_len), 0);
	assert_int_equal(submit(a, &r[7], "LINDEX", "ta:binlist", "1", (const char *)NULL), 0);
	must_wait(fx, 8);

	rec_ok(&r[0], REDIS_REPLY_STATUS);
	rec_ok(&r[1], REDIS_REPLY_STRING);
	assert_int_equal(r[1].len, sizeof(val) - 1);
	assert_memory_equal(r[1].str, val, sizeof(val) - 1);
	rec_ok(&r[2], REDIS_REPLY_NIL);
	rec_ok(&r[3], REDIS_REPLY_INTEGER);
	rec_ok(&r[4], REDIS_REPLY_INTEGER);
	assert_int_equal(r[4].integer, 3);
	rec_ok(&r[5], REDIS_REPLY_STATUS);
	rec_ok(&r[6], REDIS_REPLY_INTEGER);
	assert_int_equal(r[6].integer, 1 << 20);
	rec_ok(&r[7], REDIS_REPLY_STRING);
	assert_int_equal(r[7].len, 3);
	assert_memory_equal(r[7].str, "x\0y", 3);
}

/* A Redis error reply is a reply with err 0, and the connection stays. */
static void
test_error_reply(void **state)
{
	struct fx *fx = *state;
	struct rds_async *a;
	struct rds_stats st;
	struct rec *r;
	long long id;

	recs_alloc(fx, 16);
	a = fx_new_default(fx, 0);
	rec_ok(run(fx, a, "SET", "ta:err", "not a number"), REDIS_REPLY_STATUS);
	r = run(fx, a, "CLIENT", "ID", NULL);
	rec_ok(r, REDIS_REPLY_INTEGER);
	id = r->integer;

	r = run(fx, a, "INCR", "ta:err", NULL);
	rec_ok(r, REDIS_REPLY_ERROR);
	assert_non_null(strstr(r->str, "ERR"));
	r = run(fx, a, "NOSUCHCOMMAND", "x", NULL);
	rec_ok(r, REDIS_REPLY_ERROR);
	r = run(fx, a, "HSET", "ta:err", "f");
	rec_ok(r, REDIS_REPLY_ERROR);

	r = run(fx, a, "CLIENT", "ID", NULL);
	rec_ok(r, REDIS_REPLY_INTEGER);
	assert_true(r->integer == id);
	rds_async_stats(a, &st);
	/* Error replies are counted (an operator must see READONLY or OOM in
	 * the metrics) but keep the connection. */
	assert_int_equal(st.errors, 3);
	assert_int_equal(st.connects, 1);
	assert_true(st.up);
}

/* Scripts go by EVALSHA; after SCRIPT FLUSH (a restarted Redis) the NOSCRIPT
 * answer is retried as EVAL once, invisibly to the caller. */
static struct rec *
run_script(struct fx *fx, struct rds_async *a, const struct rds_script *s, const char *key,
	   const char *arg)
{
	struct rec *r = recs_take(fx, 1);
	int want = fx_done(fx) + 1;
	const char *keys[] = { key }, *args[] = { arg };

	assert_int_equal(rds_async_script(a, s, 1, keys, 1, args, rec_cb, r), 0);
	must_wait(fx, want);
	return r;
}

static void
test_script(void **state)
{
	struct fx *fx = *state;
	struct rds_script s;
	struct rds_async *a;
	struct rds_stats st;
	struct rec *r;
	const char *many[64] = { 0 };

	recs_alloc(fx, 16);
	a = fx_new_default(fx, 0);
	rds_script_init(&s, "return redis.call('INCRBY', KEYS[1], ARGV[1])");
	assert_int_equal(strlen(s.sha), 40);
	/* Not cached yet: NOSCRIPT, then EVAL. */
	rec_ok(run(fx, a, "SCRIPT", "FLUSH", NULL), REDIS_REPLY_STATUS);
	r = run_script(fx, a, &s, "ta:script", "5");
	rec_ok(r, REDIS_REPLY_INTEGER);
	assert_int_equal(r->integer, 5);
	/* Cached: EVALSHA alone. */
	r = run(fx, a, "SCRIPT", "EXISTS", s.sha);
	assert_int_equal(r->elements, 1);
	r = run_script(fx, a, &s, "ta:script", "2");
	rec_ok(r, REDIS_REPLY_INTEGER);
	assert_int_equal(r->integer, 7);
	rds_async_stats(a, &st);
	long long before = st.commands;
	r = run_script(fx, a, &s, "ta:script", "1");
	rec_ok(r, REDIS_REPLY_INTEGER);
	assert_int_equal(r->integer, 8);
	rds_async_stats(a, &st);
	assert_int_equal(st.commands, before + 1); /* no retry when cached */
	/* Flushed again (as after a Redis restart): still one answer. */
	rec_ok(run(fx, a, "SCRIPT", "FLUSH", NULL), REDIS_REPLY_STATUS);
	r = run_script(fx, a, &s, "ta:script", "1");
	rec_ok(r, REDIS_REPLY_INTEGER);
	assert_int_equal(r->integer, 9);
	/* Too many arguments: refused, no callback. */
	assert_int_equal(rds_async_script(a, &s, 1, many, 61, many, rec_cb, NULL), -EINVAL);
}

struct worker {
	struct rds_async *a;
	struct rec *recs; /* N_ITER * 3: SET, GET, INCR per iteration */
	pthread_barrier_t *start;
	int id;
	int refused;
};

static void *
worker_main(void *p)
{
	struct worker *w = p;
	char key[48], val[48], ctr[48];
	int i;

	snprintf(ctr, sizeof(ctr), "ta:ctr:%d", w->id);
	pthread_barrier_wait(w->start);
	for (i = 0; i < N_ITER; i++) {
		snprintf(key, sizeof(key), "ta:k:%d:%d", w->id, i);
		snprintf(val, sizeof(val), "v-%d-%d", w->id, i);
		if (submit(w->a, &w->recs[i * 3], "SET", key, val, (const char *)NULL) != 0)
			w->refused++;
		if (submit(w->a, &w->recs[i * 3 + 1], "GET", key, (const char *)NULL) != 0)
			w->refused++;
		if (submit(w->a, &w->recs[i * 3 + 2], "INCR", ctr, (const char *)NULL) != 0)
			w->refused++;
	}
	return NULL;
}

/* Many threads, one connection: every callback runs once, on the loop
 * thread, with its own command's reply. */
static void
test_threads(void **state)
{
	struct fx *fx = *state;
	struct worker w[N_THREADS];
	pthread_t th[N_THREADS];
	pthread_barrier_t start;
	struct rds_stats st0, st;
	struct rds_async *a;
	char want[48];
	int total = N_THREADS * N_ITER * 3;
	struct rec *all;
	int t, i;

	recs_alloc(fx, (size_t)total + 8);
	a = fx_new_default(fx, 0);
	all = recs_take(fx, (size_t)total);
	for (t = 0; t < N_THREADS; t++) {
		char ctr[48];
		struct rec *r = recs_take(fx, 1);

		snprintf(ctr, sizeof(ctr), "ta:ctr:%d", t);
		SUBMIT(a, r, "DEL", ctr);
	}
	must_wait(fx, N_THREADS);
	rds_async_stats(a, &st0);

	pthread_barrier_init(&start, NULL, N_THREADS);
	for (t = 0; t < N_THREADS; t++) {
		w[t] = (struct worker){
			.a = a, .recs = all + (size_t)t * N_ITER * 3, .start = &start, .id = t
		};
		assert_int_equal(pthread_create(&th[t], NULL, worker_main, &w[t]), 0);
	}
	for (t = 0; t < N_THREADS; t++)
		pthread_join(th[t], NULL);
	pthread_barrier_destroy(&start);
	for (t = 0; t < N_THREADS; t++)
		assert_int_equal(w[t].refused, 0);

	must_wait(fx, N_THREADS + total);
	/* A late second run of any callback would show here. */
	tu_sleep_ms(100);
	assert_int_equal(fx_done(fx), N_THREADS + total);

	for (t = 0; t < N_THREADS; t++) {
		for (i = 0; i < N_ITER; i++) {
			struct rec *r = &w[t].recs[i * 3];

			rec_ok(&r[0], REDIS_REPLY_STATUS);
			rec_ok(&r[1], REDIS_REPLY_STRING);
			snprintf(want, sizeof(want), "v-%d-%d", t, i);
			if (strcmp(r[1].str, want) != 0)
				fail_msg("thread %d iteration %d: GET returned \"%s\", not \"%s\"",
					 t, i, r[1].str, want);
			rec_ok(&r[2], REDIS_REPLY_INTEGER);
			if (r[2].integer != i + 1)
				fail_msg("thread %d iteration %d: INCR returned %lld", t, i,
					 r[2].integer);
		}
	}
	rds_async_stats(a, &st);
	assert_int_equal(st.commands, st0.commands + (unsigned long long)total);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.connects, 1);
	assert_true(st.up);
}

struct chain {
	struct rds_async *a;
	struct fx *fx;
	int n;
	int bad;
	atomic_int refused;
};

/* Submits the next INCR from inside the callback, on the loop thread. */
static void
chain_cb(redisReply *reply, int err, void *arg)
{
	struct chain *c = arg;
	const char *argv[] = { "INCR", "ta:chain" };
	const size_t len[] = { 4, 8 };

	if (err != 0 || reply == NULL || reply->type != REDIS_REPLY_INTEGER ||
	    reply->integer != c->n + 1)
		c->bad++;
	c->n++;
	if (c->n < 100 && rds_async_argv(c->a, chain_cb, c, 2, argv, len) != 0)
		atomic_fetch_add(&c->refused, 1);
	if (c->n == 100 || atomic_load(&c->refused) != 0)
		fx_done_add(c->fx);
}

/* A callback may submit the next command itself. */
static void
test_submit_from_callback(void **state)
{
	struct fx *fx = *state;
	const char *argv[] = { "INCR", "ta:chain" };
	const size_t len[] = { 4, 8 };
	/* Static: if an assertion jumps out, teardown frees the instance and
	 * its last callback still finds c. */
	static struct chain c;

	recs_alloc(fx, 4);
	memset(&c, 0, sizeof(c));
	c.a = fx_new_default(fx, 0);
	c.fx = fx;
	rec_ok(run(fx, c.a, "DEL", "ta:chain", NULL), REDIS_REPLY_INTEGER);
	assert_int_equal(rds_async_argv(c.a, chain_cb, &c, 2, argv, len), 0);
	must_wait(fx, 2);
	/* Freed before c leaves scope; teardown skips it then. */
	fx_free_async(fx, c.a);
	assert_int_equal(atomic_load(&c.refused), 0);
	assert_int_equal(c.bad, 0);
	assert_int_equal(c.n, 100);
}

/* AUTH and SELECT before the first command, over TCP and the unix socket;
 * a wrong password fails the callbacks instead of hanging them. */
static void
test_auth_select(void **state)
{
	struct fx *fx = *state;
	struct rds_opts uo = opts_for(&g_redis, PASSWORD, 3);
	struct rds_opts bo = opts_for(&g_redis, "wrong-password", 0);
	struct rds_async *db0, *db3, *unix3, *bad;
	struct rds_stats st;
	struct rec *r;
	long long t0, took;
	int i, rc, base;

	recs_alloc(fx, 64);
	db0 = fx_new_default(fx, 0);
	db3 = fx_new_default(fx, 3);
	uo.host = g_redis.sock;
	unix3 = fx_new_async(fx, &uo);

	rec_ok(run(fx, db3, "SET", "ta:db", "three"), REDIS_REPLY_STATUS);
	rec_ok(run(fx, db0, "DEL", "ta:db", NULL), REDIS_REPLY_INTEGER);
	r = run(fx, db0, "GET", "ta:db", NULL);
	rec_ok(r, REDIS_REPLY_NIL);
	r = run(fx, db3, "GET", "ta:db", NULL);
	rec_ok(r, REDIS_REPLY_STRING);
	assert_string_equal(r->str, "three");
	r = run(fx, unix3, "GET", "ta:db", NULL);
	rec_ok(r, REDIS_REPLY_STRING);
	assert_string_equal(r->str, "three");

	/* Wrong password: several commands in the first batch (the loop is
	 * held while they are queued), none may see a reply (not even
	 * NOAUTH) or wait for the command timeout. */
	bad = fx_new_async(fx, &bo);
	base = fx_done(fx);
	r = recs_take(fx, 5);
	gate_close(fx);
	for (i = 0; i < 5; i++)
		SUBMIT(bad, &r[i], "GET", "ta:db");
	t0 = tu_now_ms();
	gate_open(fx);
	must_wait(fx, base + 5);
	took = tu_now_ms() - t0;
	for (i = 0; i < 5; i++)
		rec_failed(&r[i], -EIO, -EIO);
	if (took >= COMMAND_MS)
		fail_msg("a refused AUTH took %lld ms to fail the commands", took);
	assert_true(wait_up(bad, false, WAIT_MS));
	/* Backing off: refused at once, and counted. */
	rds_async_stats(bad, &st);
	rc = submit(bad, recs_take(fx, 1), "PING", (const char *)NULL);
	assert_int_equal(rc, -EAGAIN);
	{
		struct rds_stats st2;

		rds_async_stats(bad, &st2);
		assert_int_equal(st2.errors, st.errors + 1);
		assert_int_equal(st2.commands, st.commands);
		assert_true(st2.errors >= 6);
	}
	/* After the back-off it tries again, and fails again. */
	tu_sleep_ms(BACKOFF_MS + 50);
	base = fx_done(fx);
	r = recs_take(fx, 1);
	t0 = tu_now_ms();
	SUBMIT(bad, r, "PING");
	must_wait(fx, base + 1);
	took = tu_now_ms() - t0;
	rec_failed(r, -EIO, -EIO);
	assert_true(took < COMMAND_MS);
	assert_int_equal(fx_done(fx), base + 1);

	/* The good instances were not disturbed. */
	r = run(fx, db3, "GET", "ta:db", NULL);
	rec_ok(r, REDIS_REPLY_STRING);
	rds_async_stats(db3, &st);
	assert_int_equal(st.connects, 1);
	assert_int_equal(st.errors, 0);
}

/* Redis killed mid-run: in-flight commands fail, submissions are refused
 * at once during the back-off, and once Redis is back on the same port the
 * instance recovers by itself. */
static void
test_outage_and_recovery(void **state)
{
	struct fx *fx = *state;
	struct rds_opts o = opts_for(&fx->own, PASSWORD, 0);
	struct rds_async *a;
	struct rds_stats st, st2;
	struct rec *r, *blk;
	long long t0, took, t_kill;
	char key[32];
	int i, rc, base, accepted = 0, refused = 0;
	bool ok;

	/* The first back-off is connect_timeout_ms long: wide enough that
	 * the burst of submissions below surely falls inside it. */
	o.connect_timeout_ms = 500;
	o.max_backoff_ms = 1000;
	recs_alloc(fx, 1024);
	a = fx_new_async(fx, &o);
	r = run(fx, a, "PING", NULL, NULL);
	rec_ok(r, REDIS_REPLY_STATUS);

	/* A blocking BLPOP holds the connection: everything behind it stays
	 * in flight until Redis dies. */
	base = fx_done(fx);
	blk = recs_take(fx, 51);
	SUBMIT(a, &blk[0], "BLPOP", "ta:never", "0");
	for (i = 1; i < 51; i++) {
		snprintf(key, sizeof(key), "ta:o:%d", i);
		SUBMIT(a, &blk[i], "SET", key, "x");
	}
	assert_true(wait_sent(a, 52, WAIT_MS));
	tu_sleep_ms(50);
	assert_int_equal(fx_done(fx), base);

	t_kill = tu_now_ms();
	tu_redis_kill(&fx->own);
	must_wait(fx, base + 51);
	took = tu_now_ms() - t_kill;
	for (i = 0; i < 51; i++)
		rec_failed(&blk[i], -EIO, -ETIMEDOUT);
	assert_true(took < 10 * o.command_timeout_ms);

	/* A lost connection is retried once at once (Redis may only have
	 * closed an idle connection); that retry fails, and from then on the
	 * client is down and backing off. */
	assert_true(wait_up(a, false, WAIT_MS));
	{
		struct rec *probe = recs_take(fx, 1);
		base = fx_done(fx);
		if (submit(a, probe, "PING", (const char *)NULL) == 0) {
			must_wait(fx, base + 1);
			assert_false(probe->has_reply);
		}
	}
	/* Down and backing off: refused at once, callbacks never run. */
	rds_async_stats(a, &st);
	base = fx_done(fx);
	r = recs_take(fx, 20);
	t0 = tu_now_ms();
	for (i = 0; i < 20; i++)
		assert_int_equal(submit(a, &r[i], "PING", (const char *)NULL), -EAGAIN);
	took = tu_now_ms() - t0;
	if (tu_now_ms() - t_kill < o.connect_timeout_ms)
		assert_true(took < 100);
	rds_async_stats(a, &st2);
	assert_int_equal(st2.errors, st.errors + 20);
	assert_int_equal(st2.commands, st.commands);
	assert_false(st2.up);

	/* While Redis stays down, for two back-offs: every command is refused
	 * or fails, never hangs and never gets a reply. */
	t0 = tu_now_ms();
	while (tu_now_ms() - t0 < 1600) {
		struct rec *p = recs_take(fx, 1);

		rc = submit(a, p, "PING", (const char *)NULL);
		if (rc == -EAGAIN) {
			refused++;
		} else {
			assert_int_equal(rc, 0);
			accepted++;
			must_wait(fx, base + accepted);
			if (p->err != -EAGAIN && p->err != -EIO && p->err != -ETIMEDOUT &&
			    p->err != -ECONNREFUSED)
				fail_msg("while down: err %d (%s)", p->err, strerror(-p->err));
			assert_false(p->has_reply);
		}
		tu_sleep_ms(10);
	}
	assert_true(refused > 0);
	assert_true(accepted >= 1); /* it did try to reconnect */
	rds_async_stats(a, &st);
	assert_false(st.up);
	assert_int_equal(st.connects, 1);

	/* Back on the same port: recovers without help. */
	assert_int_equal(tu_redis_spawn(&fx->own), 0);
	t0 = tu_now_ms();
	ok = false;
	while (!ok && tu_now_ms() - t0 < 10 * o.max_backoff_ms) {
		struct rec *p = recs_take(fx, 1);

		if (submit(a, p, "PING", (const char *)NULL) == 0) {
			accepted++;
			must_wait(fx, base + accepted);
			ok = p->err == 0 && p->has_reply && p->type == REDIS_REPLY_STATUS;
		}
		if (!ok)
			tu_sleep_ms(20);
	}
	assert_true(ok);
	rds_async_stats(a, &st);
	assert_true(st.up);
	assert_int_equal(st.connects, 2);

	/* Replies still match their commands. */
	base = fx_done(fx);
	r = recs_take(fx, 30);
	for (i = 0; i < 30; i++) {
		snprintf(key, sizeof(key), "ta:after:%d", i % 3);
		SUBMIT(a, &r[i], "INCR", key);
	}
	must_wait(fx, base + 30);
	for (i = 0; i < 30; i++) {
		rec_ok(&r[i], REDIS_REPLY_INTEGER);
		assert_int_equal(r[i].integer, i / 3 + 1);
	}
}

/* A server that stops answering: in-flight commands fail with -ETIMEDOUT
 * after command_timeout_ms, not before and not much later. */
static void
test_unresponsive_server(void **state)
{
	struct fx *fx = *state;
	struct rds_opts o = opts_for(&fx->own, PASSWORD, 0);
	struct rds_async *a;
	struct rds_stats st;
	struct rec *r;
	long long t0, took;
	char key[32];
	int i, base, status;
	bool ok;

	o.connect_timeout_ms = 100;
	o.command_timeout_ms = 300;
	o.max_backoff_ms = 400;
	recs_alloc(fx, 1024);
	a = fx_new_async(fx, &o);
	rec_ok(run(fx, a, "PING", NULL, NULL), REDIS_REPLY_STATUS);

	assert_int_equal(kill(fx->own.pid, SIGSTOP), 0);
	assert_int_equal(waitpid(fx->own.pid, &status, WUNTRACED), fx->own.pid);
	assert_true(WIFSTOPPED(status));

	base = fx_done(fx);
	r = recs_take(fx, 20);
	t0 = tu_now_ms();
	for (i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "ta:stop:%d", i);
		SUBMIT(a, &r[i], "INCR", key);
	}
	if (!fx_wait(fx, base + 20, 10 * o.command_timeout_ms))
		fail_msg("commands to a stopped server still pending after %d ms",
			 10 * o.command_timeout_ms);
	took = tu_now_ms() - t0;
	for (i = 0; i < 20; i++)
		rec_failed(&r[i], -ETIMEDOUT, -ETIMEDOUT);
	print_message("timed out after %lld ms (command_timeout_ms %d)\n", took,
		      o.command_timeout_ms);
	assert_true(took >= o.command_timeout_ms);
	rds_async_stats(a, &st);
	assert_false(st.up);
	assert_true(st.errors >= 20);

	assert_int_equal(kill(fx->own.pid, SIGCONT), 0);
	t0 = tu_now_ms();
	ok = false;
	while (!ok && tu_now_ms() - t0 < 10000) {
		struct rec *p = recs_take(fx, 1);

		base = fx_done(fx);
		if (submit(a, p, "PING", (const char *)NULL) == 0) {
			must_wait(fx, base + 1);
			ok = p->err == 0 && p->has_reply && p->type == REDIS_REPLY_STATUS;
		}
		if (!ok)
			tu_sleep_ms(20);
	}
	assert_true(ok);

	/* No late reply of the dead connection is taken for a new command. */
	base = fx_done(fx);
	r = recs_take(fx, 20);
	for (i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "ta:cont:%d", i % 2);
		SUBMIT(a, &r[i], "INCR", key);
	}
	must_wait(fx, base + 20);
	for (i = 0; i < 20; i++) {
		rec_ok(&r[i], REDIS_REPLY_INTEGER);
		assert_int_equal(r[i].integer, i / 2 + 1);
	}
}

struct free_arg {
	struct fx *fx;
	struct rds_async *a;
	int done_after; /* callbacks run when rds_async_free returned */
};

static void *
free_main(void *p)
{
	struct free_arg *f = p;

	rds_async_free(f->a);
	f->done_after = fx_done(f->fx);
	return NULL;
}

/* rds_async_free with commands in flight and queued: every callback runs
 * once, with -ECANCELED, before free returns. */
static void
test_free_pending(void **state)
{
	struct fx *fx = *state;
	/* Static: the freeing thread must never write into a dead frame. */
	static struct free_arg f;
	struct rds_async *a, *idle;
	struct rec *flight, *queued;
	int i, base, early, rc = 0;
	pthread_t th;
	char key[32];

	recs_alloc(fx, 1024);
	a = fx_new_default(fx, 0);
	/* An instance that never connected frees cleanly. */
	idle = fx_new_default(fx, 0);
	fx_free_async(fx, idle);

	rec_ok(run(fx, a, "DEL", "ta:empty", NULL), REDIS_REPLY_INTEGER);
	base = fx_done(fx);
	/* In flight: a BLPOP without timeout and commands behind it. */
	flight = recs_take(fx, 100);
	SUBMIT(a, &flight[0], "BLPOP", "ta:empty", "0");
	for (i = 1; i < 100; i++) {
		snprintf(key, sizeof(key), "ta:f:%d", i);
		SUBMIT(a, &flight[i], "SET", key, "x");
	}
	assert_true(wait_sent(a, 101, WAIT_MS));

	/* Queued: with the loop thread held, rds_async_free is asked first
	 * (its job is queued on the loop before the commands' wake-up, so it
	 * runs first and finds them in the queue), then commands are
	 * submitted. The instance cannot go away meanwhile: free waits for
	 * the held loop. */
	memset(&f, 0, sizeof(f));
	f.fx = fx;
	f.a = a;
	gate_close(fx);
	fx_forget(fx, a); /* free_main frees it */
	assert_int_equal(pthread_create(&th, NULL, free_main, &f), 0);
	tu_sleep_ms(100);
	queued = recs_take(fx, 500);
	for (i = 0; i < 500 && rc == 0; i++)
		rc = submit(a, &queued[i], "PING", (const char *)NULL);
	early = fx_done(fx);
	gate_open(fx);
	pthread_join(th, NULL);

	assert_int_equal(rc, 0);
	assert_int_equal(early, base);
	assert_int_equal(f.done_after, base + 600);
	for (i = 0; i < 100; i++)
		rec_failed(&flight[i], -ECANCELED, -ECANCELED);
	for (i = 0; i < 500; i++)
		rec_failed(&queued[i], -ECANCELED, -ECANCELED);
	tu_sleep_ms(50);
	assert_int_equal(fx_done(fx), base + 600);
}

/* A full queue refuses the next submission with -EAGAIN, and its callback
 * never runs; the queued ones all complete once the loop runs again. */
static void
test_queue_full(void **state)
{
	struct fx *fx = *state;
	struct rds_stats st, st2;
	struct rds_async *a;
	struct rec *r, *extra;
	int i, base;

	recs_alloc(fx, QUEUE_MAX + 16);
	a = fx_new_default(fx, 0);
	rec_ok(run(fx, a, "PING", NULL, NULL), REDIS_REPLY_STATUS);
	base = fx_done(fx);

	gate_close(fx);
	r = recs_take(fx, QUEUE_MAX);
	for (i = 0; i < QUEUE_MAX; i++)
		if (submit(a, &r[i], "PING", (const char *)NULL) != 0)
			break;
	rds_async_stats(a, &st);
	extra = recs_take(fx, 1);
	assert_int_equal(submit(a, extra, "PING", (const char *)NULL), -EAGAIN);
	rds_async_stats(a, &st2);
	gate_open(fx);
	assert_int_equal(i, QUEUE_MAX);
	assert_int_equal(st2.errors, st.errors + 1);

	must_wait(fx, base + QUEUE_MAX);
	tu_sleep_ms(50);
	assert_int_equal(fx_done(fx), base + QUEUE_MAX);
	assert_int_equal(atomic_load(&extra->ran), 0);
	for (i = 0; i < QUEUE_MAX; i++)
		rec_ok(&r[i], REDIS_REPLY_STATUS);
	rds_async_stats(a, &st);
	assert_int_equal(st.commands, 1 + QUEUE_MAX);
	assert_int_equal(st.errors, 1);
	assert_int_equal(st.connects, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_basic, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_binary, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_script, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_error_reply, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_threads, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_submit_from_callback, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_auth_select, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_outage_and_recovery, fx_setup_own,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_unresponsive_server, fx_setup_own,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_free_pending, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_queue_full, fx_setup, fx_teardown),
	};

	/* As in the daemons: a write to a killed Redis must fail with EPIPE,
	 * not end the test. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
