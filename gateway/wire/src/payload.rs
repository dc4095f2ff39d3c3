//! The payload of each kind, and its parse function.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::check::{
    self, Checked, MAX_ENTRIES, MAX_HISTORY, MAX_ID, MAX_POINT_TEXT, Reason, Refusal,
};
use crate::topic::{Kind, Topic};

/// A gateway's connection state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Online {
    /// Connected.
    Online,
    /// Stopped, or lost (the last will).
    Offline,
}

impl Online {
    /// `online` or `offline`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Online::Online => "online",
            Online::Offline => "offline",
        }
    }
}

/// A device's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Working.
    Up,
    /// Failed (no answer or a fault rule).
    Down,
    /// In a maintenance window.
    Maintenance,
    /// Not known (yet).
    Unknown,
}

impl DeviceState {
    /// `up`, `down`, `maintenance`, `unknown`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeviceState::Up => "up",
            DeviceState::Down => "down",
            DeviceState::Maintenance => "maintenance",
            DeviceState::Unknown => "unknown",
        }
    }
}

/// `…/status` (retained; also the last will).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The last seq appended before it (0 in the last will).
    #[serde(default)]
    pub seq: u64,
    /// When it was made.
    pub ts: i64,
    /// Online or offline.
    pub state: Online,
    /// Site id (as in the topic).
    #[serde(default)]
    pub site: Option<String>,
    /// Gateway id (as in the topic).
    #[serde(default)]
    pub gateway: Option<String>,
    /// The gateway's version.
    #[serde(default)]
    pub version: Option<String>,
    /// When the gateway process started.
    #[serde(default)]
    pub started_at: Option<i64>,
    /// The site's display name in Chinese (absent when not configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_name_zh: Option<String>,
    /// The site's display name in English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_name_en: Option<String>,
}

/// A display label: `[zh, en]`.
pub type LabelPair = [String; 2];

/// The display labels a `state` carries: point and rule name → `[zh, en]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Labels {
    /// Point labels.
    #[serde(default)]
    pub points: BTreeMap<String, LabelPair>,
    /// Fault rule labels.
    #[serde(default)]
    pub rules: BTreeMap<String, LabelPair>,
}

/// A point's value in telemetry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PointValue {
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An integer above `i64::MAX`.
    UInt(u64),
    /// A finite number.
    Float(f64),
    /// Text (at most [`check::MAX_POINT_TEXT`] characters).
    Text(String),
}

/// `…/{device}/telemetry`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    /// Gateway seq.
    pub seq: u64,
    /// When the poll completed.
    pub ts: i64,
    /// Device id (as in the topic).
    pub device: String,
    /// Class name.
    #[serde(default)]
    pub class: Option<String>,
    /// Point name → value (`None`: nothing could be decoded).
    pub points: BTreeMap<String, Option<PointValue>>,
    /// Point name → unit.
    #[serde(default)]
    pub units: BTreeMap<String, String>,
    /// Point name → why its quality is not good.
    #[serde(default)]
    pub quality: BTreeMap<String, String>,
}

/// The availability figures of a state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Availability {
    /// Rolling availability 0–1 (None: no Up/Down time in the window).
    pub rolling: Option<f64>,
    /// The rolling window in seconds.
    #[serde(default)]
    pub rolling_window_s: Option<i64>,
    /// Month-to-date availability 0–1.
    pub month: Option<f64>,
    /// Month-to-date Up time in seconds (absent from older gateways).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month_up_s: Option<i64>,
    /// Month-to-date Down time in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month_down_s: Option<i64>,
    /// Target, per cent 0–100.
    pub threshold: f64,
    /// Either figure is under the target.
    #[serde(default)]
    pub below: bool,
}

/// One active hard alarm in a state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveAlarm {
    /// The alarm point.
    pub point: String,
    /// Since when.
    pub since: i64,
}

/// `…/{device}/state` (retained).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Gateway seq.
    pub seq: u64,
    /// When it was made.
    pub ts: i64,
    /// Device id (as in the topic).
    pub device: String,
    /// Class name.
    #[serde(default)]
    pub class: Option<String>,
    /// Display name in Chinese.
    #[serde(default)]
    pub name_zh: Option<String>,
    /// Display name in English.
    #[serde(default)]
    pub name_en: Option<String>,
    /// Where the device is (may be empty).
    #[serde(default)]
    pub location: Option<String>,
    /// Where it is, in English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_en: Option<String>,
    /// The state.
    pub state: DeviceState,
    /// Since when.
    #[serde(default)]
    pub since: Option<i64>,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// The label of a `rule:…` reason, `[zh, en]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_label: Option<LabelPair>,
    /// Availability against the target.
    #[serde(default)]
    pub availability: Option<Availability>,
    /// The device's active hard alarms (absent from gateways that predate
    /// it: then nothing is known about them from the state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarms: Option<Vec<ActiveAlarm>>,
    /// Display labels of the device's points and rules (absent from
    /// gateways that predate them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
}

