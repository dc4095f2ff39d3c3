//! The paging policy (issue #6): which ticket events page whom, when, on
//! which channels. Sans-IO, time passed in; the dispatcher
//! (`gateway::alerts`) records every [`Notice`] it returns before sending.
//!
//! # Rules
//!
//! - A ticket **opened or reopened** pages tier 1 (the person on duty, see
//!   [`crate::oncall`]) on every channel of its severity's policy
//!   (`[alerts.critical]`, `[alerts.ordinary]`). Outside working hours a
//!   policy with `outside_hours = "defer"` waits for the start of the next
//!   working period; the ticket is paged then if it is still open.
//! - **Escalation**: a ticket still `Open` (not acknowledged)
//!   `ack_within` after tier *k* was paged pages tier *k + 1*, again and
//!   again until the last tier.
//! - **Acknowledged / resolved**: a short follow-up to everyone paged for
//!   the ticket, on the same channels (`follow_ups`); escalation stops.
//! - **Duplicate suppression**: a ticket for the same device and kind as
//!   one paged less than `dedupe_window` ago is not paged (it escalates as
//!   if it had been). Notices have unique keys (ticket, cycle, tier,
//!   channel): recording one twice is a no-op, so a restart never pages
//!   twice.
//! - **Rate limit and digest**, per channel: once `digest_after` messages
//!   (or `max_per_minute`) went out within the last minute, further ones
//!   are *held* and gathered into one digest sent `digest_delay` after the
//!   first held one (and only when the channel's rate allows). A power cut
//!   with 40 faults sends a few messages and one digest, not 40.
//!
//! # Restart
//!
//! Nothing here needs its own storage: [`Policy::restore`] rebuilds the
//! state of each active ticket from the notices already recorded for it
//! (last tier paged and when; deferral is recomputed from the working
//! hours; a ticket the dedupe window kept quiet stays quiet), held notices
//! go back into their digest, and recent sends refill the rate windows.
//! Every acknowledgement and resolution in a ticket's history whose
//! follow-up is not recorded gets it then (a crash between the ticket's
//! change and the recording), with the key the live path would have
//! given it: each notice is recorded once, whenever the crash came.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, Datelike as _, NaiveTime, TimeDelta, Weekday};
use serde::{Deserialize, Serialize};

use crate::config::{AlertsConfig, Language, OutsideHours, PersonConfig};
use crate::maintenance::{local_to_ms, parse_weekly};
use crate::model::DeviceClass;
use crate::oncall::{Roster, local_text};
use crate::state::UnixMs;
use crate::tickets::{Severity, Step, Ticket, TicketEvent, TicketEventKind, TicketState};

#[cfg(test)]
mod tests;

pub mod handover;

/// One minute, the rate-limit window.
const MINUTE_MS: i64 = 60_000;
/// Lines of a digest listed one by one; the rest are counted.
const DIGEST_LINES: usize = 30;

/// What a notice is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// First page of a ticket (tier 1).
    Page,
    /// A later tier, not acknowledged in time.
    Escalation,
    /// Follow-up: someone took the ticket.
    Acknowledged,
    /// Follow-up: the ticket is resolved.
    Resolved,
    /// Several held notices in one message.
    Digest,
    /// The daily shift handover digest (`[alerts] handover_at`).
    Handover,
}

impl NoticeKind {
    /// The name used in storage and the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Page => "page",
            NoticeKind::Escalation => "escalation",
            NoticeKind::Acknowledged => "acknowledged",
            NoticeKind::Resolved => "resolved",
            NoticeKind::Digest => "digest",
            NoticeKind::Handover => "handover",
        }
    }

    /// Parses [`NoticeKind::as_str`].
    pub fn parse(s: &str) -> Option<NoticeKind> {
        Some(match s {
            "page" => NoticeKind::Page,
            "escalation" => NoticeKind::Escalation,
            "acknowledged" => NoticeKind::Acknowledged,
            "resolved" => NoticeKind::Resolved,
            "digest" => NoticeKind::Digest,
            "handover" => NoticeKind::Handover,
            _ => return None,
        })
    }
}

