use std::path::Path;

use super::*;
use crate::config::Profile;
use crate::config::load::parse_profile;
use crate::model::{Area, WordOrder};

fn opts(name: &str) -> ImportOptions {
    ImportOptions {
        name: name.to_owned(),
        fallback_description: "Imported from test.csv".to_owned(),
        ..ImportOptions::default()
    }
}

fn csv_import(text: &str, o: &ImportOptions) -> Result<Profile, Vec<SheetError>> {
    import(&parse_csv(text).unwrap(), o)
}

fn shipped() -> Vec<(String, Profile)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/profiles");
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
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 10, "the shipped profiles: {}", out.len());
    out
}

#[test]
fn a_good_sheet_with_chinese_headers_imports_to_the_expected_toml() {
    // Chinese and alias headers, a comment row, a #-column left out, a
    // quoted field with a comma, function codes and reference numbers.
    let text = "\
名称,中文名,英文名,功能码,地址,数据类型,位,倍率,单位,最小值,最大值,报警,可写,写入下限,写入上限,#page,说明\r
# status word first\r
running,运行,Running,3,0,bit,0,,,,,,,,,p12,Motor running\r
fault,故障,Fault,holding,0,bit,1,,,,,是,,,,p12,\r
frequency,频率,Frequency,03,0x0001,uint16,,0.01,Hz,0,50,,,,,p13,\"Output frequency, Hz\"\r
setpoint,设定压力,Pressure setpoint,,40003,u16,,0.01,bar,,,,yes,0,10,p14,\r
";
    let mut o = opts("pump-x");
    o.description = Some("Pump X drive".to_owned());
    o.order = Some(WordOrder::Cdab);
    let p = csv_import(text, &o).unwrap();
    let toml = profile_to_toml(&p);
    let expected = r#"description = "Pump X drive"
order = "CDAB"

[[point]]
name = "running"
label_zh = "运行"
label_en = "Running"
area = "holding"
address = 0
type = "bit"
bit = 0
description = "Motor running"

[[point]]
name = "fault"
label_zh = "故障"
label_en = "Fault"
area = "holding"
address = 0
type = "bit"
bit = 1
alarm = true

[[point]]
name = "frequency"
label_zh = "频率"
label_en = "Frequency"
unit = "Hz"
area = "holding"
address = 1
type = "u16"
scale = 0.01
min = 0.0
max = 50.0
description = "Output frequency, Hz"

[[point]]
name = "setpoint"
label_zh = "设定压力"
label_en = "Pressure setpoint"
unit = "bar"
area = "holding"
address = 2
type = "u16"
scale = 0.01
writable = true
write_min = 0.0
write_max = 10.0
"#;
    assert_eq!(toml, expected);
    assert_eq!(parse_profile("pump-x", &toml).unwrap(), p);
}

#[test]
fn a_bad_sheet_is_refused_with_every_error_by_row_and_column() {
    let text = "\
name,area,address,type,bit,scale,sacle,alarm\n\
ok_point,holding,1,u16,,,,\n\
bad_type,holding,2,uint17,,,,\n\
bad_area,registers,3,u16,,,,\n\
no_address,holding,,u16,,,,\n\
bad_scale,input,4,u16,,zero,,\n\
bad_flag,input,5,u16,,,,maybe\n\
ok_point,input,6,u16,,,,\n\
no_area,,7,u16,,,,\n\
";
    let errs = csv_import(text, &opts("bad")).unwrap_err();
    let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
    let all = shown.join("\n");
    let expect = [
        r#"sheet "points" line 1, column "sacle" (field 7): unknown column "sacle""#,
        r#"sheet "points" line 3, column "type" (field 4): "uint17" is not a type"#,
        r#"sheet "points" line 4, column "area" (field 2): "registers" is not an area"#,
        r#"sheet "points" line 5, column "address" (field 3): empty; every row needs an address"#,
        r#"sheet "points" line 6, column "scale" (field 6): "zero" is not a number"#,
        r#"sheet "points" line 7, column "alarm" (field 8): "maybe" is not yes or no"#,
        r#"sheet "points" line 8, column "name" (field 1): point "ok_point" is also on line 2"#,
        r#"sheet "points" line 9, column "area" (field 2): no area for address 7"#,
    ];
    for e in expect {
        assert!(all.contains(e), "missing {e:?} in:\n{all}");
    }
    assert_eq!(errs.len(), expect.len(), "{all}");
}

