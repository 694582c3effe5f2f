//! The host's proposal: what a crosvm-like VMM asks for. CPUID is KVM's
//! supported table (`KVM_GET_SUPPORTED_CPUID`) with crosvm's edits (the
//! hypervisor, x2APIC and TSC-deadline bits, the APIC ID and CLFLUSH size
//! in leaf 1 EBX, one thread per core in leaf 0xB) plus edits the default
//! policy forbids on a protected VM: VMX on and an architectural PMU in
//! leaf 0xA. MSRs are crosvm's boot MSRs (`tests/data/traces/crosvm-boot-pvm.toml`).

use pvgate_hyp::CpuidEntry;

use crate::state::{VcpuSetup, boot_registers};

/// CPUID.1:ECX.VMX.
pub const VMX: u32 = 1 << 5;
/// CPUID.1:ECX.X2APIC.
pub const X2APIC: u32 = 1 << 21;
/// CPUID.1:ECX.TSC_DEADLINE.
pub const TSC_DEADLINE: u32 = 1 << 24;
/// CPUID.1:ECX.HYPERVISOR.
pub const HYPERVISOR: u32 = 1 << 31;
/// The architectural PMU the host proposes in leaf 0xA: version 2, four
/// 48-bit general-purpose counters, seven events (EAX), all events
/// available (EBX 0), three 48-bit fixed counters (EDX).
pub const PMU_LEAF_A: [u32; 4] = [0x0730_0402, 0, 0, 0x0000_0603];

/// crosvm's boot MSRs: IA32_MISC_ENABLE.FAST_STRING, two variable MTRRs
/// making the PCI hole uncacheable, MTRRs on with write-back default.
pub const BOOT_MSRS: [(u32, u64); 6] = [
    (0x1a0, 0x1),
    (0x200, 0xd000_0000),
    (0x201, 0x3fff_f000_0800),
    (0x202, 0xe000_0000),
    (0x203, 0x3fff_e000_0800),
    (0x2ff, 0x806),
];

fn set(table: &mut Vec<CpuidEntry>, leaf: u32, subleaf: u32, f: impl Fn(&mut CpuidEntry)) {
    match table.iter_mut().find(|e| e.is(leaf, subleaf)) {
        Some(e) => f(e),
        None => {
            let mut e = CpuidEntry::zero(leaf, subleaf);
            f(&mut e);
            table.push(e);
            table.sort_by_key(|e| (e.leaf, e.subleaf));
        }
    }
}

/// The host's CPUID proposal for vCPU `id` of `vcpus`, from KVM's
/// supported table.
pub fn cpuid(supported: &[CpuidEntry], id: u32, vcpus: u32) -> Vec<CpuidEntry> {
    let mut t = supported.to_vec();
    set(&mut t, 1, 0, |e| {
        e.ecx |= HYPERVISOR | X2APIC | TSC_DEADLINE | VMX;
        e.ecx &= !crate::model::HIDDEN_LEAF1_ECX;
        // APIC ID, logical processors per package, CLFLUSH 8 x 8 bytes.
        e.ebx = (id << 24) | (vcpus << 16) | 0x800;
    });
    set(&mut t, 0xb, 0, |e| {
        (e.eax, e.ebx, e.ecx, e.edx) = (0, 1, 0x100, id);
    });
    set(&mut t, 0xb, 1, |e| {
        (e.eax, e.ebx, e.ecx, e.edx) = (0, 1, 0x201, id);
    });
    set(&mut t, 0xa, 0, |e| {
        [e.eax, e.ebx, e.ecx, e.edx] = PMU_LEAF_A;
    });
    // Leaf 0xA exists only if leaf 0 says so.
    set(&mut t, 0, 0, |e| e.eax = e.eax.max(0xa));
    t
}

/// Every vCPU's setup as the host proposes it; the boot vCPU (0) also
/// gets the boot protocol's registers.
pub fn setups(supported: &[CpuidEntry], vcpus: u32, entry: u64) -> Vec<VcpuSetup> {
    (0..vcpus)
        .map(|id| VcpuSetup {
            cpuid: cpuid(supported, id, vcpus),
            msrs: BOOT_MSRS.to_vec(),
            regs: (id == 0).then(|| boot_registers(entry)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proposal_has_the_forbidden_edits_and_the_apic_id() {
        let t = cpuid(&[CpuidEntry::zero(0, 0), CpuidEntry::zero(1, 0)], 1, 2);
        let l1 = t.iter().find(|e| e.is(1, 0)).unwrap();
        assert_eq!(
            l1.ecx & (VMX | X2APIC | HYPERVISOR),
            VMX | X2APIC | HYPERVISOR
        );
        assert_eq!(l1.ebx >> 24, 1);
        let a = t.iter().find(|e| e.is(0xa, 0)).unwrap();
        assert_eq!(a.eax & 0xff, 2, "PMU version 2");
        assert_eq!(t.iter().find(|e| e.is(0, 0)).unwrap().eax, 0xa);
        assert!(
            t.windows(2)
                .all(|w| (w[0].leaf, w[0].subleaf) < (w[1].leaf, w[1].subleaf))
        );
    }
}
