//! The exact semantic difference between two policies, computed from
//! their IR tables: every (VM kind, phase, access,
//! resource range) whose verdict, value constraint or CPUID control
//! changed, worded for a reviewer, with both rule locations. Reordering,
//! comments and formatting give an empty diff.

mod change;
mod walk;
mod wording;

use std::collections::{BTreeMap, BTreeSet};

use pvgate_codegen::{Compiled, Ir, Registry};
use pvgate_gate::{Access, Phase, RuleId, ViolationMode, VmKind};

use change::eff;
pub use change::{Change, ChangeData, CpuidSel, HeaderField, Res, RuleRef, Section};
use walk::{cpuid_walk, msr_walk, pv_walk};
use wording::describe_change;

/// One (resource, rule pair) change before grouping by scope.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Raw {
    section: Section,
    access: Option<Access>,
    res: Res,
    old: Option<RuleId>,
    new: Option<RuleId>,
}

/// Every semantic change from `old` to `new`, grouped for a reviewer.
pub fn diff(old: &Compiled, new: &Compiled, registry: &Registry) -> Vec<Change> {
    let mut out = header(&old.ir, &new.ir);
    let mut raw: BTreeMap<Raw, Vec<(VmKind, Phase)>> = BTreeMap::new();
    let mut wording: BTreeSet<(RuleId, RuleId)> = BTreeSet::new();
    let mut record = |section, access, res, o: Option<RuleId>, n: Option<RuleId>, scope| {
        if eff(&old.ir, o) != eff(&new.ir, n) {
            raw.entry(Raw {
                section,
                access,
                res,
                old: o,
                new: n,
            })
            .or_default()
            .push(scope);
        } else if let (Some(o), Some(n)) = (o, n) {
            wording.insert((o, n));
        }
    };
    msr_walk(&old.ir, &new.ir, &mut record);
    cpuid_walk(&old.ir, &new.ir, &mut record);
    pv_walk(&old.ir, &new.ir, &mut record);

    // Group resources that changed the same way in the same scopes.
    type GroupKey = (
        Section,
        Option<Access>,
        Option<RuleId>,
        Option<RuleId>,
        Vec<(VmKind, Phase)>,
    );
    let mut groups: BTreeMap<GroupKey, Vec<Res>> = BTreeMap::new();
    for (r, mut scopes) in raw {
        scopes.sort();
        scopes.dedup();
        groups
            .entry((r.section, r.access, r.old, r.new, scopes))
            .or_default()
            .push(r.res);
    }
    for ((section, access, o, n, scopes), res) in groups {
        out.extend(describe_change(
            old, new, registry, section, access, o, n, &scopes, &res,
        ));
    }
    for (o, n) in wording {
        let (Some(a), Some(b)) = (old.ir.rule(o), new.ir.rule(n)) else {
            continue;
        };
        if a.name == b.name && a.reason == b.reason {
            continue;
        }
        let mut details = Vec::new();
        if a.name != b.name {
            details.push(format!("name: `{}` -> `{}`", a.name, b.name));
        }
        if a.reason != b.reason {
            details.push(format!("old reason: {}", a.reason));
            details.push(format!("new reason: {}", b.reason));
        }
        out.push(Change {
            section: Section::Wording,
            summary: if a.name == b.name {
                format!("rule `{}` has a new reason", b.name)
            } else {
                format!(
                    "some decisions of rule `{}` now come from rule `{}` (same decisions, new name{})",
                    a.name,
                    b.name,
                    if a.reason == b.reason { "" } else { " and reason" }
                )
            },
            details,
            old_rule: Some(RuleRef::new(&old.path, a)),
            new_rule: Some(RuleRef::new(&new.path, b)),
            data: ChangeData::Wording,
        });
    }
    out.sort_by_key(|c| c.section);
    out
}

/// The invariants proven by one policy and not the other, by canonical
/// form: a change a reviewer must see even when no decision moves.
fn invariant_changes(old: &Ir, new: &Ir) -> Vec<Change> {
    let proven = |ir: &Ir| -> BTreeMap<String, String> {
        ir.invariants
            .iter()
            .map(|i| {
                (
                    pvgate_codegen::digest::canonical_invariant(i),
                    format!("`{}` ({}:{})", i.name, i.file, i.line),
                )
            })
            .collect()
    };
    let (was, now) = (proven(old), proven(new));
    let mut out = Vec::new();
    for (from, to, now_proven, word) in [
        (&was, &now, true, "is now proven"),
        (&now, &was, false, "is no longer proven"),
    ] {
        for (canonical, shown) in to {
            if !from.contains_key(canonical) {
                out.push(Change {
                    section: Section::Header,
                    summary: format!("invariant {shown} {word}"),
                    details: Vec::new(),
                    old_rule: None,
                    new_rule: None,
                    data: ChangeData::Invariant {
                        canonical: canonical.clone(),
                        now_proven,
                    },
                });
            }
        }
    }
    out
}

fn header(old: &Ir, new: &Ir) -> Vec<Change> {
    let mut out = Vec::new();
    if old.violation_mode != new.violation_mode {
        let word = |m: ViolationMode| match m {
            ViolationMode::Filter => {
                "filtered (the hypervisor's value is taken silently and counted)"
            }
            ViolationMode::Reject => {
                "rejected (the call fails and the corrected table is reported)"
            }
        };
        out.push(Change {
            section: Section::Header,
            summary: format!(
                "host CPUID proposals outside its control are now {}; they were {}",
                word(new.violation_mode),
                match old.violation_mode {
                    ViolationMode::Filter => "filtered",
                    ViolationMode::Reject => "rejected",
                }
            ),
            details: Vec::new(),
            old_rule: None,
            new_rule: None,
            data: ChangeData::ViolationMode {
                old: old.violation_mode,
                new: new.violation_mode,
            },
        });
    }
    out.extend(invariant_changes(old, new));
    for (what, a, b) in [
        (HeaderField::Name, &old.name, &new.name),
        (HeaderField::Description, &old.description, &new.description),
    ] {
        if a != b {
            out.push(Change {
                section: Section::Header,
                summary: format!("the policy {} changed from `{a}` to `{b}`", what.name()),
                details: Vec::new(),
                old_rule: None,
                new_rule: None,
                data: ChangeData::Header {
                    field: what,
                    old: a.clone(),
                    new: b.clone(),
                },
            });
        }
    }
    out
}
