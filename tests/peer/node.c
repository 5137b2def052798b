// SPDX-License-Identifier: MIT
/* p2pcdn-peer: one peer's life — login, heartbeats, connects, partners, chunk exchange. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "jw.h"
#include "peer.h"
#include "peerid.h"

#define PC_TICK_MS      100
#define PC_CONNECT_MS   10000 /* a connect that is not up by then failed */
#define PC_RREQ_MS      5000  /* a request over a relay link */
#define PC_RELAY_WAIT_S 5
#define PC_MAINT_MS     1000
#define PC_GOSSIP_MS    3000
#define PC_RETRIES      12
#define PC_PASSWORD     "p2pcdn-peer-password"

/* Links that died wait here until the end: callbacks may still name them. */
static struct pc_link **pc_grave;
static size_t pc_ngrave, pc_grave_cap;

struct pc_frame {
	struct pc_frame *next;
	size_t len;
	unsigned char data[];
};

typedef void (*pc_lcb)(struct pc_link *k, int status, const char *body, size_t len, void *arg);

struct pc_rreq {
	uint32_t id;
	long long deadline;
	pc_lcb cb;
	void *arg;
};

static void pc_link_kill(struct pc_link *k, const char *why);
static void pc_relay_poll(struct pc_link *k);
static void pc_relay_flush(struct pc_link *k);
static void pc_hello_send(struct pc_link *k);
static void pc_report(struct pc_link *k, bool ok, const char *detail);

/* ---------------------------------------------------------------- helpers */

static const char *const pc_mode_names[PC_MODES] = { "direct", "reverse", "lan", "relay" };

static int
pc_mode_parse(const char *s)
{
	for (int i = 0; s && i < PC_MODES; i++)
		if (strcmp(s, pc_mode_names[i]) == 0)
			return i;
	return -1;
}

/* Account names are derived from PeerIDs, so a member list (PeerIDs) is
 * enough to ask the login-server for a connect. */
static void
pc_user_of(uint64_t pid, char *out, size_t size)
{
	char hex[PEERID_HEX_LEN + 1];

	peerid_format(pid, hex, sizeof(hex));
	snprintf(out, size, "p%s", hex);
}

static int
pc_pid_of_user(const char *user, uint64_t *pid)
{
	if (!user || user[0] != 'p' || strlen(user) != 1 + PEERID_HEX_LEN)
		return -1;
	return peerid_parse(user + 1, PEERID_HEX_LEN, pid);
}

/* PeerID -> peer of this process, for the domain accounting. */
static struct pc_peer **pc_pid_tab;
static size_t pc_pid_cap;

static void
pc_pid_insert(struct pc_peer *p)
{
	size_t i;

	if (!pc_pid_tab) {
		pc_pid_cap = 16;
		while (pc_pid_cap < pc.npeers * 2 + 2)
			pc_pid_cap *= 2;
		pc_pid_tab = calloc(pc_pid_cap, sizeof(*pc_pid_tab));
		if (!pc_pid_tab)
			return;
	}
	for (i = (size_t)(p->pid * 0x9e3779b97f4a7c15ull) & (pc_pid_cap - 1); pc_pid_tab[i];
	     i = (i + 1) & (pc_pid_cap - 1))
		if (pc_pid_tab[i] == p)
			return;
	pc_pid_tab[i] = p;
}

struct pc_peer *
pc_peer_by_pid(uint64_t pid)
{
	if (!pc_pid_tab)
		return NULL;
	for (size_t i = (size_t)(pid * 0x9e3779b97f4a7c15ull) & (pc_pid_cap - 1); pc_pid_tab[i];
	     i = (i + 1) & (pc_pid_cap - 1))
		if (pc_pid_tab[i]->pid == pid)
			return pc_pid_tab[i];
	return NULL;
}

void
pc_chunk_fill(const char *ch, uint32_t seq, char *buf, size_t len)
{
	uint64_t h = 1469598103934665603ull, x;
	int n;

	for (const char *c = ch; *c; c++)
		h = (h ^ (unsigned char)*c) * 1099511628211ull;
	x = h ^ ((uint64_t)seq * 0x9e3779b97f4a7c15ull) ^ 0x5bd1e995u;
	for (size_t i = 0; i < len; i++) {
		if (i % 8 == 0)
			x = sched_rand(&x);
		buf[i] = (char)(x >> (i % 8 * 8));
	}
	n = snprintf(NULL, 0, "p2pcdn %s %" PRIu32 "\n", ch, seq);
	if (n > 0 && (size_t)n < len) {
		char head[200];
		snprintf(head, sizeof(head), "p2pcdn %s %" PRIu32 "\n", ch, seq);
		memcpy(buf, head, (size_t)n);
	}
}

static size_t pc_chunk_len; /* learnt from the first chunk received */

/* ---------------------------------------------------------------- links */

static struct pc_link *
pc_link_new(struct pc_peer *p, uint64_t rpid, bool initiator)
{
	struct pc_link *k;

	if (p->nlinks >= PC_LINKS)
		return NULL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->p = p;
	k->rpid = rpid;
	pc_user_of(rpid, k->ruser, sizeof(k->ruser));
	k->initiator = initiator;
	k->state = PC_L_CONNECTING;
	k->deadline_ms = pc_now_ms() + PC_CONNECT_MS;
	k->since_ms = pc_now_ms();
	k->outq_tail = &k->outq;
	k->next_id = 1;
	p->links[p->nlinks++] = k;
	return k;
}

static struct pc_link *
pc_link_by_cid(struct pc_peer *p, const char *cid)
{
	for (size_t i = 0; i < p->nlinks; i++)
		if (p->links[i]->state != PC_L_DEAD && strcmp(p->links[i]->cid, cid) == 0)
			return p->links[i];
	return NULL;
}

static struct pc_link *
pc_link_by_pid(struct pc_peer *p, uint64_t pid)
{
	for (size_t i = 0; i < p->nlinks; i++)
		if (p->links[i]->state != PC_L_DEAD && !p->links[i]->session_only &&
		    p->links[i]->rpid == pid)
			return p->links[i];
	return NULL;
}

static unsigned
pc_partner_count(struct pc_peer *p, bool up_only)
{
	unsigned n = 0;

	for (size_t i = 0; i < p->nlinks; i++) {
		struct pc_link *k = p->links[i];
		if (k->session_only || k->state == PC_L_DEAD || k->dying)
			continue;
		if (!up_only || k->state == PC_L_UP)
			n++;
	}
	return n;
}

static void
pc_links_compact(struct pc_peer *p)
{
	size_t j = 0;

	for (size_t i = 0; i < p->nlinks; i++) {
		struct pc_link *k = p->links[i];
		if (k->state != PC_L_DEAD) {
			p->links[j++] = k;
			continue;
		}
		pc_kclose(&k->src.kc);
		if (pc_ngrave == pc_grave_cap) {
			size_t cap = pc_grave_cap ? pc_grave_cap * 2 : 256;
			struct pc_link **g = realloc(pc_grave, cap * sizeof(*g));
			if (!g) {
				p->links[j++] = k; /* keep it listed rather than lose it */
				continue;
			}
			pc_grave = g;
			pc_grave_cap = cap;
		}
		pc_grave[pc_ngrave++] = k;
	}
	p->nlinks = j;
}

/* ---- requests over a link ---- */

struct pc_lget {
	struct pc_link *k;
	pc_lcb cb;
	void *arg;
};

static void
pc_lget_done(int status, const char *body, size_t len, void *arg)
{
	struct pc_lget *g = arg;

	g->cb(g->k, status, body, len, g->arg);
	free(g);
}

static int
pc_frame_push(struct pc_link *k, const char *hdr, size_t hlen, const void *body, size_t blen)
{
	struct pc_frame *f = malloc(sizeof(*f) + hlen + blen);

	if (!f)
		return -ENOMEM;
	f->next = NULL;
	f->len = hlen + blen;
	memcpy(f->data, hdr, hlen);
	if (blen)
		memcpy(f->data + hlen, body, blen);
	*k->outq_tail = f;
	k->outq_tail = &f->next;
	pc_relay_flush(k);
	return 0;
}

