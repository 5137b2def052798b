#!/bin/sh
# SPDX-License-Identifier: MIT
# Benchmark the login-server on this machine, in one run (never in CI):
#   1. heartbeats/s with many live sessions (wrk + tests/bench/login_hb.lua,
#      a different session token on each request) beside nginx answering
#      the same requests with a heartbeat-sized static file; the ratio
#      is the figure to compare (target >= 0.5);
#   2. logins/s with the connect-back probe (nginx answers GET /p2p/probe
#      with the nonce, so every login is judged outer), with argon2id at
#      its default cost (64 MiB, 2 passes) and at the minimum cost (what
#      the probe and session path costs without the password hash).
#
# usage: tests/bench/login_bench.sh
#
# Starts under one temp directory removed on exit: Redis and PostgreSQL
# (deploy/services.sh), build/bin/login-server (release build) with
# access_log = false and no rate limits, nginx. Knobs (environment):
# BENCH_DURATION (s, default 10), BENCH_CONNECTIONS (64), BENCH_WRK_THREADS
# (2), BENCH_SERVER_THREADS (nproc), BENCH_SESSIONS (2000), LOGIN_SERVER_BIN.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${LOGIN_SERVER_BIN:-$ROOT/build/bin/login-server}
LUA=$ROOT/tests/bench/login_hb.lua
DURATION=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNECTIONS:-64}
WRK_THREADS=${BENCH_WRK_THREADS:-2}
SERVER_THREADS=${BENCH_SERVER_THREADS:-$(nproc)}
SESSIONS=${BENCH_SESSIONS:-2000}
WARMUP=2
PASSWORD="bench password 123"

# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"

bench_need wrk nginx curl perl redis-server
[ -x "$BIN" ] || die "$BIN not found; build it with make"
[ -x /usr/bin/python3 ] || die "/usr/bin/python3 not found"

bench_init p2pcdn-login-bench
ls_pid=""
REDIS_PORT=$(free_port 27379)
PG_PORT=$(free_port 27432)
API_PORT=$(free_port 27001)
ADMIN_PORT=$(free_port $((API_PORT + 1000)))
NGX_PORT=$(free_port 27080)

say "starting Redis :$REDIS_PORT and PostgreSQL :$PG_PORT in $tmp"
bench_services "$REDIS_PORT" "$PG_PORT"

# ---------------------------------------------------------------- nginx

