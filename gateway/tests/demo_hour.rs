//! The demo building for an hour of simulated time, polled through the
//! gateway's own planner, decoder and core engine (health, ledger, tickets
//! in a real store), with no wall-clock waiting: the simulated building and
//! the engine both take the time as an argument.
//!
//! Without its scripted faults the demo must give no Down interval and no
//! ticket (normal operation is no fault: pumps ramping up after every start
//! included); with them, exactly the scripted ones.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use gateway::engine::{CoreEvent, Engine};
use gateway_core::config::Resolved;
use gateway_core::decode::{decode_request, decode_request_bits, failed_request};
use gateway_core::model::{Area, BadReason, FailureKind, PollClass, PollOutcome};
use gateway_core::plan::{Barriers, Limits, Request, plan};
use gateway_core::state::DeviceState;
use gateway_core::tickets::TicketEventKind;
use gateway_sim::building::{Answer, Building};

/// 2026-06-01 10:00 site time (UTC+8): fan coils on, a working day.
const START_MS: i64 = 1_780_279_200_000;
/// The simulator's tick and the engine's clock step.
const STEP_MS: i64 = 500;

fn demo_config() -> Resolved {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/demo.toml");
    gateway::files::load_config(&path).unwrap_or_else(|e| panic!("{e:?}"))
}

/// What an hour of the demo gave.
#[derive(Debug, Default)]
struct Outcome {
    /// (device, reason, at) of every transition to Down.
    downs: Vec<(String, String, i64)>,
    /// (device, kind) of every ticket opened.
    tickets: Vec<(String, String)>,
}

fn function(area: Area) -> u8 {
    match area {
        Area::Coil => 1,
        Area::Discrete => 2,
        Area::Holding => 3,
        Area::Input => 4,
    }
}

/// One poll of every point of device `i`, made against the building.
fn poll(
    b: &mut Building,
    cfg: &Resolved,
    i: usize,
    barriers: &mut Barriers,
    now: Instant,
    ts_ms: i64,
) -> PollOutcome {
    let d = &cfg.devices[i];
    let limits = Limits {
        max_registers: d.max_registers,
        max_bits: d.max_bits,
        max_gap: d.max_gap,
    };
    let requests: Vec<Request> = plan(&d.points, &|_| true, limits, barriers);
    let mut out = PollOutcome {
        device: i,
        ts_ms,
        class: PollClass::Full,
        samples: Vec::new(),
        failure: None,
        requests: 0,
        failed_requests: 0,
        elapsed_us: 0,
    };
    for req in &requests {
        out.requests += 1;
        let [sh, sl] = req.start.to_be_bytes();
        let [ch, cl] = req.count.to_be_bytes();
        let pdu = [function(req.area), sh, sl, ch, cl];
        match b.serve(d.bus, d.unit, &pdu, now) {
            Answer::Reply { pdu: reply, .. } if reply.first().is_some_and(|f| f & 0x80 != 0) => {
                let code = reply.get(1).copied().unwrap_or(0);
                out.failed_requests += 1;
                out.failure = Some(FailureKind::Exception { code });
                out.samples
                    .extend(failed_request(req, BadReason::Exception { code }));
                if code == 2 {
                    barriers.on_illegal_address(req, &d.points);
                }
            }
            Answer::Reply { pdu: reply, .. } => {
                let data = reply.get(2..).unwrap_or_default();
                if req.area.is_bits() {
                    let bits: Vec<bool> = (0..usize::from(req.count))
                        .map(|k| data.get(k / 8).is_some_and(|byte| byte >> (k % 8) & 1 == 1))
                        .collect();
                    out.samples
                        .extend(decode_request_bits(&d.points, req, &bits));
                } else {
                    let words: Vec<u16> = data
                        .chunks_exact(2)
                        .map(|w| u16::from_be_bytes([w[0], w[1]]))
                        .collect();
                    out.samples.extend(decode_request(&d.points, req, &words));
                }
            }
            Answer::Silent | Answer::Reset => {
                out.failed_requests += 1;
                out.failure = Some(FailureKind::Timeout);
                out.samples.extend(failed_request(req, BadReason::NotRead));
            }
        }
    }
    out
}

