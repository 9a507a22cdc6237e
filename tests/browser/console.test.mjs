// The admin console in a real browser against the real daemon: the seed
// guide's direct-delivery steps 4.1 to 4.8, the "Send email" tool, and a
// screenshot of every page (tests/artifacts/browser/).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";

import { Gateway, SMTP, Sink, browser, closeBrowser, login, screenshot, waitFor } from "./lib.mjs";

let gw, sink, ctx, page;

before(async () => {
  sink = await new Sink().start();
  // A fresh gateway: only the loopback address of the tests is trusted.
  gw = await new Gateway("walk", { mynetworks: "127.0.0.1/32" }).start();
  ctx = await browser();
  page = await ctx.newPage();
  page.on("pageerror", (e) => { throw e; });
});

after(async () => {
  if (ctx) await closeBrowser(ctx);
  if (gw) await gw.stop();
  if (sink) sink.stop();
});

test("a wrong password is refused, the right one logs in", async () => {
  await page.goto(gw.url);
  await page.getByLabel("User name").fill("admin");
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByText("wrong user name or password").waitFor();
  await screenshot(page, "login");
  await login(page, gw);
});

test("seed 4.1-4.7: the MTA page, Apply, and what the daemon then does", async () => {
  const mta = page.locator("#mta-form");
  // 4.1 relay domains
  await page.getByLabel("Add domain").fill("example.com");
  await mta.locator('[data-field="add-relay_domains"]').getByRole("button", { name: "Add" }).click();
  await page.locator("#list-relay_domains").getByText("example.com").waitFor();
  // 4.2 My hostname
  await page.getByLabel("My hostname").fill("gw.example.test");
  // 4.3 the internal relay host, no mx, its port
  await page.getByLabel("Internal relay host host").fill("127.0.0.1");
  await page.locator("#f-internal_relay_host-mx").uncheck();
  await page.locator("#f-internal_relay_host-port").fill(String(sink.port));
  // 4.4 the external relay host stays empty: direct delivery by MX
  assert.equal(await page.getByLabel("External relay host host").inputValue(), "");
  // 4.5 reject unverified recipient (advanced settings), code 450
  await page.getByRole("button", { name: "show advanced settings" }).click();
  await page.getByLabel("Reject unverified recipient").check();
  assert.equal(await page.getByLabel("reject code").inputValue(), "450");
  // 4.6 My networks: the internal mail server
  await page.getByLabel("Add network").fill("127.0.0.5/32");
  await mta.locator('[data-field="add-mynetworks"]').getByRole("button", { name: "Add" }).click();

  // A bad value first: the error shows at its field and nothing changes.
  const before = gw.config();
  await page.getByLabel("SMTP helo name").fill("not a host name!");
  await page.getByRole("button", { name: "Save" }).click();
  await page.locator("#err-smtp_helo_name").getByText("not a valid host name").waitFor();
  assert.equal(await page.getByLabel("SMTP helo name").getAttribute("aria-invalid"), "true");
  assert.equal(gw.config(), before);
  await page.getByLabel("SMTP helo name").fill("");

  // Save: written, not yet running, shown as pending.
  await page.getByRole("button", { name: "Save" }).click();
  await page.locator("#mta-pending").waitFor();
  await page.locator('[data-pending="myhostname"]').getByText("Not applied yet").waitFor();
  await screenshot(page, "mta-pending");

  // 4.7 Apply
  const mark = gw.log().length;
  await page.getByRole("button", { name: "Apply" }).click();
  await page.getByText("Applied: the daemon runs the new settings.").waitFor();
  assert.equal(await page.locator("#mta-pending").count(), 0);
  await waitFor(() => /dispatcher\[\d+\]: configuration reloaded/.test(gw.log().slice(mark)), "the reload");

  const conf = gw.config();
  assert.match(conf, /^# written by the browser tests$/m, "comments stay");
  assert.match(conf, /^relay_domains = example\.com$/m);
  assert.match(conf, /^myhostname = gw\.example\.test$/m);
  assert.match(conf, new RegExp(`^internal_relay_host = \\[127\\.0\\.0\\.1\\]:${sink.port}$`, "m"));
  assert.doesNotMatch(conf, /^external_relay_host/m);
  assert.match(conf, /^reject_unverified_recipient = yes$/m);
  assert.match(conf, /^mynetworks = 127\.0\.0\.1\/32, 127\.0\.0\.5\/32$/m);

  // A real SMTP session: the new name, the new network, the relay domain.
  const c = await SMTP.connect(gw.smtpPort, "127.0.0.5");
  assert.match(c.greeting, /^220 gw\.example\.test /);
  assert.match(await c.cmd("EHLO mail.internal.test"), /^250/);
  assert.match(await c.cmd("MAIL FROM:<alice@example.com>"), /^250/);
  assert.match(await c.cmd("RCPT TO:<bob@remote.test>"), /^250/, "127.0.0.5 is in My Networks now");
  c.close();
  const o = await SMTP.connect(gw.smtpPort, "127.0.0.9");
  await o.cmd("EHLO outside.test");
  await o.cmd("MAIL FROM:<x@outside.test>");
  assert.match(await o.cmd("RCPT TO:<bob@remote.test>"), /^454 4\.7\.1 .*Relay access denied/);
  // Reject unverified recipient: the internal relay host is asked.
  assert.match(await o.cmd("RCPT TO:<nobody@example.com>"), /^450 4\.1\.1 <nobody@example\.com>: Recipient address rejected/);
  assert.match(await o.cmd("RCPT TO:<carol@example.com>"), /^250/);
  o.close();
  const probed = sink.events().filter((e) => e.rcpt).map((e) => e.rcpt);
  assert.ok(probed.includes("nobody@example.com") && probed.includes("carol@example.com"), `probes: ${probed}`);
});

test("MTA → sasl: credentials for a relay host, the password never shown again", async () => {
  await page.locator("#nav").getByRole("link", { name: "MTA", exact: true }).click();
  await page.getByRole("button", { name: "show advanced settings" }).click();
  await page.getByRole("button", { name: "Add credentials" }).click();
  await page.getByLabel("relay host 1").fill("[relay.example.net]:587");
  await page.getByLabel("user name 1").fill("gateway");
  await page.getByLabel("password 1").fill("relay secret");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByText("Saved to the configuration file").waitFor();
  const file = path.join(gw.dir, "data/sasl_passwd");
  assert.match(fs.readFileSync(file, "utf8"), /^\[relay\.example\.net\]:587 gateway:relay secret$/m);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.match(gw.config(), new RegExp(`^smtp_sasl_password_maps = ${file}$`, "m"));
  // The page shows the user, not the password.
  assert.equal(await page.getByLabel("user name 1").inputValue(), "gateway");
  assert.equal(await page.getByLabel("password 1").inputValue(), "");
  assert.equal(await page.getByLabel("password 1").getAttribute("placeholder"), "(unchanged)");
  assert.ok(!(await page.content()).includes("relay secret"));
  await page.getByRole("button", { name: "Apply" }).click();
  await page.getByText("Applied: the daemon runs the new settings.").waitFor();
});

test("seed 4.8: the internal domain, Locality internal", async () => {
  await page.locator("#nav").getByRole("link", { name: "Domains", exact: true }).click();
  await page.getByLabel("Domain", { exact: true }).fill("example.com");
  await page.getByRole("button", { name: "Add domain" }).click();
  await page.getByRole("heading", { name: "Edit domain: example.com" }).waitFor();
  // Inherit is ticked, showing the inherited value.
  const inherit = page.locator("#inherit-locality");
  assert.equal(await inherit.isChecked(), true);
  await page.locator("#inh-locality").getByText("inherited from default: external").waitFor();
  assert.equal(await page.locator("#f-locality").isDisabled(), true);
  await screenshot(page, "domain-edit");
  await inherit.uncheck();
  await page.locator("#f-locality").selectOption("internal");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByText("Saved").first().waitFor();
  await waitFor(async () => !(await page.locator("#inherit-locality").isChecked()), "the saved form");
  const shown = gw.ctl("domain", "show", "example.com");
  assert.match(shown, /locality\s+internal\s+domain/);
  // The list shows it too.
  await page.locator("#nav").getByRole("link", { name: "Domains", exact: true }).click();
  await page.locator("#domains-table").getByRole("cell", { name: "internal", exact: true }).waitFor();
});

test("seed 4.10: the Send email tool, and its delivery on the Logs page", async () => {
  await page.locator("#nav").getByRole("link", { name: "Admin", exact: true }).click();
  await page.getByRole("link", { name: "Send email" }).click();
  await page.getByLabel("To").fill("not an address");
  await page.getByRole("button", { name: "Send" }).click();
  await page.locator("#err-to").getByText("is not an email address").waitFor();
  await page.getByLabel("To").fill("dave@example.com");
  await page.getByLabel("Subject").fill("console test 4.10");
  await page.getByRole("button", { name: "Send" }).click();
  const qid = (await page.locator("#sent-qid").textContent()).trim();
  assert.match(qid, /^[0-9A-Z]{12}$/);
  await screenshot(page, "admin-send-queued");
  await page.locator("#sent-log-link").click();
  await page.getByRole("heading", { name: "Logs" }).waitFor();
  assert.equal(await page.getByLabel("Queue ID").inputValue(), qid);
  // The page refreshes itself until the delivery shows.
  await page.locator("#log-lines").getByText(new RegExp(`${qid}: to=<dave@example\\.com>.*status=sent`)).waitFor({ timeout: 20000 });
  const lines = await page.locator("#log-lines").textContent();
  assert.ok(lines.split("\n").filter(Boolean).every((l) => l.includes(qid)), "only that message's lines");
  await screenshot(page, "logs-delivery");
  const mail = sink.events().filter((e) => e.mail).map((e) => e.mail);
  assert.ok(mail.some((m) => m.to.includes("dave@example.com") && m.data.includes("Subject: console test 4.10")));
});

test("users: add, search, edit with inherit", async () => {
  await page.locator("#nav").getByRole("link", { name: "Users", exact: true }).click();
  for (const u of ["alice@example.com", "bob@example.com"]) {
    await page.getByLabel("Email address").fill(u);
    await page.getByRole("button", { name: "Add user" }).click();
    await page.getByRole("heading", { name: `Edit user: ${u}` }).waitFor();
    await page.locator("#nav").getByRole("link", { name: "Users", exact: true }).click();
  }
  // alice inherits Locality internal from her domain (seed 4.8).
  await page.getByRole("link", { name: "alice@example.com" }).click();
  await page.locator("#inh-locality").getByText("inherited from domain example.com: internal").waitFor();
  await page.locator("#nav").getByRole("link", { name: "Users", exact: true }).click();
  await page.getByLabel("Search").fill("bob");
  await page.getByRole("button", { name: "Search", exact: true }).click();
  // The list is drawn again once the search's answer is in: alice goes.
  await page.locator("#users-table").getByText("alice@example.com").waitFor({ state: "detached" });
  await page.locator("#users-table").getByRole("link", { name: "bob@example.com" }).waitFor();
  assert.match(page.url(), /q=bob/);
});

test("certificates: upload a PKCS#12 with its password", async () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "mailseal-cert-"));
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", `${d}/k.pem`,
    "-out", `${d}/c.pem`, "-days", "30", "-subj", "/CN=Alice Example/emailAddress=alice@example.com",
    "-addext", "subjectAltName=email:alice@example.com"], { stdio: "ignore" });
  execFileSync("openssl", ["pkcs12", "-export", "-in", `${d}/c.pem`, "-inkey", `${d}/k.pem`,
    "-out", `${d}/alice.p12`, "-passout", "pass:secret p12"], { stdio: "ignore" });
  await page.locator("#nav").getByRole("link", { name: "Certificates", exact: true }).click();
  const form = page.locator("#import-cert");
  await form.getByLabel("File").setInputFiles(`${d}/alice.p12`);
  await form.getByLabel("Password").fill("wrong");
  await form.getByRole("button", { name: "Import" }).click();
  await form.locator("#err-password").waitFor({ state: "visible" });
  await form.getByLabel("Password").fill("secret p12");
  await form.getByRole("button", { name: "Import" }).click();
  await page.locator("#cert-table").getByRole("link", { name: /Alice Example/ }).waitFor();
  await page.getByLabel("with private key").check();
  await page.getByRole("button", { name: "Filter" }).click();
  await page.locator("#cert-table").getByRole("link", { name: /Alice Example/ }).click();
  await page.getByRole("heading", { name: "Certificate", exact: true }).waitFor();
  await page.getByText("stored (sealed)").waitFor();
  await screenshot(page, "certificate-details");
  fs.rmSync(d, { recursive: true, force: true });
});

