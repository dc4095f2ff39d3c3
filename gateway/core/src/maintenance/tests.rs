use chrono_tz::Asia::Shanghai;
use chrono_tz::Europe::Berlin;

use super::*;
use crate::config::{MaintenanceWindowConfig, check_maintenance};

const HOUR: i64 = 3600 * 1000;

/// A local time in Shanghai as Unix ms.
fn sh(s: &str) -> UnixMs {
    parse_local(s, Shanghai).unwrap()
}

fn weekly_cfg(id: &str, device: &str, weekly: &str) -> MaintenanceWindowConfig {
    MaintenanceWindowConfig {
        id: id.into(),
        device: Some(device.into()),
        weekly: Some(weekly.into()),
        ..Default::default()
    }
}

fn once_cfg(id: &str, device: &str, from: &str, to: &str) -> MaintenanceWindowConfig {
    MaintenanceWindowConfig {
        id: id.into(),
        device: Some(device.into()),
        from: Some(from.into()),
        to: Some(to.into()),
        ..Default::default()
    }
}

fn build(c: &MaintenanceWindowConfig) -> Window {
    Window::from_config(c, Shanghai).unwrap()
}

#[test]
fn local_times_are_read_in_the_site_zone() {
    // 2026-12-01 20:00 in Shanghai is 12:00 UTC.
    assert_eq!(sh("2026-12-01 20:00"), 1_796_126_400_000);
    assert_eq!(sh("2026-12-01T20:00:00"), sh("2026-12-01 20:00"));
    assert!(parse_local("01/12/2026 20:00", Shanghai).is_err());
}

#[test]
fn weekly_window_crossing_midnight_runs_into_the_next_day() {
    // 2026-12-05 is a Saturday.
    let w = build(&weekly_cfg("night", "pump-1", "Sat 23:00-02:00"));
    assert!(!w.active_at(Shanghai, sh("2026-12-05 22:59")));
    assert!(w.active_at(Shanghai, sh("2026-12-05 23:00")));
    assert!(w.active_at(Shanghai, sh("2026-12-06 01:59")));
    assert!(!w.active_at(Shanghai, sh("2026-12-06 02:00")));
    // Sunday evening is not a start day; Monday early is not its tail.
    assert!(!w.active_at(Shanghai, sh("2026-12-06 23:30")));
    assert!(!w.active_at(Shanghai, sh("2026-12-07 01:00")));
}

#[test]
fn weekly_window_on_several_days_is_active_on_each_and_only_those() {
    // 2026-12-07 is a Monday.
    let w = build(&weekly_cfg("eve", "pump-1", "Mon,Thu 20:00-22:00"));
    assert!(w.active_at(Shanghai, sh("2026-12-07 21:00")));
    assert!(w.active_at(Shanghai, sh("2026-12-10 20:00")));
    assert!(!w.active_at(Shanghai, sh("2026-12-10 22:00")));
    assert!(!w.active_at(Shanghai, sh("2026-12-08 21:00")));
    // The same instant read in another zone is another local time.
    assert!(!w.active_at(chrono_tz::UTC, sh("2026-12-07 21:00")));
}

#[test]
fn weekly_days_may_be_written_in_full_any_case_or_in_chinese() {
    let (days, start, end) = parse_weekly("周二,星期日,friday,SAT 20:00-22:30").unwrap();
    assert_eq!(
        days,
        vec![Weekday::Tue, Weekday::Sun, Weekday::Fri, Weekday::Sat]
    );
    assert_eq!(start, NaiveTime::from_hms_opt(20, 0, 0).unwrap());
    assert_eq!(end, NaiveTime::from_hms_opt(22, 30, 0).unwrap());
    assert!(parse_weekly("20:00-22:00").is_err());
    assert!(
        parse_weekly("Tus 20:00-22:00")
            .unwrap_err()
            .contains("\"Tus\"")
    );
    assert!(parse_weekly("Tue 20:00").is_err());
    assert!(parse_weekly("Tue 25:00-26:00").is_err());
}

#[test]
fn one_off_window_includes_its_start_and_excludes_its_end() {
    let w = build(&once_cfg(
        "dec",
        "pump-1",
        "2026-12-01 20:00",
        "2026-12-01 22:00",
    ));
    assert_eq!(
        w.schedule,
        Schedule::Once {
            from_ms: sh("2026-12-01 20:00"),
            to_ms: sh("2026-12-01 22:00")
        }
    );
    assert!(!w.active_at(Shanghai, sh("2026-12-01 20:00") - 1));
    assert!(w.active_at(Shanghai, sh("2026-12-01 20:00")));
    assert!(!w.active_at(Shanghai, sh("2026-12-01 22:00")));
}

