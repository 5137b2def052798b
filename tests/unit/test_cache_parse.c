// SPDX-License-Identifier: MIT
/* Unit tests for the cache-server's parsers: Range, VOD paths and opening, pull bodies, maps. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../cache-server/cache.h"

static void
test_range(void **state)
{
	struct cache_range r;
	(void)state;

	assert_int_equal(cache_range_parse("bytes=0-99", 1000, &r), 0);
	assert_int_equal(r.start, 0);
	assert_int_equal(r.len, 100);
	assert_int_equal(cache_range_parse("bytes=900-", 1000, &r), 0);
	assert_int_equal(r.start, 900);
	assert_int_equal(r.len, 100);
	assert_int_equal(cache_range_parse("bytes=-10", 1000, &r), 0);
	assert_int_equal(r.start, 990);
	assert_int_equal(r.len, 10);
	assert_int_equal(cache_range_parse("bytes=-5000", 1000, &r), 0); /* whole file */
	assert_int_equal(r.start, 0);
	assert_int_equal(r.len, 1000);
	assert_int_equal(cache_range_parse("bytes=500-5000", 1000, &r), 0); /* clipped */
	assert_int_equal(r.len, 500);
	assert_int_equal(cache_range_parse("bytes=999-999", 1000, &r), 0);
	assert_int_equal(r.len, 1);
	/* Unsatisfiable. */
	assert_int_equal(cache_range_parse("bytes=1000-", 1000, &r), -ERANGE);
	assert_int_equal(cache_range_parse("bytes=-0", 1000, &r), -ERANGE);
	assert_int_equal(cache_range_parse("bytes=0-", 0, &r), -ERANGE);
	/* Ignored: serve the whole file. */
	assert_int_equal(cache_range_parse("bytes=0-1,5-6", 1000, &r), 1);
	assert_int_equal(cache_range_parse("items=0-1", 1000, &r), 1);
	assert_int_equal(cache_range_parse("bytes=5-1", 1000, &r), 1);
	assert_int_equal(cache_range_parse("bytes=-", 1000, &r), 1);
	assert_int_equal(cache_range_parse("bytes=a-b", 1000, &r), 1);
	assert_int_equal(cache_range_parse("bytes=99999999999999999999999-", 1000, &r), 1);
	assert_int_equal(cache_range_parse(NULL, 1000, &r), 1);
}

static int
vp(const char *p, char *out)
{
	return cache_vod_path(p, strlen(p), out, 1100);
}

static void
test_vod_path(void **state)
{
	char out[1100];
	(void)state;

	assert_int_equal(vp("movie.mp4", out), 0);
	assert_string_equal(out, "movie.mp4");
	assert_int_equal(vp("a/b/c/d.bin", out), 0);
	assert_string_equal(out, "a/b/c/d.bin");
	assert_int_equal(vp("a/b/c/d/e", out), -EINVAL); /* too deep */
	assert_int_equal(vp("../etc/passwd", out), -EINVAL);
	assert_int_equal(vp("a/../../x", out), -EINVAL);
	assert_int_equal(vp("./x", out), -EINVAL);
	assert_int_equal(vp(".hidden", out), -EINVAL);
	assert_int_equal(vp("a//b", out), -EINVAL);
	assert_int_equal(vp("a/", out), -EINVAL);
	assert_int_equal(vp("", out), -EINVAL);
	assert_int_equal(vp("/abs", out), -EINVAL);
	assert_int_equal(vp("a\\b", out), -EINVAL);
	assert_int_equal(cache_vod_path("a\0b", 3, out, sizeof(out)), -EINVAL);
}

