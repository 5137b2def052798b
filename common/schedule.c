// SPDX-License-Identifier: MIT
/* Chunk scheduling among several sources (seed 001 §3.3): urgent zone, rarest first, adaptive
 * counts. */
#include "schedule.h"

#include <stdbool.h>
#include <stdlib.h>

uint64_t
sched_rand(uint64_t *state)
{
	uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return x;
}

unsigned
sched_upper(unsigned needed, unsigned partners, unsigned k100)
{
	unsigned long long h;

	if (partners == 0)
		partners = 1;
	h = ((unsigned long long)k100 * needed + 100ull * partners - 1) / (100ull * partners);
	if (h < 1)
		h = 1;
	return h > 1000000 ? 1000000 : (unsigned)h;
}

unsigned
sched_next_count(unsigned issued, unsigned completed, unsigned lo, unsigned hi)
{
	unsigned n;

	if (hi == 0)
		hi = 1;
	if (lo == 0)
		lo = 1;
	if (completed > issued)
		completed = issued;
	if (issued == 0)
		n = lo;
	else if (completed == issued)
		n = issued > hi / 2 ? hi : 2 * issued;
	else if (2ull * completed >= issued)
		n = 2 * completed - issued > lo ? 2 * completed - issued : lo;
	else
		n = 0;
	return n > hi ? hi : n;
}

uint32_t
sched_urgent_len(uint64_t end, uint32_t play)
{
	return end > play ? (uint32_t)((end - play) / 3) : 0;
}

/* A chunk worth asking for, with what orders it. */
struct sched_cand {
	uint32_t seq;
	uint8_t zone;     /* 0 urgent, 1 normal, 2 before play */
	uint16_t holders; /* sources that have it */
	uint64_t key;     /* random tie-break */
};

static int
sched_cand_cmp(const void *a, const void *b)
{
	const struct sched_cand *x = a, *y = b;

	if (x->zone != y->zone)
		return x->zone < y->zone ? -1 : 1;
	if (x->zone == 0) /* urgent: the chunk needed soonest first */
		return x->seq < y->seq ? -1 : x->seq > y->seq;
	if (x->holders != y->holders)
		return x->holders < y->holders ? -1 : 1;
	return x->key < y->key ? -1 : x->key > y->key;
}

/* The holder of seq with the most quota left, ties at random; the avoided
 * source only as a last resort. SCHED_NO_SRC when nobody can take it. */
static uint32_t
sched_choose(const struct sched_in *in, struct sched_src *src, size_t nsrc, uint32_t seq,
	     uint32_t avoid)
{
	uint32_t best = SCHED_NO_SRC, fallback = SCHED_NO_SRC;
	unsigned best_left = 0, ties = 0;

	for (size_t i = 0; i < nsrc; i++) {
		struct sched_src *s = &src[i];
		unsigned left;

		if (!s->map || s->assigned >= s->quota || !bmap_has(s->map, seq))
			continue;
		if (i == avoid) {
			fallback = (uint32_t)i;
			continue;
		}
		left = s->quota - s->assigned;
		if (best == SCHED_NO_SRC || left > best_left) {
			best = (uint32_t)i;
			best_left = left;
			ties = 1;
		} else if (left == best_left) {
			/* Reservoir choice: each tied holder equally likely. */
			ties++;
			if (sched_rand(in->rng) % ties == 0)
				best = (uint32_t)i;
		}
	}
	return best != SCHED_NO_SRC ? best : fallback;
}

size_t
sched_plan(const struct sched_in *in, struct sched_src *src, size_t nsrc, struct sched_pick *out,
	   size_t cap)
{
	struct sched_cand cand[BMAP_MAX_SIZE];
	const struct bmap *skip = in->skip;
	size_t nc = 0, n = 0;
	unsigned total_quota = 0;

	if (nsrc > SCHED_NO_SRC)
		nsrc = SCHED_NO_SRC;
	for (size_t i = 0; i < nsrc; i++) {
		src[i].assigned = 0;
		if (src[i].map)
			total_quota += src[i].quota;
	}
	if (!total_quota || !cap)
		return 0;

	for (uint32_t off = 0; off < skip->size; off++) {
		uint32_t seq = skip->first + off;
		unsigned holders = 0;

		if (bmap_has(skip, seq))
			continue;
		for (size_t i = 0; i < nsrc; i++)
			if (src[i].map && bmap_has(src[i].map, seq))
				holders++;
		if (!holders)
			continue;
		cand[nc].seq = seq;
		cand[nc].holders = (uint16_t)holders;
		cand[nc].zone = seq < in->play                                    ? 2
				: (uint64_t)seq < (uint64_t)in->play + in->urgent ? 0
										  : 1;
		cand[nc].key = sched_rand(in->rng);
		nc++;
	}
	qsort(cand, nc, sizeof(cand[0]), sched_cand_cmp);

	for (size_t c = 0; c < nc && n < cap && total_quota > 0; c++) {
		uint32_t seq = cand[c].seq;
		uint32_t avoid = in->avoid ? in->avoid[seq - skip->first] : SCHED_NO_SRC;
		uint32_t s = sched_choose(in, src, nsrc, seq, avoid);

		if (s == SCHED_NO_SRC)
			continue;
		src[s].assigned++;
		total_quota--;
		out[n].seq = seq;
		out[n].src = s;
		n++;
	}
	return n;
}
