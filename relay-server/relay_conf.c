// SPDX-License-Identifier: MIT
/* relay-server: the config table (keys, defaults, bounds, reloadable) and its checks. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "relay.h"
#include "svc.h"

const struct cfg_key relay_cfg_table[] = {
	SVC_SERVER_KEYS("127.0.0.1:7002", "127.0.0.1:8002", "1048576", "false"),
	SVC_REDIS_KEYS,
	CFG_KEY("relay", "id", CFG_STR, NULL, 1, RELAY_ID_MAX, false,
		"this relay's id in the registry: [A-Za-z0-9._-]"),
	CFG_KEY("relay", "public_url", CFG_STR, NULL, 1, 512, false,
		"base URL peers use to reach this relay (registry `url`)"),
	CFG_KEY("relay", "token_key", CFG_STR, NULL, 64, 64, true,
		"HMAC key shared with the login-server, 64 hex digits"),
	CFG_KEY("relay", "max_sessions", CFG_INT, "10000", 1, 10000000, true,
		"sessions in flight (registry `capacity`)"),
	CFG_KEY("relay", "max_per_source", CFG_INT, "64", 0, 10000000, true,
		"session sides in flight per client address (0 = no cap)"),
	CFG_KEY("relay", "max_per_account", CFG_INT, "16", 0, 10000000, true,
		"session sides in flight per account (0 = no cap)"),
	CFG_KEY("relay", "max_queued_bytes", CFG_INT, "1048576", 4096, 1073741824, true,
		"bytes the relay holds per session (mailbox queues, tunnel buffers)"),
	CFG_KEY("relay", "max_message", CFG_INT, "262144", 1, 67108864, true,
		"largest mailbox message, bytes"),
	CFG_KEY("relay", "idle_timeout_s", CFG_INT, "60", 1, 86400, true,
		"a session where nothing moves this long ends (idle)"),
	CFG_KEY("relay", "max_session_s", CFG_INT, "3600", 1, 31536000, true,
		"longest session (quota_time)"),
	CFG_KEY("relay", "max_session_bytes", CFG_INT, "1073741824", 1, 4611686018427387904LL, true,
		"most bytes relayed per session, both directions (quota_bytes)"),
	CFG_KEY("relay", "poll_wait_max_s", CFG_INT, "30", 0, 300, true,
		"longest long-poll a GET may ask for"),
	CFG_KEY("relay", "poll_wait_default_s", CFG_INT, "20", 0, 300, true,
		"long-poll wait when the GET gives none"),
	CFG_KEY("relay", "max_response_bytes", CFG_INT, "1048576", 1024, 67108864, true,
		"message bytes per mailbox GET answer (more: \"more\":true)"),
	CFG_KEY("relay", "registry_ttl_s", CFG_INT, "15", 3, 3600, false,
		"TTL of relay:{ID}; refreshed every ttl/3"),
	CFG_KEY("relay", "acct_maxlen", CFG_INT, "100000", 100, 100000000, false,
		"MAXLEN ~ of the accounting stream acct:{ID}"),
	CFG_KEY("relay", "acct_max_pending", CFG_INT, "100000", 10, 10000000, false,
		"accounting records kept while Redis is down (older ones dropped)"),
};
const size_t relay_cfg_n = sizeof(relay_cfg_table) / sizeof(relay_cfg_table[0]);

int
relay_validate(const struct cfg *c, char *err, size_t errsize)
{
	const char *id = cfg_str(c, "relay", "id");
	const char *url = cfg_str(c, "relay", "public_url");
	struct tok_key k;

	if (svc_validate(c, err, errsize) < 0)
		return -EINVAL;
	if (strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
	    strlen(id)) {
		snprintf(err, errsize, "relay.id: only letters, digits, '.', '_' and '-' allowed");
		return -EINVAL;
	}
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
		snprintf(err, errsize, "relay.public_url: must start with http:// or https://");
		return -EINVAL;
	}
	if (strspn(cfg_str(c, "relay", "token_key"), "0123456789abcdefABCDEF") != 64 ||
	    tok_key_parse(cfg_str(c, "relay", "token_key"), &k) < 0) {
		snprintf(err, errsize, "relay.token_key: want 64 hex digits (32 bytes)");
		return -EINVAL;
	}
	tok_key_wipe(&k);
	if (cfg_int(c, "relay", "poll_wait_default_s") > cfg_int(c, "relay", "poll_wait_max_s")) {
		snprintf(err, errsize, "relay.poll_wait_default_s: over poll_wait_max_s");
		return -EINVAL;
	}
	if (cfg_int(c, "relay", "max_message") > cfg_int(c, "relay", "max_queued_bytes") ||
	    cfg_int(c, "relay", "max_message") > cfg_int(c, "server", "max_body")) {
		snprintf(err, errsize,
			 "relay.max_message: over max_queued_bytes or server.max_body, so such a "
			 "message could never be accepted");
		return -EINVAL;
	}
	return 0;
}

void
relay_limits_from(const struct cfg *c, struct relay_limits *ret)
{
	ret->max_sessions = (unsigned)cfg_int(c, "relay", "max_sessions");
	ret->max_per_source = (unsigned)cfg_int(c, "relay", "max_per_source");
	ret->max_per_account = (unsigned)cfg_int(c, "relay", "max_per_account");
	ret->max_queued_bytes = (size_t)cfg_int(c, "relay", "max_queued_bytes");
	ret->max_message = (size_t)cfg_int(c, "relay", "max_message");
	ret->idle_timeout_ms = cfg_int(c, "relay", "idle_timeout_s") * 1000;
	ret->max_session_ms = cfg_int(c, "relay", "max_session_s") * 1000;
	ret->max_session_bytes = (uint64_t)cfg_int(c, "relay", "max_session_bytes");
	ret->poll_wait_max_ms = cfg_int(c, "relay", "poll_wait_max_s") * 1000;
	ret->poll_wait_default_ms = cfg_int(c, "relay", "poll_wait_default_s") * 1000;
	ret->max_response_bytes = (size_t)cfg_int(c, "relay", "max_response_bytes");
}
