//! Channels against local HTTP receivers (signatures computed here,
//! independently, from each vendor's documented algorithm), and the
//! dispatcher: exactly once after a failing receiver recovers, fallback,
//! restart, escalation on a paused clock.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use base64::Engine as _;
use futures::future::BoxFuture;
use gateway_core::alerts::{Notice, NoticeKind};
use gateway_core::config::{ChannelKind, Resolved, Secret};
use gateway_core::model::DeviceClass;
use gateway_core::state::{HardAlarm, UnixMs};
use gateway_core::tickets::{DeviceRef, TicketBook, TicketEvent};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::channels::{Channel, HttpChannel, SendError};
use super::start::dispatcher;
use super::*;
use crate::engine::CoreEvent;
use crate::store::{AlertState, Store};

/// 2026-11-03 10:00 Asia/Shanghai (a Tuesday, working hours).
const T0: UnixMs = 1_793_671_200_000;

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Got {
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    status: u16,
}

/// A local HTTP receiver on 127.0.0.1:0 answering `status` (changeable)
/// with `reply` as body; records every request.
#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
    status: Arc<AtomicU16>,
}

impl Receiver {
    async fn start(reply: &'static str) -> Receiver {
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(200));
        let (g, s) = (Arc::clone(&got), Arc::clone(&status));
        let app = Router::new().route(
            "/{*path}",
            post(move |uri: Uri, headers: HeaderMap, body: Bytes| {
                let (g, s) = (Arc::clone(&g), Arc::clone(&s));
                async move {
                    let code = s.load(Ordering::SeqCst);
                    g.lock().unwrap().push(Got {
                        uri,
                        headers,
                        body,
                        status: code,
                    });
                    (StatusCode::from_u16(code).unwrap(), reply)
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        Receiver {
            url: format!("http://{addr}/robot/send?access_token=abc"),
            got,
            status,
        }
    }

    fn requests(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    fn accepted(&self) -> usize {
        self.requests().iter().filter(|g| g.status == 200).count()
    }
}

fn hmac256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A config with the pump and fire panel of the engine tests and `[alerts]`
/// built from `alerts` (channels etc.).
fn config(dir: &Path, alerts: &str) -> Resolved {
    let profiles = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/profiles");
    let text = format!(
        r#"
site = "tower-a"
gateway = "gw-1"
data_dir = "data"
profiles_dir = "{profiles}"
[[bus]]
id = "rs485-1"
kind = "rtu"
port = "/dev/null"
[[device]]
id = "fire-1"
name_zh = "1号消防主机"
class = "fire_alarm"
location = "B1 消防控制室"
bus = "rs485-1"
unit = 2
profile = "fire-panel"
[alerts]
dashboard_url = "http://bms.local:8080/tickets/{{site}}/{{gateway}}/{{id}}"
retry_min = "50ms"
retry_max = "200ms"
fallback_after = 2
# Off for the paging tests: their clocks pass the daily handover time
# (08:00), whose digest has its own test.
handover = false
{alerts}
[[alerts.person]]
id = "zhang"
name = "张工"
mobile = "13800000001"
email = "zhang@example.com"
[[alerts.person]]
id = "zhao"
name = "赵主管"
mobile = "13800000002"
[alerts.rotation]
every = "week"
start = "2026-11-02"
[[alerts.rotation.tier]]
name = "值班工程师"
people = ["zhang"]
[[alerts.rotation.tier]]
name = "主管"
people = ["zhao"]
"#
    );
    let file = dir.join("gateway.toml");
    std::fs::write(&file, text).unwrap();
    crate::files::load_config(&file).unwrap()
}

fn fire_event(book: &mut TicketBook, at: UnixMs) -> TicketEvent {
    book.on_alarm(
        DeviceRef {
            id: "fire-1",
            class: DeviceClass::FireAlarm,
        },
        &HardAlarm {
            device: "fire-1".into(),
            point: "fire_alarm".into(),
            active: true,
            at_ms: at,
        },
    )
    .remove(0)
}

fn book() -> TicketBook {
    TicketBook::new(
        &Default::default(),
        chrono_tz::Asia::Shanghai,
        Vec::new(),
        1,
    )
}

/// A page notice as the policy makes it.
fn page_notice(dir: &Path, cfg: &Resolved) -> Notice {
    let (mut d, _) = dispatcher(cfg, &dir.join("gateway.toml"), dir, Arc::new(|| T0))
        .unwrap()
        .unwrap();
    let ev = fire_event(&mut book(), T0);
    let info = d.info("fire-1");
    d.policy.on_ticket(&ev, info, T0).remove(0)
}

fn http(cfg: &Resolved, id: &str, secret: Option<&str>) -> HttpChannel {
    let c = cfg.raw.alerts.as_ref().unwrap().channel(id).unwrap();
    HttpChannel::new(c, secret.map(Secret::new), &cfg.site, &cfg.gateway).unwrap()
}

fn channel_toml(id: &str, kind: &str, url: &str) -> String {
    format!(
        "[[alerts.channel]]\nid = \"{id}\"\nkind = \"{kind}\"\nurl = \"{url}\"\n[alerts.critical]\nchannels = [\"{id}\"]\nack_within = \"10m\"\noutside_hours = \"page\"\n"
    )
}

#[tokio::test]
async fn webhook_posts_the_notice_as_json_with_an_hmac_of_the_body() {
    let rx = Receiver::start("ok").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &channel_toml("hook", "webhook", &rx.url));
    let n = page_notice(dir.path(), &cfg);
    let ch = http(&cfg, "hook", Some("s3cret"));
    ch.send(&n, T0).await.unwrap();
    let got = &rx.requests()[0];
    let want = format!("sha256={}", hex::encode(hmac256(b"s3cret", &got.body)));
    assert_eq!(got.headers["x-bms-signature"], want.as_str());
    assert_eq!(got.headers["x-bms-alert-key"], n.key.as_str());
    let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(v["site"], "tower-a");
    assert_eq!(v["kind"], "page");
    assert_eq!(v["ticket"], 1);
    assert_eq!(v["to"][0]["name"], "张工");
    assert_eq!(v["link"], "http://bms.local:8080/tickets/tower-a/gw-1/1");
    assert!(v["text"].as_str().unwrap().contains("位置：B1 消防控制室"));
}

#[tokio::test]
async fn dingtalk_signs_timestamp_and_secret_in_the_query_and_sends_markdown_with_at() {
    let rx = Receiver::start(r#"{"errcode":0,"errmsg":"ok"}"#).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &channel_toml("ding", "dingtalk", &rx.url));
    let n = page_notice(dir.path(), &cfg);
    let secret = "SEC0123456789abcdef";
    http(&cfg, "ding", Some(secret)).send(&n, T0).await.unwrap();
    let got = &rx.requests()[0];
    let q: BTreeMap<String, String> = got
        .uri
        .query()
        .unwrap()
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (
                k.to_owned(),
                percent_encoding::percent_decode_str(v)
                    .decode_utf8()
                    .unwrap()
                    .into_owned(),
            )
        })
        .collect();
    assert_eq!(q["access_token"], "abc");
    assert_eq!(q["timestamp"], T0.to_string()); // milliseconds
    // Documented: base64(HmacSHA256(key = secret, msg = timestamp + "\n" + secret)).
    let want = b64(&hmac256(
        secret.as_bytes(),
        format!("{T0}\n{secret}").as_bytes(),
    ));
    assert_eq!(q["sign"], want);
    // The sign is URL-encoded on the wire ('+', '/', '=' escaped).
    assert!(!got.uri.query().unwrap().contains('+'));
    let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(v["msgtype"], "markdown");
    assert!(
        v["markdown"]["title"]
            .as_str()
            .unwrap()
            .starts_with("【紧急告警】")
    );
    let text = v["markdown"]["text"].as_str().unwrap();
    assert!(
        text.contains("@13800000001") && text.contains("时限："),
        "{text}"
    );
    assert_eq!(v["at"]["atMobiles"][0], "13800000001");
}

#[tokio::test]
async fn feishu_signs_with_timestamp_and_secret_as_the_key_in_seconds() {
    let rx = Receiver::start(r#"{"code":0,"msg":"success","data":{}}"#).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &channel_toml("fs", "feishu", &rx.url));
    let n = page_notice(dir.path(), &cfg);
    http(&cfg, "fs", Some("fs-secret"))
        .send(&n, T0)
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&rx.requests()[0].body).unwrap();
    let ts = (T0 / 1000).to_string();
    assert_eq!(v["timestamp"], ts.as_str());
    // Documented: base64(HmacSHA256(key = timestamp + "\n" + secret, msg = "")).
    let want = b64(&hmac256(format!("{ts}\nfs-secret").as_bytes(), b""));
    assert_eq!(v["sign"], want.as_str());
    assert_eq!(v["msg_type"], "text");
    assert!(
        v["content"]["text"]
            .as_str()
            .unwrap()
            .contains("设备：1号消防主机 (fire-1)")
    );
}

#[tokio::test]
async fn wecom_sends_markdown_and_a_vendor_error_code_is_a_failure() {
    let rx = Receiver::start(r#"{"errcode":0,"errmsg":"ok"}"#).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &channel_toml("wx", "wecom", &rx.url));
    let n = page_notice(dir.path(), &cfg);
    http(&cfg, "wx", None).send(&n, T0).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&rx.requests()[0].body).unwrap();
    assert_eq!(v["msgtype"], "markdown");
    let md = v["markdown"]["content"].as_str().unwrap();
    assert!(md.starts_with("**【紧急告警】1号消防主机"), "{md}");
    assert!(
        md.contains("[查看工单](http://bms.local:8080/tickets/tower-a/gw-1/1)"),
        "{md}"
    );
    let bad = Receiver::start(r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#).await;
    let cfg = config(dir.path(), &channel_toml("wx", "wecom", &bad.url));
    let e = http(&cfg, "wx", None).send(&n, T0).await.unwrap_err();
    assert!(
        matches!(&e, SendError::Retry(m) if m.contains("93000")),
        "{e:?}"
    );
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_receiver_failing_then_recovering_gets_the_alert_exactly_once() {
    let rx = Receiver::start("ok").await;
    rx.status.store(500, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &channel_toml("hook", "webhook", &rx.url));
    let clock: Clock = Arc::new(crate::run::unix_now_ms);
    let (d, _) = dispatcher(&cfg, &dir.path().join("gateway.toml"), dir.path(), clock)
        .unwrap()
        .unwrap();
    let stats = Arc::clone(&d.stats);
    let (tx, events) = mpsc::channel(8);
    let stop = CancellationToken::new();
    let task = tokio::spawn(d.run(events, stop.clone()));
    let now = crate::run::unix_now_ms();
    tx.send(CoreEvent::Ticket(Box::new(fire_event(&mut book(), now))))
        .await
        .unwrap();
    wait_for("three failed attempts", || rx.requests().len() >= 3).await;
    rx.status.store(200, Ordering::SeqCst);
    wait_for("delivery", || rx.accepted() == 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.accepted(), 1, "exactly once after recovery");
    let c = &stats.channels[0].1;
    assert!(c.failures.load(Ordering::Relaxed) >= 3);
    assert_eq!(c.sent.load(Ordering::Relaxed), 1);
    stop.cancel();
    task.await.unwrap();
    let store = Store::open(dir.path()).unwrap();
    let log = store.alert_log(None, None, 10).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].state, AlertState::Sent);
    assert!(log[0].attempts >= 4);
    assert!(log[0].last_error.as_deref().unwrap().contains("HTTP 500"));
    // A restart sends nothing again.
    let (d, _) = dispatcher(
        &cfg,
        &dir.path().join("gateway.toml"),
        dir.path(),
        Arc::new(crate::run::unix_now_ms),
    )
    .unwrap()
    .unwrap();
    let (_tx, events) = mpsc::channel(8);
    let stop = CancellationToken::new();
    let task = tokio::spawn(d.run(events, stop.clone()));
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.cancel();
    task.await.unwrap();
    assert_eq!(rx.requests().iter().filter(|g| g.status == 200).count(), 1);
}

#[tokio::test]
async fn a_failing_channel_falls_back_after_the_configured_attempts() {
    let bad = Receiver::start("no").await;
    bad.status.store(503, Ordering::SeqCst);
    let good = Receiver::start("ok").await;
    let dir = tempfile::tempdir().unwrap();
    let alerts = format!(
        "[[alerts.channel]]\nid = \"primary\"\nkind = \"webhook\"\nurl = \"{}\"\nfallback = \"backup\"\n[[alerts.channel]]\nid = \"backup\"\nkind = \"webhook\"\nurl = \"{}\"\n[alerts.critical]\nchannels = [\"primary\"]\nack_within = \"10m\"\noutside_hours = \"page\"\n",
        bad.url, good.url
    );
    let cfg = config(dir.path(), &alerts);
    let (d, _) = dispatcher(
        &cfg,
        &dir.path().join("gateway.toml"),
        dir.path(),
        Arc::new(crate::run::unix_now_ms),
    )
    .unwrap()
    .unwrap();
    let stats = Arc::clone(&d.stats);
    let (tx, events) = mpsc::channel(8);
    let stop = CancellationToken::new();
    let task = tokio::spawn(d.run(events, stop.clone()));
    tx.send(CoreEvent::Ticket(Box::new(fire_event(
        &mut book(),
        crate::run::unix_now_ms(),
    ))))
    .await
    .unwrap();
    wait_for("the fallback delivery", || good.accepted() == 1).await;
    let fb = stats
        .channels
        .iter()
        .find(|(id, _)| id == "primary")
        .unwrap();
    assert_eq!(fb.1.fallbacks.load(Ordering::Relaxed), 1);
    stop.cancel();
    task.await.unwrap();
    let m = crate::admin::Metrics {
        alerts: Some(stats),
        ..Default::default()
    };
    let text = m.render();
    assert!(
        text.contains("bms_alert_failures_total{channel=\"primary\"} "),
        "{text}"
    );
    assert!(
        text.contains("bms_alerts_sent_total{channel=\"backup\"} 1"),
        "{text}"
    );
}

/// A channel that records what it is given (for policy timing tests).
#[derive(Debug, Default)]
struct Recorder {
    got: Mutex<Vec<Notice>>,
    calls: AtomicUsize,
}

#[derive(Debug)]
struct RecChannel(Arc<Recorder>);

impl Channel for RecChannel {
    fn id(&self) -> &str {
        "rec"
    }
    fn kind(&self) -> ChannelKind {
        ChannelKind::Webhook
    }
    fn send<'a>(&'a self, n: &'a Notice, _now: UnixMs) -> BoxFuture<'a, Result<(), SendError>> {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        self.0.got.lock().unwrap().push(n.clone());
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test(start_paused = true)]
async fn escalation_fires_on_a_paused_clock_and_ack_sends_a_follow_up() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &channel_toml("rec", "webhook", "http://127.0.0.1:9/unused"),
    );
    let start = tokio::time::Instant::now();
    let clock: Clock = Arc::new(move || T0 + i64::try_from(start.elapsed().as_millis()).unwrap());
    let (mut d, _) = dispatcher(&cfg, &dir.path().join("gateway.toml"), dir.path(), clock)
        .unwrap()
        .unwrap();
    let rec = Arc::new(Recorder::default());
    d.channels
        .insert("rec".into(), Arc::new(RecChannel(Arc::clone(&rec))));
    let (tx, events) = mpsc::channel(8);
    let stop = CancellationToken::new();
    let task = tokio::spawn(d.run(events, stop.clone()));
    let mut b = book();
    tx.send(CoreEvent::Ticket(Box::new(fire_event(&mut b, T0))))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let names = |i: usize| -> (NoticeKind, Vec<String>) {
        let g = rec.got.lock().unwrap();
        (
            g[i].kind,
            g[i].message.to.iter().map(|r| r.id.clone()).collect(),
        )
    };
    assert_eq!(rec.calls.load(Ordering::SeqCst), 1);
    assert_eq!(names(0), (NoticeKind::Page, vec!["zhang".to_owned()]));
    // 10 minutes without an acknowledgement: the supervisor.
    tokio::time::sleep(Duration::from_secs(9 * 60 + 50)).await;
    assert_eq!(rec.calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(rec.calls.load(Ordering::SeqCst), 2);
    assert_eq!(names(1), (NoticeKind::Escalation, vec!["zhao".to_owned()]));
    let now = T0 + 10 * 60_000 + 30_000;
    let ack = b.ack(1, "zhang", "到场", now).unwrap().remove(0);
    tx.send(CoreEvent::Ticket(Box::new(ack))).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rec.calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        names(2),
        (
            NoticeKind::Acknowledged,
            vec!["zhang".to_owned(), "zhao".to_owned()]
        )
    );
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_night_fault_waits_for_the_morning_and_pages_whoever_is_on_duty_then() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "{}[alerts.ordinary]\nchannels = [\"rec\"]\nack_within = \"1h\"\noutside_hours = \"defer\"\n\
         [[alerts.person]]\nid = \"wang\"\nname = \"王工\"\n\
         [[alerts.override]]\ntier = 1\nperson = \"wang\"\nfrom = \"2026-11-05 07:00\"\nto = \"2026-11-05 09:00\"\nnote = \"换班\"\n",
        channel_toml("rec", "webhook", "http://127.0.0.1:9/unused")
    );
    let cfg = config(dir.path(), &extra);
    // Daily turns handing over at midnight: zhang on Tuesday, li on Wednesday.
    let mut cfg = cfg;
    let a = cfg.raw.alerts.as_mut().unwrap();
    a.rotation.every = gateway_core::config::Every::Day;
    a.rotation.handover = gateway_core::config::ClockTime(chrono::NaiveTime::MIN);
    a.rotation.start = "2026-11-03".into();
    a.rotation.tiers[0].people = vec!["zhang".into(), "li".into()];
    a.people.push(gateway_core::config::PersonConfig {
        id: "li".into(),
        name: "李工".into(),
        email: None,
        mobile: None,
    });
    // Tuesday 2026-11-03 20:00 (after hours).
    let t_night = T0 + 10 * 3_600_000;
    let start = tokio::time::Instant::now();
    let clock: Clock =
        Arc::new(move || t_night + i64::try_from(start.elapsed().as_millis()).unwrap());
    let (mut d, _) = dispatcher(&cfg, &dir.path().join("gateway.toml"), dir.path(), clock)
        .unwrap()
        .unwrap();
    let rec = Arc::new(Recorder::default());
    d.channels
        .insert("rec".into(), Arc::new(RecChannel(Arc::clone(&rec))));
    let (tx, events) = mpsc::channel(8);
    let stop = CancellationToken::new();
    let task = tokio::spawn(d.run(events, stop.clone()));
    let mut b = book();
    let ev = b
        .on_availability_below(
            DeviceRef {
                id: "fire-1",
                class: DeviceClass::FireAlarm,
            },
            0.95,
            99.0,
            None,
            t_night,
        )
        .remove(0);
    tx.send(CoreEvent::Ticket(Box::new(ev.clone())))
        .await
        .unwrap();
    // Through midnight (li takes over at 00:00) until 07:59: nothing.
    tokio::time::sleep(Duration::from_secs(11 * 3600 + 59 * 60)).await;
    assert_eq!(rec.calls.load(Ordering::SeqCst), 0);
    // 08:00 Wednesday: paged, to li (on duty since midnight).
    tokio::time::sleep(Duration::from_secs(62)).await;
    assert_eq!(rec.calls.load(Ordering::SeqCst), 1);
    {
        let g = rec.got.lock().unwrap();
        assert_eq!(g[0].kind, NoticeKind::Page);
        assert_eq!(g[0].message.to[0].id, "li");
        assert!(
            g[0].message.title.starts_with("【故障】"),
            "{}",
            g[0].message.title
        );
    }
    stop.cancel();
    task.await.unwrap();

