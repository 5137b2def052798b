// SPDX-License-Identifier: MIT
/* Unit tests for common/peerid: packing, hex form, proximity, country table. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "peerid.h"

#define SENTINEL UINT64_C(0x5a5a5a5a5a5a5a5a)

static const struct peerid_fields fields_max = {
	.country = PEERID_COUNTRY_MAX,
	.nettype = PEERID_NETTYPE_MAX,
	.region = PEERID_REGION_MAX,
	.city = PEERID_CITY_MAX,
	.area = PEERID_AREA_MAX,
	.node = PEERID_NODE_MAX,
};

static uint64_t
make(unsigned country, unsigned nettype, unsigned region, unsigned city, unsigned area,
     unsigned node)
{
	struct peerid_fields f = { country, nettype, region, city, area, node };
	uint64_t id = SENTINEL;

	assert_int_equal(peerid_encode(&f, &id), 0);
	return id;
}

static void
test_encode_layout(void **state)
{
	char buf[PEERID_HEX_LEN + 1];

	(void)state;
	/* Each field alone lands at its documented bit position. */
	assert_true(make(1, 0, 0, 0, 0, 0) == UINT64_C(1) << 48);
	assert_true(make(0, 1, 0, 0, 0, 0) == UINT64_C(1) << 44);
	assert_true(make(0, 0, 1, 0, 0, 0) == UINT64_C(1) << 38);
	assert_true(make(0, 0, 0, 1, 0, 0) == UINT64_C(1) << 32);
	assert_true(make(0, 0, 0, 0, 1, 0) == UINT64_C(1) << 16);
	assert_true(make(0, 0, 0, 0, 0, 1) == UINT64_C(1));
	assert_true(make(0, 0, 0, 0, 0, 0) == 0);

	/* CN, nettype 3, region 3, city 1, ASN 4808, node 0xabcd: worked by hand. */
	assert_int_equal(peerid_format(make(48, 3, 3, 1, 4808, 0xabcd), buf, sizeof(buf)), 0);
	assert_string_equal(buf, "3030c112c8abcd");
}

static void
test_encode_max_and_round_trip(void **state)
{
	struct peerid_fields f;
	uint64_t id = SENTINEL;

	(void)state;
	assert_int_equal(peerid_encode(&fields_max, &id), 0);
	assert_true(id == PEERID_MAX);
	assert_int_equal(peerid_decode(id, &f), 0);
	assert_memory_equal(&f, &fields_max, sizeof(f));

	const struct peerid_fields samples[] = {
		{ 0, 0, 0, 0, 0, 0 },       { 48, 3, 3, 1, 4808, 0xabcd },
		{ 1, 15, 63, 0, 65535, 0 }, { 249, 7, 17, 42, 1, 65535 },
		{ 255, 0, 1, 63, 0, 1 },
	};
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		assert_int_equal(peerid_encode(&samples[i], &id), 0);
		assert_true(id <= PEERID_MAX);
		memset(&f, 0xff, sizeof(f));
		assert_int_equal(peerid_decode(id, &f), 0);
		assert_memory_equal(&f, &samples[i], sizeof(f));
	}
}

static void
test_encode_range(void **state)
{
	(void)state;
	for (int field = 0; field < 6; field++) {
		struct peerid_fields f = fields_max;
		uint64_t id = SENTINEL;
		unsigned *p[] = { &f.country, &f.nettype, &f.region, &f.city, &f.area, &f.node };

		(*p[field])++;
		assert_int_equal(peerid_encode(&f, &id), -ERANGE);
		assert_true(id == SENTINEL);
		*p[field] = UINT_MAX;
		assert_int_equal(peerid_encode(&f, &id), -ERANGE);
		assert_true(id == SENTINEL);
	}
}

static void
test_decode_range(void **state)
{
	struct peerid_fields f, before;

	(void)state;
	memset(&f, 0x77, sizeof(f));
	before = f;
	assert_int_equal(peerid_decode(PEERID_MAX + 1, &f), -ERANGE);
	assert_int_equal(peerid_decode(UINT64_MAX, &f), -ERANGE);
	assert_memory_equal(&f, &before, sizeof(f));
	assert_int_equal(peerid_decode(PEERID_MAX, &f), 0);
}

