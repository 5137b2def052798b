// SPDX-License-Identifier: MIT
/* Fuzz target: the cache-server's VOD path check (no way out of the root). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../cache-server/cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[CACHE_VOD_DEPTH * 257];

	if (cache_vod_path((const char *)data, size, out, sizeof(out)) < 0)
		return 0;
	/* What passes is relative, has no dot segment and no empty one. */
	size_t n = strlen(out);
	if (n == 0 || out[0] == '/' || out[n - 1] == '/' || strstr(out, "//") ||
	    strstr(out, "/.") || out[0] == '.' || memchr(out, '\\', n))
		__builtin_trap();
	return 0;
}
