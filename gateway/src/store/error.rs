//! The store's error type.

use std::path::PathBuf;

use gateway_core::state::{DeviceState, UnixMs};

/// Why a store operation failed. Nothing was changed when one is returned
/// (every write runs in a transaction that is rolled back on error).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The data directory holds no database yet (only from
    /// [`Store::open_existing`](super::Store::open_existing)).
    #[error("no gateway has run with the data_dir {} yet (no {})", .dir.display(), .file.display())]
    Missing {
        /// The configured data directory.
        dir: PathBuf,
        /// The database file looked for.
        file: PathBuf,
    },
    /// The database file could not be opened or set up.
    #[error("cannot open the database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// SQLite would not switch the database to WAL mode (a network or
    /// read-only file system); concurrent CLI and gateway need it.
    #[error(
        "the database {path} stays in journal mode {mode:?}, not WAL; put data_dir on a local, writable file system"
    )]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },
    /// The database was written by a newer gateway with a schema this one
    /// does not know; upgrade the gateway (never downgrade over a data dir).
    #[error(
        "the database {path} has schema version {found}, this gateway knows up to {supported}; run a newer gateway"
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// `PRAGMA user_version` found.
        found: i64,
        /// The newest version this build can read.
        supported: i64,
    },
    /// The ledger is missing or empty where a gateway has run before: it was
    /// lost, and starting a new one would lose the history and open
    /// tickets without a word and hand out ticket ids again.
    #[error(
        "the ledger {} is {how}, but a gateway has run with this data directory before ({evidence}); \
         refusing to start a new, empty ledger (the history and open tickets would be lost and ticket ids reused). \
         Restore the last backup: `gateway restore --data-dir {} --from BACKUP_DIR --force` (docs/deploy.md, Backup and restore); \
         to start a new ledger on purpose, delete {} too",
        .path.display(), .dir.display(), .dir.join(super::marks::MARKS_FILE).display()
    )]
    Lost {
        /// The database file.
        path: PathBuf,
        /// The data directory.
        dir: PathBuf,
        /// "missing" or "empty (0 bytes)".
        how: &'static str,
        /// What shows that a gateway ran here.
        evidence: String,
    },
    /// The ledger file is damaged (bad header, failed integrity check, or
    /// SQLite reports corruption): refused, never run on.
    #[error(
        "the ledger {} is damaged ({detail}); refusing to start on it. \
         Restore the last backup: `gateway restore --data-dir {} --from BACKUP_DIR --force` \
         (the damaged file is replaced; docs/deploy.md, Backup and restore)",
        .path.display(), .dir.display()
    )]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// The data directory.
        dir: PathBuf,
        /// What the checks found.
        detail: String,
    },
    /// A query failed (including `SQLITE_BUSY` after the 5 s busy timeout).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A value could not be encoded as JSON for storage.
    #[error("cannot encode {what} for storage: {source}")]
    Encode {
        /// What was being stored.
        what: &'static str,
        /// Why.
        source: serde_json::Error,
    },
    /// A stored value does not decode: the row was written by an
    /// incompatible build or edited by hand.
    #[error("stored {what} does not decode: {reason}")]
    Corrupt {
        /// Which row.
        what: String,
        /// Why.
        reason: String,
    },
    /// A transition that does not follow from the device's open interval;
    /// refused, nothing changed.
    #[error("device {device:?}: transition {from} → {to} at {at_ms} refused: {reason}")]
    Inconsistent {
        /// Device id.
        device: String,
        /// The transition's `from`.
        from: DeviceState,
        /// The transition's `to`.
        to: DeviceState,
        /// The transition's time.
        at_ms: UnixMs,
        /// What does not match.
        reason: String,
    },
    /// A maintenance window with this id is already stored.
    #[error("a maintenance window with the id {0:?} already exists")]
    WindowExists(String),
    /// A number does not fit SQLite's signed 64-bit integers.
    #[error("{what} {value} is too large to store")]
    TooLarge {
        /// Which number.
        what: &'static str,
        /// Its value.
        value: u64,
    },
}

impl StoreError {
    /// True when the database file is damaged or lost (found at start, or
    /// reported by SQLite at run time): retrying cannot help; the gateway
    /// stops, and the next start refuses the file.
    pub fn is_damage(&self) -> bool {
        match self {
            StoreError::Lost { .. } | StoreError::Damaged { .. } | StoreError::Corrupt { .. } => {
                true
            }
            StoreError::Sqlite(e) | StoreError::Open { source: e, .. } => super::db::is_damage(e),
            _ => false,
        }
    }

    /// True when the disk (or the file system) is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DiskFull
        )
    }

    /// True for a lock that could not be taken within the busy timeout
    /// (another process holds the write lock): retrying later may succeed.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }
}
