// SPDX-License-Identifier: MIT
/* What every daemon's [server] section shares: its keys, checks and listeners. */
#include "svc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "dmn.h"
#include "log.h"
#include "pg.h"
#include "rds.h"

int
svc_validate(const struct cfg *c, char *err, size_t errsize)
{
	static const char *const listeners[] = { "listen", "admin_listen" };
	const char *cert = cfg_str(c, "server", "tls_cert"), *key = cfg_str(c, "server", "tls_key");
	struct addr_list *l;
	char msg[256];
	size_t pos;
	int e;

	if (log_parse_level(cfg_str(c, "server", "log_level")) < 0) {
		snprintf(err, errsize,
			 "server.log_level: \"%s\" is not debug, info, notice, warning or err",
			 cfg_str(c, "server", "log_level"));
		return -EINVAL;
	}
	for (size_t i = 0; i < 2; i++) {
		if (http_listen_check(cfg_str(c, "server", listeners[i]), msg, sizeof(msg)) < 0) {
			snprintf(err, errsize, "server.%s: %s", listeners[i], msg);
			return -EINVAL;
		}
	}
	if (!*cert != !*key) {
		snprintf(err, errsize, "server.tls_cert and server.tls_key must be set together");
		return -EINVAL;
	}
	const char *const tls[] = { cert, key };
	for (size_t i = 0; i < 2 && *cert; i++) {
		FILE *f = fopen(tls[i], "re");
		char b;
		if (!f || (fread(&b, 1, 1, f) != 1 && ferror(f))) {
			snprintf(err, errsize, "server.%s: %s: %s", i ? "tls_key" : "tls_cert",
				 tls[i], f ? "cannot be read" : strerror(errno));
			if (f)
				fclose(f);
			return -EINVAL;
		}
		fclose(f);
	}
	l = addr_list_parse(cfg_str(c, "server", "trusted_proxies"), &e, &pos);
	if (!l) {
		snprintf(err, errsize, "server.trusted_proxies: bad entry at offset %zu", pos);
		return -EINVAL;
	}
	addr_list_free(l);
	return 0;
}

struct http_server *
svc_listen(const struct cfg *c, bool api, bool api_admin, const struct http_route *routes,
	   size_t nroutes, void *arg, struct met_registry *reg, struct http_metrics *m,
	   bool keep_raw_uri, char *err, size_t errsize)
{
	struct http_server_opts o = {
		.name = api ? "api" : "admin",
		.listen = cfg_str(c, "server", api ? "listen" : "admin_listen"),
		.threads = (unsigned)cfg_int(c, "server", "threads"),
		.connection_limit = (unsigned)cfg_int(c, "server", "connection_limit"),
		.timeout_s = (unsigned)cfg_int(c, "server", "request_timeout_s"),
		.max_body = (size_t)cfg_int(c, "server", "max_body"),
		.tls_cert_file = api ? cfg_str(c, "server", "tls_cert") : NULL,
		.tls_key_file = api ? cfg_str(c, "server", "tls_key") : NULL,
		.access_log = cfg_bool(c, "server", "access_log"),
		.routes = routes,
		.nroutes = nroutes,
		.arg = arg,
		.registry = reg,
		.metrics = m,
		.trusted = addr_list_parse(cfg_str(c, "server", "trusted_proxies"), NULL, NULL),
		.admin_token = !api || api_admin ? cfg_str(c, "server", "admin_token") : NULL,
		.keep_raw_uri = keep_raw_uri,
	};
	return http_server_start(&o, err, errsize);
}

void
svc_apply(const struct cfg *c, struct http_server *api, struct http_server *admin, bool api_admin)
{
	const char *tp = cfg_str(c, "server", "trusted_proxies");
	struct http_server *both[2] = { api, admin };

	log_set_level(log_parse_level(cfg_str(c, "server", "log_level")));
	for (size_t i = 0; i < 2; i++) {
		if (!both[i])
			continue;
		http_server_set_trusted(both[i], addr_list_parse(tp, NULL, NULL));
		http_server_set_access_log(both[i], cfg_bool(c, "server", "access_log"));
		if (i == 1 || api_admin)
			http_server_set_admin_token(both[i], cfg_str(c, "server", "admin_token"));
	}
}