/* GETs path from the remote end of k: HTTP to its address, or a request
 * frame over the relay mailbox. cb always runs once. */
static void
pc_link_get(struct pc_link *k, const char *path, pc_lcb cb, void *arg)
{
	if (k->relay) {
		char hdr[PARTNER_PATH_MAX + 32];
		int slot = -1, n;

		for (int i = 0; i < PC_RPENDING && slot < 0; i++)
			if (!k->rreq[i])
				slot = i;
		if (slot < 0 || k->state == PC_L_DEAD) {
			cb(k, 0, "", 0, arg);
			return;
		}
		struct pc_rreq *r = calloc(1, sizeof(*r));
		if (!r) {
			cb(k, 0, "", 0, arg);
			return;
		}
		r->id = k->next_id++;
		r->deadline = pc_now_ms() + PC_RREQ_MS;
		r->cb = cb;
		r->arg = arg;
		n = partner_frame_header('Q', r->id, 0, path, strlen(path), hdr, sizeof(hdr));
		if (n < 0 || pc_frame_push(k, hdr, (size_t)n, NULL, 0) < 0) {
			free(r);
			cb(k, 0, "", 0, arg);
			return;
		}
		k->rreq[slot] = r;
		return;
	}
	if (!k->base[0]) {
		cb(k, 0, "", 0, arg);
		return;
	}
	struct pc_lget *g = malloc(sizeof(*g));
	if (!g) {
		cb(k, 0, "", 0, arg);
		return;
	}
	g->k = k;
	g->cb = cb;
	g->arg = arg;
	pc_kget(&k->src.kc, k->base, path, pc_lget_done, g);
}

static void
pc_lnoop(struct pc_link *k, int status, const char *body, size_t len, void *arg)
{
	(void)k;
	(void)status;
	(void)body;
	(void)len;
	(void)arg;
}

static void
pc_rreq_fail_all(struct pc_link *k)
{
	for (int i = 0; i < PC_RPENDING; i++) {
		struct pc_rreq *r = k->rreq[i];
		if (!r)
			continue;
		k->rreq[i] = NULL;
		r->cb(k, 0, "", 0, r->arg);
		free(r);
	}
}

static void
pc_link_kill(struct pc_link *k, const char *why)
{
	if (k->state == PC_L_DEAD)
		return;
	if (pc.o.verbose)
		pc_log(k->p, "link %s %s (%s) ends: %s", k->ruser, pc_mode_names[k->mode], k->cid,
		       why);
	if (k->initiator && !k->reported && k->state == PC_L_CONNECTING && k->cid[0])
		pc_report(k, false, why);
	k->state = PC_L_DEAD;
	if (k->relay && k->relay_url[0])
		api_relay_close(k);
	pc_rreq_fail_all(k);
	while (k->outq) {
		struct pc_frame *f = k->outq;
		k->outq = f->next;
		free(f);
	}
	k->outq_tail = &k->outq;
}

/* ---- relay mailbox transport ---- */

static int pc_serve(struct pc_peer *p, struct pc_link *via, const char *path, const char *query,
		    char **body, size_t *len);

static void
pc_relay_msg(uint64_t seq, const unsigned char *d, size_t n, void *arg)
{
	struct pc_link *k = arg;
	struct partner_frame f;

	if (seq <= k->recv_ack)
		return; /* a repeat of something already handled */
	k->recv_ack = seq;
	pc.st.relay_frames++;
	if (partner_frame_parse(d, n, &f) < 0)
		return;
	if (f.kind == 'Q') {
		char path[PARTNER_PATH_MAX + 1], *q, *body = NULL, hdr[64];
		size_t blen = 0;
		int status, hl;

		memcpy(path, f.path, f.path_len);
		path[f.path_len] = '\0';
		q = strchr(path, '?');
		if (q)
			*q++ = '\0';
		status = pc_serve(k->p, k, path, q ? q : "", &body, &blen);
		hl = partner_frame_header('A', f.id, (unsigned)status, NULL, 0, hdr, sizeof(hdr));
		if (hl > 0 && k->state != PC_L_DEAD)
			pc_frame_push(k, hdr, (size_t)hl, body, blen);
		free(body);
		return;
	}
	for (int i = 0; i < PC_RPENDING; i++) {
		struct pc_rreq *r = k->rreq[i];
		if (r && r->id == f.id) {
			char *copy = malloc(f.body_len + 1);
			k->rreq[i] = NULL;
			if (copy) {
				memcpy(copy, f.body, f.body_len);
				copy[f.body_len] = '\0';
			}
			r->cb(k, copy ? (int)f.status : 0, copy ? copy : "", copy ? f.body_len : 0,
			      r->arg);
			free(copy);
			free(r);
			return;
		}
	}
}

static void
pc_relay_polled(int status, const char *body, size_t len, void *arg)
{
	struct pc_link *k = arg;

	k->polling = false;
	if (k->state == PC_L_DEAD || pc.stopping)
		return;
	if (status == 200) {
		api_relay_parse(body, len, pc_relay_msg, k);
		pc_relay_poll(k);
	} else if (status == 410 || status == 401 || status == 403) {
		pc_link_kill(k, "relay session ended");
	}
	/* Other errors: the tick polls again. */
}

static void
pc_relay_poll(struct pc_link *k)
{
	if (k->polling || k->state == PC_L_DEAD || !k->relay || pc.stopping)
		return;
	k->polling = true;
	api_relay_fetch(k, PC_RELAY_WAIT_S, pc_relay_polled);
}

static void
pc_relay_sent(int status, const char *body, size_t len, void *arg)
{
	struct pc_link *k = arg;

	(void)body;
	(void)len;
	k->sending = false;
	if (k->state == PC_L_DEAD || pc.stopping)
		return;
	if (status == 200) {
		struct pc_frame *f = k->outq;
		k->send_seq++;
		if (f) {
			k->outq = f->next;
			if (!k->outq)
				k->outq_tail = &k->outq;
			free(f);
		}
		pc_relay_flush(k);
	} else if (status == 410 || status == 401 || status == 403 || status == 409) {
		pc_link_kill(k, "relay refused a message");
	}
	/* 429 queue_full and transport errors: the tick retries. */
}

static void
pc_relay_flush(struct pc_link *k)
{
	if (k->sending || !k->outq || k->state == PC_L_DEAD || !k->relay || pc.stopping)
		return;
	k->sending = true;
	api_relay_send(k, k->send_seq + 1, k->outq->data, k->outq->len, pc_relay_sent);
}

static void
pc_link_relay(struct pc_link *k, json_t *req)
{
	json_t *r = json_object_get(req, "relay");
	const char *url = json_string_value(json_object_get(r, "url"));
	const char *tok = json_string_value(json_object_get(req, "token"));

	if (!url || !tok || strlen(tok) >= sizeof(k->relay_tok)) {
		pc_link_kill(k, "relay answer without url or token");
		return;
	}
	snprintf(k->relay_url, sizeof(k->relay_url), "%s", url);
	snprintf(k->relay_tok, sizeof(k->relay_tok), "%s", tok);
	k->mode = PC_RELAY;
	k->relay = true;
	k->can_fetch = true;
	k->deadline_ms = pc_now_ms() + PC_CONNECT_MS;
	pc_relay_poll(k);
}

/* ---------------------------------------------------------------- connects */

static void
pc_member_refuse(struct pc_peer *p, uint64_t pid, long long ms)
{
	for (size_t i = 0; i < p->nmembers; i++)
		if (p->members[i].pid == pid)
			p->members[i].refused_until = pc_now_ms() + ms;
}

static void
pc_member_add(struct pc_peer *p, uint64_t pid)
{
	if (pid == p->pid || p->nmembers >= PC_MEMBERS)
		return;
	for (size_t i = 0; i < p->nmembers; i++)
		if (p->members[i].pid == pid) {
			p->members[i].seen_ms = pc_now_ms();
			return;
		}
	memset(&p->members[p->nmembers], 0, sizeof(p->members[0]));
	p->members[p->nmembers].pid = pid;
	p->members[p->nmembers].seen_ms = pc_now_ms();
	p->nmembers++;
}

