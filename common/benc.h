/* SPDX-License-Identifier: MIT */
/* Bencoding (BEP 3): a strict validating parser and a writer. */
#ifndef P2PCDN_BENC_H
#define P2PCDN_BENC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Parsing does not build a tree: it validates a whole buffer and lets the
 * caller walk it in place. A value is a (pointer, length) span into the
 * caller's buffer, which must outlive every span. Strict means canonical:
 * integers without leading zeros or "-0", string lengths without leading
 * zeros, dictionary keys as strings in strictly ascending byte order (no
 * duplicates), nothing after the top value. Depth and size limits keep
 * hostile input from costing unbounded time or stack.
 */

enum benc_type { BENC_INT, BENC_STR, BENC_LIST, BENC_DICT };

struct benc_span {
	const uint8_t *p; /* first byte of the encoded value */
	size_t len;       /* bytes of the whole encoded value */
};

#define BENC_MAX_DEPTH 64

/* Validates buf[0..len) as exactly one canonical value nested at most
 * max_depth deep (<= BENC_MAX_DEPTH). Returns 0 with *ret covering it, or
 * -EINVAL / -E2BIG (too deep) and, if err_off is non-NULL, the byte offset
 * of the first problem. */
int benc_parse(const uint8_t *buf, size_t len, int max_depth, struct benc_span *ret,
	       size_t *err_off);

/* The type of a validated span. */
enum benc_type benc_type(struct benc_span v);

/* Accessors on validated spans (behaviour on unvalidated input undefined).
 * Return 0, or -EINVAL when v is of another type / -ERANGE on overflow. */
int benc_int(struct benc_span v, int64_t *ret);
int benc_str(struct benc_span v, const uint8_t **ret, size_t *ret_len);

/* Iterates a list or dict: *it starts zeroed; each call yields the next
 * element (for dicts: key string in *ret_key and value in *ret_val; for
 * lists only *ret_val). Returns 1 while there is one, 0 at the end,
 * -EINVAL if v is not a container. */
struct benc_iter {
	size_t off;
};
int benc_next(struct benc_span v, struct benc_iter *it, struct benc_span *ret_key,
	      struct benc_span *ret_val);

/* Looks a key up in a dict: 0 with *ret, -ENOENT, -EINVAL (not a dict). */
int benc_dict_get(struct benc_span dict, const char *key, struct benc_span *ret);

/* ---- writing into a caller buffer; each returns bytes written or
 * -ENOBUFS (nothing written). ---- */
int benc_put_int(uint8_t *out, size_t cap, int64_t v);
int benc_put_str(uint8_t *out, size_t cap, const void *s, size_t len);
/* Raw bytes (e.g. "d", "e", "l", a key already encoded). */
int benc_put_raw(uint8_t *out, size_t cap, const void *s, size_t len);

#endif
