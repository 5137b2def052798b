// SPDX-License-Identifier: MIT
/* p2pcdn-peer: reference peer and load generator — command line, run, summary (docs/peer.md). */
#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jw.h"
#include "peer.h"

struct pc_ctx pc;

void pc_graveyard_free(void);

long long
pc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
pc_lat_add(struct pc_lat *l, double ms)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		double *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = ms;
}

static int
pc_dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double
pc_lat_pct(struct pc_lat *l, double pct)
{
	size_t i;

	if (!l->n)
		return NAN;
	qsort(l->v, l->n, sizeof(*l->v), pc_dbl_cmp);
	i = (size_t)ceil(pct / 100.0 * (double)l->n);
	return l->v[i ? i - 1 : 0];
}

/* ---------------------------------------------------------------- usage */

static void
pc_usage(FILE *f)
{
	fprintf(f,
		"usage: p2pcdn-peer MODE [options]\n"
		"\n"
		"Modes:\n"
		"  publish   publish a synthetic live channel: route, POST /v1/publish on the\n"
		"            index-server, PUT a chunk to the assigned cache every --chunk-ms\n"
		"  watch     one viewer: route, register+login (with its /p2p/probe listener),\n"
		"            heartbeats, join, partners, chunk exchange, tracker announce\n"
		"  load      --peers N viewers in one process (seed 000 §5 LPEclient) and a "
		"summary\n"
		"\n"
		"Common options:\n"
		"  --route URL          route-server public API (required)\n"
		"  --login URL          login-server public API (watch, load)\n"
		"  --tracker URL        tracker base URL; announce the channel's info_hash\n"
		"  --channel NAME       live channel (default: demo)\n"
		"  --duration S         stop after S seconds (default 20)\n"
		"  --json               print the summary as JSON on stdout\n"
		"  --verbose            log every link and retry on stderr\n"
		"  --seed N             random seed (default: time)\n"
		"\n"
		"publish:\n"
		"  --xff IP             X-Forwarded-For sent to the route/index-server (region)\n"
		"  --chunk-ms MS        chunk interval (default 200; the cache's chunk_ms)\n"
		"  --chunk-bytes N      bytes per chunk (default 2048)\n"
		"\n"
		"watch:\n"
		"  --xff IP             region address for the route-server\n"
		"  --inner              behave as an inner peer: log in from --lan-ip\n"
		"  --lan-ip IP          the LAN's public address (default 192.0.2.1)\n"
		"  --user U --password P  account (default: p<PeerID>, registered if new)\n"
		"\n"
		"load:\n"
		"  --peers N            viewers (default 10, max 20000)\n"
		"  --region IP          a region address (repeat: peers round-robin over them)\n"
		"  --inner-share F      share of inner peers 0..1 (default 0.5)\n"
		"  --lans N             private networks per region for inner peers (default 2)\n"
		"  --ramp-s S           start the peers over S seconds (default 2)\n"
		"  --sessions N         extra random sessions between peers (default 0)\n"
		"  --cache-status URL   a cache's admin /status, read for the inter-domain\n"
		"                       figure (repeat)\n"
		"\n"
		"Partner and scheduling knobs (seed 001 §3.1.4, §3.3):\n"
		"  --bw-kbps N          upload bandwidth BW (default 500)\n"
		"  --rate-kbps N        stream rate S (default 82 = 2048 B / 200 ms)\n"
		"                       Limit = BW/S - 1 partners\n"
		"  --p-down F           p of formula 3 (default 0.5)\n"
		"  --k-replace F        k of the replacement, 0 < k < 0.5 (default 0.34)\n"
		"  --replace-s S        replacement period (default 5)\n"
		"  --round-ms MS        scheduling round (default 200)\n"
		"  --map-ms MS          buffer-map refresh per source (default 1000)\n"
		"  --start-back N       playback starts N chunks behind the head (default 15)\n"
		"  --startup-chunks N   contiguous chunks needed to start playback (default 3)\n");
}

enum {
	O_ROUTE = 256,
	O_LOGIN,
	O_TRACKER,
	O_CHANNEL,
	O_DURATION,
	O_JSON,
	O_VERBOSE,
	O_SEED,
	O_XFF,
	O_CHUNK_MS,
	O_CHUNK_BYTES,
	O_INNER,
	O_LAN_IP,
	O_USER,
	O_PASSWORD,
	O_PEERS,
	O_REGION,
	O_INNER_SHARE,
	O_LANS,
	O_RAMP,
	O_SESSIONS,
	O_CACHE_STATUS,
	O_BW,
	O_RATE,
	O_PDOWN,
	O_K,
	O_REPLACE,
	O_ROUND,
	O_MAP,
	O_BACK,
	O_STARTUP,
	O_HELP,
};

