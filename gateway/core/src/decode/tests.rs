//! Decoder and encoder tests: byte-level fixtures and round-trip properties.

use proptest::prelude::*;

use super::*;
use crate::model::Area;

fn point(data_type: DataType, order: WordOrder) -> Point {
    Point {
        name: "p".into(),
        unit: String::new(),
        area: Area::Holding,
        address: 0,
        data_type,
        order,
        scale: 1.0,
        offset: 0.0,
        min: None,
        max: None,
        alarm: false,
        critical: false,
        deadband: None,
        heartbeat: None,
        write: None,
    }
}

fn good(value: Value) -> (Option<Value>, Quality) {
    (Some(value), Quality::Good)
}

// ---- byte-order fixtures ----

#[test]
fn cdab_f32_two_is_low_word_first() {
    // 2.0f32 = 0x4000_0000: in CDAB the low word (0x0000) comes first.
    let p = point(DataType::F32, WordOrder::Cdab);
    assert_eq!(
        decode_registers(&p, &[0x0000, 0x4000]),
        good(Value::Float(2.0))
    );
    assert_eq!(
        encode_registers(&p, &Value::Float(2.0)),
        Ok(vec![0x0000, 0x4000])
    );
}

#[test]
fn f32_123_456_decodes_in_all_four_orders() {
    // 123.456f32 = 0x42F6_E979: A = 0x42, B = 0xF6, C = 0xE9, D = 0x79.
    let expected = f64::from(123.456f32);
    let cases = [
        // ABCD: [A B] [C D]
        (WordOrder::Abcd, [0x42F6, 0xE979]),
        // CDAB: [C D] [A B]  (word swap, e.g. many energy meters)
        (WordOrder::Cdab, [0xE979, 0x42F6]),
        // BADC: [B A] [D C]  (byte swap inside each register)
        (WordOrder::Badc, [0xF642, 0x79E9]),
        // DCBA: [D C] [B A]  (fully little-endian)
        (WordOrder::Dcba, [0x79E9, 0xF642]),
    ];
    for (order, regs) in cases {
        let p = point(DataType::F32, order);
        assert_eq!(
            decode_registers(&p, &regs),
            good(Value::Float(expected)),
            "{order}"
        );
        assert_eq!(
            encode_registers(&p, &Value::Float(expected)),
            Ok(regs.to_vec()),
            "{order}"
        );
    }
}

#[test]
fn sdm630_phase_voltage_is_a_big_endian_float() {
    // SDM630 input register 30001 "Phase 1 line to neutral volts", f32 ABCD.
    // 230.5f32 = 0x4366_8000: [0x43 0x66] [0x80 0x00].
    let mut p = point(DataType::F32, WordOrder::Abcd);
    p.area = Area::Input;
    assert_eq!(
        decode_registers(&p, &[0x4366, 0x8000]),
        good(Value::Float(230.5))
    );
}

#[test]
fn sixty_four_bit_orders_reverse_all_four_registers_or_swap_bytes_in_each() {
    // 0x0102_0304_0506_0708: registers 0102 0304 0506 0708 big-endian.
    let value = Value::UInt(0x0102_0304_0506_0708);
    let cases = [
        (WordOrder::Abcd, [0x0102, 0x0304, 0x0506, 0x0708]),
        (WordOrder::Cdab, [0x0708, 0x0506, 0x0304, 0x0102]),
        (WordOrder::Badc, [0x0201, 0x0403, 0x0605, 0x0807]),
        (WordOrder::Dcba, [0x0807, 0x0605, 0x0403, 0x0201]),
    ];
    for (order, regs) in cases {
        let p = point(DataType::U64, order);
        assert_eq!(decode_registers(&p, &regs), good(value.clone()), "{order}");
        assert_eq!(encode_registers(&p, &value), Ok(regs.to_vec()), "{order}");
    }
}

