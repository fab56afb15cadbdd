#!/usr/bin/env bash
# The recorder under distress (SPEC §11): runs the daemon at a 1 s interval with the shipped
# rules, `atop -w FILE 1` beside it, and puts the box through these phases (PHASES, in order):
#   calm     nothing, as a baseline                                            (SECONDS)
#   cpu      a CPU + fork storm: 2 × nproc loops forking /bin/true, nproc busy loops (SECONDS)
#   memory   a process takes all but MARGIN_MIB (300) MiB of MemAvailable, keeps touching (SECONDS)
#   thrash   a 1 GiB swap file (created here, removed at the end) and a process taking all of
#            MemAvailable + 600 MiB, touching every page over and over            (THRASH_SECS, 180)
#   pids     PID exhaustion: the daemon is moved into a pids cgroup with a fork bomb sized to
#            fill it, so neither can create a thread or process                     (PIDS_SECS, 60)
#   stall    the store's disk (an ext4 loop device the store lives on all run) delayed: a
#            device-mapper `delay` target at 2 s per write if the kernel has one, else the
#            loop device throttled to 2 KiB/s of writes (blkio/io cgroup)            (STALL_SECS, 30)
# and reports, per phase: samples stored against slots, the largest gap between consecutive
# samples, the latest sample, samples missed (the daemon's gap events), late-sample and stall
# events, and atop's largest gap in the same window; at the end, the daemon's RSS (now and
# peak) and thread count. Run as root on a machine you can spare: the thrash phase slows
# everything on it. Every process it starts is stopped by pid.
#
# Usage: [PHASES="calm thrash pids stall"] [PERF=1] [HOGTRAP_BIN=path] scripts/bench-distress.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
phases=${PHASES:-calm cpu memory thrash pids stall}
thrash_secs=${THRASH_SECS:-180}
pids_secs=${PIDS_SECS:-60}
stall_secs=${STALL_SECS:-30}
[[ $(id -u) == 0 ]] || { echo "bench-distress: run as root (swap, cgroups, loop devices)" >&2; exit 1; }
# HOGTRAP_BIN: another build to run the same phases with (a baseline side by side).
# KEEP_STORE=DIR: keep the store for a look afterwards.
if [[ -z ${HOGTRAP_BIN:-} ]]; then cargo build --release --quiet --bin hogtrap; fi
bin=${HOGTRAP_BIN:-$PWD/target/release/hogtrap}
work=$(mktemp -d /var/tmp/hogtrap-distress.XXXXXX)
pids=() daemon='' atop_pid='' loopdev='' dmname='' swapfile='' pidcg='' iocg='' throttle_file=''
stop_pids() { # pids started here, by id
  local p
  for p in "$@"; do kill -KILL -- "$p" 2>/dev/null || true; done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
}
cleanup() {
  set +e
  stop_pids "${pids[@]}"
  if [[ -n $pidcg && -d $pidcg ]]; then
    [[ -n $daemon ]] && echo "$daemon" >"$(dirname "$pidcg")/cgroup.procs"
    for p in $(cat "$pidcg/cgroup.procs"); do kill -KILL "$p"; done
    sleep 0.5; rmdir "$pidcg"
  fi
  [[ -n $throttle_file ]] && echo "$(lsblk -dno MAJ:MIN "$loopdev" | tr -d ' ') 0" >"$throttle_file"
  [[ -n $daemon ]] && { kill -TERM "$daemon"; wait "$daemon"; }
  [[ -n $atop_pid ]] && { kill -TERM "$atop_pid"; wait "$atop_pid"; }
  if [[ -n $iocg && -d $iocg ]]; then rmdir "$iocg"; fi
  # KEEP_STORE=DIR: the store (and its WAL) copied there before the disk goes.
  if [[ -n ${KEEP_STORE:-} ]]; then mkdir -p "$KEEP_STORE" && cp "$work"/slow/d.db* "$KEEP_STORE"/; fi
  mountpoint -q "$work/slow" && umount "$work/slow"
  [[ -n $dmname ]] && dmsetup remove "$dmname"
  [[ -n $loopdev ]] && losetup -d "$loopdev"
  [[ -n $swapfile ]] && { swapoff "$swapfile"; rm -f "$swapfile"; }
  rm -rf "$work"
}
trap cleanup EXIT

