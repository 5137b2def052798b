/* SPDX-License-Identifier: MIT */
/* Unit tests for evl: loop thread, calls, timers, HTTP client against real local servers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>

#include "dmn.h"
#include "evl.h"

/* Every wait in this file is bounded so that a lost callback fails the test
 * instead of hanging it. */
#define WAIT_MS 5000

/* ---- small helpers ---- */

/* A counter that other threads bump and the test thread waits on. */
struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int n;
};

static void
waiter_init(struct waiter *w)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
	w->n = 0;
}

static void
waiter_done(struct waiter *w)
{
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
}

static void
waiter_add(struct waiter *w, int k)
{
	pthread_mutex_lock(&w->lock);
	w->n += k;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static int
waiter_get(struct waiter *w)
{
	int n;

	pthread_mutex_lock(&w->lock);
	n = w->n;
	pthread_mutex_unlock(&w->lock);
	return n;
}

/* Waits until the counter reaches at least n. Returns false on timeout. */
static bool
waiter_wait(struct waiter *w, int n, int ms)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&w->lock);
	while (w->n < n)
		if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) == ETIMEDOUT)
			break;
	ok = w->n >= n;
	pthread_mutex_unlock(&w->lock);
	return ok;
}

/* For work that must not run. */
static void
never_fn(void *arg)
{
	*(int *)arg += 1;
}

/* A TCP socket bound to 127.0.0.1 with a kernel-chosen port; with
 * backlog < 0 it does not listen, so connects to it are refused while the
 * port stays ours (a closed port could be reused by a parallel test run). */
static int
bind_local(int backlog, int *ret_port)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (backlog >= 0)
		assert_int_equal(listen(fd, backlog), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*ret_port = ntohs(sa.sin_port);
	return fd;
}

static void
make_url(char *buf, size_t n, int port, const char *path)
{
	snprintf(buf, n, "http://127.0.0.1:%d%s", port, path);
}

/* ---- an evhttp server on its own base and thread ---- */

struct srv {
	struct event_base *base;
	struct evhttp *http;
	pthread_t thread;
	int port;
};

static const char *
srv_method(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	default:
		return "OTHER";
	}
}

static const char *
srv_header(struct evhttp_request *req, const char *name)
{
	const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), name);

	return v != NULL ? v : "-";
}

/*
 * /echo...       200 "METHOD|uri|Host|Content-Type|X-Test|body", text/plain
 * /status/N      N with body "status N" (none for 204)
 * /big/N         200 with N bytes, Content-Length
 * /chunked/N     200 with N bytes in chunks of 1000
 * anything else  404
 */
static void
srv_handle(struct evhttp_request *req, void *arg)
{
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *out = evbuffer_new();
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
	size_t n, i, k;
	int code;

	(void)arg;
	if (strncmp(uri, "/echo", 5) == 0) {
		evbuffer_add_printf(out, "%s|%s|%s|%s|%s|",
				    srv_method(evhttp_request_get_command(req)), uri,
				    srv_header(req, "Host"), srv_header(req, "Content-Type"),
				    srv_header(req, "X-Test"));
		evbuffer_add_buffer(out, evhttp_request_get_input_buffer(req));
		evhttp_add_header(oh, "Content-Type", "text/plain");
		evhttp_send_reply(req, 200, "OK", out);
	} else if (sscanf(uri, "/status/%d", &code) == 1) {
		if (code != 204)
			evbuffer_add_printf(out, "status %d", code);
		evhttp_send_reply(req, code, "Test", out);
	} else if (sscanf(uri, "/big/%zu", &n) == 1) {
		for (i = 0; i < n; i++)
			evbuffer_add(out, "x", 1);
		evhttp_send_reply(req, 200, "OK", out);
	} else if (sscanf(uri, "/chunked/%zu", &n) == 1) {
		evhttp_send_reply_start(req, 200, "OK");
		for (i = 0; i < n; i += k) {
			k = n - i < 1000 ? n - i : 1000;
			while (evbuffer_get_length(out) < k)
				evbuffer_add(out, "y", 1);
			evhttp_send_reply_chunk(req, out);
		}
		evhttp_send_reply_end(req);
	} else {
		evhttp_send_reply(req, 404, "Not Found", out);
	}
	evbuffer_free(out);
}

