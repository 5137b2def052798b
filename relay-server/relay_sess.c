// SPDX-License-Identifier: MIT
/* relay-server: the session table, limits and caps, session ends and the periodic sweep. */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dmn.h"
#include "log.h"
#include "relay.h"

const char *const relay_refusal_names[RELAY_REF__N] = {
	[RELAY_REF_TOKEN_MISSING] = "token_missing",
	[RELAY_REF_TOKEN_INVALID] = "token_invalid",
	[RELAY_REF_TOKEN_EXPIRED] = "token_expired",
	[RELAY_REF_TOKEN_WRONG_SESSION] = "token_wrong_session",
	[RELAY_REF_TOKEN_MISMATCH] = "token_mismatch",
	[RELAY_REF_RELAY_FULL] = "relay_full",
	[RELAY_REF_OVER_SOURCE_CAP] = "over_source_cap",
	[RELAY_REF_OVER_ACCOUNT_CAP] = "over_account_cap",
	[RELAY_REF_MESSAGE_TOO_LARGE] = "message_too_large",
	[RELAY_REF_QUEUE_FULL] = "queue_full",
	[RELAY_REF_SEQ_GAP] = "seq_gap",
	[RELAY_REF_MODE_CONFLICT] = "mode_conflict",
	[RELAY_REF_SIDE_IN_USE] = "side_in_use",
	[RELAY_REF_SESSION_CLOSED] = "session_closed",
	[RELAY_REF_BAD_REQUEST] = "bad_request",
	[RELAY_REF_UPGRADE_REQUIRED] = "upgrade_required",
	[RELAY_REF_SHUTTING_DOWN] = "shutting_down",
	[RELAY_REF_TUNNEL_UNAVAILABLE] = "tunnel_unavailable",
};

const char *
relay_end_name(enum relay_end e)
{
	static const char *const names[RELAY_END__N] = {
		[RELAY_END_NONE] = "active",
		[RELAY_END_CLOSED] = "closed",
		[RELAY_END_IDLE] = "idle",
		[RELAY_END_QUOTA_BYTES] = "quota_bytes",
		[RELAY_END_QUOTA_TIME] = "quota_time",
		[RELAY_END_SHUTDOWN] = "shutdown",
		[RELAY_END_ERROR] = "error",
	};
	return (unsigned)e < RELAY_END__N ? names[e] : "unknown";
}

void
relay_refuse_count(struct relay_env *env, enum relay_refusal r)
{
	if (env->m.refusals[r])
		met_add(env->m.refusals[r], 1);
}

/* FNV-1a over the 32 hex digits; the cid is MAC-checked, so no keyed hash. */
static size_t
relay_cid_hash(const char *cid)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < RELAY_CID_LEN; i++)
		h = (h ^ (unsigned char)cid[i]) * 1099511628211ULL;
	return (size_t)h;
}

int
relay_sess_init(struct relay_env *env)
{
	env->table_size = 1024;
	env->table = calloc(env->table_size, sizeof(*env->table));
	env->per_source = relay_caps_new();
	env->per_account = relay_caps_new();
	if (!env->table || !env->per_source || !env->per_account)
		return -ENOMEM;
	return 0;
}

static void
relay_sess_free(struct relay_sess *s)
{
	relay_mbox_clear(&s->side[0].out);
	relay_mbox_clear(&s->side[1].out);
	free(s);
}

void
relay_sess_done(struct relay_env *env)
{
	if (env->table) {
		for (size_t i = 0; i < env->table_size; i++) {
			struct relay_sess *s = env->table[i], *next;
			for (; s; s = next) {
				next = s->hnext;
				relay_sess_free(s);
			}
		}
	}
	free(env->table);
	env->table = NULL;
	relay_caps_free(env->per_source);
	relay_caps_free(env->per_account);
	while (env->acct_head) {
		struct relay_acct *a = env->acct_head;
		env->acct_head = a->next;
		free(a);
	}
}

