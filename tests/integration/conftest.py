# SPDX-License-Identifier: MIT
"""Fixtures for the route-server integration tests: a real redis-server and
a real PostgreSQL in temp dirs on free loopback ports, the test geo-IP
databases, and a factory that configures, migrates, starts and always stops
route-server instances (checking exit status and sanitizer reports).

Binary: $P2PCDN_BIN, else build-asan/bin/route-server if it exists, else
build/bin/route-server (relative to the repo root). Missing binary = failure.

The `tracker` factory does the same for the tracker (PostgreSQL only):
$P2PCDN_TRACKER_BIN, else build-asan/bin/tracker, else build/bin/tracker.
"""

import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile

import pytest

from p2ptest import REPO, Resp, free_port, free_port_tcp_udp, http_request, wait_until

# Each daemon's fixtures live in fx_<daemon>.py beside this file; every
# such module is loaded as a plugin, so its fixtures are visible to all tests.
pytest_plugins = sorted(f[:-3] for f in os.listdir(os.path.dirname(os.path.abspath(__file__)))
                        if f.startswith("fx_") and f.endswith(".py"))

PG_BIN = "/usr/lib/postgresql/15/bin"
ADMIN_TOKEN = "test-admin-token-0123456789"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


def _makefile_version():
    with open(os.path.join(REPO, "Makefile"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("VERSION"):
                return line.split("=", 1)[1].strip()
    return None


VERSION = _makefile_version()


def route_server_binary():
    env = os.environ.get("P2PCDN_BIN")
    if env:
        path = env if os.path.isabs(env) else os.path.join(REPO, env)
    else:
        asan = os.path.join(REPO, "build-asan", "bin", "route-server")
        path = asan if os.path.exists(asan) else os.path.join(REPO, "build", "bin", "route-server")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail("route-server binary not found at %s (build it with `make` or `make SANITIZE=1`, "
                    "or set P2PCDN_BIN)" % path)
    return path


def _daemon_env():
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    return env


# ----------------------------------------------------------------- Redis


class RedisServer:
    """redis-server on 127.0.0.1:port, no persistence, own temp dir."""

    def __init__(self, workdir, port=None, password=None, unixsocket=False):
        self.dir = workdir
        self.port = port or free_port()
        self.proc = None
        self.log = os.path.join(self.dir, "redis.log")
        self.password = password
        self.unixsocket = os.path.join(workdir, "redis.sock") if unixsocket else None

    def start(self):
        assert self.proc is None
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.dir, "--logfile", self.log, "--daemonize", "no"]
        if self.password:
            argv += ["--requirepass", self.password]
        if self.unixsocket:
            argv += ["--unixsocket", self.unixsocket, "--unixsocketperm", "700"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited %s: %s" % (self.proc.returncode, self._logtail()))
            with self.client() as r:
                return r.command("PING") == "PONG"

        try:
            wait_until(up, timeout=10, what="redis-server on port %d" % self.port)
        except BaseException:
            self.kill()
            raise
        return self

    def _logtail(self):
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def kill(self):
        """SIGKILL, as if it crashed. The port stays reserved for restart()."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            self.proc = None

    def client(self, db=0):
        r = Resp("127.0.0.1", self.port)
        try:
            if self.password:
                r.command("AUTH", self.password)
            if db:
                r.command("SELECT", db)
        except BaseException:
            r.close()
            raise
        return r

    def command(self, *args):
        with self.client() as r:
            return r.command(*args)


# ------------------------------------------------------------ PostgreSQL


class PgServer:
    """A PostgreSQL cluster initdb'd into a temp dir, run as `nobody` (initdb
    refuses root), listening on 127.0.0.1:port, superuser `postgres`, trust."""

    def __init__(self, workdir):
        self.dir = workdir
        self.data = os.path.join(workdir, "data")
        self.sock = os.path.join(workdir, "sock")
        self.port = free_port()
        self.started = False

    def _as_nobody(self, argv, **kw):
        cmd = ["runuser", "-u", "nobody", "--"] + argv if os.geteuid() == 0 else argv
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=120, **kw)

    def start(self):
        """initdb (first time only) and start on self.port."""
        os.makedirs(self.sock, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "nobody", "nogroup")
            shutil.chown(self.sock, "nobody", "nogroup")
            os.chmod(self.dir, 0o755)
        if not os.path.exists(self.data):
            r = self._as_nobody([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", "postgres",
                                 "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"])
            assert r.returncode == 0, "initdb failed:\n%s" % r.stdout.decode(errors="replace")
        opts = ("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c max_connections=200" % (self.port, self.sock))
        r = self._as_nobody([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-l",
                             os.path.join(self.dir, "pg.log"), "-w", "-t", "60", "-o", opts, "start"])
        self.started = True  # even a failed start may leave a postmaster behind
        assert r.returncode == 0, "pg_ctl start failed:\n%s\n%s" % (
            r.stdout.decode(errors="replace"), self._logtail())
        return self

    def _logtail(self):
        try:
            with open(os.path.join(self.dir, "pg.log"), encoding="utf-8", errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def stop(self):
        if self.started:
            self._as_nobody([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", "immediate",
                             "-w", "-t", "30", "stop"])
            self.started = False

    def conninfo(self, db):
        return "host=127.0.0.1 port=%d dbname=%s user=postgres connect_timeout=3" % (self.port, db)

    def psql(self, db, sql):
        """Runs sql, returns stdout lines (unaligned, tuples only, '|' sep)."""
        r = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                            "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db,
                            "-c", sql], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        assert r.returncode == 0, "psql %r failed: %s" % (sql, r.stderr.decode(errors="replace"))
        return [l for l in r.stdout.decode().split("\n") if l]

    def createdb(self, name):
        self.psql("postgres", "CREATE DATABASE %s TEMPLATE template0" % name)

    def dropdb(self, name):
        self.psql("postgres", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)


# ---------------------------------------------------------- route-server


def _ini(cfg):
    lines = []
    for section, keys in cfg.items():
        lines.append("[%s]" % section)
        for k, v in keys.items():
            if v is None:
                continue
            if isinstance(v, bool):
                v = "true" if v else "false"
            lines.append("%s = %s" % (k, v))
        lines.append("")
    return "\n".join(lines)


def _merge(base, over):
    out = {s: dict(k) for s, k in base.items()}
    for s, keys in (over or {}).items():
        out.setdefault(s, {})
        for k, v in keys.items():
            out[s][k] = v
    return out


class RouteServer:
    """One route-server process with its own config file and log files."""

    def __init__(self, binary, workdir, cfg, extra=""):
        self.binary = binary
        self.dir = workdir
        self.config_path = os.path.join(workdir, "route-server.ini")
        self.stderr_path = os.path.join(workdir, "stderr.log")
        self.stdout_path = os.path.join(workdir, "stdout.log")
        self.proc = None
        self.cfg = cfg
        self.write_config(cfg, extra)
        host, port = cfg["server"]["listen"].split(",")[0].rsplit(":", 1)
        self.host = host.strip("[] ")
        self.port = int(port)
        ahost, aport = cfg["server"]["admin_listen"].rsplit(":", 1)
        self.admin_host = ahost.strip("[] ")
        self.admin_port = int(aport)
        self.stopped_rc = None
        self.pg = None
        self.db = None

    # config --------------------------------------------------------------
    def write_config(self, cfg, extra=""):
        """(Re)writes the config file: cfg as INI plus raw `extra` text.
        Returns the text written."""
        self.cfg = cfg
        text = _ini(cfg) + extra
        tmp = self.config_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, self.config_path)
        return text

    def update_config(self, over, extra=""):
        return self.write_config(_merge(self.cfg, over), extra)

    # processes -----------------------------------------------------------
    def cli(self, *args, timeout=60, config=True):
        """Runs the binary to completion (e.g. --migrate, --check-config).
        Returns CompletedProcess with text stdout/stderr; sanitizer reports
        fail the test."""
        argv = [self.binary] + (["--config", self.config_path] if config else []) + list(args)
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=_daemon_env(), cwd=self.dir)
        r.stdout = r.stdout.decode("utf-8", "replace")
        r.stderr = r.stderr.decode("utf-8", "replace")
        for mark in SANITIZER_MARKS:
            assert mark not in r.stderr, "sanitizer report from %s:\n%s" % (" ".join(argv), r.stderr)
        return r

    def migrate(self):
        r = self.cli("--migrate")
        assert r.returncode == 0, "--migrate exited %d:\nstdout: %s\nstderr: %s" % (
            r.returncode, r.stdout, r.stderr)
        return r

    def spawn(self, env_extra=None):
        assert self.proc is None or self.proc.poll() is not None
        env = _daemon_env()
        env.update(env_extra or {})
        self.stopped_rc = None
        self._err = open(self.stderr_path, "ab")
        self._out = open(self.stdout_path, "ab")
        self.proc = subprocess.Popen([self.binary, "--config", self.config_path], stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err, env=env, cwd=self.dir)
        return self.proc

    def wait_healthy(self, timeout=20):
        def up():
            if self.proc.poll() is not None:
                raise AssertionError("route-server exited with %d before /healthz answered; stderr:\n%s"
                                     % (self.proc.returncode, self.stderr()[-4000:]))
            try:
                return self.admin("GET", "/healthz", timeout=2).status == 200
            except OSError:
                return False

        try:
            wait_until(up, timeout=timeout, interval=0.05, what="/healthz")
        except AssertionError as e:
            if self.proc.poll() is not None:
                raise AssertionError(str(e).split("last: ", 1)[-1]) from None
            raise

    def start(self, wait=True, env_extra=None):
        self.spawn(env_extra)
        if wait:
            self.wait_healthy()
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        assert self.alive(), "route-server is not running; stderr:\n%s" % self.stderr()[-3000:]
        self.proc.send_signal(sig)

    def stop(self, timeout=25):
        """SIGTERM and wait. Returns the exit status (None if never started)."""
        if self.proc is None:
            return self.stopped_rc
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                self.stopped_rc = "hung: no exit %ds after SIGTERM (killed)" % timeout
        if self.stopped_rc is None:
            self.stopped_rc = self.proc.returncode
        self.proc = None
        for f in (self._err, self._out):
            f.close()
        return self.stopped_rc

    def wait_exit(self, timeout=20):
        """For processes expected to exit on their own: returns the status."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("route-server still running after %ds; stderr:\n%s"
                                 % (timeout, self.stderr()[-3000:]))
        return self.stop()

    def stderr(self):
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def problems(self, expect_rc=0):
        """Stops the process; returns a list of complaints (exit status,
        sanitizer reports)."""
        out = []
        started = self.proc is not None or self.stopped_rc is not None
        rc = self.stop()
        if started and expect_rc is not None and rc != expect_rc:
            out.append("route-server %s: exit status %r after SIGTERM, expected %r" % (self.dir, rc, expect_rc))
        err = self.stderr()
        for mark in SANITIZER_MARKS:
            if mark in err:
                i = err.index(mark)
                out.append("route-server %s: sanitizer report:\n%s" % (self.dir, err[max(0, i - 200):i + 4000]))
                break
        if out:
            out.append("--- stderr tail ---\n" + err[-3000:])
        return out

    # HTTP ----------------------------------------------------------------
    def get(self, path, headers=None, timeout=10):
        return http_request(self.host, self.port, "GET", path, headers=headers, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=10):
        return http_request(self.host, self.port, method, path, body=body, headers=headers, timeout=timeout)

    def route(self, xff=None, headers=None, timeout=10):
        h = dict(headers or {})
        if xff is not None:
            h["X-Forwarded-For"] = xff
        return self.get("/v1/route", headers=h, timeout=timeout)

    def admin(self, method, path, body=None, token=None, headers=None, timeout=10):
        """A request on the admin listener. token=None: no Authorization;
        token=True: the configured admin token; a string: that token."""
        h = dict(headers or {})
        if token is True:
            token = self.cfg["server"].get("admin_token")
        if token is not None:
            h["Authorization"] = "Bearer %s" % token
        return http_request(self.admin_host, self.admin_port, method, path, body=body, headers=h,
                            timeout=timeout)

    def put_domain(self, name, index_servers=None, latitude=None, longitude=None):
        body = {"index_servers": index_servers if index_servers is not None else ["http://%s.example:7004" % name]}
        if latitude is not None:
            body["latitude"] = latitude
            body["longitude"] = longitude
        r = self.admin("PUT", "/v1/admin/domains/%s" % name, body, token=True)
        assert r.status in (200, 201), "PUT domain %s: %r" % (name, r)
        self.sync()
        return r.json()

    def add_rule(self, **rule):
        r = self.admin("POST", "/v1/admin/rules", rule, token=True)
        assert r.status == 201, "POST rule %r: %r" % (rule, r)
        j = r.json()
        assert "id" in j, j
        self.sync()
        return j

    def sync(self, timeout=5):
        """Waits until this instance has loaded the domain/rule generation
        now in PostgreSQL (docs: changes apply within refresh_ms, also on
        the instance that made them)."""
        if self.pg is None:
            return
        gen = int(self.pg.psql(self.db, "SELECT generation FROM route_generation WHERE id = 1")[0])

        def loaded():
            r = self.admin("GET", "/metrics")
            for line in r.text.split("\n"):
                if line.startswith("p2pcdn_route_generation ") or line.startswith("p2pcdn_route_generation{"):
                    return float(line.rsplit(" ", 1)[1]) >= gen
            return False

        wait_until(loaded, timeout=timeout, interval=0.05,
                   what="p2pcdn_route_generation >= %d (the generation in PostgreSQL)" % gen)


