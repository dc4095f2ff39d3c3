//! The serde shape of a device profile (`config/profiles/<name>.toml`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};

use crate::HumanDuration;
use crate::model::{Area, Deadband, WordOrder};

/// A device model described once: its points and health hints.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Human description: maker, model, manual the map follows.
    pub description: String,
    /// Word order used by points that do not state their own.
    #[serde(default)]
    pub order: WordOrder,
    /// Points, in any order.
    #[serde(rename = "point")]
    pub points: Vec<PointDef>,
    /// Fault rules by name: a condition text, or `{ when = "…", for = "30s" }`
    /// with how long the condition must hold before it counts.
    #[serde(default)]
    pub health: BTreeMap<String, RuleDef>,
    /// How `gateway scan --propose` recognises this model: registers whose
    /// value names it (`[[identify]]`). Any one entry matching is enough.
    #[serde(default)]
    pub identify: Vec<IdentifyDef>,
    /// The device itself reports primary-side values (it is programmed
    /// with its CT/PT ratio, like an SDM630-MCT): a device's `ct_ratio` /
    /// `pt_ratio` then scale only the ranges and deadbands of the points
    /// marked `ratio`, not their values. Default false: the registers hold
    /// secondary-side values and the gateway multiplies them.
    #[serde(default)]
    pub primary_values: bool,
    /// A device of this profile must give `ct_ratio` (a CT-only model whose
    /// ranges are written per ampere of CT secondary).
    #[serde(default)]
    pub requires_ct_ratio: bool,
}

/// Which of a device's transformer ratios scale a point (`ratio = "ct"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RatioKind {
    /// Currents: scaled by the device's `ct_ratio`.
    Ct,
    /// Voltages: scaled by the device's `pt_ratio`.
    Pt,
    /// Powers and energies: scaled by `ct_ratio × pt_ratio`.
    CtPt,
}

impl RatioKind {
    /// The factor for a device's ratios (each 1 when not given).
    pub fn factor(self, ct: f64, pt: f64) -> f64 {
        match self {
            RatioKind::Ct => ct,
            RatioKind::Pt => pt,
            RatioKind::CtPt => ct * pt,
        }
    }

    /// As written in a profile.
    pub fn as_str(self) -> &'static str {
        match self {
            RatioKind::Ct => "ct",
            RatioKind::Pt => "pt",
            RatioKind::CtPt => "ct_pt",
        }
    }
}

/// One register (or register pair) whose value tells a device model, as
/// the maker's map documents it (a model code, a device type word).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentifyDef {
    pub area: Area,
    /// Protocol (0-based) address.
    pub address: u16,
    /// How the register(s) are read; numeric types only.
    #[serde(rename = "type")]
    pub type_name: TypeName,
    /// Word order of a two- or four-register type (default: the profile's).
    #[serde(default)]
    pub order: Option<WordOrder>,
    /// The raw values (before scale) that name this model.
    pub equals: Vec<f64>,
    /// What the matched value means, for people (`"DTSU666"`).
    #[serde(default)]
    pub label: Option<String>,
}

/// A fault rule as written, in a profile's `[health]` or a device's
/// `health` table: either a condition text (`"fault == true"`) or a table
/// `{ when = "<condition>", for = "<duration>" }`. `for` is how long the
/// condition must stay true before the device counts as Down (like the
/// `for` of an alerting rule); without it the `[health] down_hold` applies.
/// In a device's table either key may be left out to keep the profile's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleDef {
    /// The condition text; `None` = keep the profile's (device overrides only).
    pub when: Option<String>,
    /// How long the condition must hold; `None` = the profile's, else
    /// `[health] down_hold`.
    pub hold: Option<HumanDuration>,
    /// What people read for this rule, in Chinese (`label_zh`), shown as
    /// the reason of a Down device and in tickets instead of the rule name.
    pub label_zh: Option<String>,
    /// The same in English (`label_en`).
    pub label_en: Option<String>,
}

impl RuleDef {
    /// A rule with only a condition text.
    pub fn text(when: impl Into<String>) -> Self {
        RuleDef {
            when: Some(when.into()),
            ..RuleDef::default()
        }
    }

