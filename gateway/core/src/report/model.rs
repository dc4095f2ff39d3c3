//! What goes into a monthly report and what comes out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ledger::DeviceFigures;
use crate::maintenance::Window;
use crate::model::DeviceClass;
use crate::state::{Interval, UnixMs};
use crate::tickets::{HistoryEntry, Severity, Ticket, TicketFigures};

/// The site a report is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteInfo {
    /// Site id (the configuration's `site`).
    pub id: String,
    /// Name printed in the header (the id when no other name is known).
    pub name: String,
    /// IANA time zone of the site (month boundaries, local times).
    pub timezone: String,
}

/// A device as the report knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogueDevice {
    /// Device id.
    pub id: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// Equipment class.
    pub class: DeviceClass,
    /// Free-text location (empty when unknown).
    pub location: String,
    /// Availability target in per cent.
    pub target_percent: f64,
    /// When the device was first watched (added); `None`: before any period.
    pub known_from_ms: Option<UnixMs>,
    /// When it stopped being watched (removed); `None`: still configured.
    pub known_until_ms: Option<UnixMs>,
}

/// Everything [`build`](super::build) needs; nothing else is read.
#[derive(Clone, Debug)]
pub struct ReportInput {
    /// The site.
    pub site: SiteInfo,
    /// Calendar year of the month.
    pub year: i32,
    /// Calendar month, 1–12.
    pub month: u32,
    /// Now (Unix ms): a month in progress is reported up to here, and it is
    /// printed as the generation time.
    pub now_ms: UnixMs,
    /// The devices to report on (any order).
    pub devices: Vec<CatalogueDevice>,
    /// Intervals of the devices overlapping the month, unclipped where
    /// possible (with the one before the month, so that an outage running
    /// in is recognised), open ones ending at `now_ms`; any order.
    pub intervals: Vec<Interval>,
    /// Tickets open in the month, falling due in it or with any step in it,
    /// whatever their last update (a superset is fine).
    pub tickets: Vec<Ticket>,
    /// Maintenance windows in force (listed in the method section).
    pub windows: Vec<Window>,
    /// Class targets in per cent; a class not listed takes its default.
    pub class_targets: BTreeMap<DeviceClass, f64>,
}

/// The period a report covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Period {
    /// `2026-11`.
    pub month: String,
    /// Local midnight of the 1st (Unix ms).
    pub from_ms: UnixMs,
    /// Local midnight of the next month's 1st.
    pub to_ms: UnixMs,
    /// End of what is reported: `to_ms`, or now for a month in progress.
    pub until_ms: UnixMs,
    /// `to_ms − from_ms` (743, 744 or 745 h in a DST zone).
    pub length_ms: i64,
    /// The month has not ended yet.
    pub in_progress: bool,
    /// The site's zone.
    pub timezone: String,
}

/// Per class: pooled availability and the intact rate against the target.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassSummary {
    /// The class.
    pub class: DeviceClass,
    /// Devices of the class in the report.
    pub devices: u32,
    /// Target in per cent.
    pub target_percent: f64,
    /// Pooled figures: Σ Up ÷ Σ (Up + Down), incidents summed.
    pub figures: DeviceFigures,
    /// Traditional 完好率: time-average of devices up ÷ devices up or down.
    pub intact_rate: Option<f64>,
    /// Pooled availability at or above the target.
    pub availability_met: Option<bool>,
    /// Intact rate at or above the target.
    pub intact_met: Option<bool>,
}

/// The team's repair KPIs of the month (`shared/DOMAIN.md`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Kpis {
    /// 维修及时率: repairs within their deadline ÷ repairs (target 100 %).
    pub timeliness: Option<f64>,
    /// The target, 1.0.
    pub timeliness_target: f64,
    /// Met: every repair within its deadline.
    pub timeliness_met: Option<bool>,
    /// 返修率: reworks ÷ repairs (target below 1 %).
    pub rework_rate: Option<f64>,
    /// The target, 0.01 (the rate must stay below it).
    pub rework_target: f64,
    /// Met: below the target.
    pub rework_met: Option<bool>,
    /// 日常小修不过夜: ordinary repairs left past the end of their working day.
    pub overnight: u32,
    /// Met: none left overnight.
    pub overnight_met: bool,
}

/// One local day of a device's strip.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DayFigure {
    /// `2026-11-03`.
    pub date: String,
    /// Up ÷ (Up + Down) that day (up to now for today).
    pub availability: Option<f64>,
    /// Time down that day.
    pub down_ms: i64,
    /// Time in maintenance that day.
    pub maintenance_ms: i64,
    /// Time with no data that day.
    pub unknown_ms: i64,
    /// The day has not begun yet.
    pub future: bool,
}

