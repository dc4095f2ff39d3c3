//! Retention: deleting, in small batches, what lies entirely before a
//! cutoff (`[store] keep_months`, see `docs/config.md`), so that years of
//! running do not grow `gateway.db` without bound while every month from
//! the cutoff's on reports exactly as before.
//!
//! # What goes, what stays
//!
//! | table | deleted when | never deleted |
//! |---|---|---|
//! | `intervals` | closed before the cutoff (`to_ms < cutoff`), **and** the device has a later `Up` or `Down` interval that also ends before the cutoff | open intervals; each device's last `Up`/`Down` interval ending before the cutoff and everything after it |
//! | `tickets`, `ticket_events` | the ticket is `closed` and its last change is before the cutoff (and before the rework period, when that reaches further back) | open, acknowledged and resolved tickets, whatever their age |
//! | `commands` | finished before the cutoff | pending commands |
//! | `windows` | one-off windows that ended before the cutoff | weekly windows |
//!
//! Not touched: `meta`, `devices`, `alerts` (the alert log), `nonces`
//! (pruned on insert), and the outbox files.
//!
//! Why a device's last `Up`/`Down` interval before the cutoff stays: a
//! report tells a fault running into its month from one starting at
//! midnight by that interval (`Store::last_up_or_down_before`), and the
//! first instant of a device's history (`Store::device_spans`) must stay at
//! or before the cutoff. With it, the report of any month from the
//! cutoff's on reads exactly the rows it read before (a test compares every
//! figure).
//!
//! # The cutoff is remembered
//!
//! [`Store::begin_prune`] records the cutoff in `meta` before anything is
//! deleted (it never moves back, even when `keep_months` grows), so that
//! `gateway report` can refuse a month before it as "no longer kept"
//! instead of printing a report with holes. It also records the next ticket
//! id, so that deleting the newest tickets never lets an id be reused.
//!
//! # Bounded batches
//!
//! [`Store::prune_batch`] is one transaction that deletes at most `limit`
//! rows of one table (tickets: `limit / 10` tickets with their events), so
//! that the engine, which calls it once per tick, never holds the write
//! lock for more than a few milliseconds.

use gateway_core::state::UnixMs;
use rusqlite::params;

use super::db::{META_NEXT_TICKET, META_RETAINED_FROM, get_meta, set_meta};
use super::{Store, StoreError};

/// What one prune call (or a whole run) deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Closed availability intervals.
    pub intervals: u64,
    /// Closed tickets.
    pub tickets: u64,
    /// Events of those tickets.
    pub ticket_events: u64,
    /// Finished commands.
    pub commands: u64,
    /// Ended one-off maintenance windows.
    pub windows: u64,
}

impl Pruned {
    /// Rows deleted in all.
    pub fn total(&self) -> u64 {
        self.intervals + self.tickets + self.ticket_events + self.commands + self.windows
    }
}

impl std::ops::AddAssign for Pruned {
    fn add_assign(&mut self, o: Pruned) {
        self.intervals += o.intervals;
        self.tickets += o.tickets;
        self.ticket_events += o.ticket_events;
        self.commands += o.commands;
        self.windows += o.windows;
    }
}

