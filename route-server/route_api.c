// SPDX-License-Identifier: MIT
/* route-server: HTTP handlers of the public API and the admin listener. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmn.h"
#include "jw.h"
#include "log.h"
#include "peerid.h"
#include "route.h"
#include "svc.h"

#define ROUTE_SOURCES_MAX 256

static json_t *
route_str_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

/* "geo":{...} of an answer. */
static void
route_geo_jw(struct jw *w, const struct route_geo *g)
{
	jw_key(w, true, "geo");
	jw_lit(w, "{");
	jw_key(w, false, "ip");
	jw_str(w, g->ip);
	jw_key(w, true, "country");
	jw_str(w, g->found ? g->country : NULL);
	jw_key(w, true, "region");
	jw_str(w, g->region[0] ? g->region : NULL);
	jw_key(w, true, "city");
	jw_str(w, g->city[0] ? g->city : NULL);
	jw_key(w, true, "latitude");
	if (g->has_loc)
		jw_double(w, g->lat);
	else
		jw_lit(w, "null");
	jw_key(w, true, "longitude");
	if (g->has_loc)
		jw_double(w, g->lon);
	else
		jw_lit(w, "null");
	jw_key(w, true, "asn");
	if (g->has_asn)
		jw_int(w, g->asn);
	else
		jw_lit(w, "null");
	jw_key(w, true, "nettype");
	jw_int(w, g->nettype);
	jw_key(w, true, "nettype_name");
	jw_str(w, route_nettype_name(g->nettype));
	jw_key(w, true, "private");
	jw_bool(w, g->private_addr);
	jw_lit(w, "}");
}

/* "domain":...,"index_servers":[...] of an answer (no leading comma). */
static void
route_domain_jw(struct jw *w, const struct route_domain *d)
{
	jw_key(w, false, "domain");
	jw_str(w, d ? d->name : NULL);
	jw_key(w, true, "index_servers");
	jw_lit(w, "[");
	for (size_t i = 0; d && i < d->nindex; i++) {
		if (i)
			jw_lit(w, ",");
		jw_str(w, d->index_servers[i]);
	}
	jw_lit(w, "]");
}

static json_t *
route_index_json(const struct route_domain *d)
{
	json_t *a = json_array();
	for (size_t i = 0; i < d->nindex; i++)
		json_array_append_new(a, json_string(d->index_servers[i]));
	return a;
}

/* Everything of a PeerID but the node: fields from geo, codes from the
 * snapshot (queueing names that have none yet). */
static void
route_fields(struct route_env *env, const struct route_snap *snap, const struct route_geo *g,
	     struct peerid_fields *f, bool queue)
{
	memset(f, 0, sizeof(*f));
	/* The carrier and neighbourhood come from the ASN database and stand
	 * even when the city database does not know the address. */
	f->nettype = g->nettype;
	if (g->has_asn)
		f->area = (g->asn & 0xffff) ^ (g->asn >> 16);
	if (!g->found)
		return;
	f->country = peerid_country_index(g->country);
	route_snap_codes(snap, f->country, g, &f->region, &f->city);
	if (queue && f->country && ((g->region[0] && !f->region) || (g->city[0] && !f->city)))
		route_queue_codes(env, f->country, g);
}

/* One PeerID allocation waiting on Redis. The answer is rendered before
 * the wait, so the loop thread only splices the PeerID in. */
struct route_alloc {
	struct route_env *env;
	struct http_req *req;
	char *rest; /* the JSON answer without peer_id, starting at its '{' */
	struct peerid_fields f;
	struct met_child *allocations;
	char domain[64];
	char ttl[24];
	int attempts, attempts_left;
	char hex[PEERID_HEX_LEN + 1];
	char key[160];
};

static void route_alloc_done(redisReply *rep, int err, void *arg);

/* 16 random bits. Drawn from a per-thread buffer refilled by libsodium, so
 * the kernel's generator is asked once per 256 PeerIDs, not once each. */
static unsigned
route_random16(void)
{
	static __thread uint16_t buf[256];
	static __thread unsigned left;

	if (!left) {
		randombytes_buf(buf, sizeof(buf));
		left = 256;
	}
	return buf[--left];
}

/* Tries one random node value: SET NX EX makes it unique and reserves it
 * in one round trip. */
static int
route_alloc_try(struct route_alloc *a)
{
	uint64_t id;
	const char *argv[6];

	a->f.node = route_random16();
	peerid_encode(&a->f, &id);
	peerid_format(id, a->hex, sizeof(a->hex));
	snprintf(a->key, sizeof(a->key), "%speerid:{%s}", rds_async_prefix(a->env->ra), a->hex);
	argv[0] = "SET";
	argv[1] = a->key;
	argv[2] = a->domain;
	argv[3] = "NX";
	argv[4] = "EX";
	argv[5] = a->ttl;
	return rds_async_argv(a->env->ra, route_alloc_done, a, 6, argv, NULL);
}

static void
route_alloc_finish(struct route_alloc *a)
{
	http_resume(a->req);
	free(a->rest);
	free(a);
}

