// SPDX-License-Identifier: MIT
/* cache-server: pulling a channel from other caches or publishers (seed 001 §3.3). */
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "dmn.h"
#include "log.h"

/*
 * One pull per channel, on the loop thread. Every pull interval a round
 * runs: each live source is asked for its buffer map; when every map is in
 * (or failed), the scheduler (common/sched.h) picks which chunk to ask of
 * which source: urgent zone first, then rarest first, random among equals,
 * at most CurRqst requests per source, where CurRqst follows formula 5 from
 * how many of the source's last batch completed. A failed chunk is marked
 * "avoid this source" and asked again in a later round, from another
 * source when one has it. A source that fails dead_after requests in a row
 * is dropped (state "dead", logged, counted). A pull stops when nobody
 * asked for the channel for idle_s, or when all its sources are dead; what
 * was fetched stays until the channel expires.
 *
 * Every field of struct cache_pull is guarded by env->pull_lock; the loop
 * thread takes it in each callback, the HTTP threads for POST /v1/pull and
 * status. Lock order: pull_lock, then the store's locks.
 */

enum cache_src_state { CACHE_SRC_OK = 0, CACHE_SRC_DEAD = 1 };

struct cache_src {
	char id[CACHE_ID_MAX + 1];
	char url[CACHE_URL_MAX + 1];
	enum cache_src_state state;
	struct bmap map;
	bool have_map;
	bool map_pending;
	unsigned fails;                       /* consecutive */
	unsigned issued, completed;           /* this batch: R and F of formula 5 */
	unsigned last_issued, last_completed; /* the previous batch, for status */
	unsigned inflight;
	unsigned quota;
	unsigned long long total_issued, total_completed, total_failed, bytes;
	char why[96];
};

struct cache_pull {
	struct cache_pull *next;
	struct cache_env *env;
	char ch[CACHE_CH_MAX + 1];
	struct cache_src src[CACHE_PULL_SRC];
	size_t nsrc;
	struct bmap inflight; /* requested, not answered; same size as the store's windows */
	uint8_t avoid[BMAP_MAX_SIZE]; /* by seq % size: source that failed the chunk */
	unsigned maps_pending;
	unsigned refs; /* HTTP requests out */
	bool active;
	char state[32]; /* "pulling", "idle", "sources_dead", "stopped" */
	long long started_ms, want_ms, stopped_ms;
	uint64_t rng;
	unsigned long long rounds;
};

/* One HTTP request of a pull. */
struct cache_pull_io {
	struct cache_pull *p;
	size_t src;
	uint32_t seq;
	bool map;
};

/* ---------------------------------------------------------------- parsing */

static int
cache_url_ok(const char *u, size_t len)
{
	if (len < 8 || len > CACHE_URL_MAX || strncmp(u, "http://", 7) != 0)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)u[i] <= 0x20 || u[i] == 0x7f || u[i] == '"' || u[i] == '\\')
			return 0;
	/* A host must follow the scheme. */
	return u[7] != '/' && u[7] != '?' && u[7] != '#';
}

