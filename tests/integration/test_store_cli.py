"""The policy and key store through mailsealctl, and the daemon's master key.

Certificates, keys, PKCS#12 files and CRLs are made by the openssl command
(an outside implementation): a root, an intermediate, and leaves issued
with `openssl ca`, so that validity periods in the past and revocation are
real.
"""
import json
import os
import pwd
import re
import sqlite3
import stat
import subprocess

import pytest

from conftest import MAILSEALCTL, MAILSEALD
from engine_pki import make_pki, remove_pki

def run(*args, env=None, input=None):
    r = subprocess.run(list(args), capture_output=True, env=env, input=input,
                       timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: {r.stderr.decode()}")
    return r.stdout


def fingerprint(pem):
    out = run("openssl", "x509", "-in", pem, "-noout", "-fingerprint",
              "-sha256").decode()
    return out.split("=", 1)[1].strip().replace(":", "").lower()


@pytest.fixture(scope="module")
def pki():
    # World-searchable (make_pki), like the gateways' directories: the
    # mailseal user reads a certificate from here in one test.
    pki = make_pki(prefix="pki-")

    def issue(*args, **kw):
        lf = pki.leaf(*args, **kw)
        return lf.cert, lf.key

    pki.alice = issue("alice", "alice@remote.test")
    pki.bob = issue("bob", "bob@remote.test", kind="ec")
    pki.carol = issue("carol", "carol@partner.test", kind="ec")
    pki.old = issue("old", "old@remote.test", kind="ec",
                    start="20200101000000Z", end="20200601000000Z")
    mallory = pki.leaf("mallory", "mallory@remote.test", kind="ec")
    pki.mallory = mallory.cert, mallory.key
    pki.crl = pki.revoke(mallory)
    # alice as PKCS#12 with the chain; bob's key as encrypted PKCS#8.
    with open(pki.p("pw"), "w") as f:
        f.write("p12 secret\n")
    run("openssl", "pkcs12", "-export", "-in", pki.alice[0], "-inkey",
        pki.alice[1], "-certfile", pki.p("inter.pem"), "-out",
        pki.p("alice.p12"), "-passout", "file:" + pki.p("pw"))
    run("openssl", "pkcs8", "-topk8", "-in", pki.bob[1], "-out",
        pki.p("bob-enc.pem"), "-passout", "file:" + pki.p("pw"))
    run("openssl", "x509", "-in", pki.carol[0], "-outform", "DER", "-out",
        pki.p("carol.der"))
    run("openssl", "crl2pkcs7", "-nocrl", "-certfile", pki.old[0],
        "-certfile", pki.mallory[0], "-out", pki.p("bundle.p7b"))
    # A self-signed leaf that no root vouches for.
    run("openssl", "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt",
        "ec_paramgen_curve:P-256", "-nodes", "-keyout", pki.p("self.key"),
        "-out", pki.p("self.pem"), "-subj", "/CN=Self",
        "-addext", "subjectAltName=email:self@else.test",
        "-addext", "basicConstraints=critical,CA:FALSE",
        "-addext", "keyUsage=digitalSignature,keyAgreement")
    yield pki
    remove_pki(pki)


@pytest.fixture
def gw(make_gateway):
    """A configuration whose daemon is not running: mailsealctl alone."""
    return make_gateway(start=False)


def ok(gw, *args, input=None):
    return gw.ctl(*args, input=input).stdout


def fails(gw, *args, code=1):
    r = gw.ctl(*args, check=False)
    assert r.returncode == code, (args, r.returncode, r.stdout, r.stderr)
    return r.stderr


def effective(gw, email):
    """{property: (value, level, source)} from user show --json."""
    j = json.loads(ok(gw, "user", "show", email, "--json"))
    return {k: (v["value"], v["level"], v["source"])
            for k, v in j["properties"].items()}, j


def test_policy_round_trip(gw):
    ok(gw, "domain", "add", "Example.COM")
    ok(gw, "domain", "add", "*.example.com")
    assert ok(gw, "domain", "list").split() == ["*.example.com", "example.com"]
    assert json.loads(ok(gw, "domain", "list", "--json")) == [
        "*.example.com", "example.com"]
    ok(gw, "domain", "set", "example.com", "locality", "internal")
    ok(gw, "domain", "set", "*.example.com", "encrypt_mode", "MANDATORY")
    ok(gw, "global", "set", "sign_mode", "always")
    ok(gw, "user", "add", "Alice@Example.com")
    ok(gw, "user", "add", "zed@other.test")
    assert ok(gw, "user", "list").split() == ["alice@example.com",
                                              "zed@other.test"]
    assert ok(gw, "user", "list", "other").split() == ["zed@other.test"]
    assert json.loads(ok(gw, "user", "list", "--json")) == [
        "alice@example.com", "zed@other.test"]
    ok(gw, "user", "set", "alice@example.com", "comment", "a note")

    props, j = effective(gw, "alice@example.com")
    assert j["record"] is True
    assert props["comment"] == ("a note", "user", "alice@example.com")
    assert props["locality"] == ("internal", "domain", "example.com")
    assert props["sign_mode"] == ("always", "global", None)
    assert props["encrypt_mode"] == ("allow", "default", None)
    # An address without a user record, under the wildcard.
    props, j = effective(gw, "x@sub.example.com")
    assert j["record"] is False
    assert props["encrypt_mode"] == ("mandatory", "wildcard", "*.example.com")
    assert props["locality"] == ("external", "default", None)
    text = ok(gw, "user", "show", "x@sub.example.com")
    assert "user: x@sub.example.com (no user record)" in text
    assert re.search(r"^encrypt_mode\s+mandatory\s+wildcard \*\.example\.com$",
                     text, re.M), text
    assert re.search(r"^sign_mode\s+always\s+global$", text, re.M)
    assert re.search(r"^comment\s+\"\"\s+default$", text, re.M)

    # domain show, global show.
    j = json.loads(ok(gw, "domain", "show", "example.com", "--json"))
    assert j["properties"]["locality"]["level"] == "domain"
    assert "domain: example.com\n" in ok(gw, "domain", "show", "example.com")
    j = json.loads(ok(gw, "global", "show", "--json"))
    assert j["properties"]["sign_mode"] == {"value": "always",
                                            "level": "global",
                                            "source": None}
    assert re.search(r"^locality\s+external\s+default$",
                     ok(gw, "global", "show"), re.M)

    # inherit: back up one level at a time.
    ok(gw, "user", "set", "alice@example.com", "locality", "external")
    assert effective(gw, "alice@example.com")[0]["locality"][1] == "user"
    ok(gw, "user", "inherit", "alice@example.com", "locality")
    assert effective(gw, "alice@example.com")[0]["locality"] == (
        "internal", "domain", "example.com")
    ok(gw, "domain", "inherit", "example.com", "locality")
    ok(gw, "global", "inherit", "sign_mode")
    props = effective(gw, "alice@example.com")[0]
    assert props["locality"] == ("external", "default", None)
    assert props["sign_mode"] == ("never", "default", None)

    # delete takes the level's properties with it.
    ok(gw, "user", "delete", "alice@example.com")
    props, j = effective(gw, "alice@example.com")
    assert j["record"] is False and props["comment"][1] == "default"
    ok(gw, "domain", "delete", "*.example.com")
    assert effective(gw, "x@sub.example.com")[0]["encrypt_mode"][1] == \
        "default"
    assert ok(gw, "domain", "list").split() == ["example.com"]

    # The property table and its documentation.
    names = [p["name"] for p in json.loads(ok(gw, "property", "list",
                                                  "--json"))]
    assert "additional_certificates" in names and "rsa_oaep" in names
    doc = ok(gw, "property", "doc")
    with open(os.path.join(os.path.dirname(__file__),
                           "../../docs/properties.md")) as f:
        assert f.read() == doc


def test_policy_errors(gw):
    ok(gw, "domain", "add", "example.com")
    assert "already exists" in fails(gw, "domain", "add", "example.com")
    assert "not a domain name" in fails(gw, "domain", "add", "exa mple")
    assert "not a domain name" in fails(gw, "domain", "add", "a.*.b")
    assert "no such domain: nope.test" in fails(gw, "domain", "delete",
                                                "nope.test")
    assert "no such domain: nope.test" in fails(
        gw, "domain", "set", "nope.test", "locality", "internal")
    assert ("bad value 'sideways' for locality: must be one of internal, "
            "external") in fails(gw, "domain", "set", "example.com",
                                 "locality", "sideways")
    assert "unknown property 'colour'" in fails(gw, "global", "set", "colour",
                                                "red")
    assert "must be yes or no" in fails(gw, "global", "set", "rsa_oaep", "1")
    assert "fingerprint" in fails(gw, "global", "set",
                                  "additional_certificates", "12ab")
    assert "not an email address" in fails(gw, "user", "add", "nobody")
    assert "no such user" in fails(gw, "user", "set", "x@example.com",
                                   "comment", "x")
    assert "not an email address" in fails(gw, "user", "show", "bad")
    fails(gw, "domain", "set", "example.com", "locality", code=2)
    fails(gw, "user", code=2)
    fails(gw, "global", "add", "x", code=2)
    # Nothing of that changed the store.
    assert effective(gw, "a@example.com")[0]["locality"][1] == "default"


def cert_list(gw, *args):
    return {c["fingerprint"]: c
            for c in json.loads(ok(gw, "cert", "list", "--json", *args))}


def test_cert_round_trip(gw, pki):
    fa, fb, fc = (fingerprint(pki.alice[0]), fingerprint(pki.bob[0]),
                  fingerprint(pki.carol[0]))
    fold, fmal = fingerprint(pki.old[0]), fingerprint(pki.mallory[0])
    froot, finter = fingerprint(pki.p("root.pem")), fingerprint(
        pki.p("inter.pem"))

    out = ok(gw, "root", "import", pki.p("root.pem"))
    assert out == f"added root {froot}: CN=Engine Test Root\n"
    assert "exists root" in ok(gw, "root", "import", pki.p("root.pem"))
    out = ok(gw, "cert", "import", pki.p("alice.p12"), "--password-file",
             pki.p("pw"))
    assert f"added end {fa} with private key: CN=alice" in out
    assert f"added intermediate {finter}: CN=Engine Test Intermediate" in out
    # bob: the certificate, then its encrypted key on its own.
    ok(gw, "cert", "import", pki.bob[0])
    j = json.loads(ok(gw, "cert", "import", pki.p("bob-enc.pem"),
                      "--password-file", pki.p("pw"), "--json"))
    assert j == []  # a key alone adds no certificate...
    assert cert_list(gw)[fb]["has_key"] is True  # ...but is stored with it
    # DER, with a binding; PKCS#7 bundle.
    ok(gw, "cert", "import", pki.p("carol.der"), "--bind", "Partner.test")
    out = ok(gw, "cert", "import", pki.p("bundle.p7b"))
    assert f"added end {fold}" in out and f"added end {fmal}" in out

    certs = cert_list(gw)
    assert set(certs) == {fa, fb, fc, fold, fmal, finter}
    a = certs[fa]
    assert a["emails"] == ["alice@remote.test"]
    assert a["subject"].startswith("CN=alice")
    assert a["status"] == "valid" and a["has_key"] is True
    assert certs[fc]["has_key"] is False
    assert certs[fold]["status"] == "expired"
    assert certs[finter]["kind"] == "intermediate"
    text = ok(gw, "cert", "list")
    assert re.search(rf"^{fa} end +key valid +\d{{4}}-\d\d-\d\d\.\.\d{{4}}"
                     rf"-\d\d-\d\d CN=alice <alice@remote.test>$", text,
                     re.M), text
    assert re.search(rf"^{fold} end +- +expired +2020-01-01\.\.2020-06-01 ",
                     text, re.M)

    # Filters.
    assert set(cert_list(gw, "--email", "ALICE@remote.test")) == {fa}
    assert set(cert_list(gw, "--expired")) == {fold}
    assert set(cert_list(gw, "--with-key")) == {fa, fb}

    # show, export.
    j = json.loads(ok(gw, "cert", "show", fc[:12], "--json"))
    assert j["fingerprint"] == fc and j["bindings"] == ["partner.test"]
    assert j["key_usage"] == ["digitalSignature", "keyAgreement"]
    assert j["encrypt"]["status"] == "valid"
    text = ok(gw, "cert", "show", fa)
    assert "private key: held (sealed)" in text
    assert "for signing: valid" in text
    exported = gw.dir + "/alice-export.pem"
    with open(exported, "w") as f:
        f.write(ok(gw, "cert", "export", fa))
    assert fingerprint(exported) == fa

    # A CRL of the intermediate revokes mallory.
    out = ok(gw, "crl", "import", pki.crl)
    assert re.match(r"added CRL [0-9a-f]{64}: CN=Engine Test Intermediate\n",
                    out), out
    crls = json.loads(ok(gw, "crl", "list", "--json"))
    assert len(crls) == 1 and crls[0]["issuer"] == "CN=Engine Test Intermediate"
    assert crls[0]["number"] == "01"
    assert cert_list(gw)[fmal]["status"] == "revoked"
    assert "keyCompromise" in cert_list(gw)[fmal]["status_detail"]

    # The trust list.
    ok(gw, "ctl", "set", fa, "blacklisted")
    assert cert_list(gw)[fa]["status"] == "blacklisted"
    assert json.loads(ok(gw, "ctl", "list", "--json")) == [
        {"fingerprint": fa, "status": "blacklisted"}]
    ok(gw, "ctl", "unset", fa)
    assert cert_list(gw)[fa]["status"] == "valid"
    ok(gw, "cert", "import", pki.p("self.pem"))
    fself = fingerprint(pki.p("self.pem"))
    assert cert_list(gw)[fself]["status"] == "untrusted"
    ok(gw, "ctl", "set", fself, "whitelisted")
    assert cert_list(gw)[fself]["status"] == "whitelisted"
    assert ok(gw, "ctl", "list") == f"{fself} whitelisted\n"

    # additional_certificates takes stored fingerprints only.
    ok(gw, "global", "set", "additional_certificates", f"{fb}, {fc.upper()}")
    assert effective(gw, "x@y.test")[0]["additional_certificates"] == (
        f"{fb}, {fc}", "global", None)
    assert f"no certificate {'1' * 64} is stored" in fails(
        gw, "global", "set", "additional_certificates", "1" * 64)

    # bind/unbind, delete.
    ok(gw, "cert", "bind", fa, "*.remote.test")
    assert json.loads(ok(gw, "cert", "show", fa, "--json"))["bindings"] == [
        "*.remote.test"]
    ok(gw, "cert", "unbind", fa, "*.remote.test")
    assert ok(gw, "cert", "delete", fa) == f"deleted {fa} and its private key\n"
    assert fa not in cert_list(gw)
    assert "is a root: use root delete" in fails(gw, "cert", "delete", froot)
    roots = json.loads(ok(gw, "root", "list", "--json"))
    assert [r["fingerprint"] for r in roots] == [froot]
    ok(gw, "root", "delete", froot)
    assert json.loads(ok(gw, "root", "list", "--json")) == []
    assert cert_list(gw)[fb]["status"] == "untrusted"
    ok(gw, "crl", "delete", crls[0]["fingerprint"])
    assert json.loads(ok(gw, "crl", "list", "--json")) == []


def test_cert_errors(gw, pki):
    ok(gw, "root", "import", pki.p("root.pem"))
    wrong = gw.dir + "/wrong-pw"
    with open(wrong, "w") as f:
        f.write("not it\n")
    assert "wrong password" in fails(gw, "cert", "import", pki.p("alice.p12"),
                                     "--password-file", wrong)
    assert "a password is needed" in fails(gw, "cert", "import",
                                           pki.p("bob-enc.pem"))
    # A key whose certificate is nowhere: refused, nothing stored.
    assert "matches no certificate" in fails(gw, "cert", "import",
                                             pki.carol[1])
    assert "not a certificate" in fails(gw, "cert", "import", pki.p("ca.cnf"))
    assert "No such file" in fails(gw, "cert", "import", gw.dir + "/none")
    assert "not self-signed" in fails(gw, "root", "import", pki.p("inter.pem"))
    with_key = gw.dir + "/root-and-key.pem"
    with open(with_key, "w") as f:
        f.write(open(pki.p("root.pem")).read() + open(pki.p("root.key")).read())
    assert "certificates only" in fails(gw, "root", "import", with_key)
    # The CRL's issuer is not stored yet.
    assert "import the issuer first" in fails(gw, "crl", "import", pki.crl)
    assert "no certificate" in fails(gw, "cert", "show", "0123456789abcdef")
    assert "at least 8 hex digits" in fails(gw, "cert", "show", "abc")
    assert "whitelisted or blacklisted" in fails(
        gw, "ctl", "set", "0" * 64, "trusted")
    assert "not in the trust list" in fails(gw, "ctl", "unset", "0" * 64)
    assert "nothing to bind" in fails(gw, "cert", "import",
                                      pki.p("inter.pem"), "--bind",
                                      "x@remote.test")
    fails(gw, "cert", "import", code=2)
    fails(gw, "cert", "list", "--bogus", code=2)
    assert json.loads(ok(gw, "cert", "list", "--json")) == []


def hex_field(text, label):
    """The bytes of a hex block such as 'priv:' in openssl -text output."""
    m = re.search(rf"^{label}:?\s*\n((?:\s+[0-9a-f:]+\n)+)", text, re.M)
    assert m, label
    data = bytes.fromhex(re.sub(r"[\s:]", "", m.group(1)))
    return data.lstrip(b"\0")


def secrets_of(key_pem):
    """What must not appear: PEM body lines, DER, the private numbers."""
    pkcs8 = run("openssl", "pkey", "-in", key_pem).decode()
    der = run("openssl", "pkey", "-in", key_pem, "-outform", "DER")
    text = run("openssl", "pkey", "-in", key_pem, "-noout", "-text").decode()
    found = {"der": der}
    lines = [l for l in pkcs8.splitlines() if not l.startswith("-----")]
    for i, l in enumerate(lines[:-1]):
        found[f"pem line {i}"] = l.encode()
    if "privateExponent" in text:
        for label in ("privateExponent", "prime1", "prime2"):
            found[label] = hex_field(text, label)
    else:
        found["priv"] = hex_field(text, "priv")
    return found


def files_under(*dirs):
    for d in dirs:
        for root, _, names in os.walk(d):
            for n in names:
                yield os.path.join(root, n)


def test_no_private_key_unencrypted_on_disk(make_gateway, pki, smtp):
    gw = make_gateway()
    data = gw.params["data_directory"]
    store = gw.params["store"][len("sqlite:"):]
    # A reader keeps the WAL from being checkpointed away: it is searched
    # as it was written.
    db = sqlite3.connect(store)
    db.execute("SELECT count(*) FROM certificates").fetchone()
    try:
        ok(gw, "root", "import", pki.p("root.pem"))
        ok(gw, "cert", "import", pki.p("alice.p12"), "--password-file",
           pki.p("pw"))
        ok(gw, "cert", "import", pki.bob[0])
        ok(gw, "cert", "import", pki.p("bob-enc.pem"), "--password-file",
           pki.p("pw"))
        # Some mail through the spool too.
        c = smtp(gw.port)
        c.cmd("EHLO t")
        c.cmd("MAIL FROM:<a@example.com>")
        c.cmd("RCPT TO:<b@example.com>")
        c.cmd("DATA")
        c.send("Subject: x\r\n\r\nhello\r\n.\r\n")
        assert c.reply().startswith("250")
        keys = {"alice (PKCS#12, RSA)": secrets_of(pki.alice[1]),
                "bob (PKCS#8, EC)": secrets_of(pki.bob[1])}
        files = [f for f in files_under(data, gw.params["queue_directory"])
                 if not f.endswith("/master.key")
                 and not stat.S_ISSOCK(os.lstat(f).st_mode)]
        assert store in files and store + "-wal" in files, files
        blobs = {}
        for f in files:
            with open(f, "rb") as fh:
                blobs[f] = fh.read()
        # The search finds what is there: the public certificate is.
        cert_der = run("openssl", "x509", "-in", pki.alice[0], "-outform",
                       "DER")
        assert any(cert_der in b for b in blobs.values())
        for who, secrets in keys.items():
            for what, needle in secrets.items():
                assert len(needle) >= 20, (who, what)
                for f, b in blobs.items():
                    assert needle not in b, f"{who}: {what} found in {f}"
    finally:
        db.close()
    # And the keys are usable: stored sealed, with their certificates.
    assert {c["emails"][0] for c in json.loads(ok(
        gw, "cert", "list", "--with-key", "--json"))} == {
        "alice@remote.test", "bob@remote.test"}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_master_key_made_by_daemon_root_only(make_gateway, pki):
    gw = make_gateway()
    data = gw.params["data_directory"]
    key = os.path.join(data, "master.key")
    store = gw.params["store"][len("sqlite:"):]
    owner = pwd.getpwnam("mailseal")
    st = os.stat(key)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
    assert st.st_size == 32
    st = os.stat(store)
    assert st.st_uid == owner.pw_uid and stat.S_IMODE(st.st_mode) == 0o600
    assert re.search(r"made a new master key in .*master\.key", gw.log())
    with open(key, "rb") as f:
        first = f.read()

    # The unprivileged user cannot read it, nor use mailsealctl for keys;
    # public certificates it may import.
    r = subprocess.run(["runuser", "-u", "mailseal", "--", "cat", key],
                       capture_output=True)
    assert r.returncode != 0
    for f in ("alice.p12", "pw"):
        os.chmod(pki.p(f), 0o644)
    r = subprocess.run(["runuser", "-u", "mailseal", "--", MAILSEALCTL, "-c",
                        gw.conf, "cert", "import", pki.p("alice.p12"),
                        "--password-file", pki.p("pw")], capture_output=True)
    assert r.returncode == 1
    assert b"master key" in r.stderr and b"run mailsealctl as root" in \
        r.stderr, r.stderr
    r = subprocess.run(["runuser", "-u", "mailseal", "--", MAILSEALCTL, "-c",
                        gw.conf, "cert", "import", pki.carol[0]],
                       capture_output=True)
    assert r.returncode == 0, r.stderr

    # Root stores a key; a restart keeps the same master key.
    ok(gw, "cert", "import", pki.p("alice.p12"), "--password-file",
       pki.p("pw"))
    gw.stop()
    gw.start()
    with open(key, "rb") as f:
        assert f.read() == first

    # A lost key file is not silently replaced: the daemon refuses.
    gw.stop()
    os.rename(key, key + ".bak")
    r = subprocess.run([MAILSEALD, "-f", "-c", gw.conf], capture_output=True,
                       timeout=30)
    assert r.returncode != 0
    assert b"is missing, but the store holds keys" in r.stderr, r.stderr
    assert not os.path.exists(key)
    # A key file that others can read is refused too.
    os.rename(key + ".bak", key)
    os.chmod(key, 0o644)
    r = subprocess.run([MAILSEALD, "-f", "-c", gw.conf], capture_output=True,
                       timeout=30)
    assert r.returncode != 0 and b"mode 0600" in r.stderr, r.stderr
    os.chmod(key, 0o600)
    gw.start()