struct relay_sess *
relay_sess_find(struct relay_env *env, const char *cid)
{
	struct relay_sess *s = env->table[relay_cid_hash(cid) & (env->table_size - 1)];
	for (; s; s = s->hnext)
		if (memcmp(s->cid, cid, RELAY_CID_LEN) == 0)
			return s;
	return NULL;
}

static void
relay_table_grow(struct relay_env *env)
{
	size_t n = env->table_size * 2;
	struct relay_sess **t = calloc(n, sizeof(*t));
	if (!t)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < env->table_size; i++) {
		struct relay_sess *s = env->table[i], *next;
		for (; s; s = next) {
			size_t h = relay_cid_hash(s->cid) & (n - 1);
			next = s->hnext;
			s->hnext = t[h];
			t[h] = s;
		}
	}
	free(env->table);
	env->table = t;
	env->table_size = n;
}

static void
relay_table_remove(struct relay_env *env, struct relay_sess *s)
{
	struct relay_sess **p = &env->table[relay_cid_hash(s->cid) & (env->table_size - 1)];
	for (; *p; p = &(*p)->hnext) {
		if (*p == s) {
			*p = s->hnext;
			return;
		}
	}
}

void
relay_set_mode(struct relay_env *env, struct relay_sess *s, enum relay_mode mode)
{
	env->nmode[s->mode]--;
	met_add(env->m.sessions[s->mode], -1);
	s->mode = mode;
	env->nmode[mode]++;
	met_add(env->m.sessions[mode], 1);
	met_add(env->m.started[mode], 1);
}

/* Takes the caps of one side; on failure nothing is held. */
static int
relay_side_take(struct relay_env *env, const struct relay_token *tok, const char *client,
		enum relay_refusal *ret_ref)
{
	int r = relay_caps_take(env->per_source, client, env->lim.max_per_source);
	if (r < 0) {
		*ret_ref = r == -EDQUOT ? RELAY_REF_OVER_SOURCE_CAP : RELAY_REF_RELAY_FULL;
		return r;
	}
	r = relay_caps_take(env->per_account, tok->user, env->lim.max_per_account);
	if (r < 0) {
		relay_caps_put(env->per_source, client);
		*ret_ref = r == -EDQUOT ? RELAY_REF_OVER_ACCOUNT_CAP : RELAY_REF_RELAY_FULL;
		return r;
	}
	return 0;
}

struct relay_sess *
relay_sess_attach(struct relay_env *env, const struct relay_token *tok, const char *client,
		  enum relay_refusal *ret_ref, enum relay_end *ret_end)
{
	struct relay_sess *s = relay_sess_find(env, tok->cid);
	struct relay_side *me, *other;
	bool fresh = false;

