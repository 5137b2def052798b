/* SPDX-License-Identifier: MIT */
/* tracker: the UDP tracker protocol (BEP 15, BEP 41 options), served on the loop thread. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "dmn.h"
#include "trk.h"

#define TRK_UDP_PROTOCOL_ID  0x41727101980ULL /* BEP 15 connect magic */
#define TRK_UDP_HEADER_LEN   16               /* connection_id, action, transaction_id */
#define TRK_UDP_ANNOUNCE_LEN 98               /* fixed part of an announce request */

/* Datagrams per recvmmsg/sendmmsg call, and calls per wake-up: bounded so one
 * flooded socket cannot starve the loop's other events (the event is level
 * triggered and fires again at once if more is queued). */
#define TRK_UDP_BATCH  32
#define TRK_UDP_ROUNDS 8

/* Requests above this are cut: the largest useful one is a full scrape,
 * 16 + 74 * 20 = 1496 bytes; longer announces only carry BEP 41 options. */
#define TRK_UDP_RX_SIZE 2048

/* Replies stay within one unfragmented datagram: 1452 fits a 1500-byte MTU
 * with PPPoE and IP options to spare; for IPv6 use 1232, what every IPv6
 * link carries (1280 minus headers), since fragments are often dropped. */
#define TRK_UDP_MAX_REPLY4 1452
#define TRK_UDP_MAX_REPLY6 1232
#define TRK_UDP_TX_SIZE    TRK_UDP_MAX_REPLY4
#define TRK_UDP_ANN_HEADER 20 /* action, transaction_id, interval, leechers, seeders */

/* Asked for, not required: the kernel caps it at net.core.[rw]mem_max. */
#define TRK_UDP_SOCKBUF (8 << 20)

/* Connection ids are dated by bucket; the current one and the two before it
 * are accepted, so an id lives between 2 and 3 minutes: BEP 15 lets a client
 * use one for up to one minute, a server must accept it for two. */
#define TRK_UDP_BUCKET_S 60
#define TRK_UDP_BUCKETS  3

_Static_assert(TRK_UDP_HEADER_LEN + TRK_UDP_MAX_SCRAPE * TRK_HASH_LEN <= TRK_UDP_RX_SIZE,
	       "a full scrape fits the receive buffer");
_Static_assert(8 + 12 * TRK_UDP_MAX_SCRAPE <= TRK_UDP_TX_SIZE, "a full scrape reply fits");

struct trk_udp;

struct trk_udp_sock {
	struct trk_udp *u;
	int fd;
	uint16_t port; /* bound, host order */
	struct event *ev;
};

/* Everything lives on the heap once; the loop thread is the only user of the
 * buffers, so sockets share them. */
struct trk_udp {
	struct trk_env *env;
	struct trk_udp_sock *socks;
	size_t nsocks;
	struct met_child *announces, *scrapes; /* NULL without metrics */

	uint8_t rx[TRK_UDP_BATCH][TRK_UDP_RX_SIZE];
	uint8_t tx[TRK_UDP_BATCH][TRK_UDP_TX_SIZE];
	struct sockaddr_storage from[TRK_UDP_BATCH];
	struct iovec riov[TRK_UDP_BATCH], siov[TRK_UDP_BATCH];
	struct mmsghdr rmsg[TRK_UDP_BATCH], smsg[TRK_UDP_BATCH];
};

static atomic_llong trk_udp_skew;

void
trk_udp_test_skew(long long seconds)
{
	atomic_fetch_add(&trk_udp_skew, seconds);
}

/* ---- byte order, by hand: packets have no alignment ---- */

static uint32_t
trk_udp_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t
trk_udp_get64(const uint8_t *p)
{
	return (uint64_t)trk_udp_get32(p) << 32 | trk_udp_get32(p + 4);
}

static void
trk_udp_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* ---- parsing ---- */

/* BEP 41: after the 98 fixed bytes, a list of options. Types 0
 * (EndOfOptions) and 1 (NOP) are one byte; every other type carries a
 * length byte, so unknown ones can be skipped. */
