// SPDX-License-Identifier: MIT
/* Unit tests for the cache-server's chunk store (cache-server/cache_store.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "../../cache-server/cache.h"

static struct cache_store *
mk(uint32_t window, size_t mem, size_t chan, size_t nchan)
{
	struct cache_store_opts o = {
		.window = window,
		.chunk_ms = 200,
		.chunk_max = 4096,
		.memory_max = mem,
		.channel_max = chan,
		.max_channels = nchan,
	};
	struct cache_store *st = cache_store_new(&o);
	assert_non_null(st);
	return st;
}

static int
put(struct cache_store *st, const char *ch, uint32_t seq, size_t len)
{
	char buf[4096];
	memset(buf, (int)(seq & 0xff), sizeof(buf));
	return cache_store_put(st, ch, seq, buf, len, CACHE_FROM_PUBLISH, 1000, NULL, NULL);
}

static void
test_put_get(void **state)
{
	struct cache_store *st = mk(16, 1 << 20, 1 << 20, 4);
	struct cache_chunk *c, *c2;
	struct cache_map_view v;
	uint32_t first;
	int64_t head;
	(void)state;

	assert_int_equal(cache_store_get(st, "a", 1, 0, &c), -ENOENT);
	assert_int_equal(
		cache_store_put(st, "a", 100, "hello", 5, CACHE_FROM_PUBLISH, 0, &first, &head), 0);
	/* The first chunk is the last slot of the first window. */
	assert_int_equal(first, 85);
	assert_int_equal(head, 100);
	assert_int_equal(cache_store_get(st, "a", 100, 0, &c), 0);
	assert_int_equal(c->len, 5);
	assert_memory_equal(c->data, "hello", 5);
	assert_int_equal(strlen(c->etag), CACHE_ETAG_LEN);
	assert_int_equal(cache_store_get(st, "a", 99, 0, &c2), -EAGAIN);  /* in window, missing */
	assert_int_equal(cache_store_get(st, "a", 101, 0, &c2), -EAGAIN); /* not yet */
	assert_int_equal(cache_store_get(st, "a", 84, 0, &c2), -ESTALE);  /* before the window */
	assert_int_equal(cache_store_put(st, "a", 100, "x", 1, CACHE_FROM_PUBLISH, 0, NULL, NULL),
			 -EEXIST);
	assert_int_equal(put(st, "a", 84, 10), -ESTALE);
	assert_int_equal(put(st, "a", 101 + 16, 10), -ERANGE); /* more than a window ahead */
	assert_int_equal(put(st, "a", 0, 0), -E2BIG);
	assert_int_equal(
		cache_store_put(st, "a", 101, "x", 5000, CACHE_FROM_PUBLISH, 0, NULL, NULL),
		-E2BIG);
	/* A newer chunk slides the window; the reader keeps its reference. */
	assert_int_equal(put(st, "a", 116, 10), 0);
	assert_int_equal(cache_store_get(st, "a", 100, 0, &c2), -ESTALE);
	assert_memory_equal(c->data, "hello", 5);
	cache_chunk_unref(c);
	assert_int_equal(cache_store_map(st, "a", 5, &v), 0);
	assert_true(v.started);
	assert_int_equal(v.map.first, 101);
	assert_int_equal(v.head, 116);
	assert_int_equal(bmap_count(&v.map), 1);
	cache_store_free(st);
}

static void
test_memory_caps(void **state)
{
	size_t cost = sizeof(struct cache_chunk) + 1000;
	/* Room for 10 chunks in all, 4 per channel. */
	struct cache_store *st = mk(64, 10 * cost, 4 * cost, 8);
	struct cache_store_stats ss;
	struct cache_map_view v;
	(void)state;

	for (uint32_t s = 0; s < 6; s++)
		assert_int_equal(put(st, "a", s, 1000), 0);
	/* The channel's own oldest chunks made room. */
	cache_store_map(st, "a", -1, &v);
	assert_int_equal(bmap_count(&v.map), 4);
	assert_false(bmap_has(&v.map, 0));
	assert_true(bmap_has(&v.map, 5));
	for (uint32_t s = 0; s < 4; s++)
		assert_int_equal(put(st, "b", s, 1000), 0);
	assert_int_equal(put(st, "c", 0, 1000), 0);
	assert_int_equal(put(st, "c", 1, 1000), 0);
	/* Full: c may only replace its own older chunks. */
	assert_int_equal(put(st, "c", 2, 1000), 0);
	cache_store_map(st, "c", -1, &v);
	assert_int_equal(bmap_count(&v.map), 2);
	assert_int_equal(put(st, "d", 0, 1000), -ENOSPC); /* nothing of its own to drop */
	cache_store_stats(st, &ss);
	assert_true(ss.bytes <= 10 * cost);
	assert_int_equal(ss.refused_memory, 1);
	cache_store_free(st);
}

static void
test_channel_limit_and_expiry(void **state)
{
	struct cache_store *st = mk(16, 1 << 20, 1 << 20, 2);
	struct cache_store_stats ss;
	(void)state;

	assert_int_equal(cache_store_put(st, "a", 1, "x", 1, CACHE_FROM_PUBLISH, 1000, NULL, NULL),
			 0);
	assert_int_equal(cache_store_ensure(st, "b", 1000), 0);
	assert_int_equal(cache_store_ensure(st, "b", 1000), 1);
	assert_int_equal(cache_store_ensure(st, "c", 1000), -EMFILE);
	assert_int_equal(put(st, "c", 1, 10), -EMFILE);
	/* Pulled chunks never create a channel. */
	assert_int_equal(cache_store_put(st, "z", 1, "x", 1, CACHE_FROM_PULL, 0, NULL, NULL),
			 -ENOENT);
	/* b is being pulled: it stays; a has been idle. */
	cache_store_set_pulling(st, "b", true);
	assert_int_equal(cache_store_expire(st, 1000 + 5000, 4000, NULL, NULL), 1);
	cache_store_stats(st, &ss);
	assert_int_equal(ss.channels, 1);
	assert_int_equal(ss.bytes, 0);
	cache_store_set_pulling(st, "b", false);
	assert_int_equal(cache_store_expire(st, 1000 + 5000, 4000, NULL, NULL), 1);
	cache_store_free(st);
}

static void
test_align(void **state)
{
	struct cache_store *st = mk(16, 1 << 20, 1 << 20, 2);
	struct cache_map_view v;
	(void)state;

	assert_int_equal(cache_store_ensure(st, "p", 0), 0);
	assert_int_equal(cache_store_map(st, "p", -1, &v), 0);
	assert_false(v.started);
	assert_int_equal(v.head, -1);
	assert_int_equal(cache_store_align(st, "p", 40), 0);
	cache_store_map(st, "p", -1, &v);
	assert_true(v.started);
	assert_int_equal(v.map.first, 25);
	assert_int_equal(cache_store_put(st, "p", 30, "x", 1, CACHE_FROM_PULL, 0, NULL, NULL), 0);
	assert_int_equal(cache_store_align(st, "p", 50), 0);
	cache_store_map(st, "p", -1, &v);
	assert_int_equal(v.map.first, 35);
	assert_int_equal(bmap_count(&v.map), 0); /* 30 expired */
	assert_int_equal(cache_store_align(st, "q", 50), -ENOENT);
	cache_store_free(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get),
		cmocka_unit_test(test_memory_caps),
		cmocka_unit_test(test_channel_limit_and_expiry),
		cmocka_unit_test(test_align),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
