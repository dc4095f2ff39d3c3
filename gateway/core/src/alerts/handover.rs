//! The shift handover digest: once a day at `[alerts] handover_at` (site
//! time, default 08:00), one message per channel with the night's events
//! (tickets opened, resolved and closed, devices that went down, over the
//! 24 hours before the handover time), the tickets not closed, and what
//! falls due today.
//!
//! Pure: the time is passed in. The dispatcher asks [`due`] each turn with
//! the last day it sent (remembered in the store: the digest's notices are
//! recorded under the key `handover:<day>:<channel>`, so recording a day
//! twice is a no-op) and builds the message with [`message`].
//!
//! # When
//!
//! The slot of a day is its `handover_at` in the site's zone. At `now` the
//! latest slot at or before `now` is due when its day was not sent yet and
//! it is less than [`CATCH_UP_MS`] late: a gateway down at 08:00 and back at
//! 11:00 sends that morning's digest once, at 11:00; one back only the next
//! night sends nothing for the missed morning (the next digest comes at the
//! next slot). Never twice a day, whatever the restarts. With nothing sent
//! yet (a new installation) there is nothing to catch up: the first digest
//! is the first slot after the start.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta};
use chrono_tz::Tz;

use super::{DeviceInfo, Message, Recipient};
use crate::config::Language;
use crate::maintenance::local_to_ms;
use crate::oncall::local_text;
use crate::state::{DeviceState, Interval, UnixMs};
use crate::tickets::{Severity, Ticket, TicketState};

/// How late a missed digest may still be sent.
pub const CATCH_UP_MS: i64 = 12 * 3600 * 1000;
/// One day.
const DAY_MS: i64 = 24 * 3600 * 1000;
/// Lines of one list shown one by one; the rest are counted.
const LIST_LINES: usize = 15;

/// Parses `HH:MM` (24-hour).
pub fn parse_at(s: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M")
        .map_err(|_| format!("{s:?} is not a time of day; write e.g. \"08:00\""))
}

/// The instant of `day`'s slot (the earliest, should a zone repeat it).
pub fn slot_ms(tz: Tz, day: NaiveDate, at: NaiveTime) -> Option<UnixMs> {
    local_to_ms(tz, day.and_time(at)).or_else(|| {
        // A local time skipped by a clock change: the first minute after.
        (1..=180).find_map(|m| local_to_ms(tz, day.and_time(at) + TimeDelta::minutes(m)))
    })
}

/// The day whose digest is due at `now_ms`, if any (see the module doc).
/// With nothing sent yet (`last_sent` `None`: a new installation, or the
/// digest just turned on) only a slot at or after `started_ms`, when the
/// dispatcher started, is due: there was no gateway down at an earlier one.
pub fn due(
    tz: Tz,
    at: NaiveTime,
    now_ms: UnixMs,
    last_sent: Option<NaiveDate>,
    started_ms: UnixMs,
) -> Option<NaiveDate> {
    let today = DateTime::from_timestamp_millis(now_ms)?
        .with_timezone(&tz)
        .date_naive();
    let (day, slot) = [Some(today), today.pred_opt()]
        .into_iter()
        .flatten()
        .find_map(|d| slot_ms(tz, d, at).filter(|s| *s <= now_ms).map(|s| (d, s)))?;
    let fresh = match last_sent {
        Some(l) => l < day,
        None => slot >= started_ms,
    };
    (fresh && now_ms - slot < CATCH_UP_MS).then_some(day)
}

/// The next slot after `now_ms` (for the dispatcher's sleep).
pub fn next_slot_ms(tz: Tz, at: NaiveTime, now_ms: UnixMs) -> Option<UnixMs> {
    let today = DateTime::from_timestamp_millis(now_ms)?
        .with_timezone(&tz)
        .date_naive();
    [
        Some(today),
        today.succ_opt(),
        today.succ_opt().and_then(|d| d.succ_opt()),
    ]
    .into_iter()
    .flatten()
    .filter_map(|d| slot_ms(tz, d, at))
    .find(|s| *s > now_ms)
}

