//! The south side against the simulated building, over real sockets and a
//! real pseudo-terminal: round trips on every transport, every fault kind,
//! degradation and recovery, and the exception-2 split.
//!
//! Timing: buses use a 300 ms timeout, devices a 200 ms poll interval and a
//! silent device is probed every 500 ms, so each test runs for one to a few
//! seconds of real time.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use gateway::south::{self, Data, ReadError, Transport};
use gateway_core::HumanDuration;
use gateway_core::config::{BusKind, FaultConfig, FaultName, Resolved, load::load};
use gateway_core::model::{Area, FailureKind, PollClass, PollOutcome, Value};
use gateway_sim::{SimHandle, SimOptions};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const CONFIG: &str = r#"
site = "test"
gateway = "gw-1"

[[bus]]
id = "tcp"
kind = "tcp"
address = "127.0.0.1:9"
timeout = "300ms"

[[bus]]
id = "rtu"
kind = "rtu"
port = "/dev/null"
baud = 19200
parity = "even"
timeout = "300ms"

[[bus]]
id = "rtutcp"
kind = "rtu_over_tcp"
address = "127.0.0.1:9"
timeout = "300ms"

[[device]]
id = "pump-1"
name_zh = "泵1"
class = "pump"
bus = "tcp"
unit = 1
profile = "pump-vfd"
poll_interval = "200ms"
alarm_interval = "100ms"

[[device]]
id = "pump-2"
name_zh = "泵2"
class = "pump"
bus = "tcp"
unit = 2
profile = "pump-vfd"
poll_interval = "200ms"
alarm_interval = "100ms"

[[device]]
id = "press-1"
name_zh = "压力1"
class = "fire_water"
bus = "rtu"
unit = 1
profile = "pressure-transmitter"
poll_interval = "200ms"
alarm_interval = "100ms"

[[device]]
id = "press-2"
name_zh = "压力2"
class = "fire_water"
bus = "rtu"
unit = 2
profile = "pressure-transmitter"
poll_interval = "200ms"
alarm_interval = "100ms"

[[device]]
id = "leak-1"
name_zh = "漏水1"
class = "plumbing"
bus = "rtutcp"
unit = 1
profile = "leak-sensor"
poll_interval = "200ms"
alarm_interval = "100ms"

[[device]]
id = "pump-3"
name_zh = "泵3"
class = "pump"
bus = "rtutcp"
unit = 2
profile = "pump-vfd"
poll_interval = "200ms"
alarm_interval = "100ms"

[[device]]
id = "holey"
name_zh = "有洞"
class = "other"
bus = "tcp"
unit = 3
profile = "test-holey"
poll_interval = "200ms"
alarm_interval = "100ms"

# Probes of a silent device every 500 ms, so that recoveries show within
# these tests' few seconds.
[health]
recovery_resolution = "500ms"

[simulator]
wire_time = false

[simulator.device.holey]
strict_holes = true
"#;

/// Two registers with a hole between them, within the default max gap of 8:
/// the planner joins them, a strict device refuses the join.
const HOLEY_PROFILE: &str = r#"
description = "test device with a hole in its map"

[[point]]
name = "a"
area = "holding"
address = 0
type = "u16"

[[point]]
name = "b"
area = "holding"
address = 4
type = "u16"
"#;

fn profiles() -> BTreeMap<String, (String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/profiles");
    let mut map = BTreeMap::new();
    for name in ["pump-vfd", "pressure-transmitter", "leak-sensor"] {
        let file = dir.join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&file).expect("shipped profile");
        map.insert(name.to_owned(), (file.display().to_string(), text));
    }
    map.insert(
        "test-holey".to_owned(),
        ("test-holey.toml".to_owned(), HOLEY_PROFILE.to_owned()),
    );
    map
}

/// The simulator, and the configuration pointed at where it really listens.
struct Rig {
    sim: SimHandle,
    resolved: Resolved,
}

impl Rig {
    async fn start() -> Rig {
        Rig::start_with(CONFIG).await
    }

    async fn start_with(config: &str) -> Rig {
        let mut resolved = load("test.toml", config, &profiles(), &|_| None).expect("valid config");
        let sim = gateway_sim::start(&resolved, SimOptions::loopback())
            .await
            .expect("simulator starts");
        for bus in &mut resolved.buses {
            bus.target = match bus.kind {
                BusKind::Tcp | BusKind::RtuOverTcp => {
                    sim.tcp_addr(&bus.id).expect("tcp bus served").to_string()
                }
                BusKind::Rtu => sim.pty_path(&bus.id).expect("pty").display().to_string(),
            };
        }
        Rig { sim, resolved }
    }