static void *
srv_main(void *arg)
{
	struct srv *s = arg;

	event_base_loop(s->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static void
srv_start(struct srv *s)
{
	/* Room for the concurrency test's burst of connects. */
	int fd = bind_local(1024, &s->port);

	evutil_make_socket_nonblocking(fd);
	s->base = event_base_new();
	assert_non_null(s->base);
	s->http = evhttp_new(s->base);
	assert_non_null(s->http);
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
						    EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
						    EVHTTP_REQ_PATCH);
	evhttp_set_gencb(s->http, srv_handle, s);
	assert_non_null(evhttp_accept_socket_with_handle(s->http, fd));
	assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
}

static void
srv_stop(struct srv *s)
{
	event_base_loopbreak(s->base);
	pthread_join(s->thread, NULL);
	evhttp_free(s->http);
	event_base_free(s->base);
}

/* ---- a raw server that reads requests and never answers ---- */

#define HANG_MAX 128

struct hang {
	int lfd;
	int port;
	int pipe[2]; /* written to stop the thread */
	pthread_t thread;
	struct waiter requests; /* complete request heads seen */
};

static void *
hang_main(void *arg)
{
	struct hang *h = arg;
	struct pollfd pfd[HANG_MAX + 2];
	unsigned tail[HANG_MAX + 2]; /* last 4 bytes seen, to spot CRLFCRLF */
	char buf[4096];
	int nfd = 2, i, j, fd;
	ssize_t n;

	pfd[0] = (struct pollfd){ .fd = h->pipe[0], .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = h->lfd, .events = POLLIN };
	for (;;) {
		if (poll(pfd, (nfds_t)nfd, -1) < 0)
			continue;
		if (pfd[0].revents != 0)
			break;
		if ((pfd[1].revents & POLLIN) && nfd < HANG_MAX + 2 &&
		    (fd = accept4(h->lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
			pfd[nfd] = (struct pollfd){ .fd = fd, .events = POLLIN };
			tail[nfd++] = 0;
		}
		for (i = 2; i < nfd; i++) {
			if (pfd[i].revents == 0)
				continue;
			n = recv(pfd[i].fd, buf, sizeof(buf), 0);
			if (n <= 0) {
				close(pfd[i].fd);
				pfd[i] = pfd[nfd - 1];
				tail[i] = tail[nfd - 1];
				nfd--;
				i--;
				continue;
			}
			for (j = 0; j < n; j++) {
				tail[i] = tail[i] << 8 | (unsigned char)buf[j];
				if (tail[i] == 0x0d0a0d0a)
					waiter_add(&h->requests, 1);
			}
		}
	}
	for (i = 2; i < nfd; i++)
		close(pfd[i].fd);
	return NULL;
}

static void
hang_start(struct hang *h)
{
	h->lfd = bind_local(HANG_MAX, &h->port);
	assert_int_equal(pipe2(h->pipe, O_CLOEXEC), 0);
	waiter_init(&h->requests);
	assert_int_equal(pthread_create(&h->thread, NULL, hang_main, h), 0);
}

static void
hang_stop(struct hang *h)
{
	assert_int_equal(write(h->pipe[1], "x", 1), 1);
	pthread_join(h->thread, NULL);
	close(h->pipe[0]);
	close(h->pipe[1]);
	close(h->lfd);
	waiter_done(&h->requests);
}

/* ---- a raw server that answers one request with canned bytes ---- */

struct canned {
	int lfd;
	int port;
	const char *resp;
	pthread_t thread;
};

static void *
canned_main(void *arg)
{
	struct canned *c = arg;
	unsigned tail = 0;
	char buf[4096];
	ssize_t n, i;
	int fd;

	fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return NULL;
	while (tail != 0x0d0a0d0a && (n = recv(fd, buf, sizeof(buf), 0)) > 0)
		for (i = 0; i < n && tail != 0x0d0a0d0a; i++)
			tail = tail << 8 | (unsigned char)buf[i];
	/* The client may already have given up; that must not kill us. */
	(void)send(fd, c->resp, strlen(c->resp), MSG_NOSIGNAL);
	close(fd);
	return NULL;
}

static void
canned_start(struct canned *c, const char *resp)
{
	c->lfd = bind_local(4, &c->port);
	c->resp = resp;
	assert_int_equal(pthread_create(&c->thread, NULL, canned_main, c), 0);
}

static void
canned_stop(struct canned *c)
{
	pthread_join(c->thread, NULL);
	close(c->lfd);
}

/* ---- shared fixtures ---- */

static struct srv srv;
static struct hang hang;
static int blackhole_fd, blackhole_port; /* listens, never accepts */
static int closed_fd, closed_port;       /* bound, not listening */
static pthread_t main_thread;

static int
group_setup(void **state)
{
	(void)state;
	srv_start(&srv);
	hang_start(&hang);
	/* Connects complete in the kernel backlog; nobody ever reads. */
	blackhole_fd = bind_local(64, &blackhole_port);
	closed_fd = bind_local(-1, &closed_port);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	close(closed_fd);
	close(blackhole_fd);
	hang_stop(&hang);
	srv_stop(&srv);
	return 0;
}

/* What /echo answers, with the test server's port in the Host header. */
static const char *
echo_want(char *buf, size_t n, const char *method, const char *uri, const char *ctype,
	  const char *xtest, const char *body)
{
	snprintf(buf, n, "%s|%s|127.0.0.1:%d|%s|%s|%s", method, uri, srv.port, ctype, xtest, body);
	return buf;
}

/* ---- one request's outcome, copied out of the callback ---- */

struct box {
	struct waiter calls;
	int err;
	int status;
	char *body;
	size_t len;
	bool nul;    /* body[len] == '\0' */
	char *ctype; /* NULL when none */
	pthread_t thread;
};

static void
box_init(struct box *b)
{
	memset(b, 0, sizeof(*b));
	waiter_init(&b->calls);
}

static void
box_done(struct box *b)
{
	free(b->body);
	free(b->ctype);
	waiter_done(&b->calls);
}

static void
box_cb(const struct evl_http_result *res, void *arg)
{
	struct box *b = arg;

	/* Only the first call is kept; later ones show up in the count. */
	if (waiter_get(&b->calls) == 0) {
		b->err = res->err;
		b->status = res->status;
		b->len = res->body_len;
		b->nul = res->body != NULL && res->body[res->body_len] == '\0';
		b->body = malloc(res->body_len + 1);
		if (b->body != NULL && res->body != NULL) {
			memcpy(b->body, res->body, res->body_len);
			b->body[res->body_len] = '\0';
		}
		b->ctype = res->content_type != NULL ? strdup(res->content_type) : NULL;
		b->thread = pthread_self();
	}
	waiter_add(&b->calls, 1);
}

/* Runs one request on a fresh loop and waits for it. evl_free() is the
 * barrier after which no further callback may come, so the exact count is
 * checked after it. */
static void
run_one(struct box *b, const char *method, const char *url, const char *body, size_t body_len,
	const char *const *hdrs, int timeout_ms, size_t max_body)
{
	struct evl *l = evl_new();

	assert_non_null(l);
	box_init(b);
	assert_int_equal(evl_http_request(l, method, url, body, body_len, hdrs, timeout_ms,
					  max_body, box_cb, b),
			 0);
	assert_true(waiter_wait(&b->calls, 1, WAIT_MS));
	evl_free(l);
	assert_int_equal(waiter_get(&b->calls), 1);
	assert_false(pthread_equal(b->thread, main_thread));
	assert_true(b->nul);
}

/* ---- HTTP tests ---- */

static void
test_get_echo(void **state)
{
	const char *hdrs[] = { "X-Test: hello there", NULL };
	char url[128], want[256];
	struct box b;

	(void)state;
	make_url(url, sizeof(url), srv.port, "/echo/x?a=1&b=two");
	run_one(&b, "GET", url, NULL, 0, hdrs, 2000, 4096);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.status, 200);
	echo_want(want, sizeof(want), "GET", "/echo/x?a=1&b=two", "-", "hello there", "");
	assert_string_equal(b.body, want);
	assert_int_equal(b.len, strlen(want));
	assert_non_null(b.ctype);
	assert_string_equal(b.ctype, "text/plain");
	box_done(&b);
}

static void
test_post_bodies(void **state)
{
	const char *csv[] = { "Content-Type: text/csv", "X-Test:tight", NULL };
	static const char bin[] = { 'a', '\0', 'b', '\n' };
	char url[128], want[256];
	struct box b;

	(void)state;
	make_url(url, sizeof(url), srv.port, "/echo");

	/* JSON by default, body passed through byte for byte. */
	run_one(&b, "POST", url, "{\"k\":1}", 7, NULL, 2000, 4096);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.status, 200);
	assert_string_equal(b.body, echo_want(want, sizeof(want), "POST", "/echo",
					      "application/json", "-", "{\"k\":1}"));
	box_done(&b);

	/* An explicit Content-Type wins; header value without a space. */
	run_one(&b, "PUT", url, "x,y", 3, csv, 2000, 4096);
	assert_int_equal(b.err, 0);
	assert_string_equal(
		b.body, echo_want(want, sizeof(want), "PUT", "/echo", "text/csv", "tight", "x,y"));
	box_done(&b);

	/* Embedded NUL: body_len, not strlen, is the length. */
	run_one(&b, "POST", url, bin, sizeof(bin), NULL, 2000, 4096);
	assert_int_equal(b.err, 0);
	echo_want(want, sizeof(want), "POST", "/echo", "application/json", "-", "");
	assert_int_equal(b.len, strlen(want) + sizeof(bin));
	assert_memory_equal(b.body, want, strlen(want));
	assert_memory_equal(b.body + strlen(want), bin, sizeof(bin));
	box_done(&b);

	/* libevent adds Content-Length only for POST/PUT; PATCH needs ours. */
	run_one(&b, "PATCH", url, "patched", 7, NULL, 2000, 4096);
	assert_int_equal(b.err, 0);
	assert_string_equal(b.body, echo_want(want, sizeof(want), "PATCH", "/echo",
					      "application/json", "-", "patched"));
	box_done(&b);

	/* An empty but present body still gets the content type. */
	run_one(&b, "POST", url, "", 0, NULL, 2000, 4096);
	assert_int_equal(b.err, 0);
	assert_string_equal(b.body, echo_want(want, sizeof(want), "POST", "/echo",
					      "application/json", "-", ""));
	box_done(&b);

	run_one(&b, "DELETE", url, NULL, 0, NULL, 2000, 4096);
	assert_int_equal(b.err, 0);
	assert_string_equal(b.body, echo_want(want, sizeof(want), "DELETE", "/echo", "-", "-", ""));
	box_done(&b);
}

static void
test_status_codes(void **state)
{
	static const int codes[] = { 201, 301, 404, 500, 503 };
	char url[128], want[32];
	struct box b;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		snprintf(want, sizeof(want), "/status/%d", codes[i]);
		make_url(url, sizeof(url), srv.port, want);
		run_one(&b, "GET", url, NULL, 0, NULL, 2000, 4096);
		assert_int_equal(b.err, 0);
		assert_int_equal(b.status, codes[i]);
		snprintf(want, sizeof(want), "status %d", codes[i]);
		assert_string_equal(b.body, want);
		box_done(&b);
	}
	make_url(url, sizeof(url), srv.port, "/status/204");
	run_one(&b, "GET", url, NULL, 0, NULL, 2000, 4096);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.status, 204);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.body, "");
	box_done(&b);

	make_url(url, sizeof(url), srv.port, "/nowhere");
	run_one(&b, "HEAD", url, NULL, 0, NULL, 2000, 4096);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.status, 404);
	assert_int_equal(b.len, 0);
	box_done(&b);
}

