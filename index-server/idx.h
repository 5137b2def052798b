/* SPDX-License-Identifier: MIT */
/* index-server: private declarations shared by its files. */
#ifndef P2PCDN_IDX_H
#define P2PCDN_IDX_H

#include <jansson.h>
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
#include "peerid.h"
#include "rds.h"
#include "rds_async.h"
#include "svc.h"
#include "tok.h"

#define IDX_CHANNEL_MAX   128 /* bytes of a channel name */
#define IDX_CACHES_MAX    64  /* caches of one domain kept in the registry snapshot */
#define IDX_CACHE_ID_MAX  64
#define IDX_URL_MAX       256
#define IDX_LEVELS        5 /* proximity levels: country, nettype, region, city, area */
#define IDX_VIEW_HARD_MAX 256
#define IDX_INFO_MAX      96 /* "listen_addr bandwidth role" stored per peer */

/* ---------------------------------------------------------- pure logic (idx_logic.c) */

enum idx_role { IDX_ROLE_VIEWER = 0, IDX_ROLE_PUBLISHER = 1 };

/* Which body fields an endpoint takes (idx_parse_body). */
enum {
	IDX_F_PEER = 1 << 0,
	IDX_F_CHANNEL = 1 << 1,
	IDX_F_LISTEN = 1 << 2,
	IDX_F_BANDWIDTH = 1 << 3,
	IDX_F_ROLE = 1 << 4,
};
#define IDX_F_JOIN (IDX_F_PEER | IDX_F_CHANNEL | IDX_F_LISTEN | IDX_F_BANDWIDTH | IDX_F_ROLE)
#define IDX_F_PAIR (IDX_F_PEER | IDX_F_CHANNEL)

/* A validated request body. */
struct idx_req {
	uint64_t pid;
	char pid_hex[PEERID_HEX_LEN + 1]; /* lowercase */
	char channel[IDX_CHANNEL_MAX + 1];
	char listen_addr[ADDR_STR_MAX]; /* normalised "IP:PORT" / "[v6]:PORT" */
	long long bandwidth_kbps;
	int role;
};

/* Checks a JSON object against the fields of `which` (required: peer_id,
 * channel, and listen_addr when IDX_F_LISTEN; optional: bandwidth_kbps,
 * role). Unknown members are refused. Returns 0 with *ret filled, or
 * -EINVAL with an error code ("bad_request", "unknown_field") in *ret_code
 * and a message in err. Any thread; no allocation. */
int idx_parse_body(json_t *body, unsigned which, struct idx_req *ret, const char **ret_code,
		   char *err, size_t errsize);

/* 1..128 bytes of [A-Za-z0-9._-]. */
bool idx_channel_ok(const char *s, size_t len);

/* "viewer", "publisher". Static. */
const char *idx_role_name(int role);

/* Seed 001 §3.1.2, formula 1: ViewNum = (c + 1) · ln N, rounded up, then
 * clamped to [vmin, vmax]; N <= 1 gives vmin. The Lua side (idx_script)
 * computes the same number. */
unsigned idx_view_num(long long n, unsigned c, unsigned vmin, unsigned vmax);

/* The proximity classes of pid as lexicographic ranges of 14-hex PeerIDs:
 * lo[k-1]..hi[k-1] (inclusive) hold every PeerID that shares pid's first k
 * fields (country, nettype, region, city, area), k = 1..kmax. kmax is the
 * number of leading non-zero fields of pid (an unknown field never
 * matches: peerid_proximity). Returns kmax (0..5). */
int idx_prox_ranges(uint64_t pid, char lo[IDX_LEVELS][PEERID_HEX_LEN + 1],
		    char hi[IDX_LEVELS][PEERID_HEX_LEN + 1]);

/* One candidate of a member list. */
struct idx_member {
	uint64_t pid;
	int prox;     /* filled by idx_order */
	uint32_t rnd; /* tie-breaker, filled by idx_order */
	const char *info;
	size_t info_len;
};

/* Orders m[0..n) closest first (peerid_proximity to self, descending) and
 * randomly among equals, drawing tie-breakers from rng(arg). Entries equal
 * to self are moved to the end and not counted. Returns how many entries
 * (from the front) are not self. */
size_t idx_order(uint64_t self, struct idx_member *m, size_t n, uint32_t (*rng)(void *arg),
		 void *arg);

/* Splits a stored info string "ADDR BW ROLE" into its parts; 0 or -EINVAL. */
int idx_info_split(const char *info, size_t len, char *addr, size_t addrsize, long long *ret_bw,
		   int *ret_role);

