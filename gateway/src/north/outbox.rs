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
//! - **Bounded on disk.** `max_bytes` bounds the files: database, WAL and
//!   WAL index together. The WAL is checkpointed every few pages
//!   (`wal_autocheckpoint`, a sixteenth of the limit) and cut back
//!   (`journal_size_limit`, and a truncating checkpoint when it is over
//!   its share anyway); the database's pages in use are counted in each
//!   append's transaction, and when they pass their share the oldest
//!   *telemetry* rows are deleted first, counted and logged. Pages left
//!   free beyond the share are given back to the file system
//!   (`auto_vacuum = INCREMENTAL`). Events, states, tickets and alarms are
//!   never dropped; if only they remain, the outbox grows past the limit
//!   and says so.
//! - **The data disk** ([`crate::store::Space`]): telemetry may not use
//!   the `[store] min_free` reserve. The limit of an append is also the
//!   outbox's files plus the free space above the reserve, so below it the
//!   outbox drops its oldest telemetry and hands the pages back, and the
//!   ledger keeps its room. A write that fails for lack of space releases
//!   the spare file and is tried once more, so that telemetry can be
//!   dropped and delivered records removed even on a full disk.
//! - **fsync policy** ([`Fsync`]): `always` = `synchronous = FULL`; `batch`
//!   (default) = `NORMAL` (a crash loses nothing, a power cut can lose the
//!   last appends since the last checkpoint); `off` = `OFF`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gateway_core::config::Fsync;
use rusqlite::{Connection, OptionalExtension, params};

use crate::store::Space;

/// The MQTT outbox file in the data directory.
pub const OUTBOX_FILE: &str = "outbox.db";
/// The InfluxDB outbox file in the data directory.
pub const INFLUX_FILE: &str = "influx-outbox.db";

/// Bytes counted per row beyond topic and payload (row overhead, roughly).
const ROW_OVERHEAD: u64 = 32;
/// SQLite's page size for new outboxes.
const PAGE_SIZE: u64 = 4096;
/// What the WAL index (`-shm`) takes: 32 KiB per 4096 WAL frames.
const SHM_BYTES: u64 = 32 * 1024;

/// The WAL's share of `max_bytes`: a sixteenth, between 64 KiB and 4 MiB.
fn wal_budget(max_bytes: u64) -> u64 {
    (max_bytes / 16).clamp(64 * 1024, 4 * 1024 * 1024)
}

/// The publisher's read (replay, and whenever the live tail does not cover
/// its cursor).
const AFTER_SQL: &str =
    "SELECT seq, topic, payload, qos, retain FROM records WHERE seq > ?1 ORDER BY seq LIMIT ?2";
/// The removal of a run of delivered records.
const REMOVE_SQL: &str = "DELETE FROM records WHERE seq BETWEEN ?1 AND ?2
     RETURNING LENGTH(topic) + LENGTH(payload)";
/// Each append's insert.
const INSERT_SQL: &str = "INSERT INTO records (seq, topic, payload, qos, retain, telemetry) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// The bytes the files of the outbox `file` take on disk (db, WAL, index).
pub fn files_size(file: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            std::fs::metadata(format!("{}{suffix}", file.display())).map_or(0, |m| m.len())
        })
        .sum()
}

/// Whether an outbox error is the disk being full.
fn is_full(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull)
}

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
    /// Appends failed a moment ago; the next try is due later.
    #[error("outbox: appends are failing; the next try is due in a moment")]
    Waiting,
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
    /// Telemetry dropped because the data disk was below `[store]
    /// min_free` or full (part of `dropped`), since start.
    pub dropped_for_space: AtomicU64,
    /// Bytes the outbox's files take on disk (db + WAL + index), last look.
    pub file_bytes: AtomicU64,
    /// `[outbox] max_size` in bytes (for the reader's WAL settings).
    pub max_bytes: AtomicU64,
    /// Messages other than telemetry dropped from the in-memory backlog
    /// because the outbox refused appends for too long (a gap in `seq`).
    pub lost: AtomicU64,
    /// Records just appended, for the publisher to take from memory
    /// ([`super::live`]); filled by [`super::North`] after each commit.
    pub live: super::live::LiveTail,
}

