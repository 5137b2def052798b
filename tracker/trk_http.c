// SPDX-License-Identifier: MIT
/* tracker: HTTP announce and scrape (BEP 3, 7, 23, 48) and the admin views. */
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benc.h"
#include "dmn.h"
#include "jw.h"
#include "log.h"
#include "trk.h"

bool
trk_allowed(struct trk_env *env, const uint8_t info_hash[TRK_HASH_LEN])
{
	return !atomic_load_explicit(&env->whitelist_mode, memory_order_relaxed) ||
	       trk_registered(env, info_hash);
}

bool
trk_registered(struct trk_env *env, const uint8_t info_hash[TRK_HASH_LEN])
{
	bool found = false;
	pthread_rwlock_rdlock(&env->wl_lock);
	const struct trk_whitelist *wl = env->wl;
	size_t lo = 0, hi = wl ? wl->n : 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(wl->v[mid], info_hash, TRK_HASH_LEN);
		if (c == 0) {
			found = true;
			break;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	pthread_rwlock_unlock(&env->wl_lock);
	return found;
}

/* Jitter needs no cryptographic randomness, and randombytes costs a system
 * call each time: a per-thread xorshift seeded once from libsodium. */
static uint32_t
trk_rand32(void)
{
	static __thread uint64_t x;
	if (!x)
		while (!x)
			randombytes_buf(&x, sizeof(x));
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	return (uint32_t)((x * 0x2545f4914f6cdd1dULL) >> 32);
}

unsigned
trk_interval(struct trk_env *env)
{
	unsigned base = atomic_load_explicit(&env->interval_s, memory_order_relaxed);
	unsigned min = atomic_load_explicit(&env->min_interval_s, memory_order_relaxed);
	unsigned span = base / 10, v = base;
	/* Jitter spreads clients that started together over the interval, but
	 * never below the min interval told in the same answer. */
	if (span)
		v = base - span + trk_rand32() % (2 * span + 1);
	return v < min ? min : v;
}

unsigned
trk_numwant(struct trk_env *env, long long asked)
{
	unsigned max = atomic_load_explicit(&env->numwant_max, memory_order_relaxed);
	if (asked < 0)
		asked = atomic_load_explicit(&env->numwant_default, memory_order_relaxed);
	return asked > max ? max : (unsigned)asked;
}

void
trk_count_failure(struct trk_env *env, enum trk_proto proto, const char *reason)
{
	if (env->m.failures)
		met_add(met_child(env->m.failures, proto == TRK_PROTO_UDP ? "udp" : "http", reason),
			1);
}

/* BitTorrent clients expect HTTP 200 with a bencoded failure reason. */
static void
trk_fail(struct http_req *req, struct trk_env *env, const char *code, const char *reason)
{
	uint8_t buf[320];
	size_t n = 0;
	int w;

	trk_count_failure(env, TRK_PROTO_HTTP, code);
	n += (size_t)benc_put_raw(buf, sizeof(buf), "d14:failure reason", 18);
	w = benc_put_str(buf + n, sizeof(buf) - n, reason, strlen(reason));
	n += w > 0 ? (size_t)w : 0;
	n += (size_t)benc_put_raw(buf + n, sizeof(buf) - n, "e", 1);
	http_reply_data(req, 200, "text/plain", (const char *)buf, n);
}

/* Sends a finished bencoded answer (HTTP 200, as clients expect). */
static void
trk_reply(struct http_req *req, struct trk_env *env, struct jw *w)
{
	size_t len;
	char *text = jw_finish(w, &len);
	if (!text) {
		trk_fail(req, env, "internal", "out of memory");
		return;
	}
	http_reply_take(req, 200, "text/plain", text, len);
}

/* Appends "KEY" i V e, all keys pre-encoded by the caller. */
static void
trk_put_kv_int(struct jw *w, const char *key_enc, long long v)
{
	char num[32];
	jw_lit(w, key_enc);
	int n = snprintf(num, sizeof(num), "i%llde", v);
	jw_raw(w, num, (size_t)n);
}

static void
trk_put_str(struct jw *w, const void *s, size_t len)
{
	char head[24];
	int n = snprintf(head, sizeof(head), "%zu:", len);
	jw_raw(w, head, (size_t)n);
	jw_raw(w, s, len);
}

/* Non-compact peers (BEP 3): a list of {ip, port} dicts; peer ids are not
 * kept, so they are left out as with no_peer_id. */
static void
trk_put_peer_dicts(struct jw *w, const uint8_t *p4, size_t n4, const uint8_t *p6, size_t n6)
{
	char ip[ADDR_STR_MAX];
	jw_lit(w, "5:peersl");
	for (size_t i = 0; i < n4 + n6; i++) {
		struct addr a = { 0 };
		const uint8_t *p = i < n4 ? p4 + 6 * i : p6 + 18 * (i - n4);
		if (i < n4) {
			a.ip[10] = a.ip[11] = 0xff;
			memcpy(a.ip + 12, p, 4);
			a.port = (unsigned short)(p[4] << 8 | p[5]);
		} else {
			memcpy(a.ip, p, 16);
			a.port = (unsigned short)(p[16] << 8 | p[17]);
		}
		addr_format_ip(&a, ip, sizeof(ip));
		jw_lit(w, "d2:ip");
		trk_put_str(w, ip, strlen(ip));
		trk_put_kv_int(w, "4:port", a.port);
		jw_lit(w, "e");
	}
	jw_lit(w, "e");
}

static void
trk_handle_announce(struct http_req *req, void *arg)
{
	struct trk_env *env = arg;
	struct trk_query q;
	struct trk_announce a;
	struct trk_counts c;
	const char *reason;
	size_t qlen, n4 = 0, n6 = 0;
	const char *raw = http_req_raw_query(req, &qlen);
	struct addr peer;

	if (trk_query_parse(raw, qlen, false, &q, &reason) < 0) {
		trk_fail(req, env, "bad_request", reason);
		return;
	}
	if (!trk_allowed(env, q.info_hash)) {
		trk_fail(req, env, "not_registered", "torrent not registered with this tracker");
		return;
	}
	peer = *http_req_client(req);
	if (q.has_ip && atomic_load_explicit(&env->allow_ip_param, memory_order_relaxed) &&
	    addr_parse(q.ip, strlen(q.ip), false, &peer) < 0) {
		trk_fail(req, env, "bad_request", "invalid ip");
		return;
	}
	memset(&a, 0, sizeof(a));
	memcpy(a.info_hash, q.info_hash, TRK_HASH_LEN);
	memcpy(a.peer.ip, peer.ip, 16);
	a.peer.port = (uint16_t)q.port;
	a.seeder = q.has_left && q.left == 0;
	a.event = q.event;
	a.numwant = trk_numwant(env, q.numwant);
	a.now = trk_store_now();

	/* numwant_max is at most 1000 (trk_conf.c): the peers fit the stack. */
	uint8_t out4[1000 * 6], out6[1000 * 18];
	int r = trk_store_announce(env->store, &a, out4, (size_t)a.numwant * 6, out6,
				   (size_t)a.numwant * 18, &n4, &n6, &c);
	if (r < 0) {
		trk_fail(req, env, r == -ENOSPC ? "full" : "internal",
			 r == -ENOSPC ? "tracker full, try later" : "internal error");
		return;
	}
	if (env->m.announces)
		met_add(met_child(env->m.announces, "http"), 1);

	/* Keys in bencoding's required (sorted) order. */
	struct jw w;
	jw_init(&w, 160 + n4 * 6 + n6 * 18);
	jw_lit(&w, "d");
	trk_put_kv_int(&w, "8:complete", c.seeders);
	trk_put_kv_int(&w, "10:downloaded", c.completed);
	trk_put_kv_int(&w, "10:incomplete", c.leechers);
	trk_put_kv_int(&w, "8:interval", trk_interval(env));
	trk_put_kv_int(&w, "12:min interval",
		       atomic_load_explicit(&env->min_interval_s, memory_order_relaxed));
	if (q.compact) {
		jw_lit(&w, "5:peers");
		trk_put_str(&w, out4, n4 * 6);
		if (n6) {
			jw_lit(&w, "6:peers6");
			trk_put_str(&w, out6, n6 * 18);
		}
	} else {
		trk_put_peer_dicts(&w, out4, n4, out6, n6);
	}
	jw_lit(&w, "e");
	trk_reply(req, env, &w);
}

static int
trk_hash_cmp(const void *a, const void *b)
{
	return memcmp(a, b, TRK_HASH_LEN);
}

static void
trk_put_scrape_entry(struct jw *w, const uint8_t *ih, const struct trk_counts *c)
{
	trk_put_str(w, ih, TRK_HASH_LEN);
	jw_lit(w, "d");
	trk_put_kv_int(w, "8:complete", c->seeders);
	trk_put_kv_int(w, "10:downloaded", c->completed);
	trk_put_kv_int(w, "10:incomplete", c->leechers);
	jw_lit(w, "e");
}

/* Full scrape: one per client address per full_scrape_min_s. A small
 * fixed table keyed by a hash of the address keeps the memory bounded;
 * a collision can only make the limit stricter for two addresses. */
#define TRK_FULL_SCRAPE_SLOTS 4096
static _Atomic uint32_t trk_full_scrape_last[TRK_FULL_SCRAPE_SLOTS];

struct trk_full {
	struct trk_env *env;
	uint8_t (*h)[TRK_HASH_LEN];
	struct trk_counts *c;
	size_t n, cap;
	bool failed;
};

static void
trk_full_collect(const uint8_t ih[TRK_HASH_LEN], const struct trk_counts *c, size_t p4, size_t p6,
		 void *arg)
{
	struct trk_full *f = arg;
	(void)p4;
	(void)p6;
	if (f->failed || !trk_allowed(f->env, ih))
		return; /* in whitelist mode only registered torrents are listed */
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 1024;
		void *nh = realloc(f->h, cap * TRK_HASH_LEN);
		if (nh)
			f->h = nh;
		void *nc = nh ? realloc(f->c, cap * sizeof(*f->c)) : NULL;
		if (!nh || !nc) {
			f->failed = true;
			return;
		}
		f->c = nc;
		f->cap = cap;
	}
	memcpy(f->h[f->n], ih, TRK_HASH_LEN);
	f->c[f->n++] = *c;
}

