/* SPDX-License-Identifier: MIT */
/* Network addresses: parsing, private ranges, CIDR lists, X-Forwarded-For. */
#ifndef P2PCDN_ADDR_H
#define P2PCDN_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* One address in a form cheap to compare: IPv4 kept as IPv4-mapped IPv6. */
struct addr {
	unsigned char ip[16]; /* network order; v4 as ::ffff:a.b.c.d */
	unsigned short port;  /* host order, 0 if none */
};

#define ADDR_STR_MAX 64 /* "[v6]:port" incl. NUL */

/* From a sockaddr (AF_INET or AF_INET6). Returns 0 or -EAFNOSUPPORT. */
int addr_from_sockaddr(const struct sockaddr *sa, struct addr *ret);

/* To a sockaddr: IPv4 (mapped) addresses become AF_INET, others AF_INET6.
 * Returns the sockaddr length. */
socklen_t addr_to_sockaddr(const struct addr *a, struct sockaddr_storage *ret);

/* Parses "1.2.3.4", "::1", "1.2.3.4:80", "[::1]:80" (len bytes, NUL not
 * needed; surrounding spaces not allowed). Port optional unless
 * need_port. Returns 0 or -EINVAL; ret written only on success. */
int addr_parse(const char *s, size_t len, bool need_port, struct addr *ret);

/* Formats the IP only ("1.2.3.4", "2001:db8::1") into buf. Returns 0 or -ENOBUFS. */
int addr_format_ip(const struct addr *a, char *buf, size_t size);

/* Formats "1.2.3.4:80" or "[2001:db8::1]:80". Returns 0 or -ENOBUFS. */
int addr_format(const struct addr *a, char *buf, size_t size);

bool addr_is_v4(const struct addr *a);
bool addr_equal_ip(const struct addr *a, const struct addr *b);

/* True for addresses that are not globally routable: RFC 1918, CGNAT
 * 100.64/10, loopback, link-local, unique-local fc00::/7, unspecified,
 * benchmarking ranges, multicast. Documentation ranges count as public: tests
 * use them to stand for Internet hosts. */
bool addr_is_private(const struct addr *a);

/* A list of CIDR prefixes ("10.0.0.0/8, 2001:db8::/32, 127.0.0.1").
 * Owned by the caller; free with addr_list_free (NULL-safe). */
struct addr_list;

/* Parses a comma/space separated list; empty string gives an empty list.
 * Returns a new list, or NULL with *ret_err set to -EINVAL (bad entry,
 * *ret_bad_pos = byte offset of it if non-NULL) or -ENOMEM. */
struct addr_list *addr_list_parse(const char *s, int *ret_err, size_t *ret_bad_pos);
void addr_list_free(struct addr_list *l);
bool addr_list_match(const struct addr_list *l, const struct addr *a);
size_t addr_list_count(const struct addr_list *l);

/* The client address of a request: `peer` is the direct TCP peer; `xff` the
 * X-Forwarded-For header or NULL. Only when peer is in `trusted` is xff
 * walked from the right, skipping trusted hops; the first untrusted entry is
 * the client. Garbage entries stop the walk and the last good hop is used,
 * so a forged header can never make a trusted proxy's own address or junk
 * the answer. Always succeeds. */
void addr_client(const struct addr *peer, const char *xff, const struct addr_list *trusted,
		 struct addr *ret);

#endif
