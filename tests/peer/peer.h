/* SPDX-License-Identifier: MIT */
/* p2pcdn-peer: the reference peer and load generator (docs/peer.md). */
#ifndef P2PCDN_PEER_H
#define P2PCDN_PEER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bmap.h"
#include "evl.h"
#include "partner.h"
#include "schedule.h"

#define PC_URL_MAX   256
#define PC_USER_MAX  40
#define PC_TOKEN_MAX 512
#define PC_MEMBERS   128 /* member list hard cap */
#define PC_LINKS     (PARTNER_MAX + 16)
#define PC_CACHES    4
#define PC_WINDOW    64 /* a peer's own buffer window, chunks */
#define PC_BACK      16 /* chunks kept behind the playback position */
#define PC_RPENDING  32 /* requests in flight over one relay link */

/* ---------------------------------------------------------------- options */

enum pc_mode { PC_PUBLISH, PC_WATCH, PC_LOAD };

struct pc_opts {
	enum pc_mode mode;
	char route[PC_URL_MAX], login[PC_URL_MAX], tracker[PC_URL_MAX];
	char channel[129];
	char regions[16][64]; /* X-Forwarded-For addresses sent to the route-server */
	int nregions;
	char xff[64]; /* watch/publish: the one region address */
	int peers;    /* load */
	double duration_s;
	double inner_share; /* load: share of inner peers */
	int lans;           /* load: private networks per region */
	bool inner;         /* watch: behave as an inner peer */
	char lan_ip[64];    /* watch: the LAN's public address (login XFF) */
	char user[PC_USER_MAX], password[64];
	int chunk_ms, chunk_bytes; /* publish */
	long long bw_kbps;         /* a viewer's upload bandwidth (Limit, formula 2) */
	long long rate_kbps;       /* S, the stream's rate (formula 2) */
	double p_down;             /* formula 3: weight of downloads */
	double k_replace;          /* replacement share, 0 < k < 1/2 */
	int replace_s;
	int round_ms;       /* scheduling round */
	int map_ms;         /* buffer-map refresh per source */
	int start_back;     /* playback starts this many chunks behind the head */
	int startup_chunks; /* contiguous chunks needed before playback starts */
	int ramp_ms;        /* load: peers start spread over this */
	int sessions;       /* load: extra random sessions (seed 000 §5 LPEclient) */
	double leave_s;     /* viewers stop watching this long before the end */
	bool json;
	bool verbose;
	char cache_status[8][PC_URL_MAX]; /* admin /status URLs of caches, for the summary */
	int ncache_status;
	uint64_t seed;
};

/* ---------------------------------------------------------------- stats */

#define PC_MODES 4 /* direct, reverse, lan, relay */

struct pc_lat {
	double *v;
	size_t n, cap;
};
void pc_lat_add(struct pc_lat *l, double ms);
double pc_lat_pct(struct pc_lat *l, double pct);

struct pc_stats {
	long long t0_ms, logins_first_ms, logins_last_ms;
	unsigned long long routes_ok, routes_failed;
	unsigned long long registers, logins_ok, logins_failed, nat_outer, nat_inner;
	unsigned long long connects, connect_errors, mode[PC_MODES], mode_ok[PC_MODES],
		mode_fail[PC_MODES];
	unsigned long long lan_fallbacks, lan_sealed_ok, lan_sealed_bad;
	/* connects by the pair's kind (seed 000 §4.1): outer-outer, outer->inner,
	 * inner->outer, inner-inner one LAN, inner-inner two LANs, unknown */
	unsigned long long pair[6];
	unsigned long long sessions_done;
	unsigned long long joins_ok, joins_failed;
	unsigned long long chunks_peer, chunks_cache, bytes_peer, bytes_cache, chunks_corrupt;
	unsigned long long bytes_in_domain, bytes_cross_domain;
	unsigned long long chunk_errors, relay_frames;
	unsigned long long played, missed, playing_peers;
	unsigned long long heartbeats, heartbeats_failed, pushes;
	unsigned long long index_heartbeats, replaced, refused_limit;
	unsigned long long announces_ok, announces_failed;
	unsigned long long published, publish_errors;
	struct pc_lat login_ms, join_ms, startup_ms;
};

/* ---------------------------------------------------------------- peers */

struct pc_peer;
struct pc_link;