/* The link works: partners exchange data from now on; a session only
 * proves the connect and ends. */
static void
pc_link_up(struct pc_link *k)
{
	if (k->state != PC_L_CONNECTING)
		return;
	k->state = PC_L_UP;
	k->since_ms = pc_now_ms();
	if (k->initiator)
		pc_report(k, true, NULL);
	if (k->session_only && k->initiator) {
		/* The session proved the connect; it ends here. */
		pc.st.sessions_done++;
		if (k->relay || k->base[0])
			pc_link_get(k, "/p2p/bye", pc_lnoop, NULL);
		if (!k->relay)
			pc_link_kill(k, "session done");
		else
			k->deadline_ms = pc_now_ms() + 1000; /* the bye frame goes first */
	}
}

static void
pc_result_done(int status, const char *body, size_t len, void *arg)
{
	struct pc_link *k = arg;
	json_t *o;

	if (status != 200 || k->state == PC_L_DEAD)
		return;
	/* A failed lan check comes back as a relay (Fig. 5: else relay). */
	o = json_loadb(body, len, 0, NULL);
	if (o && json_is_true(json_object_get(o, "fallback"))) {
		pc.st.lan_fallbacks++;
		pc.st.mode[PC_RELAY]++;
		k->reported = false;
		k->state = PC_L_CONNECTING;
		k->base[0] = '\0';
		pc_link_relay(k, o);
		if (k->state != PC_L_DEAD)
			pc_hello_send(k);
	}
	json_decref(o);
}

static void
pc_report(struct pc_link *k, bool ok, const char *detail)
{
	if (k->reported || !k->cid[0] || pc.stopping)
		return;
	k->reported = true;
	if (ok)
		pc.st.mode_ok[k->mode]++;
	else
		pc.st.mode_fail[k->mode]++;
	api_result(k->p, k->cid, ok, detail, pc_result_done, k);
}

static void pc_hello_done(struct pc_link *k, int status, const char *body, size_t len, void *arg);

static void
pc_hello_send(struct pc_link *k)
{
	char path[400];
	struct pc_peer *p = k->p;

	snprintf(path, sizeof(path),
		 "/p2p/hello?cid=%s&from=%s&mode=%s&addr=127.0.0.1:%u&outer=%d&session=%d", k->cid,
		 p->user, pc_mode_names[k->mode], p->port, p->outer ? 1 : 0, k->session_only);
	pc_link_get(k, path, pc_hello_done, NULL);
}

static void
pc_hello_done(struct pc_link *k, int status, const char *body, size_t len, void *arg)
{
	(void)arg;
	if (k->state == PC_L_DEAD)
		return;
	if (status == 200) {
		if (k->initiator || k->mode == PC_REVERSE) {
			if (!k->initiator && memmem(body, len, "\"session\":1", 11))
				k->session_only = true;
			pc_link_up(k);
			if (!k->initiator && k->session_only)
				pc_link_kill(k, "session done");
		}
		return;
	}
	if (status == 503) {
		/* Over its Limit: it sent its partners instead (§3.1.4). */
		json_t *o = json_loadb(body, len, 0, NULL), *e;
		size_t i;
		json_array_foreach (json_object_get(o, "partners"), i, e) {
			const char *s = json_string_value(e);
			uint64_t pid;
			if (s && peerid_parse(s, strlen(s), &pid) == 0)
				pc_member_add(k->p, pid);
		}
		json_decref(o);
		pc.st.refused_limit++;
		pc_member_refuse(k->p, k->rpid, 10000);
		if (k->initiator)
			pc_report(k, true, "connected; partner limit reached");
		pc_link_kill(k, "partner limit");
		return;
	}
	if (k->initiator) {
		pc_report(k, false, "hello failed");
		if (k->mode != PC_LAN)
			pc_link_kill(k, "hello failed");
		/* lan: the result answer may turn it into a relay. */
		else
			k->deadline_ms = pc_now_ms() + PC_CONNECT_MS;
	} else {
		pc_link_kill(k, "hello failed");
	}
}

/* The lan check (seed 000 Fig. 5): the target answers with the connect id
 * sealed to our key; only we can open it, and it must be the server's. */
static void
pc_lan_done(struct pc_link *k, int status, const char *body, size_t len, void *arg)
{
	unsigned char sealed[256], plain[64];
	size_t bl;

	(void)arg;
	if (k->state == PC_L_DEAD)
		return;
	if (status == 404 && pc_now_ms() + 300 < k->deadline_ms && !pc.stopping) {
		/* Its push has not arrived yet: the tick asks again. */
		k->tries++;
		return;
	}
	if (status == 200 && len < 300 &&
	    sodium_base642bin(sealed, sizeof(sealed), body, len, " \r\n", &bl, NULL,
			      sodium_base64_VARIANT_ORIGINAL) == 0 &&
	    bl > crypto_box_SEALBYTES && bl - crypto_box_SEALBYTES < sizeof(plain) &&
	    crypto_box_seal_open(plain, sealed, bl, k->p->pk, k->p->sk) == 0 &&
	    bl - crypto_box_SEALBYTES == strlen(k->cid) &&
	    memcmp(plain, k->cid, strlen(k->cid)) == 0) {
		pc.st.lan_sealed_ok++;
		k->tries = -1; /* checked */
		pc_hello_send(k);
		return;
	}
	if (status == 200)
		pc.st.lan_sealed_bad++;
	k->tries = -1;
	pc_report(k, false, status == 200 ? "sealed connect id mismatch" : "lan unreachable");
}

static void
pc_lan_ask(struct pc_link *k)
{
	char path[96];

	snprintf(path, sizeof(path), "/p2p/lan?cid=%s", k->cid);
	pc_link_get(k, path, pc_lan_done, NULL);
}

static void
pc_connect_done(int status, const char *body, size_t len, void *arg)
{
	struct pc_link *k = arg;
	json_t *o;
	const char *mode, *cid, *s;
	int m;

	if (k->state == PC_L_DEAD)
		return;
	if (status != 200) {
		char why[160];
		pc.st.connect_errors++;
		pc_member_refuse(k->p, k->rpid, status == 404 ? 3000 : 10000);
		snprintf(why, sizeof(why), "connect refused: HTTP %d %.100s", status, body);
		pc_link_kill(k, why);
		return;
	}
	o = json_loadb(body, len, 0, NULL);
	mode = json_string_value(json_object_get(o, "mode"));
	cid = json_string_value(json_object_get(o, "cid"));
	m = pc_mode_parse(mode);
	if (m < 0 || !cid || strlen(cid) != 32) {
		json_decref(o);
		pc.st.connect_errors++;
		pc_link_kill(k, "bad connect answer");
		return;
	}
	snprintf(k->cid, sizeof(k->cid), "%s", cid);
	k->mode = (enum pc_lmode)m;
	pc.st.mode[m]++;
	pc.st.pair[k->pair]++;
	k->deadline_ms = pc_now_ms() + PC_CONNECT_MS;
	switch (k->mode) {
	case PC_DIRECT:
		s = json_string_value(json_object_get(o, "addr"));
		snprintf(k->base, sizeof(k->base), "http://%s", s ? s : "");
		k->can_fetch = true;
		pc_hello_send(k);
		break;
	case PC_REVERSE:
		/* The inner target connects out to us (small service peer):
		 * wait for its hello. */
		k->can_fetch = false;
		break;
	case PC_LAN:
		s = json_string_value(json_object_get(o, "private_addr"));
		snprintf(k->base, sizeof(k->base), "http://%s", s ? s : "");
		k->can_fetch = true;
		pc_lan_ask(k);
		break;
	case PC_RELAY:
		pc_link_relay(k, o);
		if (k->state != PC_L_DEAD)
			pc_hello_send(k);
		break;
	}
	json_decref(o);
}

