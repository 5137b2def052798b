/* SPDX-License-Identifier: MIT */
/* Unit tests for common/rds.c against a real redis-server started by the test. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rds.h"
#include "test_util_servers.h"

#define PASSWORD   "test-secret"
#define CONNECT_MS 100
#define COMMAND_MS 500
#define BACKOFF_MS 400

static struct tu_redis g_redis;

static struct rds *
new_rds_on(const struct tu_redis *s, int db, const char *password)
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
	struct rds *r = rds_new(&o);

	assert_non_null(r);
	return r;
}

static struct rds *
new_rds(int db)
{
	return new_rds_on(&g_redis, db, PASSWORD);
}

/* Runs a command that must succeed with a reply of the given type. */
static redisReply *
must(struct rds *r, int type, const char *fmt, const char *a1, const char *a2)
{
	redisReply *reply;
	int err = 12345;

	reply = rds_command(r, &err, fmt, a1, a2);
	if (reply == NULL)
		fail_msg("\"%s\" failed: %d (%s)", fmt, err, strerror(-err));
	assert_int_equal(reply->type, type);
	return reply;
}

static long long
client_id(struct rds *r)
{
	redisReply *reply = must(r, REDIS_REPLY_INTEGER, "CLIENT ID", NULL, NULL);
	long long id = reply->integer;

	freeReplyObject(reply);
	return id;
}

