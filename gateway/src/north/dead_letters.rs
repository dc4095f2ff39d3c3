//! Lines the time-series store refused for good, set aside so that writing
//! goes on (`docs/influx.md`, "Refused lines").
//!
//! One SQLite file, `<data_dir>/influx-dead-letters.db`, table
//! `dead_letters (id INTEGER PRIMARY KEY, at_ms, status, reason, line)`:
//! each refused line with when it was set aside, the HTTP status and the
//! store's reason (shortened). Bounded: beyond [`MAX_LINES`] the oldest
//! rows are deleted (a store that refuses everything cannot fill the disk).
//! `gateway dead-letters` prints them as line protocol (to fix and write
//! again by hand) and can clear them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{Connection, params};

/// The dead-letter file in the data directory.
pub const DEAD_LETTERS_FILE: &str = "influx-dead-letters.db";

/// The most lines kept; older ones are deleted first.
pub const MAX_LINES: u64 = 100_000;

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct DeadLetterStats {
    /// Lines set aside since start.
    pub refused: AtomicU64,
    /// Lines held in the table now.
    pub held: AtomicU64,
}

/// One refused line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Row id (increasing).
    pub id: i64,
    /// When it was set aside (Unix ms).
    pub at_ms: i64,
    /// The HTTP status of the refusal.
    pub status: u16,
    /// The store's reason.
    pub reason: String,
    /// The line as it was sent.
    pub line: String,
}

/// Why the dead-letter table failed.
#[derive(Debug, thiserror::Error)]
#[error("dead-letter table {path}: {source}")]
pub struct DeadLetterError {
    path: PathBuf,
    source: rusqlite::Error,
}

/// The table, open.
#[derive(Debug)]
pub struct DeadLetters {
    conn: Connection,
    path: PathBuf,
    stats: Arc<DeadLetterStats>,
}

impl DeadLetters {
    /// Opens (or creates) the table in `data_dir`.
    pub fn open(
        data_dir: &Path,
        stats: Arc<DeadLetterStats>,
    ) -> Result<DeadLetters, DeadLetterError> {
        let path = data_dir.join(DEAD_LETTERS_FILE);
        let err = |source| DeadLetterError {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS dead_letters (
                 id INTEGER PRIMARY KEY,
                 at_ms INTEGER NOT NULL,
                 status INTEGER NOT NULL,
                 reason TEXT NOT NULL,
                 line TEXT NOT NULL
             );",
        )
        .map_err(err)?;
        let held: i64 = conn
            .query_row("SELECT COUNT(*) FROM dead_letters", [], |r| r.get(0))
            .map_err(err)?;
        stats
            .held
            .store(u64::try_from(held).unwrap_or(0), Ordering::Relaxed);
        Ok(DeadLetters { conn, path, stats })
    }

    fn err(&self, source: rusqlite::Error) -> DeadLetterError {
        DeadLetterError {
            path: self.path.clone(),
            source,
        }
    }

    /// Sets `lines` aside in one transaction, then trims to [`MAX_LINES`].
    pub fn put(
        &mut self,
        at_ms: i64,
        status: u16,
        reason: &str,
        lines: &[&str],
    ) -> Result<(), DeadLetterError> {
        let tx = self.conn.transaction().map_err(|e| DeadLetterError {
            path: self.path.clone(),
            source: e,
        })?;
        let result = (|| {
            {
                let mut ins = tx.prepare_cached(
                    "INSERT INTO dead_letters (at_ms, status, reason, line) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for l in lines {
                    ins.execute(params![at_ms, status, reason, l])?;
                }
            }
            tx.execute(
                "DELETE FROM dead_letters WHERE id <= (SELECT MAX(id) FROM dead_letters) - ?1",
                params![MAX_LINES as i64],
            )?;
            let held: i64 = tx.query_row("SELECT COUNT(*) FROM dead_letters", [], |r| r.get(0))?;
            tx.commit()?;
            Ok::<i64, rusqlite::Error>(held)
        })();
        let held = result.map_err(|e| self.err(e))?;
        self.stats
            .refused
            .fetch_add(lines.len() as u64, Ordering::Relaxed);
        self.stats
            .held
            .store(u64::try_from(held).unwrap_or(0), Ordering::Relaxed);
        Ok(())
    }

    /// Every line held, oldest first.
    pub fn list(&self) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let read = || {
            let mut q = self
                .conn
                .prepare("SELECT id, at_ms, status, reason, line FROM dead_letters ORDER BY id")?;
            let rows = q.query_map([], |r| {
                Ok(DeadLetter {
                    id: r.get(0)?,
                    at_ms: r.get(1)?,
                    status: r.get(2)?,
                    reason: r.get(3)?,
                    line: r.get(4)?,
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>()
        };
        read().map_err(|e| self.err(e))
    }

    /// Deletes the lines up to `id` (included); returns how many.
    pub fn clear_through(&mut self, id: i64) -> Result<usize, DeadLetterError> {
        let n = self
            .conn
            .execute("DELETE FROM dead_letters WHERE id <= ?1", params![id])
            .map_err(|e| self.err(e))?;
        self.stats.held.fetch_sub(
            (n as u64).min(self.stats.held.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_lines_are_kept_counted_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Arc::new(DeadLetterStats::default());
        let mut d = DeadLetters::open(dir.path(), Arc::clone(&stats)).unwrap();
        d.put(5, 400, "field type conflict", &["a x=1i 1", "a x=2i 2"])
            .unwrap();
        assert_eq!(stats.refused.load(Ordering::Relaxed), 2);
        assert_eq!(stats.held.load(Ordering::Relaxed), 2);
        let all = d.list().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].line, "a x=1i 1");
        assert_eq!(all[1].status, 400);
        assert_eq!(all[1].reason, "field type conflict");
        drop(d);
        // Kept across a restart.
        let stats = Arc::new(DeadLetterStats::default());
        let mut d = DeadLetters::open(dir.path(), Arc::clone(&stats)).unwrap();
        assert_eq!(stats.held.load(Ordering::Relaxed), 2);
        assert_eq!(d.clear_through(all[0].id).unwrap(), 1);
        assert_eq!(d.list().unwrap().len(), 1);
        assert_eq!(stats.held.load(Ordering::Relaxed), 1);
    }
}
