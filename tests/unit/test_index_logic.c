// SPDX-License-Identifier: MIT
/* Unit tests for index-server logic: ViewNum, proximity ranges and ordering, ties, parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../index-server/idx.h"

static uint64_t
pid_of(unsigned country, unsigned nettype, unsigned region, unsigned city, unsigned area,
       unsigned node)
{
	struct peerid_fields f = { country, nettype, region, city, area, node };
	uint64_t id;
	assert_int_equal(peerid_encode(&f, &id), 0);
	return id;
}

/* ---- ViewNum (seed 001 formula 1) ---- */

static void
test_view_num(void **state)
{
	(void)state;
	/* N <= 1: nobody else, the minimum. */
	assert_int_equal(idx_view_num(0, 2, 4, 64), 4);
	assert_int_equal(idx_view_num(1, 2, 4, 64), 4);
	assert_int_equal(idx_view_num(-5, 2, 0, 64), 0);
	/* (c+1) * ln N rounded up. */
	assert_int_equal(idx_view_num(2, 2, 0, 64), 3);     /* 3 * 0.693 = 2.08 */
	assert_int_equal(idx_view_num(25, 2, 0, 64), 10);   /* 9.66 */
	assert_int_equal(idx_view_num(1000, 2, 0, 64), 21); /* 20.72 */
	assert_int_equal(idx_view_num(100000, 2, 0, 64), 35);
	assert_int_equal(idx_view_num(100000, 0, 0, 64), 12);
	assert_int_equal(idx_view_num(100000, 5, 0, 256), 70);
	/* Clamps. */
	assert_int_equal(idx_view_num(3, 2, 8, 64), 8);
	assert_int_equal(idx_view_num(1000000000LL, 10, 4, 64), 64);
	assert_int_equal(idx_view_num(1000000000LL, 100, 4, 256), 256);
	/* Grows with N, never shrinks. */
	unsigned prev = 0;
	for (long long n = 1; n < 2000000; n = n * 3 / 2 + 1) {
		unsigned v = idx_view_num(n, 2, 0, 256);
		assert_true(v >= prev);
		assert_true(v == (n > 1 ? (unsigned)ceil(3 * log((double)n)) : 0));
		prev = v;
	}
}

/* ---- proximity ranges ---- */

static void
test_prox_ranges(void **state)
{
	char lo[IDX_LEVELS][PEERID_HEX_LEN + 1], hi[IDX_LEVELS][PEERID_HEX_LEN + 1];
	(void)state;

	uint64_t me = pid_of(45, 1, 10, 3, 700, 9);
	assert_int_equal(idx_prox_ranges(me, lo, hi), 5);
	/* Every PeerID inside range k shares k fields and sorts between lo and hi. */
	uint64_t samples[] = {
		pid_of(45, 1, 10, 3, 700, 0), pid_of(45, 1, 10, 3, 700, 65535),
		pid_of(45, 1, 10, 3, 701, 1), pid_of(45, 1, 10, 3, 699, 1),
		pid_of(45, 1, 10, 4, 700, 1), pid_of(45, 1, 10, 2, 700, 1),
		pid_of(45, 1, 11, 3, 700, 1), pid_of(45, 1, 9, 63, 65535, 65535),
		pid_of(45, 2, 10, 3, 700, 1), pid_of(45, 0, 10, 3, 700, 1),
		pid_of(46, 1, 10, 3, 700, 1), pid_of(44, 15, 63, 63, 65535, 65535),
		pid_of(0, 1, 10, 3, 700, 1),  pid_of(255, 15, 63, 63, 65535, 65535),
	};
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		char hex[PEERID_HEX_LEN + 1];
		int prox = peerid_proximity(me, samples[i]);
		peerid_format(samples[i], hex, sizeof(hex));
		for (int k = 1; k <= 5; k++) {
			bool inside = strcmp(hex, lo[k - 1]) >= 0 && strcmp(hex, hi[k - 1]) <= 0;
			assert_true(inside == (prox >= k));
		}
	}
	/* The ranges nest. */
	for (int k = 1; k < 5; k++) {
		assert_true(strcmp(lo[k - 1], lo[k]) <= 0);
		assert_true(strcmp(hi[k], hi[k - 1]) <= 0);
	}
	assert_string_equal(lo[0], "2d000000000000");
	assert_string_equal(hi[0], "2dffffffffffff");
	/* Unknown fields end the chain: a 0 never matches. */
	assert_int_equal(idx_prox_ranges(pid_of(45, 1, 0, 3, 700, 9), lo, hi), 2);
	assert_int_equal(idx_prox_ranges(pid_of(0, 1, 10, 3, 700, 9), lo, hi), 0);
	assert_int_equal(idx_prox_ranges(pid_of(45, 1, 10, 3, 0, 9), lo, hi), 4);
	assert_int_equal(idx_prox_ranges(UINT64_MAX, lo, hi), 0);
}

