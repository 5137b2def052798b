# SPDX-License-Identifier: MIT
"""The measuring half of tests/bench/relay_bench.sh: tunnel throughput and
round-trip latency through the relay-server and through socat, mailbox
messages per second. Prints figures and ratios."""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import secrets
import socket
import struct
import threading
import time


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def mint(key_hex, payload):
    body = b64url(bytes([1, 1]) + struct.pack(">Q", int(time.time()) + 3600) +
                  json.dumps(payload, separators=(",", ":")).encode())
    return body + "." + b64url(hmac.new(bytes.fromhex(key_hex), body.encode(), hashlib.sha256).digest())


def tokens(key_hex, i):
    cid = secrets.token_hex(16)
    a = mint(key_hex, {"cid": cid, "side": "a", "user": "ua%d" % i, "peer": "ub%d" % i})
    b = mint(key_hex, {"cid": cid, "side": "b", "user": "ub%d" % i, "peer": "ua%d" % i})
    return cid, a, b


def hostport(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


def tunnel(relay, cid, tok):
    s = socket.create_connection(hostport(relay))
    s.sendall(("GET /v1/relay/%s/tunnel HTTP/1.1\r\nHost: r\r\nConnection: Upgrade\r\n"
               "Upgrade: p2pcdn-relay\r\nAuthorization: Bearer %s\r\n\r\n" % (cid, tok)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        c = s.recv(1)
        if not c:
            raise RuntimeError("relay closed during upgrade")
        head += c
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError("no upgrade: %r" % head)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def sink_accept(port):
    """One connection accepted on port (socat's far end)."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(4)
    return ls


def pair_socat(args, ls):
    a = socket.create_connection(hostport(args.socat))
    b, _ = ls.accept()
    for s in (a, b):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return a, b


def pair_relay(args, i):
    cid, ta, tb = tokens(args.key, i)
    return tunnel(args.relay, cid, ta), tunnel(args.relay, cid, tb)


def pair_direct(ls):
    a = socket.create_connection(ls.getsockname())
    b, _ = ls.accept()
    for s in (a, b):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return a, b


def throughput(a, b, total):
    block = bytes(1 << 20)
    got = [0]

    def rx():
        n = 0
        while True:
            d = b.recv(1 << 20)
            if not d:
                break
            n += len(d)
        got[0] = n

    t = threading.Thread(target=rx)
    t.start()
    t0 = time.monotonic()
    sent = 0
    mv = memoryview(block)
    while sent < total:
        n = min(len(block), total - sent)
        a.sendall(mv[:n])
        sent += n
    a.shutdown(socket.SHUT_WR)
    t.join()
    dt = time.monotonic() - t0
    a.close()
    b.close()
    assert got[0] == total, (got[0], total)
    return total / dt


def latency(a, b, n):
    """n round trips of 64 bytes: a -> b, b echoes. Returns sorted RTTs (s)."""
    stop = threading.Event()

    def echo():
        while not stop.is_set():
            d = b.recv(64)
            if not d:
                return
            b.sendall(d)

    t = threading.Thread(target=echo)
    t.start()
    msg = b"p" * 64
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        a.sendall(msg)
        need = 64
        while need:
            need -= len(a.recv(need))
        out.append(time.perf_counter() - t0)
    stop.set()
    a.shutdown(socket.SHUT_WR)
    t.join()
    a.close()
    b.close()
    out.sort()
    return out


def pct(v, p):
    return v[min(len(v) - 1, int(len(v) * p))]


def mailbox(args):
    host, port = hostport(args.relay)
    delivered = [0] * args.pairs
    stop = time.monotonic() + args.seconds

    def sender(cid, tok):
        c = http.client.HTTPConnection(host, port, timeout=30)
        seq = 1
        body = b"m" * 256
        while time.monotonic() < stop:
            c.request("POST", "/v1/relay/%s/messages?seq=%d" % (cid, seq), body=body,
                      headers={"Authorization": "Bearer " + tok})
            r = c.getresponse()
            r.read()
            if r.status == 200:
                seq += 1
            elif r.status == 429:
                time.sleep(0.001)
            else:
                raise RuntimeError("send: %d" % r.status)
        c.close()

    def receiver(i, cid, tok):
        c = http.client.HTTPConnection(host, port, timeout=30)
        ack = 0
        while time.monotonic() < stop:
            c.request("GET", "/v1/relay/%s/messages?ack=%d&wait=1" % (cid, ack),
                      headers={"Authorization": "Bearer " + tok})
            r = c.getresponse()
            j = json.loads(r.read())
            for m in j["messages"]:
                if m["seq"] == ack + 1:
                    ack += 1
                    delivered[i] += 1
        c.close()

    threads = []
    for i in range(args.pairs):
        cid, ta, tb = tokens(args.key, 1000 + i)
        threads.append(threading.Thread(target=sender, args=(cid, ta)))
        threads.append(threading.Thread(target=receiver, args=(i, cid, tb)))
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(delivered) / (time.monotonic() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--relay", required=True)
    ap.add_argument("--socat", required=True)
    ap.add_argument("--sink-port", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--pings", type=int, default=5000)
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=5)
    args = ap.parse_args()
    total = args.mib << 20
    ls = sink_accept(args.sink_port)
    direct_ls = sink_accept(0)

    # Warm-up, then the measured runs, alternating to share any drift.
    throughput(*pair_socat(args, ls), 64 << 20)
    throughput(*pair_relay(args, 0), 64 << 20)
    s_tp, r_tp = [], []
    for i in range(3):
        s_tp.append(throughput(*pair_socat(args, ls), total))
        r_tp.append(throughput(*pair_relay(args, i + 1), total))
    s_best, r_best = max(s_tp), max(r_tp)

    d_lat = latency(*pair_direct(direct_ls), args.pings)
    s_lat = latency(*pair_socat(args, ls), args.pings)
    r_lat = latency(*pair_relay(args, 99), args.pings)
    mps = mailbox(args)

    def us(v):
        return v * 1e6

    print("tunnel throughput (best of 3, %d MiB):" % args.mib)
    print("  socat          %8.1f MiB/s" % (s_best / (1 << 20)))
    print("  relay-server   %8.1f MiB/s" % (r_best / (1 << 20)))
    print("  ratio relay/socat: %.2f  (target >= 0.70)" % (r_best / s_best))
    print("round trip of 64 bytes (%d pings), microseconds:" % args.pings)
    for name, v in (("direct", d_lat), ("socat", s_lat), ("relay-server", r_lat)):
        print("  %-13s p50 %7.1f  p99 %7.1f" % (name, us(pct(v, 0.5)), us(pct(v, 0.99))))
    for p, label in ((0.5, "p50"), (0.99, "p99")):
        added_s = pct(s_lat, p) - pct(d_lat, p)
        added_r = pct(r_lat, p) - pct(d_lat, p)
        print("  added latency %s: socat %.1f us, relay %.1f us; ratio relay/socat %.2f"
              " (round trip ratio %.2f)" % (label, us(added_s), us(added_r),
                                            added_r / added_s if added_s > 0 else float("nan"),
                                            pct(r_lat, p) / pct(s_lat, p)))
    print("mailbox: %.0f messages/s (%d pairs, 256-byte messages, long-poll with acks)"
          % (mps, args.pairs))


if __name__ == "__main__":
    main()
