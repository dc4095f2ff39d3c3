//! Tables → an .xlsx workbook in memory: a bold frozen header row,
//! columns sized by their content, and a last sheet `columns` that
//! explains every column in Chinese and English (import never reads it).

use rust_xlsxwriter::{Color, Format, FormatBorder, Workbook, Worksheet};

use super::columns::{COLUMNS, HELP_SHEET};
use super::table::{Cell, Table};

/// The workbook could not be made (the writer refused a value).
#[derive(Debug, thiserror::Error)]
#[error("cannot write the .xlsx point list: {0}")]
pub struct XlsxError(String);

impl From<rust_xlsxwriter::XlsxError> for XlsxError {
    fn from(e: rust_xlsxwriter::XlsxError) -> Self {
        XlsxError(e.to_string())
    }
}

fn header_format() -> Format {
    Format::new()
        .set_bold()
        .set_background_color(Color::RGB(0x00DD_E4EE))
        .set_border(FormatBorder::Thin)
}

/// Display width of a text: CJK characters count double.
fn width(s: &str) -> usize {
    s.lines()
        .map(|l| {
            l.chars()
                .map(|c| if u32::from(c) >= 0x2E80 { 2 } else { 1 })
                .sum::<usize>()
        })
        .max()
        .unwrap_or(0)
}

fn idx<T: TryFrom<usize>>(i: usize) -> Result<T, XlsxError> {
    T::try_from(i).map_err(|_| XlsxError("too many rows or columns".to_owned()))
}

fn write_table(ws: &mut Worksheet, t: &Table, head: &Format) -> Result<(), XlsxError> {
    ws.set_name(&t.name)?;
    let mut widths: Vec<usize> = Vec::new();
    for (r, row) in t.rows.iter().enumerate() {
        for (c, cell) in row.cells.iter().enumerate() {
            let (rr, cc) = (idx::<u32>(r)?, idx::<u16>(c)?);
            if r == 0 {
                ws.write_string_with_format(rr, cc, cell.as_text(), head)?;
            } else {
                match cell {
                    Cell::Empty => {}
                    Cell::Text(s) => {
                        ws.write_string(rr, cc, s.trim())?;
                    }
                    Cell::Number(n) => {
                        ws.write_number(rr, cc, *n)?;
                    }
                    Cell::Bool(b) => {
                        ws.write_boolean(rr, cc, *b)?;
                    }
                }
            }
            if widths.len() <= c {
                widths.resize(c + 1, 0);
            }
            widths[c] = widths[c].max(width(&cell.as_text()));
        }
    }
    for (c, w) in widths.iter().enumerate() {
        ws.set_column_width(idx::<u16>(c)?, (*w + 2).clamp(6, 60) as f64)?;
    }
    ws.set_freeze_panes(1, 0)?;
    Ok(())
}

fn write_help(ws: &mut Worksheet, head: &Format) -> Result<(), XlsxError> {
    ws.set_name(HELP_SHEET)?;
    let wrap = Format::new().set_text_wrap();
    let heads = [
        "column",
        "中文列名",
        "also accepted / 也可写作",
        "required / 必填",
        "meaning",
        "说明",
    ];
    for (c, h) in heads.iter().enumerate() {
        ws.write_string_with_format(0, idx::<u16>(c)?, *h, head)?;
    }
    for (r, col) in COLUMNS.iter().enumerate() {
        let r = idx::<u32>(r + 1)?;
        ws.write_string(r, 0, col.name)?;
        ws.write_string(r, 1, col.name_zh)?;
        ws.write_string(r, 2, col.aliases.join(", "))?;
        ws.write_string(r, 3, col.required)?;
        ws.write_string_with_format(r, 4, col.help_en, &wrap)?;
        ws.write_string_with_format(r, 5, col.help_zh, &wrap)?;
    }
    let notes = [
        "Rows whose first cell starts with # are comments; a column whose header starts with # is left out; any other unknown column is refused.",
        "以 # 开头的行为注释；表头以 # 开头的列不导入；其他无法识别的列会被拒绝。",
        "Sheets health (fault rules), identify (model recognition) and profile (description, order) are read when present; this sheet is not.",
        "health（故障规则）、identify（型号识别）、profile（描述、字序）工作表存在时一并导入；本工作表不导入。",
    ];
    let start = COLUMNS.len() + 2;
    for (i, n) in notes.iter().enumerate() {
        ws.write_string(idx::<u32>(start + i)?, 0, *n)?;
    }
    for (c, w) in [12.0, 10.0, 30.0, 22.0, 60.0, 50.0].iter().enumerate() {
        ws.set_column_width(idx::<u16>(c)?, *w)?;
    }
    ws.set_freeze_panes(1, 0)?;
    Ok(())
}

/// The tables as an .xlsx file (bytes), each table a sheet in order, then
/// the `columns` help sheet.
pub fn write_xlsx(tables: &[Table]) -> Result<Vec<u8>, XlsxError> {
    let mut wb = Workbook::new();
    let head = header_format();
    for t in tables {
        write_table(wb.add_worksheet(), t, &head)?;
    }
    write_help(wb.add_worksheet(), &head)?;
    Ok(wb.save_to_buffer()?)
}
