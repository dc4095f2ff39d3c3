use chrono_tz::Asia::Shanghai;

use super::*;
use crate::config::TicketsConfig;
use crate::oncall::tests::{alerts, sh};
use crate::state::HardAlarm;
use crate::tickets::{DeviceRef, TicketBook};

const MIN: i64 = 60_000;

fn policy(extra: &str) -> Policy {
    policy_of(alerts(extra))
}

fn policy_of(cfg: AlertsConfig) -> Policy {
    let errs = cfg.check("Asia/Shanghai", false);
    assert!(errs.is_empty(), "{errs:?}");
    Policy::new(
        Settings::new(&cfg, "tower-a", "gw-1").unwrap(),
        Roster::from_config(&cfg, Shanghai).unwrap(),
    )
}

fn info() -> DeviceInfo {
    DeviceInfo {
        name: "1号消防主机".into(),
        location: Some("B1 消防控制室".into()),
    }
}

fn book() -> TicketBook {
    TicketBook::new(&TicketsConfig::default(), Shanghai, Vec::new(), 1)
}

fn fire(b: &mut TicketBook, device: &'static str, at: UnixMs) -> TicketEvent {
    let d = DeviceRef {
        id: device,
        class: DeviceClass::FireAlarm,
    };
    b.on_alarm(
        d,
        &HardAlarm {
            device: device.into(),
            point: "fire_alarm".into(),
            active: true,
            at_ms: at,
        },
    )
    .remove(0)
}

fn pump_below(b: &mut TicketBook, at: UnixMs) -> TicketEvent {
    b.on_availability_below(
        DeviceRef {
            id: "pump-1",
            class: DeviceClass::Pump,
        },
        0.962,
        98.0,
        None,
        at,
    )
    .remove(0)
}

fn people(n: &Notice) -> Vec<&str> {
    n.message.to.iter().map(|r| r.id.as_str()).collect()
}

#[test]
fn a_critical_fault_pages_tier_one_at_once_with_every_field_in_chinese() {
    let mut p = policy("");
    let mut b = book();
    let t0 = sh("2026-11-03 02:30"); // night: critical pages anyway
    let ev = fire(&mut b, "fire-1", t0);
    let out = p.on_ticket(&ev, info(), t0);
    assert_eq!(out.len(), 1);
    let n = &out[0];
    assert_eq!(
        (n.kind, n.tier, n.channel.as_str()),
        (NoticeKind::Page, 1, "hook")
    );
    assert_eq!(people(n), vec!["zhang"]); // 11-02 09:00 → 11-03 09:00 is zhang's
    let text = n.message.text();
    for want in [
        "【紧急告警】1号消防主机",
        "设备：1号消防主机 (fire-1)",
        "类别：消防报警",
        "位置：B1 消防控制室",
        "故障：",
        "时间：2026-11-03 02:30",
        "工单：#1 (紧急)",
        "时限：2026-11-03 04:30",
        "值班：张工",
        "查看工单: http://bms.local:8080/tickets/tower-a/gw-1/1",
    ] {
        assert!(text.contains(want), "{want:?} missing in\n{text}");
    }
    assert!(n.message.urgent);
}

#[test]
fn english_is_selectable() {
    let mut cfg = alerts("");
    cfg.language = Language::En;
    let mut p = Policy::new(
        Settings::new(&cfg, "s", "g").unwrap(),
        Roster::from_config(&cfg, Shanghai).unwrap(),
    );
    let mut b = book();
    let t0 = sh("2026-11-03 10:00");
    let out = p.on_ticket(&fire(&mut b, "fire-1", t0), info(), t0);
    let text = out[0].message.text();
    assert!(text.starts_with("[CRITICAL] "), "{text}");
    assert!(
        text.contains("Class: Fire alarm") && text.contains("Deadline: 2026-11-03 12:00"),
        "{text}"
    );
}

#[test]
fn not_acknowledged_escalates_tier_by_tier_until_the_last() {
    let mut p = policy("");
    let mut b = book();
    let t0 = sh("2026-11-03 10:00"); // li's day
    let ev = fire(&mut b, "fire-1", t0);
    assert_eq!(people(&p.on_ticket(&ev, info(), t0)[0]), vec!["li"]);
    assert!(p.tick(t0 + 10 * MIN - 1).is_empty());
    assert_eq!(p.next_due(), Some(t0 + 10 * MIN));
    let e = p.tick(t0 + 10 * MIN);
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].kind, e[0].tier), (NoticeKind::Escalation, 2));
    assert_eq!(people(&e[0]), vec!["zhao"]);
    assert!(
        e[0].message.title.starts_with("【升级·第2级 主管】"),
        "{}",
        e[0].message.title
    );
    let e = p.tick(t0 + 20 * MIN);
    assert_eq!((e[0].tier, people(&e[0])), (3, vec!["boss"]));
    // The last tier: nothing more.
    assert!(p.tick(t0 + 60 * MIN).is_empty());
    assert_eq!(p.next_due(), None);
}