static struct pc_link *
pc_connect(struct pc_peer *p, uint64_t rpid, bool session)
{
	struct pc_link *k = pc_link_new(p, rpid, true);

	if (!k)
		return NULL;
	k->session_only = session;
	pc.st.connects++;
	struct pc_peer *t = pc_peer_by_pid(rpid);
	if (!t)
		k->pair = 5;
	else if (!p->inner && !t->inner)
		k->pair = 0;
	else if (!p->inner)
		k->pair = 1;
	else if (!t->inner)
		k->pair = 2;
	else
		k->pair = strcmp(p->lan_ip, t->lan_ip) == 0 ? 3 : 4;
	api_connect(p, k->ruser, pc_connect_done, k);
	return k;
}

/* ---- pushes delivered by heartbeats (we are the target) ---- */

static void
pc_on_push(json_t *req, void *arg)
{
	struct pc_peer *p = arg;
	const char *type = json_string_value(json_object_get(req, "type"));
	const char *cid = json_string_value(json_object_get(req, "cid"));
	const char *from = json_string_value(json_object_get(req, "from"));
	struct pc_link *k;
	uint64_t rpid;
	const char *s;

	pc.st.pushes++;
	if (!type || !cid || strlen(cid) != 32 || pc_pid_of_user(from, &rpid) < 0)
		return;
	k = pc_link_by_cid(p, cid);
	if (!k) {
		k = pc_link_new(p, rpid, false);
		if (!k)
			return;
		snprintf(k->cid, sizeof(k->cid), "%s", cid);
	}
	if (strcmp(type, "reverse") == 0) {
		k->mode = PC_REVERSE;
		s = json_string_value(json_object_get(req, "addr"));
		snprintf(k->base, sizeof(k->base), "http://%s", s ? s : "");
		k->can_fetch = true;
		pc_hello_send(k);
	} else if (strcmp(type, "lan") == 0) {
		k->mode = PC_LAN;
		s = json_string_value(json_object_get(req, "private_addr"));
		snprintf(k->base, sizeof(k->base), "http://%s", s ? s : "");
		k->can_fetch = true;
		s = json_string_value(json_object_get(req, "sealed_cid"));
		/* Kept for the initiator's /p2p/lan; an opaque blob to us. */
		snprintf(k->sealed, sizeof(k->sealed), "%s", s ? s : "");
	} else if (strcmp(type, "relay") == 0) {
		k->base[0] = '\0';
		pc_link_relay(k, req);
	}
}

static void
pc_hb_done(int status, const char *body, size_t len, void *arg)
{
	struct pc_peer *p = arg;
	int ms;

	p->hb_busy = false;
	if (pc.stopping || p->state == PC_P_DONE)
		return;
	if (status != 200) {
		pc.st.heartbeats_failed++;
		p->hb_next = pc_now_ms() + 1000;
		return;
	}
	pc.st.heartbeats++;
	ms = api_heartbeat_parse(body, len, pc_on_push, p);
	/* Inner peers long-poll at once again: a reverse, lan or relay
	 * request reaches them without waiting for the next beat. */
	p->hb_next = pc_now_ms() + (p->outer ? (ms > 0 ? ms : 2000) : 0);
}

static void
pc_heartbeat(struct pc_peer *p)
{
	int wait = 0;

	if (p->hb_busy || !p->token[0])
		return;
	if (!p->outer) {
		wait = p->hb_ms / 1000;
		if (wait < 1)
			wait = 1;
	}
	p->hb_busy = true;
	api_heartbeat(p, wait, pc_hb_done);
}

/* ---------------------------------------------------------------- serving */

static const char *
pc_q(struct evkeyvalq *q, const char *k)
{
	return evhttp_find_header(q, k);
}

static int
pc_reply(char **body, size_t *len, const char *text)
{
	*body = strdup(text);
	*len = *body ? strlen(*body) : 0;
	return 0;
}

/* One request to this peer, over HTTP or a relay frame (via). Returns the
 * status and a malloc'd body. */
static int
pc_serve(struct pc_peer *p, struct pc_link *via, const char *path, const char *query, char **body,
	 size_t *len)
{
	struct evkeyvalq q;
	char pre[160];
	int status = 404;

	*body = NULL;
	*len = 0;
	TAILQ_INIT(&q);
	if (evhttp_parse_query_str(query, &q) < 0) {
		pc_reply(body, len, "{\"error\":\"bad_request\"}");
		return 400;
	}
	if (strcmp(path, "/p2p/probe") == 0) {
		/* The small service peer answers the login-server's probe. */
		const char *n = pc_q(&q, "nonce");
		pc_reply(body, len, n ? n : "");
		status = 200;
	} else if (strcmp(path, "/p2p/lan") == 0) {
		const char *cid = pc_q(&q, "cid");
		struct pc_link *k = cid ? pc_link_by_cid(p, cid) : NULL;
		if (k && k->mode == PC_LAN && !k->initiator && k->sealed[0]) {
			pc_reply(body, len, k->sealed);
			status = 200;
		} else {
			pc_reply(body, len, "{\"error\":\"unknown_connect\"}");
		}
	} else if (strcmp(path, "/p2p/hello") == 0) {
		const char *cid = pc_q(&q, "cid"), *from = pc_q(&q, "from");
		const char *mode = pc_q(&q, "mode"), *addr = pc_q(&q, "addr");
		const char *outer = pc_q(&q, "outer"), *session = pc_q(&q, "session");
		bool is_session = session && strcmp(session, "1") == 0;
		struct pc_link *k = cid ? pc_link_by_cid(p, cid) : NULL;
		uint64_t rpid;

		if (!cid || strlen(cid) != 32 || pc_pid_of_user(from, &rpid) < 0) {
			pc_reply(body, len, "{\"error\":\"bad_request\"}");
			status = 400;
			goto out;
		}
		if (!k && pc_mode_parse(mode) != PC_DIRECT) {
			/* Only a direct hello opens a link by itself; reverse, lan
			 * and relay ones answer a connect we know (it may have
			 * timed out here). */
			pc_reply(body, len, "{\"error\":\"unknown_connect\"}");
			status = 404;
			goto out;
		}
		if (k && k->initiator) {
			/* Reverse: the inner target reached us, the small service peer. */
			k->session_only = k->session_only || is_session;
			pc_link_up(k);
		} else {
			if (!is_session &&
			    !partner_accept(pc_partner_count(p, false) - (k ? 1 : 0), p->limit)) {
				/* §3.1.4: over Limit, answer with our partner list. */
				struct jw w;
				size_t n = 0;
				jw_init(&w, 512);
				jw_lit(&w, "{\"error\":\"partner_limit\",\"partners\":[");
				for (size_t i = 0; i < p->nlinks; i++) {
					char hex[PEERID_HEX_LEN + 1];
					if (p->links[i]->state != PC_L_UP ||
					    p->links[i]->session_only)
						continue;
					peerid_format(p->links[i]->rpid, hex, sizeof(hex));
					jw_lit(&w, n++ ? "," : "");
					jw_str(&w, hex);
				}
				jw_lit(&w, "]}");
				*body = jw_finish(&w, len);
				if (k && k == via) {
					/* The answer still has to cross the relay. */
					k->dying = true;
					k->deadline_ms = pc_now_ms() + 2000;
				} else if (k) {
					pc_link_kill(k, "over partner limit");
				}
				status = 503;
				goto out;
			}
			if (!k) {
				k = pc_link_new(p, rpid, false);
				if (!k) {
					pc_reply(body, len, "{\"error\":\"busy\"}");
					status = 503;
					goto out;
				}
				snprintf(k->cid, sizeof(k->cid), "%s", cid);
				k->mode = pc_mode_parse(mode) >= 0
						  ? (enum pc_lmode)pc_mode_parse(mode)
						  : PC_DIRECT;
			}
			k->session_only = is_session;
			if (k->mode == PC_DIRECT && outer && strcmp(outer, "1") == 0 && addr) {
				/* The initiator is outer: we can reach it too. */
				snprintf(k->base, sizeof(k->base), "http://%s", addr);
				k->can_fetch = true;
			}
			if (via && via != k) {
				/* A relay frame for a cid we know under another link. */
			}
			pc_link_up(k);
		}
		snprintf(pre, sizeof(pre), "{\"user\":\"%s\",\"peer_id\":\"%s\",\"session\":%d}",
			 p->user, p->pid_hex, k && k->session_only ? 1 : 0);
		pc_reply(body, len, pre);
		status = 200;
	} else if (strcmp(path, "/p2p/bye") == 0) {
		/* §3.1.3: a partner leaves. */
		struct pc_link *k = via;
		const char *from = pc_q(&q, "from");
		uint64_t rpid;
		if (!k && from && pc_pid_of_user(from, &rpid) == 0)
			k = pc_link_by_pid(p, rpid);
		if (k)
			pc_link_kill(k, "partner left");
		pc_reply(body, len, "{\"ok\":true}");
		status = 200;
	} else if (strcmp(path, "/p2p/partners") == 0) {
		struct jw w;
		size_t n = 0;
		jw_init(&w, 512);
		jw_lit(&w, "{\"partners\":[");
		for (size_t i = 0; i < p->nlinks; i++) {
			char hex[PEERID_HEX_LEN + 1];
			if (p->links[i]->state != PC_L_UP || p->links[i]->session_only)
				continue;
			peerid_format(p->links[i]->rpid, hex, sizeof(hex));
			jw_lit(&w, n++ ? "," : "");
			jw_str(&w, hex);
		}
		jw_lit(&w, "]}");
		*body = jw_finish(&w, len);
		status = 200;
	} else {
		char mp[200];
		api_path_map(pc.o.channel, mp, sizeof(mp));
		snprintf(pre, sizeof(pre), "/v1/live/%s/chunks/", pc.o.channel);
		if (strcmp(path, mp) == 0) {
			if (p->have_play) {
				*body = api_map_render(pc.o.channel, &p->have, bmap_last(&p->have),
						       p->chunk_ms, len);
				status = *body ? 200 : 500;
			} else {
				pc_reply(body, len, "{\"error\":\"not_yet\"}");
			}
		} else if (strncmp(path, pre, strlen(pre)) == 0) {
			char *end;
			unsigned long seq = strtoul(path + strlen(pre), &end, 10);
			const char *from = pc_q(&q, "from");
			if (*end == '\0' && p->have_play && pc_chunk_len > 0 &&
			    bmap_has(&p->have, (uint32_t)seq)) {
				*body = malloc(pc_chunk_len);
				if (*body) {
					pc_chunk_fill(pc.o.channel, (uint32_t)seq, *body,
						      pc_chunk_len);
					*len = pc_chunk_len;
					status = 200;
					p->up_bytes += pc_chunk_len;
					uint64_t rpid;
					struct pc_link *k = via;
					if (!k && from &&
					    peerid_parse(from, strlen(from), &rpid) == 0)
						k = pc_link_by_pid(p, rpid);
					if (k)
						k->up++;
				} else {
					status = 500;
				}
			} else {
				pc_reply(body, len, "{\"error\":\"not_yet\"}");
			}
		} else {
			pc_reply(body, len, "{\"error\":\"not_found\"}");
		}
	}
out:
	evhttp_clear_headers(&q);
	return status;
}

