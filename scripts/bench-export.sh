#!/usr/bin/env bash
# The daemon's CPU per sample with [export.prometheus] on and /metrics scraped every second,
# beside the same daemon with it off: two release daemons side by side (same machine, same
# time, same load), each sampling every second for DURATION seconds. CPU is utime + stime
# from /proc/PID/stat; samples are counted in each store. The scraper (curl) is not counted.
#
#   scripts/bench-export.sh [DURATION]      (default 60)
#   PROFILE=debug scripts/bench-export.sh   (the dev build instead of release)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-60}
profile=${PROFILE:-release}
if [ "$profile" = release ]; then cargo build --release --quiet; else cargo build --quiet; fi
bin=$PWD/target/$profile/hogtrap
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/rules"
cp rules/*.lua "$work/rules/"
for mode in off on; do
  cat > "$work/$mode.toml" <<TOML
[sampler]
interval = "1s"
[store]
path = "$work/$mode.db"
[rules]
dir = "$work/rules"
[export.prometheus]
enabled = $([ "$mode" = on ] && echo true || echo false)
listen = "127.0.0.1:$port"
TOML
  chmod 600 "$work/$mode.toml"
done
"$bin" run -c "$work/off.toml" 2>"$work/off.log" & off=$!
"$bin" run -c "$work/on.toml" 2>"$work/on.log" & on=$!
sleep 3 # start-up (store creation, rule loading) is not measured
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
count() { "$bin" --db "$1" sql --json "SELECT count(*) AS n FROM sample" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["n"])'; }
t_off0=$(ticks $off); t_on0=$(ticks $on)
n_off0=$(count "$work/off.db"); n_on0=$(count "$work/on.db")
scrapes=0
end=$((SECONDS + duration))
while [ $SECONDS -lt $end ]; do
  curl -sf -H 'Accept: application/openmetrics-text; version=1.0.0' "http://127.0.0.1:$port/metrics" >/dev/null && scrapes=$((scrapes + 1))
  sleep 1
done
t_off1=$(ticks $off); t_on1=$(ticks $on)
n_off1=$(count "$work/off.db"); n_on1=$(count "$work/on.db")
hz=$(getconf CLK_TCK)
python3 - "$hz" "$t_off0" "$t_off1" "$n_off0" "$n_off1" "$t_on0" "$t_on1" "$n_on0" "$n_on1" "$scrapes" <<'PY'
import sys
hz, a0, a1, na0, na1, b0, b1, nb0, nb1, scrapes = map(int, sys.argv[1:])
off = (a1 - a0) * 1000 / hz / max(1, na1 - na0)
on = (b1 - b0) * 1000 / hz / max(1, nb1 - nb0)
print(f"export off: {na1 - na0} samples, {(a1 - a0) * 1000 // hz} ms CPU, {off:.2f} ms CPU per sample")
print(f"export on:  {nb1 - nb0} samples, {(b1 - b0) * 1000 // hz} ms CPU, {on:.2f} ms CPU per sample, {scrapes} scrapes")
print(f"ratio on/off: {on / off:.2f}" if off > 0 else "ratio: off used no measurable CPU")
PY
