// SPDX-License-Identifier: MIT
/* HTTP server on libmicrohttpd: route table, JSON in/out, limits, admin basics. */
#include "http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define HTTP_MAX_LISTEN  8
#define HTTP_MAX_PARAMS  4
#define HTTP_MAX_HEADERS 8
#define HTTP_PARAM_MAX   256

/* A deferred request's handshake between its pool thread, which must
 * suspend the connection after the handler returns, and the thread that
 * replies, which may finish first. */
enum {
	HTTP_D_NONE = 0,
	HTTP_D_WAITING,   /* deferred, reply not ready, not yet suspended */
	HTTP_D_SUSPENDED, /* suspended; the replier must resume */
	HTTP_D_READY,     /* replied before the suspension: the pool thread resumes */
};

struct http_server {
	char *name;
	struct MHD_Daemon *d[HTTP_MAX_LISTEN];
	int port[HTTP_MAX_LISTEN];
	size_t nd;
	const struct http_route *routes;
	size_t nroutes;
	void *arg;
	size_t max_body;
	struct met_registry *registry;
	struct http_metrics *metrics;
	struct met_child *duration, *inflight_g;
	char *tls_cert, *tls_key;
	atomic_bool access_log;
	/* Reloadable settings read by every request, under a read lock: a
	 * reload (write lock) frees the old values at once, so no request can
	 * be left holding a freed list however close two reloads come. */
	pthread_rwlock_t settings;
	struct addr_list *trusted;
	/* The admin token is kept as its hash, so the comparison is
	 * constant-time and independent of the presented token's length. */
	unsigned char token[crypto_generichash_BYTES];
	bool has_token;
	atomic_int inflight;
	atomic_bool draining;
	bool drained;
	/* read_timeout_ms: every connection, linked here, and the thread
	 * that shuts down those too slow to send a whole request. */
	unsigned read_timeout_ms;
	pthread_mutex_t conns_lock;
	struct http_conn *conns;
	pthread_t watchdog;
	bool watchdog_on;
	atomic_bool watchdog_stop;
};

struct http_req {
	struct http_server *srv;
	struct MHD_Connection *conn;
	const char *method;
	char *path;
	char *body;
	size_t body_len, body_cap;
	bool too_large;
	bool replied;
	bool queued;
	bool deferred;
	bool inited;
	char *raw_uri;     /* as received, before percent-decoding (keep_raw_uri) */
	atomic_int dstate; /* HTTP_D_*: who resumes a deferred request */
	struct MHD_Response *resp;
	unsigned status;
	const char *route_name;
	size_t nparams;
	struct addr peer, client;
	char rid[33];
	size_t nhdr;
	struct timespec start;
	size_t resp_len;
	struct http_upgrade *upg; /* http_reply_upgrade, until the socket is handed over */
	bool upgraded;            /* the socket was handed over: upg belongs to the daemon */
	bool uncounted;           /* no longer counted in flight (upgraded) */
	/* Large buffers last: only the fields above are zeroed per request. */
	char params[HTTP_MAX_PARAMS][HTTP_PARAM_MAX];
	char hdr_name[HTTP_MAX_HEADERS][64];
	char hdr_val[HTTP_MAX_HEADERS][256];
};

int
http_metrics_init(struct http_metrics *m, struct met_registry *reg)
{
	m->requests = met_new(reg, MET_COUNTER, "p2pcdn_http_requests_total",
			      "HTTP requests answered, by listener, route and status code.",
			      "listener,route,code", NULL, 0);
	m->duration = met_new(reg, MET_HISTOGRAM, "p2pcdn_http_request_duration_seconds",
			      "Time from request head to response queued.", "listener",
			      met_latency_buckets, met_latency_nbuckets);
	m->inflight = met_new(reg, MET_GAUGE, "p2pcdn_http_requests_in_flight",
			      "Requests being read or handled.", "listener", NULL, 0);
	return m->requests && m->duration && m->inflight ? 0 : -ENOMEM;
}

/* ---------------------------------------------------------------- replies */

static void
http_finish(struct http_req *r, unsigned status, struct MHD_Response *resp, size_t len)
{
	if (r->replied) {
		/* Two replies is a handler bug; the first one stands. */
		log_err("BUG: second reply (%u) to %s %s ignored", status, r->method, r->path);
		MHD_destroy_response(resp);
		return;
	}
	r->replied = true;
	r->resp = resp;
	r->status = status;
	r->resp_len = len;
}

static struct MHD_Response *
http_make_response(const char *data, size_t len, enum MHD_ResponseMemoryMode mode)
{
	return MHD_create_response_from_buffer(len, (void *)(uintptr_t)data, mode);
}

