//! A group of changed decisions worded for a reviewer: summary, value
//! drawings, CPUID bits gained and lost.

use std::collections::BTreeSet;

use pvgate_codegen::{Compiled, IrRule, Registry};
use pvgate_gate::{
    Access, MsrConstraint, Phase, PvConstraint, RegControl, Register, RuleDetail, RuleId, Verdict,
    VmKind,
};

use crate::bits::two_values;
use crate::describe::{self, join_and};

use super::change::{Change, ChangeData, CpuidSel, Eff, Res, RuleRef, Section, eff};

fn res_name(registry: &Registry, r: &Res) -> String {
    match *r {
        Res::Msr(f, l) => describe::msr_range(registry, f, l),
        Res::Pv(c) => format!("`{}`", c.name()),
        Res::Cpuid(s) => cpuid_sel(&s),
    }
}

fn cpuid_sel(s: &CpuidSel) -> String {
    let base = describe::cpuid_leaf(s.leaves, s.subleaf);
    if s.others {
        format!("{base} (other subleaves)")
    } else {
        base
    }
}

/// The changes of one group: resources that changed the same way in the same scopes.
#[allow(clippy::too_many_arguments)]
pub(super) fn describe_change(
    old: &Compiled,
    new: &Compiled,
    registry: &Registry,
    section: Section,
    access: Option<Access>,
    o: Option<RuleId>,
    n: Option<RuleId>,
    scopes: &[(VmKind, Phase)],
    res: &[Res],
) -> Vec<Change> {
    let (a, b) = (eff(&old.ir, o), eff(&new.ir, n));
    let where_ = describe::scopes(scopes);
    let what = join_and(
        &res.iter()
            .map(|r| res_name(registry, r))
            .collect::<Vec<_>>(),
    );
    let loc = |c: &Compiled, id: Option<RuleId>| -> Option<RuleRef> {
        id.and_then(|id| c.ir.rule(id))
            .map(|r: &IrRule| RuleRef::new(&c.path, r))
    };
    let data = ChangeData::Decisions {
        access,
        scopes: scopes.to_vec(),
        resources: res.to_vec(),
        old: a.verdict,
        new: b.verdict,
    };
    let make = |summary: String, details: Vec<String>| Change {
        section,
        summary,
        details,
        old_rule: loc(old, o),
        new_rule: loc(new, n),
        data: data.clone(),
    };
    if section == Section::Cpuid {
        let sels: Vec<CpuidSel> = res
            .iter()
            .filter_map(|r| {
                if let Res::Cpuid(s) = r {
                    Some(*s)
                } else {
                    None
                }
            })
            .collect();
        return cpuid_changes(registry, &sels, a, b, &where_)
            .into_iter()
            .map(|(s, d)| make(s, d))
            .collect();
    }
    let (act, noun) = match access {
        Some(acc) => (
            format!("{} {what}", acc.name()),
            format!("{}s of {what}", acc.name()),
        ),
        None => (format!("call {what}"), format!("calls to {what}")),
    };
    let summary = match (a.verdict, b.verdict) {
        (Verdict::Deny, Verdict::Allow) => format!("host may now {act} on {where_}"),
        (Verdict::Allow, Verdict::Deny) => format!("host may no longer {act} on {where_}"),
        (Verdict::Deny, Verdict::Ignore) => format!(
            "host {noun} on {where_} are now ignored (reported as success, nothing changes); they were refused"
        ),
        (Verdict::Ignore, Verdict::Deny) => {
            format!("host {noun} on {where_} are now refused with -EPERM; they were ignored")
        }
        (Verdict::Allow, Verdict::Ignore) => {
            format!("host {noun} on {where_} are now ignored; they were carried out")
        }
        (Verdict::Ignore, Verdict::Allow) => {
            format!("host {noun} on {where_} are now carried out; they were ignored")
        }
        _ => format!("the value checks on host {noun} on {where_} changed"),
    };
    let mut details = Vec::new();
    match (a.detail, b.detail) {
        (Some(RuleDetail::Msr(x)), Some(RuleDetail::Msr(y))) => msr_detail(&mut details, x, y),
        (None, Some(RuleDetail::Msr(y))) if b.verdict == Verdict::Allow => {
            msr_detail(&mut details, MsrConstraint::NONE, y)
        }
        (Some(RuleDetail::Pv(x)), Some(RuleDetail::Pv(y))) => pv_detail(&mut details, x, y),
        (None, Some(RuleDetail::Pv(y))) if b.verdict == Verdict::Allow => {
            pv_detail(&mut details, PvConstraint::NONE, y)
        }
        _ => {}
    }
    vec![make(summary, details)]
}

