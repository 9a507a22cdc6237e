"""The SMTP server: appendix C, the relay matrix, limits, TLS, reload."""
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import MAILSEALD

QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as ([0-9A-Z]{12})$")


def send_message(c, sender, rcpts, body, expect="250"):
    """A whole transaction on an open session; returns the final reply."""
    assert c.cmd(f"MAIL FROM:<{sender}>") == "250 2.1.0 Ok"
    for r in rcpts:
        assert c.cmd(f"RCPT TO:<{r}>") == "250 2.1.5 Ok"
    assert c.cmd("DATA").startswith("354")
    c.send(body)
    c.send(".\r\n")
    reply = c.reply()
    assert reply.startswith(expect), reply
    return reply


def test_appendix_c_transcript(gateway, smtp):
    """The seed guide's appendix C, line for line."""
    c = smtp(gateway.port, source="127.0.0.3")
    assert c.greeting == "220 gw.example.com ESMTP mailseal"
    assert c.cmd("ehlo test.example.com") == "\n".join([
        "250-gw.example.com", "250-PIPELINING", "250-SIZE 10240000",
        "250-VRFY", "250-STARTTLS", "250-ENHANCEDSTATUSCODES",
        "250 8BITMIME"])
    assert c.cmd("mail from:<test@example.com>") == "250 2.1.0 Ok"
    assert c.cmd("rcpt to:<test@ciphermail.com>") == \
        "454 4.7.1 <test@ciphermail.com>: Relay access denied"
    assert c.cmd("rcpt to:<test@example.com>") == "250 2.1.5 Ok"
    assert c.cmd("data") == "354 End data with <CR><LF>.<CR><LF>"
    c.send("Subject: test\r\n\r\ntest\r\n.\r\n")
    m = QUEUED.match(c.reply())
    assert m
    assert c.cmd("quit") == "221 2.0.0 Bye"
    qid = m.group(1)

    out = gateway.ctl("queue", "list").stdout
    # Without an internal_relay_host the message waits in the queue.
    assert re.search(rf"^{qid}\s+(incoming|active|deferred)\s+\d+\s.*"
                     r"test@example.com$", out, re.M), out
    assert re.search(r"^\s+test@example.com$", out, re.M)
    show = gateway.ctl("queue", "show", qid).stdout
    assert "sender: <test@example.com>" in show
    assert "recipient: <test@example.com> pending" in show
    assert "Subject: test" in show
    assert re.search(r"Received: from test\.example\.com \(unknown "
                     r"\[127\.0\.0\.3\]\)", show)
    assert f"by gw.example.com (mailseal) with ESMTP id {qid}" in show
    log = gateway.log()
    assert f"{qid}: client=unknown[127.0.0.3]" in log
    assert re.search(rf"{qid}: from=<test@example.com>, size=\d+, nrcpt=1 "
                     r"\(queue active\)", log)
    assert ("NOQUEUE: reject: RCPT from unknown[127.0.0.3]: 454 4.7.1 "
            "<test@ciphermail.com>: Relay access denied; "
            "from=<test@example.com> to=<test@ciphermail.com> proto=ESMTP "
            "helo=<test.example.com>") in log


def test_swaks_delivers_into_queue(gateway):
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{gateway.port}",
                        "--from", "a@remote.test", "--to", "b@example.com",
                        "--header", "Subject: via swaks"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout
    qid = re.search(r"queued as ([0-9A-Z]{12})", r.stdout).group(1)
    assert gateway.queue_ids() == [qid]


# (recipient, from 127.0.0.2 in mynetworks, from 127.0.0.3 outside)
RELAY_MATRIX = [
    ("user@example.com", True, True),
    ("USER@EXAMPLE.COM", True, True),
    ("user@example.com.", True, True),
    ("user@sub.example.com", True, False),
    ("user@remote.test", True, False),
    ("user@remote.test.", True, False),
    ("user@example.com.remote.test", True, False),
    ("user%remote.test@example.com", True, False),
    ("remote.test!user@example.com", True, False),
    ('"user@remote.test"@example.com', True, False),
    ("@example.com:user@remote.test", True, False),
    ("user@[127.0.0.1]", True, False),
    ("user@[192.0.2.1]", True, False),
    ("postmaster", True, True),
]


