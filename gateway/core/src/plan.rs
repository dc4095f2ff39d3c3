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
//!
//! # Line time: [`plan_costed`]
//!
//! The fewest requests is not the least line time: a request has a fixed
//! cost (on a serial line its 8-byte frame, the answer's 5 bytes of header
//! and CRC, two 3.5-character silences, the inter-frame delay and the
//! device's turnaround; on TCP a network round trip) and a cost per byte it
//! reads. [`plan_costed`] minimises the sum of those costs over the same
//! rules ([`Cost`] gives the model per bus kind and baud): it bridges a hole
//! when reading it costs less than a second request, whatever its width,
//! and `max_gap` is only a cap (`u16::MAX`: none). It partitions the
//! selected points of each area, in address order, into runs (points that
//! overlap stay in one run) by dynamic programming over the run boundaries:
//! a cheapest plan never needs two requests whose ranges interleave, so
//! the cheapest partition into consecutive groups is the cheapest plan. A
//! property test checks its cost against an exhaustive search over every
//! partition of small random inputs.

use std::collections::BTreeSet;
use std::time::Duration;

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

/// What one read request costs on its line, in microseconds: `request_us`
/// whatever it reads, plus `byte_us` for every data byte of the answer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cost {
    /// Fixed cost of a request: frames' overhead, silences, turnaround.
    pub request_us: f64,
    /// Cost of one data byte of the answer (2 per register, 1 per 8 bits).
    pub byte_us: f64,
}

/// What a Modbus TCP round trip costs beyond its data: the network and the
/// device's (or serial server's) reaction. 2 ms is low for most devices,
/// so bridging is, if anything, underrated.
pub const TCP_REQUEST_US: f64 = 2_000.0;

/// What a serial transaction costs beyond its wire time (the frames and
/// their silences) and the inter-frame delay: the slave's turnaround from
/// the end of the request to the start of its answer, and the master's own
/// latency. Measured with the simulator in real wire time on a pty pair
/// (docs/performance.md, "RS-485 line budget"): 2.5–2.8 ms per transaction
/// at 9600, 19 200 and 115 200 baud on a quiet host (up to 4 ms on a busy
/// one); real slaves answer in a few ms.
pub const SERIAL_TURNAROUND: Duration = Duration::from_micros(2_500);

impl Cost {
    /// Modbus TCP: a round trip costs [`TCP_REQUEST_US`]; bytes at 100 Mbit/s.
    pub const TCP: Cost = Cost {
        request_us: TCP_REQUEST_US,
        byte_us: 0.08,
    };

    /// A serial line (RTU, or RTU behind a serial device server) at `baud`
    /// with `bits_per_char` bits per character: a request costs its 8-byte
    /// frame, the answer's 5 bytes of address, function, byte count and
    /// CRC, two inter-frame silences (3.5 characters; 1.75 ms above 19 200
    /// baud), `inter_frame_delay` and `turnaround`; every data byte one
    /// character.
    pub fn serial(
        baud: u32,
        bits_per_char: u32,
        inter_frame_delay: Duration,
        turnaround: Duration,
    ) -> Cost {
        let char_us = f64::from(bits_per_char) * 1e6 / f64::from(baud.max(1));
        let silence_us = if baud > 19_200 {
            1_750.0
        } else {
            3.5 * char_us
        };
        Cost {
            request_us: 13.0 * char_us
                + 2.0 * silence_us
                + inter_frame_delay.as_secs_f64() * 1e6
                + turnaround.as_secs_f64() * 1e6,
            byte_us: char_us,
        }
    }

    /// Data bytes of the answer to a read of `count` items of `area`.
    pub fn data_bytes(area: Area, count: u16) -> u32 {
        if area.is_bits() {
            u32::from(count).div_ceil(8)
        } else {
            2 * u32::from(count)
        }
    }

    /// The cost of one request reading `count` items of `area`, in µs.
    pub fn of(&self, area: Area, count: u16) -> f64 {
        self.request_us + self.byte_us * f64::from(Self::data_bytes(area, count))
    }

    /// The cost of a plan, in µs.
    pub fn of_plan(&self, requests: &[Request]) -> f64 {
        requests.iter().map(|r| self.of(r.area, r.count)).sum()
    }
}

/// One selected point as the planner's dynamic programme sees it: the
/// registers (or bits) it spans within its area.
struct Run {
    area: Area,
    start: u16,
    end: u32,
    points: Vec<usize>,
}