static void
test_timeout(void **state)
{
	char url[128];
	long long t0, dt;
	struct box b;

	(void)state;
	/* Accepted and read, never answered. */
	make_url(url, sizeof(url), hang.port, "/");
	t0 = dmn_now_ms();
	run_one(&b, "GET", url, NULL, 0, NULL, 200, 4096);
	dt = dmn_now_ms() - t0;
	assert_int_equal(b.err, -ETIMEDOUT);
	assert_int_equal(b.status, 0);
	assert_int_equal(b.len, 0);
	assert_null(b.ctype);
	assert_true(dt >= 190);
	assert_true(dt < 2000);
	box_done(&b);

	/* Connected in the kernel's backlog, never accepted. */
	make_url(url, sizeof(url), blackhole_port, "/");
	t0 = dmn_now_ms();
	run_one(&b, "POST", url, "{}", 2, NULL, 150, 4096);
	dt = dmn_now_ms() - t0;
	assert_int_equal(b.err, -ETIMEDOUT);
	assert_int_equal(b.status, 0);
	assert_true(dt >= 140);
	assert_true(dt < 2000);
	box_done(&b);
}

static void
test_refused(void **state)
{
	char url[128];
	struct box b;

	(void)state;
	make_url(url, sizeof(url), closed_port, "/echo");
	run_one(&b, "GET", url, NULL, 0, NULL, 2000, 4096);
	assert_int_equal(b.err, -ECONNREFUSED);
	assert_int_equal(b.status, 0);
	assert_int_equal(b.len, 0);
	box_done(&b);
}

