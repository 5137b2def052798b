// SPDX-License-Identifier: MIT
/* Asynchronous Redis on an event loop: many threads, one pipelined connection. */
#include "rds_async.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmn.h"
#include "log.h"
#include "sha1.h"

#define RDS_ASYNC_QUEUE_MAX 65536 /* commands waiting for the loop thread */

/* One command: queued by any thread, then in flight on the connection. */
struct rds_async_cmd {
	struct rds_async_cmd *next;
	struct rds_async *a;
	rds_async_cb cb;
	void *arg;
	char *buf; /* RESP text, from redisFormatCommandArgv */
	int len;
	long long sent_ms;
};

struct rds_async {
	struct evl *loop;
	char *host, *password, *prefix;
	int port, db, connect_timeout_ms, command_timeout_ms, max_backoff_ms;

	/* submission queue, any thread */
	pthread_mutex_t lock;
	struct rds_async_cmd *qhead, *qtail;
	size_t qlen;
	bool closing;
	bool closed; /* rds_async_close ran (caller's thread only) */
	struct event *wake;

	/* loop thread only */
	redisAsyncContext *ac;
	bool connected;
	long long connect_started_ms;
	struct rds_async_cmd *fhead, *ftail; /* in flight, in send order */
	int fail_err; /* error given to callbacks while the connection is torn down */
	struct event *tick;
	int backoff_ms;
	long long last_error_log_ms;
	unsigned long long errors_unlogged;

	/* any thread */
	atomic_llong down_until_ms;
	atomic_ullong commands, errors, connects;
	atomic_bool up;
};

static void rds_async_fail_conn(struct rds_async *a, int err);

/* At most one log line per 10 s about Redis error replies, with a count of
 * the ones not logged: a flood of READONLY must not flood the journal. */
static void
rds_async_log_error(struct rds_async *a, const char *msg)
{
	long long now = dmn_now_ms();
	a->errors_unlogged++;
	if (now - a->last_error_log_ms < 10000)
		return;
	log_warn("Redis %s replied with an error (%llu since the last report): %.200s", a->host,
		 a->errors_unlogged, msg ? msg : "");
	a->errors_unlogged = 0;
	a->last_error_log_ms = now;
}

static void
rds_async_cmd_free(struct rds_async_cmd *c)
{
	if (!c)
		return;
	redisFreeCommand(c->buf);
	free(c);
}

/* Runs a command's callback and frees it; loop thread. */
static void
rds_async_finish(struct rds_async_cmd *c, redisReply *reply, int err)
{
	if (err)
		atomic_fetch_add(&c->a->errors, 1);
	c->cb(reply, err, c->arg);
	rds_async_cmd_free(c);
}

static void
rds_async_mark_down(struct rds_async *a)
{
	int b = a->backoff_ms ? a->backoff_ms * 2 : a->connect_timeout_ms;
	if (b > a->max_backoff_ms)
		b = a->max_backoff_ms;
	a->backoff_ms = b;
	atomic_store(&a->down_until_ms, dmn_now_ms() + b);
	atomic_store(&a->up, false);
}

/* hiredis calls this for each reply in order, and with NULL for every
 * command still pending when the connection goes away. */
static void
rds_async_on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct rds_async_cmd *c = privdata;
	struct rds_async *a = c->a;
	(void)ac;

	/* Replies come in send order, so c is the head of the in-flight list. */
	if (a->fhead == c) {
		a->fhead = c->next;
		if (!a->fhead)
			a->ftail = NULL;
	}
	if (r) {
		redisReply *reply = r;
		bool role_error = false;
		if (reply->type == REDIS_REPLY_ERROR) {
			/* Error replies are counted as errors: an operator must see
			 * READONLY or OOM in the metrics, not only in 503s. */
			atomic_fetch_add(&a->errors, 1);
			rds_async_log_error(a, reply->str);
			/* A replica after fail-over, or a server still loading: this
			 * connection cannot serve writes; reconnect (DNS or a proxy
			 * may lead to the new primary). */
			role_error = strncmp(reply->str, "READONLY", 8) == 0 ||
				     strncmp(reply->str, "LOADING", 7) == 0 ||
				     strncmp(reply->str, "MASTERDOWN", 10) == 0;
		} else {
			/* A real reply, not just a TCP connect, proves Redis works:
			 * only now does the back-off start over. */
			a->backoff_ms = 0;
		}
		rds_async_finish(c, r, 0);
		if (role_error)
			rds_async_fail_conn(a, -EIO);
	} else
		rds_async_finish(c, NULL, a->fail_err ? a->fail_err : -EIO);
}

