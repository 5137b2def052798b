/* SPDX-License-Identifier: MIT */
/* PostgreSQL access: a fixed connection pool, parameterized queries, schema migrations. */
#include "pg.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* pg_advisory_xact_lock key serialising migrations across every process on
 * the database: the bytes of "p2pcdn" followed by 0x0001. */
#define PG_MIGRATE_LOCK "8084647853272465409"

struct pg_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* signalled when a connection is released */
	int size;
	int timeout_ms;
	int nfree;
	PGconn **all;  /* every connection, for ownership checks and freeing */
	PGconn **idle; /* stack of nfree released connections */
};

/* Copies msg into buf without the trailing newline libpq appends. */
static void
pg_set_err(char *buf, size_t size, const char *prefix, const char *msg)
{
	size_t len;

	if (buf == NULL || size == 0)
		return;
	snprintf(buf, size, "%s%s", prefix, msg != NULL ? msg : "");
	len = strlen(buf);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
}

struct pg_pool *
pg_pool_new(const char *conninfo, int size, int acquire_timeout_ms, int *ret_err, char *errbuf,
	    size_t errsize)
{
	pthread_condattr_t attr;
	struct pg_pool *p;
	int i, err = -ENOMEM;

	if (size < 1) {
		pg_set_err(errbuf, errsize, "pool size must be at least 1", NULL);
		err = -EINVAL;
		goto fail;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		goto fail;
	p->size = size;
	p->timeout_ms = acquire_timeout_ms > 0 ? acquire_timeout_ms : 0;
	p->all = calloc((size_t)size, sizeof(*p->all));
	p->idle = calloc((size_t)size, sizeof(*p->idle));
	if (p->all == NULL || p->idle == NULL)
		goto free_arrays;
	if (pthread_mutex_init(&p->mu, NULL) != 0)
		goto free_arrays;
	/* Waits are measured on the monotonic clock so a wall-clock step
	 * neither cuts them short nor stretches them. */
	if (pthread_condattr_init(&attr) != 0)
		goto destroy_mutex;
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	i = pthread_cond_init(&p->cv, &attr);
	pthread_condattr_destroy(&attr);
	if (i != 0)
		goto destroy_mutex;

	for (i = 0; i < size; i++) {
		p->all[i] = PQconnectdb(conninfo);
		if (p->all[i] == NULL)
			goto finish_conns;
		if (PQstatus(p->all[i]) != CONNECTION_OK) {
			pg_set_err(errbuf, errsize, "", PQerrorMessage(p->all[i]));
			err = -ECONNREFUSED;
			goto finish_conns;
		}
		p->idle[i] = p->all[i];
	}
	p->nfree = size;
	return p;

finish_conns:
	for (i = 0; i < size; i++)
		PQfinish(p->all[i]); /* NULL-safe */
	pthread_cond_destroy(&p->cv);
destroy_mutex:
	pthread_mutex_destroy(&p->mu);
free_arrays:
	free(p->all);
	free(p->idle);
	free(p);
fail:
	if (ret_err != NULL)
		*ret_err = err;
	return NULL;
}

void
pg_pool_free(struct pg_pool *p)
{
	int i;

	if (p == NULL)
		return;
	for (i = 0; i < p->size; i++)
		PQfinish(p->all[i]);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p->all);
	free(p->idle);
	free(p);
}

/* The broken-connection check and PQreset() run outside the lock: a reset
 * reconnects synchronously and must not stall the other threads. */
PGconn *
pg_acquire(struct pg_pool *p)
{
	struct timespec deadline;
	PGconn *c;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += p->timeout_ms / 1000;
	deadline.tv_nsec += (long)(p->timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}

	pthread_mutex_lock(&p->mu);
	while (p->nfree == 0) {
		rc = pthread_cond_timedwait(&p->cv, &p->mu, &deadline);
		if (rc == ETIMEDOUT && p->nfree == 0) {
			pthread_mutex_unlock(&p->mu);
			errno = ETIMEDOUT;
			return NULL;
		}
	}
	c = p->idle[--p->nfree];
	pthread_mutex_unlock(&p->mu);

	if (PQstatus(c) != CONNECTION_OK) {
		PQreset(c);
		if (PQstatus(c) != CONNECTION_OK) {
			pg_release(p, c);
			errno = ECONNREFUSED;
			return NULL;
		}
	}
	return c;
}

