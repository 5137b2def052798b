/* SPDX-License-Identifier: MIT */
/* cache-server: private declarations shared by its files. */
#ifndef P2PCDN_CACHE_H
#define P2PCDN_CACHE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bmap.h"
#include "cfg.h"
#include "evl.h"
#include "http.h"
#include "met.h"
#include "rds.h"
#include "rds_async.h"
#include "schedule.h"
#include "svc.h"
#include "tok.h"

#define CACHE_CH_MAX    128 /* channel name bytes */
#define CACHE_ID_MAX    64  /* cache id bytes */
#define CACHE_URL_MAX   256 /* source URL bytes */
#define CACHE_PULL_SRC  16  /* sources of one pull */
#define CACHE_ETAG_LEN  18  /* "16 hex" incl. quotes */
#define CACHE_VOD_DEPTH 4   /* path segments under /vod/ */

/* True for 1..128 characters of A-Z a-z 0-9 . _ - (the route-server's rule). */
bool cache_channel_ok(const char *ch);

/* ---- chunk store (cache_store.c) ----
 * Channels in a hash table under one read-write lock (write only to add or
 * drop a channel); each channel's window under its own mutex, held for a
 * lookup and a reference count, never across I/O. Chunks are immutable and
 * reference counted, so a reader keeps its chunk while the window slides. */
struct cache_chunk {
	atomic_int refs;
	uint32_t seq;
	uint32_t len;
	char etag[CACHE_ETAG_LEN + 1];
	unsigned char data[];
};

/* Drops a reference; the last one frees. NULL-safe. Any thread. */
void cache_chunk_unref(struct cache_chunk *c);

struct cache_store_opts {
	uint32_t window;    /* chunks per window */
	uint32_t chunk_ms;  /* nominal chunk duration */
	size_t chunk_max;   /* bytes of one chunk */
	size_t memory_max;  /* bytes of all chunks, headers included */
	size_t channel_max; /* bytes of one channel's chunks */
	size_t max_channels;
};

struct cache_store;

struct cache_store *cache_store_new(const struct cache_store_opts *o);
void cache_store_free(struct cache_store *st); /* NULL-safe; frees every chunk */

enum cache_put_from { CACHE_FROM_PUBLISH = 0, CACHE_FROM_PULL = 1 };

/* Stores a copy of data as chunk seq of ch, creating the channel when
 * create is set. A seq past the window's end slides it (expiring what
 * leaves) unless it is more than one window ahead. Memory: the channel's
 * own oldest chunks make room first; past that the chunk is refused.
 * Returns 0, or -EEXIST (duplicate), -ESTALE (before the window: expired),
 * -ERANGE (too far ahead), -E2BIG (over chunk_max, or empty), -ENOSPC
 * (memory cap), -EMFILE (too many channels), -ENOENT (no channel and not
 * create), -ENOMEM. ret_first and ret_head get the window after the call
 * (may be NULL). Any thread. */
int cache_store_put(struct cache_store *st, const char *ch, uint32_t seq, const void *data,
		    size_t len, enum cache_put_from from, long long now_ms, uint32_t *ret_first,
		    int64_t *ret_head);

/* A reference to chunk seq of ch (caller unrefs). Returns 0, or -ENOENT
 * (no such channel), -EAGAIN (inside or past the window, not held: not yet
 * here), -ESTALE (before the window: expired). Marks the channel wanted
 * (the puller keeps going). Any thread, hot path: two short locks. */
int cache_store_get(struct cache_store *st, const char *ch, uint32_t seq, long long now_ms,
		    struct cache_chunk **ret);

/* What GET map answers. */
struct cache_map_view {
	struct bmap map;
	bool started; /* false: no chunk and no window yet */
	int64_t head; /* highest seq held, -1 none */
	bool pulling;
	long long last_publish_ms; /* last chunk from a publisher, -1 never */
};
/* Copies the channel's map. Returns 0 or -ENOENT. Marks it wanted when
 * now_ms >= 0 (the puller's own look passes -1). */
int cache_store_map(struct cache_store *st, const char *ch, long long now_ms,
		    struct cache_map_view *ret);

