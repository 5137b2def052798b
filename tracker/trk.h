/* SPDX-License-Identifier: MIT */
/* tracker: private declarations shared by its files. */
#ifndef P2PCDN_TRK_H
#define P2PCDN_TRK_H

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
#include "svc.h"

#define TRK_HASH_LEN 20

/* ---- swarm store (trk_store.c) ----
 * All torrents in memory, sharded by the first bytes of the info_hash so
 * announces on different torrents take different locks (opentracker's
 * layout). Each torrent keeps its IPv4 and IPv6 peers in two vectors of
 * fixed-size records sorted by (ip, port); a peer is identified by its
 * address and port, never by the peer_id it sends (not stored at all). */
struct trk_store;

struct trk_peer {
	uint8_t ip[16]; /* IPv4 as ::ffff:a.b.c.d (struct addr layout) */
	uint16_t port;  /* host order */
};

enum trk_event { TRK_EV_NONE = 0, TRK_EV_COMPLETED = 1, TRK_EV_STARTED = 2, TRK_EV_STOPPED = 3 };

struct trk_announce {
	uint8_t info_hash[TRK_HASH_LEN];
	struct trk_peer peer;
	bool seeder; /* left == 0 */
	enum trk_event event;
	unsigned numwant; /* already capped by the caller */
	uint32_t now;     /* seconds, trk_store_now() */
};

struct trk_counts {
	uint32_t seeders, leechers, completed;
};

/* Creates a store with 2^shard_bits shards (0..16). max_torrents bounds
 * memory against floods of random info_hashes; max_peers bounds one swarm.
 * NULL on ENOMEM. */
struct trk_store *trk_store_new(unsigned shard_bits, size_t max_torrents, size_t max_peers);
void trk_store_free(struct trk_store *s); /* NULL-safe */

/* Seconds on a monotonic clock, for trk_announce.now and expiry. */
uint32_t trk_store_now(void);

/* Records the announce (STOPPED removes the peer; COMPLETED bumps the
 * completed count once per peer) and picks up to numwant other peers:
 * seeders get leechers first, nobody gets itself, and the choice rotates
 * so repeated announces see different peers. Peers go out in compact form:
 * IPv4 as 6 bytes into out4 (cap4 bytes), IPv6 as 18 bytes into out6; the
 * peer's own family first, the other family's peers only into the other
 * buffer when it is non-NULL. Returns 0 with counts after the announce and
 * *ret_n4 / *ret_n6 peers written, or -ENOSPC (store full: new torrent or
 * new peer refused, nothing recorded) / -ENOMEM. Any thread. */
int trk_store_announce(struct trk_store *s, const struct trk_announce *a, uint8_t *out4,
		       size_t cap4, uint8_t *out6, size_t cap6, size_t *ret_n4, size_t *ret_n6,
		       struct trk_counts *ret);

/* Counts of one torrent: 0, or -ENOENT when the store has no such torrent. */
int trk_store_scrape(struct trk_store *s, const uint8_t info_hash[TRK_HASH_LEN],
		     struct trk_counts *ret);

/* Drops peers not seen since now - timeout, and torrents left with no peer
 * and no completions still to be taken (trk_store_take_completed). Returns
 * peers dropped. Takes each shard's lock in turn, never all at once. */
size_t trk_store_expire(struct trk_store *s, uint32_t now, uint32_t timeout);

/* Calls fn for every torrent, one shard locked at a time; fn must not call
 * back into the store. */
void trk_store_foreach(struct trk_store *s,
		       void (*fn)(const uint8_t info_hash[TRK_HASH_LEN], const struct trk_counts *c,
				  size_t peers4, size_t peers6, void *arg),
		       void *arg);

/* Hands every torrent's completions since the last call to fn (torrents
 * with none are skipped) and zeroes them: the catalog adds exactly these to
 * PostgreSQL, so nothing is counted twice whatever happens to the torrent
 * in between. One shard locked at a time; fn must not call the store. */
void trk_store_take_completed(struct trk_store *s,
			      void (*fn)(const uint8_t info_hash[TRK_HASH_LEN], uint32_t n,
					 void *arg),
			      void *arg);
/* Gives completions back (a flush that failed) if the torrent still
 * exists; otherwise they are lost. */
void trk_store_credit_completed(struct trk_store *s, const uint8_t info_hash[TRK_HASH_LEN],
				uint32_t n);

