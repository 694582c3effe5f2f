//! KVM refuses a CPUID table listing a dynamic XSAVE feature (AMX's
//! XTILEDATA in leaf 0xD subleaf 0) until the process holds the guest
//! permission for it (`e2e/src/cpuid_load.rs`): the refused entry is found
//! and named, and after [`cpuid_load::permit_dynamic_xfeatures`] the same
//! table is taken. Its own test binary: the permission is per process and
//! locked by the first vCPU, so nothing else may create one first.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use kvm_bindings::kvm_cpuid_entry2;
use kvm_ioctls::Kvm;
use pvgate_e2e::cpuid_load::{self, DYNAMIC_XFEATURES};
use pvgate_e2e::state::{from_kvm_cpuid, kvm_cpuid};
use pvgate_hyp::CpuidEntry;

/// `arch_prctl` code: the XSAVE features the kernel supports.
const ARCH_GET_XCOMP_SUPP: libc::c_ulong = 0x1021;

fn kernel_xfeatures() -> u64 {
    let mut mask: u64 = 0;
    // SAFETY: ARCH_GET_XCOMP_SUPP writes one u64 to the given address.
    let r = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_GET_XCOMP_SUPP,
            &mut mask as *mut u64,
        )
    };
    if r == 0 { mask } else { 0 }
}

/// The host's supported table with leaf 0xD.0 listing XTILECFG and
/// XTILEDATA as the CPU's own leaf 0xD does, or `None` (test skipped)
/// where there is no KVM or no AMX.
fn amx_table() -> Option<(Kvm, Vec<CpuidEntry>, Vec<kvm_cpuid_entry2>)> {
    let kvm = match Kvm::new() {
        Ok(k) => k,
        Err(e) => {
            assert!(
                std::env::var_os("PVGATE_REQUIRE_KVM").is_none(),
                "PVGATE_REQUIRE_KVM is set but /dev/kvm cannot be opened: {e}"
            );
            eprintln!("SKIPPED e2e: cannot open /dev/kvm: {e}");
            return None;
        }
    };
    if kernel_xfeatures() & DYNAMIC_XFEATURES == 0 {
        eprintln!("SKIPPED e2e: this CPU/kernel has no dynamic XSAVE feature (AMX)");
        return None;
    }
    let supported = kvm
        .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
        .unwrap()
        .as_slice()
        .to_vec();
    let mut table = from_kvm_cpuid(&supported);
    let d0 = table.iter_mut().find(|e| e.is(0xd, 0)).expect("leaf 0xD.0");
    d0.eax |= 3 << 17;
    Some((kvm, table, supported))
}

#[test]
fn a_table_with_xtiledata_is_refused_at_leaf_0xd_until_permitted() {
    let Some((kvm, table, supported)) = amx_table() else {
        return;
    };
    let entries = kvm_cpuid(&table, &supported);
    let refused = cpuid_load::refused_entry(&kvm, &entries).expect("KVM refuses the table");
    assert_eq!((refused.function, refused.index), (0xd, 0), "{refused:x?}");
    // Without the dynamic bit the same table is taken.
    let mut without = table.clone();
    without.iter_mut().find(|e| e.is(0xd, 0)).unwrap().eax &= !(1 << 18);
    assert_eq!(
        cpuid_load::refused_entry(&kvm, &kvm_cpuid(&without, &supported)),
        None
    );
    // The vCPUs above locked the permissions: asking now fails, naming
    // the entry and EBUSY.
    let late = cpuid_load::permit_dynamic_xfeatures([table.as_slice()]).unwrap_err();
    assert!(
        late.contains("leaf 0xd subleaf 0 EAX bit 18") && late.contains("os error 16"),
        "{late}"
    );
    // A fresh process that asks first gets the table taken.
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "permitted_first", "--nocapture"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success() && out.contains("1 passed"),
        "{out}{}",
        String::from_utf8_lossy(&child.stderr)
    );
}

/// Run by the test above in a process of its own (no vCPU created yet).
#[test]
#[ignore = "run in a fresh process by a_table_with_xtiledata_is_refused_at_leaf_0xd_until_permitted"]
fn permitted_first() {
    let Some((kvm, table, supported)) = amx_table() else {
        return;
    };
    cpuid_load::permit_dynamic_xfeatures([table.as_slice()]).unwrap();
    assert_eq!(
        cpuid_load::refused_entry(&kvm, &kvm_cpuid(&table, &supported)),
        None
    );
}
