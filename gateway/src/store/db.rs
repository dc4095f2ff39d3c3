//! Opening the database, the schema and its migrations, transactions, and
//! the small per-gateway values (heartbeat, message sequence).

use std::path::{Path, PathBuf};
use std::time::Duration;

use gateway_core::state::UnixMs;
use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "gateway.db";

/// How long a statement waits for another process's write lock before
/// failing with `SQLITE_BUSY`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema migrations, in order: `MIGRATIONS[i]` takes `user_version` from
/// `i` to `i + 1`. Append only; never edit a released step.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: issue #3 — ledger, heartbeat, tickets, commands, windows, devices.
    "
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE intervals (
        id      INTEGER PRIMARY KEY,
        device  TEXT    NOT NULL,
        state   TEXT    NOT NULL,
        reason  TEXT,
        from_ms INTEGER NOT NULL,
        to_ms   INTEGER,              -- NULL: the open interval
        CHECK (to_ms IS NULL OR to_ms > from_ms)
    );
    CREATE UNIQUE INDEX intervals_one_open ON intervals (device) WHERE to_ms IS NULL;
    CREATE INDEX intervals_by_device ON intervals (device, from_ms);
    CREATE INDEX intervals_by_time ON intervals (from_ms);

    CREATE TABLE tickets (
        id          INTEGER PRIMARY KEY,
        device      TEXT    NOT NULL,
        kind        TEXT    NOT NULL,
        severity    TEXT    NOT NULL,
        state       TEXT    NOT NULL,
        opened_ms   INTEGER NOT NULL,
        deadline_ms INTEGER NOT NULL,
        resolved_ms INTEGER,
        updated_ms  INTEGER NOT NULL,
        json        TEXT    NOT NULL
    );
    CREATE INDEX tickets_by_state ON tickets (state);
    CREATE INDEX tickets_by_device ON tickets (device, kind);
    CREATE INDEX tickets_by_update ON tickets (updated_ms);

    CREATE TABLE ticket_events (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        ticket INTEGER NOT NULL,
        kind   TEXT    NOT NULL,
        at_ms  INTEGER NOT NULL,
        json   TEXT    NOT NULL
    );
    CREATE INDEX ticket_events_by_ticket ON ticket_events (ticket);

    CREATE TABLE commands (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        json     TEXT    NOT NULL,
        finished INTEGER NOT NULL DEFAULT 0,
        ok       INTEGER,
        result   TEXT
    );
    CREATE INDEX commands_pending ON commands (id) WHERE finished = 0;

    CREATE TABLE windows (
        seq  INTEGER PRIMARY KEY AUTOINCREMENT,
        id   TEXT    NOT NULL UNIQUE,
        json TEXT    NOT NULL
    );

    CREATE TABLE devices (
        id                TEXT PRIMARY KEY,
        name_zh           TEXT NOT NULL,
        name_en           TEXT NOT NULL,
        class             TEXT NOT NULL,
        threshold_percent REAL NOT NULL
    ) WITHOUT ROWID;
    ",
    // 2: issue #4 — nonces of signed MQTT commands (replay protection).
    "
    CREATE TABLE nonces (
        id            TEXT    PRIMARY KEY,
        keep_until_ms INTEGER NOT NULL   -- the command's ts + max_age
    ) WITHOUT ROWID;
    CREATE INDEX nonces_by_expiry ON nonces (keep_until_ms);
    ",
    // 3: issue #6 — the alert outbox and log (recorded before sent).
    "
    CREATE TABLE alerts (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        key         TEXT    NOT NULL UNIQUE,  -- the notice's key: recording twice is a no-op
        ticket      INTEGER,
        kind        TEXT    NOT NULL,         -- page, escalation, acknowledged, resolved, digest
        tier        INTEGER NOT NULL,
        channel     TEXT    NOT NULL,
        recipients  TEXT    NOT NULL,         -- names, for the log
        json        TEXT    NOT NULL,         -- the notice
        state       TEXT    NOT NULL,         -- pending, held, digested, sent, expired
        created_ms  INTEGER NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        next_ms     INTEGER NOT NULL,
        last_error  TEXT,
        done_ms     INTEGER,
        via         TEXT                      -- a fallback copy: the channel that failed
    );
    CREATE INDEX alerts_due ON alerts (next_ms) WHERE state = 'pending';
    CREATE INDEX alerts_by_ticket ON alerts (ticket);
    CREATE INDEX alerts_by_time ON alerts (created_ms);
    ",
    // 4: retention — when each command finished, so that old ones can be
    // deleted. Commands finished before this step get the time it ran: a
    // later bound than the truth, so they are kept a little longer, never
    // deleted early.
    "
    ALTER TABLE commands ADD COLUMN done_ms INTEGER;
    UPDATE commands SET done_ms = CAST(strftime('%s', 'now') AS INTEGER) * 1000 WHERE finished = 1;
    CREATE INDEX commands_by_done ON commands (done_ms) WHERE finished = 1;
    ",
    // 5: the audit of writes to devices: one row per signed write command
    // that named a device, whatever became of it.
    "
    CREATE TABLE writes (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_ms      INTEGER NOT NULL,   -- when the gateway finished with it
        by         TEXT    NOT NULL,   -- the signed command's operator
        command_id TEXT    NOT NULL,   -- the command's nonce
        device     TEXT    NOT NULL,
        point      TEXT    NOT NULL,
        requested  TEXT    NOT NULL,   -- JSON: the value asked for
        old        TEXT,               -- JSON: read before the write
        new        TEXT,               -- JSON: the value sent (NULL: refused)
        read_back  TEXT,               -- JSON: read after the write
        result     TEXT    NOT NULL,   -- ok, mismatch, device_error, timeout, refused
        detail     TEXT    NOT NULL
    );
    CREATE INDEX writes_by_device ON writes (device, ts_ms);
    CREATE INDEX writes_by_time ON writes (ts_ms);
    ",
];

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How hard a commit is pushed to the disk (`PRAGMA synchronous`). See the
/// module documentation for what a power cut can cost with each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous = NORMAL`: the WAL is synced at checkpoints only. A
    /// power cut may lose the last transactions committed since the last
    /// checkpoint sync; the database never corrupts. The default: the
    /// recovery at the next start turns the lost stretch into `Unknown`.
    #[default]
    Normal,
    /// `synchronous = FULL`: the WAL is synced at every commit; a committed
    /// transaction survives a power cut. Costs one fsync per write.
    Full,
}

