/* SPDX-License-Identifier: MIT */
/* One libevent loop on its own thread, and an async HTTP client on it. */
#include "evl.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>

/*
 * Threading model. Everything that touches libevent objects other than the
 * job queue's wake event runs on the loop thread. Other threads only append
 * to the job queue under l->lock and activate l->wake (event_active is safe
 * from any thread once evthread_use_pthreads() ran before the base was
 * made). HTTP requests are prepared on the caller's thread (URL parsing and
 * copies need no base) and started by a job, so a callback can never run
 * inside evl_http_request() itself.
 *
 * Lifecycle of a request (struct evl_req):
 *   queued job -> live (on l->live, connection + deadline timer) -> finished.
 * Once finished, the user callback has run and is never run again. If it
 * finished inside a libevent HTTP callback, its connection cannot be freed
 * there (libevent still uses it while unwinding), so it moves to l->dead and
 * the reap event frees it from a clean stack. Finishing from our own timer or
 * from shutdown frees the connection first (which drops the evhttp request
 * without calling back) and then the wrapper.
 *
 * Details the header leaves open, as implemented here:
 *  - evl_http_request() also accepts "HEAD" and "PATCH"; it returns -EINVAL
 *    for timeout_ms <= 0, a header that is not "Name: value" or holds CR/LF,
 *    and -ESHUTDOWN once evl_free() has begun (cb will not run).
 *  - Host names are resolved by libevent with a blocking getaddrinfo() on
 *    the loop thread and only the first address is tried: prefer literals.
 *  - On error the result's body is "" (never NULL) and status is 0. A
 *    refused connect reads -ECONNREFUSED; an unreachable host, a name that
 *    does not resolve, or a reply that is cut short or not HTTP read -EIO.
 *  - evl_call_later() returns -EINVAL for ms < 0; timers not yet due when
 *    evl_free() runs are dropped without running (arg stays the caller's).
 *  - evl_http_sync() returns -EDEADLK on its own loop thread; evl_free()
 *    there aborts, as it could only deadlock.
 *  - The loop thread inherits its creator's signal mask, and libevent's
 *    writes can raise SIGPIPE: call dmn_signals_init() first.
 *
 * One connection per request: libevent serialises requests on an
 * evhttp_connection, and a stale keep-alive connection fails a request
 * with EOF that a pool would have to retry. A fresh connection per request
 * costs a handshake but keeps every error attributable to its request.
 */

/* libevent's own inactivity timeouts are set this much beyond our deadline so
 * that our timer always decides, and a connect that libevent gives up on can
 * be read as "refused" rather than "timed out". */
#define EVL_LIBEVENT_SLACK_MS 1000

struct evl_job {
	struct evl_job *next;
	void (*fn)(void *arg);
	void *arg;
	bool heap; /* allocated by evl_call(); freed before fn runs */
};

struct evl_timer {
	struct evl_job job; /* arms the timer on the loop thread */
	LIST_ENTRY(evl_timer) link;
	struct evl *l;
	struct event *ev;
	int ms;
	void (*fn)(void *arg);
	void *arg;
};

struct evl_req {
	struct evl_job job; /* starts the request on the loop thread */
	LIST_ENTRY(evl_req) link;
	struct evl *l;
	evl_http_cb cb;
	void *arg;

	enum evhttp_cmd_type type;
	char *host;    /* for the connection: no IPv6 brackets */
	char *hosthdr; /* Host: header value */
	char *target;  /* path and query */
	unsigned short port;
	char *body; /* NULL when no body */
	size_t body_len;
	char **hdr_name; /* extra headers, NULL-terminated; values share the */
	char **hdr_val;  /* allocation of their name */
	int timeout_ms;
	size_t max_body;

	struct evhttp_connection *conn;
	struct event *deadline;
	bool have_error;
	enum evhttp_request_error error;
	bool done;
};

LIST_HEAD(evl_timer_list, evl_timer);
LIST_HEAD(evl_req_list, evl_req);

struct evl {
	struct event_base *base;
	pthread_t thread;
	struct event *wake; /* runs the job queue */
	struct event *reap; /* frees connections of finished requests */

	pthread_mutex_t lock; /* guards the fields down to stopping */
	struct evl_job *jobs;
	struct evl_job **jobs_tail;
	bool stopping;

	/* Loop thread only. */
	struct evl_timer_list timers;
	struct evl_req_list live;
	struct evl_req_list dead;
};

