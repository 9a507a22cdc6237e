"""The S/MIME library (src/crypto/smime.c) against outside implementations.

smime-tool (tests/tools) drives the library; `openssl cms` and `gpgsm`
check what it writes and write what it must read. Certificates are made
here with the openssl CLI: a CA, Alice (RSA-2048), Bob (EC P-256), Carol
(RSA, whose key is never offered) and Mallory (a certificate of her own).
"""
import base64
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import BUILD, SANITIZED, TEST_BASE
from engine_pki import LATIN1, UTF8, b64, gpgsm_import_key, leaves

TOOL = os.path.join(BUILD, "tests/tools/smime-tool")


def run(args, data=b"", check=True, env=None, cwd=None):
    r = subprocess.run(args, input=data, capture_output=True, timeout=120,
                       env=env, cwd=cwd)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({r.returncode}): "
                             f"{r.stderr.decode(errors='replace')}")
    return r


class Result:
    def __init__(self, r):
        self.rc = r.returncode
        self.out = r.stdout
        self.err = r.stderr.decode(errors="replace")
        self.report = {}
        for line in self.err.splitlines():
            k, sep, v = line.partition("=")
            if sep:
                self.report.setdefault(k, []).append(v)

    def __getitem__(self, k):
        return self.report[k][0]

    def all(self, k):
        return self.report.get(k, [])


def tool(*args, data=b""):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "abort_on_error=1:detect_leaks=1")
    r = Result(run([TOOL, *args], data, check=False, env=env))
    assert "Sanitizer" not in r.err and "runtime error" not in r.err, r.err
    return r


# Certificates.

EXT = """
[leaf]
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,nonRepudiation,keyEncipherment
extendedKeyUsage=emailProtection
subjectAltName=email:{email}
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
[ecleaf]
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyAgreement
extendedKeyUsage=emailProtection
subjectAltName=email:{email}
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
"""


class Party:
    def __init__(self, d, name):
        self.cert = os.path.join(d, name + ".pem")
        self.key = os.path.join(d, name + ".key")
        self.email = name + "@example.com"

    @property
    def pair(self):
        return f"{self.cert},{self.key}"


def make_leaf(d, ca, name, ec=False, subject_email=False):
    p = Party(d, name)
    if ec:
        run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-out", p.key])
    else:
        run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
             "rsa_keygen_bits:2048", "-out", p.key])
    subj = f"/CN={name.title()}"
    if subject_email:
        subj += f"/emailAddress={p.email}"
    csr = os.path.join(d, name + ".csr")
    run(["openssl", "req", "-new", "-key", p.key, "-subj", subj, "-out",
         csr])
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write(EXT.format(email=p.email))
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey",
         ca.key, "-CAcreateserial", "-days", "30", "-out", p.cert,
         "-extfile", ext, "-extensions", "ecleaf" if ec else "leaf"])
    return p


@pytest.fixture(scope="module")
def pki():
    os.makedirs(TEST_BASE, exist_ok=True)
    d = tempfile.mkdtemp(prefix="smime-lib-", dir=TEST_BASE)
    ca = Party(d, "ca")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", ca.key, "-out", ca.cert, "-subj", "/CN=Test CA",
         "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-addext", "subjectKeyIdentifier=hash"])

    class PKI:
        pass
    k = PKI()
    k.dir = d
    k.ca = ca
    k.alice = make_leaf(d, ca, "alice", subject_email=True)
    k.bob = make_leaf(d, ca, "bob", ec=True)
    k.carol = make_leaf(d, ca, "carol")
    k.mallory = make_leaf(d, ca, "mallory")
    yield k
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def gpg(pki):
    """A GNUPGHOME with Alice's key and the CA trusted."""
    home = os.path.join(pki.dir, "gnupg")
    os.mkdir(home, 0o700)
    with open(os.path.join(home, "gpgsm.conf"), "w") as f:
        f.write("disable-crl-checks\n")
    with open(os.path.join(home, "gpg-agent.conf"), "w") as f:
        f.write("allow-loopback-pinentry\n")
    env = dict(os.environ, GNUPGHOME=home)

    def gpgsm(*args, check=True):
        # The passphrase of the imported key, for every operation.
        return run(["gpgsm", "--batch", "--pinentry-mode", "loopback",
                    "--passphrase-fd", "0", *args], b"test\n",
                   check=check, env=env)
    # The agent first: gpgsm's autostart of it can race with the
    # passphrase of the PKCS#12 import.
    run(["gpgconf", "--homedir", home, "--launch", "gpg-agent"], env=env)
    gpgsm("--import", pki.ca.cert)
    gpgsm_import_key(gpgsm, pki.alice.cert, pki.alice.key,
                     os.path.join(pki.dir, "alice.p12"))
    fpr = run(["openssl", "x509", "-in", pki.ca.cert, "-noout",
               "-fingerprint", "-sha1"]).stdout.decode().split("=")[1]
    with open(os.path.join(home, "trustlist.txt"), "w") as f:
        f.write(f"{fpr.strip()} S relax\n")
    gpgsm.home = home
    yield gpgsm
    subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"],
                   capture_output=True)


# Messages.