static void
test_max_body(void **state)
{
	char url[128];
	struct box b;

	(void)state;
	/* Exactly the cap is fine. */
	make_url(url, sizeof(url), srv.port, "/big/1000");
	run_one(&b, "GET", url, NULL, 0, NULL, 2000, 1000);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.status, 200);
	assert_int_equal(b.len, 1000);
	assert_int_equal(strspn(b.body, "x"), 1000);
	box_done(&b);

	/* One byte over, announced by Content-Length. */
	run_one(&b, "GET", url, NULL, 0, NULL, 2000, 999);
	assert_int_equal(b.err, -EMSGSIZE);
	assert_int_equal(b.status, 0);
	assert_int_equal(b.len, 0);
	box_done(&b);

	/* Chunked: the excess shows only while reading. */
	make_url(url, sizeof(url), srv.port, "/chunked/5000");
	run_one(&b, "GET", url, NULL, 0, NULL, 2000, 4000);
	assert_int_equal(b.err, -EMSGSIZE);
	box_done(&b);
	run_one(&b, "GET", url, NULL, 0, NULL, 2000, 5000);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.len, 5000);
	box_done(&b);

	/* A zero cap allows only empty bodies. */
	make_url(url, sizeof(url), srv.port, "/status/204");
	run_one(&b, "GET", url, NULL, 0, NULL, 2000, 0);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.status, 204);
	box_done(&b);
}

/* Responses libevent's server would never send. */
static void
test_raw_responses(void **state)
{
	char url[128];
	struct canned c;
	struct box b;

	(void)state;
	/* HTTP/1.0, body delimited by close. */
	canned_start(&c, "HTTP/1.0 200 OK\r\nContent-Type: text/x\r\n\r\nuntil close");
	make_url(url, sizeof(url), c.port, "/");
	run_one(&b, "GET", url, NULL, 0, NULL, 2000, 100);
	canned_stop(&c);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.status, 200);
	assert_string_equal(b.body, "until close");
	assert_string_equal(b.ctype, "text/x");
	box_done(&b);

	canned_start(&c, "HTTP/1.0 200 OK\r\n\r\n0123456789abcdef");
	make_url(url, sizeof(url), c.port, "/");
	run_one(&b, "GET", url, NULL, 0, NULL, 2000, 10);
	canned_stop(&c);
	assert_int_equal(b.err, -EMSGSIZE);
	box_done(&b);

	canned_start(&c, "this is not http\r\n\r\n");
	make_url(url, sizeof(url), c.port, "/");
	run_one(&b, "GET", url, NULL, 0, NULL, 2000, 100);
	canned_stop(&c);
	assert_int_equal(b.err, -EIO);
	assert_int_equal(b.status, 0);
	box_done(&b);

	/* Closed after reading the request, nothing said. */
	canned_start(&c, "");
	make_url(url, sizeof(url), c.port, "/");
	run_one(&b, "GET", url, NULL, 0, NULL, 2000, 100);
	canned_stop(&c);
	assert_int_equal(b.err, -EIO);
	box_done(&b);

	/* Truncated: fewer bytes than Content-Length, then close. */
	canned_start(&c, "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort");
	make_url(url, sizeof(url), c.port, "/");
	run_one(&b, "GET", url, NULL, 0, NULL, 2000, 100);
	canned_stop(&c);
	assert_int_equal(b.err, -EIO);
	box_done(&b);
}