/* Which evl runs on this thread, to refuse blocking calls from its loop. */
static _Thread_local struct evl *evl_self;

static pthread_once_t evl_once = PTHREAD_ONCE_INIT;
static int evl_threads_rc;

static void
evl_threads_init(void)
{
	evl_threads_rc = evthread_use_pthreads();
}

/* Appends a job and wakes the loop. The wake is activated under the lock so
 * that evl_free() cannot tear the loop down between the two steps. */
static int
evl_push(struct evl *l, struct evl_job *j)
{
	pthread_mutex_lock(&l->lock);
	if (l->stopping) {
		pthread_mutex_unlock(&l->lock);
		return -ESHUTDOWN;
	}
	j->next = NULL;
	*l->jobs_tail = j;
	l->jobs_tail = &j->next;
	event_active(l->wake, EV_TIMEOUT, 0);
	pthread_mutex_unlock(&l->lock);
	return 0;
}

static struct timeval
evl_tv(long long ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000),
			      .tv_usec = (suseconds_t)(ms % 1000) * 1000 };

	return tv;
}

/* ---- HTTP requests ---- */

static void
evl_req_free(struct evl_req *w)
{
	size_t i;

	if (w == NULL)
		return;
	if (w->deadline != NULL)
		event_free(w->deadline);
	if (w->conn != NULL)
		evhttp_connection_free(w->conn);
	free(w->host);
	free(w->hosthdr);
	free(w->target);
	free(w->body);
	if (w->hdr_name != NULL) {
		for (i = 0; w->hdr_name[i] != NULL; i++)
			free(w->hdr_name[i]);
		free(w->hdr_name);
	}
	free(w->hdr_val);
	free(w);
}

/* Runs the user callback once. The caller then disposes of the wrapper. */
static void
evl_req_finish(struct evl_req *w, const struct evl_http_result *res)
{
	if (w->done)
		return;
	w->done = true;
	if (w->deadline != NULL)
		event_del(w->deadline);
	LIST_REMOVE(w, link);
	w->cb(res, w->arg);
}

/* Finishes with an error from a clean stack (our timer, our jobs, shutdown):
 * the connection goes first so libevent cannot call back afterwards. */
static void
evl_req_abort(struct evl_req *w, int err)
{
	struct evl_http_result res = { .err = err, .body = "" };

	if (w->conn != NULL) {
		evhttp_connection_free(w->conn);
		w->conn = NULL;
	}
	evl_req_finish(w, &res);
	evl_req_free(w);
}

/* Parks a request finished inside a libevent callback for the reaper. */
static void
evl_req_bury(struct evl_req *w)
{
	LIST_INSERT_HEAD(&w->l->dead, w, link);
	event_active(w->l->reap, EV_TIMEOUT, 0);
}

static void
evl_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct evl *l = arg;
	struct evl_req *w;

	(void)fd;
	(void)what;
	while ((w = LIST_FIRST(&l->dead)) != NULL) {
		LIST_REMOVE(w, link);
		evl_req_free(w);
	}
}

static void
evl_req_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	evl_req_abort(arg, -ETIMEDOUT);
}

static int
evl_req_map_error(enum evhttp_request_error e)
{
	switch (e) {
	case EVREQ_HTTP_TIMEOUT:
		return -ETIMEDOUT;
	case EVREQ_HTTP_DATA_TOO_LONG:
		return -EMSGSIZE;
	case EVREQ_HTTP_REQUEST_CANCEL:
		return -ECANCELED;
	case EVREQ_HTTP_EOF:
	case EVREQ_HTTP_INVALID_HEADER:
	case EVREQ_HTTP_BUFFER_ERROR:
	default:
		return -EIO;
	}
}

/* libevent calls this before evl_req_done_cb on protocol and I/O errors. */
static void
evl_req_error_cb(enum evhttp_request_error e, void *arg)
{
	struct evl_req *w = arg;

	w->have_error = true;
	w->error = e;
}

