//! `gateway report --month YYYY-MM`: the monthly availability report of
//! this gateway's site, from its SQLite store, as printable HTML (default),
//! CSV (one table per file: `--section NAME`, or `--out DIR/` for one file
//! per section), an .xlsx workbook (one sheet per section) or JSON
//! (`gateway_core::report`).
//!
//! The store is only read (SQLite in WAL mode lets a reader see every
//! committed write while the gateway runs), so the report works whether the
//! gateway is running or stopped. A month still in progress is reported up
//! to now and marked as such.
//!
//! A stopped gateway's open intervals are taken to end at its last
//! heartbeat, the rest of the time up to now being `gateway_down` (what the
//! recovery at its next start records); a running gateway's end at now.
//!
//! A month that begins before the retention cutoff the store recorded
//! (`[store] keep_months`; `Store::retained_from`) is refused with
//! [`ReportFailure::NotKept`]: its intervals and tickets may be partly
//! deleted, and a report with holes would look like a real one.
//!
//! The device catalogue is the configuration's devices plus those the store
//! remembers from an earlier configuration (table `devices`); a device's
//! time in service starts at its first recorded interval and, for a device
//! no longer configured, ends at the last moment it was watched.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use gateway_core::model::DeviceClass;
use gateway_core::report::{
    CatalogueDevice, Lang, MonthReport, ReportError, ReportInput, SECTIONS, SiteInfo, build,
    csv_files, parse_month, to_csv, to_html, to_json, to_xlsx,
};
use gateway_core::state::{DeviceState, Interval, UnixMs};

use super::EXIT_CONFIG;
use super::site::SiteArgs;
use super::tickets::{
    EXIT_REFUSED, Site, error_json, gateway_running, load_site, now_ms, open_store,
};
use crate::store::{REASON_GATEWAY_DOWN, Store, StoreError};

/// What the report is written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One printable HTML page (A4, charts as inline SVG).
    Html,
    /// One table of the report for spreadsheets (`--section`), or one
    /// file per section in the `--out` folder.
    Csv,
    /// One workbook, one formatted sheet per section.
    Xlsx,
    /// Every figure, as the report's data.
    Json,
}

/// Arguments of `gateway report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub at: SiteArgs,
    /// The calendar month, local to the site: YYYY-MM (e.g. 2026-11).
    #[arg(long, short)]
    pub month: String,
    /// html, csv, xlsx or json; default: from the --out file's extension
    /// (a folder: csv), else html.
    #[arg(long, short, value_enum)]
    pub format: Option<Format>,
    /// Write to this file instead of standard output; for csv without
    /// --section, a folder (made if missing) that gets one file per section.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// The one table a CSV holds: period, classes, kpis, devices, days,
    /// tickets, tickets_by_class, missed, reworks, coverage, gaps, windows.
    #[arg(long)]
    pub section: Option<String>,
    /// Language of the HTML and of the CSV and xlsx headers: zh (default) or en.
    #[arg(long, default_value = "zh")]
    pub lang: String,
    /// Refuse unless the configuration is this site's (a check for scripts
    /// that loop over sites).
    #[arg(long)]
    pub site: Option<String>,
    /// The site's name printed in the header (default: the site id).
    #[arg(long)]
    pub site_name: Option<String>,
}

