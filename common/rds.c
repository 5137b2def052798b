/* SPDX-License-Identifier: MIT */
/* Redis access: thread-local hiredis connections, a shared fail-fast backoff, pipelines. */
#include "rds.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

/* hiredis writes with write(2): a write to a Redis that just died raises
 * SIGPIPE, which daemons ignore (dmn_signals_init()); this library does not
 * change signal dispositions itself. */

/* Used when an option is 0: a zero timeval means "expire at once" to hiredis'
 * connect and "never" to SO_RCVTIMEO, and neither is what a caller who left
 * the field unset wants. */
#define RDS_DEFAULT_HOST       "127.0.0.1"
#define RDS_DEFAULT_PORT       6379
#define RDS_DEFAULT_CONNECT_MS 500
#define RDS_DEFAULT_COMMAND_MS 1000
#define RDS_DEFAULT_BACKOFF_MS 5000

struct rds_conn;

/* One pipeline per (thread, rds): it lives inside the thread's connection
 * slot, so beginning a pipeline allocates nothing. */
struct rds_pipe {
	struct rds *r;
	struct rds_conn *conn;
	size_t queued; /* commands appended to the output buffer, not yet read back */
	int err;       /* first rds_pipe_add failure, reported by exec */
	bool active;
	bool probing; /* this thread owns the post-backoff reconnect attempt */
};

/* A thread's connection to one struct rds. The list is thread-local, so no
 * lock guards it. `r` is only compared, never dereferenced: the rds may have
 * been freed, and its address handed to a new rds, since this slot was made;
 * `id` tells the two apart. */
struct rds_conn {
	struct rds_conn *next;
	const struct rds *r;
	uint64_t id;
	redisContext *c;
	struct rds_pipe pipe;
};

struct rds {
	char *host;
	char *password;
	char *prefix;
	int port;
	int db;
	int connect_ms;
	int command_ms;
	int max_backoff_ms;
	uint64_t id; /* process-unique, never reused */

	/* Shared by every thread. backoff_until is a CLOCK_MONOTONIC time in ms;
	 * 0 means "not backing off". */
	_Atomic uint64_t backoff_until;
	_Atomic int backoff_ms;
	atomic_ullong commands;
	atomic_ullong errors;
	atomic_ullong connects;
	atomic_bool up;
};

static __thread struct rds_conn *rds_tls;
static pthread_once_t rds_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t rds_key;
static bool rds_key_ok;
static atomic_uint_fast64_t rds_next_id = 1;

static uint64_t
rds_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct timeval
rds_tv(int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	return tv;
}

/* Thread exit: close every connection the thread still holds, so threads
 * that never call rds_thread_done() leak neither sockets nor memory. */
static void
rds_tls_destroy(void *head)
{
	struct rds_conn *conn = head;

	while (conn != NULL) {
		struct rds_conn *next = conn->next;

		if (conn->c != NULL)
			redisFree(conn->c);
		free(conn);
		conn = next;
	}
	rds_tls = NULL;
}

static void
rds_key_init(void)
{
	rds_key_ok = pthread_key_create(&rds_key, rds_tls_destroy) == 0;
}

static void
rds_tls_publish(void)
{
	if (rds_key_ok)
		pthread_setspecific(rds_key, rds_tls);
}

static void
rds_conn_close(struct rds_conn *conn)
{
	if (conn->c != NULL) {
		redisFree(conn->c);
		conn->c = NULL;
	}
	conn->pipe.queued = 0;
}

/* The calling thread's slot for r, created on first use; NULL on ENOMEM. */
static struct rds_conn *
rds_conn_get(struct rds *r)
{
	struct rds_conn *conn;

	for (conn = rds_tls; conn != NULL; conn = conn->next) {
		if (conn->r != r)
			continue;
		if (conn->id != r->id) {
			/* Left over from a freed rds at the same address: its
			 * connection may point at another server or db. */
			rds_conn_close(conn);
			memset(&conn->pipe, 0, sizeof(conn->pipe));
			conn->id = r->id;
		}
		return conn;
	}

	pthread_once(&rds_key_once, rds_key_init);
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL)
		return NULL;
	conn->r = r;
	conn->id = r->id;
	conn->next = rds_tls;
	rds_tls = conn;
	rds_tls_publish();
	return conn;
}

/*
 * Backoff gate, run before any I/O. Returns 0 to go ahead or -EAGAIN while
 * backing off. Once the interval has passed exactly one caller (the one whose
 * compare-and-swap wins) is let through to probe Redis, with *ret_probing
 * set; everyone else keeps failing fast until that probe resolves, so a
 * returning Redis is not hit by every thread at once.
 */