static int
pc_num(const char *name, const char *s, double lo, double hi, double *ret)
{
	char *end;
	double v = strtod(s, &end);

	if (!*s || *end || !(v >= lo && v <= hi)) {
		fprintf(stderr, "p2pcdn-peer: --%s must be a number in [%g, %g]\n", name, lo, hi);
		return -1;
	}
	*ret = v;
	return 0;
}

static int
pc_str(const char *name, const char *s, char *dst, size_t size)
{
	if (strlen(s) >= size || !*s) {
		fprintf(stderr, "p2pcdn-peer: --%s: empty or too long\n", name);
		return -1;
	}
	snprintf(dst, size, "%s", s);
	return 0;
}

static int
pc_parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "route", 1, 0, O_ROUTE },
		{ "login", 1, 0, O_LOGIN },
		{ "tracker", 1, 0, O_TRACKER },
		{ "channel", 1, 0, O_CHANNEL },
		{ "duration", 1, 0, O_DURATION },
		{ "json", 0, 0, O_JSON },
		{ "verbose", 0, 0, O_VERBOSE },
		{ "seed", 1, 0, O_SEED },
		{ "xff", 1, 0, O_XFF },
		{ "chunk-ms", 1, 0, O_CHUNK_MS },
		{ "chunk-bytes", 1, 0, O_CHUNK_BYTES },
		{ "inner", 0, 0, O_INNER },
		{ "lan-ip", 1, 0, O_LAN_IP },
		{ "user", 1, 0, O_USER },
		{ "password", 1, 0, O_PASSWORD },
		{ "peers", 1, 0, O_PEERS },
		{ "region", 1, 0, O_REGION },
		{ "inner-share", 1, 0, O_INNER_SHARE },
		{ "lans", 1, 0, O_LANS },
		{ "ramp-s", 1, 0, O_RAMP },
		{ "sessions", 1, 0, O_SESSIONS },
		{ "cache-status", 1, 0, O_CACHE_STATUS },
		{ "bw-kbps", 1, 0, O_BW },
		{ "rate-kbps", 1, 0, O_RATE },
		{ "p-down", 1, 0, O_PDOWN },
		{ "k-replace", 1, 0, O_K },
		{ "replace-s", 1, 0, O_REPLACE },
		{ "round-ms", 1, 0, O_ROUND },
		{ "map-ms", 1, 0, O_MAP },
		{ "start-back", 1, 0, O_BACK },
		{ "startup-chunks", 1, 0, O_STARTUP },
		{ "help", 0, 0, O_HELP },
		{ 0, 0, 0, 0 },
	};
	struct pc_opts *o = &pc.o;
	double v;
	int c, ramp_s = 2;

	if (argc < 2) {
		pc_usage(stderr);
		return -1;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		pc_usage(stdout);
		exit(0);
	}
	if (strcmp(argv[1], "publish") == 0)
		o->mode = PC_PUBLISH;
	else if (strcmp(argv[1], "watch") == 0)
		o->mode = PC_WATCH;
	else if (strcmp(argv[1], "load") == 0)
		o->mode = PC_LOAD;
	else {
		fprintf(stderr, "p2pcdn-peer: unknown mode \"%s\" (publish, watch, load)\n",
			argv[1]);
		return -1;
	}
	snprintf(o->channel, sizeof(o->channel), "demo");
	o->duration_s = 20;
	o->chunk_ms = 200;
	o->chunk_bytes = 2048;
	o->peers = 10;
	o->inner_share = 0.5;
	o->lans = 2;
	o->bw_kbps = 500;
	o->rate_kbps = 82;
	o->p_down = 0.5;
	o->k_replace = 0.34;
	o->replace_s = 5;
	o->round_ms = 200;
	o->map_ms = 1000;
	o->start_back = 15;
	o->startup_chunks = 3;
	o->seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case O_ROUTE:
			if (pc_str("route", optarg, o->route, sizeof(o->route)) < 0)
				return -1;
			break;
		case O_LOGIN:
			if (pc_str("login", optarg, o->login, sizeof(o->login)) < 0)
				return -1;
			break;
		case O_TRACKER:
			if (pc_str("tracker", optarg, o->tracker, sizeof(o->tracker)) < 0)
				return -1;
			break;
		case O_CHANNEL:
			if (pc_str("channel", optarg, o->channel, sizeof(o->channel)) < 0 ||
			    strspn(optarg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					   "0123456789._-") != strlen(optarg)) {
				fprintf(stderr,
					"p2pcdn-peer: --channel: 1-128 of A-Z a-z 0-9 . _ -\n");
				return -1;
			}
			break;
		case O_DURATION:
			if (pc_num("duration", optarg, 1, 86400, &o->duration_s) < 0)
				return -1;
			break;
		case O_JSON:
			o->json = true;
			break;
		case O_VERBOSE:
			o->verbose = true;
			break;
		case O_SEED:
			if (pc_num("seed", optarg, 1, 4e15, &v) < 0)
				return -1;
			o->seed = (uint64_t)v;
			break;
		case O_XFF:
			if (pc_str("xff", optarg, o->xff, sizeof(o->xff)) < 0)
				return -1;
			break;
		case O_CHUNK_MS:
			if (pc_num("chunk-ms", optarg, 10, 10000, &v) < 0)
				return -1;
			o->chunk_ms = (int)v;
			break;
		case O_CHUNK_BYTES:
			if (pc_num("chunk-bytes", optarg, 64, 1 << 20, &v) < 0)
				return -1;
			o->chunk_bytes = (int)v;
			break;
		case O_INNER:
			o->inner = true;
			break;
		case O_LAN_IP:
			if (pc_str("lan-ip", optarg, o->lan_ip, sizeof(o->lan_ip)) < 0)
				return -1;
			break;
		case O_USER:
			if (pc_str("user", optarg, o->user, sizeof(o->user)) < 0)
				return -1;
			break;
		case O_PASSWORD:
			if (pc_str("password", optarg, o->password, sizeof(o->password)) < 0)
				return -1;
			break;
		case O_PEERS:
			if (pc_num("peers", optarg, 1, 20000, &v) < 0)
				return -1;
			o->peers = (int)v;
			break;
		case O_REGION:
			if (o->nregions >= 16) {
				fprintf(stderr, "p2pcdn-peer: at most 16 --region\n");
				return -1;
			}
			if (pc_str("region", optarg, o->regions[o->nregions],
				   sizeof(o->regions[0])) < 0)
				return -1;
			o->nregions++;
			break;
		case O_INNER_SHARE:
			if (pc_num("inner-share", optarg, 0, 1, &o->inner_share) < 0)
				return -1;
			break;
		case O_LANS:
			if (pc_num("lans", optarg, 1, 250, &v) < 0)
				return -1;
			o->lans = (int)v;
			break;
		case O_RAMP:
			if (pc_num("ramp-s", optarg, 0, 3600, &v) < 0)
				return -1;
			ramp_s = (int)v;
			break;
		case O_SESSIONS:
			if (pc_num("sessions", optarg, 0, 1000000, &v) < 0)
				return -1;
			o->sessions = (int)v;
			break;
		case O_CACHE_STATUS:
			if (o->ncache_status >= 8) {
				fprintf(stderr, "p2pcdn-peer: at most 8 --cache-status\n");
				return -1;
			}
			if (pc_str("cache-status", optarg, o->cache_status[o->ncache_status],
				   sizeof(o->cache_status[0])) < 0)
				return -1;
			o->ncache_status++;
			break;
		case O_BW:
			if (pc_num("bw-kbps", optarg, 1, 1e8, &v) < 0)
				return -1;
			o->bw_kbps = (long long)v;
			break;
		case O_RATE:
			if (pc_num("rate-kbps", optarg, 1, 1e8, &v) < 0)
				return -1;
			o->rate_kbps = (long long)v;
			break;
		case O_PDOWN:
			if (pc_num("p-down", optarg, 0, 1, &o->p_down) < 0)
				return -1;
			break;
		case O_K:
			if (pc_num("k-replace", optarg, 0, 0.4999, &o->k_replace) < 0)
				return -1;
			break;
		case O_REPLACE:
			if (pc_num("replace-s", optarg, 1, 3600, &v) < 0)
				return -1;
			o->replace_s = (int)v;
			break;
		case O_ROUND:
			if (pc_num("round-ms", optarg, 20, 10000, &v) < 0)
				return -1;
			o->round_ms = (int)v;
			break;
		case O_MAP:
			if (pc_num("map-ms", optarg, 50, 60000, &v) < 0)
				return -1;
			o->map_ms = (int)v;
			break;
		case O_BACK:
			if (pc_num("start-back", optarg, 1, PC_WINDOW - PC_BACK - 8, &v) < 0)
				return -1;
			o->start_back = (int)v;
			break;
		case O_STARTUP:
			if (pc_num("startup-chunks", optarg, 1, 32, &v) < 0)
				return -1;
			o->startup_chunks = (int)v;
			break;
		case O_HELP:
			pc_usage(stdout);
			exit(0);
		default:
			pc_usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "p2pcdn-peer: unexpected argument \"%s\"\n", argv[optind]);
		return -1;
	}
	if (!o->route[0] || (o->mode != PC_PUBLISH && !o->login[0])) {
		fprintf(stderr, "p2pcdn-peer: --route%s is required\n",
			o->mode != PC_PUBLISH ? " and --login" : "");
		return -1;
	}
	if (o->mode != PC_LOAD)
		o->peers = 1;
	if (o->mode == PC_LOAD && o->inner_share > 0 && o->inner_share < 1 && o->lans < 1)
		o->lans = 1;
	o->ramp_ms = ramp_s * 1000;
	o->sessions = o->mode == PC_LOAD ? o->sessions : 0;
	return 0;
}

