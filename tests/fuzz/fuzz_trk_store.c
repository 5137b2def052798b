// SPDX-License-Identifier: MIT
/* libFuzzer target for tracker/trk_store: announce/scrape/expire runs checked against a model. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trk.h"

/*
 * Input: 4-byte operations on a store of 2 shards, 4 torrents at most and 6
 * peers per torrent, over 8 possible info_hashes and 16 peers (8 IPv4, 8
 * IPv6; pairs share an address and differ by port). A plain model keeps every
 * peer with its full last-seen time; after each operation the store must
 * agree with it on return codes, counts, expiry and the peers handed out.
 * Swarms stay below the peer walk's budget, so the choice must be exact:
 * min(numwant, eligible) peers, all distinct, never the requester, only
 * leechers for a seeder.
 */

#define N_TORRENTS   8
#define N_PEERS      16
#define MAX_TORRENTS 4
#define MAX_PEERS    6
#define TIME_LIMIT   60000 /* below the store's 65,536 s tick wrap */

struct m_peer {
	bool here, seeder, completed;
	uint32_t seen;
};

struct m_torrent {
	bool here;
	uint32_t completed;
	uint32_t untaken; /* completions no trk_store_take_completed has taken */
	struct m_peer p[N_PEERS];
};

struct model {
	struct m_torrent t[N_TORRENTS];
	uint32_t now;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
hash_of(unsigned t, uint8_t h[TRK_HASH_LEN])
{
	/* The top bit picks the shard; the rest differs past the shard bits. */
	memset(h, 0x5a, TRK_HASH_LEN);
	h[0] = (uint8_t)(t << 5);
	h[19] = (uint8_t)t;
}

static bool
is_v4(unsigned k)
{
	return k < N_PEERS / 2;
}

static void
peer_of(unsigned k, struct trk_peer *p)
{
	memset(p->ip, 0, sizeof(p->ip));
	if (is_v4(k)) {
		p->ip[10] = p->ip[11] = 0xff;
		p->ip[12] = 10;
	} else {
		p->ip[0] = 0x20;
		p->ip[1] = 0x01;
	}
	p->ip[15] = (uint8_t)(k & 3);
	p->port = (uint16_t)(6881 + (k >> 2 & 1));
}

/* The model peer a compact record names, or -1. */
static int
peer_from_compact(const uint8_t *c, bool v4)
{
	for (unsigned k = 0; k < N_PEERS; k++) {
		struct trk_peer p;

		if (is_v4(k) != v4)
			continue;
		peer_of(k, &p);
		if (memcmp(c, v4 ? p.ip + 12 : p.ip, v4 ? 4 : 16) == 0 &&
		    c[v4 ? 4 : 16] == p.port >> 8 && c[v4 ? 5 : 17] == (p.port & 0xff))
			return (int)k;
	}
	return -1;
}

static void
m_counts(const struct m_torrent *t, struct trk_counts *c, size_t *p4, size_t *p6)
{
	*c = (struct trk_counts){ .completed = t->completed };
	*p4 = *p6 = 0;
	for (unsigned k = 0; k < N_PEERS; k++) {
		if (!t->p[k].here)
			continue;
		if (t->p[k].seeder)
			c->seeders++;
		else
			c->leechers++;
		if (is_v4(k))
			++*p4;
		else
			++*p6;
	}
}

static unsigned
m_torrents(const struct model *m)
{
	unsigned n = 0;

	for (unsigned i = 0; i < N_TORRENTS; i++)
		n += m->t[i].here;
	return n;
}

/* Applies an announce to the model; returns what the store must return. */
static int
m_announce(struct model *m, unsigned ti, unsigned k, bool seeder, enum trk_event ev)
{
	struct m_torrent *t = &m->t[ti];
	struct m_peer *p = &t->p[k];
	struct trk_counts c;
	size_t p4, p6;

	if (!t->here) {
		if (ev == TRK_EV_STOPPED)
			return 0;
		if (m_torrents(m) >= MAX_TORRENTS)
			return -ENOSPC;
		*t = (struct m_torrent){ .here = true };
	}
	if (ev == TRK_EV_STOPPED) {
		p->here = false;
		return 0;
	}
	m_counts(t, &c, &p4, &p6);
	if (!p->here) {
		if (p4 + p6 >= MAX_PEERS)
			return -ENOSPC;
		*p = (struct m_peer){ .here = true };
	}
	p->seeder = seeder;
	p->seen = m->now;
	if (ev == TRK_EV_COMPLETED && !p->completed) {
		p->completed = true;
		t->completed++;
		t->untaken++;
	}
	return 0;
}

static size_t
m_expire(struct model *m, uint32_t timeout)
{
	uint32_t max_age = (timeout + 3) >> 2;
	size_t dropped = 0;

	for (unsigned i = 0; i < N_TORRENTS; i++) {
		struct m_torrent *t = &m->t[i];
		bool any = false;

		if (!t->here)
			continue;
		for (unsigned k = 0; k < N_PEERS; k++) {
			if (!t->p[k].here)
				continue;
			if ((m->now >> 2) - (t->p[k].seen >> 2) > max_age) {
				t->p[k].here = false;
				dropped++;
			} else {
				any = true;
			}
		}
		if (!any && !t->untaken)
			t->here = false;
	}
	return dropped;
}

/* Checks the peers handed to requester k of torrent t; lim4 / lim6 are how
 * many whole peers the buffers hold (0 for no buffer). */
static void
check_choice(const struct m_torrent *t, unsigned k, bool seeder, unsigned numwant, size_t lim4,
	     size_t lim6, const uint8_t *out4, size_t n4, const uint8_t *out6, size_t n6)
{
	size_t elig[2] = { 0, 0 }, n[2] = { n4, n6 }, lim[2] = { lim4, lim6 }, want = numwant;
	bool seen[N_PEERS] = { false };
	unsigned own = is_v4(k) ? 0 : 1;

	for (unsigned j = 0; j < N_PEERS; j++)
		if (t->p[j].here && j != k && !(seeder && t->p[j].seeder))
			elig[is_v4(j) ? 0 : 1]++;
	/* Own family first, then the other one with what numwant leaves. */
	for (unsigned g = own, pass = 0; pass < 2; pass++, g ^= 1) {
		size_t expect = want < elig[g] ? want : elig[g];

		if (expect > lim[g])
			expect = lim[g];
		if (n[g] != expect)
			abort();
		want -= n[g];
	}
	for (unsigned g = 0; g < 2; g++)
		for (size_t i = 0; i < n[g]; i++) {
			int j = peer_from_compact(g == 0 ? out4 + i * 6 : out6 + i * 18, g == 0);

			if (j < 0 || (unsigned)j == k || seen[j] || !t->p[j].here ||
			    (seeder && t->p[j].seeder))
				abort();
			seen[j] = true;
		}
}

struct fe_arg {
	const struct model *m;
	size_t torrents;
};

static void
fe_cb(const uint8_t info_hash[TRK_HASH_LEN], const struct trk_counts *c, size_t peers4,
      size_t peers6, void *arg)
{
	struct fe_arg *fa = arg;
	unsigned ti = info_hash[19];
	struct trk_counts mc;
	size_t p4, p6;

	if (ti >= N_TORRENTS || !fa->m->t[ti].here)
		abort();
	m_counts(&fa->m->t[ti], &mc, &p4, &p6);
	if (memcmp(&mc, c, sizeof(mc)) != 0 || p4 != peers4 || p6 != peers6)
		abort();
	fa->torrents++;
}

static void
check_all(struct trk_store *s, const struct model *m)
{
	struct trk_store_stats st;
	struct fe_arg fa = { m, 0 };
	size_t torrents = 0, p4 = 0, p6 = 0, seeders = 0, leechers = 0;

	for (unsigned i = 0; i < N_TORRENTS; i++) {
		struct trk_counts c;
		size_t a4, a6;

		if (!m->t[i].here)
			continue;
		m_counts(&m->t[i], &c, &a4, &a6);
		torrents++;
		p4 += a4;
		p6 += a6;
		seeders += c.seeders;
		leechers += c.leechers;
	}
	trk_store_stats(s, &st);
	if (st.torrents != torrents || st.peers4 != p4 || st.peers6 != p6 ||
	    st.seeders != seeders || st.leechers != leechers || st.bytes == 0)
		abort();
	trk_store_foreach(s, fe_cb, &fa);
	if (fa.torrents != torrents)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct trk_store *s = trk_store_new(1, MAX_TORRENTS, MAX_PEERS);
	static struct model m;

	if (!s)
		abort();
	memset(&m, 0, sizeof(m));
	m.now = 1000;
	for (size_t at = 0; at + 4 <= size; at += 4) {
		const uint8_t *op = data + at;
		unsigned ti = op[1] % N_TORRENTS;
		uint8_t h[TRK_HASH_LEN];
		struct trk_counts c, mc;

		hash_of(ti, h);
		switch (op[0] % 4) {
		case 0:
		case 1: {
			unsigned k = op[2] % N_PEERS, numwant = op[3] % 16;
			bool seeder = op[1] & 0x80, with6 = op[0] & 0x80;
			enum trk_event ev = (enum trk_event)(op[2] >> 4 & 3);
			struct trk_announce a = {
				.seeder = seeder, .event = ev, .numwant = numwant, .now = m.now
			};
			uint8_t out4[6 * 16], out6[18 * 16];
			size_t n4 = 0, n6 = 0, p4, p6;
			/* Small caps sometimes, to cut the choice short. */
			size_t cap4 = op[0] & 0x40 ? 6 * 2 + 3 : sizeof(out4);
			size_t cap6 = op[0] & 0x40 ? 18 * 2 + 3 : sizeof(out6);
			/* Without with6 a peer passes only its own family's buffer. */
			uint8_t *buf4 = is_v4(k) || with6 ? out4 : NULL;
			uint8_t *buf6 = !is_v4(k) || with6 ? out6 : NULL;
			int want_err, err;

			memcpy(a.info_hash, h, TRK_HASH_LEN);
			peer_of(k, &a.peer);
			want_err = m_announce(&m, ti, k, seeder, ev);
			err = trk_store_announce(s, &a, buf4, cap4, buf6, cap6, &n4, &n6, &c);
			if (err != want_err)
				abort();
			if (err < 0)
				break;
			if (m.t[ti].here)
				m_counts(&m.t[ti], &mc, &p4, &p6);
			else
				mc = (struct trk_counts){ 0 };
			if (memcmp(&mc, &c, sizeof(c)) != 0)
				abort();
			if (ev == TRK_EV_STOPPED) {
				if (n4 + n6 != 0)
					abort();
				break;
			}
			check_choice(&m.t[ti], k, seeder, numwant, buf4 ? cap4 / 6 : 0,
				     buf6 ? cap6 / 18 : 0, out4, n4, out6, n6);
			break;
		}
		case 2: {
			int err = trk_store_scrape(s, h, &c);
			size_t p4, p6;

			if (!m.t[ti].here) {
				if (err != -ENOENT)
					abort();
				break;
			}
			m_counts(&m.t[ti], &mc, &p4, &p6);
			if (err != 0 || memcmp(&mc, &c, sizeof(c)) != 0)
				abort();
			break;
		}
		default: {
			uint32_t timeout = (uint32_t)op[2] * 4;

			if (m.now + op[3] < TIME_LIMIT)
				m.now += op[3];
			if (op[1] & 1) {
				size_t want = m_expire(&m, timeout);

				if (trk_store_expire(s, m.now, timeout) != want)
					abort();
			}
			break;
		}
		}
		check_all(s, &m);
	}
	trk_store_free(s);
	return 0;
}
