//! The dashboard's monthly report, rebuilt from what a real gateway
//! published to a real Mosquitto, against the gateway's own
//! `gateway report` for the same site and month: every figure equal. Then
//! the stopped gateway (its devices' time ends when it went offline) and
//! bad input. `#[ignore]`d: `.ci/run` installs mosquitto and runs them.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::{Read as _, Write as _};
use std::process::Command;
use std::time::Duration;

use bms_e2e::{
    Proc, bin, demo_config, demo_env, free_port, http, run_with_timeout, start_dashboard,
    start_mosquitto, start_sim, this_month_in, until,
};
use serde_json::Value;

const SITE: &str = "demo-sales-centre";

/// GET with the response head: (status, head, body).
fn get(addr: &str, path: &str) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    // Bytes, read leniently: a download may be binary (.xlsx).
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).unwrap();
    let resp = String::from_utf8_lossy(&bytes).into_owned();
    let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// The figures that must agree: all but `site` (the dashboard knows the
/// site by its id only) and `generated_ms`.
const KEYS: [&str; 6] = [
    "period", "classes", "kpis", "devices", "tickets", "coverage",
];

#[test]
#[ignore = "needs mosquitto (.ci/run installs it)"]
fn the_dashboards_report_equals_the_gateways_own() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = start_mosquitto(dir.path()).unwrap();
    let url = format!("mqtt://127.0.0.1:{port}");

    // The dashboard first, so that it sees every transition.
    let listen = format!("127.0.0.1:{}", free_port());
    let dcfg = dir.path().join("dashboard.toml");
    std::fs::write(
        &dcfg,
        format!(
            "data_dir = \"dash-data\"\n[mqtt]\nurl = \"{url}\"\n[http]\nlisten = \"{listen}\"\n"
        ),
    )
    .unwrap();
    let mut dash = start_dashboard(&dcfg, &[]).unwrap();

    // The demo building: simulator and `gateway run`.
    let site_dir = dir.path().join("site");
    std::fs::create_dir_all(&site_dir).unwrap();
    let (env, control) = demo_env(&site_dir);
    let config = demo_config(&site_dir, "").unwrap();
    let _sim = start_sim(&config, &env).unwrap();
    let mut gw = Proc::spawn(
        "gateway run",
        Command::new(bin("gateway"))
            .args(["run", "--mqtt-url", &url, "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .envs(env.iter().cloned()),
    )
    .unwrap();
    gw.wait_for("connected to the MQTT broker", Duration::from_secs(20))
        .unwrap();
    let month = this_month_in("Asia/Shanghai").unwrap();
    let report_path = format!("/reports/{month}?site={SITE}&format=json");

    // Every device in the dashboard's report, then a fault with its ticket.
    until(
        "19 devices in the central report",
        Duration::from_secs(60),
        || {
            let (code, _, body) = get(&listen, &report_path);
            let v: Value = serde_json::from_str(&body).ok()?;
            (code == 200 && v["devices"].as_array()?.len() == 19).then_some(())
        },
    );
    http(
        "POST",
        &control,
        "/faults",
        r#"{"device":"fire-panel-1","fault":"fault_bit","point":"fault"}"#,
    )
    .unwrap();
    until(
        "the fire panel's ticket in the central report",
        Duration::from_secs(60),
        || {
            let (_, _, body) = get(&listen, &report_path);
            let v: Value = serde_json::from_str(&body).ok()?;
            (v["tickets"]["figures"]["opened"].as_u64()? >= 1).then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(5));

    let gateway_report = || {
        let (code, out, err) = run_with_timeout(
            Command::new(bin("gateway"))
                .args(["report", "--month", &month, "--format", "json", "--config"])
                .arg(&config)
                .envs(env.iter().cloned()),
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(code, Some(0), "gateway report: {err}");
        serde_json::from_str::<Value>(&out).unwrap()
    };

    // Running: both end the open intervals at the gateway report's time.
    // A message in flight at that instant can differ; a real difference
    // stays over three tries.
    let mut last = None;
    for attempt in 1..=3 {
        let local = gateway_report();
        let at = local["generated_ms"].as_i64().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let (code, _, body) = get(&listen, &format!("{report_path}&at={at}"));
        assert_eq!(code, 200, "{body}");
        let central: Value = serde_json::from_str(&body).unwrap();
        let differ: Vec<&str> = KEYS
            .into_iter()
            .filter(|k| local[*k] != central[*k])
            .collect();
        if differ.is_empty() {
            eprintln!("equal at attempt {attempt}");
            last = None;
            assert_eq!(local["devices"].as_array().unwrap().len(), 19);
            assert!(local["tickets"]["figures"]["opened"].as_u64().unwrap() >= 1);
            assert!(
                local["devices"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|d| d["id"] == "fire-panel-1"
                        && d["figures"]["incidents"].as_u64() >= Some(1)),
                "{:#}",
                local["devices"]
            );
            break;
        }
        last = Some((differ.join(", "), local, central));
    }
    if let Some((keys, local, central)) = last {
        for k in KEYS {
            assert_eq!(local[k], central[k], "{k} differs (of {keys})");
        }
    }

    // Stopped cleanly: the gateway ends its intervals at its last
    // heartbeat, the dashboard at the `status` offline it received (a few
    // ms later): the same tickets, KPIs and incidents; the offline time
    // counted as gateway_down in both.
    assert_eq!(gw.interrupt(Duration::from_secs(20)).unwrap(), Some(0));
    std::thread::sleep(Duration::from_secs(3));
    let local = gateway_report();
    let at = local["generated_ms"].as_i64().unwrap();
    let (code, _, body) = get(&listen, &format!("{report_path}&at={at}"));
    assert_eq!(code, 200, "{body}");
    let central: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(local["tickets"], central["tickets"]);
    assert_eq!(local["kpis"], central["kpis"]);
    assert_eq!(local["period"], central["period"]);
    let incidents = |v: &Value| {
        let mut d: Vec<(String, u64)> = v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["id"].as_str().unwrap().to_owned(),
                    d["figures"]["incidents"].as_u64().unwrap(),
                )
            })
            .collect();
        d.sort();
        d
    };
    assert_eq!(incidents(&local), incidents(&central));
    for k in ["short_gaps", "gaps"] {
        assert_eq!(
            local["coverage"][k].to_string().len() > 2,
            central["coverage"][k].to_string().len() > 2,
            "{k}: {:#}\n{:#}",
            local["coverage"],
            central["coverage"]
        );
    }
    assert_eq!(
        local["coverage"]["short_gaps"],
        central["coverage"]["short_gaps"]
    );

    // The pages and downloads.
    let (code, head, body) = get(&listen, &format!("/reports/{month}?site={SITE}"));
    assert_eq!(code, 200);
    assert!(
        head.contains("text/html") && body.contains("<svg"),
        "{head}"
    );
    let (code, head, body) = get(&listen, &format!("/reports/{month}?site={SITE}&format=csv"));
    assert_eq!(code, 200);
    assert!(
        head.contains(&format!(
            "attachment; filename=\"report-{SITE}-{month}-devices.csv\""
        )),
        "{head}"
    );
    assert!(
        body.starts_with('\u{feff}') && body.contains("fire-panel-1"),
        "{body}"
    );
    let (code, head, _) = get(
        &listen,
        &format!("/reports/{month}?site={SITE}&format=csv&section=gaps&lang=en"),
    );
    assert_eq!(code, 200);
    assert!(head.contains("-gaps.csv\""), "{head}");
    let (code, head, _) = get(
        &listen,
        &format!("/reports/{month}?site={SITE}&format=xlsx"),
    );
    assert_eq!(code, 200);
    assert!(
        head.contains("spreadsheetml.sheet") && head.contains(".xlsx\""),
        "{head}"
    );
    let (code, head, _) = get(&listen, &report_path);
    assert_eq!(code, 200);
    assert!(head.contains(".json\""), "{head}");
    let (code, _, body) = get(&listen, "/reports");
    assert_eq!(code, 200);
    assert!(body.contains(SITE) && body.contains("月报"), "{body}");
    let (code, _, body) = get(&listen, "/reports?lang=en");
    assert_eq!(code, 200);
    assert!(body.contains("Monthly availability report"), "{body}");

    // Bad input: clear 400/404, JSON for format=json.
    for (path, status, words) in [
        (format!("/reports/2026-13?site={SITE}"), 400, "YYYY-MM"),
        (
            format!("/reports/2026-13?site={SITE}&format=json"),
            400,
            "YYYY-MM",
        ),
        (
            format!("/reports/2999-01?site={SITE}&format=json"),
            400,
            "has not begun",
        ),
        (
            format!("/reports/2999-01?site={SITE}"),
            400,
            "has not begun",
        ),
        (format!("/reports/{month}?site=nowhere"), 404, SITE),
        (
            format!("/reports/{month}?site=nowhere&format=json"),
            404,
            "not known",
        ),
        (format!("/reports/{month}"), 400, "?site="),
        (
            format!("/reports/{month}?site={SITE}&format=xml"),
            400,
            "html, csv, xlsx or json",
        ),
        (
            format!("/reports/{month}?site={SITE}&at=99999999999999"),
            400,
            "not a past time",
        ),
    ] {
        let (code, head, body) = get(&listen, &path);
        assert_eq!(code, status, "{path}: {body}");
        assert!(body.contains(words), "{path}: {body}");
        if path.contains("format=json") {
            let v: Value = serde_json::from_str(&body).unwrap();
            assert!(v["error"].is_string(), "{path}: {body}");
            assert!(head.contains("application/json"), "{head}");
        }
    }
    assert_eq!(dash.interrupt(Duration::from_secs(20)).unwrap(), Some(0));
}
