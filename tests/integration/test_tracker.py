# SPDX-License-Identifier: MIT
"""tracker against DESIGN.md ("Tracker") and its config table: HTTP announce
and scrape (BEP 3, 7, 23, 48), UDP (BEP 15) with real datagrams, whitelist
mode, the program catalog and .torrent store in a real PostgreSQL, the admin
views, reload and start-up failures.

Every reply of /announce and /scrape goes through a strict bencode decoder
(sorted keys, canonical numbers, nothing trailing). Each test has a fresh
database; the tracker is stopped with SIGTERM afterwards and must exit 0
without sanitizer reports."""

import hashlib
import random
import signal
import socket
import struct
import time
import urllib.parse

from p2ptest import (assert_error, bdecode, bencode, free_port, metric_value, parse_metrics, pct_bytes,
                     wait_until)

UDP_MAGIC = 0x41727101980
REPLY_KEYS = {b"complete", b"downloaded", b"incomplete", b"interval", b"min interval", b"peers"}


# ------------------------------------------------------------- helpers


def ih(tag):
    """A 20-byte info_hash named by a test tag."""
    return hashlib.sha1(tag.encode()).digest()


def peer_id(port):
    return b"-PT0001-" + (b"%012d" % port)


def announce_query(info_hash, port, **params):
    q = {"peer_id": pct_bytes(peer_id(port)), "port": port, "uploaded": 0, "downloaded": 0, "left": 1000}
    q.update(params)
    return "info_hash=%s&" % pct_bytes(info_hash) + "&".join(
        "%s=%s" % (k, v) for k, v in q.items() if v is not None)


def announce_resp(t, info_hash, port, v6=False, **params):
    path = "/announce?" + announce_query(info_hash, port, **params)
    return t.get6(path) if v6 else t.get(path)


def announce(t, info_hash, port, v6=False, **params):
    """A successful announce: returns the decoded reply dict."""
    r = announce_resp(t, info_hash, port, v6=v6, **params)
    assert r.status == 200, r
    d = bdecode(r.body)
    assert isinstance(d, dict), d
    assert b"failure reason" not in d, "announce refused: %r" % d
    return d


def failure(r):
    """Checks a BitTorrent failure: HTTP 200, a bencoded dict holding only a
    non-empty "failure reason" string. Returns the reason as str."""
    assert r.status == 200, "a tracker failure must be HTTP 200 (BitTorrent clients read the body): %r" % r
    d = bdecode(r.body)
    assert isinstance(d, dict) and set(d) == {b"failure reason"}, "not a bare failure reply: %r" % d
    assert isinstance(d[b"failure reason"], bytes) and d[b"failure reason"], d
    return d[b"failure reason"].decode()


def peers4(blob):
    assert isinstance(blob, bytes) and len(blob) % 6 == 0, "compact peers not 6-byte records: %r" % blob
    return [(socket.inet_ntop(socket.AF_INET, blob[i:i + 4]), struct.unpack(">H", blob[i + 4:i + 6])[0])
            for i in range(0, len(blob), 6)]


def peers6(blob):
    assert isinstance(blob, bytes) and len(blob) % 18 == 0, "compact peers6 not 18-byte records: %r" % blob
    return [(socket.inet_ntop(socket.AF_INET6, blob[i:i + 16]), struct.unpack(">H", blob[i + 16:i + 18])[0])
            for i in range(0, len(blob), 18)]


def ports_of(reply):
    out = [p for _, p in peers4(reply.get(b"peers", b""))]
    out += [p for _, p in peers6(reply.get(b"peers6", b""))]
    return out


def scrape(t, hashes, v6=False):
    path = "/scrape?" + "&".join("info_hash=" + pct_bytes(h) for h in hashes)
    r = t.get6(path) if v6 else t.get(path)
    assert r.status == 200, r
    d = bdecode(r.body)
    assert b"failure reason" not in d, "scrape refused: %r" % d
    assert set(d) >= {b"files"} and isinstance(d[b"files"], dict), d
    return d[b"files"]


def counts(t, h):
    f = scrape(t, [h])
    assert set(f) == {h}, f
    c = f[h]
    assert set(c) >= {b"complete", b"downloaded", b"incomplete"}, c
    return c[b"complete"], c[b"incomplete"], c[b"downloaded"]


def metrics(t):
    r = t.admin("GET", "/metrics")
    assert r.status == 200, r
    return parse_metrics(r.text)


def status(t):
    r = t.admin("GET", "/status")
    assert r.status == 200, r
    return r.json()


class Udp:
    """A BEP 15 client on its own socket (so its own source port)."""

    def __init__(self, port, host="127.0.0.1", timeout=3.0):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.settimeout(timeout)
        self.s.connect((host, port))

    def close(self):
        self.s.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def tx(self, pkt):
        self.s.send(pkt)
        return self.s.recv(65536)

    def connect(self):
        tid = random.getrandbits(32)
        r = self.tx(struct.pack(">QII", UDP_MAGIC, 0, tid))
        assert len(r) == 16, "connect reply of %d bytes: %r" % (len(r), r)
        action, rtid = struct.unpack(">II", r[:8])
        assert (action, rtid) == (0, tid), (action, rtid, tid)
        return r[8:16]

    def announce_pkt(self, cid, tid, info_hash, port, left=1000, event=0, numwant=-1, ip=0, downloaded=0,
                     uploaded=0, key=0x1234):
        return (cid + struct.pack(">II", 1, tid) + info_hash + peer_id(port)
                + struct.pack(">QQQIIIiH", downloaded, left, uploaded, event, ip, key, numwant, port))

    def announce(self, cid, info_hash, port, **kw):
        """Returns (interval, leechers, seeders, [(ip, port)]) or raises
        AssertionError with the tracker's error message."""
        tid = random.getrandbits(32)
        pkt = self.announce_pkt(cid, tid, info_hash, port, **kw)
        assert len(pkt) == 98
        r = self.tx(pkt)
        action, rtid = struct.unpack(">II", r[:8])
        assert rtid == tid, "transaction id %d, sent %d" % (rtid, tid)
        assert action == 1, "announce answered action %d: %r" % (action, r[8:])
        assert len(r) >= 20 and (len(r) - 20) % 6 == 0, "announce reply of %d bytes" % len(r)
        interval, leechers, seeders = struct.unpack(">III", r[8:20])
        return interval, leechers, seeders, peers4(r[20:])

    def scrape(self, cid, hashes):
        tid = random.getrandbits(32)
        r = self.tx(cid + struct.pack(">II", 2, tid) + b"".join(hashes))
        action, rtid = struct.unpack(">II", r[:8])
        assert (action, rtid) == (2, tid), (action, rtid, r[8:])
        assert len(r) == 8 + 12 * len(hashes), "scrape reply of %d bytes for %d hashes" % (len(r), len(hashes))
        return [struct.unpack(">III", r[8 + 12 * i:20 + 12 * i]) for i in range(len(hashes))]

    def error(self, pkt):
        """Sends pkt expecting an error reply; returns its message."""
        tid = struct.unpack(">I", pkt[12:16])[0]
        r = self.tx(pkt)
        action, rtid = struct.unpack(">II", r[:8])
        assert action == 3, "expected an error (action 3), got action %d: %r" % (action, r)
        assert rtid == tid, "error for transaction %d, sent %d" % (rtid, tid)
        return r[8:].decode("utf-8", "replace")


