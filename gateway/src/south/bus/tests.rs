//! Scheduler tests on a paused clock with scripted links: no sockets, so
//! tokio's auto-advance makes minutes of polling run in milliseconds.

use std::collections::BTreeMap;
use std::sync::Mutex;

use gateway_core::config::{BusKind, Parity};
use gateway_core::model::{Area, DataType, DeviceClass, Quality, Value, WordOrder};

use super::*;
use crate::south::link::WriteData;

type Behaviour = Box<dyn FnMut(u8, Area, u16, u16) -> (Duration, Result<Data, ReadError>) + Send>;

/// A link whose answers come from a closure; records every call.
struct Scripted {
    calls: Arc<Mutex<Vec<Call>>>,
    behaviour: Behaviour,
}

#[derive(Debug, Clone, Copy)]
struct Call {
    at: Instant,
    unit: u8,
    start: u16,
    count: u16,
}

impl Link for Scripted {
    fn read(
        &mut self,
        unit: u8,
        area: Area,
        start: u16,
        count: u16,
    ) -> impl Future<Output = Result<Data, ReadError>> + Send {
        self.calls.lock().unwrap().push(Call {
            at: Instant::now(),
            unit,
            start,
            count,
        });
        let (latency, answer) = (self.behaviour)(unit, area, start, count);
        async move {
            tokio::time::sleep(latency).await;
            answer
        }
    }

    /// These tests only poll; writes are tested in `bus/write/tests.rs`.
    fn write(
        &mut self,
        _unit: u8,
        _start: u16,
        _data: &WriteData,
    ) -> impl Future<Output = Result<(), ReadError>> + Send {
        std::future::ready(Err(ReadError::Failed(FailureKind::Exception { code: 1 })))
    }
}

fn point(name: &str, address: u16, alarm: bool) -> Point {
    Point {
        name: name.to_owned(),
        unit: String::new(),
        area: Area::Holding,
        address,
        data_type: DataType::U16,
        order: WordOrder::Abcd,
        scale: 1.0,
        offset: 0.0,
        min: None,
        max: None,
        alarm,
        critical: false,
        deadband: None,
        heartbeat: None,
        write: None,
    }
}

fn device(id: &str, unit: u8, points: Vec<Point>, poll_ms: u64, alarm_ms: u64) -> ResolvedDevice {
    ResolvedDevice {
        id: id.to_owned(),
        name_zh: id.to_owned(),
        name_en: id.to_owned(),
        class: DeviceClass::Pump,
        location: String::new(),
        location_en: String::new(),
        labels: Default::default(),
        bus: 0,
        unit,
        profile: "test".to_owned(),
        poll_interval: Duration::from_millis(poll_ms),
        alarm_interval: Duration::from_millis(alarm_ms),
        max_gap: 8,
        max_registers: 125,
        max_bits: 2000,
        points: std::sync::Arc::new(points),
        health: BTreeMap::new(),
        threshold_percent: 98.0,
        writable: Default::default(),
    }
}

fn bus(inter_frame_ms: u64) -> ResolvedBus {
    ResolvedBus {
        id: "line-1".to_owned(),
        kind: BusKind::Rtu,
        target: "/dev/null".to_owned(),
        baud: 9600,
        parity: Parity::None,
        stop_bits: 1,
        data_bits: 8,
        timeout: Duration::from_secs(1),
        inter_frame_delay: Duration::from_millis(inter_frame_ms),
        max_registers: 125,
        max_bits: 2000,
        max_gap: 8,
    }
}

/// Registers hold their own address.
fn echo(count: u16, start: u16) -> Data {
    Data::Words((start..start + count).collect())
}

