// SPDX-License-Identifier: MIT
/* relay-server: tunnel mode, two upgraded sockets spliced with bufferevents. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "dmn.h"
#include "log.h"
#include "relay.h"

/*
 * Back-pressure (seed 000 §4.4.4 asks for bounded queues): what one end
 * sends is moved, without copying, to the other end's output buffer. When
 * that buffer reaches its share of max_queued_bytes the relay stops
 * reading from the sender, so the sender's TCP window closes and a fast
 * sender is slowed to the pace of a slow receiver; reading resumes when
 * the buffer has drained to half. Per session the relay holds at most
 * max_queued_bytes: two directions of (share + one read).
 */

struct relay_tend {
	struct relay_tunnel *t;
	int idx;
	struct bufferevent *bev; /* writes, and write errors */
	struct event *rev;       /* reads: straight into the other end's output */
	struct http_upgrade *up;
	int fd;
	struct evbuffer *pre; /* bytes that came with the upgrade, before pairing */
	bool eof;             /* this end sent FIN */
	bool shut;            /* we sent FIN to this end */
	bool paused;          /* not read: the other end's buffer is full */
	size_t counted;       /* output bytes counted in env->tun_queued */
};

struct relay_tunnel {
	struct relay_env *env;
	struct relay_sess *s;
	struct relay_tend e[2];
	bool spliced;
	size_t chunk, share;
};

struct relay_attach {
	struct relay_tctx ctx;
	struct http_upgrade *up;
	int fd;
	size_t extra_len;
	char extra[];
};

static void
relay_tend_account(struct relay_tend *e)
{
	size_t now = e->bev ? evbuffer_get_length(bufferevent_get_output(e->bev)) : 0;
	atomic_fetch_add(&e->t->env->tun_queued, (long long)now - (long long)e->counted);
	e->counted = now;
}

/* Both directions finished and flushed: the session ends cleanly. */
static bool
relay_tunnel_check_done(struct relay_tunnel *t)
{
	if (t->e[0].eof && t->e[1].eof && t->e[0].shut && t->e[1].shut) {
		relay_tunnel_close(t->env, t->s, RELAY_END_CLOSED);
		return true;
	}
	return false;
}

/* Sends FIN to `to` once what the other end sent before its FIN is out.
 * Returns true when that ended the tunnel (t is freed then). */
static bool
relay_tunnel_maybe_shut(struct relay_tunnel *t, struct relay_tend *to)
{
	struct relay_tend *from = &t->e[!to->idx];
	if (from->eof && !to->shut && evbuffer_get_length(bufferevent_get_output(to->bev)) == 0) {
		shutdown(to->fd, SHUT_WR);
		to->shut = true;
		return relay_tunnel_check_done(t);
	}
	return false;
}

/*
 * Reads of one end go straight into the other end's output buffer with
 * readv(2) into space reserved there: one copy in, one copy out, as a
 * plain TCP relay does. (A bufferevent's own reads are capped at 4 KiB
 * each by libevent, which costs most of the throughput.) The read size is
 * also what keeps a session within max_session_bytes.
 */
