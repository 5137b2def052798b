// SPDX-License-Identifier: MIT
/* tracker: parsing of /announce and /scrape query strings (BEP 3, BEP 48). */
#include <errno.h>
#include <string.h>

#include "trk.h"
#include "util.h"

/* Percent-decodes s[0..len) into out (cap bytes); '+' is a space, as in
 * form encoding. Returns the decoded length, or -1 if it does not fit or an
 * escape is malformed. */
static long
trk_unescape(const char *s, size_t len, uint8_t *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)s[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= len)
				return -1;
			hi = util_hexval(s[i + 1]);
			lo = util_hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = hi << 4 | lo;
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (n == cap)
			return -1;
		out[n++] = (uint8_t)c;
	}
	return (long)n;
}

static bool
trk_key_is(const char *k, size_t klen, const char *name)
{
	return strlen(name) == klen && memcmp(k, name, klen) == 0;
}

/* A decimal unsigned value of at most 20 digits; false on anything else. */
static bool
trk_parse_u64(const uint8_t *v, long n, unsigned long long *ret)
{
	unsigned long long x = 0;
	if (n < 1 || n > 20)
		return false;
	for (long i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		unsigned d = (unsigned)(v[i] - '0');
		if (x > (~0ULL - d) / 10)
			return false;
		x = x * 10 + d;
	}
	*ret = x;
	return true;
}

int
trk_query_parse(const char *q, size_t len, bool scrape, struct trk_query *ret,
		const char **ret_reason)
{
	struct trk_query r;
	const char *p = q, *end = q + len;
	uint8_t v[128];
	unsigned long long u;

	memset(&r, 0, sizeof(r));
	r.port = -1;
	r.numwant = -1;
	r.compact = true;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *pe = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(pe - p));
		const char *k = p, *val = eq ? eq + 1 : pe;
		size_t klen = (size_t)((eq ? eq : pe) - p);
		long n = trk_unescape(val, (size_t)(pe - val), v, sizeof(v));
		p = amp ? amp + 1 : end;
		if (klen == 0)
			continue;
		if (trk_key_is(k, klen, "info_hash")) {
			if (n != TRK_HASH_LEN) {
				*ret_reason = "invalid info_hash (must be 20 bytes)";
				return -EINVAL;
			}
			if (scrape) {
				if (r.nscrape == TRK_SCRAPE_MAX) {
					*ret_reason = "too many info_hash values in one scrape";
					return -EINVAL;
				}
				memcpy(r.scrape[r.nscrape++], v, TRK_HASH_LEN);
			} else {
				if (r.has_info_hash) {
					*ret_reason = "info_hash given twice";
					return -EINVAL;
				}
				memcpy(r.info_hash, v, TRK_HASH_LEN);
			}
			r.has_info_hash = true;
		} else if (scrape) {
			continue; /* scrape takes info_hash only */
		} else if (trk_key_is(k, klen, "peer_id")) {
			if (n != 20) {
				*ret_reason = "invalid peer_id (must be 20 bytes)";
				return -EINVAL;
			}
			memcpy(r.peer_id, v, 20);
			r.has_peer_id = true;
		} else if (trk_key_is(k, klen, "port")) {
			if (n < 0 || !trk_parse_u64(v, n, &u) || u < 1 || u > 65535) {
				*ret_reason = "invalid port";
				return -EINVAL;
			}
			r.port = (long)u;
		} else if (trk_key_is(k, klen, "uploaded") || trk_key_is(k, klen, "downloaded") ||
			   trk_key_is(k, klen, "left")) {
			if (n < 0 || !trk_parse_u64(v, n, &u)) {
				*ret_reason = "invalid uploaded, downloaded or left";
				return -EINVAL;
			}
			if (k[0] == 'u')
				r.uploaded = u;
			else if (k[0] == 'd')
				r.downloaded = u;
			else {
				r.left = u;
				r.has_left = true;
			}
		} else if (trk_key_is(k, klen, "event")) {
			if (n == 7 && memcmp(v, "started", 7) == 0)
				r.event = TRK_EV_STARTED;
			else if (n == 7 && memcmp(v, "stopped", 7) == 0)
				r.event = TRK_EV_STOPPED;
			else if (n == 9 && memcmp(v, "completed", 9) == 0)
				r.event = TRK_EV_COMPLETED;
			else if (n == 0 || (n == 5 && memcmp(v, "empty", 5) == 0) ||
				 (n == 6 && memcmp(v, "paused", 6) == 0))
				r.event = TRK_EV_NONE; /* BEP 21 "paused": a regular announce */
			else {
				*ret_reason = "invalid event";
				return -EINVAL;
			}
		} else if (trk_key_is(k, klen, "numwant")) {
			if (n < 0 || !trk_parse_u64(v, n, &u)) {
				*ret_reason = "invalid numwant";
				return -EINVAL;
			}
			r.numwant = u > 1000000 ? 1000000 : (long long)u;
		} else if (trk_key_is(k, klen, "compact")) {
			r.compact = !(n == 1 && v[0] == '0');
		} else if (trk_key_is(k, klen, "no_peer_id")) {
			r.no_peer_id = n == 1 && v[0] == '1';
		} else if (trk_key_is(k, klen, "ip") || trk_key_is(k, klen, "ipv4") ||
			   trk_key_is(k, klen, "ipv6")) {
			if (n < 1 || (size_t)n >= sizeof(r.ip)) {
				*ret_reason = "invalid ip";
				return -EINVAL;
			}
			memcpy(r.ip, v, (size_t)n);
			r.ip[n] = '\0';
			r.has_ip = true;
		}
		/* key, trackerid, supportcrypto, corrupt, ...: not needed */
	}
	if (!r.has_info_hash) {
		*ret_reason = "missing info_hash";
		return -EINVAL;
	}
	if (!scrape && r.port < 0) {
		*ret_reason = "missing port";
		return -EINVAL;
	}
	*ret = r;
	return 0;
}
