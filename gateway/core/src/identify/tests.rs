#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use super::*;
use crate::config::load::parse_profile;
use crate::decode::{encode_bit, encode_registers, set_bit};

/// Every profile shipped in `config/profiles`.
fn library() -> Vec<Model> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/profiles");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "toml")
                .then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    names
        .iter()
        .map(|n| {
            let text = std::fs::read_to_string(dir.join(format!("{n}.toml"))).unwrap();
            Model::new(n, &parse_profile(n, &text).unwrap()).unwrap()
        })
        .collect()
}

fn model(name: &str, text: &str) -> Model {
    Model::new(name, &parse_profile(name, text).unwrap()).unwrap()
}

/// A device that maps exactly `model`'s points, each holding a value in
/// the middle of its range (0 without one), and refuses any read that
/// touches an address it does not map (exception 2), like a strict meter.
#[derive(Default)]
struct Device {
    words: BTreeMap<(Area, u16), u16>,
    bits: BTreeMap<(Area, u16), bool>,
    asked: usize,
}

impl Device {
    fn of(model: &Model) -> Device {
        let mut d = Device::default();
        for p in &model.points {
            let v = match (p.min, p.max) {
                (Some(a), Some(b)) => (a + b) / 2.0,
                (Some(a), None) => a,
                (None, Some(b)) => b.min(0.0),
                (None, None) => 0.0,
            };
            let value = match p.data_type {
                DataType::Bool | DataType::Bit(_) => Value::Bool(false),
                DataType::String(_) => Value::Text("MODEL-1".into()),
                DataType::F32 | DataType::F64 => Value::Float(v),
                _ => Value::Float(v.round()),
            };
            if p.area.is_bits() {
                d.bits
                    .insert((p.area, p.address), encode_bit(p, &value).unwrap());
            } else if let DataType::Bit(bit) = p.data_type {
                let r = d.words.entry((p.area, p.address)).or_insert(0);
                *r = set_bit(*r, bit, false);
            } else {
                for (i, w) in encode_registers(p, &value).unwrap().into_iter().enumerate() {
                    d.words.insert((p.area, p.address + i as u16), w);
                }
            }
        }
        // A real device of the model also answers its identification
        // registers with the documented value.
        for (p, def) in &model.identify {
            let value = Value::Float(def.equals[0]);
            for (i, w) in encode_registers(p, &value).unwrap().into_iter().enumerate() {
                d.words.insert((p.area, p.address + i as u16), w);
            }
        }
        d
    }

    fn answer(&mut self, r: Read) -> Answer {
        self.asked += 1;
        let addrs = r.start..r.start + r.count;
        if r.area.is_bits() {
            let bits: Option<Vec<bool>> = addrs
                .map(|a| self.bits.get(&(r.area, a)).copied())
                .collect();
            bits.map_or(Answer::Exception(2), Answer::Bits)
        } else {
            let words: Option<Vec<u16>> = addrs
                .map(|a| self.words.get(&(r.area, a)).copied())
                .collect();
            words.map_or(Answer::Exception(2), Answer::Words)
        }
    }

    /// What `gateway scan --propose` does: identification reads, then the
    /// point reads unless one profile was identified.
    fn judge(&mut self, models: &[Model]) -> Verdict {
        let mut answers = Answers::default();
        for r in identify_reads(models) {
            let a = self.answer(r);
            answers.insert(r, a);
        }
        let v = evaluate(models, &answers);
        if v.matched.len() == 1 {
            return v;
        }
        let only: Vec<usize> = v.matched.iter().map(|m| m.model).collect();
        for r in point_reads(models, (!only.is_empty()).then_some(only.as_slice())) {
            if !answers.knows(r) {
                let a = self.answer(r);
                answers.insert(r, a);
            }
        }
        evaluate(models, &answers)
    }
}

#[test]
fn every_shipped_profile_is_recognised_on_a_device_that_maps_exactly_its_points() {
    let lib = library();
    assert!(lib.len() >= 10, "{} profiles", lib.len());
    for (i, m) in lib.iter().enumerate() {
        let mut dev = Device::of(m);
        let v = dev.judge(&lib);
        assert_eq!(
            v.choice().map(|c| lib[c].name.as_str()),
            Some(m.name.as_str()),
            "{}: {v:?}",
            m.name
        );
        // Recognised by its identification register: nothing else is read.
        if v.matched.is_empty() {
            let best = v.score_of(i).unwrap();
            assert_eq!(best.score, best.max, "{}: {}", m.name, best.describe());
        }
        // Within the scan's cap of requests per unit
        // (`south::adhoc::MAX_IDENTIFY_READS` in the gateway crate).
        assert!(dev.asked <= 64, "{}: {} requests", m.name, dev.asked);
    }
}

#[test]
fn a_larger_map_that_reads_fully_beats_a_smaller_one_that_also_reads() {
    let lib = library();
    let pump = lib.iter().position(|m| m.name == "pump-vfd").unwrap();
    let v = Device::of(&lib[pump]).judge(&lib);
    assert_eq!(v.choice(), Some(pump));
    // The fan coil's and the fire panel's holding registers 0-7 and 0-4
    // also read on a pump drive: they rank below it.
    let names: Vec<&str> = v
        .ranking
        .iter()
        .map(|s| lib[s.model].name.as_str())
        .collect();
    assert_eq!(names[0], "pump-vfd", "{names:?}");
    assert!(names.contains(&"fire-panel"), "{names:?}");
    assert!(!names.contains(&"meter-sdm630"), "ruled out: {names:?}");
    let doubts = v.doubts(&lib);
    assert!(
        doubts
            .iter()
            .any(|d| d.contains("not by an identification register")),
        "{doubts:?}"
    );
}

