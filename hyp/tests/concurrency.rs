//! Threads hammering different vCPUs and the same vCPU: no lost update, no
//! deadlock, audit counters exact.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use std::collections::HashMap;

use common::*;
use pvgate_gate::{Phase, PvCall, Verdict, VmKind, decide_pv};
use pvgate_hyp::args::{ExceptionVector, InterruptShadow};
use pvgate_hyp::{
    Call, CallError, DescTable, Effect, Gpr, GprWrite, Hyp, HypConfig, Resource, SegReg, VcpuHandle,
};

const THREADS: usize = 4;

/// The tests here run one at a time: each starts more threads than this
/// 2-core machine has cores, and one measures latency.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
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
        assert!(h.call(v, Call::FlushTlbAll).ok()); // allowed: counts a flush
        assert_eq!(h.call(v, Call::SetDr7(0)).status(), -1); // denied for a pvm
    }
}

#[test]
fn threads_on_different_vcpus_and_on_the_same_vcpu_lose_no_update() {
    let _serial = serial();
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
    let _serial = serial();
    let h = shared_hyp();
    let vm = h.create_vm(VmKind::Normal).unwrap();
    let vcpus: Vec<VcpuHandle> = (0..4).map(|_| h.create_vcpu(vm).unwrap()).collect();
    let mut threads = Vec::new();
    for &v in &vcpus {
        let h = Arc::clone(&h);
        threads.push(std::thread::spawn(move || {
            let mut last = Phase::Setup;
            for _ in 0..CALLS {
                let _ = h.call(v, Call::VcpuRun);
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
    let _serial = serial();
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
                    assert!(!h.call(v, Call::FlushTlbAll).ok());
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
                    let _ = h.call(v, calls[n % calls.len()]);
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

/// Median, 99th percentile and worst of sorted latencies.
fn summary(lat: &[Duration]) -> (Duration, Duration, Duration) {
    let at = |q: usize| lat[(lat.len() - 1) * q / 100];
    (at(50), at(99), at(100))
}

#[test]
fn vm_destroy_gets_through_in_bounded_time_under_pv_call_load() {
    let _serial = serial();
    // Finding 9: with readers let in first, `vm_destroy` waited for a
    // moment with no call in flight (887 ms mean, 5 s worst). The bounds
    // are the issue's; they hold in a debug build too, since the destroy
    // itself waits for no call.
    let tries = 200;
    let lat = vm_destroy_latencies(tries, Duration::from_micros(500), Duration::from_secs(30));
    assert_eq!(lat.len(), tries, "200 destroys took over 30 s: {lat:?}");
    let (median, p99, worst) = summary(&lat);
    eprintln!("vm_destroy under load: median {median:?}, p99 {p99:?}, worst {worst:?}");
    assert!(
        median < Duration::from_micros(50) && worst < Duration::from_millis(10),
        "vm_destroy median {median:?}, worst {worst:?}"
    );
}

/// The measurement for the record: `cargo test --release -p pvgate-hyp
/// --test concurrency -- --ignored --nocapture vm_destroy_latency_report`.
#[test]
#[ignore = "a measurement, not a check: run it in release and read the numbers"]
fn vm_destroy_latency_report() {
    let _serial = serial();
    let lat = vm_destroy_latencies(1_000, Duration::from_micros(500), Duration::from_secs(300));
    let (median, p99, worst) = summary(&lat);
    println!(
        "vm_destroy with 8 callers, {} tries: median {median:?}, p99 {p99:?}, worst {worst:?}",
        lat.len()
    );
}

/// A small deterministic generator (xorshift64) for the stress test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A random call (every PV call but `vcpu_after_set_cpuid`, with arguments
/// both ordinary and odd).
fn random_call(r: &mut Rng) -> Call {
    let x = r.next();
    let vector = (x >> 8) as u8;
    let seg = SegReg::ALL[(x >> 16) as usize % SegReg::ALL.len()];
    let gpr = Gpr::ALL[(x >> 24) as usize % Gpr::ALL.len()];
    let table = DescTable {
        base: x >> 3,
        limit: x as u16,
    };
    let msrs = [0x10, 0x1a0, 0x3a, 0x48, 0xc000_0080, 0x174, 0x6e0, x as u32];
    let msr = msrs[(x >> 32) as usize % msrs.len()];
    let calls = [
        Call::EnableNmiWindow,
        Call::EnableIrqWindow,
        Call::InterruptAllowed {
            for_injection: x & 4 != 0,
        },
        Call::NmiAllowed {
            for_injection: x & 8 != 0,
        },
        Call::GetNmiMask,
        Call::InjectIrq {
            vector,
            soft: x & 1 != 0,
        },
        Call::InjectIrqIfAllowed {
            vector,
            soft: x & 2 != 0,
        },
        Call::InjectNmi,
        Call::CancelInjection,
        Call::UpdateCr8Intercept {
            tpr: x & 0xf,
            max_irr: x >> 60,
        },
        Call::WriteTscOffset(x),
        Call::SetupMce { mcg_cap: x & 0xff },
        Call::VcpuRun,
        Call::VcpuRun,
        Call::VcpuRun,
        Call::CompleteEmulatedMsr {
            error: (x & 1) as i32,
        },
        Call::ProtectedApicHasInterrupt,
        Call::SetEfer(x & 0xd01),
        Call::SetMsr {
            index: msr,
            value: x,
        },
        Call::GetMsr { index: msr },
        Call::SetCr0(x),
        Call::SetCr4(x),
        Call::SetRflags(x | 2),
        Call::GetRflags,
        Call::SetSegment {
            seg,
            segment: Default::default(),
        },
        Call::GetSegment(seg),
        Call::GetSegmentBase(seg),
        Call::SetIdt(table),
        Call::GetIdt,
        Call::SetGdt(table),
        Call::GetGdt,
        Call::FlushTlbAll,
        Call::VcpuAddFpstate { size: x & 0x1ffff },
        Call::SetRegs(GprWrite::default().with(gpr, x)),
        Call::SetDr7(x),
        Call::CacheReg(gpr),
        Call::SetInterruptShadow(InterruptShadow::from_u64(x & 3).unwrap()),
        Call::GetInterruptShadow,
        Call::InjectException {
            vector: ExceptionVector::from_u64(u64::from(vector & 31)).unwrap(),
            error_code: None,
        },
        Call::SetNmiMask(x & 1 != 0),
        Call::UpdateExceptionBitmap(x as u32),
        Call::VcpuReset,
        Call::DeliverSipiVector { vector },
    ];
    calls[(r.next() % calls.len() as u64) as usize]
}

/// Whether the gate gives `verdict` to `call` on a `kind` vCPU in some
/// phase from `from` to `to`.
fn gate_says(kind: VmKind, from: Phase, to: Phase, call: PvCall, verdict: Verdict) -> bool {
    Phase::ALL
        .iter()
        .filter(|&&p| from <= p && p <= to)
        .any(|&p| decide_pv(&pvgate::POLICY, kind, p, call).verdict == verdict)
}

#[test]
fn random_calls_racing_a_first_run_and_a_destroy_break_no_rule_and_count_exactly() {
    let _serial = serial();
    // The issue's stress run (14.4 M random calls racing a first run and a
    // destroy), sized for CI: every outcome is one the gate gives in a
    // phase the vCPU was in during the call, a call that starts after
    // `vm_destroy` returned sees `teardown`, and the audit counts each
    // call once.
    const THREADS: usize = 6;
    let h = shared_hyp();
    let mut expected: HashMap<(PvCall, Effect), u64> = HashMap::new();
    let mut calls = 0u64;
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut round = 0u64;
    while Instant::now() < deadline || round < 8 {
        round += 1;
        let kind = VmKind::ALL[(round % 2) as usize];
        let vm = h.create_vm(kind).unwrap();
        let vcpus: Vec<VcpuHandle> = (0..4).map(|_| h.create_vcpu(vm).unwrap()).collect();
        let destroyed = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (h, destroyed) = (Arc::clone(&h), Arc::clone(&destroyed));
                let v = vcpus[t % vcpus.len()];
                let mut r = Rng(round << 8 | t as u64 | 1 << 40);
                std::thread::spawn(move || {
                    let mut seen: HashMap<(PvCall, Effect), u64> = HashMap::new();
                    for _ in 0..400 {
                        let call = random_call(&mut r);
                        let after_destroy = destroyed.load(Ordering::SeqCst);
                        let from = h.phase(v).unwrap();
                        let o = h.call(v, call);
                        let to = h.phase(v).unwrap();
                        let pv = call.pv();
                        assert!(from <= to, "phase went back from {from:?} to {to:?}");
                        if after_destroy {
                            assert_eq!(from, Phase::Teardown, "{call:?} after vm_destroy");
                        }
                        match o.effect {
                            Effect::Allow | Effect::Filter => assert!(
                                gate_says(kind, from, to, pv, Verdict::Allow),
                                "{call:?} allowed on a {kind:?} vCPU in {from:?}..{to:?}"
                            ),
                            // An MSR rule may ignore what the PV rule allows.
                            Effect::Ignore => assert!(
                                gate_says(kind, from, to, pv, Verdict::Ignore)
                                    || matches!(o.resource, Resource::Msr(_))
                                        && gate_says(kind, from, to, pv, Verdict::Allow),
                                "{call:?} ignored on a {kind:?} vCPU in {from:?}..{to:?}: {o:?}"
                            ),
                            Effect::Deny | Effect::Invalid => {}
                        }
                        if let Some(CallError::Denied { phase, .. }) = o.error {
                            assert!(from <= phase && phase <= to, "{o:?} in {from:?}..{to:?}");
                            assert!(gate_says(kind, phase, phase, pv, Verdict::Deny));
                        }
                        *seen.entry((pv, o.effect)).or_default() += 1;
                    }
                    seen
                })
            })
            .collect();
        let destroyer = {
            let (h, destroyed) = (Arc::clone(&h), Arc::clone(&destroyed));
            let spins = round * 7919 % 20_000;
            std::thread::spawn(move || {
                for _ in 0..spins {
                    std::hint::spin_loop();
                }
                let o = h.vm_destroy(vm);
                destroyed.store(true, Ordering::SeqCst);
                o
            })
        };
        for t in threads {
            for (key, n) in t.join().unwrap() {
                *expected.entry(key).or_default() += n;
                calls += n;
            }
        }
        let o = destroyer.join().unwrap();
        assert!(o.ok(), "{o:?}");
        *expected.entry((PvCall::VmDestroy, o.effect)).or_default() += 1;
        for &v in &vcpus {
            assert_eq!(h.phase(v), Some(Phase::Teardown));
            h.destroy_vcpu(v).unwrap();
        }
        h.free_vm(vm).unwrap();
        for &v in &vcpus {
            assert!(!h.call(v, Call::FlushTlbAll).ok());
            *expected
                .entry((PvCall::FlushTlbAll, Effect::Invalid))
                .or_default() += 1;
        }
    }
    eprintln!("{calls} random calls in {round} rounds");
    for call in PvCall::ALL {
        for effect in Effect::ALL {
            let want = expected.get(&(call, effect)).copied().unwrap_or(0);
            assert_eq!(
                h.audit().counter(Some(call), effect),
                want,
                "audit counter of {call:?} {effect:?}"
            );
        }
    }
}

/// A policy where a normal VM may be destroyed only before any of its
/// vCPUs ran, so the phase a destroy is decided in shows.
const DESTROY_IN_SETUP_ONLY: &str = r#"
[policy]
name = "destroy-in-setup-only"
description = "a test policy: normal VMs are destroyed only before their first run"
format = 1
include = ["invariants/protected-baseline.toml"]
cpuid-violations = "filter"

[[pv]]
name = "run"
call = "vcpu_run"
vm = ["protected", "normal"]
phase = ["setup", "running"]
verdict = "allow"
reason = "the host runs its vCPUs because the test races a first run against a destroy"

[[pv]]
name = "pvm-destroy"
call = "vm_destroy"
vm = ["protected"]
phase = ["setup", "running", "teardown"]
verdict = "allow"
reason = "the baseline requires that the host may always destroy a protected VM"

[[pv]]
name = "pvm-finalize"
call = "vm_finalize"
vm = ["protected"]
phase = ["setup"]
verdict = "allow"
reason = "the baseline requires that the host may finalize a protected VM"

[[pv]]
name = "npvm-destroy-in-setup"
call = "vm_destroy"
vm = ["normal"]
phase = ["setup"]
verdict = "allow"
reason = "a destroy decided after a first run must show as a denial in this test"
"#;

fn destroy_in_setup_only() -> pvgate_codegen::Interpreter {
    let ir = pvgate_codegen::compile_in_dir(DESTROY_IN_SETUP_ONLY, &root().join("policy")).unwrap();
    let policy = pvgate_codegen::Interpreter::new(ir);
    let verdict = |phase| decide_pv(&policy, VmKind::Normal, phase, PvCall::VmDestroy).verdict;
    assert_eq!(
        (verdict(Phase::Setup), verdict(Phase::Running)),
        (Verdict::Allow, Verdict::Deny)
    );
    policy
}

#[test]
fn a_destroy_decided_in_setup_never_follows_a_first_run() {
    let _serial = serial();
    // `vm_destroy` reads the VM's phase without waiting for vCPU calls, so
    // a first run racing it must either come first (the destroy then sees
    // `running` and is denied by this policy) or not happen at all.
    let policy = destroy_in_setup_only();
    let cpu = reference_cpu();
    let (mut destroys_won, mut runs_won) = (0u32, 0u32);
    for round in 0..300u64 {
        let h: Arc<Hyp<pvgate_codegen::Interpreter, 1, 2>> = Arc::new(Hyp::with_cpu(
            policy.clone(),
            cpu.clone(),
            HypConfig::DEFAULT,
        ));
        let vm = h.create_vm(VmKind::Normal).unwrap();
        let vcpus: Vec<VcpuHandle> = (0..2).map(|_| h.create_vcpu(vm).unwrap()).collect();
        let runners: Vec<_> = vcpus
            .iter()
            .map(|&v| {
                let h = Arc::clone(&h);
                std::thread::spawn(move || h.call(v, Call::VcpuRun).ok())
            })
            .collect();
        for _ in 0..round * 37 % 3_000 {
            std::hint::spin_loop();
        }
        let destroy = h.vm_destroy(vm);
        let runs: Vec<bool> = runners.into_iter().map(|t| t.join().unwrap()).collect();
        let any_ran = runs.iter().any(|&r| r);
        assert!(
            destroy.ok() != any_ran,
            "round {round}: destroy {destroy:?}, runs {runs:?}"
        );
        for &v in &vcpus {
            let (phase, runs) = h.inspect(v, |s| (s.phase, s.runs)).unwrap();
            if destroy.ok() {
                assert_eq!((phase, runs), (Phase::Teardown, 0), "round {round}");
            }
        }
        if destroy.ok() {
            destroys_won += 1;
        } else {
            runs_won += 1;
        }
    }
    eprintln!("{destroys_won} destroys won, {runs_won} first runs won");
}
