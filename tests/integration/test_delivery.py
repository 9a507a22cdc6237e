"""Delivery: the seed guide's four setups, MX, retries, bounces, loops."""
import os
import re
import smtplib
import tempfile

import pytest

from conftest import TEST_BASE
from peers import (Dnsmasq, Greeter, Peer, Scanner, SmtpSink, free_port_on,
                   parse, send, wait_for)


class Net:
    """The peers of one test, stopped at its end."""

    def __init__(self, name):
        os.makedirs(TEST_BASE, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix=f"net-{name[:30]}-", dir=TEST_BASE)
        os.chmod(self.dir, 0o755)
        self.things = []

    def add(self, thing):
        self.things.append(thing)
        return thing

    def sink(self, host, **kw):
        return self.add(SmtpSink(self.dir, host, **kw))

    def peer(self, host, **kw):
        return self.add(Peer(host, **kw))

    def dns(self, **kw):
        return self.add(Dnsmasq(self.dir, "127.0.0.53", **kw))

    def stop(self):
        for t in reversed(self.things):
            try:
                t.stop()
            except Exception:
                pass


@pytest.fixture
def net(request):
    n = Net(re.sub(r"[^A-Za-z0-9_]", "_", request.node.name))
    yield n
    n.stop()


def sent_line(gw, qid, rcpt, relay_rx):
    return gw.wait_log(rf"{qid}: to=<{re.escape(rcpt)}>, relay={relay_rx}, "
                       r"delay=[\d.]+, delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, "
                       r"dsn=2\.\d+\.\d+, status=sent \(250 ")


SETUPS = ["direct", "via_relay", "virus_scanner", "virus_scanner_via_relay"]


@pytest.mark.parametrize("setup", SETUPS)
def test_seed_setup(make_gateway, net, setup):
    """Outgoing mail reaches the external sink (by MX or the relay host);
    incoming mail reaches the internal server."""
    mxport = free_port_on("127.0.0.21")
    internal = net.sink("127.0.0.20")
    external = net.sink("127.0.0.21", port=mxport)
    relay = net.sink("127.0.0.22")
    dns = net.dns(mx=[("remote.test", "mx.remote.test", 10)],
                  hosts=[("mx.remote.test", "127.0.0.21")])
    scanner = None
    params = dict(dns_servers=dns.server, smtp_tcp_port=mxport,
                  mynetworks="127.0.0.1/32, 127.0.0.2/32, 127.0.0.4/32",
                  internal_relay_host=f"[127.0.0.20]:{internal.port}")
    if "via_relay" in setup:
        params["external_relay_host"] = f"[127.0.0.22]:{relay.port}"
    gw = make_gateway(start=False, **params)
    if "scanner" in setup:
        # Fig. 3 and 4: the scanner sits between the gateway and the
        # internal server, and passes outgoing mail to the gateway.
        scanner = net.add(Scanner("127.0.0.4",
                                  inward=("127.0.0.20", internal.port),
                                  outward=("127.0.0.1", gw.port)))
        gw.params["internal_relay_host"] = f"[127.0.0.4]:{scanner.port}"
        gw.write_config()
    gw.start()
    if "scanner" in setup:
        # The internal server sends to the scanner, which relays to us.
        with smtplib.SMTP("127.0.0.4", scanner.port, timeout=20) as s:
            s.sendmail("alice@example.com", ["bob@remote.test"],
                       b"Subject: outgoing\r\n\r\nhello out\r\n")
        out_qid = gw.wait_log(r"(\w{12}): client=unknown\[127\.0\.0\.4\]"
                              ).group(1)
    else:
        out_qid = send(gw.port, "alice@example.com", ["bob@remote.test"],
                       "hello out\r\n", source="127.0.0.2",
                       subject="outgoing")
    in_qid = send(gw.port, "carol@remote.test", ["dave@example.com"],
                  "hello in\r\n", source="127.0.0.3", subject="incoming")

    target = relay if "via_relay" in setup else external
    env, data = target.wait(1)[0]
    assert env["X-Rcpt-Args"] == ["<bob@remote.test>"]
    assert env["X-Mail-Args"][0].startswith("<alice@example.com>")
    msg = parse(data)
    assert msg["Subject"] == "outgoing"
    assert f"by gw.example.com (mailseal) with ESMTP id {out_qid}" in \
        data.decode()
    if "via_relay" in setup:
        sent_line(gw, out_qid, "bob@remote.test",
                  rf"127\.0\.0\.22\[127\.0\.0\.22\]:{relay.port}")
        assert external.files() == []
    else:
        sent_line(gw, out_qid, "bob@remote.test",
                  rf"mx\.remote\.test\[127\.0\.0\.21\]:{mxport}")
        assert relay.files() == []

    env, data = internal.wait(1)[0]
    assert env["X-Rcpt-Args"] == ["<dave@example.com>"]
    msg = parse(data)
    assert msg["Subject"] == "incoming"
    if scanner is not None:
        assert msg["X-Virus-Scanned"] == "clean by scanner.test"
        sent_line(gw, in_qid, "dave@example.com",
                  rf"127\.0\.0\.4\[127\.0\.0\.4\]:{scanner.port}")
    else:
        sent_line(gw, in_qid, "dave@example.com",
                  rf"127\.0\.0\.20\[127\.0\.0\.20\]:{internal.port}")
    gw.wait_log(rf"{in_qid}: removed")
    gw.wait_log(rf"{out_qid}: removed")
    wait_for(lambda: gw.queue_ids() == [], what="empty queue")


