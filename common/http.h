/* SPDX-License-Identifier: MIT */
/* HTTP server on libmicrohttpd: route table, JSON in/out, limits, admin basics. */
#ifndef P2PCDN_HTTP_H
#define P2PCDN_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "met.h"

/*
 * One struct http_server is one logical listener ("api", "admin") that may
 * bind several addresses (IPv4 and IPv6), each served by a libmicrohttpd
 * daemon with its own thread pool. Handlers run on those pool threads, get
 * the request with its body already read (up to max_body) and must reply
 * exactly once through an http_reply_* call; a handler that forgets gets a
 * 500. Errors are always JSON: {"error":"snake_case","message":"..."}.
 */
struct http_server;
struct http_req;

typedef void (*http_handler_fn)(struct http_req *req, void *arg);

struct http_route {
	const char *method;  /* "GET", "POST", "PUT", "DELETE" (HEAD is served by GET routes) */
	const char *pattern; /* "/v1/x/{}/y": each {} matches one non-empty path segment */
	http_handler_fn fn;
	bool admin; /* requires "Authorization: Bearer <admin token>" */
};

/* Metric families shared by every listener of a daemon (create once). */
struct http_metrics {
	struct met *requests; /* p2pcdn_http_requests_total{listener,route,code} */
	struct met *duration; /* p2pcdn_http_request_duration_seconds{listener} */
	struct met *inflight; /* p2pcdn_http_requests_in_flight{listener} */
};
int http_metrics_init(struct http_metrics *m, struct met_registry *reg);

struct http_server_opts {
	const char *name;   /* listener label in logs and metrics */
	const char *listen; /* "127.0.0.1:7003, [::1]:7003" */
	unsigned threads;   /* pool threads per address (0 = CPUs) */
	unsigned connection_limit;
	unsigned timeout_s; /* idle connection timeout */
	size_t max_body;
	const char *tls_cert_file; /* both set = HTTPS */
	const char *tls_key_file;
	bool access_log;
	const struct http_route *routes;
	size_t nroutes;
	void *arg;                     /* passed to every handler */
	struct met_registry *registry; /* for GET /metrics (http_handle_metrics) */
	struct addr_list *trusted;     /* taken over (NULL = trust nobody); set before listening */
	const char *admin_token;       /* copied; NULL or "" = admin routes answer 403 */
	bool keep_raw_uri;             /* keep the undecoded request line: http_req_raw_query */
	struct http_metrics *metrics;  /* NULL = no request metrics */
	/* 0 = off. Otherwise a connection must deliver a whole request
	 * (head and body) within this many ms of opening or of its previous
	 * answer, or it is closed: timeout_s alone counts idle time, which a
	 * client trickling a byte at a time (slow-loris) never reaches. */
	unsigned read_timeout_ms;
};

/* Binds every address and starts serving. Returns the server, or NULL with
 * a message in err (bad address, port in use, unreadable TLS files...). */
struct http_server *http_server_start(const struct http_server_opts *o, char *err, size_t errsize);

/* Answers new requests 503 shutting_down (with Connection: close) and waits
 * up to timeout_ms for requests in flight, whose replies still go out. Safe
 * to call once; then http_server_free. */
void http_server_drain(struct http_server *s, int timeout_ms);

/* Drains with timeout 0 if not yet drained, closes every connection,
 * frees. Whatever completes deferred requests (http_defer) must have
 * resumed them all first. NULL-safe. */
void http_server_free(struct http_server *s);

/* Checks a listen string ("IP:PORT, [IPv6]:PORT", port 0 allowed) without
 * binding: 0, or -EINVAL with a message in err. For --check-config. */
int http_listen_check(const char *listen, char *err, size_t errsize);

/* Port actually bound by address i (useful with port 0), or -1. */
int http_server_port(const struct http_server *s, size_t i);

/* Reloadable settings, any thread. The server takes ownership of `trusted`
 * (may be NULL = trust nobody). Requests read these under a read lock and a
 * swap takes the write lock, so the old value is freed at once, however
 * close two reloads come. */
void http_server_set_trusted(struct http_server *s, struct addr_list *trusted);
void http_server_set_access_log(struct http_server *s, bool on);
/* Token is copied; NULL or "" disables admin routes (403). */
void http_server_set_admin_token(struct http_server *s, const char *token);

