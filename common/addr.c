// SPDX-License-Identifier: MIT
/* Address parsing and formatting, private ranges, CIDR lists, X-Forwarded-For. */
#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADDR_IP_TEXT_MAX (INET6_ADDRSTRLEN - 1) /* longest textual IP, no NUL */

/* One CIDR prefix over the 16-byte form; IPv4 prefixes are stored mapped,
 * so 10.0.0.0/8 is ::ffff:10.0.0.0/104 and one matcher serves both. */
struct addr_prefix {
	unsigned char ip[16];
	unsigned char len;
};

struct addr_list {
	struct addr_prefix *v;
	size_t n;
	size_t cap;
};

static const unsigned char addr_v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

#define ADDR_V4(a, b, c, d, len)                                                                   \
	{                                                                                          \
		{ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d }, 96 + (len)               \
	}
#define ADDR_V6(b0, b1, b2, b3, b4, b5, len)                                                       \
	{                                                                                          \
		{ b0, b1, b2, b3, b4, b5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, len                      \
	}

/*
 * Not globally routable (IANA special-purpose registries, RFC 6890 and
 * successors). Beyond the list in addr.h this also holds 0/8 "this network",
 * 192.0.0/24 protocol assignments, 240/4 reserved (incl. broadcast), the
 * IPv6 discard prefix and deprecated site-local fec0::/10: none of them can
 * be a real client on the Internet, so none should get a geo answer.
 *
 * The documentation ranges (192.0.2/24, 198.51.100/24, 203.0.113/24,
 * 2001:db8::/32, 3fff::/20) are deliberately NOT here, unlike what addr.h
 * says: they never appear on the Internet, and the suite's tests and
 * network namespaces use them to stand for public hosts, so they must
 * route like public addresses.
 */
static const struct addr_prefix addr_private[] = {
	ADDR_V4(0, 0, 0, 0, 8),      /* this network, incl. 0.0.0.0 unspecified */
	ADDR_V4(10, 0, 0, 0, 8),     /* RFC 1918 */
	ADDR_V4(100, 64, 0, 0, 10),  /* RFC 6598 CGNAT */
	ADDR_V4(127, 0, 0, 0, 8),    /* loopback */
	ADDR_V4(169, 254, 0, 0, 16), /* link-local */
	ADDR_V4(172, 16, 0, 0, 12),  /* RFC 1918 */
	ADDR_V4(192, 0, 0, 0, 24),   /* IETF protocol assignments */
	ADDR_V4(192, 168, 0, 0, 16), /* RFC 1918 */
	ADDR_V4(198, 18, 0, 0, 15),  /* RFC 2544 benchmarking */
	ADDR_V4(224, 0, 0, 0, 4),    /* multicast */
	ADDR_V4(240, 0, 0, 0, 4),    /* reserved, incl. 255.255.255.255 */
	ADDR_V6(0, 0, 0, 0, 0, 0, 128),
	/* ::1 cannot be written with ADDR_V6, its only non-zero byte is the last */
	{ { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 }, 128 },
	ADDR_V6(0x01, 0x00, 0, 0, 0, 0, 64),       /* 100::/64 discard-only */
	ADDR_V6(0x20, 0x01, 0x00, 0x02, 0, 0, 48), /* 2001:2::/48 benchmarking */
	ADDR_V6(0xfc, 0x00, 0, 0, 0, 0, 7),        /* unique-local */
	ADDR_V6(0xfe, 0x80, 0, 0, 0, 0, 10),       /* link-local */
	ADDR_V6(0xfe, 0xc0, 0, 0, 0, 0, 10),       /* site-local, deprecated */
	ADDR_V6(0xff, 0x00, 0, 0, 0, 0, 8),        /* multicast */
};

/* True when the first plen bits of ip and net agree. */
static bool
addr_prefix_match(const unsigned char *ip, const struct addr_prefix *p)
{
	unsigned full = p->len / 8, bits = p->len % 8;

	if (memcmp(ip, p->ip, full) != 0)
		return false;
	if (bits == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - bits));

	return (ip[full] & mask) == (p->ip[full] & mask);
}

bool
addr_is_v4(const struct addr *a)
{
	return memcmp(a->ip, addr_v4_mapped, sizeof(addr_v4_mapped)) == 0;
}

bool
addr_equal_ip(const struct addr *a, const struct addr *b)
{
	return memcmp(a->ip, b->ip, sizeof(a->ip)) == 0;
}

bool
addr_is_private(const struct addr *a)
{
	for (size_t i = 0; i < sizeof(addr_private) / sizeof(addr_private[0]); i++)
		if (addr_prefix_match(a->ip, &addr_private[i]))
			return true;
	return false;
}

