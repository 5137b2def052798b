// SPDX-License-Identifier: MIT
/* Unit tests for tracker/trk_store: counts, peer choice, families, expiry, limits, threads, memory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tracker/trk.h"

#define C4 6  /* compact IPv4 peer */
#define C6 18 /* compact IPv6 peer */
#define T0 1000000u

/* Spreads torrent numbers over the hash space so they land in every shard. */
/* A catalog stand-in: counts the completions taken (arg may be NULL). */
static void
count_taken(const uint8_t info_hash[TRK_HASH_LEN], uint32_t n, void *arg)
{
	(void)info_hash;
	if (arg)
		*(unsigned *)arg += n;
}

static void
make_hash(uint32_t n, uint8_t hash[TRK_HASH_LEN])
{
	uint64_t x = n * UINT64_C(0x9e3779b97f4a7c15) + 1;

	for (int i = 0; i < TRK_HASH_LEN; i++) {
		x ^= x >> 29;
		x *= UINT64_C(0xbf58476d1ce4e5b9);
		hash[i] = (uint8_t)(x >> 56);
	}
}

static void
peer4(struct trk_peer *p, uint32_t ip, uint16_t port)
{
	memset(p->ip, 0, sizeof(p->ip));
	p->ip[10] = p->ip[11] = 0xff;
	p->ip[12] = (uint8_t)(ip >> 24);
	p->ip[13] = (uint8_t)(ip >> 16);
	p->ip[14] = (uint8_t)(ip >> 8);
	p->ip[15] = (uint8_t)ip;
	p->port = port;
}

static void
peer6(struct trk_peer *p, uint32_t n, uint16_t port)
{
	static const uint8_t pfx[8] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0 };

	memset(p->ip, 0, sizeof(p->ip));
	memcpy(p->ip, pfx, sizeof(pfx));
	p->ip[12] = (uint8_t)(n >> 24);
	p->ip[13] = (uint8_t)(n >> 16);
	p->ip[14] = (uint8_t)(n >> 8);
	p->ip[15] = (uint8_t)n;
	p->port = port;
}

static struct trk_announce
ann(uint32_t torrent, const struct trk_peer *p, bool seeder, enum trk_event ev, unsigned numwant,
    uint32_t now)
{
	struct trk_announce a = {
		.peer = *p, .seeder = seeder, .event = ev, .numwant = numwant, .now = now
	};

	make_hash(torrent, a.info_hash);
	return a;
}

/* Announces and returns the result; out buffers are optional. */
static int
go(struct trk_store *s, const struct trk_announce *a, uint8_t *o4, size_t c4, uint8_t *o6,
   size_t c6, size_t *n4, size_t *n6, struct trk_counts *c)
{
	size_t d4, d6;
	struct trk_counts dc;

	return trk_store_announce(s, a, o4, c4, o6, c6, n4 ? n4 : &d4, n6 ? n6 : &d6, c ? c : &dc);
}

/* Announces a v4 peer that wants nothing back; asserts success. */
static void
put4(struct trk_store *s, uint32_t torrent, uint32_t ip, uint16_t port, bool seeder,
     enum trk_event ev, uint32_t now)
{
	struct trk_peer p;
	struct trk_announce a;

	peer4(&p, ip, port);
	a = ann(torrent, &p, seeder, ev, 0, now);
	assert_int_equal(go(s, &a, NULL, 0, NULL, 0, NULL, NULL, NULL), 0);
}

static void
put6(struct trk_store *s, uint32_t torrent, uint32_t n, uint16_t port, bool seeder,
     enum trk_event ev, uint32_t now)
{
	struct trk_peer p;
	struct trk_announce a;

	peer6(&p, n, port);
	a = ann(torrent, &p, seeder, ev, 0, now);
	assert_int_equal(go(s, &a, NULL, 0, NULL, 0, NULL, NULL, NULL), 0);
}

static void
assert_counts(struct trk_store *s, uint32_t torrent, uint32_t seeders, uint32_t leechers,
	      uint32_t completed)
{
	uint8_t h[TRK_HASH_LEN];
	struct trk_counts c;

	make_hash(torrent, h);
	assert_int_equal(trk_store_scrape(s, h, &c), 0);
	assert_int_equal(c.seeders, seeders);
	assert_int_equal(c.leechers, leechers);
	assert_int_equal(c.completed, completed);
}

static uint32_t
ip_of(const uint8_t *c)
{
	return (uint32_t)c[0] << 24 | (uint32_t)c[1] << 16 | (uint32_t)c[2] << 8 | c[3];
}

