#!/usr/bin/env bash
# The one command that installs what the tests need and runs them all.
# Integration tests start real daemons, servers and CPU-burning children: they run one at a
# time so they cannot steal each other's CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo build --all-targets
# The Debian package, from the dev build just made (tests/package_deb.rs checks it).
cargo deb --profile dev --no-build --fast --quiet
cargo test --no-fail-fast -- --test-threads=1
