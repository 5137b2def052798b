// SPDX-License-Identifier: MIT
/* Unit tests for common/tok: base64, key parsing, minting and verifying tokens. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <sodium.h>

#include "tok.h"

#define NOW     UINT64_C(1700000000)
#define EXPIRES (NOW + 3600)

/* 32 bytes 0x00..0x1f, the key every test uses unless it says otherwise. */
static struct tok_key
test_key(void)
{
	struct tok_key k;

	for (int i = 0; i < TOK_KEY_LEN; i++)
		k.k[i] = (unsigned char)i;
	return k;
}

static int
mint(const struct tok_key *k, uint8_t kind, uint64_t expiry, const char *payload, char *out)
{
	int n = tok_mint(k, kind, expiry, payload, payload ? strlen(payload) : 0, out, TOK_STR_MAX);

	assert_true(n > 0);
	assert_int_equal(strlen(out), n);
	return n;
}

/* ---- base64 ---- */

static const struct {
	const char *raw, *b64;
} rfc4648[] = {
	{ "", "" },           { "f", "Zg" },          { "fo", "Zm8" },          { "foo", "Zm9v" },
	{ "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" },
};

static void
test_b64_encode_vectors(void **state)
{
	char out[16];

	(void)state;
	for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
		int n = tok_b64_encode(rfc4648[i].raw, strlen(rfc4648[i].raw), out, sizeof(out));

		assert_int_equal(n, strlen(rfc4648[i].b64));
		assert_string_equal(out, rfc4648[i].b64);
	}
	/* The url alphabet: 0xfb 0xff is "+/8=" in the standard one. */
	assert_int_equal(tok_b64_encode("\xfb\xff", 2, out, sizeof(out)), 3);
	assert_string_equal(out, "-_8");
	assert_int_equal(tok_b64_encode("\xff\xff\xff", 3, out, sizeof(out)), 4);
	assert_string_equal(out, "____");
}

static void
test_b64_encode_nobufs(void **state)
{
	char out[16];

	(void)state;
	memset(out, 'X', sizeof(out));
	/* "foobar" needs 8 characters plus the NUL. */
	assert_int_equal(tok_b64_encode("foobar", 6, out, 8), -ENOBUFS);
	assert_int_equal(out[0], 'X');
	assert_int_equal(tok_b64_encode("foobar", 6, out, 9), 8);
	assert_int_equal(out[9], 'X');
	assert_int_equal(tok_b64_encode("", 0, out, 0), -ENOBUFS);
	assert_int_equal(tok_b64_encode("", 0, out, 1), 0);
	assert_string_equal(out, "");
	assert_int_equal(tok_b64_encode("f", 1, out, 2), -ENOBUFS);
	assert_int_equal(tok_b64_encode("f", 1, out, 3), 2);
}

static void
test_b64_decode_vectors(void **state)
{
	unsigned char out[16];

	(void)state;
	for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
		const char *b = rfc4648[i].b64;
		int n = tok_b64_decode(b, strlen(b), out, sizeof(out));

		assert_int_equal(n, strlen(rfc4648[i].raw));
		assert_memory_equal(out, rfc4648[i].raw, (size_t)n);
	}
	/* Padded forms. */
	assert_int_equal(tok_b64_decode("Zg==", 4, out, sizeof(out)), 1);
	assert_int_equal(out[0], 'f');
	assert_int_equal(tok_b64_decode("Zm8=", 4, out, sizeof(out)), 2);
	assert_memory_equal(out, "fo", 2);
	assert_int_equal(tok_b64_decode("Zm9vYmFy", 8, out, sizeof(out)), 6);
	/* Both alphabets, and length-delimited input. */
	assert_int_equal(tok_b64_decode("+/8=", 4, out, sizeof(out)), 2);
	assert_memory_equal(out, "\xfb\xff", 2);
	assert_int_equal(tok_b64_decode("-_8", 3, out, sizeof(out)), 2);
	assert_memory_equal(out, "\xfb\xff", 2);
	assert_int_equal(tok_b64_decode("Zm9vJUNK", 4, out, sizeof(out)), 3);
	assert_memory_equal(out, "foo", 3);
	assert_int_equal(tok_b64_decode(NULL, 0, out, sizeof(out)), 0);
}

