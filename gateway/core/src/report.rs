//! The monthly availability report: the document the manager
//! hands to the client, as data ([`MonthReport`]) and as JSON, CSV, .xlsx
//! and printable HTML ([`render`]).
//!
//! Pure, like the rest of the crate: the site, the month, "now", the device
//! catalogue, the ledger's intervals, the tickets and the maintenance
//! windows are passed in ([`ReportInput`]); [`build`] returns every figure.
//! The gateway's `report` command fills the input from its SQLite store; the
//! dashboard fills it from the `event` and `tickets` topics. Both call the
//! same [`build`], so the two reports of a site agree to the millisecond
//! when they are given the same intervals and tickets.
//!
//! # What is computed, and with what
//!
//! Every figure comes from [`crate::ledger`] and [`crate::tickets::figures`]
//! — nothing is re-implemented here:
//!
//! - **Period**: [`month_window`](crate::ledger::month_window) in the site's
//!   zone (DST included). A month still in progress is reported up to
//!   `now` (`period.in_progress`); a month that has not begun is an error.
//! - **Per device** ([`DeviceReport`]):
//!   [`device_figures`](crate::ledger::device_figures) over the period
//!   (availability, downtime, incidents, MTBF, MTTR, maintenance, coverage),
//!   plus the device's *in-service* span — the part of the period after it
//!   was added and before it was removed (`known_from_ms` /
//!   `known_until_ms` of the catalogue) — and the coverage of that span, so
//!   that a device added on the 20th is not blamed for the 19 days before.
//!   A daily strip gives the same figures per local day
//!   ([`month_days`](crate::ledger::month_days)). Devices are listed worst
//!   first: missed target, then lowest availability.
//! - **Per class** ([`ClassSummary`]): pooled
//!   [`class_figures`](crate::ledger::class_figures) and the traditional
//!   intact rate [`intact_rate`](crate::ledger::intact_rate) (完好率), each
//!   against the class target (99 % lighting, fire, lightning protection;
//!   98 % otherwise, or `[availability.class.*] target`).
//! - **KPIs** ([`Kpis`]) and **tickets** ([`TicketSection`]):
//!   [`ticket_figures`](crate::tickets::ticket_figures) over the period, by
//!   class too; the cycles that missed their deadline and the reworks, with
//!   their trail ([`cycles`](crate::tickets::figures::cycles)).
//! - **Coverage** ([`CoverageSection`]): every stretch of an in-service
//!   span with no data, with its reason (`gateway_down`: the gateway was off;
//!   `startup`: it had not reached the device yet; `no_record`: nothing was
//!   recorded at all), merged across devices when they share the stretch.

mod build;
mod model;
pub mod render;

#[cfg(test)]
mod tests;

pub use build::{ReportError, build, parse_month};
pub use model::{
    CatalogueDevice, ClassSummary, ClassTickets, CoverageSection, DayFigure, DeviceReport, Gap,
    Kpis, MissedDeadline, MonthReport, Period, ReportInput, ReworkTicket, SiteInfo, TicketSection,
    WindowInfo,
};
pub use render::{Lang, SECTIONS, XlsxError, csv_files, to_csv, to_html, to_json, to_xlsx};
