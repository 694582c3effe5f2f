//! The PV path allocates nothing: a counting global allocator sees no
//! heap allocation during allowed, ignored, denied and refused calls
//! through `Hyp::call` (the hypervisor has no heap; this proves the
//! std-hosted build does not sneak one in either).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use pvgate_gate::{Phase, Policy, ViolationMode, VmKind};
use pvgate_hyp::Call;

/// Counts this thread's allocations, then defers to the system allocator.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds
// the `GlobalAlloc` contract; the counter is a thread-local `Cell` that
// does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get().wrapping_add(1)));
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get().wrapping_add(1)));
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get().wrapping_add(1)));
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// How many heap allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get).wrapping_sub(before)
}

#[test]
fn the_counter_sees_an_allocation() {
    assert_eq!(
        allocations(|| {
            std::hint::black_box(Box::new(7u64));
        }),
        1
    );
}

#[test]
fn pv_calls_allocate_nothing() {
    let h = common::hyp(pvgate::POLICY);
    let setup = common::vcpu_in(&h, VmKind::Protected, Phase::Setup);
    let running = common::vcpu_in(&h, VmKind::Protected, Phase::Running);
    let calls = [
        // Allowed write, ignored write (syscall stopgap), denied write,
        // refused value.
        (
            setup,
            Call::SetMsr {
                index: 0x2ff,
                value: 0x806,
            },
            true,
        ),
        (
            setup,
            Call::SetMsr {
                index: 0xc000_0082,
                value: 1,
            },
            true,
        ),
        (
            setup,
            Call::SetMsr {
                index: 0x10b,
                value: 1,
            },
            false,
        ),
        (
            setup,
            Call::SetMsr {
                index: 0x1a0,
                value: u64::MAX,
            },
            false,
        ),
        // A getter denied after the first run, an event query allowed.
        (running, Call::GetRflags, false),
        (
            running,
            Call::InterruptAllowed {
                for_injection: false,
            },
            true,
        ),
        (
            running,
            Call::InterruptAllowed {
                for_injection: true,
            },
            true,
        ),
        (setup, Call::GetMsr { index: 0x2ff }, true),
    ];
    for (v, call, ok) in calls {
        let mut outcome = None;
        let n = allocations(|| outcome = Some(h.call(v, call)));
        assert_eq!(outcome.map(|o| o.ok()), Some(ok), "{call:?}");
        assert_eq!(n, 0, "{call:?} allocated {n} times");
    }
    // A handle the host made up is refused without allocating too.
    let mut outcome = None;
    let forged = pvgate_hyp::VcpuHandle(0xdead_beef);
    let n = allocations(|| outcome = Some(h.call(forged, Call::GetRflags)));
    assert_eq!(outcome.map(|o| o.ok()), Some(false));
    assert_eq!(n, 0);
}

#[test]
fn a_first_run_and_a_call_after_destroy_allocate_nothing() {
    let h = common::hyp(pvgate::POLICY);
    // A protected boot vCPU, finalized, not run yet: its first run keeps
    // a copy of the vCPU to undo a run that lost the race with destroy.
    let fresh = common::vcpu_in(&h, VmKind::Protected, Phase::Setup);
    let teardown = common::vcpu_in(&h, VmKind::Protected, Phase::Teardown);
    for (v, call, ok) in [
        (fresh, Call::VcpuRun, true),
        (fresh, Call::GetRflags, false),
        (teardown, Call::GetRflags, false),
        (teardown, Call::VcpuRun, false),
    ] {
        let mut outcome = None;
        let n = allocations(|| outcome = Some(h.call(v, call)));
        assert_eq!(outcome.map(|o| o.ok()), Some(ok), "{call:?}");
        assert_eq!(n, 0, "{call:?} allocated {n} times");
    }
    assert_eq!(h.phase(fresh), Some(Phase::Running));
}

#[test]
fn vcpu_after_set_cpuid_allocates_nothing() {
    use pvgate_hyp::{CpuidEntry, CpuidTable, MAX_CPUID_ENTRIES};
    let h = common::hyp(pvgate::POLICY);
    let supported = h.supported_cpuid(VmKind::Protected);
    // The supported table padded to KVM_MAX_CPUID_ENTRIES with subleaves
    // of a leaf nothing supports (the call_cost benchmark's proposal).
    let mut padded = supported.clone();
    for sub in 0u32.. {
        if padded.len() == MAX_CPUID_ENTRIES {
            break;
        }
        padded.push(CpuidEntry::zero(0x4000_00ff, sub)).unwrap();
    }
    // A bit the host may not control: filtered or rejected, either way
    // the policy's table comes back.
    let mut violating = supported.clone();
    violating.iter_mut().for_each(|e| e.ecx = u32::MAX);
    let mut duplicate = supported.clone();
    duplicate.push(*supported.first().unwrap()).unwrap();
    // 256 entries of their own, plus the base they leave out: too large.
    let mut too_large = CpuidTable::new();
    for sub in 0u32.. {
        if too_large.push(CpuidEntry::zero(0x4000_00fe, sub)).is_err() {
            break;
        }
    }
    for (name, table, ok) in [
        ("supported", &supported, true),
        ("padded", &padded, true),
        ("duplicate", &duplicate, false),
        ("too large", &too_large, false),
        (
            "violating",
            &violating,
            pvgate::POLICY.violation_mode() == ViolationMode::Filter,
        ),
    ] {
        // A hypervisor per case: the test one has room for two VMs.
        let h = common::hyp(pvgate::POLICY);
        let v = common::vcpu_in(&h, VmKind::Protected, Phase::Setup);
        let mut proposal = table.clone();
        let mut outcome = None;
        let n = allocations(|| outcome = Some(h.vcpu_after_set_cpuid(v, &mut proposal)));
        let outcome = outcome.unwrap();
        assert_eq!(outcome.ok(), ok, "{name}: {outcome:?}");
        assert_eq!(n, 0, "{name}: allocated {n} times");
    }
    // After the first run, only the current table may be sent again (a
    // normal VM: the shipped policy refuses the call on a protected vCPU
    // that ran).
    let h = common::hyp(pvgate::POLICY);
    let v = common::vcpu_in(&h, VmKind::Normal, Phase::Setup);
    let mut proposal = h.supported_cpuid(VmKind::Normal);
    assert!(h.vcpu_after_set_cpuid(v, &mut proposal).ok());
    assert!(h.call(v, Call::VcpuRun).ok());
    for (name, table, ok) in [("current", &proposal, true), ("changed", &padded, false)] {
        let mut again = table.clone();
        let mut outcome = None;
        let n = allocations(|| outcome = Some(h.vcpu_after_set_cpuid(v, &mut again)));
        assert_eq!(outcome.map(|o| o.ok()), Some(ok), "{name}");
        assert_eq!(n, 0, "{name}: allocated {n} times");
    }
}