void
http_reply_take(struct http_req *r, unsigned status, const char *content_type, char *data,
		size_t len)
{
	struct MHD_Response *resp =
		http_make_response(data ? data : "", data ? len : 0,
				   data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		free(data);
		return;
	}
	if (content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	http_finish(r, status, resp, len);
}

void
http_reply_data(struct http_req *r, unsigned status, const char *content_type, const char *data,
		size_t len)
{
	struct MHD_Response *resp = http_make_response(data, len, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return;
	if (content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	http_finish(r, status, resp, len);
}

void
http_reply_fd(struct http_req *r, unsigned status, const char *content_type, int fd,
	      uint64_t offset, uint64_t len)
{
	struct MHD_Response *resp = MHD_create_response_from_fd_at_offset64(len, fd, offset);
	if (!resp) {
		close(fd);
		http_reply_error(r, 500, "internal", "cannot build a file response");
		return;
	}
	if (content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	http_finish(r, status, resp, (size_t)len);
}

struct http_upgrade {
	http_upgrade_fn fn;
	void *arg;
	struct MHD_UpgradeResponseHandle *urh;
};

/* libmicrohttpd's upgrade handler: the 101 is out, the socket is ours. */
static void
http_upgraded(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra,
	      size_t extra_len, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	struct http_upgrade *u = cls;
	struct http_req *r = con_cls;
	(void)conn;

	u->urh = urh;
	if (r) {
		/* From here on u belongs to the daemon, and the request no
		 * longer holds up a drain: a tunnel may last for hours. */
		r->upgraded = true;
		r->upg = NULL;
		if (!r->uncounted) {
			r->uncounted = true;
			if (r->srv->inflight_g)
				met_add(r->srv->inflight_g, -1);
			atomic_fetch_sub(&r->srv->inflight, 1);
		}
	}
	u->fn(u, (int)sock, extra, extra_len, u->arg);
}

void
http_reply_upgrade(struct http_req *r, const char *protocol, http_upgrade_fn fn, void *arg)
{
	struct http_upgrade *u = calloc(1, sizeof(*u));
	struct MHD_Response *resp = u ? MHD_create_response_for_upgrade(http_upgraded, u) : NULL;

	if (!resp) {
		free(u);
		fn(NULL, -1, NULL, 0, arg);
		http_reply_error(r, 500, "internal", "out of memory for the upgrade");
		return;
	}
	u->fn = fn;
	u->arg = arg;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, protocol);
	r->upg = u;
	http_finish(r, 101, resp, 0);
}

void
http_upgrade_close(struct http_upgrade *u)
{
	if (!u)
		return;
	MHD_upgrade_action(u->urh, MHD_UPGRADE_ACTION_CLOSE);
	free(u);
}

void
http_reply_json(struct http_req *r, unsigned status, json_t *body)
{
	char *text;

	if (!body) {
		http_reply_take(r, status, NULL, NULL, 0);
		return;
	}
	text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(10));
	json_decref(body);
	if (!text) {
		http_reply_data(r, 500, "application/json",
				"{\"error\":\"internal\",\"message\":\"out of memory\"}", 47);
		return;
	}
	http_reply_take(r, status, "application/json", text, strlen(text));
}

static void http_reply_verror(struct http_req *r, unsigned status, int retry_after,
			      const char *code, const char *fmt, va_list ap)
	__attribute__((format(printf, 5, 0)));

static void
http_reply_verror(struct http_req *r, unsigned status, int retry_after, const char *code,
		  const char *fmt, va_list ap)
{
	char msg[512];
	json_t *o;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	o = json_pack("{s:s, s:s}", "error", code, "message", msg);
	if (retry_after > 0) {
		char v[16];
		snprintf(v, sizeof(v), "%d", retry_after);
		http_reply_header(r, MHD_HTTP_HEADER_RETRY_AFTER, v);
	}
	http_reply_json(r, status, o);
}

void
http_reply_error(struct http_req *r, unsigned status, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	http_reply_verror(r, status, 0, code, fmt, ap);
	va_end(ap);
}

void
http_reply_retry(struct http_req *r, unsigned status, int retry_after_s, const char *code,
		 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	http_reply_verror(r, status, retry_after_s > 0 ? retry_after_s : 1, code, fmt, ap);
	va_end(ap);
}

void
http_reply_header(struct http_req *r, const char *name, const char *value)
{
	if (r->nhdr == HTTP_MAX_HEADERS || strlen(name) >= sizeof(r->hdr_name[0]) ||
	    strlen(value) >= sizeof(r->hdr_val[0]))
		return;
	strcpy(r->hdr_name[r->nhdr], name);
	strcpy(r->hdr_val[r->nhdr], value);
	r->nhdr++;
}

/* ---------------------------------------------------------------- request */

const char *
http_req_method(const struct http_req *r)
{
	return r->method;
}

const char *
http_req_path(const struct http_req *r)
{
	return r->path;
}

const char *
http_req_param(const struct http_req *r, size_t i)
{
	return i < r->nparams ? r->params[i] : NULL;
}

const char *
http_req_query(const struct http_req *r, const char *key)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *
http_req_header(const struct http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const struct addr *
http_req_client(const struct http_req *r)
{
	return &r->client;
}

const struct addr *
http_req_peer(const struct http_req *r)
{
	return &r->peer;
}

const char *
http_req_raw_query(const struct http_req *r, size_t *ret_len)
{
	const char *q = r->raw_uri ? strchr(r->raw_uri, '?') : NULL;
	q = q ? q + 1 : "";
	if (ret_len)
		*ret_len = strlen(q);
	return q;
}

const char *
http_req_body(const struct http_req *r, size_t *ret_len)
{
	if (ret_len)
		*ret_len = r->body_len;
	return r->body ? r->body : "";
}

const char *
http_req_id(const struct http_req *r)
{
	return r->rid;
}

struct http_server *
http_req_server(const struct http_req *r)
{
	return r->srv;
}

int
http_req_json(struct http_req *r, json_t **ret)
{
	json_error_t jerr;
	json_t *j;

	if (!r->body_len) {
		http_reply_error(r, 400, "bad_json", "request body must be a JSON object");
		return -EINVAL;
	}
	j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!j) {
		http_reply_error(r, 400, "bad_json", "malformed JSON at line %d column %d: %s",
				 jerr.line, jerr.column, jerr.text);
		return -EINVAL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		http_reply_error(r, 400, "expected_object", "request body must be a JSON object");
		return -EINVAL;
	}
	*ret = j;
	return 0;
}

/* ---------------------------------------------------------------- settings */

void
http_server_set_trusted(struct http_server *s, struct addr_list *trusted)
{
	pthread_rwlock_wrlock(&s->settings);
	addr_list_free(s->trusted);
	s->trusted = trusted;
	pthread_rwlock_unlock(&s->settings);
}

void
http_server_set_access_log(struct http_server *s, bool on)
{
	atomic_store(&s->access_log, on);
}

void
http_server_set_admin_token(struct http_server *s, const char *token)
{
	unsigned char h[crypto_generichash_BYTES];
	bool has = token && *token;

	if (has)
		crypto_generichash(h, sizeof(h), (const unsigned char *)token, strlen(token), NULL,
				   0);
	pthread_rwlock_wrlock(&s->settings);
	s->has_token = has;
	if (has)
		memcpy(s->token, h, sizeof(h));
	pthread_rwlock_unlock(&s->settings);
	sodium_memzero(h, sizeof(h));
}

/* 0 when the request carries the admin token; otherwise replies 401/403. */
static int
http_check_admin(struct http_req *r)
{
	struct http_server *s = r->srv;
	const char *auth = http_req_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
	unsigned char got[crypto_generichash_BYTES], want[crypto_generichash_BYTES];
	bool has;

	pthread_rwlock_rdlock(&s->settings);
	has = s->has_token;
	memcpy(want, s->token, sizeof(want));
	pthread_rwlock_unlock(&s->settings);
	if (!has) {
		http_reply_error(r, 403, "admin_disabled",
				 "no admin_token is configured; admin changes are disabled");
		return -EACCES;
	}
	if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) {
		http_reply_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
		http_reply_error(r, 401, "unauthorized",
				 "Authorization: Bearer <admin token> required");
		return -EACCES;
	}
	auth += 7;
	crypto_generichash(got, sizeof(got), (const unsigned char *)auth, strlen(auth), NULL, 0);
	if (sodium_memcmp(got, want, sizeof(got)) != 0) {
		http_reply_error(r, 403, "forbidden", "wrong admin token");
		return -EACCES;
	}
	return 0;
}

/* ---------------------------------------------------------------- dispatch */

/* Matches path against pattern, capturing {} segments. */
static bool
http_match(const char *pattern, const char *path, struct http_req *r)
{
	const char *p = pattern, *s = path;
	size_t n = 0;

	while (*p && *s) {
		if (p[0] == '{' && p[1] == '}') {
			size_t len = strcspn(s, "/");
			if (len == 0 || len >= HTTP_PARAM_MAX || n == HTTP_MAX_PARAMS)
				return false;
			memcpy(r->params[n], s, len);
			r->params[n][len] = '\0';
			n++;
			s += len;
			p += 2;
			continue;
		}
		if (*p != *s)
			return false;
		p++;
		s++;
	}
	if (*p || *s)
		return false;
	r->nparams = n;
	return true;
}

static void
http_dispatch(struct http_req *r)
{
	struct http_server *s = r->srv;
	bool path_known = false;
	const char *method = r->method;

	if (strcmp(method, "HEAD") == 0)
		method = "GET"; /* libmicrohttpd drops the body of HEAD replies itself */
	for (size_t i = 0; i < s->nroutes; i++) {
		const struct http_route *rt = &s->routes[i];
		if (!http_match(rt->pattern, r->path, r))
			continue;
		path_known = true;
		if (strcmp(rt->method, method) != 0)
			continue;
		r->route_name = rt->pattern;
		if (rt->admin && http_check_admin(r) < 0)
			return;
		rt->fn(r, s->arg);
		if (r->deferred)
			return;
		if (!r->replied) {
			log_err("BUG: handler for %s %s did not reply", rt->method, rt->pattern);
			http_reply_error(r, 500, "internal", "handler did not reply");
		}
		return;
	}
	r->route_name = path_known ? "method_not_allowed" : "not_found";
	if (path_known)
		http_reply_error(r, 405, "method_not_allowed", "%s is not allowed on %s", r->method,
				 r->path);
	else
		http_reply_error(r, 404, "not_found", "no such endpoint: %s", r->path);
}

static double
http_elapsed(const struct timespec *start)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* Request ids: honour a sane incoming X-Request-Id so one id follows a call
 * through several daemons; otherwise 16 random hex digits. */
static void
http_set_rid(struct http_req *r)
{
	const char *in = http_req_header(r, "X-Request-Id");
	if (in) {
		size_t len = strlen(in);
		if (len > 0 && len < sizeof(r->rid) &&
		    strspn(in, "abcdefghijklmnopqrstuvwxyz"
			       "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			       "0123456789-_.") == len) {
			memcpy(r->rid, in, len + 1);
			return;
		}
	}
	/* Random bytes drawn 32 ids at a time: one getrandom(2) per request
	 * showed in profiles of the hot paths. */
	static __thread unsigned char pool[8 * 32];
	static __thread unsigned left;
	if (!left) {
		randombytes_buf(pool, sizeof(pool));
		left = 32;
	}
	left--;
	sodium_bin2hex(r->rid, sizeof(r->rid), pool + 8 * left, 8);
}

static enum MHD_Result
http_queue(struct http_req *r)
{
	struct http_server *s = r->srv;
	char code[8];
	enum MHD_Result ret;
	double dt = http_elapsed(&r->start);

	if (!r->resp) {
		/* Allocation failed while building the reply. */
		r->resp = http_make_response("", 0, MHD_RESPMEM_PERSISTENT);
		r->status = 500;
		if (!r->resp)
			return MHD_NO;
	}
	MHD_add_response_header(r->resp, "X-Request-Id", r->rid);
	for (size_t i = 0; i < r->nhdr; i++)
		MHD_add_response_header(r->resp, r->hdr_name[i], r->hdr_val[i]);
	r->queued = true;
	ret = MHD_queue_response(r->conn, r->status, r->resp);
	MHD_destroy_response(r->resp);
	r->resp = NULL;

	if (s->metrics) {
		snprintf(code, sizeof(code), "%u", r->status);
		met_add(met_child(s->metrics->requests, s->name,
				  r->route_name ? r->route_name : "none", code),
			1);
		met_observe(s->duration, dt);
	}
	if (atomic_load_explicit(&s->access_log, memory_order_relaxed) && log_enabled(LOG_INFO)) {
		char client[ADDR_STR_MAX], peer[ADDR_STR_MAX];
		addr_format_ip(&r->client, client, sizeof(client));
		addr_format(&r->peer, peer, sizeof(peer));
		log_info("access rid=%s listener=%s client=%s peer=%s \"%s %.200s\" %u %zu %.3fms",
			 r->rid, s->name, client, peer, r->method, r->path, r->status, r->resp_len,
			 dt * 1e3);
	}
	return ret;
}

struct http_xff {
	char buf[2048];
	size_t len;
	bool cut;
};

/* Joins every X-Forwarded-For line in order: a proxy may add its own line
 * and leave the client's, and only the full list read from the right is
 * trustworthy. Past the buffer the leftmost (least trusted) part is what
 * gets dropped. */
static enum MHD_Result
http_xff_collect(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct http_xff *x = cls;
	(void)kind;
	if (strcasecmp(key, "X-Forwarded-For") != 0 || !value)
		return MHD_YES;
	size_t n = strlen(value);
	if (x->len + n + 2 > sizeof(x->buf)) {
		/* Keep the right end: shift out the oldest entries. */
		size_t need = x->len + n + 2 - sizeof(x->buf);
		if (need >= x->len) {
			x->len = 0;
			if (n + 1 > sizeof(x->buf)) {
				value += n - (sizeof(x->buf) - 1);
				n = sizeof(x->buf) - 1;
			}
		} else {
			memmove(x->buf, x->buf + need, x->len - need);
			x->len -= need;
		}
		x->cut = true;
	}
	if (x->len)
		x->buf[x->len++] = ',';
	memcpy(x->buf + x->len, value, n);
	x->len += n;
	x->buf[x->len] = '\0';
	return MHD_YES;
}

static void
http_req_client_addr(struct http_req *r)
{
	struct http_server *s = r->srv;
	struct http_xff x = { .len = 0 };

	pthread_rwlock_rdlock(&s->settings);
	if (s->trusted && addr_list_match(s->trusted, &r->peer)) {
		MHD_get_connection_values(r->conn, MHD_HEADER_KIND, http_xff_collect, &x);
		if (x.cut) {
			/* The cut may have split the leftmost entry: drop it. */
			char *comma = strchr(x.buf, ',');
			if (comma)
				memmove(x.buf, comma + 1, strlen(comma + 1) + 1);
		}
	}
	addr_client(&r->peer, x.len ? x.buf : NULL, s->trusted, &r->client);
	pthread_rwlock_unlock(&s->settings);
}

static struct http_req *
http_req_alloc(void)
{
	struct http_req *r = malloc(sizeof(*r));
	if (!r)
		return NULL;
	/* Zeroing 3.5 KiB of buffers per request showed in profiles; they are
	 * written before being read. */
	memset(r, 0, offsetof(struct http_req, params));
	return r;
}

/* Per connection, for keep_raw_uri (the last request line seen) and
 * read_timeout_ms (when the wait for a whole request began). */
struct http_conn {
	char *raw_uri;
	struct http_conn *prev, *next; /* s->conns, with read_timeout_ms */
	int fd;
	long long since_ms; /* connection opened or previous request done */
	bool busy;          /* a whole request was read; its answer is pending */
	bool killed;
};

static long long
http_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
http_notify_conn(void *cls, struct MHD_Connection *conn, void **socket_context,
		 enum MHD_ConnectionNotificationCode toe)
{
	struct http_server *s = cls;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		struct http_conn *hc = calloc(1, sizeof(*hc));
		const union MHD_ConnectionInfo *ci;
		*socket_context = hc;
		if (!hc || !s->read_timeout_ms)
			return;
		ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		hc->fd = ci ? (int)ci->connect_fd : -1;
		hc->since_ms = http_now_ms();
		pthread_mutex_lock(&s->conns_lock);
		hc->next = s->conns;
		if (s->conns)
			s->conns->prev = hc;
		s->conns = hc;
		pthread_mutex_unlock(&s->conns_lock);
	} else if (*socket_context) {
		struct http_conn *hc = *socket_context;
		if (s->read_timeout_ms) {
			/* Unlinked before libmicrohttpd closes the socket, so the
			 * watchdog never touches a reused descriptor. */
			pthread_mutex_lock(&s->conns_lock);
			if (hc->prev)
				hc->prev->next = hc->next;
			else
				s->conns = hc->next;
			if (hc->next)
				hc->next->prev = hc->prev;
			pthread_mutex_unlock(&s->conns_lock);
		}
		free(hc->raw_uri);
		free(hc);
		*socket_context = NULL;
	}
}

/* Marks the connection's request as fully read (busy) or answered. */
static void
http_conn_busy(struct http_server *s, struct MHD_Connection *conn, bool busy)
{
	const union MHD_ConnectionInfo *ci;
	struct http_conn *hc;

	if (!s->read_timeout_ms)
		return;
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	hc = ci ? ci->socket_context : NULL;
	if (!hc)
		return;
	pthread_mutex_lock(&s->conns_lock);
	hc->busy = busy;
	if (!busy)
		hc->since_ms = http_now_ms();
	pthread_mutex_unlock(&s->conns_lock);
}

/* Slow-loris defence: libmicrohttpd's timeout counts idle time only, so a
 * client sending a byte now and then holds a connection forever. A
 * connection that has not delivered a whole request within
 * read_timeout_ms of opening (or of its previous answer) is shut down;
 * libmicrohttpd then sees the error and closes it itself. */
static void *
http_watchdog(void *arg)
{
	struct http_server *s = arg;

	while (!atomic_load(&s->watchdog_stop)) {
		long long now = http_now_ms();
		pthread_mutex_lock(&s->conns_lock);
		for (struct http_conn *hc = s->conns; hc; hc = hc->next) {
			if (!hc->busy && !hc->killed && hc->fd >= 0 &&
			    now - hc->since_ms > (long long)s->read_timeout_ms) {
				shutdown(hc->fd, SHUT_RDWR);
				hc->killed = true;
			}
		}
		pthread_mutex_unlock(&s->conns_lock);
		usleep(200000);
	}
	return NULL;
}

/* libmicrohttpd's URI log callback sees the request line before it is
 * percent-decoded: keep it for handlers that need the raw query (binary
 * info_hash values, where a decoded %00 would end the string). It is kept
 * on the connection, which is always cleaned up, not on the request, whose
 * completion callback does not run when a request dies before its handler. */
static void *
http_uri_log(void *cls, const char *uri, struct MHD_Connection *con)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(con, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct http_conn *hc = ci ? ci->socket_context : NULL;
	(void)cls;
	if (hc) {
		free(hc->raw_uri);
		hc->raw_uri = strdup(uri);
	}
	return NULL;
}

/* Fills in r (a new one when r is NULL). */
static struct http_req *
http_req_init(struct http_req *r, struct http_server *s, struct MHD_Connection *conn,
	      const char *url, const char *method)
{
	const union MHD_ConnectionInfo *ci;

	if (!r && !(r = http_req_alloc()))
		return NULL;
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	r->srv = s;
	r->conn = conn;
	r->method = method;
	r->path = strdup(url);
	if (!r->path) {
		free(r->raw_uri);
		free(r);
		return NULL;
	}
	r->inited = true;
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (ci && ci->socket_context) {
		struct http_conn *hc = ci->socket_context;
		r->raw_uri = hc->raw_uri; /* taken over: one request line, one request */
		hc->raw_uri = NULL;
	}
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr)
		addr_from_sockaddr(ci->client_addr, &r->peer);
	http_req_client_addr(r);
	http_set_rid(r);
	atomic_fetch_add(&s->inflight, 1);
	if (s->inflight_g)
		met_add(s->inflight_g, 1);
	return r;
}

