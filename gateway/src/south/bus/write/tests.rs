//! Writes on a scripted register bank, on a paused clock: which function
//! goes on the wire, the read-modify-write of a bit, the read-back, and
//! what a device that ignores or refuses a write gives.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_core::config::{BusKind, Parity, ResolvedBus, ResolvedDevice};
use gateway_core::model::{
    Area, DataType, DeviceClass, FailureKind, Point, PollOutcome, Value, WordOrder, WriteRange,
};
use gateway_core::write::Outcome;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{WriteJob, WriteReport};
use crate::south::bus::{BusCounters, BusOptions, BusTask};
use crate::south::link::{Data, Link, ReadError, WriteData};

/// How the scripted device treats writes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// Stores them.
    Keep,
    /// Confirms them and keeps its old value (a local/remote switch).
    Ignore,
    /// Answers exception 4 (server device failure).
    Refuse,
}

#[derive(Default)]
struct Bank {
    words: BTreeMap<u16, u16>,
    coils: BTreeMap<u16, bool>,
    /// Every write, as sent.
    writes: Vec<(u16, WriteData)>,
    reads: usize,
}

struct BankLink {
    bank: Arc<Mutex<Bank>>,
    mode: Mode,
}

impl Link for BankLink {
    fn read(
        &mut self,
        _unit: u8,
        area: Area,
        start: u16,
        count: u16,
    ) -> impl Future<Output = Result<Data, ReadError>> + Send {
        let mut b = self.bank.lock().unwrap();
        b.reads += 1;
        let data = if area.is_bits() {
            Data::Bits(
                (start..start + count)
                    .map(|a| b.coils.get(&a).copied().unwrap_or(false))
                    .collect(),
            )
        } else {
            Data::Words(
                (start..start + count)
                    .map(|a| b.words.get(&a).copied().unwrap_or(0))
                    .collect(),
            )
        };
        async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(data)
        }
    }

    fn write(
        &mut self,
        _unit: u8,
        start: u16,
        data: &WriteData,
    ) -> impl Future<Output = Result<(), ReadError>> + Send {
        let mut b = self.bank.lock().unwrap();
        b.writes.push((start, data.clone()));
        let answer = match self.mode {
            Mode::Refuse => Err(ReadError::Failed(FailureKind::Exception { code: 4 })),
            Mode::Ignore => Ok(()),
            Mode::Keep => {
                match data {
                    WriteData::Coil(on) => {
                        b.coils.insert(start, *on);
                    }
                    WriteData::Register(v) => {
                        b.words.insert(start, *v);
                    }
                    WriteData::Registers(ws) => {
                        for (i, w) in ws.iter().enumerate() {
                            b.words.insert(start + u16::try_from(i).unwrap(), *w);
                        }
                    }
                }
                Ok(())
            }
        };
        async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            answer
        }
    }
}

fn point(name: &str, area: Area, address: u16, data_type: DataType) -> Point {
    Point {
        name: name.to_owned(),
        unit: String::new(),
        area,
        address,
        data_type,
        order: WordOrder::Abcd,
        scale: 1.0,
        offset: 0.0,
        min: None,
        max: None,
        alarm: false,
        critical: false,
        deadband: None,
        heartbeat: None,
        write: Some(WriteRange::default()),
    }
}

fn device(points: Vec<Point>) -> ResolvedDevice {
    ResolvedDevice {
        id: "ahu-1".to_owned(),
        name_zh: "ahu-1".to_owned(),
        name_en: "ahu-1".to_owned(),
        class: DeviceClass::Hvac,
        location: String::new(),
        location_en: String::new(),
        labels: Default::default(),
        bus: 0,
        unit: 1,
        profile: "test".to_owned(),
        poll_interval: Duration::from_secs(1),
        alarm_interval: Duration::from_millis(500),
        max_gap: 8,
        max_registers: 125,
        max_bits: 2000,
        points: Arc::new(points.clone()),
        health: BTreeMap::new(),
        threshold_percent: 98.0,
        writable: points.iter().map(|p| p.name.clone()).collect(),
    }
}

fn bus() -> ResolvedBus {
    ResolvedBus {
        id: "line-1".to_owned(),
        kind: BusKind::Rtu,
        target: "/dev/null".to_owned(),
        baud: 9600,
        parity: Parity::None,
        stop_bits: 1,
        data_bits: 8,
        timeout: Duration::from_secs(1),
        inter_frame_delay: Duration::from_millis(2),
        max_registers: 125,
        max_bits: 2000,
        max_gap: 8,
    }
}

fn points() -> Vec<Point> {
    vec![
        point("run_cmd", Area::Coil, 0, DataType::Bool),
        point("setpoint", Area::Holding, 10, DataType::U16),
        point("flow_limit", Area::Holding, 20, DataType::F32),
        point("reset", Area::Holding, 30, DataType::Bit(3)),
    ]
}

struct Rig {
    bank: Arc<Mutex<Bank>>,
    writes: mpsc::Sender<WriteJob>,
    outcomes: mpsc::Receiver<PollOutcome>,
    shutdown: CancellationToken,
}

