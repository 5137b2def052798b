// SPDX-License-Identifier: MIT
/* route-server: the config table (keys, defaults, bounds, reloadable). */
#include "route.h"
#include "svc.h"

const struct cfg_key route_cfg_table[] = {
	SVC_SERVER_KEYS("127.0.0.1:7003", "127.0.0.1:8003", "65536", "true"),
	SVC_REDIS_KEYS,
	CFG_KEY("postgres", "conninfo", CFG_STR, "host=127.0.0.1 dbname=p2pcdn", 1, 4096, false,
		"libpq connection string"),
	CFG_KEY("postgres", "pool_size", CFG_INT, "2", 1, 64, false, "connections"),
	CFG_KEY("route", "city_db", CFG_STR, NULL, 1, 4096, true, "city MMDB file"),
	CFG_KEY("route", "asn_db", CFG_STR, "", 0, 4096, true, "ASN MMDB file (empty = none)"),
	CFG_KEY("route", "country_path", CFG_STR, "country/iso_code", 1, 256, true,
		"MMDB path of the ISO country code"),
	CFG_KEY("route", "region_path", CFG_STR, "subdivisions/0/names/en", 1, 256, true,
		"MMDB path of the region name"),
	CFG_KEY("route", "city_path", CFG_STR, "city/names/en", 1, 256, true,
		"MMDB path of the city name"),
	CFG_KEY("route", "latitude_path", CFG_STR, "location/latitude", 1, 256, true, "MMDB path"),
	CFG_KEY("route", "longitude_path", CFG_STR, "location/longitude", 1, 256, true,
		"MMDB path"),
	CFG_KEY("route", "asn_path", CFG_STR, "autonomous_system_number", 1, 256, true,
		"MMDB path of the ASN in asn_db"),
	CFG_KEY("route", "nettype_file", CFG_STR, "", 0, 4096, true,
		"ASN,CLASS table (empty = built-in carriers)"),
	CFG_KEY("route", "default_domain", CFG_STR, "default", 1, 63, true,
		"domain for unknown, private and unmatched addresses"),
	CFG_KEY("route", "peerid_ttl_s", CFG_INT, "86400", 60, 31536000, true,
		"how long an allocated PeerID stays reserved"),
	CFG_KEY("route", "peerid_attempts", CFG_INT, "8", 1, 64, true,
		"random node values tried before peerid_exhausted"),
	CFG_KEY("route", "max_per_minute", CFG_INT, "120", 0, 100000000, true,
		"PeerIDs one client address may take per minute (0 = no limit)"),
	CFG_KEY("route", "refresh_ms", CFG_INT, "2000", 100, 600000, true,
		"poll interval for domain/rule changes"),
};
const size_t route_cfg_n = sizeof(route_cfg_table) / sizeof(route_cfg_table[0]);
