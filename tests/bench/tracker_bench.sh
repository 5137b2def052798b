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
# Phases, each bounded in time:
#   1. fill, each tracker in turn: udp_announce_load
#      (tests/bench/udp_announce_load.c, built here with cc -O2) announces
#      BENCH_TORRENTS x BENCH_PEERS distinct peers (1,000,000 by default:
#      port 10000+k on torrent t, all from 127.0.0.1) over UDP, re-sending
#      lost ones; then VmRSS from /proc/PID/status (before and after the
#      fill), our /status store_bytes and opentracker's /stats peer count.
#      This is also the swarm the later phases run on (50 peers to give).
#   2. HTTP: wrk with tests/bench/tracker.lua (random torrent of the list,
#      random port and peer_id, a quarter seeders, compact=1, numwant=50,
#      one connection per announce), a 2 s warm-up each, then the rounds.
#   3. UDP: udp_announce_load in random mode (random torrent, random port,
#      the same seeds for both), BENCH_UDP_SOCKETS x BENCH_UDP_WINDOW
#      announces in flight, replies counted, losses reported.
# Phases 2 and 3 alternate the trackers in BENCH_ROUNDS rounds of
# BENCH_DURATION / BENCH_ROUNDS seconds and add the rounds up; the ratio of
# each round is printed too, to show the noise.
#
# Threads: opentracker serves HTTP and (without listen.udp.workers) UDP on
# one thread, its main io loop; its other threads only clean up, reload the
# whitelist and build statistics. Our UDP tracker is one loop thread too, and
# our HTTP gets [server] threads = BENCH_SERVER_THREADS, default 1 to match.
# Ours also runs its catalog thread (counts to PostgreSQL every 10 s, the
# whitelist re-read every 5 s, expiry every 10 s) and PostgreSQL itself, as
# in production. wrk and the load generator share the CPUs with the tracker
# under test, so absolute numbers are low on a small machine; the ratios are
# the figures to compare between runs and commits.
#
# Knobs (environment): BENCH_DURATION (s of measurement per tracker and
# phase, default 12; the fill is bounded by that + 8), BENCH_ROUNDS (3),
# BENCH_TORRENTS (10000), BENCH_PEERS (peers per torrent in the fill, 100),
# BENCH_CONNECTIONS (64), BENCH_WRK_THREADS (2), BENCH_SERVER_THREADS (1),
# BENCH_UDP_SOCKETS (16), BENCH_UDP_WINDOW (8: 128 in flight fit
# opentracker's default socket buffer), BENCH_HTTP_KEEPALIVE (0; 1 keeps
# connections open, which only our tracker supports), TRACKER_BIN. Each
# load run is killed 30 s after its time.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${TRACKER_BIN:-$ROOT/build/bin/tracker}
LUA=$ROOT/tests/bench/tracker.lua
DURATION=${BENCH_DURATION:-12}
ROUNDS=${BENCH_ROUNDS:-3}
TORRENTS=${BENCH_TORRENTS:-10000}
PEERS=${BENCH_PEERS:-100}
CONNS=${BENCH_CONNECTIONS:-64}
WRK_THREADS=${BENCH_WRK_THREADS:-2}
SERVER_THREADS=${BENCH_SERVER_THREADS:-1}
UDP_SOCKETS=${BENCH_UDP_SOCKETS:-16}
UDP_WINDOW=${BENCH_UDP_WINDOW:-8}
KEEPALIVE=${BENCH_HTTP_KEEPALIVE:-0}
WARMUP=2
ROUND_S=$((DURATION / ROUNDS))
[ "$ROUND_S" -ge 1 ] || ROUND_S=1
FILL_S=$((DURATION + 8))
FILL_BASE_PORT=10000

# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"

# The reference tracker is installed here, not by deploy/install-deps.sh: the
# Debian package enables an opentracker.service on port 6969, our tracker's
# port, which no machine running the suite should get as a side effect.
if ! command -v opentracker >/dev/null 2>&1; then
	[ "$(id -u)" -eq 0 ] || die "opentracker not found: apt-get install opentracker (as root)"
	say "installing Debian's opentracker (the reference) and disabling its service"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends opentracker \
		>/dev/null || die "apt-get install opentracker failed"
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable --now opentracker.service >/dev/null 2>&1 || true
	fi
