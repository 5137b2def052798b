/* SPDX-License-Identifier: MIT */
/* Redis access: one connection per thread, fail-fast with backoff, pipelines. */
#ifndef P2PCDN_RDS_H
#define P2PCDN_RDS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * A struct rds describes one Redis server; every thread that uses it gets
 * its own connection on first use (thread-local), so request threads never
 * share or lock a connection. When a connect or command fails the thread's
 * connection is dropped and, for a backoff interval (doubling from
 * connect_timeout_ms up to max_backoff_ms), further calls on any thread fail
 * at once with -EAGAIN instead of waiting: a dead Redis costs a request
 * microseconds, and the first call after the backoff tries to reconnect, so
 * the daemon recovers by itself when Redis returns.
 */
struct rds;

struct rds_opts {
	const char *host;     /* hostname/IP, or a path starting with '/' (unix socket) */
	int port;             /* ignored for unix sockets */
	const char *password; /* NULL or "" for none */
	int db;               /* SELECT db when != 0 */
	const char *prefix;   /* key prefix, e.g. "p2pcdn:" */
	int connect_timeout_ms;
	int command_timeout_ms;
	int max_backoff_ms;
};

/* Copies opts; connects nothing yet. Returns NULL on ENOMEM. */
struct rds *rds_new(const struct rds_opts *opts);

/* Frees the descriptor. Each thread's connection is closed by
 * rds_thread_done() on that thread, or leaked-to-exit when the thread never
 * calls it (the kernel closes it). Must not be called while other threads
 * still use r. NULL-safe. */
void rds_free(struct rds *r);

/* Closes the calling thread's connection to r, if any. */
void rds_thread_done(struct rds *r);

/* The configured key prefix (never NULL). */
const char *rds_prefix(const struct rds *r);

/* Runs one command (redisvCommand format: "%s" and "%b" with size).
 * Returns the reply (caller frees with freeReplyObject) or NULL with
 * *ret_err set: -EAGAIN Redis down/backing off, -ETIMEDOUT, -EIO protocol or
 * connection error. A Redis error reply (REDIS_REPLY_ERROR) is returned as a
 * reply, not as a failure. ret_err may be NULL. */
redisReply *rds_command(struct rds *r, int *ret_err, const char *fmt, ...);

/* Argv form of rds_command, for binary-safe or variable argument lists. */
redisReply *rds_command_argv(struct rds *r, int *ret_err, int argc, const char **argv,
			     const size_t *argvlen);

/* Pipelining: queue n commands, then read n replies in one round trip.
 *   struct rds_pipe *p = rds_pipe_begin(r);
 *   rds_pipe_add(p, "HGETALL %s", key); ...
 *   int err = rds_pipe_exec(p, replies, n);   // replies[i] owned by caller
 *   rds_pipe_end(p);
 * rds_pipe_begin returns NULL with errno=EAGAIN when Redis is down.
 * rds_pipe_add returns 0 or a negative errno (then exec fails too).
 * rds_pipe_exec returns 0 with every replies[i] set, or a negative errno
 * with every replies[i] NULL (nothing leaks). n must equal the number of
 * rds_pipe_add calls. */
struct rds_pipe;
struct rds_pipe *rds_pipe_begin(struct rds *r);
int rds_pipe_add(struct rds_pipe *p, const char *fmt, ...);
int rds_pipe_add_argv(struct rds_pipe *p, int argc, const char **argv, const size_t *argvlen);
int rds_pipe_exec(struct rds_pipe *p, redisReply **replies, size_t n);
void rds_pipe_end(struct rds_pipe *p);

/* The value of field name in an HGETALL reply h (NULL-safe), pointing
 * into h; NULL when h is not an array or has no such string field. */
const char *rds_hash_field(const redisReply *h, const char *name);

/* PING on the calling thread's connection: 0 reachable, negative errno
 * otherwise. Used by /readyz. */
int rds_ping(struct rds *r);

/* Counters for /metrics (monotonic, all threads): commands sent, failures,
 * reconnects. */
struct rds_stats {
	unsigned long long commands;
	unsigned long long errors;
	unsigned long long connects;
	bool up; /* last attempt by any thread succeeded */
};
void rds_get_stats(const struct rds *r, struct rds_stats *ret);

#endif