#[test]
fn acknowledging_stops_escalation_and_sends_a_follow_up_to_everyone_paged() {
    let mut p = policy("");
    let mut b = book();
    let t0 = sh("2026-11-03 10:00");
    let ev = fire(&mut b, "fire-1", t0);
    p.on_ticket(&ev, info(), t0);
    p.tick(t0 + 10 * MIN); // zhao paged too
    let ack = b.ack(1, "li", "马上到", t0 + 12 * MIN).unwrap().remove(0);
    let out = p.on_ticket(&ack, info(), t0 + 12 * MIN);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, NoticeKind::Acknowledged);
    assert_eq!(people(&out[0]), vec!["li", "zhao"]);
    assert!(
        out[0].message.title.starts_with("【已接单】#1"),
        "{}",
        out[0].message.title
    );
    assert!(out[0].message.text().contains("说明：马上到"));
    assert!(p.tick(t0 + 60 * MIN).is_empty());
    let res = b.resolve(1, "li", "复位", t0 + 30 * MIN).unwrap().remove(0);
    let out = p.on_ticket(&res, info(), t0 + 30 * MIN);
    assert_eq!(out[0].kind, NoticeKind::Resolved);
    assert!(out[0].message.title.starts_with("【已修复】"));
}

#[test]
fn ordinary_faults_wait_for_working_hours_and_page_whoever_is_on_duty_then() {
    let mut p = policy("");
    let mut b = book();
    // Tuesday 20:00, after hours: deferred to Wednesday 08:00.
    let t0 = sh("2026-11-03 20:00");
    let ev = pump_below(&mut b, t0);
    assert!(p.on_ticket(&ev, info(), t0).is_empty());
    assert_eq!(p.next_due(), Some(sh("2026-11-04 08:00")));
    assert!(p.tick(sh("2026-11-04 07:59")).is_empty());
    let out = p.tick(sh("2026-11-04 08:00"));
    assert_eq!(out.len(), 1);
    // At 08:00 on Wednesday li is still on duty (handover at 09:00).
    assert_eq!(people(&out[0]), vec!["li"]);
    assert_eq!(out[0].kind, NoticeKind::Page);
    // Friday evening → Monday morning.
    let mut p = policy("");
    let t1 = sh("2026-11-06 18:30");
    let ev = pump_below(&mut book(), t1);
    assert!(p.on_ticket(&ev, info(), t1).is_empty());
    assert_eq!(p.next_due(), Some(sh("2026-11-09 08:00")));
}

#[test]
fn a_deferred_ticket_acknowledged_before_morning_is_never_paged() {
    let mut p = policy("");
    let mut b = book();
    let t0 = sh("2026-11-03 20:00");
    p.on_ticket(&pump_below(&mut b, t0), info(), t0);
    let ack = b.ack(1, "wang", "", t0 + MIN).unwrap().remove(0);
    assert!(p.on_ticket(&ack, info(), t0 + MIN).is_empty());
    assert!(p.tick(sh("2026-11-04 08:00")).is_empty());
}

#[test]
fn a_ticket_for_the_same_fault_within_the_dedupe_window_is_not_paged_again() {
    let mut p = policy("");
    let mut b = book();
    let t0 = sh("2026-11-03 10:00");
    assert_eq!(
        p.on_ticket(&fire(&mut b, "fire-1", t0), info(), t0).len(),
        1
    );
    let res = b.resolve(1, "li", "", t0 + MIN).unwrap().remove(0);
    p.on_ticket(&res, info(), t0 + MIN);
    // Reopened 2 minutes later (rework): same device and kind.
    let re = fire(&mut b, "fire-1", t0 + 3 * MIN);
    assert_eq!(re.kind, TicketEventKind::Reopened);
    assert!(p.on_ticket(&re, info(), t0 + 3 * MIN).is_empty());
    // ...but it still escalates if nobody takes it.
    let e = p.tick(t0 + 13 * MIN);
    assert_eq!(e[0].tier, 2);
}

