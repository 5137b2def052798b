// SPDX-License-Identifier: MIT
/* login-server: session and connection accounting to PostgreSQL, in batches, off the request path.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dmn.h"
#include "log.h"
#include "login.h"

/*
 * Request threads append records to a bounded in-memory queue (a mutex and
 * a copy, never PostgreSQL); one thread writes them every acct_flush_ms,
 * one statement per kind with the whole batch as one JSON parameter
 * (json_to_recordset), and does the two jobs that need a clock rather than
 * a request: closing sessions that expired in Redis (reap_s) and merging
 * the relay-servers' byte counts from the Redis stream acct:{relay}
 * (consumer group "login").
 */
#define LOGIN_STREAMS_MAX 256

struct login_acct {
	struct login_env *env;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct login_acct_rec *q;
	size_t n, cap;
	bool stopping;
	pthread_t thread;
	int flush_ms, reap_s;
	/* The relay accounting streams read: acct:{ID} of every relay seen
	 * in the registry (kept an hour after it left, to drain what it
	 * wrote last) and the shared acct:{relay}. */
	struct login_stream {
		char id[72];
		char next[4]; /* "0" = our pending entries first, then ">" */
		bool group_ready;
		long long seen_ms;
	} streams[LOGIN_STREAMS_MAX];
	size_t nstreams;
};

void
login_acct_push(struct login_env *env, const struct login_acct_rec *r)
{
	struct login_acct *a = env->acct;
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	if (a->n < a->cap) {
		a->q[a->n++] = *r;
		pthread_mutex_unlock(&a->lock);
		return;
	}
	pthread_mutex_unlock(&a->lock);
	met_add(env->m.acct_dropped, 1);
}

/* Runs one batch statement. Returns 0 or -EIO. */
static int
login_acct_exec(struct login_acct *a, PGconn *c, const char *what, const char *sql, json_t *rows)
{
	char err[256];
	if (json_array_size(rows) == 0)
		return 0;
	char *text = json_dumps(rows, JSON_COMPACT);
	if (!text)
		return -ENOMEM;
	const char *p[] = { text };
	int r = pg_exec(c, sql, 1, p, err, sizeof(err));
	free(text);
	if (r < 0)
		log_warn("accounting: writing %s failed: %s", what, err);
	else
		met_add(a->env->m.acct_written, (double)json_array_size(rows));
	return r;
}

static const char login_sql_start[] =
	"INSERT INTO login_sessions (sid, account, nat, public_addr, private_addr, login_at, "
	"last_seen) SELECT sid, account, nat, pub, NULLIF(priv, ''), to_timestamp(at / 1000.0), "
	"to_timestamp(at / 1000.0) FROM json_to_recordset($1::json) AS t(sid text, account "
	"text, nat text, pub text, priv text, at bigint) ON CONFLICT (sid) DO NOTHING";
static const char login_sql_end[] =
	"UPDATE login_sessions s SET logout_at = to_timestamp(t.at / 1000.0), end_reason = "
	"t.reason FROM json_to_recordset($1::json) AS t(sid text, reason text, at bigint) WHERE "
	"s.sid = t.sid AND s.logout_at IS NULL";
static const char login_sql_conn[] =
	"INSERT INTO connections (cid, initiator, target, mode, first_mode, created_at) SELECT "
	"cid, a, b, mode, mode, to_timestamp(at / 1000.0) FROM json_to_recordset($1::json) AS "
	"t(cid text, a text, b text, mode text, at bigint) ON CONFLICT (cid) DO UPDATE SET "
	"initiator = EXCLUDED.initiator, target = EXCLUDED.target, first_mode = "
	"EXCLUDED.first_mode, created_at = EXCLUDED.created_at";
static const char login_sql_mode[] =
	"UPDATE connections c SET mode = t.mode, lan_failed = true FROM "
	"json_to_recordset($1::json) AS t(cid text, mode text) WHERE c.cid = t.cid";
static const char login_sql_result[] =
	"UPDATE connections c SET outcome = t.outcome, reported_by = t.a, result_at = "
	"to_timestamp(t.at / 1000.0) FROM json_to_recordset($1::json) AS t(cid text, a text, "
	"outcome text, at bigint) WHERE c.cid = t.cid";

/* Writes one batch of records. Returns 0, or -EIO when PostgreSQL failed
 * (the batch is then kept for the next turn, unless the queue is full). */
