//! Decoder and encoder tests: byte-level fixtures and round-trip properties.

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
    }
}

#[test]
fn cdab_f32_two_is_low_word_first() {
    // 2.0f32 = 0x4000_0000: in CDAB the low word (0x0000) comes first.
    let p = point(DataType::F32, WordOrder::Cdab);
    assert_eq!(
        decode_registers(&p, &[0x0000, 0x4000]),
        (Some(Value::Float(2.0)), Quality::Good)
    );
    assert_eq!(
        encode_registers(&p, &Value::Float(2.0)),
        Ok(vec![0x0000, 0x4000])
    );
}
