//! Durable state of the gateway: one SQLite database (rusqlite, bundled) at
//! `<data_dir>/gateway.db`, shared by the running gateway and the CLI.
//!
//! # What is stored
//!
//! | table | rows | written by |
//! |---|---|---|
//! | `intervals` | the availability ledger: (device, state, reason, from, to); `to` is NULL for each device's one open interval | the engine ([`Store::record_transition`], [`Store::recover`]) |
//! | `meta` | last heartbeat, next message sequence value, retention cutoff, next ticket id | the engine |
//! | `tickets` | every ticket, whole as JSON, beside the indexed columns the queries filter on (id, device, kind, severity, state, opened, deadline, resolved, last change) | the engine, or the CLI when no gateway runs |
//! | `ticket_events` | append-only log of ticket events (JSON), row id = position | same |
//! | `commands` | queue from the CLI to the running gateway, with each outcome and when it finished | CLI enqueues, engine finishes |
//! | `windows` | maintenance windows added at run time (JSON) | engine or CLI |
//! | `devices` | id, names, class, threshold of the configured devices | the engine at start |
//! | `alerts` | notices to people (page, escalation, follow-up, digest), recorded before sent, with state, attempts, next try, last error | the alert dispatcher (`crate::alerts`) |
//! | `nonces` | ids of accepted MQTT commands, each kept until its `ts + max_age` | the MQTT command intake (`crate::cmdin`) |
//!
//! Intervals, tickets with their events, commands and one-off windows lying
//! entirely before the retention cutoff (`[store] keep_months`) are deleted
//! in small batches by the engine; see `retention.rs`.
//!
//! Tickets, events, commands and windows are stored as JSON text of the core
//! types, so a new field in those types needs no migration (serde defaults).
//! The schema version is `PRAGMA user_version`; [`Store::open`] applies the
//! missing migration steps in order, each in its own transaction, and
//! refuses a database written by a newer build ([`StoreError::SchemaTooNew`]).
//!
//! # Ledger invariants
//!
//! Per device: at most one open interval (a partial unique index enforces
//! it), intervals never overlap, and from the device's first interval on
//! they leave no hole — each transition closes the open interval exactly
//! where the next one opens. [`Store::record_transition`] refuses (changing
//! nothing) a transition whose `from` is not the open state or whose time is
//! before the open interval's start. No interval is empty: a transition at
//! the very start of the open interval replaces it.
//!
//! # Crash recovery
//!
//! The engine records a heartbeat every few seconds. At start,
//! [`Store::recover`] closes each open interval at the last heartbeat (the
//! last moment the gateway is known to have watched the device) and opens an
//! `Unknown` interval with reason `gateway_down` from there: the outage
//! counts as lost coverage, never as Up or Down. It is idempotent: open
//! `gateway_down` intervals are left as they are, so a crash during start-up
//! or a second call neither loses nor doubles an interval.
//!
//! # Durability and power cuts
//!
//! The database runs in WAL mode. With the default [`Durability::Normal`]
//! (`synchronous = NORMAL`) a commit is written to the WAL but synced to the
//! disk only at checkpoints: a power cut (not a process crash — a crash
//! loses nothing committed) can roll back the transactions committed since
//! the last checkpoint sync, typically the last second or so of heartbeats,
//! transitions and ticket changes. The database itself never corrupts, and
//! the lost stretch is covered by recovery: it becomes part of the
//! `gateway_down` gap. A ticket opened in that stretch is opened again when
//! its condition is seen again after the restart; a person's ack or resolve
//! committed in it is lost and must be repeated (the CLI shows the state).
//! [`Durability::Full`] (`synchronous = FULL`, via [`Store::open_with`])
//! syncs every commit instead, for one fsync per write.
//!
//! # Concurrency
//!
//! Any number of [`Store`] handles (processes) may be open on one file:
//! readers never block and see every committed write; writers serialise on
//! SQLite's write lock, waiting up to [`BUSY_TIMEOUT`]. Every write method
//! is one `BEGIN IMMEDIATE` transaction (the lock is taken before the first
//! read, so a read-modify-write never fails half way), and
//! [`Store::transaction`] groups several into one. The ticket book lives in
//! the engine's memory, so the CLI does not change tickets behind a running
//! gateway: it queues a [`Command`] and waits for the outcome; only when no
//! gateway runs (nobody holds the data directory's [`LOCK_FILE`]) does it apply the command itself,
//! inside one [`Store::transaction`].

// The alert outbox (issue #6).
mod alerts;
mod commands;
mod db;
mod error;
mod ledger;
mod marks;
mod nonces;
mod retention;
pub mod space;
mod tickets;
mod windows;
mod writes;

#[cfg(test)]
mod tests;

pub use alerts::{AlertRow, AlertState, ChannelTally};
pub use commands::{
    Command, CommandError, WriteValue, apply_ticket_command, apply_window_command, check_new_window,
};
pub use db::{BUSY_TIMEOUT, DB_FILE, Durability, SCHEMA_VERSION, Store};
pub use error::StoreError;
pub use ledger::{OpenInterval, REASON_GATEWAY_DOWN};
pub use marks::MARKS_FILE;
pub use retention::{Cutoff, Pruned};
pub use space::{Condition, Space, SpaceStats};
pub use tickets::TicketFilter;
pub use windows::DeviceRow;
pub use writes::{WriteFilter, WriteRow};

/// The lock file in the data directory: held by the running gateway for as
/// long as it runs (the operating system releases it when the process ends,
/// however it ends), and briefly by a CLI that changes the database of a
/// stopped gateway.
pub const LOCK_FILE: &str = "gateway.lock";

/// An exclusive hold on a data directory; released when dropped.
#[derive(Debug)]
pub struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    /// Takes the lock of `data_dir` (creating the folder and the lock file)
    /// if nobody holds it; `Ok(None)` when someone does.
    pub fn try_acquire(data_dir: &std::path::Path) -> std::io::Result<Option<DataDirLock>> {
        std::fs::create_dir_all(data_dir)?;
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(data_dir.join(LOCK_FILE))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(DataDirLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Whether a gateway holds the lock of `data_dir` now. An error reading
    /// the lock counts as "not running".
    pub fn is_held(data_dir: &std::path::Path) -> bool {
        matches!(DataDirLock::try_acquire(data_dir), Ok(None))
    }
}

/// The data directory of a configuration: `data_dir` as written when
/// absolute, else relative to the configuration file's folder (as
/// `profiles_dir` is), so that the gateway and a CLI started elsewhere agree.
pub fn data_dir_of(config_file: &std::path::Path, data_dir: &str) -> std::path::PathBuf {
    let base = config_file
        .parent()
        .unwrap_or_else(|| std::path::Path::new("."));
    crate::files::resolve_dir(base, data_dir)
}
