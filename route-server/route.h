/* SPDX-License-Identifier: MIT */
/* route-server: private declarations shared by its files. */
#ifndef P2PCDN_ROUTE_H
#define P2PCDN_ROUTE_H

#include <maxminddb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "cfg.h"
#include "http.h"
#include "met.h"
#include "pg.h"
#include "rds.h"
#include "rds_async.h"
#include "evl.h"
#include "svc.h"

#define ROUTE_NAME_MAX 128 /* region/city names kept, bytes */
#define ROUTE_PATH_MAX 8   /* segments of an MMDB lookup path */

/* ---- nettype table (route_nettype.c): ASN -> carrier class ---- */
struct route_nettype_entry {
	uint32_t asn;
	uint8_t cls;
	uint32_t line; /* where the file listed it, for error messages */
};
struct route_nettype {
	struct route_nettype_entry *v; /* sorted by asn */
	size_t n;
};
enum { ROUTE_NETTYPE_UNKNOWN = 0, ROUTE_NETTYPE_OTHER = 15 };

/* Parses "ASN,CLASS" lines (CLASS a number 1..14 or a name); '#' comments,
 * blank lines and spaces allowed. Returns 0 with *ret filled (caller frees
 * ret->v), or -EINVAL with "line N: ..." in err. Any thread. */
int route_nettype_parse(const char *text, size_t len, struct route_nettype *ret, char *err,
			size_t errsize);
/* The built-in table of the paper's seven carriers (docs/route-server.md). */
int route_nettype_builtin(struct route_nettype *ret);
/* Class for an ASN: table hit, else OTHER for asn != 0, UNKNOWN for 0. */
unsigned route_nettype_class(const struct route_nettype *t, uint32_t asn);
/* "telecom" ... for a class, "unknown", "other", or "reserved" for 8..14. Static. */
const char *route_nettype_name(unsigned cls);
/* Class number for a name or decimal string, -EINVAL if neither. */
int route_nettype_from_name(const char *s);

/* ---- geo lookup (route_geo.c) ---- */
struct route_geo {
	bool private_addr;
	bool found; /* the city database knows the address */
	char ip[ADDR_STR_MAX];
	char country[3];
	char region[ROUTE_NAME_MAX];
	char city[ROUTE_NAME_MAX];
	bool has_loc;
	double lat, lon;
	bool has_asn;
	uint32_t asn;
	unsigned nettype;
};

/* Everything reloadable on SIGHUP, built aside and swapped whole. */
struct route_state {
	atomic_int refs; /* the env's reference + one per reader (route_view) */
	struct cfg *cfg;
	MMDB_s city;
	bool city_open;
	MMDB_s asn;
	bool asn_open;
	const char *path_country[ROUTE_PATH_MAX + 1];
	const char *path_region[ROUTE_PATH_MAX + 1];
	const char *path_city[ROUTE_PATH_MAX + 1];
	const char *path_lat[ROUTE_PATH_MAX + 1];
	const char *path_lon[ROUTE_PATH_MAX + 1];
	const char *path_asn[ROUTE_PATH_MAX + 1];
	char *path_buf;
	struct route_nettype nettype;
	const char *default_domain;
	long long peerid_ttl_s;
	long long max_per_minute;
	int peerid_attempts;
	int refresh_ms;
};

struct route_state *route_state_new(struct cfg *cfg, char *err, size_t errsize);
void route_state_free(struct route_state *st);
void route_geo_lookup(const struct route_state *st, const struct addr *a, struct route_geo *ret);

/* ---- domains, rules and codes from PostgreSQL (route_domains.c) ---- */
struct route_domain {
	char *name;
	char **index_servers;
	size_t nindex;
	bool has_loc;
	double lat, lon;
	struct met_child *allocations;
};

struct route_rule {
	long long id;
	int priority;
	char country[3]; /* "" = any */
	int nettype;     /* -1 = any */
	char *region;    /* NULL = any */
	char *city;      /* NULL = any */
	char *domain;
	size_t domain_idx;
};