def test_mx_order_next_mx_and_ipv6(make_gateway, net):
    """Preference order; the next MX after a refused connection and after
    a 4xx greeting; an MX host reached over IPv6; the implicit MX."""
    port = free_port_on("127.0.0.21")
    greeter = net.add(Greeter("127.0.0.31", port=port))
    sink6 = net.sink("::1", port=port)
    implicit = net.sink("127.0.0.23", port=port)
    dns = net.dns(
        mx=[("remote.test", "mx0.remote.test", 5),
            ("remote.test", "mx1.remote.test", 10),
            ("remote.test", "mx2.remote.test", 20),
            ("remote.test", "mx3.remote.test", 30)],
        hosts=[("mx0.remote.test", "127.0.0.30"),  # nothing listens
               ("mx1.remote.test", "127.0.0.31"),  # greets 421
               ("mx2.remote.test", "::1"),
               ("mx3.remote.test", "127.0.0.33"),
               ("implicit.test", "127.0.0.23")])
    gw = make_gateway(dns_servers=dns.server, smtp_tcp_port=port,
                      smtp_connect_timeout="5s")
    qid = send(gw.port, "alice@example.com", ["bob@remote.test"], "via v6\r\n")
    sent_line(gw, qid, "bob@remote.test",
              rf"mx2\.remote\.test\[::1\]:{port}")
    log = gw.log()
    assert f"connect to mx0.remote.test[127.0.0.30]:{port}: Connection " \
           "refused" in log
    assert "host mx1.remote.test[127.0.0.31] refused to talk to me: 421 " \
           "4.3.2 mx1.remote.test busy" in log
    assert log.index("mx0.remote.test[127.0.0.30]") < \
        log.index("mx1.remote.test[127.0.0.31]")
    assert greeter.count == 1
    env, _ = sink6.wait(1)[0]
    assert env["X-Client-Addr"] == ["ipv6:::1"]

    qid2 = send(gw.port, "alice@example.com", ["eve@implicit.test"], "a\r\n")
    sent_line(gw, qid2, "eve@implicit.test",
              rf"implicit\.test\[127\.0\.0\.23\]:{port}")
    implicit.wait(1)


def dsn_of(sink, n=1):
    """The DSNs that arrived at a sink, parsed."""
    msgs = sink.wait(n)
    out = []
    for env, data in msgs:
        msg = parse(data)
        if msg.get_content_type() == "multipart/report":
            out.append((env, msg))
    return out


def check_dsn(env, msg, rcpt, status, action="failed"):
    """A DSN that Python's email package reads as RFC 3464."""
    assert env["X-Mail-Args"][0].startswith("<>")
    assert msg["From"].addresses[0].addr_spec == \
        "MAILER-DAEMON@gw.example.com"
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers"]
    # Python splits message/delivery-status into its field blocks.
    blocks = parts[1].get_payload()
    assert blocks[0]["Reporting-MTA"] == "dns; gw.example.com"
    assert blocks[0]["Arrival-Date"]
    per = [b for b in blocks[1:] if b["Final-Recipient"] ==
           f"rfc822; {rcpt}"]
    assert len(per) == 1, [str(b) for b in blocks]
    assert per[0]["Action"] == action
    assert per[0]["Status"] == status
    assert rcpt in parts[0].get_content()
    return per[0], parts


