//! Policy errors: a message, the exact source span, labels and a hint.
//! The library returns these; `render` draws them rustc-style with the
//! offending text underlined (build.rs uses it; the CLI may use its own).

use std::fmt;
use std::ops::Range;

use annotate_snippets::{AnnotationKind, Level, Renderer, Snippet};

/// What kind of mistake a diagnostic reports: one variant per check, so
/// tests and tools can match on it without parsing messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The file is not valid TOML, or a value has the wrong type.
    Syntax,
    /// A key the language does not have.
    UnknownKey,
    /// A required key is missing.
    MissingKey,
    /// An MSR, CPUID bit, PV call, VM kind, phase, access or verdict name that does not exist.
    UnknownName,
    /// A number that does not parse (e.g. bad hex).
    BadNumber,
    /// A number outside the range of what it names.
    OutOfRange,
    /// A range whose first element is after its last, or an empty list.
    EmptyOrInverted,
    /// Two rules decide the same input differently.
    Overlap,
    /// Two rules decide the same input identically.
    Duplicate,
    /// A rule without a reason, or with an empty one.
    MissingReason,
    /// A constraint the rule cannot carry (a write mask on a read rule, a mask on `deny`, ...).
    MisplacedConstraint,
    /// Masks of one register that overlap, or a mask wider than its register.
    BadMask,
    /// The header is wrong (format version, ...).
    BadHeader,
    /// A rule selects nothing or names the same thing twice.
    BadSelector,
    /// An invariant file could not be read, or an include is refused.
    Include,
    /// The protected-VM baseline is refused (empty, or nothing about protected VMs).
    Baseline,
    /// The rules break an invariant.
    InvariantViolated,
    /// A policy, rule or invariant name outside the name grammar
    /// (kebab-case ASCII, at most [`crate::name::MAX_LEN`] bytes).
    BadName,
}

/// One located policy error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// What kind of mistake this is.
    pub kind: ErrorKind,
    /// Lowercase message; user input in backticks.
    pub message: String,
    /// Byte range of the offending text.
    pub span: Range<usize>,
    /// Text under the primary underline.
    pub label: String,
    /// Other places involved (e.g. the other of two overlapping rules).
    pub related: Vec<(Range<usize>, String)>,
    /// A hint such as "did you mean `IA32_LSTAR`?".
    pub help: Option<String>,
    /// The file the spans refer to when it is not the policy being
    /// compiled (an included invariant file).
    pub file: Option<SourceFile>,
}

/// A source file other than the policy (an included invariant file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// The path as shown in messages.
    pub path: String,
    /// Its text.
    pub text: String,
}

impl Diagnostic {
    /// A diagnostic with no related spans and no hint.
    pub fn new(
        kind: ErrorKind,
        message: impl Into<String>,
        span: Range<usize>,
        label: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            kind,
            message: message.into(),
            span,
            label: label.into(),
            related: Vec::new(),
            help: None,
            file: None,
        }
    }

    /// Adds a related location.
    pub fn with_related(mut self, span: Range<usize>, label: impl Into<String>) -> Diagnostic {
        self.related.push((span, label.into()));
        self
    }

    /// Adds a hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Adds "did you mean" when a close name exists.
    pub fn with_suggestion(self, suggestion: Option<&str>) -> Diagnostic {
        match suggestion {
            Some(s) => self.with_help(format!("did you mean `{s}`?")),
            None => self,
        }
    }

    /// 1-based line and column of the primary span in `text`.
    pub fn line_col(&self, text: &str) -> (usize, usize) {
        line_col(text, self.span.start)
    }

    /// Renders the diagnostic rustc-style against the policy text, without
    /// colour. The `--> path:line:col` header is the only location line.
    pub fn render(&self, path: &str, text: &str) -> String {
        self.render_styled(path, text, false)
    }

    /// [`Diagnostic::render`], with ANSI colours when `color` is true (for
    /// a terminal).
    pub fn render_styled(&self, path: &str, text: &str, color: bool) -> String {
        let clamp = |r: &Range<usize>| r.start.min(text.len())..r.end.min(text.len());
        let mut snippet = Snippet::source(text).path(path).annotation(
            AnnotationKind::Primary
                .span(clamp(&self.span))
                .label(&self.label),
        );
        for (span, label) in &self.related {
            snippet = snippet.annotation(AnnotationKind::Context.span(clamp(span)).label(label));
        }
        let mut group = Level::ERROR.primary_title(&self.message).element(snippet);
        if let Some(help) = &self.help {
            group = group.element(Level::HELP.message(help));
        }
        let group = [group];
        format!("{}\n", renderer(color).render(&group))
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The snippet renderer: styled (ANSI colours) or plain.
pub fn renderer(color: bool) -> Renderer {
    if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, col)
}