/* Creates an empty channel for a pull (no window until the first source
 * map places it). Returns 0 (created), 1 (existed), -EMFILE, -ENOMEM. */
int cache_store_ensure(struct cache_store *st, const char *ch, long long now_ms);

/* Moves the channel's window so that seq fits at its end (placing the
 * window first when it has none). 0, -ENOENT, -EINVAL. */
int cache_store_align(struct cache_store *st, const char *ch, uint32_t seq);

/* Sets the channel's pulling flag (shown in maps and /status). */
void cache_store_set_pulling(struct cache_store *st, const char *ch, bool on);

/* Last time a GET (chunk or map) touched the channel, -1 when gone. */
long long cache_store_wanted_ms(struct cache_store *st, const char *ch);

/* Drops channels that received no chunk for idle_ms and are not pulling;
 * calls gone(name, arg) for each (under the store's write lock: gone must
 * not call the store). Returns how many. */
size_t cache_store_expire(struct cache_store *st, long long now_ms, long long idle_ms,
			  void (*gone)(const char *ch, void *arg), void *arg);

/* One channel in a listing. */
struct cache_chan_info {
	char name[CACHE_CH_MAX + 1];
	uint32_t first, size, held;
	int64_t head;
	bool started, pulling;
	size_t bytes;
	unsigned long long chunks_in, chunks_out, bytes_out;
	long long last_put_ms;
};
/* Calls fn for every channel (copied out under its lock; fn runs with the
 * store's read lock held and must not call the store). */
void cache_store_foreach(struct cache_store *st,
			 void (*fn)(const struct cache_chan_info *i, void *arg), void *arg);

struct cache_store_stats {
	size_t channels;
	size_t bytes;
	unsigned long long chunks_in_publish, chunks_in_pull, chunks_out, bytes_out;
	unsigned long long refused_memory;
};
void cache_store_stats(struct cache_store *st, struct cache_store_stats *ret);

/* ---- pulling (cache_pull.c): everything on the loop thread, under pull_lock ---- */

/* A parsed POST /v1/pull body. */
struct cache_pull_req {
	char channel[CACHE_CH_MAX + 1];
	size_t nsrc;
	struct {
		char id[CACHE_ID_MAX + 1]; /* "" when not given */
		char url[CACHE_URL_MAX + 1];
	} src[CACHE_PULL_SRC];
};

/* Parses {"channel":"..","sources":[{"cache_id":"..","url":"http://.."},..]}
 * (other fields ignored; sources beyond CACHE_PULL_SRC ignored; duplicate
 * URLs once). URLs must be http:// with a host, no spaces or controls,
 * trailing slashes dropped. Returns 0, or -EINVAL with *reason set to a
 * static message. Pure: any thread. */
int cache_pull_parse(const char *body, size_t len, struct cache_pull_req *ret, const char **reason);

/* Parses a GET map answer into a buffer map. 0 or -EINVAL. Pure. */
int cache_map_parse(const char *body, size_t len, struct bmap *ret);

struct cache_env;
/* Starts or extends the pull of req->channel (sources that point at this
 * cache are left out). Returns 1 when it was already pulling, 0 when it
 * starts now, -ENOENT when no usable source is left, -EMFILE/-ENOMEM.
 * *ret_nsrc gets the live sources. Any thread. */
int cache_pull_start(struct cache_env *env, const struct cache_pull_req *req, size_t *ret_nsrc);
/* Loop thread, every interval: rounds of every pull. */
void cache_pull_tick(void *arg);
/* A channel left the store: forget its pull. Caller holds no pull lock. */
void cache_pull_forget(struct cache_env *env, const char *ch);
/* JSON of one pull (NULL: none), or of all when ch is NULL. Caller decrefs. */
struct json_t;
struct json_t *cache_pull_json(struct cache_env *env, const char *ch);
/* Frees every pull; the loop must be gone (no callback left). */
void cache_pull_free_all(struct cache_env *env);

struct cache_pull_stats {
	size_t active, sources_ok, sources_dead;
	unsigned long long issued, completed, failed, dead_total;
};
void cache_pull_stats(struct cache_env *env, struct cache_pull_stats *ret);

