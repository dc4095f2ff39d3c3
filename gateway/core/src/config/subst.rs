//! `${VAR}` and `${VAR:-default}` substitution in configuration text.
//!
//! Substitution runs on the raw text before TOML parsing, so that secrets,
//! addresses and serial ports can come from the environment, and numbers
//! too (`baud = ${BAUD:-9600}`). The rules:
//!
//! - `${NAME}` is replaced by the variable's value; an unset variable, or
//!   one set but empty, is an error that names the variable and its line
//!   and column (an empty value would otherwise surface later as a
//!   validation error with no line, or as a TOML error about something
//!   else). Every such variable is reported, not only the first.
//! - `${NAME:-default}` uses `default` (taken verbatim, up to the first `}`)
//!   when the variable is unset **or empty**, as in the POSIX shell.
//! - `$${` writes a literal `${`.
//! - `NAME` is `[A-Za-z_][A-Za-z0-9_]*`.
//! - Comments (`#` to the end of the line, outside strings) are copied as
//!   they are: a `${…}` in a comment is never looked up.
//! - Inside a basic string (`"…"`, `"""…"""`) the value is escaped for TOML
//!   (`\`, `"`, control characters), so a password containing a quote or a
//!   backslash arrives intact. Inside a literal string (`'…'`) a value that
//!   contains `'` or a line break cannot be written and is an error; outside
//!   strings a value with a line break is an error.
//!
//! Because values never add line breaks, line numbers of the output equal
//! those of the input; [`Substituted::original_offset`] maps a byte offset
//! of the output (e.g. a TOML error span) back to the input, so that columns
//! are right too.
//!
//! The environment is passed in as a function: this module is pure.

use std::fmt;

/// One substitution problem, with its position in the original text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubstError {
    /// `${NAME}` without a default, and the variable is not set.
    #[error(
        "environment variable {name} is not set and has no default (write ${{{name}:-default}} to give one)"
    )]
    Unset {
        /// Variable name.
        name: String,
        /// Where the reference starts.
        at: Position,
    },
    /// `${NAME}` without a default, and the variable is set but empty
    /// (almost always a mistake in a unit or compose file; an empty value
    /// that is meant is written `${NAME:-}`).
    #[error(
        "environment variable {name} is set but empty; give it a value, or write ${{{name}:-default}} (${{{name}:-}} where an empty value is meant)"
    )]
    Empty {
        /// Variable name.
        name: String,
        /// Where the reference starts.
        at: Position,
    },
    /// `${` without a closing `}` on the same line.
    #[error(
        "unterminated ${{…}}: a closing }} is missing on this line (write $${{ for a literal ${{)"
    )]
    Unterminated {
        /// Where the reference starts.
        at: Position,
    },
    /// A reference whose name is not `[A-Za-z_][A-Za-z0-9_]*`.
    #[error(
        "invalid variable name {name:?} in ${{…}} (use letters, digits and _, not starting with a digit)"
    )]
    InvalidName {
        /// The text found between `${` and `}` (or `:-`).
        name: String,
        /// Where the reference starts.
        at: Position,
    },
    /// The value cannot be written where the reference stands.
    #[error("the value of {name} cannot be used here: {reason}")]
    Unrepresentable {
        /// Variable name.
        name: String,
        /// Why, and what to do instead.
        reason: &'static str,
        /// Where the reference starts.
        at: Position,
    },
}

impl SubstError {
    /// Where in the original text the problem is.
    pub fn position(&self) -> Position {
        match self {
            SubstError::Unset { at, .. }
            | SubstError::Empty { at, .. }
            | SubstError::Unterminated { at }
            | SubstError::InvalidName { at, .. }
            | SubstError::Unrepresentable { at, .. } => *at,
        }
    }
}