    // The same fault a day later at night: Thursday 08:00 falls in the
    // dated override (wang, 07:00–09:00), not the rotation (zhang).
    let dir2 = tempfile::tempdir().unwrap();
    let t2 = t_night + 24 * 3_600_000;
    let start = tokio::time::Instant::now();
    let clock: Clock = Arc::new(move || t2 + i64::try_from(start.elapsed().as_millis()).unwrap());
    let (mut d, _) = dispatcher(&cfg, &dir2.path().join("gateway.toml"), dir2.path(), clock)
        .unwrap()
        .unwrap();
    let rec = Arc::new(Recorder::default());
    d.channels
        .insert("rec".into(), Arc::new(RecChannel(Arc::clone(&rec))));
    let (tx, events) = mpsc::channel(8);
    let stop = CancellationToken::new();
    let task = tokio::spawn(d.run(events, stop.clone()));
    let ev = book()
        .on_availability_below(
            DeviceRef {
                id: "fire-1",
                class: DeviceClass::FireAlarm,
            },
            0.95,
            99.0,
            None,
            t2,
        )
        .remove(0);
    tx.send(CoreEvent::Ticket(Box::new(ev))).await.unwrap();
    tokio::time::sleep(Duration::from_secs(12 * 3600 + 60)).await;
    assert_eq!(rec.calls.load(Ordering::SeqCst), 1);
    assert_eq!(rec.got.lock().unwrap()[0].message.to[0].id, "wang");
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_connection_error_says_why_without_the_robot_token() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again: nothing listens
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/robot/send?access_token=TOKEN123");
    let cfg = config(dir.path(), &channel_toml("ding", "dingtalk", &url));
    let n = page_notice(dir.path(), &cfg);
    let e = http(&cfg, "ding", Some("SECx"))
        .send(&n, T0)
        .await
        .unwrap_err();
    let SendError::Retry(m) = e else {
        panic!("{e:?}")
    };
    assert!(!m.contains("TOKEN123") && !m.contains("SECx"), "{m}");
    assert!(m.to_lowercase().contains("connect"), "{m}");
}

