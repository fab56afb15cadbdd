#!/usr/bin/env bash
# The recorder under distress (SPEC §11): runs the daemon at a 1 s interval, then
#   1. a CPU + fork storm: 2 × nproc shell loops forking /bin/true plus nproc busy loops;
#   2. memory pressure: a process that takes all but ~300 MiB of MemAvailable and keeps
#      touching it (oom_score_adj 1000, so it is the OOM killer's first choice);
# each for SECONDS, and reports the largest gap between consecutive samples, the latest
# sample and the samples missed, per phase. Run as root (the protections need it).
#
# Usage: scripts/bench-distress.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
cargo build --release --quiet --bin hogtrap
bin=target/release/hogtrap
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}" ${hog:-}; do kill -- "$p" 2>/dev/null || true; done
  pkill -f "hogtrap-distress-" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cat >"$work/config.toml" <<TOML
[sampler]
interval = "1s"
[store]
path = "$work/d.db"
[rules]
dir = "$PWD/rules"
TOML
chmod 600 "$work/config.toml"
"$bin" run -c "$work/config.toml" 2>"$work/log" &
hog=$!
sleep 5

phase() { # name start_ms end_ms
  "$bin" --db "$work/d.db" sql --csv "
    WITH s AS (SELECT ts_ms, late_ms, ts_ms - lag(ts_ms) OVER (ORDER BY ts_ms) AS gap
               FROM sample WHERE ts_ms BETWEEN $2 AND $3)
    SELECT '$1' AS phase, count(*) AS samples, max(gap) AS max_gap_ms, max(late_ms) AS max_late_ms,
           (SELECT coalesce(sum(count), 0) FROM recorder_event
             WHERE kind = 'gap' AND ts_ms BETWEEN $2 AND $3) AS missed
    FROM s" | tail -n 1
}
now_ms() { date +%s%3N; }

t0=$(now_ms); sleep "$secs"; t1=$(now_ms)

for ((i = 0; i < 2 * $(nproc); i++)); do
  bash -c 'exec -a hogtrap-distress-fork bash -c "while :; do /bin/true; done"' &
  pids+=($!)
done
for ((i = 0; i < $(nproc); i++)); do
  bash -c 'exec -a hogtrap-distress-cpu bash -c "while :; do :; done"' &
  pids+=($!)
done
t2=$(now_ms); sleep "$secs"; t3=$(now_ms)
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
pkill -f "hogtrap-distress-" 2>/dev/null || true
pids=()
sleep 3

avail_kib=$(awk '/MemAvailable/ { print $2 }' /proc/meminfo)
take_mib=$(( avail_kib / 1024 - 300 ))
/usr/bin/python3 -c "
import os, time
open('/proc/self/oom_score_adj', 'w').write('1000')
mib = $take_mib
blocks = []
for _ in range(mib):
    blocks.append(bytearray(b'm' * (1 << 20)))
end = time.time() + $secs
while time.time() < end:
    for b in blocks[::64]:
        b[0] = (b[0] + 1) % 256
    time.sleep(0.05)
" &
pids+=($!)
t4=$(now_ms); wait "${pids[@]}" 2>/dev/null || true; t5=$(now_ms)
pids=()
sleep 2
kill -TERM $hog; wait $hog || true

echo "hogtrap distress: interval 1 s, ${secs} s per phase, $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, memory hog took ${take_mib} MiB"
echo "phase,samples,max_gap_ms,max_late_ms,missed"
phase calm "$t0" "$t1"
phase cpu+fork-storm "$t2" "$t3"
phase memory-pressure "$t4" "$t5"
echo "PSI memory some avg10 peak during pressure: $("$bin" --db "$work/d.db" sql --csv "SELECT max(psi_mem_some_avg10) FROM sample WHERE ts_ms BETWEEN $t4 AND $t5" | tail -n 1)"
