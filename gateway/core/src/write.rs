//! Writes to devices, the pure half: whether a requested write may go to
//! the bus (the checks at the edge), what goes on the wire for it, and how
//! its read-back is judged. The bus task (`gateway/src/south/bus/write.rs`)
//! does the IO; the command handler records the audit row.
//!
//! A write is allowed when, in this order (the first failure is the
//! [`Refusal`]):
//!
//! 1. `[writes] enabled = true` — [`Refusal::WritesOff`];
//! 2. the device is configured and enabled — [`Refusal::UnknownDevice`];
//! 3. the point is one of its enabled points — [`Refusal::UnknownPoint`];
//! 4. the profile marks it `writable` — [`Refusal::NotWritable`];
//! 5. the device's `writes` allows it — [`Refusal::NotAllowed`];
//! 6. the value is of the point's kind (a boolean for a coil, `bool` or
//!    `bit` point; a number otherwise) — [`Refusal::WrongKind`];
//! 7. it lies within `write_min ..= write_max` — [`Refusal::OutOfRange`];
//! 8. the point's type, scale and offset represent it exactly: encoding it
//!    and decoding the registers gives it back (21.55 on a point of scale
//!    0.1 does not: the device would hold 21.6) — [`Refusal::NotRepresentable`].

use std::fmt;

use crate::config::ResolvedDevice;
use crate::decode::{decode_registers, encode_bit, encode_registers};
use crate::model::{Area, DataType, Point, Value};

/// Why a write was refused before anything was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// `[writes] enabled` is false (the default).
    WritesOff,
    /// No enabled device has this id.
    UnknownDevice,
    /// The device has no enabled point of this name.
    UnknownPoint,
    /// The profile does not mark the point `writable`.
    NotWritable,
    /// The device's `writes` does not name the point.
    NotAllowed,
    /// A number for a boolean point or a boolean for a numeric one.
    WrongKind,
    /// Outside `write_min ..= write_max`.
    OutOfRange,
    /// The type, scale and offset cannot hold the value exactly.
    NotRepresentable,
    /// The device's bus is not running or its write queue is full.
    Busy,
}

impl Refusal {
    /// Every refusal, in the order of [`Refusal::index`] (for counters).
    pub const ALL: [Refusal; 9] = [
        Refusal::WritesOff,
        Refusal::UnknownDevice,
        Refusal::UnknownPoint,
        Refusal::NotWritable,
        Refusal::NotAllowed,
        Refusal::WrongKind,
        Refusal::OutOfRange,
        Refusal::NotRepresentable,
        Refusal::Busy,
    ];

    /// This refusal's place in [`Refusal::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The wire and metrics name (`out_of_range`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Refusal::WritesOff => "writes_off",
            Refusal::UnknownDevice => "unknown_device",
            Refusal::UnknownPoint => "unknown_point",
            Refusal::NotWritable => "not_writable",
            Refusal::NotAllowed => "not_allowed",
            Refusal::WrongKind => "wrong_kind",
            Refusal::OutOfRange => "out_of_range",
            Refusal::NotRepresentable => "not_representable",
            Refusal::Busy => "busy",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused write: the class and, for the sender, what was wrong and what
/// to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("write refused ({refusal}): {detail}")]
pub struct Refused {
    /// The class.
    pub refusal: Refusal,
    /// What was wrong and what to do.
    pub detail: String,
}

fn refused(refusal: Refusal, detail: impl Into<String>) -> Refused {
    Refused {
        refusal,
        detail: detail.into(),
    }
}

/// A write that passed every check: where, and what value the device
/// should hold afterwards.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    /// Index of the point in the device's `points`.
    pub point: usize,
    /// The value the device should read back (the requested one, as the
    /// point's type decodes it).
    pub value: Value,
}

