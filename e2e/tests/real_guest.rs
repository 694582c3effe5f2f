//! A real Linux guest boots through the gate (docs/real-guest.md).
//!
//! Three boots of the distribution's kernel with a busybox initramfs:
//!
//! 1. control: the host's proposal (VMX on, an architectural PMU in leaf
//!    0xA) loaded straight into KVM, no hyp: the forbidden bits reach the
//!    guest, so the comparison below can fail;
//! 2. protected, 1 vCPU: every piece of vCPU state through hyp under the
//!    image's policy (`pvgate::POLICY`, `policy/default.toml`), only what
//!    hyp holds loaded into KVM; the guest's flags must be exactly what
//!    hyp's effective CPUID says, for every bit of `flags::CHECKED`;
//! 3. normal, 2 vCPUs, through hyp: the guest sees the host's proposal as
//!    given, on both CPUs alike.
//!
//! Prints `SKIPPED e2e: …` and passes where /dev/kvm, the kernel or
//! busybox are missing; `PVGATE_REQUIRE_KVM=1` makes that a failure.
//! `PVGATE_E2E_BOOT_SECS` bounds each boot (default 600).
//!
//! On a software KVM (`kvm_pvm`, this project's machines) every guest
//! instruction is emulated (about 0.6 million a second) and the emulator
//! stops a stock kernel at its `int3` self-test in `alternative_instructions()`,
//! so no guest reaches `/init`. There the test boots the protected guest
//! through hyp until the kernel's early console shows its command line,
//! asserts that, and prints `SKIPPED e2e: flag comparison …`;
//! `PVGATE_REQUIRE_REAL_GUEST=1` makes that a failure.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kvm_ioctls::Kvm;
use pvgate_e2e::report::Report;
use pvgate_e2e::state::{VcpuSetup, from_kvm_cpuid};
use pvgate_e2e::{boot, cpuid_load, flags, gate, initramfs, kernel, model, proposal, vmm};
use pvgate_gate::VmKind;
use pvgate_hyp::{CpuidEntry, Hyp, HypConfig};

fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn skip(reason: &str) {
    assert!(
        std::env::var_os("PVGATE_REQUIRE_KVM").is_none(),
        "PVGATE_REQUIRE_KVM is set but the real-guest test cannot run: {reason}"
    );
    say(&format!("SKIPPED e2e: {reason}"));
}

/// The newest `/boot/vmlinuz-*` (or `PVGATE_E2E_KERNEL`), and its
/// `cpuid.ko`.
fn find_kernel() -> Option<(PathBuf, Option<PathBuf>)> {
    let kernel = match std::env::var_os("PVGATE_E2E_KERNEL") {
        Some(k) => PathBuf::from(k),
        None => {
            let mut all: Vec<PathBuf> = std::fs::read_dir("/boot")
                .ok()?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("vmlinuz-"))
                })
                .collect();
            all.sort();
            all.pop()?
        }
    };
    let version = kernel
        .file_name()?
        .to_str()?
        .trim_start_matches("vmlinuz-")
        .to_string();
    let ko = PathBuf::from(format!(
        "/lib/modules/{version}/kernel/arch/x86/kernel/cpuid.ko"
    ));
    Some((kernel, ko.exists().then_some(ko)))
}

struct Guest {
    report: Report,
    console: String,
    elapsed: Duration,
}

fn boot_guest(
    kvm: &Kvm,
    vmlinux: &Path,
    initrd: &[u8],
    setups: &[VcpuSetup],
    supported: &[kvm_bindings::kvm_cpuid_entry2],
    name: &str,
) -> Guest {
    let b = boot_until(kvm, vmlinux, initrd, setups, supported, name, None);
    let report = Report::parse(&b.console);
    assert!(
        matches!(b.stop, vmm::Stop::Reset | vmm::Stop::Shutdown) && report.ended,
        "{name}: the guest did not finish its report (stop {:?}, vCPUs {:?}); console:\n{}",
        b.stop,
        b.last,
        b.console
    );
    Guest {
        report,
        console: b.console,
        elapsed: b.elapsed,
    }
}

