#!/usr/bin/env bash
# Measures what the store costs on disk (docs/retention.md): runs the real daemon at a 1 s
# interval for SECONDS, records detail samples the same way with examples/record_detail, then
# reads the page usage of every table and index with SQLite's dbstat.
#
# Usage: scripts/measure-store.sh [SECONDS]   (default 300; PROFILE=debug skips the release
# build: sizes do not depend on it)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
profile="${PROFILE:-release}"
if [ "$profile" = release ]; then
    cargo build --release --bin hogtrap --example record_detail
else
    cargo build --bin hogtrap --example record_detail
fi
target="${CARGO_TARGET_DIR:-target}/$profile"
dir="$(mktemp -d)"
cat > "$dir/config.toml" <<TOML
[sampler]
interval = "1s"
[store]
path = "$dir/baseline.db"
[rules]
dir = "$dir/rules"
TOML
chmod 600 "$dir/config.toml"
"$target/hogtrap" run -c "$dir/config.toml" 2>"$dir/daemon.log" &
daemon=$!
"$target/examples/record_detail" "$dir/detail.db" 1000 "$seconds" &
detail=$!
sleep "$seconds"
kill -TERM "$daemon"
wait "$daemon" "$detail" || true

report() {
    local db="$1"
    echo "== $db"
    "$target/hogtrap" --db "$db" sql "SELECT count(*) AS samples, count(DISTINCT level) AS levels,
        (SELECT count(*) FROM process_sample) AS process_rows,
        (SELECT count(*) FROM process_detail) AS detail_rows,
        (SELECT count(*) FROM connection) AS connections,
        (SELECT count(*) FROM process) AS identities,
        (max(ts_ms) - min(ts_ms)) / 1000 AS seconds FROM sample"
    "$target/hogtrap" --db "$db" sql "SELECT name, count(*) AS pages, sum(pgsize) AS bytes,
        sum(pgsize - unused) AS used_bytes FROM dbstat GROUP BY name ORDER BY bytes DESC"
}
report "$dir/baseline.db"
report "$dir/detail.db"
echo "(files in $dir)"