fn open(path: &Path, fsync: Fsync, max_bytes: u64) -> Result<Connection, OutboxError> {
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
    // The query planner stability guarantee: a statement's plan never
    // depends on the values bound to it. Without it, the bundled SQLite
    // (built with STAT4) compiles a cached statement again at every step
    // after a parameter compared with an indexed column, or a LIMIT,
    // changed (`sqlite3Reprepare`): every read and delete of the outbox
    // paid a full prepare. The outbox's statements have one good plan each.
    c.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(wrap)?;
    // Before the first table: a new outbox can give its free pages back.
    c.pragma_update(None, "auto_vacuum", "INCREMENTAL")
        .map_err(wrap)?;
    c.pragma_update(None, "journal_mode", "WAL").map_err(wrap)?;
    // The WAL stays within its share of max_size: checkpointed every few
    // pages, cut back to its share when it restarts.
    let wal = i64::try_from(wal_budget(max_bytes)).unwrap_or(i64::MAX);
    c.pragma_update(None, "wal_autocheckpoint", (wal / 4096 / 2).max(4))
        .map_err(wrap)?;
    c.pragma_update(None, "journal_size_limit", wal)
        .map_err(wrap)?;
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
    file: PathBuf,
    next_seq: u64,
    max_bytes: u64,
    stats: Arc<OutboxStats>,
    space: Option<Arc<Space>>,
    /// The highest seq handed out when seqs were last reserved ahead
    /// ([`reserve_through`](Self::reserve_through)); the reservation is
    /// cleared once it is stored.
    reserved_for: Option<u64>,
    full_warned: bool,
    /// Dropping telemetry now (logged when it starts and when it stops).
    dropping: bool,
    /// Telemetry dropped since dropping started.
    dropped_run: u64,
}

/// Why telemetry is being dropped, for the log line.
fn drop_reason(for_space: bool) -> &'static str {
    if for_space {
        "the data disk is below [store] min_free or full"
    } else {
        "the outbox is at [outbox] max_size"
    }
}

impl OutboxWriter {
    /// Opens (creating) the MQTT outbox in `dir`.
    pub fn open(dir: &Path, fsync: Fsync, max_bytes: u64) -> Result<OutboxWriter, OutboxError> {
        OutboxWriter::open_at(&dir.join(OUTBOX_FILE), fsync, max_bytes)
    }

    /// Opens (creating) an outbox file.
    pub fn open_at(file: &Path, fsync: Fsync, max_bytes: u64) -> Result<OutboxWriter, OutboxError> {
        let conn = open(file, fsync, max_bytes)?;
        make_incremental(&conn, file);
        let stored: Option<i64> = conn
            .query_row("SELECT value FROM meta WHERE key = 'next_seq'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let max: Option<i64> = conn.query_row("SELECT MAX(seq) FROM records", [], |r| r.get(0))?;
        let reserved: Option<i64> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'reserved_seq'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        // A reservation left by a run that stopped with messages it could
        // not store: their seqs are never handed out again (a gap).
        let next_seq = stored
            .unwrap_or(1)
            .max(reserved.unwrap_or(1))
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
        stats.file_bytes.store(files_size(file), Ordering::Relaxed);
        stats.max_bytes.store(max_bytes, Ordering::Relaxed);
        Ok(OutboxWriter {
            conn,
            file: file.to_path_buf(),
            next_seq,
            max_bytes,
            stats,
            space: None,
            reserved_for: None,
            full_warned: false,
            dropping: false,
            dropped_run: 0,
        })
    }

    /// Keeps the outbox out of the data disk's reserve (see the module doc).
    pub fn with_space(mut self, space: Arc<Space>) -> OutboxWriter {
        self.space = Some(space);
        self
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

    /// Records that seqs up to `handed_out + ahead` may be in use by
    /// messages not stored yet (the caller's backlog while appends fail),
    /// so that a restart never hands them out again. Cleared by the append
    /// that stores `handed_out`.
    pub fn reserve_through(&mut self, handed_out: u64, ahead: u64) -> Result<(), OutboxError> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES ('reserved_seq', ?1)
             ON CONFLICT (key) DO UPDATE SET value = MAX(value, excluded.value)",
            [
                i64::try_from(handed_out.saturating_add(1).saturating_add(ahead))
                    .unwrap_or(i64::MAX),
            ],
        )?;
        self.reserved_for = Some(handed_out);
        Ok(())
    }

