// SPDX-License-Identifier: MIT
/* Unit tests for route-server rules: the ASN->nettype CSV and choosing domains and codes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../route-server/route.h"

/* ---- nettype table ---- */

static int
parse(const char *text, struct route_nettype *t, char *err, size_t errsize)
{
	return route_nettype_parse(text, strlen(text), t, err, errsize);
}

static void
test_nettype_parse_good(void **state)
{
	static const char text[] = "# ASN,CLASS\n"
				   "\n"
				   "4134,telecom\n"
				   "AS4837, unicom   # trailing comment\n"
				   "as9808 ,4\r\n"
				   "  \t56040 , Mobile \r\n"
				   "4538,6\n"
				   "   # indented comment\n"
				   "4294967295,cernet\n"
				   "4134,1\n" /* the same pair twice is harmless */
				   "9394,TIETONG";
	struct route_nettype t = { 0 };
	char err[128] = "";

	(void)state;
	assert_int_equal(parse(text, &t, err, sizeof(err)), 0);
	assert_non_null(t.v);
	assert_true(t.n == 7 || t.n == 8);
	for (size_t i = 1; i < t.n; i++)
		assert_true(t.v[i - 1].asn <= t.v[i].asn);
	assert_int_equal(route_nettype_class(&t, 4134), 1);
	assert_int_equal(route_nettype_class(&t, 4837), 3);
	assert_int_equal(route_nettype_class(&t, 9808), 4);
	assert_int_equal(route_nettype_class(&t, 56040), 4);
	assert_int_equal(route_nettype_class(&t, 4538), 6);
	assert_int_equal(route_nettype_class(&t, 4294967295u), 6);
	assert_int_equal(route_nettype_class(&t, 9394), 5);
	free(t.v);

	/* Nothing but comments: an empty table. */
	memset(&t, 0xaa, sizeof(t));
	assert_int_equal(parse("# nothing\n\n   \n", &t, err, sizeof(err)), 0);
	assert_int_equal(t.n, 0);
	assert_int_equal(route_nettype_class(&t, 4134), ROUTE_NETTYPE_OTHER);
	free(t.v);
	memset(&t, 0xaa, sizeof(t));
	assert_int_equal(route_nettype_parse("", 0, &t, err, sizeof(err)), 0);
	assert_int_equal(t.n, 0);
	free(t.v);

	/* Length-delimited: what follows len is never read. */
	assert_int_equal(route_nettype_parse("7,1\nbroken", 4, &t, err, sizeof(err)), 0);
	assert_int_equal(t.n, 1);
	assert_int_equal(route_nettype_class(&t, 7), 1);
	free(t.v);
}

/* Parses text that must fail with err starting with want. */
static void
parse_fails(const char *text, const char *want)
{
	struct route_nettype t = { .v = NULL, .n = 12345 };
	char err[256] = "";

	if (parse(text, &t, err, sizeof(err)) != -EINVAL)
		fail_msg("\"%s\" was accepted", text);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("\"%s\": error \"%s\", want \"%s...\"", text, err, want);
	/* ret is written only on success. */
	assert_null(t.v);
	assert_int_equal(t.n, 12345);
}

static void
test_nettype_parse_bad(void **state)
{
	(void)state;
	parse_fails("4134,1\n# ok\nnocomma\n", "line 3: expected ASN,CLASS");
	parse_fails("\n\n\n\n1,\n", "line 5: expected ASN,CLASS");
	parse_fails(",1\n", "line 1: expected ASN,CLASS");
	parse_fails("AS,1\n", "line 1: ASN must be a number");
	parse_fails("1,1\nASN12,1\n", "line 2: ASN must be a number");
	parse_fails("12a,1\n", "line 1: ASN must be a number");
	parse_fails("-5,1\n", "line 1: ASN must be a number");
	parse_fails("1 2,1\n", "line 1: ASN must be a number");
	parse_fails("0,1\n", "line 1: ASN out of range");
	parse_fails("1,1\n2,2\n4294967296,1\n", "line 3: ASN out of range");
	parse_fails("99999999999,1\n", "line 1: expected ASN,CLASS");
	parse_fails("1,1,1\n", "line 1: class");
	parse_fails("1,telecom # comment, with comma\n2,nope\n", "line 2: class \"nope\"");
	/* Comment markers inside the ASN field end the line early. */
	parse_fails("12#3,1\n", "line 1: expected ASN,CLASS");
	/* A line without newline at the end still counts. */
	parse_fails("1,1\n\n3,bogus", "line 3: class \"bogus\" is not 1..14 or a carrier name");
}

