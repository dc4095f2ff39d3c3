//! Interoperability with Modbus implementations we did not write:
//! mbpoll (Debian) reads our simulator over TCP and over RTU on a socat pty
//! pair, and `gateway read` reads a pymodbus (PyPI) server.
//!
//! These need outside tools and are `#[ignore]`d; `.ci/run` installs the
//! tools and runs them with `--ignored`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Command;
use std::time::{Duration, Instant};

use bms_e2e::{Proc, bin, free_port, require_tool, run_with_timeout, workspace_root};

const WAIT: Duration = Duration::from_secs(20);

/// Starts `gateway simulate` on the demo building with free ports; returns
/// the process, the control URL and the environment used.
fn start_demo_sim(dir: &std::path::Path, extra: &[&str]) -> (Proc, String, Vec<(String, String)>) {
    let env = vec![
        (
            "BMS_DEMO_TCP_POWER".to_owned(),
            format!("127.0.0.1:{}", free_port()),
        ),
        (
            "BMS_DEMO_TCP_BAS".to_owned(),
            format!("127.0.0.1:{}", free_port()),
        ),
        (
            "BMS_DEMO_RTU".to_owned(),
            dir.join("rs485-1").display().to_string(),
        ),
    ];
    let mut sim = Proc::spawn(
        "gateway simulate",
        Command::new(bin("gateway"))
            .args(["simulate", "--config"])
            .arg(workspace_root().join("config/demo.toml"))
            .args(["--control", "127.0.0.1:0"])
            .args(extra)
            .envs(env.clone()),
    )
    .unwrap();
    let line = sim.wait_for("control http://", WAIT).unwrap();
    let url = line[line.find("http://").unwrap()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    sim.wait_for("ready", WAIT).unwrap();
    (sim, url, env)
}

/// Sets a point through the simulator's HTTP control interface (curl-free:
/// a raw HTTP/1.1 request over a TCP socket).
fn put_point(control: &str, device: &str, point: &str, json_value: &str) {
    use std::io::{Read, Write};
    let hostport = control.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(hostport).unwrap();
    // Held, so that the device's behaviour does not move it again.
    let body = format!("{{\"value\":{json_value},\"hold\":true}}");
    write!(
        s,
        "PUT /devices/{device}/points/{point} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 2"), "control answered:\n{resp}");
}

/// mbpoll prints lines like `[2]: 7`; returns the value at a 1-based reference.
fn mbpoll_value(out: &str, reference: u32) -> Option<i64> {
    let tag = format!("[{reference}]:");
    out.lines()
        .find(|l| l.trim_start().starts_with(&tag))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[test]
#[ignore = "end-to-end: needs mbpoll (Debian); run by .ci/run"]
fn mbpoll_reads_the_simulator_over_tcp() {
    require_tool("mbpoll", "apt-get install mbpoll").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_sim, control, env) = start_demo_sim(dir.path(), &[]);
    // lift-1 is unit 6 on tcp-power; holding register 1 is its floor (i16).
    put_point(&control, "lift-1", "floor", "7");
    let addr = &env[0].1;
    let port = addr.rsplit(':').next().unwrap();
    let (code, out, err) = run_with_timeout(
        Command::new("mbpoll").args([
            "-m",
            "tcp",
            "-p",
            port,
            "-a",
            "6",
            "-t",
            "4",
            "-r",
            "2",
            "-c",
            "1",
            "-1",
            "127.0.0.1",
        ]),
        WAIT,
    )
    .unwrap();
    assert_eq!(code, Some(0), "mbpoll failed:\n{out}\n{err}");
    assert_eq!(mbpoll_value(&out, 2), Some(7), "mbpoll output:\n{out}");
}

#[test]
#[ignore = "end-to-end: needs mbpoll and socat (Debian); run by .ci/run"]
fn mbpoll_reads_the_simulator_over_rtu_on_a_socat_pty_pair() {
    require_tool("mbpoll", "apt-get install mbpoll").unwrap();
    require_tool("socat", "apt-get install socat").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("ttyA");
    let b = dir.path().join("ttyB");
    let mut socat = Proc::spawn(
        "socat",
        Command::new("socat").args([
            "-d",
            "-d",
            &format!("pty,raw,echo=0,link={}", a.display()),
            &format!("pty,raw,echo=0,link={}", b.display()),
        ]),
    )
    .unwrap();
    socat.wait_for("starting data transfer loop", WAIT).unwrap();
    // The simulator serves the RTU line on one end; mbpoll masters the other.
    let serial = format!("rs485-1={}", a.display());
    let (_sim, control, _env) = start_demo_sim(dir.path(), &["--serial", &serial]);
    // pump-1 is unit 1 on rs485-1; holding register 5 is its fault code.
    put_point(&control, "pump-1", "fault_code", "4242");
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, out, err) = run_with_timeout(
            Command::new("mbpoll")
                .args([
                    "-m", "rtu", "-b", "19200", "-P", "even", "-a", "1", "-t", "4", "-r", "6",
                    "-c", "1", "-1",
                ])
                .arg(&b),
            WAIT,
        )
        .unwrap();
        if code == Some(0) {
            assert_eq!(mbpoll_value(&out, 6), Some(4242), "mbpoll output:\n{out}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mbpoll kept failing:\n{out}\n{err}"
        );
    }
}

#[test]
#[ignore = "end-to-end: needs pymodbus (PyPI); run by .ci/run"]
fn gateway_read_decodes_a_cdab_float_from_a_pymodbus_server() {
    let ok = Command::new("python3")
        .args(["-c", "import pymodbus.simulator"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "pymodbus is not installed; `pip install pymodbus==3.16.1` (.ci/run does it)"
    );
    let port = free_port();
    // 123.456f32 = 0x42F6E979; CDAB puts the low word first.
    let script = format!(
        r#"
import asyncio
from pymodbus.server import StartAsyncTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
dev = SimDevice(id=1, simdata=[SimData(0, values=[0xE979, 0x42F6, 0, 0], datatype=DataType.REGISTERS)])
asyncio.run(StartAsyncTcpServer(context=dev, address=("127.0.0.1", {port})))
"#
    );
    let _py = Proc::spawn(
        "pymodbus server",
        Command::new("python3").args(["-c", &script]),
    )
    .unwrap();
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "pymodbus server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, out, err) = run_with_timeout(
        Command::new(bin("gateway")).args([
            "read",
            &format!("tcp://127.0.0.1:{port}"),
            "--unit",
            "1",
            "--area",
            "holding",
            "--address",
            "0",
            "--count",
            "2",
            "--type",
            "f32",
            "--order",
            "CDAB",
        ]),
        WAIT,
    )
    .unwrap();
    assert_eq!(code, Some(0), "gateway read failed:\n{out}\n{err}");
    assert!(out.contains("123.456"), "expected 123.456 in:\n{out}");
}
