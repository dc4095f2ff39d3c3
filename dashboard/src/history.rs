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

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, params};
use serde_json::{Value as Json, json};
use tokio::sync::mpsc;
use tracing::warn;

/// Messages waiting for the writer at most; beyond, new ones are dropped
/// (counted in `dropped`).
const QUEUE: usize = 20_000;
/// How often the raw values and the minutes over are committed, in one
/// transaction (states: at once).
const COMMIT_EVERY: Duration = Duration::from_secs(5);
/// Raw values held for the next commit at most; beyond, it commits early.
const RAW_HELD: usize = 200_000;
/// A minute is written when its series has a value of a later minute, or
/// this long after the minute's end (by the dashboard's clock).
const MINUTE_GRACE_MS: i64 = 5_000;
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
    /// What the writer holds and has not written yet (queries add it).
    mem: Arc<Mutex<Memory>>,
    /// Messages not recorded because the queue was full.
    pub dropped: AtomicU64,
    /// History requests refused for their `range=` (`/api/health`).
    pub ranges_refused: AtomicU64,
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

/// A chart range of the device page: how far back, and the bucket of one
/// chart point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    H1,
    H6,
    H24,
    D7,
    D30,
}

impl Range {
    /// Every range, shortest first.
    pub const ALL: [Range; 5] = [Range::H1, Range::H6, Range::H24, Range::D7, Range::D30];

    /// The range of a `range=` value (`1h`, `6h`, `24h`, `7d`, `30d`).
    pub fn parse(s: &str) -> Option<Range> {
        Range::ALL.into_iter().find(|r| r.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            Range::H1 => "1h",
            Range::H6 => "6h",
            Range::H24 => "24h",
            Range::D7 => "7d",
            Range::D30 => "30d",
        }
    }

    /// How far back, in ms.
    pub fn span_ms(self) -> i64 {
        match self {
            Range::H1 => 3_600_000,
            Range::H6 => 6 * 3_600_000,
            Range::H24 => 86_400_000,
            Range::D7 => 7 * 86_400_000,
            Range::D30 => 30 * 86_400_000,
        }
    }

    /// One chart point, in ms (a multiple of the one-minute rollup).
    pub fn bucket_ms(self) -> i64 {
        match self {
            Range::H1 | Range::H6 | Range::H24 => 60_000,
            Range::D7 => 600_000,
            Range::D30 => 3_600_000,
        }
    }

    /// The shortest range that holds a minute starting at `newest` (the
    /// newest minute the device has), seen at `now_ms`; the shortest of
    /// all when the device has none.
    pub fn shortest_with(newest: Option<i64>, now_ms: i64) -> Range {
        let Some(t) = newest else {
            return Range::H1;
        };
        Range::ALL
            .into_iter()
            .find(|r| t >= now_ms - r.span_ms())
            .unwrap_or(Range::H1)
    }
}

/// What `range=` may say: a range, or `auto` (the shortest range with data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeArg {
    Auto,
    Fixed(Range),
}

impl RangeArg {
    /// The `range=` value (absent: `24h`, as before there was `auto`); an
    /// unknown one is refused with the values there are.
    pub fn parse(s: Option<&str>) -> Result<RangeArg, String> {
        match s {
            None => Ok(RangeArg::Fixed(Range::H24)),
            Some("auto") => Ok(RangeArg::Auto),
            Some(s) => Range::parse(s).map(RangeArg::Fixed).ok_or_else(|| {
                // Bounded: the echo of an untrusted value is cut.
                let shown: String = s.chars().take(16).collect();
                format!("range {shown:?} is not one of auto, 1h, 6h, 24h, 7d, 30d")
            }),
        }
    }
}

