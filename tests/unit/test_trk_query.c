// SPDX-License-Identifier: MIT
/* Unit tests for the tracker's announce/scrape query parser (tracker/trk_query.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../../tracker/trk.h"

static const char IH_ESC[] = "%00%01%02%03%04%05%06%07%08%09%0a%0B%0c%0d%0e%0f%10%11%12%ff";
static const uint8_t IH[20] = { 0,  1,  2,  3,  4,  5,  6,  7,  8,  9,
				10, 11, 12, 13, 14, 15, 16, 17, 18, 0xff };

static int
parse(const char *q, bool scrape, struct trk_query *ret, const char **reason)
{
	*reason = NULL;
	return trk_query_parse(q, strlen(q), scrape, ret, reason);
}

static void
test_announce_full(void **state)
{
	static struct trk_query q;
	const char *reason;
	char buf[512];
	(void)state;

	snprintf(buf, sizeof(buf),
		 "info_hash=%s&peer_id=-qB4450-abcdefghijkl&port=51413&uploaded=10&downloaded=20"
		 "&left=0&event=completed&numwant=30&compact=0&no_peer_id=1&key=x&ip=198.51.100.9"
		 "&supportcrypto=1",
		 IH_ESC);
	assert_int_equal(parse(buf, false, &q, &reason), 0);
	assert_memory_equal(q.info_hash, IH, 20);
	assert_memory_equal(q.peer_id, "-qB4450-abcdefghijkl", 20);
	assert_int_equal(q.port, 51413);
	assert_int_equal(q.uploaded, 10);
	assert_int_equal(q.downloaded, 20);
	assert_true(q.has_left);
	assert_int_equal(q.left, 0);
	assert_int_equal(q.event, TRK_EV_COMPLETED);
	assert_int_equal(q.numwant, 30);
	assert_false(q.compact);
	assert_true(q.no_peer_id);
	assert_true(q.has_ip);
	assert_string_equal(q.ip, "198.51.100.9");
}

/* A raw (unescaped) byte in the value is taken as is; '+' is a space. */
static void
test_raw_bytes_and_plus(void **state)
{
	static struct trk_query q;
	const char *reason;
	(void)state;
	assert_int_equal(parse("info_hash=ABCDEFGHIJKLMNOPQR+T&port=1", false, &q, &reason), 0);
	assert_memory_equal(q.info_hash, "ABCDEFGHIJKLMNOPQR T", 20);
	assert_true(q.compact); /* default */
	assert_int_equal(q.numwant, -1);
	assert_int_equal(q.event, TRK_EV_NONE);
	assert_false(q.has_left);
	/* BEP 21's "paused" is a regular announce. */
	assert_int_equal(
		parse("info_hash=ABCDEFGHIJKLMNOPQRST&port=1&event=paused", false, &q, &reason), 0);
	assert_int_equal(q.event, TRK_EV_NONE);
}

static void
test_announce_errors(void **state)
{
	static const struct {
		const char *q;
		const char *reason;
	} bad[] = {
		{ "port=1", "missing info_hash" },
		{ "info_hash=short&port=1", "invalid info_hash (must be 20 bytes)" },
		{ "info_hash=%zz%01%02%03%04%05%06%07%08%09%0a%0b%0c%0d%0e%0f%10%11%12%13&port=1",
		  "invalid info_hash (must be 20 bytes)" },
		{ "info_hash=%0", "invalid info_hash (must be 20 bytes)" },
		{ "info_hash=ABCDEFGHIJKLMNOPQRST", "missing port" },
		{ "info_hash=ABCDEFGHIJKLMNOPQRST&port=0", "invalid port" },
		{ "info_hash=ABCDEFGHIJKLMNOPQRST&port=65536", "invalid port" },
		{ "info_hash=ABCDEFGHIJKLMNOPQRST&port=-1", "invalid port" },
		{ "info_hash=ABCDEFGHIJKLMNOPQRST&port=1&left=1x",
		  "invalid uploaded, downloaded or left" },
		{ "info_hash=ABCDEFGHIJKLMNOPQRST&port=1&left=99999999999999999999",
		  "invalid uploaded, downloaded or left" },
		{ "info_hash=ABCDEFGHIJKLMNOPQRST&port=1&event=resumed", "invalid event" },
		{ "info_hash=ABCDEFGHIJKLMNOPQRST&port=1&peer_id=abc",
		  "invalid peer_id (must be 20 bytes)" },
		{ "info_hash=ABCDEFGHIJKLMNOPQRST&info_hash=ABCDEFGHIJKLMNOPQRST&port=1",
		  "info_hash given twice" },
		{ "info_hash=ABCDEFGHIJKLMNOPQRST&port=1&numwant=many", "invalid numwant" },
	};
	static struct trk_query q;
	const char *reason;
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i].q, false, &q, &reason) != -EINVAL)
			fail_msg("accepted: %s", bad[i].q);
		if (!reason || strcmp(reason, bad[i].reason) != 0)
			fail_msg("%s: reason \"%s\", want \"%s\"", bad[i].q,
				 reason ? reason : "(none)", bad[i].reason);
	}
}

static void
test_numwant_clamped(void **state)
{
	static struct trk_query q;
	const char *reason;
	(void)state;
	assert_int_equal(parse("info_hash=ABCDEFGHIJKLMNOPQRST&port=1&numwant=18446744073709551615",
			       false, &q, &reason),
			 0);
	assert_int_equal(q.numwant, 1000000);
}

static void
test_scrape(void **state)
{
	static struct trk_query q;
	const char *reason;
	char buf[64 * 70 + 64];
	size_t n = 0;
	(void)state;

	for (int i = 0; i < TRK_SCRAPE_MAX; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n,
				      "%sinfo_hash=ABCDEFGHIJKLMNOPQR%02d", i ? "&" : "", i);
	assert_int_equal(parse(buf, true, &q, &reason), 0);
	assert_int_equal(q.nscrape, TRK_SCRAPE_MAX);
	assert_memory_equal(q.scrape[63], "ABCDEFGHIJKLMNOPQR63", 20);
	/* One more is refused, and scrape needs no port. */
	snprintf(buf + n, sizeof(buf) - n, "&info_hash=ABCDEFGHIJKLMNOPQRST");
	assert_int_equal(parse(buf, true, &q, &reason), -EINVAL);
	assert_string_equal(reason, "too many info_hash values in one scrape");
	assert_int_equal(parse("", true, &q, &reason), -EINVAL);
	assert_string_equal(reason, "missing info_hash");
	/* Other keys are ignored in a scrape, bad or not. */
	assert_int_equal(parse("info_hash=ABCDEFGHIJKLMNOPQRST&port=zzz", true, &q, &reason), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_announce_full),   cmocka_unit_test(test_raw_bytes_and_plus),
		cmocka_unit_test(test_announce_errors), cmocka_unit_test(test_numwant_clamped),
		cmocka_unit_test(test_scrape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
