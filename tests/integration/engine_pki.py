"""Certificates for the engine tests, made with the openssl command.

A root and an intermediate (`openssl ca`, so that validity periods in the
past and revocation are real), leaves for internal users (example.com,
with their keys) and external recipients (remote.test), and helpers that
wrap what the gateway or a peer writes.
"""
import base64
import email
import email.policy
import os
import re
import shutil
import subprocess
import tempfile

from conftest import TEST_BASE

CA_CNF = """\
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = {d}
database = {d}/index.txt
new_certs_dir = {d}/newcerts
serial = {d}/serial
crlnumber = {d}/crlnumber
default_md = sha256
default_days = 365
default_crl_days = 30
policy = policy_any
unique_subject = no
email_in_dn = no
[ policy_any ]
commonName = supplied
[ rsa_leaf ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,nonRepudiation,keyEncipherment
extendedKeyUsage = emailProtection
subjectAltName = $ENV::SAN
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ ec_leaf ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyAgreement
extendedKeyUsage = emailProtection
subjectAltName = $ENV::SAN
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ v3_ca ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

LEGACY = "/usr/lib/x86_64-linux-gnu/ossl-modules/legacy.so"


def run(*args, input=None, env=None, check=True, cwd=None):
    env = env or dict(os.environ, SAN="email:unused@invalid")
    r = subprocess.run([str(a) for a in args], capture_output=True,
                       env=env, input=input, timeout=120, cwd=cwd)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))}: "
                             f"{r.stderr.decode(errors='replace')}")
    return r


class Leaf:
    def __init__(self, pki, name, addr):
        self.name = name
        self.email = addr
        self.cert = pki.p(name + ".pem")
        self.key = pki.p(name + ".key")
        # The certificate with its key, as `mailsealctl cert import` takes.
        self.bundle = pki.p(name + "-bundle.pem")

    @property
    def fpr(self):
        out = run("openssl", "x509", "-in", self.cert, "-noout",
                  "-fingerprint", "-sha256").stdout.decode()
        return out.split("=", 1)[1].strip().replace(":", "").lower()


class PKI:
    def __init__(self, d):
        self.d = d
        os.makedirs(self.p("newcerts"))
        open(self.p("index.txt"), "w").close()
        with open(self.p("serial"), "w") as f:
            f.write("1000\n")
        with open(self.p("crlnumber"), "w") as f:
            f.write("01\n")
        self.cnf = self.p("ca.cnf")
        with open(self.cnf, "w") as f:
            f.write(CA_CNF.format(d=d))
        run("openssl", "req", "-x509", "-new", "-newkey", "rsa:2048",
            "-nodes", "-keyout", self.p("root.key"), "-out",
            self.p("root.pem"), "-subj", "/CN=Engine Test Root", "-days",
            "3650", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-addext", "subjectKeyIdentifier=hash")
        run("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes",
            "-keyout", self.p("inter.key"), "-out", self.p("inter.csr"),
            "-subj", "/CN=Engine Test Intermediate")
        run("openssl", "x509", "-req", "-in", self.p("inter.csr"),
            "-CA", self.p("root.pem"), "-CAkey", self.p("root.key"),
            "-CAcreateserial", "-days", "1000", "-out", self.p("inter.pem"),
            "-extfile", self.cnf, "-extensions", "v3_ca")
        self.root = self.p("root.pem")
        self.inter = self.p("inter.pem")
        # Root and intermediate, for openssl cms -verify -CAfile.
        self.cafile = self.p("cafile.pem")
        with open(self.cafile, "w") as f:
            f.write(open(self.root).read() + open(self.inter).read())

    def p(self, name):
        return os.path.join(self.d, name)

    def leaf(self, name, addr, kind="rsa", start=None, end=None, more=()):
        lf = Leaf(self, name, addr)
        csr = self.p(name + ".csr")
        if kind == "ec":
            run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-out", lf.key)
        else:
            run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                "rsa_keygen_bits:2048", "-out", lf.key)
        run("openssl", "req", "-new", "-key", lf.key, "-out", csr,
            "-subj", f"/CN={name}")
        args = ["openssl", "ca", "-batch", "-config", self.cnf, "-notext",
                "-cert", self.inter, "-keyfile", self.p("inter.key"),
                "-in", csr, "-out", lf.cert, "-extensions",
                "rsa_leaf" if kind == "rsa" else "ec_leaf"]
        if start:
            args += ["-startdate", start, "-enddate", end]
        san = ",".join(f"email:{a}" for a in (addr, *more))
        run(*args, env=dict(os.environ, SAN=san))
        with open(lf.bundle, "w") as f:
            f.write(open(lf.cert).read() + open(lf.key).read())
        return lf

    def revoke(self, lf):
        run("openssl", "ca", "-config", self.cnf, "-cert", self.inter,
            "-keyfile", self.p("inter.key"), "-revoke", lf.cert,
            "-crl_reason", "keyCompromise")
        crl = self.p("crl.pem")
        run("openssl", "ca", "-gencrl", "-config", self.cnf, "-cert",
            self.inter, "-keyfile", self.p("inter.key"), "-out", crl)
        return crl


def make_pki(prefix="engine-pki-"):
    os.makedirs(TEST_BASE, exist_ok=True)
    d = tempfile.mkdtemp(prefix=prefix, dir=TEST_BASE)
    os.chmod(d, 0o755)
    return PKI(d)


def remove_pki(pki):
    shutil.rmtree(pki.d, ignore_errors=True)


def setup_store(gw, pki, certs=(), keys=(), crl=None):
    """Roots, intermediates, recipients' certificates, users' keys."""
    gw.ctl("root", "import", pki.root)
    gw.ctl("cert", "import", pki.inter)
    for lf in certs:
        gw.ctl("cert", "import", lf.cert)
    for lf in keys:
        gw.ctl("cert", "import", lf.bundle)
    if crl is not None:
        gw.ctl("crl", "import", crl)


# Messages.

def gpgsm_import_key(gpgsm, cert, key, p12):
    """Cert and key into a gpgsm home through a PKCS#12 file p12, made
    with the old algorithms (all that gpgsm 2.2 reads). gpgsm 2.2.40
    refuses about one such file in 85 ("data error at
    shrouded_key_bag.decrypted-text"): the same file every time, while
    the same key with another random salt goes in. A refused file is
    made again, at most five times. gpgsm(*args, check) runs gpgsm with
    the passphrase "test"."""
    legacy = ["-legacy"] if os.path.exists(LEGACY) else \
        ["-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES"]
    for _ in range(5):
        run("openssl", "pkcs12", "-export", *legacy, "-in", cert, "-inkey",
            key, "-passout", "pass:test", "-out", p12)
        r = gpgsm("--import", p12, check=False)
        if r.returncode == 0:
            return
    raise AssertionError(f"gpgsm refused {p12} five times: "
                         f"{r.stderr.decode(errors='replace')}")


def b64(data):
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def header(sender, to, subject, extra=b""):
    return (f"From: Sender <{sender}>\r\nTo: <{to}>\r\n"
            f"Subject: {subject}\r\n"
            "Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
            "Message-ID: <engine-test@example.com>\r\n").encode() + extra


UTF8 = "Grüße aus Köln: äöü ß € — “quotes”\r\n".encode()
LATIN1 = "Blåbærsyltetøy, café, naïve\r\n".encode("iso-8859-1")
PDF = bytes(range(256)) * 20

BODIES = {
    "8bit-utf8": b"MIME-Version: 1.0\r\n"
                 b"Content-Type: text/plain; charset=utf-8\r\n"
                 b"Content-Transfer-Encoding: 8bit\r\n\r\n" + UTF8 * 5,
    "8bit-latin1": b"MIME-Version: 1.0\r\n"
                   b"Content-Type: text/plain; charset=iso-8859-1\r\n"
                   b"Content-Transfer-Encoding: 8bit\r\n\r\n" + LATIN1 * 3,
    "qp": b"MIME-Version: 1.0\r\n"
          b"Content-Type: text/plain; charset=utf-8\r\n"
          b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
          b"Gr=C3=BC=C3=9Fe, soft=\r\n break\r\n",
    "base64": b"MIME-Version: 1.0\r\n"
              b"Content-Type: text/plain; charset=utf-8\r\n"
              b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(UTF8),
    "alternative": b"MIME-Version: 1.0\r\n"
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
    LATIN1 + b"\r\n--mixed--\r\n",
}


def parse(data):
    return email.message_from_bytes(data, policy=email.policy.compat32)


def leaves(data):
    """(type, charset, decoded body) of every leaf: the comparison that
    does not depend on transfer encodings."""
    out = []
    for part in parse(data).walk():
        if part.is_multipart():
            continue
        body = part.get_payload(decode=True) or b""
        ctype = part.get_content_type()
        if ctype.startswith("text/"):
            body = body.replace(b"\r\n", b"\n")
        out.append((ctype, part.get_param("charset"), body))
    return out


def head_of(data):
    return data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")


def fields(data, prefix="X-Mailseal-Info-"):
    """{name: value} of the top header fields with the prefix."""
    out = {}
    for m in re.finditer(r"^(" + re.escape(prefix) + r"[^:]*):[ \t]*(.*)$",
                         head_of(data).replace("\r\n\t", " ")
                         .replace("\r\n ", " "), re.M | re.I):
        out[m.group(1)] = m.group(2).strip()
    return out
