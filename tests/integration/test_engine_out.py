"""Outgoing mail through the whole daemon: what the sink receives is
decrypted and verified by `openssl cms` and by `gpgsm`.

Certificates come from the openssl command (engine_pki.py). The decrypted
inner entity is compared byte for byte with the canonical form of what
was sent (RFC 8551 3.1), and its decoded parts with Python's own parse.
gpgsm 2.2 (Debian 12) reads neither authEnveloped-data (GCM) nor
RSA-OAEP: those are checked with openssl only.
"""
import base64
import os
import re

import pytest

from engine_common import GpgSM, canon, net, send_raw  # noqa: F401
from engine_pki import (BODIES, fields, head_of, header, leaves, make_pki,
                        parse, remove_pki, run, setup_store)


@pytest.fixture(scope="module")
def pki():
    k = make_pki("engine-out-")
    k.bob = k.leaf("bob", "bob@remote.test")            # RSA-2048
    k.carol = k.leaf("carol", "carol@partner.test", kind="ec")
    k.alice = k.leaf("alice", "alice@example.com")      # internal sender
    k.escrow = k.leaf("escrow", "escrow@example.com")   # key escrow
    yield k
    remove_pki(k)


@pytest.fixture(scope="module")
def gpg(pki):
    g = GpgSM(pki, pki.bob)
    yield g
    g.close()


@pytest.fixture
def gw(make_gateway, net, pki):
    g = make_gateway(start=False, **net.params)
    setup_store(g, pki, certs=[pki.bob, pki.carol, pki.escrow],
                keys=[pki.alice])
    g.ctl("domain", "add", "example.com")
    g.ctl("domain", "set", "example.com", "locality", "internal")
    return g