int
cache_pull_parse(const char *body, size_t len, struct cache_pull_req *ret, const char **reason)
{
	json_t *root, *ch, *srcs, *s;
	json_error_t jerr;
	size_t i;
	int rc = -EINVAL;

	*reason = "body must be a JSON object";
	memset(ret, 0, sizeof(*ret));
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root || !json_is_object(root))
		goto out;
	ch = json_object_get(root, "channel");
	*reason = "channel must be 1-128 characters of A-Z a-z 0-9 . _ -";
	if (!json_is_string(ch) || !cache_channel_ok(json_string_value(ch)) ||
	    strlen(json_string_value(ch)) != json_string_length(ch))
		goto out;
	snprintf(ret->channel, sizeof(ret->channel), "%s", json_string_value(ch));
	srcs = json_object_get(root, "sources");
	*reason = "sources must be a non-empty array of {\"cache_id\",\"url\"}";
	if (!json_is_array(srcs) || json_array_size(srcs) == 0)
		goto out;
	json_array_foreach (srcs, i, s) {
		json_t *u = json_object_get(s, "url"), *id = json_object_get(s, "cache_id");
		const char *us;
		size_t ul;

		if (!json_is_object(s) || !json_is_string(u)) {
			*reason = "every source needs a \"url\" string";
			goto out;
		}
		us = json_string_value(u);
		ul = json_string_length(u);
		while (ul > 0 && us[ul - 1] == '/')
			ul--;
		if (strlen(us) < ul || !cache_url_ok(us, ul)) {
			*reason = "source url must be http://HOST[:PORT][/path] (at most 256 "
				  "characters)";
			goto out;
		}
		if (id && !json_is_null(id) &&
		    (!json_is_string(id) || json_string_length(id) > CACHE_ID_MAX ||
		     strlen(json_string_value(id)) != json_string_length(id))) {
			*reason = "source cache_id must be a string of at most 64 bytes";
			goto out;
		}
		if (ret->nsrc == CACHE_PULL_SRC)
			continue;
		bool dup = false;
		for (size_t k = 0; k < ret->nsrc; k++)
			if (strlen(ret->src[k].url) == ul && memcmp(ret->src[k].url, us, ul) == 0)
				dup = true;
		if (dup)
			continue;
		memcpy(ret->src[ret->nsrc].url, us, ul);
		ret->src[ret->nsrc].url[ul] = '\0';
		if (json_is_string(id))
			snprintf(ret->src[ret->nsrc].id, sizeof(ret->src[0].id), "%s",
				 json_string_value(id));
		ret->nsrc++;
	}
	*reason = NULL;
	rc = 0;
out:
	json_decref(root);
	return rc;
}

int
cache_map_parse(const char *body, size_t len, struct bmap *ret)
{
	json_t *root, *first, *size, *bits;
	json_error_t jerr;
	int rc = -EINVAL;

	root = json_loadb(body, len, 0, &jerr);
	if (!root || !json_is_object(root))
		goto out;
	first = json_object_get(root, "first");
	size = json_object_get(root, "size");
	bits = json_object_get(root, "bitmap");
	if (!json_is_integer(first) || !json_is_integer(size) || !json_is_string(bits))
		goto out;
	if (json_integer_value(first) < 0 || json_integer_value(first) > BMAP_SEQ_MAX ||
	    json_integer_value(size) < BMAP_MIN_SIZE || json_integer_value(size) > BMAP_MAX_SIZE)
		goto out;
	rc = bmap_decode(json_string_value(bits), json_string_length(bits),
			 (uint32_t)json_integer_value(first), (uint32_t)json_integer_value(size),
			 ret);
out:
	json_decref(root);
	return rc;
}

/* ---------------------------------------------------------------- state */

static struct cache_pull *
cache_pull_find(struct cache_env *env, const char *ch)
{
	struct cache_pull *p = env->pulls;
	while (p && strcmp(p->ch, ch) != 0)
		p = p->next;
	return p;
}

static size_t
cache_pull_live(const struct cache_pull *p)
{
	size_t n = 0;
	for (size_t i = 0; i < p->nsrc; i++)
		n += p->src[i].state == CACHE_SRC_OK;
	return n;
}

static void
cache_pull_stop(struct cache_pull *p, const char *why)
{
	if (!p->active)
		return;
	p->active = false;
	p->stopped_ms = dmn_now_ms();
	snprintf(p->state, sizeof(p->state), "%s", why);
	cache_store_set_pulling(p->env->store, p->ch, false);
	log_notice("pull of %s stopped: %s", p->ch, why);
}

/* The own URL and id are never a source: a cache told to pull from itself
 * would wait on itself forever. */
static bool
cache_pull_is_self(struct cache_env *env, const char *id, const char *url)
{
	return (id[0] && strcmp(id, env->id) == 0) || strcmp(url, env->url) == 0;
}