static enum MHD_Result
http_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
	    const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct http_server *s = cls;
	struct http_req *r = *con_cls;
	(void)version;

	if (!r || !r->inited) {
		const char *cl;
		r = http_req_init(r, s, conn, url, method);
		*con_cls = r;
		if (!r)
			return MHD_NO;
		*con_cls = r;
		/* Sequentially consistent, paired with the inflight count: a
		 * request either sees draining or is counted by the drain. */
		if (atomic_load(&s->draining)) {
			r->too_large = true; /* read and drop any body */
			r->route_name = "draining";
			http_reply_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
			http_reply_retry(r, 503, 1, "shutting_down",
					 "this server is shutting down; retry on another");
			return http_queue(r);
		}
		cl = http_req_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > s->max_body) {
			r->too_large = true;
			r->route_name = "too_large";
			http_reply_error(r, 413, "body_too_large",
					 "request body over the limit of %zu bytes", s->max_body);
			return http_queue(r);
		}
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (r->too_large)
			return MHD_YES;
		if (n > s->max_body - r->body_len) {
			/* Chunked bodies have no Content-Length. libmicrohttpd cannot
			 * answer in the middle of an upload, so the rest is read and
			 * dropped (memory stays bounded) and 413 goes out at the end. */
			r->too_large = true;
			free(r->body);
			r->body = NULL;
			r->body_len = r->body_cap = 0;
			return MHD_YES;
		}
		if (r->body_len + n + 1 > r->body_cap) {
			size_t cap = r->body_cap ? r->body_cap : 1024;
			while (cap < r->body_len + n + 1)
				cap *= 2;
			if (cap > s->max_body + 1)
				cap = s->max_body + 1;
			char *nb = realloc(r->body, cap);
			if (!nb)
				return MHD_NO;
			r->body = nb;
			r->body_cap = cap;
		}
		memcpy(r->body + r->body_len, upload_data, n);
		r->body_len += n;
		r->body[r->body_len] = '\0';
		return MHD_YES;
	}
	http_conn_busy(s, conn, true);
	if (r->too_large) {
		if (r->queued)
			return MHD_YES; /* answered from the Content-Length */
		r->route_name = "too_large";
		http_reply_error(r, 413, "body_too_large",
				 "request body over the limit of %zu bytes", s->max_body);
		return http_queue(r);
	}
	if (r->deferred) {
		/* Called again after http_resume: the reply is ready. */
		return http_queue(r);
	}
	log_set_request_id(r->rid);
	http_dispatch(r);
	log_set_request_id(NULL);
	if (r->deferred) {
		int expect = HTTP_D_WAITING;
		MHD_suspend_connection(conn);
		if (!atomic_compare_exchange_strong(&r->dstate, &expect, HTTP_D_SUSPENDED))
			MHD_resume_connection(conn); /* the reply came first */
		return MHD_YES;
	}
	return http_queue(r);
}