@pytest.mark.parametrize("code", [454, 554])
def test_relay_matrix(make_gateway, smtp, code):
    gw = make_gateway(relay_reject_code=code)
    enh = "5.7.1" if code == 554 else "4.7.1"
    for source, col in (("127.0.0.2", 1), ("127.0.0.3", 2)):
        c = smtp(gw.port, source=source)
        assert c.cmd("EHLO client.test").startswith("250-")
        assert c.cmd("MAIL FROM:<s@remote.test>") == "250 2.1.0 Ok"
        for row in RELAY_MATRIX:
            rcpt = row[0]
            got = c.cmd(f"RCPT TO:<{rcpt}>")
            if row[col]:
                assert got == "250 2.1.5 Ok", (source, rcpt, got)
            else:
                assert got.startswith(f"{code} {enh} <"), (source, rcpt, got)
                assert got.endswith(">: Relay access denied")
        c.cmd("QUIT")


def test_match_subdomains(make_gateway, smtp):
    gw = make_gateway(match_subdomains="yes")
    c = smtp(gw.port, source="127.0.0.3")
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<>")
    assert c.cmd("RCPT TO:<a@sub.example.com>") == "250 2.1.5 Ok"
    assert c.cmd("RCPT TO:<a@deep.sub.example.com>") == "250 2.1.5 Ok"
    assert c.cmd("RCPT TO:<a@badexample.com>").startswith("454 4.7.1")


def test_protocol_errors(gateway, smtp):
    c = smtp(gateway.port)
    assert c.cmd("MAIL FROM:<a@b.test>") == \
        "503 5.5.1 Error: send HELO/EHLO first"
    assert c.cmd("HELO") == "501 Syntax: HELO hostname"
    assert c.cmd("HELO client.test") == "250 gw.example.com"
    assert c.cmd("RCPT TO:<a@example.com>") == \
        "503 5.5.1 Error: need MAIL command"
    assert c.cmd("MAIL FROM:<a@b.test> SIZE=100") == \
        "555 5.5.4 Unsupported option: parameters need EHLO"
    assert c.cmd("EHLO client.test").startswith("250-gw.example.com")
    assert c.cmd("MAIL TO:<a@b.test>") == \
        "501 5.5.4 Syntax: MAIL FROM:<address>"
    assert c.cmd("MAIL FROM:<a@@b.test>") == \
        "501 5.1.7 Bad sender address syntax"
    assert c.cmd("MAIL FROM:<a@b.test> FOO=BAR") == \
        "555 5.5.4 Unsupported option: FOO=BAR"
    assert c.cmd("DATA") == "503 5.5.1 Error: need MAIL command"
    assert c.cmd("MAIL FROM:<a@b.test> BODY=8BITMIME") == "250 2.1.0 Ok"
    assert c.cmd("MAIL FROM:<a@b.test>") == \
        "503 5.5.1 Error: nested MAIL command"
    assert c.cmd("DATA") == "503 5.5.1 Error: need RCPT command"
    assert c.cmd("RCPT TO:<>") == "501 5.1.3 Bad recipient address syntax"
    assert c.cmd("RCPT TO:<a@example.com>>") == \
        "555 5.5.4 Unsupported option: >"
    assert c.cmd("RCPT FROM:<a@example.com>") == \
        "501 5.5.4 Syntax: RCPT TO:<address>"
    assert c.cmd("VRFY root") == ("252 2.0.0 Cannot VRFY user, but will "
                                  "accept message and attempt delivery")
    assert c.cmd("HELP").startswith("214 2.0.0 Commands:")
    assert c.cmd("NOOP") == "250 2.0.0 Ok"
    assert c.cmd("RSET") == "250 2.0.0 Ok"
    assert c.cmd("AUTH PLAIN AGFAYg==") == \
        "502 5.5.2 Error: command not recognized"
    assert c.cmd("BDAT 10 LAST") == "502 5.5.2 Error: command not recognized"
    assert c.cmd("X" * 3000) == "500 5.5.2 Error: line too long"
    assert c.cmd("NOOP") == "250 2.0.0 Ok"
    assert c.cmd("QUIT") == "221 2.0.0 Bye"
    assert c.closed()
    assert gateway.queue_ids() == []


