//! Where seen nonces are kept: the trait, and an in-memory book for tests.

use std::collections::HashMap;

/// Remembers the nonces (`id`) of accepted commands until their timestamp
/// makes them stale anyway. Implemented by the gateway's
/// [`Store`](crate::store::Store) (durable across restarts) and by
/// [`MemoryNonces`].
pub trait NonceBook {
    /// Remembers `id` until `keep_until_ms` (its command's `ts + max_age`)
    /// unless it is already known; `Ok(true)` when it was new. Entries whose
    /// `keep_until_ms` is before `now_ms` may be pruned. The error says why
    /// the book could not be read or written.
    fn remember(&mut self, id: &str, keep_until_ms: i64, now_ms: i64) -> Result<bool, String>;

    /// Whether `id` is known (and not yet prunable at `now_ms`); changes
    /// nothing.
    fn contains(&mut self, id: &str, now_ms: i64) -> Result<bool, String>;
}

/// A [`NonceBook`] in memory: forgets everything when dropped.
#[derive(Debug, Default, Clone)]
pub struct MemoryNonces {
    keep_until: HashMap<String, i64>,
}

impl MemoryNonces {
    /// An empty book.
    pub fn new() -> MemoryNonces {
        MemoryNonces::default()
    }

    /// How many nonces are kept.
    pub fn len(&self) -> usize {
        self.keep_until.len()
    }

    /// Whether no nonce is kept.
    pub fn is_empty(&self) -> bool {
        self.keep_until.is_empty()
    }
}

impl NonceBook for MemoryNonces {
    fn remember(&mut self, id: &str, keep_until_ms: i64, now_ms: i64) -> Result<bool, String> {
        self.keep_until.retain(|_, until| *until >= now_ms);
        if self.keep_until.contains_key(id) {
            return Ok(false);
        }
        self.keep_until.insert(id.to_owned(), keep_until_ms);
        Ok(true)
    }

    fn contains(&mut self, id: &str, now_ms: i64) -> Result<bool, String> {
        Ok(self.keep_until.get(id).is_some_and(|u| *u >= now_ms))
    }
}
