//! Criterion benchmarks of the monthly report: building a large site's
//! month and rendering it.
//!
//! Run: `cargo bench -p gateway-core --bench report -- --quick`.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gateway_core::config::TicketsConfig;
use gateway_core::model::DeviceClass;
use gateway_core::report::{
    CatalogueDevice, Lang, ReportInput, SiteInfo, build, csv_files, to_html, to_json, to_xlsx,
};
use gateway_core::state::{DeviceState, Interval};
use gateway_core::tickets::{DeviceRef, TicketBook};

const HOUR: i64 = 3_600_000;
/// 2026-11-01 00:00 in Asia/Shanghai.
const NOV: i64 = 1_793_462_400_000;

/// `devices` devices over November 2026, each changing state about every
/// two hours (a fault of 10–40 min, now and then maintenance or a gateway
/// outage), with a ticket for every tenth fault.
fn site(devices: usize) -> ReportInput {
    let classes = DeviceClass::ALL;
    let mut intervals = Vec::new();
    let mut catalogue = Vec::new();
    let mut book = TicketBook::new(
        &TicketsConfig::default(),
        chrono_tz::Asia::Shanghai,
        Vec::new(),
        1,
    );
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rand = move |n: i64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as i64
    };
    for d in 0..devices {
        let id = format!("dev-{d:03}");
        let class = classes[d % classes.len()];
        catalogue.push(CatalogueDevice {
            id: id.clone(),
            name_zh: format!("设备{d}"),
            name_en: format!("Device {d}"),
            class,
            location: String::new(),
            target_percent: class.default_target_percent(),
            known_from_ms: None,
            known_until_ms: None,
        });
        let mut t = NOV - 24 * HOUR;
        let mut faults = 0;
        while t < NOV + 31 * 24 * HOUR {
            let up = HOUR + rand(2 * HOUR);
            intervals.push(Interval {
                device: id.clone(),
                state: DeviceState::Up,
                reason: None,
                from_ms: t,
                to_ms: t + up,
            });
            t += up;
            let (state, len) = match rand(10) {
                0 => (DeviceState::Maintenance, HOUR),
                1 => (DeviceState::Unknown, 20 * 60_000),
                _ => (DeviceState::Down, 10 * 60_000 + rand(30 * 60_000)),
            };
            intervals.push(Interval {
                device: id.clone(),
                state,
                reason: Some("comms".to_owned()),
                from_ms: t,
                to_ms: t + len,
            });
            if state == DeviceState::Down {
                faults += 1;
                if faults % 10 == 0 {
                    let dref = DeviceRef { id: &id, class };
                    book.on_availability_below(dref, 0.9, 98.0, None, t);
                    let n = book.next_id() - 1;
                    let _ = book.ack(n, "li", "", t + 10 * 60_000);
                    let _ = book.resolve(n, "li", "", t + len + 60_000);
                }
            }
            t += len;
        }
    }
    ReportInput {
        site: SiteInfo {
            id: "bench".to_owned(),
            name: "bench".to_owned(),
            timezone: "Asia/Shanghai".to_owned(),
        },
        year: 2026,
        month: 11,
        now_ms: NOV + 35 * 24 * HOUR,
        devices: catalogue,
        intervals,
        tickets: book.tickets().cloned().collect(),
        windows: Vec::new(),
        class_targets: BTreeMap::new(),
    }
}

fn bench(c: &mut Criterion) {
    let input = site(200);
    eprintln!(
        "report bench: {} devices, {} intervals, {} tickets",
        input.devices.len(),
        input.intervals.len(),
        input.tickets.len()
    );
    c.bench_function("build: 200 devices, a month of intervals", |b| {
        b.iter(|| build(black_box(&input)))
    });
    let Ok(report) = build(&input) else {
        return;
    };
    c.bench_function("to_html: 200 devices", |b| {
        b.iter(|| to_html(black_box(&report), Lang::Zh))
    });
    c.bench_function("csv_files: 200 devices", |b| {
        b.iter(|| csv_files(black_box(&report), Lang::Zh))
    });
    c.bench_function("to_xlsx: 200 devices", |b| {
        b.iter(|| to_xlsx(black_box(&report), Lang::Zh))
    });
    c.bench_function("to_json: 200 devices", |b| {
        b.iter(|| to_json(black_box(&report)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
