//! Points → the fewest Modbus read requests that cover them.
//!
//! # Rules
//!
//! For the selected points of one device, [`plan`] groups the points by
//! [`Area`], sorts them by address and coalesces them into read requests:
//!
//! - a request is one range `[start, start + count)` of one area and carries
//!   every point it was planned for, each lying fully inside the range;
//! - the unused registers/bits between the points a request carries form
//!   holes of at most [`Limits::max_gap`] items each;
//! - `count` never exceeds the area's limit: `min(max_registers, 125)` for
//!   registers, `min(max_bits, 2000)` for bits;
//! - no request crosses a barrier (contains both `b − 1` and `b` for a
//!   barrier `b`), except inside a single point, which is indivisible.
//!
//! Points that overlap (several `bit` points of one register, a `u16` read
//! inside a `u32`) always share a request.
//!
//! # Why greedy is minimal
//!
//! The planner walks the points in address order and adds each to the open
//! request while the rules allow, else opens a new one. Opening later can
//! never help: any point the open request could still take after a refusal
//! lies inside the refused point and rides along in the next request for
//! free, and a solution's first request can always be widened to the
//! greedy's without costing a request. A property test checks the count
//! against an exhaustive search over every partition of small random inputs.
//!
//! # Barriers
//!
//! Some devices answer "illegal data address" (exception 2) to a range that
//! crosses a hole in their map, or even to any multi-point read. The bus task
//! then calls [`Barriers::on_illegal_address`], which learns where to split
//! (first the bridged holes, then between every point) and replans. Each call
//! that returns `true` adds at least one barrier strictly inside the refused
//! request, so a device converges after a bounded number of refusals.
//!
//! Output is deterministic: requests in area order (coil, discrete, holding,
//! input), then by start address; points inside a request by address, then
//! by index.

use std::collections::BTreeSet;

use crate::model::{Area, Point};

#[cfg(test)]
mod tests;

/// One read request of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The area read (gives the function code).
    pub area: Area,
    /// First address read.
    pub start: u16,
    /// Registers or bits read.
    pub count: u16,
    /// Indices (into the device's points) of the points this request carries.
    pub points: Vec<usize>,
}

impl Request {
    /// One past the last address read.
    pub const fn end(&self) -> u32 {
        self.start as u32 + self.count as u32
    }
}

/// Limits the planner respects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Registers per request; values above 125 (or 0) are treated as 125.
    pub max_registers: u16,
    /// Bits per request; values above 2000 (or 0) are treated as 2000.
    pub max_bits: u16,
    /// Unused registers/bits that may be read to join two ranges.
    pub max_gap: u16,
}

impl Limits {
    /// The effective number of items one request of `area` may read.
    pub fn for_area(&self, area: Area) -> u16 {
        let asked = if area.is_bits() {
            self.max_bits
        } else {
            self.max_registers
        };
        let protocol = area.protocol_max();
        if asked == 0 {
            protocol
        } else {
            asked.min(protocol)
        }
    }
}

/// Addresses a request must not cross, learned from devices that answer
/// "illegal data address" to coalesced ranges.
///
/// A barrier `(area, b)` forbids any request of `area` that reads both
/// `b − 1` and `b`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Barriers {
    set: BTreeSet<(Area, u16)>,
}

impl Barriers {
    /// No barriers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a barrier before `address`; returns false when it was already
    /// there or when `address` is 0 (nothing lies before it).
    pub fn add(&mut self, area: Area, address: u16) -> bool {
        address > 0 && self.set.insert((area, address))
    }

    /// True when a barrier lies before `address`.
    pub fn contains(&self, area: Area, address: u16) -> bool {
        self.set.contains(&(area, address))
    }

    /// True when a read of `[start, end)` would cross a barrier.
    pub fn crosses(&self, area: Area, start: u16, end: u32) -> bool {
        self.next_after(area, start) < end
    }

