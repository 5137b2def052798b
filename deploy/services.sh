#!/bin/sh
# SPDX-License-Identifier: MIT
# Start, stop or query a private Redis and PostgreSQL kept under one directory (demo, tests).
#
#   deploy/services.sh start  DIR REDIS_PORT PG_PORT
#   deploy/services.sh stop   DIR
#   deploy/services.sh status DIR      exit 0 when both run, 3 otherwise
#
# Layout: DIR/redis (data, pidfile, log), DIR/pg (PostgreSQL cluster),
# DIR/pgrun (PostgreSQL unix socket and log). Both servers listen on
# 127.0.0.1 only; PostgreSQL trusts every local connection as user
# "postgres" and gets a database "p2pcdn".
#
# PostgreSQL refuses to run as root. As root this script therefore creates
# (once) the system user "p2pcdn" and runs initdb/pg_ctl as that user; DIR
# must then be reachable by it (anything under /tmp is). The socket lives in
# DIR/pgrun rather than DIR because that user may not write to DIR.
#
# Every command is idempotent: start skips what already runs, stop what
# does not. Exit status is non-zero on any failure, with the reason on
# stderr.
set -eu

prog=services.sh
PG_OS_USER=p2pcdn

die() {
	echo "$prog: $*" >&2
	exit 1
}

usage() {
	echo "usage: $prog start DIR REDIS_PORT PG_PORT | stop DIR | status DIR" >&2
	exit 2
}

is_port() {
	case $1 in
	"" | *[!0-9]*) return 1 ;;
	esac
	[ "$1" -ge 1 ] && [ "$1" -le 65535 ]
}

# Prints the last lines of a log file to stderr, to explain a failure.
show_log() {
	if [ -f "$1" ]; then
		echo "$prog: last lines of $1:" >&2
		tail -n 20 "$1" >&2
	fi
}

# The newest /usr/lib/postgresql/N/bin, else the directory of initdb on PATH.
find_pg_bin() {
	best=""
	best_v=0
	for d in /usr/lib/postgresql/*/bin; do
		{ [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; } || continue
		v=${d%/bin}
		v=${v##*/}
		case $v in
		"" | *[!0-9]*) continue ;;
		esac
		if [ "$v" -gt "$best_v" ]; then
			best=$d
			best_v=$v
		fi
	done
	if [ -z "$best" ] && command -v initdb >/dev/null 2>&1; then
		best=$(dirname "$(command -v initdb)")
	fi
	[ -n "$best" ] || die "PostgreSQL server binaries (initdb, pg_ctl) not found; run deploy/install-deps.sh"
	PG_BIN=$best
}

# Runs a command as the PostgreSQL owner: ourselves, or p2pcdn when root.
# The working directory moves to DIR so the user never starts in a
# directory it cannot read (initdb and pg_ctl complain about that).
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		(cd "$DIR" && runuser -u "$PG_OS_USER" -- "$@")
	else
		(cd "$DIR" && "$@")
	fi
}

ensure_pg_user() {
	[ "$(id -u)" -eq 0 ] || return 0
	id -u "$PG_OS_USER" >/dev/null 2>&1 && return 0
	command -v useradd >/dev/null 2>&1 || die "useradd not found; cannot create user $PG_OS_USER"
	useradd --system --user-group --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin "$PG_OS_USER" ||
		die "could not create system user $PG_OS_USER"
	echo "$prog: created system user $PG_OS_USER to run PostgreSQL" >&2
}

# Resolves DIR to an absolute path (pg_ctl and redis change directory).
set_dir() {
	[ -d "$1" ] || return 1
	DIR=$(cd "$1" && pwd -P)
	# pg_ctl -o takes one string that the server splits on blanks.
	case $DIR in
	*[[:space:]]*) die "$DIR: directory names with blanks are not supported" ;;
	esac
}

# True while pid runs; a zombie (exited, not yet reaped) does not count.
alive() {
	state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[ -n "$state" ] && [ "$state" != Z ]
}

redis_pid() {
	f=$DIR/redis/redis.pid
	[ -f "$f" ] || return 1
	pid=$(cat "$f" 2>/dev/null) || return 1
	case $pid in
	"" | *[!0-9]*) return 1 ;;
	esac
	# A stale pidfile may name an unrelated process by now.
	alive "$pid" || return 1
	grep -q redis "/proc/$pid/comm" 2>/dev/null || return 1
	echo "$pid"
}

pg_running() {
	[ -f "$DIR/pg/PG_VERSION" ] || return 1
	as_pg "$PG_BIN/pg_ctl" status -D "$DIR/pg" >/dev/null 2>&1
}

# Line 4 of postmaster.pid is the port (PostgreSQL's documented layout).
pg_port() {
	sed -n 4p "$DIR/pg/postmaster.pid" 2>/dev/null
}

