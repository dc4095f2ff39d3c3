// Shared by every page: language, labels, formatting, and the one way the
// pages put data into the document (el, fill: elements and text nodes,
// never markup). No external code.
"use strict";

const I18N = {
  "zh-CN": {
    title: "设备运行监控", lang: "English", updated: "最后更新", ago: "前", never: "无数据",
    offline: "网关离线", disconnected: "与服务器的连接中断，正在重连…", broker_down: "服务器与 MQTT 代理的连接中断，数据可能过时",
    tickets: "未关闭工单", none: "暂无未关闭工单", more: "另有 {n} 张",
    age: "已开", due: "剩余", overdue: "超时", ackby: "已确认", notack: "未确认",
    month: GLOSSARY.figures.availability.zh, target: GLOSSARY.figures.target.zh, intact: GLOSSARY.figures.intact_rate.zh, now: "现", legend_note: "本月至今",
    alarm: "硬报警", since: "起",
    up: "正常", down: "故障", maintenance: "维护", unknown: "未知", stale: "无数据",
    critical: "紧急", ordinary: "一般",
    open: "待处理", acknowledged: "已确认", resolved: "已解决", closed: "已关闭",
    login: "登录", logout: "退出", user: "用户名", password: "密码",
    ack: "确认", resolve: "解决", note: "备注", send: "发送", all: "全部", only_open: "未关闭",
    wall: "墙面", ticket_list: "工单", history: "处理记录", device: "设备", state: "状态",
    points: "当前数值", reports: "月报", sending: "发送中…", done: "网关已确认",
    site: "站点", sites: "站点", gateways: "网关", devices: "台设备", reason: "原因", location: "位置",
    availability: GLOSSARY.figures.availability.zh, rolling: GLOSSARY.figures.rolling_availability.zh, value: "数值", quality: "质量",
    s: "秒", m: "分", h: "小时", d: "天",
    min_long: "分钟", cleared_unack: "已恢复未确认", active_alarm: "报警中",
    left_month: "本月还可停机 {n}", missed_month: "本月停机已超出 {n}，目标无法达成", no_budget: "本月暂无数据",
    tone_off: "开启提示音", tone_on: "提示音已开",
    comms: "通讯中断", startup: "启动中", in_maintenance: "维护中",
    gateways_online: "{n} 个网关", gateways_online_1: "1 个网关", gateways_offline: "{n} 个网关离线", colon: "：",
    due_in: "处理时限 剩余 {d}", over_by: "处理时限 已超时 {d}",
    below_target: "{what} {a} 低于{target} {t}", on: "合闸", dry: "无漏水", leak: "漏水", fire: "火警", fault: "故障", normal: "正常", floor: "{n} 层",
    ticket_alarm: "{point}", ticket_other: "设备故障", values_at: "数值时间",
  },
  en: {
    title: "Equipment monitoring", lang: "中文", updated: "Last update", ago: "ago", never: "no data",
    offline: "gateway offline", disconnected: "Connection to the server lost, reconnecting…", broker_down: "The server lost the MQTT broker; values may be old",
    tickets: "Open tickets", none: "No open tickets", more: "{n} more",
    age: "open", due: "due in", overdue: "overdue", ackby: "ack", notack: "not acknowledged",
    month: GLOSSARY.figures.availability.en, target: GLOSSARY.figures.target.en, intact: GLOSSARY.figures.intact_rate.en, now: "now", legend_note: "month to date",
    alarm: "HARD ALARM", since: "since",
    up: "Up", down: "Down", maintenance: "Maint.", unknown: "Unknown", stale: "Stale",
    critical: "critical", ordinary: "ordinary",
    open: "open", acknowledged: "acknowledged", resolved: "resolved", closed: "closed",
    login: "Log in", logout: "Log out", user: "User", password: "Password",
    ack: "Acknowledge", resolve: "Resolve", note: "Note", send: "Send", all: "All", only_open: "Not closed",
    wall: "Wall", ticket_list: "Tickets", history: "History", device: "Device", state: "State",
    points: "Current values", reports: "Reports", sending: "Sending…", done: "Confirmed by the gateway",
    site: "Site", sites: "Sites", gateways: "gateways", devices: "devices", reason: "Reason", location: "Location",
    availability: GLOSSARY.figures.availability.en, rolling: GLOSSARY.figures.rolling_availability.en, value: "Value", quality: "Quality",
    s: "s", m: "min", h: "h", d: "d",
    min_long: "min", cleared_unack: "Cleared, not acknowledged", active_alarm: "active",
    left_month: "{n} of downtime left this month", missed_month: "Over by {n}: this month's target is missed", no_budget: "No data this month",
    tone_off: "Enable sound", tone_on: "Sound on",
    comms: "No communication", startup: "Starting", in_maintenance: "In maintenance",
    gateways_online: "{n} gateways", gateways_online_1: "1 gateway", gateways_offline: "{n} gateways offline", colon: ": ",
    due_in: "Deadline in {d}", over_by: "Overdue by {d}",
    below_target: "{what} {a} below {target} {t}", on: "closed", dry: "dry", leak: "LEAK", fire: "FIRE", fault: "FAULT", normal: "normal", floor: "floor {n}",
    ticket_alarm: "{point}", ticket_other: "Device fault", values_at: "Values of",
  },
};

