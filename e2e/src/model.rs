//! hyp's CPU model for the test: the CPU the test runs on (as
//! `hyp/tests/kvm.rs` and the image's `host` model read it), less the
//! features a software KVM cannot run for a guest ([`HIDDEN_LEAF1_ECX`]).
//! The host's proposal hides them too, so every run sees the same CPU
//! apart from what the policy decides.

use pvgate_hyp::CpuModel;
use pvgate_hyp::cpu::NativeReader;
use raw_cpuid::CpuIdReader;

/// CPUID.1:ECX bits hidden from every guest: CX16 (bit 13). On a
/// software KVM (this project's `kvm_pvm` machines) the instruction
/// emulator stops with KVM_EXIT_INTERNAL_ERROR at the guest kernel's first
/// `LOCK CMPXCHG16B` (SLUB); without the bit the kernel uses its fallback.
/// (It also fails at `XRSTOR`, but forces XSAVE on in CPUID whatever the
/// table says, so the kernel command line has `noxsave` instead; see
/// [`crate::boot::CMDLINE`].) A hardware KVM would not need either.
pub const HIDDEN_LEAF1_ECX: u32 = 1 << 13;

/// The CPU model: this CPU with [`HIDDEN_LEAF1_ECX`] cleared.
pub fn cpu_model() -> Option<CpuModel> {
    let reader = |leaf: u32, subleaf: u32| {
        let mut r = NativeReader.cpuid2(leaf, subleaf);
        if leaf == 1 {
            r.ecx &= !HIDDEN_LEAF1_ECX;
        }
        r
    };
    CpuModel::from_reader(reader, 0).ok()
}