	if (s && s->end) {
		*ret_ref = RELAY_REF_SESSION_CLOSED;
		*ret_end = s->end;
		return NULL;
	}
	if (!s) {
		if (env->stopping) {
			*ret_ref = RELAY_REF_SHUTTING_DOWN;
			return NULL;
		}
		if (env->nactive >= env->lim.max_sessions) {
			*ret_ref = RELAY_REF_RELAY_FULL;
			return NULL;
		}
		s = calloc(1, sizeof(*s));
		if (!s) {
			*ret_ref = RELAY_REF_RELAY_FULL;
			return NULL;
		}
		memcpy(s->cid, tok->cid, RELAY_CID_LEN + 1);
		s->started_ms = dmn_now_ms();
		{
			struct timespec ts;
			if (clock_gettime(CLOCK_REALTIME, &ts) == 0)
				s->started_wall_ms =
					(long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
		}
		atomic_store(&s->last_ms, s->started_ms);
		fresh = true;
	}
	me = &s->side[tok->side];
	other = &s->side[!tok->side];
	/* Both tokens of a session come from one POST /v1/connect: the names
	 * must agree with what the session already knows. */
	if ((me->attached &&
	     (strcmp(me->user, tok->user) != 0 || strcmp(me->peer, tok->peer) != 0)) ||
	    (other->attached &&
	     (strcmp(other->user, tok->peer) != 0 || strcmp(other->peer, tok->user) != 0))) {
		*ret_ref = RELAY_REF_TOKEN_MISMATCH;
		return NULL; /* never fresh: a fresh session has no side attached */
	}
	if (!me->attached) {
		if (relay_side_take(env, tok, client, ret_ref) < 0) {
			if (fresh)
				free(s);
			return NULL;
		}
		me->attached = true;
		snprintf(me->user, sizeof(me->user), "%s", tok->user);
		snprintf(me->peer, sizeof(me->peer), "%s", tok->peer);
		snprintf(me->addr, sizeof(me->addr), "%s", client);
	}
	if (tok->expiry > s->tok_expiry)
		s->tok_expiry = tok->expiry;
	if (fresh) {
		size_t h = relay_cid_hash(s->cid) & (env->table_size - 1);
		s->hnext = env->table[h];
		env->table[h] = s;
		env->nactive++;
		env->nmode[RELAY_MODE_NONE]++;
		met_add(env->m.sessions[RELAY_MODE_NONE], 1);
		met_add(env->m.started[RELAY_MODE_NONE], 1);
		if (env->nactive + env->ntomb > env->table_size)
			relay_table_grow(env);
	}
	return s;
}

static void
relay_tomb_unlink(struct relay_env *env, struct relay_sess *s)
{
	if (s->tprev)
		s->tprev->tnext = s->tnext;
	else
		env->tomb_head = s->tnext;
	if (s->tnext)
		s->tnext->tprev = s->tprev;
	else
		env->tomb_tail = s->tprev;
	env->ntomb--;
}

void
relay_sess_end(struct relay_env *env, struct relay_sess *s, enum relay_end why,
	       struct relay_waiter **resume)
{
	struct relay_acct *a;
	size_t dropped = 0;

	if (s->end)
		return;
	s->end = why;
	for (int i = 0; i < 2; i++) {
		struct relay_side *side = &s->side[i];
		if (side->waiter)
			relay_waiter_answer(env, side->waiter, resume);
		env->mbox_bytes -= side->out.bytes;
		env->mbox_msgs -= side->out.count;
		dropped += relay_mbox_clear(&side->out);
		if (side->attached) {
			relay_caps_put(env->per_source, side->addr);
			relay_caps_put(env->per_account, side->user);
		}
	}
	if (dropped)
		met_add(env->m.drop_unacked, (double)dropped);
	env->nactive--;
	env->nmode[s->mode]--;
	met_add(env->m.sessions[s->mode], -1);
	met_add(env->m.ended[why], 1);
	met_set(env->m.queued_msgs, (double)env->mbox_msgs);
	env->ended[why]++;

	a = calloc(1, sizeof(*a));
	if (a) {
		struct timespec ts;
		memcpy(a->cid, s->cid, sizeof(a->cid));
		a->mode = s->mode;
		a->reason = why;
		a->bytes_ab = atomic_load(&s->bytes[0]);
		a->bytes_ba = atomic_load(&s->bytes[1]);
		a->started_ms = s->started_wall_ms;
		clock_gettime(CLOCK_REALTIME, &ts);
		a->ended_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
		relay_acct_push(env, a);
	} else {
		met_add(env->m.drop_acct, 1);
	}
	log_info("session %s ended (%s, %s): %llu bytes a->b, %llu bytes b->a", s->cid,
		 relay_end_name(why),
		 s->mode == RELAY_MODE_TUNNEL    ? "tunnel"
		 : s->mode == RELAY_MODE_MAILBOX ? "mailbox"
						 : "no mode",
		 (unsigned long long)atomic_load(&s->bytes[0]),
		 (unsigned long long)atomic_load(&s->bytes[1]));

