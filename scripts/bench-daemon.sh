#!/usr/bin/env bash
# Runs the hogtrap daemon (collect, store and the shipped rules) at a 1 s interval beside the
# floor (a minimal reader of every /proc/[pid]/stat, examples/stat_floor.rs) and
# `atop -w FILE 1`, all at once for the same time on the same machine, and reports CPU ms per
# sample, peak RSS, bytes per stored process row (and where they go), and what the store opened
# (incidents, captures: a run that opened one is not a quiet baseline). Ratios to the floor and
# to atop are what count: the machine is shared.
#
# Usage:
#   scripts/bench-daemon.sh [SECONDS] [EXTRA_IDLE_PROCESSES]
#       Two phases in one invocation: today's processes, then EXTRA_IDLE_PROCESSES (default
#       1000) more idle `sleep`s; each phase SECONDS (default 40) with its own daemon, store
#       and atop. EXTRA_IDLE_PROCESSES=0 runs the first phase only.
#   scripts/bench-daemon.sh --netns [SECONDS]
#       The flatness check of the TCP hash: two network namespaces created with
#       `net.ipv4.tcp_child_ehash_entries` = 1,024 and 1,048,576 (kernel >= 6.1, root), a
#       daemon and an atop in each, all four at once; reports each daemon against the atop of
#       its namespace and the 1,048,576-bucket daemon against the 1,024-bucket one.
#   scripts/bench-daemon.sh --storm [SECONDS]
#       The whole daemon through a forking storm (issue 11): after the warm-up, a parent forks
#       STORM_CHILDREN (default 2,000) children of ~20 ms of CPU each, 100 at a time
#       (tests/support/storm.pl), while the daemon and `atop -w FILE 1` run; the window is
#       SECONDS (default 40) or the storm's length, whichever is longer. Reports CPU per sample
#       of each, the storm's truth (its getrusage(RUSAGE_CHILDREN)) and what the store made
#       of it: exit rows and the processes they stand for, the CPU attributed to the parent,
#       and exit records lost.
#
# Every figure is the steady state: the CPU each process used from WARMUP seconds (default 5)
# after the start to the end, over the samples stored in that window. The daemon's start
# (schema, rules, the first read of every process's identity) is reported apart, as its CPU
# over the warm-up per sample taken in it: a recorder runs for weeks, the start happens once.
#
# BASELINE_BIN=/path/to/older/hogtrap runs that binary too, beside the new one (in every
# phase, and in every namespace), with the same config and its own store, and reports
# new / baseline: how a change moved the cost, measured in the same seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=phases
if [ "${1:-}" = "--netns" ]; then
  mode=netns
  shift
elif [ "${1:-}" = "--storm" ]; then
  mode=storm
  shift
fi
secs=${1:-40}
extra=${2:-1000}
warm=${WARMUP:-5}

cargo build --release --quiet --bin hogtrap --example stat_floor
bin=$PWD/target/release/hogtrap
floor=$PWD/target/release/examples/stat_floor
command -v atop >/dev/null || { echo "atop is missing: run scripts/install-test-deps.sh" >&2; exit 1; }
clk=$(getconf CLK_TCK)

work=$(mktemp -d)
pids=()
namespaces=()
old_child_ehash=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "${namespaces[@]}"; do ip netns delete "$ns" 2>/dev/null || true; done
  if [ -n "$old_child_ehash" ]; then sysctl -qw net.ipv4.tcp_child_ehash_entries="$old_child_ehash" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# CPU time of a process in clock ticks, from the nanoseconds each live thread has run
