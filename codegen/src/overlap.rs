//! The cross-rule check: no two rules may decide the same (kind, phase,
//! access, resource). Conflicting rules and identical duplicates are both
//! errors that point at both rules: there is no silent precedence.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use pvgate_gate::{Access, Phase, VmKind};

use crate::diagnostic::{Diagnostic, ErrorKind};
use crate::ir::{IrRule, Resources, RuleClass};
use crate::registry::Registry;

/// Every pair of rules that overlap, once per pair, in (first rule,
/// second rule) order. Only candidate pairs (rules that share a key and
/// whose resources intersect, found by a sorted sweep) are compared, so a
/// policy of n disjoint rules costs O(n log n), not n² comparisons.
pub(crate) fn check(rules: &[IrRule], registry: &Registry) -> Vec<Diagnostic> {
    let (pairs, _) = candidates(rules);
    let mut out = Vec::new();
    for (i, j) in pairs {
        let (Some(a), Some(b)) = (rules.get(i), rules.get(j)) else {
            continue;
        };
        if a.class != b.class {
            continue;
        }
        let Some((kind, phase)) = common_scope(a, b) else {
            continue;
        };
        let Some((what, access)) = common_resource(a, b, registry) else {
            continue;
        };
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
                .with_help(
                    "each input must be decided by exactly one rule: narrow or remove one of them",
                ),
        );
    }
    out
}

/// One selector of a rule on one key: (first, last, CPUID subleaf, rule
/// index).
type Interval = (u32, u32, Option<u32>, usize);

/// The pairs `(i, j)`, `i < j`, of rules that may overlap: they share a
/// (kind, phase, access) or (kind, phase, call) key and their resources
/// intersect on it. A superset of the overlapping pairs (the CPUID subleaf
/// is checked exactly later), sorted and without repeats; and how many
/// interval comparisons the sweep made (for the tests that pin the
/// algorithm: disjoint rules make none).
pub(crate) fn candidates(rules: &[IrRule]) -> (BTreeSet<(usize, usize)>, usize) {
    // Per key, the intervals. PV calls are one point, keyed by call.
    type Key = (RuleClass, VmKind, Phase, u8, u32);
    let mut keyed: BTreeMap<Key, Vec<Interval>> = BTreeMap::new();
    for (n, rule) in rules.iter().enumerate() {
        for &kind in &rule.kinds {
            for &phase in &rule.phases {
                match &rule.resources {
                    Resources::Msr { ranges, accesses } => {
                        for &access in accesses {
                            let list = keyed
                                .entry((rule.class, kind, phase, access as u8, 0))
                                .or_default();
                            list.extend(ranges.iter().map(|&(f, l)| (f, l, None, n)));
                        }
                    }
                    Resources::Cpuid { leaves, subleaf } => {
                        keyed
                            .entry((rule.class, kind, phase, 0, 0))
                            .or_default()
                            .push((leaves.0, leaves.1, *subleaf, n));
                    }
                    Resources::Pv { calls } => {
                        for &call in calls {
                            keyed
                                .entry((rule.class, kind, phase, 0, call as u32))
                                .or_default()
                                .push((0, 0, None, n));
                        }
                    }
                }
            }
        }
    }
    let mut pairs = BTreeSet::new();
    let mut compared = 0;
    for list in keyed.values_mut() {
        compared += sweep(list, &mut pairs);
    }
    (pairs, compared)
}

/// Adds every pair of intervals of different rules that intersect (and
/// whose subleaves are compatible): sorted by start, each interval is
/// compared only with the earlier ones still open at its start. Returns
/// the number of comparisons.
fn sweep(list: &mut [Interval], pairs: &mut BTreeSet<(usize, usize)>) -> usize {
    list.sort_unstable();
    let mut compared = 0;
    // Open intervals: (last, subleaf, rule), smallest `last` first.
    let mut open: BinaryHeap<Reverse<(u32, Option<u32>, usize)>> = BinaryHeap::new();
    for &(first, last, sub, rule) in list.iter() {
        while open.peek().is_some_and(|Reverse((l, _, _))| *l < first) {
            open.pop();
        }
        for Reverse((_, other_sub, other)) in open.iter() {
            compared += 1;
            let compatible = match (sub, other_sub) {
                (Some(x), Some(y)) => x == *y,
                _ => true,
            };
            if *other != rule && compatible {
                pairs.insert((rule.min(*other), rule.max(*other)));
            }
        }
        open.push(Reverse((last, sub, rule)));
    }
    compared
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