static void
pc_http_handler(struct evhttp_request *req, void *arg)
{
	struct pc_peer *p = arg;
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *path = u ? evhttp_uri_get_path(u) : NULL;
	const char *query = u ? evhttp_uri_get_query(u) : NULL;
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	char *body = NULL;
	size_t len = 0;
	int status;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET || !path) {
		evhttp_send_error(req, 405, "Method Not Allowed");
		return;
	}
	status = pc_serve(p, NULL, path, query ? query : "", &body, &len);
	if (body && len)
		evbuffer_add(out, body, len);
	free(body);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  status == 200 && strstr(path, "/chunks/") ? "application/octet-stream"
								    : "application/json");
	evhttp_send_reply(req, status, status == 200 ? "OK" : "Error", out);
}

/* ---------------------------------------------------------------- chunks */

static void
pc_src_round(struct pc_src *s)
{
	s->last_issued = s->issued;
	s->last_completed = s->completed;
	s->issued = 0;
	s->completed = 0;
}

struct pc_creq {
	struct pc_peer *p;
	struct pc_src *src;
	struct pc_link *k; /* NULL = a cache */
	uint32_t seq;
};

static void
pc_chunk_got(struct pc_creq *c, int status, const char *body, size_t len)
{
	struct pc_peer *p = c->p;

	if (c->src->inflight)
		c->src->inflight--;
	if (bmap_in(&p->inflight, c->seq))
		bmap_clear(&p->inflight, c->seq);
	if (status != 200 || len == 0) {
		pc.st.chunk_errors++;
		return;
	}
	c->src->completed++;
	char *want = malloc(len);
	if (!want)
		return;
	pc_chunk_fill(pc.o.channel, c->seq, want, len);
	if (memcmp(want, body, len) != 0) {
		pc.st.chunks_corrupt++;
		free(want);
		return;
	}
	free(want);
	if (!pc_chunk_len)
		pc_chunk_len = len;
	if (!bmap_in(&p->have, c->seq) || bmap_has(&p->have, c->seq))
		return; /* slid out meanwhile, or a duplicate */
	bmap_set(&p->have, c->seq);
	p->down_bytes += len;
	if (c->k) {
		struct pc_peer *r = pc_peer_by_pid(c->k->rpid);
		c->k->down++;
		if (pc.o.verbose && r && strcmp(r->domain, p->domain) != 0)
			pc_log(p, "chunk %" PRIu32 " from %s in domain %s (link %s %s%s)", c->seq,
			       c->k->ruser, r->domain, pc_mode_names[c->k->mode], c->k->cid,
			       c->k->initiator ? " initiator" : "");
		pc.st.chunks_peer++;
		pc.st.bytes_peer += len;
		if (r && strcmp(r->domain, p->domain) != 0)
			pc.st.bytes_cross_domain += len;
		else
			pc.st.bytes_in_domain += len;
	} else {
		pc.st.chunks_cache++;
		pc.st.bytes_cache += len;
		pc.st.bytes_in_domain += len; /* the index-server hands out its domain's caches */
	}
}

static void
pc_chunk_http_done(int status, const char *body, size_t len, void *arg)
{
	pc_chunk_got(arg, status, body, len);
	free(arg);
}

static void
pc_chunk_link_done(struct pc_link *k, int status, const char *body, size_t len, void *arg)
{
	(void)k;
	pc_chunk_got(arg, status, body, len);
	free(arg);
}

struct pc_mreq {
	struct pc_peer *p;
	struct pc_src *src;
	bool cache;
};

static void
pc_map_got(struct pc_mreq *m, int status, const char *body, size_t len)
{
	struct pc_peer *p = m->p;
	int64_t head = -1;
	int cms = 0;

	m->src->map_busy = false;
	if (status != 200 || api_map_parse(body, len, &m->src->map, &head, &cms) < 0)
		return;
	m->src->have_map = true;
	m->src->map_at = pc_now_ms();
	if (cms > 0 && m->cache)
		p->chunk_ms = cms;
	if (!p->have_play && m->cache && head >= 0) {
		/* Playback starts start_back chunks behind the live head. */
		uint32_t play = (uint32_t)(head > pc.o.start_back ? head - pc.o.start_back : 0);
		if (play < m->src->map.first)
			play = m->src->map.first;
		p->play = play;
		bmap_init(&p->have, play > PC_BACK ? play - PC_BACK : 0, PC_WINDOW);
		bmap_init(&p->inflight, p->have.first, PC_WINDOW);
		p->have_play = true;
	}
}

static void
pc_map_http_done(int status, const char *body, size_t len, void *arg)
{
	pc_map_got(arg, status, body, len);
	free(arg);
}

static void
pc_map_link_done(struct pc_link *k, int status, const char *body, size_t len, void *arg)
{
	(void)k;
	pc_map_got(arg, status, body, len);
	free(arg);
}

