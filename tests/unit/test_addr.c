// SPDX-License-Identifier: MIT
/* Unit tests for common/addr: parsing, formatting, private ranges, CIDR lists, XFF. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "addr.h"

/* Parses a test literal that must be valid. */
static struct addr
parse_ok(const char *s)
{
	struct addr a;

	memset(&a, 0, sizeof(a));
	assert_int_equal(addr_parse(s, strlen(s), false, &a), 0);
	return a;
}

/* addr_format of a, into a static buffer for one-line comparisons. */
static const char *
fmt(const struct addr *a)
{
	static char buf[ADDR_STR_MAX];

	assert_int_equal(addr_format(a, buf, sizeof(buf)), 0);
	return buf;
}

static struct addr_list *
list_ok(const char *s)
{
	int err = 1;
	size_t pos = 12345;
	struct addr_list *l = addr_list_parse(s, &err, &pos);

	assert_non_null(l);
	assert_int_equal(err, 1);
	assert_int_equal(pos, 12345);
	return l;
}

/* ---- parsing ---- */

static void
test_parse_v4(void **state)
{
	static const unsigned char mapped[16] = { 0, 0, 0,    0,    0, 0, 0, 0,
						  0, 0, 0xff, 0xff, 1, 2, 3, 4 };
	struct addr a;

	(void)state;
	assert_int_equal(addr_parse("1.2.3.4", 7, false, &a), 0);
	assert_memory_equal(a.ip, mapped, 16);
	assert_int_equal(a.port, 0);
	assert_true(addr_is_v4(&a));

	assert_int_equal(addr_parse("1.2.3.4:80", 10, false, &a), 0);
	assert_memory_equal(a.ip, mapped, 16);
	assert_int_equal(a.port, 80);
	assert_int_equal(addr_parse("1.2.3.4:80", 10, true, &a), 0);
	assert_int_equal(addr_parse("1.2.3.4:1", 9, true, &a), 0);
	assert_int_equal(a.port, 1);
	assert_int_equal(addr_parse("1.2.3.4:65535", 13, true, &a), 0);
	assert_int_equal(a.port, 65535);
	assert_int_equal(addr_parse("0.0.0.0", 7, false, &a), 0);
	assert_int_equal(addr_parse("255.255.255.255", 15, false, &a), 0);

	/* Length-delimited: bytes past len are never looked at. */
	assert_int_equal(addr_parse("1.2.3.4:80", 7, false, &a), 0);
	assert_memory_equal(a.ip, mapped, 16);
	assert_int_equal(a.port, 0);
}

