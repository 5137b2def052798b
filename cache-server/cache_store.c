// SPDX-License-Identifier: MIT
/* cache-server: the in-memory chunk store (channels, windows, memory caps). */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"

/* One live channel. map and slot[] are the window; slot[seq % size]
 * holds chunk seq when the map says so. */
struct cache_chan {
	struct cache_chan *next;
	char name[CACHE_CH_MAX + 1];
	pthread_mutex_t lock;
	bool started;
	bool pulling;
	struct bmap map;
	struct cache_chunk **slot;
	size_t bytes;
	long long last_put_ms;
	long long last_publish_ms; /* -1: never fed by a publisher */
	atomic_llong wanted_ms;
	atomic_ullong chunks_in, chunks_out, bytes_out;
};

struct cache_store {
	struct cache_store_opts o;
	pthread_rwlock_t lock;
	struct cache_chan **bucket;
	size_t nbucket; /* power of two */
	size_t nchan;
	atomic_size_t bytes;
	atomic_ullong in_publish, in_pull, out, bytes_out, refused_memory;
};

bool
cache_channel_ok(const char *ch)
{
	size_t len = ch ? strlen(ch) : 0;
	return len >= 1 && len <= CACHE_CH_MAX &&
	       strspn(ch, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
		       len;
}

void
cache_chunk_unref(struct cache_chunk *c)
{
	if (c && atomic_fetch_sub(&c->refs, 1) == 1)
		free(c);
}

/* Bytes a chunk of len counts against the caps. */
static size_t
cache_chunk_cost(size_t len)
{
	return sizeof(struct cache_chunk) + len;
}

struct cache_store *
cache_store_new(const struct cache_store_opts *o)
{
	struct cache_store *st = calloc(1, sizeof(*st));
	size_t n = 16;

	if (!st)
		return NULL;
	st->o = *o;
	while (n < 2 * o->max_channels && n < ((size_t)1 << 24))
		n <<= 1;
	st->bucket = calloc(n, sizeof(*st->bucket));
	if (!st->bucket) {
		free(st);
		return NULL;
	}
	st->nbucket = n;
	/* Writers first: chunk GETs hold the read lock all the time under
	 * load, and glibc's default would let them starve the rare writer
	 * (a new channel, the expiry tick on the event loop). No reader ever
	 * takes the lock twice, which this kind forbids. */
	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&st->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	return st;
}

static size_t
cache_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)h;
}

/* Store lock held (either mode). */
static struct cache_chan *
cache_find(struct cache_store *st, const char *name)
{
	struct cache_chan *c = st->bucket[cache_hash(name) & (st->nbucket - 1)];
	while (c && strcmp(c->name, name) != 0)
		c = c->next;
	return c;
}

static void
cache_chan_free(struct cache_store *st, struct cache_chan *c)
{
	for (uint32_t i = 0; c->slot && i < st->o.window; i++)
		cache_chunk_unref(c->slot[i]);
	atomic_fetch_sub(&st->bytes, c->bytes);
	free(c->slot);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void
cache_store_free(struct cache_store *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->nbucket; i++) {
		struct cache_chan *c = st->bucket[i], *next;
		for (; c; c = next) {
			next = c->next;
			cache_chan_free(st, c);
		}
	}
	free(st->bucket);
	pthread_rwlock_destroy(&st->lock);
	free(st);
}

/* Write lock held. */
static int
cache_create(struct cache_store *st, const char *name, long long now_ms, struct cache_chan **ret)
{
	struct cache_chan *c;
	size_t b;

	if (st->nchan >= st->o.max_channels)
		return -EMFILE;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->slot = calloc(st->o.window, sizeof(*c->slot));
	if (!c->slot) {
		free(c);
		return -ENOMEM;
	}
	snprintf(c->name, sizeof(c->name), "%s", name);
	pthread_mutex_init(&c->lock, NULL);
	bmap_init(&c->map, 0, st->o.window);
	c->last_put_ms = now_ms;
	c->last_publish_ms = -1;
	atomic_store(&c->wanted_ms, now_ms);
	b = cache_hash(name) & (st->nbucket - 1);
	c->next = st->bucket[b];
	st->bucket[b] = c;
	st->nchan++;
	*ret = c;
	return 0;
}