static void
pc_maps_refresh(struct pc_peer *p, long long now)
{
	char path[200];

	api_path_map(pc.o.channel, path, sizeof(path));
	for (size_t i = 0; i < p->ncaches; i++) {
		struct pc_src *s = &p->caches[i].src;
		if (s->map_busy || now - s->map_at < pc.o.map_ms)
			continue;
		struct pc_mreq *m = calloc(1, sizeof(*m));
		if (!m)
			return;
		m->p = p;
		m->src = s;
		m->cache = true;
		s->map_busy = true;
		s->map_at = now;
		pc_kget(&s->kc, p->caches[i].url, path, pc_map_http_done, m);
	}
	for (size_t i = 0; i < p->nlinks; i++) {
		struct pc_link *k = p->links[i];
		struct pc_src *s = &k->src;
		if (k->state != PC_L_UP || !k->can_fetch || k->session_only || s->map_busy ||
		    now - s->map_at < pc.o.map_ms)
			continue;
		struct pc_mreq *m = calloc(1, sizeof(*m));
		if (!m)
			return;
		m->p = p;
		m->src = s;
		s->map_busy = true;
		s->map_at = now;
		pc_link_get(k, path, pc_map_link_done, m);
	}
}

/* Playback: one chunk per chunk_ms once startup_chunks are there. */
static void
pc_playback(struct pc_peer *p, long long now)
{
	if (!p->have_play)
		return;
	if (!p->playing && !bmap_has(&p->have, p->play) && now - p->t_joined_ms > 1000) {
		/* Nobody holds the start any more (or never did: a cache that
		 * began pulling at its source's head): start at the oldest
		 * chunk a source holds after it. */
		int64_t next = -1;
		bool held = false;
		for (size_t i = 0; i < p->ncaches && !held; i++) {
			const struct pc_src *s = &p->caches[i].src;
			if (!s->have_map)
				continue;
			held = bmap_has(&s->map, p->play);
			for (uint64_t q = (uint64_t)p->play + 1; !held && q < bmap_end(&s->map);
			     q++)
				if (bmap_has(&s->map, (uint32_t)q)) {
					if (next < 0 || (int64_t)q < next)
						next = (int64_t)q;
					break;
				}
		}
		if (!held && next > (int64_t)p->play) {
			p->play = (uint32_t)next;
			if (p->play > PC_BACK) {
				bmap_slide(&p->have, p->play - PC_BACK, NULL, NULL);
				bmap_slide(&p->inflight, p->play - PC_BACK, NULL, NULL);
			}
		}
	}
	if (!p->playing) {
		int run = 0;
		while (run < pc.o.startup_chunks && bmap_has(&p->have, p->play + (uint32_t)run))
			run++;
		if (run < pc.o.startup_chunks)
			return;
		p->playing = true;
		p->play_start_ms = now;
		p->play_next_ms = now + p->chunk_ms;
		pc.st.playing_peers++;
		pc_lat_add(&pc.st.startup_ms, (double)(now - p->t_joined_ms));
		return;
	}
	while (now >= p->play_next_ms) {
		if (bmap_has(&p->have, p->play))
			pc.st.played++;
		else
			pc.st.missed++;
		p->play++;
		p->play_next_ms += p->chunk_ms;
	}
	if (p->play > PC_BACK && p->play - PC_BACK > p->have.first) {
		bmap_slide(&p->have, p->play - PC_BACK, NULL, NULL);
		bmap_slide(&p->inflight, p->play - PC_BACK, NULL, NULL);
	}
}

static void
pc_schedule(struct pc_peer *p)
{
	struct sched_src src[PC_CACHES + PC_LINKS];
	struct pc_src *ps[PC_CACHES + PC_LINKS];
	struct pc_link *pk[PC_CACHES + PC_LINKS];
	struct sched_pick picks[PC_WINDOW];
	struct bmap skip;
	size_t n = 0, np;
	unsigned needed = 0, hi;
	int64_t head = -1;

	if (!p->have_play)
		return;
	for (size_t i = 0; i < p->ncaches; i++) {
		ps[n] = &p->caches[i].src;
		pk[n] = NULL;
		n++;
	}
	for (size_t i = 0; i < p->nlinks && n < PC_CACHES + PC_LINKS; i++) {
		struct pc_link *k = p->links[i];
		if (k->state != PC_L_UP || !k->can_fetch || k->session_only || !k->src.have_map)
			continue;
		ps[n] = &k->src;
		pk[n] = k;
		n++;
	}
	skip = p->have;
	for (size_t w = 0; w < BMAP_MAX_SIZE / 64; w++)
		skip.w[w] |= p->inflight.w[w];
	/* What lies before the playback position is of no use to us. */
	for (uint32_t s = skip.first; s < p->play && bmap_in(&skip, s); s++)
		bmap_set(&skip, s);
	for (size_t i = 0; i < n; i++)
		if (ps[i]->have_map && bmap_last(&ps[i]->map) > head)
			head = bmap_last(&ps[i]->map);
	for (uint32_t s = p->play; (int64_t)s <= head && bmap_in(&skip, s); s++)
		if (!bmap_has(&skip, s))
			needed++;
	if (!needed)
		return;
	/* Formula 4: H = k · N / M with k = 2. */
	hi = sched_upper(needed, (unsigned)n, 200);
	for (size_t i = 0; i < n; i++) {
		/* Formula 5 from the last round; requests still in flight
		 * count against it. */
		unsigned q = sched_next_count(ps[i]->last_issued, ps[i]->last_completed, 1, hi);
		src[i].map = ps[i]->have_map ? &ps[i]->map : NULL;
		src[i].quota = q > ps[i]->inflight ? q - ps[i]->inflight : 0;
		pc_src_round(ps[i]);
	}
	struct sched_in in = {
		.skip = &skip,
		.play = p->play,
		.urgent = (uint32_t)(pc.o.start_back / 3 > 0 ? pc.o.start_back / 3 : 1),
		.rng = &p->rng,
	};
	np = sched_plan(&in, src, n, picks, PC_WINDOW);
	for (size_t i = 0; i < np; i++) {
		struct pc_creq *c = calloc(1, sizeof(*c));
		char path[300];
		if (!c)
			return;
		c->p = p;
		c->src = ps[picks[i].src];
		c->k = pk[picks[i].src];
		c->seq = picks[i].seq;
		c->src->issued++;
		c->src->inflight++;
		bmap_set(&p->inflight, c->seq);
		api_path_chunk(pc.o.channel, c->seq, p->pid_hex, path, sizeof(path));
		if (c->k) {
			pc_link_get(c->k, path, pc_chunk_link_done, c);
		} else {
			pc_kget(&c->src->kc, p->caches[picks[i].src].url, path, pc_chunk_http_done,
				c);
		}
	}
}

/* ---------------------------------------------------------------- partners */

static void
pc_partners_got(struct pc_link *k, int status, const char *body, size_t len, void *arg)
{
	json_t *o, *e;
	size_t i;

	(void)arg;
	if (status != 200)
		return;
	o = json_loadb(body, len, 0, NULL);
	json_array_foreach (json_object_get(o, "partners"), i, e) {
		const char *s = json_string_value(e);
		uint64_t pid;
		if (s && peerid_parse(s, strlen(s), &pid) == 0)
			pc_member_add(k->p, pid);
	}
	json_decref(o);
}