#[tokio::test(start_paused = true)]
async fn a_storm_of_forty_faults_sends_five_pages_and_one_digest_and_records_all() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &channel_toml("rec", "webhook", "http://127.0.0.1:9/unused"),
    );
    let start = tokio::time::Instant::now();
    let clock: Clock = Arc::new(move || T0 + i64::try_from(start.elapsed().as_millis()).unwrap());
    let (mut d, _) = dispatcher(&cfg, &dir.path().join("gateway.toml"), dir.path(), clock)
        .unwrap()
        .unwrap();
    let rec = Arc::new(Recorder::default());
    d.channels
        .insert("rec".into(), Arc::new(RecChannel(Arc::clone(&rec))));
    let (tx, events) = mpsc::channel(64);
    let stop = CancellationToken::new();
    let task = tokio::spawn(d.run(events, stop.clone()));
    let mut b = book();
    for i in 0..40 {
        let dev: &'static str = Box::leak(format!("panel-{i}").into_boxed_str());
        let ev = b
            .on_alarm(
                DeviceRef {
                    id: dev,
                    class: DeviceClass::FireAlarm,
                },
                &HardAlarm {
                    device: dev.into(),
                    point: "fire_alarm".into(),
                    active: true,
                    at_ms: T0,
                },
            )
            .remove(0);
        tx.send(CoreEvent::Ticket(Box::new(ev))).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    let got = rec.got.lock().unwrap().clone();
    assert_eq!(got.len(), 6, "5 pages + 1 digest within the 20/min limit");
    assert_eq!(got.iter().filter(|n| n.kind == NoticeKind::Page).count(), 5);
    let digest = got.iter().find(|n| n.kind == NoticeKind::Digest).unwrap();
    assert_eq!(digest.covers.len(), 35);
    stop.cancel();
    task.await.unwrap();
    // Every page is in the log: 5 sent, 35 carried by the digest, the digest sent.
    let store = Store::open(dir.path()).unwrap();
    let log = store.alert_log(None, None, 100).unwrap();
    let count = |s: AlertState| log.iter().filter(|r| r.state == s).count();
    assert_eq!(
        (count(AlertState::Sent), count(AlertState::Digested)),
        (6, 35)
    );
}

