//! The example policy for the review thread's two calls
//! (`policy/examples/review-thread.toml`) and its traces, replayed through
//! hyp: every expectation holds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use pvgate_gate::{Phase, PvCall, Verdict, VmKind, decide_pv};

#[test]
fn the_example_policy_denies_interrupt_allowed_and_sipi_to_protected_vms_only() {
    let p = interpreter("policy/examples/review-thread.toml");
    let d = |kind, call| decide_pv(&p, kind, Phase::Running, call).verdict;
    assert_eq!(
        d(VmKind::Protected, PvCall::InterruptAllowed),
        Verdict::Deny
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
                .map(|s| s.outcome.out[0])
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
            assert_eq!(refused.rule.as_ref().unwrap().name, "pvm-no-sipi-yet");
        }
    }
}
