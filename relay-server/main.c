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

	dmn_notify("RELOADING=1");
	cfg = svc_reload_cfg(relay_cfg_table, relay_cfg_n, env->cfg_path, env->cfg0,
			     relay_validate);
	if (cfg) {
		svc_apply(cfg, env->api, env->admin, false);
		relay_apply(env, cfg);
		log_notice("configuration reloaded from %s", env->cfg_path);
		cfg_free(cfg);
	}
	dmn_notify("READY=1");
}

static void
relay_collect(void *arg)
{
	struct relay_env *env = arg;
	struct rds_stats rs, as;

	rds_get_stats(env->rds, &rs);
	rds_async_stats(env->ra, &as);
	met_set(env->m.redis_up, as.up || rs.up);
	met_set(env->m.redis_commands, (double)(rs.commands + as.commands));
	met_set(env->m.redis_errors, (double)(rs.errors + as.errors));
	met_set(env->m.uptime, (double)(dmn_now_ms() - env->started_ms) / 1000.0);
	met_set(env->m.bytes_per_s, (double)atomic_load(&env->bytes_per_s));
	pthread_mutex_lock(&env->lock);
	met_set(env->m.queued, (double)(env->mbox_bytes + (size_t)atomic_load(&env->tun_queued)));
	pthread_mutex_unlock(&env->lock);
}

