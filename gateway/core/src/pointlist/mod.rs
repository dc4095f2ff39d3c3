//! Point lists as spreadsheets: a profile's points (and its health rules,
//! `[[identify]]` entries and profile-level settings) as tables of cells,
//! read from and written to .xlsx and .csv by `gateway profile import` /
//! `gateway profile export`.
//!
//! Nothing here reads files: the gateway crate turns a workbook or a CSV
//! file into [`Table`]s (calamine, text decoding) and writes what
//! [`export`] returns. The column layout is documented in
//! `docs/profiles.md` ("Point lists from spreadsheets") and in the
//! `columns` sheet that [`xlsx`] writes; [`columns`] holds the names.
//!
//! A sheet is checked all at once: [`import`] returns every
//! [`SheetError`] (sheet, row, column, cell reference, what is wrong and
//! what to do), never only the first.

mod columns;
mod csv;
mod export;
mod import;
mod table;
mod toml_out;
mod xlsx;

pub use columns::{COLUMNS, Column, ColumnHelp};
pub use csv::{CsvError, parse_csv, write_csv};
pub use export::export;
pub use import::{ImportOptions, import};
pub use table::{Cell, Row, SheetError, Source, Table, column_letter};
pub use toml_out::profile_to_toml;
pub use xlsx::{XlsxError, write_xlsx};

#[cfg(test)]
mod tests;
