#!/bin/sh
# SPDX-License-Identifier: MIT
# Benchmark our tracker against Debian's opentracker on this machine, in one
# run, with the same workload (docs/tracker.md#benchmark). Never run in CI.
#
# usage: tests/bench/tracker_bench.sh
#
# Starts, all on loopback and under one temp directory removed on exit:
#   - Redis and PostgreSQL (deploy/services.sh) on free ports (the tracker
#     keeps its catalog in PostgreSQL; Redis is started by services.sh but
#     not used);
#   - build/bin/tracker (release build: make), HTTP and UDP on one free
#     port, mode = whitelist with the bench's torrents registered, no access
#     log;
#   - opentracker (Debian package, whitelist build), foreground, own config,
#     HTTP and UDP on one free port, whitelisting the same torrents.
# Both whitelist the same BENCH_TORRENTS info_hashes (SHA-1 of
# "p2pcdn-tracker-bench-N"): Debian's opentracker is built whitelist-only,
# so ours runs in whitelist mode too and both do the same lookup.
#
# Phases, each tracker in turn, each bounded in time:
#   1. fill: udp_announce_load (tests/bench/udp_announce_load.c, built here
#      with cc -O2) announces BENCH_TORRENTS x BENCH_PEERS distinct peers
#      (1,000,000 by default: port 10000+k on torrent t) over UDP, re-sending
#      lost ones; then VmRSS from /proc/PID/status (before and after the
#      fill), our /status store_bytes and opentracker's /stats peer count.
#      This is also the swarm both later phases run on.
#   2. HTTP: wrk with tests/bench/tracker.lua (random torrent of the list,
#      random port and peer_id, a quarter seeders, compact=1, numwant=50,
#      one connection per announce), a short warm-up, then the measured run.
#   3. UDP: udp_announce_load in random mode (random torrent, random port,
#      same seed for both), BENCH_UDP_SOCKETS x BENCH_UDP_WINDOW announces
#      in flight, replies counted, losses reported.
#
# Threads: opentracker serves HTTP and (without listen.udp.workers) UDP on
# one thread, its main io loop; its other threads only clean up, reload the
# whitelist and build statistics. Our UDP tracker is one loop thread too, and
# our HTTP gets [server] threads = BENCH_SERVER_THREADS, default 1 to match.
# wrk and the load generator share the CPUs with the tracker under test, so
# absolute numbers are low on a small machine; the ratios are the figures to
# compare between runs and commits.
#
# Knobs (environment): BENCH_DURATION (s per measured run, default 10; the
# fill is bounded by twice that), BENCH_TORRENTS (10000), BENCH_PEERS (peers
# per torrent in the fill, 100), BENCH_CONNECTIONS (64), BENCH_WRK_THREADS
# (2), BENCH_SERVER_THREADS (1), BENCH_UDP_SOCKETS (16), BENCH_UDP_WINDOW
# (8: 128 in flight fit opentracker's default socket buffer),
# BENCH_HTTP_KEEPALIVE (0; 1 keeps connections open, which only our tracker
# supports), TRACKER_BIN. Each load run is killed 30 s after its time.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${TRACKER_BIN:-$ROOT/build/bin/tracker}
LUA=$ROOT/tests/bench/tracker.lua
DURATION=${BENCH_DURATION:-10}
TORRENTS=${BENCH_TORRENTS:-10000}
PEERS=${BENCH_PEERS:-100}
CONNS=${BENCH_CONNECTIONS:-64}
WRK_THREADS=${BENCH_WRK_THREADS:-2}
SERVER_THREADS=${BENCH_SERVER_THREADS:-1}
UDP_SOCKETS=${BENCH_UDP_SOCKETS:-16}
UDP_WINDOW=${BENCH_UDP_WINDOW:-8}
KEEPALIVE=${BENCH_HTTP_KEEPALIVE:-0}
WARMUP=2
FILL_S=$((2 * DURATION))
FILL_BASE_PORT=10000

say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

for t in wrk curl perl cc opentracker psql; do
	command -v "$t" >/dev/null 2>&1 || die "$t not found; run deploy/install-deps.sh"
done
[ -x "$BIN" ] || die "$BIN not found; build it with make"
[ $((FILL_BASE_PORT + PEERS - 1)) -le 65535 ] || die "BENCH_PEERS too large: ports run out"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- cleanup

