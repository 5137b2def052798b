# SPDX-License-Identifier: MIT
"""HTTPS on the route-server public listener ([server] tls_cert/tls_key,
docs/route-server.md): the API answers over TLS with the configured
certificate, plain HTTP on that port gets no HTTP answer, the admin listener
stays plain HTTP, and bad TLS settings fail start-up with a message that
names the problem.

Certificates are made per test with the openssl CLI in tmp_path."""

import http.client
import json
import os
import socket
import ssl
import subprocess

import pytest

from conftest import SANITIZER_MARKS
from p2ptest import peerid_decode


# ------------------------------------------------------------- helpers


def make_cert(d, kind="rsa", name="server"):
    """A self-signed certificate for CN/SAN 127.0.0.1 and its key (PEM,
    unencrypted) in directory d. Returns (cert_path, key_path)."""
    cert = os.path.join(str(d), name + ".crt")
    key = os.path.join(str(d), name + ".key")
    if kind == "rsa":
        newkey = ["-newkey", "rsa:2048"]
    else:
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    r = subprocess.run(["openssl", "req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert] + newkey,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert r.returncode == 0, "openssl req failed:\n%s" % r.stdout.decode(errors="replace")
    return cert, key


def tls_context(cafile):
    """Verifies the server against cafile only, hostname (SAN IP) included."""
    ctx = ssl.create_default_context(cafile=cafile)
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    return ctx


def https_get(host, port, path, cafile, timeout=10):
    """GET over HTTPS on a fresh connection. Returns (status, headers dict
    with lower-case names, body bytes, server certificate in DER)."""
    conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=tls_context(cafile))
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        der = conn.sock.getpeercert(binary_form=True)
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body, der
    finally:
        conn.close()


def pem_to_der(path):
    with open(path, encoding="ascii") as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def raw_exchange(host, port, data, timeout=5):
    """Sends data on a plain TCP connection, reads until the peer closes or
    timeout. Returns (bytes received, True when the peer closed)."""
    got = b""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    return got, True
                got += chunk
                if len(got) > 65536:
                    return got, False
        except socket.timeout:
            return got, False
        except ConnectionResetError:
            return got, True


def tls_server(route_server, cert, key, **kw):
    return route_server({"server": {"tls_cert": cert, "tls_key": key}}, **kw)


def expect_start_failure(rs, *needles):
    """Starts rs, which must exit by itself with a non-zero status and say
    every one of needles on stderr. Returns stderr."""
    rs.spawn()
    rc = rs.wait_exit(timeout=20)
    err = rs.stderr()
    assert isinstance(rc, int) and rc > 0, "route-server exit status %r (wanted a failure exit); stderr:\n%s" % (
        rc, err[-3000:])
    for n in needles:
        assert n in err, "start-up failure does not mention %r; stderr:\n%s" % (n, err[-3000:])
    # The fixture checks this too, at teardown; saying it here makes the
    # test itself fail with the reason.
    for mark in SANITIZER_MARKS:
        assert mark not in err, "sanitizer report on the failed start-up:\n%s" % err[err.index(mark) - 200:][:3000]
    return err


# --------------------------------------------------------------- tests


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_route_over_https(route_server, tmp_path, kind):
    """GET /v1/route over HTTPS: 200 JSON with a peer_id, served with the
    configured certificate, verified against it as the only CA."""
    cert, key = make_cert(tmp_path, kind)
    rs = tls_server(route_server, cert, key)
    rs.put_domain("default", ["http://127.0.0.1:7004"])

    status, headers, body, der = https_get(rs.host, rs.port, "/v1/route", cert)
    assert status == 200, "HTTPS /v1/route: %d %r" % (status, body[:300])
    assert "json" in headers.get("content-type", "").lower(), headers
    j = json.loads(body.decode("utf-8"))
    assert j.get("domain") == "default", j
    peerid_decode(j["peer_id"])
    assert der == pem_to_der(cert), "the listener presents another certificate"

    # Several requests on one TLS connection (keep-alive), each a new peer.
    conn = http.client.HTTPSConnection(rs.host, rs.port, timeout=10, context=tls_context(cert))
    try:
        ids = set()
        for _ in range(3):
            conn.request("GET", "/v1/route")
            r = conn.getresponse()
            b = r.read()
            assert r.status == 200, (r.status, b[:300])
            ids.add(json.loads(b.decode("utf-8"))["peer_id"])
        assert len(ids) == 3, ids
    finally:
        conn.close()

    # A client that does not trust the certificate is refused by its own
    # TLS stack: proof that the check above really verified something.
    other_cert, _ = make_cert(tmp_path, kind, name="other")
    with pytest.raises(ssl.SSLCertVerificationError):
        https_get(rs.host, rs.port, "/v1/route", other_cert)
    # The daemon survives all of this.
    status, _, body, _ = https_get(rs.host, rs.port, "/v1/route", cert)
    assert status == 200, body[:300]


def test_plain_http_to_tls_port_gets_no_http_answer(route_server, tmp_path):
    cert, key = make_cert(tmp_path, "ec")
    rs = tls_server(route_server, cert, key)
    rs.put_domain("default", ["http://127.0.0.1:7004"])

    got, closed = raw_exchange(rs.host, rs.port, b"GET /v1/route HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                                 b"Connection: close\r\n\r\n")
    assert not got.startswith(b"HTTP/"), "plain HTTP got an HTTP answer on the TLS port: %r" % got[:200]
    assert b"peer_id" not in got, got[:200]
    assert closed, "the TLS listener neither answered nor closed a plain-HTTP connection in 5 s"
    # http.client agrees: no status line.
    conn = http.client.HTTPConnection(rs.host, rs.port, timeout=5)
    try:
        with pytest.raises((http.client.HTTPException, ConnectionError, socket.timeout)):
            conn.request("GET", "/v1/route")
            conn.getresponse().read()
    finally:
        conn.close()
    # HTTPS still works afterwards.
    status, _, body, _ = https_get(rs.host, rs.port, "/v1/route", cert)
    assert status == 200, body[:300]


def test_admin_listener_stays_plain_http(route_server, tmp_path):
    cert, key = make_cert(tmp_path, "rsa")
    rs = tls_server(route_server, cert, key)
    # put_domain and the generation sync go through the admin listener.
    rs.put_domain("default", ["http://127.0.0.1:7004"])
    r = rs.admin("GET", "/healthz")
    assert r.status == 200, r
    r = rs.admin("GET", "/metrics")
    assert r.status == 200, r
    assert "p2pcdn_build_info" in r.text
    # ...and does not speak TLS.
    ctx = tls_context(cert)
    with pytest.raises((ssl.SSLError, ConnectionError, socket.timeout)):
        with socket.create_connection((rs.admin_host, rs.admin_port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname=rs.admin_host):
                pass


def test_missing_key_file_fails_start(route_server, tmp_path):
    cert, _ = make_cert(tmp_path, "rsa")
    missing = str(tmp_path / "no-such.key")
    rs = tls_server(route_server, cert, missing, start=False, migrate=False, expect_rc=None)
    expect_start_failure(rs, missing)


def test_unreadable_key_file_fails_start(route_server, tmp_path):
    # As root a chmod 000 file stays readable; a directory never is.
    cert, _ = make_cert(tmp_path, "rsa")
    keydir = tmp_path / "key-is-a-dir"
    keydir.mkdir()
    rs = tls_server(route_server, cert, str(keydir), start=False, migrate=False, expect_rc=None)
    expect_start_failure(rs, str(keydir))


def test_missing_cert_file_fails_start(route_server, tmp_path):
    _, key = make_cert(tmp_path, "rsa")
    missing = str(tmp_path / "no-such.crt")
    rs = tls_server(route_server, missing, key, start=False, migrate=False, expect_rc=None)
    expect_start_failure(rs, missing)


def test_garbage_key_fails_start(route_server, tmp_path):
    cert, key = make_cert(tmp_path, "rsa")
    with open(key, "w", encoding="ascii") as f:
        f.write("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    rs = tls_server(route_server, cert, key, start=False, expect_rc=None)
    err = expect_start_failure(rs)
    assert "TLS" in err or "tls" in err, "the failure does not point at TLS:\n%s" % err[-3000:]


def test_key_of_another_certificate_fails_start(route_server, tmp_path):
    cert, _ = make_cert(tmp_path, "rsa")
    _, other_key = make_cert(tmp_path, "rsa", name="other")
    rs = tls_server(route_server, cert, other_key, start=False, expect_rc=None)
    err = expect_start_failure(rs)
    assert "TLS" in err or "tls" in err, "the failure does not point at TLS:\n%s" % err[-3000:]


@pytest.mark.parametrize("which", ["tls_cert", "tls_key"])
def test_half_tls_config_fails_start(route_server, tmp_path, which):
    """tls_cert without tls_key (and the reverse) is an error, not plain
    HTTP."""
    cert, key = make_cert(tmp_path, "rsa")
    rs = route_server({"server": {which: cert if which == "tls_cert" else key}}, start=False,
                      migrate=False, expect_rc=None)
    expect_start_failure(rs, "tls_cert", "tls_key")


@pytest.mark.parametrize("case", ["missing_key", "unreadable_key", "cert_without_key", "key_without_cert"])
def test_check_config_rejects_bad_tls(route_server, tmp_path, case):
    """--check-config exists so that a broken config fails before a restart
    (main.c opens the databases in check mode for that reason): a TLS
    setting that makes start-up fail must fail here too."""
    cert, key = make_cert(tmp_path, "rsa")
    keydir = tmp_path / "key-is-a-dir"
    keydir.mkdir()
    server, needles = {
        "missing_key": ({"tls_cert": cert, "tls_key": str(tmp_path / "no-such.key")},
                        [str(tmp_path / "no-such.key")]),
        "unreadable_key": ({"tls_cert": cert, "tls_key": str(keydir)}, [str(keydir)]),
        "cert_without_key": ({"tls_cert": cert}, ["tls_key"]),
        "key_without_cert": ({"tls_key": key}, ["tls_cert"]),
    }[case]
    rs = route_server({"server": server}, start=False, migrate=False)
    r = rs.cli("--check-config")
    out = r.stdout + r.stderr
    assert r.returncode != 0, "--check-config accepted %s (exit %d):\n%s" % (case, r.returncode, out)
    for n in needles:
        assert n in out, "--check-config does not mention %r:\n%s" % (n, out)


def test_check_config_accepts_good_tls(route_server, tmp_path):
    cert, key = make_cert(tmp_path, "ec")
    rs = tls_server(route_server, cert, key, start=False, migrate=False)
    r = rs.cli("--check-config")
    assert r.returncode == 0, r.stdout + r.stderr
