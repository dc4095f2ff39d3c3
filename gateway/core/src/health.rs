//! Device health: poll outcomes and fault rules → Up / Down / Maintenance /
//! Unknown, with debounce; hard alarms from critical points (issue #3).
//!
//! [`Health`] is a sans-IO state machine: the caller feeds it poll outcomes
//! ([`Health::observe`]), maintenance decisions ([`Health::set_maintenance`])
//! and clock ticks ([`Health::tick`]), always with the time passed in as Unix
//! milliseconds, and gets back the [`HealthEvent`]s to record and announce.
//! Nothing here reads a clock.
//!
//! # States
//!
//! Each device has two layers:
//!
//! - the **polled state**, what the polls show: `Unknown` (nothing known
//!   since start, reason `startup`), `Up`, or `Down` with a reason `comms`
//!   or `rule:<name>`;
//! - the **shown state**, the one transitions are emitted for: `Maintenance`
//!   (reason `maintenance:<window id>`) while a planned window is set,
//!   otherwise the polled state.
//!
//! The polled state keeps following the polls during maintenance, so that
//! leaving a window goes straight to what the polls show (`Unknown` when
//! nothing has been learnt since start; the next poll then decides).
//!
//! # What a poll shows
//!
//! - An outcome with `requests == 0` and a failure (the link is down and
//!   being re-made; nothing could be asked) is a **failed** poll: the
//!   devices behind a dead link are unreachable, whoever is to blame. With
//!   `requests == 0` and no failure (nothing to ask) it is ignored.
//! - A poll is **failed** when every request failed with a timeout,
//!   transport or framing error, or when its failure is a Modbus exception
//!   and `exception_is_fault` is set. Otherwise the device answered: it is
//!   **reachable** (an exception answer proves that, by default).
//! - Good samples update the device's **last good values**, whatever the
//!   poll. Bad samples and points not in the poll (alarm-class polls carry
//!   only alarm points) keep their last good value.
//! - On a reachable poll the fault rules (`ResolvedDevice::health`, in name
//!   order) are evaluated on the last good values with three-valued logic: a
//!   comparison on a point never read is unknown; `a or b` is true as soon as
//!   one side is true, `a and b` false as soon as one side is false. Unknown
//!   counts as not true. Each rule remembers since when it has been true on
//!   every reachable poll; a reachable poll where it is not true forgets it,
//!   a failed poll does not (it is still true on the last good values).
//!
//! # Transitions and debounce
//!
//! - **Holds**: each rule has a hold (its `for`, else `[health]
//!   down_hold`): a rule *counts* once it has been true for its hold. A rule
//!   true for less than its hold is a rule **within its hold**.
//! - **From Unknown** the first reachable poll with no rule true → `Up` at
//!   that poll's time; a rule that counts → `Down(rule:…)` dated when it
//!   became true; a rule within its hold leaves the device Unknown until the
//!   hold elapses (Down) or no rule is true any more (Up, at that poll).
//!   Comms Down still needs `comms_failures` consecutive failed polls.
//! - **Comms Down**: `comms_failures` consecutive failed polls → `Down`
//!   (`comms`) at the time of the first of them. The count itself is the
//!   debounce; a reachable poll resets it.
//! - **Rule Down**: from `Up`, a rule that counts → `Down(rule:<name>)`,
//!   dated when the rule became true (back-dated over its hold: the device
//!   was out of service from then; the hold only filters out conditions
//!   that end by themselves). A rule that stops being true within its hold
//!   changes nothing; when it becomes true again its hold starts again.
//!   When several rules count, the one true for the longest gives the
//!   reason (then the first by name).
//! - **Up**: from `Down`, reachable polls with no rule true (within its
//!   hold or not) for `up_hold`; the Up interval starts at the first of
//!   them. A failed poll or a true rule cancels the wait. A condition that
//!   toggles faster than the holds therefore causes no transition at all
//!   (flapping is debounced).
//! - A Down device stays Down with the reason it went Down for (the ledger
//!   interval keeps one reason); a new cause while Down emits nothing.
//! - A hold is checked on every poll and on every [`Health::tick`]; when it
//!   has expired the transition is emitted with `at_ms` = when the condition
//!   began, not when the hold expired (clamped to the previous transition,
//!   see the invariants: a hold that elapses inside a maintenance window
//!   makes the device Down when the window ends).
//! - **Maintenance**: [`Health::set_maintenance`] with a window id →
//!   `Maintenance` at `now_ms`; with `None` → the polled state at `now_ms`.
//!   Switching from one window straight to another emits nothing (the state
//!   is Maintenance either way).
//!
//! # Invariants
//!
//! - A transition never goes to the state the device is already shown in:
//!   per device, `from` of each transition is `to` of the previous one
//!   (`Unknown` first), and `from != to`.
//! - `at_ms` never goes backwards per device: a transition whose condition
//!   began before the previous transition (or before [`Health::new`]) is
//!   emitted at the previous transition's time instead.
//!
//! # Hard alarms
//!
//! A good sample of a point marked `critical` whose value is non-zero
//! (true) makes that alarm active, zero (false) inactive. Each change emits
//! one [`HardAlarm`] with the point's name at the poll's time, at once (no
//! debounce), whatever the device's state; alarms start inactive, so an
//! alarm already active at start is announced on the first poll that reads
//! it, unless the caller seeded it with [`Health::restore_alarm`] (from the
//! store, after a restart). Bad samples leave the alarm as it was. Alarms and availability are
//! separate: an alarm does not make a device Down unless one of its rules
//! says so (maintenance suppression is the ticket layer's business).
//! Within one call, alarm events come before the transition.

