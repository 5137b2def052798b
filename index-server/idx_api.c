// SPDX-License-Identifier: MIT
/* index-server: public handlers (join, heartbeat, leave, members, publish) and admin ones. */
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dmn.h"
#include "idx.h"
#include "jw.h"
#include "log.h"

#define IDX_HOLDERS_MAX   16 /* chan:{CH}:caches entries read per join */
#define IDX_PULL_TRIES    3  /* domain caches asked to pull before giving up */
#define IDX_ANSWER_CACHES 4  /* caches listed in a join answer */
#define IDX_SOURCES_BODY  (256 * 1024)

static long long
idx_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t
idx_rng(void *arg)
{
	(void)arg;
	return randombytes_random();
}

static void
idx_noop(redisReply *rep, int err, void *arg)
{
	(void)rep;
	(void)err;
	(void)arg;
}

/* Replies 400 for a body that idx_parse_body refused; 0 when it is good. */
static int
idx_read_body(struct http_req *req, unsigned which, struct idx_req *in)
{
	json_t *body;
	const char *code = "bad_request";
	char err[256];

	if (http_req_json(req, &body) < 0)
		return -EINVAL;
	int r = idx_parse_body(body, which, in, &code, err, sizeof(err));
	json_decref(body);
	if (r < 0) {
		http_reply_error(req, 400, code, "%s", err);
		return -EINVAL;
	}
	return 0;
}

static void
idx_redis_down(struct http_req *req)
{
	http_reply_retry(req, 503, 1, "redis_unavailable",
			 "the swarm store is unreachable; retry shortly");
}

/* Timing shared by the swarm operations of one request. */
struct idx_clock {
	char now[24], cutoff[24], ttl[24], batch[16];
};

static void
idx_clock_init(const struct idx_params *p, struct idx_clock *c)
{
	long long now = idx_now_ms(), expire = (long long)p->heartbeat_s * p->missed * 1000;
	snprintf(c->now, sizeof(c->now), "%lld", now);
	snprintf(c->cutoff, sizeof(c->cutoff), "%lld", now - expire);
	/* The keys outlive their last member by a margin, so a swarm nobody
	 * joins or beats for any more disappears by itself. */
	snprintf(c->ttl, sizeof(c->ttl), "%lld", expire * 2 + 60000);
	snprintf(c->batch, sizeof(c->batch), "%d", p->trim_batch);
}

/* ================================================================ join / members */

struct idx_join {
	struct idx_env *env;
	struct http_req *req;
	struct idx_params p;
	struct idx_req in;
	bool look;     /* GET members: no add, no cache choice */
	bool has_peer; /* look: a peer_id was given */
	atomic_int pending;
	atomic_bool failed;

	/* script answer */
	long long isnew, n, view;
	struct idx_member *mem;
	size_t nmem;
	char *infobuf;

	/* chan:{CH}:caches */
	char holders[IDX_HOLDERS_MAX][IDX_CACHE_ID_MAX + 1];
	size_t nholders;

	/* the answer's caches */
	struct idx_cache out[IDX_ANSWER_CACHES];
	size_t nout;
	const char *cache_state;

	/* pull path (loop thread only) */
	struct idx_cache cands[IDX_PULL_TRIES];
	size_t ncands, cand;
	char lockkey[IDX_CHANNEL_MAX + 160];
	bool set_ok;
	char lockval[IDX_CACHE_ID_MAX + 8];
	bool have_lockval;
	char *pull_body;
	char token[TOK_STR_MAX];
};

static void
idx_join_free(struct idx_join *j)
{
	free(j->mem);
	free(j->infobuf);
	free(j->pull_body);
	sodium_memzero(j->token, sizeof(j->token));
	tok_key_wipe(&j->p.key);
	free(j);
}

static void
idx_join_finish(struct idx_join *j)
{
	http_resume(j->req);
	idx_join_free(j);
}

/* Errors after the peer may have been added: a peer that was not a member
 * before is taken out again, so a failed join changes nothing. */
static void
idx_join_undo(struct idx_join *j)
{
	if (j->look || !j->isnew)
		return;
	struct idx_clock c;
	idx_clock_init(&j->p, &c);
	const char *argv[] = { "leave", j->in.pid_hex, c.now, c.cutoff, c.ttl, c.batch };
	idx_script_run(j->env, j->in.channel, 6, argv, idx_noop, NULL);
}

static void
idx_join_error(struct idx_join *j, unsigned status, int retry, const char *reason, const char *msg)
{
	idx_join_undo(j);
	met_add(met_child(j->env->m.join_errors, reason), 1);
	if (retry > 0)
		http_reply_retry(j->req, status, retry, reason, "%s", msg);
	else
		http_reply_error(j->req, status, reason, "%s", msg);
	idx_join_finish(j);
}