static void
test_b64_decode_malformed(void **state)
{
	static const char *const bad[] = {
		"Z",        /* one leftover character carries no whole byte */
		"Zm9vY",    /* same after a full group */
		"Zg=",      /* padding must complete the group */
		"Zg===",    /* too much padding */
		"Z===",     /* padding for a 1-character tail */
		"Zm9=",     /* correctly padded, but filler bits set */
		"Zm==",     /* correctly padded, but filler bits set */
		"Zm8==",    /* padding past the group */
		"Zh",       /* non-zero filler bits */
		"Zm9",      /* non-zero filler bits (3-character tail) */
		"=Zg=",     /* padding in the middle */
		"Zg==Zg==", /* padding in the middle */
		"====",     /* padding only */
		"Zm9v YmFy", "Zm9v\nYmFy", "Zm9v.YmFy", "Zm9v!", "Zm9\xc3\xa9",
	};
	unsigned char out[16];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(out, 0xee, sizeof(out));
		assert_int_equal(tok_b64_decode(bad[i], strlen(bad[i]), out, sizeof(out)), -EINVAL);
	}
	/* An embedded NUL is not a terminator here, just a bad character. */
	assert_int_equal(tok_b64_decode("Zm9v\0mFy", 8, out, sizeof(out)), -EINVAL);
	assert_int_equal(tok_b64_decode(NULL, 4, out, sizeof(out)), -EINVAL);
}

static void
test_b64_decode_nobufs(void **state)
{
	unsigned char out[8];

	(void)state;
	memset(out, 0xee, sizeof(out));
	assert_int_equal(tok_b64_decode("Zm9vYmFy", 8, out, 5), -ENOBUFS);
	assert_int_equal(out[0], 0xee);
	assert_int_equal(tok_b64_decode("Zm9vYmFy", 8, out, 6), 6);
	assert_int_equal(out[6], 0xee);
	assert_int_equal(tok_b64_decode("Zg", 2, out, 0), -ENOBUFS);
	/* Malformed beats too small. */
	assert_int_equal(tok_b64_decode("Zh", 2, out, 0), -EINVAL);
}

static void
test_b64_round_trip(void **state)
{
	unsigned char raw[300], back[300];
	char text[401];

	(void)state;
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (unsigned char)(i * 37 + 11);
	for (size_t len = 0; len <= sizeof(raw); len++) {
		int n = tok_b64_encode(raw, len, text, sizeof(text));

		assert_int_equal(n, (len * 4 + 2) / 3);
		assert_int_equal(tok_b64_decode(text, (size_t)n, back, sizeof(back)), len);
		assert_memory_equal(back, raw, len);
	}
}

/* ---- keys ---- */

static void
test_key_parse_forms(void **state)
{
	const struct tok_key want = test_key();
	struct tok_key k;
	char b64[64];

	(void)state;
	memset(&k, 0, sizeof(k));
	assert_int_equal(
		tok_key_parse("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
			      &k),
		0);
	assert_memory_equal(k.k, want.k, TOK_KEY_LEN);

	memset(&k, 0, sizeof(k));
	assert_int_equal(
		tok_key_parse("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
			      &k),
		0);
	assert_memory_equal(k.k, want.k, TOK_KEY_LEN);

	/* Base64 of the same key, url without padding, then with. */
	assert_int_equal(tok_b64_encode(want.k, TOK_KEY_LEN, b64, sizeof(b64)), 43);
	memset(&k, 0, sizeof(k));
	assert_int_equal(tok_key_parse(b64, &k), 0);
	assert_memory_equal(k.k, want.k, TOK_KEY_LEN);
	strcat(b64, "=");
	memset(&k, 0, sizeof(k));
	assert_int_equal(tok_key_parse(b64, &k), 0);
	assert_memory_equal(k.k, want.k, TOK_KEY_LEN);

	/* Standard alphabet: 0xff bytes need '/' there. */
	struct tok_key ones;

	memset(ones.k, 0xff, sizeof(ones.k));
	assert_int_equal(tok_key_parse("//////////////////////////////////////////8=", &k), 0);
	assert_memory_equal(k.k, ones.k, TOK_KEY_LEN);
	assert_int_equal(tok_key_parse("__________________________________________8", &k), 0);
	assert_memory_equal(k.k, ones.k, TOK_KEY_LEN);
}

