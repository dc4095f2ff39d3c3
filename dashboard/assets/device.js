// Device page: current values, state, availability, its tickets.
"use strict";

const parts = location.pathname.split("/").map(decodeURIComponent); // ["", "devices", site, gateway, id]
const SITE = parts[2], GATEWAY = parts[3], ID = parts[4];
const DEVICE_API = "/api/sites/" + encodeURIComponent(SITE) + "/gateways/" + encodeURIComponent(GATEWAY) + "/devices/" + encodeURIComponent(ID);
let DEV = null;

// The ticket list entry of one of this device's tickets.
function ticketHref(d, tk) {
  return "/tickets#" + encodeURIComponent(SITE + "/" + str(d.gateway) + "/" + str(tk.id));
}

function render() {
  document.getElementById("lang").textContent = t("lang");
  document.getElementById("nav-wall").textContent = t("wall");
  document.getElementById("nav-tickets").textContent = t("ticket_list");
  if (!DEV) return;
  const d = DEV;
  document.getElementById("h1").textContent = devName(d);
  document.getElementById("h1").title = SITE + "/" + str(d.gateway) + "/" + str(d.id);
  document.title = devName(d) + " · BMS";
  const a = obj(d.availability);
  const shown = ["up", "down", "maintenance", "unknown", "stale"].includes(d.shown) ? d.shown : "unknown";
  const units = obj(d.units), quality = obj(d.quality);
  fill("body",
    el("p", null, el("span", { class: "badge " + shown }, t(shown)), " " + className(d.class) + " · " + t("location") + t("colon") + (devLocation(d) || "—")),
    el("p", null, t("state") + t("colon") + t(d.state || "unknown") + " " + t("since") + " " + dateTimeText(d.since) + (d.reason ? " · " + t("reason") + t("colon") + reasonText(d) : "")),
    el("p", null, t("month") + t("colon"), el("b", null, pct(a.month, 2)), " · " + t("rolling") + t("colon") + pct(a.rolling, 2) + " · " + t("target") + " " + (num(a.threshold) ? a.threshold + "%" : "—")),
    el("h2", null, t("points")),
    el("table", null, el("tbody", null, Object.entries(obj(d.points)).map(([k, v]) =>
      el("tr", null, el("td", { title: k }, pointLabel(d, k)), el("td", null, fmtValue(v, units[k])), el("td", null, own(quality, k) ? qualityText(quality[k]) : ""))))),
    el("p", null, t("values_at") + " " + dateTimeText(d.telemetry_ts)),
    el("h2", null, t("ticket_list")),
    el("table", null, el("tbody", null, list(d.tickets).map((tk) =>
      el("tr", null, el("td", null, el("a", { href: ticketHref(d, tk) }, "#" + str(tk.id))), el("td", null, t(tk.state)), el("td", null, ticketTitle(tk)), el("td", null, dateTimeText(tk.opened_ms)))))));
}

async function load() {
  const r = await api(DEVICE_API);
  if (r.ok) { DEV = r.body; render(); }
  else document.getElementById("body").textContent = str(obj(r.body).error) || ("HTTP " + r.status);
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
  charts.replaceChildren();
  band.replaceChildren();
  if (!HIST || !num(HIST.from) || !num(HIST.to) || HIST.to <= HIST.from) return;
  const span = HIST.to - HIST.from;
  const st = list(HIST.states).filter((s) => Array.isArray(s) && num(s[0]));
  fill(band, st.map((s, i) => {
    const a = Math.max(s[0], HIST.from), b = i + 1 < st.length ? st[i + 1][0] : HIST.to;
    const state = ["up", "down", "maintenance", "unknown"].includes(s[1]) ? s[1] : "unknown";
    return el("span", { class: state, title: t(state) + " " + dateTimeText(s[0]), style: { left: ((a - HIST.from) / span * 100) + "%", width: ((b - a) / span * 100) + "%" } });
  }));
  const units = obj(DEV && DEV.units);
  const points = obj(HIST.points);
  const names = Object.keys(points).filter((p) => own(units, p) && units[p] && Array.isArray(points[p])).slice(0, 8);
  if (!names.length) { charts.textContent = LANG === "en" ? "No history yet." : "暂无历史数据。"; return; }
  const width = Math.min(1340, charts.clientWidth || document.querySelector(".page").clientWidth - 48);
  for (const p of names) {
    const rows = points[p].filter((r) => Array.isArray(r) && num(r[0]));
    const div = el("div", { class: "chart" }, el("h3", { title: p }, pointLabel(DEV, p) + " (" + str(units[p]) + ")"));
    charts.appendChild(div);
    const val = (x) => (num(x) ? x : null);
    const data = [rows.map((r) => r[0] / 1000), rows.map((r) => val(r[1])), rows.map((r) => val(r[2])), rows.map((r) => val(r[3]))];
    const axis = { stroke: "#9fb0c0", grid: { stroke: "#2a3440" }, ticks: { stroke: "#2a3440" } };
    // uPlot draws on a canvas and writes labels as text.
    PLOTS.push(new uPlot({
      width, height: 200,
      scales: { x: { time: true, min: HIST.from / 1000, max: HIST.to / 1000 } },
      axes: [axis, axis],
      series: [{ label: LANG === "en" ? "Time" : "时间", value: (u, v) => (v == null ? "—" : dateTimeText(v * 1000)) },
        { label: LANG === "en" ? "mean" : "平均", stroke: "#5ab0ff", width: 2 },
        { label: LANG === "en" ? "min" : "最小", stroke: "#3f6f99", width: 1 }, { label: LANG === "en" ? "max" : "最大", stroke: "#3f6f99", width: 1 }],
    }, data, div));
  }
}

async function loadHistory() {
  const r = await api(DEVICE_API + "/history?range=" + encodeURIComponent(RANGE));
  HIST = r.ok ? r.body : null;
  renderHistory();
}

for (const b of document.querySelectorAll("#ranges button")) b.onclick = () => { RANGE = b.dataset.range; loadHistory(); };
document.getElementById("lang").onclick = () => { toggleLang(); render(); renderHistory(); };
render();
load().then(loadHistory);
setInterval(load, 5000);
setInterval(loadHistory, 60000);
