//! The vocabulary shared by every layer of the gateway.
//!
//! These types are deliberately our own (not tokio-modbus's): configuration,
//! planner and decoder speak them, and only the transport module converts
//! them into library calls.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The four Modbus data areas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    /// Read/write single bits (function 1 to read).
    Coil,
    /// Read-only single bits (function 2).
    Discrete,
    /// Read/write 16-bit registers (function 3).
    Holding,
    /// Read-only 16-bit registers (function 4).
    Input,
}

impl Area {
    /// True for the bit areas (coils and discrete inputs).
    pub const fn is_bits(self) -> bool {
        matches!(self, Area::Coil | Area::Discrete)
    }

    /// Modbus function code used to read this area.
    pub const fn read_function(self) -> u8 {
        match self {
            Area::Coil => 1,
            Area::Discrete => 2,
            Area::Holding => 3,
            Area::Input => 4,
        }
    }

    /// The most items one read request may ask for, by the Modbus spec.
    pub const fn protocol_max(self) -> u16 {
        if self.is_bits() { 2000 } else { 125 }
    }
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Area::Coil => "coil",
            Area::Discrete => "discrete",
            Area::Holding => "holding",
            Area::Input => "input",
        })
    }
}

/// How a point's value is laid out in its registers or bit.
///
/// In TOML: `type = "f32"`; `type = "string"` with `length` (characters);
/// `type = "bit"` with `bit` (0 = least significant) for a bit inside a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    /// A coil/discrete input, or a register that is true when non-zero.
    Bool,
    /// One bit (0..=15, 0 = least significant) of a 16-bit register.
    Bit(u8),
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    /// ASCII/UTF-8 text of `n` bytes (two per register), NULs and trailing spaces trimmed.
    String(u16),
}

impl DataType {
    /// Registers (or bits, in a bit area) the value occupies.
    pub const fn width(self) -> u16 {
        match self {
            DataType::Bool | DataType::Bit(_) | DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
            DataType::String(n) => n.div_ceil(2),
        }
    }

    /// The name used in configuration.
    pub const fn name(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::Bit(_) => "bit",
            DataType::U16 => "u16",
            DataType::I16 => "i16",
            DataType::U32 => "u32",
            DataType::I32 => "i32",
            DataType::U64 => "u64",
            DataType::I64 => "i64",
            DataType::F32 => "f32",
            DataType::F64 => "f64",
            DataType::String(_) => "string",
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Bit(b) => write!(f, "bit {b}"),
            DataType::String(n) => write!(f, "string({n})"),
            t => f.write_str(t.name()),
        }
    }
}

/// Order of the bytes of a multi-register value, named by where the bytes
/// A (most significant) … D land on the wire. For 64-bit values the same
/// rule extends: "word swap" reverses register order, "byte swap" swaps the
/// two bytes inside every register.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WordOrder {
    /// Big-endian, most significant register first (Modbus convention).
    #[default]
    #[serde(rename = "ABCD")]
    Abcd,
    /// Registers swapped, bytes big-endian in each ("word swap", very common in meters).
    #[serde(rename = "CDAB")]
    Cdab,
    /// Registers in order, bytes swapped inside each register.
    #[serde(rename = "BADC")]
    Badc,
    /// Fully little-endian.
    #[serde(rename = "DCBA")]
    Dcba,
}

impl WordOrder {
    /// True when the registers arrive least significant first.
    pub const fn swaps_words(self) -> bool {
        matches!(self, WordOrder::Cdab | WordOrder::Dcba)
    }

    /// True when the two bytes in each register are swapped.
    pub const fn swaps_bytes(self) -> bool {
        matches!(self, WordOrder::Badc | WordOrder::Dcba)
    }
}

impl fmt::Display for WordOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WordOrder::Abcd => "ABCD",
            WordOrder::Cdab => "CDAB",
            WordOrder::Badc => "BADC",
            WordOrder::Dcba => "DCBA",
        })
    }
}

