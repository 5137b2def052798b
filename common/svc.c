// SPDX-License-Identifier: MIT
/* What every daemon's [server] section shares: its keys, checks and listeners. */
#include "svc.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "dmn.h"
#include "evl.h"
#include "log.h"
#include "pg.h"
#include "met.h"
#include "rds.h"
#include "rds_async.h"

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

static struct http_server *
svc_listen_one(const struct cfg *c, bool api, const struct svc_listeners *l, void *arg,
	       struct met_registry *reg, struct http_metrics *m, char *err, size_t errsize)
{
	unsigned timeout_s = (unsigned)cfg_int(c, "server", "request_timeout_s");
	struct http_server_opts o = {
		.name = api ? "api" : "admin",
		.listen = cfg_str(c, "server", api ? "listen" : "admin_listen"),
		.threads = (unsigned)cfg_int(c, "server", "threads"),
		.connection_limit = (unsigned)cfg_int(c, "server", "connection_limit"),
		.timeout_s = timeout_s,
		.read_timeout_ms = api && l->api_deadline ? timeout_s * 1000 : 0,
		.max_body = (size_t)cfg_int(c, "server", "max_body"),
		.tls_cert_file = api ? cfg_str(c, "server", "tls_cert") : NULL,
		.tls_key_file = api ? cfg_str(c, "server", "tls_key") : NULL,
		.access_log = cfg_bool(c, "server", "access_log"),
		.routes = api ? l->api : l->admin,
		.nroutes = api ? l->napi : l->nadmin,
		.arg = arg,
		.registry = reg,
		.metrics = m,
		.trusted = addr_list_parse(cfg_str(c, "server", "trusted_proxies"), NULL, NULL),
		.admin_token = !api || l->api_admin ? cfg_str(c, "server", "admin_token") : NULL,
		.keep_raw_uri = api && l->keep_raw_uri,
	};
	return http_server_start(&o, err, errsize);
}

int
svc_listen(const struct cfg *c, const struct svc_listeners *l, void *arg, struct met_registry *reg,
	   struct http_metrics *m, struct http_server **ret_api, struct http_server **ret_admin)
{
	char err[1024];

