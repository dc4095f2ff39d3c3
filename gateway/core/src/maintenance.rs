//! Planned maintenance windows: one-off or weekly, per device or class, in
//! the site's time zone (issue #3).
//!
//! The service standard asks for maintenance "in the evening where possible"
//! and such planned work must not count as a fault. A [`Window`] says when a
//! device (or every device of a class) is under planned maintenance; the
//! engine asks [`active_window`] on every tick and tells health
//! (`Health::set_maintenance`), which puts the device in `Maintenance`
//! (excluded from availability) and keeps tickets from opening.
//!
//! # Schedules
//!
//! - [`Schedule::Once`]: `[from_ms, to_ms)` in absolute time. Written in
//!   configuration as local times of the site (`"2026-12-01 20:00"`); a
//!   local time that does not exist (skipped by a DST change) is an error,
//!   an ambiguous one (repeated by a DST change) takes its earlier instant.
//! - [`Schedule::Weekly`]: on each listed weekday, from `start` to `end` in
//!   local wall-clock time. `end < start` crosses midnight: `"Sat
//!   23:00-02:00"` runs from Saturday 23:00 to Sunday 02:00. Wall-clock time
//!   means that on a DST change day the window is an hour shorter or longer;
//!   Asia/Shanghai has no DST.
//!
//! Written `"Tue 20:00-22:00"` or `"Mon,Thu 20:00-22:00"`; days are English
//! (`Mon`…`Sun`, full names too, any case) or Chinese (`周一`…`周日`,
//! `星期一`…`星期日`).
//!
//! # Invariants ([`check_windows`])
//!
//! Ids are unique; a one-off window ends after it starts; a weekly window has
//! at least one day and `start != end`; two windows of the same target (the
//! same device, or the same class) of the same schedule kind never overlap.
//! A one-off window overlapping a weekly one is allowed (extra work during a
//! routine slot harms nothing), and so is a device window inside a class
//! window: [`active_window`] returns the first matching window in list order.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDateTime, NaiveTime, TimeZone, Timelike, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::config::MaintenanceWindowConfig;
use crate::model::DeviceClass;
use crate::state::UnixMs;

#[cfg(test)]
mod tests;

/// What a maintenance window covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// One device, by id.
    Device(String),
    /// Every device of a class.
    Class(DeviceClass),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Device(d) => write!(f, "device {d}"),
            Target::Class(c) => write!(f, "class {c}"),
        }
    }
}

/// When a maintenance window is active.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Once, `[from_ms, to_ms)`.
    Once {
        /// Inclusive start.
        from_ms: UnixMs,
        /// Exclusive end.
        to_ms: UnixMs,
    },
    /// Every week on `days`, from `start` to `end` local time (crossing
    /// midnight when `end < start`).
    Weekly {
        /// The days the window starts on.
        days: Vec<Weekday>,
        /// Local start time (inclusive).
        start: NaiveTime,
        /// Local end time (exclusive); before `start` means the next day.
        end: NaiveTime,
    },
}

/// A planned maintenance window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Unique id, shown in the reason `maintenance:<id>`.
    pub id: String,
    /// What it covers.
    pub target: Target,
    /// When.
    pub schedule: Schedule,
    /// Free text.
    pub note: String,
}

/// A maintenance window that cannot be built or does not fit with others.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MaintenanceError {
    /// The id is empty or has characters other than `[a-z0-9_-]`.
    #[error("window id {0:?} is invalid; use lowercase letters, digits, '-' and '_'")]
    BadId(String),
    /// Neither or both of `device` and `class`.
    #[error("window {id:?}: give exactly one of device or class")]
    Target {
        /// Window id.
        id: String,
    },
    /// Neither or both of `from`/`to` and `weekly`, or only one of `from`/`to`.
    #[error("window {id:?}: give either from and to (one-off) or weekly (recurring)")]
    Schedule {
        /// Window id.
        id: String,
    },
    /// A local date-time that does not parse or does not exist in the zone.
    #[error("window {id:?}: {field} {value:?}: {reason}")]
    Time {
        /// Window id.
        id: String,
        /// `from`, `to` or `weekly`.
        field: &'static str,
        /// What was written.
        value: String,
        /// Why it is wrong and what to write.
        reason: String,
    },
    /// A one-off window whose end is not after its start.
    #[error("window {id:?} ends ({to}) before or when it starts ({from}); swap from and to")]
    Inverted {
        /// Window id.
        id: String,
        /// Start, as written (or in UTC when built elsewhere).
        from: String,
        /// End, as written (or in UTC when built elsewhere).
        to: String,
    },
    /// A weekly window with no day.
    #[error("window {id:?} lists no day of the week")]
    NoDays {
        /// Window id.
        id: String,
    },
    /// A weekly window whose start equals its end.
    #[error("window {id:?} starts and ends at the same time; give an end after the start")]
    Empty {
        /// Window id.
        id: String,
    },
    /// Two windows with one id.
    #[error("two windows have the id {id:?}; give each its own")]
    DuplicateId {
        /// The id.
        id: String,
    },
    /// Two windows of the same target and kind overlap.
    #[error("windows {first:?} and {second:?} of {target} overlap; merge them or move one")]
    Overlap {
        /// The earlier window in the list.
        first: String,
        /// The later window in the list.
        second: String,
        /// Their common target.
        target: String,
    },
}

