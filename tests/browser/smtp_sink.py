#!/usr/bin/python3
"""A small SMTP server standing in for the internal mail server.

Usage: smtp_sink.py PORT LOGFILE
Accepts every recipient except those whose local part starts with
"nobody" (550 5.1.1), and appends one JSON line per event to LOGFILE:
{"rcpt": addr, "code": N} for each RCPT TO, {"mail": {...}} for each
message. Prints "ready" when it listens.
"""
import json
import signal
import sys
import threading

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, path):
        self.path = path

    def log(self, obj):
        with open(self.path, "a") as f:
            f.write(json.dumps(obj) + "\n")

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address.split("@")[0].lower().startswith("nobody"):
            self.log({"rcpt": address, "code": 550})
            return "550 5.1.1 <%s>: Recipient address rejected: no such user" % address
        self.log({"rcpt": address, "code": 250})
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        self.log({"mail": {"from": envelope.mail_from, "to": envelope.rcpt_tos,
                           "data": envelope.content.decode("utf-8", "replace")}})
        return "250 2.0.0 Ok: delivered"


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    ctl = Controller(Handler(path), hostname="127.0.0.1", port=port,
                     server_hostname="internal.example.test")
    ctl.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    print("ready", flush=True)
    stop.wait()
    ctl.stop()


if __name__ == "__main__":
    main()
