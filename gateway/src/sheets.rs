//! Point-list files on disk: the only module that uses calamine (reading
//! .xlsx/.xls/.ods) and encoding_rs (GBK CSV from Chinese Excel). It turns
//! files into [`Table`]s and tables into files; what the cells mean is
//! `gateway_core::pointlist`'s business.

use std::path::Path;

use calamine::{Data, Reader, open_workbook_auto};
use gateway_core::pointlist::{Cell, Row, Source, Table, parse_csv, write_csv, write_xlsx};

/// The kinds of file a point list may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SheetFormat {
    /// .xlsx (also .xlsm, .xls, .ods for reading).
    Workbook,
    /// .csv, comma-separated.
    Csv,
}

/// Why a point-list file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SheetFileError {
    /// The file name does not say what it is.
    #[error(
        "{0}: unknown kind of file; give a name ending in .xlsx or .csv (also .xls, .ods for import)"
    )]
    UnknownKind(String),
    /// Reading or writing the file failed.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        error: std::io::Error,
    },
    /// The workbook cannot be read.
    #[error(
        "{path}: cannot read the workbook: {error}; is it an .xlsx file (not renamed from another kind)? Open and save it again in Excel or LibreOffice"
    )]
    Workbook {
        /// The file.
        path: String,
        /// calamine's explanation.
        error: String,
    },
    /// The CSV text cannot be read.
    #[error("{path}: {message}")]
    Csv {
        /// The file.
        path: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// The .xlsx could not be made.
    #[error("{0}")]
    Xlsx(#[from] gateway_core::pointlist::XlsxError),
}

/// What a file name says the file is.
pub fn format_of(path: &Path, writing: bool) -> Result<SheetFormat, SheetFileError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "csv" => Ok(SheetFormat::Csv),
        "xlsx" => Ok(SheetFormat::Workbook),
        "xlsm" | "xls" | "xlsb" | "ods" if !writing => Ok(SheetFormat::Workbook),
        _ => Err(SheetFileError::UnknownKind(path.display().to_string())),
    }
}

/// The text of a CSV file and a note on how it was decoded (`None` for
/// UTF-8): UTF-8 with or without a byte-order mark, else GBK/GB18030 (what
/// Chinese Excel writes for "CSV (逗号分隔)").
pub fn decode_csv(bytes: &[u8]) -> Result<(String, Option<&'static str>), String> {
    const SAVE_AS: &str = "save it again as UTF-8: in Excel, File → Save As → \"CSV UTF-8 (Comma delimited)\" / \
                           另存为 → \"CSV UTF-8（逗号分隔）\"; in LibreOffice, tick \"Edit filter settings\" and choose Unicode (UTF-8)";
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(format!(
            "the file is UTF-16 (Excel's \"Unicode Text\", tab-separated), not CSV; {SAVE_AS}"
        ));
    }
    let body = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    if let Ok(text) = std::str::from_utf8(body) {
        return Ok((text.to_owned(), None));
    }
    if body.len() < bytes.len() {
        return Err(format!(
            "the file starts with a UTF-8 byte-order mark but is not valid UTF-8; {SAVE_AS}"
        ));
    }
    match encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(body) {
        Some(text) => Ok((text.into_owned(), Some("GBK (Chinese Excel's CSV)"))),
        None => Err(format!("the file is neither UTF-8 nor GBK text; {SAVE_AS}")),
    }
}

fn cell(d: &Data) -> Cell {
    match d {
        Data::Empty => Cell::Empty,
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => Cell::text(s.clone()),
        Data::Float(f) => Cell::Number(*f),
        Data::Int(i) => Cell::Number(*i as f64),
        Data::Bool(b) => Cell::Bool(*b),
        Data::DateTime(t) => Cell::Number(t.as_f64()),
        Data::Error(e) => Cell::Text(format!("(cell error {e})")),
    }
}

