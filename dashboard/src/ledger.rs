//! The central ledger: what the monthly reports of every site are built
//! from (`docs/report.md`, "For the dashboard").
//!
//! Kept in SQLite (`ledger.db` in the data folder):
//!
//! - every `{device}/event` of type `transition`, once per gateway `seq`
//!   (a resend after a reconnect is dropped by the primary key);
//! - each ticket as its latest `tickets/{id}` message shows it (the highest
//!   `seq` wins, so a late resend never replaces a newer state);
//! - the device catalogue (names, class, location, target) from `state`,
//!   one row per (site, gateway, device): two gateways of a site may both
//!   have a `pump-1`, and they are two devices;
//! - each gateway's online/offline state from `status`, with the time it
//!   went offline.
//!
//! Data older than `[ledger] keep_months` is deleted in small batches by
//! the writer thread, keeping what the reports of the kept months read
//! ([`retention`]); `/reports` refuses a month before a site's cutoff.
//!
//! The subscriber only hands messages to a bounded queue ([`Ledger::offer`]);
//! one thread writes them, so the receive path never waits on the disk.
//! [`input`] rebuilds a site's [`ReportInput`] with the gateway's own
//! [`gateway_core::ledger::Ledger`], in `at` order, so messages that arrived
//! out of order give the same intervals.
//!
//! # Device identity in the report
//!
//! A device is (site, gateway, device id). In the report of a site whose
//! ledger knows one gateway, a device's id is its own id (the report is the
//! gateway's own `gateway report`, figure for figure). When the ledger knows
//! several gateways of the site, every device is listed as
//! `{gateway}/{device}` ([`report_id`]), its tickets too, so the same id on
//! two gateways gives two lines with their own figures.
//!
//! # Schema versions
//!
//! Version 1 kept the catalogue by (site, device): a device id on two
//! gateways was one row, its gateway the last one heard. Opening such a
//! database makes the key (site, gateway, device) once, in one transaction
//! (`PRAGMA user_version = 2`); each old row keeps the gateway it had. The
//! other gateway's devices come back with their next retained `state`.
//! Transitions and tickets always carried the gateway and are unchanged.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use gateway_core::model::DeviceClass;
use gateway_core::report::{CatalogueDevice, ReportInput, SiteInfo};
use gateway_core::state::{DeviceState, Interval, Transition};
use gateway_core::tickets::Ticket;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value as Json;
use tracing::warn;

/// Messages waiting for the writer at most; beyond, new ones are dropped
/// and counted in [`Ledger::dropped`] (transitions and tickets are rare:
/// a full queue means the disk is stuck).
const QUEUE: usize = 50_000;

/// A device whose latest `state` is this much older than the newest
/// `state` of its gateway is taken as removed from the gateway's
/// configuration (gateways publish every state each `[mqtt] state_every`,
/// 60 s by default).
pub const REMOVED_AFTER_MS: i64 = 2 * 3_600_000;

/// The file in the data folder.
pub const FILE: &str = "ledger.db";

/// The schema version this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 2;

/// The catalogue table of schema version 2.
const DEVICES_TABLE: &str = "CREATE TABLE IF NOT EXISTS devices (site TEXT NOT NULL, device TEXT NOT NULL, gateway TEXT NOT NULL,
    name_zh TEXT NOT NULL, name_en TEXT NOT NULL, class TEXT NOT NULL, location TEXT NOT NULL,
    target REAL, seen_ms INTEGER NOT NULL, PRIMARY KEY (site, gateway, device)) WITHOUT ROWID;";

/// The id of a device in the report of a site: its own id when the site has
/// one gateway, `{gateway}/{device}` when it has several (a topic level
/// never holds a `/`, so the two parts stay apart).
pub fn report_id(several_gateways: bool, gateway: &str, device: &str) -> String {
    if several_gateways {
        format!("{gateway}/{device}")
    } else {
        device.to_owned()
    }
}

/// Records [`SCHEMA_VERSION`] when the file says less (a new database).
fn set_version(c: &Connection) -> rusqlite::Result<()> {
    let v: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if v < SCHEMA_VERSION {
        c.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))?;
    }
    Ok(())
}

