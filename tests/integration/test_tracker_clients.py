# SPDX-License-Identifier: MIT
"""Real BitTorrent clients (Debian's python3-libtorrent, and aria2c) meet
only through the tracker and move a random file from seeder to leecher: once
over an http:// announce URL, once over udp://. DHT, local peer discovery and
peer exchange are off on both sides and no peer is added by hand, so the
tracker is the only way they can find each other.

The clients run as child processes with hard time limits and are killed at
the end whatever happens. A client that cannot run here fails the test with
the reason (Debian packages: python3-libtorrent, aria2; see
deploy/install-deps.sh)."""

import hashlib
import os
import re
import signal
import subprocess
import time

import pytest

from p2ptest import bdecode, free_port, metric_value, parse_metrics, pct_bytes, wait_until

PYTHON = "/usr/bin/python3"  # Debian's, where python3-libtorrent lives
FILE_SIZE = 4 << 20
WAIT_S = 60

# One libtorrent client, run as `python3 lt_client.py ROLE ...`:
#   make  FILE TORRENT URL         writes a .torrent for FILE announcing to URL
#   seed  TORRENT DIR PORT LIMIT   seeds from DIR until killed (or LIMIT s)
#   leech TORRENT DIR PORT LIMIT   downloads into DIR; exit 0 when complete
LT_CLIENT = r'''
import os, sys, time
try:
    import libtorrent as lt
except ImportError as e:
    print("cannot import libtorrent (Debian package python3-libtorrent): %s" % e, file=sys.stderr)
    sys.exit(3)

role = sys.argv[1]
if role == "make":
    path, out, url = sys.argv[2:5]
    fs = lt.file_storage()
    lt.add_files(fs, path)
    # v1 only: a hybrid torrent would also announce a second (v2) hash
    ct = lt.create_torrent(fs, 256 * 1024, flags=lt.create_torrent.v1_only)
    ct.add_tracker(url)
    ct.set_creator("p2pcdn tests")
    lt.set_piece_hashes(ct, os.path.dirname(path))
    with open(out, "wb") as f:
        f.write(lt.bencode(ct.generate()))
    sys.exit(0)

torrent, save, port, limit = sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
settings = {
    "listen_interfaces": "127.0.0.1:%d" % port,
    "outgoing_interfaces": "",
    "enable_dht": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "enable_outgoing_utp": False,
    "enable_incoming_utp": False,
    "allow_multiple_connections_per_ip": True,
    "announce_to_all_trackers": True,
    "announce_to_all_tiers": True,
    "user_agent": "p2pcdn-test/1.0",
    "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.tracker_notification
                  | lt.alert.category_t.status_notification | lt.alert.category_t.peer_notification,
}
# flags 0: no default plugins, so no ut_pex (peer exchange) either
ses = lt.session(settings, 0)
atp = lt.add_torrent_params()
atp.ti = lt.torrent_info(torrent)
atp.save_path = save
atp.flags |= lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
atp.flags &= ~lt.torrent_flags.auto_managed
atp.flags &= ~lt.torrent_flags.paused
h = ses.add_torrent(atp)
deadline = time.monotonic() + limit
said = False
while time.monotonic() < deadline:
    for a in ses.pop_alerts():
        if isinstance(a, (lt.tracker_error_alert, lt.tracker_reply_alert, lt.tracker_warning_alert,
                          lt.peer_connect_alert, lt.peer_disconnected_alert, lt.torrent_error_alert,
                          lt.listen_failed_alert, lt.listen_succeeded_alert, lt.torrent_finished_alert)):
            print("alert: %s" % a.message(), file=sys.stderr, flush=True)
    s = h.status()
    if role == "seed" and s.is_seeding and not said:
        print("SEEDING", flush=True)
        said = True
    if role == "leech" and s.is_finished and s.progress >= 1.0:
        # let the completed announce go out before leaving
        h.force_reannounce()
        time.sleep(1.0)
        for a in ses.pop_alerts():
            print("alert: %s" % a.message(), file=sys.stderr, flush=True)
        print("DONE", flush=True)
        sys.exit(0)
    time.sleep(0.1)
s = h.status()
print("timed out: state %s progress %.3f peers %d seeds %d error %r" % (
    s.state, s.progress, s.num_peers, s.num_seeds, s.errc.message() if s.errc.value() else ""), file=sys.stderr)
sys.exit(2)
'''


