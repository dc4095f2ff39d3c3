//! Nonces of accepted MQTT commands (table `nonces`), so that a command
//! replayed right after a restart is still refused (see [`crate::cmdin`]).
//!
//! Each nonce is kept until its command's `ts + max_age`, after which the
//! timestamp check refuses a replay anyway; every insert first prunes the
//! nonces past that point, so the table holds at most the commands of the
//! last `2 × max_age`. Writes are ordered in the WAL: if the effect of a
//! command survived a power cut, so did its nonce, which was committed first.

use rusqlite::params;

use super::{Store, StoreError};
use crate::cmdin::NonceBook;

impl Store {
    /// Remembers the nonce `id` until `keep_until_ms` unless it is already
    /// kept, after pruning the nonces kept only until before `now_ms`; `true`
    /// when it was new. One transaction.
    pub fn remember_nonce(
        &self,
        id: &str,
        keep_until_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.write(|c| {
            c.execute("DELETE FROM nonces WHERE keep_until_ms < ?1", [now_ms])?;
            let added = c.execute(
                "INSERT INTO nonces (id, keep_until_ms) VALUES (?1, ?2)
                 ON CONFLICT (id) DO NOTHING",
                params![id, keep_until_ms],
            )?;
            Ok(added == 1)
        })
    }

    /// Whether the nonce `id` is kept and not prunable at `now_ms`.
    pub fn has_nonce(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM nonces WHERE id = ?1 AND keep_until_ms >= ?2)",
            params![id, now_ms],
            |r| r.get(0),
        )?)
    }

    /// How many nonces are kept (pruned ones excluded).
    pub fn nonce_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM nonces", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

impl NonceBook for Store {
    fn remember(&mut self, id: &str, keep_until_ms: i64, now_ms: i64) -> Result<bool, String> {
        self.remember_nonce(id, keep_until_ms, now_ms)
            .map_err(|e| e.to_string())
    }

    fn contains(&mut self, id: &str, now_ms: i64) -> Result<bool, String> {
        self.has_nonce(id, now_ms).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::super::SCHEMA_VERSION;
    use super::super::db::MIGRATIONS;
    use super::*;

    const NOW: i64 = 1_790_000_000_000;

    #[test]
    fn a_nonce_is_refused_again_after_reopening_and_pruned_after_its_time() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            assert!(s.remember_nonce("abcdefgh", NOW + 300_000, NOW).unwrap());
            assert!(!s.remember_nonce("abcdefgh", NOW + 300_000, NOW).unwrap());
        }
        let s = Store::open(dir.path()).unwrap();
        assert!(s.has_nonce("abcdefgh", NOW + 1).unwrap());
        assert!(
            !s.remember_nonce("abcdefgh", NOW + 300_001, NOW + 1)
                .unwrap()
        );
        // Past its keep-until: pruned by the next insert.
        assert!(!s.has_nonce("abcdefgh", NOW + 300_001).unwrap());
        assert!(
            s.remember_nonce("ijklmnop", NOW + 900_000, NOW + 300_001)
                .unwrap()
        );
        assert_eq!(s.nonce_count().unwrap(), 1);
        assert!(
            s.remember_nonce("abcdefgh", NOW + 900_000, NOW + 300_001)
                .unwrap()
        );
    }

    #[test]
    fn a_version_1_database_migrates_keeping_its_data() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = rusqlite::Connection::open(dir.path().join(super::super::DB_FILE)).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.execute(
                "INSERT INTO meta (key, value) VALUES ('heartbeat_ms', 42)",
                [],
            )
            .unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let v: i64 = s
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        const { assert!(SCHEMA_VERSION >= 2) };
        assert_eq!(s.last_heartbeat().unwrap(), Some(42));
        assert!(s.remember_nonce("abcdefgh", NOW, NOW).unwrap());
    }
}