struct trk_store_stats {
	size_t torrents, peers4, peers6, seeders, leechers;
	size_t bytes; /* heap bytes held by the store (vectors and tables) */
};
void trk_store_stats(struct trk_store *s, struct trk_store_stats *ret);

/* ---- the daemon (main.c, trk_conf.c, trk_http.c, trk_udp.c, trk_catalog.c) ---- */

/* Sorted info_hashes of registered programs, for whitelist mode.
 * Immutable once published; swapped whole. */
struct trk_whitelist {
	uint8_t (*v)[TRK_HASH_LEN];
	size_t n;
};

enum trk_proto { TRK_PROTO_HTTP = 0, TRK_PROTO_UDP = 1 };

struct trk_metrics {
	struct met *announces; /* {proto} */
	struct met *scrapes;   /* {proto} */
	struct met *failures;  /* {proto,reason} */
	struct met_child *torrents, *peers4, *peers6, *seeders, *leechers, *bytes;
	struct met_child *expired;
	struct svc_metrics std;
};

struct trk_env {
	struct cfg *cfg0; /* the config at start: fixed keys */
	const char *cfg_path;
	struct trk_store *store;
	struct pg_pool *pg;
	struct evl *loop; /* UDP socket, timers */
	struct http_server *api, *admin;
	struct met_registry *reg;
	struct http_metrics http_metrics;
	struct trk_metrics m;
	long long started_ms;

	/* settings read on every announce; written only on SIGHUP (atomics) */
	atomic_uint interval_s, min_interval_s, numwant_default, numwant_max, peer_timeout_s;
	atomic_uint full_scrape_min_s, flush_s, whitelist_refresh_s;
	atomic_bool whitelist_mode, allow_ip_param, full_scrape;

	pthread_rwlock_t wl_lock; /* readers search wl under it; a refresh swaps */

	/* the last full scrape rendered (its "files" entries), reused for
	 * full_scrape_min_s */
	pthread_mutex_t fs_lock;
	char *fs_body;
	size_t fs_len;
	uint32_t fs_at;
	struct trk_whitelist *wl;
	pthread_mutex_t lock; /* whitelist swaps, catalog state */

	/* announces per second over the last 10 s, by protocol, for /status;
	 * sampled by the main loop once a second */
	double ring[2][11];
	unsigned ring_pos;
	_Atomic double announces_per_s[2];

	uint8_t udp_secret[32]; /* keys UDP connection ids (BEP 15) */
	void *udp;              /* trk_udp.c state */
	void *catalog;          /* trk_catalog.c state */
};

/* trk_http.c / shared: the whitelist check (true in open mode). Any thread. */
bool trk_allowed(struct trk_env *env, const uint8_t info_hash[TRK_HASH_LEN]);
/* True when the info_hash is a registered program, whatever the mode. */
bool trk_registered(struct trk_env *env, const uint8_t info_hash[TRK_HASH_LEN]);
/* interval_s with up to ±10 % jitter so clients spread out. Any thread. */
unsigned trk_interval(struct trk_env *env);
/* numwant as asked (-1 = not given) capped to the configured bounds. */
unsigned trk_numwant(struct trk_env *env, long long asked);
/* Counts a failure for /metrics. reason: a short snake_case word. */
void trk_count_failure(struct trk_env *env, enum trk_proto proto, const char *reason);

/* trk_udp.c: BEP 15 on `listen` (comma-separated IP:PORT, v4 and/or v6),
 * served on env->loop. Returns 0 or a negative errno with a message. */
int trk_udp_start(struct trk_env *env, const char *listen, char *err, size_t errsize);
/* Stops and frees (not on the loop thread). NULL-safe via env->udp. */
void trk_udp_stop(struct trk_env *env);

/* ---- announce and scrape query strings (trk_query.c) ---- */
#define TRK_SCRAPE_MAX 64 /* info_hashes per HTTP scrape */

struct trk_query {
	bool has_info_hash, has_peer_id, has_left, has_ip;
	uint8_t info_hash[TRK_HASH_LEN];
	uint8_t peer_id[20];
	long port; /* -1 = missing */
	unsigned long long uploaded, downloaded, left;
	enum trk_event event;
	long long numwant; /* -1 = not given */
	bool compact;      /* default true */
	bool no_peer_id;
	char ip[64];
	uint8_t scrape[TRK_SCRAPE_MAX][TRK_HASH_LEN];
	size_t nscrape;
};