/// Where a prune run cuts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cutoff {
    /// The retention cutoff (`gateway_core::ledger::retention_cutoff`).
    pub before_ms: UnixMs,
    /// Closed tickets whose last change is before this go; the cutoff, or
    /// the start of the rework period when that is earlier (a ticket the
    /// ticket book may still reopen stays).
    pub tickets_before_ms: UnixMs,
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl Store {
    /// The cutoff of the last prune run: intervals, tickets, commands and
    /// windows lying entirely before it may have been deleted. `None` when
    /// nothing was ever pruned.
    pub fn retained_from(&self) -> Result<Option<UnixMs>, StoreError> {
        get_meta(&self.conn, META_RETAINED_FROM)
    }

    /// Whether ticket `id` existed once and was deleted by retention (no
    /// such row now, but a lower id than the next one, after a prune).
    pub fn ticket_deleted(&self, id: u64) -> Result<bool, StoreError> {
        if self.retained_from()?.is_none() || id >= self.next_ticket_id()? {
            return Ok(false);
        }
        Ok(self.ticket(id)?.is_none())
    }

    /// Starts a prune run at `cutoff_ms`: records it as
    /// [`retained_from`](Self::retained_from) (never moving it back) and
    /// the next ticket id, before anything is deleted.
    pub fn begin_prune(&self, cutoff_ms: UnixMs) -> Result<(), StoreError> {
        self.write(|c| {
            let old = get_meta(c, META_RETAINED_FROM)?;
            set_meta(
                c,
                META_RETAINED_FROM,
                old.map_or(cutoff_ms, |o| o.max(cutoff_ms)),
            )?;
            let max: Option<i64> = c.query_row("SELECT MAX(id) FROM tickets", [], |r| r.get(0))?;
            let next = max.map_or(1, |m| m.saturating_add(1));
            let kept = get_meta(c, META_NEXT_TICKET)?.unwrap_or(1);
            set_meta(c, META_NEXT_TICKET, next.max(kept))
        })
    }

    /// Deletes at most `limit` rows lying entirely before `cutoff` from the
    /// first table that still has some (intervals, tickets with their
    /// events, commands, windows), in one transaction; returns what it
    /// deleted. All zero: nothing is left to delete.
    pub fn prune_batch(&self, cutoff: &Cutoff, limit: usize) -> Result<Pruned, StoreError> {
        let limit = i64::try_from(limit.max(10)).unwrap_or(i64::MAX);
        let before = cutoff.before_ms;
        self.write(|c| {
            // Intervals: the EXISTS probe walks (device, from_ms) from the
            // row on and stops at the first later Up/Down before the cutoff.
            let n = c.execute(
                "DELETE FROM intervals WHERE id IN (
                     SELECT i.id FROM intervals i
                     WHERE i.from_ms < ?1 AND i.to_ms < ?1
                       AND EXISTS (SELECT 1 FROM intervals j
                                   WHERE j.device = i.device AND j.from_ms > i.from_ms
                                     AND j.to_ms < ?1 AND j.state IN ('up', 'down'))
                     ORDER BY i.from_ms LIMIT ?2)",
                params![before, limit],
            )?;
            if n > 0 {
                return Ok(Pruned {
                    intervals: count(n),
                    ..Pruned::default()
                });
            }
            let ids: Vec<i64> = c
                .prepare(
                    "SELECT id FROM tickets WHERE state = 'closed' AND updated_ms < ?1
                     ORDER BY updated_ms LIMIT ?2",
                )?
                .query_map(
                    params![cutoff.tickets_before_ms.min(before), limit / 10],
                    |r| r.get(0),
                )?
                .collect::<Result<_, _>>()?;
            if !ids.is_empty() {
                let mut events = 0;
                let mut tickets = 0;
                for id in ids {
                    events += c.execute("DELETE FROM ticket_events WHERE ticket = ?1", [id])?;
                    tickets += c.execute("DELETE FROM tickets WHERE id = ?1", [id])?;
                }
                return Ok(Pruned {
                    tickets: count(tickets),
                    ticket_events: count(events),
                    ..Pruned::default()
                });
            }
            let n = c.execute(
                "DELETE FROM commands WHERE id IN (
                     SELECT id FROM commands WHERE finished = 1 AND done_ms < ?1
                     ORDER BY done_ms LIMIT ?2)",
                params![before, limit],
            )?;
            if n > 0 {
                return Ok(Pruned {
                    commands: count(n),
                    ..Pruned::default()
                });
            }
            // One-off windows only: `{"schedule":{"once":{"from_ms":…,"to_ms":…}}}`;
            // a weekly window has no end and extracts NULL.
            let n = c.execute(
                "DELETE FROM windows WHERE seq IN (
                     SELECT seq FROM windows
                     WHERE json_extract(json, '$.schedule.once.to_ms') < ?1
                     ORDER BY seq LIMIT ?2)",
                params![before, limit],
            )?;
            Ok(Pruned {
                windows: count(n),
                ..Pruned::default()
            })
        })
    }
}

#[cfg(test)]
mod tests;
