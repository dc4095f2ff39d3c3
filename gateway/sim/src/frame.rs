//! Modbus bytes ⇄ requests and answers: PDU, RTU (CRC16) and TCP (MBAP).
//!
//! Pure functions, no IO, so that the servers can mangle any byte of an
//! answer (flip its CRC, replace it with garbage) and so that every rule is
//! tested byte by byte.
//!
//! - A **PDU** is function code + data. [`parse_request`] checks it the way a
//!   careful slave does: unknown function → exception 1; a count of 0 or over
//!   the protocol limit (125 registers / 2000 bits to read, 123 / 1968 to
//!   write), or a byte count that disagrees with the count → exception 3; a
//!   range past address 65535 → exception 2.
//! - An **RTU frame** is unit id + PDU + CRC16 (poly 0xA001 reflected, init
//!   0xFFFF, low byte first). [`rtu_request_len`] gives the expected length of
//!   a request from its first bytes, so a frame can end as soon as it is
//!   complete; the 3.5-character silence (in the server) ends the others.
//! - A **TCP ADU** is the 7-byte MBAP header (transaction id echoed, protocol
//!   id 0, length = unit id + PDU bytes, unit id) + PDU.

use gateway_core::model::Area;

/// Exception code 1: the function is not supported.
pub const ILLEGAL_FUNCTION: u8 = 1;
/// Exception code 2: an address is not mapped.
pub const ILLEGAL_DATA_ADDRESS: u8 = 2;
/// Exception code 3: a count or value is not acceptable.
pub const ILLEGAL_DATA_VALUE: u8 = 3;

/// Length of the MBAP header, unit id included.
pub const MBAP_LEN: usize = 7;

/// A request a slave understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Functions 1 (coils) and 2 (discrete inputs).
    ReadBits {
        /// `Coil` or `Discrete`.
        area: Area,
        /// First bit.
        address: u16,
        /// Number of bits, 1..=2000.
        count: u16,
    },
    /// Functions 3 (holding) and 4 (input registers).
    ReadRegisters {
        /// `Holding` or `Input`.
        area: Area,
        /// First register.
        address: u16,
        /// Number of registers, 1..=125.
        count: u16,
    },
    /// Function 5.
    WriteCoil {
        /// The coil.
        address: u16,
        /// On (0xFF00) or off (0x0000).
        value: bool,
    },
    /// Function 6.
    WriteRegister {
        /// The holding register.
        address: u16,
        /// Its new value.
        value: u16,
    },
    /// Function 15.
    WriteCoils {
        /// First coil.
        address: u16,
        /// New states, 1..=1968.
        values: Vec<bool>,
    },
    /// Function 16.
    WriteRegisters {
        /// First holding register.
        address: u16,
        /// New values, 1..=123.
        values: Vec<u16>,
    },
}

impl Request {
    /// The function code of the request.
    pub const fn function(&self) -> u8 {
        match self {
            Request::ReadBits { area, .. } | Request::ReadRegisters { area, .. } => {
                area.read_function()
            }
            Request::WriteCoil { .. } => 5,
            Request::WriteRegister { .. } => 6,
            Request::WriteCoils { .. } => 15,
            Request::WriteRegisters { .. } => 16,
        }
    }
}

/// The CRC16 of Modbus RTU (polynomial 0xA001 reflected, initial 0xFFFF).
/// On the wire the low byte goes first.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in bytes {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Parses a request PDU; `Err(code)` is the exception to answer.
/// The function code is `pdu[0]`; an empty PDU is exception 1.
pub fn parse_request(pdu: &[u8]) -> Result<Request, u8> {
    let Some(&function) = pdu.first() else {
        return Err(ILLEGAL_FUNCTION);
    };
    let range = |count: u16, max: u16| -> Result<(u16, u16), u8> {
        let address = be16(pdu, 1);
        if count == 0 || count > max {
            return Err(ILLEGAL_DATA_VALUE);
        }
        if u32::from(address) + u32::from(count) > 0x1_0000 {
            return Err(ILLEGAL_DATA_ADDRESS);
        }
        Ok((address, count))
    };
    match function {
        1..=6 if pdu.len() != 5 => Err(ILLEGAL_DATA_VALUE),
        1 | 2 => {
            let (address, count) = range(be16(pdu, 3), 2000)?;
            let area = if function == 1 {
                Area::Coil
            } else {
                Area::Discrete
            };
            Ok(Request::ReadBits {
                area,
                address,
                count,
            })
        }
        3 | 4 => {
            let (address, count) = range(be16(pdu, 3), 125)?;
            let area = if function == 3 {
                Area::Holding
            } else {
                Area::Input
            };
            Ok(Request::ReadRegisters {
                area,
                address,
                count,
            })
        }
        5 => match be16(pdu, 3) {
            0xFF00 => Ok(Request::WriteCoil {
                address: be16(pdu, 1),
                value: true,
            }),
            0x0000 => Ok(Request::WriteCoil {
                address: be16(pdu, 1),
                value: false,
            }),
            _ => Err(ILLEGAL_DATA_VALUE),
        },
        6 => Ok(Request::WriteRegister {
            address: be16(pdu, 1),
            value: be16(pdu, 3),
        }),
        15 | 16 => {
            if pdu.len() < 6 {
                return Err(ILLEGAL_DATA_VALUE);
            }
            let count = be16(pdu, 3);
            let byte_count = usize::from(pdu[5]);
            let data = &pdu[6..];
            if function == 15 {
                let (address, count) = range(count, 1968)?;
                if byte_count != usize::from(count).div_ceil(8) || data.len() != byte_count {
                    return Err(ILLEGAL_DATA_VALUE);
                }
                let values = (0..usize::from(count))
                    .map(|i| data[i / 8] & (1 << (i % 8)) != 0)
                    .collect();
                Ok(Request::WriteCoils { address, values })
            } else {
                let (address, count) = range(count, 123)?;
                if byte_count != usize::from(count) * 2 || data.len() != byte_count {
                    return Err(ILLEGAL_DATA_VALUE);
                }
                let values = data
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
                Ok(Request::WriteRegisters { address, values })
            }
        }
        _ => Err(ILLEGAL_FUNCTION),
    }
}

