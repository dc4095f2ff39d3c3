//! Totals, availability, incidents, MTBF/MTTR and the intact rate of a window.

use std::ops::{Add, AddAssign};

use serde::Serialize;

use crate::state::{DeviceState, Interval, UnixMs};

/// Time of one device (or a class, summed) in each state within a window, in
/// milliseconds. The four add up to the window's length.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Time Up.
    pub up_ms: i64,
    /// Time Down.
    pub down_ms: i64,
    /// Time in planned maintenance.
    pub maintenance_ms: i64,
    /// Time with no data (gateway off, device never reached, or no interval).
    pub unknown_ms: i64,
}

impl Totals {
    /// Up ÷ (Up + Down), a fraction 0–1; `None` when both are 0.
    pub fn availability(&self) -> Option<f64> {
        let known = self.up_ms.saturating_add(self.down_ms);
        (known > 0).then(|| self.up_ms as f64 / known as f64)
    }

    /// (Up + Down + Maintenance) ÷ total, a fraction 0–1; `None` for an
    /// empty window.
    pub fn coverage(&self) -> Option<f64> {
        let total = self.total_ms();
        let covered = self
            .up_ms
            .saturating_add(self.down_ms)
            .saturating_add(self.maintenance_ms);
        (total > 0).then(|| covered as f64 / total as f64)
    }

    /// The availability, but only when the coverage is at least
    /// `min_coverage` (`availability.min_coverage`): a rolling window with too
    /// little data must not open a ticket.
    pub fn availability_if_covered(&self, min_coverage: f64) -> Option<f64> {
        if self.coverage()? >= min_coverage {
            self.availability()
        } else {
            None
        }
    }

    /// The sum of the four: the window's length.
    pub fn total_ms(&self) -> i64 {
        self.up_ms
            .saturating_add(self.down_ms)
            .saturating_add(self.maintenance_ms)
            .saturating_add(self.unknown_ms)
    }

    fn add_state(&mut self, state: DeviceState, ms: i64) {
        let slot = match state {
            DeviceState::Up => &mut self.up_ms,
            DeviceState::Down => &mut self.down_ms,
            DeviceState::Maintenance => &mut self.maintenance_ms,
            DeviceState::Unknown => &mut self.unknown_ms,
        };
        *slot = slot.saturating_add(ms);
    }
}

impl AddAssign for Totals {
    fn add_assign(&mut self, o: Totals) {
        self.up_ms = self.up_ms.saturating_add(o.up_ms);
        self.down_ms = self.down_ms.saturating_add(o.down_ms);
        self.maintenance_ms = self.maintenance_ms.saturating_add(o.maintenance_ms);
        self.unknown_ms = self.unknown_ms.saturating_add(o.unknown_ms);
    }
}

impl Add for Totals {
    type Output = Totals;
    fn add(mut self, o: Totals) -> Totals {
        self += o;
        self
    }
}

/// A span of one state, already clipped; `from < to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Span {
    pub(super) state: DeviceState,
    pub(super) from: UnixMs,
    pub(super) to: UnixMs,
}

/// Clips spans sorted by start to `[from, to)`, giving shared time to the one
/// that starts first, and drops what is left empty.
pub(super) fn clip_sorted(
    spans: impl IntoIterator<Item = Span>,
    from_ms: UnixMs,
    to_ms: UnixMs,
) -> Vec<Span> {
    let mut out = Vec::new();
    let mut cursor = from_ms;
    for s in spans {
        let start = s.from.max(cursor);
        let end = s.to.min(to_ms);
        if end > start {
            out.push(Span {
                state: s.state,
                from: start,
                to: end,
            });
            cursor = end;
        }
    }
    out
}

/// The intervals as spans sorted by start (stable: equal starts keep input order).
fn sorted_spans(intervals: &[Interval]) -> Vec<Span> {
    let mut spans: Vec<Span> = intervals
        .iter()
        .map(|i| Span {
            state: i.state,
            from: i.from_ms,
            to: i.to_ms,
        })
        .collect();
    spans.sort_by_key(|s| s.from);
    spans
}

