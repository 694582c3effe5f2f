//! The PV path allocates nothing: a counting global allocator sees no
//! heap allocation during allowed, ignored, denied and refused calls
//! through `Hyp::call` (the hypervisor has no heap; this proves the
//! std-hosted build does not sneak one in either).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use pvgate_gate::{Phase, VmKind};
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
