/* SPDX-License-Identifier: MIT */
/* Tiny helpers shared by several modules, header-only. */
#ifndef P2PCDN_UTIL_H
#define P2PCDN_UTIL_H

/* Value of one hex digit (either case), or -1. By hand, so the locale
 * never matters. */
static inline int
util_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif
