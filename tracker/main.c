// SPDX-License-Identifier: MIT
/* tracker: argv, config, start-up, the signal loop and teardown. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmn.h"
#include "log.h"
#include "svc.h"
#include "trk.h"

#define TRK_SUMMARY "BitTorrent tracker, program catalog and torrent store (seed 003 §3.2–3.3)"

/* Checks the [tracker] values the table alone cannot express. */
static int
trk_validate(const struct cfg *c, char *err, size_t errsize)
{
	const char *mode = cfg_str(c, "tracker", "mode");
	const char *udp = cfg_str(c, "tracker", "udp_listen");
	char msg[256];

	if (svc_validate(c, err, errsize) < 0)
		return -EINVAL;
	if (strcmp(mode, "open") != 0 && strcmp(mode, "whitelist") != 0) {
		snprintf(err, errsize, "tracker.mode: \"%s\" is not open or whitelist", mode);
		return -EINVAL;
	}
	if (*udp && http_listen_check(udp, msg, sizeof(msg)) < 0) {
		snprintf(err, errsize, "tracker.udp_listen: %s", msg);
		return -EINVAL;
	}
	if (cfg_int(c, "tracker", "min_interval_s") > cfg_int(c, "tracker", "interval_s")) {
		snprintf(err, errsize, "tracker.min_interval_s is above tracker.interval_s");
		return -EINVAL;
	}
	if (cfg_int(c, "tracker", "numwant_default") > cfg_int(c, "tracker", "numwant_max")) {
		snprintf(err, errsize, "tracker.numwant_default is above tracker.numwant_max");
		return -EINVAL;
	}
	return 0;
}

/* The settings announces read, as atomics. */
static void
trk_apply(struct trk_env *env, const struct cfg *c)
{
	atomic_store(&env->interval_s, (unsigned)cfg_int(c, "tracker", "interval_s"));
	atomic_store(&env->min_interval_s, (unsigned)cfg_int(c, "tracker", "min_interval_s"));
	atomic_store(&env->numwant_default, (unsigned)cfg_int(c, "tracker", "numwant_default"));
	atomic_store(&env->numwant_max, (unsigned)cfg_int(c, "tracker", "numwant_max"));
	atomic_store(&env->peer_timeout_s, (unsigned)cfg_int(c, "tracker", "peer_timeout_s"));
	atomic_store(&env->whitelist_mode, strcmp(cfg_str(c, "tracker", "mode"), "whitelist") == 0);
	atomic_store(&env->allow_ip_param, cfg_bool(c, "tracker", "allow_ip_param"));
	atomic_store(&env->full_scrape, cfg_bool(c, "tracker", "full_scrape"));
	atomic_store(&env->full_scrape_min_s, (unsigned)cfg_int(c, "tracker", "full_scrape_min_s"));
	atomic_store(&env->flush_s, (unsigned)cfg_int(c, "tracker", "flush_s"));
	atomic_store(&env->whitelist_refresh_s,
		     (unsigned)cfg_int(c, "tracker", "whitelist_refresh_s"));
}

/* SIGHUP. The tracker's reloadable keys are all plain values: validate the
 * new file, then apply; the old values stay on any error. */
static void
trk_reload(void *arg)
{
	struct trk_env *env = arg;
	struct cfg *c;

	c = svc_reload_cfg(trk_cfg_table, trk_cfg_n, env->cfg_path, env->cfg0, trk_validate);
	if (c) {
		svc_apply(c, env->api, env->admin, true);
		trk_apply(env, c);
		cfg_free(c);
		trk_catalog_refresh_soon(env);
		log_notice("configuration reloaded from %s", env->cfg_path);
	}
}

