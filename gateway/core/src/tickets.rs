//! Fault tickets: open → acknowledged → resolved → closed, dedupe, rework,
//! deadlines; ticket figures (issue #3).
//!
//! [`TicketBook`] is a sans-IO state machine: the engine feeds it what
//! happened (availability fell below the threshold, a hard alarm, a device
//! transition, a person's command, the clock) with the time passed in, and
//! it returns the [`TicketEvent`]s to save and announce. Each event carries a
//! snapshot of the ticket after the change, so the store upserts it as is.
//!
//! # States
//!
//! ```text
//!   Open ──ack──▶ Acknowledged ──resolve──▶ Resolved ──close / close_after──▶ Closed
//!    │ ▲                                    ▲   │                              │
//!    │ │                                    │   │  the same fault within       │
//!    │ └────────── Reopened ◀───────────────┼───┴──── rework_period ◀──────────┘
//!    └──────────────── resolve ─────────────┘
//! ```
//!
//! - A person acknowledges (`Open` only) and resolves (`Open` or
//!   `Acknowledged`); closing is for `Resolved` tickets, by a person or by
//!   [`TicketBook::tick`] `close_after` after resolution (by `auto`).
//! - A person marks their arrival on site (到场, [`TicketBook::arrive`]) on an
//!   `Open` or `Acknowledged` ticket: a step in `history` (event `Arrived`)
//!   that does not change the state. `arrived` keeps the first arrival of
//!   the current cycle (the time to arrival); later ones (a colleague
//!   coming to help) are only in `history`. A reopening clears `arrived`
//!   like `acknowledged`. The arrival time may be given (a phone without
//!   signal on site sends it later): it is never after now nor before the
//!   ticket's previous step.
//! - `recovered_ms` is recorded (event `Recovered`) the first time the device
//!   comes back by itself after the ticket (re)opened: a transition to `Up`
//!   for an availability ticket, the alarm clearing for an alarm ticket. It
//!   does not resolve the ticket, except for classes listed in
//!   `tickets.auto_resolve` (resolved at once by `auto`). A relapse while the
//!   ticket is still open changes nothing (the live state is on the
//!   dashboard).
//! - Any other call in a wrong state, for an unknown id or without `by` is a
//!   [`TicketError`] and changes nothing.
//!
//! # Kinds, dedupe and rework
//!
//! A ticket is about one device and one `kind`: `availability` (rolling
//! availability fell below the threshold; severity ordinary) or
//! `alarm:<point>` (a critical point became active; severity critical).
//! Invariant: at most one ticket per (device, kind) is `Open` or
//! `Acknowledged`; a new fault of that kind while one is adds nothing and
//! emits nothing. A fault of that kind within `rework_period` after the
//! latest resolution of a `Resolved` or `Closed` ticket REOPENS it (state
//! `Open`, `reworks += 1`, event `Reopened`, steps of the previous cycle kept
//! only in `history`, deadline recomputed from now): the repair did not hold
//! (返修). Later than that, a new ticket opens.
//!
//! # Deadlines (in the site's time zone)
//!
//! - Critical: `critical_deadline` after opening (default 2 h).
//! - Ordinary: the end of the working day (`working_day_end`, default 18:00
//!   local) of the day it opened; opened at or after that time, the end of
//!   the next day ("ordinary repairs are never left overnight": a fault
//!   reported in the evening is due by the end of the next working day). A
//!   day end skipped by a DST change falls an hour later.
//!
//! # Memory
//!
//! The book holds tickets that are not closed, and closed ones whose latest
//! resolution is younger than `rework_period` (they can still be reopened).
//! [`TicketBook::tick`] closes due tickets and forgets older ones; the store
//! keeps everything. Ids grow strictly; [`TicketBook::new`] never reuses the
//! id of a ticket it was given. A step's time never precedes the ticket's
//! previous step (a clock stepped back is clamped).
//!
//! Figures over many tickets ([`ticket_figures`]) are in [`figures`].

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::config::TicketsConfig;
use crate::maintenance::local_to_ms;
use crate::model::DeviceClass;
use crate::state::{DeviceState, HardAlarm, Transition, UnixMs};