def test_bounce_after_5xx_mixed_results(make_gateway, net):
    """One recipient is accepted, one rejected with 550: sent and bounced,
    each logged; the DSN is a valid RFC 3464 report."""
    internal = net.sink("127.0.0.20")
    mx = net.peer("127.0.0.21", hostname="mx.remote.test", reject={
        "nobody@remote.test":
            "550 5.1.1 <nobody@remote.test>: Recipient address rejected: "
            "User unknown"})
    gw = make_gateway(internal_relay_host=f"[127.0.0.20]:{internal.port}",
                      external_relay_host=f"[127.0.0.21]:{mx.port}")
    qid = send(gw.port, "alice@example.com",
               ["bob@remote.test", "nobody@remote.test"], "mixed\r\n",
               subject="mixed results")
    sent_line(gw, qid, "bob@remote.test", r"127\.0\.0\.21\[127\.0\.0\.21\]:\d+")
    gw.wait_log(rf"{qid}: to=<nobody@remote.test>, relay=127\.0\.0\.21"
                rf"\[127\.0\.0\.21\]:{mx.port}, delay=[\d.]+, "
                r"delays=[\d./]+, dsn=5\.1\.1, status=bounced \(host "
                r"127\.0\.0\.21\[127\.0\.0\.21\] said: 550 5\.1\.1 "
                r"<nobody@remote\.test>: Recipient address rejected: User "
                r"unknown \(in reply to RCPT TO command\)\)")
    bq = gw.wait_log(rf"{qid}: sender non-delivery notification: (\w+)"
                     ).group(1)
    gw.wait_log(rf"{qid}: removed")
    mx.wait(1)
    assert mx.messages[0]["rcpts"] == ["bob@remote.test"]
    (env, msg), = dsn_of(internal)
    assert env["X-Rcpt-Args"] == ["<alice@example.com>"]
    per, parts = check_dsn(env, msg, "nobody@remote.test", "5.1.1")
    assert per["Remote-MTA"] == "dns; 127.0.0.21"
    assert per["Diagnostic-Code"].startswith(
        "smtp; 550 5.1.1 <nobody@remote.test>: Recipient address")
    assert "Subject: mixed results" in parts[2].get_content()
    assert "bob@remote.test" not in str(parts[1])
    sent_line(gw, bq, "alice@example.com", r"127\.0\.0\.20\[127\.0\.0\.20\]:\d+")


def test_retry_after_4xx_then_success(make_gateway, net):
    """A 450 defers the recipient; it is retried after the back-off and
    then delivered."""
    mx = net.peer("127.0.0.21", tempfail={"bob@remote.test": 1})
    gw = make_gateway(external_relay_host=f"[127.0.0.21]:{mx.port}",
                      minimal_backoff_time="1s", maximal_backoff_time="2s")
    qid = send(gw.port, "alice@example.com", ["bob@remote.test"], "retry\r\n")
    gw.wait_log(rf"{qid}: to=<bob@remote.test>, relay=127\.0\.0\.21"
                r"\[127\.0\.0\.21\]:\d+, delay=[\d.]+, delays=[\d./]+, "
                r"dsn=4\.2\.0, status=deferred \(host 127\.0\.0\.21"
                r"\[127\.0\.0\.21\] said: 450 4\.2\.0 <bob@remote\.test>: "
                r"try again later \(in reply to RCPT TO command\)\)")
    out = gw.ctl("queue", "list").stdout
    assert re.search(rf"^{qid}\s+(deferred|active)", out, re.M), out
    sent_line(gw, qid, "bob@remote.test", r"127\.0\.0\.21\[127\.0\.0\.21\]:\d+")
    gw.wait_log(rf"{qid}: removed")
    assert mx.handler.rcpt_seen["bob@remote.test"] == 2
    assert len(mx.messages) == 1


def test_expiry_bounces_with_the_last_reason(make_gateway, net):
    """maximal_queue_lifetime = 0: a temporary failure is final."""
    internal = net.sink("127.0.0.20")
    dead = free_port_on("127.0.0.21")
    gw = make_gateway(internal_relay_host=f"[127.0.0.20]:{internal.port}",
                      external_relay_host=f"[127.0.0.21]:{dead}",
                      maximal_queue_lifetime="0")
    qid = send(gw.port, "alice@example.com", ["bob@remote.test"], "x\r\n")
    gw.wait_log(rf"{qid}: to=<bob@remote.test>, relay=none, .* dsn=4\.4\.1, "
                rf"status=bounced \(connect to 127\.0\.0\.21\[127\.0\.0\.21\]"
                rf":{dead}: Connection refused\)")
    gw.wait_log(rf"{qid}: from=<alice@example.com>, status=expired, "
                "returned to sender")
    (env, msg), = dsn_of(internal)
    check_dsn(env, msg, "bob@remote.test", "4.4.1")


