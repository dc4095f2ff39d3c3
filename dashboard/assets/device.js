// Device page: current values, state, availability, its tickets.
"use strict";

const parts = location.pathname.split("/").map(decodeURIComponent); // ["", "devices", site, gateway, id]
const SITE = parts[2], GATEWAY = parts[3], ID = parts[4];
const DEVICE_API = "/api/sites/" + encodeURIComponent(SITE) + "/gateways/" + encodeURIComponent(GATEWAY) + "/devices/" + encodeURIComponent(ID);
let DEV = null;

function render() {
  document.getElementById("lang").textContent = t("lang");
  document.getElementById("nav-wall").textContent = t("wall");
  document.getElementById("nav-tickets").textContent = t("ticket_list");
  if (!DEV) return;
  const d = DEV;
  document.getElementById("h1").textContent = devName(d) + " · " + d.id;
  document.title = devName(d) + " · BMS";
  const a = d.availability || {};
  let h = '<p><span class="badge ' + esc(d.shown) + '">' + esc(t(d.shown)) + "</span> " + esc(className(d.class)) + " · " + esc(t("location")) + "：" + esc(d.location || "—") +
    " · " + esc(SITE) + "/" + esc(d.gateway) + "</p>";
  h += "<p>" + esc(t("state")) + "：" + esc(t(d.state || "unknown")) + " " + esc(t("since")) + " " + dateTimeText(d.since) + (d.reason ? " · " + esc(t("reason")) + "：" + esc(d.reason) : "") + "</p>";
  h += "<p>" + esc(t("month")) + "：<b>" + pct(a.month, 2) + "</b> · " + esc(t("rolling")) + "：" + pct(a.rolling, 2) + " · " + esc(t("target")) + " " + (a.threshold != null ? a.threshold + "%" : "—") + "</p>";
  h += "<h2>" + esc(t("points")) + "</h2><table><tbody>";
  for (const [k, v] of Object.entries(d.points || {})) {
    h += "<tr><td>" + esc(k) + "</td><td>" + esc(fmtValue(v, (d.units || {})[k])) + "</td><td>" + esc((d.quality || {})[k] || "") + "</td></tr>";
  }
  h += "</tbody></table><p>" + (LANG === "en" ? "Values of " : "数值时间 ") + dateTimeText(d.telemetry_ts) + "</p>";
  h += "<h2>" + esc(t("ticket_list")) + "</h2><table><tbody>";
  for (const tk of d.tickets || []) {
    h += '<tr><td><a href="/tickets#' + esc(SITE + "/" + d.gateway + "/" + tk.id) + '">#' + esc(tk.id) + "</a></td><td>" + esc(t(tk.state)) + "</td><td>" + esc(tk.summary) + "</td><td>" + dateTimeText(tk.opened_ms) + "</td></tr>";
  }
  h += "</tbody></table>";
  document.getElementById("body").innerHTML = h;
}

async function load() {
  const r = await api(DEVICE_API);
  if (r.ok) { DEV = r.body; render(); }
  else document.getElementById("body").textContent = (r.body && r.body.error) || ("HTTP " + r.status);
}
// History: state band and one chart per numeric point with a unit (at most 8).
let RANGE = "24h";
let HIST = null;
const PLOTS = [];

function renderHistory() {
  document.getElementById("h-trend").textContent = LANG === "en" ? "Trends" : "趋势";
  for (const b of document.querySelectorAll("#ranges button")) b.classList.toggle("on", b.dataset.range === RANGE);
  const band = document.getElementById("band");
  const charts = document.getElementById("charts");
  while (PLOTS.length) PLOTS.pop().destroy();
  charts.innerHTML = "";
  band.innerHTML = "";
  if (!HIST) return;
  const span = HIST.to - HIST.from;
  const st = HIST.states || [];
  band.innerHTML = st.map((s, i) => {
    const a = Math.max(s[0], HIST.from), b = i + 1 < st.length ? st[i + 1][0] : HIST.to;
    return '<span class="' + esc(s[1]) + '" title="' + esc(t(s[1])) + " " + dateTimeText(s[0]) + '" style="left:' + ((a - HIST.from) / span * 100) + "%;width:" + ((b - a) / span * 100) + '%"></span>';
  }).join("");
  const units = (DEV && DEV.units) || {};
  const names = Object.keys(HIST.points || {}).filter((p) => units[p]).slice(0, 8);
  if (!names.length) { charts.textContent = LANG === "en" ? "No history yet." : "暂无历史数据。"; return; }
  const width = Math.min(1340, document.querySelector(".page").clientWidth - 20);
  for (const p of names) {
    const rows = HIST.points[p];
    const div = document.createElement("div");
    div.className = "chart";
    div.innerHTML = "<h3>" + esc(p) + " (" + esc(units[p]) + ")</h3>";
    charts.appendChild(div);
    const data = [rows.map((r) => r[0] / 1000), rows.map((r) => r[1]), rows.map((r) => r[2]), rows.map((r) => r[3])];
    const axis = { stroke: "#9fb0c0", grid: { stroke: "#2a3440" }, ticks: { stroke: "#2a3440" } };
    PLOTS.push(new uPlot({
      width, height: 200,
      scales: { x: { time: true, min: HIST.from / 1000, max: HIST.to / 1000 } },
      axes: [axis, axis],
      series: [{}, { label: LANG === "en" ? "mean" : "平均", stroke: "#5ab0ff", width: 2 },
        { label: "min", stroke: "#3f6f99", width: 1 }, { label: "max", stroke: "#3f6f99", width: 1 }],
    }, data, div));
  }
}

async function loadHistory() {
  const r = await api(DEVICE_API + "/history?range=" + RANGE);
  HIST = r.ok ? r.body : null;
  renderHistory();
}

for (const b of document.querySelectorAll("#ranges button")) b.onclick = () => { RANGE = b.dataset.range; loadHistory(); };
document.getElementById("lang").onclick = () => { toggleLang(); render(); renderHistory(); };
render();
load().then(loadHistory);
setInterval(load, 5000);
setInterval(loadHistory, 60000);