pub mod figures;
#[cfg(test)]
mod tests;

pub use figures::{TicketFigures, ticket_figures};

/// The kind of an availability ticket.
pub const KIND_AVAILABILITY: &str = "availability";
/// Who acts when the book itself opens, recovers, auto-resolves or closes.
pub const AUTO: &str = "auto";

/// The kind of an alarm ticket for `point`: `alarm:<point>`.
pub fn alarm_kind(point: &str) -> String {
    format!("alarm:{point}")
}

/// How urgent a ticket is; decides its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Hard alarm (fire, leak…): due `critical_deadline` after opening.
    Critical,
    /// Ordinary fault: due at the end of the working day.
    Ordinary,
}

impl Severity {
    /// The name used in storage, MQTT and the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Ordinary => "ordinary",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a ticket is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    /// Opened (or reopened), nobody has taken it yet.
    Open,
    /// A person has taken it.
    Acknowledged,
    /// A person (or auto-resolve) says it is repaired.
    Resolved,
    /// Done; can still be reopened as rework within the rework period.
    Closed,
}

impl TicketState {
    /// The name used in storage, MQTT and the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            TicketState::Open => "open",
            TicketState::Acknowledged => "acknowledged",
            TicketState::Resolved => "resolved",
            TicketState::Closed => "closed",
        }
    }

    /// Open or acknowledged: the fault is being dealt with.
    pub const fn is_active(self) -> bool {
        matches!(self, TicketState::Open | TicketState::Acknowledged)
    }
}

impl fmt::Display for TicketState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step taken on a ticket: who, when, with what note.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Who acted (`auto` for the gateway itself).
    pub by: String,
    /// When.
    pub at_ms: UnixMs,
    /// Free text.
    pub note: String,
}

/// What happened to a ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketEventKind {
    /// A new ticket.
    Opened,
    /// A person took it.
    Acknowledged,
    /// A person arrived on site (到场).
    Arrived,
    /// The device came back by itself.
    Recovered,
    /// Repaired.
    Resolved,
    /// The same fault came back within the rework period.
    Reopened,
    /// Done.
    Closed,
}

impl TicketEventKind {
    /// The name used in storage, MQTT and the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            TicketEventKind::Opened => "opened",
            TicketEventKind::Acknowledged => "acknowledged",
            TicketEventKind::Arrived => "arrived",
            TicketEventKind::Recovered => "recovered",
            TicketEventKind::Resolved => "resolved",
            TicketEventKind::Reopened => "reopened",
            TicketEventKind::Closed => "closed",
        }
    }
}

impl fmt::Display for TicketEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of a ticket's history (every cycle, including those before a
/// reopening).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// What happened.
    pub kind: TicketEventKind,
    /// When.
    pub at_ms: UnixMs,
    /// Who (`auto` for the gateway).
    pub by: String,
    /// Free text.
    pub note: String,
    /// For `Opened` and `Reopened`: the deadline of the cycle that began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<UnixMs>,
}