/// Sums clipped spans; the rest of the window is Unknown.
pub(super) fn sum_spans(spans: &[Span], from_ms: UnixMs, to_ms: UnixMs) -> Totals {
    let mut t = Totals::default();
    let mut covered = 0_i64;
    for s in spans {
        let len = s.to.saturating_sub(s.from);
        t.add_state(s.state, len);
        covered = covered.saturating_add(len);
    }
    let window = to_ms.saturating_sub(from_ms).max(0);
    t.unknown_ms = t.unknown_ms.saturating_add(window.saturating_sub(covered));
    t
}

/// Sums intervals of ONE device clipped to `[from, to)`; time in the window
/// not covered by any interval counts as unknown. An empty or inverted
/// window gives all zeros.
pub fn totals(intervals: &[Interval], from_ms: UnixMs, to_ms: UnixMs) -> Totals {
    if to_ms <= from_ms {
        return Totals::default();
    }
    let spans = clip_sorted(sorted_spans(intervals), from_ms, to_ms);
    sum_spans(&spans, from_ms, to_ms)
}

/// The stretches of `[from, to)` with no data for ONE device, by start:
/// `Unknown` intervals with their reason, and time covered by no interval
/// with reason `None`. Clipped as [`totals`] clips (the interval that starts
/// first keeps shared time), so the lengths add up to `totals(..).unknown_ms`.
/// Adjacent stretches with the same reason are merged.
pub fn unknown_stretches(
    intervals: &[Interval],
    from_ms: UnixMs,
    to_ms: UnixMs,
) -> Vec<(UnixMs, UnixMs, Option<String>)> {
    let mut out: Vec<(UnixMs, UnixMs, Option<String>)> = Vec::new();
    let mut push = |from: UnixMs, to: UnixMs, reason: Option<String>| {
        if let Some(last) = out.last_mut()
            && last.1 == from
            && last.2 == reason
        {
            last.1 = to;
        } else {
            out.push((from, to, reason));
        }
    };
    let mut sorted: Vec<&Interval> = intervals.iter().collect();
    sorted.sort_by_key(|i| i.from_ms);
    let mut cursor = from_ms;
    for i in sorted {
        let start = i.from_ms.max(cursor);
        let end = i.to_ms.min(to_ms);
        if end <= start {
            continue;
        }
        if start > cursor {
            push(cursor, start, None);
        }
        if i.state == DeviceState::Unknown {
            push(start, end, i.reason.clone());
        }
        cursor = end;
    }
    if cursor < to_ms {
        push(cursor, to_ms, None);
    }
    out
}

/// The figures of one device (or, from [`class_figures`], a class) over a
/// window, as the monthly report shows them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct DeviceFigures {
    /// Time in each state.
    pub totals: Totals,
    /// Up ÷ (Up + Down), 0–1.
    pub availability: Option<f64>,
    /// Time Down (the same as `totals.down_ms`), including a run-in from
    /// before the window.
    pub downtime_ms: i64,
    /// Faults with Down time in the window, each counted once (see the
    /// module doc of [`crate::ledger`], "Incidents").
    pub incidents: u32,
    /// Mean time between failures: Up time ÷ incidents.
    pub mtbf_ms: Option<i64>,
    /// Mean time to repair: Down time in the window ÷ incidents.
    pub mttr_ms: Option<i64>,
    /// Time in planned maintenance (the same as `totals.maintenance_ms`).
    pub maintenance_ms: i64,
    /// (Up + Down + Maintenance) ÷ window length, 0–1.
    pub coverage: Option<f64>,
}

impl DeviceFigures {
    fn from_parts(totals: Totals, incidents: u32) -> Self {
        let per_incident = |ms: i64| {
            (incidents > 0).then(|| {
                let n = i64::from(incidents);
                ms.saturating_add(n / 2) / n
            })
        };
        DeviceFigures {
            totals,
            availability: totals.availability(),
            downtime_ms: totals.down_ms,
            incidents,
            mtbf_ms: per_incident(totals.up_ms),
            mttr_ms: per_incident(totals.down_ms),
            maintenance_ms: totals.maintenance_ms,
            coverage: totals.coverage(),
        }
    }
}

