/* SPDX-License-Identifier: MIT */
/* login-server: private declarations shared by its files. */
#ifndef P2PCDN_LOGIN_H
#define P2PCDN_LOGIN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "cfg.h"
#include "evl.h"
#include "http.h"
#include "met.h"
#include "pg.h"
#include "rds.h"
#include "rds_async.h"
#include "svc.h"
#include "tok.h"

#define LOGIN_USER_MAX   32  /* account name bytes */
#define LOGIN_PASS_MAX   256 /* password bytes */
#define LOGIN_PASS_MIN   8
#define LOGIN_SECRET_LEN 32                    /* session token secret: 256 bits */
#define LOGIN_TOKEN_MAX  (LOGIN_USER_MAX + 64) /* "user.base64url(secret)" incl. NUL */
#define LOGIN_TH_HEX     65                    /* hex SHA-256 of the secret incl. NUL */
#define LOGIN_CID_HEX    33                    /* connect id: 128 bits as hex incl. NUL */
#define LOGIN_PK_LEN     32                    /* X25519 public key */
#define LOGIN_PK_B64     45                    /* base64 of 32 bytes incl. NUL */

/* ---------------------------------------------------------------- rules
 * Pure functions (login_rules.c): no I/O, no globals, unit-tested. */

enum login_nat { LOGIN_NAT_OUTER = 0, LOGIN_NAT_INNER = 1 };

enum login_mode {
	LOGIN_MODE_DIRECT = 0,
	LOGIN_MODE_REVERSE,
	LOGIN_MODE_LAN,
	LOGIN_MODE_RELAY,
	LOGIN_MODE_N,
};

/* What the broker knows about one side of a connect. */
struct login_peer_view {
	enum login_nat nat;
	struct addr public_ip; /* observed source IP (port ignored) */
	bool has_private;      /* reported a private address */
	bool has_key;          /* reported a public key (the lan check needs one) */
};

/* Seed 000 §4: the scenario for initiator a connecting to target b.
 * outer-outer and inner->outer: direct; outer->inner: reverse (the inner
 * target connects out, "small service peer"); inner-inner: lan when the two
 * may share a private network (login_same_network), else relay (Fig. 5). */
enum login_mode login_decide(const struct login_peer_view *a, const struct login_peer_view *b);

/* The "may share a private network" judgment of Fig. 5, first step: both
 * behind NAT, both reported a private address and a public key, and the same
 * observed public IP (one NAT's outside address). The lan check by sealed connect id decides
 * for real; a wrong guess costs one failed LAN attempt, then relay. */
bool login_same_network(const struct login_peer_view *a, const struct login_peer_view *b);

const char *login_mode_name(enum login_mode m); /* "direct"... static */
int login_mode_parse(const char *s);            /* -EINVAL if unknown */

/* Relay dependency degree K_ra (seed 000 §4.1, Definition 3): connects
 * that needed the relay over all connects; 0 when there were none. */
double login_kra(unsigned long long relayed, unsigned long long total);

/* Account names: 3-32 of a-z 0-9 . _ -, starting with a letter or digit. */
bool login_user_ok(const char *s, size_t len);

/* Relay token payload of the cross-daemon contract, compact JSON
 * {"cid":..,"side":"a"|"b","user":..,"peer":..}. Returns the length or
 * -ENOBUFS / -EINVAL (bad side or names). */
int login_relay_payload(const char *cid, char side, const char *user, const char *peer, char *out,
			size_t size);

/* Relay choice among registry entries: the least loaded live one with a
 * free slot. load = sessions/capacity; capacity <= 0 or url empty = unusable.
 * Returns the index or -1. */
struct login_relay_cand {
	const char *id;
	const char *url; /* NULL = the relay:{ID} hash is gone (dead) */
	double sessions, capacity;
};
int login_relay_pick(const struct login_relay_cand *c, size_t n);

/* Heartbeat interval with jitter: base_s minus up to jitter_pct percent,
 * never below 1 s (r = a random 32-bit value). Never above base_s, so the
 * TTL of three intervals always holds. */
int login_jitter(int base_s, int jitter_pct, uint32_t r);

/* ---------------------------------------------------------------- parsers
 * (login_parse.c): request bodies and tokens; fuzzed. */

struct login_req {
	char user[LOGIN_USER_MAX + 1];
	char password[LOGIN_PASS_MAX + 1];
	int listen_port; /* 0 = does not listen */
	bool has_private;
	struct addr private_addr; /* port = listen_port when not given */
	unsigned char pk[LOGIN_PK_LEN];
	bool has_pk;
};

