// SPDX-License-Identifier: MIT
/* Metrics: counters, gauges and histograms with labels, Prometheus text output. */
#include "met.h"

#include <math.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double met_latency_buckets[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
				       0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10 };
const size_t met_latency_nbuckets = sizeof(met_latency_buckets) / sizeof(met_latency_buckets[0]);

/* Doubles updated lock-free as their bit patterns. */
struct met_atomic_double {
	_Atomic uint64_t bits;
};

struct met_child {
	struct met_child *next;
	struct met *family;
	char **values;
	struct met_atomic_double value; /* counter/gauge; histogram sum */
	_Atomic uint64_t count;         /* histogram */
	_Atomic uint64_t buckets[MET_MAX_BUCKETS];
};

struct met {
	struct met *next;
	enum met_type type;
	char *name;
	char *help;
	char *labels[MET_MAX_LABELS];
	size_t nlabels;
	double bounds[MET_MAX_BUCKETS];
	size_t nb;
	pthread_mutex_t lock; /* guards the child list's insertions */
	struct met_child *_Atomic children;
	size_t nchildren;
	struct met_child *overflow;
};

struct met_collector {
	struct met_collector *next;
	void (*fn)(void *);
	void *arg;
};

struct met_registry {
	pthread_mutex_t lock;
	struct met *families, *last;
	struct met_collector *collectors;
};

static double
met_load(const struct met_atomic_double *d)
{
	uint64_t b = atomic_load_explicit(&d->bits, memory_order_relaxed);
	double v;
	memcpy(&v, &b, sizeof(v));
	return v;
}

static void
met_store(struct met_atomic_double *d, double v)
{
	uint64_t b;
	memcpy(&b, &v, sizeof(b));
	atomic_store_explicit(&d->bits, b, memory_order_relaxed);
}

static void
met_fetch_add(struct met_atomic_double *d, double v)
{
	uint64_t old = atomic_load_explicit(&d->bits, memory_order_relaxed), nb;
	double o;
	do {
		memcpy(&o, &old, sizeof(o));
		o += v;
		memcpy(&nb, &o, sizeof(nb));
	} while (!atomic_compare_exchange_weak_explicit(&d->bits, &old, nb, memory_order_relaxed,
							memory_order_relaxed));
}

struct met_registry *
met_registry_new(void)
{
	struct met_registry *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	pthread_mutex_init(&r->lock, NULL);
	return r;
}

static void
met_child_free(struct met_child *c, size_t nlabels)
{
	if (!c)
		return;
	if (c->values)
		for (size_t i = 0; i < nlabels; i++)
			free(c->values[i]);
	free(c->values);
	free(c);
}

void
met_registry_free(struct met_registry *r)
{
	if (!r)
		return;
	for (struct met *m = r->families, *mn; m; m = mn) {
		mn = m->next;
		for (struct met_child *c = m->children, *cn; c; c = cn) {
			cn = c->next;
			met_child_free(c, m->nlabels);
		}
		met_child_free(m->overflow, m->nlabels);
		for (size_t i = 0; i < m->nlabels; i++)
			free(m->labels[i]);
		pthread_mutex_destroy(&m->lock);
		free(m->name);
		free(m->help);
		free(m);
	}
	for (struct met_collector *c = r->collectors, *cn; c; c = cn) {
		cn = c->next;
		free(c);
	}
	pthread_mutex_destroy(&r->lock);
	free(r);
}

struct met *
met_new(struct met_registry *r, enum met_type type, const char *name, const char *help,
	const char *labels, const double *buckets, size_t nb)
{
	struct met *m;

	if (!r || !name || nb > MET_MAX_BUCKETS || (type == MET_HISTOGRAM && (!buckets || !nb)))
		return NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->type = type;
	m->name = strdup(name);
	m->help = strdup(help ? help : "");
	if (!m->name || !m->help)
		goto fail;
	if (labels && *labels) {
		const char *p = labels;
		while (*p) {
			size_t len = strcspn(p, ",");
			if (m->nlabels == MET_MAX_LABELS || len == 0)
				goto fail;
			m->labels[m->nlabels] = strndup(p, len);
			if (!m->labels[m->nlabels++])
				goto fail;
			p += len;
			if (*p == ',')
				p++;
		}
	}
	if (type == MET_HISTOGRAM) {
		memcpy(m->bounds, buckets, nb * sizeof(double));
		m->nb = nb;
	}
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_lock(&r->lock);
	if (r->last)
		r->last->next = m;
	else
		r->families = m;
	r->last = m;
	pthread_mutex_unlock(&r->lock);
	return m;

fail:
	for (size_t i = 0; i < m->nlabels; i++)
		free(m->labels[i]);
	free(m->name);
	free(m->help);
	free(m);
	return NULL;
}

