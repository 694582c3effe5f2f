//! Any bytes, as (lossy UTF-8) CPUID dump text, into the CPU model the
//! hypervisor is built with: parsing and building the model return errors,
//! never panic. A model that builds gives a supported CPUID table for each
//! VM kind that a fresh vCPU of that kind accepts unchanged (the
//! `get_supported_cpuid` promise).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pvgate_gate::VmKind;
use pvgate_hyp::{Hyp, HypConfig};
use pvgate_trace::CpuDump;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(dump) = CpuDump::parse(&text) else {
        return;
    };
    let Ok(cpu) = dump.model() else {
        return;
    };
    let h: Box<Hyp<_, 2, 1>> = Box::new(Hyp::with_cpu(pvgate::POLICY, cpu, HypConfig::DEFAULT));
    for kind in VmKind::ALL {
        let vm = h.create_vm(kind).expect("a VM");
        let v = h.create_vcpu(vm).expect("a vCPU");
        let mut table = h.supported_cpuid(kind);
        let supported = table.clone();
        let o = h.vcpu_after_set_cpuid(v, &mut table);
        assert!(o.ok(), "{kind:?}: the supported table was refused: {o:?}");
        assert_eq!(
            table, supported,
            "{kind:?}: the supported table was changed"
        );
    }
});
