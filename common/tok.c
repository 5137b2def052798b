// SPDX-License-Identifier: MIT
/* Self-contained HMAC-SHA256 tokens, base64url and key parsing on libsodium. */
#include "tok.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/*
 * Wire details not spelled out in tok.h:
 * - the MAC is HMAC-SHA256 over the *text* of the first part (the base64url
 *   characters before the '.'), as JWS does, so the MAC can be checked
 *   before a single byte of the body is decoded;
 * - tok_verify only accepts the exact form tok_mint writes (url alphabet,
 *   no padding, zero filler bits), so every token has one spelling and a
 *   token string can safely key a cache or a revocation list;
 * - a token is valid while now < expiry.
 */
#define TOK_VERSION  1
#define TOK_HDR_LEN  10 /* version:1 | kind:1 | expiry:8 */
#define TOK_MAC_LEN  32 /* HMAC-SHA256 output */
#define TOK_BODY_MAX (TOK_HDR_LEN + TOK_PAYLOAD_MAX)

/* Characters needed for n bytes of unpadded base64. */
#define TOK_B64_LEN(n) ((n) / 3 * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

_Static_assert(TOK_KEY_LEN == crypto_auth_hmacsha256_KEYBYTES, "key is an HMAC-SHA256 key");
_Static_assert(TOK_MAC_LEN == crypto_auth_hmacsha256_BYTES, "MAC is an HMAC-SHA256 tag");
_Static_assert(TOK_B64_LEN(TOK_BODY_MAX) + 1 + TOK_B64_LEN(TOK_MAC_LEN) + 1 <= TOK_STR_MAX,
	       "the largest token must fit in TOK_STR_MAX");

static pthread_once_t tok_once = PTHREAD_ONCE_INIT;

static void
tok_sodium_init(void)
{
	/* libsodium documents that none of its functions may be used when
	 * this fails, and tok_* have no error to report it with: a token
	 * library that silently runs uninitialised crypto is worse than none. */
	if (sodium_init() < 0)
		abort();
}

/* pthread_once rather than sodium_init() per call: sodium_init takes a
 * global lock each time, which every verifying thread would contend on. */
static void
tok_ready(void)
{
	pthread_once(&tok_once, tok_sodium_init);
}

int
tok_memeq(const void *a, const void *b, size_t len)
{
	if (len == 0)
		return 0;
	tok_ready();
	return sodium_memcmp(a, b, len) == 0 ? 0 : -1;
}

static const char tok_b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int
tok_b64_encode(const void *in, size_t len, char *out, size_t outsize)
{
	const unsigned char *p = in;
	size_t need, o = 0, i = 0;

	/* Past this the length no longer fits the int we return. */
	if (len > (size_t)(INT_MAX - 4) / 4 * 3)
		return -ENOBUFS;
	need = TOK_B64_LEN(len);
	if (outsize < need + 1)
		return -ENOBUFS;

	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		out[o++] = tok_b64_alphabet[v >> 18 & 0x3f];
		out[o++] = tok_b64_alphabet[v >> 12 & 0x3f];
		out[o++] = tok_b64_alphabet[v >> 6 & 0x3f];
		out[o++] = tok_b64_alphabet[v & 0x3f];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;

		out[o++] = tok_b64_alphabet[v >> 18 & 0x3f];
		out[o++] = tok_b64_alphabet[v >> 12 & 0x3f];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;

		out[o++] = tok_b64_alphabet[v >> 18 & 0x3f];
		out[o++] = tok_b64_alphabet[v >> 12 & 0x3f];
		out[o++] = tok_b64_alphabet[v >> 6 & 0x3f];
	}
	out[o] = '\0';
	return (int)o;
}

/* Sextet value of c, or -1. strict admits only the url alphabet. */
static int
tok_b64_val(char c, bool strict)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-' || (!strict && c == '+'))
		return 62;
	if (c == '_' || (!strict && c == '/'))
		return 63;
	return -1;
}

/*
 * Decoder behind tok_b64_decode (lenient: both alphabets, optional padding)
 * and tok_verify (strict: url alphabet, no padding). Both reject non-zero
 * filler bits in the last character, which no encoder produces and which
 * would otherwise give one byte string several spellings.
 */
static int
tok_b64_decode_mode(const char *in, size_t len, void *out, size_t outsize, bool strict)
{
	unsigned char *o = out;
	size_t pad = 0, rem, outlen, i, n = 0;
	uint32_t acc = 0;

	if (!in && len > 0)
		return -EINVAL;
	if (!strict) {
		while (pad < 2 && pad < len && in[len - 1 - pad] == '=')
			pad++;
		/* Padding only ever completes a 4-character group. */
		if (pad > 0 && len % 4 != 0)
			return -EINVAL;
		len -= pad;
	}
	rem = len % 4;
	if (rem == 1 || (pad == 1 && rem != 3) || (pad == 2 && rem != 2))
		return -EINVAL;

	/* Validate everything first so malformed input is -EINVAL whatever
	 * the size of out. */
	for (i = 0; i < len; i++)
		if (tok_b64_val(in[i], strict) < 0)
			return -EINVAL;
	if (rem == 2 && (tok_b64_val(in[len - 1], strict) & 0x0f) != 0)
		return -EINVAL;
	if (rem == 3 && (tok_b64_val(in[len - 1], strict) & 0x03) != 0)
		return -EINVAL;

	outlen = len / 4 * 3 + (rem ? rem - 1 : 0);
	if (outlen > outsize || outlen > INT_MAX)
		return -ENOBUFS;

	for (i = 0; i < len; i++) {
		acc = acc << 6 | (uint32_t)tok_b64_val(in[i], strict);
		if (i % 4 == 3) {
			o[n++] = (unsigned char)(acc >> 16);
			o[n++] = (unsigned char)(acc >> 8);
			o[n++] = (unsigned char)acc;
			acc = 0;
		}
	}
	if (rem == 2) {
		o[n++] = (unsigned char)(acc >> 4);
	} else if (rem == 3) {
		o[n++] = (unsigned char)(acc >> 10);
		o[n++] = (unsigned char)(acc >> 2);
	}
	return (int)n;
}

