//! Which profile of the library a device on the line most likely is: the
//! pure half of `gateway scan --propose` (the IO half asks the reads this
//! module lists and hands the answers back).
//!
//! # How a device is judged
//!
//! 1. **Identification registers.** Every profile's `[[identify]]` entries
//!    are read first ([`identify_reads`]). A register whose raw value is one
//!    of the entry's `equals` names the model: strong evidence. When one
//!    profile matches, it is the choice and nothing else needs reading.
//! 2. **Scoring by the profile's own registers.** Otherwise (and among
//!    several matching profiles) every candidate's points are read in the
//!    requests the planner makes of them with no hole bridged
//!    ([`point_reads`]; a device that refuses holes still answers), and each
//!    profile is scored register by register ([`evaluate`]):
//!
//!    | a register of the profile…                               | grade |
//!    |----------------------------------------------------------|------:|
//!    | read, every point on it inside its `min`/`max`            | 2 |
//!    | read, plausible for its type (no range given)             | 1 |
//!    | never answered (timeout, link error, not asked)           | 0 |
//!    | read but implausible (out of range, NaN, a "bool" of 7, unprintable text) | −1 |
//!    | refused (exception 1, 2 or 3: illegal function, address, value) | −1 |
//!
//!    A register carrying several points takes the lowest grade of them.
//!    The best possible score of a profile (its *maximum*) is 2 per register
//!    with a range and 1 per other register, so a larger map that reads
//!    fully and plausibly beats a smaller one that also reads (a pump drive
//!    answers the fire panel's five status registers too, but the pump
//!    profile explains nine). A profile none of whose registers read
//!    plausibly is ruled out.
//!
//! The result ([`Verdict`]) gives the choice, the runner-up and the doubts
//! that a draft configuration marks for review.

use std::collections::BTreeMap;

use crate::config::{ConfigError, IdentifyDef, Profile, TypeName, validate::profile_points};
use crate::decode::decode_registers;
use crate::model::{Area, DataType, Point, Quality, Value, WordOrder};
use crate::plan::{Barriers, Limits, plan};

#[cfg(test)]
mod tests;

/// One profile of the library, ready to be compared with a device.
#[derive(Clone, Debug)]
pub struct Model {
    /// The profile name (its file name without `.toml`).
    pub name: String,
    /// Its points, as a device without overrides polls them.
    pub points: Vec<Point>,
    /// Its identification registers, as points with scale 1 (raw values).
    identify: Vec<(Point, IdentifyDef)>,
}

impl Model {
    /// Prepares profile `name`; every problem of the profile (points, or an
    /// `[[identify]]` entry of a non-numeric type) is returned.
    pub fn new(name: &str, profile: &Profile) -> Result<Model, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let points = profile_points(name, profile).unwrap_or_else(|e| {
            errors.extend(e);
            Vec::new()
        });
        let mut identify = Vec::with_capacity(profile.identify.len());
        for (i, def) in profile.identify.iter().enumerate() {
            let order = def.order.unwrap_or(profile.order);
            match identify_point(def, order) {
                Some(p) if def.equals.is_empty() => errors.push(ConfigError::new(
                    format!("profile {name:?} identify[{i}]"),
                    format!(
                        "`equals` is empty: give the raw value(s) at {} {} that name this model",
                        p.area, p.address
                    ),
                )),
                Some(p) => identify.push((p, def.clone())),
                None => errors.push(ConfigError::new(
                    format!("profile {name:?} identify[{i}]"),
                    "an identification register needs a numeric type (u16, i16, u32, i32, u64, i64, f32, f64) in a register area (holding or input)",
                )),
            }
        }
        if errors.is_empty() {
            Ok(Model {
                name: name.to_owned(),
                points,
                identify,
            })
        } else {
            Err(errors)
        }
    }
}

fn identify_point(def: &IdentifyDef, order: WordOrder) -> Option<Point> {
    let data_type = match def.type_name {
        TypeName::U16 => DataType::U16,
        TypeName::I16 => DataType::I16,
        TypeName::U32 => DataType::U32,
        TypeName::I32 => DataType::I32,
        TypeName::U64 => DataType::U64,
        TypeName::I64 => DataType::I64,
        TypeName::F32 => DataType::F32,
        TypeName::F64 => DataType::F64,
        TypeName::Bool | TypeName::Bit | TypeName::String => return None,
    };
    if def.area.is_bits() {
        return None;
    }
    let point = Point {
        name: "identify".to_owned(),
        unit: String::new(),
        area: def.area,
        address: def.address,
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
    };
    (point.end() <= 65_536).then_some(point)
}