def test_null_mx_bounces(make_gateway, net):
    internal = net.sink("127.0.0.20")
    dns = net.dns(raw=[("nullmx.test", 15, "000000")])
    gw = make_gateway(internal_relay_host=f"[127.0.0.20]:{internal.port}",
                      dns_servers=dns.server)
    qid = send(gw.port, "alice@example.com", ["bob@nullmx.test"], "x\r\n")
    gw.wait_log(rf"{qid}: to=<bob@nullmx.test>, relay=none, .*"
                r"dsn=5\.1\.10, status=bounced \(Domain nullmx\.test does "
                r"not accept mail \(nullMX\)\)")
    (env, msg), = dsn_of(internal)
    per, _ = check_dsn(env, msg, "bob@nullmx.test", "5.1.10")
    assert per["Diagnostic-Code"] == \
        "X-Mailseal; Domain nullmx.test does not accept mail (nullMX)"


def test_nxdomain_bounces_and_servfail_defers(make_gateway, net):
    internal = net.sink("127.0.0.20")
    dns = net.dns()
    gw = make_gateway(internal_relay_host=f"[127.0.0.20]:{internal.port}",
                      dns_servers=dns.server)
    qid = send(gw.port, "alice@example.com", ["bob@nx.test"], "x\r\n")
    gw.wait_log(rf"{qid}: to=<bob@nx.test>, relay=none, .*dsn=5\.4\.4, "
                r"status=bounced \(Host or domain name not found. Name "
                r"service error for name=nx\.test type=MX: Host not found\)")
    dsn_of(internal)


def test_loop_detection_bounces(make_gateway, net):
    """The next hop greets with our own myhostname (here: ourselves)."""
    internal = net.sink("127.0.0.20")
    gw = make_gateway(start=False,
                      internal_relay_host=f"[127.0.0.20]:{internal.port}")
    port = gw.port
    gw.params["external_relay_host"] = f"[127.0.0.1]:{port}"
    gw.write_config()
    gw.start()
    qid = send(gw.port, "alice@example.com", ["bob@remote.test"], "loop\r\n")
    gw.wait_log(rf"{qid}: to=<bob@remote.test>, relay=none, .*dsn=5\.4\.6, "
                rf"status=bounced \(mail for \[127\.0\.0\.1\]:{port} loops "
                r"back to myself\)")
    (env, msg), = dsn_of(internal)
    check_dsn(env, msg, "bob@remote.test", "5.4.6")


def test_bounce_of_a_bounce_is_dropped(make_gateway, net):
    mx = net.peer("127.0.0.21", reject={
        "bob@remote.test": "550 5.1.1 <bob@remote.test>: no such user"})
    gw = make_gateway(external_relay_host=f"[127.0.0.21]:{mx.port}")
    qid = send(gw.port, "", ["bob@remote.test"], "a bounce\r\n")
    gw.wait_log(rf"{qid}: to=<bob@remote.test>, .*status=bounced")
    gw.wait_log(rf"{qid}: undeliverable notification discarded: the "
                r"message has a null sender")
    gw.wait_log(rf"{qid}: removed")
    assert "sender non-delivery notification" not in gw.log()
    assert gw.queue_ids() == []


def test_8bitmime_downgrade(make_gateway, net):
    """A server without 8BITMIME gets quoted-printable (RFC 6152)."""
    sink = net.sink("127.0.0.21", options=["-8"])
    gw = make_gateway(external_relay_host=f"[127.0.0.21]:{sink.port}")
    text = "Grüße aus Köln — naïve café.\r\n.leading dot\r\n"
    body = ("From: <alice@example.com>\r\nTo: <bob@remote.test>\r\n"
            "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
            "preamble\r\n--b1\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n" + text +
            "--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n"
            "--b1--\r\n")
    qid = send(gw.port, "alice@example.com", ["bob@remote.test"],
               body.encode(), options=["BODY=8BITMIME"])
    sent_line(gw, qid, "bob@remote.test", r"127\.0\.0\.21\[127\.0\.0\.21\]:\d+")
    env, data = sink.wait(1)[0]
    assert env["X-Mail-Args"] == ["<alice@example.com>"]  # no BODY=
    assert all(b < 0x80 for b in data), "8-bit bytes went out"
    msg = parse(data)
    first, second = msg.get_payload()
    assert first["Content-Transfer-Encoding"] == "quoted-printable"
    # The CRLF before a boundary belongs to the boundary (RFC 2046 5.1.1).
    assert first.get_content() == text.replace("\r\n", "\n")[:-1]
    assert second["Content-Transfer-Encoding"] == "base64"
    assert second.get_content() == "hello"
    # smtp-sink stores LF line ends.
    assert [ln for ln in data.split(b"\n") if len(ln) > 78] == []