static void
test_vod_open(void **state)
{
	char dir[] = "/tmp/cache-vod-XXXXXX", path[256], outside[] = "/tmp/cache-out-XXXXXX";
	int root, fd, ofd;
	(void)state;

	assert_non_null(mkdtemp(dir));
	ofd = mkstemp(outside);
	assert_true(ofd >= 0);
	close(ofd);
	snprintf(path, sizeof(path), "%s/sub", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/sub/f.bin", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "abc", 3), 3);
	close(fd);
	snprintf(path, sizeof(path), "%s/escape", dir);
	assert_int_equal(symlink(outside, path), 0);
	snprintf(path, sizeof(path), "%s/up", dir);
	assert_int_equal(symlink("..", path), 0);
	root = open(dir, O_PATH | O_DIRECTORY);
	assert_true(root >= 0);

	fd = cache_vod_open(root, "sub/f.bin");
	assert_true(fd >= 0);
	close(fd);
	assert_true(cache_vod_open(root, "escape") < 0);
	assert_true(cache_vod_open(root, "up/tmp") < 0);
	assert_int_equal(cache_vod_open(root, "nope"), -ENOENT);

	close(root);
	snprintf(path, sizeof(path), "rm -rf %s %s", dir, outside);
	assert_int_equal(system(path), 0);
}

static void
test_pull_parse(void **state)
{
	struct cache_pull_req r;
	const char *why;
	const char *ok = "{\"channel\":\"news\",\"sources\":[{\"cache_id\":\"c-1\",\"url\":"
			 "\"http://10.1.0.7:7005/\",\"domain\":\"south\",\"load\":0.5},"
			 "{\"url\":\"http://10.1.0.8:7005\"},{\"url\":\"http://10.1.0.7:7005\"}],"
			 "\"extra\":1}";
	(void)state;

	assert_int_equal(cache_pull_parse(ok, strlen(ok), &r, &why), 0);
	assert_string_equal(r.channel, "news");
	assert_int_equal(r.nsrc, 2); /* the duplicate URL once */
	assert_string_equal(r.src[0].id, "c-1");
	assert_string_equal(r.src[0].url, "http://10.1.0.7:7005");
	assert_string_equal(r.src[1].id, "");

	static const char *bad[] = {
		"",
		"[]",
		"{\"channel\":\"news\"}",
		"{\"channel\":\"news\",\"sources\":[]}",
		"{\"channel\":\"bad name\",\"sources\":[{\"url\":\"http://a\"}]}",
		"{\"channel\":\"news\",\"sources\":[{\"url\":\"ftp://a\"}]}",
		"{\"channel\":\"news\",\"sources\":[{\"url\":\"http:///x\"}]}",
		"{\"channel\":\"news\",\"sources\":[{\"url\":\"http://a b\"}]}",
		"{\"channel\":\"news\",\"sources\":[{\"url\":7}]}",
		"{\"channel\":\"news\",\"sources\":[\"http://a\"]}",
		"{\"channel\":\"news\",\"sources\":[{\"url\":\"http://a\",\"cache_id\":5}]}",
		"{\"channel\":\"news\",\"channel\":\"x\",\"sources\":[{\"url\":\"http://a\"}]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		assert_int_equal(cache_pull_parse(bad[i], strlen(bad[i]), &r, &why), -EINVAL);
		assert_non_null(why);
	}
}

static void
test_map_parse(void **state)
{
	struct bmap m;
	const char *ok =
		"{\"channel\":\"x\",\"first\":16,\"size\":8,\"head\":16,\"bitmap\":\"gA\"}";
	(void)state;

	assert_int_equal(cache_map_parse(ok, strlen(ok), &m), 0);
	assert_int_equal(m.first, 16);
	assert_true(bmap_has(&m, 16));
	assert_int_equal(bmap_count(&m), 1);
	static const char *bad[] = {
		"{}",
		"{\"first\":-1,\"size\":8,\"bitmap\":\"gA\"}",
		"{\"first\":0,\"size\":9,\"bitmap\":\"gA\"}",
		"{\"first\":0,\"size\":16,\"bitmap\":\"gA\"}",
		"{\"first\":0,\"size\":8,\"bitmap\":5}",
		"nope",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(cache_map_parse(bad[i], strlen(bad[i]), &m), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_range),     cmocka_unit_test(test_vod_path),
		cmocka_unit_test(test_vod_open),  cmocka_unit_test(test_pull_parse),
		cmocka_unit_test(test_map_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