#[test]
fn f64_one_in_abcd_and_cdab() {
    // 1.0f64 = 0x3FF0_0000_0000_0000.
    let abcd = point(DataType::F64, WordOrder::Abcd);
    assert_eq!(
        decode_registers(&abcd, &[0x3FF0, 0, 0, 0]),
        good(Value::Float(1.0))
    );
    let cdab = point(DataType::F64, WordOrder::Cdab);
    assert_eq!(
        decode_registers(&cdab, &[0, 0, 0, 0x3FF0]),
        good(Value::Float(1.0))
    );
}

#[test]
fn signed_integers_are_twos_complement() {
    assert_eq!(
        decode_registers(&point(DataType::I16, WordOrder::Abcd), &[0xFFFE]),
        good(Value::Int(-2))
    );
    assert_eq!(
        decode_registers(&point(DataType::U16, WordOrder::Abcd), &[0xFFFE]),
        good(Value::UInt(65534))
    );
    // -100_000 = 0xFFFE_7960.
    assert_eq!(
        decode_registers(&point(DataType::I32, WordOrder::Abcd), &[0xFFFE, 0x7960]),
        good(Value::Int(-100_000))
    );
    assert_eq!(
        decode_registers(
            &point(DataType::I64, WordOrder::Abcd),
            &[0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF]
        ),
        good(Value::Int(-1))
    );
}

#[test]
fn byte_swap_applies_to_sixteen_bit_integers() {
    // DCBA u16: 0x3412 on the wire is 0x1234.
    assert_eq!(
        decode_registers(&point(DataType::U16, WordOrder::Dcba), &[0x3412]),
        good(Value::UInt(0x1234))
    );
    assert_eq!(
        decode_registers(&point(DataType::U16, WordOrder::Cdab), &[0x3412]),
        good(Value::UInt(0x3412))
    );
}

#[test]
fn scale_and_offset_turn_integers_into_floats() {
    let mut p = point(DataType::I16, WordOrder::Abcd);
    p.scale = 0.1;
    p.offset = -40.0;
    // raw 652 → 65.2 − 40 = 25.2 °C.
    let (value, quality) = decode_registers(&p, &[652]);
    assert_eq!(quality, Quality::Good);
    let Some(Value::Float(v)) = value else {
        panic!("expected a float, got {value:?}")
    };
    assert!((v - 25.2).abs() < 1e-9);
    assert_eq!(encode_registers(&p, &Value::Float(25.2)), Ok(vec![652]));
}

#[test]
fn bool_and_bit_points_read_one_register() {
    assert_eq!(
        decode_registers(&point(DataType::Bool, WordOrder::Dcba), &[0x0100]),
        good(Value::Bool(true))
    );
    assert_eq!(
        decode_registers(&point(DataType::Bool, WordOrder::Abcd), &[0]),
        good(Value::Bool(false))
    );
    let bit3 = point(DataType::Bit(3), WordOrder::Abcd);
    assert_eq!(decode_registers(&bit3, &[0b1000]), good(Value::Bool(true)));
    assert_eq!(decode_registers(&bit3, &[0b0111]), good(Value::Bool(false)));
    assert_eq!(
        encode_registers(&bit3, &Value::Bool(true)),
        Ok(vec![0b1000])
    );
    assert_eq!(set_bit(set_bit(0, 0, true), 15, true), 0x8001);
    assert_eq!(set_bit(0xFFFF, 4, false), 0xFFEF);
    assert_eq!(set_bit(7, 16, true), 7);
}

#[test]
fn coils_decode_and_encode_as_booleans() {
    let mut p = point(DataType::Bool, WordOrder::Abcd);
    p.area = Area::Coil;
    assert_eq!(decode_bit(&p, true), good(Value::Bool(true)));
    assert_eq!(encode_bit(&p, &Value::Int(2)), Ok(true));
    assert!(encode_bit(&p, &Value::Text("on".into())).is_err());
}

