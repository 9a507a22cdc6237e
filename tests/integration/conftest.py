"""Fixtures for the integration tests: the real mailseald on loopback.

Every test gets its own directory, configuration and ports, so that tests
can run side by side. Started as root, the daemon drops to the mailseal
user: test directories live under a world-searchable base for that reason.
"""
import os
import re
import signal
import socket
import subprocess
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("MAILSEAL_BUILD", os.path.join(REPO, "build"))
MAILSEALD = os.path.join(BUILD, "src/daemon/mailseald")
MAILSEALCTL = os.path.join(BUILD, "src/ctl/mailsealctl")
SANITIZED = os.environ.get("MAILSEAL_SANITIZED") == "1"
TEST_BASE = "/tmp/mailseal-tests"


def free_port(host="127.0.0.1"):
    """A TCP port that nothing listens on now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host, port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port}")


class Gateway:
    """One mailseald instance with its own directory and ports."""

    def __init__(self, directory, params):
        self.dir = directory
        self.port = free_port()
        self.admin_port = free_port()
        self.conf = os.path.join(directory, "mailseal.conf")
        self.log_path = os.path.join(directory, "mailseal.log")
        self.stderr_path = os.path.join(directory, "stderr.log")
        self.params = {
            "myhostname": "gw.example.com",
            "smtpd_listen": f"127.0.0.1:{self.port}",
            "queue_directory": os.path.join(directory, "spool"),
            "data_directory": os.path.join(directory, "data"),
            "store": "sqlite:" + os.path.join(directory, "data/store.db"),
            "maillog_file": self.log_path,
            "relay_domains": "example.com",
            "mynetworks": "127.0.0.1/32, 127.0.0.2/32, [::1]/128",
            # Tests run side by side: the console too gets its own port.
            "admin_listen": f"127.0.0.1:{self.admin_port}",
        }
        self.params.update(params)
        self.proc = None
        self.write_config()

    def write_config(self, extra_text=""):
        with open(self.conf, "w") as f:
            f.write("# written by the integration tests\n")
            for k, v in self.params.items():
                f.write(f"{k} = {v}\n")
            f.write(extra_text)

    def start(self, wait=True, run_as=None):
        """Starts the daemon; run_as=(uid, gid) starts it without root."""
        self._stderr = open(self.stderr_path, "ab")
        prefix = []
        if run_as is not None:
            prefix = ["setpriv", f"--reuid={run_as[0]}",
                      f"--regid={run_as[1]}", "--clear-groups"]
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "abort_on_error=1:detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        self.log_mark = self.log_size()
        self.proc = subprocess.Popen(prefix + [MAILSEALD, "-f", "-c", self.conf],
                                     stdout=self._stderr, stderr=self._stderr,
                                     env=env)
        if wait:
            self.wait_log("dispatcher ready", since=self.log_mark)
            wait_port("127.0.0.1", self.port)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        # A SIGKILLed parent leaves its children: end them too.
        subprocess.run(["pkill", "-KILL", "-f", "--", f"-c {self.conf}"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._stderr.close()

    def kill9(self):
        """kill -9 of every mailseald process of this instance."""
        subprocess.run(["pkill", "-KILL", "-f", "--", f"-c {self.conf}"])
        self.proc.wait()
        self.proc = None
        self._stderr.close()

    def sanitizer_errors(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            return ""
        found = [m.group(0) for m in re.finditer(
            r"(ERROR: AddressSanitizer.*|runtime error:.*|"
            r"ERROR: LeakSanitizer.*)", text)]
        return "\n".join(found)

    def ctl(self, *args, check=True, input=None):
        r = subprocess.run([MAILSEALCTL, "-c", self.conf, *args],
                           capture_output=True, text=True, input=input,
                           timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"mailsealctl {' '.join(args)} failed "
                                 f"({r.returncode}): {r.stderr}{r.stdout}")
        return r

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except FileNotFoundError:
            return 0

    def log(self, since=0):
        try:
            with open(self.log_path, errors="replace") as f:
                f.seek(since)
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=15.0, since=0):
        """Waits for a log line matching the regex; returns the match."""
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = rx.search(self.log(since))
            if m:
                return m
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"mailseald exited ({self.proc.returncode}) while "
                    f"waiting for {pattern!r}:\n{self.log(since)[-3000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"no log line matches {pattern!r}:\n"
                           f"{self.log(since)[-3000:]}")

    def queue_ids(self, subdir="queue"):
        d = os.path.join(self.params["queue_directory"], subdir)
        return sorted(os.listdir(d))

    def reload(self):
        mark = self.log_size()
        self.ctl("reload")
        self.wait_log(r"dispatcher\[\d+\]: configuration reloaded", since=mark)


@pytest.fixture
def make_gateway(request):
    """A factory: make_gateway(param=value, ...) -> started Gateway."""
    os.makedirs(TEST_BASE, exist_ok=True)
    os.chmod(TEST_BASE, 0o755)
    made = []

    def make(start=True, **params):
        name = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:40]
        d = tempfile.mkdtemp(prefix=name + "-", dir=TEST_BASE)
        os.chmod(d, 0o755)
        gw = Gateway(d, {k: str(v) for k, v in params.items()})
        made.append(gw)
        if start:
            gw.start()
        return gw

    yield make
    errors = []
    for gw in made:
        gw.stop()
        e = gw.sanitizer_errors()
        if e:
            errors.append(f"{gw.dir}: {e}")
    assert not errors, "sanitizer reports:\n" + "\n".join(errors)


@pytest.fixture
def gateway(make_gateway):
    return make_gateway()


class SMTPClient:
    """A raw SMTP client: exact bytes out, replies in, nothing hidden."""

    def __init__(self, port, host="127.0.0.1", source="127.0.0.1",
                 timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0))
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def reply(self):
        """One whole (possibly multi-line) reply as text."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed; got "
                                          + repr(self.buf))
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode())
            if len(line) < 4 or line[3:4] != b"-":
                return "\n".join(lines)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def closed(self, timeout=5):
        """True when the server closes the connection within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


@pytest.fixture
def smtp():
    """smtp(port, source=...) -> SMTPClient, greeting already read."""
    clients = []

    def connect(port, source="127.0.0.1", read_greeting=True):
        c = SMTPClient(port, source=source)
        clients.append(c)
        if read_greeting:
            c.greeting = c.reply()
        return c

    yield connect
    for c in clients:
        c.close()