/// One read request: `count` registers or bits of `area` from `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Read {
    /// The area read (gives the function code).
    pub area: Area,
    /// First address.
    pub start: u16,
    /// Registers or bits.
    pub count: u16,
}

impl Read {
    const fn end(self) -> u32 {
        self.start as u32 + self.count as u32
    }
}

/// What the device did with one [`Read`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Register values.
    Words(Vec<u16>),
    /// Bit values.
    Bits(Vec<bool>),
    /// A Modbus exception, with its code.
    Exception(u8),
    /// No usable answer: timeout, garbled answer, link error.
    Failed,
}

/// The answers a device gave, by request.
#[derive(Clone, Debug, Default)]
pub struct Answers {
    map: BTreeMap<Read, Answer>,
}

/// How one request of a profile fared.
enum Got<'a> {
    Words(&'a [u16]),
    Bits,
    Refused,
    Unknown,
}

impl Answers {
    /// Records the answer to `read`.
    pub fn insert(&mut self, read: Read, answer: Answer) {
        self.map.insert(read, answer);
    }

    /// True when `read` need not be asked: it was, or a successful read
    /// covering it was.
    pub fn knows(&self, read: Read) -> bool {
        !matches!(self.get(read), Got::Unknown) || self.map.contains_key(&read)
    }

    /// Requests recorded so far.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn get(&self, read: Read) -> Got<'_> {
        match self.map.get(&read) {
            Some(Answer::Words(w)) if w.len() == usize::from(read.count) => {
                return Got::Words(w);
            }
            Some(Answer::Bits(b)) if b.len() >= usize::from(read.count) => {
                return Got::Bits;
            }
            Some(Answer::Exception(1..=3)) => return Got::Refused,
            _ => {}
        }
        // A successful wider read answers this one too.
        for (r, a) in &self.map {
            if r.area != read.area || r.start > read.start || r.end() < read.end() {
                continue;
            }
            let from = usize::from(read.start - r.start);
            let to = from + usize::from(read.count);
            match a {
                Answer::Words(w) if w.len() >= to => return Got::Words(&w[from..to]),
                Answer::Bits(b) if b.len() >= to => return Got::Bits,
                _ => {}
            }
        }
        Got::Unknown
    }
}

/// The reads of every identification register of the library, deduplicated.
pub fn identify_reads(models: &[Model]) -> Vec<Read> {
    let mut reads: Vec<Read> = models
        .iter()
        .flat_map(|m| m.identify.iter())
        .map(|(p, _)| Read {
            area: p.area,
            start: p.address,
            count: p.width(),
        })
        .collect();
    reads.sort_unstable();
    reads.dedup();
    reads
}

/// No hole is bridged: a device that refuses reads spanning unmapped
/// registers answers every request.
const LIMITS: Limits = Limits {
    max_registers: 125,
    max_bits: 2000,
    max_gap: 0,
};

fn requests(model: &Model) -> Vec<crate::plan::Request> {
    plan(&model.points, &|_| true, LIMITS, &Barriers::new())
}

/// The reads that score the models `only` (indices into `models`; `None` =
/// every model), deduplicated and widest first, so that a narrower read a
/// wider one answered need not be asked ([`Answers::knows`]).
pub fn point_reads(models: &[Model], only: Option<&[usize]>) -> Vec<Read> {
    let mut reads: Vec<Read> = models
        .iter()
        .enumerate()
        .filter(|(i, _)| only.is_none_or(|o| o.contains(i)))
        .flat_map(|(_, m)| requests(m))
        .map(|r| Read {
            area: r.area,
            start: r.start,
            count: r.count,
        })
        .collect();
    reads.sort_unstable_by_key(|r| (std::cmp::Reverse(r.count), *r));
    reads.dedup();
    reads
}

/// How one profile scored on a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Score {
    /// Index of the model.
    pub model: usize,
    /// Sum of the register grades (see the module documentation).
    pub score: i64,
    /// The best score the profile could have had.
    pub max: i64,
    /// Registers (and bits) the profile maps.
    pub registers: u32,
    /// Of them: read with plausible values.
    pub plausible: u32,
    /// Read but implausible.
    pub implausible: u32,
    /// Refused by the device.
    pub refused: u32,
    /// Never answered.
    pub unknown: u32,
}

