// SPDX-License-Identifier: MIT
/* Bencoding (BEP 3): strict canonical validation in one pass, span walking, writers. */
#include "benc.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

/*
 * Details not spelled out in benc.h:
 * - depth counts open containers: a scalar adds none, so max_depth 0 accepts
 *   only a lone integer or string and BENC_MAX_DEPTH lists may hold a scalar;
 * - err_off is where the problem was detected: the first byte that no
 *   canonical encoding could have there ("i03e" -> 2, "i-0e" -> 2, a digit
 *   that overflows -> that digit), the first byte of a misordered or
 *   duplicate key, the opener of a container one level too deep, the first
 *   trailing byte, or len when the input ends inside a value (including a
 *   string whose declared length runs past the end);
 * - a max_depth outside [0, BENC_MAX_DEPTH] is -EINVAL with err_off 0;
 * - *ret and *err_off are written only on success / failure respectively.
 */

/* One open container. Only dicts use the key fields: ordering needs just the
 * previous key, so the check costs at most two compares per key byte. */
struct benc_frame {
	const uint8_t *key; /* content of the previous key, NULL before the first */
	size_t key_len;
	bool dict;
	bool want_val; /* dict: a key was read and its value comes next */
};

static bool
benc_isdigit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* Raw byte order of BEP 3 dict keys: memcmp, then the shorter one first. */
static int
benc_keycmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/*
 * Scans the canonical integer whose 'i' is at b[*pos]. On success returns 0,
 * moves *pos past the 'e' and stores the value in *ret (if non-NULL). On
 * failure *pos is the offset of the problem: -EINVAL for bad syntax or the
 * end of input, -ERANGE for a value outside int64_t.
 */
static int
benc_scan_int(const uint8_t *b, size_t len, size_t *pos, int64_t *ret)
{
	size_t i = *pos + 1;
	uint64_t mag = 0, lim = INT64_MAX;
	bool neg = false;

	if (i < len && b[i] == '-') {
		neg = true;
		lim = (uint64_t)INT64_MAX + 1;
		i++;
	}
	if (i == len)
		goto truncated;
	/* "ie", "i-e" and "i+1e" all fail here: a digit must come first. */
	if (!benc_isdigit(b[i]) || (neg && b[i] == '0')) {
		*pos = i;
		return -EINVAL;
	}
	if (b[i] == '0') {
		/* Zero has one spelling: any digit after it is a leading zero. */
		i++;
	} else {
		for (; i < len && benc_isdigit(b[i]); i++) {
			unsigned d = b[i] - '0';

			if (mag > (lim - d) / 10) {
				*pos = i;
				return -ERANGE;
			}
			mag = mag * 10 + d;
		}
	}
	if (i == len)
		goto truncated;
	if (b[i] != 'e') {
		*pos = i;
		return -EINVAL;
	}
	*pos = i + 1;
	if (ret != NULL) {
		/* -(mag - 1) - 1 reaches INT64_MIN without a signed overflow. */
		*ret = neg ? -(int64_t)(mag - 1) - 1 : (int64_t)mag;
	}
	return 0;
truncated:
	*pos = len;
	return -EINVAL;
}

/*
 * Scans the canonical length prefix "N:" starting at the digit b[*pos]. On
 * success returns 0, moves *pos to the first content byte and stores N in
 * *ret_len; the content is known to fit in b[0..len). On failure returns
 * -EINVAL with *pos at the problem (len if the string runs past the end).
 */
static int
benc_scan_strhdr(const uint8_t *b, size_t len, size_t *pos, size_t *ret_len)
{
	size_t i = *pos, n = 0;

	if (b[i] == '0') {
		i++;
	} else {
		for (; i < len && benc_isdigit(b[i]); i++) {
			size_t d = b[i] - '0';

			/* A length past SIZE_MAX cannot be in memory; stopping
			 * here also keeps n * 10 + d from wrapping. */
			if (n > (SIZE_MAX - d) / 10) {
				*pos = i;
				return -EINVAL;
			}
			n = n * 10 + d;
		}
	}
	if (i == len || (b[i] == ':' && n > len - i - 1)) {
		*pos = len;
		return -EINVAL;
	}
	if (b[i] != ':') {
		*pos = i;
		return -EINVAL;
	}
	*pos = i + 1;
	*ret_len = n;
	return 0;
}

