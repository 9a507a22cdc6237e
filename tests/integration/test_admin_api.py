"""The admin console's JSON API against the real daemon over HTTPS.

Every route: authentication required (401), CSRF token required for every
state-changing request (403), bad input answered 400 with field errors and
nothing changed, and the happy paths with their effect on the daemon, the
configuration file and the store.
"""
import http.client
import json
import os
import pwd
import re
import ssl
import subprocess
import time
import uuid

import pytest

from conftest import REPO, SANITIZED, Gateway, SMTPClient, free_port, wait_port

API_C = os.path.join(REPO, "src/admin/api.c")
FPR0 = "0" * 64
QID0 = "1K19VAQGS8D0"


def routes_in_source():
    """Every (method, pattern) of the C route table."""
    with open(API_C) as f:
        text = f.read()
    return re.findall(r'\{ "(GET|POST|PUT|DELETE)",\s*"(/api/v1/[^"]*)"', text)


def sample_path(pattern):
    return (pattern.replace(":fpr", FPR0).replace(":id", QID0)
            .replace(":action", "hold").replace(":name", "example.org")
            .replace(":email", "someone@example.org"))


class Console:
    """A client of the console: one cookie jar, the CSRF token."""

    def __init__(self, gw, source="127.0.0.1"):
        self.gw = gw
        self.source = source
        self.cookie = None
        self.csrf = None
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE

    def request(self, method, path, body=None, *, headers=None, raw=None,
                ctype=None, csrf=True, cookie=True):
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.gw.admin_port, context=self.ctx, timeout=30,
            source_address=(self.source, 0))
        h = {"Host": f"127.0.0.1:{self.gw.admin_port}"}
        if cookie and self.cookie:
            h["Cookie"] = self.cookie
        if csrf and self.csrf and method not in ("GET", "HEAD"):
            h["X-CSRF-Token"] = self.csrf
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if ctype is not None:
            h["Content-Type"] = ctype
        h.update(headers or {})
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        payload = resp.read()
        conn.close()
        resp.body = payload
        try:
            resp.json = json.loads(payload) if payload else None
        except ValueError:
            resp.json = None
        return resp

    def get(self, path, **kw):
        return self.request("GET", "/api/v1" + path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", "/api/v1" + path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", "/api/v1" + path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", "/api/v1" + path, **kw)

    def login(self, user="admin", password=None):
        r = self.post("/login", {"username": user,
                                 "password": password or self.gw.password})
        if r.status == 200:
            m = re.match(r"mailseal_session=([0-9a-f]+);", r.getheader("Set-Cookie"))
            self.cookie = f"mailseal_session={m.group(1)}"
            self.csrf = r.json["csrf_token"]
        return r

    def upload(self, path, fields, files):
        boundary = "----mailseal" + uuid.uuid4().hex
        parts = []
        for k, v in fields.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'.encode()
                         + v.encode() + b"\r\n")
        for k, (fname, data) in files.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; '
                         f'filename="{fname}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
                         + data + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self.request("POST", "/api/v1" + path, raw=body,
                            ctype=f"multipart/form-data; boundary={boundary}")


def first_password(gw):
    with open(gw.stderr_path) as f:
        m = re.search(r"password: (\S+)", f.read())
    assert m, "the first admin's password is printed at first start"
    return m.group(1)


def make_console_gateway(directory, **params):
    os.makedirs("/tmp/mailseal-tests", exist_ok=True)
    gw = Gateway(directory, params)
    gw.start()
    wait_port("127.0.0.1", gw.admin_port)
    gw.wait_log(r"admin console ready")
    gw.password = first_password(gw)
    return gw


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    import tempfile
    os.makedirs("/tmp/mailseal-tests", exist_ok=True)
    os.chmod("/tmp/mailseal-tests", 0o755)
    d = tempfile.mkdtemp(prefix="admin_api-", dir="/tmp/mailseal-tests")
    os.chmod(d, 0o755)
    g = make_console_gateway(d, internal_relay_host="[127.0.0.1]:1")
    yield g
    g.stop()
    errors = g.sanitizer_errors()
    assert not errors, "sanitizer reports:\n" + errors


@pytest.fixture
def admin(gw):
    c = Console(gw)
    assert c.login().status == 200
    return c


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ---- authentication, CSRF, headers ----

def test_every_route_needs_a_session(gw):
    routes = routes_in_source()
    assert len(routes) >= 40
    c = Console(gw)
    for method, pattern in routes:
        if pattern == "/api/v1/login":
            continue
        for cookie in (None, "mailseal_session=" + "ab" * 32, "mailseal_session=junk"):
            c.cookie = cookie
            r = c.request(method, sample_path(pattern), body={} if method in ("PUT", "POST") else None)
            assert r.status == 401, f"{method} {pattern} with {cookie}: {r.status}"
            assert r.json == {"error": "authentication required"}
            assert r.getheader("Cache-Control") == "no-store"


