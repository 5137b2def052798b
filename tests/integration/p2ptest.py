# SPDX-License-Identifier: MIT
"""Helpers shared by the integration tests: HTTP, a tiny Redis client,
PeerID decoding, Prometheus text parsing, polling.  Standard library only."""

import http.client
import json
import math
import os
import re
import socket
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


# --------------------------------------------------------------- polling


def wait_until(fn, timeout=5.0, interval=0.05, what="condition"):
    """Calls fn() until it returns a truthy value; returns that value.
    Fails (AssertionError) with the last value/exception after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
            last = v
        except (AssertionError, OSError, ValueError, http.client.HTTPException) as e:
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s; last: %r" % (timeout, what, last))
        time.sleep(interval)


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A TCP port the kernel just handed out on host (bound to port 0)."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ HTTP


class Response:
    def __init__(self, status, reason, headers, body, elapsed):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value)
        self.body = body
        self.elapsed = elapsed

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError as e:
            raise AssertionError("body is not JSON (%s): %r" % (e, self.body[:500]))

    def __repr__(self):
        return "<HTTP %d %r>" % (self.status, self.body[:300])


def http_request(host, port, method, path, body=None, headers=None, timeout=10.0):
    """One request on a fresh connection. body: bytes, str, or a JSON-able
    object (dict/list) which is encoded with Content-Type application/json.
    headers: dict, or a list of (name, value) pairs (repeats allowed)."""
    hdrs = []
    if isinstance(headers, dict):
        hdrs = list(headers.items())
    elif headers:
        hdrs = list(headers)
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        if not any(k.lower() == "content-type" for k, _ in hdrs):
            hdrs.append(("Content-Type", "application/json"))
    if isinstance(body, str):
        body = body.encode("utf-8")
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    t0 = time.monotonic()
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in hdrs:
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if body is not None:
            try:
                conn.send(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered early (e.g. 413) and closed: read that answer
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, r.reason, r.getheaders(), data, time.monotonic() - t0)
    finally:
        conn.close()


def assert_error(resp, status, code=None):
    """Checks an error answer: the status, a JSON body {"error","message"}
    with string values, and the error code when given."""
    assert resp.status == status, "expected HTTP %d (%s), got %r" % (status, code, resp)
    ctype = resp.header("Content-Type") or ""
    assert "json" in ctype.lower(), "error Content-Type %r, body %r" % (ctype, resp.body[:200])
    j = resp.json()
    assert isinstance(j, dict), j
    assert isinstance(j.get("error"), str) and j["error"], "no 'error' string in %r" % j
    assert isinstance(j.get("message"), str), "no 'message' string in %r" % j
    assert re.fullmatch(r"[a-z][a-z0-9_]*", j["error"]), "error code not snake_case: %r" % j
    if code is not None:
        assert j["error"] == code, "expected error %r, got %r" % (code, j)
    return j


# ----------------------------------------------------------------- Redis


class RespError(Exception):
    pass


class Resp:
    """Minimal RESP2 client: one connection, command(*args) -> reply.
    Errors come back as RespError exceptions."""

    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.f = self.sock.makefile("rb")

    def close(self):
        try:
            self.f.close()
        finally:
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def command(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode("utf-8")
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._read()

    def pipeline(self, commands):
        """Sends every command, then reads every reply (one round trip).
        Error replies are returned as RespError objects, not raised."""
        out = []
        for args in commands:
            out.append(b"*%d\r\n" % len(args))
            for a in args:
                if not isinstance(a, bytes):
                    a = str(a).encode("utf-8")
                out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        replies = []
        for _ in commands:
            try:
                replies.append(self._read())
            except RespError as e:
                replies.append(e)
        return replies

    def _read(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("redis closed the connection")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RespError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2].decode("utf-8", "replace")
        if t == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self._read() for _ in range(n)]
        raise ConnectionError("bad RESP type %r" % line)


# ---------------------------------------------------------------- PeerID

_countries = None


def peerid_countries():
    """The fixed country table, read from common/peerid.c (index = PeerID
    country field, index 0 = "" unknown)."""
    global _countries
    if _countries is None:
        path = os.path.join(REPO, "common", "peerid.c")
        with open(path, encoding="utf-8") as f:
            src = f.read()
        src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
        src = re.sub(r"//[^\n]*", "", src)
        # Either an X-macro list `#define PEERID_COUNTRY_LIST(CC) CC(A, D) ...`
        # expanded after "" in the initializer, or plain string literals.
        m = re.search(r"#define\s+PEERID_COUNTRY_LIST\s*\(\s*(\w+)\s*\)((?:[^\n]*\\\n)*[^\n]*)", src)
        if m:
            table = [""] + ["%s%s" % p for p in
                            re.findall(r"\b%s\s*\(\s*([A-Z])\s*,\s*([A-Z])\s*\)" % m.group(1), m.group(2))]
        else:
            m = re.search(r"peerid_countries\s*\[\s*\]\s*=\s*\{(.*?)\};", src, re.S)
            assert m, "no peerid_countries[] initializer in %s" % path
            table = re.findall(r'"([^"]*)"', m.group(1))
        assert len(table) > 200 and table[0] == "", "odd country table in %s: %r" % (path, table[:5])
        _countries = table
    return _countries


def country_index(alpha2):
    t = peerid_countries()
    return t.index(alpha2) if alpha2 else 0


def peerid_decode(pid):
    """Splits a 14-hex-digit PeerID into its fields (docs/peerid.md):
    country:8 | nettype:4 | region:6 | city:6 | area:16 | node:16."""
    assert isinstance(pid, str) and re.fullmatch(r"[0-9a-f]{14}", pid), "bad peer_id %r" % (pid,)
    v = int(pid, 16)
    return {
        "country": (v >> 48) & 0xFF,
        "nettype": (v >> 44) & 0xF,
        "region": (v >> 38) & 0x3F,
        "city": (v >> 32) & 0x3F,
        "area": (v >> 16) & 0xFFFF,
        "node": v & 0xFFFF,
    }


def peerid_prefix(pid):
    """Everything but the node: the 40 bits that depend on the address."""
    return int(pid, 16) >> 16


def asn_fold(asn):
    """area = asn & 0xffff ^ asn >> 16 (C precedence: (a & m) ^ (a >> 16))."""
    if asn is None:
        return 0
    return (asn & 0xFFFF) ^ (asn >> 16)


def great_circle_km(lat1, lon1, lat2, lon2):
    """Haversine on a sphere of radius 6371 km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))


