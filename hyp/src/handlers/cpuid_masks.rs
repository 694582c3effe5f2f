//! The merge of one CPUID entry as two masks per register: under the
//! policy's controls and the supported CPUID, `merge_supported` keeps or
//! takes each bit of the host's value on its own and never inverts one,
//! so register `r` of the effective entry is `keep[r] | (host[r] &
//! take[r])`. The masks of every supported-base entry in `setup` are
//! computed once per VM kind when the CPU model is installed
//! ([`MergeBase`]); `vcpu_after_set_cpuid` then merges a base entry with
//! a few AND/OR operations.

use heapless::Vec;
use pvgate_gate::{
    Decision, Phase, Policy, RegControl, RegSupport, Register, RuleId, VmKind, decide_cpuid,
    merge_supported,
};

use super::cpuid_base::supported_base;
use super::cpuid_keys::{Lookup, Support, key};
use crate::cpu::{CpuModel, CpuidEntry, MAX_CPUID_ENTRIES};

/// What a CPUID decision grants the merge of one entry (made from the
/// decision by `cpuid::grant`, where the verdict is read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Grant {
    /// The per-register controls the host gets.
    pub(crate) controls: [RegControl; 4],
    /// The deciding rule.
    pub(crate) rule: Option<RuleId>,
    /// Whether a replaced register is reported.
    pub(crate) report: bool,
}

/// How `vcpu_after_set_cpuid` merges one (leaf, subleaf) in `setup`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntryMasks {
    /// The (leaf, subleaf) key.
    pub(crate) key: u64,
    /// Per register, the bits that are 1 whatever the host proposes.
    pub(crate) keep: [u32; 4],
    /// Per register, the bits that take the host's value.
    pub(crate) take: [u32; 4],
    /// The deciding rule (named when a register is replaced).
    pub(crate) rule: Option<RuleId>,
    /// Whether a replaced register is reported (an `ignore` rule keeps
    /// the base silently).
    pub(crate) report: bool,
}

impl EntryMasks {
    /// The masks of (leaf, subleaf) for a hardware value, what the
    /// policy's decision grants and the supported CPUID: each register's
    /// bit is what [`merge_supported`] gives for a host bit of 0 (`keep`)
    /// and of 1 (`take`, where that differs).
    pub(crate) fn of(
        leaf: u32,
        subleaf: u32,
        hw: &CpuidEntry,
        grant: &Grant,
        support: [RegSupport; 4],
    ) -> EntryMasks {
        let controls = grant.controls;
        let mut keep = [0u32; 4];
        let mut take = [0u32; 4];
        for ((((reg, c), s), k), t) in Register::ALL
            .into_iter()
            .zip(controls)
            .zip(support)
            .zip(&mut keep)
            .zip(&mut take)
        {
            *k = merge_supported(hw.reg(reg), 0, c, s).effective;
            *t = merge_supported(hw.reg(reg), u32::MAX, c, s).effective & !*k;
        }
        EntryMasks {
            key: key(leaf, subleaf),
            keep,
            take,
            rule: grant.rule,
            report: grant.report,
        }
    }

    /// The effective registers for the host's.
    #[inline(always)]
    pub(crate) fn apply(&self, host: [u32; 4]) -> [u32; 4] {
        let [k0, k1, k2, k3] = self.keep;
        let [t0, t1, t2, t3] = self.take;
        let [h0, h1, h2, h3] = host;
        [
            k0 | (h0 & t0),
            k1 | (h1 & t1),
            k2 | (h2 & t2),
            k3 | (h3 & t3),
        ]
    }
}

/// The masks of every entry of a VM kind's supported base
/// ([`supported_base`]) in `setup`, in (leaf, subleaf) order.
pub(crate) struct MergeBase {
    entries: Vec<EntryMasks, MAX_CPUID_ENTRIES>,
}

impl MergeBase {
    /// The masks for a policy, CPU model and VM kind; `grant` reads the
    /// decisions.
    pub(crate) fn of<P: Policy + ?Sized>(
        policy: &P,
        cpu: &CpuModel,
        kind: VmKind,
        grant: impl Fn(&Decision<'_>) -> Grant,
    ) -> MergeBase {
        let base = supported_base(policy, cpu, kind);
        let mut hardware = Lookup::new(&cpu.base);
        let mut supported = Support::new(policy.cpuid_support(), kind);
        let mut entries = Vec::new();
        for e in &base {
            let (leaf, subleaf) = (e.leaf, e.subleaf);
            let d = decide_cpuid(policy, kind, Phase::Setup, leaf, subleaf);
            let hw = hardware.entry(leaf, subleaf);
            let masks = EntryMasks::of(
                leaf,
                subleaf,
                &hw,
                &grant(&d),
                supported.regs(leaf, subleaf),
            );
            // As many entries as the base, which fits the same bound.
            let _ = entries.push(masks);
        }
        MergeBase { entries }
    }

    /// The entries' masks, in (leaf, subleaf) order.
    pub(crate) fn entries(&self) -> &[EntryMasks] {
        &self.entries
    }
}
