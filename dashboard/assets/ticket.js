// The phone page of one ticket (/tickets/{site}/{gateway}/{id}), the link
// of the alerts: on site (到场), acknowledge, resolve with a note; the
// device's live values and its last hour; the ticket's steps.
"use strict";

const PATH = location.pathname.split("/").map((p) => { try { return decodeURIComponent(p); } catch (e) { return ""; } });
const REF = { site: PATH[2], gateway: PATH[3], id: PATH[4] }; // ["", "tickets", site, gateway, id]
const TICKET_API = "/api/tickets/" + encodeURIComponent(REF.site) + "/" + encodeURIComponent(REF.gateway) + "/" + encodeURIComponent(REF.id);
const HOUR = 3600 * 1000;

let ME = null;
let TK = null;       // the ticket, as the API gives it
let MISSING = false; // the API says there is no such ticket
let DEV = null;      // its device
let HIST = null;     // the device's last hour
let BUSY = false;    // an action is on its way
let SHOWN_OPS = "";  // the buttons on screen (kept while the state allows them)

function labels() {
  document.getElementById("lang").textContent = t("lang");
  document.getElementById("nav-list").textContent = "‹ " + t("ticket_list");
  document.getElementById("l-user").textContent = t("user");
  document.getElementById("l-pass").textContent = t("password");
  document.getElementById("login-btn").textContent = t("login");
  const who = document.getElementById("who");
  fill(who, ME ? [el("span", { class: "ph-user" }, str(ME.user)), " ", el("button", { class: "btn", id: "logout", type: "button" }, t("logout"))] : []);
  if (ME) document.getElementById("logout").onclick = logout;
  document.getElementById("login").hidden = !!ME;
}

function stepLine(label, s) {
  if (!s || typeof s !== "object") return null;
  return el("p", { class: "ph-step" }, el("b", null, label), " " + byText(s.by) + " · " + dateTimeText(s.at_ms) + (s.note ? " · " + noteText(s.note) : ""));
}

function renderHead() {
  const box = document.getElementById("head");
  if (MISSING) {
    document.title = "404 · BMS";
    fill(box, el("h1", null, LANG === "en" ? "Ticket not found" : "找不到工单"),
      el("p", { class: "ph-text" }, LANG === "en"
        ? "There is no ticket #" + REF.id + " from gateway " + REF.gateway + " of site " + REF.site + "."
        : "项目 " + REF.site + " 的网关 " + REF.gateway + " 没有 #" + REF.id + " 号工单。"));
    return;
  }
  if (!TK) { box.replaceChildren(); return; }
  const tk = TK;
  document.title = "#" + str(tk.id) + " " + ticketDevice(tk) + " · BMS";
  const over = tk.state !== "resolved" && tk.state !== "closed" && num(tk.deadline_ms) && tk.deadline_ms < serverNow();
  fill(box,
    el("p", { class: "ph-tags" },
      el("span", { class: "ph-tag sev-" + (tk.severity === "critical" ? "critical" : "ordinary") }, t(tk.severity === "critical" ? "critical" : "ordinary")),
      " ", el("span", { class: "ph-tag st-" + str(tk.state) }, stateText(tk.state)), " #" + str(tk.id)),
    el("h1", { class: "ph-title" }, ticketDevice(tk)),
    el("p", { class: "ph-summary" }, ticketTitle(tk)),
    el("p", { class: "ph-text" }, kindText(tk.kind, tk) + " · " + str(tk.site) + " / " + str(tk.gateway)),
    el("p", { class: over ? "ph-text ph-over" : "ph-text" }, tw("deadline") + "：" + dateTimeText(tk.deadline_ms) + (over ? " · " + t("overdue") : "")),
    stepLine(tw("arrived_by") + "：", tk.arrived) || el("p", { class: "ph-step ph-dim" }, tw("not_arrived")),
    stepLine(t("acknowledged") + "：", tk.acknowledged),
    stepLine(t("resolved") + "：", tk.resolved));
}

