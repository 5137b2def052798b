// SPDX-License-Identifier: MIT
/* p2pcdn-peer: every daemon's HTTP API in one place (URLs, bodies, answers). */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"
#include "peer.h"
#include "peerid.h"
#include "sha1.h"

#define PC_BODY_MAX (4u << 20)

struct pc_call {
	pc_http_cb cb;
	void *arg;
};

static void
pc_http_done(const struct evl_http_result *res, void *arg)
{
	struct pc_call *c = arg;

	c->cb(res->err ? 0 : res->status, res->body ? res->body : "", res->body_len, c->arg);
	free(c);
}

void
pc_http(const char *method, const char *url, const char *body, size_t len, const char *xff,
	const char *bearer, const char *ctype, int timeout_ms, pc_http_cb cb, void *arg)
{
	char hx[96], ha[PC_TOKEN_MAX + 32], hc[96];
	const char *hdrs[4];
	size_t n = 0;
	struct pc_call *c = malloc(sizeof(*c));

	if (!c) {
		cb(0, "", 0, arg);
		return;
	}
	c->cb = cb;
	c->arg = arg;
	if (xff && *xff) {
		snprintf(hx, sizeof(hx), "X-Forwarded-For: %s", xff);
		hdrs[n++] = hx;
	}
	if (bearer && *bearer) {
		snprintf(ha, sizeof(ha), "Authorization: Bearer %s", bearer);
		hdrs[n++] = ha;
	}
	if (ctype) {
		snprintf(hc, sizeof(hc), "Content-Type: %s", ctype);
		hdrs[n++] = hc;
	}
	hdrs[n] = NULL;
	if (evl_http_request(pc.l, method, url, body, len, hdrs, timeout_ms, PC_BODY_MAX,
			     pc_http_done, c) < 0) {
		free(c);
		cb(0, "", 0, arg);
	}
}

/* ---------------------------------------------------------------- kept-alive GETs
 * evl opens a connection per request; a peer asks its sources for maps and
 * chunks several times a second, so those go over one kept-alive
 * connection per (peer, source): thousands of peers in one process would
 * otherwise spend the loop on TCP handshakes. */

struct pc_kreq {
	struct pc_kreq *next, **prevp;
	struct pc_kconn *kc;
	pc_http_cb cb;
	void *arg;
	struct evhttp_request *req;
};

static void
pc_kreq_unlink(struct pc_kreq *r)
{
	if (r->next)
		r->next->prevp = r->prevp;
	*r->prevp = r->next;
}

static void
pc_kget_done(struct evhttp_request *req, void *arg)
{
	struct pc_kreq *r = arg;
	int status = req ? evhttp_request_get_response_code(req) : 0;
	struct evbuffer *in;
	size_t len = 0;
	const char *body = "";

	pc_kreq_unlink(r);
	if (status > 0 && (in = evhttp_request_get_input_buffer(req))) {
		len = evbuffer_get_length(in);
		if (evbuffer_add(in, "", 1) == 0)
			body = (const char *)evbuffer_pullup(in, -1);
		if (!body) {
			body = "";
			len = 0;
			status = 0;
		}
	}
	r->cb(status > 0 ? status : 0, body, len, r->arg);
	free(r);
}

static int
pc_kconn_open(struct pc_kconn *kc, const char *base)
{
	const char *h = strncmp(base, "http://", 7) == 0 ? base + 7 : NULL;
	const char *colon = h ? strrchr(h, ':') : NULL;
	char host[64];
	int port;

	if (!colon || (size_t)(colon - h) >= sizeof(host) || (port = atoi(colon + 1)) <= 0 ||
	    port > 65535)
		return -EINVAL;
	memcpy(host, h, (size_t)(colon - h));
	host[colon - h] = '\0';
	if (kc->conn && (strcmp(kc->host, host) != 0 || kc->port != port))
		return -EINVAL; /* a source does not move */
	if (kc->conn)
		return 0;
	kc->conn = evhttp_connection_base_new(pc.base, NULL, host, (unsigned short)port);
	if (!kc->conn)
		return -ENOMEM;
	snprintf(kc->host, sizeof(kc->host), "%s", host);
	snprintf(kc->hosthdr, sizeof(kc->hosthdr), "%s:%d", host, port);
	kc->port = port;
	evhttp_connection_set_timeout(kc->conn, 5);
	evhttp_connection_set_retries(kc->conn, 1);
	evhttp_connection_set_max_body_size(kc->conn, PC_BODY_MAX);
	return 0;
}

