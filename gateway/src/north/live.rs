//! The live tail: records just appended to the outbox, handed to the MQTT
//! publisher from memory so that the live path never reads them back from
//! SQLite.
//!
//! The outbox stays the durable log: a record enters the tail only after
//! the transaction that stored it committed, and it leaves the outbox only
//! on its PubAck, as before. The tail is only a faster way for the
//! publisher to learn what was appended.
//!
//! Its one invariant: **every record appended with `seq >= from` is in the
//! tail**, except those the publisher took (which lowers nothing: taking
//! record `s` moves `from` to `s + 1`). So when the publisher's cursor (the
//! highest seq it handed to the client on this connection) is at least
//! `from - 1`, the tail holds everything after the cursor and SQLite need
//! not be read; otherwise (after a reconnection, at start, after the tail
//! overflowed) the publisher reads the outbox in seq order as before until
//! its cursor reaches the tail.
//!
//! Bounded: when the publisher does not keep up (no connection, a slow
//! broker) and the tail would pass [`MAX_RECORDS`] or [`MAX_BYTES`], it is
//! emptied and `from` moves past the last append; the publisher then reads
//! those records from SQLite.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::outbox::{NewRecord, Record};

/// The most records the tail holds.
pub const MAX_RECORDS: usize = 8192;
/// The most bytes (topic + payload + a per-record overhead) the tail holds.
pub const MAX_BYTES: usize = 2 * 1024 * 1024;
/// Bytes counted per record beyond topic and payload.
const OVERHEAD: usize = 64;

#[derive(Debug, Default)]
struct Inner {
    records: VecDeque<Record>,
    bytes: usize,
    /// Every record appended with seq >= `from` is in `records` (see the
    /// module doc). 0 until the first push: nothing is known yet.
    from: u64,
    /// Set once records are pushed, i.e. `from` means something.
    started: bool,
}

/// Records appended and not yet taken by the publisher; see the module doc.
#[derive(Debug, Default)]
pub struct LiveTail {
    inner: Mutex<Inner>,
}

fn cost(r: &Record) -> usize {
    r.topic.len() + r.payload.len() + OVERHEAD
}

impl LiveTail {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind: go on.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records stored by one committed append, in seq order, all of it
    /// (`complete`: nothing of the append was dropped). An incomplete
    /// append (telemetry dropped to make room) empties the tail instead:
    /// the publisher reads the outbox, which says what is really stored.
    pub fn push(&self, records: impl IntoIterator<Item = (u64, NewRecord)>, complete: bool) {
        let mut g = self.lock();
        let mut last = None;
        let mut overflow = !complete;
        for (seq, r) in records {
            last = Some(seq);
            if overflow {
                continue;
            }
            let rec = Record {
                seq,
                topic: r.topic,
                payload: r.payload,
                qos: r.qos,
                retain: r.retain,
            };
            let c = cost(&rec);
            if g.records.len() >= MAX_RECORDS || g.bytes + c > MAX_BYTES {
                overflow = true;
                continue;
            }
            if !g.started {
                g.started = true;
                g.from = seq;
            }
            g.bytes += c;
            g.records.push_back(rec);
        }
        if overflow && let Some(last) = last {
            g.records.clear();
            g.bytes = 0;
            g.started = true;
            g.from = last.saturating_add(1);
        }
    }

    /// Whether the tail holds every record after `cursor` (see the module doc).
    pub fn covers(&self, cursor: u64) -> bool {
        let g = self.lock();
        g.started && cursor.saturating_add(1) >= g.from
    }

    /// When the tail holds every record after `cursor`: moves up to `max`
    /// of them, in seq order, into `out` (records at or below `cursor`,
    /// already sent from the outbox, are dropped) and returns true. False
    /// when the outbox must be read instead.
    pub fn take(&self, cursor: u64, max: usize, out: &mut Vec<Record>) -> bool {
        let mut g = self.lock();
        if !g.started || cursor.saturating_add(1) < g.from {
            return false;
        }
        let mut taken = 0;
        while taken < max {
            let Some(r) = g.records.pop_front() else {
                break;
            };
            g.bytes = g.bytes.saturating_sub(cost(&r));
            g.from = r.seq.saturating_add(1);
            if r.seq > cursor {
                out.push(r);
                taken += 1;
            }
        }
        true
    }

    /// Records in the tail now.
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// True when the tail is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::north::outbox::Kind;

    fn rec(seq: u64, size: usize) -> (u64, NewRecord) {
        (
            seq,
            NewRecord {
                topic: "t".into(),
                payload: vec![b'x'; size],
                qos: 1,
                retain: false,
                kind: Kind::Telemetry,
            },
        )
    }

    fn seqs(v: &[Record]) -> Vec<u64> {
        v.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn the_tail_serves_what_follows_the_cursor_and_nothing_before_its_start() {
        let t = LiveTail::default();
        let mut out = Vec::new();
        assert!(!t.take(0, 10, &mut out), "nothing pushed: read the outbox");
        t.push((5..=8).map(|s| rec(s, 10)), true);
        // A cursor below 4 may miss records 1..4 that only the outbox has.
        assert!(!t.take(2, 10, &mut out));
        assert!(t.take(4, 2, &mut out));
        assert_eq!(seqs(&out), vec![5, 6]);
        out.clear();
        // Records at or below the cursor (sent from the outbox) are skipped.
        assert!(t.take(7, 10, &mut out));
        assert_eq!(seqs(&out), vec![8]);
        assert!(t.is_empty());
        // After a reconnection the cursor starts again at 0: the outbox.
        assert!(!t.take(0, 10, &mut out));
        assert!(t.covers(8));
    }

    #[test]
    fn an_overflowing_or_incomplete_append_empties_the_tail_and_moves_its_start() {
        let t = LiveTail::default();
        t.push((1..=3).map(|s| rec(s, 10)), true);
        t.push((4..=(3 + MAX_RECORDS as u64)).map(|s| rec(s, 10)), true);
        assert!(t.is_empty());
        let mut out = Vec::new();
        assert!(!t.take(3, 10, &mut out), "4.. are in the outbox only");
        assert!(t.take(3 + MAX_RECORDS as u64, 10, &mut out));
        t.push((9000..=9001).map(|s| rec(s, 10)), false);
        assert!(t.is_empty());
        assert!(!t.take(8999, 10, &mut out));
        t.push((9002..=9002).map(|s| rec(s, 10)), true);
        assert!(t.take(9001, 10, &mut out));
        assert_eq!(seqs(&out), vec![9002]);
        // Bytes bound too.
        t.push((9003..=9010).map(|s| rec(s, MAX_BYTES / 4)), true);
        assert!(t.is_empty());
    }
}