static void
test_key_parse_bad(void **state)
{
	static const char *const bad[] = {
		"",
		/* 63 and 65 hex digits */
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1",
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0",
		/* 64 characters, one not hex */
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g",
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1 ",
		/* 62 hex digits = 31 bytes, 66 = 33 bytes */
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e",
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
		/* base64 of 31 and 33 bytes */
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g",
		/* 43 characters with a bad one, filler bits set, surrounding space */
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh!",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9",
		" AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n",
		"secret",
	};
	struct tok_key k, before;

	(void)state;
	/* The good spelling of the 43-character key, to prove the bad ones are close. */
	assert_int_equal(tok_key_parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", &k), 0);

	memset(&k, 0x42, sizeof(k));
	before = k;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(tok_key_parse(bad[i], &k), -EINVAL);
		assert_memory_equal(&k, &before, sizeof(k));
	}
	assert_int_equal(tok_key_parse(NULL, &k), -EINVAL);
}

static void
test_key_wipe(void **state)
{
	struct tok_key k = test_key(), zero;

	(void)state;
	memset(&zero, 0, sizeof(zero));
	tok_key_wipe(&k);
	assert_memory_equal(&k, &zero, sizeof(k));
	tok_key_wipe(NULL);
}

static void
test_memeq(void **state)
{
	(void)state;
	assert_int_equal(tok_memeq("abcdef", "abcdef", 6), 0);
	assert_int_not_equal(tok_memeq("abcdef", "abcdeg", 6), 0);
	assert_int_not_equal(tok_memeq("abcdef", "bbcdef", 6), 0);
	assert_int_equal(tok_memeq("abcdef", "abcdeg", 5), 0);
	assert_int_equal(tok_memeq("x", "y", 0), 0);
}

/* ---- tokens ---- */