impl History {
    /// Opens (or creates) `dir/history.db` and starts the writer.
    pub fn start(dir: &Path, keep: Retention) -> Result<History, String> {
        let path = dir.join("history.db");
        let conn = open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let mem = Arc::new(Mutex::new(Memory::default()));
        let m = mem.clone();
        tokio::task::spawn_blocking(move || writer(conn, rx, keep, &m));
        Ok(History {
            tx,
            path,
            mem,
            dropped: AtomicU64::new(0),
            ranges_refused: AtomicU64::new(0),
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

    /// The shortest range with data of a device ([`Range::shortest_with`]):
    /// from the newest minute it has, in the table or not written yet.
    pub fn pick_range(
        &self,
        device: &DeviceKey<'_>,
        legacy: bool,
        now_ms: i64,
    ) -> Result<Range, String> {
        let DeviceKey {
            site,
            gateway,
            device,
        } = *device;
        // A device being heard has its newest minute in memory (never
        // older than what the table holds for it): no table scan.
        let held = lock(&self.mem)
            .unwritten(site, gateway, device, i64::MIN)
            .iter()
            .map(|(_, s, _)| *s)
            .max();
        if held.is_some() {
            return Ok(Range::shortest_with(held, now_ms));
        }
        let also = if legacy { LEGACY_GATEWAY } else { gateway };
        let c = Connection::open(&self.path).map_err(|e| e.to_string())?;
        let stored: Option<i64> = c
            .query_row(
                "SELECT MAX(ts) FROM minute WHERE site = ?1 AND device = ?2 AND gateway IN (?3, ?4)",
                params![site, device, gateway, also],
                |r| r.get(0),
            )
            .map_err(|e| e.to_string())?;
        Ok(Range::shortest_with(stored, now_ms))
    }

    /// Series of a device over `range` ending `now_ms`:
    /// `{"range","from","to","bucket_s","points":{name:[[ts,avg,min,max],…]},"states":[[ts,state],…]}`;
    /// the minutes the writer holds and has not written yet are included.
    /// `legacy`: include the rows migrated from schema version 1 for this
    /// site and device id (see the module doc).
    pub fn query(
        &self,
        device: &DeviceKey<'_>,
        legacy: bool,
        range: Range,
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
        let (span_ms, bucket_ms) = (range.span_ms(), range.bucket_ms());
        let from = now_ms - span_ms;
        let c = Connection::open(&self.path).map_err(|e| e.to_string())?;
        let mut st = c
            .prepare(
                "SELECT point, (ts / ?4) * ?4 AS b, SUM(avg * n), SUM(n), MIN(min), MAX(max)
                 FROM minute WHERE site = ?1 AND device = ?2 AND ts >= ?3
                   AND gateway IN (?5, ?6)
                 GROUP BY point, b ORDER BY point, b",
            )
            .map_err(|e| e.to_string())?;
        // Point → bucket → (sum, count, min, max).
        type Buckets = std::collections::BTreeMap<i64, (f64, i64, f64, f64)>;
        let mut sums: std::collections::BTreeMap<String, Buckets> = Default::default();
        // The writer commits under this lock: the table and the memory
        // are read as one picture (no minute counted twice or missed).
        let mem = lock(&self.mem);
        let rows = st
            .query_map(params![site, device, from, bucket_ms, gateway, also], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, f64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, f64>(4)?,
                    r.get::<_, f64>(5)?,
                ))
            })
            .map_err(|e| e.to_string())?;
        for row in rows {
            let (p, b, sum, n, min, max) = row.map_err(|e| e.to_string())?;
            sums.entry(p).or_default().insert(b, (sum, n, min, max));
        }
        for (p, start, m) in mem.unwritten(site, gateway, device, from) {
            let b = (start / bucket_ms) * bucket_ms;
            let e = sums
                .entry(p.to_owned())
                .or_default()
                .entry(b)
                .or_insert((0.0, 0, m.min, m.max));
            e.0 += m.sum;
            e.1 += m.n;
            e.2 = e.2.min(m.min);
            e.3 = e.3.max(m.max);
        }
        drop(mem);
        #[allow(clippy::cast_precision_loss)]
        let points: std::collections::BTreeMap<String, Vec<Json>> = sums
            .into_iter()
            .map(|(p, buckets)| {
                let rows = buckets
                    .into_iter()
                    .filter(|(_, (_, n, _, _))| *n > 0)
                    .map(|(b, (sum, n, min, max))| json!([b, sum / n as f64, min, max]))
                    .collect();
                (p, rows)
            })
            .collect();
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
            json!({"range": range.name(), "from": from, "to": now_ms, "bucket_s": bucket_ms / 1000, "points": points, "states": states}),
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

/// Numeric value of a point (booleans as 0/1), if any: what the history keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Num(Option<f64>);

impl<'de> serde::Deserialize<'de> for Num {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Num;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, b: bool) -> Result<Num, E> {
                Ok(Num(Some(f64::from(u8::from(b)))))
            }
            #[allow(clippy::cast_precision_loss)]
            fn visit_i64<E>(self, x: i64) -> Result<Num, E> {
                Ok(Num(Some(x as f64)))
            }
            #[allow(clippy::cast_precision_loss)]
            fn visit_u64<E>(self, x: u64) -> Result<Num, E> {
                Ok(Num(Some(x as f64)))
            }
            fn visit_f64<E>(self, x: f64) -> Result<Num, E> {
                Ok(Num(Some(x).filter(|f| f.is_finite())))
            }
            fn visit_str<E>(self, _: &str) -> Result<Num, E> {
                Ok(Num(None))
            }
            fn visit_unit<E>(self) -> Result<Num, E> {
                Ok(Num(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, a: A) -> Result<Num, A::Error> {
                serde::de::IgnoredAny.visit_seq(a).map(|_| Num(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, a: A) -> Result<Num, A::Error> {
                serde::de::IgnoredAny.visit_map(a).map(|_| Num(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A text field, borrowed from the payload when it has no escapes; `None`
/// for any other JSON value.
#[derive(Debug, Default)]
struct Text<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Borrowed(s))))
            }
            fn visit_str<E>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(s.to_owned()))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_unit<E>(self) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, a: A) -> Result<Text<'de>, A::Error> {
                serde::de::IgnoredAny.visit_seq(a).map(|_| Text(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, a: A) -> Result<Text<'de>, A::Error> {
                serde::de::IgnoredAny.visit_map(a).map(|_| Text(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// An integer field (`ts`, `at`, `since`) that fits `i64`; `None` for
/// any other JSON value (a fraction included).
#[derive(Clone, Copy, Debug, Default)]
struct Int(Option<i64>);

impl<'de> serde::Deserialize<'de> for Int {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Int;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_i64<E>(self, x: i64) -> Result<Int, E> {
                Ok(Int(Some(x)))
            }
            fn visit_u64<E>(self, x: u64) -> Result<Int, E> {
                Ok(Int(i64::try_from(x).ok()))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Int, E> {
                Ok(Int(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Int, E> {
                Ok(Int(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Int, E> {
                Ok(Int(None))
            }
            fn visit_unit<E>(self) -> Result<Int, E> {
                Ok(Int(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, a: A) -> Result<Int, A::Error> {
                serde::de::IgnoredAny.visit_seq(a).map(|_| Int(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, a: A) -> Result<Int, A::Error> {
                serde::de::IgnoredAny.visit_map(a).map(|_| Int(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A telemetry message's `points` when it is an object: each name with its
/// numeric value, if any (a name given twice: its last value, as a JSON
/// object keeps it); `None` for any other JSON value.
#[derive(Debug, Default)]
struct Points<'a>(Option<Vec<(Cow<'a, str>, Num)>>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Points<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Points<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Points<'de>, A::Error> {
                let mut out: Vec<(Cow<'de, str>, Num)> =
                    Vec::with_capacity(a.size_hint().unwrap_or(32).min(256));
                while let Some(Text(k)) = a.next_key::<Text<'de>>()? {
                    let v: Num = a.next_value()?;
                    let Some(k) = k else { continue };
                    match out.iter_mut().find(|(n, _)| *n == k) {
                        Some(slot) => slot.1 = v,
                        None => out.push((k, v)),
                    }
                }
                Ok(Points(Some(out)))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Points<'de>, E> {
                Ok(Points(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Points<'de>, E> {
                Ok(Points(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Points<'de>, E> {
                Ok(Points(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Points<'de>, E> {
                Ok(Points(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Points<'de>, E> {
                Ok(Points(None))
            }
            fn visit_unit<E>(self) -> Result<Points<'de>, E> {
                Ok(Points(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                a: A,
            ) -> Result<Points<'de>, A::Error> {
                serde::de::IgnoredAny.visit_seq(a).map(|_| Points(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// The fields of a telemetry, state or event message the history keeps,
/// read straight from the payload (no JSON tree; names and texts borrowed
/// where they have no escapes). Any other field is skipped.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct Payload<'a> {
    #[serde(borrow)]
    points: Points<'a>,
    ts: Int,
    #[serde(rename = "type", borrow)]
    kind: Text<'a>,
    #[serde(borrow)]
    state: Text<'a>,
    #[serde(borrow)]
    to: Text<'a>,
    at: Int,
    since: Int,
}

/// What the history keeps of one message.
#[derive(Debug, PartialEq)]
enum Kept<'a> {
    /// Telemetry: its time and each numeric point.
    Values(i64, Vec<(Cow<'a, str>, f64)>),
    /// A state (`state`, `since`) or a transition (`to`, `at`).
    State(Cow<'a, str>, i64),
    Nothing,
}

/// Reads what the history keeps of a payload (a JSON object; anything
/// else keeps nothing).
fn read(payload: &[u8]) -> Kept<'_> {
    // A JSON array would be read by field position: only objects count.
    if payload.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Kept::Nothing;
    }
    let Ok(p) = serde_json::from_slice::<Payload<'_>>(payload) else {
        return Kept::Nothing;
    };
    if let Some(points) = p.points.0 {
        let ts = p.ts.0.unwrap_or(0);
        return Kept::Values(
            ts,
            points
                .into_iter()
                .filter_map(|(k, v)| v.0.map(|x| (k, x)))
                .collect(),
        );
    }
    let (s, at) = match (p.kind.0.as_deref(), p.state.0) {
        (Some("transition"), _) => (p.to.0, p.at.0),
        (None, Some(s)) => (Some(s), p.since.0),
        _ => (None, None),
    };
    match (s, at) {
        (Some(s), Some(at)) => Kept::State(s, at),
        _ => Kept::Nothing,
    }
}

/// A device: (site, gateway, device id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceKey<'a> {
    pub site: &'a str,
    pub gateway: &'a str,
    pub device: &'a str,
}

/// One point of one device: (site, gateway, device, point).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SeriesKey {
    site: String,
    gateway: String,
    device: String,
    point: String,
}

/// One point's values in one minute: sum, min, max and count.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Minute {
    sum: f64,
    min: f64,
    max: f64,
    n: i64,
}

impl Minute {
    fn new(x: f64) -> Minute {
        Minute {
            sum: x,
            min: x,
            max: x,
            n: 1,
        }
    }
    fn add(&mut self, x: f64) {
        self.sum += x;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        self.n += 1;
    }
    fn merge(&mut self, o: &Minute) {
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.n += o.n;
    }
}

/// What the writer holds between commits and the queries read as well:
/// the series seen, each one's minute being summed, and the minutes over
/// but not written yet. A minute is written once, when it is over (see
/// [`MINUTE_GRACE_MS`]); a value arriving for a minute already written is
/// merged into its row.
#[derive(Debug, Default)]
struct Memory {
    series: Vec<SeriesKey>,
    /// `site\0gateway\0device\0point` → index in `series`.
    ids: HashMap<String, u32>,
    /// `site\0gateway\0device` → its series.
    by_device: HashMap<String, Vec<u32>>,
    /// Per series: the start of its newest minute and the sums so far.
    open: Vec<Option<(i64, Minute)>>,
    /// (series, minute start) over, to be written at the next commit.
    done: HashMap<(u32, i64), Minute>,
    /// Per series, its place in the key order (the raw table's order);
    /// empty when a series was added since it was computed.
    rank: Vec<u32>,
}

/// The device part of a series name.
fn device_name(buf: &mut String, site: &str, gateway: &str, device: &str) {
    buf.clear();
    buf.push_str(site);
    buf.push('\0');
    buf.push_str(gateway);
    buf.push('\0');
    buf.push_str(device);
}

impl Memory {
    /// The id of a series, added when new. `buf` holds the device's name
    /// ([`device_name`]) and is given back as it was.
    fn id(&mut self, buf: &mut String, key: (&str, &str, &str), point: &str) -> u32 {
        let len = buf.len();
        buf.push('\0');
        buf.push_str(point);
        let id = match self.ids.get(buf.as_str()) {
            Some(id) => *id,
            None => {
                let id = u32::try_from(self.series.len()).unwrap_or(u32::MAX);
                self.ids.insert(buf.clone(), id);
                self.by_device
                    .entry(buf[..len].to_owned())
                    .or_default()
                    .push(id);
                self.series.push(SeriesKey {
                    site: key.0.to_owned(),
                    gateway: key.1.to_owned(),
                    device: key.2.to_owned(),
                    point: point.to_owned(),
                });
                self.open.push(None);
                self.rank.clear();
                id
            }
        };
        buf.truncate(len);
        id
    }

    /// Adds a value of series `id` at `ts` to its minute.
    fn add(&mut self, id: u32, ts: i64, x: f64) {
        let start = ts - ts.rem_euclid(60_000);
        let Some(slot) = self.open.get_mut(id as usize) else {
            return;
        };
        match slot {
            Some((s, m)) if *s == start => m.add(x),
            Some((s, m)) if *s < start => {
                let over = (*s, *m);
                *slot = Some((start, Minute::new(x)));
                self.finish(id, over.0, &over.1);
            }
            // A value for an earlier minute than the series' newest.
            Some(_) => self.finish(id, start, &Minute::new(x)),
            None => *slot = Some((start, Minute::new(x))),
        }
    }

    fn finish(&mut self, id: u32, start: i64, m: &Minute) {
        self.done
            .entry((id, start))
            .and_modify(|d| d.merge(m))
            .or_insert(*m);
    }

    /// Moves the minutes over (that began at or before `before`) to `done`.
    fn close(&mut self, before: i64) {
        for id in 0..self.open.len() {
            if let Some((s, m)) = self.open[id]
                && s <= before
            {
                self.open[id] = None;
                self.finish(u32::try_from(id).unwrap_or(u32::MAX), s, &m);
            }
        }
    }

    /// Computes each series' place in the key order (`rank`) if a series
    /// was added since.
    fn rank_series(&mut self) {
        if self.rank.len() != self.series.len() {
            let mut order: Vec<u32> =
                (0..u32::try_from(self.series.len()).unwrap_or(u32::MAX)).collect();
            order.sort_by(|a, b| self.series[*a as usize].cmp(&self.series[*b as usize]));
            self.rank = vec![0; order.len()];
            for (place, id) in order.iter().enumerate() {
                self.rank[*id as usize] = u32::try_from(place).unwrap_or(u32::MAX);
            }
        }
    }

    /// The minutes of a device not in the table yet, from `from` on:
    /// (point, minute start, sums).
    fn unwritten(
        &self,
        site: &str,
        gateway: &str,
        device: &str,
        from: i64,
    ) -> Vec<(&str, i64, Minute)> {
        let mut name = String::new();
        device_name(&mut name, site, gateway, device);
        let Some(ids) = self.by_device.get(&name) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for id in ids {
            let point = self.series[*id as usize].point.as_str();
            if let Some(Some((s, m))) = self.open.get(*id as usize)
                && *s >= from
            {
                out.push((point, *s, *m));
            }
        }
        if !self.done.is_empty() {
            for ((id, s), m) in &self.done {
                if *s >= from && ids.contains(id) {
                    out.push((self.series[*id as usize].point.as_str(), *s, *m));
                }
            }
        }
        out
    }
}

/// The Memory lock; a writer that panicked while holding it left sums
/// that are still usable.
fn lock(m: &Mutex<Memory>) -> MutexGuard<'_, Memory> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What waits for the next commit besides the minutes.
#[derive(Debug, Default)]
struct Held {
    /// (series, ts, value), in arrival order.
    raw: Vec<(u32, i64, f64)>,
    /// (site, gateway, device, ts, state).
    states: Vec<(String, String, String, i64, String)>,
}

/// The last state recorded per `site\0gateway\0device`.
type LastState = HashMap<String, String>;

/// Takes one message into `mem` and `held`.
fn take(
    mem: &mut Memory,
    held: &mut Held,
    last_state: &mut LastState,
    buf: &mut String,
    (site, gateway, device, payload): &Item,
) {
    match read(payload) {
        Kept::Values(ts, points) => {
            device_name(buf, site, gateway, device);
            for (p, x) in points {
                let id = mem.id(buf, (site, gateway, device), &p);
                held.raw.push((id, ts, x));
                mem.add(id, ts, x);
            }
        }
        Kept::State(s, at) => {
            device_name(buf, site, gateway, device);
            if last_state.get(buf.as_str()).map(String::as_str) != Some(&*s) {
                held.states.push((
                    site.clone(),
                    gateway.clone(),
                    device.clone(),
                    at,
                    s.to_string(),
                ));
                last_state.insert(buf.clone(), s.into_owned());
            }
        }
        Kept::Nothing => {}
    }
}

fn writer(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Item>,
    keep: Retention,
    mem: &Mutex<Memory>,
) {
    let mut last_prune = std::time::Instant::now() - PRUNE_EVERY;
    // Per device, the last state recorded (to keep only changes).
    let mut last_state: LastState = HashMap::new();
    let mut held = Held::default();
    let mut last_commit = std::time::Instant::now();
    let mut buf = String::new();
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
        if !batch.is_empty() {
            let mut m = lock(mem);
            for item in &batch {
                take(&mut m, &mut held, &mut last_state, &mut buf, item);
            }
        }
        if closed || last_commit.elapsed() >= COMMIT_EVERY || held.raw.len() >= RAW_HELD {
            last_commit = std::time::Instant::now();
            let mut m = lock(mem);
            // Minutes over: every one at the end, else those that ended
            // MINUTE_GRACE_MS ago.
            let before = if closed {
                i64::MAX
            } else {
                gateway::run::unix_now_ms() - 60_000 - MINUTE_GRACE_MS
            };
            m.close(before);
            let values = held.raw.len();
            if let Err(e) = commit(&mut conn, &mut m, &mut held, true) {
                warn!(error = %e, values, "cannot record history; these values are not kept");
            }
        } else if !held.states.is_empty() {
            // States are written at once: the device page's state band and
            // the intact rates read them.
            let mut m = lock(mem);
            if let Err(e) = commit(&mut conn, &mut m, &mut held, false) {
                warn!(error = %e, "cannot record history; these states are not kept");
            }
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

/// The statements of a commit, prepared once per connection (rusqlite's
/// cache). None compares a bound value with an indexed column in a
/// `WHERE`, so SQLite's STAT4 never prepares them again for new values
/// (`the_writers_statements_are_prepared_once` checks it).
const INSERT_RAW: &str = "INSERT OR REPLACE INTO raw (site, gateway, device, point, ts, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const INSERT_STATE: &str =
    "INSERT OR REPLACE INTO states (site, gateway, device, ts, state) VALUES (?1, ?2, ?3, ?4, ?5)";
const UPSERT_MINUTE: &str = "INSERT INTO minute (site, gateway, device, point, ts, avg, min, max, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
     ON CONFLICT (site, gateway, device, point, ts) DO UPDATE SET
       avg = (avg * n + excluded.avg * excluded.n) / (n + excluded.n), min = MIN(min, excluded.min),
       max = MAX(max, excluded.max), n = n + excluded.n";

/// Writes in one transaction the states held and, with `all`, the raw
/// values (in the table's key order: neighbouring rows, fewer pages) and
/// the minutes over. What was held is let go even when the write fails
/// (logged by the caller), so that memory stays bounded.
fn commit(
    conn: &mut Connection,
    mem: &mut Memory,
    held: &mut Held,
    all: bool,
) -> rusqlite::Result<()> {
    let r = (|| {
        let tx = conn.transaction()?;
        {
            let mut state = tx.prepare_cached(INSERT_STATE)?;
            for (site, gateway, device, at, s) in &held.states {
                state.execute(params![site, gateway, device, at, s])?;
            }
            if all {
                mem.rank_series();
                let rank = &mem.rank;
                // Stable: of two values of one point at one time, the
                // later replaces the earlier, as they arrived.
                held.raw
                    .sort_by_key(|(id, ts, _)| (rank[*id as usize], *ts));
                let mut raw = tx.prepare_cached(INSERT_RAW)?;
                for (id, ts, x) in &held.raw {
                    let k = &mem.series[*id as usize];
                    raw.execute(params![k.site, k.gateway, k.device, k.point, ts, x])?;
                }
                let mut done: Vec<_> = mem.done.iter().collect();
                done.sort_by_key(|((id, s), _)| (rank[*id as usize], *s));
                let mut minute = tx.prepare_cached(UPSERT_MINUTE)?;
                for ((id, s), m) in done {
                    let k = &mem.series[*id as usize];
                    #[allow(clippy::cast_precision_loss)]
                    let avg = m.sum / m.n as f64;
                    minute.execute(params![
                        k.site, k.gateway, k.device, k.point, s, avg, m.min, m.max, m.n
                    ])?;
                }
            }
        }
        tx.commit()
    })();
    held.states.clear();
    if all {
        held.raw.clear();
        mem.done.clear();
    }
    r
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
            got = h.query(&KEY, false, Range::H24, now).unwrap();
            // States are written at once; minutes not written yet are read from memory.
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
        assert!(RangeArg::parse(Some("1y")).is_err());
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
            got = h.query(key, legacy, Range::H24, now).unwrap();
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
        let got = h.query(&KEY, true, Range::H24, now).unwrap();
        assert_eq!(
            got["points"]["p"],
            json!([[minute, 4.0, 4.0, 4.0]]),
            "{got}"
        );
        assert_eq!(got["states"], json!([[minute, "up"]]));
        // Not shown when the id is on several gateways of the site.
        let got = h.query(&KEY, false, Range::H24, now).unwrap();
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
    #[test]
    fn ranges_are_parsed_with_bounds() {
        for (s, r) in [
            ("1h", Range::H1),
            ("6h", Range::H6),
            ("24h", Range::H24),
            ("7d", Range::D7),
            ("30d", Range::D30),
        ] {
            assert_eq!(RangeArg::parse(Some(s)), Ok(RangeArg::Fixed(r)));
            assert_eq!(r.name(), s);
            assert_eq!(r.span_ms() % r.bucket_ms(), 0);
        }
        assert_eq!(RangeArg::parse(Some("auto")), Ok(RangeArg::Auto));
        // Absent: 24 h, as before the short ranges.
        assert_eq!(RangeArg::parse(None), Ok(RangeArg::Fixed(Range::H24)));
        for bad in ["", "1y", "1H", " 1h", "2h", "24h ", "-1h"] {
            let e = RangeArg::parse(Some(bad)).unwrap_err();
            assert!(e.contains("auto, 1h, 6h, 24h, 7d, 30d"), "{e}");
        }
        // An untrusted value is echoed cut.
        let e = RangeArg::parse(Some(&"x".repeat(10_000))).unwrap_err();
        assert!(e.len() < 100, "{e}");
    }

    #[test]
    fn the_shortest_range_with_data_is_picked() {
        let now = 100 * 86_400_000;
        let min = 60_000;
        assert_eq!(Range::shortest_with(None, now), Range::H1);
        assert_eq!(Range::shortest_with(Some(now - min), now), Range::H1);
        assert_eq!(Range::shortest_with(Some(now - 3_600_000), now), Range::H1);
        assert_eq!(
            Range::shortest_with(Some(now - 2 * 3_600_000), now),
            Range::H6
        );
        assert_eq!(
            Range::shortest_with(Some(now - 7 * 3_600_000), now),
            Range::H24
        );
        assert_eq!(
            Range::shortest_with(Some(now - 2 * 86_400_000), now),
            Range::D7
        );
        assert_eq!(
            Range::shortest_with(Some(now - 8 * 86_400_000), now),
            Range::D30
        );
        // Nothing within 30 days: the shortest.
        assert_eq!(
            Range::shortest_with(Some(now - 31 * 86_400_000), now),
            Range::H1
        );
    }

    /// The history's reading of a payload, as it was with a JSON tree.
    fn read_as_tree(payload: &[u8]) -> Kept<'static> {
        let Ok(v) = serde_json::from_slice::<Json>(payload) else {
            return Kept::Nothing;
        };
        let number = |v: &Json| match v {
            Json::Number(n) => n.as_f64().filter(|f| f.is_finite()),
            Json::Bool(b) => Some(f64::from(u8::from(*b))),
            _ => None,
        };
        if let Some(points) = v.get("points").and_then(Json::as_object) {
            let ts = v.get("ts").and_then(Json::as_i64).unwrap_or(0);
            let mut out: Vec<(Cow<'static, str>, f64)> = points
                .iter()
                .filter_map(|(k, x)| number(x).map(|x| (Cow::Owned(k.clone()), x)))
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            return Kept::Values(ts, out);
        }
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
        match (s, at) {
            (Some(s), Some(at)) => Kept::State(Cow::Owned(s.to_owned()), at),
            _ => Kept::Nothing,
        }
    }

    #[test]
    fn payloads_are_read_as_with_a_json_tree() {
        let cases = [
            r#"{"seq":1,"ts":1795750631979,"device":"p","points":{"a":1,"b":2.5,"c":true,"d":false,"e":"txt","f":null,"g":[1],"h":{"x":1},"i":18446744073709551615,"j":-3},"units":{"a":"bar"},"quality":{}}"#,
            r#"{"ts":5,"points":{"a":1,"a":2}}"#,
            r#"{"points":{"p\u0031":1.5}}"#,
            r#"{"ts":1.5,"points":{"a":1}}"#,
            r#"{"points":[1,2]}"#,
            r#"{"points":null,"state":"up","since":7}"#,
            r#"{"state":"down","since":9,"reason":"comms","availability":{"month":0.5}}"#,
            r#"{"state":"up"}"#,
            r#"{"type":"transition","to":"down","at":11,"state":"up"}"#,
            r#"{"type":"threshold","state":"up","since":1}"#,
            r#"{"type":5,"state":"up","since":3}"#,
            r#"{"state":"m\u00e4","since":-4}"#,
            r#"{"state":1,"since":2}"#,
            r#"[{"points":{"a":1}}]"#,
            r#"  {"points":{}}"#,
            r#"not json"#,
            r#"{"points":{"a":1e400}}"#,
        ];
        for c in cases {
            let mut got = read(c.as_bytes());
            if let Kept::Values(_, v) = &mut got {
                v.sort_by(|a, b| a.0.cmp(&b.0));
            }
            assert_eq!(got, read_as_tree(c.as_bytes()), "{c}");
        }
        // Names without escapes are borrowed from the payload.
        let Kept::Values(_, v) = read(br#"{"points":{"abc":1}}"#) else {
            panic!("not values")
        };
        assert!(matches!(v[0].0, Cow::Borrowed("abc")));
    }

    #[test]
    fn the_writers_statements_are_prepared_once() {
        use rusqlite::StatementStatus;
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("history.db")).unwrap();
        let mut mem = Memory::default();
        let mut held = Held::default();
        let mut last_state = LastState::new();
        let mut buf = String::new();
        for round in 0..3i64 {
            for d in 0..20 {
                let t = json!({"ts": 60_000 * round + d, "points": {"a": d, "b": round}});
                let item = (
                    "s".to_owned(),
                    "g".to_owned(),
                    format!("d{d}"),
                    t.to_string().into_bytes(),
                );
                take(&mut mem, &mut held, &mut last_state, &mut buf, &item);
                let st = json!({"state": if round % 2 == 0 { "up" } else { "down" }, "since": round * 1000 + d});
                let item = (
                    "s".to_owned(),
                    "g".to_owned(),
                    format!("d{d}"),
                    st.to_string().into_bytes(),
                );
                take(&mut mem, &mut held, &mut last_state, &mut buf, &item);
            }
            mem.close(i64::MAX);
            commit(&mut conn, &mut mem, &mut held, true).unwrap();
        }
        for sql in [INSERT_RAW, INSERT_STATE, UPSERT_MINUTE] {
            let st = conn.prepare_cached(sql).unwrap();
            assert!(st.get_status(StatementStatus::Run) > 0, "{sql}: never run");
            assert_eq!(
                st.get_status(StatementStatus::RePrepare),
                0,
                "{sql}: prepared again"
            );
        }
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM raw", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3 * 20 * 2);
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM minute", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3 * 20 * 2);
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM states", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3 * 20);
    }

    #[test]
    fn a_minute_is_written_once_and_late_values_merge_into_it() {
        let mut m = Memory::default();
        let mut buf = String::new();
        device_name(&mut buf, "s", "g", "d");
        let a = m.id(&mut buf, ("s", "g", "d"), "a");
        assert_eq!(m.id(&mut buf, ("s", "g", "d"), "a"), a);
        assert_eq!(buf, "s\0g\0d");
        m.add(a, 1_000, 1.0);
        m.add(a, 2_000, 3.0);
        assert!(m.done.is_empty());
        // The next minute: the first is over.
        m.add(a, 61_000, 10.0);
        assert_eq!(
            m.done[&(a, 0)],
            Minute {
                sum: 4.0,
                min: 1.0,
                max: 3.0,
                n: 2
            }
        );
        // A late value of the first minute joins it.
        m.add(a, 3_000, -1.0);
        assert_eq!(
            m.done[&(a, 0)],
            Minute {
                sum: 3.0,
                min: -1.0,
                max: 3.0,
                n: 3
            }
        );
        let mut got = m.unwritten("s", "g", "d", 0);
        got.sort_by_key(|x| x.1);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], ("a", 60_000, Minute::new(10.0)));
        assert!(m.unwritten("s", "g", "other", 0).is_empty());
        assert_eq!(m.unwritten("s", "g", "d", 60_001).len(), 0);
        m.close(0);
        assert!(m.open[a as usize].is_some(), "a minute not over stays open");
        m.close(60_000);
        assert!(m.open[a as usize].is_none());
        assert_eq!(m.done.len(), 2);
    }

    #[tokio::test]
    async fn fresh_values_are_in_the_query_before_their_minute_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::start(dir.path(), keep()).unwrap();
        let now = gateway::run::unix_now_ms();
        let minute = now - now.rem_euclid(60_000);
        for (i, v) in [2.0, 4.0].iter().enumerate() {
            let t = json!({"seq": i, "ts": minute + i as i64, "points": {"p": v}});
            h.offer("s", "g", "d", t.to_string().as_bytes());
        }
        let got = wait(&h, &KEY, false, now, |j| !j["points"]["p"].is_null()).await;
        assert_eq!(
            got["points"]["p"],
            json!([[minute, 3.0, 2.0, 4.0]]),
            "{got}"
        );
        assert_eq!(h.pick_range(&KEY, false, now).unwrap(), Range::H1);
        let other = DeviceKey {
            device: "none",
            ..KEY
        };
        assert_eq!(h.pick_range(&other, false, now).unwrap(), Range::H1);
        let got = h.query(&KEY, false, Range::H1, now).unwrap();
        assert_eq!(got["range"], "1h");
        assert_eq!(got["bucket_s"], 60);
    }
}
