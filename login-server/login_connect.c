// SPDX-License-Identifier: MIT
/* login-server: connection brokering (seed 000 §4) and connect results. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"
#include "log.h"
#include "login.h"

/* KEYS: sess. ARGV: th. {0} no session, {2} replaced, {1, {field, value...}}. */
static const char login_lua_auth[] = "local h = redis.call('HGETALL', KEYS[1])\n"
				     "if #h == 0 then return {0} end\n"
				     "local t = {}\n"
				     "for i = 1, #h, 2 do t[h[i]] = h[i + 1] end\n"
				     "if t['th'] ~= ARGV[1] then\n"
				     "  if t['prev'] == ARGV[1] then return {2} end\n"
				     "  return {0}\n"
				     "end\n"
				     "return {1, h}\n";

#define LOGIN_CONN_TTL "3600" /* conn:{CID} lives this long (s) */

struct login_side {
	bool present;
	char user[LOGIN_USER_MAX + 1];
	char nat[8], ip[ADDR_STR_MAX], port[8], priv[ADDR_STR_MAX], pk[LOGIN_PK_B64];
};

struct login_cx {
	struct login_env *env;
	struct http_req *req;
	struct login_settings *set;
	bool is_result;
	int success;
	char th[LOGIN_TH_HEX];
	char cid[LOGIN_CID_HEX];
	struct login_side me, peer;
	/* result: the stored connect */
	char conn_a[LOGIN_USER_MAX + 1], conn_b[LOGIN_USER_MAX + 1], conn_mode[16];
	bool conn_found;
	int pending;
	bool failed;
	long long auth;
	/* relay candidates */
	char **rid;
	char **rurl;
	double *rsess, *rcap;
	size_t nrelays;
	enum login_mode mode;
	int relay_idx;
	/* The answer, sent when the write that must precede it is done. */
	char *answer;
	size_t answer_len;
};

static void
login_cx_free(struct login_cx *c)
{
	for (size_t i = 0; i < c->nrelays; i++) {
		free(c->rid[i]);
		free(c->rurl[i]);
	}
	free(c->rid);
	free(c->rurl);
	free(c->rsess);
	free(c->rcap);
	free(c->answer);
	login_settings_put(c->set);
	free(c);
}

static void
login_cx_finish(struct login_cx *c)
{
	http_resume(c->req);
	login_cx_free(c);
}

static void
login_cx_unavailable(struct login_cx *c)
{
	http_reply_retry(c->req, 503, 1, "redis_unavailable",
			 "the session store is unreachable; retry shortly");
	login_cx_finish(c);
}

static void
login_side_fill(struct login_side *s, const redisReply *h)
{
	const char *v;
	s->present = h && h->type == REDIS_REPLY_ARRAY && h->elements >= 2;
	if (!s->present)
		return;
#define F(field, name)                                                                             \
	v = rds_hash_field(h, name);                                                               \
	snprintf(s->field, sizeof(s->field), "%s", v ? v : "")
	F(nat, "nat");
	F(ip, "ip");
	F(port, "port");
	F(priv, "priv");
	F(pk, "pk");
#undef F
}

static void
login_side_view(const struct login_side *s, struct login_peer_view *v)
{
	memset(v, 0, sizeof(*v));
	v->nat = strcmp(s->nat, "outer") == 0 ? LOGIN_NAT_OUTER : LOGIN_NAT_INNER;
	if (addr_parse(s->ip, strlen(s->ip), false, &v->public_ip) < 0)
		memset(&v->public_ip, 0, sizeof(v->public_ip));
	v->has_private = s->priv[0] != '\0';
	v->has_key = s->pk[0] != '\0';
}

/* "ip:listen_port" of a side, as a dialable address. */
static void
login_side_dial(const struct login_side *s, char *buf, size_t size)
{
	struct addr a;
	if (addr_parse(s->ip, strlen(s->ip), false, &a) < 0) {
		snprintf(buf, size, "%s", "");
		return;
	}
	a.port = (unsigned short)atoi(s->port);
	addr_format(&a, buf, size);
}

static void login_cx_decided(struct login_cx *c);

/* ---------------------------------------------------------------- relays */

static void
login_zrem_cb(redisReply *rep, int err, void *arg)
{
	(void)rep;
	(void)err;
	(void)arg;
}

static void
login_relay_hash_cb(redisReply *rep, int err, void *arg)
{
	void **slot = arg;
	struct login_cx *c = slot[0];
	size_t i = (size_t)(uintptr_t)slot[1];
	free(slot);
	if (err)
		c->failed = true;
	else if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2) {
		const char *url = rds_hash_field(rep, "url");
		const char *s = rds_hash_field(rep, "sessions");
		const char *cap = rds_hash_field(rep, "capacity");
		c->rurl[i] = url ? strdup(url) : NULL;
		c->rsess[i] = s ? strtod(s, NULL) : 0;
		c->rcap[i] = cap ? strtod(cap, NULL) : 0;
	}
	if (--c->pending > 0)
		return;
	if (c->failed) {
		login_cx_unavailable(c);
		return;
	}
	struct login_relay_cand cand[128];
	size_t n = c->nrelays < 128 ? c->nrelays : 128;
	char zkey[128];
	snprintf(zkey, sizeof(zkey), "%srelays", rds_async_prefix(c->env->ra));
	for (size_t k = 0; k < n; k++) {
		cand[k] = (struct login_relay_cand){ .id = c->rid[k],
						     .url = c->rurl[k],
						     .sessions = c->rsess[k],
						     .capacity = c->rcap[k] };
		if (!c->rurl[k]) {
			/* The hash expired: the relay died without removing
			 * itself. Readers clean up (contract). */
			const char *z[] = { "ZREM", zkey, c->rid[k] };
			rds_async_argv(c->env->ra, login_zrem_cb, NULL, 3, z, NULL);
		}
	}
	c->relay_idx = login_relay_pick(cand, n);
	login_cx_decided(c);
}

/* Looks up the candidates' hashes; continues in login_cx_decided. */
static void
login_relay_lookup(struct login_cx *c)
{
	char key[160];
	if (c->nrelays == 0 || !c->set->has_relay_key) {
		c->relay_idx = -1;
		login_cx_decided(c);
		return;
	}
	c->pending = 1;
	for (size_t i = 0; i < c->nrelays; i++) {
		void **slot = malloc(2 * sizeof(void *));
		if (!slot) {
			c->failed = true;
			break;
		}
		slot[0] = c;
		slot[1] = (void *)(uintptr_t)i;
		login_key(c->env, key, sizeof(key), "relay", c->rid[i]);
		const char *argv[] = { "HGETALL", key };
		c->pending++;
		if (rds_async_argv(c->env->ra, login_relay_hash_cb, slot, 2, argv, NULL) < 0) {
			free(slot);
			c->pending--;
			c->failed = true;
			break;
		}
	}
	/* The extra count held during the loop. */
	c->pending--;
	if (c->pending == 0) {
		if (c->failed)
			login_cx_unavailable(c);
		else {
			c->relay_idx = -1;
			login_cx_decided(c);
		}
	}
}

/* Mints the relay token of one side. Returns 0 or -1. */
static int
login_relay_token(struct login_cx *c, char side, const char *user, const char *peer, char *out,
		  size_t size)
{
	char payload[256];
	int n = login_relay_payload(c->cid, side, user, peer, payload, sizeof(payload));
	if (n < 0)
		return -1;
	uint64_t exp = (uint64_t)(login_wall_ms() / 1000 + c->set->relay_ttl_s);
	return tok_mint(&c->set->relay_key, TOK_KIND_RELAY, exp, payload, (size_t)n, out, size) < 0
		       ? -1
		       : 0;
}

/* ---------------------------------------------------------------- replies */

static void
login_conn_write_cb(redisReply *rep, int err, void *arg)
{
	struct login_cx *c = arg;
	if (err || !rep || rep->type == REDIS_REPLY_ERROR) {
		login_cx_unavailable(c);
		return;
	}
	/* Stored (and the push before it, on the same connection): answer. */
	login_reply_text(c->req, 200, c->answer, c->answer_len);
	c->answer = NULL;
	login_cx_finish(c);
}

/* Keeps the answer and submits the write whose reply sends it. */
static void
login_cx_write(struct login_cx *c, char *answer, size_t len, int argc, const char **argv)
{
	c->answer = answer;
	c->answer_len = len;
	if (rds_async_argv(c->env->ra, login_conn_write_cb, c, argc, argv, NULL) < 0)
		login_cx_unavailable(c);
}

static void
login_acct_conn(struct login_env *env, enum login_acct_kind kind, const char *cid, const char *a,
		const char *b, const char *what)
{
	struct login_acct_rec r = { .kind = kind, .at_ms = login_wall_ms() };
	snprintf(r.id, sizeof(r.id), "%s", cid);
	snprintf(r.user, sizeof(r.user), "%s", a ? a : "");
	snprintf(r.peer, sizeof(r.peer), "%s", b ? b : "");
	snprintf(r.what, sizeof(r.what), "%s", what);
	login_acct_push(env, &r);
}

/* The relay part of an answer or push: "relay":{...},"token":"..." */
static void
login_jw_relay(struct jw *w, struct login_cx *c, const char *token)
{
	jw_key(w, true, "relay");
	jw_lit(w, "{");
	jw_key(w, false, "id");
	jw_str(w, c->rid[c->relay_idx]);
	jw_key(w, true, "url");
	jw_str(w, c->rurl[c->relay_idx]);
	jw_lit(w, "}");
	jw_key(w, true, "token");
	jw_str(w, token);
	jw_key(w, true, "token_expires_in");
	jw_int(w, c->set->relay_ttl_s);
}

/* A new connect: answer the initiator, push what the target needs, store
 * the connect for its result. a = me (initiator), b = peer (target). */