# -------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def session_dir():
    d = tempfile.mkdtemp(prefix="p2pcdn-it-")
    os.chmod(d, 0o755)
    yield d
    if os.environ.get("P2PCDN_KEEP_TMP"):
        print("keeping %s" % d)
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server(session_dir):
    d = os.path.join(session_dir, "redis")
    os.makedirs(d)
    srv = RedisServer(d)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def redis_factory(tmp_path):
    """Dedicated redis-servers for tests that kill them."""
    made = []

    def make(port=None, **kw):
        d = tempfile.mkdtemp(dir=str(tmp_path), prefix="redis-")
        srv = RedisServer(d, port, **kw)
        made.append(srv)
        return srv.start()

    try:
        yield make
    finally:
        for s in made:
            s.stop()


@pytest.fixture(scope="session")
def postgres_server(session_dir):
    d = os.path.join(session_dir, "pg")
    os.makedirs(d)
    srv = PgServer(d)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def postgres_factory(session_dir):
    """Dedicated PostgreSQL clusters for tests that stop them (under the
    session dir: pytest's tmp_path is not reachable for `nobody`)."""
    made = []

    def make():
        d = tempfile.mkdtemp(dir=session_dir, prefix="pg-")
        srv = PgServer(d)
        made.append(srv)
        return srv.start()

    try:
        yield make
    finally:
        for s in made:
            s.stop()


