// SPDX-License-Identifier: MIT
/* Swarm store: sharded, sorted vectors of torrents holding compact peer records. */
#include "trk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * Layout (opentracker's published design, reimplemented):
 *
 * - 2^shard_bits shards picked by the top bits of the info_hash, each with
 *   its own mutex, so announces on different torrents rarely contend.
 * - A shard keeps its torrents inline in one vector sorted by info_hash and
 *   found by binary search. Chosen over an open-addressing table because it
 *   has no load-factor slack or tombstones, shrinks with a plain realloc,
 *   iterates in a stable order for expiry, and stays short: with 256 shards
 *   a million torrents is ~4k entries (12 probes) per shard. New torrents,
 *   the only case paying the memmove, are rare next to re-announces.
 * - A torrent keeps its IPv4 and IPv6 peers in two vectors of fixed-size
 *   records sorted by (ip, port). The first bytes of a record are the peer in
 *   BEP 23 compact form (ip, then port, network order), so memcmp on them is
 *   the sort order and a chosen peer is copied out unchanged.
 *
 * Record sizes, exactly: IPv4 8 bytes (4 ip + 2 port + 2 meta), IPv6 20 bytes
 * (16 ip + 2 port + 2 meta). meta is a host-order uint16_t: bit 15 seeder,
 * bit 14 completed-already-counted, bits 0..13 the last-seen time in 4-second
 * ticks modulo 2^14 (65,536 s, ~18 h). The wrap is harmless as long as
 * trk_store_expire runs with a timeout well under 18 h at least every
 * (18 h - timeout): a peer surviving expiry is younger than the timeout, so
 * the next expiry still sees its true age.
 */

#define REC4           8
#define REC6           20
#define META_SEEDER    0x8000u
#define META_COMPLETED 0x4000u
#define META_TICK_MASK 0x3fffu
#define TICK_SHIFT     2 /* 4-second ticks */

/* Peer choice walks at most want * SCAN_FACTOR + SCAN_SLACK records. Only a
 * seeder skips anything (other seeders), so this bounds its cost in
 * seeder-heavy swarms; a leecher's walk ends after want + 1 records. */
#define PICK_SCAN_FACTOR 4
#define PICK_SCAN_SLACK  64

enum { FAM4 = 0, FAM6 = 1 };

static const size_t rec_size[2] = { REC4, REC6 };
static const size_t key_size[2] = { REC4 - 2, REC6 - 2 };

struct trk_pvec {
	uint8_t *rec;
	uint32_t len, cap;
};

/* 72 bytes on LP64. */
struct trk_torrent {
	uint8_t hash[TRK_HASH_LEN];
	uint32_t completed;
	uint32_t completed_new; /* completions the catalog has not taken yet */
	struct trk_pvec pv[2];  /* FAM4, FAM6 */
	uint32_t seeds[2];      /* seeders in pv[FAM4], pv[FAM6] */
};

struct trk_shard {
	_Alignas(64) pthread_mutex_t lock; /* a cache line per shard: no false sharing */
	struct trk_torrent *t;
	size_t n, cap;
	uint64_t rng;
	/* Totals kept incrementally so trk_store_stats is O(shards). */
	size_t peers[2], seeders, bytes;
};

struct trk_store {
	struct trk_shard *shards;
	unsigned shard_bits;
	size_t max_torrents;
	uint32_t max_peers;
	atomic_size_t torrents;
};

static size_t
vec_grow_cap(size_t cap)
{
	/* 1.5x: amortised O(1) appends while wasting a quarter on average. */
	return cap < 4 ? 4 : cap + cap / 2;
}

/* The capacity a vector should shrink to, or cap to keep it. Shrinking only
 * below a quarter full, to twice the length, leaves room on both sides so
 * a swarm hovering around one size never reallocs back and forth. */
static size_t
vec_shrink_cap(size_t len, size_t cap)
{
	if (len == 0)
		return 0;
	if (len >= cap / 4 || cap <= 8)
		return cap;
	return len * 2 < 4 ? 4 : len * 2;
}

static uint16_t
meta_get(const uint8_t *r, unsigned f)
{
	uint16_t m;

	memcpy(&m, r + key_size[f], sizeof(m));
	return m;
}

static void
meta_set(uint8_t *r, unsigned f, uint16_t m)
{
	memcpy(r + key_size[f], &m, sizeof(m));
}

