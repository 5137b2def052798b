/* SPDX-License-Identifier: MIT */
/* Asynchronous Redis on an event loop: many threads, one pipelined connection. */
#ifndef P2PCDN_RDS_ASYNC_H
#define P2PCDN_RDS_ASYNC_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "evl.h"
#include "rds.h"

/*
 * For hot paths. Request threads hand a command over and return at once
 * (their HTTP connection suspended); the loop thread writes every command
 * queued since its last turn in one write(2) and reads the replies in
 * order, so under load one system call and one Redis wake-up serve many
 * requests instead of one each. Failure handling matches struct rds: while
 * Redis is down and within its back-off, submissions fail at once with
 * -EAGAIN; a command not answered within command_timeout_ms fails the whole
 * connection (-ETIMEDOUT for every command in flight) and the next
 * submission after the back-off reconnects. A connection Redis closes
 * itself is reopened at once (no back-off until a connect fails). Error
 * replies reach the callback as replies but count as errors and are logged
 * (at most once per 10 s); READONLY, LOADING and MASTERDOWN also drop the
 * connection so the next command reconnects. The host name is resolved
 * once, in rds_async_new.
 */
struct rds_async;

/* Called exactly once per accepted command, on the loop thread. reply is
 * NULL when err != 0 (-EAGAIN, -ETIMEDOUT, -EIO, -ECANCELED) and is freed
 * after the callback returns. A Redis error reply is a reply, err 0. */
typedef void (*rds_async_cb)(redisReply *reply, int err, void *arg);

/* Uses opts as struct rds does (copied). The loop must outlive the result.
 * Returns NULL on ENOMEM. Connects on first use. */
struct rds_async *rds_async_new(struct evl *loop, const struct rds_opts *opts);

/* Fails everything queued or in flight with -ECANCELED (callbacks run on
 * the loop thread before this returns) and closes the connection; later
 * submissions fail with -EAGAIN. Stats stay readable. For shutdown: close
 * before freeing what the callbacks use. Not callable from the loop
 * thread. NULL-safe, idempotent. */
void rds_async_close(struct rds_async *a);

/* rds_async_close if not done yet, then frees. NULL-safe. */
void rds_async_free(struct rds_async *a);

/* Queues one command (argv form, binary safe). Any thread. Returns 0 (cb
 * will run), or -EAGAIN (Redis is down and backing off, or the queue is
 * full) / -ENOMEM, and then cb will not run. */
int rds_async_argv(struct rds_async *a, rds_async_cb cb, void *arg, int argc, const char **argv,
		   const size_t *argvlen);

/* A Lua script run by its SHA-1 (EVALSHA), so the hot path sends and Redis
 * hashes 40 bytes instead of the whole script. */
struct rds_script {
	const char *text; /* static; must outlive every call */
	char sha[41];     /* hex SHA-1 of text */
};

/* Fills s for text (kept by pointer). */
void rds_script_init(struct rds_script *s, const char *text);

/* EVALSHA s with nkeys keys and nargs arguments (copied), and when Redis
 * answers NOSCRIPT (restarted, or its script cache flushed) the same call
 * once more as EVAL with the text. cb gets the final reply, as with
 * rds_async_argv, and runs exactly once when this returns 0. Returns
 * -EINVAL for more than 60 keys + arguments, else as rds_async_argv. */
int rds_async_script(struct rds_async *a, const struct rds_script *s, int nkeys,
		     const char *const *keys, int nargs, const char *const *args, rds_async_cb cb,
		     void *arg);

/* The configured key prefix. */
const char *rds_async_prefix(const struct rds_async *a);

/* Counters for /metrics, like rds_get_stats. */
void rds_async_stats(const struct rds_async *a, struct rds_stats *ret);

#endif
