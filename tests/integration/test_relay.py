# SPDX-License-Identifier: MIT
"""relay-server against a real redis-server: both modes, limits and caps,
tokens, registry, accounting, shutdown, Redis restart."""

import base64
import json
import hashlib
import os
import signal
import socket
import threading
import time

import pytest

from fx_relay import (RELAY_KEY_HEX, TOK_KIND_PUBLISH, mint_token, new_cid, pair_tokens)
from p2ptest import assert_error, http_request, metric_value, parse_metrics, wait_until

MIB = 1024 * 1024


def msgs(resp):
    assert resp.status == 200, resp
    j = resp.json()
    return [(m["seq"], base64.b64decode(m["data"])) for m in j["messages"]], j


def acct_entries(relay, redis=None):
    """The accounting stream as a list of dicts."""
    rd = redis or relay.redis
    out = []
    key = "%sacct:{%s}" % (relay.prefix, relay.cfg["relay"]["id"])
    for _id, fields in rd.command("XRANGE", key, "-", "+") or []:
        out.append(dict(zip(fields[0::2], fields[1::2])))
    return out


def wait_acct(relay, cid, redis=None, timeout=10):
    found = {}

    def have():
        for e in acct_entries(relay, redis):
            if e["cid"] == cid:
                found.update(e)
                return True
        return False

    wait_until(have, timeout=timeout, what="accounting record of %s" % cid)
    return found


def recv_exactly_until_eof(sock, h=None):
    n = 0
    while True:
        b = sock.recv(1 << 20)
        if not b:
            return n
        n += len(b)
        if h is not None:
            h.update(b)


# ------------------------------------------------------------------ mailbox


def test_mailbox_exchange_in_order_with_retries(relay):
    r = relay()
    cid, ta, tb = pair_tokens()
    # a -> b, three messages; a retry of seq 2 is not queued twice.
    for seq, data in ((1, b"one"), (2, b"two"), (2, b"two"), (3, bytes(range(256)))):
        resp = r.send(cid, ta, seq, data)
        assert resp.status == 200, resp
    assert resp.json()["seq"] == 3
    dup = r.send(cid, ta, 1, b"one")
    assert dup.status == 200 and dup.json()["duplicate"] is True
    assert_error(r.send(cid, ta, 5, b"gap"), 409, "seq_gap")
    got, j = msgs(r.fetch(cid, tb, ack=0))
    assert got == [(1, b"one"), (2, b"two"), (3, bytes(range(256)))]
    assert j["peer"] is True
    # The answer was "lost": the same GET gets the same messages again.
    got2, _ = msgs(r.fetch(cid, tb, ack=0))
    assert got2 == got
    # After acknowledging 2 only message 3 remains; acking 3 empties it.
    got3, _ = msgs(r.fetch(cid, tb, ack=2))
    assert got3 == [(3, bytes(range(256)))]
    got4, _ = msgs(r.fetch(cid, tb, ack=3, wait=0))
    assert got4 == []
    # a sees that b acknowledged everything.
    _, ja = msgs(r.fetch(cid, ta, ack=0, wait=0))
    assert ja["acked"] == 3
    # b -> a
    assert r.send(cid, tb, 1, b"reply").status == 200
    got5, _ = msgs(r.fetch(cid, ta, ack=0))
    assert got5 == [(1, b"reply")]
    closed = r.close_session(cid, ta)
    assert closed.status == 200, closed
    assert closed.json()["bytes_ab"] == 3 + 3 + 256 and closed.json()["bytes_ba"] == 5
    e = wait_acct(r, cid)
    assert e["mode"] == "mailbox" and e["reason"] == "closed"
    assert e["bytes_ab"] == "262" and e["bytes_ba"] == "5" and e["relay"] == r.cfg["relay"]["id"]
    assert int(e["ended_ms"]) >= int(e["started_ms"]) > 1.6e12
    # The session is gone for good: its tokens cannot reopen it.
    assert_error(r.send(cid, ta, 4, b"late"), 410, "session_closed")
    assert_error(r.fetch(cid, tb, ack=3), 410, "session_closed")