# nginx static: a heartbeat answer of the usual size as a file (the
# reference the other benchmarks use), and the probe echo.
hb_body='{"ok":true,"heartbeat_s":19,"heartbeat_ms":18734,"requests":[]}'
mkdir -p "$tmp/www/v1"
printf '%s' "$hb_body" >"$tmp/www/v1/heartbeat"
chmod -R a+rX "$tmp/www"
bench_nginx "$NGX_PORT" application/json /healthz "" "		root $tmp/www;
		# The static module refuses POST with 405; serve the file anyway.
		error_page 405 =200 \$uri;
		location = /v1/heartbeat { }
		location = /p2p/probe { return 200 \$arg_nonce; }
		location = /healthz { return 200 \"ok\"; }"
curl -fsS -X POST -d x "http://127.0.0.1:$NGX_PORT/v1/heartbeat" | cmp -s - "$tmp/www/v1/heartbeat" ||
	die "nginx does not answer POST with the static file"

# ---------------------------------------------------------------- login-server

# start_login MEM_KIB OPS: (re)starts the login-server with that argon2id cost.
start_login() {
	if [ -n "$ls_pid" ]; then
		bench_untrack "$ls_pid"
		kill -TERM "$ls_pid" 2>/dev/null
		wait "$ls_pid" 2>/dev/null || true
		ls_pid=""
	fi
	cat >"$tmp/login-server.ini" <<EOF2
[server]
listen = 127.0.0.1:$API_PORT
admin_listen = 127.0.0.1:$ADMIN_PORT
threads = $SERVER_THREADS
admin_token = benchtoken
access_log = false
log_level = warning

[redis]
host = 127.0.0.1
port = $REDIS_PORT

[postgres]
conninfo = host=127.0.0.1 port=$PG_PORT user=postgres dbname=p2pcdn
pool_size = 4

[login]
registration = admin
heartbeat_s = 60
probe_timeout_ms = 2000
argon2_mem_kib = $1
argon2_ops = $2
ip_logins_per_min = 0
user_failures_per_min = 0
hash_queue = 100000
EOF2
	"$BIN" --config "$tmp/login-server.ini" >>"$tmp/login-server.log" 2>&1 </dev/null &
	ls_pid=$!
	bench_track "$ls_pid"
	wait_http "http://127.0.0.1:$ADMIN_PORT/healthz" "$ls_pid" || {
		tail -n 20 "$tmp/login-server.log" >&2
		die "login-server did not come up"
	}
}

cat >"$tmp/migrate.ini" <<EOF2
[postgres]
conninfo = host=127.0.0.1 port=$PG_PORT user=postgres dbname=p2pcdn
EOF2
"$BIN" --config "$tmp/migrate.ini" --migrate >"$tmp/migrate.log" 2>&1 || {
	cat "$tmp/migrate.log" >&2
	die "login-server --migrate failed"
}

# accounts PREFIX COUNT LOGIN(0|1): makes accounts on the admin listener and,
# with LOGIN=1, logs each in once (no probe), writing the tokens to a file.
accounts() {
	/usr/bin/python3 - "$API_PORT" "$ADMIN_PORT" "$1" "$2" "$3" "$PASSWORD" "$tmp/tokens" \
		"$tmp/users-$1" <<'PY'
import http.client, json, sys, threading
api, admin, prefix, count, login, pw, tokens, users = sys.argv[1:]
count = int(count)
names = ["%s%05d" % (prefix, i) for i in range(count)]
out = [None] * count
def work(k):
    a = http.client.HTTPConnection("127.0.0.1", int(admin), timeout=60)
    b = http.client.HTTPConnection("127.0.0.1", int(api), timeout=60)
    for i in range(k, count, 8):
        a.request("POST", "/v1/admin/accounts", json.dumps({"user": names[i], "password": pw}),
                  {"Authorization": "Bearer benchtoken", "Content-Type": "application/json"})
        r = a.getresponse(); r.read()
        assert r.status in (201, 409), r.status
        if login == "1":
            b.request("POST", "/v1/login", json.dumps({"user": names[i], "password": pw}),
                      {"Content-Type": "application/json"})
            r = b.getresponse(); body = r.read()
            assert r.status == 200, (r.status, body)
            out[i] = json.loads(body)["token"]
ths = [threading.Thread(target=work, args=(k,)) for k in range(8)]
[t.start() for t in ths]
[t.join() for t in ths]
with open(users, "w") as f:
    f.write("\n".join(names) + "\n")
if login == "1":
    with open(tokens, "w") as f:
        f.write("\n".join(out) + "\n")
PY
}

# run_wrk NAME CONNS URL: warm-up, then the measured run; sets NAME_rps etc.
run_wrk() {
	bench_wrk "$1" "$3" "$2" "$WRK_THREADS" "$DURATION" "$1, $LOGIN_BENCH_MODE"
}

# 1. heartbeats
start_login 256 1
say "creating and logging in $SESSIONS sessions"
accounts hb "$SESSIONS" 1
export LOGIN_BENCH_MODE=hb LOGIN_BENCH_TOKENS="$tmp/tokens"
run_wrk hb "$CONNS" "http://127.0.0.1:$API_PORT"
run_wrk nginx "$CONNS" "http://127.0.0.1:$NGX_PORT"

# 2. logins with probes, argon2id minimal cost (accounts hashed at that cost)
export LOGIN_BENCH_MODE=login LOGIN_BENCH_PASSWORD="$PASSWORD" LOGIN_BENCH_PROBE_PORT="$NGX_PORT"
accounts lmin 200 0
export LOGIN_BENCH_USERS="$tmp/users-lmin"
run_wrk lmin 16 "http://127.0.0.1:$API_PORT"

# 3. logins with probes, argon2id default cost
start_login 65536 2
accounts ldef 50 0
export LOGIN_BENCH_USERS="$tmp/users-ldef"
run_wrk ldef 16 "http://127.0.0.1:$API_PORT"

probes=$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" |
	sed -n 's/^p2pcdn_login_probes_total{outcome="\([^"]*\)"} \([0-9]*\).*/\1=\2/p' | tr '\n' ' ')

# shellcheck disable=SC2154
for r in hb nginx lmin ldef; do
	eval "n=\$${r}_non2xx e=\$${r}_errors"
	if [ "$n" -ne 0 ] || [ "$e" -ne 0 ]; then
		say "WARNING: $r: $n non-2xx answers, $e socket errors"
	fi
done
# shellcheck disable=SC2154
perl -e '
	my ($hr, $h50, $h99, $nr, $n50, $n99, $mr, $m50, $m99, $dr, $d50, $d99) = @ARGV;
	printf "\n%-34s %12s %10s %10s\n", "run", "requests/s", "p50 ms", "p99 ms";
	printf "%-34s %12.0f %10.3f %10.3f\n", "login-server heartbeats", $hr, $h50/1000, $h99/1000;
	printf "%-34s %12.0f %10.3f %10.3f\n", "nginx static, same answer", $nr, $n50/1000, $n99/1000;
	printf "%-34s %12.2f\n", "heartbeat/nginx ratio (>= 0.5)", $hr / $nr;
	printf "%-34s %12.1f %10.3f %10.3f\n", "logins+probe, argon2id minimal", $mr, $m50/1000, $m99/1000;
	printf "%-34s %12.1f %10.3f %10.3f\n", "logins+probe, argon2id 64MiB/2", $dr, $d50/1000, $d99/1000;
' "$hb_rps" "$hb_p50_us" "$hb_p99_us" "$nginx_rps" "$nginx_p50_us" "$nginx_p99_us" \
	"$lmin_rps" "$lmin_p50_us" "$lmin_p99_us" "$ldef_rps" "$ldef_p50_us" "$ldef_p99_us"
echo
echo "wrk -t$WRK_THREADS -c$CONNS (logins -c16) -d${DURATION}s, $SESSIONS sessions, $SERVER_THREADS server threads / nginx workers, $(nproc) CPUs"
echo "probe outcomes: $probes; $("$BIN" --version 2>&1 | head -n 1)"
