//! One VM slot ([`VmSlot`]): its state word (generation and flags), read
//! lock-free by every call; the mask of its vCPUs; the lock that
//! serialises its lifecycle writers; and its vCPUs, each under its own
//! lock.
//!
//! No PV call holds anything a lifecycle writer waits for, except the one
//! vCPU lock `create_vcpu` takes on a vCPU that no live handle names (see
//! `docs/hypervisor.md`, "Concurrency and handles").

use core::sync::atomic::{AtomicU64, Ordering};

use pvgate_gate::VmKind;

pub(crate) use super::meta::VmMeta;
use super::meta::{DESTROYED, FINALIZED, GENERATION_SHIFT, LIVE, NORMAL, RETIRED, RUNNING};
use crate::state::VcpuState;

/// Every access to a slot's atomics is sequentially consistent: the
/// reasoning in `docs/hypervisor.md` assumes one order of all of them.
const ORDER: Ordering = Ordering::SeqCst;

/// What [`VmSlot::claim`] did.
pub(crate) enum Claim {
    /// The slot now holds a new VM of this generation.
    Created(u32),
    /// The slot is live or retired (now or by this call).
    Unavailable,
}

/// One VM slot.
pub(crate) struct VmSlot<const VCPUS: usize> {
    /// Generation (bits 63:32) and the flags above.
    state: AtomicU64,
    /// Bit `i`: vCPU `i` exists. Set by `create_vcpu` under vCPU `i`'s
    /// lock; cleared by `destroy_vcpu` and `free_vm`.
    present: AtomicU64,
    /// Serialises the slot's lifecycle writers (`create_vcpu`,
    /// `destroy_vcpu`, `vm_destroy`, `free_vm`); never taken by a PV call.
    /// A ticket lock: lifecycle writers get it in arrival order.
    pub(crate) lifecycle: spin::mutex::TicketMutex<()>,
    /// The vCPUs. A call takes one vCPU's lock and no other.
    pub(crate) vcpus: [spin::Mutex<VcpuState>; VCPUS],
}

impl<const VCPUS: usize> VmSlot<VCPUS> {
    /// A free slot that has never held a VM.
    pub(crate) const fn new() -> VmSlot<VCPUS> {
        VmSlot {
            state: AtomicU64::new(0),
            present: AtomicU64::new(0),
            lifecycle: spin::mutex::TicketMutex::new(()),
            vcpus: [const { spin::Mutex::new(VcpuState::RESET) }; VCPUS],
        }
    }

    /// The state word now.
    #[inline(always)]
    pub(crate) fn meta(&self) -> VmMeta {
        VmMeta::decode(self.state.load(ORDER))
    }

    /// The VM, when it is live and of `generation`.
    #[inline(always)]
    pub(crate) fn live(&self, generation: u32) -> Option<VmMeta> {
        let meta = self.meta();
        meta.live_of(generation).then_some(meta)
    }

    /// The VM, when it is live, of `generation`, and has vCPU `index`.
    #[inline(always)]
    pub(crate) fn holds(&self, generation: u32, index: usize) -> Option<VmMeta> {
        let meta = self.live(generation)?;
        self.has_vcpu(index).then_some(meta)
    }

    /// Whether vCPU `index` exists.
    #[inline(always)]
    pub(crate) fn has_vcpu(&self, index: usize) -> bool {
        index < VCPUS && self.present.load(ORDER) & bit(index) != 0
    }

    /// The mask of existing vCPUs.
    pub(crate) fn present(&self) -> u64 {
        self.present.load(ORDER)
    }

    /// Marks vCPU `index` as existing (caller: `create_vcpu`, holding the
    /// lifecycle lock and vCPU `index`'s lock).
    pub(crate) fn add_vcpu(&self, index: usize) {
        self.present.fetch_or(bit(index), ORDER);
    }

    /// Marks vCPU `index` as gone (caller: `destroy_vcpu`, holding the
    /// lifecycle lock).
    pub(crate) fn remove_vcpu(&self, index: usize) {
        self.present.fetch_and(!bit(index), ORDER);
    }

