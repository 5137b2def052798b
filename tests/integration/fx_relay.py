# SPDX-License-Identifier: MIT
"""Fixtures for the relay-server: a factory starting real relay-server
processes against a real redis-server, a relay-token minter compatible with
common/tok.c (the login-server's side of the contract), and small mailbox
and tunnel clients.

Binary: $P2PCDN_RELAY_BIN, else build-asan/bin/relay-server, else
build/bin/relay-server.
"""

import base64
import hashlib
import hmac
import itertools
import json
import os
import secrets
import socket
import struct
import time

import pytest

from conftest import ADMIN_TOKEN, Daemon, _merge, daemon_binary
from p2ptest import free_port, http_request

RELAY_KEY_HEX = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
TOK_KIND_RELAY, TOK_KIND_PUBLISH = 1, 2


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def mint_token(payload, key_hex=RELAY_KEY_HEX, kind=TOK_KIND_RELAY, expiry=None, ttl=300):
    """A token as common/tok.c mints it: base64url(version|kind|expiry BE64|payload)
    "." base64url(HMAC-SHA256(key, first part))."""
    if expiry is None:
        expiry = int(time.time()) + ttl
    if not isinstance(payload, (bytes, str)):
        payload = json.dumps(payload, separators=(",", ":"))
    if isinstance(payload, str):
        payload = payload.encode()
    body = b64url(bytes([1, kind]) + struct.pack(">Q", expiry) + payload)
    mac = hmac.new(bytes.fromhex(key_hex), body.encode(), hashlib.sha256).digest()
    return body + "." + b64url(mac)


def new_cid():
    return secrets.token_hex(16)


def pair_tokens(cid=None, user_a="alice", user_b="bob", **kw):
    """Tokens for both sides of one connect id, as the login-server hands them out."""
    cid = cid or new_cid()
    ta = mint_token({"cid": cid, "side": "a", "user": user_a, "peer": user_b}, **kw)
    tb = mint_token({"cid": cid, "side": "b", "user": user_b, "peer": user_a}, **kw)
    return cid, ta, tb


class Relay(Daemon):
    NAME = "relay-server"

    def status(self):
        r = self.admin("GET", "/status")
        assert r.status == 200, r
        return r.json()

    def metrics(self):
        r = self.admin("GET", "/metrics")
        assert r.status == 200, r
        return r.text

    def send(self, cid, token, seq, data, timeout=10):
        return http_request(self.host, self.port, "POST", "/v1/relay/%s/messages?seq=%d" % (cid, seq),
                            body=data, headers={"Authorization": "Bearer " + token,
                                                "Content-Type": "application/octet-stream"},
                            timeout=timeout)

    def fetch(self, cid, token, ack=0, wait=0, timeout=40):
        return http_request(self.host, self.port, "GET",
                            "/v1/relay/%s/messages?ack=%d&wait=%d" % (cid, ack, wait),
                            headers={"Authorization": "Bearer " + token}, timeout=timeout)

    def close_session(self, cid, token):
        return http_request(self.host, self.port, "DELETE", "/v1/relay/%s" % cid,
                            headers={"Authorization": "Bearer " + token})

    def tunnel(self, cid, token, timeout=10, extra=b""):
        """Opens the tunnel of one side: returns (status, socket or None,
        head text). The socket is in blocking mode with `timeout`."""
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        req = ("GET /v1/relay/%s/tunnel HTTP/1.1\r\nHost: relay\r\nConnection: Upgrade\r\n"
               "Upgrade: p2pcdn-relay\r\nAuthorization: Bearer %s\r\n\r\n" % (cid, token)).encode()
        s.sendall(req + extra)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(1)
            if not chunk:
                break
            head += chunk
        text = head.decode("latin-1")
        try:
            status = int(text.split(" ", 2)[1])
        except (IndexError, ValueError):
            s.close()
            raise AssertionError("bad tunnel answer: %r" % text)
        if status != 101:
            length = 0
            for line in text.split("\r\n"):
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            body = b""
            while len(body) < length:
                chunk = s.recv(length - len(body))
                if not chunk:
                    break
                body += chunk
            s.close()
            return status, None, text + body.decode("utf-8", "replace")
        return status, s, text

    def pid_rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


def relay_binary():
    return daemon_binary("relay-server", "P2PCDN_RELAY_BIN")


@pytest.fixture
def relay(redis_server, tmp_path):
    """Factory: relay(cfg=None, redis=None, start=True, expect_rc=0) -> Relay.

    Defaults: API and admin on free loopback ports, short timeouts so
    expiry tests stay fast, the test relay key. Every instance is stopped
    with SIGTERM at the end; another exit status or a sanitizer report
    fails the test."""
    binary = relay_binary()
    made = []
    counter = itertools.count(1)

    def make(cfg=None, redis=None, start=True, expect_rc=0):
        n = next(counter)
        d = str(tmp_path / ("relay%d" % n))
        os.makedirs(d)
        port = free_port()
        rd = redis or redis_server
        base = {
            "server": {
                "listen": "127.0.0.1:%d" % port,
                "admin_listen": "127.0.0.1:%d" % free_port(),
                "threads": 2,
                "admin_token": ADMIN_TOKEN,
                "drain_timeout_s": 2,
                "log_level": "info",
                "request_timeout_s": 5,
            },
            "redis": {"host": "127.0.0.1", "port": rd.port, "prefix": "t%d:" % port,
                      "max_backoff_ms": 200},
            "relay": {
                "id": "relay-%d" % n,
                "public_url": "http://127.0.0.1:%d" % port,
                "token_key": RELAY_KEY_HEX,
                "max_per_source": 0,
                "max_per_account": 0,
                "registry_ttl_s": 3,
            },
        }
        r = Relay(binary, d, _merge(base, cfg))
        r.expect_rc = expect_rc
        r.redis = rd
        r.prefix = base["redis"]["prefix"] if not (cfg or {}).get("redis", {}).get("prefix") \
            else cfg["redis"]["prefix"]
        made.append(r)
        if start:
            r.start()
        return r

    try:
        yield make
    finally:
        problems = []
        for r in made:
            problems += r.problems(getattr(r, "expect_rc", 0))
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)