void
pc_kget(struct pc_kconn *kc, const char *base, const char *path, pc_http_cb cb, void *arg)
{
	struct pc_kreq *r;

	if (pc.stopping || pc_kconn_open(kc, base) < 0 || !(r = calloc(1, sizeof(*r)))) {
		cb(0, "", 0, arg);
		return;
	}
	r->kc = kc;
	r->cb = cb;
	r->arg = arg;
	r->req = evhttp_request_new(pc_kget_done, r);
	if (!r->req) {
		free(r);
		cb(0, "", 0, arg);
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(r->req), "Host", kc->hosthdr);
	r->next = kc->pending;
	if (r->next)
		r->next->prevp = &r->next;
	r->prevp = &kc->pending;
	kc->pending = r;
	/* On failure libevent has called back already (r is gone) or
	 * freed the request without calling back. */
	if (evhttp_make_request(kc->conn, r->req, EVHTTP_REQ_GET, path) != 0) {
		for (struct pc_kreq *q = kc->pending; q; q = q->next)
			if (q == r) {
				pc_kreq_unlink(r);
				free(r);
				cb(0, "", 0, arg);
				break;
			}
	}
}

void
pc_kclose(struct pc_kconn *kc)
{
	struct pc_kreq *r;

	if (!kc->conn)
		return;
	/* The callbacks first: evhttp_connection_free drops the requests
	 * without calling back. */
	while ((r = kc->pending)) {
		pc_kreq_unlink(r);
		r->cb(0, "", 0, r->arg);
		free(r);
	}
	evhttp_connection_free(kc->conn);
	kc->conn = NULL;
}

