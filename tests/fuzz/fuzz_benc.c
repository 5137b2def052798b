// SPDX-License-Identifier: MIT
/* libFuzzer target for common/benc: parse, walk, re-encode byte-identically, look keys up. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "benc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

/* Appends one writer's output, which must fit: the output buffer is exactly
 * the input's size and canonical input re-encodes to the same length. */
static size_t
put(int r, size_t o)
{
	CHECK(r > 0);
	return o + (size_t)r;
}

/*
 * Re-encodes v into out[0..cap) from what the accessors report, checking on
 * the way that child spans tile their parent exactly. Recursion is bounded
 * by BENC_MAX_DEPTH because the parser already enforced it. Returns bytes
 * written; *deepest is raised to the number of containers seen nested.
 */
static size_t
reencode(struct benc_span v, uint8_t *out, size_t cap, int depth, int *deepest)
{
	struct benc_iter it = { 0 };
	struct benc_span k, e, found;
	const uint8_t *s, *at;
	size_t n, o = 0;
	int64_t x;
	int r;

	switch (benc_type(v)) {
	case BENC_INT:
		CHECK(benc_int(v, &x) == 0);
		CHECK(benc_str(v, &s, &n) == -EINVAL);
		CHECK(benc_next(v, &it, &k, &e) == -EINVAL);
		return put(benc_put_int(out, cap, x), 0);
	case BENC_STR:
		CHECK(benc_str(v, &s, &n) == 0);
		CHECK(s >= v.p && s + n == v.p + v.len);
		CHECK(benc_int(v, &x) == -EINVAL);
		CHECK(benc_dict_get(v, "", &found) == -EINVAL);
		return put(benc_put_str(out, cap, s, n), 0);
	case BENC_LIST:
	case BENC_DICT:
		break;
	}

	bool dict = benc_type(v) == BENC_DICT;
	char *key;

	CHECK(depth < BENC_MAX_DEPTH);
	if (depth + 1 > *deepest)
		*deepest = depth + 1;
	CHECK(benc_int(v, &x) == -EINVAL);
	o = put(benc_put_raw(out, cap, dict ? "d" : "l", 1), o);
	at = v.p + 1;
	while ((r = benc_next(v, &it, &k, &e)) == 1) {
		if (dict) {
			CHECK(k.p == at && benc_type(k) == BENC_STR);
			o += reencode(k, out + o, cap - o, depth, deepest);
			at = k.p + k.len;

			/* Lookup finds this very value unless the key holds a NUL
			 * (a C string cannot name it). */
			CHECK(benc_str(k, &s, &n) == 0);
			if (memchr(s, 0, n) == NULL) {
				key = malloc(n + 1);
				CHECK(key != NULL);
				memcpy(key, s, n);
				key[n] = '\0';
				CHECK(benc_dict_get(v, key, &found) == 0);
				CHECK(found.p == e.p && found.len == e.len);
				free(key);
			}
		}
		CHECK(e.p == at);
		o += reencode(e, out + o, cap - o, depth + 1, deepest);
		at = e.p + e.len;
	}
	CHECK(r == 0);
	/* Ended iterators stay ended. */
	CHECK(benc_next(v, &it, &k, &e) == 0);
	CHECK(at == v.p + v.len - 1);
	return put(benc_put_raw(out + o, cap - o, "e", 1), o);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct benc_span top, again;
	size_t off = 0, n;
	int deepest = 0;
	uint8_t *buf, *out;
	int r;

	/* An exact-size copy, so ASan flags any read past size. */
	buf = malloc(size ? size : 1);
	CHECK(buf != NULL);
	if (size > 0)
		memcpy(buf, data, size);

	r = benc_parse(buf, size, BENC_MAX_DEPTH, &top, &off);
	if (r < 0) {
		CHECK(r == -EINVAL || r == -E2BIG);
		CHECK(off <= size);
		free(buf);
		return 0;
	}
	CHECK(top.p == buf && top.len == size);

	/* Canonical form has one spelling: walking and re-writing the value
	 * from the accessors must give back the input byte for byte. */
	out = malloc(size);
	CHECK(out != NULL);
	n = reencode(top, out, size, 0, &deepest);
	CHECK(n == size && memcmp(out, buf, size) == 0);
	CHECK(benc_parse(out, n, BENC_MAX_DEPTH, &again, NULL) == 0);
	free(out);

	/* The depth limit is exact: the value's own depth passes, one less not. */
	CHECK(benc_parse(buf, size, deepest, &again, NULL) == 0);
	if (deepest > 0)
		CHECK(benc_parse(buf, size, deepest - 1, &again, NULL) == -E2BIG);

	/* A value is self-delimiting, so the input minus its last byte is
	 * invalid, and only because it ended: err_off is its length. */
	off = SIZE_MAX;
	CHECK(benc_parse(buf, size - 1, BENC_MAX_DEPTH, &again, &off) == -EINVAL);
	CHECK(off == size - 1);

	free(buf);
	return 0;
}
