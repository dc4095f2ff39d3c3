//! Time zones and calendar months in the site's zone.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use thiserror::Error;

use crate::state::UnixMs;

/// What can go wrong turning names and calendar months into instants.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum LedgerError {
    /// The name is not an IANA time zone known to the zone database.
    #[error("unknown time zone {name:?}; give an IANA name such as \"Asia/Shanghai\"")]
    UnknownZone {
        /// The name as given.
        name: String,
    },
    /// The month is not 1–12, or the year is outside the calendar's range.
    #[error("month {year}-{month:02} does not exist; months are 1–12")]
    NoSuchMonth {
        /// The year as given.
        year: i32,
        /// The month as given.
        month: u32,
    },
}

/// Parses an IANA time zone name (`"Asia/Shanghai"`, `"Europe/Berlin"`, `"UTC"`).
pub fn parse_tz(name: &str) -> Result<Tz, LedgerError> {
    name.trim()
        .parse::<Tz>()
        .map_err(|_| LedgerError::UnknownZone {
            name: name.to_owned(),
        })
}

/// The month `[start, end)`: from local midnight of the 1st to local midnight
/// of the next month's 1st, in `tz`.
pub fn month_window(tz: Tz, year: i32, month: u32) -> Result<(UnixMs, UnixMs), LedgerError> {
    let no_such = LedgerError::NoSuchMonth { year, month };
    let first = NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(|| no_such.clone())?;
    let next = if month == 12 {
        year.checked_add(1)
            .and_then(|y| NaiveDate::from_ymd_opt(y, 1, 1))
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    }
    .ok_or_else(|| no_such.clone())?;
    let start = local_midnight(tz, first).ok_or_else(|| no_such.clone())?;
    let end = local_midnight(tz, next).ok_or(no_such)?;
    Ok((start, end))
}

/// The calendar month `(year, month)` that the instant falls in, in `tz`.
pub fn month_of(tz: Tz, at_ms: UnixMs) -> (i32, u32) {
    let local = utc(at_ms).with_timezone(&tz);
    (local.year(), local.month())
}

/// The retention cutoff: local midnight of the 1st of the month
/// `keep_months` calendar months before the month `now_ms` falls in, in
/// `tz`. Data lying entirely before it may be deleted; every month from the
/// cutoff's on stays whole (the current month and the `keep_months` full
/// months before it). `keep_months = 24` on 2026-11-27 gives 2024-11-01.
pub fn retention_cutoff(tz: Tz, now_ms: UnixMs, keep_months: u32) -> Result<UnixMs, LedgerError> {
    let (year, month) = month_of(tz, now_ms);
    let index = i64::from(year) * 12 + i64::from(month) - 1 - i64::from(keep_months);
    let too_far = LedgerError::NoSuchMonth { year, month };
    let y = i32::try_from(index.div_euclid(12)).map_err(|_| too_far)?;
    let m = u32::try_from(index.rem_euclid(12) + 1).unwrap_or(1);
    Ok(month_window(tz, y, m)?.0)
}

/// The month to date: from local midnight of this month's 1st to `now_ms`.
pub fn month_to_date(tz: Tz, now_ms: UnixMs) -> (UnixMs, UnixMs) {
    let local = utc(now_ms).with_timezone(&tz);
    let start = local
        .date_naive()
        .with_day(1)
        .and_then(|first| local_midnight(tz, first))
        .unwrap_or(now_ms);
    (start.min(now_ms), now_ms)
}

/// The local days of a month in `tz`: each day's date and `[start, end)`
/// from its local midnight to the next (23 or 25 h on a DST change day).
/// The first start and the last end are those of [`month_window`].
pub fn month_days(
    tz: Tz,
    year: i32,
    month: u32,
) -> Result<Vec<(NaiveDate, UnixMs, UnixMs)>, LedgerError> {
    let no_such = || LedgerError::NoSuchMonth { year, month };
    let first = NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(no_such)?;
    let mut out = Vec::with_capacity(31);
    let mut day = first;
    while day.month() == month {
        let next = day.succ_opt().ok_or_else(no_such)?;
        let start = local_midnight(tz, day).ok_or_else(no_such)?;
        let end = local_midnight(tz, next).ok_or_else(no_such)?;
        out.push((day, start, end));
        day = next;
    }
    Ok(out)
}

/// The instant as a UTC date-time, clamped to the calendar's range.
fn utc(at_ms: UnixMs) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at_ms).unwrap_or(if at_ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// The local wall-clock time of an instant in `tz`.
fn local_at(tz: Tz, at_ms: UnixMs) -> NaiveDateTime {
    utc(at_ms).with_timezone(&tz).naive_local()
}

/// The first instant of the local day `date` in `tz`: local midnight, the
/// earlier one when midnight happens twice (DST fold), and the first local
/// time that exists when midnight is skipped (DST gap). `None` only at the
/// ends of the calendar's range.
pub(crate) fn local_midnight(tz: Tz, date: NaiveDate) -> Option<UnixMs> {
    let midnight = date.and_time(NaiveTime::MIN);
    if let Some(t) = tz.from_local_datetime(&midnight).earliest() {
        return Some(t.timestamp_millis());
    }
    // A gap: local time jumps over midnight. Look for the first instant
    // whose local time is at or after midnight, between a day before and a
    // day after midnight read as UTC (no zone is more than 26 h off UTC).
    const DAY_MS: i64 = 26 * 3600 * 1000;
    let guess = midnight.and_utc().timestamp_millis();
    let (mut lo, mut hi) = (guess.checked_sub(DAY_MS)?, guess.checked_add(DAY_MS)?);
    if local_at(tz, lo) >= midnight || local_at(tz, hi) < midnight {
        return None;
    }
    // Invariant: local(lo) < midnight ≤ local(hi).
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if local_at(tz, mid) >= midnight {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}
