// SPDX-License-Identifier: MIT
/* relay-server: the Redis relay registry and the accounting stream. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "relay.h"

/*
 * Registry (read by the login-server to pick the least loaded relay):
 *   PREFIX relay:{ID}  hash url, sessions, capacity, bytes_per_s; EXPIRE ttl
 *   PREFIX relays      sorted set, member ID, score sessions/capacity
 * refreshed every ttl/3, so a relay that dies drops out within ttl.
 * Accounting: one XADD per finished session to PREFIX acct:{ID}
 * (MAXLEN ~ acct_maxlen), drained by the login-server's consumer group.
 * Records wait in memory (bounded) while Redis is down and go out when it
 * returns; a record whose XADD failed is retried, so delivery is at least
 * once and the login-server keys its rows by cid.
 */

#define RELAY_ACCT_INFLIGHT 64

static void
relay_reg_ignore(redisReply *reply, int err, void *arg)
{
	(void)reply;
	(void)err;
	(void)arg;
}

void
relay_reg_tick(struct relay_env *env, long long now_ms)
{
	const char *prefix = rds_async_prefix(env->ra);
	char key[256], zkey[256], ttl[24], sessions[24], cap[24], bps[24], score[32];
	size_t nactive;
	unsigned capacity;

	if (now_ms < env->next_registry_ms)
		return;
	env->next_registry_ms = now_ms + env->registry_ttl_s * 1000 / 3;
	pthread_mutex_lock(&env->lock);
	nactive = env->nactive;
	capacity = env->lim.max_sessions;
	pthread_mutex_unlock(&env->lock);
	snprintf(key, sizeof(key), "%srelay:{%s}", prefix, env->id);
	snprintf(zkey, sizeof(zkey), "%srelays", prefix);
	snprintf(ttl, sizeof(ttl), "%lld", env->registry_ttl_s);
	snprintf(sessions, sizeof(sessions), "%zu", nactive);
	snprintf(cap, sizeof(cap), "%u", capacity);
	snprintf(bps, sizeof(bps), "%lld", atomic_load(&env->bytes_per_s));
	snprintf(score, sizeof(score), "%.6f", capacity ? (double)nactive / capacity : 1.0);
	{
		const char *argv[] = { "HSET",   key,        "url", env->public_url, "sessions",
				       sessions, "capacity", cap,   "bytes_per_s",   bps };
		if (rds_async_argv(env->ra, relay_reg_ignore, NULL, 10, argv, NULL) < 0)
			return; /* Redis down: the next tick tries again */
	}
	{
		const char *argv[] = { "EXPIRE", key, ttl };
		rds_async_argv(env->ra, relay_reg_ignore, NULL, 3, argv, NULL);
	}
	{
		const char *argv[] = { "ZADD", zkey, score, env->id };
		rds_async_argv(env->ra, relay_reg_ignore, NULL, 4, argv, NULL);
	}
}

/* Locked by the caller. */
static void
relay_acct_requeue(struct relay_env *env, struct relay_acct *a)
{
	a->next = env->acct_head;
	env->acct_head = a;
	if (!env->acct_tail)
		env->acct_tail = a;
	env->acct_n++;
	met_set(env->m.acct_pending, (double)env->acct_n);
}

void
relay_acct_push(struct relay_env *env, struct relay_acct *a)
{
	a->next = NULL;
	a->env = env;
	if (env->acct_tail)
		env->acct_tail->next = a;
	else
		env->acct_head = a;
	env->acct_tail = a;
	env->acct_n++;
	/* Bounded while Redis is down: the oldest record goes. */
	while (env->acct_n > env->acct_max_pending && env->acct_head) {
		struct relay_acct *old = env->acct_head;
		env->acct_head = old->next;
		if (!env->acct_head)
			env->acct_tail = NULL;
		env->acct_n--;
		free(old);
		met_add(env->m.drop_acct, 1);
	}
	met_set(env->m.acct_pending, (double)env->acct_n);
}

static const char *
relay_mode_name(enum relay_mode m)
{
	return m == RELAY_MODE_TUNNEL ? "tunnel" : m == RELAY_MODE_MAILBOX ? "mailbox" : "none";
}

