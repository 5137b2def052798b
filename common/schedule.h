/* SPDX-License-Identifier: MIT */
/* Chunk scheduling among several sources (seed 001 §3.3): urgent zone, rarest first, adaptive
 * counts. */

#ifndef P2PCDN_SCHEDULE_H
#define P2PCDN_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "bmap.h"

/*
 * Pure logic shared by the cache-server's puller and the reference peer:
 * given what we have, what each source has and how many requests each
 * source may take, decide which chunk to ask of which source. No I/O, no
 * locks, no allocation beyond the caller's arrays; randomness from a
 * caller-held xorshift state so tests are repeatable.
 */

/* One source (partner) as the scheduler sees it. */
struct sched_src {
	const struct bmap *map; /* what it holds; NULL = unknown (gets nothing) */
	unsigned quota;         /* requests it may take this round (formula 5) */
	unsigned assigned;      /* out: requests given to it by sched_plan */
};

/* One decision: ask source `src` (index into the sources) for `seq`. */
struct sched_pick {
	uint32_t seq;
	uint32_t src;
};

#define SCHED_NO_SRC 0xffu

struct sched_in {
	/* Chunks to leave alone: held or already requested. Its window is the
	 * one scheduled; chunks outside it are never picked. */
	const struct bmap *skip;
	/* Playback position (seed 001 Fig. 5). Chunks before it come last;
	 * [play, play + urgent) is the urgent zone, taken first in order;
	 * the rest of the window is the normal zone, rarest first. */
	uint32_t play;
	uint32_t urgent;
	/* Optional, indexed by seq - skip->first: a source that just failed
	 * this chunk (SCHED_NO_SRC = none); another holder is preferred. */
	const uint8_t *avoid;
	uint64_t *rng; /* xorshift64 state, never 0 */
};

/* Plans one round. Fills out[0..return) with at most cap picks, never
 * more per source than its quota (counted in src[i].assigned, which this
 * call zeroes first), never a chunk no source holds, never a chunk set in
 * in->skip, each chunk at most once. Order: urgent zone by sequence, then
 * the normal zone and then the part before play, each rarest first (fewest
 * sources holding it) with ties broken at random. A chunk goes to the
 * holder with the most quota left, ties at random, a holder named in
 * avoid only when no other holder has quota left. nsrc <= SCHED_NO_SRC. */
size_t sched_plan(const struct sched_in *in, struct sched_src *src, size_t nsrc,
		  struct sched_pick *out, size_t cap);

/* Formula 4: the per-request upper bound H = ceil(k * needed / partners),
 * at least 1 (k as a fixed-point ×100 value, e.g. 200 for k = 2). */
unsigned sched_upper(unsigned needed, unsigned partners, unsigned k100);

/*
 * Formula 5: how many chunks to ask of a source next, from R issued and F
 * completed in its last round:
 *   F = R          -> min(2R, H)
 *   R/2 <= F < R   -> max(L, F - (R - F))
 *   F < R/2        -> 0 (the source rests for a round)
 * R = 0 (first round, or after resting) -> L, so a resting source is
 * probed again rather than starved for good. The result never exceeds H
 * (nor L when L > H: H wins). L = lo, H = hi.
 */
unsigned sched_next_count(unsigned issued, unsigned completed, unsigned lo, unsigned hi);

/* The urgent zone length for a window ending at end (exclusive) seen from
 * play: the first third of what lies after the playback position. */
uint32_t sched_urgent_len(uint64_t end, uint32_t play);

/* xorshift64: next value of *state (state never 0). */
uint64_t sched_rand(uint64_t *state);

#endif
