# SPDX-License-Identifier: MIT
"""Fixtures for the login-server: a `login_server` factory (real Redis, real
PostgreSQL, migrated fresh database) and small test peers: an HTTP server
that answers the connect-back probe (GET /p2p/probe?nonce=...) and, when
asked, the lan check with the connect id sealed to the initiator's key.

Binary: $P2PCDN_LOGIN_BIN, else build-asan/bin/login-server, else
build/bin/login-server."""

import base64
import ctypes
import ctypes.util
import http.server
import itertools
import json
import os
import socketserver
import threading
import urllib.parse

import pytest

from conftest import ADMIN_TOKEN, Daemon, _merge, daemon_binary
from p2ptest import free_port

RELAY_KEY = "a1" * 32


class LoginServer(Daemon):
    NAME = "login-server"

    def login(self, user, password="correct horse battery", listen_port=0, private_addr=None,
              public_key=None, xff=None, expect=200):
        body = {"user": user, "password": password, "listen_port": listen_port}
        if private_addr is not None:
            body["private_addr"] = private_addr
        if public_key is not None:
            body["public_key"] = public_key
        h = {"X-Forwarded-For": xff} if xff else None
        r = self.api("POST", "/v1/login", body, headers=h, timeout=15)
        if expect is not None:
            assert r.status == expect, "login %s: %r" % (user, r)
        return r

    def session(self, user, **kw):
        """Logs in; returns the JSON answer (token, nat, ...)."""
        return self.login(user, **kw).json()

    def hb(self, token, wait=None, timeout=15):
        path = "/v1/heartbeat" + ("?wait=%d" % wait if wait is not None else "")
        return self.api("POST", path, b"", token=token, timeout=timeout)

    def connect(self, token, target):
        return self.api("POST", "/v1/connect", {"target": target}, token=token)

    def result(self, token, cid, outcome):
        return self.api("POST", "/v1/connect/%s/result" % cid, {"outcome": outcome}, token=token)

    def add_account(self, user, password="correct horse battery"):
        r = self.admin("POST", "/v1/admin/accounts", {"user": user, "password": password}, token=True)
        assert r.status == 201, "create account %s: %r" % (user, r)
        return r.json()


def login_binary():
    return daemon_binary("login-server", "P2PCDN_LOGIN_BIN")


_counter = itertools.count(1)


@pytest.fixture
def login_server(redis_server, postgres_server, pgdb, tmp_path):
    """Factory: login_server(cfg=None, extra="", start=True, migrate=True,
    redis=None, db=None, expect_rc=0) -> LoginServer.

    Test defaults: cheap argon2id (tests make many accounts), heartbeat 2 s
    (session TTL 6 s), probe timeout 800 ms, trusted_proxies 127.0.0.1/32 so
    tests can play peers behind other public addresses with
    X-Forwarded-For, a relay token key, accounting flushed every 100 ms and
    sessions reaped every second. All instances of one test share one Redis
    prefix and one database; each is stopped with SIGTERM at the end and
    must exit 0 without sanitizer reports."""
    binary = login_binary()
    made = []
    prefix = "lgt%d:" % next(_counter)

    def make(cfg=None, extra="", start=True, migrate=True, redis=None, db=None, expect_rc=0):
        n = len(made) + 1
        d = str(tmp_path / ("login%d" % n))
        os.makedirs(d)
        rds = redis or redis_server
        base = {
            "server": {
                "listen": "127.0.0.1:%d" % free_port(),
                "admin_listen": "127.0.0.1:%d" % free_port(),
                "threads": 4,
                "trusted_proxies": "127.0.0.1/32",
                "admin_token": ADMIN_TOKEN,
                "drain_timeout_s": 2,
                "log_level": "info",
                "access_log": False,
            },
            "redis": {
                "host": "127.0.0.1",
                "port": rds.port,
                "prefix": prefix,
                "connect_timeout_ms": 200,
                "command_timeout_ms": 1000,
                "max_backoff_ms": 500,
            },
            "postgres": {"conninfo": postgres_server.conninfo(db or pgdb), "pool_size": 4},
            "login": {
                "registration": "open",
                "heartbeat_s": 2,
                "heartbeat_jitter_pct": 10,
                "probe_timeout_ms": 800,
                "argon2_ops": 1,
                "argon2_mem_kib": 256,
                "ip_logins_per_min": 0,
                "user_failures_per_min": 0,
                "acct_flush_ms": 100,
                "reap_s": 1,
                "instance_id": "test%d" % n,
            },
            "relay": {"token_key": RELAY_KEY, "token_ttl_s": 300},
        }
        s = LoginServer(binary, d, _merge(base, cfg), extra)
        s.expect_rc = expect_rc
        s.pg = postgres_server
        s.db = db or pgdb
        s.redis = rds
        s.prefix = prefix
        made.append(s)
        if migrate:
            s.migrate()
        if start:
            s.start()
        return s

    make.prefix = prefix
    try:
        yield make
    finally:
        problems = []
        for s in made:
            problems += s.problems(getattr(s, "expect_rc", 0))
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


