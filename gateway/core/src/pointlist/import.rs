//! Tables of cells → a [`Profile`], with every problem of every sheet.

use std::collections::BTreeMap;
use std::str::FromStr;

use super::columns::{
    COLUMNS, Column, HEALTH_COLUMNS, HEALTH_SHEETS, HELP_SHEET, IDENTIFY_COLUMNS, IDENTIFY_SHEETS,
    PROFILE_COLUMNS, PROFILE_SHEETS, normalise, point_column,
};
use super::table::{Cell, Row, SheetError, Table};
use crate::HumanDuration;
use crate::config::validate::validate_profile;
use crate::config::{IdentifyDef, PointDef, Profile, RatioKind, RuleDef, TypeName};
use crate::model::{Area, Deadband, WordOrder};

/// What the command line adds to the sheets.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// The sheet holding the points (default: the first).
    pub sheet: Option<String>,
    /// How plain addresses count: 0 (protocol addresses) or 1. A `base`
    /// column overrides it per row; default 0.
    pub base: Option<u8>,
    /// The profile's description (default: the `profile` sheet's, else
    /// `fallback_description`).
    pub description: Option<String>,
    /// The profile's word order (default: the `profile` sheet's, else ABCD).
    pub order: Option<WordOrder>,
    /// Used when neither the options nor the sheets describe the profile.
    pub fallback_description: String,
    /// The profile's name (its file stem), for validation.
    pub name: String,
}

/// Reads a profile from tables; every problem at once, each with its
/// sheet, row and column. The result has passed [`validate_profile`].
pub fn import(tables: &[Table], opts: &ImportOptions) -> Result<Profile, Vec<SheetError>> {
    let Some(first) = tables.first() else {
        return Err(vec![SheetError {
            sheet: String::new(),
            source: super::Source::Workbook,
            row: None,
            column: None,
            message: "the file holds no sheet".to_owned(),
        }]);
    };
    let points_table = match &opts.sheet {
        None => first,
        Some(name) => match tables
            .iter()
            .find(|t| t.name == *name)
            .or_else(|| tables.iter().find(|t| t.name.eq_ignore_ascii_case(name)))
        {
            Some(t) => t,
            None => {
                let names: Vec<String> = tables.iter().map(|t| format!("{:?}", t.name)).collect();
                return Err(vec![SheetError::sheet(
                    first,
                    format!(
                        "no sheet named {name:?}; the file has {}; give one of them to --sheet",
                        names.join(", ")
                    ),
                )]);
            }
        },
    };
    let by_name = |names: &[&str]| {
        tables
            .iter()
            .filter(|t| !std::ptr::eq(*t, points_table) && t.name != HELP_SHEET)
            .find(|t| names.iter().any(|n| normalise(&t.name) == *n))
    };
    let mut errors = Vec::new();
    let base = opts.base.unwrap_or(0);
    let others: Vec<String> = tables
        .iter()
        .filter(|t| !std::ptr::eq(*t, points_table))
        .map(|t| format!("{:?}", t.name))
        .collect();
    let points = read_points(points_table, base, &others, &mut errors);
    let health = by_name(HEALTH_SHEETS)
        .map(|t| read_health(t, &mut errors))
        .unwrap_or_default();
    let identify = by_name(IDENTIFY_SHEETS)
        .map(|t| read_identify(t, base, &mut errors))
        .unwrap_or_default();
    let settings = by_name(PROFILE_SHEETS)
        .map(|t| read_settings(t, &mut errors))
        .unwrap_or_default();
    if !errors.is_empty() {
        return Err(errors);
    }
    let profile = Profile {
        description: opts
            .description
            .clone()
            .or(settings.description)
            .unwrap_or_else(|| opts.fallback_description.clone()),
        order: opts.order.or(settings.order).unwrap_or_default(),
        points: points.iter().map(|(_, p)| p.clone()).collect(),
        health: health
            .iter()
            .map(|(_, n, r)| (n.clone(), r.clone()))
            .collect(),
        identify,
        primary_values: settings.primary_values.unwrap_or(false),
        requires_ct_ratio: settings.requires_ct_ratio.unwrap_or(false),
    };
    let problems = validate_profile(&opts.name, &profile);
    if problems.is_empty() {
        return Ok(profile);
    }
    let health_table = by_name(HEALTH_SHEETS);
    let prefix = format!("profile {:?}", opts.name);
    Err(problems
        .into_iter()
        .map(|e| {
            let rest = e.path.strip_prefix(&prefix).unwrap_or(&e.path).trim();
            if let Some(name) = quoted_after(rest, "point ")
                && let Some((row, _)) = points.iter().find(|(_, p)| p.name == name)
            {
                return SheetError::at(points_table, *row, None, e.message);
            }
            if let Some(i) = rest
                .strip_prefix("point[")
                .and_then(|r| r.split(']').next())
                .and_then(|i| i.parse::<usize>().ok())
                && let Some((row, _)) = points.get(i)
            {
                return SheetError::at(points_table, *row, None, e.message);
            }
            if let (Some(name), Some(t)) = (quoted_after(rest, "health "), health_table)
                && let Some((row, _, _)) = health.iter().find(|(_, n, _)| *n == name)
            {
                return SheetError::at(t, *row, None, e.message);
            }
            let place = if rest.is_empty() { "profile" } else { rest };
            SheetError::sheet(points_table, format!("{place}: {}", e.message))
        })
        .collect())
}

