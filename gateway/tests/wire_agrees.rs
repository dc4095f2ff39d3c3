//! Every payload the gateway builds (`gateway/src/wire.rs`) is one the
//! consumers' typed and bounded parser (`bms-wire`) accepts, for every
//! device of the demo configuration: the producer and the consumer's
//! schema cannot drift apart unnoticed.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use gateway::wire;
use gateway_core::ledger::Crossing;
use gateway_core::model::{BadReason, PollClass, PollOutcome, Quality, Sample, Value};
use gateway_core::state::{DeviceState, HardAlarm, Transition};
use gateway_core::tickets::{
    HistoryEntry, Severity, Step, Ticket, TicketEvent, TicketEventKind, TicketState,
};

const NOW: i64 = 1_795_750_631_938;
const STATES: [DeviceState; 4] = [
    DeviceState::Up,
    DeviceState::Down,
    DeviceState::Maintenance,
    DeviceState::Unknown,
];

fn demo() -> gateway_core::config::Resolved {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/demo.toml");
    gateway::files::load_config(&path).unwrap()
}

fn topics() -> wire::Topics {
    wire::Topics::new("bms", "demo-site", "gw-1")
}

fn accepted(topic: &str, body: wire::Body) -> bms_wire::Message {
    let bytes = wire::with_seq(body, 42);
    let t = bms_wire::parse_topic("bms", topic).unwrap();
    bms_wire::parse(&t, &bytes)
        .unwrap_or_else(|e| panic!("{topic}: {e}\n{}", String::from_utf8_lossy(&bytes)))
}

#[test]
fn every_status_is_accepted() {
    let id = wire::Identity {
        site: "demo-site".into(),
        gateway: "gw-1".into(),
        site_name_zh: Some("示范售楼处".into()),
        site_name_en: Some("Demo sales centre".into()),
    };
    for online in [true, false] {
        accepted(&topics().status(), wire::status(&id, online, NOW - 5, NOW));
    }
}

#[test]
fn every_devices_telemetry_and_state_are_accepted() {
    let cfg = demo();
    assert!(!cfg.devices.is_empty());
    for (i, dev) in cfg.devices.iter().enumerate() {
        let values = [
            Some(Value::Float(3.21)),
            Some(Value::Bool(true)),
            Some(Value::Int(-7)),
            Some(Value::UInt(u64::MAX)),
            Some(Value::Text("运行 run".into())),
            None,
        ];
        let samples = (0..dev.points.len())
            .map(|p| Sample {
                point: p,
                value: values[p % values.len()].clone(),
                quality: match p % 4 {
                    0 => Quality::Good,
                    1 => Quality::Bad(BadReason::NotRead),
                    2 => Quality::Bad(BadReason::Exception { code: 2 }),
                    _ => Quality::Bad(BadReason::OutOfRange),
                },
            })
            .collect();
        let o = PollOutcome {
            device: i,
            ts_ms: NOW,
            class: PollClass::Full,
            samples,
            failure: None,
            requests: 1,
            failed_requests: 0,
            elapsed_us: 1,
        };
        accepted(&topics().telemetry(&dev.id), wire::telemetry(dev, &o, None));
        for (k, st) in STATES.iter().enumerate() {
            let v = wire::StateView {
                device: dev.id.clone(),
                class: dev.class.as_str(),
                name_zh: dev.name_zh.clone(),
                name_en: dev.name_en.clone(),
                location: dev.location.clone(),
                location_en: dev.location_en.clone(),
                labels: dev.labels.clone(),
                state: st.as_str(),
                since_ms: NOW - 1000,
                reason: [None, Some("comms".into()), Some("rule:overheat".into())]
                    .into_iter()
                    .nth(k % 3)
                    .flatten(),
                rolling: [None, Some(0.0), Some(0.845), Some(1.0)][k],
                rolling_window_s: 86_400,
                month: [Some(1.0), None, Some(0.0), Some(0.97)][k],
                month_up_ms: [Some(3_600_000), None, Some(0), Some(3_492_000)][k],
                month_down_ms: [Some(0), None, Some(60_000), Some(108_000)][k],
                threshold: dev.threshold_percent,
                alarms: if k % 2 == 1 {
                    vec![wire::ActiveAlarm {
                        point: "fire_alarm".into(),
                        since_ms: NOW - 500,
                    }]
                } else {
                    Vec::new()
                },
            };
            accepted(&topics().state(&dev.id), wire::state(&v, NOW));
        }
    }
}

