//! Criterion benchmarks of the north side's hot paths, per message of the
//! load run (a device of 30 `u16` holding registers, every value changed):
//!
//! - the telemetry payload: the JSON builder (`serde_json::Value`) and the
//!   direct encoder the gateway uses;
//! - the outbox: appending a 100 ms batch (50 messages, one transaction),
//!   reading a window after the cursor, removing what was acknowledged;
//! - the live tail that serves the publisher from memory.
//!
//! Run: `cargo bench -p gateway --bench north_paths -- --quick`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench: a panic is the report

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use gateway::north::live::LiveTail;
use gateway::north::outbox::{Kind, NewRecord, OutboxReader, OutboxWriter};
use gateway::wire::{self, TelemetryEncoder};
use gateway_core::config::{Fsync, Resolved};
use gateway_core::model::{PollClass, PollOutcome, Quality, Sample, Value};

/// The load run's device: 30 holding registers `r00`…`r29`, `u16`.
fn config(dir: &std::path::Path) -> Resolved {
    let profiles = dir.join("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    let mut p = String::from("description = \"Load-run device: 30 holding registers\"\n");
    for i in 0..30 {
        p.push_str(&format!(
            "[[point]]\nname = \"r{i:02}\"\narea = \"holding\"\naddress = {i}\ntype = \"u16\"\n"
        ));
    }
    std::fs::write(profiles.join("load-30.toml"), p).unwrap();
    let text = format!(
        "site = \"load\"\ngateway = \"gw\"\nprofiles_dir = \"{}\"\ndata_dir = \"{}\"\n\
         [[bus]]\nid = \"b0\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1502\"\n\
         [[device]]\nid = \"d0\"\nname_zh = \"设备0\"\nclass = \"other\"\nbus = \"b0\"\nunit = 1\nprofile = \"load-30\"\n",
        profiles.display(),
        dir.join("data").display()
    );
    let file = dir.join("gw.toml");
    std::fs::write(&file, text).unwrap();
    gateway::files::load_config(&file).unwrap()
}

fn outcome(n: u64) -> PollOutcome {
    PollOutcome {
        device: 0,
        ts_ms: 1_795_750_631_979 + n as i64,
        class: PollClass::Full,
        samples: (0..30)
            .map(|point| Sample {
                point,
                value: Some(Value::UInt(1000 + n + point as u64)),
                quality: Quality::Good,
            })
            .collect(),
        failure: None,
        requests: 1,
        failed_requests: 0,
        elapsed_us: 900,
    }
}

/// A stored telemetry record of the load run's size (seq appended so that
/// records differ as the real ones do).
fn record(seq: u64, payload: &[u8]) -> NewRecord {
    let mut payload = payload.to_vec();
    payload.extend_from_slice(seq.to_string().as_bytes());
    NewRecord {
        topic: "bms/load/gw/d0/telemetry".to_owned(),
        payload,
        qos: 1,
        retain: false,
        kind: Kind::Telemetry,
    }
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let dev = &cfg.devices[0];
    let o = outcome(7);

    c.bench_function("telemetry 30 points: serde_json Value builder", |b| {
        b.iter(|| {
            black_box(wire::with_seq(
                wire::telemetry(dev, black_box(&o), None),
                42,
            ))
        })
    });
    let mut enc = TelemetryEncoder::default();
    c.bench_function("telemetry 30 points: direct encoder", |b| {
        b.iter(|| black_box(enc.telemetry(dev, black_box(&o), None).with_seq(42)))
    });

    let payload = enc.telemetry(dev, &o, None).with_seq(0);
    let data = dir.path().join("outbox");
    let mut w = OutboxWriter::open(&data, Fsync::Batch, 4_000_000_000).unwrap();
    let mut r = OutboxReader::open(&data, Fsync::Batch, w.stats()).unwrap();

    // One flush of 500 devices' telemetry every 100 ms: 50 messages.
    c.bench_function("outbox append 50 messages (one transaction)", |b| {
        b.iter(|| {
            let recs: Vec<(u64, NewRecord)> = (0..50)
                .map(|i| {
                    let seq = w.next_seq() + i;
                    (seq, record(seq, &payload))
                })
                .collect();
            w.append_numbered(&recs).unwrap();
        })
    });
    // Keep the outbox as small as in steady flow: a window of records.
    let all: Vec<u64> = r
        .after(0, 1_000_000)
        .unwrap()
        .iter()
        .map(|x| x.seq)
        .collect();
    r.remove(&all[..all.len().saturating_sub(200)]).unwrap();
    let first = r.after(0, 1).unwrap()[0].seq;
    let mut k = 0u64;
    c.bench_function(
        "outbox read 100 after a cursor (changing cursor and limit)",
        |b| {
            b.iter(|| {
                k = (k + 1) % 50;
                black_box(r.after(first + k, 100 - k as usize).unwrap())
            })
        },
    );
    c.bench_function("outbox append 50 + remove 50 acknowledged", |b| {
        b.iter(|| {
            let base = w.next_seq();
            let recs: Vec<(u64, NewRecord)> = (0..50)
                .map(|i| (base + i, record(base + i, &payload)))
                .collect();
            w.append_numbered(&recs).unwrap();
            let seqs: Vec<u64> = (base..base + 50).collect();
            r.remove(&seqs).unwrap();
        })
    });

    let tail = LiveTail::default();
    let next = std::cell::Cell::new(1u64);
    c.bench_function("live tail: push 50, take 50", |b| {
        b.iter_batched(
            || {
                let n = next.get();
                next.set(n + 50);
                (0..50)
                    .map(|i| (n + i, record(n + i, &payload)))
                    .collect::<Vec<_>>()
            },
            |recs| {
                let cursor = recs[0].0 - 1;
                tail.push(recs, true);
                let mut out = Vec::with_capacity(50);
                assert!(tail.take(cursor, 50, &mut out));
                black_box(out)
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(north_paths, benches);
criterion_main!(north_paths);
