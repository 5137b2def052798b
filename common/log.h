/* SPDX-License-Identifier: MIT */
/* Logging to stderr with syslog priority prefixes that journald understands. */
#ifndef P2PCDN_LOG_H
#define P2PCDN_LOG_H

#include <syslog.h>

/*
 * Every line is "<PRI>ident: [rid=ID ]message\n", written with one write(2)
 * so lines from different threads never interleave. journald strips the
 * "<PRI>" and files the line at that priority; on a terminal it is still
 * readable. Levels are syslog's: LOG_ERR, LOG_WARNING, LOG_NOTICE,
 * LOG_INFO, LOG_DEBUG.
 */

/* Sets the ident printed on each line (static string, not copied). */
void log_init(const char *ident);

/* Lines above this level are dropped. Any thread; takes effect at once. */
void log_set_level(int level);
int log_get_level(void);

/* "debug", "info", "notice", "warning"/"warn", "err"/"error" -> level,
 * or -EINVAL. */
int log_parse_level(const char *s);

/* The calling thread's request id, printed on each line while set; NULL
 * clears it. The string must live until cleared. */
void log_set_request_id(const char *rid);

/* True when a message at level would be written (to skip costly formatting). */
int log_enabled(int level);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...)    log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)  log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
