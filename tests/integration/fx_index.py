# SPDX-License-Identifier: MIT
"""Fixtures for the index-server: the `index_server` factory, a stand-in
cache (`fake_cache`: a small HTTP server that records POST /v1/pull and
registers itself in Redis per the cache registry contract), PeerID builders
and token checks.

Binary: $P2PCDN_INDEX_BIN, else build-asan/bin/index-server, else
build/bin/index-server."""

import base64
import hashlib
import hmac
import itertools
import json
import os
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import ADMIN_TOKEN, Daemon, _merge, daemon_binary
from p2ptest import free_port, http_request

# The HMAC key the index-servers of a test share with the caches.
INDEX_CACHE_KEY = "a7" * 32

_index_counter = itertools.count(1)


def make_pid(country=1, nettype=1, region=1, city=1, area=1, node=1):
    """A PeerID (14 hex) from its fields (docs/peerid.md)."""
    v = country
    for val, bits in ((nettype, 4), (region, 6), (city, 6), (area, 16), (node, 16)):
        assert 0 <= val < (1 << bits)
        v = v << bits | val
    return "%014x" % v


def proximity(a, b):
    """peerid_proximity of common/peerid.c, in Python."""
    fa, fb = _fields(a), _fields(b)
    n = 0
    for x, y in zip(fa[:5], fb[:5]):
        if x == 0 or y == 0 or x != y:
            break
        n += 1
    return n


def _fields(pid):
    v = int(pid, 16)
    out = []
    for bits in (16, 16, 6, 6, 4, 8):
        out.append(v & ((1 << bits) - 1))
        v >>= bits
    node, area, city, region, nettype, country = out
    return [country, nettype, region, city, area, node]


def decode_token(token, key_hex=INDEX_CACHE_KEY):
    """Checks a common/tok.c token's MAC; returns (kind, expiry, payload dict)."""
    body, mac = token.split(".")
    want = hmac.new(bytes.fromhex(key_hex), body.encode("ascii"), hashlib.sha256).digest()
    got = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
    assert hmac.compare_digest(want, got), "token MAC does not verify with the shared key"
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    assert raw[0] == 1, raw
    expiry = struct.unpack(">Q", raw[2:10])[0]
    return raw[1], expiry, json.loads(raw[10:].decode("utf-8"))


class IndexServer(Daemon):
    """One index-server process."""

    NAME = "index-server"

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def join(self, pid, channel, listen_addr=None, bandwidth=1000, role=None, timeout=10):
        body = {"peer_id": pid, "channel": channel,
                "listen_addr": listen_addr or "198.51.100.%d:%d" % (int(pid[-2:], 16) % 250 + 1,
                                                                   4000 + int(pid[-4:], 16) % 1000),
                "bandwidth_kbps": bandwidth}
        if role:
            body["role"] = role
        return self.api("POST", "/v1/join", body, timeout=timeout)

    def heartbeat(self, pid, channel):
        return self.api("POST", "/v1/heartbeat", {"peer_id": pid, "channel": channel})

    def leave(self, pid, channel):
        return self.api("POST", "/v1/leave", {"peer_id": pid, "channel": channel})

    def members(self, channel, pid=None):
        q = "?peer_id=%s" % pid if pid else ""
        return self.api("GET", "/v1/channels/%s/members%s" % (channel, q))

    def publish(self, pid, channel):
        return self.api("POST", "/v1/publish", {"peer_id": pid, "channel": channel})

    def status(self):
        r = self.admin("GET", "/status")
        assert r.status == 200, r
        return r.json()

    def metrics(self):
        return self.admin("GET", "/metrics").text


