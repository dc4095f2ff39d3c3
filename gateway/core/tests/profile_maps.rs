//! Each maker-map profile of the library decodes a frame built from its
//! document's encoding: raw registers as the device sends them → the
//! engineering value the profile promises (scale, word order, sign, CT/PT
//! ratio). A wrong address, scale or word order in a profile fails here.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use gateway_core::config::load::load;
use gateway_core::decode::{decode_bit, decode_registers};
use gateway_core::model::{Area, DataType, Point, Quality, Value};

fn profiles() -> BTreeMap<String, (String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/profiles");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            out.insert(name, (path.display().to_string(), text));
        }
    }
    out
}

/// The resolved points of one device of `profile` with `extra` device keys.
fn points(profile: &str, extra: &str) -> Vec<Point> {
    let text = format!(
        "site = \"s\"\ngateway = \"g\"\n[[bus]]\nid = \"b\"\nkind = \"tcp\"\naddress = \"127.0.0.1:502\"\n\
         [[device]]\nid = \"d\"\nname_zh = \"设备\"\nclass = \"other\"\nbus = \"b\"\nunit = 1\nprofile = \"{profile}\"\n{extra}\n"
    );
    let r = load("t.toml", &text, &profiles(), &|_| None).unwrap();
    r.devices[0].points.as_ref().clone()
}

fn point<'a>(points: &'a [Point], name: &str) -> &'a Point {
    points.iter().find(|p| p.name == name).unwrap()
}

/// An IEEE 754 float as two registers, high word first.
fn f32_abcd(v: f32) -> [u16; 2] {
    let b = v.to_bits();
    [(b >> 16) as u16, b as u16]
}

/// Checks `name` sits at `area`/`address` and decodes `regs` to `expected`
/// (good quality, within 1e-6 relative).
fn expect(points: &[Point], name: &str, area: Area, address: u16, regs: &[u16], expected: f64) {
    let p = point(points, name);
    assert_eq!((p.area, p.address), (area, address), "{name}: where");
    let (v, q) = decode_registers(p, regs);
    assert_eq!(q, Quality::Good, "{name}: {v:?}");
    let got = v.and_then(|v| v.as_f64()).unwrap();
    assert!(
        (got - expected).abs() <= 1e-6 * expected.abs().max(1.0),
        "{name}: {got} != {expected}"
    );
}

fn expect_bit(points: &[Point], name: &str, address: u16, regs: u16, expected: bool) {
    let p = point(points, name);
    assert_eq!(p.address, address, "{name}");
    let DataType::Bit(_) = p.data_type else {
        panic!("{name} is not a bit point")
    };
    let (v, q) = decode_registers(p, &[regs]);
    assert_eq!(
        (v, q),
        (Some(Value::Bool(expected)), Quality::Good),
        "{name}"
    );
}

#[test]
fn dtsu666_floats_are_tenths_of_volts_thousandths_of_amps_and_follow_the_ct() {
    let p = points("meter-dtsu666", "");
    // Ua = 2201 (×0.1 V) = 220.1 V; Ia = 5123 (×0.001 A) = 5.123 A.
    expect(
        &p,
        "voltage_l1",
        Area::Holding,
        0x2006,
        &f32_abcd(2201.0),
        220.1,
    );
    expect(
        &p,
        "current_l1",
        Area::Holding,
        0x200C,
        &f32_abcd(5123.0),
        5.123,
    );
    // Pt = 33850 (×0.1 W) = 3385 W; PFt = 950 → 0.95; Freq = 5001 → 50.01 Hz.
    expect(
        &p,
        "total_power",
        Area::Holding,
        0x2012,
        &f32_abcd(33850.0),
        3385.0,
    );
    expect(
        &p,
        "power_factor",
        Area::Holding,
        0x202A,
        &f32_abcd(950.0),
        0.95,
    );
    expect(
        &p,
        "frequency",
        Area::Holding,
        0x2044,
        &f32_abcd(5001.0),
        50.01,
    );
    expect(
        &p,
        "import_energy",
        Area::Holding,
        0x401E,
        &f32_abcd(1234.5),
        1234.5,
    );
    // Behind a 200/5 A CT (IrAt 40): the same 5.123 A secondary is 204.92 A.
    let p = points("meter-dtsu666", "ct_ratio = 40");
    expect(
        &p,
        "current_l1",
        Area::Holding,
        0x200C,
        &f32_abcd(5123.0),
        204.92,
    );
    expect(
        &p,
        "import_energy",
        Area::Holding,
        0x401E,
        &f32_abcd(1234.5),
        49_380.0,
    );
}

#[test]
fn adl400_integers_follow_the_documented_formulas_with_pt_and_ct() {
    let p = points("meter-adl400", "ct_ratio = 20");
    // U = data × 0.1 V: 2205 → 220.5 V (no PT).
    expect(&p, "voltage_l1", Area::Holding, 0x0061, &[2205], 220.5);
    // I = data × CT × 0.01 A: 250 × 20 × 0.01 = 50 A.
    expect(&p, "current_l1", Area::Holding, 0x0064, &[250], 50.0);
    // P = data × PT × CT × 0.001 kW, signed: 0xFF38 = -200 → -4 kW.
    expect(&p, "total_power", Area::Holding, 0x006A, &[0xFF38], -4.0);
    // E = data × PT × CT × 0.01 kWh over two registers, high word first:
    // 0x0001_86A0 = 100000 → 100000 × 20 × 0.01 = 20000 kWh.
    expect(
        &p,
        "total_energy",
        Area::Holding,
        0x0000,
        &[0x0001, 0x86A0],
        20_000.0,
    );
    expect(&p, "frequency", Area::Holding, 0x0077, &[5000], 50.0);
    expect(&p, "power_factor", Area::Holding, 0x0076, &[980], 0.98);
}

