// SPDX-License-Identifier: MIT
/* Fuzz target: POST /v1/pull bodies and source map answers of the cache-server. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../cache-server/cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cache_pull_req req;
	struct bmap m;
	const char *why = NULL;

	if (cache_pull_parse((const char *)data, size, &req, &why) == 0) {
		if (why || !cache_channel_ok(req.channel) || req.nsrc == 0 ||
		    req.nsrc > CACHE_PULL_SRC)
			__builtin_trap();
		for (size_t i = 0; i < req.nsrc; i++)
			if (strncmp(req.src[i].url, "http://", 7) != 0 ||
			    strlen(req.src[i].url) > CACHE_URL_MAX)
				__builtin_trap();
	} else if (!why) {
		__builtin_trap();
	}
	if (cache_map_parse((const char *)data, size, &m) == 0 &&
	    (m.size < BMAP_MIN_SIZE || m.size > BMAP_MAX_SIZE || bmap_count(&m) > m.size))
		__builtin_trap();
	return 0;
}
