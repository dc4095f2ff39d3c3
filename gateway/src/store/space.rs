//! Room on the data disk: the `[store] min_free` reserve, the spare file,
//! and the disk's condition for logs, `/healthz` and `/metrics`.
//!
//! The ledger (`gateway.db`: intervals, tickets, commands) and the outboxes
//! share the data disk. When it fills, the ledger must keep going and
//! telemetry give way:
//!
//! - **Reserve.** Telemetry may not use the last `min_free` bytes of the
//!   file system: each outbox keeps its files within its own size plus the
//!   free space above `min_free` ([`Space::headroom`]). Below the reserve
//!   it drops its oldest telemetry first (counted, a gap in `seq`), gives
//!   the pages back to the file system (incremental vacuum, truncating
//!   checkpoint), and so hands the room to the ledger, events, states and
//!   tickets, which are never dropped for space.
//! - **Spare file.** `gateway.spare` (a quarter of `min_free`, at most
//!   16 MiB) holds room that nothing else can take. When a write fails
//!   with the disk full anyway (another program filled it), the file is
//!   deleted ([`Space::on_full`]): SQLite then has room for the journal
//!   pages a delete needs, so acknowledged records can always be removed
//!   and telemetry dropped, and the ledger's write goes through. It is
//!   written again once the space is back.
//! - **Condition**: `ok`, `low` (free below `min_free`, or telemetry
//!   dropped to stay out of it, in the last [`FULL_HOLD_MS`]) or `full` (a
//!   write failed for lack of space in the last [`FULL_HOLD_MS`]). Each change
//!   is logged once, not each write; anything but `ok` makes `/healthz`
//!   degraded.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use tracing::{error, info, warn};

/// The spare file in the data directory.
pub const SPARE_FILE: &str = "gateway.spare";
/// The largest spare file.
pub const MAX_SPARE: u64 = 16 * 1024 * 1024;
/// How long after a write failed for lack of space the disk counts as full.
pub const FULL_HOLD_MS: i64 = 5_000;

/// The data disk's condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Condition {
    /// Free space above `min_free`.
    Ok,
    /// Free space below `min_free`, or telemetry dropped to stay out of
    /// it: telemetry gives way.
    Low,
    /// A write failed for lack of space.
    Full,
}

impl Condition {
    /// For logs and `/healthz`.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Ok => "ok",
            Condition::Low => "low",
            Condition::Full => "full",
        }
    }
}

/// Counters and gauges of the data disk and the ledger's writes.
#[derive(Debug, Default)]
pub struct SpaceStats {
    /// Bytes free for the gateway on the data disk (last look).
    pub free_bytes: AtomicU64,
    /// The condition now ([`Condition`] as 0, 1, 2).
    pub condition: AtomicU64,
    /// Times a write failed for lack of space, since start.
    pub full_events: AtomicU64,
    /// The ledger's writes are failing now (they are kept and retried).
    pub ledger_failing: AtomicBool,
    /// Ledger writes that failed, since start.
    pub ledger_failures: AtomicU64,
    /// Messages other than telemetry dropped from the in-memory backlog of
    /// the MQTT outbox because the disk stayed full (a gap in `seq`).
    pub backlog_lost: AtomicU64,
}

/// The data disk of one gateway; see the module doc.
#[derive(Debug)]
pub struct Space {
    dir: PathBuf,
    min_free: u64,
    spare_bytes: u64,
    last_full_ms: AtomicI64,
    last_dropped_ms: AtomicI64,
    shown: Mutex<Condition>,
    /// Shared with `/metrics` and `/healthz`.
    pub stats: SpaceStats,
}

/// Bytes available to an unprivileged writer on the file system of `dir`.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

fn now_ms() -> i64 {
    crate::run::unix_now_ms()
}

impl Space {
    /// The data disk of `dir` with a reserve of `min_free` bytes; writes
    /// the spare file when there is room for it.
    pub fn new(dir: &Path, min_free: u64) -> Space {
        let s = Space {
            dir: dir.to_path_buf(),
            min_free,
            spare_bytes: (min_free / 4).min(MAX_SPARE),
            last_full_ms: AtomicI64::new(i64::MIN / 2),
            last_dropped_ms: AtomicI64::new(i64::MIN / 2),
            shown: Mutex::new(Condition::Ok),
            stats: SpaceStats::default(),
        };
        s.maintain();
        s
    }

    /// The reserve.
    pub fn min_free(&self) -> u64 {
        self.min_free
    }

