// SPDX-License-Identifier: MIT
/* login-server: the admin listener: health, status, accounts. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmn.h"
#include "log.h"
#include "login.h"
#include "svc.h"

static void
login_handle_readyz(struct http_req *req, void *arg)
{
	struct login_env *env = arg;
	svc_readyz(req, env->rds, env->pg, NULL);
}

static json_t *
login_counts(struct met *m, const char *const *labels)
{
	json_t *o = json_object();
	for (size_t i = 0; labels[i]; i++)
		json_object_set_new(o, labels[i],
				    json_integer((json_int_t)met_value(met_child(m, labels[i]))));
	return o;
}

static void
login_handle_status(struct http_req *req, void *arg)
{
	static const char *const modes[] = { "direct", "reverse", "lan", "relay", NULL };
	static const char *const probes[] = { "echo",        "refused", "timeout", "mismatch",
					      "unreachable", "skipped", "busy",    NULL };
	static const char *const logins[] = { "ok",           "invalid_credentials",
					      "rate_limited", "disabled",
					      "busy",         "unavailable",
					      "bad_request",  NULL };
	struct login_env *env = arg;
	struct rds_stats rs, as;
	rds_get_stats(env->rds, &rs);
	rds_async_stats(env->ra, &as);
	struct login_settings *s = login_settings_get(env);
	json_t *o = json_object();
	json_object_set_new(o, "daemon", json_string("login-server"));
	json_object_set_new(o, "version", json_string(P2PCDN_VERSION));
	json_object_set_new(o, "uptime_s", json_integer((dmn_now_ms() - env->started_ms) / 1000));
	json_object_set_new(o, "registration",
			    json_string(s->registration_open ? "open" : "admin"));
	json_object_set_new(o, "heartbeat_s", json_integer(s->heartbeat_s));
	json_object_set_new(o, "relay_configured", json_boolean(s->has_relay_key));
	login_settings_put(s);
	json_object_set_new(o, "sessions_online",
			    json_pack("{s:I, s:I}", "outer",
				      (json_int_t)met_value(met_child(env->m.online, "outer")),
				      "inner",
				      (json_int_t)met_value(met_child(env->m.online, "inner"))));
	json_object_set_new(o, "logins", login_counts(env->m.logins, logins));
	double lps = atomic_load(&env->logins_per_s);
	json_object_set_new(o, "logins_per_s", json_real(round(lps * 10) / 10));
	json_object_set_new(o, "probes_in_flight",
			    json_integer(atomic_load(&env->probes_inflight)));
	json_object_set_new(o, "probes", login_counts(env->m.probes, probes));
	json_object_set_new(o, "connects", login_counts(env->m.connects, modes));
	json_object_set_new(o, "relay_fallbacks",
			    json_integer((json_int_t)met_value(env->m.relay_fallbacks)));
	pthread_mutex_lock(&env->kra_lock);
	double kra_all = login_kra(env->kra_all_relay, env->kra_all_total);
	pthread_mutex_unlock(&env->kra_lock);
	json_object_set_new(o, "relay_dependency",
			    json_pack("{s:f, s:f}", "last_10_min", login_kra_window(env),
				      "since_start", kra_all));
	json_object_set_new(o, "long_polls", json_integer((json_int_t)met_value(env->m.waiters)));
	json_object_set_new(o, "hash_queue",
			    json_integer(env->work ? login_work_queued(env->work) : 0));
	json_object_set_new(o, "redis",
			    json_pack("{s:b, s:I, s:I}", "up", as.up || rs.up, "commands",
				      (json_int_t)(rs.commands + as.commands), "errors",
				      (json_int_t)(rs.errors + as.errors)));
	http_reply_json(req, 200, o);
}

/* ---------------------------------------------------------------- accounts */

/* One statement on the account database for an admin handler: the result,
 * or NULL after answering 503 (no connection) or 500 ("WHAT the account
 * failed", the cause logged). */
static PGresult *
login_admin_query(struct login_env *env, struct http_req *req, const char *what, const char *sql,
		  int nparams, const char *const *params)
{
	char err[256];
	PGconn *c = svc_pg_acquire(env->pg, req, "account database");
	PGresult *res;

	if (!c)
		return NULL;
	res = pg_query(c, sql, nparams, params, err, sizeof(err), NULL);
	pg_release(env->pg, c);
	if (!res) {
		log_err("admin: %s account: %s", what, err);
		http_reply_error(req, 500, "internal", "%s the account failed", what);
	}
	return res;
}

