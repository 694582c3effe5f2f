//! CPUID: the supported base (the CPU model masked by the hypervisor's
//! supported CPUID, per VM kind), the supported table offered per VM kind,
//! and `vcpu_after_set_cpuid` (the host's proposal merged register by
//! register with the supported base under the policy's controls, never
//! outside the supported mask, filtered or rejected per the violation
//! mode, and frozen once the vCPU has run).

use pvgate_gate::{
    Decision, Phase, Policy, RegControl, Register, RuleId, Verdict, ViolationMode, VmKind,
    decide_cpuid, merge_supported, offered_register, support_for,
};

pub(crate) use super::cpuid_base::SupportedBases;
use super::cpuid_base::sort_table;
pub use super::cpuid_base::supported_base;
use super::cpuid_keys::{Lookup, SortedKeys, Support, merge_keys};
use super::ctx::Ctx;
use crate::audit::{Effect, Resource};
use crate::cpu::{CpuModel, CpuidEntry, CpuidTable, MAX_CPUID_ENTRIES};
use crate::error::CallError;
use crate::outcome::Outcome;
use crate::state::VcpuState;

/// The CPUID table the hypervisor offers as supported for a VM kind: the
/// supported base ([`supported_base`]) with the forced values of the rules
/// for (kind, `setup`) applied, inside the supported mask. Proposing it
/// unchanged is always accepted.
pub fn supported_cpuid<P: Policy + ?Sized>(policy: &P, cpu: &CpuModel, kind: VmKind) -> CpuidTable {
    let mut table = supported_base(policy, cpu, kind);
    for e in table.iter_mut() {
        let controls = cpuid_controls(&decide_cpuid(policy, kind, Phase::Setup, e.leaf, e.subleaf));
        let hw = cpu.base_entry(e.leaf, e.subleaf);
        let support = support_for(policy.cpuid_support(), kind, e.leaf, e.subleaf);
        for ((reg, c), s) in Register::ALL.into_iter().zip(controls).zip(support) {
            e.set_reg(reg, offered_register(hw.reg(reg), c, s));
        }
    }
    table
}

/// The per-register controls a CPUID decision gives the host: the rule's
/// for `allow`, none (everything fixed) otherwise.
fn cpuid_controls(d: &Decision<'_>) -> [RegControl; 4] {
    d.granted(|rule| Some(rule.cpuid_controls()))
        .unwrap_or([RegControl::FIXED; 4])
}

/// The first register where the host's proposal was replaced.
#[derive(Clone, Copy)]
struct Violation {
    entry: CpuidEntry,
    reg: Register,
    host: u32,
    effective: u32,
    rule: Option<RuleId>,
}

