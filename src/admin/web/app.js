/*
 * mailseal console: one page, hash routes, the JSON API at /api/v1.
 * No framework and no innerHTML: every element is made with h(), every
 * text goes in as a text node, so nothing from the server runs as markup.
 */
"use strict";

const state = { user: null, csrf: null, timer: null };

/* ---- DOM helpers ---- */

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = !!v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let uid = 0;
function nextId(prefix) { uid += 1; return `${prefix}-${uid}`; }

function view() { return document.getElementById("view"); }

function show(...nodes) {
  const v = view();
  v.replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined && n !== false));
}

function toast(text) {
  const t = h("div", {}, text);
  document.getElementById("toast").append(t);
  setTimeout(() => t.remove(), 4000);
}

function fmtTime(secs) {
  if (!secs) return "";
  const d = new Date(secs * 1000);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function fmtSize(n) {
  if (n >= 1048576) return (n / 1048576).toFixed(1) + " MB";
  if (n >= 1024) return (n / 1024).toFixed(1) + " kB";
  return n + " B";
}

/* ---- the API ---- */

class ApiError extends Error {
  constructor(status, data) {
    super((data && data.error) || `HTTP ${status}`);
    this.status = status;
    this.data = data || {};
  }
}

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin", cache: "no-store" };
  if (method !== "GET" && state.csrf) opts.headers["X-CSRF-Token"] = state.csrf;
  if (body instanceof FormData) {
    opts.body = body;
  } else if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch("/api/v1" + path, opts);
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch (e) { data = { error: text }; }
  }
  if (res.status === 401 && path !== "/login") {
    state.user = null;
    state.csrf = null;
    renderLogin(path === "/session" ? null : "Your session has ended: log in again.");
    const e = new ApiError(401, data);
    e.sessionEnded = true;
    throw e;
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

/* ---- forms: labelled fields with their error line ---- */

/* A field row: <label for=id>, the control(s), help and an error slot. */
function field(key, label, controls, help, extra) {
  const first = [controls].flat().find((c) => c && c.id);
  return h("div", { class: "field", "data-field": key },
    first ? h("label", { for: first.id }, label) : h("span", { class: "label" }, label),
    h("div", {},
      h("div", { class: "control" }, controls),
      help ? h("p", { class: "hint" }, help) : null,
      extra || null,
      h("p", { class: "error", id: `err-${key}`, "aria-live": "polite" })));
}

function input(key, value, attrs) {
  return h("input", Object.assign({ type: "text", id: `f-${key}`, name: key, value: value ?? "",
    "aria-describedby": `err-${key}` }, attrs || {}));
}

function clearErrors(root) {
  root.querySelectorAll(".error, .form-error").forEach((e) => { e.textContent = ""; });
  root.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
}

/* Puts each {"errors": {field: text}} message at its field. */
function showErrors(root, err) {
  clearErrors(root);
  const errors = (err.data && err.data.errors) || null;
  const general = root.querySelector(".form-error");
  if (!errors) {
    if (general) general.textContent = err.message;
    else toast(err.message);
    return;
  }
  let firstBad = null;
  for (const [k, msg] of Object.entries(errors)) {
    const slot = root.querySelector(`#err-${CSS.escape(k)}`);
    if (slot) {
      slot.textContent = msg;
      const row = slot.closest(".field");
      const ctl = row && row.querySelector("input, select, textarea");
      if (ctl) { ctl.setAttribute("aria-invalid", "true"); firstBad = firstBad || ctl; }
    } else if (general) {
      general.textContent += (general.textContent ? " " : "") + (k.startsWith("_") ? msg : `${k}: ${msg}`);
    }
  }
  if (firstBad) firstBad.focus();
}

function formError() { return h("p", { class: "form-error", role: "alert" }); }

/* Runs fn with the button disabled; errors land in root. */
async function busy(button, root, fn) {
  button.disabled = true;
  try {
    return await fn();
  } catch (e) {
    if (!e.sessionEnded) showErrors(root, e);
    return undefined;
  } finally {
    button.disabled = false;
  }
}

function confirmDo(text) { return window.confirm(text); }

/* ---- routing ---- */

const routes = [];
function route(re, fn) { routes.push([re, fn]); }

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/mta";
  const [path, query] = raw.split("?");
  return { path, params: new URLSearchParams(query || "") };
}