fn msr_detail(out: &mut Vec<String>, x: MsrConstraint, y: MsrConstraint) {
    for (name, a, b) in [
        ("write-mask", x.write_mask, y.write_mask),
        ("force-on", x.force_on, y.force_on),
        ("force-off", x.force_off, y.force_off),
        ("read-mask", x.read_mask, y.read_mask),
    ] {
        if a != b {
            out.push(format!(
                "{name}:\n{}",
                two_values("  ", ("old", a), ("new", b), 64).trim_end()
            ));
        }
    }
}

fn pv_detail(out: &mut Vec<String>, x: PvConstraint, y: PvConstraint) {
    if x.read_mask != y.read_mask {
        out.push(format!(
            "read-mask:\n{}",
            two_values("  ", ("old", x.read_mask), ("new", y.read_mask), 64).trim_end()
        ));
    }
    if x.min_vector != y.min_vector {
        out.push(format!("min-vector: {} -> {}", x.min_vector, y.min_vector));
    }
    if x.allow_soft != y.allow_soft {
        out.push(format!("allow-soft: {} -> {}", x.allow_soft, y.allow_soft));
    }
}

fn cpuid_changes(
    registry: &Registry,
    sels: &[CpuidSel],
    a: Eff,
    b: Eff,
    where_: &str,
) -> Vec<(String, Vec<String>)> {
    let regs = |e: Eff| match e.detail {
        Some(RuleDetail::Cpuid(r)) if e.verdict == Verdict::Allow => r,
        _ => [RegControl::FIXED; 4],
    };
    let (ra, rb) = (regs(a), regs(b));
    let mut out = Vec::new();
    for reg in Register::ALL {
        let (x, y) = (ra[reg as usize], rb[reg as usize]);
        let locs: Vec<String> = sels
            .iter()
            .map(|s| {
                let l = describe::cpuid_reg(s.leaves, s.subleaf, reg);
                if s.others {
                    format!("{l} (other subleaves)")
                } else {
                    l
                }
            })
            .collect();
        for (mode, old_m, new_m, gained, lost) in [
            (
                "host",
                x.host,
                y.host,
                "host may now choose",
                "host may no longer choose",
            ),
            (
                "clear-only",
                x.clear_only,
                y.clear_only,
                "host may now clear (never set)",
                "host may no longer clear",
            ),
            (
                "force-on",
                x.force_on,
                y.force_on,
                "the hypervisor now forces on",
                "the hypervisor no longer forces on",
            ),
            (
                "force-off",
                x.force_off,
                y.force_off,
                "the hypervisor now forces off",
                "the hypervisor no longer forces off",
            ),
        ] {
            for (bits, verb) in [(new_m & !old_m, gained), (old_m & !new_m, lost)] {
                if bits == 0 {
                    continue;
                }
                let feats: Vec<String> = sels
                    .iter()
                    .flat_map(|s| describe::features(registry, s.leaves, s.subleaf, reg, bits))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let named = if feats.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", feats.join(", "))
                };
                out.push((
                    format!(
                        "{verb} bits {bits:#x}{named} of {} on {where_}",
                        join_and(&locs)
                    ),
                    vec![format!(
                        "{mode} mask:\n{}",
                        two_values(
                            "  ",
                            ("old", u64::from(old_m)),
                            ("new", u64::from(new_m)),
                            32
                        )
                        .trim_end()
                    )],
                ));
            }
        }
    }
    if out.is_empty() && a.verdict != b.verdict {
        let locs: Vec<String> = sels.iter().map(cpuid_sel).collect();
        out.push((
            format!(
                "the CPUID verdict for {} on {where_} is now `{}`; it was `{}`",
                join_and(&locs),
                b.verdict.name(),
                a.verdict.name()
            ),
            Vec::new(),
        ));
    }
    out
}