static uint16_t
port_of4(const uint8_t *c)
{
	return (uint16_t)(c[4] << 8 | c[5]);
}

static void
test_insert_update_stop(void **state)
{
	struct trk_store *s = trk_store_new(4, 100, 100);
	struct trk_peer p;
	struct trk_announce a;
	struct trk_counts c;
	uint8_t h[TRK_HASH_LEN];
	size_t n4 = 99, n6 = 99;

	(void)state;
	assert_non_null(s);
	make_hash(1, h);
	assert_int_equal(trk_store_scrape(s, h, &c), -ENOENT);

	/* A stop for an unknown swarm records nothing. */
	peer4(&p, 0x0a000001, 6881);
	a = ann(1, &p, false, TRK_EV_STOPPED, 50, T0);
	assert_int_equal(go(s, &a, NULL, 0, NULL, 0, &n4, &n6, &c), 0);
	assert_int_equal(n4 + n6 + c.seeders + c.leechers + c.completed, 0);
	assert_int_equal(trk_store_scrape(s, h, &c), -ENOENT);

	put4(s, 1, 0x0a000001, 6881, false, TRK_EV_STARTED, T0);
	assert_counts(s, 1, 0, 1, 0);
	/* The same address on another port is another peer. */
	put4(s, 1, 0x0a000001, 6882, false, TRK_EV_STARTED, T0);
	assert_counts(s, 1, 0, 2, 0);
	/* Re-announcing updates, never duplicates. */
	put4(s, 1, 0x0a000001, 6881, false, TRK_EV_NONE, T0 + 10);
	assert_counts(s, 1, 0, 2, 0);
	/* Leecher -> seeder -> leecher keeps counts in step. */
	put4(s, 1, 0x0a000001, 6881, true, TRK_EV_NONE, T0 + 20);
	assert_counts(s, 1, 1, 1, 0);
	put4(s, 1, 0x0a000001, 6881, false, TRK_EV_NONE, T0 + 30);
	assert_counts(s, 1, 0, 2, 0);
	put4(s, 1, 0x0a000001, 6881, true, TRK_EV_NONE, T0 + 40);
	/* Stops remove, for seeders and leechers alike; a second stop is a no-op. */
	put4(s, 1, 0x0a000001, 6881, true, TRK_EV_STOPPED, T0 + 50);
	assert_counts(s, 1, 0, 1, 0);
	put4(s, 1, 0x0a000001, 6881, true, TRK_EV_STOPPED, T0 + 50);
	assert_counts(s, 1, 0, 1, 0);
	put4(s, 1, 0x0a000001, 6882, false, TRK_EV_STOPPED, T0 + 50);
	/* The emptied torrent stays (for its completed count) until expiry. */
	assert_counts(s, 1, 0, 0, 0);
	assert_int_equal(trk_store_expire(s, T0 + 60, 1000), 0);
	assert_int_equal(trk_store_scrape(s, h, &c), -ENOENT);
	trk_store_free(s);
	trk_store_free(NULL);
	assert_null(trk_store_new(17, 1, 1));
}

static void
test_completed_once(void **state)
{
	struct trk_store *s = trk_store_new(0, 10, 10);

	(void)state;
	put4(s, 2, 0x0a000001, 1, false, TRK_EV_STARTED, T0);
	put4(s, 2, 0x0a000001, 1, true, TRK_EV_COMPLETED, T0 + 1);
	assert_counts(s, 2, 1, 0, 1);
	/* Repeats of event=completed, by the same peer, count nothing more. */
	put4(s, 2, 0x0a000001, 1, true, TRK_EV_COMPLETED, T0 + 2);
	put4(s, 2, 0x0a000001, 1, true, TRK_EV_NONE, T0 + 3);
	put4(s, 2, 0x0a000001, 1, true, TRK_EV_COMPLETED, T0 + 4);
	assert_counts(s, 2, 1, 0, 1);
	/* A brand-new peer whose first announce is completed counts once. */
	put4(s, 2, 0x0a000002, 1, true, TRK_EV_COMPLETED, T0);
	put4(s, 2, 0x0a000002, 1, true, TRK_EV_COMPLETED, T0);
	assert_counts(s, 2, 2, 0, 2);
	/* A seeder from the start never completed here. */
	put4(s, 2, 0x0a000003, 1, true, TRK_EV_STARTED, T0);
	assert_counts(s, 2, 3, 0, 2);
	/* Completed survives the peer leaving. */
	put4(s, 2, 0x0a000001, 1, true, TRK_EV_STOPPED, T0 + 5);
	assert_counts(s, 2, 2, 0, 2);
	/* IPv6 peers count the same way. */
	put6(s, 2, 1, 1, true, TRK_EV_COMPLETED, T0);
	put6(s, 2, 1, 1, true, TRK_EV_COMPLETED, T0);
	assert_counts(s, 2, 3, 0, 3);
	trk_store_free(s);
}

