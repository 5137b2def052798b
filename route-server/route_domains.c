// SPDX-License-Identifier: MIT
/* route-server: domains, rules and region/city codes loaded from PostgreSQL. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dmn.h"
#include "log.h"
#include "peerid.h"
#include "route.h"

static int
route_code_cmp(const void *a, const void *b)
{
	const struct route_code *x = a, *y = b;
	return strcmp(x->key, y->key);
}

static int
route_domain_cmp(const void *a, const void *b)
{
	const struct route_domain *x = a, *y = b;
	return strcmp(x->name, y->name);
}

/* Region names compare case-insensitively, so the key is lower-cased. */
static void
route_code_key(char *buf, size_t size, unsigned country, const char *region, const char *city)
{
	size_t n;
	if (city)
		snprintf(buf, size, "%u\x1f%s\x1f%s", country, region, city);
	else
		snprintf(buf, size, "%u\x1f%s", country, region);
	n = strlen(buf);
	for (size_t i = 0; i < n; i++)
		if (buf[i] >= 'A' && buf[i] <= 'Z')
			buf[i] = (char)(buf[i] + 32);
}

static unsigned
route_code_find(const struct route_code *v, size_t n, const char *key)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v[mid].key, key);
		if (c == 0)
			return v[mid].code;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

const struct route_domain *
route_snap_domain(const struct route_snap *s, const char *name)
{
	struct route_domain key = { .name = (char *)(uintptr_t)name };
	if (!s || !name)
		return NULL;
	return bsearch(&key, s->domains, s->ndomains, sizeof(key), route_domain_cmp);
}

const struct route_domain *
route_snap_choose(const struct route_snap *s, const struct route_geo *g, const char *def)
{
	if (!s)
		return NULL;
	if (g->found && !g->private_addr) {
		for (size_t i = 0; i < s->nrules; i++) {
			const struct route_rule *r = &s->rules[i];
			if (r->country[0] && strcmp(r->country, g->country) != 0)
				continue;
			if (r->nettype >= 0 && (unsigned)r->nettype != g->nettype)
				continue;
			if (r->region && strcasecmp(r->region, g->region) != 0)
				continue;
			if (r->city && strcasecmp(r->city, g->city) != 0)
				continue;
			return &s->domains[r->domain_idx];
		}
	}
	return route_snap_domain(s, def);
}

void
route_snap_codes(const struct route_snap *s, unsigned country, const struct route_geo *g,
		 unsigned *ret_region, unsigned *ret_city)
{
	char key[3 * ROUTE_NAME_MAX];
	unsigned region = 0, city = 0;

	if (s && country && g->region[0]) {
		route_code_key(key, sizeof(key), country, g->region, NULL);
		region = route_code_find(s->regions, s->nregions, key);
	}
	if (s && country && g->city[0] && (region || !g->region[0])) {
		char rc[8];
		snprintf(rc, sizeof(rc), "%u", region);
		route_code_key(key, sizeof(key), country, rc, g->city);
		city = route_code_find(s->cities, s->ncities, key);
	}
	*ret_region = region;
	*ret_city = city;
}

void
route_snap_free(struct route_snap *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->ndomains; i++) {
		for (size_t j = 0; j < s->domains[i].nindex; j++)
			free(s->domains[i].index_servers[j]);
		free(s->domains[i].index_servers);
		free(s->domains[i].name);
	}
	for (size_t i = 0; i < s->nrules; i++) {
		free(s->rules[i].region);
		free(s->rules[i].city);
		free(s->rules[i].domain);
	}
	for (size_t i = 0; i < s->nregions; i++)
		free(s->regions[i].key);
	for (size_t i = 0; i < s->ncities; i++)
		free(s->cities[i].key);
	free(s->domains);
	free(s->rules);
	free(s->regions);
	free(s->cities);
	free(s);
}

static char *
route_dup_or_null(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return NULL;
	return strdup(PQgetvalue(res, row, col));
}