/* ---- VOD (cache_vod.c) ---- */

/* A parsed Range header. */
struct cache_range {
	uint64_t start, len;
};
/* Parses a Range header value against a file of `size` bytes. Returns 0
 * with *ret (one satisfiable range), 1 when the header should be ignored
 * (not "bytes=", several ranges, malformed: serve the whole file), or
 * -ERANGE when unsatisfiable (416). Pure. */
int cache_range_parse(const char *h, uint64_t size, struct cache_range *ret);

/* Checks a path below /vod/ segment by segment: non-empty segments, none
 * "." or ".." or starting with '.', no NUL, no backslash, at most
 * CACHE_VOD_DEPTH segments, every segment < 256 bytes. Writes the relative
 * path (segments joined by '/') into out. 0 or -EINVAL. Pure. */
int cache_vod_path(const char *path, size_t len, char *out, size_t outsize);

/* Opens rel below the directory root_fd, read-only, refusing anything that
 * resolves outside it (openat2 RESOLVE_BENEATH; without openat2, one
 * component at a time with O_NOFOLLOW, so no symlink at all). Returns the
 * fd or a negative errno. */
int cache_vod_open(int root_fd, const char *rel);

void cache_handle_vod(struct http_req *req, void *arg);

/* ---- the daemon ---- */
struct cache_metrics {
	struct met *chunks_in; /* {from} */
	struct met *refused;   /* {reason} */
	struct met *pull_reqs; /* {result} */
	struct met_child *chunks_out, *bytes_live, *bytes_vod, *channels, *memory, *memory_max,
		*fill, *load, *viewers, *pull_active, *pull_src_ok, *pull_src_dead,
		*pull_dead_total, *pull_ratio;
	struct svc_metrics std;
};

struct cache_env {
	struct cfg *cfg0;
	const char *cfg_path;
	struct tok_key key;
	char id[CACHE_ID_MAX + 1];
	char domain[64];
	char url[CACHE_URL_MAX + 1];
	struct cache_store_opts so;
	struct cache_store *store;
	struct rds *rds;
	struct evl *loop;
	struct rds_async *ra;
	struct http_server *api, *admin;
	struct met_registry *reg;
	struct http_metrics http_metrics;
	struct cache_metrics m;
	long long started_ms;
	int vod_fd; /* -1 = VOD off */
	unsigned registry_ttl_s;
	long long capacity;
	long long channel_idle_ms;

	/* Reloadable pull settings. */
	atomic_int pull_interval_ms, pull_timeout_ms, pull_min, pull_k100, pull_dead_after,
		pull_idle_s, pull_max_inflight, pull_lag;

	/* Pulls: loop thread and the POST /v1/pull handler, under pull_lock. */
	pthread_mutex_t pull_lock;
	struct cache_pull *pulls;
	unsigned long long pull_issued, pull_completed, pull_failed, pull_dead_total;
	bool stopping;

	/* Channels dropped since the last registry refresh (loop thread). */
	char **gone;
	size_t ngone, gone_cap;

	/* Outgoing bytes and chunk GETs, sampled once a second for load. */
	atomic_ullong bytes_out, gets;
	unsigned long long ring_bytes[11], ring_gets[11];
	unsigned ring_pos;
	atomic_llong load_bps, viewers;
	long long next_registry_ms;
};

/* cache_api.c */
extern const struct http_route cache_api_routes[];
extern const size_t cache_api_nroutes;
extern const struct http_route cache_admin_routes[];
extern const size_t cache_admin_nroutes;

/* cache_reg.c: the Redis cache registry (loop thread) */
void cache_reg_refresh(struct cache_env *env);
void cache_reg_remove(struct cache_env *env);   /* main thread, at shutdown */
void cache_reg_gone(const char *ch, void *arg); /* store expiry callback */

/* cache_conf.c */
extern const struct cfg_key cache_cfg_table[];
extern const size_t cache_cfg_n;
int cache_validate(const struct cfg *c, char *err, size_t errsize);

#endif