void
http_defer(struct http_req *r)
{
	r->deferred = true;
	atomic_store(&r->dstate, HTTP_D_WAITING);
}

void
http_resume(struct http_req *r)
{
	int expect = HTTP_D_WAITING;
	if (!r->replied)
		http_reply_error(r, 500, "internal", "deferred request resumed without a reply");
	if (!atomic_compare_exchange_strong(&r->dstate, &expect, HTTP_D_READY))
		MHD_resume_connection(r->conn); /* state was SUSPENDED */
}

static void
http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
	       enum MHD_RequestTerminationCode toe)
{
	struct http_server *s = cls;
	struct http_req *r = *con_cls;
	(void)toe;

	http_conn_busy(s, conn, false);
	if (!r)
		return;
	*con_cls = NULL;
	bool counted = r->inited && !r->uncounted;
	if (r->upg && !r->upgraded) {
		/* The 101 never went out: tell the daemon, which waits for it. */
		r->upg->fn(NULL, -1, NULL, 0, r->upg->arg);
		free(r->upg);
	}
	if (r->resp)
		MHD_destroy_response(r->resp);
	free(r->body);
	free(r->path);
	free(r->raw_uri);
	free(r);
	if (!counted)
		return; /* the request line came, the request never started */
	if (s->inflight_g)
		met_add(s->inflight_g, -1);
	atomic_fetch_sub(&s->inflight, 1);
}

