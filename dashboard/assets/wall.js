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
  const all = (SNAP && SNAP.sites) || [];
  const only = (SNAP && SNAP.rotate_sites) || [];
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
  document.getElementById("site").textContent = site.id;
  const gws = site.gateways.map((g) => g.id + (g.status === "offline" ? " (" + t("offline") + ")" : "")).join(" · ");
  document.getElementById("gw").textContent = gws + " · " + site.devices.length + " " + t("devices");
  document.getElementById("dots").innerHTML = sites.length > 1 ? sites.map((s, i) => '<span class="' + (i === siteIndex ? "on" : "") + '"></span>').join("") : "";
  renderBanner(site);
  renderClasses(site);
  renderTickets(site);
  renderFresh(site);
}

function renderLegend() {
  document.getElementById("legend").innerHTML = ["up", "down", "maintenance", "unknown", "stale"].map((s) => {
    const col = { up: "var(--up)", down: "var(--down)", maintenance: "var(--maint)", unknown: "var(--unknown)", stale: "var(--stale)" }[s];
    return '<span><i style="background:' + col + '"></i>' + esc(t(s)) + "</span>";
  }).join("") + (I18N[LANG].legend_note ? "<span>" + esc(I18N[LANG].legend_note) + "</span>" : "");
}

function renderBanner(site) {
  const b = document.getElementById("banner");
  const alarms = site.alarms || [];
  b.classList.toggle("on", alarms.length > 0);
  b.innerHTML = alarms.map((a) => "⚠ " + esc(t("alarm")) + "：" + esc(LANG === "en" ? a.name_en || a.device : a.name_zh || a.device) + " · " + esc(a.point) + " · " + esc(t("since")) + " " + clockText(a.since)).join("<br>");
}

function renderClasses(site) {
  const byClass = {};
  for (const d of site.devices) (byClass[d.class] = byClass[d.class] || []).push(d);
  const order = CLASSES.map((c) => c[0]).filter((c) => byClass[c]).concat(Object.keys(byClass).filter((c) => !CLASSES.some((r) => r[0] === c)));
  let html = "";
  for (const c of order) {
    const f = (site.classes || {})[c] || {};
    const tgt = f.target != null ? f.target + "%" : "—";
    // Columns of a 9-column grid: one per tile, at least two (the figures), at most all.
    const n = byClass[c].length;
    const span = Math.min(9, Math.max(2, n));
    html += '<section class="cls" data-class="' + esc(c) + '" style="grid-column: span ' + span + '"><h2>' + esc(className(c)) + "</h2>";
    html += '<div class="fig">' + esc(t("month")) + ' <b class="' + (f.below ? "below" : "") + '">' + pct(f.month, 2) + "</b> " + (LANG === "en" ? "(" + tgt + ")" : "/ " + esc(t("target")) + " " + tgt) + "<br>" + esc(t("intact")) + " <b>" + pct(f.intact_month, 1) + "</b> · " + esc(t("now")) + " <b>" + pct(f.intact_now, 0) + "</b></div>";
    html += '<div class="tiles" style="--n: ' + Math.min(n, span) + '">';
    for (const d of byClass[c]) {
      const shown = d.shown || "unknown";
      const alarm = d.alarms && d.alarms.length ? " alarm" : "";
      const reason = shown === "down" && d.reason ? " · " + String(d.reason).replace(/^rule:/, "") : "";
      html += '<a class="tile ' + esc(shown) + alarm + '" data-device="' + esc(d.id) + '" data-state="' + esc(shown) + '" href="/devices/' + encodeURIComponent(site.id) + "/" + encodeURIComponent(d.gateway) + "/" + encodeURIComponent(d.id) + '">' +
        '<div class="n">' + esc(devName(d)) + "</div>" +
        '<div class="v">' + esc(keyReading(d)) + "</div>" +
        '<div class="s">' + esc(t(shown)) + esc(reason) + "</div></a>";
    }
    html += "</div></section>";
  }
  const el = document.getElementById("classes");
  el.innerHTML = html;
  // A big site must still fit the screen (the wall never scrolls): shrink to fit.
  el.style.zoom = 1;
  if (el.scrollHeight > el.clientHeight + 1) el.style.zoom = Math.max(0.4, el.clientHeight / el.scrollHeight).toFixed(3);
}

function renderTickets(site) {
  const now = serverNow();
  const tks = site.tickets || [];
  const max = 7;
  let html = "";
  if (!tks.length) html = '<div class="empty">' + esc(t("none")) + "</div>";
  for (const tk of tks.slice(0, max)) {
    const dev = site.devices.find((d) => d.id === tk.device);
    const left = tk.deadline_ms - now;
    const due = left >= 0 ? t("due") + " " + span(left) : t("overdue") + " " + span(-left);
    const ack = tk.acknowledged ? t("ackby") + "：" + tk.acknowledged.by : t("notack");
    html += '<div class="tk ' + esc(tk.severity) + '" data-ticket="' + esc(tk.id) + '" data-state="' + esc(tk.state) + '">' +
      '<div class="h"><span>#' + esc(tk.id) + " " + esc(dev ? devName(dev) : tk.device) + "</span><span>" + esc(t(tk.severity)) + "</span></div>" +
      '<div class="sum">' + esc(tk.summary) + "</div>" +
      "<div>" + esc(t("age")) + " " + span(now - tk.opened_ms) + ' · <span class="due ' + (left < 0 ? "over" : "") + '">' + esc(due) + "</span></div>" +
      "<div>" + esc(t(tk.state)) + " · " + esc(ack) + "</div></div>";
  }
  if (tks.length > max) html += '<div class="empty">' + esc(t("more", { n: tks.length - max })) + "</div>";
  document.getElementById("tickets").innerHTML = html;
}

function renderFresh(site) {
  const now = serverNow();
  let last = 0;
  for (const g of site.gateways) last = Math.max(last, g.heard_ms || 0);
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
    SKEW = SNAP.now - Date.now();
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
