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

/// The highest in-service vector (`hwapic_isr_update`): a vector, or none.
/// pKVM-IA's `pkvm_hwapic_isr_update` takes an `int`, -1 meaning "no
/// interrupt in service"; in the 64-bit argument register that is -1
/// sign-extended, `u64::MAX`. Any other value above 255 is no vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxIsr(Option<u8>);

impl MaxIsr {
    /// No interrupt in service (-1).
    pub const NONE: MaxIsr = MaxIsr(None);
    /// The ABI encoding of "none": -1 as a 64-bit register.
    pub const NONE_RAW: u64 = u64::MAX;

    /// Decodes the ABI value; `None` unless a vector (0..=255) or -1.
    pub const fn from_u64(raw: u64) -> Option<MaxIsr> {
        if raw == MaxIsr::NONE_RAW {
            Some(MaxIsr::NONE)
        } else if raw <= 0xff {
            Some(MaxIsr(Some(raw as u8)))
        } else {
            None
        }
    }

    /// The vector, `None` for -1.
    pub const fn vector(self) -> Option<u8> {
        self.0
    }

    /// The ABI encoding.
    pub const fn raw(self) -> u64 {
        match self.0 {
            Some(v) => v as u64,
            None => MaxIsr::NONE_RAW,
        }
    }
}

/// The host's result for an emulated MSR access (`complete_emulated_msr`):
/// pKVM-IA's `int err`, 0 for success. In the 64-bit argument register an
/// `int` arrives sign-extended; any value outside `i32` is refused.
pub const fn emulation_result(raw: u64) -> Option<i32> {
    let wide = raw as i64;
    if wide < i32::MIN as i64 || wide > i32::MAX as i64 {
        None
    } else {
        Some(wide as i32)
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
    MaxIsr,
    ApicMode,
    InterruptShadow,
    ExceptionVector,
    PagingLevel,
    PageTableRoot
);

/// A value outside a narrow argument type's range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfRange(pub u64);