/// Runs the demo building for `minutes` of simulated time with `seed`,
/// with or without its scripted faults, through a real engine.
fn run_demo(minutes: i64, seed: u64, scripted: bool) -> Outcome {
    let cfg = demo_config();
    let dir = tempfile::tempdir().unwrap();
    let base = Instant::now();
    let mut b = Building::new(&cfg, seed, START_MS, base);
    if scripted {
        for s in &cfg.raw.simulator.scenario {
            b.inject(s, base, base).unwrap();
        }
    }
    let (mut engine, _) = Engine::open(&cfg, dir.path(), START_MS).unwrap();
    let mut result = Outcome::default();
    let take = |events: Vec<CoreEvent>, result: &mut Outcome| {
        for e in events {
            match e {
                CoreEvent::Transition(t) if t.to == DeviceState::Down => {
                    result
                        .downs
                        .push((t.device, t.reason.unwrap_or_default(), t.at_ms - START_MS))
                }
                CoreEvent::Ticket(ev) if ev.kind == TicketEventKind::Opened => result
                    .tickets
                    .push((ev.ticket.device.clone(), ev.ticket.kind.clone())),
                _ => {}
            }
        }
    };
    let mut next_poll: Vec<i64> = vec![0; cfg.devices.len()];
    let mut barriers: Vec<Barriers> = (0..cfg.devices.len()).map(|_| Barriers::new()).collect();
    let end = minutes * 60_000;
    let mut t = 0;
    while t <= end {
        let now = base + Duration::from_millis(u64::try_from(t).unwrap());
        b.tick(now);
        for i in 0..cfg.devices.len() {
            if t >= next_poll[i] {
                let interval = i64::try_from(cfg.devices[i].poll_interval.as_millis()).unwrap();
                next_poll[i] = t + interval;
                let o = poll(&mut b, &cfg, i, &mut barriers[i], now, START_MS + t);
                take(engine.observe(&o), &mut result);
            }
        }
        take(engine.tick(START_MS + t), &mut result);
        t += STEP_MS;
    }
    take(engine.stop(START_MS + end), &mut result);
    result
}

#[test]
fn an_hour_of_the_demo_without_its_scripted_faults_has_no_down_and_no_ticket() {
    // The demo's own seed, and a few more (pumps start at other moments).
    for seed in [20_240_601, 1, 2, 3] {
        let r = run_demo(60, seed, false);
        assert_eq!(
            r.downs,
            [],
            "seed {seed}: Down intervals in normal operation"
        );
        assert_eq!(r.tickets, [], "seed {seed}: tickets in normal operation");
    }
}

#[test]
fn an_hour_of_the_demo_with_its_scripted_faults_has_exactly_those() {
    let r = run_demo(60, 20_240_601, true);
    let downs: BTreeMap<&str, (&str, i64)> = r
        .downs
        .iter()
        .map(|(d, reason, at)| (d.as_str(), (reason.as_str(), *at)))
        .collect();
    assert_eq!(r.downs.len(), 3, "{:?}", r.downs);
    // Pump 2 trips at 1 min (its fault bit counts at once).
    assert_eq!(downs.get("pump-2").map(|d| d.0), Some("rule:fault"));
    assert!((60_000..=61_000).contains(&downs["pump-2"].1), "{downs:?}");
    // The fire panel's fault at 90 s (its rule and a hard alarm).
    assert_eq!(
        downs.get("fire-panel-1").map(|d| d.0),
        Some("rule:panel_fault")
    );
    assert!(
        (90_000..=91_000).contains(&downs["fire-panel-1"].1),
        "{downs:?}"
    );
    // The leak sensor silent from 5 min: comms, from the first failed poll.
    assert_eq!(downs.get("leak-b1-2").map(|d| d.0), Some("comms"));
    assert!(
        (300_000..=305_000).contains(&downs["leak-b1-2"].1),
        "{downs:?}"
    );
    let mut tickets = r.tickets.clone();
    tickets.sort();
    assert_eq!(
        tickets,
        [
            ("fire-panel-1".to_owned(), "alarm:fault".to_owned()),
            ("leak-b1-2".to_owned(), "availability".to_owned()),
            ("pump-2".to_owned(), "availability".to_owned()),
        ],
        "{:?}",
        r.tickets
    );
}
