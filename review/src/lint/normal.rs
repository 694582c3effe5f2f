//! Normal VMs trust their host: a policy that does not allow them
//! everything says so.

use pvgate_codegen::Ir;
use pvgate_gate::{
    Access, MsrConstraint, Phase, PvCall, PvConstraint, RegControl, RuleDetail, Verdict, VmKind,
};

use super::finding::{Finding, LintId, Severity};

/// Lint `normal-not-allow-all`: one finding listing the gaps.
pub(super) fn normal_allow_all(out: &mut Vec<Finding>, ir: &Ir, text: &str) {
    let mut gaps = Vec::new();
    let allow_all_rule = |id, full: &dyn Fn(&RuleDetail) -> bool| {
        ir.rule(id)
            .is_some_and(|r| r.verdict == Verdict::Allow && full(&r.detail))
    };
    for phase in Phase::ALL {
        let missing: Vec<PvCall> = PvCall::ALL
            .into_iter()
            .filter(|&call| {
                let id = ir
                    .pv
                    .get(&(VmKind::Normal, phase))
                    .and_then(|l| l.iter().find(|(c, _)| *c == call))
                    .map(|(_, id)| *id);
                !id.is_some_and(|id| {
                    allow_all_rule(id, &|d| *d == RuleDetail::Pv(PvConstraint::NONE))
                })
            })
            .collect();
        if !missing.is_empty() {
            let names: Vec<String> = missing
                .iter()
                .take(3)
                .map(|c| format!("`{}`", c.name()))
                .collect();
            let more = if missing.len() > 3 {
                format!(" and {} more", missing.len() - 3)
            } else {
                String::new()
            };
            gaps.push(format!(
                "PV calls {}{more} in {}",
                names.join(", "),
                phase.name()
            ));
        }
        for access in Access::ALL {
            let full = ir
                .msr
                .get(&(VmKind::Normal, phase, access))
                .is_some_and(|l| {
                    l.len() == 1
                        && l[0].first == 0
                        && l[0].last == u32::MAX
                        && allow_all_rule(l[0].rule, &|d| {
                            *d == RuleDetail::Msr(MsrConstraint::NONE)
                        })
                });
            if !full {
                gaps.push(format!("MSR {}s in {}", access.name(), phase.name()));
            }
        }
        let all = RegControl {
            host: u32::MAX,
            ..RegControl::FIXED
        };
        let full = ir.cpuid.get(&(VmKind::Normal, phase)).is_some_and(|l| {
            l.len() == 1
                && l[0].leaf_first == 0
                && l[0].leaf_last == u32::MAX
                && l[0].subleaf.is_none()
                && allow_all_rule(l[0].rule, &|d| *d == RuleDetail::Cpuid([all; 4]))
        });
        if !full {
            gaps.push(format!("CPUID control in {}", phase.name()));
        }
    }
    if gaps.is_empty() {
        return;
    }
    let first_normal = ir.rules.iter().find(|r| r.kinds.contains(&VmKind::Normal));
    let span = match first_normal {
        Some(r) => r.spans.rule.clone(),
        None => text
            .find("[policy]")
            .map_or(0..0, |i| i..i + "[policy]".len()),
    };
    let shown: Vec<String> = gaps.iter().take(4).cloned().collect();
    let more = if gaps.len() > 4 {
        format!("; and {} more", gaps.len() - 4)
    } else {
        String::new()
    };
    out.push(Finding {
        lint: LintId::NormalNotAllowAll,
        severity: Severity::Info,
        message: format!("normal VMs are not allowed everything: {}{more}", shown.join("; ")),
        rule: first_normal.map(|r| r.name.clone()),
        span,
        label: String::from("normal VMs trust their host"),
        help: String::from(
            "a normal VM trusts its host; if that is intended, write the restriction down with a reason, else allow everything explicitly",
        ),
    });
}
