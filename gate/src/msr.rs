//! MSR value constraints: which bits of a written value the host may set,
//! which the hypervisor forces, and which bits a read shows.

use crate::rule::MsrConstraint;

/// A written value set bits the rule does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsrWriteError {
    /// The value the host asked to write.
    pub value: u64,
    /// The bits it may set.
    pub write_mask: u64,
    /// The bits of `value` outside `write_mask`.
    pub refused: u64,
}

/// Checks a written value against a rule's constraint and returns the value
/// the MSR takes: `Err` when the value sets a bit outside `write_mask`
/// (pKVM-IA answers -EPERM), else the value with the forced bits applied.
pub const fn check_msr_write(c: MsrConstraint, value: u64) -> Result<u64, MsrWriteError> {
    let refused = value & !c.write_mask;
    if refused != 0 {
        return Err(MsrWriteError {
            value,
            write_mask: c.write_mask,
            refused,
        });
    }
    Ok(force_msr_bits(c, value))
}

/// The value an MSR holds under a rule's forced bits: `force_on` set,
/// then `force_off` cleared (so `force_off` wins). The one place the
/// formula is written: [`check_msr_write`] uses it for a host write, the
/// hypervisor for the bits it forces at a vCPU's first run.
pub const fn force_msr_bits(c: MsrConstraint, value: u64) -> u64 {
    (value | c.force_on) & !c.force_off
}

/// The part of an MSR value a read shows the host.
pub const fn msr_read_view(c: MsrConstraint, value: u64) -> u64 {
    value & c.read_mask
}

#[cfg(test)]
mod tests {
    use super::*;

    const MISC_ENABLE: MsrConstraint = MsrConstraint {
        write_mask: 1 | 1 << 11 | 1 << 12,
        force_on: 1 << 11 | 1 << 12,
        force_off: 0,
        read_mask: u64::MAX,
    };

    #[test]
    fn allowed_bits_pass_and_forced_bits_are_applied() {
        assert_eq!(check_msr_write(MISC_ENABLE, 1), Ok(1 | 1 << 11 | 1 << 12));
        assert_eq!(check_msr_write(MISC_ENABLE, 0), Ok(1 << 11 | 1 << 12));
    }

    #[test]
    fn a_bit_outside_the_mask_refuses_the_write_and_names_the_bit() {
        let err = check_msr_write(MISC_ENABLE, 1 | 1 << 3).unwrap_err();
        assert_eq!(err.refused, 1 << 3);
        assert_eq!(err.value, 1 | 1 << 3);
    }

    #[test]
    fn force_off_wins_over_the_written_value() {
        let c = MsrConstraint {
            force_off: 1,
            ..MsrConstraint::NONE
        };
        assert_eq!(check_msr_write(c, 3), Ok(2));
    }

    #[test]
    fn forcing_bits_needs_no_write_permission_and_force_off_wins() {
        let c = MsrConstraint {
            force_on: 0b110,
            force_off: 0b100,
            ..MsrConstraint::NONE
        };
        assert_eq!(force_msr_bits(c, 0b1001), 0b1011);
        // The write path stores exactly what forcing gives.
        let open = MsrConstraint {
            write_mask: u64::MAX,
            ..c
        };
        assert_eq!(check_msr_write(open, 0b1001), Ok(force_msr_bits(c, 0b1001)));
    }

    #[test]
    fn reads_show_only_the_read_mask() {
        let c = MsrConstraint {
            read_mask: 0x200,
            ..MsrConstraint::NONE
        };
        assert_eq!(msr_read_view(c, 0x2ff), 0x200);
    }
}
