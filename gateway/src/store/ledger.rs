//! The ledger's intervals: recording transitions, recovery after a crash,
//! reading intervals back.

use gateway_core::state::{DeviceState, Interval, Transition, UnixMs};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Store, StoreError};

/// The reason of the `Unknown` interval recovery opens over a gateway outage.
pub const REASON_GATEWAY_DOWN: &str = "gateway_down";

/// A device's open interval: (device, state, reason, since).
pub type OpenInterval = (String, DeviceState, Option<String>, UnixMs);

/// A device's open interval as stored.
struct Open {
    row: i64,
    state: DeviceState,
    reason: Option<String>,
    from_ms: UnixMs,
}

fn parse_state(device: &str, s: &str) -> Result<DeviceState, StoreError> {
    DeviceState::parse(s).ok_or_else(|| StoreError::Corrupt {
        what: format!("interval of device {device:?}"),
        reason: format!("unknown state {s:?}"),
    })
}

fn open_of(c: &Connection, device: &str) -> Result<Option<Open>, StoreError> {
    let row = c
        .query_row(
            "SELECT id, state, reason, from_ms FROM intervals WHERE device = ?1 AND to_ms IS NULL",
            [device],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            },
        )
        .optional()?;
    row.map(|(row, state, reason, from_ms)| {
        Ok(Open {
            row,
            state: parse_state(device, &state)?,
            reason,
            from_ms,
        })
    })
    .transpose()
}

/// Closes `open` at `at_ms` and opens `to` there. An open interval that
/// would close with zero length is replaced instead (no empty intervals).
fn switch(
    c: &Connection,
    device: &str,
    open: Option<&Open>,
    to: DeviceState,
    reason: Option<&str>,
    at_ms: UnixMs,
) -> Result<(), StoreError> {
    match open {
        Some(o) if at_ms <= o.from_ms => {
            c.execute(
                "UPDATE intervals SET state = ?2, reason = ?3 WHERE id = ?1",
                params![o.row, to.as_str(), reason],
            )?;
        }
        Some(o) => {
            c.execute(
                "UPDATE intervals SET to_ms = ?2 WHERE id = ?1",
                params![o.row, at_ms],
            )?;
            insert_open(c, device, to, reason, at_ms)?;
        }
        None => insert_open(c, device, to, reason, at_ms)?,
    }
    Ok(())
}

fn insert_open(
    c: &Connection,
    device: &str,
    state: DeviceState,
    reason: Option<&str>,
    from_ms: UnixMs,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO intervals (device, state, reason, from_ms) VALUES (?1, ?2, ?3, ?4)",
        params![device, state.as_str(), reason, from_ms],
    )?;
    Ok(())
}

impl Store {
    /// Closes the device's open interval at `t.at_ms` and opens `t.to` there,
    /// in one transaction. Refused with [`StoreError::Inconsistent`] (nothing
    /// changed) when `t.from` is not the open interval's state, when `t.at_ms`
    /// is before the open interval's start, or — for a device with no open
    /// interval (its first transition) — when `t.at_ms` is before the end of
    /// its last closed interval. A transition at the open interval's very
    /// start replaces it rather than leaving an empty interval.
    pub fn record_transition(&mut self, t: &Transition) -> Result<(), StoreError> {
        let refuse = |reason: String| StoreError::Inconsistent {
            device: t.device.clone(),
            from: t.from,
            to: t.to,
            at_ms: t.at_ms,
            reason,
        };
        self.write(|c| {
            let open = open_of(c, &t.device)?;
            match &open {
                Some(o) if o.state != t.from => {
                    return Err(refuse(format!("the device's open interval is {}", o.state)));
                }
                Some(o) if t.at_ms < o.from_ms => {
                    return Err(refuse(format!(
                        "the device's open interval began later, at {}",
                        o.from_ms
                    )));
                }
                Some(_) => {}
                None => {
                    let last_end: Option<i64> = c.query_row(
                        "SELECT MAX(to_ms) FROM intervals WHERE device = ?1",
                        [&t.device],
                        |r| r.get(0),
                    )?;
                    if let Some(end) = last_end.filter(|end| t.at_ms < *end) {
                        return Err(refuse(format!(
                            "the device's recorded history already reaches {end}"
                        )));
                    }
                }
            }
            switch(
                c,
                &t.device,
                open.as_ref(),
                t.to,
                t.reason.as_deref(),
                t.at_ms,
            )
        })
    }