/// What the digest of one day is made from.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    /// Site id (in the title).
    pub site: &'a str,
    /// The day of the digest.
    pub day: NaiveDate,
    /// The site's zone.
    pub tz: Tz,
    /// Language.
    pub lang: Language,
    /// Start of the period reported on (the previous slot).
    pub from_ms: UnixMs,
    /// When it is made.
    pub now_ms: UnixMs,
    /// Every ticket not closed, or changed since `from_ms`.
    pub tickets: &'a [Ticket],
    /// Ledger intervals overlapping the period (the Down ones starting in
    /// it are listed).
    pub intervals: &'a [Interval],
    /// Names and locations of devices.
    pub devices: &'a BTreeMap<String, DeviceInfo>,
    /// Who gets it (on duty now).
    pub to: Vec<Recipient>,
}

/// The start of the period a digest of `day` reports on: 24 hours before
/// its slot (the previous digest's time, or the last 24 hours).
pub fn period_start(tz: Tz, day: NaiveDate, at: NaiveTime) -> Option<UnixMs> {
    slot_ms(tz, day, at).map(|s| s - DAY_MS)
}

/// The digest's message.
pub fn message(i: &Input<'_>) -> Message {
    let zh = i.lang == Language::Zh;
    let tr = |z: &str, e: &str| if zh { z.to_owned() } else { e.to_owned() };
    let name = |d: &str| {
        i.devices
            .get(d)
            .map_or_else(|| d.to_owned(), |x| x.name.clone())
    };
    let when = |ms: UnixMs| local_text(i.tz, ms);
    let in_period = |ms: UnixMs| ms >= i.from_ms && ms < i.now_ms;
    let sev = |t: &Ticket| match (zh, t.severity) {
        (true, Severity::Critical) => "紧急",
        (true, Severity::Ordinary) => "一般",
        (false, s) => s.as_str(),
    };
    let state = |t: &Ticket| match (zh, t.state) {
        (true, TicketState::Open) => "待接单",
        (true, TicketState::Acknowledged) => "处理中",
        (true, TicketState::Resolved) => "已修复",
        (true, TicketState::Closed) => "已关闭",
        (false, s) => s.as_str(),
    };
    let ticket_line = |t: &Ticket| {
        format!(
            "  #{} {} {}（{}）",
            t.id,
            name(&t.device),
            t.summary,
            sev(t)
        )
        .replace('（', if zh { "（" } else { " (" })
        .replace('）', if zh { "）" } else { ")" })
    };

    let opened: Vec<&Ticket> = i
        .tickets
        .iter()
        .filter(|t| in_period(t.cycle_start_ms()))
        .collect();
    let resolved: Vec<&Ticket> = i
        .tickets
        .iter()
        .filter(|t| t.resolved.as_ref().is_some_and(|s| in_period(s.at_ms)))
        .collect();
    let closed: Vec<&Ticket> = i
        .tickets
        .iter()
        .filter(|t| t.closed.as_ref().is_some_and(|s| in_period(s.at_ms)))
        .collect();
    let mut downs: Vec<&Interval> = i
        .intervals
        .iter()
        .filter(|iv| iv.state == DeviceState::Down && in_period(iv.from_ms))
        .collect();
    downs.sort_by_key(|iv| iv.from_ms);
    let mut open: Vec<&Ticket> = i
        .tickets
        .iter()
        .filter(|t| matches!(t.state, TicketState::Open | TicketState::Acknowledged))
        .collect();
    open.sort_by_key(|t| (t.severity != Severity::Critical, t.deadline_ms, t.id));
    let day_end = i
        .day
        .succ_opt()
        .and_then(|d| local_to_ms(i.tz, d.and_time(NaiveTime::MIN)))
        .unwrap_or(i.now_ms + DAY_MS);
    let due_today: Vec<&&Ticket> = open.iter().filter(|t| t.deadline_ms < day_end).collect();

    let mut lines = vec![if zh {
        format!("统计时段：{} 至 {}", when(i.from_ms), when(i.now_ms))
    } else {
        format!("Period: {} to {}", when(i.from_ms), when(i.now_ms))
    }];
    lines.push(if zh {
        format!(
            "夜间事件：新开工单 {}，已修复 {}，已关闭 {}，设备停机 {}",
            opened.len(),
            resolved.len(),
            closed.len(),
            downs.len()
        )
    } else {
        format!(
            "Overnight: {} tickets opened, {} resolved, {} closed, {} devices went down",
            opened.len(),
            resolved.len(),
            closed.len(),
            downs.len()
        )
    });
    list(
        &mut lines,
        zh,
        tr("新开工单：", "Opened:"),
        opened.iter().map(|t| ticket_line(t)).collect(),
    );
    list(
        &mut lines,
        zh,
        tr("已修复：", "Resolved:"),
        resolved.iter().map(|t| ticket_line(t)).collect(),
    );
    list(
        &mut lines,
        zh,
        tr("已关闭：", "Closed:"),
        closed.iter().map(|t| ticket_line(t)).collect(),
    );
    list(
        &mut lines,
        zh,
        tr("设备停机：", "Went down:"),
        downs
            .iter()
            .map(|iv| {
                format!(
                    "  {} {} {}",
                    when(iv.from_ms),
                    name(&iv.device),
                    iv.reason.as_deref().unwrap_or("")
                )
                .trim_end()
                .to_owned()
            })
            .collect(),
    );
    lines.push(if zh {
        format!("未关闭工单：{}", open.len())
    } else {
        format!("Open tickets: {}", open.len())
    });
    list(
        &mut lines,
        zh,
        String::new(),
        open.iter()
            .map(|t| {
                if zh {
                    format!(
                        "{} {}，时限 {}",
                        ticket_line(t),
                        state(t),
                        when(t.deadline_ms)
                    )
                } else {
                    format!(
                        "{} {}, due {}",
                        ticket_line(t),
                        state(t),
                        when(t.deadline_ms)
                    )
                }
            })
            .collect(),
    );
    lines.push(if zh {
        format!("今日到期：{}", due_today.len())
    } else {
        format!("Due today: {}", due_today.len())
    });
    list(
        &mut lines,
        zh,
        String::new(),
        due_today
            .iter()
            .map(|t| format!("{} {}", ticket_line(t), when(t.deadline_ms)))
            .collect(),
    );
    let names: Vec<String> = i.to.iter().map(|r| r.name.clone()).collect();
    lines.push(if zh {
        format!(
            "今日值班：{}",
            if names.is_empty() {
                "-".to_owned()
            } else {
                names.join(", ")
            }
        )
    } else {
        format!(
            "On duty: {}",
            if names.is_empty() {
                "-".to_owned()
            } else {
                names.join(", ")
            }
        )
    });
    Message {
        title: if zh {
            format!("【交接班摘要】{} {}", i.site, i.day.format("%Y-%m-%d"))
        } else {
            format!("[Shift handover] {} {}", i.site, i.day.format("%Y-%m-%d"))
        },
        lines,
        link: None,
        link_text: String::new(),
        to: i.to.clone(),
        urgent: false,
    }
}

