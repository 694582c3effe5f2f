//! Real parts: hyp's decisions taken into a real KVM vCPU.
//!
//! A host (playing crosvm) proposes a CPUID table and MSR values for a
//! protected vCPU through hyp's hypercall ABI, under the image's policy
//! (`pvgate::POLICY`, `policy/default.toml`: CPUID violations `filter`).
//! hyp's effective CPUID table and its MSR store are then loaded into a real
//! KVM vCPU (`KVM_SET_CPUID2`, `KVM_SET_MSRS`), and a tiny real-mode guest
//! reports what it sees: CPUID leaves 1 and 7, RDMSR IA32_MISC_ENABLE and
//! RDMSR IA32_LSTAR. A control run loads the host's unfiltered proposal
//! instead, to show that the forbidden edits would have reached the guest
//! without hyp.
//!
//! Skips, saying so on stderr (`SKIPPED kvm: …`, visible without
//! `--nocapture`), when `/dev/kvm` cannot be opened (absent, not root).
//! `PVGATE_REQUIRE_KVM=1` turns the skip into a failure, for machines that
//! must run it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

#[cfg(not(target_arch = "x86_64"))]
#[test]
fn hyp_decisions_reach_a_real_kvm_guest() {
    real::skip("not an x86_64 host");
}

#[cfg(not(target_arch = "x86_64"))]
mod real {
    pub fn skip(reason: &str) {
        use std::io::Write;
        assert!(
            std::env::var_os("PVGATE_REQUIRE_KVM").is_none(),
            "PVGATE_REQUIRE_KVM is set but KVM is unusable: {reason}"
        );
        let _ = writeln!(std::io::stderr(), "SKIPPED kvm: {reason}");
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn hyp_decisions_reach_a_real_kvm_guest() {
    real::hyp_decisions_reach_a_real_kvm_guest();
}

#[cfg(target_arch = "x86_64")]
mod real {
    use std::collections::BTreeMap;
    use std::io::Write;
    use std::time::Instant;

    use kvm_bindings::{
        CpuId, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, KVM_MAX_CPUID_ENTRIES, Msrs, kvm_cpuid_entry2,
        kvm_msr_entry, kvm_userspace_memory_region,
    };
    use kvm_ioctls::{Kvm, VcpuExit};
    use pvgate_gate::{Phase, PvCall};
    use pvgate_hyp::abi::{HC_AUDIT_COUNT, HC_CREATE_VCPU, HC_CREATE_VM, PVMFW_NONE};
    use pvgate_hyp::cpu::{NativeReader, find_entry};
    use pvgate_hyp::error::EPERM;
    use pvgate_hyp::{
        CpuModel, CpuidEntry, Effect, Hyp, HypConfig, HypercallOut, HypercallRegs,
        MAX_CPUID_ENTRIES, VcpuHandle,
    };

    /// Prints the skip where it is seen without `--nocapture` (libtest
    /// captures `eprintln!`, not a direct write to stderr).
    pub fn skip(reason: &str) {
        assert!(
            std::env::var_os("PVGATE_REQUIRE_KVM").is_none(),
            "PVGATE_REQUIRE_KVM is set but KVM is unusable: {reason}"
        );
        let _ = writeln!(std::io::stderr(), "SKIPPED kvm: {reason}");
    }

    // CPUID bits the test looks at.
    /// CPUID.1:ECX.VMX: forced off by the policy (no nested virtualization).
    const VMX: u32 = 1 << 5;
    /// CPUID.1:ECX.CX16: fixed by the policy (the base value is kept).
    const CX16: u32 = 1 << 13;
    /// CPUID.1:ECX.X2APIC: forced on by the policy.
    const X2APIC: u32 = 1 << 21;
    /// CPUID.1:ECX.TSC_DEADLINE: the host's to set.
    const TSC_DEADLINE: u32 = 1 << 24;
    /// CPUID.1:ECX.HYPERVISOR: the host's to set.
    const HYPERVISOR: u32 = 1 << 31;
    /// CPUID.7.0:EBX.SMEP: fixed (leaf 7 has no rule; a security feature the
    /// baseline invariant forbids the host to control).
    const SMEP: u32 = 1 << 7;

    // MSRs.
    const MISC_ENABLE: u32 = 0x1a0;
    const MTRR_PHYSBASE0: u32 = 0x200;
    const MTRR_DEF_TYPE: u32 = 0x2ff;
    const FLUSH_CMD: u32 = 0x10b;
    const LSTAR: u32 = 0xc000_0082;
    const TSC_AUX: u32 = 0xc000_0103;
    /// What crosvm-like hosts write to LSTAR in setup (the default policy
    /// ignores it: success, nothing stored).
    const HOST_LSTAR: u64 = 0xffff_ffff_8100_0000;

    /// Where the guest is loaded and starts (CS.base 0, IP 0x1000).
    const GUEST_GPA: u64 = 0x1000;
    const PAGE: usize = 0x1000;

    // Report ports: each `out %eax,%dx` of the guest lands on one of them.
    const PORT_LEAF1: u16 = 0x10; // ..=0x13: EAX, EBX, ECX, EDX
    const PORT_LEAF7: u16 = 0x20; // ..=0x23
    const PORT_MISC_ENABLE: u16 = 0x30; // 0x30 low half, 0x31 high half
    const PORT_LSTAR: u16 = 0x40; // 0x40 low, 0x41 high

    /// The guest: 16-bit real mode, hand-assembled (no assembler at test
    /// time). `66` is the operand-size prefix that makes an instruction
    /// 32-bit in 16-bit code. OUT takes its port in DX, so EDX is saved in
    /// EDI after CPUID/RDMSR.
    #[rustfmt::skip]
    const GUEST: &[u8] = &[
        // CPUID.(EAX=1,ECX=0) -> ports 0x10..=0x13
        0x66, 0xb8, 0x01, 0x00, 0x00, 0x00, // mov  eax, 1
        0x66, 0x31, 0xc9,                   // xor  ecx, ecx
        0x0f, 0xa2,                         // cpuid
        0x66, 0x89, 0xd7,                   // mov  edi, edx
        0xba, 0x10, 0x00,                   // mov  dx, 0x10
        0x66, 0xef,                         // out  dx, eax      ; 0x10: EAX
        0x42,                               // inc  dx
        0x66, 0x89, 0xd8,                   // mov  eax, ebx
        0x66, 0xef,                         // out  dx, eax      ; 0x11: EBX
        0x42,                               // inc  dx
        0x66, 0x89, 0xc8,                   // mov  eax, ecx
        0x66, 0xef,                         // out  dx, eax      ; 0x12: ECX
        0x42,                               // inc  dx
        0x66, 0x89, 0xf8,                   // mov  eax, edi
        0x66, 0xef,                         // out  dx, eax      ; 0x13: EDX
        // CPUID.(EAX=7,ECX=0) -> ports 0x20..=0x23
        0x66, 0xb8, 0x07, 0x00, 0x00, 0x00, // mov  eax, 7
        0x66, 0x31, 0xc9,                   // xor  ecx, ecx
        0x0f, 0xa2,                         // cpuid
        0x66, 0x89, 0xd7,                   // mov  edi, edx
        0xba, 0x20, 0x00,                   // mov  dx, 0x20
        0x66, 0xef,                         // out  dx, eax      ; 0x20: EAX
        0x42,                               // inc  dx
        0x66, 0x89, 0xd8,                   // mov  eax, ebx
        0x66, 0xef,                         // out  dx, eax      ; 0x21: EBX
        0x42,                               // inc  dx
        0x66, 0x89, 0xc8,                   // mov  eax, ecx
        0x66, 0xef,                         // out  dx, eax      ; 0x22: ECX
        0x42,                               // inc  dx
        0x66, 0x89, 0xf8,                   // mov  eax, edi
        0x66, 0xef,                         // out  dx, eax      ; 0x23: EDX
        // RDMSR IA32_MISC_ENABLE -> ports 0x30 (EAX), 0x31 (EDX)
        0x66, 0xb9, 0xa0, 0x01, 0x00, 0x00, // mov  ecx, 0x1a0
        0x0f, 0x32,                         // rdmsr
        0x66, 0x89, 0xd7,                   // mov  edi, edx
        0xba, 0x30, 0x00,                   // mov  dx, 0x30
        0x66, 0xef,                         // out  dx, eax      ; 0x30: bits 31:0
        0x42,                               // inc  dx
        0x66, 0x89, 0xf8,                   // mov  eax, edi
        0x66, 0xef,                         // out  dx, eax      ; 0x31: bits 63:32
        // RDMSR IA32_LSTAR -> ports 0x40 (EAX), 0x41 (EDX)
        0x66, 0xb9, 0x82, 0x00, 0x00, 0xc0, // mov  ecx, 0xc0000082
        0x0f, 0x32,                         // rdmsr
        0x66, 0x89, 0xd7,                   // mov  edi, edx
        0xba, 0x40, 0x00,                   // mov  dx, 0x40
        0x66, 0xef,                         // out  dx, eax      ; 0x40: bits 31:0
        0x42,                               // inc  dx
        0x66, 0x89, 0xf8,                   // mov  eax, edi
        0x66, 0xef,                         // out  dx, eax      ; 0x41: bits 63:32
        0xf4,                               // hlt
    ];

    /// What the guest reported, and what KVM says it was given.
    struct KvmRun {
        /// Port -> the 32-bit value written to it.
        ports: BTreeMap<u16, u32>,
        /// KVM_GET_CPUID2 after the run: KVM's effective table.
        cpuid: Vec<kvm_cpuid_entry2>,
        /// KVM_GET_MSRS of the MSRs loaded, before the run.
        msrs: BTreeMap<u32, u64>,
        /// VM exits until HLT.
        exits: usize,
    }

    impl KvmRun {
        fn port(&self, port: u16) -> u32 {
            *self
                .ports
                .get(&port)
                .unwrap_or_else(|| panic!("the guest reported nothing on port {port:#x}"))
        }

        fn leaf(&self, first_port: u16) -> [u32; 4] {
            [0, 1, 2, 3].map(|i| self.port(first_port + i))
        }

        fn msr(&self, low_port: u16) -> u64 {
            u64::from(self.port(low_port + 1)) << 32 | u64::from(self.port(low_port))
        }

        fn kvm_entry(&self, leaf: u32, subleaf: u32) -> kvm_cpuid_entry2 {
            *self
                .cpuid
                .iter()
                .find(|e| e.function == leaf && e.index == subleaf)
                .unwrap_or_else(|| panic!("KVM_GET_CPUID2 has no leaf {leaf:#x}.{subleaf}"))
        }
    }

    /// One anonymous page, unmapped on drop.
    struct Page(*mut libc::c_void);

    impl Page {
        fn new(code: &[u8]) -> Page {
            assert!(code.len() <= PAGE);
            // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    PAGE,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_ANONYMOUS | libc::MAP_PRIVATE | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED, "mmap of the guest page failed");
            // SAFETY: `p` is a writable mapping of PAGE >= code.len() bytes.
            unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), p.cast::<u8>(), code.len()) };
            Page(p)
        }
    }

    impl Drop for Page {
        fn drop(&mut self) {
            // SAFETY: `self.0` is the mapping made in `new`, unmapped once;
            // the VM using it is dropped before the page (declared after it).
            unsafe { libc::munmap(self.0, PAGE) };
        }
    }

    /// Creates a VM and one vCPU, loads `cpuid` and `msrs` into it, runs
    /// [`GUEST`] to HLT and collects its reports.
    fn run_guest(kvm: &Kvm, cpuid: &[kvm_cpuid_entry2], msrs: &[(u32, u64)]) -> KvmRun {
        let page = Page::new(GUEST);
        let vm = kvm.create_vm().expect("KVM_CREATE_VM");
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: GUEST_GPA,
            memory_size: PAGE as u64,
            userspace_addr: page.0 as u64,
        };
        // SAFETY: the page outlives the VM (`vm` is dropped at the end of
        // this function, `page` after it: locals drop in reverse order).
        unsafe { vm.set_user_memory_region(region) }.expect("KVM_SET_USER_MEMORY_REGION");
        let mut vcpu = vm.create_vcpu(0).expect("KVM_CREATE_VCPU");

        let table = CpuId::from_entries(cpuid).expect("CPUID table fits KVM_MAX_CPUID_ENTRIES");
        vcpu.set_cpuid2(&table).expect("KVM_SET_CPUID2");

        let entries: Vec<kvm_msr_entry> = msrs
            .iter()
            .map(|&(index, data)| kvm_msr_entry {
                index,
                data,
                ..Default::default()
            })
            .collect();
        // KVM_SET_MSRS returns how many entries it took and stops at the
        // first it refuses: every one must be taken.
        let n = vcpu
            .set_msrs(&Msrs::from_entries(&entries).unwrap())
            .expect("KVM_SET_MSRS");
        assert_eq!(
            n,
            entries.len(),
            "KVM_SET_MSRS refused {:#x?}",
            entries.get(n)
        );
        let mut readback = Msrs::from_entries(&entries).unwrap();
        let n = vcpu.get_msrs(&mut readback).expect("KVM_GET_MSRS");
        assert_eq!(n, entries.len(), "KVM_GET_MSRS stopped at {n}");
        let msrs = readback
            .as_slice()
            .iter()
            .map(|e| (e.index, e.data))
            .collect();

        // Real mode at GUEST_GPA: CS.base 0 (reset has 0xffff0000), IP 0x1000.
        let mut sregs = vcpu.get_sregs().expect("KVM_GET_SREGS");
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        vcpu.set_sregs(&sregs).expect("KVM_SET_SREGS");
        let mut regs = vcpu.get_regs().expect("KVM_GET_REGS");
        regs.rip = GUEST_GPA;
        regs.rflags = 2;
        vcpu.set_regs(&regs).expect("KVM_SET_REGS");

        let mut ports = BTreeMap::new();
        let mut exits = 0;
        loop {
            exits += 1;
            assert!(exits < 64, "the guest did not reach HLT");
            match vcpu.run().expect("KVM_RUN") {
                VcpuExit::IoOut(port, data) => {
                    let word: [u8; 4] = data.try_into().expect("a 32-bit OUT");
                    ports.insert(port, u32::from_le_bytes(word));
                }
                VcpuExit::Hlt => break,
                other => panic!("unexpected exit {other:?} after {exits} exits"),
            }
        }
        let cpuid = vcpu
            .get_cpuid2(KVM_MAX_CPUID_ENTRIES)
            .expect("KVM_GET_CPUID2")
            .as_slice()
            .to_vec();
        KvmRun {
            ports,
            cpuid,
            msrs,
            exits,
        }
    }

    /// hyp's CPUID entries as KVM entries. The flags (does the subleaf
    /// matter) come from KVM's supported table for the same leaf.
    fn to_kvm(table: &[CpuidEntry], supported: &[kvm_cpuid_entry2]) -> Vec<kvm_cpuid_entry2> {
        table
            .iter()
            .map(|e| {
                let flags = supported
                    .iter()
                    .find(|s| s.function == e.leaf)
                    .map_or(0, |s| s.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
                kvm_cpuid_entry2 {
                    function: e.leaf,
                    index: e.subleaf,
                    flags: if e.subleaf != 0 {
                        KVM_CPUID_FLAG_SIGNIFCANT_INDEX
                    } else {
                        flags
                    },
                    eax: e.eax,
                    ebx: e.ebx,
                    ecx: e.ecx,
                    edx: e.edx,
                    ..Default::default()
                }
            })
            .collect()
    }

    fn entry(table: &[CpuidEntry], leaf: u32, subleaf: u32) -> CpuidEntry {
        *find_entry(table, leaf, subleaf)
            .unwrap_or_else(|| panic!("no CPUID leaf {leaf:#x}.{subleaf}"))
    }

    /// `value` with `bit` set to the opposite of its value in `base`.
    fn against_base(value: u32, base: u32, bit: u32) -> u32 {
        if base & bit != 0 {
            value & !bit
        } else {
            value | bit
        }
    }

    /// Whether `bit` is set; for messages and comparisons.
    fn has(value: u32, bit: u32) -> bool {
        value & bit != 0
    }

    /// XSAVE component 18 (AMX tile data), the one dynamic XSAVE feature.
    const XTILEDATA: u32 = 1 << 18;

    /// `arch_prctl(ARCH_REQ_XCOMP_GUEST_PERM, XFEATURE_XTILEDATA)`: lets
    /// this process's KVM guests have AMX state.
    fn request_guest_amx() {
        const ARCH_REQ_XCOMP_GUEST_PERM: libc::c_long = 0x1025;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: arch_prctl with two integer arguments touches no memory.
        let r = unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_GUEST_PERM,
                XFEATURE_XTILEDATA,
            )
        };
        assert_eq!(
            r,
            0,
            "ARCH_REQ_XCOMP_GUEST_PERM(XTILEDATA): {}; without it KVM refuses the host CPU's CPUID",
            std::io::Error::last_os_error()
        );
    }

    type TestHyp = Hyp<pvgate::CompiledPolicy, 1, 1>;

    fn hc(hyp: &TestHyp, rax: u64, rbx: u64, rcx: u64, rdx: u64) -> HypercallOut {
        let regs = HypercallRegs {
            rax,
            rbx,
            rcx,
            rdx,
            ..Default::default()
        };
        hyp.hypercall(&regs, &mut [])
    }

    fn set_msr(hyp: &TestHyp, vcpu: VcpuHandle, index: u32, value: u64) -> i64 {
        hc(
            hyp,
            PvCall::SetMsr.number(),
            vcpu.0,
            u64::from(index),
            value,
        )
        .status
    }

    pub fn hyp_decisions_reach_a_real_kvm_guest() {
        let started = Instant::now();
        let kvm = match Kvm::new() {
            Ok(kvm) => kvm,
            Err(e) => return skip(&format!("cannot open /dev/kvm: {e}")),
        };
        let supported = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .expect("KVM_GET_SUPPORTED_CPUID")
            .as_slice()
            .to_vec();

        // hyp's base is the CPU this test runs on, read with raw-cpuid (the
        // `host` model of `pvgate replay` and PVGATE_CPU_HOST of the image):
        // what a pKVM-style hypervisor does, reading the CPU below it. The
        // host's proposal, like crosvm's, starts from KVM_GET_SUPPORTED_CPUID.
        // Not the supported table as base: on this kind of host (kvm_pvm,
        // a software KVM) it understates what the guest really gets (leaf 7
        // comes from the host CPU whatever KVM_SET_CPUID2 says; leaf 1 ECX
        // gains host bits), so a base built from it would disagree with the
        // guest for reasons outside pvgate. Where the proposal differs from
        // the base in bits the policy does not give the host, `filter` keeps
        // the base: here many registers, as KVM's table is not the CPU's.
        let cpu = CpuModel::from_reader(NativeReader, 0).expect("the host CPU model");
        // The host CPU may have AMX: KVM_SET_CPUID2 refuses (EPERM) a table
        // offering XTILEDATA (CPUID.(EAX=0xD,ECX=0):EAX bit 18, a dynamic
        // XSAVE feature) unless the process asked for it before creating the
        // vCPU, as QEMU does.
        if cpu.base_entry(0xd, 0).eax & XTILEDATA != 0 {
            request_guest_amx();
        }
        let base1 = cpu.base_entry(1, 0);
        let base7 = cpu.base_entry(7, 0);
        let hyp: Box<TestHyp> = Box::new(Hyp::with_cpu(pvgate::POLICY, cpu, HypConfig::DEFAULT));

        // 2. A protected VM and its vCPU, through the management hypercalls.
        let vm = hc(&hyp, HC_CREATE_VM, 0, 0, 0);
        assert_eq!(vm.status, 0, "create_vm");
        let vcpu = hc(&hyp, HC_CREATE_VCPU, vm.out[0], 0, 0);
        assert_eq!(vcpu.status, 0, "create_vcpu");
        let vcpu = VcpuHandle(vcpu.out[0]);

        // The host's proposal: KVM's supported table with crosvm's edits ...
        let mut proposal: Vec<CpuidEntry> = supported
            .iter()
            .map(|e| CpuidEntry {
                leaf: e.function,
                subleaf: e.index,
                eax: e.eax,
                ebx: e.ebx,
                ecx: e.ecx,
                edx: e.edx,
            })
            .collect();
        let mut host1 = entry(&proposal, 1, 0);
        let mut host7 = entry(&proposal, 7, 0);
        host1.ecx |= HYPERVISOR | X2APIC | TSC_DEADLINE;
        host1.ebx = 0x800; // APIC ID 0 << 24 | CLFLUSH 8 (x 8 bytes) << 8
        // ... and forbidden edits: VMX on (the policy forces it off), CX16
        // and SMEP the other way from the base (fixed bits: the base stays).
        host1.ecx |= VMX;
        host1.ecx = against_base(host1.ecx, base1.ecx, CX16);
        host7.ebx = against_base(host7.ebx, base7.ebx, SMEP);
        for e in &mut proposal {
            if e.is(1, 0) {
                *e = host1;
            } else if e.is(7, 0) {
                *e = host7;
            }
        }

        // 3. vcpu_after_set_cpuid through the ABI: the shared buffer carries
        // the proposal in and the effective table out.
        let mut shared = vec![CpuidEntry::default(); MAX_CPUID_ENTRIES];
        shared[..proposal.len()].copy_from_slice(&proposal);
        let regs = HypercallRegs {
            rax: PvCall::VcpuAfterSetCpuid.number(),
            rbx: vcpu.0,
            rcx: proposal.len() as u64,
            ..Default::default()
        };
        let out = hyp.hypercall(&regs, &mut shared);
        assert_eq!(out.status, 0, "filter mode accepts the table: {out:?}");
        let effective = shared[..out.out[0] as usize].to_vec();
        let replaced = out.out[1];
        assert!(
            replaced >= 2,
            "at least 1:ECX and 7:EBX were replaced: {out:?}"
        );
        let filters = hc(
            &hyp,
            HC_AUDIT_COUNT,
            PvCall::VcpuAfterSetCpuid.number(),
            Effect::Filter as u64,
            0,
        );
        assert_eq!(filters.out[0], 1, "the filter is audited");
        assert_eq!(
            hyp.inspect(vcpu, |v| v.cpuid.to_vec()),
            Some(effective.clone()),
            "the buffer holds the table hyp installed"
        );
        let eff1 = entry(&effective, 1, 0);
        let eff7 = entry(&effective, 7, 0);
        assert!(has(eff1.ecx, X2APIC), "X2APIC forced on");
        assert!(!has(eff1.ecx, VMX), "VMX forced off");
        assert_eq!(has(eff1.ecx, CX16), has(base1.ecx, CX16), "CX16 is fixed");
        assert_eq!(has(eff7.ebx, SMEP), has(base7.ebx, SMEP), "SMEP is fixed");
        assert_ne!(has(eff7.ebx, SMEP), has(host7.ebx, SMEP));
        assert!(has(eff1.ecx, HYPERVISOR) && has(eff1.ecx, TSC_DEADLINE));
        assert_eq!(eff1.ebx, 0x800 | (base1.ebx & 0xff), "host's EBX[31:8]");

        // 4. MSRs through the ABI.
        assert_eq!(set_msr(&hyp, vcpu, MISC_ENABLE, 1), 0);
        let misc = hc(
            &hyp,
            PvCall::GetMsr.number(),
            vcpu.0,
            u64::from(MISC_ENABLE),
            0,
        );
        assert_eq!(
            (misc.status, misc.out[0]),
            (0, 0x1801),
            "forced BTS/PEBS_UNAVAIL"
        );
        assert_eq!(set_msr(&hyp, vcpu, MTRR_DEF_TYPE, 0x806), 0);
        assert_eq!(set_msr(&hyp, vcpu, MTRR_PHYSBASE0, 0x6), 0);
        assert_eq!(set_msr(&hyp, vcpu, TSC_AUX, 0x1234), -EPERM, "default deny");
        assert_eq!(set_msr(&hyp, vcpu, FLUSH_CMD, 1), -EPERM, "command MSR");
        assert_eq!(
            set_msr(&hyp, vcpu, LSTAR, HOST_LSTAR),
            0,
            "ignored: success"
        );

        // The first run seals the state (and applies forced MSR bits); a
        // protected vCPU runs only once its VM is finalized.
        assert_eq!(
            hc(&hyp, PvCall::VcpuRun.number(), vcpu.0, 0, 0).status,
            -EPERM,
            "not runnable before vm_finalize"
        );
        let fin = hc(&hyp, PvCall::VmFinalize.number(), vm.out[0], PVMFW_NONE, 0);
        assert_eq!(fin.status, 0, "vm_finalize");
        assert_eq!(hc(&hyp, PvCall::VcpuRun.number(), vcpu.0, 0, 0).status, 0);
        assert_eq!(hyp.phase(vcpu), Some(Phase::Running));
        assert_eq!(set_msr(&hyp, vcpu, MISC_ENABLE, 1), -EPERM, "sealed");

        // What hyp hands to the vCPU: its effective CPUID and its MSR store
        // (`inspect`: the hypervisor's own view; the host ABI has no getter
        // after the first run, by design).
        let (cpuid, msrs) = hyp
            .inspect(vcpu, |v| (v.cpuid.to_vec(), v.msrs.to_vec()))
            .expect("live vCPU");
        assert_eq!(cpuid, effective);
        let stored: BTreeMap<u32, u64> = msrs.iter().copied().collect();
        assert_eq!(stored.get(&MISC_ENABLE), Some(&0x1801));
        assert_eq!(stored.get(&MTRR_DEF_TYPE), Some(&0x806));
        assert_eq!(stored.get(&MTRR_PHYSBASE0), Some(&0x6));
        for index in [TSC_AUX, FLUSH_CMD, LSTAR] {
            assert!(
                !stored.contains_key(&index),
                "{index:#x} must not be stored"
            );
        }
        let hyp_done = started.elapsed();

        // Control: the host's proposal and MSR writes straight into KVM.
        let control = run_guest(
            &kvm,
            &to_kvm(&proposal, &supported),
            &[(MISC_ENABLE, 1), (LSTAR, HOST_LSTAR)],
        );
        // 5. hyp's decisions into KVM.
        let real = run_guest(&kvm, &to_kvm(&effective, &supported), &msrs);
        let elapsed = started.elapsed();

        let [_, g1_ebx, g1_ecx, _] = real.leaf(PORT_LEAF1);
        let g7_ebx = real.leaf(PORT_LEAF7)[1];
        let k1 = real.kvm_entry(1, 0);
        let k7 = real.kvm_entry(7, 0);
        let c1_ecx = control.leaf(PORT_LEAF1)[2];
        let c7_ebx = control.leaf(PORT_LEAF7)[1];

        eprintln!(
            "kvm: hyp replaced {replaced} CPUID registers (first {:#x}.{}); {} entries to KVM, {} MSRs",
            out.out[2] >> 32,
            out.out[2] & 0xffff_ffff,
            effective.len(),
            msrs.len()
        );
        eprintln!(
            "kvm: leaf 1 ECX base {:#010x} host {:#010x} hyp {:#010x} KVM {:#010x} guest {g1_ecx:#010x} (control guest {c1_ecx:#010x})",
            base1.ecx, host1.ecx, eff1.ecx, k1.ecx
        );
        eprintln!(
            "kvm: leaf 7 EBX base {:#010x} host {:#010x} hyp {:#010x} KVM {:#010x} guest {g7_ebx:#010x} (control guest {c7_ebx:#010x})",
            base7.ebx, host7.ebx, eff7.ebx, k7.ebx
        );
        eprintln!(
            "kvm: MISC_ENABLE hyp {:#x} KVM {:#x} guest {:#x} (control {:#x}); LSTAR host {HOST_LSTAR:#x} guest {:#x} (control {:#x})",
            stored[&MISC_ENABLE],
            real.msrs[&MISC_ENABLE],
            real.msr(PORT_MISC_ENABLE),
            control.msr(PORT_MISC_ENABLE),
            real.msr(PORT_LSTAR),
            control.msr(PORT_LSTAR)
        );
        eprintln!(
            "kvm: {} + {} exits to HLT; hyp {hyp_done:?}, total {elapsed:?}",
            control.exits, real.exits
        );

        // The control shows the forbidden edits matter: without hyp, at
        // least one reaches the guest (on kvm_pvm, VMX and CX16 do; leaf 7
        // is taken from the host CPU whatever userspace sets).
        let leaked = [
            ("VMX", has(c1_ecx, VMX) != has(base1.ecx, VMX)),
            ("CX16", has(c1_ecx, CX16) != has(base1.ecx, CX16)),
            ("SMEP", has(c7_ebx, SMEP) != has(base7.ebx, SMEP)),
        ];
        eprintln!("kvm: forbidden edits seen by the control guest: {leaked:?}");
        assert!(
            leaked.iter().any(|(_, seen)| *seen),
            "no forbidden edit reaches an unprotected guest on this KVM: the test shows nothing"
        );
        assert_eq!(
            control.msr(PORT_LSTAR),
            HOST_LSTAR,
            "KVM honours LSTAR: hyp's ignore is what keeps it out"
        );

        // 6. The guest sees what the policy allowed. Only the bits the policy
        // decides are compared with hyp; KVM_GET_CPUID2 is the ground truth
        // for what KVM made of the table, and the guest must agree with it.
        for (name, bit) in [
            ("X2APIC", X2APIC),
            ("VMX", VMX),
            ("CX16", CX16),
            ("HYPERVISOR", HYPERVISOR),
            ("TSC_DEADLINE", TSC_DEADLINE),
        ] {
            assert_eq!(has(k1.ecx, bit), has(eff1.ecx, bit), "KVM's 1:ECX.{name}");
            assert_eq!(has(g1_ecx, bit), has(eff1.ecx, bit), "guest 1:ECX.{name}");
        }
        assert!(has(g1_ecx, X2APIC) && !has(g1_ecx, VMX) && has(g1_ecx, HYPERVISOR));
        assert_eq!(g1_ebx, eff1.ebx, "guest 1:EBX (CLFLUSH size, APIC ID)");
        assert_eq!(has(k7.ebx, SMEP), has(base7.ebx, SMEP), "KVM's 7:EBX.SMEP");
        assert_eq!(
            has(g7_ebx, SMEP),
            has(base7.ebx, SMEP),
            "guest 7:EBX.SMEP is the base's, not the host's"
        );

        // MSRs: KVM took every stored value as is, and the guest reads them.
        for (index, value) in &msrs {
            assert_eq!(real.msrs.get(index), Some(value), "KVM's {index:#x}");
        }
        assert_eq!(real.msr(PORT_MISC_ENABLE), stored[&MISC_ENABLE]);
        assert_eq!(real.msr(PORT_MISC_ENABLE), 0x1801);
        assert_ne!(real.msr(PORT_LSTAR), HOST_LSTAR, "the ignored LSTAR write");
        assert!(elapsed.as_secs() < 2, "took {elapsed:?}");
    }
}