function setCurrent(path) {
  const page = path.split("/")[1] || "mta";
  document.querySelectorAll("#nav a").forEach((a) => {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  document.getElementById("nav").classList.remove("open");
  document.getElementById("nav-toggle").setAttribute("aria-expanded", "false");
}

async function navigate() {
  if (state.timer) { clearInterval(state.timer); state.timer = null; }
  if (!state.user) return;
  const { path, params } = parseHash();
  setCurrent(path);
  for (const [re, fn] of routes) {
    const m = path.match(re);
    if (m) {
      try {
        await fn(params, ...m.slice(1).map(decodeURIComponent));
      } catch (e) {
        if (!e.sessionEnded) show(h("div", { class: "banner error", role: "alert" }, e.message));
      }
      view().focus({ preventScroll: true });
      return;
    }
  }
  show(h("h1", {}, "Not found"), h("p", {}, "No such page."));
}

/* ---- login ---- */

function renderLogin(message) {
  document.getElementById("who").hidden = true;
  document.getElementById("nav").hidden = true;
  document.getElementById("nav-toggle").hidden = true;
  const user = input("username", "", { autocomplete: "username", autofocus: true });
  const pass = input("password", "", { type: "password", autocomplete: "current-password" });
  const button = h("button", { type: "submit", class: "primary" }, "Log in");
  const form = h("form", { class: "panel login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "mailseal console"),
    message ? h("p", { class: "banner" }, message) : null,
    field("username", "User name", user),
    field("password", "Password", pass),
    formError(),
    h("div", { class: "actions" }, button));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(button, form, async () => {
      const s = await api("POST", "/login", { username: user.value, password: pass.value });
      loggedIn(s);
    });
  });
  show(form);
  user.focus();
}

function loggedIn(s) {
  state.user = s.username;
  state.csrf = s.csrf_token;
  document.getElementById("who").hidden = false;
  document.getElementById("who-name").textContent = s.username;
  document.getElementById("nav").hidden = false;
  document.getElementById("nav-toggle").hidden = false;
  navigate();
}

/* ---- MTA (the seed's Figures 10 and 11) ---- */

function nexthopText(v) {
  if (!v || !v.host) return "(empty)";
  return v.mx ? `${v.host}:${v.port}` : `[${v.host}]:${v.port}`;
}

function valueText(v) {
  if (Array.isArray(v)) return v.length ? v.join(", ") : "(none)";
  if (v && typeof v === "object") return nexthopText(v);
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (v === "") return "(empty)";
  return String(v);
}

/* "running: X" beside a field whose file value is not in force yet. */
function pendingNote(st, key) {
  if (!st.pending.includes(key)) return null;
  return h("p", { class: "pending", "data-pending": key },
    `Not applied yet: running ${valueText(st.running[key])}`);
}

/* An add/remove list (relay domains, My networks, DNS servers). */
function listEditor(key, label, items, addLabel, placeholder, help, st) {
  const list = h("ul", { class: "chips", id: `list-${key}`, "aria-label": label });
  const add = input(`add-${key}`, "", { placeholder });
  const addButton = h("button", { type: "button" }, "Add");
  function redraw() {
    list.replaceChildren(...(items.length ? items.map((it, i) => h("li", {},
      h("span", {}, it),
      h("button", { type: "button", "aria-label": `Remove ${it}`, title: `Remove ${it}`,
        onclick: () => { items.splice(i, 1); redraw(); } }, "×"))) :
      [h("li", { class: "empty" }, "(none)")]));
  }
  function doAdd() {
    const v = add.value.trim();
    if (!v) return;
    for (const part of v.split(/[\s,]+/)) if (part && !items.includes(part)) items.push(part);
    add.value = "";
    redraw();
    add.focus();
  }
  addButton.addEventListener("click", doAdd);
  add.addEventListener("keydown", (ev) => { if (ev.key === "Enter") { ev.preventDefault(); doAdd(); } });
  redraw();
  return [
    h("div", { class: "field", "data-field": key },
      h("span", { class: "label", id: `lbl-${key}` }, label),
      h("div", {}, list, help ? h("p", { class: "hint" }, help) : null,
        st ? pendingNote(st, key) : null,
        h("p", { class: "error", id: `err-${key}`, "aria-live": "polite" }))),
    field(`add-${key}`, addLabel, [add, addButton]),
  ];
}

function nexthopEditor(key, label, v, help, st) {
  const host = input(key, v.host, { placeholder: "host name or IP address", "aria-label": `${label} host` });
  const mx = h("input", { type: "checkbox", id: `f-${key}-mx`, checked: v.mx });
  const port = input(`${key}-port`, v.port, { type: "number", min: 1, max: 65535, class: "port" });
  return field(key, label, [host,
    h("label", { class: "check", for: mx.id }, mx, "mx"),
    h("label", { class: "check", for: port.id }, "port", port)],
  help, pendingNote(st, key));
}

function checkbox(key, checked) {
  return h("input", { type: "checkbox", id: `f-${key}`, name: key, checked });
}

async function pageMta(params, message) {
  const st = await api("GET", "/mta");
  st.sasl = await api("GET", "/mta/sasl");
  const f = st.fields;
  const relay = [...f.relay_domains];
  const nets = [...f.mynetworks];
  const adv = h("div", { id: "mta-advanced", hidden: true });
  const advButton = h("button", { type: "button", class: "link", "aria-expanded": "false",
    "aria-controls": "mta-advanced" }, "show advanced settings");
  advButton.addEventListener("click", () => {
    adv.hidden = !adv.hidden;
    advButton.setAttribute("aria-expanded", String(!adv.hidden));
    advButton.textContent = adv.hidden ? "show advanced settings" : "hide advanced settings";
  });
  const rejectCode = h("select", { id: "f-unverified_recipient_reject_code", "aria-label": "reject code" },
    ["450", "550"].map((c) => h("option", { value: c, selected: String(f.unverified_recipient_reject_code) === c }, c)));
  adv.append(
    field("before_filter_message_size_limit", "Before filter message size limit",
      input("before_filter_message_size_limit", f.before_filter_message_size_limit, { type: "number", min: 1024 }),
      "the largest message in bytes, envelope included, that the SMTP server accepts", pendingNote(st, "before_filter_message_size_limit")),
    field("after_filter_message_size_limit", "After filter message size limit",
      input("after_filter_message_size_limit", f.after_filter_message_size_limit, { type: "number", min: 1024 }),
      "the largest message after encryption or decryption; not smaller than the limit above", pendingNote(st, "after_filter_message_size_limit")),
    field("smtp_helo_name", "SMTP helo name", input("smtp_helo_name", f.smtp_helo_name),
      "the name in EHLO/HELO to other servers; empty means My hostname", pendingNote(st, "smtp_helo_name")),
    field("reject_unverified_recipient", "Reject unverified recipient",
      [checkbox("reject_unverified_recipient", f.reject_unverified_recipient),
        h("label", { class: "check", for: rejectCode.id }, "reject code", rejectCode)],
      "ask the internal relay host whether a recipient exists before accepting mail for it",
      h("div", {}, pendingNote(st, "reject_unverified_recipient"), pendingNote(st, "unverified_recipient_reject_code"),
        h("p", { class: "error", id: "err-unverified_recipient_reject_code" }))));
  if (st.sasl) adv.append(saslSection(st.sasl));
  /* Pending changes in the advanced part are shown, not hidden. */
  if (st.pending.some((k) => adv.querySelector(`[data-field="${k}"]`))) {
    adv.hidden = false;
    advButton.setAttribute("aria-expanded", "true");
    advButton.textContent = "hide advanced settings";
  }

  const form = h("form", { class: "panel", id: "mta-form", "aria-labelledby": "mta-title", novalidate: true },
    h("h2", { id: "mta-title" }, "MTA config file"),
    h("h3", {}, "Relay domains"),
    listEditor("relay_domains", "Relay domains", relay, "Add domain", "example.com",
      "destination domains this system relays mail to (and their subdomains when Match Subdomains is on)", st),
    h("h3", {}, "My networks"),
    listEditor("mynetworks", "My networks", nets, "Add network", "192.168.1.0/24",
      "trusted SMTP clients (networks in CIDR) that may relay mail through this gateway", st),
    h("h3", {}, "Other"),
    field("myhostname", "My hostname", input("myhostname", f.myhostname), "the Internet hostname of this mail system", pendingNote(st, "myhostname")),
    nexthopEditor("external_relay_host", "External relay host", f.external_relay_host,
      "the next hop for remote delivery; leave empty for direct delivery by MX records", st),
    nexthopEditor("internal_relay_host", "Internal relay host", f.internal_relay_host,
      "the next hop for mail to the relay domains (typically the internal mail server)", st),
    field("match_subdomains", "Match subdomains", checkbox("match_subdomains", f.match_subdomains),
      "whether subdomains of the relay domains match too", pendingNote(st, "match_subdomains")),
    h("div", { class: "actions" }, advButton),
    adv,
    formError());

  function values() {
    const num = (id) => { const v = form.querySelector(id).value.trim(); return /^-?\d+$/.test(v) ? Number(v) : v; };
    const nh = (k) => ({ host: form.querySelector(`#f-${k}`).value.trim(),
      port: num(`#f-${k}-port`), mx: form.querySelector(`#f-${k}-mx`).checked });
    return {
      relay_domains: relay, mynetworks: nets,
      myhostname: form.querySelector("#f-myhostname").value.trim(),
      external_relay_host: nh("external_relay_host"),
      internal_relay_host: nh("internal_relay_host"),
      match_subdomains: form.querySelector("#f-match_subdomains").checked,
      before_filter_message_size_limit: num("#f-before_filter_message_size_limit"),
      after_filter_message_size_limit: num("#f-after_filter_message_size_limit"),
      smtp_helo_name: form.querySelector("#f-smtp_helo_name").value.trim(),
      reject_unverified_recipient: form.querySelector("#f-reject_unverified_recipient").checked,
      unverified_recipient_reject_code: Number(rejectCode.value),
    };
  }
  async function save() {
    try {
      await api("PUT", "/mta", values());
      if (st.sasl) await saveSasl(form);
      return true;
    } catch (e) {
      /* Field errors may sit in the advanced part: open it. */
      if (e.data && e.data.errors && Object.keys(e.data.errors).some((k) => adv.querySelector(`#err-${CSS.escape(k)}`))) {
        adv.hidden = false;
        advButton.setAttribute("aria-expanded", "true");
      }
      throw e;
    }
  }
  const saveButton = h("button", { type: "button", id: "mta-save" }, "Save");
  const applyButton = h("button", { type: "button", class: "primary", id: "mta-apply" }, "Apply");
  saveButton.addEventListener("click", () => busy(saveButton, form, async () => {
    if (await save()) await pageMta(params, "Saved to the configuration file; Apply puts it in force.");
  }));
  applyButton.addEventListener("click", () => busy(applyButton, form, async () => {
    if (!(await save())) return;
    await api("POST", "/apply");
    await pageMta(params, "Applied: the daemon runs the new settings.");
  }));
  form.append(h("div", { class: "actions" }, saveButton, applyButton,
    h("span", { class: "hint" }, "Save writes ", h("code", {}, st.file), "; Apply also reloads the daemon.")));
  form.addEventListener("submit", (ev) => ev.preventDefault());

  show(h("h1", {}, "MTA configuration"),
    message ? h("p", { class: "banner ok", role: "status", id: "mta-message" }, message) : null,
    !st.writable ? h("p", { class: "banner error" }, `${st.file} is not writable by the mail_owner user: changes cannot be saved here (see docs/operations.md).`) : null,
    st.file_errors.length ? h("div", { class: "banner error" }, "The configuration file has errors; the daemon runs the previous settings:",
      h("ul", {}, st.file_errors.map((e) => h("li", {}, e)))) : null,
    (st.pending.length || st.changed_parameters.length) ?
      h("p", { class: "banner", id: "mta-pending" }, "The configuration file differs from what runs (",
        [...new Set([...st.pending, ...st.changed_parameters])].join(", "), "). Apply to put it in force.") : null,
    form);
}

/* SASL credentials for relay hosts (the seed's MTA → sasl). */
function saslSection(sasl) {
  const rows = sasl.entries.map((e) => ({ ...e, password: "" }));
  const body = h("tbody");
  let sec = null;
  const touch = () => { sec.dirty = true; };
  function redraw() {
    body.replaceChildren(...rows.map((r, i) => {
      const id = `sasl-${i}`;
      return h("tr", {},
        h("td", {}, h("input", { type: "text", id: `${id}-host`, value: r.nexthop, "aria-label": `relay host ${i + 1}`, oninput: (ev) => { r.nexthop = ev.target.value; touch(); } })),
        h("td", {}, h("input", { type: "text", id: `${id}-user`, value: r.username, "aria-label": `user name ${i + 1}`, oninput: (ev) => { r.username = ev.target.value; touch(); } })),
        h("td", {}, h("input", { type: "password", id: `${id}-pass`, value: "", autocomplete: "new-password", placeholder: r.has_password ? "(unchanged)" : "", "aria-label": `password ${i + 1}`, oninput: (ev) => { r.password = ev.target.value; touch(); } })),
        h("td", {}, h("button", { type: "button", class: "danger", "aria-label": `Remove credentials ${i + 1}`, onclick: () => { rows.splice(i, 1); touch(); redraw(); } }, "Remove")));
    }));
  }
  redraw();
  const addButton = h("button", { type: "button", onclick: () => { rows.push({ nexthop: "", username: "", password: "", has_password: false }); touch(); redraw(); } }, "Add credentials");
  sec = h("div", { id: "sasl-section", "data-field": "sasl" },
    h("h2", {}, "SASL credentials for relay hosts"),
    h("p", { class: "hint" }, "user name and password per relay host ([host]:port), sent only over TLS; stored in ", h("code", {}, sasl.file)),
    h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Relay host"), h("th", {}, "User name"), h("th", {}, "Password"), h("th", {}, ""))), body)),
    h("div", { class: "actions" }, addButton),
    h("p", { class: "error", id: "err-sasl" }));
  sec.rows = rows;
  sec.dirty = false;
  return sec;
}

async function saveSasl(form) {
  const sec = form.querySelector("#sasl-section");
  if (!sec || !sec.dirty) return;
  await api("PUT", "/mta/sasl", { entries: sec.rows.map((r) => {
    const e = { nexthop: r.nexthop.trim(), username: r.username.trim() };
    if (r.password) e.password = r.password;
    return e;
  }) });
}

route(/^\/mta$/, (params) => pageMta(params));

/* ---- properties with "inherit" (the seed's Figure 12) ---- */

function propControl(p, id) {
  const current = p.inherit ? p.inherited.value : p.value;
  if (p.type === "bool" || p.type === "enum") {
    return h("select", { id, name: p.name, disabled: p.inherit },
      p.choices.map((c) => h("option", { value: c, selected: c === current }, c)));
  }
  return h("input", { type: "text", id, name: p.name, value: current, disabled: p.inherit });
}

function inheritedText(p) {
  const src = p.inherited.source ? `${p.inherited.level} ${p.inherited.source}` : p.inherited.level;
  return `inherited from ${src}: ${p.inherited.value === "" ? "(empty)" : p.inherited.value}`;
}

function label(name) {
  const s = name.replace(/_/g, " ").replace(/\bsmime\b/, "S/MIME").replace(/\bpgp\b/, "PGP");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/* The property form of a level; save(body) writes it. */
function propertyForm(detail, save, onSaved) {
  const form = h("form", { class: "panel", novalidate: true });
  const rows = detail.properties.map((p) => {
    const id = `f-${p.name}`;
    const ctl = propControl(p, id);
    const inh = h("input", { type: "checkbox", id: `inherit-${p.name}`, checked: p.inherit });
    const note = h("p", { class: "hint", id: `inh-${p.name}` }, p.inherit ? inheritedText(p) : "");
    inh.addEventListener("change", () => {
      ctl.disabled = inh.checked;
      note.textContent = inh.checked ? inheritedText(p) : "";
      if (inh.checked) ctl.value = p.inherited.value;
    });
    return { p, ctl, inh, row: field(p.name, label(p.name),
      [ctl, h("label", { class: "check", for: inh.id }, inh, "inherit")], p.help, note) };
  });
  const button = h("button", { type: "submit", class: "primary" }, "Save");
  form.append(...rows.map((r) => r.row), formError(), h("div", { class: "actions" }, button));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(button, form, async () => {
      const props = {};
      for (const r of rows) props[r.p.name] = r.inh.checked ? null : r.ctl.value;
      const d = await save({ properties: props });
      toast("Saved");
      if (onSaved) onSaved(d);
    });
  });
  return form;
}

