// SPDX-License-Identifier: MIT
/* login-server: heartbeat long-polls and the pub/sub listener that wakes them. */
#include <errno.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dmn.h"
#include "log.h"
#include "login.h"

/*
 * A heartbeat with wait=N that finds nothing parks here, holding no thread:
 * its HTTP connection is suspended and a timer on the loop thread answers it
 * when N seconds pass. A connect request for the user wakes it at once:
 * from this instance directly (login_push), from any instance through the
 * Redis channel PREFIX "push", which a listener thread follows on its own
 * connection. Everything below but the listener runs on the loop thread.
 *
 * A notification may overtake the poll reply it races with (the two come
 * on different connections). The last notifications are kept in a ring
 * with sequence numbers; a request parks only if none for its user came
 * after the sequence number read before its poll was sent, otherwise it
 * polls again at once.
 */

#define LOGIN_BUCKETS 4096
#define LOGIN_RING    1024

struct login_waiter {
	struct login_waiter *next;
	struct login_env *env;
	struct http_req *req;
	struct event *timer;
	char user[LOGIN_USER_MAX + 1];
	char th[LOGIN_TH_HEX];
	long long deadline_ms;
	unsigned long long seq0;
	int hb_s;
	bool parked;
};

struct login_waiters {
	struct login_env *env;
	struct login_waiter *bucket[LOGIN_BUCKETS];
	size_t count, max;
	atomic_ullong seq;
	struct {
		unsigned long long seq;
		char user[LOGIN_USER_MAX + 1];
	} ring[LOGIN_RING];
	/* listener */
	pthread_t thread;
	bool started;
	atomic_bool stop;
	bool closed;
	bool close_called;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool close_done;
};

static unsigned
login_bucket(const char *user)
{
	unsigned h = 2166136261u;
	for (; *user; user++)
		h = (h ^ (unsigned char)*user) * 16777619u;
	return h % LOGIN_BUCKETS;
}

static void
login_unlink(struct login_waiters *ws, struct login_waiter *w)
{
	struct login_waiter **pp = &ws->bucket[login_bucket(w->user)];
	for (; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			ws->count--;
			break;
		}
	w->parked = false;
	if (w->timer)
		event_del(w->timer);
}

static void
login_waiter_free(struct login_waiter *w)
{
	if (w->timer)
		event_free(w->timer);
	free(w);
}

static void
login_waiter_answer(struct login_waiter *w, redisReply *rep, int err)
{
	login_hb_answer(w->env, w->req, rep, err, w->hb_s);
	http_resume(w->req);
	login_waiter_free(w);
}

static void login_waiter_insert(struct login_waiter *w);

static void
login_repoll_cb(redisReply *rep, int err, void *arg)
{
	struct login_waiter *w = arg;
	struct login_waiters *ws = w->env->waiters;
	bool alive = !err && rep && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
		     rep->element[0]->type == REDIS_REPLY_INTEGER && rep->element[0]->integer == 1;
	if (!alive || login_hb_has_requests(rep) || dmn_now_ms() >= w->deadline_ms || ws->closed) {
		login_waiter_answer(w, rep, err);
		return;
	}
	/* Somebody else took the request (another long-poll of the same
	 * session): wait on. */
	login_waiter_insert(w);
}

static void
login_repoll(struct login_waiter *w)
{
	w->seq0 = atomic_load(&w->env->waiters->seq);
	if (login_hb_submit(w->env, w->user, w->th, login_repoll_cb, w) < 0)
		login_waiter_answer(w, NULL, -EAGAIN);
}

static void
login_waiter_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct login_waiter *w = arg;
	(void)fd;
	(void)what;
	login_unlink(w->env->waiters, w);
	/* Nothing came: one last poll refreshes the session (the wait may
	 * have taken most of its TTL) and takes anything that raced in. */
	login_repoll(w);
}

static bool
login_ring_has(struct login_waiters *ws, const char *user, unsigned long long since)
{
	unsigned long long now = atomic_load(&ws->seq);
	if (now - since >= LOGIN_RING)
		return true; /* cannot tell: poll again to be safe */
	for (unsigned long long s = since + 1; s <= now; s++)
		if (ws->ring[s % LOGIN_RING].seq == s &&
		    (strcmp(ws->ring[s % LOGIN_RING].user, user) == 0 ||
		     strcmp(ws->ring[s % LOGIN_RING].user, "*") == 0))
			return true;
	return false;
}

