/* SPDX-License-Identifier: MIT */
/* Unit tests for trk_udp: BEP 15 over real loopback datagrams (v4 and v6), and the parser. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "../../tracker/trk.h"

/* Every receive is bounded so a lost reply fails the test instead of hanging it. */
#define WAIT_MS    3000
#define SILENCE_MS 300 /* how long "no reply" is waited for */

struct fixture {
	struct trk_env env;
	int port4, port6;
};

/* ---- helpers ---- */

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void
put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A client socket on the loopback of the family, with its own source port. */
static int
client_new(int family)
{
	int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	if (family == AF_INET) {
		struct sockaddr_in sa = { .sin_family = AF_INET };

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	} else {
		struct sockaddr_in6 sa = { .sin6_family = AF_INET6,
					   .sin6_addr = IN6ADDR_LOOPBACK_INIT };

		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	}
	return fd;
}

static int
client_family(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
	return ss.ss_family;
}

/* Sends req to the tracker and waits up to ms for a reply. Returns its
 * length, or -1 when nothing came. */
static int
xfer_wait(struct fixture *f, int fd, const uint8_t *req, size_t len, uint8_t *resp, size_t cap,
	  int ms)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (client_family(fd) == AF_INET) {
		struct sockaddr_in *sa = (struct sockaddr_in *)&ss;

		sa->sin_family = AF_INET;
		sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sa->sin_port = htons((uint16_t)f->port4);
		sl = sizeof(*sa);
	} else {
		struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&ss;

		sa->sin6_family = AF_INET6;
		sa->sin6_addr = in6addr_loopback;
		sa->sin6_port = htons((uint16_t)f->port6);
		sl = sizeof(*sa);
	}
	assert_int_equal(sendto(fd, req, len, 0, (struct sockaddr *)&ss, sl), (ssize_t)len);
	if (poll(&pfd, 1, ms) != 1)
		return -1;
	n = recv(fd, resp, cap, 0);
	assert_true(n >= 0);
	return (int)n;
}

static int
xfer(struct fixture *f, int fd, const uint8_t *req, size_t len, uint8_t *resp, size_t cap)
{
	return xfer_wait(f, fd, req, len, resp, cap, WAIT_MS);
}

/* Connects and returns the connection id in cid. */
static void
do_connect(struct fixture *f, int fd, uint8_t cid[8])
{
	uint8_t req[16], resp[64];
	int n;

	put64(req, 0x41727101980ULL);
	put32(req + 8, 0);
	put32(req + 12, 0xabcd1234);
	n = xfer(f, fd, req, sizeof(req), resp, sizeof(resp));
	assert_int_equal(n, 16);
	assert_int_equal(get32(resp), 0);
	assert_int_equal(get32(resp + 4), 0xabcd1234);
	memcpy(cid, resp + 8, 8);
}

struct ann {
	uint8_t hash[TRK_HASH_LEN];
	uint64_t left;
	uint32_t event;
	int32_t numwant;
	uint16_t port;
	const uint8_t *opts; /* BEP 41 bytes appended, or NULL */
	size_t optlen;
};

static size_t
build_announce(uint8_t *req, const uint8_t cid[8], const struct ann *a, uint32_t tid)
{
	memset(req, 0, 98);
	memcpy(req, cid, 8);
	put32(req + 8, 1);
	put32(req + 12, tid);
	memcpy(req + 16, a->hash, TRK_HASH_LEN);
	memcpy(req + 36, "-XX0001-abcdefghijkl", 20);
	put64(req + 64, a->left);
	put32(req + 80, a->event);
	put32(req + 92, (uint32_t)a->numwant);
	req[96] = (uint8_t)(a->port >> 8);
	req[97] = (uint8_t)a->port;
	if (a->opts)
		memcpy(req + 98, a->opts, a->optlen);
	return 98 + (a->opts ? a->optlen : 0);
}

/* Announces and checks the reply is an announce reply; returns its length. */
static int
do_announce(struct fixture *f, int fd, const uint8_t cid[8], const struct ann *a, uint8_t *resp,
	    size_t cap)
{
	uint8_t req[512];
	size_t len = build_announce(req, cid, a, 77);
	int n = xfer(f, fd, req, len, resp, cap);

	assert_true(n >= 20);
	assert_int_equal(get32(resp), 1);
	assert_int_equal(get32(resp + 4), 77);
	assert_true(get32(resp + 8) >= 1620 && get32(resp + 8) <= 1980); /* 1800 ± 10 % */
	return n;
}