static uint16_t
now_tick(uint32_t now)
{
	return (uint16_t)((now >> TICK_SHIFT) & META_TICK_MASK);
}

static uint64_t
rng_next(struct trk_shard *sh)
{
	/* xorshift64*: only spreads the starting point of peer walks; nothing
	 * here needs unpredictability. */
	uint64_t x = sh->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	sh->rng = x;
	return x * UINT64_C(0x2545f4914f6cdd1d);
}

static uint64_t
splitmix64(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

static struct trk_shard *
shard_of(struct trk_store *s, const uint8_t *hash)
{
	unsigned top = (unsigned)hash[0] << 8 | hash[1];

	return &s->shards[s->shard_bits ? top >> (16 - s->shard_bits) : 0];
}

/* Lower bound of key (its first klen bytes) among n records of `stride`
 * bytes sorted by that prefix; *found says whether it is there. Torrents
 * (keyed by info_hash) and peers (keyed by address and port) both start
 * with their key, so one search serves both. */
static size_t
lower_bound(const uint8_t *base, size_t n, size_t stride, const uint8_t *key, size_t klen,
	    bool *found)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(base + mid * stride, key, klen);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

/* Lower bound of hash in the shard; *found says whether it is there. */
static size_t
torrent_find(const struct trk_shard *sh, const uint8_t *hash, bool *found)
{
	return lower_bound((const uint8_t *)sh->t, sh->n, sizeof(*sh->t), hash, TRK_HASH_LEN,
			   found);
}

static int
torrent_insert(struct trk_shard *sh, size_t at, const uint8_t *hash)
{
	if (sh->n == sh->cap) {
		size_t cap = vec_grow_cap(sh->cap);
		struct trk_torrent *t = realloc(sh->t, cap * sizeof(*t));

		if (!t)
			return -ENOMEM;
		sh->bytes += (cap - sh->cap) * sizeof(*t);
		sh->t = t;
		sh->cap = cap;
	}
	memmove(&sh->t[at + 1], &sh->t[at], (sh->n - at) * sizeof(*sh->t));
	memset(&sh->t[at], 0, sizeof(*sh->t));
	memcpy(sh->t[at].hash, hash, TRK_HASH_LEN);
	sh->n++;
	return 0;
}

/* Gives a shrunk shard vector's tail back; a failed realloc keeps the old one. */
static void
torrents_shrink(struct trk_shard *sh)
{
	size_t cap = vec_shrink_cap(sh->n, sh->cap);
	struct trk_torrent *t;

	if (cap == sh->cap)
		return;
	if (cap == 0) {
		free(sh->t);
		t = NULL;
	} else if (!(t = realloc(sh->t, cap * sizeof(*t)))) {
		return;
	}
	sh->bytes -= (sh->cap - cap) * sizeof(*t);
	sh->t = t;
	sh->cap = cap;
}

/* Frees an empty-or-not torrent's vectors, updating the shard's totals. */
static void
torrent_release(struct trk_shard *sh, struct trk_torrent *t)
{
	for (unsigned f = 0; f < 2; f++) {
		sh->peers[f] -= t->pv[f].len;
		sh->seeders -= t->seeds[f];
		sh->bytes -= (size_t)t->pv[f].cap * rec_size[f];
		free(t->pv[f].rec);
		t->pv[f] = (struct trk_pvec){ 0 };
		t->seeds[f] = 0;
	}
}

static void
torrent_remove(struct trk_shard *sh, size_t at)
{
	torrent_release(sh, &sh->t[at]);
	memmove(&sh->t[at], &sh->t[at + 1], (sh->n - at - 1) * sizeof(*sh->t));
	sh->n--;
	torrents_shrink(sh);
}

/* Lower bound of the compact key in family f's vector. */
static size_t
peer_find(const struct trk_pvec *v, unsigned f, const uint8_t *key, bool *found)
{
	return lower_bound(v->rec, v->len, rec_size[f], key, key_size[f], found);
}

static int
peer_insert(struct trk_shard *sh, struct trk_pvec *v, unsigned f, size_t at, const uint8_t *key,
	    uint16_t meta)
{
	size_t rec = rec_size[f];

	if (v->len == v->cap) {
		size_t cap = vec_grow_cap(v->cap);
		uint8_t *p;

		if (cap > UINT32_MAX)
			return -ENOSPC;
		if (!(p = realloc(v->rec, cap * rec)))
			return -ENOMEM;
		sh->bytes += (cap - v->cap) * rec;
		v->rec = p;
		v->cap = (uint32_t)cap;
	}
	memmove(v->rec + (at + 1) * rec, v->rec + at * rec, (v->len - at) * rec);
	memcpy(v->rec + at * rec, key, key_size[f]);
	meta_set(v->rec + at * rec, f, meta);
	v->len++;
	sh->peers[f]++;
	return 0;
}

static void
pvec_shrink(struct trk_shard *sh, struct trk_pvec *v, unsigned f)
{
	size_t cap = vec_shrink_cap(v->len, v->cap), rec = rec_size[f];
	uint8_t *p;

	if (cap == v->cap)
		return;
	if (cap == 0) {
		free(v->rec);
		p = NULL;
	} else if (!(p = realloc(v->rec, cap * rec))) {
		return;
	}
	sh->bytes -= (v->cap - cap) * rec;
	v->rec = p;
	v->cap = (uint32_t)cap;
}

static void
peer_remove(struct trk_shard *sh, struct trk_pvec *v, unsigned f, size_t at)
{
	size_t rec = rec_size[f];

	memmove(v->rec + at * rec, v->rec + (at + 1) * rec, (v->len - at - 1) * rec);
	v->len--;
	sh->peers[f]--;
	pvec_shrink(sh, v, f);
}

static size_t
gcd(size_t a, size_t b)
{
	while (b) {
		size_t r = a % b;

		a = b;
		b = r;
	}
	return a;
}

/* Copies up to want eligible peers of v, in compact form, to out. Eligible:
 * not the record at index self, and not a seeder when leechers_only.
 *
 * The walk starts at a random index and steps by a random stride coprime to
 * the length, so it never repeats a record and samples the whole swarm
 * rather than one run of neighbouring addresses: walking neighbours would
 * hand out peers of one subnet together, and a seeder whose window fell in
 * a run of seeders would find no leecher at all. Repeated announces see
 * different peers. The walk visits at most want * PICK_SCAN_FACTOR +
 * PICK_SCAN_SLACK records, so the cost is O(want) whatever the swarm size,
 * at the price of a seeder in a swarm of very few leechers sometimes getting
 * fewer than exist (those leechers still find it: they get every kind of
 * peer, and BitTorrent connections work both ways). */
static size_t
pick(struct trk_shard *sh, const struct trk_pvec *v, unsigned f, size_t self, bool leechers_only,
     size_t eligible, size_t want, uint8_t *out)
{
	size_t len = v->len, rec = rec_size[f], klen = key_size[f], budget, i, stride, got = 0;
	uint64_t r;

	if (want > eligible)
		want = eligible;
	if (want == 0)
		return 0;
	budget = want * PICK_SCAN_FACTOR + PICK_SCAN_SLACK;
	if (budget > len)
		budget = len;
	r = rng_next(sh);
	i = (size_t)(r % len);
	stride = len == 1 ? 1 : 1 + (size_t)((r >> 32) % (len - 1));
	/* Coprime strides are dense (over 60% of them on average), so this
	 * loop ends after a handful of steps; stride 1 always qualifies. */
	while (gcd(stride, len) != 1)
		stride = stride + 1 == len ? 1 : stride + 1;
	for (size_t step = 0; step < budget && got < want; step++) {
		const uint8_t *p = v->rec + i * rec;

		if (i != self && !(leechers_only && (meta_get(p, f) & META_SEEDER))) {
			memcpy(out + got * klen, p, klen);
			got++;
		}
		i += stride;
		if (i >= len)
			i -= len;
	}
	return got;
}

/* How many of family f's peers a requester may be given, self excluded. */
static size_t
eligible_count(const struct trk_torrent *t, unsigned f, bool seeder, bool self_here)
{
	if (seeder)
		return t->pv[f].len - t->seeds[f]; /* leechers; self is a seeder */
	return t->pv[f].len - (self_here ? 1 : 0);
}

static void
torrent_counts(const struct trk_torrent *t, struct trk_counts *ret)
{
	ret->seeders = t->seeds[FAM4] + t->seeds[FAM6];
	ret->leechers = t->pv[FAM4].len + t->pv[FAM6].len - ret->seeders;
	ret->completed = t->completed;
}

static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* Family and compact key (ip, port in network order) of a peer. */
static unsigned
peer_key(const struct trk_peer *p, uint8_t key[REC6 - 2])
{
	unsigned f = memcmp(p->ip, v4mapped, sizeof(v4mapped)) == 0 ? FAM4 : FAM6;
	size_t iplen = f == FAM4 ? 4 : 16;

	memcpy(key, p->ip + 16 - iplen, iplen);
	key[iplen] = (uint8_t)(p->port >> 8);
	key[iplen + 1] = (uint8_t)(p->port & 0xff);
	return f;
}

struct trk_store *
trk_store_new(unsigned shard_bits, size_t max_torrents, size_t max_peers)
{
	struct trk_store *s;
	size_t nshards;

	if (shard_bits > 16) {
		errno = EINVAL;
		return NULL;
	}
	if (!(s = calloc(1, sizeof(*s))))
		return NULL;
	nshards = (size_t)1 << shard_bits;
	/* aligned_alloc keeps each shard on its own cache line. */
	if (!(s->shards = aligned_alloc(64, nshards * sizeof(*s->shards)))) {
		free(s);
		return NULL;
	}
	memset(s->shards, 0, nshards * sizeof(*s->shards));
	for (size_t i = 0; i < nshards; i++) {
		pthread_mutex_init(&s->shards[i].lock, NULL);
		s->shards[i].rng = splitmix64(i) | 1; /* xorshift needs a non-zero state */
	}
	s->shard_bits = shard_bits;
	s->max_torrents = max_torrents;
	/* Vector lengths are 32-bit; a bigger limit than that is no limit. */
	s->max_peers = max_peers > UINT32_MAX ? UINT32_MAX : (uint32_t)max_peers;
	atomic_init(&s->torrents, 0);
	return s;
}

void
trk_store_free(struct trk_store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < (size_t)1 << s->shard_bits; i++) {
		struct trk_shard *sh = &s->shards[i];

		for (size_t j = 0; j < sh->n; j++)
			torrent_release(sh, &sh->t[j]);
		free(sh->t);
		pthread_mutex_destroy(&sh->lock);
	}
	free(s->shards);
	free(s);
}

