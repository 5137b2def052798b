# SPDX-License-Identifier: MIT
"""login-server against docs/login-server.md: accounts, login with the
connect-back probe, heartbeats and long-polls, expiry, logout, every connect
scenario of seed 000 §4 (direct, reverse, lan with the sealed connect id,
relay with tokens), lan failure falling back to the relay, accounting in
PostgreSQL (also relay bytes from the acct:{relay} stream), rate limits,
hostile input and a Redis restart.

Peers are this test process: "outer" peers run a PeerServer on 127.0.0.1
that echoes the probe nonce; "inner" peers listen nowhere. Peers behind
other public addresses say so with X-Forwarded-For (the login-server
trusts 127.0.0.1): peers with the same forwarded address play one LAN
behind one NAT."""

import base64
import json
import signal
import socket
import threading
import time

from fx_login import KeyPair, relay_entry, seal
from p2ptest import assert_error, metric_value, parse_metrics, wait_until

PW = "correct horse battery"


def register(ls, user, password=PW, expect=201):
    r = ls.api("POST", "/v1/register", {"user": user, "password": password}, timeout=15)
    assert r.status == expect, "register %s: %r" % (user, r)
    return r


def metrics(ls):
    r = ls.admin("GET", "/metrics")
    assert r.status == 200, r
    return parse_metrics(r.text)


def psql(ls, sql):
    return ls.pg.psql(ls.db, sql)


def tok_payload(token):
    body = token.split(".")[0]
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    assert raw[0] == 1 and raw[1] == 1, "relay token version/kind %r" % raw[:2]
    return json.loads(raw[10:].decode())


# ------------------------------------------------------------ accounts


def test_register_login_and_no_enumeration(login_server):
    ls = login_server()
    register(ls, "alice")
    assert_error(register(ls, "alice", expect=409), 409, "user_exists")
    assert_error(register(ls, "bob", password="short", expect=400), 400, "bad_password")
    s = ls.session("alice")
    assert s["user"] == "alice" and s["nat"] == "inner" and s["probe"] == "skipped"
    assert len(s["session_id"]) == 32
    user, secret = s["token"].rsplit(".", 1)
    assert user == "alice" and len(base64.urlsafe_b64decode(secret + "=")) == 32
    assert s["public_ip"] == "127.0.0.1"
    assert 1 <= s["heartbeat_s"] <= 2 and 1800 <= s["heartbeat_ms"] <= 2000
    assert s["session_ttl_s"] == 6
    # Redis keeps only a hash of the token.
    with ls.redis.client() as r:
        h = r.command("HGETALL", "%ssess:{alice}" % ls.prefix)
        assert secret not in " ".join(h) and s["token"] not in " ".join(h)
    # Wrong password and unknown user: same status, same code, same message.
    a = ls.login("alice", password="wrong password", expect=401)
    b = ls.login("nobody", password="wrong password", expect=401)
    assert_error(a, 401, "invalid_credentials")
    assert a.json() == b.json()


def test_registration_admin_only_and_disable(login_server):
    ls = login_server({"login": {"registration": "admin"}})
    assert_error(register(ls, "carol", expect=403), 403, "registration_closed")
    r = ls.admin("POST", "/v1/admin/accounts", {"user": "carol", "password": PW})
    assert r.status == 401, r
    ls.add_account("carol")
    s = ls.session("carol")
    r = ls.admin("POST", "/v1/admin/accounts/carol/disable", b"", token=True)
    assert r.status == 200 and r.json()["disabled"] is True, r
    # The live session ends at once; a new login is refused.
    assert_error(ls.hb(s["token"]), 401, "invalid_session")
    assert_error(ls.login("carol", expect=403), 403, "account_disabled")
    # A disabled account with a wrong password looks like any failure.
    assert_error(ls.login("carol", password="nope nope", expect=401), 401, "invalid_credentials")
    r = ls.admin("POST", "/v1/admin/accounts/carol/enable", b"", token=True)
    assert r.status == 200 and r.json()["disabled"] is False, r
    ls.session("carol")
    r = ls.admin("GET", "/v1/admin/accounts/carol", token=True)
    assert r.status == 200 and r.json()["user"] == "carol" and "pwhash" not in r.text, r
    assert_error(ls.admin("GET", "/v1/admin/accounts/nosuch", token=True), 404, "unknown_user")
    hashes = psql(ls, "SELECT pwhash FROM accounts WHERE name = 'carol'")
    assert hashes[0].startswith("$argon2id$"), hashes


