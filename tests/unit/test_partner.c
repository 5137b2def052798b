// SPDX-License-Identifier: MIT
/* Unit tests for common/partner: Limit, list sizes, PW, replacement, proximity choice, frames. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <string.h>

#include "partner.h"
#include "peerid.h"

static uint64_t
pid(unsigned country, unsigned nettype, unsigned region, unsigned city, unsigned area,
    unsigned node)
{
	struct peerid_fields f = { country, nettype, region, city, area, node };
	uint64_t id = 0;

	assert_int_equal(peerid_encode(&f, &id), 0);
	return id;
}

static void
test_limit(void **state)
{
	(void)state;
	/* Formula 2: BW / S − 1. */
	assert_int_equal(partner_limit(2000, 500), 3);
	assert_int_equal(partner_limit(2400, 500), 3); /* floor(4.8) − 1 */
	assert_int_equal(partner_limit(1000, 500), 1);
	assert_int_equal(partner_limit(999, 500), 0); /* cannot even re-send one stream */
	assert_int_equal(partner_limit(0, 500), 0);
	assert_int_equal(partner_limit(1000000, 1), PARTNER_MAX);
	assert_int_equal(partner_limit(1000, 0), PARTNER_MAX);
	assert_true(partner_accept(2, 3));
	assert_false(partner_accept(3, 3));
	assert_false(partner_accept(0, 0));
}

static void
test_targets(void **state)
{
	(void)state;
	/* 3 ln N and ln N, rounded up. */
	assert_int_equal(partner_members_target(1, 4), 4);
	assert_int_equal(partner_members_target(100, 4), 14);  /* 3 · 4.605 = 13.8 */
	assert_int_equal(partner_members_target(1000, 4), 21); /* 20.7 */
	assert_int_equal(partner_count_target(100, 10), 5);    /* 4.6 */
	assert_int_equal(partner_count_target(1000, 10), 7);   /* 6.9 */
	assert_int_equal(partner_count_target(1000, 3), 3);    /* Limit wins */
	assert_int_equal(partner_count_target(0, 3), 1);
	assert_int_equal(partner_count_target(2, 0), 0);
	/* e^2 exactly would be 2: no rounding up of float noise. */
	assert_int_equal(partner_count_target(7, 10), 2); /* ln 7 = 1.95 */
}

static void
test_weight(void **state)
{
	(void)state;
	/* Formula 3: ((1 − p)·up + p·down) / durTime. */
	assert_true(fabs(partner_weight(100, 50, 10000, 0.5) - 7.5) < 1e-9);
	assert_true(fabs(partner_weight(100, 50, 10000, 0.0) - 10.0) < 1e-9);
	assert_true(fabs(partner_weight(100, 50, 10000, 1.0) - 5.0) < 1e-9);
	assert_true(fabs(partner_weight(100, 50, 10000, 7.0) - 5.0) < 1e-9);   /* clamped */
	assert_true(fabs(partner_weight(100, 50, 10000, -1.0) - 10.0) < 1e-9); /* clamped */
	/* Under a second counts as one second. */
	assert_true(fabs(partner_weight(4, 4, 10, 0.5) - 4.0) < 1e-9);
	assert_true(fabs(partner_weight(0, 0, 5000, 0.5)) < 1e-9);
}

static void
test_replace_count(void **state)
{
	(void)state;
	assert_int_equal(partner_replace_count(10, 0.2), 2);
	assert_int_equal(partner_replace_count(4, 0.2), 0);
	assert_int_equal(partner_replace_count(5, 0.2), 1);
	assert_int_equal(partner_replace_count(10, 0.7), 4); /* k < 1/2 enforced */
	assert_int_equal(partner_replace_count(10, 0.5), 4);
	assert_int_equal(partner_replace_count(10, 0.0), 0);
	assert_int_equal(partner_replace_count(10, -1), 0);
}

static void
test_worst(void **state)
{
	(void)state;
	long long now = 100000;
	struct partner_score s[5] = {
		{ .up = 100, .down = 100, .since_ms = now - 10000 }, /* 10/s */
		{ .up = 0, .down = 10, .since_ms = now - 10000 },    /* 0.5/s */
		{ .up = 0, .down = 0, .since_ms = now - 10000, .keep = true },
		{ .up = 50, .down = 50, .since_ms = now - 10000 }, /* 5/s */
		{ .up = 5, .down = 5, .since_ms = now - 1000 },    /* 5/s, younger */
	};
	size_t out[5];

	assert_int_equal(partner_worst(s, 5, 0.5, now, 2, out), 2);
	assert_int_equal(out[0], 1);
	assert_int_equal(out[1], 4); /* tie with 3: the younger goes */
	assert_int_equal(partner_worst(s, 5, 0.5, now, 10, out), 4); /* keep is never picked */
	for (size_t i = 0; i < 4; i++)
		assert_int_not_equal(out[i], 2);
	assert_int_equal(partner_worst(s, 5, 0.5, now, 0, out), 0);
}