/* ---------------------------------------------------------------- run */

static pthread_mutex_t pc_done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pc_done_cond = PTHREAD_COND_INITIALIZER;
static bool pc_done;
static volatile sig_atomic_t pc_signalled;
static struct event *pc_main_ev;
static int pc_phase; /* 0 running, 1 leaving, 2 reading caches, 3 done */
static long long pc_phase_ms;
static int pc_status_pending;
static unsigned long long pc_pull_chunks, pc_pull_bytes;
static json_t *pc_cache_status;

static void
pc_signal(int sig)
{
	(void)sig;
	pc_signalled = 1;
}

/* The layout of the simulated world (docs/peer.md): which peers are
 * inner, their LAN address, their region. */
static void
pc_place(struct pc_peer *p, int i)
{
	struct pc_opts *o = &pc.o;

	if (o->mode == PC_PUBLISH) {
		p->publisher = true;
		snprintf(p->region_ip, sizeof(p->region_ip), "%s", o->xff);
		return;
	}
	if (o->mode == PC_WATCH) {
		snprintf(p->region_ip, sizeof(p->region_ip), "%s", o->xff);
		snprintf(p->user, sizeof(p->user), "%s", o->user);
		p->inner = o->inner;
		if (p->inner)
			snprintf(p->lan_ip, sizeof(p->lan_ip), "%s",
				 o->lan_ip[0] ? o->lan_ip : "192.0.2.1");
		return;
	}
	p->region = o->nregions ? i % o->nregions : 0;
	if (o->nregions)
		snprintf(p->region_ip, sizeof(p->region_ip), "%s", o->regions[p->region]);
	/* Inner peers spread evenly: peer i is inner when the running count
	 * of inner_share · (i + 1) steps up. */
	p->inner = floor(o->inner_share * (i + 1) + 1e-9) > floor(o->inner_share * i + 1e-9);
	if (p->inner) {
		int lan = (i / (o->nregions ? o->nregions : 1)) % o->lans;
		/* TEST-NET-1: public for the suite, unreachable for the probe;
		 * peers sharing one address are one LAN behind one NAT. */
		snprintf(p->lan_ip, sizeof(p->lan_ip), "192.0.2.%d",
			 1 + (p->region * o->lans + lan) % 250);
	}
}