/// A person named in a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// Person id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Mobile (for @-mentions in group robots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// A message, independent of the channel that renders it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// One line: `【紧急告警】1号消防主机 火警`.
    pub title: String,
    /// `label：value` lines (device, class, location, fault, time, ticket, deadline, on duty).
    pub lines: Vec<String>,
    /// The ticket's page on the dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Link text (`查看工单`).
    #[serde(default)]
    pub link_text: String,
    /// Who it is for.
    pub to: Vec<Recipient>,
    /// Critical (shown as urgent).
    #[serde(default)]
    pub urgent: bool,
}

impl Message {
    /// Plain text: title, lines, link.
    pub fn text(&self) -> String {
        let mut s = self.title.clone();
        for l in &self.lines {
            s.push('\n');
            s.push_str(l);
        }
        if let Some(l) = &self.link {
            s.push('\n');
            s.push_str(&self.link_text);
            s.push_str(": ");
            s.push_str(l);
        }
        s
    }
}

/// Something to record, then send (or hold for a digest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Unique: recording the same key twice is a no-op.
    pub key: String,
    /// The ticket, if about one.
    pub ticket: Option<u64>,
    /// What.
    pub kind: NoticeKind,
    /// Tier paged (1-based); 0 for follow-ups and digests.
    pub tier: u8,
    /// Channel id.
    pub channel: String,
    /// The message.
    pub message: Message,
    /// When it was made.
    pub at_ms: UnixMs,
    /// Held for a digest (recorded, not sent by itself).
    pub held: bool,
    /// For a digest: the keys of the held notices it carries.
    #[serde(default)]
    pub covers: Vec<String>,
}

/// What messages say about a device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Display name in the message language.
    pub name: String,
    /// Where it is.
    pub location: Option<String>,
}

/// A class for people: its name in the glossary.
pub fn class_label(class: DeviceClass, lang: Language) -> &'static str {
    crate::glossary::class(class).pick(lang == Language::Zh)
}

/// Working hours: days and a local start and end.
#[derive(Clone, Debug)]
pub struct WorkingHours {
    days: Vec<Weekday>,
    start: NaiveTime,
    end: NaiveTime,
}

impl WorkingHours {
    /// Parses `"Mon,Tue,Wed,Thu,Fri 08:00-18:00"`.
    pub fn parse(s: &str) -> Result<WorkingHours, String> {
        let (days, start, end) = parse_weekly(s)?;
        if end <= start {
            return Err(format!(
                "{s:?}: working hours end before they start; write e.g. \"Mon,Tue,Wed,Thu,Fri 08:00-18:00\""
            ));
        }
        Ok(WorkingHours { days, start, end })
    }

    /// Whether `at_ms` is within working hours; else the start of the next
    /// working period (`Err`).
    pub fn check(&self, tz: chrono_tz::Tz, at_ms: UnixMs) -> Result<(), UnixMs> {
        let Some(utc) = DateTime::from_timestamp_millis(at_ms) else {
            return Ok(());
        };
        let today = utc.with_timezone(&tz).date_naive();
        for d in 0..9 {
            let Some(day) = today.checked_add_signed(TimeDelta::days(d)) else {
                break;
            };
            if !self.days.contains(&day.weekday()) {
                continue;
            }
            let at = |t: NaiveTime| {
                let l = day.and_time(t);
                local_to_ms(tz, l).or_else(|| local_to_ms(tz, l + TimeDelta::hours(1)))
            };
            let (Some(s), Some(e)) = (at(self.start), at(self.end)) else {
                continue;
            };
            if at_ms < s {
                return Err(s);
            }
            if at_ms < e {
                return Ok(());
            }
        }
        // No working day at all: never defer forever.
        Ok(())
    }
}

/// One severity's settings, resolved.
#[derive(Clone, Debug)]
struct SevRule {
    channels: Vec<String>,
    ack_within_ms: i64,
    defer: bool,
}

/// Per-channel settings the policy needs.
#[derive(Clone, Debug)]
struct ChanRule {
    max_per_minute: usize,
}

