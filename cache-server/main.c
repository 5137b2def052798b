// SPDX-License-Identifier: MIT
/* cache-server: argv, config, start-up, the signal loop and teardown. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dmn.h"
#include "log.h"
#include "svc.h"
#include "cache.h"

#define CACHE_SUMMARY "live chunk store, pulls between domains, VOD web seed (seed 001 §3.2–3.3)"

/* The reloadable [pull] keys, as atomics the loop thread reads. */
static void
cache_apply(struct cache_env *env, const struct cfg *c)
{
	long long lag = cfg_int(c, "pull", "play_lag_chunks");

	atomic_store(&env->pull_interval_ms, (int)cfg_int(c, "pull", "interval_ms"));
	atomic_store(&env->pull_timeout_ms, (int)cfg_int(c, "pull", "timeout_ms"));
	atomic_store(&env->pull_min, (int)cfg_int(c, "pull", "min_requests"));
	atomic_store(&env->pull_k100, (int)cfg_int(c, "pull", "upper_k_percent"));
	atomic_store(&env->pull_dead_after, (int)cfg_int(c, "pull", "dead_after"));
	atomic_store(&env->pull_idle_s, (int)cfg_int(c, "pull", "idle_s"));
	atomic_store(&env->pull_max_inflight, (int)cfg_int(c, "pull", "max_in_flight"));
	atomic_store(&env->pull_lag, (int)(lag ? lag : (long long)env->so.window / 4));
}

static void
cache_reload(void *arg)
{
	struct cache_env *env = arg;
	struct cfg *c;

	c = svc_reload_cfg(cache_cfg_table, cache_cfg_n, env->cfg_path, env->cfg0, cache_validate);
	if (c) {
		svc_apply(c, env->api, env->admin, false);
		cache_apply(env, c);
		cfg_free(c);
		log_notice("configuration reloaded from %s", env->cfg_path);
	}
}

/* Loop thread, once a second: drops idle channels (and their pulls) and
 * refreshes the registry every registry_ttl_s / 3. */
static void
cache_maint_tick(void *arg)
{
	struct cache_env *env = arg;
	long long now = dmn_now_ms();
	size_t before = env->ngone;

	cache_store_expire(env->store, now, env->channel_idle_ms, cache_reg_gone, env);
	for (size_t i = before; i < env->ngone; i++) {
		log_info("channel %s dropped: idle for %llds", env->gone[i],
			 env->channel_idle_ms / 1000);
		cache_pull_forget(env, env->gone[i]);
	}
	if (now >= env->next_registry_ms) {
		cache_reg_refresh(env);
		env->next_registry_ms = now + (long long)env->registry_ttl_s * 1000 / 3;
	}
	evl_call_later(env->loop, 1000, cache_maint_tick, env);
}

/* Main thread, once a second: outgoing bytes/s and viewers over 10 s. */
static void
cache_sample(void *arg)
{
	struct cache_env *env = arg;
	unsigned long long b = atomic_load(&env->bytes_out), g = atomic_load(&env->gets);
	unsigned oldest;
	double per_s;

	env->ring_pos = (env->ring_pos + 1) % 11;
	env->ring_bytes[env->ring_pos] = b;
	env->ring_gets[env->ring_pos] = g;
	/* The slot after the newest is the oldest: ten seconds back. */
	oldest = (env->ring_pos + 1) % 11;
	atomic_store(&env->load_bps, (long long)((b - env->ring_bytes[oldest]) / 10));
	/* A viewer fetches one chunk per chunk_ms: chunk GETs per second
	 * divided by that rate is the number of full-rate streams served. */
	per_s = (double)(g - env->ring_gets[oldest]) / 10.0;
	atomic_store(&env->viewers, (long long)(per_s * env->so.chunk_ms / 1000.0 + 0.5));
}

