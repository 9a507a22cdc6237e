"""STARTTLS and SASL AUTH towards the next hop."""
import os
import pwd

import pytest

from peers import self_signed, send
from test_delivery import net, sent_line  # noqa: F401 (a fixture)

TLS_LINE = (r"Untrusted TLS connection established to 127\.0\.0\.21"
            r"\[127\.0\.0\.21\]:\d+: TLSv1\.[23] with cipher \S+ "
            r"\(\d+/\d+ bits\)")


def test_starttls_towards_the_peer(make_gateway, net):
    tls = self_signed(net.dir, "mx.remote.test")
    mx = net.peer("127.0.0.21", tls=tls, require_starttls=True)
    gw = make_gateway(external_relay_host=f"[127.0.0.21]:{mx.port}")
    qid = send(gw.port, "alice@example.com", ["bob@remote.test"], "tls\r\n")
    sent_line(gw, qid, "bob@remote.test", r"127\.0\.0\.21\[127\.0\.0\.21\]:\d+")
    gw.wait_log(TLS_LINE)
    assert mx.wait(1)[0]["tls"] is True


def test_encrypt_never_sends_in_clear(make_gateway, net):
    """Level encrypt against a server without STARTTLS: deferred, and the
    server never sees MAIL FROM."""
    mx = net.peer("127.0.0.21")
    gw = make_gateway(external_relay_host=f"[127.0.0.21]:{mx.port}",
                      smtp_tls_security_level="encrypt")
    qid = send(gw.port, "alice@example.com", ["bob@remote.test"], "x\r\n")
    gw.wait_log(rf"{qid}: to=<bob@remote.test>, relay=none, .*dsn=4\.7\.4, "
                r"status=deferred \(TLS is required, but was not offered by "
                r"host 127\.0\.0\.21\[127\.0\.0\.21\]\)")
    assert mx.handler.ehlos == 1
    assert mx.handler.rcpt_seen == {}
    assert mx.messages == []
    assert os.path.exists(os.path.join(gw.params["queue_directory"], "queue",
                                       qid))


def test_level_none_does_not_starttls(make_gateway, net):
    tls = self_signed(net.dir, "mx.remote.test")
    mx = net.peer("127.0.0.21", tls=tls)
    gw = make_gateway(external_relay_host=f"[127.0.0.21]:{mx.port}",
                      smtp_tls_security_level="none")
    qid = send(gw.port, "alice@example.com", ["bob@remote.test"], "x\r\n")
    sent_line(gw, qid, "bob@remote.test", r"127\.0\.0\.21\[127\.0\.0\.21\]:\d+")
    assert mx.wait(1)[0]["tls"] is False
    assert "TLS connection established to" not in gw.log()


def set_sasl_map(gw, text, **more):
    """Writes the password file (mode 0600, owned by the mail_owner, who
    must read it) and reloads the running gateway."""
    path = os.path.join(gw.dir, "sasl_passwd")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    if os.geteuid() == 0:
        pw = pwd.getpwnam(gw.params.get("mail_owner", "mailseal"))
        os.chown(path, pw.pw_uid, pw.pw_gid)
    gw.params["smtp_sasl_password_maps"] = path
    gw.params.update(more)
    gw.write_config()
    gw.reload()


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_sasl_towards_relay_over_starttls(make_gateway, net, mech):
    tls = self_signed(net.dir, "relay.test")
    relay = net.peer("127.0.0.22", tls=tls, require_starttls=True,
                     users={"gwuser": "s3cret:pass"},
                     auth_exclude=["PLAIN"] if mech == "LOGIN" else [])
    gw = make_gateway(external_relay_host=f"[127.0.0.22]:{relay.port}")
    set_sasl_map(gw, "# relay credentials\n"
                 f"[127.0.0.22]:{relay.port} gwuser:s3cret:pass\n"
                 "[other.test]:587 someone:else\n")
    qid = send(gw.port, "alice@example.com", ["bob@remote.test"], "auth\r\n")
    sent_line(gw, qid, "bob@remote.test", r"127\.0\.0\.22\[127\.0\.0\.22\]:\d+")
    m = relay.wait(1)[0]
    assert m["auth"] == "gwuser" and m["tls"] is True
    assert relay.handler.last_mechanism == mech
    assert "s3cret" not in gw.log()


def test_sasl_wrong_password_defers(make_gateway, net):
    tls = self_signed(net.dir, "relay.test")
    relay = net.peer("127.0.0.22", tls=tls, users={"gwuser": "right"})
    gw = make_gateway(external_relay_host=f"[127.0.0.22]:{relay.port}")
    set_sasl_map(gw, f"[127.0.0.22]:{relay.port} gwuser:Wr0ngPw\n")
    qid = send(gw.port, "alice@example.com", ["bob@remote.test"], "x\r\n")
    gw.wait_log(rf"{qid}: to=<bob@remote.test>, relay=none, .*dsn=4\.7\.8, "
                r"status=deferred \(SASL authentication failed; server "
                r"127\.0\.0\.22\[127\.0\.0\.22\] said: 535 5\.7\.8 ")
    assert relay.messages == []
    assert "Wr0ngPw" not in gw.log()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_sasl_only_over_tls(make_gateway, net):
    """A relay that offers AUTH without TLS gets no password."""
    relay = net.peer("127.0.0.22", users={"gwuser": "pw"},
                     auth_require_tls=False)
    gw = make_gateway(external_relay_host=f"[127.0.0.22]:{relay.port}")
    set_sasl_map(gw, f"[127.0.0.22]:{relay.port} gwuser:pw\n")
    qid = send(gw.port, "alice@example.com", ["bob@remote.test"], "x\r\n")
    gw.wait_log(rf"{qid}: to=<bob@remote.test>, relay=none, .*dsn=4\.7\.0, "
                r"status=deferred \(SASL authentication failed; cannot "
                r"authenticate to server 127\.0\.0\.22\[127\.0\.0\.22\]: "
                r"credentials go only over TLS")
    assert getattr(relay.handler, "auth_attempts", 0) == 0
    # Allowed explicitly, the same relay takes the credentials in clear.
    gw.params["smtp_sasl_tls_only"] = "no"
    gw.write_config()
    gw.reload()
    gw.ctl("queue", "flush")
    sent_line(gw, qid, "bob@remote.test", r"127\.0\.0\.22\[127\.0\.0\.22\]:\d+")
    assert relay.wait(1)[0]["auth"] == "gwuser"