use std::collections::BTreeMap;

use crate::config::{CompareOp, Condition, ConditionError, HealthConfig, ResolvedDevice};
use crate::model::PollOutcome;
use crate::model::{FailureKind, Quality};
use crate::state::{DeviceState, HardAlarm, Transition, UnixMs};
use std::time::Duration;

#[cfg(test)]
mod tests;

/// The reason of the initial Unknown state.
pub const REASON_STARTUP: &str = "startup";
/// The reason of a Down state caused by failed polls.
pub const REASON_COMMS: &str = "comms";

/// Why a [`Health`] machine cannot be built from the devices given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HealthError {
    /// A fault rule does not parse.
    #[error("device {device:?} health rule {rule:?}: {error}")]
    Rule {
        /// Device id.
        device: String,
        /// Rule name.
        rule: String,
        /// The parse error.
        error: ConditionError,
    },
    /// A fault rule names a point the device does not poll (unknown, or
    /// disabled on this device).
    #[error(
        "device {device:?} health rule {rule:?} reads point {point:?}, which this device does not poll; \
         enable the point or disable the rule with `health = {{ {rule} = \"\" }}`"
    )]
    UnknownPoint {
        /// Device id.
        device: String,
        /// Rule name.
        rule: String,
        /// The point named.
        point: String,
    },
}

/// What the health machine reports.
#[derive(Clone, Debug, PartialEq)]
pub enum HealthEvent {
    /// A device's shown state changed.
    Transition(Transition),
    /// A critical point's alarm became active or cleared.
    Alarm(HardAlarm),
}

/// A device's shown state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceStatus {
    /// Current state.
    pub state: DeviceState,
    /// When it began (the last transition's `at_ms`, or the machine's start).
    pub since_ms: UnixMs,
    /// Why it holds (`comms`, `rule:<name>`, `maintenance:<id>`, `startup`).
    pub reason: Option<String>,
}

/// The health of every device of a configuration; see the module doc.
#[derive(Clone, Debug)]
pub struct Health {
    devices: Vec<Device>,
    comms_failures: u32,
    up_hold_ms: i64,
    exception_is_fault: bool,
    started_ms: UnixMs,
}

