#!/bin/sh
# SPDX-License-Identifier: MIT
# Benchmark GET /v1/route against nginx serving a static body of the same
# size, on this machine, in one run (docs/demo.md). Never run in CI.
#
# usage: tests/bench/route_bench.sh        (or: make bench)
#
# Starts, all on loopback and under one temp directory removed on exit:
#   - Redis and PostgreSQL (deploy/services.sh) on free ports;
#   - build/bin/route-server (release build: make) with access_log = false,
#     trusted_proxies = 127.0.0.1/32 and the sample layout of
#     deploy/demo.sh (38 rules);
#   - nginx, foreground, own prefix, serving one file: a real /v1/route
#     answer captured from that route-server.
# Then wrk, with tests/bench/route.lua sending a different X-Forwarded-For
# address on every request, runs a short warm-up and a measured run against
# each, and the script prints requests/s, p50/p99 latency and the ratios.
#
# Fairness: nginx gets worker_processes = route-server's HTTP threads
# (BENCH_SERVER_THREADS, default: the number of CPUs), keep-alive without a
# request cap, no access log. wrk shares the CPUs with the server under test
# (and route-server also with Redis), so absolute numbers are low on a small
# machine; the ratio is the figure to compare between runs and commits.
#
# Geo data: run/geo from deploy/geo-data.sh (real GeoLite2 + ASN, random
# public addresses), fetched if missing; if that fails, the invented test
# databases of tests/gen-mmdb.pl and their addresses. BENCH_GEO=real|test
# forces one.
#
# Knobs (environment): BENCH_DURATION (s, default 10), BENCH_CONNECTIONS
# (64), BENCH_WRK_THREADS (2), BENCH_SERVER_THREADS (nproc), BENCH_GEO,
# ROUTE_SERVER_BIN. Each wrk call is killed if it overruns its time by 30 s.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${ROUTE_SERVER_BIN:-$ROOT/build/bin/route-server}
LUA=$ROOT/tests/bench/route.lua
DURATION=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNECTIONS:-64}
WRK_THREADS=${BENCH_WRK_THREADS:-2}
SERVER_THREADS=${BENCH_SERVER_THREADS:-$(nproc)}
WARMUP=2

# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"

bench_need wrk nginx curl perl redis-server
[ -x "$BIN" ] || die "$BIN not found; build it with make"

bench_init p2pcdn-bench

REDIS_PORT=$(free_port 27379)
PG_PORT=$(free_port 27432)
API_PORT=$(free_port 27003)
ADMIN_PORT=$(free_port $((API_PORT + 1000)))
NGX_PORT=$(free_port 27080)

# ---------------------------------------------------------------- services

say "starting Redis :$REDIS_PORT and PostgreSQL :$PG_PORT in $tmp"
bench_services "$REDIS_PORT" "$PG_PORT"

# ---------------------------------------------------------------- geo data

geo=${BENCH_GEO:-}
if [ "$geo" != test ]; then
	if "$ROOT/deploy/geo-data.sh" "$ROOT/run/geo" >"$tmp/geo.log" 2>&1; then
		geo=real
	elif [ "$geo" = real ]; then
		cat "$tmp/geo.log" >&2
		die "BENCH_GEO=real but deploy/geo-data.sh failed"
	else
		say "real geo data unavailable (see below); using the test databases"
		tail -n 3 "$tmp/geo.log" >&2
		geo="test"
	fi
fi
if [ "$geo" = real ]; then
	geo_conf="city_db = $ROOT/run/geo/city.mmdb
asn_db = $ROOT/run/geo/asn.mmdb
country_path = country_code
region_path = state1
city_path = city
latitude_path = latitude
longitude_path = longitude"
	addrs=random
	typical=223.5.5.5
else
	mkdir -p "$tmp/geo"
	perl "$ROOT/tests/gen-mmdb.pl" "$tmp/geo" || die "tests/gen-mmdb.pl failed"
	geo_conf="city_db = $tmp/geo/city.mmdb
asn_db = $tmp/geo/asn.mmdb"
	addrs="test"
	typical=1.2.4.7
fi

# ---------------------------------------------------------------- route-server

token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$token" >"$tmp/admin_token"
cat >"$tmp/route-server.ini" <<EOF
[server]
listen = 127.0.0.1:$API_PORT
admin_listen = 127.0.0.1:$ADMIN_PORT
threads = $SERVER_THREADS
trusted_proxies = 127.0.0.1/32
admin_token = $token
access_log = false
log_level = warning