    /// Whether a reservation made by [`reserve_through`](Self::reserve_through)
    /// is still in force.
    pub fn has_reservation(&self) -> bool {
        self.reserved_for.is_some()
    }

    /// Appends records in one transaction; `build` is given each record's
    /// seq, in order, and returns the record. Returns how many telemetry
    /// records were dropped to make room.
    pub fn append<T>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        mut build: impl FnMut(u64, T) -> NewRecord,
    ) -> Result<u64, OutboxError> {
        let mut seq = self.next_seq;
        let records: Vec<(u64, NewRecord)> = items
            .into_iter()
            .map(|item| {
                let r = (seq, build(seq, item));
                seq += 1;
                r
            })
            .collect();
        self.append_numbered(&records)
    }

    /// Appends records that carry their seq already (increasing, from
    /// [`next_seq`](Self::next_seq) on; a seq left out is a gap that
    /// consumers see), in one transaction. Returns how many telemetry
    /// records were dropped to make room.
    ///
    /// When the disk is full, the spare file is released and the append
    /// tried once more without the batch's telemetry (dropped, counted):
    /// the oldest telemetry then makes room for the rest.
    pub fn append_numbered(&mut self, records: &[(u64, NewRecord)]) -> Result<u64, OutboxError> {
        let Some(last) = records.last().map(|r| r.0) else {
            return Ok(0);
        };
        if last < self.next_seq {
            return Ok(0);
        }
        match self.try_append(records, false) {
            Err(OutboxError::Sqlite(e)) if is_full(&e) => {
                if let Some(space) = &self.space {
                    space.on_full();
                }
                self.try_append(records, true)
            }
            other => other,
        }
    }

    /// The limit of the files now: `max_bytes`, and within the files' size
    /// plus the free space above the reserve.
    fn limit(&self) -> (u64, bool) {
        let Some(headroom) = self.space.as_ref().and_then(|s| s.headroom()) else {
            return (self.max_bytes, false);
        };
        let own = i64::try_from(files_size(&self.file)).unwrap_or(i64::MAX);
        let by_space = u64::try_from(own.saturating_add(headroom).max(0)).unwrap_or(0);
        if by_space < self.max_bytes {
            (by_space, true)
        } else {
            (self.max_bytes, false)
        }
    }

    fn try_append(
        &mut self,
        records: &[(u64, NewRecord)],
        skip_telemetry: bool,
    ) -> Result<u64, OutboxError> {
        let (limit, for_space) = self.limit();
        let for_space = for_space || skip_telemetry;
        // The database's share: what the WAL, its index and a margin leave.
        let share = limit.saturating_sub(wal_budget(self.max_bytes) + SHM_BYTES + limit / 32);
        let tx = self.conn.transaction()?;
        let mut added_bytes = 0u64;
        let mut added = 0u64;
        let mut skipped = 0u64;
        let mut top = 0u64;
        {
            let mut stmt = tx.prepare_cached(INSERT_SQL)?;
            for (seq, r) in records {
                if *seq < self.next_seq {
                    continue;
                }
                top = *seq;
                if skip_telemetry && r.kind == Kind::Telemetry {
                    skipped += 1;
                    continue;
                }
                added_bytes += (r.topic.len() + r.payload.len()) as u64 + ROW_OVERHEAD;
                stmt.execute(params![
                    i64::try_from(*seq).unwrap_or(i64::MAX),
                    r.topic,
                    r.payload,
                    r.qos,
                    r.retain,
                    r.kind == Kind::Telemetry
                ])?;
                added += 1;
            }
        }
        if top == 0 {
            return Ok(0);
        }
        tx.prepare_cached(
            "INSERT INTO meta (key, value) VALUES ('next_seq', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )?
        .execute([i64::try_from(top + 1).unwrap_or(i64::MAX)])?;
        let clears = self.reserved_for.is_some_and(|r| top >= r);
        if clears {
            tx.execute("DELETE FROM meta WHERE key = 'reserved_seq'", [])?;
        }
        // Make room: the oldest telemetry goes first, until the pages in
        // use fit the database's share.
        let mut dropped = 0u64;
        let mut freed = 0u64;
        let mut over = false;
        loop {
            let used = used_bytes(&tx)?;
            if used <= share {
                break;
            }
            let victims: Vec<(i64, i64)> = tx
                .prepare_cached(
                    "SELECT seq, LENGTH(topic) + LENGTH(payload) FROM records
                     WHERE telemetry = 1 ORDER BY seq LIMIT 64",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            if victims.is_empty() {
                over = true;
                break;
            }
            let mut del = tx.prepare_cached("DELETE FROM records WHERE seq = ?1")?;
            for (s, len) in victims {
                del.execute([s])?;
                freed += u64::try_from(len).unwrap_or(0) + ROW_OVERHEAD;
                dropped += 1;
            }
        }
        tx.commit()?;
        if clears {
            self.reserved_for = None;
        }
        self.shrink(share);
        self.next_seq = top + 1;
        self.stats.last_seq.store(top, Ordering::Relaxed);
        let sub = |a: &AtomicU64, n: u64| {
            let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
        };
        self.stats.bytes.fetch_add(added_bytes, Ordering::Relaxed);
        sub(&self.stats.bytes, freed);
        self.stats.records.fetch_add(added, Ordering::Relaxed);
        sub(&self.stats.records, dropped);
        let lost = dropped + skipped;
        if lost > 0 {
            self.stats.dropped.fetch_add(lost, Ordering::Relaxed);
            if for_space {
                self.stats
                    .dropped_for_space
                    .fetch_add(lost, Ordering::Relaxed);
                if let Some(space) = &self.space {
                    space.on_dropped();
                }
            }
            self.dropped_run += lost;
            if !self.dropping {
                self.dropping = true;
                tracing::warn!(
                    file = %self.file.display(), dropped = lost, limit_bytes = limit,
                    max_bytes = self.max_bytes, reason = drop_reason(for_space),
                    "outbox full: the oldest telemetry is dropped to make room (counted in bms_outbox_dropped_total; consumers see a gap in seq)"
                );
            }
        } else if self.dropping {
            self.dropping = false;
            tracing::info!(
                file = %self.file.display(), dropped = self.dropped_run,
                "outbox has room again: telemetry is kept again"
            );
            self.dropped_run = 0;
        }
        if let Some(space) = &self.space {
            space.refresh();
        }
        if over && !self.full_warned {
            tracing::error!(
                file = %self.file.display(), limit_bytes = limit, max_bytes = self.max_bytes,
                "outbox over its limit with events, states and tickets only; they are kept"
            );
            self.full_warned = true;
        } else if !over {
            self.full_warned = false;
        }
        Ok(lost)
    }

    /// Gives pages beyond the database's share back to the file system and
    /// keeps the WAL within its share. Failures are left for the next time.
    fn shrink(&mut self, share: u64) {
        let file = self
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0));
        let size = u64::try_from(file.unwrap_or(0)).unwrap_or(0) * PAGE_SIZE;
        let mut checkpoint = false;
        if size > share {
            let pages = (size - share).div_ceil(PAGE_SIZE);
            let vacuum = format!("PRAGMA incremental_vacuum({pages})");
            // The statement returns a row per page moved: step through them.
            let done = self.conn.prepare(&vacuum).and_then(|mut s| {
                let mut rows = s.query([])?;
                while rows.next()?.is_some() {}
                Ok(())
            });
            checkpoint = done.is_ok();
        }
        let wal = std::fs::metadata(format!("{}-wal", self.file.display())).map_or(0, |m| m.len());
        let wal_share = wal_budget(self.max_bytes);
        if checkpoint || wal > wal_share {
            let mode = if wal > 2 * wal_share || checkpoint {
                "TRUNCATE"
            } else {
                "PASSIVE"
            };
            let _ = self
                .conn
                .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()));
        }
        self.stats
            .file_bytes
            .store(files_size(&self.file), Ordering::Relaxed);
    }
}