static void
login_connect_finish(struct login_cx *c)
{
	struct login_env *env = c->env;
	struct jw w, p;
	char dial[ADDR_STR_MAX], tok_a[TOK_STR_MAX], tok_b[TOK_STR_MAX];
	bool push = c->mode != LOGIN_MODE_DIRECT;
	unsigned char cidb[16];

	randombytes_buf(cidb, sizeof(cidb));
	sodium_bin2hex(c->cid, sizeof(c->cid), cidb, sizeof(cidb));
	if (c->mode == LOGIN_MODE_RELAY &&
	    (login_relay_token(c, 'a', c->me.user, c->peer.user, tok_a, sizeof(tok_a)) < 0 ||
	     login_relay_token(c, 'b', c->peer.user, c->me.user, tok_b, sizeof(tok_b)) < 0)) {
		http_reply_error(c->req, 500, "internal", "minting relay tokens failed");
		login_cx_finish(c);
		return;
	}
	jw_init(&w, 512);
	jw_init(&p, 512);
	jw_lit(&w, "{");
	jw_key(&w, false, "mode");
	jw_str(&w, login_mode_name(c->mode));
	jw_key(&w, true, "cid");
	jw_str(&w, c->cid);
	jw_key(&w, true, "target");
	jw_str(&w, c->peer.user);
	jw_key(&w, true, "target_nat");
	jw_str(&w, c->peer.nat);
	jw_lit(&p, "{");
	jw_key(&p, false, "type");
	jw_str(&p, login_mode_name(c->mode));
	jw_key(&p, true, "cid");
	jw_str(&p, c->cid);
	jw_key(&p, true, "from");
	jw_str(&p, c->me.user);
	switch (c->mode) {
	case LOGIN_MODE_DIRECT:
		login_side_dial(&c->peer, dial, sizeof(dial));
		jw_key(&w, true, "addr");
		jw_str(&w, dial);
		jw_key(&w, true, "public_key");
		jw_str(&w, c->peer.pk[0] ? c->peer.pk : NULL);
		break;
	case LOGIN_MODE_REVERSE:
		/* The outer initiator is the small service peer: the inner
		 * target connects out to it (seed 000 §4.3.1). */
		jw_key(&w, true, "public_key");
		jw_str(&w, c->peer.pk[0] ? c->peer.pk : NULL);
		login_side_dial(&c->me, dial, sizeof(dial));
		jw_key(&p, true, "addr");
		jw_str(&p, dial);
		jw_key(&p, true, "public_key");
		jw_str(&p, c->me.pk[0] ? c->me.pk : NULL);
		break;
	case LOGIN_MODE_LAN: {
		/* Fig. 5: each side gets the other's private address and key;
		 * the target proves itself with the connect id sealed to the
		 * initiator's key, which only the initiator can open. */
		unsigned char pk[LOGIN_PK_LEN], sealed[LOGIN_CID_HEX - 1 + crypto_box_SEALBYTES];
		char sealed64[sizeof(sealed) * 2];
		if (tok_b64_decode(c->me.pk, strlen(c->me.pk), pk, sizeof(pk)) != LOGIN_PK_LEN ||
		    crypto_box_seal(sealed, (const unsigned char *)c->cid, LOGIN_CID_HEX - 1, pk) !=
			    0) {
			jw_discard(&w);
			jw_discard(&p);
			http_reply_error(c->req, 500, "internal", "sealing the connect id failed");
			login_cx_finish(c);
			return;
		}
		sodium_bin2base64(sealed64, sizeof(sealed64), sealed, sizeof(sealed),
				  sodium_base64_VARIANT_ORIGINAL);
		jw_key(&w, true, "private_addr");
		jw_str(&w, c->peer.priv);
		jw_key(&w, true, "public_key");
		jw_str(&w, c->peer.pk);
		jw_key(&p, true, "private_addr");
		jw_str(&p, c->me.priv);
		jw_key(&p, true, "public_key");
		jw_str(&p, c->me.pk);
		jw_key(&p, true, "sealed_cid");
		jw_str(&p, sealed64);
		break;
	}
	case LOGIN_MODE_RELAY:
		login_jw_relay(&w, c, tok_a);
		login_jw_relay(&p, c, tok_b);
		break;
	default:
		break;
	}
	jw_lit(&w, "}");
	jw_lit(&p, "}");
	size_t wlen, plen;
	char *wt = jw_finish(&w, &wlen), *pt = jw_finish(&p, &plen);
	if (!wt || !pt) {
		free(wt);
		free(pt);
		http_reply_error(c->req, 500, "internal", "out of memory");
		login_cx_finish(c);
		return;
	}
	if (push && login_push(env, c->peer.user, pt, login_ttl_ms(c->set)) < 0) {
		free(wt);
		free(pt);
		login_cx_unavailable(c);
		return;
	}
	free(pt);
	met_add(met_child(env->m.connects, login_mode_name(c->mode)), 1);
	login_kra_count(env, c->mode == LOGIN_MODE_RELAY, true);
	login_acct_conn(env, LOGIN_ACCT_CONN_NEW, c->cid, c->me.user, c->peer.user,
			login_mode_name(c->mode));
	/* The connect is stored after the push on the same connection: its
	 * reply means both are in Redis, and only then does the answer go. */
	char key[128], created[24];
	login_key(env, key, sizeof(key), "conn", c->cid);
	snprintf(created, sizeof(created), "%lld", login_wall_ms());
	const char *mode = login_mode_name(c->mode);
	const char *ex[] = { "EXPIRE", key, LOGIN_CONN_TTL };
	const char *hs[] = { "HSET", key,  "a",     c->me.user, "b",       c->peer.user,
			     "mode", mode, "first", mode,       "created", created };
	login_cx_write(c, wt, wlen, 12, hs);
	rds_async_argv(env->ra, login_zrem_cb, NULL, 3, ex, NULL);
}