/// `point "x" …` → `x`.
fn quoted_after(text: &str, key: &str) -> Option<String> {
    let rest = text.strip_prefix(key)?;
    let rest = rest.strip_prefix('"')?;
    let end = rest.find('"')?;
    Some(rest[..end].replace("\\\"", "\""))
}

/// A header row read against a set of known columns.
struct Header<K> {
    /// Column index → (key, header as written).
    cols: Vec<(usize, K, String)>,
}

impl<K: Copy + PartialEq> Header<K> {
    /// The cell of `key` in `row`, with its header and absolute column.
    fn get<'r>(&self, row: &'r Row, key: K) -> Option<(&'r Cell, &str, usize)> {
        let (i, _, h) = self.cols.iter().find(|(_, k, _)| *k == key)?;
        let cell = row.cells.get(*i)?;
        (!cell.is_empty()).then_some((cell, h.as_str(), row.first_col + i))
    }

    fn has(&self, key: K) -> bool {
        self.cols.iter().any(|(_, k, _)| *k == key)
    }
}

/// Reads a header row: every known column, unknown ones refused (or left
/// out when their header starts with `#`), duplicates refused.
fn read_header<K: Copy + PartialEq>(
    table: &Table,
    known: &dyn Fn(&str) -> Option<K>,
    accepted: &str,
    errors: &mut Vec<SheetError>,
) -> Option<Header<K>> {
    let Some(head) = table.rows.first() else {
        errors.push(SheetError::sheet(
            table,
            "the sheet is empty; its first row must name the columns (see the `columns` sheet of an exported file)",
        ));
        return None;
    };
    let mut cols: Vec<(usize, K, String)> = Vec::new();
    for (i, cell) in head.cells.iter().enumerate() {
        let text = cell.as_text();
        let col = head.first_col + i;
        if text.starts_with('#') {
            continue;
        }
        if text.is_empty() {
            if let Some(r) = table.rows[1..]
                .iter()
                .find(|r| r.cells.get(i).is_some_and(|c| !c.is_empty()))
            {
                errors.push(SheetError::at(
                    table,
                    head.at,
                    Some(("", col)),
                    format!(
                        "this column has no header but {} {} has a value in it; give it a header ({accepted}), or start the header with # to leave the column out",
                        table.source.row_word(),
                        r.at
                    ),
                ));
            }
            continue;
        }
        match known(&text) {
            Some(k) => {
                if let Some((_, _, first)) = cols.iter().find(|(_, kk, _)| *kk == k) {
                    errors.push(SheetError::at(
                        table,
                        head.at,
                        Some((&text, col)),
                        format!("the same column as {first:?}; keep one of them"),
                    ));
                } else {
                    cols.push((i, k, text));
                }
            }
            None => errors.push(SheetError::at(
                table,
                head.at,
                Some((&text, col)),
                format!(
                    "unknown column {text:?}; the columns are {accepted}; rename it, or start its header with # to leave it out"
                ),
            )),
        }
    }
    Some(Header { cols })
}

