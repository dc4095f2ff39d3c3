//! The disk outbox: every message bound for MQTT is appended here first,
//! with its `seq`, and removed only when the broker has acknowledged it.
//!
//! One SQLite file, `<data_dir>/outbox.db` (WAL), apart from the ledger so
//! that a burst of telemetry never waits on ledger writes. Two connections
//! use it: the writer (the run loop: appends in batches) and the publisher
//! (reads in `seq` order, deletes what the broker acknowledged).
//!
//! - **`seq`** is the row key: strictly increasing, never reused, across
//!   restarts (the next value is kept in `meta` in the same transaction as
//!   each append, so a deleted tail is never handed out again).
//! - **Bounded.** The writer keeps the outbox under `max_bytes` (payload
//!   and topic bytes): when an append would exceed it, the oldest
//!   *telemetry* rows are deleted first, counted and logged. Events,
//!   states, tickets and alarms are never dropped; if only they remain, the
//!   outbox grows past the limit and says so.
//! - **fsync policy** ([`Fsync`]): `always` = `synchronous = FULL`; `batch`
//!   (default) = `NORMAL` (a crash loses nothing, a power cut can lose the
//!   last appends since the last checkpoint); `off` = `OFF`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gateway_core::config::Fsync;
use rusqlite::{Connection, OptionalExtension, params};

/// The MQTT outbox file in the data directory.
pub const OUTBOX_FILE: &str = "outbox.db";
/// The InfluxDB outbox file in the data directory.
pub const INFLUX_FILE: &str = "influx-outbox.db";

/// Bytes counted per row beyond topic and payload (row overhead, roughly).
const ROW_OVERHEAD: u64 = 32;

/// Why the outbox failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The file cannot be opened or created.
    #[error("cannot open the outbox {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// A read or write failed.
    #[error("outbox: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// What kind of message a record is (only telemetry may be dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Telemetry: dropped first when the outbox is full.
    Telemetry,
    /// Everything else: never dropped.
    Other,
}

/// A message to append (its payload already carries its `seq`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRecord {
    /// MQTT topic.
    pub topic: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// 0 or 1.
    pub qos: u8,
    /// Retained.
    pub retain: bool,
    /// Telemetry or not.
    pub kind: Kind,
}

/// A stored message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its sequence number.
    pub seq: u64,
    /// MQTT topic.
    pub topic: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// 0 or 1.
    pub qos: u8,
    /// Retained.
    pub retain: bool,
}

/// Counters shared by the writer and the publisher.
#[derive(Debug, Default)]
pub struct OutboxStats {
    /// Bytes stored now (approximate: topic + payload + overhead).
    pub bytes: AtomicU64,
    /// Records stored now.
    pub records: AtomicU64,
    /// Telemetry records dropped because the outbox was full, since start.
    pub dropped: AtomicU64,
    /// Records acknowledged by the broker and removed, since start.
    pub delivered: AtomicU64,
    /// The highest seq appended so far (0: none yet).
    pub last_seq: AtomicU64,
}

fn open(path: &Path, fsync: Fsync) -> Result<Connection, OutboxError> {
    let path = path.to_path_buf();
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let wrap = |source| OutboxError::Open {
        path: path.clone(),
        source,
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Err(wrap(rusqlite::Error::InvalidPath(PathBuf::from(format!(
            "{}: {e}",
            dir.display()
        )))));
    }
    let c = Connection::open(&path).map_err(wrap)?;
    c.busy_timeout(Duration::from_secs(5)).map_err(wrap)?;
    c.pragma_update(None, "journal_mode", "WAL").map_err(wrap)?;
    let sync = match fsync {
        Fsync::Always => "FULL",
        Fsync::Batch => "NORMAL",
        Fsync::Off => "OFF",
    };
    c.pragma_update(None, "synchronous", sync).map_err(wrap)?;
    // The outbox is read front to back: a small page cache is enough
    // (SQLite's default is 2 MB per connection).
    c.pragma_update(None, "cache_size", -256).map_err(wrap)?;
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS records (
             seq INTEGER PRIMARY KEY,
             topic TEXT NOT NULL,
             payload BLOB NOT NULL,
             qos INTEGER NOT NULL,
             retain INTEGER NOT NULL,
             telemetry INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS records_telemetry ON records (telemetry, seq);
         CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
    )
    .map_err(wrap)?;
    Ok(c)
}

/// The writing side (one per gateway).
#[derive(Debug)]
pub struct OutboxWriter {
    conn: Connection,
    next_seq: u64,
    max_bytes: u64,
    stats: Arc<OutboxStats>,
    full_warned: bool,
}

impl OutboxWriter {
    /// Opens (creating) the MQTT outbox in `dir`.
    pub fn open(dir: &Path, fsync: Fsync, max_bytes: u64) -> Result<OutboxWriter, OutboxError> {
        OutboxWriter::open_at(&dir.join(OUTBOX_FILE), fsync, max_bytes)
    }