static void
test_bad_args(void **state)
{
	const char *no_colon[] = { "X-Test hello", NULL };
	const char *empty_name[] = { ": v", NULL };
	const char *crlf[] = { "X-Test: a\r\nX-Evil: b", NULL };
	const char *space_name[] = { "X Test: v", NULL };
	char url[128];
	struct evl *l = evl_new();
	struct box b;

	(void)state;
	assert_non_null(l);
	box_init(&b);
	make_url(url, sizeof(url), srv.port, "/echo");
	assert_int_equal(evl_http_request(l, "GET", "https://127.0.0.1/", NULL, 0, NULL, 1000, 100,
					  box_cb, &b),
			 -EINVAL);
	assert_int_equal(evl_http_request(l, "GET", "ftp://127.0.0.1/", NULL, 0, NULL, 1000, 100,
					  box_cb, &b),
			 -EINVAL);
	assert_int_equal(
		evl_http_request(l, "GET", "127.0.0.1:80/x", NULL, 0, NULL, 1000, 100, box_cb, &b),
		-EINVAL);
	assert_int_equal(
		evl_http_request(l, "GET", "http://", NULL, 0, NULL, 1000, 100, box_cb, &b),
		-EINVAL);
	assert_int_equal(
		evl_http_request(l, "GET", "http://h:0/", NULL, 0, NULL, 1000, 100, box_cb, &b),
		-EINVAL);
	assert_int_equal(
		evl_http_request(l, "GET", "http://h:99999/", NULL, 0, NULL, 1000, 100, box_cb, &b),
		-EINVAL);
	assert_int_equal(
		evl_http_request(l, "GET", "http://[::1/", NULL, 0, NULL, 1000, 100, box_cb, &b),
		-EINVAL);
	assert_int_equal(evl_http_request(l, "GET", NULL, NULL, 0, NULL, 1000, 100, box_cb, &b),
			 -EINVAL);
	assert_int_equal(evl_http_request(l, "get", url, NULL, 0, NULL, 1000, 100, box_cb, &b),
			 -EINVAL);
	assert_int_equal(evl_http_request(l, "BREW", url, NULL, 0, NULL, 1000, 100, box_cb, &b),
			 -EINVAL);
	assert_int_equal(evl_http_request(l, NULL, url, NULL, 0, NULL, 1000, 100, box_cb, &b),
			 -EINVAL);
	assert_int_equal(evl_http_request(l, "GET", url, NULL, 0, no_colon, 1000, 100, box_cb, &b),
			 -EINVAL);
	assert_int_equal(
		evl_http_request(l, "GET", url, NULL, 0, empty_name, 1000, 100, box_cb, &b),
		-EINVAL);
	assert_int_equal(evl_http_request(l, "GET", url, NULL, 0, crlf, 1000, 100, box_cb, &b),
			 -EINVAL);
	assert_int_equal(
		evl_http_request(l, "GET", url, NULL, 0, space_name, 1000, 100, box_cb, &b),
		-EINVAL);
	assert_int_equal(evl_http_request(l, "GET", url, NULL, 0, NULL, 0, 100, box_cb, &b),
			 -EINVAL);
	assert_int_equal(evl_http_request(l, "GET", url, NULL, 0, NULL, 1000, 100, NULL, &b),
			 -EINVAL);
	assert_int_equal(evl_http_request(NULL, "GET", url, NULL, 0, NULL, 1000, 100, box_cb, &b),
			 -EINVAL);
	assert_int_equal(evl_call(l, NULL, NULL), -EINVAL);
	assert_int_equal(evl_call_later(l, -1, never_fn, NULL), -EINVAL);
	assert_int_equal(
		evl_http_sync(l, "GET", "https://127.0.0.1/", NULL, 0, 1000, 100, NULL, NULL),
		-EINVAL);
	evl_free(l);
	/* Refused requests never call back. */
	assert_int_equal(waiter_get(&b.calls), 0);
	box_done(&b);
	evl_free(NULL);
	assert_null(evl_base(NULL));
}

/* 200 requests in flight at once, each must call back exactly once with
 * its own answer. */
#define CONC_N 200

struct conc {
	struct waiter done;
	int calls[CONC_N];
	int status[CONC_N];
	int err[CONC_N];
	bool body_ok[CONC_N];
};

struct conc_arg {
	struct conc *c;
	int i;
};

static void
conc_cb(const struct evl_http_result *res, void *arg)
{
	struct conc_arg *a = arg;
	char want[64];

	snprintf(want, sizeof(want), "GET|/echo?i=%d|", a->i);
	a->c->calls[a->i]++;
	a->c->status[a->i] = res->status;
	a->c->err[a->i] = res->err;
	a->c->body_ok[a->i] = strncmp(res->body, want, strlen(want)) == 0;
	waiter_add(&a->c->done, 1);
}

