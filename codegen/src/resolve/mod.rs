//! Resolution and validation: the written policy (`model`) becomes resolved
//! rules (`ir::IrRule`), or located diagnostics. Every check of a single
//! rule lives here; checks across rules live in `overlap`.

use std::ops::Range;

use pvgate_gate::{Phase, RuleDetail, RuleId, Verdict, ViolationMode, VmKind};
use toml::Spanned;

use crate::diagnostic::{Diagnostic, ErrorKind, LineIndex, suggest};
use crate::ir::{IrRule, Resources, RuleClass, RuleSpans};
use crate::model::{self, NameList, RawValue};
use crate::number::{self, NumberError};
use crate::reason::{self, ReasonProblem};
use crate::registry::Registry;

mod cpuid;
mod invariant;
mod msr;
mod name;
mod pv;
mod support;

/// Resolves the header and every rule, collecting every error.
pub(crate) struct Resolver<'a> {
    text: &'a str,
    /// Line starts of `text`, for rule positions.
    lines: LineIndex<'a>,
    registry: &'a Registry,
    /// Errors found so far.
    pub errors: Vec<Diagnostic>,
}

/// Inclusive MSR index ranges and the span of the selector that chose them.
type MsrSelection = (Vec<(u32, u32)>, Range<usize>);

/// The keys every rule shares (`vm`, `phase`, `verdict`, `reason`),
/// resolved; `None` where an error was recorded.
pub(super) struct Shared {
    /// How many errors there were before the rule was resolved.
    pub errors_before: usize,
    pub kinds: Option<Vec<VmKind>>,
    pub phases: Option<Vec<Phase>>,
    pub verdict: Option<Verdict>,
    pub reason: String,
    /// The rule's table span.
    pub span: Range<usize>,
    /// The `verdict` value's span.
    pub verdict_span: Range<usize>,
}

/// The resolved header.
pub(crate) struct ResolvedHeader {
    pub name: String,
    pub description: String,
    pub violation_mode: ViolationMode,
}

