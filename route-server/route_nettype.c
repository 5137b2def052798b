// SPDX-License-Identifier: MIT
/* route-server: ASN -> carrier class table (the PeerID nettype, seed 001 §3.1.1). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "route.h"

/* The seven carriers the paper partitions China's Internet into. */
static const char *const route_nettype_names[16] = {
	[0] = "unknown", [1] = "telecom", [2] = "netcom", [3] = "unicom", [4] = "mobile",
	[5] = "tietong", [6] = "cernet",  [7] = "satcom", [15] = "other",
};

static const struct route_nettype_entry route_nettype_default[] = {
	{ 4134, 1, 0 },  { 4812, 1, 0 },  { 4809, 1, 0 },  { 23764, 1, 0 }, { 4811, 1, 0 },
	{ 4816, 1, 0 },  { 9929, 2, 0 },  { 17621, 2, 0 }, { 17623, 2, 0 }, { 4837, 3, 0 },
	{ 4808, 3, 0 },  { 17816, 3, 0 }, { 17622, 3, 0 }, { 10099, 3, 0 }, { 9808, 4, 0 },
	{ 56040, 4, 0 }, { 56041, 4, 0 }, { 56042, 4, 0 }, { 56044, 4, 0 }, { 56046, 4, 0 },
	{ 56047, 4, 0 }, { 56048, 4, 0 }, { 24400, 4, 0 }, { 58453, 4, 0 }, { 24445, 4, 0 },
	{ 9394, 5, 0 },  { 58542, 5, 0 }, { 4538, 6, 0 },  { 4565, 6, 0 },  { 23910, 6, 0 },
	{ 24348, 6, 0 }, { 9811, 7, 0 },
};

const char *
route_nettype_name(unsigned cls)
{
	if (cls < 16 && route_nettype_names[cls])
		return route_nettype_names[cls];
	return "reserved";
}

int
route_nettype_from_name(const char *s)
{
	char *end;
	long v;

	if (!s || !*s)
		return -EINVAL;
	for (unsigned i = 0; i < 16; i++)
		if (route_nettype_names[i] && strcasecmp(s, route_nettype_names[i]) == 0)
			return (int)i;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 0 || v > 15)
		return -EINVAL;
	return (int)v;
}

static int
route_nettype_cmp(const void *a, const void *b)
{
	const struct route_nettype_entry *x = a, *y = b;
	return x->asn < y->asn ? -1 : x->asn > y->asn;
}

int
route_nettype_builtin(struct route_nettype *ret)
{
	size_t n = sizeof(route_nettype_default) / sizeof(route_nettype_default[0]);
	struct route_nettype_entry *v = malloc(sizeof(route_nettype_default));
	if (!v)
		return -ENOMEM;
	memcpy(v, route_nettype_default, sizeof(route_nettype_default));
	qsort(v, n, sizeof(*v), route_nettype_cmp);
	ret->v = v;
	ret->n = n;
	return 0;
}

static void
route_trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t' || **s == '\r'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r'))
		(*e)--;
}

int
route_nettype_parse(const char *text, size_t len, struct route_nettype *ret, char *err,
		    size_t errsize)
{
	struct route_nettype_entry *v = NULL;
	size_t n = 0, cap = 0, lineno = 0;
	const char *p = text, *end = text + len;
	char field[32];

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end, *ls = p, *comma;
		lineno++;
		p = nl ? nl + 1 : end;
		const char *hash = memchr(ls, '#', (size_t)(le - ls));
		if (hash)
			le = hash;
		route_trim(&ls, &le);
		if (ls == le)
			continue;
		comma = memchr(ls, ',', (size_t)(le - ls));
		if (!comma) {
			snprintf(err, errsize, "line %zu: expected ASN,CLASS", lineno);
			goto fail;
		}
		const char *as = ls, *ae = comma, *cs = comma + 1, *ce = le;
		route_trim(&as, &ae);
		route_trim(&cs, &ce);
		if (as[0] == 'A' || as[0] == 'a')
			as += (ae - as > 2 && (as[1] == 'S' || as[1] == 's')) ? 2 : 0;
		size_t alen = (size_t)(ae - as), clen = (size_t)(ce - cs);
		if (alen == 0 || alen > 10 || clen == 0 || clen >= sizeof(field)) {
			snprintf(err, errsize, "line %zu: expected ASN,CLASS", lineno);
			goto fail;
		}
		unsigned long long asn = 0;
		for (size_t i = 0; i < alen; i++) {
			if (as[i] < '0' || as[i] > '9') {
				snprintf(err, errsize, "line %zu: ASN must be a number", lineno);
				goto fail;
			}
			asn = asn * 10 + (unsigned)(as[i] - '0');
		}
		if (asn == 0 || asn > UINT32_MAX) {
			snprintf(err, errsize, "line %zu: ASN out of range", lineno);
			goto fail;
		}
		memcpy(field, cs, clen);
		field[clen] = '\0';
		int cls = route_nettype_from_name(field);
		if (cls < 1 || cls > 14) {
			snprintf(err, errsize,
				 "line %zu: class \"%s\" is not 1..14 or a carrier name", lineno,
				 field);
			goto fail;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			if (ncap > 4000000) {
				snprintf(err, errsize, "line %zu: too many entries", lineno);
				goto fail;
			}
			struct route_nettype_entry *nv = realloc(v, ncap * sizeof(*v));
			if (!nv) {
				snprintf(err, errsize, "out of memory");
				goto fail;
			}
			v = nv;
			cap = ncap;
		}
		v[n].asn = (uint32_t)asn;
		v[n].cls = (uint8_t)cls;
		v[n].line = (uint32_t)lineno;
		n++;
	}
	if (n)
		qsort(v, n, sizeof(*v), route_nettype_cmp);
	for (size_t i = 1; i < n; i++) {
		if (v[i].asn == v[i - 1].asn && v[i].cls != v[i - 1].cls) {
			uint32_t a = v[i].line, b = v[i - 1].line;
			snprintf(err, errsize,
				 "line %u: AS%u already listed with another class at line %u",
				 a > b ? a : b, v[i].asn, a > b ? b : a);
			goto fail;
		}
	}
	ret->v = v;
	ret->n = n;
	return 0;
fail:
	free(v);
	return -EINVAL;
}

unsigned
route_nettype_class(const struct route_nettype *t, uint32_t asn)
{
	size_t lo = 0, hi = t->n;

	if (!asn)
		return ROUTE_NETTYPE_UNKNOWN;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->v[mid].asn == asn)
			return t->v[mid].cls;
		if (t->v[mid].asn < asn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return ROUTE_NETTYPE_OTHER;
}