fi
bench_need wrk curl perl cc opentracker psql
[ -x "$BIN" ] || die "$BIN not found; build it with make"
[ $((FILL_BASE_PORT + PEERS - 1)) -le 65535 ] || die "BENCH_PEERS too large: ports run out"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# rss_kb PID: VmRSS in kB.
rss_kb() {
	sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"
}

bench_init p2pcdn-trkbench
trk_pid=""
ot_pid=""

REDIS_PORT=$(free_port 28379 udp)
PG_PORT=$(free_port 28432 udp)
TRK_PORT=$(free_port 28969 udp)
ADMIN_PORT=$(free_port $((TRK_PORT + 1000)) udp)
OT_PORT=$(free_port $((TRK_PORT + 1)) udp)
[ "$OT_PORT" != "$ADMIN_PORT" ] || OT_PORT=$(free_port $((ADMIN_PORT + 1)) udp)

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
bench_services "$REDIS_PORT" "$PG_PORT"

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
bench_track "$trk_pid"
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
bench_track "$ot_pid"
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

# ---------------------------------------------------------------- rounds

# The load on a shared machine drifts by tens of per cent within a minute,
# so phases 2 and 3 alternate the two trackers in BENCH_ROUNDS short rounds
# (ours first in odd rounds, opentracker first in even ones) and sum them.

# add VAR VALUE: appends VALUE to the space-separated list in VAR.
add() { eval "$1=\"\${$1:+\$$1 }\$2\""; }

# order R: the two trackers in round R's order.
order() { if [ $(($1 % 2)) -eq 1 ]; then echo "tracker opentracker"; else echo "opentracker tracker"; fi; }

url_of() { if [ "$1" = tracker ]; then echo "http://127.0.0.1:$TRK_PORT/announce"; else echo "http://127.0.0.1:$OT_PORT/announce"; fi; }
port_of() { if [ "$1" = tracker ]; then echo "$TRK_PORT"; else echo "$OT_PORT"; fi; }
pid_of() { if [ "$1" = tracker ]; then echo "$trk_pid"; else echo "$ot_pid"; fi; }
trk_http_announces() { trk_metric_sum 'p2pcdn_tracker_announces_total{proto="http"}'; }
http_count() { if [ "$1" = tracker ]; then trk_http_announces; else ot_tcp_announces; fi; }

# ---------------------------------------------------------------- 2. HTTP

export TRACKER_BENCH_HASHES="$HASHES" TRACKER_BENCH_KEEPALIVE="$KEEPALIVE"
# wrk_once NAME SECONDS OUT: one wrk run against NAME.
wrk_once() {
	run_bounded "$2" "$3" wrk -t"$WRK_THREADS" -c"$CONNS" -d"${2}s" -s "$LUA" "$(url_of "$1")" || {
		cat "$3" >&2
		alive "$1" "$(pid_of "$1")"
		die "wrk against $1 failed"
	}
	alive "$1" "$(pid_of "$1")"
}
for n in tracker opentracker; do
	say "wrk warm-up ${WARMUP}s against $n"
	wrk_once "$n" "$WARMUP" "$tmp/wrk-$n-warmup.out"
done
r=1
while [ $r -le "$ROUNDS" ]; do
	for n in $(order $r); do
		say "round $r/$ROUNDS: wrk -t$WRK_THREADS -c$CONNS -d${ROUND_S}s -s tests/bench/tracker.lua $(url_of "$n")"
		c0=$(http_count "$n")
		wrk_once "$n" "$ROUND_S" "$tmp/wrk-$n-$r.out"
		c1=$(http_count "$n")
		line=$(grep '^BENCH ' "$tmp/wrk-$n-$r.out") ||
			{ cat "$tmp/wrk-$n-$r.out" >&2; die "no BENCH line from wrk"; }
		unset b_requests b_duration_us b_rps b_p50_us b_p99_us b_non2xx b_errors_connect \
			b_errors_read b_errors_write b_errors_timeout
		parse_kv b "${line#BENCH }"
		# shellcheck disable=SC2154
		{
			add "h_${n}_requests" "$b_requests"
			add "h_${n}_us" "$b_duration_us"
			add "h_${n}_rps" "$b_rps"
			add "h_${n}_p50" "$b_p50_us"
			add "h_${n}_p99" "$b_p99_us"
			add "h_${n}_counted" $((c1 - c0))
			add "h_${n}_bad" $((b_non2xx + b_errors_connect + b_errors_timeout))
		}
	done
	r=$((r + 1))
