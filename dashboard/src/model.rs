//! The live picture: every site, gateway, device, ticket and active alarm
//! learnt from the gateways' MQTT messages (schema: `docs/mqtt.md`).
//!
//! [`Model::apply`] takes one message; [`Model::snapshot`] gives the JSON the
//! pages and the API show. Retained messages (status, state, tickets) make a
//! restarted dashboard recover the picture at once, active hard alarms
//! included (the `alarms` list of each retained state).
//!
//! Everything from MQTT is untrusted. A message is taken only as one of
//! `bms-wire`'s typed, bounded payloads; anything else is refused, counted
//! per kind and reason (`malformed_by_kind`) and never shown. The allow-list
//! (`[mqtt] sites`, `gateways`) and the caps (`[limits]`: sites, gateways
//! per site, devices per gateway, points per device, tickets per gateway,
//! bytes per payload) bound what a flood can make the dashboard keep;
//! each refusal is counted (`not_allowed`, `refused_by_cap`). Refusals are
//! logged at most once per kind every [`LOG_EVERY_MS`], with the number
//! left out since.
//!
//! Sequence numbers (`docs/mqtt.md`, "What a consumer does with seq"): each
//! gateway numbers its live messages; the model keeps a window per gateway.
//! A live message whose `seq` is not above the highest seen is a resend and
//! is dropped (a duplicate), unless it is more than [`SEQ_BOUND`] below:
//! no resend goes back that far, so the numbering restarted or the high
//! mark was forged, and the lower number is believed (`seq_rollbacks`). A
//! jump more than [`SEQ_BOUND`] above the highest seen (or above the last
//! `status`'s seq when no live message was seen yet) is not believed and
//! the message is dropped (`seq_jumps_refused`). A `status` with a new
//! `started_at` (a real restart) resets the window. A smaller jump counts
//! the missing numbers as a gap. Retained messages replayed at
//! subscription carry old numbers in any order: they are checked per topic
//! only (a state or ticket older than the one held is ignored) and never
//! move the window; a live message always replaces what a retained one
//! set. Every counter saturates.

use std::collections::{BTreeMap, VecDeque};

use bms_wire::{
    Alarm, DeviceState, Event, Kind, Message, Online, PointValue, Refusal, State, Status,
    Telemetry, TicketMsg, TicketState,
};
use serde::Serialize;
use serde_json::{Map, Value as Json, json};

/// Closed tickets kept per gateway (the oldest are forgotten first).
const CLOSED_TICKETS_KEPT: usize = 100;
/// Recent events kept for the pages.
const EVENTS_KEPT: usize = 50;
/// A live `seq` this far from the highest seen is not a resend nor a gap.
pub const SEQ_BOUND: u64 = 1_000_000;
/// Refusals of one kind are logged at most this often.
pub const LOG_EVERY_MS: i64 = 10_000;
/// A status time this far ahead of the local clock does not order statuses.
const FUTURE_SKEW_MS: i64 = 86_400_000;

/// Counters of what arrived, for `/api/health` and `/metrics`. Every
/// counter saturates at `u64::MAX`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counters {
    /// Messages taken.
    pub messages: u64,
    /// Payloads refused as not what `docs/mqtt.md` says (all kinds and reasons).
    pub malformed: u64,
    /// The same, by kind (`state`, `telemetry`, …) and reason (`shape`,
    /// `too_long`, `out_of_range`, …).
    pub malformed_by_kind: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
    /// Topics under the prefix that are not one of `docs/mqtt.md`'s (or
    /// whose segments are not ids).
    pub unknown_topics: u64,
    /// Messages of a site or gateway outside the allow-list.
    pub not_allowed: u64,
    /// Messages refused by a `[limits]` cap, by cap (`sites`, `gateways`,
    /// `devices`, `points`, `tickets`, `alarms`, `payload_bytes`).
    pub refused_by_cap: BTreeMap<&'static str, u64>,
    /// Live messages dropped because their `seq` was not new (resends).
    pub duplicates: u64,
    /// Jumps in `seq`.
    pub gaps: u64,
    /// Sequence numbers missing in those jumps.
    pub missing: u64,
    /// Live messages dropped because their `seq` jumped more than the bound ahead.
    pub seq_jumps_refused: u64,
    /// Live messages whose `seq` was more than the bound below the highest
    /// seen, believed as a new start of the numbering.
    pub seq_rollbacks: u64,
    /// Gateway restarts seen (a status with a new `started_at`): window reset.
    pub seq_restarts: u64,
    /// Command replies received and well signed by the gateway of their
    /// topic (the model only takes their `seq`).
    pub replies: u64,
    /// `…/cmd/reply` messages not believed, by reason (`bad_signature`,
    /// `unsigned`, `wrong_topic`, …; see `docs/commands.md`).
    pub replies_refused: BTreeMap<&'static str, u64>,
}