static void
cache_collect(void *arg)
{
	struct cache_env *env = arg;
	struct cache_store_stats ss;
	struct cache_pull_stats ps;

	cache_store_stats(env->store, &ss);
	cache_pull_stats(env, &ps);
	met_set(env->m.channels, (double)ss.channels);
	met_set(env->m.memory, (double)ss.bytes);
	met_set(env->m.chunks_out, (double)ss.chunks_out);
	met_set(env->m.bytes_live, (double)ss.bytes_out);
	met_set(env->m.load, (double)atomic_load(&env->load_bps));
	met_set(env->m.viewers, (double)atomic_load(&env->viewers));
	met_set(env->m.pull_active, (double)ps.active);
	met_set(env->m.pull_src_ok, (double)ps.sources_ok);
	met_set(env->m.pull_src_dead, (double)ps.sources_dead);
	met_set(env->m.pull_dead_total, (double)ps.dead_total);
	met_set(env->m.pull_ratio, ps.issued ? (double)ps.completed / (double)ps.issued : 0);
	svc_metrics_collect(&env->m.std, env->rds, env->ra, env->started_ms);
	met_set(met_child(env->m.chunks_in, "pull"), (double)ss.chunks_in_pull);
}

/* The average window fill over channels, computed on demand. */
static void
cache_fill_acc(const struct cache_chan_info *i, void *arg)
{
	double *acc = arg;
	acc[0] += i->size ? (double)i->held / i->size : 0;
	acc[1] += 1;
}

static void
cache_collect_fill(void *arg)
{
	struct cache_env *env = arg;
	double acc[2] = { 0, 0 };
	cache_store_foreach(env->store, cache_fill_acc, acc);
	met_set(env->m.fill, acc[1] > 0 ? acc[0] / acc[1] : 0);
}

static int
cache_metrics_init(struct cache_env *env)
{
	struct met_registry *r = env->reg;
	struct cache_metrics *m = &env->m;

	if (http_metrics_init(&env->http_metrics, r) < 0)
		return -ENOMEM;
	m->chunks_in = met_new(r, MET_COUNTER, "p2pcdn_cache_chunks_in_total",
			       "Chunks stored, by origin (publish, pull).", "from", NULL, 0);
	m->refused = met_new(r, MET_COUNTER, "p2pcdn_cache_chunks_refused_total",
			     "Chunk uploads refused, by reason.", "reason", NULL, 0);
	m->pull_reqs = met_new(r, MET_COUNTER, "p2pcdn_cache_pull_requests_total",
			       "Chunk requests of pulls, by result.", "result", NULL, 0);
	m->chunks_out =
		met_scalar(r, MET_COUNTER, "p2pcdn_cache_chunks_out_total", "Live chunks served.");
	m->bytes_live = met_scalar(r, MET_COUNTER, "p2pcdn_cache_live_bytes_served_total",
				   "Bytes of live chunks served.");
	m->bytes_vod = met_scalar(r, MET_COUNTER, "p2pcdn_cache_vod_bytes_served_total",
				  "Bytes of VOD files served.");
	m->channels = met_scalar(r, MET_GAUGE, "p2pcdn_cache_channels", "Live channels held.");
	m->memory = met_scalar(r, MET_GAUGE, "p2pcdn_cache_memory_bytes",
			       "Bytes held by chunks (headers included).");
	m->memory_max = met_scalar(r, MET_GAUGE, "p2pcdn_cache_memory_limit_bytes",
				   "Configured memory_max_bytes.");
	m->fill = met_scalar(r, MET_GAUGE, "p2pcdn_cache_window_fill_ratio",
			     "Held chunks / window size, averaged over channels.");
	m->load = met_scalar(r, MET_GAUGE, "p2pcdn_cache_load_bytes_per_second",
			     "Outgoing bytes per second over the last 10 s.");
	m->viewers = met_scalar(r, MET_GAUGE, "p2pcdn_cache_viewers",
				"Full-rate live streams served (chunk GETs/s x chunk duration).");
	m->pull_active =
		met_scalar(r, MET_GAUGE, "p2pcdn_cache_pulls_active", "Channels being pulled.");
	m->pull_src_ok = met_scalar(r, MET_GAUGE, "p2pcdn_cache_pull_sources_ok",
				    "Live sources of active pulls.");
	m->pull_src_dead = met_scalar(r, MET_GAUGE, "p2pcdn_cache_pull_sources_dead",
				      "Sources dropped as dead, of pulls still known.");
	m->pull_dead_total = met_scalar(r, MET_COUNTER, "p2pcdn_cache_pull_sources_dead_total",
					"Sources ever declared dead.");
	m->pull_ratio = met_scalar(r, MET_GAUGE, "p2pcdn_cache_pull_completion_ratio",
				   "Completed / issued chunk requests of all pulls.");
	if (!m->chunks_in || !m->refused || !m->pull_reqs || !m->chunks_out || !m->bytes_live ||
	    !m->bytes_vod || !m->channels || !m->memory || !m->memory_max || !m->fill || !m->load ||
	    !m->viewers || !m->pull_active || !m->pull_src_ok || !m->pull_src_dead ||
	    !m->pull_dead_total || !m->pull_ratio || svc_metrics_init(r, &m->std, true) < 0)
		return -ENOMEM;
	met_set(m->memory_max, (double)env->so.memory_max);
	if (met_add_collector(r, cache_collect, env) < 0)
		return -ENOMEM;
	return met_add_collector(r, cache_collect_fill, env);
}

