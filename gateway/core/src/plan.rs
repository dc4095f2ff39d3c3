//! Points → the fewest Modbus read requests that cover them.

use crate::model::{Area, Point};

/// One read request of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub area: Area,
    /// First address read.
    pub start: u16,
    /// Registers or bits read.
    pub count: u16,
    /// Indices (into the device's points) of the points this request carries.
    pub points: Vec<usize>,
}

/// Limits the planner respects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// ≤ 125.
    pub max_registers: u16,
    /// ≤ 2000.
    pub max_bits: u16,
    /// Unused registers/bits that may be read to join two ranges.
    pub max_gap: u16,
}

/// Addresses a request must not cross, learned from devices that answer
/// "illegal data address" to coalesced ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Barriers {}

/// Plans the requests covering the points for which `select` is true.
pub fn plan(
    points: &[Point],
    select: &dyn Fn(&Point) -> bool,
    limits: Limits,
    barriers: &Barriers,
) -> Vec<Request> {
    let _ = (points, select, limits, barriers);
    todo!("issue #2: planner")
}
