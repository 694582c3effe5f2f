//! The gate: every piece of vCPU state the VMM sets goes through hyp
//! first, in crosvm's order (`tests/data/traces/crosvm-boot-*.toml`):
//! `vcpu_after_set_cpuid`, `set_regs`, `set_rflags`, `set_segment` (CS DS
//! ES FS GS SS TR), `set_gdt`, `set_idt`, `set_cr0`, `set_cr4`,
//! `set_efer`, `write_tsc_offset`, one `set_msr` per MSR in ascending
//! order, `vm_finalize` (protected VMs), `vcpu_run`. What hyp holds after
//! the first run, read back with [`Hyp::inspect`], is what the VMM loads
//! into KVM; what hyp refused or filtered never reaches KVM.

use pvgate_gate::VmKind;
use pvgate_hyp::{
    Call, CpuidTable, DescTable, Gpr, GprWrite, Hyp, Outcome, RunState, SegReg, VcpuHandle,
};

use crate::state::{Registers, VcpuSetup};

/// hyp over the image's policy tables (`pvgate::POLICY`, compiled from
/// `policy/default.toml`): one VM of at most two vCPUs.
pub type GateHyp = Hyp<pvgate::CompiledPolicy, 1, 2>;

/// A PV call hyp failed that the VMM needs (the boot cannot go on).
#[derive(Debug)]
pub struct GateError(pub String);

impl std::fmt::Display for GateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What hyp made of the VMM's state.
#[derive(Debug)]
pub struct Gated {
    /// Per vCPU, what hyp holds after its first run.
    pub vcpus: Vec<VcpuSetup>,
    /// CPUID registers hyp replaced, per vCPU.
    pub replaced: Vec<u32>,
    /// `set_msr` calls hyp refused: (vCPU, MSR, value, status).
    pub refused_msrs: Vec<(usize, u32, u64, i64)>,
}

fn must(what: &str, o: Outcome) -> Result<Outcome, GateError> {
    if o.ok() {
        Ok(o)
    } else {
        Err(GateError(format!("hyp refused {what}: {o:?}")))
    }
}

/// Sends `wanted` (one entry per vCPU, the boot vCPU first) through hyp
/// for a VM of `kind`, and returns what hyp holds afterwards. On a
/// protected VM only the boot vCPU is run (secondaries wait for the guest).
pub fn through_hyp(hyp: &GateHyp, kind: VmKind, wanted: &[VcpuSetup]) -> Result<Gated, GateError> {
    let vm = hyp
        .create_vm(kind)
        .map_err(|e| GateError(format!("create_vm: {e:?}")))?;
    let handles = wanted
        .iter()
        .map(|_| hyp.create_vcpu(vm))
        .collect::<Result<Vec<VcpuHandle>, _>>()
        .map_err(|e| GateError(format!("create_vcpu: {e:?}")))?;
    let mut replaced = Vec::new();
    let mut refused_msrs = Vec::new();
    for (i, (setup, &h)) in wanted.iter().zip(&handles).enumerate() {
        let mut table = CpuidTable::new();
        for e in &setup.cpuid {
            table
                .push(*e)
                .map_err(|_| GateError(format!("vCPU {i}: CPUID table too large")))?;
        }
        let o = must(
            "vcpu_after_set_cpuid",
            hyp.vcpu_after_set_cpuid(h, &mut table),
        )?;
        replaced.push(o.replaced);
        if let Some(r) = &setup.regs {
            set_registers(hyp, h, r)?;
        }
        must("write_tsc_offset", hyp.call(h, Call::WriteTscOffset(0)))?;
        for &(index, value) in &setup.msrs {
            let o = hyp.call(h, Call::SetMsr { index, value });
            if !o.ok() {
                refused_msrs.push((i, index, value, o.status()));
            }
        }
    }
    if kind == VmKind::Protected {
        must("vm_finalize", hyp.vm_finalize(vm, None))?;
    }
    let mut vcpus = Vec::new();
    for (setup, &h) in wanted.iter().zip(&handles) {
        let runnable = hyp.inspect(h, |v| v.run_state == RunState::Runnable);
        if runnable == Some(true) {
            must("vcpu_run", hyp.call(h, Call::VcpuRun))?;
        }
        let held = hyp
            .inspect(h, |v| VcpuSetup {
                cpuid: v.cpuid.to_vec(),
                msrs: v.msrs.to_vec(),
                regs: setup.regs.as_ref().map(|_| Registers {
                    gprs: v.gprs,
                    rflags: v.rflags,
                    segments: v.segments,
                    gdt: v.gdt,
                    idt: v.idt,
                    cr0: v.cr0,
                    cr4: v.cr4,
                    efer: v.efer,
                }),
            })
            .ok_or_else(|| GateError("a vCPU vanished".into()))?;
        vcpus.push(held);
    }
    Ok(Gated {
        vcpus,
        replaced,
        refused_msrs,
    })
}

fn set_registers(hyp: &GateHyp, h: VcpuHandle, r: &Registers) -> Result<(), GateError> {
    // crosvm's KVM_SET_REGS writes these, and RBX for the PVH entry (the
    // rest stay at reset).
    let mut w = GprWrite::default();
    for g in [Gpr::Rip, Gpr::Rbx, Gpr::Rsp, Gpr::Rsi, Gpr::Rdx, Gpr::Rdi] {
        w = w.with(g, r.gprs[g as usize]);
    }
    must("set_regs", hyp.call(h, Call::SetRegs(w)))?;
    must("set_rflags", hyp.call(h, Call::SetRflags(r.rflags)))?;
    for seg in [
        SegReg::Cs,
        SegReg::Ds,
        SegReg::Es,
        SegReg::Fs,
        SegReg::Gs,
        SegReg::Ss,
        SegReg::Tr,
    ] {
        let segment = r.segments[seg as usize];
        must(
            "set_segment",
            hyp.call(h, Call::SetSegment { seg, segment }),
        )?;
    }
    let table = |t: DescTable| t;
    must("set_gdt", hyp.call(h, Call::SetGdt(table(r.gdt))))?;
    must("set_idt", hyp.call(h, Call::SetIdt(table(r.idt))))?;
    must("set_cr0", hyp.call(h, Call::SetCr0(r.cr0)))?;
    must("set_cr4", hyp.call(h, Call::SetCr4(r.cr4)))?;
    must("set_efer", hyp.call(h, Call::SetEfer(r.efer)))?;
    Ok(())
}