/// Rows after the header that are not comments (`#` in the first cell).
fn data_rows(table: &Table) -> impl Iterator<Item = &Row> {
    table.rows.iter().skip(1).filter(|r| {
        !r.cells
            .iter()
            .find(|c| !c.is_empty())
            .is_some_and(|c| c.as_text().starts_with('#'))
    })
}

/// Collects one row's cell errors.
struct RowCtx<'a, K> {
    table: &'a Table,
    header: &'a Header<K>,
    row: &'a Row,
    errors: &'a mut Vec<SheetError>,
}

impl<K: Copy + PartialEq> RowCtx<'_, K> {
    /// Parses the cell of `key` (None when empty); a failure is recorded.
    fn get<T>(&mut self, key: K, parse: impl Fn(&Cell) -> Result<T, String>) -> Option<T> {
        let (cell, header, col) = self.header.get(self.row, key)?;
        match parse(cell) {
            Ok(v) => Some(v),
            Err(m) => {
                self.errors.push(SheetError::at(
                    self.table,
                    self.row.at,
                    Some((header, col)),
                    m,
                ));
                None
            }
        }
    }

    /// The same, and an error when the cell is empty.
    fn need<T>(
        &mut self,
        key: K,
        header: &str,
        what: &str,
        parse: impl Fn(&Cell) -> Result<T, String>,
    ) -> Option<T> {
        if self.header.get(self.row, key).is_none() {
            let col = self
                .header
                .cols
                .iter()
                .find(|(_, k, _)| *k == key)
                .map(|(i, _, h)| (h.clone(), self.row.first_col + i));
            let (h, c) = col.unwrap_or_else(|| (header.to_owned(), 0));
            self.errors.push(SheetError::at(
                self.table,
                self.row.at,
                Some((&h, c)),
                format!("empty; every row needs {what}"),
            ));
            return None;
        }
        self.get(key, parse)
    }

    fn error(&mut self, key: K, message: String) {
        let (h, c) = self
            .header
            .cols
            .iter()
            .find(|(_, k, _)| *k == key)
            .map(|(i, _, h)| (h.clone(), self.row.first_col + i))
            .unwrap_or_default();
        self.errors.push(SheetError::at(
            self.table,
            self.row.at,
            Some((&h, c)),
            message,
        ));
    }
}