static void
trk_full_scrape(struct http_req *req, struct trk_env *env, struct jw *w)
{
	const struct addr *a = http_req_client(req);
	uint32_t now = trk_store_now();
	uint32_t slot = 2166136261u;
	for (int i = 0; i < 16; i++)
		slot = (slot ^ a->ip[i]) * 16777619u;
	slot %= TRK_FULL_SCRAPE_SLOTS;
	uint32_t last = atomic_load(&trk_full_scrape_last[slot]);
	unsigned min = atomic_load(&env->full_scrape_min_s);
	if (last && now - last < min) {
		jw_discard(w);
		trk_fail(req, env, "rate_limited", "full scrape rate limited; try again later");
		return;
	}
	atomic_store(&trk_full_scrape_last[slot], now);
	/* One rendering serves every full scrape for full_scrape_min_s: the
	 * work and the memory stay bounded however many addresses ask. */
	pthread_mutex_lock(&env->fs_lock);
	if (!env->fs_body || now - env->fs_at >= min) {
		struct trk_full f = { .env = env };
		struct jw body;
		trk_store_foreach(env->store, trk_full_collect, &f);
		/* Sorted by info_hash, as bencoded dictionary keys must be: the
		 * hash is the first member of a row, so rows sort with
		 * trk_hash_cmp. */
		struct row {
			uint8_t h[TRK_HASH_LEN];
			struct trk_counts c;
		} *rows = f.failed ? NULL : malloc((f.n + 1) * sizeof(*rows));
		if (rows) {
			for (size_t i = 0; i < f.n; i++) {
				memcpy(rows[i].h, f.h[i], TRK_HASH_LEN);
				rows[i].c = f.c[i];
			}
			qsort(rows, f.n, sizeof(*rows), trk_hash_cmp);
			jw_init(&body, 64 + f.n * 72);
			for (size_t i = 0; i < f.n; i++)
				trk_put_scrape_entry(&body, rows[i].h, &rows[i].c);
			char *text = jw_finish(&body, &env->fs_len);
			if (text) {
				free(env->fs_body);
				env->fs_body = text;
				env->fs_at = now;
			}
		}
		free(rows);
		free(f.h);
		free(f.c);
	}
	if (!env->fs_body) {
		pthread_mutex_unlock(&env->fs_lock);
		jw_discard(w);
		trk_fail(req, env, "internal", "out of memory");
		return;
	}
	jw_raw(w, env->fs_body, env->fs_len);
	pthread_mutex_unlock(&env->fs_lock);
}

