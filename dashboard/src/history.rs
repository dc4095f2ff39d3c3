//! Telemetry and state history in SQLite, for the device page's charts:
//! raw values (default 48 h) and a 1-minute rollup (default 90 days),
//! written in batches by one task so that the subscriber never waits on
//! the disk.
//!
//! A device is (site, gateway, device id): two gateways of one site may both
//! have a `pump-1`, and their series are kept apart.
//!
//! # Schema versions
//!
//! Version 1 (before the gateway was part of the key) kept rows by (site,
//! device). Opening such a database migrates it once, in one transaction,
//! to version 2 (`PRAGMA user_version = 2`): every old row is kept with the
//! gateway `""` ([`LEGACY_GATEWAY`]), because version 1 never recorded which
//! gateway sent it (and, for a device id present on two gateways, its rows
//! are a mix of both). A query for (site, gateway, device) includes those
//! legacy rows only when the caller says the device id belongs to that one
//! gateway alone in the site (`legacy = true`; the dashboard decides this
//! from the live picture); otherwise they are left out rather than shown as
//! the wrong device's. Legacy rows age out with the retention like any
//! other.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::{Connection, params};
use serde_json::{Value as Json, json};
use tokio::sync::mpsc;
use tracing::warn;

/// Messages waiting for the writer at most; beyond, new ones are dropped
/// (counted in `dropped`).
const QUEUE: usize = 20_000;
/// How often the minute sums kept in memory are merged into the table.
const ROLLUP_EVERY: Duration = Duration::from_secs(5);
/// How often old rows are removed.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// The gateway of the rows migrated from schema version 1 (unknown).
pub const LEGACY_GATEWAY: &str = "";
/// The schema version this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 2;

/// One message for the writer: site, gateway, device, payload.
type Item = (String, String, String, Vec<u8>);

/// The handle the subscriber and the API use.
#[derive(Debug)]
pub struct History {
    tx: mpsc::Sender<Item>,
    path: std::path::PathBuf,
    /// Messages not recorded because the queue was full.
    pub dropped: AtomicU64,
}

/// Retention of the two tables.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    pub raw: Duration,
    pub rollup: Duration,
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open(path)?;
    c.busy_timeout(Duration::from_secs(5))?;
    c.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         -- 8 MiB of page cache (default 2): a batch of thousands of rows
         -- otherwise spills pages to the WAL and reads them back.
         PRAGMA cache_size = -8192;
         -- Checkpoint every ≈ 16 MiB of WAL rather than 4.
         PRAGMA wal_autocheckpoint = 4000;",
    )?;
    migrate_v1(&c)?;
    c.execute_batch(TABLES)?;
    let v: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if v < SCHEMA_VERSION {
        c.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))?;
    }
    Ok(c)
}

/// The tables of schema version 2.
const TABLES: &str = "
    CREATE TABLE IF NOT EXISTS raw (site TEXT NOT NULL, gateway TEXT NOT NULL, device TEXT NOT NULL, point TEXT NOT NULL,
        ts INTEGER NOT NULL, value REAL NOT NULL,
        PRIMARY KEY (site, gateway, device, point, ts)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS minute (site TEXT NOT NULL, gateway TEXT NOT NULL, device TEXT NOT NULL, point TEXT NOT NULL,
        ts INTEGER NOT NULL, avg REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL, n INTEGER NOT NULL,
        PRIMARY KEY (site, gateway, device, point, ts)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS states (site TEXT NOT NULL, gateway TEXT NOT NULL, device TEXT NOT NULL, ts INTEGER NOT NULL,
        state TEXT NOT NULL, PRIMARY KEY (site, gateway, device, ts)) WITHOUT ROWID;";

/// Moves the rows of a version 1 database (tables without `gateway`) into
/// the version 2 tables under [`LEGACY_GATEWAY`], in one transaction; does
/// nothing on a new or already migrated database.
fn migrate_v1(c: &Connection) -> rusqlite::Result<()> {
    let has_gateway: bool = c
        .prepare("SELECT COUNT(*) FROM pragma_table_info('raw') WHERE name = 'gateway'")?
        .query_row([], |r| r.get::<_, i64>(0))?
        > 0;
    let has_raw: bool = c.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'raw'",
        [],
        |r| r.get(0),
    )?;
    if !has_raw || has_gateway {
        return Ok(());
    }
    c.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         ALTER TABLE raw RENAME TO raw_v1;
         ALTER TABLE minute RENAME TO minute_v1;
         ALTER TABLE states RENAME TO states_v1;
         {TABLES}
         INSERT INTO raw SELECT site, '{LEGACY_GATEWAY}', device, point, ts, value FROM raw_v1;
         INSERT INTO minute SELECT site, '{LEGACY_GATEWAY}', device, point, ts, avg, min, max, n FROM minute_v1;
         INSERT INTO states SELECT site, '{LEGACY_GATEWAY}', device, ts, state FROM states_v1;
         DROP TABLE raw_v1;
         DROP TABLE minute_v1;
         DROP TABLE states_v1;
         PRAGMA user_version = {SCHEMA_VERSION};
         COMMIT;"
    ))?;
    tracing::info!(
        "history migrated to schema version {SCHEMA_VERSION}: rows recorded before the gateway was part of a device's identity are kept as legacy rows"
    );
    Ok(())
}