/*
 * Iterative, with an explicit stack of at most BENC_MAX_DEPTH frames, so the
 * C stack stays flat whatever the input. Every byte is looked at a bounded
 * number of times (string contents are skipped, keys compared at most
 * twice), so the pass is O(len).
 */
int
benc_parse(const uint8_t *buf, size_t len, int max_depth, struct benc_span *ret, size_t *err_off)
{
	struct benc_frame st[BENC_MAX_DEPTH];
	struct benc_frame *f;
	size_t pos = 0, start, slen;
	int depth = 0, r;

	if (max_depth < 0 || max_depth > BENC_MAX_DEPTH) {
		r = -EINVAL;
		goto fail;
	}
	for (;;) {
		if (pos == len) {
			r = -EINVAL;
			goto fail;
		}
		f = depth > 0 ? &st[depth - 1] : NULL;
		if (f != NULL && buf[pos] == 'e') {
			if (f->dict && f->want_val) {
				r = -EINVAL;
				goto fail;
			}
			pos++;
			depth--;
			goto value_done;
		}
		if (f != NULL && f->dict && !f->want_val) {
			start = pos;
			if (!benc_isdigit(buf[pos])) {
				r = -EINVAL;
				goto fail;
			}
			r = benc_scan_strhdr(buf, len, &pos, &slen);
			if (r < 0)
				goto fail;
			if (f->key != NULL &&
			    benc_keycmp(f->key, f->key_len, buf + pos, slen) >= 0) {
				pos = start;
				r = -EINVAL;
				goto fail;
			}
			f->key = buf + pos;
			f->key_len = slen;
			f->want_val = true;
			pos += slen;
			continue;
		}

		switch (buf[pos]) {
		case 'i':
			r = benc_scan_int(buf, len, &pos, NULL);
			if (r < 0) {
				/* The accessor's -ERANGE is simply malformed here. */
				r = -EINVAL;
				goto fail;
			}
			break;
		case 'l':
		case 'd':
			if (depth == max_depth) {
				r = -E2BIG;
				goto fail;
			}
			st[depth].key = NULL;
			st[depth].key_len = 0;
			st[depth].dict = buf[pos] == 'd';
			st[depth].want_val = false;
			depth++;
			pos++;
			continue;
		default:
			if (!benc_isdigit(buf[pos])) {
				r = -EINVAL;
				goto fail;
			}
			r = benc_scan_strhdr(buf, len, &pos, &slen);
			if (r < 0)
				goto fail;
			pos += slen;
			break;
		}
	value_done:
		if (depth == 0)
			break;
		if (st[depth - 1].dict)
			st[depth - 1].want_val = false;
	}
	if (pos != len) {
		r = -EINVAL;
		goto fail;
	}
	ret->p = buf;
	ret->len = len;
	return 0;
fail:
	if (err_off != NULL)
		*err_off = pos;
	return r;
}

enum benc_type
benc_type(struct benc_span v)
{
	switch (v.p[0]) {
	case 'i':
		return BENC_INT;
	case 'l':
		return BENC_LIST;
	case 'd':
		return BENC_DICT;
	default:
		return BENC_STR;
	}
}

/* An integer is at most 22 bytes, so re-scanning it strictly costs nothing
 * and keeps one definition of the syntax. */
int
benc_int(struct benc_span v, int64_t *ret)
{
	size_t pos = 0;
	int64_t val;
	int r;

	if (v.len == 0 || v.p[0] != 'i')
		return -EINVAL;
	r = benc_scan_int(v.p, v.len, &pos, &val);
	if (r < 0)
		return r;
	*ret = val;
	return 0;
}

int
benc_str(struct benc_span v, const uint8_t **ret, size_t *ret_len)
{
	size_t pos = 0, n;

	if (v.len == 0 || !benc_isdigit(v.p[0]))
		return -EINVAL;
	if (benc_scan_strhdr(v.p, v.len, &pos, &n) < 0)
		return -EINVAL;
	*ret = v.p + pos;
	*ret_len = n;
	return 0;
}

/*
 * Length of the value starting at p, trusting the syntax (the span was
 * validated) but never reading past len, so a bad span costs an error rather
 * than a wild read. Returns 0 if the value does not end within len. Nesting
 * needs only a counter here: the parser already matched every 'e'.
 */
