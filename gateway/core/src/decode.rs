//! Registers and bits ⇄ typed values, with scale, offset and quality.
//!
//! # Design
//!
//! The decoder turns the registers (or the bit) a device answered for one
//! point into a [`Value`] and a [`Quality`]; the encoder is its exact inverse
//! and is what the simulator uses to fill its register map.
//!
//! Layout of a value of `width` registers, for every [`WordOrder`]:
//! the registers are first put in "most significant first" order (reversed
//! when the order swaps words, e.g. `CDAB`: for a 64-bit value all four
//! registers are reversed), then the two bytes inside every register are
//! swapped when the order swaps bytes (`BADC`, `DCBA`), and the result is read
//! big-endian. The byte swap also applies to 16-bit integers (a `DCBA` `u16`
//! is little-endian); word order never applies to `bool` and `bit` points.
//! Text is always read in register order, two bytes per register (high byte
//! first, or low byte first when the order swaps bytes).
//!
//! Value = raw × scale + offset. Integer types stay [`Value::Int`] /
//! [`Value::UInt`] when scale is 1 and offset 0 (so a 64-bit counter keeps
//! every digit), and become [`Value::Float`] otherwise.
//!
//! # Quality rules
//!
//! - NaN → `Bad(NotANumber)`, ±∞ → `Bad(Infinite)`, with no value.
//! - Outside `min`/`max` → `Bad(OutOfRange)`, the value is still returned so
//!   it can be shown.
//! - Text that is not UTF-8 → `Bad(InvalidText)`, no value.
//! - A slice of the wrong length (a caller bug, or a short answer) →
//!   `Bad(NotRead)`: the decoder never panics on data.
//!
//! # Invariants
//!
//! - For every point and every value the encoder accepts,
//!   `decode_registers(p, &encode_registers(p, v)?)` gives back `v` (up to the
//!   rounding of scale/offset to the integer type, and of `f64` to `f32`).
//! - The decoder allocates only for text.

use thiserror::Error;

use crate::model::{BadReason, DataType, Point, Quality, Sample, Value, WordOrder};
use crate::plan::Request;

#[cfg(test)]
mod tests;

/// Why a value cannot be written into a point's registers.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum EncodeError {
    /// The value's kind does not fit the point's type (text into a number,
    /// a number into text).
    #[error("point \"{point}\" of type {data_type} cannot hold the value {value:?}")]
    TypeMismatch {
        /// The point's name.
        point: String,
        /// The point's type.
        data_type: DataType,
        /// The value that was offered.
        value: Value,
    },
    /// After removing offset and scale, the raw value does not fit the
    /// integer type. The encoder never clamps: a silently clamped value would
    /// hide a bug in whoever produced it.
    #[error(
        "point \"{point}\": raw value {raw} (value {value} without scale/offset) does not fit {data_type}"
    )]
    Overflow {
        /// The point's name.
        point: String,
        /// The point's type.
        data_type: DataType,
        /// The value that was offered, as a float.
        value: f64,
        /// The raw value it maps to.
        raw: f64,
    },
    /// NaN or an infinity cannot be stored in an integer type.
    #[error("point \"{point}\" of type {data_type} cannot hold the non-finite value {value}")]
    NotFinite {
        /// The point's name.
        point: String,
        /// The point's type.
        data_type: DataType,
        /// The value that was offered.
        value: f64,
    },
    /// The text is longer than the point's `length` in bytes.
    #[error("point \"{point}\": text of {len} bytes does not fit its {capacity} bytes")]
    TextTooLong {
        /// The point's name.
        point: String,
        /// Bytes of the text offered.
        len: usize,
        /// Bytes the point holds.
        capacity: u16,
    },
    /// A scale of zero (or a non-finite one) has no inverse.
    #[error("point \"{point}\": scale {scale} has no inverse")]
    BadScale {
        /// The point's name.
        point: String,
        /// The configured scale.
        scale: f64,
    },
    /// A `bit` point names a bit outside 0..=15.
    #[error("point \"{point}\": bit {bit} is outside a 16-bit register")]
    BadBit {
        /// The point's name.
        point: String,
        /// The configured bit.
        bit: u8,
    },
}

/// Decodes a point from exactly `point.width()` registers (already sliced
/// out of the request's answer). Applies word/byte order, scale, offset and
/// the `min`/`max` range; NaN, infinities and out-of-range values come back
/// with bad quality. A slice of another length gives `Bad(NotRead)`.
pub fn decode_registers(point: &Point, regs: &[u16]) -> (Option<Value>, Quality) {
    if regs.len() != usize::from(point.width()) {
        return (None, Quality::Bad(BadReason::NotRead));
    }
    let order = point.order;
    let value = match point.data_type {
        DataType::Bool => return (Some(Value::Bool(regs[0] != 0)), Quality::Good),
        DataType::Bit(bit) => {
            if bit > 15 {
                return (None, Quality::Bad(BadReason::NotRead));
            }
            return (Some(Value::Bool(regs[0] & (1 << bit) != 0)), Quality::Good);
        }
        DataType::String(len) => return decode_text(regs, len, order),
        DataType::U16 | DataType::U32 | DataType::U64 => {
            integer_value(point, Raw::Unsigned(assemble(regs, order)))
        }
        DataType::I16 => integer_value(
            point,
            Raw::Signed(i64::from(assemble(regs, order) as u16 as i16)),
        ),
        DataType::I32 => integer_value(
            point,
            Raw::Signed(i64::from(assemble(regs, order) as u32 as i32)),
        ),
        DataType::I64 => integer_value(point, Raw::Signed(assemble(regs, order) as i64)),
        DataType::F32 => Numeric::Float(f64::from(f32::from_bits(assemble(regs, order) as u32))),
        DataType::F64 => Numeric::Float(f64::from_bits(assemble(regs, order))),
    };
    match value {
        Numeric::Exact(v) => {
            let quality = range_quality(point, v.as_f64().unwrap_or(0.0));
            (Some(v), quality)
        }
        Numeric::Float(raw) => float_value(point, raw),
    }
}

/// Decodes a point read from a coil or discrete input.
///
/// A bit is always a boolean; the point's type, scale and range do not apply.
pub fn decode_bit(point: &Point, bit: bool) -> (Option<Value>, Quality) {
    let _ = point;
    (Some(Value::Bool(bit)), Quality::Good)
}

/// Decodes every point a register request carried from the request's answer
/// (`words[0]` is the register at `req.start`). A point that does not lie
/// inside `words` (a short answer) gets `Bad(NotRead)`; indices outside
/// `points` are skipped.
pub fn decode_request(points: &[Point], req: &Request, words: &[u16]) -> Vec<Sample> {
    let mut samples = Vec::with_capacity(req.points.len());
    for &index in &req.points {
        let Some(point) = points.get(index) else {
            continue;
        };
        let (value, quality) = match slice_of(point, req, words.len()) {
            Some((from, to)) => decode_registers(point, &words[from..to]),
            None => (None, Quality::Bad(BadReason::NotRead)),
        };
        samples.push(Sample {
            point: index,
            value,
            quality,
        });
    }
    samples
}

/// Decodes every point a coil/discrete request carried from the request's
/// answer (`bits[0]` is the bit at `req.start`). A point that does not lie
/// inside `bits` gets `Bad(NotRead)`; indices outside `points` are skipped.
pub fn decode_request_bits(points: &[Point], req: &Request, bits: &[bool]) -> Vec<Sample> {
    let mut samples = Vec::with_capacity(req.points.len());
    for &index in &req.points {
        let Some(point) = points.get(index) else {
            continue;
        };
        let (value, quality) = match slice_of(point, req, bits.len()) {
            Some((from, _)) => decode_bit(point, bits[from]),
            None => (None, Quality::Bad(BadReason::NotRead)),
        };
        samples.push(Sample {
            point: index,
            value,
            quality,
        });
    }
    samples
}

/// One bad-quality sample per point a failed request carried, e.g.
/// `Bad(Exception { code })` or `Bad(NotRead)` after a timeout.
pub fn failed_request(req: &Request, reason: BadReason) -> Vec<Sample> {
    req.points
        .iter()
        .map(|&point| Sample {
            point,
            value: None,
            quality: Quality::Bad(reason),
        })
        .collect()
}

/// Encodes `value` into the `point.width()` registers a device would hold
/// for it: the exact inverse of [`decode_registers`].
///
/// Offset and scale are removed (`raw = (value − offset) ÷ scale`), the raw
/// value is rounded to the nearest integer for integer types, and a raw value
/// outside the type's range is an error ([`EncodeError::Overflow`]), never
/// clamped. Integer values are encoded exactly (no float round trip) when
/// scale is 1 and offset 0. Booleans encode as 0/1 in numeric types; a
/// `bool` register holds 1 for true; a `bit` point gives a register with only
/// that bit set (or 0); merge several bit points with [`set_bit`]. Text is
/// padded with NULs to the full width.
pub fn encode_registers(point: &Point, value: &Value) -> Result<Vec<u16>, EncodeError> {
    let width = point.width();
    let order = point.order;
    let raw: u64 = match point.data_type {
        DataType::Bool => return Ok(vec![u16::from(truthy(point, value)?)]),
        DataType::Bit(bit) => {
            if bit > 15 {
                return Err(EncodeError::BadBit {
                    point: point.name.clone(),
                    bit,
                });
            }
            return Ok(vec![set_bit(0, bit, truthy(point, value)?)]);
        }
        DataType::String(len) => return encode_text(point, value, len),
        DataType::U16 => unsigned_raw(point, value, u64::from(u16::MAX))?,
        DataType::U32 => unsigned_raw(point, value, u64::from(u32::MAX))?,
        DataType::U64 => unsigned_raw(point, value, u64::MAX)?,
        DataType::I16 => {
            u64::from(
                signed_raw(point, value, i64::from(i16::MIN), i64::from(i16::MAX))? as i16 as u16,
            )
        }
        DataType::I32 => {
            u64::from(
                signed_raw(point, value, i64::from(i32::MIN), i64::from(i32::MAX))? as i32 as u32,
            )
        }
        DataType::I64 => signed_raw(point, value, i64::MIN, i64::MAX)? as u64,
        DataType::F32 => u64::from(f32_raw(point, value)?.to_bits()),
        DataType::F64 => float_raw(point, value)?.to_bits(),
    };
    let mut regs = vec![0; usize::from(width)];
    disassemble(raw, order, &mut regs);
    Ok(regs)
}

/// Encodes the state of a coil or discrete input point. Numbers are true
/// when non-zero; text is an error.
pub fn encode_bit(point: &Point, value: &Value) -> Result<bool, EncodeError> {
    truthy(point, value)
}

/// Returns `reg` with bit `bit` (0 = least significant) set or cleared; a bit
/// above 15 leaves the register unchanged. Lets a simulator merge several
/// `bit` points that share a register.
pub const fn set_bit(reg: u16, bit: u8, on: bool) -> u16 {
    if bit > 15 {
        return reg;
    }
    let mask = 1u16 << bit;
    if on { reg | mask } else { reg & !mask }
}

/// Where `point` lies inside a request's answer of `len` items, as a
/// half-open range of indices.
fn slice_of(point: &Point, req: &Request, len: usize) -> Option<(usize, usize)> {
    let from = usize::from(point.address.checked_sub(req.start)?);
    let to = from + usize::from(point.width());
    (to <= len).then_some((from, to))
}

/// A decoded number before range checking.
enum Numeric {
    /// An integer kept exact (scale 1, offset 0).
    Exact(Value),
    /// A float still to be checked for NaN/∞ and scaled.
    Float(f64),
}

/// An integer read from the wire, before scale and offset.
enum Raw {
    Unsigned(u64),
    Signed(i64),
}

fn is_identity(point: &Point) -> bool {
    point.scale == 1.0 && point.offset == 0.0
}