/// Makes the catalogue of a version 1 database keyed by (site, gateway,
/// device); nothing on a new or migrated one.
fn migrate_v1(c: &Connection) -> rusqlite::Result<()> {
    let gateway_in_key: bool = c.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('devices') WHERE name = 'gateway' AND pk > 0",
        [],
        |r| r.get(0),
    )?;
    let exists: bool = c.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'devices'",
        [],
        |r| r.get(0),
    )?;
    if !exists || gateway_in_key {
        return Ok(());
    }
    c.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         ALTER TABLE devices RENAME TO devices_v1;
         {DEVICES_TABLE}
         INSERT INTO devices (site, device, gateway, name_zh, name_en, class, location, target, seen_ms)
             SELECT site, device, gateway, name_zh, name_en, class, location, target, seen_ms FROM devices_v1;
         DROP TABLE devices_v1;
         PRAGMA user_version = {SCHEMA_VERSION};
         COMMIT;"
    ))?;
    tracing::info!(
        "central ledger migrated to schema version {SCHEMA_VERSION}: a device is (site, gateway, device)"
    );
    Ok(())
}

/// One message for the writer: topic relative to the prefix, payload,
/// local receive time.
type Item = (Vec<String>, Vec<u8>, i64);

/// The handle the subscriber uses.
#[derive(Debug)]
pub struct Ledger {
    tx: mpsc::SyncSender<Item>,
    path: PathBuf,
    /// Messages not recorded because the queue was full.
    pub dropped: AtomicU64,
}

/// Opens (or creates) the ledger database.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open(path)?;
    c.busy_timeout(Duration::from_secs(5))?;
    c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
    migrate_v1(&c)?;
    c.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS transitions (site TEXT NOT NULL, gateway TEXT NOT NULL, seq INTEGER NOT NULL,
             device TEXT NOT NULL, at_ms INTEGER NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL, reason TEXT,
             PRIMARY KEY (site, gateway, seq)) WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS transitions_by_site ON transitions (site, at_ms);
         CREATE TABLE IF NOT EXISTS tickets (site TEXT NOT NULL, gateway TEXT NOT NULL, id INTEGER NOT NULL,
             seq INTEGER NOT NULL, ticket TEXT NOT NULL, PRIMARY KEY (site, gateway, id)) WITHOUT ROWID;
         {DEVICES_TABLE}
         CREATE TABLE IF NOT EXISTS gateways (site TEXT NOT NULL, gateway TEXT NOT NULL, online INTEGER NOT NULL,
             status_ts INTEGER NOT NULL, offline_ms INTEGER, PRIMARY KEY (site, gateway)) WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS transitions_by_device ON transitions (site, device, at_ms);
         CREATE TABLE IF NOT EXISTS retention (site TEXT PRIMARY KEY, from_ms INTEGER NOT NULL) WITHOUT ROWID;
"
    ))?;
    set_version(&c)?;
    Ok(c)
}

impl Ledger {
    /// Opens (or creates) `dir/ledger.db` and starts the writer thread,
    /// which also deletes what `retention` no longer keeps.
    pub fn start(dir: &Path, retention: Retention) -> Result<Ledger, String> {
        let path = dir.join(FILE);
        let conn = open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("ledger-writer".to_owned())
            .spawn(move || writer(conn, rx, retention))
            .map_err(|e| format!("cannot start the ledger writer: {e}"))?;
        Ok(Ledger {
            tx,
            path,
            dropped: AtomicU64::new(0),
        })
    }

