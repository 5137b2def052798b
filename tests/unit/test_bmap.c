// SPDX-License-Identifier: MIT
/* Unit tests for the buffer map and its sliding window (common/bmap.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "bmap.h"

static void
test_init_bounds(void **state)
{
	struct bmap m;
	(void)state;

	assert_int_equal(bmap_init(&m, 0, 256), 0);
	assert_int_equal(m.first, 0);
	assert_int_equal(m.size, 256);
	assert_int_equal(bmap_count(&m), 0);
	assert_int_equal(bmap_last(&m), -1);
	assert_int_equal(bmap_init(&m, 0, 0), -EINVAL);
	assert_int_equal(bmap_init(&m, 0, 12), -EINVAL); /* not a multiple of 8 */
	assert_int_equal(bmap_init(&m, 0, BMAP_MAX_SIZE + 8), -EINVAL);
	assert_int_equal(bmap_init(&m, BMAP_SEQ_MAX + 1, 256), -EINVAL);
	assert_int_equal(bmap_init(&m, 7, 8), 0);
}

static void
test_set_has_clear(void **state)
{
	struct bmap m;
	(void)state;

	bmap_init(&m, 1000, 256);
	assert_int_equal(bmap_set(&m, 999), -ERANGE);
	assert_int_equal(bmap_set(&m, 1256), -ERANGE);
	assert_int_equal(bmap_set(&m, 1000), 0);
	assert_int_equal(bmap_set(&m, 1063), 0);
	assert_int_equal(bmap_set(&m, 1064), 0);
	assert_int_equal(bmap_set(&m, 1255), 0);
	assert_true(bmap_has(&m, 1000));
	assert_true(bmap_has(&m, 1255));
	assert_false(bmap_has(&m, 1001));
	assert_false(bmap_has(&m, 5));
	assert_int_equal(bmap_count(&m), 4);
	assert_int_equal(bmap_last(&m), 1255);
	assert_int_equal(bmap_clear(&m, 1255), 0);
	assert_int_equal(bmap_last(&m), 1064);
	assert_int_equal(bmap_count(&m), 3);
}

static void
test_leading(void **state)
{
	struct bmap m;
	(void)state;

	bmap_init(&m, 0, 256);
	assert_int_equal(bmap_leading(&m), 0);
	for (uint32_t s = 0; s < 48; s++)
		bmap_set(&m, s);
	assert_int_equal(bmap_leading(&m), 48); /* the seed's slide trigger */
	for (uint32_t s = 48; s < 256; s++)
		bmap_set(&m, s);
	assert_int_equal(bmap_leading(&m), 256);
	bmap_init(&m, 0, 72);
	for (uint32_t s = 0; s < 72; s++)
		bmap_set(&m, s);
	assert_int_equal(bmap_leading(&m), 72);
	assert_int_equal(bmap_count(&m), 72);
}

struct dropped {
	uint32_t seq[512];
	size_t n;
};

static void
record(uint32_t seq, void *arg)
{
	struct dropped *d = arg;
	d->seq[d->n++] = seq;
}

static void
test_slide(void **state)
{
	struct bmap m;
	struct dropped d = { .n = 0 };
	(void)state;

	bmap_init(&m, 0, 256);
	for (uint32_t s = 0; s < 256; s += 3)
		bmap_set(&m, s);
	/* Sliding backwards changes nothing. */
	assert_int_equal(bmap_slide(&m, 0, record, &d), 0);
	/* By 70: 0,3,...,69 leave (24 chunks), oldest first. */
	assert_int_equal(bmap_slide(&m, 70, record, &d), 24);
	assert_int_equal(d.n, 24);
	assert_int_equal(d.seq[0], 0);
	assert_int_equal(d.seq[23], 69);
	assert_int_equal(m.first, 70);
	for (uint32_t s = 70; s < 256; s++)
		assert_int_equal(bmap_has(&m, s), s % 3 == 0);
	for (uint32_t s = 256; s < 326; s++)
		assert_false(bmap_has(&m, s)); /* new slots start empty */
	assert_int_equal(bmap_count(&m), (255 - 72) / 3 + 1);
	/* A jump past the whole window empties it. */
	d.n = 0;
	int left = (int)bmap_count(&m);
	assert_int_equal(bmap_slide(&m, 10000, record, &d), left);
	assert_int_equal(bmap_count(&m), 0);
	assert_int_equal(m.first, 10000);
}

