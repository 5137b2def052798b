/* SPDX-License-Identifier: MIT */
/* relay-server: private declarations shared by its files. */
#ifndef P2PCDN_RELAY_H
#define P2PCDN_RELAY_H

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
#include "rds.h"
#include "rds_async.h"
#include "svc.h"
#include "tok.h"

#define RELAY_CID_LEN   32             /* connect id: 32 lowercase hex digits */
#define RELAY_USER_MAX  128            /* account names in a token, bytes */
#define RELAY_ID_MAX    64             /* [relay] id */
#define RELAY_PROTOCOL  "p2pcdn-relay" /* Upgrade: token of the tunnel mode */
#define RELAY_WAIT_TICK 100            /* ms between sweeps of the loop thread */

/* ---- relay tokens (relay_token.c), the contract with the login-server ---- */

/* The payload of a relay token (TOK_KIND_RELAY), compact JSON:
 * {"cid":"<32 hex>","side":"a"|"b","user":"<this side>","peer":"<other side>"}. */
struct relay_token {
	char cid[RELAY_CID_LEN + 1];
	int side; /* 0 = "a" (initiator of POST /v1/connect), 1 = "b" (target) */
	char user[RELAY_USER_MAX + 1];
	char peer[RELAY_USER_MAX + 1];
	uint64_t expiry; /* unix seconds */
};

/* Why a token was refused; also the refusal reason in metrics. */
enum relay_tok_err {
	RELAY_TOK_OK = 0,
	RELAY_TOK_MISSING,       /* 401 token_missing */
	RELAY_TOK_INVALID,       /* 401 token_invalid: malformed, bad MAC, other kind */
	RELAY_TOK_EXPIRED,       /* 401 token_expired */
	RELAY_TOK_BAD_PAYLOAD,   /* 401 token_invalid: MAC fine, payload not the contract */
	RELAY_TOK_WRONG_SESSION, /* 403 token_wrong_session: cid differs from the URL */
};

/* Parses a token payload (len bytes, not NUL-terminated) into ret: an
 * object with exactly the four string members, cid 32 lowercase hex,
 * side "a" or "b", user and peer 1..128 printable bytes, user != peer.
 * Returns 0, or -EINVAL (ret untouched). Any thread; no allocation kept. */
int relay_token_parse(const char *payload, size_t len, struct relay_token *ret);

/* Checks an "Authorization: Bearer TOKEN" header value (NULL = missing)
 * against key at time now and the connect id of the URL (NULL = any).
 * Returns RELAY_TOK_OK with ret filled, or the reason. Any thread. */
enum relay_tok_err relay_token_check(const struct tok_key *key, const char *authorization,
				     uint64_t now, const char *cid, struct relay_token *ret);

/* True for 32 lowercase hex digits. */
bool relay_cid_valid(const char *s);

/* ---- request parameters (relay_token.c) ---- */

/* A decimal unsigned integer of 1..19 digits (no sign, no spaces, no
 * leading "+"), or NULL/"" giving def. Returns 0 with *ret, or -EINVAL. */
int relay_parse_u64(const char *s, uint64_t def, uint64_t max, uint64_t *ret);

/* ---- per-key counters: caps per source address and per account (relay_caps.c) ---- */

/* A small chained hash map from a string key to a positive count; a key
 * whose count drops to 0 is removed, so memory follows sessions in flight.
 * Not thread-safe: the caller's lock. */
struct relay_caps;
struct relay_caps *relay_caps_new(void);
void relay_caps_free(struct relay_caps *c); /* NULL-safe */
/* Current count of key (0 when absent). */
unsigned relay_caps_get(const struct relay_caps *c, const char *key);
/* Adds 1 if the count is below max (max 0 = no limit). Returns 0, -EDQUOT
 * (at the cap) or -ENOMEM. */
int relay_caps_take(struct relay_caps *c, const char *key, unsigned max);
/* Subtracts 1 (removes the key at 0). A key not present is a no-op. */
void relay_caps_put(struct relay_caps *c, const char *key);
size_t relay_caps_size(const struct relay_caps *c);