def test_every_state_change_needs_the_csrf_token(gw, admin):
    routes = [(m, p) for m, p in routes_in_source() if m != "GET" and p != "/api/v1/login"]
    for method, pattern in routes:
        path = sample_path(pattern)
        body = {} if method in ("PUT", "POST") else None
        r = admin.request(method, path, body=body, csrf=False)
        assert r.status == 403, f"{method} {pattern} without token: {r.status}"
        r = admin.request(method, path, body=body, csrf=False,
                          headers={"X-CSRF-Token": "0" * 64})
        assert r.status == 403, f"{method} {pattern} with a wrong token: {r.status}"
        # A browser on another site sends its Origin: refused even with the token.
        r = admin.request(method, path, body=body,
                          headers={"Origin": "https://evil.example"})
        assert r.status == 403, f"{method} {pattern} cross-origin: {r.status}"
    # Nothing of it happened.
    assert admin.get("/domains").json["items"] == []
    assert [a["username"] for a in admin.get("/admins").json["admins"]] == ["admin"]
    # The console's own origin passes.
    r = admin.post("/domains", {"name": "origin.example"},
                   headers={"Origin": f"https://127.0.0.1:{gw.admin_port}"})
    assert r.status == 201
    assert admin.delete("/domains/origin.example").status == 204


def test_security_headers_and_static_files(gw):
    c = Console(gw)
    r = c.request("GET", "/")
    assert r.status == 200
    assert r.getheader("Content-Type").startswith("text/html")
    assert b'<script src="/app.js" defer></script>' in r.body
    csp = r.getheader("Content-Security-Policy")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert r.getheader("X-Frame-Options") == "DENY"
    assert r.getheader("X-Content-Type-Options") == "nosniff"
    etag = r.getheader("ETag")
    assert c.request("GET", "/", headers={"If-None-Match": etag}).status == 304
    assert c.request("GET", "/app.js").getheader("Content-Type").startswith("text/javascript")
    assert c.request("GET", "/app.css").status == 200
    assert c.request("GET", "/nothing.js").status == 404
    assert c.request("GET", "/../etc/passwd").status == 404
    assert c.request("POST", "/", raw=b"x").status in (405, 413)
    r = c.request("GET", "/api/v1/nothing")
    assert r.status == 404 and r.getheader("Cache-Control") == "no-store"
    assert c.request("DELETE", "/api/v1/mta").status == 405


def test_login_session_cookie_and_logout(gw):
    c = Console(gw)
    assert c.post("/login", {"username": "admin", "password": "wrong password"}).status == 401
    assert c.post("/login", {"username": "nobody", "password": "x"}).status == 401
    r = c.login()
    assert r.status == 200
    cookie = r.getheader("Set-Cookie")
    assert re.match(r"mailseal_session=[0-9a-f]{64}; ", cookie)
    for attr in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
        assert attr in cookie
    assert re.fullmatch(r"[0-9a-f]{64}", r.json["csrf_token"])
    assert r.json["username"] == "admin"
    s = c.get("/session")
    assert s.status == 200 and s.json["csrf_token"] == c.csrf
    # The login takes JSON only: a cross-site form cannot post it.
    r = c.request("POST", "/api/v1/login", raw=b"username=admin&password=x",
                  ctype="application/x-www-form-urlencoded")
    assert r.status == 415
    r = c.post("/login", {"username": "admin"})
    assert r.status == 400 and r.json["errors"] == {"password": "is required"}
    r = c.post("/login", {"username": "admin", "password": "x", "extra": 1})
    assert r.status == 400 and r.json["errors"]["extra"] == "unknown field"
    r = c.post("/logout")
    assert r.status == 204 and "Max-Age=0" in r.getheader("Set-Cookie")
    assert c.get("/session").status == 401
    assert "admin admin logged in from 127.0.0.1" in gw.log()
    assert gw.password not in gw.log(), "no password in the log"


def test_failed_logins_are_rate_limited(gw, admin):
    assert admin.post("/admins", {"username": "carol", "password": "carols password"}).status == 201
    a = Console(gw, source="127.0.0.2")
    for _ in range(5):
        assert a.post("/login", {"username": "carol", "password": "wrong"}).status == 401
    r = a.post("/login", {"username": "carol", "password": "carols password"})
    assert r.status == 429
    assert 1 <= int(r.getheader("Retry-After")) <= 30
    # Per user: another address cannot try carol either.
    b = Console(gw, source="127.0.0.3")
    assert b.login("carol", "carols password").status == 429
    # Per address: 127.0.0.2 cannot try another user.
    assert a.login().status == 429
    # Another address and user are not affected.
    assert b.login().status == 200
    assert "admin login failed for user carol from 127.0.0.2" in gw.log()
    assert admin.delete("/admins/carol").status == 204


# ---- MTA ----

def test_mta_get_shows_file_and_running(admin):
    r = admin.get("/mta")
    assert r.status == 200
    st = r.json
    assert st["fields"]["relay_domains"] == ["example.com"]
    assert st["fields"]["internal_relay_host"] == {"host": "127.0.0.1", "port": 1, "mx": False}
    assert st["fields"]["external_relay_host"] == {"host": "", "port": 25, "mx": False}
    assert st["running"] == st["fields"] and st["pending"] == []
    assert st["writable"] is True


