//! `[[invariant]]`s: forbid/require kinds and their selectors.

use std::ops::Range;

use pvgate_gate::{Access, PvCall};
use toml::Spanned;

use super::{Resolver, merge_ranges, quoted};
use crate::diagnostic::{Diagnostic, ErrorKind, suggest};
use crate::invariant::{FeatureBits, Invariant, InvariantCheck};
use crate::model::{self, RawValue};
use crate::registry::MsrAttr;

impl Resolver<'_> {
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
        self.check_name("invariant", &r.name);
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
            baseline: false,
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
}
