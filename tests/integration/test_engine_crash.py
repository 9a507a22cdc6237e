"""Crash safety of the engines, their sandbox and their protocol.

- An engine killed (SIGKILL) during a transform loses nothing: the
  message is delivered once, correctly.
- A message that kills engines again and again goes to corrupt/ after
  three deaths, with a log line; other mail keeps flowing.
- At start, an output whose parent is still queued (a transform that did
  not reach its commit point) is removed and the parent done again.
- Outputs go to delivery before they are durable, their parent queued
  until then: a kill -9 of the whole gateway in the middle of a load loses
  no acknowledged message; an output that is deferred is made durable,
  its parent goes, and it survives a kill -9.
- Engines run as the mail owner under the seccomp filter; a peer that
  breaks the protocol is killed.
"""
import os
import pwd
import re
import signal
import smtplib
import socket
import struct
import subprocess
import threading
import time
import zlib

import pytest

from engine_common import canon, engine_pids, net, send_raw  # noqa: F401
from engine_pki import b64, header, make_pki, remove_pki, run, setup_store
from peers import SmtpSink, free_port_on, wait_for


@pytest.fixture(scope="module")
def pki():
    k = make_pki("engine-crash-")
    k.bob = k.leaf("bob", "bob@remote.test")
    yield k
    remove_pki(k)


@pytest.fixture
def gw(make_gateway, net, pki):
    g = make_gateway(start=False, before_filter_message_size_limit=30000000,
                     after_filter_message_size_limit=60000000, **net.params)
    setup_store(g, pki, certs=[pki.bob])
    return g


def big_message(subject, mb=12):
    attach = os.urandom(mb << 20)
    return header("alice@example.com", "bob@remote.test", subject) + (
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=big\r\n\r\n"
        b"--big\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        b"see the attachment\r\n"
        b"--big\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(attach) +
        b"\r\n--big--\r\n")


def kill_when_taken(gw, qid, since=0, timeout=30):
    """SIGKILL the engine as soon as it logs that it took qid; its pid."""
    rx = re.compile(rf"mailseal/engine\[(\d+)\]: {qid}: engine=smime "
                    r"processing")
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = None
        for m in rx.finditer(gw.log(since)):
            pass
        if m is not None:
            os.kill(int(m.group(1)), signal.SIGKILL)
            return int(m.group(1)), since + m.end()
        time.sleep(0.002)
    raise TimeoutError(f"no engine took {qid}")


def decrypts(pki, data):
    f = pki.p("crash.eml")
    with open(f, "wb") as fh:
        fh.write(data)
    return run("openssl", "cms", "-decrypt", "-in", f, "-recip",
               pki.bob.cert, "-inkey", pki.bob.key).stdout


def test_killed_engine_loses_nothing(gw, net, pki):
    gw.start()
    # A kill can come too late (the engine had handed its output over,
    # and a dead engine changes nothing then): then try again.
    for attempt in range(4):
        msg = big_message(f"kill {attempt}")
        qid = send_raw(gw.port, "alice@example.com", ["bob@remote.test"], msg)
        pid, _ = kill_when_taken(gw, qid)
        out = gw.wait_log(rf"{qid}: (the engine \(pid {pid}\) died during "
                          r"the transform: tried again|engine=smime "
                          r"action=encrypt .* queued as)").group(1)
        nq = gw.wait_log(rf"{qid}: engine=smime action=encrypt .* "
                         r"queued as (\w+)").group(1)
        # smtp-sink writes as the data comes: wait for its 250.
        gw.wait_log(rf"{nq}: to=<bob@remote.test>, .*status=sent")
        data = net.find("bob@remote.test", f"kill {attempt}")
        assert decrypts(pki, data) == canon(msg)
        if out.startswith("the engine"):
            break
    else:
        pytest.fail("no kill came during a transform")
    # Delivered once; nothing left behind in the spool.
    wait_for(lambda: gw.queue_ids() == [], what="an empty queue")
    assert gw.queue_ids("incoming") == []
    assert len(net.for_rcpt("bob@remote.test", n=attempt + 1)) == attempt + 1


def test_message_that_kills_engines_goes_to_corrupt(gw, net, pki):
    gw.start()
    # Large, so that each kill comes while the transform runs.
    msg = big_message("deadly", mb=20)
    qid = send_raw(gw.port, "alice@example.com", ["bob@remote.test"], msg)
    since = 0
    for n in range(3):
        pid, since = kill_when_taken(gw, qid, since)
        if n < 2:
            gw.wait_log(rf"{qid}: the engine \(pid {pid}\) died during the "
                        r"transform: tried again")
    gw.wait_log(rf"{qid}: engine processes died 3 times on this message")
    gw.wait_log(rf"{qid}: corrupt queue file \(engine processes died 3 "
                r"times on it\): moved to corrupt")
    assert gw.queue_ids("corrupt") == [qid]
    # Other mail flows.
    ok = header("alice@example.com", "bob@remote.test", "fine") + \
        b"Content-Type: text/plain\r\n\r\nfine\r\n"
    qid2 = send_raw(gw.port, "alice@example.com", ["bob@remote.test"], ok)
    gw.wait_log(rf"{qid2}: engine=smime action=encrypt")
    assert decrypts(pki, net.find("bob@remote.test", "fine")) == canon(ok)
    assert net.rcpts_of() == [["bob@remote.test"]]