int
cache_pull_start(struct cache_env *env, const struct cache_pull_req *req, size_t *ret_nsrc)
{
	struct cache_pull *p;
	long long now = dmn_now_ms();
	bool was_active = false, fresh = false;
	int r;

	r = cache_store_ensure(env->store, req->channel, now);
	if (r < 0)
		return r;
	pthread_mutex_lock(&env->pull_lock);
	if (env->stopping) {
		pthread_mutex_unlock(&env->pull_lock);
		return -ESHUTDOWN;
	}
	p = cache_pull_find(env, req->channel);
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p) {
			pthread_mutex_unlock(&env->pull_lock);
			return -ENOMEM;
		}
		p->env = env;
		snprintf(p->ch, sizeof(p->ch), "%s", req->channel);
		bmap_init(&p->inflight, 0, env->so.window);
		memset(p->avoid, SCHED_NO_SRC, sizeof(p->avoid));
		randombytes_buf(&p->rng, sizeof(p->rng));
		p->rng |= 1;
		fresh = true;
	}
	was_active = p->active;
	for (size_t i = 0; i < req->nsrc; i++) {
		const char *id = req->src[i].id, *url = req->src[i].url;
		struct cache_src *s = NULL;

		if (cache_pull_is_self(env, id, url))
			continue;
		for (size_t k = 0; k < p->nsrc; k++)
			if (strcmp(p->src[k].url, url) == 0)
				s = &p->src[k];
		if (s) {
			/* Named again by the index-server: give it another chance. */
			if (s->state == CACHE_SRC_DEAD) {
				s->state = CACHE_SRC_OK;
				s->fails = 0;
				s->why[0] = '\0';
			}
			continue;
		}
		if (p->nsrc == CACHE_PULL_SRC)
			continue;
		s = &p->src[p->nsrc++];
		memset(s, 0, sizeof(*s));
		snprintf(s->id, sizeof(s->id), "%s", id);
		snprintf(s->url, sizeof(s->url), "%s", url);
	}
	*ret_nsrc = cache_pull_live(p);
	if (*ret_nsrc == 0) {
		if (fresh)
			free(p);
		pthread_mutex_unlock(&env->pull_lock);
		return -ENOENT;
	}
	if (fresh) {
		p->next = env->pulls;
		env->pulls = p;
	}
	p->want_ms = now;
	if (!p->active) {
		p->active = true;
		p->started_ms = now;
		snprintf(p->state, sizeof(p->state), "pulling");
		cache_store_set_pulling(env->store, p->ch, true);
		log_notice("pulling %s from %zu sources", p->ch, *ret_nsrc);
	}
	pthread_mutex_unlock(&env->pull_lock);
	return was_active ? 1 : 0;
}

/* Frees pulls that stopped and have nothing in flight once their channel
 * is gone (cache_pull_forget) — pull_lock held. */
