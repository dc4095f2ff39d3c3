//! Ticket figures for a period `[from, to)`: what the monthly report states
//! about repairs (维修及时率, 返修率, response and repair times).
//!
//! A ticket's history is read as *cycles*: a cycle begins when the ticket
//! opens or is reopened (with the deadline set then) and holds its first
//! acknowledgement and its resolution. Each cycle counts in the period its
//! events fall in:
//!
//! - `opened`, `critical`, `ordinary`: tickets first opened in the period
//!   (reopenings are `reworks`, not new tickets).
//! - response time: cycle start → acknowledgement, for acknowledgements in
//!   the period. Repair time: cycle start → resolution, for resolutions in
//!   the period. A cycle resolved without acknowledgement has no response time.
//! - `resolved`: cycles resolved in the period; `on_time`: those resolved no
//!   later than their deadline; `timeliness = on_time ÷ resolved`.
//! - `reworks`: reopenings in the period; `rework_rate = reworks ÷ resolved`
//!   (the seed's 返修率 < 1 %: repairs that had to be redone, per repair done).
//! - `overnight`: ordinary cycles whose deadline (end of the working day)
//!   falls in the period and that were not resolved by then — "left
//!   overnight" — whether resolved later or still open.
//!
//! Medians are the middle value (the mean of the two middle values, rounded
//! down to the millisecond, for an even count); p90 is the nearest-rank
//! 90th percentile: the value at rank ⌈0.9 n⌉ of the sorted list. Figures
//! with nothing to measure are `None`.

use serde::Serialize;

use super::{Severity, Ticket, TicketEventKind};
use crate::state::UnixMs;

/// Repair figures of a period (see the module doc for each definition).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TicketFigures {
    /// Tickets first opened in the period.
    pub opened: u32,
    /// Of those, critical.
    pub critical: u32,
    /// Of those, ordinary.
    pub ordinary: u32,
    /// Median cycle start → acknowledgement, for acknowledgements in the period.
    pub response_median_ms: Option<i64>,
    /// 90th percentile (nearest rank) of the same.
    pub response_p90_ms: Option<i64>,
    /// Median cycle start → resolution, for resolutions in the period.
    pub repair_median_ms: Option<i64>,
    /// 90th percentile (nearest rank) of the same.
    pub repair_p90_ms: Option<i64>,
    /// Cycles resolved in the period.
    pub resolved: u32,
    /// Of those, resolved no later than their deadline.
    pub on_time: u32,
    /// `on_time ÷ resolved` (0–1).
    pub timeliness: Option<f64>,
    /// Reopenings (rework) in the period.
    pub reworks: u32,
    /// `reworks ÷ resolved`.
    pub rework_rate: Option<f64>,
    /// Ordinary cycles due in the period and not resolved by their deadline.
    pub overnight: u32,
}

/// One open-to-resolution stretch of a ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cycle {
    /// When the cycle began (the opening or a reopening).
    pub start_ms: UnixMs,
    /// Whether it began with a reopening (rework).
    pub reopened: bool,
    /// Its deadline, set when it began.
    pub deadline_ms: UnixMs,
    /// Its first acknowledgement.
    pub ack_ms: Option<UnixMs>,
    /// Its resolution.
    pub resolved_ms: Option<UnixMs>,
}

/// The cycles of a ticket, from its history, oldest first.
pub fn cycles(t: &Ticket) -> Vec<Cycle> {
    let mut out: Vec<Cycle> = Vec::new();
    for h in &t.history {
        match h.kind {
            TicketEventKind::Opened | TicketEventKind::Reopened => out.push(Cycle {
                start_ms: h.at_ms,
                reopened: h.kind == TicketEventKind::Reopened,
                deadline_ms: h.deadline_ms.unwrap_or(t.deadline_ms),
                ack_ms: None,
                resolved_ms: None,
            }),
            TicketEventKind::Acknowledged => {
                if let Some(c) = out.last_mut() {
                    c.ack_ms.get_or_insert(h.at_ms);
                }
            }
            TicketEventKind::Resolved => {
                if let Some(c) = out.last_mut() {
                    c.resolved_ms.get_or_insert(h.at_ms);
                }
            }
            TicketEventKind::Arrived | TicketEventKind::Recovered | TicketEventKind::Closed => {}
        }
    }
    out
}

/// The median: the middle value, or the mean of the two middle values
/// (rounded down) for an even count. Sorts `v`.
pub fn median(v: &mut [i64]) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        let (a, b) = (i128::from(v[n / 2 - 1]), i128::from(v[n / 2]));
        i64::try_from((a + b).div_euclid(2)).unwrap_or(i64::MAX)
    })
}

/// The nearest-rank percentile `p` (0 < p ≤ 100): the value at rank
/// ⌈p/100 · n⌉ of the sorted list. Sorts `v`.
pub fn percentile(v: &mut [i64], p: u32) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    let rank = (n * p.clamp(1, 100) as usize).div_ceil(100).max(1);
    v.get(rank - 1).copied()
}

fn ratio(num: u32, den: u32) -> Option<f64> {
    (den > 0).then(|| f64::from(num) / f64::from(den))
}

/// Repair figures of `tickets` over `[from_ms, to_ms)`.
pub fn ticket_figures(tickets: &[Ticket], from_ms: UnixMs, to_ms: UnixMs) -> TicketFigures {
    let within = |at: UnixMs| from_ms <= at && at < to_ms;
    let mut f = TicketFigures::default();
    let mut response = Vec::new();
    let mut repair = Vec::new();
    for t in tickets {
        if within(t.opened_ms) {
            f.opened += 1;
            match t.severity {
                Severity::Critical => f.critical += 1,
                Severity::Ordinary => f.ordinary += 1,
            }
        }
        for c in cycles(t) {
            if c.reopened && within(c.start_ms) {
                f.reworks += 1;
            }
            if let Some(ack) = c.ack_ms.filter(|at| within(*at)) {
                response.push(ack - c.start_ms);
            }
            if let Some(res) = c.resolved_ms.filter(|at| within(*at)) {
                repair.push(res - c.start_ms);
                f.resolved += 1;
                if res <= c.deadline_ms {
                    f.on_time += 1;
                }
            }
            if t.severity == Severity::Ordinary
                && within(c.deadline_ms)
                && c.resolved_ms.is_none_or(|res| res > c.deadline_ms)
            {
                f.overnight += 1;
            }
        }
    }
    f.response_median_ms = median(&mut response);
    f.response_p90_ms = percentile(&mut response, 90);
    f.repair_median_ms = median(&mut repair);
    f.repair_p90_ms = percentile(&mut repair, 90);
    f.timeliness = ratio(f.on_time, f.resolved);
    f.rework_rate = ratio(f.reworks, f.resolved);
    f
}