/// The report input for `year`-`month` from a gateway's store, as the
/// gateway itself sees its site at `now_ms` (see the module doc).
pub fn input_from_store(
    site: &Site,
    store: &Store,
    site_name: Option<&str>,
    (year, month): (i32, u32),
    now_ms: UnixMs,
) -> Result<ReportInput, ReportFailure> {
    let (from, to) = gateway_core::ledger::month_window(site.tz, year, month)
        .map_err(|e| ReportFailure::Report(e.into()))?;
    if let Some(kept) = store.retained_from()?
        && from < kept
    {
        return Err(ReportFailure::NotKept {
            month: (year, month),
            first_kept: first_whole_month(site.tz, kept),
            keep_months: site.config.raw.store.keep_months,
        });
    }
    let until = to.min(now_ms).max(from);
    let cfg = &site.config;
    let spans: BTreeMap<String, (UnixMs, Option<UnixMs>)> = store
        .device_spans(now_ms)?
        .into_iter()
        .map(|(d, first, last)| (d, (first, last)))
        .collect();
    let mut devices: Vec<CatalogueDevice> = cfg
        .devices
        .iter()
        .map(|d| CatalogueDevice {
            id: d.id.clone(),
            name_zh: d.name_zh.clone(),
            name_en: d.name_en.clone(),
            class: d.class,
            location: d.location.clone(),
            target_percent: d.threshold_percent,
            known_from_ms: spans.get(&d.id).map(|s| s.0),
            known_until_ms: None,
        })
        .collect();
    for row in store.devices()? {
        if devices.iter().any(|d| d.id == row.id) {
            continue;
        }
        // No longer configured: in service from its first interval to the
        // last moment it was watched (never watched: not in service).
        let (first, last) = spans.get(&row.id).copied().unwrap_or((from, None));
        devices.push(CatalogueDevice {
            id: row.id,
            name_zh: row.name_zh,
            name_en: row.name_en,
            class: row.class,
            location: String::new(),
            target_percent: row.threshold_percent,
            known_from_ms: Some(first),
            known_until_ms: Some(last.unwrap_or(first)),
        });
    }
    // The ledger needs to see what came before the month to tell a fault
    // running in (downtime, no incident) from one starting at midnight: the
    // store clips what it returns, so ask from 1 ms earlier (a piece of the
    // state at the month's start, starting before it) and add each device's
    // last Up or Down interval before that (a fault across a gateway outage
    // at midnight continues).
    let before = from.saturating_sub(1);
    let mut intervals = store.last_up_or_down_before(before)?;
    intervals.extend(seen_intervals(site, store, None, before, until, now_ms)?);
    // Every ticket open in the month or falling due in it, whatever its
    // last update (docs/availability.md, "Tickets and months").
    let tickets = store.tickets_for_period(from, until)?;
    let mut windows = site.configured_windows();
    windows.extend(store.windows()?);
    let class_targets = DeviceClass::ALL
        .iter()
        .map(|&c| (c, cfg.raw.availability.threshold_percent(c, None)))
        .collect();
    Ok(ReportInput {
        site: SiteInfo {
            id: cfg.site.clone(),
            name: site_name.unwrap_or(&cfg.site).to_owned(),
            timezone: cfg.timezone.clone(),
        },
        year,
        month,
        now_ms,
        devices,
        intervals,
        tickets,
        windows,
        class_targets,
    })
}

/// The stored intervals of `device` (all devices for `None`) overlapping
/// `[from_ms, until_ms)`, clipped to it, as the site stands at `now_ms`: a
/// running gateway's open intervals end at now; a stopped gateway's end at
/// its last heartbeat, and what follows, up to `until_ms`, is `unknown`
/// with reason `gateway_down` — exactly what the recovery at its next start
/// will record. `gateway report` and `gateway status` both read the ledger
/// through here, so a stopped gateway's figures agree.
pub(super) fn seen_intervals(
    site: &Site,
    store: &Store,
    device: Option<&str>,
    from_ms: UnixMs,
    until_ms: UnixMs,
    now_ms: UnixMs,
) -> Result<Vec<Interval>, StoreError> {
    let open_end = match (gateway_running(site), store.last_heartbeat()?) {
        (false, Some(hb)) => hb.min(now_ms),
        _ => now_ms,
    };
    let mut out = store.intervals(device, from_ms, until_ms, open_end)?;
    if open_end < now_ms {
        for (id, _, _, since) in store.open_intervals()? {
            if device.is_some_and(|d| d != id) {
                continue;
            }
            let start = since.max(open_end).max(from_ms);
            if start < until_ms {
                out.push(Interval {
                    device: id,
                    state: DeviceState::Unknown,
                    reason: Some(REASON_GATEWAY_DOWN.to_owned()),
                    from_ms: start,
                    to_ms: until_ms,
                });
            }
        }
    }
    Ok(out)
}

