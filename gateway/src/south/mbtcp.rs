//! Modbus TCP client framing of our own (MBAP header + read PDUs), for
//! `kind = "tcp"` buses.
//!
//! The gateway only reads, one request at a time per connection, with every
//! answer at most 260 bytes (a 7-byte MBAP header and a PDU of at most 253).
//! A tokio-modbus client context keeps an 8 KiB read and an 8 KiB write
//! buffer per connection for that (16 KiB × 500 connections in the load run
//! of `docs/performance.md`); here the request is 12 bytes on the stack and
//! the answer is read into a 260-byte array that lives only while a read is
//! in flight.
//!
//! Framing rules (Modbus Messaging on TCP/IP Implementation Guide V1.0b and
//! Modbus Application Protocol V1.1b3):
//!
//! - the request's transaction id goes up by one per request; the answer
//!   must carry the same id, protocol id 0 and the unit id asked;
//! - the MBAP length counts the unit id and the PDU: 3 to 254;
//! - the answer's function code is the request's (data: a byte count, then
//!   that many bytes) or the request's with bit 7 set (an exception: one
//!   code byte);
//! - registers come as big-endian 16-bit words, exactly `2 × count` bytes;
//!   bits come packed, least significant bit first, in `ceil(count / 8)`
//!   bytes (padding bits are dropped).
//!
//! Anything else is a [`Failure::Framing`]; an I/O error or the peer closing
//! is [`Failure::Io`]. Bytes received are added to a shared counter as they
//! arrive, so that a timeout can tell silence from a malformed answer (see
//! `transport.rs`).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gateway_core::model::Area;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::link::{Data, WriteData};

/// Largest MBAP length field: unit id + a PDU of at most 253 bytes.
const MAX_LENGTH: usize = 254;

/// Why a read did not give data.
#[derive(Debug)]
pub enum Failure {
    /// The device answered with an exception code.
    Exception(u8),
    /// An answer came that is not a valid answer to the request.
    Framing,
    /// The connection failed or was closed.
    Io(io::Error),
}

/// One Modbus TCP connection.
#[derive(Debug)]
pub struct TcpConn {
    stream: TcpStream,
    tid: u16,
    rx_bytes: Arc<AtomicU64>,
}

/// The function code that reads `area`.
fn function(area: Area) -> u8 {
    match area {
        Area::Coil => 0x01,
        Area::Discrete => 0x02,
        Area::Holding => 0x03,
        Area::Input => 0x04,
    }
}

/// The 12 bytes of a read request.
fn request(tid: u16, unit: u8, area: Area, start: u16, count: u16) -> [u8; 12] {
    let [t0, t1] = tid.to_be_bytes();
    let [s0, s1] = start.to_be_bytes();
    let [c0, c1] = count.to_be_bytes();
    [t0, t1, 0, 0, 0, 6, unit, function(area), s0, s1, c0, c1]
}

/// Checks a whole answer (`frame` = MBAP header + PDU) against the request
/// and returns its data.
fn parse(frame: &[u8], tid: u16, unit: u8, area: Area, count: u16) -> Result<Data, Failure> {
    if frame.len() < 9
        || frame[0..2] != tid.to_be_bytes()
        || frame[2..4] != [0, 0]
        || usize::from(u16::from_be_bytes([frame[4], frame[5]])) != frame.len() - 6
        || frame[6] != unit
    {
        return Err(Failure::Framing);
    }
    let pdu = &frame[7..];
    let fc = function(area);
    if pdu[0] == fc | 0x80 {
        return if pdu.len() == 2 {
            Err(Failure::Exception(pdu[1]))
        } else {
            Err(Failure::Framing)
        };
    }
    if pdu[0] != fc || usize::from(pdu[1]) != pdu.len() - 2 {
        return Err(Failure::Framing);
    }
    let bytes = &pdu[2..];
    let count = usize::from(count);
    match area {
        Area::Holding | Area::Input => {
            if bytes.len() != 2 * count {
                return Err(Failure::Framing);
            }
            Ok(Data::Words(
                bytes
                    .chunks_exact(2)
                    .map(|w| u16::from_be_bytes([w[0], w[1]]))
                    .collect(),
            ))
        }
        Area::Coil | Area::Discrete => {
            if bytes.len() != count.div_ceil(8) {
                return Err(Failure::Framing);
            }
            Ok(Data::Bits(
                (0..count)
                    .map(|i| bytes[i / 8] >> (i % 8) & 1 == 1)
                    .collect(),
            ))
        }
    }
}

