//! Configuration: parsing, substitution, validation, and every file shipped
//! under `config/`.

// Helpers outside `#[test]` functions panic on broken fixtures too.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gateway_core::config::load::{load, parse_config, parse_profile, profile_names_needed};
use gateway_core::config::validate::{default_inter_frame_delay, validate, validate_profile};
use gateway_core::config::{BusKind, ConfigError, Parity, Resolved};
use gateway_core::model::{Area, DataType, WordOrder};

fn no_env(_: &str) -> Option<String> {
    None
}

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

/// The real profile library, as (name → (file, text)).
fn real_profiles() -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(config_dir().join("profiles")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            out.insert(
                name,
                (
                    path.display().to_string(),
                    std::fs::read_to_string(&path).unwrap(),
                ),
            );
        }
    }
    out
}

/// A small valid gateway file; tests append or replace parts of it.
const BASE: &str = r#"
site = "test-site"
gateway = "gw-1"

[[bus]]
id = "rs485-1"
kind = "rtu"
port = "/dev/ttyUSB0"
baud = 9600

[[bus]]
id = "tcp-power"
kind = "tcp"
address = "127.0.0.1:502"

[[device]]
id = "pump-1"
name_zh = "1号泵"
class = "pump"
bus = "rs485-1"
unit = 1
profile = "pump-vfd"
"#;

fn load_with_real_profiles(text: &str) -> Result<Resolved, Vec<ConfigError>> {
    load("test.toml", text, &real_profiles(), &no_env)
}

fn errors_of(text: &str) -> Vec<String> {
    match load_with_real_profiles(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(errs) => errs.iter().map(ToString::to_string).collect(),
    }
}

fn device(id: &str, bus: &str, unit: u32, profile: &str) -> String {
    format!(
        "\n[[device]]\nid = \"{id}\"\nname_zh = \"设备\"\nclass = \"other\"\nbus = \"{bus}\"\nunit = {unit}\nprofile = \"{profile}\"\n"
    )
}

#[test]
fn every_file_under_config_parses_and_validates_with_the_real_profiles() {
    let profiles = real_profiles();
    assert!(
        profiles.len() >= 10,
        "profiles found: {:?}",
        profiles.keys()
    );
    for (name, (file, text)) in &profiles {
        let profile = parse_profile(file, text).unwrap_or_else(|e| panic!("{file}: {e:?}"));
        let errs = validate_profile(name, &profile);
        assert!(errs.is_empty(), "{file}: {errs:#?}");
    }
    // Variables without a default in the examples get a plausible value.
    let env = |name: &str| match name {
        "TOWER_A_BAS_SERVER" => Some("10.20.1.60:4001".to_owned()),
        _ => None,
    };
    let mut checked = 0;
    let mut dirs = vec![config_dir()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "profiles") {
                    dirs.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let file = path.display().to_string();
            let resolved = load(&file, &text, &profiles, &env).unwrap_or_else(|errs| {
                panic!(
                    "{file}:\n{}",
                    errs.iter().map(|e| format!("  {e}\n")).collect::<String>()
                )
            });
            assert!(!resolved.devices.is_empty(), "{file} has no devices");
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "expected demo.toml and an example, checked {checked}"
    );
}

#[test]
fn the_demo_building_has_three_buses_and_every_device_class() {
    let text = std::fs::read_to_string(config_dir().join("demo.toml")).unwrap();
    let r = load("demo.toml", &text, &real_profiles(), &no_env).unwrap();
    assert_eq!(r.site, "demo-sales-centre");
    assert_eq!(r.gateway, "gw-1");
    let buses: Vec<(&str, BusKind, &str)> = r
        .buses
        .iter()
        .map(|b| (b.id.as_str(), b.kind, b.target.as_str()))
        .collect();
    assert_eq!(
        buses,
        vec![
            ("rs485-1", BusKind::Rtu, "/tmp/bms-demo/rs485-1"),
            ("tcp-power", BusKind::Tcp, "127.0.0.1:15502"),
            ("tcp-bas", BusKind::RtuOverTcp, "127.0.0.1:15503"),
        ]
    );
    assert!(r.devices.len() >= 18, "{}", r.devices.len());
    let classes: std::collections::BTreeSet<_> = r.devices.iter().map(|d| d.class).collect();
    for class in gateway_core::model::DeviceClass::ALL {
        if class != gateway_core::model::DeviceClass::Other {
            assert!(classes.contains(&class), "no {class} device in the demo");
        }
    }
    // The environment moves the endpoints.
    let env = |n: &str| (n == "BMS_DEMO_TCP_POWER").then(|| "127.0.0.1:40000".to_owned());
    let r = load("demo.toml", &text, &real_profiles(), &env).unwrap();
    assert_eq!(r.buses[1].target, "127.0.0.1:40000");
}

