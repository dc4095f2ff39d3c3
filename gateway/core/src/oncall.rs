//! The on-call rotation (issue #6): who is on duty in each tier, when.
//!
//! Sans-IO, time passed in. A [`Roster`] is built from `[alerts.rotation]`,
//! `[[alerts.override]]` and `[[alerts.away]]`:
//!
//! - **Rotation.** Time is cut into slots at the handover time (local, in
//!   the site's zone) every day or every week, counted from the rotation's
//!   `start` date: slot 0 begins on `start` at `handover`, slot 1 a day (or
//!   a week) later, slot −1 before it. In slot `k` each tier's person
//!   `people[k mod n]` is on duty. A handover at 09:00 means the night
//!   belongs to the previous day's person: 23:59 and 00:01 are in the same
//!   slot. A handover skipped by a DST change happens an hour later.
//! - **Overrides** (holiday cover, swaps) put another person on duty in a
//!   tier from one local time to another; the latest defined wins when two
//!   overlap.
//! - **Away**: a person away is never on duty. Whoever would be, by rotation
//!   or override, leaves a **gap** unless an override covers it.
//!   [`check_rotation`] rejects a configuration with a gap (coverage must be
//!   continuous), so at run time [`Roster::on_call`] only returns `None` for
//!   a tier that does not exist.

use chrono::{DateTime, Datelike as _, NaiveDate, NaiveTime, TimeDelta};
use chrono_tz::Tz;

use crate::config::{AlertsConfig, ConfigError, Every};
use crate::maintenance::{local_to_ms, parse_local};
use crate::state::UnixMs;

/// A tier of the escalation chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tier {
    /// Name shown to people.
    pub name: String,
    /// Person ids taking turns.
    pub people: Vec<String>,
}

/// A dated override, resolved to instants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    /// Tier index, 0-based.
    pub tier: usize,
    /// Who is on duty instead.
    pub person: String,
    /// Start (inclusive).
    pub from_ms: UnixMs,
    /// End (exclusive).
    pub to_ms: UnixMs,
    /// Why.
    pub note: String,
}

/// A person away, resolved to instants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Away {
    /// Person id.
    pub person: String,
    /// Start (inclusive).
    pub from_ms: UnixMs,
    /// End (exclusive).
    pub to_ms: UnixMs,
}

/// Why someone is (or nobody is) on duty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The regular rotation.
    Rotation,
    /// A dated override (with its note).
    Override(String),
}

/// Who is on duty in a tier at an instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duty {
    /// Person id.
    pub person: String,
    /// Rotation or override.
    pub source: Source,
}

/// A stretch of time with one duty (or none: a gap).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shift {
    /// Start.
    pub from_ms: UnixMs,
    /// End (exclusive).
    pub to_ms: UnixMs,
    /// Who; `None` is a gap.
    pub duty: Option<Duty>,
    /// Without overrides and absences, who the rotation had on duty.
    pub scheduled: Option<String>,
}

/// The rotation with its overrides and absences; see the module doc.
#[derive(Clone, Debug)]
pub struct Roster {
    tz: Tz,
    every: Every,
    handover: NaiveTime,
    start: NaiveDate,
    tiers: Vec<Tier>,
    overrides: Vec<Override>,
    away: Vec<Away>,
}

/// `"2026-12-24 09:00"` in the zone.
pub fn local_text(tz: Tz, ms: UnixMs) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// Longest span an override or absence may have.
const MAX_SPAN_MS: i64 = 366 * 24 * 3600 * 1000;