/// What can stop `gateway report` after the arguments were read.
#[derive(Debug, thiserror::Error)]
pub enum ReportFailure {
    /// The month or the zone (a usage error).
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The month begins before the data the store keeps.
    #[error(
        "{}-{:02} is before the history this gateway keeps: older data was deleted by retention ([store] keep_months, now {keep_months} months before the current one), so the first month that can be reported is {}-{:02}; a longer keep_months keeps more from now on, but cannot bring deleted months back",
        month.0, month.1, first_kept.0, first_kept.1
    )]
    NotKept {
        /// The month asked for.
        month: (i32, u32),
        /// The first month kept whole.
        first_kept: (i32, u32),
        /// The configured `[store] keep_months`.
        keep_months: u32,
    },
}

/// The first calendar month of `tz` that starts at or after `at_ms`.
fn first_whole_month(tz: chrono_tz::Tz, at_ms: UnixMs) -> (i32, u32) {
    let (y, m) = gateway_core::ledger::month_of(tz, at_ms);
    match gateway_core::ledger::month_window(tz, y, m) {
        Ok((start, _)) if start < at_ms => {
            if m == 12 {
                (y + 1, 1)
            } else {
                (y, m + 1)
            }
        }
        _ => (y, m),
    }
}

/// Why a report cannot be rendered as asked (a usage error).
#[derive(Debug, thiserror::Error)]
pub enum RenderFailure {
    /// CSV without a section to put in the one file.
    #[error(
        "a CSV file holds one table: give --section (one of {}), or --out DIR/ for one file per section, or --format xlsx for one workbook",
        SECTIONS.join(", ")
    )]
    NoSection,
    /// A section that does not exist.
    #[error("--section {name:?} is not a section of the report; use one of {list}", name = .0, list = SECTIONS.join(", "))]
    UnknownSection(String),
    /// `--section` with a format other than CSV.
    #[error("--section selects a CSV table; html, xlsx and json hold every section")]
    SectionNotCsv,
    /// The workbook could not be written.
    #[error(transparent)]
    Xlsx(#[from] gateway_core::report::XlsxError),
}

/// The report rendered in `format` as one file; `section` is the table of
/// a CSV (required for CSV, refused otherwise).
pub fn render(
    report: &MonthReport,
    format: Format,
    lang: Lang,
    section: Option<&str>,
) -> Result<Vec<u8>, RenderFailure> {
    if format != Format::Csv && section.is_some() {
        return Err(RenderFailure::SectionNotCsv);
    }
    Ok(match format {
        Format::Html => to_html(report, lang).into_bytes(),
        Format::Csv => {
            let section = section.ok_or(RenderFailure::NoSection)?;
            to_csv(report, section, lang)
                .ok_or_else(|| RenderFailure::UnknownSection(section.to_owned()))?
                .into_bytes()
        }
        Format::Xlsx => to_xlsx(report, lang)?,
        // A report holds no map with non-string keys: serialising cannot fail.
        Format::Json => to_json(report)
            .map_or_else(|e| error_json(&e.to_string()) + "\n", |j| j + "\n")
            .into_bytes(),
    })
}

/// The files of a report folder: `<site>-<YYYY-MM>-<section>.csv` for each
/// section, with its CSV text.
pub fn folder_files(report: &MonthReport, lang: Lang) -> Vec<(String, String)> {
    let site: String = report
        .site
        .id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    csv_files(report, lang)
        .into_iter()
        .map(|(id, text)| (format!("{site}-{}-{id}.csv", report.period.month), text))
        .collect()
}

/// Whether `--out` names a folder: one that exists, or a path ending in `/`.
fn is_folder(path: &Path) -> bool {
    path.is_dir()
        || path
            .as_os_str()
            .to_string_lossy()
            .ends_with(std::path::MAIN_SEPARATOR)
}

fn format_of(args: &ReportArgs) -> Format {
    args.format.unwrap_or_else(|| {
        if args.out.as_deref().is_some_and(is_folder) {
            return Format::Csv;
        }
        match args
            .out
            .as_deref()
            .and_then(Path::extension)
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => Format::Csv,
            Some("xlsx") => Format::Xlsx,
            Some("json") => Format::Json,
            _ => Format::Html,
        }
    })
}

