// Ticket list (most urgent first), detail, login, on site / acknowledge /
// resolve (signed commands via the dashboard).
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
  const rows = TICKETS.filter((tk) => !only || tk.state !== "closed").slice().sort(byUrgency).map((tk) =>
    el("tr", { "data-key": keyOf(tk), class: keyOf(tk) === SEL ? "sel" : "" },
      el("td", { class: "nowrap" }, el("a", { href: ticketHref(tk) }, "#" + str(tk.id))),
      el("td", { class: "wide" }, str(tk.site) + "/" + str(tk.gateway)), el("td", { class: "dev" }, ticketDevice(tk)),
      el("td", { class: "nowrap sev-" + (tk.severity === "critical" ? "critical" : "ordinary") }, t(tk.severity === "critical" ? "critical" : "ordinary")),
      el("td", { class: "nowrap" }, stateText(tk.state)), el("td", { class: "wide nowrap" }, dateTimeText(tk.opened_ms))));
  const tb = fill("rows", rows);
  for (const tr of tb.querySelectorAll("tr")) tr.onclick = (e) => {
    if (e.target instanceof Element && e.target.closest("a")) return;
    SEL = tr.dataset.key; location.hash = SEL; renderList(); renderDetail(true);
  };
}

function step(name, s) {
  if (!s || typeof s !== "object") return null;
  return el("div", null, name + "：" + byText(s.by) + " · " + dateTimeText(s.at_ms) + (s.note ? " · " + noteText(s.note) : ""));
}

// The device page of a ticket's device.
function deviceHref(tk) {
  return "/devices/" + encodeURIComponent(str(tk.site)) + "/" + encodeURIComponent(str(tk.gateway)) + "/" + encodeURIComponent(str(tk.device));
}

// The detail of the selected ticket. Re-made from a refresh only when the
// ticket or what may be done changed, so that a note being typed stays;
// the outcome of an action is in #act-msg, which no refresh touches.
let SHOWN = "";
function renderDetail(force) {
  const box = document.getElementById("detail");
  const tk = TICKETS.find((x) => keyOf(x) === SEL);
  if (!tk) { box.replaceChildren(); SHOWN = ""; return; }
  const sig = JSON.stringify(tk) + "|" + LANG + "|" + (ME ? ME.user : "");
  if (!force && sig === SHOWN) return;
  SHOWN = sig;
  const old = document.getElementById("note");
  const typed = old ? old.value : "";
  const parts = [
    el("h2", null, "#" + str(tk.id) + " · " + ticketDevice(tk)),
    el("div", null, ticketTitle(tk)),
    // The gateway's own text as stored with the ticket (Chinese), kept for
    // the record where it says more than the title written from the facts.
    str(tk.summary) && !ticketTitle(tk).includes(str(tk.summary))
      ? el("div", { class: "dim" }, (LANG === "en" ? "As recorded by the gateway: " : "网关记录：") + str(tk.summary)) : null,
    el("div", null, t(tk.severity === "critical" ? "critical" : "ordinary") + " · " + stateText(tk.state) + " · " + kindText(tk.kind, tk)),
    el("div", null, tw("deadline") + "：" + dateTimeText(tk.deadline_ms)),
    step(tw("arrived_by"), tk.arrived), step(t("acknowledged"), tk.acknowledged), step(t("resolved"), tk.resolved), step(t("closed"), tk.closed),
    el("h3", null, t("history")),
    el("ol", { class: "ph-history" }, list(tk.history).filter((s) => s && typeof s === "object").map((s) =>
      el("li", null, el("span", { class: "ph-when" }, dateTimeText(s.at_ms)), " ", el("b", null, stepText(s.kind)),
        " · " + byText(s.by) + (s.note ? " · " + noteText(s.note) : "")))),
    el("p", null, el("a", { href: ticketHref(tk) }, LANG === "en" ? "Phone page of this ticket" : "本工单手机页"), " · ",
      el("a", { href: deviceHref(tk) }, t("device") + " " + ticketDevice(tk))),
  ];
  const ops = ME ? allowedOps(tk) : [];
  if (ops.length) {
    parts.push(el("label", null, t("note"), el("textarea", { id: "note", maxlength: "2000" })));
    parts.push(el("div", { class: "ph-buttons" }, ops.map((op) => el("button", { class: "ph-btn op-" + op, id: "do-" + op, type: "button", "data-op": op }, tw(op)))));
  }
  fill(box, parts);
  const note = document.getElementById("note");
  if (note) note.value = typed;
  for (const b of box.querySelectorAll("button[data-op]")) b.onclick = () => act(tk, b.dataset.op);
}

async function act(tk, op) {
  const msg = document.getElementById("act-msg");
  msg.className = "msg"; msg.textContent = tw("sending");
  const noteBox = document.getElementById("note");
  const r = await sendOp(tk, op, noteBox ? noteBox.value : "", ME ? ME.csrf : "");
  showOutcome(msg, r.ok ? "ok" : "err", "#" + str(tk.id) + " · " + outcomeText(r, tk, op));
  if (r.ok && noteBox) noteBox.value = "";
  await load();
}

async function load() {
  const r = await api("/api/tickets");
  if (r.ok) { TICKETS = list(obj(r.body).tickets).filter((tk) => tk && typeof tk === "object"); renderList(); renderDetail(); }
}

async function whoami() {
  const r = await api("/api/me");
  ME = r.ok ? r.body : null;
  labels(); renderDetail(true);
}

async function logout() {
  await api("/api/logout", { method: "POST", headers: { "x-csrf-token": ME ? ME.csrf : "" } });
  ME = null; labels(); renderDetail(true);
}

document.getElementById("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const msg = document.getElementById("login-msg");
  const r = await api("/api/login", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ user: document.getElementById("user").value, password: document.getElementById("password").value }) });
  if (r.ok) { ME = r.body; msg.textContent = ""; labels(); renderDetail(true); }
  else { msg.className = "msg err"; msg.textContent = str(obj(r.body).error) || ("HTTP " + r.status); }
});
document.getElementById("only-open").onchange = renderList;
document.getElementById("lang").onclick = () => { toggleLang(); labels(); renderList(); renderDetail(true); };
// The ticket in the address (#site/gateway/id), also when only it changes.
function selectFromHash() {
  if (location.hash.length > 1) { try { SEL = decodeURIComponent(location.hash.slice(1)); } catch (e) { SEL = null; } }
}
window.addEventListener("hashchange", () => { selectFromHash(); renderList(); renderDetail(true); });
selectFromHash();
labels();
whoami();
load();
setInterval(load, 5000);