/// Parses a day name (`Mon`, `monday`, `周一`, `星期一`).
fn parse_day(s: &str) -> Option<Weekday> {
    let s = s.trim();
    let lower = s.to_ascii_lowercase();
    let english = [
        ("mon", "monday", Weekday::Mon),
        ("tue", "tuesday", Weekday::Tue),
        ("wed", "wednesday", Weekday::Wed),
        ("thu", "thursday", Weekday::Thu),
        ("fri", "friday", Weekday::Fri),
        ("sat", "saturday", Weekday::Sat),
        ("sun", "sunday", Weekday::Sun),
    ];
    for (short, long, day) in english {
        if lower == short || lower == long {
            return Some(day);
        }
    }
    let rest = s.strip_prefix("周").or_else(|| s.strip_prefix("星期"))?;
    Some(match rest {
        "一" => Weekday::Mon,
        "二" => Weekday::Tue,
        "三" => Weekday::Wed,
        "四" => Weekday::Thu,
        "五" => Weekday::Fri,
        "六" => Weekday::Sat,
        "日" | "天" => Weekday::Sun,
        _ => return None,
    })
}

fn parse_clock(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M").ok()
}

/// Parses a weekly schedule, `"Tue 20:00-22:00"` or `"Mon,Thu 20:00-22:00"`,
/// into days, start and end. The error says what to write.
pub fn parse_weekly(s: &str) -> Result<(Vec<Weekday>, NaiveTime, NaiveTime), String> {
    const HELP: &str =
        "write days and local times, e.g. \"Tue 20:00-22:00\" or \"Mon,Thu 20:00-22:00\"";
    let (days, times) = s
        .trim()
        .rsplit_once(char::is_whitespace)
        .ok_or_else(|| HELP.to_owned())?;
    let mut out = Vec::new();
    for d in days.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let day = parse_day(d).ok_or_else(|| format!("{d:?} is not a day of the week; {HELP}"))?;
        if !out.contains(&day) {
            out.push(day);
        }
    }
    let (start, end) = times.split_once('-').ok_or_else(|| HELP.to_owned())?;
    let start = parse_clock(start).ok_or_else(|| format!("{start:?} is not a time; {HELP}"))?;
    let end = parse_clock(end).ok_or_else(|| format!("{end:?} is not a time; {HELP}"))?;
    Ok((out, start, end))
}

/// Converts a local date-time of the zone to Unix ms: an ambiguous time
/// (DST fold) takes the earlier instant; a skipped one (DST gap) is `None`.
pub fn local_to_ms(tz: Tz, local: NaiveDateTime) -> Option<UnixMs> {
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.timestamp_millis())
}