/* True when the v4 peer list of an announce reply has ip:port. */
static bool
has_peer4ip(const uint8_t *resp, int n, const char *ip, uint16_t port)
{
	for (int i = 20; i + 6 <= n; i += 6)
		if (memcmp(resp + i, ip, 4) == 0 && (resp[i + 4] << 8 | resp[i + 5]) == port)
			return true;
	return false;
}

static bool
has_peer4(const uint8_t *resp, int n, uint16_t port)
{
	return has_peer4ip(resp, n, "\x7f\0\0\x01", port);
}

static void
hash_of(uint8_t h[TRK_HASH_LEN], int k)
{
	memset(h, 0, TRK_HASH_LEN);
	h[0] = (uint8_t)k;
	h[19] = 0x5a;
}

/* Expects an error reply with exactly this message. */
static void
expect_error(const uint8_t *resp, int n, uint32_t tid, const char *msg)
{
	assert_true(n >= 8);
	assert_int_equal(get32(resp), 3);
	assert_int_equal(get32(resp + 4), tid);
	assert_int_equal((size_t)n - 8, strlen(msg));
	assert_memory_equal(resp + 8, msg, strlen(msg));
}

/* ---- fixture ---- */

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256] = "";
	int r;

	assert_non_null(f);
	assert_true(sodium_init() >= 0);
	f->env.loop = evl_new();
	assert_non_null(f->env.loop);
	f->env.store = trk_store_new(4, 1000, 1000);
	assert_non_null(f->env.store);
	pthread_mutex_init(&f->env.lock, NULL);
	pthread_rwlock_init(&f->env.wl_lock, NULL);
	atomic_store(&f->env.interval_s, 1800);
	atomic_store(&f->env.min_interval_s, 900);
	atomic_store(&f->env.numwant_default, 50);
	atomic_store(&f->env.numwant_max, 1000);
	atomic_store(&f->env.peer_timeout_s, 3600);
	randombytes_buf(f->env.udp_secret, sizeof(f->env.udp_secret));
	r = trk_udp_start(&f->env, "127.0.0.1:0, [::1]:0", err, sizeof(err));
	if (r != 0)
		fail_msg("trk_udp_start: %d %s", r, err);
	f->port4 = trk_udp_port(&f->env, 0);
	f->port6 = trk_udp_port(&f->env, 1);
	assert_true(f->port4 > 0);
	assert_true(f->port6 > 0);
	assert_int_equal(trk_udp_port(&f->env, 2), -ENOENT);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	trk_udp_stop(&f->env);
	assert_null(f->env.udp);
	trk_udp_stop(&f->env); /* NULL-safe once stopped */
	evl_free(f->env.loop);
	trk_store_free(f->env.store);
	pthread_mutex_destroy(&f->env.lock);
	pthread_rwlock_destroy(&f->env.wl_lock);
	free(f);
	return 0;
}

/* ---- over the wire ---- */

/* Peers see each other, never themselves; counts follow; stopped removes. */
static void
test_swarm_v4(void **state)
{
	struct fixture *f = *state;
	int fd[3];
	uint8_t cid[3][8], resp[2048];
	struct ann a[3];
	int n;

	for (int i = 0; i < 3; i++) {
		fd[i] = client_new(AF_INET);
		do_connect(f, fd[i], cid[i]);
		memset(&a[i], 0, sizeof(a[i]));
		hash_of(a[i].hash, 1);
		a[i].port = (uint16_t)(6881 + i);
		a[i].numwant = -1;
		a[i].left = i == 0 ? 0 : 1000; /* peer 0 seeds */
		a[i].event = TRK_EV_STARTED;
		n = do_announce(f, fd[i], cid[i], &a[i], resp, sizeof(resp));
		assert_false(has_peer4(resp, n, a[i].port));
		assert_int_equal((n - 20) % 6, 0);
		assert_int_equal(n - 20, 6 * i); /* everyone before it */
	}

	a[0].event = TRK_EV_NONE;
	n = do_announce(f, fd[0], cid[0], &a[0], resp, sizeof(resp));
	assert_int_equal(n, 20 + 2 * 6);
	assert_int_equal(get32(resp + 12), 2); /* leechers */
	assert_int_equal(get32(resp + 16), 1); /* seeders */
	assert_true(has_peer4(resp, n, 6882));
	assert_true(has_peer4(resp, n, 6883));
	assert_false(has_peer4(resp, n, 6881));

	/* Peer 2 leaves: nobody sees it any more. */
	a[2].event = TRK_EV_STOPPED;
	n = do_announce(f, fd[2], cid[2], &a[2], resp, sizeof(resp));
	assert_int_equal(n, 20); /* a leaving peer gets no peers */
	n = do_announce(f, fd[0], cid[0], &a[0], resp, sizeof(resp));
	assert_int_equal(n, 20 + 6);
	assert_true(has_peer4(resp, n, 6882));
	assert_int_equal(get32(resp + 12), 1);
	assert_int_equal(get32(resp + 16), 1);

	/* numwant 0 asks for counts only. */
	a[1].event = TRK_EV_NONE;
	a[1].numwant = 0;
	n = do_announce(f, fd[1], cid[1], &a[1], resp, sizeof(resp));
	assert_int_equal(n, 20);

	for (int i = 0; i < 3; i++)
		close(fd[i]);
}

