#!/bin/sh
# SPDX-License-Identifier: MIT
# Benchmark the cache-server's chunk GETs against nginx serving the same
# bytes from files, on this machine, in one run; then the pull throughput
# between two caches. Never run in CI.
#
# usage: tests/bench/cache_bench.sh
#
# Starts, all on loopback under one temp directory removed on exit:
#   - redis-server (the registry; not on the chunk path);
#   - cache A (release build: CACHE_SERVER_BIN, default build/bin/cache-server)
#     with BENCH_CHUNKS chunks of BENCH_CHUNK_BYTES in channel "bench",
#     uploaded with a publish token;
#   - nginx with the very same bytes as files under the same URL paths
#     (/v1/live/bench/chunks/SEQ), worker_processes = the cache's threads;
#   - wrk with tests/bench/cache_chunk.lua cycling through the chunks, a
#     warm-up and a measured run against each; prints GETs/s, MB/s, p50/p99
#     and the ratios cache/nginx (target >= 0.8);
#   - cache B, told to POST /v1/pull channel "pullbench" (BENCH_PULL_CHUNKS
#     chunks published to A beforehand): the time until B holds all of
#     them gives the pull throughput in MB/s.
#
# Knobs: BENCH_DURATION (s, 10), BENCH_CONNECTIONS (64), BENCH_WRK_THREADS
# (2), BENCH_SERVER_THREADS (nproc), BENCH_CHUNK_BYTES (65536), BENCH_CHUNKS
# (200), BENCH_PULL_CHUNKS (256), CACHE_SERVER_BIN.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${CACHE_SERVER_BIN:-$ROOT/build/bin/cache-server}
LUA=$ROOT/tests/bench/cache_chunk.lua
DURATION=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNECTIONS:-64}
WRK_THREADS=${BENCH_WRK_THREADS:-2}
SERVER_THREADS=${BENCH_SERVER_THREADS:-$(nproc)}
CHUNK_BYTES=${BENCH_CHUNK_BYTES:-65536}
CHUNKS=${BENCH_CHUNKS:-200}
PULL_CHUNKS=${BENCH_PULL_CHUNKS:-256}
WARMUP=2
KEY=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
PY=/usr/bin/python3

# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"

bench_need wrk nginx curl perl redis-server $PY
[ -x "$BIN" ] || die "$BIN not found; build it with make"
[ "$PULL_CHUNKS" -le 256 ] || die "BENCH_PULL_CHUNKS must fit the 256-chunk window"

bench_init p2pcdn-cache-bench
REDIS_PORT=$(free_port 28379)
A_PORT=$(free_port 28005)
A_ADMIN=$(free_port $((A_PORT + 1000)))
B_PORT=$(free_port $((A_PORT + 1)))
B_ADMIN=$(free_port $((B_PORT + 1000)))
NGX_PORT=$(free_port 28080)

say "redis-server :$REDIS_PORT"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
	--dir "$tmp" --logfile "$tmp/redis.log" >/dev/null 2>&1 </dev/null &
bench_track $!

cache_conf() { # NAME PORT ADMIN
	cat >"$tmp/$1.ini" <<EOC
[server]
listen = 127.0.0.1:$2
admin_listen = 127.0.0.1:$3
threads = $SERVER_THREADS
access_log = false
log_level = warning
max_body = 4194304
[redis]
port = $REDIS_PORT
[cache]
id = bench-$1
token_key = $KEY
max_chunk_bytes = 4194304
memory_max_bytes = 1073741824
channel_max_bytes = 536870912
[pull]
interval_ms = 50
EOC
}
cache_conf a "$A_PORT" "$A_ADMIN"
cache_conf b "$B_PORT" "$B_ADMIN"
"$BIN" --config "$tmp/a.ini" >"$tmp/a.log" 2>&1 </dev/null &
a_pid=$!
bench_track "$a_pid"
"$BIN" --config "$tmp/b.ini" >"$tmp/b.log" 2>&1 </dev/null &
b_pid=$!
bench_track "$b_pid"
wait_http "http://127.0.0.1:$A_ADMIN/healthz" "$a_pid" || { cat "$tmp/a.log" >&2; die "cache A did not come up"; }
wait_http "http://127.0.0.1:$B_ADMIN/healthz" "$b_pid" || { cat "$tmp/b.log" >&2; die "cache B did not come up"; }

# Chunks: the same bytes into cache A (PUT with a publish token minted as
# common/tok.c does) and into nginx's tree.
mkdir -p "$tmp/www/v1/live/bench/chunks"
$PY - "$KEY" "$A_PORT" "$tmp/www/v1/live/bench/chunks" "$CHUNKS" "$CHUNK_BYTES" "$PULL_CHUNKS" <<'EOP' || die "publishing the chunks failed"
import base64, hashlib, hmac, http.client, json, os, struct, sys, time
key, port, www, n, size, npull = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
def tok(ch):
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    body = b64(bytes([1, 2]) + struct.pack(">Q", int(time.time()) + 3600)
               + json.dumps({"ch": ch, "peer": "00000000000000"}, separators=(",", ":")).encode())
    return body + "." + b64(hmac.new(bytes.fromhex(key), body.encode(), hashlib.sha256).digest())
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
def put(ch, seq, data, t):
    conn.request("PUT", "/v1/live/%s/chunks/%d" % (ch, seq), body=data,
                 headers={"Authorization": "Bearer " + t})
    r = conn.getresponse(); r.read()
    if r.status != 201:
        sys.exit("PUT %s/%d: HTTP %d" % (ch, seq, r.status))