uint32_t
trk_store_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* +1 so that 0 never names a real moment and can mean "never". */
	return (uint32_t)ts.tv_sec + 1;
}

/* Records a's peer in t (found at index *at when found). Returns 0, leaving in
 * *at the peer's index or SIZE_MAX when it is not in the swarm afterwards,
 * or -ENOSPC / -ENOMEM with nothing changed. Shard lock held. */
static int
announce_record(struct trk_store *s, struct trk_shard *sh, struct trk_torrent *t, unsigned f,
		const uint8_t *key, const struct trk_announce *a, size_t *at)
{
	struct trk_pvec *v = &t->pv[f];
	bool found;
	size_t i = peer_find(v, f, key, &found);
	uint16_t meta, tick = now_tick(a->now);

	if (!found) {
		int err;

		*at = SIZE_MAX;
		if (a->event == TRK_EV_STOPPED)
			return 0;
		if ((size_t)t->pv[FAM4].len + t->pv[FAM6].len >= s->max_peers)
			return -ENOSPC;
		meta = tick | (a->seeder ? META_SEEDER : 0) |
		       (a->event == TRK_EV_COMPLETED ? META_COMPLETED : 0);
		if ((err = peer_insert(sh, v, f, i, key, meta)) < 0)
			return err;
		if (a->seeder) {
			t->seeds[f]++;
			sh->seeders++;
		}
		if (a->event == TRK_EV_COMPLETED) {
			t->completed++;
			t->completed_new++;
		}
		*at = i;
		return 0;
	}

	meta = meta_get(v->rec + i * rec_size[f], f);
	if (meta & META_SEEDER) {
		t->seeds[f]--;
		sh->seeders--;
	}
	if (a->event == TRK_EV_STOPPED) {
		peer_remove(sh, v, f, i);
		*at = SIZE_MAX;
		return 0;
	}
	if (a->seeder) {
		t->seeds[f]++;
		sh->seeders++;
	}
	/* The flag makes completed count peers, not announces: a client
	 * repeating event=completed, or sending it again as a seeder, counts once. */
	if (a->event == TRK_EV_COMPLETED && !(meta & META_COMPLETED)) {
		t->completed++;
		t->completed_new++;
		meta |= META_COMPLETED;
	}
	meta = (uint16_t)((meta & META_COMPLETED) | (a->seeder ? META_SEEDER : 0) | tick);
	meta_set(v->rec + i * rec_size[f], f, meta);
	*at = i;
	return 0;
}