/// A transition event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// Gateway seq.
    pub seq: u64,
    /// When it was made.
    pub ts: i64,
    /// Device id (as in the topic).
    pub device: String,
    /// The state before.
    pub from: DeviceState,
    /// The state after.
    pub to: DeviceState,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// When the new state began.
    pub at: i64,
}

/// Below or recovered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Crossing {
    /// Fell under the target.
    Below,
    /// Back at or above it.
    Recovered,
}

/// A threshold crossing event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// Gateway seq.
    pub seq: u64,
    /// When it was made.
    pub ts: i64,
    /// Device id (as in the topic).
    pub device: String,
    /// Which way.
    pub crossing: Crossing,
    /// The rolling availability 0–1.
    pub availability: f64,
    /// The target, per cent.
    pub threshold: f64,
    /// When.
    pub at: i64,
}

/// `…/{device}/event`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A state transition.
    Transition(Transition),
    /// A threshold crossing.
    Threshold(Threshold),
}

impl Event {
    /// The message's seq.
    pub const fn seq(&self) -> u64 {
        match self {
            Event::Transition(t) => t.seq,
            Event::Threshold(t) => t.seq,
        }
    }
}

/// `…/alarm`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    /// Gateway seq.
    pub seq: u64,
    /// When it was made.
    pub ts: i64,
    /// Device id.
    pub device: String,
    /// The alarm point.
    pub point: String,
    /// Became active (true) or cleared.
    pub active: bool,
    /// When.
    pub at: i64,
}

/// What happened to a ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketEventKind {
    /// New.
    Opened,
    /// A person took it.
    Acknowledged,
    /// A person arrived on site (到场).
    Arrived,
    /// The device came back by itself.
    Recovered,
    /// Repaired.
    Resolved,
    /// Rework.
    Reopened,
    /// Done.
    Closed,
}

/// A ticket's lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    /// Open.
    Open,
    /// Taken.
    Acknowledged,
    /// Repaired.
    Resolved,
    /// Done.
    Closed,
}

/// How urgent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Short deadline.
    Critical,
    /// Normal deadline.
    Ordinary,
}

/// Who did a step, when, with what note.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Who (`auto` for the gateway).
    pub by: String,
    /// When.
    pub at_ms: i64,
    /// Free text.
    #[serde(default)]
    pub note: String,
}

/// One line of a ticket's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// What happened.
    pub kind: TicketEventKind,
    /// When.
    pub at_ms: i64,
    /// Who.
    pub by: String,
    /// Free text.
    #[serde(default)]
    pub note: String,
    /// For opened and reopened: the deadline of the cycle that began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<i64>,
}

/// A ticket as published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// Number (as in the topic).
    pub id: u64,
    /// Device id.
    pub device: String,
    /// The device's class.
    pub class: String,
    /// `availability` or `alarm:<point>`.
    pub kind: String,
    /// How urgent.
    pub severity: Severity,
    /// Lifecycle state.
    pub state: TicketState,
    /// One line for people.
    pub summary: String,
    /// When it first opened.
    pub opened_ms: i64,
    /// Due time of the current cycle.
    pub deadline_ms: i64,
    /// Who took the current cycle.
    pub acknowledged: Option<Step>,
    /// Who arrived on site first in the current cycle (absent from
    /// gateways older than the `arrive` command).
    #[serde(default)]
    pub arrived: Option<Step>,
    /// When the device came back by itself.
    pub recovered_ms: Option<i64>,
    /// Who resolved the current cycle.
    pub resolved: Option<Step>,
    /// Who closed it.
    pub closed: Option<Step>,
    /// Times reopened.
    pub reworks: u32,
    /// When last reopened.
    #[serde(default)]
    pub reopened_ms: Option<i64>,
    /// Everything that happened, oldest first (a list, or refused).
    pub history: Vec<HistoryEntry>,
    /// The structured facts behind `summary` (absent from gateways that
    /// predate them; every field optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<TicketFacts>,
}