/// Bytes of the database's pages in use (not on the free list), as the
/// open transaction sees them.
fn used_bytes(c: &Connection) -> Result<u64, rusqlite::Error> {
    let one = |sql: &str| -> Result<i64, rusqlite::Error> {
        c.prepare_cached(sql)?.query_row([], |r| r.get(0))
    };
    let pages = one("PRAGMA page_count")?;
    let free = one("PRAGMA freelist_count")?;
    let size = one("PRAGMA page_size")?;
    Ok(u64::try_from(pages.saturating_sub(free).saturating_mul(size)).unwrap_or(0))
}

/// An outbox made before `auto_vacuum = INCREMENTAL` is converted once
/// (a `VACUUM`), when it is small enough to do so at start; a failure
/// (e.g. no room for the copy) leaves it as it is.
fn make_incremental(c: &Connection, file: &Path) {
    let mode: i64 = c
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap_or(2);
    if mode == 2 || files_size(file) > 64 * 1024 * 1024 {
        return;
    }
    if let Err(e) = c.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;") {
        tracing::warn!(file = %file.display(), error = %e, "cannot convert the outbox to incremental vacuum; its free pages stay in the file");
    }
}

/// The reading side (the MQTT publisher).
#[derive(Debug)]
pub struct OutboxReader {
    conn: Connection,
    stats: Arc<OutboxStats>,
    space: Option<Arc<Space>>,
    /// Removing delivered records fails now (logged once).
    failing: bool,
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
        let max = stats.max_bytes.load(Ordering::Relaxed);
        Ok(OutboxReader {
            conn: open(file, fsync, if max == 0 { u64::MAX } else { max })?,
            stats,
            space: None,
            failing: false,
        })
    }

    /// On a full disk, releases the spare file so that delivered records
    /// can still be removed (see the module doc).
    pub fn with_space(mut self, space: Arc<Space>) -> OutboxReader {
        self.space = Some(space);
        self
    }

    /// Up to `limit` records with seq > `after`, in seq order.
    pub fn after(&self, after: u64, limit: usize) -> Result<Vec<Record>, OutboxError> {
        let mut stmt = self.conn.prepare_cached(AFTER_SQL)?;
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

    /// Removes delivered records (in one transaction). On a full disk the
    /// spare file is released and the removal tried once more; a failure
    /// is logged once until a removal succeeds again, and the caller keeps
    /// the seqs to try later.
    pub fn remove(&mut self, seqs: &[u64]) -> Result<(), OutboxError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let result = match self.try_remove(seqs) {
            Err(OutboxError::Sqlite(e)) if is_full(&e) => {
                if let Some(space) = &self.space {
                    space.on_full();
                }
                self.try_remove(seqs)
            }
            other => other,
        };
        match &result {
            Ok(()) if self.failing => {
                self.failing = false;
                tracing::info!("delivered records are removed from the outbox again");
            }
            Err(e) if !self.failing => {
                self.failing = true;
                tracing::error!(error = %e, "cannot remove delivered records from the outbox; retrying (kept meanwhile: after a reconnection they may be sent again, and consumers drop the duplicates by seq)");
            }
            _ => {}
        }
        result
    }

    fn try_remove(&mut self, seqs: &[u64]) -> Result<(), OutboxError> {
        // Acknowledged seqs come mostly in runs: one DELETE per run, which
        // says what it removed (no SELECT first).
        let mut sorted = seqs.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let tx = self.conn.transaction()?;
        let mut freed = 0u64;
        let mut removed = 0u64;
        {
            let mut del = tx.prepare_cached(REMOVE_SQL)?;
            let mut i = 0;
            while i < sorted.len() {
                let mut j = i;
                while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
                    j += 1;
                }
                let lo = i64::try_from(sorted[i]).unwrap_or(i64::MAX);
                let hi = i64::try_from(sorted[j]).unwrap_or(i64::MAX);
                let mut rows = del.query([lo, hi])?;
                while let Some(row) = rows.next()? {
                    let l: i64 = row.get(0)?;
                    freed += u64::try_from(l).unwrap_or(0) + ROW_OVERHEAD;
                    removed += 1;
                }
                i = j + 1;
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
        // max_size bounds the files on disk: 1 MB holds a few hundred of
        // these 1 kB records beside the WAL's share.
        let dir = tempfile::tempdir().unwrap();
        let mut w = OutboxWriter::open(dir.path(), Fsync::Off, 1_000_000).unwrap();
        w.append(0..5, rec(Kind::Other, 1000)).unwrap();
        for _ in 0..20 {
            w.append(0..100, rec(Kind::Telemetry, 1000)).unwrap();
        }
        let stats = w.stats();
        assert!(stats.dropped.load(Ordering::Relaxed) > 0);
        assert_eq!(stats.dropped_for_space.load(Ordering::Relaxed), 0);
        let file = dir.path().join(OUTBOX_FILE);
        assert!(files_size(&file) <= 1_000_000, "{}", files_size(&file));
        let r = OutboxReader::open(dir.path(), Fsync::Off, w.stats()).unwrap();
        let seqs: Vec<u64> = r.after(0, 5000).unwrap().iter().map(|r| r.seq).collect();
        // The five events survive; the newest telemetry fills the rest.
        assert_eq!(&seqs[..5], &[1, 2, 3, 4, 5]);
        assert_eq!(*seqs.last().unwrap(), 2005);
        assert!(seqs.len() > 100, "{}", seqs.len());
        assert_eq!(
            stats.records.load(Ordering::Relaxed),
            seqs.len() as u64,
            "the counters follow the rows"
        );
        // Only events left and over the limit: kept.
        let before = r.len().unwrap();
        w.append(0..3000, rec(Kind::Other, 1000)).unwrap();
        assert_eq!(r.len().unwrap(), 5 + 3000);
        assert!(before > 5);
    }

    #[test]
    fn max_size_bounds_the_database_wal_and_index_on_disk_while_a_reader_removes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(OUTBOX_FILE);
        let max = 1_000_000;
        let mut w = OutboxWriter::open(dir.path(), Fsync::Off, max).unwrap();
        let mut r = OutboxReader::open(dir.path(), Fsync::Off, w.stats()).unwrap();
        let mut peak = 0;
        let mut cursor = 0;
        for round in 0..300 {
            w.append(0..40, rec(Kind::Telemetry, 400)).unwrap();
            if round % 3 == 0 {
                w.append(0..2, rec(Kind::Other, 200)).unwrap();
            }
            // A publisher behind: delivers some, keeps the rest.
            let got = r.after(cursor, 20).unwrap();
            if let Some(l) = got.last() {
                cursor = l.seq;
            }
            r.remove(&got.iter().map(|g| g.seq).collect::<Vec<_>>())
                .unwrap();
            peak = peak.max(files_size(&file));
        }
        assert!(peak <= max, "outbox files reached {peak} bytes, over {max}");
        assert!(w.stats().dropped.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn below_the_data_disk_reserve_telemetry_gives_way_and_events_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(OUTBOX_FILE);
        let mut w = OutboxWriter::open(dir.path(), Fsync::Off, 100_000_000).unwrap();
        for _ in 0..10 {
            w.append(0..100, rec(Kind::Telemetry, 1000)).unwrap();
        }
        let big = files_size(&file);
        // A reserve no disk can satisfy: the outbox hands its telemetry's
        // pages back to the file system, and keeps what is not telemetry.
        let space = Arc::new(Space::new(dir.path(), u64::MAX / 4));
        let mut w = w.with_space(space);
        w.append(0..3, rec(Kind::Other, 100)).unwrap();
        w.append(0..50, rec(Kind::Telemetry, 1000)).unwrap();
        let stats = w.stats();
        assert!(stats.dropped_for_space.load(Ordering::Relaxed) >= 1000);
        let r = OutboxReader::open(dir.path(), Fsync::Off, w.stats()).unwrap();
        let kept: Vec<u64> = r.after(0, 5000).unwrap().iter().map(|r| r.seq).collect();
        assert_eq!(kept, vec![1001, 1002, 1003]);
        assert!(
            files_size(&file) < big / 4,
            "pages given back: {} of {big}",
            files_size(&file)
        );
    }

    #[test]
    fn the_publishers_statements_are_not_compiled_again_when_their_parameters_change() {
        use rusqlite::StatementStatus;
        let dir = tempfile::tempdir().unwrap();
        let mut w = OutboxWriter::open(dir.path(), Fsync::Off, 100_000_000).unwrap();
        let mut r = OutboxReader::open(dir.path(), Fsync::Off, w.stats()).unwrap();
        let mut cursor = 0;
        for round in 0..40 {
            w.append(0..10, rec(Kind::Telemetry, 100)).unwrap();
            // Another limit and another cursor at every call, as the
            // publisher's window and position move.
            let got = r.after(cursor, 3 + round % 5).unwrap();
            cursor = got.last().map_or(cursor, |g| g.seq);
            r.remove(&got.iter().map(|g| g.seq).collect::<Vec<_>>())
                .unwrap();
        }
        for sql in [AFTER_SQL, REMOVE_SQL] {
            let stmt = r.conn.prepare_cached(sql).unwrap();
            assert_eq!(
                stmt.get_status(StatementStatus::RePrepare),
                0,
                "compiled again: {sql}"
            );
        }
        let stmt = w.conn.prepare_cached(INSERT_SQL).unwrap();
        assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
    }

    #[test]
    fn removing_runs_of_seqs_counts_exactly_what_was_stored() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = OutboxWriter::open(dir.path(), Fsync::Off, 100_000_000).unwrap();
        w.append(0..20, rec(Kind::Other, 10)).unwrap();
        let stats = w.stats();
        let before = stats.bytes.load(Ordering::Relaxed);
        let mut r = OutboxReader::open(dir.path(), Fsync::Off, w.stats()).unwrap();
        // Out of order, with a duplicate and seqs that are not stored.
        r.remove(&[5, 3, 4, 4, 10, 11, 12, 99, 1]).unwrap();
        let left: Vec<u64> = r.after(0, 100).unwrap().iter().map(|r| r.seq).collect();
        assert_eq!(left, vec![2, 6, 7, 8, 9, 13, 14, 15, 16, 17, 18, 19, 20]);
        assert_eq!(stats.records.load(Ordering::Relaxed), 13);
        assert_eq!(stats.delivered.load(Ordering::Relaxed), 7);
        // rec(): topic "t/{index}", payload {"seq":N} and 10 bytes.
        let expected: u64 = [1u64, 3, 4, 5, 10, 11, 12]
            .iter()
            .map(|s| {
                (format!("t/{}", s - 1).len() + format!("{{\"seq\":{s}}}").len() + 10) as u64
                    + ROW_OVERHEAD
            })
            .sum();
        assert_eq!(before - stats.bytes.load(Ordering::Relaxed), expected);
    }

    #[test]
    fn seqs_reserved_for_an_unwritten_backlog_are_never_handed_out_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = OutboxWriter::open(dir.path(), Fsync::Batch, 10_000_000).unwrap();
        w.append(0..3, rec(Kind::Other, 0)).unwrap();
        // Seqs 4..=10 were given to messages that could not be stored.
        w.reserve_through(10, 100).unwrap();
        drop(w);
        let w = OutboxWriter::open(dir.path(), Fsync::Batch, 10_000_000).unwrap();
        assert_eq!(w.next_seq(), 111, "a gap, never a reuse");
        // Stored after all: the reservation goes, the numbering goes on.
        let mut w = w;
        w.reserve_through(112, 100).unwrap();
        let recs: Vec<(u64, NewRecord)> = (111..=112)
            .map(|s| (s, rec(Kind::Other, 0)(s, 0)))
            .collect();
        w.append_numbered(&recs).unwrap();
        drop(w);
        let w = OutboxWriter::open(dir.path(), Fsync::Batch, 10_000_000).unwrap();
        assert_eq!(w.next_seq(), 113);
    }
}