/// Every sheet of a workbook as tables, in the workbook's order.
fn read_workbook(path: &Path) -> Result<Vec<Table>, SheetFileError> {
    let fail = |e: calamine::Error| SheetFileError::Workbook {
        path: path.display().to_string(),
        error: e.to_string(),
    };
    let mut wb = open_workbook_auto(path).map_err(fail)?;
    let mut out = Vec::new();
    for name in wb.sheet_names() {
        let range = wb.worksheet_range(&name).map_err(fail)?;
        let (row0, col0) = range.start().unwrap_or((0, 0));
        let rows = range
            .rows()
            .enumerate()
            .filter_map(|(i, cells)| {
                let cells: Vec<Cell> = cells.iter().map(cell).collect();
                (!cells.iter().all(Cell::is_empty)).then(|| Row {
                    at: row0 as usize + i + 1,
                    first_col: col0 as usize,
                    cells,
                })
            })
            .collect();
        out.push(Table {
            name,
            source: Source::Workbook,
            rows,
        });
    }
    Ok(out)
}

/// Reads a point-list file into its tables; the note says how a CSV file
/// was decoded when it was not UTF-8.
pub fn read_tables(path: &Path) -> Result<(Vec<Table>, Option<&'static str>), SheetFileError> {
    match format_of(path, false)? {
        SheetFormat::Workbook => Ok((read_workbook(path)?, None)),
        SheetFormat::Csv => {
            let bytes = std::fs::read(path).map_err(|error| SheetFileError::Io {
                path: path.display().to_string(),
                error,
            })?;
            let csv_err = |message: String| SheetFileError::Csv {
                path: path.display().to_string(),
                message,
            };
            let (text, note) = decode_csv(&bytes).map_err(csv_err)?;
            let tables = parse_csv(&text).map_err(|e| csv_err(e.to_string()))?;
            Ok((tables, note))
        }
    }
}

