// SPDX-License-Identifier: MIT
/* PeerID packing, hex form, proximity and the fixed ISO 3166-1 country table. */
#include "peerid.h"
#include "util.h"

#include <errno.h>
#include <stdint.h>

/* Bit positions of each field, counted from the least significant bit. */
#define PEERID_NODE_SHIFT    0
#define PEERID_AREA_SHIFT    16
#define PEERID_CITY_SHIFT    32
#define PEERID_REGION_SHIFT  38
#define PEERID_NETTYPE_SHIFT 44
#define PEERID_COUNTRY_SHIFT 48

/*
 * The officially assigned ISO 3166-1 alpha-2 codes, alphabetical. This one
 * list generates the name table, the indices and the 26x26 lookup table, so
 * the three can never drift apart. The index of a code is a wire format
 * (it is baked into every PeerID ever issued): never reorder or remove an
 * entry, only append new codes at the end. User-assigned codes that geo
 * databases emit (XK, EU, AP...) are deliberately absent and map to 0.
 * The macro parameter is not a single letter because letters are the
 * list's own tokens (a parameter named X would swallow the X of "AX").
 */
/* One initial letter per line keeps the table reviewable. */
/* clang-format off */
#define PEERID_COUNTRY_LIST(CC)                                                                    \
	CC(A, D) CC(A, E) CC(A, F) CC(A, G) CC(A, I) CC(A, L) CC(A, M) CC(A, O) CC(A, Q)           \
	CC(A, R) CC(A, S) CC(A, T) CC(A, U) CC(A, W) CC(A, X) CC(A, Z)                             \
	CC(B, A) CC(B, B) CC(B, D) CC(B, E) CC(B, F) CC(B, G) CC(B, H) CC(B, I) CC(B, J)           \
	CC(B, L) CC(B, M) CC(B, N) CC(B, O) CC(B, Q) CC(B, R) CC(B, S) CC(B, T) CC(B, V)           \
	CC(B, W) CC(B, Y) CC(B, Z)                                                                 \
	CC(C, A) CC(C, C) CC(C, D) CC(C, F) CC(C, G) CC(C, H) CC(C, I) CC(C, K) CC(C, L)           \
	CC(C, M) CC(C, N) CC(C, O) CC(C, R) CC(C, U) CC(C, V) CC(C, W) CC(C, X) CC(C, Y)           \
	CC(C, Z)                                                                                   \
	CC(D, E) CC(D, J) CC(D, K) CC(D, M) CC(D, O) CC(D, Z)                                      \
	CC(E, C) CC(E, E) CC(E, G) CC(E, H) CC(E, R) CC(E, S) CC(E, T)                             \
	CC(F, I) CC(F, J) CC(F, K) CC(F, M) CC(F, O) CC(F, R)                                      \
	CC(G, A) CC(G, B) CC(G, D) CC(G, E) CC(G, F) CC(G, G) CC(G, H) CC(G, I) CC(G, L)           \
	CC(G, M) CC(G, N) CC(G, P) CC(G, Q) CC(G, R) CC(G, S) CC(G, T) CC(G, U) CC(G, W)           \
	CC(G, Y)                                                                                   \
	CC(H, K) CC(H, M) CC(H, N) CC(H, R) CC(H, T) CC(H, U)                                      \
	CC(I, D) CC(I, E) CC(I, L) CC(I, M) CC(I, N) CC(I, O) CC(I, Q) CC(I, R) CC(I, S)           \
	CC(I, T)                                                                                   \
	CC(J, E) CC(J, M) CC(J, O) CC(J, P)                                                        \
	CC(K, E) CC(K, G) CC(K, H) CC(K, I) CC(K, M) CC(K, N) CC(K, P) CC(K, R) CC(K, W)           \
	CC(K, Y) CC(K, Z)                                                                          \
	CC(L, A) CC(L, B) CC(L, C) CC(L, I) CC(L, K) CC(L, R) CC(L, S) CC(L, T) CC(L, U)           \
	CC(L, V) CC(L, Y)                                                                          \
	CC(M, A) CC(M, C) CC(M, D) CC(M, E) CC(M, F) CC(M, G) CC(M, H) CC(M, K) CC(M, L)           \
	CC(M, M) CC(M, N) CC(M, O) CC(M, P) CC(M, Q) CC(M, R) CC(M, S) CC(M, T) CC(M, U)           \
	CC(M, V) CC(M, W) CC(M, X) CC(M, Y) CC(M, Z)                                               \
	CC(N, A) CC(N, C) CC(N, E) CC(N, F) CC(N, G) CC(N, I) CC(N, L) CC(N, O) CC(N, P)           \
	CC(N, R) CC(N, U) CC(N, Z)                                                                 \
	CC(O, M)                                                                                   \
	CC(P, A) CC(P, E) CC(P, F) CC(P, G) CC(P, H) CC(P, K) CC(P, L) CC(P, M) CC(P, N)           \
	CC(P, R) CC(P, S) CC(P, T) CC(P, W) CC(P, Y)                                               \
	CC(Q, A)                                                                                   \
	CC(R, E) CC(R, O) CC(R, S) CC(R, U) CC(R, W)                                               \
	CC(S, A) CC(S, B) CC(S, C) CC(S, D) CC(S, E) CC(S, G) CC(S, H) CC(S, I) CC(S, J)           \
	CC(S, K) CC(S, L) CC(S, M) CC(S, N) CC(S, O) CC(S, R) CC(S, S) CC(S, T) CC(S, V)           \
	CC(S, X) CC(S, Y) CC(S, Z)                                                                 \
	CC(T, C) CC(T, D) CC(T, F) CC(T, G) CC(T, H) CC(T, J) CC(T, K) CC(T, L) CC(T, M)           \
	CC(T, N) CC(T, O) CC(T, R) CC(T, T) CC(T, V) CC(T, W) CC(T, Z)                             \
	CC(U, A) CC(U, G) CC(U, M) CC(U, S) CC(U, Y) CC(U, Z)                                      \
	CC(V, A) CC(V, C) CC(V, E) CC(V, G) CC(V, I) CC(V, N) CC(V, U)                             \
	CC(W, F) CC(W, S)                                                                          \
	CC(Y, E) CC(Y, T)                                                                          \
	CC(Z, A) CC(Z, M) CC(Z, W)