static void
test_format(void **state)
{
	char buf[32];

	(void)state;
	assert_int_equal(peerid_format(0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "00000000000000");
	assert_int_equal(peerid_format(PEERID_MAX, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "ffffffffffffff");
	assert_int_equal(peerid_format(UINT64_C(0x0123456789abcd), buf, sizeof(buf)), 0);
	assert_string_equal(buf, "0123456789abcd");

	/* Exactly 15 bytes is enough and nothing past them is touched. */
	memset(buf, 'X', sizeof(buf));
	assert_int_equal(peerid_format(1, buf, PEERID_HEX_LEN + 1), 0);
	assert_string_equal(buf, "00000000000001");
	assert_int_equal(buf[PEERID_HEX_LEN + 1], 'X');

	memset(buf, 'X', sizeof(buf));
	assert_int_equal(peerid_format(1, buf, PEERID_HEX_LEN), -ENOBUFS);
	assert_int_equal(peerid_format(1, buf, 0), -ENOBUFS);
	assert_int_equal(buf[0], 'X');
	assert_int_equal(peerid_format(PEERID_MAX + 1, buf, sizeof(buf)), -ERANGE);
	assert_int_equal(peerid_format(UINT64_MAX, buf, sizeof(buf)), -ERANGE);
	assert_int_equal(buf[0], 'X');
}

static void
test_parse(void **state)
{
	uint64_t id;

	(void)state;
	assert_int_equal(peerid_parse("3030c112c8abcd", 14, &id), 0);
	assert_true(id == UINT64_C(0x3030c112c8abcd));
	assert_int_equal(peerid_parse("3030C112C8ABCD", 14, &id), 0);
	assert_true(id == UINT64_C(0x3030c112c8abcd));
	assert_int_equal(peerid_parse("ffffffffffffff", 14, &id), 0);
	assert_true(id == PEERID_MAX);
	assert_int_equal(peerid_parse("00000000000000", 14, &id), 0);
	assert_true(id == 0);
	/* Length-delimited: trailing bytes beyond len are not looked at. */
	assert_int_equal(peerid_parse("0123456789abcdXYZ", 14, &id), 0);
	assert_true(id == UINT64_C(0x0123456789abcd));
}

static void
test_parse_malformed(void **state)
{
	static const struct {
		const char *s;
		size_t len;
	} bad[] = {
		{ "", 0 },
		{ "0123456789abc", 13 },
		{ "0123456789abcde", 15 },
		{ "0123456789abcd0", 15 },
		{ "0123456789abcg", 14 },
		{ "0123456789abc ", 14 },
		{ " 123456789abcd", 14 },
		{ "0x23456789abcd", 14 },
		{ "-123456789abcd", 14 },
		{ "+123456789abcd", 14 },
		{ "0123456\0"
		  "89abcd",
		  14 },
		{ "0123456789abc\xff", 14 },
		{ "0123456789abc:", 14 },
		{ "0123456789abc@", 14 },
		{ "0123456789abc`", 14 },
		{ "0123456789abcG", 14 },
		{ "0123456789abc/", 14 },
		{ "ffffffffffffffff", 16 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t id = SENTINEL;

		assert_int_equal(peerid_parse(bad[i].s, bad[i].len, &id), -EINVAL);
		assert_true(id == SENTINEL);
	}
	uint64_t id = SENTINEL;

	assert_int_equal(peerid_parse(NULL, 14, &id), -EINVAL);
	assert_int_equal(peerid_parse(NULL, 0, &id), -EINVAL);
	assert_true(id == SENTINEL);
}

static void
test_format_parse_round_trip(void **state)
{
	uint64_t x = UINT64_C(0x9e3779b97f4a7c15);

	(void)state;
	for (int i = 0; i < 10000; i++) {
		char buf[PEERID_HEX_LEN + 1];
		uint64_t id;

		/* xorshift: a spread of values without a random seed. */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		assert_int_equal(peerid_format(x & PEERID_MAX, buf, sizeof(buf)), 0);
		assert_int_equal(strlen(buf), PEERID_HEX_LEN);
		assert_int_equal(peerid_parse(buf, strlen(buf), &id), 0);
		assert_true(id == (x & PEERID_MAX));
	}
}

static void
test_proximity(void **state)
{
	uint64_t base = make(48, 3, 5, 7, 4808, 1);

	(void)state;
	assert_int_equal(peerid_proximity(base, base), 5);
	assert_int_equal(peerid_proximity(base, make(48, 3, 5, 7, 4808, 2)), 5);
	assert_int_equal(peerid_proximity(base, make(48, 3, 5, 7, 4809, 1)), 4);
	assert_int_equal(peerid_proximity(base, make(48, 3, 5, 8, 4808, 1)), 3);
	assert_int_equal(peerid_proximity(base, make(48, 3, 6, 7, 4808, 1)), 2);
	assert_int_equal(peerid_proximity(base, make(48, 4, 5, 7, 4808, 1)), 1);
	assert_int_equal(peerid_proximity(base, make(49, 3, 5, 7, 4808, 1)), 0);

	/* Hierarchical: a coarse mismatch hides equal finer fields. */
	assert_int_equal(peerid_proximity(base, make(48, 3, 6, 7, 4808, 1)), 2);
	assert_int_equal(peerid_proximity(base, make(233, 3, 5, 7, 4808, 1)), 0);

	/* Symmetric. */
	assert_int_equal(peerid_proximity(make(48, 3, 5, 8, 4808, 1), base), 3);
}

static void
test_proximity_unknown(void **state)
{
	(void)state;
	/* Unknown is never close, not even to itself. */
	assert_int_equal(peerid_proximity(0, 0), 0);
	assert_int_equal(peerid_proximity(make(0, 3, 5, 7, 9, 1), make(0, 3, 5, 7, 9, 1)), 0);
	assert_int_equal(peerid_proximity(make(48, 0, 5, 7, 9, 1), make(48, 0, 5, 7, 9, 1)), 1);
	assert_int_equal(peerid_proximity(make(48, 3, 0, 7, 9, 1), make(48, 3, 0, 7, 9, 1)), 2);
	assert_int_equal(peerid_proximity(make(48, 3, 5, 0, 9, 1), make(48, 3, 5, 0, 9, 1)), 3);
	assert_int_equal(peerid_proximity(make(48, 3, 5, 7, 0, 1), make(48, 3, 5, 7, 0, 1)), 4);
	/* One side unknown is enough. */
	assert_int_equal(peerid_proximity(make(48, 3, 0, 7, 9, 1), make(48, 3, 5, 7, 9, 1)), 2);
	assert_int_equal(peerid_proximity(make(48, 3, 5, 7, 9, 1), make(48, 3, 0, 7, 9, 1)), 2);
	/* "other" nettype (15) is a known value and does match. */
	assert_int_equal(peerid_proximity(make(48, 15, 5, 7, 9, 1), make(48, 15, 5, 7, 9, 1)), 5);
}

static void
test_proximity_out_of_range(void **state)
{
	uint64_t base = make(48, 3, 5, 7, 4808, 1);

	(void)state;
	assert_int_equal(peerid_proximity(base | UINT64_C(1) << 56, base), 0);
	assert_int_equal(peerid_proximity(base, UINT64_MAX), 0);
}

static void
test_country_table(void **state)
{
	(void)state;
	assert_int_equal(peerid_country_count, 250);
	assert_string_equal(peerid_countries[0], "");
	for (unsigned i = 1; i < peerid_country_count; i++) {
		const char *c = peerid_countries[i];

		assert_int_equal(strlen(c), 2);
		assert_true(c[0] >= 'A' && c[0] <= 'Z');
		assert_true(c[1] >= 'A' && c[1] <= 'Z');
		/* Strictly increasing: alphabetical and no duplicates. */
		if (i > 1)
			assert_true(strcmp(peerid_countries[i - 1], c) < 0);
	}
	assert_true(peerid_country_count - 1 <= PEERID_COUNTRY_MAX);
}

static void
test_country_fixed_indices(void **state)
{
	(void)state;
	/* These are wire values: changing one breaks every issued PeerID. */
	assert_int_equal(peerid_country_index("AD"), 1);
	assert_int_equal(peerid_country_index("AF"), 3);
	assert_int_equal(peerid_country_index("CN"), 48);
	assert_int_equal(peerid_country_index("DE"), 57);
	assert_int_equal(peerid_country_index("GB"), 77);
	assert_int_equal(peerid_country_index("JP"), 114);
	assert_int_equal(peerid_country_index("US"), 233);
	assert_int_equal(peerid_country_index("ZW"), 249);
	assert_string_equal(peerid_country_code(48), "CN");
	assert_string_equal(peerid_country_code(233), "US");
}

static void
test_country_lookup(void **state)
{
	(void)state;
	for (unsigned i = 1; i < peerid_country_count; i++) {
		char lower[3] = { (char)(peerid_countries[i][0] + 32),
				  (char)(peerid_countries[i][1] + 32), 0 };
		char mixed[3] = { peerid_countries[i][0], lower[1], 0 };

		assert_int_equal(peerid_country_index(peerid_countries[i]), i);
		assert_int_equal(peerid_country_index(lower), i);
		assert_int_equal(peerid_country_index(mixed), i);
		assert_string_equal(peerid_country_code(i), peerid_countries[i]);
	}
	/* Codes assigned in the last decades are present... */
	assert_int_not_equal(peerid_country_index("SS"), 0);
	assert_int_not_equal(peerid_country_index("BQ"), 0);
	assert_int_not_equal(peerid_country_index("CW"), 0);
	assert_int_not_equal(peerid_country_index("SX"), 0);
	assert_int_not_equal(peerid_country_index("AX"), 0);
	assert_int_not_equal(peerid_country_index("TW"), 0);
}

static void
test_country_unknown(void **state)
{
	static const char *const bad[] = {
		"",   "C",  "CNN", "C1", "1C", "C ", " C", "AN", "CS", "YU",        "XK",
		"EU", "UK", "AP",  "ZZ", "XX", "@A", "A[", "`a", "a{", "\xc3\x89S",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(peerid_country_index(bad[i]), 0);
	assert_int_equal(peerid_country_index(NULL), 0);

	assert_string_equal(peerid_country_code(0), "");
	assert_string_equal(peerid_country_code(peerid_country_count), "");
	assert_string_equal(peerid_country_code(PEERID_COUNTRY_MAX), "");
	assert_string_equal(peerid_country_code(UINT_MAX), "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_layout),
		cmocka_unit_test(test_encode_max_and_round_trip),
		cmocka_unit_test(test_encode_range),
		cmocka_unit_test(test_decode_range),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_format_parse_round_trip),
		cmocka_unit_test(test_proximity),
		cmocka_unit_test(test_proximity_unknown),
		cmocka_unit_test(test_proximity_out_of_range),
		cmocka_unit_test(test_country_table),
		cmocka_unit_test(test_country_fixed_indices),
		cmocka_unit_test(test_country_lookup),
		cmocka_unit_test(test_country_unknown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
