//! One handler per PV call, carrying out a call the gate allowed, grouped
//! by what they touch. Each takes its arguments already decoded into
//! narrow types ([`crate::args`]) and the context of [`ctx`].

pub(crate) mod apic;
pub(crate) mod cpuid;
pub(crate) mod cpuid_base;
pub(crate) mod cpuid_keys;
pub(crate) mod cpuid_masks;
pub(crate) mod cpuid_merge;
pub(crate) mod ctx;
pub(crate) mod delivery;
pub(crate) mod entry;
pub(crate) mod events;
pub(crate) mod mmu;
pub(crate) mod msr;
pub(crate) mod regs;
pub(crate) mod resources;
pub(crate) mod run;