#[test]
fn devices_with_the_same_points_share_one_table_and_overrides_get_their_own() {
    let text = format!(
        "{BASE}{}{}{}address_offset = 100\n{}",
        device("meter-1", "tcp-power", 1, "meter-sdm630"),
        device("meter-2", "tcp-power", 2, "meter-sdm630"),
        device("meter-3", "tcp-power", 3, "meter-sdm630"),
        device("meter-4", "tcp-power", 5, "meter-sdm630"),
    );
    let r = load_with_real_profiles(&text).unwrap();
    let meters: Vec<_> = r
        .devices
        .iter()
        .filter(|d| d.id.starts_with("meter"))
        .collect();
    assert_eq!(meters.len(), 4);
    assert!(std::sync::Arc::ptr_eq(&meters[0].points, &meters[1].points));
    // meter-3 moved its addresses: a table of its own, with its offset.
    assert!(!std::sync::Arc::ptr_eq(
        &meters[0].points,
        &meters[2].points
    ));
    assert_eq!(
        meters[2].points[0].address,
        meters[0].points[0].address + 100
    );
    assert!(std::sync::Arc::ptr_eq(&meters[0].points, &meters[3].points));
    // The labels do not depend on addresses: all four share one set.
    for m in &meters[1..] {
        assert!(std::sync::Arc::ptr_eq(&meters[0].labels, &m.labels));
    }
}

#[test]
fn a_device_with_its_own_rule_label_gets_its_own_labels() {
    let text = format!(
        "{BASE}{}{}health = {{ phase_loss = {{ label_zh = \"缺相（本柜）\" }} }}\n",
        device("meter-1", "tcp-power", 1, "meter-sdm630"),
        device("meter-2", "tcp-power", 2, "meter-sdm630"),
    );
    let r = load_with_real_profiles(&text);
    let r = match r {
        Ok(r) => r,
        Err(e) => panic!("{e:?}"),
    };
    let meters: Vec<_> = r
        .devices
        .iter()
        .filter(|d| d.id.starts_with("meter"))
        .collect();
    assert!(!std::sync::Arc::ptr_eq(
        &meters[0].labels,
        &meters[1].labels
    ));
    assert_eq!(meters[1].labels.rules["phase_loss"].zh, "缺相（本柜）");
}

#[test]
fn resolves_defaults_overrides_offsets_and_word_order() {
    let text = format!(
        "{BASE}{}address_offset = 100\norder = \"CDAB\"\npoints = {{ frequency = {{ scale = 0.1, unit = \"rpm\" }}, total_energy = {{ enabled = false }} }}\n{}",
        device("meter-1", "tcp-power", 0, "meter-sdm630"),
        device("panel-1", "rs485-1", 2, "pressure-transmitter"),
    );
    let r = load_with_real_profiles(&text).unwrap();
    assert_eq!(r.timezone, "Asia/Shanghai");
    let pump = &r.devices[0];
    assert_eq!(
        (pump.name_en.as_str(), pump.location.as_str()),
        ("pump-1", "")
    );
    assert_eq!(pump.poll_interval, Duration::from_secs(1));
    assert_eq!(pump.alarm_interval, Duration::from_millis(500));
    assert_eq!(
        (pump.max_registers, pump.max_bits, pump.max_gap),
        // No gap cap by default: the planner's cost model decides.
        (125, 2000, u16::MAX)
    );
    assert_eq!(pump.health["fault"].when, "fault == true");
    assert_eq!(pump.health["fault"].hold, None, "the [health] down_hold");
    let running = pump.points.iter().find(|p| p.name == "running").unwrap();
    assert_eq!(
        (running.area, running.address, running.data_type),
        (Area::Holding, 0, DataType::Bit(0))
    );

    let meter = &r.devices[1];
    assert_eq!(meter.unit, 0, "unit 0 is a valid unit id on TCP");
    let f = meter.points.iter().find(|p| p.name == "frequency").unwrap();
    assert_eq!(
        (f.address, f.scale, f.unit.as_str()),
        (0x46 + 100, 0.1, "rpm")
    );
    assert_eq!(
        f.order,
        WordOrder::Cdab,
        "the device order replaces the profile default"
    );
    assert!(!meter.points.iter().any(|p| p.name == "total_energy"));
    assert_eq!(meter.points.len(), 17);

    // A point that states its own order keeps it.
    let p = r.devices[2]
        .points
        .iter()
        .find(|p| p.name == "pressure")
        .unwrap();
    assert_eq!((p.data_type, p.order), (DataType::F32, WordOrder::Cdab));
}

