// SPDX-License-Identifier: MIT
/* Unit tests for common/benc: strict parsing, err_off, walking, lookups, writers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "benc.h"

#define SENTINEL_OFF ((size_t)0x5a5a5a5a)

/*
 * Parses an exact-size heap copy of s[0..len) so ASan flags any read past
 * the end (a literal's NUL would hide it). Returns the parser's result; the
 * span is checked to cover the whole input on success, and err_off /
 * ret are checked to stay untouched on the path that must not write them.
 */
static int
parse_n(const void *s, size_t len, int max_depth, size_t *ret_off)
{
	struct benc_span sp = { (const uint8_t *)1, SENTINEL_OFF };
	size_t off = SENTINEL_OFF;
	uint8_t *copy = malloc(len ? len : 1);
	int r;

	assert_non_null(copy);
	if (len > 0)
		memcpy(copy, s, len);
	r = benc_parse(copy, len, max_depth, &sp, &off);
	if (r == 0) {
		assert_ptr_equal(sp.p, copy);
		assert_int_equal(sp.len, len);
		assert_int_equal(off, SENTINEL_OFF);
	} else {
		assert_ptr_equal(sp.p, (const uint8_t *)1);
		assert_int_equal(sp.len, SENTINEL_OFF);
		assert_true(off <= len);
	}
	free(copy);
	if (ret_off != NULL)
		*ret_off = off;
	return r;
}

static void
ok(const char *s)
{
	assert_int_equal(parse_n(s, strlen(s), BENC_MAX_DEPTH, NULL), 0);
}

static void
bad_n(const void *s, size_t len, int err, size_t want_off)
{
	size_t off;

	assert_int_equal(parse_n(s, len, BENC_MAX_DEPTH, &off), err);
	assert_int_equal(off, want_off);
}

static void
bad(const char *s, size_t want_off)
{
	bad_n(s, strlen(s), -EINVAL, want_off);
}

/* Parses a NUL-terminated literal in place (for walking tests). */
static struct benc_span
must_parse(const char *s)
{
	struct benc_span sp;

	assert_int_equal(benc_parse((const uint8_t *)s, strlen(s), BENC_MAX_DEPTH, &sp, NULL), 0);
	return sp;
}

static void
assert_str_span(struct benc_span v, const char *want)
{
	const uint8_t *p;
	size_t n;

	assert_int_equal(benc_type(v), BENC_STR);
	assert_int_equal(benc_str(v, &p, &n), 0);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(p, want, n);
}

static void
assert_int_span(struct benc_span v, int64_t want)
{
	int64_t got;

	assert_int_equal(benc_type(v), BENC_INT);
	assert_int_equal(benc_int(v, &got), 0);
	assert_true(got == want);
}

static void
test_valid_scalars(void **state)
{
	static const struct {
		const char *s;
		int64_t v;
	} ints[] = {
		{ "i0e", 0 },
		{ "i1e", 1 },
		{ "i-1e", -1 },
		{ "i42e", 42 },
		{ "i-42e", -42 },
		{ "i10e", 10 },
		{ "i-10e", -10 },
		{ "i9223372036854775807e", INT64_MAX },
		{ "i-9223372036854775808e", INT64_MIN },
	};
	struct benc_span v;

	(void)state;
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		ok(ints[i].s);
		v = must_parse(ints[i].s);
		assert_int_span(v, ints[i].v);
	}

	ok("0:");
	assert_str_span(must_parse("0:"), "");
	ok("4:spam");
	assert_str_span(must_parse("4:spam"), "spam");
	ok("10:0123456789");
	assert_str_span(must_parse("10:0123456789"), "0123456789");
	/* Contents are raw bytes: structure characters and NULs mean nothing. */
	assert_int_equal(parse_n("5:e\0:id", 7, BENC_MAX_DEPTH, NULL), 0);
	ok("3:i1e");
	assert_str_span(must_parse("3:lde"), "lde");
}

