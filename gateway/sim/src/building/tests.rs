use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use gateway_core::config::load;

use super::*;

fn demo() -> Resolved {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let text = std::fs::read_to_string(root.join("demo.toml")).unwrap();
    let mut profiles = BTreeMap::new();
    for entry in std::fs::read_dir(root.join("profiles")).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_stem().unwrap().to_str().unwrap().to_owned();
        profiles.insert(
            name,
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            ),
        );
    }
    load::load("demo.toml", &text, &profiles, &|_| None).unwrap()
}

fn snapshot(b: &Building) -> Vec<String> {
    b.devices()
        .iter()
        .map(|d| format!("{:?}", b.points(&d.id).unwrap()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_and_ticks_give_the_same_values() {
    let resolved = demo();
    let t0 = Instant::now();
    let mut a = Building::new(&resolved, 42, 1_704_067_200_000, t0);
    let mut b = Building::new(&resolved, 42, 1_704_067_200_000, t0);
    let mut c = Building::new(&resolved, 43, 1_704_067_200_000, t0);
    for k in 1..=20 {
        let now = t0 + Duration::from_millis(500 * k);
        a.tick(now);
        b.tick(now);
        c.tick(now);
    }
    assert_eq!(snapshot(&a), snapshot(&b));
    assert_ne!(snapshot(&a), snapshot(&c));
}

#[tokio::test(start_paused = true)]
async fn unknown_units_stay_silent_and_scheduled_faults_start_on_time() {
    let resolved = demo();
    let t0 = Instant::now();
    let mut b = Building::new(&resolved, 1, 0, t0);
    assert_eq!(b.serve(0, 99, &[3, 0, 0, 0, 1], t0), Answer::Silent);
    let cfg = FaultConfig {
        device: "pump-1".into(),
        fault: gateway_core::config::FaultName::NoResponse,
        start: Some(gateway_core::HumanDuration::from_secs(10)),
        duration: Some(gateway_core::HumanDuration::from_secs(5)),
        code: None,
        delay: None,
        point: None,
        value: None,
    };
    b.inject(&cfg, t0, t0).unwrap();
    let read = [3, 0, 0, 0, 1];
    assert!(matches!(b.serve(0, 1, &read, t0), Answer::Reply { .. }));
    assert_eq!(
        b.serve(0, 1, &read, t0 + Duration::from_secs(11)),
        Answer::Silent
    );
    assert!(matches!(
        b.serve(0, 1, &read, t0 + Duration::from_secs(15)),
        Answer::Reply { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn with_churn_every_register_read_changes_at_every_read() {
    let resolved = demo();
    let t0 = Instant::now();
    let mut b = Building::new(&resolved, 5, 0, t0);
    let (dev, point) = resolved
        .devices
        .iter()
        .find_map(|d| {
            d.points
                .iter()
                .find(|p| matches!(p.area, Area::Holding | Area::Input))
                .map(|p| (d, p.clone()))
        })
        .unwrap();
    let function = if point.area == Area::Holding { 3 } else { 4 };
    let [hi, lo] = point.address.to_be_bytes();
    let pdu = [function, hi, lo, 0, 1];
    let read = |b: &mut Building| match b.serve(dev.bus, dev.unit, &pdu, t0) {
        Answer::Reply { pdu, .. } => pdu,
        other => panic!("{other:?}"),
    };
    assert_eq!(read(&mut b), read(&mut b), "no churn: the same value");
    b.set_churn(true);
    let (x, y) = (read(&mut b), read(&mut b));
    assert_ne!(x, y, "churn: another value at every read");
}