fn bump(c: &mut u64) {
    *c = c.saturating_add(1);
}

/// The caps of `[limits]` (`docs/dashboard.md`).
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_sites: usize,
    pub max_gateways_per_site: usize,
    pub max_devices_per_gateway: usize,
    pub max_points_per_device: usize,
    pub max_tickets_per_gateway: usize,
    pub max_payload_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::of(&crate::config::LimitsSection::default())
    }
}

impl Limits {
    /// The caps as configured.
    pub fn of(l: &crate::config::LimitsSection) -> Limits {
        Limits {
            max_sites: l.max_sites,
            max_gateways_per_site: l.max_gateways_per_site,
            max_devices_per_gateway: l.max_devices_per_gateway,
            max_points_per_device: l.max_points_per_device,
            max_tickets_per_gateway: l.max_tickets_per_gateway,
            max_payload_bytes: l.max_payload_bytes,
        }
    }
}

/// One device.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Device {
    pub id: String,
    pub class: String,
    pub name_zh: String,
    pub name_en: String,
    pub location: String,
    /// `up`, `down`, `maintenance`, `unknown` (None: no state seen yet).
    pub state: Option<DeviceState>,
    pub since: Option<i64>,
    pub reason: Option<String>,
    /// The state payload's `availability` object.
    pub availability: Option<bms_wire::Availability>,
    /// Latest value of each point.
    pub points: BTreeMap<String, Option<PointValue>>,
    pub units: BTreeMap<String, String>,
    /// Points whose quality is not good, with why.
    pub quality: BTreeMap<String, String>,
    /// Gateway time of the latest telemetry.
    pub telemetry_ts: Option<i64>,
    /// Local time (ms) the dashboard last heard of this device.
    pub heard_ms: i64,
    #[serde(skip)]
    state_seq: u64,
}

/// The `seq` window of one gateway (module doc).
#[derive(Clone, Debug, Default)]
struct SeqWindow {
    /// Highest live seq believed (0: none yet).
    high: u64,
    /// The last status's seq, the reference before any live message.
    anchor: Option<u64>,
}

enum Admit {
    New { missing: u64 },
    Duplicate,
    Rollback,
    JumpRefused,
}

impl SeqWindow {
    fn admit(&mut self, seq: u64) -> Admit {
        if self.high > 0 && seq <= self.high {
            if self.high - seq > SEQ_BOUND {
                self.high = seq;
                return Admit::Rollback;
            }
            return Admit::Duplicate;
        }
        let base = if self.high > 0 {
            Some(self.high)
        } else {
            self.anchor
        };
        if let Some(b) = base
            && seq > b.saturating_add(SEQ_BOUND)
        {
            return Admit::JumpRefused;
        }
        let missing = if self.high > 0 {
            seq - self.high - 1
        } else {
            0
        };
        self.high = seq;
        Admit::New { missing }
    }

    fn restart(&mut self, anchor: u64) {
        self.high = 0;
        self.anchor = (anchor > 0).then_some(anchor);
    }
}

/// One gateway.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Gateway {
    pub id: String,
    pub site: String,
    /// `online` / `offline` (None: no status seen).
    pub status: Option<Online>,
    pub version: Option<String>,
    pub started_at: Option<i64>,
    pub status_ts: Option<i64>,
    /// Local time (ms) of the latest message from it.
    pub heard_ms: i64,
    /// Highest live `seq` believed.
    pub seq: u64,
    pub devices: BTreeMap<String, Device>,
    /// Tickets by number, as last published.
    pub tickets: BTreeMap<u64, bms_wire::Ticket>,
    /// Active hard alarms: (device, point) → since (gateway ms).
    #[serde(skip)]
    pub alarms: BTreeMap<(String, String), i64>,
    #[serde(skip)]
    ticket_seq: BTreeMap<u64, u64>,
    #[serde(skip)]
    window: SeqWindow,
}

