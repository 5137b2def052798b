// SPDX-License-Identifier: MIT
/* cache-server: the Redis cache registry (cache:{ID}, caches:{DOMAIN}, chan:{CH}:caches) and
 * housekeeping. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "dmn.h"
#include "log.h"

/* Channel names collected from the store, to talk to Redis without
 * holding the store's lock. */
struct cache_names {
	char (*v)[CACHE_CH_MAX + 1];
	size_t n, cap;
};

static void
cache_names_add(const struct cache_chan_info *i, void *arg)
{
	struct cache_names *ns = arg;

	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? 2 * ns->cap : 64;
		void *v = realloc(ns->v, cap * sizeof(*ns->v));
		if (!v)
			return;
		ns->v = v;
		ns->cap = cap;
	}
	memcpy(ns->v[ns->n++], i->name, sizeof(ns->v[0]));
}

static void
cache_reg_cb(redisReply *reply, int err, void *arg)
{
	(void)reply;
	(void)err;
	(void)arg; /* failures are counted by rds_async and retried next refresh */
}

static void
cache_reg_cmd(struct cache_env *env, int argc, const char **argv)
{
	rds_async_argv(env->ra, cache_reg_cb, NULL, argc, argv, NULL);
}

void
cache_reg_gone(const char *ch, void *arg)
{
	struct cache_env *env = arg;
	char *copy;

	if (env->ngone == env->gone_cap) {
		size_t cap = env->gone_cap ? 2 * env->gone_cap : 16;
		char **v = realloc(env->gone, cap * sizeof(*v));
		if (!v)
			return; /* its registry entry simply expires */
		env->gone = v;
		env->gone_cap = cap;
	}
	copy = strdup(ch);
	if (copy)
		env->gone[env->ngone++] = copy;
}

/*
 * One refresh, all on the pipelined connection (one write for the batch):
 *   HSET cache:{ID} domain url load capacity viewers channels memory
 *   EXPIRE cache:{ID} ttl
 *   ZADD caches:{DOMAIN} load/capacity ID
 *   ZADD chan:{CH}:caches now+ttl ID      for every channel held or pulled
 *   ZREM chan:{CH}:caches ID              for channels dropped since the last one
 */
void
cache_reg_refresh(struct cache_env *env)
{
	const char *pfx = rds_async_prefix(env->ra);
	struct cache_store_stats ss;
	struct cache_names ns = { 0 };
	char key[CACHE_CH_MAX + 128], load[24], cap[24], viewers[24], chans[24], mem[24], ttl[16],
		score[32], until[24];
	long long l = atomic_load(&env->load_bps);

	cache_store_stats(env->store, &ss);
	cache_store_foreach(env->store, cache_names_add, &ns);
	snprintf(load, sizeof(load), "%lld", l);
	snprintf(cap, sizeof(cap), "%lld", env->capacity);
	snprintf(viewers, sizeof(viewers), "%lld", atomic_load(&env->viewers));
	snprintf(chans, sizeof(chans), "%zu", ss.channels);
	snprintf(mem, sizeof(mem), "%zu", ss.bytes);
	snprintf(ttl, sizeof(ttl), "%u", env->registry_ttl_s);
	snprintf(score, sizeof(score), "%.6f", env->capacity > 0 ? (double)l / env->capacity : 0.0);
	snprintf(until, sizeof(until), "%lld", dmn_wall_s() + env->registry_ttl_s);

	snprintf(key, sizeof(key), "%scache:{%s}", pfx, env->id);
	const char *hset[] = { "HSET",     key,   "domain",   env->domain, "url",     env->url,
			       "load",     load,  "capacity", cap,         "viewers", viewers,
			       "channels", chans, "memory",   mem };
	cache_reg_cmd(env, (int)(sizeof(hset) / sizeof(hset[0])), hset);
	const char *exp[] = { "EXPIRE", key, ttl };
	cache_reg_cmd(env, 3, exp);
	snprintf(key, sizeof(key), "%scaches:{%s}", pfx, env->domain);
	const char *zdom[] = { "ZADD", key, score, env->id };
	cache_reg_cmd(env, 4, zdom);
	for (size_t i = 0; i < ns.n; i++) {
		snprintf(key, sizeof(key), "%schan:{%s}:caches", pfx, ns.v[i]);
		const char *z[] = { "ZADD", key, until, env->id };
		cache_reg_cmd(env, 4, z);
	}
	for (size_t i = 0; i < env->ngone; i++) {
		snprintf(key, sizeof(key), "%schan:{%s}:caches", pfx, env->gone[i]);
		const char *z[] = { "ZREM", key, env->id };
		cache_reg_cmd(env, 3, z);
		free(env->gone[i]);
	}
	env->ngone = 0;
	free(ns.v);
}

void
cache_reg_remove(struct cache_env *env)
{
	const char *pfx = rds_prefix(env->rds);
	struct cache_names ns = { 0 };
	struct rds_pipe *p;
	redisReply **rep;
	char key[CACHE_CH_MAX + 128];
	size_t n = 2;
	int r;

	cache_store_foreach(env->store, cache_names_add, &ns);
	p = rds_pipe_begin(env->rds);
	if (!p) {
		log_warn(
			"Redis unreachable at shutdown: the registry entries expire by themselves");
		free(ns.v);
		return;
	}
	snprintf(key, sizeof(key), "%scache:{%s}", pfx, env->id);
	rds_pipe_add(p, "DEL %s", key);
	snprintf(key, sizeof(key), "%scaches:{%s}", pfx, env->domain);
	rds_pipe_add(p, "ZREM %s %s", key, env->id);
	for (size_t i = 0; i < ns.n; i++, n++) {
		snprintf(key, sizeof(key), "%schan:{%s}:caches", pfx, ns.v[i]);
		rds_pipe_add(p, "ZREM %s %s", key, env->id);
	}
	for (size_t i = 0; i < env->ngone; i++, n++) {
		snprintf(key, sizeof(key), "%schan:{%s}:caches", pfx, env->gone[i]);
		rds_pipe_add(p, "ZREM %s %s", key, env->id);
	}
	rep = calloc(n, sizeof(*rep));
	r = rep ? rds_pipe_exec(p, rep, n) : -ENOMEM;
	for (size_t i = 0; rep && r == 0 && i < n; i++)
		freeReplyObject(rep[i]);
	free(rep);
	rds_pipe_end(p);
	if (r < 0)
		log_warn("removing the registry entries failed (%s): they expire by themselves",
			 strerror(-r));
	else
		log_info("removed from the cache registry (%zu channels)", ns.n);
	free(ns.v);
}
