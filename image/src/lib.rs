//! pvgate-image: the policy-specific hypervisor image as a C-callable
//! `staticlib`: the policy compiled into `pvgate` (its const tables and
//! digest) plus the hypervisor core `pvgate-hyp`, behind the C ABI declared
//! in `include/pvgate.h`.
//!
//! Kept apart from `pvgate` because a `no_std` staticlib needs its own
//! panic handler, which `cargo test` cannot build (tests force unwinding).
//! Build it with `cargo build --release -p pvgate-image` (the release
//! profile aborts on panic); link C with `-Wl,--gc-sections` on
//! x86_64-unknown-linux-gnu (or build for x86_64-unknown-none).
//!
//! With `panic = "abort"` (the release profile, and every build for
//! x86_64-unknown-none) the image is `no_std` with its own panic handler.
//! A build with unwinding panics (the workspace's dev profile, as in
//! `cargo build --workspace`) links std instead, because stable Rust cannot
//! unwind without it; the C ABI is the same.
#![cfg_attr(panic = "abort", no_std)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use pvgate::{CompiledPolicy, POLICY, POLICY_DIGEST, POLICY_DIGEST_HEX};
use pvgate_gate::{PvCall, VmKind};
use pvgate_hyp::error::{EFAULT, EINVAL};
use pvgate_hyp::{
    AuditEvent, CpuDump, CpuModel, CpuidEntry, Effect, Hyp, HypConfig, HypercallOut, HypercallRegs,
    VcpuHandle, VmHandle,
};

/// The `reference` CPU model's CPUID dump (Xeon Gold 6252), embedded.
const REFERENCE_CPU_DUMP: &str = include_str!("../../tests/data/cpu/xeon-gold-6252.cpuid");

/// The IA32_MCG_CAP offered with the host CPU model (MSRs are not read
/// here; see `tests/data/cpu/xeon-gold-6252.cpuid`).
const HOST_MCG_CAP: u64 = 0x0f00_0c14;

/// The image's hypervisor: 8 VMs of 8 vCPUs, over the compiled policy.
static HYP: Hyp<CompiledPolicy, 8, 8> = Hyp::new(POLICY, HypConfig::DEFAULT);

/// `pvgate_init` model number: the recorded reference CPU.
pub const PVGATE_CPU_REFERENCE: u32 = 0;
/// `pvgate_init` model number: the CPU this runs on (CPUID instruction).
pub const PVGATE_CPU_HOST: u32 = 1;

#[cfg(panic = "abort")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // hyp and gate are written not to panic (clippy denies unwrap, expect,
    // panic and indexing there); should one happen anyway, stop here rather
    // than unwind into C.
    loop {
        core::hint::spin_loop();
    }
}

fn model(which: u32) -> Option<CpuModel> {
    match which {
        PVGATE_CPU_REFERENCE => {
            let dump = CpuDump::parse(REFERENCE_CPU_DUMP).ok()?;
            CpuModel::from_dump(&dump).ok()
        }
        #[cfg(target_arch = "x86_64")]
        PVGATE_CPU_HOST => CpuModel::from_reader(pvgate_hyp::cpu::NativeReader, HOST_MCG_CAP).ok(),
        _ => None,
    }
}

/// Installs the CPU model (`PVGATE_CPU_REFERENCE` or `PVGATE_CPU_HOST`).
/// Returns 0, `-EINVAL` for an unknown model, `-EBUSY` if one is installed.
#[unsafe(no_mangle)]
pub extern "C" fn pvgate_init(cpu_model: u32) -> i64 {
    match model(cpu_model).map(|m| HYP.install_cpu_model(m)) {
        None => -EINVAL,
        Some(true) => 0,
        Some(false) => -pvgate_hyp::error::EBUSY,
    }
}

/// Creates a VM (`kind` 0 protected, 1 normal) and stores its handle.
///
/// # Safety
/// `handle` must be null or valid for one `u64` write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pvgate_create_vm(kind: u32, handle: *mut u64) -> i64 {
    let Some(kind) = VmKind::from_u64(u64::from(kind)) else {
        return -EINVAL;
    };
    match HYP.create_vm(kind) {
        Ok(h) => {
            // SAFETY: the caller passes null or a pointer valid for a write.
            match unsafe { handle.as_mut() } {
                Some(slot) => {
                    *slot = h.0;
                    0
                }
                None => -EFAULT,
            }
        }
        Err(e) => -e.errno(),
    }
}

/// Creates a vCPU in a VM and stores its handle.
///
/// # Safety
/// `handle` must be null or valid for one `u64` write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pvgate_create_vcpu(vm: u64, handle: *mut u64) -> i64 {
    match HYP.create_vcpu(VmHandle(vm)) {
        Ok(h) => {
            // SAFETY: the caller passes null or a pointer valid for a write.
            match unsafe { handle.as_mut() } {
                Some(slot) => {
                    *slot = h.0;
                    0
                }
                None => -EFAULT,
            }
        }
        Err(e) => -e.errno(),
    }
}