/* ---- Domains and Users ---- */

function ownerPages(kind) {
  const base = kind === "domains" ? "/domains" : "/users";
  const title = kind === "domains" ? "Domains" : "Users";
  const one = kind === "domains" ? "domain" : "user";

  async function list(params) {
    const q = params.get("q") || "";
    const data = await api("GET", base + (q ? `?q=${encodeURIComponent(q)}` : ""));
    const addInput = input("name", "", { placeholder: kind === "domains" ? "example.com or *.example.com" : "user@example.com" });
    const addButton = h("button", { type: "submit", class: "primary" }, `Add ${one}`);
    const addForm = h("form", { class: "panel", novalidate: true },
      h("h2", {}, `Add ${one}`), field("name", kind === "domains" ? "Domain" : "Email address", [addInput, addButton]), formError());
    addForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      busy(addButton, addForm, async () => {
        const d = await api("POST", base, { name: addInput.value.trim() });
        location.hash = `#${base}/${encodeURIComponent(d.name)}`;
      });
    });
    const search = h("input", { type: "search", id: "search", value: q, placeholder: `search ${kind}` });
    const searchForm = h("form", { class: "filters", role: "search" },
      h("label", { for: "search" }, "Search", search), h("button", { type: "submit" }, "Search"));
    searchForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      location.hash = `#${base}` + (search.value ? `?q=${encodeURIComponent(search.value)}` : "");
    });
    const rows = data.items.map((it) => h("tr", {},
      h("td", {}, h("a", { href: `#${base}/${encodeURIComponent(it.name)}` }, it.name)),
      h("td", {}, it.locality || it.error || ""), h("td", {}, it.encrypt_mode || ""), h("td", {}, it.comment || ""),
      h("td", {}, h("button", { type: "button", class: "danger", "aria-label": `Delete ${it.name}`, onclick: async () => {
        if (!confirmDo(`Delete ${one} ${it.name} and its settings?`)) return;
        try { await api("DELETE", `${base}/${encodeURIComponent(it.name)}`); toast(`Deleted ${it.name}`); navigate(); } catch (e) { toast(e.message); }
      } }, "Delete"))));
    show(h("h1", {}, title), addForm, searchForm,
      h("div", { class: "table-wrap" }, h("table", { id: `${kind}-table` },
        h("thead", {}, h("tr", {}, h("th", {}, title.slice(0, -1)), h("th", {}, "Locality"), h("th", {}, "Encrypt mode"), h("th", {}, "Comment"), h("th", {}, ""))),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 5 }, `No ${kind} yet.`))))),
      data.truncated ? h("p", { class: "hint" }, `Showing the first ${rows.length} of ${data.total}.`) : null);
  }

  async function edit(params, name) {
    const path = `${base}/${encodeURIComponent(name)}`;
    const d = await api("GET", path);
    const del = h("button", { type: "button", class: "danger" }, `Delete ${one}`);
    del.addEventListener("click", async () => {
      if (!confirmDo(`Delete ${one} ${d.name}?`)) return;
      await api("DELETE", path);
      location.hash = `#${base}`;
    });
    show(h("p", {}, h("a", { href: `#${base}` }, `← ${title}`)),
      h("h1", {}, `Edit ${one}: ${d.name}`),
      propertyForm(d, (body) => api("PUT", path, body), () => edit(params, name)),
      h("div", { class: "actions" }, del));
  }
  route(new RegExp(`^${base}$`), list);
  route(new RegExp(`^${base}/([^/]+)$`), edit);
}
ownerPages("domains");
ownerPages("users");