    /// Number of barriers.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// True when there are no barriers.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Every barrier, by area then address.
    pub fn iter(&self) -> impl Iterator<Item = (Area, u16)> + '_ {
        self.set.iter().copied()
    }

    /// The first barrier above `start` in `area`, or `u32::MAX`.
    fn next_after(&self, area: Area, start: u16) -> u32 {
        let Some(from) = start.checked_add(1) else {
            return u32::MAX;
        };
        self.set
            .range((area, from)..)
            .next()
            .filter(|(a, _)| *a == area)
            .map_or(u32::MAX, |&(_, b)| u32::from(b))
    }

    /// Learns from a device that answered exception 2 ("illegal data
    /// address") to `req`, whose points are indices into `points`.
    ///
    /// When the request bridged holes between its points, bridging those
    /// holes is forbidden; when it was contiguous, it is split between every
    /// point (points that overlap stay together). Returns true when a new
    /// barrier was added (replan and retry), false when there is nothing to
    /// split: the request held a single point, or only overlapping points,
    /// which the device simply refuses.
    pub fn on_illegal_address(&mut self, req: &Request, points: &[Point]) -> bool {
        let clusters = clusters(req, points);
        if clusters.len() < 2 {
            return false;
        }
        let mut added = false;
        for pair in clusters.windows(2) {
            let (prev_end, next_start) = (pair[0].1, pair[1].0);
            if u32::from(next_start) > prev_end {
                added |= self.add(req.area, next_start);
            }
        }
        if added {
            return true;
        }
        for &(start, _) in &clusters[1..] {
            added |= self.add(req.area, start);
        }
        added
    }
}

/// The request's points merged into runs of overlapping points, as
/// `(start, end)` in address order.
fn clusters(req: &Request, points: &[Point]) -> Vec<(u16, u32)> {
    let mut spans: Vec<(u16, u32)> = req
        .points
        .iter()
        .filter_map(|&i| points.get(i))
        .filter(|p| p.area == req.area)
        .map(|p| (p.address, p.end()))
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<(u16, u32)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if u32::from(start) < last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// Plans the requests covering the points for which `select` is true.
///
/// A point wider than the area's limit still gets a request of its own (the
/// device will refuse it); configuration validation rejects such points.
pub fn plan(
    points: &[Point],
    select: &dyn Fn(&Point) -> bool,
    limits: Limits,
    barriers: &Barriers,
) -> Vec<Request> {
    let mut order: Vec<usize> = (0..points.len()).filter(|&i| select(&points[i])).collect();
    order.sort_unstable_by_key(|&i| {
        let p = &points[i];
        (p.area, p.address, p.end(), i)
    });

    let mut requests = Vec::new();
    let mut open: Option<Open> = None;
    for i in order {
        let p = &points[i];
        if let Some(o) = open.as_mut()
            && o.admits(p, limits)
        {
            o.end = o.end.max(p.end());
            o.points.push(i);
            continue;
        }
        if let Some(done) = open.take() {
            requests.push(done.finish());
        }
        let cap = u32::from(p.address) + u32::from(limits.for_area(p.area));
        let cap = cap.min(barriers.next_after(p.area, p.address)).max(p.end());
        open = Some(Open {
            area: p.area,
            start: p.address,
            end: p.end(),
            cap,
            points: vec![i],
        });
    }
    if let Some(done) = open {
        requests.push(done.finish());
    }
    requests
}

/// The request being filled by the planner.
struct Open {
    area: Area,
    start: u16,
    /// One past the last address any carried point occupies.
    end: u32,
    /// The request may not reach beyond this (limit or next barrier).
    cap: u32,
    points: Vec<usize>,
}

impl Open {
    fn admits(&self, p: &Point, limits: Limits) -> bool {
        let gap = u32::from(p.address).saturating_sub(self.end);
        p.area == self.area && gap <= u32::from(limits.max_gap) && p.end().max(self.end) <= self.cap
    }

    fn finish(self) -> Request {
        let count = u16::try_from(self.end - u32::from(self.start)).unwrap_or(u16::MAX);
        Request {
            area: self.area,
            start: self.start,
            count,
            points: self.points,
        }
    }
}