/// A ticket's `facts` (`docs/mqtt.md`, "Ticket facts").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketFacts {
    /// `comms` or `rule:<name>`: why an availability ticket's device was down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Rolling availability that opened it, tenths of a per cent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_permille: Option<u32>,
    /// Target, tenths of a per cent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_permille: Option<u32>,
    /// Device name, Chinese.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_zh: Option<String>,
    /// Device name, English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_en: Option<String>,
    /// Location, Chinese.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_zh: Option<String>,
    /// Location, English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_en: Option<String>,
    /// Rule label, Chinese.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_zh: Option<String>,
    /// Rule label, English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_en: Option<String>,
    /// Alarm point label, Chinese.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_zh: Option<String>,
    /// Alarm point label, English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_en: Option<String>,
}

/// `…/tickets/{id}` (retained).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketMsg {
    /// Gateway seq.
    pub seq: u64,
    /// When it was made.
    pub ts: i64,
    /// What just happened.
    pub event: TicketEventKind,
    /// When.
    pub at: i64,
    /// The whole ticket after it.
    pub ticket: Ticket,
}

/// `…/cmd/reply`: the signed envelope. Its `body` (the reply JSON as a
/// string) and `sig` (HMAC-SHA256 under the gateway's command secret, 64
/// hex digits) are checked by whoever sent the command (the dashboard's
/// `commands::on_reply`, through `gateway::cmdin::open_reply`); a consumer
/// of the stream only bounds them here and takes the `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    /// Gateway seq (not signed).
    pub seq: u64,
    /// The signed reply JSON, as a string.
    pub body: String,
    /// The signature of `body`, hex.
    pub sig: String,
}

/// Any message a consumer takes, parsed for its topic.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// `status`.
    Status(Status),
    /// `telemetry`.
    Telemetry(Telemetry),
    /// `state`.
    State(Box<State>),
    /// `event`.
    Event(Event),
    /// `tickets/{id}`.
    Ticket(Box<TicketMsg>),
    /// `alarm`.
    Alarm(Alarm),
    /// `cmd/reply`.
    Reply(Reply),
}

impl Message {
    /// The seq (status: the last appended before it).
    pub const fn seq(&self) -> u64 {
        match self {
            Message::Status(m) => m.seq,
            Message::Telemetry(m) => m.seq,
            Message::State(m) => m.seq,
            Message::Event(m) => m.seq(),
            Message::Ticket(m) => m.seq,
            Message::Alarm(m) => m.seq,
            Message::Reply(m) => m.seq,
        }
    }
}

/// Parses the payload of a topic's kind and checks it against the topic
/// (the device, ticket number, site and gateway it names). `alert` and
/// commands are not consumed: refused as [`Reason::BadTopic`].
pub fn parse(topic: &Topic<'_>, payload: &[u8]) -> Result<Message, Refusal> {
    let same = |field: &str, got: &str, want: &str| {
        if got == want {
            Ok(())
        } else {
            Err(Refusal::new(
                Reason::Inconsistent,
                format!("{field} {got:?} is not the topic's {want:?}"),
            ))
        }
    };
    Ok(match topic.kind {
        Kind::Status => {
            let m = parse_status(payload)?;
            if let Some(s) = &m.site {
                same("site", s, topic.site)?;
            }
            if let Some(g) = &m.gateway {
                same("gateway", g, topic.gateway)?;
            }
            Message::Status(m)
        }
        Kind::Telemetry(d) => {
            let m = parse_telemetry(payload)?;
            same("device", &m.device, d)?;
            Message::Telemetry(m)
        }
        Kind::State(d) => {
            let m = parse_state(payload)?;
            same("device", &m.device, d)?;
            Message::State(Box::new(m))
        }
        Kind::Event(d) => {
            let m = parse_event(payload)?;
            let dev = match &m {
                Event::Transition(t) => &t.device,
                Event::Threshold(t) => &t.device,
            };
            same("device", dev, d)?;
            Message::Event(m)
        }
        Kind::Ticket(n) => {
            let m = parse_ticket(payload)?;
            if m.ticket.id != n {
                return Err(Refusal::new(
                    Reason::Inconsistent,
                    format!("ticket id {} is not the topic's {n}", m.ticket.id),
                ));
            }
            Message::Ticket(Box::new(m))
        }
        Kind::Alarm => Message::Alarm(parse_alarm(payload)?),
        Kind::Reply => Message::Reply(parse_reply(payload)?),
        Kind::Alert | Kind::Command(_) => {
            return Err(Refusal::new(
                Reason::BadTopic,
                "not a message consumers take",
            ));
        }
    })
}

fn from<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, Refusal> {
    Ok(serde_json::from_slice(payload)?)
}

