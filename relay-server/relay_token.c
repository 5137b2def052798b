// SPDX-License-Identifier: MIT
/* relay-server: relay tokens (the contract with the login-server) and request parameters. */
#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <strings.h>

#include "relay.h"

bool
relay_cid_valid(const char *s)
{
	if (!s)
		return false;
	for (size_t i = 0; i < RELAY_CID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[RELAY_CID_LEN] == '\0';
}

/* Account names: 1..RELAY_USER_MAX bytes, no control characters. UTF-8
 * passes through: the login-server decides what an account name is. */
static bool
relay_user_valid(const char *s, size_t len)
{
	if (len < 1 || len > RELAY_USER_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

int
relay_token_parse(const char *payload, size_t len, struct relay_token *ret)
{
	json_error_t jerr;
	json_t *o = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *cid, *side, *user, *peer;
	struct relay_token t;
	int r = -EINVAL;

	if (!o)
		return -EINVAL;
	if (!json_is_object(o) || json_object_size(o) != 4)
		goto out;
	cid = json_object_get(o, "cid");
	side = json_object_get(o, "side");
	user = json_object_get(o, "user");
	peer = json_object_get(o, "peer");
	if (!json_is_string(cid) || !json_is_string(side) || !json_is_string(user) ||
	    !json_is_string(peer))
		goto out;
	if (json_string_length(cid) != RELAY_CID_LEN || !relay_cid_valid(json_string_value(cid)))
		goto out;
	if (json_string_length(side) != 1)
		goto out;
	if (json_string_value(side)[0] == 'a')
		t.side = 0;
	else if (json_string_value(side)[0] == 'b')
		t.side = 1;
	else
		goto out;
	if (!relay_user_valid(json_string_value(user), json_string_length(user)) ||
	    !relay_user_valid(json_string_value(peer), json_string_length(peer)))
		goto out;
	/* strlen catches an embedded NUL the length check let through. */
	if (strlen(json_string_value(user)) != json_string_length(user) ||
	    strlen(json_string_value(peer)) != json_string_length(peer))
		goto out;
	if (strcmp(json_string_value(user), json_string_value(peer)) == 0)
		goto out;
	memcpy(t.cid, json_string_value(cid), RELAY_CID_LEN + 1);
	memcpy(t.user, json_string_value(user), json_string_length(user) + 1);
	memcpy(t.peer, json_string_value(peer), json_string_length(peer) + 1);
	t.expiry = 0;
	*ret = t;
	r = 0;
out:
	json_decref(o);
	return r;
}

enum relay_tok_err
relay_token_check(const struct tok_key *key, const char *authorization, uint64_t now,
		  const char *cid, struct relay_token *ret)
{
	char payload[TOK_PAYLOAD_MAX];
	struct relay_token t;
	uint64_t expiry;
	size_t len;
	int n;

	if (!authorization)
		return RELAY_TOK_MISSING;
	if (strncasecmp(authorization, "Bearer ", 7) != 0)
		return RELAY_TOK_INVALID;
	authorization += 7;
	authorization += strspn(authorization, " ");
	len = strlen(authorization);
	while (len && authorization[len - 1] == ' ')
		len--;
	if (!len)
		return RELAY_TOK_MISSING;
	if (len >= TOK_STR_MAX)
		return RELAY_TOK_INVALID;
	n = tok_verify(key, TOK_KIND_RELAY, now, authorization, len, payload, sizeof(payload),
		       &expiry);
	if (n == -ETIME)
		return RELAY_TOK_EXPIRED;
	if (n < 0)
		return RELAY_TOK_INVALID;
	if (relay_token_parse(payload, (size_t)n, &t) < 0)
		return RELAY_TOK_BAD_PAYLOAD;
	if (cid && strcmp(cid, t.cid) != 0)
		return RELAY_TOK_WRONG_SESSION;
	t.expiry = expiry;
	*ret = t;
	return RELAY_TOK_OK;
}

int
relay_parse_u64(const char *s, uint64_t def, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;
	size_t n;

	if (!s || !*s) {
		*ret = def;
		return 0;
	}
	n = strlen(s);
	if (n > 19 || strspn(s, "0123456789") != n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (uint64_t)(s[i] - '0');
	if (v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}