static void
cache_pull_unlink(struct cache_env *env, struct cache_pull *p)
{
	for (struct cache_pull **pp = &env->pulls; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	free(p);
}

void
cache_pull_forget(struct cache_env *env, const char *ch)
{
	struct cache_pull *p;

	pthread_mutex_lock(&env->pull_lock);
	p = cache_pull_find(env, ch);
	if (p) {
		p->active = false;
		if (p->refs == 0)
			cache_pull_unlink(env, p);
		else
			p->ch[0] = '\0'; /* orphaned: freed by its last callback */
	}
	pthread_mutex_unlock(&env->pull_lock);
}

/* ---------------------------------------------------------------- I/O */

static void
cache_src_failed(struct cache_pull *p, struct cache_src *s, const char *what)
{
	struct cache_env *env = p->env;

	s->fails++;
	s->total_failed++;
	if (s->state == CACHE_SRC_OK && s->fails >= (unsigned)atomic_load(&env->pull_dead_after)) {
		s->state = CACHE_SRC_DEAD;
		s->have_map = false;
		snprintf(s->why, sizeof(s->why), "%s", what);
		env->pull_dead_total++;
		log_warn("pull of %s: source %s (%s) is dead after %u failures in a row: %s", p->ch,
			 s->id[0] ? s->id : "-", s->url, s->fails, what);
		if (p->active && cache_pull_live(p) == 0)
			cache_pull_stop(p, "sources_dead");
	}
}

/* pull_lock held: the last reference of an orphaned pull frees it. */
static bool
cache_pull_release(struct cache_env *env, struct cache_pull *p)
{
	p->refs--;
	if (p->refs == 0 && p->ch[0] == '\0') {
		cache_pull_unlink(env, p);
		return true;
	}
	return false;
}

static void cache_pull_plan(struct cache_pull *p);

static void
cache_pull_chunk_cb(const struct evl_http_result *res, void *arg)
{
	struct cache_pull_io *io = arg;
	struct cache_pull *p = io->p;
	struct cache_env *env = p->env;
	struct cache_src *s;
	char what[64];

	pthread_mutex_lock(&env->pull_lock);
	s = &p->src[io->src];
	s->inflight--;
	if (bmap_in(&p->inflight, io->seq))
		bmap_clear(&p->inflight, io->seq);
	if (p->ch[0] && res->err == 0 && res->status == 200 && res->body_len > 0) {
		int r = cache_store_put(env->store, p->ch, io->seq, res->body, res->body_len,
					CACHE_FROM_PULL, dmn_now_ms(), NULL, NULL);
		/* Expired meanwhile or already there: the source did its part. */
		s->completed++;
		s->total_completed++;
		s->bytes += res->body_len;
		s->fails = 0;
		env->pull_completed++;
		if (r == 0 || r == -EEXIST || r == -ESTALE)
			met_add(met_child(env->m.pull_reqs, "ok"), 1);
		else
			met_add(met_child(env->m.pull_reqs, "refused"), 1);
		p->avoid[io->seq % env->so.window] = SCHED_NO_SRC;
	} else if (p->ch[0]) {
		env->pull_failed++;
		p->avoid[io->seq % env->so.window] = (uint8_t)io->src;
		if (res->err == 0 && (res->status == 404 || res->status == 410)) {
			/* The map was stale: not the source's fault. */
			met_add(met_child(env->m.pull_reqs, "missing"), 1);
		} else {
			if (res->err)
				snprintf(what, sizeof(what), "chunk request: %s",
					 strerror(-res->err));
			else
				snprintf(what, sizeof(what), "chunk request: HTTP %d", res->status);
			met_add(met_child(env->m.pull_reqs,
					  res->err == -ETIMEDOUT ? "timeout" : "failed"),
				1);
			cache_src_failed(p, s, what);
		}
	}
	cache_pull_release(env, p);
	free(io);
	pthread_mutex_unlock(&env->pull_lock);
}

static void
cache_pull_map_cb(const struct evl_http_result *res, void *arg)
{
	struct cache_pull_io *io = arg;
	struct cache_pull *p = io->p;
	struct cache_env *env = p->env;
	struct cache_src *s;
	char what[64];

	pthread_mutex_lock(&env->pull_lock);
	s = &p->src[io->src];
	s->map_pending = false;
	p->maps_pending--;
	if (p->ch[0]) {
		if (res->err == 0 && res->status == 200 &&
		    cache_map_parse(res->body, res->body_len, &s->map) == 0) {
			s->have_map = true;
			s->fails = 0;
		} else {
			s->have_map = false;
			if (res->err)
				snprintf(what, sizeof(what), "map request: %s",
					 strerror(-res->err));
			else if (res->status != 200)
				snprintf(what, sizeof(what), "map request: HTTP %d", res->status);
			else
				snprintf(what, sizeof(what), "map request: malformed map");
			cache_src_failed(p, s, what);
		}
		if (p->maps_pending == 0 && p->active)
			cache_pull_plan(p);
	}
	cache_pull_release(env, p);
	free(io);
	pthread_mutex_unlock(&env->pull_lock);
}

/* pull_lock held. Returns 0 when the request went out. */
static int
cache_pull_send(struct cache_pull *p, size_t si, bool map, uint32_t seq)
{
	struct cache_env *env = p->env;
	struct cache_src *s = &p->src[si];
	struct cache_pull_io *io = calloc(1, sizeof(*io));
	char url[CACHE_URL_MAX + CACHE_CH_MAX + 64];
	int r;

	if (!io)
		return -ENOMEM;
	io->p = p;
	io->src = si;
	io->seq = seq;
	io->map = map;
	if (map)
		snprintf(url, sizeof(url), "%s/v1/live/%s/map", s->url, p->ch);
	else
		snprintf(url, sizeof(url), "%s/v1/live/%s/chunks/%u", s->url, p->ch, seq);
	p->refs++;
	r = evl_http_request(env->loop, "GET", url, NULL, 0, NULL,
			     atomic_load(&env->pull_timeout_ms), map ? 65536 : env->so.chunk_max,
			     map ? cache_pull_map_cb : cache_pull_chunk_cb, io);
	if (r < 0) {
		p->refs--;
		free(io);
		return r;
	}
	return 0;
}

/* Every map of the round is in: decide and send the chunk requests.
 * pull_lock held, loop thread. */
static void
cache_pull_plan(struct cache_pull *p)
{
	struct cache_env *env = p->env;
	struct sched_src ss[CACHE_PULL_SRC];
	struct sched_pick picks[256];
	uint8_t avoid[BMAP_MAX_SIZE];
	struct cache_map_view own;
	struct bmap skip;
	int64_t last = -1;
	size_t alive = 0, n;
	unsigned lo = (unsigned)atomic_load(&env->pull_min);
	unsigned k100 = (unsigned)atomic_load(&env->pull_k100);
	unsigned cap = (unsigned)atomic_load(&env->pull_max_inflight);
	unsigned lag = (unsigned)atomic_load(&env->pull_lag), hi, needed, inflight_total = 0;
	uint32_t play;

	for (size_t i = 0; i < p->nsrc; i++) {
		struct cache_src *s = &p->src[i];
		if (s->state != CACHE_SRC_OK || !s->have_map)
			continue;
		alive++;
		int64_t l = bmap_last(&s->map);
		if (l > last)
			last = l;
		inflight_total += s->inflight;
	}
	if (last < 0 || alive == 0)
		return; /* nobody has anything yet */
	/* Our window follows the newest chunk any source has. */
	if (cache_store_align(env->store, p->ch, (uint32_t)last) < 0 ||
	    cache_store_map(env->store, p->ch, -1, &own) < 0)
		return;
	bmap_slide(&p->inflight, own.map.first, NULL, NULL);
	if (p->inflight.first != own.map.first) /* the window never moves back: re-place */
		bmap_init(&p->inflight, own.map.first, env->so.window);
	skip = own.map;
	for (size_t i = 0; i < sizeof(skip.w) / sizeof(skip.w[0]); i++)
		skip.w[i] |= p->inflight.w[i];
	needed = own.map.size - bmap_count(&skip);
	hi = sched_upper(needed, (unsigned)alive, k100);
	if (hi < lo)
		hi = lo;
	for (size_t i = 0; i < p->nsrc; i++) {
		struct cache_src *s = &p->src[i];
		ss[i].map = s->state == CACHE_SRC_OK && s->have_map ? &s->map : NULL;
		ss[i].quota = 0;
		if (!ss[i].map || s->inflight > 0)
			continue; /* its batch is still out: formula 5 needs all of F */
		s->quota = sched_next_count(s->issued, s->completed, lo, hi);
		s->last_issued = s->issued;
		s->last_completed = s->completed;
		s->issued = s->completed = 0;
		ss[i].quota = s->quota;
	}
	for (uint32_t off = 0; off < skip.size; off++)
		avoid[off] = p->avoid[(skip.first + off) % env->so.window];
	play = own.map.first;
	if (bmap_end(&own.map) > lag)
		play = (uint32_t)(bmap_end(&own.map) - lag) > own.map.first
			       ? (uint32_t)(bmap_end(&own.map) - lag)
			       : own.map.first;
	struct sched_in in = {
		.skip = &skip,
		.play = play,
		.urgent = sched_urgent_len(bmap_end(&own.map), play),
		.avoid = avoid,
		.rng = &p->rng,
	};
	size_t room = cap > inflight_total ? cap - inflight_total : 0;
	if (room > sizeof(picks) / sizeof(picks[0]))
		room = sizeof(picks) / sizeof(picks[0]);
	n = sched_plan(&in, ss, p->nsrc, picks, room);
	for (size_t i = 0; i < p->nsrc; i++) {
		struct cache_src *s = &p->src[i];
		/* A round with nothing to ask is no batch: formula 5 keeps
		 * working from the last real one, so the count keeps growing. */
		if (ss[i].quota > 0 && ss[i].assigned == 0) {
			s->issued = s->last_issued;
			s->completed = s->last_completed;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct cache_src *s = &p->src[picks[i].src];
		if (cache_pull_send(p, picks[i].src, false, picks[i].seq) < 0)
			break;
		bmap_set(&p->inflight, picks[i].seq);
		s->issued++;
		s->inflight++;
		s->total_issued++;
		env->pull_issued++;
	}
}

/* pull_lock held: one round of one pull. */
static void
cache_pull_round(struct cache_pull *p, long long now)
{
	struct cache_env *env = p->env;
	long long wanted = cache_store_wanted_ms(env->store, p->ch);
	long long idle_ms = (long long)atomic_load(&env->pull_idle_s) * 1000;

	if (wanted > p->want_ms)
		p->want_ms = wanted;
	if (now - p->want_ms > idle_ms) {
		cache_pull_stop(p, "idle");
		return;
	}
	if (p->maps_pending > 0)
		return;
	p->rounds++;
	for (size_t i = 0; i < p->nsrc; i++) {
		struct cache_src *s = &p->src[i];
		if (s->state != CACHE_SRC_OK || s->map_pending)
			continue;
		if (cache_pull_send(p, i, true, 0) == 0) {
			s->map_pending = true;
			p->maps_pending++;
		}
	}
}

void
cache_pull_tick(void *arg)
{
	struct cache_env *env = arg;
	long long now = dmn_now_ms();

	pthread_mutex_lock(&env->pull_lock);
	if (env->stopping) {
		pthread_mutex_unlock(&env->pull_lock);
		return;
	}
	for (struct cache_pull *p = env->pulls; p; p = p->next)
		if (p->active && p->ch[0])
			cache_pull_round(p, now);
	pthread_mutex_unlock(&env->pull_lock);
	evl_call_later(env->loop, atomic_load(&env->pull_interval_ms), cache_pull_tick, env);
}

/* ---------------------------------------------------------------- status */

static json_t *
cache_pull_one_json(const struct cache_pull *p)
{
	json_t *srcs = json_array();
	unsigned long long issued = 0, completed = 0;

	for (size_t i = 0; i < p->nsrc; i++) {
		const struct cache_src *s = &p->src[i];
		issued += s->total_issued;
		completed += s->total_completed;
		json_t *o = json_pack(
			"{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:f, s:i, s:i, s:i}", "cache_id",
			s->id, "url", s->url, "state", s->state == CACHE_SRC_OK ? "ok" : "dead",
			"requests", (json_int_t)s->total_issued, "completed",
			(json_int_t)s->total_completed, "failed", (json_int_t)s->total_failed,
			"bytes", (json_int_t)s->bytes, "in_flight", (json_int_t)s->inflight,
			"completion_rate",
			s->total_issued ? (double)s->total_completed / (double)s->total_issued
					: 0.0,
			"quota", (int)s->quota, "last_requested", (int)s->last_issued,
			"last_completed", (int)s->last_completed);
		json_object_set_new(o, "held", json_integer(s->have_map ? bmap_count(&s->map) : 0));
		json_object_set_new(o, "reason", s->why[0] ? json_string(s->why) : json_null());
		json_array_append_new(srcs, o);
	}
	return json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:f, s:o}", "channel", p->ch, "state",
			 p->state, "pulling", p->active, "rounds", (json_int_t)p->rounds,
			 "requests", (json_int_t)issued, "completed", (json_int_t)completed,
			 "completion_rate", issued ? (double)completed / (double)issued : 0.0,
			 "sources", srcs);
}