static void
test_nettype_class_range(void **state)
{
	(void)state;
	/* 0 is "unknown" and 15 "other": both are computed, never listed. */
	parse_fails("1,0\n", "line 1: class \"0\"");
	parse_fails("1,15\n", "line 1: class \"15\"");
	parse_fails("1,16\n", "line 1: class \"16\"");
	parse_fails("1,-1\n", "line 1: class \"-1\"");
	parse_fails("1,unknown\n", "line 1: class \"unknown\"");
	parse_fails("1,other\n", "line 1: class \"other\"");
	parse_fails("1,01234567890123456789012345678901234\n", "line 1: expected ASN,CLASS");

	struct route_nettype t;
	char err[64];
	assert_int_equal(parse("1,14\n2,satcom\n", &t, err, sizeof(err)), 0);
	assert_int_equal(route_nettype_class(&t, 1), 14);
	assert_int_equal(route_nettype_class(&t, 2), 7);
	free(t.v);
}

/* The header promises "line N: ..." for every error, so an operator can find the
 * second, conflicting entry. */
static void
test_nettype_duplicate_conflict(void **state)
{
	(void)state;
	parse_fails("4134,telecom\n# c\n4837,unicom\nAS4134,mobile\n", "line 4: ");

	struct route_nettype t = { .v = NULL, .n = 12345 };
	char err[256] = "";
	assert_int_equal(parse("5,1\n6,2\n5,3\n", &t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "5"));
	assert_null(t.v);
}

static void
test_nettype_class(void **state)
{
	struct route_nettype t, empty = { NULL, 0 };
	char err[64];

	(void)state;
	assert_int_equal(parse("100,1\n200,2\n300,3\n400,4\n500,5\n", &t, err, sizeof(err)), 0);
	assert_int_equal(route_nettype_class(&t, 100), 1);
	assert_int_equal(route_nettype_class(&t, 300), 3);
	assert_int_equal(route_nettype_class(&t, 500), 5);
	assert_int_equal(route_nettype_class(&t, 99), ROUTE_NETTYPE_OTHER);
	assert_int_equal(route_nettype_class(&t, 250), ROUTE_NETTYPE_OTHER);
	assert_int_equal(route_nettype_class(&t, 501), ROUTE_NETTYPE_OTHER);
	assert_int_equal(route_nettype_class(&t, UINT32_MAX), ROUTE_NETTYPE_OTHER);
	assert_int_equal(route_nettype_class(&t, 0), ROUTE_NETTYPE_UNKNOWN);
	assert_int_equal(route_nettype_class(&empty, 0), ROUTE_NETTYPE_UNKNOWN);
	assert_int_equal(route_nettype_class(&empty, 1), ROUTE_NETTYPE_OTHER);
	free(t.v);

	/* The built-in table: sorted, and the paper's carriers. */
	assert_int_equal(route_nettype_builtin(&t), 0);
	assert_true(t.n > 7);
	for (size_t i = 1; i < t.n; i++)
		assert_true(t.v[i - 1].asn < t.v[i].asn);
	assert_int_equal(route_nettype_class(&t, 4134), 1);
	assert_int_equal(route_nettype_class(&t, 4837), 3);
	assert_int_equal(route_nettype_class(&t, 9808), 4);
	assert_int_equal(route_nettype_class(&t, 15169), ROUTE_NETTYPE_OTHER);
	free(t.v);
}

