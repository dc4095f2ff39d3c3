//! Registers and bits → typed values with scale, offset and quality.

use crate::model::{Point, Quality, Value};

/// Decodes a point from exactly `point.width()` registers (already sliced
/// out of the request's answer). Applies word/byte order, scale, offset and
/// the `min`/`max` range; NaN, infinities and out-of-range values come back
/// with bad quality.
pub fn decode_registers(point: &Point, regs: &[u16]) -> (Option<Value>, Quality) {
    let _ = (point, regs);
    todo!("issue #2: decoder")
}

/// Decodes a point read from a coil or discrete input.
pub fn decode_bit(point: &Point, bit: bool) -> (Option<Value>, Quality) {
    let _ = (point, bit);
    todo!("issue #2: decoder")
}