# (/proc/PID/task/*/schedstat; utime + stime in /proc/PID/stat are 10 ms ticks, too coarse for
# a few ms per sample).
ticks() { cat /proc/"$1"/task/*/schedstat | awk -v c="$clk" '{ ns += $1 } END { printf "%.3f", ns * c / 1e9 }'; }
hwm_kib() { awk '/VmHWM/ { print $2 }' "/proc/$1/status"; }
ms_per() { awk -v t="$1" -v c="$clk" -v n="$2" 'BEGIN { if (n > 0) printf "%.2f", t * 1000 / c / n; else print "nan" }'; }
q() { "$bin" --db "$1" sql --csv "$2" | tail -n 1; }
now_ms() { date +%s%3N; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
# samples_in DB FROM_MS TO_MS: samples the store took in [FROM_MS, TO_MS).
samples_in() { q "$1" "SELECT count(*) FROM sample WHERE ts_ms >= $2 AND ts_ms < $3"; }

# config DIR: a config recording into DIR/bench.db with the shipped rules.
config() {
  mkdir -p "$1"
  cat >"$1/config.toml" <<TOML
[sampler]
interval = "1s"
[store]
path = "$1/bench.db"
[rules]
dir = "$PWD/rules"
TOML
  chmod 600 "$1/config.toml"
}

# store_report DB: samples, rows, where a process row's bytes go, and what the run opened.
store_report() {
  local db=$1 samples rows file_bytes
  samples=$(q "$db" "SELECT count(*) FROM sample")
  rows=$(q "$db" "SELECT count(*) FROM process_sample")
  file_bytes=$(stat -c %s "$db")
  # dbstat: every page of process_sample (a WITHOUT ROWID b-tree: the table is its index).
  IFS=, read -r pages leaf_bytes leaf_payload leaf_unused interior_bytes <<<"$(q "$db" "SELECT count(*),
      sum(CASE WHEN pagetype = 'leaf' THEN pgsize ELSE 0 END),
      sum(CASE WHEN pagetype = 'leaf' THEN payload ELSE 0 END),
      sum(CASE WHEN pagetype = 'leaf' THEN unused ELSE 0 END),
      sum(CASE WHEN pagetype <> 'leaf' THEN pgsize ELSE 0 END)
      FROM dbstat WHERE name = 'process_sample'")"
  awk -v r="$rows" -v s="$samples" -v fb="$file_bytes" -v pg="$pages" -v lb="$leaf_bytes" \
    -v pl="$leaf_payload" -v un="$leaf_unused" -v ib="$interior_bytes" 'BEGIN {
    printf "samples %d, process rows %d (%.1f per sample), %.1f bytes per process row (dbstat), file %d bytes (%.0f per sample)\n",
      s, r, r / s, (lb + ib) / r, fb, fb / s
    printf "  per row: %.1f record, %.1f cell and page headers, %.1f unused (leaf fill %.0f%%), %.1f interior pages; %d pages\n",
      pl / r, (lb - pl - un) / r, un / r, 100 * (1 - un / lb), ib / r, pg }'
  echo "  store: $(q "$db" "SELECT count(*) || ' incidents (' || coalesce(group_concat(rule), '') || ')' FROM incident"), $(q "$db" "SELECT count(*) FROM capture") captures"
}

# start_daemons DIR: the new daemon and, with BASELINE_BIN, the older one beside it, each on
# a config of its own under DIR; sets the caller's `hog` and `base` to their pids.
start_daemons() {
  local dir=$1
  config "$dir"
  if [ -n "${BASELINE_BIN:-}" ]; then
    config "$dir/base"
    "$BASELINE_BIN" run -c "$dir/base/config.toml" 2>"$dir/base.log" &
    base=$!
    pids+=("$base")
  fi
  "$bin" run -c "$dir/config.toml" 2>"$dir/hogtrap.log" &
  hog=$!
}

# run_phase LABEL EXTRA: one side-by-side run in the host namespace.
run_phase() {
  local label=$1 n_extra=$2 dir=$work/$1 idle=() hog base fl at
  for ((i = 0; i < n_extra; i++)); do
    sleep $((secs + 120)) &
    idle+=($!)
  done
  pids+=("${idle[@]}")
  start_daemons "$dir"
  "$floor" 1000 $((secs + 30)) &
  fl=$!
  atop -w "$dir/atop.raw" 1 >/dev/null 2>&1 &
  at=$!
  pids+=("$hog" "$fl" "$at")
  local started_ms t0_ms t1_ms hog_t0 fl_t0 at_t0 base_t0
  started_ms=$(now_ms)
  sleep "$warm"
  t0_ms=$(now_ms)
  hog_t0=$(ticks "$hog"); fl_t0=$(ticks "$fl"); at_t0=$(ticks "$at")
  if [ -n "${base:-}" ]; then base_t0=$(ticks "$base"); fi
  sleep "$secs"

  local procs hog_t hog_h fl_t fl_h at_t at_h base_t base_h
  local all=(/proc/[0-9]*)
  procs=${#all[@]}
  t1_ms=$(now_ms)
  hog_t=$(minus "$(ticks "$hog")" "$hog_t0"); hog_h=$(hwm_kib "$hog")
  fl_t=$(minus "$(ticks "$fl" 2>/dev/null || echo 0)" "$fl_t0"); fl_h=$(hwm_kib "$fl" 2>/dev/null || echo 0)
  at_t=$(minus "$(ticks "$at")" "$at_t0"); at_h=$(hwm_kib "$at")
  if [ -n "${base:-}" ]; then base_t=$(minus "$(ticks "$base")" "$base_t0"); base_h=$(hwm_kib "$base"); fi
  kill -TERM "$hog"; wait "$hog" || true
  kill "$fl" "$at" 2>/dev/null || true
  if [ -n "${base:-}" ]; then kill -TERM "$base"; wait "$base" || true; fi
  kill "${idle[@]}" 2>/dev/null || true

  local samples hog_ms fl_ms at_ms warm_ms
  samples=$(samples_in "$dir/bench.db" "$t0_ms" "$t1_ms")
  hog_ms=$(ms_per "$hog_t" "$samples")
  fl_ms=$(ms_per "$fl_t" "$secs")
  at_ms=$(ms_per "$at_t" "$secs")
  warm_ms=$(ms_per "$hog_t0" "$(samples_in "$dir/bench.db" "$started_ms" "$t0_ms")")
  echo "== $label: ${secs}s at 1s interval after ${warm}s of warm-up, $procs processes (${n_extra} extra idle), $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)"
  printf "%-10s %14s %12s\n" "" "CPU ms/sample" "peak RSS"
  printf "%-10s %14s %9s KiB\n" "hogtrap" "$hog_ms" "$hog_h"
  printf "%-10s %14s %9s KiB\n" "floor" "$fl_ms" "$fl_h"
  printf "%-10s %14s %9s KiB\n" "atop" "$at_ms" "$at_h"
  if [ -n "${base:-}" ]; then
    local base_ms
    base_ms=$(ms_per "$base_t" "$(samples_in "$dir/base/bench.db" "$t0_ms" "$t1_ms")")
    printf "%-10s %14s %9s KiB\n" "baseline" "$base_ms" "$base_h"
    awk -v h="$hog_ms" -v b="$base_ms" 'BEGIN { printf "hogtrap / baseline = %.2f\n", h / b }'
  fi
  awk -v h="$hog_ms" -v f="$fl_ms" -v a="$at_ms" 'BEGIN {
    printf "hogtrap / floor = %.2f   hogtrap / atop = %.2f\n", h / f, h / a }'
  echo "hogtrap's warm-up (its start included): $warm_ms ms per sample taken in it"
  store_report "$dir/bench.db"
  if [ -n "${base:-}" ]; then echo "  baseline $(store_report "$dir/base/bench.db" | tail -n 1 | sed 's/^ *//')"; fi
}