fn rig(mode: Mode) -> Rig {
    let bank = Arc::new(Mutex::new(Bank::default()));
    let d = device(points());
    let (tx, outcomes) = mpsc::channel(64);
    let (writes, wrx) = mpsc::channel(8);
    let shutdown = CancellationToken::new();
    let task = BusTask::new(
        BankLink {
            bank: Arc::clone(&bank),
            mode,
        },
        &bus(),
        &[(0, &d)],
        BusOptions::default(),
        tx,
        shutdown.clone(),
        Arc::new(BusCounters::default()),
    )
    .with_writes(wrx);
    tokio::spawn(task.run());
    Rig {
        bank,
        writes,
        outcomes,
        shutdown,
    }
}

impl Rig {
    async fn write(&mut self, point: usize, value: Value) -> WriteReport {
        self.write_by(point, value, Instant::now() + Duration::from_secs(5))
            .await
    }

    async fn write_by(&mut self, point: usize, value: Value, deadline: Instant) -> WriteReport {
        let (reply, rx) = oneshot::channel();
        self.writes
            .send(WriteJob {
                device: 0,
                point,
                value,
                deadline,
                reply,
            })
            .await
            .unwrap();
        // Polls go on meanwhile: keep their outcomes flowing.
        let mut rx = rx;
        loop {
            tokio::select! {
                r = &mut rx => return r.unwrap(),
                o = self.outcomes.recv() => { o.unwrap(); }
            }
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[tokio::test(start_paused = true)]
async fn a_coil_is_written_with_function_5_and_read_back() {
    let mut r = rig(Mode::Keep);
    let report = r.write(0, Value::Bool(true)).await;
    assert_eq!(report.outcome, Outcome::Ok, "{report:?}");
    assert_eq!(report.old, Some(Value::Bool(false)));
    assert_eq!(report.read_back, Some(Value::Bool(true)));
    let b = r.bank.lock().unwrap();
    assert_eq!(b.writes, [(0, WriteData::Coil(true))]);
}

#[tokio::test(start_paused = true)]
async fn one_register_goes_with_function_6_and_two_with_function_16() {
    let mut r = rig(Mode::Keep);
    r.bank.lock().unwrap().words.insert(10, 7);
    let report = r.write(1, Value::UInt(21)).await;
    assert_eq!(report.outcome, Outcome::Ok, "{report:?}");
    assert_eq!(report.old, Some(Value::UInt(7)));
    let report = r.write(2, Value::Float(12.5)).await;
    assert_eq!(report.outcome, Outcome::Ok, "{report:?}");
    let b = r.bank.lock().unwrap();
    let bits = 12.5f32.to_bits();
    assert_eq!(
        b.writes,
        [
            (10, WriteData::Register(21)),
            (
                20,
                WriteData::Registers(vec![(bits >> 16) as u16, (bits & 0xFFFF) as u16])
            ),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_bit_is_written_by_read_modify_write_keeping_the_other_bits() {
    let mut r = rig(Mode::Keep);
    r.bank.lock().unwrap().words.insert(30, 0b1000_0001);
    let report = r.write(3, Value::Bool(true)).await;
    assert_eq!(report.outcome, Outcome::Ok, "{report:?}");
    assert_eq!(report.old, Some(Value::Bool(false)));
    let b = r.bank.lock().unwrap();
    assert_eq!(b.writes, [(30, WriteData::Register(0b1000_1001))]);
}

#[tokio::test(start_paused = true)]
async fn a_device_that_ignores_the_write_is_reported_as_a_mismatch() {
    let mut r = rig(Mode::Ignore);
    r.bank.lock().unwrap().words.insert(10, 7);
    let report = r.write(1, Value::UInt(21)).await;
    assert_eq!(report.outcome, Outcome::Mismatch, "{report:?}");
    assert_eq!(report.old, Some(Value::UInt(7)));
    assert_eq!(report.read_back, Some(Value::UInt(7)));
    assert!(report.detail.contains("reads back 7"), "{}", report.detail);
}

#[tokio::test(start_paused = true)]
async fn a_refused_write_is_a_device_error_with_its_exception_code() {
    let mut r = rig(Mode::Refuse);
    let report = r.write(0, Value::Bool(true)).await;
    assert_eq!(report.outcome, Outcome::DeviceError, "{report:?}");
    assert!(report.detail.contains("exception 4"), "{}", report.detail);
    // It read back what the device holds.
    assert_eq!(report.read_back, Some(Value::Bool(false)));
}

#[tokio::test(start_paused = true)]
async fn a_write_past_its_deadline_is_not_sent() {
    let mut r = rig(Mode::Keep);
    tokio::time::advance(Duration::from_millis(10)).await;
    let report = r
        .write_by(
            0,
            Value::Bool(true),
            Instant::now() - Duration::from_millis(1),
        )
        .await;
    assert_eq!(report.outcome, Outcome::Timeout);
    assert!(r.bank.lock().unwrap().writes.is_empty());
}

#[tokio::test(start_paused = true)]
async fn polls_go_on_around_writes() {
    let mut r = rig(Mode::Keep);
    for i in 0..5u64 {
        let report = r.write(1, Value::UInt(i)).await;
        assert_eq!(report.outcome, Outcome::Ok);
    }
    // And the next polls come.
    for _ in 0..3 {
        let o = r.outcomes.recv().await.unwrap();
        assert!(o.failure.is_none());
    }
    assert_eq!(r.bank.lock().unwrap().writes.len(), 5);
}