static void
test_scrape(void **state)
{
	struct fixture *f = *state;
	int fd = client_new(AF_INET), fd2 = client_new(AF_INET);
	uint8_t cid[8], cid2[8], req[16 + 80 * TRK_HASH_LEN], resp[2048];
	struct ann a = { .numwant = -1, .port = 7000, .left = 5, .event = TRK_EV_STARTED };
	int n;

	do_connect(f, fd, cid);
	do_connect(f, fd2, cid2);
	hash_of(a.hash, 2);
	do_announce(f, fd, cid, &a, resp, sizeof(resp));
	a.port = 7001;
	a.left = 0;
	a.event = TRK_EV_COMPLETED;
	do_announce(f, fd2, cid2, &a, resp, sizeof(resp));

	/* The known hash, then one nobody announced. */
	memcpy(req, cid, 8);
	put32(req + 8, 2);
	put32(req + 12, 99);
	hash_of(req + 16, 2);
	hash_of(req + 36, 3);
	n = xfer(f, fd, req, 56, resp, sizeof(resp));
	assert_int_equal(n, 8 + 2 * 12);
	assert_int_equal(get32(resp), 2);
	assert_int_equal(get32(resp + 4), 99);
	assert_int_equal(get32(resp + 8), 1);  /* seeders */
	assert_int_equal(get32(resp + 12), 1); /* completed */
	assert_int_equal(get32(resp + 16), 1); /* leechers */
	assert_int_equal(get32(resp + 20), 0);
	assert_int_equal(get32(resp + 24), 0);
	assert_int_equal(get32(resp + 28), 0);

	/* More than 74 hashes: the first 74 are answered. */
	for (int i = 0; i < 80; i++)
		hash_of(req + 16 + i * TRK_HASH_LEN, 100 + i);
	n = xfer(f, fd, req, sizeof(req), resp, sizeof(resp));
	assert_int_equal(n, 8 + 74 * 12);

	/* No whole hash: too short. */
	n = xfer(f, fd, req, 16 + 19, resp, sizeof(resp));
	expect_error(resp, n, 99, "packet too short");
	close(fd);
	close(fd2);
}