/* ---- mailbox queues (relay_mbox.c): pure logic, no locking ---- */

struct relay_msg {
	struct relay_msg *next;
	uint64_t seq;
	size_t len;
	unsigned char data[];
};

/* What one side sent that the other has not acknowledged yet, in order. */
struct relay_mbox {
	struct relay_msg *head, *tail;
	uint64_t in_seq; /* highest seq accepted (the sender numbers from 1) */
	uint64_t acked;  /* highest seq the receiver acknowledged */
	size_t bytes;    /* payload bytes queued */
	size_t count;
};

enum relay_put_result {
	RELAY_PUT_OK = 0,
	RELAY_PUT_DUPLICATE, /* seq <= in_seq: a retry of something already accepted */
	RELAY_PUT_GAP,       /* seq > in_seq + 1: the sender skipped a number */
	RELAY_PUT_FULL,      /* over the queue cap: try again later */
	RELAY_PUT_NOMEM,
};

/* Appends data as message seq when seq == in_seq + 1 and the queue stays
 * within cap bytes. Copies data. */
enum relay_put_result relay_mbox_put(struct relay_mbox *m, uint64_t seq, const void *data,
				     size_t len, size_t cap);
/* The receiver acknowledges everything up to ack (clamped to in_seq):
 * those messages are freed. Returns the bytes freed. */
size_t relay_mbox_ack(struct relay_mbox *m, uint64_t ack);
/* Frees every message. Returns how many there were. */
size_t relay_mbox_clear(struct relay_mbox *m);

/* ---- sessions (relay_sess.c) ---- */

enum relay_mode { RELAY_MODE_NONE = 0, RELAY_MODE_MAILBOX, RELAY_MODE_TUNNEL };

/* Why a session ended: the `reason` of its accounting record. */
enum relay_end {
	RELAY_END_NONE = 0,
	RELAY_END_CLOSED,      /* a side closed it (DELETE, or both tunnel ends) */
	RELAY_END_IDLE,        /* nothing moved for idle_timeout_s */
	RELAY_END_QUOTA_BYTES, /* max_session_bytes reached */
	RELAY_END_QUOTA_TIME,  /* max_session_s reached */
	RELAY_END_SHUTDOWN,    /* the relay stopped */
	RELAY_END_ERROR,       /* a tunnel socket failed */
	RELAY_END__N,
};
const char *relay_end_name(enum relay_end e);

struct relay_tunnel; /* relay_tunnel.c, loop thread only */
struct relay_waiter; /* a deferred long-poll GET */

struct relay_side {
	bool attached; /* a request carried this side's token */
	char user[RELAY_USER_MAX + 1];
	char peer[RELAY_USER_MAX + 1]; /* the other side's name per this side's token */
	char addr[ADDR_STR_MAX];       /* client address counted against max_per_source */
	struct relay_mbox out;         /* mailbox: what this side sent to the other */
	struct relay_waiter *waiter;
	/* tunnel: 0 none, 1 reserved (101 on its way), 2 connected */
	int tstate;
};

struct relay_sess {
	struct relay_sess *hnext;         /* hash chain */
	struct relay_sess *tprev, *tnext; /* tombstone FIFO, once closed */
	char cid[RELAY_CID_LEN + 1];
	enum relay_mode mode;
	enum relay_end end;  /* NONE while active */
	uint64_t tok_expiry; /* latest token expiry seen: tombstone lifetime */
	long long started_wall_ms, started_ms;
	_Atomic long long last_ms; /* last activity, monotonic */
	_Atomic uint64_t bytes[2]; /* [0] a->b, [1] b->a */
	struct relay_side side[2];
	struct relay_tunnel *tun;
};

/* ---- the daemon ---- */

/* The [relay] settings, read once at start (limits are reloadable: they
 * are copied into env->lim under env->lock on SIGHUP). */
struct relay_limits {
	unsigned max_sessions;
	unsigned max_per_source;
	unsigned max_per_account;
	size_t max_queued_bytes;
	size_t max_message;
	long long idle_timeout_ms;
	long long max_session_ms;
	uint64_t max_session_bytes;
	long long poll_wait_max_ms;
	long long poll_wait_default_ms;
	size_t max_response_bytes;
};