#[test]
fn every_transition_crossing_and_alarm_is_accepted() {
    let t = topics();
    for from in STATES {
        for to in STATES {
            let tr = Transition {
                device: "pump-1".into(),
                from,
                to,
                reason: Some("gateway_down".into()),
                at_ms: NOW - 10,
            };
            accepted(&t.event("pump-1"), wire::transition(&tr, NOW));
        }
    }
    for c in [
        Crossing::Below {
            availability: 0.66,
            threshold: 98.0,
        },
        Crossing::Recovered {
            availability: 1.0,
            threshold: 98.0,
        },
    ] {
        accepted(&t.event("pump-2"), wire::threshold("pump-2", &c, NOW, NOW));
    }
    for active in [true, false] {
        let a = HardAlarm {
            device: "fire-panel-1".into(),
            point: "fire_alarm".into(),
            active,
            at_ms: NOW,
        };
        accepted(&t.alarm(), wire::alarm(&a, NOW));
    }
}

#[test]
fn every_ticket_event_is_accepted() {
    let step = Step {
        by: "张工".into(),
        at_ms: NOW,
        note: "换了密封圈\n明天复查".into(),
    };
    for (kind, state) in [
        (TicketEventKind::Opened, TicketState::Open),
        (TicketEventKind::Acknowledged, TicketState::Acknowledged),
        (TicketEventKind::Arrived, TicketState::Acknowledged),
        (TicketEventKind::Recovered, TicketState::Acknowledged),
        (TicketEventKind::Resolved, TicketState::Resolved),
        (TicketEventKind::Reopened, TicketState::Open),
        (TicketEventKind::Closed, TicketState::Closed),
    ] {
        let ev = TicketEvent {
            kind,
            at_ms: NOW,
            ticket: Ticket {
                id: 7,
                device: "fire-panel-1".into(),
                class: gateway_core::model::DeviceClass::FireAlarm,
                kind: "alarm:fault".into(),
                severity: Severity::Critical,
                state,
                summary: "故障 fault".into(),
                opened_ms: NOW - 100,
                deadline_ms: NOW + 7_200_000,
                acknowledged: Some(step.clone()),
                arrived: Some(step.clone()),
                recovered_ms: Some(NOW),
                resolved: Some(step.clone()),
                closed: None,
                reworks: 1,
                reopened_ms: Some(NOW - 50),
                history: vec![HistoryEntry {
                    kind: TicketEventKind::Opened,
                    at_ms: NOW - 100,
                    by: "auto".into(),
                    note: String::new(),
                    deadline_ms: Some(NOW + 7_200_000),
                }],
                facts: gateway_core::tickets::TicketFacts {
                    reason: Some("rule:panel_fault".into()),
                    availability_permille: Some(962),
                    target_permille: Some(990),
                    device_zh: Some("1号消防主机".into()),
                    device_en: Some("Fire alarm panel 1".into()),
                    location_zh: Some("B1 消防控制室".into()),
                    location_en: Some("B1 fire control room".into()),
                    rule_zh: Some("主机故障".into()),
                    rule_en: Some("Panel fault".into()),
                    point_zh: Some("主机故障".into()),
                    point_en: Some("Panel fault".into()),
                },
            },
        };
        accepted(&topics().ticket(7), wire::ticket(&ev, NOW));
    }
}
