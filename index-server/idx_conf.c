// SPDX-License-Identifier: MIT
/* index-server: the config table (keys, defaults, bounds, reloadable) and its checks. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "idx.h"
#include "svc.h"

const struct cfg_key idx_cfg_table[] = {
	SVC_SERVER_KEYS("127.0.0.1:7004", "127.0.0.1:8004", "65536", "true"),
	SVC_REDIS_KEYS,
	CFG_KEY("index", "domain", CFG_STR, NULL, 1, 63, false,
		"the domain this index-server serves"),
	CFG_KEY("index", "route_url", CFG_STR, "http://127.0.0.1:7003", 0, 200, true,
		"route-server base URL (http://IP:PORT) for stream sources; empty = none"),
	CFG_KEY("index", "route_timeout_ms", CFG_INT, "2000", 50, 60000, true,
		"GET /v1/streams/{ch}/sources deadline"),
	CFG_KEY("index", "cache_key", CFG_STR, NULL, 64, 64, true,
		"64 hex digits: HMAC key shared with the caches (publish and pull tokens)"),
	CFG_KEY("index", "publish_token_ttl_s", CFG_INT, "3600", 10, 604800, true,
		"lifetime of publish tokens"),
	CFG_KEY("index", "pull_token_ttl_s", CFG_INT, "60", 5, 3600, true,
		"lifetime of pull tokens"),
	CFG_KEY("index", "pull_timeout_ms", CFG_INT, "2000", 50, 60000, true,
		"POST /v1/pull deadline per cache"),
	CFG_KEY("index", "pull_lock_ms", CFG_INT, "10000", 100, 600000, true,
		"while a pull is being started, other joins wait on this Redis lock"),
	CFG_KEY("index", "pull_hold_ms", CFG_INT, "15000", 100, 600000, true,
		"after a pull started, joins use its cache this long (until it registers)"),
	CFG_KEY("index", "negative_ms", CFG_INT, "2000", 0, 600000, true,
		"a failed pull start (route-server down, no source) is remembered this long"),
	CFG_KEY("index", "heartbeat_s", CFG_INT, "10", 1, 3600, true,
		"heartbeat interval told to peers"),
	CFG_KEY("index", "missed_heartbeats", CFG_INT, "3", 1, 100, true,
		"a peer silent this many intervals drops out"),
	CFG_KEY("index", "view_c", CFG_INT, "2", 0, 100, true,
		"c of ViewNum = (c + 1) * ln N (seed 001 formula 1)"),
	CFG_KEY("index", "view_min", CFG_INT, "4", 0, 256, true, "smallest member list asked for"),
	CFG_KEY("index", "view_max", CFG_INT, "64", 1, 256, true, "largest member list"),
	CFG_KEY("index", "trim_batch", CFG_INT, "32", 1, 1000, true,
		"expired peers removed per swarm operation at most"),
};
const size_t idx_cfg_n = sizeof(idx_cfg_table) / sizeof(idx_cfg_table[0]);

static bool
idx_domain_ok(const char *s)
{
	size_t len = strlen(s);
	if (len < 1 || len > 63 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == len;
}

int
idx_params_from_cfg(const struct cfg *c, struct idx_params *ret, char *err, size_t errsize)
{
	struct idx_params p = { 0 };
	const char *url = cfg_str(c, "index", "route_url");

	if (*url && (strncmp(url, "http://", 7) != 0 || strpbrk(url, " \t\r\n\"?#"))) {
		snprintf(err, errsize, "index.route_url must be an http:// URL (or empty)");
		return -EINVAL;
	}
	snprintf(p.route_url, sizeof(p.route_url), "%s", url);
	{
		size_t l = strlen(p.route_url);
		while (l > 0 && p.route_url[l - 1] == '/')
			p.route_url[--l] = '\0';
	}
	if (tok_key_parse(cfg_str(c, "index", "cache_key"), &p.key) < 0) {
		snprintf(err, errsize, "index.cache_key must be 64 hex digits");
		return -EINVAL;
	}
	p.view_c = (unsigned)cfg_int(c, "index", "view_c");
	p.view_min = (unsigned)cfg_int(c, "index", "view_min");
	p.view_max = (unsigned)cfg_int(c, "index", "view_max");
	if (p.view_min > p.view_max) {
		tok_key_wipe(&p.key);
		snprintf(err, errsize, "index.view_min must not exceed index.view_max");
		return -EINVAL;
	}
	p.heartbeat_s = (int)cfg_int(c, "index", "heartbeat_s");
	p.missed = (int)cfg_int(c, "index", "missed_heartbeats");
	p.trim_batch = (int)cfg_int(c, "index", "trim_batch");
	p.route_timeout_ms = (int)cfg_int(c, "index", "route_timeout_ms");
	p.pull_timeout_ms = (int)cfg_int(c, "index", "pull_timeout_ms");
	p.pull_lock_ms = (int)cfg_int(c, "index", "pull_lock_ms");
	p.pull_hold_ms = (int)cfg_int(c, "index", "pull_hold_ms");
	p.negative_ms = (int)cfg_int(c, "index", "negative_ms");
	p.publish_ttl_s = (int)cfg_int(c, "index", "publish_token_ttl_s");
	p.pull_ttl_s = (int)cfg_int(c, "index", "pull_token_ttl_s");
	if (p.pull_lock_ms < p.route_timeout_ms + p.pull_timeout_ms) {
		tok_key_wipe(&p.key);
		snprintf(err, errsize,
			 "index.pull_lock_ms must be at least route_timeout_ms + pull_timeout_ms, "
			 "or a second pull could start while the first is still being asked for");
		return -EINVAL;
	}
	*ret = p;
	return 0;
}

void
idx_params_get(struct idx_env *env, struct idx_params *ret)
{
	pthread_mutex_lock(&env->lock);
	*ret = env->params;
	pthread_mutex_unlock(&env->lock);
}

int
idx_validate(const struct cfg *c, char *err, size_t errsize)
{
	struct idx_params p;

	if (svc_validate(c, err, errsize) < 0)
		return -EINVAL;
	if (!idx_domain_ok(cfg_str(c, "index", "domain"))) {
		snprintf(err, errsize,
			 "index.domain: 1-63 of a-z 0-9 _ - starting with a letter or digit");
		return -EINVAL;
	}
	if (idx_params_from_cfg(c, &p, err, errsize) < 0)
		return -EINVAL;
	tok_key_wipe(&p.key);
	return 0;
}
