//! Writes on a bus, between two polls.
//!
//! A [`WriteJob`] comes to the bus task of the device's line on a bounded
//! channel; the task takes it before its next poll (a poll already on the
//! wire finishes first: one transaction at a time). It then, keeping the
//! line's inter-frame silence between transactions:
//!
//! 1. reads the point as it is (the audit's old value; for a `bit` point
//!    also the register the bit lives in);
//! 2. writes: a coil with function 5 (write single coil); a one-register
//!    point with function 6 (write single register); a two- or
//!    four-register point with function 16 (write multiple registers), so
//!    that the device never holds half a value; a `bit` point by
//!    read-modify-write of its register with function 6;
//! 3. reads the point back and compares it with the value sent.
//!
//! **The read-modify-write race.** Between the read of step 1 and the
//! write of step 2 the device itself (or another master on the line) may
//! change another bit of the same register; the write then puts the old
//! state of that bit back. The gateway is the only master it polls with,
//! and the two transactions follow each other with only the inter-frame
//! silence between them, so the window is one transaction long; but a
//! register whose other bits the device changes on its own (status bits
//! beside a command bit) should not hold a writable `bit` point: give the
//! command its own register or coil.
//!
//! A job whose deadline has passed when the line gets to it is not sent
//! (outcome `timeout`, nothing written): the sender was told so already.

use gateway_core::decode::{decode_bit, decode_registers, encode_registers, set_bit};
use gateway_core::model::{Area, DataType, FailureKind, Point, Value};
use gateway_core::write::{Outcome, same, show};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{BusCounters, BusTask, quiet_gap};
use crate::south::link::{Data, Link, ReadError, WriteData};

#[cfg(test)]
mod tests;

/// One write for a bus task.
#[derive(Debug)]
pub struct WriteJob {
    /// The device's index in `Resolved::devices`.
    pub device: usize,
    /// The point's index in the device's points.
    pub point: usize,
    /// The value the device should hold (as checked by
    /// `gateway_core::write::check`).
    pub value: Value,
    /// Past this instant the write is no longer sent.
    pub deadline: Instant,
    /// Where the report goes.
    pub reply: oneshot::Sender<WriteReport>,
}

/// What a write did.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteReport {
    /// The outcome class.
    pub outcome: Outcome,
    /// The point's value before the write, when it could be read.
    pub old: Option<Value>,
    /// The value read back after the write, when it could be read.
    pub read_back: Option<Value>,
    /// For people: what happened (an exception code, which step timed out).
    pub detail: String,
}

impl WriteReport {
    fn failed(outcome: Outcome, old: Option<Value>, detail: impl Into<String>) -> Self {
        WriteReport {
            outcome,
            old,
            read_back: None,
            detail: detail.into(),
        }
    }
}

/// The outcome class of a failed transaction.
fn outcome_of(error: ReadError) -> Outcome {
    match error {
        ReadError::Failed(FailureKind::Timeout) => Outcome::Timeout,
        ReadError::Failed(_) | ReadError::LinkDown => Outcome::DeviceError,
    }
}

fn describe(step: &str, error: ReadError) -> String {
    match error {
        ReadError::Failed(FailureKind::Exception { code }) => {
            format!("the device refused the {step} with Modbus exception {code}")
        }
        ReadError::Failed(FailureKind::Timeout) => format!("the device did not answer the {step}"),
        ReadError::Failed(kind) => format!("the {step} failed ({kind})"),
        ReadError::LinkDown => format!("the line is down; the {step} was not sent"),
    }
}

/// The point's value from the answer to a read of its own range.
fn decode(point: &Point, data: &Data) -> Option<Value> {
    match data {
        Data::Bits(bits) => bits.first().and_then(|b| decode_bit(point, *b).0),
        Data::Words(words) => decode_registers(point, words).0,
    }
}

impl<L: Link> BusTask<L> {
    /// One read of `point`'s own range on `unit`, after the inter-frame
    /// silence.
    async fn read_point(&mut self, unit: u8, point: &Point) -> Result<Data, ReadError> {
        quiet_gap(self.last_end, self.inter_frame_delay).await;
        let answer = self
            .link
            .read(unit, point.area, point.address, point.width())
            .await;
        self.last_end = Some(Instant::now());
        BusCounters::bump(&self.counters.requests, 1);
        if let Err(e) = answer {
            self.counters.failure(e);
        }
        answer
    }

