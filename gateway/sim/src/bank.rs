//! The register map of one simulated device (one per bus and unit id).
//!
//! Built from the resolved device's points. For every area the bank spans
//! from the lowest address a point uses to one past the highest; inside that
//! span, addresses no point covers are **holes**. A read that leaves the span
//! (or touches an area the profile does not use) is exception 2, as on real
//! devices. A read that touches a hole is exception 2 when the device is
//! `strict_holes`, and reads 0 otherwise: both kinds exist in the field, and
//! the gateway's planner must cope with the strict ones by splitting ranges.
//!
//! Values go in and out through the core's encoder/decoder, so the bank holds
//! exactly the registers a device with that profile would hold. Several `bit`
//! points share one register: writing one only changes its own bit.
//!
//! Invariant: `values[a].len() == mapped[a].len() == span length`.

use std::collections::HashMap;

use gateway_core::decode::{
    EncodeError, decode_bit, decode_registers, encode_bit, encode_registers, set_bit,
};
use gateway_core::model::{Area, DataType, Point, Quality, Value};
use thiserror::Error;

use crate::frame::ILLEGAL_DATA_ADDRESS;

/// Why a point cannot be set.
#[derive(Debug, Error)]
pub enum BankError {
    /// No point of that name on this device.
    #[error("no point named {0:?} on this device")]
    UnknownPoint(String),
    /// The value does not fit the point.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// One area's storage.
#[derive(Clone, Debug, Default)]
struct Span {
    start: u16,
    /// Registers, or bits stored as 0/1.
    values: Vec<u16>,
    /// Whether a point covers the address.
    mapped: Vec<bool>,
}

impl Span {
    fn index(&self, address: u16, count: u16) -> Option<std::ops::Range<usize>> {
        let from = usize::from(address.checked_sub(self.start)?);
        let to = from + usize::from(count);
        (count > 0 && to <= self.values.len()).then_some(from..to)
    }
}

/// The register map of one device.
#[derive(Clone, Debug)]
pub struct Bank {
    points: Vec<Point>,
    by_name: HashMap<String, usize>,
    spans: [Span; 4],
    strict_holes: bool,
}

const fn slot(area: Area) -> usize {
    match area {
        Area::Coil => 0,
        Area::Discrete => 1,
        Area::Holding => 2,
        Area::Input => 3,
    }
}

impl Bank {
    /// An all-zero bank for these points.
    pub fn new(points: &[Point], strict_holes: bool) -> Self {
        let mut spans: [Span; 4] = Default::default();
        for area in [Area::Coil, Area::Discrete, Area::Holding, Area::Input] {
            let of_area = points.iter().filter(|p| p.area == area);
            let lo = of_area.clone().map(|p| u32::from(p.address)).min();
            let hi = of_area.clone().map(Point::end).max();
            if let (Some(lo), Some(hi)) = (lo, hi) {
                let len = usize::try_from(hi.min(0x1_0000) - lo).unwrap_or(0);
                let mut span = Span {
                    start: u16::try_from(lo).unwrap_or(u16::MAX),
                    values: vec![0; len],
                    mapped: vec![false; len],
                };
                for p in of_area {
                    if let Some(r) = span.index(p.address, p.width()) {
                        span.mapped[r].fill(true);
                    }
                }
                spans[slot(area)] = span;
            }
        }
        let by_name = points
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), i))
            .collect();
        Self {
            points: points.to_vec(),
            by_name,
            spans,
            strict_holes,
        }
    }

    /// The device's points, in profile order.
    pub fn points(&self) -> &[Point] {
        &self.points
    }

    /// Index of the point called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Whether this device refuses reads that touch holes.
    pub const fn strict_holes(&self) -> bool {
        self.strict_holes
    }

    /// Reads `count` registers (or bits as 0/1); `Err(code)` is the exception.
    pub fn read(&self, area: Area, address: u16, count: u16) -> Result<&[u16], u8> {
        let span = &self.spans[slot(area)];
        let range = span.index(address, count).ok_or(ILLEGAL_DATA_ADDRESS)?;
        if self.strict_holes && span.mapped[range.clone()].iter().any(|m| !m) {
            return Err(ILLEGAL_DATA_ADDRESS);
        }
        Ok(&span.values[range])
    }

    /// The points a write of `count` items at `address` would touch;
    /// exception 2 when the range leaves the span or touches a hole (writes
    /// into holes are refused even on lenient devices).
    pub fn covered(&self, area: Area, address: u16, count: u16) -> Result<Vec<usize>, u8> {
        let span = &self.spans[slot(area)];
        let range = span.index(address, count).ok_or(ILLEGAL_DATA_ADDRESS)?;
        if span.mapped[range].iter().any(|m| !m) {
            return Err(ILLEGAL_DATA_ADDRESS);
        }
        let end = u32::from(address) + u32::from(count);
        Ok(self
            .points
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.area == area && u32::from(p.address) < end && p.end() > u32::from(address)
            })
            .map(|(i, _)| i)
            .collect())
    }

    /// Writes registers (or bits as 0/1) as a master does, after the same
    /// checks as [`covered`](Self::covered).
    pub fn write(&mut self, area: Area, address: u16, values: &[u16]) -> Result<(), u8> {
        let count = u16::try_from(values.len()).map_err(|_| ILLEGAL_DATA_ADDRESS)?;
        self.covered(area, address, count)?;
        let span = &mut self.spans[slot(area)];
        let range = span.index(address, count).ok_or(ILLEGAL_DATA_ADDRESS)?;
        span.values[range].copy_from_slice(values);
        Ok(())
    }

    /// Sets point `index` to `value` through the core encoder.
    pub fn set(&mut self, index: usize, value: &Value) -> Result<(), BankError> {
        let Some(point) = self.points.get(index) else {
            return Err(BankError::UnknownPoint(format!("#{index}")));
        };
        let span = &mut self.spans[slot(point.area)];
        let Some(range) = span.index(point.address, point.width()) else {
            return Ok(()); // only a point past 65535 could miss its span; validation refuses those
        };
        if point.area.is_bits() {
            span.values[range.start] = u16::from(encode_bit(point, value)?);
            return Ok(());
        }
        let regs = encode_registers(point, value)?;
        if let DataType::Bit(bit) = point.data_type {
            let on = regs.first().is_some_and(|r| *r != 0);
            span.values[range.start] = set_bit(span.values[range.start], bit, on);
        } else {
            span.values[range].copy_from_slice(&regs);
        }
        Ok(())
    }

    /// Sets the point called `name`.
    pub fn set_named(&mut self, name: &str, value: &Value) -> Result<(), BankError> {
        let index = self
            .index_of(name)
            .ok_or_else(|| BankError::UnknownPoint(name.to_owned()))?;
        self.set(index, value)
    }

    /// The current value of point `index`, decoded as the gateway would.
    pub fn get(&self, index: usize) -> Option<(Option<Value>, Quality)> {
        let point = self.points.get(index)?;
        let span = &self.spans[slot(point.area)];
        let range = span.index(point.address, point.width())?;
        Some(if point.area.is_bits() {
            decode_bit(point, span.values[range.start] != 0)
        } else {
            decode_registers(point, &span.values[range])
        })
    }

    /// The current value of the point called `name`, when it decodes.
    pub fn get_named(&self, name: &str) -> Option<Value> {
        self.get(self.index_of(name)?)?.0
    }
}

