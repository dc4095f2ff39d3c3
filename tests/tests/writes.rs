//! Writes end to end: `gateway write` signs a command, a real Mosquitto
//! carries it, the running gateway checks it, writes it to an independent
//! pymodbus server between two polls, reads it back and answers; a
//! pymodbus client of our own then reads the register to see what the
//! server holds; `gateway writes log` shows the audit.
//!
//! These need outside tools (mosquitto, pymodbus) and are `#[ignore]`d;
//! `.ci/run` runs them with `--ignored`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bms_e2e::{Proc, bin, free_port, run_with_timeout, start_gateway, start_mosquitto};

const WAIT: Duration = Duration::from_secs(30);

const PROFILE: &str = r#"
description = "test air handler for writes"

[[point]]
name = "pressure"
area = "holding"
address = 0
type = "u16"

[[point]]
name = "setpoint"
unit = "°C"
area = "holding"
address = 10
type = "u16"
scale = 0.1
writable = true
write_min = 5.0
write_max = 30.0

[[point]]
name = "mode"
area = "holding"
address = 11
type = "u16"
writable = true
"#;

fn require_pymodbus() {
    let ok = Command::new("python3")
        .args(["-c", "import pymodbus.simulator, pymodbus.client"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "pymodbus is not installed; `pip install pymodbus==3.16.1` (.ci/run does it)"
    );
}

/// An independent Modbus TCP server: holding registers 0..20, register 10
/// (the setpoint) holding 200 (20.0 °C).
fn start_pymodbus(port: u16) -> Proc {
    let mut values = [0u16; 20];
    values[0] = 3;
    values[10] = 200;
    let values: Vec<String> = values.iter().map(ToString::to_string).collect();
    let script = format!(
        r#"
import asyncio
from pymodbus.server import StartAsyncTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
dev = SimDevice(id=1, simdata=[SimData(0, values=[{}], datatype=DataType.REGISTERS)])
asyncio.run(StartAsyncTcpServer(context=dev, address=("127.0.0.1", {port})))
"#,
        values.join(", ")
    );
    let p = Proc::spawn(
        "pymodbus server",
        Command::new("python3").args(["-c", &script]),
    )
    .unwrap();
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "pymodbus server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    p
}

/// What the pymodbus server holds at `address`, read by a pymodbus client.
fn holding(port: u16, address: u16) -> u16 {
    let script = format!(
        r#"
from pymodbus.client import ModbusTcpClient
c = ModbusTcpClient("127.0.0.1", port={port})
c.connect()
r = c.read_holding_registers({address}, count=1, device_id=1)
print(r.registers[0])
c.close()
"#
    );
    let (code, out, err) =
        run_with_timeout(Command::new("python3").args(["-c", &script]), WAIT).unwrap();
    assert_eq!(code, Some(0), "pymodbus client failed: {err}");
    out.trim().parse().unwrap()
}

/// A site with one device on the pymodbus server; `writes` is the
/// `[writes]` section and `device_writes` the device's `writes` line.
fn site(
    dir: &Path,
    modbus: u16,
    mqtt: u16,
    writes: &str,
    device_writes: &str,
) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("profiles")).unwrap();
    std::fs::write(dir.join("profiles/test-ahu.toml"), PROFILE).unwrap();
    std::fs::write(
        dir.join("secret"),
        "0123456789abcdef0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    let text = format!(
        r#"
site = "site1"
gateway = "gw1"
data_dir = "data"
profiles_dir = "profiles"

[mqtt]
url = "mqtt://127.0.0.1:{mqtt}"

[commands]
secret = {{ file = "secret" }}

{writes}

[[bus]]
id = "tcp-1"
kind = "tcp"
address = "127.0.0.1:{modbus}"
timeout = "1s"

[[device]]
id = "ahu-1"
name_zh = "空调箱"
class = "hvac"
bus = "tcp-1"
unit = 1
profile = "test-ahu"
poll_interval = "500ms"
{device_writes}
"#
    );
    let file = dir.join("site.toml");
    std::fs::write(&file, text).unwrap();
    file
}

/// The gateway, once it is connected to the broker (it subscribes to its
/// commands right then).
fn start(config: &Path) -> Proc {
    let mut gw = start_gateway(config, &[]).unwrap();
    if !gw.output().contains("connected to the MQTT broker") {
        gw.wait_for("connected to the MQTT broker", WAIT).unwrap();
    }
    gw
}