/// Releases a torn-down vCPU (`-EBUSY` before `vm_destroy`).
#[unsafe(no_mangle)]
pub extern "C" fn pvgate_destroy_vcpu(vcpu: u64) -> i64 {
    match HYP.destroy_vcpu(VcpuHandle(vcpu)) {
        Ok(()) => 0,
        Err(e) => -e.errno(),
    }
}

/// Destroys a VM: the PV call `vm_destroy` (decided by the policy; every
/// vCPU moves to teardown), then releases its slot.
#[unsafe(no_mangle)]
pub extern "C" fn pvgate_destroy_vm(vm: u64) -> i64 {
    let o = HYP.vm_destroy(VmHandle(vm));
    if !o.ok() {
        return o.status();
    }
    match HYP.free_vm(VmHandle(vm)) {
        Ok(()) => 0,
        Err(e) => -e.errno(),
    }
}

/// The hypercall entry (see `docs/hypervisor.md`). `shared` is the host's
/// CPUID buffer of `nshared` entries (may be null when `nshared` is 0).
/// Returns the status, which is also stored in `out->status`.
///
/// # Safety
/// `regs` must be valid for a read and `out` for a write (or be null:
/// `-EFAULT`); `shared` must be valid for `nshared` entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pvgate_hypercall(
    regs: *const HypercallRegs,
    out: *mut HypercallOut,
    shared: *mut CpuidEntry,
    nshared: usize,
) -> i64 {
    // SAFETY: the caller passes null or a pointer valid for a read.
    let Some(regs) = (unsafe { regs.as_ref() }) else {
        return -EFAULT;
    };
    // SAFETY: the caller passes null or a pointer valid for a write.
    let Some(out) = (unsafe { out.as_mut() }) else {
        return -EFAULT;
    };
    let buffer: &mut [CpuidEntry] = if shared.is_null() || nshared == 0 {
        &mut []
    } else {
        // SAFETY: the caller guarantees `nshared` valid, exclusive entries.
        unsafe { core::slice::from_raw_parts_mut(shared, nshared) }
    };
    *out = HYP.hypercall(regs, buffer);
    out.status
}

/// The audit counter of (PV call number, effect number); 0 for numbers
/// out of range. Call 0 counts unknown call numbers.
#[unsafe(no_mangle)]
pub extern "C" fn pvgate_audit_count(call: u32, effect: u32) -> u64 {
    let call = match call {
        0 => None,
        n => match PvCall::from_number(u64::from(n)) {
            Some(c) => Some(c),
            None => return 0,
        },
    };
    match Effect::from_u64(u64::from(effect)) {
        Some(e) => HYP.audit().counter(call, e),
        None => 0,
    }
}

/// One recorded audit event, as C sees it.
#[repr(C)]
pub struct PvgateAuditEvent {
    /// Sequence number (1 = first ever).
    pub seq: u64,
    /// The PV call number.
    pub call: u32,
    /// The effect number (1 deny, 2 ignore, 3 filter).
    pub effect: u32,
    /// The vCPU (or VM) handle.
    pub handle: u64,
    /// The resource, encoded as in `docs/hypervisor.md`.
    pub resource: u64,
    /// The deciding rule's id, or -1 for default deny.
    pub rule: i32,
}

/// Copies the `back`-th most recent audit event (0 = newest) to `out`;
/// `-EINVAL` if there is none, `-EFAULT` for a null `out`.
///
/// # Safety
/// `out` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pvgate_audit_event(back: u64, out: *mut PvgateAuditEvent) -> i64 {
    let Some(ev): Option<AuditEvent> = HYP.audit().recent(back) else {
        return -EINVAL;
    };
    // SAFETY: the caller passes null or a pointer valid for a write.
    let Some(out) = (unsafe { out.as_mut() }) else {
        return -EFAULT;
    };
    *out = PvgateAuditEvent {
        seq: ev.seq,
        call: ev.call as u32,
        effect: ev.effect as u32,
        handle: ev.vcpu,
        resource: ev.resource.encode(),
        rule: ev.rule.map_or(-1, |r| i32::from(r.0)),
    };
    0
}

/// Copies the policy digest (SHA-256 of the canonical IR, 32 bytes) to
/// `out`, and its lowercase hex (64 characters and a NUL) to `hex` unless
/// `hex` is null.
///
/// # Safety
/// `out` must be null or valid for 32 bytes; `hex` null or valid for 65.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pvgate_policy_digest(out: *mut u8, hex: *mut u8) -> i64 {
    if !out.is_null() {
        // SAFETY: the caller guarantees 32 writable bytes at `out`.
        unsafe { core::ptr::copy_nonoverlapping(POLICY_DIGEST.as_ptr(), out, POLICY_DIGEST.len()) };
    }
    if !hex.is_null() {
        let text = POLICY_DIGEST_HEX.as_bytes();
        let n = text.len().min(64);
        // SAFETY: the caller guarantees 65 writable bytes at `hex`; at most
        // 64 are copied, then the NUL goes at index n <= 64.
        unsafe {
            core::ptr::copy_nonoverlapping(text.as_ptr(), hex, n);
            hex.add(n).write(0);
        }
    }
    0
}