	/* A tombstone keeps a token from opening the session again (and so
	 * from escaping its quotas) while the token lives. Bounded: the
	 * oldest go first past four times max_sessions. */
	s->tprev = env->tomb_tail;
	s->tnext = NULL;
	if (env->tomb_tail)
		env->tomb_tail->tnext = s;
	else
		env->tomb_head = s;
	env->tomb_tail = s;
	env->ntomb++;
	while (!env->stopping && env->ntomb > 4 * (size_t)env->lim.max_sessions + 1024) {
		struct relay_sess *old = env->tomb_head;
		relay_tomb_unlink(env, old);
		relay_table_remove(env, old);
		relay_sess_free(old);
	}
}

/* The tunnels to close after unlocking, found by the sweep. */
struct relay_closing {
	struct relay_sess *s;
	enum relay_end why;
};

void
relay_sess_sweep(struct relay_env *env, long long now_ms)
{
	struct relay_waiter *resume = NULL;
	struct relay_closing *close = NULL;
	size_t nclose = 0, capclose = 0;
	long long wall = dmn_wall_s();

	pthread_mutex_lock(&env->lock);
	relay_waiters_expire(env, now_ms, &resume);
	/* Long-polls need the 100 ms tick; idle and quota ends do not, and
	 * the scan walks every session and tombstone. */
	if (now_ms < env->next_scan_ms)
		goto unlock;
	env->next_scan_ms = now_ms + 500;
	for (size_t i = 0; i < env->table_size; i++) {
		for (struct relay_sess *s = env->table[i]; s; s = s->hnext) {
			enum relay_end why = RELAY_END_NONE;
			if (s->end)
				continue;
			if (now_ms - s->started_ms >= env->lim.max_session_ms)
				why = RELAY_END_QUOTA_TIME;
			else if (now_ms - atomic_load(&s->last_ms) >= env->lim.idle_timeout_ms &&
				 !s->side[0].waiter && !s->side[1].waiter)
				why = RELAY_END_IDLE;
			if (!why)
				continue;
			if (s->tun) {
				if (nclose == capclose) {
					size_t n = capclose ? capclose * 2 : 16;
					struct relay_closing *c = realloc(close, n * sizeof(*c));
					if (!c)
						continue; /* next sweep */
					close = c;
					capclose = n;
				}
				close[nclose++] = (struct relay_closing){ s, why };
			} else {
				relay_sess_end(env, s, why, &resume);
			}
		}
	}
	/* Tombstones go once no token of theirs can still be valid. */
	while (env->tomb_head && (long long)env->tomb_head->tok_expiry < wall) {
		struct relay_sess *old = env->tomb_head;
		relay_tomb_unlink(env, old);
		relay_table_remove(env, old);
		relay_sess_free(old);
	}
unlock:
	pthread_mutex_unlock(&env->lock);
	relay_waiters_resume(resume);
	for (size_t i = 0; i < nclose; i++)
		relay_tunnel_close(env, close[i].s, close[i].why);
	free(close);
}

void
relay_sess_shutdown(struct relay_env *env)
{
	struct relay_waiter *resume = NULL;

	pthread_mutex_lock(&env->lock);
	env->stopping = true;
	for (size_t i = 0; i < env->table_size; i++) {
		struct relay_sess *s = env->table[i], *next;
		for (; s; s = next) {
			next = s->hnext;
			if (s->end)
				continue;
			if (s->tun) {
				/* Sessions are freed on this thread only, and
				 * closing a tunnel takes the lock itself. */
				pthread_mutex_unlock(&env->lock);
				relay_tunnel_close(env, s, RELAY_END_SHUTDOWN);
				pthread_mutex_lock(&env->lock);
				next = env->table[i]; /* the chain may have changed: rescan */
				continue;
			}
			relay_sess_end(env, s, RELAY_END_SHUTDOWN, &resume);
		}
	}
	pthread_mutex_unlock(&env->lock);
	relay_waiters_resume(resume);
}