struct Harness {
    calls: Arc<Mutex<Vec<Call>>>,
    rx: mpsc::Receiver<PollOutcome>,
    counters: Arc<BusCounters>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

fn start(
    devices: &[ResolvedDevice],
    inter_frame_ms: u64,
    capacity: usize,
    behaviour: Behaviour,
) -> Harness {
    start_with(
        devices,
        BusOptions::default(),
        inter_frame_ms,
        capacity,
        behaviour,
    )
}

fn start_with(
    devices: &[ResolvedDevice],
    options: BusOptions,
    inter_frame_ms: u64,
    capacity: usize,
    behaviour: Behaviour,
) -> Harness {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let link = Scripted {
        calls: Arc::clone(&calls),
        behaviour,
    };
    let (tx, rx) = mpsc::channel(capacity);
    let shutdown = CancellationToken::new();
    let counters = Arc::new(BusCounters::default());
    let refs: Vec<(usize, &ResolvedDevice)> = devices.iter().enumerate().collect();
    let task = BusTask::new(
        link,
        &bus(inter_frame_ms),
        &refs,
        options,
        tx,
        shutdown.clone(),
        Arc::clone(&counters),
    );
    Harness {
        calls,
        rx,
        counters,
        shutdown,
        task: tokio::spawn(task.run()),
    }
}

impl Harness {
    /// Collects outcomes until `until` (paused clock), then stops the task.
    async fn collect_for(
        mut self,
        span: Duration,
    ) -> (Vec<(Instant, PollOutcome)>, BusStats, Vec<Call>) {
        let end = Instant::now() + span;
        let mut out = Vec::new();
        loop {
            tokio::select! {
                () = sleep_until(end) => break,
                o = self.rx.recv() => match o {
                    Some(o) => out.push((Instant::now(), o)),
                    None => break,
                },
            }
        }
        self.shutdown.cancel();
        self.task.await.unwrap();
        let calls = self.calls.lock().unwrap().clone();
        (out, self.counters.snapshot(), calls)
    }
}

fn ok(_unit: u8, _area: Area, start: u16, count: u16) -> (Duration, Result<Data, ReadError>) {
    (Duration::from_millis(10), Ok(echo(count, start)))
}

#[tokio::test(start_paused = true)]
async fn full_polls_follow_the_poll_interval_and_alarm_polls_the_fast_one() {
    let d = device(
        "pump-1",
        1,
        vec![point("pressure", 0, false), point("fault", 40, true)],
        1000,
        250,
    );
    let h = start(&[d], 0, 64, Box::new(ok));
    let (out, stats, _) = h.collect_for(Duration::from_millis(2100)).await;
    let full = out
        .iter()
        .filter(|(_, o)| o.class == PollClass::Full)
        .count();
    let alarm: Vec<&PollOutcome> = out
        .iter()
        .filter(|(_, o)| o.class == PollClass::Alarm)
        .map(|(_, o)| o)
        .collect();
    // Full at 0, 1, 2 s; alarm at .25 .5 .75 1.25 1.5 1.75 (the ticks at 1 s
    // and 2 s are served by the full poll).
    assert_eq!(full, 3);
    assert_eq!(alarm.len(), 6);
    for a in alarm {
        assert_eq!(a.samples.len(), 1);
        assert_eq!(a.samples[0].point, 1);
        assert_eq!(a.samples[0].value, Some(Value::UInt(40)));
        assert_eq!(a.requests, 1);
    }
    assert_eq!(stats.late_polls, 0);
    assert_eq!(stats.polls, 9);
}

#[tokio::test(start_paused = true)]
async fn samples_are_decoded_from_the_planned_requests() {
    // Two clusters too far apart to be coalesced (gap 8): two requests.
    let d = device(
        "meter-1",
        3,
        vec![
            point("a", 0, false),
            point("b", 2, false),
            point("c", 100, false),
        ],
        1000,
        500,
    );
    let h = start(&[d], 0, 8, Box::new(ok));
    let (out, _, calls) = h.collect_for(Duration::from_millis(500)).await;
    let (_, first) = &out[0];
    assert_eq!(first.failure, None);
    assert_eq!(first.requests, 2);
    let values: Vec<_> = first
        .samples
        .iter()
        .map(|s| (s.point, s.value.clone(), s.quality))
        .collect();
    assert_eq!(
        values,
        vec![
            (0, Some(Value::UInt(0)), Quality::Good),
            (1, Some(Value::UInt(2)), Quality::Good),
            (2, Some(Value::UInt(100)), Quality::Good),
        ]
    );
    assert_eq!((calls[0].unit, calls[0].start, calls[0].count), (3, 0, 3));
    assert_eq!((calls[1].start, calls[1].count), (100, 1));
}

#[tokio::test(start_paused = true)]
async fn the_inter_frame_delay_separates_every_transaction() {
    let devices: Vec<_> = (1..=3)
        .map(|u| {
            device(
                &format!("d{u}"),
                u,
                vec![point("x", 0, false), point("y", 50, false)],
                1000,
                500,
            )
        })
        .collect();
    let h = start(&devices, 20, 64, Box::new(ok));
    let (_, _, calls) = h.collect_for(Duration::from_millis(3500)).await;
    assert!(calls.len() >= 18, "{}", calls.len());
    for pair in calls.windows(2) {
        // 10 ms of answer plus at least 20 ms of silence.
        assert!(pair[1].at.duration_since(pair[0].at) >= Duration::from_millis(30));
    }
}

#[tokio::test(start_paused = true)]
async fn a_dead_device_is_probed_every_recovery_resolution_and_its_neighbours_keep_their_rate() {
    let devices = vec![
        device("dead", 1, vec![point("x", 0, false)], 1000, 500),
        device("alive", 2, vec![point("x", 0, false)], 1000, 500),
    ];
    let behaviour: Behaviour = Box::new(|unit, _, start, count| {
        if unit == 1 {
            (
                Duration::from_secs(1),
                Err(ReadError::Failed(FailureKind::Timeout)),
            )
        } else {
            (Duration::from_millis(10), Ok(echo(count, start)))
        }
    });
    let h = start(&devices, 0, 256, behaviour);
    let (out, stats, _) = h.collect_for(Duration::from_secs(120)).await;
    let dead: Vec<_> = out.iter().filter(|(_, o)| o.device == 0).collect();
    let alive: Vec<_> = out.iter().filter(|(_, o)| o.device == 1).collect();
    for (_, o) in &dead {
        assert_eq!(o.failure, Some(FailureKind::Timeout));
        assert!(
            o.samples
                .iter()
                .all(|s| s.quality == Quality::Bad(BadReason::NotRead))
        );
    }
    // Probed every 5 s (the default recovery resolution), not backing off:
    // about 24 probes in 120 s, each costing the line one timeout.
    assert!(
        (22..=28).contains(&dead.len()),
        "dead device polled {} times",
        dead.len()
    );
    assert!(
        alive.len() >= 115,
        "alive device polled {} times",
        alive.len()
    );
    assert!(alive.iter().all(|(_, o)| o.failure.is_none()));
    assert_eq!(stats.degraded_devices, 1);
    // Only full polls while degraded, every 5 s (start to start: the
    // outcome comes one timeout after the start).
    let times: Vec<Instant> = dead.iter().map(|(t, _)| *t).collect();
    let gaps: Vec<Duration> = times[3..]
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .collect();
    assert!(
        gaps.iter()
            .all(|g| *g >= Duration::from_millis(4990) && *g <= Duration::from_millis(5100)),
        "{gaps:?}"
    );
    assert!(dead.iter().all(|(_, o)| o.class == PollClass::Full));
    assert!(
        (4900..=5100).contains(&stats.probe_gap_ms),
        "{}",
        stats.probe_gap_ms
    );
    // Only its second and third polls waited (for the failing share): the
    // line has the time for one probe every 5 s.
    assert!(stats.deferred_probes <= 2, "{}", stats.deferred_probes);
}

/// A unit silent for `outage`, answering 10 ms later once back: the first
/// good poll after the real return.
async fn first_answer_after(outage: Duration, options: BusOptions) -> (Duration, BusStats) {
    let devices = vec![
        device("flaky", 1, vec![point("x", 0, false)], 1000, 500),
        device("alive", 2, vec![point("x", 0, false)], 1000, 500),
    ];
    let began = Instant::now();
    // Not on a tick: the return falls anywhere between two probes.
    let back = began + Duration::from_millis(3_300) + outage;
    let behaviour: Behaviour = Box::new(move |unit, _, start, count| {
        let now = Instant::now();
        if unit == 1 && now >= began + Duration::from_millis(3_300) && now < back {
            (
                Duration::from_secs(1),
                Err(ReadError::Failed(FailureKind::Timeout)),
            )
        } else {
            (Duration::from_millis(10), Ok(echo(count, start)))
        }
    });
    let h = start_with(&devices, options, 0, 1024, behaviour);
    let span = outage + Duration::from_secs(30);
    let (out, stats, _) = h.collect_for(span).await;
    let first_ok = out
        .iter()
        .find(|(t, o)| o.device == 0 && *t > back && o.failure.is_none())
        .map(|(t, _)| t.duration_since(back))
        .expect("recovered");
    (first_ok, stats)
}

#[tokio::test(start_paused = true)]
async fn a_return_is_seen_within_the_recovery_resolution_for_any_outage_length() {
    for secs in [35, 50, 70, 130, 190, 600] {
        let outage = Duration::from_secs(secs) + Duration::from_millis(470);
        let (late, stats) = first_answer_after(outage, BusOptions::default()).await;
        // One resolution (5 s) plus the answer itself (10 ms).
        assert!(
            late <= Duration::from_millis(5_010),
            "silent {secs} s: seen {late:?} after the return"
        );
        assert_eq!(stats.degraded_devices, 0);
    }
    // A configured resolution is honoured; below the poll interval the poll
    // interval is the resolution.
    let fine = BusOptions {
        recovery_resolution: Duration::from_secs(2),
        ..BusOptions::default()
    };
    let (late, _) = first_answer_after(Duration::from_millis(70_470), fine).await;
    assert!(late <= Duration::from_millis(2_010), "{late:?}");
    let finer = BusOptions {
        recovery_resolution: Duration::from_millis(100),
        ..BusOptions::default()
    };
    let (late, _) = first_answer_after(Duration::from_millis(70_470), finer).await;
    assert!(late <= Duration::from_millis(1_010), "{late:?}");
}

/// Ten silent units and one healthy unit whose alarm polls leave no idle
/// gap long enough for a timeout: the silent units' polls take the failing
/// share (20 %) of the line, the healthy unit keeps the rest, and the
/// resolution degrades to what the share allows (10 × 1 s / 20 % = 50 s),
/// capped by `probe_max`, and is reported.
#[tokio::test(start_paused = true)]
async fn many_silent_units_share_a_fifth_of_the_line_and_the_resolution_degrades_visibly() {
    let mut devices: Vec<ResolvedDevice> = (1..=10)
        .map(|u| {
            device(
                &format!("mute-{u}"),
                u,
                vec![point("x", 0, false)],
                1000,
                500,
            )
        })
        .collect();
    devices.push(device(
        "busy",
        11,
        vec![point("x", 0, false), point("alarm", 1, true)],
        1000,
        200,
    ));
    let behaviour: Behaviour = Box::new(|unit, _, start, count| {
        if unit <= 10 {
            (
                Duration::from_secs(1),
                Err(ReadError::Failed(FailureKind::Timeout)),
            )
        } else {
            (Duration::from_millis(10), Ok(echo(count, start)))
        }
    });
    let options = BusOptions {
        probe_max: Duration::from_secs(30),
        ..BusOptions::default()
    };
    let span = Duration::from_secs(300);
    let h = start_with(&devices, options, 0, 8192, behaviour);
    let (out, stats, calls) = h.collect_for(span).await;
    // After the first round (10 s, once), the silent units took at most
    // about a fifth of the line plus what the ceiling forces.
    let t0 = calls[0].at;
    let after = t0 + Duration::from_secs(10);
    let silent_time: Duration = calls
        .iter()
        .filter(|c| c.unit <= 10 && c.at >= after)
        .map(|_| Duration::from_secs(1))
        .sum();
    let share = silent_time.as_secs_f64() / (span - Duration::from_secs(10)).as_secs_f64();
    // The 30 s ceiling forces 10 probes per 30 s = 1/3 of the line: the
    // ceiling wins over the share, as documented.
    assert!(
        share <= 0.34 + 0.02,
        "silent units took {share:.3} of the line"
    );
    assert!(share >= 0.2, "{share:.3}");
    // Every silent unit is still probed at least every 30 s (+ one timeout).
    for u in 1..=10u8 {
        let times: Vec<Instant> = calls.iter().filter(|c| c.unit == u).map(|c| c.at).collect();
        for w in times.windows(2) {
            assert!(
                w[1].duration_since(w[0]) <= Duration::from_secs(31),
                "unit {u}: {:?}",
                w[1].duration_since(w[0])
            );
        }
    }
    // The healthy unit's polls after the first round: at least two thirds
    // of its 5 alarm polls a second (each timeout costs it 1 s of polls).
    let busy = out
        .iter()
        .filter(|(t, o)| o.device == 10 && *t >= after)
        .count();
    let nominal = 5 * (span - Duration::from_secs(10)).as_secs();
    assert!(
        busy as u64 * 3 >= nominal * 2 - 30,
        "busy polled {busy} times of {nominal}"
    );
    assert!(stats.deferred_probes > 0);
    assert!(
        stats.probe_gap_ms > 5_000 && stats.probe_gap_ms <= 31_000,
        "{}",
        stats.probe_gap_ms
    );
}

/// Without a ceiling that forces them, silent units stay within the 20 %
/// share and the healthy unit keeps at least 80 % of its polls.
#[tokio::test(start_paused = true)]
async fn the_failing_share_holds_when_the_ceiling_is_not_reached() {
    let mut devices: Vec<ResolvedDevice> = (1..=4)
        .map(|u| {
            device(
                &format!("mute-{u}"),
                u,
                vec![point("x", 0, false)],
                1000,
                500,
            )
        })
        .collect();
    devices.push(device(
        "busy",
        5,
        vec![point("x", 0, false), point("alarm", 1, true)],
        1000,
        200,
    ));
    let behaviour: Behaviour = Box::new(|unit, _, start, count| {
        if unit <= 4 {
            (
                Duration::from_secs(1),
                Err(ReadError::Failed(FailureKind::Timeout)),
            )
        } else {
            (Duration::from_millis(10), Ok(echo(count, start)))
        }
    });
    let span = Duration::from_secs(200);
    let h = start(&devices, 0, 8192, behaviour);
    let (out, stats, calls) = h.collect_for(span).await;
    let t0 = calls[0].at;
    let after = t0 + Duration::from_secs(4);
    let silent = calls
        .iter()
        .filter(|c| c.unit <= 4 && c.at >= after)
        .count();
    let share = silent as f64 / (span - Duration::from_secs(4)).as_secs_f64();
    assert!(share <= 0.21, "silent units took {share:.3} of the line");
    // 4 units × 1 s / 20 %: each probed about every 20 s.
    assert!(
        (19_000..=21_100).contains(&stats.probe_gap_ms),
        "{}",
        stats.probe_gap_ms
    );
    let busy = out
        .iter()
        .filter(|(t, o)| o.device == 4 && *t >= after)
        .count();
    let nominal = 5 * (span - Duration::from_secs(4)).as_secs() as usize;
    assert!(
        busy * 10 >= nominal * 8,
        "busy polled {busy} times of {nominal}"
    );
}

/// Silent units listed before the healthy ones cost one timeout each at
/// start, once; their second and third polls wait for idle time or the
/// failing share instead of taking the line again.
#[tokio::test(start_paused = true)]
async fn silent_units_at_start_cost_one_timeout_each_once() {
    let mut devices: Vec<ResolvedDevice> = (1..=3)
        .map(|u| {
            device(
                &format!("mute-{u}"),
                u,
                vec![point("x", 0, false)],
                1000,
                500,
            )
        })
        .collect();
    for u in 4..=5 {
        devices.push(device(
            &format!("ok-{u}"),
            u,
            vec![point("x", 0, false)],
            1000,
            500,
        ));
    }
    let behaviour: Behaviour = Box::new(|unit, _, start, count| {
        if unit <= 3 {
            (
                Duration::from_millis(500),
                Err(ReadError::Failed(FailureKind::Timeout)),
            )
        } else {
            (Duration::from_millis(10), Ok(echo(count, start)))
        }
    });
    let h = start(&devices, 0, 1024, behaviour);
    let (out, _, _) = h.collect_for(Duration::from_secs(20)).await;
    for d in [3, 4] {
        let good = out
            .iter()
            .filter(|(_, o)| o.device == d && o.failure.is_none())
            .count();
        // 20 ticks; the first round costs 1.5 s, i.e. one tick.
        assert!(good >= 18, "device {d}: {good} of 20");
    }
}

#[tokio::test(start_paused = true)]
async fn a_degraded_device_recovers_by_itself_after_one_answer() {
    let devices = vec![device("flaky", 1, vec![point("x", 0, false)], 1000, 500)];
    let began = Instant::now();
    let behaviour: Behaviour = Box::new(move |_, _, start, count| {
        if Instant::now().duration_since(began) < Duration::from_secs(20) {
            (
                Duration::from_secs(1),
                Err(ReadError::Failed(FailureKind::Framing)),
            )
        } else {
            (Duration::from_millis(10), Ok(echo(count, start)))
        }
    });
    let h = start(&devices, 0, 256, behaviour);
    let (out, stats, _) = h.collect_for(Duration::from_secs(90)).await;
    let first_ok = out
        .iter()
        .position(|(_, o)| o.failure.is_none())
        .expect("recovered");
    let (t_ok, _) = out[first_ok];
    // Probed every 5 s: seen within 5 s of the return at 20 s.
    assert!(t_ok.duration_since(began) <= Duration::from_millis(25_010));
    // After recovery: back to one poll a second, all good.
    let after: Vec<_> = out[first_ok..].iter().collect();
    assert!(after.iter().all(|(_, o)| o.failure.is_none()));
    let expected = (began + Duration::from_secs(90))
        .duration_since(t_ok)
        .as_secs();
    assert!(
        after.len() as u64 >= expected,
        "{} polls in {expected} s",
        after.len()
    );
    assert_eq!(stats.degraded_devices, 0);
}

#[tokio::test(start_paused = true)]
async fn an_exception_keeps_the_device_polling_at_its_normal_rate() {
    let devices = vec![device("refuser", 1, vec![point("x", 0, false)], 1000, 500)];
    let behaviour: Behaviour = Box::new(|_, _, _, _| {
        (
            Duration::from_millis(10),
            Err(ReadError::Failed(FailureKind::Exception { code: 4 })),
        )
    });
    let h = start(&devices, 0, 64, behaviour);
    let (out, stats, _) = h.collect_for(Duration::from_millis(10_500)).await;
    assert_eq!(out.len(), 11);
    for (_, o) in &out {
        assert_eq!(o.failure, Some(FailureKind::Exception { code: 4 }));
        assert_eq!(
            o.samples[0].quality,
            Quality::Bad(BadReason::Exception { code: 4 })
        );
    }
    assert_eq!(stats.degraded_devices, 0);
    assert_eq!(stats.exceptions, 11);
}

#[tokio::test(start_paused = true)]
async fn exception_two_on_a_coalesced_range_splits_it_and_reads_the_points() {
    // Registers 0 and 5 are mapped, 1..5 are a hole the device refuses.
    let devices = vec![device(
        "holey",
        1,
        vec![point("a", 0, false), point("b", 5, false)],
        1000,
        500,
    )];
    let behaviour: Behaviour = Box::new(|_, _, start, count| {
        let end = start + count;
        if (start..end).any(|a| (1..5).contains(&a)) {
            (
                Duration::from_millis(10),
                Err(ReadError::Failed(FailureKind::Exception { code: 2 })),
            )
        } else {
            (Duration::from_millis(10), Ok(echo(count, start)))
        }
    });
    let h = start(&devices, 0, 64, behaviour);
    let (out, _, calls) = h.collect_for(Duration::from_millis(1500)).await;
    let (_, first) = &out[0];
    // Refused once, then read as two requests within the same poll.
    assert_eq!(first.requests, 3);
    assert_eq!(first.failed_requests, 1);
    assert!(
        first.samples.iter().all(|s| s.quality.is_good()),
        "{:?}",
        first.samples
    );
    assert_eq!(first.samples.len(), 2);
    // The next poll uses the split plan directly.
    let (_, second) = &out[1];
    assert_eq!(
        (second.requests, second.failed_requests, second.failure),
        (2, 0, None)
    );
    let shapes: Vec<(u16, u16)> = calls.iter().map(|c| (c.start, c.count)).collect();
    assert_eq!(shapes, vec![(0, 6), (0, 1), (5, 1), (0, 1), (5, 1)]);
}

#[tokio::test(start_paused = true)]
async fn late_polls_skip_missed_ticks_instead_of_piling_up() {
    // Every read takes 2.5 s against a 1 s interval.
    let devices = vec![device("slow", 1, vec![point("x", 0, false)], 1000, 500)];
    let behaviour: Behaviour =
        Box::new(|_, _, start, count| (Duration::from_millis(2500), Ok(echo(count, start))));
    let h = start(&devices, 0, 64, behaviour);
    let (out, stats, calls) = h.collect_for(Duration::from_millis(9_900)).await;
    // Polls start at 0, 3, 6, 9 s: the next whole tick after each one ends
    // (the one started at 9 s has not finished when the test stops).
    assert_eq!(out.len(), 3);
    let t0 = calls[0].at;
    let starts: Vec<u128> = calls
        .iter()
        .map(|c| c.at.duration_since(t0).as_millis())
        .collect();
    assert_eq!(starts, vec![0, 3000, 6000, 9000]);
    assert_eq!(stats.late_polls, 3);
    assert_eq!(stats.skipped_ticks, 6);
}

#[tokio::test(start_paused = true)]
async fn polls_while_the_link_is_down_fail_fast_and_degrade_nobody() {
    let devices = vec![
        device("a", 1, vec![point("x", 0, false)], 1000, 500),
        device("b", 2, vec![point("x", 0, false)], 1000, 500),
    ];
    let behaviour: Behaviour = Box::new(|_, _, _, _| (Duration::ZERO, Err(ReadError::LinkDown)));
    let h = start(&devices, 0, 64, behaviour);
    // `b`'s phase is half an interval: polls at 0, 1, … 9 s and 0.5, … 9.5 s.
    let (out, stats, _) = h.collect_for(Duration::from_millis(9_900)).await;
    assert_eq!(out.len(), 20);
    for (_, o) in &out {
        assert_eq!(o.failure, Some(FailureKind::Transport));
        assert_eq!(o.requests, 0);
    }
    assert_eq!(stats.degraded_devices, 0);
    assert_eq!(stats.requests, 0);
    assert_eq!(stats.link_down, 20);
}

#[tokio::test(start_paused = true)]
async fn a_full_outcome_channel_holds_the_bus_back() {
    let devices = vec![device("d", 1, vec![point("x", 0, false)], 100, 50)];
    let h = start(&devices, 0, 2, Box::new(ok));
    // Nobody reads: the task fills the channel (2) and waits on the third send.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(h.counters.snapshot().polls, 3);
    let (out, _, _) = h.collect_for(Duration::from_millis(1)).await;
    assert!(out.len() >= 2);
}

#[tokio::test(start_paused = true)]
async fn the_devices_of_a_line_are_spread_over_its_poll_interval() {
    let devices: Vec<_> = (1..=4)
        .map(|u| device(&format!("d{u}"), u, vec![point("x", 0, false)], 1000, 500))
        .collect();
    let h = start(&devices, 0, 256, Box::new(ok));
    let (_, stats, calls) = h.collect_for(Duration::from_millis(3_900)).await;
    let t0 = calls[0].at;
    let firsts: Vec<u128> = (1..=4u8)
        .map(|u| {
            let c = calls.iter().find(|c| c.unit == u).unwrap();
            c.at.duration_since(t0).as_millis()
        })
        .collect();
    // A quarter of the interval apart, and the phase is kept.
    assert_eq!(firsts, vec![0, 250, 500, 750]);
    for u in 1..=4u8 {
        let times: Vec<Instant> = calls.iter().filter(|c| c.unit == u).map(|c| c.at).collect();
        assert_eq!(times.len(), 4, "unit {u}");
        for w in times.windows(2) {
            assert_eq!(w[1].duration_since(w[0]), Duration::from_secs(1));
        }
    }
    assert_eq!(stats.late_polls, 0);
}

/// The busy RS-485 line of the performance notes: eight devices whose full
/// poll is one 88 ms transaction each second, and a fire panel (listed
/// last) whose alarm points are due every 250 ms. The panel's alarm points
/// are read every 250 ms, at most one transaction late.
#[tokio::test(start_paused = true)]
async fn on_a_busy_line_alarm_polls_run_at_their_interval() {
    let tx = Duration::from_millis(88);
    let mut devices: Vec<_> = (1..=8)
        .map(|u| {
            let points = (0..30).map(|a| point(&format!("r{a}"), a, false)).collect();
            device(&format!("d{u}"), u, points, 1000, 250)
        })
        .collect();
    let mut panel: Vec<Point> = (0..30).map(|a| point(&format!("r{a}"), a, false)).collect();
    panel[0].alarm = true;
    devices.push(device("panel", 9, panel, 1000, 250));
    let behaviour: Behaviour = Box::new(move |_, _, start, count| {
        let t = if count == 1 {
            Duration::from_millis(30)
        } else {
            tx
        };
        (t, Ok(echo(count, start)))
    });
    let h = start(&devices, 4, 4096, behaviour);
    let (out, stats, calls) = h.collect_for(Duration::from_secs(60)).await;
    // Every read of the panel covers its alarm point (register 0).
    let reads: Vec<Instant> = calls.iter().filter(|c| c.unit == 9).map(|c| c.at).collect();
    let worst = reads
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap();
    assert!(
        worst <= Duration::from_millis(250) + tx + Duration::from_millis(4),
        "alarm points read {worst:?} apart"
    );
    let alarm_polls = out
        .iter()
        .filter(|(_, o)| o.device == 8 && o.class == PollClass::Alarm)
        .count();
    // 3 alarm polls a second (the fourth tick is the full poll's).
    assert!(alarm_polls >= 3 * 59, "{alarm_polls} alarm polls");
    assert_eq!(stats.alarm_polls as usize, alarm_polls);
    let full = out
        .iter()
        .filter(|(_, o)| o.class == PollClass::Full)
        .count();
    assert!(full >= 9 * 59, "{full} full polls");
}

/// A device whose full poll takes several transactions does not hold an
/// alarm poll back until its end: the alarm poll goes between two of them.
#[tokio::test(start_paused = true)]
async fn an_alarm_poll_goes_between_the_transactions_of_another_poll() {
    // Five clusters too far apart to be coalesced: five 100 ms requests.
    let wide: Vec<Point> = (0..5)
        .map(|i| point(&format!("p{i}"), i * 100, false))
        .collect();
    let devices = vec![
        device("wide", 1, wide, 1000, 1000),
        device("panel", 2, vec![point("fault", 0, true)], 1000, 150),
    ];
    let behaviour: Behaviour = Box::new(|unit, _, start, count| {
        let t = if unit == 1 { 100 } else { 10 };
        (Duration::from_millis(t), Ok(echo(count, start)))
    });
    let h = start(&devices, 0, 1024, behaviour);
    let (_, stats, calls) = h.collect_for(Duration::from_secs(20)).await;
    let panel: Vec<Instant> = calls.iter().filter(|c| c.unit == 2).map(|c| c.at).collect();
    let worst = panel
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap();
    // One alarm interval plus at most one transaction of `wide`.
    assert!(
        worst <= Duration::from_millis(250),
        "panel read {worst:?} apart"
    );
    assert!(stats.interleaved_alarms > 0);
    // `wide` still reads all five ranges every second.
    let wide_reads = calls.iter().filter(|c| c.unit == 1).count();
    assert!(wide_reads >= 5 * 19, "{wide_reads}");
}

#[test]
fn phase_spreads_k_of_n_over_the_interval() {
    let s = Duration::from_secs(1);
    assert_eq!(phase(s, 0, 4), Duration::ZERO);
    assert_eq!(phase(s, 3, 4), Duration::from_millis(750));
    assert_eq!(phase(s, 1, 3), Duration::from_nanos(333_333_333));
    assert_eq!(phase(s, 0, 0), Duration::ZERO);
    // A long interval: the first reads still all fall within a second.
    let long = Duration::from_secs(10);
    assert_eq!(phase(long, 3, 4), Duration::from_millis(750));
    assert_eq!(phase(long, 0, 4), Duration::ZERO);
}

#[test]
fn next_tick_keeps_the_phase_and_counts_the_skipped_ticks() {
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    assert_eq!(
        next_tick(t0, s, t0 + Duration::from_millis(10)),
        (t0 + s, 0)
    );
    assert_eq!(next_tick(t0, s, t0 + s), (t0 + 2 * s, 1));
    assert_eq!(
        next_tick(t0, s, t0 + Duration::from_millis(3500)),
        (t0 + 4 * s, 3)
    );
}
