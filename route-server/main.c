// SPDX-License-Identifier: MIT
/* route-server: argv, config, start-up, the signal loop and teardown. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmn.h"
#include "log.h"
#include "route.h"
#include "svc.h"

#define ROUTE_SUMMARY "geo-IP PeerID allocation and domain routing (seed 001 §3.1.1)"

/* SIGHUP: build the new state aside; swap only when all of it loaded. */
static void
route_reload(void *arg)
{
	struct route_env *env = arg;
	char err[512];
	struct cfg *cfg;
	struct route_state *st;

	cfg = svc_reload_cfg(route_cfg_table, route_cfg_n, env->cfg_path, env->cfg0, svc_validate);
	if (!cfg)
		return;
	st = route_state_new(cfg, err, sizeof(err));
	if (!st) {
		log_err("reload failed, keeping the running configuration: %s", err);
		cfg_free(cfg);
		return;
	}
	svc_apply(cfg, env->api, env->admin, false);
	route_state_publish(env, st);
	route_refresh_soon(env);
	log_notice("configuration reloaded from %s", env->cfg_path);
}

static void
route_collect(void *arg)
{
	struct route_env *env = arg;
	svc_metrics_collect(&env->m.std, env->rds, env->ra, env->started_ms);
	pthread_mutex_lock(&env->lock);
	met_set(env->m.pending, (double)env->npending);
	pthread_mutex_unlock(&env->lock);
}

static int
route_metrics_init(struct route_env *env)
{
	struct met_registry *r = env->reg;

	if (http_metrics_init(&env->http_metrics, r) < 0)
		return -ENOMEM;
	env->m.allocations = met_new(r, MET_COUNTER, "p2pcdn_route_allocations_total",
				     "PeerIDs allocated, by domain.", "domain", NULL, 0);
	env->m.collisions = met_scalar(r, MET_COUNTER, "p2pcdn_route_peerid_collisions_total",
				       "Random node values that were already taken.");
	env->m.rate_limited = met_scalar(r, MET_COUNTER, "p2pcdn_route_rate_limited_total",
					 "Route requests refused with 429: over max_per_minute.");
	env->m.generation = met_scalar(r, MET_GAUGE, "p2pcdn_route_generation",
				       "Generation of the domains and rules loaded.");
	env->m.geo_misses =
		met_new(r, MET_COUNTER, "p2pcdn_route_geo_misses_total",
			"Route requests sent to the default domain for lack of geo data.", "reason",
			NULL, 0);
	env->m.pending = met_scalar(r, MET_GAUGE, "p2pcdn_route_pending_codes",
				    "Region/city names waiting for a code.");
	if (!env->m.allocations || !env->m.collisions || !env->m.rate_limited ||
	    !env->m.generation || !env->m.geo_misses || !env->m.pending ||
	    svc_metrics_init(r, &env->m.std, true) < 0)
		return -ENOMEM;
	return met_add_collector(r, route_collect, env);
}

static void
route_sample(void *arg)
{
	struct route_env *env = arg;
	unsigned long long now = atomic_load(&env->lookups);
	pthread_mutex_lock(&env->lock);
	env->ring_pos = (env->ring_pos + 1) % 11;
	env->lookup_ring[env->ring_pos] = now;
	/* The slot after the newest is the oldest: ten seconds back. */
	unsigned long long then = env->lookup_ring[(env->ring_pos + 1) % 11];
	env->lookups_per_s = (double)(now - then) / 10.0;
	pthread_mutex_unlock(&env->lock);
}

static const struct svc_hooks route_hooks = { .reload = route_reload, .tick = route_sample };

