// SPDX-License-Identifier: MIT
/* libFuzzer target for the tracker's UDP packet parser (BEP 15 requests, BEP 41 options). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * The input is one datagram, copied to a buffer of exactly its size so ASan
 * catches any read past the end. Beyond memory safety, the result must agree
 * with what BEP 15 says the header means.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *pkt = malloc(size ? size : 1);
	struct trk_udp_req r;
	int ret;

	if (!pkt)
		return 0;
	memcpy(pkt, data, size);
	ret = trk_udp_parse(pkt, size, &r);
	if (size < 16) {
		if (ret != -ENODATA)
			abort();
		goto out;
	}
	if (ret != 0 && ret != -EPROTO && ret != -EOPNOTSUPP && ret != -EBADMSG)
		abort();
	/* The header is there on every answer but -ENODATA. */
	if (r.action != get32(pkt + 8) || r.transaction_id != get32(pkt + 12) ||
	    memcmp(r.connection_id, pkt, 8) != 0)
		abort();
	if (ret != 0)
		goto out;
	switch (r.action) {
	case TRK_UDP_CONNECT:
		break;
	case TRK_UDP_ANNOUNCE:
		if (size < 98 || memcmp(r.info_hash, pkt + 16, TRK_HASH_LEN) != 0 ||
		    r.port != (pkt[96] << 8 | pkt[97]))
			abort();
		/* Options can never carry more URL bytes than follow the fixed part. */
		if (r.url_len > size - 98)
			abort();
		break;
	case TRK_UDP_SCRAPE:
		if (r.nhashes == 0 || r.nhashes > TRK_UDP_MAX_SCRAPE || r.hashes != pkt + 16 ||
		    16 + r.nhashes * TRK_HASH_LEN > size)
			abort();
		break;
	default:
		abort(); /* 0 only for the three requests */
	}
out:
	free(pkt);
	return 0;
}