/* The Lua script that runs every swarm operation (docs/index-server.md). */
extern const char idx_script[];

/* ---------------------------------------------------------------- the daemon */

/* Reloadable settings, copied by value into each request. */
struct idx_params {
	unsigned view_c, view_min, view_max;
	int heartbeat_s, missed;
	int trim_batch;
	char route_url[IDX_URL_MAX];
	int route_timeout_ms, pull_timeout_ms;
	int pull_lock_ms, pull_hold_ms, negative_ms;
	int publish_ttl_s, pull_ttl_s;
	struct tok_key key;
};

/* One cache of this domain, from the registry (cache:{ID}, caches:{D}). */
struct idx_cache {
	char id[IDX_CACHE_ID_MAX + 1];
	char url[IDX_URL_MAX];
	double score; /* load / capacity from caches:{DOMAIN} */
	double load, capacity;
};

struct idx_metrics {
	struct met_child *joins, *heartbeats, *heartbeat_misses, *leaves, *publishes, *members;
	struct met_child *pulls_started;
	struct met *pull_failures; /* {reason} */
	struct met *join_errors;   /* {reason} */
	struct met_child *view_size;
	struct met_child *channels, *peers, *largest, *caches;
	struct svc_metrics std;
};

struct idx_env {
	struct cfg *cfg0; /* the config at start: fixed keys */
	const char *cfg_path;
	char domain[64];
	struct rds_script script; /* idx_script, run by EVALSHA */
	char instance[17];

	pthread_mutex_t lock; /* params, caches, rates, sweep results */
	struct idx_params params;
	struct idx_cache caches[IDX_CACHES_MAX]; /* sorted by score */
	size_t ncaches;
	long long caches_loaded_ms;

	struct rds *rds;      /* blocking: admin */
	struct evl *loop;     /* runs ra, the registry refresh, the sweeper, HTTP client */
	struct rds_async *ra; /* pipelined: the hot paths */
	struct http_server *api, *admin;
	struct met_registry *reg;
	struct http_metrics http_metrics;
	struct idx_metrics m;
	long long started_ms;
	atomic_bool stopping;

	/* registry refresh and sweeper (loop thread) */
	bool refresh_busy, sweep_busy;
	long long sweep_cursor;
	long long sweep_peers, sweep_largest, sweep_channels;
	long long last_peers, last_largest, last_channels;

	/* per-second rates over the last 10 s, sampled by the main loop */
	atomic_ullong joins, heartbeats;
	unsigned long long ring_j[11], ring_h[11];
	unsigned ring_pos;
	double joins_per_s, heartbeats_per_s;
};

/* A copy of the current params. Any thread. */
void idx_params_get(struct idx_env *env, struct idx_params *ret);
/* Builds params from a config; 0 or -EINVAL with a message. */
int idx_params_from_cfg(const struct cfg *c, struct idx_params *ret, char *err, size_t errsize);

/* Key names (prefix included) into buf. */
void idx_key_swarm(const struct idx_env *env, const char *ch, const char *suffix, char *buf,
		   size_t size);

/* idx_cache.c: the domain's cache registry snapshot and the pull path. */
/* Copies the least loaded live cache not in skip[0..nskip) into ret; 0 or -ENOENT. */
int idx_caches_pick(struct idx_env *env, const char *const *skip, size_t nskip,
		    struct idx_cache *ret);
/* Copies the cache with this id if it is a live cache of this domain; 0 or -ENOENT. */
int idx_caches_find(struct idx_env *env, const char *id, struct idx_cache *ret);
/* Loads the snapshot once, blocking (start-up). */
void idx_caches_load_sync(struct idx_env *env);
/* Loop timer: refresh of the snapshot and the swarm sweeper. */
void idx_background_start(struct idx_env *env);

/* idx_api.c */
extern const struct http_route idx_api_routes[];
extern const size_t idx_api_nroutes;
extern const struct http_route idx_admin_routes[];
extern const size_t idx_admin_nroutes;

/* Runs the swarm script on the async connection (EVALSHA, falling back to
 * EVAL after NOSCRIPT). argv[0..argc) are the script's ARGV; keys are the
 * swarm keys of ch. cb gets the reply like rds_async_argv. Any thread.
 * Returns 0 or a negative errno (cb not called). */
int idx_script_run(struct idx_env *env, const char *ch, int argc, const char *const *argv,
		   rds_async_cb cb, void *cbarg);

/* idx_conf.c */
extern const struct cfg_key idx_cfg_table[];
extern const size_t idx_cfg_n;
int idx_validate(const struct cfg *c, char *err, size_t errsize);

#endif