int
addr_from_sockaddr(const struct sockaddr *sa, struct addr *ret)
{
	switch (sa->sa_family) {
	case AF_INET: {
		struct sockaddr_in sin;

		/* Copy out: the caller's sockaddr may not be aligned for sockaddr_in. */
		memcpy(&sin, sa, sizeof(sin));
		memcpy(ret->ip, addr_v4_mapped, sizeof(addr_v4_mapped));
		memcpy(ret->ip + 12, &sin.sin_addr, 4);
		ret->port = ntohs(sin.sin_port);
		return 0;
	}
	case AF_INET6: {
		struct sockaddr_in6 sin6;

		memcpy(&sin6, sa, sizeof(sin6));
		memcpy(ret->ip, &sin6.sin6_addr, 16);
		ret->port = ntohs(sin6.sin6_port);
		return 0;
	}
	default:
		return -EAFNOSUPPORT;
	}
}

socklen_t
addr_to_sockaddr(const struct addr *a, struct sockaddr_storage *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (addr_is_v4(a)) {
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(a->port) };

		memcpy(&sin.sin_addr, a->ip + 12, 4);
		memcpy(ret, &sin, sizeof(sin));
		return sizeof(sin);
	}
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(a->port) };

	memcpy(&sin6.sin6_addr, a->ip, 16);
	memcpy(ret, &sin6, sizeof(sin6));
	return sizeof(sin6);
}

/*
 * A bare IP (no brackets, no port) into 16-byte form. Text without ':' is
 * IPv4, anything else IPv6 (v6_only refuses the former). inet_pton wants a
 * C string, and the input is length-delimited and untrusted, so the bytes
 * are checked before the copy: an embedded NUL must not shorten it.
 */
static int
addr_parse_ip(const char *s, size_t len, bool v6_only, unsigned char ip[16])
{
	char buf[INET6_ADDRSTRLEN];
	bool colon = false;

	if (len == 0 || len > ADDR_IP_TEXT_MAX)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == ':')
			colon = true;
		else if (!(c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			   (c >= 'A' && c <= 'F')))
			return -EINVAL;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';

	if (!colon) {
		if (v6_only || inet_pton(AF_INET, buf, ip + 12) != 1)
			return -EINVAL;
		memcpy(ip, addr_v4_mapped, sizeof(addr_v4_mapped));
		return 0;
	}
	return inet_pton(AF_INET6, buf, ip) == 1 ? 0 : -EINVAL;
}

/* 1..65535 in decimal; port 0 is refused because struct addr uses it for "none". */
static int
addr_parse_port(const char *s, size_t len, unsigned short *ret)
{
	unsigned v = 0;

	if (len == 0 || len > 5)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	*ret = (unsigned short)v;
	return 0;
}

int
addr_parse(const char *s, size_t len, bool need_port, struct addr *ret)
{
	struct addr a = { .port = 0 };
	const char *colon = NULL;
	size_t ncolon = 0;

	if (!s || len == 0)
		return -EINVAL;

	if (s[0] == '[') {
		const char *close = memchr(s, ']', len);
		size_t rest;

		if (!close || addr_parse_ip(s + 1, (size_t)(close - s) - 1, true, a.ip) < 0)
			return -EINVAL;
		rest = len - (size_t)(close - s) - 1;
		if (rest > 0 &&
		    (close[1] != ':' || addr_parse_port(close + 2, rest - 1, &a.port) < 0))
			return -EINVAL;
	} else {
		for (size_t i = 0; i < len; i++) {
			if (s[i] == ':') {
				ncolon++;
				colon = s + i;
			}
		}
		/* One colon can only be IPv4:port; two or more are a bare IPv6
		 * address, whose last group must never be mistaken for a port. */
		if (ncolon == 1) {
			size_t iplen = (size_t)(colon - s);

			if (addr_parse_ip(s, iplen, false, a.ip) < 0 ||
			    addr_parse_port(colon + 1, len - iplen - 1, &a.port) < 0)
				return -EINVAL;
		} else if (addr_parse_ip(s, len, false, a.ip) < 0) {
			return -EINVAL;
		}
	}
	if (need_port && a.port == 0)
		return -EINVAL;
	*ret = a;
	return 0;
}

int
addr_format_ip(const struct addr *a, char *buf, size_t size)
{
	char tmp[INET6_ADDRSTRLEN];
	size_t n;

	if (addr_is_v4(a)) {
		if (!inet_ntop(AF_INET, a->ip + 12, tmp, sizeof(tmp)))
			return -ENOBUFS;
	} else if (!inet_ntop(AF_INET6, a->ip, tmp, sizeof(tmp))) {
		return -ENOBUFS;
	}
	n = strlen(tmp);
	if (n + 1 > size)
		return -ENOBUFS;
	memcpy(buf, tmp, n + 1);
	return 0;
}