route(/^\/settings$/, async function settings() {
  const d = await api("GET", "/settings");
  show(h("h1", {}, "Global settings"),
    h("p", { class: "hint" }, "What every domain and user inherits unless it sets its own value; inherit here means the factory default."),
    propertyForm(d, (body) => api("PUT", "/settings", body), () => settings()));
});

/* ---- Certificates, Roots, CRLs, Trust list ---- */

function trustBadge(t) {
  const cls = t.status === "valid" || t.status === "whitelisted" ? "good" : t.status === "untrusted" ? "warn" : "bad";
  return h("span", { class: `badge ${cls}`, title: t.detail || "" }, t.status);
}

function importForm(path, what, withPassword, done) {
  const file = h("input", { type: "file", id: `f-file-${what}`, name: "file" });
  const fields = [field("file", "File", file,
    withPassword ? "PEM, DER, PKCS#7, or PKCS#12 (.p12/.pfx) with its private key" : (what === "crl" ? "a CRL, PEM or DER" : "PEM or DER"))];
  let pw = null, bind = null;
  if (withPassword) {
    pw = input("password", "", { type: "password", autocomplete: "off" });
    bind = input("bind", "", { placeholder: "optional: user@example.com or example.com" });
    fields.push(field("password", "Password", pw, "for a PKCS#12 file or an encrypted key"),
      field("bind", "Bind to", bind, "binds the certificates to a user or domain"));
  }
  const button = h("button", { type: "submit", class: "primary" }, "Import");
  const form = h("form", { class: "panel", novalidate: true, id: `import-${what}` },
    h("h2", {}, `Import ${what === "crl" ? "CRLs" : what === "root" ? "roots" : "certificates"}`), fields, formError(),
    h("div", { class: "actions" }, button));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(button, form, async () => {
      const fd = new FormData();
      if (file.files[0]) fd.append("file", file.files[0], file.files[0].name);
      if (pw && pw.value) fd.append("password", pw.value);
      if (bind && bind.value.trim()) fd.append("bind", bind.value.trim());
      const r = await api("POST", path, fd);
      toast(`Imported ${r.imported.length} item(s)` + (r.keys ? ` and ${r.keys} key(s)` : ""));
      done();
    });
  });
  return form;
}

