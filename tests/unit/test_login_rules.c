// SPDX-License-Identifier: MIT
/* Unit tests for login-server rules: scenario choice (seed 000 §4), relay judgment (Fig. 5), K_ra,
 * parsers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../login-server/login.h"

static struct login_peer_view
view(enum login_nat nat, const char *ip, bool priv, bool key)
{
	struct login_peer_view v;
	memset(&v, 0, sizeof(v));
	v.nat = nat;
	assert_int_equal(addr_parse(ip, strlen(ip), false, &v.public_ip), 0);
	v.has_private = priv;
	v.has_key = key;
	return v;
}

static void
test_scenarios(void **state)
{
	(void)state;
	struct login_peer_view o1 = view(LOGIN_NAT_OUTER, "198.51.100.1", false, true);
	struct login_peer_view o2 = view(LOGIN_NAT_OUTER, "198.51.100.2", true, true);
	struct login_peer_view i1 = view(LOGIN_NAT_INNER, "203.0.113.1", true, true);
	struct login_peer_view i1b = view(LOGIN_NAT_INNER, "203.0.113.1", true, true);
	struct login_peer_view i2 = view(LOGIN_NAT_INNER, "203.0.113.2", true, true);

	/* Scenario 1: outer-outer, either direction. */
	assert_int_equal(login_decide(&o1, &o2), LOGIN_MODE_DIRECT);
	assert_int_equal(login_decide(&o2, &o1), LOGIN_MODE_DIRECT);
	/* Scenario 2: outer -> inner reverse, inner -> outer direct. */
	assert_int_equal(login_decide(&o1, &i1), LOGIN_MODE_REVERSE);
	assert_int_equal(login_decide(&i1, &o1), LOGIN_MODE_DIRECT);
	/* Scenario 3: same NAT -> lan, different NATs -> relay. */
	assert_int_equal(login_decide(&i1, &i1b), LOGIN_MODE_LAN);
	assert_int_equal(login_decide(&i1b, &i1), LOGIN_MODE_LAN);
	assert_int_equal(login_decide(&i1, &i2), LOGIN_MODE_RELAY);
	assert_int_equal(login_decide(&i2, &i1), LOGIN_MODE_RELAY);
}

static void
test_same_network(void **state)
{
	(void)state;
	struct login_peer_view a = view(LOGIN_NAT_INNER, "203.0.113.1", true, true);
	struct login_peer_view b = view(LOGIN_NAT_INNER, "203.0.113.1", true, true);
	assert_true(login_same_network(&a, &b));
	/* Without a private address there is nothing to dial in the LAN. */
	b.has_private = false;
	assert_false(login_same_network(&a, &b));
	assert_int_equal(login_decide(&a, &b), LOGIN_MODE_RELAY);
	b.has_private = true;
	/* Without keys the sealed connect id check cannot run. */
	a.has_key = false;
	assert_false(login_same_network(&a, &b));
	assert_int_equal(login_decide(&a, &b), LOGIN_MODE_RELAY);
	a.has_key = true;
	/* An outer peer never gets lan, even with the same address. */
	a.nat = LOGIN_NAT_OUTER;
	assert_false(login_same_network(&a, &b));
	a.nat = LOGIN_NAT_INNER;
	/* IPv6 and IPv4-mapped compare by address. */
	struct login_peer_view c = view(LOGIN_NAT_INNER, "2001:db8::1", true, true);
	struct login_peer_view d = view(LOGIN_NAT_INNER, "2001:db8::1", true, true);
	assert_true(login_same_network(&c, &d));
	assert_false(login_same_network(&a, &c));
	struct login_peer_view e = view(LOGIN_NAT_INNER, "203.0.113.1:4000", true, true);
	assert_true(login_same_network(&a, &e)); /* ports do not matter */
}