    /// True for `""` (or only spaces) written as a plain string: on a device,
    /// this disables the profile's rule of the same name.
    pub fn is_disable(&self) -> bool {
        self.hold.is_none()
            && self.label_zh.is_none()
            && self.label_en.is_none()
            && self.when.as_deref().is_some_and(|w| w.trim().is_empty())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleTable {
    #[serde(default)]
    when: Option<String>,
    #[serde(default, rename = "for")]
    hold: Option<HumanDuration>,
    #[serde(default)]
    label_zh: Option<String>,
    #[serde(default)]
    label_en: Option<String>,
}

impl<'de> Deserialize<'de> for RuleDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RuleDef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a condition (\"fault == true\") or a table { when = \"<condition>\", for = \"30s\" }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RuleDef, E> {
                Ok(RuleDef::text(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RuleDef, A::Error> {
                let t = RuleTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                if t.when.is_none()
                    && t.hold.is_none()
                    && t.label_zh.is_none()
                    && t.label_en.is_none()
                {
                    return Err(serde::de::Error::custom(
                        "an empty rule table; give `when = \"<condition>\"` and/or `for = \"30s\"`",
                    ));
                }
                Ok(RuleDef {
                    when: t.when,
                    hold: t.hold,
                    label_zh: t.label_zh,
                    label_en: t.label_en,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A display label in both languages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Label {
    /// Chinese.
    pub zh: String,
    /// English.
    pub en: String,
}

impl Label {
    /// The label as written; a missing side falls back to the other, and
    /// both missing to [`humanise`] of the identifier (`outlet_pressure` →
    /// `Outlet pressure`), so that no screen shows a raw identifier.
    pub fn or_fallback(zh: Option<&str>, en: Option<&str>, id: &str) -> Label {
        let zh = zh.map(str::trim).filter(|s| !s.is_empty());
        let en = en.map(str::trim).filter(|s| !s.is_empty());
        let fallback = || humanise(id);
        Label {
            zh: zh.or(en).map_or_else(fallback, str::to_owned),
            en: en.or(zh).map_or_else(fallback, str::to_owned),
        }
    }
}

/// `outlet_pressure` → `Outlet pressure`: the last resort for a point or
/// rule without a label.
pub fn humanise(id: &str) -> String {
    let words = id.replace('_', " ");
    let mut c = words.trim().chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The display labels of one device: its points' and its fault rules',
/// by name (every enabled point and every rule has one, written or
/// fallen back to, see [`Label::or_fallback`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels {
    /// Point name → label.
    pub points: BTreeMap<String, Label>,
    /// Rule name → label.
    pub rules: BTreeMap<String, Label>,
    /// The points and rules whose label fell back (`point x`, `rule y`):
    /// `gateway check` warns of them.
    pub missing: Vec<String>,
}

impl Profile {
    /// Points and rules without both `label_zh` and `label_en`, as
    /// `point outlet_pressure` / `rule low_pressure` (the shipped profiles
    /// have none, by a test; others fall back, see [`Label::or_fallback`]).
    pub fn missing_labels(&self) -> Vec<String> {
        let blank = |s: &Option<String>| s.as_deref().is_none_or(|s| s.trim().is_empty());
        let mut out: Vec<String> = self
            .points
            .iter()
            .filter(|p| blank(&p.label_zh) || blank(&p.label_en))
            .map(|p| format!("point {}", p.name))
            .collect();
        out.extend(
            self.health
                .iter()
                .filter(|(_, r)| blank(&r.label_zh) || blank(&r.label_en))
                .map(|(n, _)| format!("rule {n}")),
        );
        out
    }
}

/// Type names accepted in `type = "…"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeName {
    Bool,
    Bit,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    String,
}

/// One point of a profile, as written.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointDef {
    pub name: String,
    /// What people read for this point, in Chinese (`出水压力`): the
    /// dashboard, tickets and alarms show it instead of `name`.
    #[serde(default)]
    pub label_zh: Option<String>,
    /// The same in English (`Outlet pressure`).
    #[serde(default)]
    pub label_en: Option<String>,
    #[serde(default)]
    pub unit: String,
    pub area: Area,
    /// Protocol (0-based) address.
    pub address: u16,
    #[serde(rename = "type")]
    pub type_name: TypeName,
    /// For `string`: length in bytes (characters).
    #[serde(default)]
    pub length: Option<u16>,
    /// For `bit`: bit number in the register, 0 = least significant.
    #[serde(default)]
    pub bit: Option<u8>,
    /// Overrides the profile's word order.
    #[serde(default)]
    pub order: Option<WordOrder>,
    #[serde(default = "one")]
    pub scale: f64,
    #[serde(default)]
    pub offset: f64,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    /// Poll at the fast alarm interval.
    #[serde(default)]
    pub alarm: bool,
    /// A hard alarm point (opens a ticket at once when active).
    #[serde(default)]
    pub critical: bool,
    /// Report by exception: `0.05` (absolute, in `unit`) or `"2%"` (of the
    /// last published value). Default: any change is published.
    #[serde(default)]
    pub deadband: Option<Deadband>,
    /// Report by exception: publish at least this often (≥ 1s). Default:
    /// the gateway-wide `[mqtt] heartbeat`.
    #[serde(default)]
    pub heartbeat: Option<HumanDuration>,
    /// Free text shown in tooltips and docs.
    #[serde(default)]
    pub description: Option<String>,
    /// This point deliberately reads registers (or bits) of the point
    /// named here, e.g. a 32-bit counter also read as its low word. Without
    /// it two points sharing an address are an error (bit points on
    /// different bits of one register do not overlap).
    #[serde(default)]
    pub alias_of: Option<String>,
    /// The point may be written (a setpoint, a start/stop or reset coil).
    /// Writing also needs the site to allow it; off by default.
    #[serde(default)]
    pub writable: bool,
    /// Lowest value a write may set, in `unit` (after scale and offset).
    #[serde(default)]
    pub write_min: Option<f64>,
    /// Highest value a write may set, in `unit`.
    #[serde(default)]
    pub write_max: Option<f64>,
    /// A current (`"ct"`), voltage (`"pt"`) or power/energy (`"ct_pt"`)
    /// behind instrument transformers: the device's `ct_ratio` / `pt_ratio`
    /// multiply its value (unless the profile has `primary_values`), its
    /// `min`/`max` and an absolute deadband.
    #[serde(default)]
    pub ratio: Option<RatioKind>,
}

const fn one() -> f64 {
    1.0
}

/// Per-device changes to one profile point.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointOverride {
    /// Protocol (0-based) address of the point on this device, replacing
    /// the profile's; `address_offset` does not apply to it.
    pub address: Option<u16>,
    pub scale: Option<f64>,
    pub offset: Option<f64>,
    pub unit: Option<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub alarm: Option<bool>,
    pub critical: Option<bool>,
    pub order: Option<WordOrder>,
    /// Replaces the point's report-by-exception deadband.
    pub deadband: Option<Deadband>,
    /// Replaces the point's report-by-exception heartbeat.
    pub heartbeat: Option<HumanDuration>,
    /// false = do not poll this point on this device.
    pub enabled: Option<bool>,
}

/// `deadband = 0.05` (absolute) or `deadband = "2%"` (percent). Only the
/// shape is checked here; ranges are checked by validation, with the path.
impl<'de> Deserialize<'de> for Deadband {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Deadband;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number in the point's unit (0.05) or a percentage (\"2%\")")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Deadband, E> {
                Ok(Deadband::Absolute(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Deadband, E> {
                Ok(Deadband::Absolute(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Deadband, E> {
                Ok(Deadband::Absolute(v as f64))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Deadband, E> {
                parse_percent(v).map(Deadband::Percent).ok_or_else(|| {
                    E::custom(format!(
                        "invalid deadband {v:?}; write a number in the point's unit \
                         (deadband = 0.05) or a percentage of the last published value \
                         (deadband = \"2%\")"
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `"2%"`, `" 0.5 % "` → the number before the `%`.
fn parse_percent(text: &str) -> Option<f64> {
    text.trim().strip_suffix('%')?.trim().parse::<f64>().ok()
}

/// A parsed health-hint condition, e.g. `running == true and outlet_pressure < 1.5`.
///
/// Syntax (used by the health layer, issue #3): comparisons `point op value`
/// with `op` one of `== != < <= > >=` and `value` a number or
/// `true`/`false`; joined with `and` / `or` (`and` binds tighter), and
/// parentheses for grouping. Booleans compare as 1 and 0; `<`, `<=`, `>`,
/// `>=` need a number.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// `point op value`.
    Compare {
        /// Point name in the same profile.
        point: String,
        /// Comparison operator.
        op: CompareOp,
        /// The literal compared with.
        value: Literal,
    },
    /// All must hold.
    And(Vec<Condition>),
    /// Any must hold.
    Or(Vec<Condition>),
}

/// A comparison operator of a [`Condition`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// The right-hand side of a comparison.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Literal {
    /// A finite number.
    Number(f64),
    /// `true` or `false`.
    Bool(bool),
}

impl Literal {
    /// The literal as a number (booleans are 1 and 0).
    pub fn as_f64(self) -> f64 {
        match self {
            Literal::Number(n) => n,
            Literal::Bool(b) => f64::from(u8::from(b)),
        }
    }
}

/// Why a condition text does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    /// Something other than what the grammar allows at this place.
    #[error("expected {expected} at character {at}, found {found}")]
    Unexpected {
        /// What the grammar wanted.
        expected: &'static str,
        /// What was there (`end of text` at the end).
        found: String,
        /// 1-based character position.
        at: usize,
    },
    /// An ordering operator with a boolean.
    #[error("{op} compares numbers; use == or != with true/false (at character {at})")]
    OrderingOnBool {
        /// The operator as written.
        op: &'static str,
        /// 1-based character position.
        at: usize,
    },
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Number(f64),
    Op(CompareOp),
    And,
    Or,
    True,
    False,
    Open,
    Close,
    Bad(char),
}

impl Condition {
    /// Parses a condition text.
    pub fn parse(text: &str) -> Result<Self, ConditionError> {
        let tokens = tokenize(text);
        let mut parser = Parser { tokens, pos: 0 };
        let cond = parser.or()?;
        match parser.peek() {
            None => Ok(cond),
            Some((at, t)) => Err(ConditionError::Unexpected {
                expected: "`and`, `or` or the end",
                found: describe(t),
                at: *at,
            }),
        }
    }

    /// Every point name the condition reads, in order of appearance.
    pub fn points(&self) -> Vec<&str> {
        match self {
            Condition::Compare { point, .. } => vec![point.as_str()],
            Condition::And(cs) | Condition::Or(cs) => {
                cs.iter().flat_map(Condition::points).collect()
            }
        }
    }

    /// Evaluates the condition; `value` gives a point's current value as a
    /// number (booleans 1/0). `None` when a needed value is missing.
    pub fn eval(&self, value: &dyn Fn(&str) -> Option<f64>) -> Option<bool> {
        match self {
            Condition::Compare {
                point,
                op,
                value: lit,
            } => {
                let v = value(point)?;
                let l = lit.as_f64();
                Some(match op {
                    CompareOp::Eq => v == l,
                    CompareOp::Ne => v != l,
                    CompareOp::Lt => v < l,
                    CompareOp::Le => v <= l,
                    CompareOp::Gt => v > l,
                    CompareOp::Ge => v >= l,
                })
            }
            Condition::And(cs) => {
                let mut all = true;
                for c in cs {
                    all &= c.eval(value)?;
                }
                Some(all)
            }
            Condition::Or(cs) => {
                let mut any = false;
                for c in cs {
                    any |= c.eval(value)?;
                }
                Some(any)
            }
        }
    }
}

fn describe(t: &Token) -> String {
    match t {
        Token::Ident(s) => format!("{s:?}"),
        Token::Number(n) => format!("number {n}"),
        Token::Op(op) => format!("`{}`", op_str(*op)),
        Token::And => "`and`".to_owned(),
        Token::Or => "`or`".to_owned(),
        Token::True => "`true`".to_owned(),
        Token::False => "`false`".to_owned(),
        Token::Open => "`(`".to_owned(),
        Token::Close => "`)`".to_owned(),
        Token::Bad(c) => format!("{c:?}"),
    }
}

fn op_str(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "==",
        CompareOp::Ne => "!=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
    }
}

/// Splits a condition into tokens with their 1-based character positions.
fn tokenize(text: &str) -> Vec<(usize, Token)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
        let op = match two.as_str() {
            "==" => Some((CompareOp::Eq, 2)),
            "!=" => Some((CompareOp::Ne, 2)),
            "<=" => Some((CompareOp::Le, 2)),
            ">=" => Some((CompareOp::Ge, 2)),
            _ if c == '<' => Some((CompareOp::Lt, 1)),
            _ if c == '>' => Some((CompareOp::Gt, 1)),
            _ => None,
        };
        if let Some((op, n)) = op {
            out.push((at, Token::Op(op)));
            i += n;
        } else if c == '(' || c == ')' {
            out.push((at, if c == '(' { Token::Open } else { Token::Close }));
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push((
                at,
                match word.as_str() {
                    "and" => Token::And,
                    "or" => Token::Or,
                    "true" => Token::True,
                    "false" => Token::False,
                    _ => Token::Ident(word),
                },
            ));
        } else if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' {
            let start = i;
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || chars[i] == '.'
                    || matches!(chars[i], 'e' | 'E')
                    || (matches!(chars[i], '-' | '+') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            match word.parse::<f64>() {
                Ok(n) if n.is_finite() => out.push((at, Token::Number(n))),
                _ => out.push((at, Token::Bad(c))),
            }
        } else {
            out.push((at, Token::Bad(c)));
            i += 1;
        }
    }
    out
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&(usize, Token)> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self, expected: &'static str) -> Result<(usize, Token), ConditionError> {
        let end = self.tokens.last().map_or(1, |(at, _)| at + 1);
        match self.tokens.get(self.pos) {
            Some(t) => {
                self.pos += 1;
                Ok(t.clone())
            }
            None => Err(ConditionError::Unexpected {
                expected,
                found: "end of text".to_owned(),
                at: end,
            }),
        }
    }

    fn or(&mut self) -> Result<Condition, ConditionError> {
        let mut parts = vec![self.and()?];
        while matches!(self.peek(), Some((_, Token::Or))) {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Condition::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Condition, ConditionError> {
        let mut parts = vec![self.primary()?];
        while matches!(self.peek(), Some((_, Token::And))) {
            self.pos += 1;
            parts.push(self.primary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Condition::And(parts)
        })
    }

    fn primary(&mut self) -> Result<Condition, ConditionError> {
        let (at, tok) = self.next("a point name or `(`")?;
        let point = match tok {
            Token::Open => {
                let inner = self.or()?;
                let (at, tok) = self.next("`)`")?;
                if tok != Token::Close {
                    return Err(ConditionError::Unexpected {
                        expected: "`)`",
                        found: describe(&tok),
                        at,
                    });
                }
                return Ok(inner);
            }
            Token::Ident(name) => name,
            other => {
                return Err(ConditionError::Unexpected {
                    expected: "a point name or `(`",
                    found: describe(&other),
                    at,
                });
            }
        };
        let (op_at, tok) = self.next("a comparison (== != < <= > >=)")?;
        let Token::Op(op) = tok else {
            return Err(ConditionError::Unexpected {
                expected: "a comparison (== != < <= > >=)",
                found: describe(&tok),
                at: op_at,
            });
        };
        let (at, tok) = self.next("a number, true or false")?;
        let value = match tok {
            Token::Number(n) => Literal::Number(n),
            Token::True => Literal::Bool(true),
            Token::False => Literal::Bool(false),
            other => {
                return Err(ConditionError::Unexpected {
                    expected: "a number, true or false",
                    found: describe(&other),
                    at,
                });
            }
        };
        if matches!(value, Literal::Bool(_)) && !matches!(op, CompareOp::Eq | CompareOp::Ne) {
            return Err(ConditionError::OrderingOnBool {
                op: op_str(op),
                at: op_at,
            });
        }
        Ok(Condition::Compare { point, op, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comparisons_joined_with_and_binding_tighter_than_or() {
        let c = Condition::parse("a == true or b < 1.5 and c >= -2e1").unwrap();
        assert_eq!(c.points(), vec!["a", "b", "c"]);
        let Condition::Or(parts) = &c else {
            panic!("{c:?}")
        };
        assert!(matches!(parts[1], Condition::And(_)));
        let v = |p: &str| match p {
            "a" => Some(0.0),
            "b" => Some(1.0),
            "c" => Some(-20.0),
            _ => None,
        };
        assert_eq!(c.eval(&v), Some(true));
        assert_eq!(
            Condition::parse("(a == true or b < 1.5) and c > 0")
                .unwrap()
                .eval(&v),
            Some(false)
        );
        assert_eq!(Condition::parse("zzz == 1").unwrap().eval(&v), None);
    }

    #[test]
    fn rejects_malformed_conditions_with_a_position() {
        let e = Condition::parse("running = true").unwrap_err();
        assert!(e.to_string().contains("at character 9"), "{e}");
        assert!(matches!(
            Condition::parse("a < true"),
            Err(ConditionError::OrderingOnBool { .. })
        ));
        assert!(Condition::parse("a == 1 and").is_err());
        assert!(Condition::parse("a == 1 b == 2").is_err());
        assert!(Condition::parse("(a == 1").is_err());
    }

    #[test]
    fn labels_parse_on_points_and_on_both_rule_forms() {
        let p: Profile = toml::from_str(
            r#"
description = "x"
[health]
fault = { when = "fault == true", label_zh = "变频器故障", label_en = "Drive fault" }
slow = { when = "fault == true", for = "30s", label_zh = "压力不足" }
plain = "fault == true"
[[point]]
name = "fault"
label_zh = "故障"
label_en = "Fault"
area = "coil"
address = 0
type = "bool"
[[point]]
name = "outlet_pressure"
area = "holding"
address = 1
type = "u16"
"#,
        )
        .unwrap();
        assert_eq!(p.points[0].label_zh.as_deref(), Some("故障"));
        assert_eq!(p.health["fault"].label_en.as_deref(), Some("Drive fault"));
        assert_eq!(p.health["fault"].when.as_deref(), Some("fault == true"));
        assert!(!p.health["fault"].is_disable());
        assert_eq!(
            p.missing_labels(),
            vec!["point outlet_pressure", "rule plain", "rule slow"]
        );
        // A missing side falls back to the other, both missing to the
        // humanised identifier: never a raw snake_case name.
        let slow = &p.health["slow"];
        let l = Label::or_fallback(slow.label_zh.as_deref(), slow.label_en.as_deref(), "slow");
        assert_eq!((l.zh.as_str(), l.en.as_str()), ("压力不足", "压力不足"));
        let l = Label::or_fallback(None, Some("  "), "outlet_pressure");
        assert_eq!(
            (l.zh.as_str(), l.en.as_str()),
            ("Outlet pressure", "Outlet pressure")
        );
        // A device table that only relabels a rule is not an empty table.
        let r: BTreeMap<String, RuleDef> =
            toml::from_str("fault = { label_en = \"Trip\" }").unwrap();
        assert_eq!(r["fault"].label_en.as_deref(), Some("Trip"));
        assert!(r["fault"].when.is_none());
    }

    #[test]
    fn every_shipped_profile_labels_every_point_and_rule_in_both_languages() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/profiles");
        let mut seen = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().and_then(|x| x.to_str()) != Some("toml") {
                continue;
            }
            let p: Profile = toml::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                p.missing_labels(),
                Vec::<String>::new(),
                "{}",
                path.display()
            );
            for pt in &p.points {
                let zh = pt.label_zh.as_deref().unwrap_or_default();
                assert!(
                    zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                    "{}: point {} label_zh {zh:?} is not Chinese",
                    path.display(),
                    pt.name
                );
                let en = pt.label_en.as_deref().unwrap_or_default();
                assert!(
                    !en.contains('_') && en.is_ascii(),
                    "{}: point {} label_en {en:?}",
                    path.display(),
                    pt.name
                );
            }
            seen += 1;
        }
        assert_eq!(seen, 20, "the twenty shipped profiles");
    }
}
