//! Proves invariants over the normalised IR at build time. The key space
//! is finite, and the IR's ranges are exactly the pieces on which a
//! decision is constant, so intersecting ranges checks every input.

use pvgate_gate::{RuleId, Verdict};

use crate::diagnostic::{Diagnostic, ErrorKind};
use crate::invariant::{FeatureBits, InvariantCheck};
use crate::ir::Ir;
use crate::registry::Registry;

/// One broken invariant: the rules that break it, and the first input
/// that shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Index into `Ir::invariants`.
    pub invariant: usize,
    /// The offending rules, in id order (empty: a required rule is missing).
    pub rules: Vec<RuleId>,
    /// The first breaking input, worded for a reviewer.
    pub example: String,
}

/// Checks every invariant of the IR, exhaustively.
pub fn check(ir: &Ir, registry: &Registry) -> Vec<Violation> {
    let mut out = Vec::new();
    for (i, inv) in ir.invariants.iter().enumerate() {
        let mut rules: Vec<RuleId> = Vec::new();
        let mut example: Option<String> = None;
        let mut note = |rule: Option<RuleId>, text: String| {
            if let Some(r) = rule
                && !rules.contains(&r)
            {
                rules.push(r);
            }
            example.get_or_insert(text);
        };
        let verdict = |id: RuleId| ir.rule(id).map_or(Verdict::Deny, |r| r.verdict);
        for &kind in &inv.kinds {
            for &phase in &inv.phases {
                let scope = format!("on {} VMs in `{}`", kind.name(), phase.name());
                match &inv.check {
                    InvariantCheck::ForbidMsr { access, ranges } => {
                        let decided = ir
                            .msr
                            .get(&(kind, phase, *access))
                            .map_or(&[][..], Vec::as_slice);
                        for d in decided.iter().filter(|d| verdict(d.rule) != Verdict::Deny) {
                            for &(first, last) in ranges {
                                let lo = first.max(d.first);
                                if lo <= last.min(d.last) {
                                    let v = verdict(d.rule).name();
                                    note(
                                        Some(d.rule),
                                        format!(
                                            "host {access} of MSR {} is `{v}` {scope}",
                                            registry.msr_display(lo),
                                            access = access.name()
                                        ),
                                    );
                                }
                            }
                        }
                    }
                    InvariantCheck::ForbidPv { calls } => {
                        for (call, id) in ir.pv.get(&(kind, phase)).map_or(&[][..], Vec::as_slice) {
                            if calls.contains(call) && verdict(*id) != Verdict::Deny {
                                let v = verdict(*id).name();
                                note(
                                    Some(*id),
                                    format!("PV call `{}` is `{v}` {scope}", call.name()),
                                );
                            }
                        }
                    }
                    InvariantCheck::ForbidCpuidControl { features } => {
                        for e in ir.cpuid.get(&(kind, phase)).map_or(&[][..], Vec::as_slice) {
                            let Some(rule) =
                                ir.rule(e.rule).filter(|r| r.verdict == Verdict::Allow)
                            else {
                                continue;
                            };
                            let controls = rule.detail;
                            let pvgate_gate::RuleDetail::Cpuid(controls) = controls else {
                                continue;
                            };
                            for f in features {
                                let covered = e.leaf_first <= f.leaf
                                    && f.leaf <= e.leaf_last
                                    && e.subleaf.is_none_or(|s| s == f.subleaf);
                                let c = controls[f.reg as usize];
                                if covered && (c.host | c.clear_only) & f.mask != 0 {
                                    let mode = if c.host & f.mask != 0 {
                                        "host"
                                    } else {
                                        "clear-only"
                                    };
                                    note(
                                        Some(e.rule),
                                        format!(
                                            "the host controls `{}` ({}) as `{mode}` {scope}",
                                            f.name,
                                            location(f)
                                        ),
                                    );
                                }
                            }
                        }
                    }
                    InvariantCheck::RequirePvAllowed { calls } => {
                        let decided = ir.pv.get(&(kind, phase)).map_or(&[][..], Vec::as_slice);
                        for call in calls {
                            match decided.iter().find(|(c, _)| c == call) {
                                Some((_, id)) if verdict(*id) == Verdict::Allow => {}
                                Some((_, id)) => {
                                    let v = verdict(*id).name();
                                    note(
                                        Some(*id),
                                        format!("PV call `{}` is `{v}` {scope}", call.name()),
                                    );
                                }
                                None => note(
                                    None,
                                    format!("no rule allows PV call `{}` {scope}", call.name()),
                                ),
                            }
                        }
                    }
                }
            }
        }
        if let Some(example) = example {
            rules.sort();
            out.push(Violation {
                invariant: i,
                rules,
                example,
            });
        }
    }
    out
}

fn location(f: &FeatureBits) -> String {
    format!(
        "CPUID.(EAX={:#x},ECX={}):{} mask {:#x}",
        f.leaf,
        f.subleaf,
        f.reg.name().to_ascii_uppercase(),
        f.mask
    )
}

/// A located diagnostic for a violation: the primary span is the first
/// offending rule, the others are related; the invariant is named with
/// its file and line.
pub fn diagnostic(ir: &Ir, v: &Violation) -> Option<Diagnostic> {
    let inv = ir.invariants.get(v.invariant)?;
    let lines: Vec<String> = v
        .rules
        .iter()
        .filter_map(|id| ir.rule(*id))
        .map(|r| format!("`{}` (line {})", r.name, r.line))
        .collect();
    let by = match lines.len() {
        0 => String::new(),
        1 => format!(" by rule {}", lines[0]),
        _ => format!(" by rules {}", lines.join(", ")),
    };
    let message = format!(
        "invariant `{}` ({}:{}) is violated{by}: {}",
        inv.name, inv.file, inv.line, v.example
    );
    let mut rules = v.rules.iter().filter_map(|id| ir.rule(*id));
    let mut d = match rules.next() {
        Some(first) => Diagnostic::new(
            ErrorKind::InvariantViolated,
            message,
            first.spans.resource.clone(),
            format!("breaks invariant `{}`", inv.name),
        ),
        None => {
            // A baseline invariant is in no file the policy names: point
            // at the policy's start and name the baseline in the label.
            let (span, label) = match (&inv.include_span, inv.included, inv.baseline) {
                (_, _, true) => (0..0, format!("required by the baseline `{}`", inv.file)),
                (Some(s), true, _) => (s.clone(), String::from("required by this invariant")),
                _ => (inv.span.clone(), String::from("required by this invariant")),
            };
            Diagnostic::new(ErrorKind::InvariantViolated, message, span, label)
        }
    };
    for other in rules {
        d = d.with_related(
            other.spans.resource.clone(),
            format!("also breaks `{}`", inv.name),
        );
    }
    if !inv.included && !v.rules.is_empty() {
        d = d.with_related(inv.span.clone(), "invariant declared here");
    }
    Some(d.with_help(format!("invariant `{}`: {}", inv.name, inv.reason)))
}
