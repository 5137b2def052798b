// SPDX-License-Identifier: MIT
/* route-server: geo lookup in MMDB files and the reloadable state around it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "route.h"

/* Splits "a/b/0/c" into a NULL-terminated path for MMDB_aget_value. */
static int
route_path_split(char *s, const char **path, const char *key, char *err, size_t errsize)
{
	size_t n = 0;
	for (char *tok = strtok(s, "/"); tok; tok = strtok(NULL, "/")) {
		if (n == ROUTE_PATH_MAX) {
			snprintf(err, errsize, "route.%s: more than %d path segments", key,
				 ROUTE_PATH_MAX);
			return -EINVAL;
		}
		path[n++] = tok;
	}
	if (!n) {
		snprintf(err, errsize, "route.%s: empty path", key);
		return -EINVAL;
	}
	path[n] = NULL;
	return 0;
}

static char *
route_read_small_file(const char *path, size_t *ret_len, char *err, size_t errsize)
{
	FILE *f = fopen(path, "re");
	struct stat st;
	char *buf;

	if (!f) {
		snprintf(err, errsize, "route.nettype_file: %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) < 0 || st.st_size > 64 << 20) {
		snprintf(err, errsize, "route.nettype_file: %s: unreadable or over 64 MiB", path);
		fclose(f);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf || fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
		snprintf(err, errsize, "route.nettype_file: %s: read failed", path);
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[st.st_size] = '\0';
	*ret_len = (size_t)st.st_size;
	return buf;
}

struct route_state *
route_state_new(struct cfg *cfg, char *err, size_t errsize)
{
	static const char *keys[] = { "country_path",  "region_path",    "city_path",
				      "latitude_path", "longitude_path", "asn_path" };
	struct route_state *st = calloc(1, sizeof(*st));
	const char **paths[6];
	size_t total = 0, off = 0;
	int r;

	if (!st) {
		snprintf(err, errsize, "out of memory");
		return NULL;
	}
	atomic_init(&st->refs, 1);
	st->cfg = cfg;
	paths[0] = st->path_country;
	paths[1] = st->path_region;
	paths[2] = st->path_city;
	paths[3] = st->path_lat;
	paths[4] = st->path_lon;
	paths[5] = st->path_asn;
	for (size_t i = 0; i < 6; i++)
		total += strlen(cfg_str(cfg, "route", keys[i])) + 1;
	st->path_buf = malloc(total);
	if (!st->path_buf) {
		snprintf(err, errsize, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < 6; i++) {
		const char *v = cfg_str(cfg, "route", keys[i]);
		char *dst = st->path_buf + off;
		memcpy(dst, v, strlen(v) + 1);
		off += strlen(v) + 1;
		if (route_path_split(dst, paths[i], keys[i], err, errsize) < 0)
			goto fail;
	}

	const char *city = cfg_str(cfg, "route", "city_db");
	r = MMDB_open(city, MMDB_MODE_MMAP, &st->city);
	if (r != MMDB_SUCCESS) {
		snprintf(err, errsize, "route.city_db: %s: %s", city, MMDB_strerror(r));
		goto fail;
	}
	st->city_open = true;
	const char *asn = cfg_str(cfg, "route", "asn_db");
	if (*asn) {
		r = MMDB_open(asn, MMDB_MODE_MMAP, &st->asn);
		if (r != MMDB_SUCCESS) {
			snprintf(err, errsize, "route.asn_db: %s: %s", asn, MMDB_strerror(r));
			goto fail;
		}
		st->asn_open = true;
	}

	const char *nt = cfg_str(cfg, "route", "nettype_file");
	if (*nt) {
		size_t len;
		char perr[256];
		char *text = route_read_small_file(nt, &len, err, errsize);
		if (!text)
			goto fail;
		r = route_nettype_parse(text, len, &st->nettype, perr, sizeof(perr));
		free(text);
		if (r < 0) {
			snprintf(err, errsize, "route.nettype_file: %s: %s", nt, perr);
			goto fail;
		}
	} else if (route_nettype_builtin(&st->nettype) < 0) {
		snprintf(err, errsize, "out of memory");
		goto fail;
	}
	st->default_domain = cfg_str(cfg, "route", "default_domain");
	st->peerid_ttl_s = cfg_int(cfg, "route", "peerid_ttl_s");
	st->peerid_attempts = (int)cfg_int(cfg, "route", "peerid_attempts");
	st->max_per_minute = cfg_int(cfg, "route", "max_per_minute");
	st->refresh_ms = (int)cfg_int(cfg, "route", "refresh_ms");
	return st;
fail:
	st->cfg = NULL; /* the caller still owns cfg on failure */
	route_state_free(st);
	return NULL;
}

void
route_state_free(struct route_state *st)
{
	if (!st)
		return;
	if (st->city_open)
		MMDB_close(&st->city);
	if (st->asn_open)
		MMDB_close(&st->asn);
	free(st->nettype.v);
	free(st->path_buf);
	cfg_free(st->cfg);
	free(st);
}

/* Copies a UTF-8 string value at path into buf; "" when absent. Names
 * longer than the buffer are cut at a character boundary. */
static void
route_get_string(MMDB_entry_s *entry, const char *const *path, char *buf, size_t size)
{
	MMDB_entry_data_s d;

	buf[0] = '\0';
	if (MMDB_aget_value(entry, &d, path) != MMDB_SUCCESS || !d.has_data ||
	    d.type != MMDB_DATA_TYPE_UTF8_STRING)
		return;
	size_t n = d.data_size < size - 1 ? d.data_size : size - 1;
	while (n > 0 && n < d.data_size && ((unsigned char)d.utf8_string[n] & 0xc0) == 0x80)
		n--;
	memcpy(buf, d.utf8_string, n);
	buf[n] = '\0';
}

static bool
route_get_double(MMDB_entry_s *entry, const char *const *path, double *ret)
{
	MMDB_entry_data_s d;

	if (MMDB_aget_value(entry, &d, path) != MMDB_SUCCESS || !d.has_data)
		return false;
	switch (d.type) {
	case MMDB_DATA_TYPE_DOUBLE:
		*ret = d.double_value;
		return true;
	case MMDB_DATA_TYPE_FLOAT:
		*ret = d.float_value;
		return true;
	case MMDB_DATA_TYPE_UTF8_STRING: {
		/* Some flat layouts store coordinates as text. */
		char tmp[32], *end;
		size_t n = d.data_size < sizeof(tmp) - 1 ? d.data_size : sizeof(tmp) - 1;
		memcpy(tmp, d.utf8_string, n);
		tmp[n] = '\0';
		*ret = strtod(tmp, &end);
		return end != tmp && *end == '\0';
	}
	default:
		return false;
	}
}

static bool
route_get_uint(MMDB_entry_s *entry, const char *const *path, uint32_t *ret)
{
	MMDB_entry_data_s d;

	if (MMDB_aget_value(entry, &d, path) != MMDB_SUCCESS || !d.has_data)
		return false;
	switch (d.type) {
	case MMDB_DATA_TYPE_UINT16:
		*ret = d.uint16;
		return true;
	case MMDB_DATA_TYPE_UINT32:
		*ret = d.uint32;
		return true;
	case MMDB_DATA_TYPE_INT32:
		*ret = d.int32 > 0 ? (uint32_t)d.int32 : 0;
		return d.int32 > 0;
	case MMDB_DATA_TYPE_UINT64:
		*ret = d.uint64 <= UINT32_MAX ? (uint32_t)d.uint64 : 0;
		return d.uint64 <= UINT32_MAX;
	default:
		return false;
	}
}

void
route_geo_lookup(const struct route_state *st, const struct addr *a, struct route_geo *g)
{
	struct sockaddr_storage ss;
	MMDB_lookup_result_s res;
	int mmerr;

	memset(g, 0, sizeof(*g));
	addr_format_ip(a, g->ip, sizeof(g->ip));
	g->private_addr = addr_is_private(a);
	if (g->private_addr)
		return;
	addr_to_sockaddr(a, &ss);
	/* The MMDB API takes a non-const MMDB_s but only reads it. */
	res = MMDB_lookup_sockaddr((MMDB_s *)(uintptr_t)&st->city, (struct sockaddr *)&ss, &mmerr);
	if (mmerr == MMDB_SUCCESS && res.found_entry) {
		char cc[8];
		route_get_string(&res.entry, st->path_country, cc, sizeof(cc));
		if (strlen(cc) == 2) {
			g->country[0] = (char)(cc[0] & ~0x20);
			g->country[1] = (char)(cc[1] & ~0x20);
			g->found = true;
		}
		route_get_string(&res.entry, st->path_region, g->region, sizeof(g->region));
		route_get_string(&res.entry, st->path_city, g->city, sizeof(g->city));
		g->has_loc = route_get_double(&res.entry, st->path_lat, &g->lat) &&
			     route_get_double(&res.entry, st->path_lon, &g->lon);
	}
	if (st->asn_open) {
		res = MMDB_lookup_sockaddr((MMDB_s *)(uintptr_t)&st->asn, (struct sockaddr *)&ss,
					   &mmerr);
		if (mmerr == MMDB_SUCCESS && res.found_entry)
			g->has_asn = route_get_uint(&res.entry, st->path_asn, &g->asn) && g->asn;
	}
	g->nettype = route_nettype_class(&st->nettype, g->has_asn ? g->asn : 0);
}
