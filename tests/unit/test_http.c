// SPDX-License-Identifier: MIT
/* Unit tests for common/http: a real server on loopback, spoken to over raw sockets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "http.h"
#include "log.h"
#include "met.h"

#define MAX_BODY 1024

/* One server per test, with its registry; handlers get the fixture as arg. */
struct fixture {
	struct http_server *s;
	struct met_registry *reg;
	struct http_metrics metrics;
	int port;
	atomic_int slow_entered, slow_done;
};

/* ---- handlers ---- */

static void
h_params(struct http_req *r, void *arg)
{
	const char *q = http_req_query(r, "q");

	(void)arg;
	http_reply_json(r, 200,
			json_pack("{s:s, s:s, s:s?, s:s, s:s, s:b}", "a", http_req_param(r, 0), "b",
				  http_req_param(r, 1), "q", q, "method", http_req_method(r),
				  "path", http_req_path(r), "third", http_req_param(r, 2) != NULL));
}

static void
h_echo(struct http_req *r, void *arg)
{
	json_t *j;

	(void)arg;
	if (http_req_json(r, &j) < 0)
		return;
	http_reply_json(r, 200, j);
}

static void
h_noreply(struct http_req *r, void *arg)
{
	(void)r;
	(void)arg;
}

static void
h_twice(struct http_req *r, void *arg)
{
	(void)arg;
	http_reply_data(r, 201, "text/plain", "first", 5);
	http_reply_data(r, 202, "text/plain", "second", 6);
}

static void
h_busy(struct http_req *r, void *arg)
{
	(void)arg;
	http_reply_header(r, "X-Test", "yes");
	http_reply_retry(r, 503, 7, "busy", "come back in %d s", 7);
}

static void
h_slow(struct http_req *r, void *arg)
{
	struct fixture *f = arg;
	struct timespec ts = { 0, 300 * 1000 * 1000 };

	atomic_store(&f->slow_entered, 1);
	nanosleep(&ts, NULL);
	atomic_store(&f->slow_done, 1);
	http_reply_json(r, 200, json_pack("{s:b}", "slow", 1));
}

static void
h_client(struct http_req *r, void *arg)
{
	char client[ADDR_STR_MAX], peer[ADDR_STR_MAX];

	(void)arg;
	addr_format_ip(http_req_client(r), client, sizeof(client));
	addr_format_ip(http_req_peer(r), peer, sizeof(peer));
	http_reply_json(r, 200,
			json_pack("{s:s, s:s, s:s, s:s?}", "client", client, "peer", peer, "rid",
				  http_req_id(r), "ua", http_req_header(r, "user-agent")));
}

static void
h_admin(struct http_req *r, void *arg)
{
	(void)arg;
	http_reply_json(r, 200, json_pack("{s:b}", "ok", 1));
}

static void
h_empty(struct http_req *r, void *arg)
{
	(void)arg;
	http_reply_json(r, 204, NULL);
}

static const struct http_route test_routes[] = {
	{ "GET", "/v1/items/{}/parts/{}", h_params, false },
	{ "POST", "/v1/echo", h_echo, false },
	{ "GET", "/v1/noreply", h_noreply, false },
	{ "GET", "/v1/twice", h_twice, false },
	{ "GET", "/v1/busy", h_busy, false },
	{ "GET", "/v1/slow", h_slow, false },
	{ "GET", "/v1/client", h_client, false },
	{ "POST", "/v1/admin/thing", h_admin, true },
	{ "GET", "/v1/admin/thing", h_admin, false },
	{ "DELETE", "/v1/empty", h_empty, false },
	{ "GET", "/healthz", http_handle_healthz, false },
	{ "GET", "/metrics", http_handle_metrics, false },
};

/* A port that was free a moment ago, for listeners that cannot take port 0. */
static int
free_port(int family)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd = socket(family, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)family;
	if (family == AF_INET6)
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	else
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(
		bind(fd, (struct sockaddr *)&ss,
		     family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)),
		0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					: ((struct sockaddr_in *)&ss)->sin_port);
	close(fd);
	return port;
}

/* Starts a server on listen. Returns NULL with the error in err on failure. */
static struct fixture *
fixture_try(const char *listen, char *err, size_t errsize)
{
	struct http_server_opts o;
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->reg = met_registry_new();
	assert_non_null(f->reg);
	assert_int_equal(http_metrics_init(&f->metrics, f->reg), 0);
	memset(&o, 0, sizeof(o));
	o.name = "test";
	o.listen = listen;
	o.threads = 2;
	o.timeout_s = 5;
	o.max_body = MAX_BODY;
	o.routes = test_routes;
	o.nroutes = sizeof(test_routes) / sizeof(test_routes[0]);
	o.arg = f;
	o.registry = f->reg;
	o.metrics = &f->metrics;
	f->s = http_server_start(&o, err, errsize);
	if (!f->s) {
		met_registry_free(f->reg);
		free(f);
		return NULL;
	}
	f->port = http_server_port(f->s, 0);
	return f;
}

static struct fixture *
fixture_start(const char *listen)
{
	char err[256] = "";
	struct fixture *f = fixture_try(listen, err, sizeof(err));

	if (!f)
		fail_msg("http_server_start(%s): %s", listen, err);
	assert_true(f->port > 0 && f->port < 65536);
	return f;
}

static void
fixture_free(struct fixture *f)
{
	http_server_free(f->s);
	met_registry_free(f->reg);
	free(f);
}