def test_pipelining_reuse_and_concurrency_limit(make_gateway, net):
    """Five messages to one destination, concurrency 1: one connection,
    used for message after message."""
    mx = net.peer("127.0.0.21")
    gw = make_gateway(external_relay_host=f"[127.0.0.21]:{mx.port}",
                      smtp_destination_concurrency_limit=1,
                      smtp_connection_cache_time_limit="5s")
    qids = [send(gw.port, "alice@example.com",
                 [f"r{i}@remote.test", f"s{i}@remote.test"], f"m{i}\r\n")
            for i in range(5)]
    for q in qids:
        gw.wait_log(rf"{q}: removed")
    assert len(mx.messages) == 5
    assert mx.handler.ehlos == 1
    assert all(len(m["rcpts"]) == 2 for m in mx.messages)


def test_delay_warning(make_gateway, net):
    """delay_warning_time: the sender hears once that mail is late."""
    internal = net.sink("127.0.0.20")
    dead = free_port_on("127.0.0.21")
    gw = make_gateway(internal_relay_host=f"[127.0.0.20]:{internal.port}",
                      external_relay_host=f"[127.0.0.21]:{dead}",
                      minimal_backoff_time="1s", maximal_backoff_time="1s",
                      delay_warning_time="1s")
    qid = send(gw.port, "alice@example.com", ["bob@remote.test"], "x\r\n",
               subject="late mail")
    wq = gw.wait_log(rf"{qid}: sender delay notification: (\w+)").group(1)
    (env, msg), = dsn_of(internal)
    per, parts = check_dsn(env, msg, "bob@remote.test", "4.4.1",
                           action="delayed")
    assert per["Will-Retry-Until"]
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    assert "THIS IS A WARNING ONLY" in parts[0].get_content()
    assert "Subject: late mail" in parts[2].get_content()
    sent_line(gw, wq, "alice@example.com", r"127\.0\.0\.20\[127\.0\.0\.20\]:\d+")
    # Once only, however often the message is retried.
    gw.wait_log(rf"{qid}: to=<bob@remote.test>.*\n(.*\n)*.*{qid}: "
                r"to=<bob@remote.test>.*\n(.*\n)*.*"
                rf"{qid}: to=<bob@remote.test>", timeout=10)
    assert gw.log().count(f"{qid}: sender delay notification") == 1
    assert os.path.exists(os.path.join(gw.params["queue_directory"],
                                       "queue", qid))


def test_greeting_timeout_defers(make_gateway, net):
    """A server that accepts the connection and says nothing."""
    import socket
    silent = socket.socket()
    silent.bind(("127.0.0.21", 0))
    silent.listen(8)  # the kernel completes the handshake; nobody talks
    net.add(type("S", (), {"stop": lambda self: silent.close()})())
    port = silent.getsockname()[1]
    gw = make_gateway(external_relay_host=f"[127.0.0.21]:{port}",
                      smtp_helo_timeout="1s")
    qid = send(gw.port, "alice@example.com", ["bob@remote.test"], "x\r\n")
    gw.wait_log(rf"{qid}: to=<bob@remote.test>, relay=none, .*dsn=4\.4\.2, "
                r"status=deferred \(conversation with 127\.0\.0\.21"
                r"\[127\.0\.0\.21\] timed out while receiving the initial "
                r"server greeting\)")


