//! Shared helpers of hyp's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use pvgate_codegen::Interpreter;
use pvgate_gate::{Phase, Policy, VmKind};
use pvgate_hyp::{Call, CpuModel, Hyp, HypConfig, VcpuHandle, VcpuState};

/// The `reference` CPU model (the recorded Xeon Gold 6252).
pub const REFERENCE_DUMP: &str = include_str!("../../../tests/data/cpu/xeon-gold-6252.cpuid");

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn reference_cpu() -> CpuModel {
    pvgate_trace::CpuDump::parse(REFERENCE_DUMP)
        .unwrap()
        .model()
        .unwrap()
}

pub fn interpreter(path: &str) -> Interpreter {
    Interpreter::new(pvgate_codegen::compile_file(root().join(path)).unwrap().ir)
}

pub type SmallHyp<P> = Hyp<P, 2, 4>;

pub fn hyp<P: Policy>(policy: P) -> Box<SmallHyp<P>> {
    Box::new(Hyp::with_cpu(policy, reference_cpu(), HypConfig::DEFAULT))
}

/// A vCPU of a fresh VM of `kind`, driven to `phase` with `vm_finalize`
/// (protected VMs: the boot vCPU becomes runnable), `vcpu_run` /
/// `vm_destroy` (which the shipped policies allow).
pub fn vcpu_in<P: Policy>(h: &SmallHyp<P>, kind: VmKind, phase: Phase) -> VcpuHandle {
    let vm = h.create_vm(kind).unwrap();
    let v = h.create_vcpu(vm).unwrap();
    if kind == VmKind::Protected {
        assert!(h.vm_finalize(vm, None).ok());
    }
    if phase >= Phase::Running {
        assert!(h.call(v, Call::VcpuRun).ok());
    }
    if phase >= Phase::Teardown {
        assert!(h.vm_destroy(vm).ok());
    }
    assert_eq!(h.phase(v), Some(phase));
    v
}

pub fn snapshot<P: Policy>(h: &SmallHyp<P>, v: VcpuHandle) -> VcpuState {
    h.inspect(v, |s| s.clone()).unwrap()
}
