//! The alert outbox and log (table `alerts`, issue #6): every notice is
//! recorded here before it is sent, retried from here, and listed by
//! `gateway alerts log`. See [`crate::alerts`].

use gateway_core::alerts::{Notice, Recorded};
use gateway_core::state::UnixMs;
use rusqlite::{OptionalExtension, Row, params};

use super::db::{from_json, to_json};
use super::{Store, StoreError};

/// Where a recorded notice is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertState {
    /// Waiting to be sent (or retried at `next_ms`).
    Pending,
    /// Held for a digest not yet made.
    Held,
    /// Carried by a digest.
    Digested,
    /// Accepted by the channel.
    Sent,
    /// Given up (too old, or refused for good).
    Expired,
}

impl AlertState {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Held => "held",
            AlertState::Digested => "digested",
            AlertState::Sent => "sent",
            AlertState::Expired => "expired",
        }
    }

    fn parse(s: &str) -> AlertState {
        match s {
            "held" => AlertState::Held,
            "digested" => AlertState::Digested,
            "sent" => AlertState::Sent,
            "expired" => AlertState::Expired,
            _ => AlertState::Pending,
        }
    }
}

/// One recorded notice.
#[derive(Clone, Debug)]
pub struct AlertRow {
    /// Row id.
    pub id: i64,
    /// The notice.
    pub notice: Notice,
    /// The channel it goes out on (the notice's, or a fallback's).
    pub channel: String,
    /// State.
    pub state: AlertState,
    /// Attempts made.
    pub attempts: u32,
    /// Next attempt (pending).
    pub next_ms: UnixMs,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was sent or given up.
    pub done_ms: Option<UnixMs>,
    /// For a fallback copy: the channel that failed.
    pub via: Option<String>,
    /// When recorded.
    pub created_ms: UnixMs,
}

/// Counts of one channel's notices by outcome (for the dashboard: a
/// channel with `failing > 0` is not delivering now).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChannelTally {
    /// Channel id.
    pub channel: String,
    /// Accepted.
    pub sent: u64,
    /// Waiting or being retried.
    pub pending: u64,
    /// Of the pending, those that failed at least once.
    pub failing: u64,
    /// Given up.
    pub expired: u64,
    /// The latest failure, if the latest attempt failed.
    pub last_error: Option<String>,
}

const COLUMNS: &str =
    "id, json, channel, state, attempts, next_ms, last_error, done_ms, via, created_ms";

fn row(r: &Row<'_>) -> rusqlite::Result<(i64, String, AlertRow)> {
    let json: String = r.get(1)?;
    let state: String = r.get(3)?;
    Ok((
        r.get(0)?,
        json,
        AlertRow {
            id: r.get(0)?,
            notice: placeholder(),
            channel: r.get(2)?,
            state: AlertState::parse(&state),
            attempts: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
            next_ms: r.get(5)?,
            last_error: r.get(6)?,
            done_ms: r.get(7)?,
            via: r.get(8)?,
            created_ms: r.get(9)?,
        },
    ))
}

fn placeholder() -> Notice {
    Notice {
        key: String::new(),
        ticket: None,
        kind: gateway_core::alerts::NoticeKind::Page,
        tier: 0,
        channel: String::new(),
        message: gateway_core::alerts::Message {
            title: String::new(),
            lines: Vec::new(),
            link: None,
            link_text: String::new(),
            to: Vec::new(),
            urgent: false,
        },
        at_ms: 0,
        held: false,
        covers: Vec::new(),
    }
}

impl Store {
    fn alert_rows(&self, sql: &str, p: impl rusqlite::Params) -> Result<Vec<AlertRow>, StoreError> {
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt.query_map(p, row)?;
        let mut out = Vec::new();
        for r in rows {
            let (id, json, mut a) = r?;
            a.notice = from_json(|| format!("alert #{id}"), &json)?;
            out.push(a);
        }
        Ok(out)
    }

