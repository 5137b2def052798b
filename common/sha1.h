/* SPDX-License-Identifier: MIT */
/* SHA-1 (FIPS 180-4), for BitTorrent info_hashes only — not for security. */
#ifndef P2PCDN_SHA1_H
#define P2PCDN_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define SHA1_LEN 20

/* BitTorrent names torrents by the SHA-1 of their info dictionary (BEP 3),
 * so the suite needs SHA-1 for compatibility; libsodium has none. Never
 * use it for authentication. */
struct sha1_ctx {
	uint32_t h[5];
	uint64_t len; /* bytes so far */
	uint8_t buf[64];
	size_t nbuf;
};

void sha1_init(struct sha1_ctx *c);
void sha1_update(struct sha1_ctx *c, const void *data, size_t len);
void sha1_final(struct sha1_ctx *c, uint8_t out[SHA1_LEN]);
/* One-shot. */
void sha1(const void *data, size_t len, uint8_t out[SHA1_LEN]);

#endif
