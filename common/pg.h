/* SPDX-License-Identifier: MIT */
/* PostgreSQL access: a small connection pool, parameterized queries, migrations. */
#ifndef P2PCDN_PG_H
#define P2PCDN_PG_H

#include <libpq-fe.h>
#include <stdbool.h>

/*
 * A fixed-size pool of libpq connections. pg_acquire blocks up to
 * acquire_timeout_ms for a free connection; a connection found broken is
 * reset on the next acquire. Only parameterized statements (PQexecParams)
 * go through pg_query; there is no string-building helper on purpose.
 */
struct pg_pool;

/* conninfo is a libpq connection string or URI. Opens `size` connections
 * now. Returns NULL with *ret_err = -ECONNREFUSED (the first connection
 * failed; its libpq message is copied into errbuf) or -ENOMEM. */
struct pg_pool *pg_pool_new(const char *conninfo, int size, int acquire_timeout_ms, int *ret_err,
			    char *errbuf, size_t errsize);

/* Closes every connection. All connections must have been released.
 * NULL-safe. */
void pg_pool_free(struct pg_pool *p);

/* Returns a connection for exclusive use by the calling thread, or NULL
 * with errno = ETIMEDOUT (pool exhausted) or ECONNREFUSED (server down).
 * Give it back with pg_release. */
PGconn *pg_acquire(struct pg_pool *p);
void pg_release(struct pg_pool *p, PGconn *c);

/* Runs a parameterized statement (text params, text results). Returns the
 * result (caller PQclear()s) when the status is PGRES_COMMAND_OK or
 * PGRES_TUPLES_OK; otherwise PQclear()s it, copies the server message into
 * errbuf (if non-NULL) and returns NULL. For SQLSTATE-specific handling
 * (unique violation etc.) *ret_sqlstate (6 bytes incl. NUL) gets the code
 * when non-NULL. */
PGresult *pg_query(PGconn *c, const char *sql, int nparams, const char *const *params, char *errbuf,
		   size_t errsize, char ret_sqlstate[6]);

/* Same as pg_query for statements without results of interest: 0, or -EIO. */
int pg_exec(PGconn *c, const char *sql, int nparams, const char *const *params, char *errbuf,
	    size_t errsize);

/* 0 if the server answers SELECT 1, negative errno otherwise. For /readyz. */
int pg_ping(struct pg_pool *p);

/* Schema migrations compiled into the binary from deploy/sql/NNNN_*.sql
 * (generated: build/gen/schema.c). Version = the NNNN of the newest. */
struct pg_migration {
	int version;
	const char *name;
	const char *sql;
};
extern const struct pg_migration pg_migrations[];
extern const int pg_migration_count;

/* The newest schema version this binary knows. */
int pg_schema_latest(void);

/* Reads the applied version (0 on an empty database). Returns 0 or -EIO. */
int pg_schema_version(PGconn *c, int *ret_version);

/* Applies every pending migration, each in its own transaction, under an
 * advisory lock so two daemons migrating at once do not race. Returns the
 * number applied (>= 0) or -EIO with the server message in errbuf. */
int pg_migrate(PGconn *c, char *errbuf, size_t errsize);

/* Fails with -ESTALE (and a message in errbuf telling the operator to run
 * `--migrate`) when the database schema is older than `need`, -EIO on query
 * failure, 0 when fine. */
int pg_schema_require(PGconn *c, int need, char *errbuf, size_t errsize);

#endif