#[test]
fn class_windows_cover_every_device_of_the_class_and_device_windows_one_device() {
    let class = build(&MaintenanceWindowConfig {
        id: "lights".into(),
        class: Some(DeviceClass::Lighting),
        weekly: Some("Tue 20:00-22:00".into()),
        ..Default::default()
    });
    let device = build(&weekly_cfg("pump", "pump-1", "Tue 20:00-22:00"));
    assert!(class.applies_to("lamp-7", DeviceClass::Lighting));
    assert!(!class.applies_to("pump-1", DeviceClass::Pump));
    assert!(device.applies_to("pump-1", DeviceClass::Pump));
    assert!(!device.applies_to("pump-2", DeviceClass::Pump));

    let windows = vec![class, device];
    // 2026-12-08 is a Tuesday.
    let tue = sh("2026-12-08 21:00");
    let found = |id: &str, c| active_window(&windows, id, c, Shanghai, tue).map(|w| w.id.as_str());
    assert_eq!(found("lamp-7", DeviceClass::Lighting), Some("lights"));
    assert_eq!(found("pump-1", DeviceClass::Pump), Some("pump"));
    assert_eq!(found("pump-2", DeviceClass::Pump), None);
    assert_eq!(
        active_window(
            &windows,
            "pump-1",
            DeviceClass::Pump,
            Shanghai,
            sh("2026-12-08 22:00")
        ),
        None
    );
}

#[test]
fn an_inverted_one_off_window_is_refused_naming_the_times_written() {
    let err = Window::from_config(
        &once_cfg("late", "pump-1", "2026-12-01 22:00", "2026-12-01 20:00"),
        Shanghai,
    )
    .unwrap_err();
    assert!(matches!(err, MaintenanceError::Inverted { .. }));
    let text = err.to_string();
    assert!(
        text.contains("\"late\"") && text.contains("2026-12-01 20:00"),
        "{text}"
    );

    // Built elsewhere (the store, the CLI): check_windows finds it too.
    let w = Window {
        id: "zero".into(),
        target: Target::Device("pump-1".into()),
        schedule: Schedule::Once {
            from_ms: 5,
            to_ms: 5,
        },
        note: String::new(),
    };
    assert!(matches!(
        check_windows(&[w])[..],
        [MaintenanceError::Inverted { .. }]
    ));
}