/* ---- the request, valid during the handler call ---- */
const char *http_req_method(const struct http_req *r);
const char *http_req_path(const struct http_req *r);
/* Path parameter i ({} of the pattern, in order), NUL-terminated, or NULL. */
const char *http_req_param(const struct http_req *r, size_t i);
/* Query argument or header value, or NULL. */
const char *http_req_query(const struct http_req *r, const char *key);
const char *http_req_header(const struct http_req *r, const char *name);
/* The client address (X-Forwarded-For resolved against trusted proxies)
 * and the direct TCP peer. */
const struct addr *http_req_client(const struct http_req *r);
const struct addr *http_req_peer(const struct http_req *r);
/* The query string as received, still percent-encoded ("" when none, or
 * when the server was started without keep_raw_uri). */
const char *http_req_raw_query(const struct http_req *r, size_t *ret_len);
const char *http_req_body(const struct http_req *r, size_t *ret_len);
const char *http_req_id(const struct http_req *r);
struct http_server *http_req_server(const struct http_req *r);

/* Parses the body as a JSON object. Returns 0 with *ret (caller decrefs),
 * or -EINVAL after replying 400 bad_json (with line/column) or
 * 400 expected_object. */
int http_req_json(struct http_req *r, json_t **ret);

/* ---- replies: exactly one per request ---- */
/* Sends body (reference stolen, may be NULL for an empty 204). */
void http_reply_json(struct http_req *r, unsigned status, json_t *body);
void http_reply_error(struct http_req *r, unsigned status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* 503 (or 429) with Retry-After. */
void http_reply_retry(struct http_req *r, unsigned status, int retry_after_s, const char *code,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Copies data. */
void http_reply_data(struct http_req *r, unsigned status, const char *content_type,
		     const char *data, size_t len);
/* Takes ownership of malloc'd data. */
void http_reply_take(struct http_req *r, unsigned status, const char *content_type, char *data,
		     size_t len);
/* Sends len bytes of fd from offset (sendfile where the kernel allows);
 * takes ownership of fd (closed when the response is freed, also on
 * error). A HEAD request gets the headers only. */
void http_reply_fd(struct http_req *r, unsigned status, const char *content_type, int fd,
		   uint64_t offset, uint64_t len);
/* Adds a response header (copied); call before the reply. Max 8. */
void http_reply_header(struct http_req *r, const char *name, const char *value);

/* Deferred replies, for handlers that wait on another thread (an async
 * Redis call) without holding their pool thread: the handler calls
 * http_defer(r) and returns without replying; later any thread calls one
 * http_reply_* function on r and then http_resume(r), exactly once. r stays
 * valid until http_resume. While deferred the connection is suspended:
 * no thread polls it. */
void http_defer(struct http_req *r);
void http_resume(struct http_req *r);

/* Protocol upgrades (HTTP/1.1 101 Switching Protocols), for daemons that
 * take a connection over as a raw byte stream (the relay-server's tunnel).
 * The handler answers with http_reply_upgrade() instead of another reply;
 * once the 101 has gone out, fn runs ONCE on a pool thread with the
 * connection's socket and the bytes the client sent after its request head
 * that were already read (extra, may be 0 bytes, valid during the call
 * only). From then on the socket belongs to the daemon: it may read, write
 * and shutdown(2) it but must never close(2) it; when done it calls
 * http_upgrade_close(u) exactly once, from any thread. If the 101 could not
 * be sent (client gone, out of memory), fn runs instead with fd = -1 and
 * u = NULL, from the thread that noticed; nothing is to be closed then.
 * fn must not block. An upgraded connection no longer counts as a request
 * in flight (drain does not wait for it), but it still counts against
 * connection_limit until closed; http_server_free requires every upgraded
 * connection to be closed first. With TLS the socket is a local socketpair
 * that libmicrohttpd relays through TLS (slowly, in 0.9.75, and without
 * passing the peer's close on: see docs/relay-server.md). */
struct http_upgrade;
typedef void (*http_upgrade_fn)(struct http_upgrade *u, int fd, const char *extra, size_t extra_len,
				void *arg);
/* protocol is the Upgrade header value sent back (copied). */
void http_reply_upgrade(struct http_req *r, const char *protocol, http_upgrade_fn fn, void *arg);
/* Hands the socket back to libmicrohttpd, which closes it. Frees u. */
void http_upgrade_close(struct http_upgrade *u);

/* Common admin handlers: "ok" and the Prometheus text of opts.registry. */
void http_handle_healthz(struct http_req *r, void *arg);
void http_handle_metrics(struct http_req *r, void *arg);

#endif