static int
login_acct_write(struct login_acct *a, struct login_acct_rec *v, size_t n)
{
	json_t *rows[5];
	int r = 0;

	for (int k = 0; k < 5; k++)
		rows[k] = json_array();
	for (size_t i = 0; i < n; i++) {
		const struct login_acct_rec *x = &v[i];
		json_t *o = NULL;
		switch (x->kind) {
		case LOGIN_ACCT_SESSION_START:
			o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "sid", x->id, "account",
				      x->user, "nat", x->what, "pub", x->a, "priv", x->b, "at",
				      (json_int_t)x->at_ms);
			break;
		case LOGIN_ACCT_SESSION_END:
			o = json_pack("{s:s, s:s, s:I}", "sid", x->id, "reason", x->what, "at",
				      (json_int_t)x->at_ms);
			break;
		case LOGIN_ACCT_CONN_NEW:
			o = json_pack("{s:s, s:s, s:s, s:s, s:I}", "cid", x->id, "a", x->user, "b",
				      x->peer, "mode", x->what, "at", (json_int_t)x->at_ms);
			break;
		case LOGIN_ACCT_CONN_MODE:
			o = json_pack("{s:s, s:s}", "cid", x->id, "mode", x->what);
			break;
		case LOGIN_ACCT_CONN_RESULT:
			o = json_pack("{s:s, s:s, s:s, s:I}", "cid", x->id, "a", x->user, "outcome",
				      x->what, "at", (json_int_t)x->at_ms);
			break;
		}
		if (o)
			json_array_append_new(rows[x->kind], o);
	}
	PGconn *c = pg_acquire(a->env->pg);
	if (!c) {
		r = -EIO;
		goto out;
	}
	if (login_acct_exec(a, c, "session starts", login_sql_start, rows[0]) < 0 ||
	    login_acct_exec(a, c, "session ends", login_sql_end, rows[1]) < 0 ||
	    login_acct_exec(a, c, "connects", login_sql_conn, rows[2]) < 0 ||
	    login_acct_exec(a, c, "relay fallbacks", login_sql_mode, rows[3]) < 0 ||
	    login_acct_exec(a, c, "connect results", login_sql_result, rows[4]) < 0)
		r = -EIO;
	pg_release(a->env->pg, c);
out:
	for (int k = 0; k < 5; k++)
		json_decref(rows[k]);
	return r;
}

/* Takes the queue and writes it; on failure puts back what fits. */
static void
login_acct_flush(struct login_acct *a)
{
	struct login_acct_rec *v;
	size_t n;

	pthread_mutex_lock(&a->lock);
	n = a->n;
	if (n == 0) {
		pthread_mutex_unlock(&a->lock);
		return;
	}
	v = malloc(n * sizeof(*v));
	if (!v) {
		pthread_mutex_unlock(&a->lock);
		return;
	}
	memcpy(v, a->q, n * sizeof(*v));
	a->n = 0;
	pthread_mutex_unlock(&a->lock);

	/* Records go in order of kind, so a start is written before its end
	 * and a connect before its result within one batch. */
	if (login_acct_write(a, v, n) < 0) {
		pthread_mutex_lock(&a->lock);
		size_t room = a->cap - a->n;
		size_t keep = n < room ? n : room;
		/* Older records first: they were queued before the new ones. */
		memmove(a->q + keep, a->q, a->n * sizeof(*v));
		memcpy(a->q, v, keep * sizeof(*v));
		a->n += keep;
		pthread_mutex_unlock(&a->lock);
		if (keep < n)
			met_add(a->env->m.acct_dropped, (double)(n - keep));
	}
	free(v);
}

/* ---------------------------------------------------------------- relay bytes */

static const char login_sql_relay[] =
	"INSERT INTO connections (cid, mode, first_mode, relay_id, relay_mode, bytes_ab, "
	"bytes_ba, relay_sessions, relay_ended_at, relay_end_reason, created_at) SELECT cid, "
	"'relay', 'relay', max(relay), max(rmode), sum(ab), sum(ba), count(*), "
	"to_timestamp(max(ended) / 1000.0), max(reason), to_timestamp(min(started) / 1000.0) "
	"FROM json_to_recordset($1::json) AS t(cid text, relay text, rmode text, ab bigint, ba "
	"bigint, started bigint, ended bigint, reason text) WHERE cid ~ '^[0-9a-f]{32}$' GROUP "
	"BY cid ON CONFLICT (cid) DO UPDATE SET relay_id = EXCLUDED.relay_id, relay_mode = "
	"EXCLUDED.relay_mode, bytes_ab = connections.bytes_ab + EXCLUDED.bytes_ab, bytes_ba = "
	"connections.bytes_ba + EXCLUDED.bytes_ba, relay_sessions = connections.relay_sessions "
	"+ EXCLUDED.relay_sessions, relay_ended_at = EXCLUDED.relay_ended_at, relay_end_reason = "
	"EXCLUDED.relay_end_reason";