static void
trk_udp_parse_options(const uint8_t *p, size_t len, struct trk_udp_req *ret)
{
	size_t i = 0;

	while (i < len) {
		uint8_t type = p[i];
		size_t olen;

		if (type == 0)
			return;
		if (type == 1) {
			i++;
			continue;
		}
		if (len - i < 2)
			return;
		olen = p[i + 1];
		if (olen > len - i - 2)
			return; /* runs past the datagram: ignore the rest */
		if (type == 2) {
			/* URLData may be split over several options: concatenate. */
			size_t room =
				sizeof(ret->url) -
				(ret->url_len < sizeof(ret->url) ? ret->url_len : sizeof(ret->url));
			size_t n = olen < room ? olen : room;

			memcpy(ret->url + (sizeof(ret->url) - room), p + i + 2, n);
			ret->url_len += olen;
		}
		i += 2 + olen;
	}
}

int
trk_udp_parse(const uint8_t *pkt, size_t len, struct trk_udp_req *ret)
{
	if (len < TRK_UDP_HEADER_LEN)
		return -ENODATA;
	memset(ret, 0, sizeof(*ret));
	memcpy(ret->connection_id, pkt, 8);
	ret->action = trk_udp_get32(pkt + 8);
	ret->transaction_id = trk_udp_get32(pkt + 12);

	switch (ret->action) {
	case TRK_UDP_CONNECT:
		return trk_udp_get64(pkt) == TRK_UDP_PROTOCOL_ID ? 0 : -EPROTO;
	case TRK_UDP_ANNOUNCE:
		if (len < TRK_UDP_ANNOUNCE_LEN)
			return -EBADMSG;
		memcpy(ret->info_hash, pkt + 16, TRK_HASH_LEN);
		memcpy(ret->peer_id, pkt + 36, 20);
		ret->downloaded = trk_udp_get64(pkt + 56);
		ret->left = trk_udp_get64(pkt + 64);
		ret->uploaded = trk_udp_get64(pkt + 72);
		ret->event = trk_udp_get32(pkt + 80);
		memcpy(ret->ip, pkt + 84, 4);
		ret->key = trk_udp_get32(pkt + 88);
		ret->numwant = (int32_t)trk_udp_get32(pkt + 92);
		ret->port = (uint16_t)(pkt[96] << 8 | pkt[97]);
		trk_udp_parse_options(pkt + TRK_UDP_ANNOUNCE_LEN, len - TRK_UDP_ANNOUNCE_LEN, ret);
		return 0;
	case TRK_UDP_SCRAPE:
		ret->nhashes = (len - TRK_UDP_HEADER_LEN) / TRK_HASH_LEN;
		if (ret->nhashes == 0)
			return -EBADMSG;
		if (ret->nhashes > TRK_UDP_MAX_SCRAPE)
			ret->nhashes = TRK_UDP_MAX_SCRAPE;
		ret->hashes = pkt + TRK_UDP_HEADER_LEN;
		return 0;
	default:
		return -EOPNOTSUPP;
	}
}

/* ---- connection ids ---- */

static uint64_t
trk_udp_bucket(void)
{
	long long now = dmn_now_ms() / 1000 + atomic_load(&trk_udp_skew);

	return now > 0 ? (uint64_t)now / TRK_UDP_BUCKET_S : 0;
}

/*
 * The id is a MAC over the client's address and the time bucket, so the
 * tracker keeps no state per client and a spoofed source cannot learn the
 * id it would need: only the real owner of the address receives the connect
 * reply. That is what keeps announce and scrape from being reflected at a
 * victim with a forged source address.
 */
static void
trk_udp_conn_id(const struct trk_env *env, const struct addr *a, uint64_t bucket, uint8_t id[8])
{
	uint8_t msg[16 + 2 + 8], mac[crypto_auth_hmacsha256_BYTES];

	memcpy(msg, a->ip, 16);
	msg[16] = (uint8_t)(a->port >> 8);
	msg[17] = (uint8_t)a->port;
	trk_udp_put32(msg + 18, (uint32_t)(bucket >> 32));
	trk_udp_put32(msg + 22, (uint32_t)bucket);
	crypto_auth_hmacsha256(mac, msg, sizeof(msg), env->udp_secret);
	memcpy(id, mac, 8);
	sodium_memzero(mac, sizeof(mac));
}

static bool
trk_udp_conn_id_ok(const struct trk_env *env, const struct addr *a, const uint8_t got[8])
{
	uint64_t now = trk_udp_bucket();
	uint8_t want[8];

	for (uint64_t k = 0; k < TRK_UDP_BUCKETS && k <= now; k++) {
		trk_udp_conn_id(env, a, now - k, want);
		if (sodium_memcmp(want, got, sizeof(want)) == 0)
			return true;
	}
	return false;
}

