// SPDX-License-Identifier: MIT
/* Unit tests for chunk scheduling (common/sched.c): urgent zone, rarest first, formulas 4-5. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "schedule.h"

static void
fill(struct bmap *m, uint32_t from, uint32_t to)
{
	for (uint32_t s = from; s < to; s++)
		bmap_set(m, s);
}

/* Formula 5 row by row, with L = 2, H = 16. */
static void
test_next_count(void **state)
{
	(void)state;
	assert_int_equal(sched_next_count(0, 0, 2, 16), 2);  /* first round: L */
	assert_int_equal(sched_next_count(4, 4, 2, 16), 8);  /* all done: double */
	assert_int_equal(sched_next_count(8, 8, 2, 16), 16); /* capped at H */
	assert_int_equal(sched_next_count(16, 16, 2, 16), 16);
	assert_int_equal(sched_next_count(10, 8, 2, 16), 6); /* F - (R - F) */
	assert_int_equal(sched_next_count(10, 5, 2, 16), 2); /* F = R/2: max(L, 0) */
	assert_int_equal(sched_next_count(8, 5, 2, 16), 2);  /* max(L, 2) */
	assert_int_equal(sched_next_count(10, 4, 2, 16), 0); /* under half: rest */
	assert_int_equal(sched_next_count(10, 0, 2, 16), 0);
	assert_int_equal(sched_next_count(3, 9, 2, 16), 6);   /* F > R is read as F = R */
	assert_int_equal(sched_next_count(0, 0, 20, 16), 16); /* L > H: H wins */
}

/* Formula 4: H = ceil(k * N / M). */
static void
test_upper(void **state)
{
	(void)state;
	assert_int_equal(sched_upper(100, 4, 200), 50);
	assert_int_equal(sched_upper(10, 3, 150), 5);
	assert_int_equal(sched_upper(0, 3, 200), 1);
	assert_int_equal(sched_upper(7, 0, 100), 7);
	assert_int_equal(sched_urgent_len(300, 0), 100);
	assert_int_equal(sched_urgent_len(10, 20), 0);
}

/* The urgent zone goes first and in order, whatever the rarity. */
static void
test_urgent_first(void **state)
{
	struct bmap have, a, b;
	struct sched_src src[2];
	struct sched_pick out[64];
	uint64_t rng = 12345;
	(void)state;

	bmap_init(&have, 0, 64);
	bmap_init(&a, 0, 64);
	bmap_init(&b, 0, 64);
	fill(&a, 0, 64);
	fill(&b, 0, 64);
	bmap_clear(&b, 40); /* 40 is rare, but outside the urgent zone */
	src[0] = (struct sched_src){ .map = &a, .quota = 10 };
	src[1] = (struct sched_src){ .map = &b, .quota = 2 };
	struct sched_in in = { .skip = &have, .play = 10, .urgent = 5, .rng = &rng };
	size_t n = sched_plan(&in, src, 2, out, 64);
	assert_int_equal(n, 12);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(out[i].seq, 10 + i);
	/* Then rarest: 40 has one holder, a. */
	assert_int_equal(out[5].seq, 40);
	assert_int_equal(out[5].src, 0);
	assert_int_equal(src[0].assigned, 10);
	assert_int_equal(src[1].assigned, 2);
	/* The part before play (0..9) comes after the normal zone. */
	for (size_t i = 0; i < n; i++)
		assert_true(out[i].seq >= 10);
}

/* Outside the urgent zone, chunks with fewer holders come first; the old
 * part (before play) comes last. */
static void
test_rarest_first(void **state)
{
	struct bmap have, m[3];
	struct sched_src src[3];
	struct sched_pick out[8];
	uint64_t rng = 99;
	(void)state;

	bmap_init(&have, 100, 64);
	fill(&have, 100, 164);
	bmap_clear(&have, 101); /* before play */
	bmap_clear(&have, 130); /* three holders */
	bmap_clear(&have, 140); /* one holder */
	bmap_clear(&have, 150); /* two holders */
	for (int i = 0; i < 3; i++) {
		bmap_init(&m[i], 100, 64);
		bmap_set(&m[i], 101);
		bmap_set(&m[i], 130);
		src[i] = (struct sched_src){ .map = &m[i], .quota = 10 };
	}
	bmap_set(&m[2], 140);
	bmap_set(&m[0], 150);
	bmap_set(&m[1], 150);
	struct sched_in in = { .skip = &have, .play = 120, .urgent = 0, .rng = &rng };
	size_t n = sched_plan(&in, src, 3, out, 8);
	assert_int_equal(n, 4);
	assert_int_equal(out[0].seq, 140);
	assert_int_equal(out[0].src, 2);
	assert_int_equal(out[1].seq, 150);
	assert_true(out[1].src == 0 || out[1].src == 1);
	assert_int_equal(out[2].seq, 130);
	assert_int_equal(out[3].seq, 101);
}

