# SPDX-License-Identifier: MIT
"""index-server against a real Redis (and a real route-server for the pull
path): member lists by PeerID proximity, expiry, leave, two instances on
one Redis, exactly one pull per new channel, publish tokens, bad input."""

import concurrent.futures
import copy
import json
import signal
import math
import os
import subprocess
import time

import pytest

from fx_index import INDEX_CACHE_KEY, decode_token, make_pid, proximity
from p2ptest import Resp, assert_error, free_port, http_request, wait_until

CH = "news"


def view_num(n, c=2, vmin=4, vmax=64):
    v = math.ceil((c + 1) * math.log(n)) if n > 1 else 0
    return max(vmin, min(vmax, v))


def held_cache(fake_cache, prefix, channels=(CH,), cache_id="north-1", load=100):
    """A stand-in cache of domain north already holding `channels`."""
    c = fake_cache(prefix, cache_id, "north", load)
    for ch in channels:
        c.hold(ch, ttl=600)
    return c


def wait_caches(idx, n=1):
    wait_until(lambda: len(idx.status()["caches"]) >= n, timeout=5,
               what="the registry snapshot to hold %d caches" % n)


# ----------------------------------------------------------------- basics


def test_cli_and_config(index_server, tmp_path):
    idx = index_server(start=False)
    r = idx.cli("--check-config")
    assert r.returncode == 0, r.stderr
    r = idx.cli("--version", config=False)
    assert r.returncode == 0 and "index-server" in (r.stdout + r.stderr)
    r = idx.cli("--help", config=False)
    assert r.returncode == 0 and "view_c" in (r.stdout + r.stderr)
    orig = copy.deepcopy(idx.cfg)
    for bad in ({"index": {"cache_key": "zz" * 32}}, {"index": {"domain": "Bad Domain"}},
                {"index": {"view_min": 70, "view_max": 60}},
                {"index": {"route_url": "ftp://x"}},
                {"index": {"pull_lock_ms": 500}},
                {"index": {"heartbeat_s": 0}}):
        idx.update_config(bad)
        r = idx.cli("--check-config")
        assert r.returncode == 1, (bad, r.stdout, r.stderr)
        assert r.stderr.strip(), bad
        idx.write_config(copy.deepcopy(orig))
    idx2 = index_server(cfg={"index": {"cache_key": None}}, start=False)
    r = idx2.cli("--check-config")
    assert r.returncode == 1 and "cache_key" in r.stderr, r.stderr


def test_join_view_and_self(index_server, fake_cache):
    idx = index_server()
    held_cache(fake_cache, idx.prefix)
    wait_caches(idx)
    pids = [make_pid(node=i) for i in range(1, 31)]
    for i, pid in enumerate(pids, start=1):
        r = idx.join(pid, CH)
        assert r.status == 200, r
        j = r.json()
        assert j["channel"] == CH and j["peer_id"] == pid, j
        assert j["n"] == i, j
        assert j["view"] == view_num(i), (i, j)
        assert j["heartbeat_s"] == 1 and j["expire_s"] == 3, j
        ids = [m["peer_id"] for m in j["members"]]
        assert pid not in ids, "a peer got itself"
        assert len(ids) == len(set(ids)), ids
        assert len(ids) == min(i - 1, j["view"]), (i, j)
        assert j["caches"][0]["cache_id"] == "north-1" and j["cache_state"] == "held", j
        for m in j["members"]:
            assert set(m) == {"peer_id", "listen_addr", "bandwidth_kbps", "role", "proximity"}, m
            assert m["role"] == "viewer" and m["bandwidth_kbps"] == 1000, m
    # Joining again refreshes, never duplicates.
    r = idx.join(pids[0], CH, listen_addr="[2001:db8::7]:6000", role="publisher", bandwidth=5)
    assert r.status == 200 and r.json()["n"] == 30, r
    r = idx.members(CH, pids[1])
    assert r.status == 200, r
    j = r.json()
    assert j["n"] == 30 and j["view"] == view_num(30) and "caches" not in j, j
    assert len(j["members"]) == view_num(30) and pids[1] not in [m["peer_id"] for m in j["members"]]
    # Without peer_id: a random sample, no proximity.
    j = idx.members(CH).json()
    assert len(j["members"]) == view_num(30) and "proximity" not in j["members"][0], j
    by = {m["peer_id"]: m for m in idx.members(CH, pids[2]).json()["members"]}
    if pids[0] in by:
        assert by[pids[0]] == {"peer_id": pids[0], "listen_addr": "[2001:db8::7]:6000",
                               "bandwidth_kbps": 5, "role": "publisher", "proximity": 5}
    # Unknown channel: empty list, no error.
    j = idx.members("nobody-here", pids[0]).json()
    assert j["n"] == 0 and j["members"] == [], j


