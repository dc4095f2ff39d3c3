use rand::SeedableRng;

use super::*;

#[test]
fn site_time_applies_the_zone_offset() {
    // 2024-01-01T00:00:00Z is 08:00 in Shanghai.
    let t = SiteTime {
        unix_ms: 1_704_067_200_000,
        utc_offset_s: utc_offset_of("Asia/Shanghai").unwrap(),
    };
    assert!((t.local_hour() - 8.0).abs() < 1e-9);
    assert_eq!(utc_offset_of("UTC+05:30"), Some(5 * 3600 + 1800));
    assert_eq!(utc_offset_of("UTC-3"), Some(-3 * 3600));
    assert_eq!(utc_offset_of("Mars/Olympus"), None);
}

#[test]
fn meter_energy_only_increases_and_power_is_v_times_i_times_pf() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut m = meter::Meter::new(&mut rng);
    let now = SiteTime {
        unix_ms: 1_704_067_200_000,
        utc_offset_s: 8 * 3600,
    };
    let mut last = 0.0;
    for _ in 0..100 {
        m.step(now, 60.0, &mut rng);
        let e = m.energy_kwh();
        assert!(e >= last, "{e} < {last}");
        last = e;
        let (v, i, pf, p) = m.phase(0);
        assert!((p - v * i * pf).abs() < 1e-6);
        assert!((212.0..=228.0).contains(&v));
    }
}

#[test]
fn lighting_follows_its_timetable_and_a_manual_switch_holds_until_the_next_edge() {
    let mut l = lighting::Lighting::new("lights-lobby");
    let mut rng = StdRng::seed_from_u64(1);
    let at = |h: i64| SiteTime {
        unix_ms: h * 3_600_000,
        utc_offset_s: 0,
    };
    l.step(at(12), 0.0, &mut rng);
    assert!(
        !l.is_on(0) && l.is_on(4),
        "noon: evening circuits off, working-hours circuits on"
    );
    l.written("circuit_1", &Value::Bool(true));
    l.step(at(13), 0.0, &mut rng);
    assert!(l.is_on(0), "manual switch holds");
    l.step(at(23 + 24), 0.0, &mut rng);
    l.step(at(24 + 24), 0.0, &mut rng);
    assert!(!l.is_on(0), "midnight edge: timetable wins again");
}

#[test]
fn pumps_ramp_their_frequency_instead_of_jumping() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut p = pump::Pump::new(&mut rng);
    let now = SiteTime {
        unix_ms: 0,
        utc_offset_s: 0,
    };
    let mut last = p.frequency();
    for _ in 0..2000 {
        p.step(now, 0.5, &mut rng);
        assert!((p.frequency() - last).abs() <= 1.0 + 1e-9, "at most 2 Hz/s");
        last = p.frequency();
    }
}

#[test]
fn a_pump_started_by_a_write_runs_through_its_duty_cycle_until_stopped() {
    let mut rng = StdRng::seed_from_u64(4);
    let mut p = pump::Pump::new(&mut rng);
    let now = SiteTime {
        unix_ms: 0,
        utc_offset_s: 0,
    };
    assert!(p.writable("run_cmd"));
    assert!(!p.writable("frequency"));
    p.written("run_cmd", &gateway_core::model::Value::Bool(true));
    // An hour: several duty-cycle edges, none of which stops it.
    for _ in 0..7200 {
        p.step(now, 0.5, &mut rng);
    }
    assert!(p.frequency() >= 45.0, "running at {} Hz", p.frequency());
    p.written("run_cmd", &gateway_core::model::Value::Bool(false));
    for _ in 0..7200 {
        p.step(now, 0.5, &mut rng);
    }
    assert_eq!(p.frequency(), 0.0);
}