static void
test_bad_requests(void **state)
{
	struct fixture *f = *state;
	int fd = client_new(AF_INET);
	uint8_t cid[8], req[128], resp[2048];
	struct ann a = { .numwant = -1, .port = 7100, .left = 1 };
	int n;

	do_connect(f, fd, cid);
	hash_of(a.hash, 4);

	/* A forged or stale id. */
	uint8_t bad[8];
	memcpy(bad, cid, 8);
	bad[7] ^= 1;
	build_announce(req, bad, &a, 5);
	n = xfer(f, fd, req, 98, resp, sizeof(resp));
	expect_error(resp, n, 5, "bad connection id");

	/* Another client (same IP, other port) cannot use our id. */
	int other = client_new(AF_INET);
	build_announce(req, cid, &a, 6);
	n = xfer(f, other, req, 98, resp, sizeof(resp));
	expect_error(resp, n, 6, "bad connection id");
	close(other);

	/* Under 16 bytes: silence, whatever it holds. */
	for (size_t len = 0; len < 16; len++) {
		memset(req, 0xee, sizeof(req));
		n = xfer_wait(f, fd, req, len, resp, sizeof(resp), len == 15 ? SILENCE_MS : 20);
		assert_int_equal(n, -1);
	}

	/* Connect without the protocol id. */
	put64(req, 0x1234);
	put32(req + 8, 0);
	put32(req + 12, 7);
	n = xfer(f, fd, req, 16, resp, sizeof(resp));
	expect_error(resp, n, 7, "unknown protocol id");

	/* Unknown action, and a client sending "error", with a valid id. */
	memcpy(req, cid, 8);
	put32(req + 8, 9);
	put32(req + 12, 8);
	n = xfer(f, fd, req, 16, resp, sizeof(resp));
	expect_error(resp, n, 8, "unknown action");
	put32(req + 8, 3);
	n = xfer(f, fd, req, 40, resp, sizeof(resp));
	expect_error(resp, n, 8, "unknown action");

	/* Short announce. */
	build_announce(req, cid, &a, 9);
	n = xfer(f, fd, req, 97, resp, sizeof(resp));
	expect_error(resp, n, 9, "packet too short");

	/* Port 0 cannot be a peer. */
	a.port = 0;
	build_announce(req, cid, &a, 10);
	n = xfer(f, fd, req, 98, resp, sizeof(resp));
	expect_error(resp, n, 10, "invalid port");

	/* Garbage of every length up to 128 never crashes and never gets
	 * more than a short error back. */
	for (size_t len = 16; len <= sizeof(req); len++) {
		randombytes_buf(req, len);
		put32(req + 8, (uint32_t)(len % 5));
		n = xfer_wait(f, fd, req, len, resp, sizeof(resp), 200);
		assert_true(n <= 32);
		if (n > 0)
			assert_int_equal(get32(resp), 3);
	}

	/* Still serving. */
	do_connect(f, fd, cid);
	close(fd);
}

/* BEP 41: options after the announce are walked and ignored, even broken ones. */
static void
test_bep41_options(void **state)
{
	struct fixture *f = *state;
	int fd = client_new(AF_INET);
	uint8_t cid[8], resp[2048];
	static const uint8_t good[] = { 1, 2, 5,   '/', 'a', 'n', 'n', 'o', 1,
					2, 3, '?', 'x', '=', 7,   9,   0 };
	static const uint8_t runs_over[] = { 2, 200, '/', 'x' };
	static const uint8_t lone_type[] = { 1, 1, 5 };
	struct ann a = { .numwant = -1, .port = 7200, .left = 1, .event = TRK_EV_STARTED };

	do_connect(f, fd, cid);
	hash_of(a.hash, 5);
	a.opts = good;
	a.optlen = sizeof(good);
	do_announce(f, fd, cid, &a, resp, sizeof(resp));
	a.opts = runs_over;
	a.optlen = sizeof(runs_over);
	do_announce(f, fd, cid, &a, resp, sizeof(resp));
	a.opts = lone_type;
	a.optlen = sizeof(lone_type);
	int n = do_announce(f, fd, cid, &a, resp, sizeof(resp));
	assert_int_equal(get32(resp + 12), 1);
	assert_int_equal(n, 20);
	close(fd);
}

/* IPv6 clients get 18-byte peers of their own family only. */
static void
test_swarm_v6(void **state)
{
	struct fixture *f = *state;
	int fd6a = client_new(AF_INET6), fd6b = client_new(AF_INET6), fd4 = client_new(AF_INET);
	uint8_t cida[8], cidb[8], cid4[8], resp[2048];
	struct ann a = { .numwant = -1, .left = 1, .event = TRK_EV_STARTED };
	int n;

	do_connect(f, fd6a, cida);
	do_connect(f, fd6b, cidb);
	do_connect(f, fd4, cid4);
	hash_of(a.hash, 6);
	a.port = 7300;
	do_announce(f, fd6a, cida, &a, resp, sizeof(resp));
	a.port = 7301;
	do_announce(f, fd4, cid4, &a, resp, sizeof(resp));
	a.port = 7302;
	n = do_announce(f, fd6b, cidb, &a, resp, sizeof(resp));
	assert_int_equal(n, 20 + 18);
	assert_memory_equal(resp + 20, &in6addr_loopback, 16);
	assert_int_equal(resp[36] << 8 | resp[37], 7300);
	assert_int_equal(get32(resp + 12), 3); /* counts cover both families */

	/* The v4 client sees only the v4 world (nobody else there). */
	a.port = 7301;
	a.event = TRK_EV_NONE;
	n = do_announce(f, fd4, cid4, &a, resp, sizeof(resp));
	assert_int_equal(n, 20);

	/* A v6 id is bound to the v6 address: useless from v4. */
	uint8_t req[128];
	build_announce(req, cida, &a, 11);
	n = xfer(f, fd4, req, 98, resp, sizeof(resp));
	expect_error(resp, n, 11, "bad connection id");
	close(fd6a);
	close(fd6b);
	close(fd4);
}