/// The gateway's SQLite database (see the module documentation). One
/// `Store` is one connection; several (the engine, a CLI) may be open on the
/// same file at once.
#[derive(Debug)]
pub struct Store {
    pub(super) conn: Connection,
    path: PathBuf,
    /// The data directory whose marks file this handle keeps (the
    /// gateway's own handle only; the CLI's handles leave it alone).
    pub(super) marks_dir: Option<PathBuf>,
    /// The next ticket id the marks file holds.
    pub(super) marked_next_ticket: u64,
}

impl Store {
    /// Opens (creating the directory and the file when needed)
    /// `<data_dir>/gateway.db` with [`Durability::Normal`].
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(data_dir, Durability::Normal)
    }

    /// Opens `<data_dir>/gateway.db`, creating it when needed, in WAL mode
    /// with the given durability, a 5 s busy timeout, and the schema
    /// migrated to [`SCHEMA_VERSION`] — the gateway's own handle.
    ///
    /// Checked first, so that a lost or damaged ledger is never taken for a
    /// new one or run on: a missing or 0-byte file is created only when no
    /// gateway has run with the folder before (no marks file, no used
    /// outbox; else [`StoreError::Lost`]); a file with content must have
    /// SQLite's header and pass `PRAGMA integrity_check`
    /// ([`StoreError::Damaged`]). The marks file (`marks.rs`) is then
    /// written, with the ticket id high-water mark.
    pub fn open_with(data_dir: &Path, durability: Durability) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Dir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let has_content = check_before_open(data_dir, &path)?;
        let damaged = |source: rusqlite::Error| damaged_or_open(data_dir, &path, source);
        let conn = Connection::open(&path).map_err(damaged)?;
        if has_content {
            conn.busy_timeout(BUSY_TIMEOUT).map_err(damaged)?;
            check_integrity(&conn).map_err(|detail| match detail {
                Ok(detail) => StoreError::Damaged {
                    path: path.clone(),
                    dir: data_dir.to_path_buf(),
                    detail,
                },
                Err(e) => damaged_or_open(data_dir, &path, e),
            })?;
        }
        let mut store = Store::setup(conn, path.clone(), durability).map_err(|e| match e {
            StoreError::Open { source, .. } | StoreError::Sqlite(source) => {
                damaged_or_open(data_dir, &path, source)
            }
            other => other,
        })?;
        let marked = super::marks::read(data_dir).map_or(0, |m| m.next_ticket_id);
        store.marks_dir = Some(data_dir.to_path_buf());
        store.marked_next_ticket = marked;
        let next = store.next_ticket_id()?;
        store.mark_ticket_id(next);
        Ok(store)
    }

    /// Keeps the ticket id high-water mark in the marks file when `next`
    /// is above what the file holds (the gateway's handle only). A failure
    /// is logged: the database stays the primary record.
    pub(super) fn mark_ticket_id(&mut self, next: u64) {
        let Some(dir) = &self.marks_dir else { return };
        if next <= self.marked_next_ticket && super::marks::marks_path(dir).is_file() {
            return;
        }
        match super::marks::write(
            dir,
            super::marks::Marks {
                next_ticket_id: next,
            },
        ) {
            Ok(()) => self.marked_next_ticket = next,
            Err(e) => tracing::warn!(
                file = %super::marks::marks_path(dir).display(), error = %e,
                "cannot update the marks file; the database keeps the ticket ids"
            ),
        }
    }

    /// Opens the database of a gateway that has run before; never creates
    /// anything. [`StoreError::Missing`] when there is none (the CLI's
    /// "no gateway has run with this data_dir yet").
    pub fn open_existing(data_dir: &Path) -> Result<Store, StoreError> {
        let path = data_dir.join(DB_FILE);
        if !path.is_file() {
            return Err(StoreError::Missing {
                dir: data_dir.to_path_buf(),
                file: path,
            });
        }
        let conn = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
                | rusqlite::OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        Store::setup(conn, path, Durability::Normal)
    }

    fn setup(conn: Connection, path: PathBuf, durability: Durability) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NoWal { path, mode });
        }
        let sync = match durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync)
            .map_err(open_err)?;
        // 512 KiB of page cache instead of SQLite's 2 MB: the engine reads
        // little after its start (figures come from the in-memory ledger).
        conn.pragma_update(None, "cache_size", -512)
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        let store = Store {
            conn,
            path,
            marks_dir: None,
            marked_next_ticket: 0,
        };
        store.migrate()?;
        Ok(store)
    }

    /// Brings the schema to [`SCHEMA_VERSION`], one step per transaction;
    /// two processes opening a fresh file at once serialise on the write lock.
    fn migrate(&self) -> Result<(), StoreError> {
        loop {
            let done = self.write(|c| {
                let found: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
                if found > SCHEMA_VERSION {
                    return Err(StoreError::SchemaTooNew {
                        path: self.path.clone(),
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                let Some(step) = usize::try_from(found).ok().and_then(|i| MIGRATIONS.get(i)) else {
                    return Ok(true);
                };
                c.execute_batch(step)?;
                c.pragma_update(None, "user_version", found + 1)?;
                Ok(false)
            })?;
            if done {
                return Ok(());
            }
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` as one write transaction: `BEGIN IMMEDIATE` (the write lock
    /// is taken first, so a read-then-write never fails half way on a
    /// concurrent writer) at the top level, a savepoint inside
    /// [`transaction`](Self::transaction). Rolled back when `f` fails.
    pub(super) fn write<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let c = &self.conn;
        let top = c.is_autocommit();
        c.execute_batch(if top {
            "BEGIN IMMEDIATE"
        } else {
            "SAVEPOINT store_write"
        })?;
        let out = f(c);
        let end = match (&out, top) {
            (Ok(_), true) => c.execute_batch("COMMIT"),
            (Ok(_), false) => c.execute_batch("RELEASE store_write"),
            (Err(_), true) => c.execute_batch("ROLLBACK"),
            (Err(_), false) => c.execute_batch("ROLLBACK TO store_write; RELEASE store_write"),
        };
        match (out, end) {
            (Ok(v), Ok(())) => Ok(v),
            (Ok(_), Err(e)) => {
                // A failed COMMIT (e.g. busy) leaves the transaction open.
                if top && !c.is_autocommit() {
                    let _ = c.execute_batch("ROLLBACK");
                }
                Err(e.into())
            }
            (Err(e), _) => Err(e),
        }
    }

    /// Runs `f` inside one `BEGIN IMMEDIATE` transaction: everything it does
    /// through the store commits together or not at all, and no other
    /// writer (another CLI, the engine) interleaves. Used by the CLI to load
    /// tickets, apply a command and save the result atomically.
    pub fn transaction<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<T, E>,
    ) -> Result<T, E> {
        if !self.conn.is_autocommit() {
            return f(self);
        }
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(StoreError::from)?;
        match f(self) {
            Ok(v) => match self.conn.execute_batch("COMMIT") {
                Ok(()) => Ok(v),
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    Err(StoreError::from(e).into())
                }
            },
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Records that the gateway is alive at `now_ms` (the engine calls this
    /// every few seconds; recovery closes open intervals at the last one).
    pub fn heartbeat(&self, now_ms: UnixMs) -> Result<(), StoreError> {
        self.write(|c| set_meta(c, META_HEARTBEAT, now_ms))
    }

    /// The last recorded heartbeat, if any gateway ever recorded one.
    pub fn last_heartbeat(&self) -> Result<Option<UnixMs>, StoreError> {
        get_meta(&self.conn, META_HEARTBEAT)
    }

    /// Reserves `n` values of the per-gateway message sequence and returns
    /// the first (values `first..first + n` are the caller's). Starts at 1;
    /// strictly increasing across calls, handles and restarts.
    pub fn reserve_seq(&self, n: u64) -> Result<u64, StoreError> {
        let n = i64::try_from(n).map_err(|_| StoreError::TooLarge {
            what: "sequence reservation",
            value: n,
        })?;
        let first = self.write(|c| {
            let first = get_meta(c, META_SEQ)?.unwrap_or(1);
            let next = first.checked_add(n).ok_or(StoreError::TooLarge {
                what: "message sequence",
                value: u64::try_from(first).unwrap_or(0),
            })?;
            set_meta(c, META_SEQ, next)?;
            Ok(first)
        })?;
        Ok(u64::try_from(first).unwrap_or(0))
    }
}

/// SQLite's file header (the first 16 bytes of every database file).
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// What shows that a gateway has run with `data_dir` before, if anything:
/// the marks file, or an outbox that was used.
fn ran_before(data_dir: &Path) -> Option<String> {
    if super::marks::marks_path(data_dir).is_file() {
        return Some(format!("{} is there", super::marks::MARKS_FILE));
    }
    for f in [
        crate::north::outbox::OUTBOX_FILE,
        crate::north::outbox::INFLUX_FILE,
    ] {
        if std::fs::metadata(data_dir.join(f)).is_ok_and(|m| m.len() > 0) {
            return Some(format!("{f} is there"));
        }
    }
    None
}

/// The checks made before SQLite sees the file: a missing or 0-byte file
/// where a gateway has run is a lost ledger; a file with content must start
/// with SQLite's header. Returns whether the file has content.
fn check_before_open(data_dir: &Path, path: &Path) -> Result<bool, StoreError> {
    let len = match std::fs::metadata(path) {
        Ok(m) => Some(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(StoreError::Dir {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if len.unwrap_or(0) == 0 {
        if let Some(evidence) = ran_before(data_dir) {
            return Err(StoreError::Lost {
                path: path.to_path_buf(),
                dir: data_dir.to_path_buf(),
                how: if len.is_some() {
                    "empty (0 bytes)"
                } else {
                    "missing"
                },
                evidence,
            });
        }
        return Ok(false);
    }
    let mut head = [0u8; 16];
    let read = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .map_err(|e| StoreError::Damaged {
            path: path.to_path_buf(),
            dir: data_dir.to_path_buf(),
            detail: format!("cannot read its header: {e}"),
        });
    read?;
    if &head != SQLITE_HEADER {
        return Err(StoreError::Damaged {
            path: path.to_path_buf(),
            dir: data_dir.to_path_buf(),
            detail: "it does not start with the SQLite header".to_owned(),
        });
    }
    Ok(true)
}

/// `PRAGMA integrity_check`: `Ok(Ok(()))` when it says ok, `Ok(Err(what))`
/// with its first findings when not, `Err` when it cannot run at all.
fn check_integrity(c: &Connection) -> Result<(), Result<String, rusqlite::Error>> {
    let found: Vec<String> = (|| {
        let mut stmt = c.prepare("PRAGMA integrity_check(5)")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<Result<Vec<_>, _>>()
    })()
    .map_err(Err)?;
    if found.len() == 1 && found[0] == "ok" {
        return Ok(());
    }
    Err(Ok(format!("integrity check: {}", found.join("; "))))
}

/// A SQLite error while opening: damage when SQLite says so (not a
/// database, corrupt), else an open error.
fn damaged_or_open(data_dir: &Path, path: &Path, source: rusqlite::Error) -> StoreError {
    if is_damage(&source) {
        StoreError::Damaged {
            path: path.to_path_buf(),
            dir: data_dir.to_path_buf(),
            detail: source.to_string(),
        }
    } else {
        StoreError::Open {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Whether SQLite reports the file itself as damaged.
pub(super) fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// Meta key of the last heartbeat.
const META_HEARTBEAT: &str = "heartbeat_ms";
/// Meta key of the next free message sequence value.
const META_SEQ: &str = "next_seq";
/// Meta key of the retention cutoff: what lay entirely before it may have
/// been deleted (see `retention.rs`).
pub(super) const META_RETAINED_FROM: &str = "retained_from_ms";
/// Meta key of the lowest ticket id never handed out, kept once tickets
/// may be deleted (a deleted ticket's id is never reused).
pub(super) const META_NEXT_TICKET: &str = "next_ticket_id";

pub(super) fn get_meta(c: &Connection, key: &str) -> Result<Option<i64>, StoreError> {
    Ok(
        c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?,
    )
}

pub(super) fn set_meta(c: &Connection, key: &str, value: i64) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// A u64 id as SQLite's i64.
pub(super) fn sql_id(what: &'static str, id: u64) -> Result<i64, StoreError> {
    i64::try_from(id).map_err(|_| StoreError::TooLarge { what, value: id })
}

/// JSON text of a value to store.
pub(super) fn to_json<T: serde::Serialize>(
    what: &'static str,
    v: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|source| StoreError::Encode { what, source })
}

/// A stored JSON value back.
pub(super) fn from_json<T: serde::de::DeserializeOwned>(
    what: impl FnOnce() -> String,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: what(),
        reason: e.to_string(),
    })
}