/// What [`Model::apply`] did with a message.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    /// The picture changed.
    Changed,
    /// Nothing to show (a resend, a command going out, a cleared topic).
    Ignored,
    /// Refused (malformed, not allowed, over a cap, an unbelievable seq)
    /// and counted; never to be passed on. With the text to log, at most
    /// once per kind every [`LOG_EVERY_MS`].
    Refused(Option<String>),
}

/// Refusals of one kind since the last log line.
#[derive(Clone, Debug, Default)]
struct LogGate {
    last_ms: Option<i64>,
    suppressed: u64,
}

/// The live picture.
#[derive(Debug, Default)]
pub struct Model {
    prefix: String,
    sites_filter: Vec<String>,
    gateways_filter: Vec<(String, String)>,
    limits: Limits,
    rotation: Vec<String>,
    log_gates: BTreeMap<&'static str, LogGate>,
    /// site → gateway id → gateway.
    pub sites: BTreeMap<String, BTreeMap<String, Gateway>>,
    pub counters: Counters,
    /// Recent transitions and alarms, newest last.
    pub events: VecDeque<Json>,
    /// Bumped at every change.
    pub version: u64,
}

impl Model {
    /// An empty picture for topics under `prefix`, limited to `sites` when
    /// not empty, with the default caps.
    pub fn new(prefix: &str, sites: Vec<String>) -> Model {
        Model {
            prefix: prefix.to_owned(),
            sites_filter: sites,
            ..Model::default()
        }
    }

    /// An empty picture as `file` configures it: prefix, allow-lists,
    /// caps, the wall's rotation.
    pub fn configured(file: &crate::config::Config) -> Model {
        Model {
            gateways_filter: file
                .mqtt
                .gateways
                .iter()
                .filter_map(|g| g.split_once('/'))
                .map(|(s, g)| (s.to_owned(), g.to_owned()))
                .collect(),
            limits: Limits::of(&file.limits),
            rotation: file.rotation(),
            ..Model::new(&file.mqtt.prefix, file.mqtt.sites.clone())
        }
    }

    /// Replaces the caps (tests).
    pub fn with_limits(mut self, limits: Limits) -> Model {
        self.limits = limits;
        self
    }

    fn allowed(&self, site: &str, gw: &str) -> bool {
        (self.sites_filter.is_empty() || self.sites_filter.iter().any(|s| s == site))
            && (self.gateways_filter.is_empty()
                || self
                    .gateways_filter
                    .iter()
                    .any(|(s, g)| s == site && g == gw))
    }