int
svc_migrate(struct pg_pool *pg)
{
	char err[512];
	PGconn *c = pg_acquire(pg);
	int n;

	if (!c) {
		log_err("migrate: no PostgreSQL connection");
		return 1;
	}
	n = pg_migrate(c, err, sizeof(err));
	pg_release(pg, c);
	if (n < 0) {
		log_err("migrate failed: %s", err);
		return 1;
	}
	printf("schema at version %d (%d migration%s applied)\n", pg_schema_latest(), n,
	       n == 1 ? "" : "s");
	return 0;
}

int
svc_schema_check(struct pg_pool *pg, char *err, size_t errsize)
{
	PGconn *c = pg_acquire(pg);
	int r;

	if (!c) {
		snprintf(err, errsize, "no PostgreSQL connection");
		return -EIO;
	}
	r = pg_schema_require(c, pg_schema_latest(), err, errsize);
	pg_release(pg, c);
	return r;
}

int
svc_pg_start(const struct cfg *c, bool migrate, struct pg_pool **ret)
{
	char err[512];
	int r;

	*ret = pg_pool_new(cfg_str(c, "postgres", "conninfo"),
			   (int)cfg_int(c, "postgres", "pool_size"), 5000, &r, err, sizeof(err));
	if (!*ret) {
		log_err("PostgreSQL: cannot connect (postgres.conninfo): %s", err);
		return -1;
	}
	if (migrate)
		return svc_migrate(*ret) == 0 ? 1 : -1;
	if (svc_schema_check(*ret, err, sizeof(err)) < 0) {
		log_err("PostgreSQL schema: %s", err);
		return -1;
	}
	return 0;
}

struct cfg *
svc_reload_cfg(const struct cfg_key *table, size_t n, const char *path, const struct cfg *running,
	       int (*validate)(const struct cfg *c, char *err, size_t errsize))
{
	char err[512], fixed[512];
	struct cfg *c = cfg_load(table, n, path, err, sizeof(err));

	if (!c) {
		log_err("reload failed, keeping the running configuration: %s", err);
		return NULL;
	}
	if (validate(c, err, sizeof(err)) < 0) {
		log_err("reload failed, keeping the running configuration: %s: %s", path, err);
		cfg_free(c);
		return NULL;
	}
	if (cfg_diff_fixed(running, c, fixed, sizeof(fixed)) > 0)
		log_warn("reload: %s changed but only take effect after a restart", fixed);
	return c;
}

PGconn *
svc_pg_acquire(struct pg_pool *pg, struct http_req *req, const char *what)
{
	PGconn *c = pg_acquire(pg);
	if (!c)
		http_reply_retry(req, 503, 2, "postgres_unavailable", "the %s is unreachable",
				 what);
	return c;
}

void
svc_run(const struct cfg *c, struct http_server *api, struct http_server *admin,
	void (*reload)(void *arg), void (*tick)(void *arg), void *arg)
{
	dmn_notify("READY=1");
	for (;;) {
		enum dmn_event ev = dmn_wait(1000);
		if (ev == DMN_STOP)
			break;
		if (ev == DMN_RELOAD) {
			if (reload)
				reload(arg);
		} else if (tick) {
			tick(arg);
		}
	}
	dmn_notify("STOPPING=1");
	log_notice("stopping: draining requests in flight");
	http_server_drain(api, (int)cfg_int(c, "server", "drain_timeout_s") * 1000);
	http_server_drain(admin, 1000);
}

void
svc_rds_opts(const struct cfg *c, struct rds_opts *ret)
{
	*ret = (struct rds_opts){
		.host = cfg_str(c, "redis", "host"),
		.port = (int)cfg_int(c, "redis", "port"),
		.password = cfg_str(c, "redis", "password"),
		.db = (int)cfg_int(c, "redis", "db"),
		.prefix = cfg_str(c, "redis", "prefix"),
		.connect_timeout_ms = (int)cfg_int(c, "redis", "connect_timeout_ms"),
		.command_timeout_ms = (int)cfg_int(c, "redis", "command_timeout_ms"),
		.max_backoff_ms = (int)cfg_int(c, "redis", "max_backoff_ms"),
	};
}