/// Checks a requested write of `value` to `point` of `device` (`None`: no
/// such enabled device) with `[writes] enabled` = `enabled`; see the module
/// documentation for the order of the checks.
pub fn check(
    enabled: bool,
    device_id: &str,
    device: Option<&ResolvedDevice>,
    point: &str,
    value: &Value,
) -> Result<Checked, Refused> {
    if !enabled {
        return Err(refused(
            Refusal::WritesOff,
            "writes are off on this gateway; an installer turns them on with [writes] enabled = true and the device's `writes` (docs/config.md)",
        ));
    }
    let Some(device) = device else {
        return Err(refused(
            Refusal::UnknownDevice,
            format!("no device {device_id:?} is configured and enabled on this gateway"),
        ));
    };
    let Some((index, p)) = device
        .points
        .iter()
        .enumerate()
        .find(|(_, p)| p.name == point)
    else {
        return Err(refused(
            Refusal::UnknownPoint,
            format!(
                "device {device_id:?} has no enabled point {point:?} (profile {:?})",
                device.profile
            ),
        ));
    };
    let Some(range) = p.write else {
        return Err(refused(
            Refusal::NotWritable,
            format!(
                "point {point:?} of device {device_id:?} is not writable in profile {:?}",
                device.profile
            ),
        ));
    };
    if !device.writable.contains(point) {
        return Err(refused(
            Refusal::NotAllowed,
            format!(
                "device {device_id:?} does not allow writes to {point:?}; its `writes` setting must name it (or be true)"
            ),
        ));
    }
    let boolean = is_boolean(p);
    match value {
        Value::Bool(_) if !boolean => {
            return Err(refused(
                Refusal::WrongKind,
                format!("point {point:?} is a {} point: give a number", p.data_type),
            ));
        }
        Value::Int(_) | Value::UInt(_) | Value::Float(_) if boolean => {
            return Err(refused(
                Refusal::WrongKind,
                format!("point {point:?} is a boolean point: give true or false"),
            ));
        }
        Value::Text(_) => {
            return Err(refused(
                Refusal::WrongKind,
                "a write sets a number or a boolean, not text",
            ));
        }
        _ => {}
    }
    if !boolean {
        let v = value.as_f64().unwrap_or(f64::NAN);
        if !v.is_finite() || !range.contains(v) {
            let lo = range.min.map_or("−∞".to_owned(), |m| m.to_string());
            let hi = range.max.map_or("+∞".to_owned(), |m| m.to_string());
            return Err(refused(
                Refusal::OutOfRange,
                format!(
                    "{v} is outside the write range {lo} … {hi} {} of point {point:?}",
                    p.unit
                ),
            ));
        }
    }
    let expected =
        expected_value(p, value).map_err(|why| refused(Refusal::NotRepresentable, why))?;
    Ok(Checked {
        point: index,
        value: expected,
    })
}

/// A coil, or a `bool`/`bit` register point: written with true/false.
pub const fn is_boolean(p: &Point) -> bool {
    matches!(p.area, Area::Coil | Area::Discrete)
        || matches!(p.data_type, DataType::Bool | DataType::Bit(_))
}

/// The value the device holds after writing `value`: encode, then decode;
/// an error when that is not `value` (the type, scale or offset cannot hold
/// it).
fn expected_value(p: &Point, value: &Value) -> Result<Value, String> {
    if is_boolean(p) {
        return encode_bit(p, value)
            .map(Value::Bool)
            .map_err(|e| e.to_string());
    }
    let regs = encode_registers(p, value).map_err(|e| e.to_string())?;
    let (decoded, _) = decode_registers(p, &regs);
    let Some(decoded) = decoded else {
        return Err(format!("point {:?} cannot hold {value:?}", p.name));
    };
    if same(p, &decoded, value) {
        Ok(decoded)
    } else {
        Err(format!(
            "point {:?} ({}, scale {}, offset {}) cannot hold {} exactly: the device would hold {}; send a value it can hold",
            p.name,
            p.data_type,
            p.scale,
            p.offset,
            show(value),
            show(&decoded)
        ))
    }
}

/// Whether `a` and `b` are the same value of point `p`: booleans and
/// integers exactly; other numbers within the rounding of scale and offset
/// (a relative 1e-9), and of `f32` for an `f32` point (a relative
/// `f32::EPSILON`: 0.1 written to an `f32` register reads back as
/// 0.100000001).
pub fn same(p: &Point, a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Text(x), Value::Text(y)) => x == y,
        (Value::Text(_) | Value::Bool(_), _) | (_, Value::Text(_) | Value::Bool(_)) => false,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::UInt(x), Value::UInt(y)) => x == y,
        (x, y) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            let rel = if p.data_type == DataType::F32 {
                f64::from(f32::EPSILON)
            } else {
                1e-9
            };
            (x - y).abs() <= rel * x.abs().max(y.abs()).max(f64::MIN_POSITIVE)
        }
    }
}

/// A value as people read it: `true`, `42`, `21.5`.
pub fn show(v: &Value) -> String {
    match v {
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Text(t) => format!("{t:?}"),
    }
}

/// What became of a write that went to the bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Written, and the read-back equals the value sent.
    Ok,
    /// Written (the device confirmed), but the read-back differs: the
    /// device ignored or changed it (a local/remote switch, a clamp, an
    /// interlock).
    Mismatch,
    /// The device refused (a Modbus exception) or the line failed; the
    /// point may or may not have changed — the read-back, when there is
    /// one, says.
    DeviceError,
    /// The device did not answer in time, or the write was not sent before
    /// `[writes] timeout` (the bus was busy): nothing is known to have
    /// changed.
    Timeout,
}

impl Outcome {
    /// The wire name (`device_error`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Mismatch => "mismatch",
            Outcome::DeviceError => "device_error",
            Outcome::Timeout => "timeout",
        }
    }

    /// The outcome of a stored name.
    pub fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::Ok,
            Outcome::Mismatch,
            Outcome::DeviceError,
            Outcome::Timeout,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
