// SPDX-License-Identifier: MIT
/* tracker: the config table (keys, defaults, bounds, reloadable). */
#include "svc.h"
#include "trk.h"

const struct cfg_key trk_cfg_table[] = {
	SVC_SERVER_KEYS("127.0.0.1:6969", "127.0.0.1:7969", "4194304", "false"),
	CFG_KEY("postgres", "conninfo", CFG_STR, "host=127.0.0.1 dbname=p2pcdn", 1, 4096, false,
		"libpq connection string"),
	CFG_KEY("postgres", "pool_size", CFG_INT, "2", 1, 64, false, "connections"),
	CFG_KEY("tracker", "udp_listen", CFG_STR, "127.0.0.1:6969", 0, 1024, false,
		"UDP tracker (BEP 15) addresses; empty = no UDP"),
	CFG_KEY("tracker", "mode", CFG_STR, "open", 4, 9, true,
		"open (any torrent) or whitelist (registered programs only)"),
	CFG_KEY("tracker", "interval_s", CFG_INT, "1800", 10, 86400, true,
		"announce interval told to clients (±10 % jitter)"),
	CFG_KEY("tracker", "min_interval_s", CFG_INT, "300", 1, 86400, true,
		"min interval told to clients"),
	CFG_KEY("tracker", "peer_timeout_s", CFG_INT, "3900", 20, 43200, true,
		"a peer not heard from for this long is dropped"),
	CFG_KEY("tracker", "numwant_default", CFG_INT, "50", 0, 1000, true,
		"peers when numwant is absent"),
	CFG_KEY("tracker", "numwant_max", CFG_INT, "200", 1, 1000, true, "cap on numwant"),
	CFG_KEY("tracker", "allow_ip_param", CFG_BOOL, "false", 0, 1, true,
		"trust the ip= parameter (only behind a proxy that sets it)"),
	CFG_KEY("tracker", "full_scrape", CFG_BOOL, "false", 0, 1, true,
		"answer /scrape without info_hash (every torrent)"),
	CFG_KEY("tracker", "full_scrape_min_s", CFG_INT, "600", 1, 86400, true,
		"one full scrape per client address per this many seconds"),
	CFG_KEY("tracker", "shard_bits", CFG_INT, "8", 0, 16, false,
		"2^N store shards (lock stripes)"),
	CFG_KEY("tracker", "max_torrents", CFG_INT, "2000000", 1, 100000000, false,
		"torrents held at once"),
	CFG_KEY("tracker", "max_peers", CFG_INT, "200000", 1, 10000000, false,
		"peers of one torrent"),
	CFG_KEY("tracker", "flush_s", CFG_INT, "10", 1, 3600, true,
		"how often counts go to the catalog in PostgreSQL"),
	CFG_KEY("tracker", "whitelist_refresh_s", CFG_INT, "5", 1, 3600, true,
		"how often the whitelist is re-read from PostgreSQL"),
};
const size_t trk_cfg_n = sizeof(trk_cfg_table) / sizeof(trk_cfg_table[0]);
