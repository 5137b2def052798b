// SPDX-License-Identifier: MIT
/* Fuzz target: announce and scrape query strings of the tracker. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../tracker/trk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct trk_query q;
	const char *reason = NULL;

	for (int scrape = 0; scrape < 2; scrape++) {
		int r = trk_query_parse((const char *)data, size, scrape, &q, &reason);
		if (r < 0 && !reason)
			__builtin_trap(); /* every failure names its reason */
		if (r == 0 && (!q.has_info_hash || q.nscrape > TRK_SCRAPE_MAX ||
			       (!scrape && (q.port < 1 || q.port > 65535))))
			__builtin_trap();
	}
	return 0;
}
