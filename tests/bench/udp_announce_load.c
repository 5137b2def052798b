// SPDX-License-Identifier: MIT
/* udp_announce_load: BEP 15 announce load generator for tests/bench/tracker_bench.sh.
 *
 * usage: udp_announce_load -a ADDR -p PORT -H HASHFILE [options]
 *
 *   -a ADDR     tracker IPv4 address (127.0.0.1)
 *   -p PORT     tracker UDP port
 *   -H FILE     info_hashes, 40 hex digits a line (the same file the tracker
 *               whitelists); announces only go to these
 *   -m MODE     random (default): each announce a random info_hash of the
 *               file and a random peer port 1024-65535;
 *               fill: announce i goes to torrent i % T with port
 *               BASE + i / T, so -n T*P announces store exactly T*P
 *               distinct peers (P per torrent) — a lost one is re-sent
 *   -T N        torrents used: the first N of the file (all)
 *   -b BASE     first peer port in fill mode (10000)
 *   -n N        announces to complete, then stop (1000000)
 *   -t SEC      stop issuing after this many seconds (20)
 *   -s N        sockets (16); each connects once (BEP 15 connect)
 *   -w N        announces in flight per socket (32, at most 256)
 *   -W N        numwant (50)
 *   -S SEED     random seed (1): the same seed gives the same stream
 *   -e PCT      per cent of announces with left = 0, i.e. seeders (25)
 *
 * All sockets are connected UDP sockets on the loopback, so the tracker
 * sees 127.0.0.1 and the port of the announce (ip = 0 in the packet).
 * Replies are counted by transaction id: an announce unanswered after 250 ms
 * counts as lost (random mode: a new one goes out; fill mode: the same one
 * is re-sent); a reply that arrives after that counts as late, not as an
 * answer. At the end it prints one line for the script:
 *
 *   UDPLOAD sent=N replies=N errors=N lost=N late=N elapsed_us=N rps=F peers_out=N
 *
 * where rps = replies / elapsed, errors are BEP 15 error replies (action 3)
 * and peers_out the peers received in all replies. Exit 0 when the run
 * completed what it was asked (fill: every peer answered), 1 otherwise,
 * 2 on usage or set-up errors. Plain libc; Linux (recvmmsg, sendmmsg).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ULD_MAGIC        0x41727101980ULL
#define ULD_ACT_CONNECT  0
#define ULD_ACT_ANNOUNCE 1
#define ULD_ACT_ERROR    3
#define ULD_ANNOUNCE_LEN 98
#define ULD_LOSS_US      250000
#define ULD_DRAIN_US     500000
#define ULD_MAX_WINDOW   256
#define ULD_BATCH        64
#define ULD_RX           2048

struct uld_slot {
	uint32_t tid; /* (generation << 8) | slot index; 0 = free */
	int64_t idx;  /* fill mode: which peer */
	int64_t sent_us;
	uint32_t gen;
};

struct uld_sock {
	int fd;
	uint64_t conn_id;
	unsigned inflight;
	struct uld_slot slot[ULD_MAX_WINDOW];
};

struct uld {
	/* options */
	struct sockaddr_in to;
	uint8_t (*hash)[20];
	size_t nhash;
	int fill;
	unsigned base_port;
	int64_t count;
	double seconds;
	unsigned nsock, window, numwant, seed_pct;
	uint64_t rng;
	/* state */
	struct uld_sock *sock;
	int64_t next_idx;
	int64_t *retry; /* fill mode: lost announces to send again */
	size_t nretry, retry_cap;
	uint64_t sent, replies, errors, lost, late, peers_out;
};

static int64_t
uld_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* xorshift64*: fast, and the same seed gives the same stream. */
static uint64_t
uld_rand(struct uld *u)
{
	u->rng ^= u->rng >> 12;
	u->rng ^= u->rng << 25;
	u->rng ^= u->rng >> 27;
	return u->rng * 0x2545F4914F6CDD1DULL;
}

static void
uld_put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void
uld_put32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint32_t
uld_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t
uld_get64(const uint8_t *p)
{
	return (uint64_t)uld_get32(p) << 32 | uld_get32(p + 4);
}