/* However many peers are asked for, the reply fits one datagram. */
static void
test_reply_cap(void **state)
{
	struct fixture *f = *state;
	int fd4 = client_new(AF_INET), fd6 = client_new(AF_INET6);
	uint8_t cid4[8], cid6[8], resp[4096], out[64];
	struct ann a = { .numwant = 1000, .left = 1, .port = 7400 };
	struct trk_announce in = { .seeder = true, .event = TRK_EV_STARTED };
	struct trk_counts c;
	size_t n4, n6;
	int n;

	hash_of(in.info_hash, 7);
	in.now = trk_store_now();
	/* 300 seeders of each family, straight into the store. */
	for (int i = 0; i < 300; i++) {
		memset(in.peer.ip, 0, 16);
		in.peer.ip[10] = in.peer.ip[11] = 0xff;
		in.peer.ip[12] = 10;
		in.peer.ip[14] = (uint8_t)(i >> 8);
		in.peer.ip[15] = (uint8_t)i;
		in.peer.port = 1000;
		assert_int_equal(
			trk_store_announce(f->env.store, &in, out, 0, NULL, 0, &n4, &n6, &c), 0);
		in.peer.ip[0] = 0x20;
		in.peer.ip[1] = 0x01;
		in.peer.ip[10] = in.peer.ip[11] = 0;
		assert_int_equal(
			trk_store_announce(f->env.store, &in, NULL, 0, out, 0, &n4, &n6, &c), 0);
	}
	memcpy(a.hash, in.info_hash, TRK_HASH_LEN);
	do_connect(f, fd4, cid4);
	do_connect(f, fd6, cid6);
	n = do_announce(f, fd4, cid4, &a, resp, sizeof(resp));
	assert_true(n <= 1452);
	assert_int_equal(n, 20 + 6 * ((1452 - 20) / 6));
	assert_int_equal(get32(resp + 16), 600);
	n = do_announce(f, fd6, cid6, &a, resp, sizeof(resp));
	assert_true(n <= 1232);
	assert_int_equal(n, 20 + 18 * ((1232 - 20) / 18));
	/* An IPv6 client announcing an IPv4 address gets IPv4 peers, still in
	 * a datagram an IPv6 path carries. */
	uint8_t req[128];
	atomic_store(&f->env.allow_ip_param, true);
	a.port = 7401;
	build_announce(req, cid6, &a, 16);
	memcpy(req + 84, "\xc6\x33\x64\x08", 4); /* 198.51.100.8 */
	n = xfer(f, fd6, req, 98, resp, sizeof(resp));
	atomic_store(&f->env.allow_ip_param, false);
	assert_int_equal(n, 20 + 6 * ((1232 - 20) / 6));
	close(fd4);
	close(fd6);
}

/* Ids live at least two minutes and not past three. */
static void
test_id_expiry(void **state)
{
	struct fixture *f = *state;
	int fd = client_new(AF_INET);
	uint8_t cid[8], req[128], resp[256];
	struct ann a = { .numwant = -1, .left = 1, .port = 7500 };
	int n;

	hash_of(a.hash, 8);
	do_connect(f, fd, cid);
	trk_udp_test_skew(120);
	do_announce(f, fd, cid, &a, resp, sizeof(resp));
	trk_udp_test_skew(61);
	build_announce(req, cid, &a, 12);
	n = xfer(f, fd, req, 98, resp, sizeof(resp));
	expect_error(resp, n, 12, "bad connection id");
	/* A new id works at once. */
	do_connect(f, fd, cid);
	do_announce(f, fd, cid, &a, resp, sizeof(resp));
	trk_udp_test_skew(-181);
	close(fd);
}

