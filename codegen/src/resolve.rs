//! Resolution and validation: the written policy (`model`) becomes resolved
//! rules (`ir::IrRule`), or located diagnostics. Every check of a single
//! rule lives here; checks across rules live in `overlap`.

use std::ops::Range;

use pvgate_gate::{
    Access, MsrConstraint, Phase, PvCall, PvConstraint, RegControl, Register, RuleDetail, RuleId,
    Verdict, ViolationMode, VmKind,
};
use toml::Spanned;

use crate::diagnostic::{Diagnostic, ErrorKind, line_col, suggest};
use crate::invariant::{FeatureBits, Invariant, InvariantCheck};
use crate::ir::{IrRule, Resources, RuleClass, RuleSpans};
use crate::model::{self, NameList, RawValue};
use crate::registry::{MsrAttr, Registry};

/// Reasons too vague to review ("todo", "tbd", ...): refused as missing.
const BOILERPLATE_REASONS: [&str; 6] = ["todo", "tbd", "fixme", "n/a", "none", "-"];

/// Resolves the header and every rule, collecting every error.
pub(crate) struct Resolver<'a> {
    text: &'a str,
    registry: &'a Registry,
    /// Errors found so far.
    pub errors: Vec<Diagnostic>,
}

/// Inclusive MSR index ranges and the span of the selector that chose them.
type MsrSelection = (Vec<(u32, u32)>, Range<usize>);

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
        if h.name.get_ref().trim().is_empty() {
            self.error(Diagnostic::new(
                ErrorKind::BadHeader,
                "the policy has an empty name",
                h.name.span(),
                "name the policy",
            ));
        }
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
                if text.is_empty()
                    || BOILERPLATE_REASONS.contains(&text.to_ascii_lowercase().as_str())
                {
                    self.error(
                        Diagnostic::new(
                            ErrorKind::MissingReason,
                            format!("rule reason `{text}` says nothing"),
                            r.span(),
                            "a reviewer cannot check this",
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

    /// A number: an integer, or a `0x…` hex string. `None` after an error.
    fn number(
        &mut self,
        value: &toml::Value,
        span: Range<usize>,
        what: &str,
        max: u64,
    ) -> Option<u64> {
        let n = match value {
            toml::Value::Integer(i) if *i >= 0 => *i as u64,
            toml::Value::Integer(i) => {
                self.error(Diagnostic::new(
                    ErrorKind::OutOfRange,
                    format!("{what} `{i}` is negative"),
                    span,
                    "must be 0 or more",
                ));
                return None;
            }
            toml::Value::String(s) => match parse_hex(s) {
                Some(Ok(n)) => n,
                Some(Err(())) => {
                    self.error(
                        Diagnostic::new(
                            ErrorKind::BadNumber,
                            format!("bad hex number `{s}` for {what}"),
                            span,
                            "not a 64-bit hexadecimal number",
                        )
                        .with_help("write hex as `0x` followed by 1 to 16 digits 0-9, a-f (underscores allowed)"),
                    );
                    return None;
                }
                None => {
                    self.error(Diagnostic::new(
                        ErrorKind::BadNumber,
                        format!("expected a number for {what}, found `{s}`"),
                        span,
                        "not a number",
                    ));
                    return None;
                }
            },
            other => {
                self.error(Diagnostic::new(
                    ErrorKind::Syntax,
                    format!("expected a number for {what}, found {}", other.type_str()),
                    span,
                    "not a number",
                ));
                return None;
            }
        };
        if n > max {
            self.error(Diagnostic::new(
                ErrorKind::OutOfRange,
                format!("{what} `{n:#x}` is out of range"),
                span,
                format!("the largest {what} is {max:#x}"),
            ));
            return None;
        }
        Some(n)
    }

    /// One MSR reference: a number or a registry name.
    fn msr_ref(&mut self, value: &toml::Value, span: Range<usize>) -> Option<u32> {
        if let toml::Value::String(s) = value
            && !s.starts_with("0x")
            && !s.starts_with("0X")
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
        self.number(value, span, "MSR index", u64::from(u32::MAX))
            .map(|n| n as u32)
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
                let n = self.number(value, span.clone(), what, u64::MAX)?;
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

    fn name_of(&self, given: &Option<Spanned<String>>, derived: String) -> String {
        given.as_ref().map_or(derived, |n| n.get_ref().clone())
    }

    fn rule_position(&self, rule_span: &Range<usize>) -> (u32, u32) {
        let (l, c) = line_col(self.text, self.header_span(rule_span).start);
        (l as u32, c as u32)
    }

    /// An MSR selector: `msr` (one or a list) or `range` (`[first, last]`),
    /// as inclusive index ranges and the selector's span; `None` when
    /// neither key is present. Errors are recorded.
    fn msr_selector(
        &mut self,
        msr: &Option<RawValue>,
        range: &Option<RawValue>,
    ) -> Option<MsrSelection> {
        match (msr, range) {
            (Some(m), None) => {
                let items: Vec<toml::Value> = match m.get_ref() {
                    toml::Value::Array(items) => items.clone(),
                    one => vec![one.clone()],
                };
                if items.is_empty() {
                    self.error(Diagnostic::new(
                        ErrorKind::EmptyOrInverted,
                        "empty MSR list",
                        m.span(),
                        "name at least one MSR",
                    ));
                }
                let mut ranges = Vec::new();
                for item in &items {
                    let s = if items.len() == 1 && !matches!(m.get_ref(), toml::Value::Array(_)) {
                        m.span()
                    } else {
                        self.span_of_item(&m.span(), item)
                    };
                    if let Some(i) = self.msr_ref(item, s.clone()) {
                        if ranges.contains(&(i, i)) {
                            self.error(Diagnostic::new(
                                ErrorKind::BadSelector,
                                format!("MSR {} is named twice", self.registry.msr_display(i)),
                                s,
                                "named again here",
                            ));
                        }
                        ranges.push((i, i));
                    }
                }
                Some((ranges, m.span()))
            }
            (None, Some(range)) => {
                let span = range.span();
                let mut ranges = Vec::new();
                match range.get_ref() {
                    toml::Value::Array(items) if items.len() == 2 => {
                        let a = self.span_of_item(&span, &items[0]);
                        let b = self.span_of_item(&span, &items[1]);
                        let first = self.msr_ref(&items[0], a);
                        let last = self.msr_ref(&items[1], b);
                        if let (Some(first), Some(last)) = (first, last) {
                            if first > last {
                                self.error(
                                    Diagnostic::new(
                                        ErrorKind::EmptyOrInverted,
                                        format!(
                                            "inverted MSR range: {first:#x} is after {last:#x}"
                                        ),
                                        span.clone(),
                                        "empty range",
                                    )
                                    .with_help(format!("write `range = [{last:#x}, {first:#x}]`")),
                                );
                            } else {
                                ranges.push((first, last));
                            }
                        }
                    }
                    _ => self.error(Diagnostic::new(
                        ErrorKind::BadSelector,
                        "`range` must be `[first, last]`",
                        span.clone(),
                        "expected two MSRs",
                    )),
                }
                Some((ranges, span))
            }
            (Some(m), Some(range)) => {
                self.error(
                    Diagnostic::new(
                        ErrorKind::BadSelector,
                        "rule has both `msr` and `range`",
                        range.span(),
                        "second selector",
                    )
                    .with_related(m.span(), "first selector")
                    .with_help("split it into two rules"),
                );
                Some((Vec::new(), m.span()))
            }
            (None, None) => None,
        }
    }

    /// Resolves an `[[msr]]` rule.
    pub fn msr_rule(&mut self, id: RuleId, rule: &Spanned<model::MsrRule>) -> Option<IrRule> {
        let span = rule.span();
        let r = rule.get_ref();
        let before = self.errors.len();
        let kinds = self.kinds(&r.vm);
        let phases = self.phases(&r.phase);
        let known_access = Access::ALL.map(Access::name);
        let accesses = self.names(&r.access, "access", &known_access, Access::from_name);
        let verdict = self.verdict(&r.verdict);
        let reason = self.reason(&r.reason, &span);

        // The selector: exactly one of `msr` and `range`.
        let (ranges, resource_span) = match self.msr_selector(&r.msr, &r.range) {
            Some(selected) => selected,
            None => {
                self.error(
                    Diagnostic::new(
                        ErrorKind::MissingKey,
                        "MSR rule selects no MSR",
                        self.header_span(&span),
                        "needs `msr` or `range`",
                    )
                    .with_help("add `msr = \"IA32_...\"` or `range = [first, last]`"),
                );
                (Vec::new(), span.clone())
            }
        };
        let first_index = ranges.first().map(|r| r.0);

        // Value constraints, with the MSR's named bits when it has them.
        let single = first_index.filter(|_| ranges.len() == 1 && ranges[0].0 == ranges[0].1);
        let entry = single.and_then(|i| self.registry.msr_by_index(i)).cloned();
        let context = match single {
            Some(i) => format!("MSR {}", self.registry.msr_display(i)),
            None => String::from("an MSR"),
        };
        let known: Vec<String> = entry
            .iter()
            .flat_map(|e| e.bits.iter().map(|b| b.name.clone()))
            .collect();
        let lookup = |name: &str| -> Option<u64> {
            entry
                .as_ref()?
                .bits
                .iter()
                .find(|b| b.name == name)
                .map(|b| 1u64 << b.bit)
        };
        let mut constraint = MsrConstraint::NONE;
        let mut masks: Vec<(&str, Range<usize>)> = Vec::new();
        for (key, raw, slot) in [
            ("write-mask", &r.write_mask, 0),
            ("force-on", &r.force_on, 1),
            ("force-off", &r.force_off, 2),
            ("read-mask", &r.read_mask, 3),
        ] {
            let Some(raw) = raw else { continue };
            masks.push((key, raw.span()));
            if let Some(m) = self.mask(raw, key, 64, &lookup, &known, &context) {
                match slot {
                    0 => constraint.write_mask = m,
                    1 => constraint.force_on = m,
                    2 => constraint.force_off = m,
                    _ => constraint.read_mask = m,
                }
            }
        }
        if constraint.force_on & constraint.force_off != 0
            && let Some((_, s)) = masks.iter().find(|(k, _)| *k == "force-off")
        {
            self.error(Diagnostic::new(
                ErrorKind::BadMask,
                format!(
                    "bits {:#x} are forced both on and off",
                    constraint.force_on & constraint.force_off
                ),
                s.clone(),
                "overlaps `force-on`",
            ));
        }
        if let (Some(verdict), Some(accesses)) = (verdict, &accesses) {
            for (key, s) in &masks {
                let needs = if *key == "read-mask" {
                    Access::Read
                } else {
                    Access::Write
                };
                if verdict != Verdict::Allow {
                    self.error(
                        Diagnostic::new(
                            ErrorKind::MisplacedConstraint,
                            format!("`{key}` on a `{}` rule", verdict.name()),
                            s.clone(),
                            "only `allow` rules carry value constraints",
                        )
                        .with_related(r.verdict.span(), "verdict"),
                    );
                } else if !accesses.contains(&needs) {
                    self.error(
                        Diagnostic::new(
                            ErrorKind::MisplacedConstraint,
                            format!("`{key}` on a rule without `{}` access", needs.name()),
                            s.clone(),
                            format!("applies to {}s only", needs.name()),
                        )
                        .with_related(r.access.span(), "accesses"),
                    );
                }
            }
        }

        if self.errors.len() != before {
            return None;
        }
        let mut ranges = ranges;
        ranges.sort();
        let derived = match (&r.msr, &r.range) {
            (_, Some(_)) => format!(
                "{}..={}",
                self.registry.msr_display(ranges[0].0),
                self.registry.msr_display(ranges[0].1)
            ),
            _ => ranges
                .iter()
                .map(|&(i, _)| {
                    self.registry
                        .msr_by_index(i)
                        .map_or(format!("{i:#x}"), |m| m.name.clone())
                })
                .collect::<Vec<_>>()
                .join(", "),
        };
        let (line, column) = self.rule_position(&span);
        Some(IrRule {
            id,
            class: RuleClass::Msr,
            name: self.name_of(&r.name, derived),
            verdict: verdict?,
            reason,
            line,
            column,
            kinds: kinds?,
            phases: phases?,
            resources: Resources::Msr {
                ranges: merge_ranges(ranges),
                accesses: accesses?,
            },
            detail: RuleDetail::Msr(constraint),
            spans: RuleSpans {
                rule: span,
                resource: resource_span,
                verdict: r.verdict.span(),
            },
        })
    }

    /// Resolves a `[[cpuid]]` rule.
    pub fn cpuid_rule(&mut self, id: RuleId, rule: &Spanned<model::CpuidRule>) -> Option<IrRule> {
        let span = rule.span();
        let r = rule.get_ref();
        let before = self.errors.len();
        let kinds = self.kinds(&r.vm);
        let phases = self.phases(&r.phase);
        let verdict = self.verdict(&r.verdict);
        let reason = self.reason(&r.reason, &span);
        if verdict == Some(Verdict::Ignore) {
            self.error(
                Diagnostic::new(
                    ErrorKind::MisplacedConstraint,
                    "`ignore` is not a CPUID verdict",
                    r.verdict.span(),
                    "use `allow` or `deny`",
                )
                .with_help("what happens to bits the host may not control is `cpuid-violations` in [policy]"),
            );
        }

        let leaf_span = r.leaf.span();
        let leaves = match r.leaf.get_ref() {
            toml::Value::String(s) if s == "all" => Some((0, u32::MAX)),
            toml::Value::Array(items) if items.len() == 2 => {
                let a = self.span_of_item(&leaf_span, &items[0]);
                let b = self.span_of_item(&leaf_span, &items[1]);
                let first = self.number(&items[0], a, "CPUID leaf", u64::from(u32::MAX));
                let last = self.number(&items[1], b, "CPUID leaf", u64::from(u32::MAX));
                match (first, last) {
                    (Some(f), Some(l)) if f > l => {
                        self.error(Diagnostic::new(
                            ErrorKind::EmptyOrInverted,
                            format!("inverted CPUID leaf range: {f:#x} is after {l:#x}"),
                            leaf_span.clone(),
                            "empty range",
                        ));
                        None
                    }
                    (Some(f), Some(l)) => Some((f as u32, l as u32)),
                    _ => None,
                }
            }
            toml::Value::Array(_) => {
                self.error(Diagnostic::new(
                    ErrorKind::BadSelector,
                    "a CPUID leaf range must be `[first, last]`",
                    leaf_span.clone(),
                    "expected two leaves",
                ));
                None
            }
            value => self
                .number(value, leaf_span.clone(), "CPUID leaf", u64::from(u32::MAX))
                .map(|l| (l as u32, l as u32)),
        };
        let subleaf = match &r.subleaf {
            None => Some(None),
            Some(s) => match s.get_ref() {
                toml::Value::String(a) if a == "all" => Some(None),
                value => self
                    .number(value, s.span(), "CPUID subleaf", u64::from(u32::MAX))
                    .map(|n| Some(n as u32)),
            },
        };

        let mut controls = [RegControl::FIXED; 4];
        for (reg, ctl) in [
            (Register::Eax, &r.eax),
            (Register::Ebx, &r.ebx),
            (Register::Ecx, &r.ecx),
            (Register::Edx, &r.edx),
        ] {
            let Some(ctl) = ctl else { continue };
            if let Some(v) = verdict.filter(|v| *v != Verdict::Allow) {
                self.error(
                    Diagnostic::new(
                        ErrorKind::MisplacedConstraint,
                        format!("`{}` control on a `{}` rule", reg.name(), v.name()),
                        ctl.span(),
                        "only `allow` rules carry register controls",
                    )
                    .with_related(r.verdict.span(), "verdict"),
                );
                continue;
            }
            controls[reg as usize] = self.register_control(ctl, reg, leaves, subleaf.flatten());
        }

        if self.errors.len() != before {
            return None;
        }
        let leaves = leaves?;
        let subleaf = subleaf?;
        let derived = match (leaves, subleaf) {
            ((0, u32::MAX), _) => String::from("CPUID all leaves"),
            ((f, l), s) => {
                let leaf = if f == l {
                    format!("{f:#x}")
                } else {
                    format!("{f:#x}..={l:#x}")
                };
                match s {
                    Some(s) => format!("CPUID {leaf}.{s}"),
                    None => format!("CPUID {leaf}"),
                }
            }
        };
        let (line, column) = self.rule_position(&span);
        Some(IrRule {
            id,
            class: RuleClass::Cpuid,
            name: self.name_of(&r.name, derived),
            verdict: verdict?,
            reason,
            line,
            column,
            kinds: kinds?,
            phases: phases?,
            resources: Resources::Cpuid { leaves, subleaf },
            detail: RuleDetail::Cpuid(controls),
            spans: RuleSpans {
                rule: span,
                resource: leaf_span,
                verdict: r.verdict.span(),
            },
        })
    }

    fn register_control(
        &mut self,
        ctl: &Spanned<model::RegisterControl>,
        reg: Register,
        leaves: Option<(u32, u32)>,
        subleaf: Option<u32>,
    ) -> RegControl {
        let c = ctl.get_ref();
        // Named bits resolve against the registry features of this register
        // of the rule's leaf (subleaf 0 when the rule covers every subleaf).
        let leaf = leaves.filter(|(f, l)| f == l).map(|(f, _)| f);
        let sub = subleaf.unwrap_or(0);
        let context = match leaf {
            Some(l) => format!(
                "CPUID.(EAX={l:#x},ECX={sub}):{}",
                reg.name().to_ascii_uppercase()
            ),
            None => format!("CPUID {}", reg.name().to_ascii_uppercase()),
        };
        let registry = self.registry;
        let known: Vec<String> = match leaf {
            Some(l) => registry
                .features_of(l, sub, reg)
                .map(|f| f.name.clone())
                .collect(),
            None => Vec::new(),
        };
        let lookup = |name: &str| -> Option<u64> {
            let f = registry.feature(name)?;
            (Some(f.leaf) == leaf && f.subleaf == sub && f.register() == Some(reg))
                .then(|| u64::from(f.mask()))
        };
        let mut out = RegControl::FIXED;
        let mut seen: Vec<(&str, u32, Range<usize>)> = Vec::new();
        for (key, raw) in [
            ("host", &c.host),
            ("clear-only", &c.clear_only),
            ("force-on", &c.force_on),
            ("force-off", &c.force_off),
        ] {
            let Some(raw) = raw else { continue };
            if let toml::Value::Array(items) = raw.get_ref() {
                // A known feature of another register: say where it lives.
                for item in items {
                    if let toml::Value::String(name) = item
                        && let (Some(f), None) = (registry.feature(name), lookup(name))
                    {
                        let s = self.span_of_item(&raw.span(), item);
                        self.error(Diagnostic::new(
                            ErrorKind::BadMask,
                            format!("`{name}` is {}, not a bit of {context}", f.location()),
                            s,
                            "bit of another register",
                        ));
                    }
                }
                if self
                    .errors
                    .iter()
                    .any(|e| e.kind == ErrorKind::BadMask && raw.span().contains(&e.span.start))
                {
                    continue;
                }
            }
            let Some(m) = self.mask(raw, key, 32, &lookup, &known, &context) else {
                continue;
            };
            let m = m as u32;
            for (other, om, os) in &seen {
                if m & om != 0 {
                    self.error(
                        Diagnostic::new(
                            ErrorKind::BadMask,
                            format!(
                                "bits {:#x} of {context} are both `{other}` and `{key}`",
                                m & om
                            ),
                            raw.span(),
                            format!("overlaps `{other}`"),
                        )
                        .with_related(os.clone(), format!("`{other}` here")),
                    );
                }
            }
            seen.push((key, m, raw.span()));
            match key {
                "host" => out.host = m,
                "clear-only" => out.clear_only = m,
                "force-on" => out.force_on = m,
                _ => out.force_off = m,
            }
        }
        out
    }

    /// A PV call selector: a name, a list of names, or `*`; the calls in ABI
    /// order and whether `*` was used. Errors are recorded.
    fn pv_calls(&mut self, raw: &RawValue) -> (Vec<PvCall>, bool) {
        let call_span = raw.span();
        let known: Vec<&str> = PvCall::ALL.iter().map(|c| c.name()).collect();
        let mut calls = Vec::new();
        let mut wildcard = false;
        let items: Vec<toml::Value> = match raw.get_ref() {
            toml::Value::Array(items) => items.clone(),
            one => vec![one.clone()],
        };
        if items.is_empty() {
            self.error(Diagnostic::new(
                ErrorKind::EmptyOrInverted,
                "empty PV call list",
                call_span.clone(),
                "name at least one call",
            ));
        }
        for item in &items {
            let s = if matches!(raw.get_ref(), toml::Value::Array(_)) {
                self.span_of_item(&call_span, item)
            } else {
                call_span.clone()
            };
            match item {
                toml::Value::String(name) if name == "*" => {
                    wildcard = true;
                    calls.extend(PvCall::ALL);
                }
                toml::Value::String(name) => match PvCall::from_name(name) {
                    Some(c) if calls.contains(&c) => self.error(Diagnostic::new(
                        ErrorKind::BadSelector,
                        format!("PV call `{name}` is named twice"),
                        s,
                        "named again here",
                    )),
                    Some(c) => calls.push(c),
                    None => {
                        let d = Diagnostic::new(
                            ErrorKind::UnknownName,
                            format!("unknown PV call `{name}`"),
                            s,
                            "not a PV call (DESIGN.md §5)",
                        )
                        .with_suggestion(suggest(name, known.iter().copied()));
                        self.error(d);
                    }
                },
                other => self.error(Diagnostic::new(
                    ErrorKind::Syntax,
                    format!("expected a PV call name, found {}", other.type_str()),
                    s,
                    "not a name",
                )),
            }
        }
        if wildcard && items.len() > 1 {
            self.error(Diagnostic::new(
                ErrorKind::BadSelector,
                "`*` already names every PV call",
                call_span.clone(),
                "list holds `*` and more",
            ));
        }
        calls.sort();
        calls.dedup();
        (calls, wildcard)
    }

    /// Resolves an `[[invariant]]` declared in `file` (the policy itself
    /// unless `include_span` is given).
    pub fn invariant(
        &mut self,
        raw: &Spanned<model::Invariant>,
        file: &str,
        include_span: Option<Range<usize>>,
    ) -> Option<Invariant> {
        let span = raw.span();
        let r = raw.get_ref();
        let before = self.errors.len();
        let kinds = self.kinds(&r.vm);
        let phases = self.phases(&r.phase);
        let reason = self.reason(&r.reason, &span);
        const FORBID: [&str; 4] = ["msr-write", "msr-read", "pv-call", "cpuid-host-control"];
        const REQUIRE: [&str; 1] = ["pv-allowed"];
        let (what, key) = match (&r.forbid, &r.require) {
            (Some(f), None) => (f, "forbid"),
            (None, Some(q)) => (q, "require"),
            (Some(f), Some(q)) => {
                self.error(
                    Diagnostic::new(
                        ErrorKind::BadSelector,
                        format!(
                            "invariant `{}` has both `forbid` and `require`",
                            r.name.get_ref()
                        ),
                        q.span(),
                        "second kind",
                    )
                    .with_related(f.span(), "first kind")
                    .with_help("split it into two invariants"),
                );
                return None;
            }
            (None, None) => {
                self.error(
                    Diagnostic::new(
                        ErrorKind::MissingKey,
                        format!(
                            "invariant `{}` neither forbids nor requires anything",
                            r.name.get_ref()
                        ),
                        self.header_span(&span),
                        "needs `forbid` or `require`",
                    )
                    .with_help(format!(
                        "`forbid` is one of {}; `require` is {}",
                        quoted(&FORBID),
                        quoted(&REQUIRE)
                    )),
                );
                return None;
            }
        };
        let known: &[&str] = if key == "forbid" { &FORBID } else { &REQUIRE };
        let kind = what.get_ref().as_str();
        if !known.contains(&kind) {
            let d = Diagnostic::new(
                ErrorKind::UnknownName,
                format!("unknown `{key}` kind `{kind}`"),
                what.span(),
                format!("expected one of {}", quoted(known)),
            )
            .with_suggestion(suggest(kind, known.iter().copied()));
            self.error(d);
            return None;
        }

        // Selector keys belong to one family each.
        let family = match kind {
            "msr-write" | "msr-read" => "msr",
            "pv-call" | "pv-allowed" => "pv",
            _ => "cpuid",
        };
        let selectors: [(&str, &str, Option<Range<usize>>); 6] = [
            ("msr", "msr", r.msr.as_ref().map(|v| v.span())),
            ("range", "msr", r.range.as_ref().map(|v| v.span())),
            ("msr-attrs", "msr", r.msr_attrs.as_ref().map(|v| v.span())),
            ("call", "pv", r.call.as_ref().map(|v| v.span())),
            ("except", "pv", r.except.as_ref().map(|v| v.span())),
            ("features", "cpuid", r.features.as_ref().map(|v| v.span())),
        ];
        for (name, fam, s) in selectors {
            if let Some(s) = s.filter(|_| fam != family) {
                self.error(Diagnostic::new(
                    ErrorKind::MisplacedConstraint,
                    format!("`{name}` does not apply to `{key} = \"{kind}\"`"),
                    s,
                    format!("selects {fam} resources"),
                ));
            }
        }

        let check = match kind {
            "msr-write" | "msr-read" => {
                let access = if kind == "msr-write" {
                    Access::Write
                } else {
                    Access::Read
                };
                let mut ranges = match self.msr_selector(&r.msr, &r.range) {
                    Some((ranges, _)) => ranges,
                    None if r.msr_attrs.is_some() => Vec::new(),
                    None => vec![(0, u32::MAX)],
                };
                if let Some(attrs) = &r.msr_attrs {
                    let names = ["side-effect", "read-only", "write-only"];
                    let parse = |n: &str| match n {
                        "side-effect" => Some(MsrAttr::SideEffect),
                        "read-only" => Some(MsrAttr::ReadOnly),
                        "write-only" => Some(MsrAttr::WriteOnly),
                        _ => None,
                    };
                    if let Some(attrs) = self.names(attrs, "MSR attribute", &names, parse) {
                        ranges.extend(
                            self.registry
                                .msrs
                                .iter()
                                .filter(|m| attrs.iter().any(|a| m.has(*a)))
                                .map(|m| (m.index, m.index)),
                        );
                    }
                }
                InvariantCheck::ForbidMsr {
                    access,
                    ranges: merge_ranges(ranges),
                }
            }
            "pv-call" | "pv-allowed" => {
                let mut calls = match &r.call {
                    Some(c) => self.pv_calls(c).0,
                    None if kind == "pv-call" => PvCall::ALL.to_vec(),
                    None => {
                        self.error(Diagnostic::new(
                            ErrorKind::MissingKey,
                            format!("invariant `{}` requires no call", r.name.get_ref()),
                            self.header_span(&span),
                            "needs `call`",
                        ));
                        Vec::new()
                    }
                };
                if let Some(except) = &r.except {
                    let (out, _) = self.pv_calls(except);
                    calls.retain(|c| !out.contains(c));
                }
                if kind == "pv-call" {
                    InvariantCheck::ForbidPv { calls }
                } else {
                    InvariantCheck::RequirePvAllowed { calls }
                }
            }
            _ => InvariantCheck::ForbidCpuidControl {
                features: self.feature_selector(&r.features),
            },
        };

        if self.errors.len() != before {
            return None;
        }
        let (line, _) = self.rule_position(&span);
        Some(Invariant {
            name: r.name.get_ref().clone(),
            reason,
            kinds: kinds?,
            phases: phases?,
            check,
            file: file.to_string(),
            included: include_span.is_some(),
            line,
            span: self.header_span(&span),
            include_span,
        })
    }

    /// `features`: `"security"` (the default) or a list of registry names.
    fn feature_selector(&mut self, raw: &Option<RawValue>) -> Vec<FeatureBits> {
        let registry = self.registry;
        let bits = |f: &crate::registry::CpuidFeature| {
            f.register().map(|reg| FeatureBits {
                name: f.name.clone(),
                leaf: f.leaf,
                subleaf: f.subleaf,
                reg,
                mask: f.mask(),
            })
        };
        let Some(raw) = raw else {
            return registry
                .features
                .iter()
                .filter(|f| f.security)
                .filter_map(bits)
                .collect();
        };
        match raw.get_ref() {
            toml::Value::String(s) if s == "security" => registry
                .features
                .iter()
                .filter(|f| f.security)
                .filter_map(bits)
                .collect(),
            toml::Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    let s = self.span_of_item(&raw.span(), item);
                    match item.as_str().and_then(|n| registry.feature(n)) {
                        Some(f) => out.extend(bits(f)),
                        None => {
                            let name = item.as_str().unwrap_or("");
                            let d = Diagnostic::new(
                                ErrorKind::UnknownName,
                                format!("unknown CPUID feature `{name}`"),
                                s,
                                "not in the CPUID registry (policy/registry/cpuid.toml)",
                            )
                            .with_suggestion(suggest(
                                name,
                                registry.features.iter().map(|f| f.name.as_str()),
                            ));
                            self.error(d);
                        }
                    }
                }
                out
            }
            _ => {
                self.error(Diagnostic::new(
                    ErrorKind::BadSelector,
                    "`features` must be `\"security\"` or a list of feature names",
                    raw.span(),
                    "not a feature selector",
                ));
                Vec::new()
            }
        }
    }

    /// Resolves a `[[pv]]` rule.
    pub fn pv_rule(&mut self, id: RuleId, rule: &Spanned<model::PvRule>) -> Option<IrRule> {
        let span = rule.span();
        let r = rule.get_ref();
        let before = self.errors.len();
        let kinds = self.kinds(&r.vm);
        let phases = self.phases(&r.phase);
        let verdict = self.verdict(&r.verdict);
        let reason = self.reason(&r.reason, &span);
        let call_span = r.call.span();
        let (calls, wildcard) = self.pv_calls(&r.call);

        let mut constraint = PvConstraint::NONE;
        let mut constrained: Vec<(&str, Range<usize>)> = Vec::new();
        if let Some(raw) = &r.read_mask {
            constrained.push(("read-mask", raw.span()));
            if let Some(m) = self.mask(raw, "read-mask", 64, &|_| None, &[], "a PV getter's value")
            {
                constraint.read_mask = m;
            }
            if let Some(c) = calls.iter().find(|c| c.access() != Access::Read) {
                self.error(Diagnostic::new(
                    ErrorKind::MisplacedConstraint,
                    format!("`read-mask` on `{}`, which is not a getter", c.name()),
                    raw.span(),
                    "read masks apply to getters only",
                ));
            }
        }
        let injects = |c: &PvCall| matches!(c, PvCall::InjectIrq | PvCall::InjectIrqIfAllowed);
        if let Some(raw) = &r.min_vector {
            constrained.push(("min-vector", raw.span()));
            if let Some(v) = self.number(raw.get_ref(), raw.span(), "interrupt vector", 255) {
                constraint.min_vector = v as u8;
            }
        }
        if let Some(b) = &r.allow_soft {
            constrained.push(("allow-soft", b.span()));
            constraint.allow_soft = *b.get_ref();
        }
        for (key, s) in &constrained {
            if *key != "read-mask"
                && let Some(c) = calls.iter().find(|c| !injects(c))
            {
                self.error(Diagnostic::new(
                    ErrorKind::MisplacedConstraint,
                    format!("`{key}` on `{}`, which injects no interrupt", c.name()),
                    s.clone(),
                    "applies to `inject_irq` and `inject_irq_if_allowed` only",
                ));
            }
            if let Some(v) = verdict.filter(|v| *v == Verdict::Deny) {
                self.error(
                    Diagnostic::new(
                        ErrorKind::MisplacedConstraint,
                        format!("`{key}` on a `{}` rule", v.name()),
                        s.clone(),
                        "a denied call has nothing to constrain",
                    )
                    .with_related(r.verdict.span(), "verdict"),
                );
            }
        }

        if self.errors.len() != before {
            return None;
        }
        let derived = if wildcard {
            String::from("every PV call")
        } else {
            calls
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (line, column) = self.rule_position(&span);
        Some(IrRule {
            id,
            class: RuleClass::Pv,
            name: self.name_of(&r.name, derived),
            verdict: verdict?,
            reason,
            line,
            column,
            kinds: kinds?,
            phases: phases?,
            resources: Resources::Pv { calls },
            detail: RuleDetail::Pv(constraint),
            spans: RuleSpans {
                rule: span,
                resource: call_span,
                verdict: r.verdict.span(),
            },
        })
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

/// Parses `0x…` hex (underscores allowed): `None` if not hex-prefixed,
/// `Some(Err)` if the digits are bad or too many.
fn parse_hex(s: &str) -> Option<Result<u64, ()>> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    let digits: String = digits.chars().filter(|&c| c != '_').collect();
    if digits.is_empty() || digits.len() > 16 {
        return Some(Err(()));
    }
    Some(u64::from_str_radix(&digits, 16).map_err(|_| ()))
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
