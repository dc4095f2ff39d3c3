//! The in-memory recent history of every device, for rolling availability.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::figures::{DeviceFigures, Span, Totals, clip_sorted, device_figures, sum_spans};
use crate::state::{DeviceState, Interval, Transition, UnixMs};

/// The interval a device is in now: state, reason, since.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Open {
    state: DeviceState,
    reason: Option<String>,
    from_ms: UnixMs,
}

/// One device's history: closed intervals sorted, never overlapping, never
/// empty; the open one starts at or after the last closed one ends.
#[derive(Clone, Debug, Default)]
struct History {
    closed: VecDeque<Interval>,
    open: Option<Open>,
}

impl History {
    /// The newest instant this history knows of.
    fn newest_ms(&self) -> Option<UnixMs> {
        self.open
            .as_ref()
            .map(|o| o.from_ms)
            .or_else(|| self.closed.back().map(|i| i.to_ms))
    }

    /// Drops closed intervals that ended at or before `before_ms`.
    fn drop_before(&mut self, before_ms: UnixMs) {
        while self.closed.front().is_some_and(|i| i.to_ms <= before_ms) {
            self.closed.pop_front();
        }
    }

    /// Closed intervals overlapping `[from, …)` and the open one up to `to`,
    /// as spans sorted by start.
    fn spans(&self, from_ms: UnixMs, to_ms: UnixMs) -> impl Iterator<Item = Span> + '_ {
        let first = self.closed.partition_point(|i| i.to_ms <= from_ms);
        self.closed
            .range(first..)
            .map(|i| Span {
                state: i.state,
                from: i.from_ms,
                to: i.to_ms,
            })
            .chain(self.open.as_ref().map(|o| Span {
                state: o.state,
                from: o.from_ms,
                to: to_ms.max(o.from_ms),
            }))
    }
}

/// In-memory recent history for rolling availability (the store keeps
/// everything). See the module doc of [`crate::ledger`] for its invariants.
#[derive(Clone, Debug)]
pub struct Ledger {
    keep_ms: i64,
    devices: BTreeMap<String, History>,
}

impl Ledger {
    /// An empty ledger that keeps at least `keep` of closed history per
    /// device (give the longest rolling window).
    pub fn new(keep: Duration) -> Self {
        Ledger {
            keep_ms: i64::try_from(keep.as_millis()).unwrap_or(i64::MAX),
            devices: BTreeMap::new(),
        }
    }

    /// Replaces the history of `device` with stored intervals and its open
    /// interval `(state, reason, since)`. Intervals are sorted; overlaps
    /// (which a sound store never has) are trimmed, the earlier interval
    /// keeping the shared time; closed time at or after the open interval's
    /// start is dropped.
    pub fn load(
        &mut self,
        device: &str,
        mut intervals: Vec<Interval>,
        open: Option<(DeviceState, Option<String>, UnixMs)>,
    ) {
        intervals.sort_by_key(|i| i.from_ms);
        let open = open.map(|(state, reason, from_ms)| Open {
            state,
            reason,
            from_ms,
        });
        let limit = open.as_ref().map_or(UnixMs::MAX, |o| o.from_ms);
        let mut closed = VecDeque::with_capacity(intervals.len());
        let mut cursor = UnixMs::MIN;
        for mut i in intervals {
            i.from_ms = i.from_ms.max(cursor);
            i.to_ms = i.to_ms.min(limit);
            if i.to_ms > i.from_ms {
                cursor = i.to_ms;
                closed.push_back(i);
            }
        }
        let mut h = History { closed, open };
        if let Some(newest) = h.newest_ms() {
            h.drop_before(newest.saturating_sub(self.keep_ms));
        }
        self.devices.insert(device.to_owned(), h);
    }