static int
route_load_domains(struct route_env *env, PGconn *c, struct route_snap *s, char *err,
		   size_t errsize)
{
	PGresult *res = pg_query(c,
				 "SELECT name, array_to_json(index_servers)::text, latitude, "
				 "longitude FROM domains ORDER BY name",
				 0, NULL, err, errsize, NULL);
	if (!res)
		return -EIO;
	int n = PQntuples(res);
	s->domains = calloc((size_t)n + 1, sizeof(*s->domains));
	if (!s->domains)
		goto nomem;
	for (int i = 0; i < n; i++) {
		struct route_domain *d = &s->domains[s->ndomains++];
		json_t *arr = json_loads(PQgetvalue(res, i, 1), 0, NULL);
		size_t k;
		json_t *v;

		d->name = strdup(PQgetvalue(res, i, 0));
		if (!d->name) {
			json_decref(arr);
			goto nomem;
		}
		d->index_servers = calloc(json_array_size(arr) + 1, sizeof(char *));
		if (!d->index_servers) {
			json_decref(arr);
			goto nomem;
		}
		json_array_foreach (arr, k, v) {
			if (json_is_string(v) &&
			    (d->index_servers[d->nindex] = strdup(json_string_value(v))))
				d->nindex++;
		}
		json_decref(arr);
		if (!PQgetisnull(res, i, 2) && !PQgetisnull(res, i, 3)) {
			d->has_loc = true;
			d->lat = strtod(PQgetvalue(res, i, 2), NULL);
			d->lon = strtod(PQgetvalue(res, i, 3), NULL);
		}
		d->allocations = met_child(env->m.allocations, d->name);
	}
	PQclear(res);
	/* ORDER BY name uses the database collation; bsearch needs strcmp order. */
	qsort(s->domains, s->ndomains, sizeof(*s->domains), route_domain_cmp);
	return 0;
nomem:
	PQclear(res);
	snprintf(err, errsize, "out of memory");
	return -ENOMEM;
}

