# SPDX-License-Identifier: MIT
"""Real BitTorrent clients download VOD files with the cache-server as their
only source: a BEP 19 web seed (url-list) in a .torrent made here, with no
tracker, no DHT and no other peer. aria2c fetches a single-file and a
multi-file torrent; Debian's python3-libtorrent a single file. A client that
cannot run here fails the test with the reason (Debian packages aria2 and
python3-libtorrent; see deploy/install-deps.sh)."""

import hashlib
import os
import shutil
import subprocess

from p2ptest import bencode, free_port, http_request

PYTHON = "/usr/bin/python3"
PIECE = 64 * 1024
WAIT_S = 60


def make_torrent(path, files, name, url_list):
    """Writes a v1 .torrent. files: list of (relative path parts, bytes);
    one entry without parts = single-file torrent called name."""
    blob = b"".join(data for _, data in files)
    pieces = b"".join(hashlib.sha1(blob[i:i + PIECE]).digest() for i in range(0, len(blob), PIECE))
    info = {b"name": name.encode(), b"piece length": PIECE, b"pieces": pieces}
    if len(files) == 1 and not files[0][0]:
        info[b"length"] = len(blob)
    else:
        info[b"files"] = [{b"length": len(d), b"path": [p.encode() for p in parts]} for parts, d in files]
    meta = {b"info": info, b"url-list": [url_list.encode()], b"created by": b"p2pcdn tests"}
    with open(path, "wb") as f:
        f.write(bencode(meta))
    return hashlib.sha1(bencode(info)).hexdigest()


def run_aria2(torrent, outdir):
    assert shutil.which("aria2c"), "aria2c not installed (Debian package aria2)"
    argv = ["aria2c", "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
            "--enable-peer-exchange=false", "--seed-time=0", "--bt-tracker-connect-timeout=1",
            "--listen-port=%d" % free_port(), "--dir", str(outdir), "--allow-overwrite=true",
            "--console-log-level=warn", "--summary-interval=0", "--max-tries=3",
            "--bt-stop-timeout=%d" % WAIT_S, "--file-allocation=none", str(torrent)]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=WAIT_S + 30)
    return r.returncode, r.stdout.decode(errors="replace")


def test_aria2_single_file(cache_server, tmp_path):
    root = tmp_path / "vod"
    root.mkdir()
    data = os.urandom(5 * PIECE + 12345)
    (root / "movie.bin").write_bytes(data)
    c = cache_server(vod_root=str(root))
    t = tmp_path / "movie.torrent"
    make_torrent(str(t), [([], data)], "movie.bin", "%s/vod/" % c.url)
    out = tmp_path / "dl"
    rc, log = run_aria2(t, out)
    assert rc == 0, "aria2c exited %d:\n%s" % (rc, log[-3000:])
    assert (out / "movie.bin").read_bytes() == data
    # The bytes came from the cache, in ranges.
    st = c.admin("GET", "/metrics").text
    assert "p2pcdn_cache_vod_bytes_served_total" in st


def test_aria2_multi_file(cache_server, tmp_path):
    root = tmp_path / "vod"
    (root / "season1" / "extras").mkdir(parents=True)
    files = [(["ep1.mp4"], os.urandom(3 * PIECE + 100)),
             (["extras", "making-of.mp4"], os.urandom(PIECE // 2)),
             (["ep2.mp4"], os.urandom(2 * PIECE + 7))]
    for parts, d in files:
        (root / "season1").joinpath(*parts).write_bytes(d)
    c = cache_server(vod_root=str(root))
    t = tmp_path / "season1.torrent"
    make_torrent(str(t), files, "season1", "%s/vod/" % c.url)
    out = tmp_path / "dl"
    rc, log = run_aria2(t, out)
    assert rc == 0, "aria2c exited %d:\n%s" % (rc, log[-3000:])
    for parts, d in files:
        assert (out / "season1").joinpath(*parts).read_bytes() == d, parts


LT_LEECH = r'''
import sys, time
try:
    import libtorrent as lt
except ImportError as e:
    print("cannot import libtorrent (Debian package python3-libtorrent): %s" % e, file=sys.stderr)
    sys.exit(3)
torrent, save, port, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
ses = lt.session({"listen_interfaces": "127.0.0.1:%d" % port, "enable_dht": False,
                  "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False}, 0)
atp = lt.add_torrent_params()
atp.ti = lt.torrent_info(torrent)
atp.save_path = save
atp.flags |= lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
atp.flags &= ~lt.torrent_flags.auto_managed
atp.flags &= ~lt.torrent_flags.paused
h = ses.add_torrent(atp)
deadline = time.monotonic() + limit
while time.monotonic() < deadline:
    s = h.status()
    if s.is_seeding or s.state == lt.torrent_status.seeding:
        print("complete", s.total_wanted)
        sys.exit(0)
    for a in ses.pop_alerts():
        if a.category() & lt.alert.category_t.error_notification:
            print("alert:", a.message(), file=sys.stderr)
    time.sleep(0.1)
print("incomplete: progress %.3f" % h.status().progress, file=sys.stderr)
sys.exit(1)
'''


def test_libtorrent_web_seed(cache_server, tmp_path):
    root = tmp_path / "vod"
    root.mkdir()
    data = os.urandom(4 * PIECE + 999)
    (root / "clip.bin").write_bytes(data)
    c = cache_server(vod_root=str(root))
    t = tmp_path / "clip.torrent"
    make_torrent(str(t), [([], data)], "clip.bin", "%s/vod/" % c.url)
    script = tmp_path / "lt_leech.py"
    script.write_text(LT_LEECH)
    out = tmp_path / "dl"
    out.mkdir()
    r = subprocess.run([PYTHON, str(script), str(t), str(out), str(free_port()), str(WAIT_S)],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=WAIT_S + 30)
    log = r.stdout.decode(errors="replace")
    assert r.returncode == 0, "libtorrent leecher exited %d:\n%s" % (r.returncode, log[-3000:])
    assert (out / "clip.bin").read_bytes() == data
    assert http_request(c.host, c.port, "HEAD", "/vod/clip.bin").status == 200