/* Loop thread. */
static void
route_alloc_done(redisReply *rep, int err, void *arg)
{
	struct route_alloc *a = arg;

	if (!err && rep->type == REDIS_REPLY_STATUS) {
		size_t rlen = strlen(a->rest);
		size_t len = rlen + PEERID_HEX_LEN + 16;
		char *out = malloc(len);
		if (out) {
			int n = snprintf(out, len, "{\"peer_id\":\"%s\",%s", a->hex, a->rest + 1);
			met_add(a->allocations, 1);
			http_reply_take(a->req, 200, "application/json", out, (size_t)n);
		} else {
			http_reply_error(a->req, 500, "internal", "out of memory");
		}
		route_alloc_finish(a);
		return;
	}
	if (!err && rep->type == REDIS_REPLY_NIL) {
		met_add(a->env->m.collisions, 1);
		if (--a->attempts_left > 0) {
			int r = route_alloc_try(a);
			if (r == 0)
				return;
			err = r;
		} else {
			http_reply_retry(
				a->req, 503, 5, "peerid_exhausted",
				"no free PeerID found for this network neighbourhood after %d "
				"tries",
				a->attempts);
			route_alloc_finish(a);
			return;
		}
	}
	http_reply_retry(a->req, 503, 1, "redis_unavailable",
			 err ? "the PeerID store is unreachable; retry shortly"
			     : "the PeerID store refused the write");
	route_alloc_finish(a);
}

/* Allocations per client address and minute. A fixed table indexed by a
 * keyed hash of the address keeps memory constant whatever the number of
 * clients; a collision can only make two addresses share one budget. Each
 * slot packs the minute (high 32 bits) and the count (low 32 bits) so one
 * compare-and-swap updates it without a lock. */
#define ROUTE_RATE_SLOTS 65536
static _Atomic uint64_t route_rate[ROUTE_RATE_SLOTS];
static unsigned char route_rate_key[crypto_shorthash_KEYBYTES];
static pthread_once_t route_rate_once = PTHREAD_ONCE_INIT;

static void
route_rate_init(void)
{
	randombytes_buf(route_rate_key, sizeof(route_rate_key));
}

static bool
route_rate_limited(const struct addr *client, long long max_per_minute)
{
	unsigned char h[crypto_shorthash_BYTES];
	uint64_t slot, cur, next;
	uint32_t minute = (uint32_t)(dmn_now_ms() / 60000);

	if (max_per_minute <= 0)
		return false;
	pthread_once(&route_rate_once, route_rate_init);
	crypto_shorthash(h, client->ip, sizeof(client->ip), route_rate_key);
	memcpy(&slot, h, sizeof(slot));
	_Atomic uint64_t *p = &route_rate[slot % ROUTE_RATE_SLOTS];
	cur = atomic_load_explicit(p, memory_order_relaxed);
	do {
		uint32_t count = (uint32_t)(cur >> 32) == minute ? (uint32_t)cur : 0;
		if (count >= max_per_minute)
			return true;
		next = (uint64_t)minute << 32 | (count + 1);
	} while (!atomic_compare_exchange_weak_explicit(p, &cur, next, memory_order_relaxed,
							memory_order_relaxed));
	return false;
}