/// Parses a `status` payload.
pub fn parse_status(payload: &[u8]) -> Result<Status, Refusal> {
    let m: Status = from(payload)?;
    check::time("ts", m.ts)?;
    for (f, v) in [("site", &m.site), ("gateway", &m.gateway)] {
        if let Some(v) = v {
            check::id(f, v)?;
        }
    }
    if let Some(v) = &m.version {
        check::text_max("version", v, MAX_ID)?;
    }
    check::opt_time("started_at", m.started_at)?;
    check::opt_text("site_name_zh", m.site_name_zh.as_deref())?;
    check::opt_text("site_name_en", m.site_name_en.as_deref())?;
    Ok(m)
}

fn point_value(name: &str, v: &Option<PointValue>) -> Checked {
    match v {
        Some(PointValue::Float(f)) if !f.is_finite() => Err(Refusal::new(
            Reason::OutOfRange,
            format!("points.{name}: not a finite number"),
        )),
        Some(PointValue::Text(t)) => check::text_max(&format!("points.{name}"), t, MAX_POINT_TEXT),
        _ => Ok(()),
    }
}

/// Parses a `telemetry` payload.
pub fn parse_telemetry(payload: &[u8]) -> Result<Telemetry, Refusal> {
    let m: Telemetry = from(payload)?;
    check::time("ts", m.ts)?;
    check::id("device", &m.device)?;
    if let Some(c) = &m.class {
        check::id("class", c)?;
    }
    check::count("points", m.points.len(), MAX_ENTRIES)?;
    check::count("units", m.units.len(), MAX_ENTRIES)?;
    check::count("quality", m.quality.len(), MAX_ENTRIES)?;
    for (k, v) in &m.points {
        check::id("points", k)?;
        point_value(k, v)?;
    }
    for (k, u) in &m.units {
        check::id("units", k)?;
        check::text_max(&format!("units.{k}"), u, MAX_ID)?;
    }
    for (k, q) in &m.quality {
        check::id("quality", k)?;
        check::id(&format!("quality.{k}"), q)?;
    }
    Ok(m)
}

/// Parses a `state` payload.
pub fn parse_state(payload: &[u8]) -> Result<State, Refusal> {
    let m: State = from(payload)?;
    check::time("ts", m.ts)?;
    check::id("device", &m.device)?;
    if let Some(c) = &m.class {
        check::id("class", c)?;
    }
    check::opt_text("name_zh", m.name_zh.as_deref())?;
    check::opt_text("name_en", m.name_en.as_deref())?;
    check::opt_text("location", m.location.as_deref())?;
    check::opt_text("location_en", m.location_en.as_deref())?;
    check::opt_text("reason", m.reason.as_deref())?;
    if let Some([zh, en]) = &m.reason_label {
        check::text("reason_label", zh)?;
        check::text("reason_label", en)?;
    }
    if let Some(l) = &m.labels {
        for (field, map) in [("labels.points", &l.points), ("labels.rules", &l.rules)] {
            check::count(field, map.len(), MAX_ENTRIES)?;
            for (k, [zh, en]) in map {
                check::id(field, k)?;
                check::text_max(&format!("{field}.{k}"), zh, MAX_ID)?;
                check::text_max(&format!("{field}.{k}"), en, MAX_ID)?;
            }
        }
    }
    check::opt_time("since", m.since)?;
    if let Some(a) = &m.availability {
        for (f, x) in [
            ("availability.rolling", a.rolling),
            ("availability.month", a.month),
        ] {
            if let Some(x) = x {
                check::range(f, x, 0.0, 1.0)?;
            }
        }
        check::range("availability.threshold", a.threshold, 0.0, 100.0)?;
        for (f, x) in [
            ("availability.month_up_s", a.month_up_s),
            ("availability.month_down_s", a.month_down_s),
        ] {
            if let Some(x) = x {
                // At most a month and a day.
                check::range(f, x as f64, 0.0, 2_764_800.0)?;
            }
        }
        if let Some(w) = a.rolling_window_s {
            // Up to ten years.
            check::range(
                "availability.rolling_window_s",
                w as f64,
                0.0,
                315_360_000.0,
            )?;
        }
    }
    if let Some(list) = &m.alarms {
        check::count("alarms", list.len(), MAX_ENTRIES)?;
        for a in list {
            check::id("alarms.point", &a.point)?;
            check::time("alarms.since", a.since)?;
        }
    }
    Ok(m)
}

/// Parses an `event` payload (transition or threshold crossing).
pub fn parse_event(payload: &[u8]) -> Result<Event, Refusal> {
    let m: Event = from(payload)?;
    match &m {
        Event::Transition(t) => {
            check::time("ts", t.ts)?;
            check::id("device", &t.device)?;
            check::opt_text("reason", t.reason.as_deref())?;
            check::time("at", t.at)?;
        }
        Event::Threshold(t) => {
            check::time("ts", t.ts)?;
            check::id("device", &t.device)?;
            check::range("availability", t.availability, 0.0, 1.0)?;
            check::range("threshold", t.threshold, 0.0, 100.0)?;
            check::time("at", t.at)?;
        }
    }
    Ok(m)
}

