#!/bin/sh
# SPDX-License-Identifier: MIT
# Benchmark the index-server's hot paths against nginx serving a static
# body of the same size, on this machine, in one run (docs/index-server.md,
# "Benchmark"). Never run in CI.
#
# usage: tests/bench/index_bench.sh
#
# Starts, all on loopback and under one temp directory removed on exit:
#   - redis-server (no persistence) on a free port;
#   - build/bin/index-server (release build: make) with access_log = false,
#     one stand-in cache registered in Redis that holds the channels (so a
#     join takes the "held" path: no route-server, no pull), heartbeat_s =
#     3600 so no member expires while the benchmark runs;
#   - swarms written straight into Redis in the documented layout:
#     "bench" with BENCH_PEERS (100000) members, "n1k" with 1000 and "n10k"
#     with 10000, PeerIDs spread over 4 countries, 3 carriers, 30 regions,
#     20 cities;
#   - nginx, foreground, own prefix, answering POST with a static file: a
#     real heartbeat answer and a real join answer captured from that
#     index-server.
# Then wrk with tests/bench/index_wrk.lua (random member PeerIDs, requests
# formatted once per thread) runs a warm-up and a measured run of
# heartbeats and of joins against each server, and three short low-
# concurrency join runs against the 1k, 10k and 100k swarms to show that
# join latency does not grow with N (also against a second instance whose
# ViewNum is pinned, so the answer size is the same for every N). Prints
# requests/s, p50/p99 and ratios.
#
# Fairness: nginx gets worker_processes = the index-server's HTTP threads
# (BENCH_SERVER_THREADS, default: the number of CPUs), keep-alive without a
# request cap, no access log. wrk shares the CPUs with the server under test
# (and the index-server also with Redis, which runs every swarm operation as
# a script), so absolute numbers are low on a small machine; compare ratios.
#
# Knobs (environment): BENCH_DURATION (s, default 10), BENCH_CONNECTIONS
# (64), BENCH_WRK_THREADS (2), BENCH_SERVER_THREADS (nproc), BENCH_PEERS
# (100000), BENCH_LAT_DURATION (5), INDEX_SERVER_BIN. Each wrk call is
# killed if it overruns its time by 30 s.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${INDEX_SERVER_BIN:-$ROOT/build/bin/index-server}
LUA=$ROOT/tests/bench/index_wrk.lua
DURATION=${BENCH_DURATION:-10}
LAT_DURATION=${BENCH_LAT_DURATION:-5}
CONNS=${BENCH_CONNECTIONS:-64}
WRK_THREADS=${BENCH_WRK_THREADS:-2}
SERVER_THREADS=${BENCH_SERVER_THREADS:-$(nproc)}
PEERS=${BENCH_PEERS:-100000}
WARMUP=2

# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"

bench_need wrk nginx curl perl redis-server redis-cli
[ -x "$BIN" ] || die "$BIN not found; build it with make"

bench_init p2pcdn-ibench
REDIS_PORT=$(free_port 27479)
API_PORT=$(free_port 27104)
ADMIN_PORT=$(free_port $((API_PORT + 1000)))
NGX_PORT=$(free_port 27180)
CACHE_PORT=$(free_port 27205)
PREFIX="bench:"
R="redis-cli -p $REDIS_PORT"

# ---------------------------------------------------------------- Redis + swarms

say "starting Redis :$REDIS_PORT in $tmp"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
	--logfile "$tmp/redis.log" --daemonize no >/dev/null 2>&1 &
bench_track $!
i=0
until $R ping >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 100 ] || die "redis-server did not come up"
	sleep 0.1
done

