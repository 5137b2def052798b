# SPDX-License-Identifier: MIT
"""cache-server against real Redis: publishing and serving live chunks, the
refusals, pulls between two caches (and a source dying under a pull), the
memory cap with many channels, the Redis registry and VOD byte ranges."""

import os
import signal
import threading
import time

from fx_cache import (CACHE_TOKEN_KEY, decode_bitmap, mint_token, publish_token, pull_token,
                      TOK_KIND_PULL, TOK_KIND_RELAY)
from p2ptest import assert_error, http_request, metric_value, parse_metrics, wait_until


def small(cfg=None):
    """A window of 64 chunks: slides quickly in tests."""
    base = {"cache": {"window_chunks": 64}}
    for s, kv in (cfg or {}).items():
        base.setdefault(s, {}).update(kv)
    return base


# ------------------------------------------------------------- live chunks


def test_publish_get_map(cache_server):
    c = cache_server(small())
    data = {s: os.urandom(1000 + s) for s in range(10, 40)}
    for s, d in data.items():
        r = c.put_chunk("news", s, d)
        assert r.status == 201, r
        assert r.json()["seq"] == s and r.json()["head"] == s
    for s, d in data.items():
        r = c.get_chunk("news", s)
        assert r.status == 200 and r.body == d
        assert r.header("Content-Type") == "application/octet-stream"
        cc = r.header("Cache-Control")
        assert "immutable" in cc and "max-age=12" in cc, cc  # 64 x 200 ms
        etag = r.header("ETag")
        assert etag and etag.startswith('"')
    r = c.get_chunk("news", 20, headers={"If-None-Match": etag})
    assert r.status == 200  # another chunk's ETag
    e20 = c.get_chunk("news", 20).header("ETag")
    r = c.get_chunk("news", 20, headers={"If-None-Match": e20})
    assert r.status == 304 and r.body == b""
    m = c.get_map("news")
    assert m.status == 200 and m.header("Cache-Control") == "no-store"
    j = m.json()
    assert j["size"] == 64 and j["head"] == 39 and j["count"] == 30 and j["chunk_ms"] == 200
    assert j["first"] == 0
    assert decode_bitmap(j["first"], j["size"], j["bitmap"]) == set(data)
    # not yet (in window / ahead), unknown channel
    assert_error(c.get_chunk("news", 5), 404, "not_yet")
    assert_error(c.get_chunk("news", 45), 404, "not_yet")
    assert_error(c.get_chunk("other", 1), 404, "unknown_channel")
    assert_error(c.get_map("other"), 404, "unknown_channel")
    # the window slides: 100 makes everything before 37 expire
    assert c.put_chunk("news", 100, b"x" * 10).status == 201
    assert_error(c.get_chunk("news", 20), 410, "expired")
    assert c.get_chunk("news", 39).body == data[39]
    j = c.get_map("news").json()
    assert j["first"] == 37 and decode_bitmap(37, 64, j["bitmap"]) == {37, 38, 39, 100}
    # HEAD of a chunk
    r = http_request(c.host, c.port, "HEAD", "/v1/live/news/chunks/39")
    assert r.status == 200 and r.header("Content-Length") == str(len(data[39]))


