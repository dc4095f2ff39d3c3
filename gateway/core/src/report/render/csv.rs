//! The report as CSV: one file per section (see the parent module doc).

use super::Lang;
use super::tables::{Table, cell_text, report_zone, tables};
use crate::report::MonthReport;

/// The UTF-8 byte order mark: Excel on Chinese Windows reads a CSV without
/// it in the local code page and garbles every Chinese name.
pub const BOM: &str = "\u{feff}";

/// One CSV cell, quoted when it holds a comma, a quote or a line break.
fn cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn render(t: &Table, tz: chrono_tz::Tz, lang: Lang) -> String {
    let mut out = String::from(BOM);
    let mut line = |cells: Vec<String>| {
        let cells: Vec<String> = cells.iter().map(|c| cell(c)).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    };
    line(t.columns.iter().map(|c| (*c).to_owned()).collect());
    for row in &t.rows {
        line(row.iter().map(|c| cell_text(c, tz, lang)).collect());
    }
    out
}

/// One section of the report as a CSV file (UTF-8 with a BOM, CRLF line
/// ends, one header line in `lang`): `None` for an unknown section id (see
/// [`SECTIONS`](super::tables::SECTIONS)).
pub fn to_csv(r: &MonthReport, section: &str, lang: Lang) -> Option<String> {
    let tz = report_zone(r);
    tables(r, lang)
        .into_iter()
        .find(|t| t.id == section)
        .map(|t| render(&t, tz, lang))
}

/// Every section as `(section id, CSV text)`, in report order: the files of
/// a report folder.
pub fn csv_files(r: &MonthReport, lang: Lang) -> Vec<(&'static str, String)> {
    let tz = report_zone(r);
    tables(r, lang)
        .into_iter()
        .map(|t| (t.id, render(&t, tz, lang)))
        .collect()
}
