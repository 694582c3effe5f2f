//! Any bytes, as a sequence of register sets, into the hypercall entry of
//! a hypervisor over the image's policy and the reference CPU model. A VM
//! with two vCPUs exists first; handles are either ones the hypervisor
//! gave out (live or stale) or arbitrary values. Checked after every call:
//! no panic, the status is 0 or a known `-errno`, a failed call leaves the
//! outputs zeroed (except `vcpu_after_set_cpuid`, which reports its
//! verdict in them), a vCPU's phase never goes back; at the end, every
//! PV-range hypercall was counted exactly once.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pvgate_gate::{Phase, PvCall, VmKind};
use pvgate_hyp::abi::{HC_CREATE_VCPU, HC_CREATE_VM, HC_GET_SUPPORTED_CPUID};
use pvgate_hyp::{
    CpuModel, CpuidEntry, Effect, Hyp, HypConfig, HypercallRegs, MAX_CPUID_ENTRIES, VcpuHandle,
};

const ERRNOS: [i64; 6] = [0, -1, -14, -16, -22, -28];
const MAX_STEPS: usize = 256;

const INTERESTING: [u64; 12] = [
    0,
    1,
    2,
    u64::MAX,
    0x1a0,
    0x2ff,
    0xc000_0080,
    0x8000_0000,
    0xffff_ffff,
    1 << 63,
    0x1_0000_0000,
    0xfee0_0000,
];

fn cpu() -> &'static CpuModel {
    static CPU: OnceLock<CpuModel> = OnceLock::new();
    CPU.get_or_init(|| pvgate_trace::cpu_model("reference").expect("the reference CPU model"))
}

/// Every call number worth hitting: the PV calls and the management calls.
fn numbers() -> &'static [u64] {
    static NUMBERS: OnceLock<Vec<u64>> = OnceLock::new();
    NUMBERS.get_or_init(|| {
        PvCall::ALL
            .iter()
            .map(|c| c.number())
            .chain(HC_CREATE_VM..=HC_GET_SUPPORTED_CPUID)
            .collect()
    })
}

/// Reads the input front to back; zeros once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_le_bytes(b)
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> Option<T> {
        if from.is_empty() {
            return None;
        }
        Some(from[usize::from(self.u8()) % from.len()])
    }

    fn arg(&mut self) -> u64 {
        match self.u8() % 4 {
            0 => u64::from(self.u8()),
            1 => self.pick(&INTERESTING).unwrap_or(0),
            2 => self.u64(),
            _ => 0,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Bytes(data);
    let h: Box<Hyp<_, 2, 4>> = Box::new(Hyp::with_cpu(
        pvgate::POLICY,
        cpu().clone(),
        HypConfig::DEFAULT,
    ));
    let kind = if input.u8() & 1 == 0 {
        VmKind::Protected
    } else {
        VmKind::Normal
    };
    let vm = h.create_vm(kind).expect("the first VM");
    let mut vms = vec![vm.0];
    let mut vcpus = Vec::new();
    for _ in 0..2 {
        vcpus.push(h.create_vcpu(vm).expect("a vCPU of the first VM").0);
    }
    let shared_len = usize::from(input.u8()) % (MAX_CPUID_ENTRIES + 8);
    let mut shared = vec![CpuidEntry::default(); shared_len];
    let mut phases: HashMap<u64, Phase> = HashMap::new();
    let mut pv_calls = 0u64;

    for _ in 0..MAX_STEPS {
        if input.is_empty() {
            break;
        }
        let k = input.u8();
        let rax = if k < 0xf0 {
            numbers()[usize::from(k) % numbers().len()]
        } else {
            input.u64()
        };
        let rbx = match input.u8() % 4 {
            0 => input.pick(&vms).unwrap_or(0),
            1 => input.pick(&vcpus).unwrap_or(0),
            2 => u64::from(input.u8()),
            _ => input.u64(),
        };
        let regs = HypercallRegs {
            rax,
            rbx,
            rcx: input.arg(),
            rdx: input.arg(),
            rsi: input.arg(),
            rdi: input.arg(),
            r8: input.arg(),
        };
        let is_cpuid = rax == PvCall::VcpuAfterSetCpuid.number();
        // Let the host tamper with one entry of the shared table (say, the
        // supported table a previous call returned) before proposing it.
        if is_cpuid && input.u8() & 1 == 1 && !shared.is_empty() {
            let i = usize::from(input.u8()) % shared.len();
            let v = input.u64();
            let e = &mut shared[i];
            match input.u8() % 6 {
                0 => e.leaf = v as u32,
                1 => e.subleaf = v as u32,
                2 => e.eax = v as u32,
                3 => e.ebx = v as u32,
                4 => e.ecx = v as u32,
                _ => e.edx = v as u32,
            }
        }

        let o = h.hypercall(&regs, &mut shared);

        assert!(
            ERRNOS.contains(&o.status),
            "{regs:x?} -> {o:?}: unknown status"
        );
        if o.status != 0 && !is_cpuid {
            assert_eq!(o.out, [0; 4], "{regs:x?} failed but leaked outputs");
        }
        if o.status == 0 && rax == HC_CREATE_VM {
            vms.push(o.out[0]);
        }
        if o.status == 0 && rax == HC_CREATE_VCPU {
            vcpus.push(o.out[0]);
        }
        if !(HC_CREATE_VM..=HC_GET_SUPPORTED_CPUID).contains(&rax) {
            pv_calls += 1;
        }
        for &v in &vcpus {
            if let Some(p) = h.phase(VcpuHandle(v)) {
                if let Some(&before) = phases.get(&v) {
                    assert!(
                        p >= before,
                        "vCPU {v:#x} went back from {before:?} to {p:?}"
                    );
                }
                phases.insert(v, p);
            }
        }
    }

    let mut counted = 0;
    for slot in std::iter::once(None).chain(PvCall::ALL.into_iter().map(Some)) {
        for e in Effect::ALL {
            counted += h.audit().counter(slot, e);
        }
    }
    assert_eq!(
        counted, pv_calls,
        "PV-range hypercalls counted {counted} times, made {pv_calls}"
    );
});
