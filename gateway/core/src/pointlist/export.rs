//! A [`Profile`] → the tables [`super::import`] reads back to the same
//! profile: `points` (every column of [`COLUMNS`]), `health`, `identify`
//! (only when the profile has some) and `profile` (description, order).

use super::columns::{COLUMNS, Column, HEALTH_COLUMNS, IDENTIFY_COLUMNS, PROFILE_COLUMNS};
use super::table::{Cell, Row, Source, Table, format_number};
use crate::config::{PointDef, Profile, RatioKind, TypeName};
use crate::model::{Area, Deadband, WordOrder};

pub(crate) fn type_text(t: TypeName) -> &'static str {
    match t {
        TypeName::Bool => "bool",
        TypeName::Bit => "bit",
        TypeName::U16 => "u16",
        TypeName::I16 => "i16",
        TypeName::U32 => "u32",
        TypeName::I32 => "i32",
        TypeName::U64 => "u64",
        TypeName::I64 => "i64",
        TypeName::F32 => "f32",
        TypeName::F64 => "f64",
        TypeName::String => "string",
    }
}

pub(crate) fn order_text(o: WordOrder) -> &'static str {
    match o {
        WordOrder::Abcd => "ABCD",
        WordOrder::Cdab => "CDAB",
        WordOrder::Badc => "BADC",
        WordOrder::Dcba => "DCBA",
    }
}

fn area_text(a: Area) -> String {
    a.to_string()
}

fn opt_text(s: &Option<String>) -> Cell {
    s.as_deref().map_or(Cell::Empty, Cell::text)
}

fn opt_num(v: Option<f64>) -> Cell {
    v.map_or(Cell::Empty, Cell::Number)
}

fn flag(b: bool) -> Cell {
    if b { Cell::Bool(true) } else { Cell::Empty }
}

fn point_cell(p: &PointDef, c: Column) -> Cell {
    match c {
        Column::Name => Cell::text(&p.name),
        Column::LabelZh => opt_text(&p.label_zh),
        Column::LabelEn => opt_text(&p.label_en),
        Column::Area => Cell::text(area_text(p.area)),
        Column::Address => Cell::Number(f64::from(p.address)),
        Column::Base => Cell::Number(0.0),
        Column::Type => Cell::text(type_text(p.type_name)),
        Column::Bit => opt_num(p.bit.map(f64::from)),
        Column::Length => opt_num(p.length.map(f64::from)),
        Column::Order => p.order.map_or(Cell::Empty, |o| Cell::text(order_text(o))),
        Column::Scale => opt_num((p.scale != 1.0).then_some(p.scale)),
        Column::Offset => opt_num((p.offset != 0.0).then_some(p.offset)),
        Column::Unit => Cell::text(&p.unit),
        Column::Min => opt_num(p.min),
        Column::Max => opt_num(p.max),
        Column::Deadband => match p.deadband {
            None => Cell::Empty,
            Some(Deadband::Absolute(v)) => Cell::Number(v),
            Some(Deadband::Percent(v)) => Cell::text(format!("{}%", format_number(v))),
        },
        Column::Heartbeat => p
            .heartbeat
            .map_or(Cell::Empty, |h| Cell::text(h.to_string())),
        Column::Alarm => flag(p.alarm),
        Column::Critical => flag(p.critical),
        Column::Writable => flag(p.writable),
        Column::WriteMin => opt_num(p.write_min),
        Column::WriteMax => opt_num(p.write_max),
        Column::Ratio => p.ratio.map_or(Cell::Empty, |r| Cell::text(ratio_text(r))),
        Column::AliasOf => opt_text(&p.alias_of),
        Column::Description => opt_text(&p.description),
    }
}

fn header(names: impl Iterator<Item = &'static str>) -> Row {
    Row {
        at: 1,
        first_col: 0,
        cells: names.map(Cell::text).collect(),
    }
}

fn table(name: &str, mut rows: Vec<Row>) -> Table {
    for (i, r) in rows.iter_mut().enumerate() {
        r.at = i + 1;
    }
    Table {
        name: name.to_owned(),
        source: Source::Workbook,
        rows,
    }
}

fn row(cells: Vec<Cell>) -> Row {
    Row {
        at: 0,
        first_col: 0,
        cells,
    }
}

/// The profile as tables, header rows first.
pub fn export(profile: &Profile) -> Vec<Table> {
    let mut points = vec![header(COLUMNS.iter().map(|c| c.name))];
    points.extend(
        profile
            .points
            .iter()
            .map(|p| row(COLUMNS.iter().map(|c| point_cell(p, c.column)).collect())),
    );
    let mut out = vec![table("points", points)];
    if !profile.health.is_empty() {
        let mut rows = vec![header(HEALTH_COLUMNS.iter().map(|(en, _)| *en))];
        rows.extend(profile.health.iter().map(|(name, r)| {
            row(vec![
                Cell::text(name),
                opt_text(&r.when),
                r.hold.map_or(Cell::Empty, |h| Cell::text(h.to_string())),
                opt_text(&r.label_zh),
                opt_text(&r.label_en),
            ])
        }));
        out.push(table("health", rows));
    }
    if !profile.identify.is_empty() {
        let mut rows = vec![header(IDENTIFY_COLUMNS.iter().map(|(en, _)| *en))];
        rows.extend(profile.identify.iter().map(|d| {
            let equals: Vec<String> = d.equals.iter().map(|v| format_number(*v)).collect();
            row(vec![
                Cell::text(area_text(d.area)),
                Cell::Number(f64::from(d.address)),
                Cell::Number(0.0),
                Cell::text(type_text(d.type_name)),
                d.order.map_or(Cell::Empty, |o| Cell::text(order_text(o))),
                Cell::text(equals.join(", ")),
                opt_text(&d.label),
            ])
        }));
        out.push(table("identify", rows));
    }
    let rows = vec![
        header(PROFILE_COLUMNS.iter().map(|(en, _)| *en)),
        row(vec![
            Cell::text("description"),
            Cell::text(&profile.description),
        ]),
        row(vec![
            Cell::text("order"),
            Cell::text(order_text(profile.order)),
        ]),
    ];
    let mut rows = rows;
    for (key, on) in [
        ("primary_values", profile.primary_values),
        ("requires_ct_ratio", profile.requires_ct_ratio),
    ] {
        if on {
            rows.push(row(vec![Cell::text(key), Cell::text("yes")]));
        }
    }
    out.push(table("profile", rows));
    out
}

/// How a transformer ratio kind is written in a sheet and in TOML.
pub(crate) fn ratio_text(r: RatioKind) -> &'static str {
    match r {
        RatioKind::Ct => "ct",
        RatioKind::Pt => "pt",
        RatioKind::CtPt => "ct_pt",
    }
}