#[test]
fn the_rtu_inter_frame_delay_defaults_to_three_and_a_half_characters_but_at_least_1750_us() {
    // 9600 baud, 8N1 = 10 bits: 3.5 × 10 / 9600 s = 3.645833 ms.
    assert_eq!(
        default_inter_frame_delay(BusKind::Rtu, 9600, Parity::None, 8, 1),
        Duration::from_nanos(3_645_833)
    );
    // 19200 baud, 8E1 = 11 bits: 2.0052 ms.
    assert_eq!(
        default_inter_frame_delay(BusKind::RtuOverTcp, 19200, Parity::Even, 8, 1),
        Duration::from_nanos(2_005_208)
    );
    // Above 19200 the spec's fixed 1.75 ms applies.
    assert_eq!(
        default_inter_frame_delay(BusKind::Rtu, 115_200, Parity::None, 8, 1),
        Duration::from_micros(1750)
    );
    assert_eq!(
        default_inter_frame_delay(BusKind::Tcp, 9600, Parity::Even, 8, 1),
        Duration::ZERO
    );
    let r = load_with_real_profiles(BASE).unwrap();
    assert_eq!(
        r.buses[0].inter_frame_delay,
        Duration::from_nanos(3_645_833)
    );
    assert_eq!(r.buses[0].bits_per_char(), 10);
    assert_eq!(r.buses[1].inter_frame_delay, Duration::ZERO);
}

#[test]
fn an_unknown_key_is_reported_with_file_line_column_and_table() {
    let text = BASE.replace("unit = 1\n", "unit = 1\ncolour = \"red\"\n");
    let errs = errors_of(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("test.toml:22:1 (device \"pump-1\"): unknown field `colour`"),
        "{}",
        errs[0]
    );
}

#[test]
fn a_value_of_the_wrong_type_is_reported_with_file_line_column_and_table() {
    let text = BASE.replace("baud = 9600", "baud = \"fast\"");
    let errs = errors_of(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("test.toml:9:8 (bus \"rs485-1\"): invalid type: string \"fast\""),
        "{}",
        errs[0]
    );
}

#[test]
fn a_syntax_error_in_a_profile_names_the_profile_file() {
    let err = parse_profile("profiles/x.toml", "description = \"x\"\n[[point]\n").unwrap_err();
    assert!(err[0].path.starts_with("profiles/x.toml:2:"), "{err:?}");
}

#[test]
fn a_point_wider_than_125_registers_is_refused() {
    let profile = "description = \"t\"\n[[point]]\nname = \"pressure\"\narea = \"holding\"\naddress = 0\ntype = \"string\"\nlength = 260\n";
    let mut profiles = real_profiles();
    profiles.insert("wide".into(), ("wide.toml".into(), profile.into()));
    let text = format!("{BASE}{}", device("pump-3", "tcp-power", 3, "wide"));
    let errs: Vec<String> = load("t.toml", &text, &profiles, &no_env)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errs,
        vec![r#"device "pump-3" point "pressure": 130 registers exceed the Modbus limit of 125"#]
    );
}

