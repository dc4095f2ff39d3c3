use chrono_tz::Asia::Shanghai;

use super::*;
use crate::config::load::parse_config;

/// A local time in Shanghai as Unix ms.
pub(crate) fn sh(s: &str) -> UnixMs {
    parse_local(s, Shanghai).unwrap()
}

/// An `[alerts]` section with three people in tier 1, a supervisor and a
/// manager, handing over daily at 09:00 from Monday 2026-11-02, plus `extra`.
pub(crate) fn alerts(extra: &str) -> AlertsConfig {
    let text = format!(
        r#"
site = "s"
gateway = "g"
[alerts]
dashboard_url = "http://bms.local:8080/tickets/{{site}}/{{gateway}}/{{id}}"
[[alerts.channel]]
id = "hook"
kind = "webhook"
url = "http://127.0.0.1:9/hook"
[alerts.critical]
channels = ["hook"]
ack_within = "10m"
outside_hours = "page"
[alerts.ordinary]
channels = ["hook"]
ack_within = "1h"
outside_hours = "defer"
[[alerts.person]]
id = "zhang"
name = "张工"
mobile = "13800000001"
email = "zhang@example.com"
[[alerts.person]]
id = "li"
name = "李工"
[[alerts.person]]
id = "wang"
name = "王工"
[[alerts.person]]
id = "zhao"
name = "赵主管"
[[alerts.person]]
id = "boss"
name = "钱经理"
[alerts.rotation]
every = "day"
handover = "09:00"
start = "2026-11-02"
[[alerts.rotation.tier]]
name = "值班工程师"
people = ["zhang", "li", "wang"]
[[alerts.rotation.tier]]
name = "主管"
people = ["zhao"]
[[alerts.rotation.tier]]
name = "经理"
people = ["boss"]
{extra}
"#
    );
    parse_config("t.toml", &text, &|_| None)
        .unwrap()
        .alerts
        .unwrap()
}

fn roster(extra: &str) -> Roster {
    let cfg = alerts(extra);
    let errs = cfg.check("Asia/Shanghai", false);
    assert!(errs.is_empty(), "{errs:?}");
    Roster::from_config(&cfg, Shanghai).unwrap()
}

fn who(r: &Roster, tier: usize, at: &str) -> Option<String> {
    r.on_call(tier, sh(at)).map(|d| d.person)
}

#[test]
fn daily_rotation_hands_over_at_the_handover_time_not_at_midnight() {
    let r = roster("");
    assert_eq!(who(&r, 0, "2026-11-02 09:00").as_deref(), Some("zhang"));
    // Across midnight: the night belongs to the previous day's person.
    assert_eq!(who(&r, 0, "2026-11-02 23:59").as_deref(), Some("zhang"));
    assert_eq!(who(&r, 0, "2026-11-03 00:01").as_deref(), Some("zhang"));
    assert_eq!(who(&r, 0, "2026-11-03 08:59").as_deref(), Some("zhang"));
    assert_eq!(who(&r, 0, "2026-11-03 09:00").as_deref(), Some("li"));
    assert_eq!(who(&r, 0, "2026-11-04 09:00").as_deref(), Some("wang"));
    assert_eq!(who(&r, 0, "2026-11-05 09:00").as_deref(), Some("zhang"));
    // Before the start, counted backwards in the same order.
    assert_eq!(who(&r, 0, "2026-11-02 08:59").as_deref(), Some("wang"));
    assert_eq!(who(&r, 1, "2026-11-02 08:59").as_deref(), Some("zhao"));
}

#[test]
fn a_handover_at_midnight_changes_the_person_at_midnight() {
    let r = roster("").clone();
    let mut cfg = alerts("");
    cfg.rotation.handover = crate::config::ClockTime(NaiveTime::MIN);
    let m = Roster::from_config(&cfg, Shanghai).unwrap();
    assert_eq!(who(&m, 0, "2026-11-02 23:59").as_deref(), Some("zhang"));
    assert_eq!(who(&m, 0, "2026-11-03 00:00").as_deref(), Some("li"));
    assert_ne!(
        who(&r, 0, "2026-11-03 00:00"),
        who(&m, 0, "2026-11-03 00:00")
    );
}

#[test]
fn weekly_rotation_hands_over_every_seventh_day() {
    let mut cfg = alerts("");
    cfg.rotation.every = Every::Week;
    let r = Roster::from_config(&cfg, Shanghai).unwrap();
    assert_eq!(who(&r, 0, "2026-11-02 09:00").as_deref(), Some("zhang"));
    assert_eq!(who(&r, 0, "2026-11-09 08:59").as_deref(), Some("zhang"));
    assert_eq!(who(&r, 0, "2026-11-09 09:00").as_deref(), Some("li"));
    assert_eq!(who(&r, 0, "2026-11-16 09:00").as_deref(), Some("wang"));
}

