//! Reading policy and invariant files: a bounded read of a regular file,
//! and TOML/serde errors turned into located diagnostics.

use std::path::Path;

use crate::diagnostic::{Diagnostic, ErrorKind, suggest};
use crate::number;

/// Reads a regular file of at most `max` bytes, so a path naming a device
/// or a huge file fails instead of hanging.
pub(crate) fn read_bounded(path: &Path, max: u64) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind as IoKind, Read};
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(Error::new(IoKind::InvalidInput, "not a regular file"));
    }
    if meta.len() > max {
        return Err(Error::new(
            IoKind::InvalidInput,
            format!("larger than {max} bytes"),
        ));
    }
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return Err(Error::new(
            IoKind::InvalidInput,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(text)
}

/// Turns a TOML/serde error into located diagnostics: one per missing
/// required key of the table when keys are missing (serde stops at the
/// first), else the one of [`toml_error`].
pub(crate) fn toml_errors(e: &toml::de::Error, text: &str) -> Vec<Diagnostic> {
    let span = e.span().unwrap_or(0..0);
    let first = e.message().trim().lines().next().unwrap_or("").to_string();
    if first.starts_with("missing field `") && !first.starts_with("missing field `policy`") {
        // Serde stops at the first missing key; look at every table.
        let missing: Vec<Diagnostic> = table_starts(text)
            .into_iter()
            .flat_map(|start| {
                let header = start..line_end(text, start);
                missing_keys(text, start)
                    .into_iter()
                    .map(move |key| missing_key(&key, header.clone()))
            })
            .collect();
        if missing.iter().any(|d| d.span.start == span.start) {
            return missing;
        }
    }
    vec![toml_error(e, text)]
}

/// The byte offsets of every table header line (`[policy]`, `[[msr]]`, ...).
fn table_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .filter(|&i| text.get(i..).is_some_and(|l| l.starts_with('[')))
        .collect()
}

/// The end of the line starting at `start` (without its newline).
fn line_end(text: &str, start: usize) -> usize {
    text.get(start..)
        .and_then(|l| l.find('\n'))
        .map_or(text.len(), |i| start + i)
}

/// The diagnostic for one missing required key.
fn missing_key(field: &str, span: std::ops::Range<usize>) -> Diagnostic {
    Diagnostic::new(
        ErrorKind::MissingKey,
        format!("missing key `{field}`"),
        span,
        format!("this table needs `{field}`"),
    )
}

/// Every required key absent from the table whose header starts at
/// `start` (`[policy]`, `[[msr]]`, ...), in the schema's order; empty when
/// the table is not one of the policy language's.
fn missing_keys(text: &str, start: usize) -> Vec<String> {
    // The table runs to the next header.
    let Some(rest) = text.get(start..) else {
        return Vec::new();
    };
    let end = rest
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .find(|&i| {
            rest.get(i..)
                .is_some_and(|l| l.trim_start().starts_with('['))
        })
        .unwrap_or(rest.len());
    let table = rest.get(..end).unwrap_or(rest);
    let header = table.trim_start().lines().next().unwrap_or("");
    let name = header.trim().trim_matches(['[', ']']).trim();
    let Some(def) = crate::model::definition_of_table(name) else {
        return Vec::new();
    };
    let Ok(parsed) = toml::from_str::<toml::Table>(table) else {
        return Vec::new();
    };
    let present = match parsed.get(name) {
        Some(toml::Value::Table(t)) => t,
        Some(toml::Value::Array(a)) => match a.last() {
            Some(toml::Value::Table(t)) => t,
            _ => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    crate::model::required_keys(def)
        .into_iter()
        .filter(|k| !present.contains_key(k))
        .collect()
}

/// Turns a TOML/serde error into a located diagnostic.
pub(crate) fn toml_error(e: &toml::de::Error, text: &str) -> Diagnostic {
    let span = e.span().unwrap_or(0..0);
    let message = e.message().trim().to_string();
    let first = message.lines().next().unwrap_or("").to_string();
    if let Some(rest) = first.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or("");
        let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        return Diagnostic::new(
            ErrorKind::UnknownKey,
            format!("unknown key `{field}`"),
            span,
            format!(
                "expected one of {}",
                expected
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .with_suggestion(suggest(field, expected.iter().copied()));
    }
    if let Some(rest) = first.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or("");
        return Diagnostic::new(
            ErrorKind::MissingKey,
            format!("missing key `{field}`"),
            span,
            format!("this table needs `{field}`"),
        );
    }
    if let Some(d) = integer_too_large(&first, &span, text) {
        return d;
    }
    Diagnostic::new(ErrorKind::Syntax, first.clone(), span, first)
}

/// A bare integer TOML cannot hold (TOML integers are signed 64-bit):
/// say so and give the string form of the numeric grammar.
fn integer_too_large(
    message: &str,
    span: &std::ops::Range<usize>,
    text: &str,
) -> Option<Diagnostic> {
    let literal = text.get(span.clone())?.trim();
    let is_integer = literal
        .strip_prefix(['+', '-'])
        .unwrap_or(literal)
        .starts_with(|c: char| c.is_ascii_digit());
    if !is_integer || !(message.contains("too large") || message.contains("overflow")) {
        return None;
    }
    let key = number::key_before(text, span.start);
    let why = number::literal_too_large(literal, key);
    let kind = if key.and_then(number::narrow_field).is_some() {
        ErrorKind::OutOfRange
    } else {
        ErrorKind::BadNumber
    };
    Some(Diagnostic::new(kind, why.message, span.clone(), why.label).with_help(why.help))
}
