//! Architectural registers: general-purpose registers, RFLAGS, EFER,
//! CR0/CR4, DR7, segments and the descriptor tables (GDT, IDT).

use pvgate_gate::Policy;

use super::ctx::Ctx;
use crate::outcome::Outcome;
use crate::state::{DescTable, Gpr, GprWrite, SegReg, Segment, VcpuState};

/// A segment as the four ABI outputs: selector, base, limit, access rights.
fn seg_out(s: Segment) -> [u64; 4] {
    [
        u64::from(s.selector),
        s.base,
        u64::from(s.limit),
        u64::from(s.ar),
    ]
}

/// Stores one segment register.
pub(crate) fn set_segment(v: &mut VcpuState, seg: SegReg, s: Segment) {
    if let Some(slot) = v.segments.get_mut(seg as usize) {
        *slot = s;
    }
}

/// `set_regs`: writes the general-purpose registers selected by the mask.
pub(crate) fn set_regs<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState, w: GprWrite) -> Outcome {
    for (i, reg) in Gpr::ALL.into_iter().enumerate() {
        if w.mask & (1 << i) != 0 {
            v.set_gpr(reg, w.values.get(i).copied().unwrap_or(0));
        }
    }
    ctx.ok()
}

/// `cache_reg`: output 0 is the register.
pub(crate) fn cache_reg<P: Policy>(ctx: &Ctx<'_, P>, v: &VcpuState, reg: Gpr) -> Outcome {
    ctx.out([v.gpr(reg), 0, 0, 0])
}

/// `set_rflags`.
pub(crate) fn set_rflags<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState, x: u64) -> Outcome {
    v.rflags = x;
    ctx.ok()
}

/// `get_rflags`: output 0.
pub(crate) fn get_rflags<P: Policy>(ctx: &Ctx<'_, P>, v: &VcpuState) -> Outcome {
    ctx.out([v.rflags, 0, 0, 0])
}

/// `set_efer`.
pub(crate) fn set_efer<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState, x: u64) -> Outcome {
    v.efer = x;
    ctx.ok()
}

/// `set_cr0`.
pub(crate) fn set_cr0<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState, x: u64) -> Outcome {
    v.cr0 = x;
    ctx.ok()
}

/// `set_cr4`.
pub(crate) fn set_cr4<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState, x: u64) -> Outcome {
    v.cr4 = x;
    ctx.ok()
}

/// `set_dr7`.
pub(crate) fn set_dr7<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState, x: u64) -> Outcome {
    v.dr7 = x;
    ctx.ok()
}

/// `set_segment`.
pub(crate) fn set_segment_call<P: Policy>(
    ctx: &Ctx<'_, P>,
    v: &mut VcpuState,
    seg: SegReg,
    segment: Segment,
) -> Outcome {
    set_segment(v, seg, segment);
    ctx.ok()
}

/// `get_segment`: outputs selector, base, limit, access rights.
pub(crate) fn get_segment<P: Policy>(ctx: &Ctx<'_, P>, v: &VcpuState, seg: SegReg) -> Outcome {
    ctx.out(seg_out(v.segment(seg)))
}

/// `get_segment_base`: output 0 is the base.
pub(crate) fn get_segment_base<P: Policy>(ctx: &Ctx<'_, P>, v: &VcpuState, seg: SegReg) -> Outcome {
    ctx.out([v.segment(seg).base, 0, 0, 0])
}

/// `set_idt`.
pub(crate) fn set_idt<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState, t: DescTable) -> Outcome {
    v.idt = t;
    ctx.ok()
}

/// `get_idt`: outputs base, limit.
pub(crate) fn get_idt<P: Policy>(ctx: &Ctx<'_, P>, v: &VcpuState) -> Outcome {
    ctx.out([v.idt.base, u64::from(v.idt.limit), 0, 0])
}

/// `set_gdt`.
pub(crate) fn set_gdt<P: Policy>(ctx: &Ctx<'_, P>, v: &mut VcpuState, t: DescTable) -> Outcome {
    v.gdt = t;
    ctx.ok()
}

/// `get_gdt`: outputs base, limit.
pub(crate) fn get_gdt<P: Policy>(ctx: &Ctx<'_, P>, v: &VcpuState) -> Outcome {
    ctx.out([v.gdt.base, u64::from(v.gdt.limit), 0, 0])
}
