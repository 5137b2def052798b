/* SPDX-License-Identifier: MIT */
/* One libevent loop on its own thread, and an async HTTP client on it. */
#ifndef P2PCDN_EVL_H
#define P2PCDN_EVL_H

#include <stddef.h>

struct event_base;

/*
 * A loop thread owns an event_base. Other threads hand it work with
 * evl_call(); everything else (timers, sockets, the HTTP client callbacks)
 * runs on the loop thread.
 */
struct evl;

/* Creates the base (pthread-enabled) and starts the thread. NULL on error. */
struct evl *evl_new(void);

/* Stops the loop (pending evl_call work runs first), joins the thread,
 * frees everything. In-flight HTTP requests complete with status 0 and
 * err -ECANCELED. NULL-safe. Not callable from the loop thread. */
void evl_free(struct evl *l);

/* The base, for callers that add their own events ON THE LOOP THREAD. */
struct event_base *evl_base(struct evl *l);

/* Runs fn(arg) on the loop thread as soon as possible. Any thread.
 * Returns 0 or -ENOMEM / -ESHUTDOWN. */
int evl_call(struct evl *l, void (*fn)(void *arg), void *arg);

/* Runs fn(arg) on the loop thread after ms milliseconds. Any thread. */
int evl_call_later(struct evl *l, int ms, void (*fn)(void *arg), void *arg);

/* Result of an HTTP request. body is NUL-terminated (extra byte not counted
 * in body_len) and valid only during the callback. */
struct evl_http_result {
	int err;    /* 0, or -ETIMEDOUT, -ECONNREFUSED, -EIO, -EMSGSIZE, -ECANCELED */
	int status; /* HTTP status, 0 when err != 0 */
	const char *body;
	size_t body_len;
	const char *content_type; /* may be NULL */
};

typedef void (*evl_http_cb)(const struct evl_http_result *res, void *arg);

/* Starts an HTTP/1.1 request to an http:// URL. method "GET"/"POST"/"PUT"/
 * "DELETE"; body may be NULL; content_type defaults to application/json
 * when a body is given; extra_headers NULL or a NULL-terminated array of
 * "Name: value" strings. The response body is capped at max_body bytes
 * (beyond: err -EMSGSIZE). cb runs exactly once, on the loop thread.
 * Callable from any thread. Returns 0 (cb will run) or -EINVAL (bad URL) /
 * -ENOMEM (cb will not run). */
int evl_http_request(struct evl *l, const char *method, const char *url, const char *body,
		     size_t body_len, const char *const *extra_headers, int timeout_ms,
		     size_t max_body, evl_http_cb cb, void *arg);

/* Blocking convenience for non-loop threads: runs evl_http_request and
 * waits. On return, *ret_body is a malloc'd NUL-terminated copy (caller
 * frees) or NULL. Returns the HTTP status (> 0) or a negative errno. Must
 * not be called on the loop thread. */
int evl_http_sync(struct evl *l, const char *method, const char *url, const char *body,
		  size_t body_len, int timeout_ms, size_t max_body, char **ret_body,
		  size_t *ret_len);

#endif