/* Refusal reasons: one counter each, one error code each. */
enum relay_refusal {
	RELAY_REF_TOKEN_MISSING,
	RELAY_REF_TOKEN_INVALID,
	RELAY_REF_TOKEN_EXPIRED,
	RELAY_REF_TOKEN_WRONG_SESSION,
	RELAY_REF_TOKEN_MISMATCH,
	RELAY_REF_RELAY_FULL,
	RELAY_REF_OVER_SOURCE_CAP,
	RELAY_REF_OVER_ACCOUNT_CAP,
	RELAY_REF_MESSAGE_TOO_LARGE,
	RELAY_REF_QUEUE_FULL,
	RELAY_REF_SEQ_GAP,
	RELAY_REF_MODE_CONFLICT,
	RELAY_REF_SIDE_IN_USE,
	RELAY_REF_SESSION_CLOSED,
	RELAY_REF_BAD_REQUEST,
	RELAY_REF_UPGRADE_REQUIRED,
	RELAY_REF_SHUTTING_DOWN,
	RELAY_REF_TUNNEL_UNAVAILABLE,
	RELAY_REF__N,
};
extern const char *const relay_refusal_names[RELAY_REF__N];

struct relay_metrics {
	struct met_child *sessions[3];         /* gauge {mode=waiting|mailbox|tunnel} */
	struct met_child *started[3];          /* counter {mode} */
	struct met_child *ended[RELAY_END__N]; /* counter {reason} */
	struct met_child *bytes[3];            /* counter {mode} */
	struct met_child *messages;            /* counter: mailbox messages accepted */
	struct met_child *delivered;           /* counter: mailbox messages handed out */
	struct met_child *queued;              /* gauge: bytes held (mailbox + tunnel) */
	struct met_child *queued_msgs;         /* gauge */
	struct met_child *waiters;             /* gauge: long-polls waiting */
	struct met_child *refusals[RELAY_REF__N];
	struct met_child *drop_unacked; /* drops{reason="session_end"} (messages) */
	struct met_child *drop_acct;    /* drops{reason="acct_overflow"} (records) */
	struct met_child *acct_pending, *acct_written;
	struct met_child *bytes_per_s, *capacity;
	struct met *limit; /* gauge {name} */
	struct svc_metrics std;
};

/* One finished session, waiting to be XADDed to the accounting stream. */
struct relay_acct {
	struct relay_acct *next;
	struct relay_env *env;
	char cid[RELAY_CID_LEN + 1];
	enum relay_mode mode;
	enum relay_end reason;
	uint64_t bytes_ab, bytes_ba;
	long long started_ms, ended_ms; /* unix ms */
};

struct relay_env {
	struct cfg *cfg0;
	const char *cfg_path;
	const char *id;          /* [relay] id */
	const char *public_url;  /* [relay] public_url */
	struct tok_key key;      /* under lock (reloadable) */
	struct relay_limits lim; /* under lock (reloadable) */

	struct http_server *api, *admin;
	struct met_registry *reg;
	struct http_metrics http_metrics;
	struct relay_metrics m;
	long long started_ms;

	struct evl *loop;     /* tunnels, long-poll expiry, registry, accounting */
	struct rds_async *ra; /* registry refresh and accounting */
	struct rds *rds;      /* blocking: /readyz and shutdown */
	struct event *sweep_ev;

	/* Everything below under lock. */
	pthread_mutex_t lock;
	struct relay_sess **table; /* cid -> session (active and tombstones) */
	size_t table_size, nactive, ntomb;
	size_t nmode[3]; /* active sessions by mode (NONE = waiting for a mode) */
	struct relay_sess *tomb_head, *tomb_tail;
	struct relay_caps *per_source, *per_account;
	struct relay_waiter *waiters; /* every deferred long-poll, for expiry */
	size_t nwaiters;
	size_t mbox_bytes, mbox_msgs;
	struct relay_acct *acct_head, *acct_tail;
	size_t acct_n, acct_inflight;
	unsigned long long refusals[RELAY_REF__N];
	unsigned long long ended[RELAY_END__N];
	bool stopping; /* no new sessions */
	bool tls;      /* the API speaks HTTPS itself: no tunnels (docs/relay-server.md) */

