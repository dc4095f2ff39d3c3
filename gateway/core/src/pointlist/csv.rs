//! A small, strict CSV reader and writer (RFC 4180: comma-separated,
//! fields in double quotes may hold commas, quotes doubled and line
//! breaks) for point lists.
//!
//! One file may hold several tables: a row whose only cell is a section
//! name in brackets (`[health]`) starts the next one, the way sheets do in
//! a workbook. Rows before any section line are the `points` table. Text
//! arrives decoded (the caller strips a byte-order mark and decodes GBK).

use super::table::{Cell, Row, Source, Table};

/// The name of a CSV file's first table.
pub const FIRST_TABLE: &str = "points";

/// Why a CSV text cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// A quoted field never ends.
    #[error(
        "line {line}: a field opened with a double quote is never closed; \
         close it, or double a quote that belongs to the text (\"\")"
    )]
    Unterminated {
        /// Line where the field starts.
        line: usize,
    },
    /// Text right after a closing quote.
    #[error(
        "line {line}: text after the closing quote of a field; put the whole \
         field in quotes and double the quotes inside it (\"a \"\"b\"\" c\")"
    )]
    AfterQuote {
        /// Line of the closing quote.
        line: usize,
    },
}

/// Splits CSV text into records (line of the start, fields).
fn records(text: &str) -> Result<Vec<(usize, Vec<String>)>, CsvError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    loop {
        if chars.peek().is_none() {
            break;
        }
        let start = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted_start: Option<usize> = None;
        let mut in_quotes = false;
        let mut after_quote = false;
        loop {
            let Some(c) = chars.next() else {
                if in_quotes {
                    return Err(CsvError::Unterminated {
                        line: quoted_start.unwrap_or(start),
                    });
                }
                fields.push(std::mem::take(&mut field));
                break;
            };
            if in_quotes {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    '"' => {
                        in_quotes = false;
                        after_quote = true;
                    }
                    '\n' => {
                        line += 1;
                        field.push('\n');
                    }
                    '\r' if chars.peek() == Some(&'\n') => {}
                    c => field.push(c),
                }
                continue;
            }
            match c {
                ',' => {
                    fields.push(std::mem::take(&mut field));
                    after_quote = false;
                }
                '\r' if chars.peek() == Some(&'\n') => {}
                '\n' | '\r' => {
                    line += 1;
                    fields.push(std::mem::take(&mut field));
                    break;
                }
                '"' if field.trim().is_empty() && !after_quote => {
                    field.clear();
                    in_quotes = true;
                    quoted_start = Some(line);
                }
                c if after_quote && c.is_whitespace() => {}
                _ if after_quote => return Err(CsvError::AfterQuote { line }),
                c => field.push(c),
            }
        }
        out.push((start, fields));
    }
    Ok(out)
}

/// A `[name]` section line: its name.
fn section_name(fields: &[String]) -> Option<&str> {
    let (first, rest) = fields.split_first()?;
    if !rest.iter().all(|f| f.trim().is_empty()) {
        return None;
    }
    let name = first.trim().strip_prefix('[')?.strip_suffix(']')?.trim();
    (!name.is_empty()).then_some(name)
}

/// Reads CSV text into its tables (the first is `points`); empty rows are
/// left out, every table keeps the line numbers of its rows.
pub fn parse_csv(text: &str) -> Result<Vec<Table>, CsvError> {
    let mut tables = vec![Table {
        name: FIRST_TABLE.to_owned(),
        source: Source::Csv,
        rows: Vec::new(),
    }];
    for (line, fields) in records(text)? {
        if let Some(name) = section_name(&fields) {
            tables.push(Table {
                name: name.to_owned(),
                source: Source::Csv,
                rows: Vec::new(),
            });
            continue;
        }
        let cells: Vec<Cell> = fields.into_iter().map(Cell::text).collect();
        if cells.iter().all(Cell::is_empty) {
            continue;
        }
        if let Some(t) = tables.last_mut() {
            t.rows.push(Row {
                at: line,
                first_col: 0,
                cells,
            });
        }
    }
    if tables.len() > 1 && tables[0].rows.is_empty() {
        tables.remove(0);
    }
    Ok(tables)
}

fn quote(field: &str) -> String {
    let needs = field.contains([',', '"', '\n', '\r'])
        || field.starts_with(char::is_whitespace)
        || field.ends_with(char::is_whitespace)
        || field.starts_with('[');
    if needs {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

/// Writes tables as CSV text (CRLF line ends, as Excel writes them): the
/// first table without a section line, each further one after an empty
/// line and its `[name]`. The caller adds a UTF-8 byte-order mark so that
/// Excel reads the Chinese text right.
pub fn write_csv(tables: &[Table]) -> String {
    let mut out = String::new();
    for (i, t) in tables.iter().enumerate() {
        if i > 0 {
            out.push_str("\r\n");
            out.push_str(&format!("[{}]", t.name));
            out.push_str("\r\n");
        }
        for row in &t.rows {
            let fields: Vec<String> = row.cells.iter().map(|c| quote(&c.as_text())).collect();
            out.push_str(&fields.join(","));
            out.push_str("\r\n");
        }
    }
    out
}