static int
rds_gate(struct rds *r, bool *ret_probing)
{
	uint64_t until = atomic_load_explicit(&r->backoff_until, memory_order_acquire);
	uint64_t now;
	int interval;

	*ret_probing = false;
	if (until == 0)
		return 0;
	now = rds_now_ms();
	if (now < until)
		return -EAGAIN;
	/* The claim is a real deadline, not a "probing" marker: should the
	 * prober never report back, the gate simply opens again later. */
	interval = atomic_load_explicit(&r->backoff_ms, memory_order_relaxed);
	if (!atomic_compare_exchange_strong(&r->backoff_until, &until, now + (uint64_t)interval))
		return -EAGAIN;
	*ret_probing = true;
	return 0;
}

/* Redis answered: end any backoff. */
static void
rds_ok(struct rds *r)
{
	atomic_store_explicit(&r->up, true, memory_order_relaxed);
	if (atomic_load_explicit(&r->backoff_until, memory_order_relaxed) != 0) {
		atomic_store_explicit(&r->backoff_ms, 0, memory_order_relaxed);
		atomic_store_explicit(&r->backoff_until, 0, memory_order_release);
	}
}

/*
 * Redis failed us (connect, I/O, timeout): start or extend the backoff.
 * The interval doubles only on a failed probe; threads whose old connections
 * die during an ongoing backoff do not push it further out, or N threads
 * would double it N times for one outage.
 */
static void
rds_fail(struct rds *r, bool probing)
{
	uint64_t now = rds_now_ms();
	uint64_t until = atomic_load_explicit(&r->backoff_until, memory_order_acquire);
	int cur, next;

	atomic_store_explicit(&r->up, false, memory_order_relaxed);
	if (!probing && until != 0 && until > now)
		return;
	cur = atomic_load_explicit(&r->backoff_ms, memory_order_relaxed);
	if (cur <= 0)
		next = r->connect_ms;
	else if (cur > r->max_backoff_ms / 2)
		next = r->max_backoff_ms;
	else
		next = cur * 2;
	if (next > r->max_backoff_ms)
		next = r->max_backoff_ms;
	if (next < 1)
		next = 1;
	atomic_store_explicit(&r->backoff_ms, next, memory_order_relaxed);
	atomic_store_explicit(&r->backoff_until, now + (uint64_t)next, memory_order_release);
}

/* The prober gives up for a reason that says nothing about Redis (ENOMEM,
 * misuse): let the next caller probe instead, rather than waiting out or
 * doubling a backoff. 1 is a deadline already in the past. */
static void
rds_unclaim(struct rds *r, bool probing)
{
	if (probing && atomic_load_explicit(&r->backoff_until, memory_order_relaxed) != 0)
		atomic_store_explicit(&r->backoff_until, 1, memory_order_release);
}

/* Maps a context error after a failed hiredis call; saved_errno is errno
 * read right after that call (hiredis reports a SO_RCVTIMEO/SO_SNDTIMEO
 * expiry as REDIS_ERR_IO with errno EAGAIN). */