    /// Records notices (one transaction): new keys only (a key already
    /// recorded is left as it is); a digest marks the notices it carries
    /// `digested`. Returns how many were new.
    pub fn record_notices(&self, notices: &[Notice], now_ms: UnixMs) -> Result<usize, StoreError> {
        if notices.is_empty() {
            return Ok(0);
        }
        self.write(|c| {
            let mut added = 0;
            for n in notices {
                let json = to_json("alert", n)?;
                let names: Vec<&str> = n.message.to.iter().map(|r| r.name.as_str()).collect();
                let state = if n.held {
                    AlertState::Held
                } else {
                    AlertState::Pending
                };
                added += c.execute(
                    "INSERT INTO alerts (key, ticket, kind, tier, channel, recipients, json, state, created_ms, next_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
                     ON CONFLICT (key) DO NOTHING",
                    params![
                        n.key,
                        n.ticket.and_then(|t| i64::try_from(t).ok()),
                        n.kind.as_str(),
                        n.tier,
                        n.channel,
                        names.join(", "),
                        json,
                        state.as_str(),
                        now_ms
                    ],
                )?;
                for k in &n.covers {
                    c.execute(
                        "UPDATE alerts SET state = 'digested', done_ms = ?2 WHERE key = ?1 AND state = 'held'",
                        params![k, now_ms],
                    )?;
                }
            }
            Ok(added)
        })
    }

    /// A copy of a failed notice for its fallback channel (once per channel).
    pub fn record_fallback(
        &self,
        of: &AlertRow,
        channel: &str,
        now_ms: UnixMs,
    ) -> Result<bool, StoreError> {
        let mut n = of.notice.clone();
        n.key = format!("{}/fallback:{channel}", of.notice.key);
        let json = to_json("alert", &n)?;
        let names: Vec<&str> = n.message.to.iter().map(|r| r.name.as_str()).collect();
        let added = self.write(|c| {
            Ok(c.execute(
                "INSERT INTO alerts (key, ticket, kind, tier, channel, recipients, json, state, created_ms, next_ms, via)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?8, ?9)
                 ON CONFLICT (key) DO NOTHING",
                params![
                    n.key,
                    n.ticket.and_then(|t| i64::try_from(t).ok()),
                    n.kind.as_str(),
                    n.tier,
                    channel,
                    names.join(", "),
                    json,
                    now_ms,
                    of.channel
                ],
            )?)
        })?;
        Ok(added == 1)
    }

    /// Pending notices due at `now_ms`, oldest first.
    pub fn due_alerts(&self, now_ms: UnixMs, limit: usize) -> Result<Vec<AlertRow>, StoreError> {
        self.alert_rows(
            &format!(
                "SELECT {COLUMNS} FROM alerts WHERE state = 'pending' AND next_ms <= ?1 ORDER BY id LIMIT ?2"
            ),
            params![now_ms, i64::try_from(limit).unwrap_or(i64::MAX)],
        )
    }