static void
test_self_never_returned(void **state)
{
	struct trk_store *s = trk_store_new(2, 10, 1000);
	uint8_t out[C4 * 100];
	struct trk_peer p;
	struct trk_announce a;
	size_t n4, n6;

	(void)state;
	/* Alone in a swarm: nothing back. */
	peer4(&p, 0x0a000001, 1);
	a = ann(3, &p, false, TRK_EV_STARTED, 50, T0);
	assert_int_equal(go(s, &a, out, sizeof(out), NULL, 0, &n4, &n6, NULL), 0);
	assert_int_equal(n4, 0);
	assert_int_equal(n6, 0);

	for (uint32_t i = 2; i <= 40; i++)
		put4(s, 3, 0x0a000000 + i, 1, i % 3 == 0, TRK_EV_STARTED, T0);
	/* Every member, asking for more than exist, gets all others once each. */
	for (uint32_t i = 1; i <= 40; i++) {
		bool seen[41] = { false };

		peer4(&p, 0x0a000000 + i, 1);
		a = ann(3, &p, false, TRK_EV_NONE, 100, T0);
		assert_int_equal(go(s, &a, out, sizeof(out), NULL, 0, &n4, &n6, NULL), 0);
		assert_int_equal(n4, 39);
		for (size_t k = 0; k < n4; k++) {
			uint32_t ip = ip_of(out + k * C4) - 0x0a000000;

			assert_int_not_equal(ip, i);
			assert_true(ip >= 1 && ip <= 40);
			assert_false(seen[ip]);
			seen[ip] = true;
			assert_int_equal(port_of4(out + k * C4), 1);
		}
	}
	trk_store_free(s);
}

static void
test_seeders_get_leechers(void **state)
{
	struct trk_store *s = trk_store_new(2, 10, 10000);
	uint8_t out[C4 * 100];
	struct trk_peer p;
	struct trk_announce a;
	struct trk_counts c;
	size_t n4, n6;

	(void)state;
	/* 30 seeders 0x0b.., 8 leechers 0x0c.. */
	for (uint32_t i = 0; i < 30; i++)
		put4(s, 4, 0x0b000000 + i, 1, true, TRK_EV_STARTED, T0);
	for (uint32_t i = 0; i < 8; i++)
		put4(s, 4, 0x0c000000 + i, 1, false, TRK_EV_STARTED, T0);

	/* A seeder gets every leecher and no seeder: seeders gain nothing from
	 * each other. */
	peer4(&p, 0x0b000005, 1);
	a = ann(4, &p, true, TRK_EV_NONE, 50, T0);
	assert_int_equal(go(s, &a, out, sizeof(out), NULL, 0, &n4, &n6, &c), 0);
	assert_int_equal(c.seeders, 30);
	assert_int_equal(c.leechers, 8);
	assert_int_equal(n4, 8);
	for (size_t k = 0; k < n4; k++)
		assert_int_equal(ip_of(out + k * C4) >> 24, 0x0c);

	/* A leecher gets any peer. */
	peer4(&p, 0x0c000003, 1);
	a = ann(4, &p, false, TRK_EV_NONE, 50, T0);
	assert_int_equal(go(s, &a, out, sizeof(out), NULL, 0, &n4, &n6, &c), 0);
	assert_int_equal(n4, 37);

	/* A swarm of seeders only gives a seeder nothing. */
	for (uint32_t i = 0; i < 8; i++)
		put4(s, 4, 0x0c000000 + i, 1, false, TRK_EV_STOPPED, T0);
	peer4(&p, 0x0b000005, 1);
	a = ann(4, &p, true, TRK_EV_NONE, 50, T0);
	assert_int_equal(go(s, &a, out, sizeof(out), NULL, 0, &n4, &n6, &c), 0);
	assert_int_equal(n4, 0);

	/* In a big seeder-heavy swarm a seeder still gets only leechers. */
	for (uint32_t i = 30; i < 3000; i++)
		put4(s, 4, 0x0b000000 + i, 1, true, TRK_EV_STARTED, T0);
	for (uint32_t i = 0; i < 1000; i++)
		put4(s, 4, 0x0c000000 + i, 1, false, TRK_EV_STARTED, T0);
	for (int r = 0; r < 20; r++) {
		a = ann(4, &p, true, TRK_EV_NONE, 50, T0);
		assert_int_equal(go(s, &a, out, sizeof(out), NULL, 0, &n4, &n6, NULL), 0);
		/* A quarter are leechers: a 264-record walk finds ~66, so 30 is
		 * five standard deviations below what it should find. */
		assert_true(n4 >= 30 && n4 <= 50);
		for (size_t k = 0; k < n4; k++)
			assert_int_equal(ip_of(out + k * C4) >> 24, 0x0c);
	}
	trk_store_free(s);
}

