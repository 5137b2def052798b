# SPDX-License-Identifier: MIT
"""login-server behind real NATs: Linux network namespaces, veth pairs and
iptables MASQUERADE. Needs root (CI runs as root); where namespaces cannot
be made the test FAILS with the reason, it never skips.

Topology (documentation ranges, inside the namespaces only; the root
namespace gets no address and no route):

    out (outer host)      198.51.100.2 ----+
                                           |  .1
    nat1 (NAT, wan .6) ---- 198.51.100.5 - inet (the "Internet": a router,
      br0 203.0.113.1/25                   |  and the login-server listening
        peer-a 203.0.113.2                 |  on 0.0.0.0 there)
        peer-b 203.0.113.3                 |  .9
    nat2 (NAT, wan .10) -------------------+
      peer-c 203.0.113.130 (lan2 203.0.113.128/25)

The login-server runs in `inet` (so it sees the NATs' outside addresses as
the peers' sources) and reaches Redis and PostgreSQL in the root namespace
through their unix sockets, which network namespaces do not separate. The
peers are small Python programs (an agent each, driven over stdin/stdout)
run with `ip netns exec`: they listen for the connect-back probe, log in,
long-poll, connect, and really open the TCP connections the answers
describe. Every namespace is deleted at the end, also on failure."""

import json
import os
import threading
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import ADMIN_TOKEN, _merge
from fx_login import LoginServer, login_binary, relay_entry
from p2ptest import wait_until

SERVER = "198.51.100.1"  # an address of `inet`, reachable from every namespace
PW = "correct horse battery"

AGENT = textwrap.dedent(r'''
    import base64, ctypes, ctypes.util, http.client, http.server, json, socketserver, sys
    import threading, urllib.parse

    lib = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
    lib.sodium_init()
    pk, sk = ctypes.create_string_buffer(32), ctypes.create_string_buffer(32)
    lib.crypto_box_keypair(pk, sk)
    state = {"sealed": {}, "user": "?"}

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            u = urllib.parse.urlparse(self.path)
            q = urllib.parse.parse_qs(u.query)
            if u.path == "/p2p/probe":
                body = q.get("nonce", [""])[0]
            elif u.path == "/p2p/lan":
                body = state["sealed"].get(q.get("cid", [""])[0], "")
            else:
                body = "hello from " + state["user"]
            b = body.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)

    class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    def call(method, host, port, path, body=None, token=None, timeout=10):
        c = http.client.HTTPConnection(host, port, timeout=timeout)
        h = {"Content-Type": "application/json"}
        if token:
            h["Authorization"] = "Bearer " + token
        c.request(method, path, json.dumps(body) if body is not None else None, h)
        r = c.getresponse()
        data = r.read().decode()
        c.close()
        return r.status, data

    def split(addr):
        host, port = addr.rsplit(":", 1)
        return host.strip("[]"), int(port)

    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        try:
            if op == "login":
                state["user"] = cmd["user"]
                if "srv" not in state:
                    state["srv"] = S(("0.0.0.0", cmd["listen_port"]), H)
                    threading.Thread(target=state["srv"].serve_forever, daemon=True).start()
                st, d = call("POST", cmd["server"], cmd["port"], "/v1/login", {
                    "user": cmd["user"], "password": cmd["password"],
                    "listen_port": cmd["listen_port"], "private_addr": cmd["private_addr"],
                    "public_key": base64.b64encode(pk.raw).decode()})
                out = {"status": st, "body": json.loads(d)}
                state["server"], state["port"] = cmd["server"], cmd["port"]
                state["token"] = out["body"].get("token")
            elif op == "hb":
                st, d = call("POST", state["server"], state["port"], "/v1/heartbeat?wait=%d" % cmd["wait"],
                             token=state["token"], timeout=cmd["wait"] + 10)
                body = json.loads(d)
                for r in body.get("requests", []):
                    if r.get("type") == "lan":
                        state["sealed"][r["cid"]] = r["sealed_cid"]
                out = {"status": st, "body": body}
            elif op == "connect":
                st, d = call("POST", state["server"], state["port"], "/v1/connect",
                             {"target": cmd["target"]}, token=state["token"])
                out = {"status": st, "body": json.loads(d)}
            elif op == "result":
                st, d = call("POST", state["server"], state["port"],
                             "/v1/connect/%s/result" % cmd["cid"], {"outcome": cmd["outcome"]},
                             token=state["token"])
                out = {"status": st, "body": json.loads(d)}
            elif op == "get":
                host, port = split(cmd["addr"])
                st, d = call("GET", host, port, cmd["path"], timeout=cmd.get("timeout", 5))
                out = {"status": st, "text": d}
            elif op == "open":
                c = base64.b64decode(cmd["sealed"])
                m = ctypes.create_string_buffer(max(len(c) - 48, 1))
                ok = lib.crypto_box_seal_open(m, c, ctypes.c_ulonglong(len(c)), pk, sk) == 0
                out = {"plain": m.raw[:len(c) - 48].decode() if ok else None}
            else:
                out = {"error": "unknown op"}
        except Exception as e:  # reported to the test, which decides
            out = {"exception": "%s: %s" % (type(e).__name__, e)}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
''')