#[test]
fn a_storm_of_forty_faults_becomes_a_digest_within_the_rate_limit() {
    let mut p = policy("");
    let mut b = book();
    let t0 = sh("2026-11-03 10:00");
    let names: Vec<&'static str> = (0..40)
        .map(|i| &*Box::leak(format!("fire-{i}").into_boxed_str()))
        .collect();
    let mut recorded = Vec::new();
    for d in &names {
        recorded.extend(p.on_ticket(&fire(&mut b, d, t0), info(), t0));
    }
    assert_eq!(recorded.len(), 40, "every page is recorded");
    let sent_now: Vec<&Notice> = recorded.iter().filter(|n| !n.held).collect();
    assert_eq!(sent_now.len(), 5, "digest_after = 5");
    let mut out = Vec::new();
    let mut t = t0;
    while t < t0 + 5 * MIN {
        t += 1000;
        out.extend(p.tick(t));
    }
    assert_eq!(out.len(), 1);
    let d = &out[0];
    assert_eq!(d.kind, NoticeKind::Digest);
    assert_eq!(d.at_ms, t0 + 30_000);
    assert_eq!(d.covers.len(), 35);
    assert!(d.message.title.contains("35 条告警"), "{}", d.message.title);
    assert_eq!(d.message.lines.len(), 31); // 30 listed + "另有 5 条"
    assert!(d.message.urgent);
    // Within the channel's rate: 6 messages in the first minute ≤ 20.
    assert!(sent_now.len() + out.len() <= 20);
}

#[test]
fn a_digest_waits_for_room_in_the_rate_limit() {
    let mut cfg = alerts("");
    cfg.digest_after = 50;
    let mut p = policy_of(cfg);
    let mut b = book();
    let t0 = sh("2026-11-03 10:00");
    let mut recorded = Vec::new();
    for i in 0..25 {
        let d: &'static str = Box::leak(format!("fire-{i}").into_boxed_str());
        recorded.extend(p.on_ticket(&fire(&mut b, d, t0), info(), t0));
    }
    // max_per_minute = 20: 20 go out, 5 are held.
    assert_eq!(recorded.iter().filter(|n| !n.held).count(), 20);
    assert!(
        p.tick(t0 + 30_000).is_empty(),
        "no room before the minute is over"
    );
    let out = p.tick(t0 + 60_000);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].covers.len(), 5);
}

#[test]
fn restore_resumes_escalation_and_never_repeats_a_page() {
    let mut p = policy("");
    let mut b = book();
    let t0 = sh("2026-11-03 10:00");
    let ev = fire(&mut b, "fire-1", t0);
    let first = p.on_ticket(&ev, info(), t0);
    // Restart at t0 + 4 min: the recorded page is known.
    let mut q = policy("");
    let rec: Vec<Recorded> = first
        .iter()
        .map(|n| Recorded {
            notice: n.clone(),
            held: false,
        })
        .collect();
    let due = q.restore(vec![(ev.ticket.clone(), info())], &rec, t0 + 4 * MIN);
    assert!(due.is_empty());
    assert_eq!(q.next_due(), Some(t0 + 10 * MIN));
    let e = q.tick(t0 + 10 * MIN);
    assert_eq!((e[0].tier, people(&e[0])), (2, vec!["zhao"]));
    // Down across the escalation time: it is sent at restart.
    let mut r = policy("");
    let e = r.restore(vec![(ev.ticket.clone(), info())], &rec, t0 + 15 * MIN);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].tier, 2);
    // Never paged before the restart (crash between store and record): paged now.
    let mut s = policy("");
    let e = s.restore(vec![(ev.ticket.clone(), info())], &[], t0 + MIN);
    assert_eq!((e[0].tier, e[0].key.clone()), (1, first[0].key.clone()));
}

#[test]
fn working_hours_parse_and_reject_an_inverted_span() {
    assert!(WorkingHours::parse("Mon,Tue 18:00-08:00").is_err());
    let h = WorkingHours::parse("Sat 09:00-12:00").unwrap();
    assert_eq!(h.check(Shanghai, sh("2026-11-07 10:00")), Ok(()));
    assert_eq!(
        h.check(Shanghai, sh("2026-11-07 12:00")),
        Err(sh("2026-11-14 09:00"))
    );
}

