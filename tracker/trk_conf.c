// SPDX-License-Identifier: MIT
/* tracker: the config table (keys, defaults, bounds, reloadable). */
#include "svc.h"
#include "trk.h"

#define K(sec, name, type, def, min, max, rel, help)                                               \
	{                                                                                          \
		sec, name, type, def, min, max, rel, help                                          \
	}

const struct cfg_key trk_cfg_table[] = {
	SVC_SERVER_KEYS("127.0.0.1:6969", "127.0.0.1:7969", "4194304", "false"),
	K("postgres", "conninfo", CFG_STR, "host=127.0.0.1 dbname=p2pcdn", 1, 4096, false,
	  "libpq connection string"),
	K("postgres", "pool_size", CFG_INT, "2", 1, 64, false, "connections"),
	K("tracker", "udp_listen", CFG_STR, "127.0.0.1:6969", 0, 1024, false,
	  "UDP tracker (BEP 15) addresses; empty = no UDP"),
	K("tracker", "mode", CFG_STR, "open", 4, 9, true,
	  "open (any torrent) or whitelist (registered programs only)"),
	K("tracker", "interval_s", CFG_INT, "1800", 10, 86400, true,
	  "announce interval told to clients (±10 % jitter)"),
	K("tracker", "min_interval_s", CFG_INT, "300", 1, 86400, true,
	  "min interval told to clients"),
	K("tracker", "peer_timeout_s", CFG_INT, "3900", 20, 43200, true,
	  "a peer not heard from for this long is dropped"),
	K("tracker", "numwant_default", CFG_INT, "50", 0, 1000, true,
	  "peers when numwant is absent"),
	K("tracker", "numwant_max", CFG_INT, "200", 1, 1000, true, "cap on numwant"),
	K("tracker", "allow_ip_param", CFG_BOOL, "false", 0, 1, true,
	  "trust the ip= parameter (only behind a proxy that sets it)"),
	K("tracker", "full_scrape", CFG_BOOL, "false", 0, 1, true,
	  "answer /scrape without info_hash (every torrent)"),
	K("tracker", "full_scrape_min_s", CFG_INT, "600", 1, 86400, true,
	  "one full scrape per client address per this many seconds"),
	K("tracker", "shard_bits", CFG_INT, "8", 0, 16, false, "2^N store shards (lock stripes)"),
	K("tracker", "max_torrents", CFG_INT, "2000000", 1, 100000000, false,
	  "torrents held at once"),
	K("tracker", "max_peers", CFG_INT, "200000", 1, 10000000, false, "peers of one torrent"),
	K("tracker", "flush_s", CFG_INT, "10", 1, 3600, true,
	  "how often counts go to the catalog in PostgreSQL"),
	K("tracker", "whitelist_refresh_s", CFG_INT, "5", 1, 3600, true,
	  "how often the whitelist is re-read from PostgreSQL"),
};
const size_t trk_cfg_n = sizeof(trk_cfg_table) / sizeof(trk_cfg_table[0]);
