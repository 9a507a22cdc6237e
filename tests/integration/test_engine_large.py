"""A 25 MB message through the whole daemon, both ways, in bounded
engine memory (docs/smime.md: the bound and how it is measured).

The peak resident set (VmHWM) of every engine process is read from
/proc after the message went through; each must stay under 40 MB (not
measured under AddressSanitizer, whose shadow memory counts there).
"""
import os
import re

import pytest

from conftest import SANITIZED
from engine_common import canon8, engine_pids, net, send_raw  # noqa: F401
from engine_pki import b64, header, leaves, make_pki, remove_pki, run, \
    setup_store

LIMIT_KB = 40 << 10


@pytest.fixture(scope="module")
def pki():
    k = make_pki("engine-large-")
    k.bob = k.leaf("bob", "bob@remote.test")
    k.alice = k.leaf("alice", "alice@example.com")
    yield k
    remove_pki(k)


def big(sender, to, subject):
    text = "Zeile mit Umlauten: äöü\r\n".encode() * 200000
    attach = os.urandom(15 << 20)
    return header(sender, to, subject) + (
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=big\r\n\r\n"
        b"--big\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + text +
        b"\r\n--big\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(attach) +
        b"\r\n--big--\r\n")


def vmhwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))


def test_25mb_both_ways(make_gateway, net, pki):
    gw = make_gateway(start=False, before_filter_message_size_limit=60000000,
                      after_filter_message_size_limit=80000000,
                      engine_processes=1, **net.params)
    setup_store(gw, pki, certs=[pki.bob], keys=[pki.alice])
    gw.ctl("domain", "add", "example.com")
    gw.ctl("domain", "set", "example.com", "locality", "internal")
    gw.ctl("user", "add", "alice@example.com")
    gw.ctl("user", "set", "alice@example.com", "sign_mode", "always")
    gw.start()
    [pid] = engine_pids(gw)
    # Outgoing: signed and encrypted.
    msg = big("alice@example.com", "bob@remote.test", "big out")
    assert len(msg) > 25 << 20
    qid = send_raw(gw.port, "alice@example.com", ["bob@remote.test"], msg)
    nq = gw.wait_log(rf"{qid}: engine=smime action=sign\+encrypt .* queued "
                     r"as (\w+)", timeout=60).group(1)
    gw.wait_log(rf"{nq}: to=<bob@remote.test>, .*status=sent", timeout=60)
    out_kb = vmhwm_kb(pid)
    data = net.find("bob@remote.test", "big out")
    f = pki.p("big.eml")
    with open(f, "wb") as fh:
        fh.write(data)
    inner = run("openssl", "cms", "-decrypt", "-in", f, "-recip",
                pki.bob.cert, "-inkey", pki.bob.key).stdout
    # Signed, then encrypted: the parts and the signature.
    assert leaves(inner)[:-1] == leaves(msg)
    assert leaves(inner)[-1][0] == "application/pkcs7-signature"
    # Incoming: the same, encrypted to alice, is decrypted.
    with open(f, "wb") as fh:
        fh.write(inner)
    enc = run("openssl", "cms", "-encrypt", "-binary", "-aes-256-gcm",
              "-in", f, "-from", "Bob <bob@remote.test>", "-subject",
              "big in", "-crlfeol", pki.alice.cert).stdout
    qid = send_raw(gw.port, "bob@remote.test", ["alice@example.com"],
                   re.sub(rb"\r?\n", b"\r\n", enc))
    nq = gw.wait_log(rf"{qid}: engine=smime action=decrypt\+verify .* "
                     r"queued as (\w+)", timeout=60).group(1)
    gw.wait_log(rf"{nq}: to=<alice@example.com>, .*status=sent", timeout=60)
    in_kb = vmhwm_kb(pid)
    out = net.find("alice@example.com", "big in")
    assert leaves(out) == leaves(inner)
    print(f"\nengine VmHWM: {out_kb} kB after sign+encrypt, {in_kb} kB "
          f"after decrypt+verify of {len(msg) >> 20} MB")
    if not SANITIZED:
        assert out_kb < LIMIT_KB and in_kb < LIMIT_KB, (out_kb, in_kb)