/* Formats the XADD of a; argv points into buf. Returns argc. */
static int
relay_acct_argv(struct relay_env *env, const struct relay_acct *a, const char **argv,
		char buf[][48], char *key, size_t keysize)
{
	snprintf(key, keysize, "%sacct:{%s}", rds_async_prefix(env->ra), env->id);
	snprintf(buf[0], 48, "%zu", env->acct_maxlen);
	snprintf(buf[1], 48, "%llu", (unsigned long long)a->bytes_ab);
	snprintf(buf[2], 48, "%llu", (unsigned long long)a->bytes_ba);
	snprintf(buf[3], 48, "%lld", a->started_ms);
	snprintf(buf[4], 48, "%lld", a->ended_ms);
	const char *v[] = { "XADD",       key,
			    "MAXLEN",     "~",
			    buf[0],       "*",
			    "cid",        a->cid,
			    "relay",      env->id,
			    "mode",       relay_mode_name(a->mode),
			    "bytes_ab",   buf[1],
			    "bytes_ba",   buf[2],
			    "started_ms", buf[3],
			    "ended_ms",   buf[4],
			    "reason",     relay_end_name(a->reason) };
	int n = (int)(sizeof(v) / sizeof(v[0]));
	memcpy(argv, v, sizeof(v));
	return n;
}

static void
relay_acct_done(redisReply *reply, int err, void *arg)
{
	struct relay_acct *a = arg;
	struct relay_env *env = a->env;

	pthread_mutex_lock(&env->lock);
	env->acct_inflight--;
	if (err || !reply || reply->type == REDIS_REPLY_ERROR) {
		relay_acct_requeue(env, a);
		pthread_mutex_unlock(&env->lock);
		return;
	}
	pthread_mutex_unlock(&env->lock);
	met_add(env->m.acct_written, 1);
	free(a);
}

void
relay_acct_flush(struct relay_env *env)
{
	for (;;) {
		struct relay_acct *a;
		const char *argv[24];
		char buf[5][48], key[256];
		int argc;

		pthread_mutex_lock(&env->lock);
		a = env->acct_head;
		if (!a || env->acct_inflight >= RELAY_ACCT_INFLIGHT) {
			pthread_mutex_unlock(&env->lock);
			return;
		}
		env->acct_head = a->next;
		if (!env->acct_head)
			env->acct_tail = NULL;
		env->acct_n--;
		env->acct_inflight++;
		met_set(env->m.acct_pending, (double)env->acct_n);
		pthread_mutex_unlock(&env->lock);

		argc = relay_acct_argv(env, a, argv, buf, key, sizeof(key));
		if (rds_async_argv(env->ra, relay_acct_done, a, argc, argv, NULL) < 0) {
			pthread_mutex_lock(&env->lock);
			env->acct_inflight--;
			relay_acct_requeue(env, a);
			pthread_mutex_unlock(&env->lock);
			return;
		}
	}
}

void
relay_reg_remove(struct relay_env *env)
{
	const char *prefix = rds_prefix(env->rds);
	char key[256], zkey[256];
	size_t written = 0, left;
	int err;
	redisReply *r;

	snprintf(key, sizeof(key), "%srelay:{%s}", prefix, env->id);
	snprintf(zkey, sizeof(zkey), "%srelays", prefix);
	r = rds_command(env->rds, &err, "DEL %s", key);
	if (r)
		freeReplyObject(r);
	r = rds_command(env->rds, &err, "ZREM %s %s", zkey, env->id);
	if (r)
		freeReplyObject(r);
	else
		log_warn("could not remove relay %s from the registry (Redis down); it expires "
			 "within %lld s",
			 env->id, env->registry_ttl_s);
	/* What accounting is still pending goes out now, or is lost. */
	for (;;) {
		const char *argv[24];
		char buf[5][48], akey[256];
		struct relay_acct *a;

		pthread_mutex_lock(&env->lock);
		a = env->acct_head;
		if (a) {
			env->acct_head = a->next;
			if (!env->acct_head)
				env->acct_tail = NULL;
			env->acct_n--;
		}
		pthread_mutex_unlock(&env->lock);
		if (!a)
			break;
		int argc = relay_acct_argv(env, a, argv, buf, akey, sizeof(akey));
		r = rds_command_argv(env->rds, &err, argc, argv, NULL);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			if (r)
				freeReplyObject(r);
			pthread_mutex_lock(&env->lock);
			relay_acct_requeue(env, a);
			left = env->acct_n;
			pthread_mutex_unlock(&env->lock);
			log_err("Redis unreachable at shutdown: %zu accounting records lost", left);
			break;
		}
		freeReplyObject(r);
		free(a);
		written++;
	}
	if (written)
		log_info("wrote %zu pending accounting records at shutdown", written);
}