json_t *
cache_pull_json(struct cache_env *env, const char *ch)
{
	json_t *out = NULL;

	pthread_mutex_lock(&env->pull_lock);
	if (ch) {
		struct cache_pull *p = cache_pull_find(env, ch);
		out = p ? cache_pull_one_json(p) : NULL;
	} else {
		out = json_array();
		for (struct cache_pull *p = env->pulls; p; p = p->next)
			if (p->ch[0])
				json_array_append_new(out, cache_pull_one_json(p));
	}
	pthread_mutex_unlock(&env->pull_lock);
	return out;
}

void
cache_pull_stats(struct cache_env *env, struct cache_pull_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	pthread_mutex_lock(&env->pull_lock);
	for (struct cache_pull *p = env->pulls; p; p = p->next) {
		if (!p->ch[0])
			continue;
		ret->active += p->active;
		for (size_t i = 0; i < p->nsrc; i++) {
			if (p->src[i].state == CACHE_SRC_OK)
				ret->sources_ok += p->active;
			else
				ret->sources_dead++;
		}
	}
	ret->issued = env->pull_issued;
	ret->completed = env->pull_completed;
	ret->failed = env->pull_failed;
	ret->dead_total = env->pull_dead_total;
	pthread_mutex_unlock(&env->pull_lock);
}

void
cache_pull_free_all(struct cache_env *env)
{
	struct cache_pull *p, *next;

	pthread_mutex_lock(&env->pull_lock);
	for (p = env->pulls; p; p = next) {
		next = p->next;
		free(p);
	}
	env->pulls = NULL;
	pthread_mutex_unlock(&env->pull_lock);
}