/// The answer PDU to a read of bits: function, byte count, bits packed
/// least significant first.
pub fn bits_answer(function: u8, bits: &[bool]) -> Vec<u8> {
    let n = bits.len().div_ceil(8);
    let mut pdu = Vec::with_capacity(2 + n);
    pdu.push(function);
    pdu.push(u8::try_from(n).unwrap_or(u8::MAX));
    pdu.resize(2 + n, 0);
    for (i, &b) in bits.iter().enumerate() {
        if b {
            pdu[2 + i / 8] |= 1 << (i % 8);
        }
    }
    pdu
}

/// The answer PDU to a read of registers: function, byte count, registers big-endian.
pub fn registers_answer(function: u8, regs: &[u16]) -> Vec<u8> {
    let mut pdu = Vec::with_capacity(2 + regs.len() * 2);
    pdu.push(function);
    pdu.push(u8::try_from(regs.len() * 2).unwrap_or(u8::MAX));
    for r in regs {
        pdu.extend_from_slice(&r.to_be_bytes());
    }
    pdu
}

/// The answer PDU to a write: functions 5 and 6 echo the request; 15 and 16
/// answer address and count.
pub fn write_answer(req: &Request) -> Vec<u8> {
    let mut pdu = vec![req.function()];
    let (a, b) = match req {
        Request::WriteCoil { address, value } => (*address, if *value { 0xFF00 } else { 0 }),
        Request::WriteRegister { address, value } => (*address, *value),
        Request::WriteCoils { address, values } => {
            (*address, u16::try_from(values.len()).unwrap_or(0))
        }
        Request::WriteRegisters { address, values } => {
            (*address, u16::try_from(values.len()).unwrap_or(0))
        }
        Request::ReadBits { address, count, .. }
        | Request::ReadRegisters { address, count, .. } => (*address, *count),
    };
    pdu.extend_from_slice(&a.to_be_bytes());
    pdu.extend_from_slice(&b.to_be_bytes());
    pdu
}

/// An exception answer PDU: function | 0x80, code.
pub const fn exception_answer(function: u8, code: u8) -> [u8; 2] {
    [function | 0x80, code]
}

/// Wraps a PDU into an RTU frame: unit, PDU, CRC low byte, CRC high byte.
pub fn rtu_frame(unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(pdu.len() + 3);
    frame.push(unit);
    frame.extend_from_slice(pdu);
    let crc = crc16(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame
}

/// Checks an RTU frame's CRC and splits it into (unit, PDU). `None` for a
/// frame shorter than 4 bytes or with a wrong CRC (a slave stays silent).
pub fn rtu_split(frame: &[u8]) -> Option<(u8, &[u8])> {
    if frame.len() < 4 {
        return None;
    }
    let (body, crc) = frame.split_at(frame.len() - 2);
    (crc16(body) == u16::from_le_bytes([crc[0], crc[1]])).then(|| (body[0], &body[1..]))
}

/// Expected total length of an RTU request frame from its first bytes, or
/// `None` when not yet known (too few bytes) or not knowable (unknown
/// function: the frame then ends at the 3.5-character silence).
pub fn rtu_request_len(buf: &[u8]) -> Option<usize> {
    match *buf.get(1)? {
        1..=6 => Some(8),
        15 | 16 => buf.get(6).map(|&n| 9 + usize::from(n)),
        _ => None,
    }
}

/// A parsed MBAP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mbap {
    /// Transaction id, echoed in the answer.
    pub transaction: u16,
    /// Protocol id, 0 for Modbus.
    pub protocol: u16,
    /// Bytes that follow the length field (unit id + PDU).
    pub length: u16,
    /// Unit id.
    pub unit: u8,
}

impl Mbap {
    /// Reads the 7 header bytes.
    pub fn parse(b: &[u8; MBAP_LEN]) -> Self {
        Self {
            transaction: u16::from_be_bytes([b[0], b[1]]),
            protocol: u16::from_be_bytes([b[2], b[3]]),
            length: u16::from_be_bytes([b[4], b[5]]),
            unit: b[6],
        }
    }

    /// PDU bytes announced by the header, when the header is plausible
    /// (protocol 0, a PDU of 1..=253 bytes); `None` means "close the connection".
    pub fn pdu_len(&self) -> Option<usize> {
        (self.protocol == 0 && (2..=254).contains(&self.length))
            .then(|| usize::from(self.length) - 1)
    }
}

/// A TCP answer: MBAP header (transaction echoed) + PDU.
pub fn tcp_frame(transaction: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut adu = Vec::with_capacity(MBAP_LEN + pdu.len());
    adu.extend_from_slice(&transaction.to_be_bytes());
    adu.extend_from_slice(&[0, 0]);
    adu.extend_from_slice(
        &u16::try_from(pdu.len() + 1)
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    adu.push(unit);
    adu.extend_from_slice(pdu);
    adu
}

#[cfg(test)]
mod tests;