BAD_MTA = [
    ({"myhostname": "bad host!"}, "myhostname", "not a valid host name"),
    ({"relay_domains": ["example.com", "not_a_domain!"]}, "relay_domains", "not a valid domain name"),
    ({"relay_domains": ["a.example b.example"]}, "relay_domains", "one entry at a time"),
    ({"relay_domains": "example.com"}, "relay_domains", "must be a list"),
    ({"relay_domains": ["a.example", "A.example"]}, "relay_domains", "listed twice"),
    ({"mynetworks": ["300.1.1.1/8"]}, "mynetworks", "not a network"),
    ({"internal_relay_host": {"host": "mail.example.com", "port": 70000}}, "internal_relay_host", "port"),
    ({"internal_relay_host": {"host": "10.0.0.5", "mx": True}}, "internal_relay_host", "MX"),
    ({"internal_relay_host": "[10.0.0.5]:25"}, "internal_relay_host", "object"),
    ({"external_relay_host": {"host": "[x]", "port": 25}}, "external_relay_host", "brackets"),
    ({"match_subdomains": "yes"}, "match_subdomains", "true or false"),
    ({"before_filter_message_size_limit": 10}, "before_filter_message_size_limit", "1024"),
    ({"before_filter_message_size_limit": "big"}, "before_filter_message_size_limit", "whole number"),
    ({"unverified_recipient_reject_code": 499}, "unverified_recipient_reject_code", "450, 550"),
    ({"after_filter_message_size_limit": 5000}, "after_filter_message_size_limit", "must not be smaller"),
    ({"reject_unverified_recipient": True, "internal_relay_host": {"host": "", "port": 25}},
     "reject_unverified_recipient", "needs an internal_relay_host"),
    ({"mail_owner": "root"}, "mail_owner", "unknown field"),
    ({"smtp_helo_name": "a\nb"}, "smtp_helo_name", ""),
]


@pytest.mark.parametrize("body,key,text", BAD_MTA)
def test_mta_bad_input_changes_nothing(gw, admin, body, key, text):
    before = read(gw.conf)
    mtime = os.stat(gw.conf).st_mtime_ns
    # A good field alongside is not written either: all or nothing.
    r = admin.put("/mta", {**body, "myhostname": body.get("myhostname", "good.example.com")})
    assert r.status == 400, r.json
    assert key in r.json["errors"], r.json
    assert text in r.json["errors"][key]
    assert read(gw.conf) == before and os.stat(gw.conf).st_mtime_ns == mtime


def test_mta_body_must_be_a_json_object(gw, admin):
    before = read(gw.conf)
    r = admin.request("PUT", "/api/v1/mta", raw=b"{not json", ctype="application/json")
    assert r.status == 400 and "_body" in r.json["errors"]
    r = admin.request("PUT", "/api/v1/mta", raw=b'["myhostname"]', ctype="application/json")
    assert r.status == 400 and r.json["errors"]["_body"] == "must be a JSON object"
    r = admin.request("PUT", "/api/v1/mta", raw=b'{"myhostname": "a", "myhostname": "b"}',
                      ctype="application/json")
    assert r.status == 400
    r = admin.request("PUT", "/api/v1/mta", raw=b'{"myhostname": "x.example"}', ctype="text/plain")
    assert r.status == 415
    # Too large: refused from its Content-Length, before it is sent.
    import socket
    with socket.create_connection(("127.0.0.1", gw.admin_port)) as raw:
        with admin.ctx.wrap_socket(raw) as tls:
            tls.sendall(f"PUT /api/v1/mta HTTP/1.1\r\nHost: x\r\nCookie: {admin.cookie}\r\n"
                        f"X-CSRF-Token: {admin.csrf}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {2 << 20}\r\n\r\n".encode())
            assert tls.recv(100).startswith(b"HTTP/1.1 413 ")
    assert read(gw.conf) == before


def test_mta_save_is_pending_until_apply(gw, admin):
    with open(gw.conf, "a") as f:
        f.write("# a comment the console keeps\n")
    # The file stays root's: the console writes through the root
    # configuration writer, never as mail_owner.
    assert os.stat(gw.conf).st_uid == 0 and os.stat(gw.dir).st_uid == 0
    r = admin.put("/mta", {"myhostname": "applied.example.com",
                           "relay_domains": ["example.com", "example.net"],
                           "mynetworks": ["127.0.0.1/32", "10.0.0.5/32"],
                           "internal_relay_host": {"host": "127.0.0.1", "port": 1, "mx": False}})
    assert r.status == 200, r.json
    st = r.json
    assert sorted(st["pending"]) == ["myhostname", "mynetworks", "relay_domains"]
    assert st["running"]["myhostname"] == "gw.example.com"
    text = read(gw.conf).decode()
    assert "myhostname = applied.example.com\n" in text
    assert "relay_domains = example.com, example.net\n" in text
    assert "# a comment the console keeps\n" in text
    assert "# written by the integration tests\n" in text
    assert os.stat(gw.conf).st_uid == 0
    assert (os.stat(gw.conf).st_mode & 0o777) == 0o644
    assert re.search(r"mailseal/confwriter\[\d+\]: changed 3 parameters",
                     gw.log())
    # mailsealctl sees it as the file says.
    assert "applied.example.com" in gw.ctl("config", "show", "myhostname").stdout
    # Not yet in force.
    c = SMTPClient(gw.port)
    assert "gw.example.com" in c.reply()
    c.close()
    mark = gw.log_size()
    r = admin.post("/apply")
    assert r.status == 200, r.json
    assert r.json["reloaded"] is True and r.json["mta"]["pending"] == []
    gw.wait_log(r"dispatcher\[\d+\]: configuration reloaded", since=mark)
    c = SMTPClient(gw.port)
    assert c.reply().startswith("220 applied.example.com ")
    c.close()
    # Back to the default: the line goes.
    r = admin.put("/mta", {"myhostname": ""})
    assert r.status == 200 and "myhostname" not in read(gw.conf).decode()
    assert admin.post("/apply").status == 200