    /// Takes one message; `retained` is the MQTT retain flag as delivered,
    /// `now_ms` the local clock.
    pub fn apply(&mut self, topic: &str, payload: &[u8], retained: bool, now_ms: i64) -> Applied {
        let t = match bms_wire::parse_topic(&self.prefix, topic) {
            Ok(t) => t,
            Err(r) => {
                bump(&mut self.counters.unknown_topics);
                return self.log("topic", &r, now_ms);
            }
        };
        // Commands going to a gateway (ours or another sender's), and
        // on-call alerts: not for the picture.
        if matches!(t.kind, Kind::Command(_) | Kind::Alert) {
            return Applied::Ignored;
        }
        if !self.allowed(t.site, t.gateway) {
            bump(&mut self.counters.not_allowed);
            return Applied::Refused(None);
        }
        bump(&mut self.counters.messages);
        if payload.is_empty() {
            // A cleared retained topic.
            return Applied::Ignored;
        }
        if payload.len() > self.limits.max_payload_bytes {
            let r = Refusal::new(
                bms_wire::Reason::TooLong,
                format!(
                    "{topic}: {} bytes, over [limits] max_payload_bytes = {}",
                    payload.len(),
                    self.limits.max_payload_bytes
                ),
            );
            return self.cap("payload_bytes", &r, now_ms);
        }
        let msg = match bms_wire::parse(&t, payload) {
            Ok(m) => m,
            Err(r) => {
                let kind = t.kind.name();
                bump(&mut self.counters.malformed);
                bump(
                    self.counters
                        .malformed_by_kind
                        .entry(kind)
                        .or_default()
                        .entry(r.reason().as_str())
                        .or_default(),
                );
                let r = Refusal::new(r.reason(), format!("{topic}: {}", r.detail()));
                return self.log(kind, &r, now_ms);
            }
        };
        let Some(g) = gateway(&mut self.sites, &self.limits, t.site, t.gateway) else {
            let which = if self.sites.contains_key(t.site) {
                "gateways"
            } else {
                "sites"
            };
            let r = Refusal::new(
                bms_wire::Reason::TooMany,
                format!("{topic}: over the [limits] cap of {which}"),
            );
            return self.cap(which, &r, now_ms);
        };
        g.heard_ms = now_ms;
        // Live numbering.
        if !retained && !matches!(msg, Message::Status(_)) {
            match g.window.admit(msg.seq()) {
                Admit::Duplicate => {
                    bump(&mut self.counters.duplicates);
                    return Applied::Ignored;
                }
                Admit::JumpRefused => {
                    bump(&mut self.counters.seq_jumps_refused);
                    let r = Refusal::new(
                        bms_wire::Reason::OutOfRange,
                        format!(
                            "{topic}: seq {} jumps more than {SEQ_BOUND} ahead; not believed",
                            msg.seq()
                        ),
                    );
                    return self.log("seq", &r, now_ms);
                }
                Admit::Rollback => bump(&mut self.counters.seq_rollbacks),
                Admit::New { missing } => {
                    if missing > 0 {
                        bump(&mut self.counters.gaps);
                        self.counters.missing = self.counters.missing.saturating_add(missing);
                    }
                }
            }
            g.seq = g.window.high;
        }
        let limits = self.limits.clone();
        let r = match msg {
            Message::Status(m) => {
                if status(g, &m, now_ms) {
                    bump(&mut self.counters.seq_restarts);
                }
                Ok(Applied::Changed)
            }
            Message::Alarm(a) => alarm(g, &a, &limits, &mut self.events),
            // Checked and handed to its command before the model
            // (`commands::on_reply`); only its numbering matters here.
            Message::Reply(_) => {
                bump(&mut self.counters.replies);
                Ok(Applied::Ignored)
            }
            Message::Ticket(m) => ticket(g, m, retained, &limits),
            Message::Telemetry(m) => telemetry(g, m, &limits, now_ms),
            Message::State(m) => state(g, m, retained, &limits, now_ms),
            Message::Event(e) => event(g, e, &limits, &mut self.events, now_ms),
        };
        while self.events.len() > EVENTS_KEPT {
            self.events.pop_front();
        }
        match r {
            Ok(a) => {
                if a == Applied::Changed {
                    self.version = self.version.wrapping_add(1);
                }
                a
            }
            Err(cap) => {
                let r = Refusal::new(
                    bms_wire::Reason::TooMany,
                    format!("{topic}: over the [limits] cap of {cap}"),
                );
                self.cap(cap, &r, now_ms)
            }
        }
    }

    fn cap(&mut self, cap: &'static str, r: &Refusal, now_ms: i64) -> Applied {
        bump(self.counters.refused_by_cap.entry(cap).or_default());
        self.log("cap", r, now_ms)
    }

    /// The log line for a refusal, when one is due for this kind.
    fn log(&mut self, kind: &'static str, r: &Refusal, now_ms: i64) -> Applied {
        let gate = self.log_gates.entry(kind).or_default();
        if gate
            .last_ms
            .is_some_and(|last| now_ms.saturating_sub(last) < LOG_EVERY_MS)
        {
            bump(&mut gate.suppressed);
            return Applied::Refused(None);
        }
        let more = std::mem::take(&mut gate.suppressed);
        gate.last_ms = Some(now_ms);
        let mut text = r.to_string();
        if more > 0 {
            text.push_str(&format!(
                "; {more} more {kind} refusals since the last report"
            ));
        }
        Applied::Refused(Some(text))
    }

