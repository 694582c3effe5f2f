//! The supported CPUID base: the CPU model masked by the hypervisor's
//! supported CPUID per VM kind, plus a protected VM's own hypervisor
//! leaves ([`supported_base`]).

use pvgate_gate::{Policy, Register, VmKind};

use super::cpuid_keys::Support;
use crate::cpu::{CpuModel, CpuidEntry, CpuidTable, find_entry};

/// The leaves hypervisors use: the SDM (Vol. 2A, CPUID) says no CPU
/// returns information for an EAX input in 0x40000000-0x4FFFFFFF.
pub const HYPERVISOR_LEAVES: core::ops::RangeInclusive<u32> = 0x4000_0000..=0x4fff_ffff;

/// The supported base for a VM kind, before any policy: every leaf of the
/// CPU model masked by the hypervisor's supported CPUID (`(hardware &
/// pass) | set`; a protected VM's unlisted leaves read as zero, a normal
/// VM's are the hardware's), then, for a protected VM, the hypervisor's
/// own leaves the hardware lacks (each entry of the table for one leaf in
/// `HYPERVISOR_LEAVES`, with its `set` bits: the 0x40000000 signature,
/// the zeroed 0x40000001 paravirt features). Sorted by (leaf, subleaf).
pub fn supported_base<P: Policy + ?Sized>(policy: &P, cpu: &CpuModel, kind: VmKind) -> CpuidTable {
    let table = policy.cpuid_support();
    let mut supported = Support::new(table, kind);
    let mut out = CpuidTable::new();
    for hw in &cpu.base {
        let support = supported.regs(hw.leaf, hw.subleaf);
        let mut e = *hw;
        for (reg, s) in Register::ALL.into_iter().zip(support) {
            e.set_reg(reg, s.base(hw.reg(reg)));
        }
        // The model has at most MAX_CPUID_ENTRIES entries, so this fits.
        let _ = out.push(e);
    }
    if kind == VmKind::Protected {
        for own in table
            .iter()
            .filter(|s| s.leaf_first == s.leaf_last && HYPERVISOR_LEAVES.contains(&s.leaf_first))
        {
            let subleaf = own.subleaf.unwrap_or(0);
            if find_entry(&out, own.leaf_first, subleaf).is_some() {
                continue;
            }
            let mut e = CpuidEntry::zero(own.leaf_first, subleaf);
            for reg in Register::ALL {
                e.set_reg(reg, own.reg(reg).set);
            }
            // A table too large for the buffer loses its own leaves, never
            // a hardware leaf (fail closed: a missing leaf reads as zero).
            if out.push(e).is_err() {
                break;
            }
        }
    }
    sort_table(&mut out);
    out
}

/// Sorts a table by (leaf, subleaf) (a sorted one is only checked).
pub(super) fn sort_table(t: &mut CpuidTable) {
    if !t.is_sorted_by_key(|e| (e.leaf, e.subleaf)) {
        t.sort_unstable_by_key(|e| (e.leaf, e.subleaf));
    }
}
