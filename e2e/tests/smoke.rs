#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]
use kvm_ioctls::Kvm;
use pvgate_e2e::*;
use std::time::Duration;

#[test]
fn smoke() {
    let kvm = Kvm::new().unwrap();
    let supported = kvm
        .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
        .unwrap()
        .as_slice()
        .to_vec();
    let bb = std::fs::read("/bin/busybox").unwrap();
    let ko =
        std::fs::read("/lib/modules/6.1.0-57-cloud-amd64/kernel/arch/x86/kernel/cpuid.ko").ok();
    let initrd = initramfs::build(&bb, ko.as_deref());
    let n = std::env::var("VCPUS")
        .map(|v| v.parse().unwrap())
        .unwrap_or(1u8);
    let (mem, entry) = boot::load("/tmp/vmlinux", &initrd, n).unwrap();
    let mut setups = proposal::setups(&state::from_kvm_cpuid(&supported), u32::from(n), entry);
    for s in &mut setups {
        for e in &mut s.cpuid {
            if e.leaf == 1 {
                e.ecx &= !((1 << 13) | (1 << 26));
            }
        }
    }
    let t = std::env::var("T").map(|v| v.parse().unwrap()).unwrap_or(10);
    let b = vmm::run(&kvm, &mem, &setups, &supported, Duration::from_secs(t)).unwrap();
    println!("{}", b.console);
    println!("stop {:?} after {:?} {:?}", b.stop, b.elapsed, b.last);
}
