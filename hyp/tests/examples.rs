//! The example policy (`policy/examples/review-thread.toml`: the review
//! thread's `inject_irq_if_allowed`, pKVM-IA's `deliver_sipi_vector` for
//! normal VMs only) and its traces, replayed through hyp: every
//! expectation holds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use pvgate_gate::{Phase, PvCall, Verdict, VmKind, decide_pv};

#[test]
fn the_example_policy_keeps_interrupt_allowed_and_denies_sipi_to_protected_vms_only() {
    let p = interpreter("policy/examples/review-thread.toml");
    let d = |kind, call| decide_pv(&p, kind, Phase::Running, call).verdict;
    // KVM needs `interrupt_allowed` (kvm_vcpu_has_events): the example adds
    // `inject_irq_if_allowed` beside it, not instead of it.
    assert_eq!(
        d(VmKind::Protected, PvCall::InterruptAllowed),
        Verdict::Allow
    );
    assert_eq!(
        d(VmKind::Protected, PvCall::InjectIrqIfAllowed),
        Verdict::Allow
    );
    assert_eq!(
        d(VmKind::Protected, PvCall::DeliverSipiVector),
        Verdict::Deny
    );
    assert_eq!(d(VmKind::Normal, PvCall::DeliverSipiVector), Verdict::Allow);
    assert_eq!(d(VmKind::Normal, PvCall::InterruptAllowed), Verdict::Allow);
    // The shipped default denies the new calls to protected VMs.
    let default = interpreter("policy/default.toml");
    assert_eq!(
        decide_pv(
            &default,
            VmKind::Protected,
            Phase::Running,
            PvCall::InjectIrqIfAllowed
        )
        .verdict,
        Verdict::Deny
    );
}

#[test]
fn the_example_traces_meet_every_expectation() {
    let p = interpreter("policy/examples/review-thread.toml");
    for name in ["irq-if-allowed-pvm.trace.toml", "sipi-npvm.trace.toml"] {
        let t = pvgate_trace::load(root().join("policy/examples").join(name)).unwrap();
        let r = pvgate_trace::replay(&p, &t).unwrap();
        let failures: Vec<String> = r.failures().map(|s| s.to_string()).collect();
        assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
        assert!(
            r.steps.iter().all(|s| s.met.is_some()),
            "{name}: every call has an expectation"
        );
        if name.starts_with("irq") {
            let injected: Vec<u64> = r
                .steps
                .iter()
                .filter(|s| s.pv == "inject_irq_if_allowed" && s.status == 0)
                .map(|s| s.outcome.map_or(0, |o| o.out[0]))
                .collect();
            assert_eq!(injected, [1], "first injected");
            let busy = r
                .steps
                .iter()
                .filter(|s| s.pv == "inject_irq_if_allowed" && s.status == -16)
                .count();
            assert_eq!(busy, 1, "-EBUSY while the first needs reinjection");
            let refused = r
                .steps
                .iter()
                .find(|s| s.pv == "deliver_sipi_vector")
                .unwrap();
            assert_eq!(refused.rule.as_ref().unwrap().name, "pvm-no-host-sipi");
            // interrupt_allowed answers 1 before the first injection and
            // again once the entry delivered it (while it is queued, the
            // combined call is -EBUSY, as interrupt_allowed for injection).
            let asked: Vec<u64> = r
                .steps
                .iter()
                .filter(|s| s.pv == "interrupt_allowed")
                .map(|s| s.outcome.map_or(u64::MAX, |o| o.out[0]))
                .collect();
            assert_eq!(
                asked,
                [1, 1],
                "interrupt_allowed before the injection and after its delivery"
            );
        }
    }
}
