#!/bin/sh
# SPDX-License-Identifier: MIT
# Benchmark the relay-server's tunnel mode against socat (a plain TCP relay)
# and its mailbox mode on its own, on this machine, in one run. Never run
# in CI.
#
# usage: tests/bench/relay_bench.sh        (or: make bench-relay)
#
# Starts, on loopback under one temp directory removed on exit:
#   - redis-server on a free port (registry and accounting only);
#   - build/bin/relay-server (release build: make), one HTTP thread per CPU;
#   - socat TCP-LISTEN -> TCP, forwarding to a sink the script runs.
# Then tests/bench/relay_bench.py measures, for both relays:
#   - throughput: BENCH_MIB MiB (default 1024) from one sender to one
#     receiver, timed from the first byte to the receiver's EOF;
#   - latency: BENCH_PINGS (default 5000) 64-byte round trips through the
#     relay (echo at the far end), p50 and p99, and the same directly
#     (no relay) to give the latency each relay adds;
#   - mailbox: BENCH_PAIRS (default 4) sender/receiver pairs for
#     BENCH_SECONDS (default 5) s, messages of 256 bytes, receivers
#     long-polling with acks: messages delivered per second.
# and prints the figures and the ratios relay/socat. The target in the
# issue is tunnel throughput >= 0.7 of socat's. Client and relays share the
# CPUs, so absolute numbers are low on a small machine; compare ratios.
#
# Knobs (environment): BENCH_MIB, BENCH_PINGS, BENCH_PAIRS, BENCH_SECONDS,
# RELAY_SERVER_BIN.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${RELAY_SERVER_BIN:-$ROOT/build/bin/relay-server}
PY=/usr/bin/python3

# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"

bench_need socat redis-server $PY
[ -x "$BIN" ] || die "$BIN not found; build it with make"

bench_init relay-bench
TMP=$tmp

# Ports the kernel picks (the relay bench has no fixed bases).
any_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

RPORT=$(any_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" \
	--logfile "$TMP/redis.log" --daemonize no >/dev/null 2>&1 &
bench_track $!

API=$(any_port)
ADMIN=$(any_port)
KEY=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
cat >"$TMP/relay.ini" <<INI
[server]
listen = 127.0.0.1:$API
admin_listen = 127.0.0.1:$ADMIN
access_log = false
log_level = notice
connection_limit = 10000

[redis]
port = $RPORT

[relay]
id = bench
public_url = http://127.0.0.1:$API
token_key = $KEY
max_per_source = 0
max_per_account = 0
max_session_bytes = 1099511627776
max_queued_bytes = 4194304
INI
"$BIN" --config "$TMP/relay.ini" 2>"$TMP/relay.log" &
bench_track $!

SINK=$(any_port)
SOCAT=$(any_port)
# socat with its usual defaults apart from a buffer as large as the relay's reads.
socat -b 262144 "TCP-LISTEN:$SOCAT,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$SINK" &
bench_track $!

for i in $(seq 1 100); do
	if $PY -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$ADMIN/healthz', timeout=1)" \
		2>/dev/null; then
		break
	fi
	sleep 0.1
done

say "relay-server $(basename "$BIN") on $API, socat on $SOCAT -> $SINK"
$PY "$ROOT/tests/bench/relay_bench.py" --relay "127.0.0.1:$API" --socat "127.0.0.1:$SOCAT" \
	--sink-port "$SINK" --key "$KEY" --mib "${BENCH_MIB:-1024}" --pings "${BENCH_PINGS:-5000}" \
	--pairs "${BENCH_PAIRS:-4}" --seconds "${BENCH_SECONDS:-5}"