/* Parses a POST /v1/login body. need_peer: login (listen_port, private_addr,
 * public_key allowed) vs register (user and password only). Returns 0, or
 * -EINVAL with an error code (static) and message in msg. Unknown fields
 * are rejected. The password is wiped by the caller (sodium_memzero). */
int login_parse_login(const char *body, size_t len, bool need_peer, struct login_req *ret,
		      const char **ret_code, char *msg, size_t msgsize);

/* {"target":"name"} -> target. Same error contract. */
int login_parse_connect(const char *body, size_t len, char *target, size_t size,
			const char **ret_code, char *msg, size_t msgsize);

/* {"outcome":"success"|"failure"[,"detail":"..."]} -> 1 success, 0 failure. */
int login_parse_result(const char *body, size_t len, int *ret_success, const char **ret_code,
		       char *msg, size_t msgsize);

/* "Bearer user.secret" (the header value) -> user, and the hex SHA-256 of
 * the secret (what Redis keeps). Returns 0 or -EINVAL. */
int login_parse_token(const char *header, char *user, size_t usize, char th[LOGIN_TH_HEX]);

/* Formats a session token from user and secret; returns 0 or -ENOBUFS;
 * th gets the hex hash kept in Redis. */
int login_token_make(const char *user, const unsigned char secret[LOGIN_SECRET_LEN], char *out,
		     size_t size, char th[LOGIN_TH_HEX]);

/* A connect id: 32 lowercase hex digits. */
bool login_cid_ok(const char *s);

/* ---------------------------------------------------------------- the daemon */

struct login_metrics {
	struct met *logins; /* {result} */
	struct met *probes; /* {outcome} */
	struct met_child *probes_inflight;
	struct met *connects; /* {mode} */
	struct met_child *relay_fallbacks;
	struct met *results; /* {mode,outcome} */
	struct met_child *kra, *kra_total;
	struct met *online; /* {nat} */
	struct met_child *heartbeats, *waiters, *pushes, *hash_queue;
	struct met_child *acct_dropped, *acct_written, *relay_acct;
	struct met_child *registrations;
	struct svc_metrics std;
};

/* Settings read per request; replaced whole on SIGHUP (refcounted). */
struct login_settings {
	atomic_int refs;
	bool registration_open;
	int heartbeat_s, jitter_pct, probe_timeout_ms, max_probes;
	int ip_per_min, user_fail_per_min, wait_max_s;
	long long relay_ttl_s;
	struct tok_key relay_key;
	bool has_relay_key;
	int relay_candidates;
};

struct login_work;
struct login_waiters;
struct login_acct;

struct login_env {
	struct cfg *cfg0;
	const char *cfg_path;
	pthread_mutex_t set_lock;
	struct login_settings *set;
	struct rds *rds;      /* blocking: admin, accounting, subscriber set-up */
	struct evl *loop;     /* async Redis, probes, long-poll waiters */
	struct rds_async *ra; /* the hot path */
	struct rds_opts ro;
	struct pg_pool *pg;
	struct http_server *api, *admin;
	struct met_registry *reg;
	struct http_metrics http_metrics;
	struct login_metrics m;
	long long started_ms;
	struct login_work *work;
	struct login_waiters *waiters;
	struct login_acct *acct;
	char instance[64];
	/* argon2id parameters and the hash unknown users are checked against */
	unsigned long long pw_ops;
	size_t pw_mem;
	char dummy_hash[128];
	atomic_int probes_inflight;
	atomic_bool stopping;
	/* logins per second over 10 s; K_ra over a 10-minute window */
	atomic_ullong logins_ok;
	unsigned long long login_ring[11];
	unsigned ring_pos;
	_Atomic double logins_per_s;
	pthread_mutex_t kra_lock;
	unsigned long long kra_total[10], kra_relay[10]; /* per minute */
	long long kra_minute;
	unsigned long long kra_all_total, kra_all_relay;
};

struct login_settings *login_settings_get(struct login_env *env);
void login_settings_put(struct login_settings *s);
/* Swaps in s (the env takes the caller's reference) and drops the old. */
void login_settings_publish(struct login_env *env, struct login_settings *s);
/* Counts one finished brokering decision for K_ra. */
void login_kra_count(struct login_env *env, bool relayed, bool new_connect);
double login_kra_window(struct login_env *env);

/* login_work.c: argon2 and account lookups on worker threads. jobs run fn
 * on a worker, then done on the loop thread. Returns 0 or -EBUSY (queue
 * full) / -ENOMEM; on error neither runs. */
