# shellcheck shell=sh
# SPDX-License-Identifier: MIT
# What the benchmark scripts share: messages, tool checks, free ports, the
# temp directory and its cleanup, Redis+PostgreSQL, nginx, bounded runs of
# wrk and the load generator. Sourced (". lib.sh") after ROOT is set; POSIX
# sh. Never run in CI.
#
# State the functions keep (the sourcing script may read them): tmp (the
# temp directory), bench_pids (processes to stop on exit, newest first),
# ngx_pid, bench_run_pid (the bounded run in progress).

tmp=""
bench_pids=""
bench_services=""
bench_run_pid=""
ngx_pid=""

say() { printf 'bench: %s\n' "$*" >&2; }
die() {
	printf 'bench: error: %s\n' "$*" >&2
	exit 1
}

# bench_need TOOL...: dies unless every TOOL is on PATH.
bench_need() {
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || die "$t not found; run deploy/install-deps.sh"
	done
}

# bench_track PID: stop PID (TERM, then wait) on exit, before those tracked
# earlier. bench_untrack PID: forget it (the caller stopped it).
bench_track() { bench_pids="$1 $bench_pids"; }
bench_untrack() {
	l=""
	for p in $bench_pids; do
		[ "$p" = "$1" ] || l="$l $p"
	done
	bench_pids=$l
}

bench_cleanup() {
	set +e
	[ -z "$bench_run_pid" ] || kill -TERM "$bench_run_pid" 2>/dev/null
	for p in $bench_pids; do
		kill -TERM "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	if [ -n "$tmp" ] && [ -d "$tmp" ]; then
		[ -z "$bench_services" ] || "$ROOT/deploy/services.sh" stop "$tmp" >/dev/null 2>&1
		rm -rf "$tmp"
	fi
}

# bench_init NAME: the temp directory /tmp/NAME.XXXXXX in $tmp, removed
# with everything tracked on exit, INT or TERM.
bench_init() {
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	tmp=$(mktemp -d "/tmp/$1.XXXXXX")
	# PostgreSQL runs as an unprivileged user and nginx workers (and
	# opentracker) as nobody: they must enter the directory.
	chmod 755 "$tmp"
}

# free_port BASE [udp]: first port from BASE up that nothing listens on
# (with udp: free for TCP and UDP).
free_port() {
	perl -MIO::Socket::INET -e '
		for my $p ($ARGV[0] .. $ARGV[0] + 500) {
			my $t = IO::Socket::INET->new(LocalAddr => "127.0.0.1",
			    LocalPort => $p, Proto => "tcp", Listen => 1) or next;
			if ($ARGV[1]) {
				my $u = IO::Socket::INET->new(LocalAddr => "127.0.0.1",
				    LocalPort => $p, Proto => "udp") or next;
				close $u;
			}
			close $t; print $p; exit 0;
		}
		exit 1;' "$1" "${2:+1}" || die "no free port above $1"
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

# bench_services REDIS_PORT PG_PORT: Redis and PostgreSQL in $tmp
# (deploy/services.sh), stopped on exit.
bench_services() {
	bench_services=1
	"$ROOT/deploy/services.sh" start "$tmp" "$1" "$2" >"$tmp/services.log" 2>&1 || {
		cat "$tmp/services.log" >&2
		die "deploy/services.sh failed"
	}
}

# bench_nginx PORT TYPE PATH HTTP SERVER: nginx in the foreground under
# $tmp/nginx with worker_processes = $SERVER_THREADS, keep-alive without a
# request cap and no access log, default_type TYPE, the lines HTTP added to
# the http block and SERVER to the server block on 127.0.0.1:PORT. Sets
# ngx_pid and waits until PATH answers 200.
bench_nginx() {
	mkdir -p "$tmp/nginx"
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
	default_type $2;
	keepalive_timeout 65;
	keepalive_requests 1000000;
	client_body_temp_path $tmp/nginx/body;
	proxy_temp_path $tmp/nginx/proxy;
	fastcgi_temp_path $tmp/nginx/fastcgi;
	uwsgi_temp_path $tmp/nginx/uwsgi;
	scgi_temp_path $tmp/nginx/scgi;
$4
	server {
		listen 127.0.0.1:$1;
$5
	}
}
EOF
	nginx -e "$tmp/nginx/error.log" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" &
	ngx_pid=$!
	bench_track "$ngx_pid"
	wait_http "http://127.0.0.1:$1$3" "$ngx_pid" || {
		cat "$tmp/nginx/error.log" >&2
		die "nginx did not come up"
	}
}

# run_bounded SECONDS OUT CMD...: CMD in the background (so a signal to the
# script is handled at once), killed 30 s after SECONDS; stdout+stderr to
# OUT. Returns CMD's status.
run_bounded() {
	secs=$1 out=$2
	shift 2
	timeout $((secs + 30)) "$@" >"$out" 2>&1 &
	bench_run_pid=$!
	rc=0
	wait "$bench_run_pid" || rc=$?
	bench_run_pid=""
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

# bench_wrk NAME URL CONNS THREADS SECONDS WHAT: wrk with $LUA, a $WARMUP s
# warm-up, then the measured run; sets NAME_rps, NAME_p50_us... from the
# script's BENCH line. WHAT goes into the progress line.
bench_wrk() {
	say "wrk -t$4 -c$3 -d${5}s -s tests/bench/${LUA##*/} $2 ($6)"
	run_bounded "$WARMUP" "$tmp/wrk-$1-warmup.out" \
		wrk -t"$4" -c"$3" -d"${WARMUP}s" -s "$LUA" "$2" ||
		{ cat "$tmp/wrk-$1-warmup.out" >&2; die "wrk warm-up against $1 failed"; }
	run_bounded "$5" "$tmp/wrk-$1.out" wrk -t"$4" -c"$3" -d"${5}s" -s "$LUA" "$2" ||
		{ cat "$tmp/wrk-$1.out" >&2; die "wrk against $1 failed"; }
	line=$(grep '^BENCH ' "$tmp/wrk-$1.out") || { cat "$tmp/wrk-$1.out" >&2; die "no BENCH line from wrk"; }
	parse_kv "$1" "$line"
}