    /// The JSON the pages show (see `docs/api.md`, `GET /api/snapshot`).
    pub fn snapshot(&self, now_ms: i64, stale_after_ms: i64) -> Json {
        let mut sites = Vec::new();
        for (site, gws) in &self.sites {
            let mut gateways = Vec::new();
            let mut devices = Vec::new();
            let mut tickets = Vec::new();
            let mut alarms = Vec::new();
            for g in gws.values() {
                gateways.push(json!({
                    "id": g.id, "status": g.status, "version": g.version,
                    "started_at": g.started_at, "heard_ms": g.heard_ms, "seq": g.seq,
                    "devices": g.devices.len(),
                }));
                for d in g.devices.values() {
                    devices.push(device_json(g, d, now_ms, stale_after_ms));
                }
                for t in g.tickets.values() {
                    if t.state != TicketState::Closed {
                        tickets.push(ticket_json(site, g, t));
                    }
                }
                for ((dev, point), since) in &g.alarms {
                    let name = g.devices.get(dev).map(|d| (&d.name_zh, &d.name_en));
                    alarms.push(json!({
                        "gateway": g.id, "device": dev, "point": point, "since": since,
                        "name_zh": name.map(|n| n.0), "name_en": name.map(|n| n.1),
                    }));
                }
            }
            tickets.sort_by_key(|t| {
                (
                    t.get("severity").and_then(Json::as_str) != Some("critical"),
                    t.get("opened_ms").and_then(Json::as_i64).unwrap_or(0),
                )
            });
            let classes = class_figures(&devices);
            sites.push(json!({
                "id": site, "gateways": gateways, "devices": devices,
                "classes": classes, "tickets": tickets, "alarms": alarms,
            }));
        }
        json!({
            "now": now_ms,
            "version": self.version,
            "sites": sites,
            "rotate_sites": self.rotation,
            "counters": self.counters,
            "events": self.events,
        })
    }

    /// One device's JSON (with `stale` and `shown`), when known: devices
    /// are (site, gateway, device), so two gateways of a site may each have
    /// a device of the same id.
    pub fn device(
        &self,
        site: &str,
        gateway: &str,
        id: &str,
        now_ms: i64,
        stale_after_ms: i64,
    ) -> Option<Json> {
        let g = self.sites.get(site)?.get(gateway)?;
        let d = g.devices.get(id)?;
        let mut j = device_json(g, d, now_ms, stale_after_ms);
        j["quality"] = json!(d.quality);
        j["units"] = json!(d.units);
        j["tickets"] = Json::Array(
            g.tickets
                .values()
                .filter(|t| t.device == id)
                .map(|t| json!(t))
                .collect(),
        );
        Some(j)
    }

    /// A ticket by site and number: `(gateway, ticket)`. Numbers are per
    /// gateway; with several gateways on a site, `gateway` picks one.
    pub fn ticket(&self, site: &str, gateway: Option<&str>, n: u64) -> Option<(String, Json)> {
        let gws = self.sites.get(site)?;
        gws.values()
            .filter(|g| gateway.is_none_or(|w| w == g.id))
            .find_map(|g| {
                g.tickets
                    .get(&n)
                    .map(|t| (g.id.clone(), ticket_json(site, g, t)))
            })
    }

    /// Every ticket of every site (closed ones too), newest first (the
    /// pages order them by urgency themselves).
    pub fn all_tickets(&self) -> Vec<Json> {
        let mut all = Vec::new();
        for (site, gws) in &self.sites {
            for g in gws.values() {
                for t in g.tickets.values() {
                    all.push(ticket_json(site, g, t));
                }
            }
        }
        all.sort_by_key(|t| std::cmp::Reverse(t.get("opened_ms").and_then(Json::as_i64)));
        all
    }
}