# populate CHANNEL COUNT SEED: COUNT members written as the index-server
# stores them (docs/index-server.md, "Redis keys"), and their PeerIDs in
# $tmp/pids-CHANNEL.
populate() {
	perl -e '
		my ($prefix, $ch, $count, $seed, $pidfile) = @ARGV;
		my $now = int(time() * 1000);
		my $sw = "${prefix}swarm:{north:$ch}";
		open(my $pf, ">", $pidfile) or die "$pidfile: $!";
		sub cmd { my @a = @_; my $s = "*" . scalar(@a) . "\r\n";
			$s .= "\$" . length($_) . "\r\n$_\r\n" for @a; print $s; }
		my (@z, @l, @h);
		for my $i (0 .. $count - 1) {
			my $country = 45 + $i % 4;
			my $nettype = 1 + int($i / 4) % 3;
			my $region = 1 + int($i / 12) % 30;
			my $city = 1 + int($i / 360) % 20;
			my $area = (($i >> 16) * 4096 + ($i * 7 + $seed) % 4096) & 0xffff;
			my $node = $i & 0xffff;
			my $v = ((((($country << 4 | $nettype) << 6 | $region) << 6 | $city) << 16 | $area) << 16) | $node;
			my $pid = sprintf("%014x", $v);
			print $pf "$pid\n";
			push @z, $now, $pid; push @l, 0, $pid;
			push @h, $pid, sprintf("203.0.113.%d:%d 2000 viewer", $i % 250 + 1, 4000 + $i % 1000);
			if (@l >= 2000 || $i == $count - 1) {
				cmd("ZADD", $sw, @z); cmd("ZADD", "$sw:lex", @l); cmd("HSET", "$sw:info", @h);
				@z = (); @l = (); @h = ();
			}
		}
		cmd("PERSIST", $sw); ' "$PREFIX" "$1" "$2" "$3" "$tmp/pids-$1" |
		$R --pipe >"$tmp/pipe-$1.log" 2>&1 || { cat "$tmp/pipe-$1.log" >&2; die "populating $1 failed"; }
	got=$($R zcard "${PREFIX}swarm:{north:$1}")
	[ "$got" -eq "$2" ] || die "swarm $1 has $got members, wanted $2"
}
say "writing swarms: bench ($PEERS peers), n10k, n1k"
populate bench "$PEERS" 1
populate n10k 10000 2
populate n1k 1000 3

# A stand-in cache of domain north holding every channel: joins take the
# "held" path. Its URL is never called.
$R hset "${PREFIX}cache:{bench-cache}" domain north url "http://127.0.0.1:$CACHE_PORT" \
	load 100 capacity 1000 >/dev/null
$R zadd "${PREFIX}caches:{north}" 0.1 bench-cache >/dev/null
for ch in bench n10k n1k; do
	$R zadd "${PREFIX}chan:{$ch}:caches" $(($(date +%s) + 86400)) bench-cache >/dev/null
done

# ---------------------------------------------------------------- index-server

key=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
cat >"$tmp/index-server.ini" <<EOF
[server]
listen = 127.0.0.1:$API_PORT
admin_listen = 127.0.0.1:$ADMIN_PORT
threads = $SERVER_THREADS
access_log = false
log_level = warning

[redis]
host = 127.0.0.1
port = $REDIS_PORT
prefix = $PREFIX

[index]
domain = north
route_url =
cache_key = $key
; nobody beats during the benchmark: keep every member alive
heartbeat_s = 3600
EOF
"$BIN" --config "$tmp/index-server.ini" >"$tmp/index-server.log" 2>&1 </dev/null &
idx_pid=$!
bench_track "$idx_pid"
wait_http "http://127.0.0.1:$ADMIN_PORT/healthz" "$idx_pid" || {
	tail -n 20 "$tmp/index-server.log" >&2
	die "index-server did not come up"
}
# A second instance on the same Redis with ViewNum pinned to FIXED_VIEW:
# with the answer size equal for every N, its join latency shows the cost
# of the proximity walk alone against N.
FIXED_VIEW=32
FIX_PORT=$(free_port $((API_PORT + 1)))
FIX_ADMIN=$(free_port $((ADMIN_PORT + 1)))
sed -e "s/^listen = .*/listen = 127.0.0.1:$FIX_PORT/" -e "s/^admin_listen = .*/admin_listen = 127.0.0.1:$FIX_ADMIN/" \
	"$tmp/index-server.ini" >"$tmp/index-fixed.ini"
printf 'view_min = %d\nview_max = %d\n' "$FIXED_VIEW" "$FIXED_VIEW" >>"$tmp/index-fixed.ini"
"$BIN" --config "$tmp/index-fixed.ini" >"$tmp/index-fixed.log" 2>&1 </dev/null &
fix_pid=$!
bench_track "$fix_pid"
wait_http "http://127.0.0.1:$FIX_ADMIN/healthz" "$fix_pid" || {
	tail -n 20 "$tmp/index-fixed.log" >&2
	die "the second index-server did not come up"
}
i=0
until curl -fsS "http://127.0.0.1:$ADMIN_PORT/status" | grep -q bench-cache; do
	i=$((i + 1))
	[ $i -lt 50 ] || die "index-server does not see the stand-in cache"
	sleep 0.1