def test_nearer_peers_first(index_server, fake_cache):
    """Peers from other countries, carriers, regions, cities and areas: the
    closest come first, every class complete before the next one starts,
    random among equals (seed 001 §3.1.2)."""
    idx = index_server()
    held_cache(fake_cache, idx.prefix)
    wait_caches(idx)
    me = make_pid(country=45, nettype=1, region=10, city=3, area=700, node=1)
    layout = [  # (fields, count, expected proximity)
        (dict(country=45, nettype=1, region=10, city=3, area=700), 2, 5),
        (dict(country=45, nettype=1, region=10, city=3, area=701), 3, 4),
        (dict(country=45, nettype=1, region=10, city=4, area=700), 3, 3),
        (dict(country=45, nettype=1, region=11, city=3, area=700), 4, 2),
        (dict(country=45, nettype=2, region=10, city=3, area=700), 4, 1),
        (dict(country=46, nettype=1, region=10, city=3, area=700), 10, 0),
    ]
    node = 100
    want = {}
    for fields, count, prox in layout:
        for _ in range(count):
            node += 1
            pid = make_pid(node=node, **fields)
            assert proximity(me, pid) == prox
            want[pid] = prox
            assert idx.join(pid, CH).status == 200
    r = idx.join(me, CH)
    assert r.status == 200, r
    j = r.json()
    n = len(want) + 1
    assert j["n"] == n and j["view"] == view_num(n) == 10, j
    got = [(m["peer_id"], m["proximity"]) for m in j["members"]]
    for pid, prox in got:
        assert want[pid] == prox == proximity(me, pid), (pid, prox)
    assert [p for _, p in got] == [5, 5, 4, 4, 4, 3, 3, 3, 2, 2], got
    # Random among equals: the two proximity-2 places and the order inside
    # each class change between calls.
    picks, orders = set(), set()
    for _ in range(30):
        ms = idx.members(CH, me).json()["members"]
        assert [m["proximity"] for m in ms] == [5, 5, 4, 4, 4, 3, 3, 3, 2, 2], ms
        picks.add(tuple(sorted(m["peer_id"] for m in ms[8:])))
        orders.add(tuple(m["peer_id"] for m in ms[2:5]))
    assert len(picks) > 2, picks
    assert len(orders) > 1, orders


def test_large_swarm_window(index_server, fake_cache, redis_server):
    """20000 peers written straight into the documented Redis layout; a
    join still gets its own small classes complete and samples the big
    ones at random (the window/sampling path, not a scan)."""
    idx = index_server()
    held_cache(fake_cache, idx.prefix)
    wait_caches(idx)
    me = make_pid(country=45, nettype=1, region=10, city=3, area=700, node=1)
    now = int(time.time() * 1000)
    sw = "%sswarm:{north:%s}" % (idx.prefix, CH)
    near = {make_pid(country=45, nettype=1, region=10, city=3, area=700, node=10 + i): 5 for i in range(3)}
    near.update({make_pid(country=45, nettype=1, region=10, city=9, area=5, node=10 + i): 3 for i in range(4)})
    big = [make_pid(country=45, nettype=2, region=(i % 60) + 1, city=(i % 7) + 1, area=i, node=i % 65536)
           for i in range(20000)]
    with Resp("127.0.0.1", redis_server.port) as r:
        for start in range(0, len(big) + len(near), 2000):
            chunk = (list(near) + big)[start:start + 2000]
            cmds = [["ZADD", sw] + sum([[now, p] for p in chunk], []),
                    ["ZADD", sw + ":lex"] + sum([[0, p] for p in chunk], []),
                    ["HSET", sw + ":info"] + sum([[p, "203.0.113.9:4000 800 viewer"] for p in chunk], [])]
            for rep in r.pipeline(cmds):
                assert not isinstance(rep, Exception), rep
    n = len(set(big)) + len(near) + 1
    j = idx.join(me, CH).json()
    assert j["n"] == n and j["view"] == view_num(n), j
    ms = j["members"]
    assert len(ms) == j["view"], j
    assert [m["proximity"] for m in ms[:7]] == [5, 5, 5, 3, 3, 3, 3], ms[:8]
    assert {m["peer_id"] for m in ms[:7]} == set(near)
    assert all(m["proximity"] == 1 for m in ms[7:]), ms
    seen = set()
    for _ in range(5):
        seen |= {m["peer_id"] for m in idx.members(CH, me).json()["members"][7:]}
    # Random blocks spread over the big class: far more distinct peers than one window.
    assert len(seen) > 3 * (j["view"] - 7), len(seen)
    regions = {int(p[3:5], 16) >> 2 for p in seen}
    assert len(regions) > 3, regions


