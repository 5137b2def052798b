/* SPDX-License-Identifier: MIT */
/* What every daemon's [server] section shares: its keys, checks and listeners. */
#ifndef P2PCDN_SVC_H
#define P2PCDN_SVC_H

#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"
#include "http.h"
#include "pg.h"

/* The [server] rows of a daemon's config table (see docs/README.md).
 * Put SVC_SERVER_KEYS(...) first in the table. */
#define SVC_SERVER_KEYS(listen_def, admin_def, max_body_def, access_log_def)                            \
	{ "server", "listen", CFG_STR, listen_def,                                                      \
	  1,        1024,     false,   "public API addresses, comma separated" },                       \
		{ "server", "admin_listen",                                                             \
		  CFG_STR,  admin_def,                                                                  \
		  1,        1024,                                                                       \
		  false,    "admin listener: healthz, readyz, status, metrics, admin API" },            \
		{ "server", "threads", CFG_INT, "0", 0, 256, false, "HTTP worker threads (0 = CPUs)" }, \
		{ "server", "connection_limit",                                                         \
		  CFG_INT,  "20000",                                                                    \
		  16,       1000000,                                                                    \
		  false,    "max concurrent connections per listener" },                                \
		{ "server", "request_timeout_s",      CFG_INT, "30", 1, 3600,                           \
		  false,    "idle connection timeout" },                                                \
		{ "server", "max_body", CFG_INT, max_body_def,                                          \
		  256,      67108864,   false,   "max request body bytes" },                            \
		{ "server", "tls_cert", CFG_STR, "",                                                    \
		  0,        4096,       false,   "PEM certificate: HTTPS on the API" },                 \
		{ "server", "tls_key", CFG_STR, "", 0, 4096, false, "PEM private key for tls_cert" },   \
		{ "server", "trusted_proxies",                                                          \
		  CFG_STR,  "",                                                                         \
		  0,        4096,                                                                       \
		  true,     "CIDR list allowed to set X-Forwarded-For" },                               \
		{ "server", "admin_token",                                                              \
		  CFG_STR,  "",                                                                         \
		  0,        256,                                                                        \
		  true,     "bearer token for mutating admin endpoints (empty = disabled)" },           \
		{ "server", "access_log",                                                               \
		  CFG_BOOL, access_log_def,                                                             \
		  0,        1,                                                                          \
		  true,     "one log line per request" },                                               \
		{ "server", "log_level", CFG_STR, "info",                                               \
		  1,        16,          true,    "debug|info|notice|warning|err" },                    \
	{                                                                                               \
		"server", "drain_timeout_s", CFG_INT, "10", 0, 600, false,                              \
			"SIGTERM waits this long for requests in flight"                                \
	}

/* The [redis] rows of a daemon's config table; put them after
 * SVC_SERVER_KEYS. svc_rds_opts reads them back. */
#define SVC_REDIS_KEYS                                                                                  \
	{ "redis", "host", CFG_STR, "127.0.0.1", 1, 1024, false, "host or unix socket path" },          \
		{ "redis", "port", CFG_INT, "6379", 1, 65535, false, "TCP port" },                      \
		{ "redis", "password", CFG_STR, "", 0, 512, false, "AUTH password" },                   \
		{ "redis", "db", CFG_INT, "0", 0, 1000, false, "database number" },                     \
		{ "redis", "prefix", CFG_STR, "p2pcdn:", 0, 64, false, "prefix of every key" },         \
		{ "redis", "connect_timeout_ms", CFG_INT, "200", 10, 60000, false, "connect timeout" }, \
		{ "redis", "command_timeout_ms", CFG_INT, "500", 10, 60000, false, "command timeout" }, \
	{                                                                                               \
		"redis", "max_backoff_ms", CFG_INT, "2000", 10, 600000, false,                          \
			"fail fast this long at most while Redis is down"                               \
	}

struct rds_opts;
/* Fills ret from the [redis] keys of c (strings point into c). */
void svc_rds_opts(const struct cfg *c, struct rds_opts *ret);

/* Checks the [server] values the table alone cannot: log level, listen
 * addresses, TLS files readable and given together, trusted_proxies.
 * Returns 0, or -EINVAL with "server.KEY: ..." in err. */
int svc_validate(const struct cfg *c, char *err, size_t errsize);

/* Starts the public (api = true: listen, TLS) or admin listener from the
 * [server] keys. admin_token goes to the admin listener, and to the public
 * one only when api_admin is set (for daemons with token-guarded public
 * routes). Returns the server or NULL with a message in err. */
struct http_server *svc_listen(const struct cfg *c, bool api, bool api_admin,
			       const struct http_route *routes, size_t nroutes, void *arg,
			       struct met_registry *reg, struct http_metrics *m, bool keep_raw_uri,
			       char *err, size_t errsize);

/* Applies the reloadable [server] keys: log level, trusted proxies, access
 * log, admin token (admin listener; the public one too when api_admin). */
void svc_apply(const struct cfg *c, struct http_server *api, struct http_server *admin,
	       bool api_admin);

/* SIGHUP, the part every daemon shares: reads path against table, checks
 * it with validate, and on failure logs why ("keeping the running
 * configuration") and returns NULL. On success warns about non-reloadable
 * keys that differ from `running` and returns the new config (caller
 * frees). */
struct cfg *svc_reload_cfg(const struct cfg_key *table, size_t n, const char *path,
			   const struct cfg *running,
			   int (*validate)(const struct cfg *c, char *err, size_t errsize));

/* A pooled PostgreSQL connection for an admin or catalog handler, or NULL
 * after replying 503 postgres_unavailable ("the WHAT is unreachable"). */
PGconn *svc_pg_acquire(struct pg_pool *pg, struct http_req *req, const char *what);

/* --migrate: applies pending migrations on one pooled connection, prints
 * the schema version to stdout. Returns the process exit status. */
int svc_migrate(struct pg_pool *pg);

/* Start-up check that the database schema is the one this binary needs.
 * Returns 0, or a negative errno with the reason (incl. "run --migrate")
 * in err. */
int svc_schema_check(struct pg_pool *pg, char *err, size_t errsize);

/* The PostgreSQL part of start-up shared by every daemon: opens the pool
 * from [postgres] conninfo/pool_size; with `migrate` applies migrations and
 * reports; otherwise checks the schema version. Returns 0 with *ret set
 * (go on), 1 when --migrate finished (exit 0), or -1 after logging why
 * (exit 1; *ret set to the pool or NULL, to be freed by the caller). */
int svc_pg_start(const struct cfg *c, bool migrate, struct pg_pool **ret);

/* The signal loop of a started daemon: announces READY=1, calls reload on
 * SIGHUP and tick about once a second (either may be NULL), and on
 * SIGTERM/SIGINT announces STOPPING=1 and drains both listeners (api up to
 * [server] drain_timeout_s). Returns when the daemon should free and exit
 * 0. Main thread only. */
void svc_run(const struct cfg *c, struct http_server *api, struct http_server *admin,
	     void (*reload)(void *arg), void (*tick)(void *arg), void *arg);

#endif
