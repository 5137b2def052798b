// SPDX-License-Identifier: MIT
/* Fuzz target: buffer-map wire decoding and window moves (common/bmap.c). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bmap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bmap m, back;
	char enc[BMAP_B64_MAX];
	uint32_t first, msize, slide;

	if (size < 12)
		return 0;
	memcpy(&first, data, 4);
	memcpy(&msize, data + 4, 4);
	memcpy(&slide, data + 8, 4);
	msize = (msize % (BMAP_MAX_SIZE / 8) + 1) * 8;
	first %= BMAP_SEQ_MAX - 2 * BMAP_MAX_SIZE; /* room to slide */
	if (bmap_decode((const char *)data + 12, size - 12, first, msize, &m) < 0)
		return 0;
	/* What decodes re-encodes to a decodable equal map. */
	if (bmap_encode(&m, enc, sizeof(enc)) < 0 ||
	    bmap_decode(enc, strlen(enc), m.first, m.size, &back) < 0 ||
	    memcmp(&m, &back, sizeof(m)) != 0)
		__builtin_trap();
	uint32_t before = bmap_count(&m), inside = 0, target = m.first + slide % (2 * msize);
	for (uint32_t s = target; (uint64_t)s < bmap_end(&m); s++)
		inside += bmap_has(&m, s);
	int dropped = bmap_slide(&m, target, NULL, NULL);
	if (dropped < 0 || (uint32_t)dropped + bmap_count(&m) != before ||
	    bmap_count(&m) != inside || bmap_leading(&m) > m.size)
		__builtin_trap();
	return 0;
}
