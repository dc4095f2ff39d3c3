//! Scheduler tests on a paused clock with scripted links: no sockets, so
//! tokio's auto-advance makes minutes of polling run in milliseconds.

use std::collections::BTreeMap;
use std::sync::Mutex;

use gateway_core::config::{BusKind, Parity};
use gateway_core::model::{Area, DataType, DeviceClass, Quality, Value, WordOrder};

use super::*;

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
    }
}

fn device(id: &str, unit: u8, points: Vec<Point>, poll_ms: u64, alarm_ms: u64) -> ResolvedDevice {
    ResolvedDevice {
        id: id.to_owned(),
        name_zh: id.to_owned(),
        name_en: id.to_owned(),
        class: DeviceClass::Pump,
        location: String::new(),
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
        BusOptions::default(),
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
async fn a_dead_device_is_degraded_and_its_neighbours_keep_their_rate() {
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
    // Degraded after 3 failures, then backing off from 2 s to 60 s: far
    // fewer than 120 polls.
    assert!(dead.len() <= 12, "dead device polled {} times", dead.len());
    assert!(
        alive.len() >= 115,
        "alive device polled {} times",
        alive.len()
    );
    assert!(alive.iter().all(|(_, o)| o.failure.is_none()));
    assert_eq!(stats.degraded_devices, 1);
    // Only full polls while degraded, spaced ever wider.
    let times: Vec<Instant> = dead.iter().map(|(t, _)| *t).collect();
    let gaps: Vec<Duration> = times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .collect();
    assert!(gaps.last().unwrap() > &Duration::from_secs(15), "{gaps:?}");
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
    // The backoff after 20 s of failures is at most ~19 s (16 s + 20 %).
    assert!(t_ok.duration_since(began) < Duration::from_secs(40));
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
    let (out, stats, _) = h.collect_for(Duration::from_millis(9_500)).await;
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