#[test]
fn text_is_trimmed_of_nuls_and_trailing_spaces() {
    // "SDM630" + two spaces in 4 registers: 'S''D' 'M''6' '3''0' ' '' '.
    let p = point(DataType::String(8), WordOrder::Abcd);
    assert_eq!(
        decode_registers(&p, &[0x5344, 0x4D36, 0x3330, 0x2020]),
        good(Value::Text("SDM630".into()))
    );
    // "AB" then NUL padding.
    assert_eq!(
        decode_registers(&p, &[0x4142, 0, 0, 0]),
        good(Value::Text("AB".into()))
    );
    assert_eq!(
        encode_registers(&p, &Value::Text("AB".into())),
        Ok(vec![0x4142, 0, 0, 0])
    );
    // Byte-swapped text: 'B''A' on the wire.
    let swapped = point(DataType::String(2), WordOrder::Badc);
    assert_eq!(
        decode_registers(&swapped, &[0x4241]),
        good(Value::Text("AB".into()))
    );
    // Odd length: the last register's low byte is not part of the text.
    let odd = point(DataType::String(3), WordOrder::Abcd);
    assert_eq!(
        decode_registers(&odd, &[0x4142, 0x4344]),
        good(Value::Text("ABC".into()))
    );
}

#[test]
fn invalid_utf8_text_is_bad_quality() {
    let p = point(DataType::String(2), WordOrder::Abcd);
    assert_eq!(
        decode_registers(&p, &[0xFF41]),
        (None, Quality::Bad(BadReason::InvalidText))
    );
}

#[test]
fn nan_and_infinity_are_bad_quality_without_a_value() {
    let p = point(DataType::F32, WordOrder::Abcd);
    // 0x7FC0_0000 = quiet NaN; 0x7F80_0000 = +∞; 0xFF80_0000 = −∞.
    assert_eq!(
        decode_registers(&p, &[0x7FC0, 0]),
        (None, Quality::Bad(BadReason::NotANumber))
    );
    assert_eq!(
        decode_registers(&p, &[0x7F80, 0]),
        (None, Quality::Bad(BadReason::Infinite))
    );
    assert_eq!(
        decode_registers(&p, &[0xFF80, 0]),
        (None, Quality::Bad(BadReason::Infinite))
    );
}

#[test]
fn out_of_range_values_are_bad_but_kept() {
    let mut p = point(DataType::U16, WordOrder::Abcd);
    p.min = Some(10.0);
    p.max = Some(20.0);
    assert_eq!(
        decode_registers(&p, &[21]),
        (Some(Value::UInt(21)), Quality::Bad(BadReason::OutOfRange))
    );
    assert_eq!(
        decode_registers(&p, &[9]),
        (Some(Value::UInt(9)), Quality::Bad(BadReason::OutOfRange))
    );
    assert_eq!(decode_registers(&p, &[20]), good(Value::UInt(20)));
}

#[test]
fn a_slice_of_the_wrong_length_is_not_read_rather_than_a_panic() {
    let p = point(DataType::F32, WordOrder::Abcd);
    assert_eq!(
        decode_registers(&p, &[1]),
        (None, Quality::Bad(BadReason::NotRead))
    );
    assert_eq!(
        decode_registers(&p, &[1, 2, 3]),
        (None, Quality::Bad(BadReason::NotRead))
    );
}

#[test]
fn the_encoder_refuses_overflow_wrong_kinds_and_long_text() {
    let u16p = point(DataType::U16, WordOrder::Abcd);
    assert!(matches!(
        encode_registers(&u16p, &Value::UInt(70_000)),
        Err(EncodeError::Overflow { .. })
    ));
    assert!(matches!(
        encode_registers(&u16p, &Value::Int(-1)),
        Err(EncodeError::Overflow { .. })
    ));
    assert!(matches!(
        encode_registers(&u16p, &Value::Float(65535.6)),
        Err(EncodeError::Overflow { .. })
    ));
    assert!(matches!(
        encode_registers(&u16p, &Value::Float(f64::NAN)),
        Err(EncodeError::NotFinite { .. })
    ));
    assert!(matches!(
        encode_registers(&u16p, &Value::Text("x".into())),
        Err(EncodeError::TypeMismatch { .. })
    ));
    assert_eq!(
        encode_registers(&u16p, &Value::Float(65535.4)),
        Ok(vec![0xFFFF])
    );
    let i64p = point(DataType::I64, WordOrder::Abcd);
    assert_eq!(
        encode_registers(&i64p, &Value::Float(-(2f64.powi(63)))),
        Ok(vec![0x8000, 0, 0, 0])
    );
    assert!(matches!(
        encode_registers(&i64p, &Value::UInt(u64::MAX)),
        Err(EncodeError::Overflow { .. })
    ));
    assert!(matches!(
        encode_registers(&i64p, &Value::Float(1e19)),
        Err(EncodeError::Overflow { .. })
    ));
    let text = point(DataType::String(3), WordOrder::Abcd);
    assert!(matches!(
        encode_registers(&text, &Value::Text("four".into())),
        Err(EncodeError::TextTooLong { .. })
    ));
    assert!(matches!(
        encode_registers(&text, &Value::Float(1.0)),
        Err(EncodeError::TypeMismatch { .. })
    ));
    let mut zero = point(DataType::U16, WordOrder::Abcd);
    zero.scale = 0.0;
    assert!(matches!(
        encode_registers(&zero, &Value::Float(1.0)),
        Err(EncodeError::BadScale { .. })
    ));
}

