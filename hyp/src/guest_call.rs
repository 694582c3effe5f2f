//! The calls a guest makes ([`GuestCall`]), as data: imported by the
//! audit (its counters) and by [`crate::guest`] (which carries them out).

/// The bits of a secondary's start address that may be set: a 4 KiB page
/// below 1 MiB (the SIPI vector is bits 19:12).
pub const START_IP_MASK: u64 = 0xff000;

/// A call the guest makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestCall {
    /// Start the secondary vCPU with APIC ID `apic_id` at `start_ip` (a
    /// 4 KiB page below 1 MiB; its SIPI vector is `start_ip >> 12`).
    StartSecondary {
        /// The target's APIC ID (= its vCPU index).
        apic_id: u32,
        /// Where it starts (real mode, CS base = `start_ip`, IP 0).
        start_ip: u64,
    },
}

impl GuestCall {
    /// Every guest call's name, in ABI order.
    pub const NAMES: [&'static str; 1] = ["start_secondary"];

    /// The call's name in traces and messages.
    pub const fn name(self) -> &'static str {
        match self {
            GuestCall::StartSecondary { .. } => "start_secondary",
        }
    }
}
