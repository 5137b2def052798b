// SPDX-License-Identifier: MIT
/* cache-server: VOD files over HTTP with byte ranges, usable as a BEP 19 web seed. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"

int
cache_range_parse(const char *h, uint64_t size, struct cache_range *ret)
{
	const char *p, *dash;
	uint64_t a = 0, b = 0;
	bool has_a = false, has_b = false;

	if (!h || strncmp(h, "bytes=", 6) != 0)
		return 1;
	p = h + 6;
	p += strspn(p, " \t");
	if (strchr(p, ','))
		return 1; /* several ranges: the whole file is a valid answer */
	dash = strchr(p, '-');
	if (!dash)
		return 1;
	for (; p < dash && *p >= '0' && *p <= '9'; p++) {
		if (a > (UINT64_MAX - 9) / 10)
			return 1;
		a = a * 10 + (uint64_t)(*p - '0');
		has_a = true;
	}
	if (p != dash)
		return 1;
	for (p = dash + 1; *p >= '0' && *p <= '9'; p++) {
		if (b > (UINT64_MAX - 9) / 10)
			return 1;
		b = b * 10 + (uint64_t)(*p - '0');
		has_b = true;
	}
	p += strspn(p, " \t");
	if (*p || (!has_a && !has_b))
		return 1;
	if (!has_a) {
		/* Suffix range: the last b bytes. */
		if (b == 0 || size == 0)
			return -ERANGE;
		if (b > size)
			b = size;
		ret->start = size - b;
		ret->len = b;
		return 0;
	}
	if (has_b && b < a)
		return 1; /* RFC 9110: an invalid range is ignored */
	if (a >= size)
		return -ERANGE;
	if (!has_b || b >= size)
		b = size - 1;
	ret->start = a;
	ret->len = b - a + 1;
	return 0;
}

int
cache_vod_path(const char *path, size_t len, char *out, size_t outsize)
{
	size_t o = 0, depth = 0, i = 0;

	if (!path || len == 0 || outsize == 0)
		return -EINVAL;
	while (i < len) {
		size_t start = i, seg;

		while (i < len && path[i] != '/')
			i++;
		seg = i - start;
		if (seg == 0 || seg > 255 || path[start] == '.' || ++depth > CACHE_VOD_DEPTH)
			return -EINVAL;
		for (size_t k = start; k < i; k++)
			if (path[k] == '\0' || path[k] == '\\')
				return -EINVAL;
		if (o + seg + 2 > outsize)
			return -EINVAL;
		if (o)
			out[o++] = '/';
		memcpy(out + o, path + start, seg);
		o += seg;
		if (i < len)
			i++; /* the '/' */
		if (i == len && path[len - 1] == '/')
			return -EINVAL; /* a directory */
	}
	out[o] = '\0';
	return 0;
}

/* Without openat2: one component at a time, never following a symlink. */
static int
cache_vod_walk(int root_fd, const char *rel)
{
	char buf[CACHE_VOD_DEPTH * 257];
	int dir = root_fd, fd = -1;
	char *p = buf, *slash;

	if (strlen(rel) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, rel);
	for (;;) {
		slash = strchr(p, '/');
		if (slash)
			*slash = '\0';
		fd = openat(dir, p,
			    O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK |
				    (slash ? O_DIRECTORY : 0));
		int e = errno;
		if (dir != root_fd)
			close(dir);
		if (fd < 0)
			return -e;
		if (!slash)
			return fd;
		dir = fd;
		p = slash + 1;
	}
}

int
cache_vod_open(int root_fd, const char *rel)
{
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, root_fd, rel, &how, sizeof(how));

	if (fd >= 0)
		return (int)fd;
	if (errno == ENOSYS || errno == EPERM) /* old kernel, or a seccomp filter */
		return cache_vod_walk(root_fd, rel);
	return -errno;
}

