//! The cross-rule check: no two rules may decide the same (kind, phase,
//! access, resource). Conflicting rules and identical duplicates are both
//! errors that point at both rules: there is no silent precedence.

use std::collections::BTreeSet;

use pvgate_gate::{Access, Phase, RuleId, VmKind};

use crate::diagnostic::{Diagnostic, ErrorKind};
use crate::ir::{IrRule, Resources};
use crate::registry::Registry;

/// Every pair of rules that overlap, once per pair.
pub(crate) fn check(rules: &[IrRule], registry: &Registry) -> Vec<Diagnostic> {
    let mut reported: BTreeSet<(RuleId, RuleId)> = BTreeSet::new();
    let mut out = Vec::new();
    for (i, a) in rules.iter().enumerate() {
        for b in rules.iter().skip(i + 1) {
            if a.class != b.class || reported.contains(&(a.id, b.id)) {
                continue;
            }
            let Some((kind, phase)) = common_scope(a, b) else {
                continue;
            };
            let Some((what, access)) = common_resource(a, b, registry) else {
                continue;
            };
            reported.insert((a.id, b.id));
            let scope = match access {
                Some(acc) => format!("{} VMs in `{}` ({})", kind.name(), phase.name(), acc.name()),
                None => format!("{} VMs in `{}`", kind.name(), phase.name()),
            };
            let identical = a.verdict == b.verdict && a.detail == b.detail;
            let (kind_, message, label) = if identical {
                (
                    ErrorKind::Duplicate,
                    format!(
                        "duplicate rule: {what} for {scope} is already decided the same way at line {} (`{}`, {})",
                        a.line,
                        a.name,
                        a.verdict.name()
                    ),
                    format!("`{}` repeats `{}`", b.name, a.name),
                )
            } else {
                (
                    ErrorKind::Overlap,
                    format!(
                        "rules overlap: {what} for {scope} is decided by `{}` ({}, line {}) and `{}` ({}, line {})",
                        a.name,
                        a.verdict.name(),
                        a.line,
                        b.name,
                        b.verdict.name(),
                        b.line
                    ),
                    format!("`{}` ({})", b.name, b.verdict.name()),
                )
            };
            out.push(
                Diagnostic::new(kind_, message, b.spans.resource.clone(), label)
                    .with_related(
                        a.spans.resource.clone(),
                        format!("`{}` ({})", a.name, a.verdict.name()),
                    )
                    .with_help("each input must be decided by exactly one rule: narrow or remove one of them"),
            );
        }
    }
    out
}

fn common_scope(a: &IrRule, b: &IrRule) -> Option<(VmKind, Phase)> {
    let kind = a.kinds.iter().find(|k| b.kinds.contains(k))?;
    let phase = a.phases.iter().find(|p| b.phases.contains(p))?;
    Some((*kind, *phase))
}

/// The first resource both rules cover, worded for the message.
fn common_resource(
    a: &IrRule,
    b: &IrRule,
    registry: &Registry,
) -> Option<(String, Option<Access>)> {
    match (&a.resources, &b.resources) {
        (
            Resources::Msr {
                ranges: ra,
                accesses: aa,
            },
            Resources::Msr {
                ranges: rb,
                accesses: ab,
            },
        ) => {
            let access = aa.iter().find(|x| ab.contains(x))?;
            ra.iter().find_map(|&(af, al)| {
                rb.iter().find_map(|&(bf, bl)| {
                    let first = af.max(bf);
                    (first <= al.min(bl)).then(|| {
                        (
                            format!("MSR {}", registry.msr_display(first)),
                            Some(*access),
                        )
                    })
                })
            })
        }
        (
            Resources::Cpuid {
                leaves: la,
                subleaf: sa,
            },
            Resources::Cpuid {
                leaves: lb,
                subleaf: sb,
            },
        ) => {
            let first = la.0.max(lb.0);
            if first > la.1.min(lb.1) {
                return None;
            }
            let sub = match (sa, sb) {
                (Some(x), Some(y)) if x != y => return None,
                (Some(x), _) | (None, Some(x)) => format!("subleaf {x}"),
                (None, None) => String::from("(every subleaf)"),
            };
            Some((format!("CPUID leaf {first:#x} {sub}"), None))
        }
        (Resources::Pv { calls: ca }, Resources::Pv { calls: cb }) => {
            let call = ca.iter().find(|c| cb.contains(c))?;
            Some((format!("PV call `{}`", call.name()), None))
        }
        _ => None,
    }
}