    /// Takes the slot for a new VM of `kind` if it is free; retires it
    /// instead when its generation is spent (the next would wrap to one a
    /// dead handle may still carry). Lock-free; at most two attempts,
    /// since a failed compare-exchange means another `create_vm` took or
    /// retired the slot.
    pub(crate) fn claim(&self, kind: VmKind) -> Claim {
        let mut raw = self.state.load(ORDER);
        loop {
            let meta = VmMeta::decode(raw);
            if meta.live() || meta.retired() {
                return Claim::Unavailable;
            }
            let next = match meta.generation().checked_add(1) {
                Some(generation) => {
                    let kind_bit = match kind {
                        VmKind::Protected => 0,
                        VmKind::Normal => NORMAL,
                    };
                    u64::from(generation) << GENERATION_SHIFT | LIVE | kind_bit
                }
                None => raw | RETIRED,
            };
            match self.state.compare_exchange(raw, next, ORDER, ORDER) {
                Ok(_) if next & LIVE != 0 => {
                    return Claim::Created((next >> GENERATION_SHIFT) as u32);
                }
                Ok(_) => return Claim::Unavailable,
                Err(now) => raw = now,
            }
        }
    }

    /// Records `vm_destroy` of generation `generation`, decided on `seen`
    /// (caller: holding the lifecycle lock). `false` when the state moved
    /// since (a vCPU's first run): decide again.
    pub(crate) fn destroy(&self, seen: VmMeta, generation: u32) -> bool {
        let raw = self.state.load(ORDER);
        if VmMeta::decode(raw) != seen || !seen.live() || seen.generation() != generation {
            return false;
        }
        self.state
            .compare_exchange(raw, raw | DESTROYED, ORDER, ORDER)
            .is_ok()
    }

    /// Records `vm_finalize` of generation `generation` (caller: holding
    /// the lifecycle lock, the VM live and not finalized). `false` when
    /// the VM is gone, destroyed or already finalized. Bounded like
    /// [`VmSlot::publish_running`]: the word moves under it only by a first
    /// run (at most once) or by `vm_destroy`/`free_vm`, which end the loop.
    pub(crate) fn finalize(&self, generation: u32) -> bool {
        let mut raw = self.state.load(ORDER);
        loop {
            let meta = VmMeta::decode(raw);
            if !meta.live()
                || meta.generation() != generation
                || meta.destroyed()
                || meta.finalized()
            {
                return false;
            }
            match self
                .state
                .compare_exchange(raw, raw | FINALIZED, ORDER, ORDER)
            {
                Ok(_) => return true,
                Err(now) => raw = now,
            }
        }
    }

    /// Records a vCPU's first run: `false` (nothing recorded) when the VM
    /// of `generation` is no longer live or was destroyed first. Bounded:
    /// the word changes under it only by `vm_destroy` and `free_vm`, which
    /// end the loop, or by another first run, at most once.
    pub(crate) fn publish_running(&self, generation: u32) -> bool {
        let mut raw = self.state.load(ORDER);
        loop {
            let meta = VmMeta::decode(raw);
            if !meta.live() || meta.generation() != generation || meta.destroyed() {
                return false;
            }
            if meta.running() {
                return true;
            }
            match self
                .state
                .compare_exchange(raw, raw | RUNNING, ORDER, ORDER)
            {
                Ok(_) => return true,
                Err(now) => raw = now,
            }
        }
    }

    /// Frees the slot (caller: `free_vm`, holding the lifecycle lock, the
    /// VM destroyed): its vCPUs are gone and its generation's handles dead.
    pub(crate) fn release(&self) {
        self.present.store(0, ORDER);
        self.state.fetch_and(!0u64 << GENERATION_SHIFT, ORDER);
    }

    /// Moves a free slot's generation forward, as that many create/free
    /// cycles would (tests of the wrap rule only). `false` when the slot
    /// is live, retired or already past `generation`.
    #[cfg(test)]
    pub(crate) fn skip_generations(&self, generation: u32) -> bool {
        let raw = self.state.load(ORDER);
        let meta = VmMeta::decode(raw);
        if meta.live() || meta.retired() || meta.generation() > generation {
            return false;
        }
        let next = u64::from(generation) << GENERATION_SHIFT;
        self.state.compare_exchange(raw, next, ORDER, ORDER).is_ok()
    }
}

/// Bit `index` of a vCPU mask (`index < 64`; 0 past it).
#[inline(always)]
fn bit(index: usize) -> u64 {
    u32::try_from(index)
        .ok()
        .and_then(|i| 1u64.checked_shl(i))
        .unwrap_or(0)
}