def test_mailbox_long_poll_wakes_and_times_out(relay):
    r = relay()
    cid, ta, tb = pair_tokens()
    out = {}

    def poll():
        out["resp"] = r.fetch(cid, tb, ack=0, wait=20)

    t = threading.Thread(target=poll)
    t.start()
    wait_until(lambda: r.status()["long_polls"] == 1, timeout=5, what="long-poll waiting")
    t0 = time.monotonic()
    assert r.send(cid, ta, 1, b"wake").status == 200
    t.join(10)
    assert not t.is_alive()
    assert time.monotonic() - t0 < 5
    got, _ = msgs(out["resp"])
    assert got == [(1, b"wake")]
    # Nothing waiting: the GET comes back empty after its wait.
    t0 = time.monotonic()
    got, _ = msgs(r.fetch(cid, tb, ack=1, wait=1))
    assert got == [] and 0.8 < time.monotonic() - t0 < 5
    assert r.status()["long_polls"] == 0


def test_mailbox_limits(relay):
    r = relay({"relay": {"max_queued_bytes": 8192, "max_message": 4096, "max_session_bytes": 20000}})
    cid, ta, tb = pair_tokens()
    assert_error(r.send(cid, ta, 1, b"x" * 4097), 413, "message_too_large")
    # Half of max_queued_bytes per direction: the third 1500-byte... fills at 4096.
    assert r.send(cid, ta, 1, b"x" * 2000).status == 200
    assert r.send(cid, ta, 2, b"x" * 2000).status == 200
    full = r.send(cid, ta, 3, b"x" * 2000)
    assert_error(full, 429, "queue_full")
    assert full.header("Retry-After")
    # b fetches and acknowledges: room again; the same seq now goes in.
    got, _ = msgs(r.fetch(cid, tb, ack=0))
    assert [s for s, _ in got] == [1, 2]
    msgs(r.fetch(cid, tb, ack=2, wait=0))
    assert r.send(cid, ta, 3, b"x" * 2000).status == 200
    # Session bytes quota: 20000 both ways.
    seq = 4
    last = None
    for _ in range(20):
        msgs(r.fetch(cid, tb, ack=seq - 1, wait=0))
        last = r.send(cid, ta, seq, b"y" * 3000)
        if last.status != 200:
            break
        seq += 1
    assert_error(last, 410, "session_quota_bytes")
    e = wait_acct(r, cid)
    assert e["reason"] == "quota_bytes" and int(e["bytes_ab"]) <= 20000
    m = parse_metrics(r.metrics())
    assert metric_value(m, "p2pcdn_relay_refusals_total", reason="queue_full") >= 1
    assert metric_value(m, "p2pcdn_relay_refusals_total", reason="message_too_large") == 1
    assert metric_value(m, "p2pcdn_relay_sessions_ended_total", reason="quota_bytes") == 1
    assert metric_value(m, "p2pcdn_relay_limit", limit="max_queued_bytes") == 8192


def test_idle_and_time_quota(relay):
    r = relay({"relay": {"idle_timeout_s": 1, "max_session_s": 3}})
    cid, ta, tb = pair_tokens()
    assert r.send(cid, ta, 1, b"hi").status == 200
    e = wait_acct(r, cid, timeout=6)
    assert e["reason"] == "idle"
    assert_error(r.fetch(cid, tb), 410, "session_idle")
    # A tunnel kept busy still ends at max_session_s.
    cid, ta, tb = pair_tokens()
    _, sa, _ = r.tunnel(cid, ta)
    _, sb, _ = r.tunnel(cid, tb)
    t0 = time.monotonic()
    sb.settimeout(0.3)
    while time.monotonic() - t0 < 8:
        try:
            sa.sendall(b"tick")
            if not sb.recv(100):
                break
        except socket.timeout:
            pass
        except OSError:
            break
        time.sleep(0.2)
    assert 2.5 < time.monotonic() - t0 < 7
    assert wait_acct(r, cid)["reason"] == "quota_time"
    sa.close()
    sb.close()


# ------------------------------------------------------------------- tunnel


