//! Round trips against the running simulator: TCP, RTU over TCP and RTU on
//! a pseudo-terminal; every fault kind; strict holes; writes; wire time;
//! the control interface; symlinks and bind errors.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use gateway_core::HumanDuration;
use gateway_core::config::{FaultConfig, FaultName};
use gateway_core::model::Value;
use gateway_sim::{SimError, SimOptions, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(2);
const SILENCE: Duration = Duration::from_millis(300);

fn fault(device: &str, fault: FaultName) -> FaultConfig {
    FaultConfig {
        device: device.to_owned(),
        fault,
        start: None,
        duration: None,
        code: None,
        delay: None,
        point: None,
        value: None,
    }
}

#[tokio::test]
async fn tcp_answers_several_requests_on_several_connections_echoing_transaction_ids() {
    let sim = Simulator::start(&demo(), SimOptions::loopback())
        .await
        .unwrap();
    let addr = sim.tcp_addr("tcp-power").unwrap();
    let mut a = TcpStream::connect(addr).await.unwrap();
    let mut b = TcpStream::connect(addr).await.unwrap();
    for tid in [1u16, 2, 0xBEEF] {
        // meter-main (unit 1): voltage_l1 at input 0, f32
        let (t, unit, pdu) = tcp_call(&mut a, tid, 1, &read_pdu(4, 0, 2), WAIT)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((t, unit, pdu[0], pdu[1]), (tid, 1, 4, 4));
        let v = f32_abcd(&regs(&pdu));
        assert!((200.0..240.0).contains(&v), "phase voltage {v}");
        let (t, _, pdu) = tcp_call(&mut b, tid + 100, 4, &read_pdu(2, 0, 16), WAIT)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (t, pdu[0], pdu[1]),
            (tid + 100, 2, 2),
            "breakers-1: 16 discrete inputs in 2 bytes"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn an_independent_client_reads_a_meter_over_tcp() {
    use tokio_modbus::prelude::*;
    let sim = Simulator::start(&demo(), SimOptions::loopback())
        .await
        .unwrap();
    let mut ctx = tcp::connect_slave(sim.tcp_addr("tcp-power").unwrap(), Slave(2))
        .await
        .unwrap();
    let r = ctx.read_input_registers(0x0034, 2).await.unwrap().unwrap();
    let total_power = f32_abcd(&r);
    assert!(total_power > 0.0, "total power {total_power}");
    let r = ctx.read_input_registers(0x00C8, 2).await.unwrap().unwrap();
    let v12 = f32_abcd(&r);
    assert!((360.0..400.0).contains(&v12), "line voltage {v12}");
    sim.shutdown().await;
}

#[tokio::test]
async fn rtu_on_a_pty_serves_an_independent_rtu_client() {
    use tokio_modbus::prelude::*;
    let sim = Simulator::start(&demo(), SimOptions::loopback())
        .await
        .unwrap();
    let path = sim.pty_path("rs485-1").unwrap().to_owned();
    let port = tokio_serial::SerialPortBuilderExt::open_native_async(tokio_serial::new(
        path.to_string_lossy(),
        19200,
    ))
    .unwrap();
    let mut ctx = rtu::attach_slave(port, Slave(6));
    // spd-1: earth_resistance at input 1, ×0.01 Ω
    let r = tokio::time::timeout(WAIT, ctx.read_input_registers(0, 2))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        (110..=130).contains(&r[1]),
        "earth resistance ×0.01 Ω: {}",
        r[1]
    );
    ctx.set_slave(Slave(1));
    let r = tokio::time::timeout(WAIT, ctx.read_holding_registers(0, 9))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(r.len(), 9);
    assert_eq!(r[0] & 0b1100, 0b1100, "pump-1 is ready and remote");
    sim.shutdown().await;
}

#[tokio::test]
async fn rtu_over_tcp_answers_with_a_valid_crc_and_ignores_other_units_and_bad_crcs() {
    let sim = Simulator::start(&demo(), SimOptions::loopback())
        .await
        .unwrap();
    let mut s = TcpStream::connect(sim.tcp_addr("tcp-bas").unwrap())
        .await
        .unwrap();
    // fire-panel-1 (unit 1): 5 holding registers
    let ans = rtu_call(&mut s, 1, &read_pdu(3, 0, 5), WAIT).await.unwrap();
    assert_eq!(&ans[..3], &[1, 3, 10]);
    assert_eq!(crc(&ans[..ans.len() - 2]), ans[ans.len() - 2..]);
    assert_eq!(
        ans[3..5],
        [0x00, 0b0001_1000],
        "mains_ok and battery_ok, nothing else"
    );
    assert!(
        rtu_call(&mut s, 42, &read_pdu(3, 0, 1), SILENCE)
            .await
            .is_none(),
        "unit 42 is not on the line"
    );
    // a request with a broken CRC gets no answer…
    s.write_all(&[0x01, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00])
        .await
        .unwrap();
    let mut b = [0u8; 16];
    assert!(tokio::time::timeout(SILENCE, s.read(&mut b)).await.is_err());
    // …and the next good one is answered.
    assert!(
        rtu_call(&mut s, 1, &read_pdu(3, 0, 1), WAIT)
            .await
            .is_some()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn strict_devices_refuse_reads_across_holes_and_lenient_ones_read_zeros() {
    let sim = Simulator::start(&demo(), SimOptions::loopback())
        .await
        .unwrap();
    let mut s = TcpStream::connect(sim.tcp_addr("tcp-power").unwrap())
        .await
        .unwrap();
    // 0x0000..0x0014 holds voltages, currents, powers; 0x0012.. is a hole up to total_power at 0x34.
    let (_, _, pdu) = tcp_call(&mut s, 1, 1, &read_pdu(4, 0, 0x36), WAIT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pdu, [0x84, 0x02], "meter-main is strict: exception 2");
    let (_, _, pdu) = tcp_call(&mut s, 2, 1, &read_pdu(4, 0, 0x12), WAIT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pdu[0], 4, "a range without holes is fine");
    let (_, _, pdu) = tcp_call(&mut s, 3, 2, &read_pdu(4, 0, 0x36), WAIT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pdu[0], 4, "meter-lighting is lenient");
    assert_eq!(regs(&pdu)[0x12..0x34], [0u16; 0x22], "holes read as 0");
    // outside the span, or count 0 / 126: exceptions 2 and 3 everywhere
    let (_, _, pdu) = tcp_call(&mut s, 4, 2, &read_pdu(4, 0x0200, 1), WAIT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pdu, [0x84, 0x02]);
    let (_, _, pdu) = tcp_call(&mut s, 5, 2, &read_pdu(4, 0, 126), WAIT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pdu, [0x84, 0x03]);
    let (_, _, pdu) = tcp_call(&mut s, 6, 2, &[0x2B, 0x0E, 0x01, 0x00], WAIT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pdu, [0xAB, 0x01], "unknown function: exception 1");
    sim.shutdown().await;
}

#[tokio::test]
async fn setpoints_and_circuits_can_be_written_but_status_registers_cannot() {
    let sim = Simulator::start(&demo(), SimOptions::loopback())
        .await
        .unwrap();
    let mut s = TcpStream::connect(sim.tcp_addr("tcp-bas").unwrap())
        .await
        .unwrap();
    // fcu-vip (unit 6): setpoint (holding 3) := 22.5 °C → 225
    let ans = rtu_call(&mut s, 6, &[0x06, 0x00, 0x03, 0x00, 0xE1], WAIT)
        .await
        .unwrap();
    assert_eq!(
        &ans[..6],
        &[6, 0x06, 0x00, 0x03, 0x00, 0xE1],
        "write single register echoes"
    );
    sim.tick_now();
    assert_eq!(
        sim.value("fcu-vip", "setpoint").unwrap(),
        Some(Value::Float(22.5)),
        "the model keeps the new setpoint"
    );
    // lights-garden (unit 3): circuit_2 (coil 1) on
    let ans = rtu_call(&mut s, 3, &[0x05, 0x00, 0x01, 0xFF, 0x00], WAIT)
        .await
        .unwrap();
    assert_eq!(&ans[..6], &[3, 0x05, 0x00, 0x01, 0xFF, 0x00]);
    sim.tick_now();
    assert_eq!(
        sim.value("lights-garden", "circuit_2").unwrap(),
        Some(Value::Bool(true))
    );
    // fire panel status word is read-only
    let ans = rtu_call(&mut s, 1, &[0x06, 0x00, 0x00, 0x00, 0x01], WAIT)
        .await
        .unwrap();
    assert_eq!(&ans[1..3], &[0x86, 0x02]);
    sim.shutdown().await;
}

#[tokio::test]
async fn transport_faults_are_observable_on_the_wire_and_leave_other_devices_alone() {
    let sim = Simulator::start(&demo(), SimOptions::loopback())
        .await
        .unwrap();
    let addr = sim.tcp_addr("tcp-power").unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();

    let id = sim
        .inject(&fault("meter-hvac", FaultName::NoResponse))
        .unwrap();
    assert!(
        tcp_call(&mut s, 1, 3, &read_pdu(4, 0, 2), SILENCE)
            .await
            .is_none(),
        "no_response: silence"
    );
    sim.clear(id);
    let mut s = TcpStream::connect(addr).await.unwrap(); // the late answer-less request is history
    assert!(
        tcp_call(&mut s, 2, 3, &read_pdu(4, 0, 2), WAIT)
            .await
            .unwrap()
            .is_ok()
    );

    let id = sim
        .inject(&FaultConfig {
            code: Some(4),
            ..fault("meter-hvac", FaultName::Exception)
        })
        .unwrap();
    let (_, _, pdu) = tcp_call(&mut s, 3, 3, &read_pdu(4, 0, 2), WAIT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pdu, [0x84, 0x04], "exception 4");
    let (_, _, pdu) = tcp_call(&mut s, 4, 2, &read_pdu(4, 0, 2), WAIT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pdu[0], 4, "the meter next to it answers normally");
    sim.clear(id);

    let delay = Duration::from_millis(250);
    let id = sim
        .inject(&FaultConfig {
            delay: Some(HumanDuration(delay)),
            ..fault("meter-hvac", FaultName::Slow)
        })
        .unwrap();
    let t = Instant::now();
    assert!(
        tcp_call(&mut s, 5, 3, &read_pdu(4, 0, 2), WAIT)
            .await
            .unwrap()
            .is_ok()
    );
    assert!(t.elapsed() >= delay, "slow: {:?}", t.elapsed());
    sim.clear(id);

    let id = sim
        .inject(&fault("meter-hvac", FaultName::Garbage))
        .unwrap();
    let got = tcp_call(&mut s, 6, 3, &read_pdu(4, 0, 2), WAIT)
        .await
        .unwrap();
    assert!(
        got.unwrap_err().contains("protocol id"),
        "garbage is not a Modbus TCP answer"
    );
    sim.clear(id);

    let mut s = TcpStream::connect(addr).await.unwrap();
    sim.inject(&fault("meter-hvac", FaultName::ConnectionReset))
        .unwrap();
    let got = tcp_call(&mut s, 7, 3, &read_pdu(4, 0, 2), WAIT)
        .await
        .unwrap();
    assert!(got.is_err(), "connection_reset closes the connection");
    sim.shutdown().await;
}

#[tokio::test]
async fn corrupt_crc_and_garbage_on_rtu_over_tcp_fail_the_crc_check() {
    let sim = Simulator::start(&demo(), SimOptions::loopback())
        .await
        .unwrap();
    let mut s = TcpStream::connect(sim.tcp_addr("tcp-bas").unwrap())
        .await
        .unwrap();
    for kind in [FaultName::CorruptCrc, FaultName::Garbage] {
        let id = sim.inject(&fault("fcu-lobby", kind)).unwrap();
        // send by hand and collect whatever arrives: garbage has no length to wait for
        let mut frame = vec![5u8, 0x03, 0x00, 0x00, 0x00, 0x08];
        frame.extend_from_slice(&crc(&frame));
        s.write_all(&frame).await.unwrap();
        let mut ans = Vec::new();
        let mut b = [0u8; 64];
        while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), s.read(&mut b)).await
        {
            ans.extend_from_slice(&b[..n]);
        }
        assert!(!ans.is_empty(), "{kind:?}: something arrives");
        assert_ne!(
            crc(&ans[..ans.len() - 2]),
            ans[ans.len() - 2..],
            "{kind:?}: CRC must not check"
        );
        sim.clear(id);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn value_faults_set_the_fault_bit_or_push_a_point_out_of_range_until_cleared() {
    let sim = Simulator::start(&demo(), SimOptions::loopback())
        .await
        .unwrap();
    let mut s = TcpStream::connect(sim.tcp_addr("tcp-bas").unwrap())
        .await
        .unwrap();
    let id = sim
        .inject(&fault("fire-panel-1", FaultName::FaultBit))
        .unwrap();
    let ans = rtu_call(&mut s, 1, &read_pdu(3, 0, 1), WAIT).await.unwrap();
    assert_eq!(
        ans[4] & 1,
        1,
        "fire_alarm (bit 0) is the panel's first critical alarm bit"
    );
    sim.clear(id);
    let ans = rtu_call(&mut s, 1, &read_pdu(3, 0, 1), WAIT).await.unwrap();
    assert_eq!(ans[4] & 1, 0, "cleared at once");

    let f = FaultConfig {
        point: Some("room_temperature".into()),
        ..fault("fcu-office", FaultName::OutOfRange)
    };
    sim.inject(&f).unwrap();
    sim.tick_now();
    let p = sim
        .points("fcu-office")
        .unwrap()
        .into_iter()
        .find(|p| p.name == "room_temperature")
        .unwrap();
    assert!(!p.quality.is_good(), "out of range: {p:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn wire_time_delays_rtu_answers_by_their_duration_on_the_line() {
    let opts = SimOptions {
        wire_time: Some(true),
        ..SimOptions::loopback()
    };
    let sim = Simulator::start(&demo(), opts).await.unwrap();
    let mut s = TcpStream::connect(sim.tcp_addr("tcp-bas").unwrap())
        .await
        .unwrap();
    // fcu-lobby: 8 registers; request 8 bytes + answer 21 bytes = 29 chars of 11 bits at 19200 baud
    // = 16.6 ms, plus two 3.5-char gaps (4 ms). Lower bound only: 15 ms.
    let t = Instant::now();
    let ans = rtu_call(&mut s, 5, &read_pdu(3, 0, 8), WAIT).await.unwrap();
    assert_eq!(ans.len(), 21);
    assert!(
        t.elapsed() >= Duration::from_millis(15),
        "answer came after {:?}",
        t.elapsed()
    );
    sim.shutdown().await;
}

async fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn the_control_interface_injects_lists_and_clears_faults_and_sets_points() {
    let sim = Simulator::start(&demo(), SimOptions::loopback())
        .await
        .unwrap();
    let c = sim.control_addr();
    let (status, body) = http(
        c,
        "POST",
        "/faults",
        r#"{"device":"pump-1","fault":"exception","code":6,"duration":"1m"}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (_, list) = http(c, "GET", "/faults", "").await;
    assert!(
        list.contains(r#""fault":"exception""#) && list.contains(r#""active":true"#),
        "{list}"
    );
    let (status, _) = http(
        c,
        "POST",
        "/faults",
        r#"{"device":"nope","fault":"no_response"}"#,
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = http(
        c,
        "POST",
        "/faults",
        r#"{"device":"pump-1","fault":"slow"}"#,
    )
    .await;
    assert_eq!(status, 422, "slow without delay: {body}");
    let (status, _) = http(c, "DELETE", "/faults/1", "").await;
    assert_eq!(status, 204);
    assert!(sim.faults().is_empty());

    let (status, _) = http(
        c,
        "PUT",
        "/devices/leak-b1-1/points/leak",
        r#"{"value":true,"hold":true}"#,
    )
    .await;
    assert_eq!(status, 204);
    sim.tick_now();
    assert_eq!(
        sim.value("leak-b1-1", "leak").unwrap(),
        Some(Value::Bool(true)),
        "held across ticks"
    );
    let (status, body) = http(c, "GET", "/devices/leak-b1-1/points", "").await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""name":"leak","value":true"#), "{body}");
    http(c, "DELETE", "/devices/leak-b1-1/points/leak", "").await;
    sim.tick_now();
    assert_eq!(
        sim.value("leak-b1-1", "leak").unwrap(),
        Some(Value::Bool(false))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_pty_is_linked_at_the_bus_port_replacing_stale_links_and_unlinked_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("dev/rs485-1");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("/nonexistent/stale", &link).unwrap();
    let mut opts = SimOptions::loopback();
    opts.no_links = false;
    opts.link.insert("rs485-1".into(), link.clone());
    let sim = Simulator::start(&demo(), opts.clone()).await.unwrap();
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        sim.pty_path("rs485-1").unwrap()
    );
    sim.shutdown().await;
    assert!(std::fs::symlink_metadata(&link).is_err(), "link removed");

    std::fs::write(&link, "a real file").unwrap();
    let err = Simulator::start(&demo(), opts).await.unwrap_err();
    assert!(matches!(err, SimError::LinkOccupied { .. }), "{err}");
    assert_eq!(
        std::fs::read_to_string(&link).unwrap(),
        "a real file",
        "never replaced"
    );
}

#[tokio::test]
async fn a_port_already_in_use_is_a_returned_bind_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut opts = SimOptions::loopback();
    opts.listen
        .insert("tcp-power".into(), taken.local_addr().unwrap().to_string());
    let err = Simulator::start(&demo(), opts).await.unwrap_err();
    assert!(
        matches!(&err, SimError::Bind { bus, .. } if bus == "tcp-power"),
        "{err}"
    );
}