# The store's disk: ext4 on a loop device (through a dm delay target when there is one), so
# the stall phase can slow exactly this disk and nothing else.
truncate -s 1G "$work/disk.img"
loopdev=$(losetup -f --show "$work/disk.img")
storedev=$loopdev
if dmsetup targets 2>/dev/null | grep -q '^delay'; then
  dmname=hogtrap-distress-$$
  sectors=$(blockdev --getsz "$loopdev")
  dmsetup create "$dmname" --table "0 $sectors delay $loopdev 0 0 $loopdev 0 0"
  storedev=/dev/mapper/$dmname
fi
mkfs.ext4 -q "$storedev"
mkdir "$work/slow"
mount "$storedev" "$work/slow"

cat >"$work/config.toml" <<TOML
[sampler]
interval = "1s"
[store]
path = "$work/slow/d.db"
[rules]
dir = "$PWD/rules"
TOML
chmod 600 "$work/config.toml"
atop -w "$work/atop.raw" 1 >/dev/null 2>&1 &
atop_pid=$!
"$bin" run -c "$work/config.toml" 2>"$work/log" &
daemon=$!
sleep 5
# PERF=1: perf samples the sampling thread's stacks (kernel included) all run, to see where a
# slow pass spends its time.
if [[ -n ${PERF:-} ]]; then
  sampler_tid=$(grep -l '^sampler$' /proc/"$daemon"/task/*/comm | cut -d/ -f5)
  perf record -q -F 499 -g -t "$sampler_tid" -o "$work/perf.data" >/dev/null 2>&1 &
  perf_pid=$!
fi

now_ms() { date +%s%3N; }
declare -A from to
sql() { "$bin" --db "$work/slow/d.db" sql --csv "$1" | tail -n +2; }

run_calm() { sleep "$secs"; }

run_cpu() {
  local i ps=()
  for ((i = 0; i < 2 * $(nproc); i++)); do
    bash -c 'while :; do /bin/true; done' & ps+=($!)
  done
  for ((i = 0; i < $(nproc); i++)); do
    bash -c 'while :; do :; done' & ps+=($!)
  done
  pids+=("${ps[@]}")
  sleep "$secs"
  stop_pids "${ps[@]}"
}

# hog MIB SECONDS: takes MIB MiB (in 256 MiB blocks, every page touched at C speed, so a
# starved CPU still gets there), then touches every page of it, over and over, for SECONDS
# (oom_score_adj 1000: the OOM killer's first choice). Says when it holds it all.
hog() {
  /usr/bin/python3 -c "
import os, sys, time
open('/proc/self/oom_score_adj', 'w').write('1000')
start = time.time()
blocks, left = [], $1
while left > 0 and time.time() < start + 120:
    b = bytearray(min(left, 256) << 20)
    b[::4096] = bytes(len(b) // 4096)
    blocks.append(b)
    left -= 256
print(f'hog: holds {sum(map(len, blocks)) >> 20} MiB after {time.time() - start:.0f} s', file=open('$work/notes', 'a'))
end = time.time() + $2
while time.time() < end:
    for b in blocks:
        b[::4096] = b'x' * (len(b) // 4096)
        if time.time() > end: break
"
}

run_memory() {
  local avail_kib take_mib
  avail_kib=$(awk '/MemAvailable/ { print $2 }' /proc/meminfo)
  take_mib=$((avail_kib / 1024 - ${MARGIN_MIB:-300}))
  echo "memory: hog takes $take_mib MiB" >>"$work/notes"
  hog "$take_mib" "$secs" & pids+=($!)
  wait "${pids[-1]}" || true
}

run_thrash() {
  local avail_kib take_mib
  swapfile=/var/tmp/hogtrap-distress-swap.$$
  fallocate -l 1G "$swapfile"
  chmod 600 "$swapfile"
  mkswap -q "$swapfile"
  swapon "$swapfile"
  avail_kib=$(awk '/MemAvailable/ { print $2 }' /proc/meminfo)
  take_mib=$((avail_kib / 1024 + 600))
  echo "thrash: 1 GiB swap file, hog takes $take_mib MiB (MemAvailable + 600 MiB)" >>"$work/notes"
  hog "$take_mib" "$thrash_secs" & pids+=($!)
  wait "${pids[-1]}" || true
  echo "thrash: after: $(grep -E 'SwapTotal|SwapFree' /proc/meminfo | tr -s ' ' | tr '\n' ' ')" >>"$work/notes"
  swapoff "$swapfile" && rm -f "$swapfile" && swapfile=''
}

# The pids controller: cgroup v2 at /sys/fs/cgroup if it offers it, else the v1 hierarchy.
pids_root() {
  if grep -qw pids /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
    grep -qw pids /sys/fs/cgroup/cgroup.subtree_control || echo +pids >/sys/fs/cgroup/cgroup.subtree_control
    echo /sys/fs/cgroup
  elif [[ -f /sys/fs/cgroup/pids/cgroup.procs ]]; then
    echo /sys/fs/cgroup/pids
  else
    echo "bench-distress: no pids cgroup controller" >&2; return 1
  fi
}

run_pids() {
  local root tasks bomb
  root=$(pids_root)
  pidcg=$root/hogtrap-distress-$$
  mkdir "$pidcg"
  # The bomb first joins the cgroup, checks it is inside, then forks children that sleep
  # until every pid of the cgroup is taken, and keeps taking any that frees up.
  tasks=$(ls /proc/"$daemon"/task | wc -l)
  echo $((tasks + 200)) >"$pidcg/pids.max"
  echo "$daemon" >"$pidcg/cgroup.procs"
  /usr/bin/python3 -c "
import os, sys, time
open('$pidcg/cgroup.procs', 'w').write(str(os.getpid()))
if not any(l.rstrip().endswith('/hogtrap-distress-$$') for l in open('/proc/self/cgroup')):
    sys.exit('not inside the pids cgroup: no fork bomb')
end = time.time() + $pids_secs
failed = 0
while time.time() < end:
    try:
        if os.fork() == 0:
            time.sleep(max(0, end - time.time()))
            os._exit(0)
    except OSError:
        failed += 1
        time.sleep(0.005)
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0: pass
    except ChildProcessError: pass
print(f'pids: fork bomb: {failed} fork(s) refused at the cgroup limit', file=open('$work/notes', 'a'))
" & bomb=$!
  pids+=($bomb)
  sleep 3
  echo "pids: cgroup $pidcg: pids.max $(cat "$pidcg/pids.max"), pids.current $(cat "$pidcg/pids.current") 3 s in" >>"$work/notes"
  wait "$bomb" || true
  echo "pids: pids.events: $(tr '\n' ' ' <"$pidcg/pids.events" 2>/dev/null)" >>"$work/notes"
  echo "$daemon" >"$root/cgroup.procs"
  for p in $(cat "$pidcg/cgroup.procs"); do kill -KILL "$p" 2>/dev/null || true; done
  sleep 1
  rmdir "$pidcg" && pidcg=''
}

run_stall() {
  local majmin start
  if [[ -n $dmname ]]; then
    sectors=$(blockdev --getsz "$loopdev")
    dmsetup suspend "$dmname"
    dmsetup reload "$dmname" --table "0 $sectors delay $loopdev 0 0 $loopdev 0 2000"
    dmsetup resume "$dmname"
    echo "stall: dm delay target, writes delayed 2000 ms" >>"$work/notes"
  else
    majmin=$(lsblk -dno MAJ:MIN "$loopdev" | tr -d ' ')
    if [[ -f /sys/fs/cgroup/blkio/blkio.throttle.write_bps_device ]]; then
      # cgroup v1: the root blkio group holds the daemon, the flusher and jbd2 threads.
      throttle_file=/sys/fs/cgroup/blkio/blkio.throttle.write_bps_device
      echo "$majmin 2048" >"$throttle_file"
    else
      iocg=/sys/fs/cgroup/hogtrap-distress-io-$$
      grep -qw io /sys/fs/cgroup/cgroup.subtree_control || echo +io >/sys/fs/cgroup/cgroup.subtree_control
      mkdir "$iocg"
      echo "$majmin wbps=2048" >"$iocg/io.max"
      echo "$daemon" >"$iocg/cgroup.procs"
    fi
    echo "stall: no dm delay target in this kernel; loop device $loopdev ($majmin) throttled to 2048 B/s of writes (2 s per 4 KiB)" >>"$work/notes"
  fi
  # A witness beside the daemon: how long one 4 KiB synchronous write takes now (in the
  # background: behind the daemon's queued writeback it may take longer than the phase).
  start=$(now_ms)
  ( timeout $((stall_secs + 30)) dd if=/dev/zero of="$work/slow/witness" bs=4k count=1 oflag=dsync status=none &&
    echo "stall: one 4 KiB O_DSYNC write beside the daemon took $(($(now_ms) - start)) ms" >>"$work/notes" ) &
  pids+=($!)
  sleep "$stall_secs"
  if [[ -n $dmname ]]; then
    dmsetup suspend "$dmname"
    dmsetup reload "$dmname" --table "0 $sectors delay $loopdev 0 0 $loopdev 0 0"
    dmsetup resume "$dmname"
  elif [[ -n $throttle_file ]]; then
    echo "$majmin 0" >"$throttle_file"; throttle_file=''
  else
    echo "$daemon" >/sys/fs/cgroup/cgroup.procs; rmdir "$iocg" && iocg=''
  fi
}

for ph in $phases; do
  from[$ph]=$(now_ms)
  "run_$ph"
  to[$ph]=$(now_ms)
  # What was held in memory gets written; the next phase starts on a settled box.
  sleep 10
done
load=$(uptime)
# The daemon's memory after every phase: resident now and at its peak, and its threads.
rss=$(awk '/^VmRSS|^VmHWM|^Threads/ { printf "%s %s %s  ", $1, $2, $3 }' /proc/"$daemon"/status)
kill -TERM "$daemon"; wait "$daemon" || true; daemon=''
kill -TERM "$atop_pid"; wait "$atop_pid" || true; atop_pid=''
if [[ -n ${perf_pid:-} ]]; then
  kill -INT "$perf_pid"; wait "$perf_pid" || true
  echo "perf: where the sampling thread spent its time (self, top symbols):"
  { perf report -i "$work/perf.data" --stdio --no-children --sort sym 2>/dev/null |
    grep -E '^ +[0-9.]+%' | head -25; } || true
  echo "perf: reclaim and compaction (direct reclaim on the sampling thread):"
  { perf report -i "$work/perf.data" --stdio --no-children --sort sym 2>/dev/null |
    grep -E '^ +[0-9.]+%' | grep -E 'shrink|reclaim|compact|lru|swap' | head -10; } || true
  echo
fi

# atop's samples (whole seconds), for its own gaps in each window.
atop -r "$work/atop.raw" -P CPU 2>/dev/null | awk '$1 == "CPU" { print $3 }' | uniq >"$work/atop.ts"
atop_gap() { # from_ms to_ms
  awk -v a=$(($1 / 1000)) -v b=$(($2 / 1000)) '$1 >= a && $1 <= b {
    if (prev) { g = $1 - prev; if (g > max) max = g }; prev = $1 } END { print max + 0 }' "$work/atop.ts"
}

echo "hogtrap distress: interval 1 s, $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, kernel $(uname -r)"
echo "load at the end: $load"
echo "daemon at the end: $rss"
cat "$work/notes" 2>/dev/null || true
echo "phase,seconds,samples,max_gap_ms,max_late_ms,missed,late_events,stall_events,atop_max_gap_s,psi_mem_some_peak,swap_used_peak_mib"
for ph in $phases; do
  a=${from[$ph]} b=${to[$ph]}
  # Slots: the 1 s grid points inside the window (the daemon's own schedule).
  row=$(sql "
    WITH s AS (SELECT ts_ms, late_ms, psi_mem_some_avg10 AS psi, swap_used_bytes AS swap,
                      ts_ms - lag(ts_ms) OVER (ORDER BY ts_ms) AS gap
               FROM sample WHERE ts_ms BETWEEN $a AND $b)
    SELECT count(*), max(gap), max(late_ms),
           (SELECT coalesce(sum(count), 0) FROM recorder_event WHERE kind = 'gap' AND ts_ms BETWEEN $a AND $b),
           (SELECT count(*) FROM recorder_event WHERE kind = 'late' AND ts_ms BETWEEN $a AND $b),
           (SELECT count(*) FROM recorder_event WHERE kind = 'stall' AND ts_ms BETWEEN $a AND $b + 12000),
           $(atop_gap "$a" "$b"), max(psi), max(swap) / 1048576
    FROM s")
  echo "$ph,$(((b - a) / 1000)),$row"
done
echo
echo "health log (late, gap, stall, error, dropped events):"
sql "SELECT datetime(ts_ms / 1000, 'unixepoch') || ' ' || kind || ': ' || message FROM recorder_event
     WHERE kind IN ('late', 'gap', 'stall', 'error', 'dropped', 'protect') ORDER BY id" | sed 's/^"//; s/"$//'
echo
echo "status afterwards:"
"$bin" --db "$work/slow/d.db" status | grep -E '^(recording|samples|gaps)'
