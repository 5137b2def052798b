// SPDX-License-Identifier: MIT
/* relay-server: argv, config, start-up, the signal loop, drain and teardown. */
#include <errno.h>
#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dmn.h"
#include "log.h"
#include "relay.h"
#include "svc.h"

#define RELAY_SUMMARY "HTTP relay between peers in different private networks (seed 000 §4.4.4)"

/* Applies the reloadable [relay] keys of c (token key and limits). */
static int
relay_apply(struct relay_env *env, const struct cfg *c)
{
	struct tok_key k;
	struct relay_limits lim;

	if (tok_key_parse(cfg_str(c, "relay", "token_key"), &k) < 0)
		return -EINVAL;
	relay_limits_from(c, &lim);
	pthread_mutex_lock(&env->lock);
	env->key = k;
	env->lim = lim;
	pthread_mutex_unlock(&env->lock);
	tok_key_wipe(&k);
	{
		static const char *const names[] = {
			"max_sessions",     "max_per_source",    "max_per_account",
			"max_queued_bytes", "max_message",       "idle_timeout_s",
			"max_session_s",    "max_session_bytes", "poll_wait_max_s",
		};
		const double v[] = {
			lim.max_sessions,
			lim.max_per_source,
			lim.max_per_account,
			(double)lim.max_queued_bytes,
			(double)lim.max_message,
			(double)lim.idle_timeout_ms / 1000,
			(double)lim.max_session_ms / 1000,
			(double)lim.max_session_bytes,
			(double)lim.poll_wait_max_ms / 1000,
		};
		for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
			met_set(met_child(env->m.limit, names[i]), v[i]);
		met_set(env->m.capacity, lim.max_sessions);
	}
	return 0;
}

static void
relay_reload(void *arg)
{
	struct relay_env *env = arg;
	struct cfg *cfg;

	cfg = svc_reload_cfg(relay_cfg_table, relay_cfg_n, env->cfg_path, env->cfg0,
			     relay_validate);
	if (cfg) {
		svc_apply(cfg, env->api, env->admin, false);
		relay_apply(env, cfg);
		log_notice("configuration reloaded from %s", env->cfg_path);
		cfg_free(cfg);
	}
}

static void
relay_collect(void *arg)
{
	struct relay_env *env = arg;
	svc_metrics_collect(&env->m.std, env->rds, env->ra, env->started_ms);
	met_set(env->m.bytes_per_s, (double)atomic_load(&env->bytes_per_s));
	pthread_mutex_lock(&env->lock);
	met_set(env->m.queued, (double)(env->mbox_bytes + (size_t)atomic_load(&env->tun_queued)));
	pthread_mutex_unlock(&env->lock);
}

