// SPDX-License-Identifier: MIT
/* Fuzz target: the cache-server's Range header parser. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../cache-server/cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cache_range r;
	uint64_t fsize = 0;
	char *h;

	if (size < 2)
		return 0;
	fsize = (uint64_t)data[0] << 8 | data[1];
	h = malloc(size - 1);
	if (!h)
		return 0;
	memcpy(h, data + 2, size - 2);
	h[size - 2] = '\0';
	int rc = cache_range_parse(h, fsize, &r);
	if (rc == 0 && (r.len == 0 || r.start >= fsize || r.start + r.len > fsize))
		__builtin_trap();
	if (rc != 0 && rc != 1 && rc != -ERANGE)
		__builtin_trap();
	free(h);
	return 0;
}