def test_apply_refuses_a_broken_file(gw, admin):
    good = read(gw.conf)
    with open(gw.conf, "ab") as f:
        f.write(b"no_such_parameter = 1\n")
    try:
        r = admin.post("/apply")
        assert r.status == 400
        assert "unknown parameter 'no_such_parameter'" in json.dumps(r.json["errors"])
        st = admin.get("/mta").json
        assert st["file_errors"] and "no_such_parameter" in st["file_errors"][0]
    finally:
        with open(gw.conf, "wb") as f:
            f.write(good)


def test_sasl_credentials(gw, admin):
    r = admin.get("/mta/sasl")
    assert r.status == 200 and r.json["entries"] == [] and not r.json["configured"]
    before = read(gw.conf)
    for body, text in [
        ({"entries": [{"nexthop": "", "username": "u", "password": "p"}]}, "nexthop"),
        ({"entries": [{"nexthop": "[relay.example]:587", "username": "a:b", "password": "p"}]}, "username"),
        ({"entries": [{"nexthop": "[relay.example]:587", "username": "u"}]}, "password is required"),
        ({"entries": [{"nexthop": "[relay.example]:587", "username": "u", "password": " p"}]}, "blank"),
        ({"entries": "x"}, "list"),
    ]:
        r = admin.put("/mta/sasl", body)
        assert r.status == 400 and text in r.json["errors"]["sasl"], r.json
    assert read(gw.conf) == before
    path = os.path.join(gw.params["data_directory"], "sasl_passwd")
    assert not os.path.exists(path)
    r = admin.put("/mta/sasl", {"entries": [
        {"nexthop": "[relay.example]:587", "username": "gw", "password": "s3cret pass"}]})
    assert r.status == 200, r.json
    assert r.json["entries"] == [{"nexthop": "[relay.example]:587", "username": "gw", "has_password": True}]
    assert "s3cret" not in json.dumps(r.json)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert "[relay.example]:587 gw:s3cret pass\n" in read(path).decode()
    assert f"smtp_sasl_password_maps = {path}\n" in read(gw.conf).decode()
    # Without a password the old one stays.
    r = admin.put("/mta/sasl", {"entries": [{"nexthop": "[relay.example]:587", "username": "gw2"}]})
    assert r.status == 200
    assert "[relay.example]:587 gw2:s3cret pass\n" in read(path).decode()
    assert "s3cret" not in gw.log()
    assert admin.put("/mta/sasl", {"entries": []}).status == 200


# ---- network, logs ----

def test_network_info_and_dns_servers(gw, admin):
    r = admin.get("/network")
    assert r.status == 200
    n = r.json
    assert n["hostname"] == os.uname().nodename
    lo = [i for i in n["interfaces"] if i["name"] == "lo"][0]
    assert {"family": "inet", "address": "127.0.0.1", "prefix": 8} in lo["addresses"]
    assert isinstance(n["dns"]["in_use"], list)
    before = read(gw.conf)
    r = admin.put("/network/dns", {"dns_servers": ["not an address"]})
    assert r.status == 400 and "dns_servers" in r.json["errors"]
    r = admin.put("/network/dns", {"dns_servers": ["192.0.2.53"], "myhostname": "x.example"})
    assert r.status == 400 and r.json["errors"]["myhostname"] == "unknown field"
    assert read(gw.conf) == before
    r = admin.put("/network/dns", {"dns_servers": ["127.0.0.1:5353", "[::1]:5353"]})
    assert r.status == 200 and r.json["pending"] == ["dns_servers"]
    assert "dns_servers = 127.0.0.1:5353, [::1]:5353\n" in read(gw.conf).decode()
    assert admin.post("/apply").status == 200
    assert admin.get("/network").json["dns"]["in_use"] == ["127.0.0.1:5353", "[::1]:5353"]
    assert admin.put("/network/dns", {"dns_servers": []}).status == 200
    assert admin.post("/apply").status == 200


def send_message(gw, rcpt="someone@example.com", subject="api test"):
    c = SMTPClient(gw.port)
    c.reply()
    for line in ("EHLO client.test", "MAIL FROM:<alice@client.test>", f"RCPT TO:<{rcpt}>", "DATA"):
        c.cmd(line)
    r = c.cmd(f"Subject: {subject}\r\nFrom: alice@client.test\r\n\r\nhello\r\n.")
    c.close()
    return re.search(r"queued as (\w+)", r).group(1)


def test_logs_filtered_and_incremental(gw, admin):
    qid = send_message(gw)
    gw.wait_log(qid + r": from=<alice@client\.test>")
    r = admin.get(f"/logs?qid={qid}")
    assert r.status == 200
    assert r.json["lines"] and all(qid in l for l in r.json["lines"])
    r = admin.get("/logs?q=ALICE@CLIENT.TEST&lines=1")
    assert len(r.json["lines"]) == 1 and "alice@client.test" in r.json["lines"][0]
    offset = r.json["offset"]
    assert admin.get(f"/logs?after={offset}&q=nothing-like-this").json["lines"] == []
    qid2 = send_message(gw, subject="second")
    gw.wait_log(qid2 + r": from=")
    new = admin.get(f"/logs?after={offset}").json["lines"]
    assert any(qid2 in l for l in new) and not any(f"{qid}: from=" in l for l in new)
    for q, key in [("qid=nope", "qid"), ("lines=0", "lines"), ("lines=x", "lines"),
                   ("after=-1", "after"), ("q=" + "x" * 201, "q")]:
        r = admin.get("/logs?" + q)
        assert r.status == 400 and key in r.json["errors"], q


# ---- queue, send-test ----