static void
test_valid_containers(void **state)
{
	struct benc_span v;

	(void)state;
	ok("le");
	ok("de");
	ok("li1ee");
	ok("l4:spami42ee");
	ok("d3:bar4:spam3:fooi42ee");
	ok("d1:ad1:bl0:i-1ed1:cleeeee");
	ok("llleee");
	ok("ldedelee");

	v = must_parse("le");
	assert_int_equal(benc_type(v), BENC_LIST);
	v = must_parse("de");
	assert_int_equal(benc_type(v), BENC_DICT);

	/* Byte order, not locale or case folding: 'B' (0x42) < 'a' (0x61). */
	ok("d1:Bi1e1:ai2ee");
	/* A prefix sorts before its extensions. */
	ok("d1:ai1e2:aai2e3:aaai3ee");
	/* Bytes compare unsigned: 0x7f < 0x80 < 0xff. */
	assert_int_equal(parse_n("d1:\x7fi0e1:\x80i0e1:\xffi0ee", 20, BENC_MAX_DEPTH, NULL), 0);
	/* Empty key is the smallest of all. */
	ok("d0:i0e1:\x01i0ee");
}

static void
test_empty_and_garbage(void **state)
{
	struct benc_span sp = { NULL, 0 };
	size_t off = 7;

	(void)state;
	bad("", 0);
	assert_int_equal(benc_parse(NULL, 0, BENC_MAX_DEPTH, &sp, &off), -EINVAL);
	assert_int_equal(off, 0);
	/* err_off is optional. */
	assert_int_equal(benc_parse((const uint8_t *)"x", 1, BENC_MAX_DEPTH, &sp, NULL), -EINVAL);

	bad("x", 0);
	bad("e", 0);
	bad(" i1e", 0);
	bad("-1", 0);
	bad(":", 0);
	bad("i1e ", 3);
	bad("i1ei2e", 3);
	bad("lee", 2);
	bad("dee", 2);
	bad("0:0:", 2);
	bad("4:spamx", 6);
	bad("l", 1);
	bad("lx", 1);
	bad("lie", 2);
	bad("l-e", 1);
}

static void
test_bad_ints(void **state)
{
	(void)state;
	bad("i", 1);
	bad("ie", 1);
	bad("i-", 2);
	bad("i-e", 2);
	bad("i--1e", 2);
	bad("i+1e", 1);
	bad("i 1e", 1);
	bad("i1 e", 2);
	bad("i1-e", 2);
	bad("i1", 2);
	bad("i12", 3);
	bad("i0", 2);
	bad("i00e", 2);
	bad("i01e", 2);
	bad("i007e", 2);
	bad("i-0e", 2);
	bad("i-0", 2);
	bad("i-01e", 2);
	bad("i1.5e", 2);
	bad("i0x10e", 2);
	bad("i1e1e", 3);
	/* int64 one past either end: the digit that overflows is reported. */
	bad("i9223372036854775808e", 19);
	bad("i-9223372036854775809e", 20);
	bad("i10000000000000000000e", 20);
	bad("i99999999999999999999999e", 19);
	bad("i-99999999999999999999999e", 20);
	/* Overflow wins over a missing end: the value can never be valid. */
	bad("i9223372036854775808", 19);
}

static void
test_bad_strings(void **state)
{
	/* Digits that still fit in size_t before the next one overflows it. */
#if SIZE_MAX == UINT64_MAX
	const size_t fit = 19;
	const char *max = "18446744073709551615:";
	const char *over = "18446744073709551616:";
#else
	const size_t fit = 9;
	const char *max = "4294967295:";
	const char *over = "4294967296:";
#endif
	(void)state;
	bad("1", 1);
	bad("1:", 2);
	bad("2:a", 3);
	bad("4:abc", 5);
	bad("5:", 2);
	bad("01:a", 1);
	bad("00:", 1);
	bad("0", 1);
	bad("0a", 1);
	bad("1a", 1);
	bad("12a:", 2);
	bad("1-:", 1);
	bad("99999999999999999999:", fit);
	bad("99999999999999999999999999999999999999", fit);
	bad(max, strlen(max));
	bad(over, fit);
	bad("999999999:short", 15);
	/* Inside containers the same rules hold. */
	bad("l01:ae", 2);
	bad("l9:abce", 7);
	bad("d1:a9:abce", 10);
}

