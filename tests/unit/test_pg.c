/* SPDX-License-Identifier: MIT */
/* Unit tests for common/pg.c against a real PostgreSQL started by the test. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pg.h"
#include "test_util_servers.h"

static struct tu_pg g_pg;
static struct pg_pool *g_admin; /* one connection to the "postgres" database */

static int
group_setup(void **state)
{
	char errbuf[256] = "";
	int err = 0;

	(void)state;
	if (tu_pg_start(&g_pg) < 0) {
		fprintf(stderr, "test_pg: FAILED to start PostgreSQL; every test fails\n");
		tu_pg_stop(&g_pg);
		return -1;
	}
	g_admin = pg_pool_new(g_pg.conninfo, 1, 5000, &err, errbuf, sizeof(errbuf));
	if (g_admin == NULL) {
		fprintf(stderr, "test_pg: FAILED to connect to PostgreSQL: %d %s\n", err, errbuf);
		tu_pg_stop(&g_pg);
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	pg_pool_free(g_admin);
	tu_pg_stop(&g_pg);
	return 0;
}

/* Runs sql on the admin connection; it must succeed. */
static void
admin_exec(const char *sql)
{
	char errbuf[256] = "";
	PGconn *c = pg_acquire(g_admin);

	assert_non_null(c);
	if (pg_exec(c, sql, 0, NULL, errbuf, sizeof(errbuf)) < 0) {
		pg_release(g_admin, c);
		fail_msg("%s: %s", sql, errbuf);
	}
	pg_release(g_admin, c);
}

/* Creates an empty database and a pool on it; every test gets its own, so
 * migration state never leaks between tests. */
static struct pg_pool *
fresh_db(const char *name, int size, int timeout_ms)
{
	char sql[128], conninfo[300], errbuf[256] = "";
	struct pg_pool *p;
	int err = 0;

	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
	admin_exec(sql);
	snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%d user=postgres dbname=%s",
		 g_pg.port, name);
	p = pg_pool_new(conninfo, size, timeout_ms, &err, errbuf, sizeof(errbuf));
	if (p == NULL)
		fail_msg("pool on %s: %d %s", name, err, errbuf);
	return p;
}

