// SPDX-License-Identifier: MIT
/* cache-server: HTTP handlers of the public API (live chunks, pull) and the admin listener. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "dmn.h"
#include "jw.h"
#include "log.h"

/* A sequence number in decimal: digits only, no sign, fits 32 bits. */
static int
cache_seq_parse(const char *s, uint32_t *ret)
{
	uint64_t v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 10 || strspn(s, "0123456789") != n || (n > 1 && s[0] == '0'))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (uint64_t)(s[i] - '0');
	if (v > UINT32_MAX)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

/* Path parameters of /v1/live/{ch}/...: 0, or -EINVAL after replying. */
static int
cache_live_params(struct http_req *req, const char **ret_ch, uint32_t *ret_seq)
{
	const char *ch = http_req_param(req, 0);

	if (!cache_channel_ok(ch)) {
		http_reply_error(req, 400, "bad_channel",
				 "channel must be 1-128 characters of A-Z a-z 0-9 . _ -");
		return -EINVAL;
	}
	*ret_ch = ch;
	if (ret_seq && cache_seq_parse(http_req_param(req, 1), ret_seq) < 0) {
		http_reply_error(
			req, 400, "bad_seq",
			"the chunk sequence number must be a decimal integer 0..4294967295");
		return -EINVAL;
	}
	return 0;
}

/*
 * Checks "Authorization: Bearer <token>" of `kind` (publish or pull) and
 * that its "ch" is ch (any channel when ch is NULL). 0, or a negative errno after replying 401/403.
 */