    fn device(&self, id: &str) -> usize {
        self.resolved
            .devices
            .iter()
            .position(|d| d.id == id)
            .expect("device")
    }

    fn bus(&self, id: &str) -> &gateway_core::config::ResolvedBus {
        self.resolved
            .buses
            .iter()
            .find(|b| b.id == id)
            .expect("bus")
    }

    fn inject(&self, device: &str, fault: FaultName, f: impl FnOnce(&mut FaultConfig)) {
        let mut config = FaultConfig {
            device: device.to_owned(),
            fault,
            start: None,
            duration: None,
            code: None,
            delay: None,
            point: None,
            value: None,
        };
        f(&mut config);
        self.sim.inject(&config).expect("fault accepted");
    }

    /// Runs every bus for `span` of real time and returns the outcomes.
    async fn poll_for(&self, span: Duration) -> Vec<PollOutcome> {
        let (tx, mut rx) = mpsc::channel(1024);
        let shutdown = CancellationToken::new();
        let handles = south::spawn_buses(&self.resolved, tx, shutdown.clone());
        let deadline = Instant::now() + span;
        let mut out = Vec::new();
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                o = rx.recv() => match o { Some(o) => out.push(o), None => break },
            }
        }
        shutdown.cancel();
        for h in handles {
            h.task.await.expect("bus task ends cleanly");
        }
        out
    }
}

fn of(out: &[PollOutcome], device: usize) -> Vec<&PollOutcome> {
    out.iter().filter(|o| o.device == device).collect()
}

fn value_of<'a>(rig: &Rig, o: &'a PollOutcome, device: &str, point: &str) -> Option<&'a Value> {
    let d = &rig.resolved.devices[rig.device(device)];
    let index = d
        .points
        .iter()
        .position(|p| p.name == point)
        .expect("point");
    o.samples
        .iter()
        .find(|s| s.point == index)
        .and_then(|s| s.value.as_ref())
}

fn assert_all_good(outcomes: &[&PollOutcome], points: usize, what: &str) {
    assert!(!outcomes.is_empty(), "{what}: no outcome");
    for o in outcomes {
        assert_eq!(o.failure, None, "{what}: {o:?}");
        if o.class == PollClass::Full {
            assert_eq!(o.samples.len(), points, "{what}");
        }
        assert!(
            o.samples.iter().all(|s| s.quality.is_good()),
            "{what}: {o:?}"
        );
    }
}

#[tokio::test]
async fn round_trips_over_tcp_rtu_on_a_pty_and_rtu_over_tcp_decode_every_point() {
    let rig = Rig::start().await;
    rig.sim
        .set_point("pump-1", "fault_code", Value::UInt(7), true)
        .expect("set");
    rig.sim
        .set_point("press-2", "pressure", Value::Float(0.75), true)
        .expect("set");
    rig.sim
        .set_point("leak-1", "leak", Value::Bool(true), true)
        .expect("set");
    let out = rig.poll_for(Duration::from_millis(1200)).await;
    for (id, n) in [
        ("pump-1", 11),
        ("pump-2", 11),
        ("press-1", 2),
        ("press-2", 2),
        ("leak-1", 3),
        ("pump-3", 11),
    ] {
        let polls = of(&out, rig.device(id));
        assert_all_good(&polls, n, id);
        assert!(polls.len() >= 5, "{id}: {} polls", polls.len());
        let has_alarm = rig.resolved.devices[rig.device(id)]
            .points
            .iter()
            .any(|p| p.alarm);
        let alarm_polls = polls.iter().any(|o| o.class == PollClass::Alarm);
        assert_eq!(alarm_polls, has_alarm, "{id}: alarm polls");
    }
    let full = |id| {
        out.iter()
            .find(|o| o.device == rig.device(id) && o.class == PollClass::Full)
            .expect("a full poll")
    };
    assert_eq!(
        value_of(&rig, full("pump-1"), "pump-1", "fault_code"),
        Some(&Value::UInt(7))
    );
    assert_eq!(
        value_of(&rig, full("press-2"), "press-2", "pressure"),
        Some(&Value::Float(0.75))
    );
    assert_eq!(
        value_of(&rig, full("leak-1"), "leak-1", "leak"),
        Some(&Value::Bool(true))
    );
    rig.sim.shutdown().await;
}