static void
pc_status_done(int status, const char *body, size_t len, void *arg)
{
	json_t *o;

	(void)arg;
	pc_status_pending--;
	if (status != 200 || !(o = json_loadb(body, len, 0, NULL)))
		return;
	json_t *in = json_object_get(o, "chunks_in");
	json_t *ch = json_object_get(o, "channels"), *e;
	size_t i;
	unsigned long long pulled =
		(unsigned long long)json_integer_value(json_object_get(in, "pull"));
	pc_pull_chunks += pulled;
	json_array_foreach (ch, i, e) {
		const char *name = json_string_value(json_object_get(e, "channel"));
		json_int_t bytes = json_integer_value(json_object_get(e, "bytes"));
		json_int_t held = json_integer_value(json_object_get(e, "held"));
		if (name && strcmp(name, pc.o.channel) == 0 && held > 0)
			pc_pull_bytes += (unsigned long long)(bytes / held) * pulled;
	}
	if (!pc_cache_status)
		pc_cache_status = json_array();
	json_array_append_new(
		pc_cache_status,
		json_pack("{s:s, s:O, s:O}", "id",
			  json_string_value(json_object_get(o, "id"))
				  ? json_string_value(json_object_get(o, "id"))
				  : "",
			  "domain",
			  json_object_get(o, "domain") ? json_object_get(o, "domain") : json_null(),
			  "chunks_in", in ? in : json_null()));
	json_decref(o);
}