#[test]
fn a_duplicate_device_id_points_at_the_first_definition() {
    let text = format!("{BASE}{}", device("pump-1", "rs485-1", 2, "pump-vfd"));
    assert_eq!(
        errors_of(&text),
        vec![r#"device "pump-1": duplicate device id (first defined as device[0])"#]
    );
}

#[test]
fn a_missing_profile_lists_the_available_ones() {
    let text = BASE.replace("profile = \"pump-vfd\"", "profile = \"pump-vfdx\"");
    let errs = errors_of(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(r#"device "pump-1": profile "pump-vfdx" not found (available: booster-pump-controller, breaker-di8, "#),
        "{}",
        errs[0]
    );
    assert!(errs[0].contains("pump-vfd,"), "{}", errs[0]);
}

#[test]
fn unit_id_0_on_an_rtu_bus_is_refused_as_the_broadcast_address() {
    let text = BASE.replace("unit = 1", "unit = 0");
    assert_eq!(
        errors_of(&text),
        vec![
            r#"device "pump-1": unit id 0 is the broadcast address and cannot be polled on an RTU bus (use 1–247)"#
        ]
    );
}

#[test]
fn an_unknown_bus_lists_the_known_ones() {
    let text = format!("{BASE}{}", device("pump-9", "rs485-9", 9, "pump-vfd"));
    assert_eq!(
        errors_of(&text),
        vec![r#"device "pump-9": unknown bus "rs485-9" (known: rs485-1, tcp-power)"#]
    );
}

#[test]
fn every_error_is_reported_at_once_each_with_its_path() {
    let text = format!(
        "{}{}{}{}{}",
        BASE.replace("gw-1", "GW 1")
            .replace(
                "baud = 9600",
                "baud = 0\nstop_bits = 3\naddress = \"1.2.3.4:502\""
            )
            .replace(
                "address = \"127.0.0.1:502\"",
                "address = \"no-port\"\ntimeout = \"90s\"\nmax_registers = 200"
            ),
        "timezone = \"Shanghai\"\n".replace("timezone", "# moved below"),
        device("pump-1", "rs485-1", 0, "pump-vfd"),
        device("pump-9", "rs485-9", 9, "nope"),
        device("meter-1", "tcp-power", 1, "meter-sdm630")
            + "poll_interval = \"5ms\"\npoints = { ghost = { scale = 2.0 }, frequency = { scale = 0.0, min = 5.0, max = 1.0 } }\n",
    );
    let text = text.replacen(
        "gateway = \"GW 1\"",
        "gateway = \"GW 1\"\ntimezone = \"Shanghai\"",
        1,
    );
    let errs = errors_of(&text);
    let expected = [
        r#"gateway: gateway id "GW 1" may only contain lowercase letters, digits, '-' and '_'"#,
        r#"timezone: "Shanghai" is not an IANA time zone name"#,
        r#"bus "rs485-1": an rtu bus takes `port` (a serial device path), not `address`"#,
        r#"bus "rs485-1": baud must be above 0"#,
        r#"bus "rs485-1": stop_bits 3 must be 1 or 2"#,
        r#"bus "tcp-power": address "no-port" must be host:port"#,
        r#"bus "tcp-power": timeout 1m 30s exceeds the maximum of 60s"#,
        r#"bus "tcp-power": max_registers 200 is outside 1..=125"#,
        r#"device "pump-1": duplicate device id (first defined as device[0])"#,
        r#"device "pump-1": unit id 0 is the broadcast address"#,
        r#"device "pump-9": unknown bus "rs485-9" (known: rs485-1, tcp-power)"#,
        r#"device "pump-9": profile "nope" not found"#,
        r#"device "meter-1": poll_interval 5ms is below the minimum of 10ms"#,
        r#"device "meter-1" point "ghost": override names no point of profile "meter-sdm630""#,
        r#"device "meter-1" point "frequency": scale 0 must be a finite, non-zero number"#,
        r#"device "meter-1" point "frequency": min 5 is above max 1"#,
    ];
    for want in expected {
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "missing {want:?} in:\n{errs:#?}"
        );
    }
    assert_eq!(errs.len(), expected.len(), "{errs:#?}");
}

#[test]
fn profile_mistakes_are_reported_per_profile_and_point() {
    let profile = r#"
description = "broken"
[health]
hot = "temperature > 30 and ghost == true"
bad = "temperature >"
[[point]]
name = "status"
area = "holding"
address = 0
type = "bit"
[[point]]
name = "count"
area = "coil"
address = 0
type = "u16"
[[point]]
name = "label"
area = "input"
address = 65534
type = "string"
length = 8
[[point]]
name = "temperature"
area = "input"
address = 0
type = "i16"
bit = 3
[[point]]
name = "Temperature"
area = "input"
address = 1
type = "i16"
"#;
    let p = parse_profile("broken.toml", profile).unwrap();
    let errs: Vec<String> = validate_profile("broken", &p)
        .iter()
        .map(ToString::to_string)
        .collect();
    let expected = [
        r#"profile "broken" point "status": type "bit" needs `bit`"#,
        r#"profile "broken" point "count": a coil area holds single bits: the type must be "bool", not "u16""#,
        r#"profile "broken" point "label": address 65534 + 4 registers runs past the last address 65535"#,
        r#"profile "broken" point "temperature": `bit` only applies to type "bit""#,
        r#"profile "broken" point "Temperature": point names must be non-empty"#,
        r#"profile "broken" health "bad": expected a number, true or false at character 14"#,
        r#"profile "broken" health "hot": condition "temperature > 30 and ghost == true" names an unknown point "ghost""#,
    ];
    for want in expected {
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "missing {want:?} in:\n{errs:#?}"
        );
    }
    assert_eq!(errs.len(), expected.len(), "{errs:#?}");
}

#[test]
fn substitution_uses_the_environment_and_defaults_and_keeps_escapes() {
    let text = r#"
site = "${SITE}"
gateway = "${GW:-gw-7}"
data_dir = "$${NOT_A_VAR}"
"#;
    let env = |n: &str| (n == "SITE").then(|| "tower-a".to_owned());
    let c = parse_config("s.toml", text, &env).unwrap();
    assert_eq!(
        (c.site.as_str(), c.gateway.as_str(), c.data_dir.as_str()),
        ("tower-a", "gw-7", "${NOT_A_VAR}")
    );
}

#[test]
fn an_unset_variable_without_default_names_the_variable_file_and_line() {
    let text = "site = \"a\"\ngateway = \"b\"\ndata_dir = \"${DATA_DIR}\"\n";
    let errs = parse_config("s.toml", text, &no_env).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].path, "s.toml:3:13");
    assert!(
        errs[0]
            .message
            .starts_with("environment variable DATA_DIR is not set"),
        "{}",
        errs[0]
    );
}