static void
trk_collect(void *arg)
{
	struct trk_env *env = arg;
	struct trk_store_stats st;

	trk_store_stats(env->store, &st);
	met_set(env->m.torrents, (double)st.torrents);
	met_set(env->m.peers4, (double)st.peers4);
	met_set(env->m.peers6, (double)st.peers6);
	met_set(env->m.seeders, (double)st.seeders);
	met_set(env->m.leechers, (double)st.leechers);
	met_set(env->m.bytes, (double)st.bytes);
	svc_metrics_collect(&env->m.std, NULL, NULL, env->started_ms);
}

/* Every 10 s on the event loop: drops silent peers. Here rather than on
 * the catalog thread, which can wait on PostgreSQL for a long time. */
static void
trk_expire_tick(void *arg)
{
	struct trk_env *env = arg;
	size_t n = trk_store_expire(env->store, trk_store_now(), atomic_load(&env->peer_timeout_s));
	if (env->m.expired)
		met_add(env->m.expired, (double)n);
	evl_call_later(env->loop, 10000, trk_expire_tick, env);
}

/* Announces per second over the last ten seconds, by protocol. */
static void
trk_sample(void *arg)
{
	struct trk_env *env = arg;
	static const char *const proto[2] = { "http", "udp" };
	env->ring_pos = (env->ring_pos + 1) % 11;
	for (int i = 0; i < 2; i++) {
		double now = met_value(met_child(env->m.announces, proto[i]));
		env->ring[i][env->ring_pos] = now;
		/* The slot after the newest is the oldest: ten seconds back. */
		double then = env->ring[i][(env->ring_pos + 1) % 11];
		atomic_store(&env->announces_per_s[i], (now - then) / 10.0);
	}
}

static int
trk_metrics_init(struct trk_env *env)
{
	struct met_registry *r = env->reg;

	if (http_metrics_init(&env->http_metrics, r) < 0)
		return -ENOMEM;
	env->m.announces = met_new(r, MET_COUNTER, "p2pcdn_tracker_announces_total",
				   "Announces answered, by protocol.", "proto", NULL, 0);
	env->m.scrapes = met_new(r, MET_COUNTER, "p2pcdn_tracker_scrapes_total",
				 "Scrapes answered, by protocol.", "proto", NULL, 0);
	env->m.failures =
		met_new(r, MET_COUNTER, "p2pcdn_tracker_failures_total",
			"Requests refused, by protocol and reason.", "proto,reason", NULL, 0);
	env->m.expired = met_scalar(r, MET_COUNTER, "p2pcdn_tracker_expired_peers_total",
				    "Peers dropped for silence.");
	env->m.torrents =
		met_scalar(r, MET_GAUGE, "p2pcdn_tracker_torrents", "Torrents in memory.");
	env->m.peers4 =
		met_scalar(r, MET_GAUGE, "p2pcdn_tracker_peers_ipv4", "IPv4 peers in memory.");
	env->m.peers6 =
		met_scalar(r, MET_GAUGE, "p2pcdn_tracker_peers_ipv6", "IPv6 peers in memory.");
	env->m.seeders = met_scalar(r, MET_GAUGE, "p2pcdn_tracker_seeders", "Seeders in memory.");
	env->m.leechers =
		met_scalar(r, MET_GAUGE, "p2pcdn_tracker_leechers", "Leechers in memory.");
	env->m.bytes = met_scalar(r, MET_GAUGE, "p2pcdn_tracker_store_bytes",
				  "Heap bytes of the swarm store.");
	if (!env->m.announces || !env->m.scrapes || !env->m.failures || !env->m.expired ||
	    !env->m.torrents || !env->m.peers4 || !env->m.peers6 || !env->m.seeders ||
	    !env->m.leechers || !env->m.bytes || svc_metrics_init(r, &env->m.std, false) < 0)
		return -ENOMEM;
	return met_add_collector(r, trk_collect, env);
}