/// Injects `fault` on `victim` from the start and polls for 2.5 s; checks the
/// victim's failures are all `expected` and its neighbour stays good.
async fn fault_leaves_the_neighbour_polling(
    victim: &str,
    neighbour: &str,
    fault: FaultName,
    f: impl FnOnce(&mut FaultConfig),
    expected: &[FailureKind],
) {
    let rig = Rig::start().await;
    rig.inject(victim, fault, f);
    let out = rig.poll_for(Duration::from_millis(2500)).await;
    let v = of(&out, rig.device(victim));
    assert!(!v.is_empty(), "{victim}: no outcome");
    for o in &v {
        let kind = o.failure.expect("victim fails");
        assert!(
            expected.contains(&kind),
            "{victim} under {fault:?}: got {kind:?}, want {expected:?}"
        );
        assert!(o.samples.iter().all(|s| !s.quality.is_good()));
    }
    let n = of(&out, rig.device(neighbour));
    let good = n.iter().filter(|o| o.failure.is_none()).count();
    assert!(
        good >= 3,
        "{neighbour} under {fault:?} on {victim}: {good} good of {}: {n:?}",
        n.len()
    );
    assert!(
        n.last().is_some_and(|o| o.failure.is_none()),
        "{neighbour} ends failing"
    );
    rig.sim.shutdown().await;
}

#[tokio::test]
async fn no_response_times_out_on_every_transport_and_the_line_keeps_polling() {
    let none = |_: &mut FaultConfig| {};
    let t = [FailureKind::Timeout];
    fault_leaves_the_neighbour_polling("pump-1", "pump-2", FaultName::NoResponse, none, &t).await;
    fault_leaves_the_neighbour_polling("press-1", "press-2", FaultName::NoResponse, none, &t).await;
    fault_leaves_the_neighbour_polling("leak-1", "pump-3", FaultName::NoResponse, none, &t).await;
}

#[tokio::test]
async fn an_exception_answer_is_typed_with_its_code() {
    let code4 = |c: &mut FaultConfig| c.code = Some(4);
    let e = [FailureKind::Exception { code: 4 }];
    fault_leaves_the_neighbour_polling("pump-1", "pump-2", FaultName::Exception, code4, &e).await;
    fault_leaves_the_neighbour_polling("press-1", "press-2", FaultName::Exception, code4, &e).await;
    fault_leaves_the_neighbour_polling("leak-1", "pump-3", FaultName::Exception, code4, &e).await;
}

/// When a poll that `o` ended started, in Unix ms.
fn started_ms(o: &PollOutcome) -> i64 {
    o.ts_ms - i64::try_from(o.elapsed_us / 1000).unwrap_or(i64::MAX)
}

/// `victim` answers 600 ms late (the timeout is 300 ms) for 1.5 s, then on
/// time (so that its late answers stop). Its failures are all of the
/// `expected` kinds. Its
/// late answers may disturb the line, but not for long: of the neighbour's
/// polls that start after the victim's last late answer arrived, at most
/// the first fails (stale bytes of that answer may still sit in the input
/// buffer; the failure drops the connection and flushes them), and at least
/// three follow, all good. The assertion is on the polls after the last
/// disturbance, so it does not depend on where a real-time run happens to
/// end.
async fn a_slow_victim_disturbs_the_neighbour_only_briefly(
    victim: &str,
    neighbour: &str,
    expected: &[FailureKind],
) {
    const DELAY_MS: i64 = 600;
    let rig = Rig::start().await;
    rig.inject(victim, FaultName::Slow, |c| {
        c.delay = Some(HumanDuration::from_millis(600));
        c.duration = Some(HumanDuration::from_millis(1500));
    });
    // Its last late answer comes at most ~2.2 s in; the neighbour is polled
    // every 100 ms (alarm) after that.
    let out = rig.poll_for(Duration::from_millis(6000)).await;
    let v = of(&out, rig.device(victim));
    let failed: Vec<&&PollOutcome> = v.iter().filter(|o| o.failure.is_some()).collect();
    assert!(!failed.is_empty(), "{victim}: never failed: {v:?}");
    for o in &failed {
        let kind = o.failure.expect("failed");
        assert!(
            expected.contains(&kind),
            "{victim}: got {kind:?}, want {expected:?}"
        );
        assert!(o.samples.iter().all(|s| !s.quality.is_good()));
    }
    let last_late = failed
        .iter()
        .map(|o| started_ms(o) + DELAY_MS)
        .max()
        .expect("a failure");
    let n = of(&out, rig.device(neighbour));
    let good = n.iter().filter(|o| o.failure.is_none()).count();
    assert!(good >= 3, "{neighbour}: {good} good of {}", n.len());
    let after: Vec<&&PollOutcome> = n.iter().filter(|o| started_ms(o) > last_late).collect();
    let clean = after.iter().skip(1).filter(|o| o.failure.is_none()).count();
    assert!(
        after.len() >= 4 && clean == after.len() - 1,
        "{neighbour} after {victim}'s last late answer: {after:?}"
    );
    rig.sim.shutdown().await;
}

