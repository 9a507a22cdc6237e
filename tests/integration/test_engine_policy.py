"""The decision per recipient, through the whole daemon.

encrypt_mode no_encryption, allow and mandatory, each with a recipient
whose certificate is present, absent, expired and revoked; the subject
trigger; a message split into groups; sign_mode with and without a
sender key; the size limit after filtering; a policy that cannot be read.
"""
import os
import re
import sqlite3

import pytest

from engine_common import canon, net, send_raw  # noqa: F401
from engine_pki import (BODIES, head_of, header, make_pki, parse,
                        remove_pki, run, setup_store)

MODES = {"none.test": "no_encryption", "allow.test": "allow",
         "mandatory.test": "mandatory"}


@pytest.fixture(scope="module")
def pki():
    k = make_pki("engine-policy-")
    doms = sorted(MODES)
    # One certificate per state, for the same name in every domain.
    k.present = k.leaf("present", f"present@{doms[0]}",
                       more=[f"present@{d}" for d in doms[1:]])
    k.expired = k.leaf("expired", f"expired@{doms[0]}",
                       more=[f"expired@{d}" for d in doms[1:]],
                       start="20200101000000Z", end="20200601000000Z")
    k.revoked = k.leaf("revoked", f"revoked@{doms[0]}",
                       more=[f"revoked@{d}" for d in doms[1:]])
    k.crl = k.revoke(k.revoked)
    k.alice = k.leaf("alice", "alice@example.com")
    yield k
    remove_pki(k)


@pytest.fixture
def gw(make_gateway, net, pki):
    g = make_gateway(start=False, **net.params)
    setup_store(g, pki, certs=[pki.present, pki.expired, pki.revoked],
                keys=[pki.alice], crl=pki.crl)
    g.ctl("domain", "add", "example.com")
    g.ctl("domain", "set", "example.com", "locality", "internal")
    for dom, mode in MODES.items():
        g.ctl("domain", "add", dom)
        g.ctl("domain", "set", dom, "encrypt_mode", mode)
    return g