#[test]
fn error_columns_refer_to_the_text_before_substitution() {
    // The substituted value is longer than `${V}`; the column still points
    // at the unknown key in the file as written.
    let text = "site = \"${V}\" \ngateway = \"g\"\nbogus = 1\n";
    let env = |_: &str| Some("a-much-longer-value".to_owned());
    let errs = parse_config("s.toml", text, &env).unwrap_err();
    assert_eq!(errs[0].path, "s.toml:3:1", "{errs:?}");
}

#[test]
fn profile_names_needed_lists_each_valid_profile_once() {
    let text = format!(
        "{BASE}{}{}",
        device("pump-2", "rs485-1", 2, "pump-vfd"),
        device("x", "rs485-1", 3, "../../etc/passwd")
    );
    let c = parse_config("t.toml", &text, &no_env).unwrap();
    let names: Vec<String> = profile_names_needed(&c).into_iter().collect();
    assert_eq!(names, vec!["pump-vfd"]);
    let errs: Vec<String> = validate(&c, &BTreeMap::new())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        errs.iter()
            .any(|e| e.starts_with(r#"device "x": profile name "../../etc/passwd" may only"#)),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e == r#"device "pump-1": profile "pump-vfd" not found (no profiles were loaded; check profiles_dir)"#),
        "{errs:#?}"
    );
}

#[test]
fn disabled_devices_are_validated_but_not_resolved() {
    let text = format!(
        "{BASE}{}enabled = false\n",
        device("pump-2", "rs485-1", 2, "pump-vfd")
    );
    let r = load_with_real_profiles(&text).unwrap();
    assert_eq!(
        r.devices.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        vec!["pump-1"]
    );
    assert_eq!(r.raw.devices.len(), 2);
}

#[test]
fn two_devices_cannot_share_a_unit_id_on_one_bus() {
    let text = format!("{BASE}{}", device("pump-2", "rs485-1", 1, "pump-vfd"));
    assert_eq!(
        errors_of(&text),
        vec![r#"device "pump-2": unit id 1 on bus "rs485-1" is already used by device "pump-1""#]
    );
}

#[test]
fn overrides_may_be_written_as_subtables_and_their_errors_name_the_device() {
    let text = format!("{BASE}\n[device.points.outlet_pressure]\nmax = 10.0\n");
    let r = load_with_real_profiles(&text).unwrap();
    let p = r.devices[0]
        .points
        .iter()
        .find(|p| p.name == "outlet_pressure")
        .unwrap();
    assert_eq!(p.max, Some(10.0));

    let text = format!("{BASE}\n[device.points.outlet_pressure]\nmaximum = 10.0\n");
    let errs = errors_of(&text);
    assert!(
        errs[0].starts_with(r#"test.toml:25:1 (device "pump-1" [device.points.outlet_pressure]): unknown field `maximum`"#),
        "{errs:?}"
    );
}

#[test]
fn a_misspelt_boolean_in_a_health_hint_is_reported_with_its_position() {
    let profile = "description = \"t\"\n[health]\nfire = \"fire_alarm == ture\"\n[[point]]\nname = \"fire_alarm\"\narea = \"discrete\"\naddress = 0\ntype = \"bool\"\n";
    let p = parse_profile("t.toml", profile).unwrap();
    let errs: Vec<String> = validate_profile("t", &p)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errs,
        vec![
            r#"profile "t" health "fire": expected a number, true or false at character 15, found "ture" in "fire_alarm == ture""#
        ]
    );
}

#[test]
fn a_profile_rule_reading_a_point_the_device_disables_is_refused() {
    let text = format!("{BASE}\n[device.points.outlet_pressure]\nenabled = false\n");
    assert_eq!(
        errors_of(&text),
        vec![
            r#"device "pump-1" health "low_pressure": profile "pump-vfd" rule "low_pressure" reads point "outlet_pressure", which this device disables; enable the point or disable the rule with `health = { low_pressure = "" }`"#
        ]
    );
    // Disabling the rule too makes the device valid.
    let text = format!(
        "{BASE}health = {{ low_pressure = \"\" }}\n[device.points.outlet_pressure]\nenabled = false\n"
    );
    let r = load_with_real_profiles(&text).unwrap();
    assert!(!r.devices[0].health.contains_key("low_pressure"));
}

#[test]
fn maintenance_windows_are_checked_with_the_rest_of_the_file() {
    let text = format!(
        "{BASE}\n[[maintenance]]\nid = \"w1\"\ndevice = \"pump-9\"\nweekly = \"Tue 20:00-22:00\"\n"
    );
    let errs = errors_of(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("maintenance[0].device") && errs[0].contains("no device \"pump-9\""),
        "{errs:?}"
    );
}

#[test]
fn the_pump_profile_gives_low_pressure_a_start_up_grace() {
    let r = load_with_real_profiles(BASE).unwrap();
    let rule = &r.devices[0].health["low_pressure"];
    assert_eq!(rule.when, "running == true and outlet_pressure < 1.5");
    assert_eq!(rule.hold, Some(Duration::from_secs(30)));
}

#[test]
fn a_device_overrides_a_rule_hold_its_condition_or_both() {
    // `{ for }` keeps the profile's condition; a plain text keeps the
    // profile's hold; `{ when, for }` adds a rule with its own hold.
    let text = format!(
        "{BASE}health = {{ low_pressure = {{ for = \"45s\" }}, fault = \"fault == true and ready == true\", \
         slow = {{ when = \"frequency < 10\", for = \"2m\" }} }}\n"
    );
    let r = load_with_real_profiles(&text).unwrap();
    let h = &r.devices[0].health;
    assert_eq!(
        h["low_pressure"].when,
        "running == true and outlet_pressure < 1.5"
    );
    assert_eq!(h["low_pressure"].hold, Some(Duration::from_secs(45)));
    assert_eq!(h["fault"].when, "fault == true and ready == true");
    assert_eq!(h["fault"].hold, None);
    assert_eq!(h["slow"].hold, Some(Duration::from_secs(120)));
    // A new condition for the pump rule keeps its start-up grace.
    let text = format!(
        "{BASE}health = {{ low_pressure = \"running == true and outlet_pressure < 2.0\" }}\n"
    );
    let r = load_with_real_profiles(&text).unwrap();
    assert_eq!(
        r.devices[0].health["low_pressure"].hold,
        Some(Duration::from_secs(30))
    );
    // `for = "0s"` makes it count at once.
    let text = format!("{BASE}health = {{ low_pressure = {{ for = \"0s\" }} }}\n");
    let r = load_with_real_profiles(&text).unwrap();
    assert_eq!(
        r.devices[0].health["low_pressure"].hold,
        Some(Duration::ZERO)
    );
}

#[test]
fn rule_hold_mistakes_are_reported_with_their_path() {
    let text = format!(
        "{BASE}health = {{ low_pressure = {{ for = \"25h\" }}, nope = {{ for = \"5s\" }} }}\n"
    );
    let errs = errors_of(&text);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs.iter().any(
            |e| e.starts_with(r#"device "pump-1" health "low_pressure": `for = "#)
                && e.contains("is longer than 24h")
        ),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with(r#"device "pump-1" health "nope": gives only `for`"#)),
        "{errs:?}"
    );
    // A misspelt key in a rule table is refused by the parser.
    let text = format!("{BASE}health = {{ low_pressure = {{ hold = \"5s\" }} }}\n");
    let errs = errors_of(&text);
    assert!(
        errs.iter().any(|e| e.contains("unknown field `hold`")),
        "{errs:?}"
    );
}

#[test]
fn devices_carry_their_labels_a_relabelled_rule_and_what_fell_back() {
    let text = BASE.replace(
        "profile = \"pump-vfd\"\n",
        "profile = \"pump-vfd\"\nlocation = \"B1 水泵房\"\nlocation_en = \"B1 pump room\"\nhealth = { fault = { label_en = \"Trip\" } }\n",
    );
    let r = load_with_real_profiles(&text).unwrap();
    let d = &r.devices[0];
    assert_eq!(d.location_en, "B1 pump room");
    let p = &d.labels.points["outlet_pressure"];
    assert_eq!(
        (p.zh.as_str(), p.en.as_str()),
        ("出水压力", "Outlet pressure")
    );
    let f = &d.labels.rules["fault"];
    assert_eq!((f.zh.as_str(), f.en.as_str()), ("变频器故障", "Trip"));
    assert!(d.labels.missing.is_empty(), "{:?}", d.labels.missing);

    // A profile of one's own without labels: readable fallbacks, listed.
    let mut profiles = real_profiles();
    profiles.insert(
        "bare".into(),
        (
            "bare.toml".into(),
            "description = \"x\"\n[health]\ntoo_hot = \"temp_c > 30\"\n[[point]]\nname = \"temp_c\"\narea = \"input\"\naddress = 0\ntype = \"u16\"\n".into(),
        ),
    );
    let text = format!("{BASE}{}", device("bare-1", "tcp-power", 9, "bare"));
    let r = load("test.toml", &text, &profiles, &no_env).unwrap();
    let d = r.devices.iter().find(|d| d.id == "bare-1").unwrap();
    assert_eq!(d.labels.points["temp_c"].en, "Temp c");
    assert_eq!(d.labels.rules["too_hot"].zh, "Too hot");
    assert_eq!(d.labels.missing, vec!["point temp_c", "rule too_hot"]);
    // Without location_en, the location stands for it.
    assert_eq!(d.location_en, "");
}

// ---- per-device overrides: address, CT/PT ratios, ranges ----

fn point_of<'a>(r: &'a Resolved, device: &str, point: &str) -> &'a gateway_core::model::Point {
    let d = r.devices.iter().find(|d| d.id == device).unwrap();
    d.points.iter().find(|p| p.name == point).unwrap()
}

fn meter(id: &str, unit: u32, profile: &str, extra: &str) -> String {
    format!("{}{extra}\n", device(id, "tcp-power", unit, profile))
}

#[test]
fn an_address_override_moves_one_point_and_ignores_the_offset() {
    let text = format!(
        "{BASE}{}",
        meter(
            "th-1",
            7,
            "th-sensor-rs485",
            "address_offset = 100\npoints = { temperature = { address = 40 } }"
        )
    );
    let r = load_with_real_profiles(&text).unwrap();
    assert_eq!(point_of(&r, "th-1", "temperature").address, 40);
    // The other point keeps the profile address plus the offset.
    assert_eq!(point_of(&r, "th-1", "humidity").address, 100);
}

#[test]
fn an_address_override_onto_another_point_is_an_overlap_with_its_path() {
    let text = format!(
        "{BASE}{}",
        meter(
            "th-1",
            7,
            "th-sensor-rs485",
            "points = { temperature = { address = 0 } }"
        )
    );
    let errs = errors_of(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(
            r#"device "th-1" point "temperature": address 0 on this device reads holding register"#
        ),
        "{}",
        errs[0]
    );
    assert!(errs[0].contains("\"humidity\""), "{}", errs[0]);
    // Past the end of the address space.
    let text = format!(
        "{BASE}{}",
        meter(
            "m-1",
            8,
            "meter-sdm120",
            "points = { voltage = { address = 65535 } }"
        )
    );
    let errs = errors_of(&text);
    assert!(
        errs.iter().any(|e| e
            .starts_with(r#"device "m-1" point "voltage": address 65535 + 2 registers runs past"#)),
        "{errs:?}"
    );
}

#[test]
fn ct_and_pt_ratios_scale_values_ranges_and_deadbands_of_marked_points() {
    let text = format!(
        "{BASE}{}{}",
        meter(
            "dtsu-1",
            7,
            "meter-dtsu666",
            "ct_ratio = 40\npt_ratio = 100"
        ),
        meter("dtsu-2", 8, "meter-dtsu666", "")
    );
    let r = load_with_real_profiles(&text).unwrap();
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.abs().max(1.0);
    // Current: 0.001 A per count × CT 40; range 0..100 A × 40.
    let i = point_of(&r, "dtsu-1", "current_l1");
    assert!(close(i.scale, 0.04), "{}", i.scale);
    assert_eq!(i.max, Some(4000.0));
    // Voltage: × PT only.
    let u = point_of(&r, "dtsu-1", "voltage_l1");
    assert!(close(u.scale, 10.0), "{}", u.scale);
    assert_eq!(u.max, Some(30000.0));
    // Power: × CT × PT, and the absolute deadband with it.
    let p = point_of(&r, "dtsu-1", "total_power");
    assert!(close(p.scale, 0.1 * 4000.0), "{}", p.scale);
    assert_eq!(p.max, Some(75000.0 * 4000.0));
    assert_eq!(
        p.deadband,
        Some(gateway_core::model::Deadband::Absolute(400_000.0))
    );
    // Unmarked points do not move.
    let pf = point_of(&r, "dtsu-1", "power_factor");
    assert!(close(pf.scale, 0.001));
    // Without ratios, the profile as written.
    let i2 = point_of(&r, "dtsu-2", "current_l1");
    assert!(close(i2.scale, 0.001));
    assert_eq!(i2.max, Some(100.0));
}

#[test]
fn a_meter_reporting_primary_values_only_widens_its_ranges() {
    let text = format!(
        "{BASE}{}",
        meter("mct-1", 7, "meter-sdm630-mct", "ct_ratio = 200")
    );
    let r = load_with_real_profiles(&text).unwrap();
    let i = point_of(&r, "mct-1", "current_l1");
    assert_eq!(i.scale, 1.0, "the meter applies its CT itself");
    assert_eq!(i.max, Some(1200.0));
    let p = point_of(&r, "mct-1", "total_power");
    assert_eq!(p.max, Some(5400.0 * 200.0));
    // A device's own range is taken as written (already primary-side).
    let text = format!(
        "{BASE}{}",
        meter(
            "mct-1",
            7,
            "meter-sdm630-mct",
            "ct_ratio = 200\npoints = { current_l1 = { max = 800.0 } }"
        )
    );
    let r = load_with_real_profiles(&text).unwrap();
    assert_eq!(point_of(&r, "mct-1", "current_l1").max, Some(800.0));
}

#[test]
fn ratio_mistakes_are_reported_with_the_device_path() {
    // The MCT profile needs its CT ratio.
    let errs = errors_of(&format!(
        "{BASE}{}",
        meter("mct-1", 7, "meter-sdm630-mct", "")
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(
            r#"device "mct-1": profile "meter-sdm630-mct" reads a CT-connected meter"#
        ),
        "{}",
        errs[0]
    );
    // A ratio must be a positive number within reason.
    for bad in ["0", "-5", "1e9"] {
        let errs = errors_of(&format!(
            "{BASE}{}",
            meter("dtsu-1", 7, "meter-dtsu666", &format!("ct_ratio = {bad}"))
        ));
        assert!(
            errs.iter()
                .any(|e| e.starts_with(r#"device "dtsu-1": ct_ratio "#) && e.contains("above 0")),
            "{bad}: {errs:?}"
        );
    }
    // A ratio on a profile that marks no such point is a slip.
    let errs = errors_of(&format!(
        "{BASE}{}",
        meter("th-1", 7, "th-sensor-rs485", "pt_ratio = 100")
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(
            r#"device "th-1": pt_ratio is set but profile "th-sensor-rs485" marks no point"#
        ),
        "{}",
        errs[0]
    );
}

#[test]
fn a_ratio_on_a_boolean_point_is_refused_in_the_profile() {
    let profile = r#"
description = "x"
[[point]]
name = "on"
area = "coil"
address = 0
type = "bool"
ratio = "ct"
"#;
    let mut profiles = real_profiles();
    profiles.insert(
        "bad".to_owned(),
        ("bad.toml".to_owned(), profile.to_owned()),
    );
    let text = format!("{BASE}{}", device("x-1", "tcp-power", 9, "bad"));
    let errs: Vec<String> = load("test.toml", &text, &profiles, &no_env)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        errs.iter().any(|e| e.starts_with(r#"profile "bad" point "on": ratio = "ct" scales numbers only"#)),
        "{errs:?}"
    );
}

#[test]
fn device_ranges_replace_the_profiles_and_an_inverted_range_is_refused() {
    let text = format!(
        "{BASE}{}",
        meter(
            "th-1",
            7,
            "th-sensor-rs485",
            "points = { temperature = { min = 5.0, max = 35.0 } }"
        )
    );
    let r = load_with_real_profiles(&text).unwrap();
    let t = point_of(&r, "th-1", "temperature");
    assert_eq!((t.min, t.max), (Some(5.0), Some(35.0)));
    let errs = errors_of(&format!(
        "{BASE}{}",
        meter(
            "th-1",
            7,
            "th-sensor-rs485",
            "points = { temperature = { min = 90.0 } }"
        )
    ));
    assert_eq!(
        errs,
        vec![r#"device "th-1" point "temperature": min 90 is above max 80"#.to_owned()]
    );
}