/// Plans the requests covering the points for which `select` is true with
/// the least line time under `cost`, by the rules of the module (limits,
/// holes of at most `limits.max_gap`, barriers).
pub fn plan_costed(
    points: &[Point],
    select: &dyn Fn(&Point) -> bool,
    limits: Limits,
    barriers: &Barriers,
    cost: &Cost,
) -> Vec<Request> {
    let mut order: Vec<usize> = (0..points.len()).filter(|&i| select(&points[i])).collect();
    order.sort_unstable_by_key(|&i| {
        let p = &points[i];
        (p.area, p.address, p.end(), i)
    });
    // Every point starts as its own run. Overlapping points are not forced
    // into one request: reading a long point on its own and its neighbour
    // with the next one can be cheaper than one wide request and another
    // overlapping it.
    let runs: Vec<Run> = order
        .into_iter()
        .map(|i| {
            let p = &points[i];
            Run {
                area: p.area,
                start: p.address,
                end: p.end(),
                points: vec![i],
            }
        })
        .collect();
    let mut requests = Vec::new();
    let mut from = 0;
    while from < runs.len() {
        let area = runs[from].area;
        let to = runs[from..]
            .iter()
            .position(|r| r.area != area)
            .map_or(runs.len(), |n| from + n);
        requests.extend(cheapest(points, &runs[from..to], limits, barriers, cost));
        from = to;
    }
    requests
}

/// The cheapest partition of one area's runs into consecutive groups, one
/// request each.
fn cheapest(
    points: &[Point],
    runs: &[Run],
    limits: Limits,
    barriers: &Barriers,
    cost: &Cost,
) -> Vec<Request> {
    let m = runs.len();
    // best[j]: cost of the cheapest plan of runs[..j]; cut[j]: where its
    // last group starts.
    let mut best = vec![f64::INFINITY; m + 1];
    let mut cut = vec![0usize; m + 1];
    best[0] = 0.0;
    for j in 0..m {
        let mut end = runs[j].end;
        for i in (0..=j).rev() {
            end = end.max(runs[i].end);
            if i < j && !group_ok(points, &runs[i..=j], end, limits, barriers) {
                let span = end - u32::from(runs[i].start);
                if span > u32::from(limits.for_area(runs[i].area)) {
                    // Wider to the left only.
                    break;
                }
                continue;
            }
            let count = u16::try_from(end - u32::from(runs[i].start)).unwrap_or(u16::MAX);
            let total = best[i] + cost.of(runs[i].area, count);
            // Ties go to the fewer requests (the wider group, seen first).
            if total < best[j + 1] - 1e-9 {
                best[j + 1] = total;
                cut[j + 1] = i;
            }
        }
    }
    let mut groups = Vec::new();
    let mut j = m;
    while j > 0 {
        let i = cut[j];
        groups.push(i..j);
        j = i;
    }
    groups
        .into_iter()
        .rev()
        .map(|g| {
            let group = &runs[g];
            let start = group[0].start;
            let end = group
                .iter()
                .map(|r| r.end)
                .max()
                .unwrap_or(u32::from(start));
            let mut carried: Vec<usize> = group
                .iter()
                .flat_map(|r| r.points.iter().copied())
                .collect();
            carried.sort_unstable_by_key(|&i| (points[i].address, points[i].end(), i));
            Request {
                area: group[0].area,
                start,
                count: u16::try_from(end - u32::from(start)).unwrap_or(u16::MAX),
                points: carried,
            }
        })
        .collect()
}

/// True when the runs `group` (two or more, consecutive, one area, reaching
/// `end`) may share one request: within the area's limit, no hole wider than
/// `max_gap`, no barrier crossed except inside one of their points.
fn group_ok(
    points: &[Point],
    group: &[Run],
    end: u32,
    limits: Limits,
    barriers: &Barriers,
) -> bool {
    let area = group[0].area;
    let start = group[0].start;
    if end - u32::from(start) > u32::from(limits.for_area(area)) {
        return false;
    }
    let mut reach = group[0].end;
    for r in &group[1..] {
        if u32::from(r.start) > reach && u32::from(r.start) - reach > u32::from(limits.max_gap) {
            return false;
        }
        reach = reach.max(r.end);
    }
    let mut at = start;
    loop {
        let b = barriers.next_after(area, at);
        if b >= end {
            return true;
        }
        let inside = group
            .iter()
            .flat_map(|r| r.points.iter())
            .filter_map(|&i| points.get(i))
            .any(|p| u32::from(p.address) < b && b < p.end());
        if !inside {
            return false;
        }
        at = u16::try_from(b).unwrap_or(u16::MAX);
    }
}
