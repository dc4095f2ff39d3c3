// The wall page: live from /events (server-sent snapshots), rotates between sites.
// Fills any screen from 1366×768 to 3840×2160 without scrolling: sizes
// follow the viewport (style.css, --k), and render() shrinks --k until
// nothing overflows its box.
"use strict";

let SNAP = null;
let siteIndex = 0;
let lastRotate = Date.now();
let connected = false;
// `/?site=tower-a`: a wall for one building (no rotation, and the server
// sends only that site).
const ONLY_SITE = new URLSearchParams(location.search).get("site");

// The sites the wall rotates through: the configured ones (`rotate_sites`:
// the allow-list, else the report sites) when the dashboard names any, so
// that sites nobody configured cannot crowd the real ones out; else every
// site heard. `?site=` shows that one site whatever the list.
function shownSites() {
  const all = SNAP && Array.isArray(SNAP.sites) ? SNAP.sites : [];
  const only = SNAP && Array.isArray(SNAP.rotate_sites) ? SNAP.rotate_sites : [];
  return ONLY_SITE || !only.length ? all : all.filter((s) => only.includes(s.id));
}

function siteName(site) {
  return str(LANG === "en" ? site.name_en || site.name_zh : site.name_zh || site.name_en) || str(site.id);
}

function render() {
  document.getElementById("lang").textContent = t("lang");
  document.getElementById("nav-tickets").textContent = t("ticket_list");
  document.getElementById("nav-reports").textContent = t("reports");
  document.getElementById("nav-reports").href = "/reports?lang=" + (LANG === "en" ? "en" : "zh");
  document.getElementById("tk-title").textContent = t("tickets");
  document.getElementById("tone").textContent = (TONE.on ? t("tone_on") : t("tone_off"));
  document.getElementById("tone").classList.toggle("on", TONE.on);
  document.title = t("title") + " · BMS";
  const conn = document.getElementById("conn");
  const brokerDown = connected && SNAP && SNAP.broker_connected === false;
  conn.textContent = brokerDown ? t("broker_down") : t("disconnected");
  conn.classList.toggle("on", !connected || brokerDown);
  renderLegend();
  if (!SNAP) return fit();
  const sites = shownSites();
  if (!sites.length) {
    document.getElementById("site").textContent = (ONLY_SITE ? ONLY_SITE + " · " : "") + t("never");
    return fit();
  }
  if (siteIndex >= sites.length) siteIndex = 0;
  const site = sites[siteIndex];
  const sn = document.getElementById("site");
  sn.textContent = siteName(site);
  sn.title = str(site.id);
  const gws = list(site.gateways);
  const off = gws.filter((g) => g.status === "offline").length;
  document.getElementById("gw").textContent = (off ? t("gateways_offline", { n: off }) : gws.length === 1 ? t("gateways_online_1") : t("gateways_online", { n: gws.length })) + " · " + list(site.devices).length + " " + t("devices");
  document.getElementById("gw").title = gws.map((g) => str(g.id)).join(" · ");
  document.getElementById("gw").classList.toggle("old", off > 0);
  fill("dots", sites.length > 1 ? sites.map((s, i) => el("span", { class: i === siteIndex ? "on" : "" })) : []);
  renderBanner(site);
  renderClasses(site);
  renderTickets(site);
  renderFresh(site);
  fit();
}

// The states a tile can show (anything else shows as unknown).
const SHOWN = ["up", "down", "maintenance", "unknown", "stale"];
function shownOf(d) { return SHOWN.includes(d.shown) ? d.shown : "unknown"; }

function renderLegend() {
  const col = { up: "var(--up)", down: "var(--down)", maintenance: "var(--maint)", unknown: "var(--unknown)", stale: "var(--stale)" };
  fill("legend",
    SHOWN.map((s) => el("span", null, el("i", { style: { background: col[s] } }), t(s))),
    I18N[LANG].legend_note ? el("span", null, I18N[LANG].legend_note) : null);
}

