#!/usr/bin/perl
# SPDX-License-Identifier: MIT
# Turn ASN range CSV files (FIRST_IP,LAST_IP,ASN,ORGANIZATION) into an MMDB.
#
# Usage: asn-csv-to-mmdb.pl [--ip-version 4|6] [--limit N] -o OUT.mmdb CSV...
#
# Input lines are what @ip-location-db/asn ships: the first two fields are
# either dotted IPv4 / textual IPv6 addresses or plain integers (the "-num"
# files), the organization may be double-quoted with "" as an escaped quote.
# Blank lines and lines starting with '#' are skipped; any other line that
# does not parse is an error naming FILE:LINE.
#
# Each record is {autonomous_system_number => uint32,
# autonomous_system_organization => utf8_string}, the layout route-server
# reads with asn_path = autonomous_system_number (docs/route-server.md).
#
# Ranges are cut into CIDR blocks here rather than handed to the writer's
# insert_range: after merging touching ranges of the same AS, the IPv4
# table is mostly ranges that are a single block already, so the split is
# cheap and the count of inserts (printed at the end) is exact.
#
# --ip-version 6 builds an IPv6 tree with the IPv4 space aliased at ::/96,
# ::ffff:0:0/96, 2002::/16 (needed when IPv6 CSVs are given); the default 4
# builds an IPv4-only tree, smaller and faster, and rejects IPv6 lines.
# --limit N stops after N input lines per file (for quick test databases).
#
# The output is written to OUT.tmp and renamed, so a reader never sees a
# half-written file.
use strict;
use warnings;

use Encode qw(decode);
use Getopt::Long qw(GetOptions);
use Math::Int128 qw(string_to_uint128 uint128_to_number uint128);
use MaxMind::DB::Writer::Tree;
use Socket qw(inet_pton inet_aton AF_INET6);
use Time::HiRes qw(time);

my $ip_version = 4;
my $limit      = 0;
my $out;
my $quiet = 0;

sub usage {
	print STDERR "usage: $0 [--ip-version 4|6] [--limit N] [--quiet] -o OUT.mmdb CSV...\n";
	exit 2;
}

GetOptions(
	'ip-version=i' => \$ip_version,
	'limit=i'      => \$limit,
	'o|output=s'   => \$out,
	'quiet'        => \$quiet,
	'help'         => sub { usage() },
) or usage();
usage() unless defined $out && @ARGV && ($ip_version == 4 || $ip_version == 6);

my $t0 = time;

# One shared hash per (asn, organization): the writer serialises each
# distinct record once, and sharing saves building ~400k small hashes.
my %record_of;

sub record_for {
	my ($asn, $org) = @_;
	my $key = "$asn\0$org";
	return $record_of{$key} //= {
		autonomous_system_number       => $asn,
		autonomous_system_organization => $org,
	};
}

# Parse one line into (first, last, asn, org, family). Addresses come back
# as integers for IPv4 and as Math::Int128 values for IPv6.
sub parse_line {
	my ($line) = @_;
	my ($a, $b, $asn, $org) = $line =~ /^([^,]+),([^,]+),(\d+),(.*)$/
	    or return;
	if ($org =~ /^"(.*)"$/s) {
		$org = $1;
		$org =~ s/""/"/g;
	}
	$org = decode('UTF-8', $org);
	return if $asn > 4294967295;
	if ($a =~ /^\d+$/ && $b =~ /^\d+$/) {
		# The -num files: IPv4 when both ends fit in 32 bits.
		if ($b <= 4294967295) {
			return ($a + 0, $b + 0, $asn + 0, $org, 4);
		}
		return (string_to_uint128($a), string_to_uint128($b), $asn + 0, $org, 6);
	}
	if ($a =~ /^[\d.]+$/ && $b =~ /^[\d.]+$/) {
		my ($pa, $pb) = (inet_aton($a), inet_aton($b));
		return unless defined $pa && defined $pb && $a =~ tr/.// == 3 && $b =~ tr/.// == 3;
		return (unpack('N', $pa), unpack('N', $pb), $asn + 0, $org, 4);
	}
	my ($pa, $pb) = (inet_pton(AF_INET6, $a), inet_pton(AF_INET6, $b));
	return unless defined $pa && defined $pb;
	return (bytes_to_uint128($pa), bytes_to_uint128($pb), $asn + 0, $org, 6);
}

sub bytes_to_uint128 {
	my ($hi, $lo) = unpack('Q> Q>', $_[0]);
	return (uint128($hi) << 64) + $lo;
}

sub uint128_to_text {
	my ($v) = @_;
	my $hi = uint128_to_number($v >> 64);
	my $lo = uint128_to_number($v & ((uint128(1) << 64) - 1));
	my @w = unpack('n8', pack('Q> Q>', $hi, $lo));
	return join(':', map { sprintf('%x', $_) } @w);
}

# Largest aligned block starting at $first that does not pass $last, for
# IPv4 integers. Returns the prefix length.
sub v4_block {
	my ($first, $last) = @_;
	my $len = 32;
	while ($len > 0) {
		my $size = 1 << (32 - $len + 1);
		last if $first % $size != 0 || $first + $size - 1 > $last;
		$len--;
	}
	return $len;
}