static void
route_handle_route(struct http_req *req, void *arg)
{
	struct route_env *env = arg;
	struct route_view view;
	const struct route_domain *d;
	struct route_geo g;
	struct route_alloc *a;

	/* HEAD would reserve a PeerID whose answer nobody reads. */
	if (strcmp(http_req_method(req), "GET") != 0) {
		http_reply_header(req, "Allow", "GET");
		http_reply_error(req, 405, "method_not_allowed", "use GET");
		return;
	}
	route_view_get(env, &view);
	struct route_state *st = view.st;
	const struct route_snap *snap = view.snap;
	if (route_rate_limited(http_req_client(req), st->max_per_minute)) {
		route_view_put(&view);
		met_add(env->m.rate_limited, 1);
		http_reply_retry(req, 429, 60, "rate_limited",
				 "too many PeerIDs asked from this address; retry in a minute");
		return;
	}

	atomic_fetch_add_explicit(&env->lookups, 1, memory_order_relaxed);
	route_geo_lookup(st, http_req_client(req), &g);
	if (g.private_addr)
		met_add(met_child(env->m.geo_misses, "private"), 1);
	else if (!g.found)
		met_add(met_child(env->m.geo_misses, "not_found"), 1);
	d = route_snap_choose(snap, &g, st->default_domain);
	if (!d) {
		http_reply_retry(req, 503, 10, "domain_not_configured",
				 "domain \"%s\" is not in the database yet; an operator must add "
				 "it (PUT /v1/admin/domains/NAME)",
				 st->default_domain);
		route_view_put(&view);
		return;
	}
	a = calloc(1, sizeof(*a));
	if (a) {
		struct jw w;
		jw_init(&w, 512);
		jw_lit(&w, "{");
		route_domain_jw(&w, d);
		jw_key(&w, true, "ttl");
		jw_int(&w, st->peerid_ttl_s);
		route_geo_jw(&w, &g);
		jw_lit(&w, "}");
		a->rest = jw_finish(&w, NULL);
	}
	if (!a || !a->rest) {
		free(a);
		route_view_put(&view);
		http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	a->env = env;
	a->req = req;
	a->allocations = d->allocations;
	a->attempts = a->attempts_left = st->peerid_attempts;
	snprintf(a->domain, sizeof(a->domain), "%s", d->name);
	snprintf(a->ttl, sizeof(a->ttl), "%lld", st->peerid_ttl_s);
	route_fields(env, snap, &g, &a->f, true);
	/* Everything the wait needs is copied: the references go now. */
	route_view_put(&view);
	/* Defer before submitting: the reply may arrive before we return. */
	http_defer(req);
	if (route_alloc_try(a) < 0) {
		http_reply_retry(req, 503, 1, "redis_unavailable",
				 "the PeerID store is unreachable; retry shortly");
		route_alloc_finish(a);
	}
}

/* ---------------------------------------------------------------- sources */

static bool
route_channel_ok(const char *ch)
{
	size_t len = strlen(ch);
	return len >= 1 && len <= 128 &&
	       strspn(ch, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
		       len;
}

static double
route_distance_km(double lat1, double lon1, double lat2, double lon2)
{
	const double r = 6371.0, rad = M_PI / 180.0;
	double dlat = (lat2 - lat1) * rad, dlon = (lon2 - lon1) * rad;
	double a = sin(dlat / 2) * sin(dlat / 2) +
		   cos(lat1 * rad) * cos(lat2 * rad) * sin(dlon / 2) * sin(dlon / 2);
	return 2 * r * atan2(sqrt(a), sqrt(1 - a));
}

struct route_source {
	const char *id;
	const char *domain;
	const char *url;
	double load, capacity, distance;
	bool has_distance;
};

static int
route_source_cmp(const void *a, const void *b)
{
	const struct route_source *x = a, *y = b;
	if (x->has_distance != y->has_distance)
		return x->has_distance ? -1 : 1;
	if (x->has_distance && x->distance != y->distance)
		return x->distance < y->distance ? -1 : 1;
	double lx = x->capacity > 0 ? x->load / x->capacity : x->load;
	double ly = y->capacity > 0 ? y->load / y->capacity : y->load;
	return lx < ly ? -1 : lx > ly;
}

/* One sources request waiting on Redis: a ZRANGEBYSCORE, then one HGETALL
 * per cache, all on the pipelined connection, so no HTTP thread waits. The
 * snapshot reference is held until the answer is built (domain
 * coordinates); reply strings are copied, since rds_async frees replies. */
struct route_src_req {
	struct route_env *env;
	struct http_req *req;
	struct route_view view;
	const struct route_domain *self;
	char channel[129];
	char **ids;
	size_t nids;
	struct route_src_item {
		struct route_src_req *r;
		char *domain, *url;
		double load, capacity;
	} * items;
	size_t pending;
	bool failed;
};

static void
route_src_free(struct route_src_req *r)
{
	for (size_t i = 0; i < r->nids; i++) {
		free(r->ids[i]);
		free(r->items[i].domain);
		free(r->items[i].url);
	}
	free(r->ids);
	free(r->items);
	route_view_put(&r->view);
	free(r);
}

static void
route_src_answer(struct route_src_req *r)
{
	struct http_req *req = r->req;
	const struct route_domain *self = r->self;
	struct route_source *src = calloc(r->nids + 1, sizeof(*src));
	size_t m = 0;

	if (r->failed || !src) {
		free(src);
		http_reply_retry(req, 503, 1, "redis_unavailable",
				 "the cache registry is unreachable");
		goto out;
	}
	for (size_t i = 0; i < r->nids; i++) {
		const struct route_src_item *it = &r->items[i];
		if (!it->domain || !it->url || strcmp(it->domain, self->name) == 0)
			continue; /* expired hash, or this domain's own cache */
		const struct route_domain *other = route_snap_domain(r->view.snap, it->domain);
		src[m].id = r->ids[i];
		src[m].domain = it->domain;
		src[m].url = it->url;
		src[m].load = it->load;
		src[m].capacity = it->capacity;
		if (other && other->has_loc && self->has_loc) {
			src[m].has_distance = true;
			src[m].distance =
				route_distance_km(self->lat, self->lon, other->lat, other->lon);
		}
		m++;
	}
	qsort(src, m, sizeof(*src), route_source_cmp);
	json_t *arr = json_array();
	for (size_t i = 0; i < m; i++) {
		json_t *o = json_pack("{s:s, s:s, s:s, s:f, s:f}", "cache_id", src[i].id, "domain",
				      src[i].domain, "url", src[i].url, "load", src[i].load,
				      "capacity", src[i].capacity);
		json_object_set_new(o, "distance_km",
				    src[i].has_distance
					    ? json_real(round(src[i].distance * 10) / 10)
					    : json_null());
		json_array_append_new(arr, o);
	}
	free(src);
	http_reply_json(req, 200,
			json_pack("{s:s, s:s, s:o}", "channel", r->channel, "domain", self->name,
				  "sources", arr));
out:
	http_resume(req);
	route_src_free(r);
}

static char *
route_hash_dup(const redisReply *h, const char *name)
{
	const char *v = rds_hash_field(h, name);
	return v ? strdup(v) : NULL;
}

/* Loop thread: one HGETALL answered. */
static void
route_src_on_hash(redisReply *rep, int err, void *arg)
{
	struct route_src_item *it = arg;
	struct route_src_req *r = it->r;

	if (err)
		r->failed = true;
	else if (rep->type == REDIS_REPLY_ARRAY) {
		const char *load = rds_hash_field(rep, "load");
		const char *cap = rds_hash_field(rep, "capacity");
		it->domain = route_hash_dup(rep, "domain");
		it->url = route_hash_dup(rep, "url");
		it->load = load ? strtod(load, NULL) : 0;
		it->capacity = cap ? strtod(cap, NULL) : 0;
	}
	if (--r->pending == 0)
		route_src_answer(r);
}

/* Loop thread: the cache ids of the channel are known. */
static void
route_src_on_ids(redisReply *rep, int err, void *arg)
{
	struct route_src_req *r = arg;
	char key[256];

	if (err || rep->type != REDIS_REPLY_ARRAY) {
		r->failed = true;
		route_src_answer(r);
		return;
	}
	size_t n = rep->elements;
	r->ids = calloc(n + 1, sizeof(*r->ids));
	r->items = calloc(n + 1, sizeof(*r->items));
	if (!r->ids || !r->items) {
		r->failed = true;
		route_src_answer(r);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		r->ids[i] = strdup(
			rep->element[i]->type == REDIS_REPLY_STRING ? rep->element[i]->str : "");
		r->items[i].r = r;
		if (!r->ids[i])
			r->failed = true;
		r->nids++;
	}
	if (r->failed || n == 0) {
		route_src_answer(r);
		return;
	}
	/* pending counts the submissions still out; the extra one held during
	 * the loop keeps an early reply from answering before all are sent. */
	r->pending = 1;
	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "%scache:{%s}", rds_async_prefix(r->env->ra), r->ids[i]);
		const char *argv[] = { "HGETALL", key };
		r->pending++;
		if (rds_async_argv(r->env->ra, route_src_on_hash, &r->items[i], 2, argv, NULL) <
		    0) {
			r->pending--;
			r->failed = true;
			break;
		}
	}
	if (--r->pending == 0)
		route_src_answer(r);
}