/// The policy's settings, from `[alerts]`.
#[derive(Clone, Debug)]
pub struct Settings {
    lang: Language,
    link: Option<String>,
    site: String,
    gateway: String,
    hours: WorkingHours,
    critical: SevRule,
    ordinary: SevRule,
    follow_ups: bool,
    dedupe_ms: i64,
    digest_after: usize,
    digest_delay_ms: i64,
    channels: BTreeMap<String, ChanRule>,
    people: Vec<PersonConfig>,
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Settings {
    /// From a validated `[alerts]` section.
    pub fn new(cfg: &AlertsConfig, site: &str, gateway: &str) -> Result<Settings, String> {
        let rule = |p: &crate::config::SeverityPolicy| SevRule {
            channels: p.channels.clone(),
            ack_within_ms: ms(p.ack_within.get()),
            defer: p.outside_hours == OutsideHours::Defer,
        };
        Ok(Settings {
            lang: cfg.language,
            link: cfg.dashboard_url.clone(),
            site: site.to_owned(),
            gateway: gateway.to_owned(),
            hours: WorkingHours::parse(&cfg.working_hours)?,
            critical: rule(&cfg.critical),
            ordinary: rule(&cfg.ordinary),
            follow_ups: cfg.follow_ups,
            dedupe_ms: ms(cfg.dedupe_window.get()),
            digest_after: usize::try_from(cfg.digest_after).unwrap_or(usize::MAX),
            digest_delay_ms: ms(cfg.digest_delay.get()),
            channels: cfg
                .channels
                .iter()
                .map(|c| {
                    (
                        c.id.clone(),
                        ChanRule {
                            max_per_minute: usize::try_from(c.max_per_minute).unwrap_or(usize::MAX),
                        },
                    )
                })
                .collect(),
            people: cfg.people.clone(),
        })
    }

    fn rule(&self, s: Severity) -> &SevRule {
        match s {
            Severity::Critical => &self.critical,
            Severity::Ordinary => &self.ordinary,
        }
    }

    fn recipient(&self, id: &str) -> Recipient {
        match self.people.iter().find(|p| p.id == id) {
            Some(p) => Recipient {
                id: p.id.clone(),
                name: p.name.clone(),
                mobile: p.mobile.clone(),
                email: p.email.clone(),
            },
            None => Recipient {
                id: id.to_owned(),
                name: id.to_owned(),
                mobile: None,
                email: None,
            },
        }
    }

    /// The dashboard link of a ticket.
    pub fn link(&self, id: u64) -> Option<String> {
        self.link.as_ref().map(|t| {
            t.replace("{site}", &self.site)
                .replace("{gateway}", &self.gateway)
                .replace("{id}", &id.to_string())
        })
    }
}

/// Where an active ticket stands.
#[derive(Clone, Debug)]
struct Track {
    ticket: Ticket,
    info: DeviceInfo,
    /// Tiers paged so far in this cycle (0: none yet).
    tier: usize,
    /// When to page the next tier (or the deferred first page).
    next_ms: Option<UnixMs>,
    /// Everyone paged in this cycle.
    paged: Vec<String>,
}

/// Held notices of one channel, waiting for their digest.
#[derive(Clone, Debug, Default)]
struct Held {
    since_ms: UnixMs,
    items: Vec<Notice>,
}

/// The policy machine; see the module doc.
#[derive(Debug)]
pub struct Policy {
    s: Settings,
    roster: Roster,
    tracks: BTreeMap<u64, Track>,
    /// Last page per (device, kind).
    last_paged: BTreeMap<(String, String), UnixMs>,
    /// Messages out per channel within the last minute.
    sent: BTreeMap<String, VecDeque<UnixMs>>,
    held: BTreeMap<String, Held>,
}

/// A notice recorded before a restart, as [`Policy::restore`] needs it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The notice.
    pub notice: Notice,
    /// Still held (its digest was not recorded).
    pub held: bool,
}

impl Policy {
    /// An empty policy.
    pub fn new(s: Settings, roster: Roster) -> Policy {
        Policy {
            s,
            roster,
            tracks: BTreeMap::new(),
            last_paged: BTreeMap::new(),
            sent: BTreeMap::new(),
            held: BTreeMap::new(),
        }
    }