static void http_mhd_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void
http_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	struct http_server *s = cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	log_notice("http %s: %s", s->name, buf);
}

/* ---------------------------------------------------------------- lifecycle */

static char *
http_read_file(const char *path, char *err, size_t errsize)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	long len;

	if (!f) {
		snprintf(err, errsize, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && len < (1 << 20) &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len + 1))) {
		if (fread(buf, 1, (size_t)len, f) == (size_t)len) {
			buf[len] = '\0';
			fclose(f);
			return buf;
		}
	}
	snprintf(err, errsize, "%s: cannot read (missing, unreadable or over 1 MiB)", path);
	free(buf);
	fclose(f);
	return NULL;
}

/* One listen address: IP:PORT or [IPv6]:PORT. Port 0 (any free port) is
 * valid here, which addr_parse refuses, so the port is checked by hand. */
static int
http_listen_parse(const char *spec, size_t len, struct addr *ret)
{
	const char *colon = memrchr(spec, ':', len);
	const char *bracket = memchr(spec, ']', len);
	size_t plen;

	if (!colon || len < 3)
		return -EINVAL;
	if (spec[0] == '[' ? (!bracket || bracket + 1 != colon) : memchr(spec, ':', len) != colon)
		return -EINVAL;
	plen = len - (size_t)(colon + 1 - spec);
	if (plen < 1 || plen > 5 || strspn(colon + 1, "0123456789") < plen)
		return -EINVAL;
	unsigned long port = strtoul(colon + 1, NULL, 10);
	char tmp[ADDR_STR_MAX + 8];
	size_t iplen = (size_t)(colon - spec);
	if (port > 65535 || iplen + 3 > sizeof(tmp))
		return -EINVAL;
	/* addr_parse refuses port 0, so parse with a stand-in port. */
	memcpy(tmp, spec, iplen);
	memcpy(tmp + iplen, ":1", 3);
	if (addr_parse(tmp, iplen + 2, true, ret) < 0)
		return -EINVAL;
	ret->port = (unsigned short)port;
	return 0;
}