def test_put_refusals(cache_server):
    c = cache_server(small({"cache": {"max_chunk_bytes": 4096}}))
    assert c.put_chunk("ch", 100, b"a" * 100).status == 201
    before = c.get_map("ch").json()

    def refused(r, status, code):
        assert_error(r, status, code)
        assert c.get_map("ch").json() == before, "a refused PUT changed the map"

    refused(c.put_chunk("ch", 101, b"x", token=False), 401, "unauthorized")
    refused(c.put_chunk("ch", 101, b"x", token=publish_token("ch", key_hex="11" * 32)), 401, "bad_token")
    refused(c.put_chunk("ch", 101, b"x", token=publish_token("ch", expiry=int(time.time()) - 5)),
            401, "token_expired")
    refused(c.put_chunk("ch", 101, b"x", token=publish_token("other")), 403, "wrong_channel")
    refused(c.put_chunk("ch", 101, b"x", token=pull_token("ch")), 401, "bad_token")
    refused(c.put_chunk("ch", 101, b"x", token=mint_token(TOK_KIND_RELAY, {"ch": "ch"})), 401, "bad_token")
    refused(c.put_chunk("ch", 101, b"x", token="garbage.token"), 401, "bad_token")
    refused(c.put_chunk("ch", 100, b"b" * 100), 409, "duplicate_chunk")
    refused(c.put_chunk("ch", 36, b"x"), 409, "out_of_window")       # before first (37)
    refused(c.put_chunk("ch", 100 + 65, b"x"), 409, "out_of_window")  # a window ahead
    refused(c.put_chunk("ch", 101, b""), 400, "empty_chunk")
    refused(c.put_chunk("ch", 101, b"x" * 5000), 413, "chunk_too_large")
    refused(c.put_chunk("ch", 101, b"x" * 2000000), 413, "body_too_large")
    for bad in ("-1", "abc", "4294967296", "01", "1.5"):
        r = http_request(c.host, c.port, "PUT", "/v1/live/ch/chunks/%s" % bad, body=b"x",
                         headers={"Authorization": "Bearer " + publish_token("ch")})
        refused(r, 400, "bad_seq")
    r = http_request(c.host, c.port, "PUT", "/v1/live/b%20d/chunks/1", body=b"x",
                     headers={"Authorization": "Bearer " + publish_token("b d")})
    refused(r, 400, "bad_channel")
    assert c.get_chunk("ch", 100).body == b"a" * 100
    samples = parse_metrics(c.metrics())
    assert metric_value(samples, "p2pcdn_cache_chunks_refused_total", reason="duplicate") == 1
    assert metric_value(samples, "p2pcdn_cache_chunks_refused_total", reason="out_of_window") == 2


# ------------------------------------------------------------------- pulls


class Publisher(threading.Thread):
    """Uploads chunks seq0, seq0+1, ... to a cache every `every` seconds."""

    def __init__(self, cache, channel, seq0=1000, count=200, every=0.02, size=6000):
        super().__init__(daemon=True)
        self.cache, self.channel, self.seq0, self.count, self.every = cache, channel, seq0, count, every
        self.size = size
        self.sent = {}
        self.errors = []
        self.stop = threading.Event()
        self.token = publish_token(channel, key_hex=cache.token_key)

    def run(self):
        for i in range(self.count):
            if self.stop.is_set():
                return
            s = self.seq0 + i
            d = os.urandom(self.size) + s.to_bytes(4, "big")
            try:
                r = self.cache.put_chunk(self.channel, s, d, token=self.token, timeout=3)
            except OSError as e:
                self.errors.append(repr(e))
                return
            if r.status != 201:
                self.errors.append(r)
                return
            self.sent[s] = d
            time.sleep(self.every)


def test_pull_byte_identical(cache_server, redis_server):
    a = cache_server(small())
    b = cache_server(small())
    pub = Publisher(a, "live1", count=150, every=0.01)
    pub.start()
    wait_until(lambda: len(pub.sent) >= 20, timeout=10, what="first chunks published")
    # auth and body checks before the real pull
    assert_error(b.pull("live1", [a], token=False), 401, "unauthorized")
    assert_error(b.pull("live1", [a], token=pull_token("other")), 403, "wrong_channel")
    assert_error(b.pull("live1", [a], token=publish_token("live1")), 401, "bad_token")
    assert_error(b.pull("live1", [a], token=pull_token("live1", key_hex="22" * 32)), 401, "bad_token")
    assert_error(b.pull("live1", [{"url": "ftp://x"}]), 400, "bad_request")
    assert_error(b.pull("live1", [b]), 400, "no_sources")  # only itself
    r = b.pull("live1", [a, {"cache_id": "extra", "url": a.url + "/", "load": 1}])
    assert r.status == 202, r
    assert r.json() == {"channel": "live1", "pulling": True, "sources": 1}
    r = b.pull("live1", [a])
    assert r.status == 200 and r.json()["pulling"] is True
    pub.join(30)
    assert not pub.errors, pub.errors
    window = set(range(pub.seq0 + 150 - 64, pub.seq0 + 150))

    def complete():
        return window <= b.held("live1")

    wait_until(complete, timeout=20, what="cache B holding the last window")
    for s in sorted(window):
        r = b.get_chunk("live1", s)
        assert r.status == 200 and r.body == pub.sent[s], "chunk %d differs" % s
    st = b.status()
    [p] = [p for p in st["pulls"] if p["channel"] == "live1"]
    assert p["pulling"] and p["sources"][0]["state"] == "ok"
    assert p["sources"][0]["completion_rate"] > 0.9
    assert st["chunks_in"]["pull"] >= 64
    samples = parse_metrics(b.metrics())
    assert metric_value(samples, "p2pcdn_cache_pulls_active") == 1
    assert metric_value(samples, "p2pcdn_cache_pull_requests_total", result="ok") >= 64
    # Both caches are registered as holders of the channel.
    key = "%schan:{live1}:caches" % a.prefix

    def registered():
        members = redis_server.command("ZRANGE", key, "0", "-1")
        return {a.id, b.id} <= set(members)

    wait_until(registered, timeout=10, what="both caches in %s" % key)