/* Whitelist mode: unregistered hashes are refused for announce and scrape. */
static void
test_whitelist(void **state)
{
	struct fixture *f = *state;
	int fd = client_new(AF_INET);
	uint8_t cid[8], req[128], resp[256], ok_hash[1][TRK_HASH_LEN];
	struct trk_whitelist wl = { .v = ok_hash, .n = 1 };
	struct ann a = { .numwant = -1, .left = 1, .port = 7600 };
	int n;

	hash_of(ok_hash[0], 9);
	f->env.wl = &wl; /* no refresh runs in this test */
	atomic_store(&f->env.whitelist_mode, true);
	do_connect(f, fd, cid);

	hash_of(a.hash, 10);
	build_announce(req, cid, &a, 13);
	n = xfer(f, fd, req, 98, resp, sizeof(resp));
	expect_error(resp, n, 13, "torrent not registered");
	hash_of(a.hash, 9);
	do_announce(f, fd, cid, &a, resp, sizeof(resp));

	memcpy(req, cid, 8);
	put32(req + 8, 2);
	put32(req + 12, 14);
	hash_of(req + 16, 9);
	n = xfer(f, fd, req, 36, resp, sizeof(resp));
	assert_int_equal(n, 20);
	hash_of(req + 36, 10);
	n = xfer(f, fd, req, 56, resp, sizeof(resp));
	expect_error(resp, n, 14, "torrent not registered");

	atomic_store(&f->env.whitelist_mode, false);
	f->env.wl = NULL;
	close(fd);
}

/* The IP field counts only when the operator allows it. */
static void
test_ip_param(void **state)
{
	struct fixture *f = *state;
	int fd = client_new(AF_INET), fd2 = client_new(AF_INET);
	uint8_t cid[8], cid2[8], req[128], resp[256];
	struct ann a = { .numwant = -1, .left = 1, .port = 7700, .event = TRK_EV_STARTED };
	int n;

	hash_of(a.hash, 11);
	do_connect(f, fd, cid);
	do_connect(f, fd2, cid2);
	build_announce(req, cid, &a, 15);
	memcpy(req + 84, "\xc6\x33\x64\x07", 4); /* 198.51.100.7 */
	n = xfer(f, fd, req, 98, resp, sizeof(resp));
	assert_int_equal(n, 20);
	atomic_store(&f->env.allow_ip_param, true);
	n = xfer(f, fd, req, 98, resp, sizeof(resp));
	assert_int_equal(n, 20 + 6); /* sees its own loopback record */
	atomic_store(&f->env.allow_ip_param, false);

	a.port = 7701;
	n = do_announce(f, fd2, cid2, &a, resp, sizeof(resp));
	assert_int_equal(n, 20 + 12);
	assert_true(has_peer4(resp, n, 7700));
	assert_true(has_peer4ip(resp, n, "\xc6\x33\x64\x07", 7700));
	close(fd);
	close(fd2);
}

/* ---- start/stop without traffic ---- */

static void
test_start_errors(void **state)
{
	struct trk_env env = { 0 };
	char err[256];

	(void)state;
	trk_udp_stop(&env); /* NULL-safe */
	assert_int_equal(trk_udp_port(&env, 0), -ENOENT);
	env.loop = evl_new();
	assert_non_null(env.loop);
	assert_int_equal(trk_udp_start(&env, "nonsense", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "nonsense"));
	assert_int_equal(trk_udp_start(&env, "", err, sizeof(err)), -EINVAL);
	assert_int_equal(trk_udp_start(&env, "127.0.0.1", err, sizeof(err)), -EINVAL);
	assert_int_equal(trk_udp_start(&env, "::1:0", err, sizeof(err)), -EINVAL);
	assert_int_equal(trk_udp_start(&env, "127.0.0.1:0,junk", err, sizeof(err)), -EINVAL);
	assert_null(env.udp);
	/* A bind error comes back as itself (192.0.2.1 is not ours). */
	assert_int_equal(trk_udp_start(&env, "127.0.0.1:0,192.0.2.1:0", err, sizeof(err)),
			 -EADDRNOTAVAIL);
	assert_non_null(strstr(err, "192.0.2.1"));
	assert_null(env.udp);
	/* Started twice is refused; stopped, the same port can be taken again. */
	assert_int_equal(trk_udp_start(&env, "127.0.0.1:0", err, sizeof(err)), 0);
	assert_int_equal(trk_udp_start(&env, "127.0.0.1:0", err, sizeof(err)), -EALREADY);
	char listen[64];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", trk_udp_port(&env, 0));
	trk_udp_stop(&env);
	assert_int_equal(trk_udp_start(&env, listen, err, sizeof(err)), 0);
	trk_udp_stop(&env);
	evl_free(env.loop);
}