done

# ---------------------------------------------------------------- 3. UDP

r=1
while [ $r -le "$ROUNDS" ]; do
	for n in $(order $r); do
		say "round $r/$ROUNDS: udp_announce_load -m random -s $UDP_SOCKETS -w $UDP_WINDOW -t $ROUND_S ($n)"
		out=$tmp/udp-$n-$r.out
		run_bounded "$ROUND_S" "$out" "$LOAD" -p "$(port_of "$n")" -H "$HASHES" -m random \
			-n 100000000 -t "$ROUND_S" -s "$UDP_SOCKETS" -w "$UDP_WINDOW" -S $((10 + r)) || {
			cat "$out" >&2
			alive "$n" "$(pid_of "$n")"
			die "UDP load against $n failed"
		}
		alive "$n" "$(pid_of "$n")"
		unset u_sent u_replies u_errors u_lost u_late u_elapsed_us u_rps u_peers_out
		parse_kv u "$(sed -n 's/^UDPLOAD //p' "$out")"
		# shellcheck disable=SC2154
		{
			add "u_${n}_sent" "$u_sent"
			add "u_${n}_replies" "$u_replies"
			add "u_${n}_errors" "$u_errors"
			add "u_${n}_lost" "$u_lost"
			add "u_${n}_us" "$u_elapsed_us"
			add "u_${n}_rps" "$u_rps"
		}
	done
	r=$((r + 1))
done

# ---------------------------------------------------------------- checks

trk_failures=$(trk_metric_sum 'p2pcdn_tracker_failures_total')
[ "$trk_failures" -eq 0 ] || say "WARNING: tracker refused $trk_failures requests (p2pcdn_tracker_failures_total)"
sum() { s=0; for x in $1; do s=$((s + x)); done; echo $s; }
# shellcheck disable=SC2154
for n in tracker opentracker; do
	eval "bad=\$(sum \"\$h_${n}_bad\") rq=\$(sum \"\$h_${n}_requests\")"
	eval "cnt=\$(sum \"\$h_${n}_counted\") ue=\$(sum \"\$u_${n}_errors\")"
	[ "$bad" -eq 0 ] || say "WARNING: $n: $bad HTTP non-2xx answers, connect errors or timeouts"
	# The tracker's own count of HTTP announces in the measured runs must
	# match what wrk counted (wrk stops before reading a few answers).
	say "$n counted $cnt HTTP announces during wrk's $rq"
	[ "$ue" -eq 0 ] || say "WARNING: $n answered $ue UDP announces with an error"
done

# ---------------------------------------------------------------- report