fn accepted_point_columns() -> String {
    COLUMNS
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The point rows, each with its row number.
fn read_points(
    table: &Table,
    base: u8,
    other_sheets: &[String],
    errors: &mut Vec<SheetError>,
) -> Vec<(usize, PointDef)> {
    let accepted = accepted_point_columns();
    let errors_before = errors.len();
    let Some(header) = read_header(table, &point_column, &accepted, errors) else {
        return Vec::new();
    };
    let mut missing = Vec::new();
    for (col, what) in [
        (Column::Name, "name"),
        (Column::Address, "address"),
        (Column::Type, "type"),
    ] {
        if !header.has(col) {
            missing.push(what);
        }
    }
    if !missing.is_empty() {
        if missing.len() == 3 {
            // Not a point list at all: one message, not one per header.
            errors.truncate(errors_before);
        }
        let hint = if other_sheets.is_empty() {
            String::new()
        } else {
            format!(
                "; if the list is on another sheet, give --sheet NAME (the file has {})",
                other_sheets.join(", ")
            )
        };
        errors.push(SheetError::sheet(
            table,
            format!(
                "no {} column in the first row; the first row must name the columns ({accepted}){hint}",
                missing.join(", no ")
            ),
        ));
        return Vec::new();
    }
    let mut out: Vec<(usize, PointDef)> = Vec::new();
    let mut first_row: BTreeMap<String, usize> = BTreeMap::new();
    for row in data_rows(table) {
        let before = errors.len();
        let mut cx = RowCtx {
            table,
            header: &header,
            row,
            errors,
        };
        let name = cx.need(Column::Name, "name", "a point name", |c| Ok(c.as_text()));
        if let Some(n) = &name {
            if let Some(first) = first_row.get(n) {
                cx.error(
                    Column::Name,
                    format!(
                        "point {n:?} is also on {} {first}; point names must be unique",
                        table.source.row_word()
                    ),
                );
            } else {
                first_row.insert(n.clone(), row.at);
            }
        }
        let area_before = cx.errors.len();
        let area_cell = cx.get(Column::Area, parse_area);
        let area_bad = cx.errors.len() != area_before;
        let row_base = cx.get(Column::Base, parse_base).unwrap_or(base);
        let raw_address = cx
            .need(Column::Address, "address", "an address", parse_address)
            .filter(|_| !area_bad);
        let type_name = cx.need(Column::Type, "type", "a type (u16, f32, bit …)", parse_type);
        let mut area = None;
        let mut address = None;
        if let Some(raw) = raw_address {
            match resolve_address(raw, area_cell, row_base) {
                Ok((a, addr)) => {
                    area = Some(a);
                    address = Some(addr);
                }
                Err((col, m)) => cx.error(col, m),
            }
        } else if let Some(a) = area_cell {
            area = Some(a.area());
        }
        let bit = cx.get(Column::Bit, |c| parse_int(c, 255).map(|v| v as u8));
        let length = cx.get(Column::Length, |c| parse_int(c, 65535).map(|v| v as u16));
        let order = cx.get(Column::Order, parse_order);
        let scale = cx.get(Column::Scale, parse_number);
        let offset = cx.get(Column::Offset, parse_number);
        let unit = cx.get(Column::Unit, |c| Ok(c.as_text()));
        let min = cx.get(Column::Min, parse_number);
        let max = cx.get(Column::Max, parse_number);
        let deadband = cx.get(Column::Deadband, parse_deadband);
        let heartbeat = cx.get(Column::Heartbeat, |c| HumanDuration::from_str(&c.as_text()));
        let alarm = cx.get(Column::Alarm, parse_bool);
        let critical = cx.get(Column::Critical, parse_bool);
        let writable = cx.get(Column::Writable, parse_bool);
        let write_min = cx.get(Column::WriteMin, parse_number);
        let write_max = cx.get(Column::WriteMax, parse_number);
        let ratio = cx.get(Column::Ratio, parse_ratio);
        let label_zh = cx.get(Column::LabelZh, |c| Ok(c.as_text()));
        let label_en = cx.get(Column::LabelEn, |c| Ok(c.as_text()));
        let alias_of = cx.get(Column::AliasOf, |c| Ok(c.as_text()));
        let description = cx.get(Column::Description, |c| Ok(c.as_text()));
        if errors.len() != before {
            continue;
        }
        let (Some(name), Some(area), Some(address), Some(type_name)) =
            (name, area, address, type_name)
        else {
            continue;
        };
        out.push((
            row.at,
            PointDef {
                name,
                label_zh,
                label_en,
                unit: unit.unwrap_or_default(),
                area,
                address,
                type_name,
                length,
                bit,
                order,
                scale: scale.unwrap_or(1.0),
                offset: offset.unwrap_or(0.0),
                min,
                max,
                alarm: alarm.unwrap_or(false),
                critical: critical.unwrap_or(false),
                deadband,
                heartbeat,
                description,
                alias_of,
                writable: writable.unwrap_or(false),
                write_min,
                write_max,
                ratio,
            },
        ));
    }
    if out.is_empty() && errors.is_empty() {
        errors.push(SheetError::sheet(
            table,
            "no point rows under the header; a profile needs at least one point",
        ));
    }
    out
}

fn fixed_column<'a>(cols: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<usize> + 'a {
    move |h: &str| {
        let h = normalise(h);
        cols.iter().position(|(en, zh)| *en == h || *zh == h)
    }
}

fn fixed_accepted(cols: &[(&str, &str)]) -> String {
    cols.iter()
        .map(|(en, _)| *en)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `health` sheet: name, when, for, label_zh, label_en.
fn read_health(table: &Table, errors: &mut Vec<SheetError>) -> Vec<(usize, String, RuleDef)> {
    let known = fixed_column(HEALTH_COLUMNS);
    let Some(header) = read_header(table, &known, &fixed_accepted(HEALTH_COLUMNS), errors) else {
        return Vec::new();
    };
    let mut out: Vec<(usize, String, RuleDef)> = Vec::new();
    for row in data_rows(table) {
        let before = errors.len();
        let mut cx = RowCtx {
            table,
            header: &header,
            row,
            errors,
        };
        let name = cx.need(0, "name", "a rule name", |c| Ok(c.as_text()));
        let when = cx.need(
            1,
            "when",
            "a condition (fault == true)",
            |c| Ok(c.as_text()),
        );
        let hold = cx.get(2, |c| HumanDuration::from_str(&c.as_text()));
        let label_zh = cx.get(3, |c| Ok(c.as_text()));
        let label_en = cx.get(4, |c| Ok(c.as_text()));
        if let Some(n) = &name
            && let Some((first, _, _)) = out.iter().find(|(_, m, _)| m == n)
        {
            cx.error(
                0,
                format!(
                    "rule {n:?} is also on {} {first}; rule names must be unique",
                    table.source.row_word()
                ),
            );
        }
        if errors.len() != before {
            continue;
        }
        if let Some(name) = name {
            out.push((
                row.at,
                name,
                RuleDef {
                    when,
                    hold,
                    label_zh,
                    label_en,
                },
            ));
        }
    }
    out
}

/// The `identify` sheet: area, address, base, type, order, equals, label.
fn read_identify(table: &Table, base: u8, errors: &mut Vec<SheetError>) -> Vec<IdentifyDef> {
    let known = fixed_column(IDENTIFY_COLUMNS);
    let Some(header) = read_header(table, &known, &fixed_accepted(IDENTIFY_COLUMNS), errors) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for row in data_rows(table) {
        let before = errors.len();
        let mut cx = RowCtx {
            table,
            header: &header,
            row,
            errors,
        };
        let area_cell = cx.get(0, parse_area);
        let raw = cx.need(1, "address", "an address", parse_address);
        let row_base = cx.get(2, parse_base).unwrap_or(base);
        let type_name = cx.need(3, "type", "a type (u16, u32 …)", parse_type);
        let order = cx.get(4, parse_order);
        let equals = cx.need(5, "equals", "the values that name the model", parse_list);
        let label = cx.get(6, |c| Ok(c.as_text()));
        let mut place = None;
        if let Some(raw) = raw {
            match resolve_address(raw, area_cell, row_base) {
                Ok(p) => place = Some(p),
                Err((col, m)) => cx.error(if col == Column::Area { 0 } else { 1 }, m),
            }
        }
        if errors.len() != before {
            continue;
        }
        if let (Some((area, address)), Some(type_name), Some(equals)) = (place, type_name, equals) {
            out.push(IdentifyDef {
                area,
                address,
                type_name,
                order,
                equals,
                label,
            });
        }
    }
    out
}

#[derive(Default)]
struct Settings {
    description: Option<String>,
    order: Option<WordOrder>,
    primary_values: Option<bool>,
    requires_ct_ratio: Option<bool>,
}

/// The `profile` sheet: key/value rows `description`, `order`,
/// `primary_values`, `requires_ct_ratio`.
fn read_settings(table: &Table, errors: &mut Vec<SheetError>) -> Settings {
    let known = fixed_column(PROFILE_COLUMNS);
    let mut out = Settings::default();
    let Some(header) = read_header(table, &known, &fixed_accepted(PROFILE_COLUMNS), errors) else {
        return out;
    };
    for row in data_rows(table) {
        let mut cx = RowCtx {
            table,
            header: &header,
            row,
            errors,
        };
        let Some(key) = cx.need(0, "key", "a key (description, order)", |c| Ok(c.as_text())) else {
            continue;
        };
        match normalise(&key).as_str() {
            "description" | "描述" => out.description = cx.get(1, |c| Ok(c.as_text())),
            "order" | "字序" => out.order = cx.get(1, parse_order),
            "primary_values" | "一次值" => out.primary_values = cx.get(1, parse_bool),
            "requires_ct_ratio" | "须填电流变比" => {
                out.requires_ct_ratio = cx.get(1, parse_bool)
            }
            _ => cx.error(
                0,
                format!(
                    "unknown key {key:?}; the keys are description, order, primary_values and requires_ct_ratio"
                ),
            ),
        }
    }
    out
}

// ---- cells → values -------------------------------------------------

/// What an area cell says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AreaCell {
    /// A name or function code.
    Named(Area),
    /// `4x`, `4xxxx`: the area, addresses as reference numbers' offsets.
    Reference(Area),
}

impl AreaCell {
    fn area(self) -> Area {
        match self {
            AreaCell::Named(a) | AreaCell::Reference(a) => a,
        }
    }
}

fn parse_area(cell: &Cell) -> Result<AreaCell, String> {
    let t = normalise(&cell.as_text());
    let named = match t.as_str() {
        "holding" | "holding_register" | "holding_registers" | "hr" | "保持寄存器" | "3" | "03"
        | "0x03" | "fc3" => Some(Area::Holding),
        "input" | "input_register" | "input_registers" | "ir" | "输入寄存器" | "4" | "04"
        | "0x04" | "fc4" => Some(Area::Input),
        "coil" | "coils" | "线圈" | "1" | "01" | "0x01" | "fc1" => Some(Area::Coil),
        "discrete" | "discrete_input" | "discrete_inputs" | "di" | "离散输入" | "离散量输入"
        | "2" | "02" | "0x02" | "fc2" => Some(Area::Discrete),
        _ => None,
    };
    if let Some(a) = named {
        return Ok(AreaCell::Named(a));
    }
    let reference = match t.trim_end_matches('x') {
        "4" => Some(Area::Holding),
        "3" => Some(Area::Input),
        "0" => Some(Area::Coil),
        "1" => Some(Area::Discrete),
        _ => None,
    };
    match reference {
        Some(a) if t.len() >= 2 => Ok(AreaCell::Reference(a)),
        _ => Err(format!(
            "{:?} is not an area; write holding, input, coil or discrete, the read function code 3, 4, 1 or 2, or 4xxxx, 3xxxx, 0xxxx, 1xxxx",
            cell.as_text()
        )),
    }
}

/// An address as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RawAddress {
    /// Decimal or hex, counted from the base.
    Plain(u32),
    /// A reference number: the area its first digit names and its offset
    /// counted from 1 (`40018` → holding, 18).
    Reference(Area, u32, u32),
}

