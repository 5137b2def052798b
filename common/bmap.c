// SPDX-License-Identifier: MIT
/* Buffer map of a live channel: a sliding window of chunk sequence numbers (seed 001 §3.2). */
#include "bmap.h"

#include <errno.h>
#include <string.h>

#include "tok.h"

int
bmap_init(struct bmap *m, uint32_t first, uint32_t size)
{
	if (size < BMAP_MIN_SIZE || size > BMAP_MAX_SIZE || size % 8 != 0 || first > BMAP_SEQ_MAX)
		return -EINVAL;
	memset(m, 0, sizeof(*m));
	m->first = first;
	m->size = size;
	return 0;
}

bool
bmap_has(const struct bmap *m, uint32_t seq)
{
	uint32_t i;

	if (!bmap_in(m, seq))
		return false;
	i = seq - m->first;
	return m->w[i / 64] >> (i % 64) & 1;
}

int
bmap_set(struct bmap *m, uint32_t seq)
{
	uint32_t i;

	if (!bmap_in(m, seq))
		return -ERANGE;
	i = seq - m->first;
	m->w[i / 64] |= (uint64_t)1 << (i % 64);
	return 0;
}

int
bmap_clear(struct bmap *m, uint32_t seq)
{
	uint32_t i;

	if (!bmap_in(m, seq))
		return -ERANGE;
	i = seq - m->first;
	m->w[i / 64] &= ~((uint64_t)1 << (i % 64));
	return 0;
}

uint32_t
bmap_count(const struct bmap *m)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < m->size / 64 + (m->size % 64 != 0); i++)
		n += (uint32_t)__builtin_popcountll(m->w[i]);
	return n;
}

uint32_t
bmap_leading(const struct bmap *m)
{
	uint32_t n = 0;

	for (uint32_t i = 0; n < m->size; i++) {
		if (m->w[i] != UINT64_MAX) {
			n += (uint32_t)__builtin_ctzll(~m->w[i]);
			break;
		}
		n += 64;
	}
	return n < m->size ? n : m->size;
}

int64_t
bmap_last(const struct bmap *m)
{
	for (int i = (int)((m->size + 63) / 64) - 1; i >= 0; i--)
		if (m->w[i])
			return (int64_t)m->first + i * 64 + (63 - __builtin_clzll(m->w[i]));
	return -1;
}

void
bmap_foreach(const struct bmap *m, void (*fn)(uint32_t seq, void *arg), void *arg)
{
	for (uint32_t i = 0; i < (m->size + 63) / 64; i++) {
		uint64_t v = m->w[i];
		while (v) {
			unsigned b = (unsigned)__builtin_ctzll(v);
			v &= v - 1;
			fn(m->first + i * 64 + b, arg);
		}
	}
}

int
bmap_slide(struct bmap *m, uint32_t new_first, void (*drop)(uint32_t seq, void *arg), void *arg)
{
	uint32_t d, words = (m->size + 63) / 64, wd, bd;
	int dropped = 0;

	if (new_first > BMAP_SEQ_MAX)
		return -EINVAL;
	if (new_first <= m->first)
		return 0;
	d = new_first - m->first;
	/* Report what leaves, oldest first. */
	for (uint32_t i = 0; i < words && (uint64_t)i * 64 < d; i++) {
		uint64_t v = m->w[i];
		if (d < (i + 1) * 64)
			v &= ((uint64_t)1 << (d - i * 64)) - 1;
		while (v) {
			unsigned b = (unsigned)__builtin_ctzll(v);
			v &= v - 1;
			dropped++;
			if (drop)
				drop(m->first + i * 64 + b, arg);
		}
	}
	if (d >= m->size) {
		memset(m->w, 0, sizeof(m->w));
	} else {
		wd = d / 64;
		bd = d % 64;
		for (uint32_t i = 0; i < words; i++) {
			uint64_t lo = i + wd < words ? m->w[i + wd] : 0;
			uint64_t hi = i + wd + 1 < words ? m->w[i + wd + 1] : 0;
			m->w[i] = bd ? lo >> bd | hi << (64 - bd) : lo;
		}
	}
	m->first = new_first;
	return dropped;
}

int
bmap_advance(struct bmap *m, uint32_t seq, void (*drop)(uint32_t seq, void *arg), void *arg)
{
	if ((uint64_t)seq < bmap_end(m))
		return 0;
	return bmap_slide(m, seq - m->size + 1, drop, arg);
}

int
bmap_encode(const struct bmap *m, char *out, size_t outsize)
{
	unsigned char bytes[BMAP_MAX_SIZE / 8];

	for (uint32_t i = 0; i < m->size / 8; i++) {
		uint8_t v = (uint8_t)(m->w[i / 8] >> (i % 8 * 8));
		/* Bit order inside a byte is reversed: the wire puts the oldest
		 * chunk in the most significant bit. */
		v = (uint8_t)((v & 0xf0) >> 4 | (v & 0x0f) << 4);
		v = (uint8_t)((v & 0xcc) >> 2 | (v & 0x33) << 2);
		v = (uint8_t)((v & 0xaa) >> 1 | (v & 0x55) << 1);
		bytes[i] = v;
	}
	return tok_b64_encode(bytes, m->size / 8, out, outsize);
}

int
bmap_decode(const char *in, size_t len, uint32_t first, uint32_t size, struct bmap *ret)
{
	unsigned char bytes[BMAP_MAX_SIZE / 8];
	struct bmap m;
	int n;

	if (bmap_init(&m, first, size) < 0 || !in)
		return -EINVAL;
	/* 2 * BMAP_B64_MAX bounds the work on garbage before decoding. */
	if (len > BMAP_B64_MAX)
		return -EINVAL;
	n = tok_b64_decode(in, len, bytes, sizeof(bytes));
	if (n < 0 || (uint32_t)n != size / 8)
		return -EINVAL;
	for (uint32_t i = 0; i < size / 8; i++) {
		uint8_t v = bytes[i];
		v = (uint8_t)((v & 0xf0) >> 4 | (v & 0x0f) << 4);
		v = (uint8_t)((v & 0xcc) >> 2 | (v & 0x33) << 2);
		v = (uint8_t)((v & 0xaa) >> 1 | (v & 0x55) << 1);
		m.w[i / 8] |= (uint64_t)v << (i % 8 * 8);
	}
	*ret = m;
	return 0;
}