/* The single text value of a one-row, one-column query. */
static char *
query_value(PGconn *c, const char *sql, char *buf, size_t size)
{
	char errbuf[256] = "";
	PGresult *res;

	res = pg_query(c, sql, 0, NULL, errbuf, sizeof(errbuf), NULL);
	if (res == NULL)
		fail_msg("%s: %s", sql, errbuf);
	assert_int_equal(PQntuples(res), 1);
	snprintf(buf, size, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return buf;
}

static void
test_pool_refused(void **state)
{
	char conninfo[128], errbuf[256] = "";
	struct pg_pool *p;
	int err = 0;

	(void)state;
	snprintf(conninfo, sizeof(conninfo),
		 "host=127.0.0.1 port=%d user=postgres connect_timeout=2", tu_free_port());
	p = pg_pool_new(conninfo, 2, 100, &err, errbuf, sizeof(errbuf));
	assert_null(p);
	assert_int_equal(err, -ECONNREFUSED);
	assert_true(errbuf[0] != '\0');
	assert_true(errbuf[strlen(errbuf) - 1] != '\n');

	p = pg_pool_new(g_pg.conninfo, 0, 100, &err, NULL, 0);
	assert_null(p);
	assert_int_equal(err, -EINVAL);
	pg_pool_free(NULL);
}

struct waiter {
	struct pg_pool *p;
	PGconn *got;
	int err;
};

static void *
waiter_main(void *arg)
{
	struct waiter *w = arg;

	w->got = pg_acquire(w->p);
	w->err = w->got == NULL ? errno : 0;
	return NULL;
}

static void
test_pool_acquire_release(void **state)
{
	struct pg_pool *p = fresh_db("t_pool", 2, 200);
	struct pg_pool *slow;
	struct waiter w = { 0 };
	PGconn *a, *b, *c;
	long long t0, took;
	pthread_t th;

	(void)state;
	a = pg_acquire(p);
	b = pg_acquire(p);
	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_not_equal(a, b);

	/* Exhausted: waits out the timeout, then ETIMEDOUT. */
	errno = 0;
	t0 = tu_now_ms();
	c = pg_acquire(p);
	took = tu_now_ms() - t0;
	assert_null(c);
	assert_int_equal(errno, ETIMEDOUT);
	assert_true(took >= 190);

	pg_release(p, a);
	c = pg_acquire(p);
	assert_ptr_equal(c, a);
	pg_release(p, c);
	pg_release(p, b);
	pg_release(p, NULL);
	assert_int_equal(pg_ping(p), 0);
	pg_pool_free(p);

	/* A waiter is woken by a release, long before its timeout. */
	slow = fresh_db("t_pool_wait", 1, 30000);
	a = pg_acquire(slow);
	assert_non_null(a);
	w.p = slow;
	assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
	tu_sleep_ms(50);
	pg_release(slow, a);
	pthread_join(th, NULL);
	assert_int_equal(w.err, 0);
	assert_ptr_equal(w.got, a);
	pg_release(slow, w.got);
	pg_pool_free(slow);
}

static void
test_query_params(void **state)
{
	const char *params[] = { NULL, "41", "h\xc3\xa9llo 'quoted'" };
	struct pg_pool *p = fresh_db("t_query", 1, 1000);
	char errbuf[256] = "", state6[6] = "xxxxx";
	PGresult *res;
	PGconn *c;

	(void)state;
	c = pg_acquire(p);
	assert_non_null(c);
	res = pg_query(c, "SELECT $1::text IS NULL, $2::int + 1, $3::text, $1::text", 3, params,
		       errbuf, sizeof(errbuf), state6);
	if (res == NULL)
		fail_msg("query: %s", errbuf);
	assert_string_equal(state6, "00000");
	assert_int_equal(PQntuples(res), 1);
	assert_string_equal(PQgetvalue(res, 0, 0), "t");
	assert_string_equal(PQgetvalue(res, 0, 1), "42");
	assert_string_equal(PQgetvalue(res, 0, 2), params[2]);
	assert_true(PQgetisnull(res, 0, 3));
	PQclear(res);

	/* Statements without rows; NULL stored and read back. */
	assert_int_equal(pg_exec(c, "CREATE TABLE kv (k text PRIMARY KEY, v text)", 0, NULL, errbuf,
				 sizeof(errbuf)),
			 0);
	params[0] = "key";
	params[1] = NULL;
	assert_int_equal(pg_exec(c, "INSERT INTO kv VALUES ($1, $2)", 2, params, NULL, 0), 0);
	res = pg_query(c, "SELECT v IS NULL FROM kv WHERE k = $1", 1, params, NULL, 0, NULL);
	assert_non_null(res);
	assert_string_equal(PQgetvalue(res, 0, 0), "t");
	PQclear(res);
	pg_release(p, c);
	pg_pool_free(p);
}

static void
test_sql_errors(void **state)
{
	const char *params[] = { "dup" };
	struct pg_pool *p = fresh_db("t_errors", 1, 1000);
	char errbuf[256], state6[6];
	PGresult *res;
	PGconn *c;

	(void)state;
	c = pg_acquire(p);
	assert_non_null(c);

	errbuf[0] = '\0';
	res = pg_query(c, "SELEKT 1", 0, NULL, errbuf, sizeof(errbuf), state6);
	assert_null(res);
	assert_string_equal(state6, "42601"); /* syntax_error */
	assert_non_null(strstr(errbuf, "syntax error"));

	res = pg_query(c, "SELECT 1 / 0", 0, NULL, errbuf, sizeof(errbuf), state6);
	assert_null(res);
	assert_string_equal(state6, "22012"); /* division_by_zero */

	assert_int_equal(pg_exec(c, "CREATE TABLE u (k text PRIMARY KEY)", 0, NULL, NULL, 0), 0);
	assert_int_equal(pg_exec(c, "INSERT INTO u VALUES ($1)", 1, params, NULL, 0), 0);
	res = pg_query(c, "INSERT INTO u VALUES ($1)", 1, params, errbuf, sizeof(errbuf), state6);
	assert_null(res);
	assert_string_equal(state6, "23505"); /* unique_violation */
	assert_non_null(strstr(errbuf, "duplicate key"));
	assert_int_equal(pg_exec(c, "INSERT INTO u VALUES ($1)", 1, params, errbuf, 3), -EIO);
	assert_int_equal(strlen(errbuf), 2); /* truncated, still terminated */

	/* Wrong parameter count is a server error too, not a crash. */
	res = pg_query(c, "SELECT $1::int", 0, NULL, NULL, 0, state6);
	assert_null(res);
	assert_true(strlen(state6) == 5);
	pg_release(p, c);
	pg_pool_free(p);
}

/* pg_release rolls back an open transaction; pg_acquire resets a connection
 * the server dropped. */
static void
test_release_and_reset(void **state)
{
	struct pg_pool *p = fresh_db("t_reset", 1, 1000);
	char buf[32], pid[32], sql[96], errbuf[256], state6[6];
	PGresult *res;
	PGconn *c;

	(void)state;
	c = pg_acquire(p);
	assert_non_null(c);
	assert_int_equal(pg_exec(c, "CREATE TABLE t (x int)", 0, NULL, NULL, 0), 0);
	assert_int_equal(pg_exec(c, "BEGIN", 0, NULL, NULL, 0), 0);
	assert_int_equal(pg_exec(c, "INSERT INTO t VALUES (1)", 0, NULL, NULL, 0), 0);
	pg_release(p, c);

	c = pg_acquire(p);
	assert_non_null(c);
	assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
	assert_string_equal(query_value(c, "SELECT count(*) FROM t", buf, sizeof(buf)), "0");

	/* Kill this connection's backend from the admin connection. */
	query_value(c, "SELECT pg_backend_pid()", pid, sizeof(pid));
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%s)", pid);
	admin_exec(sql);
	res = pg_query(c, "SELECT 1", 0, NULL, errbuf, sizeof(errbuf), state6);
	assert_null(res);
	assert_true(strcmp(state6, "57P01") == 0 || strcmp(state6, "08006") == 0);
	assert_int_equal(PQstatus(c), CONNECTION_BAD);
	pg_release(p, c);

	c = pg_acquire(p);
	assert_non_null(c);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	assert_string_not_equal(query_value(c, "SELECT pg_backend_pid()", buf, sizeof(buf)), pid);
	pg_release(p, c);
	assert_int_equal(pg_ping(p), 0);
	pg_pool_free(p);
}