static void
test_round_trip(void **state)
{
	struct tok_key k = test_key();
	char t[TOK_STR_MAX], p[64];
	uint64_t exp = 0;
	int n;

	(void)state;
	n = mint(&k, TOK_KIND_RELAY, EXPIRES, "peer=3030c112c8abcd", t);
	assert_non_null(strchr(t, '.'));
	memset(p, 0, sizeof(p));
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, NOW, t, (size_t)n, p, sizeof(p), &exp),
			 strlen("peer=3030c112c8abcd"));
	assert_string_equal(p, "peer=3030c112c8abcd");
	assert_true(exp == EXPIRES);

	/* ret_expiry is optional. */
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, NOW, t, (size_t)n, p, sizeof(p), NULL), 19);

	/* Only URL- and header-safe characters. */
	for (int i = 0; i < n; i++)
		assert_non_null(strchr(
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", t[i]));
}

static void
test_wire_format(void **state)
{
	struct tok_key k = test_key();
	unsigned char body[10 + 3], mac[32];
	char want[TOK_STR_MAX], got[TOK_STR_MAX];
	int n;

	(void)state;
	/* Built by hand from the tok.h layout: version 1, kind, BE expiry, payload;
	 * MAC = HMAC-SHA256 over the text of the first part. */
	body[0] = 1;
	body[1] = TOK_KIND_PUBLISH;
	for (int i = 0; i < 8; i++)
		body[2 + i] = (unsigned char)(EXPIRES >> (56 - 8 * i));
	memcpy(body + 10, "abc", 3);
	n = tok_b64_encode(body, sizeof(body), want, sizeof(want));
	assert_true(n > 0);
	crypto_auth_hmacsha256(mac, (const unsigned char *)want, (size_t)n, k.k);
	want[n] = '.';
	assert_int_equal(
		tok_b64_encode(mac, sizeof(mac), want + n + 1, sizeof(want) - (size_t)n - 1), 43);

	assert_int_equal(tok_mint(&k, TOK_KIND_PUBLISH, EXPIRES, "abc", 3, got, sizeof(got)),
			 strlen(want));
	assert_string_equal(got, want);
}

static void
test_payload_bounds(void **state)
{
	struct tok_key k = test_key();
	unsigned char in[TOK_PAYLOAD_MAX + 1], out[TOK_PAYLOAD_MAX];
	char t[TOK_STR_MAX];
	int n;

	(void)state;
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(255 - i);

	/* Empty payload, NULL pointer allowed. */
	n = tok_mint(&k, TOK_KIND_RELAY, EXPIRES, NULL, 0, t, sizeof(t));
	assert_true(n > 0);
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, NOW, t, (size_t)n, NULL, 0, NULL), 0);

	/* The largest payload fits TOK_STR_MAX and comes back intact. */
	n = tok_mint(&k, TOK_KIND_RELAY, EXPIRES, in, TOK_PAYLOAD_MAX, t, sizeof(t));
	assert_true(n > 0 && n < TOK_STR_MAX);
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, NOW, t, (size_t)n, out, sizeof(out), NULL),
			 TOK_PAYLOAD_MAX);
	assert_memory_equal(out, in, TOK_PAYLOAD_MAX);

	assert_int_equal(
		tok_mint(&k, TOK_KIND_RELAY, EXPIRES, in, TOK_PAYLOAD_MAX + 1, t, sizeof(t)),
		-EINVAL);
	assert_int_equal(tok_mint(&k, TOK_KIND_RELAY, EXPIRES, NULL, 1, t, sizeof(t)), -EINVAL);
}

static void
test_mint_nobufs(void **state)
{
	struct tok_key k = test_key();
	char t[TOK_STR_MAX], small[TOK_STR_MAX];
	int n;

	(void)state;
	n = mint(&k, TOK_KIND_RELAY, EXPIRES, "payload", t);
	/* Every size short of n+1 fails and leaves an empty string, not half a token. */
	for (int size = 1; size <= n; size++) {
		memset(small, 'X', sizeof(small));
		assert_int_equal(
			tok_mint(&k, TOK_KIND_RELAY, EXPIRES, "payload", 7, small, (size_t)size),
			-ENOBUFS);
		assert_int_equal(small[0], '\0');
	}
	assert_int_equal(tok_mint(&k, TOK_KIND_RELAY, EXPIRES, "payload", 7, small, 0), -ENOBUFS);
	memset(small, 'X', sizeof(small));
	assert_int_equal(tok_mint(&k, TOK_KIND_RELAY, EXPIRES, "payload", 7, small, (size_t)n + 1),
			 n);
	assert_string_equal(small, t);
}

static void
test_expiry(void **state)
{
	struct tok_key k = test_key();
	char t[TOK_STR_MAX], p[16];
	uint64_t exp = 7;
	int n;

	(void)state;
	n = mint(&k, TOK_KIND_RELAY, EXPIRES, "x", t);
	assert_int_equal(
		tok_verify(&k, TOK_KIND_RELAY, EXPIRES - 1, t, (size_t)n, p, sizeof(p), NULL), 1);
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, 0, t, (size_t)n, p, sizeof(p), NULL), 1);
	/* Valid while now < expiry. */
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, EXPIRES, t, (size_t)n, p, sizeof(p), &exp),
			 -ETIME);
	assert_int_equal(
		tok_verify(&k, TOK_KIND_RELAY, EXPIRES + 1, t, (size_t)n, p, sizeof(p), &exp),
		-ETIME);
	assert_int_equal(
		tok_verify(&k, TOK_KIND_RELAY, UINT64_MAX, t, (size_t)n, p, sizeof(p), &exp),
		-ETIME);
	assert_true(exp == 7);

	n = mint(&k, TOK_KIND_RELAY, 0, "x", t);
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, 0, t, (size_t)n, p, sizeof(p), NULL),
			 -ETIME);

	n = mint(&k, TOK_KIND_RELAY, UINT64_MAX, "x", t);
	assert_int_equal(
		tok_verify(&k, TOK_KIND_RELAY, UINT64_MAX - 1, t, (size_t)n, p, sizeof(p), &exp),
		1);
	assert_true(exp == UINT64_MAX);
}

