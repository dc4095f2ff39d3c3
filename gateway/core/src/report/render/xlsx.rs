//! The report as an .xlsx workbook: one formatted sheet per section
//! (the tables of [`super::tables`]), built in memory.
//!
//! Cells keep their full precision with a display format, so a spreadsheet
//! computes with the exact figures the JSON has: percentages are the
//! fractions formatted `0.00%`, durations hours or minutes formatted `0.00`,
//! instants Excel dates in the site's local time.

use chrono::{Datelike, Timelike};
use chrono_tz::Tz;
use rust_xlsxwriter::{
    Color, ExcelDateTime, Format, FormatAlign, FormatBorder, Workbook, Worksheet,
};

use super::Lang;
use super::tables::{Cell, Table, cell_text, report_zone, tables};
use crate::report::MonthReport;
use crate::state::UnixMs;

/// The workbook could not be made (the writer refused a value).
#[derive(Debug, thiserror::Error)]
#[error("cannot write the .xlsx report: {0}")]
pub struct XlsxError(String);

impl From<rust_xlsxwriter::XlsxError> for XlsxError {
    fn from(e: rust_xlsxwriter::XlsxError) -> Self {
        XlsxError(e.to_string())
    }
}

struct Formats {
    header: Format,
    percent: Format,
    fixed: Format,
    time: Format,
}

fn formats() -> Formats {
    Formats {
        header: Format::new()
            .set_bold()
            .set_text_wrap()
            .set_align(FormatAlign::Center)
            .set_align(FormatAlign::VerticalCenter)
            .set_background_color(Color::RGB(0x00DD_E4EE))
            .set_border(FormatBorder::Thin),
        percent: Format::new().set_num_format("0.00%"),
        fixed: Format::new().set_num_format("0.00"),
        time: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
    }
}

/// The local time of an instant as an Excel date-time.
fn excel_time(tz: Tz, ms: UnixMs) -> Option<ExcelDateTime> {
    let t = chrono::DateTime::from_timestamp_millis(ms)?.with_timezone(&tz);
    let year = u16::try_from(t.year()).ok()?;
    let month = u8::try_from(t.month()).ok()?;
    let day = u8::try_from(t.day()).ok()?;
    let hour = u16::try_from(t.hour()).ok()?;
    let min = u8::try_from(t.minute()).ok()?;
    ExcelDateTime::from_ymd(year, month, day)
        .and_then(|d| d.and_hms(hour, min, t.second()))
        .ok()
}

fn write_cell(
    ws: &mut Worksheet,
    f: &Formats,
    (row, col): (u32, u16),
    c: &Cell,
    tz: Tz,
    lang: Lang,
) -> Result<(), XlsxError> {
    match c {
        Cell::Int(n) => {
            ws.write_number(row, col, *n as f64)?;
        }
        Cell::Percent(Some(v)) => {
            ws.write_number_with_format(row, col, *v, &f.percent)?;
        }
        Cell::Hours(Some(ms)) => {
            ws.write_number_with_format(row, col, *ms as f64 / 3_600_000.0, &f.fixed)?;
        }
        Cell::Minutes(Some(ms)) => {
            ws.write_number_with_format(row, col, *ms as f64 / 60_000.0, &f.fixed)?;
        }
        Cell::Time(Some(ms)) => match excel_time(tz, *ms) {
            Some(t) => {
                ws.write_datetime_with_format(row, col, &t, &f.time)?;
            }
            None => {
                ws.write_string(row, col, cell_text(c, tz, lang))?;
            }
        },
        Cell::Percent(None) | Cell::Hours(None) | Cell::Minutes(None) | Cell::Time(None) => {}
        Cell::Text(s) if s.is_empty() => {}
        Cell::Text(_) | Cell::Met(_) | Cell::Flag(_) => {
            let s = cell_text(c, tz, lang);
            if !s.is_empty() {
                ws.write_string(row, col, s)?;
            }
        }
    }
    Ok(())
}

fn sheet(wb: &mut Workbook, f: &Formats, t: &Table, tz: Tz, lang: Lang) -> Result<(), XlsxError> {
    let ws = wb.add_worksheet();
    ws.set_name(t.title)?;
    for (col, h) in t.columns.iter().enumerate() {
        let col = u16::try_from(col).map_err(|_| XlsxError("too many columns".into()))?;
        ws.write_string_with_format(0, col, *h, &f.header)?;
    }
    for (i, row) in t.rows.iter().enumerate() {
        let r = u32::try_from(i + 1).map_err(|_| XlsxError("too many rows".into()))?;
        for (col, c) in row.iter().enumerate() {
            let col = u16::try_from(col).map_err(|_| XlsxError("too many columns".into()))?;
            write_cell(ws, f, (r, col), c, tz, lang)?;
        }
    }
    ws.set_row_height(0, 32)?;
    ws.set_freeze_panes(1, 0)?;
    let last_col = u16::try_from(t.columns.len().saturating_sub(1)).unwrap_or(0);
    let last_row = u32::try_from(t.rows.len()).unwrap_or(u32::MAX);
    ws.autofilter(0, 0, last_row, last_col)?;
    ws.autofit();
    // Wide enough for a local time, never a sheet of slivers or banners.
    for (col, _) in t.columns.iter().enumerate() {
        let col = u16::try_from(col).unwrap_or(0);
        let has_time = t
            .rows
            .iter()
            .any(|r| matches!(r.get(usize::from(col)), Some(Cell::Time(Some(_)))));
        if has_time {
            ws.set_column_width(col, 20)?;
        }
    }
    Ok(())
}

/// The report as an .xlsx workbook: one sheet per section, named in
/// `lang`, headers bold and frozen, with a filter on each table.
pub fn to_xlsx(r: &MonthReport, lang: Lang) -> Result<Vec<u8>, XlsxError> {
    let tz = report_zone(r);
    let f = formats();
    let mut wb = Workbook::new();
    for t in tables(r, lang) {
        sheet(&mut wb, &f, &t, tz, lang)?;
    }
    Ok(wb.save_to_buffer()?)
}
