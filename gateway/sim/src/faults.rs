//! Active faults and what they do to a device's answers.
//!
//! A fault has a start and an optional end (tokio [`Instant`]s, so tests with
//! a paused clock are exact). Transport faults decide how a request is
//! answered ([`Effect`]); value faults (`fault_bit`, `out_of_range`) are
//! resolved to a point and a value when injected ([`Force`]) and are laid
//! over the device's values at every tick, after the behaviour renders.
//!
//! When several transport faults are active on one device the strongest
//! wins: connection reset, then no response, then garbage / corrupt CRC,
//! then exception; a `slow` delay adds to whatever answer is sent.

use std::time::Duration;

use gateway_core::config::FaultSpec;
use gateway_core::model::Value;
use serde::Serialize;
use tokio::time::Instant;

/// Identifies an injected fault (for `DELETE /faults/{id}`).
pub type FaultId = u64;

/// How a fault mangles an answer's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mangle {
    /// Send the answer as it is.
    None,
    /// RTU: invert the CRC's last byte. TCP: as `Garbage`.
    CorruptCrc,
    /// Send random bytes instead.
    Garbage,
}

/// What the active transport faults do to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effect {
    /// Close the connection (TCP) / stay silent (serial).
    pub reset: bool,
    /// Stay silent.
    pub silent: bool,
    /// Bytes mangling.
    pub mangle: Mangle,
    /// Answer this exception instead.
    pub exception: Option<u8>,
    /// Extra delay before answering.
    pub delay: Duration,
}

impl Effect {
    /// No fault: answer normally.
    pub const NONE: Effect = Effect {
        reset: false,
        silent: false,
        mangle: Mangle::None,
        exception: None,
        delay: Duration::ZERO,
    };
}

/// A value laid over a point while a fault lasts.
#[derive(Clone, Debug, PartialEq)]
pub struct Force {
    /// Index of the point in the device's points.
    pub point: usize,
    /// The value shown.
    pub value: Value,
}

/// A fault as listed by the control interface.
#[derive(Clone, Debug, Serialize)]
pub struct FaultInfo {
    /// Id to clear it with.
    pub id: FaultId,
    /// Device id.
    pub device: String,
    /// What goes wrong.
    #[serde(flatten)]
    pub spec: FaultSpec,
    /// Whether it acts now.
    pub active: bool,
    /// Milliseconds until it starts (0 when active).
    pub starts_in_ms: u64,
    /// Milliseconds until it ends; `None` = until cleared.
    pub ends_in_ms: Option<u64>,
}

#[derive(Debug)]
struct Entry {
    id: FaultId,
    device: usize,
    device_id: String,
    spec: FaultSpec,
    force: Option<Force>,
    from: Instant,
    until: Option<Instant>,
}

impl Entry {
    fn active(&self, now: Instant) -> bool {
        self.from <= now && self.until.is_none_or(|u| now < u)
    }
}

/// Every injected fault.
#[derive(Debug, Default)]
pub struct Faults {
    next: FaultId,
    entries: Vec<Entry>,
}

impl Faults {
    /// Adds a fault on device index `device`; `force` is the resolved value
    /// fault, if it is one.
    pub fn add(
        &mut self,
        device: usize,
        device_id: &str,
        spec: FaultSpec,
        force: Option<Force>,
        from: Instant,
        until: Option<Instant>,
    ) -> FaultId {
        self.next += 1;
        self.entries.push(Entry {
            id: self.next,
            device,
            device_id: device_id.to_owned(),
            spec,
            force,
            from,
            until,
        });
        self.next
    }

    /// Removes a fault; returns its device index, `None` when no fault has that id.
    pub fn remove(&mut self, id: FaultId) -> Option<usize> {
        let at = self.entries.iter().position(|e| e.id == id)?;
        Some(self.entries.remove(at).device)
    }

    /// Removes every fault.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Drops faults that have ended.
    pub fn prune(&mut self, now: Instant) {
        self.entries.retain(|e| e.until.is_none_or(|u| now < u));
    }

    /// The combined effect of the transport faults active on `device`.
    pub fn effect(&self, device: usize, now: Instant) -> Effect {
        let mut effect = Effect::NONE;
        for e in self
            .entries
            .iter()
            .filter(|e| e.device == device && e.active(now))
        {
            match &e.spec {
                FaultSpec::ConnectionReset => effect.reset = true,
                FaultSpec::NoResponse => effect.silent = true,
                FaultSpec::Garbage => effect.mangle = Mangle::Garbage,
                FaultSpec::CorruptCrc => {
                    if effect.mangle == Mangle::None {
                        effect.mangle = Mangle::CorruptCrc;
                    }
                }
                FaultSpec::Exception { code } => effect.exception = Some(*code),
                FaultSpec::Slow { delay } => effect.delay += *delay,
                FaultSpec::FaultBit { .. } | FaultSpec::OutOfRange { .. } => {}
            }
        }
        effect
    }

    /// The value forces active on `device`, oldest first.
    pub fn forces(&self, device: usize, now: Instant) -> impl Iterator<Item = &Force> {
        self.entries
            .iter()
            .filter(move |e| e.device == device && e.active(now))
            .filter_map(|e| e.force.as_ref())
    }

    /// Every fault, for the control interface.
    pub fn list(&self, now: Instant) -> Vec<FaultInfo> {
        self.entries
            .iter()
            .map(|e| FaultInfo {
                id: e.id,
                device: e.device_id.clone(),
                spec: e.spec.clone(),
                active: e.active(now),
                starts_in_ms: millis(e.from.saturating_duration_since(now)),
                ends_in_ms: e.until.map(|u| millis(u.saturating_duration_since(now))),
            })
            .collect()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_strongest_fault_wins_and_delays_add_up() {
        let mut f = Faults::default();
        let now = Instant::now();
        f.add(0, "d", FaultSpec::Exception { code: 4 }, None, now, None);
        f.add(
            0,
            "d",
            FaultSpec::Slow {
                delay: Duration::from_millis(300),
            },
            None,
            now,
            None,
        );
        let e = f.effect(0, now);
        assert_eq!(
            (e.exception, e.delay, e.silent),
            (Some(4), Duration::from_millis(300), false)
        );
        f.add(0, "d", FaultSpec::NoResponse, None, now, None);
        assert!(f.effect(0, now).silent);
        assert_eq!(
            f.effect(1, now),
            Effect::NONE,
            "other devices are untouched"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn faults_act_only_inside_their_window_and_are_pruned_after_it() {
        let mut f = Faults::default();
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let id = f.add(
            0,
            "d",
            FaultSpec::NoResponse,
            None,
            t0 + s,
            Some(t0 + 3 * s),
        );
        assert!(!f.effect(0, t0).silent);
        assert!(f.effect(0, t0 + 2 * s).silent);
        assert_eq!(f.list(t0)[0].starts_in_ms, 1000);
        f.prune(t0 + 3 * s);
        assert!(f.list(t0).is_empty());
        assert_eq!(f.remove(id), None);
    }
}