# ------------------------------------------------------------ Prometheus

_METRIC_RE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r"(?:\{(?P<labels>(?:[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\\n]|\\.)*\"\s*,?\s*)*)\})?"
    r" (?P<value>[-+]?(?:[0-9.]+(?:[eE][-+]?[0-9]+)?|Inf|NaN))"
    r"(?: -?[0-9]+)?$"
)
_LABEL_RE = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"((?:[^\"\\\n]|\\.)*)\"")


def parse_metrics(text):
    """Parses Prometheus text format. Returns a list of
    (name, {label: value}, float). Fails on any malformed sample line."""
    out = []
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* ", line) or line.startswith("# "), (
                "metrics line %d: bad comment %r" % (n, line))
            continue
        m = _METRIC_RE.match(line)
        assert m, "metrics line %d does not parse: %r" % (n, line)
        labels = dict(_LABEL_RE.findall(m.group("labels") or ""))
        out.append((m.group("name"), labels, float(m.group("value"))))
    return out


def metric_value(samples, name, **labels):
    """Sum of the samples called name whose labels include the given ones;
    None when there is none."""
    vals = [v for n, l, v in samples if n == name and all(l.get(k) == str(x) for k, x in labels.items())]
    return sum(vals) if vals else None


# -------------------------------------------------------------- bencode


class BencodeError(ValueError):
    pass


