// SPDX-License-Identifier: MIT
/* index-server: argv, config, start-up, the signal loop and teardown. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmn.h"
#include "idx.h"
#include "log.h"
#include "sha1.h"
#include "svc.h"

#define IDX_SUMMARY "peer index, member lists, cache choice and publishing (seed 001 §2, §3.1)"

/* SIGHUP: build the new params aside; swap only when all of it is valid. */
static void
idx_reload(void *arg)
{
	struct idx_env *env = arg;
	char err[512];
	struct idx_params p;
	struct cfg *cfg;

	cfg = svc_reload_cfg(idx_cfg_table, idx_cfg_n, env->cfg_path, env->cfg0, idx_validate);
	if (!cfg)
		return;
	if (idx_params_from_cfg(cfg, &p, err, sizeof(err)) < 0) {
		log_err("reload failed, keeping the running configuration: %s", err);
		cfg_free(cfg);
		return;
	}
	svc_apply(cfg, env->api, env->admin, false);
	pthread_mutex_lock(&env->lock);
	tok_key_wipe(&env->params.key);
	env->params = p;
	pthread_mutex_unlock(&env->lock);
	tok_key_wipe(&p.key);
	cfg_free(cfg);
	log_notice("configuration reloaded from %s", env->cfg_path);
}

static void
idx_collect(void *arg)
{
	struct idx_env *env = arg;

	svc_metrics_collect(&env->m.std, env->rds, env->ra, env->started_ms);
	pthread_mutex_lock(&env->lock);
	met_set(env->m.channels, (double)env->last_channels);
	met_set(env->m.peers, (double)env->last_peers);
	met_set(env->m.largest, (double)env->last_largest);
	met_set(env->m.caches, (double)env->ncaches);
	pthread_mutex_unlock(&env->lock);
}

static int
idx_metrics_init(struct idx_env *env)
{
	static const double view_buckets[] = { 0, 1, 2, 4, 8, 16, 24, 32, 48, 64, 128, 256 };
	struct met_registry *r = env->reg;
	struct idx_metrics *m = &env->m;
	struct met *f;

	if (http_metrics_init(&env->http_metrics, r) < 0)
		return -ENOMEM;
	m->joins = met_scalar(r, MET_COUNTER, "p2pcdn_index_joins_total", "Successful joins.");
	m->heartbeats = met_scalar(r, MET_COUNTER, "p2pcdn_index_heartbeats_total",
				   "Heartbeats of members.");
	m->heartbeat_misses =
		met_scalar(r, MET_COUNTER, "p2pcdn_index_heartbeat_not_member_total",
			   "Heartbeats of peers that were not (or no longer) members: 404.");
	m->leaves = met_scalar(r, MET_COUNTER, "p2pcdn_index_leaves_total", "Leaves.");
	m->members = met_scalar(r, MET_COUNTER, "p2pcdn_index_member_lists_total",
				"GET /v1/channels/{ch}/members answered.");
	m->publishes = met_scalar(r, MET_COUNTER, "p2pcdn_index_publishes_total",
				  "Publish tokens issued.");
	m->pulls_started = met_scalar(r, MET_COUNTER, "p2pcdn_index_pulls_started_total",
				      "Pulls a cache of this domain accepted (POST /v1/pull).");
	m->pull_failures = met_new(r, MET_COUNTER, "p2pcdn_index_pull_failures_total",
				   "Pull starts that failed, by reason.", "reason", NULL, 0);
	m->join_errors = met_new(r, MET_COUNTER, "p2pcdn_index_join_errors_total",
				 "Joins answered with an error after validation, by reason.",
				 "reason", NULL, 0);
	f = met_new(r, MET_HISTOGRAM, "p2pcdn_index_view_size",
		    "Members returned per join / member list.", NULL, view_buckets,
		    sizeof(view_buckets) / sizeof(view_buckets[0]));
	m->view_size = f ? met_child(f) : NULL;
	m->channels = met_scalar(r, MET_GAUGE, "p2pcdn_index_channels",
				 "Channels with a swarm in this domain (last sweep).");
	m->peers = met_scalar(r, MET_GAUGE, "p2pcdn_index_peers",
			      "Live peers over all swarms of this domain (last sweep).");
	m->largest = met_scalar(r, MET_GAUGE, "p2pcdn_index_largest_swarm_peers",
				"Live peers of the largest swarm (last sweep).");
	m->caches = met_scalar(r, MET_GAUGE, "p2pcdn_index_caches",
			       "Live caches of this domain in the registry snapshot.");
	if (!m->joins || !m->heartbeats || !m->heartbeat_misses || !m->leaves || !m->members ||
	    !m->publishes || !m->pulls_started || !m->pull_failures || !m->join_errors ||
	    !m->view_size || !m->channels || !m->peers || !m->largest || !m->caches ||
	    svc_metrics_init(r, &m->std, true) < 0)
		return -ENOMEM;
	return met_add_collector(r, idx_collect, env);
}

