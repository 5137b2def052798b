// SPDX-License-Identifier: MIT
/* Logging to stderr with syslog priority prefixes that journald understands. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const char *log_ident = "p2pcdn";
static atomic_int log_level = LOG_INFO;
static __thread const char *log_rid;

void
log_init(const char *ident)
{
	if (ident)
		log_ident = ident;
}

void
log_set_level(int level)
{
	atomic_store(&log_level, level);
}

int
log_get_level(void)
{
	return atomic_load(&log_level);
}

int
log_parse_level(const char *s)
{
	static const struct {
		const char *name;
		int level;
	} names[] = {
		{ "debug", LOG_DEBUG },     { "info", LOG_INFO },    { "notice", LOG_NOTICE },
		{ "warning", LOG_WARNING }, { "warn", LOG_WARNING }, { "err", LOG_ERR },
		{ "error", LOG_ERR },
	};
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(s, names[i].name) == 0)
			return names[i].level;
	return -EINVAL;
}

void
log_set_request_id(const char *rid)
{
	log_rid = rid;
}

int
log_enabled(int level)
{
	return level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void
log_msg(int level, const char *fmt, ...)
{
	char buf[2048];
	int n, m;
	va_list ap;

	if (!log_enabled(level))
		return;
	if (log_rid)
		n = snprintf(buf, sizeof(buf), "<%d>%s: rid=%s ", level, log_ident, log_rid);
	else
		n = snprintf(buf, sizeof(buf), "<%d>%s: ", level, log_ident);
	if (n < 0 || (size_t)n >= sizeof(buf))
		n = 0;
	va_start(ap, fmt);
	m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(buf) - 2)
		n = sizeof(buf) - 2; /* truncated: keep the line whole */
	/* One line per message: a newline inside a message would let a client
	 * forge log lines through anything we echo, so flatten it. */
	for (int i = 0; i < n; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	buf[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
	(void)w;
}