def test_pipelining(gateway, smtp):
    c = smtp(gateway.port)
    c.send("EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@example.com>\r\n"
           "RCPT TO:<y@example.com>\r\nDATA\r\n")
    assert c.reply().startswith("250-gw.example.com")
    assert c.reply() == "250 2.1.0 Ok"
    assert c.reply() == "250 2.1.5 Ok"
    assert c.reply() == "250 2.1.5 Ok"
    assert c.reply().startswith("354")
    c.send("Subject: p\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n")
    qid = QUEUED.match(c.reply()).group(1)
    assert c.reply() == "221 2.0.0 Bye"
    show = gateway.ctl("queue", "show", qid).stdout
    assert "recipient: <x@example.com>" in show
    assert "recipient: <y@example.com>" in show
    raw = open(os.path.join(gateway.params["queue_directory"], "queue", qid),
               "rb").read()
    # Dot-stuffing is undone, and the data keeps its CRLF line ends.
    assert b"\r\n\r\n.leading dot\r\n" in raw
    assert b"..leading" not in raw


def test_large_message_and_pipelined_quit_in_one_write(gateway, smtp):
    """600 KB of DATA, its end and QUIT in one write: the server reads
    what the socket holds at once (beyond libevent's 4 KB), and the data,
    the dot-unstuffing and the command after it come out whole."""
    c = smtp(gateway.port)
    c.cmd("EHLO c.test")
    assert c.cmd("MAIL FROM:<a@b.test>") == "250 2.1.0 Ok"
    assert c.cmd("RCPT TO:<x@example.com>") == "250 2.1.5 Ok"
    assert c.cmd("DATA").startswith("354")
    lines = [("%05d " % i) + "abcdefghij" * (i % 9) for i in range(12000)]
    lines[7000] = "." + lines[7000]
    content = "Subject: big\r\n\r\n" + "\r\n".join(lines) + "\r\n"
    stuffed = content.replace("\r\n.", "\r\n..")
    c.send(stuffed + ".\r\nQUIT\r\n")
    qid = QUEUED.match(c.reply()).group(1)
    assert c.reply() == "221 2.0.0 Bye"
    raw = open(os.path.join(gateway.params["queue_directory"], "queue", qid),
               "rb").read()
    assert content.encode() in raw
    assert b"\r\n..07000" not in raw


def test_replies_that_the_socket_cannot_take_at_once(gateway, smtp):
    """A client that pipelines 500,000 commands and reads nothing for a
    second: the server's replies back up beyond what the socket takes,
    the rest is written as the client reads, in order, and the session
    closes after the last one."""
    c = smtp(gateway.port)
    c.cmd("EHLO c.test")
    n = 500000  # 7 MB of replies: more than the socket buffers hold
    sender = threading.Thread(
        target=c.send, args=("NOOP\r\n" * n + "QUIT\r\n",))
    sender.start()
    time.sleep(1)
    for _ in range(n):
        assert c.reply() == "250 2.0.0 Ok"
    assert c.reply() == "221 2.0.0 Bye"
    sender.join()
    assert c.closed()


def test_shutdown_says_421_to_idle_sessions(gateway, smtp):
    """On SIGTERM a session between commands gets 421 and is closed (the
    reply goes out through the session's own write, the event loop still
    turning for the shutdown's grace period)."""
    c = smtp(gateway.port)
    c.cmd("EHLO c.test")
    gateway.proc.send_signal(signal.SIGTERM)
    assert re.match(r"^421 4\.3\.2 gw\.example\.com Service shutting down$",
                    c.reply())
    assert c.closed()


