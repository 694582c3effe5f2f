//! `[[pv]]` rules: call selectors and the value checks of injection and getters.

use std::ops::Range;

use pvgate_gate::{Access, PvCall, PvConstraint, RuleDetail, RuleId};
use toml::Spanned;

use super::Resolver;
use crate::diagnostic::{Diagnostic, ErrorKind, suggest};
use crate::ir::{IrRule, Resources, RuleClass};
use crate::model::{self, RawValue};

impl Resolver<'_> {
    /// A PV call selector: a name, a list of names, or `*`; the calls in ABI
    /// order and whether `*` was used. Errors are recorded.
    pub(super) fn pv_calls(&mut self, raw: &RawValue) -> (Vec<PvCall>, bool) {
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
                            "not a PV call (docs/design.md §5)",
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

    /// Resolves a `[[pv]]` rule.
    pub fn pv_rule(&mut self, id: RuleId, rule: &Spanned<model::PvRule>) -> Option<IrRule> {
        let span = rule.span();
        let r = rule.get_ref();
        let shared = self.shared(&span, &r.vm, &r.phase, &r.verdict, &r.reason);
        let verdict = shared.verdict;
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
            if let Some(v) = self.number(raw.get_ref(), raw.span(), "interrupt vector", 8) {
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
            if let Some(v) = verdict {
                self.constraint_needs_allow(key, s, v, &r.verdict);
            }
        }

        if self.failed_since(&shared) {
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
        let name = self.name_of(&r.name, derived);
        let resources = Resources::Pv { calls };
        let detail = RuleDetail::Pv(constraint);
        self.finish(
            id,
            RuleClass::Pv,
            shared,
            name,
            resources,
            detail,
            call_span,
        )
    }
}