fn parse_address(cell: &Cell) -> Result<RawAddress, String> {
    let bad = || {
        format!(
            "{:?} is not an address; write a decimal number (17), hex (0x11) or a reference number (40018)",
            cell.as_text()
        )
    };
    let text = match cell {
        Cell::Number(n) if n.fract() == 0.0 && *n >= 0.0 && *n < 1e7 => format!("{n:.0}"),
        Cell::Number(_) | Cell::Bool(_) => return Err(bad()),
        _ => cell.as_text(),
    };
    let lower = text.to_ascii_lowercase();
    if let Some(hex) = lower.strip_prefix("0x") {
        let v = u32::from_str_radix(hex.trim(), 16).map_err(|_| bad())?;
        return Ok(RawAddress::Plain(v));
    }
    if let Some(hex) = lower.strip_suffix('h')
        && let Ok(v) = u32::from_str_radix(hex.trim(), 16)
    {
        return Ok(RawAddress::Plain(v));
    }
    if !text.chars().all(|c| c.is_ascii_digit()) || text.is_empty() {
        return Err(bad());
    }
    let v: u32 = text.parse().map_err(|_| bad())?;
    if text.len() == 5 || text.len() == 6 {
        let area = match text.as_bytes()[0] {
            b'4' => Some(Area::Holding),
            b'3' => Some(Area::Input),
            b'0' => Some(Area::Coil),
            b'1' => Some(Area::Discrete),
            _ => None,
        };
        let offset: u32 = text[1..].parse().unwrap_or(0);
        if let Some(a) = area
            && offset >= 1
        {
            return Ok(RawAddress::Reference(a, offset, v));
        }
    }
    Ok(RawAddress::Plain(v))
}