def test_heartbeat_expiry_and_leave(index_server, fake_cache):
    idx = index_server()
    held_cache(fake_cache, idx.prefix)
    wait_caches(idx)
    a, b, c = (make_pid(node=i) for i in (1, 2, 3))
    for p in (a, b, c):
        assert idx.join(p, CH).status == 200
    r = idx.heartbeat(a, CH)
    assert r.status == 200, r
    assert r.json() == {"channel": CH, "peer_id": a, "n": 3, "view": view_num(3), "heartbeat_s": 1}
    # leave: gone at once
    r = idx.leave(c, CH)
    assert r.status == 200 and r.json()["removed"] is True and r.json()["n"] == 2, r
    assert idx.leave(c, CH).json()["removed"] is False
    assert_error(idx.heartbeat(c, CH), 404, "not_member")
    assert c not in [m["peer_id"] for m in idx.members(CH, a).json()["members"]]
    # b stays silent: after 3 missed intervals (3 s) it drops out while a
    # keeps beating.
    t0 = time.monotonic()
    while time.monotonic() - t0 < 4.5:
        r = idx.heartbeat(a, CH)
        assert r.status == 200, r
        time.sleep(0.5)
    assert r.json()["n"] == 1, r
    assert idx.members(CH, a).json()["members"] == []
    assert_error(idx.heartbeat(b, CH), 404, "not_member")
    # ...and may join again.
    assert idx.join(b, CH).json()["n"] == 2
    assert_error(idx.heartbeat(make_pid(node=99), CH), 404, "not_member")
    assert_error(idx.heartbeat(a, "other-channel"), 404, "not_member")
    m = idx.metrics()
    assert "p2pcdn_index_heartbeats_total" in m and "p2pcdn_index_leaves_total 2" in m, m


def test_two_instances_agree(index_server, fake_cache):
    i1 = index_server()
    i2 = index_server()
    held_cache(fake_cache, i1.prefix)
    wait_caches(i1)
    wait_caches(i2)
    pids = [make_pid(node=i) for i in range(1, 9)]
    for k, p in enumerate(pids):
        srv = i1 if k % 2 else i2
        assert srv.join(p, CH).json()["n"] == k + 1
    for srv in (i1, i2):
        j = srv.members(CH, pids[0]).json()
        assert j["n"] == 8 and len(j["members"]) == min(7, view_num(8)), j
    assert i2.heartbeat(pids[1], CH).json()["n"] == 8   # joined on i1
    assert i1.leave(pids[2], CH).json()["removed"] is True   # joined on i2
    assert_error(i2.heartbeat(pids[2], CH), 404, "not_member")
    assert i1.members(CH, pids[0]).json()["n"] == i2.members(CH, pids[0]).json()["n"] == 7
    wait_until(lambda: i1.status()["peers"] == 7 and i2.status()["peers"] == 7, timeout=5,
               what="both sweepers to count 7 peers")
    st = i1.status()
    assert st["recent_channels"] == [{"channel": CH, "peers": 7}], st