def test_pull_from_two_sources(cache_server):
    """Each source holds half of the window (evens / odds): B needs both,
    and every chunk has exactly one holder, so rarest-first and the quota
    per source are exercised together."""
    a = cache_server(small())
    c = cache_server(small())
    b = cache_server(small())
    sent = {}
    for s in range(200, 264):
        sent[s] = os.urandom(3000)
        assert (a if s % 2 == 0 else c).put_chunk("two", s, sent[s]).status == 201
    # The odd cache also gets the last even chunk so both windows end alike.
    assert c.put_chunk("two", 264, b"end").status == 201
    assert a.put_chunk("two", 264, b"end").status == 201
    sent[264] = b"end"
    assert b.pull("two", [a, c]).status == 202
    want = set(range(201, 265))  # the 64-chunk window ending at 264
    wait_until(lambda: want <= b.held("two"), timeout=20, what="B holding both halves")
    for s in sorted(want):
        assert b.get_chunk("two", s).body == sent[s]
    j = b.api("GET", "/v1/pull/two").json()
    by_id = {x["cache_id"]: x for x in j["sources"]}
    assert by_id[a.id]["completed"] >= 31 and by_id[c.id]["completed"] >= 32, j
    assert all(x["state"] == "ok" and x["completion_rate"] == 1.0 for x in j["sources"]), j


def test_pull_source_dies(cache_server):
    a = cache_server(small())
    b = cache_server(small({"pull": {"dead_after": 2, "timeout_ms": 500}}))
    pub = Publisher(a, "live2", count=400, every=0.02)
    pub.start()
    wait_until(lambda: len(pub.sent) >= 10, timeout=10, what="first chunks")
    assert b.pull("live2", [a]).status == 202
    wait_until(lambda: len(b.held("live2")) >= 30, timeout=20, what="B pulling")
    a.proc.kill()  # A dies mid-stream
    a.proc.wait(10)
    a.expect_rc = None
    pub.stop.set()
    pub.join(10)

    def dead():
        r = b.api("GET", "/v1/pull/live2")
        j = r.json()
        return j["sources"][0]["state"] == "dead" and j

    j = wait_until(dead, timeout=15, what="the source reported dead")
    assert j["pulling"] is False and j["state"] == "sources_dead", j
    assert j["sources"][0]["reason"]
    held = b.held("live2")
    assert len(held) >= 30
    for s in sorted(held)[-10:]:
        r = b.get_chunk("live2", s)
        assert r.status == 200 and r.body == pub.sent[s]
    samples = parse_metrics(b.metrics())
    assert metric_value(samples, "p2pcdn_cache_pull_sources_dead_total") == 1
    assert metric_value(samples, "p2pcdn_cache_pull_sources_dead") == 1
    assert "dead after" in b.stderr()
    # The index-server may name it again: it gets another chance.
    r = b.pull("live2", [a])
    assert r.status == 202, r