// Display order and names of the classes: the glossary's (glossary.js,
// generated from gateway_core::glossary, loaded before this file), the same
// names as the alerts and the monthly report.
const CLASSES = GLOSSARY.classes.map((c) => [c.key, c.zh, c.en]);

let LANG = localStorage.getItem("bms-lang") || document.documentElement.dataset.lang || "zh-CN";

function setDefaultLang(l) {
  if (!localStorage.getItem("bms-lang") && I18N[l]) LANG = l;
}
function toggleLang() {
  LANG = LANG === "en" ? "zh-CN" : "en";
  localStorage.setItem("bms-lang", LANG);
  document.documentElement.lang = LANG;
}
// ?lang=en|zh-CN in the address wins (screenshots, kiosks).
(function () {
  const q = new URLSearchParams(location.search).get("lang");
  if (q && I18N[q]) { LANG = q; localStorage.setItem("bms-lang", q); }
  document.documentElement.lang = LANG;
})();

function own(o, k) { return o != null && Object.prototype.hasOwnProperty.call(o, k); }
function t(k, vars) {
  k = String(k);
  let s = own(I18N[LANG], k) ? I18N[LANG][k] : own(I18N.en, k) ? I18N.en[k] : k;
  if (vars) for (const [a, b] of Object.entries(vars)) s = s.replace("{" + a + "}", String(b));
  return s;
}
function className(c) {
  const row = CLASSES.find((r) => r[0] === c);
  if (!row) return str(c);
  return LANG === "en" ? row[2] : row[1];
}
function devName(d) {
  const n = LANG === "en" ? d.name_en || d.name_zh : d.name_zh || d.name_en;
  return str(n || d.id || d.device);
}
// The tile name: the snapshot's short name (what tells the class's
// devices apart), else the full one.
function shortName(d) {
  const n = LANG === "en" ? d.short_en : d.short_zh;
  return str(n) || devName(d);
}
// `[zh, en]` (or {zh, en}) in the page's language, "" for anything else.
function pickLabel(pair, lang) {
  const en = (lang || LANG) === "en";
  if (Array.isArray(pair) && pair.length === 2) return str(en ? pair[1] || pair[0] : pair[0] || pair[1]);
  if (pair && typeof pair === "object") return str(en ? pair.en || pair.zh : pair.zh || pair.en);
  return "";
}
// `outlet_pressure` → `Outlet pressure`: the last resort without a label.
function humanise(id) {
  // Only identifiers are made readable; any other text is shown as it came.
  if (!/^[A-Za-z0-9_.:-]*$/.test(str(id))) return str(id);
  const s = str(id).replace(/_/g, " ").trim();
  return s ? s[0].toUpperCase() + s.slice(1) : "";
}
// A point's label on a device (the state's `labels`).
function pointLabel(d, name) {
  const l = pickLabel(obj(obj(obj(d).labels).points)[name]);
  return l || humanise(name);
}
// Why a device is down, in words: the rule's label, not `rule:fault`.
function reasonText(d, lang) {
  const r = str(obj(d).reason);
  const T = (k) => tl(lang, k);
  if (!r) return "";
  if (r === "comms") return T("comms");
  if (r === "startup") return T("startup");
  if (r.startsWith("maintenance")) return T("in_maintenance");
  if (r.startsWith("rule:")) {
    const name = r.slice(5);
    return pickLabel(d.reason_label, lang) || pickLabel(obj(obj(d.labels).rules)[name], lang) || humanise(name);
  }
  return humanise(r);
}
// A key in a given language (t() is the page's).
function tl(lang, k, vars) {
  if (!lang || lang === LANG) return t(k, vars);
  const was = LANG;
  LANG = lang === "en" ? "en" : "zh-CN";
  try { return t(k, vars); } finally { LANG = was; }
}
// A ticket's title in `lang` ("en" or "zh-CN"), written from its
// structured `facts` (docs/mqtt.md, "Ticket facts"): the device, then what
// is wrong — the alarm point's label, or the rolling availability below
// its target with the reason's label. Falls back to the old Chinese
// `summary` only for tickets without facts on a Chinese page.
function ticketTitle(tk, lang) {
  lang = lang || LANG;
  const en = lang === "en";
  const f = obj(obj(tk).facts);
  const dev = str(en ? f.device_en || f.device_zh : f.device_zh || f.device_en) || str(tk.device);
  const kind = str(tk.kind);
  let what;
  if (kind.startsWith("alarm:")) {
    const p = kind.slice(6);
    // Without the point's label (an older gateway, a device not heard of):
    // the gateway's own Chinese summary on a Chinese page.
    what = str(en ? f.point_en || f.point_zh : f.point_zh || f.point_en) || (en ? "" : str(tk.summary)) || humanise(p);
  } else if (kind === "availability") {
    const pm = (x) => num(x) ? (x / 10).toFixed(x % 10 ? 1 : 0) + "%" : "—";
    const g = (k) => GLOSSARY.figures[k][en ? "en" : "zh"];
    if (num(f.availability_permille)) {
      what = tl(lang, "below_target", { what: g("rolling_availability"), a: pm(f.availability_permille), target: g("target"), t: pm(f.target_permille) });
    } else {
      what = en ? g("rolling_availability") + " below " + g("target") : str(tk.summary);
    }
    const r = str(f.reason);
    if (r) {
      const why = r.startsWith("rule:") ? str(en ? f.rule_en || f.rule_zh : f.rule_zh || f.rule_en) || humanise(r.slice(5)) : reasonText({ reason: r }, lang);
      what += en ? " (" + why + ")" : "（" + why + "）";
    }
  } else {
    what = en ? tl(lang, "ticket_other") : str(tk.summary) || tl(lang, "ticket_other");
  }
  return dev + " · " + what;
}
// Where a ticket's device is, in `lang` ("" when not known).
function ticketLocation(tk, lang) {
  const f = obj(obj(tk).facts);
  return str((lang || LANG) === "en" ? f.location_en || f.location_zh : f.location_zh || f.location_en);
}
// Why a point's value is not good, in words (telemetry `quality`).
const QUALITY = {
  nan: ["不是数值", "not a number"], infinite: ["数值无穷大", "infinite"], out_of_range: ["超出量程", "out of range"],
  invalid_text: ["文本无效", "invalid text"], not_read: ["未读取", "not read"],
};
function qualityText(q) {
  const s = str(q);
  if (own(QUALITY, s)) return pickLabel(QUALITY[s]);
  const m = /^exception_(\d+)$/.exec(s);
  if (m) return (LANG === "en" ? "device exception " : "设备异常码 ") + m[1];
  return humanise(s);
}
// Where a device is, in the page's language.
function devLocation(d) {
  return str(LANG === "en" ? d.location_en || d.location : d.location || d.location_en);
}