/* Channel lock held: the window drops seq. */
struct cache_drop {
	struct cache_store *st;
	struct cache_chan *c;
};

static void
cache_drop_cb(uint32_t seq, void *arg)
{
	struct cache_drop *d = arg;
	struct cache_chunk **s = &d->c->slot[seq % d->st->o.window];

	if (*s) {
		size_t cost = cache_chunk_cost((*s)->len);
		d->c->bytes -= cost;
		atomic_fetch_sub(&d->st->bytes, cost);
		cache_chunk_unref(*s);
		*s = NULL;
	}
}

/* Channel lock held: frees the oldest chunk older than seq. false when
 * there is none. */
static bool
cache_evict_oldest(struct cache_store *st, struct cache_chan *c, uint32_t seq)
{
	struct cache_drop d = { st, c };

	for (uint32_t s = c->map.first; s < seq && bmap_in(&c->map, s); s++) {
		if (bmap_has(&c->map, s)) {
			cache_drop_cb(s, &d);
			bmap_clear(&c->map, s);
			return true;
		}
	}
	return false;
}

/* Places a channel's first window so that seq is its last slot. */
static void
cache_place(struct cache_store *st, struct cache_chan *c, uint32_t seq)
{
	uint32_t first = seq >= st->o.window - 1 ? seq - (st->o.window - 1) : 0;
	if (first > BMAP_SEQ_MAX)
		first = BMAP_SEQ_MAX;
	bmap_init(&c->map, first, st->o.window);
	c->started = true;
}

/* Channel lock held. */
static int
cache_put_locked(struct cache_store *st, struct cache_chan *c, uint32_t seq,
		 struct cache_chunk *chunk, long long now_ms)
{
	struct cache_drop d = { st, c };
	size_t cost = cache_chunk_cost(chunk->len);

	if (!c->started)
		cache_place(st, c, seq);
	if (seq < c->map.first)
		return -ESTALE;
	if ((uint64_t)seq >= bmap_end(&c->map) + st->o.window ||
	    seq > BMAP_SEQ_MAX + st->o.window - 1)
		return -ERANGE;
	if (bmap_has(&c->map, seq))
		return -EEXIST;
	if (cost > st->o.channel_max)
		return -ENOSPC;
	/* Room inside the channel's own limit: its oldest chunks go first. */
	while (c->bytes + cost > st->o.channel_max)
		if (!cache_evict_oldest(st, c, seq))
			return -ENOSPC;
	/* The cache-wide cap: reserve, and make room from this channel's
	 * older chunks when over. Other channels are never touched from here
	 * (their lock is not ours to take). */
	for (;;) {
		size_t was = atomic_fetch_add(&st->bytes, cost);
		if (was + cost <= st->o.memory_max)
			break;
		atomic_fetch_sub(&st->bytes, cost);
		if (!cache_evict_oldest(st, c, seq)) {
			atomic_fetch_add(&st->refused_memory, 1);
			return -ENOSPC;
		}
	}
	bmap_advance(&c->map, seq, cache_drop_cb, &d);
	c->slot[seq % st->o.window] = chunk;
	bmap_set(&c->map, seq);
	c->bytes += cost;
	c->last_put_ms = now_ms;
	atomic_fetch_add(&c->chunks_in, 1);
	return 0;
}

int
cache_store_put(struct cache_store *st, const char *ch, uint32_t seq, const void *data, size_t len,
		enum cache_put_from from, long long now_ms, uint32_t *ret_first, int64_t *ret_head)
{
	struct cache_chunk *chunk;
	struct cache_chan *c;
	unsigned char h[8];
	int r;

	if (len == 0 || len > st->o.chunk_max)
		return -E2BIG;
	/* Copy and hash before any lock is taken. */
	chunk = malloc(sizeof(*chunk) + len);
	if (!chunk)
		return -ENOMEM;
	atomic_init(&chunk->refs, 1);
	chunk->seq = seq;
	chunk->len = (uint32_t)len;
	memcpy(chunk->data, data, len);
	crypto_generichash(h, sizeof(h), chunk->data, len, NULL, 0);
	chunk->etag[0] = '"';
	sodium_bin2hex(chunk->etag + 1, 17, h, sizeof(h));
	chunk->etag[17] = '"';
	chunk->etag[18] = '\0';