struct route_code {
	char *key; /* "country\x1fregion[\x1fcity]" */
	unsigned code;
};

/* An immutable snapshot; readers hold a reference (route_view). */
struct route_snap {
	atomic_int refs;
	long long generation;
	struct route_domain *domains; /* sorted by name */
	size_t ndomains;
	struct route_rule *rules; /* match order */
	size_t nrules;
	struct route_code *regions, *cities; /* sorted by key */
	size_t nregions, ncities;
};

const struct route_domain *route_snap_domain(const struct route_snap *s, const char *name);
/* The domain for a geo answer: first matching rule, else default_name.
 * NULL when that domain does not exist in the snapshot. */
const struct route_domain *route_snap_choose(const struct route_snap *s, const struct route_geo *g,
					     const char *default_name);
/* Region and city codes for a geo answer; 0 where not assigned yet. */
void route_snap_codes(const struct route_snap *s, unsigned country, const struct route_geo *g,
		      unsigned *ret_region, unsigned *ret_city);

/* ---- the daemon ---- */
struct route_metrics {
	struct met *allocations; /* {domain} */
	struct met_child *collisions;
	struct met_child *rate_limited;
	struct met_child *generation;
	struct met *geo_misses; /* {reason} */
	struct met_child *pending;
	struct svc_metrics std;
};

#define ROUTE_PENDING_MAX 1024
struct route_pending {
	unsigned country;
	char region[ROUTE_NAME_MAX];
	char city[ROUTE_NAME_MAX];
};

struct route_env {
	struct cfg *cfg0; /* the config at start: fixed keys */
	const char *cfg_path;
	/* The current state and snapshot. Readers take references through
	 * route_view_get; a swap drops the env's reference and the last
	 * reader frees, so a reload or refresh never frees what a request
	 * (or a Redis call it waits on) still reads. */
	pthread_mutex_t view_lock;
	struct route_state *state;
	struct route_snap *snap;
	struct rds *rds;      /* blocking: admin and rare paths */
	struct evl *loop;     /* runs ra */
	struct rds_async *ra; /* pipelined: the /v1/route hot path */
	struct pg_pool *pg;
	struct http_server *api, *admin;
	struct met_registry *reg;
	struct http_metrics http_metrics;
	struct route_metrics m;
	long long started_ms;

	/* refresher thread: polls PostgreSQL, assigns codes */
	pthread_t refresher;
	bool refresher_started;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stopping;
	bool refresh_now;
	struct route_pending pending[ROUTE_PENDING_MAX];
	size_t npending;
	atomic_bool pg_up;

	/* lookups per second over the last 10 s, sampled by the main loop */
	atomic_ullong lookups;
	unsigned long long lookup_ring[11];
	unsigned ring_pos;
	double lookups_per_s;
};

/* A reader's references to the current state and snapshot (either may be
 * NULL before start-up finished). Any thread; put what you get. */
struct route_view {
	struct route_state *st;
	struct route_snap *snap;
};
void route_view_get(struct route_env *env, struct route_view *ret);
void route_view_put(struct route_view *v);
/* Publishes a new state or snapshot (the caller's reference moves to the
 * env); the old one is released. */
void route_state_publish(struct route_env *env, struct route_state *st);
void route_snap_publish(struct route_env *env, struct route_snap *s);

/* route_domains.c */
int route_snap_load(struct route_env *env, PGconn *c, struct route_snap **ret, char *err,
		    size_t errsize);
void route_snap_free(struct route_snap *s);
int route_refresher_start(struct route_env *env);
void route_refresher_stop(struct route_env *env);
void route_refresh_soon(struct route_env *env);
void route_queue_codes(struct route_env *env, unsigned country, const struct route_geo *g);

/* route_api.c: public and admin handlers */
extern const struct http_route route_api_routes[];
extern const size_t route_api_nroutes;
extern const struct http_route route_admin_routes[];
extern const size_t route_admin_nroutes;

/* route_conf.c */
extern const struct cfg_key route_cfg_table[];
extern const size_t route_cfg_n;

#endif