/// Runs a dispatcher on `dir` (a fresh one: the store reopened, the policy
/// restored) for `secs` of paused time from `at`, delivering to `rec`, with
/// `events` announced to it first.
async fn run_dispatcher(
    cfg: &Resolved,
    dir: &Path,
    at: UnixMs,
    rec: &Arc<Recorder>,
    events: Vec<TicketEvent>,
    secs: u64,
) {
    let start = tokio::time::Instant::now();
    let clock: Clock = Arc::new(move || at + i64::try_from(start.elapsed().as_millis()).unwrap());
    let (mut d, _) = dispatcher(cfg, &dir.join("gateway.toml"), dir, clock)
        .unwrap()
        .unwrap();
    d.channels
        .insert("rec".into(), Arc::new(RecChannel(Arc::clone(rec))));
    let (tx, rx) = mpsc::channel(8);
    let stop = CancellationToken::new();
    let task = tokio::spawn(d.run(rx, stop.clone()));
    for ev in events {
        tx.send(CoreEvent::Ticket(Box::new(ev))).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn follow_ups_lost_between_the_ticket_change_and_their_recording_are_sent_once_after_a_restart()
 {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &channel_toml("rec", "webhook", "http://127.0.0.1:9/unused"),
    );
    let rec = Arc::new(Recorder::default());
    let mut store = Store::open(dir.path()).unwrap();
    let mut b = book();
    let kinds = || -> Vec<NoticeKind> { rec.got.lock().unwrap().iter().map(|n| n.kind).collect() };
    // Opened, stored, announced: paged.
    let opened = fire_event(&mut b, T0);
    store
        .save_ticket_events(std::slice::from_ref(&opened))
        .unwrap();
    run_dispatcher(&cfg, dir.path(), T0, &rec, vec![opened], 5).await;
    assert_eq!(kinds(), vec![NoticeKind::Page]);
    // Acknowledged and stored; the process dies before the dispatcher
    // records the follow-up (the event is lost with the channel).
    let ack = b.ack(1, "zhang", "到场", T0 + 60_000).unwrap();
    store.save_ticket_events(&ack).unwrap();
    run_dispatcher(&cfg, dir.path(), T0 + 70_000, &rec, Vec::new(), 5).await;
    assert_eq!(kinds(), vec![NoticeKind::Page, NoticeKind::Acknowledged]);
    // The same for the resolution.
    let res = b.resolve(1, "zhang", "复位", T0 + 120_000).unwrap();
    store.save_ticket_events(&res).unwrap();
    run_dispatcher(&cfg, dir.path(), T0 + 130_000, &rec, Vec::new(), 5).await;
    assert_eq!(
        kinds(),
        vec![
            NoticeKind::Page,
            NoticeKind::Acknowledged,
            NoticeKind::Resolved
        ]
    );
    let resolved = rec.got.lock().unwrap()[2].clone();
    assert!(
        resolved.message.title.starts_with("【已修复】#1"),
        "{}",
        resolved.message.title
    );
    assert_eq!(resolved.message.to[0].id, "zhang");
    // Closed meanwhile, restarted again: nothing is sent twice.
    let closed = b.close(1, "zhang", "", T0 + 180_000).unwrap();
    store.save_ticket_events(&closed).unwrap();
    run_dispatcher(&cfg, dir.path(), T0 + 190_000, &rec, Vec::new(), 5).await;
    assert_eq!(rec.calls.load(Ordering::SeqCst), 3);
    let log = store.alert_log(None, None, 10).unwrap();
    let states: Vec<(&str, AlertState)> = log
        .iter()
        .map(|r| (r.notice.kind.as_str(), r.state))
        .collect();
    assert_eq!(
        states,
        vec![
            ("resolved", AlertState::Sent),
            ("acknowledged", AlertState::Sent),
            ("page", AlertState::Sent)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn old_alerts_are_pruned_at_start_in_batches_then_once_an_hour() {
    const DAY: i64 = 86_400_000;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &channel_toml("rec", "webhook", "http://127.0.0.1:9/unused"),
    );
    assert_eq!(
        cfg.raw.alerts.as_ref().unwrap().keep.get(),
        Duration::from_secs(180 * 24 * 3600)
    );
    let store = Store::open(dir.path()).unwrap();
    let mut n = page_notice(dir.path(), &cfg);
    n.ticket = None;
    // More than one batch of notices sent 181 days ago.
    let old = T0 - 181 * DAY;
    let many: Vec<Notice> = (0..dispatch::PRUNE_BATCH + 100)
        .map(|i| Notice {
            key: format!("old/{i}"),
            ..n.clone()
        })
        .collect();
    store.record_notices(&many, old).unwrap();
    for r in store.alert_log(None, None, 10_000).unwrap() {
        store.alert_sent(r.id, old).unwrap();
    }
    // One sent 180 days minus 30 minutes ago: old enough at T0 + 30 min.
    let edge = T0 - 180 * DAY + 30 * 60_000;
    let e = Notice {
        key: "edge".into(),
        ..n.clone()
    };
    store.record_notices(&[e], edge).unwrap();
    store.alert_sent(alert_id_of(&store, "edge"), edge).unwrap();
    let count = || store.alert_log(None, None, 10_000).unwrap().len();
    assert_eq!(count(), dispatch::PRUNE_BATCH + 101);

    let rec = Arc::new(Recorder::default());
    let (stop, task) = {
        let start = tokio::time::Instant::now();
        let clock: Clock =
            Arc::new(move || T0 + i64::try_from(start.elapsed().as_millis()).unwrap());
        let (mut d, _) = dispatcher(&cfg, &dir.path().join("gateway.toml"), dir.path(), clock)
            .unwrap()
            .unwrap();
        d.channels
            .insert("rec".into(), Arc::new(RecChannel(Arc::clone(&rec))));
        let (_tx, rx) = mpsc::channel(8);
        let stop = CancellationToken::new();
        (stop.clone(), tokio::spawn(d.run(rx, stop)))
    };
    // At start, in two batches.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(), 1);
    // Old enough at T0 + 30 min, but the next pass is at T0 + 1 h.
    tokio::time::sleep(Duration::from_secs(45 * 60)).await;
    assert_eq!(count(), 1);
    tokio::time::sleep(Duration::from_secs(16 * 60)).await;
    assert_eq!(count(), 0);
    stop.cancel();
    task.await.unwrap();
    assert_eq!(rec.calls.load(Ordering::SeqCst), 0);
}

fn alert_id_of(store: &Store, key: &str) -> i64 {
    store
        .alert_log(None, None, 10_000)
        .unwrap()
        .into_iter()
        .find(|r| r.notice.key == key)
        .unwrap()
        .id
}

#[tokio::test(start_paused = true)]
async fn the_handover_digest_is_sent_once_a_day_across_restarts_and_caught_up_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(
        dir.path(),
        &channel_toml("rec", "webhook", "http://127.0.0.1:9/unused"),
    );
    cfg.raw.alerts.as_mut().unwrap().handover = true;
    let rec = Arc::new(Recorder::default());
    let mut store = Store::open(dir.path()).unwrap();
    let mut b = book();
    // A ticket opened at 07:00, before the 08:00 handover.
    let opened = fire_event(&mut b, T0 - 3 * 3_600_000);
    store
        .save_ticket_events(std::slice::from_ref(&opened))
        .unwrap();
    let handovers = || -> Vec<Notice> {
        rec.got
            .lock()
            .unwrap()
            .iter()
            .filter(|n| n.kind == NoticeKind::Handover)
            .cloned()
            .collect()
    };
    // T0 is 10:00 site time. Started at 07:30: sent at 08:00.
    let h = 3_600_000;
    run_dispatcher(&cfg, dir.path(), T0 - 5 * h / 2, &rec, Vec::new(), 3600).await;
    let got = handovers();
    assert_eq!(got.len(), 1, "{got:?}");
    let text = got[0].message.text();
    assert!(
        got[0]
            .message
            .title
            .starts_with("【交接班摘要】tower-a 2026-11-03"),
        "{text}"
    );
    assert!(text.contains("新开工单 1"), "{text}");
    assert!(text.contains("未关闭工单：1"), "{text}");
    assert!(text.contains("#1 1号消防主机"), "{text}");
    assert_eq!(got[0].key, "handover:2026-11-03:rec");
    assert!(got[0].at_ms >= T0 - 2 * h && got[0].at_ms < T0 - 2 * h + 20_000);
    // Restarted the same day: not again.
    run_dispatcher(&cfg, dir.path(), T0 + h, &rec, Vec::new(), 5).await;
    assert_eq!(handovers().len(), 1);
    // Down over the next 08:00, back at 11:00: caught up once.
    run_dispatcher(&cfg, dir.path(), T0 + 25 * h, &rec, Vec::new(), 5).await;
    run_dispatcher(&cfg, dir.path(), T0 + 26 * h, &rec, Vec::new(), 5).await;
    let got = handovers();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1].key, "handover:2026-11-04:rec");
}
