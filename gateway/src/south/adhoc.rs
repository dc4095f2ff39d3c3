//! The library side of `gateway read` and `gateway scan`: one-off requests
//! through the same [`Transport`] the daemon uses.
//!
//! `read` returns raw registers or bits; the CLI decodes them with the
//! core's decoder (`--type`, `--order`). `scan` asks every unit id in a range
//! for holding register 0 and reports which ones answer. A unit *answers*
//! when it returns data **or** a Modbus exception (it is there, it just has
//! no register 0); silence within the timeout means absent. A TCP gateway
//! answering exception 10 or 11 ("gateway path unavailable", "gateway
//! target device failed to respond") is speaking for a unit that is not
//! there, so those count as absent too.

use std::ops::RangeInclusive;
use std::time::Duration;

use gateway_core::identify::{
    Answer, Answers, Model, Read, Verdict, evaluate, identify_reads, point_reads,
};
use gateway_core::model::{Area, FailureKind};

use super::link::{Data, ReadError};
use super::transport::{Transport, TransportError, connect};
use super::url::{Endpoint, UrlError};

/// Raw answer of `gateway read`.
pub type ReadResult = Data;

/// Modbus exception 10: gateway path unavailable.
const GATEWAY_PATH_UNAVAILABLE: u8 = 0x0A;
/// Modbus exception 11: gateway target device failed to respond.
const GATEWAY_TARGET_FAILED: u8 = 0x0B;

/// Why an ad-hoc command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdhocError {
    /// The URL is malformed.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The first connection could not be made.
    #[error(transparent)]
    Connect(#[from] TransportError),
    /// `count` is 0 or above the protocol limit for the area.
    #[error("cannot read {count} {area} items at once: use 1 to {max}")]
    Count {
        /// The area asked for.
        area: Area,
        /// The count asked for.
        count: u16,
        /// The protocol limit for the area.
        max: u16,
    },
    /// The request was sent and failed.
    #[error("unit {unit} at {endpoint}: {}", describe(*.kind, *.timeout))]
    Failed {
        /// The endpoint URL, normalised.
        endpoint: String,
        /// The unit asked.
        unit: u8,
        /// How it failed.
        kind: FailureKind,
        /// The timeout in force.
        timeout: Duration,
    },
}

fn describe(kind: FailureKind, timeout: Duration) -> String {
    match kind {
        FailureKind::Timeout => {
            format!("no answer within {timeout:?}; check the unit id, wiring and serial settings")
        }
        FailureKind::Exception { code } => format!(
            "the device answered with Modbus exception {code} ({})",
            exception_name(code)
        ),
        FailureKind::Transport => "the connection failed or was closed".to_owned(),
        FailureKind::Framing => {
            "the answer was malformed (bad CRC, wrong length or garbage); check baud rate and parity"
                .to_owned()
        }
    }
}

/// The standard name of a Modbus exception code.
pub fn exception_name(code: u8) -> &'static str {
    match code {
        1 => "illegal function",
        2 => "illegal data address",
        3 => "illegal data value",
        4 => "server device failure",
        5 => "acknowledge",
        6 => "server device busy",
        8 => "memory parity error",
        10 => "gateway path unavailable",
        11 => "gateway target device failed to respond",
        _ => "non-standard code",
    }
}

/// Reads `count` registers or bits of `area` from `address` on unit `unit`
/// at `url`, waiting at most `timeout` for the connection and the answer.
pub async fn read(
    url: &str,
    unit: u8,
    area: Area,
    address: u16,
    count: u16,
    timeout: Duration,
) -> Result<ReadResult, AdhocError> {
    let max = area.protocol_max();
    if count == 0 || count > max {
        return Err(AdhocError::Count { area, count, max });
    }
    let endpoint = Endpoint::parse(url)?;
    let mut transport = connect(&endpoint.bus(timeout)).await?;
    transport
        .read(unit, area, address, count)
        .await
        .map_err(|e| AdhocError::Failed {
            endpoint: endpoint.to_string(),
            unit,
            kind: e.kind(),
            timeout,
        })
}

/// What one unit id did when scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanResult {
    /// Returned holding register 0.
    Data,
    /// Answered with a Modbus exception: present, but refuses the request.
    Exception {
        /// The exception code.
        code: u8,
    },
    /// No answer within the timeout (or a gateway said the unit is absent).
    Absent,
    /// Something answered but garbled, or the link failed.
    Error(FailureKind),
}

impl ScanResult {
    /// True when a device is there (data or an exception).
    pub const fn answered(self) -> bool {
        matches!(self, ScanResult::Data | ScanResult::Exception { .. })
    }
}

