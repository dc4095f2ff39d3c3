//! Cells, tables and the errors that point at them.

use std::fmt;

/// One cell as read, before any meaning is given to it.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Nothing in it (or only spaces).
    Empty,
    /// Text (everything of a CSV file is text).
    Text(String),
    /// A number typed as a number in a workbook.
    Number(f64),
    /// A TRUE/FALSE cell of a workbook.
    Bool(bool),
}

impl Cell {
    /// A text cell, or [`Cell::Empty`] for blank text.
    pub fn text(s: impl Into<String>) -> Cell {
        let s = s.into();
        if s.trim().is_empty() {
            Cell::Empty
        } else {
            Cell::Text(s)
        }
    }

    /// True when the cell holds nothing.
    pub fn is_empty(&self) -> bool {
        match self {
            Cell::Empty => true,
            Cell::Text(s) => s.trim().is_empty(),
            _ => false,
        }
    }

    /// The cell as text, trimmed: a number as the shortest text that reads
    /// back the same (`40001`, `0.01`), a boolean as `true`/`false`.
    pub fn as_text(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(s) => s.trim().to_owned(),
            Cell::Number(n) => format_number(*n),
            Cell::Bool(b) => b.to_string(),
        }
    }
}

/// `40001.0` → `40001`, `0.01` → `0.01`.
pub(crate) fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{n:.0}")
    } else {
        format!("{n}")
    }
}

/// What kind of file a table came from: decides how places are named
/// (`C7` in a workbook, `line 7, field 3` in a CSV file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A sheet of a workbook; rows and columns as Excel numbers them.
    Workbook,
    /// A section of a CSV file; rows are line numbers.
    Csv,
}

impl Source {
    /// What a row is called: `row` in a workbook, `line` in a CSV file.
    pub fn row_word(self) -> &'static str {
        match self {
            Source::Workbook => "row",
            Source::Csv => "line",
        }
    }
}

/// One row of a table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Where it is: the 1-based row number of the sheet (or the line of
    /// the CSV file where the record starts).
    pub at: usize,
    /// 0-based column number of the first cell (a workbook's used range
    /// need not start at column A).
    pub first_col: usize,
    /// The cells, left to right.
    pub cells: Vec<Cell>,
}

/// A sheet (or a `[section]` of a CSV file): a header row and data rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// The sheet's name (`points` for the first section of a CSV file).
    pub name: String,
    /// Where it came from.
    pub source: Source,
    /// Every non-empty row, header first.
    pub rows: Vec<Row>,
}

/// `0` → `A`, `25` → `Z`, `26` → `AA`.
pub fn column_letter(mut col: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (col % 26) as u8);
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

/// One problem of a sheet: where, what, and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SheetError {
    /// Sheet (or CSV section) name.
    pub sheet: String,
    /// Whether places are workbook cells or CSV lines.
    pub source: Source,
    /// 1-based row (CSV: line); `None` for a problem of the whole sheet.
    pub row: Option<usize>,
    /// Column: its header as written and its 0-based number.
    pub column: Option<(String, usize)>,
    /// What is wrong and what to do.
    pub message: String,
}

impl SheetError {
    /// A problem of a whole sheet.
    pub fn sheet(table: &Table, message: impl Into<String>) -> Self {
        SheetError {
            sheet: table.name.clone(),
            source: table.source,
            row: None,
            column: None,
            message: message.into(),
        }
    }

    /// A problem of a row (or of one of its cells, with `column`).
    pub fn at(
        table: &Table,
        row: usize,
        column: Option<(&str, usize)>,
        message: impl Into<String>,
    ) -> Self {
        SheetError {
            sheet: table.name.clone(),
            source: table.source,
            row: Some(row),
            column: column.map(|(h, c)| (h.to_owned(), c)),
            message: message.into(),
        }
    }

    /// `C7` for a workbook cell with both row and column.
    pub fn cell_ref(&self) -> Option<String> {
        match (self.source, self.row, &self.column) {
            (Source::Workbook, Some(r), Some((_, c))) => Some(format!("{}{r}", column_letter(*c))),
            _ => None,
        }
    }
}

impl fmt::Display for SheetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sheet {:?}", self.sheet)?;
        match (self.source, self.row) {
            (Source::Workbook, Some(r)) => write!(f, " row {r}")?,
            (Source::Csv, Some(r)) => write!(f, " line {r}")?,
            (_, None) => {}
        }
        if let Some((header, c)) = &self.column {
            match self.cell_ref() {
                Some(cell) => write!(f, ", column {header:?} (cell {cell})")?,
                None => write!(f, ", column {header:?} (field {})", c + 1)?,
            }
        }
        write!(f, ": {}", self.message)
    }
}