// Hard alarms to show: every active one, and every alarm ticket nobody has
// acknowledged yet although its condition cleared ("cleared, not
// acknowledged"): an alarm stays on the wall until a person takes it.
function bannerAlarms(site) {
  const out = [];
  const tks = list(site.tickets);
  const open = (tk) => tk.state === "open" && !tk.acknowledged;
  for (const a of list(site.alarms)) {
    const tk = tks.find((x) => x.device === a.device && x.kind === "alarm:" + a.point && x.gateway === a.gateway);
    out.push({ device: a.device, gateway: a.gateway, point: a.point, since: a.since, active: true, unack: !tk || open(tk), ticket: tk });
  }
  for (const tk of tks) {
    if (!str(tk.kind).startsWith("alarm:") || !open(tk)) continue;
    const point = str(tk.kind).slice(6);
    if (out.some((a) => a.device === tk.device && a.point === point && a.gateway === tk.gateway)) continue;
    out.push({ device: tk.device, gateway: tk.gateway, point, since: tk.opened_ms, active: false, unack: true, ticket: tk });
  }
  return out;
}

function renderBanner(site) {
  const b = document.getElementById("banner");
  const alarms = bannerAlarms(site);
  const active = alarms.some((a) => a.active);
  b.classList.toggle("on", alarms.length > 0);
  b.classList.toggle("active", active);
  b.classList.toggle("cleared", !active && alarms.length > 0);
  const shown = alarms.slice(0, 3);
  fill(b, shown.map((a) => {
    const d = list(site.devices).find((x) => x.id === a.device && x.gateway === a.gateway) || { id: a.device, name_zh: obj(obj(a.ticket).facts).device_zh, name_en: obj(obj(a.ticket).facts).device_en };
    const what = a.ticket && !d.labels ? ticketTitle(a.ticket).split(" · ").slice(1).join(" · ") : pointLabel(d, a.point);
    return el("div", { class: "al " + (a.active ? "active" : "cleared"), "data-point": a.point },
      (a.active ? "⚠ " : "✓ ") + t("alarm") + t("colon") + devName(d) + " · " + what + " · " + t("since") + " " + clockText(a.since) +
      " · " + (a.active ? (a.unack ? t("active_alarm") + " · " + t("notack") : t("active_alarm")) : t("cleared_unack")));
  }), alarms.length > shown.length ? el("div", { class: "al" }, t("more", { n: alarms.length - shown.length })) : null);
  TONE.wanted = alarms.some((a) => a.unack);
}

// The device page of a tile.
function deviceHref(site, d) {
  return "/devices/" + encodeURIComponent(str(site.id)) + "/" + encodeURIComponent(str(d.gateway)) + "/" + encodeURIComponent(str(d.id));
}

// "11 分钟" / "2 小时 5 分" / "11 min".
function minutesText(ms) {
  if (!num(ms)) return "—";
  const m = Math.max(0, Math.floor(ms / 60000));
  if (m < 120) return m + " " + t("min_long");
  return span(m * 60000);
}

function budgetLine(f) {
  if (!num(f.left_ms)) return el("div", { class: "budget none" }, t("no_budget"));
  const lvl = ["ok", "amber", "red", "missed"].includes(f.budget_level) ? f.budget_level : "ok";
  const text = f.left_ms > 0 ? t("left_month", { n: minutesText(f.left_ms) }) : t("missed_month", { n: minutesText(-f.left_ms) });
  return el("div", { class: "budget " + lvl, "data-level": lvl }, text);
}

