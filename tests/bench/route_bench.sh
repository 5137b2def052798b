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

say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

for t in wrk nginx curl perl redis-server; do
	command -v "$t" >/dev/null 2>&1 || die "$t not found; run deploy/install-deps.sh"
done
[ -x "$BIN" ] || die "$BIN not found; build it with make"

# ---------------------------------------------------------------- cleanup

tmp=""
rs_pid=""
ngx_pid=""
wrk_pid=""
cleanup() {
	set +e
	[ -z "$wrk_pid" ] || kill -TERM "$wrk_pid" 2>/dev/null
	if [ -n "$ngx_pid" ]; then
		kill -TERM "$ngx_pid" 2>/dev/null
		wait "$ngx_pid" 2>/dev/null
	fi
	if [ -n "$rs_pid" ]; then
		kill -TERM "$rs_pid" 2>/dev/null
		wait "$rs_pid" 2>/dev/null
	fi
	if [ -n "$tmp" ] && [ -d "$tmp" ]; then
		"$ROOT/deploy/services.sh" stop "$tmp" >/dev/null 2>&1
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_port BASE: first port from BASE up that nothing listens on.
free_port() {
	perl -MIO::Socket::INET -e '
		for my $p ($ARGV[0] .. $ARGV[0] + 500) {
			my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1",
			    LocalPort => $p, Proto => "tcp", Listen => 1) or next;
			close $s; print $p; exit 0;
		}
		exit 1;' "$1" || die "no free port above $1"
}

# wait_http URL PID: until URL answers 200, or PID dies, or 15 s pass.
wait_http() {
	i=0
	while [ $i -lt 150 ]; do
		curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

tmp=$(mktemp -d /tmp/p2pcdn-bench.XXXXXX)
# PostgreSQL runs as an unprivileged user and nginx workers as nobody: both
# must enter the directory.
chmod 755 "$tmp"

REDIS_PORT=$(free_port 27379)
PG_PORT=$(free_port 27432)
API_PORT=$(free_port 27003)
ADMIN_PORT=$(free_port $((API_PORT + 1000)))
NGX_PORT=$(free_port 27080)

# ---------------------------------------------------------------- services

say "starting Redis :$REDIS_PORT and PostgreSQL :$PG_PORT in $tmp"
"$ROOT/deploy/services.sh" start "$tmp" "$REDIS_PORT" "$PG_PORT" >"$tmp/services.log" 2>&1 || {
	cat "$tmp/services.log" >&2
	die "deploy/services.sh failed"
}

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

mkdir -p "$tmp/www/v1" "$tmp/nginx"
curl -fsS -H "X-Forwarded-For: $typical" "http://127.0.0.1:$API_PORT/v1/route" \
	>"$tmp/www/v1/route" || die "route-server does not answer /v1/route"
chmod -R a+rX "$tmp/www"
body_size=$(wc -c <"$tmp/www/v1/route")
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes $SERVER_THREADS;
daemon off;
master_process on;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events {
	worker_connections 4096;
}
http {
	access_log off;
	default_type application/json;
	keepalive_timeout 65;
	keepalive_requests 1000000;
	client_body_temp_path $tmp/nginx/body;
	proxy_temp_path $tmp/nginx/proxy;
	fastcgi_temp_path $tmp/nginx/fastcgi;
	uwsgi_temp_path $tmp/nginx/uwsgi;
	scgi_temp_path $tmp/nginx/scgi;
	server {
		listen 127.0.0.1:$NGX_PORT;
		root $tmp/www;
		location = /v1/route { }
	}
}
EOF
nginx -e "$tmp/nginx/error.log" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" &
ngx_pid=$!
wait_http "http://127.0.0.1:$NGX_PORT/v1/route" "$ngx_pid" || {
	cat "$tmp/nginx/error.log" >&2
	die "nginx did not come up"
}

# ---------------------------------------------------------------- wrk

# wrk_for SECONDS URL OUT: one wrk run, killed 30 s after it should have
# ended. In the background with wait, so a SIGTERM/SIGINT to this script
# is handled at once rather than after wrk's run.
wrk_for() {
	ROUTE_BENCH_ADDRS=$addrs timeout $(($1 + 30)) \
		wrk -t"$WRK_THREADS" -c"$CONNS" -d"$1s" -s "$LUA" "$2" >"$3" 2>&1 &
	wrk_pid=$!
	rc=0
	wait "$wrk_pid" || rc=$?
	wrk_pid=""
	return $rc
}

# run_wrk NAME URL: warm-up, then the measured run; sets NAME_rps etc.
run_wrk() {
	say "wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s -s tests/bench/route.lua $2 ($1)"
	wrk_for "$WARMUP" "$2" "$tmp/wrk-$1-warmup.out" ||
		{ cat "$tmp/wrk-$1-warmup.out" >&2; die "wrk warm-up against $1 failed"; }
	wrk_for "$DURATION" "$2" "$tmp/wrk-$1.out" ||
		{ cat "$tmp/wrk-$1.out" >&2; die "wrk against $1 failed"; }
	line=$(grep '^BENCH ' "$tmp/wrk-$1.out") || { cat "$tmp/wrk-$1.out" >&2; die "no BENCH line from wrk"; }
	for kv in ${line#BENCH }; do
		eval "${1}_${kv%%=*}=\${kv#*=}"
	done
}

run_wrk route "http://127.0.0.1:$API_PORT/v1/route"
run_wrk nginx "http://127.0.0.1:$NGX_PORT/v1/route"

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