/// A fault ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// Unique, strictly increasing.
    pub id: u64,
    /// Device id.
    pub device: String,
    /// The device's class.
    pub class: DeviceClass,
    /// `availability` or `alarm:<point>` (machine-readable).
    pub kind: String,
    /// Decides the deadline.
    pub severity: Severity,
    /// Lifecycle state.
    pub state: TicketState,
    /// One line for people, in Chinese (`滚动设备完好率 96.2% 低于目标 98%`, `火警 fire_alarm`).
    pub summary: String,
    /// When it first opened.
    pub opened_ms: UnixMs,
    /// Due time of the current cycle.
    pub deadline_ms: UnixMs,
    /// Who took the current cycle, when.
    pub acknowledged: Option<Step>,
    /// Who arrived on site first in the current cycle, when.
    #[serde(default)]
    pub arrived: Option<Step>,
    /// When the device first came back by itself in the current cycle.
    pub recovered_ms: Option<UnixMs>,
    /// Who resolved the current cycle, when.
    pub resolved: Option<Step>,
    /// Who closed it, when.
    pub closed: Option<Step>,
    /// Times reopened as rework.
    pub reworks: u32,
    /// When it was last reopened (start of the current cycle), if ever.
    #[serde(default)]
    pub reopened_ms: Option<UnixMs>,
    /// Everything that happened, oldest first.
    pub history: Vec<HistoryEntry>,
    /// The structured facts behind `summary`, for pages that write the
    /// ticket in their own language (left out when empty).
    #[serde(default, skip_serializing_if = "TicketFacts::is_empty")]
    pub facts: TicketFacts,
}

/// What a ticket is about, as data: the book sets the cause, the gateway
/// adds the display names from its configuration when it publishes
/// (`docs/mqtt.md`, "Ticket facts"). Every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketFacts {
    /// Why the device was down when an availability ticket opened
    /// (`comms`, `rule:<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The rolling availability that opened it, in tenths of a per cent
    /// (962 = 96.2 %).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_permille: Option<u32>,
    /// The target it fell below, in tenths of a per cent (980 = 98 %).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_permille: Option<u32>,
    /// The device's display name in Chinese.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_zh: Option<String>,
    /// In English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_en: Option<String>,
    /// Where it is, in Chinese.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_zh: Option<String>,
    /// In English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_en: Option<String>,
    /// The label of the `reason`'s rule (`rule:<name>`), Chinese.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_zh: Option<String>,
    /// In English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_en: Option<String>,
    /// The label of the alarm point (`alarm:<point>` tickets), Chinese.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_zh: Option<String>,
    /// In English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_en: Option<String>,
}

impl TicketFacts {
    /// Nothing known.
    pub fn is_empty(&self) -> bool {
        *self == TicketFacts::default()
    }
}

impl Ticket {
    /// Start of the current cycle: the last reopening, else the opening.
    pub fn cycle_start_ms(&self) -> UnixMs {
        self.reopened_ms.unwrap_or(self.opened_ms)
    }

    fn last_at(&self) -> UnixMs {
        self.history
            .last()
            .map_or(self.opened_ms, |h| h.at_ms)
            .max(self.opened_ms)
    }

    fn push(&mut self, kind: TicketEventKind, at_ms: UnixMs, by: &str, note: &str) {
        self.history.push(HistoryEntry {
            kind,
            at_ms,
            by: by.to_owned(),
            note: note.to_owned(),
            deadline_ms: None,
        });
    }
}

/// A change to a ticket, with the ticket as it is after the change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketEvent {
    /// What happened.
    pub kind: TicketEventKind,
    /// When.
    pub at_ms: UnixMs,
    /// The ticket after the change.
    pub ticket: Ticket,
}

/// The device a fault is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRef<'a> {
    /// Device id.
    pub id: &'a str,
    /// Its class (auto-resolve is per class).
    pub class: DeviceClass,
}

/// A person's command on a ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `ack`.
    Acknowledge,
    /// `arrive`.
    Arrive,
    /// `resolve`.
    Resolve,
    /// `close`.
    Close,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Acknowledge => "acknowledged",
            Action::Arrive => "marked as arrived on site",
            Action::Resolve => "resolved",
            Action::Close => "closed",
        })
    }
}

/// A refused command; nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// No ticket with this id is open or recently resolved.
    #[error("no ticket #{0}")]
    Unknown(u64),
    /// The ticket's state does not allow the command.
    #[error("ticket #{id} is {state}; it cannot be {action}")]
    WrongState {
        /// Ticket id.
        id: u64,
        /// Its state.
        state: TicketState,
        /// What was asked.
        action: Action,
    },
    /// Who acts was not given.
    #[error("ticket #{id}: say who is acting (by is empty)")]
    NoActor {
        /// Ticket id.
        id: u64,
    },
}