static void
test_wrong_kind_and_key(void **state)
{
	struct tok_key k = test_key(), other = test_key();
	char t[TOK_STR_MAX], p[16];
	int n;

	(void)state;
	other.k[31] ^= 1;
	n = mint(&k, TOK_KIND_RELAY, EXPIRES, "x", t);
	assert_int_equal(tok_verify(&k, TOK_KIND_PUBLISH, NOW, t, (size_t)n, p, sizeof(p), NULL),
			 -EBADMSG);
	assert_int_equal(tok_verify(&k, 0, NOW, t, (size_t)n, p, sizeof(p), NULL), -EBADMSG);
	assert_int_equal(tok_verify(&other, TOK_KIND_RELAY, NOW, t, (size_t)n, p, sizeof(p), NULL),
			 -EBADMSG);
	/* A bad MAC is reported as such even when the token is also expired. */
	assert_int_equal(
		tok_verify(&other, TOK_KIND_RELAY, EXPIRES, t, (size_t)n, p, sizeof(p), NULL),
		-EBADMSG);

	n = mint(&k, TOK_KIND_PUBLISH, EXPIRES, "x", t);
	assert_int_equal(tok_verify(&k, TOK_KIND_PUBLISH, NOW, t, (size_t)n, p, sizeof(p), NULL),
			 1);
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, NOW, t, (size_t)n, p, sizeof(p), NULL),
			 -EBADMSG);
}

/* Signs an arbitrary first part with the test key, as a key holder could. */
static int
forge(const unsigned char *body, size_t len, char *out)
{
	struct tok_key k = test_key();
	unsigned char mac[32];
	int n = tok_b64_encode(body, len, out, TOK_STR_MAX);

	assert_true(n >= 0);
	crypto_auth_hmacsha256(mac, (const unsigned char *)out, (size_t)n, k.k);
	out[n] = '.';
	return n + 1 + tok_b64_encode(mac, sizeof(mac), out + n + 1, TOK_STR_MAX - (size_t)n - 1);
}

static void
test_version(void **state)
{
	struct tok_key k = test_key();
	unsigned char body[11] = { 1,    TOK_KIND_RELAY, 0xff, 0xff, 0xff, 0xff,
				   0xff, 0xff,           0xff, 0xff, 'z' };
	char t[TOK_STR_MAX], p[4];
	int n;

	(void)state;
	/* The forger is right for version 1 ... */
	n = forge(body, sizeof(body), t);
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, NOW, t, (size_t)n, p, sizeof(p), NULL), 1);
	/* ... and a correctly signed unknown version is still refused. */
	body[0] = 2;
	n = forge(body, sizeof(body), t);
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, NOW, t, (size_t)n, p, sizeof(p), NULL),
			 -EBADMSG);
	body[0] = 0;
	n = forge(body, sizeof(body), t);
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, NOW, t, (size_t)n, p, sizeof(p), NULL),
			 -EBADMSG);
	/* A signed body shorter than the header is malformed. */
	body[0] = 1;
	n = forge(body, 9, t);
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, NOW, t, (size_t)n, p, sizeof(p), NULL),
			 -EINVAL);
}