fn area_word(a: Area) -> &'static str {
    match a {
        Area::Holding => "holding",
        Area::Input => "input",
        Area::Coil => "coil",
        Area::Discrete => "discrete",
    }
}

/// Address + area cell + base → (area, protocol address). A reference
/// number counts as one when no area is given or the area agrees with
/// its first digit; otherwise it is a plain number.
fn resolve_address(
    raw: RawAddress,
    area: Option<AreaCell>,
    base: u8,
) -> Result<(Area, u16), (Column, String)> {
    let plain = |v: u32, area: Area| -> Result<(Area, u16), (Column, String)> {
        let b = u32::from(base);
        if v < b {
            return Err((
                Column::Address,
                format!(
                    "address {v} in a list counted from 1; the first register is 1 here (or give base 0 if the list counts from 0)"
                ),
            ));
        }
        let p = v - b;
        u16::try_from(p).map(|p| (area, p)).map_err(|_| {
            (
                Column::Address,
                format!("address {v} is past the last Modbus address (65535 counted from 0)"),
            )
        })
    };
    match (raw, area) {
        (RawAddress::Reference(ra, off, _), None) => reference(ra, off),
        (RawAddress::Reference(ra, off, v), Some(a)) => {
            if a.area() == ra {
                reference(ra, off)
            } else {
                plain(v, a.area())
            }
        }
        (RawAddress::Plain(v), Some(a)) => plain(v, a.area()),
        (RawAddress::Plain(v), None) => Err((
            Column::Area,
            format!(
                "no area for address {v}; write holding, input, coil or discrete (or function code 3, 4, 1, 2) in the area column, or give the address as a reference number (4{v:04} for a holding register)"
            ),
        )),
    }
}

