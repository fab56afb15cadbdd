#!/usr/bin/perl
# A forking storm: forks N children in batches, each burning about MS milliseconds of CPU,
# then prints the CPU its children used as the kernel's getrusage(RUSAGE_CHILDREN) reports it
# (perl's times(): children user + system), in seconds. Usage: storm.pl N MS BATCH PAUSE_MS
use strict;
use warnings;
use Time::HiRes qw(usleep);
my ($n, $ms, $batch, $pause) = @ARGV;
$n //= 2000; $ms //= 20; $batch //= 100; $pause //= 0;
$| = 1;
print "ready $$\n";
my $done = 0;
while ($done < $n) {
    my $k = $n - $done < $batch ? $n - $done : $batch;
    for (1 .. $k) {
        my $pid = fork();
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            $0 = "ht_child";
            my ($u0, $s0) = times;
            my $x = 0;
            while (1) {
                for (1 .. 2000) { $x += $_ }
                my ($u, $s) = times;
                last if ($u + $s - $u0 - $s0) * 1000 >= $ms;
            }
            exit 0;
        }
    }
    while (wait() > 0) {}
    $done += $k;
    usleep($pause * 1000) if $pause;
}
my (undef, undef, $cu, $cs) = times;
print "children_cpu_s ", $cu + $cs, "\n";
