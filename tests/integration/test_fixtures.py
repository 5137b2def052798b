# SPDX-License-Identifier: MIT
"""Self-checks of the test environment (no daemon needed): Redis, PostgreSQL
and the generated geo databases work, so a failure elsewhere is the daemon's."""

import os
import subprocess

from p2ptest import Resp


def test_redis_answers(redis_server):
    with Resp("127.0.0.1", redis_server.port) as r:
        assert r.command("PING") == "PONG"
        assert r.command("SET", "fixture:k", "v", "EX", 10) == "OK"
        assert r.command("GET", "fixture:k") == "v"
        assert r.command("DEL", "fixture:k") == 1


def test_postgres_answers(postgres_server, pgdb):
    assert postgres_server.psql(pgdb, "SELECT 1 + 1") == ["2"]


def _lookup(path, ip, *keys):
    r = subprocess.run(["mmdblookup", "--file", path, "--ip", ip] + list(keys),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    return r.stdout.decode()


def test_mmdb_city_and_asn(mmdb_dir):
    city = os.path.join(mmdb_dir, "city.mmdb")
    asn = os.path.join(mmdb_dir, "asn.mmdb")
    flat = os.path.join(mmdb_dir, "city-flat.mmdb")
    assert '"CN"' in _lookup(city, "1.2.4.7", "country", "iso_code")
    assert '"Guangzhou"' in _lookup(city, "1.2.4.200", "city", "names", "en")
    assert '"Beijing"' in _lookup(city, "198.51.100.7", "subdivisions", "0", "names", "en")
    assert '"Berlin"' in _lookup(city, "2a01:238::1", "city", "names", "en")
    assert "4808" in _lookup(asn, "1.2.4.7", "autonomous_system_number")
    assert "4200000123" in _lookup(asn, "1.2.5.9", "autonomous_system_number")
    assert '"Beijing"' in _lookup(flat, "1.2.4.7", "state1")
    assert '"FR"' in _lookup(flat, "5.10.0.1", "country_code")
    assert "Could not find" in _lookup(city, "9.9.9.9")
    assert "Could not find" in _lookup(asn, "5.10.0.1")
    # IPv4 via the mapped/aliased IPv6 trees
    assert '"CN"' in _lookup(city, "::ffff:1.2.4.7", "country", "iso_code")
