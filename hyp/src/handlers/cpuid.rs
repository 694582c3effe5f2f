//! CPUID: the supported base (the CPU model masked by the hypervisor's
//! supported CPUID, per VM kind), the supported table offered per VM kind,
//! and `vcpu_after_set_cpuid` (the host's proposal merged register by
//! register with the supported base under the policy's controls, never
//! outside the supported mask, filtered or rejected per the violation
//! mode, and frozen once the vCPU has run).

use pvgate_gate::{
    Decision, Phase, Policy, RegControl, Register, Verdict, ViolationMode, VmKind, decide_cpuid,
    offered_register, support_for,
};

use super::cpuid_base::sort_table;
pub use super::cpuid_base::supported_base;
use super::cpuid_keys::sorted_positions;
use super::cpuid_masks::{Grant, MergeBase};
use super::cpuid_merge::{Merged, Stop, Violation, merge};
use super::ctx::Ctx;
use crate::audit::{Effect, Resource};
use crate::cpu::{CpuModel, CpuidEntry, CpuidTable};
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

/// What a CPUID decision grants the merge: its controls and rule, and
/// whether a replaced register is reported (an `ignore` rule keeps the
/// base silently).
fn grant(d: &Decision<'_>) -> Grant {
    Grant {
        controls: cpuid_controls(d),
        rule: d.rule.map(|r| r.id),
        report: d.verdict != Verdict::Ignore,
    }
}

/// The supported base of each VM kind ([`supported_base`]) as the masks
/// its entries merge with in `setup`, kept by the hypervisor once its CPU
/// model is installed.
pub(crate) struct SupportedBases {
    protected: MergeBase,
    normal: MergeBase,
}

impl SupportedBases {
    /// Both kinds' bases for a policy and CPU model.
    pub(crate) fn of<P: Policy + ?Sized>(policy: &P, cpu: &CpuModel) -> SupportedBases {
        SupportedBases {
            protected: MergeBase::of(policy, cpu, VmKind::Protected, grant),
            normal: MergeBase::of(policy, cpu, VmKind::Normal, grant),
        }
    }

    /// The base of `kind`.
    pub(crate) fn of_kind(&self, kind: VmKind) -> &MergeBase {
        match kind {
            VmKind::Protected => &self.protected,
            VmKind::Normal => &self.normal,
        }
    }
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
    // again later is named (found while the proposal is put in key order),
    // before anything else is checked.
    let duplicate = |i: usize| {
        let e = table.get(i).copied().unwrap_or_default();
        ctx.fail(CallError::CpuidDuplicate {
            leaf: e.leaf,
            subleaf: e.subleaf,
        })
    };
    if v.phase != Phase::Setup {
        if let Err(i) = sorted_positions(table) {
            return duplicate(i);
        }
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
    let merged = match bases {
        Some(b) => merge(ctx, table, b.of_kind(ctx.kind), &mut effective, grant),
        None => merge_computed(ctx, table, &mut effective),
    };
    let Merged { first, replaced } = match merged {
        Ok(m) => m,
        Err(Stop::Duplicate(i)) => return duplicate(i),
        // Nothing was changed yet: the table would not fit.
        Err(Stop::TooLarge(count)) => {
            return ctx.fail(CallError::CpuidTooLarge {
                count: count as u64,
            });
        }
    };
    let report = |f: &Violation| -> [u64; 4] {
        [
            effective.len() as u64,
            u64::from(replaced),
            u64::from(f.leaf) << 32 | u64::from(f.subleaf),
            (f.reg as u64) << 32 | u64::from(f.host ^ f.effective),
        ]
    };
    match first {
        None => {
            copy_table(&mut v.cpuid, &effective);
            v.cpuid_set = true;
            copy_table(table, &effective);
            Outcome {
                out: [table.len() as u64, 0, 0, 0],
                ..ctx.ok()
            }
        }
        Some(f) => {
            let resource = Resource::Cpuid {
                leaf: f.leaf,
                subleaf: f.subleaf,
            };
            let out = report(&f);
            let o = match ctx.policy.violation_mode() {
                ViolationMode::Filter => {
                    copy_table(&mut v.cpuid, &effective);
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
                            leaf: f.leaf,
                            subleaf: f.subleaf,
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
            copy_table(table, &effective);
            o
        }
    }
}

/// The merge when the hypervisor's bases are not there yet (another
/// thread is installing the CPU model): the base's masks are computed for
/// this call.
#[inline(never)]
fn merge_computed<P: Policy>(
    ctx: &Ctx<'_, P>,
    table: &[CpuidEntry],
    effective: &mut CpuidTable,
) -> Result<Merged, Stop> {
    let base = MergeBase::of(ctx.policy, ctx.cpu, ctx.kind, grant);
    merge(ctx, table, &base, effective, grant)
}

/// Makes `dst` a copy of `src` (as long as `dst` holds).
fn copy_table(dst: &mut CpuidTable, src: &[CpuidEntry]) {
    dst.clear();
    // Both hold MAX_CPUID_ENTRIES.
    let _ = dst.extend_from_slice(src);
}