/* clang-format on */

/* Letter -> row/column of the lookup table; token pasting needs a macro per letter. */
#define PEERID_L_A 0
#define PEERID_L_B 1
#define PEERID_L_C 2
#define PEERID_L_D 3
#define PEERID_L_E 4
#define PEERID_L_F 5
#define PEERID_L_G 6
#define PEERID_L_H 7
#define PEERID_L_I 8
#define PEERID_L_J 9
#define PEERID_L_K 10
#define PEERID_L_L 11
#define PEERID_L_M 12
#define PEERID_L_N 13
#define PEERID_L_O 14
#define PEERID_L_P 15
#define PEERID_L_Q 16
#define PEERID_L_R 17
#define PEERID_L_S 18
#define PEERID_L_T 19
#define PEERID_L_U 20
#define PEERID_L_V 21
#define PEERID_L_W 22
#define PEERID_L_X 23
#define PEERID_L_Y 24
#define PEERID_L_Z 25

#define PEERID_ENUM(a, b) PEERID_CC_##a##b,
#define PEERID_NAME(a, b) #a #b,
#define PEERID_LUT(a, b)  [PEERID_L_##a][PEERID_L_##b] = PEERID_CC_##a##b,

/* Index 0 is the "unknown" country, so real codes start at 1. */
enum peerid_cc { PEERID_CC_UNKNOWN = 0, PEERID_COUNTRY_LIST(PEERID_ENUM) PEERID_CC_END };

_Static_assert(PEERID_CC_END - 1 <= PEERID_COUNTRY_MAX, "country index must fit in 8 bits");

const char *const peerid_countries[] = { "", PEERID_COUNTRY_LIST(PEERID_NAME) };
const unsigned peerid_country_count = PEERID_CC_END;

/* 676 bytes buys an O(1) lookup with no init step and no locking. */
static const uint8_t peerid_country_lut[26][26] = { PEERID_COUNTRY_LIST(PEERID_LUT) };