/* Parses a raw (still percent-encoded) query string of q[0..len) for
 * /announce (scrape = false) or /scrape (true). Unknown keys are ignored,
 * as BitTorrent clients send many. Returns 0, or -EINVAL with *ret_reason
 * set to a static message fit for a bencoded "failure reason". */
int trk_query_parse(const char *q, size_t len, bool scrape, struct trk_query *ret,
		    const char **ret_reason);

/* ---- config (trk_conf.c) and catalog (trk_catalog.c) ---- */
extern const struct cfg_key trk_cfg_table[];
extern const size_t trk_cfg_n;

/* Starts the catalog thread: periodic count flushes to PostgreSQL and
 * whitelist refreshes. Returns 0 or a negative errno. */
int trk_catalog_start(struct trk_env *env);
void trk_catalog_stop(struct trk_env *env);
/* Re-reads the whitelist now (after an upload or registration). */
void trk_catalog_refresh_soon(struct trk_env *env);
/* Loads the whitelist once, synchronously (start-up). */
int trk_catalog_load_whitelist(struct trk_env *env, char *err, size_t errsize);

/* HTTP routes (trk_http.c: tracker; trk_catalog.c: catalog API). */
extern const struct http_route trk_api_routes[];
extern const size_t trk_api_nroutes;
extern const struct http_route trk_admin_routes[];
extern const size_t trk_admin_nroutes;
void trk_handle_programs_list(struct http_req *r, void *arg);
void trk_handle_program_register(struct http_req *r, void *arg);
void trk_handle_torrent_upload(struct http_req *r, void *arg);
void trk_handle_torrent_get(struct http_req *r, void *arg);
/* The UDP listen socket number i (in `listen` order) is bound to this port,
 * host order: useful when `listen` asked for port 0 (the kernel picks).
 * Returns the port, or -ENOENT when i is past the last socket or UDP is not
 * started. Any thread, between trk_udp_start and trk_udp_stop. */
int trk_udp_port(struct trk_env *env, size_t i);

/* Tests only: moves the clock that dates UDP connection ids by `seconds`
 * (negative allowed), so expiry is tested without sleeping. Any thread. */
void trk_udp_test_skew(long long seconds);

/* ---- UDP packet parsing (trk_udp.c), pure so it can be fuzzed ---- */

#define TRK_UDP_MAX_SCRAPE 74 /* BEP 15: info_hashes per scrape */

enum trk_udp_action {
	TRK_UDP_CONNECT = 0,
	TRK_UDP_ANNOUNCE = 1,
	TRK_UDP_SCRAPE = 2,
	TRK_UDP_ERROR = 3,
};

/* One request as the client sent it; nothing checked against state (the
 * connection id is not verified here). Integers in host order. */
struct trk_udp_req {
	uint8_t connection_id[8]; /* raw bytes, compared as sent */
	uint32_t action;          /* enum trk_udp_action */
	uint32_t transaction_id;  /* echoed in the reply, never interpreted */

	/* announce */
	uint8_t info_hash[TRK_HASH_LEN];
	uint8_t peer_id[20];
	uint64_t downloaded, left, uploaded;
	uint32_t event; /* 0..3 match enum trk_event; others passed through */
	uint8_t ip[4];  /* 0.0.0.0 = use the source address */
	uint32_t key;
	int32_t numwant; /* -1 = default */
	uint16_t port;
	size_t url_len;   /* BEP 41 URLData bytes in all options (may exceed url) */
	uint8_t url[256]; /* their first bytes, concatenated */

	/* scrape: nhashes (1..TRK_UDP_MAX_SCRAPE) hashes pointing into pkt */
	const uint8_t *hashes;
	size_t nhashes;
};

/* Parses one datagram. Returns 0 with *ret filled, or:
 * -ENODATA    shorter than the 16-byte header: drop without reply;
 * -EPROTO     connect (action 0) without the BEP 15 protocol id;
 * -EOPNOTSUPP an action other than connect, announce, scrape;
 * -EBADMSG    announce under 98 bytes, or scrape without a whole hash.
 * On every error but -ENODATA the header fields (connection_id, action,
 * transaction_id) of *ret are still written so the caller can address an
 * error reply; other fields are then unspecified. Announce options (BEP 41)
 * are walked without reading past len; malformed options end the walk and
 * are otherwise ignored. A scrape with more than TRK_UDP_MAX_SCRAPE hashes
 * is cut to that many, as opentracker does. ret->hashes points into pkt.
 * Any thread; no allocation. */
int trk_udp_parse(const uint8_t *pkt, size_t len, struct trk_udp_req *ret);

#endif