/// The line starts of a text, found once, so that many [`line_col`]
/// queries on one text cost a binary search each instead of a scan from
/// the start (a policy of n rules asks n times: quadratic otherwise).
#[derive(Clone, Debug)]
pub struct LineIndex<'t> {
    text: &'t str,
    /// Byte offset of every `'\n'`, ascending.
    newlines: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    /// Indexes `text` (one pass).
    pub fn new(text: &'t str) -> LineIndex<'t> {
        let newlines = text
            .bytes()
            .enumerate()
            .filter_map(|(i, b)| (b == b'\n').then_some(i))
            .collect();
        LineIndex { text, newlines }
    }

    /// The 1-based line of `offset` (a binary search: no scan of the
    /// line, however long).
    pub fn line(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        if !self.text.is_char_boundary(offset) {
            // `line_col`'s answer for an offset inside a character.
            return line_col(self.text, offset).0;
        }
        self.newlines.partition_point(|&n| n < offset) + 1
    }

    /// The same answer as [`line_col`] on the indexed text.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        if !self.text.is_char_boundary(offset) {
            // `line_col`'s answer for an offset inside a character.
            return line_col(self.text, offset);
        }
        // Newlines strictly before `offset`.
        let before = self.newlines.partition_point(|&n| n < offset);
        let line_start = match before.checked_sub(1) {
            Some(i) => self.newlines.get(i).map_or(0, |n| n + 1),
            None => 0,
        };
        let col = self
            .text
            .get(line_start..offset)
            .map_or(0, |s| s.chars().count())
            + 1;
        (before + 1, col)
    }
}

/// The closest known name to `input`, if it is close enough to be a typo
/// (a few edits away), or else a known name that contains `input` or is
/// contained in it and makes up at least half of the longer one
/// (`X2APIC_MODE` finds `X2APIC`). Case is ignored.
pub fn suggest<'a>(input: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let upper = input.to_ascii_uppercase();
    let limit = (input.chars().count() / 3).clamp(1, 3);
    let known: Vec<&'a str> = known.into_iter().collect();
    let typo = known
        .iter()
        .map(|k| {
            (
                strsim::damerau_levenshtein(&upper, &k.to_ascii_uppercase()),
                *k,
            )
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, k)| (*d, *k))
        .map(|(_, k)| k);
    typo.or_else(|| substring_match(&upper, &known))
}

/// The hint for an unknown `key` of a sub-table written as `[subtable]`
/// (`call.regs`) that is more likely a key of the table above it which
/// the sub-table swallowed (TOML puts every key after a header into that
/// table until the next header): `None` when `key` is close to one of the
/// sub-table's `known` keys (a typo, not a swallowed key). `inline` is the
/// sub-table written inline (`regs = { rax = 0x1 }`).
pub fn swallowed_key_help<'a>(
    subtable: &str,
    key: &str,
    known: impl IntoIterator<Item = &'a str>,
    inline: &str,
) -> Option<String> {
    if suggest(key, known).is_some() {
        return None;
    }
    Some(format!(
        "TOML reads `{key}` after `[{subtable}]` as a key of `{subtable}` (a table runs to the next header): write `{key}` above `[{subtable}]`, or write the table inline (`{inline}`)"
    ))
}

/// The known name sharing the longest substring relation with `upper`
/// (one contains the other, the shorter at least half the longer and 3
/// characters or more); the smallest length difference wins, then the name.
fn substring_match<'a>(upper: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .filter_map(|k| {
            let ku = k.to_ascii_uppercase();
            let (short, long) = if ku.len() <= upper.len() {
                (ku.as_str(), upper)
            } else {
                (upper, ku.as_str())
            };
            let related = short.len() >= 3 && 2 * short.len() >= long.len() && long.contains(short);
            related.then(|| (long.len() - short.len(), *k))
        })
        .min()
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let text = "a = 1\nbb = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 11), (2, 6));
    }

    #[test]
    fn line_index_answers_like_line_col_everywhere() {
        for text in [
            "",
            "a",
            "\n",
            "a = 1\nbb = \"x\"\n",
            "é\n\nxé\ny",
            "\n\nab\n",
        ] {
            let index = LineIndex::new(text);
            for offset in 0..text.len() + 3 {
                assert_eq!(
                    index.line_col(offset),
                    line_col(text, offset),
                    "{text:?} at {offset}"
                );
                assert_eq!(
                    index.line(offset),
                    line_col(text, offset).0,
                    "{text:?} at {offset}"
                );
            }
        }
    }

    #[test]
    fn suggestions_find_typos_and_ignore_strangers() {
        let names = ["IA32_LSTAR", "IA32_STAR", "IA32_CSTAR"];
        assert_eq!(suggest("IA32_LSTAT", names), Some("IA32_LSTAR"));
        assert_eq!(
            suggest("runing", ["setup", "running", "teardown"]),
            Some("running")
        );
        assert_eq!(suggest("banana", ["setup", "running", "teardown"]), None);
    }

    #[test]
    fn a_key_swallowed_by_a_sub_table_gets_a_hint_and_a_typo_does_not() {
        let regs = ["rax", "rbx", "rip"];
        let help = swallowed_key_help("call.regs", "expect", regs, "regs = { rax = 0x1 }");
        assert!(
            help.as_deref()
                .is_some_and(|h| h.contains("write `expect` above `[call.regs]`")),
            "{help:?}"
        );
        assert_eq!(
            swallowed_key_help("call.regs", "rxa", regs, "regs = { rax = 0x1 }"),
            None
        );
    }

    #[test]
    fn suggestions_find_a_name_inside_a_longer_guess_and_the_reverse() {
        let bits = ["X2APIC", "XSAVE", "AVX", "HYPERVISOR"];
        assert_eq!(suggest("X2APIC_MODE", bits), Some("X2APIC"));
        assert_eq!(suggest("x2apic_en", bits), Some("X2APIC"));
        assert_eq!(suggest("HYPERV", bits), Some("HYPERVISOR"));
        // Too short a part, or too small a share of the other name: nothing.
        assert_eq!(suggest("AVX_", bits), Some("AVX"));
        assert_eq!(suggest("x2apic_enable", bits), None);
        assert_eq!(suggest("AVX_512_VNNI_BF16", bits), None);
    }
}