impl History {
    /// Opens (or creates) `dir/history.db` and starts the writer.
    pub fn start(dir: &Path, keep: Retention) -> Result<History, String> {
        let path = dir.join("history.db");
        let conn = open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::task::spawn_blocking(move || writer(conn, rx, keep));
        Ok(History {
            tx,
            path,
            dropped: AtomicU64::new(0),
        })
    }

    /// Offers a telemetry, state or event message (already accepted by the model).
    pub fn offer(&self, site: &str, gateway: &str, device: &str, payload: &[u8]) {
        if self
            .tx
            .try_send((
                site.to_owned(),
                gateway.to_owned(),
                device.to_owned(),
                payload.to_vec(),
            ))
            .is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Series of a device over `range` (`24h`, `7d`, `30d`) ending `now_ms`:
    /// `{"from","to","bucket_s","points":{name:[[ts,avg,min,max],…]},"states":[[ts,state],…]}`.
    /// `legacy`: include the rows migrated from schema version 1 for this
    /// site and device id (see the module doc).
    pub fn query(
        &self,
        device: &DeviceKey<'_>,
        legacy: bool,
        range: &str,
        now_ms: i64,
    ) -> Result<Json, String> {
        let DeviceKey {
            site,
            gateway,
            device,
        } = *device;
        // The legacy rows' gateway, or this one again: `gateway IN (…)`
        // keeps every query a seek on the primary key.
        let also = if legacy { LEGACY_GATEWAY } else { gateway };
        let (span_ms, bucket_ms): (i64, i64) = match range {
            "24h" => (86_400_000, 60_000),
            "7d" => (7 * 86_400_000, 600_000),
            "30d" => (30 * 86_400_000, 3_600_000),
            other => return Err(format!("range {other:?}: use 24h, 7d or 30d")),
        };
        let from = now_ms - span_ms;
        let c = Connection::open(&self.path).map_err(|e| e.to_string())?;
        let mut st = c
            .prepare(
                "SELECT point, (ts / ?4) * ?4 AS b, SUM(avg * n) / SUM(n), MIN(min), MAX(max)
                 FROM minute WHERE site = ?1 AND device = ?2 AND ts >= ?3
                   AND gateway IN (?5, ?6)
                 GROUP BY point, b ORDER BY point, b",
            )
            .map_err(|e| e.to_string())?;
        let mut points: std::collections::BTreeMap<String, Vec<Json>> = Default::default();
        let rows = st
            .query_map(params![site, device, from, bucket_ms, gateway, also], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, f64>(2)?,
                    r.get::<_, f64>(3)?,
                    r.get::<_, f64>(4)?,
                ))
            })
            .map_err(|e| e.to_string())?;
        for row in rows {
            let (p, b, avg, min, max) = row.map_err(|e| e.to_string())?;
            points.entry(p).or_default().push(json!([b, avg, min, max]));
        }
        // The state at the start of the range, then every change in it.
        let mut states = Vec::new();
        let before: Option<String> = c
            .query_row(
                "SELECT state FROM states WHERE site = ?1 AND device = ?2 AND ts < ?3
                   AND gateway IN (?4, ?5) ORDER BY ts DESC LIMIT 1",
                params![site, device, from, gateway, also],
                |r| r.get(0),
            )
            .ok();
        if let Some(s) = before {
            states.push(json!([from, s]));
        }
        let mut st = c
            .prepare(
                "SELECT ts, state FROM states WHERE site = ?1 AND device = ?2 AND ts >= ?3
                   AND gateway IN (?4, ?5) ORDER BY ts",
            )
            .map_err(|e| e.to_string())?;
        let rows = st
            .query_map(params![site, device, from, gateway, also], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(|e| e.to_string())?;
        for row in rows {
            let (ts, s) = row.map_err(|e| e.to_string())?;
            states.push(json!([ts, s]));
        }
        Ok(
            json!({"from": from, "to": now_ms, "bucket_s": bucket_ms / 1000, "points": points, "states": states}),
        )
    }
}