/// A fault rule compiled against a device's point indices.
#[derive(Clone, Debug)]
enum Expr {
    Compare {
        point: usize,
        op: CompareOp,
        value: f64,
    },
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Expr {
    fn compile(cond: &Condition, index: &BTreeMap<&str, usize>) -> Result<Expr, String> {
        Ok(match cond {
            Condition::Compare { point, op, value } => Expr::Compare {
                point: *index.get(point.as_str()).ok_or_else(|| point.clone())?,
                op: *op,
                value: value.as_f64(),
            },
            Condition::And(cs) => Expr::And(
                cs.iter()
                    .map(|c| Expr::compile(c, index))
                    .collect::<Result<_, _>>()?,
            ),
            Condition::Or(cs) => Expr::Or(
                cs.iter()
                    .map(|c| Expr::compile(c, index))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    /// Three-valued (Kleene) evaluation: `None` = unknown.
    fn eval(&self, values: &[Option<f64>]) -> Option<bool> {
        match self {
            Expr::Compare { point, op, value } => {
                let v = values.get(*point).copied().flatten()?;
                Some(match op {
                    CompareOp::Eq => v == *value,
                    CompareOp::Ne => v != *value,
                    CompareOp::Lt => v < *value,
                    CompareOp::Le => v <= *value,
                    CompareOp::Gt => v > *value,
                    CompareOp::Ge => v >= *value,
                })
            }
            Expr::And(parts) => {
                let mut result = Some(true);
                for p in parts {
                    match p.eval(values) {
                        Some(false) => return Some(false),
                        None => result = None,
                        Some(true) => {}
                    }
                }
                result
            }
            Expr::Or(parts) => {
                let mut result = Some(false);
                for p in parts {
                    match p.eval(values) {
                        Some(true) => return Some(true),
                        None => result = None,
                        Some(false) => {}
                    }
                }
                result
            }
        }
    }
}

/// A fault rule of one device, compiled, with its hold.
#[derive(Clone, Debug)]
struct CompiledRule {
    name: String,
    expr: Expr,
    /// How long it must stay true before it counts (ms).
    hold_ms: i64,
    /// Since when it has been true on every reachable poll, if it is true now.
    since: Option<UnixMs>,
}

#[derive(Clone, Debug)]
struct Device {
    id: String,
    /// Point names, by point index.
    names: Vec<String>,
    /// Critical flags, by point index.
    critical: Vec<bool>,
    /// Fault rules in name order.
    rules: Vec<CompiledRule>,
    /// Last good value of each point (numbers; booleans as 1/0).
    values: Vec<Option<f64>>,
    /// Alarm state of each point (only critical points ever become true).
    alarm_active: Vec<bool>,
    /// Consecutive failed polls, and the time of the first of them.
    failures: u32,
    first_failure_ms: UnixMs,
    /// The polled state (never Maintenance) and its reason.
    polled: DeviceState,
    polled_reason: Option<String>,
    /// A recovery waiting for `up_hold`: since when no rule has been true.
    up_since: Option<UnixMs>,
    /// The planned maintenance window in force, if any.
    window: Option<String>,
    /// The shown state: what the last transition announced.
    shown: DeviceState,
    shown_reason: Option<String>,
    shown_since: UnixMs,
}

impl Device {
    fn new(
        d: &ResolvedDevice,
        default_hold_ms: i64,
        now_ms: UnixMs,
    ) -> Result<Device, HealthError> {
        let index: BTreeMap<&str, usize> = d
            .points
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.as_str(), i))
            .collect();
        let mut rules = Vec::with_capacity(d.health.len());
        for (name, rule) in &d.health {
            let cond = Condition::parse(&rule.when).map_err(|error| HealthError::Rule {
                device: d.id.clone(),
                rule: name.clone(),
                error,
            })?;
            let expr = Expr::compile(&cond, &index).map_err(|point| HealthError::UnknownPoint {
                device: d.id.clone(),
                rule: name.clone(),
                point,
            })?;
            rules.push(CompiledRule {
                name: name.clone(),
                expr,
                hold_ms: rule.hold.map_or(default_hold_ms, duration_ms),
                since: None,
            });
        }
        Ok(Device {
            id: d.id.clone(),
            names: d.points.iter().map(|p| p.name.clone()).collect(),
            critical: d.points.iter().map(|p| p.critical).collect(),
            rules,
            values: vec![None; d.points.len()],
            alarm_active: vec![false; d.points.len()],
            failures: 0,
            first_failure_ms: now_ms,
            polled: DeviceState::Unknown,
            polled_reason: Some(REASON_STARTUP.to_owned()),
            up_since: None,
            window: None,
            shown: DeviceState::Unknown,
            shown_reason: Some(REASON_STARTUP.to_owned()),
            shown_since: now_ms,
        })
    }

    /// The state that should be shown now, with its reason.
    fn target(&self) -> (DeviceState, Option<String>) {
        match &self.window {
            Some(id) => (DeviceState::Maintenance, Some(format!("maintenance:{id}"))),
            None => (self.polled, self.polled_reason.clone()),
        }
    }

    /// Emits a transition to the target state if it differs from the shown
    /// one; `at_ms` is clamped so that it never goes backwards.
    fn announce(&mut self, at_ms: UnixMs, out: &mut Vec<HealthEvent>) {
        let (to, reason) = self.target();
        if to == self.shown {
            return;
        }
        let at_ms = at_ms.max(self.shown_since);
        out.push(HealthEvent::Transition(Transition {
            device: self.id.clone(),
            from: self.shown,
            to,
            reason: reason.clone(),
            at_ms,
        }));
        self.shown = to;
        self.shown_reason = reason;
        self.shown_since = at_ms;
    }

    /// Changes the polled state (clearing any pending hold) and announces it.
    fn set_polled(
        &mut self,
        state: DeviceState,
        reason: Option<String>,
        at_ms: UnixMs,
        out: &mut Vec<HealthEvent>,
    ) {
        self.up_since = None;
        if self.polled == state {
            return;
        }
        self.polled = state;
        self.polled_reason = reason;
        self.announce(at_ms, out);
    }

    /// Records good samples and emits alarm edges of critical points.
    fn take_samples(&mut self, outcome: &PollOutcome, out: &mut Vec<HealthEvent>) {
        for s in &outcome.samples {
            if s.quality != Quality::Good {
                continue;
            }
            let Some(v) = s.value.as_ref().and_then(|v| v.as_f64()) else {
                continue;
            };
            let Some(slot) = self.values.get_mut(s.point) else {
                continue;
            };
            *slot = Some(v);
            if self.critical.get(s.point).copied().unwrap_or(false) {
                let active = v != 0.0;
                if let Some(was) = self.alarm_active.get_mut(s.point)
                    && *was != active
                {
                    *was = active;
                    out.push(HealthEvent::Alarm(HardAlarm {
                        device: self.id.clone(),
                        point: self.names.get(s.point).cloned().unwrap_or_default(),
                        active,
                        at_ms: outcome.ts_ms,
                    }));
                }
            }
        }
    }

    /// Re-evaluates every rule on the last good values at `t` (a
    /// reachable poll): a rule true now keeps the time it became true, a
    /// rule not true forgets it. Returns whether any rule is true.
    fn evaluate(&mut self, t: UnixMs) -> bool {
        let mut any = false;
        for r in &mut self.rules {
            if r.expr.eval(&self.values) == Some(true) {
                r.since.get_or_insert(t);
                any = true;
            } else {
                r.since = None;
            }
        }
        any
    }

    /// The rule whose hold has elapsed at `now`, if any: the one true for
    /// the longest (then the first by name), with the time it became true.
    fn confirmed(&self, now: UnixMs) -> Option<(&str, UnixMs)> {
        let mut best: Option<(&str, UnixMs)> = None;
        for r in &self.rules {
            if let Some(since) = r.since
                && now.saturating_sub(since) >= r.hold_ms
                && best.is_none_or(|(_, b)| since < b)
            {
                best = Some((r.name.as_str(), since));
            }
        }
        best
    }

    /// Goes Down when a rule's hold has elapsed at `now` (from Up or
    /// Unknown), dated when that rule became true.
    fn confirm_down(&mut self, now: UnixMs, out: &mut Vec<HealthEvent>) -> bool {
        if self.polled == DeviceState::Down {
            return false;
        }
        let Some((name, since)) = self.confirmed(now) else {
            return false;
        };
        let reason = Some(format!("rule:{name}"));
        self.set_polled(DeviceState::Down, reason, since, out);
        true
    }
}

impl Health {
    /// All devices Unknown since `now_ms` (reason "startup"). Rules come
    /// from `ResolvedDevice::health` (already validated); a rule that does
    /// not parse or reads a point the device does not poll is an error.
    pub fn new(
        devices: &[ResolvedDevice],
        cfg: &HealthConfig,
        now_ms: UnixMs,
    ) -> Result<Self, HealthError> {
        Ok(Health {
            devices: devices
                .iter()
                .map(|d| Device::new(d, cfg.down_hold_ms(), now_ms))
                .collect::<Result<_, _>>()?,
            comms_failures: cfg.comms_failures.max(1),
            up_hold_ms: cfg.up_hold_ms(),
            exception_is_fault: cfg.exception_is_fault,
            started_ms: now_ms,
        })
    }

    /// Feeds one poll outcome (time = `outcome.ts_ms`; device =
    /// `outcome.device` index; an unknown index is ignored). Alarm-class
    /// polls carry only alarm points.
    pub fn observe(&mut self, outcome: &PollOutcome) -> Vec<HealthEvent> {
        let mut out = Vec::new();
        if outcome.requests == 0 && outcome.failure.is_none() {
            return out;
        }
        let failed = self.is_failed(outcome);
        let (comms_failures, up_hold) = (self.comms_failures, self.up_hold_ms);
        let Some(dev) = self.devices.get_mut(outcome.device) else {
            return out;
        };
        let t = outcome.ts_ms;
        dev.take_samples(outcome, &mut out);
        if failed {
            if dev.failures == 0 {
                dev.first_failure_ms = t;
            }
            dev.failures = dev.failures.saturating_add(1);
            dev.up_since = None;
            if dev.failures >= comms_failures && dev.polled != DeviceState::Down {
                let at = dev.first_failure_ms;
                dev.set_polled(
                    DeviceState::Down,
                    Some(REASON_COMMS.to_owned()),
                    at,
                    &mut out,
                );
            } else {
                // The rules are still true on the last good values: a hold
                // may expire on a failed poll too.
                dev.confirm_down(t, &mut out);
            }
            return out;
        }
        dev.failures = 0;
        let any_true = dev.evaluate(t);
        match dev.polled {
            DeviceState::Down => {
                if any_true {
                    // A rule true (even within its hold) keeps the device
                    // Down: it is back in service when no rule is true.
                    dev.up_since = None;
                } else {
                    let since = *dev.up_since.get_or_insert(t);
                    if t.saturating_sub(since) >= up_hold {
                        dev.set_polled(DeviceState::Up, None, since, &mut out);
                    }
                }
            }
            _ => {
                if !dev.confirm_down(t, &mut out) && !any_true {
                    // Unknown → Up at the first poll that shows no rule
                    // true (a rule within its hold leaves it Unknown).
                    dev.set_polled(DeviceState::Up, None, t, &mut out);
                }
            }
        }
        out
    }

    /// Enters (`Some(window id)`) or leaves (`None`) planned maintenance:
    /// → Maintenance (reason `maintenance:<id>`), and back to the state the
    /// polls show (Unknown until the next poll if nothing is known). An
    /// unknown device index is ignored.
    pub fn set_maintenance(
        &mut self,
        device: usize,
        window: Option<&str>,
        now_ms: UnixMs,
    ) -> Vec<HealthEvent> {
        let mut out = Vec::new();
        if let Some(dev) = self.devices.get_mut(device) {
            dev.window = window.map(str::to_owned);
            dev.announce(now_ms, &mut out);
        }
        out
    }

    /// Expires debounce holds: a hold expiring emits the transition with
    /// `at_ms` = when the condition began.
    pub fn tick(&mut self, now_ms: UnixMs) -> Vec<HealthEvent> {
        let mut out = Vec::new();
        for dev in &mut self.devices {
            if dev.confirm_down(now_ms, &mut out) {
                continue;
            }
            if dev.polled == DeviceState::Down
                && let Some(since) = dev.up_since
                && now_ms.saturating_sub(since) >= self.up_hold_ms
            {
                dev.set_polled(DeviceState::Up, None, since, &mut out);
            }
        }
        out
    }

    /// For a configuration reload: every device of `self` (built from the
    /// new configuration) for which `keep(id)` says its configuration did
    /// not change takes over the whole state of the device of the same id
    /// in `old` (shown and polled state and since when, last good values,
    /// holds under way, failure count, alarms, window). Returns the ids
    /// taken over. Devices not taken over keep their fresh Unknown state.
    pub fn carry_over(&mut self, old: &Health, keep: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut kept = Vec::new();
        for dev in &mut self.devices {
            if !keep(&dev.id) {
                continue;
            }
            if let Some(prev) = old.devices.iter().find(|d| d.id == dev.id) {
                *dev = prev.clone();
                kept.push(dev.id.clone());
            }
        }
        kept
    }

    /// The shown state of device `device`; an unknown index reads as
    /// Unknown since the machine's start, with no reason.
    pub fn status(&self, device: usize) -> DeviceStatus {
        match self.devices.get(device) {
            Some(d) => DeviceStatus {
                state: d.shown,
                since_ms: d.shown_since,
                reason: d.shown_reason.clone(),
            },
            None => DeviceStatus {
                state: DeviceState::Unknown,
                since_ms: self.started_ms,
                reason: None,
            },
        }
    }

    /// The id of device `device`, if the index is known.
    pub fn device_id(&self, device: usize) -> Option<&str> {
        self.devices.get(device).map(|d| d.id.as_str())
    }

    /// The index of the device with id `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.devices.iter().position(|d| d.id == id)
    }

    /// Seeds the alarm state of a critical point without emitting anything,
    /// e.g. from the store after a restart, so that an alarm still active is
    /// not announced a second time. Returns false (and changes nothing) when
    /// the device or point is unknown or the point is not critical.
    pub fn restore_alarm(&mut self, device: usize, point: &str, active: bool) -> bool {
        let Some(dev) = self.devices.get_mut(device) else {
            return false;
        };
        let Some(i) = dev.names.iter().position(|n| n == point) else {
            return false;
        };
        match (dev.critical.get(i), dev.alarm_active.get_mut(i)) {
            (Some(true), Some(slot)) => {
                *slot = active;
                true
            }
            _ => false,
        }
    }

    /// The critical points of `device` whose alarm is active now, by name.
    pub fn active_alarms(&self, device: usize) -> Vec<&str> {
        self.devices.get(device).map_or_else(Vec::new, |d| {
            d.alarm_active
                .iter()
                .zip(&d.names)
                .filter(|(active, _)| **active)
                .map(|(_, name)| name.as_str())
                .collect()
        })
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// True when there are no devices.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Whether the poll counts as failed (see the module doc).
    fn is_failed(&self, outcome: &PollOutcome) -> bool {
        match outcome.failure {
            None => false,
            Some(FailureKind::Exception { .. }) => self.exception_is_fault,
            Some(_) => outcome.failed_requests >= outcome.requests,
        }
    }
}

/// A duration in whole milliseconds, saturating.
fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
