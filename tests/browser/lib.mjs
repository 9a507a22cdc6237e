// Helpers of the browser tests: the real mailseald on loopback, an SMTP
// peer, a raw SMTP client and Debian's chromium driven by playwright-core.
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, "../..");
export const BUILD = process.env.MAILSEAL_BUILD || path.join(REPO, "build");
export const ARTIFACTS = path.join(REPO, "tests/artifacts/browser");
const TEST_BASE = "/tmp/mailseal-tests";

export function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
    s.on("error", reject);
  });
}

export async function waitFor(fn, what, timeout = 15000) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function readOr(file) { try { return fs.readFileSync(file, "utf8"); } catch { return ""; } }

/* One mailseald with its own directory, ports and configuration. */
export class Gateway {
  constructor(name, params) {
    fs.mkdirSync(TEST_BASE, { recursive: true });
    fs.chmodSync(TEST_BASE, 0o755);
    this.dir = fs.mkdtempSync(path.join(TEST_BASE, `browser-${name}-`));
    fs.chmodSync(this.dir, 0o755);
    this.conf = path.join(this.dir, "mailseal.conf");
    this.logPath = path.join(this.dir, "mailseal.log");
    this.stderrPath = path.join(this.dir, "stderr.log");
    this.params = params;
  }

  async start() {
    this.smtpPort = await freePort();
    this.adminPort = await freePort();
    const p = {
      smtpd_listen: `127.0.0.1:${this.smtpPort}`,
      admin_listen: `127.0.0.1:${this.adminPort}`,
      queue_directory: path.join(this.dir, "spool"),
      data_directory: path.join(this.dir, "data"),
      store: "sqlite:" + path.join(this.dir, "data/store.db"),
      maillog_file: this.logPath,
      ...this.params,
    };
    fs.writeFileSync(this.conf, "# written by the browser tests\n" +
      Object.entries(p).map(([k, v]) => `${k} = ${v}\n`).join(""));
    const err = fs.openSync(this.stderrPath, "a");
    this.proc = spawn(path.join(BUILD, "src/daemon/mailseald"), ["-f", "-c", this.conf],
      { stdio: ["ignore", err, err] });
    await waitFor(() => /admin console ready/.test(this.log()) && /dispatcher ready/.test(this.log()),
      "the daemon to start");
    this.password = /password: (\S+)/.exec(readOr(this.stderrPath))[1];
    this.url = `https://127.0.0.1:${this.adminPort}/`;
    return this;
  }

  log() { return readOr(this.logPath); }
  config() { return readOr(this.conf); }

  async waitLog(re, timeout = 15000) {
    return waitFor(() => re.exec(this.log()), `a log line matching ${re}`, timeout);
  }

  ctl(...args) {
    return execFileSync(path.join(BUILD, "src/ctl/mailsealctl"), ["-c", this.conf, ...args]).toString();
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    const done = new Promise((r) => this.proc.on("exit", r));
    this.proc.kill("SIGTERM");
    await Promise.race([done, sleep(20000)]);
    if (this.proc.exitCode === null) this.proc.kill("SIGKILL");
  }
}

/* The internal mail server: smtp_sink.py (aiosmtpd). */
export class Sink {
  async start() {
    this.port = await freePort();
    this.logPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "sink-")), "events.jsonl");
    this.proc = spawn("/usr/bin/python3", [path.join(HERE, "smtp_sink.py"), String(this.port), this.logPath],
      { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise((resolve, reject) => {
      this.proc.stdout.on("data", (d) => { if (String(d).includes("ready")) resolve(); });
      this.proc.on("exit", (c) => reject(new Error(`smtp_sink exited ${c}`)));
    });
    return this;
  }

  events() { return readOr(this.logPath).split("\n").filter(Boolean).map((l) => JSON.parse(l)); }

  stop() { if (this.proc) this.proc.kill("SIGTERM"); }
}

/* A raw SMTP client: sends lines, returns each reply. */
export class SMTP {
  static connect(port, source = "127.0.0.1") {
    return new Promise((resolve, reject) => {
      const c = new SMTP();
      c.buf = "";
      c.waiters = [];
      c.sock = net.createConnection({ port, host: "127.0.0.1", localAddress: source }, async () => {
        c.greeting = await c.reply();
        resolve(c);
      });
      c.sock.on("data", (d) => { c.buf += d; c.wake(); });
      c.sock.on("error", reject);
    });
  }

  wake() { const w = this.waiters.shift(); if (w) w(); }

  async reply() {
    for (;;) {
      const m = /(^|\r\n)(\d{3}) [^\r\n]*\r\n/.exec(this.buf);
      if (m) {
        const end = m.index + m[0].length;
        const text = this.buf.slice(0, end).trimEnd();
        this.buf = this.buf.slice(end);
        return text;
      }
      await new Promise((r) => { this.waiters.push(r); setTimeout(r, 200); });
    }
  }

  async cmd(line) { this.sock.write(line + "\r\n"); return this.reply(); }

  close() { this.sock.destroy(); }
}

/* Debian's chromium, headless, with a fresh profile. */
export async function browser(viewport = { width: 1280, height: 800 }) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "mailseal-chromium-"));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    ignoreHTTPSErrors: true,
    viewport,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  ctx.profile = profile;
  return ctx;
}

export async function closeBrowser(ctx) {
  await ctx.close();
  fs.rmSync(ctx.profile, { recursive: true, force: true });
}

export async function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

export async function login(page, gw) {
  await page.goto(gw.url);
  await page.getByLabel("User name").fill("admin");
  await page.getByLabel("Password").fill(gw.password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("heading", { name: "MTA configuration" }).waitFor();
}