int
trk_store_announce(struct trk_store *s, const struct trk_announce *a, uint8_t *out4, size_t cap4,
		   uint8_t *out6, size_t cap6, size_t *ret_n4, size_t *ret_n6,
		   struct trk_counts *ret)
{
	struct trk_shard *sh = shard_of(s, a->info_hash);
	uint8_t key[REC6 - 2];
	unsigned f = peer_key(&a->peer, key);
	size_t ti, self, got[2] = { 0, 0 };
	bool found, created = false;
	struct trk_torrent *t;
	int err = 0;

	pthread_mutex_lock(&sh->lock);
	ti = torrent_find(sh, a->info_hash, &found);
	if (!found) {
		/* A stop for a swarm we do not know changes nothing; creating a
		 * torrent for it would only let stops fill the store. */
		if (a->event == TRK_EV_STOPPED) {
			*ret = (struct trk_counts){ 0 };
			goto unlock;
		}
		if (s->max_peers == 0) {
			err = -ENOSPC;
			goto unlock;
		}
		/* Reserve before inserting so concurrent shards cannot overshoot
		 * the limit together; a racing reservation can at worst refuse
		 * a torrent while another thread's doomed one is in flight. */
		if (atomic_fetch_add(&s->torrents, 1) >= s->max_torrents) {
			err = -ENOSPC;
			goto unreserve;
		}
		if ((err = torrent_insert(sh, ti, a->info_hash)) < 0)
			goto unreserve;
		created = true;
	}
	t = &sh->t[ti];
	if ((err = announce_record(s, sh, t, f, key, a, &self)) < 0) {
		if (created) {
			torrent_remove(sh, ti);
			goto unreserve;
		}
		goto unlock;
	}