static void
trk_handle_scrape(struct http_req *req, void *arg)
{
	struct trk_env *env = arg;
	struct trk_query q;
	const char *reason;
	size_t qlen;
	const char *raw = http_req_raw_query(req, &qlen);
	struct jw w;

	jw_init(&w, 256);
	jw_lit(&w, "d5:filesd");
	if (trk_query_parse(raw, qlen, true, &q, &reason) < 0) {
		if (strcmp(reason, "missing info_hash") != 0 ||
		    !atomic_load_explicit(&env->full_scrape, memory_order_relaxed)) {
			jw_discard(&w);
			trk_fail(req, env, "bad_request",
				 strcmp(reason, "missing info_hash") == 0
					 ? "full scrape is disabled; give info_hash"
					 : reason);
			return;
		}
		trk_full_scrape(req, env, &w);
		if (!w.p)
			return; /* trk_full_scrape answered */
	} else {
		qsort(q.scrape, q.nscrape, TRK_HASH_LEN, trk_hash_cmp);
		for (size_t i = 0; i < q.nscrape; i++) {
			struct trk_counts c = { 0 };
			if (i && memcmp(q.scrape[i], q.scrape[i - 1], TRK_HASH_LEN) == 0)
				continue; /* a key appears once */
			if (!trk_allowed(env, q.scrape[i]))
				continue;
			trk_store_scrape(env->store, q.scrape[i], &c);
			trk_put_scrape_entry(&w, q.scrape[i], &c);
		}
	}
	jw_lit(&w, "ee");
	if (env->m.scrapes)
		met_add(met_child(env->m.scrapes, "http"), 1);
	trk_reply(req, env, &w);
}