static void
test_parse_v6(void **state)
{
	static const unsigned char loop[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
	static const unsigned char doc[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
					       0,    0,    0,    0,    0, 0, 0, 1 };
	struct addr a;

	(void)state;
	assert_int_equal(addr_parse("::1", 3, false, &a), 0);
	assert_memory_equal(a.ip, loop, 16);
	assert_int_equal(a.port, 0);
	assert_false(addr_is_v4(&a));

	assert_int_equal(addr_parse("[::1]:80", 8, true, &a), 0);
	assert_memory_equal(a.ip, loop, 16);
	assert_int_equal(a.port, 80);
	assert_int_equal(addr_parse("[::1]", 5, false, &a), 0);
	assert_int_equal(a.port, 0);
	assert_int_equal(addr_parse("2001:DB8::1", 11, false, &a), 0);
	assert_memory_equal(a.ip, doc, 16);
	assert_int_equal(addr_parse("[2001:db8:0:0:0:0:0:1]:65535", 28, true, &a), 0);
	assert_memory_equal(a.ip, doc, 16);
	assert_int_equal(a.port, 65535);

	/* Two or more colons are a bare address: the last group is not a port. */
	assert_int_equal(addr_parse("::1:80", 6, false, &a), 0);
	assert_int_equal(a.port, 0);
	assert_int_equal(a.ip[14], 0);
	assert_int_equal(a.ip[15], 0x80);

	/* v4-mapped written as IPv6 is the same address as the IPv4 form. */
	assert_int_equal(addr_parse("::ffff:1.2.3.4", 14, false, &a), 0);
	assert_true(addr_is_v4(&a));
	struct addr b = parse_ok("1.2.3.4");

	assert_true(addr_equal_ip(&a, &b));
	assert_int_equal(addr_parse("[::ffff:1.2.3.4]:8080", 21, true, &a), 0);
	assert_true(addr_equal_ip(&a, &b));
	assert_int_equal(a.port, 8080);
}

static void
test_parse_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		" 1.2.3.4",
		"1.2.3.4 ",
		"1.2.3",
		"1.2.3.4.5",
		"256.1.1.1",
		"1.2.3.256",
		"01.2.3.4",
		"1.2.3.4:",
		"1.2.3.4:0",
		"1.2.3.4:65536",
		"1.2.3.4:123456",
		"1.2.3.4:-1",
		"1.2.3.4:+80",
		"1.2.3.4:8a",
		"1.2.3.4: 80",
		"1.2.3.4:80:90",
		"a.b.c.d",
		"example.com",
		"localhost:80",
		"[1.2.3.4]:80",
		"[::1",
		"[::1]80",
		"[::1]:",
		"[::1]:0",
		"[::1]:65536",
		"[]:80",
		"[]",
		"[::1]]:80",
		"[[::1]]:80",
		"::1]",
		":::",
		"1::2::3",
		"fe80::1%eth0",
		"[fe80::1%eth0]:80",
		"12345::",
		"::ffff:1.2.3.256",
		"1:2:3:4:5:6:7:8:9",
		"0000000000000000000000000000000000000000000000000000::1",
		":80",
		":",
		"[",
		"]",
	};
	struct addr a, before;

	(void)state;
	memset(&a, 0x5a, sizeof(a));
	before = a;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (addr_parse(bad[i], strlen(bad[i]), false, &a) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_memory_equal(&a, &before, sizeof(a));
	}
	/* An embedded NUL must not cut the input short. */
	assert_int_equal(addr_parse("1.2.3.4\0", 8, false, &a), -EINVAL);
	assert_int_equal(addr_parse("1.2.3.4\0:80", 11, false, &a), -EINVAL);
	assert_int_equal(addr_parse("[::1]\0", 6, false, &a), -EINVAL);
	assert_int_equal(addr_parse(NULL, 0, false, &a), -EINVAL);
	assert_int_equal(addr_parse(NULL, 7, false, &a), -EINVAL);
	assert_memory_equal(&a, &before, sizeof(a));
}

static void
test_parse_need_port(void **state)
{
	struct addr a, before;

	(void)state;
	memset(&a, 0x5a, sizeof(a));
	before = a;
	assert_int_equal(addr_parse("1.2.3.4", 7, true, &a), -EINVAL);
	assert_int_equal(addr_parse("::1", 3, true, &a), -EINVAL);
	assert_int_equal(addr_parse("[::1]", 5, true, &a), -EINVAL);
	assert_int_equal(addr_parse("::1:80", 6, true, &a), -EINVAL);
	assert_memory_equal(&a, &before, sizeof(a));
}

/* ---- formatting ---- */

