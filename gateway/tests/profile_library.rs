//! The whole profile library against the simulator: one device of every
//! shipped profile on a TCP bus, polled over a real socket. Every point
//! decodes with good quality (inside its range, with the device's CT/PT
//! ratios applied) and no health rule holds, so the library's devices show
//! Up in the demo. The writable points of the maker-map profiles take a
//! Modbus write in the simulator and the model follows it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use gateway::south;
use gateway_core::config::load::load;
use gateway_core::config::{BusKind, Condition, Resolved};
use gateway_core::model::{PollClass, PollOutcome, Value};
use gateway_sim::SimOptions;
use gateway_sim::building::{Answer, Building};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

fn library() -> BTreeMap<String, (String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/profiles");
    let mut map = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("profiles folder") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("name")
                .to_owned();
            let text = std::fs::read_to_string(&path).expect("profile");
            map.insert(name, (path.display().to_string(), text));
        }
    }
    map
}

/// Device keys a profile needs beyond the basics (its CTs).
fn extra(profile: &str) -> &'static str {
    match profile {
        // 200/5 A CTs on the meters that read through them.
        "meter-sdm630-mct" | "meter-dtsu666" | "meter-adl400" => "ct_ratio = 40\n",
        _ => "",
    }
}

fn config(profiles: &BTreeMap<String, (String, String)>) -> String {
    let mut text = String::from(
        "site = \"lib\"\ngateway = \"gw-1\"\n\n[[bus]]\nid = \"tcp\"\nkind = \"tcp\"\naddress = \"127.0.0.1:9\"\ntimeout = \"500ms\"\n\n[simulator]\nwire_time = false\n",
    );
    for (unit, name) in profiles.keys().enumerate() {
        text.push_str(&format!(
            "\n[[device]]\nid = \"{name}\"\nname_zh = \"设备\"\nclass = \"other\"\nbus = \"tcp\"\nunit = {}\nprofile = \"{name}\"\npoll_interval = \"200ms\"\nalarm_interval = \"100ms\"\n{}",
            unit + 1,
            extra(name)
        ));
    }
    text
}

fn resolved() -> Resolved {
    let profiles = library();
    load("lib.toml", &config(&profiles), &profiles, &|_| None).expect("valid config")
}

#[tokio::test]
async fn the_simulator_serves_every_profile_and_every_point_decodes_in_range_with_no_rule_holding()
{
    let mut resolved = resolved();
    assert_eq!(resolved.devices.len(), library().len());
    let sim = gateway_sim::start(&resolved, SimOptions::loopback())
        .await
        .expect("simulator starts");
    for bus in &mut resolved.buses {
        assert_eq!(bus.kind, BusKind::Tcp);
        bus.target = sim.tcp_addr(&bus.id).expect("served").to_string();
    }
    let (tx, mut rx) = mpsc::channel(4096);
    let shutdown = CancellationToken::new();
    let handles = south::spawn_buses(&resolved, tx, shutdown.clone());
    let deadline = Instant::now() + Duration::from_millis(2500);
    let mut out: Vec<PollOutcome> = Vec::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => break,
            o = rx.recv() => match o { Some(o) => out.push(o), None => break },
        }
    }
    shutdown.cancel();
    for h in handles {
        h.task.await.expect("bus task ends cleanly");
    }
    sim.shutdown().await;

    for (i, dev) in resolved.devices.iter().enumerate() {
        let full: Vec<&PollOutcome> = out
            .iter()
            .filter(|o| o.device == i && o.class == PollClass::Full)
            .collect();
        assert!(full.len() >= 2, "{}: {} full polls", dev.id, full.len());
        for o in &full {
            assert_eq!(o.failure, None, "{}: {o:?}", dev.id);
            assert_eq!(o.samples.len(), dev.points.len(), "{}", dev.id);
            for s in &o.samples {
                let p = &dev.points[s.point];
                assert!(
                    s.quality.is_good(),
                    "{} point {}: {:?} {:?} (range {:?}..{:?})",
                    dev.id,
                    p.name,
                    s.value,
                    s.quality,
                    p.min,
                    p.max
                );
            }
            let value = |name: &str| {
                let index = dev.points.iter().position(|p| p.name == name)?;
                o.samples
                    .iter()
                    .find(|s| s.point == index)
                    .and_then(|s| s.value.as_ref())
                    .and_then(Value::as_f64)
            };
            for (rule, r) in &dev.health {
                let cond = Condition::parse(&r.when).expect("rule parses");
                assert_eq!(
                    cond.eval(&value),
                    Some(false),
                    "{}: rule {rule} ({}) holds in normal operation",
                    dev.id,
                    r.when
                );
            }
        }
    }
}

/// Writes one holding register (function 06) to `unit` on bus 0.
fn write_register(b: &mut Building, unit: u8, address: u16, value: u16) -> Answer {
    let [ah, al] = address.to_be_bytes();
    let [vh, vl] = value.to_be_bytes();
    b.serve(0, unit, &[0x06, ah, al, vh, vl], Instant::now())
}

#[tokio::test]
async fn writable_points_of_the_library_take_a_write_and_read_only_ones_refuse_it() {
    let resolved = resolved();
    let unit = |id: &str| {
        resolved
            .devices
            .iter()
            .find(|d| d.id == id)
            .map(|d| d.unit)
            .expect("device")
    };
    let now = Instant::now();
    let mut b = Building::new(&resolved, 7, 1_704_067_200_000, now);
    // Booster: pressure setpoint 0.420 MPa at holding 2.
    let answer = write_register(&mut b, unit("booster-pump-controller"), 2, 420);
    assert!(matches!(answer, Answer::Reply { .. }), "{answer:?}");
    b.tick(now + Duration::from_secs(1));
    let v = b
        .value("booster-pump-controller", "pressure_setpoint")
        .expect("value")
        .and_then(|v| v.as_f64())
        .expect("number");
    assert!((v - 0.42).abs() < 1e-9, "{v}");
    // GD200A: keypad frequency P00.10 = 40.00 Hz.
    let answer = write_register(&mut b, unit("drive-invt-gd200a"), 0x000A, 4000);
    assert!(matches!(answer, Answer::Reply { .. }), "{answer:?}");
    b.tick(now + Duration::from_secs(2));
    let v = b
        .value("drive-invt-gd200a", "frequency_setpoint")
        .expect("value")
        .and_then(|v| v.as_f64())
        .expect("number");
    assert!((v - 40.0).abs() < 1e-9, "{v}");
    // A monitoring register of the same drive is read-only: exception.
    let answer = write_register(&mut b, unit("drive-invt-gd200a"), 0x3000, 1);
    match answer {
        Answer::Reply { pdu, .. } => assert_eq!(pdu[0], 0x86, "exception answer: {pdu:?}"),
        other => panic!("{other:?}"),
    }
}