static void
test_kra(void **state)
{
	(void)state;
	assert_true(login_kra(0, 0) == 0.0);
	assert_true(login_kra(1, 4) == 0.25);
	assert_true(login_kra(4, 4) == 1.0);
	assert_true(login_kra(5, 4) == 1.0);
	/* Seed 000 §5.1, Fig. 9: n inner peers in k equal subnets, every pair
	 * equally likely: K_ra = share of pairs in different subnets. With 1000
	 * peers in 10 subnets of 100: 1 - 10*C(100,2)/C(1000,2). */
	unsigned long long total = 1000ULL * 999 / 2, same = 10ULL * 100 * 99 / 2;
	double k = login_kra(total - same, total);
	assert_true(k > 0.9009 && k < 0.9010);
}

static void
test_mode_names(void **state)
{
	(void)state;
	for (int m = 0; m < LOGIN_MODE_N; m++)
		assert_int_equal(login_mode_parse(login_mode_name((enum login_mode)m)), m);
	assert_int_equal(login_mode_parse("tunnel"), -EINVAL);
	assert_string_equal(login_mode_name(LOGIN_MODE_N), "unknown");
}

static void
test_relay_pick(void **state)
{
	(void)state;
	struct login_relay_cand c[] = {
		{ "dead", NULL, 0, 10 },          /* hash gone */
		{ "full", "http://r1", 10, 10 },  /* no free slot */
		{ "busy", "http://r2", 8, 10 },   /* 0.8 */
		{ "idle", "http://r3", 30, 100 }, /* 0.3 */
		{ "nocap", "http://r4", 0, 0 },   /* unusable */
		{ "nourl", "", 0, 10 },
	};
	assert_int_equal(login_relay_pick(c, 6), 3);
	assert_int_equal(login_relay_pick(c, 3), 2);
	assert_int_equal(login_relay_pick(c, 2), -1);
	assert_int_equal(login_relay_pick(c, 0), -1);
}