    /// When the next pending notice is due.
    pub fn next_alert_ms(&self) -> Result<Option<UnixMs>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT MIN(next_ms) FROM alerts WHERE state = 'pending'",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten())
    }

    /// How many notices wait to be sent.
    pub fn pending_alerts(&self) -> Result<u64, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM alerts WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The channel accepted notice `id`.
    pub fn alert_sent(&self, id: i64, now_ms: UnixMs) -> Result<(), StoreError> {
        self.write(|c| {
            c.execute(
                "UPDATE alerts SET state = 'sent', attempts = attempts + 1, done_ms = ?2 WHERE id = ?1",
                params![id, now_ms],
            )?;
            Ok(())
        })
    }

    /// An attempt failed; try again at `next_ms`.
    pub fn alert_failed(&self, id: i64, error: &str, next_ms: UnixMs) -> Result<(), StoreError> {
        self.write(|c| {
            c.execute(
                "UPDATE alerts SET attempts = attempts + 1, last_error = ?2, next_ms = ?3 WHERE id = ?1",
                params![id, error, next_ms],
            )?;
            Ok(())
        })
    }

    /// Given up on notice `id`.
    pub fn alert_expired(&self, id: i64, error: &str, now_ms: UnixMs) -> Result<(), StoreError> {
        self.write(|c| {
            c.execute(
                "UPDATE alerts SET state = 'expired', last_error = ?2, done_ms = ?3 WHERE id = ?1",
                params![id, error, now_ms],
            )?;
            Ok(())
        })
    }

    /// Deletes at most `limit` notices in a final state (sent, expired,
    /// digested) that reached it before `before_ms`, oldest first, in one
    /// short transaction; returns how many. Never a pending or held notice,
    /// nor one of a ticket that is not closed (the restore needs those to
    /// know who was paged and what was sent). Call again while it returns
    /// `limit`.
    pub fn prune_alerts(&self, before_ms: UnixMs, limit: usize) -> Result<usize, StoreError> {
        self.write(|c| {
            Ok(c.execute(
                "DELETE FROM alerts WHERE id IN (
                     SELECT id FROM alerts
                     WHERE state IN ('sent', 'expired', 'digested')
                       AND created_ms < ?1 AND COALESCE(done_ms, created_ms) < ?1
                       AND (ticket IS NULL
                            OR ticket NOT IN (SELECT id FROM tickets WHERE state <> 'closed'))
                     ORDER BY id LIMIT ?2)",
                params![before_ms, i64::try_from(limit).unwrap_or(i64::MAX)],
            )?)
        })
    }

    /// Notices recorded at or after `since_ms` (for the policy's restore),
    /// oldest first; fallback copies left out.
    pub fn recorded_since(&self, since_ms: UnixMs) -> Result<Vec<Recorded>, StoreError> {
        Ok(self
            .alert_rows(
                &format!(
                    "SELECT {COLUMNS} FROM alerts WHERE (created_ms >= ?1 OR state = 'held') AND via IS NULL ORDER BY id"
                ),
                [since_ms],
            )?
            .into_iter()
            .map(|a| Recorded {
                held: a.state == AlertState::Held,
                notice: a.notice,
            })
            .collect())
    }

    /// The log, newest first: at most `limit` rows, optionally of one
    /// ticket or since a time.
    pub fn alert_log(
        &self,
        ticket: Option<u64>,
        since_ms: Option<UnixMs>,
        limit: usize,
    ) -> Result<Vec<AlertRow>, StoreError> {
        self.alert_rows(
            &format!(
                "SELECT {COLUMNS} FROM alerts WHERE (?1 IS NULL OR ticket = ?1) AND (?2 IS NULL OR created_ms >= ?2)
                 ORDER BY id DESC LIMIT ?3"
            ),
            params![
                ticket.and_then(|t| i64::try_from(t).ok()),
                since_ms,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
        )
    }

    /// Per channel: sent, pending, failing, expired, and the latest error
    /// of a failing one (for the dashboard and `gateway alerts log`).
    pub fn alert_channels(&self) -> Result<Vec<ChannelTally>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT channel,
                    SUM(state = 'sent'), SUM(state = 'pending'),
                    SUM(state = 'pending' AND attempts > 0), SUM(state = 'expired'),
                    (SELECT last_error FROM alerts b WHERE b.channel = a.channel AND b.state = 'pending'
                       AND b.attempts > 0 ORDER BY b.id DESC LIMIT 1)
             FROM alerts a GROUP BY channel ORDER BY channel",
        )?;
        let rows = stmt.query_map([], |r| {
            let n = |i| r.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
            Ok(ChannelTally {
                channel: r.get(0)?,
                sent: n(1)?,
                pending: n(2)?,
                failing: n(3)?,
                expired: n(4)?,
                last_error: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
