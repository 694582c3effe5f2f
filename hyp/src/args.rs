//! Narrow argument types: each call argument with a range is decoded once
//! ([`crate::decode::decode`]) into a type that holds only valid values, so
//! the handlers take it as is and have no argument error left to report.

use core::num::NonZeroU64;

/// A virtual APIC mode (`set_virtual_apic_mode`): two bits, as KVM's
/// `kvm_get_apic_mode` gives them (xAPIC enable, x2APIC enable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApicMode(u8);

impl ApicMode {
    /// Decodes the ABI value; `None` beyond two bits.
    pub const fn from_u64(raw: u64) -> Option<ApicMode> {
        if raw <= 3 {
            Some(ApicMode(raw as u8))
        } else {
            None
        }
    }

    /// The two bits.
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// An interrupt shadow (`set_interrupt_shadow`): at most the two shadow
/// bits of the guest interruptibility state, blocking by STI (bit 0) and
/// by MOV SS (bit 1) (SDM Vol. 3C §25.4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptShadow(u8);

impl InterruptShadow {
    /// Decodes the ABI value; `None` when a bit beyond the two is set.
    pub const fn from_u64(raw: u64) -> Option<InterruptShadow> {
        if raw <= 3 {
            Some(InterruptShadow(raw as u8))
        } else {
            None
        }
    }

    /// The shadow bits.
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// An exception vector (`inject_exception`): vectors 0–31 are the
/// architecture's exceptions (SDM Vol. 3A §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExceptionVector(u8);

impl ExceptionVector {
    /// Decodes the ABI value; `None` from 32 on.
    pub const fn from_u64(raw: u64) -> Option<ExceptionVector> {
        if raw < 32 {
            Some(ExceptionVector(raw as u8))
        } else {
            None
        }
    }

    /// The vector.
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// The paging depth of a page-table root (`load_mmu_pgd`): 4- or 5-level
/// paging (SDM Vol. 3A §4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PagingLevel {
    /// 4-level paging.
    Four = 4,
    /// 5-level paging.
    Five = 5,
}

impl PagingLevel {
    /// Decodes the ABI value; `None` for any other depth.
    pub const fn from_u64(raw: u64) -> Option<PagingLevel> {
        match raw {
            4 => Some(PagingLevel::Four),
            5 => Some(PagingLevel::Five),
            _ => None,
        }
    }

    /// The depth.
    pub const fn get(self) -> u8 {
        self as u8
    }
}

/// A page-table root (`load_mmu_pgd`): a 4 KiB-aligned physical address
/// (CR3 bits 11:0 are not part of the address, SDM Vol. 3A §4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageTableRoot(u64);

impl PageTableRoot {
    /// Decodes the ABI value; `None` unless page aligned.
    pub const fn from_u64(raw: u64) -> Option<PageTableRoot> {
        if raw & 0xfff == 0 {
            Some(PageTableRoot(raw))
        } else {
            None
        }
    }

    /// The address.
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// A TSC multiplier (`write_tsc_multiplier`): never zero.
pub type TscMultiplier = NonZeroU64;

/// `TryFrom<u64>` for each narrow type, so readers of other encodings
/// (trace files) decode through the same check.
macro_rules! try_from_u64 {
    ($($t:ident),*) => {$(
        impl TryFrom<u64> for $t {
            type Error = OutOfRange;
            fn try_from(raw: u64) -> Result<$t, OutOfRange> {
                $t::from_u64(raw).ok_or(OutOfRange(raw))
            }
        }
    )*};
}

try_from_u64!(
    ApicMode,
    InterruptShadow,
    ExceptionVector,
    PagingLevel,
    PageTableRoot
);

/// A value outside a narrow argument type's range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfRange(pub u64);