def test_queue_list_show_and_actions(gw, admin):
    # The internal relay host ([127.0.0.1]:1) refuses: the message waits.
    qid = send_message(gw, subject="queued for the api")
    gw.wait_log(qid + r": to=<someone@example.com>.*status=deferred", timeout=30)
    r = admin.get("/queue")
    assert r.status == 200
    ids = [m["id"] for m in r.json["messages"]]
    assert qid in ids
    r = admin.get("/queue?q=someone@EXAMPLE.com&state=deferred")
    assert qid in [m["id"] for m in r.json["messages"]]
    assert admin.get("/queue?q=nobody-like-this").json["messages"] == []
    assert admin.get("/queue?state=bogus").status == 400
    m = admin.get(f"/queue/{qid}").json
    assert m["sender"] == "alice@client.test" and m["state"] == "deferred"
    assert m["recipients"][0]["address"] == "someone@example.com"
    assert "Subject: queued for the api\r\n" in m["headers"] and "hello" not in m["headers"]
    assert m["client"]["address"] == "127.0.0.1"
    assert admin.get("/queue/not-an-id").status == 400
    assert admin.get(f"/queue/{QID0}").status == 404
    # Bad input changes nothing.
    for body, key in [({}, "ids"), ({"ids": ["bad"]}, "ids"), ({"ids": [qid], "all": True}, "ids"),
                      ({"ids": [qid], "x": 1}, "x"), ({"ids": qid}, "ids")]:
        r = admin.post("/queue/hold", body)
        assert r.status == 400 and key in r.json["errors"], body
    assert admin.post("/queue/explode", {"ids": [qid]}).status == 404
    assert admin.get(f"/queue/{qid}").json["state"] == "deferred"
    r = admin.post("/queue/hold", {"ids": [qid]})
    assert r.status == 200 and r.json["done"] == [qid]
    assert admin.get(f"/queue/{qid}").json["state"] == "hold"
    r = admin.post("/queue/release", {"ids": [qid, QID0]})
    assert r.json == {"done": [qid], "missing": [QID0]}
    assert admin.get(f"/queue/{qid}").json["state"] != "hold"
    assert admin.post("/queue/requeue", {"ids": [qid]}).status == 200
    assert admin.post("/queue/flush", {}).status == 200
    r = admin.post("/queue/delete", {"ids": [qid]})
    assert r.status == 200 and r.json["done"] == [qid]
    deadline = time.time() + 10
    while admin.get(f"/queue/{qid}").status != 404 and time.time() < deadline:
        time.sleep(0.1)
    assert admin.get(f"/queue/{qid}").status == 404
    assert f"admin admin: queue hold" in gw.log()


def test_send_test(gw, admin):
    for body, key in [({"to": "b@example.com"}, "from"), ({"from": "a@example.com", "to": "x"}, "to"),
                      ({"from": "a@example.com", "to": "b@example.com", "subject": "a\nb"}, "subject"),
                      ({"from": "a@example.com", "to": "b@example.com", "cc": "c"}, "cc")]:
        r = admin.post("/send-test", body)
        assert r.status == 400 and key in r.json["errors"], body
    before = admin.get("/queue").json["total"]
    r = admin.post("/send-test", {"from": "postmaster@gw.example.com", "to": "dave@example.com",
                                  "subject": "api send-test"})
    assert r.status == 200, r.json
    qid = r.json["queue_id"]
    assert re.fullmatch(r"[0-9A-Z]{12}", qid)
    gw.wait_log(qid + r": client=localhost\[127\.0\.0\.1\], send-test")
    gw.wait_log(qid + r": to=<dave@example\.com>.*status=deferred", timeout=30)
    assert admin.get("/queue").json["total"] == before + 1
    m = admin.get(f"/queue/{qid}").json
    assert m["test"] is True and "Subject: api send-test" in m["headers"]
    assert admin.post("/queue/delete", {"ids": [qid]}).status == 200


# ---- admins ----

def test_admins(gw, admin):
    r = admin.get("/admins")
    assert r.status == 200 and r.json["admins"][0]["username"] == "admin" and r.json["admins"][0]["you"]
    for body, key in [({"username": "bob", "password": "short"}, "password"),
                      ({"username": "bad name", "password": "long enough pw"}, "username"),
                      ({"username": "admin", "password": "long enough pw"}, "username"),
                      ({"username": "bob"}, "password")]:
        r = admin.post("/admins", body)
        assert r.status == 400 and key in r.json["errors"], body
    assert [a["username"] for a in admin.get("/admins").json["admins"]] == ["admin"]
    assert admin.post("/admins", {"username": "bob", "password": "bobs password"}).status == 201
    bob = Console(gw)
    assert bob.login("bob", "bobs password").status == 200
    # Another's password needs no current one; one's own does.
    assert admin.put("/admins/bob/password", {"password": "short"}).status == 400
    assert admin.put("/admins/bob/password", {"password": "bobs new password"}).status == 204
    assert bob.get("/session").status == 401, "a new password ends the old sessions"
    assert bob.login("bob", "bobs new password").status == 200
    r = bob.put("/admins/bob/password", {"password": "another password"})
    assert r.status == 400 and "current_password" in r.json["errors"]
    r = bob.put("/admins/bob/password", {"password": "another password", "current_password": "wrong"})
    assert r.status == 400 and r.json["errors"]["current_password"] == "is wrong"
    r = bob.put("/admins/bob/password", {"password": "another password",
                                         "current_password": "bobs new password"})
    assert r.status == 204
    assert bob.get("/session").status == 200, "one's own session goes on"
    assert admin.put("/admins/nobody/password", {"password": "long enough pw"}).status == 404
    r = admin.delete("/admins/admin")
    assert r.status == 400 and "yourself" in r.json["errors"]["username"]
    assert admin.delete("/admins/nobody").status == 404
    assert admin.delete("/admins/bob").status == 204
    assert bob.get("/session").status == 401, "a deleted admin's session ends"