def write(pki, name, data):
    p = pki.p(name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def decrypts(pki, data, who=None):
    """The inner entity when `who` can decrypt data; None otherwise."""
    who = who or pki.present
    r = run("openssl", "cms", "-decrypt", "-in", write(pki, "d.eml", data),
            "-recip", who.cert, "-inkey", who.key, check=False)
    return r.stdout if r.returncode == 0 else None


def encrypted(data):
    return "application/pkcs7-mime" in head_of(data)


def unfold(data):
    return data.replace(b"\r\n ", b" ").decode("utf-8", "replace")


def dsn_for(net, sender="alice@example.com"):
    """The DSNs at the sink: they go to the sender, from MAILER-DAEMON."""
    return [d for e, d in net.for_rcpt(sender)
            if b"From: MAILER-DAEMON@" in d]


@pytest.mark.parametrize("dom", sorted(MODES))
def test_matrix(gw, net, pki, dom):
    mode = MODES[dom]
    gw.start()
    rcpts = [f"{s}@{dom}" for s in ("present", "absent", "expired",
                                    "revoked")]
    msg = header("alice@example.com", rcpts[0], f"matrix {mode}") + \
        BODIES["qp"]
    qid = send_raw(gw.port, "alice@example.com", rcpts, msg)
    if mode == "no_encryption":
        gw.wait_log(rf"{qid}: engine=smime action=none "
                    rf"to=<present@{dom}>,<absent@{dom}>,<expired@{dom}>,"
                    rf"<revoked@{dom}> \(encrypt_mode no_encryption\)")
        env, data = net.for_rcpt(f"present@{dom}")[0]
        assert not encrypted(data) and msg in data
        assert net.rcpts_of() == [sorted(rcpts)]
        return
    # present: encrypted to its valid certificate, in every mode.
    gw.wait_log(rf"{qid}: engine=smime action=encrypt to=<present@{dom}> "
                rf"cert=sha256:{pki.present.fpr[:16]} ")
    env, data = net.for_rcpt(f"present@{dom}")[0]
    assert encrypted(data) and decrypts(pki, data) == canon(msg)
    if mode == "allow":
        line = gw.wait_log(
            rf"{qid}: engine=smime action=none to=<absent@{dom}>,"
            rf"<expired@{dom}>,<revoked@{dom}> \((.*)\) queued as").group(1)
        assert f"<absent@{dom}>: encrypt_mode allow: no certificate" in line
        assert re.search(rf"<expired@{dom}>: encrypt_mode allow: "
                         rf"sha256:{pki.expired.fpr[:16]} expired", line)
        assert re.search(rf"<revoked@{dom}>: encrypt_mode allow: "
                         rf"sha256:{pki.revoked.fpr[:16]} revoked", line)
        env, data = net.for_rcpt(f"absent@{dom}")[0]
        assert not encrypted(data) and msg in data
        assert net.rcpts_of() == [[f"absent@{dom}", f"expired@{dom}",
                                   f"revoked@{dom}"], [f"present@{dom}"]]
        return
    # mandatory: no copy at all for the others; a DSN says why.
    for who in ("absent", "expired", "revoked"):
        gw.wait_log(rf"{qid}: engine=smime action=bounce to=<{who}@{dom}>, "
                    r"dsn=5\.7\.5, status=bounced \(encryption is mandatory "
                    rf"but no valid certificate was found for <{who}@{dom}>")
    dsn = unfold(dsn_for(net)[0])
    assert f"<absent@{dom}>: encryption is mandatory but no valid " \
        f"certificate was found for <absent@{dom}>\r\n" in dsn
    assert re.search(rf"<expired@{dom}>: encryption is mandatory but no "
                     rf"valid certificate was found for <expired@{dom}> "
                     rf"\(sha256:{pki.expired.fpr[:16]} expired \(expired",
                     dsn)
    assert re.search(rf"for <revoked@{dom}> \(sha256:{pki.revoked.fpr[:16]} "
                     r"revoked \(revoked .*keyCompromise", dsn)
    assert "Status: 5.7.5" in dsn and "Subject: matrix mandatory" in dsn
    gw.wait_log(rf"{qid}: removed|{qid}: engine=smime sender non-delivery")
    assert net.rcpts_of() == [["alice@example.com"], [f"present@{dom}"]]


def test_subject_trigger(gw, net, pki):
    gw.ctl("global", "set", "subject_trigger_enabled", "yes")
    gw.start()
    rcpts = ["present@allow.test", "absent@allow.test"]
    # In clear text and inside an RFC 2047 encoded word.
    for i, subj in enumerate(["Contract [ENCRYPT] draft",
                              "=?utf-8?q?Vertr=C3=A4ge_=5Bencrypt=5D_neu?="]):
        msg = header("alice@example.com", rcpts[0], subj) + BODIES["qp"]
        qid = send_raw(gw.port, "alice@example.com", rcpts, msg)
        gw.wait_log(rf"{qid}: engine=smime action=encrypt "
                    r"to=<present@allow.test> .*subject_trigger=removed "
                    r"queued as")
        # The trigger makes encryption mandatory: no clear copy.
        gw.wait_log(rf"{qid}: engine=smime action=bounce "
                    r"to=<absent@allow.test>, dsn=5\.7\.5")
        data = net.find("present@allow.test",
                        ["Contract draft", "Verträge neu"][i])
        assert decrypts(pki, data) == canon(msg)
    # Without the trigger, allow sends in clear where there is no key.
    msg = header("alice@example.com", rcpts[0], "no trigger") + BODIES["qp"]
    qid = send_raw(gw.port, "alice@example.com", rcpts, msg)
    gw.wait_log(rf"{qid}: engine=smime action=none to=<absent@allow.test>")
    assert len(net.for_rcpt("absent@allow.test")) == 1
    # subject_trigger_remove = no keeps it.
    gw.ctl("global", "set", "subject_trigger_remove", "no")
    msg = header("alice@example.com", rcpts[0], "[encrypt] kept") + \
        BODIES["qp"]
    qid = send_raw(gw.port, "alice@example.com", ["present@allow.test"], msg)
    gw.wait_log(rf"{qid}: engine=smime action=encrypt "
                r"to=<present@allow.test> cert=\S+ cipher=\S+ queued as")
    assert decrypts(pki, net.find("present@allow.test",
                                  "[encrypt] kept")) == canon(msg)


def test_split_into_groups(gw, net, pki):
    """One message, four recipients, three outcomes: one envelope each,
    and a DSN instead of the fourth's copy."""
    gw.start()
    rcpts = ["dave@example.com", "present@allow.test", "absent@allow.test",
             "absent@mandatory.test"]
    msg = header("alice@example.com", rcpts[1], "groups") + \
        BODIES["alternative"]
    qid = send_raw(gw.port, "alice@example.com", rcpts, msg)
    gw.wait_log(rf"{qid}: engine=smime action=none to=<dave@example.com>,"
                r"<absent@allow.test> \(<dave@example.com>: not S/MIME; "
                r"<absent@allow.test>: encrypt_mode allow: no certificate\) "
                r"queued as \w+")
    gw.wait_log(rf"{qid}: engine=smime action=encrypt "
                r"to=<present@allow.test> .* queued as \w+")
    gw.wait_log(rf"{qid}: engine=smime action=bounce "
                r"to=<absent@mandatory.test>")
    gw.wait_log(rf"{qid}: engine=smime sender non-delivery notification: "
                r"\w+")
    env, data = net.for_rcpt("present@allow.test")[0]
    assert decrypts(pki, data) == canon(msg)
    env, data = net.for_rcpt("dave@example.com")[0]
    assert msg in data
    dsn_for(net)
    assert net.rcpts_of() == [["absent@allow.test", "dave@example.com"],
                              ["alice@example.com"], ["present@allow.test"]]
    # The original is gone: only the outputs were delivered.
    assert qid not in gw.queue_ids()
    assert f"{qid}: to=" not in gw.log()


def signed(data):
    return "multipart/signed" in head_of(data)


@pytest.mark.parametrize("mode", ["always", "when_encrypting", "never"])
def test_sign_mode(gw, net, pki, mode):
    gw.ctl("domain", "set", "example.com", "sign_mode", mode)
    gw.start()
    rcpts = ["present@allow.test", "absent@allow.test"]
    # alice has a key; frank has none.
    for sender in ["alice@example.com", "frank@example.com"]:
        subj = f"sign {mode} {sender}"
        msg = header(sender, rcpts[0], subj) + BODIES["8bit-utf8"]
        qid = send_raw(gw.port, sender, rcpts, msg)
        gw.wait_log(rf"{qid}: engine=smime action=encrypt|"
                    rf"{qid}: engine=smime action=sign\+encrypt")
        inner = decrypts(pki, net.find("present@allow.test", subj))
        clear = net.find("absent@allow.test", subj)
        key = sender == "alice@example.com"
        want_enc_signed = key and mode in ("always", "when_encrypting")
        want_clear_signed = key and mode == "always"
        assert signed(inner) == want_enc_signed, (sender, mode)
        assert signed(clear) == want_clear_signed, (sender, mode)
        if want_clear_signed:
            v = run("openssl", "cms", "-verify", "-in",
                    write(pki, "c.eml", clear), "-CAfile", pki.cafile)
            assert v.stdout == canon(msg)
        else:
            assert msg in clear
        if not key and mode != "never":
            gw.wait_log(rf"{qid}: engine=smime signing skipped for "
                        r"<frank@example.com>: no valid signing certificate "
                        r"with a key: no certificate")


def test_size_after_filter(make_gateway, net, pki):
    gw = make_gateway(start=False, before_filter_message_size_limit=4096,
                      after_filter_message_size_limit=4096, **net.params)
    setup_store(gw, pki, certs=[pki.present])
    gw.start()
    msg = header("alice@example.com", "present@allow.test", "big") + \
        b"Content-Type: text/plain\r\n\r\n" + b"x" * 70 + b"\r\n" * 0 + \
        (b"A line of text that makes the message grow.\r\n" * 70)
    assert 3000 < len(msg) < 4000
    qid = send_raw(gw.port, "alice@example.com", ["present@allow.test"], msg)
    gw.wait_log(rf"{qid}: engine=smime action=bounce "
                r"to=<present@allow.test>, dsn=5\.3\.4, status=bounced "
                r"\(message too large after filtering "
                r"\(after_filter_message_size_limit is 4096 bytes\)\)")
    dsn = unfold(dsn_for(net)[0])
    assert "Status: 5.3.4" in dsn
    assert net.rcpts_of() == [["alice@example.com"]]


def test_policy_error_fails_closed(gw, net, pki):
    """A stored policy that cannot be read: tempfail, nothing in clear."""
    gw.start()
    db = gw.params["store"].split(":", 1)[1]
    with sqlite3.connect(db) as c:
        c.execute("INSERT OR REPLACE INTO domain_properties "
                  "(domain, name, value) VALUES ('allow.test', "
                  "'encrypt_mode', 'sometimes')")
    msg = header("alice@example.com", "absent@allow.test", "tempfail") + \
        BODIES["qp"]
    qid = send_raw(gw.port, "alice@example.com", ["absent@allow.test"], msg)
    gw.wait_log(rf"{qid}: engine: policy lookup failed: .*sometimes")
    gw.wait_log(rf"{qid}: deferred by the filter: policy lookup failed")
    assert qid in gw.queue_ids()
    gw.ctl("domain", "set", "allow.test", "encrypt_mode", "mandatory")
    gw.ctl("queue", "flush", qid)
    gw.wait_log(rf"{qid}: engine=smime action=bounce to=<absent@allow.test>")
    dsn_for(net)
    assert net.rcpts_of() == [["alice@example.com"]]
    assert not os.path.exists(os.path.join(gw.params["queue_directory"],
                                           "queue", qid))