#[tokio::test]
async fn an_answer_slower_than_the_timeout_is_a_timeout() {
    let t = [FailureKind::Timeout];
    a_slow_victim_disturbs_the_neighbour_only_briefly("pump-1", "pump-2", &t).await;
    a_slow_victim_disturbs_the_neighbour_only_briefly("leak-1", "pump-3", &t).await;
}

#[tokio::test]
async fn a_late_answer_on_a_serial_line_does_not_poison_the_neighbour_for_long() {
    // On a half-duplex line the late answer of a slow device arrives while
    // the master already talks to the next one: that transaction may fail
    // (framing), but the line recovers and the neighbour keeps being read.
    let t = [FailureKind::Timeout, FailureKind::Framing];
    a_slow_victim_disturbs_the_neighbour_only_briefly("press-1", "press-2", &t).await;
}

#[tokio::test]
async fn corrupt_crc_and_garbage_are_framing_errors() {
    let none = |_: &mut FaultConfig| {};
    let f = [FailureKind::Framing];
    fault_leaves_the_neighbour_polling("press-1", "press-2", FaultName::CorruptCrc, none, &f).await;
    fault_leaves_the_neighbour_polling("leak-1", "pump-3", FaultName::CorruptCrc, none, &f).await;
    fault_leaves_the_neighbour_polling("pump-1", "pump-2", FaultName::Garbage, none, &f).await;
    fault_leaves_the_neighbour_polling("press-1", "press-2", FaultName::Garbage, none, &f).await;
}

#[tokio::test]
async fn a_connection_reset_is_a_transport_failure_and_the_link_reconnects() {
    let none = |_: &mut FaultConfig| {};
    let t = [FailureKind::Transport];
    fault_leaves_the_neighbour_polling("pump-1", "pump-2", FaultName::ConnectionReset, none, &t)
        .await;
    fault_leaves_the_neighbour_polling("leak-1", "pump-3", FaultName::ConnectionReset, none, &t)
        .await;
}