static void
route_handle_sources(struct http_req *req, void *arg)
{
	struct route_env *env = arg;
	const char *ch = http_req_param(req, 0);
	const char *dom = http_req_query(req, "domain");
	struct route_src_req *r;
	char key[256], now[24], limit[16];

	if (!route_channel_ok(ch)) {
		http_reply_error(req, 400, "bad_request",
				 "channel must be 1-128 characters of A-Z a-z 0-9 . _ -");
		return;
	}
	if (!dom || !*dom) {
		http_reply_error(req, 400, "bad_request", "query parameter domain is required");
		return;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	r->env = env;
	r->req = req;
	route_view_get(env, &r->view);
	r->self = route_snap_domain(r->view.snap, dom);
	if (!r->self) {
		route_src_free(r);
		http_reply_error(req, 404, "unknown_domain", "no domain named \"%.64s\"", dom);
		return;
	}
	snprintf(r->channel, sizeof(r->channel), "%s", ch);
	snprintf(key, sizeof(key), "%schan:{%s}:caches", rds_async_prefix(env->ra), ch);
	snprintf(now, sizeof(now), "(%lld", dmn_wall_s());
	snprintf(limit, sizeof(limit), "%d", ROUTE_SOURCES_MAX);
	const char *argv[] = { "ZRANGEBYSCORE", key, now, "+inf", "LIMIT", "0", limit };
	/* Defer before submitting: the reply may arrive before we return. */
	http_defer(req);
	if (rds_async_argv(env->ra, route_src_on_ids, r, 7, argv, NULL) < 0) {
		r->failed = true;
		route_src_answer(r);
	}
}

const struct http_route route_api_routes[] = {
	{ "GET", "/v1/route", route_handle_route, false },
	{ "GET", "/v1/streams/{}/sources", route_handle_sources, false },
};
const size_t route_api_nroutes = sizeof(route_api_routes) / sizeof(route_api_routes[0]);

/* ---------------------------------------------------------------- admin */

static PGconn *
route_pg(struct route_env *env, struct http_req *req)
{
	return svc_pg_acquire(env->pg, req, "configuration database");
}

static bool
route_domain_name_ok(const char *s)
{
	size_t len = strlen(s);
	if (len < 1 || len > 63 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == len;
}

static json_t *
route_domain_row_json(const PGresult *res, int i)
{
	json_t *o = json_object();
	json_object_set_new(o, "name", json_string(PQgetvalue(res, i, 0)));
	json_t *idx = json_loads(PQgetvalue(res, i, 1), 0, NULL);
	json_object_set_new(o, "index_servers", idx ? idx : json_array());
	json_object_set_new(o, "latitude",
			    PQgetisnull(res, i, 2)
				    ? json_null()
				    : json_real(strtod(PQgetvalue(res, i, 2), NULL)));
	json_object_set_new(o, "longitude",
			    PQgetisnull(res, i, 3)
				    ? json_null()
				    : json_real(strtod(PQgetvalue(res, i, 3), NULL)));
	return o;
}

/* GET of an admin collection: runs sql and answers {"<what>": [rows]}. */
static void
route_admin_list(struct http_req *req, struct route_env *env, const char *sql, const char *what,
		 json_t *(*row)(const PGresult *res, int i))
{
	char err[256];
	PGconn *c = route_pg(env, req);
	if (!c)
		return;
	PGresult *res = pg_query(c, sql, 0, NULL, err, sizeof(err), NULL);
	pg_release(env->pg, c);
	if (!res) {
		log_err("listing %s: %s", what, err);
		http_reply_error(req, 500, "internal", "listing %s failed", what);
		return;
	}
	json_t *arr = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(arr, row(res, i));
	PQclear(res);
	http_reply_json(req, 200, json_pack("{s:o}", what, arr));
}

static void
route_handle_domains_list(struct http_req *req, void *arg)
{
	route_admin_list(req, arg,
			 "SELECT name, array_to_json(index_servers)::text, latitude, longitude "
			 "FROM domains ORDER BY name",
			 "domains", route_domain_row_json);
}

/* Returns 0 and a JSON text of the validated index_servers array. */
static int
route_check_index_servers(struct http_req *req, json_t *v, char **ret_json)
{
	size_t i;
	json_t *s;

	if (!json_is_array(v) || json_array_size(v) > 64) {
		http_reply_error(req, 400, "bad_request",
				 "index_servers must be an array of at most 64 URLs");
		return -EINVAL;
	}
	json_array_foreach (v, i, s) {
		const char *u = json_string_value(s);
		if (!u || strlen(u) > 512 ||
		    (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) ||
		    strpbrk(u, " \t\r\n\"")) {
			http_reply_error(req, 400, "bad_request",
					 "index_servers[%zu] must be an http:// or https:// URL",
					 i);
			return -EINVAL;
		}
	}
	*ret_json = json_dumps(v, JSON_COMPACT);
	return *ret_json ? 0 : -ENOMEM;
}

static int
route_check_coord(struct http_req *req, json_t *v, const char *name, double limit, char *buf,
		  size_t size, const char **ret)
{
	if (!v || json_is_null(v)) {
		*ret = NULL;
		return 0;
	}
	if (!json_is_number(v) || fabs(json_number_value(v)) > limit) {
		http_reply_error(req, 400, "bad_request",
				 "%s must be a number in [-%g, %g] or null", name, limit, limit);
		return -EINVAL;
	}
	snprintf(buf, size, "%.7f", json_number_value(v));
	*ret = buf;
	return 0;
}

static int
route_reject_unknown(struct http_req *req, json_t *body, const char *const *known)
{
	const char *k;
	json_t *v;
	json_object_foreach (body, k, v) {
		bool ok = false;
		for (size_t i = 0; known[i]; i++)
			ok = ok || strcmp(k, known[i]) == 0;
		if (!ok) {
			http_reply_error(req, 400, "unknown_field", "unknown field \"%.64s\"", k);
			return -EINVAL;
		}
	}
	return 0;
}

static void
route_handle_domain_put(struct http_req *req, void *arg)
{
	static const char *const known[] = { "index_servers", "latitude", "longitude", NULL };
	struct route_env *env = arg;
	const char *name = http_req_param(req, 0), *lat, *lon;
	char latb[32], lonb[32], err[256];
	char *idx = NULL;
	json_t *body;

	if (!route_domain_name_ok(name)) {
		http_reply_error(
			req, 400, "bad_domain_name",
			"domain names are 1-63 of a-z 0-9 _ - starting with a letter or digit");
		return;
	}
	if (http_req_json(req, &body) < 0)
		return;
	if (route_reject_unknown(req, body, known) < 0 ||
	    route_check_index_servers(req, json_object_get(body, "index_servers"), &idx) < 0 ||
	    route_check_coord(req, json_object_get(body, "latitude"), "latitude", 90, latb,
			      sizeof(latb), &lat) < 0 ||
	    route_check_coord(req, json_object_get(body, "longitude"), "longitude", 180, lonb,
			      sizeof(lonb), &lon) < 0)
		goto out;
	if ((lat == NULL) != (lon == NULL)) {
		http_reply_error(req, 400, "bad_request", "latitude and longitude go together");
		goto out;
	}
	PGconn *c = route_pg(env, req);
	if (!c)
		goto out;
	const char *p[] = { name, idx, lat, lon };
	PGresult *res = pg_query(
		c,
		"INSERT INTO domains (name, index_servers, latitude, longitude) VALUES ($1, "
		"ARRAY(SELECT json_array_elements_text($2::json)), $3, $4) ON CONFLICT (name) DO "
		"UPDATE SET index_servers = EXCLUDED.index_servers, latitude = EXCLUDED.latitude, "
		"longitude = EXCLUDED.longitude, updated_at = now() RETURNING name, "
		"array_to_json(index_servers)::text, latitude, longitude, (xmax = 0)",
		4, p, err, sizeof(err), NULL);
	pg_release(env->pg, c);
	if (!res) {
		log_err("saving domain %s: %s", name, err);
		http_reply_error(req, 500, "internal", "saving the domain failed");
		goto out;
	}
	bool created = PQgetvalue(res, 0, 4)[0] == 't';
	json_t *o = route_domain_row_json(res, 0);
	PQclear(res);
	log_notice("admin: domain %s %s", name, created ? "created" : "replaced");
	route_refresh_soon(env);
	http_reply_json(req, created ? 201 : 200, o);
out:
	free(idx);
	json_decref(body);
}

/* Runs one DELETE by key for an admin endpoint and answers 204, 404, or
 * 409 when a foreign key still points at the row. */
static void
route_admin_delete(struct http_req *req, struct route_env *env, const char *sql, const char *key,
		   const char *what, const char *missing_code, const char *in_use_msg)
{
	char err[256], state[6];
	PGconn *c = route_pg(env, req);
	if (!c)
		return;
	const char *p[] = { key };
	PGresult *res = pg_query(c, sql, 1, p, err, sizeof(err), state);
	pg_release(env->pg, c);
	if (!res) {
		if (in_use_msg && strcmp(state, "23503") == 0) {
			http_reply_error(req, 409, "domain_in_use", "%s", in_use_msg);
			return;
		}
		log_err("deleting %s %s: %s", what, key, err);
		http_reply_error(req, 500, "internal", "deleting the %s failed", what);
		return;
	}
	bool found = strcmp(PQcmdTuples(res), "0") != 0;
	PQclear(res);
	if (!found) {
		http_reply_error(req, 404, missing_code, "no %s \"%.64s\"", what, key);
		return;
	}
	log_notice("admin: %s %s deleted", what, key);
	route_refresh_soon(env);
	http_reply_json(req, 204, NULL);
}

static void
route_handle_domain_delete(struct http_req *req, void *arg)
{
	route_admin_delete(req, arg, "DELETE FROM domains WHERE name = $1", http_req_param(req, 0),
			   "domain", "unknown_domain",
			   "rules still send clients to this domain; change or delete them first");
}

#define ROUTE_RULE_COLS "id, priority, country, nettype, region, city, domain"

static json_t *
route_rule_row_json(const PGresult *res, int i)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer(strtoll(PQgetvalue(res, i, 0), NULL, 10)));
	json_object_set_new(o, "priority", json_integer(atoi(PQgetvalue(res, i, 1))));
	json_object_set_new(o, "country",
			    PQgetisnull(res, i, 2) ? json_null()
						   : json_string(PQgetvalue(res, i, 2)));
	if (PQgetisnull(res, i, 3)) {
		json_object_set_new(o, "nettype", json_null());
	} else {
		int nt = atoi(PQgetvalue(res, i, 3));
		json_object_set_new(o, "nettype", json_integer(nt));
		json_object_set_new(o, "nettype_name",
				    json_string(route_nettype_name((unsigned)nt)));
	}
	json_object_set_new(o, "region",
			    PQgetisnull(res, i, 4) ? json_null()
						   : json_string(PQgetvalue(res, i, 4)));
	json_object_set_new(o, "city",
			    PQgetisnull(res, i, 5) ? json_null()
						   : json_string(PQgetvalue(res, i, 5)));
	json_object_set_new(o, "domain", json_string(PQgetvalue(res, i, 6)));
	return o;
}