/// Writes `text` to `path` through a temporary file in the same folder, so
/// that a reader never sees half a report.
fn write_file(path: &Path, text: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(text)?;
    // A report is for sharing: readable by others, like a file made by `>`.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Runs `gateway report`; returns the exit code.
pub fn report(args: ReportArgs) -> u8 {
    let Some(lang) = Lang::parse(&args.lang) else {
        eprintln!(
            "gateway report: --lang {:?} is not a language of the report; use zh or en",
            args.lang
        );
        return EXIT_CONFIG;
    };
    let month = match parse_month(&args.month) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("gateway report: --month: {e}");
            return EXIT_CONFIG;
        }
    };
    let site = match load_site(&args.at) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if let Some(wanted) = &args.site
        && *wanted != site.config.site
    {
        eprintln!(
            "gateway report: unknown site {wanted:?}: {} is the configuration of site {:?}; give that site or the configuration of {wanted:?}",
            site.config_file.display(),
            site.config.site
        );
        return EXIT_CONFIG;
    }
    let store = match open_store(&site) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let now = now_ms();
    let built = input_from_store(&site, &store, args.site_name.as_deref(), month, now)
        .and_then(|input| build(&input).map_err(ReportFailure::from));
    let report = match built {
        Ok(r) => r,
        Err(e @ (ReportFailure::Report(_) | ReportFailure::NotKept { .. })) => {
            eprintln!("gateway report: --month {}: {e}", args.month);
            return EXIT_CONFIG;
        }
        Err(ReportFailure::Store(e)) => {
            eprintln!("gateway report: {e}");
            return EXIT_REFUSED;
        }
    };
    if report.devices.is_empty() {
        eprintln!(
            "gateway report: no device of site {} was in service in {} (nothing was recorded then); the report says so",
            report.site.id, report.period.month
        );
    }
    let format = format_of(&args);
    let folder = format == Format::Csv
        && args.section.is_none()
        && args.out.as_deref().is_some_and(is_folder);
    if folder && let Some(dir) = &args.out {
        return write_folder(&report, lang, dir);
    }
    let bytes = match render(&report, format, lang, args.section.as_deref()) {
        Ok(b) => b,
        Err(e @ RenderFailure::Xlsx(_)) => {
            eprintln!("gateway report: {e}");
            return EXIT_REFUSED;
        }
        Err(e) => {
            eprintln!("gateway report: {e}");
            return EXIT_CONFIG;
        }
    };
    match &args.out {
        Some(path) => {
            if let Err(e) = write_file(path, &bytes) {
                eprintln!("gateway report: cannot write {}: {e}", path.display());
                return EXIT_REFUSED;
            }
            eprintln!(
                "gateway report: {} {} written to {}{}",
                report.site.id,
                report.period.month,
                path.display(),
                in_progress_note(&report)
            );
            0
        }
        None => {
            let mut out = std::io::stdout().lock();
            match out.write_all(&bytes).and_then(|()| out.flush()) {
                Ok(()) => 0,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
                Err(e) => {
                    eprintln!("gateway report: cannot write the report: {e}");
                    EXIT_REFUSED
                }
            }
        }
    }
}

fn in_progress_note(report: &MonthReport) -> &'static str {
    if report.period.in_progress {
        " (month in progress)"
    } else {
        ""
    }
}

/// Writes one CSV file per section into `dir` (made if missing).
fn write_folder(report: &MonthReport, lang: Lang, dir: &Path) -> u8 {
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!(
            "gateway report: cannot make the folder {}: {e}",
            dir.display()
        );
        return EXIT_REFUSED;
    }
    let files = folder_files(report, lang);
    for (name, text) in &files {
        let path = dir.join(name);
        if let Err(e) = write_file(&path, text.as_bytes()) {
            eprintln!("gateway report: cannot write {}: {e}", path.display());
            return EXIT_REFUSED;
        }
    }
    eprintln!(
        "gateway report: {} {} written to {} ({} CSV files, one per section){}",
        report.site.id,
        report.period.month,
        dir.display(),
        files.len(),
        in_progress_note(report)
    );
    0
}

#[cfg(test)]
mod tests;