int
main(int argc, char **argv)
{
	const struct svc_daemon boot = {
		.name = "tracker",
		.summary = TRK_SUMMARY,
		.table = trk_cfg_table,
		.n = trk_cfg_n,
		.validate = trk_validate,
	};
	static const struct svc_hooks hooks = { .reload = trk_reload, .tick = trk_sample };
	const struct svc_listeners listeners = {
		.api = trk_api_routes,
		.napi = trk_api_nroutes,
		.admin = trk_admin_routes,
		.nadmin = trk_admin_nroutes,
		.api_admin = true,    /* token-guarded public routes */
		.keep_raw_uri = true, /* info_hash is raw bytes in the query */
	};
	struct trk_env env = { 0 };
	struct cfg_args args;
	char err[1024];
	int r, ret = 1;

	r = svc_boot(&boot, argc, argv, &args, &env.cfg0);
	if (r >= 0)
		return r;
	env.cfg_path = args.config;
	pthread_mutex_init(&env.lock, NULL);
	pthread_rwlock_init(&env.wl_lock, NULL);
	pthread_mutex_init(&env.fs_lock, NULL);
	env.started_ms = dmn_now_ms();
	trk_apply(&env, env.cfg0);
	randombytes_buf(env.udp_secret, sizeof(env.udp_secret));

	r = svc_pg_start(env.cfg0, args.migrate, &env.pg);
	if (r) {
		ret = r > 0 ? 0 : 1;
		goto out;
	}
	if (trk_catalog_load_whitelist(&env, err, sizeof(err)) < 0) {
		log_err("loading registered programs: %s", err);
		goto out;
	}
	env.reg = met_registry_new();
	if (!env.reg || trk_metrics_init(&env) < 0) {
		log_err("out of memory setting up metrics");
		goto out;
	}
	env.store = trk_store_new((unsigned)cfg_int(env.cfg0, "tracker", "shard_bits"),
				  (size_t)cfg_int(env.cfg0, "tracker", "max_torrents"),
				  (size_t)cfg_int(env.cfg0, "tracker", "max_peers"));
	env.loop = evl_new();
	if (!env.store || !env.loop) {
		log_err("out of memory");
		goto out;
	}
	if (evl_call_later(env.loop, 10000, trk_expire_tick, &env) < 0) {
		log_err("cannot schedule peer expiry");
		goto out;
	}
	if (trk_catalog_start(&env) < 0) {
		log_err("cannot start the catalog thread");
		goto out;
	}
	const char *udp = cfg_str(env.cfg0, "tracker", "udp_listen");
	if (*udp && trk_udp_start(&env, udp, err, sizeof(err)) < 0) {
		log_err("UDP tracker: %s", err);
		goto out;
	}
	if (svc_listen(env.cfg0, &listeners, &env, env.reg, &env.http_metrics, &env.api,
		       &env.admin) < 0)
		goto out;
	pthread_rwlock_rdlock(&env.wl_lock);
	size_t nprograms = env.wl ? env.wl->n : 0;
	pthread_rwlock_unlock(&env.wl_lock);
	log_notice("ready: http on %s, udp on %s, admin on %s, mode %s, %zu programs registered",
		   cfg_str(env.cfg0, "server", "listen"), *udp ? udp : "(off)",
		   cfg_str(env.cfg0, "server", "admin_listen"),
		   cfg_str(env.cfg0, "tracker", "mode"), nprograms);
	svc_run(env.cfg0, env.api, env.admin, &hooks, &env);
	ret = 0;
	log_notice("stopped");
out:
	trk_udp_stop(&env);
	http_server_free(env.api);
	http_server_free(env.admin);
	trk_catalog_stop(&env); /* flushes the last counts */
	evl_free(env.loop);
	trk_store_free(env.store);
	if (env.wl) {
		free(env.wl->v);
		free(env.wl);
	}
	pthread_rwlock_destroy(&env.wl_lock);
	pthread_mutex_destroy(&env.fs_lock);
	free(env.fs_body);
	pg_pool_free(env.pg);
	met_registry_free(env.reg);
	cfg_free(env.cfg0);
	pthread_mutex_destroy(&env.lock);
	sodium_memzero(env.udp_secret, sizeof(env.udp_secret));
	return ret;
}