static long long
login_num(const char *s)
{
	if (!s)
		return 0;
	char *end;
	long long v = strtoll(s, &end, 10);
	return *end || v < 0 ? 0 : v;
}

/* One XREADGROUP of at most 1000 entries, merged and acknowledged. Returns
 * the number of entries read (0: nothing), or -1 on an error. */
static int
login_acct_relay(struct login_acct *a, struct login_stream *st)
{
	struct login_env *env = a->env;
	struct rds *rds = env->rds;
	char key[128];
	int err = 0;
	redisReply *r;

	snprintf(key, sizeof(key), "%sacct:{%s}", rds_prefix(rds), st->id);
	if (!st->group_ready) {
		r = rds_command(rds, &err, "XGROUP CREATE %s login 0 MKSTREAM", key);
		if (!r)
			return -1;
		bool ok = r->type != REDIS_REPLY_ERROR || strncmp(r->str, "BUSYGROUP", 9) == 0;
		freeReplyObject(r);
		if (!ok)
			return -1;
		st->group_ready = true;
		snprintf(st->next, sizeof(st->next), "0");
	}
	r = rds_command(rds, &err, "XREADGROUP GROUP login %s COUNT 1000 STREAMS %s %s",
			env->instance, key, st->next);
	if (!r)
		return -1;
	if (r->type == REDIS_REPLY_ERROR) {
		/* NOGROUP: the stream was deleted (or Redis restarted). */
		st->group_ready = false;
		freeReplyObject(r);
		return -1;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements < 2) {
		freeReplyObject(r);
		return 0;
	}
	redisReply *entries = r->element[0]->element[1];
	if (entries->type != REDIS_REPLY_ARRAY || entries->elements == 0) {
		freeReplyObject(r);
		if (strcmp(st->next, "0") == 0)
			snprintf(st->next, sizeof(st->next), ">");
		return 0;
	}
	json_t *rows = json_array();
	size_t n = entries->elements;
	const char **ack = calloc(n + 3, sizeof(*ack));
	if (!rows || !ack) {
		json_decref(rows);
		free(ack);
		freeReplyObject(r);
		return -1;
	}
	ack[0] = "XACK";
	ack[1] = key;
	ack[2] = "login";
	for (size_t i = 0; i < n; i++) {
		redisReply *e = entries->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
		    e->element[0]->type != REDIS_REPLY_STRING)
			continue;
		ack[3 + i] = e->element[0]->str;
		redisReply *f = e->element[1];
		if (f->type != REDIS_REPLY_ARRAY)
			continue;
		const char *cid = rds_hash_field(f, "cid"), *relay = rds_hash_field(f, "relay");
		const char *mode = rds_hash_field(f, "mode"), *reason = rds_hash_field(f, "reason");
		if (!cid || !login_cid_ok(cid))
			continue; /* acknowledged, not merged */
		json_array_append_new(
			rows,
			json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s}", "cid", cid, "relay",
				  relay ? relay : "", "rmode", mode ? mode : "", "ab",
				  (json_int_t)login_num(rds_hash_field(f, "bytes_ab")), "ba",
				  (json_int_t)login_num(rds_hash_field(f, "bytes_ba")), "started",
				  (json_int_t)login_num(rds_hash_field(f, "started_ms")), "ended",
				  (json_int_t)login_num(rds_hash_field(f, "ended_ms")), "reason",
				  reason ? reason : ""));
	}
	int ret = (int)n;
	PGconn *c = pg_acquire(env->pg);
	if (!c || login_acct_exec(a, c, "relay bytes", login_sql_relay, rows) < 0) {
		/* Not acknowledged: read again from our pending entries. */
		snprintf(st->next, sizeof(st->next), "0");
		ret = -1;
	} else {
		size_t nack = 3;
		for (size_t i = 0; i < n; i++)
			if (ack[3 + i])
				ack[nack++] = ack[3 + i];
		redisReply *x = nack > 3 ? rds_command_argv(rds, &err, (int)nack, ack, NULL) : NULL;
		if (x)
			freeReplyObject(x);
		met_add(env->m.relay_acct, (double)n);
	}
	if (c)
		pg_release(env->pg, c);
	json_decref(rows);
	free(ack);
	freeReplyObject(r);
	return ret;
}