static struct met_child *
relay_met1(struct met_registry *r, enum met_type t, const char *name, const char *help)
{
	struct met *m = met_new(r, t, name, help, NULL, NULL, 0);
	return m ? met_child(m) : NULL;
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
	m->messages = relay_met1(r, MET_COUNTER, "p2pcdn_relay_messages_total",
				 "Mailbox messages accepted.");
	m->delivered = relay_met1(r, MET_COUNTER, "p2pcdn_relay_messages_delivered_total",
				  "Mailbox messages handed out (a retried GET counts again).");
	m->queued = relay_met1(r, MET_GAUGE, "p2pcdn_relay_queued_bytes",
			       "Bytes held: mailbox queues plus tunnel buffers.");
	m->queued_msgs = relay_met1(r, MET_GAUGE, "p2pcdn_relay_queued_messages",
				    "Mailbox messages not yet acknowledged.");
	m->waiters = relay_met1(r, MET_GAUGE, "p2pcdn_relay_long_polls",
				"Mailbox GETs waiting for messages.");
	m->acct_pending = relay_met1(r, MET_GAUGE, "p2pcdn_relay_acct_pending",
				     "Accounting records waiting for Redis.");
	m->acct_written = relay_met1(r, MET_COUNTER, "p2pcdn_relay_acct_written_total",
				     "Accounting records added to the stream.");
	m->bytes_per_s = relay_met1(r, MET_GAUGE, "p2pcdn_relay_bytes_per_second",
				    "Bytes relayed per second over the last 10 s.");
	m->capacity = relay_met1(r, MET_GAUGE, "p2pcdn_relay_capacity",
				 "max_sessions, as published in the registry.");
	m->redis_up = relay_met1(r, MET_GAUGE, "p2pcdn_redis_up",
				 "1 when the last Redis call succeeded.");
	m->redis_commands =
		relay_met1(r, MET_COUNTER, "p2pcdn_redis_commands_total", "Redis commands sent.");
	m->redis_errors =
		relay_met1(r, MET_COUNTER, "p2pcdn_redis_errors_total", "Failed Redis calls.");
	m->uptime = relay_met1(r, MET_GAUGE, "p2pcdn_uptime_seconds", "Seconds since start.");
	f = met_new(r, MET_GAUGE, "p2pcdn_build_info", "Build version.", "version", NULL, 0);
	if (f)
		met_set(met_child(f, P2PCDN_VERSION), 1);
	if (!m->limit || !m->messages || !m->delivered || !m->queued || !m->queued_msgs ||
	    !m->waiters || !m->acct_pending || !m->acct_written || !m->bytes_per_s ||
	    !m->capacity || !m->redis_up || !m->redis_commands || !m->redis_errors || !m->uptime ||
	    !f)
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

/* The public listener: svc_listen's settings plus a whole-request
 * deadline of request_timeout_s, so slow-loris clients cannot hold the
 * connections tunnels and long-polls need. */
static struct http_server *
relay_listen_api(struct relay_env *env, char *err, size_t errsize)
{
	const struct cfg *c = env->cfg0;
	struct http_server_opts o = {
		.name = "api",
		.listen = cfg_str(c, "server", "listen"),
		.threads = (unsigned)cfg_int(c, "server", "threads"),
		.connection_limit = (unsigned)cfg_int(c, "server", "connection_limit"),
		.timeout_s = (unsigned)cfg_int(c, "server", "request_timeout_s"),
		.read_timeout_ms = (unsigned)cfg_int(c, "server", "request_timeout_s") * 1000,
		.max_body = (size_t)cfg_int(c, "server", "max_body"),
		.tls_cert_file = cfg_str(c, "server", "tls_cert"),
		.tls_key_file = cfg_str(c, "server", "tls_key"),
		.access_log = cfg_bool(c, "server", "access_log"),
		.routes = relay_api_routes,
		.nroutes = relay_api_nroutes,
		.arg = env,
		.registry = env->reg,
		.metrics = &env->http_metrics,
		.trusted = addr_list_parse(cfg_str(c, "server", "trusted_proxies"), NULL, NULL),
	};
	return http_server_start(&o, err, errsize);
}

/* SIGTERM: leave the registry (so the login-server sends nobody new),
 * refuse new sessions, let the running ones finish for up to
 * drain_timeout_s, then end the rest (reason shutdown), write the
 * accounting and drain the listeners. */
static void
relay_run(struct relay_env *env)
{
	long long deadline;

	dmn_notify("READY=1");
	for (;;) {
		enum dmn_event ev = dmn_wait(1000);
		if (ev == DMN_STOP)
			break;
		if (ev == DMN_RELOAD)
			relay_reload(env);
	}
	dmn_notify("STOPPING=1");
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
	struct relay_env env = { 0 };
	struct cfg_args args;
	char err[1024];
	int r, ret = 1;

	if (dmn_signals_init() < 0) {
		fprintf(stderr, "relay-server: cannot set up signals\n");
		return 1;
	}
	log_init("relay-server");
	r = cfg_args_parse(argc, argv, "relay-server", RELAY_SUMMARY, relay_cfg_table, relay_cfg_n,
			   &args);
	if (r)
		return r > 0 ? 0 : 2;
	if (args.migrate) {
		printf("relay-server keeps no PostgreSQL state: nothing to migrate\n");
		return 0;
	}
	env.cfg_path = args.config;
	env.cfg0 = cfg_load(relay_cfg_table, relay_cfg_n, args.config, err, sizeof(err));
	if (!env.cfg0) {
		fprintf(stderr, "relay-server: %s\n", err);
		return 1;
	}
	if (relay_validate(env.cfg0, err, sizeof(err)) < 0) {
		fprintf(stderr, "relay-server: %s: %s\n", args.config, err);
		cfg_free(env.cfg0);
		return 1;
	}
	if (args.check) {
		printf("%s: configuration OK\n", args.config);
		cfg_free(env.cfg0);
		return 0;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "relay-server: libsodium failed to initialise\n");
		cfg_free(env.cfg0);
		return 1;
	}
	log_set_level(log_parse_level(cfg_str(env.cfg0, "server", "log_level")));
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
	svc_rds_opts(env.cfg0, &ro);
	env.rds = rds_new(&ro);
	env.loop = evl_new();
	env.ra = env.loop ? rds_async_new(env.loop, &ro) : NULL;
	if (!env.rds || !env.ra) {
		log_err("out of memory setting up Redis");
		goto out;
	}
	if (rds_ping(env.rds) < 0)
		log_warn("Redis at %s:%d is not answering yet; relaying works, the registry and "
			 "accounting catch up when it does",
			 ro.host, ro.port);
	relay_on_loop(&env, relay_sweep_start);
	if (!env.sweep_ev) {
		log_err("cannot start the sweep timer");
		goto out;
	}
	env.api = relay_listen_api(&env, err, sizeof(err));
	if (!env.api) {
		log_err("%s", err);
		goto out;
	}
	env.admin = svc_listen(env.cfg0, false, false, relay_admin_routes, relay_admin_nroutes,
			       &env, env.reg, &env.http_metrics, false, err, sizeof(err));
	if (!env.admin) {
		log_err("%s", err);
		goto out;
	}
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