static void
test_bad_dicts(void **state)
{
	(void)state;
	/* Keys must be strings. */
	bad("di1ei2ee", 1);
	bad("dlei1ee", 1);
	bad("ddei1ee", 1);
	bad("d-1:ai1ee", 1);
	bad("d1:ai1ei2ei3ee", 7);
	/* A key without a value. */
	bad("d1:ae", 4);
	bad("d1:ai1e1:be", 10);
	/* Unsorted and duplicate keys: the offending key's first byte. */
	bad("d1:bi1e1:ai2ee", 7);
	bad("d1:ai1e1:ai2ee", 7);
	bad("d2:aai1e1:ai2ee", 8);
	bad("d1:ai1e1:ci2e1:bi3ee", 13);
	bad("d0:i1e0:i2ee", 6);
	bad("d1:ai1e1:Bi2ee", 7);
	bad("d1:\xffi0e1:\x80i0ee", 7);
	/* Order is per dict: an inner dict starts afresh, and checks its own. */
	ok("d1:bd1:ai1ee1:cd1:ai1eee");
	bad("d1:ad1:bi1e1:ai1eee", 11);
	/* Keys are compared as whole strings, not as encoded "N:..." bytes,
	 * where "10:..." would sort before "2:...". */
	ok("d2:aai0e10:bbbbbbbbbbi0ee");
	/* Truncated inside a dict. */
	bad("d", 1);
	bad("d1:a", 4);
	bad("d1:ai1e", 7);
	bad("d1:", 3);
}

/* Checks that every proper prefix of a valid input fails with err_off at
 * the end of that prefix: the input ended, no byte in it was wrong. */
static void
check_all_prefixes(const void *s, size_t len)
{
	size_t off;

	assert_int_equal(parse_n(s, len, BENC_MAX_DEPTH, NULL), 0);
	for (size_t n = 0; n < len; n++) {
		assert_int_equal(parse_n(s, n, BENC_MAX_DEPTH, &off), -EINVAL);
		assert_int_equal(off, n);
	}
}

static void
test_truncated_everywhere(void **state)
{
	static const char *const cases[] = {
		"i0e",
		"i-123e",
		"i9223372036854775807e",
		"i-9223372036854775808e",
		"0:",
		"12:hello, world",
		"le",
		"l4:spami42ee",
		"d3:bar4:spam3:fooi42ee",
		"d1:ad1:bl0:i-1ed1:cleeeee",
		"lllleeee",
		"d4:listli1ei2ei3ee4:zzzzd0:0:ee",
	};
	/* Binary keys: NULs inside keys still order byte by byte. */
	static const char bin[] = "d3:k\0yi1e3:k\0zle4:k\0z\0i-7ee";

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_all_prefixes(cases[i], strlen(cases[i]));
	check_all_prefixes(bin, sizeof(bin) - 1);
}

/* "l" * n, inner, "e" * n into a malloc'd buffer. */
static uint8_t *
nest(size_t n, const char *open, const char *inner, size_t *ret_len)
{
	size_t olen = strlen(open), ilen = strlen(inner);
	size_t len = n * (olen + 1) + ilen;
	uint8_t *b = malloc(len), *p = b;

	assert_non_null(b);
	for (size_t i = 0; i < n; i++, p += olen)
		memcpy(p, open, olen);
	memcpy(p, inner, ilen);
	p += ilen;
	memset(p, 'e', n);
	*ret_len = len;
	return b;
}