/* AUTH and SELECT replies: an error means the connection is unusable. */
static void
rds_async_on_setup(redisAsyncContext *ac, void *r, void *privdata)
{
	struct rds_async *a = privdata;
	redisReply *reply = r;
	(void)ac;
	if (reply && reply->type == REDIS_REPLY_ERROR && a->ac)
		rds_async_fail_conn(a, -EIO);
}

static void
rds_async_on_connect(const redisAsyncContext *ac, int status)
{
	struct rds_async *a = ac->data;
	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback. */
		a->fail_err = -EIO;
		a->ac = NULL;
		a->connected = false;
		rds_async_mark_down(a);
		return;
	}
	a->connected = true;
	atomic_fetch_add(&a->connects, 1);
	atomic_store(&a->up, true);
}

static void
rds_async_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rds_async *a = ac->data;
	(void)status;
	/* When we dropped it ourselves (rds_async_fail_conn) a->ac is already
	 * NULL and the back-off already lengthened. */
	if (a->ac != ac)
		return;
	a->ac = NULL; /* hiredis frees it after this callback */
	a->connected = false;
	/* Redis closed a working connection (its idle timeout, CLIENT KILL, a
	 * proxy): reconnect on the next command rather than refusing commands
	 * for a back-off; if Redis is really gone that connect fails and the
	 * back-off starts then. */
	if (!a->closing) {
		atomic_store(&a->down_until_ms, 0);
		atomic_store(&a->up, false);
	}
}

/* Drops the connection: every command in flight fails with err. */
static void
rds_async_fail_conn(struct rds_async *a, int err)
{
	redisAsyncContext *ac = a->ac;
	if (!ac)
		return;
	a->fail_err = err;
	a->ac = NULL;
	a->connected = false;
	rds_async_mark_down(a);
	redisAsyncFree(ac); /* runs the callbacks with NULL replies */
}

static int
rds_async_connect(struct rds_async *a)
{
	redisAsyncContext *ac = a->host[0] == '/' ? redisAsyncConnectUnix(a->host)
						  : redisAsyncConnect(a->host, a->port);
	if (!ac)
		return -ENOMEM;
	if (ac->err) {
		redisAsyncFree(ac);
		rds_async_mark_down(a);
		return -EAGAIN;
	}
	ac->data = a;
	if (redisLibeventAttach(ac, evl_base(a->loop)) != REDIS_OK) {
		redisAsyncFree(ac);
		return -ENOMEM;
	}
	redisAsyncSetConnectCallback(ac, rds_async_on_connect);
	redisAsyncSetDisconnectCallback(ac, rds_async_on_disconnect);
	a->ac = ac;
	a->fail_err = 0;
	a->connect_started_ms = dmn_now_ms();
	if (a->password[0])
		redisAsyncCommand(ac, rds_async_on_setup, a, "AUTH %s", a->password);
	if (a->db)
		redisAsyncCommand(ac, rds_async_on_setup, a, "SELECT %d", a->db);
	return 0;
}

/* Loop thread: sends everything queued. hiredis appends each command to
 * its output buffer and writes them all when the socket is writable. */
static void
rds_async_on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct rds_async *a = arg;
	struct rds_async_cmd *list, *c;
	(void)fd;
	(void)what;

	pthread_mutex_lock(&a->lock);
	list = a->qhead;
	a->qhead = a->qtail = NULL;
	a->qlen = 0;
	pthread_mutex_unlock(&a->lock);

	while ((c = list)) {
		list = c->next;
		c->next = NULL;
		if (!a->ac && dmn_now_ms() >= atomic_load(&a->down_until_ms))
			rds_async_connect(a);
		if (!a->ac) {
			rds_async_finish(c, NULL, -EAGAIN);
			continue;
		}
		c->sent_ms = dmn_now_ms();
		if (redisAsyncFormattedCommand(a->ac, rds_async_on_reply, c, c->buf,
					       (size_t)c->len) != REDIS_OK) {
			rds_async_finish(c, NULL, -EIO);
			continue;
		}
		atomic_fetch_add(&a->commands, 1);
		if (a->ftail)
			a->ftail->next = c;
		else
			a->fhead = c;
		a->ftail = c;
	}
}

/* Loop thread, a few times per command timeout: fails a connection whose
 * oldest command (or whose connect) has waited too long. hiredis has no
 * timeouts of its own on asynchronous contexts. */
