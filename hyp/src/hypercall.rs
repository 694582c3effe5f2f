//! The hypercall entry ([`crate::Hyp::hypercall`]): decodes the registers
//! and dispatches the request. Outputs are zeroed before dispatch, so an
//! error leaks nothing.

use pvgate_gate::{Policy, PvCall, VmKind};

use crate::abi::{HC_CREATE_VM, HC_GET_SUPPORTED_CPUID, HypercallOut, HypercallRegs, Request};
use crate::audit::Effect;
use crate::cpu::{CpuidEntry, CpuidTable};
use crate::decode::decode;
use crate::error::{CreateVmError, EFAULT, EINVAL, ENOSPC};
use crate::hypervisor::Hyp;

/// The call a decode error belongs to, for the audit counters.
fn error_call(r: &HypercallRegs) -> Option<PvCall> {
    PvCall::from_number(r.rax)
}

fn fail(errno: i64) -> HypercallOut {
    HypercallOut {
        status: errno.wrapping_neg(),
        out: [0; 4],
    }
}

fn done(out: [u64; 4]) -> HypercallOut {
    HypercallOut { status: 0, out }
}

impl<P: Policy, const VMS: usize, const VCPUS: usize> Hyp<P, VMS, VCPUS> {
    /// The hypercall entry: decodes the registers and dispatches. `shared`
    /// is the host's shared CPUID buffer (read for `vcpu_after_set_cpuid`,
    /// then overwritten with the effective or corrected table).
    pub fn hypercall(&self, regs: &HypercallRegs, shared: &mut [CpuidEntry]) -> HypercallOut {
        let request = match decode(regs) {
            Ok(r) => r,
            Err(e) => {
                // Management calls are not PV calls: no counter of their own;
                // unknown numbers count under call 0.
                if !(HC_CREATE_VM..=HC_GET_SUPPORTED_CPUID).contains(&regs.rax) {
                    self.count_invalid(error_call(regs));
                }
                return fail(e.errno());
            }
        };
        match request {
            Request::Pv { vcpu, call } => {
                let o = self.call(vcpu, call);
                HypercallOut {
                    status: o.status(),
                    out: if o.ok() { o.out } else { [0; 4] },
                }
            }
            Request::SetCpuid { vcpu, count } => {
                let n = usize::try_from(count).unwrap_or(usize::MAX);
                let Some(proposal) = shared.get(..n) else {
                    self.count_invalid(Some(PvCall::VcpuAfterSetCpuid));
                    return fail(EFAULT);
                };
                // Copy first: the host cannot change the table under us.
                let mut table = CpuidTable::new();
                for e in proposal {
                    if table.push(*e).is_err() {
                        self.count_invalid(Some(PvCall::VcpuAfterSetCpuid));
                        return fail(EINVAL);
                    }
                }
                let o = self.vcpu_after_set_cpuid(vcpu, &mut table);
                // A filtered or rejected table goes back so the host sees
                // what the policy gives; the report is in the outputs.
                for (dst, src) in shared.iter_mut().zip(table.iter()) {
                    *dst = *src;
                }
                HypercallOut {
                    status: o.status(),
                    out: o.out,
                }
            }
            Request::VmDestroy(vm) => {
                let o = self.vm_destroy(vm);
                HypercallOut {
                    status: o.status(),
                    out: [0; 4],
                }
            }
            Request::VmFinalize { vm, pvmfw } => {
                let o = self.vm_finalize(vm, pvmfw);
                HypercallOut {
                    status: o.status(),
                    out: [0; 4],
                }
            }
            Request::Guest { caller, call } => match self.guest_call(caller, call) {
                Ok(()) => done([0; 4]),
                Err(e) => fail(e.errno()),
            },
            Request::CreateVm(raw) => match VmKind::from_u64(raw)
                .ok_or(CreateVmError::UnknownKind { raw })
                .and_then(|kind| self.create_vm(kind))
            {
                Ok(h) => done([h.0, 0, 0, 0]),
                Err(e) => fail(e.errno()),
            },
            Request::CreateVcpu(vm) => match self.create_vcpu(vm) {
                Ok(h) => done([h.0, 0, 0, 0]),
                Err(e) => fail(e.errno()),
            },
            Request::DestroyVcpu(vcpu) => match self.destroy_vcpu(vcpu) {
                Ok(()) => done([0; 4]),
                Err(e) => fail(e.errno()),
            },
            Request::FreeVm(vm) => match self.free_vm(vm) {
                Ok(()) => done([0; 4]),
                Err(e) => fail(e.errno()),
            },
            Request::AuditCount { call, effect } => {
                let call = match call {
                    0 => Some(None),
                    n => PvCall::from_number(n).map(Some),
                };
                match (call, Effect::from_u64(effect)) {
                    (Some(call), Some(effect)) => {
                        done([self.audit().counter(call, effect), 0, 0, 0])
                    }
                    _ => fail(EINVAL),
                }
            }
            Request::AuditEvent { back } => match self.audit().recent(back) {
                Some(ev) => done([ev.seq, ev.encode_word(), ev.vcpu, ev.resource.encode()]),
                None => fail(EINVAL),
            },
            Request::SupportedCpuid(raw) => {
                let Some(kind) = VmKind::from_u64(raw) else {
                    return fail(EINVAL);
                };
                let table = self.supported_cpuid(kind);
                let Some(dst) = shared.get_mut(..table.len()) else {
                    return fail(ENOSPC);
                };
                dst.copy_from_slice(&table);
                done([table.len() as u64, 0, 0, 0])
            }
            Request::PolicyDigest => {
                let d = self.policy().digest();
                let mut out = [0u64; 4];
                for (word, chunk) in out.iter_mut().zip(d.chunks_exact(8)) {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(chunk);
                    *word = u64::from_be_bytes(b);
                }
                done(out)
            }
        }
    }
}