/// One device's month.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceReport {
    /// Device id.
    pub id: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// Class.
    pub class: DeviceClass,
    /// Location.
    pub location: String,
    /// Target in per cent.
    pub target_percent: f64,
    /// Figures over the period (see [`crate::ledger::device_figures`]).
    pub figures: DeviceFigures,
    /// Availability at or above the target.
    pub met: Option<bool>,
    /// Start of the part of the period the device was in service.
    pub in_service_from_ms: UnixMs,
    /// End of that part.
    pub in_service_to_ms: UnixMs,
    /// (Up + Down + Maintenance) ÷ the in-service span.
    pub service_coverage: Option<f64>,
    /// One entry per local day of the month.
    pub days: Vec<DayFigure>,
}

/// Tickets opened in the period, per class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClassTickets {
    /// The class.
    pub class: DeviceClass,
    /// Opened in the period.
    pub opened: u32,
    /// Of those, critical.
    pub critical: u32,
    /// Of those, ordinary.
    pub ordinary: u32,
}

/// A ticket cycle whose deadline fell in the period and that was not
/// resolved by it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MissedDeadline {
    /// Ticket number.
    pub ticket: u64,
    /// Device id.
    pub device: String,
    /// Class.
    pub class: DeviceClass,
    /// Severity.
    pub severity: Severity,
    /// Ticket summary (Chinese).
    pub summary: String,
    /// When the cycle began.
    pub start_ms: UnixMs,
    /// Its deadline.
    pub deadline_ms: UnixMs,
    /// When it was resolved, if it was (up to the end of the period).
    pub resolved_ms: Option<UnixMs>,
}

/// A ticket reopened in the period (返修), with its whole trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReworkTicket {
    /// Ticket number.
    pub ticket: u64,
    /// Device id.
    pub device: String,
    /// Class.
    pub class: DeviceClass,
    /// `availability` or `alarm:<point>`.
    pub kind: String,
    /// Summary (Chinese).
    pub summary: String,
    /// Reopenings in the period.
    pub reworks_in_period: u32,
    /// Every step of every cycle, oldest first.
    pub trail: Vec<HistoryEntry>,
}

/// The tickets of the month.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TicketSection {
    /// All figures of [`crate::tickets::ticket_figures`].
    pub figures: TicketFigures,
    /// Opened per class (classes with none left out).
    pub by_class: Vec<ClassTickets>,
    /// Cycles that missed their deadline, by deadline.
    pub missed: Vec<MissedDeadline>,
    /// Reworks, by ticket.
    pub reworks: Vec<ReworkTicket>,
}

/// A stretch with no data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// Start.
    pub from_ms: UnixMs,
    /// End.
    pub to_ms: UnixMs,
    /// `gateway_down`, `startup`, `no_record`, or the recorded reason.
    pub reason: String,
    /// The devices without data then, by id.
    pub devices: Vec<String>,
}

/// A maintenance window in force, as listed in the method section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WindowInfo {
    /// Window id.
    pub id: String,
    /// `device pump-1` or `class pump`.
    pub target: String,
    /// `2026-11-10 20:00 – 2026-11-10 22:00` or `Tue 20:00–22:00`.
    pub schedule: String,
    /// Free text.
    pub note: String,
}

/// Data coverage and method.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CoverageSection {
    /// Σ in-service time of the devices.
    pub in_service_ms: i64,
    /// Σ time with data (Up, Down or Maintenance) within it.
    pub known_ms: i64,
    /// `known_ms ÷ in_service_ms`.
    pub coverage: Option<f64>,
    /// Stretches of at least [`MIN_GAP_MS`](super::build::MIN_GAP_MS) with
    /// no data, by start.
    pub gaps: Vec<Gap>,
    /// Shorter stretches (counted, not listed): how many.
    pub short_gaps: u32,
    /// Their total length (summed over devices).
    pub short_gaps_ms: i64,
    /// Maintenance windows in force.
    pub windows: Vec<WindowInfo>,
}

/// The whole monthly report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MonthReport {
    /// The site.
    pub site: SiteInfo,
    /// The period.
    pub period: Period,
    /// When it was made (the input's `now_ms`).
    pub generated_ms: UnixMs,
    /// Per class, in [`DeviceClass::ALL`] order (classes without devices left out).
    pub classes: Vec<ClassSummary>,
    /// Repair KPIs.
    pub kpis: Kpis,
    /// Per device, worst first.
    pub devices: Vec<DeviceReport>,
    /// Tickets.
    pub tickets: TicketSection,
    /// Coverage and method.
    pub coverage: CoverageSection,
}