const TWO: &str = r#"
description = "two holding registers"
[[point]]
name = "a"
area = "holding"
address = 0
type = "u16"
min = 0.0
max = 10.0
[[point]]
name = "b"
area = "holding"
address = 1
type = "u16"
min = 0.0
max = 10.0
"#;

#[test]
fn values_outside_the_range_lower_the_score_and_a_refusal_rules_out() {
    let models = vec![model("two", TWO)];
    let read = Read {
        area: Area::Holding,
        start: 0,
        count: 2,
    };
    let mut ok = Answers::default();
    ok.insert(read, Answer::Words(vec![3, 4]));
    let s = evaluate(&models, &ok).ranking[0].clone();
    assert_eq!((s.score, s.max, s.plausible), (4, 4, 2));

    let mut half = Answers::default();
    half.insert(read, Answer::Words(vec![3, 400]));
    let s = evaluate(&models, &half).ranking[0].clone();
    assert_eq!((s.score, s.plausible, s.implausible), (1, 1, 1));
    assert!(s.describe().contains("1 implausible"), "{}", s.describe());

    let mut refused = Answers::default();
    refused.insert(read, Answer::Exception(2));
    assert!(evaluate(&models, &refused).ranking.is_empty());

    // A timeout is no evidence either way.
    let mut silent = Answers::default();
    silent.insert(read, Answer::Failed);
    assert!(evaluate(&models, &silent).ranking.is_empty());
    assert_eq!(
        evaluate(&models, &silent).doubts(&models),
        vec!["no profile of the library fits this device".to_owned()]
    );
}

#[test]
fn type_plausibility_counts_where_no_range_is_given() {
    let text = r#"
description = "types"
[[point]]
name = "on"
area = "holding"
address = 0
type = "bool"
[[point]]
name = "x"
area = "holding"
address = 1
type = "f32"
[[point]]
name = "name"
area = "holding"
address = 3
type = "string"
length = 2
"#;
    let models = vec![model("types", text)];
    let read = Read {
        area: Area::Holding,
        start: 0,
        count: 4,
    };
    let judge = |words: Vec<u16>| {
        let mut a = Answers::default();
        a.insert(read, Answer::Words(words));
        evaluate(&models, &a).ranking.first().cloned()
    };
    // 1 = true, 1.5f32 = 0x3FC0_0000, "OK".
    let good = judge(vec![1, 0x3FC0, 0x0000, 0x4F4B]).unwrap();
    assert_eq!((good.plausible, good.implausible), (4, 0));
    // A "bool" of 7, a NaN and a control character.
    let bad = judge(vec![7, 0x7FC0, 0x0000, 0x0701]);
    assert!(bad.is_none(), "{bad:?}");
}

const CODED: &str = r#"
description = "a device with a model code"
[[identify]]
area = "holding"
address = 100
type = "u16"
equals = [0x0630, 0x0631]
label = "model 630"
[[point]]
name = "a"
area = "holding"
address = 0
type = "u16"
"#;

#[test]
fn an_identification_register_decides_without_reading_the_points() {
    let mut lib = library();
    lib.push(model("coded", CODED));
    let coded = lib.len() - 1;
    let mut answers = Answers::default();
    let reads = identify_reads(&lib);
    assert!(reads.contains(&Read {
        area: Area::Holding,
        start: 100,
        count: 1
    }));
    for r in reads {
        answers.insert(r, Answer::Words(vec![0x0631]));
    }
    let v = evaluate(&lib, &answers);
    assert_eq!(v.choice(), Some(coded));
    assert_eq!(v.matched.len(), 1);
    assert!(
        v.matched[0].evidence.contains("holding 100 = 1585")
            && v.matched[0].evidence.contains("model 630"),
        "{:?}",
        v.matched
    );
    assert!(v.doubts(&lib).is_empty());

    // Another value names no model: back to scoring.
    let mut other = Answers::default();
    other.insert(
        Read {
            area: Area::Holding,
            start: 100,
            count: 1,
        },
        Answer::Words(vec![7]),
    );
    assert!(evaluate(&lib, &other).matched.is_empty());
}

#[test]
fn an_identification_register_must_be_numeric() {
    let text = CODED.replace("type = \"u16\"\nequals", "type = \"string\"\nequals");
    let errs = Model::new("coded", &parse_profile("coded", &text).unwrap()).unwrap_err();
    assert!(errs[0].to_string().contains("numeric type"), "{errs:?}");
}

#[test]
fn a_narrower_read_is_answered_by_a_wider_one() {
    let mut a = Answers::default();
    a.insert(
        Read {
            area: Area::Holding,
            start: 0,
            count: 9,
        },
        Answer::Words((0..9).collect()),
    );
    let narrow = Read {
        area: Area::Holding,
        start: 2,
        count: 3,
    };
    assert!(a.knows(narrow));
    assert!(matches!(a.get(narrow), Got::Words(&[2, 3, 4])));
    assert!(!a.knows(Read {
        area: Area::Input,
        start: 2,
        count: 3
    }));
    assert!(!a.knows(Read {
        area: Area::Holding,
        start: 8,
        count: 3
    }));
}
