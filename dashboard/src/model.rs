//! The live picture: every site, gateway, device, ticket and active alarm
//! learnt from the gateways' MQTT messages (schema: `docs/mqtt.md`).
//!
//! [`Model::apply`] takes one message; [`Model::snapshot`] gives the JSON the
//! pages and the API show. Retained messages (status, state, tickets) make a
//! restarted dashboard recover the picture at once.
//!
//! Sequence numbers: each gateway numbers its messages; a live message
//! whose `seq` is not above the highest seen is a resend and is dropped
//! (counted as a duplicate), a jump counts the missing numbers as a gap.
//! Retained messages replayed at subscription carry old numbers in any
//! order, so they are checked per topic only and never count as gaps.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;
use serde_json::{Map, Value as Json, json};

/// Closed tickets kept per gateway (the oldest are forgotten first).
const CLOSED_TICKETS_KEPT: usize = 100;
/// Recent events kept for the pages.
const EVENTS_KEPT: usize = 50;

/// Counters of what arrived, for `/api/health` and `/metrics`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counters {
    /// Messages taken.
    pub messages: u64,
    /// Payloads that were not what `docs/mqtt.md` says (not JSON, wrong shape).
    pub malformed: u64,
    /// Topics under the prefix this dashboard does not know.
    pub unknown_topics: u64,
    /// Live messages dropped because their `seq` was not new (resends).
    pub duplicates: u64,
    /// Jumps in `seq`.
    pub gaps: u64,
    /// Sequence numbers missing in those jumps.
    pub missing: u64,
    /// Command replies received and well signed by the gateway of their
    /// topic (the model only takes their `seq`).
    pub replies: u64,
    /// `…/cmd/reply` messages not believed, by reason (`bad_signature`,
    /// `unsigned`, `wrong_topic`, …; see `docs/commands.md`).
    pub replies_refused: BTreeMap<&'static str, u64>,
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
    pub state: Option<String>,
    pub since: Option<i64>,
    pub reason: Option<String>,
    /// The state payload's `availability` object.
    pub availability: Option<Json>,
    /// Latest value of each point.
    pub points: BTreeMap<String, Json>,
    pub units: BTreeMap<String, String>,
    /// Points whose quality is not good, with why.
    pub quality: BTreeMap<String, Json>,
    /// Gateway time of the latest telemetry.
    pub telemetry_ts: Option<i64>,
    /// Local time (ms) the dashboard last heard of this device.
    pub heard_ms: i64,
    #[serde(skip)]
    state_seq: u64,
}

/// One gateway.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Gateway {
    pub id: String,
    pub site: String,
    /// `online` / `offline` (None: no status seen).
    pub status: Option<String>,
    pub version: Option<String>,
    pub started_at: Option<i64>,
    pub status_ts: Option<i64>,
    /// Local time (ms) of the latest message from it.
    pub heard_ms: i64,
    /// Highest live `seq` seen.
    pub seq: u64,
    pub devices: BTreeMap<String, Device>,
    /// Tickets by number, as last published.
    pub tickets: BTreeMap<u64, Json>,
    /// Active hard alarms: (device, point) → since (gateway ms).
    #[serde(skip)]
    pub alarms: BTreeMap<(String, String), i64>,
    #[serde(skip)]
    ticket_seq: BTreeMap<u64, u64>,
}

/// What [`Model::apply`] did with a message.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    /// The picture changed.
    Changed,
    /// Nothing to show (a resend, a command going out, another site).
    Ignored,
    /// Counted as malformed; the reason for the log.
    Malformed(String),
}

/// The live picture.
#[derive(Debug, Default)]
pub struct Model {
    prefix: String,
    sites_filter: Vec<String>,
    /// site → gateway id → gateway.
    pub sites: BTreeMap<String, BTreeMap<String, Gateway>>,
    pub counters: Counters,
    /// Recent transitions and alarms, newest last.
    pub events: VecDeque<Json>,
    /// Bumped at every change.
    pub version: u64,
}

impl Model {
    /// An empty picture for topics under `prefix`, limited to `sites` when not empty.
    pub fn new(prefix: &str, sites: Vec<String>) -> Model {
        Model {
            prefix: prefix.to_owned(),
            sites_filter: sites,
            ..Model::default()
        }
    }