static void
idx_members_jw(struct jw *w, struct idx_join *j)
{
	char addr[ADDR_STR_MAX];
	long long bw;
	int role;
	uint64_t self = j->has_peer ? j->in.pid : UINT64_MAX;
	size_t others = idx_order(self, j->mem, j->nmem, idx_rng, NULL);
	size_t count = others < (size_t)j->view ? others : (size_t)j->view, written = 0;

	jw_key(w, true, "members");
	jw_lit(w, "[");
	for (size_t i = 0; i < count; i++) {
		const struct idx_member *m = &j->mem[i];
		char hex[PEERID_HEX_LEN + 1];
		if (idx_info_split(m->info, m->info_len, addr, sizeof(addr), &bw, &role) < 0)
			continue; /* written by something else: skip, never echo */
		peerid_format(m->pid, hex, sizeof(hex));
		jw_lit(w, written ? ",{" : "{");
		jw_key(w, false, "peer_id");
		jw_str(w, hex);
		jw_key(w, true, "listen_addr");
		jw_str(w, addr);
		jw_key(w, true, "bandwidth_kbps");
		jw_int(w, bw);
		jw_key(w, true, "role");
		jw_str(w, idx_role_name(role));
		if (j->has_peer) {
			jw_key(w, true, "proximity");
			jw_int(w, m->prox);
		}
		jw_lit(w, "}");
		written++;
	}
	jw_lit(w, "]");
	met_observe(j->env->m.view_size, (double)written);
}

static void
idx_cache_jw(struct jw *w, const struct idx_cache *c)
{
	jw_lit(w, "{");
	jw_key(w, false, "cache_id");
	jw_str(w, c->id);
	jw_key(w, true, "url");
	jw_str(w, c->url);
	jw_key(w, true, "load");
	jw_double(w, c->load);
	jw_key(w, true, "capacity");
	jw_double(w, c->capacity);
	jw_lit(w, "}");
}

static void
idx_join_answer(struct idx_join *j)
{
	struct jw w;
	size_t len;

	jw_init(&w, 1024 + j->nmem * 128);
	jw_lit(&w, "{");
	jw_key(&w, false, "channel");
	jw_str(&w, j->in.channel);
	if (j->has_peer) {
		jw_key(&w, true, "peer_id");
		jw_str(&w, j->in.pid_hex);
	}
	jw_key(&w, true, "n");
	jw_int(&w, j->n);
	jw_key(&w, true, "view");
	jw_int(&w, j->view);
	if (!j->look) {
		jw_key(&w, true, "heartbeat_s");
		jw_int(&w, j->p.heartbeat_s);
		jw_key(&w, true, "expire_s");
		jw_int(&w, (long long)j->p.heartbeat_s * j->p.missed);
	}
	idx_members_jw(&w, j);
	if (!j->look) {
		jw_key(&w, true, "caches");
		jw_lit(&w, "[");
		for (size_t i = 0; i < j->nout; i++) {
			if (i)
				jw_lit(&w, ",");
			idx_cache_jw(&w, &j->out[i]);
		}
		jw_lit(&w, "]");
		jw_key(&w, true, "cache_state");
		jw_str(&w, j->cache_state);
	}
	jw_lit(&w, "}");
	char *text = jw_finish(&w, &len);
	if (!text) {
		idx_join_error(j, 500, 0, "internal", "out of memory");
		return;
	}
	if (j->look) {
		met_add(j->env->m.members, 1);
	} else {
		met_add(j->env->m.joins, 1);
		atomic_fetch_add_explicit(&j->env->joins, 1, memory_order_relaxed);
	}
	http_reply_take(j->req, 200, "application/json", text, len);
	idx_join_finish(j);
}

/* ---- pull path (seed 001 §2): loop thread ---- */

static void idx_pull_next(struct idx_join *j);

/* Replaces the lock's value: the cache that took the pull, or a negative
 * marker ("!route", "!none", "!cache") remembered for negative_ms. */
static void
idx_lock_set(struct idx_join *j, const char *value, int ms)
{
	char px[24];
	if (ms <= 0) {
		const char *argv[] = { "DEL", j->lockkey };
		rds_async_argv(j->env->ra, idx_noop, NULL, 2, argv, NULL);
		return;
	}
	snprintf(px, sizeof(px), "%d", ms);
	const char *argv[] = { "SET", j->lockkey, value, "XX", "PX", px };
	rds_async_argv(j->env->ra, idx_noop, NULL, 6, argv, NULL);
}

static void
idx_pull_failed(struct idx_join *j, const char *marker, unsigned status, const char *reason,
		const char *msg)
{
	met_add(met_child(j->env->m.pull_failures, reason), 1);
	idx_lock_set(j, marker, j->p.negative_ms);
	idx_join_error(j, status, status == 503 ? 2 : 0, reason, msg);
}

static void
idx_pull_on_answer(const struct evl_http_result *res, void *arg)
{
	struct idx_join *j = arg;
	const struct idx_cache *c = &j->cands[j->cand];

	if (res->err == 0 && (res->status == 200 || res->status == 202)) {
		met_add(j->env->m.pulls_started, 1);
		log_info("channel %s: cache %s (%s) accepted the pull", j->in.channel, c->id,
			 c->url);
		idx_lock_set(j, c->id, j->p.pull_hold_ms);
		j->out[0] = *c;
		j->nout = 1;
		j->cache_state = "pull_started";
		idx_join_answer(j);
		return;
	}
	log_warn("channel %s: cache %s (%s) refused the pull: %s %d", j->in.channel, c->id, c->url,
		 res->err ? strerror(-res->err) : "HTTP", res->status);
	j->cand++;
	idx_pull_next(j);
}