static int
group_setup(void **state)
{
	(void)state;
	if (tu_redis_start(&g_redis, PASSWORD) < 0) {
		fprintf(stderr, "test_rds: FAILED to start redis-server; every test fails\n");
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

static void
test_command_basic(void **state)
{
	struct rds *r = new_rds(0);
	struct rds_stats st;
	redisReply *reply;
	int err = 0;

	(void)state;
	reply = must(r, REDIS_REPLY_STATUS, "SET %s %s", "t:basic", "hello");
	freeReplyObject(reply);
	reply = must(r, REDIS_REPLY_STRING, "GET %s", "t:basic", NULL);
	assert_string_equal(reply->str, "hello");
	freeReplyObject(reply);

	reply = rds_command(r, &err, "SET %s %b", "t:bin", "a\0b", (size_t)3);
	assert_non_null(reply);
	freeReplyObject(reply);
	reply = must(r, REDIS_REPLY_STRING, "GET %s", "t:bin", NULL);
	assert_int_equal(reply->len, 3);
	assert_memory_equal(reply->str, "a\0b", 3);
	freeReplyObject(reply);

	/* A Redis error is a reply, not a failure: the connection stays. */
	reply = must(r, REDIS_REPLY_ERROR, "INCR %s", "t:basic", NULL);
	freeReplyObject(reply);
	assert_int_equal(rds_ping(r), 0);

	/* ret_err may be NULL. */
	reply = rds_command(r, NULL, "PING");
	assert_non_null(reply);
	freeReplyObject(reply);

	rds_get_stats(r, &st);
	assert_int_equal(st.commands, 7);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.connects, 1);
	assert_true(st.up);
	rds_free(r);
}

static void
test_command_argv(void **state)
{
	const char *argv[] = { "RPUSH", "t:list", "x\0y", "", "third" };
	const size_t len[] = { 5, 6, 3, 0, 5 };
	struct rds *r = new_rds(0);
	redisReply *reply;
	int err = 0;

	(void)state;
	freeReplyObject(must(r, REDIS_REPLY_INTEGER, "DEL %s", "t:list", NULL));
	reply = rds_command_argv(r, &err, 5, argv, len);
	assert_non_null(reply);
	assert_int_equal(reply->type, REDIS_REPLY_INTEGER);
	assert_int_equal(reply->integer, 3);
	freeReplyObject(reply);

	reply = must(r, REDIS_REPLY_ARRAY, "LRANGE %s 0 -1", "t:list", NULL);
	assert_int_equal(reply->elements, 3);
	assert_int_equal(reply->element[0]->len, 3);
	assert_memory_equal(reply->element[0]->str, "x\0y", 3);
	assert_int_equal(reply->element[1]->len, 0);
	assert_string_equal(reply->element[2]->str, "third");
	freeReplyObject(reply);
	rds_free(r);
}

static void
test_prefix(void **state)
{
	struct rds_opts o = { .host = "127.0.0.1", .port = g_redis.port };
	struct rds *r = new_rds(0);
	struct rds *bare;

	(void)state;
	assert_string_equal(rds_prefix(r), "p2pcdn:");
	bare = rds_new(&o);
	assert_non_null(bare);
	assert_string_equal(rds_prefix(bare), "");
	rds_free(bare);
	rds_free(r);
	rds_free(NULL);
	rds_thread_done(NULL);
}

static void
test_pipeline(void **state)
{
	const char *argv[] = { "GET", "t:pipe" };
	struct rds *r = new_rds(0);
	struct rds_pipe *p;
	redisReply *replies[5];
	struct rds_stats st;
	size_t i;

	(void)state;
	p = rds_pipe_begin(r);
	assert_non_null(p);
	assert_int_equal(rds_pipe_add(p, "SET %s %s", "t:pipe", "41"), 0);
	assert_int_equal(rds_pipe_add(p, "INCR %s", "t:pipe"), 0);
	assert_int_equal(rds_pipe_add_argv(p, 2, argv, NULL), 0);
	assert_int_equal(rds_pipe_add(p, "HSET %s f v", "t:pipe"), 0); /* WRONGTYPE */
	assert_int_equal(rds_pipe_add(p, "PING"), 0);
	assert_int_equal(rds_pipe_exec(p, replies, 5), 0);
	rds_pipe_end(p);

	assert_int_equal(replies[0]->type, REDIS_REPLY_STATUS);
	assert_int_equal(replies[1]->type, REDIS_REPLY_INTEGER);
	assert_int_equal(replies[1]->integer, 42);
	assert_int_equal(replies[2]->type, REDIS_REPLY_STRING);
	assert_string_equal(replies[2]->str, "42");
	assert_int_equal(replies[3]->type, REDIS_REPLY_ERROR);
	assert_int_equal(replies[4]->type, REDIS_REPLY_STATUS);
	assert_string_equal(replies[4]->str, "PONG");
	for (i = 0; i < 5; i++)
		freeReplyObject(replies[i]);

	/* A pipe can be executed again before it ends, and an empty one is
	 * fine. */
	p = rds_pipe_begin(r);
	assert_non_null(p);
	assert_int_equal(rds_pipe_exec(p, replies, 0), 0);
	assert_int_equal(rds_pipe_add(p, "GET %s", "t:pipe"), 0);
	assert_int_equal(rds_pipe_exec(p, replies, 1), 0);
	assert_string_equal(replies[0]->str, "42");
	freeReplyObject(replies[0]);
	assert_int_equal(rds_pipe_add(p, "PING"), 0);
	assert_int_equal(rds_pipe_exec(p, replies, 1), 0);
	freeReplyObject(replies[0]);
	rds_pipe_end(p);
	rds_pipe_end(NULL);

	rds_get_stats(r, &st);
	assert_int_equal(st.commands, 7);
	assert_int_equal(st.connects, 1);
	rds_free(r);
}

/* Every failed exec leaves replies[] all NULL, and the queued commands never
 * reach Redis on a later call. */
static void
test_pipeline_failures(void **state)
{
	struct rds *r = new_rds(0);
	struct rds_pipe *p, *p2;
	redisReply *replies[3];
	redisReply *reply;
	long long id;
	int err = 0;

	(void)state;
	freeReplyObject(must(r, REDIS_REPLY_INTEGER, "DEL %s", "t:never", NULL));
	id = client_id(r);

	/* n differs from the number of adds. */
	p = rds_pipe_begin(r);
	assert_non_null(p);
	assert_int_equal(rds_pipe_add(p, "SET %s 1", "t:never"), 0);
	assert_int_equal(rds_pipe_add(p, "PING"), 0);
	replies[0] = replies[1] = replies[2] = (redisReply *)(uintptr_t)1;
	assert_int_equal(rds_pipe_exec(p, replies, 3), -EINVAL);
	assert_null(replies[0]);
	assert_null(replies[1]);
	assert_null(replies[2]);
	/* Adding after a failed exec is refused rather than crashing. */
	assert_true(rds_pipe_add(p, "PING") < 0);
	rds_pipe_end(p);

	/* Ended without exec. */
	p = rds_pipe_begin(r);
	assert_non_null(p);
	assert_int_equal(rds_pipe_add(p, "SET %s 2", "t:never"), 0);
	rds_pipe_end(p);

	/* One pipeline per thread and rds at a time; commands wait too. */
	p = rds_pipe_begin(r);
	assert_non_null(p);
	errno = 0;
	p2 = rds_pipe_begin(r);
	assert_null(p2);
	assert_int_equal(errno, EBUSY);
	assert_int_equal(rds_pipe_add(p, "SET %s 3", "t:never"), 0);
	reply = rds_command(r, &err, "PING");
	assert_null(reply);
	assert_int_equal(err, -EBUSY);
	rds_pipe_end(p);

	reply = must(r, REDIS_REPLY_NIL, "GET %s", "t:never", NULL);
	freeReplyObject(reply);
	/* The dropped connection was replaced. */
	assert_true(client_id(r) != id);
	assert_int_equal(rds_ping(r), 0);
	rds_free(r);
}

static void
test_auth_select_unix(void **state)
{
	struct rds_opts o = {
		.host = g_redis.sock,
		.password = PASSWORD,
		.db = 3,
		.connect_timeout_ms = CONNECT_MS,
		.command_timeout_ms = COMMAND_MS,
		.max_backoff_ms = BACKOFF_MS,
	};
	struct rds *db0 = new_rds(0);
	struct rds *db3 = new_rds(3);
	struct rds *unix3, *bad;
	redisReply *reply;
	int err = 0;

	(void)state;
	freeReplyObject(must(db3, REDIS_REPLY_STATUS, "SET %s %s", "t:db", "three"));
	freeReplyObject(must(db0, REDIS_REPLY_INTEGER, "DEL %s", "t:db", NULL));
	reply = must(db3, REDIS_REPLY_STRING, "GET %s", "t:db", NULL);
	assert_string_equal(reply->str, "three");
	freeReplyObject(reply);

	/* Same db over the unix socket. */
	unix3 = rds_new(&o);
	assert_non_null(unix3);
	reply = must(unix3, REDIS_REPLY_STRING, "GET %s", "t:db", NULL);
	assert_string_equal(reply->str, "three");
	freeReplyObject(reply);

	/* A refused AUTH fails the call, then backs off like an outage. */
	bad = new_rds_on(&g_redis, 0, "wrong");
	reply = rds_command(bad, &err, "PING");
	assert_null(reply);
	assert_int_equal(err, -EIO);
	reply = rds_command(bad, &err, "PING");
	assert_null(reply);
	assert_int_equal(err, -EAGAIN);
	/* No password at all: Redis answers NOAUTH, as a reply. */
	rds_free(bad);
	bad = new_rds_on(&g_redis, 0, NULL);
	reply = must(bad, REDIS_REPLY_ERROR, "GET %s", "t:db", NULL);
	freeReplyObject(reply);

	rds_free(bad);
	rds_free(unix3);
	rds_free(db3);
	rds_free(db0);
}

/* A command outliving command_timeout_ms fails with -ETIMEDOUT instead of
 * hanging, and its late reply can never be read as another's. */
static void
test_command_timeout(void **state)
{
	struct rds *r = new_rds(0);
	redisReply *reply;
	long long t0, took;
	int err = 0;

	(void)state;
	freeReplyObject(must(r, REDIS_REPLY_INTEGER, "DEL %s", "t:empty", NULL));
	t0 = tu_now_ms();
	reply = rds_command(r, &err, "BLPOP %s 3", "t:empty");
	took = tu_now_ms() - t0;
	assert_null(reply);
	assert_int_equal(err, -ETIMEDOUT);
	assert_true(took < 3000);

	/* Backing off now: fails at once without I/O. */
	reply = rds_command(r, &err, "PING");
	assert_null(reply);
	assert_int_equal(err, -EAGAIN);

	/* After the backoff a new connection serves normal commands. */
	t0 = tu_now_ms();
	while (rds_ping(r) != 0 && tu_now_ms() - t0 < 5000)
		tu_sleep_ms(20);
	assert_int_equal(rds_ping(r), 0);
	freeReplyObject(must(r, REDIS_REPLY_STATUS, "SET %s %s", "t:after", "ok"));
	reply = must(r, REDIS_REPLY_STRING, "GET %s", "t:after", NULL);
	assert_string_equal(reply->str, "ok");
	freeReplyObject(reply);
	rds_free(r);
}

struct thread_arg {
	struct rds *r;
	long long id_first;
	long long id_last;
	int failures;
	bool done;
};

static void *
thread_main(void *p)
{
	struct thread_arg *a = p;
	redisReply *reply;
	int i, err;

	a->id_first = -1;
	for (i = 0; i < 200; i++) {
		reply = rds_command(a->r, &err, "INCR %s", "t:threads");
		if (reply == NULL || reply->type != REDIS_REPLY_INTEGER)
			a->failures++;
		freeReplyObject(reply);
	}
	reply = rds_command(a->r, &err, "CLIENT ID");
	if (reply != NULL && reply->type == REDIS_REPLY_INTEGER)
		a->id_first = reply->integer;
	freeReplyObject(reply);
	reply = rds_command(a->r, &err, "CLIENT ID");
	if (reply != NULL && reply->type == REDIS_REPLY_INTEGER)
		a->id_last = reply->integer;
	freeReplyObject(reply);
	/* Odd threads leave their connection to the thread-exit destructor. */
	if (a->done)
		rds_thread_done(a->r);
	return NULL;
}

static void
test_threads(void **state)
{
	struct thread_arg args[4];
	pthread_t th[4];
	struct rds *r = new_rds(0);
	struct rds_stats st;
	redisReply *reply;
	int i, j;

	(void)state;
	freeReplyObject(must(r, REDIS_REPLY_INTEGER, "DEL %s", "t:threads", NULL));
	for (i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){ .r = r, .done = i % 2 == 0 };
		assert_int_equal(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
	}
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);

	reply = must(r, REDIS_REPLY_STRING, "GET %s", "t:threads", NULL);
	assert_string_equal(reply->str, "800");
	freeReplyObject(reply);
	for (i = 0; i < 4; i++) {
		assert_int_equal(args[i].failures, 0);
		assert_true(args[i].id_first > 0);
		/* One connection per thread, kept across calls... */
		assert_true(args[i].id_first == args[i].id_last);
		/* ...and never shared with another thread. */
		for (j = 0; j < i; j++)
			assert_true(args[i].id_first != args[j].id_first);
	}
	rds_get_stats(r, &st);
	assert_int_equal(st.connects, 5); /* four threads and this one */
	assert_int_equal(st.commands, 2 + 4 * 202);
	rds_free(r);
}