static void
test_numwant_caps(void **state)
{
	struct trk_store *s = trk_store_new(2, 10, 1000);
	uint8_t out4[C4 * 100], out6[C6 * 100];
	struct trk_peer p;
	struct trk_announce a;
	size_t n4, n6;

	(void)state;
	for (uint32_t i = 0; i < 60; i++) {
		put4(s, 5, 0x0a000000 + i, 1, false, TRK_EV_STARTED, T0);
		put6(s, 5, i, 1, false, TRK_EV_STARTED, T0);
	}
	peer4(&p, 0x0a000000, 1);
	a = ann(5, &p, false, TRK_EV_NONE, 7, T0);
	assert_int_equal(go(s, &a, out4, sizeof(out4), out6, sizeof(out6), &n4, &n6, NULL), 0);
	assert_int_equal(n4, 7);
	assert_int_equal(n6, 0);
	/* numwant 0: counts only. */
	a = ann(5, &p, false, TRK_EV_NONE, 0, T0);
	assert_int_equal(go(s, &a, out4, sizeof(out4), out6, sizeof(out6), &n4, &n6, NULL), 0);
	assert_int_equal(n4 + n6, 0);
	/* The buffer caps too, in whole peers (a partial record never goes out). */
	a = ann(5, &p, false, TRK_EV_NONE, 50, T0);
	assert_int_equal(go(s, &a, out4, 3 * C4 + 5, out6, 2 * C6 + 17, &n4, &n6, NULL), 0);
	assert_int_equal(n4, 3);
	assert_int_equal(n6, 2);
	/* numwant spans both families: 59 v4 others, then 11 v6. */
	a = ann(5, &p, false, TRK_EV_NONE, 70, T0);
	assert_int_equal(go(s, &a, out4, sizeof(out4), out6, sizeof(out6), &n4, &n6, NULL), 0);
	assert_int_equal(n4, 59);
	assert_int_equal(n6, 11);
	/* A stopping peer gets none. */
	a = ann(5, &p, false, TRK_EV_STOPPED, 70, T0);
	assert_int_equal(go(s, &a, out4, sizeof(out4), out6, sizeof(out6), &n4, &n6, NULL), 0);
	assert_int_equal(n4 + n6, 0);
	trk_store_free(s);
}