static void
idx_pull_next(struct idx_join *j)
{
	char url[IDX_URL_MAX + 16], auth[TOK_STR_MAX + 32];

	if (j->cand >= j->ncands) {
		idx_pull_failed(j, "!cache", 503, "cache_unavailable",
				"no cache of this domain accepted the pull of this channel");
		return;
	}
	const struct idx_cache *c = &j->cands[j->cand];
	snprintf(url, sizeof(url), "%s/v1/pull", c->url);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", j->token);
	const char *hdrs[] = { auth, NULL };
	if (atomic_load(&j->env->stopping) ||
	    evl_http_request(j->env->loop, "POST", url, j->pull_body, strlen(j->pull_body), hdrs,
			     j->p.pull_timeout_ms, 65536, idx_pull_on_answer, j) < 0) {
		j->cand++;
		if (j->cand >= j->ncands || atomic_load(&j->env->stopping)) {
			idx_pull_failed(j, "!cache", 503, "cache_unavailable",
					"could not ask a cache of this domain to pull");
			return;
		}
		idx_pull_next(j);
		sodium_memzero(auth, sizeof(auth));
		return;
	}
	sodium_memzero(auth, sizeof(auth));
}

static void
idx_pull_on_sources(const struct evl_http_result *res, void *arg)
{
	struct idx_join *j = arg;
	json_t *o = NULL, *src;
	char payload[IDX_CHANNEL_MAX + 16];

	if (res->err || res->status != 200) {
		log_warn("channel %s: route-server sources: %s %d", j->in.channel,
			 res->err ? strerror(-res->err) : "HTTP", res->status);
		idx_pull_failed(j, "!route", 503, "route_unavailable",
				"the route-server could not be asked which domains hold this "
				"channel; retry shortly");
		return;
	}
	o = json_loadb(res->body, res->body_len, 0, NULL);
	src = json_object_get(o, "sources");
	if (!json_is_array(src)) {
		json_decref(o);
		idx_pull_failed(j, "!route", 503, "route_unavailable",
				"the route-server gave an answer without sources");
		return;
	}
	if (json_array_size(src) == 0) {
		json_decref(o);
		idx_pull_failed(j, "!none", 404, "no_source",
				"no cache in any domain holds this channel: nobody publishes it "
				"(yet)");
		return;
	}
	json_t *body = json_pack("{s:s, s:O}", "channel", j->in.channel, "sources", src);
	j->pull_body = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	json_decref(o);
	int plen = snprintf(payload, sizeof(payload), "{\"ch\":\"%s\"}", j->in.channel);
	if (!j->pull_body ||
	    tok_mint(&j->p.key, TOK_KIND_PULL, (uint64_t)(dmn_wall_s() + j->p.pull_ttl_s), payload,
		     (size_t)plen, j->token, sizeof(j->token)) < 0) {
		idx_pull_failed(j, "!cache", 500, "internal", "out of memory");
		return;
	}
	idx_pull_next(j);
}

static void
idx_pull_owner(struct idx_join *j)
{
	char url[IDX_URL_MAX + IDX_CHANNEL_MAX + 128];

	if (!j->p.route_url[0]) {
		idx_pull_failed(j, "!route", 503, "route_unavailable",
				"no route-server configured ([index] route_url)");
		return;
	}
	snprintf(url, sizeof(url), "%s/v1/streams/%s/sources?domain=%s", j->p.route_url,
		 j->in.channel, j->env->domain);
	if (atomic_load(&j->env->stopping) ||
	    evl_http_request(j->env->loop, "GET", url, NULL, 0, NULL, j->p.route_timeout_ms,
			     IDX_SOURCES_BODY, idx_pull_on_sources, j) < 0)
		idx_pull_failed(j, "!route", 503, "route_unavailable",
				"the route-server URL cannot be requested");
}

/* Both answers of SET NX + GET are in. */
static void
idx_lock_decided(struct idx_join *j)
{
	if (atomic_load(&j->failed)) {
		idx_join_undo(j);
		idx_redis_down(j->req);
		idx_join_finish(j);
		return;
	}
	if (j->set_ok) {
		idx_pull_owner(j);
		return;
	}
	if (!j->have_lockval) {
		/* The lock expired between SET and GET: rare; let the peer retry. */
		idx_join_error(j, 503, 1, "pull_pending",
			       "a pull of this channel is being started");
		return;
	}
	if (strcmp(j->lockval, "!route") == 0) {
		idx_join_error(j, 503, 2, "route_unavailable",
			       "the route-server could not be asked which domains hold this "
			       "channel; retry shortly");
		return;
	}
	if (strcmp(j->lockval, "!none") == 0) {
		idx_join_error(j, 404, 0, "no_source",
			       "no cache in any domain holds this channel: nobody publishes it "
			       "(yet)");
		return;
	}
	if (j->lockval[0] == '!') {
		idx_join_error(j, 503, 2, "cache_unavailable",
			       "no cache of this domain accepted the pull of this channel");
		return;
	}
	/* Another join (here or on another instance) started the pull. */
	if (idx_caches_find(j->env, j->lockval, &j->out[0]) < 0) {
		idx_join_error(j, 503, 1, "pull_pending",
			       "a pull of this channel is being started on a cache this server "
			       "does not know yet");
		return;
	}
	j->nout = 1;
	j->cache_state = "pulling";
	idx_join_answer(j);
}

