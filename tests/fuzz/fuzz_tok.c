// SPDX-License-Identifier: MIT
/* libFuzzer target for common/tok: verify, base64 decode, key parsing, mint round trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct tok_key fuzz_key = { {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
	0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
	0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
} };

/* Raw input as a token: almost always refused at the MAC, but every
 * structural check before it runs on hostile bytes. */
static void
fuzz_verify_raw(const uint8_t *data, size_t size)
{
	unsigned char payload[TOK_PAYLOAD_MAX];
	uint64_t exp;

	int r = tok_verify(&fuzz_key, TOK_KIND_RELAY, 1700000000, (const char *)data, size, payload,
			   sizeof(payload), &exp);
	if (r > TOK_PAYLOAD_MAX)
		abort();
}

/* Input as the first part, signed here with the key: the fuzzer cannot
 * forge a MAC, so this is how the body decoder after it gets exercised. */
static void
fuzz_verify_signed(const uint8_t *data, size_t size)
{
	char tok[TOK_STR_MAX + 64];
	unsigned char mac[32], payload[16];

	if (size > TOK_STR_MAX)
		return;
	memcpy(tok, data, size);
	crypto_auth_hmacsha256(mac, data, size, fuzz_key.k);
	tok[size] = '.';
	int m = tok_b64_encode(mac, sizeof(mac), tok + size + 1, sizeof(tok) - size - 1);

	if (m != 43)
		abort();
	int r = tok_verify(&fuzz_key, size > 0 ? data[0] : 0, 1700000000, tok, size + 1 + 43,
			   payload, sizeof(payload), NULL);
	if (r > (int)sizeof(payload))
		abort();
}

/* Lenient decoder, then re-encode: the canonical form decodes to the same bytes. */
static void
fuzz_b64(const uint8_t *data, size_t size)
{
	unsigned char out[1024], back[1024];
	char text[1400];
	size_t cap = size > 0 ? data[0] * 4u : 0;

	if (cap > sizeof(out))
		cap = sizeof(out);
	int n = tok_b64_decode((const char *)data, size, out, cap);

	if (n < 0)
		return;
	if ((size_t)n > cap)
		abort();
	int t = tok_b64_encode(out, (size_t)n, text, sizeof(text));

	if (t < 0 || tok_b64_decode(text, (size_t)t, back, sizeof(back)) != n ||
	    memcmp(out, back, (size_t)n) != 0)
		abort();
}

/* tok_key_parse wants a C string. */
static void
fuzz_key_parse(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	struct tok_key k;

	if (!s)
		return;
	memcpy(s, data, size);
	s[size] = '\0';
	if (tok_key_parse(s, &k) == 0)
		tok_key_wipe(&k);
	free(s);
}

/* Input as a payload: mint must round-trip and any change must be caught. */
static void
fuzz_mint(const uint8_t *data, size_t size)
{
	char tok[TOK_STR_MAX];
	unsigned char back[TOK_PAYLOAD_MAX];
	size_t len = size > TOK_PAYLOAD_MAX ? TOK_PAYLOAD_MAX : size;
	int n = tok_mint(&fuzz_key, TOK_KIND_PUBLISH, 2000000000, data, len, tok, sizeof(tok));

	if (n <= 0 || (size_t)n >= sizeof(tok))
		abort();
	if (tok_verify(&fuzz_key, TOK_KIND_PUBLISH, 1700000000, tok, (size_t)n, back, sizeof(back),
		       NULL) != (int)len ||
	    (len > 0 && memcmp(back, data, len) != 0))
		abort();
	if (size > 0) {
		size_t at = data[0] % (size_t)n;

		tok[at] = tok[at] == 'A' ? 'B' : 'A';
		if (tok_verify(&fuzz_key, TOK_KIND_PUBLISH, 1700000000, tok, (size_t)n, back,
			       sizeof(back), NULL) >= 0)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_verify_raw(data, size);
	fuzz_verify_signed(data, size);
	fuzz_b64(data, size);
	fuzz_key_parse(data, size);
	fuzz_mint(data, size);
	return 0;
}