    /// The roster.
    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.s
    }

    /// Rebuilds the state after a restart and returns what is due now.
    ///
    /// `tickets` are those a notice may still be owed for, with what
    /// messages say about their device: at least every ticket open,
    /// acknowledged or resolved, and every ticket that changed within the
    /// lookback (closed ones included). `recorded` is every notice recorded
    /// recently (at least the longest escalation and the dedupe window
    /// back), oldest first.
    ///
    /// Due now: a first page never recorded (unless the dedupe window
    /// would have suppressed it), an escalation missed while down, and a
    /// follow-up for each acknowledgement or resolution in the tickets'
    /// history whose notice was not recorded (a crash between the
    /// ticket's change and the notice's recording). Every notice has the
    /// key the live path gives it, so one recorded already is not made
    /// again, and one made both here and live is recorded once.
    pub fn restore(
        &mut self,
        tickets: Vec<(Ticket, DeviceInfo)>,
        recorded: &[Recorded],
        now_ms: UnixMs,
    ) -> Vec<Notice> {
        for r in recorded {
            let n = &r.notice;
            if r.held {
                let h = self.held.entry(n.channel.clone()).or_default();
                if h.items.is_empty() {
                    h.since_ms = n.at_ms;
                }
                h.items.push(n.clone());
            } else if now_ms - n.at_ms < MINUTE_MS {
                self.sent
                    .entry(n.channel.clone())
                    .or_default()
                    .push_back(n.at_ms);
            }
        }
        // Every page recorded for a known ticket, with its (device, kind):
        // the dedupe window looks at them.
        let fault: BTreeMap<u64, (String, String)> = tickets
            .iter()
            .map(|(t, _)| (t.id, (t.device.clone(), t.kind.clone())))
            .collect();
        let pages: Vec<(&(String, String), &Notice)> = recorded
            .iter()
            .map(|r| &r.notice)
            .filter(|n| matches!(n.kind, NoticeKind::Page | NoticeKind::Escalation))
            .filter_map(|n| n.ticket.and_then(|id| fault.get(&id)).map(|f| (f, n)))
            .collect();
        for (f, n) in &pages {
            let last = self.last_paged.entry((*f).clone()).or_insert(n.at_ms);
            *last = (*last).max(n.at_ms);
        }
        // Each ticket's notices, so that many tickets and a long log stay cheap.
        let mut by_ticket: BTreeMap<u64, Vec<&Notice>> = BTreeMap::new();
        for n in recorded.iter().map(|r| &r.notice) {
            if let Some(id) = n.ticket {
                by_ticket.entry(id).or_default().push(n);
            }
        }
        let mut out = Vec::new();
        for (ticket, info) in tickets {
            let notices = by_ticket.get(&ticket.id).map_or(&[][..], Vec::as_slice);
            out.extend(self.missed_follow_ups(&ticket, &info, notices, now_ms));
            if !matches!(ticket.state, TicketState::Open | TicketState::Acknowledged) {
                continue;
            }
            let cycle = ticket.cycle_start_ms();
            let prefix = cycle_prefix(ticket.id, cycle);
            let mine: Vec<&Notice> = notices
                .iter()
                .copied()
                .filter(|n| matches!(n.kind, NoticeKind::Page | NoticeKind::Escalation))
                .filter(|n| n.key.starts_with(&prefix))
                .collect();
            let rule = self.s.rule(ticket.severity).clone();
            let mut track = Track {
                ticket: ticket.clone(),
                info,
                tier: 0,
                next_ms: None,
                paged: paged_in(&mine),
            };
            track.tier = mine.iter().map(|p| usize::from(p.tier)).max().unwrap_or(0);
            let last_at = mine.iter().map(|p| p.at_ms).max();
            let tiers = self.roster.tiers().len();
            match (last_at, ticket.state) {
                (None, TicketState::Open) if !rule.channels.is_empty() => {
                    // Another page for the same fault less than the dedupe
                    // window before this cycle began: the live path did not
                    // page it, only escalates it (see `on_ticket`).
                    let dup = pages.iter().any(|(f, n)| {
                        **f == (ticket.device.clone(), ticket.kind.clone())
                            && !n.key.starts_with(&prefix)
                            && n.at_ms <= cycle
                            && cycle - n.at_ms < self.s.dedupe_ms
                    });
                    track.next_ms = if dup {
                        track.tier = 1;
                        (tiers > 1).then_some(cycle + rule.ack_within_ms)
                    } else {
                        // Never paged: as if it opened now (deferral recomputed).
                        Some(
                            match (rule.defer, self.s.hours.check(self.roster.tz(), now_ms)) {
                                (true, Err(next)) => next,
                                _ => now_ms,
                            },
                        )
                    };
                }
                (Some(at), TicketState::Open) if track.tier < tiers => {
                    track.next_ms = Some(at + rule.ack_within_ms);
                }
                _ => {}
            }
            self.tracks.insert(ticket.id, track);
        }
        out.extend(self.tick(now_ms));
        out
    }

    /// The follow-ups a ticket is owed and that were never recorded: one
    /// per acknowledgement and resolution in its history (every cycle), to
    /// everyone paged in that cycle, on the channels whose key is missing.
    /// `recorded`: the ticket's recorded notices.
    fn missed_follow_ups(
        &mut self,
        ticket: &Ticket,
        info: &DeviceInfo,
        recorded: &[&Notice],
        now_ms: UnixMs,
    ) -> Vec<Notice> {
        if !self.s.follow_ups {
            return Vec::new();
        }
        let rule = self.s.rule(ticket.severity).clone();
        let mut cycle = None;
        let mut out = Vec::new();
        for h in &ticket.history {
            let kind = match h.kind {
                TicketEventKind::Opened | TicketEventKind::Reopened => {
                    cycle = Some(h.at_ms);
                    continue;
                }
                TicketEventKind::Acknowledged => NoticeKind::Acknowledged,
                TicketEventKind::Resolved => NoticeKind::Resolved,
                TicketEventKind::Arrived | TicketEventKind::Recovered | TicketEventKind::Closed => {
                    continue;
                }
            };
            let Some(c) = cycle else { continue };
            let prefix = cycle_prefix(ticket.id, c);
            let in_cycle: Vec<&Notice> = recorded
                .iter()
                .copied()
                .filter(|n| n.key.starts_with(&prefix))
                .collect();
            let pages: Vec<&Notice> = in_cycle
                .iter()
                .copied()
                .filter(|n| matches!(n.kind, NoticeKind::Page | NoticeKind::Escalation))
                .collect();
            let paged = paged_in(&pages);
            if paged.is_empty() {
                continue;
            }
            let to: Vec<Recipient> = paged.iter().map(|p| self.s.recipient(p)).collect();
            let step = Step {
                by: h.by.clone(),
                at_ms: h.at_ms,
                note: h.note.clone(),
            };
            let msg = self.follow_up(kind, ticket, info, to, &step);
            for ch in &rule.channels {
                let n = follow_up_notice(ticket.id, c, kind, ch, &msg, now_ms);
                if in_cycle.iter().any(|old| old.key == n.key) {
                    continue;
                }
                out.extend(self.emit(n, now_ms));
            }
        }
        out
    }

    /// A stored ticket event; returns the notices to record.
    pub fn on_ticket(&mut self, ev: &TicketEvent, info: DeviceInfo, now_ms: UnixMs) -> Vec<Notice> {
        let t = &ev.ticket;
        let rule = self.s.rule(t.severity).clone();
        match ev.kind {
            TicketEventKind::Opened | TicketEventKind::Reopened => {
                if rule.channels.is_empty() {
                    return Vec::new();
                }
                let mut track = Track {
                    ticket: t.clone(),
                    info,
                    tier: 0,
                    next_ms: None,
                    paged: Vec::new(),
                };
                let key = (t.device.clone(), t.kind.clone());
                let dup = self
                    .last_paged
                    .get(&key)
                    .is_some_and(|at| now_ms - at < self.s.dedupe_ms);
                let mut out = Vec::new();
                if dup {
                    // Paged moments ago for the same fault: escalate as if paged.
                    track.tier = 1;
                    track.next_ms =
                        (self.roster.tiers().len() > 1).then_some(now_ms + rule.ack_within_ms);
                } else {
                    match (rule.defer, self.s.hours.check(self.roster.tz(), now_ms)) {
                        (true, Err(next)) => track.next_ms = Some(next),
                        _ => out = self.page(&mut track, now_ms),
                    }
                }
                self.tracks.insert(t.id, track);
                out
            }
            TicketEventKind::Acknowledged | TicketEventKind::Resolved => {
                let Some(track) = self.tracks.get_mut(&t.id) else {
                    return Vec::new();
                };
                track.ticket = t.clone();
                track.next_ms = None;
                let paged = track.paged.clone();
                let info = track.info.clone();
                if ev.kind == TicketEventKind::Resolved {
                    self.tracks.remove(&t.id);
                }
                if !self.s.follow_ups || paged.is_empty() {
                    return Vec::new();
                }
                let kind = if ev.kind == TicketEventKind::Acknowledged {
                    NoticeKind::Acknowledged
                } else {
                    NoticeKind::Resolved
                };
                let to: Vec<Recipient> = paged.iter().map(|p| self.s.recipient(p)).collect();
                let step = if kind == NoticeKind::Acknowledged {
                    t.acknowledged.as_ref()
                } else {
                    t.resolved.as_ref()
                };
                let (by, note) =
                    step.map_or_else(Default::default, |s| (s.by.clone(), s.note.clone()));
                let step = Step {
                    by,
                    at_ms: ev.at_ms,
                    note,
                };
                let msg = self.follow_up(kind, t, &info, to, &step);
                let mut out = Vec::new();
                for ch in &rule.channels {
                    let n = follow_up_notice(t.id, t.cycle_start_ms(), kind, ch, &msg, now_ms);
                    out.extend(self.emit(n, now_ms));
                }
                out
            }
            TicketEventKind::Closed => {
                self.tracks.remove(&t.id);
                Vec::new()
            }
            // An arrival alone does not stop escalation: acknowledging does.
            TicketEventKind::Recovered | TicketEventKind::Arrived => {
                if let Some(track) = self.tracks.get_mut(&t.id) {
                    track.ticket = t.clone();
                }
                Vec::new()
            }
        }
    }

    /// Deferred pages, escalations and digests now due.
    pub fn tick(&mut self, now_ms: UnixMs) -> Vec<Notice> {
        let mut out = Vec::new();
        let due: Vec<u64> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.next_ms.is_some_and(|n| n <= now_ms))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(mut track) = self.tracks.remove(&id) else {
                continue;
            };
            if track.ticket.state == TicketState::Open {
                out.extend(self.page(&mut track, now_ms));
            } else {
                track.next_ms = None;
            }
            self.tracks.insert(id, track);
        }
        let channels: Vec<String> = self.held.keys().cloned().collect();
        for ch in channels {
            let due = self.held.get(&ch).is_some_and(|h| {
                !h.items.is_empty() && h.since_ms + self.s.digest_delay_ms <= now_ms
            });
            if due && self.room(&ch, now_ms) > 0 {
                let h = self.held.remove(&ch).unwrap_or_default();
                out.push(self.digest(&ch, h, now_ms));
            }
        }
        out
    }

    /// Who is on duty in the first tier at `now_ms` (the handover digest's
    /// recipient), as a message names them.
    pub fn on_duty(&self, now_ms: UnixMs) -> Vec<Recipient> {
        self.roster
            .on_call(0, now_ms)
            .map(|d| vec![self.s.recipient(&d.person)])
            .unwrap_or_default()
    }

    /// The earliest time [`Policy::tick`] has something to do.
    pub fn next_due(&self) -> Option<UnixMs> {
        let tracks = self.tracks.values().filter_map(|t| t.next_ms);
        // A digest waiting for room in the rate limit is retried at each tick.
        let digests = self
            .held
            .values()
            .filter(|h| !h.items.is_empty())
            .map(|h| h.since_ms + self.s.digest_delay_ms);
        tracks.chain(digests).min()
    }

    /// How many more messages the channel may send this minute.
    fn room(&mut self, ch: &str, now_ms: UnixMs) -> usize {
        let max = self
            .s
            .channels
            .get(ch)
            .map_or(usize::MAX, |c| c.max_per_minute);
        let q = self.sent.entry(ch.to_owned()).or_default();
        while q.front().is_some_and(|t| now_ms - t >= MINUTE_MS) {
            q.pop_front();
        }
        max.saturating_sub(q.len())
    }

    /// Sends a notice or holds it for the digest.
    fn emit(&mut self, mut n: Notice, now_ms: UnixMs) -> Vec<Notice> {
        let room = self.room(&n.channel, now_ms);
        let recent = self.sent.get(&n.channel).map_or(0, VecDeque::len);
        let holding = self
            .held
            .get(&n.channel)
            .is_some_and(|h| !h.items.is_empty());
        if room > 0 && recent < self.s.digest_after && !holding {
            self.sent
                .entry(n.channel.clone())
                .or_default()
                .push_back(now_ms);
            return vec![n];
        }
        n.held = true;
        let h = self.held.entry(n.channel.clone()).or_default();
        if h.items.is_empty() {
            h.since_ms = now_ms;
        }
        h.items.push(n.clone());
        vec![n]
    }

    /// Pages the next tier of a track.
    fn page(&mut self, track: &mut Track, now_ms: UnixMs) -> Vec<Notice> {
        let tiers = self.roster.tiers().len();
        if track.tier >= tiers {
            track.next_ms = None;
            return Vec::new();
        }
        let k = track.tier;
        let rule = self.s.rule(track.ticket.severity).clone();
        let duty = self.roster.on_call(k, now_ms);
        let mut to = Vec::new();
        if let Some(d) = &duty {
            to.push(self.s.recipient(&d.person));
            if !track.paged.contains(&d.person) {
                track.paged.push(d.person.clone());
            }
        }
        let tier_name = self.roster.tiers()[k].name.clone();
        let kind = if k == 0 {
            NoticeKind::Page
        } else {
            NoticeKind::Escalation
        };
        let msg = self.page_message(kind, k + 1, &tier_name, &track.ticket, &track.info, to);
        track.tier = k + 1;
        track.next_ms = (k + 1 < tiers).then_some(now_ms + rule.ack_within_ms);
        self.last_paged.insert(
            (track.ticket.device.clone(), track.ticket.kind.clone()),
            now_ms,
        );
        let t = &track.ticket;
        let mut out = Vec::new();
        for ch in &rule.channels {
            let n = Notice {
                key: format!(
                    "{}tier{}/{ch}",
                    cycle_prefix(t.id, t.cycle_start_ms()),
                    k + 1
                ),
                ticket: Some(t.id),
                kind,
                tier: u8::try_from(k + 1).unwrap_or(u8::MAX),
                channel: ch.clone(),
                message: msg.clone(),
                at_ms: now_ms,
                held: false,
                covers: Vec::new(),
            };
            out.extend(self.emit(n, now_ms));
        }
        out
    }

    fn zh(&self) -> bool {
        self.s.lang == Language::Zh
    }

    fn page_message(
        &self,
        kind: NoticeKind,
        tier: usize,
        tier_name: &str,
        t: &Ticket,
        info: &DeviceInfo,
        to: Vec<Recipient>,
    ) -> Message {
        let tz = self.roster.tz();
        let zh = self.zh();
        let urgent = t.severity == Severity::Critical;
        let head = match (zh, kind, urgent) {
            (true, NoticeKind::Escalation, _) => format!("【升级·第{tier}级 {tier_name}】"),
            (true, _, true) => "【紧急告警】".to_owned(),
            (true, _, false) => "【故障】".to_owned(),
            (false, NoticeKind::Escalation, _) => format!("[Escalation, tier {tier} {tier_name}] "),
            (false, _, true) => "[CRITICAL] ".to_owned(),
            (false, _, false) => "[Fault] ".to_owned(),
        };
        let title = format!("{head}{} {}", info.name, t.summary);
        let names: Vec<String> = to.iter().map(|r| r.name.clone()).collect();
        let sev = match (zh, t.severity) {
            (true, Severity::Critical) => "紧急",
            (true, Severity::Ordinary) => "一般",
            (false, s) => s.as_str(),
        };
        let mut lines = Vec::new();
        let mut line = |zh_l: &str, en_l: &str, v: String| {
            lines.push(if zh {
                format!("{zh_l}：{v}")
            } else {
                format!("{en_l}: {v}")
            });
        };
        line("设备", "Device", format!("{} ({})", info.name, t.device));
        line(
            "类别",
            "Class",
            class_label(t.class, self.s.lang).to_owned(),
        );
        line(
            "位置",
            "Location",
            info.location.clone().unwrap_or_else(|| "-".to_owned()),
        );
        line("故障", "Fault", t.summary.clone());
        line("时间", "Time", local_text(tz, t.cycle_start_ms()));
        line("工单", "Ticket", format!("#{} ({sev})", t.id));
        line("时限", "Deadline", local_text(tz, t.deadline_ms));
        line(
            if kind == NoticeKind::Escalation {
                "未接单，升级至"
            } else {
                "值班"
            },
            if kind == NoticeKind::Escalation {
                "Not acknowledged, now paging"
            } else {
                "On duty"
            },
            if names.is_empty() {
                "-".to_owned()
            } else {
                names.join(", ")
            },
        );
        Message {
            title,
            lines,
            link: self.s.link(t.id),
            link_text: if zh { "查看工单" } else { "Open ticket" }.to_owned(),
            to,
            urgent,
        }
    }

    /// A follow-up: `step` says who took or resolved the ticket, when.
    fn follow_up(
        &self,
        kind: NoticeKind,
        t: &Ticket,
        info: &DeviceInfo,
        to: Vec<Recipient>,
        step: &Step,
    ) -> Message {
        let zh = self.zh();
        let Step { by, at_ms, note } = step;
        let title = match (zh, kind) {
            (true, NoticeKind::Acknowledged) => {
                format!("【已接单】#{} {} {}", t.id, info.name, t.summary)
            }
            (true, _) => format!("【已修复】#{} {} {}", t.id, info.name, t.summary),
            (false, NoticeKind::Acknowledged) => {
                format!("[Acknowledged] #{} {} {}", t.id, info.name, t.summary)
            }
            (false, _) => format!("[Resolved] #{} {} {}", t.id, info.name, t.summary),
        };
        let time = local_text(self.roster.tz(), *at_ms);
        let mut lines = vec![if zh {
            format!("处理人：{by}，时间：{time}")
        } else {
            format!("By {by} at {time}")
        }];
        if !note.is_empty() {
            lines.push(if zh {
                format!("说明：{note}")
            } else {
                format!("Note: {note}")
            });
        }
        Message {
            title,
            lines,
            link: self.s.link(t.id),
            link_text: if zh { "查看工单" } else { "Open ticket" }.to_owned(),
            to,
            urgent: false,
        }
    }

    fn digest(&mut self, ch: &str, h: Held, now_ms: UnixMs) -> Notice {
        let zh = self.zh();
        let n = h.items.len();
        let mut to: Vec<Recipient> = Vec::new();
        let mut seen = BTreeSet::new();
        for i in &h.items {
            for r in &i.message.to {
                if seen.insert(r.id.clone()) {
                    to.push(r.clone());
                }
            }
        }
        let mut lines: Vec<String> = h
            .items
            .iter()
            .take(DIGEST_LINES)
            .map(|i| i.message.title.clone())
            .collect();
        if n > DIGEST_LINES {
            lines.push(if zh {
                format!("……另有 {} 条，详见看板", n - DIGEST_LINES)
            } else {
                format!("… and {} more on the dashboard", n - DIGEST_LINES)
            });
        }
        let urgent = h.items.iter().any(|i| i.message.urgent);
        let title = if zh {
            format!(
                "【告警汇总】{} 条告警（{} 起）",
                n,
                local_text(self.roster.tz(), h.since_ms)
            )
        } else {
            format!(
                "[Digest] {n} alerts since {}",
                local_text(self.roster.tz(), h.since_ms)
            )
        };
        self.sent
            .entry(ch.to_owned())
            .or_default()
            .push_back(now_ms);
        Notice {
            key: format!(
                "digest/{ch}/{}/{}",
                h.since_ms,
                h.items.first().map_or("", |i| i.key.as_str())
            ),
            ticket: None,
            kind: NoticeKind::Digest,
            tier: 0,
            channel: ch.to_owned(),
            message: Message {
                title,
                lines,
                link: None,
                link_text: String::new(),
                to,
                urgent,
            },
            at_ms: now_ms,
            held: false,
            covers: h.items.iter().map(|i| i.key.clone()).collect(),
        }
    }
}