static void
idx_lock_on_set(redisReply *rep, int err, void *arg)
{
	struct idx_join *j = arg;
	if (err || rep->type == REDIS_REPLY_ERROR)
		atomic_store(&j->failed, true);
	else
		j->set_ok = rep->type == REDIS_REPLY_STATUS;
	if (atomic_fetch_sub(&j->pending, 1) == 1)
		idx_lock_decided(j);
}

static void
idx_lock_on_get(redisReply *rep, int err, void *arg)
{
	struct idx_join *j = arg;
	if (err || rep->type == REDIS_REPLY_ERROR) {
		atomic_store(&j->failed, true);
	} else if (rep->type == REDIS_REPLY_STRING && rep->len < sizeof(j->lockval)) {
		memcpy(j->lockval, rep->str, rep->len);
		j->lockval[rep->len] = '\0';
		j->have_lockval = true;
	}
	if (atomic_fetch_sub(&j->pending, 1) == 1)
		idx_lock_decided(j);
}

/* No cache of this domain holds the channel: exactly one join (over all
 * instances of the domain, through SET NX on the shared Redis) starts a
 * pull; the others answer with the cache it chose. */
static void
idx_pull_start(struct idx_join *j)
{
	char px[24];
	const char *skip[IDX_PULL_TRIES];

	while (j->ncands < IDX_PULL_TRIES) {
		for (size_t i = 0; i < j->ncands; i++)
			skip[i] = j->cands[i].id;
		if (idx_caches_pick(j->env, skip, j->ncands, &j->cands[j->ncands]) < 0)
			break;
		j->ncands++;
	}
	if (j->ncands == 0) {
		idx_join_error(j, 503, 5, "no_cache",
			       "no live cache-server is registered in this domain");
		return;
	}
	idx_key_swarm(j->env, j->in.channel, ":pull", j->lockkey, sizeof(j->lockkey));
	snprintf(px, sizeof(px), "%d", j->p.pull_lock_ms);
	const char *set[] = { "SET", j->lockkey, j->cands[0].id, "NX", "PX", px };
	const char *get[] = { "GET", j->lockkey };
	atomic_store(&j->pending, 3);
	if (rds_async_argv(j->env->ra, idx_lock_on_set, j, 6, set, NULL) < 0) {
		atomic_store(&j->failed, true);
		atomic_fetch_sub(&j->pending, 1);
	}
	if (rds_async_argv(j->env->ra, idx_lock_on_get, j, 2, get, NULL) < 0) {
		atomic_store(&j->failed, true);
		atomic_fetch_sub(&j->pending, 1);
	}
	if (atomic_fetch_sub(&j->pending, 1) == 1)
		idx_lock_decided(j);
}

