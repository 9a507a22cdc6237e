"""Incoming mail through the whole daemon: the gateway decrypts what
`openssl cms -encrypt` and `gpgsm --encrypt` wrote, verifies what
`openssl cms -sign` and `gpgsm --sign` signed, adds X-Mailseal-Info-*
fields, and reports a signature as the sender's only under the rule of
docs/smime.md (whole message, valid, From = signer, trusted).
"""
import base64
import re

import pytest

from engine_common import GpgSM, canon, canon8, net, send_raw  # noqa
from engine_pki import (BODIES, b64, fields, head_of, header, leaves,
                        make_pki, remove_pki, run, setup_store)

OUTER = ("From: Sam <sam@remote.test>\r\nTo: <alice@example.com>\r\n"
         "Subject: {subject}\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
         "Message-ID: <in-test@remote.test>\r\n")


@pytest.fixture(scope="module")
def pki():
    k = make_pki("engine-in-")
    k.alice = k.leaf("alice", "alice@example.com")           # internal
    k.ian = k.leaf("ian", "ian@example.com", kind="ec")      # internal
    k.sam = k.leaf("sam", "sam@remote.test")                 # a signer
    k.nokey = k.leaf("nokey", "alice@example.com")  # key not in the store
    # A signer no stored root vouches for.
    k.mallory_key = k.p("mallory.key")
    k.mallory = k.p("mallory.pem")
    run("openssl", "req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes",
        "-keyout", k.mallory_key, "-out", k.mallory, "-subj", "/CN=Sam",
        "-days", "30", "-addext", "subjectAltName=email:sam@remote.test",
        "-addext", "basicConstraints=critical,CA:FALSE",
        "-addext", "keyUsage=critical,digitalSignature,keyEncipherment",
        "-addext", "extendedKeyUsage=emailProtection")
    yield k
    remove_pki(k)


@pytest.fixture(scope="module")
def gpg(pki):
    g = GpgSM(pki, pki.alice, pki.sam)
    yield g
    g.close()


@pytest.fixture
def gw(make_gateway, net, pki):
    g = make_gateway(start=False, **net.params)
    setup_store(g, pki, keys=[pki.alice, pki.ian])
    g.ctl("domain", "add", "example.com")
    g.ctl("domain", "set", "example.com", "locality", "internal")
    return g


