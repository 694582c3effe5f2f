//! A minimal 8250 UART at COM1 (0x3f8): what Linux's polled console needs.
//! Writes to THR are captured; LSR always says the transmitter is empty;
//! the other registers read back what was written (the driver's scratch
//! and IER probes), IIR says no interrupt is pending.

/// COM1's base port.
pub const COM1: u16 = 0x3f8;
/// The eight ports of the UART.
pub const PORTS: std::ops::Range<u16> = COM1..COM1 + 8;

const THR: u16 = 0;
const IIR: u16 = 2;
const LCR: u16 = 3;
const LSR: u16 = 5;
const MSR: u16 = 6;
/// LCR.DLAB: registers 0 and 1 are the divisor latch.
const LCR_DLAB: u8 = 0x80;
/// LSR: THR empty and transmitter empty.
const LSR_IDLE: u8 = 0x60;
/// MSR: DCD, DSR, CTS (a connected line).
const MSR_CONNECTED: u8 = 0xb0;

/// The UART's registers and what the guest wrote to THR.
#[derive(Debug, Default)]
pub struct Serial {
    regs: [u8; 8],
    dlab_regs: [u8; 2],
    /// Every byte written to THR.
    pub output: Vec<u8>,
}

impl Serial {
    /// A UART after reset.
    pub fn new() -> Serial {
        Serial::default()
    }

    /// A guest OUT to `port` (in [`PORTS`]).
    pub fn write(&mut self, port: u16, value: u8) {
        let reg = port.wrapping_sub(COM1);
        let dlab = self
            .regs
            .get(usize::from(LCR))
            .is_some_and(|l| l & LCR_DLAB != 0);
        match reg {
            THR if !dlab => self.output.push(value),
            0 | 1 if dlab => {
                if let Some(r) = self.dlab_regs.get_mut(usize::from(reg)) {
                    *r = value;
                }
            }
            _ => {
                if let Some(r) = self.regs.get_mut(usize::from(reg)) {
                    *r = value;
                }
            }
        }
    }

    /// A guest IN from `port` (in [`PORTS`]).
    pub fn read(&self, port: u16) -> u8 {
        let reg = port.wrapping_sub(COM1);
        let dlab = self
            .regs
            .get(usize::from(LCR))
            .is_some_and(|l| l & LCR_DLAB != 0);
        match reg {
            0 | 1 if dlab => self.dlab_regs.get(usize::from(reg)).copied().unwrap_or(0),
            THR => 0,
            IIR => 0x01,
            LSR => LSR_IDLE,
            MSR => MSR_CONNECTED,
            _ => self.regs.get(usize::from(reg)).copied().unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thr_writes_are_captured_and_lsr_is_idle() {
        let mut s = Serial::new();
        for b in b"hi" {
            s.write(COM1, *b);
        }
        assert_eq!(s.output, b"hi");
        assert_eq!(s.read(COM1 + LSR), LSR_IDLE);
    }

    #[test]
    fn the_divisor_latch_does_not_print_and_scratch_reads_back() {
        let mut s = Serial::new();
        s.write(COM1 + LCR, LCR_DLAB);
        s.write(COM1, 0x01);
        s.write(COM1 + LCR, 0x03);
        s.write(COM1 + 7, 0xa5);
        assert!(s.output.is_empty());
        assert_eq!(s.read(COM1 + 7), 0xa5);
        assert_eq!(s.read(COM1 + IIR), 0x01);
    }
}