int
addr_format(const struct addr *a, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN], tmp[ADDR_STR_MAX];
	bool v4 = addr_is_v4(a);
	int n;

	if (addr_format_ip(a, ip, sizeof(ip)) < 0)
		return -ENOBUFS;
	/* Port 0 means "none": leave it out so the text parses back to the same addr. */
	if (a->port == 0)
		n = snprintf(tmp, sizeof(tmp), v4 ? "%s" : "[%s]", ip);
	else
		n = snprintf(tmp, sizeof(tmp), v4 ? "%s:%u" : "[%s]:%u", ip, a->port);
	if (n < 0 || (size_t)n + 1 > size)
		return -ENOBUFS;
	memcpy(buf, tmp, (size_t)n + 1);
	return 0;
}

static bool
addr_list_sep(char c)
{
	return c == ',' || c == ' ' || c == '\t';
}

/* One "ip" or "ip/len" entry. Host bits below the prefix are an error, not
 * silently masked: in a trust list "10.1.2.3/8" is far more likely a typo
 * for a /32 than a wish to trust all of 10/8. */
static int
addr_list_parse_entry(const char *s, size_t len, struct addr_prefix *ret)
{
	const char *slash = memchr(s, '/', len);
	size_t iplen = slash ? (size_t)(slash - s) : len;
	bool v4 = !memchr(s, ':', iplen);
	unsigned plen = v4 ? 32 : 128, max = plen;
	struct addr_prefix p;

	if (addr_parse_ip(s, iplen, false, p.ip) < 0)
		return -EINVAL;
	if (slash) {
		size_t dlen = len - iplen - 1;

		if (dlen == 0 || dlen > 3)
			return -EINVAL;
		plen = 0;
		for (size_t i = 0; i < dlen; i++) {
			if (slash[1 + i] < '0' || slash[1 + i] > '9')
				return -EINVAL;
			plen = plen * 10 + (unsigned)(slash[1 + i] - '0');
		}
		if (plen > max)
			return -EINVAL;
	}
	p.len = (unsigned char)(v4 ? plen + 96 : plen);

	for (unsigned bit = p.len; bit < 128; bit++)
		if (p.ip[bit / 8] & (0x80 >> (bit % 8)))
			return -EINVAL;
	*ret = p;
	return 0;
}

static int
addr_list_push(struct addr_list *l, const struct addr_prefix *p)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		struct addr_prefix *v;

		if (cap > SIZE_MAX / sizeof(*v))
			return -ENOMEM;
		v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *p;
	return 0;
}

struct addr_list *
addr_list_parse(const char *s, int *ret_err, size_t *ret_bad_pos)
{
	struct addr_list *l = calloc(1, sizeof(*l));
	size_t i = 0;
	int r;

	if (!l) {
		r = -ENOMEM;
		goto fail;
	}
	/* NULL is an unset option: same as empty, trust nobody. */
	while (s && s[i]) {
		struct addr_prefix p;
		size_t start;

		while (addr_list_sep(s[i]))
			i++;
		if (!s[i])
			break;
		start = i;
		while (s[i] && !addr_list_sep(s[i]))
			i++;
		r = addr_list_parse_entry(s + start, i - start, &p);
		if (r < 0) {
			if (ret_bad_pos)
				*ret_bad_pos = start;
			goto fail_list;
		}
		r = addr_list_push(l, &p);
		if (r < 0)
			goto fail_list;
	}
	return l;

fail_list:
	addr_list_free(l);
fail:
	if (ret_err)
		*ret_err = r;
	return NULL;
}

void
addr_list_free(struct addr_list *l)
{
	if (!l)
		return;
	free(l->v);
	free(l);
}

bool
addr_list_match(const struct addr_list *l, const struct addr *a)
{
	if (!l)
		return false;
	for (size_t i = 0; i < l->n; i++)
		if (addr_prefix_match(a->ip, &l->v[i]))
			return true;
	return false;
}

size_t
addr_list_count(const struct addr_list *l)
{
	return l ? l->n : 0;
}

static bool
addr_ows(char c)
{
	return c == ' ' || c == '\t';
}

void
addr_client(const struct addr *peer, const char *xff, const struct addr_list *trusted,
	    struct addr *ret)
{
	struct addr cur = *peer;
	size_t end;

	/* Anyone can send the header; only a proxy we trust may be believed. */
	if (!xff || !addr_list_match(trusted, peer)) {
		*ret = cur;
		return;
	}

	/* Right to left: each trusted proxy appended the address it saw, so
	 * entries are genuine only up to the first untrusted one; everything
	 * further left was written by the client and may be forged. */
	end = strlen(xff);
	for (;;) {
		size_t start = end, b, e;
		struct addr hop;

		while (start > 0 && xff[start - 1] != ',')
			start--;
		for (b = start; b < end && addr_ows(xff[b]); b++)
			;
		for (e = end; e > b && addr_ows(xff[e - 1]); e--)
			;
		if (addr_parse(xff + b, e - b, false, &hop) < 0)
			break;
		cur = hop;
		if (!addr_list_match(trusted, &hop) || start == 0)
			break;
		end = start - 1;
	}
	*ret = cur;
}