static void
test_families(void **state)
{
	struct trk_store *s = trk_store_new(2, 10, 1000);
	uint8_t out4[C4 * 10], out6[C6 * 10];
	struct trk_peer p, q;
	struct trk_announce a;
	struct trk_counts c;
	size_t n4, n6;

	(void)state;
	put4(s, 6, 0xc0000201, 0x1ae1, false, TRK_EV_STARTED, T0); /* 192.0.2.1:6881 */
	put6(s, 6, 0x01020304, 0xabcd, true, TRK_EV_STARTED, T0);
	put6(s, 6, 0x01020305, 0xabcd, false, TRK_EV_STARTED, T0);

	/* A v4 peer with no v6 buffer sees only the v4 peer, byte-exact. */
	peer4(&p, 0xc0000202, 1);
	a = ann(6, &p, false, TRK_EV_STARTED, 50, T0);
	assert_int_equal(go(s, &a, out4, sizeof(out4), NULL, 0, &n4, &n6, &c), 0);
	assert_int_equal(n4, 1);
	assert_int_equal(n6, 0);
	assert_memory_equal(out4, "\xc0\x00\x02\x01\x1a\xe1", C4);
	assert_int_equal(c.seeders, 1);
	assert_int_equal(c.leechers, 3);

	/* With a v6 buffer it gets the v6 peers there, 18 bytes each. */
	a = ann(6, &p, false, TRK_EV_NONE, 50, T0);
	assert_int_equal(go(s, &a, out4, sizeof(out4), out6, sizeof(out6), &n4, &n6, &c), 0);
	assert_int_equal(n4, 1);
	assert_int_equal(n6, 2);
	peer6(&q, 0x01020304, 0xabcd);
	assert_true(memcmp(out6, q.ip, 16) == 0 || memcmp(out6 + C6, q.ip, 16) == 0);
	assert_int_equal(out6[16], 0xab);
	assert_int_equal(out6[17], 0xcd);

	/* A v6 seeder: its own family first (the other v6 leecher), then v4. */
	peer6(&q, 0x01020304, 0xabcd);
	a = ann(6, &q, true, TRK_EV_NONE, 1, T0);
	assert_int_equal(go(s, &a, out4, sizeof(out4), out6, sizeof(out6), &n4, &n6, &c), 0);
	assert_int_equal(n6, 1);
	assert_int_equal(n4, 0);
	peer6(&p, 0x01020305, 0xabcd);
	assert_memory_equal(out6, p.ip, 16);
	a = ann(6, &q, true, TRK_EV_NONE, 10, T0);
	assert_int_equal(go(s, &a, out4, sizeof(out4), out6, sizeof(out6), &n4, &n6, &c), 0);
	assert_int_equal(n6, 1);
	assert_int_equal(n4, 2);
	/* Without a v4 buffer only v6. */
	assert_int_equal(go(s, &a, NULL, 0, out6, sizeof(out6), &n4, &n6, &c), 0);
	assert_int_equal(n6, 1);
	assert_int_equal(n4, 0);

	/* The same low 32 bits and port in a v6 address are another peer. */
	put6(s, 6, 0xc0000201, 0x1ae1, false, TRK_EV_STARTED, T0);
	assert_counts(s, 6, 1, 4, 0);
	trk_store_free(s);
}

static void
test_rotation(void **state)
{
	struct trk_store *s = trk_store_new(2, 10, 10000);
	static bool seen[2000];
	uint8_t out[C4 * 50], first[C4 * 50];
	struct trk_peer p;
	struct trk_announce a;
	size_t n4, n6, distinct = 0, same = 0;

	(void)state;
	for (uint32_t i = 0; i < 2000; i++)
		put4(s, 7, 0x0a000000 + i, 1, false, TRK_EV_STARTED, T0);
	peer4(&p, 0x0a000000, 1);
	for (int r = 0; r < 20; r++) {
		a = ann(7, &p, false, TRK_EV_NONE, 50, T0);
		assert_int_equal(go(s, &a, out, sizeof(out), NULL, 0, &n4, &n6, NULL), 0);
		assert_int_equal(n4, 50);
		if (r == 0)
			memcpy(first, out, sizeof(out));
		else if (memcmp(first, out, sizeof(out)) == 0)
			same++;
		for (size_t k = 0; k < n4; k++) {
			uint32_t i = ip_of(out + k * C4) - 0x0a000000;

			assert_true(i > 0 && i < 2000);
			if (!seen[i]) {
				seen[i] = true;
				distinct++;
			}
		}
	}
	/* 20 answers of 50 from 1999 others: one fixed answer would give 50. */
	print_message("rotation: %zu distinct peers over 20 announces of 50\n", distinct);
	assert_true(distinct > 500);
	assert_true(same < 3);
	trk_store_free(s);
}