# shellcheck disable=SC2154
perl -e '
	my %v = @ARGV;
	my %l = map { $_ => [split " ", $v{$_}] } keys %v;
	sub sum { my $s = 0; $s += $_ for @{$_[0]}; return $s; }
	sub med { my @a = sort { $a <=> $b } @{$_[0]}; my $n = @a;
		return $n % 2 ? $a[$n / 2] : ($a[$n / 2 - 1] + $a[$n / 2]) / 2; }
	sub r { my ($a, $b) = @_; return $b ? sprintf("%.2f", $a / $b) : "-"; }
	sub row { printf "%-34s %14s %14s %10s\n", @_; }
	sub per_round { my ($a, $b) = @_;
		return join " ", map { r($l{$a}[$_], $l{$b}[$_]) } 0 .. $#{$l{$a}}; }
	my $ht = sum($l{ht_req}) * 1e6 / sum($l{ht_us});
	my $ho = sum($l{ho_req}) * 1e6 / sum($l{ho_us});
	my ($t50, $o50, $t99, $o99) = (med($l{ht_p50}), med($l{ho_p50}), med($l{ht_p99}), med($l{ho_p99}));
	my $ut = sum($l{ut_rep}) * 1e6 / sum($l{ut_us});
	my $uo = sum($l{uo_rep}) * 1e6 / sum($l{uo_us});
	my $lt = sum($l{ut_sent}) ? 100 * sum($l{ut_lost}) / sum($l{ut_sent}) : 0;
	my $lo = sum($l{uo_sent}) ? 100 * sum($l{uo_lost}) / sum($l{uo_sent}) : 0;
	my $bpp_t = ($v{t_rss1} - $v{t_rss0}) * 1024 / $v{total};
	my $bpp_o = ($v{o_rss1} - $v{o_rss0}) * 1024 / $v{total};
	print "\n";
	row("", "tracker", "opentracker", "ours/ot");
	row("HTTP announces/s", sprintf("%.0f", $ht), sprintf("%.0f", $ho), r($ht, $ho));
	row("HTTP p50 ms (median of rounds)", sprintf("%.3f", $t50 / 1000), sprintf("%.3f", $o50 / 1000), r($t50, $o50));
	row("HTTP p99 ms (median of rounds)", sprintf("%.3f", $t99 / 1000), sprintf("%.3f", $o99 / 1000), r($t99, $o99));
	row("UDP announces/s", sprintf("%.0f", $ut), sprintf("%.0f", $uo), r($ut, $uo));
	row("UDP loss %", sprintf("%.3f", $lt), sprintf("%.3f", $lo), "");
	row("UDP fill announces/s", sprintf("%.0f", $v{t_frps}), sprintf("%.0f", $v{o_frps}), r($v{t_frps}, $v{o_frps}));
	row("peers after fill", $v{t_peers}, $v{o_peers}, "");
	row("VmRSS before fill MiB", sprintf("%.1f", $v{t_rss0} / 1024), sprintf("%.1f", $v{o_rss0} / 1024),
	    r($v{t_rss0}, $v{o_rss0}));
	row("VmRSS after fill MiB", sprintf("%.1f", $v{t_rss1} / 1024), sprintf("%.1f", $v{o_rss1} / 1024),
	    r($v{t_rss1}, $v{o_rss1}));
	row("VmRSS growth bytes/peer", sprintf("%.2f", $bpp_t), sprintf("%.2f", $bpp_o), r($bpp_t, $bpp_o));
	row("store_bytes/peer (ours, /status)",
	    $v{t_peers} ? sprintf("%.2f", $v{t_store} / $v{t_peers}) : "-", "-", "");
	print "\nours/ot per round: HTTP ", per_round("ht_rps", "ho_rps"),
	    "; UDP ", per_round("ut_rps", "uo_rps"), "\n";
' total "$total" \
	ht_req "$h_tracker_requests" ht_us "$h_tracker_us" ht_rps "$h_tracker_rps" \
	ht_p50 "$h_tracker_p50" ht_p99 "$h_tracker_p99" \
	ho_req "$h_opentracker_requests" ho_us "$h_opentracker_us" ho_rps "$h_opentracker_rps" \
	ho_p50 "$h_opentracker_p50" ho_p99 "$h_opentracker_p99" \
	ut_rep "$u_tracker_replies" ut_us "$u_tracker_us" ut_rps "$u_tracker_rps" \
	ut_sent "$u_tracker_sent" ut_lost "$u_tracker_lost" \
	uo_rep "$u_opentracker_replies" uo_us "$u_opentracker_us" uo_rps "$u_opentracker_rps" \
	uo_sent "$u_opentracker_sent" uo_lost "$u_opentracker_lost" \
	t_frps "$fill_tracker_rps" o_frps "$fill_opentracker_rps" \
	t_peers "${trk_peers:-0}" o_peers "${ot_peer_count:-0}" t_store "${trk_store:-0}" \
	t_rss0 "$tracker_rss0" t_rss1 "$tracker_rss1" o_rss0 "$opentracker_rss0" o_rss1 "$opentracker_rss1"
echo
conn="one TCP connection per announce"
[ "$KEEPALIVE" != 1 ] || conn="keep-alive (opentracker still closes after each answer)"
echo "HTTP: wrk -t$WRK_THREADS -c$CONNS, $ROUNDS rounds of ${ROUND_S}s each after ${WARMUP}s warm-up, $conn;"
echo "  our [server] threads = $SERVER_THREADS, opentracker: 1 io thread; opentracker's wrk 'read errors' are its closes"
echo "UDP: $UDP_SOCKETS sockets x $UDP_WINDOW in flight, $ROUNDS rounds of ${ROUND_S}s; fill: $TORRENTS torrents x $PEERS peers, both whitelisting $TORRENTS"
echo "$(nproc) CPUs, load average before the run: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$("$BIN" --version 2>&1 | head -n 1); $(dpkg-query -W -f='opentracker ${Version}' opentracker 2>/dev/null || echo opentracker)"