/* A kept-alive HTTP connection to one source (api.c): map and chunk GETs
 * of one peer to one cache or partner, queued on it in order. */
struct pc_kreq;
struct pc_kconn {
	struct evhttp_connection *conn;
	char host[64], hosthdr[80];
	int port;
	struct pc_kreq *pending; /* in flight or queued, for the teardown */
};

/* A chunk source for the scheduler: a cache, or a partner link. */
struct pc_src {
	struct pc_kconn kc;
	struct bmap map;
	bool have_map, map_busy;
	long long map_at;
	unsigned issued, completed, inflight; /* formula 5, this and last round */
	unsigned last_issued, last_completed;
};

struct pc_cache {
	char id[65], url[PC_URL_MAX];
	struct pc_src src;
};

enum pc_lstate { PC_L_CONNECTING, PC_L_UP, PC_L_DEAD };
enum pc_lmode { PC_DIRECT = 0, PC_REVERSE, PC_LAN, PC_RELAY };

struct pc_rreq; /* a request in flight over a relay link */

struct pc_link {
	struct pc_peer *p;
	uint64_t rpid;
	char ruser[PC_USER_MAX];
	char cid[33];
	enum pc_lmode mode;
	enum pc_lstate state;
	bool initiator, session_only, reported, dying;
	int pair; /* index into pc_stats.pair */
	long long deadline_ms, since_ms;
	int tries;
	/* transport for requests from p to the remote */
	bool can_fetch;
	char base[80]; /* http://ip:port (direct, lan, reverse) */
	bool relay;
	char relay_url[PC_URL_MAX];
	char relay_tok[PC_TOKEN_MAX];
	uint64_t send_seq, recv_ack;
	bool polling, sending;
	struct pc_frame *outq, **outq_tail;
	uint32_t next_id;
	struct pc_rreq *rreq[PC_RPENDING];
	/* lan check */
	char sealed[200];
	/* partner scoring (formula 3) */
	unsigned long long up, down;
	struct pc_src src;
};

struct pc_member {
	uint64_t pid;
	char addr[64];
	long long seen_ms, refused_until;
};

enum pc_pstate {
	PC_P_IDLE,
	PC_P_ROUTE,
	PC_P_REGISTER,
	PC_P_LOGIN,
	PC_P_JOIN,
	PC_P_RUN,
	PC_P_DONE,
	PC_P_FAILED
};

struct pc_peer {
	int idx;
	enum pc_pstate state;
	bool inner, publisher;
	int region;
	char region_ip[64], lan_ip[64];
	char user[PC_USER_MAX], password[64];
	uint64_t pid;
	char pid_hex[15], domain[64], index_url[PC_URL_MAX];
	unsigned short port;
	struct evhttp *http;
	unsigned char pk[32], sk[32];
	char pk64[64];
	char token[PC_TOKEN_MAX];
	bool outer;
	int hb_ms, ihb_ms; /* login and index heartbeat intervals */
	bool hb_busy;
	long long hb_next, ihb_next, start_ms, stop_ms, t_route_ms, t_joined_ms;
	long long n; /* domain swarm size */
	int retries;
	long long retry_at;
	struct event *tick;
	/* members and partners */
	struct pc_member members[PC_MEMBERS];
	size_t nmembers;
	struct pc_link *links[PC_LINKS];
	size_t nlinks;
	long long next_maint_ms, next_replace_ms, next_round_ms, next_gossip_ms;
	unsigned limit;
	/* caches of the join answer */
	struct pc_cache caches[PC_CACHES];
	size_t ncaches;
	/* buffer */
	int chunk_ms;
	bool have_play, playing;
	uint32_t play;
	long long play_next_ms, play_start_ms;
	struct bmap have, inflight;
	uint64_t rng;
	/* publisher */
	char pub_url[PC_URL_MAX], pub_token[PC_TOKEN_MAX];
	uint32_t pub_seq;
	int pub_busy; /* uploads in flight */
	/* tracker */
	bool announced;
	unsigned long long up_bytes, down_bytes;
};

/* ---------------------------------------------------------------- globals */

struct pc_ctx {
	struct pc_opts o;
	struct evl *l;
	struct event_base *base;
	struct pc_stats st;
	struct pc_peer **peers;
	size_t npeers;
	long long end_ms;
	bool stopping;
	int sessions_left;
	long long next_session_ms;
};
extern struct pc_ctx pc;

