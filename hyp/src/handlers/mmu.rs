//! Guest paging as the host reports it: the page-table root and level,
//! and the TLB flush requests.

use pvgate_gate::Policy;

use super::ctx::Ctx;
use crate::args::{PageTableRoot, PagingLevel};
use crate::outcome::Outcome;
use crate::state::VcpuState;

/// `flush_tlb_all`, `flush_tlb_current`, `flush_tlb_gva` and
/// `flush_tlb_guest`: counted.
pub(crate) fn flush_tlb<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState) -> Outcome {
    v.tlb_flushes = v.tlb_flushes.wrapping_add(1);
    ctx.ok()
}

/// `load_mmu_pgd`: a page-aligned root of 4- or 5-level paging.
pub(crate) fn load_mmu_pgd<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    root: PageTableRoot,
    level: PagingLevel,
) -> Outcome {
    v.mmu_root = root.get();
    v.mmu_level = level.get();
    ctx.ok()
}
