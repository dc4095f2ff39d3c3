//! The `[tickets]` section and `[[maintenance]]` windows (issue #3).
//! Owned by the ticket layer; see `docs/config.md` (`## [tickets]` and
//! `## [[maintenance]]`) and the module docs of [`crate::tickets`] and
//! [`crate::maintenance`].

use std::fmt;
use std::time::Duration;

use chrono::NaiveTime;
use serde::{Deserialize, Deserializer};

use super::ConfigError;
use crate::HumanDuration;
use crate::maintenance::{Window, check_windows};
use crate::model::DeviceClass;

const DEFAULT_REWORK_PERIOD: HumanDuration = HumanDuration::from_secs(7 * 24 * 3600);
const DEFAULT_CRITICAL_DEADLINE: HumanDuration = HumanDuration::from_secs(2 * 3600);

const fn default_rework_period() -> HumanDuration {
    DEFAULT_REWORK_PERIOD
}
const fn default_critical_deadline() -> HumanDuration {
    DEFAULT_CRITICAL_DEADLINE
}
fn default_working_day_end() -> ClockTime {
    ClockTime::default()
}

/// A local wall-clock time of day written `"HH:MM"` (seconds optional),
/// such as `"18:00"`. Defaults to 18:00.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClockTime(pub NaiveTime);

impl Default for ClockTime {
    fn default() -> Self {
        ClockTime(NaiveTime::MIN + chrono::TimeDelta::hours(18))
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%H:%M"))
    }
}

impl std::str::FromStr for ClockTime {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NaiveTime::parse_from_str(s.trim(), "%H:%M")
            .or_else(|_| NaiveTime::parse_from_str(s.trim(), "%H:%M:%S"))
            .map(ClockTime)
            .map_err(|_| {
                format!("invalid time of day {s:?}; write HH:MM in 24-hour form, e.g. \"18:00\"")
            })
    }
}

impl<'de> Deserialize<'de> for ClockTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Ticket deadlines, rework period, auto-resolve and auto-close.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketsConfig {
    /// A fault of the same kind on the same device within this period after
    /// its ticket was resolved reopens that ticket and counts as rework
    /// (返修). `"0s"` turns rework detection off. Default `"7d"`.
    #[serde(default = "default_rework_period")]
    pub rework_period: HumanDuration,
    /// Deadline of a critical ticket (hard alarm: fire, leak…), counted from
    /// when it opened. Default `"2h"`.
    #[serde(default = "default_critical_deadline")]
    pub critical_deadline: HumanDuration,
    /// End of the working day, local time of the site. An ordinary ticket is
    /// due at the end of the working day it opened on; one opened at or after
    /// this time is due at the end of the next day (日常小修不过夜).
    /// Default `"18:00"`.
    #[serde(default = "default_working_day_end")]
    pub working_day_end: ClockTime,
    /// Device classes whose tickets resolve by themselves (by `auto`) when
    /// the device recovers. Default: none — a person resolves.
    #[serde(default)]
    pub auto_resolve: Vec<DeviceClass>,
    /// Resolved tickets close by themselves this long after resolution.
    /// Default: the rework period.
    #[serde(default)]
    pub close_after: Option<HumanDuration>,
}

impl Default for TicketsConfig {
    fn default() -> Self {
        TicketsConfig {
            rework_period: DEFAULT_REWORK_PERIOD,
            critical_deadline: DEFAULT_CRITICAL_DEADLINE,
            working_day_end: ClockTime::default(),
            auto_resolve: Vec::new(),
            close_after: None,
        }
    }
}

impl TicketsConfig {
    /// Every problem in the section (paths like `tickets.critical_deadline`).
    pub fn check(&self) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        if self.critical_deadline.get().is_zero() {
            errs.push(ConfigError::new(
                "tickets.critical_deadline",
                "is 0; give the time allowed to repair a critical fault, e.g. \"2h\"",
            ));
        }
        for (what, d) in [
            ("tickets.rework_period", Some(self.rework_period)),
            ("tickets.critical_deadline", Some(self.critical_deadline)),
            ("tickets.close_after", self.close_after),
        ] {
            if let Some(d) = d
                && d.get() > Duration::from_secs(366 * 24 * 3600)
            {
                errs.push(ConfigError::new(
                    what,
                    "is longer than a year; give a shorter duration",
                ));
            }
        }
        for (i, class) in self.auto_resolve.iter().enumerate() {
            if self.auto_resolve[..i].contains(class) {
                errs.push(ConfigError::new(
                    format!("tickets.auto_resolve[{i}]"),
                    format!("class {class} is listed twice"),
                ));
            }
        }
        errs
    }

    /// When resolved tickets close by themselves (`close_after`, or the
    /// rework period when not set).
    pub fn close_after(&self) -> Duration {
        self.close_after.unwrap_or(self.rework_period).get()
    }
}

/// A planned maintenance window declared in the configuration file
/// (`[[maintenance]]`); windows can also be added at run time with
/// `gateway maintenance add`, which builds this same structure.
///
/// Exactly one of `device`/`class`, and either `from` + `to` or `weekly`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindowConfig {
    /// Unique id of the window, `[a-z0-9_-]`; shown as `maintenance:<id>`.
    pub id: String,
    /// The device it applies to.
    #[serde(default)]
    pub device: Option<String>,
    /// The class it applies to (every device of the class).
    #[serde(default)]
    pub class: Option<DeviceClass>,
    /// One-off start, local time of the site: `"2026-12-01 20:00"`.
    #[serde(default)]
    pub from: Option<String>,
    /// One-off end (exclusive), local time: `"2026-12-01 22:00"`.
    #[serde(default)]
    pub to: Option<String>,
    /// Recurring: days and local times, `"Tue 20:00-22:00"`,
    /// `"Mon,Thu 20:00-22:00"`; an end before the start crosses midnight
    /// (`"Sat 23:00-02:00"` runs into Sunday).
    #[serde(default)]
    pub weekly: Option<String>,
    /// Free text (what is done, by whom).
    #[serde(default)]
    pub note: String,
}

/// Every problem in the `[[maintenance]]` windows: each window's own shape
/// (path `maintenance[i]`), then inverted, empty, duplicate and overlapping
/// windows. `timezone` is the site's zone (an invalid one is reported by the
/// `timezone` check; then only the shapes are checked). `devices` are the
/// known device ids: a window naming another device is an error.
pub fn check_maintenance(
    windows: &[MaintenanceWindowConfig],
    timezone: &str,
    devices: &[&str],
) -> Vec<ConfigError> {
    let tz: chrono_tz::Tz = timezone.parse().unwrap_or(chrono_tz::UTC);
    let mut errs = Vec::new();
    let mut built = Vec::new();
    for (i, w) in windows.iter().enumerate() {
        let path = format!("maintenance[{i}]");
        if let Some(dev) = &w.device
            && !devices.contains(&dev.as_str())
        {
            errs.push(ConfigError::new(
                format!("{path}.device"),
                format!("no device {dev:?} is configured"),
            ));
        }
        match Window::from_config(w, tz) {
            Ok(win) => built.push(win),
            Err(e) => errs.push(ConfigError::new(path, e.to_string())),
        }
    }
    for e in check_windows(&built) {
        errs.push(ConfigError::new("maintenance", e.to_string()));
    }
    errs
}