long long pc_now_ms(void);
void pc_log(const struct pc_peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------- api.c
 * Everything that knows a daemon's HTTP API: URLs, bodies, answers. */

typedef void (*pc_http_cb)(int status, const char *body, size_t len, void *arg);
/* An HTTP request on the loop; cb always runs once (status 0 = transport
 * error). xff and bearer may be NULL. */
void pc_http(const char *method, const char *url, const char *body, size_t len, const char *xff,
	     const char *bearer, const char *ctype, int timeout_ms, pc_http_cb cb, void *arg);

/* A GET of path on base (http://host:port) over the kept-alive connection
 * kc; cb always runs once (status 0 = transport error). */
void pc_kget(struct pc_kconn *kc, const char *base, const char *path, pc_http_cb cb, void *arg);
/* Fails what is pending (callbacks run) and closes the connection. Never
 * from inside one of its own callbacks. */
void pc_kclose(struct pc_kconn *kc);

/* route-server */
void api_route(struct pc_peer *p, pc_http_cb cb);
int api_route_parse(struct pc_peer *p, const char *body, size_t len);
/* login-server */
void api_register(struct pc_peer *p, pc_http_cb cb);
void api_login(struct pc_peer *p, pc_http_cb cb);
int api_login_parse(struct pc_peer *p, const char *body, size_t len);
void api_heartbeat(struct pc_peer *p, int wait_s, pc_http_cb cb);
/* Parses a heartbeat answer: calls on_request for each pending request.
 * Returns the next interval in ms or -1. */
int api_heartbeat_parse(const char *body, size_t len, void (*on_request)(json_t *req, void *arg),
			void *arg);
void api_connect(struct pc_peer *p, const char *target, pc_http_cb cb, void *arg);
void api_result(struct pc_peer *p, const char *cid, bool ok, const char *detail, pc_http_cb cb,
		void *arg);
/* index-server */
void api_join(struct pc_peer *p, pc_http_cb cb);
int api_join_parse(struct pc_peer *p, const char *body, size_t len);
void api_index_heartbeat(struct pc_peer *p, pc_http_cb cb);
void api_leave(struct pc_peer *p);
void api_publish(struct pc_peer *p, pc_http_cb cb);
int api_publish_parse(struct pc_peer *p, const char *body, size_t len);
/* cache-server (and peers: the same chunk protocol) */
void api_path_map(const char *ch, char *out, size_t size);
void api_path_chunk(const char *ch, uint32_t seq, const char *from_pid, char *out, size_t size);
/* Parses a map answer into m; chunk_ms (if non-NULL) from it. 0 or -1. */
int api_map_parse(const char *body, size_t len, struct bmap *m, int64_t *head, int *chunk_ms);
/* Renders a map answer (caller frees). */
char *api_map_render(const char *ch, const struct bmap *m, int64_t head, int chunk_ms, size_t *len);
void api_put_chunk(struct pc_peer *p, uint32_t seq, const char *data, size_t len, pc_http_cb cb);
/* relay-server (mailbox) */
void api_relay_send(struct pc_link *k, uint64_t seq, const void *data, size_t len, pc_http_cb cb);
void api_relay_fetch(struct pc_link *k, int wait_s, pc_http_cb cb);
/* Calls on_msg(seq, data, len) for each message; returns the count or -1. */
int api_relay_parse(const char *body, size_t len,
		    void (*on_msg)(uint64_t seq, const unsigned char *d, size_t n, void *arg),
		    void *arg);
void api_relay_close(struct pc_link *k);
/* tracker */
void api_announce(struct pc_peer *p, const char *event, bool seeder, pc_http_cb cb);

/* ---------------------------------------------------------------- node.c */

void pc_peer_start(struct pc_peer *p);
void pc_peer_stop(struct pc_peer *p);
struct pc_peer *pc_peer_new(int idx);
void pc_peer_free(struct pc_peer *p);
void pc_session_tick(void);
void pc_peer_kill_link(struct pc_link *k);
void pc_peer_close_caches(struct pc_peer *p);
/* The synthetic content of a chunk (same bytes everywhere). */
void pc_chunk_fill(const char *ch, uint32_t seq, char *buf, size_t len);
struct pc_peer *pc_peer_by_pid(uint64_t pid);

/* ---------------------------------------------------------------- main.c */

void pc_print_summary(void);

#endif
