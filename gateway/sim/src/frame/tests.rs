//! Byte-level fixtures. Frames from the Modbus spec and common tool logs.

use super::*;

#[test]
fn crc_of_known_frames_matches_published_values() {
    // 01        unit 1
    // 03        read holding registers
    // 00 00     address 0
    // 00 0A     10 registers
    // C5 CD     CRC 0xCDC5, low byte first
    let frame = [0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD];
    assert_eq!(crc16(&frame[..6]), 0xCDC5);
    // 11 03 00 6B 00 03 | 76 87: the example of the Modbus serial-line guide.
    assert_eq!(crc16(&[0x11, 0x03, 0x00, 0x6B, 0x00, 0x03]), 0x8776);
    // A frame with its own CRC appended always gives CRC 0.
    assert_eq!(crc16(&frame), 0);
}

#[test]
fn rtu_frame_appends_the_crc_low_byte_first() {
    // 01 03 | 02 byte count | 00 01 value 1 | 79 84 CRC
    assert_eq!(
        rtu_frame(1, &[0x03, 0x02, 0x00, 0x01]),
        [0x01, 0x03, 0x02, 0x00, 0x01, 0x79, 0x84]
    );
}

#[test]
fn rtu_split_accepts_a_good_frame_and_refuses_a_flipped_crc() {
    let frame = [0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD];
    assert_eq!(rtu_split(&frame), Some((1, &frame[1..6])));
    let mut bad = frame;
    bad[7] ^= 0xFF;
    assert_eq!(rtu_split(&bad), None);
    assert_eq!(
        rtu_split(&[0x01, 0x03, 0x00]),
        None,
        "too short to hold a CRC"
    );
}

#[test]
fn parses_a_read_holding_request() {
    // 03 function | 00 6B address 107 | 00 03 three registers
    let req = parse_request(&[0x03, 0x00, 0x6B, 0x00, 0x03]);
    assert_eq!(
        req,
        Ok(Request::ReadRegisters {
            area: Area::Holding,
            address: 107,
            count: 3
        })
    );
}

#[test]
fn parses_reads_of_every_area() {
    let read = |f: u8| parse_request(&[f, 0x00, 0x10, 0x00, 0x08]);
    assert_eq!(
        read(1),
        Ok(Request::ReadBits {
            area: Area::Coil,
            address: 16,
            count: 8
        })
    );
    assert_eq!(
        read(2),
        Ok(Request::ReadBits {
            area: Area::Discrete,
            address: 16,
            count: 8
        })
    );
    assert_eq!(
        read(4),
        Ok(Request::ReadRegisters {
            area: Area::Input,
            address: 16,
            count: 8
        })
    );
}

#[test]
fn refuses_counts_of_zero_or_over_the_limit_with_exception_3() {
    // 03 | 00 00 | 00 00: zero registers
    assert_eq!(
        parse_request(&[0x03, 0x00, 0x00, 0x00, 0x00]),
        Err(ILLEGAL_DATA_VALUE)
    );
    // 03 | 00 00 | 00 7E: 126 registers, one over 125
    assert_eq!(
        parse_request(&[0x03, 0x00, 0x00, 0x00, 0x7E]),
        Err(ILLEGAL_DATA_VALUE)
    );
    // 01 | 00 00 | 07 D1: 2001 coils, one over 2000
    assert_eq!(
        parse_request(&[0x01, 0x00, 0x00, 0x07, 0xD1]),
        Err(ILLEGAL_DATA_VALUE)
    );
    // 01 | 00 00 | 07 D0: exactly 2000 is fine
    assert!(parse_request(&[0x01, 0x00, 0x00, 0x07, 0xD0]).is_ok());
}

#[test]
fn refuses_a_range_past_the_last_address_with_exception_2() {
    // 03 | FF FF address 65535 | 00 02 two registers: the second does not exist
    assert_eq!(
        parse_request(&[0x03, 0xFF, 0xFF, 0x00, 0x02]),
        Err(ILLEGAL_DATA_ADDRESS)
    );
}

#[test]
fn refuses_unknown_functions_with_exception_1() {
    // 2B 0E 01 00: read device identification, not supported
    assert_eq!(
        parse_request(&[0x2B, 0x0E, 0x01, 0x00]),
        Err(ILLEGAL_FUNCTION)
    );
    assert_eq!(parse_request(&[]), Err(ILLEGAL_FUNCTION));
}