function certTable(certs, base) {
  const rows = certs.map((c) => h("tr", {},
    h("td", {}, h("a", { href: `#/certificates/${c.fingerprint}` }, c.subject || "(no subject)"),
      h("div", { class: "hint mono" }, c.fingerprint.slice(0, 16) + "…")),
    h("td", {}, c.emails.join(", ")),
    h("td", {}, c.kind),
    h("td", {}, fmtTime(c.not_before).slice(0, 10), " – ", fmtTime(c.not_after).slice(0, 10), c.expired ? h("span", { class: "badge bad" }, " expired") : null),
    h("td", {}, c.has_key ? "yes" : ""),
    h("td", {}, trustBadge(c.trust)),
    h("td", {}, h("a", { href: `/api/v1/certificates/${c.fingerprint}/pem`, download: "" }, "Download"), " ",
      h("button", { type: "button", class: "danger", "aria-label": `Delete ${c.subject}`, onclick: async () => {
        if (!confirmDo(`Delete the certificate ${c.subject}${c.has_key ? " and its private key" : ""}?`)) return;
        try { await api("DELETE", `${base}/${c.fingerprint}`); toast("Deleted"); navigate(); } catch (e) { toast(e.message); }
      } }, "Delete"))));
  return h("div", { class: "table-wrap" }, h("table", { id: "cert-table" },
    h("thead", {}, h("tr", {}, ["Subject", "Addresses", "Kind", "Valid", "Key", "Trust", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 7 }, "None.")))));
}

route(/^\/certificates$/, async (params) => {
  const q = new URLSearchParams();
  for (const k of ["email", "expired", "key", "kind"]) if (params.get(k)) q.set(k, params.get(k));
  const data = await api("GET", "/certificates" + (q.toString() ? `?${q}` : ""));
  const email = h("input", { type: "search", id: "flt-email", value: params.get("email") || "", placeholder: "user@example.com" });
  const expired = h("input", { type: "checkbox", id: "flt-expired", checked: params.get("expired") === "1" });
  const key = h("input", { type: "checkbox", id: "flt-key", checked: params.get("key") === "1" });
  const kind = h("select", { id: "flt-kind" }, [["", "all"], ["end", "end entity"], ["intermediate", "intermediate"], ["root", "root"]]
    .map(([v, t]) => h("option", { value: v, selected: (params.get("kind") || "") === v }, t)));
  const filters = h("form", { class: "filters", role: "search" },
    h("label", { for: email.id }, "Email address", email),
    h("label", { for: kind.id }, "Kind", kind),
    h("label", { class: "check", for: expired.id }, expired, "expired"),
    h("label", { class: "check", for: key.id }, key, "with private key"),
    h("button", { type: "submit" }, "Filter"));
  filters.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const n = new URLSearchParams();
    if (email.value.trim()) n.set("email", email.value.trim());
    if (expired.checked) n.set("expired", "1");
    if (key.checked) n.set("key", "1");
    if (kind.value) n.set("kind", kind.value);
    location.hash = "#/certificates" + (n.toString() ? `?${n}` : "");
  });
  show(h("h1", {}, "Certificates"), importForm("/certificates", "cert", true, navigate), filters,
    certTable(data.certificates, "/certificates"));
});