/// The whole frame of a write request (MBAP header + PDU).
fn write_request(tid: u16, unit: u8, start: u16, data: &WriteData) -> Vec<u8> {
    let mut pdu = vec![data.function()];
    pdu.extend(start.to_be_bytes());
    match data {
        WriteData::Coil(on) => pdu.extend(if *on { [0xFF, 0x00] } else { [0x00, 0x00] }),
        WriteData::Register(v) => pdu.extend(v.to_be_bytes()),
        WriteData::Registers(words) => {
            let n = u16::try_from(words.len()).unwrap_or(u16::MAX);
            pdu.extend(n.to_be_bytes());
            pdu.push(u8::try_from(words.len() * 2).unwrap_or(u8::MAX));
            for w in words {
                pdu.extend(w.to_be_bytes());
            }
        }
    }
    let mut frame = tid.to_be_bytes().to_vec();
    frame.extend([0, 0]);
    frame.extend(
        u16::try_from(pdu.len() + 1)
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    frame.push(unit);
    frame.extend(pdu);
    frame
}

/// Checks the answer to a write: functions 5 and 6 echo the request's PDU,
/// function 16 answers with the start address and the register count.
fn parse_write(frame: &[u8], request: &[u8], unit: u8) -> Result<(), Failure> {
    if frame.len() < 9
        || frame[0..2] != request[0..2]
        || frame[2..4] != [0, 0]
        || usize::from(u16::from_be_bytes([frame[4], frame[5]])) != frame.len() - 6
        || frame[6] != unit
    {
        return Err(Failure::Framing);
    }
    let pdu = &frame[7..];
    let fc = request[7];
    if pdu[0] == fc | 0x80 {
        return if pdu.len() == 2 {
            Err(Failure::Exception(pdu[1]))
        } else {
            Err(Failure::Framing)
        };
    }
    // 5 and 6: the echo of fc, address and value; 16: fc, address, count.
    if pdu.len() != 5 || pdu != &request[7..12] {
        return Err(Failure::Framing);
    }
    Ok(())
}

impl TcpConn {
    /// Over a connected stream; received bytes are added to `rx_bytes`.
    pub fn new(stream: TcpStream, rx_bytes: Arc<AtomicU64>) -> TcpConn {
        TcpConn {
            stream,
            tid: 0,
            rx_bytes,
        }
    }

    /// Fills `buf` from the stream, counting what arrives.
    async fn fill(&mut self, buf: &mut [u8]) -> Result<(), Failure> {
        let mut got = 0;
        while got < buf.len() {
            let n = self
                .stream
                .read(&mut buf[got..])
                .await
                .map_err(Failure::Io)?;
            if n == 0 {
                return Err(Failure::Io(io::Error::from(io::ErrorKind::UnexpectedEof)));
            }
            self.rx_bytes.fetch_add(n as u64, Ordering::Relaxed);
            got += n;
        }
        Ok(())
    }

    /// Reads `count` items of `area` from `start` on `unit`. No timeout
    /// here: the caller bounds the call.
    pub async fn read(
        &mut self,
        unit: u8,
        area: Area,
        start: u16,
        count: u16,
    ) -> Result<Data, Failure> {
        self.tid = self.tid.wrapping_add(1);
        let tid = self.tid;
        self.stream
            .write_all(&request(tid, unit, area, start, count))
            .await
            .map_err(Failure::Io)?;
        let mut frame = [0u8; 6 + MAX_LENGTH];
        self.fill(&mut frame[..7]).await?;
        let length = usize::from(u16::from_be_bytes([frame[4], frame[5]]));
        if !(3..=MAX_LENGTH).contains(&length) {
            return Err(Failure::Framing);
        }
        self.fill(&mut frame[7..6 + length]).await?;
        parse(&frame[..6 + length], tid, unit, area, count)
    }

    /// Writes `data` at `start` on `unit` and checks the device's
    /// confirmation. No timeout here: the caller bounds the call.
    pub async fn write(&mut self, unit: u8, start: u16, data: &WriteData) -> Result<(), Failure> {
        self.tid = self.tid.wrapping_add(1);
        let request = write_request(self.tid, unit, start, data);
        self.stream.write_all(&request).await.map_err(Failure::Io)?;
        let mut frame = [0u8; 6 + MAX_LENGTH];
        self.fill(&mut frame[..7]).await?;
        let length = usize::from(u16::from_be_bytes([frame[4], frame[5]]));
        if !(3..=MAX_LENGTH).contains(&length) {
            return Err(Failure::Framing);
        }
        self.fill(&mut frame[7..6 + length]).await?;
        parse_write(&frame[..6 + length], &request, unit)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn answer(tid: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
        let mut f = tid.to_be_bytes().to_vec();
        f.extend([0, 0]);
        f.extend(u16::try_from(pdu.len() + 1).unwrap().to_be_bytes());
        f.push(unit);
        f.extend(pdu);
        f
    }

    #[test]
    fn write_requests_are_function_5_6_and_16_frames() {
        // tid 7, protocol 0, length 6, unit 1, fc 5, address 0x0010, ON = FF 00
        assert_eq!(
            write_request(7, 1, 16, &WriteData::Coil(true)),
            [0, 7, 0, 0, 0, 6, 1, 5, 0, 16, 0xFF, 0]
        );
        // fc 6, address 2, value 0x1234
        assert_eq!(
            write_request(1, 3, 2, &WriteData::Register(0x1234)),
            [0, 1, 0, 0, 0, 6, 3, 6, 0, 2, 0x12, 0x34]
        );
        // length 11 = unit + fc + address 2 + count 2 + byte count + 4 data bytes
        assert_eq!(
            write_request(2, 1, 100, &WriteData::Registers(vec![0xAABB, 0xCCDD])),
            [
                0, 2, 0, 0, 0, 11, 1, 16, 0, 100, 0, 2, 4, 0xAA, 0xBB, 0xCC, 0xDD
            ]
        );
    }

    #[test]
    fn write_answers_must_echo_the_request() {
        let req = write_request(9, 1, 2, &WriteData::Register(5));
        assert!(parse_write(&answer(9, 1, &[6, 0, 2, 0, 5]), &req, 1).is_ok());
        // Another value echoed: not the answer to this request.
        assert!(matches!(
            parse_write(&answer(9, 1, &[6, 0, 2, 0, 6]), &req, 1),
            Err(Failure::Framing)
        ));
        // Exception 3, illegal data value.
        assert!(matches!(
            parse_write(&answer(9, 1, &[0x86, 3]), &req, 1),
            Err(Failure::Exception(3))
        ));
        let req16 = write_request(4, 1, 10, &WriteData::Registers(vec![1, 2]));
        assert!(parse_write(&answer(4, 1, &[16, 0, 10, 0, 2]), &req16, 1).is_ok());
    }

    #[test]
    fn requests_are_mbap_framed_read_pdus() {
        assert_eq!(
            request(0x1234, 7, Area::Holding, 0x0102, 10),
            [0x12, 0x34, 0, 0, 0, 6, 7, 3, 1, 2, 0, 10]
        );
        assert_eq!(request(1, 1, Area::Coil, 0, 1)[7], 1);
        assert_eq!(request(1, 1, Area::Discrete, 0, 1)[7], 2);
        assert_eq!(request(1, 1, Area::Input, 0, 1)[7], 4);
    }

    #[test]
    fn registers_and_bits_are_decoded_and_padding_dropped() {
        let f = answer(5, 1, &[3, 4, 0x12, 0x34, 0xab, 0xcd]);
        match parse(&f, 5, 1, Area::Holding, 2) {
            Ok(Data::Words(w)) => assert_eq!(w, vec![0x1234, 0xabcd]),
            other => panic!("{other:?}"),
        }
        // 10 coils: 0b1000_0101, 0b0000_0010 → 1,0,1,0,0,0,0,1, 0,1
        let f = answer(6, 2, &[1, 2, 0b1000_0101, 0b0000_0010]);
        match parse(&f, 6, 2, Area::Coil, 10) {
            Ok(Data::Bits(b)) => assert_eq!(
                b,
                vec![
                    true, false, true, false, false, false, false, true, false, true
                ]
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exceptions_and_every_mismatch_are_told_apart() {
        assert!(matches!(
            parse(&answer(1, 1, &[0x83, 2]), 1, 1, Area::Holding, 1),
            Err(Failure::Exception(2))
        ));
        let framing = |f: &[u8], area: Area, count: u16| {
            matches!(parse(f, 1, 1, area, count), Err(Failure::Framing))
        };
        // Another transaction, another unit, another protocol.
        assert!(framing(&answer(2, 1, &[3, 2, 0, 1]), Area::Holding, 1));
        assert!(framing(&answer(1, 9, &[3, 2, 0, 1]), Area::Holding, 1));
        let mut f = answer(1, 1, &[3, 2, 0, 1]);
        f[3] = 1;
        assert!(framing(&f, Area::Holding, 1));
        // Another function, a byte count that lies, too few registers, too few bits.
        assert!(framing(&answer(1, 1, &[4, 2, 0, 1]), Area::Holding, 1));
        assert!(framing(&answer(1, 1, &[3, 4, 0, 1]), Area::Holding, 1));
        assert!(framing(&answer(1, 1, &[3, 2, 0, 1]), Area::Holding, 2));
        assert!(framing(&answer(1, 1, &[2, 1, 0xff]), Area::Discrete, 9));
        // An exception with trailing bytes; an MBAP length that lies.
        assert!(framing(&answer(1, 1, &[0x83, 2, 0]), Area::Holding, 1));
        let mut f = answer(1, 1, &[3, 2, 0, 1]);
        f[5] += 1;
        assert!(framing(&f, Area::Holding, 1));
    }

    #[tokio::test]
    async fn a_round_trip_over_a_socket_counts_the_bytes_received() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            for _ in 0..2 {
                let mut req = [0u8; 12];
                s.read_exact(&mut req).await.unwrap();
                let tid = u16::from_be_bytes([req[0], req[1]]);
                // The answer in two pieces, as a slow device may send it.
                let a = answer(tid, req[6], &[3, 2, 0x00, 0x2a]);
                s.write_all(&a[..5]).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                s.write_all(&a[5..]).await.unwrap();
            }
        });
        let rx = Arc::new(AtomicU64::new(0));
        let mut c = TcpConn::new(TcpStream::connect(addr).await.unwrap(), Arc::clone(&rx));
        for _ in 0..2 {
            match c.read(17, Area::Holding, 100, 1).await {
                Ok(Data::Words(w)) => assert_eq!(w, vec![42]),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(rx.load(Ordering::Relaxed), 2 * 11);
        server.await.unwrap();
        // The server is gone: the peer closing is an I/O failure.
        assert!(matches!(
            c.read(17, Area::Holding, 100, 1).await,
            Err(Failure::Io(_))
        ));
    }
}