static void
evl_req_done_cb(struct evhttp_request *req, void *arg)
{
	struct evl_req *w = arg;
	struct evl_http_result res = { .body = "" };
	struct evbuffer *in;
	unsigned char *p;
	size_t len;

	if (w->done)
		return;
	if (w->have_error) {
		res.err = evl_req_map_error(w->error);
	} else if (req == NULL) {
		res.err = -EIO;
	} else if (evhttp_request_get_response_code(req) <= 0) {
		/* libevent reports a failed connect by calling back with the
		 * untouched request and no error kind; timeouts never get here
		 * because our deadline fires before libevent's. */
		res.err = -ECONNREFUSED;
	} else {
		in = evhttp_request_get_input_buffer(req);
		len = evbuffer_get_length(in);
		if (len > w->max_body) {
			res.err = -EMSGSIZE;
		} else if (evbuffer_add(in, "", 1) != 0 || (p = evbuffer_pullup(in, -1)) == NULL) {
			res.err = -ENOMEM;
		} else {
			res.status = evhttp_request_get_response_code(req);
			res.body = (const char *)p;
			res.body_len = len;
			res.content_type = evhttp_find_header(evhttp_request_get_input_headers(req),
							      "Content-Type");
		}
	}
	evl_req_finish(w, &res);
	evl_req_bury(w);
}

static bool
evl_req_has_header(const struct evl_req *w, const char *name)
{
	size_t i;

	for (i = 0; w->hdr_name[i] != NULL; i++)
		if (strcasecmp(w->hdr_name[i], name) == 0)
			return true;
	return false;
}

/* Fills the evhttp request from the wrapper. Returns 0 or -ENOMEM. */
static int
evl_req_fill(struct evl_req *w, struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char len[32];
	size_t i;

	if (!evl_req_has_header(w, "Host") && evhttp_add_header(h, "Host", w->hosthdr) != 0)
		return -ENOMEM;
	/* The connection is freed after one response anyway; saying so keeps
	 * the server from holding an idle socket for us. */
	if (!evl_req_has_header(w, "Connection") &&
	    evhttp_add_header(h, "Connection", "close") != 0)
		return -ENOMEM;
	for (i = 0; w->hdr_name[i] != NULL; i++)
		if (evhttp_add_header(h, w->hdr_name[i], w->hdr_val[i]) != 0)
			return -ENOMEM;
	if (w->body == NULL && w->type != EVHTTP_REQ_POST && w->type != EVHTTP_REQ_PUT)
		return 0;
	/* libevent adds Content-Length only for POST and PUT; a DELETE or
	 * PATCH with a body needs it too, so always set it ourselves. */
	if (!evl_req_has_header(w, "Content-Length")) {
		snprintf(len, sizeof(len), "%zu", w->body_len);
		if (evhttp_add_header(h, "Content-Length", len) != 0)
			return -ENOMEM;
	}
	if (w->body == NULL)
		return 0;
	if (!evl_req_has_header(w, "Content-Type") &&
	    evhttp_add_header(h, "Content-Type", "application/json") != 0)
		return -ENOMEM;
	if (w->body_len > 0 &&
	    evbuffer_add(evhttp_request_get_output_buffer(req), w->body, w->body_len) != 0)
		return -ENOMEM;
	return 0;
}

/* Job: starts a prepared request on the loop thread. */
static void
evl_req_start(void *arg)
{
	struct evl_req *w = arg;
	struct evl *l = w->l;
	struct evhttp_request *req;
	struct timeval tv;

	LIST_INSERT_HEAD(&l->live, w, link);
	w->deadline = evtimer_new(l->base, evl_req_deadline_cb, w);
	w->conn = evhttp_connection_base_new(l->base, NULL, w->host, w->port);
	if (w->deadline == NULL || w->conn == NULL) {
		evl_req_abort(w, -ENOMEM);
		return;
	}
	tv = evl_tv((long long)w->timeout_ms + EVL_LIBEVENT_SLACK_MS);
	evhttp_connection_set_timeout_tv(w->conn, &tv);
	evhttp_connection_set_retries(w->conn, 0);
	evhttp_connection_set_max_body_size(
		w->conn, w->max_body > (size_t)SSIZE_MAX ? -1 : (ev_ssize_t)w->max_body);

	req = evhttp_request_new(evl_req_done_cb, w);
	if (req == NULL) {
		evl_req_abort(w, -ENOMEM);
		return;
	}
	evhttp_request_set_error_cb(req, evl_req_error_cb);
	if (evl_req_fill(w, req) != 0) {
		evhttp_request_free(req);
		evl_req_abort(w, -ENOMEM);
		return;
	}
	tv = evl_tv(w->timeout_ms);
	evtimer_add(w->deadline, &tv);

	/* May call back synchronously (a connect that fails at once), which
	 * buries w; w stays allocated until the reaper runs, so reading
	 * w->done afterwards is safe. On failure libevent has already freed
	 * or detached req. */
	if (evhttp_make_request(w->conn, req, w->type, w->target) != 0 && !w->done)
		evl_req_abort(w, -EIO);
}