static void
login_handle_account_create(struct http_req *req, void *arg)
{
	struct login_env *env = arg;
	struct login_req in;
	const char *code = "bad_request";
	char msg[200], hash[crypto_pwhash_STRBYTES];
	size_t len;
	const char *body = http_req_body(req, &len);

	if (login_parse_login(body, len, false, &in, &code, msg, sizeof(msg)) < 0) {
		http_reply_error(req, 400, code, "%s", msg);
		return;
	}
	/* Admin listener, rare: hashing on its thread is acceptable. */
	int r = crypto_pwhash_str(hash, in.password, strlen(in.password), env->pw_ops, env->pw_mem);
	sodium_memzero(in.password, sizeof(in.password));
	if (r != 0) {
		http_reply_error(req, 500, "internal", "hashing the password failed");
		return;
	}
	const char *p[] = { in.user, hash };
	PGresult *res = login_admin_query(env, req, "creating",
					  "INSERT INTO accounts (name, pwhash) VALUES ($1, $2) ON "
					  "CONFLICT (name) DO NOTHING RETURNING id",
					  2, p);
	if (!res)
		return;
	int n = PQntuples(res);
	PQclear(res);
	if (n != 1) {
		http_reply_error(req, 409, "user_exists", "account %s exists", in.user);
		return;
	}
	log_notice("admin: account %s created", in.user);
	http_reply_json(req, 201, json_pack("{s:s, s:b}", "user", in.user, "disabled", 0));
}

static void
login_handle_account_get(struct http_req *req, void *arg)
{
	struct login_env *env = arg;
	const char *name = http_req_param(req, 0);

	if (!login_user_ok(name, strlen(name))) {
		http_reply_error(req, 404, "unknown_user", "no such account");
		return;
	}
	const char *p[] = { name };
	PGresult *res = login_admin_query(
		env, req, "reading",
		"SELECT a.name, a.disabled, to_char(a.created_at AT TIME ZONE 'UTC', "
		"'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), (SELECT count(*) FROM login_sessions s WHERE "
		"s.account = a.name), (SELECT to_char(max(login_at) AT TIME ZONE 'UTC', "
		"'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM login_sessions s WHERE s.account = "
		"a.name) FROM accounts a WHERE a.name = $1",
		1, p);
	if (!res)
		return;
	if (PQntuples(res) != 1) {
		PQclear(res);
		http_reply_error(req, 404, "unknown_user", "no such account");
		return;
	}
	json_t *o = json_pack("{s:s, s:b, s:s, s:I}", "user", PQgetvalue(res, 0, 0), "disabled",
			      PQgetvalue(res, 0, 1)[0] == 't', "created_at", PQgetvalue(res, 0, 2),
			      "sessions", (json_int_t)strtoll(PQgetvalue(res, 0, 3), NULL, 10));
	json_object_set_new(o, "last_login_at",
			    PQgetisnull(res, 0, 4) ? json_null()
						   : json_string(PQgetvalue(res, 0, 4)));
	PQclear(res);
	http_reply_json(req, 200, o);
}

static void
login_account_set(struct http_req *req, struct login_env *env, bool disabled)
{
	const char *name = http_req_param(req, 0);
	char key[128];

	if (!login_user_ok(name, strlen(name))) {
		http_reply_error(req, 404, "unknown_user", "no such account");
		return;
	}
	const char *p[] = { name, disabled ? "true" : "false" };
	PGresult *res =
		login_admin_query(env, req, "updating",
				  "UPDATE accounts SET disabled = $2::boolean, updated_at = "
				  "now() WHERE name = $1 RETURNING id",
				  2, p);
	if (!res)
		return;
	int n = PQntuples(res);
	PQclear(res);
	if (n != 1) {
		http_reply_error(req, 404, "unknown_user", "no such account");
		return;
	}
	if (disabled) {
		/* The live session ends at once; the reaper records it. */
		snprintf(key, sizeof(key), "%ssess:{%s}", rds_prefix(env->rds), name);
		int e = 0;
		redisReply *r = rds_command(env->rds, &e, "DEL %s", key);
		if (r)
			freeReplyObject(r);
	}
	log_notice("admin: account %s %s", name, disabled ? "disabled" : "enabled");
	http_reply_json(req, 200, json_pack("{s:s, s:b}", "user", name, "disabled", disabled));
}

static void
login_handle_disable(struct http_req *req, void *arg)
{
	login_account_set(req, arg, true);
}

static void
login_handle_enable(struct http_req *req, void *arg)
{
	login_account_set(req, arg, false);
}

const struct http_route login_admin_routes[] = {
	{ "GET", "/healthz", http_handle_healthz, false },
	{ "GET", "/readyz", login_handle_readyz, false },
	{ "GET", "/status", login_handle_status, false },
	{ "GET", "/metrics", http_handle_metrics, false },
	{ "POST", "/v1/admin/accounts", login_handle_account_create, true },
	{ "GET", "/v1/admin/accounts/{}", login_handle_account_get, true },
	{ "POST", "/v1/admin/accounts/{}/disable", login_handle_disable, true },
	{ "POST", "/v1/admin/accounts/{}/enable", login_handle_enable, true },
};
const size_t login_admin_nroutes = sizeof(login_admin_routes) / sizeof(login_admin_routes[0]);