struct reuse_arg {
	struct rds *old;
	struct rds *fresh; /* published by the barrier */
	pthread_barrier_t freed;
	pthread_barrier_t used;
	int old_type;
	int fresh_type;
};

static void *
reuse_thread(void *p)
{
	struct reuse_arg *a = p;
	redisReply *reply;
	int err;

	reply = rds_command(a->old, &err, "GET %s", "t:which");
	a->old_type = reply != NULL ? reply->type : -err;
	freeReplyObject(reply);
	pthread_barrier_wait(&a->used);
	/* The main thread frees old and makes fresh meanwhile; this thread
	 * still holds a slot keyed by old's address. */
	pthread_barrier_wait(&a->freed);
	reply = rds_command(a->fresh, &err, "GET %s", "t:which");
	a->fresh_type = reply != NULL ? reply->type : -err;
	freeReplyObject(reply);
	rds_thread_done(a->fresh);
	return NULL;
}

/* A thread using several struct rds keeps one connection per rds; an rds
 * freed and a new one allocated (perhaps at the same address) never inherits
 * the old one's connection on any thread. */
static void
test_several_rds_one_thread(void **state)
{
	struct reuse_arg ra = { 0 };
	struct rds *a = new_rds(0);
	struct rds *b = new_rds(1);
	struct rds *c;
	redisReply *reply;
	long long ida, idb;
	pthread_t th;

	(void)state;
	freeReplyObject(must(a, REDIS_REPLY_STATUS, "SET %s %s", "t:which", "zero"));
	freeReplyObject(must(b, REDIS_REPLY_STATUS, "SET %s %s", "t:which", "one"));
	ida = client_id(a);
	idb = client_id(b);
	assert_true(ida != idb);
	assert_true(client_id(a) == ida);
	assert_true(client_id(b) == idb);

	pthread_barrier_init(&ra.used, NULL, 2);
	pthread_barrier_init(&ra.freed, NULL, 2);
	ra.old = b;
	assert_int_equal(pthread_create(&th, NULL, reuse_thread, &ra), 0);
	pthread_barrier_wait(&ra.used);
	rds_free(b);
	c = new_rds(2);
	print_message("rds address %s after free\n", c == ra.old ? "reused" : "not reused");
	freeReplyObject(must(c, REDIS_REPLY_INTEGER, "DEL %s", "t:which", NULL));
	ra.fresh = c;
	pthread_barrier_wait(&ra.freed);
	pthread_join(th, NULL);
	pthread_barrier_destroy(&ra.used);
	pthread_barrier_destroy(&ra.freed);
	assert_int_equal(ra.old_type, REDIS_REPLY_STRING);
	assert_int_equal(ra.fresh_type, REDIS_REPLY_NIL); /* db 2, not db 1 */

	reply = must(a, REDIS_REPLY_STRING, "GET %s", "t:which", NULL);
	assert_string_equal(reply->str, "zero");
	freeReplyObject(reply);
	rds_thread_done(a);
	rds_thread_done(a); /* nothing left: no-op */
	assert_true(client_id(a) != ida);
	rds_free(c);
	rds_free(a);
}