static int
idx_cache_score_cmp(const void *a, const void *b)
{
	const struct idx_cache *x = a, *y = b;
	if (x->score != y->score)
		return x->score < y->score ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* The script and the holders are in: any thread (the last to finish). */
static void
idx_join_step(struct idx_join *j)
{
	if (atomic_load(&j->failed)) {
		idx_join_undo(j);
		idx_redis_down(j->req);
		idx_join_finish(j);
		return;
	}
	if (j->look) {
		idx_join_answer(j);
		return;
	}
	/* This domain's live caches holding the channel, least loaded first. */
	struct idx_cache found[IDX_HOLDERS_MAX];
	size_t nfound = 0;
	for (size_t i = 0; i < j->nholders; i++)
		if (idx_caches_find(j->env, j->holders[i], &found[nfound]) == 0)
			nfound++;
	qsort(found, nfound, sizeof(found[0]), idx_cache_score_cmp);
	for (size_t i = 0; i < nfound && j->nout < IDX_ANSWER_CACHES; i++)
		j->out[j->nout++] = found[i];
	if (j->nout > 0) {
		j->cache_state = "held";
		idx_join_answer(j);
		return;
	}
	idx_pull_start(j);
}

static void
idx_join_on_script(redisReply *rep, int err, void *arg)
{
	struct idx_join *j = arg;

	if (err || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER ||
	    rep->element[1]->type != REDIS_REPLY_INTEGER ||
	    rep->element[2]->type != REDIS_REPLY_INTEGER) {
		if (!err && rep->type == REDIS_REPLY_ERROR)
			log_err("swarm script failed: %s", rep->str);
		atomic_store(&j->failed, true);
		goto out;
	}
	j->isnew = rep->element[0]->integer;
	j->n = rep->element[1]->integer;
	j->view = rep->element[2]->integer;
	size_t pairs = (rep->elements - 3) / 2, total = 0;
	for (size_t i = 0; i < pairs; i++) {
		const redisReply *info = rep->element[4 + 2 * i];
		total += (info->type == REDIS_REPLY_STRING ? info->len : 0) + 1;
	}
	j->mem = calloc(pairs + 1, sizeof(*j->mem));
	j->infobuf = malloc(total + 1);
	if (!j->mem || !j->infobuf) {
		atomic_store(&j->failed, true);
		goto out;
	}
	char *p = j->infobuf;
	for (size_t i = 0; i < pairs; i++) {
		const redisReply *id = rep->element[3 + 2 * i], *info = rep->element[4 + 2 * i];
		uint64_t pid;
		if (id->type != REDIS_REPLY_STRING || peerid_parse(id->str, id->len, &pid) < 0 ||
		    info->type != REDIS_REPLY_STRING || info->len > IDX_INFO_MAX)
			continue;
		memcpy(p, info->str, info->len);
		p[info->len] = '\0';
		j->mem[j->nmem].pid = pid;
		j->mem[j->nmem].info = p;
		j->mem[j->nmem].info_len = info->len;
		j->nmem++;
		p += info->len + 1;
	}
out:
	if (atomic_fetch_sub(&j->pending, 1) == 1)
		idx_join_step(j);
}

static void
idx_join_on_holders(redisReply *rep, int err, void *arg)
{
	struct idx_join *j = arg;

	if (err || rep->type != REDIS_REPLY_ARRAY) {
		atomic_store(&j->failed, true);
	} else {
		for (size_t i = 0; i < rep->elements && j->nholders < IDX_HOLDERS_MAX; i++) {
			const redisReply *e = rep->element[i];
			if (e->type != REDIS_REPLY_STRING || e->len > IDX_CACHE_ID_MAX)
				continue;
			memcpy(j->holders[j->nholders], e->str, e->len);
			j->holders[j->nholders][e->len] = '\0';
			j->nholders++;
		}
	}
	if (atomic_fetch_sub(&j->pending, 1) == 1)
		idx_join_step(j);
}

/* One round trip: ZADD chans:{D} (fire and forget), the swarm script, and
 * ZRANGEBYSCORE chan:{CH}:caches, pipelined on the async connection. */
static void
idx_join_submit(struct idx_join *j)
{
	struct idx_env *env = j->env;
	char lo[IDX_LEVELS][PEERID_HEX_LEN + 1], hi[IDX_LEVELS][PEERID_HEX_LEN + 1];
	char info[IDX_INFO_MAX + 1], c[12], vmin[12], vmax[12], seed[16], kmaxs[4];
	char key[IDX_CHANNEL_MAX + 160], nows[24], limit[12];
	struct idx_clock ck;
	const char *argv[12 + 2 * IDX_LEVELS];
	int kmax = 0;

	idx_clock_init(&j->p, &ck);
	if (j->has_peer)
		kmax = idx_prox_ranges(j->in.pid, lo, hi);
	snprintf(info, sizeof(info), "%s %lld %s", j->in.listen_addr, j->in.bandwidth_kbps,
		 idx_role_name(j->in.role));
	snprintf(c, sizeof(c), "%u", j->p.view_c);
	snprintf(vmin, sizeof(vmin), "%u", j->p.view_min);
	snprintf(vmax, sizeof(vmax), "%u", j->p.view_max);
	snprintf(seed, sizeof(seed), "%u", randombytes_uniform(2000000000u));
	snprintf(kmaxs, sizeof(kmaxs), "%d", kmax);
	argv[0] = j->look ? "look" : "join";
	argv[1] = j->has_peer ? j->in.pid_hex : "";
	argv[2] = ck.now;
	argv[3] = ck.cutoff;
	argv[4] = ck.ttl;
	argv[5] = ck.batch;
	argv[6] = info;
	argv[7] = c;
	argv[8] = vmin;
	argv[9] = vmax;
	argv[10] = seed;
	argv[11] = kmaxs;
	for (int k = 0; k < kmax; k++) {
		argv[12 + 2 * k] = lo[k];
		argv[13 + 2 * k] = hi[k];
	}

	/* Defer before submitting: the replies may arrive before we return. */
	http_defer(j->req);
	atomic_store(&j->pending, j->look ? 2 : 3);
	if (!j->look) {
		snprintf(key, sizeof(key), "%schans:{%s}", rds_async_prefix(env->ra), env->domain);
		const char *za[] = { "ZADD", key, ck.now, j->in.channel };
		rds_async_argv(env->ra, idx_noop, NULL, 4, za, NULL);
	}
	if (idx_script_run(env, j->in.channel, 12 + 2 * kmax, argv, idx_join_on_script, j) < 0) {
		atomic_store(&j->failed, true);
		atomic_fetch_sub(&j->pending, 1);
	}
	if (!j->look) {
		snprintf(key, sizeof(key), "%schan:{%s}:caches", rds_async_prefix(env->ra),
			 j->in.channel);
		snprintf(nows, sizeof(nows), "(%lld", dmn_wall_s());
		snprintf(limit, sizeof(limit), "%d", IDX_HOLDERS_MAX);
		const char *zr[] = { "ZRANGEBYSCORE", key, nows, "+inf", "LIMIT", "0", limit };
		if (rds_async_argv(env->ra, idx_join_on_holders, j, 7, zr, NULL) < 0) {
			atomic_store(&j->failed, true);
			atomic_fetch_sub(&j->pending, 1);
		}
	}
	if (atomic_fetch_sub(&j->pending, 1) == 1)
		idx_join_step(j);
}

static struct idx_join *
idx_join_new(struct idx_env *env, struct http_req *req)
{
	struct idx_join *j = calloc(1, sizeof(*j));
	if (!j) {
		http_reply_error(req, 500, "internal", "out of memory");
		return NULL;
	}
	j->env = env;
	j->req = req;
	idx_params_get(env, &j->p);
	return j;
}

static void
idx_handle_join(struct http_req *req, void *arg)
{
	struct idx_join *j = idx_join_new(arg, req);
	if (!j)
		return;
	if (idx_read_body(req, IDX_F_JOIN, &j->in) < 0) {
		idx_join_free(j);
		return;
	}
	j->has_peer = true;
	idx_join_submit(j);
}

static void
idx_handle_members(struct http_req *req, void *arg)
{
	const char *ch = http_req_param(req, 0), *pid = http_req_query(req, "peer_id");
	struct idx_join *j;

	if (!idx_channel_ok(ch, strlen(ch))) {
		http_reply_error(req, 400, "bad_request",
				 "channel must be 1-128 characters of A-Z a-z 0-9 . _ -");
		return;
	}
	j = idx_join_new(arg, req);
	if (!j)
		return;
	j->look = true;
	snprintf(j->in.channel, sizeof(j->in.channel), "%s", ch);
	if (pid) {
		if (peerid_parse(pid, strlen(pid), &j->in.pid) < 0) {
			idx_join_free(j);
			http_reply_error(req, 400, "bad_request",
					 "peer_id must be a PeerID of 14 hex digits");
			return;
		}
		peerid_format(j->in.pid, j->in.pid_hex, sizeof(j->in.pid_hex));
		j->has_peer = true;
	}
	idx_join_submit(j);
}

/* ================================================================ heartbeat / leave */

struct idx_small {
	struct idx_env *env;
	struct http_req *req;
	struct idx_params p;
	struct idx_req in;
};

static void
idx_small_finish(struct idx_small *s)
{
	http_resume(s->req);
	tok_key_wipe(&s->p.key);
	free(s);
}

static void
idx_hb_done(redisReply *rep, int err, void *arg)
{
	struct idx_small *s = arg;
	struct idx_env *env = s->env;
	char out[512];

	if (err || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER ||
	    rep->element[1]->type != REDIS_REPLY_INTEGER) {
		idx_redis_down(s->req);
		idx_small_finish(s);
		return;
	}
	long long n = rep->element[1]->integer;
	if (rep->element[0]->integer == 0) {
		met_add(env->m.heartbeat_misses, 1);
		http_reply_error(s->req, 404, "not_member",
				 "peer %s is not in channel %s (it left, expired after %d missed "
				 "heartbeats, or never joined): join again",
				 s->in.pid_hex, s->in.channel, s->p.missed);
		idx_small_finish(s);
		return;
	}
	met_add(env->m.heartbeats, 1);
	atomic_fetch_add_explicit(&env->heartbeats, 1, memory_order_relaxed);
	int len = snprintf(out, sizeof(out),
			   "{\"channel\":\"%s\",\"peer_id\":\"%s\",\"n\":%lld,\"view\":%u,"
			   "\"heartbeat_s\":%d}",
			   s->in.channel, s->in.pid_hex, n,
			   idx_view_num(n, s->p.view_c, s->p.view_min, s->p.view_max),
			   s->p.heartbeat_s);
	http_reply_data(s->req, 200, "application/json", out, (size_t)len);
	idx_small_finish(s);
}

static void
idx_leave_done(redisReply *rep, int err, void *arg)
{
	struct idx_small *s = arg;
	char out[512];

	if (err || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER ||
	    rep->element[1]->type != REDIS_REPLY_INTEGER) {
		idx_redis_down(s->req);
		idx_small_finish(s);
		return;
	}
	met_add(s->env->m.leaves, 1);
	int len = snprintf(out, sizeof(out),
			   "{\"channel\":\"%s\",\"peer_id\":\"%s\",\"removed\":%s,\"n\":%lld}",
			   s->in.channel, s->in.pid_hex,
			   rep->element[0]->integer ? "true" : "false", rep->element[1]->integer);
	http_reply_data(s->req, 200, "application/json", out, (size_t)len);
	idx_small_finish(s);
}

static void
idx_small_run(struct http_req *req, struct idx_env *env, const char *op, rds_async_cb cb)
{
	struct idx_small *s = calloc(1, sizeof(*s));
	struct idx_clock ck;

	if (!s) {
		http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	s->env = env;
	s->req = req;
	if (idx_read_body(req, IDX_F_PAIR, &s->in) < 0) {
		free(s);
		return;
	}
	idx_params_get(env, &s->p);
	idx_clock_init(&s->p, &ck);
	const char *argv[] = { op, s->in.pid_hex, ck.now, ck.cutoff, ck.ttl, ck.batch };
	http_defer(req);
	if (idx_script_run(env, s->in.channel, 6, argv, cb, s) < 0) {
		idx_redis_down(req);
		idx_small_finish(s);
	}
}

static void
idx_handle_heartbeat(struct http_req *req, void *arg)
{
	idx_small_run(req, arg, "hb", idx_hb_done);
}

static void
idx_handle_leave(struct http_req *req, void *arg)
{
	idx_small_run(req, arg, "leave", idx_leave_done);
}

/* ================================================================ publish */

static void
idx_publish_done(redisReply *rep, int err, void *arg)
{
	struct idx_small *s = arg;
	struct idx_env *env = s->env;
	struct idx_cache best, c;
	bool have = false, held = false;
	char payload[IDX_CHANNEL_MAX + 64], token[TOK_STR_MAX];

	if (err || rep->type != REDIS_REPLY_ARRAY) {
		idx_redis_down(s->req);
		idx_small_finish(s);
		return;
	}
	/* A cache of this domain that already holds the channel keeps it (a
	 * publisher reconnecting goes back to the same cache); otherwise the
	 * least loaded live cache of the domain. */
	for (size_t i = 0; i < rep->elements; i++) {
		const redisReply *e = rep->element[i];
		if (e->type != REDIS_REPLY_STRING || e->len > IDX_CACHE_ID_MAX ||
		    idx_caches_find(env, e->str, &c) < 0)
			continue;
		if (!have || c.score < best.score) {
			best = c;
			have = held = true;
		}
	}
	if (!have && idx_caches_pick(env, NULL, 0, &best) == 0)
		have = true;
	if (!have) {
		http_reply_retry(s->req, 503, 5, "no_cache",
				 "no live cache-server is registered in this domain");
		idx_small_finish(s);
		return;
	}
	long long expiry = dmn_wall_s() + s->p.publish_ttl_s;
	int plen = snprintf(payload, sizeof(payload), "{\"ch\":\"%s\",\"peer\":\"%s\"}",
			    s->in.channel, s->in.pid_hex);
	if (tok_mint(&s->p.key, TOK_KIND_PUBLISH, (uint64_t)expiry, payload, (size_t)plen, token,
		     sizeof(token)) < 0) {
		http_reply_error(s->req, 500, "internal", "minting the token failed");
		idx_small_finish(s);
		return;
	}
	struct jw w;
	size_t len;
	jw_init(&w, 1024);
	jw_lit(&w, "{");
	jw_key(&w, false, "channel");
	jw_str(&w, s->in.channel);
	jw_key(&w, true, "peer_id");
	jw_str(&w, s->in.pid_hex);
	jw_key(&w, true, "cache");
	idx_cache_jw(&w, &best);
	jw_key(&w, true, "cache_state");
	jw_str(&w, held ? "held" : "assigned");
	jw_key(&w, true, "token");
	jw_str(&w, token);
	jw_key(&w, true, "expires_at");
	jw_int(&w, expiry);
	jw_key(&w, true, "upload");
	{
		char url[IDX_URL_MAX + IDX_CHANNEL_MAX + 64];
		snprintf(url, sizeof(url), "%s/v1/live/%s/chunks/{seq}", best.url, s->in.channel);
		jw_str(&w, url);
	}
	jw_lit(&w, "}");
	sodium_memzero(token, sizeof(token));
	char *text = jw_finish(&w, &len);
	if (!text) {
		http_reply_error(s->req, 500, "internal", "out of memory");
	} else {
		met_add(env->m.publishes, 1);
		log_info("publish: channel %s peer %s -> cache %s", s->in.channel, s->in.pid_hex,
			 best.id);
		http_reply_take(s->req, 200, "application/json", text, len);
	}
	idx_small_finish(s);
}

static void
idx_handle_publish(struct http_req *req, void *arg)
{
	struct idx_env *env = arg;
	struct idx_small *s = calloc(1, sizeof(*s));
	char key[IDX_CHANNEL_MAX + 160], nows[24];

	if (!s) {
		http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	s->env = env;
	s->req = req;
	if (idx_read_body(req, IDX_F_PAIR, &s->in) < 0) {
		free(s);
		return;
	}
	idx_params_get(env, &s->p);
	snprintf(key, sizeof(key), "%schan:{%s}:caches", rds_async_prefix(env->ra), s->in.channel);
	snprintf(nows, sizeof(nows), "(%lld", dmn_wall_s());
	const char *argv[] = { "ZRANGEBYSCORE", key, nows, "+inf", "LIMIT", "0", "16" };
	http_defer(req);
	if (rds_async_argv(env->ra, idx_publish_done, s, 7, argv, NULL) < 0) {
		idx_redis_down(req);
		idx_small_finish(s);
	}
}

const struct http_route idx_api_routes[] = {
	{ "POST", "/v1/join", idx_handle_join, false },
	{ "POST", "/v1/heartbeat", idx_handle_heartbeat, false },
	{ "POST", "/v1/leave", idx_handle_leave, false },
	{ "GET", "/v1/channels/{}/members", idx_handle_members, false },
	{ "POST", "/v1/publish", idx_handle_publish, false },
};
const size_t idx_api_nroutes = sizeof(idx_api_routes) / sizeof(idx_api_routes[0]);

/* ================================================================ admin */

static void
idx_handle_readyz(struct http_req *req, void *arg)
{
	struct idx_env *env = arg;
	svc_readyz(req, env->rds, NULL, NULL);
}

#define IDX_STATUS_CHANNELS 100

/* The most recently joined channels with their live peer counts: admin
 * thread, blocking Redis (never a hot path). */
static json_t *
idx_status_channels(struct idx_env *env, const struct idx_params *p, long long *ret_total)
{
	char key[160], swarm[IDX_CHANNEL_MAX + 160], cutoff[24];
	int err;
	json_t *arr = json_array();

	*ret_total = -1;
	snprintf(key, sizeof(key), "%schans:{%s}", rds_prefix(env->rds), env->domain);
	redisReply *card = rds_command(env->rds, &err, "ZCARD %s", key);
	if (card && card->type == REDIS_REPLY_INTEGER)
		*ret_total = card->integer;
	if (card)
		freeReplyObject(card);
	redisReply *list =
		rds_command(env->rds, &err, "ZREVRANGE %s 0 %d", key, IDX_STATUS_CHANNELS - 1);
	if (!list || list->type != REDIS_REPLY_ARRAY || list->elements == 0) {
		if (list)
			freeReplyObject(list);
		return arr;
	}
	snprintf(cutoff, sizeof(cutoff), "%lld",
		 idx_now_ms() - (long long)p->heartbeat_s * p->missed * 1000);
	struct rds_pipe *pp = rds_pipe_begin(env->rds);
	redisReply **reps = calloc(list->elements, sizeof(*reps));
	size_t *idx = calloc(list->elements, sizeof(*idx));
	size_t n = 0;
	if (pp && reps && idx) {
		for (size_t i = 0; i < list->elements; i++) {
			const redisReply *e = list->element[i];
			if (e->type != REDIS_REPLY_STRING || !idx_channel_ok(e->str, e->len))
				continue;
			idx_key_swarm(env, e->str, "", swarm, sizeof(swarm));
			rds_pipe_add(pp, "ZCOUNT %s %s +inf", swarm, cutoff);
			idx[n++] = i;
		}
		if (rds_pipe_exec(pp, reps, n) == 0) {
			for (size_t i = 0; i < n; i++) {
				long long peers = reps[i]->type == REDIS_REPLY_INTEGER
							  ? reps[i]->integer
							  : -1;
				json_array_append_new(arr, json_pack("{s:s, s:I}", "channel",
								     list->element[idx[i]]->str,
								     "peers", (json_int_t)peers));
				freeReplyObject(reps[i]);
			}
		}
	}
	free(idx);
	if (pp)
		rds_pipe_end(pp);
	free(reps);
	freeReplyObject(list);
	return arr;
}

static void
idx_handle_status(struct http_req *req, void *arg)
{
	struct idx_env *env = arg;
	struct idx_params p;
	struct rds_stats rs, as;
	long long total;

	idx_params_get(env, &p);
	tok_key_wipe(&p.key);
	rds_get_stats(env->rds, &rs);
	rds_async_stats(env->ra, &as);
	json_t *chans = idx_status_channels(env, &p, &total);
	json_t *caches = json_array();
	pthread_mutex_lock(&env->lock);
	for (size_t i = 0; i < env->ncaches; i++) {
		const struct idx_cache *c = &env->caches[i];
		json_array_append_new(caches, json_pack("{s:s, s:s, s:f, s:f, s:f}", "cache_id",
							c->id, "url", c->url, "score", c->score,
							"load", c->load, "capacity", c->capacity));
	}
	double jps = env->joins_per_s, hps = env->heartbeats_per_s;
	long long peers = env->last_peers, largest = env->last_largest, swept = env->last_channels;
	pthread_mutex_unlock(&env->lock);

	json_t *o = json_object();
	json_object_set_new(o, "daemon", json_string("index-server"));
	json_object_set_new(o, "version", json_string(P2PCDN_VERSION));
	json_object_set_new(o, "domain", json_string(env->domain));
	json_object_set_new(o, "uptime_s", json_integer((dmn_now_ms() - env->started_ms) / 1000));
	json_object_set_new(o, "channels", total >= 0 ? json_integer(total) : json_null());
	json_object_set_new(o, "channels_with_peers", json_integer(swept));
	json_object_set_new(o, "peers", json_integer(peers));
	json_object_set_new(o, "largest_swarm", json_integer(largest));
	json_object_set_new(o, "recent_channels", chans);
	json_object_set_new(o, "caches", caches);
	json_object_set_new(o, "joins_total", json_integer((json_int_t)atomic_load(&env->joins)));
	json_object_set_new(o, "joins_per_s", json_real(round(jps * 10) / 10));
	json_object_set_new(o, "heartbeats_total",
			    json_integer((json_int_t)atomic_load(&env->heartbeats)));
	json_object_set_new(o, "heartbeats_per_s", json_real(round(hps * 10) / 10));
	json_object_set_new(o, "pulls_started",
			    json_integer((json_int_t)met_value(env->m.pulls_started)));
	json_object_set_new(o, "publishes", json_integer((json_int_t)met_value(env->m.publishes)));
	json_object_set_new(o, "view",
			    json_pack("{s:i, s:i, s:i, s:s}", "c", (int)p.view_c, "min",
				      (int)p.view_min, "max", (int)p.view_max, "formula",
				      "(c+1)*ln(N)"));
	json_object_set_new(o, "heartbeat_s", json_integer(p.heartbeat_s));
	json_object_set_new(o, "expire_s", json_integer((json_int_t)p.heartbeat_s * p.missed));
	json_object_set_new(o, "route_url", json_string(p.route_url));
	json_object_set_new(o, "redis",
			    json_pack("{s:b, s:I, s:I}", "up", as.up || rs.up, "commands",
				      (json_int_t)(rs.commands + as.commands), "errors",
				      (json_int_t)(rs.errors + as.errors)));
	http_reply_json(req, 200, o);
}

const struct http_route idx_admin_routes[] = {
	{ "GET", "/healthz", http_handle_healthz, false },
	{ "GET", "/readyz", idx_handle_readyz, false },
	{ "GET", "/status", idx_handle_status, false },
	{ "GET", "/metrics", http_handle_metrics, false },
};
const size_t idx_admin_nroutes = sizeof(idx_admin_routes) / sizeof(idx_admin_routes[0]);