int
tok_b64_decode(const char *in, size_t len, void *out, size_t outsize)
{
	return tok_b64_decode_mode(in, len, out, outsize, false);
}

int
tok_key_parse(const char *s, struct tok_key *ret_key)
{
	struct tok_key k;
	size_t n, binlen = 0;
	int r = -EINVAL;

	if (!s)
		return -EINVAL;
	tok_ready();
	n = strlen(s);

	/* 64 characters cannot be base64 of 32 bytes (that is 43 or 44), so
	 * the length alone tells the two forms apart. */
	if (n == 2 * TOK_KEY_LEN) {
		if (sodium_hex2bin(k.k, sizeof(k.k), s, n, NULL, &binlen, NULL) == 0 &&
		    binlen == TOK_KEY_LEN)
			r = 0;
	} else if (tok_b64_decode(s, n, k.k, sizeof(k.k)) == TOK_KEY_LEN) {
		r = 0;
	}
	if (r == 0)
		memcpy(ret_key, &k, sizeof(k));
	sodium_memzero(&k, sizeof(k));
	return r;
}

void
tok_key_wipe(struct tok_key *key)
{
	if (key)
		sodium_memzero(key, sizeof(*key));
}

int
tok_mint(const struct tok_key *key, uint8_t kind, uint64_t expiry, const void *payload, size_t len,
	 char *out, size_t outsize)
{
	unsigned char body[TOK_BODY_MAX], mac[TOK_MAC_LEN];
	int n, m;

	if (len > TOK_PAYLOAD_MAX || (!payload && len > 0))
		return -EINVAL;
	tok_ready();

	body[0] = TOK_VERSION;
	body[1] = kind;
	for (int i = 0; i < 8; i++)
		body[2 + i] = (unsigned char)(expiry >> (56 - 8 * i));
	if (len > 0)
		memcpy(body + TOK_HDR_LEN, payload, len);

	n = tok_b64_encode(body, TOK_HDR_LEN + len, out, outsize);
	if (n < 0 || (size_t)n + 1 + TOK_B64_LEN(TOK_MAC_LEN) + 1 > outsize) {
		/* Never leave half a token behind for a caller that ignores errors. */
		if (outsize > 0)
			out[0] = '\0';
		return -ENOBUFS;
	}
	crypto_auth_hmacsha256(mac, (const unsigned char *)out, (size_t)n, key->k);
	out[n] = '.';
	m = tok_b64_encode(mac, sizeof(mac), out + n + 1, outsize - (size_t)n - 1);
	return n + 1 + m;
}

int
tok_verify(const struct tok_key *key, uint8_t kind, uint64_t now, const char *tok, size_t len,
	   void *payload, size_t cap, uint64_t *ret_expiry)
{
	unsigned char body[TOK_BODY_MAX], mac[TOK_MAC_LEN], want[TOK_MAC_LEN];
	const char *dot;
	size_t blen, plen;
	uint64_t expiry = 0;
	int n;

	if (!tok || len == 0 || len >= TOK_STR_MAX)
		return -EINVAL;
	dot = memchr(tok, '.', len);
	if (!dot)
		return -EINVAL;
	blen = (size_t)(dot - tok);
	if (blen < TOK_B64_LEN(TOK_HDR_LEN) || blen > TOK_B64_LEN(TOK_BODY_MAX) ||
	    len - blen - 1 != TOK_B64_LEN(TOK_MAC_LEN))
		return -EINVAL;
	if (tok_b64_decode_mode(dot + 1, len - blen - 1, mac, sizeof(mac), true) != TOK_MAC_LEN)
		return -EINVAL;

	tok_ready();
	crypto_auth_hmacsha256(want, (const unsigned char *)tok, blen, key->k);
	if (tok_memeq(want, mac, TOK_MAC_LEN) != 0)
		return -EBADMSG;

	/* From here on the body is known to come from a holder of the key. */
	n = tok_b64_decode_mode(tok, blen, body, sizeof(body), true);
	if (n < TOK_HDR_LEN)
		return -EINVAL;
	if (body[0] != TOK_VERSION || body[1] != kind)
		return -EBADMSG;
	for (int i = 0; i < 8; i++)
		expiry = expiry << 8 | body[2 + i];
	if (now >= expiry)
		return -ETIME;
	plen = (size_t)n - TOK_HDR_LEN;
	if (plen > cap)
		return -ENOBUFS;
	if (plen > 0)
		memcpy(payload, body + TOK_HDR_LEN, plen);
	if (ret_expiry)
		*ret_expiry = expiry;
	return (int)plen;
}
