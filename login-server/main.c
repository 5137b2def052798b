// SPDX-License-Identifier: MIT
/* login-server: argv, config, start-up, the signal loop and teardown. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dmn.h"
#include "log.h"
#include "login.h"
#include "svc.h"

#define LOGIN_SUMMARY "accounts, presence, NAT judgment and connection brokering (seed 000 §2-4)"

static void
login_reload(void *arg)
{
	struct login_env *env = arg;
	char err[512];

	struct cfg *c = svc_reload_cfg(login_cfg_table, login_cfg_n, env->cfg_path, env->cfg0,
				       login_validate);
	if (c) {
		struct login_settings *s = login_settings_new(c, err, sizeof(err));
		if (!s) {
			log_err("reload failed, keeping the running configuration: %s", err);
		} else {
			svc_apply(c, env->api, env->admin, false);
			login_settings_publish(env, s);
			log_notice("configuration reloaded from %s", env->cfg_path);
		}
		cfg_free(c);
	}
}

static void
login_collect(void *arg)
{
	struct login_env *env = arg;
	svc_metrics_collect(&env->m.std, env->rds, env->ra, env->started_ms);
	met_set(env->m.probes_inflight, (double)atomic_load(&env->probes_inflight));
	met_set(env->m.kra, login_kra_window(env));
	pthread_mutex_lock(&env->kra_lock);
	met_set(env->m.kra_total, login_kra(env->kra_all_relay, env->kra_all_total));
	pthread_mutex_unlock(&env->kra_lock);
	if (env->work)
		met_set(env->m.hash_queue, (double)login_work_queued(env->work));
}

static void
login_count_waiters(void *arg)
{
	struct login_env *env = arg;
	met_set(env->m.waiters, (double)login_waiters_count(env));
}

static int
login_metrics_init(struct login_env *env)
{
	struct met_registry *r = env->reg;
	struct login_metrics *m = &env->m;

	if (http_metrics_init(&env->http_metrics, r) < 0)
		return -ENOMEM;
	m->logins = met_new(r, MET_COUNTER, "p2pcdn_login_logins_total",
			    "Login attempts by result.", "result", NULL, 0);
	m->probes = met_new(r, MET_COUNTER, "p2pcdn_login_probes_total",
			    "Connect-back probes by outcome (echo = outer).", "outcome", NULL, 0);
	m->connects = met_new(r, MET_COUNTER, "p2pcdn_login_connects_total",
			      "Connects brokered, by the mode first decided.", "mode", NULL, 0);
	m->results = met_new(r, MET_COUNTER, "p2pcdn_login_connect_results_total",
			     "Connect outcomes reported, by mode.", "mode,outcome", NULL, 0);
	m->online = met_new(r, MET_GAUGE, "p2pcdn_login_sessions_online",
			    "Sessions online by NAT class (from the accounting tables, within "
			    "reap_s).",
			    "nat", NULL, 0);
	m->probes_inflight = met_scalar(r, MET_GAUGE, "p2pcdn_login_probes_in_flight",
					"Connect-back probes waiting for an answer.");
	m->relay_fallbacks = met_scalar(r, MET_COUNTER, "p2pcdn_login_relay_fallbacks_total",
					"lan connects that failed their check and got a relay.");
	m->kra = met_scalar(r, MET_GAUGE, "p2pcdn_login_relay_dependency",
			    "Relay dependency degree K_ra (seed 000 §4.1): share of connects "
			    "that needed the relay, last 10 minutes.");
	m->kra_total = met_scalar(r, MET_GAUGE, "p2pcdn_login_relay_dependency_since_start",
				  "K_ra over every connect since this process started.");
	m->heartbeats =
		met_scalar(r, MET_COUNTER, "p2pcdn_login_heartbeats_total", "Heartbeats received.");
	m->waiters = met_scalar(r, MET_GAUGE, "p2pcdn_login_long_polls",
				"Heartbeats parked waiting for a request (wait=N).");
	m->pushes = met_scalar(r, MET_COUNTER, "p2pcdn_login_requests_delivered_total",
			       "Reverse/lan/relay requests handed to targets in heartbeats.");
	m->hash_queue = met_scalar(r, MET_GAUGE, "p2pcdn_login_hash_queue",
				   "Password checks waiting for a worker thread.");
	m->acct_dropped = met_scalar(r, MET_COUNTER, "p2pcdn_login_accounting_dropped_total",
				     "Accounting records dropped (queue full).");
	m->acct_written = met_scalar(r, MET_COUNTER, "p2pcdn_login_accounting_written_total",
				     "Accounting rows written to PostgreSQL.");
	m->relay_acct = met_scalar(r, MET_COUNTER, "p2pcdn_login_relay_records_total",
				   "Relay accounting stream entries merged.");
	m->registrations = met_scalar(r, MET_COUNTER, "p2pcdn_login_registrations_total",
				      "Accounts registered through POST /v1/register.");
	if (!m->logins || !m->probes || !m->connects || !m->results || !m->online ||
	    !m->probes_inflight || !m->relay_fallbacks || !m->kra || !m->kra_total ||
	    !m->heartbeats || !m->waiters || !m->pushes || !m->hash_queue || !m->acct_dropped ||
	    !m->acct_written || !m->relay_acct || !m->registrations ||
	    svc_metrics_init(r, &m->std, true) < 0)
		return -ENOMEM;
	/* Label values exist from the start, so dashboards see zeros. */
	static const char *const modes[] = { "direct", "reverse", "lan", "relay" };
	for (int i = 0; i < 4; i++)
		met_child(m->connects, modes[i]);
	met_child(m->online, "outer");
	met_child(m->online, "inner");
	met_child(m->logins, "ok");
	met_child(m->probes, "echo");
	return met_add_collector(r, login_collect, env);
}

