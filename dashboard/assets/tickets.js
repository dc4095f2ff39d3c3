// Ticket list, detail, login, acknowledge/resolve (signed commands via the dashboard).
"use strict";

let ME = null;
let TICKETS = [];
let SEL = null; // "site/gateway/id"

function keyOf(tk) { return tk.site + "/" + tk.gateway + "/" + tk.id; }

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
  who.innerHTML = ME ? esc(ME.user) + ' <button class="btn" id="logout" type="button">' + esc(t("logout")) + "</button>" : "";
  if (ME) document.getElementById("logout").onclick = logout;
  document.getElementById("login").hidden = !!ME;
}

function renderList() {
  const only = document.getElementById("only-open").checked;
  const rows = TICKETS.filter((tk) => !only || tk.state !== "closed").map((tk) =>
    '<tr data-key="' + esc(keyOf(tk)) + '" class="' + (keyOf(tk) === SEL ? "sel" : "") + '"><td>' + esc(tk.id) + "</td><td>" + esc(tk.site) + "/" + esc(tk.gateway) + "</td><td>" + esc(tk.device) +
    "</td><td>" + esc(t(tk.severity)) + "</td><td>" + esc(t(tk.state)) + "</td><td>" + dateTimeText(tk.opened_ms) + "</td></tr>").join("");
  const tb = document.getElementById("rows");
  tb.innerHTML = rows;
  for (const tr of tb.querySelectorAll("tr")) tr.onclick = () => { SEL = tr.dataset.key; location.hash = SEL; renderList(); renderDetail(); };
}

function step(name, s) {
  return s ? "<div>" + esc(t(name)) + "：" + esc(s.by) + " · " + dateTimeText(s.at_ms) + (s.note ? " · " + esc(s.note) : "") + "</div>" : "";
}

function renderDetail() {
  const el = document.getElementById("detail");
  const tk = TICKETS.find((x) => keyOf(x) === SEL);
  if (!tk) { el.innerHTML = ""; return; }
  let h = "<h2>#" + esc(tk.id) + " · " + esc(tk.device) + "</h2>";
  h += "<div>" + esc(tk.summary) + "</div>";
  h += "<div>" + esc(t(tk.severity)) + " · " + esc(t(tk.state)) + " · " + esc(tk.kind) + "</div>";
  h += "<div>" + (LANG === "en" ? "Deadline: " : "期限：") + dateTimeText(tk.deadline_ms) + "</div>";
  h += step("acknowledged", tk.acknowledged) + step("resolved", tk.resolved) + step("closed", tk.closed);
  h += "<h3>" + esc(t("history")) + "</h3><table>" + (tk.history || []).map((s) => "<tr><td>" + dateTimeText(s.at_ms) + "</td><td>" + esc(s.kind) + "</td><td>" + esc(s.by) + "</td><td>" + esc(s.note || "") + "</td></tr>").join("") + "</table>";
  h += '<p><a href="/devices/' + encodeURIComponent(tk.site) + "/" + encodeURIComponent(tk.gateway) + "/" + encodeURIComponent(tk.device) + '">' + esc(t("device")) + " " + esc(tk.device) + "</a></p>";
  if (ME && (tk.state === "open" || tk.state === "acknowledged")) {
    h += '<label>' + esc(t("note")) + '<textarea id="note" maxlength="2000"></textarea></label>';
    if (tk.state === "open") h += '<button class="btn" id="do-ack" type="button">' + esc(t("ack")) + "</button> ";
    h += '<button class="btn" id="do-resolve" type="button">' + esc(t("resolve")) + "</button>";
  }
  h += '<div class="msg" id="act-msg"></div>';
  el.innerHTML = h;
  const a = document.getElementById("do-ack");
  if (a) a.onclick = () => act(tk, "ack");
  const r = document.getElementById("do-resolve");
  if (r) r.onclick = () => act(tk, "resolve");
}

async function act(tk, op) {
  const msg = document.getElementById("act-msg");
  msg.className = "msg"; msg.textContent = t("sending");
  const note = (document.getElementById("note") || {}).value || "";
  const r = await api("/api/tickets/" + encodeURIComponent(tk.site) + "/" + encodeURIComponent(tk.gateway) + "/" + tk.id + "/" + op, {
    method: "POST", headers: { "content-type": "application/json", "x-csrf-token": ME ? ME.csrf : "" }, body: JSON.stringify({ note }),
  });
  if (r.ok) { msg.className = "msg ok"; msg.textContent = t("done") + "：" + r.body.result; setTimeout(load, 300); }
  else { msg.className = "msg err"; msg.textContent = (r.body && r.body.error) || ("HTTP " + r.status); }
}

async function load() {
  const r = await api("/api/tickets");
  if (r.ok) { TICKETS = r.body.tickets; renderList(); renderDetail(); }
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
  else { msg.className = "msg err"; msg.textContent = (r.body && r.body.error) || ("HTTP " + r.status); }
});
document.getElementById("only-open").onchange = renderList;
document.getElementById("lang").onclick = () => { toggleLang(); labels(); renderList(); renderDetail(); };
if (location.hash.length > 1) SEL = decodeURIComponent(location.hash.slice(1));
labels();
whoami();
load();
setInterval(load, 5000);
