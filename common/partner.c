// SPDX-License-Identifier: MIT
/* Member and partner lists of a live-channel peer (seed 001 §3.1.2–3.1.4), and partner frames. */
#include "partner.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "peerid.h"
#include "schedule.h"

unsigned
partner_limit(unsigned long long bw, unsigned long long rate)
{
	unsigned long long q;

	if (rate == 0)
		return PARTNER_MAX;
	q = bw / rate;
	if (q < 2)
		return 0;
	return q - 1 > PARTNER_MAX ? PARTNER_MAX : (unsigned)(q - 1);
}

/* ceil(mul · ln n), 0 for n <= 1, capped well below overflow. */
static unsigned
partner_log_mul(long long n, double mul)
{
	double v;

	if (n <= 1)
		return 0;
	v = ceil(mul * log((double)n) - 1e-9);
	return v > 1e6 ? 1000000u : (unsigned)v;
}

unsigned
partner_members_target(long long n, unsigned lo)
{
	unsigned v = partner_log_mul(n, 3.0);

	return v < lo ? lo : v;
}

unsigned
partner_count_target(long long n, unsigned limit)
{
	unsigned v = partner_log_mul(n, 1.0);

	if (v < 1)
		v = 1;
	return v > limit ? limit : v;
}

double
partner_weight(unsigned long long up, unsigned long long down, long long dur_ms, double p)
{
	double secs;

	if (!(p >= 0))
		p = 0;
	if (p > 1)
		p = 1;
	secs = dur_ms < 1000 ? 1.0 : (double)dur_ms / 1000.0;
	return ((1.0 - p) * (double)up + p * (double)down) / secs;
}

unsigned
partner_replace_count(unsigned cur, double k)
{
	if (!(k > 0))
		return 0;
	if (k >= 0.5)
		k = 0.4999999;
	return (unsigned)floor(k * (double)cur);
}

size_t
partner_worst(const struct partner_score *s, size_t n, double p, long long now_ms, size_t count,
	      size_t *out)
{
	double w[PARTNER_MAX];
	bool taken[PARTNER_MAX] = { false };
	size_t got = 0;

	if (n > PARTNER_MAX)
		n = PARTNER_MAX;
	for (size_t i = 0; i < n; i++)
		w[i] = partner_weight(s[i].up, s[i].down, now_ms - s[i].since_ms, p);
	/* Selection, count is small (k · curNo < PARTNER_MAX / 2). */
	while (got < count) {
		size_t best = n;

		for (size_t i = 0; i < n; i++) {
			if (taken[i] || s[i].keep)
				continue;
			if (best == n || w[i] < w[best] ||
			    (w[i] == w[best] && s[i].since_ms > s[best].since_ms))
				best = i;
		}
		if (best == n)
			break;
		taken[best] = true;
		out[got++] = best;
	}
	return got;
}

size_t
partner_choose(uint64_t self, const struct partner_cand *c, size_t n, size_t want, uint64_t *rng,
	       size_t *out)
{
	/* Candidates bucketed by proximity (0..5), each bucket shuffled. */
	static const int levels = 6;
	size_t got = 0;

	if (n > 4096)
		n = 4096;
	for (int lvl = levels - 1; lvl >= 0 && got < want; lvl--) {
		size_t idx[4096], m = 0;

		for (size_t i = 0; i < n; i++)
			if (!c[i].skip && c[i].pid != self &&
			    peerid_proximity(self, c[i].pid) == lvl)
				idx[m++] = i;
		/* Fisher-Yates: every order among equals equally likely. */
		for (size_t i = m; i > 1; i--) {
			size_t j = (size_t)(sched_rand(rng) % i);
			size_t t = idx[i - 1];

			idx[i - 1] = idx[j];
			idx[j] = t;
		}
		for (size_t i = 0; i < m && got < want; i++)
			out[got++] = idx[i];
	}
	return got;
}