/// Appends a list: its heading (when not empty), at most [`LIST_LINES`]
/// items, and how many more there are.
fn list(lines: &mut Vec<String>, zh: bool, head: String, items: Vec<String>) {
    if items.is_empty() {
        return;
    }
    if !head.is_empty() {
        lines.push(head);
    }
    let n = items.len();
    lines.extend(items.into_iter().take(LIST_LINES));
    if n > LIST_LINES {
        lines.push(if zh {
            format!("  …另有 {} 项", n - LIST_LINES)
        } else {
            format!("  … and {} more", n - LIST_LINES)
        });
    }
}

/// The notice key of `day`'s digest on `channel`.
pub fn key(day: NaiveDate, channel: &str) -> String {
    format!("handover:{}:{channel}", day.format("%Y-%m-%d"))
}

/// The day of a handover notice key.
pub fn day_of_key(key: &str) -> Option<NaiveDate> {
    let rest = key.strip_prefix("handover:")?;
    let (day, _) = rest.split_once(':')?;
    NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::tickets::Step;

    fn ms(tz: Tz, s: &str) -> UnixMs {
        let t = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
        local_to_ms(tz, t).unwrap()
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    const SH: Tz = chrono_tz::Asia::Shanghai;
    const AT: &str = "08:00";

    #[test]
    fn due_once_at_the_time_of_the_site_and_never_twice() {
        let at = parse_at(AT).unwrap();
        assert_eq!(
            due(SH, at, ms(SH, "2026-12-05 07:59"), Some(d("2026-12-04")), 0),
            None
        );
        assert_eq!(
            due(SH, at, ms(SH, "2026-12-05 08:00"), Some(d("2026-12-04")), 0),
            Some(d("2026-12-05"))
        );
        // Sent: not again that day, restarts or not.
        assert_eq!(
            due(SH, at, ms(SH, "2026-12-05 08:01"), Some(d("2026-12-05")), 0),
            None
        );
        assert_eq!(
            due(SH, at, ms(SH, "2026-12-05 23:59"), Some(d("2026-12-05")), 0),
            None
        );
        assert_eq!(
            due(SH, at, ms(SH, "2026-12-06 07:59"), Some(d("2026-12-05")), 0),
            None
        );
    }

    #[test]
    fn a_restart_before_the_time_waits_and_one_after_catches_up_once() {
        let at = parse_at(AT).unwrap();
        // Down over 08:00, back at 11:00: sent at 11:00.
        assert_eq!(
            due(SH, at, ms(SH, "2026-12-05 11:00"), Some(d("2026-12-04")), 0),
            Some(d("2026-12-05"))
        );
        // Back at 07:00 the next morning: yesterday's is 23 h late, skipped;
        // today's comes at 08:00.
        assert_eq!(
            due(SH, at, ms(SH, "2026-12-06 07:00"), Some(d("2026-12-04")), 0),
            None
        );
    }

    #[test]
    fn a_first_start_catches_nothing_up() {
        let at = parse_at(AT).unwrap();
        // Nothing sent yet: the first digest is the first slot after the start.
        let started = ms(SH, "2026-12-06 07:00");
        assert_eq!(due(SH, at, started, None, started), None);
        assert_eq!(
            due(SH, at, ms(SH, "2026-12-06 08:00"), None, started),
            Some(d("2026-12-06"))
        );
        let started = ms(SH, "2026-12-06 09:00");
        assert_eq!(due(SH, at, started, None, started), None);
        assert_eq!(due(SH, at, ms(SH, "2026-12-06 20:00"), None, started), None);
        assert_eq!(
            due(SH, at, ms(SH, "2026-12-07 08:00"), None, started),
            Some(d("2026-12-07"))
        );
    }

    #[test]
    fn the_day_is_the_sites_whatever_its_zone() {
        let at = parse_at(AT).unwrap();
        // 08:00 in Shanghai is 00:00 UTC; 08:00 in Urumqi (UTC+6) two hours later.
        let utc_midnight = ms(SH, "2026-12-05 08:00");
        let urumqi: Tz = chrono_tz::Asia::Urumqi;
        assert_eq!(due(SH, at, utc_midnight, None, 0), Some(d("2026-12-05")));
        assert_eq!(due(urumqi, at, utc_midnight, None, 0), None);
        assert_eq!(
            due(urumqi, at, utc_midnight + 2 * 3600 * 1000, None, 0),
            Some(d("2026-12-05"))
        );
        // A zone west of UTC: the site's day, not UTC's.
        let bogota: Tz = chrono_tz::America::Bogota;
        assert_eq!(
            due(
                bogota,
                at,
                ms(bogota, "2026-12-05 08:30"),
                Some(d("2026-12-04")),
                0
            ),
            Some(d("2026-12-05"))
        );
        assert_eq!(
            next_slot_ms(SH, at, ms(SH, "2026-12-05 08:00")),
            Some(ms(SH, "2026-12-06 08:00"))
        );
    }

    #[test]
    fn across_a_month_and_a_year_boundary() {
        let at = parse_at(AT).unwrap();
        assert_eq!(
            due(SH, at, ms(SH, "2026-12-01 08:05"), Some(d("2026-11-30")), 0),
            Some(d("2026-12-01"))
        );
        assert_eq!(
            due(SH, at, ms(SH, "2027-01-01 08:00"), Some(d("2026-12-31")), 0),
            Some(d("2027-01-01"))
        );
        assert_eq!(
            period_start(SH, d("2026-12-01"), at),
            Some(ms(SH, "2026-11-30 08:00"))
        );
        assert_eq!(
            next_slot_ms(SH, at, ms(SH, "2026-11-30 09:00")),
            Some(ms(SH, "2026-12-01 08:00"))
        );
    }

    #[test]
    fn the_key_carries_the_day() {
        let k = key(d("2026-12-05"), "hook");
        assert_eq!(k, "handover:2026-12-05:hook");
        assert_eq!(day_of_key(&k), Some(d("2026-12-05")));
        assert_eq!(day_of_key("page:1:hook"), None);
        assert!(parse_at("8am").is_err());
    }

    fn ticket(
        id: u64,
        device: &str,
        opened: UnixMs,
        deadline: UnixMs,
        state: TicketState,
    ) -> Ticket {
        let mut t: Ticket = serde_json::from_value(serde_json::json!({
            "id": id, "device": device, "class": "pump", "kind": "availability",
            "severity": "ordinary", "state": "open", "summary": "停机",
            "opened_ms": opened, "deadline_ms": deadline, "reworks": 0, "history": []
        }))
        .unwrap();
        t.state = state;
        t
    }

    #[test]
    fn the_message_lists_the_night_the_open_tickets_and_what_is_due_today() {
        let at = parse_at(AT).unwrap();
        let day = d("2026-12-05");
        let from = period_start(SH, day, at).unwrap();
        let now = ms(SH, "2026-12-05 08:00");
        let mut closed = ticket(
            3,
            "pump-2",
            ms(SH, "2026-12-03 10:00"),
            ms(SH, "2026-12-04 10:00"),
            TicketState::Closed,
        );
        closed.closed = Some(Step {
            by: "张工".into(),
            at_ms: ms(SH, "2026-12-04 22:00"),
            note: String::new(),
        });
        let tickets = vec![
            ticket(
                7,
                "pump-1",
                ms(SH, "2026-12-05 02:00"),
                ms(SH, "2026-12-05 14:00"),
                TicketState::Open,
            ),
            ticket(
                5,
                "lift-1",
                ms(SH, "2026-12-01 02:00"),
                ms(SH, "2026-12-08 02:00"),
                TicketState::Acknowledged,
            ),
            closed,
        ];
        let intervals = vec![Interval {
            device: "pump-1".into(),
            state: DeviceState::Down,
            reason: Some("comms".into()),
            from_ms: ms(SH, "2026-12-05 01:58"),
            to_ms: now,
        }];
        let mut devices = BTreeMap::new();
        devices.insert(
            "pump-1".to_owned(),
            DeviceInfo {
                name: "1号生活水泵".into(),
                location: None,
            },
        );
        let input = Input {
            site: "demo",
            day,
            tz: SH,
            lang: Language::Zh,
            from_ms: from,
            now_ms: now,
            tickets: &tickets,
            intervals: &intervals,
            devices: &devices,
            to: vec![],
        };
        let m = message(&input);
        let text = m.text();
        assert_eq!(m.title, "【交接班摘要】demo 2026-12-05");
        assert!(
            text.contains("新开工单 1，已修复 0，已关闭 1，设备停机 1"),
            "{text}"
        );
        assert!(text.contains("#7 1号生活水泵 停机（一般）"), "{text}");
        assert!(text.contains("未关闭工单：2"), "{text}");
        assert!(text.contains("今日到期：1"), "{text}");
        assert!(
            text.contains("2026-12-05 01:58 1号生活水泵 comms"),
            "{text}"
        );
        let en = message(&Input {
            lang: Language::En,
            ..input
        });
        let text = en.text();
        assert_eq!(en.title, "[Shift handover] demo 2026-12-05");
        assert!(
            text.contains("1 tickets opened, 0 resolved, 1 closed, 1 devices went down"),
            "{text}"
        );
        assert!(text.contains("Due today: 1"), "{text}");
    }
}