/// The deadline of an ordinary ticket opened at `now_ms`: the end of the
/// working day (`day_end`, local time in `tz`) of that local day, or of the
/// next day when opened at or after it. A day end that does not exist (DST
/// gap) falls an hour later.
pub fn ordinary_deadline(tz: Tz, day_end: NaiveTime, now_ms: UnixMs) -> UnixMs {
    let end_of = |date: NaiveDate| -> Option<UnixMs> {
        let local = date.and_time(day_end);
        local_to_ms(tz, local).or_else(|| local_to_ms(tz, local + TimeDelta::hours(1)))
    };
    let fallback = now_ms.saturating_add(24 * 3600 * 1000);
    let Some(utc) = DateTime::from_timestamp_millis(now_ms) else {
        return fallback;
    };
    let today = utc.with_timezone(&tz).date_naive();
    match end_of(today) {
        Some(end) if now_ms < end => end,
        _ => today.succ_opt().and_then(end_of).unwrap_or(fallback),
    }
}

/// `98` or `99.5`: a threshold without a useless `.0`.
fn percent_text(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p}")
    }
}

/// A health reason for people, in Chinese.
fn reason_zh(reason: &str) -> String {
    if reason == "comms" {
        "通讯中断".to_owned()
    } else if let Some(rule) = reason.strip_prefix("rule:") {
        format!("故障规则 {rule}")
    } else {
        reason.to_owned()
    }
}

/// A Chinese label for an alarm point, by its usual names.
fn alarm_label(point: &str) -> &'static str {
    let p = point.to_ascii_lowercase();
    if p.contains("fire") {
        "火警"
    } else if p.contains("leak") || p.contains("wet") {
        "漏水"
    } else if p.contains("supervis") {
        "监管报警"
    } else if p.contains("fault") {
        "故障"
    } else if p.contains("mains") || p.contains("power") || p.contains("battery") {
        "电源故障"
    } else {
        "告警"
    }
}

/// The ticket machine: holds active tickets and those still within the
/// rework period (see the module doc).
#[derive(Clone, Debug)]
pub struct TicketBook {
    cfg: TicketsConfig,
    tz: Tz,
    tickets: BTreeMap<u64, Ticket>,
    next_id: u64,
}

impl TicketBook {
    /// A book over `tickets` (from the store: active ones and those resolved
    /// within the rework period); new ids start at `next_id`, or after the
    /// largest id given if that is higher.
    pub fn new(cfg: &TicketsConfig, tz: Tz, tickets: Vec<Ticket>, next_id: u64) -> Self {
        let max_seen = tickets
            .iter()
            .map(|t| t.id.saturating_add(1))
            .max()
            .unwrap_or(1);
        TicketBook {
            cfg: cfg.clone(),
            tz,
            tickets: tickets.into_iter().map(|t| (t.id, t)).collect(),
            next_id: next_id.max(max_seen).max(1),
        }
    }

    /// Rolling availability of a device fell below its threshold
    /// (`availability` as a fraction 0–1, `threshold_percent` in per cent):
    /// opens an ordinary `availability` ticket, reopens a recently resolved
    /// one, or does nothing if one is active.
    pub fn on_availability_below(
        &mut self,
        d: DeviceRef<'_>,
        availability: f64,
        threshold_percent: f64,
        reason: Option<&str>,
        now_ms: UnixMs,
    ) -> Vec<TicketEvent> {
        let mut summary = format!(
            "{} {:.1}% 低于{} {}%",
            crate::glossary::ROLLING_AVAILABILITY.zh,
            availability * 100.0,
            crate::glossary::TARGET.zh,
            percent_text(threshold_percent)
        );
        if let Some(r) = reason {
            summary.push_str(&format!("（{}）", reason_zh(r)));
        }
        let permille = |x: f64| (x.is_finite() && x >= 0.0).then(|| (x * 10.0).round() as u32);
        let facts = TicketFacts {
            reason: reason.map(str::to_owned),
            availability_permille: permille(availability * 100.0),
            target_permille: permille(threshold_percent),
            ..TicketFacts::default()
        };
        self.raise(
            d,
            KIND_AVAILABILITY,
            Severity::Ordinary,
            summary,
            facts,
            now_ms,
        )
    }

