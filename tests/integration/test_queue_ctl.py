"""Queue control (the seed guide's "Queues") and send-test."""
import os
import re

from peers import SmtpSink, free_port_on, parse, send, wait_for
from test_delivery import net, sent_line  # noqa: F401 (a fixture)


def deferred_gateway(make_gateway, net, **params):
    """A gateway whose relay host is down: mail is deferred."""
    port = free_port_on("127.0.0.22")
    gw = make_gateway(external_relay_host=f"[127.0.0.22]:{port}",
                      minimal_backoff_time="300s", **params)
    return gw, port


def defer(gw, n=1, rcpt="bob@remote.test"):
    qids = []
    for i in range(n):
        qid = send(gw.port, "alice@example.com", [rcpt], f"m{i}\r\n",
                   subject=f"message {i}")
        gw.wait_log(rf"{qid}: to=<{rcpt}>, .*status=deferred")
        qids.append(qid)
    return qids


def qfile(gw, sub, qid):
    return os.path.join(gw.params["queue_directory"], sub, qid)


def test_hold_release_flush(make_gateway, net):
    gw, port = deferred_gateway(make_gateway, net)
    a, b = defer(gw, 2)
    r = gw.ctl("queue", "hold", a)
    assert r.stdout == f"{a}: placed on hold\nhold: 1 message\n"
    assert os.path.exists(qfile(gw, "hold", a))
    assert re.search(rf"^{a}\s+hold\s", gw.ctl("queue", "list").stdout, re.M)
    gw.wait_log(rf"{a}: placed on hold")

    # The relay comes back; flush retries what is deferred, not held mail.
    sink = net.add(SmtpSink(net.dir, "127.0.0.22", port=port))
    r = gw.ctl("queue", "flush")
    assert r.stdout == f"{b}: flushed\nflush: 1 message\n"
    sent_line(gw, b, "bob@remote.test", r"127\.0\.0\.22\[127\.0\.0\.22\]:\d+")
    assert len(sink.wait(1)) == 1
    assert os.path.exists(qfile(gw, "hold", a))
    assert f"{a}: to=" not in gw.log().split(f"{a}: placed on hold")[1]

    r = gw.ctl("queue", "release", a)
    assert r.stdout == f"{a}: released from hold\nrelease: 1 message\n"
    sent_line(gw, a, "bob@remote.test", r"127\.0\.0\.22\[127\.0\.0\.22\]:\d+")
    gw.wait_log(rf"{a}: removed")
    assert len(sink.wait(2)) == 2

    r = gw.ctl("queue", "release", a, check=False)
    assert r.returncode == 1
    assert f"mailsealctl: {a}: no such message on hold" in r.stderr


def test_delete_and_all(make_gateway, net):
    gw, _ = deferred_gateway(make_gateway, net)
    a, b, c = defer(gw, 3)
    r = gw.ctl("queue", "delete", a)
    assert r.stdout == f"{a}: deleted\ndelete: 1 message\n"
    gw.wait_log(rf"{a}: removed")
    assert not os.path.exists(qfile(gw, "queue", a))
    r = gw.ctl("queue", "hold", "--all")
    assert r.stdout == (f"{b}: placed on hold\n{c}: placed on hold\n"
                        "hold: 2 messages\n")
    assert sorted(os.listdir(os.path.join(gw.params["queue_directory"],
                                          "hold"))) == [b, c]
    shown = gw.ctl("queue", "show", "--all").stdout
    assert f"queue_id: {b}\nstate: hold" in shown
    assert f"queue_id: {c}\nstate: hold" in shown
    assert "Subject: message 1" in shown and "Subject: message 2" in shown
    r = gw.ctl("queue", "delete", "--all")
    assert "delete: 2 messages" in r.stdout
    wait_for(lambda: gw.queue_ids("hold") == [] and gw.queue_ids() == [],
             what="an empty queue")
    assert gw.ctl("queue", "list").stdout.endswith("-- 0 messages\n")


def test_requeue_runs_from_the_start(make_gateway, net):
    gw, port = deferred_gateway(make_gateway, net)
    a, = defer(gw, 1)
    assert gw.log().count(f"{a}: engine=none action=pass") == 1
    sink = net.add(SmtpSink(net.dir, "127.0.0.22", port=port))
    r = gw.ctl("queue", "requeue", a)
    assert r.stdout == f"{a}: requeued\nrequeue: 1 message\n"
    gw.wait_log(rf"{a}: requeued")
    sent_line(gw, a, "bob@remote.test", r"127\.0\.0\.22\[127\.0\.0\.22\]:\d+")
    # Through the filter again, as a new message would go.
    assert gw.log().count(f"{a}: engine=none action=pass") == 2
    sink.wait(1)


def test_changes_while_the_daemon_is_down(make_gateway, net):
    gw, port = deferred_gateway(make_gateway, net)
    a, b = defer(gw, 2)
    gw.stop()
    r = gw.ctl("queue", "hold", a)
    assert r.stdout == f"{a}: placed on hold\nhold: 1 message\n"
    assert os.path.exists(qfile(gw, "hold", a))
    gw.ctl("queue", "flush", b)
    sink = net.add(SmtpSink(net.dir, "127.0.0.22", port=port))
    gw.start()
    # b is due at once; a stays held across the restart.
    sent_line(gw, b, "bob@remote.test", r"127\.0\.0\.22\[127\.0\.0\.22\]:\d+")
    gw.wait_log(r"queue scan: \d+ messages? queued, 1 on hold")
    assert os.path.exists(qfile(gw, "hold", a))
    gw.ctl("queue", "release", a)
    sent_line(gw, a, "bob@remote.test", r"127\.0\.0\.22\[127\.0\.0\.22\]:\d+")
    assert len(sink.wait(2)) == 2


def test_send_test(make_gateway, net):
    """The seed guide's "send email" tool: a test message through the
    normal path, its queue ID printed, its delivery in the log."""
    sink = net.add(SmtpSink(net.dir, "127.0.0.22"))
    gw = make_gateway(external_relay_host=f"[127.0.0.22]:{sink.port}")
    r = gw.ctl("send-test", "--from", "admin@example.com", "--to",
               "someone@remote.test", "--subject", "gateway test")
    qid = r.stdout.strip()
    assert re.fullmatch(r"[0-9A-Z]{12}", qid), r.stdout
    gw.wait_log(rf"{qid}: engine=none action=pass")
    sent_line(gw, qid, "someone@remote.test",
              r"127\.0\.0\.22\[127\.0\.0\.22\]:\d+")
    env, data = sink.wait(1)[0]
    assert env["X-Mail-Args"] == ["<admin@example.com>"]
    msg = parse(data)
    assert msg["Subject"] == "gateway test"
    assert msg["To"].addresses[0].addr_spec == "someone@remote.test"
    assert "mailsealctl send-test" in msg.get_content()
    bad = gw.ctl("send-test", "--from", "admin@example.com", "--to",
                 "not an address", check=False)
    assert bad.returncode == 1 and "bad --to address" in bad.stderr
