// SPDX-License-Identifier: MIT
/* relay-server: public API (mailbox, tunnel upgrade, close) and admin handlers. */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dmn.h"
#include "jw.h"
#include "log.h"
#include "rds.h"
#include "relay.h"

/* A long-poll GET waiting for messages (seed 000 §4.4.4: each side fetches
 * what waits for it). Lives from http_defer until it is answered; linked
 * in env->waiters for expiry and in its side for wake-ups, both under
 * env->lock. */
struct relay_waiter {
	struct relay_waiter *prev, *next; /* env->waiters */
	struct relay_waiter *rnext;       /* resume list, after answering */
	struct http_req *req;
	struct relay_sess *s;
	int side;
	long long deadline_ms;
};

static struct relay_env *
relay_env_of(void *arg)
{
	return arg;
}

/* The one place refusals become HTTP answers. */
static void
relay_refuse(struct relay_env *env, struct http_req *req, enum relay_refusal ref,
	     enum relay_end end)
{
	relay_refuse_count(env, ref);
	switch (ref) {
	case RELAY_REF_TOKEN_MISSING:
		http_reply_header(req, "WWW-Authenticate", "Bearer");
		http_reply_error(req, 401, "token_missing",
				 "Authorization: Bearer <relay token> required");
		return;
	case RELAY_REF_TOKEN_INVALID:
		http_reply_error(req, 401, "token_invalid",
				 "the relay token is malformed, not signed by the login-server, "
				 "or not a relay token");
		return;
	case RELAY_REF_TOKEN_EXPIRED:
		http_reply_error(req, 401, "token_expired",
				 "the relay token expired; ask the login-server for a new one");
		return;
	case RELAY_REF_TOKEN_WRONG_SESSION:
		http_reply_error(req, 403, "token_wrong_session",
				 "the relay token is for another connect id");
		return;
	case RELAY_REF_TOKEN_MISMATCH:
		http_reply_error(req, 403, "token_mismatch",
				 "the token's accounts do not match this session's other side");
		return;
	case RELAY_REF_RELAY_FULL:
		http_reply_retry(req, 503, 5, "relay_full",
				 "this relay is at max_sessions; try another relay or later");
		return;
	case RELAY_REF_OVER_SOURCE_CAP:
		http_reply_retry(req, 429, 5, "over_source_cap",
				 "too many relay sessions from your address");
		return;
	case RELAY_REF_OVER_ACCOUNT_CAP:
		http_reply_retry(req, 429, 5, "over_account_cap",
				 "too many relay sessions for your account");
		return;
	case RELAY_REF_MESSAGE_TOO_LARGE:
		http_reply_error(req, 413, "message_too_large",
				 "message over max_message (%zu bytes)", env->lim.max_message);
		return;
	case RELAY_REF_QUEUE_FULL:
		http_reply_retry(req, 429, 1, "queue_full",
				 "the other side has not fetched enough yet; retry the same seq");
		return;
	case RELAY_REF_SEQ_GAP:
		http_reply_error(req, 409, "seq_gap", "seq must be the last accepted seq + 1");
		return;
	case RELAY_REF_MODE_CONFLICT:
		http_reply_error(req, 409, "mode_conflict",
				 "this session already runs in the other mode");
		return;
	case RELAY_REF_SIDE_IN_USE:
		http_reply_error(req, 409, "side_in_use",
				 "this side of the session already has its tunnel connection");
		return;
	case RELAY_REF_SESSION_CLOSED: {
		char code[48];
		snprintf(code, sizeof(code), "session_%s", relay_end_name(end));
		http_reply_error(req, 410, code, "this relay session has ended (%s)",
				 relay_end_name(end));
		return;
	}
	case RELAY_REF_BAD_REQUEST:
		http_reply_error(req, 400, "bad_request", "bad query parameter");
		return;
	case RELAY_REF_UPGRADE_REQUIRED:
		http_reply_header(req, "Upgrade", RELAY_PROTOCOL);
		http_reply_error(req, 426, "upgrade_required",
				 "send Connection: Upgrade and Upgrade: " RELAY_PROTOCOL);
		return;
	case RELAY_REF_SHUTTING_DOWN:
		http_reply_header(req, "Connection", "close");
		http_reply_retry(req, 503, 1, "shutting_down",
				 "this relay is shutting down; ask the login-server again");
		return;
	case RELAY_REF_TUNNEL_UNAVAILABLE:
		http_reply_error(req, 501, "tunnel_unavailable",
				 "this relay serves HTTPS itself and has no tunnel mode; use the "
				 "mailbox, or a relay behind a TLS proxy");
		return;
	case RELAY_REF__N:
		break;
	}
	http_reply_error(req, 500, "internal", "unknown refusal");
}

