//! Tickets and their events: each ticket is stored whole as JSON (so a
//! change to the ticket type needs no migration) beside the columns the
//! queries filter on; every event is appended to a log the engine and the
//! MQTT side follow by row id.

use gateway_core::config::TicketsConfig;
use gateway_core::state::UnixMs;
use gateway_core::tickets::{Ticket, TicketEvent, still_needed};
use rusqlite::{Connection, OptionalExtension, params};

use super::db::{from_json, sql_id, to_json};
use super::{Store, StoreError};

/// Which tickets [`Store::tickets`] returns; the default is all of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TicketFilter {
    /// Only tickets that are not closed (open, acknowledged or resolved).
    pub open_only: bool,
    /// Only this device's tickets.
    pub device: Option<String>,
    /// Only tickets that changed at or after this time.
    pub since_ms: Option<UnixMs>,
}

fn upsert(c: &Connection, t: &Ticket, at_ms: UnixMs) -> Result<(), StoreError> {
    let json = to_json("ticket", t)?;
    c.execute(
        "INSERT INTO tickets (id, device, kind, severity, state, opened_ms, deadline_ms, resolved_ms, updated_ms, json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (id) DO UPDATE SET device = excluded.device, kind = excluded.kind,
             severity = excluded.severity, state = excluded.state, opened_ms = excluded.opened_ms,
             deadline_ms = excluded.deadline_ms, resolved_ms = excluded.resolved_ms,
             updated_ms = MAX(tickets.updated_ms, excluded.updated_ms), json = excluded.json",
        params![
            sql_id("ticket id", t.id)?,
            t.device,
            t.kind,
            t.severity.as_str(),
            t.state.as_str(),
            t.opened_ms,
            t.deadline_ms,
            t.resolved.as_ref().map(|s| s.at_ms),
            at_ms,
            json,
        ],
    )?;
    Ok(())
}

fn ticket_row(id: i64, json: &str) -> Result<Ticket, StoreError> {
    from_json(|| format!("ticket #{id}"), json)
}

impl Store {
    /// Saves what the ticket book returned, in one transaction: each
    /// event's ticket snapshot is upserted (later events of a batch win)
    /// and the event appended to the event log.
    pub fn save_ticket_events(&mut self, events: &[TicketEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        self.write(|c| {
            for ev in events {
                upsert(c, &ev.ticket, ev.at_ms)?;
                c.execute(
                    "INSERT INTO ticket_events (ticket, kind, at_ms, json) VALUES (?1, ?2, ?3, ?4)",
                    params![
                        sql_id("ticket id", ev.ticket.id)?,
                        ev.kind.as_str(),
                        ev.at_ms,
                        to_json("ticket event", ev)?,
                    ],
                )?;
            }
            Ok(())
        })?;
        if let Some(top) = events.iter().map(|e| e.ticket.id).max() {
            self.mark_ticket_id(top.saturating_add(1));
        }
        Ok(())
    }

    /// Tickets matching the filter, by id.
    pub fn tickets(&self, filter: &TicketFilter) -> Result<Vec<Ticket>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, json FROM tickets
             WHERE (?1 = 0 OR state <> 'closed') AND (?2 IS NULL OR device = ?2)
               AND (?3 IS NULL OR updated_ms >= ?3)
             ORDER BY id",
        )?;
        let rows = stmt.query_map(
            params![filter.open_only, filter.device, filter.since_ms],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row?;
            out.push(ticket_row(id, &json)?);
        }
        Ok(out)
    }

    /// The tickets a report of `[from_ms, until_ms)` needs, by id: every
    /// ticket opened before `until_ms` that changed in or after the period,
    /// falls due in or after it, or is not closed (so is open in it) —
    /// whatever its last update. A ticket opened on the 30th, due on the 1st
    /// and never touched again belongs to the month it falls due in.
    /// A superset: the report counts each figure by its own date.
    pub fn tickets_for_period(
        &self,
        from_ms: UnixMs,
        until_ms: UnixMs,
    ) -> Result<Vec<Ticket>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, json FROM tickets
             WHERE opened_ms < ?2
               AND (updated_ms >= ?1 OR deadline_ms >= ?1 OR state <> 'closed'
                    OR resolved_ms >= ?1)
             ORDER BY id",
        )?;
        let rows = stmt.query_map(params![from_ms, until_ms], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row?;
            out.push(ticket_row(id, &json)?);
        }
        Ok(out)
    }

    /// The tickets a `TicketBook` must be loaded with at `now_ms`: those not
    /// closed, and closed ones still within the rework period (see
    /// `gateway_core::tickets::still_needed`), by id.
    pub fn tickets_for_book(
        &self,
        cfg: &TicketsConfig,
        now_ms: UnixMs,
    ) -> Result<Vec<Ticket>, StoreError> {
        let rework = i64::try_from(cfg.rework_period.get().as_millis()).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare(
            "SELECT id, json FROM tickets
             WHERE state <> 'closed' OR resolved_ms > ?1
             ORDER BY id",
        )?;
        let rows = stmt.query_map([now_ms.saturating_sub(rework)], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row?;
            let t = ticket_row(id, &json)?;
            if still_needed(&t, cfg, now_ms) {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// One ticket by id.
    pub fn ticket(&self, id: u64) -> Result<Option<Ticket>, StoreError> {
        let Ok(sid) = i64::try_from(id) else {
            return Ok(None);
        };
        let json: Option<String> = self
            .conn
            .query_row("SELECT json FROM tickets WHERE id = ?1", [sid], |r| {
                r.get(0)
            })
            .optional()?;
        json.map(|j| ticket_row(sid, &j)).transpose()
    }

    /// The id after the largest ever stored (1 when there is none): the
    /// largest stored, or the one retention recorded before deleting old
    /// tickets (`meta.next_ticket_id`), so ids are never reused.
    pub fn next_ticket_id(&self) -> Result<u64, StoreError> {
        let max: Option<i64> = self
            .conn
            .query_row("SELECT MAX(id) FROM tickets", [], |r| r.get(0))?;
        let stored = max.map_or(1, |m| u64::try_from(m).unwrap_or(0).saturating_add(1));
        let kept = super::db::get_meta(&self.conn, super::db::META_NEXT_TICKET)?
            .and_then(|k| u64::try_from(k).ok())
            .unwrap_or(1);
        Ok(stored.max(kept).max(self.marked_next_ticket))
    }

    /// Events appended after row id `rowid` (0: all), oldest first, with
    /// their row ids (strictly increasing, never reused).
    pub fn ticket_events_after(&self, rowid: i64) -> Result<Vec<(i64, TicketEvent)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, json FROM ticket_events WHERE id > ?1 ORDER BY id")?;
        let rows = stmt.query_map([rowid], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row?;
            out.push((id, from_json(|| format!("ticket event {id}"), &json)?));
        }
        Ok(out)
    }

    /// Every stored event of one ticket, oldest first.
    pub fn ticket_events(&self, id: u64) -> Result<Vec<TicketEvent>, StoreError> {
        let Ok(sid) = i64::try_from(id) else {
            return Ok(Vec::new());
        };
        let mut stmt = self
            .conn
            .prepare("SELECT id, json FROM ticket_events WHERE ticket = ?1 ORDER BY id")?;
        let rows = stmt.query_map([sid], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (rid, json) = row?;
            out.push(from_json(|| format!("ticket event {rid}"), &json)?);
        }
        Ok(out)
    }
}