/// Asks every unit in `units` at `url` for holding register 0, calling
/// `progress` after each, and returns every unit's result in order.
///
/// Fails only when the URL is malformed or the first connection cannot be
/// made; later connection problems are reported per unit.
pub async fn scan(
    url: &str,
    units: RangeInclusive<u8>,
    timeout: Duration,
    mut progress: impl FnMut(u8, ScanResult),
) -> Result<Vec<(u8, ScanResult)>, AdhocError> {
    let endpoint = Endpoint::parse(url)?;
    let bus = endpoint.bus(timeout);
    let mut transport: Transport = connect(&bus).await?;
    let mut results = Vec::with_capacity(units.clone().count());
    let mut last_end: Option<tokio::time::Instant> = None;
    for unit in units {
        if let Some(end) = last_end {
            tokio::time::sleep_until(end + bus.inter_frame_delay).await;
        }
        let answer = transport.read(unit, Area::Holding, 0, 1).await;
        last_end = Some(tokio::time::Instant::now());
        let result = match answer {
            Ok(_) => ScanResult::Data,
            Err(ReadError::Failed(FailureKind::Exception { code }))
                if code == GATEWAY_PATH_UNAVAILABLE || code == GATEWAY_TARGET_FAILED =>
            {
                ScanResult::Absent
            }
            Err(ReadError::Failed(FailureKind::Exception { code })) => {
                ScanResult::Exception { code }
            }
            Err(ReadError::Failed(FailureKind::Timeout)) => ScanResult::Absent,
            Err(e) => ScanResult::Error(e.kind()),
        };
        progress(unit, result);
        results.push((unit, result));
    }
    Ok(results)
}

/// Most requests asked of one unit while identifying it (the shipped
/// library needs about 20); further reads count as unanswered.
pub const MAX_IDENTIFY_READS: usize = 64;
/// After this many consecutive reads without an answer a unit is left
/// alone (it stopped answering): the rest count as unanswered.
const GIVE_UP_AFTER: usize = 3;

/// Asks each unit of `units` at `url` what `gateway scan --propose` needs
/// to judge it against `models` (identification registers, then the
/// profiles' registers unless one profile was identified), one request at
/// a time with the line's inter-frame silence, and calls `progress` after
/// each unit with its verdict.
pub async fn identify(
    url: &str,
    units: &[u8],
    timeout: Duration,
    models: &[Model],
    mut progress: impl FnMut(u8, &Verdict, usize),
) -> Result<Vec<(u8, Verdict)>, AdhocError> {
    let endpoint = Endpoint::parse(url)?;
    let bus = endpoint.bus(timeout);
    let mut transport: Transport = connect(&bus).await?;
    let mut last_end: Option<tokio::time::Instant> = None;
    let mut out = Vec::with_capacity(units.len());
    for &unit in units {
        let mut answers = Answers::default();
        let mut asked = 0usize;
        let mut silent_in_a_row = 0usize;
        let mut ask = async |reads: Vec<Read>, answers: &mut Answers| {
            for r in reads {
                if answers.knows(r) {
                    continue;
                }
                if asked >= MAX_IDENTIFY_READS || silent_in_a_row >= GIVE_UP_AFTER {
                    break;
                }
                if let Some(end) = last_end {
                    tokio::time::sleep_until(end + bus.inter_frame_delay).await;
                }
                let answer = transport.read(unit, r.area, r.start, r.count).await;
                last_end = Some(tokio::time::Instant::now());
                asked += 1;
                let answer = match answer {
                    Ok(Data::Words(w)) => Answer::Words(w),
                    Ok(Data::Bits(b)) => Answer::Bits(b),
                    Err(ReadError::Failed(FailureKind::Exception { code })) => {
                        Answer::Exception(code)
                    }
                    Err(_) => Answer::Failed,
                };
                if answer == Answer::Failed {
                    silent_in_a_row += 1;
                } else {
                    silent_in_a_row = 0;
                }
                answers.insert(r, answer);
            }
        };
        ask(identify_reads(models), &mut answers).await;
        let mut verdict = evaluate(models, &answers);
        if verdict.matched.len() != 1 {
            let only: Vec<usize> = verdict.matched.iter().map(|m| m.model).collect();
            let reads = point_reads(models, (!only.is_empty()).then_some(only.as_slice()));
            ask(reads, &mut answers).await;
            verdict = evaluate(models, &answers);
        }
        progress(unit, &verdict, asked);
        out.push((unit, verdict));
    }
    Ok(out)
}