static void
test_concurrent(void **state)
{
	static struct conc c;
	static struct conc_arg args[CONC_N];
	struct evl *l = evl_new();
	char url[128], path[32];
	int i;

	(void)state;
	assert_non_null(l);
	memset(&c, 0, sizeof(c));
	waiter_init(&c.done);
	for (i = 0; i < CONC_N; i++) {
		args[i] = (struct conc_arg){ .c = &c, .i = i };
		snprintf(path, sizeof(path), "/echo?i=%d", i);
		make_url(url, sizeof(url), srv.port, path);
		assert_int_equal(evl_http_request(l, "GET", url, NULL, 0, NULL, WAIT_MS, 4096,
						  conc_cb, &args[i]),
				 0);
	}
	assert_true(waiter_wait(&c.done, CONC_N, WAIT_MS + 2000));
	evl_free(l);
	assert_int_equal(waiter_get(&c.done), CONC_N);
	for (i = 0; i < CONC_N; i++) {
		assert_int_equal(c.calls[i], 1);
		assert_int_equal(c.err[i], 0);
		assert_int_equal(c.status[i], 200);
		assert_true(c.body_ok[i]);
	}
	waiter_done(&c.done);
}

struct sync_job {
	struct evl *l;
	char *url;
	int rc;
	struct waiter done;
};

static void
sync_on_loop(void *arg)
{
	struct sync_job *j = arg;

	j->rc = evl_http_sync(j->l, "GET", j->url, NULL, 0, 1000, 100, NULL, NULL);
	waiter_add(&j->done, 1);
}

static void
test_sync(void **state)
{
	struct evl *l = evl_new();
	struct sync_job j;
	char url[128], want[256], *body = (char *)1;
	size_t len = 99;

	(void)state;
	assert_non_null(l);
	make_url(url, sizeof(url), srv.port, "/echo?s=1");
	assert_int_equal(evl_http_sync(l, "POST", url, "hi", 2, 2000, 4096, &body, &len), 200);
	assert_non_null(body);
	assert_string_equal(body, echo_want(want, sizeof(want), "POST", "/echo?s=1",
					    "application/json", "-", "hi"));
	assert_int_equal(len, strlen(body));
	free(body);

	make_url(url, sizeof(url), srv.port, "/status/404");
	assert_int_equal(evl_http_sync(l, "GET", url, NULL, 0, 2000, 4096, &body, &len), 404);
	assert_string_equal(body, "status 404");
	free(body);

	/* The body may be ignored. */
	assert_int_equal(evl_http_sync(l, "GET", url, NULL, 0, 2000, 4096, NULL, NULL), 404);

	make_url(url, sizeof(url), closed_port, "/");
	body = (char *)1;
	assert_int_equal(evl_http_sync(l, "GET", url, NULL, 0, 2000, 4096, &body, &len),
			 -ECONNREFUSED);
	assert_null(body);
	assert_int_equal(len, 0);

	make_url(url, sizeof(url), srv.port, "/big/200");
	assert_int_equal(evl_http_sync(l, "GET", url, NULL, 0, 2000, 100, &body, &len), -EMSGSIZE);
	assert_null(body);

	/* On the loop thread it would wait for itself. */
	make_url(url, sizeof(url), srv.port, "/echo");
	j.l = l;
	j.url = url;
	j.rc = 0;
	waiter_init(&j.done);
	assert_int_equal(evl_call(l, sync_on_loop, &j), 0);
	assert_true(waiter_wait(&j.done, 1, WAIT_MS));
	assert_int_equal(j.rc, -EDEADLK);
	waiter_done(&j.done);
	evl_free(l);
}

/* ---- calls and timers ---- */

#define ORDER_THREADS 4
#define ORDER_CALLS   2000

struct order {
	struct evl *l;
	int last[ORDER_THREADS];
	int bad;
	int total;
	bool thread_set;
	pthread_t thread;
	int wrong_thread;
	struct waiter done;
};

struct order_item {
	struct order *o;
	int t;
	int seq;
};

static struct order_item order_items[ORDER_THREADS][ORDER_CALLS];

static void
order_fn(void *arg)
{
	struct order_item *it = arg;
	struct order *o = it->o;

	/* Runs only on the loop thread, so no lock is needed here. */
	if (!o->thread_set) {
		o->thread = pthread_self();
		o->thread_set = true;
	} else if (!pthread_equal(o->thread, pthread_self())) {
		o->wrong_thread++;
	}
	if (it->seq != o->last[it->t] + 1)
		o->bad++;
	o->last[it->t] = it->seq;
	o->total++;
	waiter_add(&o->done, 1);
}

struct order_thread {
	struct order *o;
	int t;
	int failed;
};

static void *
order_thread_main(void *arg)
{
	struct order_thread *ot = arg;
	int i;

	for (i = 0; i < ORDER_CALLS; i++) {
		order_items[ot->t][i] = (struct order_item){ .o = ot->o, .t = ot->t, .seq = i };
		if (evl_call(ot->o->l, order_fn, &order_items[ot->t][i]) != 0)
			ot->failed++;
	}
	return NULL;
}

