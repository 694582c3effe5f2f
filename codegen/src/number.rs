//! The one numeric grammar of every pvgate file: policies, invariant
//! files, `pvgate-trace/1` traces and `pvgate-conformance/1` vectors.
//!
//! A number of an N-bit field is either
//!
//! * a TOML integer (any TOML form: `416`, `0x1A0`, `0o640`, `0b101`,
//!   `1_000`) from 0 to 2^N − 1. TOML integers are signed 64-bit, so a
//!   bare integer is at most `0x7FFF_FFFF_FFFF_FFFF`; or
//! * a string: `0x` (lower case, as in TOML) and 1 to N/4 hex digits
//!   (either case), with `_` allowed only between two digits. Nothing
//!   else: no sign, no spaces, no other radix, no decimal, ASCII only.
//!   `"0xFFFF_FFFF_FFFF_FFFF"` is how a 64-bit value with the top bit set
//!   is written.
//!
//! Leading zeros count as digits, so every string the grammar accepts is in
//! range, and the JSON Schema `pattern` of [`schema_pattern`] says exactly
//! what [`parse_str`] accepts (a test feeds both the same strings).

use std::fmt;

/// Why a value is not a number of its field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NumberError {
    /// A negative TOML integer.
    Negative(i64),
    /// A TOML integer above the field's largest value.
    TooLarge(u64),
    /// A string in the grammar's shape with more hex digits than the field has.
    TooManyDigits,
    /// A string that is not `0x` and hex digits (a sign, a space, another
    /// radix, a stray `_`, a non-ASCII digit, ...).
    BadString,
    /// Neither an integer nor a string (the TOML type's name).
    WrongType(&'static str),
}

impl fmt::Display for NumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumberError::Negative(i) => write!(f, "`{i}` is negative"),
            NumberError::TooLarge(n) => write!(f, "`{n:#x}` is too large"),
            NumberError::TooManyDigits => write!(f, "too many hex digits"),
            NumberError::BadString => write!(f, "not a number"),
            NumberError::WrongType(t) => write!(f, "found {t}, not a number"),
        }
    }
}

/// The largest value of a `bits`-wide field (`bits` is 1 to 64).
pub const fn max_of(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// How many hex digits a string for a `bits`-wide field may have.
pub const fn hex_digits(bits: u32) -> u32 {
    bits.div_ceil(4)
}

/// Parses the string form: `0x`, then 1 to `hex_digits(bits)` hex digits,
/// `_` only between two digits.
pub fn parse_str(text: &str, bits: u32) -> Result<u64, NumberError> {
    let digits = text.strip_prefix("0x").ok_or(NumberError::BadString)?;
    let mut value: u64 = 0;
    let mut count: u32 = 0;
    let mut after_digit = false;
    for c in digits.chars() {
        match c {
            '_' if after_digit => after_digit = false,
            _ => {
                // `to_digit` reads ASCII digits only (no full-width ones).
                let Some(d) = c.to_digit(16) else {
                    return Err(NumberError::BadString);
                };
                count = count.saturating_add(1);
                value = value.wrapping_shl(4) | u64::from(d);
                after_digit = true;
            }
        }
    }
    if !after_digit {
        // Empty, or ending in `_`.
        return Err(NumberError::BadString);
    }
    if count > hex_digits(bits) {
        return Err(NumberError::TooManyDigits);
    }
    Ok(value)
}

/// A number from a TOML value: a non-negative integer or the string form,
/// at most `max_of(bits)`.
pub fn from_toml(value: &toml::Value, bits: u32) -> Result<u64, NumberError> {
    match value {
        toml::Value::Integer(i) => {
            let n = u64::try_from(*i).map_err(|_| NumberError::Negative(*i))?;
            if n > max_of(bits) {
                return Err(NumberError::TooLarge(n));
            }
            Ok(n)
        }
        toml::Value::String(s) => parse_str(s, bits),
        other => Err(NumberError::WrongType(other.type_str())),
    }
}

/// Parses a number typed on the command line (or inside a compound string
/// such as a conformance vector's `cpuid = "0x7.0"`): the string form, or
/// plain ASCII decimal digits. No sign, no spaces, no other radix.
pub fn parse_arg(text: &str, bits: u32) -> Result<u64, NumberError> {
    if text.starts_with("0x") {
        return parse_str(text, bits);
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumberError::BadString);
    }
    let n: u64 = text.parse().map_err(|_| NumberError::TooManyDigits)?;
    if n > max_of(bits) {
        return Err(NumberError::TooLarge(n));
    }
    Ok(n)
}

/// Whether a string is meant as a number rather than a name: names start
/// with a letter; numbers (and the mistakes this grammar refuses: signs,
/// spaces, full-width digits, the empty string) do not.
pub fn looks_numeric(text: &str) -> bool {
    text.chars()
        .next()
        .is_none_or(|c| !c.is_alphabetic() && c != '_')
}

/// The JSON Schema `pattern` of the string form for a `bits`-wide field.
pub fn schema_pattern(bits: u32) -> String {
    let more = hex_digits(bits).saturating_sub(1);
    format!("^0x[0-9a-fA-F](_?[0-9a-fA-F]){{0,{more}}}$")
}