OUTER = (b"From: Alice <alice@example.com>\r\n"
         b"To: Bob <bob@example.com>\r\n"
         b"Cc: carol@example.com\r\n"
         b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
         b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
         b"Message-ID: <test-1@example.com>\r\n"
         b"Received: from a by b; Mon, 01 Jan 2024 10:00:00 +0000\r\n"
         b"MIME-Version: 1.0\r\n")
OUTER_NAMES = ["From", "To", "Cc", "Subject", "Date", "Message-ID",
               "Received"]

PDF = bytes(range(256)) * 40

MESSAGES = {
    "ascii": OUTER + b"Content-Type: text/plain\r\n\r\n"
             b"Plain ASCII.\r\n-- \r\nsig\r\n",
    "8bit-utf8": OUTER + b"Content-Type: text/plain; charset=utf-8\r\n"
                 b"Content-Transfer-Encoding: 8bit\r\n\r\n" + UTF8 * 30,
    "8bit-latin1": OUTER + b"Content-Type: text/plain; "
                   b"charset=iso-8859-1\r\n"
                   b"Content-Transfer-Encoding: 8bit\r\n\r\n" + LATIN1,
    "qp": OUTER + b"Content-Type: text/plain; charset=utf-8\r\n"
          b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
          b"Gr=C3=BC=C3=9Fe, soft=\r\n break\r\n",
    "base64": OUTER + b"Content-Type: text/plain; charset=utf-8\r\n"
              b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(UTF8),
    "alternative": OUTER +
    b"Content-Type: multipart/mixed; boundary=\"mixed\"\r\n\r\n"
    b"This is a multi-part message in MIME format.\r\n"
    b"--mixed\r\n"
    b"Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n"
    b"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\n" + UTF8 +
    b"\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"<p>Gr=C3=BC=C3=9Fe</p>\r\n"
    b"--alt--\r\n"
    b"\r\n--mixed\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename=\"a.pdf\"\r\n\r\n" +
    b64(PDF) +
    b"\r\n--mixed\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"Content-Disposition: attachment; filename=\"notes.txt\"\r\n\r\n" +
    LATIN1 +
    b"\r\n--mixed\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: binary\r\n\r\n\x00\x01\x02\xff\xfe\r\n"
    b"--mixed--\r\n",
}


def header_names(data):
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    return [m.group(1) for m in re.finditer(r"^([^\s:]+):", head, re.M)]


def canon(msg):
    r = tool("canon", data=msg)
    assert r.rc == 0, r.err
    return r.out