done

# ---------------------------------------------------------------- nginx

first=$(head -n 1 "$tmp/pids-bench")
mkdir -p "$tmp/www/v1"
curl -fsS -X POST -d "{\"peer_id\":\"$first\",\"channel\":\"bench\"}" \
	"http://127.0.0.1:$API_PORT/v1/heartbeat" >"$tmp/www/v1/heartbeat" ||
	die "index-server does not answer heartbeats"
curl -fsS -X POST -d "{\"peer_id\":\"$first\",\"channel\":\"bench\",\"listen_addr\":\"203.0.113.1:4000\"}" \
	"http://127.0.0.1:$API_PORT/v1/join" >"$tmp/www/v1/join" || die "index-server does not answer joins"
grep -q '"cache_state":"held"' "$tmp/www/v1/join" || die "join did not take the held path: $(cat "$tmp/www/v1/join")"
view=$(sed -n 's/.*"view":\([0-9]*\).*/\1/p' "$tmp/www/v1/join")
# ViewNum of each latency swarm: a join's work grows with it (log N), not with N.
view_of() {
	curl -fsS -X POST -d "{\"peer_id\":\"$(head -n 1 "$tmp/pids-$1")\",\"channel\":\"$1\",\"listen_addr\":\"203.0.113.1:4000\"}" \
		"http://127.0.0.1:$API_PORT/v1/join" | sed -n 's/.*"view":\([0-9]*\).*/\1/p'
}
v1k=$(view_of n1k)
v10k=$(view_of n10k)
members=$(($(grep -o '"peer_id"' "$tmp/www/v1/join" | wc -l) - 1))
chmod -R a+rX "$tmp/www"
bench_nginx "$NGX_PORT" application/json /v1/join "" "		root $tmp/www;
		# The static module refuses POST with 405; serve the file anyway.
		error_page 405 =200 \$uri;
		location = /v1/heartbeat { }
		location = /v1/join { }"
curl -fsS -X POST -d x "http://127.0.0.1:$NGX_PORT/v1/join" | cmp -s - "$tmp/www/v1/join" ||
	die "nginx does not answer POST with the static file"

# ---------------------------------------------------------------- wrk

# run_wrk NAME OP CHANNEL URL [SECONDS CONNS THREADS]: sets NAME_rps etc.
run_wrk() {
	export INDEX_BENCH_OP="$2" INDEX_BENCH_CHANNEL="$3" INDEX_BENCH_PIDS="$tmp/pids-$3"
	bench_wrk "$1" "$4" "${6:-$CONNS}" "${7:-$WRK_THREADS}" "${5:-$DURATION}" "$1: $2 on $3"
	eval "bad=\$((${1}_non2xx + ${1}_errors))"
	# shellcheck disable=SC2154
	[ "$bad" -eq 0 ] || say "WARNING: $1: $bad non-2xx answers or socket errors"
}

# Redis's own time per swarm script during a run: where the time goes.
script_us() {
	$R info commandstats | sed -n 's/^cmdstat_evalsha:.*usec_per_call=\([0-9.]*\).*/\1/p' | tr -d '\r'
}

IDX="http://127.0.0.1:$API_PORT"
NGX="http://127.0.0.1:$NGX_PORT"
$R config resetstat >/dev/null
run_wrk hb heartbeat bench "$IDX/v1/heartbeat"
hb_script_us=$(script_us)
run_wrk nhb heartbeat bench "$NGX/v1/heartbeat"
$R config resetstat >/dev/null
run_wrk join join bench "$IDX/v1/join"
join_script_us=$(script_us)
run_wrk njoin join bench "$NGX/v1/join"
# Latency against N at low concurrency: the cost of one join, not queueing.
run_wrk l1k join n1k "$IDX/v1/join" "$LAT_DURATION" 2 1
run_wrk l10k join n10k "$IDX/v1/join" "$LAT_DURATION" 2 1
run_wrk l100k join bench "$IDX/v1/join" "$LAT_DURATION" 2 1
FIX="http://127.0.0.1:$FIX_PORT"
run_wrk f1k join n1k "$FIX/v1/join" "$LAT_DURATION" 2 1
run_wrk f10k join n10k "$FIX/v1/join" "$LAT_DURATION" 2 1
run_wrk f100k join bench "$FIX/v1/join" "$LAT_DURATION" 2 1
n_after=$($R zcard "${PREFIX}swarm:{north:bench}")