static int
uld_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Reads up to max info_hashes (0 = all) of FILE. Returns the count, or -1. */
static long
uld_load_hashes(struct uld *u, const char *path, size_t max)
{
	char line[256];
	size_t cap = 0;
	FILE *f = fopen(path, "r");

	if (!f) {
		fprintf(stderr, "udp_announce_load: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) && (max == 0 || u->nhash < max)) {
		uint8_t h[20];
		int ok = 1;
		for (int i = 0; i < 20 && ok; i++) {
			int hi = uld_hex(line[2 * i]), lo = uld_hex(line[2 * i + 1]);
			if (hi < 0 || lo < 0)
				ok = 0;
			else
				h[i] = (uint8_t)(hi << 4 | lo);
		}
		if (!ok)
			continue;
		if (u->nhash == cap) {
			cap = cap ? cap * 2 : 1024;
			void *p = realloc(u->hash, cap * sizeof(*u->hash));
			if (!p) {
				fclose(f);
				return -1;
			}
			u->hash = p;
		}
		memcpy(u->hash[u->nhash++], h, 20);
	}
	fclose(f);
	return (long)u->nhash;
}

/* BEP 15 connect on one socket, up to 5 tries of 1 s. Returns 0 or -1. */
static int
uld_connect(struct uld *u, struct uld_sock *s)
{
	uint8_t req[16], rep[64];

	for (int attempt = 0; attempt < 5; attempt++) {
		uint32_t tid = (uint32_t)uld_rand(u) | 1;
		uld_put64(req, ULD_MAGIC);
		uld_put32(req + 8, ULD_ACT_CONNECT);
		uld_put32(req + 12, tid);
		if (send(s->fd, req, sizeof(req), 0) < 0)
			return -1;
		int64_t deadline = uld_now_us() + 1000000;
		for (;;) {
			int64_t left = deadline - uld_now_us();
			if (left <= 0)
				break;
			struct pollfd p = { .fd = s->fd, .events = POLLIN };
			if (poll(&p, 1, (int)(left / 1000) + 1) <= 0)
				continue;
			ssize_t n = recv(s->fd, rep, sizeof(rep), MSG_DONTWAIT);
			if (n >= 16 && uld_get32(rep) == ULD_ACT_CONNECT &&
			    uld_get32(rep + 4) == tid) {
				s->conn_id = uld_get64(rep + 8);
				return 0;
			}
			if (n < 0 && errno == ECONNREFUSED)
				return -1;
		}
	}
	return -1;
}

/* Fills one announce for slot k of socket s; returns 0, or -1 when there
 * is nothing left to send. */
static int
uld_build(struct uld *u, struct uld_sock *s, unsigned k, uint8_t *pkt, int64_t now)
{
	struct uld_slot *sl = &s->slot[k];
	const uint8_t *ih;
	unsigned port;
	int64_t idx = -1;

	if (u->fill) {
		if (u->nretry > 0)
			idx = u->retry[--u->nretry];
		else if (u->next_idx < u->count)
			idx = u->next_idx++;
		else
			return -1;
		ih = u->hash[idx % (int64_t)u->nhash];
		port = u->base_port + (unsigned)(idx / (int64_t)u->nhash);
	} else {
		if (u->next_idx >= u->count)
			return -1;
		u->next_idx++;
		ih = u->hash[uld_rand(u) % u->nhash];
		port = 1024 + (unsigned)(uld_rand(u) % (65536 - 1024));
	}
	sl->gen = (sl->gen + 1) & 0xffffff;
	if (sl->gen == 0)
		sl->gen = 1;
	sl->tid = sl->gen << 8 | k;
	sl->idx = idx;
	sl->sent_us = now;

	uint64_t r = uld_rand(u);
	uint64_t left = (r % 100 < u->seed_pct) ? 0 : 1 + (r >> 8) % 1000000000ULL;
	uld_put64(pkt, s->conn_id);
	uld_put32(pkt + 8, ULD_ACT_ANNOUNCE);
	uld_put32(pkt + 12, sl->tid);
	memcpy(pkt + 16, ih, 20);
	/* peer_id: Azureus style prefix, then random bytes */
	memcpy(pkt + 36, "-UL0001-", 8);
	uld_put64(pkt + 44, uld_rand(u));
	uld_put32(pkt + 52, (uint32_t)uld_rand(u));
	uld_put64(pkt + 56, 0);           /* downloaded */
	uld_put64(pkt + 64, left);        /* left */
	uld_put64(pkt + 72, 0);           /* uploaded */
	uld_put32(pkt + 80, 0);           /* event: none */
	uld_put32(pkt + 84, 0);           /* ip: the sender's */
	uld_put32(pkt + 88, (uint32_t)r); /* key */
	uld_put32(pkt + 92, u->numwant);  /* num_want */
	pkt[96] = (uint8_t)(port >> 8);
	pkt[97] = (uint8_t)port;
	return 0;
}

/* Tops socket s up to the window; returns the announces sent. */
static unsigned
uld_refill(struct uld *u, struct uld_sock *s, int issuing, int64_t now)
{
	static uint8_t pkt[ULD_MAX_WINDOW][ULD_ANNOUNCE_LEN];
	struct mmsghdr msg[ULD_MAX_WINDOW];
	struct iovec iov[ULD_MAX_WINDOW];
	unsigned n = 0, done = 0;

	if (!issuing)
		return 0;
	for (unsigned k = 0; k < u->window && s->inflight < u->window; k++) {
		if (s->slot[k].tid != 0)
			continue;
		if (uld_build(u, s, k, pkt[n], now) < 0)
			break;
		iov[n] = (struct iovec){ .iov_base = pkt[n], .iov_len = ULD_ANNOUNCE_LEN };
		msg[n] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[n], .msg_iovlen = 1 } };
		s->inflight++;
		n++;
	}
	while (done < n) {
		int r = sendmmsg(s->fd, msg + done, n - done, 0);
		if (r <= 0)
			break; /* a full send buffer: the unsent ones time out as lost */
		done += (unsigned)r;
	}
	u->sent += done;
	return done;
}