static int
setup(void **state)
{
	char spec[64];

	snprintf(spec, sizeof(spec), "127.0.0.1:%d", free_port(AF_INET));
	*state = fixture_start(spec);
	return 0;
}

static int
teardown(void **state)
{
	fixture_free(*state);
	return 0;
}

/* ---- a minimal HTTP/1.1 client ---- */

struct resp {
	int status;
	char head[8192]; /* status line and headers, NUL-terminated */
	char *body;      /* NUL-terminated, malloc'd */
	size_t body_len;
	json_t *json; /* the body parsed, if it is JSON */
};

static void
resp_free(struct resp *r)
{
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

/* The value of header name (first occurrence), or NULL. Static buffer. */
static const char *
resp_header(const struct resp *r, const char *name)
{
	static char val[512];
	size_t nlen = strlen(name);
	const char *p = strstr(r->head, "\r\n");

	while (p && p[2]) {
		const char *line = p + 2, *eol = strstr(line, "\r\n");
		if (!eol)
			eol = line + strlen(line);
		if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
			const char *v = line + nlen + 1;
			while (*v == ' ')
				v++;
			size_t vlen = (size_t)(eol - v);
			assert_true(vlen < sizeof(val));
			memcpy(val, v, vlen);
			val[vlen] = '\0';
			return val;
		}
		p = *eol ? eol : NULL;
	}
	return NULL;
}

static int
connect_to(int family, int port)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct timeval tv = { 5, 0 };
	int fd = socket(family, SOCK_STREAM, 0), r;

	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (family == AF_INET) {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t)port);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		r = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
	} else {
		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons((uint16_t)port);
		sin6.sin6_addr = in6addr_loopback;
		r = connect(fd, (struct sockaddr *)&sin6, sizeof(sin6));
	}
	if (r < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static void
send_all(int fd, const char *data, size_t len)
{
	while (len) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail_msg("send: %s", strerror(errno));
		data += n;
		len -= (size_t)n;
	}
}

/* Decodes a chunked body in place; returns its length or fails the test. */
static size_t
dechunk(char *b, size_t len)
{
	size_t in = 0, out = 0;

	for (;;) {
		char *end;
		unsigned long n = strtoul(b + in, &end, 16);
		char *crlf = strstr(b + in, "\r\n");
		if (!crlf || end == b + in)
			fail_msg("bad chunk header");
		in = (size_t)(crlf - b) + 2;
		if (n == 0)
			return out;
		if (in + n + 2 > len)
			fail_msg("truncated chunk");
		memmove(b + out, b + in, n);
		out += n;
		in += n + 2;
	}
}

/* Reads a whole response from fd until the server closes (requests say
 * "Connection: close") and parses it. */
static void
read_response(int fd, bool head_request, struct resp *ret)
{
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap), *sep;
	const char *cl, *te;

	assert_non_null(buf);
	for (;;) {
		ssize_t n;
		if (len + 1 == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ECONNRESET && memmem(buf, len, "\r\n\r\n", 4))
			break; /* the server reset after answering (unread request bytes) */
		if (n < 0)
			fail_msg("recv after %zu bytes: %s", len, strerror(errno));
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	memset(ret, 0, sizeof(*ret));
	sep = strstr(buf, "\r\n\r\n");
	if (!sep) {
		char shown[128];
		snprintf(shown, sizeof(shown), "%s", buf);
		free(buf);
		fail_msg("no end of headers in %zu bytes: \"%s\"", len, shown);
	}
	assert_true((size_t)(sep - buf) < sizeof(ret->head));
	memcpy(ret->head, buf, (size_t)(sep - buf) + 2);
	ret->head[sep - buf + 2] = '\0';
	if (sscanf(buf, "HTTP/1.1 %d ", &ret->status) != 1)
		fail_msg("bad status line: \"%.40s\"", buf);
	ret->body_len = len - (size_t)(sep + 4 - buf);
	ret->body = malloc(ret->body_len + 1);
	assert_non_null(ret->body);
	memcpy(ret->body, sep + 4, ret->body_len);
	ret->body[ret->body_len] = '\0';
	free(buf);

	te = resp_header(ret, "Transfer-Encoding");
	if (te && strcasecmp(te, "chunked") == 0 && !head_request) {
		ret->body_len = dechunk(ret->body, ret->body_len);
		ret->body[ret->body_len] = '\0';
	}
	cl = resp_header(ret, "Content-Length");
	if (cl && !head_request && strtoul(cl, NULL, 10) != ret->body_len)
		fail_msg("Content-Length %s but %zu body bytes", cl, ret->body_len);
	if (ret->body_len)
		ret->json = json_loadb(ret->body, ret->body_len, 0, NULL);
}

/* Sends raw request text and reads the answer. */
static void
exchange_raw(int family, int port, const char *req, size_t len, bool head, struct resp *ret)
{
	int fd = connect_to(family, port);

	if (fd < 0)
		fail_msg("connect to port %d: %s", port, strerror(errno));
	send_all(fd, req, len);
	read_response(fd, head, ret);
	close(fd);
}

/* One request: method, path, extra header lines (each ending in \r\n) and an
 * optional body sent with its Content-Length. */
