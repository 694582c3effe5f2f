//! Reading a `pvgate-conformance/1` vector file: its cases with their
//! lines, and the values written in them.

use std::path::Path;

use pvgate_codegen::diagnostic::line_col;
use pvgate_codegen::number::{self, NumberError};
use serde::Deserialize;
use toml::Spanned;

use crate::error::CliError;

/// A `pvgate-conformance/1` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VectorFile {
    format: Spanned<String>,
    title: String,
    #[serde(default)]
    case: Vec<Spanned<Case>>,
}

/// One `[[case]]`: a request and the decision required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Case {
    pub(super) vm: String,
    pub(super) phase: String,
    #[serde(default)]
    pub(super) pv: Option<String>,
    #[serde(default)]
    pub(super) msr: Option<toml::Value>,
    #[serde(default)]
    pub(super) access: Option<String>,
    #[serde(default)]
    pub(super) value: Option<toml::Value>,
    #[serde(default)]
    pub(super) effective: Option<toml::Value>,
    #[serde(default)]
    pub(super) cpuid: Option<String>,
    #[serde(default)]
    pub(super) reg: Option<String>,
    #[serde(default)]
    pub(super) bit: Option<toml::Value>,
    pub(super) expect: String,
    /// Free text for the reader of the vector file.
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) note: Option<String>,
}

/// Reads a vector file: its title and each case with its line.
pub(super) fn load_vectors(path: &Path) -> Result<(String, Vec<(usize, Case)>), CliError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::arg(format!("cannot read vectors `{shown}`: {e}")))?;
    let file: VectorFile = toml::from_str(&text).map_err(|e| {
        let (line, col) = line_col(&text, e.span().map_or(0, |s| s.start));
        let message = e.message().lines().next().unwrap_or("invalid vectors");
        let hint = number::toml_error_hint(message)
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
        CliError::arg(format!("{shown}:{line}:{col}: {message}{hint}"))
    })?;
    if file.format.get_ref() != "pvgate-conformance/1" {
        let (line, col) = line_col(&text, file.format.span().start);
        return Err(CliError::arg(format!(
            "{shown}:{line}:{col}: unknown vector format `{}`; expected `pvgate-conformance/1`",
            file.format.get_ref()
        )));
    }
    let cases = file
        .case
        .into_iter()
        .map(|c| (line_col(&text, c.span().start).0, c.into_inner()))
        .collect();
    Ok((file.title, cases))
}

/// A case error at `path:line`.
pub(super) fn bad_case(path: &Path, line: usize, message: String) -> CliError {
    CliError::arg(format!("{}:{line}: {message}", path.display()))
}

/// A name parsed by `parse`, or an "unknown" error at the case.
pub(super) fn parse_name<T>(
    path: &Path,
    line: usize,
    what: &str,
    text: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, CliError> {
    parse(text).ok_or_else(|| bad_case(path, line, format!("unknown {what} `{text}`")))
}

/// A number of a vector file, in the one numeric grammar
/// (`pvgate_codegen::number`): a TOML integer or a `0x` string of at most
/// `bits` bits.
pub(super) fn number_of(
    path: &Path,
    line: usize,
    what: &str,
    v: &toml::Value,
    bits: u32,
) -> Result<u64, CliError> {
    number::from_toml(v, bits).map_err(|e| {
        let help = match e {
            NumberError::Negative(_) | NumberError::TooLarge(_) | NumberError::TooManyDigits => {
                format!("at most {:#x}", number::max_of(bits))
            }
            NumberError::BadString | NumberError::WrongType(_) => number::grammar_help(bits),
        };
        bad_case(path, line, format!("bad {what} `{v}`: {help}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_of_cases_give_their_lines() {
        let dir = std::env::temp_dir().join(format!("pvgate-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("v.toml");
        std::fs::write(
            &path,
            "format = \"pvgate-conformance/1\"\ntitle = \"t\"\n\n[[case]]\nvm = \"normal\"\nphase = \"setup\"\npv = \"vcpu_run\"\nexpect = \"allow\"\n",
        )
        .unwrap();
        let (title, cases) = load_vectors(&path).unwrap();
        assert_eq!(title, "t");
        assert_eq!(cases.len(), 1);
        assert_eq!(cases[0].0, 4);
    }
}