start_redis() {
	port=$1
	mkdir -p "$DIR/redis"
	if pid=$(redis_pid); then
		old=$(cat "$DIR/redis/port" 2>/dev/null || echo "?")
		[ "$old" = "$port" ] ||
			die "redis already runs from $DIR on port $old, not $port; stop it first"
		echo "redis: already running (pid $pid, port $port)"
		return 0
	fi
	command -v redis-server >/dev/null 2>&1 || die "redis-server not found; run deploy/install-deps.sh"
	rm -f "$DIR/redis/redis.pid"
	echo "$port" >"$DIR/redis/port"
	# Backgrounded by the shell rather than --daemonize yes, so $! is the
	# server and a failed start (port in use) is seen at once. It writes
	# its own pidfile, which is what stop and status use.
	redis-server --port "$port" --bind 127.0.0.1 --dir "$DIR/redis" --save "" \
		--appendonly no --daemonize no --pidfile "$DIR/redis/redis.pid" \
		--logfile "$DIR/redis/redis.log" </dev/null >/dev/null 2>&1 &
	child=$!
	# Ready when it answers, and when the answer comes from our process,
	# not from another Redis already holding the port.
	i=0
	while [ $i -lt 100 ] && alive "$child"; do
		if timeout 2 redis-cli -h 127.0.0.1 -p "$port" INFO server 2>/dev/null |
			tr -d '\r' | grep -qx "process_id:$child"; then
			echo "redis: running (pid $child, port $port)"
			return 0
		fi
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL "$child" 2>/dev/null || true
	show_log "$DIR/redis/redis.log"
	die "redis did not come up on 127.0.0.1:$port (port in use?)"
}

start_pg() {
	port=$1
	ensure_pg_user
	mkdir -p "$DIR/pg" "$DIR/pgrun"
	if [ "$(id -u)" -eq 0 ]; then
		chown "$PG_OS_USER:" "$DIR/pg" "$DIR/pgrun"
		as_pg test -w "$DIR/pgrun" ||
			die "user $PG_OS_USER cannot reach $DIR; use a directory every user can traverse (e.g. under /tmp)"
	fi
	chmod 700 "$DIR/pg"
	if [ ! -f "$DIR/pg/PG_VERSION" ]; then
		as_pg "$PG_BIN/initdb" -D "$DIR/pg" -U postgres --auth=trust -E UTF8 --no-sync \
			>"$DIR/pgrun/initdb.log" 2>&1 || {
			show_log "$DIR/pgrun/initdb.log"
			die "initdb failed for $DIR/pg"
		}
	fi
	if pg_running; then
		old=$(pg_port)
		[ "$old" = "$port" ] ||
			die "postgres already runs from $DIR on port $old, not $port; stop it first"
		echo "postgres: already running (port $port)"
	else
		as_pg "$PG_BIN/pg_ctl" start -D "$DIR/pg" -l "$DIR/pgrun/postgres.log" -w -t 60 \
			-o "-p $port -k $DIR/pgrun -c listen_addresses=127.0.0.1 -c fsync=off" \
			>/dev/null || {
			show_log "$DIR/pgrun/postgres.log"
			die "postgres did not start on 127.0.0.1:$port (port in use?)"
		}
		echo "postgres: running (port $port)"
	fi
	conn="host=127.0.0.1 port=$port user=postgres"
	have=$("$PG_BIN/psql" -X -q -t -A -d "$conn dbname=postgres connect_timeout=5" \
		-c "SELECT 1 FROM pg_database WHERE datname = 'p2pcdn'") ||
		die "cannot query postgres on 127.0.0.1:$port"
	if [ "$have" != 1 ]; then
		"$PG_BIN/psql" -X -q -d "$conn dbname=postgres connect_timeout=5" -c "CREATE DATABASE p2pcdn" ||
			die "could not create database p2pcdn"
	fi
	echo "postgres: conninfo \"$conn dbname=p2pcdn\""
}

stop_redis() {
	pid=$(redis_pid) || {
		echo "redis: not running"
		return 0
	}
	kill -TERM "$pid" 2>/dev/null || true
	i=0
	while alive "$pid"; do
		if [ $i -ge 100 ]; then
			echo "$prog: redis (pid $pid) ignored SIGTERM for 10 s; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.1
		i=$((i + 1))
	done
	rm -f "$DIR/redis/redis.pid"
	echo "redis: stopped"
}

stop_pg() {
	if ! pg_running; then
		echo "postgres: not running"
		return 0
	fi
	as_pg "$PG_BIN/pg_ctl" stop -D "$DIR/pg" -m fast -w -t 60 >/dev/null ||
		die "pg_ctl stop failed for $DIR/pg"
	echo "postgres: stopped"
}

cmd=${1:-}
case $cmd in
start)
	[ $# -eq 4 ] || usage
	is_port "$3" || die "bad Redis port: $3"
	is_port "$4" || die "bad PostgreSQL port: $4"
	[ "$3" != "$4" ] || die "Redis and PostgreSQL need different ports"
	if [ ! -d "$2" ]; then
		# Made traversable so the PostgreSQL user can reach DIR/pg.
		{ mkdir -p "$2" && chmod 755 "$2"; } || die "cannot create $2"
	fi
	set_dir "$2" || die "cannot use $2"
	find_pg_bin
	start_redis "$3"
	start_pg "$4"
	;;
stop)
	[ $# -eq 2 ] || usage
	if ! set_dir "$2"; then
		echo "$prog: $2 does not exist; nothing to stop"
		exit 0
	fi
	find_pg_bin
	rc=0
	stop_redis || rc=1
	(stop_pg) || rc=1
	exit $rc
	;;
status)
	[ $# -eq 2 ] || usage
	set_dir "$2" || die "$2 does not exist"
	find_pg_bin
	rc=0
	if pid=$(redis_pid); then
		echo "redis: running (pid $pid, port $(cat "$DIR/redis/port" 2>/dev/null || echo "?"))"
	else
		echo "redis: stopped"
		rc=3
	fi
	if pg_running; then
		echo "postgres: running (port $(pg_port), socket dir $DIR/pgrun)"
	else
		echo "postgres: stopped"
		rc=3
	fi
	exit $rc
	;;
*)
	usage
	;;
esac
