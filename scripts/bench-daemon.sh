#!/usr/bin/env bash
# Runs the hogtrap daemon (collect, store and the shipped rules) at a 1 s interval beside the floor (a minimal reader of every
# /proc/[pid]/stat, examples/stat_floor.rs) and `atop -w FILE 1`, all at once for the same
# time on the same machine, and reports CPU ms per sample, peak RSS and bytes per stored
# process row. Ratios to the floor and to atop are what count: the machine is shared.
#
# Usage: scripts/bench-daemon.sh [SECONDS] [EXTRA_IDLE_PROCESSES]
#
# BASELINE_BIN=/path/to/older/hogtrap runs that binary too, beside the new one, with the same
# config and its own store, and reports new / baseline: how a change moved the cost, measured
# in the same seconds on the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
extra=${2:-0}

cargo build --release --quiet --bin hogtrap --example stat_floor
bin=target/release/hogtrap
floor=target/release/examples/stat_floor
command -v atop >/dev/null || { echo "atop is missing: run scripts/install-test-deps.sh" >&2; exit 1; }

work=$(mktemp -d)
idle_pids=()
cleanup() {
  for p in "${idle_pids[@]}" ${hog_pid:-} ${base_pid:-} ${floor_pid:-} ${atop_pid:-}; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for ((i = 0; i < extra; i++)); do
  sleep $((secs + 120)) &
  idle_pids+=($!)
done

cat >"$work/config.toml" <<TOML
[sampler]
interval = "1s"
[store]
path = "$work/bench.db"
[rules]
dir = "$PWD/rules"
TOML
chmod 600 "$work/config.toml"
if [ -n "${BASELINE_BIN:-}" ]; then
  sed "s#$work/bench.db#$work/base.db#" "$work/config.toml" >"$work/base.toml"
  chmod 600 "$work/base.toml"
  "$BASELINE_BIN" run -c "$work/base.toml" 2>"$work/base.log" &
  base_pid=$!
fi

"$bin" run -c "$work/config.toml" 2>"$work/hogtrap.log" &
hog_pid=$!
"$floor" 1000 $((secs + 30)) &
floor_pid=$!
atop -w "$work/atop.raw" 1 >/dev/null 2>&1 &
atop_pid=$!

sleep "$secs"

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hwm_kib() { awk '/VmHWM/ { print $2 }' "/proc/$1/status"; }
clk=$(getconf CLK_TCK)
procs=$(ls -d /proc/[0-9]* | wc -l)

hog_ticks=$(ticks $hog_pid); hog_hwm=$(hwm_kib $hog_pid)
floor_ticks=$(ticks $floor_pid 2>/dev/null || echo 0); floor_hwm=$(hwm_kib $floor_pid 2>/dev/null || echo 0)
atop_ticks=$(ticks $atop_pid); atop_hwm=$(hwm_kib $atop_pid)
if [ -n "${base_pid:-}" ]; then base_ticks=$(ticks $base_pid); base_hwm=$(hwm_kib $base_pid); fi
kill -TERM $hog_pid; wait $hog_pid || true
if [ -n "${base_pid:-}" ]; then kill -TERM $base_pid; wait $base_pid || true; fi

q() { "$bin" --db "$work/bench.db" sql --csv "$1" | tail -n 1; }
samples=$(q "SELECT count(*) FROM sample")
rows=$(q "SELECT count(*) FROM process_sample")
row_bytes=$(q "SELECT sum(pgsize) FROM dbstat WHERE name = 'process_sample'")
file_bytes=$(stat -c %s "$work/bench.db")

ms_per() { awk -v t="$1" -v c="$clk" -v n="$2" 'BEGIN { printf "%.2f", t * 1000 / c / n }'; }
hog_ms=$(ms_per "$hog_ticks" "$samples")
floor_ms=$(ms_per "$floor_ticks" "$secs")
atop_ms=$(ms_per "$atop_ticks" "$secs")

echo "hogtrap bench: ${secs}s at 1s interval, $procs processes (${extra} extra idle), $(nproc) CPUs"
printf "%-10s %14s %12s\n" "" "CPU ms/sample" "peak RSS"
printf "%-10s %14s %9s KiB\n" "hogtrap" "$hog_ms" "$hog_hwm"
printf "%-10s %14s %9s KiB\n" "floor" "$floor_ms" "$floor_hwm"
printf "%-10s %14s %9s KiB\n" "atop" "$atop_ms" "$atop_hwm"
if [ -n "${base_pid:-}" ]; then
  base_samples=$("$bin" --db "$work/base.db" sql --csv "SELECT count(*) FROM sample" | tail -n 1)
  base_ms=$(ms_per "$base_ticks" "$base_samples")
  printf "%-10s %14s %9s KiB\n" "baseline" "$base_ms" "$base_hwm"
  awk -v h="$hog_ms" -v b="$base_ms" 'BEGIN { printf "hogtrap / baseline = %.2f\n", h / b }'
fi
awk -v h="$hog_ms" -v f="$floor_ms" -v a="$atop_ms" 'BEGIN {
  printf "hogtrap / floor = %.2f   hogtrap / atop = %.2f\n", h / f, h / a }'
awk -v b="$row_bytes" -v r="$rows" -v s="$samples" -v fb="$file_bytes" 'BEGIN {
  printf "samples %d, process rows %d (%.1f per sample), %.1f bytes per process row (dbstat), file %d bytes (%.0f per sample)\n",
    s, r, r / s, b / r, fb, fb / s }'