static void
test_format(void **state)
{
	struct addr a;
	char buf[ADDR_STR_MAX];

	(void)state;
	a = parse_ok("1.2.3.4:80");
	assert_string_equal(fmt(&a), "1.2.3.4:80");
	assert_int_equal(addr_format_ip(&a, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1.2.3.4");

	a = parse_ok("[2001:db8:0:0::1]:443");
	assert_string_equal(fmt(&a), "[2001:db8::1]:443");
	assert_int_equal(addr_format_ip(&a, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2001:db8::1");

	/* Port 0 means none, and is left out. */
	a = parse_ok("1.2.3.4");
	assert_string_equal(fmt(&a), "1.2.3.4");
	a = parse_ok("::1");
	assert_string_equal(fmt(&a), "[::1]");

	/* v4-mapped always prints as IPv4. */
	a = parse_ok("::FFFF:10.0.0.1");
	assert_string_equal(fmt(&a), "10.0.0.1");
}

static void
test_format_nobufs(void **state)
{
	struct addr a = parse_ok("[2001:db8::1]:443");
	char buf[ADDR_STR_MAX];

	(void)state;
	/* "[2001:db8::1]:443" is 17 characters. */
	memset(buf, 'X', sizeof(buf));
	assert_int_equal(addr_format(&a, buf, 17), -ENOBUFS);
	assert_int_equal(buf[0], 'X');
	assert_int_equal(addr_format(&a, buf, 18), 0);
	assert_string_equal(buf, "[2001:db8::1]:443");
	/* "2001:db8::1" is 11. */
	memset(buf, 'X', sizeof(buf));
	assert_int_equal(addr_format_ip(&a, buf, 11), -ENOBUFS);
	assert_int_equal(addr_format_ip(&a, buf, 0), -ENOBUFS);
	assert_int_equal(buf[0], 'X');
	assert_int_equal(addr_format_ip(&a, buf, 12), 0);
	assert_string_equal(buf, "2001:db8::1");

	/* The longest possible text fits ADDR_STR_MAX. */
	a = parse_ok("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535");
	assert_int_equal(addr_format(&a, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535");
	a = parse_ok("[::ffff:255.255.255.255]:65535");
	assert_int_equal(addr_format(&a, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "255.255.255.255:65535");
}

static void
test_format_parse_round_trip(void **state)
{
	static const char *const in[] = {
		"1.2.3.4",     "1.2.3.4:1",     "255.255.255.255:65535",  "[::]",       "[::1]:80",
		"[fe80::1]:9", "[2001:db8::1]", "[1:2:3:4:5:6:7:8]:1234", "0.0.0.0:53",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		struct addr a = parse_ok(in[i]), b;
		const char *s = fmt(&a);

		assert_string_equal(s, in[i]);
		assert_int_equal(addr_parse(s, strlen(s), false, &b), 0);
		assert_memory_equal(&a, &b, sizeof(a));
	}
}

/* ---- sockaddr ---- */

static void
test_sockaddr(void **state)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(8080) };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(443) };
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	struct sockaddr_storage ss;
	struct addr a, before;
	socklen_t len;

	(void)state;
	inet_pton(AF_INET, "192.0.2.7", &sin.sin_addr);
	assert_int_equal(addr_from_sockaddr((struct sockaddr *)&sin, &a), 0);
	assert_string_equal(fmt(&a), "192.0.2.7:8080");
	assert_true(addr_is_v4(&a));

	len = addr_to_sockaddr(&a, &ss);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(ss.ss_family, AF_INET);
	assert_memory_equal(&((struct sockaddr_in *)&ss)->sin_addr, &sin.sin_addr, 4);
	assert_int_equal(((struct sockaddr_in *)&ss)->sin_port, htons(8080));

	inet_pton(AF_INET6, "2001:db8::42", &sin6.sin6_addr);
	assert_int_equal(addr_from_sockaddr((struct sockaddr *)&sin6, &a), 0);
	assert_string_equal(fmt(&a), "[2001:db8::42]:443");

	len = addr_to_sockaddr(&a, &ss);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_memory_equal(&((struct sockaddr_in6 *)&ss)->sin6_addr, &sin6.sin6_addr, 16);
	assert_int_equal(((struct sockaddr_in6 *)&ss)->sin6_port, htons(443));

	/* A v4-mapped AF_INET6 peer (dual-stack socket) is an IPv4 address. */
	inet_pton(AF_INET6, "::ffff:198.51.100.1", &sin6.sin6_addr);
	assert_int_equal(addr_from_sockaddr((struct sockaddr *)&sin6, &a), 0);
	assert_true(addr_is_v4(&a));
	assert_int_equal(addr_to_sockaddr(&a, &ss), sizeof(struct sockaddr_in));

	memset(&a, 0x5a, sizeof(a));
	before = a;
	assert_int_equal(addr_from_sockaddr((struct sockaddr *)&un, &a), -EAFNOSUPPORT);
	assert_memory_equal(&a, &before, sizeof(a));
}

static void
test_equal_ip(void **state)
{
	struct addr a = parse_ok("10.0.0.1:80"), b = parse_ok("10.0.0.1:81"),
		    c = parse_ok("10.0.0.2:80");
	struct addr d = parse_ok("::ffff:10.0.0.1"), e = parse_ok("::10.0.0.1");

	(void)state;
	assert_true(addr_equal_ip(&a, &b));
	assert_false(addr_equal_ip(&a, &c));
	assert_true(addr_equal_ip(&a, &d));
	/* The deprecated IPv4-compatible form is a different address. */
	assert_false(addr_equal_ip(&a, &e));
	assert_false(addr_is_v4(&e));
}

/* ---- private ranges ---- */

static void
test_private(void **state)
{
	static const char *const priv[] = {
		"0.0.0.0",
		"0.255.255.255",
		"10.0.0.0",
		"10.255.255.255",
		"100.64.0.0",
		"100.127.255.255",
		"127.0.0.1",
		"127.255.255.255",
		"169.254.0.1",
		"169.254.255.255",
		"172.16.0.0",
		"172.31.255.255",
		"192.0.0.8",
		"192.168.0.1",
		"192.168.255.255",
		"198.18.0.0",
		"198.19.255.255",
		"224.0.0.1",
		"239.255.255.255",
		"240.0.0.1",
		"255.255.255.255",
		"::ffff:10.1.2.3",
		"::ffff:127.0.0.1",
		"::",
		"::1",
		"fe80::1",
		"febf:ffff::1",
		"fec0::1",
		"fc00::1",
		"fdff:ffff::1",
		"2001:2::1",
		"2001:2:0:ffff::",
		"ff02::1",
		"ff0e::1",
		"100::1",
	};
	static const char *const pub[] = {
		"1.1.1.1",
		"8.8.8.8",
		"9.255.255.255",
		"11.0.0.0",
		"100.63.255.255",
		"100.128.0.0",
		"126.255.255.255",
		"128.0.0.0",
		"169.253.255.255",
		"169.255.0.0",
		"172.15.255.255",
		"172.32.0.0",
		"192.0.1.0",
		"192.0.3.0",
		"192.167.255.255",
		"192.169.0.0",
		"198.17.255.255",
		"198.20.0.0",
		"198.51.99.255",
		"198.51.101.0",
		"203.0.112.255",
		"203.0.114.0",
		"223.255.255.255",
		"::ffff:8.8.8.8",
		"::2",
		"2001:db7:ffff::",
		"2001:db9::",
		"2001:4860:4860::8888",
		"2001:2:1::",
		"2001:3::",
		"3fff:1000::",
		"fbff:ffff::1",
		"fe00::1",
		"2600::1",
		"100:0:0:1::",
		/* documentation ranges stand for public hosts in tests */
		"192.0.2.1",
		"198.51.100.77",
		"203.0.113.200",
		"2001:db8::1",
		"3fff::1",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(priv) / sizeof(priv[0]); i++) {
		struct addr a = parse_ok(priv[i]);

		if (!addr_is_private(&a))
			fail_msg("%s should be private", priv[i]);
	}
	for (size_t i = 0; i < sizeof(pub) / sizeof(pub[0]); i++) {
		struct addr a = parse_ok(pub[i]);

		if (addr_is_private(&a))
			fail_msg("%s should be public", pub[i]);
	}
}

/* ---- CIDR lists ---- */

static void
test_list_basic(void **state)
{
	struct addr_list *l = list_ok("10.0.0.0/8, 2001:db8::/32, 127.0.0.1");
	struct addr a;

	(void)state;
	assert_int_equal(addr_list_count(l), 3);
	a = parse_ok("10.1.2.3");
	assert_true(addr_list_match(l, &a));
	a = parse_ok("10.255.255.255:99");
	assert_true(addr_list_match(l, &a));
	a = parse_ok("11.0.0.0");
	assert_false(addr_list_match(l, &a));
	a = parse_ok("9.255.255.255");
	assert_false(addr_list_match(l, &a));
	a = parse_ok("2001:db8:1::1");
	assert_true(addr_list_match(l, &a));
	a = parse_ok("2001:db9::1");
	assert_false(addr_list_match(l, &a));
	a = parse_ok("127.0.0.1");
	assert_true(addr_list_match(l, &a));
	a = parse_ok("127.0.0.2");
	assert_false(addr_list_match(l, &a));
	a = parse_ok("::ffff:10.9.9.9");
	assert_true(addr_list_match(l, &a));
	addr_list_free(l);
}

static void
test_list_empty(void **state)
{
	struct addr_list *l;
	struct addr a = parse_ok("10.0.0.1");

	(void)state;
	static const char *const empty[] = { "", " ", ",", " , ,\t" };

	for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
		l = list_ok(empty[i]);
		assert_int_equal(addr_list_count(l), 0);
		assert_false(addr_list_match(l, &a));
		addr_list_free(l);
	}
	l = list_ok(NULL);
	assert_int_equal(addr_list_count(l), 0);
	addr_list_free(l);

	assert_false(addr_list_match(NULL, &a));
	assert_int_equal(addr_list_count(NULL), 0);
	addr_list_free(NULL);
}

static void
test_list_separators(void **state)
{
	static const char *const forms[] = {
		"10.0.0.0/8,192.168.0.0/16",
		"10.0.0.0/8 192.168.0.0/16",
		"10.0.0.0/8\t192.168.0.0/16",
		" ,10.0.0.0/8 ,, 192.168.0.0/16, ",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		struct addr_list *l = list_ok(forms[i]);
		struct addr a = parse_ok("192.168.3.4"), b = parse_ok("10.3.4.5"),
			    c = parse_ok("172.16.0.1");

		assert_int_equal(addr_list_count(l), 2);
		assert_true(addr_list_match(l, &a));
		assert_true(addr_list_match(l, &b));
		assert_false(addr_list_match(l, &c));
		addr_list_free(l);
	}
}

static void
test_list_prefix_bits(void **state)
{
	struct addr_list *l =
		list_ok("172.16.0.0/12 fe80::/10 192.0.2.128/25 198.51.100.7/32 2001:db8::1/128");
	static const char *const in[] = {
		"172.16.0.0",  "172.31.255.255", "fe80::",       "febf:ffff::1",
		"192.0.2.128", "192.0.2.255",    "198.51.100.7", "2001:db8::1",
	};
	static const char *const out[] = {
		"172.15.255.255", "172.32.0.0",   "fe7f::1",      "fec0::",     "192.0.2.127",
		"192.0.3.0",      "198.51.100.6", "198.51.100.8", "2001:db8::", "2001:db8::2",
	};

	(void)state;
	assert_int_equal(addr_list_count(l), 5);
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		struct addr a = parse_ok(in[i]);

		if (!addr_list_match(l, &a))
			fail_msg("%s should match", in[i]);
	}
	for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++) {
		struct addr a = parse_ok(out[i]);

		if (addr_list_match(l, &a))
			fail_msg("%s should not match", out[i]);
	}
	addr_list_free(l);
}

static void
test_list_zero_prefix(void **state)
{
	struct addr_list *l4 = list_ok("0.0.0.0/0"), *l6 = list_ok("::/0");
	struct addr v4 = parse_ok("203.0.113.9"), v6 = parse_ok("2001:db8::9");

	(void)state;
	/* 0.0.0.0/0 is every IPv4 address and no IPv6 one. */
	assert_true(addr_list_match(l4, &v4));
	assert_false(addr_list_match(l4, &v6));
	/* ::/0 is every address, mapped IPv4 included. */
	assert_true(addr_list_match(l6, &v4));
	assert_true(addr_list_match(l6, &v6));
	addr_list_free(l4);
	addr_list_free(l6);
}

static void
test_list_errors(void **state)
{
	static const struct {
		const char *s;
		size_t pos;
	} bad[] = {
		{ "bogus", 0 },
		{ "10.0.0.0/8, bogus", 12 },
		{ "10.0.0.0/8,  bogus", 13 },
		{ "10.0.0.0/8 2001:db8::/32 ,\t1.2.3", 27 },
		{ "10.0.0.0/33", 0 },
		{ "::/129", 0 },
		{ "10.0.0.0/", 0 },
		{ "10.0.0.0/8/8", 0 },
		{ "10.0.0.0/08x", 0 },
		{ "10.0.0.0/-1", 0 },
		{ "10.0.0.0/1000", 0 },
		{ "10.0.0.0/0008", 0 },
		{ "1.2.3.4/ 8", 0 },
		{ "/8", 0 },
		{ "10.0.0.1/8", 0 },
		{ "127.0.0.0/7", 0 },
		{ "2001:db8::1/32", 0 },
		{ "192.168.1.0/16", 0 },
		{ "[::1]", 0 },
		{ "1.2.3.4:80", 0 },
		{ "10.0.0.0/8;192.168.0.0/16", 0 },
		{ "10.0.0.0/8, 192.168.0.0/16\n", 12 },
		{ "fe80::1%eth0", 0 },
		{ "1.2.3.4, ::ffff:1.2.3.4/97", 9 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int err = 0;
		size_t pos = 9999;
		struct addr_list *l = addr_list_parse(bad[i].s, &err, &pos);

		if (l)
			fail_msg("accepted \"%s\"", bad[i].s);
		assert_int_equal(err, -EINVAL);
		if (pos != bad[i].pos)
			fail_msg("\"%s\": bad_pos %zu, want %zu", bad[i].s, pos, bad[i].pos);
	}
	/* The out-parameters are optional. */
	assert_null(addr_list_parse("bogus", NULL, NULL));
	int err = 0;

	assert_null(addr_list_parse("bogus", &err, NULL));
	assert_int_equal(err, -EINVAL);
}

static void
test_list_mapped_prefixes(void **state)
{
	/* IPv6 notation for a mapped range takes IPv6 prefix lengths. */
	struct addr_list *l = list_ok("::ffff:10.0.0.0/104");
	struct addr a = parse_ok("10.200.0.1"), b = parse_ok("11.0.0.1");

	(void)state;
	assert_true(addr_list_match(l, &a));
	assert_false(addr_list_match(l, &b));
	addr_list_free(l);
}

static void
test_list_growth(void **state)
{
	char s[100 * 20] = "";
	struct addr_list *l;

	(void)state;
	for (int i = 0; i < 100; i++) {
		char e[24];

		snprintf(e, sizeof(e), "10.%d.%d.0/24, ", i, i * 2);
		strcat(s, e);
	}
	l = list_ok(s);
	assert_int_equal(addr_list_count(l), 100);
	for (int i = 0; i < 100; i++) {
		char ip[24];
		struct addr a;

		snprintf(ip, sizeof(ip), "10.%d.%d.77", i, i * 2);
		a = parse_ok(ip);
		assert_true(addr_list_match(l, &a));
		snprintf(ip, sizeof(ip), "10.%d.%d.77", i, i * 2 + 1);
		a = parse_ok(ip);
		assert_false(addr_list_match(l, &a));
	}
	addr_list_free(l);
}

/* ---- X-Forwarded-For ---- */

struct xff_case {
	const char *peer;
	const char *xff;
	const char *want;
};

static void
run_xff(const struct addr_list *trusted, const struct xff_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct addr peer = parse_ok(c[i].peer), got;
		const char *s;

		memset(&got, 0x5a, sizeof(got));
		addr_client(&peer, c[i].xff, trusted, &got);
		s = fmt(&got);
		if (strcmp(s, c[i].want) != 0)
			fail_msg("peer %s xff \"%s\": got %s, want %s", c[i].peer,
				 c[i].xff ? c[i].xff : "(null)", s, c[i].want);
	}
}

static void
test_xff(void **state)
{
	struct addr_list *t = list_ok("10.0.0.0/8, 2001:db8::/32");
	static const struct xff_case cases[] = {
		/* Untrusted peer: the header is ignored whatever it says. */
		{ "203.0.113.5:4000", "1.2.3.4", "203.0.113.5:4000" },
		{ "203.0.113.5:4000", "10.0.0.9", "203.0.113.5:4000" },
		{ "[2001:db9::5]:4000", "1.2.3.4", "[2001:db9::5]:4000" },
		/* Trusted peer, no or empty header: the peer. */
		{ "10.0.0.1:4000", NULL, "10.0.0.1:4000" },
		{ "10.0.0.1:4000", "", "10.0.0.1:4000" },
		{ "10.0.0.1:4000", "   ", "10.0.0.1:4000" },
		{ "10.0.0.1:4000", ",", "10.0.0.1:4000" },
		/* One hop. */
		{ "10.0.0.1:4000", "1.2.3.4", "1.2.3.4" },
		/* The rightmost untrusted entry wins; anything left of it is the client's word. */
		{ "10.0.0.1:4000", "5.6.7.8, 1.2.3.4", "1.2.3.4" },
		{ "10.0.0.1:4000", "10.0.0.99, 1.2.3.4", "1.2.3.4" },
		{ "10.0.0.1:4000", "garbage, 1.2.3.4", "1.2.3.4" },
		/* Trusted hops are skipped from the right. */
		{ "10.0.0.1:4000", "5.6.7.8, 1.2.3.4, 10.0.0.2", "1.2.3.4" },
		{ "10.0.0.1:4000", "9.9.9.9, 1.2.3.4, 10.0.0.5, 10.0.0.4, 10.0.0.3, 10.0.0.2",
		  "1.2.3.4" },
		/* Every hop trusted: the last good (leftmost) one. */
		{ "10.0.0.1:4000", "10.0.0.3, 10.0.0.2", "10.0.0.3" },
		/* Garbage stops the walk at the last good hop. */
		{ "10.0.0.1:4000", "1.2.3.4, garbage, 10.0.0.2", "10.0.0.2" },
		{ "10.0.0.1:4000", "1.2.3.4, garbage", "10.0.0.1:4000" },
		{ "10.0.0.1:4000", "1.2.3.4, unknown", "10.0.0.1:4000" },
		{ "10.0.0.1:4000", "1.2.3.4,", "10.0.0.1:4000" },
		{ "10.0.0.1:4000", "1.2.3.4, , 10.0.0.2", "10.0.0.2" },
		{ "10.0.0.1:4000", "1.2.3.4, 10.0.0.2 10.0.0.3", "10.0.0.1:4000" },
		{ "10.0.0.1:4000", "1.2.3.4, 300.0.0.1", "10.0.0.1:4000" },
		{ "10.0.0.1:4000", ", 1.2.3.4", "1.2.3.4" },
		/* Spaces and tabs around entries are optional whitespace. */
		{ "10.0.0.1:4000", " \t1.2.3.4\t , \t5.6.7.8 ", "5.6.7.8" },
		{ "10.0.0.1:4000", "1.2.3.4,5.6.7.8", "5.6.7.8" },
		/* IPv6 peers and entries, with and without ports. */
		{ "[2001:db8::1]:4000", "2001:db9::1", "[2001:db9::1]" },
		{ "[2001:db8::1]:4000", "2001:db9::1, 2001:db8::7", "[2001:db9::1]" },
		{ "[2001:db8::1]:4000", "[2001:db9::1]:4711", "[2001:db9::1]:4711" },
		{ "10.0.0.1:4000", "1.2.3.4:5678", "1.2.3.4:5678" },
		{ "10.0.0.1:4000", "2001:db9::1, 10.0.0.2", "[2001:db9::1]" },
		{ "[2001:db8::1]:4000", "1.2.3.4, [2001:db8::2]:80", "1.2.3.4" },
		/* A dual-stack socket's mapped peer is trusted like its IPv4 form. */
		{ "[::ffff:10.0.0.1]:4000", "1.2.3.4", "1.2.3.4" },
	};

	(void)state;
	run_xff(t, cases, sizeof(cases) / sizeof(cases[0]));
	addr_list_free(t);
}

static void
test_xff_no_trust(void **state)
{
	static const struct xff_case cases[] = {
		{ "10.0.0.1:4000", "1.2.3.4", "10.0.0.1:4000" },
		{ "127.0.0.1:4000", "1.2.3.4", "127.0.0.1:4000" },
	};
	struct addr_list *empty = list_ok("");

	(void)state;
	run_xff(NULL, cases, sizeof(cases) / sizeof(cases[0]));
	run_xff(empty, cases, sizeof(cases) / sizeof(cases[0]));
	addr_list_free(empty);
}

static void
test_xff_many_hops(void **state)
{
	struct addr_list *t = list_ok("10.0.0.0/8");
	size_t cap = 2000 * 16 + 64, n = 0;
	char *xff = malloc(cap);
	struct addr peer = parse_ok("10.0.0.1:1"), got;

	(void)state;
	assert_non_null(xff);
	n += (size_t)snprintf(xff + n, cap - n, "6.6.6.6, 198.51.100.23");
	for (int i = 0; i < 2000; i++)
		n += (size_t)snprintf(xff + n, cap - n, ", 10.%d.%d.1", i / 250, i % 250);
	addr_client(&peer, xff, t, &got);
	assert_string_equal(fmt(&got), "198.51.100.23");
	free(xff);
	addr_list_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_v4),
		cmocka_unit_test(test_parse_v6),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_parse_need_port),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_nobufs),
		cmocka_unit_test(test_format_parse_round_trip),
		cmocka_unit_test(test_sockaddr),
		cmocka_unit_test(test_equal_ip),
		cmocka_unit_test(test_private),
		cmocka_unit_test(test_list_basic),
		cmocka_unit_test(test_list_empty),
		cmocka_unit_test(test_list_separators),
		cmocka_unit_test(test_list_prefix_bits),
		cmocka_unit_test(test_list_zero_prefix),
		cmocka_unit_test(test_list_errors),
		cmocka_unit_test(test_list_mapped_prefixes),
		cmocka_unit_test(test_list_growth),
		cmocka_unit_test(test_xff),
		cmocka_unit_test(test_xff_no_trust),
		cmocka_unit_test(test_xff_many_hops),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
