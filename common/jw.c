// SPDX-License-Identifier: MIT
/* A small JSON writer for hot paths: one growing buffer, no tree. */
#include "jw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
jw_init(struct jw *w, size_t cap)
{
	w->len = 0;
	w->cap = cap ? cap : 256;
	w->p = malloc(w->cap);
	w->failed = w->p == NULL;
}

/* Makes room for n more bytes plus a NUL. */
static bool
jw_reserve(struct jw *w, size_t n)
{
	if (w->failed)
		return false;
	if (w->len + n + 1 <= w->cap)
		return true;
	size_t cap = w->cap * 2;
	while (cap < w->len + n + 1)
		cap *= 2;
	char *np = realloc(w->p, cap);
	if (!np) {
		w->failed = true;
		return false;
	}
	w->p = np;
	w->cap = cap;
	return true;
}

void
jw_raw(struct jw *w, const char *s, size_t len)
{
	if (!jw_reserve(w, len))
		return;
	memcpy(w->p + w->len, s, len);
	w->len += len;
}

void
jw_lit(struct jw *w, const char *s)
{
	jw_raw(w, s, strlen(s));
}

void
jw_str(struct jw *w, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	if (!s) {
		jw_raw(w, "null", 4);
		return;
	}
	/* Worst case every byte becomes \u00XX. */
	size_t n = strlen(s);
	if (!jw_reserve(w, n * 6 + 2))
		return;
	char *o = w->p + w->len;
	*o++ = '"';
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c == '"' || *c == '\\') {
			*o++ = '\\';
			*o++ = (char)*c;
		} else if (*c < 0x20) {
			memcpy(o, "\\u00", 4);
			o[4] = hex[*c >> 4];
			o[5] = hex[*c & 15];
			o += 6;
		} else {
			*o++ = (char)*c;
		}
	}
	*o++ = '"';
	w->len = (size_t)(o - w->p);
}

void
jw_key(struct jw *w, bool comma, const char *key)
{
	size_t n = strlen(key);
	if (!jw_reserve(w, n + 4))
		return;
	char *o = w->p + w->len;
	if (comma)
		*o++ = ',';
	*o++ = '"';
	memcpy(o, key, n);
	o += n;
	*o++ = '"';
	*o++ = ':';
	w->len = (size_t)(o - w->p);
}

void
jw_int(struct jw *w, long long v)
{
	if (!jw_reserve(w, 24))
		return;
	w->len += (size_t)snprintf(w->p + w->len, 24, "%lld", v);
}

void
jw_double(struct jw *w, double v)
{
	if (!isfinite(v)) {
		jw_raw(w, "null", 4);
		return;
	}
	if (!jw_reserve(w, 32))
		return;
	int n = snprintf(w->p + w->len, 32, "%.10g", v);
	/* "%g" may print an integer ("40"); JSON is fine with that. */
	w->len += (size_t)n;
}

void
jw_bool(struct jw *w, bool v)
{
	if (v)
		jw_raw(w, "true", 4);
	else
		jw_raw(w, "false", 5);
}

char *
jw_finish(struct jw *w, size_t *ret_len)
{
	if (w->failed) {
		free(w->p);
		w->p = NULL;
		return NULL;
	}
	w->p[w->len] = '\0';
	if (ret_len)
		*ret_len = w->len;
	char *p = w->p;
	w->p = NULL;
	return p;
}

void
jw_discard(struct jw *w)
{
	free(w->p);
	w->p = NULL;
}