fn write(config: &Path, point: &str, value: &str) -> (Option<i32>, String, String) {
    run_with_timeout(
        Command::new(bin("gateway"))
            .args(["write", "--config"])
            .arg(config)
            .args(["--by", "张工", "--wait", "20s", "ahu-1", point, value]),
        WAIT,
    )
    .unwrap()
}

fn writes_log(config: &Path) -> serde_json::Value {
    let (code, out, err) = run_with_timeout(
        Command::new(bin("gateway"))
            .args(["writes", "log", "--json", "--config"])
            .arg(config),
        WAIT,
    )
    .unwrap();
    assert_eq!(code, Some(0), "writes log failed: {err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
#[ignore = "end-to-end: needs mosquitto and pymodbus; run by .ci/run"]
fn a_write_from_the_command_line_reaches_an_independent_modbus_server_and_is_audited() {
    require_pymodbus();
    let dir = tempfile::tempdir().unwrap();
    let (_mosq, mqtt) = start_mosquitto(dir.path()).unwrap();
    let modbus = free_port();
    let _py = start_pymodbus(modbus);
    let config = site(
        dir.path(),
        modbus,
        mqtt,
        "[writes]\nenabled = true",
        "writes = [\"setpoint\"]",
    );
    let mut gw = start(&config);

    // Accepted: 21.5 °C is raw 215 at register 10.
    let (code, out, err) = write(&config, "setpoint", "21.5");
    assert_eq!(
        code,
        Some(0),
        "gateway write failed:\n{out}\n{err}\ngateway:\n{}",
        gw.output()
    );
    assert!(out.contains("20 → 21.5"), "{out}");
    assert!(out.contains("read back 21.5"), "{out}");
    assert_eq!(holding(modbus, 10), 215);

    // Refused at the edge, nothing sent.
    let (code, _, err) = write(&config, "setpoint", "35");
    assert_eq!(code, Some(1));
    assert!(err.contains("out_of_range"), "{err}");
    let (code, _, err) = write(&config, "setpoint", "21.55");
    assert_eq!(code, Some(1));
    assert!(err.contains("not_representable"), "{err}");
    let (code, _, err) = write(&config, "pressure", "7");
    assert_eq!(code, Some(1));
    assert!(err.contains("not_writable"), "{err}");
    // Writable in the profile but not allowed on this device.
    let (code, _, err) = write(&config, "mode", "2");
    assert_eq!(code, Some(1));
    assert!(err.contains("not_allowed"), "{err}");
    assert_eq!(holding(modbus, 10), 215);
    assert_eq!(holding(modbus, 11), 0);
    assert_eq!(holding(modbus, 0), 3);

    let log = writes_log(&config);
    let rows = log.as_array().unwrap();
    assert_eq!(rows.len(), 5, "{log:#}");
    let ok = &rows[0];
    assert_eq!(ok["by"], "张工");
    assert_eq!(ok["device"], "ahu-1");
    assert_eq!(ok["point"], "setpoint");
    assert_eq!(ok["result"], "ok");
    assert_eq!(ok["old"].as_f64().unwrap(), 20.0);
    assert_eq!(ok["new"].as_f64().unwrap(), 21.5);
    assert_eq!(ok["read_back"].as_f64().unwrap(), 21.5);
    for r in &rows[1..] {
        assert_eq!(r["result"], "refused", "{r:#}");
        assert!(r["new"].is_null());
    }
}

#[test]
#[ignore = "end-to-end: needs mosquitto and pymodbus; run by .ci/run"]
fn writes_are_refused_while_the_site_has_not_turned_them_on() {
    require_pymodbus();
    let dir = tempfile::tempdir().unwrap();
    let (_mosq, mqtt) = start_mosquitto(dir.path()).unwrap();
    let modbus = free_port();
    let _py = start_pymodbus(modbus);
    // The device allows the point, the profile marks it writable, but no
    // [writes] section: off.
    let config = site(dir.path(), modbus, mqtt, "", "writes = true");
    let mut gw = start(&config);
    let (code, _, err) = write(&config, "setpoint", "21.5");
    assert_eq!(code, Some(1), "{err}\ngateway:\n{}", gw.output());
    assert!(err.contains("writes_off"), "{err}");
    assert_eq!(holding(modbus, 10), 200);
    let log = writes_log(&config);
    assert_eq!(log[0]["result"], "refused");
    assert!(
        log[0]["detail"].as_str().unwrap().starts_with("writes_off"),
        "{log:#}"
    );
}