/* ---- ordering ---- */

struct seq_rng {
	uint32_t x;
};

static uint32_t
xorshift(void *arg)
{
	struct seq_rng *r = arg;
	r->x ^= r->x << 13;
	r->x ^= r->x >> 17;
	r->x ^= r->x << 5;
	return r->x;
}

static void
test_order_closest_first(void **state)
{
	(void)state;
	uint64_t me = pid_of(45, 1, 10, 3, 700, 1);
	struct idx_member m[] = {
		{ .pid = pid_of(46, 1, 10, 3, 700, 2) }, /* 0 */
		{ .pid = pid_of(45, 1, 10, 3, 700, 3) }, /* 5 */
		{ .pid = me },                           /* self */
		{ .pid = pid_of(45, 2, 10, 3, 700, 4) }, /* 1 */
		{ .pid = pid_of(45, 1, 10, 4, 700, 5) }, /* 3 */
		{ .pid = pid_of(45, 1, 11, 3, 700, 6) }, /* 2 */
		{ .pid = pid_of(45, 1, 10, 3, 701, 7) }, /* 4 */
		{ .pid = pid_of(0, 0, 0, 0, 0, 8) },     /* 0: unknown */
	};
	struct seq_rng rng = { 12345 };
	size_t n = sizeof(m) / sizeof(m[0]);

	assert_int_equal(idx_order(me, m, n, xorshift, &rng), n - 1);
	int want[] = { 5, 4, 3, 2, 1, 0, 0, -1 };
	for (size_t i = 0; i < n; i++)
		assert_int_equal(m[i].prox, want[i]);
	assert_true(m[n - 1].pid == me);
	assert_int_equal(idx_order(me, m, 0, xorshift, &rng), 0);
}

/* Among equals the order is random: over many orderings each of four equal
 * peers comes first about a quarter of the time, and the closer peer is
 * always first. */
static void
test_order_ties_random(void **state)
{
	(void)state;
	uint64_t me = pid_of(45, 1, 10, 3, 700, 1);
	uint64_t eq[4] = { pid_of(45, 1, 10, 9, 1, 1), pid_of(45, 1, 10, 9, 2, 2),
			   pid_of(45, 1, 10, 8, 3, 3), pid_of(45, 1, 10, 7, 4, 4) };
	uint64_t best = pid_of(45, 1, 10, 3, 999, 5);
	unsigned first[4] = { 0 };
	struct seq_rng rng = { 987654321 };
	const int rounds = 4000;

	for (int r = 0; r < rounds; r++) {
		struct idx_member m[5] = { { .pid = eq[0] },
					   { .pid = eq[1] },
					   { .pid = best },
					   { .pid = eq[2] },
					   { .pid = eq[3] } };
		idx_order(me, m, 5, xorshift, &rng);
		assert_true(m[0].pid == best);
		for (int k = 0; k < 4; k++)
			if (m[1].pid == eq[k])
				first[k]++;
	}
	for (int k = 0; k < 4; k++) {
		assert_true(first[k] > rounds / 4 - rounds / 20);
		assert_true(first[k] < rounds / 4 + rounds / 20);
	}
}

/* ---- request bodies and stored info ---- */

static int
parse(const char *text, unsigned which, struct idx_req *in, const char **code)
{
	char err[256];
	json_t *o = json_loads(text, 0, NULL);
	int r;

	*code = NULL;
	if (!o)
		return -EBADMSG;
	r = idx_parse_body(o, which, in, code, err, sizeof(err));
	json_decref(o);
	if (r < 0)
		assert_non_null(*code);
	return r;
}