	/* loop thread only */
	long long next_registry_ms;
	long long next_scan_ms; /* idle/quota scan of the table, every 500 ms */
	unsigned long long bytes_ring[11];
	unsigned ring_pos;
	long long next_sample_ms;
	_Atomic uint64_t bytes_total;
	_Atomic long long bytes_per_s;
	_Atomic long long tun_queued; /* bytes in tunnel buffers */
	long long registry_ttl_s;
	size_t acct_maxlen, acct_max_pending;
};

/* relay_sess.c */
int relay_sess_init(struct relay_env *env);
void relay_sess_done(struct relay_env *env);
/* Finds the session of tok (creating it when new and limits allow) and
 * attaches the token's side from client address `client`. Locked by the
 * caller. Returns the session, or NULL with *ret_ref set. */
struct relay_sess *relay_sess_attach(struct relay_env *env, const struct relay_token *tok,
				     const char *client, enum relay_refusal *ret_ref,
				     enum relay_end *ret_end);
struct relay_sess *relay_sess_find(struct relay_env *env, const char *cid);
/* Ends an active session: wakes its waiters (collected into *resume for
 * the caller to resume after unlocking), drops its queues, queues its
 * accounting record, keeps a tombstone. Tunnels must be torn down by the
 * caller first (loop thread). Locked by the caller. */
void relay_sess_end(struct relay_env *env, struct relay_sess *s, enum relay_end why,
		    struct relay_waiter **resume);
/* Expires tombstones, idle and over-time sessions, long-polls past their
 * deadline. Loop thread. */
void relay_sess_sweep(struct relay_env *env, long long now_ms);
/* Ends every session with reason shutdown (loop thread). */
void relay_sess_shutdown(struct relay_env *env);
void relay_set_mode(struct relay_env *env, struct relay_sess *s, enum relay_mode mode);
void relay_refuse_count(struct relay_env *env, enum relay_refusal r);

/* relay_api.c: handlers; waiters */
extern const struct http_route relay_api_routes[];
extern const size_t relay_api_nroutes;
extern const struct http_route relay_admin_routes[];
extern const size_t relay_admin_nroutes;
/* Answers a waiter (the session ended or its deadline passed) and links it
 * into *resume; locked by the caller. */
void relay_waiter_answer(struct relay_env *env, struct relay_waiter *w,
			 struct relay_waiter **resume);
/* Resumes a list built by relay_waiter_answer; after unlocking. */
void relay_waiters_resume(struct relay_waiter *list);
void relay_waiters_expire(struct relay_env *env, long long now_ms, struct relay_waiter **resume);

/* relay_tunnel.c (loop thread unless said otherwise) */
/* Upgrade callback (pool thread): hands the socket to the loop. */
void relay_tunnel_upgraded(struct http_upgrade *u, int fd, const char *extra, size_t extra_len,
			   void *arg);
/* Closes the tunnel of s (both sockets) and ends s with why. */
void relay_tunnel_close(struct relay_env *env, struct relay_sess *s, enum relay_end why);
/* The context handed through the upgrade. */
struct relay_tctx {
	struct relay_env *env;
	char cid[RELAY_CID_LEN + 1];
	int side;
};

/* relay_reg.c: Redis registry and accounting stream (loop thread) */
void relay_reg_tick(struct relay_env *env, long long now_ms);
void relay_acct_flush(struct relay_env *env);
/* Queues the record of a finished session (locked by the caller). */
void relay_acct_push(struct relay_env *env, struct relay_acct *a);
/* Shutdown (main thread, loop stopped using ra): removes the registry
 * entries and writes what accounting is still pending, blocking. */
void relay_reg_remove(struct relay_env *env);

/* relay_conf.c */
extern const struct cfg_key relay_cfg_table[];
extern const size_t relay_cfg_n;
int relay_validate(const struct cfg *c, char *err, size_t errsize);
void relay_limits_from(const struct cfg *c, struct relay_limits *ret);

#endif
