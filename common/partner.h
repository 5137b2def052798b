/* SPDX-License-Identifier: MIT */
/* Member and partner lists of a live-channel peer (seed 001 §3.1.2–3.1.4), and partner frames. */
#ifndef P2PCDN_PARTNER_H
#define P2PCDN_PARTNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Pure logic shared by the reference peer (tests/peer/) and anything else
 * that keeps partners: no I/O, no locks, no allocation; randomness from a
 * caller-held xorshift64 state (sched_rand) so tests are repeatable.
 *
 * Seed 001 §3.1.2: a peer keeps a member list (hosts it knows, no
 * connection) of about 3·log N entries and a partner list (connected
 * members) of about log N, N being the domain's swarm size. Partners are
 * chosen among members by PeerID proximity (country, nettype, region,
 * city, area: peerid_proximity), closest first, at random among equals.
 * §3.1.4: a connect request is accepted while the partner count is below
 * Limit = BW/S − 1 (formula 2); partners are scored by
 * PW = ((1 − p)·upload + p·download) / durTime (formula 3) and the worst
 * k·curNo of them are replaced periodically, 0 < k < 1/2. log is the
 * natural logarithm, as the index-server's ViewNum (formula 1).
 */

#define PARTNER_MAX 64 /* hard cap on partners of one peer */

/* Formula 2: floor(bw / rate) − 1, both in the same unit (kbit/s); 0 when
 * bw < 2·rate. rate 0 (unknown) gives PARTNER_MAX. Never above PARTNER_MAX. */
unsigned partner_limit(unsigned long long bw, unsigned long long rate);

/* The member list size 3·log N (rounded up), at least lo. */
unsigned partner_members_target(long long n, unsigned lo);

/* The partner count log N (rounded up), at least 1, at most limit (which
 * wins when smaller: limit 0 = no partners). */
unsigned partner_count_target(long long n, unsigned limit);

/* Formula 3. up, down: chunks (the seed's "packets") sent to and received
 * from the partner; dur_ms: how long it has been a partner (values below
 * 1000 count as 1 s, so a fresh partner is not scored on a sliver of time).
 * p in [0, 1] (clamped). Per second. */
double partner_weight(unsigned long long up, unsigned long long down, long long dur_ms, double p);

/* How many partners one replacement round drops: floor(k · cur), k clamped
 * to [0, 0.5) (the seed's 0 < k < 1/2). */
unsigned partner_replace_count(unsigned cur, double k);

/* One partner as the scorer sees it. */
struct partner_score {
	unsigned long long up, down;
	long long since_ms; /* when it became a partner */
	bool keep;          /* never picked for replacement (e.g. a cache) */
};

/* Picks the `count` partners with the lowest PW at now_ms (ties: the
 * younger one first, then the lower index), skipping `keep` ones. Writes
 * their indices to out (lowest PW first) and returns how many (<= count,
 * <= n). n <= PARTNER_MAX. */
size_t partner_worst(const struct partner_score *s, size_t n, double p, long long now_ms,
		     size_t count, size_t *out);

/* A member that could become a partner. */
struct partner_cand {
	uint64_t pid;
	bool skip; /* already a partner, refused us lately, ...: never chosen */
};

/* Chooses up to want candidates not marked skip and not equal to self,
 * closest PeerID first (peerid_proximity to self, descending), at random
 * among equals (rng: xorshift64 state, see sched_rand). Writes indices to
 * out (closest first) and returns how many. n <= 4096. */
size_t partner_choose(uint64_t self, const struct partner_cand *c, size_t n, size_t want,
		      uint64_t *rng, size_t *out);

/* Seed §3.1.4: whether a connect request is accepted with cur partners. */
static inline bool
partner_accept(unsigned cur, unsigned limit)
{
	return cur < limit;
}

/* Which members to drop when the list is over target: indices of the
 * farthest ones (lowest proximity to self, the oldest `seen_ms` among
 * equals), `n - target` of them, written to out. Returns how many. */
struct partner_member {
	uint64_t pid;
	long long seen_ms;
};
size_t partner_trim(uint64_t self, const struct partner_member *m, size_t n, size_t target,
		    size_t *out);

/*
 * Partner frames: how two partners talk over a relay mailbox (seed 000
 * §4.4.4), where there is no HTTP between them. One relay message carries
 * one frame:
 *   request  "Q <id> <path>\n"              path: the HTTP path a direct
 *                                             partner would GET
 *   answer   "A <id> <status>\n<body bytes>"
 * id: decimal 0..4294967295 chosen by the asker; path: 1..512 bytes of
 * printable ASCII (0x21..0x7e) starting with '/'; status 100..599.
 */
#define PARTNER_PATH_MAX 512

struct partner_frame {
	char kind; /* 'Q' or 'A' */
	uint32_t id;
	unsigned status;  /* 'A' only */
	const char *path; /* 'Q' only: points into the input, not NUL-terminated */
	size_t path_len;
	const void *body; /* 'A' only: points into the input */
	size_t body_len;
};

/* Parses one frame of len bytes (never reads past it). Returns 0 with *ret
 * filled, or -EINVAL. */
int partner_frame_parse(const void *buf, size_t len, struct partner_frame *ret);

/* Writes the header of a frame ("Q id path\n" or "A id status\n") into
 * out; the caller appends the body of an answer. Returns the header length,
 * or -EINVAL (bad kind, path or status) / -ENOBUFS. */
int partner_frame_header(char kind, uint32_t id, unsigned status, const char *path, size_t path_len,
			 char *out, size_t size);

#endif