	pthread_rwlock_rdlock(&st->lock);
	c = cache_find(st, ch);
	if (!c) {
		pthread_rwlock_unlock(&st->lock);
		if (from == CACHE_FROM_PULL) {
			cache_chunk_unref(chunk);
			return -ENOENT;
		}
		pthread_rwlock_wrlock(&st->lock);
		c = cache_find(st, ch);
		if (!c && (r = cache_create(st, ch, now_ms, &c)) < 0) {
			pthread_rwlock_unlock(&st->lock);
			cache_chunk_unref(chunk);
			return r;
		}
	}
	pthread_mutex_lock(&c->lock);
	r = cache_put_locked(st, c, seq, chunk, now_ms);
	if (r == 0 && from == CACHE_FROM_PUBLISH)
		c->last_publish_ms = now_ms;
	if (ret_first)
		*ret_first = c->map.first;
	if (ret_head)
		*ret_head = bmap_last(&c->map);
	pthread_mutex_unlock(&c->lock);
	pthread_rwlock_unlock(&st->lock);
	if (r < 0)
		cache_chunk_unref(chunk);
	else
		atomic_fetch_add(from == CACHE_FROM_PULL ? &st->in_pull : &st->in_publish, 1);
	return r;
}

int
cache_store_get(struct cache_store *st, const char *ch, uint32_t seq, long long now_ms,
		struct cache_chunk **ret)
{
	struct cache_chan *c;
	struct cache_chunk *chunk = NULL;
	int r = 0;

	pthread_rwlock_rdlock(&st->lock);
	c = cache_find(st, ch);
	if (!c) {
		pthread_rwlock_unlock(&st->lock);
		return -ENOENT;
	}
	pthread_mutex_lock(&c->lock);
	if (!c->started || (uint64_t)seq >= bmap_end(&c->map))
		r = -EAGAIN;
	else if (seq < c->map.first)
		r = -ESTALE;
	else if (!bmap_has(&c->map, seq))
		r = -EAGAIN;
	else {
		chunk = c->slot[seq % st->o.window];
		atomic_fetch_add(&chunk->refs, 1);
	}
	pthread_mutex_unlock(&c->lock);
	/* Relaxed stores: a viewer's timestamp, not a synchronisation. */
	atomic_store_explicit(&c->wanted_ms, now_ms, memory_order_relaxed);
	if (chunk) {
		atomic_fetch_add_explicit(&c->chunks_out, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&c->bytes_out, chunk->len, memory_order_relaxed);
		atomic_fetch_add_explicit(&st->out, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&st->bytes_out, chunk->len, memory_order_relaxed);
	}
	pthread_rwlock_unlock(&st->lock);
	if (r == 0)
		*ret = chunk;
	return r;
}

int
cache_store_map(struct cache_store *st, const char *ch, long long now_ms,
		struct cache_map_view *ret)
{
	struct cache_chan *c;

	pthread_rwlock_rdlock(&st->lock);
	c = cache_find(st, ch);
	if (!c) {
		pthread_rwlock_unlock(&st->lock);
		return -ENOENT;
	}
	pthread_mutex_lock(&c->lock);
	ret->map = c->map;
	ret->started = c->started;
	ret->head = c->started ? bmap_last(&c->map) : -1;
	ret->pulling = c->pulling;
	ret->last_publish_ms = c->last_publish_ms;
	pthread_mutex_unlock(&c->lock);
	if (now_ms >= 0)
		atomic_store_explicit(&c->wanted_ms, now_ms, memory_order_relaxed);
	pthread_rwlock_unlock(&st->lock);
	return 0;
}

int
cache_store_ensure(struct cache_store *st, const char *ch, long long now_ms)
{
	struct cache_chan *c;
	int r;

	pthread_rwlock_wrlock(&st->lock);
	c = cache_find(st, ch);
	r = c ? 1 : cache_create(st, ch, now_ms, &c);
	pthread_rwlock_unlock(&st->lock);
	return r;
}

