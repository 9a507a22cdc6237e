"""Real peers for the delivery tests, each on its own loopback address.

- SmtpSink: Postfix's smtp-sink, keeping each message in a file.
- Peer: an aiosmtpd server that can reject or tempfail chosen recipients,
  count probes and connections, offer STARTTLS and AUTH.
- Scanner: an aiosmtpd server that forwards what it gets (a virus scanner
  of the seed guide's setups 3 and 4), adding a header.
- Dnsmasq: a DNS server with MX, A, AAAA and raw (null MX) records.
"""
import email
import email.policy
import glob
import os
import smtplib
import socket
import ssl
import subprocess
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from conftest import wait_port


def free_port_on(host):
    """A TCP and UDP port that is free on host."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET6 if ":" in host
                               else socket.AF_INET,
                               socket.SOCK_DGRAM) as u:
                u.bind((host, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def wait_for(cond, timeout=15.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


class SmtpSink:
    """smtp-sink on host:port; every message lands in a file of dir."""

    def __init__(self, directory, host, port=None, options=()):
        self.host = host
        self.port = port or free_port_on(host)
        self.dir = os.path.join(directory, f"sink-{host}-{self.port}")
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o777)
        args = ["smtp-sink"]
        if os.geteuid() == 0:
            args += ["-u", "root"]
        args += list(options)
        addr = f"[{host}]" if ":" in host else host
        args += ["-d", os.path.join(self.dir, "%M."), f"{addr}:{self.port}",
                 "100"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(host, self.port)

    def files(self):
        return sorted(glob.glob(os.path.join(self.dir, "*")))

    def messages(self):
        """(envelope headers dict, message bytes) for each message."""
        out = []
        for path in self.files():
            with open(path, "rb") as f:
                raw = f.read()
            env, rest = {}, raw
            # smtp-sink puts X-Client-Addr, X-Mail-Args, X-Rcpt-Args first.
            while rest.startswith(b"X-"):
                line, rest = rest.split(b"\n", 1)
                k, v = line.decode().rstrip("\r").split(": ", 1)
                env.setdefault(k, []).append(v)
            # Then its own Received: header (two lines).
            if rest.startswith(b"Received: from") and b"smtp-sink" in \
                    rest.split(b"\n", 3)[1]:
                rest = rest.split(b"\n", 3)[3]
            out.append((env, rest))
        return out

    def _complete(self):
        """The messages, once every dump file is whole.

        smtp-sink writes a dump as the message arrives: a file can be
        seen before its envelope lines and body are all there. A file
        counts once it has its recipients and its size stopped moving.
        """
        sizes = [os.path.getsize(p) for p in self.files()]
        time.sleep(0.05)
        if sizes != [os.path.getsize(p) for p in self.files()]:
            return None
        msgs = self.messages()
        if any("X-Rcpt-Args" not in env for env, _ in msgs):
            return None
        return msgs

    def wait(self, n=1, timeout=15.0):
        return wait_for(lambda: len(self.files()) >= n and self._complete(),
                        timeout, f"{n} message(s) at {self.host}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class PeerHandler:
    def __init__(self, reject=None, tempfail=None, reject_mail=None):
        self.reject = dict(reject or {})  # rcpt -> reply
        self.tempfail = dict(tempfail or {})  # rcpt -> times to 4xx
        self.reject_mail = reject_mail
        self.messages = []  # (mail_from, rcpts, data, session info)
        self.rcpt_seen = {}
        self.probes = []  # recipients asked with MAIL FROM:<>
        self.ehlos = 0
        self.lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname,
                          responses):
        with self.lock:
            self.ehlos += 1
            self.helo = hostname
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server, session, envelope, address,
                          mail_options):
        if self.reject_mail:
            return self.reject_mail
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        with self.lock:
            self.rcpt_seen[address] = self.rcpt_seen.get(address, 0) + 1
            # aiosmtpd keeps the null sender as "<>".
            if envelope.mail_from in ("", "<>"):
                self.probes.append(address)
            if self.tempfail.get(address, 0) > 0:
                self.tempfail[address] -= 1
                return f"450 4.2.0 <{address}>: try again later"
        if address in self.reject:
            return self.reject[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append({
                "from": envelope.mail_from,
                "rcpts": list(envelope.rcpt_tos),
                "data": envelope.original_content or envelope.content,
                "tls": session.ssl is not None,
                "auth": session.auth_data,
                "options": list(envelope.mail_options),
            })
        return "250 2.0.0 Ok: queued"


class Peer:
    """An aiosmtpd server playing the internal server, a relay or an MX."""

    def __init__(self, host, port=None, hostname="peer.test", tls=None,
                 require_starttls=False, users=None, auth_require_tls=True,
                 auth_exclude=None, size_limit=None, **handler_args):
        self.host = host
        self.port = port or free_port_on(host)
        self.handler = PeerHandler(**handler_args)
        self.users = users or {}
        kw = {}
        if size_limit is not None:
            kw["data_size_limit"] = size_limit
        if tls is not None:
            kw["tls_context"] = tls
            kw["require_starttls"] = require_starttls
        if users is not None:
            kw["authenticator"] = self._auth
            kw["auth_required"] = True
            kw["auth_require_tls"] = auth_require_tls
            kw["auth_exclude_mechanism"] = auth_exclude or []
        self.ctl = Controller(self.handler, hostname=host, port=self.port,
                              server_hostname=hostname, **kw)
        self.ctl.start()

    def _auth(self, server, session, envelope, mechanism, data):
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = data.login.decode(), data.password.decode()
        self.handler.auth_attempts = getattr(
            self.handler, "auth_attempts", 0) + 1
        self.handler.last_mechanism = mechanism
        if self.users.get(user) == password:
            return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)

    @property
    def messages(self):
        return self.handler.messages

    def wait(self, n=1, timeout=15.0):
        return wait_for(lambda: len(self.messages) >= n and self.messages,
                        timeout, f"{n} message(s) at {self.host}")

    def stop(self):
        self.ctl.stop()


class ScannerHandler:
    """Forwards each message: relay-domain recipients inward, others out."""

    def __init__(self, inward, outward, source, local_domain):
        self.inward, self.outward = inward, outward
        self.source = source
        self.local_domain = local_domain
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content
        data = b"X-Virus-Scanned: clean by scanner.test\r\n" + data
        for rcpt in envelope.rcpt_tos:
            host, port = (self.inward if rcpt.endswith("@" + self.local_domain)
                          else self.outward)
            with smtplib.SMTP(host, port, local_hostname="scanner.test",
                              source_address=(self.source, 0),
                              timeout=20) as s:
                s.sendmail(envelope.mail_from, [rcpt], data)
        self.count += 1
        return "250 2.0.0 Ok: scanned and passed on"


class Scanner:
    def __init__(self, host, inward, outward, local_domain="example.com"):
        self.host = host
        self.port = free_port_on(host)
        self.handler = ScannerHandler(inward, outward, host, local_domain)
        self.ctl = Controller(self.handler, hostname=host, port=self.port,
                              server_hostname="scanner.test")
        self.ctl.start()

    def stop(self):
        self.ctl.stop()


class Dnsmasq:
    """dnsmasq on host:port answering only for the names it is given."""

    def __init__(self, directory, host, mx=(), hosts=(), raw=(),
                 local=("test",)):
        self.host = host
        self.port = free_port_on(host)
        self.log = os.path.join(directory, f"dnsmasq-{self.port}.log")
        args = ["dnsmasq", "--no-daemon", "--port", str(self.port),
                "--listen-address", host, "--bind-interfaces", "--no-resolv",
                "--no-hosts", "--pid-file=", "--log-queries",
                f"--log-facility={self.log}"]
        if os.geteuid() == 0:
            args.append("--user=root")
        args += [f"--local=/{d}/" for d in local]
        args += [f"--mx-host={d},{h},{p}" for d, h, p in mx]
        args += ["--host-record=" + ",".join([name] + list(addrs))
                 for name, *addrs in hosts]
        args += [f"--dns-rr={name},{rtype},{hexdata}"
                 for name, rtype, hexdata in raw]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        wait_port(host, self.port)

    @property
    def server(self):
        return f"{self.host}:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Greeter:
    """A server that greets with a fixed reply and hangs up (4xx/5xx)."""

    def __init__(self, host, port=0, reply="421 4.3.2 mx1.remote.test busy"):
        self.host = host
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        self.reply = reply.encode() + b"\r\n"
        self.count = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            try:
                c.sendall(self.reply)
                c.settimeout(2)
                c.recv(1024)
            except OSError:
                pass
            c.close()

    def stop(self):
        self.stopping = True
        self.sock.close()


def self_signed(directory, cn="peer.test"):
    """A server TLS context with a fresh self-signed certificate."""
    cert = os.path.join(directory, f"{cn}.crt")
    key = os.path.join(directory, f"{cn}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", f"/CN={cn}"], check=True,
                   capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def parse(data):
    return email.message_from_bytes(data, policy=email.policy.default)


def send(port, sender, rcpts, body, source="127.0.0.2", options=(),
         subject="test"):
    """One message through the gateway; returns its queue ID."""
    if isinstance(body, str):
        body = body.encode()
    if not body.startswith(b"Subject:") and b"\r\n\r\n" not in body[:200]:
        body = (f"From: <{sender}>\r\nTo: <{rcpts[0]}>\r\n"
                f"Subject: {subject}\r\n\r\n").encode() + body
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test",
                      source_address=(source, 0), timeout=20) as s:
        s.ehlo()
        s.mail(sender, list(options))
        for r in rcpts:
            code, msg = s.rcpt(r)
            assert code == 250, (r, code, msg)
        code, msg = s.data(body)
        assert code == 250, msg
        return msg.decode().rsplit(" ", 1)[1]