static void
test_call_order(void **state)
{
	static struct order o;
	struct order_thread ot[ORDER_THREADS];
	pthread_t th[ORDER_THREADS];
	int i;

	(void)state;
	memset(&o, 0, sizeof(o));
	waiter_init(&o.done);
	o.l = evl_new();
	assert_non_null(o.l);
	for (i = 0; i < ORDER_THREADS; i++) {
		o.last[i] = -1;
		ot[i] = (struct order_thread){ .o = &o, .t = i };
	}
	for (i = 0; i < ORDER_THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, order_thread_main, &ot[i]), 0);
	for (i = 0; i < ORDER_THREADS; i++)
		pthread_join(th[i], NULL);
	assert_true(waiter_wait(&o.done, ORDER_THREADS * ORDER_CALLS, WAIT_MS));
	evl_free(o.l);
	for (i = 0; i < ORDER_THREADS; i++) {
		assert_int_equal(ot[i].failed, 0);
		assert_int_equal(o.last[i], ORDER_CALLS - 1);
	}
	assert_int_equal(o.bad, 0);
	assert_int_equal(o.wrong_thread, 0);
	assert_int_equal(o.total, ORDER_THREADS * ORDER_CALLS);
	assert_true(o.thread_set);
	assert_false(pthread_equal(o.thread, main_thread));
	waiter_done(&o.done);
}

struct later {
	long long t0;
	int order[8];
	long long at[8];
	int n;
	struct waiter done;
};

struct later_item {
	struct later *lt;
	int tag;
};

static void
later_fn(void *arg)
{
	struct later_item *it = arg;
	struct later *lt = it->lt;

	lt->order[lt->n] = it->tag;
	lt->at[lt->n] = dmn_now_ms() - lt->t0;
	lt->n++;
	waiter_add(&lt->done, 1);
}

static void
test_call_later(void **state)
{
	struct later lt = { .n = 0 };
	struct later_item it[4];
	struct evl *l = evl_new();
	int never = 0, i;

	(void)state;
	assert_non_null(l);
	waiter_init(&lt.done);
	for (i = 0; i < 4; i++)
		it[i] = (struct later_item){ .lt = &lt, .tag = i };
	lt.t0 = dmn_now_ms();
	assert_int_equal(evl_call_later(l, 150, later_fn, &it[3]), 0);
	assert_int_equal(evl_call_later(l, 50, later_fn, &it[1]), 0);
	assert_int_equal(evl_call_later(l, 100, later_fn, &it[2]), 0);
	assert_int_equal(evl_call(l, later_fn, &it[0]), 0);
	/* Not due before evl_free: dropped, never run. */
	assert_int_equal(evl_call_later(l, 60000, never_fn, &never), 0);
	assert_true(waiter_wait(&lt.done, 4, WAIT_MS));
	evl_free(l);
	assert_int_equal(lt.n, 4);
	for (i = 0; i < 4; i++)
		assert_int_equal(lt.order[i], i);
	/* Never early; 1 ms for truncating to milliseconds. */
	assert_true(lt.at[1] >= 49);
	assert_true(lt.at[2] >= 99);
	assert_true(lt.at[3] >= 149);
	assert_true(lt.at[3] < 2000);
	assert_int_equal(never, 0);
	waiter_done(&lt.done);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	waiter_add(arg, 1);
}

struct base_job {
	struct evl *l;
	struct event *ev;
	struct waiter *w;
};

static void
base_add_timer(void *arg)
{
	struct base_job *j = arg;
	struct timeval tv = { 0, 10000 };

	j->ev = evtimer_new(evl_base(j->l), timer_cb, j->w);
	evtimer_add(j->ev, &tv);
}

/* Callers may add their own events on the loop thread. */
static void
test_base(void **state)
{
	struct evl *l = evl_new();
	struct base_job j;
	struct waiter w;

	(void)state;
	assert_non_null(l);
	assert_non_null(evl_base(l));
	waiter_init(&w);
	j = (struct base_job){ .l = l, .w = &w };
	assert_int_equal(evl_call(l, base_add_timer, &j), 0);
	assert_true(waiter_wait(&w, 1, WAIT_MS));
	evl_free(l);
	event_free(j.ev);
	waiter_done(&w);
}

/* ---- shutdown ---- */

static void
count_fn(void *arg)
{
	waiter_add(arg, 1);
}

#define FREE_HANG   10
#define FREE_HOLE   5
#define FREE_QUEUED 5
#define FREE_N      (FREE_HANG + FREE_HOLE + FREE_QUEUED)