impl<'a> Resolver<'a> {
    pub fn new(text: &'a str, registry: &'a Registry) -> Resolver<'a> {
        Resolver {
            text,
            lines: LineIndex::new(text),
            registry,
            errors: Vec::new(),
        }
    }

    fn error(&mut self, d: Diagnostic) {
        self.errors.push(d);
    }

    /// The span of `needle` inside `outer` in the text (for list elements,
    /// whose own spans the TOML value does not keep); `outer` if absent.
    fn sub_span(&self, outer: &Range<usize>, needle: &str) -> Range<usize> {
        self.text
            .get(outer.clone())
            .and_then(|s| s.find(needle))
            .map_or(outer.clone(), |i| {
                outer.start + i..outer.start + i + needle.len()
            })
    }

    fn span_of_item(&self, outer: &Range<usize>, item: &toml::Value) -> Range<usize> {
        match item {
            toml::Value::String(s) => self.sub_span(outer, &format!("\"{s}\"")),
            other => self.sub_span(outer, &other.to_string()),
        }
    }

    pub fn header(&mut self, h: &model::Header) -> ResolvedHeader {
        if *h.format.get_ref() != 1 {
            self.error(
                Diagnostic::new(
                    ErrorKind::BadHeader,
                    format!("unsupported policy format `{}`", h.format.get_ref()),
                    h.format.span(),
                    "this loader reads format 1",
                )
                .with_help("set `format = 1`"),
            );
        }
        let violation_mode = match h.cpuid_violations.get_ref().as_str() {
            "filter" => ViolationMode::Filter,
            "reject" => ViolationMode::Reject,
            other => {
                let d = Diagnostic::new(
                    ErrorKind::UnknownName,
                    format!("unknown CPUID violation mode `{other}`"),
                    h.cpuid_violations.span(),
                    "expected `filter` or `reject`",
                )
                .with_suggestion(suggest(other, ["filter", "reject"]));
                self.error(d);
                ViolationMode::Filter
            }
        };
        self.check_name("policy", &h.name);
        ResolvedHeader {
            name: h.name.get_ref().clone(),
            description: h.description.get_ref().clone(),
            violation_mode,
        }
    }

    /// Resolves a list of names with a parser; errors name the list's role.
    fn names<T: Copy + Ord>(
        &mut self,
        list: &NameList,
        what: &str,
        known: &[&'static str],
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<Vec<T>> {
        if list.get_ref().is_empty() {
            self.error(Diagnostic::new(
                ErrorKind::EmptyOrInverted,
                format!("empty {what} list"),
                list.span(),
                format!("name at least one {what}"),
            ));
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for item in list.get_ref() {
            match parse(item.get_ref()) {
                Some(v) if out.contains(&v) => {
                    self.error(Diagnostic::new(
                        ErrorKind::BadSelector,
                        format!("{what} `{}` is named twice", item.get_ref()),
                        item.span(),
                        "named again here",
                    ));
                    ok = false;
                }
                Some(v) => out.push(v),
                None => {
                    let d = Diagnostic::new(
                        ErrorKind::UnknownName,
                        format!("unknown {what} `{}`", item.get_ref()),
                        item.span(),
                        format!("expected one of {}", quoted(known)),
                    )
                    .with_suggestion(suggest(item.get_ref(), known.iter().copied()));
                    self.error(d);
                    ok = false;
                }
            }
        }
        out.sort();
        ok.then_some(out)
    }

    fn kinds(&mut self, list: &NameList) -> Option<Vec<VmKind>> {
        let known = VmKind::ALL.map(VmKind::name);
        self.names(list, "VM kind", &known, VmKind::from_name)
    }

    fn phases(&mut self, list: &NameList) -> Option<Vec<Phase>> {
        let known = Phase::ALL.map(Phase::name);
        self.names(list, "phase", &known, Phase::from_name)
    }

    fn verdict(&mut self, v: &Spanned<String>) -> Option<Verdict> {
        let known = Verdict::ALL.map(Verdict::name);
        let found = Verdict::from_name(v.get_ref());
        if found.is_none() {
            let d = Diagnostic::new(
                ErrorKind::UnknownName,
                format!("unknown verdict `{}`", v.get_ref()),
                v.span(),
                format!("expected one of {}", quoted(&known)),
            )
            .with_suggestion(suggest(v.get_ref(), known));
            self.error(d);
        }
        found
    }

    fn reason(&mut self, reason: &Option<Spanned<String>>, rule_span: &Range<usize>) -> String {
        match reason {
            None => {
                self.error(
                    Diagnostic::new(
                        ErrorKind::MissingReason,
                        "rule has no `reason`",
                        self.header_span(rule_span),
                        "every rule must say why it exists",
                    )
                    .with_help(
                        "add `reason = \"...\"` citing the source (pKVM-IA, the review, crosvm)",
                    ),
                );
                String::new()
            }
            Some(r) => {
                let text = r.get_ref().trim();
                if let Some(problem) = reason::problem(text) {
                    let label = match problem {
                        ReasonProblem::Empty => String::from("a reviewer cannot check this"),
                        ReasonProblem::Marker(m) => format!("`{m}` marks unfinished text"),
                        ReasonProblem::Placeholder => String::from("a placeholder, not a reason"),
                        ReasonProblem::TooFewWords(n) => format!(
                            "{n} word{} cannot say why; a reason needs at least {}",
                            if n == 1 { "" } else { "s" },
                            reason::MIN_WORDS
                        ),
                    };
                    self.error(
                        Diagnostic::new(
                            ErrorKind::MissingReason,
                            format!("rule reason `{text}` says nothing"),
                            r.span(),
                            label,
                        )
                        .with_help("say why the rule exists and cite its source"),
                    );
                }
                r.get_ref().clone()
            }
        }
    }

    /// The span of a rule's `[[...]]` header (the toml crate spans an
    /// array-of-tables element by its header; look back if it did not).
    fn header_span(&self, rule_span: &Range<usize>) -> Range<usize> {
        if self
            .text
            .get(rule_span.clone())
            .is_some_and(|s| s.starts_with("[["))
        {
            return rule_span.clone();
        }
        let before = self.text.get(..rule_span.start).unwrap_or("");
        match before.rfind("[[") {
            Some(start) => {
                let end = self
                    .text
                    .get(start..)
                    .and_then(|s| s.find("]]"))
                    .map_or(start + 2, |e| start + e + 2);
                start..end
            }
            None => rule_span.clone(),
        }
    }

    /// A number of a `bits`-wide field in the one numeric grammar
    /// (`crate::number`). `None` after an error.
    fn number(
        &mut self,
        value: &toml::Value,
        span: Range<usize>,
        what: &str,
        bits: u32,
    ) -> Option<u64> {
        let max = number::max_of(bits);
        let limit = format!("{} {what} is at most {max:#X}", article(what));
        let err = match number::from_toml(value, bits) {
            Ok(n) => return Some(n),
            Err(e) => e,
        };
        let shown = match value {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let d = match err {
            NumberError::Negative(i) => Diagnostic::new(
                ErrorKind::OutOfRange,
                format!("{what} `{i}` is negative"),
                span,
                "must be 0 or more",
            ),
            NumberError::TooLarge(n) => Diagnostic::new(
                ErrorKind::OutOfRange,
                format!("{what} `{n:#x}` is out of range: {limit}"),
                span,
                format!("the largest {what} is {max:#X}"),
            ),
            NumberError::TooManyDigits => Diagnostic::new(
                ErrorKind::OutOfRange,
                format!("{what} `{shown}` is out of range: {limit}"),
                span,
                format!("more than {} hex digits", number::hex_digits(bits)),
            )
            .with_help(number::grammar_help(bits)),
            NumberError::BadString => Diagnostic::new(
                ErrorKind::BadNumber,
                format!("bad number `{shown}` for {what}"),
                span,
                "not a number",
            )
            .with_help(number::grammar_help(bits)),
            NumberError::WrongType(t) => Diagnostic::new(
                ErrorKind::Syntax,
                format!("expected a number for {what}, found {t}"),
                span,
                "not a number",
            ),
        };
        self.error(d);
        None
    }

    /// One MSR reference: a number or a registry name.
    fn msr_ref(&mut self, value: &toml::Value, span: Range<usize>) -> Option<u32> {
        if let toml::Value::String(s) = value
            && !number::looks_numeric(s)
        {
            return match self.registry.msr_by_name(s) {
                Some(m) => Some(m.index),
                None => {
                    let hint = suggest(s, self.registry.msr_names());
                    let d = Diagnostic::new(
                        ErrorKind::UnknownName,
                        format!("unknown MSR `{s}`"),
                        span,
                        "not in the MSR registry (policy/registry/msrs.toml)",
                    )
                    .with_suggestion(hint);
                    self.error(d);
                    None
                }
            };
        }
        self.number(value, span, "MSR index", 32)
            .and_then(|n| u32::try_from(n).ok())
    }

    /// A mask: a number, or a list of bit names / bit numbers.
    fn mask(
        &mut self,
        raw: &RawValue,
        what: &str,
        width: u32,
        bit_names: &dyn Fn(&str) -> Option<u64>,
        known: &[String],
        context: &str,
    ) -> Option<u64> {
        let max = if width >= 64 {
            u64::MAX
        } else {
            (1u64 << width) - 1
        };
        let span = raw.span();
        match raw.get_ref() {
            toml::Value::Array(items) => {
                if items.is_empty() {
                    self.error(Diagnostic::new(
                        ErrorKind::EmptyOrInverted,
                        format!("empty bit list for `{what}`"),
                        span,
                        "name at least one bit, or write 0",
                    ));
                    return None;
                }
                let mut mask = 0u64;
                for item in items {
                    let item_span = self.span_of_item(&span, item);
                    match item {
                        toml::Value::String(name) => match bit_names(name) {
                            Some(m) => mask |= m,
                            None => {
                                let d = Diagnostic::new(
                                    ErrorKind::UnknownName,
                                    format!("unknown bit `{name}` in `{what}` of {context}"),
                                    item_span,
                                    format!("not a named bit of {context}"),
                                )
                                .with_suggestion(suggest(name, known.iter().map(String::as_str)));
                                self.error(d);
                                return None;
                            }
                        },
                        toml::Value::Integer(b) if (0..i64::from(width)).contains(b) => {
                            mask |= 1u64 << b
                        }
                        other => {
                            self.error(Diagnostic::new(
                                ErrorKind::BadMask,
                                format!("bit `{other}` in `{what}` is wider than {context} ({width} bits)"),
                                item_span,
                                format!("bits are 0..={}", width - 1),
                            ));
                            return None;
                        }
                    }
                }
                Some(mask)
            }
            value => {
                let n = self.number(value, span.clone(), what, 64)?;
                if n > max {
                    self.error(Diagnostic::new(
                        ErrorKind::BadMask,
                        format!("`{what}` {n:#x} is wider than {context} ({width} bits)"),
                        span,
                        format!("bits above bit {} do not exist", width - 1),
                    ));
                    return None;
                }
                Some(n)
            }
        }
    }

    /// Refuses a value constraint (`key` at `span`) on a rule whose verdict
    /// is not `allow`: a denied or ignored access has nothing to constrain,
    /// and a constraint there reads as a promise the image does not keep.
    fn constraint_needs_allow(
        &mut self,
        key: &str,
        span: &Range<usize>,
        verdict: Verdict,
        verdict_raw: &Spanned<String>,
    ) {
        if verdict == Verdict::Allow {
            return;
        }
        self.error(
            Diagnostic::new(
                ErrorKind::MisplacedConstraint,
                format!("`{key}` on a `{}` rule", verdict.name()),
                span.clone(),
                "only `allow` rules carry value constraints",
            )
            .with_related(verdict_raw.span(), "verdict"),
        );
    }

    /// Resolves the keys every rule shares.
    fn shared(
        &mut self,
        span: &Range<usize>,
        vm: &NameList,
        phase: &NameList,
        verdict: &Spanned<String>,
        reason: &Option<Spanned<String>>,
    ) -> Shared {
        let errors_before = self.errors.len();
        Shared {
            errors_before,
            kinds: self.kinds(vm),
            phases: self.phases(phase),
            verdict: self.verdict(verdict),
            reason: self.reason(reason, span),
            span: span.clone(),
            verdict_span: verdict.span(),
        }
    }

    /// Whether an error was recorded since `shared` was resolved.
    fn failed_since(&self, shared: &Shared) -> bool {
        self.errors.len() != shared.errors_before
    }

    /// The resolved rule; `None` if any part had an error.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        id: RuleId,
        class: RuleClass,
        shared: Shared,
        name: String,
        resources: Resources,
        detail: RuleDetail,
        resource_span: Range<usize>,
    ) -> Option<IrRule> {
        if self.failed_since(&shared) {
            return None;
        }
        let (line, column) = self.rule_position(&shared.span);
        Some(IrRule {
            id,
            class,
            name,
            verdict: shared.verdict?,
            reason: shared.reason,
            line,
            column,
            kinds: shared.kinds?,
            phases: shared.phases?,
            resources,
            detail,
            spans: RuleSpans {
                rule: shared.span,
                resource: resource_span,
                verdict: shared.verdict_span,
            },
        })
    }

    /// The rule's written name (checked against the name grammar), or the
    /// name derived from what it selects.
    fn name_of(&mut self, given: &Option<Spanned<String>>, derived: String) -> String {
        match given {
            Some(n) => {
                self.check_name("rule", n);
                n.get_ref().clone()
            }
            None => derived,
        }
    }

    fn rule_position(&self, rule_span: &Range<usize>) -> (u32, u32) {
        let (l, c) = self.lines.line_col(self.header_span(rule_span).start);
        (l as u32, c as u32)
    }
}

/// Sorted inclusive ranges with touching ones merged.
fn merge_ranges(mut ranges: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    ranges.sort();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (f, l) in ranges {
        match out.last_mut() {
            Some(prev) if u64::from(prev.1) + 1 >= u64::from(f) => prev.1 = prev.1.max(l),
            _ => out.push((f, l)),
        }
    }
    out
}

/// The indefinite article of a field's description ("an MSR index").
fn article(what: &str) -> &'static str {
    if what.starts_with(['a', 'e', 'i', 'o', 'u', 'M']) {
        "an"
    } else {
        "a"
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