static void
pc_main_tick(evutil_socket_t fd, short what, void *arg)
{
	long long now = pc_now_ms();

	(void)fd;
	(void)what;
	(void)arg;
	if (pc_phase == 0) {
		pc_session_tick();
		if (now < pc.end_ms && !pc_signalled)
			return;
		/* Leave: bye to partners, leave the index, tracker "stopped". */
		for (size_t i = 0; i < pc.npeers; i++)
			pc_peer_stop(pc.peers[i]);
		pc_phase = 1;
		pc_phase_ms = now;
		return;
	}
	if (pc_phase == 1) {
		if (now - pc_phase_ms < 1000)
			return;
		for (int i = 0; i < pc.o.ncache_status; i++) {
			pc_status_pending++;
			pc_http("GET", pc.o.cache_status[i], NULL, 0, NULL, NULL, NULL, 3000,
				pc_status_done, NULL);
		}
		pc_phase = 2;
		pc_phase_ms = now;
		return;
	}
	if (pc_phase == 2 && (pc_status_pending > 0 && now - pc_phase_ms < 4000))
		return;
	/* Done: listeners and timers go now, on the loop thread. */
	pc.stopping = true;
	pc_phase = 3;
	for (size_t i = 0; i < pc.npeers; i++) {
		struct pc_peer *p = pc.peers[i];
		if (p->tick) {
			event_free(p->tick);
			p->tick = NULL;
		}
		if (p->http) {
			evhttp_free(p->http);
			p->http = NULL;
		}
		for (size_t j = 0; j < p->nlinks; j++)
			pc_peer_kill_link(p->links[j]);
		pc_peer_close_caches(p);
	}
	event_free(pc_main_ev);
	pc_main_ev = NULL;
	pthread_mutex_lock(&pc_done_lock);
	pc_done = true;
	pthread_cond_signal(&pc_done_cond);
	pthread_mutex_unlock(&pc_done_lock);
}

static void
pc_setup(void *arg)
{
	long long now = pc_now_ms();
	struct timeval tv = { 0, 100000 };

	(void)arg;
	pc.st.t0_ms = now;
	pc.end_ms = now + (long long)(pc.o.duration_s * 1000);
	pc.sessions_left = pc.o.sessions;
	pc.next_session_ms = now + pc.o.ramp_ms + 2000;
	for (int i = 0; i < pc.o.peers; i++) {
		struct pc_peer *p = pc_peer_new(i);
		if (!p) {
			fprintf(stderr,
				"p2pcdn-peer: peer %d: cannot listen (%s); running %zu peers\n", i,
				strerror(errno), pc.npeers);
			break;
		}
		pc_place(p, i);
		p->start_ms = now + (pc.o.peers > 1 ? (long long)pc.o.ramp_ms * i / pc.o.peers : 0);
		pc.peers[pc.npeers++] = p;
	}
	pc_main_ev = event_new(pc.base, -1, EV_PERSIST, pc_main_tick, NULL);
	if (pc_main_ev)
		event_add(pc_main_ev, &tv);
	if (!pc_main_ev || pc.npeers == 0) {
		pthread_mutex_lock(&pc_done_lock);
		pc_done = true;
		pthread_cond_signal(&pc_done_cond);
		pthread_mutex_unlock(&pc_done_lock);
	}
}

/* ---------------------------------------------------------------- summary */

static double
pc_ratio(unsigned long long a, unsigned long long b)
{
	return b ? (double)a / (double)b : 0.0;
}

static void
pc_jlat(struct jw *w, const char *key, struct pc_lat *l)
{
	jw_key(w, true, key);
	jw_lit(w, "{");
	jw_key(w, false, "n");
	jw_int(w, (long long)l->n);
	jw_key(w, true, "p50");
	jw_double(w, pc_lat_pct(l, 50));
	jw_key(w, true, "p99");
	jw_double(w, pc_lat_pct(l, 99));
	jw_lit(w, "}");
}