/// A 1-based line and column (in characters) of a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text` (clamped to the text's end).
    pub fn of_offset(text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Position { line, column }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One replaced span: `input[in_start..in_end]` became `output[out_start..out_end]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Replacement {
    in_start: usize,
    in_end: usize,
    out_start: usize,
    out_end: usize,
}

/// The text after substitution, with a map back to the original offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Substituted {
    /// The substituted text, ready for the TOML parser.
    pub text: String,
    /// Replacements in increasing order.
    replacements: Vec<Replacement>,
}

impl Substituted {
    /// Maps a byte offset in [`Substituted::text`] to the byte offset in the
    /// original text. An offset inside a substituted value maps to the
    /// start of its `${…}` reference.
    pub fn original_offset(&self, out: usize) -> usize {
        let idx = self.replacements.partition_point(|r| r.out_start <= out);
        match idx.checked_sub(1).map(|i| self.replacements[i]) {
            None => out,
            Some(r) if out < r.out_end => r.in_start,
            Some(r) => r.in_end + (out - r.out_end),
        }
    }
}

/// Where a reference stands, which decides how its value is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Context {
    /// Outside any string (a bare value such as a number).
    Bare,
    /// Inside `"…"` or `"""…"""`: the value is escaped.
    Basic,
    /// Inside `'…'`: no escapes exist.
    Literal,
    /// Inside `'''…'''`.
    MultiLiteral,
}

/// Lexer state of the scanner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Normal,
    Comment,
    Basic,
    MultiBasic,
    Literal,
    MultiLiteral,
}

/// Replaces every `${VAR}` / `${VAR:-default}` in `text` using `env`.
///
/// Returns every problem found (unset variables, malformed references),
/// each with its position in `text`.
pub fn substitute(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Substituted, Vec<SubstError>> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut replacements = Vec::new();
    let mut errors = Vec::new();
    let mut state = State::Normal;
    // Start of the not yet copied part of `text`.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        match state {
            State::Comment => {
                if rest[0] == b'\n' {
                    state = State::Normal;
                }
                i += 1;
                continue;
            }
            State::Normal => {
                let (next, skip) = if rest.starts_with(b"#") {
                    (State::Comment, 1)
                } else if rest.starts_with(b"\"\"\"") {
                    (State::MultiBasic, 3)
                } else if rest.starts_with(b"\"") {
                    (State::Basic, 1)
                } else if rest.starts_with(b"'''") {
                    (State::MultiLiteral, 3)
                } else if rest.starts_with(b"'") {
                    (State::Literal, 1)
                } else {
                    (State::Normal, 0)
                };
                if skip > 0 {
                    state = next;
                    i += skip;
                    continue;
                }
            }
            State::Basic | State::MultiBasic => {
                if rest[0] == b'\\' {
                    // An escape: its next character never ends the string.
                    i += 2;
                    continue;
                }
                if state == State::MultiBasic && rest.starts_with(b"\"\"\"") {
                    state = State::Normal;
                    i += 3;
                    continue;
                }
                if state == State::Basic && (rest[0] == b'"' || rest[0] == b'\n') {
                    state = State::Normal;
                    i += 1;
                    continue;
                }
            }
            State::Literal => {
                if rest[0] == b'\'' || rest[0] == b'\n' {
                    state = State::Normal;
                    i += 1;
                    continue;
                }
            }
            State::MultiLiteral => {
                if rest.starts_with(b"'''") {
                    state = State::Normal;
                    i += 3;
                    continue;
                }
            }
        }
        let context = match state {
            // Comments were skipped above.
            State::Normal | State::Comment => Context::Bare,
            State::Basic | State::MultiBasic => Context::Basic,
            State::Literal => Context::Literal,
            State::MultiLiteral => Context::MultiLiteral,
        };
        if rest.starts_with(b"$${") {
            out.push_str(&text[copied..i]);
            let out_start = out.len();
            out.push_str("${");
            replacements.push(Replacement {
                in_start: i,
                in_end: i + 3,
                out_start,
                out_end: out.len(),
            });
            i += 3;
            copied = i;
            continue;
        }
        if !rest.starts_with(b"${") {
            i += 1;
            continue;
        }
        let at = Position::of_offset(text, i);
        let body_start = i + 2;
        let line_end = text[body_start..]
            .find('\n')
            .map_or(text.len(), |n| body_start + n);
        let Some(close) = text[body_start..line_end].find('}').map(|n| body_start + n) else {
            errors.push(SubstError::Unterminated { at });
            i = line_end;
            continue;
        };
        let body = &text[body_start..close];
        let (name, default) = match body.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (body, None),
        };
        let end = close + 1;
        if !is_var_name(name) {
            errors.push(SubstError::InvalidName {
                name: name.to_owned(),
                at,
            });
            i = end;
            continue;
        }
        let value = match (env(name), default) {
            (Some(v), Some(d)) if v.is_empty() => d.to_owned(),
            (Some(v), None) if v.is_empty() => {
                errors.push(SubstError::Empty {
                    name: name.to_owned(),
                    at,
                });
                i = end;
                continue;
            }
            (Some(v), _) => v,
            (None, Some(d)) => d.to_owned(),
            (None, None) => {
                errors.push(SubstError::Unset {
                    name: name.to_owned(),
                    at,
                });
                i = end;
                continue;
            }
        };
        out.push_str(&text[copied..i]);
        let out_start = out.len();
        if let Err(reason) = write_value(&mut out, &value, context) {
            errors.push(SubstError::Unrepresentable {
                name: name.to_owned(),
                reason,
                at,
            });
        }
        replacements.push(Replacement {
            in_start: i,
            in_end: end,
            out_start,
            out_end: out.len(),
        });
        i = end;
        copied = end;
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    out.push_str(&text[copied..]);
    Ok(Substituted {
        text: out,
        replacements,
    })
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Appends `value` as it must be written in `context`.
fn write_value(out: &mut String, value: &str, context: Context) -> Result<(), &'static str> {
    match context {
        Context::Bare => {
            if value.contains(['\n', '\r']) {
                return Err("it contains a line break; put the reference inside quotes");
            }
            out.push_str(value);
        }
        Context::Literal => {
            if value.contains(['\n', '\r']) || value.contains('\'') {
                return Err(
                    "it contains a ' or a line break, which a '…' string cannot hold; use \"…\" quotes",
                );
            }
            out.push_str(value);
        }
        Context::MultiLiteral => {
            if value.contains("'''") || value.contains('\n') {
                return Err("it contains ''' or a line break; use \"…\" quotes");
            }
            out.push_str(value);
        }
        Context::Basic => {
            for c in value.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c.is_control() => {
                        out.push_str(&format!("\\u{:04X}", u32::from(c)));
                    }
                    c => out.push(c),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("10.0.0.5:502".to_owned()),
            "PASS" => Some(r#"p"a\ss"#.to_owned()),
            "EMPTY" => Some(String::new()),
            "BAUD" => Some("19200".to_owned()),
            "QUOTE" => Some("it's".to_owned()),
            _ => None,
        }
    }

    fn sub(text: &str) -> Result<String, Vec<SubstError>> {
        substitute(text, &env).map(|s| s.text)
    }

    #[test]
    fn replaces_set_variables_and_uses_defaults_for_unset_or_empty_ones() {
        assert_eq!(sub(r#"a = "${HOST}""#).unwrap(), r#"a = "10.0.0.5:502""#);
        assert_eq!(
            sub(r#"a = "${NOPE:-/dev/ttyUSB0}""#).unwrap(),
            r#"a = "/dev/ttyUSB0""#
        );
        assert_eq!(sub(r#"a = "${EMPTY:-x}""#).unwrap(), r#"a = "x""#);
        // An empty value is only taken when asked for.
        assert_eq!(sub(r#"a = "${EMPTY:-}""#).unwrap(), r#"a = """#);
        assert_eq!(sub("baud = ${BAUD:-9600}").unwrap(), "baud = 19200");
        assert_eq!(
            sub(r#"a = "${NOPE:-127.0.0.1:15502}""#).unwrap(),
            r#"a = "127.0.0.1:15502""#
        );
    }

    #[test]
    fn a_set_but_empty_variable_without_default_is_an_error_with_its_position() {
        let errs = sub("site = \"a\"\nurl = \"${EMPTY}\"\nport = ${EMPTY}\n").unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            matches!(&errs[0], SubstError::Empty { name, at } if name == "EMPTY" && at.line == 2 && at.column == 8),
            "{errs:?}"
        );
        assert_eq!(errs[1].position().line, 3);
        assert!(errs[0].to_string().contains("set but empty"), "{}", errs[0]);
    }

    #[test]
    fn escapes_values_inside_basic_strings() {
        let text = sub(r#"p = "${PASS}""#).unwrap();
        assert_eq!(text, r#"p = "p\"a\\ss""#);
        #[derive(serde::Deserialize)]
        struct T {
            p: String,
        }
        assert_eq!(toml::from_str::<T>(&text).unwrap().p, r#"p"a\ss"#);
    }

    #[test]
    fn double_dollar_escapes_a_literal_reference() {
        assert_eq!(
            sub(r#"a = "$${HOST} and ${HOST}""#).unwrap(),
            r#"a = "${HOST} and 10.0.0.5:502""#
        );
    }

    #[test]
    fn reports_every_unset_variable_with_its_line_and_column() {
        let errs = sub("a = 1\nb = \"${FIRST}\"\n  c = \"${SECOND}\"\n").unwrap_err();
        assert_eq!(
            errs,
            vec![
                SubstError::Unset {
                    name: "FIRST".into(),
                    at: Position { line: 2, column: 6 }
                },
                SubstError::Unset {
                    name: "SECOND".into(),
                    at: Position { line: 3, column: 8 }
                },
            ]
        );
        assert!(
            errs[0].to_string().contains("FIRST is not set"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn leaves_comments_alone() {
        let text = "# uses ${UNSET_IN_COMMENT}\na = \"#${HOST}\" # ${ALSO_UNSET}\n";
        assert_eq!(
            sub(text).unwrap(),
            "# uses ${UNSET_IN_COMMENT}\na = \"#10.0.0.5:502\" # ${ALSO_UNSET}\n"
        );
    }

    #[test]
    fn refuses_malformed_references_and_unwritable_values() {
        assert!(matches!(
            sub("a = \"${HOST\"\n").unwrap_err()[0],
            SubstError::Unterminated { .. }
        ));
        assert!(matches!(
            sub("a = \"${1X}\"").unwrap_err()[0],
            SubstError::InvalidName { .. }
        ));
        assert!(matches!(
            sub("a = '${QUOTE}'").unwrap_err()[0],
            SubstError::Unrepresentable { .. }
        ));
        assert_eq!(sub("a = '${HOST}'").unwrap(), "a = '10.0.0.5:502'");
    }

    #[test]
    fn maps_output_offsets_back_to_the_original_text() {
        let s = substitute("a = \"${HOST}\" x", &env).unwrap();
        // `x` is at 14 in the original and 19 in the output.
        assert_eq!(&s.text[19..20], "x");
        assert_eq!(s.original_offset(19), 14);
        assert_eq!(s.original_offset(2), 2);
        assert_eq!(s.original_offset(8), 5);
    }
}
