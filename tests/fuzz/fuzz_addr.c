// SPDX-License-Identifier: MIT
/* libFuzzer target for common/addr: addr_parse, addr_list_parse, addr_client. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whatever parses must format and parse back to the same address. */
static void
fuzz_parse(const uint8_t *data, size_t size, bool need_port)
{
	struct addr a, b;
	char buf[ADDR_STR_MAX];

	if (addr_parse((const char *)data, size, need_port, &a) != 0)
		return;
	if (need_port && a.port == 0)
		abort();
	if (addr_format(&a, buf, sizeof(buf)) != 0 ||
	    addr_parse(buf, strlen(buf), false, &b) != 0 || !addr_equal_ip(&a, &b) ||
	    a.port != b.port)
		abort();
	if (addr_format_ip(&a, buf, sizeof(buf)) != 0)
		abort();
	(void)addr_is_private(&a);
}

/*
 * The C-string APIs: input up to the first newline is a trusted list, the
 * rest an X-Forwarded-For value. Copies are NUL-terminated (and cut at an
 * embedded NUL, as a C caller would see them).
 */
static void
fuzz_list_and_xff(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t llen = nl ? (size_t)(nl - data) : size;
	size_t xlen = nl ? size - llen - 1 : 0;
	char *ls = malloc(llen + 1), *xs = malloc(xlen + 1);
	struct addr_list *l = NULL;
	size_t pos = SIZE_MAX;
	int err = 0;

	if (!ls || !xs)
		goto out;
	memcpy(ls, data, llen);
	ls[llen] = '\0';
	memcpy(xs, data + llen + (nl ? 1 : 0), xlen);
	xs[xlen] = '\0';

	l = addr_list_parse(ls, &err, &pos);
	if (!l) {
		if (err != -EINVAL && err != -ENOMEM)
			abort();
		if (err == -EINVAL && pos >= strlen(ls))
			abort();
		l = addr_list_parse("10.0.0.0/8, 2001:db8::/32, 127.0.0.1", &err, &pos);
		if (!l)
			goto out;
	}

	static const char *const peers[] = { "10.0.0.1:80", "[2001:db8::1]:80", "127.0.0.1",
					     "203.0.113.1:443" };
	for (size_t i = 0; i < sizeof(peers) / sizeof(peers[0]); i++) {
		struct addr peer, got;
		char buf[ADDR_STR_MAX];

		if (addr_parse(peers[i], strlen(peers[i]), false, &peer) != 0)
			abort();
		addr_client(&peer, xs, l, &got);
		/* An untrusted peer is always its own answer. */
		if (!addr_list_match(l, &peer) && memcmp(&got, &peer, sizeof(got)) != 0)
			abort();
		if (addr_format(&got, buf, sizeof(buf)) != 0)
			abort();
		addr_client(&peer, NULL, l, &got);
		if (memcmp(&got, &peer, sizeof(got)) != 0)
			abort();
	}
out:
	addr_list_free(l);
	free(ls);
	free(xs);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_parse(data, size, false);
	fuzz_parse(data, size, true);
	fuzz_list_and_xff(data, size);
	return 0;
}