static int
evl_method(const char *m, enum evhttp_cmd_type *ret)
{
	static const struct {
		const char *name;
		enum evhttp_cmd_type type;
	} methods[] = {
		{ "GET", EVHTTP_REQ_GET },   { "POST", EVHTTP_REQ_POST },
		{ "PUT", EVHTTP_REQ_PUT },   { "DELETE", EVHTTP_REQ_DELETE },
		{ "HEAD", EVHTTP_REQ_HEAD }, { "PATCH", EVHTTP_REQ_PATCH },
	};
	size_t i;

	if (m == NULL)
		return -EINVAL;
	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (strcmp(m, methods[i].name) == 0) {
			*ret = methods[i].type;
			return 0;
		}
	}
	return -EINVAL;
}

/* Splits the URL into connection host, port, Host header and target. */
static int
evl_req_parse_url(struct evl_req *w, const char *url)
{
	struct evhttp_uri *u;
	const char *scheme, *host, *path, *query;
	size_t hlen;
	int port, rc = -EINVAL;

	if (url == NULL || (u = evhttp_uri_parse(url)) == NULL)
		return -EINVAL;
	scheme = evhttp_uri_get_scheme(u);
	host = evhttp_uri_get_host(u);
	port = evhttp_uri_get_port(u);
	if (scheme == NULL || strcasecmp(scheme, "http") != 0 || host == NULL || host[0] == '\0')
		goto out;
	if (port == -1)
		port = 80;
	if (port <= 0 || port > 65535)
		goto out;
	w->port = (unsigned short)port;

	rc = -ENOMEM;
	hlen = strlen(host);
	if (host[0] == '[') {
		if (hlen < 3 || host[hlen - 1] != ']') {
			rc = -EINVAL;
			goto out;
		}
		w->host = strndup(host + 1, hlen - 2);
	} else {
		w->host = strdup(host);
	}
	if (w->host == NULL)
		goto out;
	if (port == 80 ? asprintf(&w->hosthdr, "%s", host) < 0
		       : asprintf(&w->hosthdr, "%s:%d", host, port) < 0) {
		w->hosthdr = NULL;
		goto out;
	}
	path = evhttp_uri_get_path(u);
	query = evhttp_uri_get_query(u);
	if (path == NULL || path[0] == '\0')
		path = "/";
	if (asprintf(&w->target, "%s%s%s", path, query != NULL ? "?" : "",
		     query != NULL ? query : "") < 0) {
		w->target = NULL;
		goto out;
	}
	rc = 0;
out:
	evhttp_uri_free(u);
	return rc;
}

/* Copies "Name: value" strings into name/value pairs. Names must be
 * non-empty tokens without spaces; neither part may hold CR or LF. */
static int
evl_req_copy_headers(struct evl_req *w, const char *const *hdrs)
{
	size_t n = 0, i;
	char *copy, *colon, *v;

	while (hdrs != NULL && hdrs[n] != NULL)
		n++;
	w->hdr_name = calloc(n + 1, sizeof(*w->hdr_name));
	w->hdr_val = calloc(n + 1, sizeof(*w->hdr_val));
	if (w->hdr_name == NULL || w->hdr_val == NULL)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (strpbrk(hdrs[i], "\r\n") != NULL)
			return -EINVAL;
		if ((copy = strdup(hdrs[i])) == NULL)
			return -ENOMEM;
		w->hdr_name[i] = copy;
		colon = strchr(copy, ':');
		if (colon == NULL || colon == copy || strcspn(copy, " \t") < (size_t)(colon - copy))
			return -EINVAL;
		*colon = '\0';
		v = colon + 1;
		v += strspn(v, " \t");
		w->hdr_val[i] = v;
	}
	return 0;
}

int
evl_http_request(struct evl *l, const char *method, const char *url, const char *body,
		 size_t body_len, const char *const *extra_headers, int timeout_ms, size_t max_body,
		 evl_http_cb cb, void *arg)
{
	struct evl_req *w;
	int rc;

	if (l == NULL || cb == NULL || timeout_ms <= 0)
		return -EINVAL;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return -ENOMEM;
	w->l = l;
	w->cb = cb;
	w->arg = arg;
	w->timeout_ms = timeout_ms;
	w->max_body = max_body;
	if ((rc = evl_method(method, &w->type)) < 0)
		goto fail;
	if ((rc = evl_req_parse_url(w, url)) < 0)
		goto fail;
	if ((rc = evl_req_copy_headers(w, extra_headers)) < 0)
		goto fail;
	if (body != NULL) {
		/* One spare byte so that an empty body still gets a buffer. */
		if ((w->body = malloc(body_len + 1)) == NULL) {
			rc = -ENOMEM;
			goto fail;
		}
		memcpy(w->body, body, body_len);
		w->body_len = body_len;
	}
	w->job.fn = evl_req_start;
	w->job.arg = w;
	if ((rc = evl_push(l, &w->job)) < 0)
		goto fail;
	return 0;
fail:
	evl_req_free(w);
	return rc;
}

/* ---- blocking wrapper ---- */

struct evl_sync {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	int rc;
	char *body;
	size_t len;
};

static void
evl_sync_cb(const struct evl_http_result *res, void *arg)
{
	struct evl_sync *s = arg;
	char *copy = NULL;
	int rc = res->err;

	if (rc == 0) {
		if ((copy = malloc(res->body_len + 1)) == NULL) {
			rc = -ENOMEM;
		} else {
			memcpy(copy, res->body, res->body_len);
			copy[res->body_len] = '\0';
			rc = res->status;
		}
	}
	pthread_mutex_lock(&s->lock);
	s->rc = rc;
	s->body = copy;
	s->len = copy != NULL ? res->body_len : 0;
	s->done = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

int
evl_http_sync(struct evl *l, const char *method, const char *url, const char *body, size_t body_len,
	      int timeout_ms, size_t max_body, char **ret_body, size_t *ret_len)
{
	struct evl_sync s = { .done = false };
	int rc;

	if (ret_body != NULL)
		*ret_body = NULL;
	if (ret_len != NULL)
		*ret_len = 0;
	/* The loop would wait for itself. */
	if (l != NULL && evl_self == l)
		return -EDEADLK;
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);
	rc = evl_http_request(l, method, url, body, body_len, NULL, timeout_ms, max_body,
			      evl_sync_cb, &s);
	if (rc == 0) {
		pthread_mutex_lock(&s.lock);
		while (!s.done)
			pthread_cond_wait(&s.cond, &s.lock);
		pthread_mutex_unlock(&s.lock);
		rc = s.rc;
		if (ret_body != NULL) {
			*ret_body = s.body;
			s.body = NULL;
			if (ret_len != NULL && *ret_body != NULL)
				*ret_len = s.len;
		}
		free(s.body);
	}
	pthread_cond_destroy(&s.cond);
	pthread_mutex_destroy(&s.lock);
	return rc;
}

/* ---- calls and timers ---- */

int
evl_call(struct evl *l, void (*fn)(void *arg), void *arg)
{
	struct evl_job *j;
	int rc;

	if (l == NULL || fn == NULL)
		return -EINVAL;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -ENOMEM;
	j->fn = fn;
	j->arg = arg;
	j->heap = true;
	if ((rc = evl_push(l, j)) < 0)
		free(j);
	return rc;
}

static void
evl_timer_fire_cb(evutil_socket_t fd, short what, void *arg)
{
	struct evl_timer *t = arg;
	void (*fn)(void *) = t->fn;
	void *fn_arg = t->arg;

	(void)fd;
	(void)what;
	LIST_REMOVE(t, link);
	event_free(t->ev);
	free(t);
	fn(fn_arg);
}

/* Job: arms a timer made by evl_call_later() on the loop thread. */
static void
evl_timer_arm(void *arg)
{
	struct evl_timer *t = arg;
	struct timeval tv = evl_tv(t->ms);

	LIST_INSERT_HEAD(&t->l->timers, t, link);
	evtimer_add(t->ev, &tv);
}

int
evl_call_later(struct evl *l, int ms, void (*fn)(void *arg), void *arg)
{
	struct evl_timer *t;
	int rc;

	if (l == NULL || fn == NULL || ms < 0)
		return -EINVAL;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return -ENOMEM;
	/* Made here rather than in the job so that running out of memory is
	 * reported to the caller; event_new only initialises, it does not
	 * touch the base's queues. */
	if ((t->ev = evtimer_new(l->base, evl_timer_fire_cb, t)) == NULL) {
		free(t);
		return -ENOMEM;
	}
	t->l = l;
	t->ms = ms;
	t->fn = fn;
	t->arg = arg;
	t->job.fn = evl_timer_arm;
	t->job.arg = t;
	if ((rc = evl_push(l, &t->job)) < 0) {
		event_free(t->ev);
		free(t);
	}
	return rc;
}

