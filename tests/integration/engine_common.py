"""What the engine tests share: a gateway whose relay hosts are one
smtp-sink, a raw sender, a GNUPGHOME for gpgsm, the canonical form."""
import email.header
import os
import re
import smtplib
import subprocess

import pytest

from conftest import BUILD
from engine_pki import gpgsm_import_key, run
from peers import SmtpSink, wait_for

TOOL = os.path.join(BUILD, "tests/tools/smime-tool")


def canon(msg):
    """The canonical inner entity of a message (RFC 8551 3.1), as the
    library writes it: the byte-for-byte reference of what is encrypted
    and signed."""
    r = run(TOOL, "canon", input=msg)
    return r.stdout


def canon8(msg):
    """The 8-bit canonical form (MIME_CANON_8BIT): what decrypted
    content is delivered as."""
    return run(TOOL, "canon", "--8bit", input=msg).stdout


def send_raw(port, sender, rcpts, data, source="127.0.0.1"):
    """One message exactly as given; returns its queue ID."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test",
                      source_address=(source, 0), timeout=30) as s:
        s.ehlo()
        s.mail(sender)
        for r in rcpts:
            code, msg = s.rcpt(r)
            assert code == 250, (r, code, msg)
        code, msg = s.data(data)
        assert code == 250, msg
        return msg.decode().rsplit(" ", 1)[1]


def decoded_subject(data):
    """The Subject field, RFC 2047 words decoded."""
    m = re.search(rb"^Subject:[ \t]*(.*?)\r\n(?![ \t])", data, re.M | re.S)
    if m is None:
        return None
    raw = re.sub(r"\r\n[ \t]", " ", m.group(1).decode("latin-1"))
    return str(email.header.make_header(email.header.decode_header(raw)))


class Net:
    """A sink on its own loopback address that both relay hosts name."""

    def __init__(self, directory, host):
        self.sink = SmtpSink(directory, host)
        self.host = host

    @property
    def params(self):
        hop = f"[{self.host}]:{self.sink.port}"
        return {"external_relay_host": hop, "internal_relay_host": hop}

    def for_rcpt(self, addr, n=1, timeout=20.0):
        """The messages whose envelope has addr."""
        def got():
            # smtp-sink keeps LF line ends, and adds one at the end.
            m = [(e, re.sub(rb"\r?\n", b"\r\n", d[:-1]))
                 for e, d in self.sink.messages()
                 if f"<{addr}>" in e.get("X-Rcpt-Args", [])]
            return m if len(m) >= n else None
        return wait_for(got, timeout, f"{n} message(s) for {addr}")

    def find(self, addr, subject, timeout=20.0):
        """The one message for addr whose Subject field is subject."""
        def got():
            m = [d for e, d in self.for_rcpt(addr, 1, timeout)
                 if decoded_subject(d) == subject]
            return m if m else None
        m = wait_for(got, timeout, f"{subject!r} for {addr}")
        assert len(m) == 1, m
        return m[0]

    def rcpts_of(self):
        """The envelope recipients of each message, sorted."""
        return sorted(sorted(r.strip("<>") for r in e["X-Rcpt-Args"])
                      for e, _ in self.sink.messages())

    def stop(self):
        self.sink.stop()


_hosts = iter(range(40, 250))


@pytest.fixture
def net(tmp_path_factory):
    d = tmp_path_factory.mktemp("net")
    os.chmod(d, 0o777)
    # A loopback address of its own, so that parallel tests do not meet.
    host = f"127.0.{os.getpid() % 200 + 30}.{next(_hosts)}"
    n = Net(str(d), host)
    yield n
    n.stop()


class GpgSM:
    """gpgsm in a temporary GNUPGHOME with a key and the test root."""

    def __init__(self, pki, *leaves):
        self.home = pki.p("gnupg-" + "-".join(lf.name for lf in leaves))
        os.makedirs(self.home, 0o700, exist_ok=True)
        with open(os.path.join(self.home, "gpgsm.conf"), "w") as f:
            f.write("disable-crl-checks\n")
        with open(os.path.join(self.home, "gpg-agent.conf"), "w") as f:
            f.write("allow-loopback-pinentry\n")
        self.env = dict(os.environ, GNUPGHOME=self.home)
        # Start the agent before anything needs it: gpgsm's own autostart
        # of it can race with the passphrase of the first PKCS#12 import.
        run("gpgconf", "--homedir", self.home, "--launch", "gpg-agent",
            env=self.env)
        self("--import", pki.root)
        self("--import", pki.inter)
        for lf in leaves:
            gpgsm_import_key(self, lf.cert, lf.key,
                             pki.p(lf.name + ".p12"))
        fpr = run("openssl", "x509", "-in", pki.root, "-noout",
                  "-fingerprint", "-sha1").stdout.decode().split("=")[1]
        with open(os.path.join(self.home, "trustlist.txt"), "w") as f:
            f.write(f"{fpr.strip()} S relax\n")

    def __call__(self, *args, check=True):
        return run("gpgsm", "--batch", "--pinentry-mode", "loopback",
                   "--passphrase-fd", "0", *args, input=b"test\n",
                   env=self.env, check=check)

    def close(self):
        subprocess.run(["gpgconf", "--homedir", self.home, "--kill", "all"],
                       capture_output=True)


def engine_pids(gw):
    """The pids of the gateway's engine processes."""
    out = subprocess.run(["pgrep", "-f", "--", f"-x engine .*-c {gw.conf}"],
                         capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]