/* ---------------------------------------------------------------- admin */

static void
trk_handle_readyz(struct http_req *req, void *arg)
{
	struct trk_env *env = arg;
	svc_readyz(req, NULL, env->pg, NULL);
}

#define TRK_TOP 10
struct trk_top {
	uint8_t h[TRK_TOP][TRK_HASH_LEN];
	struct trk_counts c[TRK_TOP];
	size_t peers[TRK_TOP];
	size_t n;
};

static void
trk_top_collect(const uint8_t ih[TRK_HASH_LEN], const struct trk_counts *c, size_t p4, size_t p6,
		void *arg)
{
	struct trk_top *t = arg;
	size_t peers = p4 + p6, i;
	if (t->n == TRK_TOP && peers <= t->peers[TRK_TOP - 1])
		return;
	i = t->n < TRK_TOP ? t->n++ : TRK_TOP - 1;
	while (i > 0 && t->peers[i - 1] < peers) {
		memcpy(t->h[i], t->h[i - 1], TRK_HASH_LEN);
		t->c[i] = t->c[i - 1];
		t->peers[i] = t->peers[i - 1];
		i--;
	}
	memcpy(t->h[i], ih, TRK_HASH_LEN);
	t->c[i] = *c;
	t->peers[i] = peers;
}

static void
trk_handle_status(struct http_req *req, void *arg)
{
	struct trk_env *env = arg;
	struct trk_store_stats st;
	struct trk_top top = { 0 };
	char hex[2 * TRK_HASH_LEN + 1];

	trk_store_stats(env->store, &st);
	trk_store_foreach(env->store, trk_top_collect, &top);
	json_t *arr = json_array();
	for (size_t i = 0; i < top.n; i++) {
		sodium_bin2hex(hex, sizeof(hex), top.h[i], TRK_HASH_LEN);
		json_array_append_new(arr, json_pack("{s:s, s:I, s:I, s:I, s:I}", "info_hash", hex,
						     "peers", (json_int_t)top.peers[i], "seeders",
						     (json_int_t)top.c[i].seeders, "leechers",
						     (json_int_t)top.c[i].leechers, "completed",
						     (json_int_t)top.c[i].completed));
	}
	size_t peers = st.peers4 + st.peers6;
	json_t *o = json_object();
	json_object_set_new(o, "daemon", json_string("tracker"));
	json_object_set_new(o, "version", json_string(P2PCDN_VERSION));
	json_object_set_new(o, "uptime_s", json_integer((dmn_now_ms() - env->started_ms) / 1000));
	json_object_set_new(o, "mode",
			    json_string(atomic_load(&env->whitelist_mode) ? "whitelist" : "open"));
	json_object_set_new(o, "torrents", json_integer((json_int_t)st.torrents));
	json_object_set_new(o, "peers", json_integer((json_int_t)peers));
	json_object_set_new(o, "peers_ipv4", json_integer((json_int_t)st.peers4));
	json_object_set_new(o, "peers_ipv6", json_integer((json_int_t)st.peers6));
	json_object_set_new(o, "seeders", json_integer((json_int_t)st.seeders));
	json_object_set_new(o, "leechers", json_integer((json_int_t)st.leechers));
	json_object_set_new(o, "store_bytes", json_integer((json_int_t)st.bytes));
	json_object_set_new(o, "bytes_per_peer",
			    peers ? json_real((double)st.bytes / (double)peers) : json_null());
	pthread_rwlock_rdlock(&env->wl_lock);
	json_int_t wl_n = env->wl ? (json_int_t)env->wl->n : 0;
	pthread_rwlock_unlock(&env->wl_lock);
	json_object_set_new(o, "whitelist_size", json_integer(wl_n));
	json_object_set_new(o, "announces_per_s",
			    json_pack("{s:f, s:f}", "http", atomic_load(&env->announces_per_s[0]),
				      "udp", atomic_load(&env->announces_per_s[1])));
	json_object_set_new(o, "top_torrents", arr);
	http_reply_json(req, 200, o);
}

const struct http_route trk_api_routes[] = {
	{ "GET", "/announce", trk_handle_announce, false },
	{ "GET", "/scrape", trk_handle_scrape, false },
	{ "GET", "/v1/programs", trk_handle_programs_list, false },
	{ "POST", "/v1/programs", trk_handle_program_register, true },
	{ "POST", "/v1/torrents", trk_handle_torrent_upload, true },
	{ "GET", "/v1/torrents/{}", trk_handle_torrent_get, false },
};
const size_t trk_api_nroutes = sizeof(trk_api_routes) / sizeof(trk_api_routes[0]);

const struct http_route trk_admin_routes[] = {
	{ "GET", "/healthz", http_handle_healthz, false },
	{ "GET", "/readyz", trk_handle_readyz, false },
	{ "GET", "/status", trk_handle_status, false },
	{ "GET", "/metrics", http_handle_metrics, false },
};
const size_t trk_admin_nroutes = sizeof(trk_admin_routes) / sizeof(trk_admin_routes[0]);