static void
test_depth(void **state)
{
	uint8_t *b;
	size_t len, off;

	(void)state;
	b = nest(64, "l", "", &len);
	assert_int_equal(parse_n(b, len, BENC_MAX_DEPTH, NULL), 0);
	free(b);

	/* Scalars add no depth. */
	b = nest(64, "l", "i1e4:spam", &len);
	assert_int_equal(parse_n(b, len, BENC_MAX_DEPTH, NULL), 0);
	free(b);

	b = nest(65, "l", "", &len);
	assert_int_equal(parse_n(b, len, BENC_MAX_DEPTH, &off), -E2BIG);
	assert_int_equal(off, 64);
	free(b);

	b = nest(64, "d1:a", "i0e", &len);
	assert_int_equal(parse_n(b, len, BENC_MAX_DEPTH, NULL), 0);
	free(b);

	b = nest(65, "d1:a", "i0e", &len);
	assert_int_equal(parse_n(b, len, BENC_MAX_DEPTH, &off), -E2BIG);
	assert_int_equal(off, 64 * 4);
	free(b);

	/* Hostile depth far beyond the limit stops at the limit, O(1) stack. */
	b = nest(1000000, "l", "", &len);
	assert_int_equal(parse_n(b, len, BENC_MAX_DEPTH, &off), -E2BIG);
	assert_int_equal(off, 64);
	free(b);

	/* A smaller caller limit. */
	assert_int_equal(parse_n("llee", 4, 2, NULL), 0);
	assert_int_equal(parse_n("lllee", 5, 2, &off), -E2BIG);
	assert_int_equal(off, 2);
	assert_int_equal(parse_n("llee", 4, 1, &off), -E2BIG);
	assert_int_equal(off, 1);
	assert_int_equal(parse_n("li1eleli2eee", 12, 2, NULL), 0);
	assert_int_equal(parse_n("i5e", 3, 0, NULL), 0);
	assert_int_equal(parse_n("1:x", 3, 0, NULL), 0);
	assert_int_equal(parse_n("le", 2, 0, &off), -E2BIG);
	assert_int_equal(off, 0);

	/* Out-of-range limits are a caller error. */
	assert_int_equal(parse_n("i5e", 3, BENC_MAX_DEPTH + 1, &off), -EINVAL);
	assert_int_equal(off, 0);
	assert_int_equal(parse_n("i5e", 3, -1, &off), -EINVAL);
	assert_int_equal(off, 0);
}

static void
test_accessor_types(void **state)
{
	struct benc_span i = must_parse("i7e"), s = must_parse("1:x");
	struct benc_span l = must_parse("le"), d = must_parse("de"), out;
	struct benc_iter it = { 0 };
	const uint8_t *p = NULL;
	size_t n = 99;
	int64_t v = 99;

	(void)state;
	assert_int_equal(benc_int(s, &v), -EINVAL);
	assert_int_equal(benc_int(l, &v), -EINVAL);
	assert_int_equal(benc_int(d, &v), -EINVAL);
	assert_true(v == 99);
	assert_int_equal(benc_str(i, &p, &n), -EINVAL);
	assert_int_equal(benc_str(l, &p, &n), -EINVAL);
	assert_int_equal(benc_str(d, &p, &n), -EINVAL);
	assert_null(p);
	assert_int_equal(n, 99);
	assert_int_equal(benc_next(i, &it, &out, &out), -EINVAL);
	assert_int_equal(benc_next(s, &it, &out, &out), -EINVAL);
	assert_int_equal(benc_dict_get(l, "a", &out), -EINVAL);
	assert_int_equal(benc_dict_get(i, "a", &out), -EINVAL);
	assert_int_equal(benc_dict_get(s, "a", &out), -EINVAL);

	/* Empty containers end at once, and stay ended. */
	assert_int_equal(benc_next(l, &it, NULL, &out), 0);
	assert_int_equal(benc_next(l, &it, NULL, &out), 0);
	it.off = 0;
	assert_int_equal(benc_next(d, &it, &out, &out), 0);
	assert_int_equal(benc_dict_get(d, "", &out), -ENOENT);

	/* The header's -ERANGE: an (unvalidated) span outside int64_t. */
	struct benc_span big = { (const uint8_t *)"i9223372036854775808e", 21 };

	assert_int_equal(benc_int(big, &v), -ERANGE);
	assert_true(v == 99);
}