struct login_work *login_work_new(struct login_env *env, int threads, int queue_max);
void login_work_free(struct login_work *w);
int login_work_submit(struct login_work *w, void (*fn)(void *arg), void (*done)(void *arg),
		      void *arg);
int login_work_queued(struct login_work *w);

/* login_wait.c: long-poll waiters on the loop thread and the pub/sub
 * listener that wakes them from any instance. */
struct login_waiters *login_waiters_new(struct login_env *env);
/* Answers every waiter (empty requests) and stops the listener. Not on the
 * loop thread. */
void login_waiters_close(struct login_waiters *w);
void login_waiters_free(struct login_waiters *w);
/* Any thread: something was pushed for user (wakes local waiters). */
void login_waiters_notify(struct login_env *env, const char *user);
/* The current notification sequence number (any thread). */
unsigned long long login_waiters_seq(struct login_env *env);
/* Loop thread: parks req until a push for user or wait_s passes. seq0 =
 * login_waiters_seq() read before the Redis poll that found nothing. th
 * is the session's token hash (the re-poll checks it). */
void login_waiters_park(struct login_env *env, struct http_req *req, const char *user,
			const char *th, int wait_s, unsigned long long seq0, int hb_s);
size_t login_waiters_count(struct login_env *env);

/* login_api.c: the heartbeat poll shared with the waiters. Submits the
 * heartbeat script for (user, th); cb gets the reply (see login_api.c). */
int login_hb_submit(struct login_env *env, const char *user, const char *th,
		    void (*cb)(redisReply *rep, int err, void *arg), void *arg);
/* Renders {"ok":true,"heartbeat_s":N,"requests":[...]} from a poll reply
 * and answers req (401 for a dead or replaced session). Loop thread. */
void login_hb_answer(struct login_env *env, struct http_req *req, redisReply *rep, int err,
		     int hb_s);
/* Whether a heartbeat reply carries pending requests. */
bool login_hb_has_requests(const redisReply *rep);

/* login_connect.c */
void login_handle_connect(struct http_req *req, void *arg);
void login_handle_result(struct http_req *req, void *arg);

/* login_acct.c: accounting to PostgreSQL in batches, off the request path. */
enum login_acct_kind {
	LOGIN_ACCT_SESSION_START,
	LOGIN_ACCT_SESSION_END,
	LOGIN_ACCT_CONN_NEW,
	LOGIN_ACCT_CONN_MODE,
	LOGIN_ACCT_CONN_RESULT,
};
struct login_acct_rec {
	enum login_acct_kind kind;
	long long at_ms;        /* wall clock */
	char id[LOGIN_CID_HEX]; /* session id or connect id */
	char user[LOGIN_USER_MAX + 1];
	char peer[LOGIN_USER_MAX + 1];
	char a[ADDR_STR_MAX], b[ADDR_STR_MAX];
	char what[16]; /* nat, mode, end reason or outcome */
};
struct login_acct *login_acct_start(struct login_env *env);
void login_acct_stop(struct login_acct *a); /* flushes what is queued */
/* Any thread; never blocks on PostgreSQL. Dropped (and counted) when full. */
void login_acct_push(struct login_env *env, const struct login_acct_rec *r);

/* login_api.c and login_admin.c route tables */
extern const struct http_route login_api_routes[];
extern const size_t login_api_nroutes;
extern const struct http_route login_admin_routes[];
extern const size_t login_admin_nroutes;

/* Helpers shared by the handlers (login_api.c). */
void login_reply_text(struct http_req *req, unsigned status, char *text, size_t len);
void login_key(struct login_env *env, char *buf, size_t size, const char *kind, const char *id);
/* Pushes a request for user: RPUSH + LTRIM + PEXPIRE + PUBLISH on the async
 * connection, then wakes local waiters. Fire and forget; loop thread or
 * any thread. */
int login_push(struct login_env *env, const char *user, const char *json, long long ttl_ms);
long long login_ttl_ms(const struct login_settings *s);
/* EVAL script with keys and args on the async connection (rds_async_argv
 * contract). */
int login_eval(struct login_env *env, rds_async_cb cb, void *arg, const struct rds_script *script,
	       int nkeys, const char *const *keys, int nargs, const char *const *args);
/* Wall-clock milliseconds (accounting timestamps). */
long long login_wall_ms(void);

/* login_conf.c */
extern const struct cfg_key login_cfg_table[];
extern const size_t login_cfg_n;
int login_validate(const struct cfg *c, char *err, size_t errsize);
struct login_settings *login_settings_new(const struct cfg *c, char *err, size_t errsize);

#endif
