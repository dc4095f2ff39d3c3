// Shared by the ticket list (tickets.js) and the phone page of one ticket
// (ticket.js): the words of ticket steps and refusals in both languages,
// the order of urgency, and the actions a person may take. Loaded after
// common.js; its words are kept here, apart from common.js's I18N.
"use strict";

const TK_WORDS = {
  "zh-CN": {
    arrive: "到场", ack: "确认", resolve: "解决", close: "关闭",
    step_opened: "开单", step_acknowledged: "确认", step_arrived: "到场", step_recovered: "设备自行恢复",
    step_resolved: "解决", step_reopened: "返修重开", step_closed: "关闭",
    by_auto: "系统", arrived_by: "到场", not_arrived: "尚无人到场", deadline: "期限",
    kind_availability: "完好率偏低", kind_alarm: "报警",
    reason_comms: "通讯中断", reason_rule: "故障规则",
    dismiss: "知道了", confirmed: "网关已确认", sending: "发送中…",
    refused_state: "工单 #{id} {state}，不能{op}。", refused_other: "网关拒绝了这个操作：{detail}",
    rejected: "网关未接受这个命令（{reason}）：{detail}",
    no_secret: "本看板没有网关 {gw} 的命令密钥，无法发送（见配置 [[gateway]]）。",
    broker: "无法把命令发给 MQTT 代理，请稍后再试。",
    timeout: "网关 {gw} 在 10 秒内没有应答，它在线吗？可稍后重试。",
    login_first: "请先登录。", csrf: "页面已过期，请刷新后重试。",
    failed: "操作没有完成（HTTP {status}）。",
    op_done_arrive: "已记录到场", op_done_ack: "已确认", op_done_resolve: "已解决", op_done_close: "已关闭",
    op_verb_arrive: "标记到场", op_verb_ack: "确认", op_verb_resolve: "解决", op_verb_close: "关闭",
    st_open: "待处理", st_acknowledged: "已确认", st_resolved: "已解决", st_closed: "已关闭",
    note_auto_close: "自动关闭", note_rework: "同一故障在返修期内再次出现", note_auto_resolve: "设备自行恢复，自动解决",
  },
  en: {
    arrive: "On site", ack: "Acknowledge", resolve: "Resolve", close: "Close",
    step_opened: "opened", step_acknowledged: "acknowledged", step_arrived: "arrived on site", step_recovered: "device recovered by itself",
    step_resolved: "resolved", step_reopened: "reopened (rework)", step_closed: "closed",
    by_auto: "system", arrived_by: "On site", not_arrived: "nobody on site yet", deadline: "Due",
    kind_availability: "availability below target", kind_alarm: "alarm",
    reason_comms: "communication lost", reason_rule: "fault rule",
    dismiss: "Dismiss", confirmed: "Confirmed by the gateway", sending: "Sending…",
    refused_state: "Ticket #{id} is {state}; it cannot be {op}.", refused_other: "The gateway refused: {detail}",
    rejected: "The gateway did not accept the command ({reason}): {detail}",
    no_secret: "This dashboard has no command secret for gateway {gw} ([[gateway]] in its configuration).",
    broker: "Cannot pass the command to the MQTT broker; try again shortly.",
    timeout: "Gateway {gw} did not answer within 10 s; is it online? Try again shortly.",
    login_first: "Log in first.", csrf: "The page is out of date; reload it and try again.",
    failed: "Not done (HTTP {status}).",
    op_done_arrive: "Arrival recorded", op_done_ack: "Acknowledged", op_done_resolve: "Resolved", op_done_close: "Closed",
    op_verb_arrive: "marked as arrived on site", op_verb_ack: "acknowledged", op_verb_resolve: "resolved", op_verb_close: "closed",
    st_open: "open", st_acknowledged: "acknowledged", st_resolved: "resolved", st_closed: "closed",
    note_auto_close: "closed automatically", note_rework: "the same fault came back within the rework period",
    note_auto_resolve: "the device recovered by itself; resolved automatically",
  },
};

// A word of TK_WORDS in the page's language, with {vars} filled in.
function tw(k, vars) {
  const words = own(TK_WORDS, LANG) ? TK_WORDS[LANG] : TK_WORDS["zh-CN"];
  let s = own(words, k) ? words[k] : own(TK_WORDS.en, k) ? TK_WORDS.en[k] : "";
  if (vars) for (const [a, b] of Object.entries(vars)) s = s.split("{" + a + "}").join(str(b));
  return s;
}