tmp=""
trk_pid=""
ot_pid=""
load_pid=""
cleanup() {
	set +e
	[ -z "$load_pid" ] || kill -TERM "$load_pid" 2>/dev/null
	for p in $trk_pid $ot_pid; do
		kill -TERM "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	if [ -n "$tmp" ] && [ -d "$tmp" ]; then
		"$ROOT/deploy/services.sh" stop "$tmp" >/dev/null 2>&1
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_port BASE: first port from BASE up that is free for TCP and UDP.
free_port() {
	perl -MIO::Socket::INET -e '
		for my $p ($ARGV[0] .. $ARGV[0] + 500) {
			my $t = IO::Socket::INET->new(LocalAddr => "127.0.0.1",
			    LocalPort => $p, Proto => "tcp", Listen => 1) or next;
			my $u = IO::Socket::INET->new(LocalAddr => "127.0.0.1",
			    LocalPort => $p, Proto => "udp") or next;
			close $t; close $u; print $p; exit 0;
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

# run_bounded SECONDS OUT CMD...: CMD in the background (so a signal to this
# script is handled at once), killed 30 s after SECONDS; stdout+stderr to OUT.
run_bounded() {
	secs=$1 out=$2
	shift 2
	timeout $((secs + 30)) "$@" >"$out" 2>&1 &
	load_pid=$!
	rc=0
	wait "$load_pid" || rc=$?
	load_pid=""
	return $rc
}

# parse_kv PREFIX LINE: sets PREFIX_key=value for each key=value of LINE.
parse_kv() {
	for kv in $2; do
		case $kv in
		*=*) eval "${1}_${kv%%=*}=\${kv#*=}" ;;
		esac
	done
}

# rss_kb PID: VmRSS in kB.
rss_kb() {
	sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"
}

tmp=$(mktemp -d /tmp/p2pcdn-trkbench.XXXXXX)
# PostgreSQL runs as an unprivileged user and opentracker drops to nobody:
# both must enter the directory.
chmod 755 "$tmp"

REDIS_PORT=$(free_port 28379)
PG_PORT=$(free_port 28432)
TRK_PORT=$(free_port 28969)
ADMIN_PORT=$(free_port $((TRK_PORT + 1000)))
OT_PORT=$(free_port $((TRK_PORT + 1)))
[ "$OT_PORT" != "$ADMIN_PORT" ] || OT_PORT=$(free_port $((ADMIN_PORT + 1)))

# ---------------------------------------------------------------- workload

say "building the UDP load generator"
cc -O2 -std=gnu11 -Wall -Wextra -o "$tmp/udp_announce_load" \
	"$ROOT/tests/bench/udp_announce_load.c" || die "cannot build udp_announce_load.c"
LOAD=$tmp/udp_announce_load

perl -MDigest::SHA=sha1_hex -e \
	'print sha1_hex("p2pcdn-tracker-bench-$_"), "\n" for 0 .. $ARGV[0] - 1' "$TORRENTS" \
	>"$tmp/hashes.txt"
HASHES=$tmp/hashes.txt

# ---------------------------------------------------------------- services

say "starting PostgreSQL :$PG_PORT (and Redis :$REDIS_PORT) in $tmp"
"$ROOT/deploy/services.sh" start "$tmp" "$REDIS_PORT" "$PG_PORT" >"$tmp/services.log" 2>&1 || {
	cat "$tmp/services.log" >&2
	die "deploy/services.sh failed"
}

# ---------------------------------------------------------------- our tracker

cat >"$tmp/tracker.ini" <<EOF
[server]
listen = 127.0.0.1:$TRK_PORT
admin_listen = 127.0.0.1:$ADMIN_PORT
threads = $SERVER_THREADS
access_log = false
log_level = warning

[postgres]
conninfo = host=127.0.0.1 port=$PG_PORT user=postgres dbname=p2pcdn

[tracker]
udp_listen = 127.0.0.1:$TRK_PORT
mode = whitelist
; nothing may expire during the run (opentracker: 45 min, compiled in)
peer_timeout_s = 7200
numwant_default = 50
EOF
"$BIN" --config "$tmp/tracker.ini" --migrate >"$tmp/migrate.log" 2>&1 || {
	cat "$tmp/migrate.log" >&2
	die "tracker --migrate failed"
}
# Register the torrents straight in the catalog: bytea in COPY text form.
awk '{ printf "\\\\x%s\tvod\tbench %d\n", $1, NR - 1 }' "$HASHES" |
	psql -X -q -v ON_ERROR_STOP=1 -d "host=127.0.0.1 port=$PG_PORT user=postgres dbname=p2pcdn" \
		-c "COPY programs (info_hash, kind, name) FROM STDIN" >"$tmp/copy.log" 2>&1 || {
	cat "$tmp/copy.log" >&2
	die "cannot register the bench torrents"
}
"$BIN" --config "$tmp/tracker.ini" >"$tmp/tracker.log" 2>&1 </dev/null &
trk_pid=$!
wait_http "http://127.0.0.1:$ADMIN_PORT/healthz" "$trk_pid" || {
	tail -n 20 "$tmp/tracker.log" >&2
	die "tracker did not come up"
}

# ---------------------------------------------------------------- opentracker

# It chroots to its rootdir and drops to nobody, so the whitelist path is
# relative to the rootdir.
mkdir -p "$tmp/ot"
cp "$HASHES" "$tmp/ot/whitelist.txt"
chmod 755 "$tmp/ot"
chmod 644 "$tmp/ot/whitelist.txt"
cat >"$tmp/ot/opentracker.conf" <<EOF
listen.tcp 127.0.0.1:$OT_PORT
listen.udp 127.0.0.1:$OT_PORT
access.whitelist /whitelist.txt
access.stats 127.0.0.1
tracker.rootdir $tmp/ot
tracker.user nobody
EOF
opentracker -f "$tmp/ot/opentracker.conf" >"$tmp/opentracker.log" 2>&1 </dev/null &
ot_pid=$!
wait_http "http://127.0.0.1:$OT_PORT/stats?mode=peer" "$ot_pid" || {
	tail -n 20 "$tmp/opentracker.log" >&2
	die "opentracker did not come up"
}

# One announce to each, of the first torrent: proof that both answer peers
# for whitelisted torrents before anything is measured.
first=$(head -n 1 "$HASHES" | sed 's/\(..\)/%\1/g')
probe="/announce?info_hash=$first&peer_id=-PR0001-abcdefghijkl&port=9&left=0&compact=1&numwant=50"
for url in "http://127.0.0.1:$TRK_PORT$probe" "http://127.0.0.1:$OT_PORT$probe"; do
	i=0
	until curl -fsS --max-time 2 "$url" 2>/dev/null | grep -aq '5:peers'; do
		i=$((i + 1))
		[ $i -lt 50 ] || die "no peer list from $url: $(curl -sS --max-time 2 "$url" 2>&1)"
		sleep 0.1
	done
	curl -fsS --max-time 2 "${url%%/announce*}/announce?info_hash=$first&peer_id=-PR0001-abcdefghijkl&port=9&left=0&event=stopped" >/dev/null
done

ot_peers() {
	curl -fsS --max-time 5 "http://127.0.0.1:$OT_PORT/stats?mode=everything" |
		tr -d ' \n' | sed -n 's/.*<peers><count>\([0-9]*\)<\/count>.*/\1/p'
}
ot_tcp_announces() {
	curl -fsS --max-time 5 "http://127.0.0.1:$OT_PORT/stats?mode=everything" |
		tr -d ' \n' | sed -n 's/.*<tcp><accept>[0-9]*<\/accept><announce>\([0-9]*\)<.*/\1/p'
}
trk_status() { # KEY: a top-level number of our /status
	curl -fsS --max-time 5 "http://127.0.0.1:$ADMIN_PORT/status" |
		KEY=$1 perl -MJSON::PP -0777 -ne 'print JSON::PP->new->decode($_)->{$ENV{KEY}} // "", "\n"'
}
trk_metric_sum() { # PREFIX: sum of the samples whose line starts with PREFIX
	curl -fsS --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics" |
		awk -v p="$1" 'index($0, p) == 1 { s += $NF } END { printf "%d\n", s }'
}

wl=$(trk_status whitelist_size)
[ "$wl" = "$TORRENTS" ] || die "tracker whitelists ${wl:-?} torrents, not $TORRENTS"

# alive NAME PID: fails loudly when a tracker died under load.
alive() {
	kill -0 "$2" 2>/dev/null && return 0
	wait "$2" 2>/dev/null && rc=0 || rc=$?
	tail -n 20 "$tmp/$1.log" >&2
	die "$1 (pid $2) died under load, exit status $rc"
}

# ---------------------------------------------------------------- 1. fill

total=$((TORRENTS * PEERS))
# fill NAME PORT PID
fill() {
	eval "${1}_rss0=\$(rss_kb $3)"
	say "fill $1: $TORRENTS torrents x $PEERS peers over UDP (at most ${FILL_S} s)"
	run_bounded "$FILL_S" "$tmp/fill-$1.out" "$LOAD" -p "$2" -H "$HASHES" -m fill \
		-T "$TORRENTS" -b "$FILL_BASE_PORT" -n "$total" -t "$FILL_S" \
		-s "$UDP_SOCKETS" -w "$UDP_WINDOW" -S 7 || {
		cat "$tmp/fill-$1.out" >&2
		alive "$1" "$3"
		die "fill of $1 failed"
	}
	alive "$1" "$3"
	parse_kv "fill_$1" "$(sed -n 's/^UDPLOAD //p' "$tmp/fill-$1.out")"
	eval "${1}_rss1=\$(rss_kb $3)"
}
fill tracker "$TRK_PORT" "$trk_pid"
fill opentracker "$OT_PORT" "$ot_pid"
trk_peers=$(trk_status peers)
trk_store=$(trk_status store_bytes)
ot_peer_count=$(ot_peers)
[ "$trk_peers" = "$total" ] || say "WARNING: tracker holds ${trk_peers:-?} peers, not $total"
[ "$ot_peer_count" = "$total" ] || say "WARNING: opentracker holds ${ot_peer_count:-?} peers, not $total"

# ---------------------------------------------------------------- 2. HTTP

# run_wrk NAME URL PID: warm-up, then the measured run; sets http_NAME_*.
run_wrk() {
	say "wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s -s tests/bench/tracker.lua $2 ($1)"
	export TRACKER_BENCH_HASHES="$HASHES" TRACKER_BENCH_KEEPALIVE="$KEEPALIVE"
	run_bounded "$WARMUP" "$tmp/wrk-$1-warmup.out" \
		wrk -t"$WRK_THREADS" -c"$CONNS" -d"${WARMUP}s" -s "$LUA" "$2" ||
		{ cat "$tmp/wrk-$1-warmup.out" >&2; alive "$1" "$3"; die "wrk warm-up against $1 failed"; }
	eval "${1}_ann0=\$($4)"
	run_bounded "$DURATION" "$tmp/wrk-$1.out" \
		wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" -s "$LUA" "$2" ||
		{ cat "$tmp/wrk-$1.out" >&2; alive "$1" "$3"; die "wrk against $1 failed"; }
	alive "$1" "$3"
	eval "${1}_ann1=\$($4)"
	line=$(grep '^BENCH ' "$tmp/wrk-$1.out") || { cat "$tmp/wrk-$1.out" >&2; die "no BENCH line from wrk"; }
	parse_kv "http_$1" "${line#BENCH }"
}
trk_http_announces() { trk_metric_sum 'p2pcdn_tracker_announces_total{proto="http"}'; }
run_wrk tracker "http://127.0.0.1:$TRK_PORT/announce" "$trk_pid" trk_http_announces
run_wrk opentracker "http://127.0.0.1:$OT_PORT/announce" "$ot_pid" ot_tcp_announces

# ---------------------------------------------------------------- 3. UDP

# run_udp NAME PORT PID
run_udp() {
	say "udp_announce_load -m random -s $UDP_SOCKETS -w $UDP_WINDOW -t $DURATION ($1)"
	run_bounded "$DURATION" "$tmp/udp-$1.out" "$LOAD" -p "$2" -H "$HASHES" -m random \
		-n 100000000 -t "$DURATION" -s "$UDP_SOCKETS" -w "$UDP_WINDOW" -S 11 || {
		cat "$tmp/udp-$1.out" >&2
		alive "$1" "$3"
		die "UDP load against $1 failed"
	}
	alive "$1" "$3"
	parse_kv "udp_$1" "$(sed -n 's/^UDPLOAD //p' "$tmp/udp-$1.out")"
}
run_udp tracker "$TRK_PORT" "$trk_pid"
run_udp opentracker "$OT_PORT" "$ot_pid"

# ---------------------------------------------------------------- checks

trk_failures=$(trk_metric_sum 'p2pcdn_tracker_failures_total')
[ "$trk_failures" -eq 0 ] || say "WARNING: tracker refused $trk_failures requests (p2pcdn_tracker_failures_total)"
# shellcheck disable=SC2154
for n in tracker opentracker; do
	eval "nx=\$http_${n}_non2xx ec=\$http_${n}_errors_connect et=\$http_${n}_errors_timeout"
	eval "a0=\$${n}_ann0 a1=\$${n}_ann1 rq=\$http_${n}_requests"
	# shellcheck disable=SC2154
	if [ "$nx" -ne 0 ] || [ "$ec" -ne 0 ] || [ "$et" -ne 0 ]; then
		say "WARNING: $n: $nx non-2xx, $ec connect errors, $et timeouts"
	fi
	# The tracker's own count of HTTP announces in the measured run must
	# match what wrk counted (wrk may stop before reading a few answers).
	say "$n counted $((a1 - a0)) HTTP announces during wrk's $rq"
	eval "e=\$udp_${n}_errors"
	[ "$e" -eq 0 ] || say "WARNING: $n answered $e UDP announces with an error"
done

# ---------------------------------------------------------------- report

# shellcheck disable=SC2154
perl -e '
	my %v = @ARGV;
	sub r { my ($a, $b) = @_; return $b ? sprintf("%.2f", $a / $b) : "-"; }
	sub row { printf "%-34s %14s %14s %10s\n", @_; }
	my $mib = 1024;
	my $bpp_t = ($v{t_rss1} - $v{t_rss0}) * 1024 / $v{total};
	my $bpp_o = ($v{o_rss1} - $v{o_rss0}) * 1024 / $v{total};
	my $loss_t = $v{t_usent} ? 100 * $v{t_ulost} / $v{t_usent} : 0;
	my $loss_o = $v{o_usent} ? 100 * $v{o_ulost} / $v{o_usent} : 0;
	print "\n";
	row("", "tracker", "opentracker", "ours/ot");
	row("HTTP announces/s", sprintf("%.0f", $v{t_hrps}), sprintf("%.0f", $v{o_hrps}),
	    r($v{t_hrps}, $v{o_hrps}));
	row("HTTP p50 ms", sprintf("%.3f", $v{t_h50} / 1000), sprintf("%.3f", $v{o_h50} / 1000),
	    r($v{t_h50}, $v{o_h50}));
	row("HTTP p99 ms", sprintf("%.3f", $v{t_h99} / 1000), sprintf("%.3f", $v{o_h99} / 1000),
	    r($v{t_h99}, $v{o_h99}));
	row("UDP announces/s", sprintf("%.0f", $v{t_urps}), sprintf("%.0f", $v{o_urps}),
	    r($v{t_urps}, $v{o_urps}));
	row("UDP loss %", sprintf("%.3f", $loss_t), sprintf("%.3f", $loss_o), "");
	row("UDP fill announces/s", sprintf("%.0f", $v{t_frps}), sprintf("%.0f", $v{o_frps}),
	    r($v{t_frps}, $v{o_frps}));
	row("peers after fill", $v{t_peers}, $v{o_peers}, "");
	row("VmRSS before fill MiB", sprintf("%.1f", $v{t_rss0} / $mib), sprintf("%.1f", $v{o_rss0} / $mib),
	    r($v{t_rss0}, $v{o_rss0}));
	row("VmRSS after fill MiB", sprintf("%.1f", $v{t_rss1} / $mib), sprintf("%.1f", $v{o_rss1} / $mib),
	    r($v{t_rss1}, $v{o_rss1}));
	row("VmRSS growth bytes/peer", sprintf("%.2f", $bpp_t), sprintf("%.2f", $bpp_o), r($bpp_t, $bpp_o));
	row("store_bytes/peer (ours, /status)",
	    $v{t_peers} ? sprintf("%.2f", $v{t_store} / $v{t_peers}) : "-", "-", "");
' total "$total" \
	t_hrps "$http_tracker_rps" t_h50 "$http_tracker_p50_us" t_h99 "$http_tracker_p99_us" \
	o_hrps "$http_opentracker_rps" o_h50 "$http_opentracker_p50_us" o_h99 "$http_opentracker_p99_us" \
	t_urps "$udp_tracker_rps" t_usent "$udp_tracker_sent" t_ulost "$udp_tracker_lost" \
	o_urps "$udp_opentracker_rps" o_usent "$udp_opentracker_sent" o_ulost "$udp_opentracker_lost" \
	t_frps "$fill_tracker_rps" o_frps "$fill_opentracker_rps" \
	t_peers "${trk_peers:-0}" o_peers "${ot_peer_count:-0}" t_store "${trk_store:-0}" \
	t_rss0 "$tracker_rss0" t_rss1 "$tracker_rss1" o_rss0 "$opentracker_rss0" o_rss1 "$opentracker_rss1"
echo
conn="one TCP connection per announce"
[ "$KEEPALIVE" != 1 ] || conn="keep-alive (opentracker still closes after each answer)"
echo "HTTP: wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s after ${WARMUP}s warm-up, $conn;"
echo "  our [server] threads = $SERVER_THREADS, opentracker: 1 io thread; opentracker's wrk 'read errors' are its closes"
echo "UDP: $UDP_SOCKETS sockets x $UDP_WINDOW in flight, ${DURATION}s; fill: $TORRENTS torrents x $PEERS peers, both whitelisting $TORRENTS"
echo "$(nproc) CPUs, load average before the run: $LOAD_BEFORE; $("$BIN" --version 2>&1 | head -n 1); $(dpkg-query -W -f='opentracker ${Version}' opentracker 2>/dev/null || echo opentracker)"
