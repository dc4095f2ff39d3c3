//! The deployment files in `deploy/`, exercised: the Mosquitto ACL and
//! password file made by `deploy/mosquitto/bms-mqtt-user` loaded by a real
//! Mosquitto with a real gateway logging in. `#[ignore]`d: `.ci/run`
//! installs mosquitto and runs them.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bms_e2e::{
    Proc, bin, demo_config, demo_env, free_port, require_tool, run_with_timeout, start_sim,
    workspace_root,
};

fn user_tool(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    run_with_timeout(
        Command::new(workspace_root().join("deploy/mosquitto/bms-mqtt-user"))
            .arg("--passwd")
            .arg(dir.join("passwd"))
            .arg("--acl")
            .arg(dir.join("acl"))
            .args(args),
        Duration::from_secs(20),
    )
    .unwrap()
}

fn sub(port: u16, user: &str, pass: &str, topic: &str) -> Proc {
    let p = Proc::spawn(
        "mosquitto_sub",
        Command::new("mosquitto_sub").args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-u",
            user,
            "-P",
            pass,
            "-v",
            "-t",
            topic,
        ]),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    p
}

fn publish(port: u16, user: &str, pass: &str, topic: &str, msg: &str) -> Option<i32> {
    run_with_timeout(
        Command::new("mosquitto_pub").args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-u",
            user,
            "-P",
            pass,
            "-q",
            "1",
            "-t",
            topic,
            "-m",
            msg,
        ]),
        Duration::from_secs(10),
    )
    .unwrap()
    .0
}

#[test]
#[ignore = "needs mosquitto (.ci/run installs it)"]
fn the_acl_confines_each_gateway_to_its_own_prefix_and_commands() {
    require_tool("mosquitto", "apt-get install mosquitto").unwrap();
    require_tool("mosquitto_sub", "apt-get install mosquitto-clients").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(workspace_root().join("deploy/mosquitto/acl"), d.join("acl")).unwrap();
    for args in [
        &["gateway", "demo-sales-centre", "gw-1", "gw1-pass"][..],
        &["gateway", "other-site", "gw-9", "gw9-pass"],
        &["dashboard", "dash", "dash-pass"],
    ] {
        let (code, out, err) = user_tool(d, args);
        assert_eq!(code, Some(0), "{args:?}: {out}{err}");
    }
    // Bad input to the tool: a '/' in a topic level, a second entry.
    let (code, _, err) = user_tool(d, &["gateway", "a/b", "gw", "x"]);
    assert_eq!(code, Some(65), "{err}");
    assert!(err.contains("letters, digits"), "{err}");
    let (code, _, err) = user_tool(d, &["dashboard", "dash", "y"]);
    assert_eq!(code, Some(65), "{err}");
    assert!(err.contains("already"), "{err}");

    let port = free_port();
    let conf = d.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nuser root\nallow_anonymous false\npassword_file {p}/passwd\nacl_file {p}/acl\npersistence false\nlog_type error\nlog_type warning\n",
            p = d.display()
        ),
    )
    .unwrap();
    let _broker = Proc::spawn("mosquitto", Command::new("mosquitto").arg("-c").arg(&conf)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut all = sub(port, "dash", "dash-pass", "bms/#");
    let mut gw9_cmd = sub(
        port,
        "other-site.gw-9",
        "gw9-pass",
        "bms/other-site/gw-9/cmd/#",
    );
    let mut gw1_spy = sub(
        port,
        "demo-sales-centre.gw-1",
        "gw1-pass",
        "bms/other-site/gw-9/cmd/#",
    );
    let mut gw1_cmd = sub(
        port,
        "demo-sales-centre.gw-1",
        "gw1-pass",
        "bms/demo-sales-centre/gw-1/cmd/#",
    );

    // The real gateway logs in with its own name and publishes.
    let (mut env, _) = demo_env(d);
    env.push(("BMS_MQTT_PASSWORD".into(), "gw1-pass".into()));
    let cfg = demo_config(
        d,
        &format!(
            "[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\nusername = \"demo-sales-centre.gw-1\"\npassword = {{ env = \"BMS_MQTT_PASSWORD\" }}\n"
        ),
    )
    .unwrap();
    let _sim = start_sim(&cfg, &env).unwrap();
    let mut gw = Proc::spawn(
        "gateway run",
        Command::new(bin("gateway"))
            .args(["run", "--config"])
            .arg(&cfg)
            .envs(env.iter().cloned()),
    )
    .unwrap();
    gw.wait_for("connected to the MQTT broker", Duration::from_secs(20))
        .unwrap();
    all.wait_for("bms/demo-sales-centre/gw-1/status", Duration::from_secs(10))
        .unwrap();
    all.wait_for("/telemetry", Duration::from_secs(10)).unwrap();

    // Under its own prefix: delivered. Elsewhere: dropped by the broker.
    assert_eq!(
        publish(
            port,
            "demo-sales-centre.gw-1",
            "gw1-pass",
            "bms/demo-sales-centre/gw-1/probe",
            "own"
        ),
        Some(0)
    );
    assert_eq!(
        publish(
            port,
            "demo-sales-centre.gw-1",
            "gw1-pass",
            "bms/other-site/gw-9/status",
            "forged"
        ),
        Some(0)
    );
    assert_eq!(
        publish(
            port,
            "demo-sales-centre.gw-1",
            "gw1-pass",
            "bms/other-site/gw-9/cmd/ack",
            "forged-cmd"
        ),
        Some(0)
    );
    assert_eq!(
        publish(
            port,
            "demo-sales-centre.gw-1",
            "gw1-pass",
            "elsewhere/x",
            "forged"
        ),
        Some(0)
    );
    // The dashboard commands each gateway.
    assert_eq!(
        publish(
            port,
            "dash",
            "dash-pass",
            "bms/other-site/gw-9/cmd/ack",
            "to-gw9"
        ),
        Some(0)
    );
    assert_eq!(
        publish(
            port,
            "dash",
            "dash-pass",
            "bms/demo-sales-centre/gw-1/cmd/ack",
            "to-gw1"
        ),
        Some(0)
    );
    // A dashboard does not publish gateway data.
    assert_eq!(
        publish(
            port,
            "dash",
            "dash-pass",
            "bms/other-site/gw-9/status",
            "dash-forged"
        ),
        Some(0)
    );
    // Wrong password and anonymous are refused at connect.
    assert_ne!(publish(port, "dash", "wrong", "bms/x", "x"), Some(0));
    let anon = run_with_timeout(
        Command::new("mosquitto_pub").args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "bms/x",
            "-m",
            "x",
        ]),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_ne!(anon.0, Some(0));

    all.wait_for(
        "bms/demo-sales-centre/gw-1/probe own",
        Duration::from_secs(5),
    )
    .unwrap();
    gw9_cmd.wait_for("to-gw9", Duration::from_secs(5)).unwrap();
    gw1_cmd.wait_for("to-gw1", Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let seen = all.output();
    assert!(
        !seen.contains("forged"),
        "a forged message was delivered:\n{seen}"
    );
    let spy = gw1_spy.output();
    assert!(!spy.contains("to-gw9"), "gw-1 read gw-9's commands: {spy}");
    let gw9 = gw9_cmd.output();
    assert!(!gw9.contains("forged-cmd"), "gw-1 commanded gw-9: {gw9}");
    assert_eq!(gw.interrupt(Duration::from_secs(15)).unwrap(), Some(0));
}