# ------------------------------------------------------------ NAT judgment


def test_probe_judges_outer_and_inner(login_server, peer_server):
    ls = login_server()
    for u in ("outer1", "inner1", "liar1"):
        register(ls, u)
    p = peer_server()
    s = ls.session("outer1", listen_port=p.port)
    assert s["nat"] == "outer" and s["probe"] == "echo", s
    assert "/p2p/probe" in p.hits
    # Nobody listening: refused -> inner.
    dead = peer_server()
    port = dead.port
    dead.close()
    s = ls.session("inner1", listen_port=port)
    assert s["nat"] == "inner" and s["probe"] == "refused", s
    # Somebody answers but does not echo the nonce: inner.
    liar = peer_server(echo=False)
    s = ls.session("liar1", listen_port=liar.port)
    assert s["nat"] == "inner" and s["probe"] == "mismatch", s
    m = metrics(ls)
    assert metric_value(m, "p2pcdn_login_probes_total", outcome="echo") == 1
    assert metric_value(m, "p2pcdn_login_probes_total", outcome="refused") == 1
    assert metric_value(m, "p2pcdn_login_probes_total", outcome="mismatch") == 1


def test_probe_targets_observed_address_only(login_server, peer_server):
    """The probe goes to the observed source (here the forwarded address,
    a documentation address nobody answers), never to private_addr."""
    ls = login_server({"login": {"probe_timeout_ms": 300}})
    register(ls, "sneaky")
    p = peer_server()
    s = ls.session("sneaky", listen_port=p.port, private_addr="127.0.0.1:%d" % p.port,
                   xff="203.0.113.9")
    assert s["nat"] == "inner" and s["public_ip"] == "203.0.113.9", s
    assert s["probe"] != "echo", s
    assert p.hits == []


def test_many_logins_probe_at_once(login_server):
    """Probes hold no thread: 40 logins on 2 HTTP threads, each probe
    connecting to a listener that accepts and never answers, so each waits
    its full timeout; together they finish in a few timeouts, not 40."""
    ls = login_server({"login": {"probe_timeout_ms": 1500}, "server": {"threads": 2}})
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(256)  # the kernel completes handshakes; nobody reads
    try:
        users = ["many%02d" % i for i in range(40)]
        for u in users:
            ls.add_account(u)
        out = {}

        def one(u):
            out[u] = ls.login(u, listen_port=hole.getsockname()[1], expect=None, )

        t0 = time.monotonic()
        ths = [threading.Thread(target=one, args=(u,)) for u in users]
        for t in ths:
            t.start()
        for t in ths:
            t.join(60)
        elapsed = time.monotonic() - t0
    finally:
        hole.close()
    bad = [out.get(u) for u in users if out.get(u) is None or out[u].status != 200]
    assert not bad, bad[:3]
    assert all(out[u].json()["probe"] == "timeout" for u in users), [out[u].json() for u in users][:3]
    # Serially 40 x 1.5 s = 60 s.
    assert elapsed < 20, elapsed
    m = metrics(ls)
    assert metric_value(m, "p2pcdn_login_probes_total", outcome="timeout") == 40
    assert metric_value(m, "p2pcdn_login_probes_in_flight") == 0


def test_sigterm_answers_long_polls(login_server):
    ls = login_server({"login": {"heartbeat_s": 10}})
    register(ls, "term1")
    s = ls.session("term1")
    got = {}
    t = threading.Thread(target=lambda: got.update(r=ls.hb(s["token"], wait=15, timeout=30)))
    t.start()
    wait_until(lambda: metric_value(metrics(ls), "p2pcdn_login_long_polls") == 1, timeout=5,
               what="parked")
    t0 = time.monotonic()
    ls.signal(signal.SIGTERM)
    t.join(10)
    assert got["r"].status == 200 and got["r"].json()["requests"] == [], got
    assert time.monotonic() - t0 < 2
    assert ls.wait_exit(10) == 0


# ------------------------------------------------------------ presence