static int
relay_metrics_init(struct relay_env *env)
{
	struct met_registry *r = env->reg;
	struct relay_metrics *m = &env->m;
	static const char *const modes[3] = { "none", "mailbox", "tunnel" };
	struct met *f;

	if (http_metrics_init(&env->http_metrics, r) < 0)
		return -ENOMEM;
	f = met_new(r, MET_GAUGE, "p2pcdn_relay_sessions",
		    "Relay sessions in flight by mode (none = no request chose one yet).", "mode",
		    NULL, 0);
	if (!f)
		return -ENOMEM;
	for (int i = 0; i < 3; i++)
		m->sessions[i] = met_child(f, modes[i]);
	f = met_new(r, MET_COUNTER, "p2pcdn_relay_sessions_started_total",
		    "Sessions opened (mode none) and sessions that chose a mode.", "mode", NULL, 0);
	if (!f)
		return -ENOMEM;
	for (int i = 0; i < 3; i++)
		m->started[i] = met_child(f, modes[i]);
	f = met_new(r, MET_COUNTER, "p2pcdn_relay_sessions_ended_total",
		    "Sessions ended, by reason.", "reason", NULL, 0);
	if (!f)
		return -ENOMEM;
	for (int i = 1; i < RELAY_END__N; i++)
		m->ended[i] = met_child(f, relay_end_name((enum relay_end)i));
	f = met_new(r, MET_COUNTER, "p2pcdn_relay_bytes_total", "Payload bytes relayed, by mode.",
		    "mode", NULL, 0);
	if (!f)
		return -ENOMEM;
	for (int i = 0; i < 3; i++)
		m->bytes[i] = met_child(f, modes[i]);
	f = met_new(r, MET_COUNTER, "p2pcdn_relay_refusals_total",
		    "Requests refused, by reason (the error code of the answer).", "reason", NULL,
		    0);
	if (!f)
		return -ENOMEM;
	for (int i = 0; i < RELAY_REF__N; i++)
		m->refusals[i] = met_child(f, relay_refusal_names[i]);
	f = met_new(r, MET_COUNTER, "p2pcdn_relay_drops_total",
		    "Things dropped: unacknowledged mailbox messages of ended sessions "
		    "(session_end), accounting records over acct_max_pending (acct_overflow).",
		    "reason", NULL, 0);
	if (!f)
		return -ENOMEM;
	m->drop_unacked = met_child(f, "session_end");
	m->drop_acct = met_child(f, "acct_overflow");
	m->limit = met_new(r, MET_GAUGE, "p2pcdn_relay_limit", "Configured limits, by name.",
			   "limit", NULL, 0);
	m->messages = met_scalar(r, MET_COUNTER, "p2pcdn_relay_messages_total",
				 "Mailbox messages accepted.");
	m->delivered = met_scalar(r, MET_COUNTER, "p2pcdn_relay_messages_delivered_total",
				  "Mailbox messages handed out (a retried GET counts again).");
	m->queued = met_scalar(r, MET_GAUGE, "p2pcdn_relay_queued_bytes",
			       "Bytes held: mailbox queues plus tunnel buffers.");
	m->queued_msgs = met_scalar(r, MET_GAUGE, "p2pcdn_relay_queued_messages",
				    "Mailbox messages not yet acknowledged.");
	m->waiters = met_scalar(r, MET_GAUGE, "p2pcdn_relay_long_polls",
				"Mailbox GETs waiting for messages.");
	m->acct_pending = met_scalar(r, MET_GAUGE, "p2pcdn_relay_acct_pending",
				     "Accounting records waiting for Redis.");
	m->acct_written = met_scalar(r, MET_COUNTER, "p2pcdn_relay_acct_written_total",
				     "Accounting records added to the stream.");
	m->bytes_per_s = met_scalar(r, MET_GAUGE, "p2pcdn_relay_bytes_per_second",
				    "Bytes relayed per second over the last 10 s.");
	m->capacity = met_scalar(r, MET_GAUGE, "p2pcdn_relay_capacity",
				 "max_sessions, as published in the registry.");
	if (!m->limit || !m->messages || !m->delivered || !m->queued || !m->queued_msgs ||
	    !m->waiters || !m->acct_pending || !m->acct_written || !m->bytes_per_s ||
	    !m->capacity || svc_metrics_init(r, &m->std, true) < 0)
		return -ENOMEM;
	return met_add_collector(r, relay_collect, env);
}

/* The loop thread's periodic work: long-poll expiry, idle and quota ends,
 * the bytes/s sample, registry refresh and accounting. */
static void
relay_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct relay_env *env = arg;
	long long now = dmn_now_ms();
	(void)fd;
	(void)what;

	relay_sess_sweep(env, now);
	if (now >= env->next_sample_ms) {
		unsigned long long total = atomic_load(&env->bytes_total);
		env->next_sample_ms = now + 1000;
		env->ring_pos = (env->ring_pos + 1) % 11;
		env->bytes_ring[env->ring_pos] = total;
		/* The slot after the newest is the oldest: ten seconds back. */
		atomic_store(&env->bytes_per_s,
			     (long long)(total - env->bytes_ring[(env->ring_pos + 1) % 11]) / 10);
	}
	relay_reg_tick(env, now);
	relay_acct_flush(env);
}

/* Runs fn on the loop thread and waits for it. */
struct relay_sync {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	struct relay_env *env;
	void (*fn)(struct relay_env *env);
};

static void
relay_sync_run(void *arg)
{
	struct relay_sync *s = arg;
	s->fn(s->env);
	pthread_mutex_lock(&s->mu);
	s->done = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static int
relay_on_loop(struct relay_env *env, void (*fn)(struct relay_env *env))
{
	struct relay_sync s = { .env = env, .fn = fn };
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cv, NULL);
	if (evl_call(env->loop, relay_sync_run, &s) < 0) {
		pthread_cond_destroy(&s.cv);
		pthread_mutex_destroy(&s.mu);
		return -ESHUTDOWN;
	}
	pthread_mutex_lock(&s.mu);
	while (!s.done)
		pthread_cond_wait(&s.cv, &s.mu);
	pthread_mutex_unlock(&s.mu);
	pthread_cond_destroy(&s.cv);
	pthread_mutex_destroy(&s.mu);
	return 0;
}

static void
relay_sweep_start(struct relay_env *env)
{
	struct timeval tv = { 0, RELAY_WAIT_TICK * 1000 };
	env->sweep_ev = event_new(evl_base(env->loop), -1, EV_PERSIST, relay_sweep, env);
	if (env->sweep_ev)
		event_add(env->sweep_ev, &tv);
}

static void
relay_stop_on_loop(struct relay_env *env)
{
	if (env->sweep_ev) {
		event_free(env->sweep_ev);
		env->sweep_ev = NULL;
	}
	relay_sess_shutdown(env);
}

static void
relay_noop(struct relay_env *env)
{
	(void)env;
}