static void
test_migrate_once(void **state)
{
	struct pg_pool *p = fresh_db("t_migrate", 1, 1000);
	char errbuf[256] = "", buf[32];
	PGresult *res;
	PGconn *c;
	int version = -1, i;

	(void)state;
	assert_true(pg_migration_count >= 1);
	assert_int_equal(pg_schema_latest(), pg_migrations[pg_migration_count - 1].version);
	for (i = 1; i < pg_migration_count; i++)
		assert_true(pg_migrations[i].version > pg_migrations[i - 1].version);

	c = pg_acquire(p);
	assert_non_null(c);
	assert_int_equal(pg_schema_version(c, &version), 0);
	assert_int_equal(version, 0);
	assert_int_equal(pg_schema_require(c, pg_schema_latest(), errbuf, sizeof(errbuf)), -ESTALE);
	assert_non_null(strstr(errbuf, "--migrate"));
	assert_int_equal(pg_schema_require(c, 0, NULL, 0), 0);

	i = pg_migrate(c, errbuf, sizeof(errbuf));
	if (i < 0)
		fail_msg("migrate: %s", errbuf);
	assert_int_equal(i, pg_migration_count);
	assert_int_equal(pg_schema_version(c, &version), 0);
	assert_int_equal(version, pg_schema_latest());
	assert_int_equal(pg_schema_require(c, pg_schema_latest(), errbuf, sizeof(errbuf)), 0);

	/* Second run: nothing to do. */
	assert_int_equal(pg_migrate(c, errbuf, sizeof(errbuf)), 0);
	snprintf(buf, sizeof(buf), "%d", pg_migration_count);
	assert_string_equal(
		query_value(c, "SELECT count(*) FROM schema_migrations", errbuf, sizeof(errbuf)),
		buf);
	res = pg_query(c, "SELECT version, name FROM schema_migrations ORDER BY version", 0, NULL,
		       NULL, 0, NULL);
	assert_non_null(res);
	for (i = 0; i < pg_migration_count; i++) {
		assert_int_equal(atoi(PQgetvalue(res, i, 0)), pg_migrations[i].version);
		assert_string_equal(PQgetvalue(res, i, 1), pg_migrations[i].name);
	}
	PQclear(res);
	assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
	pg_release(p, c);
	pg_pool_free(p);
}