/// The largest bare TOML integer (TOML integers are signed 64-bit).
pub const TOML_INTEGER_MAX: u64 = i64::MAX as u64;

/// The advice for a TOML error about an integer TOML cannot hold (the
/// parser's message mentions "too large" or "overflow"), or `None`.
pub fn toml_error_hint(message: &str) -> Option<&'static str> {
    (message.contains("too large") || message.contains("overflow")).then_some(
        "TOML integers are signed 64-bit: write a larger number as a string, e.g. \"0xFFFF_FFFF_FFFF_FFFF\"",
    )
}

/// A one-line statement of the grammar, for error hints.
pub fn grammar_help(bits: u32) -> String {
    format!(
        "write a number as a TOML integer (`416`, `0x1A0`) or as a string of `0x` and 1 to {} hex digits, `_` only between digits (`\"0x{}\"`)",
        hex_digits(bits),
        if bits >= 64 {
            "FFFF_FFFF_FFFF_FFFF"
        } else if bits >= 32 {
            "FFFF_FFFF"
        } else {
            "FF"
        }
    )
}

/// For a TOML integer literal too large for TOML (`text` as written): the
/// string a policy should write instead, or `None` if it exceeds 64 bits.
pub fn string_form_of_literal(text: &str) -> Option<String> {
    let t = text.trim().replace('_', "");
    let t = t.strip_prefix('+').unwrap_or(&t);
    let (digits, radix) = match t.get(..2) {
        Some("0x") => (t.get(2..)?, 16),
        Some("0o") => (t.get(2..)?, 8),
        Some("0b") => (t.get(2..)?, 2),
        _ => (t, 10),
    };
    let n = u128::from_str_radix(digits, radix).ok()?;
    let n = u64::try_from(n).ok()?;
    Some(format!("\"0x{}\"", grouped_hex(n)))
}

/// The fields narrower than 64 bits, by the key they are written under in
/// any pvgate file: what the field is, and its width.
const NARROW_FIELDS: &[(&str, &str, u32)] = &[
    ("msr", "an MSR index", 32),
    ("range", "an MSR index", 32),
    ("leaf", "a CPUID leaf", 32),
    ("subleaf", "a CPUID subleaf", 32),
    ("min-vector", "a vector", 8),
    ("vector", "a vector", 8),
];

/// What a key's number is (`"an MSR index"`) and its width, for keys whose
/// field is narrower than 64 bits; `None` for 64-bit fields (masks, values).
pub fn narrow_field(key: &str) -> Option<(&'static str, u32)> {
    NARROW_FIELDS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, what, bits)| (*what, *bits))
}

/// The key a value at byte `offset` of TOML `text` is written under: the
/// identifier before the nearest `=` before it (an array may span lines),
/// or `None` when a table header comes first. A dotted key gives its last
/// part.
pub fn key_before(text: &str, offset: usize) -> Option<&str> {
    let before = text.get(..offset)?;
    for (i, line) in before.rsplit('\n').enumerate() {
        let line = line.split(" #").next().unwrap_or(line);
        if let Some(eq) = line.rfind('=') {
            let lhs = line.get(..eq)?.trim_end();
            let start = lhs
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .map_or(0, |i| i + 1);
            let key = lhs.get(start..)?;
            return (!key.is_empty()).then_some(key);
        }
        if i > 0 && line.trim_start().starts_with('[') && !line.trim_start().starts_with("[0") {
            return None;
        }
    }
    None
}

/// The error for a bare integer literal TOML cannot hold (TOML integers
/// are signed 64-bit), written under `key` when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiteralTooLarge {
    /// The message: what the field holds at most.
    pub message: String,
    /// The text under the literal.
    pub label: String,
    /// What to write instead.
    pub help: String,
}

/// Explains a bare integer `literal` (as written) too large for TOML: for a
/// field narrower than 64 bits (`key` is `msr`, `range`, `leaf`, ...) its
/// largest value; for a 64-bit field that TOML integers are signed 64-bit
/// and the string form to write instead.
pub fn literal_too_large(literal: &str, key: Option<&str>) -> LiteralTooLarge {
    if let Some((what, bits)) = key.and_then(narrow_field) {
        let max = max_of(bits);
        return LiteralTooLarge {
            message: format!("`{literal}` is out of range: {what} is at most {max:#X}"),
            label: format!("{what} is {bits} bits"),
            help: format!("{what} is a number from 0 to {max:#X}"),
        };
    }
    let help = match string_form_of_literal(literal) {
        Some(s) if !literal.starts_with('-') => format!("write it as a string: `{s}`"),
        _ => String::from("no pvgate number is wider than 64 bits"),
    };
    LiteralTooLarge {
        message: format!(
            "`{literal}` does not fit a TOML integer: TOML integers are signed 64-bit, at most {TOML_INTEGER_MAX:#X}"
        ),
        label: String::from("too large for a TOML integer"),
        help,
    }
}