static int
rds_ctx_err(const redisContext *c, int saved_errno)
{
	switch (c->err) {
	case REDIS_ERR_IO:
		if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK || saved_errno == ETIMEDOUT)
			return -ETIMEDOUT;
		return -EIO;
	case REDIS_ERR_OOM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

/* Runs one setup command (AUTH, SELECT) on a fresh context: 0 or -EIO. */
static int
rds_setup_cmd(redisContext *c, const char *fmt, ...)
{
	redisReply *reply;
	va_list ap;
	int ok;

	va_start(ap, fmt);
	reply = redisvCommand(c, fmt, ap);
	va_end(ap);
	if (reply == NULL)
		return -EIO;
	ok = reply->type == REDIS_REPLY_STATUS;
	freeReplyObject(reply);
	return ok ? 0 : -EIO;
}

/* Opens conn's context: connect, command timeout, AUTH, SELECT.
 * Returns 0, -EAGAIN (Redis unreachable), -EIO (AUTH/SELECT refused or
 * broken mid-setup) or -ENOMEM. */
static int
rds_connect(struct rds *r, struct rds_conn *conn)
{
	redisContext *c;
	int err;

	if (r->host[0] == '/')
		c = redisConnectUnixWithTimeout(r->host, rds_tv(r->connect_ms));
	else
		c = redisConnectWithTimeout(r->host, r->port, rds_tv(r->connect_ms));
	if (c == NULL)
		return -ENOMEM;
	if (c->err) {
		err = c->err == REDIS_ERR_OOM ? -ENOMEM : -EAGAIN;
		goto free_ctx;
	}
	err = -EIO;
	if (redisSetTimeout(c, rds_tv(r->command_ms)) != REDIS_OK)
		goto free_ctx;
	if (r->password[0] != '\0' && rds_setup_cmd(c, "AUTH %s", r->password) < 0)
		goto free_ctx;
	if (r->db != 0 && rds_setup_cmd(c, "SELECT %d", r->db) < 0)
		goto free_ctx;
	conn->c = c;
	atomic_fetch_add_explicit(&r->connects, 1, memory_order_relaxed);
	return 0;

free_ctx:
	redisFree(c);
	return err;
}

/*
 * Common entry of every call: backoff gate, thread slot, connection.
 * Returns the slot with a live context, or NULL with *ret_err set. On
 * success *ret_probing says whether the caller must report the outcome as
 * the probe (see rds_gate).
 */
static struct rds_conn *
rds_enter(struct rds *r, bool *ret_probing, int *ret_err)
{
	struct rds_conn *conn;
	bool probing;
	int err;

	err = rds_gate(r, &probing);
	if (err < 0)
		goto fail;
	conn = rds_conn_get(r);
	if (conn == NULL) {
		err = -ENOMEM;
		goto fail_backoff;
	}
	if (conn->pipe.queued > 0) {
		/* A pipeline is open on this thread: a command now would
		 * read one of its replies. */
		err = -EBUSY;
		goto fail_backoff;
	}
	if (conn->c == NULL) {
		err = rds_connect(r, conn);
		if (err < 0)
			goto fail_backoff;
		/* A fresh connection that passed AUTH/SELECT proves Redis is
		 * back, whatever happens to the command itself. */
		rds_ok(r);
		probing = false;
	}
	*ret_probing = probing;
	return conn;

fail_backoff:
	if (err == -EBUSY || err == -ENOMEM)
		rds_unclaim(r, probing);
	else
		rds_fail(r, probing);
fail:
	atomic_fetch_add_explicit(&r->errors, 1, memory_order_relaxed);
	*ret_err = err;
	return NULL;
}

/* Reads the reply to the one command just appended to conn's context. */
static redisReply *
rds_roundtrip(struct rds *r, struct rds_conn *conn, bool probing, int *ret_err)
{
	void *reply = NULL;
	int saved_errno;

	atomic_fetch_add_explicit(&r->commands, 1, memory_order_relaxed);
	errno = 0;
	if (redisGetReply(conn->c, &reply) != REDIS_OK || reply == NULL) {
		saved_errno = errno;
		*ret_err = rds_ctx_err(conn->c, saved_errno);
		/* The connection's state is unknown (a late reply may still
		 * arrive): drop it so the next call reconnects. */
		rds_conn_close(conn);
		rds_fail(r, probing);
		atomic_fetch_add_explicit(&r->errors, 1, memory_order_relaxed);
		return NULL;
	}
	rds_ok(r);
	return reply;
}

/* A command could not be formatted: hiredis has marked the context failed,
 * so it goes, but Redis itself did nothing wrong and no backoff starts. */
static void
rds_format_failed(struct rds *r, struct rds_conn *conn, bool probing, int *ret_err)
{
	*ret_err = conn->c->err == REDIS_ERR_OOM ? -ENOMEM : -EINVAL;
	rds_conn_close(conn);
	rds_unclaim(r, probing);
	atomic_fetch_add_explicit(&r->errors, 1, memory_order_relaxed);
}

/*
 * Copies opts (strings included). Zero timeouts and port take defaults
 * (500 ms connect, 1000 ms command, 5000 ms max backoff, port 6379); a NULL
 * host means 127.0.0.1. Returns NULL on ENOMEM. Any thread.
 */
struct rds *
rds_new(const struct rds_opts *opts)
{
	struct rds *r;

	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->host =
		strdup(opts->host != NULL && opts->host[0] != '\0' ? opts->host : RDS_DEFAULT_HOST);
	r->password = strdup(opts->password != NULL ? opts->password : "");
	r->prefix = strdup(opts->prefix != NULL ? opts->prefix : "");
	if (r->host == NULL || r->password == NULL || r->prefix == NULL) {
		rds_free(r);
		return NULL;
	}
	r->port = opts->port > 0 ? opts->port : RDS_DEFAULT_PORT;
	r->db = opts->db;
	r->connect_ms =
		opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : RDS_DEFAULT_CONNECT_MS;
	r->command_ms =
		opts->command_timeout_ms > 0 ? opts->command_timeout_ms : RDS_DEFAULT_COMMAND_MS;
	r->max_backoff_ms =
		opts->max_backoff_ms > 0 ? opts->max_backoff_ms : RDS_DEFAULT_BACKOFF_MS;
	if (r->max_backoff_ms < r->connect_ms)
		r->max_backoff_ms = r->connect_ms;
	r->id = atomic_fetch_add(&rds_next_id, 1);
	atomic_init(&r->backoff_until, 0);
	atomic_init(&r->backoff_ms, 0);
	atomic_init(&r->commands, 0);
	atomic_init(&r->errors, 0);
	atomic_init(&r->connects, 0);
	atomic_init(&r->up, false);
	return r;
}

/* Also closes the calling thread's own connection, the common single-thread
 * case; other threads' slots are recognised as stale by id later. */
void
rds_free(struct rds *r)
{
	if (r == NULL)
		return;
	rds_thread_done(r);
	if (r->password != NULL) {
		explicit_bzero(r->password, strlen(r->password));
		free(r->password);
	}
	free(r->host);
	free(r->prefix);
	free(r);
}

void
rds_thread_done(struct rds *r)
{
	struct rds_conn **pp, *conn;

	if (r == NULL)
		return;
	for (pp = &rds_tls; (conn = *pp) != NULL; pp = &conn->next) {
		if (conn->r == r) {
			*pp = conn->next;
			rds_conn_close(conn);
			free(conn);
			rds_tls_publish();
			return;
		}
	}
}

const char *
rds_prefix(const struct rds *r)
{
	return r->prefix;
}

/* Besides the errors in rds.h: -EINVAL for a bad format string, -EBUSY when
 * the calling thread has an unexecuted pipeline on r, -ENOMEM. */
redisReply *
rds_command(struct rds *r, int *ret_err, const char *fmt, ...)
{
	struct rds_conn *conn;
	redisReply *reply;
	bool probing;
	va_list ap;
	int err = 0, rc;

	conn = rds_enter(r, &probing, &err);
	if (conn == NULL)
		goto fail;
	/* Append and read separately so a format error (no I/O happened) is
	 * told apart from an I/O error. */
	va_start(ap, fmt);
	rc = redisvAppendCommand(conn->c, fmt, ap);
	va_end(ap);
	if (rc != REDIS_OK) {
		rds_format_failed(r, conn, probing, &err);
		goto fail;
	}
	reply = rds_roundtrip(r, conn, probing, &err);
	if (reply == NULL)
		goto fail;
	return reply;

fail:
	if (ret_err != NULL)
		*ret_err = err;
	return NULL;
}

redisReply *
rds_command_argv(struct rds *r, int *ret_err, int argc, const char **argv, const size_t *argvlen)
{
	struct rds_conn *conn;
	redisReply *reply;
	bool probing;
	int err = 0;

	conn = rds_enter(r, &probing, &err);
	if (conn == NULL)
		goto fail;
	if (redisAppendCommandArgv(conn->c, argc, argv, argvlen) != REDIS_OK) {
		rds_format_failed(r, conn, probing, &err);
		goto fail;
	}
	reply = rds_roundtrip(r, conn, probing, &err);
	if (reply == NULL)
		goto fail;
	return reply;

fail:
	if (ret_err != NULL)
		*ret_err = err;
	return NULL;
}

/* Besides rds.h: errno = EBUSY when a pipeline on r is already open on this
 * thread, ENOMEM on allocation failure. The returned pipe belongs to the
 * calling thread and is valid until rds_pipe_end(). */
struct rds_pipe *
rds_pipe_begin(struct rds *r)
{
	struct rds_conn *conn;
	bool probing;
	int err = 0;

	conn = rds_enter(r, &probing, &err);
	if (conn == NULL) {
		errno = -err;
		return NULL;
	}
	if (conn->pipe.active) {
		rds_unclaim(r, probing);
		errno = EBUSY;
		return NULL;
	}
	conn->pipe = (struct rds_pipe){
		.r = r,
		.conn = conn,
		.active = true,
		.probing = probing,
	};
	return &conn->pipe;
}

/* Records an append failure. The context is unusable (hiredis marked it) or
 * holds a partial batch, so exec or end will drop it. */
static int
rds_pipe_failed(struct rds_pipe *p)
{
	if (p->err == 0)
		p->err = p->conn->c->err == REDIS_ERR_OOM ? -ENOMEM : -EINVAL;
	return p->err;
}

/* 0 when commands may be appended: no earlier failure, and the connection
 * was not dropped by a failed exec of this same pipe. */
static int
rds_pipe_usable(struct rds_pipe *p)
{
	if (p->err == 0 && p->conn->c == NULL)
		p->err = -EIO;
	return p->err;
}

int
rds_pipe_add(struct rds_pipe *p, const char *fmt, ...)
{
	va_list ap;
	int rc;

	if (rds_pipe_usable(p) < 0)
		return p->err;
	va_start(ap, fmt);
	rc = redisvAppendCommand(p->conn->c, fmt, ap);
	va_end(ap);
	if (rc != REDIS_OK)
		return rds_pipe_failed(p);
	p->queued++;
	return 0;
}

int
rds_pipe_add_argv(struct rds_pipe *p, int argc, const char **argv, const size_t *argvlen)
{
	if (rds_pipe_usable(p) < 0)
		return p->err;
	if (redisAppendCommandArgv(p->conn->c, argc, argv, argvlen) != REDIS_OK)
		return rds_pipe_failed(p);
	p->queued++;
	return 0;
}

/* Besides rds.h: -EINVAL when n differs from the number of queued commands
 * or an add failed on a bad format. After a failure the connection is
 * dropped (the queued commands must never reach Redis on a later call);
 * the pipe must still be ended. */
int
rds_pipe_exec(struct rds_pipe *p, redisReply **replies, size_t n)
{
	struct rds *r = p->r;
	bool probing = p->probing;
	size_t i;
	int err;

	for (i = 0; i < n; i++)
		replies[i] = NULL;
	p->probing = false;
	if (p->conn->c == NULL) {
		err = -EIO;
		goto fail;
	}
	if (p->err != 0 || n != p->queued) {
		err = p->err != 0 ? p->err : -EINVAL;
		rds_conn_close(p->conn);
		rds_unclaim(r, probing);
		goto fail;
	}
	atomic_fetch_add_explicit(&r->commands, n, memory_order_relaxed);
	for (i = 0; i < n; i++) {
		void *reply = NULL;

		errno = 0;
		if (redisGetReply(p->conn->c, &reply) != REDIS_OK || reply == NULL) {
			err = rds_ctx_err(p->conn->c, errno);
			rds_conn_close(p->conn);
			rds_fail(r, probing);
			goto free_replies;
		}
		replies[i] = reply;
	}
	p->queued = 0;
	rds_ok(r);
	return 0;

free_replies:
	while (i-- > 0) {
		freeReplyObject(replies[i]);
		replies[i] = NULL;
	}
fail:
	p->queued = 0;
	p->err = 0;
	atomic_fetch_add_explicit(&r->errors, 1, memory_order_relaxed);
	return err;
}

/* NULL-safe. Commands added but never executed are discarded by dropping
 * the connection: hiredis cannot take them back out of its buffer. */
void
rds_pipe_end(struct rds_pipe *p)
{
	if (p == NULL)
		return;
	if (p->queued > 0 || p->err != 0)
		rds_conn_close(p->conn);
	rds_unclaim(p->r, p->probing);
	p->queued = 0;
	p->err = 0;
	p->probing = false;
	p->active = false;
}

const char *
rds_hash_field(const redisReply *h, const char *name)
{
	if (!h || h->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (size_t i = 0; i + 1 < h->elements; i += 2)
		if (h->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(h->element[i]->str, name) == 0 &&
		    h->element[i + 1]->type == REDIS_REPLY_STRING)
			return h->element[i + 1]->str;
	return NULL;
}

int
rds_ping(struct rds *r)
{
	redisReply *reply;
	int err = 0;

	reply = rds_command(r, &err, "PING");
	if (reply == NULL)
		return err;
	err = reply->type == REDIS_REPLY_STATUS ? 0 : -EIO;
	freeReplyObject(reply);
	return err;
}

void
rds_get_stats(const struct rds *r, struct rds_stats *ret)
{
	/* The counters are atomics; reading them through a const pointer is
	 * fine, C11 just does not let atomic_load take one. */
	struct rds *m = (struct rds *)(uintptr_t)r;

	ret->commands = atomic_load_explicit(&m->commands, memory_order_relaxed);
	ret->errors = atomic_load_explicit(&m->errors, memory_order_relaxed);
	ret->connects = atomic_load_explicit(&m->connects, memory_order_relaxed);
	ret->up = atomic_load_explicit(&m->up, memory_order_relaxed);
}