/* ---- the loop ---- */

/* Loop thread, once the queue is empty after evl_free() began: drops timers
 * that are not due, cancels requests, frees what the reaper has not, and
 * ends the loop. Timers and requests that the final batch of jobs armed or
 * started are among them, so those jobs need no special case. */
static void
evl_shutdown(struct evl *l)
{
	struct evl_timer *t;
	struct evl_req *w;

	while ((t = LIST_FIRST(&l->timers)) != NULL) {
		LIST_REMOVE(t, link);
		event_free(t->ev);
		free(t);
	}
	/* A cancelled callback may not start anything new (evl_push refuses),
	 * so this terminates. */
	while ((w = LIST_FIRST(&l->live)) != NULL)
		evl_req_abort(w, -ECANCELED);
	evl_reap_cb(-1, 0, l);
	event_base_loopbreak(l->base);
}

static void
evl_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct evl *l = arg;
	struct evl_job *j, *next;
	void (*fn)(void *);
	void *fn_arg;
	bool stop;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&l->lock);
	j = l->jobs;
	l->jobs = NULL;
	l->jobs_tail = &l->jobs;
	pthread_mutex_unlock(&l->lock);

	for (; j != NULL; j = next) {
		next = j->next;
		fn = j->fn;
		fn_arg = j->arg;
		if (j->heap)
			free(j);
		fn(fn_arg);
	}

	/* Jobs added while the batch ran re-activated the wake event and run
	 * next time; only an empty queue with stopping set ends the loop. */
	pthread_mutex_lock(&l->lock);
	stop = l->stopping && l->jobs == NULL;
	pthread_mutex_unlock(&l->lock);
	if (stop)
		evl_shutdown(l);
}

static void *
evl_thread_main(void *arg)
{
	struct evl *l = arg;

	evl_self = l;
	/* The wake and reap events are never added, only activated, so the
	 * loop would see itself as empty and return without this flag. */
	event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
	evl_self = NULL;
	return NULL;
}

/* libevent reads CLOCK_MONOTONIC_COARSE by default, which trails the real
 * clock by up to a tick (4 ms at HZ=250), so timers could fire that much
 * before they are due. The precise clock costs one vDSO call per loop. */
static struct event_base *
evl_base_new(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base;

	if (cfg == NULL)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

struct evl *
evl_new(void)
{
	struct evl *l;

	pthread_once(&evl_once, evl_threads_init);
	if (evl_threads_rc != 0)
		return NULL;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	if (pthread_mutex_init(&l->lock, NULL) != 0)
		goto fail_lock;
	l->jobs_tail = &l->jobs;
	LIST_INIT(&l->timers);
	LIST_INIT(&l->live);
	LIST_INIT(&l->dead);
	if ((l->base = evl_base_new()) == NULL)
		goto fail_base;
	l->wake = event_new(l->base, -1, 0, evl_wake_cb, l);
	l->reap = event_new(l->base, -1, 0, evl_reap_cb, l);
	if (l->wake == NULL || l->reap == NULL)
		goto fail_events;
	if (pthread_create(&l->thread, NULL, evl_thread_main, l) != 0)
		goto fail_events;
	return l;

fail_events:
	if (l->wake != NULL)
		event_free(l->wake);
	if (l->reap != NULL)
		event_free(l->reap);
	event_base_free(l->base);
fail_base:
	pthread_mutex_destroy(&l->lock);
fail_lock:
	free(l);
	return NULL;
}

void
evl_free(struct evl *l)
{
	if (l == NULL)
		return;
	/* Joining ourselves would hang or fail; either way it is a bug in
	 * the caller that must not pass silently. */
	if (evl_self == l)
		abort();
	pthread_mutex_lock(&l->lock);
	l->stopping = true;
	event_active(l->wake, EV_TIMEOUT, 0);
	pthread_mutex_unlock(&l->lock);
	pthread_join(l->thread, NULL);

	event_free(l->wake);
	event_free(l->reap);
	/* Runs pending finalizers, e.g. of bufferevents freed by shutdown. */
	event_base_free(l->base);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

struct event_base *
evl_base(struct evl *l)
{
	return l != NULL ? l->base : NULL;
}