static void
login_stream_add(struct login_acct *a, const char *id, long long now)
{
	for (size_t i = 0; i < a->nstreams; i++)
		if (strcmp(a->streams[i].id, id) == 0) {
			a->streams[i].seen_ms = now;
			return;
		}
	if (a->nstreams == LOGIN_STREAMS_MAX) {
		/* Full: forget the one gone longest. */
		size_t old = 1;
		for (size_t i = 1; i < a->nstreams; i++)
			if (a->streams[i].seen_ms < a->streams[old].seen_ms)
				old = i;
		a->streams[old] = a->streams[--a->nstreams];
	}
	struct login_stream *st = &a->streams[a->nstreams++];
	memset(st, 0, sizeof(*st));
	snprintf(st->id, sizeof(st->id), "%s", id);
	st->seen_ms = now;
}

/* The relays in the registry now; each one's stream is read from here on. */
static void
login_acct_streams(struct login_acct *a)
{
	long long now = dmn_now_ms();
	char key[128];
	int err = 0;

	login_stream_add(a, "relay", now + (1LL << 40)); /* the shared stream, always */
	snprintf(key, sizeof(key), "%srelays", rds_prefix(a->env->rds));
	redisReply *r =
		rds_command(a->env->rds, &err, "ZRANGE %s 0 %d", key, LOGIN_STREAMS_MAX - 2);
	if (r && r->type == REDIS_REPLY_ARRAY)
		for (size_t i = 0; i < r->elements; i++) {
			const redisReply *e = r->element[i];
			if (e->type == REDIS_REPLY_STRING && e->len > 0 && e->len < 64 &&
			    !strpbrk(e->str, "{} "))
				login_stream_add(a, e->str, now);
		}
	if (r)
		freeReplyObject(r);
	for (size_t i = 0; i < a->nstreams;)
		if (now - a->streams[i].seen_ms > 3600 * 1000LL)
			a->streams[i] = a->streams[--a->nstreams];
		else
			i++;
}

/* ---------------------------------------------------------------- reaper */

/* Sessions open in PostgreSQL but gone from Redis expired (or the account
 * was disabled): they are closed at the last heartbeat seen. Live ones get
 * their last heartbeat copied, so an expiry is dated within reap_s. */
