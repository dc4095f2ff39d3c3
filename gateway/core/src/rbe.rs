//! Report by exception: which samples of a poll are worth publishing.
//!
//! The gateway polls every device every second or faster, but most values
//! barely move. [`Rbe`] remembers, per device and per point, the value,
//! quality and time **last published**, and lets a new sample through only
//! when one of these holds (checked in this order):
//!
//! 1. **first value**: nothing was published for the point yet (since the
//!    filter was built or [`Rbe::reset`]);
//! 2. **quality change**: good ↔ bad, or a different bad reason;
//! 3. **heartbeat**: at least the point's heartbeat has passed since it was
//!    last published (its own `heartbeat`, else the gateway-wide default
//!    given to [`Rbe::new`]); a clock that stepped back (now before the last
//!    publication) also counts, so a wall-clock step costs one extra
//!    publication instead of silencing the point;
//! 4. **change**:
//!    - booleans and text, on any change;
//!    - alarm points (`alarm = true`), on any change whatever their deadband;
//!    - other numbers, when they moved **strictly beyond** the deadband from
//!      the last published value: `|new − last| > band`, where the band is
//!      the absolute deadband, or `|last| × percent / 100`. No deadband
//!      means any change. A value appearing or disappearing (decoded vs. not
//!      decoded) is a change.
//!
//! Equality is exact before any deadband arithmetic, so two different
//! 64-bit integers that round to the same `f64` still count as a change
//! when the band is zero, and a NaN kept with bad quality equals the NaN
//! before it (the point is then reported by its quality and heartbeat).
//!
//! Comparisons are always against the last **published** value, never the
//! last polled one: a slow drift that stays inside the band from poll to
//! poll is still reported once it has moved a band's width in total.
//!
//! Alarm-class polls carry only alarm points; samples are matched to the
//! memory by their point index, so full and alarm polls share it.
//!
//! The filter is sans-IO and allocation-light: one `Vec` of slots per
//! device, indexed by point, built once; [`Rbe::select_into`] fills a
//! caller's buffer so that a steady state allocates nothing (a text value is
//! copied into its slot only when it is published). A sample whose device or
//! point index is unknown to the filter (a configuration mismatch, never
//! expected) is published and not remembered: report by exception never
//! drops data because of bookkeeping.

use std::time::Duration;

use crate::config::ResolvedDevice;
use crate::model::{Deadband, PollOutcome, Quality, Sample, Value};

/// The report-by-exception filter for every device of a configuration.
#[derive(Clone, Debug)]
pub struct Rbe {
    /// Per device (index as in the resolved configuration), per point.
    devices: Vec<Vec<Slot>>,
}

/// One point's rule and memory.
#[derive(Clone, Debug)]
struct Slot {
    /// `None` = any change (also for alarm points).
    deadband: Option<Deadband>,
    /// Heartbeat in milliseconds.
    heartbeat_ms: i64,
    /// What was last published, if anything.
    last: Option<Published>,
}

/// What was last published for a point.
#[derive(Clone, Debug)]
struct Published {
    value: Option<Value>,
    quality: Quality,
    ts_ms: i64,
}

impl Rbe {
    /// Builds the filter for `devices` (the resolved configuration's
    /// enabled devices, in order; [`PollOutcome::device`] indexes them).
    /// `default_heartbeat`: for points without their own.
    pub fn new(devices: &[ResolvedDevice], default_heartbeat: Duration) -> Rbe {
        let default_ms = millis(default_heartbeat);
        Rbe {
            devices: devices
                .iter()
                .map(|d| {
                    d.points
                        .iter()
                        .map(|p| Slot {
                            deadband: if p.alarm { None } else { p.deadband },
                            heartbeat_ms: p.heartbeat.map_or(default_ms, millis),
                            last: None,
                        })
                        .collect()
                })
                .collect(),
        }
    }

    /// Indices into `outcome.samples` to publish now (time = `outcome.ts_ms`);
    /// updates the memory. Allocates the returned `Vec`; see
    /// [`Rbe::select_into`] to reuse a buffer.
    pub fn select(&mut self, outcome: &PollOutcome) -> Vec<usize> {
        let mut out = Vec::new();
        self.select_into(outcome, &mut out);
        out
    }

    /// As [`Rbe::select`], into `out` (cleared first), in sample order.
    pub fn select_into(&mut self, outcome: &PollOutcome, out: &mut Vec<usize>) {
        out.clear();
        let now = outcome.ts_ms;
        let Some(slots) = self.devices.get_mut(outcome.device) else {
            out.extend(0..outcome.samples.len());
            return;
        };
        for (i, sample) in outcome.samples.iter().enumerate() {
            match slots.get_mut(sample.point) {
                None => out.push(i),
                Some(slot) => {
                    if slot.offer(sample, now) {
                        out.push(i);
                    }
                }
            }
        }
    }

    /// Forgets every published value: the next sample of each point is
    /// published again (e.g. after a reconnect to the broker).
    pub fn reset(&mut self) {
        for slot in self.devices.iter_mut().flatten() {
            slot.last = None;
        }
    }
}

impl Slot {
    /// Decides on one sample at `now`; remembers it when it is published.
    fn offer(&mut self, sample: &Sample, now: i64) -> bool {
        let publish = match &self.last {
            None => true,
            Some(last) => {
                last.quality != sample.quality
                    || now < last.ts_ms
                    || now.saturating_sub(last.ts_ms) >= self.heartbeat_ms
                    || moved(last.value.as_ref(), sample.value.as_ref(), self.deadband)
            }
        };
        if publish {
            match &mut self.last {
                Some(last) => {
                    copy_value(&mut last.value, sample.value.as_ref());
                    last.quality = sample.quality;
                    last.ts_ms = now;
                }
                None => {
                    self.last = Some(Published {
                        value: sample.value.clone(),
                        quality: sample.quality,
                        ts_ms: now,
                    });
                }
            }
        }
        publish
    }
}

/// True when `new` differs from `last` by more than the deadband allows.
fn moved(last: Option<&Value>, new: Option<&Value>, deadband: Option<Deadband>) -> bool {
    let (last, new) = match (last, new) {
        (None, None) => return false,
        (Some(l), Some(n)) => (l, n),
        _ => return true,
    };
    match (last, new) {
        (Value::Bool(a), Value::Bool(b)) => a != b,
        (Value::Text(a), Value::Text(b)) => a != b,
        (Value::Int(a), Value::Int(b)) if a == b => false,
        (Value::UInt(a), Value::UInt(b)) if a == b => false,
        (Value::Float(a), Value::Float(b)) if a == b || (a.is_nan() && b.is_nan()) => false,
        (Value::Bool(_) | Value::Text(_), _) | (_, Value::Bool(_) | Value::Text(_)) => true,
        _ => {
            let Some(band) = deadband else { return true };
            match (last.as_f64(), new.as_f64()) {
                // A non-finite value on either side (they differ) is a change.
                (Some(l), Some(n)) if l.is_finite() && n.is_finite() => {
                    (n - l).abs() > band.threshold(l)
                }
                _ => true,
            }
        }
    }
}

/// `*dst = src.cloned()`, reusing a text buffer when both are text.
fn copy_value(dst: &mut Option<Value>, src: Option<&Value>) {
    match (dst.as_mut(), src) {
        (Some(Value::Text(d)), Some(Value::Text(s))) => d.clone_from(s),
        (_, src) => *dst = src.cloned(),
    }
}

/// A duration in whole milliseconds, saturating.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