def test_size_limits(make_gateway, smtp):
    gw = make_gateway(before_filter_message_size_limit=20000)
    c = smtp(gw.port)
    assert "250-SIZE 20000" in c.cmd("EHLO c.test")
    assert c.cmd("MAIL FROM:<a@b.test> SIZE=20001") == \
        "552 5.3.4 Message size exceeds fixed limit"
    # A client that declares nothing and sends too much.
    assert c.cmd("MAIL FROM:<a@b.test>") == "250 2.1.0 Ok"
    assert c.cmd("RCPT TO:<x@example.com>") == "250 2.1.5 Ok"
    assert c.cmd("DATA").startswith("354")
    c.send("Subject: big\r\n\r\n" + ("x" * 70 + "\r\n") * 400 + ".\r\n")
    assert c.reply() == "552 5.3.4 Message size exceeds fixed limit"
    # The session goes on, and the next message fits.
    send_message(c, "a@b.test", ["x@example.com"], "Subject: small\r\n\r\nok\r\n")
    assert len(gw.queue_ids()) == 1
    assert os.listdir(os.path.join(gw.params["queue_directory"],
                                   "incoming")) == []
    assert "reject: END-OF-MESSAGE" in gw.log()


def test_line_length_limit(make_gateway, smtp):
    gw = make_gateway(smtpd_line_length_limit=1000)
    c = smtp(gw.port)
    c.cmd("EHLO c.test")
    c.cmd("MAIL FROM:<a@b.test>")
    c.cmd("RCPT TO:<x@example.com>")
    c.cmd("DATA")
    c.send("Subject: long\r\n\r\n" + "y" * 5000 + "\r\n.\r\n")
    assert c.reply().startswith("552 5.6.0")
    assert gw.queue_ids() == []


def test_recipient_limit(make_gateway, smtp):
    gw = make_gateway(smtpd_recipient_limit=3)
    c = smtp(gw.port)
    c.cmd("EHLO c.test")
    c.cmd("MAIL FROM:<a@b.test>")
    for i in range(3):
        assert c.cmd(f"RCPT TO:<u{i}@example.com>") == "250 2.1.5 Ok"
    assert c.cmd("RCPT TO:<u4@example.com>") == \
        "452 4.5.3 Error: too many recipients"
    assert c.cmd("DATA").startswith("354")


def test_too_many_hops(gateway, smtp):
    c = smtp(gateway.port)
    c.cmd("EHLO c.test")
    c.cmd("MAIL FROM:<a@b.test>")
    c.cmd("RCPT TO:<x@example.com>")
    c.cmd("DATA")
    hops = "".join(f"Received: from h{i}.test by h{i+1}.test; "
                   f"Sat, 28 Nov 2026 00:00:00 +0000\r\n" for i in range(50))
    # 50 here plus ours is 51: one too many.
    c.send(hops + "Subject: loop\r\n\r\nloop\r\n.\r\n")
    assert c.reply() == "554 5.4.0 Error: too many hops"
    c.cmd("MAIL FROM:<a@b.test>")
    c.cmd("RCPT TO:<x@example.com>")
    c.cmd("DATA")
    c.send(hops[: hops.index("Received", 10)] * 49 + "\r\nok\r\n.\r\n")
    assert QUEUED.match(c.reply())


@pytest.mark.parametrize("payload,what", [
    ("Subject: x\r\n\r\nline\n.\r\n", "<LF>"),
    ("Subject: x\r\n\r\nsmuggled\r\n.\nMAIL FROM:<evil@x.test>\r\n", "<LF>"),
    ("Subject: x\r\n\r\nsmuggled\r\n.\rMAIL FROM:<evil@x.test>\r\n", "<CR>"),
    ("Subject: x\r\n\r\nbare\rcr\r\n.\r\n", "<CR>"),
])
def test_bare_newlines_in_data(gateway, smtp, payload, what):
    """SMTP smuggling (CVE-2023-51764): refused, connection closed."""
    c = smtp(gateway.port)
    c.cmd("EHLO c.test")
    c.cmd("MAIL FROM:<a@b.test>")
    c.cmd("RCPT TO:<x@example.com>")
    c.cmd("DATA")
    c.send(payload)
    assert c.reply() == f"521 5.5.2 gw.example.com Error: bare {what} received"
    assert c.closed()
    assert gateway.queue_ids() == []
    assert os.listdir(os.path.join(gateway.params["queue_directory"],
                                   "incoming")) == []