    /// Opens (creating) an outbox file.
    pub fn open_at(file: &Path, fsync: Fsync, max_bytes: u64) -> Result<OutboxWriter, OutboxError> {
        let conn = open(file, fsync)?;
        let stored: Option<i64> = conn
            .query_row("SELECT value FROM meta WHERE key = 'next_seq'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let max: Option<i64> = conn.query_row("SELECT MAX(seq) FROM records", [], |r| r.get(0))?;
        let next_seq = stored
            .unwrap_or(1)
            .max(max.map_or(1, |m| m.saturating_add(1)))
            .max(1);
        let (records, bytes): (i64, i64) = conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(topic) + LENGTH(payload)), 0) FROM records",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let stats = Arc::new(OutboxStats::default());
        let next_seq = u64::try_from(next_seq).unwrap_or(1);
        stats.last_seq.store(next_seq - 1, Ordering::Relaxed);
        let records = u64::try_from(records).unwrap_or(0);
        stats.records.store(records, Ordering::Relaxed);
        stats.bytes.store(
            u64::try_from(bytes).unwrap_or(0) + records * ROW_OVERHEAD,
            Ordering::Relaxed,
        );
        Ok(OutboxWriter {
            conn,
            next_seq,
            max_bytes,
            stats,
            full_warned: false,
        })
    }

    /// The counters, shared with the publisher.
    pub fn stats(&self) -> Arc<OutboxStats> {
        Arc::clone(&self.stats)
    }

    /// The seq the next appended record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Reserves one seq without storing anything (for messages that are not
    /// kept, such as the status published at each connection).
    pub fn reserve(&mut self) -> Result<u64, OutboxError> {
        let seq = self.next_seq;
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES ('next_seq', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [i64::try_from(seq + 1).unwrap_or(i64::MAX)],
        )?;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Appends records in one transaction; `build` is given each record's
    /// seq, in order, and returns the record. Returns how many telemetry
    /// records were dropped to make room.
    pub fn append<T>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        mut build: impl FnMut(u64, T) -> NewRecord,
    ) -> Result<u64, OutboxError> {
        let tx = self.conn.transaction()?;
        let mut seq = self.next_seq;
        let mut added_bytes = 0u64;
        let mut added = 0u64;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO records (seq, topic, payload, qos, retain, telemetry) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for item in items {
                let r = build(seq, item);
                added_bytes += (r.topic.len() + r.payload.len()) as u64 + ROW_OVERHEAD;
                stmt.execute(params![
                    i64::try_from(seq).unwrap_or(i64::MAX),
                    r.topic,
                    r.payload,
                    r.qos,
                    r.retain,
                    r.kind == Kind::Telemetry
                ])?;
                seq += 1;
                added += 1;
            }
        }
        if added == 0 {
            return Ok(0);
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('next_seq', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [i64::try_from(seq).unwrap_or(i64::MAX)],
        )?;
        // Make room: the oldest telemetry goes first.
        let mut dropped = 0u64;
        let mut freed = 0u64;
        let mut total = self.stats.bytes.load(Ordering::Relaxed) + added_bytes;
        while total > self.max_bytes {
            let victims: Vec<(i64, i64)> = tx
                .prepare_cached(
                    "SELECT seq, LENGTH(topic) + LENGTH(payload) FROM records
                     WHERE telemetry = 1 ORDER BY seq LIMIT 256",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            if victims.is_empty() {
                break;
            }
            let mut del = tx.prepare_cached("DELETE FROM records WHERE seq = ?1")?;
            for (s, len) in victims {
                del.execute([s])?;
                let b = u64::try_from(len).unwrap_or(0) + ROW_OVERHEAD;
                freed += b;
                total = total.saturating_sub(b);
                dropped += 1;
                if total <= self.max_bytes {
                    break;
                }
            }
        }
        tx.commit()?;
        self.next_seq = seq;
        self.stats.last_seq.store(seq - 1, Ordering::Relaxed);
        self.stats
            .bytes
            .fetch_add(added_bytes.saturating_sub(freed), Ordering::Relaxed);
        if freed > added_bytes {
            self.stats
                .bytes
                .fetch_sub(freed - added_bytes, Ordering::Relaxed);
        }
        self.stats
            .records
            .fetch_add(added.saturating_sub(dropped), Ordering::Relaxed);
        if dropped > added {
            self.stats
                .records
                .fetch_sub(dropped - added, Ordering::Relaxed);
        }
        if dropped > 0 {
            self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
            tracing::warn!(
                dropped,
                max_bytes = self.max_bytes,
                "outbox full: the oldest telemetry was dropped to make room"
            );
        }
        if total > self.max_bytes && !self.full_warned {
            tracing::error!(
                bytes = total,
                max_bytes = self.max_bytes,
                "outbox over its limit with events, states and tickets only; they are kept"
            );
            self.full_warned = true;
        } else if total <= self.max_bytes {
            self.full_warned = false;
        }
        Ok(dropped)
    }
}