void
pc_print_summary(void)
{
	static const char *const names[PC_MODES] = { "direct", "reverse", "lan", "relay" };
	struct pc_stats *s = &pc.st;
	unsigned long long decided = 0, chunks = s->chunks_peer + s->chunks_cache;
	double secs = (double)(pc_now_ms() - s->t0_ms) / 1000.0;
	double lsecs = s->logins_last_ms > s->logins_first_ms
			       ? (double)(s->logins_last_ms - s->logins_first_ms) / 1000.0
			       : 0;
	unsigned long long viewers = 0, joined = 0, failed = 0;
	struct jw w;
	size_t len;
	char *text;

	for (int m = 0; m < PC_MODES; m++)
		decided += s->mode[m];
	/* A lan connect that fell back to the relay is one connect, not two. */
	decided -= s->lan_fallbacks < decided ? s->lan_fallbacks : 0;
	for (size_t i = 0; i < pc.npeers; i++) {
		if (pc.peers[i]->publisher)
			continue;
		viewers++;
		joined += pc.peers[i]->t_joined_ms > 0;
		failed += pc.peers[i]->state == PC_P_FAILED;
	}
	jw_init(&w, 4096);
	jw_lit(&w, "{");
	jw_key(&w, false, "mode");
	jw_str(&w, pc.o.mode == PC_PUBLISH ? "publish" : pc.o.mode == PC_WATCH ? "watch" : "load");
	jw_key(&w, true, "channel");
	jw_str(&w, pc.o.channel);
	jw_key(&w, true, "seconds");
	jw_double(&w, secs);
	jw_key(&w, true, "peers");
	jw_int(&w, (long long)viewers);
	jw_key(&w, true, "joined");
	jw_int(&w, (long long)joined);
	jw_key(&w, true, "failed");
	jw_int(&w, (long long)failed);
	jw_key(&w, true, "routes");
	jw_lit(&w, "{");
	jw_key(&w, false, "ok");
	jw_int(&w, (long long)s->routes_ok);
	jw_key(&w, true, "failed");
	jw_int(&w, (long long)s->routes_failed);
	jw_lit(&w, "}");
	jw_key(&w, true, "logins");
	jw_lit(&w, "{");
	jw_key(&w, false, "ok");
	jw_int(&w, (long long)s->logins_ok);
	jw_key(&w, true, "failed");
	jw_int(&w, (long long)s->logins_failed);
	jw_key(&w, true, "registered");
	jw_int(&w, (long long)s->registers);
	jw_key(&w, true, "per_s");
	jw_double(&w, lsecs > 0 ? (double)s->logins_ok / lsecs : (double)s->logins_ok);
	jw_key(&w, true, "outer");
	jw_int(&w, (long long)s->nat_outer);
	jw_key(&w, true, "inner");
	jw_int(&w, (long long)s->nat_inner);
	pc_jlat(&w, "latency_ms", &s->login_ms);
	jw_lit(&w, "}");
	jw_key(&w, true, "connects");
	jw_lit(&w, "{");
	jw_key(&w, false, "requested");
	jw_int(&w, (long long)s->connects);
	jw_key(&w, true, "refused");
	jw_int(&w, (long long)s->connect_errors);
	jw_key(&w, true, "sessions");
	jw_int(&w, (long long)s->sessions_done);
	jw_key(&w, true, "modes");
	jw_lit(&w, "{");
	for (int m = 0; m < PC_MODES; m++) {
		jw_key(&w, m > 0, names[m]);
		jw_lit(&w, "{");
		jw_key(&w, false, "decided");
		jw_int(&w, (long long)s->mode[m]);
		jw_key(&w, true, "ok");
		jw_int(&w, (long long)s->mode_ok[m]);
		jw_key(&w, true, "failed");
		jw_int(&w, (long long)s->mode_fail[m]);
		jw_lit(&w, "}");
	}
	jw_lit(&w, "}");
	jw_key(&w, true, "lan_fallbacks");
	jw_int(&w, (long long)s->lan_fallbacks);
	jw_key(&w, true, "lan_sealed_ok");
	jw_int(&w, (long long)s->lan_sealed_ok);
	jw_key(&w, true, "lan_sealed_bad");
	jw_int(&w, (long long)s->lan_sealed_bad);
	jw_key(&w, true, "relay_dependency");
	jw_double(&w, pc_ratio(s->mode[3], decided));
	/* Seed 000 §4.4.4: only inner peers of different private networks
	 * need the relay, so K_ra should equal their share of the connects. */
	unsigned long long pairs = 0;
	for (int i = 0; i < 6; i++)
		pairs += s->pair[i];
	jw_key(&w, true, "pairs");
	jw_lit(&w, "{");
	jw_key(&w, false, "outer_outer");
	jw_int(&w, (long long)s->pair[0]);
	jw_key(&w, true, "outer_inner");
	jw_int(&w, (long long)s->pair[1]);
	jw_key(&w, true, "inner_outer");
	jw_int(&w, (long long)s->pair[2]);
	jw_key(&w, true, "inner_same_lan");
	jw_int(&w, (long long)s->pair[3]);
	jw_key(&w, true, "inner_other_lan");
	jw_int(&w, (long long)s->pair[4]);
	jw_key(&w, true, "unknown");
	jw_int(&w, (long long)s->pair[5]);
	jw_lit(&w, "}");
	jw_key(&w, true, "expected_relay_dependency");
	jw_double(&w, pc_ratio(s->pair[4], pairs));
	jw_key(&w, true, "relay_frames");
	jw_int(&w, (long long)s->relay_frames);
	jw_lit(&w, "}");
	jw_key(&w, true, "join");
	jw_lit(&w, "{");
	jw_key(&w, false, "ok");
	jw_int(&w, (long long)s->joins_ok);
	jw_key(&w, true, "failed");
	jw_int(&w, (long long)s->joins_failed);
	pc_jlat(&w, "latency_ms", &s->join_ms);
	jw_lit(&w, "}");
	jw_key(&w, true, "playback");
	jw_lit(&w, "{");
	jw_key(&w, false, "playing_peers");
	jw_int(&w, (long long)s->playing_peers);
	jw_key(&w, true, "played");
	jw_int(&w, (long long)s->played);
	jw_key(&w, true, "missed");
	jw_int(&w, (long long)s->missed);
	jw_key(&w, true, "delivery_ratio");
	jw_double(&w, pc_ratio(s->played, s->played + s->missed));
	pc_jlat(&w, "startup_ms", &s->startup_ms);
	jw_lit(&w, "}");
	jw_key(&w, true, "chunks");
	jw_lit(&w, "{");
	jw_key(&w, false, "from_peers");
	jw_int(&w, (long long)s->chunks_peer);
	jw_key(&w, true, "from_caches");
	jw_int(&w, (long long)s->chunks_cache);
	jw_key(&w, true, "p2p_offload");
	jw_double(&w, pc_ratio(s->chunks_peer, chunks));
	jw_key(&w, true, "corrupt");
	jw_int(&w, (long long)s->chunks_corrupt);
	jw_key(&w, true, "errors");
	jw_int(&w, (long long)s->chunk_errors);
	jw_lit(&w, "}");
	jw_key(&w, true, "traffic");
	jw_lit(&w, "{");
	jw_key(&w, false, "bytes_from_peers");
	jw_int(&w, (long long)s->bytes_peer);
	jw_key(&w, true, "bytes_from_caches");
	jw_int(&w, (long long)s->bytes_cache);
	jw_key(&w, true, "bytes_in_domain");
	jw_int(&w, (long long)s->bytes_in_domain);
	jw_key(&w, true, "bytes_cross_domain_peers");
	jw_int(&w, (long long)s->bytes_cross_domain);
	jw_key(&w, true, "cache_pull_chunks");
	jw_int(&w, (long long)pc_pull_chunks);
	jw_key(&w, true, "cache_pull_bytes");
	jw_int(&w, (long long)pc_pull_bytes);
	jw_key(&w, true, "cross_domain_share");
	jw_double(&w, pc_ratio(s->bytes_cross_domain + pc_pull_bytes,
			       s->bytes_in_domain + s->bytes_cross_domain + pc_pull_bytes));
	jw_lit(&w, "}");
	jw_key(&w, true, "partners");
	jw_lit(&w, "{");
	jw_key(&w, false, "replaced");
	jw_int(&w, (long long)s->replaced);
	jw_key(&w, true, "refused_over_limit");
	jw_int(&w, (long long)s->refused_limit);
	jw_key(&w, true, "limit");
	jw_int(&w, (long long)partner_limit((unsigned long long)pc.o.bw_kbps,
					    (unsigned long long)pc.o.rate_kbps));
	jw_lit(&w, "}");
	jw_key(&w, true, "heartbeats");
	jw_lit(&w, "{");
	jw_key(&w, false, "login");
	jw_int(&w, (long long)s->heartbeats);
	jw_key(&w, true, "login_failed");
	jw_int(&w, (long long)s->heartbeats_failed);
	jw_key(&w, true, "pushes");
	jw_int(&w, (long long)s->pushes);
	jw_key(&w, true, "index");
	jw_int(&w, (long long)s->index_heartbeats);
	jw_lit(&w, "}");
	jw_key(&w, true, "tracker");
	jw_lit(&w, "{");
	jw_key(&w, false, "announces_ok");
	jw_int(&w, (long long)s->announces_ok);
	jw_key(&w, true, "announces_failed");
	jw_int(&w, (long long)s->announces_failed);
	jw_lit(&w, "}");
	jw_key(&w, true, "publish");
	jw_lit(&w, "{");
	jw_key(&w, false, "chunks");
	jw_int(&w, (long long)s->published);
	jw_key(&w, true, "errors");
	jw_int(&w, (long long)s->publish_errors);
	jw_lit(&w, "}");
	jw_lit(&w, "}");
	text = jw_finish(&w, &len);
	if (!text)
		return;
	if (pc.o.json) {
		fwrite(text, 1, len, stdout);
		fputc('\n', stdout);
		fflush(stdout);
	} else {
		printf("p2pcdn-peer %s: %llu viewers over %.1f s, channel %s\n",
		       pc.o.mode == PC_LOAD    ? "load"
		       : pc.o.mode == PC_WATCH ? "watch"
					       : "publish",
		       viewers, secs, pc.o.channel);
		printf("  logins        %llu ok, %llu failed, %.1f/s (p50 %.0f ms); %llu outer, "
		       "%llu "
		       "inner\n",
		       s->logins_ok, s->logins_failed,
		       lsecs > 0 ? (double)s->logins_ok / lsecs : (double)s->logins_ok,
		       pc_lat_pct(&s->login_ms, 50), s->nat_outer, s->nat_inner);
		printf("  connects      direct %llu, reverse %llu, lan %llu, relay %llu "
		       "(lan fallbacks %llu); relay dependency K_ra %.3f\n",
		       s->mode[0], s->mode[1], s->mode[2], s->mode[3], s->lan_fallbacks,
		       pc_ratio(s->mode[3], decided));
		printf("  join          %llu ok, latency p50 %.0f ms p99 %.0f ms\n", s->joins_ok,
		       pc_lat_pct(&s->join_ms, 50), pc_lat_pct(&s->join_ms, 99));
		printf("  playback      %llu playing, delivery ratio %.4f (%llu played, %llu "
		       "missed), "
		       "startup p50 %.0f ms p99 %.0f ms\n",
		       s->playing_peers, pc_ratio(s->played, s->played + s->missed), s->played,
		       s->missed, pc_lat_pct(&s->startup_ms, 50), pc_lat_pct(&s->startup_ms, 99));
		printf("  chunks        %llu from peers, %llu from caches: P2P offload %.3f\n",
		       s->chunks_peer, s->chunks_cache, pc_ratio(s->chunks_peer, chunks));
		printf("  traffic       %llu B inside domains, %llu B between (cache pulls %llu "
		       "B)\n",
		       s->bytes_in_domain, s->bytes_cross_domain + pc_pull_bytes, pc_pull_bytes);
		printf("  tracker       %llu announces ok, %llu failed; published %llu chunks\n",
		       s->announces_ok, s->announces_failed, s->published);
	}
	fflush(stdout);
	free(text);
}