/* lan failed: the initiator gets a relay, the target its token by push. */
static void
login_fallback_finish(struct login_cx *c)
{
	struct login_env *env = c->env;
	char tok_a[TOK_STR_MAX], tok_b[TOK_STR_MAX];
	struct jw w, p;

	if (login_relay_token(c, 'a', c->conn_a, c->conn_b, tok_a, sizeof(tok_a)) < 0 ||
	    login_relay_token(c, 'b', c->conn_b, c->conn_a, tok_b, sizeof(tok_b)) < 0) {
		http_reply_error(c->req, 500, "internal", "minting relay tokens failed");
		login_cx_finish(c);
		return;
	}
	jw_init(&w, 512);
	jw_init(&p, 512);
	jw_lit(&w, "{\"recorded\":true,\"mode\":\"relay\",\"fallback\":true");
	jw_key(&w, true, "cid");
	jw_str(&w, c->cid);
	jw_key(&w, true, "target");
	jw_str(&w, c->conn_b);
	login_jw_relay(&w, c, tok_a);
	jw_lit(&w, "}");
	jw_lit(&p, "{\"type\":\"relay\",\"fallback\":true");
	jw_key(&p, true, "cid");
	jw_str(&p, c->cid);
	jw_key(&p, true, "from");
	jw_str(&p, c->conn_a);
	login_jw_relay(&p, c, tok_b);
	jw_lit(&p, "}");
	size_t wlen, plen;
	char *wt = jw_finish(&w, &wlen), *pt = jw_finish(&p, &plen);
	if (!wt || !pt || login_push(env, c->conn_b, pt, login_ttl_ms(c->set)) < 0) {
		free(wt);
		free(pt);
		login_cx_unavailable(c);
		return;
	}
	free(pt);
	met_add(env->m.relay_fallbacks, 1);
	met_add(met_child(env->m.results, "lan", "failure"), 1);
	login_kra_count(env, true, false);
	login_acct_conn(env, LOGIN_ACCT_CONN_MODE, c->cid, NULL, NULL, "relay");
	char key[128];
	login_key(env, key, sizeof(key), "conn", c->cid);
	const char *hs[] = { "HSET", key, "mode", "relay", "lan_failed", "1" };
	login_cx_write(c, wt, wlen, 6, hs);
}

static void
login_cx_decided(struct login_cx *c)
{
	if (c->mode == LOGIN_MODE_RELAY && c->relay_idx < 0) {
		http_reply_retry(
			c->req, 503, 5, "no_relay_available",
			c->set->has_relay_key
				? "both peers are behind different NATs and no relay-server "
				  "has a free slot; retry later"
				: "both peers are behind different NATs and this server has "
				  "no relay configured ([relay] token_key)");
		login_cx_finish(c);
		return;
	}
	if (c->is_result)
		login_fallback_finish(c);
	else
		login_connect_finish(c);
}

/* ---------------------------------------------------------------- first round */