/* Any thread; c must come from pg_acquire on p. NULL-safe. A transaction
 * left open is rolled back here so the next user starts clean. */
void
pg_release(struct pg_pool *p, PGconn *c)
{
	PGresult *res;
	int i;

	if (c == NULL)
		return;
	switch (PQtransactionStatus(c)) {
	case PQTRANS_INTRANS:
	case PQTRANS_INERROR:
		res = PQexec(c, "ROLLBACK");
		PQclear(res);
		break;
	case PQTRANS_ACTIVE:
		/* A command still running (async use): only a reset gets
		 * the connection back to a known state. */
		PQreset(c);
		break;
	default:
		break;
	}

	for (i = 0; i < p->size && p->all[i] != c; i++)
		;
	pthread_mutex_lock(&p->mu);
	/* Foreign or double-released connections would overflow the stack. */
	if (i < p->size && p->nfree < p->size) {
		p->idle[p->nfree++] = c;
		pthread_cond_signal(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
}

/* Besides pg.h: ret_sqlstate is "00000" on success; on a failure without a
 * server SQLSTATE it is "08006" when the connection is lost, else "". */
PGresult *
pg_query(PGconn *c, const char *sql, int nparams, const char *const *params, char *errbuf,
	 size_t errsize, char ret_sqlstate[6])
{
	const char *state;
	PGresult *res;

	res = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
	switch (PQresultStatus(res)) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
		if (ret_sqlstate != NULL)
			memcpy(ret_sqlstate, "00000", 6);
		return res;
	default:
		break;
	}

	if (res != NULL && PQresultErrorMessage(res)[0] != '\0')
		pg_set_err(errbuf, errsize, "", PQresultErrorMessage(res));
	else
		pg_set_err(errbuf, errsize, "", PQerrorMessage(c));
	if (ret_sqlstate != NULL) {
		state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
		if (state == NULL)
			state = PQstatus(c) == CONNECTION_BAD ? "08006" : "";
		snprintf(ret_sqlstate, 6, "%s", state);
	}
	PQclear(res);
	return NULL;
}

int
pg_exec(PGconn *c, const char *sql, int nparams, const char *const *params, char *errbuf,
	size_t errsize)
{
	PGresult *res;

	res = pg_query(c, sql, nparams, params, errbuf, errsize, NULL);
	if (res == NULL)
		return -EIO;
	PQclear(res);
	return 0;
}

int
pg_ping(struct pg_pool *p)
{
	PGconn *c;
	int err;

	c = pg_acquire(p);
	if (c == NULL)
		return -errno;
	err = pg_exec(c, "SELECT 1", 0, NULL, NULL, 0);
	pg_release(p, c);
	return err;
}

int
pg_schema_latest(void)
{
	int i, latest = 0;

	for (i = 0; i < pg_migration_count; i++)
		if (pg_migrations[i].version > latest)
			latest = pg_migrations[i].version;
	return latest;
}

/* Highest version in schema_migrations; the table must exist. */
static int
pg_schema_max(PGconn *c, int *ret_version, char *errbuf, size_t errsize)
{
	PGresult *res;

	res = pg_query(c, "SELECT coalesce(max(version), 0) FROM schema_migrations", 0, NULL,
		       errbuf, errsize, NULL);
	if (res == NULL)
		return -EIO;
	*ret_version = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

static int
pg_schema_read(PGconn *c, int *ret_version, char *errbuf, size_t errsize)
{
	PGresult *res;
	bool exists;

	/* A database never migrated has no table yet: that is version 0,
	 * not an error. */
	res = pg_query(c, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL, errbuf,
		       errsize, NULL);
	if (res == NULL)
		return -EIO;
	exists = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!exists) {
		*ret_version = 0;
		return 0;
	}
	return pg_schema_max(c, ret_version, errbuf, errsize);
}

int
pg_schema_version(PGconn *c, int *ret_version)
{
	return pg_schema_read(c, ret_version, NULL, 0);
}

/* Runs a control statement (BEGIN, COMMIT, ...) for pg_migrate. */
static int
pg_migrate_exec(PGconn *c, const char *sql, char *errbuf, size_t errsize)
{
	return pg_exec(c, sql, 0, NULL, errbuf, errsize);
}

/* PQexec reports the last statement of a migration; a file of comments
 * only yields PGRES_EMPTY_QUERY, which is fine. */
static bool
pg_migration_ran(const PGresult *res)
{
	switch (PQresultStatus(res)) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
	case PGRES_EMPTY_QUERY:
		return true;
	default:
		return false;
	}
}