int
main(int argc, char **argv)
{
	const struct svc_daemon boot = {
		.name = "route-server",
		.summary = ROUTE_SUMMARY,
		.table = route_cfg_table,
		.n = route_cfg_n,
		.validate = svc_validate,
		.own_check = true, /* it opens the geo databases too */
	};
	const struct svc_listeners listeners = {
		.api = route_api_routes,
		.napi = route_api_nroutes,
		.admin = route_admin_routes,
		.nadmin = route_admin_nroutes,
	};
	struct route_env env = { 0 };
	struct cfg_args args;
	struct route_state *st = NULL;
	struct route_snap *snap = NULL;
	size_t ndomains = 0, nrules = 0;
	long long generation = 0;
	char err[1024];
	int r, ret = 1;

	r = svc_boot(&boot, argc, argv, &args, &env.cfg0);
	if (r >= 0)
		return r;
	env.cfg_path = args.config;
	pthread_mutex_init(&env.lock, NULL);
	pthread_mutex_init(&env.view_lock, NULL);
	pthread_cond_init(&env.wake, NULL);
	env.started_ms = dmn_now_ms();

	if (args.check) {
		/* Open the databases too: a path typo should fail here, not at start. */
		struct cfg *copy =
			cfg_load(route_cfg_table, route_cfg_n, args.config, err, sizeof(err));
		st = copy ? route_state_new(copy, err, sizeof(err)) : NULL;
		if (!st) {
			fprintf(stderr, "route-server: %s\n", err);
			cfg_free(copy);
			goto out;
		}
		printf("%s: configuration OK\n", args.config);
		route_state_free(st);
		st = NULL;
		ret = 0;
		goto out;
	}

	r = svc_pg_start(env.cfg0, args.migrate, &env.pg);
	if (r) {
		ret = r > 0 ? 0 : 1;
		goto out;
	}
	atomic_store(&env.pg_up, true);

	env.reg = met_registry_new();
	if (!env.reg || route_metrics_init(&env) < 0) {
		log_err("out of memory setting up metrics");
		goto out;
	}
	struct rds_opts ro;
	if (svc_redis_open(env.cfg0, "/v1/route answers 503 until it does", &ro, &env.rds,
			   &env.loop, &env.ra) < 0)
		goto out;

	struct cfg *cfg = cfg_load(route_cfg_table, route_cfg_n, args.config, err, sizeof(err));
	st = cfg ? route_state_new(cfg, err, sizeof(err)) : NULL;
	if (!st) {
		log_err("%s", err);
		cfg_free(cfg);
		goto out;
	}
	route_state_publish(&env, st);
	st = NULL;
	{
		PGconn *c = pg_acquire(env.pg);
		r = c ? route_snap_load(&env, c, &snap, err, sizeof(err)) : -EIO;
		if (c)
			pg_release(env.pg, c);
		if (r < 0) {
			log_err("loading domains and rules: %s",
				c ? err : "no PostgreSQL connection");
			goto out;
		}
		if (!route_snap_domain(snap, env.state->default_domain))
			log_warn("default domain \"%s\" does not exist yet: unmatched clients get "
				 "503 until an operator adds it",
				 env.state->default_domain);
		ndomains = snap->ndomains;
		nrules = snap->nrules;
		generation = snap->generation;
		route_snap_publish(&env, snap);
	}
	if (route_refresher_start(&env) < 0) {
		log_err("cannot start the refresher thread");
		goto out;
	}
	if (svc_listen(env.cfg0, &listeners, &env, env.reg, &env.http_metrics, &env.api,
		       &env.admin) < 0)
		goto out;
	log_notice("ready: api on %s, admin on %s, %zu domains, %zu rules, generation %lld",
		   cfg_str(env.cfg0, "server", "listen"),
		   cfg_str(env.cfg0, "server", "admin_listen"), ndomains, nrules, generation);
	svc_run(env.cfg0, env.api, env.admin, &route_hooks, &env);
	ret = 0;
	log_notice("stopped");
out:
	/* Redis first: cancelling its commands resumes deferred requests,
	 * which the HTTP servers need before they can close; a request still
	 * arriving then gets a 503 from the closed client, never freed memory. */
	rds_async_close(env.ra);
	http_server_free(env.api);
	http_server_free(env.admin);
	route_refresher_stop(&env);
	route_snap_publish(&env, NULL);
	route_state_publish(&env, NULL);
	rds_async_free(env.ra);
	rds_free(env.rds);
	evl_free(env.loop);
	pg_pool_free(env.pg);
	met_registry_free(env.reg);
	cfg_free(env.cfg0);
	pthread_cond_destroy(&env.wake);
	pthread_mutex_destroy(&env.lock);
	pthread_mutex_destroy(&env.view_lock);
	return ret;
}