# ------------------------------------------------------------------ peers

_sodium = None


def sodium():
    """libsodium through ctypes (no PyNaCl on the test machines)."""
    global _sodium
    if _sodium is None:
        name = ctypes.util.find_library("sodium") or "libsodium.so.23"
        lib = ctypes.CDLL(name)
        assert lib.sodium_init() >= 0
        _sodium = lib
    return _sodium


class KeyPair:
    """An X25519 key pair for crypto_box_seal."""

    def __init__(self):
        lib = sodium()
        self.pk = ctypes.create_string_buffer(32)
        self.sk = ctypes.create_string_buffer(32)
        assert lib.crypto_box_keypair(self.pk, self.sk) == 0

    @property
    def public_b64(self):
        return base64.b64encode(self.pk.raw).decode()

    def seal_open(self, sealed_b64):
        """Opens a sealed box; returns the plaintext bytes or None."""
        lib = sodium()
        c = base64.b64decode(sealed_b64)
        if len(c) < 48:
            return None
        out = ctypes.create_string_buffer(len(c) - 48)
        if lib.crypto_box_seal_open(out, c, ctypes.c_ulonglong(len(c)), self.pk, self.sk) != 0:
            return None
        return out.raw


def seal(pk_b64, data):
    lib = sodium()
    pk = base64.b64decode(pk_b64)
    out = ctypes.create_string_buffer(len(data) + 48)
    assert lib.crypto_box_seal(out, data, ctypes.c_ulonglong(len(data)), pk) == 0
    return base64.b64encode(out.raw).decode()


class PeerServer:
    """A peer's listening side on host:port: answers GET /p2p/probe?nonce=N
    with N (so the login-server judges it outer), and GET /p2p/lan?cid=C
    with the sealed connect id it was pushed for C (the lan check). Also
    records every request for assertions. echo=False answers the probe
    with a wrong body."""

    def __init__(self, host="127.0.0.1", port=0, echo=True):
        self.sealed = {}
        self.hits = []
        self.echo = echo
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                u = urllib.parse.urlparse(self.path)
                q = urllib.parse.parse_qs(u.query)
                outer.hits.append(u.path)
                if u.path == "/p2p/probe":
                    body = (q.get("nonce", [""])[0] if outer.echo else "nope").encode()
                elif u.path == "/p2p/lan":
                    body = outer.sealed.get(q.get("cid", [""])[0], "").encode()
                else:
                    body = b"hello from peer"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.httpd = S((host, port), H)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def peer_server():
    made = []

    def make(**kw):
        p = PeerServer(**kw)
        made.append(p)
        return p

    try:
        yield make
    finally:
        for p in made:
            p.close()


def relay_entry(redis, prefix, rid, url, sessions=0, capacity=100, ttl=30):
    """Registers a relay in Redis as relay-server does (the contract)."""
    with redis.client() as r:
        r.command("HSET", "%srelay:{%s}" % (prefix, rid), "url", url, "sessions", sessions,
                  "capacity", capacity, "bytes_per_s", 0)
        r.command("EXPIRE", "%srelay:{%s}" % (prefix, rid), ttl)
        r.command("ZADD", "%srelays" % prefix, float(sessions) / capacity, rid)


def json_of(resp):
    return json.loads(resp.body.decode())