impl Roster {
    /// Builds the roster; the errors are those of [`check_rotation`]
    /// without the coverage check.
    pub fn from_config(cfg: &AlertsConfig, tz: Tz) -> Result<Roster, Vec<ConfigError>> {
        let mut errs = Vec::new();
        let r = &cfg.rotation;
        let start = match NaiveDate::parse_from_str(r.start.trim(), "%Y-%m-%d") {
            Ok(d) => d,
            Err(_) => {
                errs.push(ConfigError::new(
                    "alerts.rotation.start",
                    format!(
                        "{:?} is not a date; write \"YYYY-MM-DD\", e.g. \"2026-11-02\"",
                        r.start
                    ),
                ));
                NaiveDate::MIN
            }
        };
        let known = |p: &str| cfg.people.iter().any(|x| x.id == p);
        if r.tiers.is_empty() {
            errs.push(ConfigError::new(
                "alerts.rotation",
                "has no [[alerts.rotation.tier]]: nobody can be paged; add at least the engineer on duty",
            ));
        }
        for (i, t) in r.tiers.iter().enumerate() {
            let path = format!("alerts.rotation.tier[{i}]");
            if t.people.is_empty() {
                errs.push(ConfigError::new(
                    format!("{path}.people"),
                    format!(
                        "tier {} ({}) has nobody: a gap in coverage at every moment; list at least one person",
                        i + 1,
                        t.name
                    ),
                ));
            }
            for (j, p) in t.people.iter().enumerate() {
                if !known(p) {
                    errs.push(ConfigError::new(
                        format!("{path}.people[{j}]"),
                        format!("unknown person {p:?}; define it as [[alerts.person]]"),
                    ));
                }
            }
        }
        let span = |path: &str, from: &str, to: &str, errs: &mut Vec<ConfigError>| {
            let f = parse_local(from, tz)
                .map_err(|m| {
                    errs.push(ConfigError::new(
                        format!("{path}.from"),
                        format!("{from:?} {m}"),
                    ))
                })
                .ok();
            let t = parse_local(to, tz)
                .map_err(|m| {
                    errs.push(ConfigError::new(
                        format!("{path}.to"),
                        format!("{to:?} {m}"),
                    ))
                })
                .ok();
            let (f, t) = (f?, t?);
            if t <= f {
                errs.push(ConfigError::new(
                    path.to_owned(),
                    format!("ends ({to}) before it starts ({from})"),
                ));
                return None;
            }
            if t - f > MAX_SPAN_MS {
                errs.push(ConfigError::new(
                    path.to_owned(),
                    "is longer than a year; split it or change the rotation",
                ));
                return None;
            }
            Some((f, t))
        };
        let mut overrides = Vec::new();
        for (i, o) in cfg.overrides.iter().enumerate() {
            let path = format!("alerts.override[{i}]");
            if o.tier == 0 || usize::from(o.tier) > r.tiers.len() {
                errs.push(ConfigError::new(
                    format!("{path}.tier"),
                    format!(
                        "tier {} does not exist; tiers are numbered 1 to {}",
                        o.tier,
                        r.tiers.len()
                    ),
                ));
            }
            if !known(&o.person) {
                errs.push(ConfigError::new(
                    format!("{path}.person"),
                    format!(
                        "unknown person {:?}; define it as [[alerts.person]]",
                        o.person
                    ),
                ));
            }
            if let Some((f, t)) = span(&path, &o.from, &o.to, &mut errs) {
                overrides.push(Override {
                    tier: usize::from(o.tier.max(1)) - 1,
                    person: o.person.clone(),
                    from_ms: f,
                    to_ms: t,
                    note: o.note.clone(),
                });
            }
        }
        let mut away = Vec::new();
        for (i, a) in cfg.away.iter().enumerate() {
            let path = format!("alerts.away[{i}]");
            if !known(&a.person) {
                errs.push(ConfigError::new(
                    format!("{path}.person"),
                    format!(
                        "unknown person {:?}; define it as [[alerts.person]]",
                        a.person
                    ),
                ));
            }
            if let Some((f, t)) = span(&path, &a.from, &a.to, &mut errs) {
                away.push(Away {
                    person: a.person.clone(),
                    from_ms: f,
                    to_ms: t,
                });
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Roster {
            tz,
            every: r.every,
            handover: r.handover.0,
            start,
            tiers: r
                .tiers
                .iter()
                .map(|t| Tier {
                    name: t.name.clone(),
                    people: t.people.clone(),
                })
                .collect(),
            overrides,
            away,
        })
    }

    /// The tiers, in order.
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// The site's zone.
    pub fn tz(&self) -> Tz {
        self.tz
    }

    fn slot_days(&self) -> i64 {
        match self.every {
            Every::Day => 1,
            Every::Week => 7,
        }
    }

    /// The slot containing `at_ms`.
    fn slot(&self, at_ms: UnixMs) -> i64 {
        let Some(utc) = DateTime::from_timestamp_millis(at_ms) else {
            return 0;
        };
        let local = utc.with_timezone(&self.tz).naive_local();
        let mut day = local.date();
        // Before today's handover (or a handover an hour late on a DST day):
        // still yesterday's slot.
        if at_ms < self.handover_on(day) {
            day = day.pred_opt().unwrap_or(day);
        }
        let days = (day - self.start).num_days();
        days.div_euclid(self.slot_days())
    }

    /// The handover instant on a local date (an hour later when skipped).
    fn handover_on(&self, day: NaiveDate) -> UnixMs {
        let local = day.and_time(self.handover);
        local_to_ms(self.tz, local)
            .or_else(|| local_to_ms(self.tz, local + TimeDelta::hours(1)))
            .unwrap_or(i64::MAX)
    }

    /// Start of slot `k`.
    fn slot_start(&self, k: i64) -> UnixMs {
        let day = self
            .start
            .checked_add_signed(TimeDelta::days(k.saturating_mul(self.slot_days())))
            .unwrap_or(self.start);
        self.handover_on(day)
    }

    /// Who the rotation alone has on duty in tier `tier` (0-based).
    pub fn scheduled(&self, tier: usize, at_ms: UnixMs) -> Option<&str> {
        let t = self.tiers.get(tier)?;
        let n = i64::try_from(t.people.len()).ok().filter(|n| *n > 0)?;
        let i = usize::try_from(self.slot(at_ms).rem_euclid(n)).ok()?;
        t.people.get(i).map(String::as_str)
    }

    fn is_away(&self, person: &str, at_ms: UnixMs) -> bool {
        self.away
            .iter()
            .any(|a| a.person == person && a.from_ms <= at_ms && at_ms < a.to_ms)
    }

    /// Who is on duty in tier `tier` (0-based) at `at_ms`: the latest
    /// override covering it, else the rotation; `None` when that person is
    /// away (a gap) or the tier does not exist.
    pub fn on_call(&self, tier: usize, at_ms: UnixMs) -> Option<Duty> {
        let duty = match self
            .overrides
            .iter()
            .rev()
            .find(|o| o.tier == tier && o.from_ms <= at_ms && at_ms < o.to_ms)
        {
            Some(o) => Duty {
                person: o.person.clone(),
                source: Source::Override(o.note.clone()),
            },
            None => Duty {
                person: self.scheduled(tier, at_ms)?.to_owned(),
                source: Source::Rotation,
            },
        };
        (!self.is_away(&duty.person, at_ms)).then_some(duty)
    }

    /// The shifts of tier `tier` between two instants: cut at handovers and
    /// at the edges of overrides and absences, joined when the duty does
    /// not change.
    pub fn shifts(&self, tier: usize, from_ms: UnixMs, to_ms: UnixMs) -> Vec<Shift> {
        let mut cuts = vec![from_ms, to_ms];
        let mut k = self.slot(from_ms) + 1;
        loop {
            let s = self.slot_start(k);
            if s >= to_ms || s == i64::MAX {
                break;
            }
            if s > from_ms {
                cuts.push(s);
            }
            k += 1;
        }
        for o in self.overrides.iter().filter(|o| o.tier == tier) {
            cuts.extend([o.from_ms, o.to_ms]);
        }
        for a in &self.away {
            cuts.extend([a.from_ms, a.to_ms]);
        }
        cuts.retain(|c| (from_ms..=to_ms).contains(c));
        cuts.sort_unstable();
        cuts.dedup();
        let mut out: Vec<Shift> = Vec::new();
        for w in cuts.windows(2) {
            let (a, b) = (w[0], w[1]);
            let duty = self.on_call(tier, a);
            let scheduled = self.scheduled(tier, a).map(str::to_owned);
            match out.last_mut() {
                Some(last) if last.duty == duty && last.scheduled == scheduled => last.to_ms = b,
                _ => out.push(Shift {
                    from_ms: a,
                    to_ms: b,
                    duty,
                    scheduled,
                }),
            }
        }
        out
    }

    /// Stretches of tier `tier` with nobody on duty between two instants.
    pub fn gaps(&self, tier: usize, from_ms: UnixMs, to_ms: UnixMs) -> Vec<Shift> {
        self.shifts(tier, from_ms, to_ms)
            .into_iter()
            .filter(|s| s.duty.is_none())
            .collect()
    }

    /// The local weekday and date of an instant (for listings).
    pub fn local_day(&self, at_ms: UnixMs) -> String {
        DateTime::from_timestamp_millis(at_ms)
            .map(|t| {
                let l = t.with_timezone(&self.tz);
                format!("{} {}", l.format("%Y-%m-%d"), l.weekday())
            })
            .unwrap_or_default()
    }
}

/// Every problem of the rotation: shape (see [`Roster::from_config`]) and
/// coverage. A coverage gap can only come from an absence (or a tier with
/// nobody, reported by the shape check), so each absence's span is checked
/// in every tier.
pub fn check_rotation(cfg: &AlertsConfig, tz: Tz) -> Vec<ConfigError> {
    let roster = match Roster::from_config(cfg, tz) {
        Ok(r) => r,
        Err(errs) => return errs,
    };
    let mut errs = Vec::new();
    for (i, a) in roster.away.iter().enumerate() {
        for (t, tier) in roster.tiers.iter().enumerate() {
            for g in roster.gaps(t, a.from_ms, a.to_ms) {
                let who = g.scheduled.as_deref().unwrap_or("?");
                errs.push(ConfigError::new(
                    format!("alerts.away[{i}]"),
                    format!(
                        "gap in coverage: tier {} ({}) has nobody on duty from {} to {} because {who} is away; add an [[alerts.override]] with tier = {} for that time",
                        t + 1,
                        tier.name,
                        local_text(tz, g.from_ms),
                        local_text(tz, g.to_ms),
                        t + 1
                    ),
                ));
            }
        }
    }
    errs
}

#[cfg(test)]
pub(crate) mod tests;