static void
test_iteration_order(void **state)
{
	struct benc_span v = must_parse("l1:ai2eli3eed1:xi4eei-5e0:e"), k, e, e2;
	struct benc_span d = must_parse("d1:ai1e1:bli2ee1:cd1:di3ee2:eei4ee");
	struct benc_iter it = { 0 }, it2 = { 0 };
	static const char *const keys[] = { "a", "b", "c", "ee" };
	size_t n = 0;
	int64_t x;

	(void)state;
	assert_int_equal(benc_next(v, &it, NULL, &e), 1);
	assert_str_span(e, "a");
	assert_int_equal(benc_next(v, &it, NULL, &e), 1);
	assert_int_span(e, 2);
	assert_int_equal(benc_next(v, &it, NULL, &e), 1);
	assert_int_equal(benc_type(e), BENC_LIST);
	assert_int_equal(e.len, 5);
	assert_memory_equal(e.p, "li3ee", 5);
	assert_int_equal(benc_next(e, &it2, NULL, &e2), 1);
	assert_int_span(e2, 3);
	assert_int_equal(benc_next(e, &it2, NULL, &e2), 0);
	assert_int_equal(benc_next(v, &it, NULL, &e), 1);
	assert_int_equal(benc_type(e), BENC_DICT);
	assert_memory_equal(e.p, "d1:xi4ee", e.len);
	assert_int_equal(benc_dict_get(e, "x", &e2), 0);
	assert_int_span(e2, 4);
	assert_int_equal(benc_next(v, &it, NULL, &e), 1);
	assert_int_span(e, -5);
	/* ret_key is ignored (may be anything) for lists. */
	assert_int_equal(benc_next(v, &it, &k, &e), 1);
	assert_str_span(e, "");
	assert_int_equal(benc_next(v, &it, NULL, &e), 0);
	assert_int_equal(benc_next(v, &it, NULL, &e), 0);

	it.off = 0;
	while (benc_next(d, &it, &k, &e) == 1) {
		assert_true(n < 4);
		assert_str_span(k, keys[n]);
		/* Key and value are adjacent spans inside the dict. */
		assert_ptr_equal(k.p + k.len, e.p);
		assert_true(e.p + e.len <= d.p + d.len - 1);
		n++;
	}
	assert_int_equal(n, 4);

	/* Spans are contiguous and cover the dict from 'd' to 'e'. */
	const uint8_t *at = d.p + 1;

	it.off = 0;
	while (benc_next(d, &it, &k, &e) == 1) {
		assert_ptr_equal(k.p, at);
		at = e.p + e.len;
	}
	assert_ptr_equal(at, d.p + d.len - 1);
	assert_int_equal(benc_dict_get(d, "ee", &e), 0);
	assert_int_equal(benc_int(e, &x), 0);
	assert_true(x == 4);
}

static void
test_dict_get(void **state)
{
	struct benc_span d = must_parse("d0:i0e1:ai1e2:aai2e1:bli3ee3:bcdd1:ei4ee1:zi5ee"), v;

	(void)state;
	assert_int_equal(benc_dict_get(d, "", &v), 0);
	assert_int_span(v, 0);
	assert_int_equal(benc_dict_get(d, "a", &v), 0);
	assert_int_span(v, 1);
	assert_int_equal(benc_dict_get(d, "aa", &v), 0);
	assert_int_span(v, 2);
	assert_int_equal(benc_dict_get(d, "b", &v), 0);
	assert_int_equal(benc_type(v), BENC_LIST);
	assert_memory_equal(v.p, "li3ee", v.len);
	assert_int_equal(benc_dict_get(d, "bcd", &v), 0);
	assert_int_equal(benc_type(v), BENC_DICT);
	assert_memory_equal(v.p, "d1:ei4ee", v.len);
	assert_int_equal(benc_dict_get(d, "z", &v), 0);
	assert_int_span(v, 5);

	/* Absent keys before, between, after, and prefixes/extensions. A nested
	 * dict's keys are not the outer dict's. */
	memset(&v, 0, sizeof(v));
	assert_int_equal(benc_dict_get(d, "A", &v), -ENOENT);
	assert_int_equal(benc_dict_get(d, "aaa", &v), -ENOENT);
	assert_int_equal(benc_dict_get(d, "ab", &v), -ENOENT);
	assert_int_equal(benc_dict_get(d, "bc", &v), -ENOENT);
	assert_int_equal(benc_dict_get(d, "e", &v), -ENOENT);
	assert_int_equal(benc_dict_get(d, "zz", &v), -ENOENT);
	assert_int_equal(benc_dict_get(d, "\xff", &v), -ENOENT);
	assert_null(v.p);
	assert_int_equal(v.len, 0);

	/* String values that look like keys do not confuse the lookup. */
	d = must_parse("d1:a1:b1:bi2ee");
	assert_int_equal(benc_dict_get(d, "b", &v), 0);
	assert_int_span(v, 2);
}