    /// A hard alarm: active opens (or reopens) a critical `alarm:<point>`
    /// ticket at once; inactive records the recovery of the active one.
    pub fn on_alarm(&mut self, d: DeviceRef<'_>, alarm: &HardAlarm) -> Vec<TicketEvent> {
        let kind = alarm_kind(&alarm.point);
        if alarm.active {
            let summary = format!("{} {}", alarm_label(&alarm.point), alarm.point);
            let facts = TicketFacts::default();
            self.raise(d, &kind, Severity::Critical, summary, facts, alarm.at_ms)
        } else {
            self.recover(d, &kind, alarm.at_ms)
        }
    }

    /// A device transition: to `Up` records the recovery of its active
    /// availability ticket (and auto-resolves it for the listed classes).
    pub fn on_transition(&mut self, d: DeviceRef<'_>, t: &Transition) -> Vec<TicketEvent> {
        if t.to == DeviceState::Up {
            self.recover(d, KIND_AVAILABILITY, t.at_ms)
        } else {
            Vec::new()
        }
    }

    /// A person takes an open ticket.
    pub fn ack(
        &mut self,
        id: u64,
        by: &str,
        note: &str,
        now_ms: UnixMs,
    ) -> Result<Vec<TicketEvent>, TicketError> {
        let t = self.for_action(id, by, Action::Acknowledge, &[TicketState::Open])?;
        let at = now_ms.max(t.last_at());
        t.state = TicketState::Acknowledged;
        t.acknowledged = Some(step(by, at, note));
        t.push(TicketEventKind::Acknowledged, at, by, note);
        Ok(vec![event(TicketEventKind::Acknowledged, at, t)])
    }

    /// A person arrived on site for an open or acknowledged ticket, at
    /// `at_ms` if given (clamped to now and to the ticket's previous step),
    /// else now. The state does not change; `arrived` is set on the first
    /// arrival of the cycle.
    pub fn arrive(
        &mut self,
        id: u64,
        by: &str,
        note: &str,
        at_ms: Option<UnixMs>,
        now_ms: UnixMs,
    ) -> Result<Vec<TicketEvent>, TicketError> {
        let t = self.for_action(
            id,
            by,
            Action::Arrive,
            &[TicketState::Open, TicketState::Acknowledged],
        )?;
        let at = at_ms.unwrap_or(now_ms).min(now_ms).max(t.last_at());
        if t.arrived.is_none() {
            t.arrived = Some(step(by, at, note));
        }
        t.push(TicketEventKind::Arrived, at, by, note);
        Ok(vec![event(TicketEventKind::Arrived, at, t)])
    }

    /// A person says an open or acknowledged ticket is repaired.
    pub fn resolve(
        &mut self,
        id: u64,
        by: &str,
        note: &str,
        now_ms: UnixMs,
    ) -> Result<Vec<TicketEvent>, TicketError> {
        let t = self.for_action(
            id,
            by,
            Action::Resolve,
            &[TicketState::Open, TicketState::Acknowledged],
        )?;
        Ok(vec![resolve_ticket(t, by, note, now_ms)])
    }

    /// A person closes a resolved ticket.
    pub fn close(
        &mut self,
        id: u64,
        by: &str,
        note: &str,
        now_ms: UnixMs,
    ) -> Result<Vec<TicketEvent>, TicketError> {
        let t = self.for_action(id, by, Action::Close, &[TicketState::Resolved])?;
        Ok(vec![close_ticket(t, by, note, now_ms)])
    }