def test_pull_stops_when_idle(cache_server):
    a = cache_server(small())
    b = cache_server(small({"pull": {"idle_s": 1}}))
    for s in range(5):
        assert a.put_chunk("quiet", s, b"q" * 100).status == 201
    assert b.pull("quiet", [a]).status == 202
    wait_until(lambda: b.api("GET", "/v1/pull/quiet").json()["state"] == "idle", timeout=10,
               what="the pull to stop for lack of viewers")
    assert b.held("quiet") == set(range(5))


# --------------------------------------------------------------- memory cap


def test_memory_cap_many_channels(cache_server):
    cap = 600 * 1024
    c = cache_server({"cache": {"window_chunks": 64, "memory_max_bytes": cap,
                                "channel_max_bytes": 96 * 1024, "max_channels": 40}})
    chunk = os.urandom(8000)
    full = 0
    for n in range(30):
        ch = "mem%d" % n
        tok = publish_token(ch)
        for s in range(20):
            r = c.put_chunk(ch, s, chunk, token=tok)
            if r.status == 503:
                assert_error(r, 503, "memory_full")
                full += 1
            else:
                assert r.status == 201, r
        st = c.status()
        assert st["memory"]["bytes"] <= cap, st["memory"]
        for chs in st["channels"]:
            assert chs["bytes"] <= 96 * 1024
    assert full > 0, "the cap was never reached"
    st = c.status()
    assert st["channel_count"] == 30
    samples = parse_metrics(c.metrics())
    assert metric_value(samples, "p2pcdn_cache_memory_bytes") <= cap
    assert metric_value(samples, "p2pcdn_cache_memory_limit_bytes") == cap
    assert metric_value(samples, "p2pcdn_cache_channels") == 30
    # max_channels
    for n in range(30, 40):
        c.put_chunk("mem%d" % n, 0, b"x")
    assert_error(c.put_chunk("mem99", 0, b"x"), 503, "too_many_channels")


# ---------------------------------------------------------------- registry


def test_registry(cache_server, redis_server):
    c = cache_server(small(), domain="south")
    assert c.put_chunk("regch", 1, b"x" * 50).status == 201
    hkey = "%scache:{%s}" % (c.prefix, c.id)
    ckey = "%schan:{regch}:caches" % c.prefix
    dkey = "%scaches:{south}" % c.prefix

    def present():
        return redis_server.command("ZSCORE", ckey, c.id) is not None

    wait_until(present, timeout=10, what=ckey)
    h = redis_server.command("HGETALL", hkey)
    h = dict(zip(h[::2], h[1::2]))
    assert h["domain"] == "south" and h["url"] == c.url
    assert int(h["capacity"]) == 125000000 and int(h["channels"]) == 1 and int(h["memory"]) > 0
    assert "load" in h and "viewers" in h
    assert 0 < redis_server.command("TTL", hkey) <= 6
    assert redis_server.command("ZSCORE", dkey, c.id) is not None
    score = float(redis_server.command("ZSCORE", ckey, c.id))
    assert time.time() < score <= time.time() + 7
    assert c.stop() == 0
    assert redis_server.command("EXISTS", hkey) == 0
    assert redis_server.command("ZSCORE", ckey, c.id) is None
    assert redis_server.command("ZSCORE", dkey, c.id) is None


def test_channel_expiry_unregisters(cache_server, redis_server):
    c = cache_server(small({"cache": {"channel_idle_s": 3}}))
    assert c.put_chunk("gone", 1, b"x").status == 201
    ckey = "%schan:{gone}:caches" % c.prefix
    wait_until(lambda: redis_server.command("ZSCORE", ckey, c.id) is not None, timeout=10, what="entry")
    wait_until(lambda: c.get_map("gone").status == 404, timeout=10, what="channel expiry")
    wait_until(lambda: redis_server.command("ZSCORE", ckey, c.id) is None, timeout=10,
               what="entry removed after expiry")


# --------------------------------------------------------------------- VOD