static bool
met_values_equal(const struct met_child *c, const char *const *values, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(c->values[i], values[i]) != 0)
			return false;
	return true;
}

static struct met_child *
met_child_alloc(struct met *m, const char *const *values)
{
	struct met_child *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->family = m;
	if (m->nlabels) {
		c->values = calloc(m->nlabels, sizeof(char *));
		if (!c->values)
			goto fail;
		for (size_t i = 0; i < m->nlabels; i++) {
			c->values[i] = strdup(values ? values[i] : "_overflow");
			if (!c->values[i])
				goto fail;
		}
	}
	return c;
fail:
	met_child_free(c, m->nlabels);
	return NULL;
}

struct met_child *
met_childv(struct met *m, const char *const *values)
{
	struct met_child *c;

	/* Lock-free read of the list: children are only ever prepended and
	 * never removed before the registry is freed. */
	for (c = atomic_load_explicit(&m->children, memory_order_acquire); c; c = c->next)
		if (met_values_equal(c, values, m->nlabels))
			return c;
	pthread_mutex_lock(&m->lock);
	for (c = m->children; c; c = c->next)
		if (met_values_equal(c, values, m->nlabels))
			goto out;
	if (m->nchildren < MET_MAX_CHILDREN && (c = met_child_alloc(m, values))) {
		c->next = m->children;
		atomic_store_explicit(&m->children, c, memory_order_release);
		m->nchildren++;
		goto out;
	}
	if (!m->overflow)
		m->overflow = met_child_alloc(m, NULL);
	c = m->overflow;
	if (!c)
		abort(); /* cannot even allocate the overflow child: out of memory */
out:
	pthread_mutex_unlock(&m->lock);
	return c;
}

struct met_child *
met_child(struct met *m, ...)
{
	const char *values[MET_MAX_LABELS];
	va_list ap;

	va_start(ap, m);
	for (size_t i = 0; i < m->nlabels; i++)
		values[i] = va_arg(ap, const char *);
	va_end(ap);
	return met_childv(m, values);
}

struct met_child *
met_scalar(struct met_registry *r, enum met_type type, const char *name, const char *help)
{
	struct met *m = met_new(r, type, name, help, NULL, NULL, 0);
	return m ? met_child(m) : NULL;
}

void
met_add(struct met_child *c, double v)
{
	met_fetch_add(&c->value, v);
}

void
met_set(struct met_child *c, double v)
{
	met_store(&c->value, v);
}

double
met_value(const struct met_child *c)
{
	return met_load(&c->value);
}

void
met_observe(struct met_child *c, double v)
{
	const struct met *m = c->family;
	for (size_t i = 0; i < m->nb; i++) {
		if (v <= m->bounds[i]) {
			atomic_fetch_add_explicit(&c->buckets[i], 1, memory_order_relaxed);
			break;
		}
	}
	atomic_fetch_add_explicit(&c->count, 1, memory_order_relaxed);
	met_fetch_add(&c->value, v);
}