route(/^\/certificates\/([0-9a-f]+)$/, async (params, fpr) => {
  const c = await api("GET", `/certificates/${fpr}`);
  const setCtl = async (status) => {
    try {
      if (status) await api("PUT", `/ctl/${fpr}`, { status });
      else await api("DELETE", `/ctl/${fpr}`);
      toast("Trust list changed");
      navigate();
    } catch (e) { toast(e.message); }
  };
  show(h("p", {}, h("a", { href: "#/certificates" }, "← Certificates")),
    h("h1", {}, "Certificate"),
    h("div", { class: "panel" }, h("dl", { class: "kv" },
      [["Subject", c.subject], ["Issuer", c.issuer], ["Serial", c.serial], ["SHA-256", c.fingerprint],
        ["Kind", c.kind], ["Not before", fmtTime(c.not_before)], ["Not after", fmtTime(c.not_after)],
        ["Addresses", c.emails.join(", ") || "(none)"], ["Private key", c.has_key ? "stored (sealed)" : "no"],
        ["Bound to", c.bindings.join(", ") || "(nothing)"], ["Trust list", c.ctl]]
        .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
      h("dt", {}, "Trust"), h("dd", {}, trustBadge(c.trust), " ", c.trust.detail),
      h("dt", {}, "For encryption"), h("dd", {}, trustBadge(c.for_encryption), " ", c.for_encryption.detail),
      h("dt", {}, "For signing"), h("dd", {}, trustBadge(c.for_signing), " ", c.for_signing.detail))),
    h("div", { class: "actions" },
      h("a", { href: `/api/v1/certificates/${fpr}/pem`, download: "" }, "Download certificate (PEM)"),
      h("button", { type: "button", onclick: () => setCtl("whitelisted") }, "Whitelist"),
      h("button", { type: "button", onclick: () => setCtl("blacklisted") }, "Blacklist"),
      c.ctl !== "none" ? h("button", { type: "button", onclick: () => setCtl(null) }, "Remove from trust list") : null,
      h("button", { type: "button", class: "danger", onclick: async () => {
        if (!confirmDo("Delete this certificate?")) return;
        await api("DELETE", `/certificates/${fpr}`);
        location.hash = "#/certificates";
      } }, "Delete")));
});

route(/^\/roots$/, async () => {
  const data = await api("GET", "/roots");
  show(h("h1", {}, "Roots"), h("p", { class: "hint" }, "Trusted root certificates: a certificate is valid when it has a path to one of them."),
    importForm("/roots", "root", false, navigate), certTable(data.certificates, "/roots"));
});

route(/^\/crls$/, async () => {
  const data = await api("GET", "/crls");
  const rows = data.crls.map((c) => h("tr", {}, h("td", {}, c.issuer), h("td", {}, c.number || ""),
    h("td", {}, fmtTime(c.this_update)), h("td", {}, c.next_update ? fmtTime(c.next_update) : ""),
    h("td", {}, h("button", { type: "button", class: "danger", onclick: async () => {
      if (!confirmDo(`Delete the CRL of ${c.issuer}?`)) return;
      try { await api("DELETE", `/crls/${c.fingerprint}`); navigate(); } catch (e) { toast(e.message); }
    } }, "Delete"))));
  show(h("h1", {}, "CRLs"), importForm("/crls", "crl", false, navigate),
    h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, ["Issuer", "Number", "This update", "Next update", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 5 }, "No CRLs."))))));
});

route(/^\/ctl$/, async () => {
  const data = await api("GET", "/ctl");
  const fpr = input("fingerprint", "", { placeholder: "SHA-256 fingerprint" });
  const status = h("select", { id: "f-status" }, ["whitelisted", "blacklisted"].map((s) => h("option", { value: s }, s)));
  const button = h("button", { type: "submit", class: "primary" }, "Set");
  const form = h("form", { class: "panel", novalidate: true }, h("h2", {}, "Add to the trust list"),
    field("fingerprint", "Certificate", fpr), field("status", "Status", status), formError(), h("div", { class: "actions" }, button));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(button, form, async () => {
      await api("PUT", `/ctl/${encodeURIComponent(fpr.value.trim() || "-")}`, { status: status.value });
      navigate();
    });
  });
  const rows = data.entries.map((e) => h("tr", {}, h("td", { class: "mono" }, e.fingerprint), h("td", {}, e.subject || "(not stored)"),
    h("td", {}, e.status), h("td", {}, h("button", { type: "button", class: "danger", onclick: async () => {
      try { await api("DELETE", `/ctl/${e.fingerprint}`); navigate(); } catch (err) { toast(err.message); }
    } }, "Remove"))));
  show(h("h1", {}, "Certificate trust list"),
    h("p", { class: "hint" }, "Whitelisted certificates are valid without a path to a root; blacklisted ones are never valid."),
    form, h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, ["Fingerprint", "Subject", "Status", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 4 }, "The trust list is empty."))))));
});

/* ---- Queues ---- */

route(/^\/queues$/, async (params) => {
  const q = params.get("q") || "", stateF = params.get("state") || "";
  const qs = new URLSearchParams();
  if (q) qs.set("q", q);
  if (stateF) qs.set("state", stateF);
  const data = await api("GET", "/queue" + (qs.toString() ? `?${qs}` : ""));
  const search = h("input", { type: "search", id: "flt-q", value: q, placeholder: "queue ID or address" });
  const stateSel = h("select", { id: "flt-state" }, ["", "incoming", "active", "deferred", "hold", "corrupt"]
    .map((s) => h("option", { value: s, selected: s === stateF }, s || "all")));
  const filters = h("form", { class: "filters", role: "search" },
    h("label", { for: search.id }, "Filter", search), h("label", { for: stateSel.id }, "State", stateSel),
    h("button", { type: "submit" }, "Filter"));
  filters.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const n = new URLSearchParams();
    if (search.value.trim()) n.set("q", search.value.trim());
    if (stateSel.value) n.set("state", stateSel.value);
    location.hash = "#/queues" + (n.toString() ? `?${n}` : "");
  });
  const boxes = [];
  const rows = data.messages.map((m) => {
    const box = h("input", { type: "checkbox", id: `sel-${m.id}`, value: m.id, "aria-label": `select ${m.id}` });
    boxes.push(box);
    return h("tr", {}, h("td", {}, box),
      h("td", { class: "mono" }, h("a", { href: `#/queues/${m.id}` }, m.id)),
      h("td", {}, h("span", { class: "badge" }, m.state)),
      h("td", {}, fmtTime(m.arrival)), h("td", { class: "num" }, m.size !== undefined ? fmtSize(m.size) : ""),
      h("td", {}, m.sender === "" ? "<>" : (m.sender || m.error || "")),
      h("td", {}, (m.recipients || []).filter((r) => r.state === "pending").map((r) => h("div", {}, r.address, r.reason ? h("span", { class: "hint" }, ` (${r.reason})`) : null))));
  });
  const panel = h("div", { class: "panel" });
  async function act(action) {
    const ids = boxes.filter((b) => b.checked).map((b) => b.value);
    if (action !== "flush" && !ids.length) { toast("Select messages first"); return; }
    if (action === "delete" && !confirmDo(`Delete ${ids.length} message(s)? They are gone for good.`)) return;
    try {
      await api("POST", `/queue/${action}`, action === "flush" ? {} : { ids });
      toast(`${action}: done`);
      navigate();
    } catch (e) { toast(e.message); }
  }
  panel.append(h("div", { class: "actions" },
    ["hold", "release", "requeue", "delete"].map((a) => h("button", { type: "button", class: a === "delete" ? "danger" : "", onclick: () => act(a) }, a.charAt(0).toUpperCase() + a.slice(1) + " selected")),
    h("button", { type: "button", class: "primary", onclick: () => act("flush") }, "Flush queue"),
    h("button", { type: "button", onclick: () => navigate() }, "Refresh")));
  show(h("h1", {}, "Queues"), filters, panel,
    h("div", { class: "table-wrap" }, h("table", { id: "queue-table" },
      h("thead", {}, h("tr", {}, ["", "Queue ID", "State", "Arrival", "Size", "Sender", "Recipients"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 7 }, "The queue is empty."))))),
    data.truncated ? h("p", { class: "hint" }, `Showing ${rows.length} of ${data.total}.`) : null);
});