/// The start of every key of a ticket's cycle (`t12/c1793671200000/`).
fn cycle_prefix(ticket: u64, cycle_ms: UnixMs) -> String {
    format!("t{ticket}/c{cycle_ms}/")
}

/// The key of a follow-up: one per ticket, cycle, kind and channel.
/// The follow-up `kind` of ticket `ticket`'s cycle starting at `cycle_ms`
/// on `channel`: not a page (tier 0), sent at once.
fn follow_up_notice(
    ticket: u64,
    cycle_ms: UnixMs,
    kind: NoticeKind,
    channel: &str,
    message: &Message,
    now_ms: UnixMs,
) -> Notice {
    Notice {
        key: follow_up_key(ticket, cycle_ms, kind, channel),
        ticket: Some(ticket),
        kind,
        tier: 0,
        channel: channel.to_owned(),
        message: message.clone(),
        at_ms: now_ms,
        held: false,
        covers: Vec::new(),
    }
}

fn follow_up_key(ticket: u64, cycle_ms: UnixMs, kind: NoticeKind, channel: &str) -> String {
    format!(
        "{}{}/{channel}",
        cycle_prefix(ticket, cycle_ms),
        kind.as_str()
    )
}

/// Everyone the pages name, in the order first paged.
fn paged_in(pages: &[&Notice]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in pages.iter().flat_map(|p| &p.message.to) {
        if !out.contains(&r.id) {
            out.push(r.id.clone());
        }
    }
    out
}