/// Parses a local date-time of the site, `"2026-12-01 20:00"` (seconds and a
/// `T` separator accepted), into Unix ms.
pub fn parse_local(s: &str, tz: Tz) -> Result<UnixMs, String> {
    let s = s.trim();
    let naive = [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .ok_or_else(|| {
        "is not a local date and time; write \"YYYY-MM-DD HH:MM\", e.g. \"2026-12-01 20:00\""
            .to_owned()
    })?;
    local_to_ms(tz, naive).ok_or_else(|| {
        format!("does not exist in time zone {tz} (skipped by a daylight-saving change)")
    })
}

fn utc_text(ms: UnixMs) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| format!("{ms} ms"))
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Window {
    /// Builds a window from its configuration form (also used by the CLI:
    /// `--device pump-1 --weekly "Tue 20:00-22:00"` or `--from "2026-12-01
    /// 20:00" --to "…"`), with local times read in `tz`. Checks the window on
    /// its own (id, target, schedule, inverted, empty); see [`check_windows`]
    /// for checks across windows.
    pub fn from_config(c: &MaintenanceWindowConfig, tz: Tz) -> Result<Window, MaintenanceError> {
        if !is_id(&c.id) {
            return Err(MaintenanceError::BadId(c.id.clone()));
        }
        let id = c.id.clone();
        let target = match (&c.device, c.class) {
            (Some(d), None) if !d.trim().is_empty() => Target::Device(d.clone()),
            (None, Some(class)) => Target::Class(class),
            _ => return Err(MaintenanceError::Target { id }),
        };
        let time_err = |field: &'static str, value: &str, reason: String| MaintenanceError::Time {
            id: c.id.clone(),
            field,
            value: value.to_owned(),
            reason,
        };
        let schedule = match (&c.from, &c.to, &c.weekly) {
            (Some(from), Some(to), None) => {
                let from_ms = parse_local(from, tz).map_err(|r| time_err("from", from, r))?;
                let to_ms = parse_local(to, tz).map_err(|r| time_err("to", to, r))?;
                Schedule::Once { from_ms, to_ms }
            }
            (None, None, Some(weekly)) => {
                let (days, start, end) =
                    parse_weekly(weekly).map_err(|r| time_err("weekly", weekly, r))?;
                Schedule::Weekly { days, start, end }
            }
            _ => return Err(MaintenanceError::Schedule { id }),
        };
        let w = Window {
            id,
            target,
            schedule,
            note: c.note.clone(),
        };
        match w.own_problem() {
            // Name the times as the person wrote them.
            Some(MaintenanceError::Inverted { id, .. }) => Err(MaintenanceError::Inverted {
                id,
                from: c.from.clone().unwrap_or_default(),
                to: c.to.clone().unwrap_or_default(),
            }),
            Some(e) => Err(e),
            None => Ok(w),
        }
    }

    /// The problem of this window alone, if any (inverted, no day, empty).
    fn own_problem(&self) -> Option<MaintenanceError> {
        let id = self.id.clone();
        match &self.schedule {
            Schedule::Once { from_ms, to_ms } if to_ms <= from_ms => {
                Some(MaintenanceError::Inverted {
                    id,
                    from: utc_text(*from_ms),
                    to: utc_text(*to_ms),
                })
            }
            Schedule::Weekly { days, .. } if days.is_empty() => {
                Some(MaintenanceError::NoDays { id })
            }
            Schedule::Weekly { start, end, .. } if start == end => {
                Some(MaintenanceError::Empty { id })
            }
            _ => None,
        }
    }

    /// Whether the window covers this device (by id or by its class).
    pub fn applies_to(&self, device: &str, class: DeviceClass) -> bool {
        match &self.target {
            Target::Device(d) => d == device,
            Target::Class(c) => *c == class,
        }
    }

    /// Whether the window is active at `at_ms` (local times read in `tz`).
    pub fn active_at(&self, tz: Tz, at_ms: UnixMs) -> bool {
        match &self.schedule {
            Schedule::Once { from_ms, to_ms } => *from_ms <= at_ms && at_ms < *to_ms,
            Schedule::Weekly { days, start, end } => {
                let Some(utc) = DateTime::from_timestamp_millis(at_ms) else {
                    return false;
                };
                let local = utc.with_timezone(&tz);
                let (day, time) = (local.weekday(), local.time());
                if start < end {
                    days.contains(&day) && *start <= time && time < *end
                } else {
                    (days.contains(&day) && time >= *start)
                        || (days.contains(&day.pred()) && time < *end)
                }
            }
        }
    }

    /// Stretches of the week covered by a weekly window, as minutes since
    /// Monday 00:00 in `[0, 10080)`; empty for a one-off window.
    fn week_minutes(&self) -> Vec<(u32, u32)> {
        const WEEK: u32 = 7 * 24 * 60;
        let Schedule::Weekly { days, start, end } = &self.schedule else {
            return Vec::new();
        };
        let minute = |t: &NaiveTime| t.hour() * 60 + t.minute();
        let (s, e) = (minute(start), minute(end));
        let len = if e > s { e - s } else { e + 24 * 60 - s };
        let mut out = Vec::new();
        for d in days {
            let from = d.num_days_from_monday() * 24 * 60 + s;
            let to = from + len;
            if to <= WEEK {
                out.push((from, to));
            } else {
                out.push((from, WEEK));
                out.push((0, to - WEEK));
            }
        }
        out
    }

    /// Whether two windows of the same kind overlap (one-off against weekly
    /// is never reported).
    fn overlaps(&self, other: &Window) -> bool {
        match (&self.schedule, &other.schedule) {
            (
                Schedule::Once {
                    from_ms: a0,
                    to_ms: a1,
                },
                Schedule::Once {
                    from_ms: b0,
                    to_ms: b1,
                },
            ) => a0 < b1 && b0 < a1,
            (Schedule::Weekly { .. }, Schedule::Weekly { .. }) => {
                let theirs = other.week_minutes();
                self.week_minutes()
                    .iter()
                    .any(|(a0, a1)| theirs.iter().any(|(b0, b1)| a0 < b1 && b0 < a1))
            }
            _ => false,
        }
    }
}

/// The first window (in list order) that covers the device at `at_ms`.
pub fn active_window<'a>(
    windows: &'a [Window],
    device: &str,
    class: DeviceClass,
    tz: Tz,
    at_ms: UnixMs,
) -> Option<&'a Window> {
    windows
        .iter()
        .find(|w| w.applies_to(device, class) && w.active_at(tz, at_ms))
}

/// Every problem of a list of windows: each window's own (inverted, no day,
/// empty), duplicate ids, and overlapping windows of the same target and
/// kind — each error names the windows. Empty when the list is sound.
pub fn check_windows(windows: &[Window]) -> Vec<MaintenanceError> {
    let mut errs: Vec<MaintenanceError> = windows.iter().filter_map(Window::own_problem).collect();
    for (i, w) in windows.iter().enumerate() {
        if windows[..i].iter().any(|o| o.id == w.id) {
            errs.push(MaintenanceError::DuplicateId { id: w.id.clone() });
        }
        for o in &windows[..i] {
            if o.target == w.target && o.overlaps(w) {
                errs.push(MaintenanceError::Overlap {
                    first: o.id.clone(),
                    second: w.id.clone(),
                    target: w.target.to_string(),
                });
            }
        }
    }
    errs
}
