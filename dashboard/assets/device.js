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
// RANGE null: the server picks the shortest range that has data (`auto`).
let RANGE = null;
let HIST = null;
const PLOTS = [];
const RANGES = { "1h": ["1 h", "1小时"], "6h": ["6 h", "6小时"], "24h": ["24 h", "24小时"], "7d": ["7 d", "7天"], "30d": ["30 d", "30天"] };
const AXIS_FONT = "13px sans-serif";
const pad2 = (n) => String(n).padStart(2, "0");
// Axis and legend texts in the page's language, 24-hour clock for both.
function hm(d) { return pad2(d.getHours()) + ":" + pad2(d.getMinutes()); }
function dayText(d) {
  return LANG === "en"
    ? ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][d.getMonth()] + " " + d.getDate()
    : (d.getMonth() + 1) + "月" + d.getDate() + "日";
}
// The x ticks (seconds): clock times, the date under the first tick of
// each day; only dates when ticks are a day or more apart.
// The texts last drawn on the axes (the canvas holds them as pixels only),
// for the browser test.
const AXIS_TEXTS = { x: [], y: [] };
window.__axisTexts = AXIS_TEXTS;
function timeTicks(u, splits, axisIdx, space, incr) {
  let lastDay = null;
  return AXIS_TEXTS.x = splits.map((s) => {
    const d = new Date(s * 1000);
    if (incr >= 86400) return dayText(d);
    const day = d.toDateString();
    const first = day !== lastDay;
    lastDay = day;
    return first ? hm(d) + "\n" + dayText(d) : hm(d);
  });
}
// Numbers with the decimals the tick step needs, never grouped ("0,000").
function decimalsFor(step) {
  if (!(step > 0) || !isFinite(step)) return 0;
  for (let d = 0; d < 6; d++) {
    const x = step * Math.pow(10, d);
    if (Math.abs(x - Math.round(x)) < 1e-6 * Math.max(1, x)) return d;
  }
  return 6;
}
function numTicks(u, splits, axisIdx, space, incr) {
  const dp = decimalsFor(incr);
  return AXIS_TEXTS.y = splits.map((v) => (v == null ? "" : v.toFixed(dp)));
}
const MEASURE = document.createElement("canvas").getContext("2d");
// The y axis as wide as its longest label, so none is cut.
function axisWidth(u, values) {
  if (!values || !values.length) return 40;
  MEASURE.font = AXIS_FONT;
  let w = 0;
  for (const v of values) w = Math.max(w, MEASURE.measureText(String(v)).width);
  return Math.ceil(w) + 22; // tick (8) + gap (6) + margin
}
function legendNum(u, v) { return v == null ? "—" : fmtValue(v, ""); }

function renderHistory() {
  document.getElementById("h-trend").textContent = LANG === "en" ? "Trends" : "趋势";
  for (const b of document.querySelectorAll("#ranges button")) {
    const names = RANGES[b.dataset.range];
    if (names) b.textContent = LANG === "en" ? names[0] : names[1];
    const on = b.dataset.range === RANGE;
    b.classList.toggle("on", on);
    b.setAttribute("aria-pressed", on ? "true" : "false");
    b.style.borderColor = on ? "#5ab0ff" : "";
  }
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
    const axis = { stroke: "#9fb0c0", font: AXIS_FONT, grid: { stroke: "#2a3440" }, ticks: { stroke: "#2a3440" } };
    // uPlot draws on a canvas and writes labels as text.
    PLOTS.push(new uPlot({
      width, height: 220,
      scales: { x: { time: true, min: HIST.from / 1000, max: HIST.to / 1000 } },
      axes: [Object.assign({}, axis, { values: timeTicks, size: 50 }), Object.assign({}, axis, { values: numTicks, size: axisWidth })],
      series: [{ label: LANG === "en" ? "Time" : "时间", value: (u, v) => (v == null ? "—" : dayText(new Date(v * 1000)) + " " + hm(new Date(v * 1000))) },
        { label: LANG === "en" ? "mean" : "平均", stroke: "#5ab0ff", width: 2, value: legendNum },
        { label: LANG === "en" ? "min" : "最小", stroke: "#3f6f99", width: 1, value: legendNum },
        { label: LANG === "en" ? "max" : "最大", stroke: "#3f6f99", width: 1, value: legendNum }],
    }, data, div));
  }
}

async function loadHistory() {
  const r = await api(DEVICE_API + "/history?range=" + encodeURIComponent(RANGE || "auto"));
  HIST = r.ok ? r.body : null;
  if (HIST && !RANGE && RANGES[HIST.range]) RANGE = HIST.range;
  renderHistory();
}

for (const b of document.querySelectorAll("#ranges button")) b.onclick = () => { RANGE = b.dataset.range; loadHistory(); };
document.getElementById("lang").onclick = () => { toggleLang(); render(); renderHistory(); };
render();
load().then(loadHistory);
setInterval(load, 5000);
setInterval(loadHistory, 60000);