# run_netns: a daemon and an atop in each of two namespaces with different TCP hash sizes.
run_netns() {
  [ "$(id -u)" = 0 ] || { echo "--netns needs root" >&2; exit 1; }
  [ -e /proc/sys/net/ipv4/tcp_child_ehash_entries ] || { echo "this kernel has no tcp_child_ehash_entries (needs 6.1+)" >&2; exit 1; }
  old_child_ehash=$(sysctl -n net.ipv4.tcp_child_ehash_entries)
  local sizes=(1024 1048576) ns hog at base
  declare -A hogs ats bases
  for size in "${sizes[@]}"; do
    ns=htbench-$size-$$
    sysctl -qw net.ipv4.tcp_child_ehash_entries="$size"
    ip netns add "$ns"
    namespaces+=("$ns")
    ip netns exec "$ns" ip link set lo up
  done
  sysctl -qw net.ipv4.tcp_child_ehash_entries="$old_child_ehash"
  old_child_ehash=""
  for size in "${sizes[@]}"; do
    ns=htbench-$size-$$
    config "$work/$size"
    ip netns exec "$ns" "$bin" run -c "$work/$size/config.toml" 2>"$work/$size/hogtrap.log" &
    hogs[$size]=$!
    ip netns exec "$ns" atop -w "$work/$size/atop.raw" 1 >/dev/null 2>&1 &
    ats[$size]=$!
    pids+=("${hogs[$size]}" "${ats[$size]}")
    if [ -n "${BASELINE_BIN:-}" ]; then
      config "$work/$size/base"
      ip netns exec "$ns" "$BASELINE_BIN" run -c "$work/$size/base/config.toml" 2>"$work/$size/base.log" &
      bases[$size]=$!
      pids+=("${bases[$size]}")
    fi
  done
  sleep "$warm"
  local t0_ms t1_ms
  declare -A hog_t at_t base_t hog_t0 at_t0 base_t0
  t0_ms=$(now_ms)
  for size in "${sizes[@]}"; do
    hog_t0[$size]=$(ticks "${hogs[$size]}")
    at_t0[$size]=$(ticks "${ats[$size]}")
    if [ -n "${BASELINE_BIN:-}" ]; then base_t0[$size]=$(ticks "${bases[$size]}"); fi
  done
  sleep "$secs"
  t1_ms=$(now_ms)
  for size in "${sizes[@]}"; do
    hog_t[$size]=$(minus "$(ticks "${hogs[$size]}")" "${hog_t0[$size]}")
    at_t[$size]=$(minus "$(ticks "${ats[$size]}")" "${at_t0[$size]}")
    if [ -n "${BASELINE_BIN:-}" ]; then base_t[$size]=$(minus "$(ticks "${bases[$size]}")" "${base_t0[$size]}"); fi
  done
  for size in "${sizes[@]}"; do
    kill -TERM "${hogs[$size]}"; wait "${hogs[$size]}" || true
    kill "${ats[$size]}" 2>/dev/null || true
    if [ -n "${BASELINE_BIN:-}" ]; then kill -TERM "${bases[$size]}"; wait "${bases[$size]}" || true; fi
  done
  local all=(/proc/[0-9]*)
  echo "== netns: ${secs}s at 1s interval after ${warm}s of warm-up, ${#all[@]} processes, $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)"
  printf "%-22s %14s %14s %10s %14s\n" "namespace" "hogtrap ms" "atop ms" "h / atop" "baseline ms"
  declare -A hog_ms
  for size in "${sizes[@]}"; do
    ns=htbench-$size-$$
    local samples a b="-"
    samples=$(samples_in "$work/$size/bench.db" "$t0_ms" "$t1_ms")
    hog_ms[$size]=$(ms_per "${hog_t[$size]}" "$samples")
    a=$(ms_per "${at_t[$size]}" "$secs")
    if [ -n "${BASELINE_BIN:-}" ]; then
      b=$(ms_per "${base_t[$size]}" "$(samples_in "$work/$size/base/bench.db" "$t0_ms" "$t1_ms")")
    fi
    printf "%-22s %14s %14s %10s %14s\n" "ehash $(ip netns exec "$ns" sysctl -n net.ipv4.tcp_ehash_entries)" \
      "${hog_ms[$size]}" "$a" "$(awk -v h="${hog_ms[$size]}" -v a="$a" 'BEGIN { printf "%.2f", h / a }')" "$b"
  done
  awk -v big="${hog_ms[1048576]}" -v small="${hog_ms[1024]}" 'BEGIN {
    printf "hogtrap at 1,048,576 buckets / at 1,024 = %.2f\n", big / small }'
  for size in "${sizes[@]}"; do echo "ehash $size: $(store_report "$work/$size/bench.db" | tail -n 1 | sed 's/^ *//')"; done
}