/* ---- requests ---- */

/* An error reply: action 3, the transaction id, the message without NUL.
 * Messages stay short (at most 22 bytes, so 30 on the wire) because an
 * error can go to a forged source; see trk_udp_handle. */
static size_t
trk_udp_error(struct trk_udp *u, const struct trk_udp_req *req, const char *msg, const char *reason,
	      uint8_t *out)
{
	size_t n = strlen(msg);

	trk_count_failure(u->env, TRK_PROTO_UDP, reason);
	trk_udp_put32(out, TRK_UDP_ERROR);
	trk_udp_put32(out + 4, req->transaction_id);
	memcpy(out + 8, msg, n);
	return 8 + n;
}

static size_t
trk_udp_announce(struct trk_udp *u, const struct trk_udp_req *req, const struct addr *src,
		 uint8_t *out)
{
	struct trk_env *env = u->env;
	struct trk_announce a = { .seeder = req->left == 0 };
	struct trk_counts c = { 0 };
	struct addr peer = *src;
	size_t n4 = 0, n6 = 0, cap, maxn;
	unsigned numwant;
	bool v4;
	int r;

	if (!trk_allowed(env, req->info_hash))
		return trk_udp_error(u, req, "torrent not registered", "not_registered", out);
	if (req->port == 0)
		return trk_udp_error(u, req, "invalid port", "bad_port", out);

	/* The IP field lets a client announce someone else's address: only
	 * where the operator allows it (e.g. behind a trusted NAT). */
	if (atomic_load(&env->allow_ip_param) && memcmp(req->ip, "\0\0\0\0", 4) != 0) {
		memset(peer.ip, 0, 10);
		memset(peer.ip + 10, 0xff, 2);
		memcpy(peer.ip + 12, req->ip, 4);
	}
	v4 = addr_is_v4(&peer);

	memcpy(a.info_hash, req->info_hash, TRK_HASH_LEN);
	memcpy(a.peer.ip, peer.ip, 16);
	a.peer.port = req->port;
	a.event = req->event <= TRK_EV_STOPPED ? (enum trk_event)req->event : TRK_EV_NONE;
	numwant = trk_numwant(env, req->numwant < 0 ? -1 : req->numwant);
	/* BEP 15 (IPv6 note): peers are of the announced address's family
	 * (the source's, unless the IP field overrode it), 6 bytes each for
	 * IPv4 and 18 for IPv6; and they must fit the one reply datagram,
	 * whose limit is the transport's: the source's family, which differs
	 * from the peers' when the IP field names an IPv4 address. */
	maxn = ((addr_is_v4(src) ? TRK_UDP_MAX_REPLY4 : TRK_UDP_MAX_REPLY6) - TRK_UDP_ANN_HEADER) /
	       (v4 ? 6 : 18);
	if (numwant > maxn)
		numwant = (unsigned)maxn;
	if (a.event == TRK_EV_STOPPED)
		numwant = 0; /* a leaving peer has no use for others */
	a.numwant = numwant;
	a.now = trk_store_now();
	cap = (size_t)numwant * (v4 ? 6 : 18);

	/* Peers are written straight into the reply buffer behind its header. */
	r = trk_store_announce(env->store, &a, v4 ? out + TRK_UDP_ANN_HEADER : NULL, v4 ? cap : 0,
			       v4 ? NULL : out + TRK_UDP_ANN_HEADER, v4 ? 0 : cap, &n4, &n6, &c);
	if (r == -ENOSPC)
		return trk_udp_error(u, req, "tracker full", "store_full", out);
	if (r < 0)
		return trk_udp_error(u, req, "internal error", "internal", out);
	/* Only the requested family was asked for; never trust more. */
	if (v4) {
		n6 = 0;
		n4 = n4 > numwant ? numwant : n4;
	} else {
		n4 = 0;
		n6 = n6 > numwant ? numwant : n6;
	}

	if (u->announces)
		met_add(u->announces, 1);
	trk_udp_put32(out, TRK_UDP_ANNOUNCE);
	trk_udp_put32(out + 4, req->transaction_id);
	trk_udp_put32(out + 8, trk_interval(env));
	trk_udp_put32(out + 12, c.leechers);
	trk_udp_put32(out + 16, c.seeders);
	return TRK_UDP_ANN_HEADER + n4 * 6 + n6 * 18;
}

