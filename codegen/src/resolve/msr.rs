//! `[[msr]]` rules: the MSR selector, accesses and value constraints.

use std::ops::Range;

use pvgate_gate::{Access, MsrConstraint, RuleDetail, RuleId, Verdict};
use toml::Spanned;

use super::{MsrSelection, Resolver, merge_ranges};
use crate::diagnostic::{Diagnostic, ErrorKind};
use crate::ir::{IrRule, Resources, RuleClass};
use crate::model::{self, RawValue};

impl Resolver<'_> {
    /// An MSR selector: `msr` (one or a list) or `range` (`[first, last]`),
    /// as inclusive index ranges and the selector's span; `None` when
    /// neither key is present. Errors are recorded.
    pub(super) fn msr_selector(
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
        let shared = self.shared(&span, &r.vm, &r.phase, &r.verdict, &r.reason);
        let verdict = shared.verdict;
        let known_access = Access::ALL.map(Access::name);
        let accesses = self.names(&r.access, "access", &known_access, Access::from_name);

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
                    self.constraint_needs_allow(key, s, verdict, &r.verdict);
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

        if self.failed_since(&shared) {
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
        let resources = Resources::Msr {
            ranges: merge_ranges(ranges),
            accesses: accesses?,
        };
        let name = self.name_of(&r.name, derived);
        let detail = RuleDetail::Msr(constraint);
        self.finish(
            id,
            RuleClass::Msr,
            shared,
            name,
            resources,
            detail,
            resource_span,
        )
    }
}
