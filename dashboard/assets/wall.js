// The wall page: live from /events (server-sent snapshots), rotates between sites.
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

function render() {
  document.getElementById("lang").textContent = t("lang");
  document.getElementById("nav-tickets").textContent = t("ticket_list");
  document.getElementById("nav-reports").textContent = t("reports");
  document.getElementById("nav-reports").href = "/reports?lang=" + (LANG === "en" ? "en" : "zh"); // issue 7
  document.getElementById("tk-title").textContent = t("tickets");
  document.title = t("title") + " · BMS";
  const conn = document.getElementById("conn");
  const brokerDown = connected && SNAP && SNAP.broker_connected === false;
  conn.textContent = brokerDown ? t("broker_down") : t("disconnected");
  conn.classList.toggle("on", !connected || brokerDown);
  renderLegend();
  if (!SNAP) return;
  const sites = shownSites();
  if (!sites.length) {
    document.getElementById("site").textContent = (ONLY_SITE ? ONLY_SITE + " · " : "") + t("never");
    return;
  }
  if (siteIndex >= sites.length) siteIndex = 0;
  const site = sites[siteIndex];
  document.getElementById("site").textContent = str(site.id);
  const gws = site.gateways.map((g) => str(g.id) + (g.status === "offline" ? " (" + t("offline") + ")" : "")).join(" · ");
  document.getElementById("gw").textContent = gws + " · " + site.devices.length + " " + t("devices");
  fill("dots", sites.length > 1 ? sites.map((s, i) => el("span", { class: i === siteIndex ? "on" : "" })) : []);
  renderBanner(site);
  renderClasses(site);
  renderTickets(site);
  renderFresh(site);
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

function renderBanner(site) {
  const b = document.getElementById("banner");
  const alarms = list(site.alarms);
  b.classList.toggle("on", alarms.length > 0);
  fill(b, alarms.map((a, i) => [i ? el("br") : null,
    "⚠ " + t("alarm") + "：" + str(LANG === "en" ? a.name_en || a.device : a.name_zh || a.device) + " · " + str(a.point) + " · " + t("since") + " " + clockText(a.since)]));
}

// The device page of a tile.
function deviceHref(site, d) {
  return "/devices/" + encodeURIComponent(str(site.id)) + "/" + encodeURIComponent(str(d.gateway)) + "/" + encodeURIComponent(str(d.id));
}

function renderClasses(site) {
  const byClass = {};
  for (const d of site.devices) {
    const c = str(d.class);
    (own(byClass, c) ? byClass[c] : (byClass[c] = [])).push(d);
  }
  const order = CLASSES.map((c) => c[0]).filter((c) => own(byClass, c)).concat(Object.keys(byClass).filter((c) => !CLASSES.some((r) => r[0] === c)));
  const sections = [];
  for (const c of order) {
    const f = obj(obj(site.classes)[c]);
    const tgt = num(f.target) ? f.target + "%" : "—";
    // Columns of a 9-column grid: one per tile, at least two (the figures), at most all.
    const n = byClass[c].length;
    const cols = Math.min(9, Math.max(2, n));
    const fig = el("div", { class: "fig" },
      t("month") + " ", el("b", { class: f.below === true ? "below" : "" }, pct(f.month, 2)), " ",
      LANG === "en" ? "(" + tgt + ")" : "/ " + t("target") + " " + tgt,
      el("br"),
      t("intact") + " ", el("b", null, pct(f.intact_month, 1)), " · " + t("now") + " ", el("b", null, pct(f.intact_now, 0)));
    const tiles = byClass[c].map((d) => {
      const shown = shownOf(d);
      const alarm = list(d.alarms).length ? " alarm" : "";
      const reason = shown === "down" && d.reason ? " · " + str(d.reason).replace(/^rule:/, "") : "";
      return el("a", { class: "tile " + shown + alarm, "data-device": d.id, "data-state": shown, href: deviceHref(site, d) },
        el("div", { class: "n" }, devName(d)),
        el("div", { class: "v" }, keyReading(d)),
        el("div", { class: "s" }, t(shown) + reason));
    });
    sections.push(el("section", { class: "cls", "data-class": c, style: { "grid-column": "span " + cols } },
      el("h2", null, className(c)), fig,
      el("div", { class: "tiles", style: { "--n": String(Math.min(n, cols)) } }, tiles)));
  }
  const box = fill("classes", sections);
  // A big site must still fit the screen (the wall never scrolls): shrink to fit.
  box.style.zoom = 1;
  if (box.scrollHeight > box.clientHeight + 1) box.style.zoom = Math.max(0.4, box.clientHeight / box.scrollHeight).toFixed(3);
}

// Ticket severities with a style of their own.
const SEVERITIES = ["critical", "ordinary"];

function renderTickets(site) {
  const now = serverNow();
  const tks = list(site.tickets);
  const max = 7;
  const out = [];
  if (!tks.length) out.push(el("div", { class: "empty" }, t("none")));
  for (const tk of tks.slice(0, max)) {
    const dev = site.devices.find((d) => d.id === tk.device);
    const left = num(tk.deadline_ms) ? tk.deadline_ms - now : NaN;
    const due = !num(left) ? "" : left >= 0 ? t("due") + " " + span(left) : t("overdue") + " " + span(-left);
    const ack = tk.acknowledged ? t("ackby") + "：" + str(obj(tk.acknowledged).by) : t("notack");
    const sev = SEVERITIES.includes(tk.severity) ? tk.severity : "";
    out.push(el("div", { class: "tk " + sev, "data-ticket": tk.id, "data-state": tk.state },
      el("div", { class: "h" }, el("span", null, "#" + str(tk.id) + " " + (dev ? devName(dev) : str(tk.device))), el("span", null, t(tk.severity))),
      el("div", { class: "sum" }, tk.summary),
      el("div", null, t("age") + " " + span(num(tk.opened_ms) ? now - tk.opened_ms : NaN) + " · ", el("span", { class: "due " + (left < 0 ? "over" : "") }, due)),
      el("div", null, t(tk.state) + " · " + ack)));
  }
  if (tks.length > max) out.push(el("div", { class: "empty" }, t("more", { n: tks.length - max })));
  fill("tickets", out);
}

function renderFresh(site) {
  const now = serverNow();
  let last = 0;
  for (const g of site.gateways) if (num(g.heard_ms)) last = Math.max(last, g.heard_ms);
  const el = document.getElementById("fresh");
  if (!last) { el.textContent = t("updated") + "：" + t("never"); el.classList.add("old"); return; }
  const age = now - last;
  el.textContent = t("updated") + "：" + (LANG === "en" ? span(age) + " " + t("ago") : span(age) + t("ago"));
  el.classList.toggle("old", age > 60000);
}

function tick() {
  document.getElementById("clock").textContent = clockText(serverNow());
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
  if (sites[siteIndex]) { renderFresh(sites[siteIndex]); renderTickets(sites[siteIndex]); }
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
setInterval(tick, 1000);
render();
tick();
connect();