static void
test_writers(void **state)
{
	static const struct {
		int64_t v;
		const char *s;
	} ints[] = {
		{ 0, "i0e" },
		{ 1, "i1e" },
		{ -1, "i-1e" },
		{ 10, "i10e" },
		{ -10, "i-10e" },
		{ INT64_MAX, "i9223372036854775807e" },
		{ INT64_MIN, "i-9223372036854775808e" },
		{ INT64_MIN + 1, "i-9223372036854775807e" },
	};
	uint8_t buf[64];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		n = strlen(ints[i].s);
		memset(buf, '#', sizeof(buf));
		assert_int_equal(benc_put_int(buf, n, ints[i].v), (int)n);
		assert_memory_equal(buf, ints[i].s, n);
		assert_int_equal(buf[n], '#');
		/* One byte short writes nothing at all. */
		memset(buf, '#', sizeof(buf));
		assert_int_equal(benc_put_int(buf, n - 1, ints[i].v), -ENOBUFS);
		for (size_t j = 0; j < sizeof(buf); j++)
			assert_int_equal(buf[j], '#');
	}
	assert_int_equal(benc_put_int(NULL, 0, 0), -ENOBUFS);

	memset(buf, '#', sizeof(buf));
	assert_int_equal(benc_put_str(buf, 6, "spam", 4), 6);
	assert_memory_equal(buf, "4:spam", 6);
	assert_int_equal(buf[6], '#');
	assert_int_equal(benc_put_str(buf, 2, "", 0), 2);
	assert_memory_equal(buf, "0:", 2);
	assert_int_equal(benc_put_str(buf, 14, "a\0b\0c:e0123", 11), 14);
	assert_memory_equal(buf, "11:a\0b\0c:e0123", 14);

	memset(buf, '#', sizeof(buf));
	assert_int_equal(benc_put_str(buf, 5, "spam", 4), -ENOBUFS);
	assert_int_equal(benc_put_str(buf, 1, "", 0), -ENOBUFS);
	assert_int_equal(benc_put_str(buf, 3, "spam", 4), -ENOBUFS);
	assert_int_equal(benc_put_str(buf, 13, "a\0b\0c:e0123", 11), -ENOBUFS);
	/* Huge lengths are refused up front, before any byte is read or written. */
	assert_int_equal(benc_put_str(buf, SIZE_MAX, "x", SIZE_MAX - 1), -ENOBUFS);
	assert_int_equal(benc_put_str(buf, SIZE_MAX, "x", (size_t)INT_MAX + 1), -ENOBUFS);
	for (size_t j = 0; j < sizeof(buf); j++)
		assert_int_equal(buf[j], '#');

	assert_int_equal(benc_put_raw(buf, 1, "d", 1), 1);
	assert_int_equal(buf[0], 'd');
	assert_int_equal(benc_put_raw(buf, 0, "e", 1), -ENOBUFS);
	assert_int_equal(benc_put_raw(NULL, 0, "", 0), 0);
	assert_int_equal(benc_put_raw(buf, SIZE_MAX, "x", (size_t)INT_MAX + 1), -ENOBUFS);
	assert_int_equal(buf[0], 'd');
	assert_int_equal(buf[1], '#');
}

/* Appends with a writer, failing the test on -ENOBUFS. */
#define PUT(call)                                                                                  \
	do {                                                                                       \
		int put_r_ = (call);                                                               \
		assert_true(put_r_ > 0);                                                           \
		o += (size_t)put_r_;                                                               \
	} while (0)