static int
route_load_rules(PGconn *c, struct route_snap *s, char *err, size_t errsize)
{
	PGresult *res = pg_query(c,
				 "SELECT id, priority, country, nettype, region, city, domain "
				 "FROM domain_rules ORDER BY priority, id",
				 0, NULL, err, errsize, NULL);
	if (!res)
		return -EIO;
	int n = PQntuples(res);
	s->rules = calloc((size_t)n + 1, sizeof(*s->rules));
	if (!s->rules) {
		PQclear(res);
		snprintf(err, errsize, "out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		struct route_rule *r = &s->rules[s->nrules];
		const struct route_domain *d = route_snap_domain(s, PQgetvalue(res, i, 6));
		if (!d)
			continue; /* cannot happen: foreign key */
		r->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		r->priority = atoi(PQgetvalue(res, i, 1));
		if (!PQgetisnull(res, i, 2))
			snprintf(r->country, sizeof(r->country), "%s", PQgetvalue(res, i, 2));
		r->nettype = PQgetisnull(res, i, 3) ? -1 : atoi(PQgetvalue(res, i, 3));
		r->region = route_dup_or_null(res, i, 4);
		r->city = route_dup_or_null(res, i, 5);
		r->domain = strdup(d->name);
		r->domain_idx = (size_t)(d - s->domains);
		s->nrules++;
		/* A NULL region or city means "any": a failed copy must not turn
		 * a rule into a wildcard. */
		if (!r->domain || (!PQgetisnull(res, i, 4) && !r->region) ||
		    (!PQgetisnull(res, i, 5) && !r->city)) {
			PQclear(res);
			snprintf(err, errsize, "out of memory");
			return -ENOMEM;
		}
	}
	PQclear(res);
	return 0;
}

static int
route_load_codes(PGconn *c, const char *sql, bool cities, struct route_code **ret, size_t *ret_n,
		 char *err, size_t errsize)
{
	PGresult *res = pg_query(c, sql, 0, NULL, err, errsize, NULL);
	char key[3 * ROUTE_NAME_MAX];
	struct route_code *v;
	size_t n = 0;

	if (!res)
		return -EIO;
	v = calloc((size_t)PQntuples(res) + 1, sizeof(*v));
	if (!v) {
		PQclear(res);
		snprintf(err, errsize, "out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		unsigned country = (unsigned)atoi(PQgetvalue(res, i, 0));
		if (cities)
			route_code_key(key, sizeof(key), country, PQgetvalue(res, i, 1),
				       PQgetvalue(res, i, 2));
		else
			route_code_key(key, sizeof(key), country, PQgetvalue(res, i, 1), NULL);
		v[n].key = strdup(key);
		v[n].code = (unsigned)atoi(PQgetvalue(res, i, cities ? 3 : 2));
		if (v[n].key)
			n++;
	}
	PQclear(res);
	qsort(v, n, sizeof(*v), route_code_cmp);
	*ret = v;
	*ret_n = n;
	return 0;
}

int
route_snap_load(struct route_env *env, PGconn *c, struct route_snap **ret, char *err,
		size_t errsize)
{
	struct route_snap *s = calloc(1, sizeof(*s));
	PGresult *res;
	int r = -ENOMEM;

	if (!s) {
		snprintf(err, errsize, "out of memory");
		return -ENOMEM;
	}
	atomic_init(&s->refs, 1);
	/* One snapshot = one consistent view, even while an admin edits. */
	if (pg_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, err, errsize) <
	    0) {
		r = -EIO;
		goto fail;
	}
	res = pg_query(c, "SELECT generation FROM route_generation WHERE id = 1", 0, NULL, err,
		       errsize, NULL);
	if (!res) {
		r = -EIO;
		goto fail_tx;
	}
	s->generation = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	if ((r = route_load_domains(env, c, s, err, errsize)) < 0 ||
	    (r = route_load_rules(c, s, err, errsize)) < 0 ||
	    (r = route_load_codes(c, "SELECT country, name, code FROM geo_regions", false,
				  &s->regions, &s->nregions, err, errsize)) < 0 ||
	    (r = route_load_codes(c, "SELECT country, region::text, name, code FROM geo_cities",
				  true, &s->cities, &s->ncities, err, errsize)) < 0)
		goto fail_tx;
	pg_exec(c, "COMMIT", 0, NULL, NULL, 0);
	*ret = s;
	return 0;
fail_tx:
	pg_exec(c, "ROLLBACK", 0, NULL, NULL, 0);
fail:
	route_snap_free(s);
	return r;
}

/* ---------------------------------------------------------------- codes */

void
route_queue_codes(struct route_env *env, unsigned country, const struct route_geo *g)
{
	/* Never wait on the hot path: if the refresher holds the lock, the
	 * name is simply queued by a later request. */
	if (pthread_mutex_trylock(&env->lock) != 0)
		return;
	for (size_t i = 0; i < env->npending; i++) {
		struct route_pending *p = &env->pending[i];
		if (p->country == country && strcmp(p->region, g->region) == 0 &&
		    strcmp(p->city, g->city) == 0)
			goto out;
	}
	if (env->npending < ROUTE_PENDING_MAX) {
		struct route_pending *p = &env->pending[env->npending++];
		p->country = country;
		snprintf(p->region, sizeof(p->region), "%s", g->region);
		snprintf(p->city, sizeof(p->city), "%s", g->city);
	}
	/* Full queue: the name is seen again on a later request and queued
	 * then; dropping keeps the request path free of waits. */
out:
	pthread_mutex_unlock(&env->lock);
}

/* Assigns the next free code under a parent. Two instances may pick the
 * same number at once; the unique index turns that into a retry. Returns 1
 * when a row was added, 0 when another instance had added it, or -EIO
 * with the server's message in err. */
static int
route_assign(PGconn *c, const char *sql, int nparams, const char *const *params, char *err,
	     size_t errsize)
{
	char state[6];
	for (int attempt = 0; attempt < 5; attempt++) {
		PGresult *res = pg_query(c, sql, nparams, params, err, errsize, state);
		if (res) {
			int added = strcmp(PQcmdTuples(res), "0") != 0;
			PQclear(res);
			return added;
		}
		if (strcmp(state, "23505") != 0)
			return -EIO;
	}
	snprintf(err, errsize, "code conflicts kept repeating");
	return -EIO;
}

/* Names whose assignment failed for a reason other than a race (a
 * read-only database, a name PostgreSQL rejects) are not retried for a
 * while, so one bad name costs one attempt per minute, not one per tick. */
#define ROUTE_FAILED_MAX      256
#define ROUTE_FAILED_RETRY_MS 60000
static struct {
	struct route_pending p;
	long long until_ms;
} route_failed[ROUTE_FAILED_MAX]; /* refresher thread only */
static size_t route_nfailed;

static bool
route_failed_recently(const struct route_pending *p, long long now)
{
	for (size_t i = 0; i < route_nfailed; i++)
		if (route_failed[i].until_ms > now && route_failed[i].p.country == p->country &&
		    strcmp(route_failed[i].p.region, p->region) == 0 &&
		    strcmp(route_failed[i].p.city, p->city) == 0)
			return true;
	return false;
}

static void
route_failed_add(const struct route_pending *p, long long now)
{
	size_t slot = route_nfailed;
	for (size_t i = 0; i < route_nfailed; i++)
		if (route_failed[i].until_ms <= now) {
			slot = i;
			break;
		}
	if (slot == ROUTE_FAILED_MAX)
		slot = (size_t)(now % ROUTE_FAILED_MAX); /* full: overwrite one */
	else if (slot == route_nfailed)
		route_nfailed++;
	route_failed[slot].p = *p;
	route_failed[slot].until_ms = now + ROUTE_FAILED_RETRY_MS;
}

/* Returns how many codes were added. */
static int
route_assign_pending(struct route_env *env, PGconn *c, struct route_pending *v, size_t n)
{
	struct route_view view;
	char country[8], region[8], err[256] = "";
	long long now = dmn_now_ms();
	int added = 0, failed = 0;

	route_view_get(env, &view);
	for (size_t i = 0; i < n; i++) {
		struct route_geo g = { 0 };
		unsigned rc = 0, cc = 0;
		int r = 0;
		if (route_failed_recently(&v[i], now))
			continue;
		snprintf(g.region, sizeof(g.region), "%s", v[i].region);
		snprintf(g.city, sizeof(g.city), "%s", v[i].city);
		snprintf(country, sizeof(country), "%u", v[i].country);
		route_snap_codes(view.snap, v[i].country, &g, &rc, &cc);
		if (g.region[0] && !rc) {
			const char *p[] = { country, g.region };
			r = route_assign(
				c,
				"INSERT INTO geo_regions (country, name, code) "
				"SELECT $1::smallint, $2, LEAST(COALESCE(MAX(code) FILTER "
				"(WHERE code < 63), 0) + 1, 63) FROM geo_regions WHERE "
				"country = $1::smallint ON CONFLICT (country, name) DO NOTHING",
				2, p, err, sizeof(err));
			/* The city needs the region's code: a later round. */
		} else if (g.city[0] && !cc) {
			snprintf(region, sizeof(region), "%u", rc);
			const char *p[] = { country, region, g.city };
			r = route_assign(
				c,
				"INSERT INTO geo_cities (country, region, name, code) "
				"SELECT $1::smallint, $2::smallint, $3, LEAST(COALESCE(MAX(code) "
				"FILTER (WHERE code < 63), 0) + 1, 63) FROM geo_cities WHERE "
				"country = $1::smallint AND region = $2::smallint "
				"ON CONFLICT (country, region, name) DO NOTHING",
				3, p, err, sizeof(err));
		}
		if (r > 0)
			added += r;
		if (r < 0) {
			failed++;
			route_failed_add(&v[i], now);
		}
	}
	route_view_put(&view);
	if (failed)
		log_warn("could not assign region/city codes to %d name%s (retried in %d s): %s",
			 failed, failed == 1 ? "" : "s", ROUTE_FAILED_RETRY_MS / 1000, err);
	return added;
}

/* ---------------------------------------------------------------- refresher */

void
route_view_get(struct route_env *env, struct route_view *ret)
{
	pthread_mutex_lock(&env->view_lock);
	ret->st = env->state;
	ret->snap = env->snap;
	if (ret->st)
		atomic_fetch_add(&ret->st->refs, 1);
	if (ret->snap)
		atomic_fetch_add(&ret->snap->refs, 1);
	pthread_mutex_unlock(&env->view_lock);
}

static void
route_state_put(struct route_state *st)
{
	if (st && atomic_fetch_sub(&st->refs, 1) == 1)
		route_state_free(st);
}

static void
route_snap_put(struct route_snap *s)
{
	if (s && atomic_fetch_sub(&s->refs, 1) == 1)
		route_snap_free(s);
}

void
route_view_put(struct route_view *v)
{
	route_state_put(v->st);
	route_snap_put(v->snap);
	v->st = NULL;
	v->snap = NULL;
}

void
route_state_publish(struct route_env *env, struct route_state *st)
{
	struct route_state *old;
	pthread_mutex_lock(&env->view_lock);
	old = env->state;
	env->state = st;
	pthread_mutex_unlock(&env->view_lock);
	route_state_put(old);
}

void
route_snap_publish(struct route_env *env, struct route_snap *s)
{
	struct route_snap *old;
	pthread_mutex_lock(&env->view_lock);
	old = env->snap;
	env->snap = s;
	pthread_mutex_unlock(&env->view_lock);
	route_snap_put(old);
	if (s)
		met_set(env->m.generation, (double)s->generation);
}

static void *
route_refresher_main(void *arg)
{
	struct route_env *env = arg;
	struct route_pending *batch = malloc(sizeof(env->pending));
	char err[512];
	bool reported_down = false;

	if (!batch)
		return NULL;
	pthread_mutex_lock(&env->lock);
	while (!env->stopping) {
		struct route_view view;
		struct timespec ts;
		long long refresh_ms = 2000;
		pthread_mutex_unlock(&env->lock);
		route_view_get(env, &view);
		if (view.st)
			refresh_ms = view.st->refresh_ms;
		route_view_put(&view);
		pthread_mutex_lock(&env->lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		long long ns = ts.tv_nsec + refresh_ms * 1000000;
		ts.tv_sec += ns / 1000000000;
		ts.tv_nsec = ns % 1000000000;
		/* Pending code assignments wait for the next tick too: a flood
		 * of new names then costs one batch per tick, not a query each. */
		while (!env->stopping && !env->refresh_now &&
		       pthread_cond_timedwait(&env->wake, &env->lock, &ts) == 0)
			;
		if (env->stopping)
			break;
		size_t n = env->npending;
		memcpy(batch, env->pending, n * sizeof(*batch));
		env->npending = 0;
		bool forced = env->refresh_now;
		env->refresh_now = false;
		pthread_mutex_unlock(&env->lock);

		PGconn *c = pg_acquire(env->pg);
		if (!c) {
			if (!reported_down)
				log_err("PostgreSQL unreachable; routing goes on with the last "
					"domains and rules loaded");
			reported_down = true;
			atomic_store(&env->pg_up, false);
			pthread_mutex_lock(&env->lock);
			continue;
		}
		int added = n ? route_assign_pending(env, c, batch, n) : 0;
		long long gen = -1;
		PGresult *res = pg_query(c, "SELECT generation FROM route_generation WHERE id = 1",
					 0, NULL, err, sizeof(err), NULL);
		if (res) {
			if (PQntuples(res))
				gen = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
			PQclear(res);
		}
		route_view_get(env, &view);
		long long cur_gen = view.snap ? view.snap->generation : -1;
		route_view_put(&view);
		/* Reload only for a change: a new generation, codes this instance
		 * added, or a forced refresh (an admin change, a reload). */
		if (res && (forced || added > 0 || gen != cur_gen)) {
			struct route_snap *s;
			if (route_snap_load(env, c, &s, err, sizeof(err)) == 0) {
				if (s->generation != cur_gen)
					log_notice("domains and rules reloaded: generation %lld, "
						   "%zu domains, %zu rules",
						   s->generation, s->ndomains, s->nrules);
				route_snap_publish(env, s);
			} else {
				log_err("reloading domains failed: %s", err);
			}
		}
		if (!res) {
			if (!reported_down)
				log_err("PostgreSQL query failed: %s", err);
			reported_down = true;
			atomic_store(&env->pg_up, false);
		} else {
			if (reported_down)
				log_notice("PostgreSQL reachable again");
			reported_down = false;
			atomic_store(&env->pg_up, true);
		}
		pg_release(env->pg, c);
		pthread_mutex_lock(&env->lock);
	}
	pthread_mutex_unlock(&env->lock);
	free(batch);
	return NULL;
}

int
route_refresher_start(struct route_env *env)
{
	int r = pthread_create(&env->refresher, NULL, route_refresher_main, env);
	if (r)
		return -r;
	env->refresher_started = true;
	return 0;
}

void
route_refresher_stop(struct route_env *env)
{
	if (!env->refresher_started)
		return;
	pthread_mutex_lock(&env->lock);
	env->stopping = true;
	pthread_cond_signal(&env->wake);
	pthread_mutex_unlock(&env->lock);
	pthread_join(env->refresher, NULL);
	env->refresher_started = false;
}

void
route_refresh_soon(struct route_env *env)
{
	pthread_mutex_lock(&env->lock);
	env->refresh_now = true;
	pthread_cond_signal(&env->wake);
	pthread_mutex_unlock(&env->lock);
}