static void
idx_sample(void *arg)
{
	struct idx_env *env = arg;
	unsigned long long j = atomic_load(&env->joins), h = atomic_load(&env->heartbeats);

	pthread_mutex_lock(&env->lock);
	env->ring_pos = (env->ring_pos + 1) % 11;
	env->ring_j[env->ring_pos] = j;
	env->ring_h[env->ring_pos] = h;
	/* The slot after the newest is the oldest: ten seconds back. */
	unsigned old = (env->ring_pos + 1) % 11;
	env->joins_per_s = (double)(j - env->ring_j[old]) / 10.0;
	env->heartbeats_per_s = (double)(h - env->ring_h[old]) / 10.0;
	pthread_mutex_unlock(&env->lock);
	idx_background_start(env);
}

int
main(int argc, char **argv)
{
	const struct svc_daemon boot = {
		.name = "index-server",
		.summary = IDX_SUMMARY,
		.table = idx_cfg_table,
		.n = idx_cfg_n,
		.validate = idx_validate,
		.no_migrate = "index-server keeps no PostgreSQL state: nothing to migrate",
	};
	static const struct svc_hooks hooks = { .reload = idx_reload, .tick = idx_sample };
	const struct svc_listeners listeners = {
		.api = idx_api_routes,
		.napi = idx_api_nroutes,
		.admin = idx_admin_routes,
		.nadmin = idx_admin_nroutes,
	};
	struct idx_env env = { 0 };
	struct cfg_args args;
	char err[1024];
	int r, ret = 1;

	r = svc_boot(&boot, argc, argv, &args, &env.cfg0);
	if (r >= 0)
		return r;
	env.cfg_path = args.config;
	pthread_mutex_init(&env.lock, NULL);
	env.started_ms = dmn_now_ms();
	snprintf(env.domain, sizeof(env.domain), "%s", cfg_str(env.cfg0, "index", "domain"));
	if (idx_params_from_cfg(env.cfg0, &env.params, err, sizeof(err)) < 0) {
		log_err("%s", err);
		goto out;
	}
	rds_script_init(&env.script, idx_script);
	{
		unsigned char rnd[8];
		randombytes_buf(rnd, sizeof(rnd));
		for (size_t i = 0; i < sizeof(rnd); i++)
			snprintf(env.instance + 2 * i, 3, "%02x", rnd[i]);
	}

	env.reg = met_registry_new();
	if (!env.reg || idx_metrics_init(&env) < 0) {
		log_err("out of memory setting up metrics");
		goto out;
	}
	struct rds_opts ro;
	if (svc_redis_open(env.cfg0, "joins answer 503 until it does", &ro, &env.rds, &env.loop,
			   &env.ra) < 0)
		goto out;
	idx_caches_load_sync(&env);

	if (svc_listen(env.cfg0, &listeners, &env, env.reg, &env.http_metrics, &env.api,
		       &env.admin) < 0)
		goto out;
	log_notice("ready: domain %s, api on %s, admin on %s, %zu caches in the registry",
		   env.domain, cfg_str(env.cfg0, "server", "listen"),
		   cfg_str(env.cfg0, "server", "admin_listen"), env.ncaches);
	svc_run(env.cfg0, env.api, env.admin, &hooks, &env);
	ret = 0;
	log_notice("stopped");
out:
	atomic_store(&env.stopping, true);
	/* Redis first: cancelling its commands resumes deferred requests,
	 * which the HTTP servers need before they can close. The loop goes
	 * before the servers too: its HTTP client callbacks (pull path) resume
	 * requests as well, with -ECANCELED. */
	rds_async_close(env.ra);
	evl_free(env.loop);
	env.loop = NULL;
	http_server_free(env.api);
	http_server_free(env.admin);
	rds_async_free(env.ra);
	rds_free(env.rds);
	met_registry_free(env.reg);
	tok_key_wipe(&env.params.key);
	cfg_free(env.cfg0);
	pthread_mutex_destroy(&env.lock);
	return ret;
}
