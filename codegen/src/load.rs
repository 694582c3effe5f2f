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
    let d = Diagnostic::new(
        ErrorKind::BadNumber,
        format!(
            "`{literal}` does not fit a TOML integer: TOML integers are signed 64-bit, at most {:#X}",
            number::TOML_INTEGER_MAX
        ),
        span.clone(),
        "too large for a TOML integer",
    );
    Some(match number::string_form_of_literal(literal) {
        Some(s) if !literal.starts_with('-') => d.with_help(format!("write it as a string: `{s}`")),
        _ => d.with_help("no pvgate number is wider than 64 bits"),
    })
}