def test_vod_ranges_and_paths(cache_server, tmp_path):
    root = tmp_path / "vod"
    (root / "show" / "s1").mkdir(parents=True)
    blob = os.urandom(300000)
    (root / "show" / "s1" / "ep1.mp4").write_bytes(blob)
    (root / "empty.bin").write_bytes(b"")
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    os.symlink(str(secret), str(root / "escape.txt"))
    os.symlink("../..", str(root / "show" / "up"))
    os.symlink("s1/ep1.mp4", str(root / "show" / "inner.mp4"))
    c = cache_server(vod_root=str(root))

    def get(path, headers=None, method="GET"):
        return http_request(c.host, c.port, method, path, headers=headers)

    r = get("/vod/show/s1/ep1.mp4")
    assert r.status == 200 and r.body == blob
    assert r.header("Accept-Ranges") == "bytes" and r.header("Content-Type") == "video/mp4"
    etag, lm = r.header("ETag"), r.header("Last-Modified")
    r = get("/vod/show/s1/ep1.mp4", method="HEAD")
    assert r.status == 200 and r.body == b"" and r.header("Content-Length") == str(len(blob))
    for spec, lo, hi in (("0-0", 0, 0), ("0-99", 0, 99), ("1000-", 1000, len(blob) - 1),
                         ("-4096", len(blob) - 4096, len(blob) - 1), ("299990-400000", 299990, len(blob) - 1),
                         ("12345-23456", 12345, 23456)):
        r = get("/vod/show/s1/ep1.mp4", {"Range": "bytes=" + spec})
        assert r.status == 206, (spec, r)
        assert r.body == blob[lo:hi + 1], spec
        assert r.header("Content-Range") == "bytes %d-%d/%d" % (lo, hi, len(blob))
    r = get("/vod/show/s1/ep1.mp4", {"Range": "bytes=300000-"})
    assert_error(r, 416, "range_not_satisfiable")
    assert r.header("Content-Range") == "bytes */%d" % len(blob)
    r = get("/vod/show/s1/ep1.mp4", {"Range": "bytes=0-1,5-9"})
    assert r.status == 200 and r.body == blob
    r = get("/vod/show/s1/ep1.mp4", {"Range": "bytes=10-19", "If-Range": etag})
    assert r.status == 206 and r.body == blob[10:20]
    r = get("/vod/show/s1/ep1.mp4", {"Range": "bytes=10-19", "If-Range": '"old"'})
    assert r.status == 200 and r.body == blob
    r = get("/vod/show/s1/ep1.mp4", {"Range": "bytes=10-19", "If-Range": lm})
    assert r.status == 206
    r = get("/vod/empty.bin")
    assert r.status == 200 and r.body == b""
    assert get("/vod/show/inner.mp4").body == blob  # a symlink inside the root
    assert_error(get("/vod/escape.txt"), 403, "path_refused")
    assert_error(get("/vod/show/up/secret.txt"), 403, "path_refused")
    assert_error(get("/vod/show/%2e%2e/%2e%2e/secret.txt"), 400, "bad_path")
    assert_error(get("/vod/.hidden"), 400, "bad_path")
    assert_error(get("/vod/nope.bin"), 404, "not_found")
    assert_error(get("/vod/show"), 404, "not_found")  # a directory
    assert_error(get("/vod/a/b/c/d/e"), 404, "not_found")  # deeper than the routes
    assert b"top secret" not in get("/vod/escape.txt").body
    samples = parse_metrics(c.metrics())
    assert metric_value(samples, "p2pcdn_cache_vod_bytes_served_total") > len(blob)


def test_vod_disabled_and_admin(cache_server):
    c = cache_server()
    assert_error(http_request(c.host, c.port, "GET", "/vod/x"), 404, "vod_disabled")
    assert c.admin("GET", "/readyz").status == 200
    st = c.status()
    assert st["daemon"] == "cache-server" and st["window"] == {"chunks": 256, "chunk_ms": 200}
    assert st["vod"]["enabled"] is False
    r = c.cli("--check-config")
    assert r.returncode == 0, r.stderr
    r = c.cli("--migrate")
    assert r.returncode == 0 and "nothing to migrate" in r.stdout
    c.update_config({"cache": {"token_key": "short"}})
    r = c.cli("--check-config")
    assert r.returncode == 1 and "token_key" in r.stderr
    c.update_config({"cache": {"token_key": CACHE_TOKEN_KEY}, "pull": {"interval_ms": 150}})
    c.signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in c.stderr(), timeout=10, what="reload")
    assert TOK_KIND_PULL == 3
