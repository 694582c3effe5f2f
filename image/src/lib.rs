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
// The no-panic lints are the workspace's (Cargo.toml). Relaxed here:
// `-e.errno()` negates a small errno constant, until hyp hands out the
// negative status itself (review/tests/lint_config.rs, KNOWN_RELAXED).
#![allow(clippy::arithmetic_side_effects)]

use pvgate::{CompiledPolicy, POLICY, POLICY_DIGEST, POLICY_DIGEST_HEX};
use pvgate_gate::{PvCall, VmKind};
use pvgate_hyp::cpu::MAX_CPUID_ENTRIES;
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

/// An out pointer the image may write one `T` through: non-null and
/// aligned for `T`. Anything else is refused with `-EFAULT` before the
/// call does anything. (That the memory is writable is the caller's part of
/// the contract: no function can check it.)
fn out_ptr<T>(p: *mut T) -> Result<*mut T, i64> {
    if p.is_null() || !p.is_aligned() {
        return Err(-EFAULT);
    }
    Ok(p)
}

/// An in pointer the image may read one `T` from: non-null and aligned.
fn in_ptr<T>(p: *const T) -> Result<*const T, i64> {
    if p.is_null() || !p.is_aligned() {
        return Err(-EFAULT);
    }
    Ok(p)
}

/// The shared CPUID buffer of `pvgate_hypercall`, checked before any
/// slice is formed: a count above the table capacity is `-EINVAL`; a null
/// pointer with a non-zero count, or a pointer not aligned for
/// `struct pvgate_cpuid_entry`, is `-EFAULT`. A count of 0 is the empty
/// buffer whatever the pointer (it is never dereferenced).
fn shared_buffer(
    shared: *mut CpuidEntry,
    nshared: usize,
) -> Result<Option<(*mut CpuidEntry, usize)>, i64> {
    if nshared > MAX_CPUID_ENTRIES {
        return Err(-EINVAL);
    }
    if nshared == 0 {
        return Ok(None);
    }
    Ok(Some((out_ptr(shared)?, nshared)))
}

/// Creates a VM (`kind` 0 protected, 1 normal) and stores its handle.
/// Nothing is created unless the handle can be stored: a null or
/// misaligned `handle` is `-EFAULT` before anything else.
///
/// # Safety
/// A non-null, aligned `handle` must be valid for one `u64` write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pvgate_create_vm(kind: u32, handle: *mut u64) -> i64 {
    let handle = match out_ptr(handle) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let Some(kind) = VmKind::from_u64(u64::from(kind)) else {
        return -EINVAL;
    };
    match HYP.create_vm(kind) {
        Ok(h) => {
            // SAFETY: `out_ptr` checked that `handle` is non-null and
            // aligned for u64; that it is valid for a write is the caller's
            // contract (pvgate.h). A raw write forms no reference.
            unsafe { handle.write(h.0) };
            0
        }
        Err(e) => -e.errno(),
    }
}