static void
test_relay_payload(void **state)
{
	(void)state;
	char buf[256];
	const char *cid = "0123456789abcdef0123456789abcdef";
	int n = login_relay_payload(cid, 'a', "alice", "bob", buf, sizeof(buf));
	assert_true(n > 0);
	assert_string_equal(buf, "{\"cid\":\"0123456789abcdef0123456789abcdef\",\"side\":\"a\","
				 "\"user\":\"alice\",\"peer\":\"bob\"}");
	assert_int_equal(login_relay_payload(cid, 'c', "alice", "bob", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(login_relay_payload("xyz", 'a', "alice", "bob", buf, sizeof(buf)),
			 -EINVAL);
	assert_int_equal(login_relay_payload(cid, 'b', "al\"ice", "bob", buf, sizeof(buf)),
			 -EINVAL);
	assert_int_equal(login_relay_payload(cid, 'b', "alice", "bob", buf, 20), -ENOBUFS);
}

static void
test_jitter(void **state)
{
	(void)state;
	for (uint32_t r = 0; r < 5000; r += 7) {
		int v = login_jitter(20000, 10, r * 2654435761u);
		assert_true(v >= 18000 && v <= 20000);
	}
	assert_int_equal(login_jitter(20000, 0, 12345), 20000);
	assert_int_equal(login_jitter(0, 10, 1), 1);
	assert_true(login_jitter(1000, 90, 999) >= 500); /* capped at 50 % */
}

static void
test_user_names(void **state)
{
	(void)state;
	assert_true(login_user_ok("alice", 5));
	assert_true(login_user_ok("a.b_c-9", 7));
	assert_false(login_user_ok("al", 2));
	assert_false(login_user_ok("Alice", 5));
	assert_false(login_user_ok("-alice", 6));
	assert_false(login_user_ok("al{x}", 5));
	assert_false(login_user_ok("abcdefghijklmnopqrstuvwxyz0123456", 33));
}

static void
test_parse_login(void **state)
{
	(void)state;
	struct login_req r;
	const char *code = NULL;
	char msg[200];
	const char *ok = "{\"user\":\"alice\",\"password\":\"pw\",\"listen_port\":4000,"
			 "\"private_addr\":\"192.168.1.2\",\"public_key\":"
			 "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}";
	assert_int_equal(login_parse_login(ok, strlen(ok), true, &r, &code, msg, sizeof(msg)), 0);
	assert_string_equal(r.user, "alice");
	assert_int_equal(r.listen_port, 4000);
	assert_true(r.has_private && r.private_addr.port == 4000);
	assert_true(r.has_pk && r.pk[31] == 31);
	/* Register: the peer fields are unknown there; passwords >= 8 bytes. */
	assert_int_equal(login_parse_login(ok, strlen(ok), false, &r, &code, msg, sizeof(msg)),
			 -EINVAL);
	assert_string_equal(code, "unknown_field");
	const char *shortpw = "{\"user\":\"alice\",\"password\":\"pw\"}";
	assert_int_equal(
		login_parse_login(shortpw, strlen(shortpw), false, &r, &code, msg, sizeof(msg)),
		-EINVAL);
	assert_string_equal(code, "bad_password");
	static const struct {
		const char *body, *code;
	} bad[] = {
		{ "{\"user\":\"alice\",\"password\":\"pw\",\"listen_port\":65536}", "bad_port" },
		{ "{\"user\":\"alice\",\"password\":\"pw\",\"listen_port\":1.5}", "bad_port" },
		{ "{\"user\":\"alice\",\"password\":\"pw\",\"private_addr\":\"1.2.3.4\"}",
		  "bad_address" },
		{ "{\"user\":\"alice\",\"password\":\"pw\",\"private_addr\":7}", "bad_address" },
		{ "{\"user\":\"alice\",\"password\":\"pw\",\"public_key\":\"AAAA\"}",
		  "bad_public_key" },
		{ "{\"user\":\"al\",\"password\":\"pw\"}", "bad_user" },
		{ "{\"user\":\"alice\"}", "bad_password" },
		{ "[1]", "expected_object" },
		{ "{", "bad_json" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		code = NULL;
		assert_int_equal(login_parse_login(bad[i].body, strlen(bad[i].body), true, &r,
						   &code, msg, sizeof(msg)),
				 -EINVAL);
		assert_string_equal(code, bad[i].code);
	}
}

static void
test_tokens(void **state)
{
	(void)state;
	unsigned char secret[LOGIN_SECRET_LEN];
	char tok[LOGIN_TOKEN_MAX], th[LOGIN_TH_HEX], th2[LOGIN_TH_HEX], hdr[200], user[40];
	for (int i = 0; i < LOGIN_SECRET_LEN; i++)
		secret[i] = (unsigned char)i;
	assert_int_equal(login_token_make("alice", secret, tok, sizeof(tok), th), 0);
	snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
	assert_int_equal(login_parse_token(hdr, user, sizeof(user), th2), 0);
	assert_string_equal(user, "alice");
	assert_string_equal(th, th2);
	assert_int_equal(strlen(th), 64);
	assert_int_equal(login_parse_token(NULL, user, sizeof(user), th2), -EINVAL);
	assert_int_equal(login_parse_token("Basic xyz", user, sizeof(user), th2), -EINVAL);
	assert_int_equal(login_parse_token("Bearer alice", user, sizeof(user), th2), -EINVAL);
	snprintf(hdr, sizeof(hdr), "Bearer %sA", tok);
	assert_int_equal(login_parse_token(hdr, user, sizeof(user), th2), -EINVAL);
	assert_true(login_cid_ok("0123456789abcdef0123456789abcdef"));
	assert_false(login_cid_ok("0123456789ABCDEF0123456789abcdef"));
	assert_false(login_cid_ok("0123"));
}

int
main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scenarios),   cmocka_unit_test(test_same_network),
		cmocka_unit_test(test_kra),         cmocka_unit_test(test_mode_names),
		cmocka_unit_test(test_relay_pick),  cmocka_unit_test(test_relay_payload),
		cmocka_unit_test(test_jitter),      cmocka_unit_test(test_user_names),
		cmocka_unit_test(test_parse_login), cmocka_unit_test(test_tokens),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
