/* SPDX-License-Identifier: MIT */
/* Metrics: counters, gauges and histograms with labels, Prometheus text output. */
#ifndef P2PCDN_MET_H
#define P2PCDN_MET_H

#include <stddef.h>

/*
 * A registry holds metric families; a family has fixed label names and one
 * child per distinct label-value tuple. Look a child up once (mutex) and
 * keep the pointer: updates on a child are lock-free atomics, safe from any
 * thread. Families and children live until met_registry_free.
 */
struct met_registry;
struct met;
struct met_child;

enum met_type { MET_COUNTER, MET_GAUGE, MET_HISTOGRAM };

#define MET_MAX_LABELS  4
#define MET_MAX_BUCKETS 16
#define MET_MAX_CHILDREN                                                                           \
	4096 /* per family: label sets beyond are folded into one overflow child                   \
	      */

struct met_registry *met_registry_new(void);
void met_registry_free(struct met_registry *r); /* NULL-safe */

/* Registers a family. labels: comma-separated label names or NULL. For
 * histograms, buckets are ascending upper bounds (+Inf implied), nb <=
 * MET_MAX_BUCKETS. Returns NULL on ENOMEM or bad arguments. */
struct met *met_new(struct met_registry *r, enum met_type type, const char *name, const char *help,
		    const char *labels, const double *buckets, size_t nb);

/* A family without labels and its one child, for the many plain counters
 * and gauges: met_new + met_child. Returns NULL on ENOMEM. */
struct met_child *met_scalar(struct met_registry *r, enum met_type type, const char *name,
			     const char *help);

/* The child for label values (as many as the family has label names).
 * Never NULL for valid calls: when memory or MET_MAX_CHILDREN runs out the
 * values are replaced by "_overflow" so a flood of distinct label values
 * cannot grow memory without bound. */
struct met_child *met_child(struct met *m, ...);
struct met_child *met_childv(struct met *m, const char *const *values);

void met_add(struct met_child *c, double v);     /* counters and gauges */
void met_set(struct met_child *c, double v);     /* gauges */
void met_observe(struct met_child *c, double v); /* histograms */
double met_value(const struct met_child *c);     /* counters/gauges: current value */

/* Called before each render, for gauges computed on demand. */
int met_add_collector(struct met_registry *r, void (*fn)(void *arg), void *arg);

/* Renders the registry in Prometheus text exposition format 0.0.4.
 * Returns a malloc'd NUL-terminated string (caller frees) or NULL. */
char *met_render(struct met_registry *r, size_t *ret_len);

/* Standard latency buckets in seconds (100 µs .. 10 s). */
extern const double met_latency_buckets[];
extern const size_t met_latency_nbuckets;

#endif