    /// The database file (reports open it read-only).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Offers any message under the prefix; `rest` is the topic after the
    /// prefix (`/{site}/{gateway}/…`). Only what the ledger needs is queued.
    pub fn offer(&self, rest: &str, payload: &[u8], now_ms: i64) {
        let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        let wanted = matches!(
            parts[..],
            [_, _, "status"] | [_, _, _, "event" | "state" | "telemetry"] | [_, _, "tickets", _]
        );
        if !wanted {
            return;
        }
        // Telemetry only tells when the gateway was last heard of.
        let payload = if parts.get(3) == Some(&"telemetry") {
            Vec::new()
        } else {
            payload.to_vec()
        };
        let item = (
            parts.iter().map(|s| (*s).to_owned()).collect(),
            payload,
            now_ms,
        );
        if self.tx.try_send(item).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The writer: applies each message; a failed write is logged and the
/// message skipped (the retained `tickets`/`state` come again at the next
/// subscription). Between messages, at most every [`retention::STEP_EVERY`],
/// one retention step.
fn writer(conn: Connection, rx: mpsc::Receiver<Item>, retention: Retention) {
    let mut w = Writer::new(conn);
    let mut pruner = retention::Pruner::new(retention);
    let mut last_step: Option<std::time::Instant> = None;
    loop {
        match rx.recv_timeout(retention::STEP_EVERY) {
            Ok((topic, payload, now)) => {
                if let Err(e) = w.record(&topic, &payload, now) {
                    warn!(error = %e, topic = %topic.join("/"), "cannot record in the central ledger");
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        if last_step.is_none_or(|t| t.elapsed() >= retention::STEP_EVERY) {
            pruner.step(&w.conn, crate::state::now_ms());
            last_step = Some(std::time::Instant::now());
        }
    }
}

/// Applies messages to the database (also used directly by tests).
#[derive(Debug)]
pub struct Writer {
    conn: Connection,
    /// Local receive time of the latest message per (site, gateway).
    last_heard: HashMap<(String, String), i64>,
}

impl Writer {
    /// A writer on an open database.
    pub fn new(conn: Connection) -> Writer {
        Writer {
            conn,
            last_heard: HashMap::new(),
        }
    }

    /// The connection (for reading in tests).
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Records one message; `topic` is `[site, gateway, …]`, `now` the local
    /// receive time.
    pub fn record(&mut self, topic: &[String], payload: &[u8], now: i64) -> Result<(), String> {
        let t: Vec<&str> = topic.iter().map(String::as_str).collect();
        let (site, gateway) = match t[..] {
            [s, g, ..] => (s, g),
            _ => return Ok(()),
        };
        let key = (site.to_owned(), gateway.to_owned());
        if t.get(3) == Some(&"telemetry") {
            // Never retained: the receive time is when it was heard.
            let e = self.last_heard.entry(key).or_insert(now);
            *e = (*e).max(now);
            return Ok(());
        }
        let v: Json = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
        if t.get(2) != Some(&"status") {
            // `state` and `tickets` are retained: replayed at subscription,
            // so their own time, not the receive time, says when.
            let at = v["ts"].as_i64().unwrap_or(now);
            let e = self.last_heard.entry(key.clone()).or_insert(at);
            *e = (*e).max(at);
        }
        let db = |e: rusqlite::Error| e.to_string();
        match t[2..] {
            ["status"] => {
                let ts = v["ts"].as_i64().unwrap_or(now);
                let online = v["state"] == "online";
                let prev: Option<i64> = self
                    .conn
                    .query_row(
                        "SELECT status_ts FROM gateways WHERE site = ?1 AND gateway = ?2",
                        params![site, gateway],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(db)?;
                // `status` is ordered by its ts, not by seq; the last will
                // carries its connection's time, so a later offline status
                // than the online one still counts (ties go to the newest).
                if prev.is_some_and(|p| p > ts) && online {
                    return Ok(());
                }
                // Offline: the later of the status' own time (a clean stop)
                // and the last time anything was heard (the last will's ts
                // is when it connected).
                // After a restart of the dashboard nothing was heard yet: the
                // newest `state` of the gateway (sent every minute) bounds it.
                let newest_state: Option<i64> = self
                    .conn
                    .query_row(
                        "SELECT MAX(seen_ms) FROM devices WHERE site = ?1 AND gateway = ?2",
                        params![site, gateway],
                        |r| r.get(0),
                    )
                    .map_err(db)?;
                let offline = (!online).then(|| {
                    ts.max(*self.last_heard.get(&key).unwrap_or(&ts))
                        .max(newest_state.unwrap_or(ts))
                });
                self.conn
                    .execute(
                        "INSERT INTO gateways (site, gateway, online, status_ts, offline_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (site, gateway) DO UPDATE SET online = ?3, status_ts = MAX(status_ts, ?4),
                             offline_ms = CASE WHEN online = 0 AND ?3 = 0 THEN MAX(COALESCE(offline_ms, ?5), ?5) ELSE ?5 END",
                        params![site, gateway, online, ts, offline],
                    )
                    .map_err(db)?;
            }
            [device, "event"] => {
                if v["type"] != "transition" {
                    return Ok(());
                }
                let (Some(seq), Some(at), Some(from), Some(to)) = (
                    v["seq"].as_i64(),
                    v["at"].as_i64(),
                    v["from"].as_str(),
                    v["to"].as_str(),
                ) else {
                    return Err("a transition without seq, at, from or to".to_owned());
                };
                if DeviceState::parse(from).is_none() || DeviceState::parse(to).is_none() {
                    return Err(format!("unknown state {from:?} or {to:?}"));
                }
                let device = v["device"].as_str().unwrap_or(device);
                self.conn
                    .execute(
                        "INSERT OR IGNORE INTO transitions (site, gateway, seq, device, at_ms, from_state, to_state, reason)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        params![site, gateway, seq, device, at, from, to, v["reason"].as_str()],
                    )
                    .map_err(db)?;
            }
            [device, "state"] => {
                let device = v["device"].as_str().unwrap_or(device);
                let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
                let name_zh = v["name_zh"].as_str().unwrap_or(device);
                let name_en = v["name_en"].as_str().unwrap_or(device);
                self.conn
                    .execute(
                        "INSERT INTO devices (site, device, gateway, name_zh, name_en, class, location, target, seen_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                         ON CONFLICT (site, gateway, device) DO UPDATE SET name_zh = ?4, name_en = ?5, class = ?6,
                             location = ?7, target = COALESCE(?8, target), seen_ms = MAX(seen_ms, ?9)",
                        params![
                            site,
                            device,
                            gateway,
                            name_zh,
                            name_en,
                            s("class"),
                            s("location"),
                            v["availability"]["threshold"].as_f64(),
                            v["ts"].as_i64().unwrap_or(now)
                        ],
                    )
                    .map_err(db)?;
            }
            ["tickets", _] => {
                let Some(seq) = v["seq"].as_i64() else {
                    return Err("a ticket message without seq".to_owned());
                };
                let ticket: Ticket = serde_json::from_value(v["ticket"].clone())
                    .map_err(|e| format!("not a ticket: {e}"))?;
                let json = serde_json::to_string(&ticket).map_err(|e| e.to_string())?;
                self.conn
                    .execute(
                        "INSERT INTO tickets (site, gateway, id, seq, ticket) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (site, gateway, id) DO UPDATE SET seq = ?4, ticket = ?5 WHERE ?4 > seq",
                        params![site, gateway, i64::try_from(ticket.id).unwrap_or(i64::MAX), seq, json],
                    )
                    .map_err(db)?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// The sites the ledger knows, sorted.
pub fn sites(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare(
        "SELECT site FROM transitions UNION SELECT site FROM devices UNION SELECT site FROM tickets ORDER BY 1",
    )?;
    st.query_map([], |r| r.get(0))?.collect()
}

fn class_of(s: &str) -> DeviceClass {
    DeviceClass::ALL
        .into_iter()
        .find(|c| c.as_str() == s)
        .unwrap_or(DeviceClass::Other)
}

/// What a site's report needs, as of `now_ms`: the intervals rebuilt from
/// the transitions (a gateway now offline ends its devices' open intervals
/// at the time it went offline; the rest is `gateway_down` up to now), the
/// catalogue and the tickets. Transitions after `now_ms` are left out
/// (a report as it stood then). `None` when the ledger knows nothing of the
/// site.
pub fn input(
    conn: &Connection,
    site: &SiteInfo,
    year: i32,
    month: u32,
    now_ms: i64,
) -> rusqlite::Result<Option<ReportInput>> {
    let id = site.id.as_str();
    let mut offline: HashMap<String, i64> = HashMap::new();
    {
        let mut st = conn.prepare(
            "SELECT gateway, offline_ms FROM gateways WHERE site = ?1 AND online = 0 AND offline_ms IS NOT NULL",
        )?;
        for r in st.query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (g, at) = r?;
            offline.insert(g, at);
        }
    }
    // Several gateways known for the site: devices are `{gateway}/{device}`.
    let several: bool = conn.query_row(
        "SELECT COUNT(*) > 1 FROM (SELECT gateway FROM transitions WHERE site = ?1 AND at_ms <= ?2
             UNION SELECT gateway FROM devices WHERE site = ?1)",
        params![id, now_ms],
        |r| r.get(0),
    )?;
    let rid = |gateway: &str, device: &str| report_id(several, gateway, device);
    let mut ledger = gateway_core::ledger::Ledger::new(Duration::from_secs(100 * 365 * 86_400));
    let mut intervals: Vec<Interval> = Vec::new();
    // Report id → gateway.
    let mut gateway_of: BTreeMap<String, String> = BTreeMap::new();
    {
        let mut st = conn.prepare(
            "SELECT gateway, device, at_ms, from_state, to_state, reason FROM transitions
             WHERE site = ?1 AND at_ms <= ?2 ORDER BY at_ms, gateway, seq",
        )?;
        let rows = st.query_map(params![id, now_ms], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })?;
        for r in rows {
            let (gateway, device, at_ms, from, to, reason) = r?;
            let (Some(from), Some(to)) = (DeviceState::parse(&from), DeviceState::parse(&to))
            else {
                continue;
            };
            let device = rid(&gateway, &device);
            gateway_of.insert(device.clone(), gateway);
            intervals.extend(ledger.apply(&Transition {
                device,
                from,
                to,
                reason,
                at_ms,
            }));
        }
    }
    // Devices the gateway no longer publishes: their time ends with their
    // last `state` (by its own ts), as the gateway's report ends them.
    let mut removed: HashMap<String, i64> = HashMap::new();
    {
        let mut st = conn.prepare(
            "SELECT d.gateway, d.device, d.seen_ms FROM devices d
             JOIN (SELECT gateway, MAX(seen_ms) AS newest FROM devices WHERE site = ?1 GROUP BY gateway) g
               ON g.gateway = d.gateway
             WHERE d.site = ?1 AND d.seen_ms < g.newest - ?2 AND d.seen_ms < ?3",
        )?;
        for r in st.query_map(params![id, REMOVED_AFTER_MS, now_ms], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })? {
            let (g, d, at) = r?;
            removed.insert(rid(&g, &d), at);
        }
    }
    for (device, gateway) in &gateway_of {
        let Some((state, _, since)) = ledger.current(device) else {
            continue;
        };
        if let Some(&at) = removed.get(device) {
            if at > since && state != DeviceState::Unknown {
                intervals.extend(ledger.apply(&Transition {
                    device: device.clone(),
                    from: state,
                    to: DeviceState::Unknown,
                    reason: Some("removed".to_owned()),
                    at_ms: at,
                }));
            }
            continue;
        }
        if let Some(&at) = offline.get(gateway)
            && at > since
            && at < now_ms
        {
            intervals.extend(ledger.apply(&Transition {
                device: device.clone(),
                from: state,
                to: DeviceState::Unknown,
                reason: Some("gateway_down".to_owned()),
                at_ms: at,
            }));
        }
        if let Some((state, reason, since)) = ledger.current(device)
            && now_ms > since
        {
            intervals.push(Interval {
                device: device.clone(),
                state,
                reason,
                from_ms: since,
                to_ms: now_ms,
            });
        }
    }
    let mut first: BTreeMap<&str, i64> = BTreeMap::new();
    for i in &intervals {
        let e = first.entry(i.device.as_str()).or_insert(i.from_ms);
        *e = (*e).min(i.from_ms);
    }
    let mut devices: Vec<CatalogueDevice> = Vec::new();
    let mut listed: BTreeSet<String> = BTreeSet::new();
    {
        let mut st = conn.prepare(
            "SELECT gateway, device, name_zh, name_en, class, location, target FROM devices WHERE site = ?1
             ORDER BY device, gateway",
        )?;
        let rows = st.query_map([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<f64>>(6)?,
            ))
        })?;
        for r in rows {
            let (gateway, device, name_zh, name_en, class, location, target) = r?;
            let device = rid(&gateway, &device);
            let class = class_of(&class);
            listed.insert(device.clone());
            devices.push(CatalogueDevice {
                known_from_ms: first.get(device.as_str()).copied(),
                known_until_ms: removed.contains_key(&device).then(|| {
                    intervals
                        .iter()
                        .filter(|i| i.device == device && i.state != DeviceState::Unknown)
                        .map(|i| i.to_ms)
                        .max()
                        .or(first.get(device.as_str()).copied())
                        .unwrap_or(0)
                }),
                name_zh,
                name_en,
                class,
                location,
                target_percent: target.unwrap_or_else(|| class.default_target_percent()),
                id: device,
            });
        }
    }
    // A device seen in transitions but never in a `state` message.
    for (device, from) in &first {
        if !listed.contains(*device) {
            devices.push(CatalogueDevice {
                id: (*device).to_owned(),
                name_zh: (*device).to_owned(),
                name_en: (*device).to_owned(),
                class: DeviceClass::Other,
                location: String::new(),
                target_percent: DeviceClass::Other.default_target_percent(),
                known_from_ms: Some(*from),
                known_until_ms: None,
            });
        }
    }
    let mut tickets: Vec<Ticket> = Vec::new();
    {
        let mut st = conn
            .prepare("SELECT gateway, ticket FROM tickets WHERE site = ?1 ORDER BY gateway, id")?;
        for r in st.query_map([id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })? {
            let (gateway, json) = r?;
            if let Ok(mut t) = serde_json::from_str::<Ticket>(&json) {
                t.device = rid(&gateway, &t.device);
                tickets.push(t);
            }
        }
    }
    if devices.is_empty() && tickets.is_empty() && gateway_of.is_empty() {
        return Ok(None);
    }
    Ok(Some(ReportInput {
        site: site.clone(),
        year,
        month,
        now_ms,
        devices,
        intervals,
        tickets,
        windows: Vec::new(),
        class_targets: BTreeMap::new(),
    }))
}

pub mod retention;
pub use retention::Retention;

#[cfg(test)]
mod tests;