    /// The clock: closes resolved tickets `close_after` after resolution (at
    /// that due time, by `auto`) and forgets closed tickets that can no
    /// longer be reopened.
    pub fn tick(&mut self, now_ms: UnixMs) -> Vec<TicketEvent> {
        let close_after = duration_ms(self.cfg.close_after());
        let mut events = Vec::new();
        for t in self.tickets.values_mut() {
            if t.state != TicketState::Resolved {
                continue;
            }
            let Some(resolved_at) = t.resolved.as_ref().map(|s| s.at_ms) else {
                continue;
            };
            let due = resolved_at.saturating_add(close_after);
            if due <= now_ms {
                events.push(close_ticket(t, AUTO, "自动关闭", due));
            }
        }
        let cfg = &self.cfg;
        self.tickets.retain(|_, t| still_needed(t, cfg, now_ms));
        events
    }

    /// A ticket the book holds.
    pub fn get(&self, id: u64) -> Option<&Ticket> {
        self.tickets.get(&id)
    }

    /// Every ticket the book holds, by id.
    pub fn tickets(&self) -> impl Iterator<Item = &Ticket> {
        self.tickets.values()
    }

    /// The active (open or acknowledged) ticket of a device and kind.
    pub fn active(&self, device: &str, kind: &str) -> Option<&Ticket> {
        self.tickets
            .values()
            .find(|t| t.device == device && t.kind == kind && t.state.is_active())
    }

    /// The id the next new ticket gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// The deadline of a cycle of `severity` starting at `now_ms`.
    pub fn deadline(&self, severity: Severity, now_ms: UnixMs) -> UnixMs {
        match severity {
            Severity::Critical => {
                now_ms.saturating_add(duration_ms(self.cfg.critical_deadline.get()))
            }
            Severity::Ordinary => ordinary_deadline(self.tz, self.cfg.working_day_end.0, now_ms),
        }
    }

    /// Validates a command and returns the ticket to change.
    fn for_action(
        &mut self,
        id: u64,
        by: &str,
        action: Action,
        allowed: &[TicketState],
    ) -> Result<&mut Ticket, TicketError> {
        let t = self.tickets.get_mut(&id).ok_or(TicketError::Unknown(id))?;
        if by.trim().is_empty() {
            return Err(TicketError::NoActor { id });
        }
        if !allowed.contains(&t.state) {
            return Err(TicketError::WrongState {
                id,
                state: t.state,
                action,
            });
        }
        Ok(t)
    }

    /// A fault of `kind` on `d`: dedupe, reopen as rework, or open.
    fn raise(
        &mut self,
        d: DeviceRef<'_>,
        kind: &str,
        severity: Severity,
        summary: String,
        facts: TicketFacts,
        now_ms: UnixMs,
    ) -> Vec<TicketEvent> {
        if self.active(d.id, kind).is_some() {
            return Vec::new();
        }
        let deadline = self.deadline(severity, now_ms);
        let rework = duration_ms(self.cfg.rework_period.get());
        let reopen = self
            .tickets
            .values_mut()
            .filter(|t| t.device == d.id && t.kind == kind)
            .filter_map(|t| t.resolved.as_ref().map(|s| s.at_ms).map(|at| (at, t)))
            .filter(|(at, _)| now_ms >= *at && now_ms - *at < rework)
            .max_by_key(|(at, t)| (*at, t.id));
        if let Some((_, t)) = reopen {
            let at = now_ms.max(t.last_at());
            t.state = TicketState::Open;
            t.reworks += 1;
            t.reopened_ms = Some(at);
            t.deadline_ms = deadline.max(at);
            t.summary = summary;
            t.facts = facts;
            t.acknowledged = None;
            t.arrived = None;
            t.recovered_ms = None;
            t.resolved = None;
            t.closed = None;
            t.history.push(HistoryEntry {
                kind: TicketEventKind::Reopened,
                at_ms: at,
                by: AUTO.to_owned(),
                note: "同一故障在返修期内再次出现".to_owned(),
                deadline_ms: Some(t.deadline_ms),
            });
            return vec![event(TicketEventKind::Reopened, at, t)];
        }
        let id = self.next_id;
        self.next_id += 1;
        let t = Ticket {
            id,
            device: d.id.to_owned(),
            class: d.class,
            kind: kind.to_owned(),
            severity,
            state: TicketState::Open,
            summary,
            opened_ms: now_ms,
            deadline_ms: deadline,
            acknowledged: None,
            arrived: None,
            recovered_ms: None,
            resolved: None,
            closed: None,
            reworks: 0,
            reopened_ms: None,
            history: vec![HistoryEntry {
                kind: TicketEventKind::Opened,
                at_ms: now_ms,
                by: AUTO.to_owned(),
                note: String::new(),
                deadline_ms: Some(deadline),
            }],
            facts,
        };
        let ev = event(TicketEventKind::Opened, now_ms, &t);
        self.tickets.insert(id, t);
        vec![ev]
    }