#[test]
fn parses_single_writes_and_refuses_a_bad_coil_value() {
    // 05 | 00 AC coil 172 | FF 00 on
    assert_eq!(
        parse_request(&[0x05, 0x00, 0xAC, 0xFF, 0x00]),
        Ok(Request::WriteCoil {
            address: 172,
            value: true
        })
    );
    // 05 | 00 AC | 12 34: neither FF00 nor 0000
    assert_eq!(
        parse_request(&[0x05, 0x00, 0xAC, 0x12, 0x34]),
        Err(ILLEGAL_DATA_VALUE)
    );
    // 06 | 00 01 register 1 | 00 03 value 3
    assert_eq!(
        parse_request(&[0x06, 0x00, 0x01, 0x00, 0x03]),
        Ok(Request::WriteRegister {
            address: 1,
            value: 3
        })
    );
}

#[test]
fn parses_multiple_writes_and_checks_the_byte_count() {
    // 0F | 00 13 coil 19 | 00 0A ten coils | 02 bytes | CD 01: 1011 0011, 01
    let req = parse_request(&[0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01]).unwrap();
    let Request::WriteCoils { address, values } = req else {
        panic!("{req:?}")
    };
    assert_eq!(address, 19);
    assert_eq!(
        values,
        [
            true, false, true, true, false, false, true, true, true, false
        ]
    );
    // 10 | 00 01 | 00 02 two registers | 04 bytes | 00 0A 01 02
    assert_eq!(
        parse_request(&[0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02]),
        Ok(Request::WriteRegisters {
            address: 1,
            values: vec![0x000A, 0x0102]
        })
    );
    // same, but byte count 3 disagrees with two registers
    assert_eq!(
        parse_request(&[0x10, 0x00, 0x01, 0x00, 0x02, 0x03, 0x00, 0x0A, 0x01]),
        Err(ILLEGAL_DATA_VALUE)
    );
}

#[test]
fn encodes_answers_byte_by_byte() {
    // 01 read coils | 02 bytes | CD 01 (bits 0..9 = 1,0,1,1,0,0,1,1,1,0)
    let bits = [
        true, false, true, true, false, false, true, true, true, false,
    ];
    assert_eq!(bits_answer(1, &bits), [0x01, 0x02, 0xCD, 0x01]);
    // 03 | 06 bytes | 02 2B | 00 00 | 00 64
    assert_eq!(
        registers_answer(3, &[0x022B, 0, 100]),
        [0x03, 0x06, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64]
    );
    // 83 exception to function 3 | 02 illegal data address
    assert_eq!(exception_answer(3, ILLEGAL_DATA_ADDRESS), [0x83, 0x02]);
    // 10 | 00 01 address | 00 02 count
    let w = Request::WriteRegisters {
        address: 1,
        values: vec![1, 2],
    };
    assert_eq!(write_answer(&w), [0x10, 0x00, 0x01, 0x00, 0x02]);
    // 05 | 00 AC | FF 00 (echo)
    assert_eq!(
        write_answer(&Request::WriteCoil {
            address: 172,
            value: true
        }),
        [0x05, 0x00, 0xAC, 0xFF, 0x00]
    );
}

#[test]
fn expected_rtu_length_comes_from_the_function_code() {
    assert_eq!(rtu_request_len(&[0x01]), None, "function not yet received");
    assert_eq!(rtu_request_len(&[0x01, 0x03]), Some(8));
    // 01 10 00 01 00 02 | 04 byte count → 7 + 4 data + 2 CRC
    assert_eq!(rtu_request_len(&[0x01, 0x10, 0x00, 0x01, 0x00, 0x02]), None);
    assert_eq!(
        rtu_request_len(&[0x01, 0x10, 0x00, 0x01, 0x00, 0x02, 0x04]),
        Some(13)
    );
    assert_eq!(
        rtu_request_len(&[0x01, 0x2B, 0x0E]),
        None,
        "unknown function: wait for silence"
    );
}

#[test]
fn mbap_header_round_trips_and_rejects_foreign_protocols() {
    // 00 2A transaction 42 | 00 00 Modbus | 00 06 six bytes follow | 11 unit 17
    let h = Mbap::parse(&[0x00, 0x2A, 0x00, 0x00, 0x00, 0x06, 0x11]);
    assert_eq!(
        h,
        Mbap {
            transaction: 42,
            protocol: 0,
            length: 6,
            unit: 17
        }
    );
    assert_eq!(h.pdu_len(), Some(5));
    assert_eq!(
        Mbap::parse(&[0, 1, 0, 1, 0, 6, 1]).pdu_len(),
        None,
        "protocol 1 is not Modbus"
    );
    assert_eq!(
        Mbap::parse(&[0, 1, 0, 0, 0, 1, 1]).pdu_len(),
        None,
        "no room for a function code"
    );
    // answer: 00 2A | 00 00 | 00 05 | 11 | 03 02 00 07
    assert_eq!(
        tcp_frame(42, 17, &[0x03, 0x02, 0x00, 0x07]),
        [
            0x00, 0x2A, 0x00, 0x00, 0x00, 0x05, 0x11, 0x03, 0x02, 0x00, 0x07
        ]
    );
}