static void
pc_maintain(struct pc_peer *p, long long now)
{
	unsigned target = partner_count_target(p->n, p->limit), have = pc_partner_count(p, false);
	unsigned mtarget = partner_members_target(p->n, 4);

	/* The member list: grow it from partners' lists (§3.1.4), trim the
	 * farthest when it is over 3 log N. */
	if (p->nmembers < mtarget && now >= p->next_gossip_ms) {
		p->next_gossip_ms = now + PC_GOSSIP_MS;
		for (size_t i = 0; i < p->nlinks; i++) {
			struct pc_link *k = p->links[i];
			if (k->state == PC_L_UP && k->can_fetch && !k->session_only) {
				pc_link_get(k, "/p2p/partners", pc_partners_got, NULL);
				break;
			}
		}
	}
	if (p->nmembers > mtarget + 8) {
		struct partner_member m[PC_MEMBERS];
		size_t out[PC_MEMBERS], nd;
		for (size_t i = 0; i < p->nmembers; i++) {
			m[i].pid = p->members[i].pid;
			m[i].seen_ms = p->members[i].seen_ms;
			/* Members we are linked to stay. */
			if (pc_link_by_pid(p, m[i].pid))
				m[i].seen_ms = now;
		}
		nd = partner_trim(p->pid, m, p->nmembers, mtarget, out);
		for (size_t i = 0; i < nd; i++)
			p->members[out[i]].pid = 0;
		size_t j = 0;
		for (size_t i = 0; i < p->nmembers; i++)
			if (p->members[i].pid)
				p->members[j++] = p->members[i];
		p->nmembers = j;
	}
	/* Replacement of the worst k · curNo partners (formula 3). */
	if (now >= p->next_replace_ms) {
		struct partner_score sc[PC_LINKS];
		struct pc_link *lk[PC_LINKS];
		size_t ns = 0, out[PC_LINKS], nw;
		p->next_replace_ms = now + pc.o.replace_s * 1000LL;
		for (size_t i = 0; i < p->nlinks; i++) {
			struct pc_link *k = p->links[i];
			if (k->state != PC_L_UP || k->session_only)
				continue;
			sc[ns].up = k->up;
			sc[ns].down = k->down;
			sc[ns].since_ms = k->since_ms;
			/* Too young to judge. */
			sc[ns].keep = now - k->since_ms < pc.o.replace_s * 1000LL;
			lk[ns++] = k;
		}
		nw = partner_worst(sc, ns, pc.o.p_down, now,
				   partner_replace_count((unsigned)ns, pc.o.k_replace), out);
		for (size_t i = 0; i < nw; i++) {
			struct pc_link *k = lk[out[i]];
			pc_link_get(k, "/p2p/bye", pc_lnoop, NULL);
			pc_member_refuse(p, k->rpid, pc.o.replace_s * 2000LL);
			pc_link_kill(k, "replaced (lowest PW)");
			pc.st.replaced++;
		}
		have = pc_partner_count(p, false);
	}
	if (have < target && p->nmembers) {
		struct partner_cand c[PC_MEMBERS];
		size_t out[PC_MEMBERS], nc;
		for (size_t i = 0; i < p->nmembers; i++) {
			c[i].pid = p->members[i].pid;
			c[i].skip = p->members[i].refused_until > now ||
				    pc_link_by_pid(p, p->members[i].pid) != NULL;
		}
		nc = partner_choose(p->pid, c, p->nmembers, target - have, &p->rng, out);
		for (size_t i = 0; i < nc; i++)
			pc_connect(p, c[out[i]].pid, false);
	}
}

/* ---------------------------------------------------------------- life */

static void pc_step(struct pc_peer *p);

static void
pc_retry(struct pc_peer *p, const char *what, int status)
{
	if (++p->retries > PC_RETRIES || pc.stopping) {
		pc_log(p, "%s failed (HTTP %d); giving up", what, status);
		p->state = PC_P_FAILED;
		return;
	}
	if (pc.o.verbose)
		pc_log(p, "%s failed (HTTP %d); retrying", what, status);
	p->retry_at = pc_now_ms() + 500 + (long long)(sched_rand(&p->rng) % 1000);
}

static void
pc_route_done(int status, const char *body, size_t len, void *arg)
{
	struct pc_peer *p = arg;

	if (status != 200 || api_route_parse(p, body, len) < 0) {
		pc.st.routes_failed++;
		pc_retry(p, "route", status);
		return;
	}
	pc.st.routes_ok++;
	pc_pid_insert(p);
	if (!p->user[0])
		pc_user_of(p->pid, p->user, sizeof(p->user));
	p->retries = 0;
	p->state = p->publisher ? PC_P_JOIN : PC_P_REGISTER;
	pc_step(p);
}

static void
pc_login_done(int status, const char *body, size_t len, void *arg)
{
	struct pc_peer *p = arg;

	if (status != 200 || api_login_parse(p, body, len) < 0) {
		pc.st.logins_failed++;
		pc_retry(p, "login", status);
		return;
	}
	long long now = pc_now_ms();
	pc.st.logins_ok++;
	if (!pc.st.logins_first_ms)
		pc.st.logins_first_ms = p->t_route_ms;
	pc.st.logins_last_ms = now;
	pc_lat_add(&pc.st.login_ms, (double)(now - p->t_route_ms));
	if (p->outer)
		pc.st.nat_outer++;
	else
		pc.st.nat_inner++;
	p->retries = 0;
	p->hb_next = now;
	p->state = PC_P_JOIN;
	pc_step(p);
}

static void
pc_register_done(int status, const char *body, size_t len, void *arg)
{
	struct pc_peer *p = arg;

	(void)body;
	(void)len;
	if (status != 201 && status != 409) {
		pc_retry(p, "register", status);
		return;
	}
	if (status == 201)
		pc.st.registers++;
	p->state = PC_P_LOGIN;
	pc_step(p);
}

static void
pc_announce_done(int status, const char *body, size_t len, void *arg)
{
	(void)arg;
	/* Bencoded; a failure reason is a 200 with "failure reason". */
	if (status == 200 && len > 0 && body[0] == 'd' && !memmem(body, len, "failure reason", 14))
		pc.st.announces_ok++;
	else
		pc.st.announces_failed++;
}

static void
pc_join_done(int status, const char *body, size_t len, void *arg)
{
	struct pc_peer *p = arg;
	long long now = pc_now_ms();

	if (status != 200 || api_join_parse(p, body, len) < 0) {
		pc.st.joins_failed++;
		pc_retry(p, "join", status);
		return;
	}
	pc.st.joins_ok++;
	if (!p->t_joined_ms) {
		p->t_joined_ms = now;
		pc_lat_add(&pc.st.join_ms, (double)(now - p->start_ms));
	}
	p->ihb_next = now + p->ihb_ms;
	p->next_maint_ms = now;
	p->next_replace_ms = now + pc.o.replace_s * 1000LL;
	p->state = PC_P_RUN;
	if (pc.o.tracker[0])
		api_announce(p, "started", false, pc_announce_done);
}

static void
pc_publish_done(int status, const char *body, size_t len, void *arg)
{
	struct pc_peer *p = arg;

	if (status != 200 || api_publish_parse(p, body, len) < 0) {
		pc_retry(p, "publish", status);
		return;
	}
	p->state = PC_P_RUN;
	p->play_next_ms = pc_now_ms();
	pc_log(p, "publishing %s to %s", pc.o.channel, p->pub_url);
	if (pc.o.tracker[0])
		api_announce(p, "started", true, pc_announce_done);
}

static void
pc_put_done(int status, const char *body, size_t len, void *arg)
{
	struct pc_peer *p = arg;

	if (p->pub_busy)
		p->pub_busy--;
	if (status == 201) {
		pc.st.published++;
		return;
	}
	pc.st.publish_errors++;
	if (pc.o.verbose || pc.st.publish_errors < 5)
		pc_log(p, "PUT chunk: HTTP %d %.*s", status, (int)(len < 200 ? len : 200), body);
	if (status == 401 || status == 403) {
		p->state = PC_P_JOIN; /* a new token */
		p->retry_at = pc_now_ms() + 1000;
	}
}

static void
pc_publish_tick(struct pc_peer *p, long long now)
{
	size_t len = (size_t)pc.o.chunk_bytes;
	char *buf;

	/* Up to 8 uploads in flight, so one slow answer does not hold the
	 * stream back; far behind (a cache that stalled for 10 s): skip
	 * ahead, the channel is live. */
	if (now - p->play_next_ms > 10000) {
		p->pub_seq += (uint32_t)((now - p->play_next_ms) / pc.o.chunk_ms);
		p->play_next_ms = now;
	}
	while (now >= p->play_next_ms && p->pub_busy < 8) {
		p->play_next_ms += pc.o.chunk_ms;
		p->pub_seq++;
		buf = malloc(len);
		if (!buf)
			return;
		pc_chunk_fill(pc.o.channel, p->pub_seq, buf, len);
		p->pub_busy++;
		api_put_chunk(p, p->pub_seq, buf, len, pc_put_done);
		free(buf);
	}
}