static int
cache_auth(struct http_req *req, struct cache_env *env, uint8_t kind, const char *ch)
{
	const char *auth = http_req_header(req, "Authorization");
	char payload[TOK_PAYLOAD_MAX + 1];
	const char *what = kind == TOK_KIND_PUBLISH ? "publish" : "pull";
	json_t *j, *tch;
	int n;

	if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) {
		http_reply_header(req, "WWW-Authenticate", "Bearer");
		http_reply_error(req, 401, "unauthorized",
				 "Authorization: Bearer <%s token from the index-server> required",
				 what);
		return -EACCES;
	}
	auth += 7;
	n = tok_verify(&env->key, kind, (uint64_t)dmn_wall_s(), auth, strlen(auth), payload,
		       sizeof(payload) - 1, NULL);
	if (n == -ETIME) {
		http_reply_header(req, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
		http_reply_error(req, 401, "token_expired", "the %s token has expired", what);
		return -EACCES;
	}
	if (n < 0) {
		http_reply_header(req, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
		http_reply_error(req, 401, "bad_token",
				 "the token is not a valid %s token for this cache", what);
		return -EACCES;
	}
	payload[n] = '\0';
	if (!ch)
		return 0; /* a body that names no channel is refused next */
	j = json_loadb(payload, (size_t)n, 0, NULL);
	tch = j ? json_object_get(j, "ch") : NULL;
	if (!json_is_string(tch) || strcmp(json_string_value(tch), ch) != 0) {
		json_decref(j);
		http_reply_error(req, 403, "wrong_channel", "the %s token is not for channel %s",
				 what, ch);
		return -EACCES;
	}
	json_decref(j);
	return 0;
}

/* ---------------------------------------------------------------- live */

static void
cache_handle_put(struct http_req *req, void *arg)
{
	struct cache_env *env = arg;
	const char *ch, *body;
	uint32_t seq, first = 0;
	int64_t head = -1;
	size_t len;
	int r;

	if (cache_live_params(req, &ch, &seq) < 0 || cache_auth(req, env, TOK_KIND_PUBLISH, ch) < 0)
		return;
	body = http_req_body(req, &len);
	if (len == 0) {
		met_add(met_child(env->m.refused, "empty"), 1);
		http_reply_error(req, 400, "empty_chunk", "a chunk needs a body");
		return;
	}
	if (len > env->so.chunk_max) {
		met_add(met_child(env->m.refused, "oversize"), 1);
		http_reply_error(req, 413, "chunk_too_large",
				 "chunk of %zu bytes over the limit of %zu", len,
				 env->so.chunk_max);
		return;
	}
	r = cache_store_put(env->store, ch, seq, body, len, CACHE_FROM_PUBLISH, dmn_now_ms(),
			    &first, &head);
	switch (r) {
	case 0:
		met_add(met_child(env->m.chunks_in, "publish"), 1);
		http_reply_json(req, 201,
				json_pack("{s:s, s:I, s:I, s:I}", "channel", ch, "seq",
					  (json_int_t)seq, "first", (json_int_t)first, "head",
					  (json_int_t)head));
		return;
	case -EEXIST:
		met_add(met_child(env->m.refused, "duplicate"), 1);
		http_reply_error(req, 409, "duplicate_chunk",
				 "chunk %" PRIu32 " of %s is already held", seq, ch);
		return;
	case -ESTALE:
		met_add(met_child(env->m.refused, "out_of_window"), 1);
		http_reply_error(req, 409, "out_of_window",
				 "chunk %" PRIu32 " is before the window (first %" PRIu32
				 "): expired",
				 seq, first);
		return;
	case -ERANGE:
		met_add(met_child(env->m.refused, "out_of_window"), 1);
		http_reply_error(req, 409, "out_of_window",
				 "chunk %" PRIu32
				 " is more than a window ahead of the newest (%" PRId64 ")",
				 seq, head);
		return;
	case -ENOSPC:
		met_add(met_child(env->m.refused, "memory"), 1);
		http_reply_retry(req, 503, 1, "memory_full",
				 "the cache's memory (or the channel's share) is full");
		return;
	case -EMFILE:
		met_add(met_child(env->m.refused, "channels"), 1);
		http_reply_retry(req, 503, 5, "too_many_channels",
				 "this cache holds its maximum number of channels");
		return;
	default:
		http_reply_error(req, 500, "internal", "cannot store the chunk: %s", strerror(-r));
	}
}

static void
cache_handle_chunk(struct http_req *req, void *arg)
{
	struct cache_env *env = arg;
	struct cache_chunk *c;
	const char *ch, *inm;
	uint32_t seq;
	char cc[64];
	int r;

	if (cache_live_params(req, &ch, &seq) < 0)
		return;
	r = cache_store_get(env->store, ch, seq, dmn_now_ms(), &c);
	if (r == -ENOENT) {
		http_reply_error(req, 404, "unknown_channel", "this cache does not hold %s", ch);
		return;
	}
	if (r == -EAGAIN) {
		http_reply_header(req, "Cache-Control", "no-store");
		http_reply_error(req, 404, "not_yet", "chunk %" PRIu32 " is not here (yet)", seq);
		return;
	}
	if (r == -ESTALE) {
		http_reply_error(req, 410, "expired", "chunk %" PRIu32 " has left the window", seq);
		return;
	}
	/* A chunk never changes: clients may keep it as long as it could
	 * still be asked for, the window's duration. */
	snprintf(cc, sizeof(cc), "public, max-age=%u, immutable",
		 (unsigned)((uint64_t)env->so.window * env->so.chunk_ms / 1000));
	http_reply_header(req, "Cache-Control", cc);
	http_reply_header(req, "ETag", c->etag);
	inm = http_req_header(req, "If-None-Match");
	if (inm && (strcmp(inm, c->etag) == 0 || strcmp(inm, "*") == 0)) {
		http_reply_data(req, 304, NULL, "", 0);
	} else {
		/* The one copy: libmicrohttpd owns its buffer after this. */
		http_reply_data(req, 200, "application/octet-stream", (const char *)c->data,
				c->len);
		if (http_req_method(req)[0] != 'H') { /* HEAD sends no bytes */
			atomic_fetch_add_explicit(&env->bytes_out, c->len, memory_order_relaxed);
			atomic_fetch_add_explicit(&env->gets, 1, memory_order_relaxed);
		}
	}
	cache_chunk_unref(c);
}

static void
cache_handle_map(struct http_req *req, void *arg)
{
	struct cache_env *env = arg;
	struct cache_map_view v;
	char bits[BMAP_B64_MAX];
	const char *ch;
	struct jw w;
	char *text;
	size_t len;

	if (cache_live_params(req, &ch, NULL) < 0)
		return;
	if (cache_store_map(env->store, ch, dmn_now_ms(), &v) < 0) {
		http_reply_error(req, 404, "unknown_channel", "this cache does not hold %s", ch);
		return;
	}
	bmap_encode(&v.map, bits, sizeof(bits));
	jw_init(&w, 256 + strlen(bits));
	jw_lit(&w, "{");
	jw_key(&w, false, "channel");
	jw_str(&w, ch);
	jw_key(&w, true, "first");
	jw_int(&w, v.map.first);
	jw_key(&w, true, "size");
	jw_int(&w, v.map.size);
	jw_key(&w, true, "head");
	if (v.head >= 0)
		jw_int(&w, v.head);
	else
		jw_lit(&w, "null");
	jw_key(&w, true, "count");
	jw_int(&w, bmap_count(&v.map));
	jw_key(&w, true, "chunk_ms");
	jw_int(&w, env->so.chunk_ms);
	jw_key(&w, true, "pulling");
	jw_bool(&w, v.pulling);
	jw_key(&w, true, "bitmap");
	jw_str(&w, bits);
	jw_lit(&w, "}");
	text = jw_finish(&w, &len);
	if (!text) {
		http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	http_reply_header(req, "Cache-Control", "no-store");
	http_reply_take(req, 200, "application/json", text, len);
}

/* ---------------------------------------------------------------- pull */

static void
cache_handle_pull(struct http_req *req, void *arg)
{
	struct cache_env *env = arg;
	struct cache_pull_req *pr;
	const char *body, *reason;
	struct cache_map_view v;
	size_t len, nsrc = 0;
	json_t *j;
	int r;

	body = http_req_body(req, &len);
	pr = malloc(sizeof(*pr));
	if (!pr) {
		http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	/* Authentication needs the channel; parse first, answer 401 before
	 * any complaint about the body. */
	r = cache_pull_parse(body, len, pr, &reason);
	if (cache_auth(req, env, TOK_KIND_PULL, r == 0 ? pr->channel : NULL) < 0)
		goto out;
	if (r < 0) {
		http_reply_error(req, 400, "bad_request", "%s", reason);
		goto out;
	}
	/* Fed by a publisher right now: nothing to pull. */
	if (cache_store_map(env->store, pr->channel, dmn_now_ms(), &v) == 0 && v.head >= 0 &&
	    !v.pulling && v.last_publish_ms >= 0 && dmn_now_ms() - v.last_publish_ms < 10000) {
		j = json_pack("{s:s, s:b, s:b, s:i}", "channel", pr->channel, "pulling", 0, "held",
			      1, "sources", 0);
		http_reply_json(req, 200, j);
		goto out;
	}
	r = cache_pull_start(env, pr, &nsrc);
	if (r == -ENOENT) {
		http_reply_error(req, 400, "no_sources",
				 "no usable source: every source given is this cache");
		goto out;
	}
	if (r == -EMFILE) {
		http_reply_retry(req, 503, 5, "too_many_channels",
				 "this cache holds its maximum number of channels");
		goto out;
	}
	if (r < 0) {
		http_reply_retry(req, 503, 1, "unavailable", "cannot start the pull: %s",
				 strerror(-r));
		goto out;
	}
	j = json_pack("{s:s, s:b, s:i}", "channel", pr->channel, "pulling", 1, "sources",
		      (int)nsrc);
	http_reply_json(req, r == 1 ? 200 : 202, j);
out:
	free(pr);
}

static void
cache_handle_pull_get(struct http_req *req, void *arg)
{
	const char *ch;
	json_t *j;

	if (cache_live_params(req, &ch, NULL) < 0)
		return;
	j = cache_pull_json(arg, ch);
	if (!j) {
		http_reply_error(req, 404, "no_pull", "this cache has not pulled %s", ch);
		return;
	}
	http_reply_json(req, 200, j);
}

const struct http_route cache_api_routes[] = {
	{ "PUT", "/v1/live/{}/chunks/{}", cache_handle_put, false },
	{ "GET", "/v1/live/{}/chunks/{}", cache_handle_chunk, false },
	{ "GET", "/v1/live/{}/map", cache_handle_map, false },
	{ "POST", "/v1/pull", cache_handle_pull, false },
	{ "GET", "/v1/pull/{}", cache_handle_pull_get, false },
	{ "GET", "/vod/{}", cache_handle_vod, false },
	{ "GET", "/vod/{}/{}", cache_handle_vod, false },
	{ "GET", "/vod/{}/{}/{}", cache_handle_vod, false },
	{ "GET", "/vod/{}/{}/{}/{}", cache_handle_vod, false },
};
const size_t cache_api_nroutes = sizeof(cache_api_routes) / sizeof(cache_api_routes[0]);

/* ---------------------------------------------------------------- admin */

static void
cache_handle_readyz(struct http_req *req, void *arg)
{
	struct cache_env *env = arg;
	svc_readyz(req, env->rds, NULL, NULL);
}

struct cache_status_acc {
	json_t *arr;
	size_t n;
};

static void
cache_status_chan(const struct cache_chan_info *i, void *arg)
{
	struct cache_status_acc *a = arg;
	json_t *o;

	if (a->n++ >= 1000)
		return;
	o = json_pack("{s:s, s:I, s:i, s:i, s:f, s:I, s:I, s:I, s:I, s:b}", "channel", i->name,
		      "first", (json_int_t)i->first, "size", (int)i->size, "held", (int)i->held,
		      "window_fill", i->size ? (double)i->held / i->size : 0.0, "bytes",
		      (json_int_t)i->bytes, "chunks_in", (json_int_t)i->chunks_in, "chunks_out",
		      (json_int_t)i->chunks_out, "bytes_out", (json_int_t)i->bytes_out, "pulling",
		      i->pulling);
	json_object_set_new(o, "head", i->head >= 0 ? json_integer(i->head) : json_null());
	json_array_append_new(a->arr, o);
}

static void
cache_handle_status(struct http_req *req, void *arg)
{
	struct cache_env *env = arg;
	struct cache_store_stats ss;
	struct cache_pull_stats ps;
	struct cache_status_acc acc = { json_array(), 0 };
	struct rds_stats rs, as;
	json_t *o = json_object();

	cache_store_stats(env->store, &ss);
	cache_pull_stats(env, &ps);
	rds_get_stats(env->rds, &rs);
	rds_async_stats(env->ra, &as);
	cache_store_foreach(env->store, cache_status_chan, &acc);
	json_object_set_new(o, "daemon", json_string("cache-server"));
	json_object_set_new(o, "version", json_string(P2PCDN_VERSION));
	json_object_set_new(o, "uptime_s", json_integer((dmn_now_ms() - env->started_ms) / 1000));
	json_object_set_new(o, "id", json_string(env->id));
	json_object_set_new(o, "domain", json_string(env->domain));
	json_object_set_new(o, "url", json_string(env->url));
	json_object_set_new(o, "window",
			    json_pack("{s:i, s:i}", "chunks", (int)env->so.window, "chunk_ms",
				      (int)env->so.chunk_ms));
	json_object_set_new(o, "memory",
			    json_pack("{s:I, s:I, s:I}", "bytes", (json_int_t)ss.bytes, "max",
				      (json_int_t)env->so.memory_max, "channel_max",
				      (json_int_t)env->so.channel_max));
	json_object_set_new(o, "channel_count", json_integer((json_int_t)ss.channels));
	json_object_set_new(o, "channels", acc.arr);
	json_object_set_new(o, "chunks_in",
			    json_pack("{s:I, s:I}", "publish", (json_int_t)ss.chunks_in_publish,
				      "pull", (json_int_t)ss.chunks_in_pull));
	json_object_set_new(o, "chunks_out", json_integer((json_int_t)ss.chunks_out));
	json_object_set_new(o, "bytes_served",
			    json_integer((json_int_t)atomic_load(&env->bytes_out)));
	json_object_set_new(o, "load_bytes_per_s", json_integer(atomic_load(&env->load_bps)));
	json_object_set_new(o, "capacity_bytes_per_s", json_integer(env->capacity));
	json_object_set_new(o, "viewers", json_integer(atomic_load(&env->viewers)));
	json_object_set_new(o, "pull",
			    json_pack("{s:i, s:i, s:i, s:I, s:I, s:I, s:f}", "active",
				      (int)ps.active, "sources_ok", (int)ps.sources_ok,
				      "sources_dead", (int)ps.sources_dead, "requests",
				      (json_int_t)ps.issued, "completed", (json_int_t)ps.completed,
				      "failed", (json_int_t)ps.failed, "completion_rate",
				      ps.issued ? (double)ps.completed / (double)ps.issued : 0.0));
	json_object_set_new(o, "pulls", cache_pull_json(env, NULL));
	json_object_set_new(o, "vod", json_pack("{s:b}", "enabled", env->vod_fd >= 0));
	json_object_set_new(o, "redis",
			    json_pack("{s:b, s:I, s:I}", "up", rs.up || as.up, "commands",
				      (json_int_t)(rs.commands + as.commands), "errors",
				      (json_int_t)(rs.errors + as.errors)));
	http_reply_json(req, 200, o);
}

const struct http_route cache_admin_routes[] = {
	{ "GET", "/healthz", http_handle_healthz, false },
	{ "GET", "/readyz", cache_handle_readyz, false },
	{ "GET", "/status", cache_handle_status, false },
	{ "GET", "/metrics", http_handle_metrics, false },
};
const size_t cache_admin_nroutes = sizeof(cache_admin_routes) / sizeof(cache_admin_routes[0]);