int
main(int argc, char **argv)
{
	if (pc_parse(argc, argv) < 0)
		return 2;
	if (sodium_init() < 0) {
		fprintf(stderr, "p2pcdn-peer: libsodium failed to initialise\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, pc_signal);
	signal(SIGTERM, pc_signal);
	pc.peers = calloc((size_t)pc.o.peers, sizeof(*pc.peers));
	pc.l = evl_new();
	if (!pc.peers || !pc.l) {
		fprintf(stderr, "p2pcdn-peer: out of memory\n");
		return 1;
	}
	pc.base = evl_base(pc.l);
	if (evl_call(pc.l, pc_setup, NULL) < 0) {
		fprintf(stderr, "p2pcdn-peer: cannot start the loop\n");
		return 1;
	}
	pthread_mutex_lock(&pc_done_lock);
	while (!pc_done)
		pthread_cond_wait(&pc_done_cond, &pc_done_lock);
	pthread_mutex_unlock(&pc_done_lock);
	/* Cancels what is still in flight; callbacks see pc.stopping. */
	evl_free(pc.l);
	pc_print_summary();
	for (size_t i = 0; i < pc.npeers; i++)
		pc_peer_free(pc.peers[i]);
	free(pc.peers);
	pc_graveyard_free();
	json_decref(pc_cache_status);
	free(pc.st.login_ms.v);
	free(pc.st.join_ms.v);
	free(pc.st.startup_ms.v);
	return pc.npeers ? 0 : 1;
}
