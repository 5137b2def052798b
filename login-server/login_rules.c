// SPDX-License-Identifier: MIT
/* login-server: scenario choice and relay judgment (seed 000 §4), pure functions. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "login.h"

static const char *const login_modes[LOGIN_MODE_N] = { "direct", "reverse", "lan", "relay" };

bool
login_same_network(const struct login_peer_view *a, const struct login_peer_view *b)
{
	/* One NAT shows one outside address for everybody behind it; two peers
	 * behind the same NAT therefore share the observed public IP. Peers of
	 * different NATs never do (unless a carrier-grade NAT puts two LANs
	 * behind one address: then the sealed connect id check fails and the
	 * pair falls back to the relay). */
	return a->nat == LOGIN_NAT_INNER && b->nat == LOGIN_NAT_INNER && a->has_private &&
	       b->has_private && a->has_key && b->has_key &&
	       addr_equal_ip(&a->public_ip, &b->public_ip);
}

enum login_mode
login_decide(const struct login_peer_view *a, const struct login_peer_view *b)
{
	/* Scenario 1 (§4.2): both outer, either side may connect. */
	if (a->nat == LOGIN_NAT_OUTER && b->nat == LOGIN_NAT_OUTER)
		return LOGIN_MODE_DIRECT;
	/* Scenario 2 (§4.3.2): inner initiator, outer target: the inner one
	 * connects out, which every NAT and firewall lets through. */
	if (a->nat == LOGIN_NAT_INNER && b->nat == LOGIN_NAT_OUTER)
		return LOGIN_MODE_DIRECT;
	/* Scenario 2 (§4.3.1): outer initiator acts as the small service peer;
	 * the request is pushed to the inner target, which connects out. */
	if (a->nat == LOGIN_NAT_OUTER && b->nat == LOGIN_NAT_INNER)
		return LOGIN_MODE_REVERSE;
	/* Scenario 3 (§4.4.2, Fig. 5): both inner. */
	return login_same_network(a, b) ? LOGIN_MODE_LAN : LOGIN_MODE_RELAY;
}

const char *
login_mode_name(enum login_mode m)
{
	return (unsigned)m < LOGIN_MODE_N ? login_modes[m] : "unknown";
}

int
login_mode_parse(const char *s)
{
	for (int i = 0; i < LOGIN_MODE_N; i++)
		if (strcmp(s, login_modes[i]) == 0)
			return i;
	return -EINVAL;
}

double
login_kra(unsigned long long relayed, unsigned long long total)
{
	if (total == 0)
		return 0.0;
	if (relayed > total)
		relayed = total;
	return (double)relayed / (double)total;
}

bool
login_user_ok(const char *s, size_t len)
{
	if (len < 3 || len > LOGIN_USER_MAX)
		return false;
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

int
login_relay_payload(const char *cid, char side, const char *user, const char *peer, char *out,
		    size_t size)
{
	if ((side != 'a' && side != 'b') || !login_cid_ok(cid) ||
	    !login_user_ok(user, strlen(user)) || !login_user_ok(peer, strlen(peer)))
		return -EINVAL;
	/* Names and ids are checked to need no JSON escaping. */
	int n = snprintf(out, size,
			 "{\"cid\":\"%s\",\"side\":\"%c\",\"user\":\"%s\",\"peer\":\"%s\"}", cid,
			 side, user, peer);
	if (n < 0 || (size_t)n >= size)
		return -ENOBUFS;
	return n;
}

int
login_relay_pick(const struct login_relay_cand *c, size_t n)
{
	int best = -1;
	double best_load = 0;

	for (size_t i = 0; i < n; i++) {
		if (!c[i].url || !c[i].url[0] || c[i].capacity <= 0 || c[i].sessions < 0 ||
		    c[i].sessions >= c[i].capacity)
			continue;
		double load = c[i].sessions / c[i].capacity;
		if (best < 0 || load < best_load) {
			best = (int)i;
			best_load = load;
		}
	}
	return best;
}

int
login_jitter(int base_s, int jitter_pct, uint32_t r)
{
	if (base_s < 1)
		base_s = 1;
	if (jitter_pct <= 0)
		return base_s;
	if (jitter_pct > 50)
		jitter_pct = 50;
	/* In milliseconds to spread well, rounded down to whole seconds by
	 * the caller's unit: keep it in seconds but spread over [base -
	 * base*pct/100, base]. */
	long long span = (long long)base_s * jitter_pct / 100;
	if (span <= 0)
		return base_s;
	int v = base_s - (int)(r % (uint32_t)(span + 1));
	return v < 1 ? 1 : v;
}

bool
login_cid_ok(const char *s)
{
	size_t i;
	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == LOGIN_CID_HEX - 1;
}