/// Equipment classes from the service standard (`shared/DOMAIN.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceClass {
    Pump,
    Distribution,
    FireAlarm,
    FireWater,
    Lighting,
    Hvac,
    LightningProtection,
    Plumbing,
    Elevator,
    Other,
}

impl DeviceClass {
    /// Every class, in report order.
    pub const ALL: [DeviceClass; 10] = [
        DeviceClass::Pump,
        DeviceClass::Distribution,
        DeviceClass::FireAlarm,
        DeviceClass::FireWater,
        DeviceClass::Lighting,
        DeviceClass::Hvac,
        DeviceClass::LightningProtection,
        DeviceClass::Plumbing,
        DeviceClass::Elevator,
        DeviceClass::Other,
    ];

    /// The configuration name (`snake_case`).
    pub const fn as_str(self) -> &'static str {
        match self {
            DeviceClass::Pump => "pump",
            DeviceClass::Distribution => "distribution",
            DeviceClass::FireAlarm => "fire_alarm",
            DeviceClass::FireWater => "fire_water",
            DeviceClass::Lighting => "lighting",
            DeviceClass::Hvac => "hvac",
            DeviceClass::LightningProtection => "lightning_protection",
            DeviceClass::Plumbing => "plumbing",
            DeviceClass::Elevator => "elevator",
            DeviceClass::Other => "other",
        }
    }

    /// Default availability target in per cent (99 for lighting, fire and
    /// lightning protection; 98 for the rest), from the service standard.
    pub const fn default_target_percent(self) -> f64 {
        match self {
            DeviceClass::Lighting
            | DeviceClass::FireAlarm
            | DeviceClass::FireWater
            | DeviceClass::LightningProtection => 99.0,
            _ => 98.0,
        }
    }
}

impl fmt::Display for DeviceClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoded value, after scale and offset.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Text(String),
}

impl Value {
    /// The value as a float, when it is numeric or boolean (true = 1).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            Value::Int(i) => Some(*i as f64),
            Value::UInt(u) => Some(*u as f64),
            Value::Float(f) => Some(*f),
            Value::Text(_) => None,
        }
    }
}

/// Why a value is not trustworthy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "bad")]
pub enum BadReason {
    /// The float was NaN.
    NotANumber,
    /// The float was infinite.
    Infinite,
    /// Outside the point's configured `min`/`max`.
    OutOfRange,
    /// Text that is not valid UTF-8.
    InvalidText,
    /// The device answered the request for this point with a Modbus exception.
    Exception { code: u8 },
    /// The request carrying this point failed (timeout, transport, framing).
    NotRead,
}

/// Quality of a sample, as in OPC-style "good/bad".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Good,
    Bad(BadReason),
}

impl Quality {
    pub const fn is_good(self) -> bool {
        matches!(self, Quality::Good)
    }
}

/// Why a Modbus transaction failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FailureKind {
    /// No (complete) answer within the bus timeout.
    Timeout,
    /// The device answered with a Modbus exception: it is reachable.
    Exception { code: u8 },
    /// The connection could not be made or broke (refused, reset, closed).
    Transport,
    /// An answer arrived but was malformed: bad CRC, wrong length, garbage.
    Framing,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Timeout => f.write_str("timeout"),
            FailureKind::Exception { code } => write!(f, "exception {code}"),
            FailureKind::Transport => f.write_str("transport"),
            FailureKind::Framing => f.write_str("framing"),
        }
    }
}

/// Modbus exception code 2, "illegal data address".
pub const EXCEPTION_ILLEGAL_DATA_ADDRESS: u8 = 2;

