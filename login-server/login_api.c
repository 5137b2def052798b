// SPDX-License-Identifier: MIT
/* login-server: register, login (with the connect-back probe), heartbeat, logout. */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dmn.h"
#include "jw.h"
#include "log.h"
#include "login.h"
#include "svc.h"

/* ---------------------------------------------------------------- Redis scripts
 * Every script touches only keys of one hash tag {USER}, so it runs on
 * Redis Cluster too. Token hashes are compared in Lua: both sides are
 * SHA-256 outputs, so timing reveals nothing about a usable token. */

/* KEYS: sess, push. ARGV: th, ttl_ms, field/value pairs... Returns the
 * replaced session's accounting id or "". */
static const char login_lua_login[] =
	"local old = redis.call('HMGET', KEYS[1], 'th', 'sid')\n"
	"redis.call('DEL', KEYS[1], KEYS[2])\n"
	"redis.call('HSET', KEYS[1], unpack(ARGV, 3))\n"
	"if old[1] then redis.call('HSET', KEYS[1], 'prev', old[1]) end\n"
	"redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
	"return old[2] or ''\n";

/* KEYS: sess, push. ARGV: th, ttl_ms, now_ms. {0} no session, {2} replaced
 * by a newer login, {1, {requests...}}: refreshed, pending requests taken. */
static const char login_lua_hb[] = "local v = redis.call('HMGET', KEYS[1], 'th', 'prev')\n"
				   "if not v[1] then return {0} end\n"
				   "if v[1] ~= ARGV[1] then\n"
				   "  if v[2] == ARGV[1] then return {2} end\n"
				   "  return {0}\n"
				   "end\n"
				   "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
				   "redis.call('HSET', KEYS[1], 'seen', ARGV[3])\n"
				   "local p = redis.call('LRANGE', KEYS[2], 0, -1)\n"
				   "if #p > 0 then redis.call('DEL', KEYS[2]) end\n"
				   "return {1, p}\n";

/* KEYS: sess, push. ARGV: th. {1, sid} logged out, {0} no such session. */
static const char login_lua_logout[] = "local v = redis.call('HMGET', KEYS[1], 'th', 'sid')\n"
				       "if v[1] ~= ARGV[1] then return {0} end\n"
				       "redis.call('DEL', KEYS[1], KEYS[2])\n"
				       "return {1, v[2] or ''}\n";

/* KEYS: counter. ARGV: window_s. The count after this attempt. */
static const char login_lua_incr[] = "local n = redis.call('INCR', KEYS[1])\n"
				     "if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end\n"
				     "return n\n";

/* ---------------------------------------------------------------- helpers */

void
login_key(struct login_env *env, char *buf, size_t size, const char *kind, const char *id)
{
	snprintf(buf, size, "%s%s:{%s}", rds_async_prefix(env->ra), kind, id);
}