// The buttons; re-made only when what is allowed changes, so that a note
// being typed and the message of the last action stay.
function renderActions(force) {
  const box = document.getElementById("actions");
  const ops = ME && TK ? allowedOps(TK) : [];
  const sig = ops.join(",") + "|" + LANG;
  if (!force && sig === SHOWN_OPS) { for (const b of box.querySelectorAll("button")) b.disabled = BUSY; return; }
  SHOWN_OPS = sig;
  const old = document.getElementById("note");
  const note = old ? old.value : "";
  if (!ops.length) { box.replaceChildren(); return; }
  fill(box,
    el("div", { class: "ph-buttons" }, ops.map((op) => el("button", { class: "ph-btn op-" + op, id: "do-" + op, type: "button", "data-op": op }, tw(op)))),
    el("label", { class: "ph-note" }, el("span", null, t("note")), el("textarea", { id: "note", maxlength: "2000", rows: "3" })));
  document.getElementById("note").value = note;
  for (const b of box.querySelectorAll("button[data-op]")) { b.disabled = BUSY; b.onclick = () => act(b.dataset.op); }
}

function renderDevice() {
  const box = document.getElementById("device");
  if (!DEV) { box.replaceChildren(); return; }
  const d = DEV;
  const shown = ["up", "down", "maintenance", "unknown", "stale"].includes(d.shown) ? d.shown : "unknown";
  const units = obj(d.units);
  const where = str(LANG === "en" ? d.location_en || d.location : d.location);
  const rows = Object.entries(obj(d.points)).map(([k, v]) =>
    el("tr", null, el("th", { title: k }, pointLabel(d, k)), el("td", { class: "ph-num" }, fmtValue(v, units[k]))));
  fill(box,
    el("h2", null, t("points")),
    el("p", { class: "ph-text" }, el("span", { class: "badge " + shown }, t(shown)), " " + className(d.class) + (where ? " · " + where : "")
      + (d.reason ? " · " + t("reason") + "：" + reasonText(d) : "")),
    el("table", { class: "ph-table" }, el("tbody", null, rows)),
    el("p", { class: "ph-dim" }, (LANG === "en" ? "Values of " : "数值时间 ") + dateTimeText(d.telemetry_ts)),
    el("p", null, el("a", { href: "/devices/" + encodeURIComponent(str(REF.site)) + "/" + encodeURIComponent(str(d.gateway)) + "/" + encodeURIComponent(str(d.id)) },
      LANG === "en" ? "Device page and trends" : "设备页与趋势")));
}

// A small line of the hour's means, drawn with SVG (no markup, no styles inline).
function spark(rows, from, to) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 100 24");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "ph-spark");
  const vals = rows.map((r) => r[1]).filter(num);
  if (vals.length < 2) return svg;
  const lo = Math.min(...vals), hi = Math.max(...vals), h = hi - lo || 1;
  const pts = rows.filter((r) => num(r[1])).map((r) => ((r[0] - from) / (to - from) * 100).toFixed(2) + "," + (22 - (r[1] - lo) / h * 20).toFixed(2));
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", pts.join(" "));
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "#5ab0ff");
  line.setAttribute("stroke-width", "1.5");
  line.setAttribute("vector-effect", "non-scaling-stroke");
  svg.appendChild(line);
  return svg;
}

function renderHour() {
  const box = document.getElementById("hour");
  const head = el("h2", null, LANG === "en" ? "Last hour" : "最近一小时");
  if (!HIST || !DEV) { fill(box, head, el("p", { class: "ph-dim" }, LANG === "en" ? "No history." : "暂无历史数据。")); return; }
  const to = num(HIST.to) ? HIST.to : serverNow(), from = to - HOUR;
  const units = obj(DEV.units), points = obj(HIST.points);
  const rows = [];
  for (const p of Object.keys(points)) {
    if (!own(units, p) || !units[p] || !Array.isArray(points[p])) continue;
    const r = points[p].filter((x) => Array.isArray(x) && num(x[0]) && x[0] >= from);
    const mins = r.map((x) => x[2]).filter(num), maxs = r.map((x) => x[3]).filter(num);
    if (!mins.length) continue;
    rows.push(el("tr", null, el("th", { title: p }, pointLabel(DEV, p)),
      el("td", { class: "ph-num" }, fmtValue(Math.min(...mins), units[p]) + " – " + fmtValue(Math.max(...maxs), units[p])),
      el("td", { class: "ph-spark-cell" }, spark(r, from, to))));
    if (rows.length >= 6) break;
  }
  fill(box, head, rows.length
    ? el("table", { class: "ph-table" }, el("thead", null, el("tr", null, el("th", null, LANG === "en" ? "Point" : "测点"),
      el("th", null, LANG === "en" ? "min – max" : "最低 – 最高"), el("th", null, LANG === "en" ? "trend" : "走势"))), el("tbody", null, rows))
    : el("p", { class: "ph-dim" }, LANG === "en" ? "No values in the last hour." : "最近一小时没有数值。"));
}