static json_t *
pc_json(const char *body, size_t len)
{
	json_t *o = json_loadb(body, len, 0, NULL);

	if (o && !json_is_object(o)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static const char *
pc_jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static void
pc_copy(char *dst, size_t size, const char *s)
{
	snprintf(dst, size, "%s", s ? s : "");
}

/* ---------------------------------------------------------------- route-server */

void
api_route(struct pc_peer *p, pc_http_cb cb)
{
	char url[PC_URL_MAX + 16];

	snprintf(url, sizeof(url), "%s/v1/route", pc.o.route);
	pc_http("GET", url, NULL, 0, p->region_ip, NULL, NULL, 10000, cb, p);
}

int
api_route_parse(struct pc_peer *p, const char *body, size_t len)
{
	json_t *o = pc_json(body, len), *ix;
	const char *pid;
	int rc = -1;

	if (!o)
		return -1;
	pid = pc_jstr(o, "peer_id");
	ix = json_object_get(o, "index_servers");
	if (pid && peerid_parse(pid, strlen(pid), &p->pid) == 0 && json_is_array(ix) &&
	    json_array_size(ix) > 0 && json_is_string(json_array_get(ix, 0))) {
		peerid_format(p->pid, p->pid_hex, sizeof(p->pid_hex));
		pc_copy(p->domain, sizeof(p->domain), pc_jstr(o, "domain"));
		/* Several index-servers: any one will do; spread the peers. */
		pc_copy(p->index_url, sizeof(p->index_url),
			json_string_value(
				json_array_get(ix, (size_t)p->idx % json_array_size(ix))));
		if (!p->index_url[0])
			pc_copy(p->index_url, sizeof(p->index_url),
				json_string_value(json_array_get(ix, 0)));
		rc = 0;
	}
	json_decref(o);
	return rc;
}

/* ---------------------------------------------------------------- login-server */

static char *
pc_login_body(struct pc_peer *p, bool full, size_t *len)
{
	struct jw w;
	char priv[64];

	jw_init(&w, 256);
	jw_lit(&w, "{");
	jw_key(&w, false, "user");
	jw_str(&w, p->user);
	jw_key(&w, true, "password");
	jw_str(&w, p->password);
	if (full) {
		jw_key(&w, true, "listen_port");
		jw_int(&w, p->port);
		snprintf(priv, sizeof(priv), "127.0.0.1:%u", p->port);
		jw_key(&w, true, "private_addr");
		jw_str(&w, priv);
		jw_key(&w, true, "public_key");
		jw_str(&w, p->pk64);
	}
	jw_lit(&w, "}");
	return jw_finish(&w, len);
}

void
api_register(struct pc_peer *p, pc_http_cb cb)
{
	char url[PC_URL_MAX + 16];
	size_t len;
	char *b = pc_login_body(p, false, &len);

	snprintf(url, sizeof(url), "%s/v1/register", pc.o.login);
	pc_http("POST", url, b, b ? len : 0, p->lan_ip, NULL, NULL, 20000, cb, p);
	free(b);
}

void
api_login(struct pc_peer *p, pc_http_cb cb)
{
	char url[PC_URL_MAX + 16];
	size_t len;
	char *b = pc_login_body(p, true, &len);

	snprintf(url, sizeof(url), "%s/v1/login", pc.o.login);
	/* Inner peers come from their LAN's public address (X-Forwarded-For,
	 * trusted by the test login-server), which the probe cannot reach;
	 * outer peers come from 127.0.0.1, where their listener answers. */
	pc_http("POST", url, b, b ? len : 0, p->lan_ip, NULL, NULL, 20000, cb, p);
	free(b);
}

int
api_login_parse(struct pc_peer *p, const char *body, size_t len)
{
	json_t *o = pc_json(body, len);
	const char *tok, *nat;
	int rc = -1;

	if (!o)
		return -1;
	tok = pc_jstr(o, "token");
	nat = pc_jstr(o, "nat");
	if (tok && nat && strlen(tok) < sizeof(p->token)) {
		pc_copy(p->token, sizeof(p->token), tok);
		p->outer = strcmp(nat, "outer") == 0;
		p->hb_ms = (int)json_integer_value(json_object_get(o, "heartbeat_ms"));
		if (p->hb_ms <= 0)
			p->hb_ms =
				1000 * (int)json_integer_value(json_object_get(o, "heartbeat_s"));
		if (p->hb_ms <= 0)
			p->hb_ms = 10000;
		rc = 0;
	}
	json_decref(o);
	return rc;
}

void
api_heartbeat(struct pc_peer *p, int wait_s, pc_http_cb cb)
{
	char url[PC_URL_MAX + 32];

	if (wait_s > 0)
		snprintf(url, sizeof(url), "%s/v1/heartbeat?wait=%d", pc.o.login, wait_s);
	else
		snprintf(url, sizeof(url), "%s/v1/heartbeat", pc.o.login);
	pc_http("POST", url, "", 0, p->lan_ip, p->token, NULL, (wait_s + 10) * 1000, cb, p);
}

int
api_heartbeat_parse(const char *body, size_t len, void (*on_request)(json_t *req, void *arg),
		    void *arg)
{
	json_t *o = pc_json(body, len), *r, *e;
	size_t i;
	int ms;

	if (!o)
		return -1;
	ms = (int)json_integer_value(json_object_get(o, "heartbeat_ms"));
	if (ms <= 0)
		ms = 1000 * (int)json_integer_value(json_object_get(o, "heartbeat_s"));
	r = json_object_get(o, "requests");
	json_array_foreach (r, i, e)
		if (json_is_object(e))
			on_request(e, arg);
	json_decref(o);
	return ms > 0 ? ms : 2000;
}

void
api_connect(struct pc_peer *p, const char *target, pc_http_cb cb, void *arg)
{
	char url[PC_URL_MAX + 16], body[96];
	int n = snprintf(body, sizeof(body), "{\"target\":\"%s\"}", target);

	snprintf(url, sizeof(url), "%s/v1/connect", pc.o.login);
	pc_http("POST", url, body, (size_t)n, p->lan_ip, p->token, NULL, 10000, cb, arg);
}

void
api_result(struct pc_peer *p, const char *cid, bool ok, const char *detail, pc_http_cb cb,
	   void *arg)
{
	char url[PC_URL_MAX + 64];
	struct jw w;
	size_t len;
	char *b;

	snprintf(url, sizeof(url), "%s/v1/connect/%s/result", pc.o.login, cid);
	jw_init(&w, 128);
	jw_lit(&w, "{");
	jw_key(&w, false, "outcome");
	jw_str(&w, ok ? "success" : "failure");
	if (detail) {
		jw_key(&w, true, "detail");
		jw_str(&w, detail);
	}
	jw_lit(&w, "}");
	b = jw_finish(&w, &len);
	pc_http("POST", url, b, b ? len : 0, p->lan_ip, p->token, NULL, 10000, cb, arg);
	free(b);
}

/* ---------------------------------------------------------------- index-server */

static int
pc_index_body(struct pc_peer *p, bool join, char *out, size_t size)
{
	if (!join)
		return snprintf(out, size, "{\"peer_id\":\"%s\",\"channel\":\"%s\"}", p->pid_hex,
				pc.o.channel);
	return snprintf(out, size,
			"{\"peer_id\":\"%s\",\"channel\":\"%s\",\"listen_addr\":\"127.0.0.1:%u\","
			"\"bandwidth_kbps\":%lld,\"role\":\"%s\"}",
			p->pid_hex, pc.o.channel, p->port, pc.o.bw_kbps,
			p->publisher ? "publisher" : "viewer");
}

void
api_join(struct pc_peer *p, pc_http_cb cb)
{
	char url[PC_URL_MAX + 16], body[512];
	int n = pc_index_body(p, true, body, sizeof(body));

	snprintf(url, sizeof(url), "%s/v1/join", p->index_url);
	pc_http("POST", url, body, (size_t)n, p->region_ip, NULL, NULL, 15000, cb, p);
}

int
api_join_parse(struct pc_peer *p, const char *body, size_t len)
{
	json_t *o = pc_json(body, len), *a, *e;
	size_t i;
	long long now = pc_now_ms();

	if (!o)
		return -1;
	p->n = json_integer_value(json_object_get(o, "n"));
	p->ihb_ms = 1000 * (int)json_integer_value(json_object_get(o, "heartbeat_s"));
	if (p->ihb_ms <= 0)
		p->ihb_ms = 10000;
	a = json_object_get(o, "members");
	json_array_foreach (a, i, e) {
		const char *s = pc_jstr(e, "peer_id");
		uint64_t pid;

		if (!s || peerid_parse(s, strlen(s), &pid) < 0 || pid == p->pid ||
		    p->nmembers >= PC_MEMBERS)
			continue;
		bool dup = false;
		for (size_t k = 0; k < p->nmembers && !dup; k++)
			dup = p->members[k].pid == pid;
		if (dup)
			continue;
		p->members[p->nmembers].pid = pid;
		pc_copy(p->members[p->nmembers].addr, sizeof(p->members[0].addr),
			pc_jstr(e, "listen_addr"));
		p->members[p->nmembers].seen_ms = now;
		p->members[p->nmembers].refused_until = 0;
		p->nmembers++;
	}
	a = json_object_get(o, "caches");
	/* A join again (after expiring) starts the caches afresh. */
	pc_peer_close_caches(p);
	p->ncaches = 0;
	json_array_foreach (a, i, e) {
		const char *u = pc_jstr(e, "url");

		if (!u || p->ncaches >= PC_CACHES)
			continue;
		struct pc_cache *c = &p->caches[p->ncaches++];
		memset(c, 0, sizeof(*c));
		pc_copy(c->id, sizeof(c->id), pc_jstr(e, "cache_id"));
		pc_copy(c->url, sizeof(c->url), u);
	}
	json_decref(o);
	return p->ncaches > 0 ? 0 : -1;
}

static void
pc_ihb_done(int status, const char *body, size_t len, void *arg)
{
	struct pc_peer *p = arg;
	json_t *o;

	if (status == 200 && (o = pc_json(body, len))) {
		long long n = json_integer_value(json_object_get(o, "n"));
		if (n > 0)
			p->n = n;
		json_decref(o);
		pc.st.index_heartbeats++;
	} else if (status == 404 && p->state == PC_P_RUN && !pc.stopping) {
		/* Expired from the swarm (missed heartbeats): join again. */
		p->state = PC_P_JOIN;
		p->retry_at = pc_now_ms();
	}
}

void
api_index_heartbeat(struct pc_peer *p, pc_http_cb cb)
{
	char url[PC_URL_MAX + 16], body[256];
	int n = pc_index_body(p, false, body, sizeof(body));

	snprintf(url, sizeof(url), "%s/v1/heartbeat", p->index_url);
	pc_http("POST", url, body, (size_t)n, p->region_ip, NULL, NULL, 10000,
		cb ? cb : pc_ihb_done, p);
}

static void
pc_ignore(int status, const char *body, size_t len, void *arg)
{
	(void)status;
	(void)body;
	(void)len;
	(void)arg;
}

void
api_leave(struct pc_peer *p)
{
	char url[PC_URL_MAX + 16], body[256];
	int n = pc_index_body(p, false, body, sizeof(body));

	snprintf(url, sizeof(url), "%s/v1/leave", p->index_url);
	pc_http("POST", url, body, (size_t)n, p->region_ip, NULL, NULL, 5000, pc_ignore, p);
}

void
api_publish(struct pc_peer *p, pc_http_cb cb)
{
	char url[PC_URL_MAX + 16], body[256];
	int n = pc_index_body(p, false, body, sizeof(body));

	snprintf(url, sizeof(url), "%s/v1/publish", p->index_url);
	pc_http("POST", url, body, (size_t)n, p->region_ip, NULL, NULL, 10000, cb, p);
}

int
api_publish_parse(struct pc_peer *p, const char *body, size_t len)
{
	json_t *o = pc_json(body, len), *c;
	int rc = -1;

	if (!o)
		return -1;
	c = json_object_get(o, "cache");
	if (pc_jstr(o, "token") && c && pc_jstr(c, "url") &&
	    strlen(pc_jstr(o, "token")) < sizeof(p->pub_token)) {
		pc_copy(p->pub_token, sizeof(p->pub_token), pc_jstr(o, "token"));
		pc_copy(p->pub_url, sizeof(p->pub_url), pc_jstr(c, "url"));
		rc = 0;
	}
	json_decref(o);
	return rc;
}

/* ---------------------------------------------------------------- chunk protocol */

void
api_path_map(const char *ch, char *out, size_t size)
{
	snprintf(out, size, "/v1/live/%s/map", ch);
}

void
api_path_chunk(const char *ch, uint32_t seq, const char *from_pid, char *out, size_t size)
{
	if (from_pid)
		snprintf(out, size, "/v1/live/%s/chunks/%" PRIu32 "?from=%s", ch, seq, from_pid);
	else
		snprintf(out, size, "/v1/live/%s/chunks/%" PRIu32, ch, seq);
}

int
api_map_parse(const char *body, size_t len, struct bmap *m, int64_t *head, int *chunk_ms)
{
	json_t *o = pc_json(body, len), *h;
	const char *bits;
	json_int_t first, size;
	int rc = -1;

	if (!o)
		return -1;
	first = json_integer_value(json_object_get(o, "first"));
	size = json_integer_value(json_object_get(o, "size"));
	bits = pc_jstr(o, "bitmap");
	h = json_object_get(o, "head");
	if (bits && first >= 0 && first <= BMAP_SEQ_MAX && size > 0 && size <= BMAP_MAX_SIZE &&
	    bmap_decode(bits, strlen(bits), (uint32_t)first, (uint32_t)size, m) == 0) {
		*head = json_is_integer(h) ? json_integer_value(h) : -1;
		if (chunk_ms && json_integer_value(json_object_get(o, "chunk_ms")) > 0)
			*chunk_ms = (int)json_integer_value(json_object_get(o, "chunk_ms"));
		rc = 0;
	}
	json_decref(o);
	return rc;
}

char *
api_map_render(const char *ch, const struct bmap *m, int64_t head, int chunk_ms, size_t *len)
{
	char bits[BMAP_B64_MAX];
	struct jw w;

	if (bmap_encode(m, bits, sizeof(bits)) < 0)
		return NULL;
	jw_init(&w, 256 + strlen(bits));
	jw_lit(&w, "{");
	jw_key(&w, false, "channel");
	jw_str(&w, ch);
	jw_key(&w, true, "first");
	jw_int(&w, m->first);
	jw_key(&w, true, "size");
	jw_int(&w, m->size);
	jw_key(&w, true, "head");
	if (head >= 0)
		jw_int(&w, head);
	else
		jw_lit(&w, "null");
	jw_key(&w, true, "count");
	jw_int(&w, bmap_count(m));
	jw_key(&w, true, "chunk_ms");
	jw_int(&w, chunk_ms);
	jw_key(&w, true, "pulling");
	jw_bool(&w, false);
	jw_key(&w, true, "bitmap");
	jw_str(&w, bits);
	jw_lit(&w, "}");
	return jw_finish(&w, len);
}

void
api_put_chunk(struct pc_peer *p, uint32_t seq, const char *data, size_t len, pc_http_cb cb)
{
	char url[PC_URL_MAX + 200];

	snprintf(url, sizeof(url), "%s/v1/live/%s/chunks/%" PRIu32, p->pub_url, pc.o.channel, seq);
	pc_http("PUT", url, data, len, NULL, p->pub_token, "application/octet-stream", 5000, cb, p);
}

/* ---------------------------------------------------------------- relay-server */

void
api_relay_send(struct pc_link *k, uint64_t seq, const void *data, size_t len, pc_http_cb cb)
{
	char url[PC_URL_MAX + 96];

	snprintf(url, sizeof(url), "%s/v1/relay/%s/messages?seq=%" PRIu64, k->relay_url, k->cid,
		 seq);
	pc_http("POST", url, data, len, NULL, k->relay_tok, "application/octet-stream", 10000, cb,
		k);
}

void
api_relay_fetch(struct pc_link *k, int wait_s, pc_http_cb cb)
{
	char url[PC_URL_MAX + 96];

	snprintf(url, sizeof(url), "%s/v1/relay/%s/messages?ack=%" PRIu64 "&wait=%d", k->relay_url,
		 k->cid, k->recv_ack, wait_s);
	pc_http("GET", url, NULL, 0, NULL, k->relay_tok, NULL, (wait_s + 10) * 1000, cb, k);
}

int
api_relay_parse(const char *body, size_t len,
		void (*on_msg)(uint64_t seq, const unsigned char *d, size_t n, void *arg),
		void *arg)
{
	json_t *o = pc_json(body, len), *a, *e;
	size_t i;
	int n = 0;

	if (!o)
		return -1;
	a = json_object_get(o, "messages");
	json_array_foreach (a, i, e) {
		const char *d = pc_jstr(e, "data");
		json_int_t seq = json_integer_value(json_object_get(e, "seq"));
		size_t dl, bl;
		unsigned char *buf;

		if (!d || seq <= 0)
			continue;
		dl = strlen(d);
		buf = malloc(dl / 4 * 3 + 4);
		if (!buf)
			continue;
		if (sodium_base642bin(buf, dl / 4 * 3 + 4, d, dl, NULL, &bl, NULL,
				      sodium_base64_VARIANT_ORIGINAL) == 0) {
			on_msg((uint64_t)seq, buf, bl, arg);
			n++;
		}
		free(buf);
	}
	json_decref(o);
	return n;
}

void
api_relay_close(struct pc_link *k)
{
	char url[PC_URL_MAX + 64];

	snprintf(url, sizeof(url), "%s/v1/relay/%s", k->relay_url, k->cid);
	pc_http("DELETE", url, NULL, 0, NULL, k->relay_tok, NULL, 5000, pc_ignore, k);
}

/* ---------------------------------------------------------------- tracker */

/* %-escapes every byte: binary info_hash and peer_id. */
static void
pc_urlenc(const unsigned char *b, size_t n, char *out)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		*out++ = '%';
		*out++ = hex[b[i] >> 4];
		*out++ = hex[b[i] & 15];
	}
	*out = '\0';
}