static void
test_signed_but_noncanonical(void **state)
{
	struct tok_key k = test_key();
	unsigned char mac[32];
	char t[TOK_STR_MAX], p[4];
	/* 11 bytes whose base64 contains '-' and '_' so the standard alphabet differs. */
	unsigned char body[11] = { 1,    TOK_KIND_RELAY, 0xfb, 0xff, 0xff, 0xff,
				   0xff, 0xff,           0xff, 0xff, 0xff };
	int n;

	(void)state;
	n = forge(body, sizeof(body), t);
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, NOW, t, (size_t)n, p, sizeof(p), NULL), 1);

	/* Same bytes in the standard alphabet, signed: refused as malformed. */
	char std[64];
	int m = tok_b64_encode(body, sizeof(body), std, sizeof(std));

	assert_true(m > 0);
	for (int i = 0; i < m; i++)
		std[i] = std[i] == '-' ? '+' : std[i] == '_' ? '/' : std[i];
	assert_true(strpbrk(std, "+/") != NULL);
	crypto_auth_hmacsha256(mac, (const unsigned char *)std, (size_t)m, k.k);
	std[m] = '.';
	n = m + 1 + tok_b64_encode(mac, sizeof(mac), std + m + 1, sizeof(std) - (size_t)m - 1);
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, NOW, std, (size_t)n, p, sizeof(p), NULL),
			 -EINVAL);
}

static void
test_tamper_every_byte(void **state)
{
	struct tok_key k = test_key();
	char t[TOK_STR_MAX], m[TOK_STR_MAX], p[64];
	int n;

	(void)state;
	n = mint(&k, TOK_KIND_RELAY, EXPIRES, "some payload", t);
	/* No single-character change anywhere yields a token that verifies. */
	for (int i = 0; i < n; i++) {
		static const char repl[] = "AQgw-_.=+/ \x80";

		for (const char *c = repl; *c; c++) {
			if (*c == t[i])
				continue;
			memcpy(m, t, (size_t)n);
			m[i] = *c;
			int r = tok_verify(&k, TOK_KIND_RELAY, NOW, m, (size_t)n, p, sizeof(p),
					   NULL);

			assert_true(r == -EBADMSG || r == -EINVAL);
		}
	}
}

static void
test_tampered_mac(void **state)
{
	struct tok_key k = test_key();
	char t[TOK_STR_MAX], p[64];
	char *dot;
	int n;

	(void)state;
	n = mint(&k, TOK_KIND_RELAY, EXPIRES, "abc", t);
	dot = strchr(t, '.');
	/* Flip one MAC character to another valid, canonical one: bad MAC, not malformed. */
	dot[1] = dot[1] == 'A' ? 'B' : 'A';
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, NOW, t, (size_t)n, p, sizeof(p), NULL),
			 -EBADMSG);

	n = mint(&k, TOK_KIND_RELAY, EXPIRES, "abc", t);
	t[0] = t[0] == 'A' ? 'B' : 'A';
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, NOW, t, (size_t)n, p, sizeof(p), NULL),
			 -EBADMSG);
}

static void
test_truncated_and_extended(void **state)
{
	struct tok_key k = test_key();
	char t[TOK_STR_MAX + 8], p[64];
	int n;

	(void)state;
	n = mint(&k, TOK_KIND_RELAY, EXPIRES, "some payload", t);
	for (int len = 0; len < n; len++) {
		int r = tok_verify(&k, TOK_KIND_RELAY, NOW, t, (size_t)len, p, sizeof(p), NULL);

		assert_true(r == -EINVAL || r == -EBADMSG);
	}
	/* Extra characters after the MAC. */
	strcat(t, "A");
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, NOW, t, (size_t)n + 1, p, sizeof(p), NULL),
			 -EINVAL);
	t[n] = '=';
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, NOW, t, (size_t)n + 1, p, sizeof(p), NULL),
			 -EINVAL);
	/* Dropping the MAC's first character. */
	t[n] = '\0';
	char *dot = strchr(t, '.');

	memmove(dot + 1, dot + 2, strlen(dot + 2) + 1);
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, NOW, t, strlen(t), p, sizeof(p), NULL),
			 -EINVAL);
}

