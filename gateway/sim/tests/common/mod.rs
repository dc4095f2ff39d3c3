//! Shared helpers: the demo building and tiny Modbus clients written from
//! the spec (so the tests do not trust the simulator's own framing code).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use gateway_core::config::{Resolved, load};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The demo building (`config/demo.toml` with its profiles), defaults for every `${VAR}`.
pub fn demo() -> Resolved {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let text = std::fs::read_to_string(root.join("demo.toml")).unwrap();
    let mut profiles = BTreeMap::new();
    for entry in std::fs::read_dir(root.join("profiles")).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_stem().unwrap().to_str().unwrap().to_owned();
        profiles.insert(
            name,
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            ),
        );
    }
    let mut resolved = load::load("demo.toml", &text, &profiles, &|_| None).unwrap();
    // Scenario faults are timed for a demo, not for tests.
    resolved.raw.simulator.scenario.clear();
    resolved
}

/// CRC16/Modbus, written again here on purpose.
pub fn crc(bytes: &[u8]) -> [u8; 2] {
    let mut c: u16 = 0xFFFF;
    for b in bytes {
        c ^= u16::from(*b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xA001
            } else {
                c >> 1
            };
        }
    }
    c.to_le_bytes()
}

/// Sends one MBAP request; returns the answer's (transaction id, unit, PDU),
/// `None` on timeout, `Some(Err)` on EOF / bad header.
pub async fn tcp_call<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    tid: u16,
    unit: u8,
    pdu: &[u8],
    wait: Duration,
) -> Option<Result<(u16, u8, Vec<u8>), String>> {
    let mut adu = tid.to_be_bytes().to_vec();
    adu.extend_from_slice(&[0, 0]);
    adu.extend_from_slice(&(pdu.len() as u16 + 1).to_be_bytes());
    adu.push(unit);
    adu.extend_from_slice(pdu);
    s.write_all(&adu).await.unwrap();
    tokio::time::timeout(wait, async {
        let mut head = [0u8; 7];
        s.read_exact(&mut head).await.map_err(|e| e.to_string())?;
        if head[2..4] != [0, 0] {
            return Err(format!("protocol id {:02X}{:02X}", head[2], head[3]));
        }
        let len = u16::from_be_bytes([head[4], head[5]]) as usize - 1;
        let mut pdu = vec![0; len];
        s.read_exact(&mut pdu).await.map_err(|e| e.to_string())?;
        Ok((u16::from_be_bytes([head[0], head[1]]), head[6], pdu))
    })
    .await
    .ok()
}

/// Sends one RTU request (CRC appended); returns the raw answer frame, or
/// `None` when nothing complete arrived in `wait`.
pub async fn rtu_call<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    unit: u8,
    pdu: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    let mut frame = vec![unit];
    frame.extend_from_slice(pdu);
    let c = crc(&frame);
    frame.extend_from_slice(&c);
    s.write_all(&frame).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(wait, async {
        loop {
            let mut b = [0u8; 256];
            let n = s.read(&mut b).await.unwrap();
            got.extend_from_slice(&b[..n]);
            let want = match got.get(1) {
                Some(f) if f & 0x80 != 0 => 5,
                Some(1..=4) => got.get(2).map_or(usize::MAX, |n| 5 + *n as usize),
                Some(5 | 6 | 15 | 16) => 8,
                Some(_) => got.len(), // garbage: take what came
                None => usize::MAX,
            };
            if got.len() >= want {
                return;
            }
        }
    })
    .await
    .ok()?;
    Some(got)
}

/// `03 addr count` / `04 addr count` etc.
pub fn read_pdu(function: u8, address: u16, count: u16) -> Vec<u8> {
    let mut p = vec![function];
    p.extend_from_slice(&address.to_be_bytes());
    p.extend_from_slice(&count.to_be_bytes());
    p
}

/// Registers of a read answer PDU (`03 n data…`).
pub fn regs(pdu: &[u8]) -> Vec<u16> {
    pdu[2..]
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

/// An f32 from two ABCD registers.
pub fn f32_abcd(r: &[u16]) -> f32 {
    f32::from_bits((u32::from(r[0]) << 16) | u32::from(r[1]))
}