    /// The device recovered from a fault of `kind` by itself.
    fn recover(&mut self, d: DeviceRef<'_>, kind: &str, at_ms: UnixMs) -> Vec<TicketEvent> {
        let auto_resolve = self.cfg.auto_resolve.contains(&d.class);
        let Some(t) = self
            .tickets
            .values_mut()
            .find(|t| t.device == d.id && t.kind == kind && t.state.is_active())
        else {
            return Vec::new();
        };
        if t.recovered_ms.is_some() {
            return Vec::new();
        }
        let at = at_ms.max(t.last_at());
        t.recovered_ms = Some(at);
        t.push(TicketEventKind::Recovered, at, AUTO, "");
        let mut events = vec![event(TicketEventKind::Recovered, at, t)];
        if auto_resolve {
            events.push(resolve_ticket(t, AUTO, "设备自行恢复，自动解决", at));
        }
        events
    }
}

/// Whether a ticket still belongs in a [`TicketBook`] at `now_ms`: it is not
/// closed, or its latest resolution is younger than the rework period (it
/// can still be reopened). The engine and the CLI load these from the store
/// (a superset is fine: [`TicketBook::tick`] forgets the rest).
pub fn still_needed(t: &Ticket, cfg: &TicketsConfig, now_ms: UnixMs) -> bool {
    let rework = duration_ms(cfg.rework_period.get());
    t.state != TicketState::Closed
        || t.resolved
            .as_ref()
            .is_some_and(|s| s.at_ms.saturating_add(rework) > now_ms)
}

fn step(by: &str, at_ms: UnixMs, note: &str) -> Step {
    Step {
        by: by.to_owned(),
        at_ms,
        note: note.to_owned(),
    }
}

fn event(kind: TicketEventKind, at_ms: UnixMs, t: &Ticket) -> TicketEvent {
    TicketEvent {
        kind,
        at_ms,
        ticket: t.clone(),
    }
}

fn resolve_ticket(t: &mut Ticket, by: &str, note: &str, now_ms: UnixMs) -> TicketEvent {
    let at = now_ms.max(t.last_at());
    t.state = TicketState::Resolved;
    t.resolved = Some(step(by, at, note));
    t.push(TicketEventKind::Resolved, at, by, note);
    event(TicketEventKind::Resolved, at, t)
}

fn close_ticket(t: &mut Ticket, by: &str, note: &str, now_ms: UnixMs) -> TicketEvent {
    let at = now_ms.max(t.last_at());
    t.state = TicketState::Closed;
    t.closed = Some(step(by, at, note));
    t.push(TicketEventKind::Closed, at, by, note);
    event(TicketEventKind::Closed, at, t)
}

fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
