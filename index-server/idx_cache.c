// SPDX-License-Identifier: MIT
/* index-server: the domain's cache registry snapshot, the swarm sweeper, script calls. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmn.h"
#include "idx.h"
#include "log.h"

#define IDX_SWEEP_BATCH 256 /* channels swept per tick */

void
idx_key_swarm(const struct idx_env *env, const char *ch, const char *suffix, char *buf, size_t size)
{
	snprintf(buf, size, "%sswarm:{%s:%s}%s", rds_async_prefix(env->ra), env->domain, ch,
		 suffix);
}

/* ------------------------------------------------------------ script calls */

int
idx_script_run(struct idx_env *env, const char *ch, int argc, const char *const *argv,
	       rds_async_cb cb, void *cbarg)
{
	char keys[3][IDX_CHANNEL_MAX + 160];
	const char *k[3] = { keys[0], keys[1], keys[2] };

	idx_key_swarm(env, ch, "", keys[0], sizeof(keys[0]));
	idx_key_swarm(env, ch, ":lex", keys[1], sizeof(keys[1]));
	idx_key_swarm(env, ch, ":info", keys[2], sizeof(keys[2]));
	return rds_async_script(env->ra, &env->script, 3, k, argc, argv, cb, cbarg);
}

/* ------------------------------------------------------------ registry */

int
idx_caches_pick(struct idx_env *env, const char *const *skip, size_t nskip, struct idx_cache *ret)
{
	int r = -ENOENT;

	pthread_mutex_lock(&env->lock);
	for (size_t i = 0; i < env->ncaches && r < 0; i++) {
		bool skipped = false;
		for (size_t j = 0; j < nskip; j++)
			skipped = skipped || strcmp(skip[j], env->caches[i].id) == 0;
		if (!skipped) {
			*ret = env->caches[i];
			r = 0;
		}
	}
	pthread_mutex_unlock(&env->lock);
	return r;
}

int
idx_caches_find(struct idx_env *env, const char *id, struct idx_cache *ret)
{
	int r = -ENOENT;

	pthread_mutex_lock(&env->lock);
	for (size_t i = 0; i < env->ncaches; i++) {
		if (strcmp(env->caches[i].id, id) == 0) {
			*ret = env->caches[i];
			r = 0;
			break;
		}
	}
	pthread_mutex_unlock(&env->lock);
	return r;
}