void
login_reply_text(struct http_req *req, unsigned status, char *text, size_t len)
{
	if (!text) {
		http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	http_reply_take(req, status, "application/json", text, len);
}

long long
login_ttl_ms(const struct login_settings *s)
{
	return 3LL * s->heartbeat_s * 1000;
}

static void
login_noop_cb(redisReply *rep, int err, void *arg)
{
	(void)rep;
	(void)err;
	(void)arg;
}

struct login_push_ctx {
	struct login_env *env;
	char user[LOGIN_USER_MAX + 1];
};

static void
login_push_cb(redisReply *rep, int err, void *arg)
{
	struct login_push_ctx *c = arg;
	/* Local waiters are woken at once; other instances by PUBLISH. */
	if (!err && rep && rep->type == REDIS_REPLY_INTEGER)
		login_waiters_notify(c->env, c->user);
	free(c);
}

int
login_push(struct login_env *env, const char *user, const char *json, long long ttl_ms)
{
	char key[128], ttl[24], chan[96];
	struct login_push_ctx *u = calloc(1, sizeof(*u));
	int r;

	if (!u)
		return -ENOMEM;
	u->env = env;
	snprintf(u->user, sizeof(u->user), "%s", user);
	login_key(env, key, sizeof(key), "push", user);
	snprintf(ttl, sizeof(ttl), "%lld", ttl_ms);
	snprintf(chan, sizeof(chan), "%spush", rds_async_prefix(env->ra));
	const char *a1[] = { "RPUSH", key, json };
	r = rds_async_argv(env->ra, login_push_cb, u, 3, a1, NULL);
	if (r < 0) {
		free(u);
		return r;
	}
	/* A target that never polls keeps at most the newest 64 requests. */
	const char *a2[] = { "LTRIM", key, "-64", "-1" };
	rds_async_argv(env->ra, login_noop_cb, NULL, 4, a2, NULL);
	const char *a3[] = { "PEXPIRE", key, ttl };
	rds_async_argv(env->ra, login_noop_cb, NULL, 3, a3, NULL);
	const char *a4[] = { "PUBLISH", chan, user };
	rds_async_argv(env->ra, login_noop_cb, NULL, 3, a4, NULL);
	return 0;
}

static struct rds_script login_scr_login, login_scr_hb, login_scr_logout, login_scr_incr;
static pthread_once_t login_scr_once = PTHREAD_ONCE_INIT;

static void
login_scr_init(void)
{
	rds_script_init(&login_scr_login, login_lua_login);
	rds_script_init(&login_scr_hb, login_lua_hb);
	rds_script_init(&login_scr_logout, login_lua_logout);
	rds_script_init(&login_scr_incr, login_lua_incr);
}

int
login_eval(struct login_env *env, rds_async_cb cb, void *arg, const struct rds_script *script,
	   int nkeys, const char *const *keys, int nargs, const char *const *args)
{
	pthread_once(&login_scr_once, login_scr_init);
	return rds_async_script(env->ra, script, nkeys, keys, nargs, args, cb, arg);
}

long long
login_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
login_rate_key(struct login_env *env, char *buf, size_t size, const char *kind, const char *id)
{
	char k[32];
	snprintf(k, sizeof(k), "rl:%s", kind);
	login_key(env, buf, size, k, id);
}

/* ---------------------------------------------------------------- login / register */

struct login_att {
	struct login_env *env;
	struct http_req *req;
	struct login_settings *set;
	bool registering;
	struct login_req in;
	struct addr client;
	char ip[ADDR_STR_MAX];
	int pending;
	bool rl_ip, rl_user, rl_failed;
	/* worker results */
	int verdict; /* 0 ok, -EACCES bad credentials, -EPERM disabled, -EIO pg, -EEXIST */
	char nonce[33];
	const char *probe;
	enum login_nat nat;
	char token[LOGIN_TOKEN_MAX], th[LOGIN_TH_HEX], sid[LOGIN_CID_HEX];
	char priv[ADDR_STR_MAX], pub[ADDR_STR_MAX], pk64[LOGIN_PK_B64];
};

static void
login_att_free(struct login_att *a)
{
	login_settings_put(a->set);
	sodium_memzero(a, sizeof(*a));
	free(a);
}

static void
login_att_finish(struct login_att *a)
{
	http_resume(a->req);
	login_att_free(a);
}

static void
login_count(struct login_env *env, const char *result)
{
	met_add(met_child(env->m.logins, result), 1);
}

/* Worker thread: the account row and the argon2id check. An unknown name is
 * checked against a dummy hash of the same cost, so its answer takes as long
 * as a wrong password's and the reply is the same. */
static void
login_verify_job(void *arg)
{
	struct login_att *a = arg;
	struct login_env *env = a->env;
	char err[256];
	const char *hash = env->dummy_hash;
	bool found = false, disabled = false;
	PGresult *res = NULL;

	PGconn *c = pg_acquire(env->pg);
	if (!c) {
		a->verdict = -EIO;
		return;
	}
	const char *p[] = { a->in.user };
	res = pg_query(c, "SELECT pwhash, disabled FROM accounts WHERE name = $1", 1, p, err,
		       sizeof(err), NULL);
	pg_release(env->pg, c);
	if (!res) {
		log_err("account lookup: %s", err);
		a->verdict = -EIO;
		return;
	}
	if (PQntuples(res) == 1) {
		found = true;
		hash = PQgetvalue(res, 0, 0);
		disabled = PQgetvalue(res, 0, 1)[0] == 't';
	}
	int ok = crypto_pwhash_str_verify(hash, a->in.password, strlen(a->in.password)) == 0;
	PQclear(res);
	sodium_memzero(a->in.password, sizeof(a->in.password));
	if (!found || !ok)
		a->verdict = -EACCES;
	else if (disabled)
		a->verdict = -EPERM;
	else
		a->verdict = 0;
}

/* Worker thread: a new account. */
static void
login_register_job(void *arg)
{
	struct login_att *a = arg;
	struct login_env *env = a->env;
	char hash[crypto_pwhash_STRBYTES], err[256], state[6] = "";

	if (crypto_pwhash_str(hash, a->in.password, strlen(a->in.password), env->pw_ops,
			      env->pw_mem) != 0) {
		sodium_memzero(a->in.password, sizeof(a->in.password));
		a->verdict = -ENOMEM;
		return;
	}
	sodium_memzero(a->in.password, sizeof(a->in.password));
	PGconn *c = pg_acquire(env->pg);
	if (!c) {
		a->verdict = -EIO;
		return;
	}
	const char *p[] = { a->in.user, hash };
	PGresult *res = pg_query(c,
				 "INSERT INTO accounts (name, pwhash) VALUES ($1, $2) ON CONFLICT "
				 "(name) DO NOTHING RETURNING id",
				 2, p, err, sizeof(err), state);
	pg_release(env->pg, c);
	if (!res) {
		log_err("creating account: %s", err);
		a->verdict = -EIO;
		return;
	}
	a->verdict = PQntuples(res) == 1 ? 0 : -EEXIST;
	PQclear(res);
}

static void login_probe_start(struct login_att *a);

static void
login_register_done(void *arg)
{
	struct login_att *a = arg;
	struct login_env *env = a->env;

	switch (a->verdict) {
	case 0:
		met_add(env->m.registrations, 1);
		log_info("account %s registered from %s", a->in.user, a->ip);
		http_reply_json(a->req, 201, json_pack("{s:s}", "user", a->in.user));
		break;
	case -EEXIST:
		http_reply_error(a->req, 409, "user_exists", "that account name is taken");
		break;
	case -EIO:
		http_reply_retry(a->req, 503, 2, "postgres_unavailable",
				 "the account database is unreachable");
		break;
	default:
		http_reply_error(a->req, 500, "internal", "hashing the password failed");
	}
	login_att_finish(a);
}

static void
login_verify_done(void *arg)
{
	struct login_att *a = arg;
	struct login_env *env = a->env;

	if (a->verdict == -EIO) {
		login_count(env, "unavailable");
		http_reply_retry(a->req, 503, 2, "postgres_unavailable",
				 "the account database is unreachable");
		login_att_finish(a);
		return;
	}
	if (a->verdict == -EACCES) {
		/* Counted against the account name whether it exists or not. */
		char key[128], win[8] = "60";
		login_rate_key(env, key, sizeof(key), "fail", a->in.user);
		const char *keys[] = { key }, *args[] = { win };
		login_eval(env, login_noop_cb, NULL, &login_scr_incr, 1, keys, 1, args);
		login_count(env, "invalid_credentials");
		http_reply_error(a->req, 401, "invalid_credentials",
				 "user name or password is wrong");
		login_att_finish(a);
		return;
	}
	if (a->verdict == -EPERM) {
		login_count(env, "disabled");
		http_reply_error(a->req, 403, "account_disabled",
				 "this account is disabled; ask the operator");
		login_att_finish(a);
		return;
	}
	login_probe_start(a);
}

/* Loop thread: a rate-limit counter answered. */
static void
login_rl_cb(redisReply *rep, int err, void *arg)
{
	struct login_att *a = arg;
	if (err || !rep || rep->type == REDIS_REPLY_ERROR)
		a->rl_failed = true;
	else if (rep->type == REDIS_REPLY_INTEGER && a->pending == 2) {
		if (a->set->ip_per_min > 0 && rep->integer > a->set->ip_per_min)
			a->rl_ip = true;
	} else if (rep->type == REDIS_REPLY_STRING && a->set->user_fail_per_min > 0 &&
		   strtoll(rep->str, NULL, 10) >= a->set->user_fail_per_min)
		a->rl_user = true;
	if (--a->pending > 0)
		return;

	struct login_env *env = a->env;
	if (a->rl_failed) {
		login_count(env, "unavailable");
		http_reply_retry(a->req, 503, 1, "redis_unavailable",
				 "the session store is unreachable; retry shortly");
		login_att_finish(a);
		return;
	}
	if (a->rl_ip || a->rl_user) {
		login_count(env, "rate_limited");
		/* One message for both: which limit hit says nothing about the
		 * account's existence, but there is no need to tell. */
		http_reply_retry(a->req, 429, 60, "rate_limited",
				 "too many attempts; retry in a minute");
		login_att_finish(a);
		return;
	}
	int r = login_work_submit(env->work, a->registering ? login_register_job : login_verify_job,
				  a->registering ? login_register_done : login_verify_done, a);
	if (r < 0) {
		sodium_memzero(a->in.password, sizeof(a->in.password));
		login_count(env, "busy");
		http_reply_retry(a->req, 503, 1, "busy",
				 "too many password checks waiting; retry shortly");
		login_att_finish(a);
	}
}

static void
login_begin(struct http_req *req, struct login_env *env, bool registering)
{
	const char *code = "bad_request";
	char msg[200];
	size_t len;
	const char *body = http_req_body(req, &len);
	struct login_att *a = calloc(1, sizeof(*a));

	if (!a) {
		http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	a->env = env;
	a->req = req;
	a->registering = registering;
	a->set = login_settings_get(env);
	if (registering && !a->set->registration_open) {
		http_reply_error(req, 403, "registration_closed",
				 "accounts are created by the operator on this server");
		login_att_free(a);
		return;
	}
	if (login_parse_login(body, len, !registering, &a->in, &code, msg, sizeof(msg)) < 0) {
		if (!registering)
			login_count(env, "bad_request");
		http_reply_error(req, 400, code, "%s", msg);
		login_att_free(a);
		return;
	}
	a->client = *http_req_client(req);
	addr_format_ip(&a->client, a->ip, sizeof(a->ip));

	char kip[160], kuser[128], win[8] = "60";
	login_rate_key(env, kip, sizeof(kip), "ip", a->ip);
	login_rate_key(env, kuser, sizeof(kuser), "fail", a->in.user);
	const char *keys[] = { kip }, *args[] = { win };
	/* Defer before submitting: the replies may come before we return. */
	http_defer(req);
	a->pending = 2;
	/* Both go out in one write: one round trip. The IP counter's reply
	 * comes first (pending == 2 marks it). */
	if (login_eval(env, login_rl_cb, a, &login_scr_incr, 1, keys, 1, args) < 0) {
		a->pending = 1;
		a->rl_failed = true;
		login_rl_cb(NULL, -EAGAIN, a);
		return;
	}
	const char *g[] = { "GET", kuser };
	if (rds_async_argv(env->ra, login_rl_cb, a, 2, g, NULL) < 0)
		login_rl_cb(NULL, -EAGAIN, a);
}

static void
login_handle_login(struct http_req *req, void *arg)
{
	login_begin(req, arg, false);
}

static void
login_handle_register(struct http_req *req, void *arg)
{
	login_begin(req, arg, true);
}

static void login_session_write(struct login_att *a);

/* Loop thread: the connect-back probe answered (seed 000 §3). */
static void
login_probe_cb(const struct evl_http_result *res, void *arg)
{
	struct login_att *a = arg;
	struct login_env *env = a->env;

	atomic_fetch_sub(&env->probes_inflight, 1);
	if (res->err == 0 && res->status == 200 && strstr(res->body, a->nonce)) {
		a->probe = "echo";
		a->nat = LOGIN_NAT_OUTER;
	} else {
		a->probe = res->err == 0               ? "mismatch"
			   : res->err == -ETIMEDOUT    ? "timeout"
			   : res->err == -ECONNREFUSED ? "refused"
						       : "unreachable";
		a->nat = LOGIN_NAT_INNER;
	}
	met_add(met_child(env->m.probes, a->probe), 1);
	login_session_write(a);
}

static void
login_probe_start(struct login_att *a)
{
	struct login_env *env = a->env;
	unsigned char n[16];
	char url[160];

	randombytes_buf(n, sizeof(n));
	sodium_bin2hex(a->nonce, sizeof(a->nonce), n, sizeof(n));
	a->nat = LOGIN_NAT_INNER;
	if (a->in.listen_port == 0) {
		a->probe = "skipped";
		met_add(met_child(env->m.probes, "skipped"), 1);
		login_session_write(a);
		return;
	}
	if (atomic_fetch_add(&env->probes_inflight, 1) >= a->set->max_probes) {
		atomic_fetch_sub(&env->probes_inflight, 1);
		login_count(env, "busy");
		met_add(met_child(env->m.probes, "busy"), 1);
		http_reply_retry(a->req, 503, 1, "busy", "too many logins probing; retry shortly");
		login_att_finish(a);
		return;
	}
	/* Only the observed source address is probed, never one the client
	 * names: the server cannot be aimed at a third party's host. */
	struct addr target = a->client;
	target.port = (unsigned short)a->in.listen_port;
	char hostport[ADDR_STR_MAX];
	addr_format(&target, hostport, sizeof(hostport));
	snprintf(url, sizeof(url), "http://%s/p2p/probe?nonce=%s", hostport, a->nonce);
	if (evl_http_request(env->loop, "GET", url, NULL, 0, NULL, a->set->probe_timeout_ms, 512,
			     login_probe_cb, a) < 0) {
		struct evl_http_result r = { .err = -EIO, .body = "" };
		login_probe_cb(&r, a);
	}
}

static void
login_session_cb(redisReply *rep, int err, void *arg)
{
	struct login_att *a = arg;
	struct login_env *env = a->env;

	if (err || !rep || rep->type != REDIS_REPLY_STRING) {
		login_count(env, "unavailable");
		http_reply_retry(a->req, 503, 1, "redis_unavailable",
				 "the session store is unreachable; retry shortly");
		login_att_finish(a);
		return;
	}
	struct login_acct_rec r = { .kind = LOGIN_ACCT_SESSION_START, .at_ms = login_wall_ms() };
	snprintf(r.id, sizeof(r.id), "%s", a->sid);
	snprintf(r.user, sizeof(r.user), "%s", a->in.user);
	snprintf(r.a, sizeof(r.a), "%s", a->pub);
	snprintf(r.b, sizeof(r.b), "%s", a->priv);
	snprintf(r.what, sizeof(r.what), "%s", a->nat == LOGIN_NAT_OUTER ? "outer" : "inner");
	login_acct_push(env, &r);
	if (rep->len == LOGIN_CID_HEX - 1) {
		/* The newest login wins: the older session ends here, and its
		 * token answers 401 session_replaced from now on. */
		struct login_acct_rec e = { .kind = LOGIN_ACCT_SESSION_END, .at_ms = r.at_ms };
		snprintf(e.id, sizeof(e.id), "%s", rep->str);
		snprintf(e.user, sizeof(e.user), "%s", a->in.user);
		snprintf(e.what, sizeof(e.what), "replaced");
		login_acct_push(env, &e);
	}
	login_count(env, "ok");
	atomic_fetch_add(&env->logins_ok, 1);

	int hb_ms =
		login_jitter(a->set->heartbeat_s * 1000, a->set->jitter_pct, randombytes_random());
	struct jw w;
	jw_init(&w, 512);
	jw_lit(&w, "{");
	jw_key(&w, false, "token");
	jw_str(&w, a->token);
	jw_key(&w, true, "user");
	jw_str(&w, a->in.user);
	jw_key(&w, true, "session_id");
	jw_str(&w, a->sid);
	jw_key(&w, true, "nat");
	jw_str(&w, a->nat == LOGIN_NAT_OUTER ? "outer" : "inner");
	jw_key(&w, true, "probe");
	jw_str(&w, a->probe);
	jw_key(&w, true, "public_addr");
	jw_str(&w, a->pub);
	jw_key(&w, true, "public_ip");
	jw_str(&w, a->ip);
	jw_key(&w, true, "heartbeat_s");
	jw_int(&w, (hb_ms + 999) / 1000);
	jw_key(&w, true, "heartbeat_ms");
	jw_int(&w, hb_ms);
	jw_key(&w, true, "session_ttl_s");
	jw_int(&w, login_ttl_ms(a->set) / 1000);
	jw_lit(&w, "}");
	size_t len;
	char *text = jw_finish(&w, &len);
	log_info("login %s from %s: %s (probe %s)", a->in.user, a->pub,
		 a->nat == LOGIN_NAT_OUTER ? "outer" : "inner", a->probe);
	login_reply_text(a->req, 200, text, len);
	login_att_finish(a);
}

/* Loop thread: the session goes to Redis in one script; the newest login of
 * an account replaces any older one. */
static void
login_session_write(struct login_att *a)
{
	struct login_env *env = a->env;
	unsigned char secret[LOGIN_SECRET_LEN], sidb[16];
	char ksess[128], kpush[128], ttl[24], port[8], pport[8], now[24];

	randombytes_buf(secret, sizeof(secret));
	randombytes_buf(sidb, sizeof(sidb));
	sodium_bin2hex(a->sid, sizeof(a->sid), sidb, sizeof(sidb));
	int r = login_token_make(a->in.user, secret, a->token, sizeof(a->token), a->th);
	sodium_memzero(secret, sizeof(secret));
	if (r < 0) {
		http_reply_error(a->req, 500, "internal", "token formatting failed");
		login_att_finish(a);
		return;
	}
	addr_format(&a->client, a->pub, sizeof(a->pub));
	if (a->in.has_private)
		addr_format(&a->in.private_addr, a->priv, sizeof(a->priv));
	if (a->in.has_pk)
		sodium_bin2base64(a->pk64, sizeof(a->pk64), a->in.pk, LOGIN_PK_LEN,
				  sodium_base64_VARIANT_ORIGINAL);
	login_key(env, ksess, sizeof(ksess), "sess", a->in.user);
	login_key(env, kpush, sizeof(kpush), "push", a->in.user);
	snprintf(ttl, sizeof(ttl), "%lld", login_ttl_ms(a->set));
	snprintf(port, sizeof(port), "%d", a->in.listen_port);
	snprintf(pport, sizeof(pport), "%u", a->client.port);
	snprintf(now, sizeof(now), "%lld", login_wall_ms());
	const char *keys[] = { ksess, kpush };
	const char *args[] = {
		a->th,  ttl,     "th",    a->th,
		"sid",  a->sid,  "nat",   a->nat == LOGIN_NAT_OUTER ? "outer" : "inner",
		"ip",   a->ip,   "pport", pport,
		"port", port,    "priv",  a->priv,
		"pk",   a->pk64, "login", now,
		"seen", now
	};
	if (login_eval(env, login_session_cb, a, &login_scr_login, 2, keys,
		       (int)(sizeof(args) / sizeof(args[0])), args) < 0)
		login_session_cb(NULL, -EAGAIN, a);
}

/* ---------------------------------------------------------------- heartbeat */

int
login_hb_submit(struct login_env *env, const char *user, const char *th,
		void (*cb)(redisReply *rep, int err, void *arg), void *arg)
{
	struct login_settings *s = login_settings_get(env);
	char ksess[128], kpush[128], ttl[24], now[24];
	login_key(env, ksess, sizeof(ksess), "sess", user);
	login_key(env, kpush, sizeof(kpush), "push", user);
	snprintf(ttl, sizeof(ttl), "%lld", login_ttl_ms(s));
	snprintf(now, sizeof(now), "%lld", login_wall_ms());
	login_settings_put(s);
	const char *keys[] = { ksess, kpush }, *args[] = { th, ttl, now };
	return login_eval(env, cb, arg, &login_scr_hb, 2, keys, 3, args);
}

bool
login_hb_has_requests(const redisReply *rep)
{
	return rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
	       rep->element[1]->type == REDIS_REPLY_ARRAY && rep->element[1]->elements > 0;
}

void
login_hb_answer(struct login_env *env, struct http_req *req, redisReply *rep, int err, int hb_s)
{
	if (err || (rep && (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
			    rep->element[0]->type != REDIS_REPLY_INTEGER))) {
		http_reply_retry(req, 503, 1, "redis_unavailable",
				 "the session store is unreachable; retry shortly");
		return;
	}
	if (rep && rep->element[0]->integer == 2) {
		http_reply_error(req, 401, "session_replaced",
				 "a newer login of this account took over; do not log in again "
				 "automatically");
		return;
	}
	if (rep && rep->element[0]->integer != 1) {
		http_reply_error(req, 401, "invalid_session",
				 "no such session (expired, logged out or forged); log in again");
		return;
	}
	int pct = 0;
	struct login_settings *s = login_settings_get(env);
	pct = s->jitter_pct;
	login_settings_put(s);
	int hb_ms = login_jitter(hb_s * 1000, pct, randombytes_random());
	struct jw w;
	jw_init(&w, 256);
	jw_lit(&w, "{\"ok\":true");
	jw_key(&w, true, "heartbeat_s");
	jw_int(&w, (hb_ms + 999) / 1000);
	jw_key(&w, true, "heartbeat_ms");
	jw_int(&w, hb_ms);
	jw_key(&w, true, "requests");
	jw_lit(&w, "[");
	if (login_hb_has_requests(rep)) {
		redisReply *l = rep->element[1];
		size_t n = 0;
		for (size_t i = 0; i < l->elements; i++) {
			if (l->element[i]->type != REDIS_REPLY_STRING)
				continue;
			if (n++)
				jw_lit(&w, ",");
			/* Written by this daemon as JSON objects. */
			jw_raw(&w, l->element[i]->str, l->element[i]->len);
		}
		met_add(env->m.pushes, (double)n);
	}
	jw_lit(&w, "]}");
	size_t len;
	char *text = jw_finish(&w, &len);
	login_reply_text(req, 200, text, len);
}

struct login_hb {
	struct login_env *env;
	struct http_req *req;
	char user[LOGIN_USER_MAX + 1];
	char th[LOGIN_TH_HEX];
	int wait_s, hb_s;
	unsigned long long seq0;
};

static void
login_hb_cb(redisReply *rep, int err, void *arg)
{
	struct login_hb *h = arg;
	if (!err && h->wait_s > 0 && rep && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
	    rep->element[0]->type == REDIS_REPLY_INTEGER && rep->element[0]->integer == 1 &&
	    !login_hb_has_requests(rep)) {
		/* Nothing waiting: park until a request comes or wait_s passes. */
		login_waiters_park(h->env, h->req, h->user, h->th, h->wait_s, h->seq0, h->hb_s);
		free(h);
		return;
	}
	login_hb_answer(h->env, h->req, rep, err, h->hb_s);
	http_resume(h->req);
	free(h);
}

static int
login_auth(struct http_req *req, char *user, size_t usize, char th[LOGIN_TH_HEX])
{
	if (login_parse_token(http_req_header(req, "Authorization"), user, usize, th) < 0) {
		http_reply_header(req, "WWW-Authenticate", "Bearer");
		http_reply_error(req, 401, "invalid_session",
				 "Authorization: Bearer <session token> is missing or malformed");
		return -EINVAL;
	}
	return 0;
}

static void
login_handle_heartbeat(struct http_req *req, void *arg)
{
	struct login_env *env = arg;
	struct login_hb *h = calloc(1, sizeof(*h));
	const char *w = http_req_query(req, "wait");

	if (!h) {
		http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	if (login_auth(req, h->user, sizeof(h->user), h->th) < 0) {
		free(h);
		return;
	}
	struct login_settings *s = login_settings_get(env);
	h->hb_s = s->heartbeat_s;
	int wait_max = s->wait_max_s;
	login_settings_put(s);
	if (w) {
		char *end;
		long v = strtol(w, &end, 10);
		if (!*w || *end || v < 0 || v > 3600) {
			free(h);
			http_reply_error(req, 400, "bad_request",
					 "wait must be a number of seconds 0-3600");
			return;
		}
		/* A parked poll must not outlive its session (TTL = 3 beats):
		 * at most two intervals, then it answers and refreshes. */
		if (wait_max > 2 * h->hb_s)
			wait_max = 2 * h->hb_s;
		h->wait_s = (int)(v > wait_max ? wait_max : v);
	}
	h->env = env;
	h->req = req;
	met_add(env->m.heartbeats, 1);
	h->seq0 = login_waiters_seq(env);
	http_defer(req);
	if (login_hb_submit(env, h->user, h->th, login_hb_cb, h) < 0)
		login_hb_cb(NULL, -EAGAIN, h);
}

/* ---------------------------------------------------------------- logout */

struct login_out {
	struct login_env *env;
	struct http_req *req;
	char user[LOGIN_USER_MAX + 1];
};

static void
login_logout_cb(redisReply *rep, int err, void *arg)
{
	struct login_out *o = arg;
	if (err || !rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER) {
		http_reply_retry(o->req, 503, 1, "redis_unavailable",
				 "the session store is unreachable; retry shortly");
	} else if (rep->element[0]->integer != 1) {
		http_reply_error(o->req, 401, "invalid_session", "no such session");
	} else {
		struct login_acct_rec r = { .kind = LOGIN_ACCT_SESSION_END,
					    .at_ms = login_wall_ms() };
		if (rep->elements > 1 && rep->element[1]->type == REDIS_REPLY_STRING)
			snprintf(r.id, sizeof(r.id), "%s", rep->element[1]->str);
		snprintf(r.user, sizeof(r.user), "%s", o->user);
		snprintf(r.what, sizeof(r.what), "logout");
		if (r.id[0])
			login_acct_push(o->env, &r);
		http_reply_json(o->req, 200, json_pack("{s:b}", "ok", 1));
	}
	http_resume(o->req);
	free(o);
}

static void
login_handle_logout(struct http_req *req, void *arg)
{
	struct login_env *env = arg;
	char th[LOGIN_TH_HEX], ksess[128], kpush[128];
	struct login_out *o = calloc(1, sizeof(*o));

	if (!o) {
		http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	if (login_auth(req, o->user, sizeof(o->user), th) < 0) {
		free(o);
		return;
	}
	o->env = env;
	o->req = req;
	login_key(env, ksess, sizeof(ksess), "sess", o->user);
	login_key(env, kpush, sizeof(kpush), "push", o->user);
	const char *keys[] = { ksess, kpush }, *args[] = { th };
	http_defer(req);
	if (login_eval(env, login_logout_cb, o, &login_scr_logout, 2, keys, 1, args) < 0)
		login_logout_cb(NULL, -EAGAIN, o);
}

const struct http_route login_api_routes[] = {
	{ "POST", "/v1/register", login_handle_register, false },
	{ "POST", "/v1/login", login_handle_login, false },
	{ "POST", "/v1/heartbeat", login_handle_heartbeat, false },
	{ "POST", "/v1/logout", login_handle_logout, false },
	{ "POST", "/v1/connect", login_handle_connect, false },
	{ "POST", "/v1/connect/{}/result", login_handle_result, false },
};
const size_t login_api_nroutes = sizeof(login_api_routes) / sizeof(login_api_routes[0]);