	*ret_admin = NULL;
	*ret_api = svc_listen_one(c, true, l, arg, reg, m, err, sizeof(err));
	if (*ret_api)
		*ret_admin = svc_listen_one(c, false, l, arg, reg, m, err, sizeof(err));
	if (!*ret_admin) {
		log_err("%s", err);
		return -1;
	}
	return 0;
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

void
svc_readyz(struct http_req *req, struct rds *rds, struct pg_pool *pg, json_t *extra)
{
	json_t *o = json_object();
	bool up = true;

	if (rds) {
		bool ok = rds_ping(rds) == 0;
		json_object_set_new(o, "redis", json_string(ok ? "ok" : "unreachable"));
		up = up && ok;
	}
	if (pg) {
		bool ok = pg_ping(pg) == 0;
		json_object_set_new(o, "postgres", json_string(ok ? "ok" : "unreachable"));
		up = up && ok;
	}
	if (extra) {
		json_object_update(o, extra);
		json_decref(extra);
	}
	if (up) {
		http_reply_json(req, 200, o);
	} else {
		http_reply_header(req, "Retry-After", "1");
		http_reply_json(req, 503, o);
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
svc_loop(const struct svc_hooks *h, void *arg)
{
	dmn_notify("READY=1");
	for (;;) {
		enum dmn_event ev = dmn_wait(1000);
		if (ev == DMN_STOP)
			break;
		if (ev == DMN_RELOAD) {
			if (h && h->reload) {
				dmn_notify("RELOADING=1");
				h->reload(arg);
				dmn_notify("READY=1");
			}
		} else if (h && h->tick) {
			h->tick(arg);
		}
	}
	dmn_notify("STOPPING=1");
}

void
svc_run(const struct cfg *c, struct http_server *api, struct http_server *admin,
	const struct svc_hooks *h, void *arg)
{
	svc_loop(h, arg);
	if (h && h->pre_drain)
		h->pre_drain(arg);
	log_notice("stopping: draining requests in flight");
	http_server_drain(api, (int)cfg_int(c, "server", "drain_timeout_s") * 1000);
	http_server_drain(admin, 1000);
}

int
svc_boot(const struct svc_daemon *d, int argc, char **argv, struct cfg_args *args,
	 struct cfg **ret_cfg)
{
	char err[1024];
	struct cfg *c;
	int r;

	if (dmn_signals_init() < 0 || sodium_init() < 0) {
		fprintf(stderr, "%s: cannot set up signals or libsodium\n", d->name);
		return 1;
	}
	log_init(d->name);
	r = cfg_args_parse(argc, argv, d->name, d->summary, d->table, d->n, args);
	if (r)
		return r > 0 ? 0 : 2;
	if (args->migrate && d->no_migrate) {
		printf("%s\n", d->no_migrate);
		return 0;
	}
	c = cfg_load(d->table, d->n, args->config, err, sizeof(err));
	if (!c) {
		fprintf(stderr, "%s: %s\n", d->name, err);
		return 1;
	}
	if (d->validate(c, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s: %s\n", d->name, args->config, err);
		cfg_free(c);
		return 1;
	}
	if (args->check && !d->own_check) {
		printf("%s: configuration OK\n", args->config);
		cfg_free(c);
		return 0;
	}
	log_set_level(log_parse_level(cfg_str(c, "server", "log_level")));
	*ret_cfg = c;
	return -1;
}

int
svc_redis_open(const struct cfg *c, const char *until, struct rds_opts *ro, struct rds **ret_rds,
	       struct evl **ret_loop, struct rds_async **ret_ra)
{
	svc_rds_opts(c, ro);
	*ret_rds = rds_new(ro);
	*ret_loop = evl_new();
	*ret_ra = *ret_loop ? rds_async_new(*ret_loop, ro) : NULL;
	if (!*ret_rds || !*ret_ra) {
		log_err("out of memory setting up Redis");
		return -ENOMEM;
	}
	if (rds_ping(*ret_rds) < 0)
		log_warn("Redis at %s:%d is not answering yet; %s", ro->host, ro->port, until);
	return 0;
}

int
svc_metrics_init(struct met_registry *r, struct svc_metrics *m, bool with_redis)
{
	struct met *b;

	*m = (struct svc_metrics){ 0 };
	if (with_redis) {
		m->redis_up = met_scalar(r, MET_GAUGE, "p2pcdn_redis_up",
					 "1 when the last Redis call succeeded.");
		m->redis_commands = met_scalar(r, MET_COUNTER, "p2pcdn_redis_commands_total",
					       "Redis commands sent.");
		m->redis_errors = met_scalar(r, MET_COUNTER, "p2pcdn_redis_errors_total",
					     "Failed Redis calls.");
		if (!m->redis_up || !m->redis_commands || !m->redis_errors)
			return -ENOMEM;
	}
	m->uptime = met_scalar(r, MET_GAUGE, "p2pcdn_uptime_seconds", "Seconds since start.");
	b = met_new(r, MET_GAUGE, "p2pcdn_build_info", "Build version.", "version", NULL, 0);
	if (!m->uptime || !b)
		return -ENOMEM;
	met_set(met_child(b, P2PCDN_VERSION), 1);
	return 0;
}

void
svc_metrics_collect(const struct svc_metrics *m, const struct rds *rds, const struct rds_async *ra,
		    long long started_ms)
{
	struct rds_stats rs = { 0 }, as = { 0 };

	if (m->redis_up) {
		if (rds)
			rds_get_stats(rds, &rs);
		if (ra)
			rds_async_stats(ra, &as);
		met_set(m->redis_up, as.up || rs.up);
		met_set(m->redis_commands, (double)(rs.commands + as.commands));
		met_set(m->redis_errors, (double)(rs.errors + as.errors));
	}
	met_set(m->uptime, (double)(dmn_now_ms() - started_ms) / 1000.0);
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