static void
test_round_trip(void **state)
{
	static const int64_t vals[] = { 0, 1, -1, 9, -9, 1000000, INT64_MAX, INT64_MIN };
	uint8_t buf[512];
	struct benc_span top, e, k, inner;
	struct benc_iter it = { 0 }, it2 = { 0 };
	size_t o = 0, n = 0;
	const uint8_t *s;
	size_t slen;
	int64_t x;

	(void)state;
	/* d 4:ints l...e 4:strs l...e e */
	PUT(benc_put_raw(buf + o, sizeof(buf) - o, "d", 1));
	PUT(benc_put_str(buf + o, sizeof(buf) - o, "ints", 4));
	PUT(benc_put_raw(buf + o, sizeof(buf) - o, "l", 1));
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		PUT(benc_put_int(buf + o, sizeof(buf) - o, vals[i]));
	PUT(benc_put_raw(buf + o, sizeof(buf) - o, "e", 1));
	PUT(benc_put_str(buf + o, sizeof(buf) - o, "strs", 4));
	PUT(benc_put_raw(buf + o, sizeof(buf) - o, "l", 1));
	for (size_t i = 0; i <= 12; i++)
		PUT(benc_put_str(buf + o, sizeof(buf) - o, "0123456789:e", i));
	PUT(benc_put_raw(buf + o, sizeof(buf) - o, "e", 1));
	PUT(benc_put_raw(buf + o, sizeof(buf) - o, "e", 1));

	assert_int_equal(benc_parse(buf, o, BENC_MAX_DEPTH, &top, NULL), 0);
	assert_int_equal(benc_dict_get(top, "ints", &inner), 0);
	while (benc_next(inner, &it, NULL, &e) == 1) {
		assert_int_equal(benc_int(e, &x), 0);
		assert_true(x == vals[n]);
		n++;
	}
	assert_int_equal(n, sizeof(vals) / sizeof(vals[0]));

	assert_int_equal(benc_dict_get(top, "strs", &inner), 0);
	n = 0;
	while (benc_next(inner, &it2, NULL, &e) == 1) {
		assert_int_equal(benc_str(e, &s, &slen), 0);
		assert_int_equal(slen, n);
		assert_memory_equal(s, "0123456789:e", slen);
		n++;
	}
	assert_int_equal(n, 13);

	/* Walking and re-writing yields the same bytes. */
	uint8_t again[512];
	size_t a = 0;

	it.off = 0;
	again[a++] = 'd';
	while (benc_next(top, &it, &k, &e) == 1) {
		assert_int_equal(benc_str(k, &s, &slen), 0);
		a += (size_t)benc_put_str(again + a, sizeof(again) - a, s, slen);
		a += (size_t)benc_put_raw(again + a, sizeof(again) - a, e.p, e.len);
	}
	again[a++] = 'e';
	assert_int_equal(a, o);
	assert_memory_equal(again, buf, o);
}