static size_t
benc_skip(const uint8_t *p, size_t len)
{
	size_t i = 0, depth = 0, n;
	const uint8_t *e;

	do {
		if (i >= len)
			return 0;
		switch (p[i]) {
		case 'i':
			e = memchr(p + i, 'e', len - i);
			if (e == NULL)
				return 0;
			i = (size_t)(e - p) + 1;
			break;
		case 'l':
		case 'd':
			depth++;
			i++;
			break;
		case 'e':
			if (depth == 0)
				return 0;
			depth--;
			i++;
			break;
		default:
			if (!benc_isdigit(p[i]) || benc_scan_strhdr(p, len, &i, &n) < 0)
				return 0;
			i += n;
			break;
		}
	} while (depth > 0);
	return i;
}

int
benc_next(struct benc_span v, struct benc_iter *it, struct benc_span *ret_key,
	  struct benc_span *ret_val)
{
	struct benc_span k = { NULL, 0 }, val;
	size_t off, end, n;

	if (v.len < 2 || (v.p[0] != 'l' && v.p[0] != 'd'))
		return -EINVAL;
	/* Elements live between the opener and the closing 'e'. */
	end = v.len - 1;
	off = it->off == 0 ? 1 : it->off;
	if (off > end)
		return -EINVAL;
	if (off == end || v.p[off] == 'e')
		return 0;
	if (v.p[0] == 'd') {
		n = benc_skip(v.p + off, end - off);
		if (n == 0 || !benc_isdigit(v.p[off]))
			return -EINVAL;
		k.p = v.p + off;
		k.len = n;
		off += n;
	}
	n = benc_skip(v.p + off, end - off);
	if (n == 0)
		return -EINVAL;
	val.p = v.p + off;
	val.len = n;
	it->off = off + n;
	if (ret_key != NULL && v.p[0] == 'd')
		*ret_key = k;
	if (ret_val != NULL)
		*ret_val = val;
	return 1;
}

int
benc_dict_get(struct benc_span dict, const char *key, struct benc_span *ret)
{
	struct benc_iter it = { 0 };
	struct benc_span k, val;
	const uint8_t *s;
	size_t slen, klen = strlen(key);
	int r, c;

	if (dict.len == 0 || dict.p[0] != 'd')
		return -EINVAL;
	while ((r = benc_next(dict, &it, &k, &val)) == 1) {
		if (benc_str(k, &s, &slen) < 0)
			return -EINVAL;
		c = benc_keycmp(s, slen, (const uint8_t *)key, klen);
		if (c == 0) {
			*ret = val;
			return 0;
		}
		/* Keys ascend, so once past the wanted one it is absent. */
		if (c > 0)
			break;
	}
	return r < 0 ? r : -ENOENT;
}

/* Writers return int byte counts, so anything longer than INT_MAX is
 * refused as -ENOBUFS as well: the count could not be reported. */

int
benc_put_raw(uint8_t *out, size_t cap, const void *s, size_t len)
{
	if (len > cap || len > INT_MAX)
		return -ENOBUFS;
	if (len > 0)
		memcpy(out, s, len);
	return (int)len;
}

/* Writes "<prefix><decimal of mag><suffix>" if it fits; mag is unsigned so
 * INT64_MIN needs no special case. */
static int
benc_put_num(uint8_t *out, size_t cap, const char *prefix, uint64_t mag, char suffix)
{
	uint8_t tmp[24]; /* "i-" + 20 digits of UINT64_MAX + "e" */
	size_t plen = strlen(prefix), i = sizeof(tmp), n;

	tmp[--i] = (uint8_t)suffix;
	do {
		tmp[--i] = (uint8_t)('0' + mag % 10);
		mag /= 10;
	} while (mag != 0);
	i -= plen;
	memcpy(tmp + i, prefix, plen);
	n = sizeof(tmp) - i;
	return benc_put_raw(out, cap, tmp + i, n);
}

int
benc_put_int(uint8_t *out, size_t cap, int64_t v)
{
	if (v < 0)
		return benc_put_num(out, cap, "i-", (uint64_t) - (v + 1) + 1, 'e');
	return benc_put_num(out, cap, "i", (uint64_t)v, 'e');
}

int
benc_put_str(uint8_t *out, size_t cap, const void *s, size_t len)
{
	uint8_t hdr[24];
	int h;

	/* The header goes aside first so that a refusal writes nothing. */
	h = benc_put_num(hdr, sizeof(hdr), "", len, ':');
	if (h < 0 || len > cap || (size_t)h > cap - len || len > (size_t)(INT_MAX - h))
		return -ENOBUFS;
	memcpy(out, hdr, (size_t)h);
	if (len > 0)
		memcpy(out + h, s, len);
	return h + (int)len;
}