#[test]
fn a_weekly_window_without_days_or_length_is_refused() {
    let no_days = Window {
        id: "none".into(),
        target: Target::Device("pump-1".into()),
        schedule: Schedule::Weekly {
            days: vec![],
            start: NaiveTime::from_hms_opt(20, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
        },
        note: String::new(),
    };
    assert_eq!(
        check_windows(&[no_days]),
        vec![MaintenanceError::NoDays { id: "none".into() }]
    );
    let err = Window::from_config(&weekly_cfg("flat", "pump-1", "Tue 20:00-20:00"), Shanghai)
        .unwrap_err();
    assert_eq!(err, MaintenanceError::Empty { id: "flat".into() });
}

#[test]
fn target_and_schedule_must_each_be_given_exactly_once() {
    let mut both = weekly_cfg("x", "pump-1", "Tue 20:00-22:00");
    both.class = Some(DeviceClass::Pump);
    assert!(matches!(
        Window::from_config(&both, Shanghai),
        Err(MaintenanceError::Target { .. })
    ));
    let mut mixed = weekly_cfg("x", "pump-1", "Tue 20:00-22:00");
    mixed.from = Some("2026-12-01 20:00".into());
    assert!(matches!(
        Window::from_config(&mixed, Shanghai),
        Err(MaintenanceError::Schedule { .. })
    ));
    let mut half = once_cfg("x", "pump-1", "2026-12-01 20:00", "");
    half.to = None;
    assert!(matches!(
        Window::from_config(&half, Shanghai),
        Err(MaintenanceError::Schedule { .. })
    ));
    assert!(matches!(
        Window::from_config(&weekly_cfg("Bad Id", "pump-1", "Tue 20:00-22:00"), Shanghai),
        Err(MaintenanceError::BadId(_))
    ));
}

#[test]
fn overlapping_windows_of_one_target_are_reported_by_name() {
    let windows = vec![
        // Sunday 23:00 to Monday 01:00 wraps past the end of the week…
        build(&weekly_cfg("sun-night", "pump-1", "Sun 23:00-01:00")),
        // …and meets Monday 00:30.
        build(&weekly_cfg("mon-early", "pump-1", "Mon 00:30-02:00")),
        // Same times on another device: fine.
        build(&weekly_cfg("other", "pump-2", "Mon 00:30-02:00")),
        // Touching is not overlapping.
        build(&weekly_cfg("mon-later", "pump-1", "Mon 02:00-03:00")),
        build(&once_cfg(
            "a",
            "pump-1",
            "2026-12-01 20:00",
            "2026-12-01 22:00",
        )),
        build(&once_cfg(
            "b",
            "pump-1",
            "2026-12-01 21:00",
            "2026-12-01 23:00",
        )),
        build(&once_cfg(
            "c",
            "pump-1",
            "2026-12-01 23:00",
            "2026-12-02 01:00",
        )),
    ];
    let errs = check_windows(&windows);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(
        errs[0].to_string(),
        "windows \"sun-night\" and \"mon-early\" of device pump-1 overlap; merge them or move one"
    );
    assert!(
        matches!(&errs[1], MaintenanceError::Overlap { first, second, .. } if first == "a" && second == "b")
    );
}

#[test]
fn duplicate_ids_are_reported() {
    let windows = vec![
        build(&weekly_cfg("w", "pump-1", "Tue 20:00-22:00")),
        build(&weekly_cfg("w", "pump-2", "Wed 20:00-22:00")),
    ];
    assert_eq!(
        check_windows(&windows),
        vec![MaintenanceError::DuplicateId { id: "w".into() }]
    );
}

#[test]
fn weekly_windows_follow_wall_clock_time_across_a_dst_change() {
    // Berlin springs forward on Sunday 2026-03-29: 02:00 CET becomes 03:00 CEST.
    let w = Window::from_config(&weekly_cfg("sun", "pump-1", "Sun 01:00-04:00"), Berlin).unwrap();
    let utc = |h: u32| {
        chrono::Utc
            .with_ymd_and_hms(2026, 3, 29, h, 0, 0)
            .unwrap()
            .timestamp_millis()
    };
    assert!(!w.active_at(Berlin, utc(0) - 1)); // 00:59:59.999 CET
    assert!(w.active_at(Berlin, utc(0))); // 01:00 CET
    assert!(w.active_at(Berlin, utc(1))); // 03:00 CEST
    assert!(!w.active_at(Berlin, utc(2))); // 04:00 CEST: only 2 h of real time
    // A one-off window over the change is 2 h long; a skipped time is refused.
    let once = Window::from_config(
        &once_cfg("o", "pump-1", "2026-03-29 01:00", "2026-03-29 04:00"),
        Berlin,
    )
    .unwrap();
    assert!(
        matches!(once.schedule, Schedule::Once { from_ms, to_ms } if to_ms - from_ms == 2 * HOUR)
    );
    let err = Window::from_config(
        &once_cfg("gap", "pump-1", "2026-03-29 02:30", "2026-03-29 04:00"),
        Berlin,
    )
    .unwrap_err();
    assert!(err.to_string().contains("daylight-saving"), "{err}");
}

#[test]
fn windows_survive_a_json_round_trip() {
    let w = build(&weekly_cfg("eve", "pump-1", "Mon,Thu 20:00-22:00"));
    let json = serde_json::to_string(&w).unwrap();
    assert_eq!(serde_json::from_str::<Window>(&json).unwrap(), w);
}

#[test]
fn the_config_check_reports_every_window_problem_with_its_path() {
    let windows = vec![
        once_cfg("late", "pump-1", "2026-12-01 22:00", "2026-12-01 20:00"),
        weekly_cfg("ghost", "pump-9", "Tue 20:00-22:00"),
        weekly_cfg("a", "pump-1", "Tue 20:00-22:00"),
        weekly_cfg("b", "pump-1", "Tue 21:00-23:00"),
    ];
    let errs = check_maintenance(&windows, "Asia/Shanghai", &["pump-1"]);
    let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 3, "{text:#?}");
    assert!(
        text[0].starts_with("maintenance[0]: window \"late\" ends"),
        "{}",
        text[0]
    );
    assert_eq!(
        text[1],
        "maintenance[1].device: no device \"pump-9\" is configured"
    );
    assert!(
        text[2].starts_with("maintenance: windows \"a\" and \"b\""),
        "{}",
        text[2]
    );
}