class Clients:
    """Child processes that are always killed at teardown."""

    def __init__(self, d):
        self.dir = d
        self.procs = []

    def start(self, name, argv):
        out = open(os.path.join(self.dir, name + ".out"), "wb")
        err = open(os.path.join(self.dir, name + ".err"), "wb")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=self.dir,
                             start_new_session=True)
        p.name, p.files = name, (out, err)
        self.procs.append(p)
        return p

    def output(self, p):
        with open(os.path.join(self.dir, p.name + ".out"), "rb") as f:
            out = f.read().decode("utf-8", "replace")
        with open(os.path.join(self.dir, p.name + ".err"), "rb") as f:
            err = f.read().decode("utf-8", "replace")
        return out, err

    def describe(self, p):
        out, err = self.output(p)
        return "%s (exit %r):\n--- stdout ---\n%s\n--- stderr ---\n%s" % (p.name, p.poll(), out[-3000:], err[-5000:])

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass
            for f in p.files:
                f.close()


@pytest.fixture
def clients(tmp_path):
    c = Clients(str(tmp_path))
    try:
        yield c
    finally:
        c.kill_all()


def lt_script(tmp_path):
    r = subprocess.run([PYTHON, "-c", "import libtorrent; print(libtorrent.__version__)"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        pytest.fail("python3-libtorrent is not usable with %s (install the Debian package python3-libtorrent, "
                    "listed in deploy/install-deps.sh): %s" % (PYTHON, r.stdout.decode(errors="replace")))
    path = os.path.join(str(tmp_path), "lt_client.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(LT_CLIENT)
    return path


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def make_payload(tmp_path, name="payload.bin"):
    seed_dir = os.path.join(str(tmp_path), "seed")
    os.makedirs(seed_dir)
    path = os.path.join(seed_dir, name)
    with open(path, "wb") as f:
        f.write(os.urandom(FILE_SIZE))
    return seed_dir, path


def make_torrent(script, path, url, out):
    r = subprocess.run([PYTHON, script, "make", path, out, url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    assert r.returncode == 0, "creating the torrent with libtorrent failed: %s" % r.stdout.decode(errors="replace")
    with open(out, "rb") as f:
        meta = bdecode(f.read())
    assert meta[b"announce"] == url.encode(), meta.get(b"announce")
    for key in (b"nodes", b"url-list", b"httpseeds"):
        assert key not in meta, "the torrent must name no other source (%r)" % key
    assert b"meta version" not in meta[b"info"], "expected a v1 torrent"
    with open(out, "rb") as f:
        return hashlib.sha1(_info_span(f.read())).digest()


def _info_span(data):
    """The bytes of the top-level info dictionary as encoded (its SHA-1 is
    the info_hash)."""
    i = data.index(b"4:info") + 6
    # walk one bencoded value from i
    def skip(pos):
        c = data[pos:pos + 1]
        if c == b"i":
            return data.index(b"e", pos) + 1
        if c in (b"l", b"d"):
            pos += 1
            while data[pos:pos + 1] != b"e":
                pos = skip(pos)
            return pos + 1
        colon = data.index(b":", pos)
        return colon + 1 + int(data[pos:colon])
    return data[i:skip(i)]


def scrape_counts(t, h):
    r = t.get("/scrape?info_hash=" + pct_bytes(h))
    assert r.status == 200, r
    f = bdecode(r.body)[b"files"][h]
    return f[b"complete"], f[b"incomplete"], f[b"downloaded"]


def wait_line(clients, p, word, timeout):
    def seen():
        if p.poll() is not None:
            raise AssertionError("client exited early: " + clients.describe(p))
        return word in clients.output(p)[0]

    try:
        wait_until(seen, timeout=timeout, interval=0.2, what="%s to print %s" % (p.name, word))
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, clients.describe(p))) from None


def run_swarm(t, clients, tmp_path, url, proto):
    script = lt_script(tmp_path)
    seed_dir, payload = make_payload(tmp_path)
    torrent = os.path.join(str(tmp_path), "payload.torrent")
    h = make_torrent(script, payload, url, torrent)
    want = sha256(payload)

    seed_port, leech_port = free_port(), free_port()
    while leech_port == seed_port:
        leech_port = free_port()
    seeder = clients.start("seeder", [PYTHON, script, "seed", torrent, seed_dir, str(seed_port), str(WAIT_S + 30)])
    wait_line(clients, seeder, "SEEDING", 30)
    # the seeder is known to the tracker before the leecher asks
    wait_until(lambda: scrape_counts(t, h)[0] == 1, timeout=20, interval=0.2,
               what="the seeder's announce reaching the tracker over %s" % proto)

    leech_dir = os.path.join(str(tmp_path), "leech")
    os.makedirs(leech_dir)
    t0 = time.monotonic()
    leecher = clients.start("leecher", [PYTHON, script, "leech", torrent, leech_dir, str(leech_port), str(WAIT_S)])
    try:
        rc = leecher.wait(WAIT_S + 15)
    except subprocess.TimeoutExpired:
        rc = None
    assert rc == 0, "leecher did not complete within %ds:\n%s\n%s" % (
        WAIT_S, clients.describe(leecher), clients.describe(seeder))
    got = os.path.join(leech_dir, os.path.basename(payload))
    assert os.path.getsize(got) == FILE_SIZE
    assert sha256(got) == want, "downloaded file differs from the seeded one"
    print("%s swarm: %.1f s for %d bytes" % (proto, time.monotonic() - t0, FILE_SIZE))

    # the tracker saw both, and the completion
    wait_until(lambda: scrape_counts(t, h)[2] == 1, timeout=15, interval=0.2,
               what="the leecher's completed event counted by the tracker")
    # the leecher's only source of the seeder was this tracker's reply
    _, err = clients.output(leecher)
    assert re.search(r"\(%s\)\S* (v1 )?received peers: 1" % re.escape(url), err), \
        "no tracker reply carrying the seeder:\n" + err[-3000:]
    return h


def test_libtorrent_http_tracker(tracker, clients, tmp_path):
    t = tracker()
    url = "http://127.0.0.1:%d/announce" % t.port
    run_swarm(t, clients, tmp_path, url, "http")
    m = parse_metrics(t.admin("GET", "/metrics").text)
    assert (metric_value(m, "p2pcdn_tracker_announces_total", proto="http") or 0) >= 3
    assert (metric_value(m, "p2pcdn_tracker_announces_total", proto="udp") or 0) == 0, \
        "an http:// torrent announced over UDP?"


def test_libtorrent_udp_tracker(tracker, clients, tmp_path):
    t = tracker()
    url = "udp://127.0.0.1:%d/announce" % t.udp_port
    run_swarm(t, clients, tmp_path, url, "udp")
    m = parse_metrics(t.admin("GET", "/metrics").text)
    assert (metric_value(m, "p2pcdn_tracker_announces_total", proto="udp") or 0) >= 3
    assert (metric_value(m, "p2pcdn_tracker_announces_total", proto="http") or 0) == 0, \
        "a udp:// torrent announced over HTTP?"


def test_aria2c_leecher_from_libtorrent_seeder(tracker, clients, tmp_path):
    """Another client family on the leeching side, over http://."""
    aria2c = "/usr/bin/aria2c"
    if not os.access(aria2c, os.X_OK):
        pytest.fail("aria2c not found (install the Debian package aria2, listed in deploy/install-deps.sh)")
    t = tracker()
    url = "http://127.0.0.1:%d/announce" % t.port
    script = lt_script(tmp_path)
    seed_dir, payload = make_payload(tmp_path)
    torrent = os.path.join(str(tmp_path), "payload.torrent")
    h = make_torrent(script, payload, url, torrent)
    seeder = clients.start("seeder", [PYTHON, script, "seed", torrent, seed_dir, str(free_port()), str(WAIT_S + 30)])
    wait_line(clients, seeder, "SEEDING", 30)
    wait_until(lambda: scrape_counts(t, h)[0] == 1, timeout=20, interval=0.2, what="the seeder's announce")

    leech_dir = os.path.join(str(tmp_path), "aria")
    os.makedirs(leech_dir)
    port = free_port()
    leecher = clients.start("aria2c", [
        aria2c, "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
        "--enable-peer-exchange=false", "--seed-time=0", "--seed-ratio=0.0", "--listen-port=%d" % port,
        "--dir=%s" % leech_dir, "--bt-stop-timeout=%d" % WAIT_S, "--summary-interval=0", "--no-conf=true",
        "--console-log-level=notice", "--bt-save-metadata=false", "--file-allocation=none",
        "--bt-external-ip=127.0.0.1", "--check-certificate=false", torrent])
    try:
        rc = leecher.wait(WAIT_S + 15)
    except subprocess.TimeoutExpired:
        rc = None
    assert rc == 0, "aria2c did not complete within %ds:\n%s\n%s" % (
        WAIT_S, clients.describe(leecher), clients.describe(seeder))
    got = os.path.join(leech_dir, os.path.basename(payload))
    assert sha256(got) == sha256(payload), "aria2c's file differs from the seeded one"
    # aria2c with --seed-time=0 leaves with event=stopped (no completed
    # event): the tracker saw it come and go, and keeps the seeder
    m = parse_metrics(t.admin("GET", "/metrics").text)
    assert (metric_value(m, "p2pcdn_tracker_announces_total", proto="http") or 0) >= 3
    wait_until(lambda: scrape_counts(t, h)[:2] == (1, 0), timeout=15, interval=0.2,
               what="aria2c gone from the swarm, the seeder still in it")
