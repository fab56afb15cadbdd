#!/usr/bin/python3
"""A notification server that never answers: it owns org.freedesktop.Notifications on the
bus given as argv[1] and then never reads its connection, so a Notify call gets no reply.
Prints "READY" once the name is owned. Needs Debian's python3-dbus."""

import sys
import time

import dbus

bus = dbus.bus.BusConnection(sys.argv[1])
reply = bus.request_name("org.freedesktop.Notifications", dbus.bus.NAME_FLAG_DO_NOT_QUEUE)
if reply != dbus.bus.REQUEST_NAME_REPLY_PRIMARY_OWNER:
    sys.exit(f"could not own org.freedesktop.Notifications (reply {reply})")
print("READY", flush=True)
while True:
    time.sleep(3600)