fn integer_value(point: &Point, raw: Raw) -> Numeric {
    if is_identity(point) {
        return Numeric::Exact(match raw {
            Raw::Unsigned(u) => Value::UInt(u),
            Raw::Signed(i) => Value::Int(i),
        });
    }
    let raw = match raw {
        Raw::Unsigned(u) => u as f64,
        Raw::Signed(i) => i as f64,
    };
    Numeric::Float(raw)
}

/// Applies scale and offset to a float raw value and grades it.
fn float_value(point: &Point, raw: f64) -> (Option<Value>, Quality) {
    let value = if is_identity(point) {
        raw
    } else {
        raw * point.scale + point.offset
    };
    if value.is_nan() {
        return (None, Quality::Bad(BadReason::NotANumber));
    }
    if value.is_infinite() {
        return (None, Quality::Bad(BadReason::Infinite));
    }
    (Some(Value::Float(value)), range_quality(point, value))
}

fn range_quality(point: &Point, value: f64) -> Quality {
    let below = point.min.is_some_and(|min| value < min);
    let above = point.max.is_some_and(|max| value > max);
    if below || above {
        Quality::Bad(BadReason::OutOfRange)
    } else {
        Quality::Good
    }
}

/// Puts `regs` (wire order) together into one big-endian integer.
fn assemble(regs: &[u16], order: WordOrder) -> u64 {
    let n = regs.len();
    let mut acc = 0u64;
    for i in 0..n {
        let reg = if order.swaps_words() {
            regs[n - 1 - i]
        } else {
            regs[i]
        };
        let reg = if order.swaps_bytes() {
            reg.swap_bytes()
        } else {
            reg
        };
        acc = (acc << 16) | u64::from(reg);
    }
    acc
}

/// Inverse of [`assemble`]: spreads the low `16 × out.len()` bits of `raw`
/// over `out` in wire order.
fn disassemble(raw: u64, order: WordOrder, out: &mut [u16]) {
    let n = out.len();
    for i in 0..n {
        // i-th register, most significant first.
        let shift = 16 * (n - 1 - i);
        let reg = (raw >> shift) as u16;
        let reg = if order.swaps_bytes() {
            reg.swap_bytes()
        } else {
            reg
        };
        let slot = if order.swaps_words() { n - 1 - i } else { i };
        out[slot] = reg;
    }
}

fn text_bytes(reg: u16, order: WordOrder) -> [u8; 2] {
    let bytes = reg.to_be_bytes();
    if order.swaps_bytes() {
        [bytes[1], bytes[0]]
    } else {
        bytes
    }
}

fn decode_text(regs: &[u16], len: u16, order: WordOrder) -> (Option<Value>, Quality) {
    let mut bytes: Vec<u8> = regs.iter().flat_map(|&r| text_bytes(r, order)).collect();
    bytes.truncate(usize::from(len));
    if let Some(nul) = bytes.iter().position(|&b| b == 0) {
        bytes.truncate(nul);
    }
    while bytes.last() == Some(&b' ') {
        bytes.pop();
    }
    match String::from_utf8(bytes) {
        Ok(text) => (Some(Value::Text(text)), Quality::Good),
        Err(_) => (None, Quality::Bad(BadReason::InvalidText)),
    }
}

fn encode_text(point: &Point, value: &Value, len: u16) -> Result<Vec<u16>, EncodeError> {
    let Value::Text(text) = value else {
        return Err(mismatch(point, value));
    };
    if text.len() > usize::from(len) {
        return Err(EncodeError::TextTooLong {
            point: point.name.clone(),
            len: text.len(),
            capacity: len,
        });
    }
    let mut bytes = text.as_bytes().to_vec();
    bytes.resize(usize::from(point.width()) * 2, 0);
    Ok(bytes
        .chunks_exact(2)
        .map(|pair| {
            let reg = u16::from_be_bytes([pair[0], pair[1]]);
            if point.order.swaps_bytes() {
                reg.swap_bytes()
            } else {
                reg
            }
        })
        .collect())
}

