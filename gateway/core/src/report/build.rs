//! [`build`]: the input → every figure of the report.

use std::collections::BTreeMap;

use chrono::{DateTime, Weekday};
use chrono_tz::Tz;
use thiserror::Error;

use super::model::{
    CatalogueDevice, ClassSummary, ClassTickets, CoverageSection, DayFigure, DeviceReport, Gap,
    Kpis, MissedDeadline, MonthReport, Period, ReportInput, ReworkTicket, TicketSection,
    WindowInfo,
};
use crate::ledger::{
    LedgerError, class_figures, device_figures, intact_rate, month_days, month_window, parse_tz,
    totals, unknown_stretches,
};
use crate::maintenance::{Schedule, Target, Window};
use crate::model::DeviceClass;
use crate::state::{Interval, UnixMs};
use crate::tickets::figures::cycles;
use crate::tickets::{Severity, Ticket, ticket_figures};

/// Stretches without data shorter than this are counted, not listed (a
/// device is reached a few seconds after each start of the gateway).
pub const MIN_GAP_MS: i64 = 60_000;

/// The repair timeliness target (维修及时率 100 %).
pub const TIMELINESS_TARGET: f64 = 1.0;
/// The rework rate must stay below this (返修率 < 1 %).
pub const REWORK_TARGET: f64 = 0.01;

/// Why a report cannot be made.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ReportError {
    /// The month is not written `YYYY-MM` with a month 01–12.
    #[error("month {0:?} is not a calendar month; write it as YYYY-MM, e.g. 2026-11")]
    BadMonth(String),
    /// The month has not begun in the site's zone.
    #[error(
        "month {month} has not begun yet (it starts {starts} in {zone}); give this month or an earlier one"
    )]
    FutureMonth {
        /// `2027-01`.
        month: String,
        /// Its first local midnight, `2027-01-01 00:00`.
        starts: String,
        /// The site's zone.
        zone: String,
    },
    /// Unknown time zone, or a month outside the calendar's range.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Parses `2026-11` (also `2026-1`) into `(2026, 11)`.
pub fn parse_month(text: &str) -> Result<(i32, u32), ReportError> {
    let bad = || ReportError::BadMonth(text.to_owned());
    let (y, m) = text.trim().split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || !(1..=2).contains(&m.len()) {
        return Err(bad());
    }
    let year: i32 = y.parse().map_err(|_| bad())?;
    let month: u32 = m.parse().map_err(|_| bad())?;
    if !(1..=12).contains(&month) {
        return Err(bad());
    }
    Ok((year, month))
}

/// Whether a fraction meets a target in per cent (tolerating the rounding
/// of `0.98 * 100`).
fn meets(fraction: f64, target_percent: f64) -> bool {
    fraction * 100.0 + 1e-9 >= target_percent
}

fn local(tz: Tz, ms: UnixMs) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string(),
    )
}

