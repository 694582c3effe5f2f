//! The hypervisor's supported CPUID bounds a protected VM's CPUID: whatever
//! the host proposes, and even under a policy that hands the host bits the
//! hypervisor does not support, every effective bit is inside the supported
//! mask (`policy/registry/hypervisor-cpuid.toml`); a normal VM is not
//! masked.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod common;

use common::*;
use proptest::prelude::*;
use pvgate_codegen::Interpreter;
use pvgate_gate::{Phase, Policy, Register, VmKind, support_for};
use pvgate_hyp::{CpuidEntry, CpuidTable, Effect, supported_base};

/// The default policy plus rules that give the host every bit of leaf 0xA
/// (the PMU) and of CPUID.0x80000001:ECX (SVM, the AMD counters): what a
/// careless policy could write; the supported mask must still win.
fn careless() -> Interpreter {
    let text = std::fs::read_to_string(root().join("policy/default.toml")).unwrap()
        + r#"
[[cpuid]]
name = "careless-pmu"
leaf = 0xA
vm = ["protected"]
phase = ["setup"]
verdict = "allow"
eax = { host = 0xFFFFFFFF }
ebx = { host = 0xFFFFFFFF }
ecx = { host = 0xFFFFFFFF }
edx = { host = 0xFFFFFFFF }
reason = "a test policy that gives the host the PMU leaf"

[[cpuid]]
name = "careless-ext-features"
leaf = 0x80000001
vm = ["protected"]
phase = ["setup"]
verdict = "allow"
ecx = { host = 0xFFFFFFFF }
reason = "a test policy that gives the host SVM and the AMD counters"
"#;
    Interpreter::new(pvgate_codegen::compile_in_dir(&text, &root().join("policy")).unwrap())
}

/// Every bit of `table` is inside the supported mask of a protected VM.
fn assert_within_support<P: Policy>(policy: &P, table: &[CpuidEntry]) {
    for e in table {
        let s = support_for(policy.cpuid_support(), VmKind::Protected, e.leaf, e.subleaf);
        for (reg, s) in Register::ALL.into_iter().zip(s) {
            assert_eq!(
                e.reg(reg) & !s.allowed(),
                0,
                "CPUID.(EAX={:#x},ECX={}):{} has unsupported bits",
                e.leaf,
                e.subleaf,
                reg.name()
            );
        }
    }
}

fn leaf_0xa(table: &[CpuidEntry]) -> CpuidEntry {
    *table.iter().find(|e| e.leaf == 0xa).unwrap()
}

#[test]
fn the_pmu_is_hidden_from_the_supported_base_and_table_of_a_protected_vm() {
    let cpu = reference_cpu();
    assert_ne!(cpu.base_entry(0xa, 0).eax, 0, "the reference CPU has a PMU");
    let p = interpreter("policy/default.toml");
    let base = supported_base(&p, &cpu, VmKind::Protected);
    assert_eq!(leaf_0xa(&base), CpuidEntry::zero(0xa, 0));
    let h = hyp(&p);
    assert_eq!(
        leaf_0xa(&h.supported_cpuid(VmKind::Protected)),
        CpuidEntry::zero(0xa, 0)
    );
    // A normal VM's base is the hardware's.
    assert_eq!(
        leaf_0xa(&supported_base(&p, &cpu, VmKind::Normal)),
        cpu.base_entry(0xa, 0)
    );
    // The hypervisor's own leaves exist for a protected VM only; the
    // signature is "PKVMPKVMPKVM", as pKVM-IA's `kvm_cpuid` answers a
    // protected vCPU.
    assert!(
        base.iter()
            .any(|e| e.leaf == 0x4000_0000 && [e.ebx, e.ecx, e.edx] == [0x4d56_4b50; 3])
    );
    assert!(base.iter().any(|e| e.leaf == 0x4000_0001 && e.eax == 0));
    assert!(
        supported_base(&p, &cpu, VmKind::Normal)
            .iter()
            .all(|e| e.leaf != 0x4000_0000)
    );
}

