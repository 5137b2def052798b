// SPDX-License-Identifier: MIT
/* Unit tests for relay-server/relay_token.c: the relay token payload, the check, parameters. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../../relay-server/relay.h"

#define NOW UINT64_C(1700000000)
#define CID "0123456789abcdef0123456789abcdef"

static struct tok_key
key(unsigned char base)
{
	struct tok_key k;
	for (int i = 0; i < TOK_KEY_LEN; i++)
		k.k[i] = (unsigned char)(base + i);
	return k;
}

/* "Bearer <token>" for payload, as the login-server mints it. */
static void
bearer(const struct tok_key *k, uint8_t kind, uint64_t expiry, const char *payload, char *out,
       size_t size)
{
	char tok[TOK_STR_MAX];
	int n = tok_mint(k, kind, expiry, payload, strlen(payload), tok, sizeof(tok));
	assert_true(n > 0);
	snprintf(out, size, "Bearer %s", tok);
}

static int
parse(const char *s, struct relay_token *t)
{
	return relay_token_parse(s, strlen(s), t);
}

static void
test_payload_ok(void **state)
{
	struct relay_token t;
	(void)state;

	assert_int_equal(parse("{\"cid\":\"" CID "\",\"side\":\"a\",\"user\":\"alice\","
			       "\"peer\":\"bob\"}",
			       &t),
			 0);
	assert_string_equal(t.cid, CID);
	assert_int_equal(t.side, 0);
	assert_string_equal(t.user, "alice");
	assert_string_equal(t.peer, "bob");
	/* Member order is free; side b; UTF-8 names pass. */
	assert_int_equal(parse("{\"peer\":\"al\xc3\xaf"
			       "ce\",\"user\":\"bob\",\"side\":\"b\","
			       "\"cid\":\"" CID "\"}",
			       &t),
			 0);
	assert_int_equal(t.side, 1);
	assert_string_equal(t.peer, "al\xc3\xaf"
				    "ce");
}

static void
test_payload_bad(void **state)
{
	static const char *const bad[] = {
		"",
		"null",
		"[]",
		"{}",
		"{\"cid\":\"" CID "\",\"side\":\"a\",\"user\":\"alice\"}",
		"{\"cid\":\"" CID "\",\"side\":\"a\",\"user\":\"alice\",\"peer\":\"bob\",\"x\":1}",
		"{\"cid\":\"" CID "\",\"side\":\"c\",\"user\":\"alice\",\"peer\":\"bob\"}",
		"{\"cid\":\"" CID "\",\"side\":\"ab\",\"user\":\"alice\",\"peer\":\"bob\"}",
		"{\"cid\":\"0123456789ABCDEF0123456789abcdef\",\"side\":\"a\",\"user\":\"a\","
		"\"peer\":\"b\"}",
		"{\"cid\":\"0123456789abcdef0123456789abcde\",\"side\":\"a\",\"user\":\"a\","
		"\"peer\":\"b\"}",
		"{\"cid\":\"" CID "\",\"side\":\"a\",\"user\":\"\",\"peer\":\"bob\"}",
		"{\"cid\":\"" CID "\",\"side\":\"a\",\"user\":\"al\\nice\",\"peer\":\"bob\"}",
		"{\"cid\":\"" CID "\",\"side\":\"a\",\"user\":\"al\\u0000ice\",\"peer\":\"bob\"}",
		"{\"cid\":\"" CID "\",\"side\":\"a\",\"user\":\"bob\",\"peer\":\"bob\"}",
		"{\"cid\":\"" CID "\",\"side\":\"a\",\"user\":1,\"peer\":\"bob\"}",
		"{\"cid\":\"" CID "\",\"side\":\"a\",\"user\":\"a\",\"user\":\"b\",\"peer\":\"c\"}",
	};
	struct relay_token t;
	char big[400];
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i], &t) != -EINVAL)
			fail_msg("accepted: %s", bad[i]);
	}
	/* 129-byte account names are over the limit, 128 fit. */
	snprintf(big, sizeof(big),
		 "{\"cid\":\"" CID "\",\"side\":\"a\",\"user\":\"%0129d\",\"peer\":\"bob\"}", 0);
	assert_int_equal(parse(big, &t), -EINVAL);
	snprintf(big, sizeof(big),
		 "{\"cid\":\"" CID "\",\"side\":\"a\",\"user\":\"%0128d\",\"peer\":\"bob\"}", 0);
	assert_int_equal(parse(big, &t), 0);
	assert_int_equal(strlen(t.user), 128);
}

static void
test_check(void **state)
{
	struct tok_key k = key(0), other = key(7);
	struct relay_token t;
	char h[TOK_STR_MAX + 16];
	const char *p = "{\"cid\":\"" CID "\",\"side\":\"b\",\"user\":\"bob\",\"peer\":\"alice\"}";
	(void)state;

	bearer(&k, TOK_KIND_RELAY, NOW + 300, p, h, sizeof(h));
	assert_int_equal(relay_token_check(&k, h, NOW, CID, &t), RELAY_TOK_OK);
	assert_int_equal(t.side, 1);
	assert_true(t.expiry == NOW + 300);
	assert_int_equal(relay_token_check(&k, h, NOW, NULL, &t), RELAY_TOK_OK);
	assert_int_equal(relay_token_check(&k, h, NOW + 301, CID, &t), RELAY_TOK_EXPIRED);
	assert_int_equal(relay_token_check(&other, h, NOW, CID, &t), RELAY_TOK_INVALID);
	assert_int_equal(relay_token_check(&k, h, NOW, "ffffffffffffffffffffffffffffffff", &t),
			 RELAY_TOK_WRONG_SESSION);
	assert_int_equal(relay_token_check(&k, NULL, NOW, CID, &t), RELAY_TOK_MISSING);
	assert_int_equal(relay_token_check(&k, "Bearer ", NOW, CID, &t), RELAY_TOK_MISSING);
	assert_int_equal(relay_token_check(&k, "Basic abc", NOW, CID, &t), RELAY_TOK_INVALID);
	assert_int_equal(relay_token_check(&k, h + 7, NOW, CID, &t), RELAY_TOK_INVALID);
	/* A publish token under the same key is not a relay token. */
	bearer(&k, TOK_KIND_PUBLISH, NOW + 300, p, h, sizeof(h));
	assert_int_equal(relay_token_check(&k, h, NOW, CID, &t), RELAY_TOK_INVALID);
	/* A good MAC over a payload that breaks the contract. */
	bearer(&k, TOK_KIND_RELAY, NOW + 300, "{\"ch\":\"news\",\"peer\":\"0011\"}", h, sizeof(h));
	assert_int_equal(relay_token_check(&k, h, NOW, CID, &t), RELAY_TOK_BAD_PAYLOAD);
	/* Case-insensitive scheme, spaces around the token. */
	bearer(&k, TOK_KIND_RELAY, NOW + 300, p, h, sizeof(h));
	char h2[TOK_STR_MAX + 32];
	snprintf(h2, sizeof(h2), "bearer   %s  ", h + 7);
	assert_int_equal(relay_token_check(&k, h2, NOW, CID, &t), RELAY_TOK_OK);
}

static void
test_cid_and_u64(void **state)
{
	uint64_t v;
	(void)state;

	assert_true(relay_cid_valid(CID));
	assert_false(relay_cid_valid(NULL));
	assert_false(relay_cid_valid("0123456789abcdef0123456789abcdeF"));
	assert_false(relay_cid_valid("0123456789abcdef0123456789abcdef0"));
	assert_false(relay_cid_valid("0123"));
	assert_int_equal(relay_parse_u64(NULL, 7, 100, &v), 0);
	assert_true(v == 7);
	assert_int_equal(relay_parse_u64("", 8, 100, &v), 0);
	assert_true(v == 8);
	assert_int_equal(relay_parse_u64("42", 0, 100, &v), 0);
	assert_true(v == 42);
	assert_int_equal(relay_parse_u64("101", 0, 100, &v), -EINVAL);
	assert_int_equal(relay_parse_u64("-1", 0, 100, &v), -EINVAL);
	assert_int_equal(relay_parse_u64("+1", 0, 100, &v), -EINVAL);
	assert_int_equal(relay_parse_u64(" 1", 0, 100, &v), -EINVAL);
	assert_int_equal(relay_parse_u64("1x", 0, 100, &v), -EINVAL);
	assert_int_equal(relay_parse_u64("99999999999999999999", 0, UINT64_MAX, &v), -EINVAL);
	assert_int_equal(relay_parse_u64("9999999999999999999", 0, UINT64_MAX, &v), 0);
	assert_true(v == UINT64_C(9999999999999999999));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_payload_ok),
		cmocka_unit_test(test_payload_bad),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_cid_and_u64),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