# ------------------------------------------------------------- pull path


@pytest.fixture
def pull_setup(route_server, index_server, fake_cache, redis_server):
    """A route-server knowing domains north and south, a south cache holding
    CH (registry entries only), three north stand-in caches of different
    load and two north index-servers, all on the route-server's prefix."""
    rs = route_server()
    rs.put_domain("north", ["http://127.0.0.1:7004"], 52.5, 13.4)
    rs.put_domain("south", ["http://127.0.0.1:7104"], 48.1, 11.6)
    p = rs.prefix
    with Resp("127.0.0.1", redis_server.port) as r:
        r.command("HSET", "%scache:{south-1}" % p, "domain", "south", "url", "http://192.0.2.10:7005",
                  "load", 10, "capacity", 1000)
        r.command("ZADD", "%schan:{%s}:caches" % (p, CH), int(time.time()) + 600, "south-1")
    caches = [fake_cache(p, "north-a", "north", 500), fake_cache(p, "north-b", "north", 100),
              fake_cache(p, "north-c", "north", 900)]
    route_url = "http://127.0.0.1:%d" % rs.port
    idx = [index_server(route_url=route_url, prefix=p), index_server(route_url=route_url, prefix=p)]
    for i in idx:
        wait_caches(i, 3)
    return rs, caches, idx


def test_new_channel_one_pull(pull_setup):
    rs, caches, idx = pull_setup
    na, nb, nc = caches
    nb.delay = 0.4  # the pull takes a while: the other joins arrive meanwhile

    def join(k):
        return idx[k % 2].join(make_pid(node=k + 1), CH)

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        res = list(ex.map(join, range(16)))
    for r in res:
        assert r.status == 200, r
        j = r.json()
        assert [c["cache_id"] for c in j["caches"]] == ["north-b"], j
        assert j["caches"][0]["url"] == nb.url
        assert j["cache_state"] in ("pull_started", "pulling", "held"), j
    states = [r.json()["cache_state"] for r in res]
    assert states.count("pull_started") == 1, states
    assert na.pulls() == [] and nc.pulls() == [], "a pull on a more loaded cache"
    pulls = nb.pulls()
    assert len(pulls) == 1, pulls
    body = json.loads(pulls[0]["body"])
    assert body["channel"] == CH, body
    assert [s["cache_id"] for s in body["sources"]] == ["south-1"], body
    assert body["sources"][0]["url"] == "http://192.0.2.10:7005"
    kind, expiry, payload = decode_token(pulls[0]["auth"].split(" ", 1)[1])
    assert kind == 3 and payload == {"ch": CH}, (kind, payload)
    assert time.time() < expiry <= time.time() + 61
    # The cache registered the channel: later joins find it held, no new pull.
    r = idx[0].join(make_pid(node=200), CH)
    assert r.json()["cache_state"] == "held" and r.json()["caches"][0]["cache_id"] == "north-b", r
    assert len(nb.pulls()) == 1
    total = sum(int(float(l.split()[-1])) for i in idx for l in i.metrics().split("\n")
                if l.startswith("p2pcdn_index_pulls_started_total"))
    assert total == 1


def test_pull_refused_tries_next(pull_setup):
    rs, caches, idx = pull_setup
    na, nb, nc = caches
    nb.answer = 503
    r = idx[0].join(make_pid(node=1), "sport2")
    # no south holder of sport2: nobody publishes it
    assert_error(r, 404, "no_source")
    assert nb.pulls() == []
    with Resp("127.0.0.1", rs.redis.port) as red:
        red.command("ZADD", "%schan:{sport}:caches" % rs.prefix, int(time.time()) + 600, "south-1")
    r = idx[0].join(make_pid(node=1), "sport")
    assert r.status == 200, r
    assert r.json()["caches"][0]["cache_id"] == "north-a" and r.json()["cache_state"] == "pull_started"
    assert len(nb.pulls()) == 1 and len(na.pulls()) == 1 and nc.pulls() == []
    # The failed join left no member behind.
    assert idx[1].members("sport2").json()["n"] == 0