def test_bare_lf_in_command(gateway, smtp):
    c = smtp(gateway.port)
    c.send("EHLO c.test\n")
    assert c.reply() == "521 5.5.2 gw.example.com Error: bare <LF> received"
    assert c.closed()


def starttls_socket(port, pipelined=b""):
    """Plain connection, EHLO, STARTTLS (+ pipelined bytes), handshake."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"220 ")
    s.sendall(b"EHLO c.test\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    s.sendall(b"STARTTLS\r\n" + pipelined)
    assert f.readline() == b"220 2.0.0 Ready to start TLS\r\n"
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(s, server_hostname="gw.example.com")


def tls_cmd(t, line):
    t.sendall(line.encode() + b"\r\n")
    data = b""
    while True:
        data += t.recv(65536)
        last = data.rstrip(b"\r\n").split(b"\r\n")[-1]
        if data.endswith(b"\r\n") and last[3:4] != b"-":
            return data.decode().rstrip("\r\n")


def test_starttls_with_openssl_s_client(gateway):
    r = subprocess.run(["openssl", "s_client", "-starttls", "smtp",
                        "-connect", f"127.0.0.1:{gateway.port}",
                        "-servername", "gw.example.com", "-brief",
                        "-ign_eof"],
                       input="EHLO after.tls\r\nQUIT\r\n", capture_output=True,
                       text=True, timeout=30)
    assert "CONNECTION ESTABLISHED" in r.stderr, r.stderr
    assert "Protocol version: TLSv1.3" in r.stderr
    assert "CN = gw.example.com" in r.stderr
    # After TLS, EHLO no longer offers STARTTLS.
    assert "250-PIPELINING" in r.stdout
    assert "STARTTLS" not in r.stdout
    assert "221 2.0.0 Bye" in r.stdout


def test_starttls_received_header_and_pipelined_discard(gateway):
    # CVE-2011-0411: a command sent with STARTTLS must not run inside TLS.
    t = starttls_socket(gateway.port, b"MAIL FROM:<injected@evil.test>\r\n")
    assert tls_cmd(t, "RCPT TO:<x@example.com>") == \
        "503 5.5.1 Error: send HELO/EHLO first"
    ehlo = tls_cmd(t, "EHLO c.test")
    assert "STARTTLS" not in ehlo
    assert tls_cmd(t, "RCPT TO:<x@example.com>") == \
        "503 5.5.1 Error: need MAIL command"
    assert tls_cmd(t, "STARTTLS") == "554 5.5.1 Error: TLS already active"
    assert tls_cmd(t, "MAIL FROM:<a@b.test>") == "250 2.1.0 Ok"
    assert tls_cmd(t, "RCPT TO:<x@example.com>") == "250 2.1.5 Ok"
    assert tls_cmd(t, "DATA").startswith("354")
    qid = QUEUED.match(tls_cmd(t, "Subject: tls\r\n\r\nsecret\r\n.")).group(1)
    show = gateway.ctl("queue", "show", qid).stdout
    assert "with ESMTPS id " + qid in show
    assert re.search(r"\(using TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)\)",
                     show), show
    assert "injected@evil.test" not in show
    assert re.search(r"TLS connection established from unknown\[127\.0\.0\.1\]"
                     r": TLSv1\.3 with cipher", gateway.log())


def test_no_starttls_when_off(make_gateway, smtp):
    gw = make_gateway(smtpd_tls_security_level="none")
    c = smtp(gw.port)
    assert "STARTTLS" not in c.cmd("EHLO c.test")
    assert c.cmd("STARTTLS") == "502 5.5.1 Error: command not implemented"


def test_timeout(make_gateway, smtp):
    gw = make_gateway(smtpd_timeout="1s")
    c = smtp(gw.port)
    c.cmd("EHLO c.test")
    time.sleep(1.6)
    assert c.reply() == "421 4.4.2 gw.example.com Error: timeout exceeded"
    assert c.closed()


def test_connection_limit_per_client(make_gateway, smtp):
    gw = make_gateway(smtpd_client_connection_limit=2)
    a = smtp(gw.port, source="127.0.0.3")
    b = smtp(gw.port, source="127.0.0.3")
    assert a.greeting.startswith("220") and b.greeting.startswith("220")
    c = smtp(gw.port, source="127.0.0.3")
    assert c.greeting == ("421 4.7.0 gw.example.com Error: too many "
                          "connections from 127.0.0.3")
    # Another client address is not affected.
    d = smtp(gw.port, source="127.0.0.4")
    assert d.greeting.startswith("220")
    a.cmd("QUIT")
    assert a.closed()
    time.sleep(0.2)
    e = smtp(gw.port, source="127.0.0.3")
    assert e.greeting.startswith("220")


def test_reload_keeps_sessions_and_applies_to_new_ones(gateway, smtp):
    old = smtp(gateway.port, source="127.0.0.3")
    assert old.cmd("EHLO c.test").startswith("250-")
    assert old.cmd("MAIL FROM:<a@b.test>") == "250 2.1.0 Ok"
    gateway.ctl("config", "set", "relay_domains=example.org")
    gateway.reload()
    # The session in progress keeps its settings and completes.
    assert old.cmd("RCPT TO:<x@example.com>") == "250 2.1.5 Ok"
    assert old.cmd("DATA").startswith("354")
    old.send("Subject: s\r\n\r\nbody\r\n.\r\n")
    assert QUEUED.match(old.reply())
    new = smtp(gateway.port, source="127.0.0.3")
    new.cmd("EHLO c.test")
    new.cmd("MAIL FROM:<a@b.test>")
    assert new.cmd("RCPT TO:<x@example.org>") == "250 2.1.5 Ok"
    assert new.cmd("RCPT TO:<x@example.com>").startswith("454 4.7.1")


def test_reload_refuses_invalid_file(gateway, smtp):
    with open(gateway.conf, "a") as f:
        f.write("relay_reject_code = 999\n")
    r = gateway.ctl("reload", check=False)
    assert r.returncode == 1
    assert "relay_reject_code" in r.stderr
    assert "running configuration stays in force" in r.stderr
    # Signalled anyway, the daemon refuses it too and keeps serving.
    mark = gateway.log_size()
    os.kill(gateway.proc.pid, 1)
    gateway.wait_log("reload refused: .*relay_reject_code", since=mark)
    c = smtp(gateway.port, source="127.0.0.3")
    c.cmd("EHLO c.test")
    c.cmd("MAIL FROM:<a@b.test>")
    assert c.cmd("RCPT TO:<x@remote.test>").startswith("454 4.7.1")


def test_full_disk(make_gateway, smtp, tmp_path):
    """A full disk: 452 4.3.1, nothing half-written stays behind."""
    gw = make_gateway(start=False)
    qdir = gw.params["queue_directory"]
    os.makedirs(qdir)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs",
                        qdir])
    assert r.returncode == 0, "cannot mount a small tmpfs (tests run as root)"
    try:
        gw.start()
        c = smtp(gw.port)
        c.cmd("EHLO c.test")
        c.cmd("MAIL FROM:<a@b.test>")
        c.cmd("RCPT TO:<x@example.com>")
        c.cmd("DATA")
        c.send("Subject: big\r\n\r\n" + ("z" * 76 + "\r\n") * 9000 + ".\r\n")
        assert c.reply() == "452 4.3.1 Insufficient system storage"
        assert os.listdir(os.path.join(qdir, "incoming")) == []
        assert gw.queue_ids() == []
        # Space is back: the next message goes through.
        send_message(c, "a@b.test", ["x@example.com"], "Subject: ok\r\n\r\nx\r\n")
        assert len(gw.queue_ids()) == 1
    finally:
        gw.stop()
        subprocess.run(["umount", "-l", qdir])


def test_config_check_and_refusal(tmp_path):
    good = tmp_path / "good.conf"
    good.write_text("myhostname = gw.example.com\nrelay_domains = a.test\n")
    r = subprocess.run([MAILSEALD, "-n", "-c", str(good)], capture_output=True,
                       text=True)
    assert (r.returncode, r.stdout) == (0, "configuration OK\n")
    bad = tmp_path / "bad.conf"
    bad.write_text("# comment\nmyhostname = gw.example.com\n"
                   "relay_domain = a.test\nmynetworks = 10.0.0.0/33\n")
    r = subprocess.run([MAILSEALD, "-n", "-c", str(bad)], capture_output=True,
                       text=True)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"{bad}:3: error: unknown parameter 'relay_domain'",
        f"{bad}:4: error: bad value '10.0.0.0/33' for mynetworks: "
        "'10.0.0.0/33' is not a network: bad prefix length"]
    r = subprocess.run([MAILSEALD, "-f", "-c", str(bad)], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 1
    assert "refusing to start with an invalid configuration" in r.stderr


def test_ctl_config_show_and_set(gateway):
    d = gateway.ctl("config", "show", "-d").stdout
    assert "relay_reject_code = 454\n" in d
    assert "mynetworks = 127.0.0.0/8, [::1]/128\n" in d
    n = gateway.ctl("config", "show", "-n").stdout
    assert "relay_domains = example.com\n" in n
    assert "relay_reject_code" not in n
    gateway.ctl("config", "set", "relay_reject_code=554",
                "internal_relay_host=[mail.internal]:2525")
    assert gateway.ctl("config", "show", "relay_reject_code").stdout == \
        "relay_reject_code = 554\n"
    text = open(gateway.conf).read()
    assert text.startswith("# written by the integration tests\n")
    r = gateway.ctl("config", "set", "relay_reject_code=999", check=False)
    assert r.returncode == 1
    assert "must be one of 454, 554" in r.stderr
    assert open(gateway.conf).read() == text
    r = gateway.ctl("config", "set", "after_filter_message_size_limit=1000",
                    check=False)
    assert r.returncode == 1


def test_log_command(gateway, smtp):
    c = smtp(gateway.port)
    c.cmd("EHLO c.test")
    send_message(c, "a@b.test", ["x@example.com"], "Subject: l\r\n\r\nx\r\n")
    out = gateway.ctl("log", "queue active").stdout
    assert re.search(r"mailseal/dispatcher\[\d+\]: [0-9A-Z]{12}: from=<a@b.test>",
                     out)
    assert "connect from" not in out


def test_privileges(make_gateway, smtp):
    """As root: children run as mail_owner. As another user: as that user."""
    import pwd
    gw = make_gateway()
    owner = pwd.getpwnam("mailseal").pw_uid
    ps = subprocess.run(["ps", "-o", "uid=,args=", "-e"], capture_output=True,
                        text=True).stdout
    mine = [l.split(None, 1) for l in ps.splitlines() if gw.conf in l]
    # Only the configuration writer keeps root (common/confwriter.h).
    root = [args for uid, args in mine if int(uid) == 0]
    assert len(root) == 1 and "-x confwriter" in root[0], mine
    assert len(mine) >= 3 and all(int(uid) == owner for uid, args in mine
                                  if "-x confwriter" not in args), mine
    gw.stop()

    nobody = pwd.getpwnam("nobody")
    gw2 = make_gateway(start=False, mail_owner="nobody")
    subprocess.run(["chown", "-R", "nobody", gw2.dir], check=True)
    gw2.start(run_as=(nobody.pw_uid, nobody.pw_gid))
    ps = subprocess.run(["ps", "-o", "uid=,args=", "-e"], capture_output=True,
                        text=True).stdout
    mine = [l.split(None, 1) for l in ps.splitlines() if gw2.conf in l]
    assert len(mine) >= 2 and all(int(uid) == nobody.pw_uid
                                  for uid, _ in mine), mine
    c = smtp(gw2.port)
    c.cmd("EHLO c.test")
    send_message(c, "a@b.test", ["x@example.com"], "Subject: u\r\n\r\nx\r\n")