// Classes in rows, each row's sections as wide as their tiles need.
function renderClasses(site) {
  const byClass = {};
  for (const d of list(site.devices)) {
    const c = str(d.class);
    (own(byClass, c) ? byClass[c] : (byClass[c] = [])).push(d);
  }
  const order = CLASSES.map((c) => c[0]).filter((c) => own(byClass, c)).concat(Object.keys(byClass).filter((c) => !CLASSES.some((r) => r[0] === c)));
  const sections = order.map((c) => {
    const f = obj(obj(site.classes)[c]);
    const month = num(f.month_now) ? f.month_now : f.month;
    const below = num(month) && num(f.target) && month < f.target / 100;
    const tgt = num(f.target) ? f.target + "%" : "—";
    const fig = el("div", { class: "fig" },
      el("div", { class: "l" }, el("span", null, t("month")), " ", el("b", { class: below ? "below" : "" }, pct(month, 2)), " ", el("span", null, "/ " + t("target") + " " + tgt)),
      budgetLine(f),
      el("div", { class: "l" }, el("span", null, t("intact")), " ", el("b", null, pct(f.intact_month, 1)), " · " + t("now") + " ", el("b", null, pct(f.intact_now, 0))));
    const tiles = byClass[c].map((d) => {
      const shown = shownOf(d);
      const alarm = list(d.alarms).length ? " alarm" : "";
      const why = shown === "down" ? reasonText(d) : "";
      return el("a", { class: "tile " + shown + alarm, "data-device": d.id, "data-state": shown, href: deviceHref(site, d), title: devName(d) + (devLocation(d) ? " · " + devLocation(d) : "") },
        el("div", { class: "n" }, shortName(d)),
        el("div", { class: "v" }, keyReading(d)),
        el("div", { class: "s" }, t(shown) + (why ? " · " + why : "")));
    });
    return { n: byClass[c].length, node: el("section", { class: "cls", "data-class": c },
      el("h2", null, className(c)), fig, el("div", { class: "tiles", style: { "--n": String(byClass[c].length) } }, tiles)) };
  });
  // Rows: about as many tiles in each; fewer rows on a narrow screen
  // (one column below 700 px, where the page may scroll).
  const box = document.getElementById("classes");
  const narrow = window.innerWidth < 700;
  const total = sections.reduce((a, s) => a + Math.max(s.n, 2), 0);
  const rowsWanted = narrow ? sections.length : Math.max(1, Math.min(sections.length, Math.round(Math.sqrt(total * window.innerHeight / window.innerWidth * 0.9))));
  const per = total / rowsWanted;
  const rows = [];
  let cur = [], acc = 0;
  for (const s of sections) {
    const w = Math.max(s.n, 2);
    if (cur.length && rows.length < rowsWanted - 1 && acc + w / 2 > per * (rows.length + 1)) { rows.push(cur); cur = []; }
    cur.push(s); acc += w;
  }
  if (cur.length) rows.push(cur);
  fill(box, rows.map((r) => el("div", { class: "row" }, r.map((s) => { s.node.style.setProperty("flex-grow", String(Math.max(s.n, 2))); return s.node; }))));
}

// Ticket severities with a style of their own.
const SEVERITIES = ["critical", "ordinary"];

function renderTickets(site) {
  const now = serverNow();
  const tks = list(site.tickets);
  const max = window.innerHeight > 1400 ? 8 : 5;
  const out = [];
  if (!tks.length) out.push(el("div", { class: "empty" }, t("none")));
  for (const tk of tks.slice(0, max)) {
    const left = num(tk.deadline_ms) ? tk.deadline_ms - now : NaN;
    const due = !num(left) ? "—" : left >= 0 ? t("due_in", { d: span(left) }) : t("over_by", { d: span(-left) });
    const ack = tk.acknowledged ? t("ackby") + t("colon") + str(obj(tk.acknowledged).by) : t("notack");
    const sev = SEVERITIES.includes(tk.severity) ? tk.severity : "";
    const unack = tk.state === "open" && !tk.acknowledged ? " unack" : "";
    const where = ticketLocation(tk);
    out.push(el("div", { class: "tk " + sev + unack, "data-ticket": tk.id, "data-state": tk.state },
      el("div", { class: "h" }, el("span", null, "#" + str(tk.id)), el("span", null, t(tk.severity))),
      el("div", { class: "sum" }, ticketTitle(tk)),
      where ? el("div", { class: "where" }, where) : null,
      el("div", null, t("age") + " " + span(num(tk.opened_ms) ? now - tk.opened_ms : NaN) + " · ", el("span", { class: "due " + (left < 0 ? "over" : "") }, due)),
      el("div", { class: "st" }, t(tk.state) + " · " + ack)));
  }
  if (tks.length > max) out.push(el("div", { class: "empty" }, t("more", { n: tks.length - max })));
  fill("tickets", out);
}