def test_mailsealctl_admin(gw, admin):
    r = gw.ctl("admin", "add", "eve", input="eves password\n")
    assert "added admin eve" in r.stdout
    assert "eve" in gw.ctl("admin", "list").stdout
    eve = Console(gw)
    assert eve.login("eve", "eves password").status == 200
    r = gw.ctl("admin", "passwd", "-r", "eve")
    newpw = re.search(r"eve password: (\S+)", r.stdout).group(1)
    assert eve.get("/session").status == 401
    assert eve.login("eve", newpw).status == 200
    r = gw.ctl("admin", "add", "x", input="short\n", check=False)
    assert r.returncode != 0 and "at least 10" in r.stderr
    assert gw.ctl("admin", "add", "eve", input="eves password\n", check=False).returncode != 0
    gw.ctl("admin", "delete", "eve")
    assert eve.get("/session").status == 401
    assert "eve" not in gw.ctl("admin", "list").stdout


# ---- domains, users, settings ----

def test_properties_table(admin):
    r = admin.get("/properties")
    props = {p["name"]: p for p in r.json["properties"]}
    assert props["locality"]["choices"] == ["internal", "external"]
    assert props["locality"]["default"] == "external"


def test_domains(gw, admin):
    for body, key in [({"name": "not a domain!"}, "name"), ({}, "name"), ({"name": 5}, "name"),
                      ({"name": "x.example", "extra": 1}, "extra")]:
        r = admin.post("/domains", body)
        assert r.status == 400 and key in r.json["errors"], body
    assert admin.get("/domains").json["items"] == []
    r = admin.post("/domains", {"name": "Example.COM"})
    assert r.status == 201 and r.json["name"] == "example.com"
    loc = [p for p in r.json["properties"] if p["name"] == "locality"][0]
    assert loc["inherit"] is True and loc["inherited"] == {"value": "external", "level": "default", "source": None}
    assert admin.post("/domains", {"name": "example.com"}).json["errors"]["name"].endswith("already exists")
    assert admin.post("/domains", {"name": "*.example.net"}).status == 201
    # Bad properties change nothing.
    for props, key in [({"locality": "inside"}, "locality"), ({"no_such": "x"}, "no_such"),
                       ({"locality": 1}, "locality"), ({"locality": "internal", "encrypt_mode": "x"}, "encrypt_mode")]:
        r = admin.put("/domains/example.com", {"properties": props})
        assert r.status == 400 and key in r.json["errors"], props
    assert admin.put("/domains/example.com", {"props": {}}).status == 400
    shown = gw.ctl("domain", "show", "example.com").stdout
    assert re.search(r"locality\s+external\s+default", shown), shown
    # Seed 4.8: Locality internal, not inherited.
    r = admin.put("/domains/example.com", {"properties": {"locality": "internal", "comment": "ours"}})
    assert r.status == 200
    loc = [p for p in r.json["properties"] if p["name"] == "locality"][0]
    assert loc["inherit"] is False and loc["value"] == "internal"
    assert re.search(r"locality\s+internal\s+domain", gw.ctl("domain", "show", "example.com").stdout)
    items = {d["name"]: d for d in admin.get("/domains").json["items"]}
    assert items["example.com"]["locality"] == "internal" and items["example.com"]["comment"] == "ours"
    # A wildcard passes its values down: sub.example.net inherits them.
    admin.put("/domains/*.example.net", {"properties": {"encrypt_mode": "mandatory"}})
    admin.post("/domains", {"name": "sub.example.net"})
    em = [p for p in admin.get("/domains/sub.example.net").json["properties"] if p["name"] == "encrypt_mode"][0]
    assert em["inherited"] == {"value": "mandatory", "level": "wildcard", "source": "*.example.net"}
    # Back to inherit.
    r = admin.put("/domains/example.com", {"properties": {"locality": None}})
    assert [p for p in r.json["properties"] if p["name"] == "locality"][0]["inherit"] is True
    assert admin.get("/domains/nowhere.example").status == 404
    assert admin.get("/domains/bad%20name").status == 404
    assert admin.get("/domains?q=net").json["items"][0]["name"] in ("*.example.net", "sub.example.net")
    for name in ("example.com", "*.example.net", "sub.example.net"):
        assert admin.delete(f"/domains/{name}").status == 204
    assert admin.delete("/domains/example.com").status == 404