impl Score {
    /// `14 of 14 (9 registers: 9 plausible)`.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("{} plausible", self.plausible)];
        for (n, what) in [
            (self.implausible, "implausible"),
            (self.refused, "refused"),
            (self.unknown, "unanswered"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        format!(
            "{} of {} ({} registers: {})",
            self.score,
            self.max,
            self.registers,
            parts.join(", ")
        )
    }
}

/// An identification register that matched.
#[derive(Clone, Debug, PartialEq)]
pub struct Match {
    /// Index of the model.
    pub model: usize,
    /// Where and what: `holding 100 = 1 ("model code 1")`.
    pub evidence: String,
}

/// What the answers say about one device.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    /// Models whose identification register matched.
    pub matched: Vec<Match>,
    /// Models not ruled out, best first (score, then the larger maximum,
    /// then the name).
    pub ranking: Vec<Score>,
}

impl Verdict {
    /// The chosen model: the one identified (the best scored among several
    /// identified), else the best scored; `None` when nothing fits.
    pub fn choice(&self) -> Option<usize> {
        match self.matched.as_slice() {
            [] => self.ranking.first().map(|s| s.model),
            [one] => Some(one.model),
            many => self
                .ranking
                .iter()
                .map(|s| s.model)
                .find(|m| many.iter().any(|x| x.model == *m))
                .or(Some(many[0].model)),
        }
    }

    /// The score of `model`, when it was scored and not ruled out.
    pub fn score_of(&self, model: usize) -> Option<&Score> {
        self.ranking.iter().find(|s| s.model == model)
    }

    /// The best-scored model other than the choice.
    pub fn runner_up(&self) -> Option<&Score> {
        let choice = self.choice()?;
        self.ranking.iter().find(|s| s.model != choice)
    }

    /// Why a person should check the choice, in words (empty: identified
    /// by one register and nothing against it).
    pub fn doubts(&self, models: &[Model]) -> Vec<String> {
        let Some(choice) = self.choice() else {
            return vec!["no profile of the library fits this device".to_owned()];
        };
        let mut out = Vec::new();
        match self.matched.len() {
            0 => out.push(
                "chosen by its registers' answers, not by an identification register".to_owned(),
            ),
            1 => return out,
            n => out.push(format!(
                "{n} profiles' identification registers match; the best scored was chosen"
            )),
        }
        if let Some(best) = self.score_of(choice) {
            if best.score < best.max {
                out.push(format!(
                    "the profile explains the device only in part: {}",
                    best.describe()
                ));
            }
            if let Some(second) = self.runner_up()
                && second.score * 4 >= best.score * 3
            {
                let name = models.get(second.model).map_or("?", |m| m.name.as_str());
                out.push(format!(
                    "the runner-up {name} scores close: {}",
                    second.describe()
                ));
            }
        }
        out
    }
}

/// Judges a device from `answers` (see the module documentation).
pub fn evaluate(models: &[Model], answers: &Answers) -> Verdict {
    let mut matched = Vec::new();
    for (i, m) in models.iter().enumerate() {
        for (p, def) in &m.identify {
            let read = Read {
                area: p.area,
                start: p.address,
                count: p.width(),
            };
            let Got::Words(w) = answers.get(read) else {
                continue;
            };
            let Some(v) = decode_registers(p, w).0.and_then(|v| v.as_f64()) else {
                continue;
            };
            if def.equals.contains(&v) {
                let label = def
                    .label
                    .as_deref()
                    .map(|l| format!(" ({l:?})"))
                    .unwrap_or_default();
                matched.push(Match {
                    model: i,
                    evidence: format!("{} {} = {v}{label}", p.area, p.address),
                });
                break;
            }
        }
    }
    let mut ranking: Vec<Score> = models
        .iter()
        .enumerate()
        .filter_map(|(i, m)| score(i, m, answers))
        .collect();
    ranking.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then(b.max.cmp(&a.max))
            // Equal scores: the map that explains more of the registers
            // that answered (a fan-coil's eight against a booster set's
            // seven read over the same registers).
            .then(b.plausible.cmp(&a.plausible))
            .then_with(|| models[a.model].name.cmp(&models[b.model].name))
    });
    Verdict { matched, ranking }
}