static void
request(const struct fixture *f, const char *method, const char *path, const char *headers,
	const char *body, struct resp *ret)
{
	size_t blen = body ? strlen(body) : 0, cap = 1024 + blen;
	char *req = malloc(cap);
	int n;

	assert_non_null(req);
	n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n%s", method,
		     path, headers ? headers : "");
	assert_true(n > 0 && (size_t)n < cap);
	if (body)
		n += snprintf(req + n, cap - (size_t)n, "Content-Length: %zu\r\n", blen);
	n += snprintf(req + n, cap - (size_t)n, "\r\n");
	assert_true((size_t)n + blen < cap);
	if (body)
		memcpy(req + n, body, blen);
	exchange_raw(AF_INET, f->port, req, (size_t)n + blen, strcmp(method, "HEAD") == 0, ret);
	free(req);
}

/* Checks a JSON error reply: status, {"error": code, "message": ...}. */
static void
assert_error(const struct resp *r, int status, const char *code)
{
	const char *ct = resp_header(r, "Content-Type");

	if (r->status != status)
		fail_msg("status %d, want %d; body %s", r->status, status, r->body);
	assert_non_null(ct);
	assert_string_equal(ct, "application/json");
	if (!json_is_object(r->json))
		fail_msg("error body is not a JSON object: \"%s\"", r->body);
	assert_int_equal(json_object_size(r->json), 2);
	assert_string_equal(json_string_value(json_object_get(r->json, "error")), code);
	assert_true(json_is_string(json_object_get(r->json, "message")));
	assert_true(json_string_length(json_object_get(r->json, "message")) > 0);
}

static const char *
jstr(const struct resp *r, const char *key)
{
	json_t *v = json_object_get(r->json, key);

	if (!json_is_string(v))
		fail_msg("no string \"%s\" in %s", key, r->body);
	return json_string_value(v);
}

/* ---- routing ---- */