static size_t
trk_udp_scrape(struct trk_udp *u, const struct trk_udp_req *req, uint8_t *out)
{
	struct trk_env *env = u->env;

	/* Check them all first. UDP scrape answers are positional, so an
	 * unregistered hash cannot be left out as the HTTP scrape leaves it
	 * out: the whole request fails instead. */
	for (size_t i = 0; i < req->nhashes; i++)
		if (!trk_allowed(env, req->hashes + i * TRK_HASH_LEN))
			return trk_udp_error(u, req, "torrent not registered", "not_registered",
					     out);
	for (size_t i = 0; i < req->nhashes; i++) {
		struct trk_counts c = { 0 };
		uint8_t *p = out + 8 + i * 12;

		if (trk_store_scrape(env->store, req->hashes + i * TRK_HASH_LEN, &c) < 0)
			c = (struct trk_counts){ 0 }; /* unknown torrent: zeros */
		trk_udp_put32(p, c.seeders);
		trk_udp_put32(p + 4, c.completed);
		trk_udp_put32(p + 8, c.leechers);
	}
	if (u->scrapes)
		met_add(u->scrapes, 1);
	trk_udp_put32(out, TRK_UDP_SCRAPE);
	trk_udp_put32(out + 4, req->transaction_id);
	return 8 + req->nhashes * 12;
}

/*
 * One datagram in, at most one reply (length returned, 0 = none) out.
 *
 * Source addresses of UDP can be forged, so a reply to a request that has
 * not proven its address (no valid connection id) is never longer than 30
 * bytes, against at least 16 sent: a reflector with under 2x gain and tiny
 * absolute size is of no use to an attacker. Only a request carrying a
 * valid id learns more than "bad connection id"; anything under 16 bytes
 * or from port 0 (which no real client uses) gets nothing at all.
 */
static size_t
trk_udp_handle(struct trk_udp *u, const struct sockaddr *from, const uint8_t *pkt, size_t len,
	       uint8_t *out)
{
	struct trk_udp_req req;
	struct addr src;
	int r;

	if (addr_from_sockaddr(from, &src) < 0 || src.port == 0)
		return 0;
	r = trk_udp_parse(pkt, len, &req);
	if (r == -ENODATA)
		return 0;
	if (req.action == TRK_UDP_CONNECT) {
		if (r == -EPROTO)
			return trk_udp_error(u, &req, "unknown protocol id", "bad_protocol", out);
		trk_udp_put32(out, TRK_UDP_CONNECT);
		trk_udp_put32(out + 4, req.transaction_id);
		trk_udp_conn_id(u->env, &src, trk_udp_bucket(), out + 8);
		return 16;
	}
	if (!trk_udp_conn_id_ok(u->env, &src, req.connection_id))
		return trk_udp_error(u, &req, "bad connection id", "bad_connection_id", out);
	if (r == -EOPNOTSUPP)
		return trk_udp_error(u, &req, "unknown action", "bad_action", out);
	if (r < 0)
		return trk_udp_error(u, &req, "packet too short", "short_packet", out);
	if (req.action == TRK_UDP_ANNOUNCE)
		return trk_udp_announce(u, &req, &src, out);
	return trk_udp_scrape(u, &req, out);
}

/* ---- sockets and the loop ---- */

/* Sends what it can: a datagram the kernel refuses (e.g. EPERM from a
 * firewall, an unroutable source) is skipped; a full send buffer drops the
 * rest, as UDP may. */
static void
trk_udp_send(int fd, struct mmsghdr *msgs, unsigned n)
{
	unsigned done = 0;

	while (done < n) {
		int r = sendmmsg(fd, msgs + done, n - done, MSG_DONTWAIT);

		if (r > 0) {
			done += (unsigned)r;
		} else if (r < 0 && errno == EINTR) {
			continue;
		} else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
			return;
		} else {
			done++;
		}
	}
}