static void
route_handle_rules_list(struct http_req *req, void *arg)
{
	route_admin_list(req, arg,
			 "SELECT " ROUTE_RULE_COLS " FROM domain_rules ORDER BY priority, id",
			 "rules", route_rule_row_json);
}

/* A validated rule body as text parameters for SQL (NULL = any). */
struct route_rule_in {
	char priority[16], country[3], nettype[12];
	const char *p_country, *p_nettype, *region, *city, *domain;
};

static int
route_string_field(struct http_req *req, json_t *body, const char *name, size_t max,
		   const char **ret)
{
	json_t *v = json_object_get(body, name);
	*ret = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || json_string_length(v) < 1 || json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		http_reply_error(req, 400, "bad_request",
				 "%s must be a string of 1-%zu bytes or null", name, max);
		return -EINVAL;
	}
	*ret = json_string_value(v);
	return 0;
}

static int
route_rule_parse(struct http_req *req, json_t *body, struct route_rule_in *in)
{
	static const char *const known[] = { "priority", "country", "nettype", "region",
					     "city",     "domain",  NULL };
	json_t *v;
	const char *cc;

	memset(in, 0, sizeof(*in));
	if (route_reject_unknown(req, body, known) < 0)
		return -EINVAL;
	v = json_object_get(body, "priority");
	if (v && (!json_is_integer(v) || json_integer_value(v) < -1000000 ||
		  json_integer_value(v) > 1000000)) {
		http_reply_error(req, 400, "bad_request",
				 "priority must be an integer in [-1000000, 1000000]");
		return -EINVAL;
	}
	snprintf(in->priority, sizeof(in->priority), "%lld",
		 v ? (long long)json_integer_value(v) : 100LL);
	if (route_string_field(req, body, "country", 2, &cc) < 0)
		return -EINVAL;
	if (cc) {
		if (!peerid_country_index(cc)) {
			http_reply_error(req, 400, "bad_request",
					 "country must be an ISO 3166-1 alpha-2 code");
			return -EINVAL;
		}
		in->country[0] = (char)(cc[0] & ~0x20);
		in->country[1] = (char)(cc[1] & ~0x20);
		in->p_country = in->country;
	}
	v = json_object_get(body, "nettype");
	if (v && !json_is_null(v)) {
		int nt = -1;
		if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 15)
			nt = (int)json_integer_value(v);
		else if (json_is_string(v))
			nt = route_nettype_from_name(json_string_value(v));
		if (nt < 0) {
			http_reply_error(
				req, 400, "bad_request",
				"nettype must be 0-15 or a class name (telecom, netcom, "
				"unicom, mobile, tietong, cernet, satcom, other, unknown)");
			return -EINVAL;
		}
		snprintf(in->nettype, sizeof(in->nettype), "%d", nt);
		in->p_nettype = in->nettype;
	}
	if (route_string_field(req, body, "region", 128, &in->region) < 0 ||
	    route_string_field(req, body, "city", 128, &in->city) < 0 ||
	    route_string_field(req, body, "domain", 63, &in->domain) < 0)
		return -EINVAL;
	if (!in->domain) {
		http_reply_error(req, 400, "bad_request", "domain is required");
		return -EINVAL;
	}
	return 0;
}

