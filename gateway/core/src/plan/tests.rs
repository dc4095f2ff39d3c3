//! Planner tests: hand-made cases and properties checked against an
//! exhaustive search.

use proptest::prelude::*;

use super::*;
use crate::model::{DataType, WordOrder};

fn pt(area: Area, address: u16, data_type: DataType) -> Point {
    Point {
        name: format!("{area}_{address}"),
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

const LIMITS: Limits = Limits {
    max_registers: 125,
    max_bits: 2000,
    max_gap: 2,
};

fn all(_: &Point) -> bool {
    true
}

#[test]
fn contiguous_and_near_contiguous_points_share_one_request() {
    let points = vec![
        pt(Area::Holding, 0, DataType::U16),
        pt(Area::Holding, 1, DataType::F32),
        pt(Area::Holding, 5, DataType::U16), // gap of 2 after the f32 (3, 4)
    ];
    let reqs = plan(&points, &all, LIMITS, &Barriers::new());
    assert_eq!(
        reqs,
        vec![Request {
            area: Area::Holding,
            start: 0,
            count: 6,
            points: vec![0, 1, 2]
        }]
    );
}

#[test]
fn a_gap_wider_than_max_gap_starts_a_new_request() {
    let points = vec![
        pt(Area::Input, 0, DataType::U16),
        pt(Area::Input, 4, DataType::U16),
    ];
    let reqs = plan(&points, &all, LIMITS, &Barriers::new());
    assert_eq!(reqs.len(), 2);
    assert_eq!((reqs[1].start, reqs[1].count), (4, 1));
}

#[test]
fn bits_of_one_register_share_a_request() {
    let points: Vec<Point> = (0..16)
        .map(|b| pt(Area::Holding, 7, DataType::Bit(b)))
        .collect();
    let reqs = plan(&points, &all, LIMITS, &Barriers::new());
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        (reqs[0].start, reqs[0].count, reqs[0].points.len()),
        (7, 1, 16)
    );
}

#[test]
fn output_is_ordered_by_area_then_address_whatever_the_input_order() {
    let points = vec![
        pt(Area::Input, 100, DataType::U16),
        pt(Area::Holding, 50, DataType::U16),
        pt(Area::Coil, 3, DataType::Bool),
        pt(Area::Discrete, 9, DataType::Bool),
        pt(Area::Holding, 0, DataType::U16),
    ];
    let reqs = plan(&points, &all, LIMITS, &Barriers::new());
    let keys: Vec<(Area, u16)> = reqs.iter().map(|r| (r.area, r.start)).collect();
    assert_eq!(
        keys,
        vec![
            (Area::Coil, 3),
            (Area::Discrete, 9),
            (Area::Holding, 0),
            (Area::Holding, 50),
            (Area::Input, 100)
        ]
    );
}

#[test]
fn the_register_limit_splits_a_long_run() {
    let points: Vec<Point> = (0..130)
        .map(|a| pt(Area::Holding, a, DataType::U16))
        .collect();
    let reqs = plan(&points, &all, LIMITS, &Barriers::new());
    assert_eq!(
        reqs.iter().map(|r| r.count).collect::<Vec<_>>(),
        vec![125, 5]
    );
    let small = Limits {
        max_registers: 40,
        ..LIMITS
    };
    assert_eq!(plan(&points, &all, small, &Barriers::new()).len(), 4);
}

#[test]
fn limits_above_the_protocol_maximum_are_capped() {
    let limits = Limits {
        max_registers: 500,
        max_bits: 9000,
        max_gap: 0,
    };
    assert_eq!(limits.for_area(Area::Holding), 125);
    assert_eq!(limits.for_area(Area::Coil), 2000);
    let zero = Limits {
        max_registers: 0,
        max_bits: 0,
        max_gap: 0,
    };
    assert_eq!(zero.for_area(Area::Input), 125);
}

#[test]
fn only_selected_points_are_planned() {
    let mut points = vec![
        pt(Area::Holding, 0, DataType::U16),
        pt(Area::Holding, 1, DataType::U16),
    ];
    points[1].alarm = true;
    let reqs = plan(&points, &|p: &Point| p.alarm, LIMITS, &Barriers::new());
    assert_eq!(
        reqs,
        vec![Request {
            area: Area::Holding,
            start: 1,
            count: 1,
            points: vec![1]
        }]
    );
    assert!(plan(&points, &|_: &Point| false, LIMITS, &Barriers::new()).is_empty());
}

#[test]
fn an_illegal_address_answer_first_forbids_the_bridged_gap_then_splits_every_point() {
    let points = vec![
        pt(Area::Holding, 0, DataType::U16),
        pt(Area::Holding, 1, DataType::U16),
        pt(Area::Holding, 3, DataType::U16),
    ];
    let mut barriers = Barriers::new();
    let reqs = plan(&points, &all, LIMITS, &barriers);
    assert_eq!(reqs.len(), 1);
    assert!(barriers.on_illegal_address(&reqs[0], &points));
    assert!(barriers.contains(Area::Holding, 3));

    let reqs = plan(&points, &all, LIMITS, &barriers);
    assert_eq!(
        reqs.iter().map(|r| (r.start, r.count)).collect::<Vec<_>>(),
        vec![(0, 2), (3, 1)]
    );
    assert!(barriers.on_illegal_address(&reqs[0], &points));
    let reqs = plan(&points, &all, LIMITS, &barriers);
    assert_eq!(reqs.len(), 3);
    assert!(
        !barriers.on_illegal_address(&reqs[0], &points),
        "a single point cannot be split"
    );
}

#[test]
fn overlapping_points_are_never_split_apart() {
    let points = vec![
        pt(Area::Holding, 10, DataType::U32),
        pt(Area::Holding, 11, DataType::U16),
        pt(Area::Holding, 11, DataType::Bit(3)),
    ];
    let mut barriers = Barriers::new();
    let reqs = plan(&points, &all, LIMITS, &barriers);
    assert_eq!(reqs.len(), 1);
    assert!(!barriers.on_illegal_address(&reqs[0], &points));
    assert!(barriers.is_empty());
}

#[test]
fn barriers_are_kept_per_area() {
    let mut barriers = Barriers::new();
    assert!(barriers.add(Area::Coil, 5));
    assert!(!barriers.add(Area::Coil, 5));
    assert!(!barriers.add(Area::Coil, 0));
    assert!(barriers.crosses(Area::Coil, 4, 6));
    assert!(!barriers.crosses(Area::Coil, 5, 9));
    assert!(!barriers.crosses(Area::Discrete, 0, 100));
    assert_eq!(barriers.iter().collect::<Vec<_>>(), vec![(Area::Coil, 5)]);
}

// ---- properties ----

/// The rules of `plan`, checked for one set of points as one request,
/// independently of the planner: `None` when infeasible, else the range.
fn feasible(points: &[&Point], limits: Limits, barriers: &Barriers) -> Option<(u16, u32)> {
    let area = points[0].area;
    if points.iter().any(|p| p.area != area) {
        return None;
    }
    let start = points.iter().map(|p| p.address).min()?;
    let end = points.iter().map(|p| p.end()).max()?;
    if end - u32::from(start) > u32::from(limits.for_area(area)) {
        return None;
    }
    // Addresses covered by some point; every hole must be ≤ max_gap.
    let covered = |a: u32| {
        points
            .iter()
            .any(|p| u32::from(p.address) <= a && a < p.end())
    };
    let mut hole = 0;
    for a in u32::from(start)..end {
        if covered(a) {
            hole = 0;
        } else {
            hole += 1;
            if hole > u32::from(limits.max_gap) {
                return None;
            }
        }
    }
    if barriers.crosses(area, start, end) {
        return None;
    }
    Some((start, end))
}

/// Fewest blocks over every partition of `points` into feasible blocks.
fn brute_force_minimum(points: &[&Point], limits: Limits, barriers: &Barriers) -> usize {
    fn go(
        i: usize,
        points: &[&Point],
        blocks: &mut Vec<Vec<usize>>,
        ok: &dyn Fn(&[usize]) -> bool,
        best: &mut usize,
    ) {
        if blocks.len() >= *best {
            return;
        }
        if i == points.len() {
            if blocks.iter().all(|b| ok(b)) {
                *best = blocks.len();
            }
            return;
        }
        for k in 0..blocks.len() {
            blocks[k].push(i);
            go(i + 1, points, blocks, ok, best);
            blocks[k].pop();
        }
        blocks.push(vec![i]);
        go(i + 1, points, blocks, ok, best);
        blocks.pop();
    }
    let ok = |block: &[usize]| {
        let members: Vec<&Point> = block.iter().map(|&i| points[i]).collect();
        feasible(&members, limits, barriers).is_some()
    };
    let mut best = points.len() + 1;
    go(0, points, &mut Vec::new(), &ok, &mut best);
    best
}

fn arb_type() -> impl Strategy<Value = DataType> {
    prop_oneof![
        Just(DataType::U16),
        Just(DataType::F32),
        Just(DataType::U64),
        (0u8..16).prop_map(DataType::Bit),
        (1u16..6).prop_map(DataType::String),
    ]
}

fn arb_point(max_address: u16) -> impl Strategy<Value = Point> {
    (
        prop_oneof![Just(Area::Holding), Just(Area::Input), Just(Area::Coil)],
        0..max_address,
        arb_type(),
        any::<bool>(),
    )
        .prop_map(|(area, address, data_type, alarm)| {
            let data_type = if area.is_bits() {
                DataType::Bool
            } else {
                data_type
            };
            let mut p = pt(area, address, data_type);
            p.alarm = alarm;
            p
        })
}

fn arb_case(
    max_points: usize,
    max_address: u16,
) -> impl Strategy<Value = (Vec<Point>, Limits, Barriers, bool)> {
    (
        prop::collection::vec(arb_point(max_address), 1..max_points),
        3u16..12,
        1u16..10,
        0u16..4,
        prop::collection::vec(
            (
                prop_oneof![Just(Area::Holding), Just(Area::Coil)],
                1..max_address,
            ),
            0..4,
        ),
        any::<bool>(),
    )
        .prop_map(
            |(points, max_registers, max_bits, max_gap, raw_barriers, alarm_only)| {
                let limits = Limits {
                    max_registers,
                    max_bits,
                    max_gap,
                };
                // Points wider than the limit are rejected by validation.
                let points: Vec<Point> = points
                    .into_iter()
                    .filter(|p| p.width() <= limits.for_area(p.area))
                    .collect();
                // Barriers come from splits between points, never inside one.
                let mut barriers = Barriers::new();
                for (area, b) in raw_barriers {
                    let inside = points
                        .iter()
                        .any(|p| p.area == area && p.address < b && u32::from(b) < p.end());
                    if !inside {
                        barriers.add(area, b);
                    }
                }
                (points, limits, barriers, alarm_only)
            },
        )
}

fn selector(alarm_only: bool) -> impl Fn(&Point) -> bool {
    move |p: &Point| !alarm_only || p.alarm
}

proptest! {
    #[test]
    fn every_selected_point_is_carried_once_by_a_request_that_contains_it(
        (points, limits, barriers, alarm_only) in arb_case(40, 200)
    ) {
        let select = selector(alarm_only);
        let reqs = plan(&points, &select, limits, &barriers);
        let mut seen = vec![0usize; points.len()];
        for r in &reqs {
            for &i in &r.points {
                seen[i] += 1;
                let p = &points[i];
                prop_assert_eq!(p.area, r.area);
                prop_assert!(p.address >= r.start && p.end() <= r.end(), "{p:?} outside {r:?}");
            }
        }
        for (i, p) in points.iter().enumerate() {
            prop_assert_eq!(seen[i], usize::from(select(p)), "point {}", i);
        }
    }

    #[test]
    fn requests_respect_limits_gaps_and_barriers_and_are_ordered(
        (points, limits, barriers, alarm_only) in arb_case(40, 200)
    ) {
        let select = selector(alarm_only);
        let reqs = plan(&points, &select, limits, &barriers);
        for r in &reqs {
            let members: Vec<&Point> = r.points.iter().map(|&i| &points[i]).collect();
            prop_assert_eq!(feasible(&members, limits, &barriers), Some((r.start, r.end())), "{:?}", r);
            prop_assert!(r.count <= limits.for_area(r.area));
        }
        let keys: Vec<(Area, u16)> = reqs.iter().map(|r| (r.area, r.start)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        prop_assert_eq!(keys, sorted);
    }

    #[test]
    fn the_plan_has_as_few_requests_as_an_exhaustive_search(
        (points, limits, barriers, alarm_only) in arb_case(8, 24)
    ) {
        let select = selector(alarm_only);
        let reqs = plan(&points, &select, limits, &barriers);
        let mut minimum = 0;
        for area in [Area::Coil, Area::Discrete, Area::Holding, Area::Input] {
            let chosen: Vec<&Point> = points.iter().filter(|p| p.area == area && select(p)).collect();
            if !chosen.is_empty() {
                minimum += brute_force_minimum(&chosen, limits, &barriers);
            }
        }
        prop_assert_eq!(reqs.len(), minimum);
    }

    #[test]
    fn a_device_refusing_holes_converges_to_a_plan_it_accepts(
        (points, limits, _barriers, alarm_only) in arb_case(30, 120),
        hole_seeds in prop::collection::vec(0u16..120, 1..10),
    ) {
        let select = selector(alarm_only);
        let in_point = |area: Area, a: u16| points.iter().any(|p| p.area == area && p.address <= a && u32::from(a) < p.end());
        // Unreadable addresses of the device map: never inside a point.
        let holes: Vec<(Area, u16)> = hole_seeds
            .into_iter()
            .flat_map(|a| [(Area::Holding, a), (Area::Coil, a), (Area::Input, a)])
            .filter(|&(area, a)| !in_point(area, a))
            .collect();
        let refuses = |r: &Request| holes.iter().any(|&(area, a)| area == r.area && u32::from(a) >= u32::from(r.start) && u32::from(a) < r.end());
        let mut barriers = Barriers::new();
        let mut rounds = 0;
        loop {
            let reqs = plan(&points, &select, limits, &barriers);
            let refused: Vec<&Request> = reqs.iter().filter(|r| refuses(r)).collect();
            if refused.is_empty() {
                break;
            }
            for r in refused {
                let before = barriers.len();
                prop_assert!(barriers.on_illegal_address(r, &points), "nothing to split in {r:?}");
                prop_assert!(barriers.len() > before);
            }
            rounds += 1;
            prop_assert!(rounds <= 200, "no convergence");
        }
    }
}

// ---- the cost model ----

/// 9600 baud 8N1 (10 bits per character), the default inter-frame delay.
fn serial_9600() -> Cost {
    Cost::serial(9600, 10, Duration::from_micros(3_646), SERIAL_TURNAROUND)
}

fn serial_115200() -> Cost {
    Cost::serial(115_200, 10, Duration::from_micros(1_750), SERIAL_TURNAROUND)
}

const NO_CAP: Limits = Limits {
    max_registers: 125,
    max_bits: 2000,
    max_gap: u16::MAX,
};

fn scattered() -> Vec<Point> {
    [0, 10, 20, 30]
        .into_iter()
        .map(|a| pt(Area::Holding, a, DataType::U16))
        .collect()
}

#[test]
fn scattered_points_are_read_in_one_request_when_that_costs_less_line_time() {
    let points = scattered();
    for cost in [serial_9600(), serial_115200(), Cost::TCP] {
        let reqs = plan_costed(&points, &all, NO_CAP, &Barriers::new(), &cost);
        assert_eq!(reqs.len(), 1, "{cost:?}");
        assert_eq!((reqs[0].start, reqs[0].count), (0, 31));
        assert_eq!(reqs[0].points, vec![0, 1, 2, 3]);
        // The fixed gap of 8 needs four requests and more line time.
        let capped = plan(
            &points,
            &all,
            Limits {
                max_gap: 8,
                ..NO_CAP
            },
            &Barriers::new(),
        );
        assert_eq!(capped.len(), 4);
        assert!(cost.of_plan(&capped) > cost.of_plan(&reqs));
    }
}

#[test]
fn a_hole_costing_more_than_a_request_is_not_read() {
    // At 9600 baud a request costs ≈ 24 characters: a hole of 40 registers
    // (80 characters) is not worth reading; on TCP it is.
    let points = vec![
        pt(Area::Holding, 0, DataType::U16),
        pt(Area::Holding, 41, DataType::U16),
    ];
    let serial = plan_costed(&points, &all, NO_CAP, &Barriers::new(), &serial_9600());
    assert_eq!(serial.len(), 2);
    let tcp = plan_costed(&points, &all, NO_CAP, &Barriers::new(), &Cost::TCP);
    assert_eq!(tcp.len(), 1);
    // The break-even hole at 9600 8N1: about 12 registers.
    let c = serial_9600();
    let even = c.request_us / (2.0 * c.byte_us);
    assert!((10.0..14.0).contains(&even), "{even}");
}

#[test]
fn max_gap_caps_the_costed_planner_and_limits_and_barriers_hold() {
    let points = scattered();
    let capped = Limits {
        max_gap: 8,
        ..NO_CAP
    };
    let reqs = plan_costed(&points, &all, capped, &Barriers::new(), &Cost::TCP);
    assert_eq!(reqs.len(), 4);
    let small = Limits {
        max_registers: 15,
        ..NO_CAP
    };
    let reqs = plan_costed(&points, &all, small, &Barriers::new(), &Cost::TCP);
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().all(|r| r.count <= 15));
    // A learned barrier splits where the device refused.
    let mut barriers = Barriers::new();
    barriers.add(Area::Holding, 20);
    let reqs = plan_costed(&points, &all, NO_CAP, &barriers, &Cost::TCP);
    let shapes: Vec<(u16, u16)> = reqs.iter().map(|r| (r.start, r.count)).collect();
    assert_eq!(shapes, vec![(0, 11), (20, 11)]);
}

#[test]
fn a_device_refusing_a_bridged_hole_is_split_by_the_costed_planner_too() {
    let points = scattered();
    let mut barriers = Barriers::new();
    let reqs = plan_costed(&points, &all, NO_CAP, &barriers, &Cost::TCP);
    assert!(barriers.on_illegal_address(&reqs[0], &points));
    let reqs = plan_costed(&points, &all, NO_CAP, &barriers, &Cost::TCP);
    assert_eq!(reqs.len(), 4);
}

#[test]
fn the_serial_cost_follows_the_line() {
    // 9600 8N1: 1.0417 ms a character; 13 characters of overhead, two
    // silences of 3.5 characters, the delay and the turnaround.
    let c = Cost::serial(9600, 10, Duration::ZERO, Duration::ZERO);
    assert!((c.byte_us - 1041.67).abs() < 0.01);
    assert!((c.request_us - 20.0 * 1041.67).abs() < 1.0);
    // Above 19 200 baud the silence is fixed at 1.75 ms.
    let c = Cost::serial(115_200, 10, Duration::ZERO, Duration::ZERO);
    assert!((c.request_us - (13.0 * 86.806 + 3500.0)).abs() < 1.0);
}

/// The least total cost over every partition of `points` into feasible
/// blocks (one request each).
fn brute_force_cheapest(
    points: &[&Point],
    limits: Limits,
    barriers: &Barriers,
    cost: &Cost,
) -> f64 {
    fn go(
        i: usize,
        points: &[&Point],
        blocks: &mut Vec<Vec<usize>>,
        price: &dyn Fn(&[usize]) -> Option<f64>,
        best: &mut f64,
    ) {
        if i == points.len() {
            let total: Option<f64> = blocks.iter().map(|b| price(b)).sum();
            if let Some(t) = total {
                *best = best.min(t);
            }
            return;
        }
        for k in 0..blocks.len() {
            blocks[k].push(i);
            go(i + 1, points, blocks, price, best);
            blocks[k].pop();
        }
        blocks.push(vec![i]);
        go(i + 1, points, blocks, price, best);
        blocks.pop();
    }
    let price = |block: &[usize]| {
        let members: Vec<&Point> = block.iter().map(|&i| points[i]).collect();
        let (start, end) = feasible(&members, limits, barriers)?;
        Some(cost.of(members[0].area, u16::try_from(end - u32::from(start)).ok()?))
    };
    let mut best = f64::INFINITY;
    go(0, points, &mut Vec::new(), &price, &mut best);
    best
}

fn arb_cost() -> impl Strategy<Value = Cost> {
    prop_oneof![
        Just(Cost::TCP),
        (0usize..4).prop_map(|i| {
            let baud = [1200, 9600, 19_200, 115_200][i];
            Cost::serial(baud, 11, Duration::from_millis(2), SERIAL_TURNAROUND)
        }),
        // Arbitrary ratios, down to "a byte costs as much as a request".
        (1.0f64..100.0, 0.5f64..50.0).prop_map(|(request_us, byte_us)| Cost {
            request_us,
            byte_us
        }),
    ]
}

proptest! {
    #[test]
    fn the_costed_plan_is_as_cheap_as_an_exhaustive_search(
        (points, limits, barriers, alarm_only) in arb_case(8, 24),
        cost in arb_cost(),
        uncapped in any::<bool>(),
    ) {
        let limits = if uncapped { Limits { max_gap: u16::MAX, ..limits } } else { limits };
        let select = selector(alarm_only);
        let reqs = plan_costed(&points, &select, limits, &barriers, &cost);
        let mut minimum = 0.0;
        for area in [Area::Coil, Area::Discrete, Area::Holding, Area::Input] {
            let chosen: Vec<&Point> = points.iter().filter(|p| p.area == area && select(p)).collect();
            if !chosen.is_empty() {
                minimum += brute_force_cheapest(&chosen, limits, &barriers, &cost);
            }
        }
        let got = cost.of_plan(&reqs);
        prop_assert!((got - minimum).abs() <= 1e-6 * minimum.max(1.0), "plan {got} vs best {minimum}: {reqs:?}");
    }

    #[test]
    fn costed_requests_carry_every_point_once_within_the_rules(
        (points, limits, barriers, alarm_only) in arb_case(40, 200),
        cost in arb_cost(),
    ) {
        let select = selector(alarm_only);
        let reqs = plan_costed(&points, &select, limits, &barriers, &cost);
        let mut seen = vec![0usize; points.len()];
        for r in &reqs {
            let members: Vec<&Point> = r.points.iter().map(|&i| &points[i]).collect();
            prop_assert_eq!(feasible(&members, limits, &barriers), Some((r.start, r.end())), "{:?}", r);
            for &i in &r.points {
                seen[i] += 1;
            }
        }
        for (i, p) in points.iter().enumerate() {
            prop_assert_eq!(seen[i], usize::from(select(p)), "point {}", i);
        }
        let keys: Vec<(Area, u16)> = reqs.iter().map(|r| (r.area, r.start)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        prop_assert_eq!(keys, sorted);
        // Never more line time than the greedy fewest-requests plan.
        let greedy = plan(&points, &select, limits, &barriers);
        prop_assert!(cost.of_plan(&reqs) <= cost.of_plan(&greedy) + 1e-6);
    }
}

#[test]
fn overlapping_points_may_go_to_different_requests_when_that_reads_less() {
    // Three four-register points at 10, 13 and 14 with seven registers a
    // request: 10..17 and 14..18 read eleven registers, 10..14 and 13..18
    // read nine in the same two requests.
    let points = vec![
        pt(Area::Input, 13, DataType::U64),
        pt(Area::Input, 10, DataType::U64),
        pt(Area::Input, 14, DataType::U64),
    ];
    let limits = Limits {
        max_registers: 7,
        max_bits: 1,
        max_gap: 0,
    };
    let reqs = plan_costed(&points, &all, limits, &Barriers::new(), &Cost::TCP);
    let shapes: Vec<(u16, u16, Vec<usize>)> = reqs
        .iter()
        .map(|r| (r.start, r.count, r.points.clone()))
        .collect();
    assert_eq!(shapes, vec![(10, 4, vec![1]), (13, 5, vec![0, 2])]);
}