int
http_listen_check(const char *listen, char *err, size_t errsize)
{
	struct addr a;
	size_t count = 0;

	for (const char *p = listen; p && *p;) {
		p += strspn(p, ", \t");
		size_t len = strcspn(p, ", \t");
		if (!len)
			break;
		if (http_listen_parse(p, len, &a) < 0) {
			snprintf(err, errsize,
				 "bad listen address \"%.*s\" (want IP:PORT or [IPv6]:PORT)",
				 (int)len, p);
			return -EINVAL;
		}
		count++;
		p += len;
	}
	if (!count || count > HTTP_MAX_LISTEN) {
		snprintf(err, errsize, "give 1 to %d listen addresses", HTTP_MAX_LISTEN);
		return -EINVAL;
	}
	return 0;
}

/* Percent-decodes the path and query in place like libmicrohttpd does, but
 * leaves "%00" as it is: a NUL inside a name would silently cut it short. */
static size_t
http_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	char *w = s;
	(void)cls;
	(void)c;
	for (char *r = s; *r; r++) {
		int hi, lo;
		if (r[0] == '%' && r[1] && r[2] && (hi = util_hexval(r[1])) >= 0 &&
		    (lo = util_hexval(r[2])) >= 0 && (hi || lo)) {
			*w++ = (char)(hi << 4 | lo);
			r += 2;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
	return (size_t)(w - s);
}

static int
http_start_one(struct http_server *s, const struct http_server_opts *o, const char *spec,
	       size_t len, char *err, size_t errsize)
{
	struct addr a;
	struct sockaddr_storage ss;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
			 MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
			 MHD_ALLOW_UPGRADE;
	unsigned threads = o->threads;
	struct MHD_OptionItem opts[16];
	size_t n = 0;
	struct MHD_Daemon *d;
	const union MHD_DaemonInfo *di;

	if (s->nd == HTTP_MAX_LISTEN) {
		snprintf(err, errsize, "%s: more than %d listen addresses", o->name,
			 HTTP_MAX_LISTEN);
		return -EINVAL;
	}
	if (http_listen_parse(spec, len, &a) < 0) {
		snprintf(err, errsize,
			 "%s: bad listen address \"%.*s\" (want IP:PORT or [IPv6]:PORT)", o->name,
			 (int)len, spec);
		return -EINVAL;
	}
	addr_to_sockaddr(&a, &ss);
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (s->tls_cert)
		flags |= MHD_USE_TLS;
	if (!threads) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		threads = c > 0 ? (unsigned)c : 1;
	}
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, &ss };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE, threads, NULL };
	opts[n++] =
		(struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT,
					 o->connection_limit ? o->connection_limit : 10000, NULL };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT,
					     o->timeout_s ? o->timeout_s : 30, NULL };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_COMPLETED,
					     (intptr_t)(void *)http_completed, s };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL };
	if (o->keep_raw_uri || o->read_timeout_ms)
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_CONNECTION,
						     (intptr_t)(void *)http_notify_conn, s };
	if (o->keep_raw_uri)
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_URI_LOG_CALLBACK,
						     (intptr_t)(void *)http_uri_log, NULL };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_UNESCAPE_CALLBACK,
					     (intptr_t)(void *)http_unescape, NULL };
	if (s->tls_cert) {
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert };
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key };
	}
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };

	/* The logger must be the first option or libmicrohttpd logs the
	 * others' problems to stderr itself. */
	d = MHD_start_daemon(flags, 0, NULL, NULL, http_access, s, MHD_OPTION_EXTERNAL_LOGGER,
			     http_mhd_log, s, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (!d) {
		snprintf(err, errsize,
			 "%s: cannot listen on %.*s (address in use, not local, or bad TLS files)",
			 o->name, (int)len, spec);
		return -EADDRINUSE;
	}
	/* Accept a connection only once its request bytes are there: one
	 * wake-up per request instead of two for the one-request-per-connection
	 * clients of trackers and caches. A client that connects and sends
	 * nothing is accepted after the kernel's retries (the idle timeout
	 * then applies as before). */
	di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_LISTEN_FD);
	if (di) {
		int secs = 2;
		if (setsockopt(di->listen_fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs)) <
		    0)
			log_debug("%s: TCP_DEFER_ACCEPT: %s", o->name, strerror(errno));
	}
	di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	s->port[s->nd] = di ? di->port : -1;
	s->d[s->nd++] = d;
	return 0;
}

