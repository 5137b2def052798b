// SPDX-License-Identifier: MIT
/* libFuzzer target: route_nettype_parse on arbitrary CSV text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../route-server/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct route_nettype t = { NULL, 0 };
	char err[256];

	memset(err, 'x', sizeof(err));
	if (route_nettype_parse((const char *)data, size, &t, err, sizeof(err)) < 0) {
		/* Failures say why, and leave ret alone. */
		if (!memchr(err, '\0', sizeof(err)) || err[0] == '\0' || t.v || t.n)
			abort();
		return 0;
	}
	/* Sorted, in the listable range, consistent with lookups. */
	for (size_t i = 0; i < t.n; i++) {
		if (t.v[i].asn == 0 || t.v[i].cls < 1 || t.v[i].cls > 14)
			abort();
		if (i && t.v[i - 1].asn > t.v[i].asn)
			abort();
		if (route_nettype_class(&t, t.v[i].asn) != t.v[i].cls)
			abort();
		if (route_nettype_from_name(route_nettype_name(t.v[i].cls)) < 0 && t.v[i].cls <= 7)
			abort();
	}
	if (route_nettype_class(&t, 0) != ROUTE_NETTYPE_UNKNOWN)
		abort();
	free(t.v);
	return 0;
}
