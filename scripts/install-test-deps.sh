#!/bin/sh
# Installs what hogtrap's integration tests start as real servers (Debian/Ubuntu).
# Run as root. A test whose prerequisite is missing fails and names the package.
#
#   python3-aiosmtpd     SMTP server for tests/alerts_email.rs (tests/support/smtp_server.py)
#   openssl              makes the test CA and server certificate at test time
#   dbus-daemon          private session buses (Debian 12: package dbus-daemon; dbus pulls it in)
#   dbus-bin             dbus-monitor and dbus-send
#   python3-dbus         the never-answering notification server (tests/support/wedged_notifier.py)
#   notification-daemon  the real notification server (/usr/lib/notification-daemon/)
#   xvfb                 a virtual X display for notification-daemon
#   passwd               useradd, for the throwaway user "hogtrap-test" in the root relay test
set -eu

PACKAGES="python3 python3-aiosmtpd openssl dbus dbus-daemon dbus-bin python3-dbus notification-daemon xvfb passwd"

if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps.sh: run as root (apt-get install needs it)" >&2
    exit 1
fi

missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done

if [ -z "$missing" ]; then
    echo "install-test-deps.sh: all test packages are installed"
    exit 0
fi

echo "install-test-deps.sh: installing$missing"
apt-get update
# shellcheck disable=SC2086 # word splitting of the package list is intended
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
