# SPDX-License-Identifier: MIT
"""`make install` into a temporary prefix, then what an operator relies on:
every daemon has its binary, a systemd unit that systemd-analyze accepts
(Type=notify, reload by SIGHUP, the hardening the operator guide promises)
and a commented example config whose every key the daemon knows."""

import os
import re
import subprocess

import pytest

from p2ptest import REPO

DAEMONS = sorted(d for d in os.listdir(REPO) if os.path.isfile(os.path.join(REPO, d, "main.c"))
                 and d in os.environ.get("ONLY", d))
REQUIRED = {
    "Type": "notify",
    "ExecReload": "/bin/kill -HUP $MAINPID",
    "Restart": "on-failure",
    "ProtectSystem": "strict",
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
}


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    """Installs the build the tests run (build-asan when it exists)."""
    p = str(tmp_path_factory.mktemp("prefix"))
    build = "build-asan" if os.path.isdir(os.path.join(REPO, "build-asan", "bin")) else "build"
    argv = ["make", "-s", "-C", REPO, "install", "PREFIX=" + p, "B=" + build]
    if build == "build-asan":
        argv.append("SANITIZE=1")
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900)
    assert r.returncode == 0, "make install failed:\n%s" % r.stdout.decode(errors="replace")[-4000:]
    return p


def unit_keys(path):
    keys = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if "=" in line and not line.startswith(("#", ";")):
                k, v = line.split("=", 1)
                keys.setdefault(k, v)
    return keys


def test_every_daemon_is_deployable(prefix):
    assert {"route-server", "tracker"} <= set(DAEMONS), DAEMONS
    for d in DAEMONS:
        binary = os.path.join(prefix, "bin", d)
        assert os.access(binary, os.X_OK), "make install did not install %s" % d
        unit = os.path.join(prefix, "lib", "systemd", "system", "p2pcdn-%s.service" % d)
        assert os.path.isfile(unit), "no systemd unit deploy/systemd/p2pcdn-%s.service" % d
        with open(unit, encoding="utf-8") as f:
            text = f.read()
        assert "@PREFIX@" not in text, "%s: @PREFIX@ left unreplaced" % unit
        keys = unit_keys(unit)
        for k, v in REQUIRED.items():
            assert keys.get(k) == v, "%s: %s=%r, expected %r" % (unit, k, keys.get(k), v)
        assert keys.get("DynamicUser") == "yes" or keys.get("User"), "%s: no DynamicUser= or User=" % unit
        assert "CapabilityBoundingSet" in keys, "%s: no capability bounding" % unit
        conf = "/etc/p2pcdn/%s.ini" % d
        assert keys.get("ExecStart") == "%s --config %s" % (binary, conf), keys.get("ExecStart")
        r = subprocess.run(["systemd-analyze", "verify", unit], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60,
                           env=dict(os.environ, SYSTEMD_LOG_LEVEL="warning"))
        out = r.stdout.decode(errors="replace")
        assert r.returncode == 0, "systemd-analyze verify %s:\n%s" % (unit, out)


def help_keys(helptext):
    """{(section, key)} from the "Config keys" part of --help."""
    keys, section = set(), None
    for line in helptext.split("\n"):
        m = re.match(r"^\[([a-z0-9_]+)\]\s*$", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^  ([a-z0-9_]+)\s+=", line)
        if m and section:
            keys.add((section, m.group(1)))
    return keys


def test_example_configs_cover_every_key(prefix):
    """Each example sets exactly the keys the daemon's --help lists, each
    with a comment above it: the examples are what an operator edits."""
    for d in DAEMONS:
        example = os.path.join(prefix, "share", "p2pcdn", "examples", "%s.ini" % d)
        assert os.path.isfile(example), "no example config deploy/examples/%s.ini" % d
        r = subprocess.run([os.path.join(prefix, "bin", d), "--help"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        assert r.returncode == 0, "%s --help exited %d" % (d, r.returncode)
        known = help_keys(r.stdout.decode(errors="replace"))
        assert known, "%s --help lists no config keys" % d
        # A key is documented when set ("key = v") or shown commented out
        # (";key = v", an optional key with no default worth setting).
        documented, section, seen = set(), None, set()
        with open(example, encoding="utf-8") as f:
            lines = f.read().split("\n")
        for i, line in enumerate(lines):
            m = re.match(r"^\[([a-z0-9_]+)\]\s*$", line)
            if m:
                section = m.group(1)
                continue
            m = re.match(r"^(;?)([a-z0-9_]+)\s*=", line)
            if not m or not section:
                continue
            key = (section, m.group(2))
            if not m.group(1):
                assert key not in seen, "%s:%d: [%s] %s set twice" % (example, i + 1, *key)
                seen.add(key)
            documented.add(key)
            assert i > 0 and lines[i - 1].startswith(";") and not re.match(r"^;[a-z0-9_]+\s*=", lines[i - 1]) \
                or m.group(1), "%s:%d: %s has no comment above it" % (example, i + 1, m.group(2))
        assert documented, "%s: no keys" % example
        assert documented - known == set(), "%s: keys unknown to the daemon: %s" % (
            example, sorted(documented - known))
        assert known - documented == set(), "%s: keys missing from the example: %s" % (
            example, sorted(known - documented))


def test_operator_guide_lists_every_metric():
    """docs/operations.md names every metric a daemon or common/ exports."""
    with open(os.path.join(REPO, "docs", "operations.md"), encoding="utf-8") as f:
        guide = f.read()
    names = set()
    for d in DAEMONS + ["common"]:
        folder = os.path.join(REPO, d)
        for fn in os.listdir(folder):
            if fn.endswith(".c"):
                with open(os.path.join(folder, fn), encoding="utf-8") as f:
                    names |= set(re.findall(r'"(p2pcdn_[a-z0-9_]+)"', f.read()))
    assert len(names) > 20, names
    missing = sorted(n for n in names if "`%s`" % n not in guide and "`%s{" % n not in guide)
    assert not missing, "docs/operations.md does not list: %s" % missing