    /// Runs one write job (see the module documentation) and sends its
    /// report; a sender that stopped waiting gets nothing sent to the device.
    pub(super) async fn run_write(&mut self, job: WriteJob) {
        let report = self.write(&job).await;
        let device = self
            .devices
            .iter()
            .find(|d| d.index == job.device)
            .map_or("?", |d| d.id.as_str());
        let point = self
            .devices
            .iter()
            .find(|d| d.index == job.device)
            .and_then(|d| d.points.get(job.point))
            .map_or("?", |p| p.name.as_str());
        match report.outcome {
            Outcome::Ok => info!(
                bus = %self.bus, device, point, value = %show(&job.value),
                "write done and read back"
            ),
            outcome => warn!(
                bus = %self.bus, device, point, value = %show(&job.value),
                outcome = outcome.as_str(), detail = %report.detail,
                "write did not take"
            ),
        }
        // The sender may have stopped waiting; the report is in the log.
        let _ = job.reply.send(report);
    }

    async fn write(&mut self, job: &WriteJob) -> WriteReport {
        if Instant::now() > job.deadline || job.reply.is_closed() {
            return WriteReport::failed(
                Outcome::Timeout,
                None,
                "the line was busy past [writes] timeout; nothing was written",
            );
        }
        let Some(device) = self.devices.iter().find(|d| d.index == job.device) else {
            return WriteReport::failed(
                Outcome::DeviceError,
                None,
                "the device is not on this bus (the configuration was reloaded)",
            );
        };
        let unit = device.unit;
        let Some(point) = device.points.get(job.point).cloned() else {
            return WriteReport::failed(
                Outcome::DeviceError,
                None,
                "the point is gone (the configuration was reloaded)",
            );
        };
        // 1. The value as it is (and, for a bit, its register).
        let before = match self.read_point(unit, &point).await {
            Ok(data) => data,
            Err(e) => {
                return WriteReport::failed(
                    outcome_of(e),
                    None,
                    describe("read before the write", e),
                );
            }
        };
        let old = decode(&point, &before);
        // 2. What goes on the wire.
        let data = match (point.area, point.data_type, &job.value) {
            (Area::Coil, _, Value::Bool(on)) => WriteData::Coil(*on),
            (Area::Holding, DataType::Bit(bit), Value::Bool(on)) => {
                let Data::Words(words) = &before else {
                    return WriteReport::failed(Outcome::DeviceError, old, "unexpected answer");
                };
                let reg = words.first().copied().unwrap_or(0);
                WriteData::Register(set_bit(reg, bit, *on))
            }
            (Area::Holding, _, value) => match encode_registers(&point, value) {
                Ok(words) if words.len() == 1 => WriteData::Register(words[0]),
                Ok(words) => WriteData::Registers(words),
                Err(e) => return WriteReport::failed(Outcome::DeviceError, old, e.to_string()),
            },
            _ => {
                return WriteReport::failed(
                    Outcome::DeviceError,
                    old,
                    "the point's area cannot be written",
                );
            }
        };
        quiet_gap(self.last_end, self.inter_frame_delay).await;
        let written = self.link.write(unit, point.address, &data).await;
        self.last_end = Some(Instant::now());
        BusCounters::bump(&self.counters.requests, 1);
        BusCounters::bump(&self.counters.writes, 1);
        if let Err(e) = written {
            self.counters.failure(e);
            // The device may have taken it anyway (an answer lost on the
            // line): read back what it holds, if it answers.
            let read_back = self
                .read_point(unit, &point)
                .await
                .ok()
                .and_then(|d| decode(&point, &d));
            return WriteReport {
                outcome: outcome_of(e),
                old,
                read_back,
                detail: describe("write", e),
            };
        }
        // 3. Read back and compare.
        match self.read_point(unit, &point).await {
            Ok(data) => {
                let read_back = decode(&point, &data);
                let matches = read_back
                    .as_ref()
                    .is_some_and(|v| same(&point, v, &job.value));
                if matches {
                    WriteReport {
                        outcome: Outcome::Ok,
                        old,
                        read_back,
                        detail: String::new(),
                    }
                } else {
                    BusCounters::bump(&self.counters.write_mismatches, 1);
                    let got = read_back.as_ref().map_or("nothing".to_owned(), show);
                    WriteReport {
                        outcome: Outcome::Mismatch,
                        old,
                        read_back,
                        detail: format!(
                            "the device confirmed the write of {} but reads back {got}",
                            show(&job.value)
                        ),
                    }
                }
            }
            Err(e) => WriteReport::failed(outcome_of(e), old, describe("read-back", e)),
        }
    }
}
