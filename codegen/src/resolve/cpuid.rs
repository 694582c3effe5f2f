//! `[[cpuid]]` rules: leaf and subleaf selectors and per-register controls.

use std::ops::Range;

use pvgate_gate::{RegControl, Register, RuleDetail, RuleId, Verdict};
use toml::Spanned;

use super::Resolver;
use crate::diagnostic::{Diagnostic, ErrorKind};
use crate::ir::{IrRule, Resources, RuleClass};
use crate::model::{self};

impl Resolver<'_> {
    /// Resolves a `[[cpuid]]` rule.
    pub fn cpuid_rule(&mut self, id: RuleId, rule: &Spanned<model::CpuidRule>) -> Option<IrRule> {
        let span = rule.span();
        let r = rule.get_ref();
        let shared = self.shared(&span, &r.vm, &r.phase, &r.verdict, &r.reason);
        let verdict = shared.verdict;
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
        let leaves = self.cpuid_leaves(&r.leaf);
        let subleaf = self.cpuid_subleaf(&r.subleaf);

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
            controls[reg as usize] = self.register_control(ctl, reg, leaves, subleaf);
        }

        if self.failed_since(&shared) {
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
        let name = self.name_of(&r.name, derived);
        let resources = Resources::Cpuid { leaves, subleaf };
        let detail = RuleDetail::Cpuid(controls);
        self.finish(
            id,
            RuleClass::Cpuid,
            shared,
            name,
            resources,
            detail,
            leaf_span,
        )
    }

    /// A CPUID leaf selector: a number, `[first, last]` or `"all"`, as an
    /// inclusive range. `None` after an error.
    pub(super) fn cpuid_leaves(&mut self, raw: &model::RawValue) -> Option<(u32, u32)> {
        let leaf_span = raw.span();
        match raw.get_ref() {
            toml::Value::String(s) if s == "all" => Some((0, u32::MAX)),
            toml::Value::Array(items) if items.len() == 2 => {
                let a = self.span_of_item(&leaf_span, &items[0]);
                let b = self.span_of_item(&leaf_span, &items[1]);
                let first = self.number(&items[0], a, "CPUID leaf", 32);
                let last = self.number(&items[1], b, "CPUID leaf", 32);
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
                .number(value, leaf_span.clone(), "CPUID leaf", 32)
                .map(|l| (l as u32, l as u32)),
        }
    }

    /// A CPUID subleaf selector: a number, or `"all"` / absent (every
    /// subleaf, `Some(None)`). `None` after an error.
    pub(super) fn cpuid_subleaf(&mut self, raw: &Option<model::RawValue>) -> Option<Option<u32>> {
        match raw {
            None => Some(None),
            Some(s) => match s.get_ref() {
                toml::Value::String(a) if a == "all" => Some(None),
                value => self
                    .number(value, s.span(), "CPUID subleaf", 32)
                    .map(|n| Some(n as u32)),
            },
        }
    }

    fn register_control(
        &mut self,
        ctl: &Spanned<model::RegisterControl>,
        reg: Register,
        leaves: Option<(u32, u32)>,
        subleaf: Option<Option<u32>>,
    ) -> RegControl {
        let c = ctl.get_ref();
        let every_subleaf = subleaf == Some(None);
        let subleaf = subleaf.flatten();
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
            if every_subleaf
                && let Some(l) = leaf
                && self.named_bits_on_every_subleaf(raw, l)
            {
                continue;
            }
            if let toml::Value::Array(items) = raw.get_ref() {
                // A known feature of another register: say where it lives.
                for item in items {
                    if let toml::Value::String(name) = item
                        && let (Some(f), None) = (registry.feature(name), lookup(name))
                    {
                        let s = self.span_of_item(&raw.span(), item);
                        let help = if Some(f.leaf) == leaf && f.subleaf == sub {
                            format!(
                                "write it under `{}` of leaf {:#x}: `{} = {{ {key} = [\"{name}\"] }}`",
                                f.reg, f.leaf, f.reg
                            )
                        } else if f.subleaf == 0 {
                            format!(
                                "write it under `{}` of leaf {:#x}, in a `[[cpuid]]` rule with `leaf = {:#x}`",
                                f.reg, f.leaf, f.leaf
                            )
                        } else {
                            format!(
                                "write it under `{}` of leaf {:#x} subleaf {}, in a `[[cpuid]]` rule with `leaf = {:#x}` and `subleaf = {}`",
                                f.reg, f.leaf, f.subleaf, f.leaf, f.subleaf
                            )
                        };
                        self.error(
                            Diagnostic::new(
                                ErrorKind::BadMask,
                                format!("`{name}` is {}, not a bit of {context}", f.location()),
                                s,
                                "bit of another register",
                            )
                            .with_help(help),
                        );
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

    /// Refuses named bits in a mask of a rule that covers every subleaf of
    /// a leaf with subleaves: a feature name means one subleaf, and the
    /// mask would apply its bit to all of them. Returns whether it refused.
    pub(super) fn named_bits_on_every_subleaf(&mut self, raw: &model::RawValue, leaf: u32) -> bool {
        if !self.registry.leaf_has_subleaves(leaf) {
            return false;
        }
        let toml::Value::Array(items) = raw.get_ref() else {
            return false;
        };
        let Some(name) = items.iter().find_map(|i| i.as_str()) else {
            return false;
        };
        let help = match self.registry.feature(name).filter(|f| f.leaf == leaf) {
            Some(f) => format!(
                "add `subleaf = {}` (where `{name}` lives), or write the mask as a number to apply it to every subleaf",
                f.subleaf
            ),
            None => String::from(
                "add `subleaf = N` for the subleaf the bits belong to, or write the mask as a number to apply it to every subleaf",
            ),
        };
        self.error(
            Diagnostic::new(
                ErrorKind::BadSelector,
                format!(
                    "named bits on a rule for every subleaf of CPUID leaf {leaf:#x}, which has subleaves"
                ),
                raw.span(),
                "a bit name means one subleaf",
            )
            .with_help(help),
        );
        true
    }
}