static void
relay_tunnel_readev(evutil_socket_t fd, short what, void *arg)
{
	struct relay_tend *from = arg;
	struct relay_tunnel *t = from->t;
	struct relay_env *env = t->env;
	struct relay_sess *s = t->s;
	struct relay_tend *to = &t->e[!from->idx];
	struct evbuffer *out = bufferevent_get_output(to->bev);
	struct evbuffer_iovec v[2];
	struct iovec iov[2];
	uint64_t used, max = env->lim.max_session_bytes;
	size_t want = t->chunk;
	ssize_t n;
	int nv;
	(void)what;

	used = atomic_load(&s->bytes[0]) + atomic_load(&s->bytes[1]);
	if (used >= max)
		want = 1; /* only to tell more data (over quota) from EOF */
	else if (max - used < want)
		want = (size_t)(max - used);
	nv = evbuffer_reserve_space(out, (ev_ssize_t)want, v, 2);
	if (nv <= 0) {
		relay_tunnel_close(env, s, RELAY_END_ERROR);
		return;
	}
	size_t left = want;
	for (int i = 0; i < nv; i++) {
		if (v[i].iov_len > left)
			v[i].iov_len = left;
		left -= v[i].iov_len;
		iov[i].iov_base = v[i].iov_base;
		iov[i].iov_len = v[i].iov_len;
	}
	n = readv(fd, iov, nv);
	if (n < 0) {
		evbuffer_commit_space(out, v, 0);
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		relay_tunnel_close(env, s,
				   t->e[0].eof && t->e[1].eof ? RELAY_END_CLOSED : RELAY_END_ERROR);
		return;
	}
	if (n == 0) {
		evbuffer_commit_space(out, v, 0);
		event_del(from->rev);
		from->eof = true;
		relay_tunnel_maybe_shut(t, to);
		return;
	}
	if (used >= max) {
		evbuffer_commit_space(out, v, 0);
		relay_tunnel_close(env, s, RELAY_END_QUOTA_BYTES);
		return;
	}
	left = (size_t)n;
	for (int i = 0; i < nv; i++) {
		if (v[i].iov_len > left)
			v[i].iov_len = left;
		left -= v[i].iov_len;
	}
	evbuffer_commit_space(out, v, nv);
	atomic_fetch_add(&s->bytes[from->idx], (uint64_t)n);
	atomic_fetch_add(&env->bytes_total, (uint64_t)n);
	met_add(env->m.bytes[RELAY_MODE_TUNNEL], (double)n);
	atomic_store(&s->last_ms, dmn_now_ms());
	relay_tend_account(to);
	if (evbuffer_get_length(out) >= t->share && !from->paused) {
		event_del(from->rev);
		from->paused = true;
	}
}

static void
relay_tunnel_writecb(struct bufferevent *bev, void *arg)
{
	struct relay_tend *to = arg;
	struct relay_tunnel *t = to->t;
	struct relay_tend *from = &t->e[!to->idx];
	(void)bev;

	relay_tend_account(to);
	if (relay_tunnel_maybe_shut(t, to))
		return;
	if (from->paused && !from->eof) {
		from->paused = false;
		event_add(from->rev, NULL);
	}
}

static void
relay_tunnel_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct relay_tend *e = arg;
	struct relay_tunnel *t = e->t;
	(void)bev;

	if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
		/* The write side failed (the peer reset or went away). A reset
		 * after both FINs is the normal end of some clients. */
		relay_tunnel_close(t->env, t->s,
				   t->e[0].eof && t->e[1].eof ? RELAY_END_CLOSED : RELAY_END_ERROR);
	}
}

static void
relay_tunnel_splice(struct relay_tunnel *t)
{
	for (int i = 0; i < 2; i++) {
		struct relay_tend *e = &t->e[i];
		bufferevent_setcb(e->bev, NULL, relay_tunnel_writecb, relay_tunnel_eventcb, e);
		bufferevent_setwatermark(e->bev, EV_WRITE, t->share / 2, 0);
		bufferevent_set_max_single_write(e->bev, (ev_ssize_t)t->chunk);
	}
	for (int i = 0; i < 2; i++) {
		struct relay_tend *e = &t->e[i];
		size_t n = evbuffer_get_length(e->pre);
		if (n) {
			bufferevent_write_buffer(t->e[!i].bev, e->pre);
			atomic_fetch_add(&t->s->bytes[i], n);
			atomic_fetch_add(&t->env->bytes_total, n);
			met_add(t->env->m.bytes[RELAY_MODE_TUNNEL], (double)n);
			relay_tend_account(&t->e[!i]);
		}
	}
	t->spliced = true;
	bufferevent_enable(t->e[0].bev, EV_WRITE);
	bufferevent_enable(t->e[1].bev, EV_WRITE);
	event_add(t->e[0].rev, NULL);
	event_add(t->e[1].rev, NULL);
}