def test_route_down(pull_setup, fake_cache):
    rs, caches, idx = pull_setup
    na, nb, nc = caches
    nb.hold("held-ch", ttl=600)
    assert rs.stop() == 0
    # A channel a domain cache holds keeps working.
    r = idx[0].join(make_pid(node=1), "held-ch")
    assert r.status == 200 and r.json()["cache_state"] == "held", r
    # A new one: a clear 503, nothing stored.
    r = idx[1].join(make_pid(node=2), CH)
    j = assert_error(r, 503, "route_unavailable")
    assert r.header("Retry-After"), r.headers
    assert "route-server" in j["message"]
    assert idx[0].members(CH).json()["n"] == 0
    # Within negative_ms the failure is remembered (no route call); after it
    # the route-server is asked again.
    assert_error(idx[0].join(make_pid(node=3), CH), 503, "route_unavailable")
    assert all(c.pulls() == [] for c in caches)
    assert idx[0].heartbeat(make_pid(node=1), "held-ch").status == 200
    rs.start()
    time.sleep(0.6)
    r = idx[0].join(make_pid(node=4), CH)
    assert r.status == 200 and r.json()["cache_state"] == "pull_started", r
    assert len(nb.pulls()) == 1


def test_no_cache_in_domain(index_server):
    idx = index_server(route_url="http://127.0.0.1:%d" % free_port())
    r = idx.join(make_pid(node=1), CH)
    assert_error(r, 503, "no_cache")
    assert idx.members(CH).json()["n"] == 0
    assert_error(idx.publish(make_pid(node=1), CH), 503, "no_cache")


def test_publish(index_server, fake_cache):
    idx = index_server()
    a = fake_cache(idx.prefix, "north-a", "north", 300)
    b = fake_cache(idx.prefix, "north-b", "north", 200)
    fake_cache(idx.prefix, "south-z", "south", 0)  # another domain: never chosen
    wait_caches(idx, 2)
    pid = make_pid(node=77)
    r = idx.publish(pid, "live1")
    assert r.status == 200, r
    j = r.json()
    assert j["cache"]["cache_id"] == "north-b" and j["cache"]["url"] == b.url, j
    assert j["cache_state"] == "assigned"
    assert j["upload"] == b.url + "/v1/live/live1/chunks/{seq}"
    kind, expiry, payload = decode_token(j["token"])
    assert kind == 2 and payload == {"ch": "live1", "peer": pid}, payload
    assert expiry == j["expires_at"] and 3500 < expiry - time.time() <= 3601
    # A channel one domain cache already holds goes to that cache.
    a.hold("live2")
    j = idx.publish(pid, "live2").json()
    assert j["cache"]["cache_id"] == "north-a" and j["cache_state"] == "held", j
    assert_error(idx.publish("nothex", "live1"), 400, "bad_request")


def test_bad_input(index_server, fake_cache):
    idx = index_server()
    held_cache(fake_cache, idx.prefix)
    wait_caches(idx)
    good = {"peer_id": make_pid(node=5), "channel": CH, "listen_addr": "198.51.100.1:4000"}
    cases = [
        (b"", 400, "bad_json"), (b"{", 400, "bad_json"), (b"[]", 400, "expected_object"),
        (dict(good, extra=1), 400, "unknown_field"),
        (dict(good, peer_id="xyz"), 400, "bad_request"),
        (dict(good, peer_id="0123456789abcdef"), 400, "bad_request"),
        (dict(good, peer_id=12), 400, "bad_request"),
        (dict(good, channel=""), 400, "bad_request"),
        (dict(good, channel="a/b"), 400, "bad_request"),
        (dict(good, channel="x" * 129), 400, "bad_request"),
        (dict(good, channel="caf\u00e9"), 400, "bad_request"),
        (dict(good, listen_addr="198.51.100.1"), 400, "bad_request"),
        (dict(good, listen_addr="198.51.100.1:0"), 400, "bad_request"),
        (dict(good, listen_addr="host:80"), 400, "bad_request"),
        (dict(good, bandwidth_kbps=-1), 400, "bad_request"),
        (dict(good, bandwidth_kbps=1.5), 400, "bad_request"),
        (dict(good, role="admin"), 400, "bad_request"),
        ({k: v for k, v in good.items() if k != "listen_addr"}, 400, "bad_request"),
    ]
    for body, status, code in cases:
        assert_error(idx.api("POST", "/v1/join", body), status, code)
    for path in ("/v1/heartbeat", "/v1/leave", "/v1/publish"):
        assert_error(idx.api("POST", path, good), 400, "unknown_field")  # listen_addr
        assert_error(idx.api("POST", path, {"peer_id": good["peer_id"]}), 400, "bad_request")
        assert_error(idx.api("POST", path, b"\x00\xff"), 400, "bad_json")
    assert_error(idx.api("GET", "/v1/channels/a%20b/members"), 400, "bad_request")
    assert_error(idx.api("GET", "/v1/channels/%s/members?peer_id=zz" % CH), 400, "bad_request")
    assert_error(idx.api("GET", "/v1/join"), 405)
    assert_error(idx.api("POST", "/v1/join", b"{" + b" " * 70000 + b"}"), 413, "body_too_large")
    # Nothing was stored.
    assert idx.members(CH).json()["n"] == 0
    st = idx.status()
    assert st["joins_total"] == 0, st
    assert idx.join(good["peer_id"], CH).status == 200