impl History {
    /// Month-to-date intact rate (time-weighted devices up ÷ up or down,
    /// `gateway_core::ledger::intact_rate`) per class of `site`, from the
    /// state changes recorded since `from_ms`; `classes` maps each class
    /// to its devices. Time before the dashboard recorded a device's first
    /// state is left out. Classes without up or down time are absent.
    /// Each device is `(gateway, device id)`; the rows migrated from schema
    /// version 1 count for a device whose id no other gateway of `classes`
    /// has (see the module doc).
    pub fn intact_rates(
        &self,
        site: &str,
        classes: &std::collections::BTreeMap<String, Vec<(String, String)>>,
        from_ms: i64,
        now_ms: i64,
    ) -> Result<std::collections::BTreeMap<String, f64>, String> {
        use gateway_core::state::{DeviceState, Interval};
        let c = Connection::open(&self.path).map_err(|e| e.to_string())?;
        let mut st = c
            .prepare(
                "SELECT ts, state FROM states WHERE site = ?1 AND device = ?2 AND ts >= ?3
                   AND gateway IN (?4, ?5)
                 UNION ALL
                 SELECT * FROM (SELECT ts, state FROM states WHERE site = ?1 AND device = ?2 AND ts < ?3
                   AND gateway IN (?4, ?5) ORDER BY ts DESC LIMIT 1)
                 ORDER BY ts",
            )
            .map_err(|e| e.to_string())?;
        let mut owners: std::collections::HashMap<&str, usize> = Default::default();
        for (_, d) in classes.values().flatten() {
            *owners.entry(d.as_str()).or_default() += 1;
        }
        let mut out = std::collections::BTreeMap::new();
        for (class, devices) in classes {
            let mut per_device: Vec<Vec<Interval>> = Vec::new();
            for (g, d) in devices {
                let also = if owners.get(d.as_str()) == Some(&1) {
                    LEGACY_GATEWAY
                } else {
                    g.as_str()
                };
                let changes: Vec<(i64, String)> = st
                    .query_map(params![site, d, from_ms, g, also], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .and_then(Iterator::collect)
                    .map_err(|e| e.to_string())?;
                let mut ivs = Vec::new();
                for (i, (ts, state)) in changes.iter().enumerate() {
                    let to = changes.get(i + 1).map_or(now_ms, |n| n.0);
                    if let Some(state) = DeviceState::parse(state) {
                        ivs.push(Interval {
                            device: d.clone(),
                            state,
                            reason: None,
                            from_ms: *ts,
                            to_ms: to,
                        });
                    }
                }
                per_device.push(ivs);
            }
            let refs: Vec<&[Interval]> = per_device.iter().map(Vec::as_slice).collect();
            if let Some(r) = gateway_core::ledger::intact_rate(&refs, from_ms, now_ms) {
                out.insert(class.clone(), r);
            }
        }
        Ok(out)
    }
}

/// Numeric value of a point (booleans as 0/1), if any.
fn number(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64().filter(|f| f.is_finite()),
        Json::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

fn writer(mut conn: Connection, mut rx: mpsc::Receiver<Item>, keep: Retention) {
    let mut last_prune = std::time::Instant::now() - PRUNE_EVERY;
    // Per device, the last state recorded (to keep only changes).
    let mut last_state: LastState = Default::default();
    let mut rollup = Rollup::default();
    loop {
        let mut batch = Vec::new();
        let mut closed = false;
        while batch.len() < 5000 {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        let due = !rollup.open.is_empty() && rollup.last_flush.elapsed() >= ROLLUP_EVERY;
        if (!batch.is_empty() || due || closed)
            && let Err(e) = write_batch(&mut conn, &batch, &mut last_state, &mut rollup, closed)
        {
            warn!(error = %e, messages = batch.len(), "cannot record history; these values are not kept");
        }
        if closed {
            break;
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = std::time::Instant::now();
            let now = gateway::run::unix_now_ms();
            let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            let r = conn
                .execute("DELETE FROM raw WHERE ts < ?1", params![now - ms(keep.raw)])
                .and_then(|_| {
                    conn.execute(
                        "DELETE FROM minute WHERE ts < ?1",
                        params![now - ms(keep.rollup)],
                    )
                })
                .and_then(|_| {
                    conn.execute(
                        "DELETE FROM states WHERE ts < ?1",
                        params![now - ms(keep.rollup)],
                    )
                });
            if let Err(e) = r {
                warn!(error = %e, "cannot prune the history");
            }
        }
        // Batch at most five times a second.
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One point's minute being summed in memory: (site, gateway, device,
/// point, minute start).
type MinuteKey = (String, String, String, String, i64);

/// The last state recorded per (site, gateway, device).
type LastState = std::collections::HashMap<(String, String, String), String>;

/// A device: (site, gateway, device id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceKey<'a> {
    pub site: &'a str,
    pub gateway: &'a str,
    pub device: &'a str,
}

/// The minutes being summed: mean, min, max and count of each point's
/// values, written when the minute has passed (or at the writer's end).
#[derive(Debug)]
struct Rollup {
    open: std::collections::HashMap<MinuteKey, (f64, f64, f64, i64)>,
    last_flush: std::time::Instant,
}

impl Default for Rollup {
    fn default() -> Self {
        Rollup {
            open: Default::default(),
            last_flush: std::time::Instant::now(),
        }
    }
}

impl Rollup {
    fn add(&mut self, key: MinuteKey, x: f64) {
        let e = self.open.entry(key).or_insert((0.0, x, x, 0));
        e.0 += x;
        e.1 = e.1.min(x);
        e.2 = e.2.max(x);
        e.3 += 1;
    }

    /// Writes the minutes that started before `before` (all with `i64::MAX`),
    /// merged with what the table already holds for them (a restart in the
    /// middle of a minute, or values arriving late).
    fn flush(&mut self, tx: &rusqlite::Transaction<'_>, before: i64) -> rusqlite::Result<()> {
        let mut minute = tx.prepare_cached(
            "INSERT INTO minute (site, gateway, device, point, ts, avg, min, max, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (site, gateway, device, point, ts) DO UPDATE SET
               avg = (avg * n + excluded.avg * excluded.n) / (n + excluded.n), min = MIN(min, excluded.min),
               max = MAX(max, excluded.max), n = n + excluded.n",
        )?;
        let due: Vec<MinuteKey> = self.open.keys().filter(|k| k.4 < before).cloned().collect();
        for k in due {
            if let Some((sum, min, max, n)) = self.open.remove(&k) {
                #[allow(clippy::cast_precision_loss)]
                let avg = sum / n as f64;
                minute.execute(params![k.0, k.1, k.2, k.3, k.4, avg, min, max, n])?;
            }
        }
        Ok(())
    }
}

fn write_batch(
    conn: &mut Connection,
    batch: &[Item],
    last_state: &mut LastState,
    rollup: &mut Rollup,
    last: bool,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut raw = tx.prepare_cached(
            "INSERT OR REPLACE INTO raw (site, gateway, device, point, ts, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut state = tx.prepare_cached(
            "INSERT OR REPLACE INTO states (site, gateway, device, ts, state) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (site, gateway, device, payload) in batch {
            let Ok(v) = serde_json::from_slice::<Json>(payload) else {
                continue;
            };
            if let Some(points) = v.get("points").and_then(Json::as_object) {
                let ts = v.get("ts").and_then(Json::as_i64).unwrap_or(0);
                for (p, val) in points {
                    if let Some(x) = number(val) {
                        raw.execute(params![site, gateway, device, p, ts, x])?;
                        rollup.add(
                            (
                                site.clone(),
                                gateway.clone(),
                                device.clone(),
                                p.clone(),
                                ts - ts.rem_euclid(60_000),
                            ),
                            x,
                        );
                    }
                }
                continue;
            }
            // A state message (`state`, `since`) or a transition (`to`, `at`).
            let (s, at) = match (
                v.get("type").and_then(Json::as_str),
                v.get("state").and_then(Json::as_str),
            ) {
                (Some("transition"), _) => (
                    v.get("to").and_then(Json::as_str),
                    v.get("at").and_then(Json::as_i64),
                ),
                (None, Some(s)) => (Some(s), v.get("since").and_then(Json::as_i64)),
                _ => (None, None),
            };
            if let (Some(s), Some(at)) = (s, at) {
                let key = (site.clone(), gateway.clone(), device.clone());
                if last_state.get(&key).map(String::as_str) != Some(s) {
                    state.execute(params![site, gateway, device, at, s])?;
                    last_state.insert(key, s.to_owned());
                }
            }
        }
    }
    // Every [`ROLLUP_EVERY`] (and at the writer's end, `last`) the
    // sums so far are merged into the table, complete minutes or not: the
    // charts lag by at most that, and a point read every second costs one
    // upsert per interval instead of one per value.
    if last || rollup.last_flush.elapsed() >= ROLLUP_EVERY {
        rollup.flush(&tx, i64::MAX)?;
        rollup.last_flush = std::time::Instant::now();
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const KEY: DeviceKey<'static> = DeviceKey {
        site: "s",
        gateway: "g",
        device: "d",
    };

    #[tokio::test]
    async fn telemetry_is_rolled_up_and_states_kept() {
        let dir = tempfile::tempdir().unwrap();
        let keep = Retention {
            raw: Duration::from_secs(48 * 3600),
            rollup: Duration::from_secs(90 * 86400),
        };
        let h = History::start(dir.path(), keep).unwrap();
        let now = gateway::run::unix_now_ms();
        let minute = now - now.rem_euclid(60_000) - 120_000;
        for (i, v) in [1.0, 3.0, 5.0].iter().enumerate() {
            let t = json!({"seq": i, "ts": minute + i as i64 * 1000, "points": {"p": v, "on": true, "txt": "x"}});
            h.offer("s", "g", "d", t.to_string().as_bytes());
        }
        h.offer(
            "s",
            "g",
            "d",
            json!({"seq": 9, "state": "up", "since": minute})
                .to_string()
                .as_bytes(),
        );
        h.offer(
            "s",
            "g",
            "d",
            json!({"seq": 10, "state": "up", "since": minute})
                .to_string()
                .as_bytes(),
        );
        h.offer(
            "s",
            "g",
            "d",
            json!({"seq": 11, "type": "transition", "to": "down", "at": minute + 5000})
                .to_string()
                .as_bytes(),
        );
        let mut got = Json::Null;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            got = h.query(&KEY, false, "24h", now).unwrap();
            // States are written at once, minute sums every ROLLUP_EVERY.
            if got["states"].as_array().unwrap().len() == 2 && !got["points"]["p"].is_null() {
                break;
            }
        }
        assert_eq!(
            got["points"]["p"],
            json!([[minute, 3.0, 1.0, 5.0]]),
            "{got}"
        );
        assert_eq!(got["points"]["on"][0][1], 1.0);
        assert!(got["points"].get("txt").is_none());
        assert_eq!(
            got["states"],
            json!([[minute, "up"], [minute + 5000, "down"]])
        );
        assert!(h.query(&KEY, false, "1y", now).is_err());
        // Up from `minute`, down from `minute + 5 s` to now: intact rate 5 s ÷ the span.
        let classes = [(
            "pump".to_owned(),
            vec![
                ("g".to_owned(), "d".to_owned()),
                ("g".to_owned(), "absent".to_owned()),
            ],
        )]
        .into();
        let r = h.intact_rates("s", &classes, minute - 60_000, now).unwrap();
        let want = 5000.0 / (now - minute) as f64;
        assert!((r["pump"] - want).abs() < 1e-9, "{r:?} vs {want}");
    }

    fn keep() -> Retention {
        Retention {
            raw: Duration::from_secs(48 * 3600),
            rollup: Duration::from_secs(90 * 86400),
        }
    }

    /// Waits until `f` holds of the query of `key` (the writer batches).
    async fn wait(
        h: &History,
        key: &DeviceKey<'_>,
        legacy: bool,
        now: i64,
        f: impl Fn(&Json) -> bool,
    ) -> Json {
        let mut got = Json::Null;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            got = h.query(key, legacy, "24h", now).unwrap();
            if f(&got) {
                break;
            }
        }
        got
    }

    #[tokio::test]
    async fn the_same_device_id_on_two_gateways_of_a_site_has_two_histories() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::start(dir.path(), keep()).unwrap();
        let now = gateway::run::unix_now_ms();
        let minute = now - now.rem_euclid(60_000) - 120_000;
        for (gw, v, st) in [("gw-1", 1.0, "up"), ("gw-2", 9.0, "down")] {
            let t = json!({"seq": 1, "ts": minute, "points": {"p": v}});
            h.offer("s", gw, "pump-1", t.to_string().as_bytes());
            let t = json!({"seq": 2, "state": st, "since": minute});
            h.offer("s", gw, "pump-1", t.to_string().as_bytes());
        }
        let one = DeviceKey {
            site: "s",
            gateway: "gw-1",
            device: "pump-1",
        };
        let two = DeviceKey {
            gateway: "gw-2",
            ..one
        };
        let ready =
            |j: &Json| !j["points"]["p"].is_null() && !j["states"].as_array().unwrap().is_empty();
        let a = wait(&h, &one, false, now, ready).await;
        let b = wait(&h, &two, false, now, ready).await;
        assert_eq!(a["points"]["p"], json!([[minute, 1.0, 1.0, 1.0]]), "{a}");
        assert_eq!(a["states"], json!([[minute, "up"]]));
        assert_eq!(b["points"]["p"], json!([[minute, 9.0, 9.0, 9.0]]), "{b}");
        assert_eq!(b["states"], json!([[minute, "down"]]));
        // Intact rates: each gateway's pump counts once, with its own states.
        let classes = [(
            "pump".to_owned(),
            vec![
                ("gw-1".to_owned(), "pump-1".to_owned()),
                ("gw-2".to_owned(), "pump-1".to_owned()),
            ],
        )]
        .into();
        let r = h.intact_rates("s", &classes, minute, now).unwrap();
        assert!((r["pump"] - 0.5).abs() < 1e-9, "{r:?}");
    }

