# SPDX-License-Identifier: MIT
"""Fixtures for the cache-server: the `cache_server` factory (usable by other
daemons' tests, e.g. the index-server's pull path), token minting exactly as
common/tok.c does, and small helpers to publish chunks and read maps.

Binary: $P2PCDN_CACHE_BIN, else build-asan/bin/cache-server, else
build/bin/cache-server."""

import base64
import hashlib
import hmac
import itertools
import json
import os
import struct
import time

import pytest

from conftest import ADMIN_TOKEN, Daemon, _merge, daemon_binary
from p2ptest import free_port, http_request

# The key every cache of a test shares with the "index-server" (tests).
CACHE_TOKEN_KEY = "5c" * 32

TOK_VERSION = 1
TOK_KIND_RELAY = 1
TOK_KIND_PUBLISH = 2
TOK_KIND_PULL = 3


def _b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def mint_token(kind, payload, key_hex=CACHE_TOKEN_KEY, ttl=3600, expiry=None):
    """A token as common/tok.c's tok_mint writes it:
    base64url(version | kind | expiry (8 bytes BE) | payload) "." base64url(HMAC-SHA256),
    the MAC taken over the text of the first part. payload: bytes, str or a
    dict (compact JSON)."""
    if isinstance(payload, dict):
        payload = json.dumps(payload, separators=(",", ":"))
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    if expiry is None:
        expiry = int(time.time()) + ttl
    body = _b64url(bytes([TOK_VERSION, kind]) + struct.pack(">Q", expiry) + payload)
    mac = hmac.new(bytes.fromhex(key_hex), body.encode("ascii"), hashlib.sha256).digest()
    return body + "." + _b64url(mac)


def publish_token(channel, peer="0123456789abcd", key_hex=CACHE_TOKEN_KEY, ttl=3600, expiry=None):
    return mint_token(TOK_KIND_PUBLISH, {"ch": channel, "peer": peer}, key_hex, ttl, expiry)


def pull_token(channel, key_hex=CACHE_TOKEN_KEY, ttl=60, expiry=None):
    return mint_token(TOK_KIND_PULL, {"ch": channel}, key_hex, ttl, expiry)


def decode_bitmap(first, size, b64):
    """The set of sequence numbers a map's bitmap holds (MSB first)."""
    raw = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
    assert len(raw) == size // 8, (len(raw), size)
    return {first + i for i in range(size) if raw[i // 8] >> (7 - i % 8) & 1}


class CacheServer(Daemon):
    """One cache-server process."""

    NAME = "cache-server"

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    @property
    def id(self):
        return self.cfg["cache"]["id"]

    @property
    def token_key(self):
        return self.cfg["cache"]["token_key"]

    def put_chunk(self, channel, seq, data, token=None, headers=None, timeout=10):
        """PUT /v1/live/CH/chunks/SEQ with a publish token (minted with
        this cache's key unless given; token=False: none)."""
        h = dict(headers or {})
        if token is None:
            token = publish_token(channel, key_hex=self.token_key)
        if token:
            h["Authorization"] = "Bearer %s" % token
        return http_request(self.host, self.port, "PUT", "/v1/live/%s/chunks/%d" % (channel, seq),
                            body=data, headers=h, timeout=timeout)

    def get_chunk(self, channel, seq, headers=None, timeout=10):
        return http_request(self.host, self.port, "GET", "/v1/live/%s/chunks/%d" % (channel, seq),
                            headers=headers, timeout=timeout)

    def get_map(self, channel, timeout=10):
        return http_request(self.host, self.port, "GET", "/v1/live/%s/map" % channel, timeout=timeout)

    def held(self, channel):
        """Sequence numbers held, from GET map (empty set when unknown)."""
        r = self.get_map(channel)
        if r.status != 200:
            return set()
        j = r.json()
        return decode_bitmap(j["first"], j["size"], j["bitmap"])

    def pull(self, channel, sources, token=None, timeout=10):
        """POST /v1/pull. sources: list of CacheServer or dicts."""
        src = [s if isinstance(s, dict) else {"cache_id": s.id, "url": s.url} for s in sources]
        if token is None:
            token = pull_token(channel, key_hex=self.token_key)
        h = {"Authorization": "Bearer %s" % token} if token else {}
        return http_request(self.host, self.port, "POST", "/v1/pull",
                            body={"channel": channel, "sources": src}, headers=h, timeout=timeout)

    def status(self):
        r = self.admin("GET", "/status")
        assert r.status == 200, r
        return r.json()

    def metrics(self):
        return self.admin("GET", "/metrics").text


_cache_counter = itertools.count(1)


@pytest.fixture
def cache_binary():
    return daemon_binary("cache-server", "P2PCDN_CACHE_BIN")


@pytest.fixture
def cache_server(tmp_path, redis_server):
    """Factory: cache_server(cfg=None, domain="default", redis=None,
    start=True, token_key=CACHE_TOKEN_KEY, vod_root=None, extra="",
    expect_rc=0) -> CacheServer.

    Each instance gets free ports, id "cache-N", its own Redis key prefix
    shared by all caches of the test (make.prefix), the token key given (the
    index-server's [index] cache_key must be the same), a 200 ms pull
    interval and short timeouts. Stopped with SIGTERM at the end; a non-zero
    exit status or a sanitizer report fails the test."""
    binary = daemon_binary("cache-server", "P2PCDN_CACHE_BIN")
    made = []
    prefix = "p2pc%d:" % next(_cache_counter)

    def make(cfg=None, domain="default", redis=None, start=True, token_key=CACHE_TOKEN_KEY,
             vod_root=None, extra="", expect_rc=0):
        n = len(made) + 1
        d = str(tmp_path / ("cache%d" % n))
        os.makedirs(d, exist_ok=True)
        rds = redis or redis_server
        port = free_port()
        base = {
            "server": {
                "listen": "127.0.0.1:%d" % port,
                "admin_listen": "127.0.0.1:%d" % free_port(),
                "threads": 2,
                "admin_token": ADMIN_TOKEN,
                "drain_timeout_s": 2,
                "log_level": "info",
            },
            "redis": {
                "host": "127.0.0.1",
                "port": rds.port,
                "prefix": prefix,
                "connect_timeout_ms": 200,
                "command_timeout_ms": 500,
                "max_backoff_ms": 1000,
            },
            "cache": {
                "id": "cache-%d-%d" % (os.getpid() % 10000, n),
                "domain": domain,
                "token_key": token_key,
                "registry_ttl_s": 6,
            },
            "pull": {
                "interval_ms": 100,
                "timeout_ms": 1000,
                "dead_after": 3,
            },
            "vod": {"root": vod_root or ""},
        }
        c = CacheServer(binary, d, _merge(base, cfg), extra)
        c.expect_rc = expect_rc
        c.redis = rds
        c.prefix = prefix
        made.append(c)
        if start:
            c.start()
        return c

    make.prefix = prefix
    try:
        yield make
    finally:
        problems = []
        for c in made:
            problems += c.problems(getattr(c, "expect_rc", 0))
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)