def write(pki, name, data):
    p = os.path.join(pki.dir, name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def crlf(data):
    return re.sub(rb"\r?\n", b"\r\n", data)


def check_outer(out, msg):
    """The header split of RFC 8551 3.1 on what we wrote."""
    names = header_names(out)
    for n in OUTER_NAMES:
        assert n in names, (n, names)
    content = [n for n in names if n.lower().startswith("content-")]
    assert names.count("MIME-Version") == 1
    assert out.split(b"\r\n\r\n", 1)[0].count(b"\r\n") >= len(OUTER_NAMES)
    assert b"\n" not in out.replace(b"\r\n", b"")
    return content


def mime_wrap(der, smime_type, outer=OUTER, ctype=b"application/pkcs7-mime"):
    return (outer + b"Content-Type: " + ctype + b"; smime-type=" +
            smime_type + b"; name=smime.p7m\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=smime.p7m\r\n\r\n" +
            b64(der))


def split_signed(out):
    """The signed entity and the DER signature of a multipart/signed."""
    head, body = out.split(b"\r\n\r\n", 1)
    boundary = re.search(rb'boundary="?([^";\r\n]+)"?', head).group(1)
    parts = body.split(b"\r\n--" + boundary)
    assert parts[0].startswith(b"This is") or parts[0].startswith(b"--")
    first = body.index(b"--" + boundary + b"\r\n") + len(boundary) + 4
    entity = body[first:body.index(b"\r\n--" + boundary, first)]
    sigpart = parts[2][2:]
    sig = base64.b64decode(sigpart.split(b"\r\n\r\n", 1)[1])
    return entity, sig


# Ours -> theirs.

CIPHERS = ["aes128-cbc", "aes256-cbc", "aes128-gcm", "aes256-gcm"]


@pytest.mark.parametrize("name", sorted(MESSAGES))
@pytest.mark.parametrize("cipher", CIPHERS)
def test_encrypt_openssl_decrypts(pki, name, cipher):
    msg = MESSAGES[name]
    r = tool("encrypt", "--rcpt", pki.alice.cert, "--rcpt", pki.bob.cert,
             "--cipher", cipher, data=msg)
    assert r.rc == 0, r.err
    content = check_outer(r.out, msg)
    assert content == ["Content-Type", "Content-Transfer-Encoding",
                       "Content-Disposition", "Content-Description"]
    smime_type = "authEnveloped-data" if "gcm" in cipher else \
        "enveloped-data"
    assert f"smime-type={smime_type}; name=smime.p7m".encode() in r.out
    f = write(pki, "enc.eml", r.out)
    want = canon(msg)
    for who in (pki.alice, pki.bob):
        dec = run(["openssl", "cms", "-decrypt", "-in", f, "-inform",
                   "SMIME", "-recip", who.cert, "-inkey", who.key]).stdout
        # Byte for byte: the canonical inner entity of the original.
        assert dec == want
        assert leaves(dec) == leaves(msg)
        # Transfer-encoded for 7-bit transport.
        assert max(dec) < 0x80


def test_encrypt_oaep(pki):
    msg = MESSAGES["8bit-utf8"]
    r = tool("encrypt", "--rcpt", pki.alice.cert, "--oaep", data=msg)
    assert r.rc == 0, r.err
    f = write(pki, "oaep.eml", r.out)
    info = run(["openssl", "cms", "-cmsout", "-print", "-in", f]).stdout
    assert b"rsaesOaep" in info and b"sha256" in info
    dec = run(["openssl", "cms", "-decrypt", "-in", f, "-recip",
               pki.alice.cert, "-inkey", pki.alice.key]).stdout
    assert dec == canon(msg)
    r = tool("decrypt", "--key", pki.alice.pair, data=r.out)
    assert r.rc == 0 and r["key_alg"] == "rsaesOaep", r.err


@pytest.mark.parametrize("md", ["sha256", "sha384", "sha512"])
@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_sign_openssl_verifies(pki, name, md):
    msg = MESSAGES[name]
    r = tool("sign", "--signer", pki.alice.cert, "--key", pki.alice.key,
             "--chain", pki.ca.cert, "--md", md, data=msg)
    assert r.rc == 0, r.err
    assert check_outer(r.out, msg) == ["Content-Type"]
    micalg = "sha-" + md[3:]
    assert re.search(rb'multipart/signed;\s+protocol="application/'
                     rb'pkcs7-signature";\s+micalg=' + micalg.encode(),
                     r.out)
    f = write(pki, "signed.eml", r.out)
    v = run(["openssl", "cms", "-verify", "-in", f, "-inform", "SMIME",
             "-CAfile", pki.ca.cert, "-purpose", "smimesign"])
    assert v.stdout == canon(msg)
    assert leaves(v.stdout) == leaves(msg)
    entity, sig = split_signed(r.out)
    assert entity == canon(msg)
    # The signer's chain is in the signature.
    certs = run(["openssl", "pkcs7", "-inform", "DER", "-print_certs",
                 "-noout", "-in", write(pki, "sig.der", sig)]).stdout
    assert sorted(re.findall(rb"subject=(.*)", certs)) == [
        b"CN = Alice, emailAddress = alice@example.com", b"CN = Test CA"]
    # Must survive 7-bit transport.
    assert max(entity) < 0x80


def test_sign_ec(pki):
    msg = MESSAGES["alternative"]
    r = tool("sign", "--signer", pki.bob.cert, "--key", pki.bob.key,
             data=msg)
    assert r.rc == 0, r.err
    f = write(pki, "ecsigned.eml", r.out)
    v = run(["openssl", "cms", "-verify", "-in", f, "-CAfile",
             pki.ca.cert])
    assert v.stdout == canon(msg)
    # OpenSSL's CMS code signs for EC keys, with the SMIMECapabilities
    # value that cms_write.c made: the list OpenSSL's own signer gives.
    _, sig = split_signed(r.out)
    theirs = run(["openssl", "cms", "-sign", "-binary", "-outform", "DER",
                  "-in", write(pki, "x.txt", b"x"), "-signer", pki.bob.cert,
                  "-inkey", pki.bob.key]).stdout

    def capabilities(der):
        info = run(["openssl", "cms", "-cmsout", "-print", "-inform", "DER",
                    "-in", write(pki, "caps.der", der)]).stdout
        caps = info.split(b"S/MIME Capabilities", 1)[1]
        return re.findall(rb"OBJECT +:(\S+)|INTEGER +:(\S+)",
                          caps.split(b"signatureAlgorithm", 1)[0])
    assert capabilities(sig) == capabilities(theirs)
    assert (b"aes-256-cbc", b"") in capabilities(sig)


@pytest.mark.parametrize("cipher", ["aes256-cbc", "aes256-gcm"])
def test_sign_encrypt_openssl(pki, cipher):
    msg = MESSAGES["alternative"]
    r = tool("sign-encrypt", "--signer", pki.alice.cert, "--key",
             pki.alice.key, "--rcpt", pki.bob.cert, "--cipher", cipher,
             data=msg)
    assert r.rc == 0, r.err
    check_outer(r.out, msg)
    f = write(pki, "se.eml", r.out)
    inner = run(["openssl", "cms", "-decrypt", "-in", f, "-recip",
                 pki.bob.cert, "-inkey", pki.bob.key]).stdout
    # RFC 8551 3.6: signed first, then encrypted.
    assert inner.startswith(b"Content-Type: multipart/signed;")
    v = run(["openssl", "cms", "-verify", "-in", write(pki, "se2.eml",
             inner), "-CAfile", pki.ca.cert])
    assert v.stdout == canon(msg)


def test_encrypt_client_signed(pki):
    """A message the sender signed already is encrypted untouched."""
    msg = MESSAGES["8bit-utf8"]
    signed = run(["openssl", "cms", "-sign", "-binary", "-in",
                  write(pki, "cs.txt", canon(msg)), "-signer", pki.alice.cert,
                  "-inkey", pki.alice.key, "-from", pki.alice.email,
                  "-crlfeol"]).stdout
    r = tool("encrypt", "--rcpt", pki.bob.cert, data=signed)
    assert r.rc == 0, r.err
    f = write(pki, "cs.eml", r.out)
    inner = run(["openssl", "cms", "-decrypt", "-in", f, "-recip",
                 pki.bob.cert, "-inkey", pki.bob.key]).stdout
    # (openssl's -crlfeol leaves a bare LF after its base64: made CRLF.)
    assert inner == crlf(signed[signed.index(b"Content-Type: multipart/"):])
    v = run(["openssl", "cms", "-verify", "-in", write(pki, "cs2.eml", inner),
             "-CAfile", pki.ca.cert])
    assert v.stdout == canon(msg)


def test_gpgsm_reads_ours(pki, gpg):
    for name in ("8bit-latin1", "alternative"):
        msg = MESSAGES[name]
        r = tool("encrypt", "--rcpt", pki.alice.cert, "--rcpt",
                 pki.bob.cert, "--cipher", "aes256-cbc", data=msg)
        der = base64.b64decode(r.out.split(b"\r\n\r\n", 1)[1])
        d = gpg("--decrypt", write(pki, "g.der", der))
        assert d.stdout == canon(msg)
        r = tool("sign", "--signer", pki.alice.cert, "--key",
                 pki.alice.key, "--chain", pki.ca.cert, data=msg)
        entity, sig = split_signed(r.out)
        v = gpg("--verify", write(pki, "g.sig", sig),
                write(pki, "g.data", entity))
        assert b"Good signature" in v.stderr, v.stderr
        # A changed octet is caught by gpgsm too.
        bad = entity.replace(b"Content-Type", b"Content-Typf", 1)
        v = gpg("--verify", write(pki, "g.sig", sig),
                write(pki, "g.bad", bad), check=False)
        assert v.returncode != 0 and b"invalid signature" in v.stderr


# Ours beside theirs: src/crypto/cms_write.c writes RSA signatures and
# encryption to RSA keys in AES-CBC itself; OpenSSL's CMS code writes
# what the tests above give to EC keys, OAEP and GCM.

def asn1_shape(path):
    """openssl asn1parse's lines without offsets, and without the values
    that two encodings of the same input do not share (random octets,
    the signature, the signing time)."""
    out = run(["openssl", "asn1parse", "-inform", "DER", "-in",
               path]).stdout.decode()
    shape = []
    for line in out.splitlines():
        line = line.split(":", 1)[1]
        line = re.sub(r"(OCTET STRING|UTCTIME)\b.*", r"\1", line)
        shape.append(line.rstrip())
    return shape


@pytest.mark.parametrize("md", ["sha256", "sha384", "sha512"])
def test_signature_as_openssl_writes_it(pki, md):
    msg = MESSAGES["alternative"]
    with open(pki.ca.cert, "rb") as a, open(pki.alice.cert, "rb") as b:
        chain = write(pki, "chain.pem", a.read() + b.read())
    r = tool("sign", "--signer", pki.alice.cert, "--key", pki.alice.key,
             "--chain", chain, "--md", md, data=msg)
    assert r.rc == 0, r.err
    entity, sig = split_signed(r.out)
    ours = write(pki, "ours.p7s", sig)
    theirs = run(["openssl", "cms", "-sign", "-binary", "-md", md, "-in",
                  write(pki, "entity", entity), "-signer", pki.alice.cert,
                  "-inkey", pki.alice.key, "-certfile", pki.ca.cert,
                  "-outform", "DER"]).stdout
    assert asn1_shape(ours) == asn1_shape(write(pki, "theirs.p7s", theirs))
    # DER: OpenSSL's encoding of what it reads is the same octets (the
    # signed attributes and the certificates in SET OF order).
    again = run(["openssl", "cms", "-cmsout", "-inform", "DER", "-in", ours,
                 "-outform", "DER"]).stdout
    assert again == sig
    v = run(["openssl", "cms", "-verify", "-binary", "-inform", "DER",
             "-in", ours, "-content", write(pki, "entity", entity),
             "-CAfile", pki.ca.cert, "-purpose", "smimesign"])
    assert v.stdout == entity
    # Each certificate once, though the chain named Alice's again.
    certs = run(["openssl", "pkcs7", "-inform", "DER", "-print_certs",
                 "-noout", "-in", ours]).stdout
    assert len(re.findall(rb"subject=", certs)) == 2


def test_sign_with_another_key(pki):
    """A key that is not the certificate's signs nothing (either path)."""
    for cert in (pki.alice.cert, pki.bob.cert):
        r = tool("sign", "--signer", cert, "--key", pki.carol.key,
                 data=MESSAGES["ascii"])
        assert r.rc != 0 and b"smime.p7s" not in r.out, r.err


@pytest.mark.parametrize("cipher", ["aes128-cbc", "aes256-cbc"])
def test_encrypt_rsa_as_openssl_writes_it(pki, gpg, cipher):
    msg = MESSAGES["8bit-latin1"] + LATIN1 * 400  # several pieces
    r = tool("encrypt", "--rcpt", pki.alice.cert, "--rcpt", pki.carol.cert,
             "--cipher", cipher, data=msg)
    assert r.rc == 0, r.err
    der = base64.b64decode(r.out.split(b"\r\n\r\n", 1)[1])
    ours = write(pki, "ours.p7m", der)
    theirs = run(["openssl", "cms", "-encrypt", "-binary", "-stream",
                  "-" + cipher.replace("aes", "aes-"),
                  "-in", write(pki, "ent.txt", canon(msg)), "-outform", "DER",
                  pki.alice.cert, pki.carol.cert]).stdout
    shape = asn1_shape(ours)
    # Up to the first piece of the encrypted content (the pieces are
    # 4096 octets in ours, as OpenSSL's encoder cuts them in the gateway).
    head = shape[:next(i for i, x in enumerate(shape)
                       if "cont [ 0 ]" in x and "d=4" in x) + 1]
    assert asn1_shape(write(pki, "theirs.p7m", theirs))[:len(head)] == head
    pieces = shape[len(head):]
    while pieces[-1].endswith("EOC"):
        pieces.pop()
    assert len(shape) - len(head) - len(pieces) == 5  # every end
    assert len(pieces) > 2
    assert all("l=4096 prim: OCTET STRING" in x for x in pieces[:-1]), shape
    for who in (pki.alice, pki.carol):
        dec = run(["openssl", "cms", "-decrypt", "-binary", "-inform", "DER",
                   "-in", ours, "-recip", who.cert, "-inkey", who.key]).stdout
        assert dec == canon(msg)
    assert gpg("--decrypt", ours).stdout == canon(msg)
    r = tool("decrypt", "--key", pki.carol.pair, data=r.out)
    assert r.rc == 0, r.err


# Theirs -> ours.

def entity_of(msg):
    """The inner entity a sender encrypts: Content-* fields and body."""
    return canon(msg)


@pytest.mark.parametrize("name", sorted(MESSAGES))
@pytest.mark.parametrize("cipher", ["-aes-128-cbc", "-aes-256-cbc",
                                    "-aes-256-gcm"])
def test_decrypt_openssl(pki, name, cipher):
    msg = MESSAGES[name]
    ent = write(pki, "ent.txt", entity_of(msg))
    out = run(["openssl", "cms", "-encrypt", "-binary", cipher, "-in", ent,
               "-from", "alice@example.com", "-to", "bob@example.com",
               "-subject", "from openssl", "-crlfeol", pki.carol.cert,
               pki.bob.cert if "cbc" in cipher else pki.alice.cert]).stdout
    assert b"\r\n" in out
    # Keys are tried in order; the one that matches a recipient decrypts.
    r = tool("decrypt", "--key", pki.mallory.pair, "--key", pki.bob.pair,
             "--key", pki.alice.pair, data=out)
    assert r.rc == 0, r.err
    assert r["status"] == "ok" and r["recipients"] == "2"
    assert r["auth"] == ("1" if "gcm" in cipher else "0")
    assert r["cipher"] == cipher[1:]
    if "cbc" in cipher:
        assert r["cert"] == "/CN=Bob" and r["key"] == "1"
        assert r["key_alg"].startswith("dhSinglePass")
    else:
        assert r["cert"].startswith("/CN=Alice")
        assert r["key_alg"] == "rsaEncryption"
    head, body = r.out.split(b"\r\n\r\n", 1)
    assert b"Subject: from openssl" in head
    assert b"smime" not in head.lower()
    assert leaves(r.out) == leaves(msg)
    # The entity is rebuilt, not spliced: byte for byte it is the
    # original's canonical entity behind the outer fields.
    assert r.out.endswith(entity_of(msg)[entity_of(msg).index(b"\r\n\r\n"):])


def test_decrypt_x_pkcs7(pki):
    msg = MESSAGES["8bit-utf8"]
    out = run(["openssl", "cms", "-encrypt", "-binary", "-in",
               write(pki, "e.txt", entity_of(msg)), "-crlfeol",
               pki.alice.cert]).stdout
    out = out.replace(b"application/pkcs7-mime", b"application/x-pkcs7-mime")
    r = tool("decrypt", "--key", pki.alice.pair, data=out)
    assert r.rc == 0, r.err
    assert leaves(r.out) == leaves(msg)


def test_subject_key_identifiers(pki):
    """Recipients and signers named by subjectKeyIdentifier (RFC 5652)."""
    msg = MESSAGES["qp"]
    ent = write(pki, "k.txt", entity_of(msg))
    out = run(["openssl", "cms", "-encrypt", "-binary", "-keyid", "-in", ent,
               "-crlfeol", pki.alice.cert, pki.bob.cert]).stdout
    for who in (pki.alice, pki.bob):
        r = tool("decrypt", "--key", pki.carol.pair, "--key", who.pair,
                 data=out)
        assert r.rc == 0 and r["key"] == "1", r.err
        assert sorted(r.all("rid")) == ["keyid,kari", "keyid,ktri"]
        assert leaves(r.out) == leaves(msg)
    out = run(["openssl", "cms", "-sign", "-binary", "-keyid", "-in", ent,
               "-signer", pki.alice.cert, "-inkey", pki.alice.key, "-from",
               pki.alice.email, "-crlfeol"]).stdout
    r = tool("verify", data=out)
    assert r["valid"] == "1" and r["senders"] == "1", r.err


def test_decrypt_gpgsm(pki, gpg):
    for name in ("qp", "alternative"):
        msg = MESSAGES[name]
        der = gpg("--encrypt", "-r", pki.alice.email, "--output", "-",
                  write(pki, "g.ent", entity_of(msg))).stdout
        r = tool("decrypt", "--key", pki.alice.pair,
                 data=mime_wrap(der, b"enveloped-data"))
        assert r.rc == 0, r.err
        assert r["cipher"] == "aes-128-cbc"
        assert leaves(r.out) == leaves(msg)
        assert header_names(r.out)[:len(OUTER_NAMES)] == OUTER_NAMES


def openssl_sign(pki, msg, who, detached=True):
    ent = write(pki, "s.txt", entity_of(msg))
    args = ["openssl", "cms", "-sign", "-binary", "-in", ent, "-signer",
            who.cert, "-inkey", who.key, "-from", who.email, "-to",
            "bob@example.com", "-subject", "signed by openssl", "-crlfeol"]
    if not detached:
        args.append("-nodetach")
    return run(args).stdout


@pytest.mark.parametrize("name", sorted(MESSAGES))
@pytest.mark.parametrize("detached", [True, False])
def test_verify_openssl(pki, name, detached):
    msg = MESSAGES[name]
    out = openssl_sign(pki, msg, pki.alice, detached)
    r = tool("verify", "--unwrap", data=out)
    assert r.rc == 0, r.err
    assert r["scope"] == "whole" and r["valid"] == "1", r.err
    assert r["opaque"] == ("0" if detached else "1")
    assert r["from"] == "alice@example.com" and r["from_match"] == "1"
    assert r["senders"] == "1"
    assert r.all("email") == ["alice@example.com"]
    assert r["digest"] == "sha256"
    assert leaves(r.out) == leaves(msg)
    assert b"Subject: signed by openssl" in r.out.split(b"\r\n\r\n")[0]


def test_verify_ec_and_chain(pki):
    msg = MESSAGES["ascii"]
    out = openssl_sign(pki, msg, pki.bob)
    r = tool("verify", data=out)
    assert r["valid"] == "1" and r["senders"] == "1", r.err
    assert r["certs"] == "1"
    # Without the signer's certificate in the message, the caller's
    # certificates are used.
    ent = write(pki, "nc.txt", entity_of(msg))
    out = run(["openssl", "cms", "-sign", "-binary", "-nocerts", "-in", ent,
               "-signer", pki.bob.cert, "-inkey", pki.bob.key, "-from",
               pki.bob.email, "-crlfeol"]).stdout
    r = tool("verify", data=out)
    assert r["valid"] == "0" and r["signers"] == "0"
    r = tool("verify", "--certs", pki.bob.cert, data=out)
    assert r["valid"] == "1" and r["signers"] == "1", r.err


def test_verify_gpgsm(pki, gpg):
    msg = MESSAGES["alternative"]
    ent = write(pki, "g.ent", entity_of(msg))
    der = gpg("--sign", "-u", pki.alice.email, "--output", "-", ent).stdout
    outer = OUTER.replace(b"From: Alice", b"From: A. Lice")
    r = tool("verify", "--unwrap", data=mime_wrap(der, b"signed-data",
                                                  outer))
    assert r["scope"] == "whole" and r["valid"] == "1", r.err
    assert r["opaque"] == "1" and r["senders"] == "1"
    assert leaves(r.out) == leaves(msg)

    sig = gpg("--detach-sign", "-u", pki.alice.email, "--output", "-",
              ent).stdout
    signed = (OUTER + b"Content-Type: multipart/signed; "
              b"protocol=\"application/pkcs7-signature\"; micalg=sha-256; "
              b"boundary=\"gb\"\r\n\r\n--gb\r\n" + entity_of(msg) +
              b"\r\n--gb\r\nContent-Type: application/pkcs7-signature\r\n"
              b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(sig) +
              b"--gb--\r\n")
    r = tool("verify", data=signed)
    assert r["scope"] == "whole" and r["valid"] == "1", r.err
    assert r["senders"] == "1"


# The signature-spoofing cases ("Johnny, you are fired", 2019).

def signed_by_alice(pki):
    return tool("sign", "--signer", pki.alice.cert, "--key", pki.alice.key,
                data=MESSAGES["ascii"]).out


def test_spoof_wrapped(pki):
    signed = signed_by_alice(pki)
    head, body = signed.split(b"\r\n\r\n", 1)
    ctype = re.search(rb"Content-Type: multipart/signed;.*?\r\n(?=\S)",
                      head + b"\r\nX", re.S).group(0)
    for order in (0, 1):
        fired = (b"--w\r\nContent-Type: text/html\r\n\r\n"
                 b"<p>Johnny, you are fired.</p><div hidden>\r\n")
        wrapped_signed = b"--w\r\n" + ctype + b"\r\n" + body + b"\r\n"
        parts = [fired, wrapped_signed]
        if order:
            parts.reverse()
        msg = (b"From: Alice <alice@example.com>\r\nSubject: news\r\n"
               b"Content-Type: multipart/mixed; boundary=w\r\n\r\n" +
               b"".join(parts) + b"--w--\r\n")
        r = tool("verify", "--unwrap", data=msg)
        assert r.rc == 0, r.err
        # The signature is sound, but it is not the message's.
        assert r["valid"] == "1" and r["from_match"] == "1"
        assert r["scope"] == "partial"
        assert r["senders"] == "0" and r["unwrapped"] == "0"
        assert r.out == b""
        i = tool("inspect", data=msg)
        assert i["form"] == "none" and i["nested_signed"] == "1"


def test_spoof_forwarded(pki):
    signed = signed_by_alice(pki)
    msg = (b"From: Alice <alice@example.com>\r\nSubject: Fwd\r\n"
           b"Content-Type: message/rfc822\r\n\r\n" + signed)
    r = tool("verify", data=msg)
    assert r["scope"] == "partial" and r["senders"] == "0", r.err
    msg = (b"From: Mallory <mallory@example.com>\r\nSubject: Fwd\r\n"
           b"Content-Type: multipart/mixed; boundary=f\r\n\r\n"
           b"--f\r\nContent-Type: text/plain\r\n\r\nAlice says:\r\n"
           b"--f\r\nContent-Type: message/rfc822\r\n\r\n" + signed +
           b"\r\n--f--\r\n")
    r = tool("verify", data=msg)
    assert r["scope"] == "partial" and r["senders"] == "0", r.err
    assert r["from"] == "mallory@example.com" and r["from_match"] == "0"


def test_spoof_from_and_structure(pki):
    signed = signed_by_alice(pki)
    # Whole and valid, but another sender's address: not the sender's.
    msg = signed.replace(b"From: Alice <alice@example.com>",
                         b"From: Boss <boss@example.com>")
    r = tool("verify", data=msg)
    assert r["scope"] == "whole" and r["valid"] == "1", r.err
    assert r["from_match"] == "0" and r["senders"] == "0"
    # Two Content-Type fields: readers may disagree about the message.
    msg = signed.replace(b"\r\n\r\n", b"\r\nContent-Type: text/plain\r\n\r\n",
                         1)
    r = tool("verify", data=msg)
    assert r["valid"] == "0" and r["senders"] == "0", r.err
    assert r["reason"] == "ambiguous message structure"


def test_tampered(pki):
    signed = signed_by_alice(pki)
    r = tool("verify", data=signed.replace(b"Plain ASCII.", b"Plain ASCII!"))
    assert r.rc == 0 and r["valid"] == "0" and r["senders"] == "0", r.err
    assert r["signers"] == "1" and r["reason"], r.err
    # A changed signature octet.
    entity, sig = split_signed(signed)
    bad = bytearray(sig)
    bad[-10] ^= 0x55
    tampered = signed.replace(b64(sig).rstrip(), b64(bytes(bad)).rstrip())
    assert tampered != signed
    r = tool("verify", "--unwrap", data=tampered)
    assert r["valid"] == "0" and r["senders"] == "0" and r.out == b""
    # Opaque signed-data with a changed content octet.
    out = openssl_sign(pki, MESSAGES["ascii"], pki.alice, detached=False)
    head, body = out.split(b"\r\n\r\n", 1)
    der = bytearray(base64.b64decode(body))
    i = der.index(b"Plain ASCII.")
    der[i] ^= 1
    r = tool("verify", "--unwrap", data=head + b"\r\n\r\n" + b64(bytes(der)))
    assert r["valid"] == "0" and r["opaque"] == "1" and r.out == b"", r.err


def corrupt(msg, at, length=None):
    head, body = msg.split(b"\r\n\r\n", 1)
    der = bytearray(base64.b64decode(body))
    if length is not None:
        der = der[:length]
    else:
        der[at(len(der))] ^= 0x01
    return head + b"\r\n\r\n" + b64(bytes(der))


def test_corrupt_ciphertext(pki):
    msg = MESSAGES["alternative"]
    gcm = tool("encrypt", "--rcpt", pki.alice.cert, "--cipher",
               "aes256-gcm", data=msg).out
    # A changed octet in the content: the GCM tag fails.
    r = tool("decrypt", "--key", pki.alice.pair,
             data=corrupt(gcm, lambda n: n - 200))
    assert r.rc == 3 and r["status"] == "corrupt" and r.out == b"", r.err
    cbc = tool("encrypt", "--rcpt", pki.alice.cert, data=msg).out
    # A cut ciphertext: CBC padding or BER fails, nothing comes out.
    r = tool("decrypt", "--key", pki.alice.pair,
             data=corrupt(cbc, None, length=1500))
    assert r.rc == 3 and r.out == b"", r.err
    # A changed encrypted key: the key does not decrypt it.
    r = tool("decrypt", "--key", pki.alice.pair,
             data=corrupt(cbc, lambda n: 200))
    assert r.rc == 3 and r.out == b"", r.err
    assert "does not decrypt" in r["error"]
    # Garbage instead of CMS.
    r = tool("decrypt", "--key", pki.alice.pair,
             data=mime_wrap(b"\x30\x03\x02\x01", b"enveloped-data"))
    assert r.rc != 0 and r.out == b""


def test_no_key_and_not_encrypted(pki):
    msg = MESSAGES["qp"]
    enc = tool("encrypt", "--rcpt", pki.alice.cert, "--rcpt", pki.bob.cert,
               data=msg).out
    r = tool("decrypt", "--key", pki.carol.pair, "--key", pki.mallory.pair,
             data=enc)
    assert r.rc == 2 and r["status"] == "no-key" and r.out == b""
    assert r["recipients"] == "2"
    r = tool("decrypt", "--key", pki.alice.pair, data=msg)
    assert r.rc == 4 and r["status"] == "not-encrypted" and r.out == b""
    i = tool("inspect", data=enc)
    assert i["form"] == "enveloped-data"


def test_nested_encrypted_not_decrypted(pki):
    """EFAIL: an encrypted part among others is not decrypted."""
    enc = tool("encrypt", "--rcpt", pki.alice.cert,
               data=MESSAGES["ascii"]).out
    head, body = enc.split(b"\r\n\r\n", 1)
    msg = (b"From: mallory@example.com\r\n"
           b"Content-Type: multipart/mixed; boundary=e\r\n\r\n"
           b"--e\r\nContent-Type: text/html\r\n\r\n<img src=\"http://x/\r\n"
           b"--e\r\nContent-Type: application/pkcs7-mime; "
           b"smime-type=enveloped-data\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + body +
           b"\r\n--e\r\nContent-Type: text/html\r\n\r\n\">\r\n--e--\r\n")
    r = tool("decrypt", "--key", pki.alice.pair, data=msg)
    assert r.rc == 5 and r["status"] == "nested" and r.out == b""
    i = tool("inspect", data=msg)
    assert i["form"] == "none" and i["nested_encrypted"] == "1"


def test_info_headers_stripped(pki):
    spoofed = (b"X-Mailseal-Info-Signer-Verified: yes\r\n"
               b"x-mailseal-info-SMIME-Encrypted:\r\n yes\r\n")
    msg = spoofed + MESSAGES["8bit-utf8"]
    r = tool("info", "--add", "X-Mailseal-Info-SMIME-Encrypted: no",
             data=msg)
    assert r.rc == 0, r.err
    head = r.out.split(b"\r\n\r\n", 1)[0]
    assert head.lower().count(b"x-mailseal-info") == 1
    assert b"X-Mailseal-Info-SMIME-Encrypted: no" in head
    assert r.out.split(b"\r\n\r\n", 1)[1] == msg.split(b"\r\n\r\n", 1)[1]
    r = tool("info", "--add", "Subject: injected", data=msg)
    assert r.rc == 1 and r.out == b""
    # No operation passes them on either.
    enc = tool("encrypt", "--rcpt", pki.alice.cert, data=msg).out
    assert b"mailseal-info" not in enc.lower()
    dec = tool("decrypt", "--key", pki.alice.pair, data=spoofed + enc).out
    assert b"mailseal-info" not in dec.lower()
    assert leaves(dec) == leaves(msg)


def test_large_message_bounded_memory(pki):
    """25 MB through every operation in a few MB of memory."""
    attach = os.urandom(12 << 20)
    text = "Zeile mit Umlauten: äöü\r\n".encode() * 200000
    msg = (OUTER + b"Content-Type: multipart/mixed; boundary=big\r\n\r\n"
           b"--big\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n" + text +
           b"\r\n--big\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(attach) +
           b"\r\n--big--\r\n")
    assert len(msg) > 20 << 20
    f = write(pki, "big.eml", msg)
    limit = 40 << 10     # KB; ASan's shadow memory is not counted here
    se = os.path.join(pki.dir, "big.se")
    with open(f, "rb") as inp, open(se, "wb") as out:
        r = subprocess.run([TOOL, "sign-encrypt", "--signer", pki.alice.cert,
                            "--key", pki.alice.key, "--rcpt", pki.bob.cert,
                            "--cipher", "aes256-gcm"], stdin=inp, stdout=out,
                           stderr=subprocess.PIPE, timeout=120)
    assert r.returncode == 0, r.stderr
    rss = int(re.search(rb"maxrss_kb=(\d+)", r.stderr).group(1))
    if not SANITIZED:
        assert rss < limit, rss
    dec = os.path.join(pki.dir, "big.dec")
    with open(se, "rb") as inp, open(dec, "wb") as out:
        r = subprocess.run([TOOL, "decrypt", "--key", pki.bob.pair],
                           stdin=inp, stdout=out, stderr=subprocess.PIPE,
                           timeout=120)
    assert r.returncode == 0, r.stderr
    rss = int(re.search(rb"maxrss_kb=(\d+)", r.stderr).group(1))
    if not SANITIZED:
        assert rss < limit, rss
    with open(dec, "rb") as inp:
        r = subprocess.run([TOOL, "verify", "--unwrap"], stdin=inp,
                           capture_output=True, timeout=120)
    assert b"valid=1" in r.stderr and b"scope=whole" in r.stderr
    assert leaves(r.stdout) == leaves(msg)
