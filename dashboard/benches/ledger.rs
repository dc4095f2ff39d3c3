//! Criterion benchmark of the central ledger: rebuilding a large site's
//! month from `ledger.db` (what `/reports/{month}` does before
//! `report::build`).
//!
//! Run: `cargo bench -p dashboard --bench ledger -- --quick`.

#![allow(clippy::unwrap_used)] // benchmark set-up: a panic is the failure report

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use dashboard::ledger::{FILE, Writer, input, open};
use gateway_core::report::{SiteInfo, build};

const HOUR: i64 = 3_600_000;
/// 2026-11-01 00:00 in Asia/Shanghai.
const NOV: i64 = 1_793_462_400_000;

/// `devices` devices over November 2026, each going down for 10–40 min
/// about every two hours, recorded through the writer as the subscriber
/// would.
fn fill(w: &mut Writer, devices: usize) -> usize {
    let mut seq = 0_i64;
    let mut n = 0;
    let topic = |d: &str, kind: &str| {
        vec![
            "big".to_owned(),
            "gw".to_owned(),
            d.to_owned(),
            kind.to_owned(),
        ]
    };
    for i in 0..devices {
        let d = format!("dev-{i}");
        let state = serde_json::json!({"device": d, "class": "pump", "name_zh": d, "name_en": d,
            "location": "", "state": "up", "since": NOV, "reason": null, "seq": 0, "ts": NOV + 720 * HOUR});
        w.record(&topic(&d, "state"), state.to_string().as_bytes(), NOV)
            .unwrap();
        let mut at = NOV + (i as i64 % 60) * 60_000;
        let mut from = "unknown";
        while at < NOV + 720 * HOUR {
            let to = if from == "up" { "down" } else { "up" };
            seq += 1;
            let p = serde_json::json!({"type": "transition", "seq": seq, "device": d, "at": at,
                "from": from, "to": to, "reason": if to == "down" { "comms" } else { "" }, "ts": at});
            w.record(&topic(&d, "event"), p.to_string().as_bytes(), at)
                .unwrap();
            n += 1;
            at += if to == "down" {
                (10 + (seq % 31)) * 60_000
            } else {
                2 * HOUR
            };
            from = to;
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Writer::new(open(&dir.path().join(FILE)).unwrap());
    let n = fill(&mut w, 200);
    eprintln!("{n} transitions");
    let site = SiteInfo {
        id: "big".to_owned(),
        name: "big".to_owned(),
        timezone: "Asia/Shanghai".to_owned(),
    };
    let now = NOV + 720 * HOUR;
    c.bench_function("ledger::input (200 devices, November)", |b| {
        b.iter(|| black_box(input(w.conn(), &site, 2026, 11, now).unwrap()))
    });
    c.bench_function("ledger::input + report::build", |b| {
        b.iter(|| {
            let i = input(w.conn(), &site, 2026, 11, now).unwrap().unwrap();
            black_box(build(&i).unwrap())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
