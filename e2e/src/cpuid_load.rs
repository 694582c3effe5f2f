//! Loading a CPUID table into KVM (`KVM_SET_CPUID2`), and what KVM needs
//! from the process first.
//!
//! KVM's `kvm_check_cpuid()` (Linux `arch/x86/kvm/cpuid.c`) enables, for
//! the dynamic XSAVE features leaf 0xD subleaf 0 lists in EAX/EDX (today
//! only AMX's XTILEDATA, bit 18: `XFEATURE_MASK_USER_DYNAMIC`), the larger
//! guest FPU state through `fpu_enable_guest_xfd_features()`, and that
//! fails with EPERM unless the process was granted the feature for guests
//! (`arch_prctl(ARCH_REQ_XCOMP_GUEST_PERM, 18)`) before its first vCPU was
//! created (the first vCPU locks the permissions; a later request gets
//! EBUSY). QEMU does the same (`kvm_request_xsave_components`). hyp's
//! protected table carries the model's leaf 0xD whole (the hypervisor's
//! supported CPUID passes it: the XSAVE layout must be the hardware's), so
//! on a CPU with AMX it lists XTILEDATA even where the host's proposal
//! (`KVM_GET_SUPPORTED_CPUID`, filtered by this very permission) does not.
//!
//! [`permit_dynamic_xfeatures`] asks for the permission a set of tables
//! needs; [`refused_entry`] names the entry KVM refuses when it still
//! refuses a table.

use kvm_bindings::{CpuId, kvm_cpuid_entry2};
use kvm_ioctls::Kvm;
use pvgate_hyp::CpuidEntry;

/// `arch_prctl` code: grant the process a dynamic XSAVE feature for guests.
const ARCH_REQ_XCOMP_GUEST_PERM: libc::c_ulong = 0x1025;

/// The dynamic (XFD-managed) XSAVE features: XTILEDATA (bit 18), Linux
/// `XFEATURE_MASK_USER_DYNAMIC`.
pub const DYNAMIC_XFEATURES: u64 = 1 << 18;

/// The dynamic XSAVE features a table's leaf 0xD subleaf 0 (EAX: XCR0
/// bits 31..0, EDX: bits 63..32) lists.
pub fn dynamic_xfeatures(table: &[CpuidEntry]) -> u64 {
    table.iter().find(|e| e.is(0xd, 0)).map_or(0, |e| {
        (u64::from(e.edx) << 32 | u64::from(e.eax)) & DYNAMIC_XFEATURES
    })
}

/// Asks the kernel to let this process's vCPUs use every dynamic XSAVE
/// feature `tables` list (a no-op when already granted). Must run before
/// the process creates its first vCPU; the error names the feature, its
/// CPUID entry and the errno (EBUSY: a vCPU already locked the
/// permissions without it).
pub fn permit_dynamic_xfeatures<'a>(
    tables: impl IntoIterator<Item = &'a [CpuidEntry]>,
) -> Result<(), String> {
    let wanted = tables
        .into_iter()
        .fold(0, |acc, t| acc | dynamic_xfeatures(t));
    for bit in (0..64).filter(|b| wanted & (1u64 << b) != 0) {
        // SAFETY: arch_prctl with an integer argument reads no user memory.
        let r = unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_GUEST_PERM,
                bit as libc::c_ulong,
            )
        };
        if r != 0 {
            let (leaf_reg, reg_bit) = if bit < 32 {
                ("EAX", bit)
            } else {
                ("EDX", bit - 32)
            };
            return Err(format!(
                "leaf 0xd subleaf 0 {leaf_reg} bit {reg_bit} (XSAVE feature {bit}, dynamic): \
                 arch_prctl(ARCH_REQ_XCOMP_GUEST_PERM, {bit}) failed: {} (EBUSY: a vCPU was \
                 created before the request); KVM_SET_CPUID2 refuses such a table with EPERM",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// The entry of `table` KVM refuses: the first whose removal alone makes
/// `KVM_SET_CPUID2` accept the table on a scratch VM (`None` when the
/// table is accepted there, or no single entry is to blame).
pub fn refused_entry(kvm: &Kvm, table: &[kvm_cpuid_entry2]) -> Option<kvm_cpuid_entry2> {
    let accepted = |t: &[kvm_cpuid_entry2]| -> Option<bool> {
        let vm = kvm.create_vm().ok()?;
        let vcpu = vm.create_vcpu(0).ok()?;
        let cpuid = CpuId::from_entries(t).ok()?;
        Some(vcpu.set_cpuid2(&cpuid).is_ok())
    };
    if accepted(table) != Some(false) {
        return None;
    }
    (0..table.len()).find_map(|i| {
        let mut without = table.to_vec();
        let e = without.remove(i);
        (accepted(&without) == Some(true)).then_some(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d0(eax: u32, edx: u32) -> CpuidEntry {
        CpuidEntry {
            eax,
            edx,
            ..CpuidEntry::zero(0xd, 0)
        }
    }

    #[test]
    fn only_leaf_0xd_0_and_only_xtiledata_count() {
        // x87|SSE|AVX|opmask|ZMM|PKRU, XTILECFG (17), XTILEDATA (18).
        assert_eq!(dynamic_xfeatures(&[d0(0x602e7, 0)]), 1 << 18);
        assert_eq!(dynamic_xfeatures(&[d0(0x202e7, 0)]), 0);
        assert_eq!(dynamic_xfeatures(&[d0(0x2e7, 0)]), 0);
        let other = CpuidEntry {
            eax: 0x602e7,
            ..CpuidEntry::zero(0xd, 1)
        };
        assert_eq!(dynamic_xfeatures(&[other]), 0);
        assert_eq!(dynamic_xfeatures(&[]), 0);
    }

    #[test]
    fn no_request_when_no_table_needs_one() {
        let tables: [&[CpuidEntry]; 2] = [&[d0(0x2e7, 0)], &[]];
        assert_eq!(permit_dynamic_xfeatures(tables), Ok(()));
    }
}