#[tokio::test]
async fn an_exception_keeps_the_connection_and_a_reset_reconnects() {
    let rig = Rig::start().await;
    let mut t = south::connect(rig.bus("tcp")).await.expect("connects");
    assert!(matches!(t.read(1, Area::Holding, 0, 4).await, Ok(Data::Words(w)) if w.len() == 4));
    rig.inject("pump-1", FaultName::Exception, |c| {
        c.code = Some(6);
        c.duration = Some(HumanDuration::from_millis(300));
    });
    assert_eq!(
        t.read(1, Area::Holding, 0, 4).await,
        Err(ReadError::Failed(FailureKind::Exception { code: 6 }))
    );
    assert!(t.read(2, Area::Holding, 0, 4).await.is_ok());
    assert_eq!(t.connects(), 1, "an exception must not cost the connection");

    rig.inject("pump-1", FaultName::ConnectionReset, |c| {
        c.start = Some(HumanDuration::from_millis(350));
        c.duration = Some(HumanDuration::from_millis(100));
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        t.read(1, Area::Holding, 0, 4).await,
        Err(ReadError::Failed(FailureKind::Transport))
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(t.read(1, Area::Holding, 0, 4).await.is_ok());
    assert_eq!(t.connects(), 2);
    rig.sim.shutdown().await;
}

#[tokio::test]
async fn a_degraded_device_recovers_by_itself_when_the_fault_ends() {
    let rig = Rig::start().await;
    // Silent for 4 s: its polls are budgeted after the first failure (once
    // per 1.5 s on this busy line), so that it is degraded after 3.
    rig.inject("leak-1", FaultName::NoResponse, |c| {
        c.duration = Some(HumanDuration::from_millis(4000));
    });
    let out = rig.poll_for(Duration::from_millis(8000)).await;
    let v = of(&out, rig.device("leak-1"));
    let failed = v.iter().take_while(|o| o.failure.is_some()).count();
    assert!(failed >= 3, "degradation needs 3 failures, saw {failed}");
    // While failing it is polled far less than every 200 ms.
    assert!(failed <= 9, "{failed} failed polls in 4 s: not degraded");
    let rest = &v[failed..];
    assert!(rest.len() >= 5, "not recovered: {rest:?}");
    assert!(rest.iter().all(|o| o.failure.is_none()));
    assert!(
        rest.iter().any(|o| o.class == PollClass::Alarm),
        "alarm polls resume"
    );
    rig.sim.shutdown().await;
}

#[tokio::test]
async fn exception_two_on_a_joined_range_splits_it_and_the_points_are_read() {
    let rig = Rig::start().await;
    let out = rig.poll_for(Duration::from_millis(700)).await;
    let v = of(&out, rig.device("holey"));
    let first = v.first().expect("polled");
    assert_eq!(first.failure, Some(FailureKind::Exception { code: 2 }));
    assert_eq!((first.requests, first.failed_requests), (3, 1));
    assert!(
        first.samples.iter().all(|s| s.quality.is_good()),
        "{first:?}"
    );
    for o in &v[1..] {
        assert_eq!(
            (o.requests, o.failed_requests, o.failure),
            (2, 0, None),
            "{o:?}"
        );
    }
    rig.sim.shutdown().await;
}

#[tokio::test]
async fn a_strict_device_refuses_a_read_inside_its_hole_with_exception_two() {
    let rig = Rig::start().await;
    let mut t: Transport = south::connect(rig.bus("tcp")).await.expect("connects");
    // Register 2 lies in the strict device's hole.
    assert_eq!(
        t.read(3, Area::Holding, 2, 1).await,
        Err(ReadError::Failed(FailureKind::Exception { code: 2 }))
    );
    rig.sim.shutdown().await;
}

/// The whole loop in-process: buses → engine → the bounded event channel.
/// A device that stops answering goes Down (comms) and its Down transition
/// reaches the channel after it is in the database.
#[tokio::test]
async fn the_run_loop_hands_stored_core_events_to_the_channel() {
    use gateway::engine::{CoreEvent, Engine};
    use gateway::run::{Core, RunOptions, run, unix_now_ms};
    use gateway_core::state::DeviceState;

    let rig = Rig::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let opened = Engine::open(&rig.resolved, dir.path(), unix_now_ms()).expect("engine");
    let (tx, mut rx) = mpsc::channel(4);
    let core = Core {
        events: Some(tx),
        ..Core::new(opened)
    };
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let resolved = rig.resolved.clone();
    let looped = tokio::spawn(async move {
        run(&resolved, RunOptions::default(), Some(core), |_| true, stop).await
    });

    let mut up = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while up.len() < rig.resolved.devices.len() {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("every device Up within 10 s")
            .expect("channel open");
        if let CoreEvent::Transition(t) = ev
            && t.to == DeviceState::Up
        {
            up.insert(t.device);
        }
    }
    rig.inject("pump-2", FaultName::NoResponse, |_| {});
    let down = loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("pump-2 Down within 10 s")
            .expect("channel open");
        if let CoreEvent::Transition(t) = ev
            && t.device == "pump-2"
        {
            break t;
        }
    };
    assert_eq!(
        (down.from, down.to, down.reason.as_deref()),
        (DeviceState::Up, DeviceState::Down, Some("comms"))
    );
    let store = gateway::store::Store::open_existing(dir.path()).expect("store");
    let open: Vec<_> = store.open_intervals().expect("read");
    assert!(
        open.iter().any(|(d, s, r, _)| d == "pump-2"
            && *s == DeviceState::Down
            && r.as_deref() == Some("comms")),
        "{open:?}"
    );

    shutdown.cancel();
    looped.await.expect("loop ends");
    // The sender is dropped when the loop ends: the stream finishes.
    while rx.recv().await.is_some() {}
    rig.sim.shutdown().await;
}

/// A line full of hostile units from the start: on the RTU line six of eight
/// sensors are silent, on the TCP connection two units reset it whenever
/// they are asked and four are silent. The healthy units are listed among
/// them.
fn hostile_config() -> String {
    let mut text = String::from(
        r#"
site = "test"
gateway = "gw-1"

[[bus]]
id = "rtu"
kind = "rtu"
port = "/dev/null"
baud = 19200
parity = "even"
timeout = "500ms"

[[bus]]
id = "tcp"
kind = "tcp"
address = "127.0.0.1:9"
timeout = "500ms"
"#,
    );
    let rtu = [
        "ok-r1", "mute-r1", "mute-r2", "mute-r3", "ok-r2", "mute-r4", "mute-r5", "mute-r6",
    ];
    for (i, id) in rtu.iter().enumerate() {
        text.push_str(&format!(
            "\n[[device]]\nid = \"{id}\"\nname_zh = \"{id}\"\nclass = \"fire_water\"\nbus = \"rtu\"\nunit = {}\nprofile = \"pressure-transmitter\"\npoll_interval = \"1s\"\n",
            i + 1
        ));
    }
    let tcp = [
        "ok-t1", "reset-t1", "reset-t2", "mute-t1", "ok-t2", "mute-t2", "mute-t3", "mute-t4",
    ];
    for (i, id) in tcp.iter().enumerate() {
        text.push_str(&format!(
            "\n[[device]]\nid = \"{id}\"\nname_zh = \"{id}\"\nclass = \"pump\"\nbus = \"tcp\"\nunit = {}\nprofile = \"pump-vfd\"\npoll_interval = \"1s\"\nalarm_interval = \"1s\"\n",
            i + 1
        ));
    }
    text.push_str("\n[simulator]\nwire_time = true\n");
    text
}

/// Healthy units keep at least 80 % of their polls from the very start,
/// whatever the hostile units on their line do: the silent units' first
/// polls are paid once, their further polls go in the line's idle time or
/// in the failing share (20 %), and a unit that resets the TCP connection
/// does not put the connection into backoff for everybody.
#[tokio::test]
async fn a_hostile_line_at_start_leaves_healthy_units_most_of_their_polls() {
    let rig = Rig::start_with(&hostile_config()).await;
    for id in [
        "mute-r1", "mute-r2", "mute-r3", "mute-r4", "mute-r5", "mute-r6",
    ] {
        rig.inject(id, FaultName::NoResponse, |_| {});
    }
    for id in ["mute-t1", "mute-t2", "mute-t3", "mute-t4"] {
        rig.inject(id, FaultName::NoResponse, |_| {});
    }
    for id in ["reset-t1", "reset-t2"] {
        rig.inject(id, FaultName::ConnectionReset, |_| {});
    }
    let started = Instant::now();
    let (tx, mut rx) = mpsc::channel(4096);
    let shutdown = CancellationToken::new();
    let handles = south::spawn_buses(&rig.resolved, tx, shutdown.clone());
    let window = Duration::from_secs(20);
    let mut out: Vec<(Duration, PollOutcome)> = Vec::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(started + window) => break,
            o = rx.recv() => match o {
                Some(o) => out.push((started.elapsed(), o)),
                None => break,
            },
        }
    }
    shutdown.cancel();
    for h in handles {
        h.task.await.expect("bus task ends cleanly");
    }
    // A 1 s poll interval: 20 full polls are due in the first 20 s (at 0,
    // 1, …, 19 s), 10 in each 10 s window.
    let mut figures = Vec::new();
    let mut short = Vec::new();
    for id in ["ok-r1", "ok-r2", "ok-t1", "ok-t2"] {
        let device = rig.device(id);
        // Polls refused because the link waited out a reconnect backoff.
        let held_back = out
            .iter()
            .filter(|(_, o)| o.device == device && o.requests == 0)
            .count();
        let good: Vec<Duration> = out
            .iter()
            .filter(|(_, o)| o.device == device && o.class == PollClass::Full)
            .filter(|(_, o)| o.failure.is_none())
            .map(|(t, _)| *t)
            .collect();
        let first = good
            .iter()
            .filter(|t| **t < Duration::from_secs(10))
            .count();
        let second = good.len() - first;
        figures.push(format!(
            "{id}: {first}/10 + {second}/10 = {}/20, {held_back} held back by a link backoff",
            good.len()
        ));
        if good.len() < 16 || held_back > 0 {
            short.push(id);
        }
    }
    eprintln!("good full polls of healthy units in the first 20 s: {figures:?}");
    assert!(short.is_empty(), "under 80 %: {short:?}; {figures:?}");
    rig.sim.shutdown().await;
}