fn boot_until(
    kvm: &Kvm,
    vmlinux: &Path,
    initrd: &[u8],
    setups: &[VcpuSetup],
    supported: &[kvm_bindings::kvm_cpuid_entry2],
    name: &str,
    until: Option<&str>,
) -> vmm::Boot {
    let limit = std::env::var("PVGATE_E2E_BOOT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let (mem, _) = boot::load(vmlinux.to_str().unwrap(), initrd, setups.len() as u8).unwrap();
    let b = vmm::run(
        kvm,
        &mem,
        setups,
        supported,
        Duration::from_secs(limit),
        until,
    )
    .unwrap_or_else(|e| panic!("{name}: the VMM could not start: {e:?}"));
    say(&format!(
        "e2e: {name}: stopped {:?} after {:?}",
        b.stop, b.elapsed
    ));
    b
}

fn entry(t: &[CpuidEntry], leaf: u32, subleaf: u32) -> CpuidEntry {
    *t.iter().find(|e| e.is(leaf, subleaf)).unwrap()
}

/// The checked flags of one guest CPU against `expected`, exactly.
fn compare(name: &str, g: &Guest, cpu: u32, expected: &BTreeSet<&'static str>) {
    let seen = flags::seen(&g.report.flags[&cpu]);
    let missing: Vec<_> = expected.difference(&seen).collect();
    let extra: Vec<_> = seen.difference(expected).collect();
    say(&format!(
        "e2e: {name}: cpu{cpu} checked flags {seen:?} (missing {missing:?}, extra {extra:?})"
    ));
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{name}: cpu{cpu}'s flags differ from the expected set: missing {missing:?}, extra {extra:?}\n{}",
        g.console
    );
}

#[test]
fn a_real_guest_sees_exactly_what_the_policy_allows() {
    let started = Instant::now();
    let kvm = match Kvm::new() {
        Ok(k) => k,
        Err(e) => return skip(&format!("cannot open /dev/kvm: {e}")),
    };
    let Some((bzimage, cpuid_ko)) = find_kernel() else {
        return skip("no /boot/vmlinuz-* (apt-get install linux-image-cloud-amd64)");
    };
    let Ok(busybox) = std::fs::read("/bin/busybox") else {
        return skip("no /bin/busybox (apt-get install busybox-static)");
    };
    let vmlinux_elf = kernel::extract_vmlinux(&std::fs::read(&bzimage).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e:?}", bzimage.display()));
    let vmlinux = std::env::temp_dir().join(format!("pvgate-e2e-vmlinux-{}", std::process::id()));
    std::fs::write(&vmlinux, &vmlinux_elf).unwrap();
    let ko = cpuid_ko.map(|p| std::fs::read(p).unwrap());
    let initrd = initramfs::build(&busybox, ko.as_deref());
    let (_, pvh_entry) = boot::load(vmlinux.to_str().unwrap(), &initrd, 1).unwrap();

    let supported = kvm
        .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
        .unwrap()
        .as_slice()
        .to_vec();
    let host = from_kvm_cpuid(&supported);
    if Path::new("/sys/module/kvm_pvm").exists() && std::env::var_os("PVGATE_E2E_FULL").is_none() {
        return software_kvm(&kvm, &vmlinux, &initrd, &host, &supported, pvh_entry);
    }

    // Every table through hyp first: the process must hold the guest
    // permission for the dynamic XSAVE features any of them lists before
    // its first vCPU (the control run's) is created.
    let control_setups = proposal::setups(&host, 1, pvh_entry);
    let cpu = model::cpu_model().expect("the CPU model");
    let hyp: Box<gate::GateHyp> = Box::new(Hyp::with_cpu(pvgate::POLICY, cpu, HypConfig::DEFAULT));
    let gated = gate::through_hyp(&hyp, VmKind::Protected, &control_setups).expect("through hyp");
    say(&format!(
        "e2e: protected: hyp replaced {:?} CPUID registers; refused set_msr {:x?}",
        gated.replaced, gated.refused_msrs
    ));
    let effective = gated.vcpus[0].cpuid.clone();
    let normal_setups = proposal::setups(&host, 2, pvh_entry);
    let hyp: Box<gate::GateHyp> = Box::new(Hyp::with_cpu(
        pvgate::POLICY,
        model::cpu_model().unwrap(),
        HypConfig::DEFAULT,
    ));
    let normal_gated =
        gate::through_hyp(&hyp, VmKind::Normal, &normal_setups).expect("through hyp");
    cpuid_load::permit_dynamic_xfeatures(
        [&control_setups, &gated.vcpus, &normal_gated.vcpus]
            .into_iter()
            .flatten()
            .map(|s| s.cpuid.as_slice()),
    )
    .unwrap();

    // 1. Control: the host's proposal straight into KVM.
    let control = boot_guest(
        &kvm,
        &vmlinux,
        &initrd,
        &control_setups,
        &supported,
        "control",
    );

    // 2. Protected, through hyp.
    let protected = boot_guest(
        &kvm,
        &vmlinux,
        &initrd,
        &gated.vcpus,
        &supported,
        "protected",
    );

    // 3. Normal, 2 vCPUs, through hyp.
    for (i, v) in normal_gated.vcpus.iter().enumerate() {
        for e in &normal_setups[i].cpuid {
            assert!(
                v.cpuid.contains(e),
                "a normal VM's CPUID is the host's as given: {e:x?}"
            );
        }
    }
    let normal = boot_guest(
        &kvm,
        &vmlinux,
        &initrd,
        &normal_gated.vcpus,
        &supported,
        "normal",
    );
    let _ = std::fs::remove_file(&vmlinux);

    // The policy's claims on hyp's table.
    let e1 = entry(&effective, 1, 0);
    assert_eq!(e1.ecx & proposal::VMX, 0, "VMX forced off");
    assert_ne!(e1.ecx & proposal::X2APIC, 0, "X2APIC forced on");
    assert_ne!(e1.ecx & proposal::HYPERVISOR, 0, "HYPERVISOR kept");

    // Control: the forbidden proposals reach an unprotected guest.
    let c = &control.report;
    assert!(
        c.flags[&0].contains("vmx"),
        "control: the host's VMX should reach the guest"
    );
    // Protected: exactly the policy's CPU.
    let p = &protected.report;
    assert_eq!(p.processors, Some(1));
    compare("protected", &protected, 0, &flags::expected(&effective));
    assert!(!p.flags[&0].contains("vmx") && p.flags[&0].contains("x2apic"));
    assert!(p.flags[&0].contains("hypervisor"));
    // Leaf 0xA through /dev/cpu/0/cpuid: no architectural PMU.
    if let (Some(pa), Some(ca)) = (p.cpuid.get(&(0, 0xa, 0)), c.cpuid.get(&(0, 0xa, 0))) {
        assert_eq!(
            pa[0] & 0xff,
            0,
            "protected: no architectural PMU (leaf 0xA EAX)"
        );
        assert_eq!(
            ca[0],
            proposal::PMU_LEAF_A[0],
            "control: the host's PMU reaches the guest"
        );
    } else {
        panic!("no CPUID leaf 0xA in the reports (cpuid.ko missing?)");
    }
    // Normal: the host's proposal as given, on both CPUs alike.
    let n = &normal.report;
    assert_eq!(n.processors, Some(2), "normal: two CPUs");
    assert_eq!(n.online.as_deref(), Some("0-1"));
    assert_eq!(
        n.flags[&0], n.flags[&1],
        "normal: both CPUs have the same flags"
    );
    for cpu in [0, 1] {
        compare(
            "normal",
            &normal,
            cpu,
            &flags::expected(&normal_setups[0].cpuid),
        );
    }
    say(&format!(
        "e2e: boots {:?} {:?} {:?}; total {:?}",
        control.elapsed,
        protected.elapsed,
        normal.elapsed,
        started.elapsed()
    ));
}

