#!/usr/bin/python3
"""Throughput of the whole daemon, and the peak memory of its processes
(docs/architecture.md, "Measured"):

    tests/tools/measure-engine.py [BUILD_DIR] [MESSAGES] [plain]

Postfix's smtp-source sends MESSAGES messages of 10 KB over 20 sessions
to a mailseald on loopback, which relays them to a local smtp-sink, for
three policies: plain relay (encrypt_mode no_encryption), S/MIME
encryption to an RSA-2048 certificate, and sign+encrypt. The time runs
from the first connection to the last "status=sent" log line. Must run
as root (the daemon drops to mail_owner). Prints a Markdown table.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests/integration"))
from engine_pki import PKI, setup_store  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
COUNT = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
PLAIN_ONLY = len(sys.argv) > 3 and sys.argv[3] == "plain"
MAILSEALD = os.path.join(BUILD, "src/daemon/mailseald")
CTL = os.path.join(BUILD, "src/ctl/mailsealctl")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gw:
    def __init__(self, d, sink_port):
        self.d = d
        self.port = free_port()
        self.conf = os.path.join(d, "mailseal.conf")
        self.log_path = os.path.join(d, "mailseal.log")
        hop = f"[127.0.0.1]:{sink_port}"
        with open(self.conf, "w") as f:
            f.write(f"""myhostname = gw.example.com
smtpd_listen = 127.0.0.1:{self.port}
queue_directory = {d}/spool
data_directory = {d}/data
store = sqlite:{d}/data/store.db
maillog_file = {self.log_path}
relay_domains = example.com
mynetworks = 127.0.0.0/8
external_relay_host = {hop}
internal_relay_host = {hop}
smtpd_client_connection_limit = 0
admin_listen =
engine_processes = {os.environ.get("ENGINES", "0")}
""")

    def ctl(self, *args):
        subprocess.run([CTL, "-c", self.conf, *args], check=True,
                       capture_output=True)

    def start(self):
        self.proc = subprocess.Popen([MAILSEALD, "-f", "-c", self.conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.wait(r"dispatcher ready", 1)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait(self, rx, n, timeout=600):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(re.findall(rx, self.log())) >= n:
                return
            time.sleep(0.02)
        raise TimeoutError(rx)

    def pids(self):
        out = subprocess.run(["pgrep", "-f", "--", f"-c {self.conf}"],
                             capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def role_of(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    return argv[argv.index(b"-x") + 1].decode() if b"-x" in argv \
        else "master"


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vmhwm(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))


def run_one(gw, name, sender, sent_before):
    t0 = time.time()
    subprocess.run(["smtp-source", "-s", "20", "-l", "10240", "-m",
                    str(COUNT), "-f", sender, "-t", "bob@remote.test",
                    f"127.0.0.1:{gw.port}"], check=True)
    t_in = time.time() - t0
    gw.wait(r"status=sent", sent_before + COUNT)
    t = time.time() - t0
    return name, COUNT / t_in, COUNT / t


def main():
    d = tempfile.mkdtemp(prefix="measure-engine-", dir="/tmp")
    os.chmod(d, 0o755)
    sink_port = free_port()
    sink = subprocess.Popen(["smtp-sink", "-u", "root",
                             f"127.0.0.1:{sink_port}", "1000"])
    pki_dir = os.path.join(d, "pki")
    os.mkdir(pki_dir)
    pki = PKI(pki_dir)
    bob = pki.leaf("bob", "bob@remote.test")        # RSA-2048
    alice = pki.leaf("alice", "alice@example.com")  # RSA-2048
    gw = Gw(d, sink_port)
    setup_store(gw, pki, certs=[bob], keys=[alice])
    gw.ctl("global", "set", "encrypt_mode", "no_encryption")
    gw.start()
    rows = []
    try:
        rows.append(run_one(gw, "plain relay (no_encryption)",
                            "alice@example.com", 0))
        if PLAIN_ONLY:
            raise StopIteration
        gw.ctl("global", "set", "encrypt_mode", "mandatory")
        rows.append(run_one(gw, "encrypt (RSA-2048, AES-256-CBC)",
                            "frank@example.com", COUNT))
        gw.ctl("global", "set", "sign_mode", "always")
        rows.append(run_one(gw, "sign+encrypt (RSA-2048)",
                            "alice@example.com", 2 * COUNT))
    except StopIteration:
        pass
    finally:
        peaks = [(role_of(p), p, vmhwm(p), cpu_s(p)) for p in gw.pids()]
        gw.stop()
        sink.terminate()
        sink.wait()
    print(f"{COUNT} messages of 10 KB, 20 sessions, {os.cpu_count()} CPUs\n")
    print("| policy | accepted (msg/s) | end to end (msg/s) |")
    print("|---|---|---|")
    for name, a, e in rows:
        print(f"| {name} | {a:.0f} | {e:.0f} |")
    print("\n| process | peak RSS (VmHWM, MB) | CPU (s) |\n|---|---|---|")
    for role, pid, kb, cpu in sorted(peaks):
        print(f"| {role} (pid {pid}) | {kb / 1024:.1f} | {cpu:.2f} |")
    print(f"| all | {sum(p[2] for p in peaks) / 1024:.1f} | "
          f"{sum(p[3] for p in peaks):.2f} |")
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