#[test]
fn a_deferral_survives_a_restart() {
    let mut b = book();
    let t0 = sh("2026-11-03 20:00");
    let ev = pump_below(&mut b, t0);
    let mut p = policy("");
    assert!(p.on_ticket(&ev, info(), t0).is_empty());
    // Restarted at 22:00: nothing recorded, still night → still waiting.
    let mut q = policy("");
    assert!(
        q.restore(
            vec![(ev.ticket.clone(), info())],
            &[],
            sh("2026-11-03 22:00")
        )
        .is_empty()
    );
    assert_eq!(q.next_due(), Some(sh("2026-11-04 08:00")));
    // Restarted at 08:30 after a night down: paged at once.
    let mut r = policy("");
    let out = r.restore(
        vec![(ev.ticket.clone(), info())],
        &[],
        sh("2026-11-04 08:30"),
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, NoticeKind::Page);
}

#[test]
fn held_notices_go_back_into_their_digest_after_a_restart() {
    let mut p = policy("");
    let mut b = book();
    let t0 = sh("2026-11-03 10:00");
    let mut rec = Vec::new();
    for i in 0..8 {
        let d: &'static str = Box::leak(format!("fire-{i}").into_boxed_str());
        rec.extend(p.on_ticket(&fire(&mut b, d, t0), info(), t0));
    }
    assert_eq!(rec.iter().filter(|n| n.held).count(), 3);
    let recorded: Vec<Recorded> = rec
        .iter()
        .map(|n| Recorded {
            notice: n.clone(),
            held: n.held,
        })
        .collect();
    let active: Vec<(Ticket, DeviceInfo)> = b.tickets().map(|t| (t.clone(), info())).collect();
    let mut q = policy("");
    assert!(q.restore(active, &recorded, t0 + 10_000).is_empty());
    let out = q.tick(t0 + 30_000);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].covers.len(), 3);
}

#[test]
fn an_acknowledgement_whose_follow_up_was_not_recorded_is_followed_up_at_restart() {
    let mut p = policy("");
    let mut b = book();
    let t0 = sh("2026-11-03 10:00");
    let ev = fire(&mut b, "fire-1", t0);
    let pages = p.on_ticket(&ev, info(), t0);
    let ack = b.ack(1, "li", "", t0 + MIN).unwrap().remove(0);
    let rec: Vec<Recorded> = pages
        .iter()
        .map(|n| Recorded {
            notice: n.clone(),
            held: false,
        })
        .collect();
    let mut q = policy("");
    let out = q.restore(vec![(ack.ticket.clone(), info())], &rec, t0 + 2 * MIN);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, NoticeKind::Acknowledged);
    // The same key the live path uses: recording both is one notice.
    let live = p.on_ticket(&ack, info(), t0 + MIN);
    assert_eq!(live[0].key, out[0].key);
    // Recorded already: nothing at the next restart.
    let mut rec2 = rec.clone();
    rec2.push(Recorded {
        notice: live[0].clone(),
        held: false,
    });
    let mut r = policy("");
    assert!(
        r.restore(vec![(ack.ticket.clone(), info())], &rec2, t0 + 3 * MIN)
            .is_empty()
    );
}

fn recorded(notices: &[Notice]) -> Vec<Recorded> {
    notices
        .iter()
        .map(|n| Recorded {
            notice: n.clone(),
            held: n.held,
        })
        .collect()
}

#[test]
fn a_resolution_whose_follow_up_was_not_recorded_is_followed_up_at_restart() {
    let mut p = policy("");
    let mut b = book();
    let t0 = sh("2026-11-03 10:00");
    let ev = fire(&mut b, "fire-1", t0);
    let mut rec = recorded(&p.on_ticket(&ev, info(), t0));
    let ack = b.ack(1, "li", "", t0 + MIN).unwrap().remove(0);
    rec.extend(recorded(&p.on_ticket(&ack, info(), t0 + MIN)));
    // Resolved and stored; the crash comes before the follow-up is recorded.
    let res = b.resolve(1, "li", "复位", t0 + 5 * MIN).unwrap().remove(0);
    assert_eq!(res.ticket.state, TicketState::Resolved);
    let mut q = policy("");
    let out = q.restore(vec![(res.ticket.clone(), info())], &rec, t0 + 6 * MIN);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].kind, NoticeKind::Resolved);
    assert_eq!(people(&out[0]), vec!["li"]);
    assert!(out[0].message.title.starts_with("【已修复】#1"));
    assert!(out[0].message.text().contains("说明：复位"));
    // The same key the live path uses: recording both is one notice.
    let live = p.on_ticket(&res, info(), t0 + 5 * MIN);
    assert_eq!(live[0].key, out[0].key);
    // Recorded already: nothing at the next restart, nor once it is closed.
    rec.extend(recorded(&live));
    let mut r = policy("");
    assert!(
        r.restore(vec![(res.ticket.clone(), info())], &rec, t0 + 7 * MIN)
            .is_empty()
    );
    let closed = b.close(1, "li", "", t0 + 8 * MIN).unwrap().remove(0);
    let mut s = policy("");
    assert!(
        s.restore(vec![(closed.ticket.clone(), info())], &rec, t0 + 9 * MIN)
            .is_empty()
    );
    // A resolved ticket is not tracked: nothing escalates.
    assert_eq!(s.next_due(), None);
}

