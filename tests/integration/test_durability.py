"""A message answered with 250 is never lost, not even by kill -9."""
import os
import re
import socket
import threading
import time

from conftest import SMTPClient

CLIENTS = 20
PER_CLIENT = 25


def client_thread(port, n, tokens, acked, inflight, stop):
    try:
        c = SMTPClient(port, timeout=20)
        c.reply()
        c.cmd("EHLO load.test")
        for i in range(PER_CLIENT):
            if stop.is_set():
                return
            tok = f"tok-{n}-{i}"
            tokens.append(tok)
            if not c.cmd("MAIL FROM:<load@remote.test>").startswith("250"):
                return
            c.cmd("RCPT TO:<rcpt@example.com>")
            c.cmd("DATA")
            body = (f"Message-ID: <{tok}@load.test>\r\nSubject: {tok}\r\n\r\n"
                    + "line of text\r\n" * 200)
            c.send(body)
            inflight[tok] = True
            c.send(".\r\n")
            reply = c.reply()
            m = re.match(r"250 2\.0\.0 Ok: queued as ([0-9A-Z]{12})$", reply)
            if m:
                acked[tok] = m.group(1)
                del inflight[tok]
            # Paced, so that the kill falls in the middle of the load.
            time.sleep(0.04)
    except (OSError, ConnectionError):
        return


def test_kill9_loses_nothing_acknowledged(gateway):
    tokens, acked, inflight = [], {}, {}
    stop = threading.Event()
    threads = [threading.Thread(target=client_thread,
                                args=(gateway.port, n, tokens, acked,
                                      inflight, stop))
               for n in range(CLIENTS)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    while len(acked) < CLIENTS * PER_CLIENT // 2 and time.time() < deadline:
        time.sleep(0.005)
    assert len(acked) >= CLIENTS * PER_CLIENT // 2, "load did not get going"
    gateway.kill9()
    stop.set()
    for t in threads:
        t.join(30)
    # Some were cut off: the test means nothing if all had finished.
    assert len(acked) < CLIENTS * PER_CLIENT

    gateway.start()
    qdir = os.path.join(gateway.params["queue_directory"], "queue")
    found = {}
    for qid in os.listdir(qdir):
        data = open(os.path.join(qdir, qid), "rb").read()
        m = re.search(rb"Message-ID: <(tok-\d+-\d+)@load\.test>", data)
        assert m, f"{qid}: no token"
        found[m.group(1).decode()] = qid
    # Every acknowledged message is there, under the ID it was given.
    for tok, qid in acked.items():
        assert found.get(tok) == qid, f"lost: {tok} ({qid})"
    # Nothing else is, but those whose final dot was sent when the
    # daemon died (RFC 1047: the client cannot know; it will resend).
    extra = set(found) - set(acked)
    assert extra <= set(inflight), f"unexpected: {extra - set(inflight)}"
    assert len(extra) <= CLIENTS
    # Every file is whole; half-written ones were removed at restart.
    listing = gateway.ctl("queue", "list").stdout
    assert "corrupt" not in listing
    assert f"-- {len(found)} message" in listing
    assert os.listdir(os.path.join(gateway.params["queue_directory"],
                                   "incoming")) == []
    # And the restarted daemon takes mail again.
    c = SMTPClient(gateway.port)
    assert c.reply().startswith("220")
    c.close()


def test_damaged_file_goes_to_corrupt(gateway, smtp):
    c = smtp(gateway.port)
    c.cmd("EHLO c.test")
    ids = []
    for i in range(2):
        c.cmd("MAIL FROM:<a@b.test>")
        c.cmd("RCPT TO:<x@example.com>")
        c.cmd("DATA")
        c.send(f"Subject: {i}\r\n\r\nbody\r\n.\r\n")
        ids.append(c.reply().split()[-1])
    c.cmd("QUIT")
    gateway.stop()
    path = os.path.join(gateway.params["queue_directory"], "queue", ids[0])
    data = bytearray(open(path, "rb").read())
    # A flipped byte in the envelope (delivery attempts have appended tail
    # records after it: the header says where it starts).
    env_off = int.from_bytes(data[32:40], "big")
    data[env_off + 10] ^= 0xFF
    open(path, "wb").write(bytes(data))
    gateway.start()
    gateway.wait_log(rf"{ids[0]}: corrupt queue file \(envelope checksum "
                     r"mismatch\): moved to corrupt")
    assert gateway.queue_ids() == [ids[1]]
    assert gateway.queue_ids("corrupt") == [ids[0]]
    listing = gateway.ctl("queue", "list").stdout
    assert re.search(rf"^{ids[0]}\s+corrupt\s+unreadable: envelope checksum "
                     "mismatch", listing, re.M), listing
