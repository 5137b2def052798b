// SPDX-License-Identifier: MIT
/* tracker: program catalog and torrent store in PostgreSQL (seed 003 §3.2–3.3). */
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benc.h"
#include "log.h"
#include "sha1.h"
#include "svc.h"
#include "trk.h"

struct trk_catalog {
	pthread_t thread;
	bool started, stopping, refresh_now;
	pthread_cond_t wake; /* on CLOCK_MONOTONIC: a clock step must not stall it */
};

/* ---------------------------------------------------------------- whitelist */

static int
trk_wl_cmp(const void *a, const void *b)
{
	return memcmp(a, b, TRK_HASH_LEN);
}

static void
trk_wl_free(struct trk_whitelist *wl)
{
	if (!wl)
		return;
	free(wl->v);
	free(wl);
}

int
trk_catalog_load_whitelist(struct trk_env *env, char *err, size_t errsize)
{
	PGconn *c = pg_acquire(env->pg);
	struct trk_whitelist *wl, *old;

	if (!c) {
		snprintf(err, errsize, "no PostgreSQL connection");
		return -EIO;
	}
	PGresult *res = pg_query(c, "SELECT encode(info_hash, 'hex') FROM programs", 0, NULL, err,
				 errsize, NULL);
	pg_release(env->pg, c);
	if (!res)
		return -EIO;
	wl = calloc(1, sizeof(*wl));
	if (wl)
		wl->v = malloc(((size_t)PQntuples(res) + 1) * TRK_HASH_LEN);
	if (!wl || !wl->v) {
		PQclear(res);
		trk_wl_free(wl);
		snprintf(err, errsize, "out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < PQntuples(res); i++)
		if (sodium_hex2bin(wl->v[wl->n], TRK_HASH_LEN, PQgetvalue(res, i, 0), 40, NULL,
				   NULL, NULL) == 0)
			wl->n++;
	PQclear(res);
	qsort(wl->v, wl->n, TRK_HASH_LEN, trk_wl_cmp);
	/* Readers search the list under the read lock, so the old one can go
	 * at once, however close two refreshes come. */
	pthread_rwlock_wrlock(&env->wl_lock);
	old = env->wl;
	env->wl = wl;
	pthread_rwlock_unlock(&env->wl_lock);
	trk_wl_free(old);
	return 0;
}

/* ---------------------------------------------------------------- flush */

/* Comma-separated values for one PostgreSQL array parameter. */
struct trk_list {
	char *p;
	size_t len, cap;
};

struct trk_flush_batch {
	struct trk_env *env;
	struct trk_list hashes, seeders, leechers, completed;
	/* completions taken from the store, sorted by hash */
	struct trk_taken {
		uint8_t h[TRK_HASH_LEN];
		uint32_t n;
	} * taken;
	size_t ntaken, captaken;
	bool failed;
};

static void
trk_list_put(struct trk_flush_batch *b, struct trk_list *a, const char *s)
{
	size_t n = strlen(s);
	if (b->failed)
		return;
	if (a->len + n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 4096;
		while (cap < a->len + n + 2)
			cap *= 2;
		char *np = realloc(a->p, cap);
		if (!np) {
			b->failed = true;
			return;
		}
		a->p = np;
		a->cap = cap;
	}
	if (a->len)
		a->p[a->len++] = ',';
	memcpy(a->p + a->len, s, n);
	a->len += n;
	a->p[a->len] = '\0';
}

static void
trk_take_collect(const uint8_t ih[TRK_HASH_LEN], uint32_t n, void *arg)
{
	struct trk_flush_batch *b = arg;
	if (!trk_registered(b->env, ih))
		return; /* not in the catalog: nothing to add them to */
	if (b->ntaken == b->captaken) {
		size_t cap = b->captaken ? b->captaken * 2 : 256;
		void *np = realloc(b->taken, cap * sizeof(*b->taken));
		if (!np) {
			/* Give them back rather than lose them: impossible here
			 * (the store is locked), so remember the failure and let the
			 * next flush retry with what the store still holds. */
			b->failed = true;
			return;
		}
		b->taken = np;
		b->captaken = cap;
	}
	memcpy(b->taken[b->ntaken].h, ih, TRK_HASH_LEN);
	b->taken[b->ntaken++].n = n;
}

static int
trk_taken_cmp(const void *a, const void *b)
{
	return memcmp(a, b, TRK_HASH_LEN);
}

static void
trk_flush_collect(const uint8_t ih[TRK_HASH_LEN], const struct trk_counts *c, size_t p4, size_t p6,
		  void *arg)
{
	struct trk_flush_batch *b = arg;
	char hex[2 * TRK_HASH_LEN + 1], num[24];
	(void)p4;
	(void)p6;

	/* Only registered programs are in the catalog. */
	if (!trk_registered(b->env, ih))
		return;
	const struct trk_taken *t =
		b->ntaken ? bsearch(ih, b->taken, b->ntaken, sizeof(*t), trk_taken_cmp) : NULL;
	sodium_bin2hex(hex, sizeof(hex), ih, TRK_HASH_LEN);
	trk_list_put(b, &b->hashes, hex);
	snprintf(num, sizeof(num), "%u", c->seeders);
	trk_list_put(b, &b->seeders, num);
	snprintf(num, sizeof(num), "%u", c->leechers);
	trk_list_put(b, &b->leechers, num);
	snprintf(num, sizeof(num), "%u", t ? t->n : 0);
	trk_list_put(b, &b->completed, num);
}

/* Writes the counts of every registered program in memory with one
 * statement; programs no longer in memory drop to zero viewers. The
 * completions added are exactly those taken from the store since the last
 * flush; if the statement fails they are given back for the next one. */
static void
trk_flush(struct trk_env *env)
{
	struct trk_flush_batch b = { .env = env };
	char err[256];
	char *arrays[4] = { NULL, NULL, NULL, NULL };
	bool written = false;

	trk_store_take_completed(env->store, trk_take_collect, &b);
	if (b.ntaken)
		qsort(b.taken, b.ntaken, sizeof(*b.taken), trk_taken_cmp);
	trk_store_foreach(env->store, trk_flush_collect, &b);
	struct trk_list *a[4] = { &b.hashes, &b.seeders, &b.leechers, &b.completed };
	for (int i = 0; i < 4 && !b.failed; i++) {
		size_t n = a[i]->len + 3;
		arrays[i] = malloc(n);
		if (!arrays[i])
			b.failed = true;
		else
			snprintf(arrays[i], n, "{%s}", a[i]->p ? a[i]->p : "");
	}
	PGconn *c = b.failed ? NULL : pg_acquire(env->pg);
	if (c) {
		const char *p[] = { arrays[0], arrays[1], arrays[2], arrays[3] };
		/* Rows whose numbers did not change are left alone: no dead
		 * tuples and WAL every flush_s for idle programs. */
		PGresult *res = pg_query(
			c,
			"WITH v AS (SELECT decode(h, 'hex') AS h, s, l, d FROM unnest($1::text[], "
			"$2::int[], $3::int[], $4::bigint[]) AS t(h, s, l, d)) "
			"UPDATE programs p SET seeders = COALESCE(v.s, 0), leechers = "
			"COALESCE(v.l, 0), "
			"completed = p.completed + COALESCE(v.d, 0), updated_at = now() "
			"FROM programs q LEFT JOIN v ON v.h = q.info_hash "
			"WHERE p.info_hash = q.info_hash AND (p.seeders <> COALESCE(v.s, 0) OR "
			"p.leechers <> COALESCE(v.l, 0) OR COALESCE(v.d, 0) <> 0)",
			4, p, err, sizeof(err), NULL);
		if (res) {
			PQclear(res);
			written = true;
		} else {
			log_warn("catalog flush failed (counts kept for the next one): %s", err);
		}
		pg_release(env->pg, c);
	} else {
		log_warn("catalog flush skipped: %s",
			 b.failed ? "out of memory" : "no PostgreSQL connection");
	}
	if (!written)
		for (size_t i = 0; i < b.ntaken; i++)
			trk_store_credit_completed(env->store, b.taken[i].h, b.taken[i].n);
	for (int i = 0; i < 4; i++)
		free(arrays[i]);
	free(b.hashes.p);
	free(b.seeders.p);
	free(b.leechers.p);
	free(b.completed.p);
	free(b.taken);
}

static void *
trk_catalog_main(void *arg)
{
	struct trk_env *env = arg;
	struct trk_catalog *cat = env->catalog;
	char err[256];
	long long next_flush = 0, next_wl = 0;

	pthread_mutex_lock(&env->lock);
	while (!cat->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 1;
		if (!cat->refresh_now)
			pthread_cond_timedwait(&cat->wake, &env->lock, &ts);
		if (cat->stopping)
			break;
		bool refresh = cat->refresh_now;
		cat->refresh_now = false;
		pthread_mutex_unlock(&env->lock);

		long long now = trk_store_now();
		if (refresh || now >= next_wl) {
			if (trk_catalog_load_whitelist(env, err, sizeof(err)) < 0)
				log_warn("whitelist refresh failed (keeping the last one): %s",
					 err);
			next_wl = now + atomic_load(&env->whitelist_refresh_s);
		}
		/* Expiry runs on the event loop (main.c), never behind a slow
		 * PostgreSQL here; a torrent that expires keeps its untaken
		 * completions in the store until it is gone, so flush often. */
		if (now >= next_flush) {
			trk_flush(env);
			next_flush = now + atomic_load(&env->flush_s);
		}
		pthread_mutex_lock(&env->lock);
	}
	pthread_mutex_unlock(&env->lock);
	trk_flush(env); /* last counts before exit */
	return NULL;
}

int
trk_catalog_start(struct trk_env *env)
{
	struct trk_catalog *cat = calloc(1, sizeof(*cat));
	if (!cat)
		return -ENOMEM;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&cat->wake, &ca);
	pthread_condattr_destroy(&ca);
	env->catalog = cat;
	int r = pthread_create(&cat->thread, NULL, trk_catalog_main, env);
	if (r) {
		pthread_cond_destroy(&cat->wake);
		free(cat);
		env->catalog = NULL;
		return -r;
	}
	cat->started = true;
	return 0;
}

void
trk_catalog_stop(struct trk_env *env)
{
	struct trk_catalog *cat = env->catalog;
	if (!cat)
		return;
	pthread_mutex_lock(&env->lock);
	cat->stopping = true;
	pthread_cond_signal(&cat->wake);
	pthread_mutex_unlock(&env->lock);
	pthread_join(cat->thread, NULL);
	pthread_cond_destroy(&cat->wake);
	free(cat);
	env->catalog = NULL;
}

void
trk_catalog_refresh_soon(struct trk_env *env)
{
	struct trk_catalog *cat = env->catalog;
	if (!cat)
		return;
	pthread_mutex_lock(&env->lock);
	cat->refresh_now = true;
	pthread_cond_signal(&cat->wake);
	pthread_mutex_unlock(&env->lock);
}

/* ---------------------------------------------------------------- API */

static PGconn *
trk_pg(struct trk_env *env, struct http_req *req)
{
	return svc_pg_acquire(env->pg, req, "catalog");
}

static json_t *
trk_program_json(const PGresult *res, int i)
{
	json_t *o = json_object();
	json_object_set_new(o, "info_hash", json_string(PQgetvalue(res, i, 0)));
	json_object_set_new(o, "kind", json_string(PQgetvalue(res, i, 1)));
	json_object_set_new(o, "name", json_string(PQgetvalue(res, i, 2)));
	json_object_set_new(o, "source",
			    PQgetisnull(res, i, 3) ? json_null()
						   : json_string(PQgetvalue(res, i, 3)));
	json_object_set_new(o, "size",
			    PQgetisnull(res, i, 4)
				    ? json_null()
				    : json_integer(strtoll(PQgetvalue(res, i, 4), NULL, 10)));
	json_object_set_new(o, "seeders", json_integer(atoi(PQgetvalue(res, i, 5))));
	json_object_set_new(o, "leechers", json_integer(atoi(PQgetvalue(res, i, 6))));
	json_object_set_new(o, "completed", json_integer(strtoll(PQgetvalue(res, i, 7), NULL, 10)));
	json_object_set_new(o, "created_at", json_string(PQgetvalue(res, i, 8)));
	json_object_set_new(o, "torrent",
			    PQgetvalue(res, i, 9)[0] == 't' ? json_true() : json_false());
	return o;
}

#define TRK_PROGRAM_COLS                                                                           \
	"encode(p.info_hash, 'hex'), p.kind, p.name, p.source, p.size, p.seeders, p.leechers, "    \
	"p.completed, to_char(p.created_at AT TIME ZONE 'UTC', "                                   \
	"'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "                                                      \
	"EXISTS (SELECT 1 FROM torrents t WHERE t.info_hash = p.info_hash)"

void
trk_handle_programs_list(struct http_req *req, void *arg)
{
	struct trk_env *env = arg;
	const char *sort = http_req_query(req, "sort"), *q = http_req_query(req, "q");
	const char *limit_s = http_req_query(req, "limit");
	char err[256], limit[16], pattern[300];
	long lim = 50;

	if (sort && strcmp(sort, "hot") != 0 && strcmp(sort, "new") != 0) {
		http_reply_error(req, 400, "bad_request", "sort must be hot or new");
		return;
	}
	if (limit_s) {
		char *end;
		lim = strtol(limit_s, &end, 10);
		if (*end || lim < 1 || lim > 500) {
			http_reply_error(req, 400, "bad_request", "limit must be 1-500");
			return;
		}
	}
	if (q && strlen(q) > 200) {
		http_reply_error(req, 400, "bad_request", "q is at most 200 bytes");
		return;
	}
	/* Name search is a substring match; LIKE's own wildcards in q are
	 * escaped so they match literally. */
	size_t n = 0;
	pattern[n++] = '%';
	for (const char *s = q ? q : ""; *s && n < sizeof(pattern) - 3; s++) {
		if (*s == '%' || *s == '_' || *s == '\\')
			pattern[n++] = '\\';
		pattern[n++] = *s;
	}
	pattern[n++] = '%';
	pattern[n] = '\0';
	snprintf(limit, sizeof(limit), "%ld", lim);
	PGconn *c = trk_pg(env, req);
	if (!c)
		return;
	const char *p[] = { pattern, limit };
	PGresult *res = pg_query(
		c,
		(sort && strcmp(sort, "new") == 0)
			? "SELECT " TRK_PROGRAM_COLS " FROM programs p WHERE p.name ILIKE $1 "
			  "ORDER BY p.created_at DESC, p.info_hash LIMIT $2::int"
			: "SELECT " TRK_PROGRAM_COLS " FROM programs p WHERE p.name ILIKE $1 "
			  "ORDER BY p.seeders + p.leechers DESC, p.completed DESC, p.created_at "
			  "DESC "
			  "LIMIT $2::int",
		2, p, err, sizeof(err), NULL);
	pg_release(env->pg, c);
	if (!res) {
		log_err("listing programs: %s", err);
		http_reply_error(req, 500, "internal", "listing programs failed");
		return;
	}
	json_t *arr = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(arr, trk_program_json(res, i));
	PQclear(res);
	http_reply_json(req, 200, json_pack("{s:o}", "programs", arr));
}

/* Live programs: the info_hash is the SHA-1 of the source URL, as CoolFish
 * derives a live channel's hash from its source (seed 003 §3.2). */
void
trk_handle_program_register(struct http_req *req, void *arg)
{
	struct trk_env *env = arg;
	json_t *body;
	const char *name, *source, *k;
	json_t *v;
	uint8_t ih[TRK_HASH_LEN];
	char hex[2 * TRK_HASH_LEN + 1], err[256], state[6];

	if (http_req_json(req, &body) < 0)
		return;
	json_object_foreach (body, k, v) {
		if (strcmp(k, "name") != 0 && strcmp(k, "source") != 0) {
			http_reply_error(req, 400, "unknown_field", "unknown field \"%.64s\"", k);
			json_decref(body);
			return;
		}
	}
	name = json_string_value(json_object_get(body, "name"));
	source = json_string_value(json_object_get(body, "source"));
	if (!name || !*name || strlen(name) > 512 || !source || !*source || strlen(source) > 2048) {
		http_reply_error(
			req, 400, "bad_request",
			"name (1-512 bytes) and source (1-2048 bytes) are required strings");
		json_decref(body);
		return;
	}
	sha1(source, strlen(source), ih);
	sodium_bin2hex(hex, sizeof(hex), ih, TRK_HASH_LEN);
	PGconn *c = trk_pg(env, req);
	if (!c) {
		json_decref(body);
		return;
	}
	const char *p[] = { hex, name, source };
	PGresult *res =
		pg_query(c,
			 "INSERT INTO programs (info_hash, kind, name, source) VALUES "
			 "(decode($1, 'hex'), 'live', $2, $3) ON CONFLICT (info_hash) DO UPDATE "
			 "SET name = EXCLUDED.name, updated_at = now() WHERE programs.kind = "
			 "'live' RETURNING (xmax = 0)",
			 3, p, err, sizeof(err), state);
	pg_release(env->pg, c);
	if (!res) {
		log_err("registering live program: %s", err);
		http_reply_error(req, 500, "internal", "registering the program failed");
		json_decref(body);
		return;
	}
	if (PQntuples(res) == 0) {
		PQclear(res);
		http_reply_error(req, 409, "conflict", "a VOD program has this info_hash");
		json_decref(body);
		return;
	}
	bool created = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	trk_catalog_refresh_soon(env);
	http_reply_json(req, created ? 201 : 200,
			json_pack("{s:s, s:s, s:s, s:s}", "info_hash", hex, "kind", "live", "name",
				  name, "source", source));
	json_decref(body);
}

static bool
trk_utf8_ok(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len;) {
		uint8_t c = p[i];
		size_t n = c < 0x80             ? 0
			   : (c & 0xe0) == 0xc0 ? 1
			   : (c & 0xf0) == 0xe0 ? 2
			   : (c & 0xf8) == 0xf0 ? 3
						: 9;
		if (n == 9 || (n == 1 && c < 0xc2) || c > 0xf4 || i + n >= len + (n ? 0 : 1))
			return false;
		/* No overlong forms, no UTF-16 surrogates, nothing past U+10FFFF:
		 * PostgreSQL refuses them all. */
		if ((c == 0xe0 && p[i + 1] < 0xa0) || (c == 0xed && p[i + 1] >= 0xa0) ||
		    (c == 0xf0 && p[i + 1] < 0x90) || (c == 0xf4 && p[i + 1] >= 0x90))
			return false;
		for (size_t k = 1; k <= n; k++)
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
		i += n + 1;
	}
	return true;
}