# run_storm: the daemon and atop through a forking storm.
run_storm() {
  local dir=$work/storm n=${STORM_CHILDREN:-2000} hog at base t0_ms t1_ms hog_t0 at_t0 base_t0
  start_daemons "$dir"
  atop -w "$dir/atop.raw" 1 >/dev/null 2>&1 &
  at=$!
  pids+=("$hog" "$at")
  sleep "$warm"
  t0_ms=$(now_ms)
  hog_t0=$(ticks "$hog"); at_t0=$(ticks "$at")
  if [ -n "${base:-}" ]; then base_t0=$(ticks "$base"); fi
  local storm_out started ended
  started=$(now_ms)
  storm_out=$(perl -e "\$0 = 'ht_forker'; do '$PWD/tests/support/storm.pl' or die \$@" "$n" 20 100 0)
  ended=$(now_ms)
  local rest=$(( secs * 1000 - (ended - t0_ms) ))
  if [ "$rest" -gt 0 ]; then sleep "$(awk -v r="$rest" 'BEGIN { print r / 1000 }')"; fi
  sleep 3 # exits are folded into the sample after them
  t1_ms=$(now_ms)
  local hog_t at_t base_t hog_h
  hog_t=$(minus "$(ticks "$hog")" "$hog_t0"); hog_h=$(hwm_kib "$hog")
  at_t=$(minus "$(ticks "$at")" "$at_t0")
  if [ -n "${base:-}" ]; then base_t=$(minus "$(ticks "$base")" "$base_t0"); fi
  kill -TERM "$hog"; wait "$hog" || true
  kill "$at" 2>/dev/null || true
  if [ -n "${base:-}" ]; then kill -TERM "$base"; wait "$base" || true; fi

  local forker truth window_s hog_ms at_ms
  forker=$(sed -n 's/^ready //p' <<<"$storm_out")
  truth=$(sed -n 's/^children_cpu_s //p' <<<"$storm_out")
  window_s=$(awk -v a="$t0_ms" -v b="$t1_ms" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
  hog_ms=$(ms_per "$hog_t" "$(samples_in "$dir/bench.db" "$t0_ms" "$t1_ms")")
  at_ms=$(awk -v t="$at_t" -v c="$clk" -v s="$window_s" 'BEGIN { printf "%.2f", t * 1000 / c / s }')
  echo "== storm: $n children of 20 ms CPU, 100 at a time, in $(( (ended - started) / 1000 )) s; window ${window_s}s at 1s interval after ${warm}s of warm-up, $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)"
  printf "%-10s %14s %12s\n" "" "CPU ms/sample" "peak RSS"
  printf "%-10s %14s %9s KiB\n" "hogtrap" "$hog_ms" "$hog_h"
  printf "%-10s %14s\n" "atop" "$at_ms"
  if [ -n "${base:-}" ]; then
    local base_ms
    base_ms=$(ms_per "$base_t" "$(samples_in "$dir/base/bench.db" "$t0_ms" "$t1_ms")")
    printf "%-10s %14s\n" "baseline" "$base_ms"
    awk -v h="$hog_ms" -v b="$base_ms" 'BEGIN { printf "hogtrap / baseline = %.2f\n", h / b }'
  fi
  awk -v h="$hog_ms" -v a="$at_ms" 'BEGIN { printf "hogtrap / atop = %.2f\n", h / a }'
  local rows procs attributed lost
  IFS=, read -r rows procs attributed <<<"$(q "$dir/bench.db" "SELECT count(*), coalesce(sum(count), 0),
      coalesce(sum(life_cpu_us), 0) / 1e6 FROM process_exit WHERE ppid = $forker")"
  lost=$(q "$dir/bench.db" "SELECT coalesce(sum(exits_lost), 0) FROM sample WHERE ts_ms >= $started")
  echo "truth: the children used ${truth} s of CPU (the parent's getrusage)"
  echo "store: $rows exit rows for $procs children of the parent (of $n), their CPU $attributed s ($(awk -v a="$attributed" -v t="$truth" 'BEGIN { printf "%.1f", 100 * a / t }') % of the truth); exit records lost: $lost"
  echo "  $(store_report "$dir/bench.db" | tail -n 1 | sed 's/^ *//')"
}

echo "uptime before: $(uptime)"
if [ "$mode" = netns ]; then
  run_netns
elif [ "$mode" = storm ]; then
  run_storm
else
  run_phase today 0
  if [ "$extra" -gt 0 ]; then run_phase "plus$extra" "$extra"; fi
fi
echo "uptime after: $(uptime)"