function renderSteps() {
  const box = document.getElementById("steps");
  if (!TK) { box.replaceChildren(); return; }
  const steps = list(TK.history).filter((s) => s && typeof s === "object").slice().reverse();
  fill(box, el("h2", null, t("history")),
    el("ol", { class: "ph-history" }, steps.map((s) => el("li", { class: "k-" + str(s.kind) },
      el("span", { class: "ph-when" }, dateTimeText(s.at_ms)), " ",
      el("b", null, stepText(s.kind)), " · " + byText(s.by) + (s.note ? " · " + noteText(s.note) : "")))));
}

function renderAll(force) { labels(); renderHead(); renderActions(force); renderDevice(); renderHour(); renderSteps(); }

async function act(op) {
  if (!TK || BUSY) return;
  const msg = document.getElementById("act-msg");
  BUSY = true; renderActions();
  msg.className = "msg"; msg.textContent = tw("sending");
  const noteBox = document.getElementById("note");
  const r = await sendOp(TK, op, noteBox ? noteBox.value : "", ME ? ME.csrf : "");
  BUSY = false;
  showOutcome(msg, r.ok ? "ok" : "err", outcomeText(r, TK, op));
  if (r.ok && noteBox) noteBox.value = "";
  if (r.status === 401) { ME = null; }
  await loadTicket();
  renderAll();
}

async function loadTicket() {
  const r = await api(TICKET_API);
  if (r.ok) { TK = obj(r.body); MISSING = false; }
  else if (r.status === 404) { TK = null; MISSING = true; }
  else if (r.status === 401) { ME = null; }
}

async function loadDevice() {
  if (!TK) return;
  const base = "/api/sites/" + encodeURIComponent(str(TK.site)) + "/gateways/" + encodeURIComponent(str(TK.gateway)) + "/devices/" + encodeURIComponent(str(TK.device));
  const r = await api(base);
  DEV = r.ok ? obj(r.body) : null;
  return base;
}

// The last hour from the history API: `1h` where the dashboard has it, else
// the last hour of `24h`.
let HOUR_RANGE = "1h";
async function loadHour() {
  if (!TK) return;
  const base = "/api/sites/" + encodeURIComponent(str(TK.site)) + "/gateways/" + encodeURIComponent(str(TK.gateway)) + "/devices/" + encodeURIComponent(str(TK.device));
  let r = await api(base + "/history?range=" + HOUR_RANGE);
  if (r.status === 400 && HOUR_RANGE === "1h") { HOUR_RANGE = "24h"; r = await api(base + "/history?range=24h"); }
  HIST = r.ok ? obj(r.body) : null;
}

async function whoami() {
  const r = await api("/api/me");
  ME = r.ok ? obj(r.body) : null;
}

async function refresh() {
  await loadTicket();
  await loadDevice();
  renderAll();
}

async function start() {
  await whoami();
  await refresh();
  await loadHour();
  renderHour();
}

async function logout() {
  await api("/api/logout", { method: "POST", headers: { "x-csrf-token": ME ? ME.csrf : "" } });
  ME = null; renderAll();
}

document.getElementById("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const msg = document.getElementById("login-msg");
  const r = await api("/api/login", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ user: document.getElementById("user").value, password: document.getElementById("password").value }) });
  if (r.ok) { ME = obj(r.body); msg.textContent = ""; document.getElementById("password").value = ""; await start(); }
  else { msg.className = "msg err"; msg.textContent = str(obj(r.body).error) || ("HTTP " + r.status); }
});
document.getElementById("lang").onclick = () => { toggleLang(); renderAll(true); };
renderAll();
start();
setInterval(() => { if (!BUSY) refresh(); }, 5000);
setInterval(() => { loadHour().then(renderHour); }, 60000);