static void
test_parse_body(void **state)
{
	struct idx_req in;
	const char *code;
	(void)state;

	assert_int_equal(parse("{\"peer_id\":\"2D01282c02BC0009\",\"channel\":\"x\"}", IDX_F_PAIR,
			       &in, &code),
			 -EINVAL);
	assert_int_equal(parse("{\"peer_id\":\"2D01282c02BC00\",\"channel\":\"news.hd-1_x\"}",
			       IDX_F_PAIR, &in, &code),
			 0);
	assert_string_equal(in.pid_hex, "2d01282c02bc00");
	assert_string_equal(in.channel, "news.hd-1_x");
	assert_int_equal(parse("{\"peer_id\":\"2d01282c02bc00\",\"channel\":\"n\",\"listen_addr\":"
			       "\"[2001:DB8::1]:4000\",\"bandwidth_kbps\":1500,\"role\":"
			       "\"publisher\"}",
			       IDX_F_JOIN, &in, &code),
			 0);
	assert_string_equal(in.listen_addr, "[2001:db8::1]:4000");
	assert_int_equal(in.bandwidth_kbps, 1500);
	assert_int_equal(in.role, IDX_ROLE_PUBLISHER);
	/* listen_addr is not a heartbeat field. */
	assert_int_equal(parse("{\"peer_id\":\"2d01282c02bc00\",\"channel\":\"n\",\"listen_addr\":"
			       "\"1.2.3.4:5\"}",
			       IDX_F_PAIR, &in, &code),
			 -EINVAL);
	assert_string_equal(code, "unknown_field");
	static const char *const bad[] = {
		"{\"peer_id\":\"2d01282c02bc00\",\"channel\":\"n\"}", /* no listen_addr */
		"{\"peer_id\":\"2d01282c02bc00\",\"channel\":\"n\",\"listen_addr\":\"1.2.3.4\"}",
		"{\"peer_id\":\"2d01282c02bc00\",\"channel\":\"n\",\"listen_addr\":\"1.2.3.4:0\"}",
		"{\"peer_id\":\"2d01282c02bc00\",\"channel\":\"a "
		"b\",\"listen_addr\":\"1.2.3.4:1\"}",
		"{\"peer_id\":\"2d01282c02bc0g\",\"channel\":\"n\",\"listen_addr\":\"1.2.3.4:1\"}",
		"{\"peer_id\":\"2d01282c02bc00\",\"channel\":\"n\",\"listen_addr\":\"1.2.3.4:1\","
		"\"bandwidth_kbps\":100000001}",
		"{\"peer_id\":\"2d01282c02bc00\",\"channel\":\"n\",\"listen_addr\":\"1.2.3.4:1\","
		"\"role\":\"seed\"}",
		"{\"peer_id\":\"2d01282c02bc00\",\"channel\":\"n\",\"listen_addr\":\"1.2.3.4:1\","
		"\"role\":7}",
		"{\"peer_id\":null,\"channel\":\"n\",\"listen_addr\":\"1.2.3.4:1\"}",
		"{\"peer_id\":\"2d01282c02bc00\",\"channel\":\"n\\u0000x\",\"listen_addr\":\"1.2."
		"3.4:1\"}",
		"[]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_true(parse(bad[i], IDX_F_JOIN, &in, &code) < 0); /* jansson or we refuse */
	char ch[200];
	memset(ch, 'a', sizeof(ch));
	assert_true(idx_channel_ok(ch, 128));
	assert_false(idx_channel_ok(ch, 129));
	assert_false(idx_channel_ok(ch, 0));
}

static void
test_info_split(void **state)
{
	char addr[ADDR_STR_MAX];
	long long bw;
	int role;
	(void)state;

	const char *ok = "[2001:db8::1]:4000 1500 publisher";
	assert_int_equal(idx_info_split(ok, strlen(ok), addr, sizeof(addr), &bw, &role), 0);
	assert_string_equal(addr, "[2001:db8::1]:4000");
	assert_int_equal(bw, 1500);
	assert_int_equal(role, IDX_ROLE_PUBLISHER);
	static const char *const bad[] = { "",
					   "1.2.3.4:5",
					   "1.2.3.4:5 12",
					   "1.2.3.4:5 x viewer",
					   "1.2.3.4:5  viewer",
					   "1.2.3.4:5 1 viewers",
					   "1.2.3.4:5 99999999999999999999 viewer" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(
			idx_info_split(bad[i], strlen(bad[i]), addr, sizeof(addr), &bw, &role),
			-EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_view_num),
		cmocka_unit_test(test_prox_ranges),
		cmocka_unit_test(test_order_closest_first),
		cmocka_unit_test(test_order_ties_random),
		cmocka_unit_test(test_parse_body),
		cmocka_unit_test(test_info_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