def write(pki, name, data):
    p = pki.p(name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def decrypt(pki, data, who, name="out.eml"):
    f = write(pki, name, data)
    return run("openssl", "cms", "-decrypt", "-in", f, "-recip", who.cert,
               "-inkey", who.key).stdout


def message(subject, body="8bit-utf8", to="bob@remote.test"):
    return header("alice@example.com", to, subject) + BODIES[body]


@pytest.mark.parametrize("body", sorted(BODIES))
def test_encrypt_openssl_and_gpgsm_decrypt(gw, net, pki, gpg, body):
    gw.start()
    msg = message(f"encrypted {body}", body)
    qid = send_raw(gw.port, "alice@example.com", ["bob@remote.test"], msg)
    m = gw.wait_log(rf"{qid}: engine=smime action=encrypt "
                    rf"to=<bob@remote.test> cert=sha256:{pki.bob.fpr[:16]} "
                    rf"cipher=aes256-cbc queued as (\w+)")
    gw.wait_log(rf"{m.group(1)}: to=<bob@remote.test>, .*status=sent")
    env, data = net.for_rcpt("bob@remote.test")[0]
    head = head_of(data)
    # RFC 8551 3.1: the outer fields stay, Content-* move inside.
    assert f"Subject: encrypted {body}" in head
    assert "Message-ID: <engine-test@example.com>" in head
    assert re.search(r"Content-Type: application/pkcs7-mime;\s+"
                     r"smime-type=enveloped-data; name=smime.p7m", head)
    assert max(data) < 0x80
    inner = decrypt(pki, data, pki.bob)
    assert inner == canon(msg)
    assert leaves(inner) == leaves(msg)
    # gpgsm reads the DER of the body.
    der = base64.b64decode(data.split(b"\r\n\r\n", 1)[1])
    d = gpg("--decrypt", write(pki, "g.der", der))
    assert d.stdout == canon(msg)


def test_sign_and_encrypt(gw, net, pki, gpg):
    gw.ctl("user", "add", "alice@example.com")
    gw.ctl("user", "set", "alice@example.com", "sign_mode", "always")
    gw.start()
    msg = message("signed and encrypted", "alternative")
    qid = send_raw(gw.port, "alice@example.com", ["bob@remote.test"], msg)
    gw.wait_log(rf"{qid}: engine=smime action=sign\+encrypt "
                rf"to=<bob@remote.test> cert=sha256:{pki.bob.fpr[:16]} "
                rf"cipher=aes256-cbc signer=sha256:{pki.alice.fpr[:16]} "
                r"queued as \w+")
    env, data = net.for_rcpt("bob@remote.test")[0]
    inner = decrypt(pki, data, pki.bob)
    # RFC 8551 3.6: signed first, then encrypted.
    assert re.match(rb'Content-Type: multipart/signed;\s+protocol="'
                    rb'application/pkcs7-signature";\s+micalg=sha-256', inner)
    v = run("openssl", "cms", "-verify", "-in", write(pki, "in.eml", inner),
            "-CAfile", pki.cafile, "-purpose", "smimesign")
    assert v.stdout == canon(msg)
    assert leaves(v.stdout) == leaves(msg)
    # gpgsm: the detached signature over the signed entity.
    boundary = re.search(rb'boundary="([^"]+)"', inner).group(1)
    first = inner.index(b"--" + boundary + b"\r\n") + len(boundary) + 4
    entity = inner[first:inner.index(b"\r\n--" + boundary, first)]
    sigpart = inner.split(b"\r\n--" + boundary)[2]
    sig = base64.b64decode(sigpart.split(b"\r\n\r\n", 1)[1])
    g = gpg("--verify", write(pki, "g.sig", sig), write(pki, "g.ent", entity))
    assert b"Good signature" in g.stderr, g.stderr
    # The SMIMECapabilities attribute (made once per engine, not per
    # message) lists what OpenSSL's own signer lists.
    def capabilities(der_file):
        info = run("openssl", "cms", "-cmsout", "-print", "-inform", "DER",
                   "-in", der_file).stdout
        caps = info.split(b"S/MIME Capabilities", 1)[1]
        return re.findall(rb"OBJECT +:(\S+)|INTEGER +:(\S+)",
                          caps.split(b"signatureAlgorithm", 1)[0])
    ours = capabilities(write(pki, "g.sig", sig))
    run("openssl", "cms", "-sign", "-binary", "-outform", "DER",
        "-in", write(pki, "o.txt", b"x"), "-signer", pki.alice.cert,
        "-inkey", pki.alice.key, "-out", pki.p("o.der"))
    assert ours == capabilities(pki.p("o.der"))
    assert (b"aes-256-cbc", b"") in ours
    d = gpg("--decrypt", write(pki, "g2.der", base64.b64decode(
        data.split(b"\r\n\r\n", 1)[1])))
    assert d.stdout == inner


def test_gcm_oaep_ec(gw, net, pki):
    """authEnveloped-data with RSA-OAEP, and ECDH to an EC recipient."""
    gw.ctl("user", "add", "bob@remote.test")
    gw.ctl("user", "set", "bob@remote.test", "smime_encryption_algorithm",
           "aes256-gcm")
    gw.ctl("user", "set", "bob@remote.test", "rsa_oaep", "yes")
    gw.ctl("domain", "add", "partner.test")
    gw.ctl("domain", "set", "partner.test", "smime_encryption_algorithm",
           "aes128-cbc")
    gw.start()
    msg = message("gcm", "qp")
    qid = send_raw(gw.port, "alice@example.com",
                   ["bob@remote.test", "carol@partner.test"], msg)
    gw.wait_log(rf"{qid}: engine=smime action=encrypt to=<bob@remote.test> "
                r".*cipher=aes256-gcm rsa_oaep=yes queued as")
    gw.wait_log(rf"{qid}: engine=smime action=encrypt "
                r"to=<carol@partner.test> .*cipher=aes128-cbc queued as")
    env, data = net.for_rcpt("bob@remote.test")[0]
    assert "smime-type=authEnveloped-data" in head_of(data)
    f = write(pki, "gcm.eml", data)
    info = run("openssl", "cms", "-cmsout", "-print", "-in", f).stdout
    assert b"rsaesOaep" in info and b"id-smime-ct-authEnvelopedData" in info
    assert decrypt(pki, data, pki.bob) == canon(msg)
    env, data = net.for_rcpt("carol@partner.test")[0]
    assert decrypt(pki, data, pki.carol) == canon(msg)
    # Two recipients with different outcomes: two envelopes.
    assert net.rcpts_of() == [["bob@remote.test"], ["carol@partner.test"]]


def test_additional_certificates(gw, net, pki):
    """Key escrow: every message to the domain is also encrypted to the
    escrow certificate, inherited from the domain level."""
    gw.ctl("domain", "add", "remote.test")
    gw.ctl("domain", "set", "remote.test", "additional_certificates",
           pki.escrow.fpr)
    gw.start()
    msg = message("escrow", "base64")
    qid = send_raw(gw.port, "alice@example.com", ["bob@remote.test"], msg)
    gw.wait_log(rf"{qid}: engine=smime action=encrypt to=<bob@remote.test> "
                rf"cert=sha256:{pki.bob.fpr[:16]},"
                rf"sha256:{pki.escrow.fpr[:16]} ")
    env, data = net.for_rcpt("bob@remote.test")[0]
    assert decrypt(pki, data, pki.bob) == canon(msg)
    assert decrypt(pki, data, pki.escrow) == canon(msg)


def test_sign_only(gw, net, pki, gpg):
    """sign_mode always without a recipient certificate: signed, clear."""
    gw.ctl("user", "add", "alice@example.com")
    gw.ctl("user", "set", "alice@example.com", "sign_mode", "always")
    gw.start()
    msg = message("signed only", "8bit-latin1", to="zed@nowhere.test")
    qid = send_raw(gw.port, "alice@example.com", ["zed@nowhere.test"], msg)
    gw.wait_log(rf"{qid}: engine=smime action=sign to=<zed@nowhere.test> "
                rf"signer=sha256:{pki.alice.fpr[:16]} queued as")
    env, data = net.for_rcpt("zed@nowhere.test")[0]
    assert re.search(r'Content-Type: multipart/signed;\s+protocol="'
                     r'application/pkcs7-signature"', head_of(data))
    v = run("openssl", "cms", "-verify", "-in", write(pki, "so.eml", data),
            "-CAfile", pki.cafile, "-purpose", "smimesign")
    assert v.stdout == canon(msg)
    # 7-bit: the ISO-8859-1 text became quoted-printable to be signed.
    assert max(data) < 0x80 and leaves(v.stdout) == leaves(msg)


def test_plain_relay_not_copied(gw, net, pki):
    """Nothing changes for anybody: the original is delivered, no copy."""
    gw.ctl("global", "set", "encrypt_mode", "no_encryption")
    gw.start()
    msg = message("plain", "8bit-utf8")
    qid = send_raw(gw.port, "alice@example.com", ["bob@remote.test"], msg)
    gw.wait_log(rf"{qid}: engine=smime action=none to=<bob@remote.test> "
                r"\(encrypt_mode no_encryption\)")
    gw.wait_log(rf"{qid}: to=<bob@remote.test>, .*status=sent")
    env, data = net.for_rcpt("bob@remote.test")[0]
    assert msg in data
    assert "queued as" not in gw.log().split(f"{qid}: engine=smime")[1]
    # The parsed message is the same.
    assert parse(data)["Subject"] == "plain"
    assert fields(data) == {}