// A value from the server as text ("" for none); never markup.
function str(v) { return v == null ? "" : String(v); }
// Whether v is a number that can be formatted.
function num(v) { return typeof v === "number" && isFinite(v); }

// An element: attrs sets attributes (class, style as an object of CSS
// properties set through CSSOM, href only to a path of this site, data-*,
// …; never event handlers), children are nodes or text (as text nodes).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (/^on/i.test(k)) throw new Error("el: no event handler attributes");
    if (k === "class") e.className = str(v);
    else if (k === "style") for (const [p, x] of Object.entries(v)) e.style.setProperty(p, str(x));
    else if (k === "href") e.setAttribute("href", localHref(v));
    else e.setAttribute(k, v === true ? "" : str(v));
  }
  append(e, children);
  return e;
}
function append(parent, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    parent.append(c instanceof Node ? c : document.createTextNode(str(c)));
  }
  return parent;
}
// Replaces the content of parent (an element or its id) with children.
function fill(parent, ...children) {
  const p = typeof parent === "string" ? document.getElementById(parent) : parent;
  p.replaceChildren();
  return append(p, children);
}
// A link target: only a path on this site ("/…", not "//…") or a "#…"
// fragment; anything else (javascript:, data:, other hosts) becomes "#".
function localHref(u) {
  const s = str(u);
  return /^\/(?![\/\\])/.test(s) || s.startsWith("#") ? s : "#";
}