static void
test_choose(void **state)
{
	(void)state;
	uint64_t self = pid(10, 3, 5, 7, 4808, 1);
	struct partner_cand c[6] = {
		{ .pid = pid(11, 3, 5, 7, 4808, 2) },               /* 0 */
		{ .pid = pid(10, 3, 5, 7, 4808, 3) },               /* 5 */
		{ .pid = pid(10, 3, 5, 9, 4808, 4) },               /* 3 */
		{ .pid = pid(10, 3, 5, 7, 4808, 5), .skip = true }, /* 5, skipped */
		{ .pid = self },                                    /* self: never */
		{ .pid = pid(10, 3, 5, 7, 4808, 6) },               /* 5 */
	};
	size_t out[6];
	uint64_t rng = 42;
	int seen1 = 0, seen5 = 0;

	assert_int_equal(partner_choose(self, c, 6, 10, &rng, out), 4);
	/* The two closest first (either order), then proximity 3, then 0. */
	assert_true((out[0] == 1 && out[1] == 5) || (out[0] == 5 && out[1] == 1));
	assert_int_equal(out[2], 2);
	assert_int_equal(out[3], 0);
	assert_int_equal(partner_choose(self, c, 6, 1, &rng, out), 1);
	assert_true(out[0] == 1 || out[0] == 5);
	/* Ties are broken at random: both show up first over many draws. */
	for (int i = 0; i < 200; i++) {
		assert_int_equal(partner_choose(self, c, 6, 1, &rng, out), 1);
		seen1 += out[0] == 1;
		seen5 += out[0] == 5;
	}
	assert_true(seen1 > 20 && seen5 > 20);
	assert_int_equal(partner_choose(self, c, 6, 0, &rng, out), 0);
}

static void
test_trim(void **state)
{
	(void)state;
	uint64_t self = pid(10, 3, 5, 7, 4808, 1);
	struct partner_member m[4] = {
		{ pid(10, 3, 5, 7, 4808, 2), 100 }, /* 5 */
		{ pid(20, 3, 5, 7, 4808, 3), 500 }, /* 0, newer */
		{ pid(20, 3, 5, 7, 4808, 4), 200 }, /* 0, older */
		{ pid(10, 3, 6, 7, 4808, 5), 50 },  /* 2 */
	};
	size_t out[4];

	assert_int_equal(partner_trim(self, m, 4, 4, out), 0);
	assert_int_equal(partner_trim(self, m, 4, 2, out), 2);
	assert_int_equal(out[0], 2);
	assert_int_equal(out[1], 1);
	assert_int_equal(partner_trim(self, m, 4, 1, out), 3);
	assert_int_equal(out[2], 3);
}

static void
test_frames(void **state)
{
	(void)state;
	struct partner_frame f;
	char hdr[64];
	const char q[] = "Q 17 /v1/live/news/chunks/5\n";
	const char a[] = "A 4294967295 200\nabc";

	assert_int_equal(partner_frame_parse(q, strlen(q), &f), 0);
	assert_int_equal(f.kind, 'Q');
	assert_int_equal(f.id, 17);
	assert_int_equal(f.path_len, strlen("/v1/live/news/chunks/5"));
	assert_memory_equal(f.path, "/v1/live/news/chunks/5", f.path_len);
	assert_int_equal(partner_frame_parse(a, strlen(a), &f), 0);
	assert_int_equal(f.kind, 'A');
	assert_int_equal(f.id, 4294967295u);
	assert_int_equal(f.status, 200);
	assert_int_equal(f.body_len, 3);
	assert_memory_equal(f.body, "abc", 3);
	assert_int_equal(partner_frame_parse("A 1 404\n", 8, &f), 0);
	assert_int_equal(f.body_len, 0);

	static const char *const bad[] = {
		"",          "Q",         "Q 1 /x",     "Q 1 x\n",
		"Q 1 /x\ny", "Q 01 /x\n", "Q -1 /x\n",  "Q 1 / x\n",
		"X 1 /x\n",  "A 1 99\n",  "A 1 600\n",  "A 4294967296 200\n",
		"A 1 200",   "Q 1 \n",    "A  1 200\n", "Q 12345678901 /x\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(partner_frame_parse(bad[i], strlen(bad[i]), &f), -EINVAL);
	assert_int_equal(partner_frame_parse(NULL, 5, &f), -EINVAL);

	assert_int_equal(partner_frame_header('Q', 3, 0, "/p2p/hello", 10, hdr, sizeof(hdr)), 15);
	assert_string_equal(hdr, "Q 3 /p2p/hello\n");
	assert_int_equal(partner_frame_parse(hdr, strlen(hdr), &f), 0);
	assert_int_equal(partner_frame_header('A', 3, 200, NULL, 0, hdr, sizeof(hdr)), 8);
	assert_string_equal(hdr, "A 3 200\n");
	assert_int_equal(partner_frame_header('A', 3, 99, NULL, 0, hdr, sizeof(hdr)), -EINVAL);
	assert_int_equal(partner_frame_header('Q', 3, 0, "x", 1, hdr, sizeof(hdr)), -EINVAL);
	assert_int_equal(partner_frame_header('Q', 3, 0, "/a b", 4, hdr, sizeof(hdr)), -EINVAL);
	assert_int_equal(partner_frame_header('Q', 3, 0, "/abc", 4, hdr, 5), -ENOBUFS);
	assert_int_equal(partner_frame_header('Z', 3, 0, "/abc", 4, hdr, sizeof(hdr)), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limit),  cmocka_unit_test(test_targets),
		cmocka_unit_test(test_weight), cmocka_unit_test(test_replace_count),
		cmocka_unit_test(test_worst),  cmocka_unit_test(test_choose),
		cmocka_unit_test(test_trim),   cmocka_unit_test(test_frames),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
