"""reject_unverified_recipient (seed guide 4.5) and its cache."""
import os

from test_delivery import net, sent_line  # noqa: F401 (a fixture)

UNKNOWN = ("550 5.1.1 <nobody@example.com>: Recipient address rejected: "
           "User unknown in local recipient table")


def rcpt(smtp, gw, addr, source="127.0.0.3"):
    c = smtp(gw.port, source=source)
    assert c.cmd("EHLO outside.test").startswith("250")
    assert c.cmd("MAIL FROM:<someone@remote.test>") == "250 2.1.0 Ok"
    reply = c.cmd(f"RCPT TO:<{addr}>")
    c.cmd("QUIT")
    return reply


def test_verify_probe_cache_and_restart(make_gateway, net, smtp):
    internal = net.peer("127.0.0.20", hostname="mail.example.com",
                        reject={"nobody@example.com": UNKNOWN})
    gw = make_gateway(internal_relay_host=f"[127.0.0.20]:{internal.port}",
                      reject_unverified_recipient="yes")
    probes = internal.handler.probes

    assert rcpt(smtp, gw, "good@example.com") == "250 2.1.5 Ok"
    assert probes == ["good@example.com"]
    gw.wait_log(r"NOQUEUE: verify: to=<good@example.com>, relay=127\.0\.0"
                r"\.20\[127\.0\.0\.20\]:\d+, delay=[\d.]+, dsn=2\.1\.5, "
                r"status=deliverable \(250 2\.1\.5 Ok\)")
    # The second RCPT is answered from the cache: no probe.
    assert rcpt(smtp, gw, "Good@Example.com") == "250 2.1.5 Ok"
    assert probes == ["good@example.com"]

    bad = ("450 4.1.1 <nobody@example.com>: Recipient address rejected: "
           "undeliverable address: host 127.0.0.20[127.0.0.20] said: "
           f"{UNKNOWN} (in reply to RCPT TO command)")
    assert rcpt(smtp, gw, "nobody@example.com") == bad
    assert rcpt(smtp, gw, "nobody@example.com") == bad
    assert probes == ["good@example.com", "nobody@example.com"]
    assert f"NOQUEUE: reject: RCPT from unknown[127.0.0.3]: {bad}; " \
        "from=<someone@remote.test> to=<nobody@example.com>" in gw.log()
    # The probe was EHLO, MAIL FROM:<>, RCPT TO, QUIT: no message.
    assert internal.messages == []

    # The cache survives a restart; the reject code follows the setting.
    gw.stop()
    gw.params["unverified_recipient_reject_code"] = "550"
    gw.write_config()
    gw.start()
    assert rcpt(smtp, gw, "good@example.com") == "250 2.1.5 Ok"
    assert rcpt(smtp, gw, "nobody@example.com") == bad.replace(
        "450 4.1.1", "550 5.1.1", 1)
    assert probes == ["good@example.com", "nobody@example.com"]
    cache = os.path.join(gw.params["data_directory"], "verify.cache")
    with open(cache) as f:
        lines = f.read().splitlines()
    assert len(lines) == 2

    # Mail for a verified recipient goes through as usual.
    c = smtp(gw.port, source="127.0.0.3")
    c.cmd("EHLO outside.test")
    c.cmd("MAIL FROM:<someone@remote.test>")
    assert c.cmd("RCPT TO:<good@example.com>") == "250 2.1.5 Ok"
    assert c.cmd("DATA").startswith("354")
    c.send("Subject: verified\r\n\r\nhi\r\n.\r\n")
    qid = c.reply().rsplit(" ", 1)[1]
    sent_line(gw, qid, "good@example.com", r"127\.0\.0\.20\[127\.0\.0\.20\]:\d+")


def test_verify_tempfail_is_not_cached(make_gateway, net, smtp):
    internal = net.peer("127.0.0.20", tempfail={"busy@example.com": 1})
    gw = make_gateway(internal_relay_host=f"[127.0.0.20]:{internal.port}",
                      reject_unverified_recipient="yes",
                      unverified_recipient_reject_code="550")
    r = rcpt(smtp, gw, "busy@example.com")
    assert r == ("450 4.1.1 <busy@example.com>: Recipient address rejected: "
                 "unverified address: host 127.0.0.20[127.0.0.20] said: 450 "
                 "4.2.0 <busy@example.com>: try again later (in reply to "
                 "RCPT TO command)")
    assert rcpt(smtp, gw, "busy@example.com") == "250 2.1.5 Ok"
    assert internal.handler.probes == ["busy@example.com"] * 2


def test_verify_server_down_tempfails(make_gateway, net, smtp):
    from peers import free_port_on
    dead = free_port_on("127.0.0.20")
    gw = make_gateway(internal_relay_host=f"[127.0.0.20]:{dead}",
                      reject_unverified_recipient="yes")
    assert rcpt(smtp, gw, "x@example.com") == (
        "450 4.1.1 <x@example.com>: Recipient address rejected: unverified "
        f"address: connect to 127.0.0.20[127.0.0.20]:{dead}: Connection "
        "refused")
    # Recipients outside relay_domains from mynetworks are not probed.
    assert rcpt(smtp, gw, "x@remote.test", source="127.0.0.2") == \
        "250 2.1.5 Ok"
