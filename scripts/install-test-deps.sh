#!/usr/bin/env bash
# Installs what hogtrap's tests need on a Debian machine (run as root, or with sudo available).
# Idempotent: packages already present are not reinstalled.
set -euo pipefail

packages=(
  python3              # /usr/bin/python3: workload children in tests
  python3-aiosmtpd     # a real SMTP server on loopback
  openssl              # a test CA for STARTTLS / implicit TLS
  dbus dbus-daemon dbus-bin  # private session buses, dbus-monitor and dbus-send
  python3-dbus         # the never-answering notification server (tests/support/wedged_notifier.py)
  passwd               # useradd, for the throwaway user "hogtrap-test" in the root relay test
  notification-daemon  # a real desktop notification server
  xvfb                 # a display for notification-daemon
  atop                 # the side-by-side baseline in scripts/bench-daemon.sh
  iproute2             # network namespaces and veth pairs for the network tests
  procps               # ps/pkill used by the benchmark script
  sqlite3              # the seed's own client, for the savetop check
  chromium             # headless rendering of the HTML report
  tmux                 # drives `hogtrap replay` in a real terminal (tests/replay.rs)
  prometheus           # a real Prometheus (and promtool) scraping /metrics
  prometheus-alertmanager  # a real Alertmanager receiving incidents
  util-linux           # unshare: the export tests' PID namespaces
  systemd              # systemd-analyze verify on the packaged unit
)

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "cargo is missing: install Rust (rustup) first" >&2; exit 1; }
# cargo-deb builds the Debian package (tests/package_deb.rs checks it).
if ! cargo deb --version >/dev/null 2>&1; then
  echo "installing cargo-deb"
  cargo install cargo-deb --locked --quiet
fi
echo "test dependencies present"