def torrent_bytes(name="file.bin", length=100000, piece_length=16384, extra_info=None, announce_url=None):
    pieces = -(-length // piece_length)
    info = {"name": name, "piece length": piece_length, "length": length,
            "pieces": b"".join(hashlib.sha1(b"%s-%d" % (name.encode(), i)).digest() for i in range(pieces))}
    info.update(extra_info or {})
    top = {"info": info, "created by": "p2pcdn tests"}
    if announce_url:
        top["announce"] = announce_url
    return bencode(top), hashlib.sha1(bencode(info)).digest()


def register(t, name, source, token=True):
    r = t.api("POST", "/v1/programs", {"name": name, "source": source}, token=token)
    assert r.status in (200, 201), r
    j = r.json()
    assert j["info_hash"] == hashlib.sha1(source.encode()).hexdigest(), j
    return bytes.fromhex(j["info_hash"])


def programs(t, query=""):
    r = t.api("GET", "/v1/programs" + query)
    assert r.status == 200, r
    j = r.json()
    assert isinstance(j.get("programs"), list), j
    return j["programs"]


# ------------------------------------------------------ HTTP announce


def test_announce_compact_ipv4(tracker):
    t = tracker()
    h = ih("compact")
    r = announce(t, h, 6001, event="started")
    assert set(r) == REPLY_KEYS, r
    assert r[b"peers"] == b"" and r[b"incomplete"] == 1 and r[b"complete"] == 0 and r[b"downloaded"] == 0, r

    r = announce(t, h, 6002, event="started", compact=1)
    assert peers4(r[b"peers"]) == [("127.0.0.1", 6001)], r
    assert (r[b"complete"], r[b"incomplete"]) == (0, 2), r

    r = announce(t, h, 6003, left=0, event="started")
    assert sorted(peers4(r[b"peers"])) == [("127.0.0.1", 6001), ("127.0.0.1", 6002)], r
    assert (r[b"complete"], r[b"incomplete"]) == (1, 2), r
    # absent compact means compact too (BEP 23 trackers default to it)
    r = announce(t, h, 6004, compact=None)
    assert isinstance(r[b"peers"], bytes) and len(peers4(r[b"peers"])) == 3, r


def test_announce_non_compact(tracker):
    t = tracker()
    h = ih("noncompact")
    announce(t, h, 6101)
    announce(t, h, 6102, left=0)
    r = announce(t, h, 6103, compact=0)
    assert isinstance(r[b"peers"], list), "compact=0 must give a list of dicts: %r" % r
    got = []
    for p in r[b"peers"]:
        assert isinstance(p, dict) and {b"ip", b"port"} <= set(p) <= {b"ip", b"port", b"peer id"}, p
        got.append((p[b"ip"], p[b"port"]))
    assert sorted(got) == [(b"127.0.0.1", 6101), (b"127.0.0.1", 6102)], r
    r = announce(t, h, 6104, compact=0, no_peer_id=1)
    assert all(b"peer id" not in p for p in r[b"peers"]), r


def test_announce_ipv6_listener_gives_peers6(tracker):
    t = tracker(ipv6=True)
    h = ih("v6")
    announce(t, h, 7001)  # IPv4 peer
    r = announce(t, h, 7002, v6=True)
    assert b"peers6" not in r or r[b"peers6"] == b"", "nobody else on IPv6 yet: %r" % r
    assert peers4(r[b"peers"]) == [("127.0.0.1", 7001)], r

    r = announce(t, h, 7003, v6=True)
    assert b"peers6" in r, "an IPv6 announce with an IPv6 peer in the swarm must carry peers6 (BEP 7): %r" % r
    assert peers6(r[b"peers6"]) == [("::1", 7002)], r
    assert peers4(r[b"peers"]) == [("127.0.0.1", 7001)], r
    assert (r[b"complete"], r[b"incomplete"]) == (0, 3), r

    # the IPv4 peer learns the IPv6 ones too
    r = announce(t, h, 7001)
    assert sorted(peers6(r.get(b"peers6", b""))) == [("::1", 7002), ("::1", 7003)], r
    assert peers4(r[b"peers"]) == [], r

    r = announce(t, h, 7004, v6=True, compact=0)
    got = sorted((p[b"ip"], p[b"port"]) for p in r[b"peers"])
    assert got == [(b"127.0.0.1", 7001), (b"::1", 7002), (b"::1", 7003)], r

    s = status(t)
    assert (s["peers_ipv4"], s["peers_ipv6"]) == (1, 3), s


def test_binary_info_hash_escapes(tracker):
    t = tracker()
    h = bytes([0x00, 0x25, 0x26, 0x3D, 0x2B, 0x20, 0x3F, 0xFF, 0x80, 0x0A,
               0x0D, 0x23, 0x2F, 0x00, 0x41, 0x7E, 0x2E, 0x2D, 0x5F, 0x00])
    assert len(h) == 20

    def mixed(b, space_plus=False):
        out = []
        for x in b:
            c = chr(x)
            if c.isalnum() and x < 128 or c in "-._~":
                out.append(c)
            elif x == 0x20 and space_plus:
                out.append("+")
            else:
                out.append("%%%02x" % x)  # lowercase hex digits
        return "".join(out)

    forms = [pct_bytes(h), mixed(h), mixed(h, space_plus=True)]
    assert len(set(forms)) == 3
    for i, form in enumerate(forms):
        q = "info_hash=%s&peer_id=%s&port=%d&left=5" % (form, pct_bytes(peer_id(7100 + i)), 7100 + i)
        r = t.get("/announce?" + q)
        assert r.status == 200, r
        d = bdecode(r.body)
        assert b"failure reason" not in d, "form %r refused: %r" % (form, d)
        assert d[b"incomplete"] == i + 1, "form %r did not reach the same torrent: %r" % (form, d)
    files = scrape(t, [h])
    assert list(files) == [h], "scrape key must be the raw 20 bytes: %r" % files
    assert files[h][b"incomplete"] == 3, files
    # a hash that is one byte off is another torrent
    assert scrape(t, [h[:-1] + b"\x01"])[h[:-1] + b"\x01"][b"incomplete"] == 0
    # escapes cut short or malformed are no 20-byte hash
    for bad in (pct_bytes(h)[:-1], pct_bytes(h)[:-2], pct_bytes(h[:19]) + "%G0"):
        reason = failure(t.get("/announce?info_hash=%s&port=7199&left=1" % bad))
        assert "info_hash" in reason, reason


def test_failure_reasons_for_bad_input(tracker):
    t = tracker()
    h = pct_bytes(ih("bad"))
    pid = pct_bytes(peer_id(1))
    ok = "info_hash=%s&peer_id=%s&port=6881&left=10" % (h, pid)
    assert failure_free(t.get("/announce?" + ok))
    cases = [
        ("", "info_hash"),
        ("peer_id=%s&port=6881&left=10" % pid, "info_hash"),
        ("info_hash=%s&port=6881" % pct_bytes(b"x" * 19), "info_hash"),
        ("info_hash=%s&port=6881" % pct_bytes(b"x" * 21), "info_hash"),
        ("info_hash=&port=6881", "info_hash"),
        ("info_hash=%s&info_hash=%s&port=6881" % (h, h), "info_hash"),
        ("info_hash=%s" % h, "port"),
        ("info_hash=%s&port=0" % h, "port"),
        ("info_hash=%s&port=65536" % h, "port"),
        ("info_hash=%s&port=-1" % h, "port"),
        ("info_hash=%s&port=68x1" % h, "port"),
        ("info_hash=%s&port=" % h, "port"),
        ("info_hash=%s&port=99999999999999999999999" % h, "port"),
        ("info_hash=%s&port=6881&event=bogus" % h, "event"),
        ("info_hash=%s&port=6881&event=STARTED" % h, "event"),
        ("info_hash=%s&port=6881&event=%%00started" % h, "event"),
        ("info_hash=%s&port=6881&left=-1" % h, "left"),
        ("info_hash=%s&port=6881&uploaded=1e9" % h, "uploaded"),
        ("info_hash=%s&port=6881&numwant=-5" % h, "numwant"),
        ("info_hash=%s&port=6881&numwant=many" % h, "numwant"),
        ("info_hash=%s&port=6881&peer_id=short" % h, "peer_id"),
        ("%%%%%%", "info_hash"),
        ("&&&===&=&", "info_hash"),
        ("!@$^*()[]{}|", "info_hash"),
        ("info_hash", "info_hash"),
        ("info_hash=%", "info_hash"),
    ]
    before = metric_value(metrics(t), "p2pcdn_tracker_failures_total", proto="http") or 0
    for q, word in cases:
        reason = failure(t.get("/announce?" + q))
        assert word in reason, "query %r: reason %r does not mention %r" % (q, reason, word)
    # scrape's own bad inputs
    assert "info_hash" in failure(t.get("/scrape?info_hash=%s" % pct_bytes(b"y" * 19)))
    too_many = "&".join("info_hash=" + pct_bytes(ih("many%d" % i)) for i in range(65))
    assert "too many" in failure(t.get("/scrape?" + too_many))
    after = metric_value(metrics(t), "p2pcdn_tracker_failures_total", proto="http")
    assert after - before == len(cases) + 2, (before, after)
    # nothing bad reached the store: only the one good torrent is there
    s = status(t)
    assert (s["torrents"], s["peers"]) == (1, 1), s
    assert t.alive()


def failure_free(r):
    assert r.status == 200, r
    d = bdecode(r.body)
    assert b"failure reason" not in d, d
    return d


def test_numwant_caps(tracker):
    t = tracker({"tracker": {"numwant_default": 3, "numwant_max": 5}})
    h = ih("numwant")
    for p in range(8000, 8010):
        announce(t, h, p, numwant=0)
    for asked, want in ((100, 5), (5, 5), (4, 4), (2, 2), (0, 0), (None, 3), (1000000, 5),
                        (99999999999, 5)):
        r = announce(t, h, 8100, numwant=asked)
        got = ports_of(r)
        assert len(got) == want, "numwant=%r: %d peers, want %d: %r" % (asked, len(got), want, got)
        assert len(set(got)) == len(got) and 8100 not in got, got
    with Udp(t.udp_port) as u:
        cid = u.connect()
        assert len(u.announce(cid, h, 8200, numwant=100)[3]) == 5
        assert len(u.announce(cid, h, 8200, numwant=-1)[3]) == 3
        assert len(u.announce(cid, h, 8200, numwant=2)[3]) == 2


def test_seeder_gets_leechers_only_and_nobody_gets_itself(tracker):
    t = tracker()
    h = ih("seeders")
    seeders, leechers = [8301, 8302, 8303, 8304], [8401, 8402, 8403]
    for p in seeders:
        announce(t, h, p, left=0, numwant=0)
    for p in leechers:
        announce(t, h, p, numwant=0)
    for _ in range(15):
        r = announce(t, h, 8305, left=0)
        assert sorted(ports_of(r)) == leechers, "a seeder must get the leechers and only them: %r" % r
    for _ in range(15):
        r = announce(t, h, 8404)
        assert sorted(ports_of(r)) == sorted(seeders + leechers + [8305]), "a leecher gets everyone: %r" % r
    with Udp(t.udp_port) as u:
        cid = u.connect()
        _, nl, ns, got = u.announce(cid, h, 8306, left=0)
        assert sorted(p for _, p in got) == sorted(leechers + [8404]), got
        assert (nl, ns) == (4, 6)
    # a lone peer gets nobody, however often it asks
    lone = ih("lone")
    for _ in range(5):
        assert announce(t, lone, 8500)[b"peers"] == b""
    # in a small swarm, every peer gets all the others and never itself
    small = ih("small")
    ports = list(range(8600, 8606))
    for p in ports:
        announce(t, small, p)
    for _ in range(5):
        for p in ports:
            got = ports_of(announce(t, small, p))
            assert sorted(got) == [x for x in ports if x != p], (p, got)


def test_stopped_removes_the_peer(tracker):
    t = tracker()
    h = ih("stopped")
    announce(t, h, 8701)
    announce(t, h, 8702, left=0)
    announce(t, h, 8703)
    assert counts(t, h)[:2] == (1, 2)
    r = announce(t, h, 8701, event="stopped")
    assert (r[b"complete"], r[b"incomplete"]) == (1, 1), r
    assert counts(t, h)[:2] == (1, 1)
    r = announce(t, h, 8702, left=0, event="stopped")
    assert counts(t, h)[:2] == (0, 1)
    r = announce(t, h, 8703)
    assert ports_of(r) == [], "stopped peers must not be handed out: %r" % r
    # a stop for a swarm the tracker does not know creates nothing
    before = status(t)["torrents"]
    failure_free(announce_resp(t, ih("never-seen"), 8704, event="stopped"))
    assert status(t)["torrents"] == before
    assert counts(t, ih("never-seen")) == (0, 0, 0)


def test_completed_counted_once(tracker):
    t = tracker()
    h = ih("completed")
    announce(t, h, 8801, event="started")
    r = announce(t, h, 8801, left=0, event="completed")
    assert (r[b"complete"], r[b"incomplete"], r[b"downloaded"]) == (1, 0, 1), r
    announce(t, h, 8801, left=0, event="completed")  # a client repeating itself
    announce(t, h, 8801, left=0)
    assert counts(t, h) == (1, 0, 1)
    announce(t, h, 8802, left=0, event="completed")
    assert counts(t, h) == (2, 0, 2)
    announce(t, h, 8803, left=0, event="started")  # a seeder from the start did not complete here
    assert counts(t, h) == (3, 0, 2)
    with Udp(t.udp_port) as u:
        cid = u.connect()
        u.announce(cid, h, 8804, left=0, event=1)
        u.announce(cid, h, 8804, left=0, event=1)
        assert u.scrape(cid, [h]) == [(4, 3, 0)]
    assert counts(t, h) == (4, 0, 3)


def test_interval_jitter_and_min_interval(tracker):
    t = tracker({"tracker": {"interval_s": 1000, "min_interval_s": 77}})
    h = ih("interval")
    seen = set()
    for i in range(60):
        r = announce(t, h, 9000 + i % 3)
        assert 900 <= r[b"interval"] <= 1100, "interval %d outside 1000 ±10%%" % r[b"interval"]
        assert r[b"min interval"] == 77, r
        seen.add(r[b"interval"])
    assert len(seen) > 5, "no jitter in 60 announces: %r" % seen
    with Udp(t.udp_port) as u:
        cid = u.connect()
        for _ in range(10):
            interval = u.announce(cid, h, 9010)[0]
            assert 900 <= interval <= 1100, interval


def test_ip_parameter_only_when_allowed(tracker):
    t = tracker()
    h = ih("ipparam")
    announce(t, h, 9101, ip="10.1.2.3")
    r = announce(t, h, 9102)
    assert peers4(r[b"peers"]) == [("127.0.0.1", 9101)], "ip= must be ignored by default: %r" % r
    t.update_config({"tracker": {"allow_ip_param": True}})
    t.signal(signal.SIGHUP)

    def moved():
        announce(t, h, 9103, ip="10.1.2.3")
        return ("10.1.2.3", 9103) in peers4(announce(t, h, 9104)[b"peers"])

    wait_until(moved, timeout=10, what="ip= honoured after allow_ip_param = true and SIGHUP")


def test_peer_expiry(tracker):
    """peer_timeout_s = 20 (the minimum): a silent peer goes after at least
    20 s; a peer that keeps announcing stays; an emptied torrent goes."""
    t = tracker({"tracker": {"peer_timeout_s": 20}})
    h, other = ih("expiry"), ih("expiry-alone")
    t0 = time.monotonic()
    announce(t, h, 9201)
    announce(t, other, 9202)
    announce(t, h, 9203)
    assert status(t)["torrents"] == 2
    deadline = t0 + 50
    gone_at = None
    while time.monotonic() < deadline:
        time.sleep(1)
        r = announce(t, h, 9203)  # keeps itself alive
        if 9201 not in ports_of(r):
            gone_at = time.monotonic() - t0
            break
    assert gone_at is not None, "a peer silent for 50 s was not dropped with peer_timeout_s = 20"
    assert gone_at >= 19.5, "peer dropped after %.1f s of silence, before peer_timeout_s = 20" % gone_at
    assert counts(t, h)[1] == 1, "the announcing peer must stay"
    wait_until(lambda: status(t)["torrents"] == 1, timeout=15,
               what="the torrent whose only peer expired leaves the store")
    assert (metric_value(metrics(t), "p2pcdn_tracker_expired_peers_total") or 0) >= 2


# --------------------------------------------------------------- scrape


def test_scrape_several(tracker):
    t = tracker()
    h1, h2, unknown = ih("scrape1"), ih("scrape2"), ih("scrape-unknown")
    announce(t, h1, 9301)
    announce(t, h1, 9302)
    announce(t, h1, 9303, left=0, event="completed")
    announce(t, h2, 9304, left=0)
    path = "/scrape?" + "&".join("info_hash=" + pct_bytes(x) for x in (unknown, h2, h1, h2))
    r = t.get(path)
    assert r.status == 200, r
    d = bdecode(r.body)  # strict: the files keys must be sorted
    files = d[b"files"]
    assert list(files) == sorted([h1, h2, unknown]), "keys %r" % list(files)
    assert files[h1] == {b"complete": 1, b"downloaded": 1, b"incomplete": 2}, files[h1]
    assert files[h2] == {b"complete": 1, b"downloaded": 0, b"incomplete": 0}, files[h2]
    assert files[unknown] == {b"complete": 0, b"downloaded": 0, b"incomplete": 0}, files[unknown]
    # 64 hashes are allowed in one scrape
    many = [ih("s%d" % i) for i in range(63)] + [h1]
    f = scrape(t, many)
    assert len(f) == 64 and f[h1][b"incomplete"] == 2


def test_full_scrape_off_by_default(tracker):
    t = tracker()
    announce(t, ih("full-off"), 9401)
    reason = failure(t.get("/scrape"))
    assert "full scrape" in reason, reason


def test_full_scrape_on_and_rate_limited_per_address(tracker):
    t = tracker({"tracker": {"full_scrape": True, "full_scrape_min_s": 600}}, ipv6=True)
    hs = sorted(ih("full%d" % i) for i in range(5))
    for i, h in enumerate(hs):
        announce(t, h, 9500 + i, left=i % 2)
    r = t.get("/scrape")
    assert r.status == 200, r
    files = bdecode(r.body)[b"files"]
    assert list(files) == hs, files
    assert files[hs[0]] == {b"complete": 1, b"downloaded": 0, b"incomplete": 0}
    assert files[hs[1]] == {b"complete": 0, b"downloaded": 0, b"incomplete": 1}
    reason = failure(t.get("/scrape"))
    assert "rate" in reason, reason
    # a scrape naming hashes is not limited
    assert len(scrape(t, hs[:2])) == 2
    # another address has its own allowance
    r = t.get6("/scrape")
    assert r.status == 200 and list(bdecode(r.body)[b"files"]) == hs, r
    assert "rate" in failure(t.get6("/scrape"))


def test_full_scrape_min_s_reload(tracker):
    """full_scrape_min_s is marked reloadable (R) in the config table: after
    SIGHUP with a 1-second limit, a full scrape is allowed again soon."""
    t = tracker({"tracker": {"full_scrape": True, "full_scrape_min_s": 3600}})
    announce(t, ih("fsreload"), 9601)
    assert t.get("/scrape").status == 200
    assert "rate" in failure(t.get("/scrape"))
    t.update_config({"tracker": {"full_scrape_min_s": 1}})
    t.signal(signal.SIGHUP)
    wait_until(lambda: b"failure reason" not in bdecode(t.get("/scrape").body), timeout=8, interval=0.5,
               what="a full scrape allowed after SIGHUP set full_scrape_min_s = 1 (a reloadable key)")


# ----------------------------------------------------------------- UDP


def test_udp_connect_announce_scrape(tracker):
    t = tracker()
    h, unknown = ih("udp"), ih("udp-unknown")
    with Udp(t.udp_port) as a, Udp(t.udp_port) as b:
        ca, cb = a.connect(), b.connect()
        assert ca != cb, "connection ids must depend on the client address"
        interval, leechers, seeders, got = a.announce(ca, h, 5001, left=1000, event=2)
        assert (leechers, seeders, got) == (1, 0, []), (leechers, seeders, got)
        assert interval > 0
        _, leechers, seeders, got = b.announce(cb, h, 5002, left=0, event=2)
        assert (leechers, seeders) == (1, 1)
        assert got == [("127.0.0.1", 5001)], got
        # the connection id stays good for further requests
        _, _, _, got = a.announce(ca, h, 5001, left=1000)
        assert got == [("127.0.0.1", 5002)], got
        assert a.scrape(ca, [h, unknown]) == [(1, 0, 1), (0, 0, 0)]
        # HTTP and UDP share one swarm
        assert counts(t, h) == (1, 1, 0)
        r = announce(t, h, 5003)
        assert sorted(peers4(r[b"peers"])) == [("127.0.0.1", 5001), ("127.0.0.1", 5002)], r
        # completed and stopped
        b.announce(cb, h, 5002, left=0, event=1)
        assert a.scrape(ca, [h]) == [(1, 1, 2)]
        b.announce(cb, h, 5002, left=0, event=3)
        assert a.scrape(ca, [h]) == [(0, 1, 2)]
        _, _, _, got = a.announce(ca, h, 5001)
        assert got == [("127.0.0.1", 5003)], got


def test_udp_reply_fits_one_datagram(tracker):
    """docs/tracker.md: at most 238 IPv4 peers (1452 bytes) in one reply."""
    t = tracker({"tracker": {"numwant_max": 1000}})
    h = ih("udp-big")
    with Udp(t.udp_port) as u:
        cid = u.connect()
        for p in range(10000, 10250):
            u.announce(cid, h, p, numwant=0)
        tid = 4242
        r = u.tx(u.announce_pkt(cid, tid, h, 10999, numwant=1000))
        assert struct.unpack(">II", r[:8]) == (1, tid)
        assert len(r) == 20 + 238 * 6 <= 1452, len(r)
        assert len(set(peers4(r[20:]))) == 238


def test_udp_errors(tracker):
    t = tracker()
    h = ih("udp-errors")
    with Udp(t.udp_port) as u, Udp(t.udp_port) as other:
        cid = u.connect()
        bogus = bytes(8) if cid != bytes(8) else b"\x01" * 8
        msg = u.error(u.announce_pkt(bogus, 77, h, 5101))
        assert "connection id" in msg, msg
        assert "connection id" in u.error(bogus + struct.pack(">II", 2, 78) + h)
        # an id is bound to the address it was given to
        assert "connection id" in other.error(u.announce_pkt(cid, 79, h, 5102))
        # connect without the protocol id
        assert u.error(struct.pack(">QII", 0x1234, 0, 80))
        # unknown action, short announce, scrape without a whole hash
        assert u.error(cid + struct.pack(">II", 9, 81) + b"x" * 20)
        assert u.error(u.announce_pkt(cid, 82, h, 5103)[:60])
        assert u.error(cid + struct.pack(">II", 2, 83) + b"z" * 10)
        assert "port" in u.error(u.announce_pkt(cid, 84, h, 0))
        # under 16 bytes: silence
        u.s.settimeout(0.7)
        u.s.send(b"\x00" * 15)
        try:
            extra = u.s.recv(2048)
            raise AssertionError("reply to a 15-byte datagram: %r" % extra)
        except socket.timeout:
            pass
        u.s.settimeout(3)
        # still serving, nothing recorded
        assert u.scrape(cid, [h]) == [(0, 0, 0)]
    assert status(t)["torrents"] == 0
    assert (metric_value(metrics(t), "p2pcdn_tracker_failures_total", proto="udp") or 0) >= 8


# -------------------------------------------------------------- whitelist


def test_whitelist_mode(tracker):
    t = tracker({"tracker": {"mode": "whitelist", "whitelist_refresh_s": 1}})
    source = "rtmp://live.example.net/app/channel-7"
    h = hashlib.sha1(source.encode()).digest()
    blob, th = torrent_bytes("movie.mkv", 300000)

    assert "not registered" in failure(announce_resp(t, h, 5201))
    assert "not registered" in failure(announce_resp(t, th, 5201))
    assert h not in scrape(t, [h]), "an unregistered torrent must not be reported"
    with Udp(t.udp_port) as u:
        cid = u.connect()
        assert "not registered" in u.error(u.announce_pkt(cid, 5, h, 5202))
        assert "not registered" in u.error(cid + struct.pack(">II", 2, 6) + h)
    assert status(t)["torrents"] == 0

    # registration: admin token required
    assert_error(t.api("POST", "/v1/programs", {"name": "Ch 7", "source": source}), 401)
    assert_error(t.api("POST", "/v1/programs", {"name": "Ch 7", "source": source}, token="nope"), 403)
    assert_error(t.api("POST", "/v1/programs", {"name": "Ch 7", "source": source, "x": 1}, token=True), 400)
    assert_error(t.api("POST", "/v1/programs", {"name": "Ch 7"}, token=True), 400)
    assert_error(t.api("POST", "/v1/programs", {"name": "", "source": source}, token=True), 400)
    r = t.api("POST", "/v1/programs", {"name": "Channel 7", "source": source}, token=True)
    assert r.status == 201, r
    j = r.json()
    assert j["info_hash"] == h.hex() and j["kind"] == "live" and j["source"] == source, j
    r = t.api("POST", "/v1/programs", {"name": "Channel Seven", "source": source}, token=True)
    assert r.status == 200 and r.json()["info_hash"] == h.hex(), r

    t0 = time.monotonic()
    wait_until(lambda: b"failure reason" not in bdecode(announce_resp(t, h, 5203).body), timeout=3,
               what="the registered live program allowed within whitelist_refresh_s")
    assert time.monotonic() - t0 < 3
    with Udp(t.udp_port) as u:
        cid = u.connect()
        _, leechers, _, got = u.announce(cid, h, 5204)
        assert leechers == 2 and got == [("127.0.0.1", 5203)], got
        assert u.scrape(cid, [h]) == [(0, 0, 2)]

    # a .torrent upload registers its info_hash
    r = t.api("POST", "/v1/torrents", blob, token=True, headers={"Content-Type": "application/x-bittorrent"})
    assert r.status == 201, r
    j = r.json()
    assert j == {"info_hash": th.hex(), "name": "movie.mkv", "size": 300000}, j
    wait_until(lambda: b"failure reason" not in bdecode(announce_resp(t, th, 5205).body), timeout=3,
               what="the uploaded torrent allowed within whitelist_refresh_s")
    with Udp(t.udp_port) as u:
        assert u.announce(u.connect(), th, 5206)[1] == 2
    for hexname in (th.hex(), th.hex().upper()):
        r = t.api("GET", "/v1/torrents/%s.torrent" % hexname)
        assert r.status == 200, r
        assert r.body == blob, "the stored .torrent must come back byte for byte"
        assert "bittorrent" in (r.header("Content-Type") or ""), r.headers
    assert_error(t.api("GET", "/v1/torrents/%s.torrent" % ih("nothing").hex()), 404)
    assert_error(t.api("GET", "/v1/torrents/%s" % th.hex()), 404)
    assert_error(t.api("GET", "/v1/torrents/xyz.torrent"), 404)
    # a live program has no .torrent
    assert_error(t.api("GET", "/v1/torrents/%s.torrent" % h.hex()), 404)
    s = status(t)
    assert s["mode"] == "whitelist" and s["whitelist_size"] == 2, s
    # still refused: anything else
    assert "not registered" in failure(announce_resp(t, ih("other"), 5207))


def test_torrent_upload_validation(tracker):
    t = tracker()
    blob, th = torrent_bytes("ok.bin", 40000)
    assert_error(t.api("POST", "/v1/torrents", blob), 401)
    assert_error(t.api("POST", "/v1/torrents", blob, token="wrong-token"), 403)
    p20 = hashlib.sha1(b"p").digest()

    def info(**kw):
        return kw

    bad = {
        "not bencode": b"this is not a torrent",
        "empty": b"",
        "truncated": blob[:-1],
        "trailing bytes": blob + b"e",
        "a list": bencode([1, 2]),
        "no info": bencode({"announce": "http://x/announce"}),
        # keys out of order inside info: name before length
        "non-canonical info keys": b"d4:infod4:name1:x6:lengthi5e12:piece lengthi16384e6:pieces20:" + p20 + b"ee",
        # keys out of order at the top
        "non-canonical top keys": b"d4:infod6:lengthi5e4:name1:x12:piece lengthi16384e6:pieces20:" + p20
        + b"e8:announce8:http://xe",
        "leading zero": b"d4:infod6:lengthi05e4:name1:x12:piece lengthi16384e6:pieces20:" + p20 + b"ee",
        "missing pieces": bencode({"info": info(name="x", length=5, **{"piece length": 16384})}),
        "pieces not a multiple of 20": bencode({"info": info(name="x", length=5, pieces=b"a" * 30,
                                                             **{"piece length": 16384})}),
        "empty pieces": bencode({"info": info(name="x", length=5, pieces=b"", **{"piece length": 16384})}),
        "missing name": bencode({"info": info(length=5, pieces=p20, **{"piece length": 16384})}),
        "zero piece length": bencode({"info": info(name="x", length=5, pieces=p20, **{"piece length": 0})}),
        "no length nor files": bencode({"info": info(name="x", pieces=p20, **{"piece length": 16384})}),
        "negative length": bencode({"info": info(name="x", length=-1, pieces=p20, **{"piece length": 16384})}),
        "name with a slash": bencode({"info": info(name="a/b", length=5, pieces=p20, **{"piece length": 16384})}),
        "name ..": bencode({"info": info(name="..", length=5, pieces=p20, **{"piece length": 16384})}),
    }
    for what, path in {"no path": None, "empty path": [], "path ..": ["..", "etc"],
                       "path with a slash": ["a/b"], "empty name in path": ["a", ""],
                       "path not strings": [1], "path .": ["."]}.items():
        entry = {"length": 5} if path is None else {"length": 5, "path": path}
        bad["files: " + what] = bencode({"info": info(name="d", pieces=p20, files=[entry],
                                                      **{"piece length": 16384})})
    bad["files: empty list"] = bencode({"info": info(name="d", pieces=p20, files=[],
                                                     **{"piece length": 16384})})
    for what, body in bad.items():
        r = t.api("POST", "/v1/torrents", body, token=True)
        assert r.status == 400, "%s: %r" % (what, r)
        assert_error(r, 400, "bad_torrent")
    assert programs(t) == [], "a refused torrent must store nothing"
    # multi-file torrent: size is the sum
    multi_info = {"name": "dir", "piece length": 32768, "pieces": p20 * 2,
                  "files": [{"length": 40000, "path": ["a"]}, {"length": 2, "path": ["b", "c"]}]}
    r = t.api("POST", "/v1/torrents", bencode({"info": multi_info}), token=True)
    assert r.status == 201, r
    assert r.json() == {"info_hash": hashlib.sha1(bencode(multi_info)).hexdigest(), "name": "dir",
                        "size": 40002}
    r = t.api("POST", "/v1/torrents", blob, token=True)
    assert r.status == 201 and r.json()["info_hash"] == th.hex(), r
    r = t.api("POST", "/v1/torrents", blob, token=True)
    assert r.status == 200 and r.json()["info_hash"] == th.hex(), "a re-upload is not new: %r" % r
    listed = {p["info_hash"]: p for p in programs(t)}
    assert set(listed) == {th.hex(), hashlib.sha1(bencode(multi_info)).hexdigest()}, listed
    p = listed[th.hex()]
    assert p["kind"] == "vod" and p["torrent"] is True and p["size"] == 40000 and p["name"] == "ok.bin", p


# --------------------------------------------------------------- catalog


def test_catalog_hot_new_search_limit(tracker, postgres_server):
    t = tracker({"tracker": {"flush_s": 1}})
    names = ["Evening News", "news_100%", "NEWSROOM Live", "Sports"]
    hs = []
    for i, n in enumerate(names):
        hs.append(register(t, n, "rtmp://origin.example/live/%d" % i))
        time.sleep(0.02)  # distinct created_at
    h_evening, h_pct, h_room, h_sports = hs
    # swarm sizes: news_100% 3 (1 seeder), NEWSROOM 2, Evening 1, Sports 0
    announce(t, h_pct, 6201)
    announce(t, h_pct, 6202)
    announce(t, h_pct, 6203, left=0, event="completed")
    announce(t, h_room, 6204)
    announce(t, h_room, 6205)
    announce(t, h_evening, 6206)

    def hot_ready():
        ps = programs(t, "?sort=hot")
        got = [(p["name"], p["seeders"], p["leechers"]) for p in ps]
        return got if got[:3] == [("news_100%", 1, 2), ("NEWSROOM Live", 0, 2), ("Evening News", 0, 1)] else None

    got = wait_until(hot_ready, timeout=6, interval=0.2, what="counts flushed to PostgreSQL (flush_s = 1)")
    assert got[3] == ("Sports", 0, 0), got
    ps = programs(t, "?sort=hot")
    pct = ps[0]
    assert pct["completed"] == 1 and pct["kind"] == "live" and pct["torrent"] is False, pct
    assert pct["source"] == "rtmp://origin.example/live/1" and pct["size"] is None, pct
    assert pct["info_hash"] == h_pct.hex() and pct["created_at"].endswith("Z"), pct
    # the default order is hot
    assert [p["name"] for p in programs(t)] == [p["name"] for p in ps]
    # in the database too
    rows = postgres_server.psql(t.db, "SELECT name, seeders, leechers, completed FROM programs ORDER BY name")
    assert "news_100%|1|2|1" in rows, rows

    # newest first
    assert [p["name"] for p in programs(t, "?sort=new")] == list(reversed(names))

    # search: substring, case-insensitive, LIKE wildcards literal
    def search(q, extra=""):
        return sorted(p["name"] for p in programs(t, "?q=%s%s" % (urllib.parse.quote(q, safe=""), extra)))

    assert search("news") == ["Evening News", "NEWSROOM Live", "news_100%"]
    assert search("NEWS") == search("news")
    assert search("%") == ["news_100%"]
    assert search("_") == ["news_100%"]
    assert search("s_1") == ["news_100%"]
    assert search("e%n") == [], "a %% in q must match only a literal %%"
    assert search("N_W") == [], "an _ in q must match only a literal _"
    assert search("\\") == []
    assert search("zzz") == []
    assert search("news", "&sort=new") == ["Evening News", "NEWSROOM Live", "news_100%"]

    # limit bounds
    assert len(programs(t, "?limit=2")) == 2
    assert [p["name"] for p in programs(t, "?limit=1&sort=new")] == ["Sports"]
    assert len(programs(t, "?limit=500")) == 4
    for bad in ("limit=0", "limit=501", "limit=-1", "limit=abc", "limit=", "limit=2x", "sort=bogus",
                "q=" + "a" * 201):
        assert_error(t.api("GET", "/v1/programs?" + bad), 400)

    # viewers leaving reach the catalog too
    announce(t, h_room, 6204, event="stopped")
    announce(t, h_room, 6205, event="stopped")
    wait_until(lambda: [p for p in programs(t, "?q=NEWSROOM") if p["leechers"] == 0], timeout=6, interval=0.2,
               what="stopped viewers flushed")


# ------------------------------------------------------- admin views


def test_status_and_metrics(tracker):
    t = tracker(ipv6=True)
    h1, h2 = ih("status1"), ih("status2")
    announce(t, h1, 6301)
    announce(t, h1, 6302)
    announce(t, h1, 6303, left=0, event="completed")
    announce(t, h2, 6304, v6=True)
    with Udp(t.udp_port) as u:
        cid = u.connect()
        u.announce(cid, h1, 6305)
        u.scrape(cid, [h1])
    scrape(t, [h1, h2])

    s = status(t)
    assert s["daemon"] == "tracker" and s["mode"] == "open", s
    assert (s["torrents"], s["peers"], s["peers_ipv4"], s["peers_ipv6"]) == (2, 5, 4, 1), s
    assert (s["seeders"], s["leechers"]) == (1, 4), s
    top = s["top_torrents"]
    assert isinstance(top, list) and len(top) == 2, top
    assert top[0] == {"info_hash": h1.hex(), "peers": 4, "seeders": 1, "leechers": 3, "completed": 1}, top
    assert top[1]["info_hash"] == h2.hex() and top[1]["peers"] == 1, top

    m = metrics(t)
    assert metric_value(m, "p2pcdn_tracker_announces_total", proto="http") == 4
    assert metric_value(m, "p2pcdn_tracker_announces_total", proto="udp") == 1
    assert metric_value(m, "p2pcdn_tracker_scrapes_total", proto="http") == 1
    assert metric_value(m, "p2pcdn_tracker_scrapes_total", proto="udp") == 1
    assert metric_value(m, "p2pcdn_tracker_torrents") == 2
    assert metric_value(m, "p2pcdn_tracker_peers_ipv4") == 4
    assert metric_value(m, "p2pcdn_tracker_peers_ipv6") == 1
    r = t.admin("GET", "/readyz")
    assert r.status == 200, r


# ------------------------------------------------------ config, start


def test_sighup_reload_interval(tracker):
    t = tracker({"tracker": {"interval_s": 1000, "min_interval_s": 50}})
    h = ih("reload")
    r = announce(t, h, 6401)
    assert 900 <= r[b"interval"] <= 1100 and r[b"min interval"] == 50, r
    # a broken file is refused and the old values stay
    t.update_config({"tracker": {"mode": "bogus", "interval_s": 100}})
    t.signal(signal.SIGHUP)
    wait_until(lambda: "reload failed" in t.stderr(), timeout=5, what="reload failure logged")
    r = announce(t, h, 6401)
    assert 900 <= r[b"interval"] <= 1100, "a failed reload must keep the running config: %r" % r
    assert t.alive()
    t.update_config({"tracker": {"mode": "open", "interval_s": 100, "min_interval_s": 33}})
    t.signal(signal.SIGHUP)

    def reloaded():
        r = announce(t, h, 6401)
        return 90 <= r[b"interval"] <= 110 and r[b"min interval"] == 33

    wait_until(reloaded, timeout=10, what="interval_s = 100 after SIGHUP")
    with Udp(t.udp_port) as u:
        assert 90 <= u.announce(u.connect(), h, 6402)[0] <= 110


def test_check_config(tracker):
    t = tracker(start=False, migrate=False)
    r = t.cli("--check-config")
    assert r.returncode == 0, r.stderr
    for over, word in (({"tracker": {"mode": "bogus"}}, "mode"),
                       ({"tracker": {"peer_timeout_s": 19}}, "peer_timeout_s"),
                       ({"tracker": {"numwant_default": 300, "numwant_max": 200}}, "numwant"),
                       ({"tracker": {"udp_listen": "not-an-address"}}, "udp_listen"),
                       ({"tracker": {"no_such_key": 1}}, "no_such_key")):
        bad = tracker(over, start=False, migrate=False)
        r = bad.cli("--check-config")
        assert r.returncode == 1, "%r: exit %d\n%s" % (over, r.returncode, r.stderr)
        assert word in r.stderr, "%r: message does not name %r: %s" % (over, word, r.stderr)


def test_postgres_down_at_start(tracker):
    dead = "host=127.0.0.1 port=%d dbname=p2pcdn user=postgres connect_timeout=2" % free_port()
    t = tracker({"postgres": {"conninfo": dead}}, start=False, migrate=False, expect_rc=None)
    t.spawn()
    rc = t.wait_exit(30)
    assert isinstance(rc, int) and rc != 0, "exit status %r with PostgreSQL down" % rc
    err = t.stderr()
    assert "PostgreSQL" in err and "conninfo" in err, "no clear message:\n%s" % err[-2000:]



def test_completed_counted_once_across_flushes(tracker, postgres_server):
    """The catalog adds exactly the completions taken from memory since the
    last flush: several flushes, a whitelist refresh that swaps one program
    for another of the same count, and repeated event=completed never add a
    completion twice."""
    t = tracker({"tracker": {"flush_s": 1, "whitelist_refresh_s": 1}})
    a = register(t, "Channel A", "rtmp://origin.example/live/a")
    announce(t, a, 6301, left=0, event="completed")
    announce(t, a, 6301, left=0, event="completed")  # the same peer again: still one
    announce(t, a, 6302, left=0, event="completed")

    def completed(h):
        for p in programs(t, "?limit=500"):
            if p["info_hash"] == h.hex():
                return p["completed"]
        return None

    wait_until(lambda: completed(a) == 2, timeout=6, interval=0.2, what="2 completions flushed")
    # Swap the catalog's program set without changing its size, as an
    # operator editing the table would; then let several flushes pass.
    b = hashlib.sha1(b"rtmp://origin.example/live/b").digest()
    postgres_server.psql(t.db, "BEGIN; DELETE FROM programs WHERE name = 'Channel A'; "
                               "INSERT INTO programs (info_hash, kind, name, source) VALUES "
                               "(decode('%s', 'hex'), 'live', 'Channel B', 'rtmp://origin.example/live/b'); "
                               "COMMIT" % b.hex())
    announce(t, b, 6303, left=0, event="completed")
    wait_until(lambda: completed(b) == 1, timeout=6, interval=0.2, what="B's completion flushed")
    time.sleep(3.5)  # three more flushes and refreshes
    assert completed(b) == 1, programs(t)