#[test]
fn floats_may_encode_nan_so_a_simulator_can_inject_it() {
    let p = point(DataType::F32, WordOrder::Cdab);
    let regs = encode_registers(&p, &Value::Float(f64::NAN)).unwrap();
    assert_eq!(
        decode_registers(&p, &regs),
        (None, Quality::Bad(BadReason::NotANumber))
    );
}

#[test]
fn a_request_answer_is_sliced_per_point() {
    let points = vec![
        point(DataType::U16, WordOrder::Abcd),
        Point {
            address: 2,
            ..point(DataType::F32, WordOrder::Cdab)
        },
        Point {
            address: 4,
            ..point(DataType::Bit(1), WordOrder::Abcd)
        },
        Point {
            address: 9,
            ..point(DataType::U16, WordOrder::Abcd)
        },
    ];
    let req = Request {
        area: Area::Holding,
        start: 0,
        count: 5,
        points: vec![0, 1, 2, 3],
    };
    let samples = decode_request(&points, &req, &[7, 0xFFFF, 0x0000, 0x4000, 0b10]);
    let got: Vec<_> = samples
        .iter()
        .map(|s| (s.point, s.value.clone(), s.quality))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, Some(Value::UInt(7)), Quality::Good),
            (1, Some(Value::Float(2.0)), Quality::Good),
            (2, Some(Value::Bool(true)), Quality::Good),
            // Outside the answer: not read.
            (3, None, Quality::Bad(BadReason::NotRead)),
        ]
    );
}

#[test]
fn a_bit_request_answer_is_sliced_per_point() {
    let coil = |address| Point {
        area: Area::Coil,
        address,
        ..point(DataType::Bool, WordOrder::Abcd)
    };
    let points = vec![coil(10), coil(12)];
    let req = Request {
        area: Area::Coil,
        start: 10,
        count: 3,
        points: vec![0, 1],
    };
    let samples = decode_request_bits(&points, &req, &[true, false, false]);
    assert_eq!(samples[0].value, Some(Value::Bool(true)));
    assert_eq!(samples[1].value, Some(Value::Bool(false)));
    let failed = failed_request(&req, BadReason::Exception { code: 2 });
    assert!(
        failed
            .iter()
            .all(|s| s.quality == Quality::Bad(BadReason::Exception { code: 2 }))
    );
    assert_eq!(failed.len(), 2);
}

// ---- properties ----

fn arb_order() -> impl Strategy<Value = WordOrder> {
    prop_oneof![
        Just(WordOrder::Abcd),
        Just(WordOrder::Cdab),
        Just(WordOrder::Badc),
        Just(WordOrder::Dcba)
    ]
}

fn arb_numeric_type() -> impl Strategy<Value = DataType> {
    prop_oneof![
        Just(DataType::U16),
        Just(DataType::I16),
        Just(DataType::U32),
        Just(DataType::I32),
        Just(DataType::U64),
        Just(DataType::I64),
        Just(DataType::F32),
        Just(DataType::F64),
    ]
}