def bdecode(data):
    """Strict BEP 3 decoder: canonical integers (no leading zeros, no -0),
    canonical string lengths, dictionary keys byte strings in strictly
    increasing order, nothing after the value. Strings come back as bytes,
    dictionaries as dicts with bytes keys. Raises BencodeError."""
    if not isinstance(data, (bytes, bytearray)):
        raise BencodeError("not bytes: %r" % type(data))
    data = bytes(data)
    value, pos = _bdecode_at(data, 0, 0)
    if pos != len(data):
        raise BencodeError("%d trailing bytes after the value: %r" % (len(data) - pos, data[pos:pos + 40]))
    return value


def _bdecode_digits(data, pos, end_char, allow_minus):
    end = data.find(end_char, pos)
    if end < 0:
        raise BencodeError("unterminated number at byte %d" % pos)
    s = data[pos:end]
    neg = allow_minus and s.startswith(b"-")
    digits = s[1:] if neg else s
    if not digits or not digits.isdigit() or not all(48 <= c <= 57 for c in digits):
        raise BencodeError("bad number %r at byte %d" % (s, pos))
    if len(digits) > 1 and digits[0:1] == b"0":
        raise BencodeError("leading zero in %r at byte %d" % (s, pos))
    if neg and digits == b"0":
        raise BencodeError("negative zero at byte %d" % pos)
    return (-int(digits) if neg else int(digits)), end + 1


def _bdecode_at(data, pos, depth):
    if depth > 64:
        raise BencodeError("nested too deep")
    if pos >= len(data):
        raise BencodeError("truncated at byte %d" % pos)
    c = data[pos:pos + 1]
    if c == b"i":
        return _bdecode_digits(data, pos + 1, b"e", True)
    if c.isdigit():
        n, start = _bdecode_digits(data, pos, b":", False)
        if start + n > len(data):
            raise BencodeError("string of %d bytes at byte %d runs past the end" % (n, pos))
        return data[start:start + n], start + n
    if c == b"l":
        out, pos = [], pos + 1
        while data[pos:pos + 1] != b"e":
            if pos >= len(data):
                raise BencodeError("unterminated list")
            v, pos = _bdecode_at(data, pos, depth + 1)
            out.append(v)
        return out, pos + 1
    if c == b"d":
        out, pos, last = {}, pos + 1, None
        while data[pos:pos + 1] != b"e":
            if pos >= len(data):
                raise BencodeError("unterminated dictionary")
            if not data[pos:pos + 1].isdigit():
                raise BencodeError("dictionary key at byte %d is not a string" % pos)
            k, pos = _bdecode_at(data, pos, depth + 1)
            if last is not None and k <= last:
                raise BencodeError("dictionary key %r after %r: not strictly sorted" % (k, last))
            last = k
            v, pos = _bdecode_at(data, pos, depth + 1)
            out[k] = v
        return out, pos + 1
    raise BencodeError("unexpected %r at byte %d" % (c, pos))


def bencode(v):
    """Canonical encoder: str keys/values are UTF-8, dict keys sorted."""
    if isinstance(v, bool):
        raise TypeError("bool is not bencodable")
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode("utf-8")
    if isinstance(v, (bytes, bytearray)):
        return b"%d:%s" % (len(v), bytes(v))
    if isinstance(v, (list, tuple)):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    if isinstance(v, dict):
        items = sorted(((k.encode("utf-8") if isinstance(k, str) else k), x) for k, x in v.items())
        return b"d" + b"".join(bencode(k) + bencode(x) for k, x in items) + b"e"
    raise TypeError("cannot bencode %r" % type(v))


def pct_bytes(b):
    """Percent-encodes every byte (how many BitTorrent clients send info_hash)."""
    return "".join("%%%02X" % x for x in b)


def free_port_tcp_udp(host="127.0.0.1", family=socket.AF_INET):
    """A port number free for both TCP and UDP on host (trackers serve both
    on one number)."""
    for _ in range(200):
        with socket.socket(family, socket.SOCK_DGRAM) as u:
            u.bind((host, 0))
            port = u.getsockname()[1]
            with socket.socket(family, socket.SOCK_STREAM) as t:
                try:
                    t.bind((host, port))
                except OSError:
                    continue
                return port
    raise AssertionError("no port free for both TCP and UDP on %s" % host)