function renderFresh(site) {
  const now = serverNow();
  let last = 0;
  for (const g of list(site.gateways)) if (num(g.heard_ms)) last = Math.max(last, g.heard_ms);
  const e = document.getElementById("fresh");
  if (!last) { e.textContent = t("updated") + t("colon") + t("never"); e.classList.add("old"); return; }
  const age = now - last;
  e.textContent = t("updated") + t("colon") + (LANG === "en" ? span(age) + " " + t("ago") : span(age) + t("ago"));
  e.classList.toggle("old", age > 60000);
}

// Whether anything on the wall overflows its box (what the browser test
// checks too): text clipped in a tile, a panel taller than its cell.
function overflowing() {
  const wall = document.querySelector(".wall");
  if (wall.scrollHeight > wall.clientHeight + 1 || wall.scrollWidth > wall.clientWidth + 1) return true;
  for (const e of wall.querySelectorAll(".top > *, .banner, .cls, .cls *, .tile *, .tk, .tk *, .side, #tickets")) {
    if (e.clientWidth === 0 && e.clientHeight === 0) continue;
    if (e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1) return true;
  }
  return false;
}

// Type as large as the screen allows: start at the viewport's size and
// shrink until nothing overflows.
function fit() {
  const root = document.documentElement;
  if (window.innerWidth < 700) { root.style.setProperty("--k", "1"); return; }
  let k = 1;
  root.style.setProperty("--k", "1");
  for (let i = 0; i < 14 && overflowing(); i++) {
    k *= 0.93;
    root.style.setProperty("--k", k.toFixed(3));
  }
}

// The alarm tone: a short two-note beep every 3 s while an alarm nobody
// acknowledged is on the wall, once a person enabled it with a click
// (browsers allow sound only after one). WebAudio, no files.
const TONE = { on: false, wanted: false, ctx: null, last: 0 };
function beep() {
  if (!TONE.ctx) return;
  const c = TONE.ctx;
  for (const [i, f] of [[0, 880], [1, 660]]) {
    const o = c.createOscillator(), g = c.createGain();
    o.type = "square";
    o.frequency.value = f;
    g.gain.value = 0.08;
    o.connect(g).connect(c.destination);
    const at = c.currentTime + i * 0.25;
    o.start(at);
    o.stop(at + 0.2);
  }
}
function toneTick() {
  if (TONE.on && TONE.wanted && Date.now() - TONE.last >= 3000) { TONE.last = Date.now(); beep(); }
}
document.getElementById("tone").addEventListener("click", () => {
  TONE.on = !TONE.on;
  if (TONE.on && !TONE.ctx && (window.AudioContext || window.webkitAudioContext)) TONE.ctx = new (window.AudioContext || window.webkitAudioContext)();
  if (TONE.ctx && TONE.ctx.state === "suspended") TONE.ctx.resume();
  render();
});

function tick() {
  document.getElementById("clock").textContent = clockText(serverNow());
  toneTick();
  const sites = shownSites();
  if (sites.length > 1) {
    const every = ((SNAP.ui && SNAP.ui.rotate_every_s) || 20) * 1000;
    if (Date.now() - lastRotate >= every) {
      siteIndex = (siteIndex + 1) % sites.length;
      lastRotate = Date.now();
      render();
      return;
    }
  }
  if (sites[siteIndex]) { renderFresh(sites[siteIndex]); renderTickets(sites[siteIndex]); if (overflowing()) fit(); }
}

function connect() {
  const es = new EventSource("/events" + (ONLY_SITE ? "?site=" + encodeURIComponent(ONLY_SITE) : ""));
  es.addEventListener("snapshot", (e) => {
    SNAP = JSON.parse(e.data);
    if (num(SNAP.now)) SKEW = SNAP.now - Date.now();
    if (SNAP.ui) setDefaultLang(SNAP.ui.language);
    connected = true;
    window.__lastSnapshotAt = Date.now();
    render();
  });
  es.onerror = () => { connected = false; render(); };
}

document.getElementById("lang").addEventListener("click", () => { toggleLang(); render(); });
window.addEventListener("resize", () => render());
setInterval(tick, 1000);
render();
tick();
connect();