proptest! {
    /// Registers → value → registers is the identity for every type and order
    /// when scale is 1 (NaN payloads aside).
    #[test]
    fn decoding_then_encoding_gives_back_the_registers(
        data_type in arb_numeric_type(),
        order in arb_order(),
        regs in prop::collection::vec(any::<u16>(), 4),
    ) {
        let p = point(data_type, order);
        let regs = &regs[..usize::from(p.width())];
        if let (Some(value), Quality::Good) = decode_registers(&p, regs) {
            prop_assert_eq!(encode_registers(&p, &value).unwrap(), regs.to_vec());
        }
    }

    /// Value → registers → value with a decimal scale and an offset: integers
    /// come back to the nearest step, floats to f32 precision.
    #[test]
    fn encoding_then_decoding_gives_back_the_value_with_scale_and_offset(
        data_type in arb_numeric_type(),
        order in arb_order(),
        raw in -30_000i32..30_000,
        scale in prop_oneof![Just(1.0), Just(0.1), Just(0.01), Just(10.0), Just(0.5)],
        offset in prop_oneof![Just(0.0), Just(-40.0), Just(273.15)],
    ) {
        let unsigned = matches!(data_type, DataType::U16 | DataType::U32 | DataType::U64);
        let raw = if unsigned { f64::from(raw.unsigned_abs()) } else { f64::from(raw) };
        let mut p = point(data_type, order);
        p.scale = scale;
        p.offset = offset;
        let value = raw * scale + offset;
        let regs = encode_registers(&p, &Value::Float(value)).unwrap();
        let (decoded, quality) = decode_registers(&p, &regs);
        prop_assert_eq!(quality, Quality::Good);
        let decoded = decoded.and_then(|v| v.as_f64()).unwrap();
        prop_assert!((decoded - value).abs() <= 1e-6 * value.abs().max(1.0), "{} vs {}", decoded, value);
    }

    #[test]
    fn integers_round_trip_exactly_without_scale(order in arb_order(), u in any::<u64>(), i in any::<i64>()) {
        let pu = point(DataType::U64, order);
        prop_assert_eq!(decode_registers(&pu, &encode_registers(&pu, &Value::UInt(u)).unwrap()), good(Value::UInt(u)));
        let pi = point(DataType::I64, order);
        prop_assert_eq!(decode_registers(&pi, &encode_registers(&pi, &Value::Int(i)).unwrap()), good(Value::Int(i)));
    }

    #[test]
    fn text_round_trips(order in arb_order(), text in "[ -~]{0,12}", extra in 0u16..4) {
        let trimmed = text.trim_end_matches(' ').to_string();
        let p = point(DataType::String(text.len() as u16 + extra), order);
        let regs = encode_registers(&p, &Value::Text(text)).unwrap();
        prop_assert_eq!(regs.len(), usize::from(p.width()));
        prop_assert_eq!(decode_registers(&p, &regs), good(Value::Text(trimmed)));
    }

    #[test]
    fn bit_points_merged_into_one_register_decode_independently(bits in any::<u16>()) {
        let mut reg = 0;
        for b in 0..16u8 {
            let p = point(DataType::Bit(b), WordOrder::Abcd);
            let one = encode_registers(&p, &Value::Bool(bits & (1 << b) != 0)).unwrap()[0];
            reg = set_bit(reg, b, one != 0);
        }
        prop_assert_eq!(reg, bits);
        for b in 0..16u8 {
            let p = point(DataType::Bit(b), WordOrder::Abcd);
            prop_assert_eq!(decode_registers(&p, &[reg]), good(Value::Bool(bits & (1 << b) != 0)));
        }
    }

    #[test]
    fn the_decoder_never_panics(
        data_type in prop_oneof![arb_numeric_type(), (0u8..20).prop_map(DataType::Bit), (0u16..9).prop_map(DataType::String), Just(DataType::Bool)],
        order in arb_order(),
        regs in prop::collection::vec(any::<u16>(), 0..6),
    ) {
        let _ = decode_registers(&point(data_type, order), &regs);
    }
}