/* SIGTERM: leave the registry (so the login-server sends nobody new),
 * refuse new sessions, let the running ones finish for up to
 * drain_timeout_s, then end the rest (reason shutdown), write the
 * accounting and drain the listeners. */
static void
relay_run(struct relay_env *env)
{
	long long deadline;

	static const struct svc_hooks hooks = { .reload = relay_reload };

	svc_loop(&hooks, env);
	pthread_mutex_lock(&env->lock);
	env->stopping = true;
	pthread_mutex_unlock(&env->lock);
	relay_reg_remove(env);
	deadline = dmn_now_ms() + cfg_int(env->cfg0, "server", "drain_timeout_s") * 1000;
	log_notice("stopping: waiting up to %lld s for %zu sessions",
		   cfg_int(env->cfg0, "server", "drain_timeout_s"), env->nactive);
	for (;;) {
		size_t n;
		pthread_mutex_lock(&env->lock);
		n = env->nactive + env->nwaiters;
		pthread_mutex_unlock(&env->lock);
		if (!n || dmn_now_ms() >= deadline)
			break;
		usleep(50000);
	}
	relay_on_loop(env, relay_stop_on_loop);
	http_server_drain(env->api, 1000);
	http_server_drain(env->admin, 1000);
	/* A tunnel upgraded while we drained reached the loop through
	 * evl_call; this queued no-op runs after it (the attach refuses and
	 * closes it), so no upgraded socket is open when the listeners stop. */
	relay_on_loop(env, relay_noop);
}

int
main(int argc, char **argv)
{
	const struct svc_daemon boot = {
		.name = "relay-server",
		.summary = RELAY_SUMMARY,
		.table = relay_cfg_table,
		.n = relay_cfg_n,
		.validate = relay_validate,
		.no_migrate = "relay-server keeps no PostgreSQL state: nothing to migrate",
	};
	const struct svc_listeners listeners = {
		.api = relay_api_routes,
		.napi = relay_api_nroutes,
		.admin = relay_admin_routes,
		.nadmin = relay_admin_nroutes,
		.api_deadline = true, /* tunnels and long-polls need the connections */
	};
	struct relay_env env = { 0 };
	struct cfg_args args;
	int r, ret = 1;

	r = svc_boot(&boot, argc, argv, &args, &env.cfg0);
	if (r >= 0)
		return r;
	env.cfg_path = args.config;
	pthread_mutex_init(&env.lock, NULL);
	env.started_ms = dmn_now_ms();
	env.id = cfg_str(env.cfg0, "relay", "id");
	env.public_url = cfg_str(env.cfg0, "relay", "public_url");
	env.registry_ttl_s = cfg_int(env.cfg0, "relay", "registry_ttl_s");
	env.acct_maxlen = (size_t)cfg_int(env.cfg0, "relay", "acct_maxlen");
	env.acct_max_pending = (size_t)cfg_int(env.cfg0, "relay", "acct_max_pending");
	env.tls = *cfg_str(env.cfg0, "server", "tls_cert") != '\0';

	env.reg = met_registry_new();
	if (!env.reg || relay_metrics_init(&env) < 0 || relay_sess_init(&env) < 0) {
		log_err("out of memory setting up");
		goto out;
	}
	relay_apply(&env, env.cfg0);
	struct rds_opts ro;
	if (svc_redis_open(env.cfg0,
			   "relaying works, the registry and accounting catch up when it does", &ro,
			   &env.rds, &env.loop, &env.ra) < 0)
		goto out;
	relay_on_loop(&env, relay_sweep_start);
	if (!env.sweep_ev) {
		log_err("cannot start the sweep timer");
		goto out;
	}
	if (svc_listen(env.cfg0, &listeners, &env, env.reg, &env.http_metrics, &env.api,
		       &env.admin) < 0)
		goto out;
	log_notice("ready: relay %s (%s), api on %s, admin on %s", env.id, env.public_url,
		   cfg_str(env.cfg0, "server", "listen"),
		   cfg_str(env.cfg0, "server", "admin_listen"));
	relay_run(&env);
	ret = 0;
	log_notice("stopped");
out:
	if (env.loop && env.sweep_ev)
		relay_on_loop(&env, relay_stop_on_loop);
	/* In-flight XADDs come back as failures and wait in the queue for
	 * the blocking write in relay_reg_remove (when we got that far). */
	rds_async_close(env.ra);
	if (ret == 0)
		relay_reg_remove(&env);
	http_server_free(env.api);
	http_server_free(env.admin);
	rds_async_free(env.ra);
	evl_free(env.loop);
	rds_free(env.rds);
	relay_sess_done(&env);
	met_registry_free(env.reg);
	tok_key_wipe(&env.key);
	cfg_free(env.cfg0);
	pthread_mutex_destroy(&env.lock);
	return ret;
}