def run(*argv, check=True):
    r = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    if check and r.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(argv), r.returncode,
                                                   r.stderr.decode(errors="replace")))
    return r


class Net:
    """The namespaces of one test; delete() removes them all."""

    def __init__(self):
        self.tag = "p2l%d" % (os.getpid() % 100000)
        self.made = []

    def ns(self, name):
        return "%s%s" % (self.tag, name)

    def add(self, name):
        n = self.ns(name)
        run("ip", "netns", "add", n)
        self.made.append(n)
        self.sh(name, "ip link set lo up")
        return n

    def sh(self, name, cmd):
        return run("ip", "netns", "exec", self.ns(name), *cmd.split())

    def link(self, a, a_if, b, b_if):
        run("ip", "link", "add", a_if, "netns", self.ns(a), "type", "veth", "peer", "name", b_if,
            "netns", self.ns(b))
        self.sh(a, "ip link set %s up" % a_if)
        self.sh(b, "ip link set %s up" % b_if)

    def delete(self):
        for n in reversed(self.made):
            run("ip", "netns", "del", n, check=False)
        self.made = []


def build(net):
    for n in ("inet", "out", "nat1", "nat2", "pa", "pb", "pc"):
        net.add(n)
    # The Internet side.
    net.link("inet", "to-out", "out", "eth0")
    net.sh("inet", "ip addr add 198.51.100.1/30 dev to-out")
    net.sh("out", "ip addr add 198.51.100.2/30 dev eth0")
    net.sh("out", "ip route add default via 198.51.100.1")
    for i, (nat, lo) in enumerate((("nat1", 4), ("nat2", 8))):
        net.link("inet", "to-%s" % nat, nat, "wan")
        net.sh("inet", "ip addr add 198.51.100.%d/30 dev to-%s" % (lo + 1, nat))
        net.sh(nat, "ip addr add 198.51.100.%d/30 dev wan" % (lo + 2))
        net.sh(nat, "ip route add default via 198.51.100.%d" % (lo + 1))
        net.sh(nat, "sysctl -q -w net.ipv4.ip_forward=1")
        net.sh(nat, "iptables -t nat -A POSTROUTING -o wan -j MASQUERADE")
    net.sh("inet", "sysctl -q -w net.ipv4.ip_forward=1")
    # LAN 1 behind nat1: a bridge and two peers.
    net.sh("nat1", "ip link add br0 type bridge")
    net.sh("nat1", "ip addr add 203.0.113.1/25 dev br0")
    net.sh("nat1", "ip link set br0 up")
    for p, ip in (("pa", 2), ("pb", 3)):
        net.link("nat1", "lan-%s" % p, p, "eth0")
        net.sh("nat1", "ip link set lan-%s master br0" % p)
        net.sh(p, "ip addr add 203.0.113.%d/25 dev eth0" % ip)
        net.sh(p, "ip route add default via 203.0.113.1")
    # LAN 2 behind nat2: one peer.
    net.link("nat2", "lan", "pc", "eth0")
    net.sh("nat2", "ip addr add 203.0.113.129/25 dev lan")
    net.sh("pc", "ip addr add 203.0.113.130/25 dev eth0")
    net.sh("pc", "ip route add default via 203.0.113.129")