static void
test_slide_every_offset(void **state)
{
	(void)state;
	for (uint32_t d = 1; d < 300; d++) {
		struct bmap m;
		bmap_init(&m, 5, 256);
		for (uint32_t s = 5; s < 261; s++)
			if ((s * 7) % 5 != 0)
				bmap_set(&m, s);
		bmap_slide(&m, 5 + d, NULL, NULL);
		for (uint32_t s = 5 + d; s < 261 + d; s++)
			assert_int_equal(bmap_has(&m, s), s < 261 && (s * 7) % 5 != 0);
	}
}

static void
test_advance(void **state)
{
	struct bmap m;
	struct dropped d = { .n = 0 };
	(void)state;

	bmap_init(&m, 0, 256);
	bmap_set(&m, 0);
	bmap_set(&m, 1);
	assert_int_equal(bmap_advance(&m, 255, record, &d), 0); /* inside: nothing */
	assert_int_equal(m.first, 0);
	assert_int_equal(bmap_advance(&m, 256, record, &d), 1); /* one step: 0 expires */
	assert_int_equal(m.first, 1);
	assert_int_equal(d.seq[0], 0);
	assert_true(bmap_has(&m, 1));
	assert_true(bmap_in(&m, 256));
}

static void
test_encode_decode(void **state)
{
	struct bmap m, back;
	char buf[BMAP_B64_MAX];
	(void)state;

	bmap_init(&m, 4242, 256);
	bmap_set(&m, 4242);     /* byte 0, top bit */
	bmap_set(&m, 4242 + 9); /* byte 1, bit 6 */
	bmap_set(&m, 4242 + 255);
	assert_int_equal(bmap_encode(&m, buf, sizeof(buf)), 43);
	/* 0x80 0x40 0... 0x01: "gEA" starts the base64url text. */
	assert_memory_equal(buf, "gEA", 3);
	assert_int_equal(bmap_decode(buf, strlen(buf), 4242, 256, &back), 0);
	assert_memory_equal(&back, &m, sizeof(m));
	/* Wrong length, wrong size, garbage. */
	assert_int_equal(bmap_decode(buf, strlen(buf) - 1, 4242, 256, &back), -EINVAL);
	assert_int_equal(bmap_decode(buf, strlen(buf), 4242, 128, &back), -EINVAL);
	assert_int_equal(bmap_decode("!!!!", 4, 0, 8, &back), -EINVAL);
	assert_int_equal(bmap_decode("gA", 2, 0, 8, &back), 0);
	assert_true(bmap_has(&back, 0));
	assert_int_equal(bmap_count(&back), 1);
	assert_int_equal(bmap_encode(&m, buf, 10), -ENOBUFS);
}

static void
test_foreach(void **state)
{
	struct bmap m;
	struct dropped d = { .n = 0 };
	(void)state;

	bmap_init(&m, 60, 128);
	bmap_set(&m, 61);
	bmap_set(&m, 130);
	bmap_set(&m, 187);
	bmap_foreach(&m, record, &d);
	assert_int_equal(d.n, 3);
	assert_int_equal(d.seq[0], 61);
	assert_int_equal(d.seq[1], 130);
	assert_int_equal(d.seq[2], 187);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_bounds),
		cmocka_unit_test(test_set_has_clear),
		cmocka_unit_test(test_leading),
		cmocka_unit_test(test_slide),
		cmocka_unit_test(test_slide_every_offset),
		cmocka_unit_test(test_advance),
		cmocka_unit_test(test_encode_decode),
		cmocka_unit_test(test_foreach),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
