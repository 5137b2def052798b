// SPDX-License-Identifier: MIT
/* Unit tests for common/sha1: the FIPS 180 example vectors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha1.h"

static void
hex(const uint8_t *d, char *out)
{
	for (int i = 0; i < SHA1_LEN; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static void
check(const char *msg, size_t len, const char *want)
{
	uint8_t d[SHA1_LEN];
	char h[2 * SHA1_LEN + 1];
	sha1(msg, len, d);
	hex(d, h);
	assert_string_equal(h, want);
}

static void
test_vectors(void **state)
{
	(void)state;
	check("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	check("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
	check("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
	      "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
	check("The quick brown fox jumps over the lazy dog", 43,
	      "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12");
}

/* A million 'a's fed in awkward pieces equals the one-shot answer. */
static void
test_million_a_incremental(void **state)
{
	struct sha1_ctx c;
	uint8_t d[SHA1_LEN];
	char h[2 * SHA1_LEN + 1];
	char *buf = malloc(1000000);
	(void)state;
	assert_non_null(buf);
	memset(buf, 'a', 1000000);
	sha1_init(&c);
	for (size_t off = 0, step = 1; off < 1000000; off += step, step = step % 97 + 1)
		sha1_update(&c, buf + off, off + step > 1000000 ? 1000000 - off : step);
	sha1_final(&c, d);
	hex(d, h);
	assert_string_equal(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_million_a_incremental),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