/// The grade of one register (or bit) of a profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Grade {
    Refused,
    Implausible,
    Unknown,
    Plausible,
    InRange,
}

impl Grade {
    const fn value(self) -> i64 {
        match self {
            Grade::Refused | Grade::Implausible => -1,
            Grade::Unknown => 0,
            Grade::Plausible => 1,
            Grade::InRange => 2,
        }
    }
}

/// Scores one model; `None` when it is ruled out (nothing of it read
/// plausibly, or nothing of it was asked).
fn score(index: usize, model: &Model, answers: &Answers) -> Option<Score> {
    // (area, address) → (lowest grade of its points, best possible).
    let mut grades: BTreeMap<(Area, u16), (Grade, i64)> = BTreeMap::new();
    // (area, address) → (bits named, read only as bits, raw value read).
    let mut bit_words: BTreeMap<(Area, u16), (u16, bool, Option<u16>)> = BTreeMap::new();
    for req in requests(model) {
        let got = answers.get(Read {
            area: req.area,
            start: req.start,
            count: req.count,
        });
        for &pi in &req.points {
            let Some(p) = model.points.get(pi) else {
                continue;
            };
            let best = if p.min.is_some() || p.max.is_some() {
                2
            } else {
                1
            };
            let from = usize::from(p.address - req.start);
            let to = from + usize::from(p.width());
            let grade = match &got {
                Got::Words(w) => w
                    .get(from..to)
                    .map_or(Grade::Unknown, |regs| grade_registers(p, regs)),
                Got::Bits => Grade::Plausible,
                Got::Refused => Grade::Refused,
                Got::Unknown => Grade::Unknown,
            };
            for a in p.address..p.address.saturating_add(p.width()) {
                let e = grades.entry((p.area, a)).or_insert((grade, best));
                e.0 = e.0.min(grade);
                e.1 = e.1.max(best);
            }
            // A register the profile reads only as named bits: remember
            // which bits it names and what the device answered.
            let raw = match &got {
                Got::Words(w) => w.get(from).copied(),
                _ => None,
            };
            let e = bit_words
                .entry((p.area, p.address))
                .or_insert((0, true, raw));
            match p.data_type {
                DataType::Bit(b) if b < 16 => e.0 |= 1 << b,
                _ => e.1 = false,
            }
        }
    }
    // A status word with bits set that the profile does not name is weak
    // evidence for that profile: another device's value (a temperature, a
    // count) read as status bits. Such a register counts as unknown, not
    // plausible.
    for ((area, address), (mask, only_bits, raw)) in bit_words {
        if let (true, Some(raw)) = (only_bits, raw)
            && raw & !mask != 0
            && let Some(e) = grades.get_mut(&(area, address))
            && e.0 == Grade::Plausible
        {
            e.0 = Grade::Unknown;
        }
    }
    let mut s = Score {
        model: index,
        score: 0,
        max: 0,
        registers: 0,
        plausible: 0,
        implausible: 0,
        refused: 0,
        unknown: 0,
    };
    for &(grade, best) in grades.values() {
        s.registers += 1;
        s.score += grade.value();
        s.max += best;
        match grade {
            Grade::Plausible | Grade::InRange => s.plausible += 1,
            Grade::Unknown => s.unknown += 1,
            Grade::Implausible => s.implausible += 1,
            Grade::Refused => s.refused += 1,
        }
    }
    (s.plausible > 0).then_some(s)
}

/// The grade of a register point read as `regs` (see the module table).
fn grade_registers(p: &Point, regs: &[u16]) -> Grade {
    let (value, quality) = decode_registers(p, regs);
    if quality != Quality::Good {
        return Grade::Implausible;
    }
    let plausible = match (&p.data_type, &value) {
        (DataType::Bool, _) => regs.first().is_some_and(|&r| r <= 1),
        (DataType::String(_), Some(Value::Text(t))) => t.bytes().all(|b| (0x20..0x7F).contains(&b)),
        (DataType::F32 | DataType::F64, Some(Value::Float(v))) => {
            let a = v.abs();
            a == 0.0 || (1e-9..1e12).contains(&a)
        }
        (_, Some(_)) => true,
        (_, None) => false,
    };
    match (plausible, p.min.is_some() || p.max.is_some()) {
        (false, _) => Grade::Implausible,
        (true, true) => Grade::InRange,
        (true, false) => Grade::Plausible,
    }
}