@pytest.fixture(scope="session")
def mmdb_dir(session_dir):
    d = os.path.join(session_dir, "mmdb")
    os.makedirs(d)
    r = subprocess.run(["perl", os.path.join(REPO, "tests", "gen-mmdb.pl"), d], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    assert r.returncode == 0, "gen-mmdb.pl failed:\n%s" % r.stdout.decode(errors="replace")
    for f in ("city.mmdb", "city-flat.mmdb", "asn.mmdb"):
        assert os.path.getsize(os.path.join(d, f)) > 0, f
    return d


_db_counter = itertools.count(1)


@pytest.fixture
def pgdb(postgres_server):
    """A fresh, empty database for this test (dropped afterwards)."""
    name = "rt_%d_%d" % (os.getpid(), next(_db_counter))
    postgres_server.createdb(name)
    try:
        yield name
    finally:
        postgres_server.dropdb(name)


@pytest.fixture
def route_binary():
    return route_server_binary()


@pytest.fixture
def route_server(route_binary, tmp_path, redis_server, postgres_server, pgdb, mmdb_dir):
    """Factory: route_server(cfg=None, extra="", start=True, migrate=True,
    redis=None, db=None) -> RouteServer.

    cfg overrides the test defaults ({section: {key: value}}, None drops a
    key); extra is appended raw to the INI file. All instances of one test
    share one Redis key prefix and one fresh database unless told otherwise.
    Every instance is stopped at the end with SIGTERM; a non-zero exit status
    or a sanitizer report fails the test."""
    made = []
    counter = itertools.count(1)
    prefix = "p2pt%d:" % next(_db_counter)

    def make(cfg=None, extra="", start=True, migrate=True, redis=None, db=None, expect_rc=0, pg=None):
        n = next(counter)
        d = str(tmp_path / ("rs%d" % n))
        os.makedirs(d)
        rds = redis or redis_server
        base = {
            "server": {
                "listen": "127.0.0.1:%d" % free_port(),
                "admin_listen": "127.0.0.1:%d" % free_port(),
                "threads": 4,
                "trusted_proxies": "127.0.0.1/32",
                "admin_token": ADMIN_TOKEN,
                "drain_timeout_s": 2,
                "log_level": "info",
            },
            "redis": {
                "host": "127.0.0.1",
                "port": rds.port,
                "prefix": prefix,
                "connect_timeout_ms": 200,
                "command_timeout_ms": 500,
                "max_backoff_ms": 1000,
            },
            "postgres": {
                "conninfo": (pg or postgres_server).conninfo(db or pgdb),
            },
            "route": {
                "city_db": os.path.join(mmdb_dir, "city.mmdb"),
                "asn_db": os.path.join(mmdb_dir, "asn.mmdb"),
                "default_domain": "default",
                "refresh_ms": 500,
                # Tests ask for thousands of PeerIDs from one address; the
                # per-address limit has its own test.
                "max_per_minute": 0,
            },
        }
        rs = RouteServer(route_binary, d, _merge(base, cfg), extra)
        rs.expect_rc = expect_rc
        rs.pg = pg or postgres_server
        rs.db = db or pgdb
        rs.redis = rds
        rs.prefix = prefix
        made.append(rs)
        if migrate:
            rs.migrate()
        if start:
            rs.start()
        return rs

    make.prefix = prefix
    try:
        yield make
    finally:
        problems = []
        for rs in made:
            problems += rs.problems(getattr(rs, "expect_rc", 0))
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def rs(route_server):
    """One running route-server with the domain `default` configured."""
    srv = route_server()
    srv.put_domain("default", ["http://127.0.0.1:7004"])
    return srv


# --------------------------------------------------------------- tracker


def daemon_binary(name, env_var):
    """$env_var, else build-asan/bin/NAME, else build/bin/NAME; missing = failure."""
    env = os.environ.get(env_var)
    if env:
        path = env if os.path.isabs(env) else os.path.join(REPO, env)
    else:
        asan = os.path.join(REPO, "build-asan", "bin", name)
        path = asan if os.path.exists(asan) else os.path.join(REPO, "build", "bin", name)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail("%s binary not found at %s (build it with `make` or `make SANITIZE=1`, "
                    "or set %s)" % (name, path, env_var))
    return path


def tracker_binary():
    """$P2PCDN_TRACKER_BIN, else build-asan/bin/tracker, else build/bin/tracker."""
    return daemon_binary("tracker", "P2PCDN_TRACKER_BIN")


class Daemon(RouteServer):
    """Any daemon process: its config file (NAME.ini), logs, public API
    (first IPv4 and first [IPv6] address of [server] listen) and admin
    listener. Subclasses set NAME; the route-server process handling is
    reused and messages name the daemon."""

    NAME = "daemon"

    def __init__(self, binary, workdir, cfg, extra=""):  # pylint: disable=super-init-not-called
        self.binary = binary
        self.dir = workdir
        self.config_path = os.path.join(workdir, "%s.ini" % self.NAME)
        self.stderr_path = os.path.join(workdir, "stderr.log")
        self.stdout_path = os.path.join(workdir, "stdout.log")
        self.proc = None
        self.cfg = cfg
        self.write_config(cfg, extra)
        self.host, self.port, self.host6, self.port6 = "127.0.0.1", None, None, None
        for part in cfg["server"]["listen"].split(","):
            h, p = part.strip().rsplit(":", 1)
            if h.startswith("["):
                self.host6, self.port6 = h.strip("[]"), int(p)
            elif self.port is None:
                self.host, self.port = h, int(p)
        ahost, aport = cfg["server"]["admin_listen"].rsplit(":", 1)
        self.admin_host = ahost.strip("[] ")
        self.admin_port = int(aport)
        self.stopped_rc = None
        self.pg = None
        self.db = None

    def wait_healthy(self, timeout=30):
        def up():
            if self.proc.poll() is not None:
                raise AssertionError("%s exited with %d before /healthz answered; stderr:\n%s"
                                     % (self.NAME, self.proc.returncode, self.stderr()[-4000:]))
            try:
                return self.admin("GET", "/healthz", timeout=2).status == 200
            except OSError:
                return False

        try:
            wait_until(up, timeout=timeout, interval=0.05, what="%s /healthz" % self.NAME)
        except AssertionError as e:
            if self.proc.poll() is not None:
                raise AssertionError(str(e).split("last: ", 1)[-1]) from None
            raise

    def signal(self, sig):
        assert self.alive(), "%s is not running; stderr:\n%s" % (self.NAME, self.stderr()[-3000:])
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=20):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s still running after %ds; stderr:\n%s"
                                 % (self.NAME, timeout, self.stderr()[-3000:]))
        return self.stop()

    def problems(self, expect_rc=0):
        out = []
        started = self.proc is not None or self.stopped_rc is not None
        rc = self.stop()
        if started and expect_rc is not None and rc != expect_rc:
            out.append("%s %s: exit status %r after SIGTERM, expected %r" % (self.NAME, self.dir, rc, expect_rc))
        err = self.stderr()
        for mark in SANITIZER_MARKS:
            if mark in err:
                i = err.index(mark)
                out.append("%s %s: sanitizer report:\n%s" % (self.NAME, self.dir, err[max(0, i - 200):i + 4000]))
                break
        if out:
            out.append("--- stderr tail ---\n" + err[-3000:])
        return out

    def get6(self, path, headers=None, timeout=10):
        assert self.port6, "this %s has no [::1] listener" % self.NAME
        return http_request(self.host6, self.port6, "GET", path, headers=headers, timeout=timeout)

    def api(self, method, path, body=None, token=None, headers=None, timeout=10):
        """A request on the public API. token: None = no Authorization, True
        = the configured admin token, a string = that token."""
        h = dict(headers or {})
        if token is True:
            token = self.cfg["server"].get("admin_token")
        if token is not None:
            h["Authorization"] = "Bearer %s" % token
        return http_request(self.host, self.port, method, path, body=body, headers=h, timeout=timeout)


