/* SPDX-License-Identifier: MIT */
/* Buffer map of a live channel: a sliding window of chunk sequence numbers (seed 001 §3.2). */
#ifndef P2PCDN_BMAP_H
#define P2PCDN_BMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Seed 001 §3.2.1: a window of `size` chunks (256 × 200 ms in the paper)
 * is described by the sequence number of its first chunk and a bitmap, bit
 * i set when the holder has chunk first + i. The window only moves
 * forward; chunks that leave it are expired. Pure logic: no I/O, no locks,
 * no allocation; callers serialise access to one map.
 *
 * Wire form (docs/cache-server.md): the bitmap as size/8 bytes, chunk
 * first + i in byte i / 8 at bit 7 - i % 8 (most significant bit first),
 * base64url without padding.
 */
#define BMAP_MAX_SIZE 4096u /* largest window, chunks */
#define BMAP_MIN_SIZE 8u
/* Longest encoded bitmap incl. NUL: base64 of BMAP_MAX_SIZE / 8 bytes. */
#define BMAP_B64_MAX ((BMAP_MAX_SIZE / 8 + 2) / 3 * 4 + 1)
/* Highest first sequence number: first + size never wraps. */
#define BMAP_SEQ_MAX (UINT32_MAX - BMAP_MAX_SIZE)

struct bmap {
	uint32_t first; /* sequence number of bit 0 */
	uint32_t size;  /* window length in chunks: multiple of 8 in [MIN, MAX] */
	uint64_t w[BMAP_MAX_SIZE / 64];
};

/* An empty window of `size` chunks starting at first. Returns 0, or
 * -EINVAL (size not a multiple of 8 in range, first > BMAP_SEQ_MAX); m is
 * written only on success. */
int bmap_init(struct bmap *m, uint32_t first, uint32_t size);

/* One past the last sequence number of the window. */
static inline uint64_t
bmap_end(const struct bmap *m)
{
	return (uint64_t)m->first + m->size;
}

/* True when seq lies inside the window. */
static inline bool
bmap_in(const struct bmap *m, uint32_t seq)
{
	return seq >= m->first && (uint64_t)seq < bmap_end(m);
}

/* True when the window holds seq (false outside the window). */
bool bmap_has(const struct bmap *m, uint32_t seq);

/* Sets / clears the bit of seq. Returns 0, or -ERANGE outside the window. */
int bmap_set(struct bmap *m, uint32_t seq);
int bmap_clear(struct bmap *m, uint32_t seq);

/* Number of chunks held. */
uint32_t bmap_count(const struct bmap *m);

/* Length of the run of held chunks at the start of the window (the seed
 * slides a peer's window once 48 of them are there). */
uint32_t bmap_leading(const struct bmap *m);

/* Highest held sequence number, or -1 when the map is empty. */
int64_t bmap_last(const struct bmap *m);

/* Moves the window forward so that it starts at new_first (never
 * backwards: a smaller new_first changes nothing). For every held chunk
 * that leaves, drop(seq, arg) runs first (drop may be NULL). Returns the
 * number of held chunks that left, or -EINVAL when new_first >
 * BMAP_SEQ_MAX. */
int bmap_slide(struct bmap *m, uint32_t new_first, void (*drop)(uint32_t seq, void *arg),
	       void *arg);

/* Slides (as bmap_slide) just far enough that seq is the last slot, when
 * seq is past the end; a seq inside the window changes nothing. */
int bmap_advance(struct bmap *m, uint32_t seq, void (*drop)(uint32_t seq, void *arg), void *arg);

/* Writes the bitmap in wire form into out (NUL-terminated). Returns the
 * string length or -ENOBUFS. */
int bmap_encode(const struct bmap *m, char *out, size_t outsize);

/* Reads the wire form of a window of `size` chunks starting at first.
 * Returns 0 with *ret filled, or -EINVAL (bad size or first, bad base64,
 * wrong length). Never reads past in[len). */
int bmap_decode(const char *in, size_t len, uint32_t first, uint32_t size, struct bmap *ret);

/* Calls fn for each held seq in ascending order. */
void bmap_foreach(const struct bmap *m, void (*fn)(uint32_t seq, void *arg), void *arg);

#endif