/// What a software KVM allows: the protected boot through hyp up to the
/// kernel's early console (see the file's doc comment).
fn software_kvm(
    kvm: &Kvm,
    vmlinux: &Path,
    initrd: &[u8],
    host: &[CpuidEntry],
    supported: &[kvm_bindings::kvm_cpuid_entry2],
    pvh_entry: u64,
) {
    let setups = proposal::setups(host, 1, pvh_entry);
    let hyp: Box<gate::GateHyp> = Box::new(Hyp::with_cpu(
        pvgate::POLICY,
        model::cpu_model().unwrap(),
        HypConfig::DEFAULT,
    ));
    let gated = gate::through_hyp(&hyp, VmKind::Protected, &setups).expect("through hyp");
    let e1 = entry(&gated.vcpus[0].cpuid, 1, 0);
    assert_eq!(e1.ecx & proposal::VMX, 0, "VMX forced off");
    assert_ne!(e1.ecx & proposal::X2APIC, 0, "X2APIC forced on");
    let cmdline = format!("Command line: {}", boot::CMDLINE);
    let b = boot_until(
        kvm,
        vmlinux,
        initrd,
        &gated.vcpus,
        supported,
        "protected (software KVM)",
        Some(&cmdline),
    );
    let _ = std::fs::remove_file(vmlinux);
    assert_eq!(
        b.stop,
        vmm::Stop::Seen,
        "the kernel did not print its command line from hyp's state; vCPUs {:?}; console:\n{}",
        b.last,
        b.console
    );
    assert!(b.console.contains("Linux version"), "{}", b.console);
    let reason = "flag comparison: this KVM (kvm_pvm) emulates every guest instruction and stops \
        a stock kernel at its int3 self-test; the guest reached its early console through hyp only";
    assert!(
        std::env::var_os("PVGATE_REQUIRE_REAL_GUEST").is_none(),
        "PVGATE_REQUIRE_REAL_GUEST is set: {reason}"
    );
    say(&format!("SKIPPED e2e: {reason}"));
}
