// SPDX-License-Identifier: MIT
/* cache-server: the config table (keys, defaults, bounds, reloadable) and its checks. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cache.h"
#include "svc.h"

const struct cfg_key cache_cfg_table[] = {
	SVC_SERVER_KEYS("127.0.0.1:7005", "127.0.0.1:8005", "1048576", "false"),
	SVC_REDIS_KEYS,
	CFG_KEY("cache", "id", CFG_STR, "", 0, 64, false,
		"cache id in the registry (empty = HOSTNAME-PORT)"),
	CFG_KEY("cache", "domain", CFG_STR, "default", 1, 63, false, "domain this cache serves"),
	CFG_KEY("cache", "public_url", CFG_STR, "", 0, 256, false,
		"base URL others reach the API at (empty = http:// + first listen address)"),
	CFG_KEY("cache", "token_key", CFG_STR, NULL, 43, 88, false,
		"publish/pull token key: 64 hex digits (= index-server [index] cache_key)"),
	CFG_KEY("cache", "window_chunks", CFG_INT, "256", 8, 4096, false,
		"chunks per channel window (multiple of 8)"),
	CFG_KEY("cache", "chunk_ms", CFG_INT, "200", 10, 10000, false,
		"nominal duration of one chunk"),
	CFG_KEY("cache", "max_chunk_bytes", CFG_INT, "1048576", 1, 67108864, false,
		"largest chunk accepted"),
	CFG_KEY("cache", "memory_max_bytes", CFG_INT, "268435456", 65536, 1099511627776LL, false,
		"all chunks of all channels together"),
	CFG_KEY("cache", "channel_max_bytes", CFG_INT, "33554432", 4096, 1099511627776LL, false,
		"chunks of one channel"),
	CFG_KEY("cache", "max_channels", CFG_INT, "1000", 1, 1000000, false,
		"channels held at once"),
	CFG_KEY("cache", "channel_idle_s", CFG_INT, "60", 1, 86400, false,
		"a channel that receives no chunk for this long is dropped"),
	CFG_KEY("cache", "capacity_bytes_per_s", CFG_INT, "125000000", 1, 1000000000000LL, false,
		"outgoing bandwidth this cache may use (registry capacity)"),
	CFG_KEY("cache", "registry_ttl_s", CFG_INT, "15", 3, 3600, false,
		"TTL of the registry entries, refreshed every third of it"),
	CFG_KEY("pull", "interval_ms", CFG_INT, "200", 10, 60000, true,
		"one scheduling round this often"),
	CFG_KEY("pull", "timeout_ms", CFG_INT, "2000", 50, 60000, true,
		"map and chunk request timeout"),
	CFG_KEY("pull", "min_requests", CFG_INT, "2", 1, 4096, true,
		"L of formula 5: fewest requests of a source per round"),
	CFG_KEY("pull", "upper_k_percent", CFG_INT, "200", 100, 10000, true,
		"k of formula 4 (x100): H = k * needed / sources"),
	CFG_KEY("pull", "dead_after", CFG_INT, "5", 1, 1000, true,
		"failed requests in a row that make a source dead"),
	CFG_KEY("pull", "idle_s", CFG_INT, "30", 1, 86400, true,
		"stop pulling when nobody asked for the channel this long"),
	CFG_KEY("pull", "max_in_flight", CFG_INT, "64", 1, 4096, true,
		"chunk requests out per channel"),
	CFG_KEY("pull", "play_lag_chunks", CFG_INT, "0", 0, 4096, true,
		"playback position behind the window's end (0 = a quarter window)"),
	CFG_KEY("vod", "root", CFG_STR, "", 0, 4096, false,
		"directory served under /vod/ (empty = no VOD)"),
};
const size_t cache_cfg_n = sizeof(cache_cfg_table) / sizeof(cache_cfg_table[0]);

int
cache_validate(const struct cfg *c, char *err, size_t errsize)
{
	struct tok_key k;
	const char *url = cfg_str(c, "cache", "public_url");
	const char *id = cfg_str(c, "cache", "id");

	if (svc_validate(c, err, errsize) < 0)
		return -EINVAL;
	if (tok_key_parse(cfg_str(c, "cache", "token_key"), &k) < 0) {
		snprintf(err, errsize,
			 "cache.token_key: want 64 hex digits (or base64 of 32 bytes)");
		return -EINVAL;
	}
	tok_key_wipe(&k);
	if (cfg_int(c, "cache", "window_chunks") % 8 != 0) {
		snprintf(err, errsize, "cache.window_chunks: must be a multiple of 8");
		return -EINVAL;
	}
	if (cfg_int(c, "cache", "channel_max_bytes") > cfg_int(c, "cache", "memory_max_bytes")) {
		snprintf(err, errsize, "cache.channel_max_bytes is above cache.memory_max_bytes");
		return -EINVAL;
	}
	if (cfg_int(c, "cache", "max_chunk_bytes") > cfg_int(c, "server", "max_body")) {
		snprintf(err, errsize, "cache.max_chunk_bytes is above server.max_body");
		return -EINVAL;
	}
	if (*url &&
	    (strncmp(url, "http", 4) != 0 || !strstr(url, "://") || strpbrk(url, " \t\"\\"))) {
		snprintf(err, errsize, "cache.public_url: want http://HOST:PORT or https://...");
		return -EINVAL;
	}
	if (*id &&
	    strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
		    strlen(id)) {
		snprintf(err, errsize, "cache.id: use A-Z a-z 0-9 . _ -");
		return -EINVAL;
	}
	if (!cache_channel_ok(cfg_str(c, "cache", "domain"))) {
		snprintf(err, errsize, "cache.domain: use A-Z a-z 0-9 . _ -");
		return -EINVAL;
	}
	return 0;
}