# Spool files written here, in the format of src/queue/spool.h, to set
# up what a crash leaves behind.

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_qid(slot=30):
    t = time.time_ns() // 1000
    s = ""
    for _ in range(11):
        s = ALPHABET[t & 31] + s
        t >>= 5
    time.sleep(0.001)
    return s + ALPHABET[slot]


def rec(t, data):
    return t.encode() + struct.pack(">I", len(data)) + data


def spool_file(qid, content, rcpts, stage, flags=0, parent=None,
               sender="alice@example.com"):
    env = rec("Q", qid.encode())
    if parent:
        env += rec("P", parent.encode())
    env += rec("G", bytes([stage])) + rec("F", struct.pack(">I", flags))
    env += rec("T", struct.pack(">Q", time.time_ns() // 1000))
    env += rec("S", sender.encode()) + rec("c", b"localhost") + \
        rec("a", b"127.0.0.1") + rec("p", b"ESMTP")
    for r in rcpts:
        env += rec("R", struct.pack(">II", 0, len(r)) + r.encode() +
                   struct.pack(">I", 0))
    env += rec("E", struct.pack(">I", zlib.crc32(env)))
    hdr = b"MAILSEAL" + struct.pack(">I", 1) + b"\0" * 4 + \
        struct.pack(">QQQQ", 64, len(content), 64 + len(content), len(env))
    hdr += b"\0" * (60 - len(hdr))
    hdr += struct.pack(">I", zlib.crc32(hdr))
    return hdr + content + env


def put(gw, qid, data):
    path = os.path.join(gw.params["queue_directory"], "queue", qid)
    with open(path, "wb") as f:
        f.write(data)
    owner = pwd.getpwnam("mailseal")
    os.chown(path, owner.pw_uid, owner.pw_gid)
    os.chmod(path, 0o600)


def test_start_removes_outputs_of_unfinished_transforms(gw, net, pki):
    gw.start()
    gw.stop()
    msg = header("alice@example.com", "bob@remote.test", "parent") + \
        b"Content-Type: text/plain\r\n\r\nthe real one\r\n"
    parent = new_qid()
    trace = new_qid()
    done = new_qid()
    gone = new_qid()
    put(gw, parent, spool_file(parent, msg, ["bob@remote.test"], 1))
    # SPOOL_F_OUTPUT = 8: half of a transform of parent...
    put(gw, trace, spool_file(trace, b"Subject: trace\r\n\r\nnot this\r\n",
                              ["bob@remote.test"], 2, flags=8,
                              parent=parent))
    # ...and the output of a transform whose parent is gone (committed).
    put(gw, done, spool_file(done, b"Subject: done\r\n\r\ncommitted\r\n",
                             ["carol@remote.test"], 2, flags=8,
                             parent=gone))
    gw.start()
    gw.wait_log(rf"{trace}: removed: output of an interrupted transform of "
                rf"{parent}")
    gw.wait_log(rf"{parent}: engine=smime action=encrypt "
                r"to=<bob@remote.test> .* queued as \w+")
    gw.wait_log(rf"{done}: to=<carol@remote.test>, .*status=sent")
    data = net.find("bob@remote.test", "parent")
    assert decrypts(pki, data) == canon(msg)
    assert b"committed" in net.find("carol@remote.test", "done")
    assert net.rcpts_of() == [["bob@remote.test"], ["carol@remote.test"]]
    assert "not this" not in str(net.sink.messages())


def test_kill9_during_delivery_loses_nothing(gw, net, pki):
    gw.start()
    acked, stop = {}, threading.Event()
    # More than are sent before the kill: the gateway takes the first
    # hundreds before any has gone through the engine and out.
    per_client = 500

    def client(n):
        for i in range(per_client):
            if stop.is_set():
                return
            tok = f"tok-{n}-{i}"
            line = (tok.encode() + b" ") * 7 + b"\r\n"
            msg = header("alice@example.com", "bob@remote.test", tok) + \
                b"Content-Type: text/plain\r\n\r\n" + line * 300
            try:
                acked[tok] = send_raw(gw.port, "alice@example.com",
                                      ["bob@remote.test"], msg)
            except (OSError, smtplib.SMTPException, AssertionError):
                return

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    # Kill while transforms and deliveries are under way.
    wait_for(lambda: len(net.sink.files()) >= 20 or None, 60,
             "deliveries under way")
    gw.kill9()
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) < 4 * per_client, "the load ended before the kill"
    gw.start()
    # Every acknowledged message arrives, encrypted (some twice: those
    # delivered whose original had not gone yet when the gateway died).
    want = set(acked)

    def arrived():
        got = set()
        for e, d in net.sink.messages():
            m = re.search(rb"^Subject: (tok-\d+-\d+)\r?$", d, re.M)
            if m:
                got.add(m.group(1).decode())
        return got if want <= got else None
    got = wait_for(arrived, 90, "every acknowledged message at the sink")
    assert got <= want | set(f"tok-{n}-{i}" for n in range(4)
                             for i in range(per_client))
    for e, d in net.sink.messages():
        assert b"application/pkcs7-mime" in d, "a message left in clear"
    wait_for(lambda: gw.queue_ids() == [], what="an empty queue")
    assert gw.queue_ids("incoming") == []


def test_deferred_output_is_made_durable(make_gateway, net, pki):
    port = free_port_on(net.host)
    hop = f"[{net.host}]:{port}"
    g = make_gateway(start=False, external_relay_host=hop,
                     internal_relay_host=hop)
    setup_store(g, pki, certs=[pki.bob])
    # A next hop that answers RCPT with 4xx.
    busy = SmtpSink(net.sink.dir, net.host, port, options=["-r", "rcpt"])
    try:
        g.start()
        msg = header("alice@example.com", "bob@remote.test", "later") + \
            b"Content-Type: text/plain\r\n\r\nlater\r\n"
        parent = send_raw(g.port, "alice@example.com", ["bob@remote.test"],
                          msg)
        out = g.wait_log(rf"{parent}: engine=smime action=encrypt .* "
                         r"queued as (\w+)").group(1)
        g.wait_log(rf"{out}: to=<bob@remote.test>, .*status=deferred")
        # The original goes once the output is durable.
        wait_for(lambda: g.queue_ids() == [out] or None, 20,
                 "the output alone in the queue")
        g.kill9()
    finally:
        busy.stop()
    g.start()
    assert g.queue_ids() == [out]
    ok = SmtpSink(net.sink.dir, net.host, port)
    try:
        g.ctl("queue", "flush", "--all")
        g.wait_log(rf"{out}: to=<bob@remote.test>, .*status=sent")
        data = [d for e, d in ok.messages() if b"Subject: later" in d]
        assert len(data) == 1
        assert decrypts(pki, re.sub(rb"\r?\n", b"\r\n", data[0][:-1])) \
            == canon(msg)
    finally:
        ok.stop()


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f
                    if ":\t" in line)


