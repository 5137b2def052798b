// SPDX-License-Identifier: MIT
/* libFuzzer target: cfg_load on arbitrary file contents against a small table. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"

static const struct cfg_key fuzz_table[] = {
	{ "server", "listen", CFG_STR, "127.0.0.1:1", 1, 64, false, "" },
	{ "server", "name", CFG_STR, NULL, 1, 16, false, "" },
	{ "server", "threads", CFG_INT, "4", 1, 64, false, "" },
	{ "server", "verbose", CFG_BOOL, "false", 0, 1, true, "" },
	{ "server", "offset", CFG_INT, "0", -100, 100, true, "" },
	{ "redis", "url", CFG_STR, "", 0, 1000, false, "" },
	{ "redis", "password", CFG_STR, "", 0, 64, true, "" },
};
#define FUZZ_N (sizeof(fuzz_table) / sizeof(fuzz_table[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One temp file per process, rewritten in place for every input: pwrite and
 * ftruncate rather than O_TRUNC, which on ext4 flushes to disk at every close. */
static char fuzz_path[64];
static int fuzz_fd = -1;

static void
fuzz_cleanup(void)
{
	if (fuzz_path[0])
		unlink(fuzz_path);
}

static void
fuzz_write(const uint8_t *data, size_t size)
{
	if (fuzz_fd < 0) {
		strcpy(fuzz_path, "/tmp/fuzz_cfg.XXXXXX");
		fuzz_fd = mkstemp(fuzz_path);
		if (fuzz_fd < 0)
			abort();
		atexit(fuzz_cleanup);
	}
	if ((size && pwrite(fuzz_fd, data, size, 0) != (ssize_t)size) ||
	    ftruncate(fuzz_fd, (off_t)size) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	struct cfg *c;

	fuzz_write(data, size);
	memset(err, 'x', sizeof(err));
	c = cfg_load(fuzz_table, FUZZ_N, fuzz_path, err, sizeof(err));
	if (!c) {
		/* Every failure explains itself, naming the file. */
		if (!memchr(err, '\0', sizeof(err)) ||
		    strncmp(err, fuzz_path, strlen(fuzz_path)) != 0)
			abort();
		return 0;
	}
	if (err[0] != '\0')
		abort();
	/* Every value obeys its table row. */
	for (size_t i = 0; i < FUZZ_N; i++) {
		const struct cfg_key *k = &fuzz_table[i];
		long long v;
		size_t len;

		switch (k->type) {
		case CFG_STR:
			len = strlen(cfg_str(c, k->section, k->name));
			if ((long long)len < k->min || (long long)len > k->max)
				abort();
			break;
		case CFG_INT:
			v = cfg_int(c, k->section, k->name);
			if (v < k->min || v > k->max)
				abort();
			break;
		case CFG_BOOL:
			(void)cfg_bool(c, k->section, k->name);
			break;
		}
	}
	if (cfg_diff_fixed(c, c, err, sizeof(err)) != 0 || err[0] != '\0')
		abort();
	cfg_free(c);
	return 0;
}