static void
test_malformed(void **state)
{
	struct tok_key k = test_key();
	char big[TOK_STR_MAX + 1], p[16];
	uint64_t exp = 7;
	static const char *const bad[] = {
		"",
		".",
		"abc",
		"AQEAAAAAZVNjAHg",
		".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"AQEAAAAAZVNjAHg.",
		"AQEAAAAAZVNjAHg.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"AQEAAAAAZVNjAHg.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"AQEAAAAAZVNjAHg.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB",
		"AQEAAAAAZVNjAHg..AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"AQEAAAAAZVNj.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, NOW, bad[i], strlen(bad[i]), p,
					    sizeof(p), &exp),
				 -EINVAL);
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, NOW, NULL, 10, p, sizeof(p), &exp),
			 -EINVAL);

	/* A well-formed MAC part behind an oversized first part. */
	memset(big, 'A', sizeof(big));
	big[TOK_STR_MAX - 45] = '.';
	assert_int_equal(
		tok_verify(&k, TOK_KIND_RELAY, NOW, big, TOK_STR_MAX - 1, p, sizeof(p), &exp),
		-EINVAL);
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, NOW, big, sizeof(big), p, sizeof(p), &exp),
			 -EINVAL);
	assert_true(exp == 7);
}

static void
test_payload_cap(void **state)
{
	struct tok_key k = test_key();
	char t[TOK_STR_MAX], p[8];
	uint64_t exp = 7;
	int n;

	(void)state;
	n = mint(&k, TOK_KIND_RELAY, EXPIRES, "1234567", t);
	memset(p, 'X', sizeof(p));
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, NOW, t, (size_t)n, p, 6, &exp), -ENOBUFS);
	assert_int_equal(p[0], 'X');
	assert_true(exp == 7);
	assert_int_equal(tok_verify(&k, TOK_KIND_RELAY, NOW, t, (size_t)n, p, 7, &exp), 7);
	assert_memory_equal(p, "1234567", 7);
	assert_int_equal(p[7], 'X');
}

struct verify_job {
	const char *tok;
	size_t len;
	int failures;
};

static void *
verify_many(void *arg)
{
	struct verify_job *j = arg;
	struct tok_key k = test_key();
	char p[64];

	for (int i = 0; i < 2000; i++)
		if (tok_verify(&k, TOK_KIND_RELAY, NOW, j->tok, j->len, p, sizeof(p), NULL) != 3)
			j->failures++;
	return NULL;
}

static void
test_threads(void **state)
{
	struct tok_key k = test_key();
	char t[TOK_STR_MAX];
	pthread_t th[4];
	struct verify_job jobs[4];
	int n;

	(void)state;
	n = mint(&k, TOK_KIND_RELAY, EXPIRES, "abc", t);
	for (int i = 0; i < 4; i++) {
		jobs[i] = (struct verify_job){ t, (size_t)n, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, verify_many, &jobs[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(jobs[i].failures, 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64_encode_vectors),
		cmocka_unit_test(test_b64_encode_nobufs),
		cmocka_unit_test(test_b64_decode_vectors),
		cmocka_unit_test(test_b64_decode_malformed),
		cmocka_unit_test(test_b64_decode_nobufs),
		cmocka_unit_test(test_b64_round_trip),
		cmocka_unit_test(test_key_parse_forms),
		cmocka_unit_test(test_key_parse_bad),
		cmocka_unit_test(test_key_wipe),
		cmocka_unit_test(test_memeq),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_wire_format),
		cmocka_unit_test(test_payload_bounds),
		cmocka_unit_test(test_mint_nobufs),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_wrong_kind_and_key),
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_signed_but_noncanonical),
		cmocka_unit_test(test_tamper_every_byte),
		cmocka_unit_test(test_tampered_mac),
		cmocka_unit_test(test_truncated_and_extended),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_payload_cap),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