static void
login_sample(void *arg)
{
	struct login_env *env = arg;
	unsigned long long now = atomic_load(&env->logins_ok);
	env->ring_pos = (env->ring_pos + 1) % 11;
	env->login_ring[env->ring_pos] = now;
	unsigned long long then = env->login_ring[(env->ring_pos + 1) % 11];
	atomic_store(&env->logins_per_s, (double)(now - then) / 10.0);
}

/* Loop thread: the long-poll gauge is read where the table lives. */
static void
login_tick(void *arg)
{
	struct login_env *env = arg;
	login_sample(env);
	evl_call(env->loop, login_count_waiters, env);
}

/* Before the drain: parked long-polls are answered at once, so they do not
 * hold the drain for drain_timeout_s. */
static void
login_pre_drain(void *arg)
{
	struct login_env *env = arg;
	log_notice("stopping: answering long-polls");
	atomic_store(&env->stopping, true);
	login_waiters_close(env->waiters);
}

static int
login_dummy_hash(struct login_env *env)
{
	unsigned char pw[32];
	char hex[65];
	randombytes_buf(pw, sizeof(pw));
	sodium_bin2hex(hex, sizeof(hex), pw, sizeof(pw));
	int r = crypto_pwhash_str(env->dummy_hash, hex, strlen(hex), env->pw_ops, env->pw_mem);
	sodium_memzero(hex, sizeof(hex));
	sodium_memzero(pw, sizeof(pw));
	return r == 0 ? 0 : -ENOMEM;
}