int
met_add_collector(struct met_registry *r, void (*fn)(void *arg), void *arg)
{
	struct met_collector *c = calloc(1, sizeof(*c));
	if (!c)
		return -1;
	c->fn = fn;
	c->arg = arg;
	pthread_mutex_lock(&r->lock);
	c->next = r->collectors;
	r->collectors = c;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

/* A growable output buffer; on allocation failure it stops growing and
 * remembers the failure so render returns NULL. */
struct met_buf {
	char *p;
	size_t len, cap;
	bool failed;
};

static void met_printf(struct met_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
met_printf(struct met_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = true;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t ncap = b->cap * 2 + (size_t)n;
		char *np = realloc(b->p, ncap);
		if (!np) {
			b->failed = true;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
}

/* Label values and help text escaped per the exposition format. */
static void
met_escape(struct met_buf *b, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			met_printf(b, "\\\\");
		else if (*s == '\n')
			met_printf(b, "\\n");
		else if (quote && *s == '"')
			met_printf(b, "\\\"");
		else
			met_printf(b, "%c", *s);
	}
}

static void
met_labels(struct met_buf *b, const struct met *m, const struct met_child *c, const char *extra,
	   const char *extra_val)
{
	bool any = m->nlabels || extra;
	if (!any)
		return;
	met_printf(b, "{");
	for (size_t i = 0; i < m->nlabels; i++) {
		met_printf(b, "%s%s=\"", i ? "," : "", m->labels[i]);
		met_escape(b, c->values[i], true);
		met_printf(b, "\"");
	}
	if (extra)
		met_printf(b, "%s%s=\"%s\"", m->nlabels ? "," : "", extra, extra_val);
	met_printf(b, "}");
}

static void
met_number(struct met_buf *b, double v)
{
	if (isinf(v))
		met_printf(b, v > 0 ? "+Inf" : "-Inf");
	else if (isnan(v))
		met_printf(b, "NaN");
	else if (fabs(v) < 1e15 && v == (double)(long long)v)
		met_printf(b, "%lld", (long long)v);
	else
		met_printf(b, "%.17g", v);
}

static void
met_render_child(struct met_buf *b, const struct met *m, const struct met_child *c)
{
	if (m->type != MET_HISTOGRAM) {
		met_printf(b, "%s", m->name);
		met_labels(b, m, c, NULL, NULL);
		met_printf(b, " ");
		met_number(b, met_load(&c->value));
		met_printf(b, "\n");
		return;
	}
	uint64_t cum = 0;
	char le[32];
	for (size_t i = 0; i < m->nb; i++) {
		cum += atomic_load_explicit(&c->buckets[i], memory_order_relaxed);
		snprintf(le, sizeof(le), "%g", m->bounds[i]);
		met_printf(b, "%s_bucket", m->name);
		met_labels(b, m, c, "le", le);
		met_printf(b, " %llu\n", (unsigned long long)cum);
	}
	uint64_t count = atomic_load_explicit(&c->count, memory_order_relaxed);
	if (count < cum)
		count = cum; /* a concurrent observe may land between the loads */
	met_printf(b, "%s_bucket", m->name);
	met_labels(b, m, c, "le", "+Inf");
	met_printf(b, " %llu\n%s_sum", (unsigned long long)count, m->name);
	met_labels(b, m, c, NULL, NULL);
	met_printf(b, " ");
	met_number(b, met_load(&c->value));
	met_printf(b, "\n%s_count", m->name);
	met_labels(b, m, c, NULL, NULL);
	met_printf(b, " %llu\n", (unsigned long long)count);
}

char *
met_render(struct met_registry *r, size_t *ret_len)
{
	static const char *types[] = { "counter", "gauge", "histogram" };
	struct met_buf b = { .cap = 4096 };

	b.p = malloc(b.cap);
	if (!b.p)
		return NULL;
	b.p[0] = '\0';
	pthread_mutex_lock(&r->lock);
	for (struct met_collector *c = r->collectors; c; c = c->next)
		c->fn(c->arg);
	for (struct met *m = r->families; m; m = m->next) {
		met_printf(&b, "# HELP %s ", m->name);
		met_escape(&b, m->help, false);
		met_printf(&b, "\n# TYPE %s %s\n", m->name, types[m->type]);
		/* Unlabelled families always show their single value, even 0. */
		if (!m->nlabels && !m->children)
			met_childv(m, NULL);
		for (struct met_child *c = atomic_load(&m->children); c; c = c->next)
			met_render_child(&b, m, c);
		if (m->overflow)
			met_render_child(&b, m, m->overflow);
	}
	pthread_mutex_unlock(&r->lock);
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	if (ret_len)
		*ret_len = b.len;
	return b.p;
}