static void
test_expiry(void **state)
{
	struct trk_store *s = trk_store_new(3, 100, 100);
	struct trk_store_stats st;
	uint8_t h[TRK_HASH_LEN];
	struct trk_counts c;

	(void)state;
	put4(s, 8, 1, 1, true, TRK_EV_COMPLETED, T0);
	put4(s, 8, 2, 1, false, TRK_EV_STARTED, T0 + 100);
	put6(s, 8, 3, 1, false, TRK_EV_STARTED, T0);
	put4(s, 9, 4, 1, false, TRK_EV_STARTED, T0);
	/* Nobody goes before the timeout has passed... */
	assert_int_equal(trk_store_expire(s, T0 + 600, 600), 0);
	assert_counts(s, 8, 1, 2, 1);
	/* ...and everyone silent for more than timeout + 7 s has gone. */
	assert_int_equal(trk_store_expire(s, T0 + 608, 600), 3);
	assert_counts(s, 8, 0, 1, 1);
	make_hash(9, h);
	assert_int_equal(trk_store_scrape(s, h, &c), -ENOENT);
	trk_store_stats(s, &st);
	assert_int_equal(st.torrents, 1);
	assert_int_equal(st.peers4, 1);
	assert_int_equal(st.peers6, 0);
	assert_int_equal(st.seeders, 0);
	assert_int_equal(st.leechers, 1);
	/* A re-announce refreshes. */
	put4(s, 8, 2, 1, false, TRK_EV_NONE, T0 + 650);
	assert_int_equal(trk_store_expire(s, T0 + 1200, 600), 0);
	assert_int_equal(trk_store_expire(s, T0 + 1300, 600), 1);
	/* Torrent 8 had a completion the catalog has not taken: it stays,
	 * empty, until taken, then the next expiry drops it. */
	trk_store_stats(s, &st);
	assert_int_equal(st.torrents, 1);
	assert_int_equal(st.peers4 + st.peers6, 0);
	unsigned taken = 0;
	trk_store_take_completed(s, count_taken, &taken);
	assert_int_equal(taken, 1);
	assert_int_equal(trk_store_expire(s, T0 + 1301, 600), 0);
	trk_store_stats(s, &st);
	assert_int_equal(st.torrents, 0);

	/* Across the wrap of the 14-bit tick (every 65,536 s) ages stay right. */
	for (uint32_t base = 65536 - 300; base < 65536 + 300; base += 37) {
		put4(s, 10, 5, 1, false, TRK_EV_STARTED, base);
		assert_int_equal(trk_store_expire(s, base + 120, 120), 0);
		assert_int_equal(trk_store_expire(s, base + 128, 120), 1);
	}
	trk_store_free(s);
}

static void
test_limits(void **state)
{
	struct trk_store *s = trk_store_new(4, 2, 3);
	struct trk_store_stats st;
	struct trk_peer p;
	struct trk_announce a;
	struct trk_counts c = { 7, 7, 7 };
	uint8_t h[TRK_HASH_LEN];
	size_t n4 = 99, n6 = 99;

	(void)state;
	put4(s, 11, 1, 1, false, TRK_EV_STARTED, T0);
	put4(s, 12, 1, 1, false, TRK_EV_STARTED, T0);
	/* A third torrent is refused and leaves no trace, outputs untouched. */
	peer4(&p, 1, 1);
	a = ann(13, &p, false, TRK_EV_STARTED, 50, T0);
	assert_int_equal(go(s, &a, NULL, 0, NULL, 0, &n4, &n6, &c), -ENOSPC);
	assert_int_equal(n4, 99);
	assert_int_equal(c.seeders, 7);
	make_hash(13, h);
	assert_int_equal(trk_store_scrape(s, h, &c), -ENOENT);
	trk_store_stats(s, &st);
	assert_int_equal(st.torrents, 2);
	/* Peers per torrent: the fourth new one (either family) is refused... */
	put4(s, 11, 2, 1, false, TRK_EV_STARTED, T0);
	put6(s, 11, 3, 1, false, TRK_EV_STARTED, T0);
	peer4(&p, 4, 1);
	a = ann(11, &p, false, TRK_EV_STARTED, 50, T0);
	assert_int_equal(go(s, &a, NULL, 0, NULL, 0, NULL, NULL, NULL), -ENOSPC);
	peer6(&p, 4, 1);
	a = ann(11, &p, false, TRK_EV_STARTED, 50, T0);
	assert_int_equal(go(s, &a, NULL, 0, NULL, 0, NULL, NULL, NULL), -ENOSPC);
	assert_counts(s, 11, 0, 3, 0);
	/* ...while members still update, complete and leave. */
	put4(s, 11, 2, 1, true, TRK_EV_COMPLETED, T0 + 1);
	assert_counts(s, 11, 1, 2, 1);
	put6(s, 11, 3, 1, false, TRK_EV_STOPPED, T0 + 1);
	put6(s, 11, 4, 1, false, TRK_EV_STARTED, T0 + 1);
	assert_counts(s, 11, 1, 2, 1);
	/* Expiry frees torrent slots. */
	assert_int_equal(trk_store_expire(s, T0 + 100, 10), 4);
	put4(s, 13, 1, 1, false, TRK_EV_STARTED, T0 + 100);
	trk_store_free(s);

	/* Zero limits refuse everything. */
	s = trk_store_new(0, 0, 10);
	peer4(&p, 1, 1);
	a = ann(1, &p, false, TRK_EV_STARTED, 50, T0);
	assert_int_equal(go(s, &a, NULL, 0, NULL, 0, NULL, NULL, NULL), -ENOSPC);
	trk_store_free(s);
	s = trk_store_new(0, 10, 0);
	assert_int_equal(go(s, &a, NULL, 0, NULL, 0, NULL, NULL, NULL), -ENOSPC);
	trk_store_stats(s, &st);
	assert_int_equal(st.torrents, 0);
	trk_store_free(s);
}

