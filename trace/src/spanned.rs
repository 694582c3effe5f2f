//! The spanned view of a trace or vector file: keys checked against the
//! format's lists with "did you mean", values located by key, and every
//! error of a file collected as a located [`Diagnostic`] ([`FileErrors`]),
//! rendered like a policy error.

use std::fmt;
use std::ops::Range;

use pvgate_codegen::diagnostic::suggest;
use pvgate_codegen::number;
use pvgate_codegen::{Diagnostic, ErrorKind};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Every error of one input file, each located in its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileErrors {
    /// What the file is (`trace`, `vector file`).
    pub what: &'static str,
    /// The path as shown in messages.
    pub path: String,
    /// Its text.
    pub text: String,
    /// The errors, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl FileErrors {
    /// Each error drawn rustc-style (snippet, underline, hint), then one
    /// closing line naming the file.
    pub fn render(&self) -> String {
        self.render_styled(false)
    }

    /// [`FileErrors::render`], with ANSI colours when `color` is true.
    pub fn render_styled(&self, color: bool) -> String {
        let mut out = String::new();
        for d in &self.diagnostics {
            out.push_str(&d.render_styled(&self.path, &self.text, color));
            out.push('\n');
        }
        let n = self.diagnostics.len();
        let errors = if n == 1 {
            String::from("1 error")
        } else {
            format!("{n} errors")
        };
        out.push_str(&format!(
            "error: {} `{}` is invalid ({errors})\n",
            self.what, self.path
        ));
        out
    }
}

impl fmt::Display for FileErrors {
    /// One line per error: `path:line:col: message` (and the hint).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let (line, col) = d.line_col(&self.text);
            write!(f, "{}:{line}:{col}: {}", self.path, d.message)?;
            if let Some(h) = &d.help {
                write!(f, " ({h})")?;
            }
        }
        Ok(())
    }
}

/// A diagnostic for text that is not TOML, or a value of the wrong type.
pub(crate) fn toml_error(e: &toml::de::Error, fallback: Range<usize>) -> Diagnostic {
    let message = e.message().trim().to_string();
    let first = message.lines().next().unwrap_or("invalid TOML").to_string();
    let d = Diagnostic::new(
        ErrorKind::Syntax,
        first.clone(),
        e.span().unwrap_or(fallback),
        first,
    );
    match number::toml_error_hint(&message) {
        Some(h) => d.with_help(h),
        None => d,
    }
}

/// The entry of `key` in a spanned table: its key and its value.
pub(crate) fn entry<'a, 'i>(
    table: &'a DeTable<'i>,
    key: &str,
) -> Option<(
    &'a Spanned<std::borrow::Cow<'i, str>>,
    &'a Spanned<DeValue<'i>>,
)> {
    table.iter().find(|(k, _)| k.get_ref().as_ref() == key)
}

/// The span of `key`'s value (`a.b` looks into the table `a`).
pub(crate) fn value_span(table: &DeTable<'_>, key: &str) -> Option<Range<usize>> {
    let (first, rest) = match key.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (key, None),
    };
    let (_, v) = entry(table, first)?;
    match (rest, v.get_ref()) {
        (Some(rest), DeValue::Table(t)) => value_span(t, rest).or_else(|| Some(v.span())),
        _ => Some(v.span()),
    }
}

/// An unknown-key diagnostic for each key of `table` not in `known`, with
/// the closest known key as a suggestion; `what` names the table.
pub(crate) fn unknown_keys(
    table: &DeTable<'_>,
    known: &[&str],
    what: &str,
    out: &mut Vec<Diagnostic>,
) {
    for (k, _) in table.iter() {
        let name = k.get_ref().as_ref();
        if known.contains(&name) {
            continue;
        }
        let d = Diagnostic::new(
            ErrorKind::UnknownKey,
            format!("unknown key `{name}` in {what}"),
            k.span(),
            "unknown key",
        );
        let d = match suggest(name, known.iter().copied()) {
            Some(s) => d.with_help(format!("did you mean `{s}`?")),
            None => d.with_help(format!("known keys: {}", known.join(", "))),
        };
        out.push(d);
    }
}