int
peerid_encode(const struct peerid_fields *f, uint64_t *ret_id)
{
	if (f->country > PEERID_COUNTRY_MAX || f->nettype > PEERID_NETTYPE_MAX ||
	    f->region > PEERID_REGION_MAX || f->city > PEERID_CITY_MAX ||
	    f->area > PEERID_AREA_MAX || f->node > PEERID_NODE_MAX)
		return -ERANGE;

	*ret_id = (uint64_t)f->country << PEERID_COUNTRY_SHIFT |
		  (uint64_t)f->nettype << PEERID_NETTYPE_SHIFT |
		  (uint64_t)f->region << PEERID_REGION_SHIFT |
		  (uint64_t)f->city << PEERID_CITY_SHIFT | (uint64_t)f->area << PEERID_AREA_SHIFT |
		  (uint64_t)f->node << PEERID_NODE_SHIFT;
	return 0;
}

int
peerid_decode(uint64_t id, struct peerid_fields *ret_f)
{
	if (id > PEERID_MAX)
		return -ERANGE;

	ret_f->country = (unsigned)(id >> PEERID_COUNTRY_SHIFT & PEERID_COUNTRY_MAX);
	ret_f->nettype = (unsigned)(id >> PEERID_NETTYPE_SHIFT & PEERID_NETTYPE_MAX);
	ret_f->region = (unsigned)(id >> PEERID_REGION_SHIFT & PEERID_REGION_MAX);
	ret_f->city = (unsigned)(id >> PEERID_CITY_SHIFT & PEERID_CITY_MAX);
	ret_f->area = (unsigned)(id >> PEERID_AREA_SHIFT & PEERID_AREA_MAX);
	ret_f->node = (unsigned)(id >> PEERID_NODE_SHIFT & PEERID_NODE_MAX);
	return 0;
}

int
peerid_format(uint64_t id, char *buf, size_t size)
{
	static const char digits[] = "0123456789abcdef";

	if (id > PEERID_MAX)
		return -ERANGE;
	if (size < PEERID_HEX_LEN + 1)
		return -ENOBUFS;

	for (int i = PEERID_HEX_LEN - 1; i >= 0; i--) {
		buf[i] = digits[id & 0xf];
		id >>= 4;
	}
	buf[PEERID_HEX_LEN] = '\0';
	return 0;
}

int
peerid_parse(const char *s, size_t len, uint64_t *ret_id)
{
	uint64_t id = 0;

	if (!s || len != PEERID_HEX_LEN)
		return -EINVAL;

	/* 14 digits are 56 bits, so the value can never exceed PEERID_MAX. */
	for (size_t i = 0; i < len; i++) {
		int v = util_hexval(s[i]);

		if (v < 0)
			return -EINVAL;
		id = id << 4 | (uint64_t)v;
	}
	*ret_id = id;
	return 0;
}

int
peerid_proximity(uint64_t a, uint64_t b)
{
	struct peerid_fields fa, fb;
	int n = 0;

	if (peerid_decode(a, &fa) < 0 || peerid_decode(b, &fb) < 0)
		return 0;

	const unsigned pa[] = { fa.country, fa.nettype, fa.region, fa.city, fa.area };
	const unsigned pb[] = { fb.country, fb.nettype, fb.region, fb.city, fb.area };

	/* Fields are a hierarchy: once one differs, the finer ones mean nothing
	 * (city 3 of region 1 is not city 3 of region 2). */
	for (size_t i = 0; i < sizeof(pa) / sizeof(pa[0]); i++) {
		if (pa[i] == 0 || pb[i] == 0 || pa[i] != pb[i])
			break;
		n++;
	}
	return n;
}

/* Row/column for an ASCII letter of either case, or -1; locale-independent. */
static int
peerid_letter(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	return -1;
}

unsigned
peerid_country_index(const char *alpha2)
{
	int r, c;

	if (!alpha2)
		return 0;
	/* Each byte is read only after the previous one proved not to be the NUL. */
	r = peerid_letter(alpha2[0]);
	if (r < 0)
		return 0;
	c = peerid_letter(alpha2[1]);
	if (c < 0 || alpha2[2] != '\0')
		return 0;
	return peerid_country_lut[r][c];
}

const char *
peerid_country_code(unsigned index)
{
	if (index >= peerid_country_count)
		return "";
	return peerid_countries[index];
}