static void
rds_async_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct rds_async *a = arg;
	long long now = dmn_now_ms();
	(void)fd;
	(void)what;

	if (a->ac && !a->connected && now - a->connect_started_ms > a->connect_timeout_ms)
		rds_async_fail_conn(a, -ETIMEDOUT);
	else if (a->ac && a->fhead && now - a->fhead->sent_ms > a->command_timeout_ms)
		rds_async_fail_conn(a, -ETIMEDOUT);
}

struct rds_async_sync {
	struct rds_async *a;
	bool setup; /* true: create events; false: tear down */
	int ret;
	bool done;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static void
rds_async_on_loop(void *arg)
{
	struct rds_async_sync *s = arg;
	struct rds_async *a = s->a;

	if (s->setup) {
		int ms = a->command_timeout_ms < a->connect_timeout_ms ? a->command_timeout_ms
								       : a->connect_timeout_ms;
		struct timeval tv = { .tv_sec = 0, .tv_usec = (ms / 4 > 0 ? ms / 4 : 1) * 1000 };
		if (tv.tv_usec >= 1000000)
			tv = (struct timeval){ .tv_sec = 0, .tv_usec = 250000 };
		a->wake = event_new(evl_base(a->loop), -1, 0, rds_async_on_wake, a);
		a->tick = event_new(evl_base(a->loop), -1, EV_PERSIST, rds_async_on_tick, a);
		s->ret = a->wake && a->tick && event_add(a->tick, &tv) == 0 ? 0 : -ENOMEM;
	} else {
		struct rds_async_cmd *list, *c;
		pthread_mutex_lock(&a->lock);
		a->closing = true;
		list = a->qhead;
		a->qhead = a->qtail = NULL;
		pthread_mutex_unlock(&a->lock);
		while ((c = list)) {
			list = c->next;
			rds_async_finish(c, NULL, -ECANCELED);
		}
		rds_async_fail_conn(a, -ECANCELED);
		if (a->wake)
			event_free(a->wake);
		if (a->tick)
			event_free(a->tick);
		a->wake = a->tick = NULL;
	}
	pthread_mutex_lock(&s->lock);
	s->done = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static int
rds_async_run_on_loop(struct rds_async *a, bool setup)
{
	struct rds_async_sync s = { .a = a, .setup = setup, .ret = -ECANCELED };
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);
	if (evl_call(a->loop, rds_async_on_loop, &s) == 0) {
		pthread_mutex_lock(&s.lock);
		while (!s.done)
			pthread_cond_wait(&s.cond, &s.lock);
		pthread_mutex_unlock(&s.lock);
	}
	pthread_cond_destroy(&s.cond);
	pthread_mutex_destroy(&s.lock);
	return s.ret;
}

/* hiredis resolves a host name synchronously inside redisAsyncConnect, on
 * the loop thread, where a slow DNS server would stall every command and
 * the timeouts with them. Resolve once here instead (start-up may block);
 * a name that does not resolve is kept as is and fails at connect. */
static char *
rds_async_resolve(const char *host)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	char buf[INET6_ADDRSTRLEN];

