//! The bounds every field is held to, and the refusal they give.

use std::fmt;

/// Longest id (site, gateway, device, point, class, command id).
pub const MAX_ID: usize = 64;
/// Longest free text (names, location, reason, summary, unit, note, result).
pub const MAX_TEXT: usize = 500;
/// Longest text value of a telemetry point.
pub const MAX_POINT_TEXT: usize = 1024;
/// Most entries in one map (points, units, quality) or list (alarms).
pub const MAX_ENTRIES: usize = 4096;
/// Most lines of a ticket's history.
pub const MAX_HISTORY: usize = 1000;
/// Earliest plausible time: 2000-01-01T00:00:00Z, Unix ms.
pub const MIN_UNIX_MS: i64 = 946_684_800_000;
/// Latest plausible time: 2200-01-01T00:00:00Z, Unix ms.
pub const MAX_UNIX_MS: i64 = 7_258_118_400_000;

/// Why a payload or topic was refused. [`Refusal::reason`] is a short
/// stable name, fit for a counter label; [`fmt::Display`] says where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    reason: Reason,
    detail: String,
}

/// The kinds of refusal (bounded: counter labels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Not JSON at all, or cut short.
    NotJson,
    /// JSON, but not the shape of this kind: a field missing or of the wrong type.
    Shape,
    /// A number outside its range (or not finite), a time not plausible.
    OutOfRange,
    /// A string longer than its limit.
    TooLong,
    /// An id with characters outside `[A-Za-z0-9_.-]`, or text with control characters.
    BadText,
    /// A map or list with too many entries.
    TooMany,
    /// A topic that is not one of `docs/mqtt.md`'s.
    BadTopic,
    /// Fields that contradict each other or the topic.
    Inconsistent,
}

impl Reason {
    /// The stable name (`not_json`, `shape`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::NotJson => "not_json",
            Reason::Shape => "shape",
            Reason::OutOfRange => "out_of_range",
            Reason::TooLong => "too_long",
            Reason::BadText => "bad_text",
            Reason::TooMany => "too_many",
            Reason::BadTopic => "bad_topic",
            Reason::Inconsistent => "inconsistent",
        }
    }
}

impl Refusal {
    /// A refusal of `reason`, `detail` saying which field and why.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            detail: detail.into(),
        }
    }
    /// What kind of refusal.
    pub const fn reason(&self) -> Reason {
        self.reason
    }
    /// Which field and why, for the log.
    pub fn detail(&self) -> &str {
        &self.detail
    }
    pub(crate) fn at(mut self, field: &str) -> Refusal {
        self.detail = format!("{field}: {}", self.detail);
        self
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.detail, self.reason.as_str())
    }
}

impl std::error::Error for Refusal {}

impl From<serde_json::Error> for Refusal {
    fn from(e: serde_json::Error) -> Refusal {
        let reason = match e.classify() {
            serde_json::error::Category::Data => Reason::Shape,
            _ => Reason::NotJson,
        };
        Refusal::new(reason, e.to_string())
    }
}

pub(crate) type Checked = Result<(), Refusal>;

/// `[A-Za-z0-9_.-]{1,64}`: the ids of topics, devices, points, classes.
pub fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

pub(crate) fn id(field: &str, s: &str) -> Checked {
    if s.is_empty() {
        Err(Refusal::new(Reason::Shape, "empty").at(field))
    } else if s.len() > MAX_ID {
        Err(Refusal::new(
            Reason::TooLong,
            format!("{} bytes, at most {MAX_ID}", s.len()),
        )
        .at(field))
    } else if !is_id(s) {
        Err(Refusal::new(Reason::BadText, "only A-Z a-z 0-9 _ . - are allowed").at(field))
    } else {
        Ok(())
    }
}

pub(crate) fn text_max(field: &str, s: &str, max: usize) -> Checked {
    if s.chars().count() > max {
        return Err(Refusal::new(
            Reason::TooLong,
            format!("{} characters, at most {max}", s.chars().count()),
        )
        .at(field));
    }
    if s.chars().any(char::is_control) {
        return Err(Refusal::new(Reason::BadText, "control characters").at(field));
    }
    Ok(())
}

pub(crate) fn text(field: &str, s: &str) -> Checked {
    text_max(field, s, MAX_TEXT)
}

pub(crate) fn opt_text(field: &str, s: Option<&str>) -> Checked {
    s.map_or(Ok(()), |s| text(field, s))
}

pub(crate) fn time(field: &str, ms: i64) -> Checked {
    if (MIN_UNIX_MS..=MAX_UNIX_MS).contains(&ms) {
        Ok(())
    } else {
        Err(Refusal::new(
            Reason::OutOfRange,
            format!("{ms} is not a plausible Unix time in ms (years 2000–2200)"),
        )
        .at(field))
    }
}

pub(crate) fn opt_time(field: &str, ms: Option<i64>) -> Checked {
    ms.map_or(Ok(()), |ms| time(field, ms))
}

pub(crate) fn range(field: &str, x: f64, lo: f64, hi: f64) -> Checked {
    if x.is_finite() && (lo..=hi).contains(&x) {
        Ok(())
    } else {
        Err(Refusal::new(Reason::OutOfRange, format!("{x} is not within {lo}–{hi}")).at(field))
    }
}

pub(crate) fn count(field: &str, n: usize, max: usize) -> Checked {
    if n > max {
        Err(Refusal::new(Reason::TooMany, format!("{n} entries, at most {max}")).at(field))
    } else {
        Ok(())
    }
}