struct sum {
	size_t torrents, peers4, peers6, seeders, leechers, completed;
};

static void
sum_cb(const uint8_t info_hash[TRK_HASH_LEN], const struct trk_counts *c, size_t peers4,
       size_t peers6, void *arg)
{
	struct sum *sm = arg;

	(void)info_hash;
	assert_int_equal(c->seeders + c->leechers, peers4 + peers6);
	sm->torrents++;
	sm->peers4 += peers4;
	sm->peers6 += peers6;
	sm->seeders += c->seeders;
	sm->leechers += c->leechers;
	sm->completed += c->completed;
}

static void
test_foreach_stats(void **state)
{
	struct trk_store *s = trk_store_new(3, 1000, 10000);
	struct trk_store_stats st, empty;
	struct sum sm = { 0 };

	(void)state;
	trk_store_stats(s, &empty);
	assert_int_equal(empty.torrents, 0);
	assert_true(empty.bytes > 0);
	for (uint32_t t = 0; t < 50; t++)
		for (uint32_t i = 0; i <= t; i++) {
			put4(s, t, i, 1, i % 4 == 0, i % 8 == 0 ? TRK_EV_COMPLETED : TRK_EV_STARTED,
			     T0);
			if (i % 5 == 0)
				put6(s, t, i, 1, false, TRK_EV_STARTED, T0);
		}
	trk_store_foreach(s, sum_cb, &sm);
	trk_store_stats(s, &st);
	assert_int_equal(sm.torrents, 50);
	assert_int_equal(st.torrents, 50);
	assert_int_equal(sm.peers4, 50 * 51 / 2);
	assert_int_equal(st.peers4, sm.peers4);
	assert_int_equal(st.peers6, sm.peers6);
	assert_int_equal(st.seeders, sm.seeders);
	assert_int_equal(st.leechers, sm.leechers);
	assert_true(st.bytes >= empty.bytes + 50 * 64 + st.peers4 * 8 + st.peers6 * 20);

	/* A big swarm that empties gives its vector back. */
	for (uint32_t i = 0; i < 5000; i++)
		put4(s, 100, i, 1, false, TRK_EV_STARTED, T0);
	trk_store_stats(s, &empty);
	for (uint32_t i = 0; i < 5000; i++)
		put4(s, 100, i, 1, false, TRK_EV_STOPPED, T0);
	trk_store_stats(s, &st);
	assert_true(empty.bytes - st.bytes >= 5000 * 8);
	/* Expiring everything leaves the bare store. */
	trk_store_take_completed(s, count_taken, NULL); /* as the catalog's flush does */
	trk_store_expire(s, T0 + 10000, 60);
	trk_store_stats(s, &st);
	assert_int_equal(st.torrents + st.peers4 + st.peers6, 0);
	trk_store_foreach(s, sum_cb, &sm);
	assert_int_equal(sm.torrents, 50);
	trk_store_free(s);
}

/* Threads: each owns a range of peer addresses, shared over all torrents. */
#define TH_THREADS  8
#define TH_TORRENTS 64
#define TH_PEERS    200 /* per thread per torrent */

struct th_arg {
	struct trk_store *s;
	uint32_t id;
	int err;
};

