//! The report as JSON, CSV and printable HTML: pure functions of a
//! [`MonthReport`] (no IO), so the gateway's CLI and the dashboard's
//! `/reports/YYYY-MM` page render the same document.
//!
//! - [`to_json`]: the [`MonthReport`] itself (durations in ms, ratios as
//!   fractions 0–1, instants as Unix ms).
//! - [`to_csv`] / [`csv_files`]: the same figures for office work, **one
//!   table per file**, one file per section ([`SECTIONS`]: `period`,
//!   `classes`, `kpis`, `devices`, `days`, `tickets`, `tickets_by_class`,
//!   `missed`, `reworks`, `coverage`, `gaps`, `windows`). UTF-8 with a BOM
//!   (Excel on Chinese Windows reads it right), CRLF line ends, one header
//!   line in the report's language with the unit of each column;
//!   percentages with two decimals (`99.51`), durations in hours or
//!   minutes with two decimals, instants as local times of the site
//!   (`2026-11-03 14:00:00`), met / missed as words.
//! - [`to_xlsx`]: the same tables as one workbook, one formatted sheet per
//!   section, cells at full precision with a display format.
//! - [`to_html`]: one self-contained page, Chinese by default or English
//!   ([`Lang`]), charts as inline SVG (nothing to run in the browser),
//!   print CSS for A4: each section on a new page, table rows never split
//!   and table headers repeated, and the page margins carrying the site,
//!   the period, the generation time and "page n / N" (CSS `@page` margin
//!   boxes with `counter(page)` and `counter(pages)`, which Chromium prints
//!   since version 131).

mod csv;
mod html;
mod svg;
mod tables;
mod xlsx;

use chrono::DateTime;
use chrono_tz::Tz;

use super::MonthReport;
use crate::model::DeviceClass;
use crate::state::UnixMs;

pub use csv::{BOM, csv_files, to_csv};
pub use html::to_html;
pub use tables::{Cell, SECTIONS, Table, cell_text, tables};
pub use xlsx::{XlsxError, to_xlsx};

/// The language of the HTML report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lang {
    /// Simplified Chinese (the default).
    #[default]
    Zh,
    /// English.
    En,
}

impl Lang {
    /// `zh` (also `zh-CN`, `cn`) or `en`.
    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "zh" | "zh-cn" | "cn" | "zh_cn" => Some(Lang::Zh),
            "en" | "en-us" | "en-gb" | "english" => Some(Lang::En),
            _ => None,
        }
    }

    /// The text in this language.
    pub(crate) fn t(self, zh: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }
}

/// The report as pretty-printed JSON.
pub fn to_json(report: &MonthReport) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(report)
}

/// A fraction as a percentage with two decimals (`99.51 %`); `–` for none.
pub fn percent_text(fraction: Option<f64>) -> String {
    fraction.map_or_else(|| "–".to_owned(), |f| format!("{:.2} %", f * 100.0))
}

/// A target in per cent without a useless `.0` (`98 %`, `99.5 %`).
pub fn target_text(percent: f64) -> String {
    if percent.fract() == 0.0 {
        format!("{percent:.0} %")
    } else {
        format!("{percent} %")
    }
}

/// A duration for people, to the minute (seconds below a minute):
/// `710 h 30 min` / `710小时30分`; `0` for none.
pub fn duration_text(ms: i64, lang: Lang) -> String {
    let ms = ms.max(0);
    if ms == 0 {
        return "0".to_owned();
    }
    if ms < 60_000 {
        let s = (ms + 999) / 1000;
        return match lang {
            Lang::Zh => format!("{s}秒"),
            Lang::En => format!("{s} s"),
        };
    }
    let mins = (ms + 30_000) / 60_000;
    let (h, m) = (mins / 60, mins % 60);
    match (lang, h, m) {
        (Lang::Zh, 0, m) => format!("{m}分"),
        (Lang::Zh, h, 0) => format!("{h}小时"),
        (Lang::Zh, h, m) => format!("{h}小时{m}分"),
        (Lang::En, 0, m) => format!("{m} min"),
        (Lang::En, h, 0) => format!("{h} h"),
        (Lang::En, h, m) => format!("{h} h {m} min"),
    }
}

/// An optional duration; `–` for none.
pub fn opt_duration_text(ms: Option<i64>, lang: Lang) -> String {
    ms.map_or_else(|| "–".to_owned(), |ms| duration_text(ms, lang))
}

/// `2026-11-03 14:00` in the zone.
pub fn local_minute(tz: Tz, ms: UnixMs) -> String {
    local_fmt(tz, ms, "%Y-%m-%d %H:%M")
}

fn local_fmt(tz: Tz, ms: UnixMs, fmt: &str) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.with_timezone(&tz).format(fmt).to_string(),
    )
}

/// The zone of a report (UTC should the name be unknown, which `build`
/// already refused).
fn zone(report: &MonthReport) -> Tz {
    crate::ledger::parse_tz(&report.period.timezone).unwrap_or(Tz::UTC)
}

/// A class's name for people: its name in the glossary.
pub fn class_name(class: DeviceClass, lang: Lang) -> &'static str {
    term(crate::glossary::class(class), lang)
}

/// A glossary name in the report's language.
pub fn term(t: crate::glossary::Term, lang: Lang) -> &'static str {
    lang.t(t.zh, t.en)
}

/// A reason of a stretch without data, for people.
pub fn gap_reason_text(reason: &str, lang: Lang) -> String {
    match reason {
        "gateway_down" => lang
            .t(
                "网关离线（停机、重启或断电）",
                "gateway offline (stopped, restarting or power cut)",
            )
            .to_owned(),
        "startup" => lang
            .t(
                "网关启动后尚未连上设备",
                "gateway started, device not reached yet",
            )
            .to_owned(),
        "no_record" => lang.t("无记录", "nothing recorded").to_owned(),
        other => other.to_owned(),
    }
}

/// Text made safe for HTML (and SVG) content and attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
