#!/usr/bin/python3
"""A real SMTP server for hogtrap's tests: aiosmtpd (Debian's python3-aiosmtpd).

Each received message is saved as OUTDIR/NNNN.eml (the raw bytes as received), and every
MAIL FROM, RCPT TO and AUTH attempt is appended to OUTDIR/commands.log with whether the
session was encrypted at that point, so tests can assert that nothing went in clear.
Prints "READY <port>" on stdout once it accepts connections, then runs until killed.
"""

import argparse
import itertools
import os
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--outdir", required=True)
    p.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    args = p.parse_args()

    counter = itertools.count(1)
    log_lock = threading.Lock()

    def log(line):
        with log_lock:
            with open(os.path.join(args.outdir, "commands.log"), "a") as f:
                f.write(line + "\n")

    def encrypted(server, session):
        # session.ssl is only set by STARTTLS; implicit TLS shows on the transport.
        tls = session.ssl is not None or (
            server.transport is not None
            and server.transport.get_extra_info("ssl_object") is not None
        )
        return "tls" if tls else "clear"

    class SaveHandler:
        async def handle_MAIL(self, server, session, envelope, address, mail_options):
            log(f"MAIL {address} {encrypted(server, session)}")
            envelope.mail_from = address
            envelope.mail_options.extend(mail_options)
            return "250 OK"

        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            log(f"RCPT {address} {encrypted(server, session)}")
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            n = next(counter)
            path = os.path.join(args.outdir, f"{n:04}.eml")
            tmp = path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(envelope.original_content or envelope.content)
            os.rename(tmp, path)  # tests never see a half-written file
            log(f"DATA {n:04} {encrypted(server, session)}")
            return "250 Message accepted"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == args.user
            and auth_data.password.decode() == args.password
        )
        log(f"AUTH {mechanism} {'ok' if ok else 'refused'} {encrypted(server, session)}")
        # handled=False: aiosmtpd then answers 235 or 535 itself.
        return AuthResult(success=ok, handled=False)

    kwargs = dict(hostname="127.0.0.1", port=args.port)
    if args.tls in ("starttls", "implicit"):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
        if args.tls == "starttls":
            kwargs.update(tls_context=ctx, require_starttls=True)
        else:
            kwargs.update(ssl_context=ctx)
    if args.user:
        kwargs.update(
            authenticator=authenticator,
            auth_required=True,
            # AUTH only after STARTTLS, unless the test runs a plaintext server on purpose.
            auth_require_tls=(args.tls != "none"),
        )

    controller = Controller(SaveHandler(), **kwargs)
    controller.start()
    print(f"READY {args.port}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    sys.exit(main())