static void
test_torrent(void **state)
{
	static const char announce[] = "http://tracker.example:6969/announce";
	/* Twenty "hash" bytes full of structure characters and a NUL. */
	static const uint8_t pieces[20] = { 'e', ':', 'd', 'l', 'i', '0', 0,   '9',  0xff, 'e',
					    '1', ':', 'x', 'e', 'e', 'e', 'd', 0x80, 0x7f, '2' };
	uint8_t buf[512];
	struct benc_span top, info, v, k;
	struct benc_iter it = { 0 };
	size_t o = 0, info_start, info_end;
	const uint8_t *s;
	size_t slen;
	int64_t x;

	(void)state;
	PUT(benc_put_raw(buf + o, sizeof(buf) - o, "d", 1));
	PUT(benc_put_str(buf + o, sizeof(buf) - o, "announce", 8));
	PUT(benc_put_str(buf + o, sizeof(buf) - o, announce, strlen(announce)));
	PUT(benc_put_str(buf + o, sizeof(buf) - o, "info", 4));
	info_start = o;
	PUT(benc_put_raw(buf + o, sizeof(buf) - o, "d", 1));
	PUT(benc_put_str(buf + o, sizeof(buf) - o, "length", 6));
	PUT(benc_put_int(buf + o, sizeof(buf) - o, 1048577));
	PUT(benc_put_str(buf + o, sizeof(buf) - o, "name", 4));
	PUT(benc_put_str(buf + o, sizeof(buf) - o, "file.bin", 8));
	/* "piece length" < "pieces": ' ' (0x20) sorts before 's'. */
	PUT(benc_put_str(buf + o, sizeof(buf) - o, "piece length", 12));
	PUT(benc_put_int(buf + o, sizeof(buf) - o, 262144));
	PUT(benc_put_str(buf + o, sizeof(buf) - o, "pieces", 6));
	PUT(benc_put_str(buf + o, sizeof(buf) - o, pieces, sizeof(pieces)));
	PUT(benc_put_raw(buf + o, sizeof(buf) - o, "e", 1));
	info_end = o;
	PUT(benc_put_raw(buf + o, sizeof(buf) - o, "e", 1));

	check_all_prefixes(buf, o);
	assert_int_equal(benc_parse(buf, o, BENC_MAX_DEPTH, &top, NULL), 0);
	assert_int_equal(benc_type(top), BENC_DICT);

	assert_int_equal(benc_dict_get(top, "announce", &v), 0);
	assert_str_span(v, announce);

	/* The span the tracker hashes: exactly the bytes of the info value. */
	assert_int_equal(benc_dict_get(top, "info", &info), 0);
	assert_ptr_equal(info.p, buf + info_start);
	assert_int_equal(info.len, info_end - info_start);
	assert_int_equal(info.p[0], 'd');
	assert_int_equal(info.p[info.len - 1], 'e');

	/* The info span is itself one valid value. */
	assert_int_equal(benc_parse(info.p, info.len, BENC_MAX_DEPTH, &v, NULL), 0);

	assert_int_equal(benc_dict_get(info, "name", &v), 0);
	assert_str_span(v, "file.bin");
	assert_int_equal(benc_dict_get(info, "piece length", &v), 0);
	assert_int_equal(benc_int(v, &x), 0);
	assert_true(x == 262144);
	assert_int_equal(benc_dict_get(info, "length", &v), 0);
	assert_int_equal(benc_int(v, &x), 0);
	assert_true(x == 1048577);
	assert_int_equal(benc_dict_get(info, "pieces", &v), 0);
	assert_int_equal(benc_str(v, &s, &slen), 0);
	assert_int_equal(slen, sizeof(pieces));
	assert_memory_equal(s, pieces, sizeof(pieces));
	assert_int_equal(benc_dict_get(info, "files", &v), -ENOENT);
	assert_int_equal(benc_dict_get(top, "name", &v), -ENOENT);

	/* Top-level keys come out in file order. */
	assert_int_equal(benc_next(top, &it, &k, &v), 1);
	assert_str_span(k, "announce");
	assert_int_equal(benc_next(top, &it, &k, &v), 1);
	assert_str_span(k, "info");
	assert_ptr_equal(v.p, info.p);
	assert_int_equal(v.len, info.len);
	assert_int_equal(benc_next(top, &it, &k, &v), 0);

	/* Swapping the two info keys that differ at ' ' vs 's' breaks order. */
	uint8_t swapped[512];
	size_t off;

	memcpy(swapped, buf, o);
	uint8_t *pl = memmem(swapped, o, "12:piece length", 15);

	assert_non_null(pl);
	memcpy(pl, "12:pieces_lengt", 15);
	assert_int_equal(benc_parse(swapped, o, BENC_MAX_DEPTH, &v, &off), -EINVAL);
	assert_int_equal(off, (size_t)((uint8_t *)memmem(swapped, o, "6:pieces", 8) - swapped));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_scalars),
		cmocka_unit_test(test_valid_containers),
		cmocka_unit_test(test_empty_and_garbage),
		cmocka_unit_test(test_bad_ints),
		cmocka_unit_test(test_bad_strings),
		cmocka_unit_test(test_bad_dicts),
		cmocka_unit_test(test_truncated_everywhere),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_accessor_types),
		cmocka_unit_test(test_iteration_order),
		cmocka_unit_test(test_dict_get),
		cmocka_unit_test(test_writers),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_torrent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