#[test]
fn sdm630_mct_reads_primary_floats_that_fit_its_ct() {
    // A 1000/5 A CT: 812.5 A primary, read as is, inside 6 A × 200.
    let p = points("meter-sdm630-mct", "ct_ratio = 200");
    expect(
        &p,
        "current_l1",
        Area::Input,
        0x0006,
        &f32_abcd(812.5),
        812.5,
    );
    expect(
        &p,
        "voltage_l1",
        Area::Input,
        0x0000,
        &f32_abcd(229.8),
        f64::from(229.8f32),
    );
    expect(
        &p,
        "total_power",
        Area::Input,
        0x0034,
        &f32_abcd(480_000.0),
        480_000.0,
    );
    expect(
        &p,
        "import_energy",
        Area::Input,
        0x0048,
        &f32_abcd(98_765.5),
        98_765.5,
    );
    // The same current on the direct 100 A profile is out of range: the
    // reason for the MCT profile.
    let direct = points("meter-sdm630", "");
    let (_, q) = decode_registers(point(&direct, "current_l1"), &f32_abcd(812.5));
    assert!(!q.is_good());
}

#[test]
fn sdm120_single_phase_floats() {
    let p = points("meter-sdm120", "");
    expect(&p, "voltage", Area::Input, 0x0000, &f32_abcd(231.5), 231.5);
    expect(&p, "current", Area::Input, 0x0006, &f32_abcd(12.25), 12.25);
    expect(
        &p,
        "power",
        Area::Input,
        0x000C,
        &f32_abcd(-1500.0),
        -1500.0,
    );
    expect(
        &p,
        "frequency",
        Area::Input,
        0x0046,
        &f32_abcd(49.98),
        f64::from(49.98f32),
    );
    expect(
        &p,
        "total_energy",
        Area::Input,
        0x0156,
        &f32_abcd(4321.0),
        4321.0,
    );
}

#[test]
fn invt_gd200a_status_and_monitoring_registers() {
    let p = points("drive-invt-gd200a", "");
    expect(&p, "state", Area::Holding, 0x2100, &[1], 1.0); // forward running
    expect(&p, "frequency", Area::Holding, 0x3000, &[4550], 45.5);
    expect(&p, "dc_bus_voltage", Area::Holding, 0x3002, &[5400], 540.0);
    expect(&p, "output_voltage", Area::Holding, 0x3003, &[360], 360.0);
    expect(&p, "output_current", Area::Holding, 0x3004, &[187], 18.7);
    expect(&p, "pid_feedback", Area::Holding, 0x3009, &[625], 62.5);
    expect(
        &p,
        "frequency_setpoint",
        Area::Holding,
        0x000A,
        &[5000],
        50.0,
    );
}

#[test]
fn delta_c2000_status_bits_and_monitor_registers() {
    let p = points("drive-delta-c2000", "");
    // 2101H = 0b011: bits 0–1 = 11 operating.
    expect_bit(&p, "status_bit0", 0x2101, 0b011, true);
    expect_bit(&p, "running", 0x2101, 0b011, true);
    expect_bit(&p, "jog", 0x2101, 0b011, false);
    expect(&p, "error_code", Area::Holding, 0x2100, &[0], 0.0);
    expect(&p, "frequency", Area::Holding, 0x2103, &[4800], 48.0);
    expect(&p, "output_current", Area::Holding, 0x2104, &[1234], 12.34);
    expect(&p, "dc_bus_voltage", Area::Holding, 0x2105, &[5385], 538.5);
    expect(&p, "output_voltage", Area::Holding, 0x2106, &[3800], 380.0);
}

#[test]
fn booster_controller_pressures_and_status_bits() {
    let p = points("booster-pump-controller", "");
    expect(&p, "outlet_pressure", Area::Holding, 0, &[350], 0.35);
    expect(&p, "pressure_setpoint", Area::Holding, 2, &[400], 0.4);
    expect(&p, "frequency", Area::Holding, 3, &[4210], 42.1);
    // Status 0x0101: pump 1 running, auto mode.
    expect_bit(&p, "pump1_running", 4, 0x0101, true);
    expect_bit(&p, "pump2_running", 4, 0x0101, false);
    expect_bit(&p, "auto_mode", 4, 0x0101, true);
    // Alarm 0x0010: low water only.
    expect_bit(&p, "low_water", 5, 0x0010, true);
    expect_bit(&p, "system_fault", 5, 0x0010, false);
}

#[test]
fn th_sensor_reads_tenths_and_negative_temperatures() {
    let p = points("th-sensor-rs485", "");
    expect(&p, "humidity", Area::Holding, 0, &[652], 65.2);
    expect(&p, "temperature", Area::Holding, 1, &[251], 25.1);
    // −10.1 °C is 0xFF9B in two's complement.
    expect(&p, "temperature", Area::Holding, 1, &[0xFF9B], -10.1);
}

#[test]
fn level_transmitter_reads_millimetres_at_three_decimals() {
    let p = points("level-transmitter-rs485", "");
    expect(&p, "decimals", Area::Holding, 3, &[3], 3.0);
    expect(&p, "level", Area::Holding, 4, &[2345], 2.345);
}

#[test]
fn relay_module_coils_and_inputs() {
    let p = points("relay-module-8ch", "");
    for i in 1..=8u16 {
        let r = point(&p, &format!("relay_{i}"));
        assert_eq!((r.area, r.address), (Area::Coil, i - 1));
        assert_eq!(
            decode_bit(r, true),
            (Some(Value::Bool(true)), Quality::Good)
        );
        let d = point(&p, &format!("input_{i}"));
        assert_eq!((d.area, d.address), (Area::Discrete, i - 1));
    }
}
