/* SPDX-License-Identifier: MIT */
/* Self-contained tokens: payload + expiry + HMAC-SHA256, checked offline. */
#ifndef P2PCDN_TOK_H
#define P2PCDN_TOK_H

#include <stddef.h>
#include <stdint.h>

#define TOK_KEY_LEN     32   /* HMAC-SHA256 key bytes */
#define TOK_PAYLOAD_MAX 512  /* bytes of opaque payload */
#define TOK_STR_MAX     1024 /* upper bound of a formatted token incl. NUL */

/*
 * Wire form (URL- and header-safe, no padding):
 *   base64url( version:1 | kind:1 | expiry:8 (unix s, BE) | payload ) "." base64url( mac:32 )
 * kind separates token families (relay, publish, ...) so a token minted for
 * one purpose never verifies as another even under the same key.
 */
struct tok_key {
	unsigned char k[TOK_KEY_LEN];
};

/* Parses a key given as 64 hex digits or base64 (standard or url) of 32
 * bytes. Returns 0, or -EINVAL; ret_key written only on success. */
int tok_key_parse(const char *s, struct tok_key *ret_key);

/* Wipes a key (sodium_memzero). NULL-safe. */
void tok_key_wipe(struct tok_key *key);

/* Mints a token of `kind` expiring at `expiry` (unix seconds) carrying
 * payload[0..len). Writes a NUL-terminated string into out.
 * Returns the string length, or -EINVAL (len > TOK_PAYLOAD_MAX) /
 * -ENOBUFS (out too small). Thread-safe. */
int tok_mint(const struct tok_key *key, uint8_t kind, uint64_t expiry, const void *payload,
	     size_t len, char *out, size_t outsize);

/* Verifies a token string (len bytes, NUL not needed) of `kind` at time
 * `now`. The MAC is checked in constant time before anything else is
 * trusted. On success copies the payload into payload (cap bytes) and
 * returns its length; *ret_expiry gets the expiry if non-NULL.
 * Errors: -EINVAL malformed, -EBADMSG bad MAC or wrong kind/version,
 * -ETIME expired, -ENOBUFS payload larger than cap. Thread-safe. */
int tok_verify(const struct tok_key *key, uint8_t kind, uint64_t now, const char *tok, size_t len,
	       void *payload, size_t cap, uint64_t *ret_expiry);

/* Token kinds used by the suite. */
enum tok_kind {
	TOK_KIND_RELAY = 1,
	TOK_KIND_PUBLISH = 2,
	TOK_KIND_PULL = 3,
};

/* Constant-time comparison of two byte strings of equal length: 0 equal. */
int tok_memeq(const void *a, const void *b, size_t len);

/* base64url without padding. tok_b64_encode returns the output length
 * (NUL written) or -ENOBUFS; tok_b64_decode accepts url and standard
 * alphabets, with or without padding, returns decoded length or -EINVAL /
 * -ENOBUFS. */
int tok_b64_encode(const void *in, size_t len, char *out, size_t outsize);
int tok_b64_decode(const char *in, size_t len, void *out, size_t outsize);

#endif