static void
test_nettype_from_name(void **state)
{
	(void)state;
	assert_int_equal(route_nettype_from_name("unknown"), 0);
	assert_int_equal(route_nettype_from_name("telecom"), 1);
	assert_int_equal(route_nettype_from_name("netcom"), 2);
	assert_int_equal(route_nettype_from_name("unicom"), 3);
	assert_int_equal(route_nettype_from_name("mobile"), 4);
	assert_int_equal(route_nettype_from_name("tietong"), 5);
	assert_int_equal(route_nettype_from_name("cernet"), 6);
	assert_int_equal(route_nettype_from_name("satcom"), 7);
	assert_int_equal(route_nettype_from_name("other"), 15);
	assert_int_equal(route_nettype_from_name("TeLeCoM"), 1);
	assert_int_equal(route_nettype_from_name("0"), 0);
	assert_int_equal(route_nettype_from_name("9"), 9);
	assert_int_equal(route_nettype_from_name("15"), 15);
	assert_int_equal(route_nettype_from_name("16"), -EINVAL);
	assert_int_equal(route_nettype_from_name("-1"), -EINVAL);
	assert_int_equal(route_nettype_from_name("1x"), -EINVAL);
	assert_int_equal(route_nettype_from_name("telecom2"), -EINVAL);
	assert_int_equal(route_nettype_from_name("99999999999999999999"), -EINVAL);
	assert_int_equal(route_nettype_from_name(""), -EINVAL);
	assert_int_equal(route_nettype_from_name(NULL), -EINVAL);

	/* Names round-trip. */
	for (unsigned c = 1; c <= 7; c++)
		assert_int_equal(route_nettype_from_name(route_nettype_name(c)), (int)c);
	assert_string_equal(route_nettype_name(0), "unknown");
	assert_string_equal(route_nettype_name(15), "other");
}

/* route.h: route_nettype_name gives "reserved" for classes without a carrier name. */
static void
test_nettype_name_unnamed(void **state)
{
	(void)state;
	assert_string_equal(route_nettype_name(8), "reserved");
	assert_string_equal(route_nettype_name(14), "reserved");
}

/* ---- domain choice ---- */

static char d_north[] = "cn-north.example", d_south[] = "cn-south.example",
	    d_default[] = "default.example", d_us[] = "us.example";
static char r_guangdong[] = "Guangdong", r_beijing[] = "beijing", c_shenzhen[] = "Shenzhen";

static struct route_domain test_domains[] = {
	{ .name = d_north },
	{ .name = d_south },
	{ .name = d_default },
	{ .name = d_us },
};

/* Match order as loaded (priority, id). */
static struct route_rule test_rules[] = {
	{ .id = 1,
	  .priority = 10,
	  .country = "CN",
	  .nettype = 1,
	  .region = r_guangdong,
	  .domain = d_south,
	  .domain_idx = 1 },
	{ .id = 2,
	  .priority = 20,
	  .country = "CN",
	  .nettype = -1,
	  .region = r_beijing,
	  .domain = d_north,
	  .domain_idx = 0 },
	{ .id = 3,
	  .priority = 30,
	  .country = "CN",
	  .nettype = -1,
	  .city = c_shenzhen,
	  .domain = d_south,
	  .domain_idx = 1 },
	{ .id = 4,
	  .priority = 40,
	  .country = "US",
	  .nettype = -1,
	  .domain = d_us,
	  .domain_idx = 3 },
	{ .id = 5,
	  .priority = 50,
	  .country = "",
	  .nettype = 4,
	  .domain = d_north,
	  .domain_idx = 0 },
	{ .id = 6,
	  .priority = 60,
	  .country = "US",
	  .nettype = -1,
	  .domain = d_north,
	  .domain_idx = 0 },
};

static struct route_snap test_snap = {
	.generation = 7,
	.domains = test_domains,
	.ndomains = sizeof(test_domains) / sizeof(test_domains[0]),
	.rules = test_rules,
	.nrules = sizeof(test_rules) / sizeof(test_rules[0]),
};

static struct route_geo
geo(const char *country, const char *region, const char *city, unsigned nettype)
{
	struct route_geo g;

	memset(&g, 0, sizeof(g));
	g.found = true;
	snprintf(g.country, sizeof(g.country), "%s", country);
	snprintf(g.region, sizeof(g.region), "%s", region);
	snprintf(g.city, sizeof(g.city), "%s", city);
	g.nettype = nettype;
	return g;
}

