/* SPDX-License-Identifier: MIT */
/* PeerID: the 56-bit node identifier of seed 001 §3.1.1. */
#ifndef P2PCDN_PEERID_H
#define P2PCDN_PEERID_H

#include <stddef.h>
#include <stdint.h>

/*
 * Layout, most significant first (56 bits, 14 lowercase hex digits):
 *   country:8 | nettype:4 | region:6 | city:6 | area:16 | node:16
 * country is an index into peerid_countries (0 = unknown), nettype a carrier
 * class (0 = unknown, 15 = other), region/city codes assigned by the
 * route-server (0 = unknown), area groups a network neighbourhood, node is
 * random and made unique by the allocator.
 */
#define PEERID_HEX_LEN 14
#define PEERID_MAX     ((UINT64_C(1) << 56) - 1)

#define PEERID_COUNTRY_MAX 255
#define PEERID_NETTYPE_MAX 15
#define PEERID_REGION_MAX  63
#define PEERID_CITY_MAX    63
#define PEERID_AREA_MAX    65535
#define PEERID_NODE_MAX    65535

struct peerid_fields {
	unsigned country;
	unsigned nettype;
	unsigned region;
	unsigned city;
	unsigned area;
	unsigned node;
};

/* Packs fields into a PeerID. Returns 0, or -ERANGE if any field is out of
 * its bit width (nothing written then). */
int peerid_encode(const struct peerid_fields *f, uint64_t *ret_id);

/* Unpacks a PeerID. Returns 0, or -ERANGE if id has bits above 56. */
int peerid_decode(uint64_t id, struct peerid_fields *ret_f);

/* Writes 14 lowercase hex digits and a NUL into buf (size >= 15).
 * Returns 0, or -ERANGE (id too large) / -ENOBUFS (buf too small). */
int peerid_format(uint64_t id, char *buf, size_t size);

/* Parses exactly 14 hex digits (either case; len bytes, no NUL needed).
 * Returns 0, or -EINVAL on anything else; *ret_id written only on success. */
int peerid_parse(const char *s, size_t len, uint64_t *ret_id);

/* Proximity of two PeerIDs: how many leading fields match, in the order
 * country, nettype, region, city, area (0..5). A field that is 0 (unknown)
 * in either ID never matches, so unknown peers are never "close". */
int peerid_proximity(uint64_t a, uint64_t b);

/* The fixed country table: ISO 3166-1 alpha-2 codes, index = PeerID country
 * field. Index 0 is "" (unknown). Stable forever: new codes only append. */
extern const char *const peerid_countries[];
extern const unsigned peerid_country_count;

/* Country field for an ISO alpha-2 code (either case), 0 if unknown/NULL. */
unsigned peerid_country_index(const char *alpha2);

/* Alpha-2 code for a country field, "" for 0 or out of range. Static. */
const char *peerid_country_code(unsigned index);

#endif