static void
relay_tunnel_attach(void *arg)
{
	struct relay_attach *a = arg;
	struct relay_env *env = a->ctx.env;
	struct relay_sess *s;
	struct relay_tunnel *t;
	struct relay_tend *e;
	int one = 1;

	pthread_mutex_lock(&env->lock);
	s = relay_sess_find(env, a->ctx.cid);
	if (!s || s->end || env->stopping)
		goto refuse;
	if (!s->tun) {
		size_t q = env->lim.max_queued_bytes;
		t = calloc(1, sizeof(*t));
		if (!t)
			goto refuse;
		t->env = env;
		t->s = s;
		/* One read at most a quarter of the allowance (and 256 KiB);
		 * each direction's buffer gets half of what remains. */
		t->chunk = q / 4 < 262144 ? q / 4 : 262144;
		t->share = q / 2 - t->chunk;
		for (int i = 0; i < 2; i++) {
			t->e[i].t = t;
			t->e[i].idx = i;
			t->e[i].fd = -1;
		}
		s->tun = t;
	}
	t = s->tun;
	e = &t->e[a->ctx.side];
	if (e->bev)
		goto refuse; /* cannot happen: the side was reserved */
	evutil_make_socket_nonblocking(a->fd);
	setsockopt(a->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	e->bev = bufferevent_socket_new(evl_base(env->loop), a->fd, 0);
	e->rev =
		event_new(evl_base(env->loop), a->fd, EV_READ | EV_PERSIST, relay_tunnel_readev, e);
	e->pre = evbuffer_new();
	if (!e->bev || !e->rev || !e->pre || evbuffer_add(e->pre, a->extra, a->extra_len) < 0) {
		if (e->bev)
			bufferevent_free(e->bev);
		if (e->rev)
			event_free(e->rev);
		if (e->pre)
			evbuffer_free(e->pre);
		e->bev = NULL;
		e->rev = NULL;
		e->pre = NULL;
		goto refuse;
	}
	e->fd = a->fd;
	e->up = a->up;
	s->side[a->ctx.side].tstate = 2;
	atomic_store(&s->last_ms, dmn_now_ms());
	if (t->e[!a->ctx.side].bev)
		relay_tunnel_splice(t);
	pthread_mutex_unlock(&env->lock);
	free(a);
	return;
refuse:
	if (s && !s->end)
		s->side[a->ctx.side].tstate = 0;
	pthread_mutex_unlock(&env->lock);
	http_upgrade_close(a->up);
	free(a);
}

void
relay_tunnel_upgraded(struct http_upgrade *u, int fd, const char *extra, size_t extra_len,
		      void *arg)
{
	struct relay_tctx *ctx = arg;
	struct relay_env *env = ctx->env;
	struct relay_attach *a;

	if (fd < 0) {
		/* The 101 never went out: free the side for another try. */
		pthread_mutex_lock(&env->lock);
		struct relay_sess *s = relay_sess_find(env, ctx->cid);
		if (s && !s->end && s->side[ctx->side].tstate == 1)
			s->side[ctx->side].tstate = 0;
		pthread_mutex_unlock(&env->lock);
		free(ctx);
		return;
	}
	a = malloc(sizeof(*a) + extra_len);
	if (a) {
		a->ctx = *ctx;
		a->up = u;
		a->fd = fd;
		a->extra_len = extra_len;
		if (extra_len)
			memcpy(a->extra, extra, extra_len);
	}
	free(ctx);
	if (!a || evl_call(env->loop, relay_tunnel_attach, a) < 0) {
		free(a);
		http_upgrade_close(u);
		/* The sweep ends the half-open session when it goes idle. */
	}
}

void
relay_tunnel_close(struct relay_env *env, struct relay_sess *s, enum relay_end why)
{
	struct relay_tunnel *t = s->tun;
	struct relay_waiter *resume = NULL;

	if (t) {
		for (int i = 0; i < 2; i++) {
			struct relay_tend *e = &t->e[i];
			atomic_fetch_sub(&env->tun_queued, (long long)e->counted);
			e->counted = 0;
			if (e->rev)
				event_free(e->rev);
			if (e->bev)
				bufferevent_free(e->bev);
			if (e->pre)
				evbuffer_free(e->pre);
			if (e->up)
				http_upgrade_close(e->up);
		}
		free(t);
	}
	pthread_mutex_lock(&env->lock);
	s->tun = NULL;
	s->side[0].tstate = s->side[1].tstate = 0;
	relay_sess_end(env, s, why, &resume);
	pthread_mutex_unlock(&env->lock);
	relay_waiters_resume(resume);
}