/* A slot whose announce went unanswered too long: lost. */
static void
uld_expire(struct uld *u, struct uld_sock *s, int64_t now)
{
	for (unsigned k = 0; k < u->window; k++) {
		struct uld_slot *sl = &s->slot[k];
		if (sl->tid == 0 || now - sl->sent_us < ULD_LOSS_US)
			continue;
		if (u->fill) {
			if (u->nretry == u->retry_cap) {
				size_t cap = u->retry_cap ? u->retry_cap * 2 : 1024;
				int64_t *p = realloc(u->retry, cap * sizeof(*p));
				if (!p)
					continue; /* tried again next time round */
				u->retry = p;
				u->retry_cap = cap;
			}
			u->retry[u->nretry++] = sl->idx;
		}
		sl->tid = 0;
		s->inflight--;
		u->lost++;
	}
}

static void
uld_receive(struct uld *u, struct uld_sock *s)
{
	static uint8_t buf[ULD_BATCH][ULD_RX];
	struct mmsghdr msg[ULD_BATCH];
	struct iovec iov[ULD_BATCH];

	for (;;) {
		for (int i = 0; i < ULD_BATCH; i++) {
			iov[i] = (struct iovec){ .iov_base = buf[i], .iov_len = ULD_RX };
			msg[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i],
								.msg_iovlen = 1 } };
		}
		int n = recvmmsg(s->fd, msg, ULD_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return;
		for (int i = 0; i < n; i++) {
			const uint8_t *p = buf[i];
			size_t len = msg[i].msg_len;
			if (len < 8)
				continue;
			uint32_t action = uld_get32(p), tid = uld_get32(p + 4);
			struct uld_slot *sl = &s->slot[tid & 0xff];
			if ((tid & 0xff) >= u->window || sl->tid != tid) {
				u->late++;
				continue;
			}
			if (action == ULD_ACT_ANNOUNCE && len >= 20) {
				u->replies++;
				u->peers_out += (len - 20) / 6;
			} else {
				/* In fill mode that peer is then missing and the
				 * run fails at the end: retrying would not help. */
				u->errors++;
			}
			sl->tid = 0;
			s->inflight--;
		}
		if (n < ULD_BATCH)
			return;
	}
}

static int
uld_usage(void)
{
	fprintf(stderr, "usage: udp_announce_load -a ADDR -p PORT -H HASHFILE [-m random|fill] "
			"[-T N] [-b BASE] [-n N] [-t SEC] [-s N] [-w N] [-W N] [-S SEED] "
			"[-e PCT]\n");
	return 2;
}