    /// Applies a state change: closes the device's open interval at
    /// `t.at_ms` and returns it, then opens `t.to` there. Returns `None` when
    /// nothing was open (the device's first transition) or when the open
    /// interval would be empty (the transition happened the instant it
    /// began). A transition dated before the open interval's start is taken
    /// to happen at that start. Old history beyond `keep` is dropped.
    pub fn apply(&mut self, t: &Transition) -> Option<Interval> {
        let keep_ms = self.keep_ms;
        let h = self.devices.entry(t.device.clone()).or_default();
        let (at, closed) = match h.open.take() {
            Some(open) => {
                let at = t.at_ms.max(open.from_ms);
                let closed = (at > open.from_ms).then(|| Interval {
                    device: t.device.clone(),
                    state: open.state,
                    reason: open.reason,
                    from_ms: open.from_ms,
                    to_ms: at,
                });
                (at, closed)
            }
            None => {
                // The first interval of a device, or one after a load with no
                // open interval: never start before recorded history ends.
                let at = h.closed.back().map_or(t.at_ms, |i| t.at_ms.max(i.to_ms));
                (at, None)
            }
        };
        if let Some(c) = &closed {
            h.closed.push_back(c.clone());
        }
        h.open = Some(Open {
            state: t.to,
            reason: t.reason.clone(),
            from_ms: at,
        });
        h.drop_before(at.saturating_sub(keep_ms));
        closed
    }

    /// The device's open interval: `(state, reason, since)`.
    pub fn current(&self, device: &str) -> Option<(DeviceState, Option<String>, UnixMs)> {
        let o = self.devices.get(device)?.open.as_ref()?;
        Some((o.state, o.reason.clone(), o.from_ms))
    }

    /// Time in each state over `[from, to)`, the open interval counted up to
    /// `to_ms`; time before the kept history counts as unknown.
    pub fn totals(&self, device: &str, from_ms: UnixMs, to_ms: UnixMs) -> Totals {
        if to_ms <= from_ms {
            return Totals::default();
        }
        match self.devices.get(device) {
            Some(h) => sum_spans(
                &clip_sorted(h.spans(from_ms, to_ms), from_ms, to_ms),
                from_ms,
                to_ms,
            ),
            None => sum_spans(&[], from_ms, to_ms),
        }
    }

    /// The device's kept intervals overlapping `[from, to)`, unclipped, with
    /// the open one ending at `to_ms` (the input [`device_figures`] wants).
    pub fn intervals(&self, device: &str, from_ms: UnixMs, to_ms: UnixMs) -> Vec<Interval> {
        let Some(h) = self.devices.get(device) else {
            return Vec::new();
        };
        // One interval before the window too: it tells whether a Down
        // interval at the window's start runs in.
        let first = h
            .closed
            .partition_point(|i| i.to_ms <= from_ms)
            .saturating_sub(1);
        let mut out: Vec<Interval> = h
            .closed
            .range(first..)
            .take_while(|i| i.from_ms < to_ms)
            .cloned()
            .collect();
        if let Some(o) = &h.open
            && o.from_ms < to_ms
        {
            out.push(Interval {
                device: device.to_owned(),
                state: o.state,
                reason: o.reason.clone(),
                from_ms: o.from_ms,
                to_ms,
            });
        }
        out
    }

    /// The figures of one device over `[from, to)` from the kept history.
    pub fn figures(&self, device: &str, from_ms: UnixMs, to_ms: UnixMs) -> DeviceFigures {
        device_figures(&self.intervals(device, from_ms, to_ms), from_ms, to_ms)
    }

    /// Forgets closed intervals that ended at or before `before_ms`, for
    /// every device (open intervals stay).
    pub fn prune(&mut self, before_ms: UnixMs) {
        for h in self.devices.values_mut() {
            h.drop_before(before_ms);
        }
    }

    /// Forgets a device entirely (removed from the configuration).
    pub fn remove(&mut self, device: &str) -> bool {
        self.devices.remove(device).is_some()
    }

    /// The devices the ledger knows, in id order.
    pub fn devices(&self) -> impl Iterator<Item = &str> {
        self.devices.keys().map(String::as_str)
    }
}
