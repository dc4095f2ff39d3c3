// Ticket list, detail, login, acknowledge/resolve (signed commands via the dashboard).
"use strict";

let ME = null;
let TICKETS = [];
let SEL = null; // "site/gateway/id"

function keyOf(tk) { return str(tk.site) + "/" + str(tk.gateway) + "/" + str(tk.id); }

function labels() {
  document.getElementById("lang").textContent = t("lang");
  document.getElementById("h1").textContent = t("ticket_list");
  document.getElementById("nav-wall").textContent = t("wall");
  document.getElementById("nav-reports").textContent = t("reports"); // issue 7
  document.getElementById("nav-reports").href = "/reports?lang=" + (LANG === "en" ? "en" : "zh");
  document.getElementById("l-user").textContent = t("user");
  document.getElementById("l-pass").textContent = t("password");
  document.getElementById("login-btn").textContent = t("login");
  document.getElementById("l-open").textContent = t("only_open");
  document.getElementById("th-site").textContent = t("site");
  document.getElementById("th-dev").textContent = t("device");
  document.getElementById("th-sev").textContent = LANG === "en" ? "Severity" : "级别";
  document.getElementById("th-state").textContent = t("state");
  document.getElementById("th-opened").textContent = LANG === "en" ? "Opened" : "开单时间";
  const who = document.getElementById("who");
  fill(who, ME ? [str(ME.user) + " ", el("button", { class: "btn", id: "logout", type: "button" }, t("logout"))] : []);
  if (ME) document.getElementById("logout").onclick = logout;
  document.getElementById("login").hidden = !!ME;
}

function renderList() {
  const only = document.getElementById("only-open").checked;
  const rows = TICKETS.filter((tk) => !only || tk.state !== "closed").map((tk) =>
    el("tr", { "data-key": keyOf(tk), class: keyOf(tk) === SEL ? "sel" : "" },
      el("td", null, tk.id), el("td", null, str(tk.site) + "/" + str(tk.gateway)), el("td", null, tk.device),
      el("td", null, t(tk.severity)), el("td", null, t(tk.state)), el("td", null, dateTimeText(tk.opened_ms))));
  const tb = fill("rows", rows);
  for (const tr of tb.querySelectorAll("tr")) tr.onclick = () => { SEL = tr.dataset.key; location.hash = SEL; renderList(); renderDetail(); };
}

function step(name, s) {
  if (!s || typeof s !== "object") return null;
  return el("div", null, t(name) + "：" + str(s.by) + " · " + dateTimeText(s.at_ms) + (s.note ? " · " + str(s.note) : ""));
}

// The device page of a ticket's device.
function deviceHref(tk) {
  return "/devices/" + encodeURIComponent(str(tk.site)) + "/" + encodeURIComponent(str(tk.gateway)) + "/" + encodeURIComponent(str(tk.device));
}

function renderDetail() {
  const box = document.getElementById("detail");
  const tk = TICKETS.find((x) => keyOf(x) === SEL);
  if (!tk) { box.replaceChildren(); return; }
  const parts = [
    el("h2", null, "#" + str(tk.id) + " · " + str(tk.device)),
    el("div", null, tk.summary),
    el("div", null, t(tk.severity) + " · " + t(tk.state) + " · " + str(tk.kind)),
    el("div", null, (LANG === "en" ? "Deadline: " : "期限：") + dateTimeText(tk.deadline_ms)),
    step("acknowledged", tk.acknowledged), step("resolved", tk.resolved), step("closed", tk.closed),
    el("h3", null, t("history")),
    el("table", null, list(tk.history).filter((s) => s && typeof s === "object").map((s) =>
      el("tr", null, el("td", null, dateTimeText(s.at_ms)), el("td", null, s.kind), el("td", null, s.by), el("td", null, s.note)))),
    el("p", null, el("a", { href: deviceHref(tk) }, t("device") + " " + str(tk.device))),
  ];
  if (ME && (tk.state === "open" || tk.state === "acknowledged")) {
    parts.push(el("label", null, t("note"), el("textarea", { id: "note", maxlength: "2000" })));
    if (tk.state === "open") parts.push(el("button", { class: "btn", id: "do-ack", type: "button" }, t("ack")), " ");
    parts.push(el("button", { class: "btn", id: "do-resolve", type: "button" }, t("resolve")));
  }
  parts.push(el("div", { class: "msg", id: "act-msg" }));
  fill(box, parts);
  const a = document.getElementById("do-ack");
  if (a) a.onclick = () => act(tk, "ack");
  const r = document.getElementById("do-resolve");
  if (r) r.onclick = () => act(tk, "resolve");
}

async function act(tk, op) {
  const msg = document.getElementById("act-msg");
  msg.className = "msg"; msg.textContent = t("sending");
  const note = (document.getElementById("note") || {}).value || "";
  const r = await api("/api/tickets/" + encodeURIComponent(tk.site) + "/" + encodeURIComponent(tk.gateway) + "/" + encodeURIComponent(tk.id) + "/" + op, {
    method: "POST", headers: { "content-type": "application/json", "x-csrf-token": ME ? ME.csrf : "" }, body: JSON.stringify({ note }),
  });
  if (r.ok) { msg.className = "msg ok"; msg.textContent = t("done") + "：" + str(obj(r.body).result); setTimeout(load, 300); }
  else { msg.className = "msg err"; msg.textContent = str(obj(r.body).error) || ("HTTP " + r.status); }
}

async function load() {
  const r = await api("/api/tickets");
  if (r.ok) { TICKETS = list(obj(r.body).tickets).filter((tk) => tk && typeof tk === "object"); renderList(); renderDetail(); }
}

async function whoami() {
  const r = await api("/api/me");
  ME = r.ok ? r.body : null;
  labels(); renderDetail();
}

async function logout() {
  await api("/api/logout", { method: "POST", headers: { "x-csrf-token": ME ? ME.csrf : "" } });
  ME = null; labels(); renderDetail();
}

document.getElementById("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const msg = document.getElementById("login-msg");
  const r = await api("/api/login", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ user: document.getElementById("user").value, password: document.getElementById("password").value }) });
  if (r.ok) { ME = r.body; msg.textContent = ""; labels(); renderDetail(); }
  else { msg.className = "msg err"; msg.textContent = str(obj(r.body).error) || ("HTTP " + r.status); }
});
document.getElementById("only-open").onchange = renderList;
document.getElementById("lang").onclick = () => { toggleLang(); labels(); renderList(); renderDetail(); };
// The ticket in the address (#site/gateway/id), also when only it changes.
function selectFromHash() {
  if (location.hash.length > 1) { try { SEL = decodeURIComponent(location.hash.slice(1)); } catch (e) { SEL = null; } }
}
window.addEventListener("hashchange", () => { selectFromHash(); renderList(); renderDetail(); });
selectFromHash();
labels();
whoami();
load();
setInterval(load, 5000);