/* The chosen domain's name, or "(null)". */
static const char *
choose(const struct route_geo *g, const char *def)
{
	const struct route_domain *d = route_snap_choose(&test_snap, g, def);

	if (!d)
		return "(null)";
	/* Always a pointer into the snapshot, never a copy. */
	assert_true(d >= test_snap.domains && d < test_snap.domains + test_snap.ndomains);
	return d->name;
}

static void
test_snap_domain(void **state)
{
	(void)state;
	for (size_t i = 0; i < test_snap.ndomains; i++)
		assert_ptr_equal(route_snap_domain(&test_snap, test_domains[i].name),
				 &test_domains[i]);
	assert_null(route_snap_domain(&test_snap, "nope.example"));
	assert_null(route_snap_domain(&test_snap, "US.EXAMPLE"));
	assert_null(route_snap_domain(&test_snap, ""));
	assert_null(route_snap_domain(&test_snap, NULL));
	assert_null(route_snap_domain(NULL, "us.example"));
}

static void
test_choose_rules(void **state)
{
	struct route_geo g;

	(void)state;
	/* Rule 1: country, nettype and region. */
	g = geo("CN", "Guangdong", "Guangzhou", 1);
	assert_string_equal(choose(&g, d_default), "cn-south.example");
	/* Same place, other carrier: no rule fits. */
	g = geo("CN", "Guangdong", "Guangzhou", 3);
	assert_string_equal(choose(&g, d_default), "default.example");
	/* Rule 2, region compared without case. */
	g = geo("CN", "BEIJING", "Beijing", 3);
	assert_string_equal(choose(&g, d_default), "cn-north.example");
	/* Rule 3, city compared without case, any region. */
	g = geo("CN", "Guangdong", "SHENZHEN", 3);
	assert_string_equal(choose(&g, d_default), "cn-south.example");
	g = geo("CN", "", "shenzhen", 2);
	assert_string_equal(choose(&g, d_default), "cn-south.example");
	/* Both rule 1 and rule 3 match: the first in order wins. */
	g = geo("CN", "guangdong", "Shenzhen", 1);
	assert_string_equal(choose(&g, d_default), "cn-south.example");
	/* Rules 4 and 6 both match a US address: rule 4 is earlier. */
	g = geo("US", "California", "San Jose", 15);
	assert_string_equal(choose(&g, d_default), "us.example");
	/* Rule 5: any country, nettype mobile. */
	g = geo("DE", "Berlin", "Berlin", 4);
	assert_string_equal(choose(&g, d_default), "cn-north.example");
	/* But a CN mobile user in Beijing hits rule 2 first (same answer), and in
	 * Guangdong rule 5 (rule 1 wants telecom). */
	g = geo("CN", "Guangdong", "Guangzhou", 4);
	assert_string_equal(choose(&g, d_default), "cn-north.example");
	/* Nothing matches. */
	g = geo("DE", "Berlin", "Berlin", 15);
	assert_string_equal(choose(&g, d_default), "default.example");
	g = geo("", "", "", 0);
	assert_string_equal(choose(&g, d_default), "default.example");
}

static void
test_choose_default(void **state)
{
	struct route_geo g;

	(void)state;
	/* Unknown to the geo database: rules are not consulted. */
	g = geo("CN", "Guangdong", "Guangzhou", 1);
	g.found = false;
	assert_string_equal(choose(&g, d_default), "default.example");
	/* Private addresses neither. */
	g = geo("US", "", "", 1);
	g.private_addr = true;
	assert_string_equal(choose(&g, d_us), "us.example");
	assert_string_equal(choose(&g, d_default), "default.example");

	/* A default that is not in the snapshot gives NULL. */
	assert_string_equal(choose(&g, "gone.example"), "(null)");
	assert_string_equal(choose(&g, NULL), "(null)");
	g = geo("DE", "", "", 15);
	assert_string_equal(choose(&g, "gone.example"), "(null)");
	/* A matching rule does not need the default. */
	g = geo("US", "", "", 15);
	assert_string_equal(choose(&g, "gone.example"), "us.example");
	assert_null(route_snap_choose(NULL, &g, d_default));

	/* An empty snapshot (as loaded: arrays allocated, zero entries) knows nothing. */
	struct route_snap empty = { .domains = test_domains, .rules = test_rules };
	assert_null(route_snap_choose(&empty, &g, d_default));
}