int
cache_store_align(struct cache_store *st, const char *ch, uint32_t seq)
{
	struct cache_chan *c;
	struct cache_drop d = { st, NULL };

	if (seq > BMAP_SEQ_MAX + st->o.window - 1)
		return -EINVAL;
	pthread_rwlock_rdlock(&st->lock);
	c = cache_find(st, ch);
	if (!c) {
		pthread_rwlock_unlock(&st->lock);
		return -ENOENT;
	}
	d.c = c;
	pthread_mutex_lock(&c->lock);
	if (!c->started)
		cache_place(st, c, seq);
	else
		bmap_advance(&c->map, seq, cache_drop_cb, &d);
	pthread_mutex_unlock(&c->lock);
	pthread_rwlock_unlock(&st->lock);
	return 0;
}

void
cache_store_set_pulling(struct cache_store *st, const char *ch, bool on)
{
	struct cache_chan *c;

	pthread_rwlock_rdlock(&st->lock);
	c = cache_find(st, ch);
	if (c) {
		pthread_mutex_lock(&c->lock);
		c->pulling = on;
		pthread_mutex_unlock(&c->lock);
	}
	pthread_rwlock_unlock(&st->lock);
}

long long
cache_store_wanted_ms(struct cache_store *st, const char *ch)
{
	struct cache_chan *c;
	long long v = -1;

	pthread_rwlock_rdlock(&st->lock);
	c = cache_find(st, ch);
	if (c)
		v = atomic_load(&c->wanted_ms);
	pthread_rwlock_unlock(&st->lock);
	return v;
}

size_t
cache_store_expire(struct cache_store *st, long long now_ms, long long idle_ms,
		   void (*gone)(const char *ch, void *arg), void *arg)
{
	size_t n = 0;

	pthread_rwlock_wrlock(&st->lock);
	for (size_t i = 0; i < st->nbucket; i++) {
		struct cache_chan **pp = &st->bucket[i];
		while (*pp) {
			struct cache_chan *c = *pp;
			if (!c->pulling && now_ms - c->last_put_ms > idle_ms) {
				*pp = c->next;
				if (gone)
					gone(c->name, arg);
				cache_chan_free(st, c);
				st->nchan--;
				n++;
				continue;
			}
			pp = &c->next;
		}
	}
	pthread_rwlock_unlock(&st->lock);
	return n;
}

void
cache_store_foreach(struct cache_store *st, void (*fn)(const struct cache_chan_info *i, void *arg),
		    void *arg)
{
	struct cache_chan_info info;

	pthread_rwlock_rdlock(&st->lock);
	for (size_t i = 0; i < st->nbucket; i++) {
		for (struct cache_chan *c = st->bucket[i]; c; c = c->next) {
			memset(&info, 0, sizeof(info));
			snprintf(info.name, sizeof(info.name), "%s", c->name);
			pthread_mutex_lock(&c->lock);
			info.first = c->map.first;
			info.size = c->map.size;
			info.held = bmap_count(&c->map);
			info.head = c->started ? bmap_last(&c->map) : -1;
			info.started = c->started;
			info.pulling = c->pulling;
			info.bytes = c->bytes;
			info.last_put_ms = c->last_put_ms;
			pthread_mutex_unlock(&c->lock);
			info.chunks_in = atomic_load(&c->chunks_in);
			info.chunks_out = atomic_load(&c->chunks_out);
			info.bytes_out = atomic_load(&c->bytes_out);
			fn(&info, arg);
		}
	}
	pthread_rwlock_unlock(&st->lock);
}

void
cache_store_stats(struct cache_store *st, struct cache_store_stats *ret)
{
	pthread_rwlock_rdlock(&st->lock);
	ret->channels = st->nchan;
	pthread_rwlock_unlock(&st->lock);
	ret->bytes = atomic_load(&st->bytes);
	ret->chunks_in_publish = atomic_load(&st->in_publish);
	ret->chunks_in_pull = atomic_load(&st->in_pull);
	ret->chunks_out = atomic_load(&st->out);
	ret->bytes_out = atomic_load(&st->bytes_out);
	ret->refused_memory = atomic_load(&st->refused_memory);
}