[redis]
host = 127.0.0.1
port = $REDIS_PORT

[postgres]
conninfo = host=127.0.0.1 port=$PG_PORT user=postgres dbname=p2pcdn

[route]
$geo_conf
nettype_file = $ROOT/deploy/examples/nettype.csv
; short: the bench allocates a PeerID per request
peerid_ttl_s = 60
; the bench's few thousand addresses each ask many times a minute
max_per_minute = 0
refresh_ms = 200
EOF
"$BIN" --config "$tmp/route-server.ini" --migrate >"$tmp/migrate.log" 2>&1 || {
	cat "$tmp/migrate.log" >&2
	die "route-server --migrate failed"
}
"$BIN" --config "$tmp/route-server.ini" >"$tmp/route-server.log" 2>&1 </dev/null &
rs_pid=$!
bench_track "$rs_pid"
wait_http "http://127.0.0.1:$ADMIN_PORT/healthz" "$rs_pid" || {
	tail -n 20 "$tmp/route-server.log" >&2
	die "route-server did not come up"
}
"$ROOT/deploy/demo.sh" layout "http://127.0.0.1:$ADMIN_PORT" "$tmp/admin_token" "$geo" \
	>"$tmp/layout.log" 2>&1 || {
	cat "$tmp/layout.log" >&2
	die "could not create the domain layout"
}

# ---------------------------------------------------------------- nginx

mkdir -p "$tmp/www/v1"
curl -fsS -H "X-Forwarded-For: $typical" "http://127.0.0.1:$API_PORT/v1/route" \
	>"$tmp/www/v1/route" || die "route-server does not answer /v1/route"
chmod -R a+rX "$tmp/www"
body_size=$(wc -c <"$tmp/www/v1/route")
bench_nginx "$NGX_PORT" application/json /v1/route "" "		root $tmp/www;
		location = /v1/route { }"

# ---------------------------------------------------------------- wrk

# route.lua sends a different X-Forwarded-For address on every request.
export ROUTE_BENCH_ADDRS="$addrs"
bench_wrk route "http://127.0.0.1:$API_PORT/v1/route" "$CONNS" "$WRK_THREADS" "$DURATION" route
bench_wrk nginx "http://127.0.0.1:$NGX_PORT/v1/route" "$CONNS" "$WRK_THREADS" "$DURATION" nginx

# Checked after the run: a benchmark of 503s would measure nothing.
# shellcheck disable=SC2154
if [ "$route_non2xx" -ne 0 ] || [ "$route_errors" -ne 0 ]; then
	say "WARNING: route-server answered $route_non2xx non-2xx and had $route_errors socket errors"
fi
# shellcheck disable=SC2154
if [ "$nginx_non2xx" -ne 0 ] || [ "$nginx_errors" -ne 0 ]; then
	say "WARNING: nginx answered $nginx_non2xx non-2xx and had $nginx_errors socket errors"
fi
# Where the answers went: proof that the lookups and rules really ran.
by_domain=$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" |
	sed -n 's/^p2pcdn_route_allocations_total{domain="\([^"]*\)"} \([0-9]*\).*/\1 \2/p' |
	sort -k2,2nr | tr '\n' ',' | sed 's/,$//; s/,/, /g') || by_domain="?"

# shellcheck disable=SC2154
perl -e '
	my ($rr, $r50, $r99, $nr, $n50, $n99, $rn, $nn) = @ARGV;
	printf "\n%-14s %12s %10s %10s %10s\n", "server", "requests/s", "p50 ms", "p99 ms", "requests";
	printf "%-14s %12.0f %10.3f %10.3f %10d\n", "route-server", $rr, $r50 / 1000, $r99 / 1000, $rn;
	printf "%-14s %12.0f %10.3f %10.3f %10d\n", "nginx static", $nr, $n50 / 1000, $n99 / 1000, $nn;
	printf "%-14s %12.2f %10.2f %10.2f\n", "route/nginx", $rr / $nr,
	    $n50 ? $r50 / $n50 : 0, $n99 ? $r99 / $n99 : 0;
' "$route_rps" "$route_p50_us" "$route_p99_us" "$nginx_rps" "$nginx_p50_us" "$nginx_p99_us" \
	"$route_requests" "$nginx_requests"
echo
echo "wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s, $SERVER_THREADS server threads / nginx workers, $(nproc) CPUs;"
echo "geo data: $geo ($addrs client addresses); body $body_size bytes; $("$BIN" --version 2>&1 | head -n 1)"
echo "route-server allocations by domain: $by_domain"