class Agent:
    def __init__(self, net, ns, path):
        self.proc = subprocess.Popen(["ip", "netns", "exec", net.ns(ns), sys.executable, path],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def do(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "agent died: %s" % self.proc.stderr.read()
        out = json.loads(line)
        return out

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


class NsLoginServer(LoginServer):
    """A login-server started inside a namespace; health is checked there."""

    netns = None

    def spawn(self, env_extra=None):
        real = self.binary
        self.binary_argv = ["ip", "netns", "exec", self.netns, real]
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        self._err = open(self.stderr_path, "ab")
        self._out = open(self.stdout_path, "ab")
        self.stopped_rc = None
        self.proc = subprocess.Popen(self.binary_argv + ["--config", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
                                     env=env, cwd=self.dir)
        return self.proc

    def wait_healthy(self, timeout=30):
        def up():
            if self.proc.poll() is not None:
                raise AssertionError("login-server exited: %s" % self.stderr()[-3000:])
            r = run("ip", "netns", "exec", self.netns, "curl", "-fsS", "--max-time", "2",
                    "http://127.0.0.1:%d/healthz" % self.admin_port, check=False)
            return r.returncode == 0
        wait_until(up, timeout=timeout, interval=0.1, what="login-server /healthz in its namespace")

    def admin_get(self, path):
        r = run("ip", "netns", "exec", self.netns, "curl", "-fsS", "--max-time", "5",
                "http://127.0.0.1:%d%s" % (self.admin_port, path))
        return r.stdout.decode()


def test_real_nat(redis_factory, postgres_server, pgdb, tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the NAT test needs root (network namespaces, iptables); run it as root")
    for tool in ("ip", "iptables", "curl"):
        if not shutil.which(tool):
            pytest.fail("the NAT test needs %s (deploy/install-deps.sh)" % tool)
    net = Net()
    agents = []
    ls = None
    try:
        try:
            build(net)
        except AssertionError as e:
            pytest.fail("cannot build the network namespaces for the NAT test: %s" % e)
        rds = redis_factory(unixsocket=True)
        prefix = "nat%d:" % os.getpid()
        d = str(tmp_path / "login")
        os.makedirs(d)
        cfg = {
            "server": {"listen": "0.0.0.0:7001", "admin_listen": "127.0.0.1:8001", "threads": 2,
                       "admin_token": ADMIN_TOKEN, "drain_timeout_s": 2, "access_log": False},
            "redis": {"host": rds.unixsocket, "prefix": prefix, "max_backoff_ms": 500},
            "postgres": {"conninfo": "host=%s port=%d dbname=%s user=postgres" % (
                postgres_server.sock, postgres_server.port, pgdb), "pool_size": 4},
            "login": {"registration": "open", "heartbeat_s": 5, "probe_timeout_ms": 1000,
                      "argon2_ops": 1, "argon2_mem_kib": 256, "acct_flush_ms": 100, "reap_s": 1},
            "relay": {"token_key": "b2" * 32},
        }
        NsLoginServer.netns = net.ns("inet")
        ls = NsLoginServer(login_binary(), d, _merge({}, cfg))
        ls.pg, ls.db, ls.redis, ls.prefix = postgres_server, pgdb, rds, prefix
        ls.migrate()
        ls.start()
        relay_entry(rds, prefix, "relay-x", "http://198.51.100.1:7002", sessions=0, capacity=10)

        path = os.path.join(d, "agent.py")
        with open(path, "w") as f:
            f.write(AGENT)
        peers = {}
        for ns, user in (("out", "outer-o"), ("pa", "inner-a"), ("pb", "inner-b"), ("pc", "inner-c")):
            a = Agent(net, ns, path)
            agents.append(a)
            peers[user] = a
        # Accounts first (open registration from the outer host), then logins.
        for user in peers:
            st = subprocess.run(["ip", "netns", "exec", net.ns("out"), "curl", "-sS", "-o", "/dev/null",
                                 "-w", "%{http_code}", "-H", "Content-Type: application/json", "-d",
                                 json.dumps({"user": user, "password": PW}),
                                 "http://%s:7001/v1/register" % SERVER],
                                stdout=subprocess.PIPE, timeout=30).stdout.decode()
            assert st == "201", "register %s: %s" % (user, st)
        logins = {}
        for user, priv in (("outer-o", "198.51.100.2"), ("inner-a", "203.0.113.2"),
                           ("inner-b", "203.0.113.3"), ("inner-c", "203.0.113.130")):
            r = peers[user].do(op="login", server=SERVER, port=7001, user=user, password=PW,
                               listen_port=4000, private_addr=priv + ":4000")
            assert r.get("status") == 200, (user, r)
            logins[user] = r["body"]

        # Inner-network judgment by connect-back (seed 000 §3).
        assert logins["outer-o"]["nat"] == "outer" and logins["outer-o"]["probe"] == "echo"
        assert logins["outer-o"]["public_ip"] == "198.51.100.2"
        for u, wan in (("inner-a", "198.51.100.6"), ("inner-b", "198.51.100.6"), ("inner-c", "198.51.100.10")):
            assert logins[u]["nat"] == "inner", logins[u]
            assert logins[u]["public_ip"] == wan, logins[u]

        o, a, b, c = peers["outer-o"], peers["inner-a"], peers["inner-b"], peers["inner-c"]
        # The outer host cannot reach an inner peer by its public address.
        r = o.do(op="get", addr="198.51.100.6:4000", path="/p2p/hello", timeout=2)
        assert "exception" in r, "the NAT let an unsolicited connection in: %r" % r

        # Reverse connect, outer -> inner, completed for real: the inner
        # peer's long-poll gets the request and it connects out.
        got = {}
        t = threading.Thread(target=lambda: got.update(r=a.do(op="hb", wait=10)))
        t.start()
        time.sleep(0.5)
        j = o.do(op="connect", target="inner-a")
        assert j["status"] == 200 and j["body"]["mode"] == "reverse", j
        t.join(20)
        reqs = got["r"]["body"]["requests"]
        assert len(reqs) == 1 and reqs[0]["type"] == "reverse" and reqs[0]["addr"] == "198.51.100.2:4000", reqs
        hello = a.do(op="get", addr=reqs[0]["addr"], path="/p2p/hello")
        assert hello == {"status": 200, "text": "hello from outer-o"}, hello
        assert a.do(op="result", cid=reqs[0]["cid"], outcome="success")["status"] == 200

        # Inner -> outer: direct, the inner side connects out.
        j = c.do(op="connect", target="outer-o")
        assert j["body"]["mode"] == "direct" and j["body"]["addr"] == "198.51.100.2:4000", j
        assert c.do(op="get", addr=j["body"]["addr"], path="/p2p/hello")["text"] == "hello from outer-o"

        # Same LAN: lan; a connects to b's private address and checks the
        # connect id b returns, sealed to a's key (Fig. 5).
        j = a.do(op="connect", target="inner-b")
        assert j["body"]["mode"] == "lan" and j["body"]["private_addr"] == "203.0.113.3:4000", j
        cid = j["body"]["cid"]
        assert b.do(op="hb", wait=0)["body"]["requests"][0]["cid"] == cid
        sealed = a.do(op="get", addr="203.0.113.3:4000", path="/p2p/lan?cid=" + cid)
        assert sealed["status"] == 200 and sealed["text"], sealed
        assert a.do(op="open", sealed=sealed["text"])["plain"] == cid
        assert a.do(op="get", addr="203.0.113.3:4000", path="/p2p/hello")["text"] == "hello from inner-b"
        assert a.do(op="result", cid=cid, outcome="success")["body"]["mode"] == "lan"

        # Different LANs: relay, and really no way through directly.
        j = a.do(op="connect", target="inner-c")
        assert j["body"]["mode"] == "relay" and j["body"]["relay"]["id"] == "relay-x", j
        assert "exception" in a.do(op="get", addr="203.0.113.130:4000", path="/p2p/hello", timeout=2)
        push = c.do(op="hb", wait=0)["body"]["requests"]
        assert push[0]["type"] == "relay" and push[0]["cid"] == j["body"]["cid"], push

        st = json.loads(ls.admin_get("/status"))
        assert st["connects"] == {"direct": 1, "reverse": 1, "lan": 1, "relay": 1}, st
        assert abs(st["relay_dependency"]["since_start"] - 0.25) < 1e-9, st
    finally:
        rc = err = None
        try:
            for a in agents:
                a.close()
            if ls is not None:
                rc = ls.stop()
                err = ls.stderr()
        finally:
            net.delete()
        if ls is not None:
            assert rc == 0, "login-server exit status %r:\n%s" % (rc, err[-3000:])
            assert "AddressSanitizer" not in err and "runtime error:" not in err, err[-4000:]
