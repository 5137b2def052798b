// SPDX-License-Identifier: MIT
/* relay-server: counts of sessions in flight per source address and per account. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay.h"

struct relay_cap_entry {
	struct relay_cap_entry *next;
	unsigned count;
	char key[];
};

struct relay_caps {
	struct relay_cap_entry **b;
	size_t nb, n;
};

/* FNV-1a: keys are short and come from a MAC-checked token or the TCP
 * peer, so a keyed hash buys nothing here; chains are rehashed on growth. */
static size_t
relay_caps_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (size_t)h;
}

struct relay_caps *
relay_caps_new(void)
{
	struct relay_caps *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->nb = 64;
	c->b = calloc(c->nb, sizeof(*c->b));
	if (!c->b) {
		free(c);
		return NULL;
	}
	return c;
}

void
relay_caps_free(struct relay_caps *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nb; i++) {
		struct relay_cap_entry *e = c->b[i], *next;
		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(c->b);
	free(c);
}

static struct relay_cap_entry **
relay_caps_find(const struct relay_caps *c, const char *key)
{
	struct relay_cap_entry **p = &c->b[relay_caps_hash(key) & (c->nb - 1)];
	for (; *p; p = &(*p)->next)
		if (strcmp((*p)->key, key) == 0)
			return p;
	return p;
}

unsigned
relay_caps_get(const struct relay_caps *c, const char *key)
{
	struct relay_cap_entry **p = relay_caps_find(c, key);
	return *p ? (*p)->count : 0;
}

static void
relay_caps_grow(struct relay_caps *c)
{
	size_t nb = c->nb * 2;
	struct relay_cap_entry **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < c->nb; i++) {
		struct relay_cap_entry *e = c->b[i], *next;
		for (; e; e = next) {
			next = e->next;
			size_t h = relay_caps_hash(e->key) & (nb - 1);
			e->next = b[h];
			b[h] = e;
		}
	}
	free(c->b);
	c->b = b;
	c->nb = nb;
}

int
relay_caps_take(struct relay_caps *c, const char *key, unsigned max)
{
	struct relay_cap_entry **p = relay_caps_find(c, key);
	size_t len;

	if (*p) {
		if (max && (*p)->count >= max)
			return -EDQUOT;
		(*p)->count++;
		return 0;
	}
	len = strlen(key);
	struct relay_cap_entry *e = malloc(sizeof(*e) + len + 1);
	if (!e)
		return -ENOMEM;
	memcpy(e->key, key, len + 1);
	e->count = 1;
	e->next = NULL;
	*p = e;
	if (++c->n > c->nb * 2)
		relay_caps_grow(c);
	return 0;
}

void
relay_caps_put(struct relay_caps *c, const char *key)
{
	struct relay_cap_entry **p = relay_caps_find(c, key);
	struct relay_cap_entry *e = *p;

	if (!e)
		return;
	if (--e->count == 0) {
		*p = e->next;
		free(e);
		c->n--;
	}
}

size_t
relay_caps_size(const struct relay_caps *c)
{
	return c->n;
}
