// SPDX-License-Identifier: MIT
/* login-server: the config table (keys, defaults, bounds, reloadable) and its checks. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "login.h"
#include "svc.h"

const struct cfg_key login_cfg_table[] = {
	SVC_SERVER_KEYS("127.0.0.1:7001", "127.0.0.1:8001", "16384", "true"),
	SVC_REDIS_KEYS,
	CFG_KEY("postgres", "conninfo", CFG_STR, "host=127.0.0.1 dbname=p2pcdn", 1, 4096, false,
		"libpq connection string"),
	CFG_KEY("postgres", "pool_size", CFG_INT, "4", 2, 64, false,
		"connections (hash workers + accounting + admin)"),
	CFG_KEY("login", "registration", CFG_STR, "admin", 4, 5, true,
		"open: POST /v1/register for anyone; admin: accounts made on the admin listener"),
	CFG_KEY("login", "heartbeat_s", CFG_INT, "20", 1, 3600, true,
		"heartbeat interval the server hands out; a session lives 3 of them"),
	CFG_KEY("login", "heartbeat_jitter_pct", CFG_INT, "10", 0, 50, true,
		"each reply shortens the interval by up to this share, so clients spread out"),
	CFG_KEY("login", "probe_timeout_ms", CFG_INT, "2000", 50, 30000, true,
		"connect-back probe timeout (inner-network judgment)"),
	CFG_KEY("login", "max_probes", CFG_INT, "4096", 1, 1000000, true,
		"probes in flight at once; beyond, logins get 503 busy"),
	CFG_KEY("login", "hash_threads", CFG_INT, "2", 1, 64, false,
		"argon2id worker threads (password checks never run on HTTP threads)"),
	CFG_KEY("login", "hash_queue", CFG_INT, "256", 1, 100000, false,
		"password checks waiting for a worker; beyond, 503 busy"),
	CFG_KEY("login", "argon2_ops", CFG_INT, "2", 1, 20, false, "argon2id passes (opslimit)"),
	CFG_KEY("login", "argon2_mem_kib", CFG_INT, "65536", 8, 4194304, false,
		"argon2id memory per hash, KiB (memlimit)"),
	CFG_KEY("login", "ip_logins_per_min", CFG_INT, "60", 0, 1000000, true,
		"login and register attempts per client address and minute (0 = no limit)"),
	CFG_KEY("login", "user_failures_per_min", CFG_INT, "10", 0, 1000000, true,
		"failed logins per account and minute before it is refused (0 = no limit)"),
	CFG_KEY("login", "wait_max_s", CFG_INT, "30", 0, 300, true,
		"longest heartbeat long-poll (wait=N) honoured"),
	CFG_KEY("login", "max_waiters", CFG_INT, "100000", 0, 10000000, false,
		"long-polls parked at once; beyond, wait is ignored"),
	CFG_KEY("login", "acct_flush_ms", CFG_INT, "1000", 50, 60000, false,
		"accounting batches go to PostgreSQL this often"),
	CFG_KEY("login", "acct_queue", CFG_INT, "100000", 100, 10000000, false,
		"accounting records held in memory at most (beyond: dropped, counted)"),
	CFG_KEY("login", "reap_s", CFG_INT, "30", 1, 3600, false,
		"how often expired sessions are closed in the accounting tables"),
	CFG_KEY("login", "instance_id", CFG_STR, "", 0, 63, false,
		"consumer name in the relay accounting stream (empty = host name)"),
	CFG_KEY("relay", "token_key", CFG_STR, "", 0, 128, true,
		"relay token HMAC key: 64 hex digits shared with relay-server (empty = no relay)"),
	CFG_KEY("relay", "token_ttl_s", CFG_INT, "300", 10, 86400, true, "relay token lifetime"),
	CFG_KEY("relay", "candidates", CFG_INT, "8", 1, 128, true,
		"least loaded relays looked at per relay decision"),
};
const size_t login_cfg_n = sizeof(login_cfg_table) / sizeof(login_cfg_table[0]);

int
login_validate(const struct cfg *c, char *err, size_t errsize)
{
	const char *reg = cfg_str(c, "login", "registration");
	const char *key = cfg_str(c, "relay", "token_key");
	struct tok_key k;

	if (svc_validate(c, err, errsize) < 0)
		return -EINVAL;
	if (strcmp(reg, "open") != 0 && strcmp(reg, "admin") != 0) {
		snprintf(err, errsize, "login.registration: \"%s\" is not open or admin", reg);
		return -EINVAL;
	}
	if (*key && tok_key_parse(key, &k) < 0) {
		snprintf(err, errsize, "relay.token_key: must be 64 hex digits (32 bytes)");
		return -EINVAL;
	}
	tok_key_wipe(&k);
	if ((unsigned long long)cfg_int(c, "login", "argon2_mem_kib") * 1024ULL <
	    crypto_pwhash_MEMLIMIT_MIN) {
		snprintf(err, errsize, "login.argon2_mem_kib: below libsodium's minimum");
		return -EINVAL;
	}
	if (cfg_int(c, "postgres", "pool_size") < cfg_int(c, "login", "hash_threads") + 1) {
		snprintf(err, errsize,
			 "postgres.pool_size must be at least login.hash_threads + 1 (the "
			 "accounting thread)");
		return -EINVAL;
	}
	return 0;
}

struct login_settings *
login_settings_new(const struct cfg *c, char *err, size_t errsize)
{
	struct login_settings *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errsize, "out of memory");
		return NULL;
	}
	atomic_init(&s->refs, 1);
	s->registration_open = strcmp(cfg_str(c, "login", "registration"), "open") == 0;
	s->heartbeat_s = (int)cfg_int(c, "login", "heartbeat_s");
	s->jitter_pct = (int)cfg_int(c, "login", "heartbeat_jitter_pct");
	s->probe_timeout_ms = (int)cfg_int(c, "login", "probe_timeout_ms");
	s->max_probes = (int)cfg_int(c, "login", "max_probes");
	s->ip_per_min = (int)cfg_int(c, "login", "ip_logins_per_min");
	s->user_fail_per_min = (int)cfg_int(c, "login", "user_failures_per_min");
	s->wait_max_s = (int)cfg_int(c, "login", "wait_max_s");
	s->relay_ttl_s = cfg_int(c, "relay", "token_ttl_s");
	s->relay_candidates = (int)cfg_int(c, "relay", "candidates");
	const char *key = cfg_str(c, "relay", "token_key");
	if (*key) {
		if (tok_key_parse(key, &s->relay_key) < 0) {
			snprintf(err, errsize, "relay.token_key: must be 64 hex digits");
			free(s);
			return NULL;
		}
		s->has_relay_key = true;
	}
	return s;
}