/// Builds the report of `input.year`-`input.month` (see the module doc).
pub fn build(input: &ReportInput) -> Result<MonthReport, ReportError> {
    let tz = parse_tz(&input.site.timezone)?;
    let (from, to) = month_window(tz, input.year, input.month)?;
    let month = format!("{:04}-{:02}", input.year, input.month);
    if input.now_ms < from {
        return Err(ReportError::FutureMonth {
            month,
            starts: local(tz, from),
            zone: tz.name().to_owned(),
        });
    }
    let until = to.min(input.now_ms);
    let period = Period {
        month,
        from_ms: from,
        to_ms: to,
        until_ms: until,
        length_ms: to - from,
        in_progress: input.now_ms < to,
        timezone: tz.name().to_owned(),
    };
    let days = month_days(tz, input.year, input.month)?;

    let mut by_device: BTreeMap<&str, Vec<Interval>> = BTreeMap::new();
    for i in &input.intervals {
        by_device
            .entry(i.device.as_str())
            .or_default()
            .push(i.clone());
    }
    let empty = Vec::new();

    let mut devices = Vec::new();
    let mut gap_parts: BTreeMap<(UnixMs, UnixMs, String), Vec<String>> = BTreeMap::new();
    let (mut in_service_ms, mut known_ms) = (0_i64, 0_i64);
    for d in &input.devices {
        let svc_from = d.known_from_ms.map_or(from, |k| k.max(from));
        let svc_to = d.known_until_ms.map_or(until, |k| k.min(until));
        if svc_to <= svc_from {
            continue;
        }
        let ivs = by_device.get(d.id.as_str()).unwrap_or(&empty);
        let figures = device_figures(ivs, from, until);
        let service = totals(ivs, svc_from, svc_to);
        in_service_ms += svc_to - svc_from;
        known_ms += service.up_ms + service.down_ms + service.maintenance_ms;
        for (a, b, reason) in unknown_stretches(ivs, svc_from, svc_to) {
            let reason = reason.unwrap_or_else(|| "no_record".to_owned());
            gap_parts
                .entry((a, b, reason))
                .or_default()
                .push(d.id.clone());
        }
        let strip = days
            .iter()
            .map(|(date, ds, de)| {
                let future = *ds >= until;
                let t = if future {
                    Default::default()
                } else {
                    totals(ivs, *ds, (*de).min(until))
                };
                DayFigure {
                    date: date.format("%Y-%m-%d").to_string(),
                    availability: t.availability(),
                    down_ms: t.down_ms,
                    maintenance_ms: t.maintenance_ms,
                    unknown_ms: t.unknown_ms,
                    future,
                }
            })
            .collect();
        devices.push(device_report(d, figures, svc_from, svc_to, service, strip));
    }
    devices.sort_by(|a, b| {
        let key = |d: &DeviceReport| (d.met != Some(false), d.figures.availability.unwrap_or(2.0));
        let (ka, kb) = (key(a), key(b));
        ka.0.cmp(&kb.0)
            .then(ka.1.total_cmp(&kb.1))
            .then_with(|| a.id.cmp(&b.id))
    });

    let classes = DeviceClass::ALL
        .iter()
        .filter_map(|&class| {
            let of: Vec<&[Interval]> = devices
                .iter()
                .filter(|d| d.class == class)
                .map(|d| by_device.get(d.id.as_str()).unwrap_or(&empty).as_slice())
                .collect();
            if of.is_empty() {
                return None;
            }
            let target_percent = input
                .class_targets
                .get(&class)
                .copied()
                .unwrap_or_else(|| class.default_target_percent());
            let figures = class_figures(&of, from, until);
            let intact = intact_rate(&of, from, until);
            Some(ClassSummary {
                class,
                devices: u32::try_from(of.len()).unwrap_or(u32::MAX),
                target_percent,
                figures,
                intact_rate: intact,
                availability_met: figures.availability.map(|a| meets(a, target_percent)),
                intact_met: intact.map(|a| meets(a, target_percent)),
            })
        })
        .collect();

    let tf = ticket_figures(&input.tickets, from, until);
    let kpis = Kpis {
        timeliness: tf.timeliness,
        timeliness_target: TIMELINESS_TARGET,
        timeliness_met: tf.timeliness.map(|t| t + 1e-12 >= TIMELINESS_TARGET),
        rework_rate: tf.rework_rate,
        rework_target: REWORK_TARGET,
        rework_met: tf.rework_rate.map(|r| r < REWORK_TARGET),
        overnight: tf.overnight,
        overnight_met: tf.overnight == 0,
    };
    let tickets = ticket_section(&input.tickets, tf, from, until);

    let mut gaps = Vec::new();
    let (mut short_gaps, mut short_gaps_ms) = (0_u32, 0_i64);
    for ((a, b, reason), mut devs) in gap_parts {
        if b - a < MIN_GAP_MS {
            let n = u32::try_from(devs.len()).unwrap_or(u32::MAX);
            short_gaps = short_gaps.saturating_add(n);
            short_gaps_ms += (b - a) * i64::from(n);
            continue;
        }
        devs.sort();
        gaps.push(Gap {
            from_ms: a,
            to_ms: b,
            reason,
            devices: devs,
        });
    }
    let coverage = CoverageSection {
        in_service_ms,
        known_ms,
        coverage: (in_service_ms > 0).then(|| known_ms as f64 / in_service_ms as f64),
        gaps,
        short_gaps,
        short_gaps_ms,
        windows: input
            .windows
            .iter()
            .filter(|w| match &w.schedule {
                Schedule::Once { from_ms, to_ms } => *from_ms < until && *to_ms > from,
                Schedule::Weekly { .. } => true,
            })
            .map(|w| window_info(tz, w))
            .collect(),
    };

    Ok(MonthReport {
        site: input.site.clone(),
        period,
        generated_ms: input.now_ms,
        classes,
        kpis,
        devices,
        tickets,
        coverage,
    })
}