def test_users_and_settings(gw, admin):
    assert admin.post("/users", {"name": "not-an-address"}).status == 400
    assert admin.post("/domains", {"name": "users.example"}).status == 201
    admin.put("/domains/users.example", {"properties": {"locality": "internal"}})
    r = admin.post("/users", {"name": "Alice@Users.Example"})
    assert r.status == 201 and r.json["name"] == "alice@users.example"
    loc = [p for p in r.json["properties"] if p["name"] == "locality"][0]
    assert loc["inherited"] == {"value": "internal", "level": "domain", "source": "users.example"}
    admin.post("/users", {"name": "bob@users.example"})
    assert [u["name"] for u in admin.get("/users?q=alice").json["items"]] == ["alice@users.example"]
    r = admin.put("/users/alice@users.example", {"properties": {"sign_mode": "sometimes"}})
    assert r.status == 400 and "sign_mode" in r.json["errors"]
    r = admin.put("/users/alice@users.example", {"properties": {"sign_mode": "always"}})
    assert r.status == 200
    assert re.search(r"sign_mode\s+always\s+user", gw.ctl("user", "show", "alice@users.example").stdout)
    # Global settings: what everyone inherits.
    s = admin.get("/settings").json
    assert s["name"] is None
    enc = [p for p in s["properties"] if p["name"] == "encrypt_mode"][0]
    assert enc["inherited"]["level"] == "default"
    before = gw.ctl("global", "show").stdout
    assert admin.put("/settings", {"properties": {"encrypt_mode": "bogus"}}).status == 400
    assert gw.ctl("global", "show").stdout == before
    assert admin.put("/settings", {"properties": {"encrypt_mode": "mandatory"}}).status == 200
    em = [p for p in admin.get("/users/bob@users.example").json["properties"] if p["name"] == "encrypt_mode"][0]
    assert em["inherited"] == {"value": "mandatory", "level": "global", "source": None}
    assert admin.put("/settings", {"properties": {"encrypt_mode": None}}).status == 200
    for u in ("alice@users.example", "bob@users.example"):
        assert admin.delete(f"/users/{u}").status == 204
    assert admin.get("/users/alice@users.example").status == 404
    assert admin.delete("/domains/users.example").status == 204


# ---- certificates, roots, CRLs, trust list ----

OPENSSL_CA_CONF = """
[ca]
default_ca = test
[test]
database = {d}/index.txt
crlnumber = {d}/crlnumber
default_md = sha256
default_crl_days = 30
certificate = {d}/ca.pem
private_key = {d}/ca.key
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_ee]
basicConstraints = CA:FALSE
keyUsage = digitalSignature,keyEncipherment
extendedKeyUsage = emailProtection
subjectAltName = email:{email}
"""


def openssl(*args, cwd=None):
    subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=cwd)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pki"))
    with open(f"{d}/ca.cnf", "w") as f:
        f.write(OPENSSL_CA_CONF.format(d=d, email="alice@certs.example"))
    open(f"{d}/index.txt", "w").close()
    with open(f"{d}/crlnumber", "w") as f:
        f.write("01\n")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem",
            "-days", "30", "-subj", "/CN=Test Root CA", "-config", f"{d}/ca.cnf", "-extensions", "v3_ca")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/alice.key", "-out", f"{d}/alice.csr",
            "-subj", "/CN=Alice/emailAddress=alice@certs.example")
    openssl("x509", "-req", "-in", f"{d}/alice.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
            "-CAcreateserial", "-out", f"{d}/alice.pem", "-days", "20", "-extfile", f"{d}/ca.cnf",
            "-extensions", "v3_ee")
    openssl("pkcs12", "-export", "-in", f"{d}/alice.pem", "-inkey", f"{d}/alice.key",
            "-out", f"{d}/alice.p12", "-passout", "pass:p12 password")
    openssl("x509", "-in", f"{d}/alice.pem", "-outform", "DER", "-out", f"{d}/alice.der")
    openssl("ca", "-gencrl", "-config", f"{d}/ca.cnf", "-out", f"{d}/ca.crl")
    return d


def fingerprint(path):
    out = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-fingerprint", "-sha256"],
                         check=True, capture_output=True, text=True).stdout
    return out.split("=", 1)[1].strip().replace(":", "").lower()