#[test]
fn a_policy_giving_the_host_the_pmu_cannot_re_enable_it() {
    let p = careless();
    let h = hyp(&p);
    let v = vcpu_in(&h, VmKind::Protected, Phase::Setup);
    let mut t = h.supported_cpuid(VmKind::Protected);
    let hw = reference_cpu().base_entry(0xa, 0);
    for e in t.iter_mut() {
        if e.leaf == 0xa {
            *e = hw;
        }
        if e.leaf == 0x8000_0001 {
            e.ecx |= 1 << 2 | 1 << 23;
        }
    }
    let o = h.vcpu_after_set_cpuid(v, &mut t);
    assert_eq!(o.effect, Effect::Filter, "{o:?}");
    let eff = snapshot(&h, v).cpuid;
    assert_eq!(leaf_0xa(&eff), CpuidEntry::zero(0xa, 0));
    let ext = eff.iter().find(|e| e.leaf == 0x8000_0001).unwrap();
    assert_eq!(ext.ecx & (1 << 2 | 1 << 23), 0);
    assert_within_support(&p, &eff);
}

fn proposal() -> impl Strategy<Value = Vec<(bool, [u32; 4], u32)>> {
    // Per supported-base entry: whether the host sends it, its values; plus
    // a few extra leaves the host invents.
    proptest::collection::vec((any::<bool>(), any::<[u32; 4]>(), any::<u32>()), 80)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_effective_bit_of_a_protected_vm_is_supported(
        picks in proposal(),
        strict in any::<bool>(),
    ) {
        let policies = [careless(), interpreter(if strict { "policy/strict.toml" } else { "policy/default.toml" })];
        for p in &policies {
            let h = hyp(p);
            let v = vcpu_in(&h, VmKind::Protected, Phase::Setup);
            let mut t = CpuidTable::new();
            for (b, (send, regs, extra)) in supported_base(p, &reference_cpu(), VmKind::Protected)
                .iter()
                .zip(&picks)
            {
                if *send {
                    let mut e = *b;
                    for (reg, val) in Register::ALL.into_iter().zip(regs) {
                        e.set_reg(reg, *val);
                    }
                    let _ = t.push(e);
                }
                if extra % 7 == 0 {
                    // An invented leaf: PMU extension, hypervisor range, or any.
                    let leaf = [0x23, 0x4000_0002, *extra | 0x100][(*extra as usize / 7) % 3];
                    if !t.iter().any(|x| x.leaf == leaf && x.subleaf == 0) {
                        let _ = t.push(CpuidEntry { leaf, subleaf: 0, eax: *extra, ebx: !*extra, ecx: *extra, edx: 1 });
                    }
                }
            }
            let _ = h.vcpu_after_set_cpuid(v, &mut t);
            // The table handed back (accepted, filtered or rejected) and the
            // vCPU's table are both inside the supported mask.
            assert_within_support(p, &t);
            assert_within_support(p, &snapshot(&h, v).cpuid);
        }
    }
}

#[test]
fn other_subleaves_and_hypervisor_leaves_cannot_smuggle_the_pmu_or_pv_features() {
    // A hostile host aims at entries the supported base does not hold:
    // leaf 0xA subleaf 1, the paravirt leaf with features set, and an
    // invented hypervisor leaf; under a policy that hands it leaf 0xA.
    let p = careless();
    let h = hyp(&p);
    let v = vcpu_in(&h, VmKind::Protected, Phase::Setup);
    let mut t = h.supported_cpuid(VmKind::Protected);
    for (leaf, subleaf) in [(0xa, 1), (0x4000_0002, 0)] {
        t.push(CpuidEntry {
            leaf,
            subleaf,
            eax: 0x0730_0404,
            ebx: u32::MAX,
            ecx: u32::MAX,
            edx: 0x603,
        })
        .unwrap();
    }
    for e in t.iter_mut().filter(|e| e.leaf == 0x4000_0001) {
        e.eax = u32::MAX;
    }
    let o = h.vcpu_after_set_cpuid(v, &mut t);
    assert_eq!(o.effect, Effect::Filter, "{o:?}");
    let eff = snapshot(&h, v).cpuid;
    for (leaf, subleaf) in [(0xa, 0), (0xa, 1), (0x4000_0001, 0), (0x4000_0002, 0)] {
        let e = eff
            .iter()
            .find(|e| e.leaf == leaf && e.subleaf == subleaf)
            .unwrap();
        assert_eq!(*e, CpuidEntry::zero(leaf, subleaf), "{leaf:#x}.{subleaf}");
    }
    assert_within_support(&p, &eff);
}