    /// Free bytes minus the reserve (negative below it), after a fresh
    /// look; `None` when the file system cannot be asked.
    pub fn headroom(&self) -> Option<i64> {
        let free = free_bytes(&self.dir)?;
        self.stats.free_bytes.store(free, Ordering::Relaxed);
        let free = i64::try_from(free).unwrap_or(i64::MAX);
        Some(free.saturating_sub(i64::try_from(self.min_free).unwrap_or(i64::MAX)))
    }

    /// A write failed for lack of space: the spare file goes, so that the
    /// next attempt has room. Returns whether the spare was there.
    pub fn on_full(&self) -> bool {
        self.last_full_ms.store(now_ms(), Ordering::Relaxed);
        self.stats.full_events.fetch_add(1, Ordering::Relaxed);
        let spare = self.dir.join(SPARE_FILE);
        let released = std::fs::remove_file(&spare).is_ok();
        self.refresh();
        released
    }

    /// An outbox dropped telemetry to stay out of the reserve: the disk
    /// counts as low for [`FULL_HOLD_MS`] from now.
    pub fn on_dropped(&self) {
        self.last_dropped_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// The condition now (and logs a change of it, once).
    pub fn refresh(&self) -> Condition {
        let headroom = self.headroom();
        let recent =
            |t: &AtomicI64| now_ms().saturating_sub(t.load(Ordering::Relaxed)) < FULL_HOLD_MS;
        let now = if recent(&self.last_full_ms) {
            Condition::Full
        } else if headroom.is_some_and(|h| h < 0) || recent(&self.last_dropped_ms) {
            Condition::Low
        } else {
            Condition::Ok
        };
        self.stats.condition.store(now as u64, Ordering::Relaxed);
        let Ok(mut shown) = self.shown.lock() else {
            return now;
        };
        if *shown != now {
            let free = self.stats.free_bytes.load(Ordering::Relaxed);
            match now {
                Condition::Full => error!(
                    data_dir = %self.dir.display(), free_bytes = free, min_free = self.min_free,
                    "data disk full: a write failed for lack of space; the spare file is released so that the ledger goes on and delivered records can be removed; telemetry is dropped, oldest first (counted in bms_outbox_dropped_total, a gap in seq)"
                ),
                Condition::Low => warn!(
                    data_dir = %self.dir.display(), free_bytes = free, min_free = self.min_free,
                    "data disk low: less free space than [store] min_free; telemetry gives way (oldest dropped first, counted, a gap in seq) so that the ledger, events and tickets keep their room"
                ),
                Condition::Ok => info!(
                    data_dir = %self.dir.display(), free_bytes = free, min_free = self.min_free,
                    was = shown.as_str(),
                    "data disk has room again: telemetry is kept again"
                ),
            }
            *shown = now;
        }
        now
    }

    /// Looks at the disk (logging a change of condition) and writes the
    /// spare file again once there is room for it above the reserve. Called
    /// about once a second.
    pub fn maintain(&self) {
        let cond = self.refresh();
        if self.spare_bytes == 0 || cond != Condition::Ok {
            return;
        }
        let spare = self.dir.join(SPARE_FILE);
        if std::fs::metadata(&spare).is_ok_and(|m| m.len() >= self.spare_bytes) {
            return;
        }
        let room = self
            .headroom()
            .is_some_and(|h| h >= i64::try_from(self.spare_bytes).unwrap_or(i64::MAX));
        if !room {
            return;
        }
        if let Err(e) = write_spare(&spare, self.spare_bytes) {
            let _ = std::fs::remove_file(&spare);
            warn!(file = %spare.display(), error = %e, "cannot write the spare file");
        }
    }
}

/// Writes `len` zero bytes (really allocated, not a sparse file).
fn write_spare(path: &Path, len: u64) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::File::create(path)?;
    let chunk = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spare_file_is_written_released_when_full_and_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let s = Space::new(dir.path(), 4 * 1024 * 1024);
        let spare = dir.path().join(SPARE_FILE);
        assert_eq!(std::fs::metadata(&spare).unwrap().len(), 1024 * 1024);
        assert!(s.on_full());
        assert!(!spare.exists());
        assert_eq!(s.refresh(), Condition::Full);
        assert!(!s.on_full(), "already released");
        // The condition holds for FULL_HOLD_MS after the last failure.
        s.last_full_ms.store(i64::MIN / 2, Ordering::Relaxed);
        s.maintain();
        assert!(spare.exists());
        assert_eq!(s.stats.full_events.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_reserve_larger_than_the_disk_is_low_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Space::new(dir.path(), u64::MAX / 4);
        assert_eq!(s.refresh(), Condition::Low);
        assert!(s.headroom().unwrap() < 0);
        assert!(!dir.path().join(SPARE_FILE).exists());
    }
}