	/* A peer leaving wants no peers; the torrent itself stays, with its
	 * completed count, until trk_store_expire finds it empty. */
	if (a->event != TRK_EV_STOPPED) {
		uint8_t *out[2] = { out4, out6 };
		size_t cap[2] = { cap4, cap6 }, want = a->numwant;

		for (unsigned k = 0; k < 2; k++) {
			unsigned g = k == 0 ? f : f ^ 1;
			size_t w = want;

			if (!out[g] || w == 0)
				continue;
			if (w > cap[g] / key_size[g])
				w = cap[g] / key_size[g];
			got[g] = pick(sh, &t->pv[g], g, g == f ? self : SIZE_MAX, a->seeder,
				      eligible_count(t, g, a->seeder, g == f), w, out[g]);
			want -= got[g];
		}
	}
	torrent_counts(t, ret);
	goto unlock;

unreserve:
	atomic_fetch_sub(&s->torrents, 1);
unlock:
	pthread_mutex_unlock(&sh->lock);
	if (err == 0) {
		*ret_n4 = got[FAM4];
		*ret_n6 = got[FAM6];
	}
	return err;
}

int
trk_store_scrape(struct trk_store *s, const uint8_t info_hash[TRK_HASH_LEN], struct trk_counts *ret)
{
	struct trk_shard *sh = shard_of(s, info_hash);
	bool found;
	size_t i;

	pthread_mutex_lock(&sh->lock);
	i = torrent_find(sh, info_hash, &found);
	if (found)
		torrent_counts(&sh->t[i], ret);
	pthread_mutex_unlock(&sh->lock);
	return found ? 0 : -ENOENT;
}

/* Drops family f's peers older than max_age ticks, keeping the order.
 * Returns how many went. */
static size_t
pvec_expire(struct trk_shard *sh, struct trk_torrent *t, unsigned f, uint16_t tick,
	    uint32_t max_age)
{
	struct trk_pvec *v = &t->pv[f];
	size_t rec = rec_size[f], w = 0, dropped;

	for (size_t i = 0; i < v->len; i++) {
		uint8_t *r = v->rec + i * rec;
		uint16_t m = meta_get(r, f);

		if (((uint32_t)(tick - (m & META_TICK_MASK)) & META_TICK_MASK) > max_age) {
			if (m & META_SEEDER) {
				t->seeds[f]--;
				sh->seeders--;
			}
			continue;
		}
		if (w != i)
			memcpy(v->rec + w * rec, r, rec);
		w++;
	}
	dropped = v->len - w;
	v->len = (uint32_t)w;
	sh->peers[f] -= dropped;
	pvec_shrink(sh, v, f);
	return dropped;
}