/// The gateway, made when the caps allow.
fn gateway<'a>(
    sites: &'a mut BTreeMap<String, BTreeMap<String, Gateway>>,
    limits: &Limits,
    site: &str,
    gw: &str,
) -> Option<&'a mut Gateway> {
    if !sites.contains_key(site) && sites.len() >= limits.max_sites {
        return None;
    }
    let gws = sites.entry(site.to_owned()).or_default();
    if !gws.contains_key(gw) && gws.len() >= limits.max_gateways_per_site {
        return None;
    }
    Some(gws.entry(gw.to_owned()).or_insert_with(|| Gateway {
        id: gw.to_owned(),
        site: site.to_owned(),
        ..Gateway::default()
    }))
}

/// A ticket with its `site`, `gateway` and its device's display names
/// (`name_zh`, `name_en`; null for a device not heard of).
fn ticket_json(site: &str, g: &Gateway, t: &bms_wire::Ticket) -> Json {
    let name = g.devices.get(&t.device).map(|d| (&d.name_zh, &d.name_en));
    let mut t = json!(t);
    t["gateway"] = json!(g.id);
    t["site"] = json!(site);
    t["name_zh"] = json!(name.map(|n| n.0));
    t["name_en"] = json!(name.map(|n| n.1));
    t
}

fn device_json(g: &Gateway, d: &Device, now_ms: i64, stale_after_ms: i64) -> Json {
    let offline = g.status == Some(Online::Offline);
    let stale = offline || now_ms.saturating_sub(d.heard_ms) > stale_after_ms;
    let alarms: Vec<&str> = g
        .alarms
        .keys()
        .filter(|(dev, _)| *dev == d.id)
        .map(|(_, p)| p.as_str())
        .collect();
    let shown = if stale {
        "stale"
    } else {
        d.state.map_or("unknown", DeviceState::as_str)
    };
    json!({
        "id": d.id, "gateway": g.id, "class": d.class, "name_zh": d.name_zh,
        "name_en": d.name_en, "location": d.location, "state": d.state,
        "since": d.since, "reason": d.reason, "availability": d.availability,
        "points": d.points, "units": d.units, "telemetry_ts": d.telemetry_ts,
        "heard_ms": d.heard_ms, "stale": stale, "alarms": alarms,
        "shown": shown,
    })
}

/// Per class: counts by shown state, mean month-to-date availability of
/// its devices against the target, and the intact rate now (devices up ÷
/// devices up or down).
fn class_figures(devices: &[Json]) -> Json {
    let mut by: BTreeMap<String, Vec<&Json>> = BTreeMap::new();
    for d in devices {
        let c = d["class"].as_str().unwrap_or("other").to_owned();
        by.entry(c).or_default().push(d);
    }
    let mut out = Map::new();
    for (class, ds) in by {
        let count = |s: &str| ds.iter().filter(|d| d["shown"] == s).count();
        let months: Vec<f64> = ds
            .iter()
            .filter_map(|d| d["availability"]["month"].as_f64())
            .collect();
        let month = (!months.is_empty()).then(|| months.iter().sum::<f64>() / months.len() as f64);
        let target = ds
            .iter()
            .filter_map(|d| d["availability"]["threshold"].as_f64())
            .fold(None::<f64>, |m, t| Some(m.map_or(t, |m| m.max(t))));
        let (up, down) = (count("up"), count("down"));
        let intact = (up + down > 0).then(|| up as f64 / (up + down) as f64);
        out.insert(
            class,
            json!({
                "devices": ds.len(), "up": up, "down": down,
                "maintenance": count("maintenance"), "unknown": count("unknown"),
                "stale": count("stale"), "month": month, "target": target,
                "intact_now": intact,
                "below": month.zip(target).is_some_and(|(m, t)| m < t / 100.0),
            }),
        );
    }
    Json::Object(out)
}

/// The device, made when the devices cap allows; `Err` names the cap.
fn device<'a>(
    g: &'a mut Gateway,
    id: &str,
    limits: &Limits,
) -> Result<&'a mut Device, &'static str> {
    if !g.devices.contains_key(id) && g.devices.len() >= limits.max_devices_per_gateway {
        return Err("devices");
    }
    Ok(g.devices.entry(id.to_owned()).or_insert_with(|| Device {
        id: id.to_owned(),
        ..Device::default()
    }))
}