/// Creates a vCPU in a VM and stores its handle. Nothing is created unless
/// the handle can be stored: a null or misaligned `handle` is `-EFAULT`.
///
/// # Safety
/// A non-null, aligned `handle` must be valid for one `u64` write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pvgate_create_vcpu(vm: u64, handle: *mut u64) -> i64 {
    let handle = match out_ptr(handle) {
        Ok(p) => p,
        Err(e) => return e,
    };
    match HYP.create_vcpu(VmHandle(vm)) {
        Ok(h) => {
            // SAFETY: `out_ptr` checked non-null and u64 alignment; validity
            // for a write is the caller's contract (pvgate.h).
            unsafe { handle.write(h.0) };
            0
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
/// Returns the status, which is also stored in `out->status` whenever
/// `out` is usable.
///
/// Checked before anything is read or any slice is formed: `regs` and
/// `out` non-null and aligned (`-EFAULT`); `nshared` at most the CPUID
/// table capacity, 256 (`-EINVAL`); `shared` non-null when `nshared > 0`
/// and aligned for its entry type (`-EFAULT`). `regs` is copied before
/// `shared` is touched and `out` written after, so the three may overlap.
///
/// # Safety
/// A non-null, aligned `regs` must be valid for a read and `out` for a
/// write; a non-null, aligned `shared` must be valid for reads and writes
/// of `nshared` entries and not be accessed by anyone else during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pvgate_hypercall(
    regs: *const HypercallRegs,
    out: *mut HypercallOut,
    shared: *mut CpuidEntry,
    nshared: usize,
) -> i64 {
    let out = match out_ptr(out) {
        Ok(p) => p,
        Err(e) => return e,
    };
    // SAFETY: forwarded from this function's contract (see `checked_call`).
    let result =
        unsafe { checked_call(regs, shared, nshared) }.unwrap_or_else(|status| HypercallOut {
            status,
            out: [0; 4],
        });
    // SAFETY: `out_ptr` checked that `out` is non-null and aligned; validity
    // for a write is the caller's contract. A raw write forms no reference.
    unsafe { out.write(result) };
    result.status
}

/// `pvgate_hypercall` once `out` is known good: checks `regs` and the
/// shared buffer, then makes the call. `Err` is the negated errno.
///
/// # Safety
/// As `pvgate_hypercall` for `regs` and `shared`.
unsafe fn checked_call(
    regs: *const HypercallRegs,
    shared: *mut CpuidEntry,
    nshared: usize,
) -> Result<HypercallOut, i64> {
    let regs = in_ptr(regs)?;
    let buffer = shared_buffer(shared, nshared)?;
    // SAFETY: `in_ptr` checked that `regs` is non-null and aligned; that it
    // is valid for a read is the caller's contract. Read by value: no
    // reference to the caller's memory is kept.
    let regs = unsafe { regs.read() };
    Ok(match buffer {
        None => HYP.hypercall(&regs, &mut []),
        Some((ptr, len)) => {
            // SAFETY: `shared_buffer` checked that `ptr` is non-null and
            // aligned for CpuidEntry and that 0 < len <= 256, so len * 24
            // bytes is far below isize::MAX; validity for reads and writes
            // of `len` entries and exclusive access during the call are the
            // caller's contract (pvgate.h). `regs` was copied above and the
            // caller writes `out` only after this slice is dead, so overlap
            // with either forms no aliasing reference.
            let slice = unsafe { core::slice::from_raw_parts_mut(ptr, len) };
            HYP.hypercall(&regs, slice)
        }
    })
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
/// `-EFAULT` for a null or misaligned `out` (checked first), `-EINVAL` if
/// there is no such event.
///
/// # Safety
/// A non-null, aligned `out` must be valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pvgate_audit_event(back: u64, out: *mut PvgateAuditEvent) -> i64 {
    let out = match out_ptr(out) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let Some(ev): Option<AuditEvent> = HYP.audit().recent(back) else {
        return -EINVAL;
    };
    let event = PvgateAuditEvent {
        seq: ev.seq,
        call: u32::from(ev.call as u16),
        effect: ev.effect as u32,
        handle: ev.vcpu,
        resource: ev.resource.encode(),
        rule: ev.rule.map_or(-1, |r| i32::from(r.0)),
    };
    // SAFETY: `out_ptr` checked that `out` is non-null and aligned; validity
    // for a write is the caller's contract. A raw write forms no reference.
    unsafe { out.write(event) };
    0
}

/// Copies the policy digest (SHA-256 of the canonical IR, 32 bytes) to
/// `out`, and its lowercase hex (64 characters and a NUL) to `hex` unless
/// `hex` is null.
///
/// Both are byte buffers (any alignment); either may be null.
///
/// # Safety
/// A non-null `out` must be valid for 32 byte writes, a non-null `hex` for
/// 65.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pvgate_policy_digest(out: *mut u8, hex: *mut u8) -> i64 {
    if !out.is_null() {
        // SAFETY: `out` is non-null (checked above); u8 needs no alignment;
        // 32 writable bytes at `out` are the caller's contract, and the
        // source is a 32-byte constant, which cannot overlap it.
        unsafe { core::ptr::copy_nonoverlapping(POLICY_DIGEST.as_ptr(), out, POLICY_DIGEST.len()) };
    }
    if !hex.is_null() {
        let text = POLICY_DIGEST_HEX.as_bytes();
        let n = text.len().min(64);
        // SAFETY: `hex` is non-null (checked above); u8 needs no
        // alignment; 65 writable bytes at `hex` are the caller's contract;
        // at most 64 are copied, then the NUL goes at index n <= 64.
        unsafe {
            core::ptr::copy_nonoverlapping(text.as_ptr(), hex, n);
            hex.add(n).write(0);
        }
    }
    0
}