route(/^\/queues\/([0-9A-Za-z]+)$/, async (params, id) => {
  const m = await api("GET", `/queue/${id}`);
  show(h("p", {}, h("a", { href: "#/queues" }, "← Queues")),
    h("h1", {}, `Message ${m.id}`),
    h("div", { class: "panel" }, h("h2", {}, "Envelope"), h("dl", { class: "kv" },
      [["State", m.state], ["Arrival", fmtTime(m.arrival)], ["Size", fmtSize(m.size)], ["Sender", m.sender || "<>"],
        ["Client", m.client.address ? `${m.client.name || "unknown"}[${m.client.address}] helo=${m.client.helo} ${m.client.proto}` : "(local)"],
        ["Attempts", String(m.attempts)], ["Next try", m.next_try ? fmtTime(m.next_try) : ""], ["Parent", m.parent || ""]]
        .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
      h("dt", {}, "Recipients"), h("dd", {}, m.recipients.map((r) => h("div", {}, `${r.address} — ${r.state}`, r.dsn ? ` ${r.dsn}` : "", r.reason ? ` (${r.reason})` : ""))))),
    h("div", { class: "panel" }, h("h2", {}, "Headers"), h("pre", { class: "headers" }, m.headers)),
    h("p", {}, h("a", { href: `#/logs?qid=${m.id}` }, "Its log lines")));
});

/* ---- Logs ---- */

route(/^\/logs$/, async (params) => {
  const qid = h("input", { type: "search", id: "flt-qid", value: params.get("qid") || "", placeholder: "queue ID" });
  const text = h("input", { type: "search", id: "flt-text", value: params.get("q") || "", placeholder: "any text" });
  const auto = h("input", { type: "checkbox", id: "flt-auto", checked: true });
  const out = h("pre", { class: "logs", id: "log-lines", "aria-live": "off", tabindex: "0" });
  const status = h("p", { class: "hint", id: "log-status" });
  const err = h("p", { class: "form-error", id: "err-q" });
  let offset = null, count = 0;
  async function load(reset) {
    const qs = new URLSearchParams({ lines: "500" });
    if (qid.value.trim()) qs.set("qid", qid.value.trim());
    if (text.value.trim()) qs.set("q", text.value.trim());
    if (!reset && offset !== null) qs.set("after", String(offset));
    try {
      const d = await api("GET", `/logs?${qs}`);
      err.textContent = "";
      const atBottom = out.scrollTop + out.clientHeight >= out.scrollHeight - 20;
      if (reset) { out.replaceChildren(); count = 0; }
      for (const line of d.lines) { out.append(line + "\n"); count += 1; }
      while (out.childNodes.length > 5000) out.firstChild.remove();
      offset = d.offset;
      status.textContent = `${count} line(s) of ${d.file}; ${auto.checked ? "refreshing every 2 s" : "not refreshing"}`;
      if (reset || atBottom) out.scrollTop = out.scrollHeight;
    } catch (e) {
      if (e.sessionEnded) return;
      err.textContent = e.data && e.data.errors ? Object.values(e.data.errors).join("; ") : e.message;
    }
  }
  const form = h("form", { class: "filters", role: "search" },
    h("label", { for: qid.id }, "Queue ID", qid), h("label", { for: text.id }, "Text", text),
    h("label", { class: "check", for: auto.id }, auto, "refresh automatically"),
    h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const n = new URLSearchParams();
    if (qid.value.trim()) n.set("qid", qid.value.trim());
    if (text.value.trim()) n.set("q", text.value.trim());
    history.replaceState(null, "", "#/logs" + (n.toString() ? `?${n}` : ""));
    load(true);
  });
  auto.addEventListener("change", () => load(false));
  show(h("h1", {}, "Logs"), form, err, status, out);
  await load(true);
  state.timer = setInterval(() => { if (auto.checked) load(false); }, 2000);
});

/* ---- Admin: network, send email, admins ---- */

function adminNav(current) {
  return h("nav", { class: "subnav", "aria-label": "Admin" },
    [["network", "Network"], ["send", "Send email"], ["admins", "Admins"]].map(([k, t]) =>
      h("a", { href: `#/admin/${k}`, "aria-current": k === current ? "page" : null }, t)));
}

route(/^\/admin$/, () => { location.replace("#/admin/network"); });