def test_engines_sandboxed(gw, net, pki):
    gw.start()
    pids = wait_for(lambda: engine_pids(gw), what="engine processes")
    assert len(pids) == 2 * os.cpu_count()  # engine_processes = 0
    owner = pwd.getpwnam("mailseal")
    for pid in pids:
        # The filter comes once the engine has reached the dispatcher.
        st = wait_for(lambda: proc_status(pid)["Seccomp"] == "2" and
                      proc_status(pid), what="the seccomp filter")
        assert st["Seccomp"] == "2" and st["NoNewPrivs"] == "1", st
        assert st["Uid"].split()[0] == str(owner.pw_uid)
        # Not dumpable: /proc/PID/mem and ptrace are closed to the
        # mail_owner's other processes (the dispatcher).
        assert os.stat(f"/proc/{pid}/mem").st_uid == 0


def test_peer_that_breaks_the_protocol_is_killed(gw, net, pki):
    gw.start()
    path = os.path.join(gw.params["queue_directory"], "private", "engine")
    wait_for(lambda: os.path.exists(path), what="the engine socket")
    # A peer of another user (root) is refused.
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.connect(path)
        s.settimeout(5)
        assert s.recv(100) == b""
    gw.wait_log(r"engine socket: a peer of another user: refused")
    # The mail owner's process that says something else than HELLO.
    code = ("import socket,sys,time\n"
            "s=socket.socket(socket.AF_UNIX,socket.SOCK_SEQPACKET)\n"
            f"s.connect({path!r})\n"
            "s.send(b'\\x00\\x00\\x00\\x07\\x00\\x00\\x00\\x00')\n"
            "time.sleep(10)\n")
    p = subprocess.Popen(["setpriv", "--reuid=mailseal", "--regid=mailseal",
                          "--clear-groups", "/usr/bin/python3", "-c", code])
    try:
        p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == -signal.SIGKILL
    gw.wait_log(rf"engine pid {p.pid}: unexpected message type: killed")
    # The real engines go on working.
    ok = header("alice@example.com", "bob@remote.test", "after") + \
        b"Content-Type: text/plain\r\n\r\nfine\r\n"
    qid = send_raw(gw.port, "alice@example.com", ["bob@remote.test"], ok)
    gw.wait_log(rf"{qid}: engine=smime action=encrypt")