/* Starts the request of the current state. */
static void
pc_step(struct pc_peer *p)
{
	switch (p->state) {
	case PC_P_ROUTE:
		p->t_route_ms = pc_now_ms();
		api_route(p, pc_route_done);
		break;
	case PC_P_REGISTER:
		api_register(p, pc_register_done);
		break;
	case PC_P_LOGIN:
		api_login(p, pc_login_done);
		break;
	case PC_P_JOIN:
		if (p->publisher)
			api_publish(p, pc_publish_done);
		else
			api_join(p, pc_join_done);
		break;
	default:
		break;
	}
}

static void
pc_tick(evutil_socket_t fd, short what, void *arg)
{
	struct pc_peer *p = arg;
	long long now = pc_now_ms();

	(void)fd;
	(void)what;
	if (pc.stopping || p->state == PC_P_DONE || p->state == PC_P_FAILED)
		return;
	if (p->state == PC_P_IDLE && now >= p->start_ms) {
		p->state = PC_P_ROUTE;
		pc_step(p);
	} else if (p->retry_at && now >= p->retry_at) {
		/* A retry is due. */
		p->retry_at = 0;
		pc_step(p);
	}
	if (p->publisher) {
		if (p->state == PC_P_RUN)
			pc_publish_tick(p, now);
		return;
	}
	if (p->token[0] && now >= p->hb_next)
		pc_heartbeat(p);
	if (p->state != PC_P_RUN)
		return;
	if (p->stop_ms && now >= p->stop_ms) {
		pc_peer_stop(p);
		return;
	}
	if (now >= p->ihb_next) {
		p->ihb_next = now + (p->ihb_ms > 0 ? p->ihb_ms : 1000);
		api_index_heartbeat(p, NULL);
	}
	/* Links: deadlines, relay transport, lan retries. */
	for (size_t i = 0; i < p->nlinks; i++) {
		struct pc_link *k = p->links[i];
		if (k->state == PC_L_DEAD)
			continue;
		if (k->dying && now > k->deadline_ms) {
			pc_link_kill(k, "over partner limit");
			continue;
		}
		if (k->session_only && k->state == PC_L_UP && now > k->since_ms + 3000) {
			pc_link_kill(k, "session over");
			continue;
		}
		if (k->state == PC_L_CONNECTING && now > k->deadline_ms) {
			if (k->initiator && !k->reported)
				pc_report(k, false, "timeout");
			pc_link_kill(k, "connect timed out");
			continue;
		}
		if (k->relay) {
			pc_relay_poll(k);
			pc_relay_flush(k);
			for (int j = 0; j < PC_RPENDING; j++) {
				struct pc_rreq *r = k->rreq[j];
				if (r && now > r->deadline) {
					k->rreq[j] = NULL;
					if (r->cb)
						r->cb(k, 0, "", 0, r->arg);
					free(r);
				}
			}
		}
		if (k->state == PC_L_CONNECTING && k->initiator && k->mode == PC_LAN &&
		    k->tries > 0 && !k->relay) {
			k->tries = 0;
			pc_lan_ask(k);
		}
	}
	if (now >= p->next_round_ms) {
		p->next_round_ms = now + pc.o.round_ms;
		pc_maps_refresh(p, now);
		pc_playback(p, now);
		pc_schedule(p);
	}
	if (now >= p->next_maint_ms) {
		p->next_maint_ms = now + PC_MAINT_MS;
		pc_links_compact(p);
		pc_maintain(p, now);
	}
}

struct pc_peer *
pc_peer_new(int idx)
{
	struct pc_peer *p = calloc(1, sizeof(*p));
	struct evhttp_bound_socket *bs;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct timeval tv = { 0, PC_TICK_MS * 1000 };

	if (!p)
		return NULL;
	p->idx = idx;
	p->state = PC_P_IDLE;
	p->rng = pc.o.seed * 0x9e3779b97f4a7c15ull + (uint64_t)idx * 7919 + 1;
	p->chunk_ms = 200;
	p->limit =
		partner_limit((unsigned long long)pc.o.bw_kbps, (unsigned long long)pc.o.rate_kbps);
	crypto_box_keypair(p->pk, p->sk);
	sodium_bin2base64(p->pk64, sizeof(p->pk64), p->pk, sizeof(p->pk),
			  sodium_base64_VARIANT_ORIGINAL);
	snprintf(p->password, sizeof(p->password), "%s",
		 pc.o.password[0] ? pc.o.password : PC_PASSWORD);
	p->http = evhttp_new(pc.base);
	if (!p->http)
		goto fail;
	evhttp_set_gencb(p->http, pc_http_handler, p);
	evhttp_set_timeout(p->http, 30);
	bs = evhttp_bind_socket_with_handle(p->http, "127.0.0.1", 0);
	if (!bs || getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) != 0)
		goto fail;
	p->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	p->tick = event_new(pc.base, -1, EV_PERSIST, pc_tick, p);
	if (!p->tick || event_add(p->tick, &tv) != 0)
		goto fail;
	return p;
fail:
	pc_peer_free(p);
	return NULL;
}

void
pc_peer_start(struct pc_peer *p)
{
	(void)p; /* the tick starts it at start_ms */
}

void
pc_peer_stop(struct pc_peer *p)
{
	if (p->state == PC_P_DONE)
		return;
	if (p->state == PC_P_RUN && !p->publisher) {
		for (size_t i = 0; i < p->nlinks; i++) {
			struct pc_link *k = p->links[i];
			if (k->state == PC_L_UP && k->can_fetch)
				pc_link_get(k, "/p2p/bye", pc_lnoop, NULL);
			pc_link_kill(k, "leaving");
		}
		api_leave(p);
	}
	if (p->state == PC_P_RUN && pc.o.tracker[0])
		api_announce(p, "stopped", p->publisher, pc_announce_done);
	p->state = PC_P_DONE;
}

void
pc_peer_free(struct pc_peer *p)
{
	if (!p)
		return;
	if (p->tick)
		event_free(p->tick);
	if (p->http)
		evhttp_free(p->http);
	for (size_t i = 0; i < p->nlinks; i++) {
		struct pc_link *k = p->links[i];
		pc_link_kill(k, "exit");
		free(k);
	}
	sodium_memzero(p->sk, sizeof(p->sk));
	free(p);
}

void
pc_peer_kill_link(struct pc_link *k)
{
	pc_link_kill(k, "exit");
	pc_kclose(&k->src.kc);
}

void
pc_peer_close_caches(struct pc_peer *p)
{
	for (size_t i = 0; i < p->ncaches; i++)
		pc_kclose(&p->caches[i].src.kc);
}

void pc_graveyard_free(void);
void
pc_graveyard_free(void)
{
	for (size_t i = 0; i < pc_ngrave; i++)
		free(pc_grave[i]);
	free(pc_grave);
	pc_grave = NULL;
	pc_ngrave = pc_grave_cap = 0;
	free(pc_pid_tab);
	pc_pid_tab = NULL;
}

/* LPEclient (seed 000 §5): random sessions between logged-in peers, beyond
 * the partners, to measure the connect scenarios and K_ra. */
void
pc_session_tick(void)
{
	long long now = pc_now_ms();
	struct pc_peer *a, *b;

	if (pc.sessions_left <= 0 || now < pc.next_session_ms || pc.npeers < 2)
		return;
	pc.next_session_ms = now + 100;
	for (int tries = 0; tries < 8; tries++) {
		a = pc.peers[sched_rand(&pc.o.seed) % pc.npeers];
		b = pc.peers[sched_rand(&pc.o.seed) % pc.npeers];
		if (a == b || a->publisher || b->publisher || a->state != PC_P_RUN ||
		    b->state != PC_P_RUN || !a->token[0] || !b->token[0])
			continue;
		pc.sessions_left--;
		pc_connect(a, b->pid, true);
		return;
	}
}

void
pc_log(const struct pc_peer *p, const char *fmt, ...)
{
	va_list ap;
	char buf[512];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (p)
		fprintf(stderr, "p2pcdn-peer[%d %s]: %s\n", p->idx, p->user[0] ? p->user : "-",
			buf);
	else
		fprintf(stderr, "p2pcdn-peer: %s\n", buf);
}