/// A point after validation: everything the planner and decoder need.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Unique within its device, `snake_case`, e.g. `outlet_pressure`.
    pub name: String,
    /// Engineering unit after scaling, e.g. `bar`, `A`, `kWh`; empty when none.
    pub unit: String,
    pub area: Area,
    /// Protocol (0-based) address of the first register or bit.
    pub address: u16,
    pub data_type: DataType,
    pub order: WordOrder,
    /// value = raw × scale + offset. Integers stay integers when scale is 1 and offset 0.
    pub scale: f64,
    pub offset: f64,
    /// Plausible range after scaling; outside it the sample is bad quality.
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Polled at the device's fast alarm interval as well as the normal one.
    pub alarm: bool,
    /// A change to its "active" value is a hard alarm (ticket at once).
    pub critical: bool,
    /// Report by exception: how far a numeric value must move from the
    /// last published one to be published again. `None` = any change.
    /// Ignored for alarm points and for booleans and text (any change).
    pub deadband: Option<Deadband>,
    /// Report by exception: the longest time the point goes unpublished.
    /// `None` = the gateway-wide heartbeat (`[mqtt] heartbeat`).
    pub heartbeat: Option<Duration>,
    /// `Some` when the profile marks the point `writable`: the range a write
    /// may set. Whether a write is allowed also depends on the site
    /// (`[writes]` and the device's `writes`, see
    /// `ResolvedDevice::writable`).
    pub write: Option<WriteRange>,
}

/// The range a write may set on a writable point, in its engineering unit
/// (after scale and offset); an open end is bounded only by what the
/// point's type and scale can represent.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WriteRange {
    /// Lowest value a write may set.
    pub min: Option<f64>,
    /// Highest value a write may set.
    pub max: Option<f64>,
}

impl WriteRange {
    /// Whether `v` lies inside the range (ends included).
    pub fn contains(&self, v: f64) -> bool {
        self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m)
    }
}

/// How far a numeric value must move before it is reported again (see
/// [`crate::rbe`]). In TOML: `deadband = 0.05` (absolute) or
/// `deadband = "2%"` (percent).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Deadband {
    /// In the point's engineering unit, after scaling; finite and ≥ 0.
    Absolute(f64),
    /// Per cent (0–100) of the magnitude of the last published value.
    Percent(f64),
}

impl Deadband {
    /// The largest change from `last` that is still inside the band.
    pub fn threshold(self, last: f64) -> f64 {
        match self {
            Deadband::Absolute(d) => d,
            Deadband::Percent(p) => last.abs() * p / 100.0,
        }
    }
}

impl fmt::Display for Deadband {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Deadband::Absolute(d) => write!(f, "{d}"),
            Deadband::Percent(p) => write!(f, "\"{p}%\""),
        }
    }
}

impl Point {
    /// Registers or bits the point occupies.
    pub const fn width(&self) -> u16 {
        self.data_type.width()
    }

    /// One past the last register/bit address the point occupies.
    pub const fn end(&self) -> u32 {
        self.address as u32 + self.data_type.width() as u32
    }
}

/// One decoded point of one poll.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Index into the device's resolved `points`.
    pub point: usize,
    /// The value, when one could be decoded (kept even when out of range, so
    /// that it can be shown; consumers must honour `quality`).
    pub value: Option<Value>,
    pub quality: Quality,
}

/// Which set of points a poll read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PollClass {
    /// Every point of the device.
    Full,
    /// Only the alarm points (fast interval).
    Alarm,
}

/// The result of polling one device once: what the south side hands the core.
#[derive(Clone, Debug, PartialEq)]
pub struct PollOutcome {
    /// Index of the device in the resolved configuration.
    pub device: usize,
    /// Completion time, Unix milliseconds (from the caller's clock).
    pub ts_ms: i64,
    pub class: PollClass,
    /// A sample per point read (bad quality for points whose request failed).
    pub samples: Vec<Sample>,
    /// The worst transaction failure of this poll, if any request failed.
    /// `Some(Exception)` with good samples from other requests means the
    /// device is reachable but refused part of the map.
    pub failure: Option<FailureKind>,
    /// Requests made and requests that failed in this poll.
    pub requests: u16,
    pub failed_requests: u16,
    /// Wall time the poll took on the bus, in microseconds.
    pub elapsed_us: u64,
}
