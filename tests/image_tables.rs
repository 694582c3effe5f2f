//! The image (tables compiled in by build.rs) ≡ the interpreter over the
//! same policy file, and the digest it embeds is the policy's digest.

// Test helpers may panic: a failed step is a failed test.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use pvgate::POLICY;
use pvgate_codegen::{Interpreter, Resources};
use pvgate_gate::{Access, Phase, Policy, PvCall, VmKind, decide_msr, decide_pv};

fn interpreter() -> Interpreter {
    let path = env!("PVGATE_POLICY_FILE");
    match pvgate_codegen::compile_file(path) {
        Ok(c) => Interpreter::new(c.ir),
        Err(e) => panic!("{}", e.render()),
    }
}

#[test]
fn the_image_embeds_the_digest_of_its_policy() {
    let interp = interpreter();
    assert_eq!(POLICY.digest(), interp.digest());
    assert_eq!(
        pvgate::POLICY_DIGEST_HEX,
        pvgate_codegen::digest::hex(&interp.digest())
    );
    assert_eq!(POLICY.name(), interp.name());
}

#[test]
fn every_lookup_agrees_with_the_interpreter() {
    let interp = interpreter();
    let mut probes = vec![0u32, u32::MAX];
    for rule in &interp.ir().rules {
        if let Resources::Msr { ranges, .. } = &rule.resources {
            for &(f, l) in ranges {
                probes.extend([f.wrapping_sub(1), f, l, l.wrapping_add(1)]);
            }
        }
    }
    // Every index of KVM's two MSR-bitmap regions: the image's verdict
    // maps are there.
    probes.extend((0..0x2000).chain(0xc000_0000..0xc000_2000));
    for kind in VmKind::ALL {
        for phase in Phase::ALL {
            for call in PvCall::ALL {
                assert_eq!(
                    decide_pv(&POLICY, kind, phase, call),
                    decide_pv(&interp, kind, phase, call)
                );
            }
            for &index in &probes {
                for access in Access::ALL {
                    let want = decide_msr(&interp, kind, phase, access, index);
                    assert_eq!(
                        decide_msr(&POLICY, kind, phase, access, index),
                        want,
                        "{kind:?} {phase:?} {access:?} {index:#x}"
                    );
                    assert_eq!(
                        POLICY.msr_verdict(kind, phase, access, index),
                        want.verdict,
                        "verdict of {kind:?} {phase:?} {access:?} {index:#x}"
                    );
                }
            }
            for leaf in [
                0,
                1,
                2,
                4,
                7,
                0xb,
                0x1f,
                0x4000_0001,
                0x8000_0002,
                0x8000_0006,
                0x8000_0007,
            ] {
                for subleaf in 0..3 {
                    assert_eq!(
                        POLICY.cpuid_rule(kind, phase, leaf, subleaf),
                        interp.cpuid_rule(kind, phase, leaf, subleaf)
                    );
                }
            }
        }
    }
}

/// docs/design.md §5 as the default policy must reproduce it, asserted on the
/// image itself (only when the image was built from the default policy).
#[test]
fn the_default_image_reproduces_pkvm_ia() {
    if !env!("PVGATE_POLICY_FILE").ends_with("policy/default.toml") {
        eprintln!(
            "skipped: the image was built from {}, not the default policy",
            env!("PVGATE_POLICY_FILE")
        );
        return;
    }
    use pvgate_gate::{PvClass, Verdict};
    for call in PvCall::ALL {
        for phase in Phase::ALL {
            let got = decide_pv(&POLICY, VmKind::Protected, phase, call).verdict;
            let want = match (call.class(), phase) {
                (PvClass::Lifecycle, Phase::Setup) => Verdict::Allow,
                // `vm_finalize` comes before any run; `vm_destroy` always.
                (PvClass::Lifecycle, _) if call == PvCall::VmFinalize => Verdict::Deny,
                (PvClass::Lifecycle, _) => Verdict::Allow,
                (_, Phase::Teardown) => Verdict::Deny,
                (PvClass::Always, _) => Verdict::Allow,
                (PvClass::Setup, Phase::Setup) => Verdict::Allow,
                _ => Verdict::Deny,
            };
            assert_eq!(got, want, "protected {phase:?} {}", call.name());
            assert_eq!(
                decide_pv(&POLICY, VmKind::Normal, phase, call).verdict,
                Verdict::Allow
            );
        }
    }
    let w = |index| {
        decide_msr(
            &POLICY,
            VmKind::Protected,
            Phase::Setup,
            Access::Write,
            index,
        )
        .verdict
    };
    assert_eq!(w(0x200), Verdict::Allow);
    assert_eq!(w(0x26f), Verdict::Allow);
    assert_eq!(w(0x270), Verdict::Deny);
    assert_eq!(w(0x277), Verdict::Deny, "IA32_PAT is not an MTRR");
    assert_eq!(w(0x2ff), Verdict::Allow);
    assert_eq!(w(0x1a0), Verdict::Allow);
    for syscall in [
        0x174,
        0x175,
        0x176,
        0xc000_0081,
        0xc000_0082,
        0xc000_0083,
        0xc000_0084,
        0xc000_0102,
    ] {
        assert_eq!(w(syscall), Verdict::Ignore, "{syscall:#x}");
    }
    assert_eq!(w(0x10b), Verdict::Deny, "IA32_FLUSH_CMD");
    assert_eq!(
        w(0xc000_0080),
        Verdict::Deny,
        "IA32_EFER goes through set_efer, not set_msr"
    );
    for index in [0x1a0, 0x200, 0x2ff, 0xc000_0082] {
        for phase in [Phase::Running, Phase::Teardown] {
            for access in Access::ALL {
                let d = decide_msr(&POLICY, VmKind::Protected, phase, access, index);
                assert_eq!(d.verdict, Verdict::Deny, "{phase:?} {access:?} {index:#x}");
            }
        }
    }
    let misc = decide_msr(
        &POLICY,
        VmKind::Protected,
        Phase::Setup,
        Access::Write,
        0x1a0,
    )
    .rule
    .unwrap();
    let c = misc.msr_constraint().unwrap();
    assert_eq!(
        (c.write_mask, c.force_on),
        (1 | 1 << 11 | 1 << 12, 1 << 11 | 1 << 12)
    );
    assert_eq!(pvgate_gate::check_msr_write(c, 1), Ok(0x1801));
    assert!(pvgate_gate::check_msr_write(c, 1 << 3).is_err());
}

#[test]
fn the_image_carries_the_hypervisors_supported_cpuid() {
    let interp = interpreter();
    assert_eq!(POLICY.cpuid_support(), interp.cpuid_support());
    assert!(
        POLICY
            .cpuid_support()
            .iter()
            .any(|s| s.covers(0xa, 0) && s.regs == [pvgate_gate::RegSupport::NONE; 4]),
        "the image hides the PMU from protected VMs"
    );
}