/// The bytes of a point-list file: .xlsx, or UTF-8 CSV with a byte-order
/// mark (so that Excel shows the Chinese text right).
pub fn render(tables: &[Table], format: SheetFormat) -> Result<Vec<u8>, SheetFileError> {
    match format {
        SheetFormat::Workbook => Ok(write_xlsx(tables)?),
        SheetFormat::Csv => {
            let mut out = vec![0xEF, 0xBB, 0xBF];
            out.extend_from_slice(write_csv(tables).as_bytes());
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use gateway_core::config::Profile;
    use gateway_core::config::load::parse_profile;
    use gateway_core::pointlist::{ImportOptions, export, import};

    use super::*;

    fn opts(name: &str) -> ImportOptions {
        ImportOptions {
            name: name.to_owned(),
            fallback_description: "Imported".to_owned(),
            ..ImportOptions::default()
        }
    }

    fn shipped() -> Vec<(String, Profile)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/profiles");
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().and_then(|x| x.to_str()) != Some("toml") {
                continue;
            }
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((name.clone(), parse_profile(&name, &text).unwrap()));
        }
        assert!(out.len() >= 10, "the shipped profiles: {}", out.len());
        out
    }

    #[test]
    fn every_shipped_profile_round_trips_through_xlsx_and_csv_files() {
        let dir = tempfile::tempdir().unwrap();
        for (name, p) in shipped() {
            for (ext, format) in [("xlsx", SheetFormat::Workbook), ("csv", SheetFormat::Csv)] {
                let path = dir.path().join(format!("{name}.{ext}"));
                std::fs::write(&path, render(&export(&p), format).unwrap()).unwrap();
                let (tables, note) = read_tables(&path).unwrap();
                assert_eq!(note, None);
                if format == SheetFormat::Workbook {
                    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
                    assert_eq!(names.first(), Some(&"points"));
                    assert_eq!(names.last(), Some(&"columns"), "the help sheet comes last");
                }
                let back =
                    import(&tables, &opts(&name)).unwrap_or_else(|e| panic!("{name}.{ext}: {e:?}"));
                assert_eq!(back, p, "{name}.{ext}");
            }
        }
    }

    #[test]
    fn a_bad_workbook_sheet_names_the_cells_where_excel_shows_them() {
        // A maker's workbook: a cover sheet first, the list on "Modbus map"
        // starting at B3 (calamine's range then starts there too).
        let mut wb = rust_xlsxwriter::Workbook::new();
        wb.add_worksheet()
            .set_name("cover")
            .unwrap()
            .write_string(0, 0, "HX-200")
            .unwrap();
        let ws = wb.add_worksheet().set_name("Modbus map").unwrap();
        for (c, h) in ["名称", "地址", "区域", "类型", "倍率"].iter().enumerate() {
            ws.write_string(2, 1 + c as u16, *h).unwrap();
        }
        let rows: [[&str; 5]; 3] = [
            ["flow", "30001", "", "f32", "1"],
            ["level", "0x0G", "input", "u16", "ten"],
            ["temp", "3", "registers", "i16", ""],
        ];
        for (r, row) in rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                if !v.is_empty() {
                    ws.write_string(3 + r as u32, 1 + c as u16, *v).unwrap();
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map.xlsx");
        std::fs::write(&path, wb.save_to_buffer().unwrap()).unwrap();
        let (tables, _) = read_tables(&path).unwrap();
        let errs = import(&tables, &opts("hx")).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        let e = errs[0].to_string();
        assert!(e.contains("no name, no address, no type column"), "{e}");
        assert!(
            e.contains(r#"give --sheet NAME (the file has "Modbus map")"#),
            "{e}"
        );
        let mut o = opts("hx");
        o.sheet = Some("Modbus map".to_owned());
        let errs = import(&tables, &o).unwrap_err();
        let all: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(all.len(), 3, "{all:#?}");
        assert!(
            all[0].starts_with(
                r#"sheet "Modbus map" row 5, column "地址" (cell C5): "0x0G" is not an address"#
            ),
            "{all:#?}"
        );
        assert!(
            all[1].starts_with(
                r#"sheet "Modbus map" row 5, column "倍率" (cell F5): "ten" is not a number"#
            ),
            "{all:#?}"
        );
        assert!(
            all[2].starts_with(
                r#"sheet "Modbus map" row 6, column "区域" (cell D6): "registers" is not an area"#
            ),
            "{all:#?}"
        );
    }

    #[test]
    fn gbk_csv_from_chinese_excel_is_decoded() {
        let text = "名称,中文名,区域,地址,类型,单位\r\nsupply_temp,供水温度,input,0,f32,℃\r\n";
        let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
        assert!(!unmappable);
        assert!(std::str::from_utf8(&bytes).is_err(), "really not UTF-8");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gbk.csv");
        std::fs::write(&path, &bytes).unwrap();
        let (tables, note) = read_tables(&path).unwrap();
        assert!(note.is_some_and(|n| n.contains("GBK")));
        let p = import(&tables, &opts("gbk")).unwrap();
        assert_eq!(p.points[0].label_zh.as_deref(), Some("供水温度"));
        assert_eq!(p.points[0].unit, "℃");
        // UTF-8 with a byte-order mark reads the same.
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(text.as_bytes());
        assert_eq!(decode_csv(&bom).unwrap(), (text.to_owned(), None));
    }

    #[test]
    fn text_in_no_known_encoding_is_refused_with_how_to_save_as_utf8() {
        let e = decode_csv(&[b'a', b',', 0xFF, 0xFF, b'\n']).unwrap_err();
        assert!(e.contains("CSV UTF-8"), "{e}");
        let e = decode_csv(&[0xFF, 0xFE, b'a', 0]).unwrap_err();
        assert!(e.contains("UTF-16"), "{e}");
        assert!(matches!(
            format_of(Path::new("points.txt"), false),
            Err(SheetFileError::UnknownKind(_))
        ));
        assert!(
            format_of(Path::new("p.ods"), true).is_err(),
            "export writes xlsx/csv only"
        );
    }
}