    #[tokio::test]
    async fn a_version_1_history_is_migrated_and_its_rows_kept_as_legacy() {
        let dir = tempfile::tempdir().unwrap();
        let now = gateway::run::unix_now_ms();
        let minute = now - now.rem_euclid(60_000) - 120_000;
        {
            // The schema as version 1 created it.
            let c = Connection::open(dir.path().join("history.db")).unwrap();
            c.execute_batch(
                "CREATE TABLE raw (site TEXT NOT NULL, device TEXT NOT NULL, point TEXT NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL,
                     PRIMARY KEY (site, device, point, ts)) WITHOUT ROWID;
                 CREATE TABLE minute (site TEXT NOT NULL, device TEXT NOT NULL, point TEXT NOT NULL, ts INTEGER NOT NULL,
                     avg REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL, n INTEGER NOT NULL,
                     PRIMARY KEY (site, device, point, ts)) WITHOUT ROWID;
                 CREATE TABLE states (site TEXT NOT NULL, device TEXT NOT NULL, ts INTEGER NOT NULL, state TEXT NOT NULL,
                     PRIMARY KEY (site, device, ts)) WITHOUT ROWID;",
            )
            .unwrap();
            c.execute("INSERT INTO raw VALUES ('s', 'd', 'p', ?1, 4.0)", [minute])
                .unwrap();
            c.execute(
                "INSERT INTO minute VALUES ('s', 'd', 'p', ?1, 4.0, 4.0, 4.0, 1)",
                [minute],
            )
            .unwrap();
            c.execute("INSERT INTO states VALUES ('s', 'd', ?1, 'up')", [minute])
                .unwrap();
        }
        let h = History::start(dir.path(), keep()).unwrap();
        let c = Connection::open(dir.path().join("history.db")).unwrap();
        let version: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        for table in ["raw", "minute", "states"] {
            let legacy: i64 = c
                .query_row(
                    &format!("SELECT COUNT(*) FROM {table} WHERE gateway = ''"),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(legacy, 1, "{table}");
        }
        // Shown for the device when its id is on one gateway only.
        let got = h.query(&KEY, true, "24h", now).unwrap();
        assert_eq!(
            got["points"]["p"],
            json!([[minute, 4.0, 4.0, 4.0]]),
            "{got}"
        );
        assert_eq!(got["states"], json!([[minute, "up"]]));
        // Not shown when the id is on several gateways of the site.
        let got = h.query(&KEY, false, "24h", now).unwrap();
        assert_eq!(got["points"], json!({}), "{got}");
        assert_eq!(got["states"], json!([]));
        // New rows go under the gateway and join the legacy ones.
        let t = json!({"seq": 1, "type": "transition", "to": "down", "at": minute + 1000});
        h.offer("s", "g", "d", t.to_string().as_bytes());
        let got = wait(&h, &KEY, true, now, |j| {
            j["states"].as_array().unwrap().len() == 2
        })
        .await;
        assert_eq!(
            got["states"],
            json!([[minute, "up"], [minute + 1000, "down"]])
        );
        drop(h);
        // Opening again does not migrate twice.
        let c = open(&dir.path().join("history.db")).unwrap();
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM states", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
    }
}