static const char *
cache_vod_type(const char *rel)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{ ".mp4", "video/mp4" },
		{ ".m4s", "video/iso.segment" },
		{ ".ts", "video/mp2t" },
		{ ".m3u8", "application/vnd.apple.mpegurl" },
		{ ".mpd", "application/dash+xml" },
		{ ".webm", "video/webm" },
		{ ".mkv", "video/x-matroska" },
		{ ".mp3", "audio/mpeg" },
		{ ".torrent", "application/x-bittorrent" },
		{ ".txt", "text/plain; charset=utf-8" },
		{ ".json", "application/json" },
	};
	const char *dot = strrchr(rel, '.');

	for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
		if (strcasecmp(dot, types[i].ext) == 0)
			return types[i].type;
	return "application/octet-stream";
}

void
cache_handle_vod(struct http_req *req, void *arg)
{
	struct cache_env *env = arg;
	const char *path = http_req_path(req);
	char rel[CACHE_VOD_DEPTH * 257], etag[64], lm[64], cr[96];
	struct cache_range rg;
	struct stat sb;
	struct tm tm;
	int fd, r;

	if (env->vod_fd < 0) {
		http_reply_error(req, 404, "vod_disabled", "this cache serves no VOD files");
		return;
	}
	if (strncmp(path, "/vod/", 5) != 0 ||
	    cache_vod_path(path + 5, strlen(path + 5), rel, sizeof(rel)) < 0) {
		http_reply_error(req, 400, "bad_path",
				 "VOD paths are 1-%d segments, none empty, none starting with '.'",
				 CACHE_VOD_DEPTH);
		return;
	}
	fd = cache_vod_open(env->vod_fd, rel);
	if (fd < 0) {
		if (fd == -EXDEV || fd == -ELOOP)
			http_reply_error(req, 403, "path_refused",
					 "the path leaves the VOD directory");
		else if (fd == -EACCES)
			http_reply_error(req, 403, "forbidden", "the file is not readable");
		else
			http_reply_error(req, 404, "not_found", "no such file");
		return;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		http_reply_error(req, 404, "not_found", "no such file");
		return;
	}
	/* Non-blocking was only for the open (a FIFO must not hang us). */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	snprintf(etag, sizeof(etag), "\"%" PRIx64 "-%" PRIx64 "-%lx\"", (uint64_t)sb.st_size,
		 (uint64_t)sb.st_mtim.tv_sec, (unsigned long)sb.st_mtim.tv_nsec);
	gmtime_r(&sb.st_mtim.tv_sec, &tm);
	strftime(lm, sizeof(lm), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	http_reply_header(req, "Accept-Ranges", "bytes");
	http_reply_header(req, "ETag", etag);
	http_reply_header(req, "Last-Modified", lm);
	http_reply_header(req, "Cache-Control", "public, max-age=3600");

	const char *range = http_req_header(req, "Range");
	const char *if_range = http_req_header(req, "If-Range");
	r = range ? cache_range_parse(range, (uint64_t)sb.st_size, &rg) : 1;
	/* If-Range: the range holds only for the version the client has. */
	if (range && if_range && strcmp(if_range, etag) != 0 && strcmp(if_range, lm) != 0)
		r = 1;
	if (r == -ERANGE) {
		close(fd);
		snprintf(cr, sizeof(cr), "bytes */%" PRIu64, (uint64_t)sb.st_size);
		http_reply_header(req, "Content-Range", cr);
		http_reply_error(req, 416, "range_not_satisfiable",
				 "the range lies outside the file (%" PRIu64 " bytes)",
				 (uint64_t)sb.st_size);
		return;
	}
	if (r == 0) {
		snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, rg.start,
			 rg.start + rg.len - 1, (uint64_t)sb.st_size);
		http_reply_header(req, "Content-Range", cr);
	} else {
		rg.start = 0;
		rg.len = (uint64_t)sb.st_size;
	}
	if (strcmp(http_req_method(req), "HEAD") != 0) {
		atomic_fetch_add_explicit(&env->bytes_out, rg.len, memory_order_relaxed);
		met_add(env->m.bytes_vod, (double)rg.len);
	}
	http_reply_fd(req, r == 0 ? 206 : 200, cache_vod_type(rel), fd, rg.start, rg.len);
}
