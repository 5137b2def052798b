/* SPDX-License-Identifier: MIT */
/* A small JSON writer for hot paths: one growing buffer, no tree. */
#ifndef P2PCDN_JW_H
#define P2PCDN_JW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Building a jansson tree and dumping it costs an allocation per value;
 * answers written on every request (route, heartbeat, announce) go through
 * this instead. The caller writes keys and separators in order; strings are
 * escaped per RFC 8259 (control characters, quote, backslash; other UTF-8
 * bytes pass through). On allocation failure the writer stops writing and
 * jw_finish returns NULL, so callers check once at the end.
 */
struct jw {
	char *p;
	size_t len, cap;
	bool failed;
};

/* Starts with an initial capacity (bytes). Never fails: a failed
 * allocation is reported by jw_finish. */
void jw_init(struct jw *w, size_t cap);

void jw_raw(struct jw *w, const char *s, size_t len);   /* as is */
void jw_lit(struct jw *w, const char *s);               /* as is, NUL-terminated */
void jw_str(struct jw *w, const char *s);               /* "escaped", NULL -> null */
void jw_key(struct jw *w, bool comma, const char *key); /* [,]"key": (key not escaped) */
void jw_int(struct jw *w, long long v);
void jw_double(struct jw *w, double v); /* up to 10 significant digits; NaN/Inf -> null */
void jw_bool(struct jw *w, bool v);

/* Returns the NUL-terminated text (caller frees) and its length, or NULL
 * (everything freed) if any allocation failed. */
char *jw_finish(struct jw *w, size_t *ret_len);

/* Frees without returning the text. */
void jw_discard(struct jw *w);

#endif
