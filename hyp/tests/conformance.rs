//! For every PV call × VM kind × phase, hyp's verdict is the policy's:
//! hyp over the image's const tables (`pvgate::POLICY`) and over the
//! interpreter, compared with the interpreter's reference semantics.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod common;

use common::*;
use pvgate_gate::{Phase, Policy, PvCall, Verdict, VmKind, decide_pv};
use pvgate_hyp::{Call, CallError, Effect};

fn check_every_call<P: Policy, R: Policy>(under_test: impl Fn() -> P, reference: &R) -> usize {
    let mut checked = 0;
    for kind in VmKind::ALL {
        for phase in Phase::ALL {
            for pv in PvCall::ALL {
                let h = hyp(under_test());
                let v = vcpu_in(&h, kind, phase);
                let want = decide_pv(reference, kind, phase, pv);
                let before = snapshot(&h, v);
                let o = match (pv, Call::example(pv)) {
                    (PvCall::VcpuAfterSetCpuid, _) => {
                        let mut table = h.supported_cpuid(kind);
                        if phase != Phase::Setup {
                            table = before.cpuid.clone();
                        }
                        h.vcpu_after_set_cpuid(v, &mut table)
                    }
                    (_, Some(call)) => h.call(v, call),
                    (PvCall::VmFinalize, _) => h.vm_finalize(v.vm(), None),
                    (_, None) => h.vm_destroy(v.vm()),
                };
                let ctx = format!("{} {} {}: {o:?}", kind.name(), phase.name(), pv.name());
                assert_eq!(o.call, pv, "{ctx}");
                match want.verdict {
                    Verdict::Deny => {
                        assert_eq!(o.effect, Effect::Deny, "{ctx}");
                        assert_eq!(o.status(), -1, "{ctx}");
                        assert!(matches!(o.error, Some(CallError::Denied { .. })), "{ctx}");
                        assert_eq!(o.rule, want.rule.map(|r| r.id), "{ctx}");
                        assert_eq!(o.out, [0; 4], "{ctx}");
                        assert_eq!(
                            snapshot(&h, v),
                            before,
                            "a denied call changed state: {ctx}"
                        );
                    }
                    Verdict::Ignore => {
                        assert_eq!(o.effect, Effect::Ignore, "{ctx}");
                        assert_eq!(o.status(), 0, "{ctx}");
                        assert_eq!(o.out, [0; 4], "{ctx}");
                        assert_eq!(
                            snapshot(&h, v),
                            before,
                            "an ignored call changed state: {ctx}"
                        );
                    }
                    Verdict::Allow => {
                        assert!(!matches!(o.error, Some(CallError::Denied { .. })), "{ctx}");
                        assert_ne!(o.effect, Effect::Ignore, "{ctx}");
                    }
                }
                checked += 1;
            }
        }
    }
    checked
}

#[test]
fn the_image_tables_decide_every_call_kind_and_phase_as_the_interpreter_does() {
    let reference = interpreter("policy/default.toml");
    assert_eq!(
        pvgate::POLICY.digest(),
        reference.digest(),
        "the image is built from policy/default.toml"
    );
    let n = check_every_call(|| pvgate::POLICY, &reference);
    assert_eq!(n, PvCall::ALL.len() * 2 * 3);
}

#[test]
fn hyp_over_the_interpreter_follows_the_default_and_the_strict_policy() {
    for path in ["policy/default.toml", "policy/strict.toml"] {
        let reference = interpreter(path);
        let n = check_every_call(|| interpreter(path), &reference);
        assert_eq!(n, 324, "{path}");
    }
}

#[test]
fn the_default_policy_reproduces_pkvm_ia_for_protected_vms() {
    // Spot checks against docs/design.md §5, through hyp.
    let h = hyp(pvgate::POLICY);
    let v = vcpu_in(&h, VmKind::Protected, Phase::Running);
    assert_eq!(h.call(v, Call::GetRflags).status(), -1);
    assert_eq!(h.call(v, Call::SetDr7(0)).status(), -1);
    // Allowed by the policy; the guest (RFLAGS.IF = 0 after reset)
    // cannot take it: -EBUSY, as pKVM-IA's `pkvm_inject_irq`.
    let o = h.call(v, Call::example(PvCall::InjectIrq).unwrap());
    assert_eq!(o.status(), -16, "{o:?}");
    assert!(!matches!(o.error, Some(CallError::Denied { .. })));
    assert!(h.call(v, Call::WriteTscOffset(5)).ok());
    let v = vcpu_in(&h, VmKind::Protected, Phase::Setup);
    assert_eq!(
        h.call(v, Call::VcpuReset).status(),
        -1,
        "vcpu_reset is denied for a pvm"
    );
}