/// Hex digits grouped by four from the right with `_`: `FFFF_FFFF`.
fn grouped_hex(n: u64) -> String {
    let hex = format!("{n:X}");
    let mut out = String::new();
    for (i, c) in hex.chars().enumerate() {
        if i > 0 && (hex.len() - i) % 4 == 0 {
            out.push('_');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_string_form_is_hex_with_underscores_between_digits() {
        assert_eq!(parse_str("0x1A0", 32), Ok(0x1a0));
        assert_eq!(parse_str("0xffff_ffff", 32), Ok(0xffff_ffff));
        assert_eq!(parse_str("0xFFFF_FFFF_FFFF_FFFF", 64), Ok(u64::MAX));
        for bad in [
            "0x+1A0", "0x-1", "+5", "0x", "0x_1", "0x1_", "0x1__0", " 0x1", "0X1",
        ] {
            assert_eq!(parse_str(bad, 64), Err(NumberError::BadString), "{bad}");
        }
        assert_eq!(
            parse_str("0x1_0000_0000", 32),
            Err(NumberError::TooManyDigits)
        );
        assert_eq!(
            parse_str("0x10000000000000000", 64),
            Err(NumberError::TooManyDigits)
        );
        // Hostile lengths and characters: refused, never a panic or a wrap.
        let long = format!("0x{}", "f".repeat(10_000));
        assert_eq!(parse_str(&long, 64), Err(NumberError::TooManyDigits));
        for bad in ["0x１０", "0x1\u{0}", "0x1\n", "0x\u{202e}1", "0x١"] {
            assert_eq!(parse_str(bad, 64), Err(NumberError::BadString), "{bad:?}");
        }
    }

    #[test]
    fn command_line_numbers_are_the_string_form_or_decimal() {
        assert_eq!(parse_arg("416", 32), Ok(416));
        assert_eq!(parse_arg("0x1A0", 32), Ok(0x1a0));
        for bad in ["+5", " 1", "0b101", "0o7", "1_000", "", "0x+1"] {
            assert!(parse_arg(bad, 64).is_err(), "{bad}");
        }
        assert_eq!(
            parse_arg("4294967296", 32),
            Err(NumberError::TooLarge(1 << 32))
        );
    }

    #[test]
    fn literals_too_large_for_toml_get_their_string_form() {
        assert_eq!(
            string_form_of_literal("0xFFFFFFFFFFFFFFFF").as_deref(),
            Some("\"0xFFFF_FFFF_FFFF_FFFF\"")
        );
        assert_eq!(
            string_form_of_literal("18446744073709551615").as_deref(),
            Some("\"0xFFFF_FFFF_FFFF_FFFF\"")
        );
        assert_eq!(
            string_form_of_literal("0x1_0000_0000_0000_0000_0").as_deref(),
            None
        );
        assert_eq!(
            string_form_of_literal("9223372036854775808").as_deref(),
            Some("\"0x8000_0000_0000_0000\"")
        );
        assert_eq!(string_form_of_literal("18446744073709551616"), None);
    }

    #[test]
    fn string_forms_parse_back_to_the_literal() {
        for n in [0u64, 0xF, 0x1_0000, 0x8000_0000_0000_0000, u64::MAX] {
            let s = string_form_of_literal(&n.to_string()).unwrap_or_default();
            assert_eq!(parse_str(s.trim_matches('"'), 64), Ok(n), "{s}");
        }
    }

    #[test]
    fn the_key_of_a_value_is_found_across_lines_but_not_across_tables() {
        let text = "[[msr]]\nrange = [0x0, 0xFF]\nwrite-mask = 0x1\nmsr = [\n  0x1,\n  0x2,\n]\n[[pv]]\n0x5";
        let at = |needle: &str| text.find(needle).unwrap();
        assert_eq!(key_before(text, at("0xFF]")), Some("range"));
        assert_eq!(key_before(text, at("0x1\n")), Some("write-mask"));
        assert_eq!(key_before(text, at("0x2")), Some("msr"));
        assert_eq!(key_before(text, at("0x5")), None);
        let inline = "ecx = { host = 0x1 }";
        assert_eq!(
            key_before(inline, inline.find("0x1").unwrap()),
            Some("host")
        );
    }

    #[test]
    fn literals_too_large_say_what_their_field_holds() {
        let msr = literal_too_large("0xFFFFFFFFFFFFFFFF", Some("range"));
        assert_eq!(
            msr.message,
            "`0xFFFFFFFFFFFFFFFF` is out of range: an MSR index is at most 0xFFFFFFFF"
        );
        let mask = literal_too_large("0xFFFFFFFFFFFFFFFF", Some("write-mask"));
        assert!(mask.message.contains("TOML integers are signed 64-bit"));
        assert_eq!(
            mask.help,
            "write it as a string: `\"0xFFFF_FFFF_FFFF_FFFF\"`"
        );
        let wide = literal_too_large("0x1FFFFFFFFFFFFFFFF", None);
        assert_eq!(wide.help, "no pvgate number is wider than 64 bits");
    }
}
