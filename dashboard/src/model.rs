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
    /// The location in English (the state's `location_en`; empty: none).
    pub location_en: String,
    /// The label of a `rule:…` reason, `[zh, en]`.
    pub reason_label: Option<bms_wire::LabelPair>,
    /// Point and rule labels from the retained state (bounded by the
    /// points cap).
    pub labels: bms_wire::Labels,
    /// Gateway time of the latest state (its month figure's time).
    pub state_ts: Option<i64>,
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
    /// The site's display names, as this gateway's status gives them.
    pub site_name_zh: Option<String>,
    pub site_name_en: Option<String>,
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
            Message::Ticket(m) => ticket(g, *m, retained, &limits),
            Message::Telemetry(m) => telemetry(g, m, &limits, now_ms),
            Message::State(m) => state(g, *m, retained, &limits, now_ms),
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
            short_names(&mut devices);
            let classes = class_figures(&devices);
            let name = |f: fn(&Gateway) -> &Option<String>| gws.values().find_map(|g| f(g).clone());
            sites.push(json!({
                "id": site, "name_zh": name(|g| &g.site_name_zh),
                "name_en": name(|g| &g.site_name_en),
                "gateways": gateways, "devices": devices,
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
    let dev = g.devices.get(&t.device);
    let mut t = json!(t);
    t["gateway"] = json!(g.id);
    t["site"] = json!(site);
    // A gateway that predates ticket facts: the names from the device's state.
    if let Some(d) = dev {
        if !t["facts"].is_object() {
            t["facts"] = json!({});
        }
        for (k, v) in [
            ("device_zh", &d.name_zh),
            ("device_en", &d.name_en),
            ("location_zh", &d.location),
            ("location_en", &d.location_en),
        ] {
            if t["facts"][k].is_null() && !v.is_empty() {
                t["facts"][k] = json!(v);
            }
        }
        if let Some(p) = t["kind"].as_str().and_then(|k| k.strip_prefix("alarm:"))
            && let Some([zh, en]) = d.labels.points.get(p)
            && t["facts"]["point_zh"].is_null()
        {
            t["facts"]["point_zh"] = json!(zh);
            t["facts"]["point_en"] = json!(en);
        }
    }
    t["name_zh"] = json!(dev.map(|d| &d.name_zh));
    t["name_en"] = json!(dev.map(|d| &d.name_en));
    t
}

/// Tile names (`short_zh`, `short_en`) for the devices of each class: a
/// name part shared by every device of the class is dropped when what is
/// left still tells them apart (see [`shorten`]). The full names stay.
fn short_names(devices: &mut [Json]) {
    let mut by: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, d) in devices.iter().enumerate() {
        by.entry(d["class"].as_str().unwrap_or("").to_owned())
            .or_default()
            .push(i);
    }
    for idx in by.values() {
        for (lang, key, out) in [
            (Lang::Zh, "name_zh", "short_zh"),
            (Lang::En, "name_en", "short_en"),
        ] {
            let names: Vec<String> = idx
                .iter()
                .map(|&i| devices[i][key].as_str().unwrap_or("").to_owned())
                .collect();
            for (&i, short) in idx.iter().zip(shorten(&names, lang)) {
                devices[i][out] = json!(short);
            }
        }
    }
}

/// How a name splits into parts: Chinese by characters, English by words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

/// Shorter names for devices shown side by side under their class
/// heading. With two or more names, the longest leading part shared by all
/// is dropped (English: whole words, keeping the last shared word, so
/// `Domestic water pump 1` / `… 2` become `Pump 1` / `Pump 2`; Chinese: at
/// least two characters, leaving at least two); without one, the longest
/// trailing part shared by all (`大堂风机盘管` / `办公室风机盘管` →
/// `大堂` / `办公室`). Nothing is dropped unless every short name is
/// non-empty and they are all different; a single name stays whole.
pub fn shorten(names: &[String], lang: Lang) -> Vec<String> {
    let whole = names.to_vec();
    if names.len() < 2 {
        return whole;
    }
    let parts: Vec<Vec<String>> = names
        .iter()
        .map(|n| match lang {
            Lang::Zh => n.chars().map(String::from).collect(),
            Lang::En => n.split_whitespace().map(str::to_owned).collect(),
        })
        .collect();
    let join = |p: &[String]| match lang {
        Lang::Zh => p.concat(),
        Lang::En => p.join(" "),
    };
    let shortest = parts.iter().map(Vec::len).min().unwrap_or(0);
    let common = |at: &dyn Fn(&Vec<String>, usize) -> String| {
        (0..shortest)
            .take_while(|&i| parts.iter().all(|p| at(p, i) == at(&parts[0], i)))
            .count()
    };
    let prefix = common(&|p, i| p[i].clone());
    let suffix = common(&|p, i| p[p.len() - 1 - i].clone());
    let (min_drop, min_left) = match lang {
        Lang::Zh => (2, 2),
        Lang::En => (1, 1),
    };
    let tidy = |s: String| -> String {
        let s = s.trim_matches(|c: char| c == ',' || c == '，' || c.is_whitespace());
        let mut c = s.chars();
        match (lang, c.next()) {
            (Lang::En, Some(f)) => f.to_uppercase().chain(c).collect(),
            _ => s.to_owned(),
        }
    };
    let candidates: Vec<Vec<String>> = [
        // Drop the prefix (English keeps its last word for context).
        (prefix >= min_drop).then(|| {
            let keep = if lang == Lang::En { 1 } else { 0 };
            parts
                .iter()
                .map(|p| tidy(join(&p[prefix - keep..])))
                .collect()
        }),
        (suffix >= min_drop).then(|| {
            parts
                .iter()
                .map(|p| tidy(join(&p[..p.len() - suffix])))
                .collect()
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    for c in candidates {
        let distinct: std::collections::BTreeSet<&String> = c.iter().collect();
        let long_enough = c.iter().all(|s| s.chars().count() >= min_left);
        let shorter = c.iter().zip(names).any(|(s, n)| s.len() < n.len());
        if distinct.len() == c.len() && long_enough && shorter {
            return c;
        }
    }
    whole
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
        "name_en": d.name_en, "location": d.location, "location_en": d.location_en,
        "state": d.state, "state_ts": d.state_ts, "labels": d.labels,
        "since": d.since, "reason": d.reason, "reason_label": d.reason_label,
        "availability": d.availability,
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
    g.site_name_zh.clone_from(&m.site_name_zh);
    g.site_name_en.clone_from(&m.site_name_en);
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
    d.reason_label = m.reason_label;
    d.availability = m.availability;
    d.state_ts = Some(m.ts);
    if let Some(mut l) = m.labels {
        let cap = limits.max_points_per_device;
        if l.points.len() > cap {
            l.points = l.points.into_iter().take(cap).collect();
        }
        if l.rules.len() > cap {
            l.rules = l.rules.into_iter().take(cap).collect();
        }
        d.labels = l;
    }
    for (v, f) in [
        (m.class, &mut d.class),
        (m.name_zh, &mut d.name_zh),
        (m.name_en, &mut d.name_en),
        (m.location, &mut d.location),
        (m.location_en, &mut d.location_en),
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

/// What one device contributes to its class's month figures.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DeviceMonth {
    /// The month-to-date availability of its latest state (0–1).
    pub month: Option<f64>,
    /// Its target, per cent.
    pub threshold: f64,
    /// Gateway time of that state.
    pub state_ts: Option<i64>,
    /// Shown down now.
    pub down_now: bool,
    /// Month-to-date Up and Down time of that state, ms (newer gateways).
    pub up_ms: Option<i64>,
    pub down_ms: Option<i64>,
}

/// A class's downtime budget for the month (`docs/availability.md`,
/// "Downtime left this month"), all in ms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    /// Downtime so far this month, summed over the class's devices.
    pub down_ms: i64,
    /// Downtime the class may have in the whole month and still meet its
    /// target: Σ (1 − target) × month length.
    pub allowed_ms: i64,
    /// `allowed_ms − down_ms` (negative: the target is already missed).
    pub left_ms: i64,
    /// The class's month-to-date availability now (mean of its devices').
    pub month_now: Option<f64>,
}

impl Budget {
    /// `ok`, `amber` (less than half the allowance left), `red` (less than
    /// a tenth), `missed` (none left).
    pub fn level(&self) -> &'static str {
        if self.left_ms <= 0 {
            "missed"
        } else if self.left_ms * 10 < self.allowed_ms {
            "red"
        } else if self.left_ms * 2 < self.allowed_ms {
            "amber"
        } else {
            "ok"
        }
    }
}

/// The budget of a class over the month `[start, end)` at `now`: each
/// device's downtime so far is the Down time its state gives (an older
/// gateway's state without it: (1 − its month availability) × the time
/// from the 1st to the state), plus, while it is down, the time since that
/// state (so the figure moves the moment a tile turns red, not at the next
/// state). A state from before the 1st says nothing of this month. None
/// when no device has a month figure and none is down (no data).
pub fn budget(devs: &[DeviceMonth], start: i64, end: i64, now: i64) -> Option<Budget> {
    if end <= start || !devs.iter().any(|d| d.month.is_some() || d.down_now) {
        return None;
    }
    let now = now.clamp(start, end);
    let mut down = 0i64;
    let mut allowed = 0i64;
    let mut months = Vec::new();
    for d in devs {
        let at = d.state_ts.filter(|t| (start..=now).contains(t));
        let (base, known, d0) = match (at, d.month) {
            (Some(t), _) if d.down_ms.is_some() => {
                let down = d.down_ms.unwrap_or(0).max(0);
                (t, down + d.up_ms.unwrap_or(0).max(0), down)
            }
            (Some(t), Some(m)) => (
                t,
                t - start,
                ((1.0 - m.clamp(0.0, 1.0)) * (t - start) as f64).round() as i64,
            ),
            (Some(t), None) => (t, 0, 0),
            (None, _) => (start, 0, 0),
        };
        let extra = if d.down_now { now - base } else { 0 };
        let dd = d0 + extra;
        let elapsed = known
            + if d.down_now || d.month.is_some() {
                now - base
            } else {
                0
            };
        if elapsed > 0 {
            months.push(1.0 - dd as f64 / elapsed as f64);
        }
        down += dd;
        let t = d.threshold.clamp(0.0, 100.0);
        allowed += ((1.0 - t / 100.0) * (end - start) as f64).round() as i64;
    }
    let month_now = (!months.is_empty()).then(|| months.iter().sum::<f64>() / months.len() as f64);
    Some(Budget {
        down_ms: down,
        allowed_ms: allowed,
        left_ms: allowed - down,
        month_now,
    })
}

/// Adds each class's budget (`downtime_ms`, `allowed_ms`, `left_ms`,
/// `budget_level`, `month_now`) to the sites of a snapshot, for the month
/// to date of `now_ms` in `tz`.
pub fn add_month_figures(snap: &mut Json, tz: chrono_tz::Tz, now_ms: i64) {
    let (start, _) = gateway_core::ledger::month_to_date(tz, now_ms);
    let (y, m) = gateway_core::ledger::month_of(tz, now_ms);
    let Ok((_, end)) = gateway_core::ledger::month_window(tz, y, m) else {
        return;
    };
    let Some(sites) = snap["sites"].as_array_mut() else {
        return;
    };
    for site in sites {
        let mut by: BTreeMap<String, Vec<DeviceMonth>> = BTreeMap::new();
        for d in site["devices"].as_array().into_iter().flatten() {
            by.entry(d["class"].as_str().unwrap_or("other").to_owned())
                .or_default()
                .push(DeviceMonth {
                    month: d["availability"]["month"].as_f64(),
                    threshold: d["availability"]["threshold"].as_f64().unwrap_or(100.0),
                    state_ts: d["state_ts"].as_i64(),
                    down_now: d["shown"] == "down",
                    up_ms: d["availability"]["month_up_s"].as_i64().map(|s| s * 1000),
                    down_ms: d["availability"]["month_down_s"].as_i64().map(|s| s * 1000),
                });
        }
        for (class, devs) in by {
            let f = &mut site["classes"][&class];
            if !f.is_object() {
                continue;
            }
            match budget(&devs, start, end, now_ms) {
                Some(b) => {
                    f["downtime_ms"] = json!(b.down_ms);
                    f["allowed_ms"] = json!(b.allowed_ms);
                    f["left_ms"] = json!(b.left_ms);
                    f["budget_level"] = json!(b.level());
                    f["month_now"] = json!(b.month_now);
                }
                None => f["left_ms"] = Json::Null,
            }
        }
    }
}
