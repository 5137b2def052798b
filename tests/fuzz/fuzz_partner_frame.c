// SPDX-License-Identifier: MIT
/* libFuzzer target for common/partner frames (relay mailbox messages between partners). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "partner.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct partner_frame f, g;
	char hdr[PARTNER_PATH_MAX + 64];
	int n;

	/* Raw bytes, no NUL: ASan sees any read past size. */
	if (partner_frame_parse(data, size, &f) != 0)
		return 0;
	if (f.kind == 'Q') {
		if (!f.path || f.path_len == 0 || f.path_len > PARTNER_PATH_MAX || f.path[0] != '/')
			abort();
		/* What parsed must format and parse back the same. */
		n = partner_frame_header('Q', f.id, 0, f.path, f.path_len, hdr, sizeof(hdr));
		if (n < 0 || (size_t)n != size || memcmp(hdr, data, size) != 0)
			abort();
		if (partner_frame_parse(hdr, (size_t)n, &g) != 0 || g.id != f.id ||
		    g.path_len != f.path_len)
			abort();
	} else {
		if (f.status < 100 || f.status > 599 ||
		    (const uint8_t *)f.body + f.body_len != data + size)
			abort();
		n = partner_frame_header('A', f.id, f.status, NULL, 0, hdr, sizeof(hdr));
		if (n < 0 || (size_t)n != size - f.body_len || memcmp(hdr, data, (size_t)n) != 0)
			abort();
	}
	return 0;
}
