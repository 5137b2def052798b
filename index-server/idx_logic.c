// SPDX-License-Identifier: MIT
/* index-server: request parsing, ViewNum, proximity ranges and ordering, the swarm script. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idx.h"

#define IDX_BANDWIDTH_MAX 100000000LL /* kbit/s: 100 Gbit/s */

bool
idx_channel_ok(const char *s, size_t len)
{
	if (len < 1 || len > IDX_CHANNEL_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

const char *
idx_role_name(int role)
{
	return role == IDX_ROLE_PUBLISHER ? "publisher" : "viewer";
}

static int
idx_fail(const char **ret_code, const char *code, char *err, size_t errsize, const char *msg)
{
	*ret_code = code;
	snprintf(err, errsize, "%s", msg);
	return -EINVAL;
}

int
idx_parse_body(json_t *body, unsigned which, struct idx_req *ret, const char **ret_code, char *err,
	       size_t errsize)
{
	static const struct {
		const char *name;
		unsigned flag;
	} known[] = {
		{ "peer_id", IDX_F_PEER },       { "channel", IDX_F_CHANNEL },
		{ "listen_addr", IDX_F_LISTEN }, { "bandwidth_kbps", IDX_F_BANDWIDTH },
		{ "role", IDX_F_ROLE },
	};
	const char *k;
	json_t *v;

	if (!json_is_object(body))
		return idx_fail(ret_code, "expected_object", err, errsize,
				"the body must be a JSON object");
	memset(ret, 0, sizeof(*ret));
	json_object_foreach (body, k, v) {
		bool ok = false;
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			ok = ok || ((which & known[i].flag) && strcmp(k, known[i].name) == 0);
		if (!ok) {
			*ret_code = "unknown_field";
			snprintf(err, errsize, "unknown field \"%.64s\"", k);
			return -EINVAL;
		}
	}
	if (which & IDX_F_PEER) {
		v = json_object_get(body, "peer_id");
		if (!json_is_string(v) ||
		    peerid_parse(json_string_value(v), json_string_length(v), &ret->pid) < 0)
			return idx_fail(ret_code, "bad_request", err, errsize,
					"peer_id must be a PeerID of 14 hex digits (from the "
					"route-server's GET /v1/route)");
		peerid_format(ret->pid, ret->pid_hex, sizeof(ret->pid_hex));
	}
	if (which & IDX_F_CHANNEL) {
		v = json_object_get(body, "channel");
		if (!json_is_string(v) ||
		    !idx_channel_ok(json_string_value(v), json_string_length(v)))
			return idx_fail(ret_code, "bad_request", err, errsize,
					"channel must be 1-128 characters of A-Z a-z 0-9 . _ -");
		memcpy(ret->channel, json_string_value(v), json_string_length(v));
		ret->channel[json_string_length(v)] = '\0';
	}
	if (which & IDX_F_LISTEN) {
		struct addr a;
		v = json_object_get(body, "listen_addr");
		if (!json_is_string(v) || json_string_length(v) >= ADDR_STR_MAX ||
		    addr_parse(json_string_value(v), json_string_length(v), true, &a) < 0 ||
		    a.port == 0 || addr_format(&a, ret->listen_addr, sizeof(ret->listen_addr)) < 0)
			return idx_fail(ret_code, "bad_request", err, errsize,
					"listen_addr must be \"IP:PORT\" or \"[IPv6]:PORT\" with a "
					"port of 1-65535");
	}
	if (which & IDX_F_BANDWIDTH) {
		v = json_object_get(body, "bandwidth_kbps");
		if (v && !json_is_null(v)) {
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    json_integer_value(v) > IDX_BANDWIDTH_MAX)
				return idx_fail(ret_code, "bad_request", err, errsize,
						"bandwidth_kbps must be an integer in [0, "
						"100000000]");
			ret->bandwidth_kbps = (long long)json_integer_value(v);
		}
	}
	if (which & IDX_F_ROLE) {
		v = json_object_get(body, "role");
		ret->role = IDX_ROLE_VIEWER;
		if (v && !json_is_null(v)) {
			const char *s = json_string_value(v);
			if (s && strcmp(s, "viewer") == 0)
				ret->role = IDX_ROLE_VIEWER;
			else if (s && strcmp(s, "publisher") == 0)
				ret->role = IDX_ROLE_PUBLISHER;
			else
				return idx_fail(ret_code, "bad_request", err, errsize,
						"role must be \"viewer\" or \"publisher\"");
		}
	}
	return 0;
}

unsigned
idx_view_num(long long n, unsigned c, unsigned vmin, unsigned vmax)
{
	double v = n > 1 ? ceil((double)(c + 1) * log((double)n)) : 0;
	unsigned r = v > (double)vmax ? vmax : (unsigned)v;
	if (r < vmin)
		r = vmin;
	if (r > vmax)
		r = vmax;
	return r;
}

int
idx_prox_ranges(uint64_t pid, char lo[IDX_LEVELS][PEERID_HEX_LEN + 1],
		char hi[IDX_LEVELS][PEERID_HEX_LEN + 1])
{
	/* Leading bits of the first k fields: country 8, nettype 4, region 6,
	 * city 6, area 16 (seed 001 §3.1.1). */
	static const unsigned bits[IDX_LEVELS] = { 8, 12, 18, 24, 40 };
	struct peerid_fields f;
	int kmax = 0;

	if (peerid_decode(pid, &f) < 0)
		return 0;
	const unsigned fv[IDX_LEVELS] = { f.country, f.nettype, f.region, f.city, f.area };
	while (kmax < IDX_LEVELS && fv[kmax] != 0)
		kmax++;
	for (int k = 0; k < kmax; k++) {
		uint64_t low = (UINT64_C(1) << (56 - bits[k])) - 1;
		peerid_format(pid & ~low & PEERID_MAX, lo[k], PEERID_HEX_LEN + 1);
		peerid_format((pid | low) & PEERID_MAX, hi[k], PEERID_HEX_LEN + 1);
	}
	return kmax;
}

static int
idx_member_cmp(const void *a, const void *b)
{
	const struct idx_member *x = a, *y = b;
	if (x->prox != y->prox)
		return x->prox > y->prox ? -1 : 1;
	return x->rnd < y->rnd ? -1 : x->rnd > y->rnd;
}

size_t
idx_order(uint64_t self, struct idx_member *m, size_t n, uint32_t (*rng)(void *arg), void *arg)
{
	size_t others = 0;
	for (size_t i = 0; i < n; i++) {
		if (m[i].pid == self) {
			m[i].prox = -1;
		} else {
			m[i].prox = peerid_proximity(self, m[i].pid);
			others++;
		}
		m[i].rnd = rng(arg);
	}
	qsort(m, n, sizeof(*m), idx_member_cmp);
	return others;
}

int
idx_info_split(const char *info, size_t len, char *addr, size_t addrsize, long long *ret_bw,
	       int *ret_role)
{
	const char *sp1 = memchr(info, ' ', len);
	if (!sp1 || (size_t)(sp1 - info) >= addrsize)
		return -EINVAL;
	const char *rest = sp1 + 1, *end = info + len;
	const char *sp2 = memchr(rest, ' ', (size_t)(end - rest));
	if (!sp2 || sp2 == rest)
		return -EINVAL;
	long long bw = 0;
	for (const char *p = rest; p < sp2; p++) {
		if (*p < '0' || *p > '9' || bw > IDX_BANDWIDTH_MAX)
			return -EINVAL;
		bw = bw * 10 + (*p - '0');
	}
	size_t rl = (size_t)(end - sp2 - 1);
	int role;
	if (rl == 6 && memcmp(sp2 + 1, "viewer", 6) == 0)
		role = IDX_ROLE_VIEWER;
	else if (rl == 9 && memcmp(sp2 + 1, "publisher", 9) == 0)
		role = IDX_ROLE_PUBLISHER;
	else
		return -EINVAL;
	memcpy(addr, info, (size_t)(sp1 - info));
	addr[sp1 - info] = '\0';
	*ret_bw = bw;
	*ret_role = role;
	return 0;
}

/*
 * Every swarm operation, atomically on the three keys of one swarm (one
 * hash tag, so Redis Cluster keeps them on one node):
 *   KEYS[1] swarm  sorted set  PeerID -> last heartbeat (unix ms)
 *   KEYS[2] lex    sorted set  PeerID, all scores 0: PeerID order
 *   KEYS[3] info   hash        PeerID -> "LISTEN_ADDR BANDWIDTH ROLE"
 * ARGV: op (join|look|hb|leave|trim), PeerID, now_ms, cutoff_ms (older =
 * expired), key TTL ms, trim batch, info, c, vmin, vmax, random seed, kmax,
 * then kmax pairs lo hi of the proximity ranges (idx_prox_ranges).
 *
 * Candidates are checked for expiry once, at the end (one ZMSCORE), and a
 * few more than view are gathered to make up for expired ones not yet
 * trimmed.
 * Cost: the trim is one ZRANGEBYSCORE of at most `batch` entries; a
 * heartbeat adds O(log N); a join or look walks the proximity classes from
 * the joiner's own (longest shared prefix: a contiguous lex range around
 * it) outwards, reading a whole class when it is small and random blocks of
 * it otherwise, so it costs O(levels * log N + view) whatever N is. The
 * final order (closest first, random among equals) is made in C.
 * Replies: join/look {isnew, n, view, id, info, ...}; hb {member, n};
 * leave {removed, n}; trim {removed, n, card}.
 */
const char idx_script[] =
	"local sw, lx, inf = KEYS[1], KEYS[2], KEYS[3]\n"
	"local op, pid = ARGV[1], ARGV[2]\n"
	"local now, cutoff = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
	"local ttl, batch = ARGV[5], tonumber(ARGV[6])\n"
	"local function drop(ids)\n"
	"  redis.call('ZREM', sw, unpack(ids))\n"
	"  redis.call('ZREM', lx, unpack(ids))\n"
	"  redis.call('HDEL', inf, unpack(ids))\n"
	"end\n"
	"local old = redis.call('ZRANGEBYSCORE', sw, '-inf', '(' .. ARGV[4], 'LIMIT', 0, batch)\n"
	"if #old > 0 then drop(old) end\n"
	"if op == 'trim' then\n"
	"  return {#old, redis.call('ZCOUNT', sw, ARGV[4], '+inf'), redis.call('ZCARD', sw)}\n"
	"end\n"
	"if op == 'leave' then\n"
	"  local r = redis.call('ZREM', sw, pid)\n"
	"  redis.call('ZREM', lx, pid)\n"
	"  redis.call('HDEL', inf, pid)\n"
	"  return {r, redis.call('ZCOUNT', sw, ARGV[4], '+inf')}\n"
	"end\n"
	"local function keep()\n"
	"  redis.call('PEXPIRE', sw, ttl)\n"
	"  redis.call('PEXPIRE', lx, ttl)\n"
	"  redis.call('PEXPIRE', inf, ttl)\n"
	"end\n"
	"if op == 'hb' then\n"
	"  local s = redis.call('ZSCORE', sw, pid)\n"
	"  if s and tonumber(s) < cutoff then drop({pid}); s = nil end\n"
	"  if not s then return {0, redis.call('ZCOUNT', sw, ARGV[4], '+inf')} end\n"
	"  redis.call('ZADD', sw, ARGV[3], pid)\n"
	"  keep()\n"
	"  return {1, redis.call('ZCOUNT', sw, ARGV[4], '+inf')}\n"
	"end\n"
	"local isnew = 0\n"
	"if op == 'join' then\n"
	"  local s = redis.call('ZSCORE', sw, pid)\n"
	"  if not s or tonumber(s) < cutoff then isnew = 1 end\n"
	"  redis.call('ZADD', sw, ARGV[3], pid)\n"
	"  redis.call('ZADD', lx, 0, pid)\n"
	"  redis.call('HSET', inf, pid, ARGV[7])\n"
	"  keep()\n"
	"end\n"
	"local n = redis.call('ZCOUNT', sw, ARGV[4], '+inf')\n"
	"local c, vmin, vmax = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])\n"
	"local view = 0\n"
	"if n > 1 then view = math.ceil((c + 1) * math.log(n)) end\n"
	"if view > vmax then view = vmax end\n"
	"if view < vmin then view = vmin end\n"
	"math.randomseed(tonumber(ARGV[11]))\n"
	"local kmax = tonumber(ARGV[12])\n"
	"local lo, hi = {}, {}\n"
	"for k = 1, kmax do lo[k] = ARGV[11 + 2 * k]; hi[k] = ARGV[12 + 2 * k] end\n"
	"local out, seen, need = {}, {}, view + math.floor(view / 8) + 1\n"
	"seen[pid] = true\n"
	"local function take(ids)\n"
	"  for _, id in ipairs(ids) do\n"
	"    if not seen[id] then seen[id] = true; out[#out + 1] = id; need = need - 1 end\n"
	"  end\n"
	"end\n"
	"local covered, inner = 0, nil\n"
	"for k = kmax, 0, -1 do\n"
	"  if need <= 0 then break end\n"
	"  local l, h = '-', '+'\n"
	"  if k > 0 then l, h = '[' .. lo[k], '[' .. hi[k] end\n"
	"  local cnt = redis.call('ZLEXCOUNT', lx, l, h)\n"
	"  local avail = cnt - covered\n"
	"  if avail > 0 then\n"
	"    if avail <= 2 * need + 8 then\n"
	"      if inner then\n"
	"        take(redis.call('ZRANGEBYLEX', lx, l, '(' .. lo[inner]))\n"
	"        take(redis.call('ZRANGEBYLEX', lx, '(' .. hi[inner], h))\n"
	"      else\n"
	"        take(redis.call('ZRANGEBYLEX', lx, l, h))\n"
	"      end\n"
	"    else\n"
	"      local base = 0\n"
	"      if k > 0 then base = redis.call('ZLEXCOUNT', lx, '-', '(' .. lo[k]) end\n"
	"      local left = avail\n"
	"      if inner then left = redis.call('ZLEXCOUNT', lx, l, '(' .. lo[inner]) end\n"
	"      local blocks = math.min(4, need)\n"
	"      local size = math.ceil((need + 2) / blocks)\n"
	"      for b = 1, blocks do\n"
	"        local s = math.random(0, avail - 1)\n"
	"        local e = math.min(s + size, avail) - 1\n"
	"        if s < left then\n"
	"          take(redis.call('ZRANGE', lx, base + s, base + math.min(e, left - 1)))\n"
	"        end\n"
	"        if e >= left then\n"
	"          take(redis.call('ZRANGE', lx, base + covered + math.max(s, left), base + "
	"covered + e))\n"
	"        end\n"
	"      end\n"
	"    end\n"
	"  end\n"
	"  covered = cnt\n"
	"  inner = k\n"
	"end\n"
	"local res = {isnew, n, view}\n"
	"if #out > 0 then\n"
	"  local sc = redis.call('ZMSCORE', sw, unpack(out))\n"
	"  local infos = redis.call('HMGET', inf, unpack(out))\n"
	"  for i, id in ipairs(out) do\n"
	"    if sc[i] and tonumber(sc[i]) >= cutoff then\n"
	"      res[#res + 1] = id\n"
	"      res[#res + 1] = infos[i] or ''\n"
	"    end\n"
	"  end\n"
	"end\n"
	"return res\n";