def test_heartbeat_expiry_logout_replaced(login_server):
    ls = login_server()
    register(ls, "dave")
    s = ls.session("dave")
    r = ls.hb(s["token"])
    assert r.status == 200, r
    j = r.json()
    assert j["ok"] is True and j["requests"] == [] and 1 <= j["heartbeat_s"] <= 2
    # Newest login wins; the old token is told so (no kick loop).
    s2 = ls.session("dave")
    assert_error(ls.hb(s["token"]), 401, "session_replaced")
    assert ls.hb(s2["token"]).status == 200
    # Logout ends it; the token is dead afterwards (replay).
    r = ls.api("POST", "/v1/logout", b"", token=s2["token"])
    assert r.status == 200 and r.json() == {"ok": True}, r
    assert_error(ls.hb(s2["token"]), 401, "invalid_session")
    assert_error(ls.api("POST", "/v1/logout", b"", token=s2["token"]), 401, "invalid_session")
    # Missing heartbeats end a session by themselves (TTL = 3 x 2 s).
    s3 = ls.session("dave")
    with ls.redis.client() as rc:
        ttl = rc.command("PTTL", "%ssess:{dave}" % ls.prefix)
    assert 4000 < ttl <= 6000, ttl
    time.sleep(6.5)
    assert_error(ls.hb(s3["token"]), 401, "invalid_session")
    # Accounting: logout, replaced and expired sessions, closed.
    def rows():
        out = psql(ls, "SELECT sid, end_reason FROM login_sessions WHERE account = 'dave' "
                       "ORDER BY login_at")
        return out if len(out) == 3 and all(r.split("|")[1] for r in out) else None
    got = wait_until(rows, timeout=10, what="three closed sessions of dave")
    assert [r.split("|")[1] for r in got] == ["replaced", "logout", "expired"], got
    assert got[0].split("|")[0] == s["session_id"]