route(/^\/admin\/network$/, async function network(params, message) {
  const n = await api("GET", "/network");
  const st = n.dns.config;
  const servers = [...st.fields.dns_servers];
  const form = h("form", { class: "panel", novalidate: true, id: "dns-form" }, h("h2", {}, "DNS servers for mail"),
    listEditor("dns_servers", "DNS servers", servers, "Add DNS server", "192.0.2.53 or 192.0.2.53:5353",
      "the servers mailseal asks (dns_servers); empty means those of /etc/resolv.conf", st), formError());
  const save = h("button", { type: "button" }, "Save");
  const apply = h("button", { type: "button", class: "primary" }, "Apply");
  save.addEventListener("click", () => busy(save, form, async () => {
    await api("PUT", "/network/dns", { dns_servers: servers });
    await network(params, "Saved; Apply puts it in force.");
  }));
  apply.addEventListener("click", () => busy(apply, form, async () => {
    await api("PUT", "/network/dns", { dns_servers: servers });
    await api("POST", "/apply");
    await network(params, "Applied.");
  }));
  form.append(h("div", { class: "actions" }, save, apply));
  const ifaces = n.interfaces.map((i) => h("tr", {}, h("td", {}, i.name),
    h("td", {}, i.addresses.map((a) => h("div", { class: "mono" }, `${a.address}/${a.prefix}`))),
    h("td", { class: "mono" }, i.mac), h("td", {}, i.up ? "up" : "down")));
  show(h("h1", {}, "Admin"), adminNav("network"),
    message ? h("p", { class: "banner ok", role: "status" }, message) : null,
    h("div", { class: "panel", id: "network-info" }, h("h2", {}, "Network info"), h("dl", { class: "kv" },
      h("dt", {}, "Hostname"), h("dd", {}, n.hostname),
      h("dt", {}, "My hostname (MTA)"), h("dd", {}, n.myhostname),
      h("dt", {}, "DNS servers in use"), h("dd", {}, n.dns.in_use.join(", ") || "(none)"),
      h("dt", {}, "System DNS servers"), h("dd", {}, n.dns.system.join(", ") || "(none)"),
      h("dt", {}, "DNS search list"), h("dd", {}, n.dns.search.join(" ") || "(none)"),
      h("dt", {}, "Default gateway"), h("dd", {}, n.default_gateway ? `${n.default_gateway.address} (${n.default_gateway.interface})` : "(none)")),
    h("h2", {}, "Network interfaces"),
    h("div", { class: "table-wrap" }, h("table", { id: "iface-table" }, h("thead", {}, h("tr", {}, ["Name", "Addresses", "MAC", "State"].map((t) => h("th", {}, t)))), h("tbody", {}, ifaces)))),
    form);
});

route(/^\/admin\/send$/, async () => {
  const from = input("from", `postmaster@${"localhost"}`, { type: "email" });
  const to = input("to", "", { type: "email" });
  const subject = input("subject", "mailseal test message");
  const button = h("button", { type: "submit", class: "primary" }, "Send");
  const result = h("div", { id: "send-result" });
  const form = h("form", { class: "panel", novalidate: true, id: "send-form" }, h("h2", {}, "Send email"),
    h("p", { class: "hint" }, "Sends a test message through the gateway, as a client would; its delivery shows in the log."),
    field("from", "From", from), field("to", "To", to), field("subject", "Subject", subject),
    formError(), h("div", { class: "actions" }, button), result);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(button, form, async () => {
      clearErrors(form);
      const r = await api("POST", "/send-test", { from: from.value.trim(), to: to.value.trim(), subject: subject.value });
      result.replaceChildren(h("p", { class: "banner ok", role: "status" }, "Queued as ",
        h("code", { id: "sent-qid" }, r.queue_id), ". ",
        h("a", { href: `#/logs?qid=${r.queue_id}`, id: "sent-log-link" }, "Follow its delivery in the log")));
    });
  });
  show(h("h1", {}, "Admin"), adminNav("send"), form);
  try {
    const st = await api("GET", "/mta");
    from.value = `postmaster@${st.running.myhostname || "localhost"}`;
  } catch (e) { /* keep the default */ }
});

route(/^\/admin\/admins$/, async function admins() {
  const d = await api("GET", "/admins");
  const user = input("username", "", { autocomplete: "off" });
  const pass = input("password", "", { type: "password", autocomplete: "new-password" });
  const button = h("button", { type: "submit", class: "primary" }, "Add admin");
  const add = h("form", { class: "panel", novalidate: true, id: "admin-add" }, h("h2", {}, "Add an admin"),
    field("username", "User name", user), field("password", "Password", pass, "at least 10 characters"),
    formError(), h("div", { class: "actions" }, button));
  add.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(button, add, async () => {
      await api("POST", "/admins", { username: user.value.trim(), password: pass.value });
      toast("Admin added");
      admins();
    });
  });
  const cur = input("current_password", "", { type: "password", autocomplete: "current-password" });
  const npw = input("new-password", "", { type: "password", autocomplete: "new-password" });
  const pbutton = h("button", { type: "submit", class: "primary" }, "Change my password");
  const pform = h("form", { class: "panel", novalidate: true, id: "admin-passwd" }, h("h2", {}, "Your password"),
    field("current_password", "Current password", cur), h("div", {}, field("password", "New password", npw)),
    formError(), h("div", { class: "actions" }, pbutton));
  pform.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(pbutton, pform, async () => {
      await api("PUT", `/admins/${encodeURIComponent(state.user)}/password`, { current_password: cur.value, password: npw.value });
      toast("Password changed");
      admins();
    });
  });
  const rows = d.admins.map((a) => h("tr", {}, h("td", {}, a.username, a.you ? " (you)" : ""), h("td", {}, fmtTime(a.created)),
    h("td", {}, a.you ? "" : h("button", { type: "button", class: "danger", "aria-label": `Delete ${a.username}`, onclick: async () => {
      if (!confirmDo(`Delete admin ${a.username}?`)) return;
      try { await api("DELETE", `/admins/${encodeURIComponent(a.username)}`); admins(); } catch (e) { toast(e.message); }
    } }, "Delete"))));
  show(h("h1", {}, "Admin"), adminNav("admins"),
    h("div", { class: "table-wrap" }, h("table", { id: "admins-table" }, h("thead", {}, h("tr", {}, ["User", "Created", ""].map((t) => h("th", {}, t)))), h("tbody", {}, rows))),
    h("p", {}), add, pform);
});

/* ---- start ---- */

document.getElementById("logout").addEventListener("click", async () => {
  try { await api("POST", "/logout"); } catch (e) { /* gone already */ }
  state.user = null;
  state.csrf = null;
  renderLogin("You are logged out.");
});

document.getElementById("nav-toggle").addEventListener("click", () => {
  const nav = document.getElementById("nav");
  nav.classList.toggle("open");
  document.getElementById("nav-toggle").setAttribute("aria-expanded", String(nav.classList.contains("open")));
});

window.addEventListener("hashchange", navigate);

(async function start() {
  try {
    loggedIn(await api("GET", "/session"));
  } catch (e) {
    if (!e.sessionEnded) renderLogin(e.message);
  }
}());