static void
route_rule_write(struct http_req *req, struct route_env *env, const char *id)
{
	struct route_rule_in in;
	char err[256], state[6];
	json_t *body;

	if (http_req_json(req, &body) < 0)
		return;
	if (route_rule_parse(req, body, &in) < 0) {
		json_decref(body);
		return;
	}
	PGconn *c = route_pg(env, req);
	if (!c) {
		json_decref(body);
		return;
	}
	const char *p[] = { in.priority, in.p_country, in.p_nettype, in.region, in.city, in.domain,
			    id };
	PGresult *res =
		id ? pg_query(c,
			      "UPDATE domain_rules SET priority = $1, country = $2, nettype = $3, "
			      "region = $4, city = $5, domain = $6, updated_at = now() WHERE id = "
			      "$7::bigint RETURNING " ROUTE_RULE_COLS,
			      7, p, err, sizeof(err), state)
		   : pg_query(c,
			      "INSERT INTO domain_rules (priority, country, nettype, region, city, "
			      "domain) VALUES ($1, $2, $3, $4, $5, $6) RETURNING " ROUTE_RULE_COLS,
			      6, p, err, sizeof(err), state);
	pg_release(env->pg, c);
	if (!res) {
		if (strcmp(state, "23503") == 0)
			http_reply_error(req, 404, "unknown_domain", "no domain named \"%.64s\"",
					 in.domain);
		else if (strcmp(state, "23514") == 0 || strcmp(state, "22P02") == 0)
			http_reply_error(req, 400, "bad_request", "rule rejected: %s", err);
		else {
			log_err("saving rule: %s", err);
			http_reply_error(req, 500, "internal", "saving the rule failed");
		}
		json_decref(body); /* in.domain points into it */
		return;
	}
	json_decref(body);
	if (PQntuples(res) == 0) {
		PQclear(res);
		http_reply_error(req, 404, "unknown_rule", "no rule with id %s", id);
		return;
	}
	json_t *o = route_rule_row_json(res, 0);
	PQclear(res);
	log_notice("admin: rule %s %s", id ? id : "new", id ? "changed" : "added");
	route_refresh_soon(env);
	http_reply_json(req, id ? 200 : 201, o);
}