def test_forged_and_malformed_tokens(login_server):
    ls = login_server()
    register(ls, "erin")
    s = ls.session("erin")
    user, secret = s["token"].rsplit(".", 1)
    forged = user + "." + base64.urlsafe_b64encode(b"\x00" * 32).decode().rstrip("=")
    other = "mallory." + secret
    for bad in (forged, other, "erin", "erin.", "." + secret, s["token"] + "x", "x" * 5000,
                "ERIN." + secret, "erin{x}." + secret):
        assert_error(ls.hb(bad), 401, "invalid_session")
    assert_error(ls.api("POST", "/v1/heartbeat", b""), 401, "invalid_session")
    r = ls.api("POST", "/v1/heartbeat", b"", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert_error(r, 401, "invalid_session")
    assert_error(ls.hb(s["token"], wait=-1), 400, "bad_request")
    assert ls.hb(s["token"]).status == 200


# ------------------------------------------------------------ scenarios


def inner(ls, user, lan_ip, priv, kp=None):
    """An inner peer behind the NAT whose outside address is lan_ip."""
    kp = kp or KeyPair()
    s = ls.session(user, listen_port=0, private_addr=priv, public_key=kp.public_b64, xff=lan_ip)
    assert s["nat"] == "inner", s
    s["kp"] = kp
    return s


def outer(ls, user, peer_server):
    kp = KeyPair()
    p = peer_server()
    s = ls.session(user, listen_port=p.port, public_key=kp.public_b64)
    assert s["nat"] == "outer", s
    s["kp"] = kp
    s["port"] = p.port
    return s


def test_direct_and_reverse(login_server, peer_server):
    ls = login_server()
    for u in ("out1", "out2", "in1"):
        register(ls, u)
    o1, o2 = outer(ls, "out1", peer_server), outer(ls, "out2", peer_server)
    i1 = inner(ls, "in1", "203.0.113.5", "10.0.0.5:4000")
    # outer <-> outer: direct, with the target's address.
    r = ls.connect(o1["token"], "out2")
    assert r.status == 200, r
    j = r.json()
    assert j["mode"] == "direct" and j["addr"] == "127.0.0.1:%d" % o2["port"], j
    assert j["public_key"] == o2["kp"].public_b64 and len(j["cid"]) == 32
    # inner -> outer: direct (the inner side connects out).
    j = ls.connect(i1["token"], "out1").json()
    assert j["mode"] == "direct" and j["addr"] == "127.0.0.1:%d" % o1["port"], j
    # outer -> inner: reverse; the inner target gets the request in its
    # next heartbeat and connects out to the initiator.
    j = ls.connect(o1["token"], "in1").json()
    assert j["mode"] == "reverse", j
    hb = ls.hb(i1["token"]).json()
    assert len(hb["requests"]) == 1, hb
    req = hb["requests"][0]
    assert req["type"] == "reverse" and req["cid"] == j["cid"] and req["from"] == "out1"
    assert req["addr"] == "127.0.0.1:%d" % o1["port"]
    assert req["public_key"] == o1["kp"].public_b64
    assert ls.hb(i1["token"]).json()["requests"] == []
    r = ls.result(i1["token"], j["cid"], "success")
    assert r.status == 200 and r.json()["mode"] == "reverse", r
    assert_error(ls.connect(o1["token"], "nosuchuser"), 404, "target_offline")
    assert_error(ls.connect(o1["token"], "out1"), 400, "bad_target")
    # Results only from the two sides.
    assert_error(ls.result(o2["token"], j["cid"], "success"), 404, "unknown_connect")
    assert_error(ls.result(o1["token"], "0" * 32, "success"), 404, "unknown_connect")
    assert_error(ls.result(o1["token"], "zz", "success"), 404, "unknown_connect")


def test_long_poll_delivers_at_once(login_server, peer_server):
    ls = login_server({"login": {"wait_max_s": 20}})
    for u in ("lp-o", "lp-i"):
        register(ls, u)
    o = outer(ls, "lp-o", peer_server)
    i = inner(ls, "lp-i", "203.0.113.6", "10.0.0.6:4000")
    got = {}

    def poll():
        got["r"] = ls.hb(i["token"], wait=15, timeout=30)

    t = threading.Thread(target=poll)
    t.start()
    wait_until(lambda: metric_value(metrics(ls), "p2pcdn_login_long_polls") == 1, timeout=5,
               what="the long-poll parked")
    t0 = time.monotonic()
    j = ls.connect(o["token"], "lp-i").json()
    t.join(20)
    assert got["r"].status == 200, got
    assert time.monotonic() - t0 < 3
    reqs = got["r"].json()["requests"]
    assert [x["cid"] for x in reqs] == [j["cid"]], reqs
    # An empty long-poll answers after its wait, with nothing.
    t0 = time.monotonic()
    r = ls.hb(i["token"], wait=1, timeout=10)
    assert r.status == 200 and r.json()["requests"] == []
    assert 0.9 < time.monotonic() - t0 < 5


def test_long_poll_across_instances(login_server, peer_server):
    """The inner peer long-polls instance A; the connect is made on B; the
    Redis channel wakes A."""
    a = login_server()
    b = login_server(migrate=False)
    for u in ("x-o", "x-i"):
        register(a, u)
    o = outer(b, "x-o", peer_server)
    i = inner(a, "x-i", "203.0.113.7", "10.0.0.7:4000")
    got = {}
    t = threading.Thread(target=lambda: got.update(r=a.hb(i["token"], wait=15, timeout=30)))
    t.start()
    wait_until(lambda: metric_value(metrics(a), "p2pcdn_login_long_polls") == 1, timeout=5,
               what="the long-poll parked on A")
    t0 = time.monotonic()
    j = b.connect(o["token"], "x-i").json()
    t.join(20)
    assert time.monotonic() - t0 < 3
    assert [x["cid"] for x in got["r"].json()["requests"]] == [j["cid"]]


def test_lan_verification_success(login_server):
    ls = login_server()
    for u in ("lan-a", "lan-b"):
        register(ls, u)
    a = inner(ls, "lan-a", "198.51.100.20", "192.168.1.10:5000")
    b = inner(ls, "lan-b", "198.51.100.20", "192.168.1.11:5001")
    j = ls.connect(a["token"], "lan-b").json()
    assert j["mode"] == "lan", j
    assert j["private_addr"] == "192.168.1.11:5001" and j["public_key"] == b["kp"].public_b64
    push = ls.hb(b["token"]).json()["requests"]
    assert len(push) == 1 and push[0]["type"] == "lan", push
    p = push[0]
    assert p["cid"] == j["cid"] and p["private_addr"] == "192.168.1.10:5000"
    assert p["public_key"] == a["kp"].public_b64
    # The target answers the initiator's LAN connection with the connect
    # id sealed to the initiator's key; only the initiator opens it.
    assert a["kp"].seal_open(p["sealed_cid"]) == j["cid"].encode()
    assert b["kp"].seal_open(p["sealed_cid"]) is None
    mine = seal(p["public_key"], p["cid"].encode())
    assert a["kp"].seal_open(mine) == j["cid"].encode()
    r = ls.result(a["token"], j["cid"], "success")
    assert r.status == 200 and r.json()["mode"] == "lan"


def test_lan_failure_falls_back_to_relay(login_server, redis_server):
    ls = login_server()
    relay_entry(redis_server, ls.prefix, "r-busy", "http://127.0.0.1:1", sessions=90, capacity=100)
    relay_entry(redis_server, ls.prefix, "r-free", "http://127.0.0.1:2", sessions=10, capacity=100)
    for u in ("fb-a", "fb-b"):
        register(ls, u)
    a = inner(ls, "fb-a", "198.51.100.30", "10.1.1.1:5000")
    b = inner(ls, "fb-b", "198.51.100.30", "10.1.1.2:5000")
    j = ls.connect(a["token"], "fb-b").json()
    assert j["mode"] == "lan"
    ls.hb(b["token"])
    # The initiator found somebody else (or nobody) at the private address.
    r = ls.result(a["token"], j["cid"], "failure")
    assert r.status == 200, r
    f = r.json()
    assert f["mode"] == "relay" and f["fallback"] is True and f["cid"] == j["cid"], f
    assert f["relay"] == {"id": "r-free", "url": "http://127.0.0.1:2"}
    assert tok_payload(f["token"]) == {"cid": j["cid"], "side": "a", "user": "fb-a", "peer": "fb-b"}
    push = ls.hb(b["token"]).json()["requests"]
    assert len(push) == 1 and push[0]["type"] == "relay" and push[0]["cid"] == j["cid"], push
    assert tok_payload(push[0]["token"]) == {"cid": j["cid"], "side": "b", "user": "fb-b",
                                             "peer": "fb-a"}
    # A second failure report is just recorded.
    r = ls.result(a["token"], j["cid"], "failure")
    assert r.status == 200 and r.json()["mode"] == "relay"
    m = metrics(ls)
    assert metric_value(m, "p2pcdn_login_relay_fallbacks_total") == 1
    assert metric_value(m, "p2pcdn_login_relay_dependency") == 1.0
    row = wait_until(lambda: [x for x in psql(
        ls, "SELECT first_mode, mode, lan_failed, outcome FROM connections WHERE cid = '%s'" % j["cid"])
        if x.endswith("failure")], timeout=5, what="the connection row")
    assert row == ["lan|relay|t|failure"], row


def test_relay_scenario_tokens_and_accounting(login_server, redis_server):
    ls = login_server()
    with redis_server.client() as r:
        # A dead relay (hash expired) is skipped and removed from the set.
        r.command("ZADD", "%srelays" % ls.prefix, 0, "r-dead")
    relay_entry(redis_server, ls.prefix, "r-full", "http://127.0.0.1:3", sessions=5, capacity=5)
    relay_entry(redis_server, ls.prefix, "r-ok", "http://127.0.0.1:4", sessions=1, capacity=5)
    for u in ("rl-a", "rl-b", "rl-c"):
        register(ls, u)
    a = inner(ls, "rl-a", "198.51.100.40", "10.2.0.1:5000")
    b = inner(ls, "rl-b", "203.0.113.40", "10.2.0.1:5000")
    j = ls.connect(a["token"], "rl-b").json()
    assert j["mode"] == "relay" and j["relay"]["id"] == "r-ok", j
    assert tok_payload(j["token"]) == {"cid": j["cid"], "side": "a", "user": "rl-a", "peer": "rl-b"}
    push = ls.hb(b["token"]).json()["requests"]
    assert push[0]["type"] == "relay" and push[0]["relay"]["url"] == "http://127.0.0.1:4"
    assert tok_payload(push[0]["token"])["side"] == "b"
    with redis_server.client() as r:
        assert r.command("ZSCORE", "%srelays" % ls.prefix, "r-dead") is None
    # No key pair reported: never lan, even behind one address.
    c = ls.session("rl-c", private_addr="10.2.0.9:1", xff="198.51.100.40")
    assert ls.connect(c["token"], "rl-a").json()["mode"] == "relay"
    # The relay-server's accounting stream is merged into the row.
    key = "%sacct:{relay}" % ls.prefix
    with redis_server.client() as r:
        for ab, ba in ((1000, 20), (5, 7)):
            r.command("XADD", key, "MAXLEN", "~", "100000", "*", "cid", j["cid"], "relay", "r-ok",
                      "mode", "tunnel", "bytes_ab", ab, "bytes_ba", ba, "started_ms", "1700000000000",
                      "ended_ms", "1700000005000", "reason", "closed")
        r.command("XADD", key, "*", "cid", "garbage", "bytes_ab", "1")
    row = wait_until(lambda: psql(ls, "SELECT relay_id, relay_mode, bytes_ab, bytes_ba, relay_sessions "
                                      "FROM connections WHERE cid = '%s' AND bytes_ab > 0" % j["cid"]),
                     timeout=10, what="relay bytes merged")
    assert row == ["r-ok|tunnel|1005|27|2"], row
    with redis_server.client() as r:
        pend = r.command("XPENDING", key, "login")
        assert pend[0] == 0, pend
    # No relay with a free slot: 503 with a clear code.
    with redis_server.client() as r:
        r.command("DEL", "%srelay:{r-ok}" % ls.prefix)
    assert_error(ls.connect(a["token"], "rl-b"), 503, "no_relay_available")


def test_no_relay_configured(login_server):
    ls = login_server({"relay": {"token_key": ""}})
    for u in ("nr-a", "nr-b"):
        register(ls, u)
    a = inner(ls, "nr-a", "198.51.100.50", "10.3.0.1:5000")
    inner(ls, "nr-b", "203.0.113.50", "10.3.0.2:5000")
    assert_error(ls.connect(a["token"], "nr-b"), 503, "no_relay_available")


# ------------------------------------------------------------ limits, input


def test_rate_limits(login_server):
    ls = login_server({"login": {"ip_logins_per_min": 5, "user_failures_per_min": 3}})
    register(ls, "frank")
    for _ in range(3):
        assert_error(ls.login("frank", password="bad password", xff="198.51.100.60", expect=401),
                     401, "invalid_credentials")
    # The account is locked for the minute, from any address, right password
    # or not; the answer is the same for an unknown account over its limit.
    assert_error(ls.login("frank", xff="198.51.100.61", expect=429), 429, "rate_limited")
    for _ in range(3):
        ls.login("ghost", password="bad password", xff="198.51.100.62", expect=401)
    assert_error(ls.login("ghost", xff="198.51.100.63", expect=429), 429, "rate_limited")
    # Per address: the sixth attempt in a minute from one address.
    for i in range(5):
        ls.login("nobody%d" % i, password="bad password", xff="198.51.100.64", expect=401)
    r = ls.login("frank", xff="198.51.100.64", expect=429)
    assert r.header("Retry-After") == "60"
    m = metrics(ls)
    assert metric_value(m, "p2pcdn_login_logins_total", result="rate_limited") >= 3


def test_hostile_input(login_server):
    ls = login_server({"server": {"max_body": 4096}})
    register(ls, "henry")
    s = ls.session("henry")
    cases = [
        (b"{", "bad_json"), (b"[]", "expected_object"), (b"", "bad_json"),
        ({"user": "henry"}, "bad_password"), ({"user": "Henry!", "password": "x"}, "bad_user"),
        ({"user": "he", "password": "x"}, "bad_user"),
        ({"user": "henry", "password": PW, "listen_port": 70000}, "bad_port"),
        ({"user": "henry", "password": PW, "listen_port": -1}, "bad_port"),
        ({"user": "henry", "password": PW, "listen_port": "80"}, "bad_port"),
        ({"user": "henry", "password": PW, "private_addr": "10.0.0.1:99999"}, "bad_address"),
        ({"user": "henry", "password": PW, "private_addr": "not-an-ip"}, "bad_address"),
        ({"user": "henry", "password": PW, "private_addr": "10.0.0.1"}, "bad_address"),
        ({"user": "henry", "password": PW, "public_key": "AAAA"}, "bad_public_key"),
        ({"user": "henry", "password": PW, "extra": 1}, "unknown_field"),
        ({"user": "henry", "password": "x" * 300}, "bad_password"),
        (b'{"user":"henry","user":"henry","password":"x"}', "bad_json"),
        (b'{"user":"hen\\u0000ry","password":"x"}', "bad_json"),
    ]
    for body, code in cases:
        assert_error(ls.api("POST", "/v1/login", body), 400, code)
    assert_error(ls.api("POST", "/v1/login", {"user": "henry", "password": "p" * 5000}), 413,
                 "body_too_large")
    for body, code in ((b"{}", "bad_target"), ({"target": 5}, "bad_target"),
                       ({"target": "a" * 40}, "bad_target"), (b"nope", "bad_json"),
                       ({"target": "x-y", "more": 1}, "unknown_field")):
        assert_error(ls.api("POST", "/v1/connect", body, token=s["token"]), 400, code)
    for body in (b"{}", {"outcome": "maybe"}, {"outcome": 1}):
        assert_error(ls.api("POST", "/v1/connect/%s/result" % ("a" * 32), body, token=s["token"]),
                     400, "bad_outcome")
    assert ls.hb(s["token"]).status == 200
    r = ls.api("GET", "/v1/login")
    assert r.status in (404, 405), r
    assert ls.alive()


def test_redis_restart_mid_run(login_server, redis_factory, peer_server):
    rds = redis_factory()
    ls = login_server(redis=rds)
    for u in ("rr-o", "rr-i"):
        register(ls, u)
    o = outer(ls, "rr-o", peer_server)
    inner(ls, "rr-i", "203.0.113.80", "10.8.0.1:1")
    port = rds.port
    rds.kill()
    assert_error(ls.hb(o["token"]), 503, "redis_unavailable")
    r = ls.login("rr-o", listen_port=o["port"], expect=503)
    assert_error(r, 503, "redis_unavailable")
    assert r.header("Retry-After")
    rds.port = port
    rds.start()
    # Sessions lived in Redis only: log in again and broker as before.
    def back():
        return ls.login("rr-o", listen_port=o["port"], expect=None).status == 200
    wait_until(back, timeout=10, what="logins after the Redis restart")
    o2 = ls.session("rr-o", listen_port=o["port"])
    i2 = inner(ls, "rr-i", "203.0.113.80", "10.8.0.1:1")
    # The long-poll listener re-subscribed: a parked heartbeat wakes.
    got = {}
    t = threading.Thread(target=lambda: got.update(r=ls.hb(i2["token"], wait=10, timeout=20)))
    t.start()
    wait_until(lambda: metric_value(metrics(ls), "p2pcdn_login_long_polls") == 1, timeout=5,
               what="parked")
    j = ls.connect(o2["token"], "rr-i").json()
    t.join(15)
    assert [x["cid"] for x in got["r"].json()["requests"]] == [j["cid"]]


def test_status_metrics_accounting(login_server, peer_server):
    ls = login_server()
    for u in ("st-o", "st-i"):
        register(ls, u)
    o = outer(ls, "st-o", peer_server)
    inner(ls, "st-i", "203.0.113.90", "10.9.0.1:1")
    ls.connect(o["token"], "st-i")
    r = ls.admin("GET", "/status")
    assert r.status == 200, r
    st = r.json()
    assert st["daemon"] == "login-server" and st["connects"]["reverse"] == 1
    assert st["logins"]["ok"] == 2 and st["probes"]["echo"] == 1
    wait_until(lambda: ls.admin("GET", "/status").json()["sessions_online"] == {"outer": 1, "inner": 1},
               timeout=10, what="sessions online by NAT class")
    m = metrics(ls)
    assert metric_value(m, "p2pcdn_login_sessions_online", nat="outer") == 1
    assert metric_value(m, "p2pcdn_login_connects_total", mode="reverse") == 1
    # No per-user labels anywhere.
    assert "st-o" not in ls.admin("GET", "/metrics").text
    assert ls.admin("GET", "/readyz").status == 200
    rows = wait_until(lambda: psql(ls, "SELECT initiator, target, mode FROM connections"),
                      timeout=5, what="the connection row")
    assert rows == ["st-o|st-i|reverse"], rows
    rows = psql(ls, "SELECT account, nat, public_addr FROM login_sessions ORDER BY account")
    assert rows[0].startswith("st-i|inner|203.0.113.90") and rows[1].startswith("st-o|outer|127.0.0.1:")


def test_check_config_and_reload(login_server):
    ls = login_server()
    r = ls.cli("--check-config")
    assert r.returncode == 0, r.stderr
    ls.update_config({"login": {"registration": "sometimes"}})
    r = ls.cli("--check-config")
    assert r.returncode == 1 and "registration" in r.stderr, r.stderr
    ls.update_config({"login": {"registration": "admin"}})
    ls.signal(1)  # SIGHUP
    wait_until(lambda: ls.admin("GET", "/status").json()["registration"] == "admin", timeout=5,
               what="reloaded registration")
    assert_error(register(ls, "late1", expect=403), 403, "registration_closed")
    ls.update_config({"relay": {"token_key": "xyz"}})
    r = ls.cli("--check-config")
    assert r.returncode == 1 and "token_key" in r.stderr
