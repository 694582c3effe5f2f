//! A VM slot's state word ([`VmMeta`]): the generation of its current
//! (or last) VM in bits 63:32 and the flags below, read once per call
//! and decoded flag by flag on demand.

use pvgate_gate::{Phase, VmKind};

/// State word bit: the slot holds a VM (from `create_vm` to `free_vm`).
pub(super) const LIVE: u64 = 1 << 0;
/// State word bit: `vm_destroy` was allowed; every vCPU is in `teardown`.
pub(super) const DESTROYED: u64 = 1 << 1;
/// State word bit: a vCPU of the VM has reached `running` (its first run).
pub(super) const RUNNING: u64 = 1 << 2;
/// State word bit: the slot's generation is spent; it never holds a VM again.
pub(super) const RETIRED: u64 = 1 << 3;
/// State word bit: the VM is a normal VM (clear: protected).
pub(super) const NORMAL: u64 = 1 << 4;
/// State word bit: `vm_finalize` succeeded (protected VMs only; once).
pub(super) const FINALIZED: u64 = 1 << 5;
/// State word bits 63:32: the generation of the slot's current (or last) VM.
pub(super) const GENERATION_SHIFT: u32 = 32;

/// A state word read once: what a VM slot holds. Kept as the word and
/// decoded field by field on demand, so a PV call that reads one flag
/// pays for that flag only.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VmMeta(u64);

/// The state word bits that mean something (generation and flags).
const MEANING: u64 =
    !0u64 << GENERATION_SHIFT | LIVE | DESTROYED | RUNNING | RETIRED | NORMAL | FINALIZED;

impl PartialEq for VmMeta {
    fn eq(&self, other: &VmMeta) -> bool {
        self.0 & MEANING == other.0 & MEANING
    }
}

impl Eq for VmMeta {}

impl VmMeta {
    #[inline(always)]
    pub(super) const fn decode(raw: u64) -> VmMeta {
        VmMeta(raw)
    }

    /// The generation of the slot's current (or last) VM; 0 before the
    /// first. Handles carry it; a handle of another generation is dead.
    #[inline(always)]
    pub(crate) const fn generation(self) -> u32 {
        (self.0 >> GENERATION_SHIFT) as u32
    }

    /// The slot holds a live VM of `generation`: the generation bits and
    /// the live bit compared in one go.
    #[inline(always)]
    pub(crate) const fn live_of(self, generation: u32) -> bool {
        let expected = (generation as u64) << GENERATION_SHIFT | LIVE;
        (self.0 ^ expected) & (!0u64 << GENERATION_SHIFT | LIVE) == 0
    }

    /// The slot holds a VM.
    #[inline(always)]
    pub(crate) const fn live(self) -> bool {
        self.0 & LIVE != 0
    }

    /// The VM's kind.
    #[inline(always)]
    pub(crate) const fn kind(self) -> VmKind {
        if self.0 & NORMAL != 0 {
            VmKind::Normal
        } else {
            VmKind::Protected
        }
    }

    /// `vm_destroy` was allowed.
    #[inline(always)]
    pub(crate) const fn destroyed(self) -> bool {
        self.0 & DESTROYED != 0
    }

    /// Whether a vCPU of the VM has reached `running`.
    #[inline(always)]
    pub(crate) const fn running(self) -> bool {
        self.0 & RUNNING != 0
    }

    /// The slot's generation is spent.
    #[inline(always)]
    pub(crate) const fn retired(self) -> bool {
        self.0 & RETIRED != 0
    }

    /// Whether `vm_finalize` succeeded.
    #[inline(always)]
    pub(crate) const fn finalized(self) -> bool {
        self.0 & FINALIZED != 0
    }

    /// Notes that `vm_destroy` came first (this copy only; the word is
    /// the slot's to change).
    #[inline(always)]
    pub(crate) fn mark_destroyed(&mut self) {
        self.0 |= DESTROYED;
    }

    /// The VM's most advanced vCPU phase: `teardown` once destroyed,
    /// `running` once a vCPU ran, else `setup` (vCPUs leave a VM only in
    /// `teardown`, so no vCPU that ran is missing from the answer).
    pub(crate) fn phase(self) -> Phase {
        if self.destroyed() {
            Phase::Teardown
        } else if self.running() {
            Phase::Running
        } else {
            Phase::Setup
        }
    }
}