/// Incidents of one device in `[from, to)`: see the module doc. A fault is
/// a run of Down intervals from the first Down after Up (or after nothing
/// known) to the next Up; Maintenance and Unknown inside the run do not end
/// it. A fault is an incident of every window it has Down time in. Give the
/// intervals overlapping the window (and, ideally, the last Up or Down one
/// before it) so that a Down interval after a gap at the window's start is
/// recognised as the old fault's.
fn incidents(intervals: &[Interval], from_ms: UnixMs, to_ms: UnixMs) -> u32 {
    let mut count = 0_u32;
    let mut in_fault = false;
    let mut counted = false;
    // Clipped to each other (no shared time), not to the window.
    for s in clip_sorted(sorted_spans(intervals), UnixMs::MIN, UnixMs::MAX) {
        match s.state {
            DeviceState::Down => {
                if !in_fault {
                    in_fault = true;
                    counted = false;
                }
                let down_in_window = s.from < to_ms && s.to > from_ms;
                if down_in_window && !counted {
                    count = count.saturating_add(1);
                    counted = true;
                }
            }
            DeviceState::Up => in_fault = false,
            DeviceState::Maintenance | DeviceState::Unknown => {}
        }
    }
    count
}

/// The figures of one device over `[from, to)`. Pass the device's intervals
/// overlapping the window, unclipped if possible, so that a Down interval
/// running in from before the window is recognised (see the module doc of
/// [`crate::ledger`], "Incidents").
pub fn device_figures(intervals: &[Interval], from_ms: UnixMs, to_ms: UnixMs) -> DeviceFigures {
    DeviceFigures::from_parts(
        totals(intervals, from_ms, to_ms),
        incidents(intervals, from_ms, to_ms),
    )
}

/// The pooled figures of a class: totals and incidents summed over its
/// devices, so availability is Σ Up ÷ Σ (Up + Down) and MTBF / MTTR are per
/// incident of any device. `totals.total_ms()` is the window times the
/// number of devices.
pub fn class_figures(devices: &[&[Interval]], from_ms: UnixMs, to_ms: UnixMs) -> DeviceFigures {
    let mut sum = Totals::default();
    let mut n = 0_u32;
    for d in devices {
        sum += totals(d, from_ms, to_ms);
        n = n.saturating_add(incidents(d, from_ms, to_ms));
    }
    DeviceFigures::from_parts(sum, n)
}

/// Traditional 完好率 of a class: time-average over the window of (devices
/// Up ÷ devices Up or Down); instants with no device Up or Down are
/// excluded. `None` when every instant is.
pub fn intact_rate(devices: &[&[Interval]], from_ms: UnixMs, to_ms: UnixMs) -> Option<f64> {
    if to_ms <= from_ms {
        return None;
    }
    // (time, change in devices Up, change in devices Down)
    let mut edges: Vec<(UnixMs, i64, i64)> = Vec::new();
    for d in devices {
        for s in clip_sorted(sorted_spans(d), from_ms, to_ms) {
            let (up, down) = match s.state {
                DeviceState::Up => (1, 0),
                DeviceState::Down => (0, 1),
                DeviceState::Maintenance | DeviceState::Unknown => continue,
            };
            edges.push((s.from, up, down));
            edges.push((s.to, -up, -down));
        }
    }
    edges.sort_by_key(|e| e.0);
    let (mut up, mut down) = (0_i64, 0_i64);
    let mut weighted = 0.0_f64;
    let mut weight = 0_i64;
    let mut prev = from_ms;
    for (t, du, dd) in edges {
        if t > prev && up + down > 0 {
            let dt = t - prev;
            weighted += dt as f64 * up as f64 / (up + down) as f64;
            weight = weight.saturating_add(dt);
        }
        prev = t;
        up += du;
        down += dd;
    }
    (weight > 0).then(|| (weighted / weight as f64).clamp(0.0, 1.0))
}