#[test]
fn every_step_lost_in_a_crash_is_followed_up_once_in_order_even_after_closing() {
    let mut p = policy("");
    let mut b = book();
    let t0 = sh("2026-11-03 10:00");
    let rec = recorded(&p.on_ticket(&fire(&mut b, "fire-1", t0), info(), t0));
    // Down meanwhile: acknowledged, resolved and closed from the CLI.
    b.ack(1, "li", "", t0 + MIN).unwrap();
    b.resolve(1, "li", "", t0 + 2 * MIN).unwrap();
    let closed = b.close(1, "li", "", t0 + 3 * MIN).unwrap().remove(0);
    let mut q = policy("");
    let out = q.restore(vec![(closed.ticket.clone(), info())], &rec, t0 + 4 * MIN);
    let kinds: Vec<NoticeKind> = out.iter().map(|n| n.kind).collect();
    assert_eq!(kinds, vec![NoticeKind::Acknowledged, NoticeKind::Resolved]);
    // follow_ups = false: none.
    let mut cfg = alerts("");
    cfg.follow_ups = false;
    let mut r = policy_of(cfg);
    assert!(
        r.restore(vec![(closed.ticket.clone(), info())], &rec, t0 + 4 * MIN)
            .is_empty()
    );
}

#[test]
fn a_resolution_lost_before_a_reopening_is_followed_up_for_its_own_cycle() {
    let mut p = policy("");
    let mut b = book();
    let t0 = sh("2026-11-03 10:00");
    let rec = recorded(&p.on_ticket(&fire(&mut b, "fire-1", t0), info(), t0));
    let res = b.resolve(1, "li", "", t0 + 20 * MIN).unwrap().remove(0);
    // Reopened (rework) before the dispatcher came back.
    let re = fire(&mut b, "fire-1", t0 + 40 * MIN);
    assert_eq!(re.kind, TicketEventKind::Reopened);
    let mut q = policy("");
    let out = q.restore(vec![(re.ticket.clone(), info())], &rec, t0 + 41 * MIN);
    let live = p.on_ticket(&res, info(), t0 + 20 * MIN);
    let kinds: Vec<(NoticeKind, &str)> = out.iter().map(|n| (n.kind, n.key.as_str())).collect();
    assert_eq!(
        kinds,
        vec![
            (NoticeKind::Resolved, live[0].key.as_str()),
            // The new cycle was never paged (30 min after the last page).
            (NoticeKind::Page, out[1].key.as_str()),
        ]
    );
    assert!(out[1].key.starts_with(&format!("t1/c{}/", t0 + 40 * MIN)));
}

#[test]
fn a_duplicate_the_dedupe_window_kept_quiet_is_not_paged_at_restart() {
    let mut p = policy("");
    let mut b = book();
    let t0 = sh("2026-11-03 10:00");
    let mut rec = recorded(&p.on_ticket(&fire(&mut b, "fire-1", t0), info(), t0));
    let res = b.resolve(1, "li", "", t0 + MIN).unwrap().remove(0);
    rec.extend(recorded(&p.on_ticket(&res, info(), t0 + MIN)));
    let re = fire(&mut b, "fire-1", t0 + 3 * MIN);
    assert!(p.on_ticket(&re, info(), t0 + 3 * MIN).is_empty());
    // Restarted: still quiet, and it escalates when the live path would.
    let mut q = policy("");
    assert!(
        q.restore(vec![(re.ticket.clone(), info())], &rec, t0 + 4 * MIN)
            .is_empty()
    );
    assert_eq!(q.next_due(), p.next_due());
    let e = q.tick(t0 + 13 * MIN);
    assert_eq!((e.len(), e[0].tier), (1, 2));
    assert_eq!(e[0].key, p.tick(t0 + 13 * MIN)[0].key);
}