static void *
th_main(void *p)
{
	struct th_arg *ta = p;
	uint8_t out4[C4 * 30], out6[C6 * 30];

	for (uint32_t round = 0; round < 3; round++)
		for (uint32_t i = 0; i < TH_PEERS; i++)
			for (uint32_t t = 0; t < TH_TORRENTS; t++) {
				struct trk_peer peer;
				struct trk_announce a;
				enum trk_event ev = TRK_EV_NONE;
				bool seeder = false;
				size_t n4, n6;
				struct trk_counts c;
				int err;

				if (i % 2)
					peer4(&peer, ta->id << 24 | i, (uint16_t)t);
				else
					peer6(&peer, ta->id << 24 | i, (uint16_t)t);
				/* Round 1: a third become seeders via completed;
				 * round 2: a fifth stop. */
				if (round == 1 && i % 3 == 0) {
					ev = TRK_EV_COMPLETED;
					seeder = true;
				} else if (round == 2) {
					seeder = i % 3 == 0;
					ev = i % 5 == 0 ? TRK_EV_STOPPED : TRK_EV_NONE;
				}
				a = ann(t, &peer, seeder, ev, 30, T0 + round);
				err = trk_store_announce(ta->s, &a, out4, sizeof(out4), out6,
							 sizeof(out6), &n4, &n6, &c);
				if (err < 0 || n4 + n6 > 30)
					ta->err = err < 0 ? err : -EINVAL;
			}
	return NULL;
}

static void
test_threads(void **state)
{
	struct trk_store *s = trk_store_new(4, 1000, 100000);
	pthread_t th[TH_THREADS];
	struct th_arg ta[TH_THREADS];
	struct trk_store_stats st;
	uint32_t seeders = 0, leechers = 0, completed = 0;

	(void)state;
	for (uint32_t i = 0; i < TH_THREADS; i++) {
		ta[i] = (struct th_arg){ s, i + 1, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, th_main, &ta[i]), 0);
	}
	/* Scrapes and stats race the announces; they must just be consistent. */
	for (int r = 0; r < 200; r++) {
		trk_store_stats(s, &st);
		assert_true(st.seeders + st.leechers == st.peers4 + st.peers6);
	}
	for (uint32_t i = 0; i < TH_THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(ta[i].err, 0);
	}
	for (uint32_t i = 0; i < TH_PEERS; i++) {
		if (i % 3 == 0)
			completed++;
		if (i % 5 == 0)
			continue;
		if (i % 3 == 0)
			seeders++;
		else
			leechers++;
	}
	for (uint32_t t = 0; t < TH_TORRENTS; t++)
		assert_counts(s, t, seeders * TH_THREADS, leechers * TH_THREADS,
			      completed * TH_THREADS);
	trk_store_stats(s, &st);
	assert_int_equal(st.torrents, TH_TORRENTS);
	assert_int_equal(st.seeders, (size_t)seeders * TH_THREADS * TH_TORRENTS);
	assert_int_equal(st.leechers, (size_t)leechers * TH_THREADS * TH_TORRENTS);
	assert_int_equal(st.peers4 + st.peers6, st.seeders + st.leechers);
	trk_store_free(s);
}

/* The documented bound: 8-byte IPv4 records in vectors at most 1.5x their
 * length (12 bytes/peer at worst, ~10 on average) plus a 64-byte torrent
 * entry, itself in a vector at most 1.5x full, shared by ~100 peers (~1
 * byte/peer). 1,000,000 peers over 10,000 torrents must stay under 14. */
#define MEM_PEERS          1000000u
#define MEM_TORRENTS       10000u
#define MEM_MAX_BYTES_PEER 14.0

static void
test_memory(void **state)
{
	struct trk_store *s = trk_store_new(8, MEM_TORRENTS, 100000);
	struct trk_store_stats st;
	uint64_t x = 42;
	double per;

	(void)state;
	/* Random torrent per peer, so swarm sizes vary as in life (and vector
	 * slack averages out instead of hitting one lucky capacity). */
	for (uint32_t i = 0; i < MEM_PEERS; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		put4(s, (uint32_t)(x % MEM_TORRENTS), 0x0a000000 + i, 6881, i % 4 == 0,
		     TRK_EV_STARTED, T0);
	}
	trk_store_stats(s, &st);
	assert_int_equal(st.peers4, MEM_PEERS);
	assert_int_equal(st.torrents, MEM_TORRENTS);
	per = (double)st.bytes / (double)st.peers4;
	print_message("memory: %zu bytes for %zu IPv4 peers in %zu torrents: %.2f bytes/peer "
		      "(bound %.0f)\n",
		      st.bytes, st.peers4, st.torrents, per, MEM_MAX_BYTES_PEER);
	assert_true(per < MEM_MAX_BYTES_PEER);
	trk_store_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_insert_update_stop),
		cmocka_unit_test(test_completed_once),
		cmocka_unit_test(test_self_never_returned),
		cmocka_unit_test(test_seeders_get_leechers),
		cmocka_unit_test(test_numwant_caps),
		cmocka_unit_test(test_families),
		cmocka_unit_test(test_rotation),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_foreach_stats),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
