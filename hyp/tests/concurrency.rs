//! Threads hammering different vCPUs and the same vCPU: no lost update, no
//! deadlock, audit counters exact.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::*;
use pvgate_gate::{Phase, PvCall, VmKind};
use pvgate_hyp::{Call, Effect, Hyp, HypConfig, VcpuHandle};

const THREADS: usize = 4;
const CALLS: u64 = 2_000;

fn shared_hyp() -> Arc<Hyp<pvgate::CompiledPolicy, 2, 4>> {
    Arc::new(Hyp::with_cpu(
        pvgate::POLICY,
        reference_cpu(),
        HypConfig::DEFAULT,
    ))
}

fn hammer(h: &Hyp<pvgate::CompiledPolicy, 2, 4>, v: VcpuHandle) {
    for _ in 0..CALLS {
        assert!(h.call_simple(v, Call::FlushTlbAll).ok()); // allowed: counts a flush
        assert_eq!(h.call_simple(v, Call::SetDr7(0)).status(), -1); // denied for a pvm
    }
}

#[test]
fn threads_on_different_vcpus_and_on_the_same_vcpu_lose_no_update() {
    let h = shared_hyp();
    let vm = h.create_vm(VmKind::Protected).unwrap();
    let own: Vec<VcpuHandle> = (0..THREADS).map(|_| h.create_vcpu(vm).unwrap()).collect();
    let shared = own[0];
    let mut threads = Vec::new();
    for &v in &own {
        // One thread on its own vCPU, one more on the shared vCPU 0.
        for target in [v, shared] {
            let h = Arc::clone(&h);
            threads.push(std::thread::spawn(move || hammer(&h, target)));
        }
    }
    for t in threads {
        t.join().unwrap();
    }
    let flushes = |v| h.inspect(v, |s| s.tlb_flushes).unwrap();
    assert_eq!(flushes(shared), CALLS * (THREADS as u64 + 1));
    for &v in &own[1..] {
        assert_eq!(flushes(v), CALLS);
    }
    let total = CALLS * 2 * THREADS as u64;
    let audit = h.audit();
    assert_eq!(
        audit.counter(Some(PvCall::FlushTlbAll), Effect::Allow),
        total
    );
    assert_eq!(audit.counter(Some(PvCall::SetDr7), Effect::Deny), total);
    assert_eq!(audit.counter(Some(PvCall::SetDr7), Effect::Allow), 0);
    assert_eq!(audit.recorded(), total, "every denial reached the ring");
    let newest = audit.recent(0).unwrap();
    assert_eq!(
        (newest.seq, newest.call, newest.effect),
        (total, PvCall::SetDr7, Effect::Deny)
    );
    assert!(
        audit
            .recent(pvgate_hyp::AUDIT_RING_CAPACITY as u64)
            .is_none()
    );
}

#[test]
fn concurrent_runs_and_vm_destroy_leave_every_vcpu_torn_down() {
    let h = shared_hyp();
    let vm = h.create_vm(VmKind::Normal).unwrap();
    let vcpus: Vec<VcpuHandle> = (0..4).map(|_| h.create_vcpu(vm).unwrap()).collect();
    let mut threads = Vec::new();
    for &v in &vcpus {
        let h = Arc::clone(&h);
        threads.push(std::thread::spawn(move || {
            let mut last = Phase::Setup;
            for _ in 0..CALLS {
                let _ = h.call_simple(v, Call::VcpuRun);
                let p = h.phase(v).unwrap();
                assert!(p >= last, "phase went back from {last:?} to {p:?}");
                last = p;
            }
        }));
    }
    let destroyer = {
        let h = Arc::clone(&h);
        std::thread::spawn(move || {
            std::thread::yield_now();
            assert!(h.vm_destroy(vm).ok());
        })
    };
    for t in threads {
        t.join().unwrap();
    }
    destroyer.join().unwrap();
    for &v in &vcpus {
        assert_eq!(h.phase(v), Some(Phase::Teardown));
    }
    let runs = h.audit().counter(Some(PvCall::VcpuRun), Effect::Allow)
        + h.audit().counter(Some(PvCall::VcpuRun), Effect::Invalid);
    assert_eq!(runs, CALLS * 4, "every call counted once");
}