void
api_announce(struct pc_peer *p, const char *event, bool seeder, pc_http_cb cb)
{
	unsigned char ih[SHA1_LEN], id[20];
	char src[256], ihs[64], ids[64], url[PC_URL_MAX + 400];

	/* A live channel's info_hash is the SHA-1 of its source URL
	 * (docs/tracker.md); the source of a p2pcdn channel is named by
	 * this URL form (docs/peer.md). */
	snprintf(src, sizeof(src), "p2pcdn://live/%s", pc.o.channel);
	sha1(src, strlen(src), ih);
	memcpy(id, "-PC0001-", 8);
	memcpy(id + 8, p->pid_hex + 2, 12);
	pc_urlenc(ih, sizeof(ih), ihs);
	pc_urlenc(id, sizeof(id), ids);
	snprintf(url, sizeof(url),
		 "%s/announce?info_hash=%s&peer_id=%s&port=%u&uploaded=%llu&downloaded=%llu"
		 "&left=%d&compact=1&numwant=20&event=%s",
		 pc.o.tracker, ihs, ids, p->port ? p->port : 1, p->up_bytes, p->down_bytes,
		 seeder ? 0 : 1, event);
	pc_http("GET", url, NULL, 0, NULL, NULL, NULL, 5000, cb, p);
}