/* ---- region and city codes ---- */

static int
code_cmp(const void *a, const void *b)
{
	const struct route_code *x = a, *y = b;
	return strcmp(x->key, y->key);
}

static void
test_snap_codes(void **state)
{
	/* Keys as route_code_key builds them: lower case, fields split by \037 (0x1f). */
	static char k1[] = "156\037beijing", k2[] = "156\037guangdong", k3[] = "840\037california";
	static char c1[] = "156\0372\037shenzhen", c2[] = "156\0371\037beijing",
		    c3[] = "156\0370\037somewhere", c4[] = "156\0371\037chaoyang";
	struct route_code regions[] = { { k2, 2 }, { k3, 5 }, { k1, 1 } };
	struct route_code cities[] = { { c1, 7 }, { c2, 3 }, { c3, 9 }, { c4, 4 } };
	struct route_snap s = { .regions = regions, .nregions = 3, .cities = cities, .ncities = 4 };
	struct route_geo g;
	unsigned rc, cc;

	(void)state;
	qsort(regions, 3, sizeof(regions[0]), code_cmp);
	qsort(cities, 4, sizeof(cities[0]), code_cmp);

#define CODES(country, region, city, want_r, want_c)                                               \
	do {                                                                                       \
		g = geo("XX", region, city, 0);                                                    \
		rc = cc = 99;                                                                      \
		route_snap_codes(&s, country, &g, &rc, &cc);                                       \
		if (rc != (want_r) || cc != (want_c))                                              \
			fail_msg("%u/%s/%s: got %u/%u, want %u/%u", country, region, city, rc, cc, \
				 want_r, want_c);                                                  \
	} while (0)

	CODES(156, "Guangdong", "Shenzhen", 2u, 7u);
	CODES(156, "GUANGDONG", "ShenZhen", 2u, 7u);
	CODES(156, "Beijing", "Beijing", 1u, 3u);
	CODES(156, "beijing", "Chaoyang", 1u, 4u);
	/* A city is looked up under its region's code, not by name alone. */
	CODES(156, "Guangdong", "Beijing", 2u, 0u);
	CODES(156, "Beijing", "Shenzhen", 1u, 0u);
	/* Known region, unknown city. */
	CODES(156, "Guangdong", "Foshan", 2u, 0u);
	CODES(156, "Guangdong", "", 2u, 0u);
	/* Unassigned region: its cities cannot have codes yet. */
	CODES(156, "Hubei", "Shenzhen", 0u, 0u);
	/* No region at all: cities live under region code 0. */
	CODES(156, "", "Somewhere", 0u, 9u);
	CODES(156, "", "Shenzhen", 0u, 0u);
	CODES(156, "", "", 0u, 0u);
	/* Country matters; 0 means unknown country, no codes. */
	CODES(840, "California", "Shenzhen", 5u, 0u);
	CODES(840, "Beijing", "Beijing", 0u, 0u);
	CODES(0, "Beijing", "Beijing", 0u, 0u);
	CODES(1, "", "Somewhere", 0u, 0u);
#undef CODES

	/* No snapshot yet: everything is 0, and both outputs are written. */
	g = geo("CN", "Beijing", "Beijing", 0);
	rc = cc = 99;
	route_snap_codes(NULL, 156, &g, &rc, &cc);
	assert_int_equal(rc, 0);
	assert_int_equal(cc, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nettype_parse_good),
		cmocka_unit_test(test_nettype_parse_bad),
		cmocka_unit_test(test_nettype_class_range),
		cmocka_unit_test(test_nettype_duplicate_conflict),
		cmocka_unit_test(test_nettype_class),
		cmocka_unit_test(test_nettype_from_name),
		cmocka_unit_test(test_nettype_name_unnamed),
		cmocka_unit_test(test_snap_domain),
		cmocka_unit_test(test_choose_rules),
		cmocka_unit_test(test_choose_default),
		cmocka_unit_test(test_snap_codes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