	if (host[0] == '/' || getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
		return strdup(host);
	const void *ip = res->ai_family == AF_INET6
				 ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
				 : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
	const char *out = inet_ntop(res->ai_family, ip, buf, sizeof(buf));
	freeaddrinfo(res);
	return strdup(out ? out : host);
}

struct rds_async *
rds_async_new(struct evl *loop, const struct rds_opts *o)
{
	struct rds_async *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->loop = loop;
	a->host = rds_async_resolve(o->host ? o->host : "127.0.0.1");
	a->password = strdup(o->password ? o->password : "");
	a->prefix = strdup(o->prefix ? o->prefix : "");
	a->port = o->port;
	a->db = o->db;
	a->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 200;
	a->command_timeout_ms = o->command_timeout_ms > 0 ? o->command_timeout_ms : 500;
	a->max_backoff_ms = o->max_backoff_ms > 0 ? o->max_backoff_ms : 2000;
	pthread_mutex_init(&a->lock, NULL);
	if (!a->host || !a->password || !a->prefix || rds_async_run_on_loop(a, true) < 0) {
		rds_async_free(a);
		return NULL;
	}
	return a;
}

void
rds_async_close(struct rds_async *a)
{
	if (!a || a->closed)
		return;
	rds_async_run_on_loop(a, false);
	a->closed = true;
}

void
rds_async_free(struct rds_async *a)
{
	if (!a)
		return;
	rds_async_close(a);
	pthread_mutex_destroy(&a->lock);
	if (a->password)
		memset(a->password, 0, strlen(a->password));
	free(a->host);
	free(a->password);
	free(a->prefix);
	free(a);
}

int
rds_async_argv(struct rds_async *a, rds_async_cb cb, void *arg, int argc, const char **argv,
	       const size_t *argvlen)
{
	struct rds_async_cmd *c;
	bool was_empty;

	if (dmn_now_ms() < atomic_load(&a->down_until_ms)) {
		atomic_fetch_add(&a->errors, 1);
		return -EAGAIN;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->a = a;
	c->cb = cb;
	c->arg = arg;
	c->len = redisFormatCommandArgv(&c->buf, argc, argv, argvlen);
	if (c->len < 0) {
		free(c);
		return -ENOMEM;
	}
	pthread_mutex_lock(&a->lock);
	if (a->closing || a->qlen >= RDS_ASYNC_QUEUE_MAX) {
		pthread_mutex_unlock(&a->lock);
		rds_async_cmd_free(c);
		atomic_fetch_add(&a->errors, 1);
		return -EAGAIN;
	}
	was_empty = !a->qhead;
	if (a->qtail)
		a->qtail->next = c;
	else
		a->qhead = c;
	a->qtail = c;
	a->qlen++;
	/* One wake-up per batch: whoever makes the queue non-empty rings. */
	if (was_empty)
		event_active(a->wake, 0, 0);
	pthread_mutex_unlock(&a->lock);
	return 0;
}

const char *
rds_async_prefix(const struct rds_async *a)
{
	return a->prefix;
}

void
rds_async_stats(const struct rds_async *a, struct rds_stats *ret)
{
	ret->commands = atomic_load(&a->commands);
	ret->errors = atomic_load(&a->errors);
	ret->connects = atomic_load(&a->connects);
	ret->up = atomic_load(&a->up);
}

/* ---------------------------------------------------------------- scripts */

void
rds_script_init(struct rds_script *s, const char *text)
{
	uint8_t d[SHA1_LEN];

	s->text = text;
	sha1(text, strlen(text), d);
	for (size_t i = 0; i < SHA1_LEN; i++)
		snprintf(s->sha + 2 * i, 3, "%02x", d[i]);
}

#define RDS_SCRIPT_ARGS 64

/* One script call, its arguments kept for the EVAL retry. */
struct rds_script_call {
	struct rds_async *a;
	const struct rds_script *s;
	rds_async_cb cb;
	void *arg;
	int argc;
	bool eval;
	const char *argv[RDS_SCRIPT_ARGS];
	char buf[]; /* the keys and arguments, NUL-terminated */
};

static void
rds_script_done(redisReply *rep, int err, void *arg)
{
	struct rds_script_call *c = arg;

	if (!err && !c->eval && rep->type == REDIS_REPLY_ERROR &&
	    strncmp(rep->str, "NOSCRIPT", 8) == 0) {
		c->eval = true;
		c->argv[0] = "EVAL";
		c->argv[1] = c->s->text;
		if (rds_async_argv(c->a, rds_script_done, c, c->argc, c->argv, NULL) == 0)
			return;
		err = -EAGAIN;
		rep = NULL;
	}
	c->cb(rep, err, c->arg);
	free(c);
}

int
rds_async_script(struct rds_async *a, const struct rds_script *s, int nkeys,
		 const char *const *keys, int nargs, const char *const *args, rds_async_cb cb,
		 void *arg)
{
	struct rds_script_call *c;
	size_t total = 0;
	char *p;
	int r;

	if (nkeys < 0 || nargs < 0 || nkeys + nargs + 3 > RDS_SCRIPT_ARGS)
		return -EINVAL;
	for (int i = 0; i < nkeys + nargs; i++)
		total += strlen(i < nkeys ? keys[i] : args[i - nkeys]) + 1;
	c = malloc(sizeof(*c) + total + 12);
	if (!c)
		return -ENOMEM;
	c->a = a;
	c->s = s;
	c->cb = cb;
	c->arg = arg;
	c->eval = false;
	c->argv[0] = "EVALSHA";
	c->argv[1] = s->sha;
	p = c->buf;
	c->argv[2] = p;
	p += snprintf(p, 12, "%d", nkeys) + 1;
	for (int i = 0; i < nkeys + nargs; i++) {
		const char *v = i < nkeys ? keys[i] : args[i - nkeys];
		size_t l = strlen(v) + 1;
		memcpy(p, v, l);
		c->argv[3 + i] = p;
		p += l;
	}
	c->argc = 3 + nkeys + nargs;
	r = rds_async_argv(a, rds_script_done, c, c->argc, c->argv, NULL);
	if (r < 0)
		free(c);
	return r;
}