struct http_server *
http_server_start(const struct http_server_opts *o, char *err, size_t errsize)
{
	struct http_server *s = calloc(1, sizeof(*s));
	const char *p;

	if (!s) {
		snprintf(err, errsize, "out of memory");
		addr_list_free(o->trusted);
		return NULL;
	}
	if (sodium_init() < 0) {
		snprintf(err, errsize, "libsodium failed to initialise");
		addr_list_free(o->trusted);
		free(s);
		return NULL;
	}
	pthread_rwlock_init(&s->settings, NULL);
	pthread_mutex_init(&s->conns_lock, NULL);
	s->read_timeout_ms = o->read_timeout_ms;
	/* Settings a request may read are in place before the first accept;
	 * taking them first also means `trusted` is owned (and freed) even
	 * when starting fails below. */
	http_server_set_trusted(s, o->trusted);
	http_server_set_admin_token(s, o->admin_token);
	s->name = strdup(o->name ? o->name : "http");
	s->routes = o->routes;
	s->nroutes = o->nroutes;
	s->arg = o->arg;
	s->max_body = o->max_body ? o->max_body : 65536;
	s->registry = o->registry;
	s->metrics = o->metrics;
	atomic_store(&s->access_log, o->access_log);
	if (!s->name)
		goto fail;
	if (s->metrics) {
		s->duration = met_child(s->metrics->duration, s->name);
		s->inflight_g = met_child(s->metrics->inflight, s->name);
	}
	if ((o->tls_cert_file && *o->tls_cert_file) != (o->tls_key_file && *o->tls_key_file)) {
		snprintf(err, errsize, "%s: tls_cert and tls_key must be set together", s->name);
		goto fail;
	}
	if (o->tls_cert_file && *o->tls_cert_file) {
		s->tls_cert = http_read_file(o->tls_cert_file, err, errsize);
		if (!s->tls_cert)
			goto fail;
		s->tls_key = http_read_file(o->tls_key_file, err, errsize);
		if (!s->tls_key)
			goto fail;
	}
	for (p = o->listen; p && *p;) {
		p += strspn(p, ", \t");
		size_t len = strcspn(p, ", \t");
		if (!len)
			break;
		if (http_start_one(s, o, p, len, err, errsize) < 0)
			goto fail;
		p += len;
	}
	if (!s->nd) {
		snprintf(err, errsize, "%s: no listen address given", s->name);
		goto fail;
	}
	if (s->read_timeout_ms) {
		if (pthread_create(&s->watchdog, NULL, http_watchdog, s) != 0) {
			snprintf(err, errsize, "%s: cannot start the read timeout thread", s->name);
			goto fail;
		}
		s->watchdog_on = true;
	}
	return s;
fail:
	http_server_free(s);
	return NULL;
}