    /// After a crash, a power cut or a stop: every open interval is closed at
    /// the last heartbeat (never before its own start) and an `Unknown`
    /// interval with reason `gateway_down` opened there; returns those
    /// transitions. Open intervals already `Unknown`/`gateway_down` are left
    /// alone, so a second call changes nothing and returns nothing. With no
    /// heartbeat at all, each open interval is replaced by the `Unknown` one
    /// from its own start (nothing after the start is known). A heartbeat
    /// later than `now_ms` (the clock was stepped back) is capped at `now_ms`.
    pub fn recover(&mut self, now_ms: UnixMs) -> Result<Vec<Transition>, StoreError> {
        self.write(|c| {
            let heartbeat: Option<i64> = c
                .query_row(
                    "SELECT value FROM meta WHERE key = 'heartbeat_ms'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            let devices: Vec<String> = c
                .prepare("SELECT device FROM intervals WHERE to_ms IS NULL ORDER BY device")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut out = Vec::new();
            for device in devices {
                let Some(open) = open_of(c, &device)? else {
                    continue;
                };
                if open.state == DeviceState::Unknown
                    && open.reason.as_deref() == Some(REASON_GATEWAY_DOWN)
                {
                    continue;
                }
                let at_ms = heartbeat.map_or(open.from_ms, |h| h.min(now_ms).max(open.from_ms));
                switch(
                    c,
                    &device,
                    Some(&open),
                    DeviceState::Unknown,
                    Some(REASON_GATEWAY_DOWN),
                    at_ms,
                )?;
                out.push(Transition {
                    device,
                    from: open.state,
                    to: DeviceState::Unknown,
                    reason: Some(REASON_GATEWAY_DOWN.to_owned()),
                    at_ms,
                });
            }
            Ok(out)
        })
    }

    /// Every device's open interval: (device, state, reason, since), by device.
    pub fn open_intervals(&self) -> Result<Vec<OpenInterval>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT device, state, reason, from_ms FROM intervals WHERE to_ms IS NULL ORDER BY device",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (device, state, reason, from_ms) = row?;
            let state = parse_state(&device, &state)?;
            out.push((device, state, reason, from_ms));
        }
        Ok(out)
    }

    /// Intervals of one device (or of all, when `device` is `None`) that
    /// overlap `[from_ms, to_ms)`, clipped to it, by device then time. The
    /// open interval is taken to end at `now_ms`; pieces left empty by the
    /// clipping are dropped.
    pub fn intervals(
        &self,
        device: Option<&str>,
        from_ms: UnixMs,
        to_ms: UnixMs,
        now_ms: UnixMs,
    ) -> Result<Vec<Interval>, StoreError> {
        // Two statements, so that a device's query uses (device, from_ms).
        let mut stmt = self.conn.prepare_cached(if device.is_some() {
            "SELECT device, state, reason, from_ms, COALESCE(to_ms, ?4) FROM intervals
             WHERE device = ?1 AND from_ms < ?3 AND (to_ms IS NULL OR to_ms > ?2)
             ORDER BY from_ms"
        } else {
            "SELECT device, state, reason, from_ms, COALESCE(to_ms, ?4) FROM intervals
             WHERE ?1 IS NULL AND from_ms < ?3 AND (to_ms IS NULL OR to_ms > ?2)
             ORDER BY device, from_ms"
        })?;
        let rows = stmt.query_map(params![device, from_ms, to_ms, now_ms], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (device, state, reason, start, end) = row?;
            let state = parse_state(&device, &state)?;
            let (start, end) = (start.max(from_ms), end.min(to_ms));
            if start < end {
                out.push(Interval {
                    device,
                    state,
                    reason,
                    from_ms: start,
                    to_ms: end,
                });
            }
        }
        Ok(out)
    }
}

impl Store {
    /// Per device: the first instant recorded, and the end of its last `Up`,
    /// `Down` or `Maintenance` interval (open ones end at `now_ms`) — when
    /// it was added, and the last moment it was watched. By device. For the
    /// monthly report's device catalogue (a device no longer configured
    /// counts until its last watched moment).
    pub fn device_spans(
        &self,
        now_ms: UnixMs,
    ) -> Result<Vec<(String, UnixMs, Option<UnixMs>)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT device, MIN(from_ms),
                    MAX(CASE WHEN state <> 'unknown' THEN COALESCE(to_ms, ?1) END)
             FROM intervals GROUP BY device ORDER BY device",
        )?;
        let rows = stmt.query_map([now_ms], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Per device, its last `Up` or `Down` interval ending at or before
    /// `at_ms`, whole: what tells the ledger whether a `Down` interval at
    /// the start of a window continues an older fault (see
    /// `gateway_core::ledger`, "Incidents"). By device.
    pub fn last_up_or_down_before(&self, at_ms: UnixMs) -> Result<Vec<Interval>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT i.device, i.state, i.reason, i.from_ms, i.to_ms FROM intervals i
             JOIN (SELECT device, MAX(to_ms) AS end_ms FROM intervals
                   WHERE to_ms IS NOT NULL AND to_ms <= ?1 AND state IN ('up', 'down')
                   GROUP BY device) last
               ON i.device = last.device AND i.to_ms = last.end_ms AND i.state IN ('up', 'down')
             ORDER BY i.device",
        )?;
        let rows = stmt.query_map([at_ms], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (device, state, reason, from_ms, to_ms) = row?;
            let state = parse_state(&device, &state)?;
            out.push(Interval {
                device,
                state,
                reason,
                from_ms,
                to_ms,
            });
        }
        Ok(out)
    }
}