#[cfg(test)]
mod tests {
    //! The pointer checks, called directly. The exported functions share
    //! one static hypervisor, so only calls that create nothing run here;
    //! creation and slot leaks are tested from C (`tests/c_image.rs`).
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn out_pointers_must_be_non_null_and_aligned() {
        let mut word = 0u64;
        let p: *mut u64 = &mut word;
        assert_eq!(out_ptr(p), Ok(p));
        assert_eq!(out_ptr(core::ptr::null_mut::<u64>()), Err(-EFAULT));
        let misaligned = p.cast::<u8>().wrapping_add(1).cast::<u64>();
        assert_eq!(out_ptr(misaligned), Err(-EFAULT));
        assert_eq!(in_ptr(misaligned.cast_const()), Err(-EFAULT));
        assert_eq!(in_ptr(core::ptr::null::<u64>()), Err(-EFAULT));
    }

    #[test]
    fn the_shared_count_is_bounded_before_the_pointer_is_looked_at() {
        let mut table = [CpuidEntry::default(); 4];
        let p = table.as_mut_ptr();
        assert_eq!(shared_buffer(p, 4), Ok(Some((p, 4))));
        assert_eq!(shared_buffer(p, 0), Ok(None));
        assert_eq!(shared_buffer(core::ptr::null_mut(), 0), Ok(None));
        assert_eq!(shared_buffer(core::ptr::null_mut(), 1), Err(-EFAULT));
        assert_eq!(shared_buffer(p, MAX_CPUID_ENTRIES + 1), Err(-EINVAL));
        assert_eq!(shared_buffer(p, usize::MAX), Err(-EINVAL));
        let misaligned = p.cast::<u8>().wrapping_add(2).cast::<CpuidEntry>();
        assert_eq!(shared_buffer(misaligned, 1), Err(-EFAULT));
        // The largest count accepted fits isize::MAX bytes by far.
        assert!(MAX_CPUID_ENTRIES * core::mem::size_of::<CpuidEntry>() < isize::MAX as usize);
    }

    #[test]
    fn bad_pointers_create_nothing_and_store_their_status() {
        // SAFETY: every pointer passed is null, misaligned or a local.
        unsafe {
            assert_eq!(pvgate_create_vm(0, core::ptr::null_mut()), -EFAULT);
            assert_eq!(pvgate_create_vcpu(1, core::ptr::null_mut()), -EFAULT);
            let regs = HypercallRegs::default();
            let mut out = HypercallOut::default();
            assert_eq!(
                pvgate_hypercall(core::ptr::null(), &mut out, core::ptr::null_mut(), 0),
                -EFAULT
            );
            assert_eq!(out.status, -EFAULT);
            assert_eq!(
                pvgate_hypercall(&regs, &mut out, core::ptr::null_mut(), usize::MAX),
                -EINVAL
            );
            assert_eq!(out.status, -EINVAL);
            assert_eq!(
                pvgate_hypercall(&regs, core::ptr::null_mut(), core::ptr::null_mut(), 0),
                -EFAULT
            );
            assert_eq!(pvgate_audit_event(0, core::ptr::null_mut()), -EFAULT);
        }
    }
}