static int
idx_cache_cmp(const void *a, const void *b)
{
	const struct idx_cache *x = a, *y = b;
	if (x->score != y->score)
		return x->score < y->score ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* Fills c from a cache:{ID} hash; false when the hash is gone (a dead
 * cache), names another domain or carries no usable URL. */
static bool
idx_cache_from_hash(const struct idx_env *env, const redisReply *h, struct idx_cache *c)
{
	const char *dom = rds_hash_field(h, "domain"), *url = rds_hash_field(h, "url");
	const char *load = rds_hash_field(h, "load"), *cap = rds_hash_field(h, "capacity");

	if (!dom || strcmp(dom, env->domain) != 0 || !url || strlen(url) >= sizeof(c->url) ||
	    strncmp(url, "http://", 7) != 0 || strpbrk(url, " \t\r\n\""))
		return false;
	snprintf(c->url, sizeof(c->url), "%s", url);
	{
		size_t l = strlen(c->url);
		while (l > 7 && c->url[l - 1] == '/')
			c->url[--l] = '\0';
	}
	c->load = load ? strtod(load, NULL) : 0;
	c->capacity = cap ? strtod(cap, NULL) : 0;
	return true;
}

static void
idx_caches_publish(struct idx_env *env, struct idx_cache *v, size_t n)
{
	qsort(v, n, sizeof(*v), idx_cache_cmp);
	pthread_mutex_lock(&env->lock);
	memcpy(env->caches, v, n * sizeof(*v));
	env->ncaches = n;
	env->caches_loaded_ms = dmn_now_ms();
	pthread_mutex_unlock(&env->lock);
}

void
idx_caches_load_sync(struct idx_env *env)
{
	char key[160];
	int err;
	struct idx_cache *v = calloc(IDX_CACHES_MAX, sizeof(*v));
	size_t n = 0;

	if (!v)
		return;
	snprintf(key, sizeof(key), "%scaches:{%s}", rds_prefix(env->rds), env->domain);
	redisReply *ids =
		rds_command(env->rds, &err, "ZRANGE %s 0 %d WITHSCORES", key, IDX_CACHES_MAX - 1);
	if (!ids || ids->type != REDIS_REPLY_ARRAY) {
		if (ids)
			freeReplyObject(ids);
		free(v);
		return;
	}
	for (size_t i = 0; i + 1 < ids->elements && n < IDX_CACHES_MAX; i += 2) {
		const redisReply *id = ids->element[i], *sc = ids->element[i + 1];
		if (id->type != REDIS_REPLY_STRING || id->len > IDX_CACHE_ID_MAX ||
		    sc->type != REDIS_REPLY_STRING)
			continue;
		redisReply *h = rds_command(env->rds, &err, "HGETALL %scache:{%s}",
					    rds_prefix(env->rds), id->str);
		if (h && idx_cache_from_hash(env, h, &v[n])) {
			snprintf(v[n].id, sizeof(v[n].id), "%s", id->str);
			v[n].score = strtod(sc->str, NULL);
			n++;
		}
		if (h)
			freeReplyObject(h);
	}
	freeReplyObject(ids);
	idx_caches_publish(env, v, n);
	free(v);
}

/* The asynchronous refresh: ZRANGE caches:{D}, then one HGETALL per cache,
 * all on the loop thread (so `pending` needs no atomics). */
struct idx_refresh {
	struct idx_env *env;
	size_t n, pending;
	struct idx_cache v[IDX_CACHES_MAX];
	bool live[IDX_CACHES_MAX];
	struct idx_refresh_item {
		struct idx_refresh *r;
		size_t i;
	} items[IDX_CACHES_MAX];
	bool failed;
};

static void
idx_noop_cb(redisReply *rep, int err, void *arg)
{
	(void)rep;
	(void)err;
	(void)arg;
}

static void
idx_refresh_finish(struct idx_refresh *r)
{
	struct idx_env *env = r->env;
	struct idx_cache *v = calloc(IDX_CACHES_MAX, sizeof(*v));
	size_t m = 0;
	char key[160];

	if (v && !r->failed) {
		snprintf(key, sizeof(key), "%scaches:{%s}", rds_async_prefix(env->ra), env->domain);
		for (size_t i = 0; i < r->n; i++) {
			if (r->live[i]) {
				v[m++] = r->v[i];
			} else {
				/* A registry entry whose hash expired: the cache died
				 * without removing itself. */
				const char *argv[] = { "ZREM", key, r->v[i].id };
				rds_async_argv(env->ra, idx_noop_cb, NULL, 3, argv, NULL);
			}
		}
		idx_caches_publish(env, v, m);
	}
	free(v);
	env->refresh_busy = false;
	free(r);
}

static void
idx_refresh_on_hash(redisReply *rep, int err, void *arg)
{
	struct idx_refresh_item *it = arg;
	struct idx_refresh *r = it->r;

	if (err)
		r->failed = true;
	else
		r->live[it->i] = idx_cache_from_hash(r->env, rep, &r->v[it->i]);
	if (--r->pending == 0)
		idx_refresh_finish(r);
}

static void
idx_refresh_on_ids(redisReply *rep, int err, void *arg)
{
	struct idx_refresh *r = arg;
	struct idx_env *env = r->env;
	char key[160];

	if (err || rep->type != REDIS_REPLY_ARRAY) {
		r->failed = true;
		idx_refresh_finish(r);
		return;
	}
	for (size_t i = 0; i + 1 < rep->elements && r->n < IDX_CACHES_MAX; i += 2) {
		const redisReply *id = rep->element[i], *sc = rep->element[i + 1];
		if (id->type != REDIS_REPLY_STRING || id->len > IDX_CACHE_ID_MAX ||
		    sc->type != REDIS_REPLY_STRING)
			continue;
		snprintf(r->v[r->n].id, sizeof(r->v[r->n].id), "%s", id->str);
		r->v[r->n].score = strtod(sc->str, NULL);
		r->n++;
	}
	r->pending = 1;
	for (size_t i = 0; i < r->n; i++) {
		snprintf(key, sizeof(key), "%scache:{%s}", rds_async_prefix(env->ra), r->v[i].id);
		const char *argv[] = { "HGETALL", key };
		r->items[i].r = r;
		r->items[i].i = i;
		r->pending++;
		if (rds_async_argv(env->ra, idx_refresh_on_hash, &r->items[i], 2, argv, NULL) < 0) {
			r->pending--;
			r->failed = true;
			break;
		}
	}
	if (--r->pending == 0)
		idx_refresh_finish(r);
}

static void
idx_refresh_start(struct idx_env *env)
{
	char key[160], last[16];
	struct idx_refresh *r;

	if (env->refresh_busy)
		return;
	r = calloc(1, sizeof(*r));
	if (!r)
		return;
	r->env = env;
	snprintf(key, sizeof(key), "%scaches:{%s}", rds_async_prefix(env->ra), env->domain);
	snprintf(last, sizeof(last), "%d", IDX_CACHES_MAX - 1);
	const char *argv[] = { "ZRANGE", key, "0", last, "WITHSCORES" };
	env->refresh_busy = true;
	if (rds_async_argv(env->ra, idx_refresh_on_ids, r, 5, argv, NULL) < 0) {
		env->refresh_busy = false;
		free(r);
	}
}

/* ------------------------------------------------------------ sweeper */

/* Walks chans:{D} IDX_SWEEP_BATCH channels per tick: trims each swarm (a
 * bounded batch of expired peers), counts live peers, and forgets channels
 * whose swarm is gone. A whole pass yields the channel and peer gauges. */
struct idx_sweep {
	struct idx_env *env;
	size_t n, pending;
	bool short_batch;
	long long cutoff_ms;
	struct idx_sweep_item {
		struct idx_sweep *s;
		char ch[IDX_CHANNEL_MAX + 1];
		long long last_join_ms;
	} items[IDX_SWEEP_BATCH];
};

static void
idx_sweep_finish(struct idx_sweep *s)
{
	struct idx_env *env = s->env;

	if (s->short_batch) {
		pthread_mutex_lock(&env->lock);
		env->last_channels = env->sweep_channels;
		env->last_peers = env->sweep_peers;
		env->last_largest = env->sweep_largest;
		pthread_mutex_unlock(&env->lock);
		env->sweep_channels = env->sweep_peers = env->sweep_largest = 0;
		env->sweep_cursor = 0;
	} else {
		env->sweep_cursor += (long long)s->n;
	}
	env->sweep_busy = false;
	free(s);
}

static void
idx_sweep_on_trim(redisReply *rep, int err, void *arg)
{
	struct idx_sweep_item *it = arg;
	struct idx_sweep *s = it->s;
	struct idx_env *env = s->env;

	if (!err && rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
	    rep->element[1]->type == REDIS_REPLY_INTEGER &&
	    rep->element[2]->type == REDIS_REPLY_INTEGER) {
		long long live = rep->element[1]->integer, card = rep->element[2]->integer;
		if (live > 0) {
			env->sweep_channels++;
			env->sweep_peers += live;
			if (live > env->sweep_largest)
				env->sweep_largest = live;
		}
		if (card == 0 && it->last_join_ms < s->cutoff_ms) {
			char key[160];
			snprintf(key, sizeof(key), "%schans:{%s}", rds_async_prefix(env->ra),
				 env->domain);
			const char *argv[] = { "ZREM", key, it->ch };
			rds_async_argv(env->ra, idx_noop_cb, NULL, 3, argv, NULL);
		}
	}
	if (--s->pending == 0)
		idx_sweep_finish(s);
}

static void
idx_sweep_on_list(redisReply *rep, int err, void *arg)
{
	struct idx_sweep *s = arg;
	struct idx_env *env = s->env;
	struct idx_params p;
	char now[24], cutoff[24], ttl[24], batch[16];

	if (err || rep->type != REDIS_REPLY_ARRAY) {
		env->sweep_busy = false;
		free(s);
		return;
	}
	idx_params_get(env, &p);
	tok_key_wipe(&p.key);
	long long now_ms = dmn_wall_s() * 1000,
		  expire_ms = (long long)p.heartbeat_s * p.missed * 1000;
	s->cutoff_ms = now_ms - expire_ms;
	snprintf(now, sizeof(now), "%lld", now_ms);
	snprintf(cutoff, sizeof(cutoff), "%lld", s->cutoff_ms);
	snprintf(ttl, sizeof(ttl), "%lld", expire_ms * 2 + 60000);
	snprintf(batch, sizeof(batch), "%d", p.trim_batch * 4);
	for (size_t i = 0; i + 1 < rep->elements && s->n < IDX_SWEEP_BATCH; i += 2) {
		const redisReply *ch = rep->element[i], *sc = rep->element[i + 1];
		if (ch->type != REDIS_REPLY_STRING || sc->type != REDIS_REPLY_STRING ||
		    !idx_channel_ok(ch->str, ch->len))
			continue;
		struct idx_sweep_item *it = &s->items[s->n++];
		it->s = s;
		memcpy(it->ch, ch->str, ch->len);
		it->ch[ch->len] = '\0';
		it->last_join_ms = strtoll(sc->str, NULL, 10);
	}
	s->short_batch = rep->elements / 2 < IDX_SWEEP_BATCH;
	s->pending = 1;
	for (size_t i = 0; i < s->n; i++) {
		const char *argv[] = { "trim", "", now, cutoff, ttl, batch };
		s->pending++;
		if (idx_script_run(env, s->items[i].ch, 6, argv, idx_sweep_on_trim, &s->items[i]) <
		    0)
			s->pending--;
	}
	if (--s->pending == 0)
		idx_sweep_finish(s);
}

static void
idx_sweep_start(struct idx_env *env)
{
	char key[160], lo[24], hi[24];
	struct idx_sweep *s;

	if (env->sweep_busy)
		return;
	s = calloc(1, sizeof(*s));
	if (!s)
		return;
	s->env = env;
	snprintf(key, sizeof(key), "%schans:{%s}", rds_async_prefix(env->ra), env->domain);
	snprintf(lo, sizeof(lo), "%lld", env->sweep_cursor);
	snprintf(hi, sizeof(hi), "%lld", env->sweep_cursor + IDX_SWEEP_BATCH - 1);
	const char *argv[] = { "ZRANGE", key, lo, hi, "WITHSCORES" };
	env->sweep_busy = true;
	if (rds_async_argv(env->ra, idx_sweep_on_list, s, 5, argv, NULL) < 0) {
		env->sweep_busy = false;
		free(s);
	}
}

static void
idx_background_tick(void *arg)
{
	struct idx_env *env = arg;

	if (atomic_load(&env->stopping))
		return;
	idx_refresh_start(env);
	idx_sweep_start(env);
}

void
idx_background_start(struct idx_env *env)
{
	evl_call(env->loop, idx_background_tick, env);
}