/* A file or folder name a client may create: UTF-8, not empty, "." or
 * "..", no '/' or NUL (a torrent must not write outside its folder). */
static bool
trk_name_ok(const uint8_t *s, size_t len)
{
	if (len == 0 || (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	return !memchr(s, '/', len) && !memchr(s, 0, len) && trk_utf8_ok(s, len);
}

/* info.files[].path: a non-empty list of names (BEP 3). */
static bool
trk_path_ok(struct benc_span path)
{
	struct benc_iter it = { 0 };
	struct benc_span k, e;
	const uint8_t *s;
	size_t len, n = 0;

	if (benc_type(path) != BENC_LIST)
		return false;
	while (benc_next(path, &it, &k, &e) == 1) {
		if (benc_str(e, &s, &len) < 0 || !trk_name_ok(s, len))
			return false;
		n++;
	}
	return n > 0;
}

/* Checks a .torrent per BEP 3 and reads its name and total size. */
static int
trk_torrent_check(struct http_req *req, const uint8_t *data, size_t len, uint8_t ih[TRK_HASH_LEN],
		  char *name, size_t namesize, long long *ret_size)
{
	struct benc_span top, info, v, files, f, k;
	struct benc_iter it = { 0 };
	size_t off = 0;
	const uint8_t *s;
	size_t slen, slen_pieces;
	int64_t n, total = 0, piece_len;

	if (benc_parse(data, len, 32, &top, &off) < 0 || benc_type(top) != BENC_DICT) {
		http_reply_error(req, 400, "bad_torrent",
				 "not a canonical bencoded dictionary (problem at byte %zu)", off);
		return -EINVAL;
	}
	if (benc_dict_get(top, "info", &info) < 0 || benc_type(info) != BENC_DICT) {
		http_reply_error(req, 400, "bad_torrent", "missing info dictionary");
		return -EINVAL;
	}
	if (benc_dict_get(info, "name", &v) < 0 || benc_str(v, &s, &slen) < 0 || slen == 0 ||
	    slen >= namesize || memchr(s, 0, slen)) {
		http_reply_error(req, 400, "bad_torrent", "info.name must be a non-empty string");
		return -EINVAL;
	}
	if (!trk_name_ok(s, slen)) {
		http_reply_error(req, 400, "bad_torrent",
				 "info.name must be UTF-8, not \".\" or \"..\", without /");
		return -EINVAL;
	}
	memcpy(name, s, slen);
	name[slen] = '\0';
	if (benc_dict_get(info, "piece length", &v) < 0 || benc_int(v, &piece_len) < 0 ||
	    piece_len <= 0) {
		http_reply_error(req, 400, "bad_torrent", "info.piece length must be positive");
		return -EINVAL;
	}
	if (benc_dict_get(info, "pieces", &v) < 0 || benc_str(v, &s, &slen_pieces) < 0 ||
	    slen_pieces == 0 || slen_pieces % 20) {
		http_reply_error(req, 400, "bad_torrent",
				 "info.pieces must be a non-empty multiple of 20 bytes");
		return -EINVAL;
	}
	if (benc_dict_get(info, "length", &v) == 0) {
		if (benc_int(v, &total) < 0 || total < 0) {
			http_reply_error(req, 400, "bad_torrent", "info.length must be >= 0");
			return -EINVAL;
		}
	} else if (benc_dict_get(info, "files", &files) == 0 && benc_type(files) == BENC_LIST) {
		size_t nfiles = 0;
		while (benc_next(files, &it, &k, &f) == 1) {
			struct benc_span fl, path;
			if (benc_type(f) != BENC_DICT || benc_dict_get(f, "length", &fl) < 0 ||
			    benc_int(fl, &n) < 0 || n < 0 || total > INT64_MAX - n) {
				http_reply_error(req, 400, "bad_torrent",
						 "every info.files entry needs a length >= 0");
				return -EINVAL;
			}
			if (benc_dict_get(f, "path", &path) < 0 || !trk_path_ok(path)) {
				http_reply_error(
					req, 400, "bad_torrent",
					"info.files entry %zu: path must be a non-empty list of "
					"UTF-8 "
					"names, none empty, \".\" or \"..\", without / or NUL",
					nfiles);
				return -EINVAL;
			}
			total += n;
			nfiles++;
		}
		if (nfiles == 0) {
			http_reply_error(req, 400, "bad_torrent", "info.files must not be empty");
			return -EINVAL;
		}
	} else {
		http_reply_error(req, 400, "bad_torrent", "info needs length or files");
		return -EINVAL;
	}
	/* One 20-byte hash per piece: a mismatch is a broken or padded file. */
	size_t npieces = slen_pieces / 20;
	int64_t want = total == 0 ? 0 : (total + piece_len - 1) / piece_len;
	if ((int64_t)npieces != want && !(total == 0 && npieces <= 1)) {
		http_reply_error(
			req, 400, "bad_torrent",
			"info.pieces holds %zu hashes but length and piece length need %lld",
			npieces, (long long)want);
		return -EINVAL;
	}
	/* The info_hash is the SHA-1 of the info dictionary exactly as encoded. */
	sha1(info.p, info.len, ih);
	*ret_size = total;
	return 0;
}

void
trk_handle_torrent_upload(struct http_req *req, void *arg)
{
	struct trk_env *env = arg;
	size_t len;
	const char *body = http_req_body(req, &len);
	uint8_t ih[TRK_HASH_LEN];
	char name[513], hex[2 * TRK_HASH_LEN + 1], size[24], err[256];
	long long total;

	if (!len) {
		http_reply_error(req, 400, "bad_torrent", "the body must be a .torrent file");
		return;
	}
	if (trk_torrent_check(req, (const uint8_t *)body, len, ih, name, sizeof(name), &total) < 0)
		return;
	sodium_bin2hex(hex, sizeof(hex), ih, TRK_HASH_LEN);
	snprintf(size, sizeof(size), "%lld", total);
	PGconn *c = trk_pg(env, req);
	if (!c)
		return;
	/* Binary data goes as a hex text parameter: pg_query keeps to text. */
	char *datahex = malloc(len * 2 + 1);
	if (!datahex) {
		pg_release(env->pg, c);
		http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	sodium_bin2hex(datahex, len * 2 + 1, (const unsigned char *)body, len);
	const char *p[] = { hex, name, size };
	PGresult *res = NULL;
	bool created = false, live_clash = false;
	if (pg_exec(c, "BEGIN", 0, NULL, err, sizeof(err)) == 0 &&
	    (res = pg_query(
		     c,
		     "INSERT INTO programs (info_hash, kind, name, size) VALUES "
		     "(decode($1, 'hex'), 'vod', $2, $3::bigint) ON CONFLICT (info_hash) DO "
		     "UPDATE SET name = EXCLUDED.name, size = EXCLUDED.size, updated_at = now() "
		     "WHERE programs.kind = 'vod' RETURNING (xmax = 0)",
		     3, p, err, sizeof(err), NULL))) {
		bool vod = PQntuples(res) == 1;
		created = vod && PQgetvalue(res, 0, 0)[0] == 't';
		PQclear(res);
		const char *p2[] = { hex, datahex };
		res = vod ? pg_query(c,
				     "INSERT INTO torrents (info_hash, data) VALUES (decode($1, "
				     "'hex'), decode($2, 'hex')) ON CONFLICT (info_hash) DO UPDATE "
				     "SET data = EXCLUDED.data, uploaded_at = now()",
				     2, p2, err, sizeof(err), NULL)
			  : NULL;
		if (!vod)
			live_clash = true;
	}
	if (res) {
		PQclear(res);
		res = pg_query(c, "COMMIT", 0, NULL, err, sizeof(err), NULL);
	}
	if (!res)
		pg_exec(c, "ROLLBACK", 0, NULL, NULL, 0);
	else
		PQclear(res);
	pg_release(env->pg, c);
	free(datahex);
	if (live_clash) {
		http_reply_error(req, 409, "conflict", "a live program has this info_hash");
		return;
	}
	if (!res) {
		log_err("storing torrent %s: %s", hex, err);
		http_reply_error(req, 500, "internal", "storing the torrent failed");
		return;
	}
	trk_catalog_refresh_soon(env);
	log_notice("torrent %s \"%s\" stored (%lld bytes of content)", hex, name, total);
	http_reply_json(req, created ? 201 : 200,
			json_pack("{s:s, s:s, s:I}", "info_hash", hex, "name", name, "size",
				  (json_int_t)total));
}

void
trk_handle_torrent_get(struct http_req *req, void *arg)
{
	struct trk_env *env = arg;
	const char *file = http_req_param(req, 0);
	char hex[2 * TRK_HASH_LEN + 1], err[256];
	size_t len = strlen(file);

	if (len != 48 || strcmp(file + 40, ".torrent") != 0 ||
	    strspn(file, "0123456789abcdefABCDEF") != 40) {
		http_reply_error(req, 404, "not_found",
				 "torrents are at /v1/torrents/<info_hash>.torrent");
		return;
	}
	memcpy(hex, file, 40);
	hex[40] = '\0';
	for (int i = 0; i < 40; i++)
		if (hex[i] >= 'A' && hex[i] <= 'F')
			hex[i] = (char)(hex[i] + 32);
	PGconn *c = trk_pg(env, req);
	if (!c)
		return;
	const char *p[] = { hex };
	PGresult *res = pg_query(c,
				 "SELECT encode(data, 'hex') FROM torrents WHERE info_hash = "
				 "decode($1, 'hex')",
				 1, p, err, sizeof(err), NULL);
	pg_release(env->pg, c);
	if (!res) {
		log_err("reading torrent %s: %s", hex, err);
		http_reply_error(req, 500, "internal", "reading the torrent failed");
		return;
	}
	if (PQntuples(res) == 0) {
		PQclear(res);
		http_reply_error(req, 404, "not_found", "no torrent %s", hex);
		return;
	}
	const char *h = PQgetvalue(res, 0, 0);
	size_t hl = strlen(h), bl;
	char *data = malloc(hl / 2 + 1);
	if (!data ||
	    sodium_hex2bin((unsigned char *)data, hl / 2 + 1, h, hl, NULL, &bl, NULL) < 0) {
		free(data);
		PQclear(res);
		http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	PQclear(res);
	http_reply_take(req, 200, "application/x-bittorrent", data, bl);
}