static void
login_cx_step(struct login_cx *c)
{
	struct login_env *env = c->env;
	if (c->failed) {
		login_cx_unavailable(c);
		return;
	}
	if (c->auth != 1) {
		if (c->auth == 2)
			http_reply_error(c->req, 401, "session_replaced",
					 "a newer login of this account took over");
		else
			http_reply_error(c->req, 401, "invalid_session",
					 "no such session (expired, logged out or forged)");
		login_cx_finish(c);
		return;
	}
	if (!c->is_result) {
		if (!c->peer.present) {
			http_reply_error(c->req, 404, "target_offline",
					 "%s is not online (or does not exist)", c->peer.user);
			login_cx_finish(c);
			return;
		}
		struct login_peer_view a, b;
		login_side_view(&c->me, &a);
		login_side_view(&c->peer, &b);
		c->mode = login_decide(&a, &b);
		if (c->mode == LOGIN_MODE_RELAY) {
			login_relay_lookup(c);
			return;
		}
		c->relay_idx = -1;
		login_connect_finish(c);
		return;
	}
	/* A result: only the two sides may report, and the id of somebody
	 * else's connect looks exactly like an unknown one. */
	bool is_a = c->conn_found && strcmp(c->conn_a, c->me.user) == 0;
	bool is_b = c->conn_found && strcmp(c->conn_b, c->me.user) == 0;
	if (!is_a && !is_b) {
		http_reply_error(c->req, 404, "unknown_connect",
				 "no connect %s of yours (it may have expired)", c->cid);
		login_cx_finish(c);
		return;
	}
	if (!c->success && is_a && strcmp(c->conn_mode, "lan") == 0) {
		c->mode = LOGIN_MODE_RELAY;
		login_relay_lookup(c);
		return;
	}
	const char *outcome = c->success ? "success" : "failure";
	met_add(met_child(env->m.results, c->conn_mode[0] ? c->conn_mode : "unknown", outcome), 1);
	login_acct_conn(env, LOGIN_ACCT_CONN_RESULT, c->cid, c->me.user, NULL, outcome);
	char key[128];
	login_key(env, key, sizeof(key), "conn", c->cid);
	const char *hs[] = { "HSET", key, is_a ? "outcome_a" : "outcome_b", outcome };
	json_t *o =
		json_pack("{s:b, s:s, s:s}", "recorded", 1, "mode", c->conn_mode, "cid", c->cid);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	login_cx_write(c, text, text ? strlen(text) : 0, 4, hs);
}

static void
login_cx_cb(redisReply *rep, int err, void *arg)
{
	void **slot = arg;
	struct login_cx *c = slot[0];
	int which = (int)(uintptr_t)slot[1];
	free(slot);

	if (err || !rep || rep->type == REDIS_REPLY_ERROR) {
		c->failed = true;
	} else if (which == 0) {
		if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
		    rep->element[0]->type == REDIS_REPLY_INTEGER) {
			c->auth = rep->element[0]->integer;
			if (c->auth == 1 && rep->elements >= 2)
				login_side_fill(&c->me, rep->element[1]);
		} else
			c->failed = true;
	} else if (which == 1) {
		if (c->is_result) {
			const char *a = rds_hash_field(rep, "a"), *b = rds_hash_field(rep, "b");
			const char *m = rds_hash_field(rep, "mode");
			c->conn_found = a && b && m;
			if (c->conn_found) {
				snprintf(c->conn_a, sizeof(c->conn_a), "%s", a);
				snprintf(c->conn_b, sizeof(c->conn_b), "%s", b);
				snprintf(c->conn_mode, sizeof(c->conn_mode), "%s", m);
			}
		} else
			login_side_fill(&c->peer, rep);
	} else if (rep->type == REDIS_REPLY_ARRAY) {
		/* ZRANGE relays 0 N-1 WITHSCORES: id, score pairs. */
		size_t n = rep->elements / 2;
		c->rid = calloc(n + 1, sizeof(*c->rid));
		c->rurl = calloc(n + 1, sizeof(*c->rurl));
		c->rsess = calloc(n + 1, sizeof(*c->rsess));
		c->rcap = calloc(n + 1, sizeof(*c->rcap));
		if (!c->rid || !c->rurl || !c->rsess || !c->rcap)
			c->failed = true;
		for (size_t i = 0; !c->failed && i < n; i++) {
			const redisReply *e = rep->element[2 * i];
			if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > 64 ||
			    strpbrk(e->str, "{}"))
				continue; /* ids go into key names */
			c->rid[c->nrelays] = strdup(e->str);
			if (c->rid[c->nrelays])
				c->nrelays++;
		}
	}
	if (--c->pending == 0)
		login_cx_step(c);
}

static int
login_cx_submit(struct login_cx *c, int which, int argc, const char **argv)
{
	void **slot = malloc(2 * sizeof(void *));
	if (!slot)
		return -ENOMEM;
	slot[0] = c;
	slot[1] = (void *)(uintptr_t)which;
	int r = rds_async_argv(c->env->ra, login_cx_cb, slot, argc, argv, NULL);
	if (r < 0)
		free(slot);
	return r;
}

