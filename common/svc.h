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

struct rds;
struct rds_opts;
/* Fills ret from the [redis] keys of c (strings point into c). */
void svc_rds_opts(const struct cfg *c, struct rds_opts *ret);

/* Checks the [server] values the table alone cannot: log level, listen
 * addresses, TLS files readable and given together, trusted_proxies.
 * Returns 0, or -EINVAL with "server.KEY: ..." in err. */
int svc_validate(const struct cfg *c, char *err, size_t errsize);

/* The routes of a daemon's two listeners and how the public one differs. */
struct svc_listeners {
	const struct http_route *api, *admin;
	size_t napi, nadmin;
	bool api_admin;    /* admin_token guards token routes of the public listener too */
	bool keep_raw_uri; /* the public listener's handlers read the raw query string */
	bool api_deadline; /* a whole-request deadline of request_timeout_s on the public
			    * listener, so slow clients cannot hold its connections */
};

/* Starts the public listener (listen, TLS) and then the admin listener
 * from the [server] keys, with arg, reg and m for both. admin_token goes
 * to the admin listener, and to the public one only with l->api_admin.
 * Returns 0, or -1 after logging why; either way *ret_api and *ret_admin
 * hold what started (NULL otherwise), for the caller to free. */
int svc_listen(const struct cfg *c, const struct svc_listeners *l, void *arg,
	       struct met_registry *reg, struct http_metrics *m, struct http_server **ret_api,
	       struct http_server **ret_admin);

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

/* GET /readyz: pings Redis (rds) and PostgreSQL (pg), either NULL when
 * the daemon has none, and answers {"redis": "ok"|"unreachable",
 * "postgres": ...} plus the members of extra (stolen, may be NULL): 200
 * when all answered, else 503 with Retry-After. Request threads. */
void svc_readyz(struct http_req *req, struct rds *rds, struct pg_pool *pg, json_t *extra);

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

/* What a daemon's start-up tells svc_boot. */
struct svc_daemon {
	const char *name;    /* log prefix, --help and --version */
	const char *summary; /* one line for --help */
	const struct cfg_key *table;
	size_t n;
	/* Checks what the table cannot; "KEY: ..." in err, as svc_validate. */
	int (*validate)(const struct cfg *c, char *err, size_t errsize);
	/* Non-NULL: the daemon keeps no PostgreSQL state, --migrate prints
	 * this line and exits 0 before the config is read. */
	const char *no_migrate;
	/* The caller answers --check-config itself (it opens more than the
	 * validate function does); otherwise svc_boot prints "FILE:
	 * configuration OK" and exits 0. */
	bool own_check;
};

/* The start-up every daemon shares: signals and libsodium, log_init,
 * argv (cfg_args_parse into args), the config file with d->validate
 * ("NAME: FILE: err" on stderr), the log level, and --check-config and
 * --migrate as d says. Returns -1 with *ret_cfg set (caller frees) when
 * the daemon should go on, or the process exit status (0 after --help,
 * --version or a handled --check-config/--migrate, 1 on an error, 2 on a
 * usage error). Main thread, before any other thread starts. */
int svc_boot(const struct svc_daemon *d, int argc, char **argv, struct cfg_args *args,
	     struct cfg **ret_cfg);

struct evl;
struct rds_async;
struct met_child;

/* The Redis clients of a daemon from the [redis] keys: the blocking one,
 * the event loop and the pipelined one on it. ro (caller's storage, its
 * strings point into c) receives the options. A Redis that does not
 * answer yet is only warned about: "Redis at HOST:PORT is not answering
 * yet; UNTIL". Returns 0, or -ENOMEM after logging (what was made is in
 * the ret_ pointers, for the caller to free). */
int svc_redis_open(const struct cfg *c, const char *until, struct rds_opts *ro,
		   struct rds **ret_rds, struct evl **ret_loop, struct rds_async **ret_ra);

/* The metrics every daemon exports besides the HTTP ones (docs/README.md):
 * p2pcdn_redis_up, _commands_total, _errors_total (with_redis),
 * p2pcdn_uptime_seconds and p2pcdn_build_info. */
struct svc_metrics {
	struct met_child *redis_up, *redis_commands, *redis_errors, *uptime;
};

/* Registers them in r. Returns 0 or -ENOMEM. */
int svc_metrics_init(struct met_registry *r, struct svc_metrics *m, bool with_redis);

/* Sets them, for a daemon's collector: Redis counters summed over the
 * blocking and the pipelined client (either may be NULL), uptime from
 * started_ms (dmn_now_ms at start). Any thread. */
void svc_metrics_collect(const struct svc_metrics *m, const struct rds *rds,
			 const struct rds_async *ra, long long started_ms);

/* What a daemon adds to svc_run, each optional (NULL), each called on the
 * main thread with svc_run's arg: reload on SIGHUP (between RELOADING=1
 * and READY=1), tick about once a second, pre_drain after STOPPING=1 and
 * before the listeners drain (e.g. to answer parked long-polls). */
struct svc_hooks {
	void (*reload)(void *arg);
	void (*tick)(void *arg);
	void (*pre_drain)(void *arg);
};

/* The signal loop alone: announces READY=1, runs h->reload and h->tick
 * (h may be NULL), and returns after announcing STOPPING=1 on
 * SIGTERM/SIGINT. For daemons with a stop sequence of their own. Main
 * thread only. */
void svc_loop(const struct svc_hooks *h, void *arg);

/* svc_loop, then h->pre_drain, then drains both listeners (api up to
 * [server] drain_timeout_s). Returns when the daemon should free and exit
 * 0. Main thread only. */
void svc_run(const struct cfg *c, struct http_server *api, struct http_server *admin,
	     const struct svc_hooks *h, void *arg);

#endif