int
main(int argc, char **argv)
{
	const struct svc_daemon boot = {
		.name = "login-server",
		.summary = LOGIN_SUMMARY,
		.table = login_cfg_table,
		.n = login_cfg_n,
		.validate = login_validate,
	};
	static const struct svc_hooks hooks = {
		.reload = login_reload,
		.tick = login_tick,
		.pre_drain = login_pre_drain,
	};
	const struct svc_listeners listeners = {
		.api = login_api_routes,
		.napi = login_api_nroutes,
		.admin = login_admin_routes,
		.nadmin = login_admin_nroutes,
	};
	struct login_env env = { 0 };
	struct cfg_args args;
	char err[1024];
	int r, ret = 1;

	r = svc_boot(&boot, argc, argv, &args, &env.cfg0);
	if (r >= 0)
		return r;
	env.cfg_path = args.config;
	pthread_mutex_init(&env.set_lock, NULL);
	pthread_mutex_init(&env.kra_lock, NULL);
	env.started_ms = dmn_now_ms();
	env.set = login_settings_new(env.cfg0, err, sizeof(err));
	if (!env.set) {
		log_err("%s", err);
		goto out;
	}
	env.pw_ops = (unsigned long long)cfg_int(env.cfg0, "login", "argon2_ops");
	env.pw_mem = (size_t)cfg_int(env.cfg0, "login", "argon2_mem_kib") * 1024;
	const char *inst = cfg_str(env.cfg0, "login", "instance_id");
	if (*inst)
		snprintf(env.instance, sizeof(env.instance), "%s", inst);
	else if (gethostname(env.instance, sizeof(env.instance) - 1) < 0 || !env.instance[0])
		snprintf(env.instance, sizeof(env.instance), "login");
	for (char *p = env.instance; *p; p++)
		if (*p == ' ' || *p == '{' || *p == '}')
			*p = '_';

	r = svc_pg_start(env.cfg0, args.migrate, &env.pg);
	if (r) {
		ret = r > 0 ? 0 : 1;
		goto out;
	}
	if (login_dummy_hash(&env) < 0) {
		log_err("argon2id with argon2_ops/argon2_mem_kib failed (out of memory?)");
		goto out;
	}
	env.reg = met_registry_new();
	if (!env.reg || login_metrics_init(&env) < 0) {
		log_err("out of memory setting up metrics");
		goto out;
	}
	if (svc_redis_open(env.cfg0, "logins answer 503 until it does", &env.ro, &env.rds,
			   &env.loop, &env.ra) < 0)
		goto out;
	env.work = login_work_new(&env, (int)cfg_int(env.cfg0, "login", "hash_threads"),
				  (int)cfg_int(env.cfg0, "login", "hash_queue"));
	if (!env.work || !login_waiters_new(&env) || !login_acct_start(&env)) {
		log_err("cannot start worker threads");
		goto out;
	}
	if (svc_listen(env.cfg0, &listeners, &env, env.reg, &env.http_metrics, &env.api,
		       &env.admin) < 0)
		goto out;
	log_notice("ready: api on %s, admin on %s, registration %s, relay %s",
		   cfg_str(env.cfg0, "server", "listen"),
		   cfg_str(env.cfg0, "server", "admin_listen"),
		   env.set->registration_open ? "open" : "admin-only",
		   env.set->has_relay_key ? "configured" : "not configured");
	svc_run(env.cfg0, env.api, env.admin, &hooks, &env);
	ret = 0;
	log_notice("stopped");
out:
	/* Whatever still waits is answered before the listeners close: the
	 * long-polls, the password checks (their second half runs on the
	 * loop), the Redis commands (cancelled), then the probes, which end
	 * by their timeout at the latest. */
	login_waiters_close(env.waiters);
	login_work_free(env.work);
	env.work = NULL;
	rds_async_close(env.ra);
	for (int i = 0; i < 400 && atomic_load(&env.probes_inflight) > 0; i++)
		usleep(10000);
	http_server_free(env.api);
	http_server_free(env.admin);
	login_acct_stop(env.acct);
	login_waiters_free(env.waiters);
	rds_async_free(env.ra);
	evl_free(env.loop);
	rds_free(env.rds);
	pg_pool_free(env.pg);
	met_registry_free(env.reg);
	login_settings_put(env.set);
	cfg_free(env.cfg0);
	sodium_memzero(env.dummy_hash, sizeof(env.dummy_hash));
	pthread_mutex_destroy(&env.kra_lock);
	pthread_mutex_destroy(&env.set_lock);
	return ret;
}