#[test]
fn a_dated_override_replaces_the_rotation_for_its_span_only() {
    let r = roster(
        r#"
[[alerts.override]]
tier = 1
person = "wang"
from = "2026-11-03 18:00"
to = "2026-11-04 09:00"
note = "换班"
"#,
    );
    assert_eq!(who(&r, 0, "2026-11-03 17:59").as_deref(), Some("li"));
    let d = r.on_call(0, sh("2026-11-03 18:00")).unwrap();
    assert_eq!(d.person, "wang");
    assert_eq!(d.source, Source::Override("换班".into()));
    assert_eq!(who(&r, 0, "2026-11-04 08:59").as_deref(), Some("wang"));
    assert_eq!(who(&r, 0, "2026-11-04 09:00").as_deref(), Some("wang"));
    assert_eq!(who(&r, 0, "2026-11-05 09:00").as_deref(), Some("zhang"));
    // Other tiers are untouched.
    assert_eq!(who(&r, 1, "2026-11-03 20:00").as_deref(), Some("zhao"));
}

#[test]
fn shifts_are_cut_at_handovers_and_override_edges() {
    let r = roster(
        r#"
[[alerts.override]]
tier = 1
person = "wang"
from = "2026-11-03 18:00"
to = "2026-11-04 09:00"
"#,
    );
    let s = r.shifts(0, sh("2026-11-03 00:00"), sh("2026-11-05 00:00"));
    let got: Vec<(String, String)> = s
        .iter()
        .map(|s| {
            (
                local_text(Shanghai, s.from_ms),
                s.duty.clone().unwrap().person,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("2026-11-03 00:00".into(), "zhang".into()),
            ("2026-11-03 09:00".into(), "li".into()),
            ("2026-11-03 18:00".into(), "wang".into()),
            // Same person, now by rotation: a shift of its own.
            ("2026-11-04 09:00".into(), "wang".into()),
        ]
    );
    assert_eq!(s.last().unwrap().to_ms, sh("2026-11-05 00:00"));
}

#[test]
fn a_person_away_without_cover_is_a_coverage_gap_error() {
    let cfg = alerts(
        r#"
[[alerts.away]]
person = "li"
from = "2026-11-03 00:00"
to = "2026-11-04 00:00"
note = "年假"
"#,
    );
    let errs = cfg.check("Asia/Shanghai", false);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].path, "alerts.away[0]");
    assert!(
        errs[0].message.contains("gap in coverage")
            && errs[0].message.contains("2026-11-03 09:00")
            && errs[0].message.contains("2026-11-04 00:00")
            && errs[0].message.contains("tier = 1"),
        "{}",
        errs[0].message
    );
    // Covered by an override: no error.
    let cfg = alerts(
        r#"
[[alerts.away]]
person = "li"
from = "2026-11-03 00:00"
to = "2026-11-04 00:00"
[[alerts.override]]
tier = 1
person = "wang"
from = "2026-11-03 09:00"
to = "2026-11-04 09:00"
"#,
    );
    assert!(cfg.check("Asia/Shanghai", false).is_empty());
}

#[test]
fn a_tier_with_nobody_and_unknown_people_are_errors() {
    let mut cfg = alerts(
        r#"
[[alerts.override]]
tier = 4
person = "nobody"
from = "2026-11-03 09:00"
to = "2026-11-03 08:00"
"#,
    );
    cfg.rotation.tiers[1].people.clear();
    cfg.rotation.tiers[2].people.push("ghost".into());
    let errs = cfg.check("Asia/Shanghai", false);
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert!(
        paths.contains(&"alerts.rotation.tier[1].people"),
        "{errs:?}"
    );
    assert!(
        paths.contains(&"alerts.rotation.tier[2].people[1]"),
        "{errs:?}"
    );
    assert!(paths.contains(&"alerts.override[0].tier"), "{errs:?}");
    assert!(paths.contains(&"alerts.override[0].person"), "{errs:?}");
    assert!(paths.contains(&"alerts.override[0]"), "{errs:?}");
    let e = errs
        .iter()
        .find(|e| e.path == "alerts.rotation.tier[1].people")
        .unwrap();
    assert!(e.message.contains("gap in coverage"), "{}", e.message);
}

