// SPDX-License-Identifier: MIT
/* Fuzz target: the scheduler's promises on arbitrary maps and quotas (common/sched.c). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "schedule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bmap have, src_map[4];
	struct sched_src src[4];
	struct sched_pick out[300];
	uint8_t avoid[64];
	uint64_t rng = 1;
	size_t n;

	if (size < 8 * 5 + 8)
		return 0;
	bmap_init(&have, 1000, 64);
	memcpy(have.w, data, 8);
	for (int i = 0; i < 4; i++) {
		bmap_init(&src_map[i], 1000 + (data[40 + i] % 16), 64);
		memcpy(src_map[i].w, data + 8 + 8 * i, 8);
		src[i].map = data[44 + i] & 1 ? &src_map[i] : NULL;
		src[i].quota = data[44 + i] >> 1;
	}
	for (size_t i = 0; i < sizeof(avoid); i++)
		avoid[i] = i + 48 < size ? data[48 + i] % 5 : SCHED_NO_SRC;
	struct sched_in in = {
		.skip = &have,
		.play = 1000 + data[0] % 64,
		.urgent = data[1] % 64,
		.avoid = avoid,
		.rng = &rng,
	};
	n = sched_plan(&in, src, 4, out, sizeof(out) / sizeof(out[0]));
	for (size_t i = 0; i < n; i++) {
		if (out[i].src >= 4 || !src[out[i].src].map || bmap_has(&have, out[i].seq) ||
		    !bmap_in(&have, out[i].seq) || !bmap_has(src[out[i].src].map, out[i].seq))
			__builtin_trap();
		for (size_t k = 0; k < i; k++)
			if (out[k].seq == out[i].seq)
				__builtin_trap();
	}
	for (int i = 0; i < 4; i++)
		if (src[i].assigned > src[i].quota)
			__builtin_trap();
	unsigned c = sched_next_count(data[2], data[3], data[4], data[5]);
	if (c > (data[5] ? data[5] : 1))
		__builtin_trap();
	return 0;
}