test("every page renders; screenshots", async () => {
  const pages = [
    ["mta", "#/mta", "MTA configuration"], ["domains", "#/domains", "Domains"], ["users", "#/users", "Users"],
    ["settings", "#/settings", "Global settings"], ["certificates", "#/certificates", "Certificates"],
    ["roots", "#/roots", "Roots"], ["crls", "#/crls", "CRLs"], ["ctl", "#/ctl", "Certificate trust list"],
    ["queues", "#/queues", "Queues"], ["logs", "#/logs", "Logs"], ["admin-network", "#/admin/network", "Admin"],
    ["admin-send", "#/admin/send", "Admin"], ["admin-admins", "#/admin/admins", "Admin"],
  ];
  for (const [name, hash, heading] of pages) {
    await page.goto(gw.url + hash);
    await page.getByRole("heading", { name: heading, exact: true }).waitFor();
    // Every input has a label.
    const unlabelled = await page.evaluate(() => [...document.querySelectorAll("input, select, textarea")]
      .filter((el) => el.type !== "hidden" && !el.labels?.length && !el.getAttribute("aria-label"))
      .map((el) => el.id || el.name));
    assert.deepEqual(unlabelled, [], `unlabelled controls on ${name}`);
    await screenshot(page, name);
  }
  // The network page shows this host's loopback interface and address.
  await page.goto(gw.url + "#/admin/network");
  await page.locator("#iface-table").getByText("127.0.0.1/8").waitFor();
});

test("a narrow screen", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(gw.url + "#/mta");
  await page.getByRole("heading", { name: "MTA configuration" }).waitFor();
  const nav = page.locator("#nav");
  assert.equal(await nav.isVisible(), false, "the menu folds away");
  await page.getByRole("button", { name: "Menu" }).click();
  await page.locator("#nav").getByRole("link", { name: "Logs" }).click();
  await page.getByRole("heading", { name: "Logs" }).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling (${overflow}px)`);
  await screenshot(page, "narrow-logs");
  await page.setViewportSize({ width: 1280, height: 800 });
});

test("log out", async () => {
  await page.goto(gw.url + "#/mta");
  await page.getByRole("button", { name: "Log out" }).click();
  await page.getByText("You are logged out.").waitFor();
  const r = await page.evaluate(async () => (await fetch("/api/v1/mta")).status);
  assert.equal(r, 401);
});