/// The reading side (the MQTT publisher).
#[derive(Debug)]
pub struct OutboxReader {
    conn: Connection,
    stats: Arc<OutboxStats>,
}

impl OutboxReader {
    /// Opens the MQTT outbox of `dir` (after the writer created it).
    pub fn open(dir: &Path, fsync: Fsync, stats: Arc<OutboxStats>) -> Result<Self, OutboxError> {
        OutboxReader::open_at(&dir.join(OUTBOX_FILE), fsync, stats)
    }

    /// Opens an outbox file (after its writer created it).
    pub fn open_at(
        file: &Path,
        fsync: Fsync,
        stats: Arc<OutboxStats>,
    ) -> Result<Self, OutboxError> {
        Ok(OutboxReader {
            conn: open(file, fsync)?,
            stats,
        })
    }

    /// Up to `limit` records with seq > `after`, in seq order.
    pub fn after(&self, after: u64, limit: usize) -> Result<Vec<Record>, OutboxError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, topic, payload, qos, retain FROM records WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(
            params![
                i64::try_from(after).unwrap_or(i64::MAX),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            |r| {
                Ok(Record {
                    seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                    topic: r.get(1)?,
                    payload: r.get(2)?,
                    qos: r.get(3)?,
                    retain: r.get(4)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes delivered records (in one transaction).
    pub fn remove(&mut self, seqs: &[u64]) -> Result<(), OutboxError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        let mut freed = 0u64;
        let mut removed = 0u64;
        {
            let mut len = tx.prepare_cached(
                "SELECT LENGTH(topic) + LENGTH(payload) FROM records WHERE seq = ?1",
            )?;
            let mut del = tx.prepare_cached("DELETE FROM records WHERE seq = ?1")?;
            for s in seqs {
                let s = i64::try_from(*s).unwrap_or(i64::MAX);
                let l: Option<i64> = len.query_row([s], |r| r.get(0)).optional()?;
                if let Some(l) = l {
                    del.execute([s])?;
                    freed += u64::try_from(l).unwrap_or(0) + ROW_OVERHEAD;
                    removed += 1;
                }
            }
        }
        tx.commit()?;
        let sub = |a: &AtomicU64, n: u64| {
            let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
        };
        sub(&self.stats.bytes, freed);
        sub(&self.stats.records, removed);
        self.stats.delivered.fetch_add(removed, Ordering::Relaxed);
        Ok(())
    }

    /// Records stored now.
    pub fn len(&self) -> Result<u64, OutboxError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> Result<bool, OutboxError> {
        Ok(self.len()? == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: Kind, n: usize) -> impl FnMut(u64, usize) -> NewRecord {
        move |seq, i| NewRecord {
            topic: format!("t/{i}"),
            payload: format!("{{\"seq\":{seq}}}{}", "x".repeat(n)).into_bytes(),
            qos: 1,
            retain: false,
            kind,
        }
    }

    #[test]
    fn seq_grows_across_reopen_even_when_everything_was_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = OutboxWriter::open(dir.path(), Fsync::Batch, 10_000_000).unwrap();
        w.append(0..3, rec(Kind::Other, 0)).unwrap();
        let mut r = OutboxReader::open(dir.path(), Fsync::Batch, w.stats()).unwrap();
        let got = r.after(0, 10).unwrap();
        assert_eq!(got.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        r.remove(&[1, 2, 3]).unwrap();
        assert!(r.is_empty().unwrap());
        drop((w, r));
        let mut w = OutboxWriter::open(dir.path(), Fsync::Batch, 10_000_000).unwrap();
        assert_eq!(w.next_seq(), 4);
        assert_eq!(w.reserve().unwrap(), 4);
        w.append(0..1, rec(Kind::Other, 0)).unwrap();
        let r = OutboxReader::open(dir.path(), Fsync::Batch, w.stats()).unwrap();
        assert_eq!(r.after(0, 10).unwrap()[0].seq, 5);
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_telemetry_never_events() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = OutboxWriter::open(dir.path(), Fsync::Off, 12_000).unwrap();
        w.append(0..5, rec(Kind::Other, 1000)).unwrap();
        w.append(0..10, rec(Kind::Telemetry, 1000)).unwrap();
        let stats = w.stats();
        assert!(stats.dropped.load(Ordering::Relaxed) > 0);
        assert!(stats.bytes.load(Ordering::Relaxed) <= 12_000);
        let r = OutboxReader::open(dir.path(), Fsync::Off, w.stats()).unwrap();
        let seqs: Vec<u64> = r.after(0, 100).unwrap().iter().map(|r| r.seq).collect();
        // The five events survive; the newest telemetry fills the rest.
        assert_eq!(&seqs[..5], &[1, 2, 3, 4, 5]);
        assert_eq!(*seqs.last().unwrap(), 15);
        // Only events left and over the limit: kept.
        w.append(0..30, rec(Kind::Other, 1000)).unwrap();
        assert_eq!(
            r.len().unwrap() as usize,
            seqs.len() - (seqs.len() - 5) + 30
        );
    }
}