static void
test_get_params(void **state)
{
	struct fixture *f = *state;
	struct resp r;

	request(f, "GET", "/v1/items/a1/parts/b-2", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(resp_header(&r, "Content-Type"), "application/json");
	assert_string_equal(jstr(&r, "a"), "a1");
	assert_string_equal(jstr(&r, "b"), "b-2");
	assert_string_equal(jstr(&r, "method"), "GET");
	assert_string_equal(jstr(&r, "path"), "/v1/items/a1/parts/b-2");
	assert_true(json_is_null(json_object_get(r.json, "q")) || !json_object_get(r.json, "q"));
	assert_true(json_is_false(json_object_get(r.json, "third")));
	resp_free(&r);

	/* Query arguments, decoded; the path excludes them. */
	request(f, "GET", "/v1/items/x/parts/y?q=hello%20world&z=1", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(jstr(&r, "q"), "hello world");
	assert_string_equal(jstr(&r, "a"), "x");
	assert_string_equal(jstr(&r, "path"), "/v1/items/x/parts/y");
	resp_free(&r);

	/* {} matches exactly one non-empty segment. */
	request(f, "GET", "/v1/items//parts/y", NULL, NULL, &r);
	assert_error(&r, 404, "not_found");
	resp_free(&r);
	request(f, "GET", "/v1/items/a/b/parts/y", NULL, NULL, &r);
	assert_error(&r, 404, "not_found");
	resp_free(&r);
	request(f, "GET", "/v1/items/a/parts/y/", NULL, NULL, &r);
	assert_error(&r, 404, "not_found");
	resp_free(&r);
	request(f, "GET", "/v1/items/a/parts", NULL, NULL, &r);
	assert_error(&r, 404, "not_found");
	resp_free(&r);
}

static void
test_not_found_and_method(void **state)
{
	struct fixture *f = *state;
	struct resp r;

	request(f, "GET", "/nope", NULL, NULL, &r);
	assert_error(&r, 404, "not_found");
	assert_non_null(strstr(jstr(&r, "message"), "/nope"));
	resp_free(&r);

	request(f, "DELETE", "/v1/echo", NULL, NULL, &r);
	assert_error(&r, 405, "method_not_allowed");
	resp_free(&r);
	request(f, "POST", "/v1/items/a/parts/b", NULL, "{}", &r);
	assert_error(&r, 405, "method_not_allowed");
	resp_free(&r);
	request(f, "GET", "/v1/echo", NULL, NULL, &r);
	assert_error(&r, 405, "method_not_allowed");
	resp_free(&r);

	/* The same path may carry routes for several methods. */
	request(f, "GET", "/v1/admin/thing", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);

	/* 204 with an empty body. */
	request(f, "DELETE", "/v1/empty", NULL, NULL, &r);
	assert_int_equal(r.status, 204);
	assert_int_equal(r.body_len, 0);
	resp_free(&r);
}

static void
test_head(void **state)
{
	struct fixture *f = *state;
	struct resp get, head;

	request(f, "GET", "/healthz", NULL, NULL, &get);
	assert_int_equal(get.status, 200);
	request(f, "HEAD", "/healthz", NULL, NULL, &head);
	assert_int_equal(head.status, 200);
	assert_int_equal(head.body_len, 0);
	assert_string_equal(resp_header(&head, "Content-Type"), resp_header(&get, "Content-Type"));
	assert_non_null(resp_header(&head, "Content-Length"));
	assert_int_equal(strtoul(resp_header(&head, "Content-Length"), NULL, 10), 3);
	resp_free(&get);
	resp_free(&head);

	/* The GET handler runs (it sees HEAD as the method); no body goes out. */
	request(f, "HEAD", "/v1/items/a/parts/b", NULL, NULL, &head);
	assert_int_equal(head.status, 200);
	assert_int_equal(head.body_len, 0);
	assert_string_equal(resp_header(&head, "Content-Type"), "application/json");
	assert_true(strtoul(resp_header(&head, "Content-Length"), NULL, 10) > 0);
	resp_free(&head);

	request(f, "HEAD", "/nope", NULL, NULL, &head);
	assert_int_equal(head.status, 404);
	assert_int_equal(head.body_len, 0);
	resp_free(&head);
	/* HEAD stands for GET only. */
	request(f, "HEAD", "/v1/echo", NULL, NULL, &head);
	assert_int_equal(head.status, 405);
	resp_free(&head);
}

/* ---- JSON bodies and limits ---- */

static void
test_post_json(void **state)
{
	struct fixture *f = *state;
	const char *body =
		"{\"x\": [1, 2, {\"y\": null}], \"s\": \"caf\\u00e9 \\\"q\\\"\", \"n\": 1.5}";
	json_t *want = json_loads(body, 0, NULL);
	struct resp r;

	assert_non_null(want);
	request(f, "POST", "/v1/echo", "Content-Type: application/json\r\n", body, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(resp_header(&r, "Content-Type"), "application/json");
	assert_non_null(r.json);
	assert_true(json_equal(r.json, want));
	resp_free(&r);
	json_decref(want);
}

static void
test_bad_json(void **state)
{
	struct fixture *f = *state;
	struct resp r;

	request(f, "POST", "/v1/echo", NULL, "{\"x\": \n  [1, }", &r);
	assert_error(&r, 400, "bad_json");
	/* The message places the error for the client. */
	assert_non_null(strstr(jstr(&r, "message"), "line 2"));
	resp_free(&r);

	request(f, "POST", "/v1/echo", NULL, "{\"a\":1,\"a\":2}", &r);
	assert_error(&r, 400, "bad_json");
	resp_free(&r);

	request(f, "POST", "/v1/echo", NULL, "", &r);
	assert_error(&r, 400, "bad_json");
	resp_free(&r);
	request(f, "POST", "/v1/echo", NULL, NULL, &r);
	assert_error(&r, 400, "bad_json");
	resp_free(&r);

	/* Well-formed but not an object. */
	request(f, "POST", "/v1/echo", NULL, "[1,2]", &r);
	assert_error(&r, 400, "expected_object");
	resp_free(&r);
	/* Scalars are valid JSON but not objects; jansson (without JSON_DECODE_ANY)
	 * calls them malformed, so either code is fine as long as it is a 400. */
	static const char *scalars[] = { "\"str\"", "42", "null", "true" };
	for (size_t i = 0; i < sizeof(scalars) / sizeof(scalars[0]); i++) {
		request(f, "POST", "/v1/echo", NULL, scalars[i], &r);
		assert_int_equal(r.status, 400);
		if (strcmp(jstr(&r, "error"), "bad_json") != 0)
			assert_error(&r, 400, "expected_object");
		else
			assert_error(&r, 400, "bad_json");
		resp_free(&r);
	}
}

static void
test_body_limit(void **state)
{
	struct fixture *f = *state;
	char body[MAX_BODY + 2], req[512];
	struct resp r;
	int n;

	/* Exactly max_body bytes are accepted. */
	memset(body, 'x', sizeof(body));
	memcpy(body, "{\"s\":\"", 6);
	memcpy(body + MAX_BODY - 2, "\"}", 3);
	assert_int_equal(strlen(body), MAX_BODY);
	request(f, "POST", "/v1/echo", NULL, body, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(strlen(jstr(&r, "s")), MAX_BODY - 8);
	resp_free(&r);

	/* One more byte, announced by Content-Length: refused before reading it. */
	n = snprintf(req, sizeof(req),
		     "POST /v1/echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
		     "Content-Length: %d\r\n\r\n",
		     MAX_BODY + 1);
	exchange_raw(AF_INET, f->port, req, (size_t)n, false, &r);
	assert_error(&r, 413, "body_too_large");
	resp_free(&r);

	/* A huge announced length too, even on a route that does not exist. */
	n = snprintf(req, sizeof(req),
		     "POST /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
		     "Content-Length: 99999999999\r\n\r\n");
	exchange_raw(AF_INET, f->port, req, (size_t)n, false, &r);
	assert_error(&r, 413, "body_too_large");
	resp_free(&r);
}

static void
test_chunked(void **state)
{
	struct fixture *f = *state;
	static const char ok[] = "POST /v1/echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
				 "Transfer-Encoding: chunked\r\n\r\n"
				 "6\r\n{\"a\":1\r\n"
				 "5\r\n,\"b\":\r\n"
				 "2\r\n2}\r\n"
				 "0\r\n\r\n";
	char big[4096], *p;
	struct resp r;

	/* Within the limit, chunks are joined. */
	exchange_raw(AF_INET, f->port, ok, sizeof(ok) - 1, false, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_integer_value(json_object_get(r.json, "a")), 1);
	assert_int_equal(json_integer_value(json_object_get(r.json, "b")), 2);
	resp_free(&r);

	/* No Content-Length: the limit is enforced while reading. Three chunks of
	 * 400 bytes pass 1024 in the third. */
	p = big + sprintf(big, "POST /v1/echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
			       "Transfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 3; i++) {
		p += sprintf(p, "190\r\n");
		memset(p, 'y', 400);
		p += 400;
		p += sprintf(p, "\r\n");
	}
	p += sprintf(p, "0\r\n\r\n");
	exchange_raw(AF_INET, f->port, big, (size_t)(p - big), false, &r);
	assert_error(&r, 413, "body_too_large");
	resp_free(&r);
}

/* ---- replies ---- */

static void
test_handler_without_reply(void **state)
{
	struct fixture *f = *state;
	struct resp r;
	int level = log_get_level();

	log_set_level(LOG_CRIT); /* the BUG line is expected */
	request(f, "GET", "/v1/noreply", NULL, NULL, &r);
	assert_error(&r, 500, "internal");
	assert_non_null(resp_header(&r, "X-Request-Id"));
	resp_free(&r);

	/* A second reply is ignored: the first stands. */
	request(f, "GET", "/v1/twice", NULL, NULL, &r);
	log_set_level(level);
	assert_int_equal(r.status, 201);
	assert_string_equal(r.body, "first");
	resp_free(&r);
}

static void
test_retry_and_headers(void **state)
{
	struct fixture *f = *state;
	struct resp r;

	request(f, "GET", "/v1/busy", NULL, NULL, &r);
	assert_error(&r, 503, "busy");
	assert_string_equal(jstr(&r, "message"), "come back in 7 s");
	assert_string_equal(resp_header(&r, "Retry-After"), "7");
	assert_string_equal(resp_header(&r, "X-Test"), "yes");
	resp_free(&r);

	request(f, "GET", "/healthz", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "ok\n");
	resp_free(&r);
}

/* ---- admin ---- */

static void
test_admin_token(void **state)
{
	struct fixture *f = *state;
	struct resp r;

	/* No token configured: admin routes are disabled for everyone. */
	request(f, "POST", "/v1/admin/thing", NULL, "{}", &r);
	assert_error(&r, 403, "admin_disabled");
	resp_free(&r);
	request(f, "POST", "/v1/admin/thing", "Authorization: Bearer \r\n", "{}", &r);
	assert_error(&r, 403, "admin_disabled");
	resp_free(&r);

	http_server_set_admin_token(f->s, "s3cret-token");
	request(f, "POST", "/v1/admin/thing", NULL, "{}", &r);
	assert_error(&r, 401, "unauthorized");
	assert_string_equal(resp_header(&r, "WWW-Authenticate"), "Bearer");
	resp_free(&r);
	request(f, "POST", "/v1/admin/thing", "Authorization: Basic czNjcmV0\r\n", "{}", &r);
	assert_error(&r, 401, "unauthorized");
	resp_free(&r);

	request(f, "POST", "/v1/admin/thing", "Authorization: Bearer wrong\r\n", "{}", &r);
	assert_error(&r, 403, "forbidden");
	resp_free(&r);
	request(f, "POST", "/v1/admin/thing", "Authorization: Bearer s3cret-token2\r\n", "{}", &r);
	assert_error(&r, 403, "forbidden");
	resp_free(&r);
	request(f, "POST", "/v1/admin/thing", "Authorization: Bearer s3cret-toke\r\n", "{}", &r);
	assert_error(&r, 403, "forbidden");
	resp_free(&r);

	request(f, "POST", "/v1/admin/thing", "Authorization: Bearer s3cret-token\r\n", "{}", &r);
	assert_int_equal(r.status, 200);
	assert_true(json_is_true(json_object_get(r.json, "ok")));
	resp_free(&r);

	/* A new token replaces the old one at once. */
	http_server_set_admin_token(f->s, "other");
	request(f, "POST", "/v1/admin/thing", "Authorization: Bearer s3cret-token\r\n", "{}", &r);
	assert_error(&r, 403, "forbidden");
	resp_free(&r);
	request(f, "POST", "/v1/admin/thing", "Authorization: Bearer other\r\n", "{}", &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);

	/* "" disables again. */
	http_server_set_admin_token(f->s, "");
	request(f, "POST", "/v1/admin/thing", "Authorization: Bearer other\r\n", "{}", &r);
	assert_error(&r, 403, "admin_disabled");
	resp_free(&r);
	http_server_set_admin_token(f->s, "x");
	http_server_set_admin_token(f->s, NULL);
	request(f, "POST", "/v1/admin/thing", "Authorization: Bearer x\r\n", "{}", &r);
	assert_error(&r, 403, "admin_disabled");
	resp_free(&r);
}

/* ---- client address, request id ---- */

static void
test_forwarded_for(void **state)
{
	struct fixture *f = *state;
	struct addr_list *l;
	struct resp r;
	int err;

	/* Nobody trusted: the header is ignored. */
	request(f, "GET", "/v1/client", "X-Forwarded-For: 203.0.113.7\r\n", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(jstr(&r, "client"), "127.0.0.1");
	assert_string_equal(jstr(&r, "peer"), "127.0.0.1");
	resp_free(&r);

	/* A trusted list without the peer: still ignored. */
	l = addr_list_parse("10.0.0.0/8", &err, NULL);
	assert_non_null(l);
	http_server_set_trusted(f->s, l);
	request(f, "GET", "/v1/client", "X-Forwarded-For: 203.0.113.7\r\n", NULL, &r);
	assert_string_equal(jstr(&r, "client"), "127.0.0.1");
	resp_free(&r);

	/* The peer trusted: the header's last untrusted hop is the client. */
	l = addr_list_parse("127.0.0.1/32", &err, NULL);
	assert_non_null(l);
	http_server_set_trusted(f->s, l);
	request(f, "GET", "/v1/client", "X-Forwarded-For: 203.0.113.7\r\n", NULL, &r);
	assert_string_equal(jstr(&r, "client"), "203.0.113.7");
	assert_string_equal(jstr(&r, "peer"), "127.0.0.1");
	resp_free(&r);
	request(f, "GET", "/v1/client", "X-Forwarded-For: 1.1.1.1, 198.51.100.2\r\n", NULL, &r);
	assert_string_equal(jstr(&r, "client"), "198.51.100.2");
	resp_free(&r);
	request(f, "GET", "/v1/client", NULL, NULL, &r);
	assert_string_equal(jstr(&r, "client"), "127.0.0.1");
	resp_free(&r);
	request(f, "GET", "/v1/client", "X-Forwarded-For: garbage\r\n", NULL, &r);
	assert_string_equal(jstr(&r, "client"), "127.0.0.1");
	resp_free(&r);

	/* Trust withdrawn. */
	http_server_set_trusted(f->s, NULL);
	request(f, "GET", "/v1/client", "X-Forwarded-For: 203.0.113.7\r\n", NULL, &r);
	assert_string_equal(jstr(&r, "client"), "127.0.0.1");
	resp_free(&r);
}

static bool
is_hex16(const char *s)
{
	return s && strlen(s) == 16 && strspn(s, "0123456789abcdef") == 16;
}

static void
test_request_id(void **state)
{
	struct fixture *f = *state;
	static const char id32[] = "0123456789abcdef0123456789ABCDEF";
	char hdr[128];
	struct resp r;

	/* None sent: 16 random hex digits, the same in the header and the handler. */
	request(f, "GET", "/v1/client", NULL, NULL, &r);
	assert_true(is_hex16(resp_header(&r, "X-Request-Id")));
	assert_string_equal(resp_header(&r, "X-Request-Id"), jstr(&r, "rid"));
	char first[32];
	snprintf(first, sizeof(first), "%s", jstr(&r, "rid"));
	resp_free(&r);
	request(f, "GET", "/v1/client", NULL, NULL, &r);
	assert_true(is_hex16(resp_header(&r, "X-Request-Id")));
	assert_string_not_equal(resp_header(&r, "X-Request-Id"), first);
	resp_free(&r);

	/* A sane one is kept, on errors too. */
	request(f, "GET", "/v1/client", "X-Request-Id: abc-DEF_1.2\r\n", NULL, &r);
	assert_string_equal(resp_header(&r, "X-Request-Id"), "abc-DEF_1.2");
	assert_string_equal(jstr(&r, "rid"), "abc-DEF_1.2");
	resp_free(&r);
	request(f, "GET", "/nope", "X-Request-Id: trace-1\r\n", NULL, &r);
	assert_int_equal(r.status, 404);
	assert_string_equal(resp_header(&r, "X-Request-Id"), "trace-1");
	resp_free(&r);
	snprintf(hdr, sizeof(hdr), "X-Request-Id: %s\r\n", id32);
	request(f, "GET", "/v1/client", hdr, NULL, &r);
	assert_string_equal(resp_header(&r, "X-Request-Id"), id32);
	resp_free(&r);

	/* Others are replaced: bad characters, too long, empty. */
	request(f, "GET", "/v1/client", "X-Request-Id: bad id\"<x>\r\n", NULL, &r);
	assert_true(is_hex16(resp_header(&r, "X-Request-Id")));
	assert_true(is_hex16(jstr(&r, "rid")));
	resp_free(&r);
	snprintf(hdr, sizeof(hdr), "X-Request-Id: %sX\r\n", id32);
	request(f, "GET", "/v1/client", hdr, NULL, &r);
	assert_true(is_hex16(resp_header(&r, "X-Request-Id")));
	resp_free(&r);
	request(f, "GET", "/v1/client", "X-Request-Id: a/b\r\n", NULL, &r);
	assert_true(is_hex16(resp_header(&r, "X-Request-Id")));
	resp_free(&r);
	request(f, "GET", "/v1/client", "X-Request-Id:\r\n", NULL, &r);
	assert_true(is_hex16(resp_header(&r, "X-Request-Id")));
	resp_free(&r);
}

/* ---- metrics ---- */

static void
test_metrics(void **state)
{
	struct fixture *f = *state;
	struct resp r;

	request(f, "GET", "/v1/items/a/parts/b", NULL, NULL, &r);
	resp_free(&r);
	request(f, "GET", "/v1/items/c/parts/d", NULL, NULL, &r);
	resp_free(&r);
	request(f, "GET", "/nope", NULL, NULL, &r);
	resp_free(&r);
	request(f, "PUT", "/v1/echo", NULL, "{}", &r);
	resp_free(&r);

	request(f, "GET", "/metrics", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(resp_header(&r, "Content-Type"), "text/plain; version=0.0.4"));
	assert_non_null(strstr(r.body, "# TYPE p2pcdn_http_requests_total counter\n"));
	/* The route label is the pattern, never the raw path. */
	assert_non_null(strstr(r.body, "p2pcdn_http_requests_total{listener=\"test\","
				       "route=\"/v1/items/{}/parts/{}\",code=\"200\"} 2\n"));
	assert_non_null(strstr(r.body, "p2pcdn_http_requests_total{listener=\"test\","
				       "route=\"not_found\",code=\"404\"} 1\n"));
	assert_non_null(strstr(r.body, "p2pcdn_http_requests_total{listener=\"test\","
				       "route=\"method_not_allowed\",code=\"405\"} 1\n"));
	assert_null(strstr(r.body, "/v1/items/a/parts/b"));
	assert_non_null(strstr(r.body, "p2pcdn_http_request_duration_seconds_count"
				       "{listener=\"test\"} 4\n"));
	/* The /metrics request itself is in flight while rendering. */
	assert_non_null(strstr(r.body, "p2pcdn_http_requests_in_flight{listener=\"test\"} 1\n"));
	resp_free(&r);
}

/* ---- lifecycle ---- */

struct slow_client {
	int port;
	struct resp r;
};

static void *
slow_client_main(void *arg)
{
	struct slow_client *c = arg;
	static const char req[] = "GET /v1/slow HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

	exchange_raw(AF_INET, c->port, req, sizeof(req) - 1, false, &c->r);
	return NULL;
}

static void
test_drain(void **state)
{
	struct fixture *f = *state;
	struct slow_client c = { .port = f->port };
	pthread_t th;

	assert_int_equal(pthread_create(&th, NULL, slow_client_main, &c), 0);
	for (int i = 0; i < 500 && !atomic_load(&f->slow_entered); i++)
		usleep(2000);
	assert_true(atomic_load(&f->slow_entered));
	assert_false(atomic_load(&f->slow_done));

	http_server_drain(f->s, 5000);
	/* Drain returned only after the handler finished... */
	assert_true(atomic_load(&f->slow_done));
	assert_int_equal(pthread_join(th, NULL), 0);
	/* ...and the client got its answer. */
	assert_int_equal(c.r.status, 200);
	assert_true(json_is_true(json_object_get(c.r.json, "slow")));
	resp_free(&c.r);

	/* New requests are refused with 503 shutting_down and the connection
	 * is closed, so a load balancer moves on. */
	static const char req[] = "GET /v1/slow HTTP/1.1\r\nHost: t\r\n\r\n";
	struct resp r;
	exchange_raw(AF_INET, f->port, req, sizeof(req) - 1, false, &r);
	assert_int_equal(r.status, 503);
	assert_non_null(r.json);
	assert_string_equal(json_string_value(json_object_get(r.json, "error")), "shutting_down");
	if (!strcasestr(r.head, "\r\nConnection: close"))
		fail_msg("no Connection: close on a refusal while draining:\n%s", r.head);
	if (!strcasestr(r.head, "\r\nRetry-After:"))
		fail_msg("no Retry-After on a refusal while draining:\n%s", r.head);
	resp_free(&r);
	/* Draining twice is harmless; free follows in teardown. */
	http_server_drain(f->s, 100);
}

static void
test_ipv6(void **state)
{
	struct fixture *f6;
	struct resp r;
	char spec[128];
	static const char req[] = "GET /v1/client HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

	(void)state;
	snprintf(spec, sizeof(spec), "[::1]:%d", free_port(AF_INET6));
	f6 = fixture_start(spec);
	exchange_raw(AF_INET6, f6->port, req, sizeof(req) - 1, false, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(jstr(&r, "client"), "::1");
	resp_free(&r);
	assert_int_equal(http_server_port(f6->s, 1), -1);
	fixture_free(f6);

	/* Both families on one logical listener. */
	snprintf(spec, sizeof(spec), "127.0.0.1:%d, [::1]:%d", free_port(AF_INET),
		 free_port(AF_INET6));
	f6 = fixture_start(spec);
	assert_true(http_server_port(f6->s, 1) > 0);
	exchange_raw(AF_INET, http_server_port(f6->s, 0), req, sizeof(req) - 1, false, &r);
	assert_string_equal(jstr(&r, "client"), "127.0.0.1");
	resp_free(&r);
	exchange_raw(AF_INET6, http_server_port(f6->s, 1), req, sizeof(req) - 1, false, &r);
	assert_string_equal(jstr(&r, "client"), "::1");
	resp_free(&r);
	fixture_free(f6);
}

/* http.h: "Port actually bound by address i (useful with port 0)" -- so port 0 must be
 * accepted and the kernel's choice reported, for IPv4 and IPv6. */
static void
test_port_zero(void **state)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
	const char *specs[] = { "127.0.0.1:0", "[::1]:0" };
	const int families[] = { AF_INET, AF_INET6 };
	char err[256];
	struct resp r;

	(void)state;
	for (int i = 0; i < 2; i++) {
		struct fixture *f;

		err[0] = '\0';
		f = fixture_try(specs[i], err, sizeof(err));
		if (!f)
			fail_msg("listen %s refused: %s", specs[i], err);
		assert_true(f->port > 0 && f->port < 65536);
		exchange_raw(families[i], f->port, req, sizeof(req) - 1, false, &r);
		assert_int_equal(r.status, 200);
		resp_free(&r);
		fixture_free(f);
	}
}

static void
test_start_errors(void **state)
{
	struct http_server_opts o;
	struct http_server *s;
	char err[256];
	int level = log_get_level();

	(void)state;
	memset(&o, 0, sizeof(o));
	o.name = "bad";
	o.routes = test_routes;
	o.nroutes = 1;
	o.threads = 1;

	o.listen = "localhost:80";
	err[0] = '\0';
	assert_null(http_server_start(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "bad listen address"));
	o.listen = "127.0.0.1";
	err[0] = '\0';
	assert_null(http_server_start(&o, err, sizeof(err)));
	assert_true(err[0] != '\0');
	o.listen = "";
	err[0] = '\0';
	assert_null(http_server_start(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "no listen address"));
	o.listen = "127.0.0.1:1";
	o.tls_cert_file = "/nonexistent.crt";
	err[0] = '\0';
	assert_null(http_server_start(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "tls_cert and tls_key"));
	o.tls_key_file = "/nonexistent.key";
	err[0] = '\0';
	assert_null(http_server_start(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent.crt"));
	o.tls_cert_file = o.tls_key_file = NULL;

	/* A port in use. */
	char spec[64];
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", free_port(AF_INET));
	struct fixture *f = fixture_start(spec);
	char listen[64];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", f->port);
	o.listen = listen;
	err[0] = '\0';
	log_set_level(LOG_CRIT); /* libmicrohttpd's bind failure is expected */
	s = http_server_start(&o, err, sizeof(err));
	log_set_level(level);
	assert_null(s);
	assert_non_null(strstr(err, "cannot listen"));
	fixture_free(f);
	http_server_free(NULL);
}

/* ---- upgrades and the whole-request deadline ---- */

struct upgraded {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct http_upgrade *u;
	int fd, calls;
	char extra[64];
	size_t extra_len;
};
static struct upgraded up_state = { .mu = PTHREAD_MUTEX_INITIALIZER,
				    .cv = PTHREAD_COND_INITIALIZER };

static void
up_cb(struct http_upgrade *u, int fd, const char *extra, size_t extra_len, void *arg)
{
	(void)arg;
	pthread_mutex_lock(&up_state.mu);
	up_state.u = u;
	up_state.fd = fd;
	up_state.calls++;
	up_state.extra_len = extra_len < sizeof(up_state.extra) ? extra_len : 0;
	memcpy(up_state.extra, extra, up_state.extra_len);
	pthread_cond_signal(&up_state.cv);
	pthread_mutex_unlock(&up_state.mu);
}

static void
h_upgrade(struct http_req *r, void *arg)
{
	(void)arg;
	http_reply_upgrade(r, "test-proto", up_cb, NULL);
}

static const struct http_route up_routes[] = {
	{ "GET", "/up", h_upgrade, false },
};

static struct http_server *
up_server(unsigned read_timeout_ms, int *ret_port)
{
	struct http_server_opts o;
	char spec[64], err[256];
	struct http_server *s;

	memset(&o, 0, sizeof(o));
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", free_port(AF_INET));
	o.name = "up";
	o.listen = spec;
	o.threads = 2;
	o.timeout_s = 30;
	o.routes = up_routes;
	o.nroutes = 1;
	o.read_timeout_ms = read_timeout_ms;
	s = http_server_start(&o, err, sizeof(err));
	assert_non_null(s);
	*ret_port = http_server_port(s, 0);
	return s;
}

static void
test_upgrade(void **state)
{
	static const char req[] = "GET /up HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
				  "Upgrade: test-proto\r\n\r\nhello";
	char buf[1024], got[8] = { 0 };
	size_t n = 0, have;
	ssize_t k;
	int port, fd;
	struct http_server *s = up_server(0, &port);
	(void)state;

	fd = connect_to(AF_INET, port);
	assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
	pthread_mutex_lock(&up_state.mu);
	while (!up_state.calls)
		pthread_cond_wait(&up_state.cv, &up_state.mu);
	pthread_mutex_unlock(&up_state.mu);
	assert_non_null(up_state.u);
	assert_true(up_state.fd >= 0);
	/* "hello" came with the request head or follows on the socket. */
	have = up_state.extra_len;
	memcpy(got, up_state.extra, have);
	while (have < 5) {
		k = read(up_state.fd, got + have, 5 - have);
		assert_true(k > 0);
		have += (size_t)k;
	}
	assert_memory_equal(got, "hello", 5);
	assert_int_equal(write(up_state.fd, "olleh", 5), 5);
	shutdown(up_state.fd, SHUT_WR);
	while ((k = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)k;
	buf[n] = '\0';
	assert_non_null(strstr(buf, "HTTP/1.1 101"));
	assert_non_null(strcasestr(buf, "Upgrade: test-proto\r\n"));
	assert_non_null(strstr(buf, "\r\n\r\nolleh"));
	close(fd);
	http_upgrade_close(up_state.u);
	/* Not a request in flight any more: drain returns at once. */
	http_server_drain(s, 5000);
	http_server_free(s);
}

static void
test_read_timeout(void **state)
{
	int port, fd;
	struct http_server *s = up_server(600, &port);
	struct timespec t0, t1;
	char c;
	(void)state;

	/* A byte every 100 ms never lets the idle timeout fire; the
	 * whole-request deadline does. */
	fd = connect_to(AF_INET, port);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(write(fd, "GET /up", 7), 7);
	for (int i = 0; i < 50; i++) {
		usleep(100000);
		if (send(fd, "x", 1, MSG_NOSIGNAL) != 1)
			break;
	}
	assert_true(read(fd, &c, 1) <= 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 4);
	close(fd);
	http_server_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get_params, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_found_and_method, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chunked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handler_without_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_and_headers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forwarded_for, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_start_errors),
		cmocka_unit_test(test_port_zero),
		cmocka_unit_test(test_upgrade),
		cmocka_unit_test(test_read_timeout),
	};

	log_set_level(LOG_WARNING);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
