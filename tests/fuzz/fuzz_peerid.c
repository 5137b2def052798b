// SPDX-License-Identifier: MIT
/* libFuzzer target for common/peerid: parse, format, decode/encode, country lookups. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "peerid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct peerid_fields f;
	char buf[PEERID_HEX_LEN + 1], cc[4];
	uint64_t id, again;

	/* peerid_parse is length-delimited: hand it the raw bytes so ASan sees
	 * any read past size. */
	if (peerid_parse((const char *)data, size, &id) == 0) {
		/* Anything accepted must survive format -> parse unchanged. */
		if (id > PEERID_MAX || peerid_format(id, buf, sizeof(buf)) != 0 ||
		    peerid_parse(buf, strlen(buf), &again) != 0 || again != id)
			abort();
		if (peerid_decode(id, &f) != 0 || peerid_encode(&f, &again) != 0 || again != id)
			abort();
		if (peerid_proximity(id, id) < 0 || peerid_proximity(id, id) > 5)
			abort();
	}

	/* Arbitrary 64-bit values through decode and proximity. */
	if (size >= 16) {
		uint64_t a, b;

		memcpy(&a, data, 8);
		memcpy(&b, data + 8, 8);
		int p = peerid_proximity(a, b);

		if (p < 0 || p > 5 || p != peerid_proximity(b, a))
			abort();
		if (peerid_decode(a, &f) == 0 && (peerid_encode(&f, &again) != 0 || again != a))
			abort();
	}

	/* Country lookups want a C string: copy up to 3 bytes and terminate. */
	size_t n = size < 3 ? size : 3;

	memcpy(cc, data, n);
	cc[n] = '\0';
	unsigned idx = peerid_country_index(cc);

	if (idx >= peerid_country_count)
		abort();
	if (idx != 0 && peerid_country_index(peerid_country_code(idx)) != idx)
		abort();
	if (size > 0)
		(void)peerid_country_code(data[0] | (unsigned)size << 8);
	return 0;
}
