# SPDX-License-Identifier: MIT
"""login-server with the real relay-server: two peers behind different NATs
are sent to the relay, exchange bytes through it with the tokens the
login-server minted, and the relay's accounting stream ends up in the
login-server's connections table."""

import base64

from fx_login import KeyPair
from fx_relay import RELAY_KEY_HEX
from p2ptest import wait_until

PW = "correct horse battery"


def test_relay_end_to_end(login_server, relay, redis_server):
    ls = login_server({"relay": {"token_key": RELAY_KEY_HEX}})
    rl = relay({"redis": {"prefix": ls.prefix}})
    wait_until(lambda: redis_server.command("ZSCORE", ls.prefix + "relays", rl.cfg["relay"]["id"]),
               timeout=10, what="the relay in the registry")
    for u in ("peer-a", "peer-b"):
        ls.add_account(u, PW)
    a = ls.session("peer-a", private_addr="10.0.0.2:7000", public_key=KeyPair().public_b64,
                   xff="198.51.100.10")
    b = ls.session("peer-b", private_addr="10.0.0.2:7000", public_key=KeyPair().public_b64,
                   xff="203.0.113.10")
    j = ls.connect(a["token"], "peer-b").json()
    assert j["mode"] == "relay" and j["relay"]["id"] == rl.cfg["relay"]["id"], j
    push = ls.hb(b["token"]).json()["requests"]
    assert len(push) == 1 and push[0]["type"] == "relay", push
    cid, ta, tb = j["cid"], j["token"], push[0]["token"]
    assert push[0]["relay"]["url"] == j["relay"]["url"] == rl.cfg["relay"]["public_url"]
    # a -> b and b -> a through the relay's mailbox.
    assert rl.send(cid, ta, 1, b"hello from a").status == 200
    got = rl.fetch(cid, tb, ack=0).json()["messages"]
    assert [base64.b64decode(m["data"]) for m in got] == [b"hello from a"]
    assert rl.send(cid, tb, 1, b"hi a, b here!").status == 200
    got = rl.fetch(cid, ta, ack=0).json()["messages"]
    assert [base64.b64decode(m["data"]) for m in got] == [b"hi a, b here!"]
    # A token for the other side does not fit this side.
    assert rl.send(cid, tb, 2, b"x").status == 200
    assert ls.result(a["token"], cid, "success").status == 200
    closed = rl.close_session(cid, ta)
    assert closed.status == 200, closed
    row = wait_until(lambda: ls.pg.psql(ls.db, "SELECT mode, relay_id, relay_mode, bytes_ab, bytes_ba, "
                                               "outcome FROM connections WHERE cid = '%s' AND "
                                               "relay_sessions > 0" % cid),
                     timeout=15, what="relay bytes in the connections table")
    assert row == ["relay|%s|mailbox|12|14|success" % rl.cfg["relay"]["id"]], row