static void
trk_udp_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct trk_udp_sock *s = arg;
	struct trk_udp *u = s->u;

	(void)what;
	for (int round = 0; round < TRK_UDP_ROUNDS; round++) {
		unsigned nout = 0;
		int n;

		for (size_t i = 0; i < TRK_UDP_BATCH; i++) {
			u->riov[i] =
				(struct iovec){ .iov_base = u->rx[i], .iov_len = TRK_UDP_RX_SIZE };
			u->rmsg[i] = (struct mmsghdr){ .msg_hdr = {
							       .msg_name = &u->from[i],
							       .msg_namelen = sizeof(u->from[i]),
							       .msg_iov = &u->riov[i],
							       .msg_iovlen = 1,
						       } };
		}
		n = recvmmsg(fd, u->rmsg, TRK_UDP_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return;
		for (int i = 0; i < n; i++) {
			size_t len = trk_udp_handle(u, (const struct sockaddr *)&u->from[i],
						    u->rx[i], u->rmsg[i].msg_len, u->tx[nout]);

			if (len == 0)
				continue;
			u->siov[nout] = (struct iovec){ .iov_base = u->tx[nout], .iov_len = len };
			u->smsg[nout] =
				(struct mmsghdr){ .msg_hdr = {
							  .msg_name = &u->from[i],
							  .msg_namelen =
								  u->rmsg[i].msg_hdr.msg_namelen,
							  .msg_iov = &u->siov[nout],
							  .msg_iovlen = 1,
						  } };
			nout++;
		}
		trk_udp_send(fd, u->smsg, nout);
		if (n < TRK_UDP_BATCH)
			return;
	}
}

/* Adds (setup) or removes the events on the loop thread, and signals the
 * waiting caller; the same handshake as rds_async_run_on_loop. */