struct outage_arg {
	struct rds *r;
	int err;
	long long took;
};

static void *
outage_thread(void *p)
{
	struct outage_arg *a = p;
	long long t0 = tu_now_ms();
	redisReply *reply;

	reply = rds_command(a->r, &a->err, "PING");
	a->took = tu_now_ms() - t0;
	if (reply != NULL) {
		freeReplyObject(reply);
		a->err = 0;
	}
	return NULL;
}

static int
outage_setup(void **state)
{
	struct tu_redis *s = calloc(1, sizeof(*s));

	*state = s;
	if (s == NULL || tu_redis_start(s, PASSWORD) < 0) {
		fprintf(stderr, "test_rds: FAILED to start the outage redis-server\n");
		return -1;
	}
	return 0;
}

static int
outage_teardown(void **state)
{
	struct tu_redis *s = *state;

	if (s != NULL) {
		tu_redis_stop(s);
		free(s);
	}
	return 0;
}

/* Redis killed mid-run: calls fail at once with -EAGAIN (the first, on the
 * dead socket, may see -EIO), no call waits beyond the command timeout, and
 * once Redis is back the calls recover by themselves after the backoff. */
static void
test_outage_and_recovery(void **state)
{
	struct tu_redis *s = *state;
	struct rds *r = new_rds_on(s, 0, PASSWORD);
	struct outage_arg oa = { 0 };
	struct rds_stats st, st2;
	struct rds_pipe *p;
	redisReply *reply;
	long long t0, took;
	pthread_t th;
	int i, err;

	assert_int_equal(rds_ping(r), 0);
	freeReplyObject(must(r, REDIS_REPLY_STATUS, "SET %s %s", "t:outage", "v"));

	tu_redis_kill(s);
	for (i = 0; i < 40; i++) {
		err = 0;
		t0 = tu_now_ms();
		reply = rds_command(r, &err, "GET %s", "t:outage");
		took = tu_now_ms() - t0;
		assert_null(reply);
		if (i == 0)
			assert_true(err == -EIO || err == -EAGAIN);
		else
			assert_int_equal(err, -EAGAIN);
		assert_true(took < COMMAND_MS + CONNECT_MS);
		tu_sleep_ms(10);
	}
	assert_int_equal(rds_ping(r), -EAGAIN);
	errno = 0;
	p = rds_pipe_begin(r);
	assert_null(p);
	assert_int_equal(errno, EAGAIN);

	/* The backoff is shared: a thread without a connection fails fast. */
	oa.r = r;
	assert_int_equal(pthread_create(&th, NULL, outage_thread, &oa), 0);
	pthread_join(th, NULL);
	assert_int_equal(oa.err, -EAGAIN);
	assert_true(oa.took < COMMAND_MS + CONNECT_MS);

	rds_get_stats(r, &st);
	assert_false(st.up);
	assert_true(st.errors >= 40);

	assert_int_equal(tu_redis_spawn(s), 0);
	t0 = tu_now_ms();
	while ((err = rds_ping(r)) != 0 && tu_now_ms() - t0 < 10 * BACKOFF_MS)
		tu_sleep_ms(20);
	assert_int_equal(err, 0);
	rds_get_stats(r, &st2);
	assert_true(st2.up);
	assert_int_equal(st2.connects, st.connects + 1);
	/* A fresh server (no persistence): the key is gone, commands work. */
	reply = must(r, REDIS_REPLY_NIL, "GET %s", "t:outage", NULL);
	freeReplyObject(reply);
	p = rds_pipe_begin(r);
	assert_non_null(p);
	assert_int_equal(rds_pipe_add(p, "PING"), 0);
	assert_int_equal(rds_pipe_exec(p, &reply, 1), 0);
	freeReplyObject(reply);
	rds_pipe_end(p);

	/* A pipeline whose server dies returns no replies. */
	tu_redis_kill(s);
	p = rds_pipe_begin(r);
	assert_non_null(p); /* no I/O yet: the connection looks fine */
	assert_int_equal(rds_pipe_add(p, "PING"), 0);
	assert_int_equal(rds_pipe_add(p, "PING"), 0);
	{
		redisReply *two[2] = { (redisReply *)(uintptr_t)1, (redisReply *)(uintptr_t)1 };

		err = rds_pipe_exec(p, two, 2);
		assert_true(err == -EIO || err == -ETIMEDOUT);
		assert_null(two[0]);
		assert_null(two[1]);
	}
	rds_pipe_end(p);
	assert_int_equal(rds_ping(r), -EAGAIN);
	rds_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_command_basic),
		cmocka_unit_test(test_command_argv),
		cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_pipeline),
		cmocka_unit_test(test_pipeline_failures),
		cmocka_unit_test(test_auth_select_unix),
		cmocka_unit_test(test_command_timeout),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_several_rds_one_thread),
		cmocka_unit_test_setup_teardown(test_outage_and_recovery, outage_setup,
						outage_teardown),
	};

	/* As in the daemons (dmn_signals_init): a write to a killed Redis
	 * must fail with EPIPE, not end the test. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