/// `vcpu_after_set_cpuid`: merges the host's proposal in `table` with the
/// model's base and hands back the effective table.
pub(crate) fn set_cpuid<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    table: &mut CpuidTable,
    bases: Option<&SupportedBases>,
) -> Outcome {
    // Duplicates make the proposal ambiguous: the first entry that appears
    // again later is named. Sorted once, they are neighbours.
    let keys = SortedKeys::new(table);
    if let Some(e) = keys.first_duplicate().and_then(|i| table.get(i)) {
        return ctx.fail(CallError::CpuidDuplicate {
            leaf: e.leaf,
            subleaf: e.subleaf,
        });
    }
    if v.phase != Phase::Setup {
        // After the first run, only the current table may be sent again.
        let mut proposed = table.clone();
        sort_table(&mut proposed);
        let mut current = v.cpuid.clone();
        sort_table(&mut current);
        if proposed == current {
            return Outcome {
                out: [current.len() as u64, 0, 0, 0],
                ..ctx.ok()
            };
        }
        let differs = proposed
            .iter()
            .zip(current.iter())
            .find(|(a, b)| a != b)
            .map(|(a, _)| *a)
            .or_else(|| proposed.get(current.len()).copied())
            .or_else(|| current.get(proposed.len()).copied())
            .unwrap_or_default();
        return Outcome::failed(
            ctx.call,
            CallError::CpuidChanged {
                leaf: differs.leaf,
                subleaf: differs.subleaf,
            },
            ctx.rule,
            Resource::Cpuid {
                leaf: differs.leaf,
                subleaf: differs.subleaf,
            },
        );
    }

    // The effective table covers the host's entries and every entry of the
    // supported base (a base leaf the host leaves out is proposed as zeros),
    // built in (leaf, subleaf) order; the first violation is the first in
    // the proposal's order, then the base's.
    let mut effective = CpuidTable::new();
    let computed;
    let base = match bases {
        Some(b) => b.of_kind(ctx.kind),
        None => {
            computed = supported_base(ctx.policy, ctx.cpu, ctx.kind);
            &computed
        }
    };
    let mut hardware = Lookup::new(&ctx.cpu.base);
    let mut supported = Support::new(ctx.policy.cpuid_support(), ctx.kind);
    let mut first: Option<(usize, Violation)> = None;
    let mut replaced = 0u32;
    let mut walk = merge_keys(&keys, base);
    while let Some(k) = walk.next() {
        let (leaf, subleaf) = (k.leaf, k.subleaf);
        let host = k
            .host
            .and_then(|i| table.get(i))
            .copied()
            .unwrap_or(CpuidEntry::zero(leaf, subleaf));
        let support = supported.regs(leaf, subleaf);
        let e = if support.iter().all(|s| s.allowed() == 0)
            && host == CpuidEntry::zero(leaf, subleaf)
        {
            // Nothing of this entry is supported, so every bit is cleared
            // whatever the hardware or the policy say; the host proposed
            // exactly that, so nothing is replaced.
            host
        } else {
            // The hardware's value; the merge masks it by the supported
            // CPUID, and no bit outside that mask survives, whoever asks.
            let hw = hardware.entry(leaf, subleaf);
            let d = decide_cpuid(ctx.policy, ctx.kind, v.phase, leaf, subleaf);
            let controls = cpuid_controls(&d);
            let mut e = CpuidEntry::zero(leaf, subleaf);
            for ((reg, c), s) in Register::ALL.into_iter().zip(controls).zip(support) {
                let m = merge_supported(hw.reg(reg), host.reg(reg), c, s);
                e.set_reg(reg, m.effective);
                // An `ignore` rule keeps the base silently.
                if m.violations != 0 && d.verdict != Verdict::Ignore {
                    replaced = replaced.wrapping_add(1);
                    if first.is_none_or(|(rank, _)| k.rank < rank) {
                        first = Some((
                            k.rank,
                            Violation {
                                entry: e,
                                reg,
                                host: host.reg(reg),
                                effective: m.effective,
                                rule: d.rule.map(|r| r.id),
                            },
                        ));
                    }
                }
            }
            e
        };
        if effective.push(e).is_err() {
            // Nothing was changed yet: the table would not fit.
            let count = MAX_CPUID_ENTRIES
                .saturating_add(1)
                .saturating_add(walk.count());
            return ctx.fail(CallError::CpuidTooLarge {
                count: count as u64,
            });
        }
    }
    let first = first.map(|(_, f)| f);
    let report = |f: &Violation| -> [u64; 4] {
        [
            effective.len() as u64,
            u64::from(replaced),
            u64::from(f.entry.leaf) << 32 | u64::from(f.entry.subleaf),
            (f.reg as u64) << 32 | u64::from(f.host ^ f.effective),
        ]
    };
    match first {
        None => {
            v.cpuid = effective.clone();
            v.cpuid_set = true;
            *table = effective;
            Outcome {
                out: [table.len() as u64, 0, 0, 0],
                ..ctx.ok()
            }
        }
        Some(f) => {
            let resource = Resource::Cpuid {
                leaf: f.entry.leaf,
                subleaf: f.entry.subleaf,
            };
            let out = report(&f);
            let o = match ctx.policy.violation_mode() {
                ViolationMode::Filter => {
                    v.cpuid = effective.clone();
                    v.cpuid_set = true;
                    Outcome {
                        out,
                        replaced,
                        ..Outcome::new(ctx.call, Effect::Filter, f.rule, resource)
                    }
                }
                ViolationMode::Reject => Outcome {
                    out,
                    replaced,
                    ..Outcome::failed(
                        ctx.call,
                        CallError::CpuidRejected {
                            leaf: f.entry.leaf,
                            subleaf: f.entry.subleaf,
                            reg: f.reg,
                            host: f.host,
                            effective: f.effective,
                        },
                        f.rule,
                        resource,
                    )
                },
            };
            // Either way the host gets the table the policy gives.
            *table = effective;
            o
        }
    }
}