/*
 * Applies the first migration newer than the database, in one transaction
 * that also holds the advisory lock, creates the bookkeeping table (under
 * the lock, as two concurrent CREATE TABLE IF NOT EXISTS can still collide)
 * and re-reads the version (another process may just have migrated).
 * Returns 1 applied, 0 nothing pending, -EIO.
 */
static int
pg_migrate_one(PGconn *c, char *errbuf, size_t errsize)
{
	const struct pg_migration *m = NULL;
	char version[16];
	const char *params[2];
	PGresult *res;
	int i, cur, err;

	err = pg_migrate_exec(c, "BEGIN", errbuf, errsize);
	if (err < 0)
		return err;
	/* Library code does not log: keep "already exists, skipping" notices
	 * from libpq's default stderr printer. */
	err = pg_migrate_exec(c, "SET LOCAL client_min_messages = warning", errbuf, errsize);
	if (err < 0)
		goto rollback;
	err = pg_migrate_exec(c, "SELECT pg_advisory_xact_lock(" PG_MIGRATE_LOCK ")", errbuf,
			      errsize);
	if (err < 0)
		goto rollback;
	err = pg_migrate_exec(c,
			      "CREATE TABLE IF NOT EXISTS schema_migrations ("
			      "version integer PRIMARY KEY, name text NOT NULL, "
			      "applied_at timestamptz NOT NULL DEFAULT now())",
			      errbuf, errsize);
	if (err < 0)
		goto rollback;
	err = pg_schema_max(c, &cur, errbuf, errsize);
	if (err < 0)
		goto rollback;
	for (i = 0; i < pg_migration_count; i++) {
		if (pg_migrations[i].version > cur) {
			m = &pg_migrations[i];
			break;
		}
	}
	if (m == NULL)
		return pg_migrate_exec(c, "COMMIT", errbuf, errsize);

	/* PQexec, not PQexecParams: a migration holds several statements.
	 * The text is compiled in from deploy/sql, never user input, and must
	 * not contain BEGIN/COMMIT of its own. */
	res = PQexec(c, m->sql);
	if (!pg_migration_ran(res)) {
		char prefix[96];

		snprintf(prefix, sizeof(prefix), "migration %04d_%s: ", m->version, m->name);
		pg_set_err(errbuf, errsize, prefix,
			   res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(c));
		PQclear(res);
		err = -EIO;
		goto rollback;
	}
	PQclear(res);

	snprintf(version, sizeof(version), "%d", m->version);
	params[0] = version;
	params[1] = m->name;
	err = pg_exec(c, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, params,
		      errbuf, errsize);
	if (err < 0)
		goto rollback;
	err = pg_migrate_exec(c, "COMMIT", errbuf, errsize);
	if (err < 0)
		return err;
	return 1;

rollback:
	res = PQexec(c, "ROLLBACK");
	PQclear(res);
	return err;
}

int
pg_migrate(PGconn *c, char *errbuf, size_t errsize)
{
	int applied = 0, rc;

	while ((rc = pg_migrate_one(c, errbuf, errsize)) > 0)
		applied++;
	return rc < 0 ? rc : applied;
}

int
pg_schema_require(PGconn *c, int need, char *errbuf, size_t errsize)
{
	int version;

	if (pg_schema_read(c, &version, errbuf, errsize) < 0)
		return -EIO;
	if (version < need) {
		if (errbuf != NULL && errsize > 0)
			snprintf(errbuf, errsize,
				 "database schema version %d is older than version %d this "
				 "binary needs; run it once with --migrate",
				 version, need);
		return -ESTALE;
	}
	return 0;
}