static void
login_waiter_insert(struct login_waiter *w)
{
	struct login_waiters *ws = w->env->waiters;
	if (login_ring_has(ws, w->user, w->seq0)) {
		login_repoll(w);
		return;
	}
	long long left = w->deadline_ms - dmn_now_ms();
	if (left <= 0 || ws->closed) {
		login_waiter_answer(w, NULL, 0);
		return;
	}
	if (!w->timer)
		w->timer = evtimer_new(evl_base(w->env->loop), login_waiter_timeout, w);
	struct timeval tv = { .tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000 };
	if (!w->timer || evtimer_add(w->timer, &tv) < 0) {
		login_waiter_answer(w, NULL, 0);
		return;
	}
	unsigned b = login_bucket(w->user);
	w->next = ws->bucket[b];
	ws->bucket[b] = w;
	w->parked = true;
	ws->count++;
}

void
login_waiters_park(struct login_env *env, struct http_req *req, const char *user, const char *th,
		   int wait_s, unsigned long long seq0, int hb_s)
{
	struct login_waiters *ws = env->waiters;
	struct login_waiter *w = NULL;

	if (ws->count < ws->max && !ws->closed)
		w = calloc(1, sizeof(*w));
	if (!w) {
		/* Over the bound (or shutting down): answer as a plain heartbeat. */
		login_hb_answer(env, req, NULL, 0, hb_s);
		http_resume(req);
		return;
	}
	w->env = env;
	w->req = req;
	snprintf(w->user, sizeof(w->user), "%s", user);
	snprintf(w->th, sizeof(w->th), "%s", th);
	w->deadline_ms = dmn_now_ms() + (long long)wait_s * 1000;
	w->seq0 = seq0;
	w->hb_s = hb_s;
	login_waiter_insert(w);
}

struct login_note {
	struct login_env *env;
	char user[LOGIN_USER_MAX + 1];
};

/* Loop thread. */
static void
login_note_run(void *arg)
{
	struct login_note *n = arg;
	struct login_waiters *ws = n->env->waiters;
	unsigned long long s = atomic_load(&ws->seq) + 1;
	ws->ring[s % LOGIN_RING].seq = s;
	snprintf(ws->ring[s % LOGIN_RING].user, sizeof(ws->ring[0].user), "%s", n->user);
	atomic_store(&ws->seq, s);

	/* "*" (the listener came back after an outage) wakes everybody. */
	bool all = strcmp(n->user, "*") == 0;
	struct login_waiter *wake = NULL;
	for (unsigned b = all ? 0 : login_bucket(n->user); b < LOGIN_BUCKETS; b++) {
		struct login_waiter **pp = &ws->bucket[b];
		while (*pp) {
			struct login_waiter *w = *pp;
			if (all || strcmp(w->user, n->user) == 0) {
				*pp = w->next;
				ws->count--;
				w->parked = false;
				event_del(w->timer);
				w->next = wake;
				wake = w;
			} else
				pp = &w->next;
		}
		if (!all)
			break;
	}
	while (wake) {
		struct login_waiter *w = wake;
		wake = w->next;
		login_repoll(w);
	}
	free(n);
}

void
login_waiters_notify(struct login_env *env, const char *user)
{
	struct login_note *n = calloc(1, sizeof(*n));
	if (!n)
		return;
	n->env = env;
	snprintf(n->user, sizeof(n->user), "%s", user);
	if (evl_call(env->loop, login_note_run, n) < 0)
		free(n);
}

unsigned long long
login_waiters_seq(struct login_env *env)
{
	return atomic_load(&env->waiters->seq);
}

size_t
login_waiters_count(struct login_env *env)
{
	return env->waiters ? env->waiters->count : 0;
}

/* ---------------------------------------------------------------- listener */

static redisContext *
login_sub_connect(struct login_waiters *ws)
{
	const struct rds_opts *o = &ws->env->ro;
	struct timeval tv = { .tv_sec = o->connect_timeout_ms / 1000,
			      .tv_usec = (o->connect_timeout_ms % 1000) * 1000 };
	char chan[96];
	redisContext *c = o->host[0] == '/' ? redisConnectUnixWithTimeout(o->host, tv)
					    : redisConnectWithTimeout(o->host, o->port, tv);
	if (!c || c->err)
		goto fail;
	redisReply *r;
	if (o->password && o->password[0]) {
		r = redisCommand(c, "AUTH %s", o->password);
		bool bad = !r || r->type == REDIS_REPLY_ERROR;
		if (r)
			freeReplyObject(r);
		if (bad)
			goto fail;
	}
	snprintf(chan, sizeof(chan), "%spush", o->prefix ? o->prefix : "");
	r = redisCommand(c, "SUBSCRIBE %s", chan);
	bool bad = !r || r->type != REDIS_REPLY_ARRAY;
	if (r)
		freeReplyObject(r);
	if (bad)
		goto fail;
	return c;
fail:
	if (c)
		redisFree(c);
	return NULL;
}