class Tracker(Daemon):
    """One tracker process; adds the UDP port of [tracker] udp_listen."""

    NAME = "tracker"

    def __init__(self, binary, workdir, cfg, extra=""):
        super().__init__(binary, workdir, cfg, extra)
        udp = cfg["tracker"].get("udp_listen") or ""
        first = udp.split(",")[0].rsplit(":", 1)
        self.udp_port = int(first[1]) if len(first) == 2 and first[1].isdigit() else None


@pytest.fixture
def tracker(postgres_server, pgdb, tmp_path):
    """Factory: tracker(cfg=None, extra="", start=True, migrate=True,
    ipv6=False, udp=True, db=None, pg=None, expect_rc=0) -> Tracker.

    Defaults: HTTP and UDP on one free 127.0.0.1 port, open mode, counts
    flushed and the whitelist re-read every second. ipv6=True adds a [::1]
    HTTP listener. Every instance is stopped with SIGTERM at the end; an
    exit status other than expect_rc (None = any) or a sanitizer report
    fails the test."""
    binary = tracker_binary()
    made = []
    counter = itertools.count(1)

    def make(cfg=None, extra="", start=True, migrate=True, ipv6=False, udp=True, db=None, pg=None,
             expect_rc=0):
        n = next(counter)
        d = str(tmp_path / ("trk%d" % n))
        os.makedirs(d)
        port = free_port_tcp_udp()
        listen = "127.0.0.1:%d" % port
        if ipv6:
            listen += ",[::1]:%d" % free_port(socket.AF_INET6, "::1")
        base = {
            "server": {
                "listen": listen,
                "admin_listen": "127.0.0.1:%d" % free_port(),
                "threads": 2,
                "admin_token": ADMIN_TOKEN,
                "drain_timeout_s": 2,
                "log_level": "info",
            },
            "postgres": {
                "conninfo": (pg or postgres_server).conninfo(db or pgdb),
                "pool_size": 2,
            },
            "tracker": {
                "udp_listen": ("127.0.0.1:%d" % port) if udp else "",
                "mode": "open",
                "flush_s": 1,
                "whitelist_refresh_s": 1,
                "shard_bits": 4,
            },
        }
        t = Tracker(binary, d, _merge(base, cfg), extra)
        t.expect_rc = expect_rc
        t.pg = pg or postgres_server
        t.db = db or pgdb
        made.append(t)
        if migrate:
            t.migrate()
        if start:
            t.start()
        return t

    try:
        yield make
    finally:
        problems = []
        for t in made:
            problems += t.problems(getattr(t, "expect_rc", 0))
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)