def write(pki, name, data):
    p = pki.p(name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def entity(msg):
    """What a sender encrypts or signs: the canonical inner entity."""
    return canon(msg)


def encrypt(pki, msg, certs, cipher="-aes-256-cbc", subject="enc"):
    return run("openssl", "cms", "-encrypt", "-binary", cipher, "-in",
               write(pki, "ent.txt", entity(msg)), "-from",
               "sam@remote.test", "-to", "alice@example.com", "-subject",
               subject, "-crlfeol", *certs).stdout


def sign(pki, msg, cert, key, detached=True, subject="signed",
         sender="sam@remote.test"):
    args = ["openssl", "cms", "-sign", "-binary", "-in",
            write(pki, "sig.txt", entity(msg)), "-signer", cert, "-inkey",
            key, "-from", f"Sam <{sender}>", "-to", "alice@example.com",
            "-subject", subject, "-crlfeol"]
    if not detached:
        args.append("-nodetach")
    return run(*args).stdout


def crlf(data):
    return re.sub(rb"\r?\n", b"\r\n", data)


def deliver(gw, net, data, subject, rcpt="alice@example.com"):
    send_raw(gw.port, "sam@remote.test", [rcpt], crlf(data))
    return net.find(rcpt, subject)


def body_of(data):
    return data.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize("cipher", ["-aes-128-cbc", "-aes-256-cbc",
                                    "-aes-256-gcm"])
def test_decrypt_openssl(gw, net, pki, cipher):
    gw.start()
    for name, body in sorted(BODIES.items()):
        msg = header("sam@remote.test", "alice@example.com", "x") + body
        subject = f"{cipher} {name}"
        out = deliver(gw, net, encrypt(pki, msg, [pki.alice.cert], cipher,
                                       subject), subject)
        info = fields(out)
        assert info["X-Mailseal-Info-SMIME-Encrypted"] == "yes"
        auth = " (authenticated)" if "gcm" in cipher else ""
        assert info["X-Mailseal-Info-Encryption-Algorithm"] == \
            cipher[1:] + auth
        assert "pkcs7" not in head_of(out)
        assert leaves(out) == leaves(msg)
        # Rebuilt as clean MIME: the entity in its 8-bit canonical form.
        assert body_of(out) == body_of(canon8(entity(msg)))
    assert "action=decrypt to=<alice@example.com> key=sha256:" + \
        pki.alice.fpr[:16] in gw.log()


def test_decrypt_gpgsm_and_ec(gw, net, pki, gpg):
    gw.start()
    msg = header("sam@remote.test", "alice@example.com", "x") + \
        BODIES["alternative"]
    der = gpg("--encrypt", "-r", "alice@example.com", "--output", "-",
              write(pki, "g.ent", entity(msg))).stdout
    wrapped = (OUTER.format(subject="from gpgsm").encode() +
               b"MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime;"
               b" smime-type=enveloped-data; name=smime.p7m\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(der))
    out = deliver(gw, net, wrapped, "from gpgsm")
    assert fields(out)["X-Mailseal-Info-Encryption-Algorithm"] == \
        "aes-128-cbc"
    assert leaves(out) == leaves(msg)
    # ECDH to an EC key (ian).
    out = deliver(gw, net, encrypt(pki, msg, [pki.ian.cert],
                                   subject="to ian"), "to ian",
                  rcpt="ian@example.com")
    assert leaves(out) == leaves(msg)
    assert re.search(r"action=decrypt to=<ian@example.com> key=sha256:"
                     + pki.ian.fpr[:16] + " cipher=aes-256-cbc", gw.log())


@pytest.mark.parametrize("detached", [True, False])
def test_verify_openssl(gw, net, pki, detached):
    gw.start()
    msg = header("sam@remote.test", "alice@example.com", "x") + \
        BODIES["8bit-latin1"]
    signed = sign(pki, msg, pki.sam.cert, pki.sam.key, detached,
                  subject="signed")
    out = deliver(gw, net, signed, "signed")
    assert fields(out) == {
        "X-Mailseal-Info-SMIME-Signed": "yes",
        "X-Mailseal-Info-Signer-Email": "sam@remote.test",
        "X-Mailseal-Info-Signer-Verified": "yes",
        "X-Mailseal-Info-Signer-Trusted": "yes",
    }
    # The signature is left in place and still verifies.
    v = run("openssl", "cms", "-verify", "-in", write(pki, "v.eml", out),
            "-CAfile", pki.cafile)
    assert leaves(v.stdout) == leaves(msg)
    assert re.search(r"action=verify to=<alice@example.com> "
                     r"signer=<sam@remote.test> verified=yes trusted=yes",
                     gw.log())


def test_verify_gpgsm(gw, net, pki, gpg):
    gw.start()
    msg = header("sam@remote.test", "alice@example.com", "x") + \
        BODIES["alternative"]
    ent = write(pki, "g2.ent", entity(msg))
    der = gpg("--sign", "-u", "sam@remote.test", "--output", "-", ent).stdout
    opaque = (OUTER.format(subject="gpgsm opaque").encode() +
              b"MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime;"
              b" smime-type=signed-data; name=smime.p7m\r\n"
              b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(der))
    out = deliver(gw, net, opaque, "gpgsm opaque")
    assert fields(out)["X-Mailseal-Info-Signer-Verified"] == "yes"
    sig = gpg("--detach-sign", "-u", "sam@remote.test", "--output", "-",
              ent).stdout
    detached = (OUTER.format(subject="gpgsm detached").encode() +
                b"MIME-Version: 1.0\r\nContent-Type: multipart/signed; "
                b"protocol=\"application/pkcs7-signature\"; micalg=sha-256;"
                b" boundary=\"gb\"\r\n\r\n--gb\r\n" + entity(msg) +
                b"\r\n--gb\r\nContent-Type: application/pkcs7-signature\r\n"
                b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(sig) +
                b"--gb--\r\n")
    out = deliver(gw, net, detached, "gpgsm detached")
    info = fields(out)
    assert info["X-Mailseal-Info-Signer-Verified"] == "yes"
    assert info["X-Mailseal-Info-Signer-Email"] == "sam@remote.test"


def test_signed_then_encrypted(gw, net, pki):
    gw.start()
    msg = header("sam@remote.test", "alice@example.com", "x") + BODIES["qp"]
    signed = crlf(sign(pki, msg, pki.sam.cert, pki.sam.key))
    inner = signed[signed.index(b"MIME-Version"):]
    enc = run("openssl", "cms", "-encrypt", "-binary", "-aes-256-gcm",
              "-in", write(pki, "se.txt", inner), "-from",
              "Sam <sam@remote.test>", "-subject", "sign then encrypt",
              "-crlfeol", pki.alice.cert).stdout
    out = deliver(gw, net, enc, "sign then encrypt")
    info = fields(out)
    assert info["X-Mailseal-Info-SMIME-Encrypted"] == "yes"
    assert info["X-Mailseal-Info-Signer-Verified"] == "yes"
    assert "multipart/signed" in head_of(out)
    assert re.search(r"action=decrypt\+verify to=<alice@example.com> "
                     r"key=\S+ cipher=aes-256-gcm signer=<sam@remote.test> "
                     r"verified=yes trusted=yes queued as", gw.log())


def test_signatures_not_the_senders(gw, net, pki):
    """Johnny, you are fired: no signature counts as the sender's unless
    it covers the whole message, names the From address and is trusted."""
    gw.start()
    msg = header("sam@remote.test", "alice@example.com", "x") + BODIES["qp"]
    good = crlf(sign(pki, msg, pki.sam.cert, pki.sam.key, subject="w"))
    # Wrapped beside unsigned text, and forwarded as message/rfc822.
    head, body = good.split(b"\r\n\r\n", 1)
    ctype = re.search(rb"Content-Type: multipart/signed;.*?\r\n(?=\S)",
                      head + b"\r\nX", re.S).group(0)
    wrapped = (OUTER.format(subject="wrapped").encode() +
               b"MIME-Version: 1.0\r\n"
               b"Content-Type: multipart/mixed; boundary=w\r\n\r\n"
               b"--w\r\nContent-Type: text/plain\r\n\r\nYou are fired.\r\n"
               b"--w\r\n" + ctype + b"\r\n" + body + b"\r\n--w--\r\n")
    forwarded = (OUTER.format(subject="forwarded").encode() +
                 b"MIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n"
                 + good)
    for data, subject in ((wrapped, "wrapped"), (forwarded, "forwarded")):
        out = deliver(gw, net, data, subject)
        assert fields(out) == {}
    # Whole and valid, but From is somebody else.
    boss = crlf(sign(pki, msg, pki.sam.cert, pki.sam.key, subject="boss",
                     sender="boss@remote.test"))
    out = deliver(gw, net, boss, "boss")
    info = fields(out)
    assert info["X-Mailseal-Info-Signer-Verified"] == \
        "no (the signer is not the From address)"
    assert info["X-Mailseal-Info-Signer-Trusted"] == "yes"
    # Valid, From = signer, but no trusted root vouches for the signer.
    self_signed = crlf(sign(pki, msg, pki.mallory, pki.mallory_key,
                            subject="untrusted"))
    out = deliver(gw, net, self_signed, "untrusted")
    info = fields(out)
    assert info["X-Mailseal-Info-Signer-Verified"] == \
        "no (the signer's certificate is not trusted)"
    assert info["X-Mailseal-Info-Signer-Trusted"].startswith("no (untrusted")
    # A changed octet of the signed content.
    tampered = good.replace(b"Subject: w", b"Subject: tampered").replace(
        b"soft=", b"SOFT=")
    out = deliver(gw, net, tampered, "tampered")
    assert fields(out)["X-Mailseal-Info-Signer-Verified"].startswith("no (")
    assert "X-Mailseal-Info-Signer-Email" not in fields(out)


def test_spoofed_info_fields_removed(gw, net, pki):
    gw.start()
    spoof = (b"X-Mailseal-Info-Signer-Verified: yes\r\n"
             b"x-mailseal-info-SMIME-Encrypted:\r\n yes\r\n")
    msg = spoof + header("sam@remote.test", "alice@example.com",
                         "spoofed") + BODIES["8bit-utf8"]
    qid = send_raw(gw.port, "sam@remote.test",
                   ["alice@example.com", "zed@remote.test"], msg)
    gw.wait_log(rf"{qid}: engine=smime action=none to=<alice@example.com>,"
                r"<zed@remote.test> \(.*; X-Mailseal-Info fields removed\) "
                r"queued as")
    for rcpt in ("alice@example.com", "zed@remote.test"):
        out = net.find(rcpt, "spoofed")
        assert b"mailseal-info" not in out.lower()
        assert body_of(out) == body_of(msg)
    # Signed and spoofed: ours replace theirs.
    plain = header("sam@remote.test", "alice@example.com", "x") + \
        BODIES["qp"]
    signed = crlf(sign(pki, plain, pki.mallory, pki.mallory_key,
                       subject="spoofed2"))
    out = deliver(gw, net, spoof + signed, "spoofed2")
    assert fields(out)["X-Mailseal-Info-Signer-Verified"].startswith("no")
    assert head_of(out).lower().count("x-mailseal-info-signer-verified") == 1


def test_cannot_decrypt(gw, net, pki):
    gw.start()
    msg = header("sam@remote.test", "alice@example.com", "x") + BODIES["qp"]
    # To a certificate whose key is not in the store.
    enc = crlf(encrypt(pki, msg, [pki.nokey.cert], subject="no key"))
    out = deliver(gw, net, enc, "no key")
    assert fields(out) == {"X-Mailseal-Info-SMIME-Encrypted": "yes",
                           "X-Mailseal-Info-Decryption-Key-Not-Found": "yes"}
    # Delivered as it came.
    assert body_of(out) == body_of(enc)
    # A changed encrypted key: the key does not decrypt it.
    enc = crlf(encrypt(pki, msg, [pki.alice.cert], subject="no key"))
    head, body = enc.split(b"\r\n\r\n", 1)
    der = bytearray(base64.b64decode(body))
    der[200] ^= 1
    bad = head.replace(b"Subject: no key", b"Subject: corrupt") + \
        b"\r\n\r\n" + b64(bytes(der))
    out = deliver(gw, net, bad, "corrupt")
    info = fields(out)
    assert info["X-Mailseal-Info-Decryption-Failed"] == \
        "the private key does not decrypt the message key"
    assert body_of(out) == body_of(bad)
    assert re.search(r"action=decrypt-failed to=<alice@example.com> "
                     r"\(no private key for any recipient: delivered as "
                     r"received\)", gw.log())


def test_smime_strict(gw, net, pki):
    """ian's key opens a message to alice unless alice is strict."""
    gw.start()
    msg = header("sam@remote.test", "alice@example.com", "x") + BODIES["qp"]
    enc = crlf(encrypt(pki, msg, [pki.ian.cert], subject="any key"))
    out = deliver(gw, net, enc, "any key")
    assert fields(out)["X-Mailseal-Info-SMIME-Encrypted"] == "yes"
    assert leaves(out) == leaves(msg)
    gw.ctl("user", "add", "alice@example.com")
    gw.ctl("user", "set", "alice@example.com", "smime_strict", "yes")
    enc = crlf(encrypt(pki, msg, [pki.ian.cert], subject="strict"))
    out = deliver(gw, net, enc, "strict")
    assert fields(out)["X-Mailseal-Info-Decryption-Key-Not-Found"] == "yes"
    # Her own key still works.
    enc = crlf(encrypt(pki, msg, [pki.alice.cert], subject="own key"))
    out = deliver(gw, net, enc, "own key")
    assert leaves(out) == leaves(msg)


def test_auto_import_and_no_info(gw, net, pki):
    gw.ctl("domain", "set", "example.com", "add_security_info", "no")
    gw.start()
    assert "sam@remote.test" not in gw.ctl("cert", "list").stdout
    msg = header("sam@remote.test", "alice@example.com", "x") + BODIES["qp"]
    signed = crlf(sign(pki, msg, pki.sam.cert, pki.sam.key,
                       subject="import"))
    out = deliver(gw, net, signed, "import")
    # No info fields asked for: delivered as it came.
    assert fields(out) == {} and body_of(out) == body_of(signed)
    gw.wait_log(r"engine=smime imported 1 certificate of the signer")
    listed = gw.ctl("cert", "list", "--email", "sam@remote.test").stdout
    assert "CN=sam" in listed
    # Decrypted without info fields too.
    enc = crlf(encrypt(pki, msg, [pki.alice.cert], subject="quiet"))
    out = deliver(gw, net, enc, "quiet")
    assert fields(out) == {} and leaves(out) == leaves(msg)
    # The imported certificate encrypts outgoing mail to sam.
    out_msg = header("alice@example.com", "sam@remote.test", "reply") + \
        BODIES["qp"]
    qid = send_raw(gw.port, "alice@example.com", ["sam@remote.test"],
                   out_msg)
    gw.wait_log(rf"{qid}: engine=smime action=encrypt to=<sam@remote.test> "
                rf"cert=sha256:{pki.sam.fpr[:16]}")