size_t
partner_trim(uint64_t self, const struct partner_member *m, size_t n, size_t target, size_t *out)
{
	size_t drop, got = 0;

	if (n <= target)
		return 0;
	drop = n - target;
	/* Farthest first; among equals the one not seen for longest. */
	for (int lvl = 0; lvl <= 5 && got < drop; lvl++) {
		for (;;) {
			size_t best = n;

			for (size_t i = 0; i < n; i++) {
				bool dup = false;

				if (peerid_proximity(self, m[i].pid) != lvl)
					continue;
				for (size_t k = 0; k < got && !dup; k++)
					dup = out[k] == i;
				if (dup)
					continue;
				if (best == n || m[i].seen_ms < m[best].seen_ms)
					best = i;
			}
			if (best == n || got >= drop)
				break;
			out[got++] = best;
		}
	}
	return got;
}

/* ---------------------------------------------------------------- frames */

/* A decimal number of 1..10 digits without sign or leading zero (except
 * "0") in s[0..len) up to the first `stop` byte. Returns the digits used,
 * or -EINVAL. */
static int
partner_num(const char *s, size_t len, char stop, unsigned long long max, unsigned long long *ret)
{
	unsigned long long v = 0;
	size_t i = 0;

	while (i < len && s[i] != stop) {
		if (s[i] < '0' || s[i] > '9' || i >= 10)
			return -EINVAL;
		v = v * 10 + (unsigned long long)(s[i] - '0');
		i++;
	}
	if (i == 0 || i == len || (i > 1 && s[0] == '0') || v > max)
		return -EINVAL;
	*ret = v;
	return (int)i;
}

int
partner_frame_parse(const void *buf, size_t len, struct partner_frame *ret)
{
	const char *s = buf;
	struct partner_frame f = { 0 };
	unsigned long long v;
	size_t pos;
	int n;

	if (!buf || len < 4 || (s[0] != 'Q' && s[0] != 'A') || s[1] != ' ')
		return -EINVAL;
	f.kind = s[0];
	pos = 2;
	n = partner_num(s + pos, len - pos, ' ', UINT32_MAX, &v);
	if (n < 0)
		return -EINVAL;
	f.id = (uint32_t)v;
	pos += (size_t)n + 1;
	if (f.kind == 'A') {
		n = partner_num(s + pos, len - pos, '\n', 599, &v);
		if (n < 0 || v < 100)
			return -EINVAL;
		f.status = (unsigned)v;
		pos += (size_t)n + 1;
		f.body = s + pos;
		f.body_len = len - pos;
	} else {
		size_t start = pos;

		while (pos < len && s[pos] != '\n') {
			if ((unsigned char)s[pos] < 0x21 || (unsigned char)s[pos] > 0x7e)
				return -EINVAL;
			pos++;
		}
		/* The newline ends the frame: nothing may follow a request. */
		if (pos == len || pos + 1 != len || pos == start || s[start] != '/' ||
		    pos - start > PARTNER_PATH_MAX)
			return -EINVAL;
		f.path = s + start;
		f.path_len = pos - start;
	}
	*ret = f;
	return 0;
}

int
partner_frame_header(char kind, uint32_t id, unsigned status, const char *path, size_t path_len,
		     char *out, size_t size)
{
	int n;

	if (kind == 'Q') {
		if (!path || path_len == 0 || path_len > PARTNER_PATH_MAX || path[0] != '/')
			return -EINVAL;
		for (size_t i = 0; i < path_len; i++)
			if ((unsigned char)path[i] < 0x21 || (unsigned char)path[i] > 0x7e)
				return -EINVAL;
		n = snprintf(out, size, "Q %u %.*s\n", (unsigned)id, (int)path_len, path);
	} else if (kind == 'A') {
		if (status < 100 || status > 599)
			return -EINVAL;
		n = snprintf(out, size, "A %u %u\n", (unsigned)id, status);
	} else {
		return -EINVAL;
	}
	if (n < 0 || (size_t)n >= size)
		return -ENOBUFS;
	return n;
}