/* A failing migration rolls back completely and reports which one failed. */
static void
test_migrate_failure(void **state)
{
	struct pg_pool *p = fresh_db("t_migrate_fail", 1, 1000);
	char errbuf[256] = "";
	PGconn *c;
	int version = -1;

	(void)state;
	c = pg_acquire(p);
	assert_non_null(c);
	/* An incompatible bookkeeping table: recording a version fails. */
	assert_int_equal(pg_exec(c,
				 "CREATE TABLE schema_migrations (version int PRIMARY KEY, "
				 "name text, applied_at timestamptz, extra int NOT NULL)",
				 0, NULL, NULL, 0),
			 0);
	assert_int_equal(pg_migrate(c, errbuf, sizeof(errbuf)), -EIO);
	assert_non_null(strstr(errbuf, "extra"));
	assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
	assert_int_equal(pg_schema_version(c, &version), 0);
	assert_int_equal(version, 0);
	/* The migration's own objects were rolled back with it: running it
	 * again fails on the bookkeeping table, not on "already exists". */
	assert_int_equal(pg_migrate(c, errbuf, sizeof(errbuf)), -EIO);
	assert_non_null(strstr(errbuf, "extra"));
	pg_release(p, c);
	pg_pool_free(p);
}

struct migrator {
	struct pg_pool *p;
	pthread_barrier_t *go;
	int applied;
	char errbuf[256];
};

static void *
migrator_main(void *arg)
{
	struct migrator *m = arg;
	PGconn *c = pg_acquire(m->p);

	pthread_barrier_wait(m->go);
	if (c == NULL) {
		m->applied = -1000;
		return NULL;
	}
	m->applied = pg_migrate(c, m->errbuf, sizeof(m->errbuf));
	pg_release(m->p, c);
	return NULL;
}

/* Two migrators at once on an empty database: together they apply every
 * migration exactly once, and neither fails. */
static void
test_migrate_concurrent(void **state)
{
	struct pg_pool *p = fresh_db("t_migrate_race", 2, 5000);
	struct migrator m[2];
	pthread_barrier_t go;
	pthread_t th[2];
	PGconn *c;
	int i, version = -1;

	(void)state;
	pthread_barrier_init(&go, NULL, 2);
	for (i = 0; i < 2; i++) {
		m[i] = (struct migrator){ .p = p, .go = &go };
		assert_int_equal(pthread_create(&th[i], NULL, migrator_main, &m[i]), 0);
	}
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	for (i = 0; i < 2; i++)
		if (m[i].applied < 0)
			fail_msg("migrator %d: %d %s", i, m[i].applied, m[i].errbuf);
	assert_int_equal(m[0].applied + m[1].applied, pg_migration_count);

	c = pg_acquire(p);
	assert_non_null(c);
	assert_int_equal(pg_schema_version(c, &version), 0);
	assert_int_equal(version, pg_schema_latest());
	pg_release(p, c);
	pg_pool_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_refused),
		cmocka_unit_test(test_pool_acquire_release),
		cmocka_unit_test(test_query_params),
		cmocka_unit_test(test_sql_errors),
		cmocka_unit_test(test_release_and_reset),
		cmocka_unit_test(test_migrate_once),
		cmocka_unit_test(test_migrate_failure),
		cmocka_unit_test(test_migrate_concurrent),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