@pytest.fixture
def index_server(tmp_path, redis_server):
    """Factory: index_server(cfg=None, domain="north", route_url="",
    prefix=None, redis=None, start=True, expect_rc=0) -> IndexServer.

    All instances of a test share one Redis key prefix (make.prefix) unless
    told otherwise; give a route-server's prefix to share its registry.
    heartbeat_s = 1 so expiry tests take seconds. Stopped with SIGTERM at
    the end; a non-zero exit status or a sanitizer report fails the test."""
    binary = daemon_binary("index-server", "P2PCDN_INDEX_BIN")
    made = []
    default_prefix = "p2pi%d:" % next(_index_counter)

    def make(cfg=None, domain="north", route_url="", prefix=None, redis=None, start=True,
             expect_rc=0, extra=""):
        n = len(made) + 1
        d = str(tmp_path / ("idx%d" % n))
        os.makedirs(d, exist_ok=True)
        rds = redis or redis_server
        base = {
            "server": {
                "listen": "127.0.0.1:%d" % free_port(),
                "admin_listen": "127.0.0.1:%d" % free_port(),
                "threads": 4,
                "admin_token": ADMIN_TOKEN,
                "drain_timeout_s": 2,
                "log_level": "info",
            },
            "redis": {
                "host": "127.0.0.1",
                "port": rds.port,
                "prefix": prefix or default_prefix,
                "connect_timeout_ms": 200,
                "command_timeout_ms": 500,
                "max_backoff_ms": 500,
            },
            "index": {
                "domain": domain,
                "route_url": route_url,
                "route_timeout_ms": 1000,
                "pull_timeout_ms": 1000,
                "cache_key": INDEX_CACHE_KEY,
                "heartbeat_s": 1,
                "missed_heartbeats": 3,
                "negative_ms": 500,
            },
        }
        s = IndexServer(binary, d, _merge(base, cfg), extra)
        s.expect_rc = expect_rc
        s.redis = rds
        s.prefix = (cfg or {}).get("redis", {}).get("prefix") or prefix or default_prefix
        made.append(s)
        if start:
            s.start()
        return s

    make.prefix = default_prefix
    try:
        yield make
    finally:
        problems = []
        for s in made:
            problems += s.problems(getattr(s, "expect_rc", 0))
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


# ------------------------------------------------------------ stand-in cache


class FakeCache:
    """Stands in for a cache-server: answers POST /v1/pull with 202 (or the
    status set in .answer) and records every call; registers itself in
    Redis as the cache registry contract says (cache:{ID}, caches:{DOMAIN})
    and, when it accepts a pull, adds chan:{CH}:caches like a real cache."""

    def __init__(self, redis, prefix, cache_id, domain, load, capacity=1000, ttl=15,
                 register_pulls=True):
        self.redis, self.prefix = redis, prefix
        self.id, self.domain = cache_id, domain
        self.load, self.capacity, self.ttl = load, capacity, ttl
        self.register_pulls = register_pulls
        self.calls = []
        self.answer = 202
        self.delay = 0.0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with fake.lock:
                    fake.calls.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                       "body": body})
                if fake.delay:
                    time.sleep(fake.delay)
                status = fake.answer
                try:
                    j = json.loads(body)
                except ValueError:
                    j = {}
                if status in (200, 202) and fake.register_pulls and j.get("channel"):
                    fake.hold(j["channel"])
                out = json.dumps({"channel": j.get("channel"), "pulling": True,
                                  "sources": len(j.get("sources") or [])}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.register()

    def register(self):
        p = self.prefix
        self.redis.command("HSET", "%scache:{%s}" % (p, self.id), "domain", self.domain,
                           "url", self.url, "load", self.load, "capacity", self.capacity,
                           "viewers", 0, "channels", 0, "memory", 0)
        self.redis.command("EXPIRE", "%scache:{%s}" % (p, self.id), self.ttl)
        self.redis.command("ZADD", "%scaches:{%s}" % (p, self.domain),
                           "%f" % (self.load / self.capacity), self.id)

    def hold(self, channel, ttl=None):
        self.redis.command("ZADD", "%schan:{%s}:caches" % (self.prefix, channel),
                           int(time.time()) + (ttl or self.ttl), self.id)

    def pulls(self):
        with self.lock:
            return [c for c in self.calls if c["path"] == "/v1/pull"]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake_cache(redis_server):
    """Factory: fake_cache(prefix, cache_id, domain, load, capacity=1000) -> FakeCache."""
    made = []

    def make(prefix, cache_id, domain, load, capacity=1000, **kw):
        c = FakeCache(redis_server, prefix, cache_id, domain, load, capacity, **kw)
        made.append(c)
        return c

    try:
        yield make
    finally:
        for c in made:
            c.close()