/// The span of a `[[name]]` table's header that precedes `body`: the
/// closest `[[name]]` at or before the body's start (the body's own span
/// when there is none).
pub(crate) fn header_span(text: &str, body: Range<usize>, name: &str) -> Range<usize> {
    let header = format!("[[{name}]]");
    // The table's span starts at its header, or after it.
    let end = body.start.saturating_add(header.len()).min(text.len());
    let before = text.get(..end).unwrap_or("");
    match before.rfind(&header) {
        Some(at) => at..at + header.len(),
        None => body,
    }
}

/// A located error for one key of a call or case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyError {
    /// The key whose value is wrong (`None`: the whole call).
    pub key: Option<&'static str>,
    /// What kind of mistake.
    pub kind: ErrorKind,
    /// The message.
    pub message: String,
    /// A hint such as "did you mean …".
    pub help: Option<String>,
}

impl KeyError {
    /// An error about the value of `key`.
    pub(crate) fn at(key: &'static str, kind: ErrorKind, message: impl Into<String>) -> KeyError {
        KeyError {
            key: Some(key),
            kind,
            message: message.into(),
            help: None,
        }
    }

    /// An error about the whole call (a missing key, a conflict).
    pub(crate) fn whole(kind: ErrorKind, message: impl Into<String>) -> KeyError {
        KeyError {
            key: None,
            kind,
            message: message.into(),
            help: None,
        }
    }

    /// Adds "did you mean `s`?" when `s` is some.
    pub(crate) fn suggest(mut self, s: Option<&str>) -> KeyError {
        if let Some(s) = s {
            self.help = Some(format!("did you mean `{s}`?"));
        }
        self
    }

    /// Adds a hint.
    pub(crate) fn help(mut self, h: impl Into<String>) -> KeyError {
        self.help = Some(h.into());
        self
    }

    /// The diagnostic: at the key's value in `table` when it is there,
    /// else at `whole` (the call's header).
    pub(crate) fn locate(self, table: &DeTable<'_>, whole: Range<usize>) -> Diagnostic {
        let span = self.key.and_then(|k| value_span(table, k)).unwrap_or(whole);
        let label = self
            .message
            .split(" (known")
            .next()
            .unwrap_or(&self.message)
            .to_string();
        let d = Diagnostic::new(self.kind, self.message, span, label);
        match self.help {
            Some(h) => d.with_help(h),
            None => d,
        }
    }
}

/// Shorthand for a name that is not one of `known`: the message and a
/// suggestion.
pub(crate) fn unknown_name(key: &'static str, what: &str, name: &str, known: &[&str]) -> KeyError {
    KeyError::at(
        key,
        ErrorKind::UnknownName,
        format!("unknown {what} `{name}` (known: {})", known.join(", ")),
    )
    .suggest(suggest(name, known.iter().copied()).or_else(|| by_prefix(name, known)))
}

/// The known name sharing the longest common prefix (at least three
/// characters) with `name`: `denied` → `deny`, `allowed` → `allow`.
fn by_prefix<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let common = |k: &str| {
        name.chars()
            .zip(k.chars())
            .take_while(|(a, b)| a.eq_ignore_ascii_case(b))
            .count()
    };
    known
        .iter()
        .map(|k| (common(k), *k))
        .filter(|(n, _)| *n >= 3)
        .max_by_key(|(n, _)| *n)
        .map(|(_, k)| k)
}

/// Drops, from the diagnostics pushed since `from`, a "missing key `k`"
/// whose cause is already reported as an unknown key with "did you mean
/// `k`?" (a misspelt key is one mistake, not two).
pub(crate) fn drop_explained_missing(diags: &mut Vec<Diagnostic>, from: usize) {
    let meant: Vec<String> = diags
        .iter()
        .skip(from)
        .filter(|d| d.kind == ErrorKind::UnknownKey)
        .filter_map(|d| d.help.as_deref())
        .filter_map(|h| h.strip_prefix("did you mean `"))
        .filter_map(|h| h.strip_suffix("`?"))
        .map(str::to_string)
        .collect();
    let mut i = 0;
    diags.retain(|d| {
        i += 1;
        !(i > from
            && d.kind == ErrorKind::MissingKey
            && meant.iter().any(|k| d.message.contains(&format!("`{k}`"))))
    });
}