t = tok("bench")
for s in range(n):
    d = os.urandom(size)
    put("bench", s, d, t)
    with open(os.path.join(www, str(s)), "wb") as f:
        f.write(d)
t = tok("pullbench")
for s in range(npull):
    put("pullbench", s, os.urandom(size), t)
EOP
chmod -R a+rX "$tmp/www"

bench_nginx "$NGX_PORT" application/octet-stream /v1/live/bench/chunks/0 "	sendfile on;" \
	"		root $tmp/www;
		location /v1/live/ {
			add_header Cache-Control \"public, max-age=51, immutable\";
			etag on;
		}"
curl -fsS "http://127.0.0.1:$A_PORT/v1/live/bench/chunks/7" | cmp -s - "$tmp/www/v1/live/bench/chunks/7" ||
	die "cache A and nginx do not serve the same bytes"

export CACHE_BENCH_FIRST=0 CACHE_BENCH_LAST=$((CHUNKS - 1))
run_wrk() {
	bench_wrk "$1" "$2" "$CONNS" "$WRK_THREADS" "$DURATION" "$1"
}

run_wrk cache "http://127.0.0.1:$A_PORT"
run_wrk nginx "http://127.0.0.1:$NGX_PORT"
# shellcheck disable=SC2154
for s in cache nginx; do
	eval "n=\$${s}_non2xx e=\$${s}_errors"
	if [ "$n" -ne 0 ] || [ "$e" -ne 0 ]; then
		say "WARNING: $s answered $n non-2xx and had $e socket errors"
	fi
done

# ---------------------------------------------------------------- pull
say "cache B pulls $PULL_CHUNKS chunks of $CHUNK_BYTES bytes from cache A"
pull_out=$($PY - "$KEY" "$A_PORT" "$B_PORT" "$PULL_CHUNKS" "$CHUNK_BYTES" <<'EOP'
import base64, hashlib, hmac, http.client, json, struct, sys, time
key, a, b, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
b64 = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
body = b64(bytes([1, 3]) + struct.pack(">Q", int(time.time()) + 60) + b'{"ch":"pullbench"}')
tok = body + "." + b64(hmac.new(bytes.fromhex(key), body.encode(), hashlib.sha256).digest())
c = http.client.HTTPConnection("127.0.0.1", b, timeout=10)
t0 = time.monotonic()
c.request("POST", "/v1/pull", body=json.dumps({"channel": "pullbench", "sources": [
    {"cache_id": "bench-a", "url": "http://127.0.0.1:%d" % a}]}),
    headers={"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
r = c.getresponse(); r.read()
if r.status != 202:
    sys.exit("POST /v1/pull: HTTP %d" % r.status)
while time.monotonic() - t0 < 120:
    c.request("GET", "/v1/live/pullbench/map")
    r = c.getresponse(); m = json.loads(r.read())
    if m["count"] >= n:
        dt = time.monotonic() - t0
        print("%.3f %.1f" % (dt, n * size / dt / 1e6))
        sys.exit(0)
    time.sleep(0.005)
sys.exit("pull incomplete after 120 s")
EOP
) || die "pull benchmark failed"
pull_s=${pull_out% *}
pull_mbps=${pull_out#* }

# shellcheck disable=SC2154
perl -e '
	my ($cr, $cb, $c50, $c99, $nr, $nb, $n50, $n99) = @ARGV;
	printf "\n%-14s %12s %10s %10s %10s\n", "server", "GETs/s", "MB/s", "p50 ms", "p99 ms";
	printf "%-14s %12.0f %10.1f %10.3f %10.3f\n", "cache-server", $cr, $cb / 1e6, $c50 / 1000, $c99 / 1000;
	printf "%-14s %12.0f %10.1f %10.3f %10.3f\n", "nginx files", $nr, $nb / 1e6, $n50 / 1000, $n99 / 1000;
	printf "%-14s %12.2f %10.2f %10.2f %10.2f\n", "cache/nginx", $cr / $nr, $cb / $nb,
	    $n50 ? $c50 / $n50 : 0, $n99 ? $c99 / $n99 : 0;
' "$cache_rps" "$cache_bps" "$cache_p50_us" "$cache_p99_us" "$nginx_rps" "$nginx_bps" \
	"$nginx_p50_us" "$nginx_p99_us"
echo
echo "pull: $PULL_CHUNKS chunks x $CHUNK_BYTES bytes from cache A to cache B in ${pull_s}s = ${pull_mbps} MB/s ([pull] interval_ms = 50)"
echo "wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s, $SERVER_THREADS server threads / nginx workers, $(nproc) CPUs;"
echo "$CHUNKS chunks of $CHUNK_BYTES bytes; $("$BIN" --version 2>&1 | head -n 1)"