size_t
trk_store_expire(struct trk_store *s, uint32_t now, uint32_t timeout)
{
	uint16_t tick = now_tick(now);
	/* Rounded so that no peer goes before timeout seconds of silence; with
	 * 4-second ticks one goes at the latest after timeout + 7 seconds. */
	uint64_t max_age = ((uint64_t)timeout + (1u << TICK_SHIFT) - 1) >> TICK_SHIFT;
	size_t dropped = 0;

	if (max_age > META_TICK_MASK)
		max_age = META_TICK_MASK;
	for (size_t i = 0; i < (size_t)1 << s->shard_bits; i++) {
		struct trk_shard *sh = &s->shards[i];
		size_t w = 0, gone;

		pthread_mutex_lock(&sh->lock);
		/* Compacting in place keeps one pass even when many torrents empty. */
		for (size_t j = 0; j < sh->n; j++) {
			struct trk_torrent *t = &sh->t[j];

			dropped += pvec_expire(sh, t, FAM4, tick, (uint32_t)max_age);
			dropped += pvec_expire(sh, t, FAM6, tick, (uint32_t)max_age);
			/* An empty torrent stays while it holds completions the
			 * catalog has not taken: they are counted exactly once. */
			if (t->pv[FAM4].len + t->pv[FAM6].len == 0 && !t->completed_new) {
				torrent_release(sh, t);
				continue;
			}
			if (w != j)
				sh->t[w] = *t;
			w++;
		}
		gone = sh->n - w;
		sh->n = w;
		torrents_shrink(sh);
		pthread_mutex_unlock(&sh->lock);
		if (gone)
			atomic_fetch_sub(&s->torrents, gone);
	}
	return dropped;
}

void
trk_store_foreach(struct trk_store *s,
		  void (*fn)(const uint8_t info_hash[TRK_HASH_LEN], const struct trk_counts *c,
			     size_t peers4, size_t peers6, void *arg),
		  void *arg)
{
	for (size_t i = 0; i < (size_t)1 << s->shard_bits; i++) {
		struct trk_shard *sh = &s->shards[i];

		pthread_mutex_lock(&sh->lock);
		for (size_t j = 0; j < sh->n; j++) {
			const struct trk_torrent *t = &sh->t[j];
			struct trk_counts c;

			torrent_counts(t, &c);
			fn(t->hash, &c, t->pv[FAM4].len, t->pv[FAM6].len, arg);
		}
		pthread_mutex_unlock(&sh->lock);
	}
}

void
trk_store_take_completed(struct trk_store *s,
			 void (*fn)(const uint8_t info_hash[TRK_HASH_LEN], uint32_t n, void *arg),
			 void *arg)
{
	for (size_t i = 0; i < (size_t)1 << s->shard_bits; i++) {
		struct trk_shard *sh = &s->shards[i];

		pthread_mutex_lock(&sh->lock);
		for (size_t j = 0; j < sh->n; j++) {
			struct trk_torrent *t = &sh->t[j];
			if (!t->completed_new)
				continue;
			fn(t->hash, t->completed_new, arg);
			t->completed_new = 0;
		}
		pthread_mutex_unlock(&sh->lock);
	}
}

void
trk_store_credit_completed(struct trk_store *s, const uint8_t info_hash[TRK_HASH_LEN], uint32_t n)
{
	struct trk_shard *sh = shard_of(s, info_hash);
	bool found;

	pthread_mutex_lock(&sh->lock);
	size_t i = torrent_find(sh, info_hash, &found);
	if (found)
		sh->t[i].completed_new += n;
	pthread_mutex_unlock(&sh->lock);
}

void
trk_store_stats(struct trk_store *s, struct trk_store_stats *ret)
{
	size_t nshards = (size_t)1 << s->shard_bits;
	struct trk_store_stats st = { 0 };

	st.bytes = sizeof(*s) + nshards * sizeof(*s->shards);
	for (size_t i = 0; i < nshards; i++) {
		struct trk_shard *sh = &s->shards[i];

		pthread_mutex_lock(&sh->lock);
		st.torrents += sh->n;
		st.peers4 += sh->peers[FAM4];
		st.peers6 += sh->peers[FAM6];
		st.seeders += sh->seeders;
		st.bytes += sh->bytes;
		pthread_mutex_unlock(&sh->lock);
	}
	st.leechers = st.peers4 + st.peers6 - st.seeders;
	*ret = st;
}