fn device_report(
    d: &CatalogueDevice,
    figures: crate::ledger::DeviceFigures,
    svc_from: UnixMs,
    svc_to: UnixMs,
    service: crate::ledger::Totals,
    days: Vec<DayFigure>,
) -> DeviceReport {
    DeviceReport {
        id: d.id.clone(),
        name_zh: d.name_zh.clone(),
        name_en: d.name_en.clone(),
        class: d.class,
        location: d.location.clone(),
        target_percent: d.target_percent,
        figures,
        met: figures.availability.map(|a| meets(a, d.target_percent)),
        in_service_from_ms: svc_from,
        in_service_to_ms: svc_to,
        service_coverage: service.coverage(),
        days,
    }
}

fn ticket_section(
    tickets: &[Ticket],
    figures: crate::tickets::TicketFigures,
    from: UnixMs,
    until: UnixMs,
) -> TicketSection {
    let within = |at: UnixMs| from <= at && at < until;
    let mut by_class: BTreeMap<DeviceClass, ClassTickets> = BTreeMap::new();
    let mut missed = Vec::new();
    let mut reworks = Vec::new();
    for t in tickets {
        if within(t.opened_ms) {
            let c = by_class.entry(t.class).or_insert(ClassTickets {
                class: t.class,
                opened: 0,
                critical: 0,
                ordinary: 0,
            });
            c.opened += 1;
            match t.severity {
                Severity::Critical => c.critical += 1,
                Severity::Ordinary => c.ordinary += 1,
            }
        }
        let mut reopened = 0_u32;
        for c in cycles(t) {
            if c.reopened && within(c.start_ms) {
                reopened += 1;
            }
            if within(c.deadline_ms) && c.resolved_ms.is_none_or(|r| r > c.deadline_ms) {
                missed.push(MissedDeadline {
                    ticket: t.id,
                    device: t.device.clone(),
                    class: t.class,
                    severity: t.severity,
                    summary: t.summary.clone(),
                    start_ms: c.start_ms,
                    deadline_ms: c.deadline_ms,
                    resolved_ms: c.resolved_ms.filter(|r| *r < until),
                });
            }
        }
        if reopened > 0 {
            reworks.push(ReworkTicket {
                ticket: t.id,
                device: t.device.clone(),
                class: t.class,
                kind: t.kind.clone(),
                summary: t.summary.clone(),
                reworks_in_period: reopened,
                trail: t.history.clone(),
            });
        }
    }
    missed.sort_by_key(|m| (m.deadline_ms, m.ticket));
    reworks.sort_by_key(|r| r.ticket);
    let by_class = DeviceClass::ALL
        .iter()
        .filter_map(|c| by_class.remove(c))
        .collect();
    TicketSection {
        figures,
        by_class,
        missed,
        reworks,
    }
}

fn weekday(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "Mon",
        Weekday::Tue => "Tue",
        Weekday::Wed => "Wed",
        Weekday::Thu => "Thu",
        Weekday::Fri => "Fri",
        Weekday::Sat => "Sat",
        Weekday::Sun => "Sun",
    }
}

fn window_info(tz: Tz, w: &Window) -> WindowInfo {
    let target = match &w.target {
        Target::Device(d) => format!("device {d}"),
        Target::Class(c) => format!("class {c}"),
    };
    let schedule = match &w.schedule {
        Schedule::Once { from_ms, to_ms } => {
            format!("{} – {}", local(tz, *from_ms), local(tz, *to_ms))
        }
        Schedule::Weekly { days, start, end } => {
            let days: Vec<&str> = days.iter().map(|d| weekday(*d)).collect();
            format!(
                "{} {}–{}",
                days.join(","),
                start.format("%H:%M"),
                end.format("%H:%M")
            )
        }
    };
    WindowInfo {
        id: w.id.clone(),
        target,
        schedule,
        note: w.note.clone(),
    }
}