sub v6_block {
	my ($first, $last) = @_;
	my $len = 128;
	my $one = uint128(1);
	while ($len > 0) {
		my $bits = 128 - $len + 1;
		my $mask = $bits >= 128 ? ~uint128(0) : ($one << $bits) - 1;
		last if ($first & $mask) != 0 || ($first | $mask) > $last;
		$len--;
	}
	return $len;
}

my $tree = MaxMind::DB::Writer::Tree->new(
	ip_version    => $ip_version,
	record_size   => 28,
	database_type => 'p2pcdn-ASN',
	languages     => ['en'],
	description   => { en => 'ASN by address range, built by p2pcdn deploy/asn-csv-to-mmdb.pl' },
	alias_ipv6_to_ipv4 => $ip_version == 6 ? 1 : 0,
	# Reserved ranges never carry an ASN; letting the writer drop them keeps
	# route-server's private-address logic the only authority on them.
	remove_reserved_networks => 1,
	map_key_type_callback    => sub {
		return $_[0] eq 'autonomous_system_number' ? 'uint32' : 'utf8_string';
	},
);

my ($lines, $ranges, $networks) = (0, 0, 0);

sub insert_v4 {
	my ($first, $last, $rec) = @_;
	$ranges++;
	while ($first <= $last) {
		my $len = v4_block($first, $last);
		my $ip  = join('.', unpack('C4', pack('N', $first)));
		$tree->insert_network("$ip/$len", $rec);
		$networks++;
		last if $len == 0;
		$first += 1 << (32 - $len);
	}
}

# The writer refuses inserts inside the ranges it aliases to IPv4 (Teredo
# 2001::/32, 6to4 2002::/16, mapped ::ffff:0:0/96): their answer is the
# IPv4 one, so such blocks are skipped.
my @aliased = map {
	my ($net, $len) = split m{/};
	[bytes_to_uint128(inet_pton(AF_INET6, $net)), $len]
} qw(2001::/32 2002::/16 ::ffff:0:0/96);

sub v6_aliased {
	my ($first, $len) = @_;
	for my $a (@aliased) {
		my ($net, $alen) = @$a;
		next if $len < $alen;
		return 1 if ($first >> (128 - $alen)) == ($net >> (128 - $alen));
	}
	return 0;
}

sub insert_v6 {
	my ($first, $last, $rec) = @_;
	$ranges++;
	my $max = ~uint128(0);
	while ($first <= $last) {
		my $len = v6_block($first, $last);
		if (!v6_aliased($first, $len)) {
			$tree->insert_network(uint128_to_text($first) . "/$len", $rec);
			$networks++;
		}
		my $size = $len == 0 ? $max : (uint128(1) << (128 - $len));
		last if $len == 0 || $max - $first < $size;
		$first += $size;
	}
}

for my $file (@ARGV) {
	open(my $fh, '<', $file) or die "$0: $file: $!\n";
	# Touching ranges of one AS are merged before the CIDR split: fewer,
	# larger blocks, a smaller tree and a faster build.
	my ($pf, $pl, $pasn, $porg, $pfam);
	my $flush = sub {
		return unless defined $pf;
		my $rec = record_for($pasn, $porg);
		if ($pfam == 4) { insert_v4($pf, $pl, $rec) } else { insert_v6($pf, $pl, $rec) }
		undef $pf;
	};
	my $n = 0;
	while (my $line = <$fh>) {
		$line =~ s/\r?\n\z//;
		next if $line eq '' || $line =~ /^#/;
		last if $limit && $n >= $limit;
		$n++;
		$lines++;
		my ($first, $last, $asn, $org, $fam) = parse_line($line);
		die "$0: $file:$.: cannot parse: $line\n" unless defined $fam;
		die "$0: $file:$.: first address after last\n" if $first > $last;
		die "$0: $file:$.: IPv6 range needs --ip-version 6\n"
		    if $fam == 6 && $ip_version == 4;
		# An AS of 0 means "not announced": leave the space empty.
		next if $asn == 0;
		if (defined $pf && $pfam == $fam && $pasn == $asn && $porg eq $org
		    && $pl + 1 == $first) {
			$pl = $last;
			next;
		}
		$flush->();
		($pf, $pl, $pasn, $porg, $pfam) = ($first, $last, $asn, $org, $fam);
	}
	$flush->();
	close($fh);
}

my $t1  = time;
my $tmp = "$out.tmp";
open(my $ofh, '>:raw', $tmp) or die "$0: $tmp: $!\n";
$tree->write_tree($ofh);
close($ofh) or die "$0: $tmp: $!\n";
rename($tmp, $out) or die "$0: rename $tmp -> $out: $!\n";
my $t2 = time;

printf STDERR "asn-csv-to-mmdb: %d lines, %d merged ranges, %d networks, %d ASN records;"
    . " insert %.1fs, write %.1fs -> %s\n",
    $lines, $ranges, $networks, scalar(keys %record_of), $t1 - $t0, $t2 - $t1, $out
    unless $quiet;