static void
login_sub_message(struct login_waiters *ws, redisReply *r)
{
	if (r->type != REDIS_REPLY_ARRAY)
		return;
	if (r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING ||
	    strcmp(r->element[0]->str, "message") != 0 || r->element[2]->type != REDIS_REPLY_STRING)
		return;
	const char *user = r->element[2]->str;
	if (login_user_ok(user, r->element[2]->len))
		login_waiters_notify(ws->env, user);
}

static void *
login_sub_main(void *arg)
{
	struct login_waiters *ws = arg;
	redisContext *c = NULL;
	bool logged = false;

	while (!atomic_load(&ws->stop)) {
		if (!c) {
			c = login_sub_connect(ws);
			if (!c) {
				if (!logged)
					log_warn("push channel: cannot subscribe (Redis down?); "
						 "long-polls on this instance wake only for "
						 "local connects until it is back");
				logged = true;
				for (int i = 0; i < 10 && !atomic_load(&ws->stop); i++)
					usleep(100000);
				continue;
			}
			if (logged)
				log_notice("push channel: subscribed again");
			logged = false;
			/* Anything pushed while we were away: wake every
			 * waiter so each polls once. */
			login_waiters_notify(ws->env, "*");
		}
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int n = poll(&p, 1, 200);
		if (n <= 0)
			continue;
		if (redisBufferRead(c) != REDIS_OK) {
			redisFree(c);
			c = NULL;
			continue;
		}
		void *reply;
		while (redisGetReplyFromReader(c, &reply) == REDIS_OK && reply) {
			login_sub_message(ws, reply);
			freeReplyObject(reply);
		}
		if (c->err) {
			redisFree(c);
			c = NULL;
		}
	}
	if (c)
		redisFree(c);
	return NULL;
}

struct login_waiters *
login_waiters_new(struct login_env *env)
{
	struct login_waiters *ws = calloc(1, sizeof(*ws));
	if (!ws)
		return NULL;
	ws->env = env;
	ws->max = (size_t)cfg_int(env->cfg0, "login", "max_waiters");
	pthread_mutex_init(&ws->lock, NULL);
	pthread_cond_init(&ws->cond, NULL);
	env->waiters = ws;
	if (pthread_create(&ws->thread, NULL, login_sub_main, ws) != 0) {
		env->waiters = NULL;
		pthread_cond_destroy(&ws->cond);
		pthread_mutex_destroy(&ws->lock);
		free(ws);
		return NULL;
	}
	ws->started = true;
	return ws;
}

/* Loop thread: answers every parked waiter. */
static void
login_close_run(void *arg)
{
	struct login_waiters *ws = arg;
	ws->closed = true;
	for (size_t b = 0; b < LOGIN_BUCKETS; b++) {
		while (ws->bucket[b]) {
			struct login_waiter *w = ws->bucket[b];
			ws->bucket[b] = w->next;
			ws->count--;
			event_del(w->timer);
			login_waiter_answer(w, NULL, 0);
		}
	}
	pthread_mutex_lock(&ws->lock);
	ws->close_done = true;
	pthread_cond_broadcast(&ws->cond);
	pthread_mutex_unlock(&ws->lock);
}

void
login_waiters_close(struct login_waiters *ws)
{
	if (!ws || ws->close_called)
		return;
	ws->close_called = true;
	atomic_store(&ws->stop, true);
	if (ws->started) {
		pthread_join(ws->thread, NULL);
		ws->started = false;
	}
	if (evl_call(ws->env->loop, login_close_run, ws) == 0) {
		pthread_mutex_lock(&ws->lock);
		while (!ws->close_done)
			pthread_cond_wait(&ws->cond, &ws->lock);
		pthread_mutex_unlock(&ws->lock);
	}
}

void
login_waiters_free(struct login_waiters *ws)
{
	if (!ws)
		return;
	login_waiters_close(ws);
	pthread_cond_destroy(&ws->cond);
	pthread_mutex_destroy(&ws->lock);
	free(ws);
}