/* ---- the parser alone ---- */

static void
test_parse(void **state)
{
	uint8_t pkt[16 + 80 * TRK_HASH_LEN] = { 0 };
	struct trk_udp_req r;

	(void)state;
	assert_int_equal(trk_udp_parse(pkt, 15, &r), -ENODATA);
	put64(pkt, 0x41727101980ULL);
	put32(pkt + 12, 42);
	assert_int_equal(trk_udp_parse(pkt, 16, &r), 0);
	assert_int_equal(r.action, TRK_UDP_CONNECT);
	assert_int_equal(r.transaction_id, 42);
	pkt[0] = 1;
	assert_int_equal(trk_udp_parse(pkt, 16, &r), -EPROTO);
	assert_int_equal(r.transaction_id, 42);

	/* Announce fields land where BEP 15 puts them. */
	put32(pkt + 8, 1);
	for (int i = 16; i < 98; i++)
		pkt[i] = (uint8_t)i;
	assert_int_equal(trk_udp_parse(pkt, 97, &r), -EBADMSG);
	assert_int_equal(trk_udp_parse(pkt, 98, &r), 0);
	assert_int_equal(r.info_hash[0], 16);
	assert_int_equal(r.peer_id[19], 55);
	assert_true(r.downloaded == 0x38393a3b3c3d3e3fULL);
	assert_true(r.left == 0x4041424344454647ULL);
	assert_true(r.uploaded == 0x48494a4b4c4d4e4fULL);
	assert_int_equal(r.event, 0x50515253);
	assert_int_equal(r.ip[0], 84);
	assert_int_equal(r.key, 0x58595a5b);
	assert_int_equal(r.numwant, 0x5c5d5e5f);
	assert_int_equal(r.port, 0x6061);
	assert_int_equal(r.url_len, 0);

	/* URLData split over options is concatenated; NOPs skipped; unknown
	 * types skipped by length; EndOfOptions ends the walk. */
	static const uint8_t opts[] = { 1, 2, 3,   '/', 'a', 'b', 9, 1,  'z',
					2, 2, 'c', 'd', 0,   2,   1, 'X' };
	memcpy(pkt + 98, opts, sizeof(opts));
	assert_int_equal(trk_udp_parse(pkt, 98 + sizeof(opts), &r), 0);
	assert_int_equal(r.url_len, 5);
	assert_memory_equal(r.url, "/abcd", 5);
	/* Cut inside an option: the part before counts, nothing is read past. */
	assert_int_equal(trk_udp_parse(pkt, 98 + 4, &r), 0);
	assert_int_equal(r.url_len, 0);
	assert_int_equal(trk_udp_parse(pkt, 98 + 12, &r), 0);
	assert_int_equal(r.url_len, 3);

	/* URLData longer than the buffer: counted whole, kept in part. */
	size_t off = 98;
	for (int i = 0; i < 5; i++) {
		pkt[off] = 2;
		pkt[off + 1] = 255;
		memset(pkt + off + 2, 'a' + i, 255);
		off += 257;
	}
	assert_int_equal(trk_udp_parse(pkt, off, &r), 0);
	assert_int_equal(r.url_len, 5 * 255);
	assert_int_equal(r.url[0], 'a');
	assert_int_equal(r.url[255], 'b');

	/* Scrape: whole hashes only, at most 74. */
	put32(pkt + 8, 2);
	assert_int_equal(trk_udp_parse(pkt, 16 + 19, &r), -EBADMSG);
	assert_int_equal(trk_udp_parse(pkt, 16 + 41, &r), 0);
	assert_int_equal(r.nhashes, 2);
	assert_ptr_equal(r.hashes, pkt + 16);
	assert_int_equal(trk_udp_parse(pkt, sizeof(pkt), &r), 0);
	assert_int_equal(r.nhashes, 74);

	put32(pkt + 8, 3);
	assert_int_equal(trk_udp_parse(pkt, 16, &r), -EOPNOTSUPP);
	put32(pkt + 8, 0xffffffff);
	assert_int_equal(trk_udp_parse(pkt, 16, &r), -EOPNOTSUPP);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_start_errors),
		cmocka_unit_test_setup_teardown(test_swarm_v4, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scrape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bep41_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swarm_v6, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reply_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_id_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_whitelist, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ip_param, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