# shellcheck disable=SC2154
perl -e '
	my %v = @ARGV;
	printf "\n%-26s %12s %10s %10s %10s\n", "server", "requests/s", "p50 ms", "p99 ms", "requests";
	for my $r (["hb", "index heartbeat"], ["nhb", "nginx static"], ["join", "index join"],
	    ["njoin", "nginx static"]) {
		my $k = $r->[0];
		printf "%-26s %12.0f %10.3f %10.3f %10d\n", $r->[1], $v{"${k}_rps"},
		    $v{"${k}_p50"} / 1000, $v{"${k}_p99"} / 1000, $v{"${k}_n"};
	}
	printf "%-26s %12.2f\n", "heartbeat/nginx", $v{hb_rps} / $v{nhb_rps};
	printf "%-26s %12.2f\n", "join/nginx", $v{join_rps} / $v{njoin_rps};
	printf "\njoin latency against swarm size (wrk -t1 -c2):\n";
	printf "%-10s %6s %12s %10s %10s %14s\n", "N", "view", "requests/s", "p50 ms", "p99 ms",
	    "p50 us/member";
	for my $r (["l1k", "1000", $v{v1k}], ["l10k", "10000", $v{v10k}], ["l100k", $v{peers}, $v{view}]) {
		my $k = $r->[0];
		printf "%-10s %6d %12.0f %10.3f %10.3f %14.1f\n", $r->[1], $r->[2], $v{"${k}_rps"},
		    $v{"${k}_p50"} / 1000, $v{"${k}_p99"} / 1000, $v{"${k}_p50"} / ($r->[2] || 1);
	}
	for my $r (["f1k", "1000"], ["f10k", "10000"], ["f100k", $v{peers}]) {
		my $k = $r->[0];
		printf "%-10s %6s %12.0f %10.3f %10.3f %14.1f\n", $r->[1], "$v{fixed}*", $v{"${k}_rps"},
		    $v{"${k}_p50"} / 1000, $v{"${k}_p99"} / 1000, $v{"${k}_p50"} / $v{fixed};
	}
	printf "(* second instance with view_min = view_max = %d: the walk alone against N)\n", $v{fixed};
' hb_rps "$hb_rps" hb_p50 "$hb_p50_us" hb_p99 "$hb_p99_us" hb_n "$hb_requests" \
	nhb_rps "$nhb_rps" nhb_p50 "$nhb_p50_us" nhb_p99 "$nhb_p99_us" nhb_n "$nhb_requests" \
	join_rps "$join_rps" join_p50 "$join_p50_us" join_p99 "$join_p99_us" join_n "$join_requests" \
	njoin_rps "$njoin_rps" njoin_p50 "$njoin_p50_us" njoin_p99 "$njoin_p99_us" njoin_n "$njoin_requests" \
	l1k_rps "$l1k_rps" l1k_p50 "$l1k_p50_us" l1k_p99 "$l1k_p99_us" \
	l10k_rps "$l10k_rps" l10k_p50 "$l10k_p50_us" l10k_p99 "$l10k_p99_us" \
	l100k_rps "$l100k_rps" l100k_p50 "$l100k_p50_us" l100k_p99 "$l100k_p99_us" peers "$PEERS" \
	v1k "$v1k" v10k "$v10k" view "$view" fixed "$FIXED_VIEW" \
	f1k_rps "$f1k_rps" f1k_p50 "$f1k_p50_us" f1k_p99 "$f1k_p99_us" \
	f10k_rps "$f10k_rps" f10k_p50 "$f10k_p50_us" f10k_p99 "$f10k_p99_us" \
	f100k_rps "$f100k_rps" f100k_p50 "$f100k_p50_us" f100k_p99 "$f100k_p99_us"
echo
echo "wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s, $SERVER_THREADS server threads / nginx workers, $(nproc) CPUs;"
echo "swarm of $PEERS peers ($n_after after the run), view $view, $members members per join answer;"
echo "Redis time per swarm script: heartbeat ${hb_script_us:-?} us, join ${join_script_us:-?} us;"
echo "answers: heartbeat $(wc -c <"$tmp/www/v1/heartbeat") bytes, join $(wc -c <"$tmp/www/v1/join") bytes; $("$BIN" --version 2>&1 | head -n 1)"