/* Id, URL and VOD directory from the config. 0 or -1 after logging. */
static int
cache_identity(struct cache_env *env, const struct cfg *c, char *err, size_t errsize)
{
	const char *listen = cfg_str(c, "server", "listen");
	const char *id = cfg_str(c, "cache", "id"), *url = cfg_str(c, "cache", "public_url");
	size_t n = strcspn(listen, ", \t");
	char host[256] = "cache";

	if (*url) {
		snprintf(env->url, sizeof(env->url), "%s", url);
		n = strlen(env->url);
		while (n > 0 && env->url[n - 1] == '/')
			env->url[--n] = '\0';
	} else {
		snprintf(env->url, sizeof(env->url), "http://%.*s", (int)n, listen);
	}
	if (*id) {
		snprintf(env->id, sizeof(env->id), "%s", id);
	} else {
		const char *port = memrchr(listen, ':', n);
		gethostname(host, sizeof(host) - 1);
		host[strcspn(host, ".")] = '\0';
		snprintf(env->id, sizeof(env->id), "%.40s-%.*s", host,
			 port ? (int)(n - (size_t)(port + 1 - listen)) : 0, port ? port + 1 : "");
	}
	snprintf(env->domain, sizeof(env->domain), "%s", cfg_str(c, "cache", "domain"));
	env->vod_fd = -1;
	if (*cfg_str(c, "vod", "root")) {
		env->vod_fd = open(cfg_str(c, "vod", "root"), O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (env->vod_fd < 0) {
			snprintf(err, errsize, "vod.root: %s: %s", cfg_str(c, "vod", "root"),
				 strerror(errno));
			return -1;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	const struct svc_daemon boot = {
		.name = "cache-server",
		.summary = CACHE_SUMMARY,
		.table = cache_cfg_table,
		.n = cache_cfg_n,
		.validate = cache_validate,
		.own_check = true, /* after cache_identity opens vod.root */
	};
	static const struct svc_hooks hooks = { .reload = cache_reload, .tick = cache_sample };
	const struct svc_listeners listeners = {
		.api = cache_api_routes,
		.napi = cache_api_nroutes,
		.admin = cache_admin_routes,
		.nadmin = cache_admin_nroutes,
	};
	struct cache_env env = { .vod_fd = -1 };
	struct cfg_args args;
	char err[1024];
	int r, ret = 1;

	r = svc_boot(&boot, argc, argv, &args, &env.cfg0);
	if (r >= 0)
		return r;
	env.cfg_path = args.config;
	if (cache_identity(&env, env.cfg0, err, sizeof(err)) < 0) {
		fprintf(stderr, "cache-server: %s: %s\n", args.config, err);
		cfg_free(env.cfg0);
		return 1;
	}
	if (args.check || args.migrate) {
		/* No PostgreSQL here: --migrate has nothing to do. */
		if (args.migrate)
			printf("cache-server uses no database; nothing to migrate\n");
		else
			printf("%s: configuration OK\n", args.config);
		if (env.vod_fd >= 0)
			close(env.vod_fd);
		cfg_free(env.cfg0);
		return 0;
	}
	pthread_mutex_init(&env.pull_lock, NULL);
	env.started_ms = dmn_now_ms();
	tok_key_parse(cfg_str(env.cfg0, "cache", "token_key"), &env.key);
	env.so = (struct cache_store_opts){
		.window = (uint32_t)cfg_int(env.cfg0, "cache", "window_chunks"),
		.chunk_ms = (uint32_t)cfg_int(env.cfg0, "cache", "chunk_ms"),
		.chunk_max = (size_t)cfg_int(env.cfg0, "cache", "max_chunk_bytes"),
		.memory_max = (size_t)cfg_int(env.cfg0, "cache", "memory_max_bytes"),
		.channel_max = (size_t)cfg_int(env.cfg0, "cache", "channel_max_bytes"),
		.max_channels = (size_t)cfg_int(env.cfg0, "cache", "max_channels"),
	};
	env.registry_ttl_s = (unsigned)cfg_int(env.cfg0, "cache", "registry_ttl_s");
	env.capacity = cfg_int(env.cfg0, "cache", "capacity_bytes_per_s");
	env.channel_idle_ms = cfg_int(env.cfg0, "cache", "channel_idle_s") * 1000;
	cache_apply(&env, env.cfg0);

	env.reg = met_registry_new();
	env.store = cache_store_new(&env.so);
	if (!env.reg || !env.store || cache_metrics_init(&env) < 0) {
		log_err("out of memory setting up");
		goto out;
	}
	struct rds_opts ro;
	if (svc_redis_open(env.cfg0, "the registry is refreshed once it does", &ro, &env.rds,
			   &env.loop, &env.ra) < 0)
		goto out;
	if (svc_listen(env.cfg0, &listeners, &env, env.reg, &env.http_metrics, &env.api,
		       &env.admin) < 0)
		goto out;
	if (evl_call(env.loop, cache_maint_tick, &env) < 0 ||
	    evl_call(env.loop, cache_pull_tick, &env) < 0) {
		log_err("cannot schedule the loop's work");
		goto out;
	}
	log_notice("ready: %s (domain %s) api on %s as %s, admin on %s, window %u x %u ms%s",
		   env.id, env.domain, cfg_str(env.cfg0, "server", "listen"), env.url,
		   cfg_str(env.cfg0, "server", "admin_listen"), env.so.window, env.so.chunk_ms,
		   env.vod_fd >= 0 ? ", VOD on" : "");
	svc_run(env.cfg0, env.api, env.admin, &hooks, &env);
	ret = 0;
out:
	/* Stop pulls from starting anything new, then the listeners, then the
	 * loop (in-flight pull requests complete with -ECANCELED there). */
	pthread_mutex_lock(&env.pull_lock);
	env.stopping = true;
	pthread_mutex_unlock(&env.pull_lock);
	rds_async_close(env.ra);
	http_server_free(env.api);
	http_server_free(env.admin);
	evl_free(env.loop);
	env.loop = NULL;
	if (ret == 0 && env.rds && env.store)
		cache_reg_remove(&env);
	if (ret == 0)
		log_notice("stopped");
	cache_pull_free_all(&env);
	rds_async_free(env.ra);
	rds_free(env.rds);
	cache_store_free(env.store);
	for (size_t i = 0; i < env.ngone; i++)
		free(env.gone[i]);
	free(env.gone);
	if (env.vod_fd >= 0)
		close(env.vod_fd);
	met_registry_free(env.reg);
	tok_key_wipe(&env.key);
	cfg_free(env.cfg0);
	pthread_mutex_destroy(&env.pull_lock);
	return ret;
}
