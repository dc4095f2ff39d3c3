//! The availability ledger: state intervals → availability and the other
//! figures over any window; month boundaries in the site's time zone.
//!
//! Pure: intervals, windows and "now" are passed in as Unix milliseconds
//! ([`UnixMs`](crate::state::UnixMs)); nothing here reads a clock or a file.
//! `docs/availability.md` gives the definitions with a worked example that a
//! test in `ledger/tests.rs` checks number for number.
//!
//! # Intervals
//!
//! Every state change of a device closes its open
//! [`Interval`](crate::state::Interval) and opens the next one: a device's
//! intervals never overlap and, from its first interval on, leave no hole
//! (a gateway outage is an `Unknown` interval, reason `gateway_down`).
//! Intervals are half-open, `[from_ms, to_ms)`.
//!
//! # Figures over a window `[from, to)` ([`totals`], [`device_figures`])
//!
//! - Each interval is **clipped** to the window; time of the window covered
//!   by no interval counts as `Unknown`. So `up + down + maintenance +
//!   unknown = to − from`, always. Should intervals overlap (they never do
//!   when they come from the store), the one that starts first wins the
//!   shared time, so nothing is counted twice.
//! - **Availability** = Up ÷ (Up + Down), a fraction 0–1; `None` when the
//!   window holds no Up or Down time. Maintenance and Unknown are excluded
//!   from both sides.
//! - **Coverage** = (Up + Down + Maintenance) ÷ window length: how much of
//!   the window the gateway actually knows about.
//! - **Incidents**: a *fault* is a run of Down intervals from the first
//!   Down after Up (or after nothing known at all) up to the next Up. Down
//!   after Down (another reason), and Down after a Maintenance or Unknown
//!   stretch (maintenance work, a gateway outage) that itself followed Down,
//!   continue the same fault: only an observed Up ends it, so a device that
//!   was Down when the gateway lost power and is Down again when it comes
//!   back had one fault, not two. A fault is an **incident of every window
//!   it has Down time in**, once per window: an outage across midnight of
//!   the 1st is an incident of both months. So a window with downtime never
//!   has zero incidents, and a window without downtime has none.
//! - **MTBF** = Up time ÷ incidents; **MTTR** = Down time ÷ incidents (both
//!   `None` without incidents, rounded to the nearest millisecond), both
//!   from the time inside the window: an outage across a month boundary
//!   gives each month the part of its repair time that month holds.
//!
//! # Months ([`month_window`], [`month_of`], [`month_to_date`])
//!
//! A month runs from local midnight of its 1st to local midnight of the next
//! month's 1st in the site's zone (default Asia/Shanghai, UTC+8, no DST). In
//! zones with daylight saving a month holds one hour more or less than its
//! days × 24 h. Where local midnight does not exist (a DST gap at midnight),
//! the day starts at the first local instant that does; where it exists twice,
//! at the earlier one. Because intervals are clipped, a device Down across
//! midnight of the 1st is split exactly there: the part before midnight is
//! the old month's downtime, the rest the new month's.
//!
//! # Intact rate ([`intact_rate`], 完好率)
//!
//! The traditional figure for a class: at each instant, the devices Up ÷ the
//! devices Up or Down; averaged over the window, weighted by time. Instants
//! when no device of the class is Up or Down (all in maintenance, or the
//! gateway was off) are left out of the average; `None` when every instant is.
//!
//! # The in-memory [`Ledger`]
//!
//! The store keeps every interval; the engine keeps a [`Ledger`] with the
//! recent history of each device (at least `keep`, the longest rolling
//! window) for rolling availability every tick. States: per device, a list of
//! closed intervals sorted by time and at most one open interval (state,
//! reason, since). Invariants: closed intervals never overlap, are never
//! empty, and the open interval starts at or after the last closed one ends;
//! [`Ledger::apply`] keeps the history contiguous (a transition closes the
//! open interval exactly where the next one opens). A transition dated before
//! the open interval's start is treated as happening at that start (time
//! never goes backwards per device); a transition at the very instant the
//! open interval began replaces it without recording an empty interval.
//!
//! # Thresholds ([`ThresholdWatch`])
//!
//! An edge detector per device: [`Crossing::Below`] once when availability
//! falls below the threshold, [`Crossing::Recovered`] once when it is back at
//! or above the threshold plus the hysteresis (none by default: the rolling
//! window already smooths, and a dip below that soon follows is a duplicate
//! the ticket book absorbs). `None` availability (no data, or coverage below
//! `availability.min_coverage`, see [`Totals::availability_if_covered`])
//! changes nothing. The side is not persisted: after a restart the engine
//! marks devices whose availability ticket is still open or resolved with
//! [`ThresholdWatch::set_below`], so that no false rework is reported.

mod figures;
mod history;
mod months;
mod watch;

#[cfg(test)]
mod tests;

pub use figures::{
    DeviceFigures, Totals, class_figures, device_figures, intact_rate, totals, unknown_stretches,
};
pub use history::Ledger;
pub use months::{
    LedgerError, month_days, month_of, month_to_date, month_window, parse_tz, retention_cutoff,
};
pub use watch::{Crossing, ThresholdWatch};