int
main(int argc, char **argv)
{
	struct uld u = { .count = 1000000,
			 .seconds = 20,
			 .nsock = 16,
			 .window = 32,
			 .numwant = 50,
			 .seed_pct = 25,
			 .base_port = 10000,
			 .rng = 1 };
	const char *addr = "127.0.0.1", *hashes = NULL;
	long port = 0, torrents = 0;
	int c, ret = 2;

	while ((c = getopt(argc, argv, "a:p:H:m:T:b:n:t:s:w:W:S:e:")) != -1) {
		switch (c) {
		case 'a':
			addr = optarg;
			break;
		case 'p':
			port = strtol(optarg, NULL, 10);
			break;
		case 'H':
			hashes = optarg;
			break;
		case 'm':
			if (strcmp(optarg, "fill") == 0)
				u.fill = 1;
			else if (strcmp(optarg, "random") != 0)
				return uld_usage();
			break;
		case 'T':
			torrents = strtol(optarg, NULL, 10);
			break;
		case 'b':
			u.base_port = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'n':
			u.count = strtoll(optarg, NULL, 10);
			break;
		case 't':
			u.seconds = strtod(optarg, NULL);
			break;
		case 's':
			u.nsock = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'w':
			u.window = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'W':
			u.numwant = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'S':
			u.rng = strtoull(optarg, NULL, 10) * 0x9E3779B97F4A7C15ULL | 1;
			break;
		case 'e':
			u.seed_pct = (unsigned)strtoul(optarg, NULL, 10);
			break;
		default:
			return uld_usage();
		}
	}
	if (!hashes || port < 1 || port > 65535 || u.nsock < 1 || u.nsock > 4096 || u.window < 1 ||
	    u.window > ULD_MAX_WINDOW || u.count < 1 || u.seconds <= 0 || torrents < 0 ||
	    u.seed_pct > 100)
		return uld_usage();
	u.to.sin_family = AF_INET;
	u.to.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &u.to.sin_addr) != 1) {
		fprintf(stderr, "udp_announce_load: bad address %s\n", addr);
		return 2;
	}
	if (uld_load_hashes(&u, hashes, (size_t)torrents) < 1) {
		fprintf(stderr, "udp_announce_load: no info_hashes in %s\n", hashes);
		return 2;
	}
	if (u.fill && u.base_port + (u.count - 1) / (int64_t)u.nhash > 65535) {
		fprintf(stderr, "udp_announce_load: fill needs ports beyond 65535\n");
		return 2;
	}
	u.sock = calloc(u.nsock, sizeof(*u.sock));
	struct pollfd *pfd = calloc(u.nsock, sizeof(*pfd));
	if (!u.sock || !pfd)
		return 2;
	for (unsigned i = 0; i < u.nsock; i++)
		u.sock[i].fd = -1;
	for (unsigned i = 0; i < u.nsock; i++) {
		int buf = 1 << 20;
		u.sock[i].fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (u.sock[i].fd < 0 ||
		    connect(u.sock[i].fd, (struct sockaddr *)&u.to, sizeof(u.to)) < 0) {
			perror("udp_announce_load: socket");
			goto out;
		}
		(void)setsockopt(u.sock[i].fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
		if (uld_connect(&u, &u.sock[i]) < 0) {
			fprintf(stderr, "udp_announce_load: no BEP 15 connect reply from %s:%ld\n",
				addr, port);
			goto out;
		}
		pfd[i] = (struct pollfd){ .fd = u.sock[i].fd, .events = POLLIN };
	}

	int64_t start = uld_now_us(), stop_issuing = start + (int64_t)(u.seconds * 1e6);
	int64_t last_reply = start, drain_until = 0;
	for (;;) {
		int64_t now = uld_now_us();
		int issuing = now < stop_issuing;
		unsigned inflight = 0;

		for (unsigned i = 0; i < u.nsock; i++) {
			uld_expire(&u, &u.sock[i], now);
			uld_refill(&u, &u.sock[i], issuing, now);
			inflight += u.sock[i].inflight;
		}
		if (inflight == 0)
			break; /* all sent and answered (or lost), or out of time */
		if (!issuing) {
			if (drain_until == 0)
				drain_until = now + ULD_DRAIN_US;
			else if (now >= drain_until)
				break;
		}
		if (poll(pfd, u.nsock, 10) <= 0)
			continue;
		uint64_t before = u.replies + u.errors;
		for (unsigned i = 0; i < u.nsock; i++)
			if (pfd[i].revents & POLLIN)
				uld_receive(&u, &u.sock[i]);
		if (u.replies + u.errors != before)
			last_reply = uld_now_us();
	}
	/* Whatever is still in flight after the drain is lost too. */
	for (unsigned i = 0; i < u.nsock; i++)
		u.lost += u.sock[i].inflight;
	int64_t elapsed = last_reply - start;
	if (elapsed < 1)
		elapsed = 1;
	printf("UDPLOAD sent=%llu replies=%llu errors=%llu lost=%llu late=%llu elapsed_us=%lld "
	       "rps=%.1f peers_out=%llu\n",
	       (unsigned long long)u.sent, (unsigned long long)u.replies,
	       (unsigned long long)u.errors, (unsigned long long)u.lost, (unsigned long long)u.late,
	       (long long)elapsed, (double)u.replies * 1e6 / elapsed,
	       (unsigned long long)u.peers_out);
	ret = 0;
	if (u.fill && (int64_t)u.replies < u.count) {
		fprintf(stderr, "udp_announce_load: fill incomplete: %llu of %lld peers answered\n",
			(unsigned long long)u.replies, (long long)u.count);
		ret = 1;
	}
out:
	for (unsigned i = 0; u.sock && i < u.nsock; i++)
		if (u.sock[i].fd >= 0)
			close(u.sock[i].fd);
	free(u.sock);
	free(pfd);
	free(u.hash);
	free(u.retry);
	return ret;
}