fn reference(area: Area, offset: u32) -> Result<(Area, u16), (Column, String)> {
    u16::try_from(offset - 1).map(|a| (area, a)).map_err(|_| {
        (
            Column::Address,
            format!(
                "reference {offset} of the {} area is past the last one (65536)",
                area_word(area)
            ),
        )
    })
}

fn parse_base(cell: &Cell) -> Result<u8, String> {
    match cell.as_text().as_str() {
        "0" => Ok(0),
        "1" => Ok(1),
        t => Err(format!(
            "{t:?} is not a base; write 0 (addresses are protocol addresses) or 1 (the list counts from 1)"
        )),
    }
}

fn parse_type(cell: &Cell) -> Result<TypeName, String> {
    let t = normalise(&cell.as_text());
    Ok(match t.as_str() {
        "bool" | "boolean" => TypeName::Bool,
        "bit" => TypeName::Bit,
        "u16" | "uint16" | "uint" | "unsigned" | "word" | "ushort" => TypeName::U16,
        "i16" | "int16" | "int" | "signed" | "short" => TypeName::I16,
        "u32" | "uint32" | "udint" | "dword" | "ulong" => TypeName::U32,
        "i32" | "int32" | "dint" | "long" => TypeName::I32,
        "u64" | "uint64" | "ulint" => TypeName::U64,
        "i64" | "int64" | "lint" => TypeName::I64,
        "f32" | "float" | "float32" | "real" | "single" => TypeName::F32,
        "f64" | "double" | "float64" | "lreal" => TypeName::F64,
        "string" | "str" | "ascii" | "text" => TypeName::String,
        _ => {
            return Err(format!(
                "{:?} is not a type; write bool, bit, u16, i16, u32, i32, u64, i64, f32, f64 or string",
                cell.as_text()
            ));
        }
    })
}