def test_redis_down(index_server, redis_factory):
    red = redis_factory()
    idx = index_server(redis=red)
    red.kill()
    r = idx.join(make_pid(node=1), CH)
    assert_error(r, 503, "redis_unavailable")
    assert r.header("Retry-After")
    assert_error(idx.heartbeat(make_pid(node=1), CH), 503, "redis_unavailable")
    assert idx.admin("GET", "/readyz").status == 503
    red.start()
    wait_until(lambda: idx.admin("GET", "/readyz").status == 200, timeout=5, what="/readyz")
    wait_until(lambda: idx.leave(make_pid(node=1), CH).status == 200, timeout=5,
               what="leave after Redis came back")


def test_reload_and_status(index_server, fake_cache):
    idx = index_server()
    held_cache(fake_cache, idx.prefix)
    wait_caches(idx)
    for i in range(1, 6):
        idx.join(make_pid(node=i), CH)
    idx.update_config({"index": {"view_c": 0, "view_min": 1, "heartbeat_s": 7}})
    idx.signal(signal.SIGHUP)
    wait_until(lambda: idx.status()["heartbeat_s"] == 7, timeout=5, what="reload")
    j = idx.join(make_pid(node=9), CH).json()
    assert j["view"] == max(1, math.ceil(math.log(6))) and j["heartbeat_s"] == 7, j
    st = idx.status()
    assert st["domain"] == "north" and st["view"]["c"] == 0, st
    assert st["caches"][0]["cache_id"] == "north-1"
    assert st["joins_total"] == 6
    m = idx.metrics()
    for name in ("p2pcdn_index_joins_total 6", "p2pcdn_index_view_size_count",
                 "p2pcdn_index_channels", "p2pcdn_index_peers", "p2pcdn_redis_up 1"):
        assert name in m, name
    # A broken reload keeps the running values.
    idx.update_config({"index": {"cache_key": "nothex"}})
    idx.signal(signal.SIGHUP)
    time.sleep(0.5)
    assert idx.join(make_pid(node=10), CH).status == 200
    assert "keeping the running configuration" in idx.stderr()


def test_shutdown_during_pull(pull_setup):
    """SIGTERM while a join waits on a slow cache: the join gets an answer,
    the daemon exits 0 without sanitizer reports (checked by the fixture)."""
    rs, caches, idx = pull_setup
    for c in caches:
        c.delay = 4.0
    idx[0].update_config({"index": {"pull_timeout_ms": 3000}})
    idx[0].signal(signal.SIGHUP)
    time.sleep(0.5)
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        fut = ex.submit(idx[0].join, make_pid(node=1), CH)
        wait_until(lambda: caches[1].pulls(), timeout=5, what="the pull to reach the cache")
        idx[0].signal(signal.SIGTERM)
        r = fut.result(timeout=20)
    assert r.status in (200, 503), r
    assert idx[0].wait_exit(20) == 0