static enum relay_refusal
relay_tok_ref(enum relay_tok_err e)
{
	switch (e) {
	case RELAY_TOK_MISSING:
		return RELAY_REF_TOKEN_MISSING;
	case RELAY_TOK_EXPIRED:
		return RELAY_REF_TOKEN_EXPIRED;
	case RELAY_TOK_WRONG_SESSION:
		return RELAY_REF_TOKEN_WRONG_SESSION;
	default:
		return RELAY_REF_TOKEN_INVALID;
	}
}

/* Token check, then (under env->lock, which stays held on success) the
 * session. Returns the session, or NULL after answering. */
static struct relay_sess *
relay_open(struct relay_env *env, struct http_req *req, struct relay_token *tok)
{
	const char *cid = http_req_param(req, 0);
	char client[ADDR_STR_MAX];
	enum relay_refusal ref = RELAY_REF_BAD_REQUEST;
	enum relay_end end = RELAY_END_NONE;
	enum relay_tok_err te;
	struct tok_key key;
	struct relay_sess *s;

	if (!relay_cid_valid(cid)) {
		http_reply_error(req, 404, "not_found", "connect ids are 32 lowercase hex digits");
		return NULL;
	}
	pthread_mutex_lock(&env->lock);
	key = env->key;
	pthread_mutex_unlock(&env->lock);
	te = relay_token_check(&key, http_req_header(req, "Authorization"), (uint64_t)dmn_wall_s(),
			       cid, tok);
	sodium_memzero(&key, sizeof(key));
	if (te != RELAY_TOK_OK) {
		relay_refuse(env, req, relay_tok_ref(te), end);
		return NULL;
	}
	addr_format_ip(http_req_client(req), client, sizeof(client));
	pthread_mutex_lock(&env->lock);
	s = relay_sess_attach(env, tok, client, &ref, &end);
	if (!s) {
		pthread_mutex_unlock(&env->lock);
		relay_refuse(env, req, ref, end);
		return NULL;
	}
	return s;
}

/* relay_open for the mailbox endpoints: a tunnel session is refused
 * (mode_conflict), a fresh one becomes a mailbox. Lock held on success. */
static struct relay_sess *
relay_open_mailbox(struct relay_env *env, struct http_req *req, struct relay_token *tok)
{
	struct relay_sess *s = relay_open(env, req, tok);

	if (!s)
		return NULL;
	if (s->mode == RELAY_MODE_TUNNEL) {
		pthread_mutex_unlock(&env->lock);
		relay_refuse(env, req, RELAY_REF_MODE_CONFLICT, RELAY_END_NONE);
		return NULL;
	}
	if (s->mode == RELAY_MODE_NONE)
		relay_set_mode(env, s, RELAY_MODE_MAILBOX);
	return s;
}