/// Parses an `alarm` payload.
pub fn parse_alarm(payload: &[u8]) -> Result<Alarm, Refusal> {
    let m: Alarm = from(payload)?;
    check::time("ts", m.ts)?;
    check::id("device", &m.device)?;
    check::id("point", &m.point)?;
    check::time("at", m.at)?;
    Ok(m)
}

/// Longest note of a ticket step (operators type these).
const MAX_NOTE: usize = 2000;

fn note(field: &str, s: &str) -> Checked {
    // Notes may hold line breaks and tabs; nothing else below U+0020.
    let flat: String = s
        .chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .collect();
    check::text_max(field, &flat, MAX_NOTE)
}

fn step(field: &str, s: &Option<Step>) -> Checked {
    let Some(s) = s else { return Ok(()) };
    check::text_max(&format!("{field}.by"), &s.by, MAX_ID)?;
    check::time(&format!("{field}.at_ms"), s.at_ms)?;
    note(&format!("{field}.note"), &s.note)
}

/// Parses a `tickets/{id}` payload.
pub fn parse_ticket(payload: &[u8]) -> Result<TicketMsg, Refusal> {
    let m: TicketMsg = from(payload)?;
    check::time("ts", m.ts)?;
    check::time("at", m.at)?;
    let t = &m.ticket;
    check::id("ticket.device", &t.device)?;
    check::id("ticket.class", &t.class)?;
    check::text_max("ticket.kind", &t.kind, 2 * MAX_ID)?;
    check::text("ticket.summary", &t.summary)?;
    check::time("ticket.opened_ms", t.opened_ms)?;
    check::time("ticket.deadline_ms", t.deadline_ms)?;
    check::opt_time("ticket.recovered_ms", t.recovered_ms)?;
    check::opt_time("ticket.reopened_ms", t.reopened_ms)?;
    step("ticket.acknowledged", &t.acknowledged)?;
    step("ticket.arrived", &t.arrived)?;
    step("ticket.resolved", &t.resolved)?;
    step("ticket.closed", &t.closed)?;
    check::count("ticket.history", t.history.len(), MAX_HISTORY)?;
    for h in &t.history {
        check::time("ticket.history.at_ms", h.at_ms)?;
        check::text_max("ticket.history.by", &h.by, MAX_ID)?;
        note("ticket.history.note", &h.note)?;
        check::opt_time("ticket.history.deadline_ms", h.deadline_ms)?;
    }
    if let Some(f) = &t.facts {
        if let Some(r) = &f.reason {
            check::text_max("ticket.facts.reason", r, 2 * MAX_ID)?;
        }
        for (field, v) in [
            (
                "ticket.facts.availability_permille",
                f.availability_permille,
            ),
            ("ticket.facts.target_permille", f.target_permille),
        ] {
            if let Some(v) = v {
                check::range(field, f64::from(v), 0.0, 1000.0)?;
            }
        }
        for (field, v) in [
            ("ticket.facts.device_zh", &f.device_zh),
            ("ticket.facts.device_en", &f.device_en),
            ("ticket.facts.location_zh", &f.location_zh),
            ("ticket.facts.location_en", &f.location_en),
            ("ticket.facts.rule_zh", &f.rule_zh),
            ("ticket.facts.rule_en", &f.rule_en),
            ("ticket.facts.point_zh", &f.point_zh),
            ("ticket.facts.point_en", &f.point_en),
        ] {
            check::opt_text(field, v.as_deref())?;
        }
    }
    Ok(m)
}

/// The longest reply body looked at, in bytes (the gateway's replies are
/// a few hundred; a refused command's detail is bounded by the gateway).
pub const MAX_REPLY_BODY: usize = 8 * 1024;

/// Parses a `cmd/reply` envelope: a bounded `body` and a `sig` of 64 hex
/// digits. The signature itself is checked by the command's sender.
pub fn parse_reply(payload: &[u8]) -> Result<Reply, Refusal> {
    let m: Reply = from(payload)?;
    if m.body.len() > MAX_REPLY_BODY {
        return Err(Refusal::new(
            Reason::TooLong,
            format!("body: {} bytes, at most {MAX_REPLY_BODY}", m.body.len()),
        ));
    }
    if m.sig.len() != 64 || !m.sig.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Refusal::new(Reason::Shape, "sig: not 64 hex digits"));
    }
    Ok(m)
}
