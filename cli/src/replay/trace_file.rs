//! Reading a trace file, and pointing at the exact spot of an error in
//! its text (underlined like a policy error, with "did you mean").

use std::ops::Range;
use std::path::Path;

use pvgate_codegen::diagnostic::suggest;
use pvgate_codegen::{Diagnostic, ErrorKind, Registry};
use pvgate_gate::PvCall;
use pvgate_trace::{Trace, TraceError};

use crate::error::CliError;

/// Reads and parses one trace; errors are located in its text.
pub(super) fn load_trace(path: &Path) -> Result<Trace, CliError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::arg(format!("cannot read trace `{shown}`: {e}")))?;
    pvgate_trace::parse(&text, &shown).map_err(|e| trace_error(&shown, text, &e))
}

/// A trace error as a located diagnostic, underlined like a policy error.
fn trace_error(path: &str, text: String, e: &TraceError) -> CliError {
    let (kind, message, span, label) = match e {
        TraceError::Parse {
            line: Some(line),
            message,
            ..
        } => {
            let block = lines(&text, *line, *line + 1);
            let span =
                locate(&text, block.clone(), message).unwrap_or_else(|| trimmed(&text, block));
            (ErrorKind::Syntax, message.clone(), span, short(message))
        }
        TraceError::Parse {
            line: None,
            message,
            ..
        } => {
            let span = locate(&text, 0..text.len(), message).unwrap_or(0..0);
            (ErrorKind::BadHeader, message.clone(), span, short(message))
        }
        TraceError::Call {
            index,
            line,
            message,
            ..
        } => {
            let header = lines(&text, *line, *line + 1);
            let end = next_call_line(&text, *line);
            // A missing key is the call's fault: point at its header.
            let span = if message.contains(" needs ") {
                None
            } else {
                locate(&text, lines(&text, *line + 1, end), message)
            }
            .unwrap_or_else(|| trimmed(&text, header));
            (
                ErrorKind::Syntax,
                format!("call #{index}: {message}"),
                span,
                short(message),
            )
        }
        other => return CliError::arg(other.to_string()),
    };
    let help = near_name(&message);
    CliError::Located {
        what: "trace",
        path: path.to_string(),
        text,
        diagnostic: Box::new(Diagnostic::new(kind, message, span, label).with_suggestion(help)),
    }
}

/// "Did you mean" for an unknown PV call or MSR name.
fn near_name(message: &str) -> Option<&'static str> {
    let name = message.split('`').nth(1)?;
    if message.contains("unknown pv call") {
        suggest(name, PvCall::ALL.iter().map(|c| c.name()))
    } else if message.contains("unknown msr") {
        suggest(name, Registry::builtin().msr_names())
    } else {
        None
    }
}

/// The label under the underline: the message without its list of
/// alternatives.
fn short(message: &str) -> String {
    message
        .split(", expected")
        .next()
        .unwrap_or(message)
        .to_string()
}

/// Byte range of 1-based lines `first..end` (exclusive) of `text`.
fn lines(text: &str, first: usize, end: usize) -> Range<usize> {
    let mut start = text.len();
    let mut stop = text.len();
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        let n = i + 1;
        if n == first {
            start = offset;
        }
        if n == end {
            stop = offset;
            break;
        }
        offset += l.len();
    }
    start.min(stop)..stop
}

/// The range without surrounding whitespace (at least its start).
fn trimmed(text: &str, r: Range<usize>) -> Range<usize> {
    let s = text.get(r.clone()).unwrap_or("");
    let lead = s.len() - s.trim_start().len();
    let body = s.trim();
    let start = r.start + lead;
    start..start + body.len()
}

/// The 1-based line of the `[[call]]` after the one at `line` (or past the end).
fn next_call_line(text: &str, line: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(line)
        .find(|(_, l)| l.trim_start().starts_with("[[call]]"))
        .map_or(text.lines().count() + 1, |(i, _)| i + 1)
}

/// Where in `within` the message's subject is written: the first word in
/// backticks (or a leading `a.b =` key) found as a whole word.
fn locate(text: &str, within: Range<usize>, message: &str) -> Option<Range<usize>> {
    let region = text.get(within.clone())?;
    let mut words: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    if let Some((key, _)) = message.split_once(" = ")
        && !key.contains(' ')
    {
        words.push(key.rsplit('.').next().unwrap_or(key));
    }
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    for word in words.into_iter().filter(|w| !w.is_empty()) {
        for (at, _) in region.match_indices(word) {
            let before = region[..at].chars().next_back();
            let after = region[at + word.len()..].chars().next();
            let line_start = region[..at].rfind('\n').map_or(0, |i| i + 1);
            let in_comment = region[line_start..at].contains('#');
            if !before.is_some_and(ident) && !after.is_some_and(ident) && !in_comment {
                let start = within.start + at;
                return Some(start..start + word.len());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_in_backticks_are_found_as_whole_words_outside_comments() {
        let text = "[[call]]\npv = \"set_msrx\" # set_msr\nmsr = \"set_msr\"\n";
        let r = locate(text, 0..text.len(), "unknown msr `set_msr`").unwrap();
        assert_eq!(&text[r.clone()], "set_msr");
        assert_eq!(pvgate_codegen::diagnostic::line_col(text, r.start), (3, 8));
        assert_eq!(locate(text, 0..text.len(), "no subject"), None);
    }

    #[test]
    fn a_leading_key_is_a_subject() {
        let text = "[vm]\nkind = \"protected\"\nvcpus = 99\n";
        let r = locate(text, 0..text.len(), "vm.vcpus = 99 is outside 1..=16").unwrap();
        assert_eq!(&text[r], "vcpus");
    }

    #[test]
    fn line_ranges_and_the_next_call_are_found() {
        let text = "a\n  [[call]]\nb\n[[call]]\n";
        assert_eq!(&text[lines(text, 2, 3)], "  [[call]]\n");
        assert_eq!(&text[trimmed(text, lines(text, 2, 3))], "[[call]]");
        assert_eq!(next_call_line(text, 2), 4);
        assert_eq!(next_call_line(text, 4), 5);
    }
}