def test_helo_fallback_and_size_limit(make_gateway, net):
    """EHLO refused: HELO. A SIZE limit of the server: a bounce."""
    internal = net.sink("127.0.0.20")
    old = net.sink("127.0.0.21", options=["-e"])  # no ESMTP
    small = net.peer("127.0.0.22", size_limit=2000)
    gw = make_gateway(internal_relay_host=f"[127.0.0.20]:{internal.port}",
                      external_relay_host=f"[127.0.0.21]:{old.port}")
    qid = send(gw.port, "alice@example.com", ["bob@remote.test"], "hi\r\n")
    sent_line(gw, qid, "bob@remote.test", r"127\.0\.0\.21\[127\.0\.0\.21\]:\d+")
    env, _ = old.wait(1)[0]
    assert env["X-Client-Proto"] == ["SMTP"]
    assert env["X-Helo-Args"] == ["gw.example.com"]

    gw.params["external_relay_host"] = f"[127.0.0.22]:{small.port}"
    gw.params["smtp_helo_name"] = "out.example.com"
    gw.write_config()
    gw.reload()
    qid = send(gw.port, "alice@example.com", ["bob@remote.test"],
               "x" * 70 + "\r\n" * 40 + "y\r\n" * 1000)
    gw.wait_log(rf"{qid}: to=<bob@remote.test>, relay=127\.0\.0\.22"
                r"\[127\.0\.0\.22\]:\d+, .*dsn=5\.3\.4, status=bounced "
                r"\(message size \d+ exceeds size limit 2000 of server "
                r"127\.0\.0\.22\[127\.0\.0\.22\]\)")
    assert small.handler.ehlos == 1 and small.messages == []
    assert small.handler.helo == "out.example.com"
    (env, msg), = dsn_of(internal)
    check_dsn(env, msg, "bob@remote.test", "5.3.4")


def test_one_transaction_per_destination(make_gateway, net):
    """Recipients are grouped per destination (and split at
    smtp_destination_recipient_limit)."""
    port = free_port_on("127.0.0.21")
    internal = net.sink("127.0.0.20")
    mx = net.sink("127.0.0.21", port=port)
    other = net.sink("127.0.0.24", port=port)
    dns = net.dns(mx=[("remote.test", "mx.remote.test", 10),
                      ("other.test", "mx.other.test", 10)],
                  hosts=[("mx.remote.test", "127.0.0.21"),
                         ("mx.other.test", "127.0.0.24")])
    gw = make_gateway(internal_relay_host=f"[127.0.0.20]:{internal.port}",
                      dns_servers=dns.server, smtp_tcp_port=port,
                      smtp_destination_recipient_limit=2)
    rcpts = ["a@example.com", "b@remote.test", "c@remote.test",
             "d@remote.test", "e@other.test", "f@example.com"]
    qid = send(gw.port, "alice@example.com", rcpts, "grouped\r\n")
    gw.wait_log(rf"{qid}: removed")
    got = {name: sorted(tuple(sorted(env["X-Rcpt-Args"]))
                        for env, _ in sink.messages())
           for name, sink in (("internal", internal), ("mx", mx),
                              ("other", other))}
    assert got["internal"] == [("<a@example.com>", "<f@example.com>")]
    assert got["mx"] == sorted([("<b@remote.test>", "<c@remote.test>"),
                                ("<d@remote.test>",)])
    assert got["other"] == [("<e@other.test>",)]
    assert gw.log().count(f"{qid}: to=<") == 6


@pytest.mark.parametrize("dots", [False, True])
def test_content_goes_out_whole(make_gateway, net, dots):
    """300 KB, with and without lines that start with '.': without, the
    content goes from the queue file to the socket by sendfile; with,
    through the dot-stuffing pump. Both arrive as they were sent, also
    past the socket's buffer, and a lone '.' line does not end the
    message early."""
    mx = net.peer("127.0.0.21")
    sink = net.sink("127.0.0.22")
    gw = make_gateway(external_relay_host=f"[127.0.0.21]:{mx.port}",
                      internal_relay_host=f"[127.0.0.22]:{sink.port}")
    lines = [f"{i:05d} " + "abcdefghij" * (i % 8) for i in range(6000)]
    if dots:
        lines[10] = "."
        lines[3000] = ".. two"
        lines[5999] = ".last"
    content = ("From: <alice@example.com>\r\nTo: <bob@remote.test>\r\n"
               "Subject: whole\r\n\r\n" + "\r\n".join(lines) + "\r\n").encode()
    qid = send(gw.port, "alice@example.com",
               ["bob@remote.test", "carol@example.com"], content)
    gw.wait_log(rf"{qid}: removed")
    data = mx.wait(1)[0]["data"]
    assert data.endswith(content) and data.startswith(b"Received: ")
    # smtp-sink, Postfix's own, reads the same bytes (it stores LF ends
    # and a blank line after the message).
    env, got = sink.wait(1)[0]
    assert got.endswith(content.replace(b"\r\n", b"\n") + b"\n")
    # The queue directory's file system did take sendfile(2).
    assert "sendfile(2) from the queue directory does not work" \
        not in gw.log()
