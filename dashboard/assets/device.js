// Device page: current values, state, availability, its tickets.
"use strict";

const parts = location.pathname.split("/").map(decodeURIComponent); // ["", "devices", site, id]
const SITE = parts[2], ID = parts[3];
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
  const r = await api("/api/sites/" + encodeURIComponent(SITE) + "/devices/" + encodeURIComponent(ID));
  if (r.ok) { DEV = r.body; render(); }
  else document.getElementById("body").textContent = (r.body && r.body.error) || ("HTTP " + r.status);
}
document.getElementById("lang").onclick = () => { toggleLang(); render(); };
render();
load();
setInterval(load, 5000);