static void
test_free_in_flight(void **state)
{
	struct box b[FREE_N];
	struct waiter jobs;
	struct evl *l = evl_new();
	char url[128];
	int i, base, never = 0;
	long long t0;

	(void)state;
	assert_non_null(l);
	waiter_init(&jobs);
	for (i = 0; i < FREE_N; i++)
		box_init(&b[i]);

	/* In flight for sure: the server has read every request head. */
	base = waiter_get(&hang.requests);
	make_url(url, sizeof(url), hang.port, "/h");
	for (i = 0; i < FREE_HANG; i++)
		assert_int_equal(
			evl_http_request(l, "GET", url, NULL, 0, NULL, 60000, 100, box_cb, &b[i]),
			0);
	assert_true(waiter_wait(&hang.requests, base + FREE_HANG, WAIT_MS));

	make_url(url, sizeof(url), blackhole_port, "/b");
	for (; i < FREE_HANG + FREE_HOLE; i++)
		assert_int_equal(
			evl_http_request(l, "POST", url, "{}", 2, NULL, 60000, 100, box_cb, &b[i]),
			0);
	/* Queued work runs before the loop stops. */
	for (int k = 0; k < 3; k++)
		assert_int_equal(evl_call(l, count_fn, &jobs), 0);
	assert_int_equal(evl_call_later(l, 60000, never_fn, &never), 0);
	/* Accepted but probably not started yet. */
	make_url(url, sizeof(url), srv.port, "/echo");
	for (; i < FREE_N; i++)
		assert_int_equal(
			evl_http_request(l, "GET", url, NULL, 0, NULL, 60000, 100, box_cb, &b[i]),
			0);

	t0 = dmn_now_ms();
	evl_free(l);
	assert_true(dmn_now_ms() - t0 < 2000);
	assert_int_equal(waiter_get(&jobs), 3);
	assert_int_equal(never, 0);
	for (i = 0; i < FREE_N; i++) {
		assert_int_equal(waiter_get(&b[i].calls), 1);
		assert_true(b[i].nul);
		assert_false(pthread_equal(b[i].thread, main_thread));
		if (i < FREE_HANG + FREE_HOLE) {
			assert_int_equal(b[i].err, -ECANCELED);
			assert_int_equal(b[i].status, 0);
		} else {
			/* The queued ones may have raced to completion. */
			assert_true(b[i].err == -ECANCELED || b[i].status == 200);
		}
		box_done(&b[i]);
	}
	waiter_done(&jobs);
}

/* What work submitted during shutdown gets: pending jobs run, new ones are
 * refused. A gate job holds the loop so that evl_free() has certainly begun
 * before the probe job runs. */
struct gate {
	struct waiter open;
	struct waiter entered;
};

struct probe {
	struct evl *l;
	int rc_call;
	int rc_later;
	int rc_req;
	struct box *b;
	char *url;
};

static void
gate_fn(void *arg)
{
	struct gate *g = arg;

	waiter_add(&g->entered, 1);
	waiter_wait(&g->open, 1, WAIT_MS);
}

static void
probe_fn(void *arg)
{
	struct probe *p = arg;
	int unused = 0;

	p->rc_call = evl_call(p->l, never_fn, &unused);
	p->rc_later = evl_call_later(p->l, 1, never_fn, &unused);
	p->rc_req = evl_http_request(p->l, "GET", p->url, NULL, 0, NULL, 1000, 100, box_cb, p->b);
}

static void *
free_thread_main(void *arg)
{
	evl_free(arg);
	return NULL;
}

static void
test_shutdown_refuses(void **state)
{
	struct evl *l = evl_new();
	struct gate g;
	struct probe p;
	struct waiter noops;
	struct box b;
	pthread_t th;
	char url[128];
	int accepted = 0, rc, tries;

	(void)state;
	assert_non_null(l);
	waiter_init(&g.open);
	waiter_init(&g.entered);
	waiter_init(&noops);
	box_init(&b);
	make_url(url, sizeof(url), srv.port, "/echo");
	p = (struct probe){ .l = l, .rc_call = 1, .rc_later = 1, .rc_req = 1, .b = &b, .url = url };

	assert_int_equal(evl_call(l, gate_fn, &g), 0);
	assert_true(waiter_wait(&g.entered, 1, WAIT_MS));
	assert_int_equal(evl_call(l, probe_fn, &p), 0);
	assert_int_equal(pthread_create(&th, NULL, free_thread_main, l), 0);
	/* The loop is parked in gate_fn, so l stays valid while we poll for
	 * evl_free() to have marked it stopping. */
	for (tries = 0; tries < WAIT_MS; tries++) {
		rc = evl_call(l, count_fn, &noops);
		if (rc == -ESHUTDOWN)
			break;
		assert_int_equal(rc, 0);
		accepted++;
		usleep(1000);
	}
	assert_int_equal(rc, -ESHUTDOWN);
	waiter_add(&g.open, 1);
	pthread_join(th, NULL);

	assert_int_equal(p.rc_call, -ESHUTDOWN);
	assert_int_equal(p.rc_later, -ESHUTDOWN);
	assert_int_equal(p.rc_req, -ESHUTDOWN);
	assert_int_equal(waiter_get(&noops), accepted);
	assert_int_equal(waiter_get(&b.calls), 0);
	box_done(&b);
	waiter_done(&noops);
	waiter_done(&g.entered);
	waiter_done(&g.open);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_echo),
		cmocka_unit_test(test_post_bodies),
		cmocka_unit_test(test_status_codes),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_max_body),
		cmocka_unit_test(test_raw_responses),
		cmocka_unit_test(test_bad_args),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_sync),
		cmocka_unit_test(test_call_order),
		cmocka_unit_test(test_call_later),
		cmocka_unit_test(test_base),
		cmocka_unit_test(test_free_in_flight),
		cmocka_unit_test(test_shutdown_refuses),
	};

	/* As in the daemons (dmn_signals_init): writes to a peer that has
	 * gone must fail with EPIPE, not kill the process. */
	signal(SIGPIPE, SIG_IGN);
	/* The test server's base is shared with a second thread too. */
	if (evthread_use_pthreads() != 0)
		return 1;
	main_thread = pthread_self();
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