#[test]
fn workbook_errors_name_the_cell_and_validation_errors_the_row() {
    // A workbook sheet whose used range starts at B3: C-column errors say C5.
    let cells = |v: &[&str]| v.iter().map(|s| Cell::text(*s)).collect::<Vec<_>>();
    let table = Table {
        name: "Modbus map".to_owned(),
        source: Source::Workbook,
        rows: vec![
            Row {
                at: 3,
                first_col: 1,
                cells: cells(&["name", "address", "area", "type", "bit"]),
            },
            Row {
                at: 4,
                first_col: 1,
                cells: cells(&["flags", "1", "holding", "bit", "17"]),
            },
            Row {
                at: 5,
                first_col: 1,
                cells: cells(&["Bad Name", "x12", "holding", "u16", ""]),
            },
        ],
    };
    let errs = import(std::slice::from_ref(&table), &opts("wb")).unwrap_err();
    let all: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(
        all,
        vec![
            r#"sheet "Modbus map" row 5, column "address" (cell C5): "x12" is not an address; write a decimal number (17), hex (0x11) or a reference number (40018)"#
        ]
    );
    assert_eq!(errs[0].cell_ref().as_deref(), Some("C5"));
    // With the address fixed, validation runs and its findings land on rows.
    let mut fixed = table;
    fixed.rows[2].cells[1] = Cell::Number(12.0);
    let errs = import(&[fixed], &opts("wb")).unwrap_err();
    let all = errs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(all.contains(r#"sheet "Modbus map" row 4: "#), "{all}");
    assert!(
        all.contains(r#"sheet "Modbus map" row 5: point names"#),
        "{all}"
    );
}

#[test]
fn addresses_may_be_one_based_hex_or_reference_numbers() {
    let text = "\
name,area,address,base,type\n\
a,holding,1,,u16\n\
b,input,0x10,,u16\n\
c,,40003,,u16\n\
d,,30001,,u16\n\
e,,00005,,bool\n\
f,,100001,,bool\n\
g,holding,5,0,u16\n\
h,4xxxx,40010,,u16\n\
i,input,40010,,u16\n\
";
    let mut o = opts("addr");
    o.base = Some(1);
    let p = csv_import(text, &o).unwrap();
    let got: Vec<(&str, Area, u16)> = p
        .points
        .iter()
        .map(|p| (p.name.as_str(), p.area, p.address))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a", Area::Holding, 0),
            // hex counts from the base like decimal
            ("b", Area::Input, 15),
            ("c", Area::Holding, 2),
            ("d", Area::Input, 0),
            ("e", Area::Coil, 4),
            ("f", Area::Discrete, 0),
            // a base column overrides --base
            ("g", Area::Holding, 5),
            ("h", Area::Holding, 9),
            // a reference number of another area is a plain number
            ("i", Area::Input, 40009),
        ]
    );
    // Base 0 (the default): plain numbers are protocol addresses.
    let p = csv_import("name,area,address,type\na,holding,1,u16\n", &opts("addr")).unwrap();
    assert_eq!(p.points[0].address, 1);
    // Address 0 in a 1-based list is refused.
    let errs = csv_import("name,area,address,type\na,holding,0,u16\n", &o).unwrap_err();
    assert!(errs[0].to_string().contains("counted from 1"), "{errs:?}");
}

#[test]
fn every_shipped_profile_round_trips_through_csv_and_toml() {
    for (name, p) in shipped() {
        let csv = write_csv(&export(&p));
        let tables = parse_csv(&csv).unwrap();
        let back = import(&tables, &opts(&name)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(back, p, "{name} through CSV");
        // And again with --base 1: the exported base column wins.
        let mut o = opts(&name);
        o.base = Some(1);
        assert_eq!(import(&tables, &o).unwrap(), p, "{name} with --base 1");
        let toml = profile_to_toml(&p);
        assert_eq!(
            parse_profile(&name, &toml).unwrap(),
            p,
            "{name} through TOML"
        );
    }
}

#[test]
fn identify_entries_percent_deadbands_and_odd_text_round_trip() {
    let text = r#"
description = "Meter \"X\"\nsecond line, with comma"
order = "CDAB"
[health]
odd_rule = { when = "a > 1", for = "1m 30s" }
[[identify]]
area = "input"
address = 7
type = "u32"
order = "ABCD"
equals = [1234.0, 0.5]
label = "X-1"
[[point]]
name = "a"
label_zh = "电能"
area = "input"
address = 0
type = "f32"
order = "DCBA"
scale = 1e-7
offset = -273.15
deadband = "2.5%"
heartbeat = "5m"
critical = true
alias_of = "b"
description = "  spaces, \"quotes\" and\nnew lines "
[[point]]
name = "b"
area = "input"
address = 0
type = "u32"
deadband = 0.125
"#;
    let p = parse_profile("m", text).unwrap();
    let tables = parse_csv(&write_csv(&export(&p))).unwrap();
    let back = import(&tables, &opts("m")).unwrap();
    // Text cells are trimmed on import.
    let mut want = p.clone();
    want.points[0].description = Some("spaces, \"quotes\" and\nnew lines".to_owned());
    assert_eq!(back, want);
    assert_eq!(parse_profile("m", &profile_to_toml(&p)).unwrap(), p);
}

#[test]
fn the_csv_reader_handles_quotes_line_breaks_and_sections() {
    let t = parse_csv(
        "a,\"b,c\",\"d \"\"e\"\"\"\r\n\"multi\nline\",x,\r\n\r\n[health]\r\nname\r\nr1\r\n",
    )
    .unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].name, "points");
    assert_eq!(
        t[0].rows[0].cells,
        vec![Cell::text("a"), Cell::text("b,c"), Cell::text("d \"e\"")]
    );
    assert_eq!(t[0].rows[1].cells[0], Cell::text("multi\nline"));
    assert_eq!(t[0].rows[1].at, 2);
    assert_eq!(t[1].name, "health");
    assert_eq!(t[1].rows[1].at, 7);
    assert_eq!(
        parse_csv("a,\"open\nb"),
        Err(CsvError::Unterminated { line: 1 })
    );
    assert_eq!(
        parse_csv("a\n\"x\"y,b"),
        Err(CsvError::AfterQuote { line: 2 })
    );
}

#[test]
fn a_missing_sheet_and_missing_columns_are_named() {
    let tables = parse_csv("name,label_zh\nx,甲\n").unwrap();
    let errs = import(&tables, &opts("m")).unwrap_err();
    assert!(
        errs[0].to_string().contains("no address, no type column"),
        "{errs:?}"
    );
    let mut o = opts("m");
    o.sheet = Some("Sheet9".to_owned());
    let errs = import(&tables, &o).unwrap_err();
    assert!(
        errs[0]
            .to_string()
            .contains(r#"no sheet named "Sheet9"; the file has "points""#),
        "{errs:?}"
    );
}