/// Applies a status; true when it shows a restart (a new `started_at`).
fn status(g: &mut Gateway, m: &Status, now_ms: i64) -> bool {
    let restarted = match (g.started_at, m.started_at) {
        (Some(old), Some(new)) => new != old && m.state == Online::Online,
        (None, _) | (_, None) => false,
    };
    if restarted || g.window.anchor.is_none() && g.window.high == 0 {
        g.window.restart(m.seq);
    }
    // Order statuses by their time (the last will carries the connect
    // time); a time implausibly far ahead of the local clock orders nothing.
    let believable = g
        .status_ts
        .is_some_and(|old| old <= now_ms.saturating_add(FUTURE_SKEW_MS));
    if !restarted && believable && g.status_ts.is_some_and(|old| m.ts < old) {
        return false;
    }
    g.status = Some(m.state);
    g.status_ts = Some(m.ts);
    g.version.clone_from(&m.version);
    if m.started_at.is_some() {
        g.started_at = m.started_at;
    }
    restarted
}

fn alarm(
    g: &mut Gateway,
    a: &Alarm,
    limits: &Limits,
    events: &mut VecDeque<Json>,
) -> Result<Applied, &'static str> {
    let key = (a.device.clone(), a.point.clone());
    if a.active {
        if !g.alarms.contains_key(&key) && g.alarms.len() >= limits.max_devices_per_gateway {
            return Err("alarms");
        }
        g.alarms.insert(key, a.at);
    } else {
        g.alarms.remove(&key);
    }
    events.push_back(json!({"type": "alarm", "site": g.site, "gateway": g.id, "device": a.device, "point": a.point, "active": a.active, "at": a.at}));
    Ok(Applied::Changed)
}

fn ticket(
    g: &mut Gateway,
    m: TicketMsg,
    retained: bool,
    limits: &Limits,
) -> Result<Applied, &'static str> {
    let n = m.ticket.id;
    if retained && g.ticket_seq.get(&n).is_some_and(|&s| s >= m.seq) {
        return Ok(Applied::Ignored);
    }
    if !g.tickets.contains_key(&n) && g.tickets.len() >= limits.max_tickets_per_gateway {
        return Err("tickets");
    }
    g.ticket_seq.insert(n, m.seq);
    g.tickets.insert(n, m.ticket);
    // Forget the oldest closed tickets beyond the limit.
    let closed: Vec<u64> = g
        .tickets
        .iter()
        .filter(|(_, t)| t.state == TicketState::Closed)
        .map(|(n, _)| *n)
        .collect();
    if closed.len() > CLOSED_TICKETS_KEPT {
        for n in &closed[..closed.len() - CLOSED_TICKETS_KEPT] {
            g.tickets.remove(n);
            g.ticket_seq.remove(n);
        }
    }
    Ok(Applied::Changed)
}

fn telemetry(
    g: &mut Gateway,
    m: Telemetry,
    limits: &Limits,
    now_ms: i64,
) -> Result<Applied, &'static str> {
    let d = device(g, &m.device, limits)?;
    let new = m
        .points
        .keys()
        .filter(|k| !d.points.contains_key(*k))
        .count();
    if d.points.len() + new > limits.max_points_per_device {
        return Err("points");
    }
    if let Some(c) = m.class {
        d.class = c;
    }
    for (k, p) in m.points {
        d.quality.remove(&k);
        d.points.insert(k, p);
    }
    // Units and qualities only of points held: bounded by the points cap.
    for (k, unit) in m.units {
        if d.points.contains_key(&k) {
            d.units.insert(k, unit);
        }
    }
    for (k, why) in m.quality {
        if d.points.contains_key(&k) {
            d.quality.insert(k, why);
        }
    }
    d.telemetry_ts = Some(m.ts);
    d.heard_ms = now_ms;
    Ok(Applied::Changed)
}