fn parse_ratio(cell: &Cell) -> Result<RatioKind, String> {
    match normalise(&cell.as_text()).as_str() {
        "ct" => Ok(RatioKind::Ct),
        "pt" => Ok(RatioKind::Pt),
        "ct_pt" | "ct*pt" | "ctpt" => Ok(RatioKind::CtPt),
        _ => Err(format!(
            "{:?} is not a transformer ratio; write ct (a current), pt (a voltage) or ct_pt (a power or energy), or leave it empty",
            cell.as_text()
        )),
    }
}

fn parse_order(cell: &Cell) -> Result<WordOrder, String> {
    match cell.as_text().to_ascii_uppercase().as_str() {
        "ABCD" => Ok(WordOrder::Abcd),
        "CDAB" => Ok(WordOrder::Cdab),
        "BADC" => Ok(WordOrder::Badc),
        "DCBA" => Ok(WordOrder::Dcba),
        _ => Err(format!(
            "{:?} is not a word order; write ABCD (big-endian), CDAB (word swap), BADC (byte swap) or DCBA (little-endian)",
            cell.as_text()
        )),
    }
}

fn parse_number(cell: &Cell) -> Result<f64, String> {
    let v = match cell {
        Cell::Number(n) => Some(*n),
        Cell::Text(t) => t.trim().parse::<f64>().ok(),
        _ => None,
    };
    match v {
        Some(v) if v.is_finite() => Ok(v),
        _ => Err(format!(
            "{:?} is not a number; write it with a dot for decimals (0.01, -5, 1e3)",
            cell.as_text()
        )),
    }
}

fn parse_int(cell: &Cell, max: u32) -> Result<u32, String> {
    let v = parse_number(cell)?;
    if v.fract() != 0.0 || v < 0.0 || v > f64::from(max) {
        return Err(format!(
            "{:?} is not a whole number from 0 to {max}",
            cell.as_text()
        ));
    }
    Ok(v as u32)
}

fn parse_bool(cell: &Cell) -> Result<bool, String> {
    if let Cell::Bool(b) = cell {
        return Ok(*b);
    }
    match normalise(&cell.as_text()).as_str() {
        "true" | "yes" | "y" | "1" | "x" | "✓" | "√" | "on" | "是" | "rw" | "r/w" | "读写" => {
            Ok(true)
        }
        "false" | "no" | "n" | "0" | "off" | "否" | "r" | "ro" | "只读" | "-" => Ok(false),
        _ => Err(format!(
            "{:?} is not yes or no; write yes/no, true/false, 1/0 or 是/否 (empty = no)",
            cell.as_text()
        )),
    }
}

fn parse_deadband(cell: &Cell) -> Result<Deadband, String> {
    let text = cell.as_text();
    if let Some(p) = text.strip_suffix('%') {
        return p
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Deadband::Percent)
            .ok_or_else(|| format!("{text:?} is not a percentage; write it like 2%"));
    }
    parse_number(cell)
        .map(Deadband::Absolute)
        .map_err(|_| format!("{text:?} is not a deadband; write a number in the point's unit (0.05) or a percentage (2%)"))
}

fn parse_list(cell: &Cell) -> Result<Vec<f64>, String> {
    if let Cell::Number(n) = cell {
        return Ok(vec![*n]);
    }
    let text = cell.as_text();
    text.split([',', ';', ' ', '，', '；'])
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let s = s.trim();
            let v = match s.to_ascii_lowercase().strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16).ok().map(|v| v as f64),
                None => s.parse::<f64>().ok(),
            };
            v.filter(|v| v.is_finite()).ok_or_else(|| {
                format!("{s:?} in {text:?} is not a number; list the values separated by commas (1234, 0x04D3)")
            })
        })
        .collect()
}