int
http_server_port(const struct http_server *s, size_t i)
{
	return i < s->nd ? s->port[i] : -1;
}

void
http_server_drain(struct http_server *s, int timeout_ms)
{
	if (!s || s->drained)
		return;
	s->drained = true;
	/* New requests are refused with 503 from here on rather than by
	 * MHD_quiesce_daemon: with a thread pool on epoll, libmicrohttpd
	 * 0.9.75 can abort ("Failed to remove listen FD from epoll set") when a
	 * worker has taken the listen socket out of its set at that moment. */
	atomic_store(&s->draining, true);
	for (int waited = 0; atomic_load(&s->inflight) > 0 && waited < timeout_ms; waited += 10)
		usleep(10000);
	if (atomic_load(&s->inflight) > 0)
		log_warn("%s: %d requests still in flight after %d ms; closing them", s->name,
			 atomic_load(&s->inflight), timeout_ms);
}

/* Closes every connection. Deferred requests must have been resumed:
 * libmicrohttpd cannot stop with a connection suspended. */
static void
http_server_stop(struct http_server *s)
{
	for (size_t i = 0; i < s->nd; i++)
		MHD_stop_daemon(s->d[i]);
	s->nd = 0;
}

void
http_server_free(struct http_server *s)
{
	if (!s)
		return;
	http_server_drain(s, 0);
	if (s->watchdog_on) {
		atomic_store(&s->watchdog_stop, true);
		pthread_join(s->watchdog, NULL);
	}
	http_server_stop(s);
	pthread_mutex_destroy(&s->conns_lock);
	addr_list_free(s->trusted);
	sodium_memzero(s->token, sizeof(s->token));
	if (s->tls_key)
		sodium_memzero(s->tls_key, strlen(s->tls_key));
	free(s->tls_key);
	free(s->tls_cert);
	free(s->name);
	pthread_rwlock_destroy(&s->settings);
	free(s);
}

/* ---------------------------------------------------------------- admin */

void
http_handle_healthz(struct http_req *r, void *arg)
{
	(void)arg;
	http_reply_data(r, 200, "text/plain; charset=utf-8", "ok\n", 3);
}

void
http_handle_metrics(struct http_req *r, void *arg)
{
	size_t len;
	char *text;
	(void)arg;

	if (!r->srv->registry) {
		http_reply_error(r, 404, "not_found", "no metrics on this listener");
		return;
	}
	text = met_render(r->srv->registry, &len);
	if (!text) {
		http_reply_error(r, 500, "internal", "out of memory rendering metrics");
		return;
	}
	http_reply_take(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}
