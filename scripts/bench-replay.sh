#!/usr/bin/env bash
# Times `hogtrap replay` on a big store (docs/performance.md): makes a store of SIZE_MB
# (default 1024) from the real schema — the real daemon creates it and records a few
# samples, then sqlite3 copies the first one into a history of 10 s samples with 60
# process rows each (every 20th at detail level, with cgroups and connections), incidents
# and gaps — then runs examples/replay_steps on it: open, then 100 steps (the `t` key:
# read the next sample, rebuild the table, draw 80×24), each step's time printed.
#
# Usage: scripts/bench-replay.sh [SIZE_MB] [STEPS]   (KEEP=1 keeps the store; PROFILE=debug
# skips the release build, for trying the script, not for numbers)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb="${1:-1024}"
steps="${2:-100}"
profile="${PROFILE:-release}"
if [ "$profile" = release ]; then
    cargo build --release --bin hogtrap --example replay_steps
else
    cargo build --bin hogtrap --example replay_steps
fi
target="${CARGO_TARGET_DIR:-target}/$profile"
dir="$(mktemp -d)"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$dir"' EXIT
db="$dir/hogtrap.db"
cat > "$dir/config.toml" <<TOML
[sampler]
interval = "1s"
[store]
path = "$db"
[rules]
dir = "$dir/rules"
TOML
chmod 600 "$dir/config.toml"
timeout -s TERM 4 "$target/hogtrap" run -c "$dir/config.toml" 2>"$dir/daemon.log" || true

cols=$(sqlite3 "$db" "SELECT group_concat(name, ', ') FROM pragma_table_info('sample')
                      WHERE name NOT IN ('id', 'ts_ms', 'level')")
sqlite3 "$db" <<SQL
PRAGMA synchronous = OFF;
CREATE TABLE bench_template AS SELECT * FROM sample ORDER BY id LIMIT 1;
DELETE FROM process_sample; DELETE FROM process_detail; DELETE FROM connection;
DELETE FROM incident_sample; DELETE FROM sample;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600)
INSERT INTO process (pid, start_time_ms, ppid, uid, user, name, cmdline)
SELECT 100000 + i, 1, 100000 + i % 10, 1000 + i % 5, 'user' || (i % 5), 'proc-' || i,
       '/usr/bin/proc-' || i || ' --serve --port ' || (8000 + i) FROM n;
SQL
first_proc=$(sqlite3 "$db" "SELECT min(id) FROM process WHERE pid > 100000")
# Up to ~46 days of history, ending before now.
start=$(( $(date +%s) * 1000 - 400000 * 10000 ))
chunk=20000
done_samples=0
while :; do
    bytes=$(sqlite3 "$db" "SELECT page_count * page_size FROM pragma_page_count, pragma_page_size")
    [ "$bytes" -ge $(( size_mb * 1048576 )) ] && break
    from=$(( done_samples + 1 )); to=$(( done_samples + chunk ))
    sqlite3 "$db" <<SQL
PRAGMA synchronous = OFF;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT $from UNION ALL SELECT i + 1 FROM n WHERE i < $to)
INSERT INTO sample (ts_ms, level, $cols)
SELECT $start + i * 10000, CASE WHEN i % 20 = 0 THEN 1 ELSE 0 END, $cols
FROM n, bench_template;
CREATE TEMP TABLE new AS SELECT id, level FROM sample
 WHERE ts_ms BETWEEN $start + $from * 10000 AND $start + $to * 10000;
WITH RECURSIVE k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j < 59)
INSERT INTO process_sample
SELECT s.id, $first_proc + (s.id * 7 + j) % 600, 'S', abs(random() % 20000),
       1000 + abs(random() % 900000), abs(random() % 100000), abs(random() % 100000),
       1 + j % 8, CASE WHEN j < 10 THEN abs(random() % 50000) END,
       CASE WHEN j < 10 THEN abs(random() % 50000) END
FROM new s, k;
INSERT INTO process_detail
SELECT ps.sample_id, ps.process_id, 20, 'do_epoll_wait', '/system.slice/proc-' || (ps.process_id % 10) || '.service'
FROM process_sample ps JOIN new s ON s.id = ps.sample_id WHERE s.level = 1;
INSERT INTO connection
SELECT ps.sample_id, p.pid, 'tcp', '10.0.0.1', 8000 + p.pid % 600, '10.0.1.' || (p.pid % 200), 443,
       'ESTAB', 1000, 2000
FROM process_sample ps JOIN new s ON s.id = ps.sample_id JOIN process p ON p.id = ps.process_id
WHERE s.level = 1;
INSERT INTO incident (rule, severity, title, opened_ms, updated_ms, closed_ms)
SELECT 'bench', 'warning', 'bench incident', ts_ms, ts_ms, ts_ms + 600000 FROM sample
 WHERE id IN (SELECT id FROM new) AND (ts_ms - $start) % 10000000 = 0;
INSERT INTO recorder_event (ts_ms, kind, from_ms, to_ms, count, message)
SELECT ts_ms, 'gap', ts_ms - 5000, ts_ms, 1, 'bench gap' FROM sample
 WHERE id IN (SELECT id FROM new) AND (ts_ms - $start) % 7000000 = 0;
COMMIT;
SQL
    done_samples=$to
done
sqlite3 "$db" "DROP TABLE bench_template; PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
echo "store: $db"
sqlite3 "$db" "SELECT 'size ' || (page_count * page_size / 1048576) || ' MiB' FROM pragma_page_count, pragma_page_size;
               SELECT 'samples ' || count(*) FROM sample;
               SELECT 'process rows ' || count(*) FROM process_sample;
               SELECT 'incidents ' || count(*) FROM incident;"
echo "machine load: $(uptime)"
"$target/examples/replay_steps" "$db" "$steps"