fn state(
    g: &mut Gateway,
    m: State,
    retained: bool,
    limits: &Limits,
    now_ms: i64,
) -> Result<Applied, &'static str> {
    let d = device(g, &m.device, limits)?;
    if retained && d.state_seq >= m.seq && d.state.is_some() {
        return Ok(Applied::Ignored);
    }
    d.state_seq = m.seq;
    d.state = Some(m.state);
    d.since = m.since;
    d.reason = m.reason;
    d.availability = m.availability;
    for (v, f) in [
        (m.class, &mut d.class),
        (m.name_zh, &mut d.name_zh),
        (m.name_en, &mut d.name_en),
        (m.location, &mut d.location),
    ] {
        if let Some(v) = v {
            *f = v;
        }
    }
    d.heard_ms = now_ms;
    // The retained state lists the device's active hard alarms: what the
    // live `alarm` messages said before a restart of the dashboard.
    if let Some(list) = m.alarms {
        let dev = m.device;
        let others = g.alarms.keys().filter(|(d, _)| *d != dev).count();
        if others + list.len() > limits.max_devices_per_gateway {
            return Err("alarms");
        }
        g.alarms.retain(|(d, _), _| *d != dev);
        for a in list {
            g.alarms.insert((dev.clone(), a.point), a.since);
        }
    }
    Ok(Applied::Changed)
}

fn event(
    g: &mut Gateway,
    e: Event,
    limits: &Limits,
    events: &mut VecDeque<Json>,
    now_ms: i64,
) -> Result<Applied, &'static str> {
    let dev = match &e {
        Event::Transition(t) => &t.device,
        Event::Threshold(t) => &t.device,
    };
    let d = device(g, dev, limits)?;
    d.heard_ms = now_ms;
    if let Event::Transition(t) = &e {
        d.state = Some(t.to);
        d.since = Some(t.at);
        d.reason.clone_from(&t.reason);
        let mut j = json!(e);
        j["site"] = json!(g.site);
        j["gateway"] = json!(g.id);
        events.push_back(j);
    }
    Ok(Applied::Changed)
}

/// The counters in the Prometheus text format (`GET /metrics`), grouped
/// per metric: `# HELP`, `# TYPE`, then its samples.
pub fn prometheus(c: &Counters, extra: &[(&str, &str, u64)]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut one = |name: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP bms_dashboard_{name} {help}");
        let _ = writeln!(out, "# TYPE bms_dashboard_{name} counter");
        for (labels, v) in samples {
            let _ = writeln!(out, "bms_dashboard_{name}{labels} {v}");
        }
    };
    let plain = |v: u64| [(String::new(), v)];
    one("messages_total", "MQTT messages taken.", &plain(c.messages));
    one(
        "malformed_total",
        "Payloads refused as not what docs/mqtt.md says, by kind and reason.",
        &c.malformed_by_kind
            .iter()
            .flat_map(|(k, rs)| {
                rs.iter()
                    .map(move |(r, v)| (format!("{{kind=\"{k}\",reason=\"{r}\"}}"), *v))
            })
            .collect::<Vec<_>>(),
    );
    one(
        "unknown_topics_total",
        "Topics under the prefix that are not in docs/mqtt.md.",
        &plain(c.unknown_topics),
    );
    one(
        "not_allowed_total",
        "Messages of a site or gateway outside the allow-list.",
        &plain(c.not_allowed),
    );
    one(
        "refused_by_cap_total",
        "Messages refused by a [limits] cap, by cap.",
        &c.refused_by_cap
            .iter()
            .map(|(k, v)| (format!("{{cap=\"{k}\"}}"), *v))
            .collect::<Vec<_>>(),
    );
    for (name, help, v) in [
        (
            "duplicates_total",
            "Live messages dropped as resends.",
            c.duplicates,
        ),
        ("gaps_total", "Jumps in seq.", c.gaps),
        (
            "missing_total",
            "Sequence numbers missing in jumps.",
            c.missing,
        ),
        (
            "seq_jumps_refused_total",
            "Live messages whose seq jumped beyond the bound, not believed.",
            c.seq_jumps_refused,
        ),
        (
            "seq_rollbacks_total",
            "Live messages whose seq fell beyond the bound, believed as a new numbering.",
            c.seq_rollbacks,
        ),
        (
            "seq_restarts_total",
            "Gateway restarts seen (status with a new started_at).",
            c.seq_restarts,
        ),
        ("replies_total", "Command replies received.", c.replies),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    {
        one(name, help, &plain(v));
    }
    out
}

#[cfg(test)]
mod tests;