def test_certificates_roots_crls_ctl(gw, admin, pki):
    alice_fpr, root_fpr = fingerprint(f"{pki}/alice.pem"), fingerprint(f"{pki}/ca.pem")
    # Uploads are multipart/form-data only.
    assert admin.post("/certificates", {"file": "x"}).status == 415
    r = admin.upload("/certificates", {}, {})
    assert r.status == 400
    r = admin.upload("/certificates", {"password": "x"}, {})
    assert r.status == 400 and r.json["errors"]["file"] == "choose a file to upload"
    r = admin.upload("/certificates", {}, {"file": ("junk.pem", b"not a certificate")})
    assert r.status == 400 and "file" in r.json["errors"]
    r = admin.upload("/certificates", {"password": "wrong"}, {"file": ("alice.p12", read(f"{pki}/alice.p12"))})
    assert r.status == 400 and "password" in r.json["errors"], r.json
    r = admin.upload("/certificates", {"bind": "not a target!"}, {"file": ("a.der", read(f"{pki}/alice.der"))})
    assert r.status == 400 and "bind" in r.json["errors"]
    r = admin.upload("/certificates", {"colour": "red"}, {"file": ("a.der", read(f"{pki}/alice.der"))})
    assert r.status == 400 and r.json["errors"]["colour"] == "unknown field"
    r = admin.request("POST", "/api/v1/certificates", raw=b"--x\r\n",
                      ctype="multipart/form-data; boundary=x")
    assert r.status == 400 and "_body" in r.json["errors"]
    assert admin.get("/certificates").json["certificates"] == []

    # A root, then the PKCS#12 with its key.
    r = admin.upload("/roots", {}, {"file": ("ca.pem", read(f"{pki}/ca.pem"))})
    assert r.status == 200 and r.json["imported"][0]["fingerprint"] == root_fpr
    assert admin.upload("/roots", {}, {"file": ("a.p12", read(f"{pki}/alice.p12"))}).status == 400
    r = admin.upload("/certificates", {"password": "p12 password", "bind": "certs.example"},
                     {"file": ("alice.p12", read(f"{pki}/alice.p12"))})
    assert r.status == 200, r.json
    assert r.json["keys"] == 1
    assert any(i["fingerprint"] == alice_fpr and i["key"] for i in r.json["imported"])
    roots = admin.get("/roots").json["certificates"]
    assert [c["fingerprint"] for c in roots] == [root_fpr]
    certs = admin.get("/certificates?kind=end").json["certificates"]
    assert [c["fingerprint"] for c in certs] == [alice_fpr]
    c = certs[0]
    assert c["has_key"] and c["emails"] == ["alice@certs.example"] and c["trust"]["status"] == "valid"
    assert [x["fingerprint"] for x in admin.get("/certificates?email=alice@certs.example").json["certificates"]] == [alice_fpr]
    assert admin.get("/certificates?email=bob@certs.example").json["certificates"] == []
    assert alice_fpr in [x["fingerprint"] for x in admin.get("/certificates?key=1").json["certificates"]]
    assert admin.get("/certificates?expired=1").json["certificates"] == []
    for q, key in [("email=not-an-address", "email"), ("kind=other", "kind"), ("key=yes", "key")]:
        r = admin.get("/certificates?" + q)
        assert r.status == 400 and key in r.json["errors"]
    d = admin.get(f"/certificates/{alice_fpr}").json
    assert d["bindings"] == ["certs.example"] and d["for_encryption"]["status"] == "valid"
    assert d["ctl"] == "none"
    r = admin.get(f"/certificates/{alice_fpr}/pem")
    assert r.status == 200 and r.getheader("Content-Type") == "application/x-pem-file"
    assert "attachment" in r.getheader("Content-Disposition")
    assert r.body.decode().strip() == read(f"{pki}/alice.pem").decode().strip()
    assert b"PRIVATE" not in r.body
    assert admin.get(f"/certificates/{FPR0}").status == 404
    assert admin.get("/certificates/xyz").status == 404
    # The key is stored sealed: its PEM body is nowhere in the store.
    key_body = read(f"{pki}/alice.key").decode().split("\n")[1]
    store = read(gw.params["store"][7:])
    assert key_body.encode() not in store

    # The trust list.
    for body, key in [({"status": "grey"}, "status"), ({}, "status")]:
        r = admin.put(f"/ctl/{alice_fpr}", body)
        assert r.status == 400 and key in r.json["errors"]
    assert admin.put("/ctl/not-hex", {"status": "blacklisted"}).status == 400
    assert admin.get("/ctl").json["entries"] == []
    assert admin.put(f"/ctl/{alice_fpr}", {"status": "blacklisted"}).status == 200
    e = admin.get("/ctl").json["entries"]
    assert e[0]["fingerprint"] == alice_fpr and e[0]["status"] == "blacklisted" and e[0]["subject"]
    assert admin.get(f"/certificates/{alice_fpr}").json["trust"]["status"] == "blacklisted"
    assert admin.delete(f"/ctl/{alice_fpr}").status == 204
    assert admin.delete(f"/ctl/{alice_fpr}").status == 404

    # CRLs.
    assert admin.upload("/crls", {}, {"file": ("x.crl", b"junk")}).status == 400
    assert admin.get("/crls").json["crls"] == []
    r = admin.upload("/crls", {}, {"file": ("ca.crl", read(f"{pki}/ca.crl"))})
    assert r.status == 200, r.json
    crls = admin.get("/crls").json["crls"]
    assert len(crls) == 1 and "Test Root CA" in crls[0]["issuer"]
    assert admin.delete(f"/crls/{FPR0}").status == 404
    assert admin.delete(f"/crls/{crls[0]['fingerprint']}").status == 204

    # Deleting.
    assert admin.delete(f"/roots/{alice_fpr}").status == 404, "not a root"
    assert admin.delete(f"/certificates/{alice_fpr}").status == 204
    assert admin.delete(f"/certificates/{alice_fpr}").status == 404
    assert admin.delete(f"/roots/{root_fpr}").status == 204
    assert admin.get("/roots").json["certificates"] == []
    assert "admin admin imported" in gw.log() and "p12 password" not in gw.log()


def test_first_password_is_printed_not_logged(gw):
    assert gw.password not in gw.log()
    with open(gw.stderr_path) as f:
        assert f.read().count("password: ") == 1


def test_admin_process_runs_as_mail_owner(gw):
    out = subprocess.run(["pgrep", "-f", "--", f"-x admin -i 0 -c {gw.conf}"],
                         capture_output=True, text=True).stdout.split()
    assert len(out) == 1, out
    with open(f"/proc/{out[0]}/status") as f:
        uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)", f.read(), re.M).groups()
    owner = pwd.getpwnam("mailseal").pw_uid
    assert uids == (str(owner),) * 3, "real, effective and saved uid are mail_owner's"


def test_restart_keeps_admins_and_ends_sessions(gw, admin):
    # Last in this file: it restarts the daemon.
    gw.stop()
    gw.start()
    gw.wait_log(r"admin console ready", since=gw.log_mark)
    wait_port("127.0.0.1", gw.admin_port)
    with open(gw.stderr_path) as f:
        assert f.read().count("password: ") == 1, "the first password is made once"
    assert admin.get("/session").status == 401, "sessions live in memory"
    assert Console(gw).login().status == 200