function pct(x, digits) {
  if (!num(x)) return "—";
  return (x * 100).toFixed(digits == null ? 1 : digits) + "%";
}
// A duration in ms as "3 min", "2 h 5 min", "4 d".
function span(ms) {
  if (!num(ms)) return "—";
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return s + " " + t("s");
  const m = Math.floor(s / 60);
  if (m < 60) return m + " " + t("m");
  const h = Math.floor(m / 60);
  if (h < 48) return h + " " + t("h") + (m % 60 ? " " + (m % 60) + " " + t("m") : "");
  return Math.floor(h / 24) + " " + t("d");
}
function clockText(ms) {
  if (!num(ms)) return "--:--:--";
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, "0");
  return p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
}
function dateTimeText(ms) {
  if (!num(ms)) return "—";
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, "0");
  return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " + clockText(ms);
}
// Offset between the server's clock and ours (server "now" - local now).
let SKEW = 0;
function serverNow() { return Date.now() + SKEW; }

// The key reading shown on a tile: the most telling point of its class.
const KEY_POINTS = {
  pump: ["outlet_pressure", "frequency"],
  distribution: ["total_power", "power_l1"],
  fire_alarm: ["fire_alarm", "fault"],
  fire_water: ["pressure"],
  lighting: ["lux"],
  hvac: ["room_temperature"],
  lightning_protection: ["earth_resistance", "spd_ok"],
  elevator: ["floor"],
  plumbing: ["leak"],
};
function fmtValue(v, unit) {
  if (v === true) return LANG === "en" ? "yes" : "是";
  if (v === false) return LANG === "en" ? "no" : "否";
  if (v == null) return "—";
  const u = unit ? " " + str(unit) : "";
  if (typeof v === "number") {
    if (!isFinite(v)) return "—";
    const a = Math.abs(v);
    const s = a >= 1000 ? v.toFixed(0) : a >= 100 ? v.toFixed(1) : Number.isInteger(v) ? String(v) : v.toFixed(2);
    return s + u;
  }
  if (typeof v === "object") return "—";
  return str(v) + u;
}
function keyReading(d) {
  const pts = obj(d.points);
  const units = obj(d.units);
  if (d.class === "plumbing" && "leak" in pts) return pts.leak ? t("leak") : t("dry");
  if (d.class === "fire_alarm" && ("fire_alarm" in pts || "fault" in pts)) {
    if (pts.fire_alarm) return t("fire");
    if (pts.fault) return t("fault");
    return t("normal");
  }
  if (d.class === "distribution" && !("total_power" in pts)) {
    const br = Object.keys(pts).filter((k) => /^breaker_\d+$/.test(k));
    if (br.length) {
      const on = br.filter((k) => pts[k] === true).length;
      return on + "/" + br.length + " " + t("on");
    }
  }
  if (d.class === "elevator" && "floor" in pts) return t("floor", { n: fmtValue(pts.floor) });
  for (const k of KEY_POINTS[d.class] || []) if (k in pts) return fmtValue(pts[k], units[k]);
  for (const [k, v] of Object.entries(pts)) if (typeof v === "number" && units[k]) return fmtValue(v, units[k]);
  return "";
}

// A JSON object from the server, or an empty one for anything else.
function obj(v) { return v && typeof v === "object" && !Array.isArray(v) ? v : {}; }
// A JSON list from the server, or an empty one for anything else.
function list(v) { return Array.isArray(v) ? v : []; }

async function api(path, opts) {
  const r = await fetch(path, Object.assign({ credentials: "same-origin" }, opts || {}));
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  return { status: r.status, ok: r.ok, body };
}