/* One round trip: my session (checked), the target's session or the
 * stored connect, and the least loaded relays. */
static void
login_cx_start(struct login_cx *c, const char *second_kind, const char *second_id)
{
	struct login_env *env = c->env;
	char ksess[128], k2[128], zkey[128], stop[16];

	login_key(env, ksess, sizeof(ksess), "sess", c->me.user);
	login_key(env, k2, sizeof(k2), second_kind, second_id);
	snprintf(zkey, sizeof(zkey), "%srelays", rds_async_prefix(env->ra));
	snprintf(stop, sizeof(stop), "%d", c->set->relay_candidates - 1);
	http_defer(c->req);
	c->pending = 4; /* three commands and the submission loop */
	const char *a0[] = { "EVAL", login_lua_auth, "1", ksess, c->th };
	const char *a1[] = { "HGETALL", k2 };
	const char *a2[] = { "ZRANGE", zkey, "0", stop, "WITHSCORES" };
	if (login_cx_submit(c, 0, 5, a0) < 0) {
		c->failed = true;
		c->pending--;
	}
	if (login_cx_submit(c, 1, 2, a1) < 0) {
		c->failed = true;
		c->pending--;
	}
	if (login_cx_submit(c, 2, 5, a2) < 0) {
		c->failed = true;
		c->pending--;
	}
	if (--c->pending == 0)
		login_cx_step(c);
}

static struct login_cx *
login_cx_new(struct http_req *req, struct login_env *env)
{
	struct login_cx *c = calloc(1, sizeof(*c));
	if (!c) {
		http_reply_error(req, 500, "internal", "out of memory");
		return NULL;
	}
	c->env = env;
	c->req = req;
	c->set = login_settings_get(env);
	c->relay_idx = -1;
	if (login_parse_token(http_req_header(req, "Authorization"), c->me.user, sizeof(c->me.user),
			      c->th) < 0) {
		http_reply_header(req, "WWW-Authenticate", "Bearer");
		http_reply_error(req, 401, "invalid_session",
				 "Authorization: Bearer <session token> is missing or malformed");
		login_cx_free(c);
		return NULL;
	}
	return c;
}

void
login_handle_connect(struct http_req *req, void *arg)
{
	struct login_env *env = arg;
	const char *code = "bad_request";
	char msg[200];
	size_t len;
	const char *body = http_req_body(req, &len);
	struct login_cx *c = login_cx_new(req, env);

	if (!c)
		return;
	if (login_parse_connect(body, len, c->peer.user, sizeof(c->peer.user), &code, msg,
				sizeof(msg)) < 0) {
		http_reply_error(req, 400, code, "%s", msg);
		login_cx_free(c);
		return;
	}
	if (strcmp(c->peer.user, c->me.user) == 0) {
		http_reply_error(req, 400, "bad_target", "a peer cannot connect to itself");
		login_cx_free(c);
		return;
	}
	login_cx_start(c, "sess", c->peer.user);
}

void
login_handle_result(struct http_req *req, void *arg)
{
	struct login_env *env = arg;
	const char *code = "bad_request";
	char msg[200];
	size_t len;
	const char *body = http_req_body(req, &len);
	const char *cid = http_req_param(req, 0);
	struct login_cx *c = login_cx_new(req, env);

	if (!c)
		return;
	c->is_result = true;
	if (!cid || !login_cid_ok(cid)) {
		http_reply_error(req, 404, "unknown_connect", "connect ids are 32 hex digits");
		login_cx_free(c);
		return;
	}
	snprintf(c->cid, sizeof(c->cid), "%s", cid);
	if (login_parse_result(body, len, &c->success, &code, msg, sizeof(msg)) < 0) {
		http_reply_error(req, 400, code, "%s", msg);
		login_cx_free(c);
		return;
	}
	login_cx_start(c, "conn", c->cid);
}
