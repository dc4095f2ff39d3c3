//! Criterion benchmarks of the hot pure paths: decoding a device's answer
//! and planning its requests.
//!
//! Run: `cargo bench -p gateway-core --bench decode_plan -- --quick`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gateway_core::decode::{decode_request, encode_registers};
use gateway_core::model::{Area, DataType, Point, Value, WordOrder};
use gateway_core::plan::{Barriers, Limits, Request, plan};

const LIMITS: Limits = Limits {
    max_registers: 125,
    max_bits: 2000,
    max_gap: 4,
};

/// A 30-point device in the style of a multifunction meter plus status
/// words: 12 f32 (CDAB), 6 scaled i16, 4 u32, 8 status bits of one register.
/// `shift` moves some points so that devices differ.
fn device(shift: u16) -> Vec<Point> {
    let mut points = Vec::with_capacity(30);
    let mut add = |address: u16, data_type: DataType, order: WordOrder, scale: f64| {
        points.push(Point {
            name: format!("p{}", points.len()),
            unit: String::new(),
            area: Area::Input,
            address,
            data_type,
            order,
            scale,
            offset: 0.0,
            min: Some(-1e6),
            max: Some(1e6),
            alarm: points.len() % 5 == 0,
            critical: false,
            deadband: None,
            heartbeat: None,
            write: None,
        });
    };
    for i in 0..12 {
        add(i * 2, DataType::F32, WordOrder::Cdab, 1.0);
    }
    for i in 0..6 {
        add(30 + i + shift % 3, DataType::I16, WordOrder::Abcd, 0.1);
    }
    for i in 0..4 {
        add(40 + i * 2, DataType::U32, WordOrder::Abcd, 1.0);
    }
    for b in 0..8 {
        add(60 + shift % 7, DataType::Bit(b), WordOrder::Abcd, 1.0);
    }
    points
}

/// The registers a device would answer for `req`, built with the encoder.
fn answer(points: &[Point], req: &Request) -> Vec<u16> {
    let mut words = vec![0u16; usize::from(req.count)];
    for &i in &req.points {
        let p = &points[i];
        let value = match p.data_type {
            DataType::Bit(_) => Value::Bool(i % 2 == 0),
            _ => Value::Float(i as f64 * 1.5),
        };
        let regs = encode_registers(p, &value).expect("invariant: bench values fit");
        let at = usize::from(p.address - req.start);
        for (k, r) in regs.into_iter().enumerate() {
            words[at + k] |= r;
        }
    }
    words
}

fn benches(c: &mut Criterion) {
    let points = device(0);
    let requests = plan(&points, &|_| true, LIMITS, &Barriers::new());
    let answers: Vec<Vec<u16>> = requests.iter().map(|r| answer(&points, r)).collect();

    c.bench_function("decode 30-point device answer", |b| {
        b.iter(|| {
            let mut n = 0;
            for (req, words) in requests.iter().zip(&answers) {
                n += decode_request(black_box(&points), req, black_box(words)).len();
            }
            n
        });
    });

    c.bench_function("plan 30-point device", |b| {
        b.iter(|| plan(black_box(&points), &|_| true, LIMITS, &Barriers::new()));
    });

    let fleet: Vec<Vec<Point>> = (0..500).map(device).collect();
    c.bench_function("plan 500 devices x 30 points", |b| {
        b.iter(|| {
            fleet
                .iter()
                .map(|d| plan(black_box(d), &|_| true, LIMITS, &Barriers::new()).len())
                .sum::<usize>()
        });
    });
}

criterion_group!(decode_plan, benches);
criterion_main!(decode_plan);