    /// Takes one message; `retained` is the MQTT retain flag as delivered,
    /// `now_ms` the local clock.
    pub fn apply(&mut self, topic: &str, payload: &[u8], retained: bool, now_ms: i64) -> Applied {
        let Some(rest) = topic
            .strip_prefix(self.prefix.as_str())
            .and_then(|r| r.strip_prefix('/'))
        else {
            self.counters.unknown_topics += 1;
            return Applied::Ignored;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() < 3 {
            self.counters.unknown_topics += 1;
            return Applied::Ignored;
        }
        let (site, gw) = (parts[0], parts[1]);
        if !self.sites_filter.is_empty() && !self.sites_filter.iter().any(|s| s == site) {
            return Applied::Ignored;
        }
        // Commands going to a gateway (ours or another sender's): not news.
        if parts[2] == "cmd" && parts.get(3) != Some(&"reply") {
            return Applied::Ignored;
        }
        self.counters.messages += 1;
        if payload.is_empty() {
            // A cleared retained topic.
            return Applied::Ignored;
        }
        let v: Json = match serde_json::from_slice(payload) {
            Ok(v @ Json::Object(_)) => v,
            Ok(_) => return self.malformed(topic, "the payload is not a JSON object"),
            Err(e) => return self.malformed(topic, &format!("not JSON: {e}")),
        };
        let seq = v.get("seq").and_then(Json::as_u64);
        let kind = match parts[2..] {
            ["status"] => Kind::Status,
            ["alarm"] => Kind::Alarm,
            ["cmd", "reply"] => Kind::Reply,
            ["tickets", id] => match id.parse::<u64>() {
                Ok(n) => Kind::Ticket(n),
                Err(_) => return self.malformed(topic, "the ticket number is not a number"),
            },
            [dev, "telemetry"] => Kind::Telemetry(dev),
            [dev, "state"] => Kind::State(dev),
            [dev, "event"] => Kind::Event(dev),
            _ => {
                self.counters.unknown_topics += 1;
                return Applied::Ignored;
            }
        };
        if !matches!(kind, Kind::Status) && seq.is_none() {
            return self.malformed(topic, "no seq");
        }
        // The shape first: a malformed message must not move the numbering.
        if let Err(why) = validate(&kind, &v) {
            return self.malformed(topic, why);
        }
        let g = self
            .sites
            .entry(site.to_owned())
            .or_default()
            .entry(gw.to_owned())
            .or_insert_with(|| Gateway {
                id: gw.to_owned(),
                site: site.to_owned(),
                ..Gateway::default()
            });
        g.heard_ms = now_ms;
        // Live numbering.
        if let (false, Some(seq), false) = (retained, seq, matches!(kind, Kind::Status)) {
            if seq <= g.seq {
                self.counters.duplicates += 1;
                return Applied::Ignored;
            }
            if g.seq > 0 && seq > g.seq + 1 {
                self.counters.gaps += 1;
                self.counters.missing += seq - g.seq - 1;
            }
            g.seq = seq;
        }
        let seq = seq.unwrap_or(0);
        let r = match kind {
            Kind::Status => status(g, &v),
            Kind::Alarm => alarm(g, &v, &mut self.events),
            // Checked and handed to its command before the model
            // (`commands::on_reply`); only its numbering matters here.
            Kind::Reply => {
                self.counters.replies += 1;
                Ok(Applied::Ignored)
            }
            Kind::Ticket(n) => ticket(g, n, seq, &v),
            Kind::Telemetry(d) => telemetry(g, d, &v, now_ms),
            Kind::State(d) => state(g, d, seq, &v, now_ms),
            Kind::Event(d) => event(g, d, &v, &mut self.events, now_ms),
        };
        while self.events.len() > EVENTS_KEPT {
            self.events.pop_front();
        }
        match r {
            Ok(a) => {
                if a == Applied::Changed {
                    self.version += 1;
                }
                a
            }
            Err(why) => self.malformed(topic, why),
        }
    }

    fn malformed(&mut self, topic: &str, why: &str) -> Applied {
        self.counters.malformed += 1;
        Applied::Malformed(format!("{topic}: {why}"))
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
                let offline = g.status.as_deref() == Some("offline");
                gateways.push(json!({
                    "id": g.id, "status": g.status, "version": g.version,
                    "started_at": g.started_at, "heard_ms": g.heard_ms, "seq": g.seq,
                    "devices": g.devices.len(),
                }));
                for d in g.devices.values() {
                    devices.push(device_json(g, d, offline, now_ms, stale_after_ms));
                }
                for t in g.tickets.values() {
                    if t.get("state").and_then(Json::as_str) != Some("closed") {
                        let mut t = t.clone();
                        t["gateway"] = json!(g.id);
                        t["site"] = json!(site);
                        tickets.push(t);
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
            "counters": self.counters,
            "events": self.events,
        })
    }

    /// One device's JSON (with `stale` and `shown`), when known.
    pub fn device(&self, site: &str, id: &str, now_ms: i64, stale_after_ms: i64) -> Option<Json> {
        let gws = self.sites.get(site)?;
        for g in gws.values() {
            if let Some(d) = g.devices.get(id) {
                let offline = g.status.as_deref() == Some("offline");
                let mut j = device_json(g, d, offline, now_ms, stale_after_ms);
                j["quality"] = json!(d.quality);
                j["units"] = json!(d.units);
                j["tickets"] = Json::Array(
                    g.tickets
                        .values()
                        .filter(|t| t.get("device").and_then(Json::as_str) == Some(id))
                        .cloned()
                        .collect(),
                );
                return Some(j);
            }
        }
        None
    }

    /// A ticket by site and number: `(gateway, ticket)`. Numbers are per
    /// gateway; with several gateways on a site, `gateway` picks one.
    pub fn ticket(&self, site: &str, gateway: Option<&str>, n: u64) -> Option<(String, Json)> {
        let gws = self.sites.get(site)?;
        gws.values()
            .filter(|g| gateway.is_none_or(|w| w == g.id))
            .find_map(|g| g.tickets.get(&n).map(|t| (g.id.clone(), t.clone())))
    }

    /// Every ticket of every site (closed ones too), newest first.
    pub fn all_tickets(&self) -> Vec<Json> {
        let mut all = Vec::new();
        for (site, gws) in &self.sites {
            for g in gws.values() {
                for t in g.tickets.values() {
                    let mut t = t.clone();
                    t["gateway"] = json!(g.id);
                    t["site"] = json!(site);
                    all.push(t);
                }
            }
        }
        all.sort_by_key(|t| std::cmp::Reverse(t.get("opened_ms").and_then(Json::as_i64)));
        all
    }
}

enum Kind<'a> {
    Status,
    Alarm,
    Reply,
    Ticket(u64),
    Telemetry(&'a str),
    State(&'a str),
    Event(&'a str),
}

/// The fields each kind of message needs (`docs/mqtt.md`).
fn validate(kind: &Kind<'_>, v: &Json) -> Result<(), &'static str> {
    let s = |k: &str| v.get(k).and_then(Json::as_str);
    let one_of = |k: &str, allowed: &[&str]| s(k).is_some_and(|x| allowed.contains(&x));
    match kind {
        Kind::Status if !one_of("state", &["online", "offline"]) => {
            Err("status without state online/offline")
        }
        Kind::Alarm
            if s("device").is_none()
                || s("point").is_none()
                || v.get("active").and_then(Json::as_bool).is_none() =>
        {
            Err("alarm without device, point or active")
        }
        Kind::Ticket(n) => {
            let t = v.get("ticket").ok_or("ticket message without ticket")?;
            if t.get("id").and_then(Json::as_u64) != Some(*n) {
                Err("the ticket's id is not the one in the topic")
            } else if t.get("state").and_then(Json::as_str).is_none() {
                Err("ticket without state")
            } else {
                Ok(())
            }
        }
        Kind::Telemetry(_) if v.get("points").and_then(Json::as_object).is_none() => {
            Err("telemetry without points")
        }
        Kind::State(_) if !one_of("state", &["up", "down", "maintenance", "unknown"]) => {
            Err("state without up/down/maintenance/unknown")
        }
        Kind::Event(_) if s("type").is_none() => Err("event without type"),
        Kind::Event(_) if s("type") == Some("transition") && s("to").is_none() => {
            Err("transition without to")
        }
        _ => Ok(()),
    }
}

fn device_json(g: &Gateway, d: &Device, offline: bool, now_ms: i64, stale_after_ms: i64) -> Json {
    let stale = offline || now_ms - d.heard_ms > stale_after_ms;
    let alarms: Vec<&str> = g
        .alarms
        .keys()
        .filter(|(dev, _)| *dev == d.id)
        .map(|(_, p)| p.as_str())
        .collect();
    json!({
        "id": d.id, "gateway": g.id, "class": d.class, "name_zh": d.name_zh,
        "name_en": d.name_en, "location": d.location, "state": d.state,
        "since": d.since, "reason": d.reason, "availability": d.availability,
        "points": d.points, "units": d.units, "telemetry_ts": d.telemetry_ts,
        "heard_ms": d.heard_ms, "stale": stale, "alarms": alarms,
        "shown": if stale { "stale" } else { d.state.as_deref().unwrap_or("unknown") },
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

fn device<'a>(g: &'a mut Gateway, id: &str) -> &'a mut Device {
    g.devices.entry(id.to_owned()).or_insert_with(|| Device {
        id: id.to_owned(),
        ..Device::default()
    })
}

fn status(g: &mut Gateway, v: &Json) -> Result<Applied, &'static str> {
    let st = v
        .get("state")
        .and_then(Json::as_str)
        .filter(|s| ["online", "offline"].contains(s))
        .ok_or("status without state online/offline")?;
    let ts = v.get("ts").and_then(Json::as_i64);
    // Order statuses by their time (the last will carries the connect time).
    if let (Some(old), Some(new)) = (g.status_ts, ts)
        && new < old
    {
        return Ok(Applied::Ignored);
    }
    g.status = Some(st.to_owned());
    g.status_ts = ts;
    g.version = v.get("version").and_then(Json::as_str).map(str::to_owned);
    g.started_at = v.get("started_at").and_then(Json::as_i64);
    Ok(Applied::Changed)
}

fn alarm(g: &mut Gateway, v: &Json, events: &mut VecDeque<Json>) -> Result<Applied, &'static str> {
    let dev = v
        .get("device")
        .and_then(Json::as_str)
        .ok_or("alarm without device")?;
    let point = v
        .get("point")
        .and_then(Json::as_str)
        .ok_or("alarm without point")?;
    let active = v
        .get("active")
        .and_then(Json::as_bool)
        .ok_or("alarm without active")?;
    let at = v.get("at").and_then(Json::as_i64).unwrap_or(0);
    let key = (dev.to_owned(), point.to_owned());
    if active {
        g.alarms.insert(key, at);
    } else {
        g.alarms.remove(&key);
    }
    events.push_back(json!({"type": "alarm", "site": g.site, "gateway": g.id, "device": dev, "point": point, "active": active, "at": at}));
    Ok(Applied::Changed)
}

fn ticket(g: &mut Gateway, n: u64, seq: u64, v: &Json) -> Result<Applied, &'static str> {
    let t = v
        .get("ticket")
        .filter(|t| t.is_object())
        .ok_or("ticket message without ticket")?;
    if t.get("id").and_then(Json::as_u64) != Some(n) {
        return Err("the ticket's id is not the one in the topic");
    }
    if t.get("state").and_then(Json::as_str).is_none() {
        return Err("ticket without state");
    }
    if g.ticket_seq.get(&n).is_some_and(|&s| s >= seq) {
        return Ok(Applied::Ignored);
    }
    g.ticket_seq.insert(n, seq);
    g.tickets.insert(n, t.clone());
    // Forget the oldest closed tickets beyond the limit.
    let closed: Vec<u64> = g
        .tickets
        .iter()
        .filter(|(_, t)| t.get("state").and_then(Json::as_str) == Some("closed"))
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

fn telemetry(g: &mut Gateway, dev: &str, v: &Json, now_ms: i64) -> Result<Applied, &'static str> {
    let points = v
        .get("points")
        .and_then(Json::as_object)
        .ok_or("telemetry without points")?;
    let d = device(g, dev);
    if let Some(c) = v.get("class").and_then(Json::as_str) {
        c.clone_into(&mut d.class);
    }
    for (k, p) in points {
        d.points.insert(k.clone(), p.clone());
        d.quality.remove(k);
    }
    if let Some(u) = v.get("units").and_then(Json::as_object) {
        for (k, unit) in u {
            if let Some(unit) = unit.as_str() {
                d.units.insert(k.clone(), unit.to_owned());
            }
        }
    }
    if let Some(q) = v.get("quality").and_then(Json::as_object) {
        for (k, why) in q {
            d.quality.insert(k.clone(), why.clone());
        }
    }
    d.telemetry_ts = v.get("ts").and_then(Json::as_i64);
    d.heard_ms = now_ms;
    Ok(Applied::Changed)
}

fn state(
    g: &mut Gateway,
    dev: &str,
    seq: u64,
    v: &Json,
    now_ms: i64,
) -> Result<Applied, &'static str> {
    let st = v
        .get("state")
        .and_then(Json::as_str)
        .filter(|s| ["up", "down", "maintenance", "unknown"].contains(s))
        .ok_or("state without up/down/maintenance/unknown")?;
    let d = device(g, dev);
    if d.state_seq >= seq && d.state.is_some() {
        return Ok(Applied::Ignored);
    }
    d.state_seq = seq;
    d.state = Some(st.to_owned());
    d.since = v.get("since").and_then(Json::as_i64);
    d.reason = v.get("reason").and_then(Json::as_str).map(str::to_owned);
    d.availability = v.get("availability").cloned();
    for (k, f) in [
        ("class", &mut d.class),
        ("name_zh", &mut d.name_zh),
        ("name_en", &mut d.name_en),
        ("location", &mut d.location),
    ] {
        if let Some(s) = v.get(k).and_then(Json::as_str) {
            s.clone_into(f);
        }
    }
    d.heard_ms = now_ms;
    Ok(Applied::Changed)
}

fn event(
    g: &mut Gateway,
    dev: &str,
    v: &Json,
    events: &mut VecDeque<Json>,
    now_ms: i64,
) -> Result<Applied, &'static str> {
    let ty = v
        .get("type")
        .and_then(Json::as_str)
        .ok_or("event without type")?;
    let d = device(g, dev);
    d.heard_ms = now_ms;
    if ty == "transition" {
        let to = v
            .get("to")
            .and_then(Json::as_str)
            .ok_or("transition without to")?;
        d.state = Some(to.to_owned());
        d.since = v.get("at").and_then(Json::as_i64);
        d.reason = v.get("reason").and_then(Json::as_str).map(str::to_owned);
        let mut e = v.clone();
        e["site"] = json!(g.site);
        e["gateway"] = json!(g.id);
        events.push_back(e);
    }
    Ok(Applied::Changed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn m() -> Model {
        Model::new("bms", vec![])
    }

    fn state_msg(seq: u64, st: &str) -> Vec<u8> {
        json!({"seq": seq, "ts": 1, "device": "pump-1", "class": "pump", "name_zh": "1号泵",
               "name_en": "Pump 1", "location": "B1", "state": st, "since": 5, "reason": null,
               "availability": {"month": 0.97, "rolling": 0.9, "threshold": 98.0, "below": true, "rolling_window_s": 900}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn state_then_snapshot() {
        let mut m = m();
        assert_eq!(
            m.apply(
                "bms/s1/gw-1/pump-1/state",
                &state_msg(5, "down"),
                true,
                1000
            ),
            Applied::Changed
        );
        let s = m.snapshot(1000, 150_000);
        let d = &s["sites"][0]["devices"][0];
        assert_eq!(d["name_zh"], "1号泵");
        assert_eq!(d["shown"], "down");
        let c = &s["sites"][0]["classes"]["pump"];
        assert_eq!(c["down"], 1);
        assert_eq!(c["target"], 98.0);
        assert_eq!(c["below"], true);
        // Stale once nothing is heard for stale_after.
        let s = m.snapshot(1000 + 150_001, 150_000);
        assert_eq!(s["sites"][0]["devices"][0]["shown"], "stale");
    }

    #[test]
    fn duplicates_and_gaps_are_counted() {
        let mut m = m();
        m.apply("bms/s1/gw-1/pump-1/state", &state_msg(10, "up"), false, 1);
        assert_eq!(
            m.apply("bms/s1/gw-1/pump-1/state", &state_msg(10, "down"), false, 2),
            Applied::Ignored
        );
        assert_eq!(m.counters.duplicates, 1);
        m.apply("bms/s1/gw-1/pump-1/state", &state_msg(14, "down"), false, 3);
        assert_eq!((m.counters.gaps, m.counters.missing), (1, 3));
        assert_eq!(
            m.sites["s1"]["gw-1"].devices["pump-1"].state.as_deref(),
            Some("down")
        );
    }

    #[test]
    fn retained_messages_in_any_order_are_not_gaps() {
        let mut m = m();
        m.apply("bms/s1/gw-1/pump-1/state", &state_msg(50, "up"), true, 1);
        m.apply("bms/s1/gw-1/pump-2/state", &state_msg(7, "down"), true, 1);
        assert_eq!(m.counters.gaps + m.counters.duplicates, 0);
        assert_eq!(m.sites["s1"]["gw-1"].devices.len(), 2);
    }

    #[test]
    fn malformed_messages_are_counted_and_harmless() {
        let mut m = m();
        assert!(matches!(
            m.apply("bms/s1/gw-1/pump-1/state", b"{not json", false, 1),
            Applied::Malformed(_)
        ));
        assert!(matches!(
            m.apply("bms/s1/gw-1/pump-1/state", b"[1]", false, 1),
            Applied::Malformed(_)
        ));
        assert!(matches!(
            m.apply(
                "bms/s1/gw-1/pump-1/state",
                br#"{"seq":3,"state":"sideways"}"#,
                false,
                1
            ),
            Applied::Malformed(_)
        ));
        assert!(matches!(
            m.apply("bms/s1/gw-1/tickets/x", br#"{"seq":4}"#, false, 1),
            Applied::Malformed(_)
        ));
        // A malformed message with a huge seq does not poison the numbering.
        m.apply("bms/s1/gw-1/pump-1/state", &state_msg(1, "up"), false, 1);
        assert!(matches!(
            m.apply(
                "bms/s1/gw-1/pump-1/state",
                br#"{"seq":999999999,"state":"sideways"}"#,
                false,
                1
            ),
            Applied::Malformed(_)
        ));
        assert!(matches!(
            m.apply(
                "bms/s1/gw-1/pump-1/state",
                br#"{"seq":1,"state":"sideways"}"#,
                false,
                1
            ),
            Applied::Malformed(_)
        ));
        assert_eq!(m.counters.malformed, 6);
        assert_eq!(
            m.apply("bms/s1/gw-1/pump-1/state", &state_msg(5, "up"), false, 1),
            Applied::Changed
        );
    }

    #[test]
    fn tickets_alarms_and_replies() {
        let mut m = m();
        let t = json!({"seq": 3, "ts": 1, "event": "opened", "at": 1, "ticket": {"id": 1, "device": "fire-panel-1", "state": "open", "severity": "critical", "opened_ms": 1}});
        m.apply("bms/s1/gw-1/tickets/1", t.to_string().as_bytes(), false, 1);
        let a = json!({"seq": 4, "ts": 1, "device": "fire-panel-1", "point": "fault", "active": true, "at": 1});
        m.apply("bms/s1/gw-1/alarm", a.to_string().as_bytes(), false, 1);
        let s = m.snapshot(1, 1000);
        assert_eq!(s["sites"][0]["tickets"][0]["id"], 1);
        assert_eq!(s["sites"][0]["alarms"][0]["point"], "fault");
        // A reply (checked before the model, see commands.rs) only moves
        // the numbering.
        let r = json!({"seq": 5, "body": "{}", "sig": "00"});
        assert_eq!(
            m.apply("bms/s1/gw-1/cmd/reply", r.to_string().as_bytes(), false, 1),
            Applied::Ignored
        );
        assert_eq!(m.counters.replies, 1);
        assert_eq!(m.sites["s1"]["gw-1"].seq, 5);
        // Commands going out are not news, and other sites are filtered.
        assert_eq!(
            m.apply("bms/s1/gw-1/cmd/ack", b"{}", false, 1),
            Applied::Ignored
        );
        let mut f = Model::new("bms", vec!["s2".into()]);
        assert_eq!(
            f.apply("bms/s1/gw-1/pump-1/state", &state_msg(5, "up"), false, 1),
            Applied::Ignored
        );
    }
}
