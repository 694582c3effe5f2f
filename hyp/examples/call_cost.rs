//! A fixed amount of hypervisor work for instruction counting under
//! callgrind: `call_cost VARIANT ROUNDS` makes 16 PV calls `ROUNDS` times
//! through [`Hyp`], over the shipped policy's const tables.
//! `scripts/callgrind-lookup.sh` runs it twice per variant and divides the
//! difference, so setup cost cancels out.
//!
//! * `set_msr`: an allowed `set_msr` (IA32_MTRR_DEF_TYPE, `0x2ff`) on a protected
//!   vCPU in `setup`: decode-free typed call, gate decision, MSR
//!   constraint, state write, audit.
//! * `get_rflags_denied`: `get_rflags` on a protected vCPU after its first
//!   `vcpu_run`, which the shipped policy denies.
//! * `interrupt_allowed`: `interrupt_allowed` (not for injection) on a
//!   protected vCPU after its first `vcpu_run`, which the policy allows.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::hint::black_box;

use pvgate_gate::VmKind;
use pvgate_hyp::{Call, CpuModel, Hyp, HypConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(variant), Some(rounds)) =
        (args.get(1), args.get(2).and_then(|r| r.parse::<u32>().ok()))
    else {
        eprintln!("usage: call_cost set_msr|get_rflags_denied|interrupt_allowed ROUNDS");
        std::process::exit(2);
    };
    if variant == "cpuid_merge" {
        cpuid_merge(rounds);
        return;
    }
    // The host's CPU: the count covers the call path, not the model.
    let cpu = CpuModel::from_reader(raw_cpuid::CpuIdReaderNative, 0).expect("host cpu model");
    let h: Box<Hyp<_, 2, 4>> = Box::new(Hyp::with_cpu(pvgate::POLICY, cpu, HypConfig::DEFAULT));
    let vm = h.create_vm(VmKind::Protected).expect("vm");
    let v = h.create_vcpu(vm).expect("vcpu");
    // Each round builds its call, as the hypercall entry builds it from
    // registers, and hides it from the optimiser: the harness copies no
    // whole `Call` (152 bytes, `set_regs` carries every register) per
    // call, and the call is still not known at compile time.
    let total = match variant.as_str() {
        "set_msr" => measure(&h, v, rounds, true, || {
            black_box(Call::SetMsr {
                index: 0x2ff,
                value: 0x806,
            })
        }),
        "get_rflags_denied" => {
            run_once(&h, vm, v);
            measure(&h, v, rounds, false, || black_box(Call::GetRflags))
        }
        "interrupt_allowed" => {
            run_once(&h, vm, v);
            measure(&h, v, rounds, true, || {
                black_box(Call::InterruptAllowed {
                    for_injection: false,
                })
            })
        }
        _ => {
            eprintln!("unknown variant `{variant}`");
            std::process::exit(2);
        }
    };
    println!("{variant}: {total}");
}

/// Checks the call's result once, then runs the measured loop over it.
fn measure<P: pvgate_gate::Policy, const V: usize, const C: usize>(
    h: &Hyp<P, V, C>,
    v: pvgate_hyp::VcpuHandle,
    rounds: u32,
    expect_ok: bool,
    call: impl Fn() -> Call,
) -> i64 {
    assert_eq!(h.call(v, call()).ok(), expect_ok, "{:?}", call());
    run(rounds, || h.call(black_box(v), call()).status())
}

/// Finalizes the VM and runs its boot vCPU once (a protected vCPU runs
/// only once its VM is finalized).
fn run_once<P: pvgate_gate::Policy, const V: usize, const C: usize>(
    h: &Hyp<P, V, C>,
    vm: pvgate_hyp::VmHandle,
    v: pvgate_hyp::VcpuHandle,
) {
    assert!(h.vm_finalize(vm, None).ok(), "vm_finalize");
    assert!(h.call(v, Call::VcpuRun).ok(), "vcpu_run");
}

/// The measured loop: 16 calls per round.
#[inline(never)]
fn run(rounds: u32, call: impl Fn() -> i64) -> i64 {
    let mut total = 0i64;
    for _ in 0..rounds {
        for _ in 0..16 {
            total = total.wrapping_add(call());
        }
    }
    total
}

/// `call_cost cpuid_merge RUNS`: the median wall-clock time of
/// `vcpu_after_set_cpuid` on a 256-entry proposal (KVM_MAX_CPUID_ENTRIES):
/// the supported table of a protected VM, padded with subleaves of an
/// unsupported leaf up to 256 entries, on a vCPU in `setup`.
fn cpuid_merge(runs: u32) {
    use pvgate_hyp::{CpuidEntry, MAX_CPUID_ENTRIES};
    let cpu = CpuModel::from_reader(raw_cpuid::CpuIdReaderNative, 0).expect("host cpu model");
    let h: Box<Hyp<_, 2, 4>> = Box::new(Hyp::with_cpu(pvgate::POLICY, cpu, HypConfig::DEFAULT));
    let vm = h.create_vm(VmKind::Protected).expect("vm");
    let v = h.create_vcpu(vm).expect("vcpu");
    let mut proposal = h.supported_cpuid(VmKind::Protected);
    let supported = proposal.len();
    let mut sub = 0;
    while proposal.len() < MAX_CPUID_ENTRIES {
        let _ = proposal.push(CpuidEntry::zero(0x4000_00ff, sub));
        sub += 1;
    }
    let mut times: Vec<std::time::Duration> = (0..runs.max(1))
        .map(|_| {
            let mut table = proposal.clone();
            let start = std::time::Instant::now();
            let o = h.vcpu_after_set_cpuid(black_box(v), black_box(&mut table));
            let t = start.elapsed();
            black_box(o);
            t
        })
        .collect();
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "median cpuid_merge_256 {:.2} us ({} entries, {supported} of them supported, {} runs)",
        median.as_secs_f64() * 1e6,
        proposal.len(),
        times.len()
    );
}