fn mismatch(point: &Point, value: &Value) -> EncodeError {
    EncodeError::TypeMismatch {
        point: point.name.clone(),
        data_type: point.data_type,
        value: value.clone(),
    }
}

fn truthy(point: &Point, value: &Value) -> Result<bool, EncodeError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Int(i) => Ok(*i != 0),
        Value::UInt(u) => Ok(*u != 0),
        Value::Float(f) => Ok(*f != 0.0),
        Value::Text(_) => Err(mismatch(point, value)),
    }
}

/// The raw value before scale and offset, as a float.
fn float_raw(point: &Point, value: &Value) -> Result<f64, EncodeError> {
    let v = match value {
        Value::Text(_) => return Err(mismatch(point, value)),
        other => other.as_f64().unwrap_or(0.0),
    };
    if is_identity(point) {
        return Ok(v);
    }
    if point.scale == 0.0 || !point.scale.is_finite() {
        return Err(EncodeError::BadScale {
            point: point.name.clone(),
            scale: point.scale,
        });
    }
    Ok((v - point.offset) / point.scale)
}

/// The raw value narrowed to `f32`; a finite value beyond the `f32` range
/// is an overflow rather than a silent infinity.
fn f32_raw(point: &Point, value: &Value) -> Result<f32, EncodeError> {
    let raw = float_raw(point, value)?;
    let narrow = raw as f32;
    if raw.is_finite() && narrow.is_infinite() {
        return Err(EncodeError::Overflow {
            point: point.name.clone(),
            data_type: point.data_type,
            value: value.as_f64().unwrap_or(0.0),
            raw,
        });
    }
    Ok(narrow)
}

/// The raw value, rounded to an integer and checked against `[min, max]`.
fn integer_raw(point: &Point, value: &Value, min: f64, max: f64) -> Result<f64, EncodeError> {
    let raw = float_raw(point, value)?;
    let v = value.as_f64().unwrap_or(0.0);
    if !raw.is_finite() {
        return Err(EncodeError::NotFinite {
            point: point.name.clone(),
            data_type: point.data_type,
            value: v,
        });
    }
    let rounded = raw.round();
    // `max + 1` is a power of two, exact as f64 even for 64-bit types (whose
    // `max` itself is not representable and rounds up to it).
    let too_big = rounded >= max + 1.0;
    if rounded < min || too_big {
        return Err(EncodeError::Overflow {
            point: point.name.clone(),
            data_type: point.data_type,
            value: v,
            raw,
        });
    }
    Ok(rounded)
}

fn unsigned_raw(point: &Point, value: &Value, max: u64) -> Result<u64, EncodeError> {
    if is_identity(point) {
        let exact = match value {
            Value::UInt(u) => Some(*u),
            Value::Int(i) => u64::try_from(*i).ok(),
            Value::Bool(b) => Some(u64::from(*b)),
            _ => None,
        };
        if let Some(u) = exact {
            return if u <= max {
                Ok(u)
            } else {
                Err(overflow(point, value))
            };
        }
        if matches!(value, Value::Int(_)) {
            return Err(overflow(point, value));
        }
    }
    Ok(integer_raw(point, value, 0.0, max as f64)? as u64)
}

fn signed_raw(point: &Point, value: &Value, min: i64, max: i64) -> Result<i64, EncodeError> {
    if is_identity(point) {
        let exact = match value {
            Value::Int(i) => Some(*i),
            Value::UInt(u) => i64::try_from(*u).ok(),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        };
        if let Some(i) = exact {
            return if (min..=max).contains(&i) {
                Ok(i)
            } else {
                Err(overflow(point, value))
            };
        }
        if matches!(value, Value::UInt(_)) {
            return Err(overflow(point, value));
        }
    }
    Ok(integer_raw(point, value, min as f64, max as f64)? as i64)
}

fn overflow(point: &Point, value: &Value) -> EncodeError {
    let v = value.as_f64().unwrap_or(0.0);
    EncodeError::Overflow {
        point: point.name.clone(),
        data_type: point.data_type,
        value: v,
        raw: v,
    }
}