static bool
route_id_ok(const char *s)
{
	size_t len = strlen(s);
	return len >= 1 && len <= 18 && strspn(s, "0123456789") == len;
}

static void
route_handle_rule_post(struct http_req *req, void *arg)
{
	route_rule_write(req, arg, NULL);
}

static void
route_handle_rule_put(struct http_req *req, void *arg)
{
	const char *id = http_req_param(req, 0);
	if (!route_id_ok(id)) {
		http_reply_error(req, 404, "unknown_rule", "rule ids are positive integers");
		return;
	}
	route_rule_write(req, arg, id);
}

static void
route_handle_rule_delete(struct http_req *req, void *arg)
{
	const char *id = http_req_param(req, 0);

	if (!route_id_ok(id)) {
		http_reply_error(req, 404, "unknown_rule", "rule ids are positive integers");
		return;
	}
	route_admin_delete(req, arg, "DELETE FROM domain_rules WHERE id = $1::bigint", id, "rule",
			   "unknown_rule", NULL);
}

/* Read-only: looking an address up queues no region/city code, so whoever
 * reaches the admin port cannot decide the order codes are assigned in. */
static void
route_lookup(struct http_req *req, struct route_env *env, const struct route_state *st,
	     const struct route_snap *snap)
{
	const char *ip = http_req_query(req, "ip");
	struct addr a;
	struct route_geo g;
	struct peerid_fields f;
	uint64_t id;
	char hex[PEERID_HEX_LEN + 1];

	if (!ip || addr_parse(ip, strlen(ip), false, &a) < 0) {
		http_reply_error(req, 400, "bad_request",
				 "query parameter ip must be an IPv4 or IPv6 address");
		return;
	}
	route_geo_lookup(st, &a, &g);
	const struct route_domain *d = route_snap_choose(snap, &g, st->default_domain);
	route_fields(env, snap, &g, &f, false);
	peerid_encode(&f, &id);
	peerid_format(id, hex, sizeof(hex));
	hex[10] = '\0'; /* country..area: the node part is what allocation adds */
	struct jw w;
	jw_init(&w, 512);
	jw_lit(&w, "{");
	route_domain_jw(&w, d);
	jw_key(&w, true, "peer_id_prefix");
	jw_str(&w, hex);
	jw_key(&w, true, "region_code");
	jw_int(&w, f.region);
	jw_key(&w, true, "city_code");
	jw_int(&w, f.city);
	jw_key(&w, true, "area");
	jw_int(&w, f.area);
	route_geo_jw(&w, &g);
	jw_lit(&w, "}");
	size_t len;
	char *text = jw_finish(&w, &len);
	if (!text) {
		http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	http_reply_take(req, 200, "application/json", text, len);
}

static void
route_handle_lookup(struct http_req *req, void *arg)
{
	struct route_view view;
	route_view_get(arg, &view);
	route_lookup(req, arg, view.st, view.snap);
	route_view_put(&view);
}

static void
route_handle_readyz(struct http_req *req, void *arg)
{
	struct route_env *env = arg;
	struct route_view view;
	route_view_get(env, &view);
	bool loaded = view.snap != NULL;
	route_view_put(&view);
	svc_readyz(req, env->rds, env->pg, json_pack("{s:b}", "domains_loaded", loaded));
}

static void
route_status(struct http_req *req, struct route_env *env, const struct route_snap *snap)
{
	struct rds_stats rs;
	json_t *domains = json_array();

	struct rds_stats as;
	rds_get_stats(env->rds, &rs);
	rds_async_stats(env->ra, &as);
	rs.up = rs.up || as.up;
	rs.commands += as.commands;
	rs.errors += as.errors;
	for (size_t i = 0; snap && i < snap->ndomains; i++) {
		const struct route_domain *d = &snap->domains[i];
		json_t *rules = json_array();
		for (size_t j = 0; j < snap->nrules; j++) {
			const struct route_rule *r = &snap->rules[j];
			if (r->domain_idx != i)
				continue;
			json_t *ro = json_pack("{s:I, s:i}", "id", (json_int_t)r->id, "priority",
					       r->priority);
			json_object_set_new(ro, "country", route_str_or_null(r->country));
			json_object_set_new(ro, "nettype",
					    r->nettype < 0 ? json_null()
							   : json_string(route_nettype_name(
								     (unsigned)r->nettype)));
			json_object_set_new(ro, "region", route_str_or_null(r->region));
			json_object_set_new(ro, "city", route_str_or_null(r->city));
			json_array_append_new(rules, ro);
		}
		json_t *o = json_pack("{s:s, s:o, s:o, s:I}", "name", d->name, "index_servers",
				      route_index_json(d), "rules", rules, "allocations",
				      (json_int_t)met_value(d->allocations));
		json_array_append_new(domains, o);
	}
	pthread_mutex_lock(&env->lock);
	size_t pending = env->npending;
	double lps = env->lookups_per_s;
	pthread_mutex_unlock(&env->lock);
	json_t *o = json_object();
	json_object_set_new(o, "daemon", json_string("route-server"));
	json_object_set_new(o, "version", json_string(P2PCDN_VERSION));
	json_object_set_new(o, "uptime_s", json_integer((dmn_now_ms() - env->started_ms) / 1000));
	json_object_set_new(o, "generation", snap ? json_integer(snap->generation) : json_null());
	json_object_set_new(o, "domains", domains);
	json_object_set_new(o, "rules", json_integer(snap ? (json_int_t)snap->nrules : 0));
	json_object_set_new(o, "region_codes", json_integer(snap ? (json_int_t)snap->nregions : 0));
	json_object_set_new(o, "city_codes", json_integer(snap ? (json_int_t)snap->ncities : 0));
	json_object_set_new(o, "pending_code_assignments", json_integer((json_int_t)pending));
	json_object_set_new(o, "lookups_total",
			    json_integer((json_int_t)atomic_load(&env->lookups)));
	json_object_set_new(o, "lookups_per_s", json_real(round(lps * 10) / 10));
	json_object_set_new(o, "redis",
			    json_pack("{s:b, s:I, s:I}", "up", rs.up, "commands",
				      (json_int_t)rs.commands, "errors", (json_int_t)rs.errors));
	json_object_set_new(o, "postgres", json_pack("{s:b}", "up", atomic_load(&env->pg_up)));
	http_reply_json(req, 200, o);
}

static void
route_handle_status(struct http_req *req, void *arg)
{
	struct route_view view;
	route_view_get(arg, &view);
	route_status(req, arg, view.snap);
	route_view_put(&view);
}

const struct http_route route_admin_routes[] = {
	{ "GET", "/healthz", http_handle_healthz, false },
	{ "GET", "/readyz", route_handle_readyz, false },
	{ "GET", "/status", route_handle_status, false },
	{ "GET", "/metrics", http_handle_metrics, false },
	{ "GET", "/v1/admin/domains", route_handle_domains_list, false },
	{ "PUT", "/v1/admin/domains/{}", route_handle_domain_put, true },
	{ "DELETE", "/v1/admin/domains/{}", route_handle_domain_delete, true },
	{ "GET", "/v1/admin/rules", route_handle_rules_list, false },
	{ "POST", "/v1/admin/rules", route_handle_rule_post, true },
	{ "PUT", "/v1/admin/rules/{}", route_handle_rule_put, true },
	{ "DELETE", "/v1/admin/rules/{}", route_handle_rule_delete, true },
	{ "GET", "/v1/admin/lookup", route_handle_lookup, false },
};
const size_t route_admin_nroutes = sizeof(route_admin_routes) / sizeof(route_admin_routes[0]);