/* Equal rarity: the order is random (both orders show up over seeds), and
 * holders with equal quota share the work. */
static void
test_random_among_equals(void **state)
{
	struct bmap have, a, b;
	struct sched_src src[2];
	struct sched_pick out[2];
	int first_is_10 = 0, src0 = 0;
	(void)state;

	bmap_init(&have, 0, 32);
	bmap_init(&a, 0, 32);
	bmap_init(&b, 0, 32);
	bmap_set(&a, 10);
	bmap_set(&a, 20);
	bmap_set(&b, 10);
	bmap_set(&b, 20);
	for (uint64_t seed = 1; seed <= 200; seed++) {
		uint64_t rng = seed * 2654435761u;
		src[0] = (struct sched_src){ .map = &a, .quota = 1 };
		src[1] = (struct sched_src){ .map = &b, .quota = 1 };
		struct sched_in in = { .skip = &have, .play = 0, .urgent = 0, .rng = &rng };
		assert_int_equal(sched_plan(&in, src, 2, out, 2), 2);
		assert_int_not_equal(out[0].src, out[1].src); /* quota 1 each */
		first_is_10 += out[0].seq == 10;
		src0 += out[0].src == 0;
	}
	assert_true(first_is_10 > 40 && first_is_10 < 160);
	assert_true(src0 > 40 && src0 < 160);
}

/* Quota, skip (held or in flight), unknown maps and the cap are honoured;
 * a failed source is avoided when another holder has room. */
static void
test_limits_and_avoid(void **state)
{
	struct bmap have, a, b;
	struct sched_src src[3];
	struct sched_pick out[64];
	uint8_t avoid[64];
	uint64_t rng = 7;
	(void)state;

	bmap_init(&have, 0, 64);
	bmap_init(&a, 0, 64);
	bmap_init(&b, 0, 64);
	fill(&a, 0, 64);
	fill(&b, 0, 64);
	fill(&have, 0, 60); /* only 60..63 wanted */
	src[0] = (struct sched_src){ .map = &a, .quota = 1 };
	src[1] = (struct sched_src){ .map = &b, .quota = 10 };
	src[2] = (struct sched_src){ .map = NULL, .quota = 10 };
	memset(avoid, SCHED_NO_SRC, sizeof(avoid));
	avoid[61] = 1; /* b failed 61 */
	struct sched_in in = {
		.skip = &have, .play = 0, .urgent = 64, .avoid = avoid, .rng = &rng
	};
	size_t n = sched_plan(&in, src, 3, out, 64);
	assert_int_equal(n, 4);
	assert_int_equal(src[0].assigned, 1);
	assert_int_equal(src[1].assigned, 3);
	assert_int_equal(src[2].assigned, 0);
	for (size_t i = 0; i < n; i++) {
		assert_true(out[i].seq >= 60);
		if (out[i].seq == 61)
			assert_int_equal(out[i].src, 0);
	}
	/* The avoided source still gets the chunk when nobody else can. */
	avoid[61] = 1;
	src[0].quota = 0;
	n = sched_plan(&in, src, 3, out, 64);
	assert_int_equal(n, 4);
	/* The cap. */
	src[0].quota = 10;
	assert_int_equal(sched_plan(&in, src, 3, out, 2), 2);
	/* Nothing to do without quota. */
	src[0].quota = src[1].quota = 0;
	assert_int_equal(sched_plan(&in, src, 3, out, 64), 0);
}

/* Sources whose windows differ from ours: only the overlap counts. */
static void
test_other_windows(void **state)
{
	struct bmap have, a;
	struct sched_src src[1];
	struct sched_pick out[64];
	uint64_t rng = 5;
	(void)state;

	bmap_init(&have, 100, 32);
	bmap_init(&a, 80, 64);
	fill(&a, 80, 144);
	src[0] = (struct sched_src){ .map = &a, .quota = 100 };
	struct sched_in in = { .skip = &have, .play = 100, .urgent = 10, .rng = &rng };
	size_t n = sched_plan(&in, src, 1, out, 64);
	assert_int_equal(n, 32);
	for (size_t i = 0; i < n; i++)
		assert_true(out[i].seq >= 100 && out[i].seq < 132);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_next_count),          cmocka_unit_test(test_upper),
		cmocka_unit_test(test_urgent_first),        cmocka_unit_test(test_rarest_first),
		cmocka_unit_test(test_random_among_equals), cmocka_unit_test(test_limits_and_avoid),
		cmocka_unit_test(test_other_windows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