#[cfg(test)]
mod tests {
    use gateway_core::model::WordOrder;

    use super::*;

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
            write: None,
        }
    }

    fn holey() -> Vec<Point> {
        vec![
            point("a", Area::Holding, 0, DataType::U16),
            point("running", Area::Holding, 1, DataType::Bit(0)),
            point("fault", Area::Holding, 1, DataType::Bit(1)),
            point("f", Area::Holding, 4, DataType::F32),
            point("c", Area::Coil, 3, DataType::Bool),
        ]
    }

    #[test]
    fn lenient_devices_read_holes_as_zero_and_strict_ones_refuse_them() {
        let lenient = Bank::new(&holey(), false);
        assert_eq!(lenient.read(Area::Holding, 0, 6), Ok(&[0u16; 6][..]));
        let strict = Bank::new(&holey(), true);
        assert_eq!(
            strict.read(Area::Holding, 0, 6),
            Err(ILLEGAL_DATA_ADDRESS),
            "2..4 is a hole"
        );
        assert!(strict.read(Area::Holding, 0, 2).is_ok());
        assert!(strict.read(Area::Holding, 4, 2).is_ok());
    }

    #[test]
    fn reads_outside_the_span_or_of_unused_areas_are_exception_2() {
        let bank = Bank::new(&holey(), false);
        assert_eq!(bank.read(Area::Holding, 5, 2), Err(ILLEGAL_DATA_ADDRESS));
        assert_eq!(bank.read(Area::Input, 0, 1), Err(ILLEGAL_DATA_ADDRESS));
        assert_eq!(bank.read(Area::Coil, 2, 1), Err(ILLEGAL_DATA_ADDRESS));
        assert_eq!(bank.read(Area::Coil, 3, 1), Ok(&[0u16][..]));
    }

    #[test]
    fn bit_points_share_a_register_without_clobbering_each_other() {
        let mut bank = Bank::new(&holey(), false);
        bank.set_named("running", &Value::Bool(true)).unwrap();
        bank.set_named("fault", &Value::Bool(true)).unwrap();
        bank.set_named("running", &Value::Bool(false)).unwrap();
        assert_eq!(bank.read(Area::Holding, 1, 1), Ok(&[0b10u16][..]));
        assert_eq!(bank.get_named("fault"), Some(Value::Bool(true)));
    }

    #[test]
    fn values_round_trip_through_the_core_codec() {
        let mut bank = Bank::new(&holey(), false);
        bank.set_named("f", &Value::Float(1.5)).unwrap();
        assert_eq!(bank.read(Area::Holding, 4, 2), Ok(&[0x3FC0u16, 0x0000][..]));
        assert_eq!(bank.get_named("f"), Some(Value::Float(1.5)));
        assert!(matches!(
            bank.set_named("nope", &Value::Bool(true)),
            Err(BankError::UnknownPoint(_))
        ));
    }

    #[test]
    fn master_writes_report_the_points_they_touch_and_refuse_holes() {
        let mut bank = Bank::new(&holey(), false);
        assert_eq!(bank.covered(Area::Holding, 0, 2), Ok(vec![0, 1, 2]));
        assert_eq!(bank.write(Area::Holding, 0, &[7, 3]), Ok(()));
        assert_eq!(bank.get_named("a"), Some(Value::UInt(7)));
        assert_eq!(
            bank.write(Area::Holding, 2, &[1]),
            Err(ILLEGAL_DATA_ADDRESS)
        );
    }
}