struct trk_udp_sync {
	struct trk_udp *u;
	bool setup, done;
	int ret;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static void
trk_udp_on_loop(void *arg)
{
	struct trk_udp_sync *s = arg;
	struct trk_udp *u = s->u;

	s->ret = 0;
	for (size_t i = 0; i < u->nsocks; i++) {
		struct trk_udp_sock *k = &u->socks[i];

		if (s->setup) {
			k->ev = event_new(evl_base(u->env->loop), k->fd, EV_READ | EV_PERSIST,
					  trk_udp_on_read, k);
			if (!k->ev || event_add(k->ev, NULL) < 0) {
				/* All or nothing, so the caller can free on error. */
				for (size_t j = 0; j <= i; j++) {
					if (u->socks[j].ev)
						event_free(u->socks[j].ev);
					u->socks[j].ev = NULL;
				}
				s->ret = -ENOMEM;
				break;
			}
		} else if (k->ev) {
			event_free(k->ev); /* deletes it first */
			k->ev = NULL;
		}
	}
	pthread_mutex_lock(&s->lock);
	s->done = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static int
trk_udp_run_on_loop(struct trk_udp *u, bool setup)
{
	struct trk_udp_sync s = { .u = u, .setup = setup, .ret = -ECANCELED };
	int r;

	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);
	r = evl_call(u->env->loop, trk_udp_on_loop, &s);
	if (r == 0) {
		pthread_mutex_lock(&s.lock);
		while (!s.done)
			pthread_cond_wait(&s.cond, &s.lock);
		pthread_mutex_unlock(&s.lock);
		r = s.ret;
	}
	pthread_cond_destroy(&s.cond);
	pthread_mutex_destroy(&s.lock);
	return r;
}

/* Closes the sockets and frees u; the events must be gone already. */
static void
trk_udp_free(struct trk_udp *u)
{
	for (size_t i = 0; i < u->nsocks; i++)
		if (u->socks[i].fd >= 0)
			close(u->socks[i].fd);
	free(u->socks);
	free(u);
}

/*
 * "IP:PORT" with port 0 allowed (the kernel picks; tests use it), which
 * addr_parse refuses since its port 0 means "none". Only "a.b.c.d:0" and
 * "[v6]:0" qualify: stripping ":0" from a bare IPv6 would change it.
 */
static int
trk_udp_parse_listen(const char *s, size_t len, struct addr *ret)
{
	if (len > 2 && s[len - 2] == ':' && s[len - 1] == '0') {
		size_t iplen = len - 2;

		if (s[0] == '[' ? s[iplen - 1] != ']' : memchr(s, ':', iplen) != NULL)
			return -EINVAL;
		return addr_parse(s, iplen, false, ret);
	}
	return addr_parse(s, len, true, ret);
}

static int
trk_udp_open(const struct addr *a, struct trk_udp_sock *k, char *err, size_t errsize)
{
	struct sockaddr_storage ss;
	socklen_t sl = addr_to_sockaddr(a, &ss);
	char name[ADDR_STR_MAX];
	int one = 1, size = TRK_UDP_SOCKBUF, r;

	if (addr_format_ip(a, name, sizeof(name)) < 0)
		snprintf(name, sizeof(name), "?");
	k->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (k->fd < 0) {
		r = -errno;
		snprintf(err, errsize, "udp socket for %s: %s", name, strerror(-r));
		return r;
	}
	/* A v6 socket must not take v4 traffic too: v4 is listed separately,
	 * and a second bind to the v4 port would fail. */
	if (ss.ss_family == AF_INET6 &&
	    setsockopt(k->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	/* No SO_REUSEADDR: UDP has no TIME_WAIT to skip, and on Linux it would
	 * let a second process bind the port and take part of its traffic. */
	/* Best effort: bursts of announces must queue, not drop, while the
	 * loop is busy; the kernel caps the size and we live with its cap. */
	(void)setsockopt(k->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	(void)setsockopt(k->fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	if (bind(k->fd, (struct sockaddr *)&ss, sl) < 0)
		goto fail;
	sl = sizeof(ss);
	if (getsockname(k->fd, (struct sockaddr *)&ss, &sl) < 0)
		goto fail;
	k->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						: ((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
fail:
	r = -errno;
	snprintf(err, errsize, "udp %s port %u: %s", name, a->port, strerror(-r));
	return r;
}

int
trk_udp_start(struct trk_env *env, const char *listen, char *err, size_t errsize)
{
	struct trk_udp *u;
	const char *p = listen;
	int r;

	if (env->udp) {
		snprintf(err, errsize, "udp already started");
		return -EALREADY;
	}
	u = calloc(1, sizeof(*u));
	if (!u) {
		snprintf(err, errsize, "out of memory");
		return -ENOMEM;
	}
	u->env = env;
	if (env->m.announces)
		u->announces = met_child(env->m.announces, "udp");
	if (env->m.scrapes)
		u->scrapes = met_child(env->m.scrapes, "udp");

	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		struct trk_udp_sock *socks;
		struct addr a;

		/* Spaces around entries are allowed: "0.0.0.0:6969, [::]:6969". */
		while (len > 0 && (*p == ' ' || *p == '\t'))
			p++, len--;
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len > 0) {
			if (trk_udp_parse_listen(p, len, &a) < 0) {
				snprintf(err, errsize, "udp listen: bad address '%.*s'", (int)len,
					 p);
				r = -EINVAL;
				goto fail;
			}
			socks = realloc(u->socks, (u->nsocks + 1) * sizeof(*socks));
			if (!socks) {
				snprintf(err, errsize, "out of memory");
				r = -ENOMEM;
				goto fail;
			}
			u->socks = socks;
			u->socks[u->nsocks] = (struct trk_udp_sock){ .u = u, .fd = -1 };
			u->nsocks++;
			r = trk_udp_open(&a, &u->socks[u->nsocks - 1], err, errsize);
			if (r < 0)
				goto fail;
		}
		p = end ? end + 1 : NULL;
	}
	if (u->nsocks == 0) {
		snprintf(err, errsize, "udp listen: no address");
		r = -EINVAL;
		goto fail;
	}
	r = trk_udp_run_on_loop(u, true);
	if (r < 0) {
		/* Nothing stays on the loop on failure (see trk_udp_on_loop). */
		snprintf(err, errsize, "udp: cannot add events to the loop: %s", strerror(-r));
		goto fail;
	}
	env->udp = u;
	return 0;
fail:
	trk_udp_free(u);
	return r;
}

void
trk_udp_stop(struct trk_env *env)
{
	struct trk_udp *u = env ? env->udp : NULL;

	if (!u)
		return;
	env->udp = NULL;
	/* The events must go on the loop thread; if the loop no longer takes
	 * work (stop called after evl_free began) they may still fire, so the
	 * state is leaked instead of freed under them. */
	if (trk_udp_run_on_loop(u, false) < 0)
		return;
	trk_udp_free(u);
}

int
trk_udp_port(struct trk_env *env, size_t i)
{
	struct trk_udp *u = env ? env->udp : NULL;

	if (!u || i >= u->nsocks)
		return -ENOENT;
	return u->socks[i].port;
}
