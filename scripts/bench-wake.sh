#!/usr/bin/env bash
# What wake-ups cost in a storm: two daemons side by side, the same config but for
# `[sampler.wake] enabled`, 10 s interval and the shipped rules, each with its own store,
# through the same storm of CPU burners (twice as many as CPUs) for SECONDS. Reports each
# one's CPU time (utime + stime from /proc), the ratio on/off, and the samples by reason.
#
# Usage: scripts/bench-wake.sh [SECONDS] [BURNERS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
burners=${2:-$((2 * $(nproc)))}

cargo build --release --quiet --bin hogtrap
bin=target/release/hogtrap

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for mode in on off; do
  enabled=true
  [ "$mode" = off ] && enabled=false
  cat >"$work/$mode.toml" <<TOML
[sampler]
interval = "10s"
[store]
path = "$work/$mode.db"
[rules]
dir = "$PWD/rules"
[sampler.wake]
enabled = $enabled
TOML
  chmod 600 "$work/$mode.toml"
done

"$bin" run -c "$work/on.toml" 2>"$work/on.log" &
on_pid=$!; pids+=($on_pid)
"$bin" run -c "$work/off.toml" 2>"$work/off.log" &
off_pid=$!; pids+=($off_pid)
sleep 15 # both started, their first samples taken
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
on0=$(ticks $on_pid); off0=$(ticks $off_pid)
t0=$(date +%s%3N)
for ((i = 0; i < burners; i++)); do
  timeout "$secs" sh -c 'while :; do :; done' &
  pids+=($!)
done
sleep "$secs"
t1=$(date +%s%3N)
on1=$(ticks $on_pid); off1=$(ticks $off_pid)
kill -TERM $on_pid $off_pid; wait $on_pid $off_pid || true

clk=$(getconf CLK_TCK)
q() { "$bin" --db "$work/$1.db" sql --csv "$2" | tail -n +2; }
echo "hogtrap wake bench: ${secs}s storm of $burners burners on $(nproc) CPUs, interval 10s, shipped rules; load: $(cut -d' ' -f1-3 /proc/loadavg)"
grep -h -o 'wake-ups[^"]*' "$work/on.log" | head -1
printf '%-14s %10s %8s %16s\n' daemon "CPU ms" samples "closest gap ms"
for m in on off; do
  t=$([ $m = on ] && echo $((on1 - on0)) || echo $((off1 - off0)))
  n=$(q $m "SELECT count(*) FROM sample WHERE ts_ms BETWEEN $t0 AND $t1")
  gap=$(q $m "SELECT min(b.ts_ms - a.ts_ms) FROM sample a JOIN sample b ON b.id = a.id + 1 WHERE a.ts_ms BETWEEN $t0 AND $t1 AND b.ts_ms <= $t1")
  printf '%-14s %10s %8s %16s\n' "wake $m" "$(awk -v t=$t -v c=$clk 'BEGIN { printf "%.0f", t * 1000 / c }')" "$n" "$gap"
done
awk -v a=$((on1 - on0)) -v b=$((off1 - off0)) 'BEGIN { printf "CPU wake on / wake off = %.2f\n", (b > 0 ? a / b : 0) }'
echo "samples by reason (wake on):"
q on "SELECT reason, count(*) FROM sample WHERE ts_ms BETWEEN $t0 AND $t1 GROUP BY reason"
echo "fired since start (wake on): $(q on "SELECT value FROM recorder_state WHERE key = 'wake_fired'")"