def test_tunnel_256mib_sha256_both_ways(relay):
    """256 MiB a->b (and 16 MiB b->a at the same time) keep their SHA-256."""
    r = relay({"relay": {"max_session_bytes": 1 << 40}})
    cid, ta, tb = pair_tokens()
    status, sa, _ = r.tunnel(cid, ta, timeout=60, extra=b"first bytes before the peer came")
    assert status == 101
    status, sb, _ = r.tunnel(cid, tb, timeout=60)
    assert status == 101
    size_ab, size_ba = 256 * MIB, 16 * MIB
    res = {}

    def gen(total, seed):
        block = hashlib.sha256(seed).digest() * 8192  # 256 KiB, not all equal
        sent = 0
        while sent < total:
            n = min(len(block), total - sent)
            chunk = block[:n] if n < len(block) else block
            yield chunk
            block = block[1:] + block[:1] if sent % (8 * MIB) == 0 else block
            sent += n

    def sender(sock, total, seed, name):
        h = hashlib.sha256(b"first bytes before the peer came" if name == "ab" else b"")
        for chunk in gen(total, seed):
            sock.sendall(chunk)
            h.update(chunk)
        sock.shutdown(socket.SHUT_WR)
        res["sent_" + name] = h.hexdigest()

    def receiver(sock, name):
        h = hashlib.sha256()
        res["n_" + name] = recv_exactly_until_eof(sock, h)
        res["got_" + name] = h.hexdigest()

    threads = [threading.Thread(target=sender, args=(sa, size_ab, b"a", "ab")),
               threading.Thread(target=sender, args=(sb, size_ba, b"b", "ba")),
               threading.Thread(target=receiver, args=(sb, "ab")),
               threading.Thread(target=receiver, args=(sa, "ba"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not any(t.is_alive() for t in threads), "transfer hung"
    assert res["n_ab"] == size_ab + len(b"first bytes before the peer came")
    assert res["n_ba"] == size_ba
    assert res["got_ab"] == res["sent_ab"]
    assert res["got_ba"] == res["sent_ba"]
    sa.close()
    sb.close()
    e = wait_acct(r, cid)
    assert e["mode"] == "tunnel" and e["reason"] == "closed"
    assert int(e["bytes_ab"]) == res["n_ab"] and int(e["bytes_ba"]) == size_ba


def test_slow_reader_does_not_grow_memory(relay):
    limit = 512 * 1024
    r = relay({"relay": {"max_queued_bytes": limit}})
    cid, ta, tb = pair_tokens()
    _, sa, _ = r.tunnel(cid, ta)
    _, sb, _ = r.tunnel(cid, tb)
    rss0 = r.pid_rss_kib()
    sa.setblocking(False)
    block = b"z" * 65536
    sent = 0
    stalled_since = None
    # Push until the relay stops taking data for a second: its buffer
    # plus both kernels' socket buffers are full, and b reads nothing.
    while sent < 512 * MIB:
        try:
            sent += sa.send(block)
            stalled_since = None
        except BlockingIOError:
            if stalled_since is None:
                stalled_since = time.monotonic()
            elif time.monotonic() - stalled_since > 1.0:
                break
            time.sleep(0.01)
    assert sent < 64 * MIB, "the relay took %d bytes from a sender whose peer reads nothing" % sent
    st = r.status()
    assert st["queued"]["tunnel_bytes"] <= limit, st["queued"]
    growth = r.pid_rss_kib() - rss0
    assert growth < 48 * 1024, "relay RSS grew %d KiB" % growth
    # The reader wakes up and gets every byte.
    sa.setblocking(True)
    sa.shutdown(socket.SHUT_WR)
    sb.settimeout(30)
    assert recv_exactly_until_eof(sb) == sent
    sa.close()
    sb.close()


def test_many_concurrent_sessions(relay):
    r = relay({"server": {"connection_limit": 4000}})
    n_tun, n_mb = 150, 150
    errors = []

    def tunnel_pair(i):
        try:
            cid, ta, tb = pair_tokens(user_a="ua%d" % i, user_b="ub%d" % i)
            _, sa, _ = r.tunnel(cid, ta, timeout=30)
            _, sb, _ = r.tunnel(cid, tb, timeout=30)
            payload = os.urandom(200000 + i)
            t = threading.Thread(target=lambda: (sa.sendall(payload), sa.shutdown(socket.SHUT_WR)))
            t.start()
            h = hashlib.sha256()
            n = recv_exactly_until_eof(sb, h)
            t.join()
            sb.shutdown(socket.SHUT_WR)
            assert sa.recv(10) == b""
            assert n == len(payload) and h.digest() == hashlib.sha256(payload).digest()
            sa.close()
            sb.close()
        except Exception as e:  # pylint: disable=broad-except
            errors.append("tunnel %d: %r" % (i, e))

    def mailbox_pair(i):
        try:
            cid, ta, tb = pair_tokens(user_a="ma%d" % i, user_b="mb%d" % i)
            for s in range(1, 6):
                assert r.send(cid, ta, s, b"m%d-%d" % (i, s), timeout=30).status == 200
            got, ack = [], 0
            while len(got) < 5:
                m, _ = msgs(r.fetch(cid, tb, ack=ack, wait=5, timeout=30))
                got += m
                ack = got[-1][0] if got else 0
            assert [d for _, d in got] == [b"m%d-%d" % (i, s) for s in range(1, 6)]
            assert r.close_session(cid, tb).status == 200
        except Exception as e:  # pylint: disable=broad-except
            errors.append("mailbox %d: %r" % (i, e))

    threads = [threading.Thread(target=tunnel_pair, args=(i,)) for i in range(n_tun)]
    threads += [threading.Thread(target=mailbox_pair, args=(i,)) for i in range(n_mb)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:5]
    wait_until(lambda: r.status()["sessions"]["total"] == 0, timeout=10, what="all sessions ended")
    st = r.status()
    assert st["ended"]["closed"] == n_tun + n_mb, st["ended"]
    wait_until(lambda: len(acct_entries(r)) == n_tun + n_mb, timeout=10, what="all accounting records")


# ------------------------------------------------------------------- tokens


def test_tokens_refused(relay):
    r = relay()
    cid, ta, tb = pair_tokens()
    assert_error(r.fetch(cid, None if False else "", wait=0), 401, None)
    resp = http_request(r.host, r.port, "GET", "/v1/relay/%s/messages" % cid)
    assert_error(resp, 401, "token_missing")
    forged = mint_token({"cid": cid, "side": "a", "user": "alice", "peer": "bob"}, key_hex="ff" * 32)
    assert_error(r.send(cid, forged, 1, b"x"), 401, "token_invalid")
    tampered = ta[:-3] + ("AAA" if not ta.endswith("AAA") else "BBB")
    assert_error(r.send(cid, tampered, 1, b"x"), 401, "token_invalid")
    expired = mint_token({"cid": cid, "side": "a", "user": "alice", "peer": "bob"},
                         expiry=int(time.time()) - 5)
    assert_error(r.send(cid, expired, 1, b"x"), 401, "token_expired")
    publish = mint_token({"cid": cid, "side": "a", "user": "alice", "peer": "bob"}, kind=TOK_KIND_PUBLISH)
    assert_error(r.send(cid, publish, 1, b"x"), 401, "token_invalid")
    for bad in ({"cid": cid, "side": "c", "user": "alice", "peer": "bob"},
                {"cid": cid.upper(), "side": "a", "user": "alice", "peer": "bob"},
                {"cid": cid, "side": "a", "user": "alice"},
                {"cid": cid, "side": "a", "user": "alice", "peer": "alice"},
                {"cid": cid, "side": "a", "user": "alice", "peer": "bob", "x": 1},
                "not json"):
        assert_error(r.send(cid, mint_token(bad), 1, b"x"), 401, "token_invalid")
    other = new_cid()
    assert_error(r.send(other, ta, 1, b"x"), 403, "token_wrong_session")
    assert_error(r.send("NOT-A-CID", ta, 1, b"x"), 404, "not_found")
    # A real session; then a token for the same cid naming other accounts.
    assert r.send(cid, ta, 1, b"x").status == 200
    wrong_b = mint_token({"cid": cid, "side": "b", "user": "mallory", "peer": "alice"})
    assert_error(r.fetch(cid, wrong_b), 403, "token_mismatch")
    wrong_a = mint_token({"cid": cid, "side": "a", "user": "eve", "peer": "bob"})
    assert_error(r.send(cid, wrong_a, 2, b"x"), 403, "token_mismatch")
    assert r.fetch(cid, tb).status == 200
    # Tunnel: the other mode is refused, and each side connects once.
    assert_error(http_request(r.host, r.port, "GET", "/v1/relay/%s/tunnel" % cid,
                              headers={"Authorization": "Bearer " + ta, "Connection": "Upgrade",
                                       "Upgrade": "p2pcdn-relay"}), 409, "mode_conflict")
    cid2, ta2, tb2 = pair_tokens()
    assert_error(http_request(r.host, r.port, "GET", "/v1/relay/%s/tunnel" % cid2,
                              headers={"Authorization": "Bearer " + ta2}), 426, "upgrade_required")
    st, s1, _ = r.tunnel(cid2, ta2)
    assert st == 101
    st, s2, head = r.tunnel(cid2, ta2)
    assert st == 409 and "side_in_use" in head
    st, s3, _ = r.tunnel(cid2, tb2)
    assert st == 101
    s1.sendall(b"ping")
    assert s3.recv(10) == b"ping"
    s1.close()
    s3.close()
    m = parse_metrics(r.metrics())
    for reason, least in (("token_missing", 2), ("token_invalid", 8), ("token_expired", 1),
                          ("token_wrong_session", 1), ("token_mismatch", 2), ("mode_conflict", 1),
                          ("side_in_use", 1), ("upgrade_required", 1)):
        assert metric_value(m, "p2pcdn_relay_refusals_total", reason=reason) >= least, reason


def test_caps_and_capacity(relay):
    r = relay({"relay": {"max_sessions": 3, "max_per_source": 4, "max_per_account": 2}})
    # Per account: alice may be in two sessions at once.
    c1, a1, b1 = pair_tokens(user_a="alice", user_b="bob1")
    c2, a2, b2 = pair_tokens(user_a="alice", user_b="bob2")
    c3, a3, _ = pair_tokens(user_a="alice", user_b="bob3")
    assert r.send(c1, a1, 1, b"x").status == 200
    assert r.send(c2, a2, 1, b"x").status == 200
    resp = r.send(c3, a3, 1, b"x")
    assert_error(resp, 429, "over_account_cap")
    assert resp.header("Retry-After")
    # Per source: every test client is 127.0.0.1; 2 sides taken, 2 more fit.
    assert r.fetch(c1, b1).status == 200
    assert r.fetch(c2, b2).status == 200
    c4, a4, _ = pair_tokens(user_a="carol", user_b="dave")
    assert_error(r.send(c4, a4, 1, b"x"), 429, "over_source_cap")
    # Closing frees the caps.
    assert r.close_session(c1, a1).status == 200
    assert r.send(c4, a4, 1, b"x").status == 200
    # max_sessions: 3 in flight (c2, c4 and one more), the 4th is refused.
    r2 = relay({"relay": {"max_sessions": 2}})
    for i in range(2):
        c, a, _ = pair_tokens(user_a="x%d" % i, user_b="y%d" % i)
        assert r2.send(c, a, 1, b"x").status == 200
    c, a, _ = pair_tokens(user_a="x9", user_b="y9")
    full = r2.send(c, a, 1, b"x")
    assert_error(full, 503, "relay_full")
    assert full.header("Retry-After")
    m = parse_metrics(r.metrics())
    assert metric_value(m, "p2pcdn_relay_refusals_total", reason="over_account_cap") == 1
    assert metric_value(m, "p2pcdn_relay_refusals_total", reason="over_source_cap") == 1
    assert metric_value(parse_metrics(r2.metrics()), "p2pcdn_relay_refusals_total",
                        reason="relay_full") == 1


def test_slowloris_and_lonely_tunnel_time_out(relay):
    r = relay({"server": {"request_timeout_s": 2}, "relay": {"idle_timeout_s": 2}})
    s = socket.create_connection((r.host, r.port))
    s.settimeout(15)
    t0 = time.monotonic()
    closed = False
    try:
        s.sendall(b"GET /v1/relay/")
        for _ in range(30):
            time.sleep(0.5)
            s.sendall(b"a")
    except OSError:
        closed = True
    if not closed:
        try:
            closed = s.recv(100) == b"" or True
        except OSError:
            closed = True
    elapsed = time.monotonic() - t0
    s.close()
    assert closed and elapsed < 14, "a byte every 0.5 s kept the request open for %.1f s" % elapsed
    # A request head that never ends.
    s = socket.create_connection((r.host, r.port))
    s.sendall(b"GET /v1/relay/x HTTP/1.1\r\nHost: a\r\n")
    s.settimeout(10)
    t0 = time.monotonic()
    assert s.recv(100) == b""
    assert time.monotonic() - t0 < 6
    s.close()
    # A tunnel side whose partner never comes.
    cid, ta, _ = pair_tokens()
    st, sa, _ = r.tunnel(cid, ta)
    assert st == 101
    sa.settimeout(10)
    t0 = time.monotonic()
    assert sa.recv(10) == b""
    assert time.monotonic() - t0 < 8
    assert wait_acct(r, cid)["reason"] == "idle"
    sa.close()


def test_tunnel_quota_bytes(relay):
    r = relay({"relay": {"max_session_bytes": 100000}})
    cid, ta, tb = pair_tokens()
    _, sa, _ = r.tunnel(cid, ta)
    _, sb, _ = r.tunnel(cid, tb)
    sb.settimeout(10)
    try:
        sa.sendall(b"q" * 300000)
    except OSError:
        pass
    n = 0
    try:
        n = recv_exactly_until_eof(sb)
    except OSError:
        pass
    assert n <= 100000
    assert wait_acct(r, cid)["reason"] == "quota_bytes"
    sa.close()
    sb.close()


# ------------------------------------------------------ registry, lifecycle


def test_registry_status_and_shutdown(relay):
    r = relay({"relay": {"max_sessions": 50}})
    key = "%srelay:{%s}" % (r.prefix, r.cfg["relay"]["id"])

    def registered():
        h = r.redis.command("HGETALL", key)
        return dict(zip(h[0::2], h[1::2])) if h else None

    wait_until(registered, timeout=5, what="registry hash")
    h = registered()
    assert h["url"] == r.cfg["relay"]["public_url"] and h["capacity"] == "50"
    ttl = int(r.redis.command("TTL", key))
    assert 0 < ttl <= 3
    assert r.redis.command("ZSCORE", r.prefix + "relays", r.cfg["relay"]["id"]) is not None
    cid, ta, tb = pair_tokens()
    assert r.send(cid, ta, 1, b"x").status == 200
    wait_until(lambda: (registered() or {}).get("sessions") == "1", timeout=5, what="sessions=1")
    score = float(r.redis.command("ZSCORE", r.prefix + "relays", r.cfg["relay"]["id"]))
    assert abs(score - 1 / 50) < 1e-6
    st = r.status()
    assert st["sessions"]["mailbox"] == 1 and st["queued"]["mailbox_messages"] == 1
    assert r.admin("GET", "/readyz").status == 200
    assert r.admin("GET", "/healthz").status == 200
    # A long-poll in flight when SIGTERM comes gets an answer, not a hang.
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", r.fetch(cid, ta, wait=25)))
    t.start()
    wait_until(lambda: r.status()["long_polls"] == 1, timeout=5, what="long-poll")
    r.signal(signal.SIGTERM)
    t.join(15)
    assert not t.is_alive()
    assert out["r"].status in (200, 410, 503), out["r"]
    assert r.stop() == 0
    assert r.redis.command("EXISTS", key) == 0
    assert r.redis.command("ZSCORE", r.prefix + "relays", r.cfg["relay"]["id"]) is None
    e = wait_acct(r, cid)
    assert e["reason"] == "shutdown" and e["bytes_ab"] == "1"


def test_redis_restart_mid_run(relay, redis_factory):
    rd = redis_factory()
    r = relay({"redis": {"command_timeout_ms": 300}}, redis=rd)
    key = "%srelay:{%s}" % (r.prefix, r.cfg["relay"]["id"])
    wait_until(lambda: rd.command("EXISTS", key) == 1, timeout=5, what="registry")
    rd.kill()
    # Relaying needs no Redis: both modes keep working.
    cid1, ta, tb = pair_tokens()
    assert r.send(cid1, ta, 1, b"during outage").status == 200
    got, _ = msgs(r.fetch(cid1, tb))
    assert got == [(1, b"during outage")]
    assert r.close_session(cid1, tb).status == 200
    cid2, ta2, tb2 = pair_tokens()
    _, sa, _ = r.tunnel(cid2, ta2)
    _, sb, _ = r.tunnel(cid2, tb2)
    sa.sendall(b"x" * 1000)
    sa.shutdown(socket.SHUT_WR)
    assert recv_exactly_until_eof(sb) == 1000
    sb.shutdown(socket.SHUT_WR)
    assert sa.recv(10) == b""
    sa.close()
    sb.close()
    wait_until(lambda: r.status()["redis"]["acct_pending"] == 2, timeout=5, what="records pending")
    assert r.admin("GET", "/readyz").status == 503
    rd.start()
    # The registry comes back and the records of the outage are written.
    wait_until(lambda: rd.command("EXISTS", key) == 1, timeout=10, what="registry after restart")
    assert wait_acct(r, cid1, redis=rd)["reason"] == "closed"
    assert wait_acct(r, cid2, redis=rd)["bytes_ab"] == "1000"
    wait_until(lambda: r.admin("GET", "/readyz").status == 200, timeout=5, what="readyz")


def test_config_checks(relay, tmp_path):
    r = relay(start=False)
    res = r.cli("--check-config")
    assert res.returncode == 0, res.stderr
    r.update_config({"relay": {"token_key": "zz" * 32}})
    res = r.cli("--check-config")
    assert res.returncode == 1 and "token_key" in res.stderr
    r.update_config({"relay": {"token_key": RELAY_KEY_HEX, "bogus": 1}})
    res = r.cli("--check-config")
    assert res.returncode == 1 and "bogus" in res.stderr
    r.update_config({"relay": {"bogus": None, "max_message": 99999999}})
    res = r.cli("--check-config")
    assert res.returncode == 1
    res = r.cli("--help", config=False)
    assert res.returncode == 0 and "max_queued_bytes" in (res.stdout + res.stderr)


def test_reload_changes_limits_and_key(relay):
    r = relay()
    cid, ta, _ = pair_tokens()
    new_key = "ab" * 32
    r.update_config({"relay": {"token_key": new_key, "max_message": 10}})
    r.signal(signal.SIGHUP)
    wait_until(lambda: r.status()["limits"]["max_message"] == 10, timeout=5, what="reload")
    assert_error(r.send(cid, ta, 1, b"x"), 401, "token_invalid")
    cid, ta, _ = pair_tokens(key_hex=new_key)
    assert_error(r.send(cid, ta, 1, b"x" * 11), 413, "message_too_large")
    assert r.send(cid, ta, 1, b"x" * 10).status == 200


def test_mailbox_over_https_and_no_tunnel(relay, tmp_path):
    """With tls_cert/tls_key the public listener speaks HTTPS: the mailbox
    works; tunnels are refused with their own code (libmicrohttpd 0.9.75
    relays upgraded TLS streams too slowly; see docs/relay-server.md)."""
    import http.client
    import ssl
    import subprocess
    cert, key = str(tmp_path / "relay.crt"), str(tmp_path / "relay.key")
    res = subprocess.run(["openssl", "req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                          "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert,
                          "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=60)
    assert res.returncode == 0, res.stdout
    r = relay({"server": {"tls_cert": cert, "tls_key": key}})
    ctx = ssl.create_default_context(cafile=cert)
    cid, ta, tb = pair_tokens()
    c = http.client.HTTPSConnection(r.host, r.port, context=ctx, timeout=10)
    c.request("POST", "/v1/relay/%s/messages?seq=1" % cid, body=b"secret",
              headers={"Authorization": "Bearer " + ta})
    resp = c.getresponse()
    assert resp.status == 200, resp.read()
    resp.read()
    c.request("GET", "/v1/relay/%s/messages?ack=0&wait=0" % cid, headers={"Authorization": "Bearer " + tb})
    j = json.loads(c.getresponse().read())
    assert base64.b64decode(j["messages"][0]["data"]) == b"secret"
    cid2, ta2, _ = pair_tokens()
    c.request("GET", "/v1/relay/%s/tunnel" % cid2, headers={"Authorization": "Bearer " + ta2,
                                                          "Connection": "Upgrade",
                                                          "Upgrade": "p2pcdn-relay"})
    resp = c.getresponse()
    assert resp.status == 501 and json.loads(resp.read())["error"] == "tunnel_unavailable"
    c.close()