#[test]
fn an_unknown_channel_in_a_policy_and_a_non_http_url_are_errors() {
    let mut cfg = alerts("");
    cfg.critical.channels.push("sms".into());
    cfg.channels[0].url = Some("ftp://example.com/hook".into());
    let errs = cfg.check("Asia/Shanghai", false);
    let e = errs
        .iter()
        .find(|e| e.path == "alerts.critical.channels[1]")
        .unwrap();
    assert!(
        e.message.contains("unknown channel \"sms\""),
        "{}",
        e.message
    );
    assert!(e.message.contains("defined: hook"), "{}", e.message);
    let e = errs
        .iter()
        .find(|e| e.path == "alerts.channel[0].url")
        .unwrap();
    assert!(e.message.contains("not an http(s) URL"), "{}", e.message);
}

#[test]
fn plain_smtp_is_refused_to_a_remote_host() {
    let text = r#"
[[alerts.channel]]
id = "mail"
kind = "email"
host = "smtp.example.com"
tls = "none"
from = "bms@example.com"
"#;
    let cfg = alerts(text);
    let errs = cfg.check("Asia/Shanghai", false);
    assert!(
        errs.iter().any(|e| e.path == "alerts.channel[1].tls"),
        "{errs:?}"
    );
    let cfg = alerts(&text.replace("smtp.example.com", "127.0.0.1"));
    assert!(cfg.check("Asia/Shanghai", false).is_empty());
}

#[test]
fn an_mqtt_channel_needs_the_mqtt_section() {
    let cfg = alerts("[[alerts.channel]]\nid = \"bus\"\nkind = \"mqtt\"\n");
    let errs = cfg.check("Asia/Shanghai", false);
    let e = errs
        .iter()
        .find(|e| e.path == "alerts.channel[1].kind")
        .unwrap();
    assert!(e.message.contains("add an [mqtt] section"), "{}", e.message);
    assert!(cfg.check("Asia/Shanghai", true).is_empty());
}

#[test]
fn keep_defaults_to_180_days_and_must_be_at_least_a_day() {
    let parse = |keep: &str| {
        let text = format!(
            "site = \"s\"\ngateway = \"g\"\n[alerts]\n{keep}\n[alerts.rotation]\nstart = \"2026-11-02\"\n"
        );
        parse_config("t.toml", &text, &|_| None)
            .unwrap()
            .alerts
            .unwrap()
    };
    let keep_errors = |cfg: &AlertsConfig| -> Vec<String> {
        cfg.check("Asia/Shanghai", false)
            .into_iter()
            .filter(|e| e.path == "alerts.keep")
            .map(|e| e.message)
            .collect()
    };
    let d = parse("");
    assert_eq!(d.keep.get(), std::time::Duration::from_secs(180 * 86_400));
    assert!(keep_errors(&d).is_empty());
    assert!(keep_errors(&parse("keep = \"1d\"")).is_empty());
    let short = parse("keep = \"12h\"");
    assert_eq!(
        keep_errors(&short),
        vec![
            "\"12h\" is shorter than a day; the alert log must keep at least \"1d\" (default \"180d\")"
        ]
    );
}

mod props {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Shifts tile the asked span without holes or overlaps, and each
        /// shift's person is who `on_call` names anywhere inside it.
        #[test]
        fn shifts_tile_the_span_and_agree_with_on_call(
            daily in any::<bool>(),
            handover_min in 0u32..1440,
            start_day in 0i64..60,
            from_min in 0i64..(90 * 1440),
            len_min in 1i64..(20 * 1440),
            probe in 0.0f64..1.0,
        ) {
            let mut cfg = alerts("");
            cfg.rotation.every = if daily { Every::Day } else { Every::Week };
            cfg.rotation.handover = crate::config::ClockTime(
                NaiveTime::from_num_seconds_from_midnight_opt(handover_min * 60, 0).unwrap(),
            );
            cfg.rotation.start = (NaiveDate::from_ymd_opt(2026, 10, 1).unwrap()
                + TimeDelta::days(start_day))
            .to_string();
            let r = Roster::from_config(&cfg, Shanghai).unwrap();
            let from = sh("2026-09-01 00:00") + from_min * 60_000;
            let to = from + len_min * 60_000;
            let s = r.shifts(0, from, to);
            prop_assert_eq!(s.first().unwrap().from_ms, from);
            prop_assert_eq!(s.last().unwrap().to_ms, to);
            for w in s.windows(2) {
                prop_assert_eq!(w[0].to_ms, w[1].from_ms);
                prop_assert!(w[0].from_ms < w[0].to_ms);
            }
            for sh in &s {
                #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
                let at = sh.from_ms + ((sh.to_ms - sh.from_ms - 1) as f64 * probe) as i64;
                prop_assert_eq!(&r.on_call(0, at), &sh.duty);
                prop_assert!(sh.duty.is_some());
            }
            // Daily: consecutive shifts change person; at most one shift per day + 1.
            if daily {
                prop_assert!(s.len() as i64 <= len_min / 1440 + 2);
            }
        }
    }
}
