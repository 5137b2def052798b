# SPDX-License-Identifier: MIT
"""index-server with the real cache-server and route-server: a join for a
channel only another domain's cache holds makes the least loaded cache of
this domain pull it, and the chunks arrive there."""

import time

from fx_index import INDEX_CACHE_KEY, make_pid
from p2ptest import wait_until

CH = "concert"


def test_pull_with_real_caches(route_server, cache_server, index_server):
    rs = route_server()
    rs.put_domain("north", ["http://127.0.0.1:7004"], 52.5, 13.4)
    rs.put_domain("south", ["http://127.0.0.1:7104"], 48.1, 11.6)
    same = {"redis": {"prefix": rs.prefix}}
    south = cache_server(cfg=same, domain="south", token_key=INDEX_CACHE_KEY)
    north = cache_server(cfg=same, domain="north", token_key=INDEX_CACHE_KEY)
    idx = index_server(route_url="http://127.0.0.1:%d" % rs.port, prefix=rs.prefix)

    # A publisher in the south domain uploads a few chunks.
    for seq in range(5):
        r = south.put_chunk(CH, seq, b"chunk-%d-" % seq + b"x" * 1000)
        assert r.status in (200, 201, 204), r
    wait_until(lambda: rs.get("/v1/streams/%s/sources?domain=north" % CH).json()["sources"],
               timeout=10, what="the south cache to register %s" % CH)
    wait_until(lambda: [c["cache_id"] for c in idx.status()["caches"]] == [north.id], timeout=10,
               what="the north cache in the index's registry snapshot")

    r = idx.join(make_pid(node=1), CH)
    assert r.status == 200, r
    j = r.json()
    assert j["cache_state"] == "pull_started", j
    assert j["caches"][0]["cache_id"] == north.id and j["caches"][0]["url"] == north.url, j

    # The north cache pulls the chunks from the south one...
    wait_until(lambda: set(range(5)) <= north.held(CH), timeout=15,
               what="the north cache to hold the pulled chunks")
    r = north.get_chunk(CH, 3)
    assert r.status == 200 and r.body.startswith(b"chunk-3-"), r
    # ...and registers the channel, so later joins find it held: no second pull.
    def held():
        j = idx.join(make_pid(node=2), CH).json()
        return j["cache_state"] == "held" and j
    j = wait_until(held, timeout=10, what="a join to find the channel held in the domain")
    assert j["caches"][0]["cache_id"] == north.id
    m = idx.metrics()
    assert "p2pcdn_index_pulls_started_total 1" in m, m
    time.sleep(0.1)
