//! Threads hammering different vCPUs and the same vCPU: no lost update, no
//! deadlock, audit counters exact.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

/// A vCPU handle of `slot`'s VM generation `generation`, index 0: dead
/// once that VM is freed (or before it ever existed).
fn dead_vcpu(generation: u64, slot: u64) -> VcpuHandle {
    VcpuHandle(generation << 32 | 1 << 31 | slot << 16)
}

#[test]
fn create_vm_never_fails_while_a_slot_is_free() {
    // One slot: every `create_vm` below runs while it is free. A thread
    // makes calls with dead handles of that slot the whole time (finding
    // 9: they took the slot's lock and `create_vm` answered "full").
    let h: Arc<Hyp<pvgate::CompiledPolicy, 1, 4>> = Arc::new(Hyp::with_cpu(
        pvgate::POLICY,
        reference_cpu(),
        HypConfig::DEFAULT,
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicU64::new(0));
    let pests: Vec<_> = (0..2)
        .map(|_| {
            let (h, stop, made) = (Arc::clone(&h), Arc::clone(&stop), Arc::clone(&made));
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let v = dead_vcpu(n % 4, 0);
                    assert!(!h.call_simple(v, Call::FlushTlbAll).ok());
                    n = n.wrapping_add(1);
                    made.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    while made.load(Ordering::Relaxed) < 1_000 {
        std::thread::yield_now();
    }
    let mut failures = 0u32;
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut cycles = 0u32;
    while Instant::now() < deadline {
        match h.create_vm(VmKind::Normal) {
            Ok(vm) => {
                assert!(h.vm_destroy(vm).ok());
                h.free_vm(vm).unwrap();
            }
            Err(_) => failures += 1,
        }
        cycles += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for p in pests {
        p.join().unwrap();
    }
    eprintln!("create_vm: {failures} failures in {cycles} cycles");
    assert_eq!(failures, 0, "create_vm failed {failures} of {cycles} times");
}

/// Median and worst of `vm_destroy` latencies while 8 threads make PV
/// calls on the destroyed VM's vCPUs: `tries` VMs, each destroyed after
/// `settle` of calls. Returns the sorted latencies.
pub fn vm_destroy_latencies(tries: usize, settle: Duration, budget: Duration) -> Vec<Duration> {
    const CALLERS: usize = 8;
    const VCPUS: usize = 4;
    let h: Arc<Hyp<pvgate::CompiledPolicy, 2, VCPUS>> = Arc::new(Hyp::with_cpu(
        pvgate::POLICY,
        reference_cpu(),
        HypConfig::DEFAULT,
    ));
    let targets: Arc<[AtomicU64; VCPUS]> = Arc::new([const { AtomicU64::new(0) }; VCPUS]);
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..CALLERS)
        .map(|t| {
            let (h, targets, stop) = (Arc::clone(&h), Arc::clone(&targets), Arc::clone(&stop));
            std::thread::spawn(move || {
                let calls = [
                    Call::FlushTlbAll,
                    Call::VcpuRun,
                    Call::GetRflags,
                    Call::SetDr7(0),
                ];
                let mut n = t;
                while !stop.load(Ordering::Relaxed) {
                    let v = VcpuHandle(targets[t % VCPUS].load(Ordering::Relaxed));
                    let _ = h.call_simple(v, calls[n % calls.len()]);
                    n = n.wrapping_add(1);
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(tries);
    while latencies.len() < tries && started.elapsed() < budget {
        let kind = if latencies.len() % 2 == 0 {
            VmKind::Protected
        } else {
            VmKind::Normal
        };
        let vm = h.create_vm(kind).unwrap();
        for target in targets.iter() {
            target.store(h.create_vcpu(vm).unwrap().0, Ordering::Relaxed);
        }
        std::thread::sleep(settle);
        let t0 = Instant::now();
        let o = h.vm_destroy(vm);
        latencies.push(t0.elapsed());
        assert!(o.ok(), "{o:?}");
        h.free_vm(vm).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.join().unwrap();
    }
    latencies.sort();
    latencies
}

#[test]
fn vm_destroy_gets_through_in_bounded_time_under_pv_call_load() {
    let tries = 200;
    let lat = vm_destroy_latencies(tries, Duration::from_micros(500), Duration::from_secs(30));
    assert_eq!(lat.len(), tries, "200 destroys took over 30 s: {lat:?}");
    let median = lat[lat.len() / 2];
    let worst = lat[lat.len() - 1];
    assert!(
        median < Duration::from_micros(50) && worst < Duration::from_millis(10),
        "vm_destroy median {median:?}, worst {worst:?}"
    );
}