/* Messages of mb after `after`, as the JSON answer of a mailbox GET. */
static void
relay_reply_messages(struct relay_env *env, struct http_req *req, struct relay_sess *s, int side)
{
	const struct relay_mbox *mb = &s->side[!side].out;
	size_t budget = env->lim.max_response_bytes, n = 0, len;
	char *b64 = NULL, *text;
	bool more = false;
	struct jw w;

	jw_init(&w, 256);
	jw_lit(&w, "{\"messages\":[");
	for (const struct relay_msg *m = mb->head; m; m = m->next) {
		if (n && m->len > budget) {
			more = true;
			break;
		}
		size_t need = sodium_base64_encoded_len(m->len, sodium_base64_VARIANT_ORIGINAL);
		char *nb = realloc(b64, need);
		if (!nb) {
			w.failed = true;
			break;
		}
		b64 = nb;
		sodium_bin2base64(b64, need, m->data, m->len, sodium_base64_VARIANT_ORIGINAL);
		if (n)
			jw_lit(&w, ",");
		jw_lit(&w, "{");
		jw_key(&w, false, "seq");
		jw_int(&w, (long long)m->seq);
		jw_key(&w, true, "data");
		jw_raw(&w, "\"", 1);
		jw_raw(&w, b64, need - 1);
		jw_raw(&w, "\"}", 2);
		budget = m->len > budget ? 0 : budget - m->len;
		n++;
	}
	free(b64);
	jw_lit(&w, "]");
	jw_key(&w, true, "more");
	jw_bool(&w, more);
	jw_key(&w, true, "acked");
	jw_int(&w, (long long)s->side[side].out.acked);
	jw_key(&w, true, "peer");
	jw_bool(&w, s->side[!side].attached);
	jw_lit(&w, "}");
	text = jw_finish(&w, &len);
	if (!text) {
		http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	if (n)
		met_add(env->m.delivered, (double)n);
	http_reply_take(req, 200, "application/json", text, len);
}

static void
relay_waiter_unlink(struct relay_env *env, struct relay_waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		env->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	env->nwaiters--;
	met_set(env->m.waiters, (double)env->nwaiters);
	if (w->s->side[w->side].waiter == w)
		w->s->side[w->side].waiter = NULL;
}

void
relay_waiter_answer(struct relay_env *env, struct relay_waiter *w, struct relay_waiter **resume)
{
	relay_waiter_unlink(env, w);
	if (w->s->end) {
		char code[48];
		relay_refuse_count(env, RELAY_REF_SESSION_CLOSED);
		snprintf(code, sizeof(code), "session_%s", relay_end_name(w->s->end));
		http_reply_error(w->req, 410, code, "this relay session has ended (%s)",
				 relay_end_name(w->s->end));
	} else {
		relay_reply_messages(env, w->req, w->s, w->side);
		atomic_store(&w->s->last_ms, dmn_now_ms());
	}
	w->rnext = *resume;
	*resume = w;
}

void
relay_waiters_resume(struct relay_waiter *list)
{
	while (list) {
		struct relay_waiter *w = list;
		list = w->rnext;
		http_resume(w->req);
		free(w);
	}
}

void
relay_waiters_expire(struct relay_env *env, long long now_ms, struct relay_waiter **resume)
{
	struct relay_waiter *w = env->waiters, *next;
	for (; w; w = next) {
		next = w->next;
		if (now_ms >= w->deadline_ms || env->stopping)
			relay_waiter_answer(env, w, resume);
	}
}

/* GET /v1/relay/{cid}/messages?ack=K&wait=S */
static void
relay_handle_fetch(struct http_req *req, void *arg)
{
	struct relay_env *env = relay_env_of(arg);
	struct relay_waiter *resume = NULL, *w;
	struct relay_token tok;
	struct relay_sess *s;
	uint64_t ack, wait_s;
	long long wait_ms;
	size_t freed, before;

	if (relay_parse_u64(http_req_query(req, "ack"), 0, UINT64_MAX >> 1, &ack) < 0 ||
	    relay_parse_u64(http_req_query(req, "wait"), UINT64_MAX, 86400, &wait_s) < 0) {
		relay_refuse(env, req, RELAY_REF_BAD_REQUEST, RELAY_END_NONE);
		return;
	}
	s = relay_open_mailbox(env, req, &tok);
	if (!s)
		return;
	wait_ms = wait_s == UINT64_MAX ? env->lim.poll_wait_default_ms : (long long)wait_s * 1000;
	if (wait_ms > env->lim.poll_wait_max_ms)
		wait_ms = env->lim.poll_wait_max_ms;
	atomic_store(&s->last_ms, dmn_now_ms());
	before = s->side[!tok.side].out.count;
	freed = relay_mbox_ack(&s->side[!tok.side].out, ack);
	env->mbox_bytes -= freed;
	env->mbox_msgs -= before - s->side[!tok.side].out.count;
	met_set(env->m.queued_msgs, (double)env->mbox_msgs);
	/* A newer GET of the same side replaces the older one, which is
	 * answered now with what there is (a client that gave up on it and
	 * retried must not leave it holding the messages). */
	if (s->side[tok.side].waiter)
		relay_waiter_answer(env, s->side[tok.side].waiter, &resume);
	if (s->side[!tok.side].out.head || wait_ms == 0 || env->stopping) {
		relay_reply_messages(env, req, s, tok.side);
		pthread_mutex_unlock(&env->lock);
		relay_waiters_resume(resume);
		return;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		pthread_mutex_unlock(&env->lock);
		relay_waiters_resume(resume);
		http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	w->req = req;
	w->s = s;
	w->side = tok.side;
	w->deadline_ms = dmn_now_ms() + wait_ms;
	w->next = env->waiters;
	if (env->waiters)
		env->waiters->prev = w;
	env->waiters = w;
	env->nwaiters++;
	met_set(env->m.waiters, (double)env->nwaiters);
	s->side[tok.side].waiter = w;
	http_defer(req);
	pthread_mutex_unlock(&env->lock);
	relay_waiters_resume(resume);
}

/* POST /v1/relay/{cid}/messages?seq=N, body = one message */
static void
relay_handle_send(struct http_req *req, void *arg)
{
	struct relay_env *env = relay_env_of(arg);
	struct relay_waiter *resume = NULL;
	struct relay_token tok;
	struct relay_sess *s;
	enum relay_put_result pr;
	uint64_t seq, total;
	size_t len;
	const char *body = http_req_body(req, &len);
	bool quota = false;

	if (relay_parse_u64(http_req_query(req, "seq"), 0, UINT64_MAX >> 1, &seq) < 0 || seq == 0) {
		relay_refuse(env, req, RELAY_REF_BAD_REQUEST, RELAY_END_NONE);
		return;
	}
	s = relay_open_mailbox(env, req, &tok);
	if (!s)
		return;
	atomic_store(&s->last_ms, dmn_now_ms());
	if (len > env->lim.max_message) {
		pthread_mutex_unlock(&env->lock);
		relay_refuse(env, req, RELAY_REF_MESSAGE_TOO_LARGE, RELAY_END_NONE);
		return;
	}
	total = atomic_load(&s->bytes[0]) + atomic_load(&s->bytes[1]);
	if (seq == s->side[tok.side].out.in_seq + 1 && total + len > env->lim.max_session_bytes) {
		relay_sess_end(env, s, RELAY_END_QUOTA_BYTES, &resume);
		quota = true;
		pr = RELAY_PUT_OK;
	} else {
		/* Each direction may hold half of the session's allowance. */
		pr = relay_mbox_put(&s->side[tok.side].out, seq, body, len,
				    env->lim.max_queued_bytes / 2);
	}
	if (!quota && pr == RELAY_PUT_OK) {
		atomic_fetch_add(&s->bytes[tok.side], len);
		atomic_fetch_add(&env->bytes_total, len);
		met_add(env->m.bytes[RELAY_MODE_MAILBOX], (double)len);
		met_add(env->m.messages, 1);
		env->mbox_bytes += len;
		env->mbox_msgs++;
		met_set(env->m.queued_msgs, (double)env->mbox_msgs);
		if (s->side[!tok.side].waiter)
			relay_waiter_answer(env, s->side[!tok.side].waiter, &resume);
	}
	if (quota) {
		pthread_mutex_unlock(&env->lock);
		relay_waiters_resume(resume);
		relay_refuse(env, req, RELAY_REF_SESSION_CLOSED, RELAY_END_QUOTA_BYTES);
		return;
	}
	switch (pr) {
	case RELAY_PUT_OK:
	case RELAY_PUT_DUPLICATE: {
		json_t *o = json_pack("{s:I, s:b, s:I}", "seq", (json_int_t)seq, "duplicate",
				      pr == RELAY_PUT_DUPLICATE, "acked",
				      (json_int_t)s->side[tok.side].out.acked);
		pthread_mutex_unlock(&env->lock);
		http_reply_json(req, 200, o);
		break;
	}
	case RELAY_PUT_GAP:
		pthread_mutex_unlock(&env->lock);
		relay_refuse(env, req, RELAY_REF_SEQ_GAP, RELAY_END_NONE);
		break;
	case RELAY_PUT_FULL:
		pthread_mutex_unlock(&env->lock);
		relay_refuse(env, req, RELAY_REF_QUEUE_FULL, RELAY_END_NONE);
		break;
	case RELAY_PUT_NOMEM:
		pthread_mutex_unlock(&env->lock);
		http_reply_retry(req, 503, 1, "out_of_memory", "the relay is out of memory");
		break;
	}
	relay_waiters_resume(resume);
}

/* DELETE /v1/relay/{cid}: either side ends a mailbox session. */
static void
relay_handle_close(struct http_req *req, void *arg)
{
	struct relay_env *env = relay_env_of(arg);
	struct relay_waiter *resume = NULL;
	struct relay_token tok;
	struct relay_sess *s = relay_open(env, req, &tok);
	json_t *o;

	if (!s)
		return;
	if (s->mode == RELAY_MODE_TUNNEL) {
		/* A tunnel ends when its sockets close. */
		pthread_mutex_unlock(&env->lock);
		relay_refuse(env, req, RELAY_REF_MODE_CONFLICT, RELAY_END_NONE);
		return;
	}
	relay_sess_end(env, s, RELAY_END_CLOSED, &resume);
	o = json_pack("{s:s, s:b, s:I, s:I}", "cid", s->cid, "closed", 1, "bytes_ab",
		      (json_int_t)atomic_load(&s->bytes[0]), "bytes_ba",
		      (json_int_t)atomic_load(&s->bytes[1]));
	pthread_mutex_unlock(&env->lock);
	relay_waiters_resume(resume);
	http_reply_json(req, 200, o);
}

static bool
relay_header_has(const char *v, const char *token)
{
	size_t n = strlen(token);
	while (v && *v) {
		v += strspn(v, " \t,");
		size_t len = strcspn(v, ",");
		size_t l = len;
		while (l && (v[l - 1] == ' ' || v[l - 1] == '\t'))
			l--;
		if (l == n && strncasecmp(v, token, n) == 0)
			return true;
		v += len;
	}
	return false;
}

/* GET /v1/relay/{cid}/tunnel with Upgrade: p2pcdn-relay */
static void
relay_handle_tunnel(struct http_req *req, void *arg)
{
	struct relay_env *env = relay_env_of(arg);
	struct relay_token tok;
	struct relay_sess *s;
	struct relay_tctx *ctx;

	/* libmicrohttpd 0.9.75 relays upgraded TLS streams through a socket
	 * pair at a crawl and never passes the close on: refuse rather than
	 * offer a tunnel that stalls. */
	if (env->tls) {
		relay_refuse(env, req, RELAY_REF_TUNNEL_UNAVAILABLE, RELAY_END_NONE);
		return;
	}
	if (!relay_header_has(http_req_header(req, "Connection"), "upgrade") ||
	    !relay_header_has(http_req_header(req, "Upgrade"), RELAY_PROTOCOL)) {
		relay_refuse(env, req, RELAY_REF_UPGRADE_REQUIRED, RELAY_END_NONE);
		return;
	}
	s = relay_open(env, req, &tok);
	if (!s)
		return;
	if (s->mode == RELAY_MODE_MAILBOX) {
		pthread_mutex_unlock(&env->lock);
		relay_refuse(env, req, RELAY_REF_MODE_CONFLICT, RELAY_END_NONE);
		return;
	}
	if (s->side[tok.side].tstate) {
		pthread_mutex_unlock(&env->lock);
		relay_refuse(env, req, RELAY_REF_SIDE_IN_USE, RELAY_END_NONE);
		return;
	}
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		pthread_mutex_unlock(&env->lock);
		http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	if (s->mode == RELAY_MODE_NONE)
		relay_set_mode(env, s, RELAY_MODE_TUNNEL);
	s->side[tok.side].tstate = 1;
	atomic_store(&s->last_ms, dmn_now_ms());
	pthread_mutex_unlock(&env->lock);
	ctx->env = env;
	memcpy(ctx->cid, tok.cid, sizeof(ctx->cid));
	ctx->side = tok.side;
	http_reply_upgrade(req, RELAY_PROTOCOL, relay_tunnel_upgraded, ctx);
}

const struct http_route relay_api_routes[] = {
	{ "GET", "/v1/relay/{}/messages", relay_handle_fetch, false },
	{ "POST", "/v1/relay/{}/messages", relay_handle_send, false },
	{ "GET", "/v1/relay/{}/tunnel", relay_handle_tunnel, false },
	{ "DELETE", "/v1/relay/{}", relay_handle_close, false },
};
const size_t relay_api_nroutes = sizeof(relay_api_routes) / sizeof(relay_api_routes[0]);

/* ---------------------------------------------------------------- admin */

static void
relay_handle_readyz(struct http_req *req, void *arg)
{
	struct relay_env *env = relay_env_of(arg);
	if (rds_ping(env->rds) < 0) {
		http_reply_retry(req, 503, 2, "redis_unavailable",
				 "Redis is unreachable (sessions still work; registry and "
				 "accounting wait)");
		return;
	}
	http_reply_data(req, 200, "text/plain; charset=utf-8", "ready\n", 6);
}

static void
relay_handle_status(struct http_req *req, void *arg)
{
	struct relay_env *env = relay_env_of(arg);
	struct rds_stats rs;
	json_t *o, *ref, *ended, *lim;

	rds_async_stats(env->ra, &rs);
	ref = json_object();
	ended = json_object();
	pthread_mutex_lock(&env->lock);
	for (int i = 0; i < RELAY_REF__N; i++)
		json_object_set_new(ref, relay_refusal_names[i],
				    json_integer((json_int_t)met_value(env->m.refusals[i])));
	for (int i = 1; i < RELAY_END__N; i++)
		json_object_set_new(ended, relay_end_name((enum relay_end)i),
				    json_integer((json_int_t)env->ended[i]));
	lim = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "max_sessions",
			(json_int_t)env->lim.max_sessions, "max_per_source",
			(json_int_t)env->lim.max_per_source, "max_per_account",
			(json_int_t)env->lim.max_per_account, "max_queued_bytes",
			(json_int_t)env->lim.max_queued_bytes, "max_message",
			(json_int_t)env->lim.max_message, "idle_timeout_s",
			(json_int_t)(env->lim.idle_timeout_ms / 1000), "max_session_s",
			(json_int_t)(env->lim.max_session_ms / 1000), "max_session_bytes",
			(json_int_t)env->lim.max_session_bytes, "poll_wait_max_s",
			(json_int_t)(env->lim.poll_wait_max_ms / 1000));
	o = json_pack("{s:s, s:s, s:s, s:I, s:b, s:{s:I, s:I, s:I, s:I}, s:I, s:I, s:{s:I, "
		      "s:I, s:I}, s:I, s:o, s:o, s:o, s:{s:b, s:I, s:I, s:I}}",
		      "id", env->id, "url", env->public_url, "version", P2PCDN_VERSION, "uptime_s",
		      (json_int_t)((dmn_now_ms() - env->started_ms) / 1000), "stopping",
		      env->stopping, "sessions", "total", (json_int_t)env->nactive, "waiting",
		      (json_int_t)env->nmode[RELAY_MODE_NONE], "mailbox",
		      (json_int_t)env->nmode[RELAY_MODE_MAILBOX], "tunnel",
		      (json_int_t)env->nmode[RELAY_MODE_TUNNEL], "bytes_relayed",
		      (json_int_t)atomic_load(&env->bytes_total), "bytes_per_s",
		      (json_int_t)atomic_load(&env->bytes_per_s), "queued", "bytes",
		      (json_int_t)(env->mbox_bytes + (size_t)atomic_load(&env->tun_queued)),
		      "mailbox_messages", (json_int_t)env->mbox_msgs, "tunnel_bytes",
		      (json_int_t)atomic_load(&env->tun_queued), "long_polls",
		      (json_int_t)env->nwaiters, "refusals", ref, "ended", ended, "limits", lim,
		      "redis", "up", rs.up, "acct_pending", (json_int_t)env->acct_n,
		      "acct_in_flight", (json_int_t)env->acct_inflight, "tombstones",
		      (json_int_t)env->ntomb);
	pthread_mutex_unlock(&env->lock);
	if (!o) {
		http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	http_reply_json(req, 200, o);
}

const struct http_route relay_admin_routes[] = {
	{ "GET", "/healthz", http_handle_healthz, false },
	{ "GET", "/readyz", relay_handle_readyz, false },
	{ "GET", "/status", relay_handle_status, false },
	{ "GET", "/metrics", http_handle_metrics, false },
};
const size_t relay_admin_nroutes = sizeof(relay_admin_routes) / sizeof(relay_admin_routes[0]);