// A ticket's one line for people: the per-language summary when common.js
// has it (ticketTitle), else the gateway's Chinese summary.
const title = (tk) => (typeof ticketTitle === "function" ? ticketTitle(tk, LANG) : str(tk.summary));

// The device's display name (not its id).
function ticketDevice(tk) {
  const n = LANG === "en" ? tk.name_en || tk.name_zh : tk.name_zh || tk.name_en;
  return str(n || tk.device);
}

function stateText(s) { return tw("st_" + str(s)) || str(s); }
function stepText(kind) { return tw("step_" + str(kind)) || str(kind); }
function byText(by) { return by === "auto" ? tw("by_auto") : str(by); }
// Notes the gateway itself writes (in Chinese) read in the page's language.
function noteText(note) {
  const n = str(note);
  const known = { "自动关闭": "note_auto_close", "同一故障在返修期内再次出现": "note_rework", "设备自行恢复，自动解决": "note_auto_resolve" };
  return own(known, n) ? tw(known[n]) : n;
}
// `availability` / `alarm:<point>` for people.
function kindText(k, tk) {
  const s = str(k);
  if (s === "availability") return tw("kind_availability");
  if (s.startsWith("alarm:")) {
    const f = obj(obj(tk).facts);
    return tw("kind_alarm") + " " + (pickLabel([str(f.point_zh), str(f.point_en)]) || humanise(s.slice(6)));
  }
  return s;
}

// Urgency: not closed first, critical before ordinary, not yet
// acknowledged before taken, then the oldest first.
function byUrgency(a, b) {
  const key = (tk) => [tk.state === "closed" ? 1 : 0, tk.severity === "critical" ? 0 : 1, tk.state === "open" ? 0 : 1, num(tk.opened_ms) ? tk.opened_ms : 0];
  const x = key(a), y = key(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return 0;
}

// What a person may do to a ticket in its state, in the order shown.
function allowedOps(tk) {
  if (tk.state === "open") return ["arrive", "ack", "resolve"];
  if (tk.state === "acknowledged") return ["arrive", "resolve"];
  return [];
}

// The text of an action's answer ({status, ok, body} from api()).
function outcomeText(r, tk, op) {
  const b = obj(r.body);
  if (r.ok) return tw("op_done_" + op) + " · " + tw("confirmed");
  const vars = { id: str(tk.id), gw: str(tk.gateway), detail: str(b.detail), reason: str(b.reason), status: r.status };
  if (b.code === "refused" && b.state && !allowedOps({ state: b.state }).includes(op)) {
    return tw("refused_state", { id: tk.id, state: stateText(b.state), op: tw("op_verb_" + op) });
  }
  if (b.code === "refused") return tw("refused_other", vars);
  if (b.code === "rejected") return tw("rejected", vars);
  if (b.code === "no_secret" || b.code === "broker" || b.code === "timeout") return tw(b.code, vars);
  if (r.status === 401) return tw("login_first");
  if (r.status === 403) return tw("csrf");
  return tw("failed", vars);
}

// A message that stays until dismissed: kind "ok" or "err".
function showOutcome(box, kind, text) {
  const close = el("button", { class: "btn ph-dismiss", type: "button" }, tw("dismiss"));
  fill(box, el("div", { class: "note-" + kind, role: kind === "err" ? "alert" : "status" }, el("span", { class: "ph-msg-text" }, text), " ", close));
  box.className = "msg sticky " + kind;
  close.onclick = () => { box.replaceChildren(); box.className = "msg"; };
}

// Sends op for tk with note; returns {status, ok, body}.
function sendOp(tk, op, note, csrf) {
  return api("/api/tickets/" + encodeURIComponent(str(tk.site)) + "/" + encodeURIComponent(str(tk.gateway)) + "/" + encodeURIComponent(str(tk.id)) + "/" + op, {
    method: "POST", headers: { "content-type": "application/json", "x-csrf-token": csrf || "" }, body: JSON.stringify({ note: str(note) }),
  });
}

// The phone page of a ticket.
function ticketHref(tk) {
  return "/tickets/" + encodeURIComponent(str(tk.site)) + "/" + encodeURIComponent(str(tk.gateway)) + "/" + encodeURIComponent(str(tk.id));
}