static void
login_acct_reap(struct login_acct *a)
{
	struct login_env *env = a->env;
	char err[256];
	PGconn *c = pg_acquire(env->pg);
	if (!c)
		return;
	PGresult *res = pg_query(c,
				 "SELECT sid, account FROM login_sessions WHERE logout_at IS NULL "
				 "AND login_at < now() - interval '2 seconds' ORDER BY login_at "
				 "LIMIT 20000",
				 0, NULL, err, sizeof(err), NULL);
	if (!res) {
		log_warn("accounting: listing open sessions: %s", err);
		pg_release(env->pg, c);
		return;
	}
	int n = PQntuples(res);
	redisReply **rep = n ? calloc((size_t)n, sizeof(*rep)) : NULL;
	bool ok = n > 0 && rep;
	if (ok) {
		struct rds_pipe *p = rds_pipe_begin(env->rds);
		for (int i = 0; p && i < n; i++) {
			char key[128];
			snprintf(key, sizeof(key), "%ssess:{%s}", rds_prefix(env->rds),
				 PQgetvalue(res, i, 1));
			rds_pipe_add(p, "HMGET %s sid seen", key);
		}
		ok = p && rds_pipe_exec(p, rep, (size_t)n) == 0;
		if (p)
			rds_pipe_end(p);
	}
	if (ok) {
		json_t *live = json_array(), *gone = json_array();
		for (int i = 0; i < n; i++) {
			const char *sid = PQgetvalue(res, i, 0);
			redisReply *x = rep[i];
			bool same = x && x->type == REDIS_REPLY_ARRAY && x->elements == 2 &&
				    x->element[0]->type == REDIS_REPLY_STRING &&
				    strcmp(x->element[0]->str, sid) == 0;
			if (same && x->element[1]->type == REDIS_REPLY_STRING)
				json_array_append_new(
					live, json_pack("{s:s, s:I}", "sid", sid, "seen",
							(json_int_t)login_num(x->element[1]->str)));
			else if (!same && x && x->type == REDIS_REPLY_ARRAY)
				json_array_append_new(gone, json_pack("{s:s}", "sid", sid));
		}
		login_acct_exec(a, c, "last heartbeats",
				"UPDATE login_sessions s SET last_seen = to_timestamp(t.seen / "
				"1000.0) FROM json_to_recordset($1::json) AS t(sid text, seen "
				"bigint) WHERE s.sid = t.sid",
				live);
		login_acct_exec(a, c, "expired sessions",
				"UPDATE login_sessions s SET logout_at = COALESCE(s.last_seen, "
				"s.login_at), end_reason = 'expired' FROM "
				"json_to_recordset($1::json) AS t(sid text) WHERE s.sid = t.sid "
				"AND s.logout_at IS NULL",
				gone);
		json_decref(live);
		json_decref(gone);
	}
	for (int i = 0; rep && i < n; i++)
		if (rep[i])
			freeReplyObject(rep[i]);
	free(rep);
	PQclear(res);

	/* Sessions online by NAT class, for /metrics and /status. */
	res = pg_query(c,
		       "SELECT nat, count(*) FROM login_sessions WHERE logout_at IS NULL GROUP BY "
		       "nat",
		       0, NULL, err, sizeof(err), NULL);
	if (res) {
		double outer = 0, inner = 0;
		for (int i = 0; i < PQntuples(res); i++) {
			double v = strtod(PQgetvalue(res, i, 1), NULL);
			if (strcmp(PQgetvalue(res, i, 0), "outer") == 0)
				outer = v;
			else
				inner += v;
		}
		met_set(met_child(env->m.online, "outer"), outer);
		met_set(met_child(env->m.online, "inner"), inner);
		PQclear(res);
	}
	pg_release(env->pg, c);
}

static void *
login_acct_main(void *arg)
{
	struct login_acct *a = arg;
	long long next_reap = dmn_now_ms() + 1000;

	pthread_mutex_lock(&a->lock);
	while (!a->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += a->flush_ms / 1000;
		ts.tv_nsec += (long)(a->flush_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&a->cond, &a->lock, &ts);
		if (a->stopping)
			break;
		pthread_mutex_unlock(&a->lock);
		login_acct_flush(a);
		/* Relay bytes after the connects they belong to are written. */
		login_acct_streams(a);
		for (size_t k = 0; k < a->nstreams; k++)
			for (int i = 0; i < 10 && login_acct_relay(a, &a->streams[k]) > 0; i++)
				;
		if (dmn_now_ms() >= next_reap) {
			login_acct_reap(a);
			next_reap = dmn_now_ms() + (long long)a->reap_s * 1000;
		}
		pthread_mutex_lock(&a->lock);
	}
	pthread_mutex_unlock(&a->lock);
	login_acct_flush(a); /* what is left, before exit */
	rds_thread_done(a->env->rds);
	return NULL;
}

struct login_acct *
login_acct_start(struct login_env *env)
{
	struct login_acct *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->env = env;
	a->cap = (size_t)cfg_int(env->cfg0, "login", "acct_queue");
	a->flush_ms = (int)cfg_int(env->cfg0, "login", "acct_flush_ms");
	a->reap_s = (int)cfg_int(env->cfg0, "login", "reap_s");
	a->q = calloc(a->cap, sizeof(*a->q));
	if (!a->q) {
		free(a);
		return NULL;
	}
	pthread_mutex_init(&a->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->cond, &ca);
	pthread_condattr_destroy(&ca);
	env->acct = a;
	if (pthread_create(&a->thread, NULL, login_acct_main, a) != 0) {
		env->acct = NULL;
		pthread_cond_destroy(&a->cond);
		pthread_mutex_destroy(&a->lock);
		free(a->q);
		free(a);
		return NULL;
	}
	return a;
}

void
login_acct_stop(struct login_acct *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->stopping = true;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->thread, NULL);
	a->env->acct = NULL;
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	free(a->q);
	free(a);
}
