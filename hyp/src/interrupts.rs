//! A vCPU's interrupt and event state ([`InterruptState`]): what is queued
//! for the next entry, what the last entry delivered ([`Delivered`]), the
//! NMI mask and shadows, the virtual APIC's registers the host reports,
//! and why injection may be busy ([`Busy`]).

/// Interrupt shadow bit 1: blocking by MOV SS (SDM Vol. 3C §25.4.2).
pub const SHADOW_MOV_SS: u8 = 1 << 1;

/// Why an event cannot be injected now (`-EBUSY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Busy {
    /// An event is still in the hypervisor's injection slot
    /// ([`InterruptState::needs_reinjection`]).
    NeedsReinjection,
    /// An exception is queued ([`InterruptState::pending_exception`]).
    ExceptionPending,
    /// The host reported a failed MSR emulation that the next entry turns
    /// into #GP (`VcpuState::emulated_msr_error`).
    MsrErrorPending,
    /// The guest cannot take an interrupt: RFLAGS.IF is 0 or an interrupt
    /// shadow is active.
    InterruptsBlocked,
    /// The guest cannot take an NMI: NMIs are masked or MOV SS blocks them.
    NmiBlocked,
}

impl Busy {
    /// What the reason says, for error messages.
    pub const fn text(self) -> &'static str {
        match self {
            Busy::NeedsReinjection => "an injected event has not reached the guest yet",
            Busy::ExceptionPending => "an exception is pending",
            Busy::MsrErrorPending => "a failed msr emulation is pending",
            Busy::InterruptsBlocked => "the guest blocks interrupts (RFLAGS.IF = 0 or a shadow)",
            Busy::NmiBlocked => "the guest blocks nmis (masked or MOV SS shadow)",
        }
    }
}

/// What one entry into the guest delivered (the queued events at that
/// entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Delivered {
    /// The interrupt vector, and whether it was a software interrupt.
    pub irq: Option<(u8, bool)>,
    /// An NMI.
    pub nmi: bool,
    /// An exception (vector, error code).
    pub exception: Option<(u8, Option<u32>)>,
}

/// A vCPU's interrupt and event state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct InterruptState {
    /// The vector queued for injection at the next entry.
    pub pending_irq: Option<u8>,
    /// Whether the queued interrupt is a software interrupt.
    pub pending_irq_soft: bool,
    /// An NMI is queued.
    pub pending_nmi: bool,
    /// An exception queued for injection (vector, error code).
    pub pending_exception: Option<(u8, Option<u32>)>,
    /// NMIs are blocked.
    pub nmi_mask: bool,
    /// Interrupt shadow (STI / MOV SS blocking), VMX encoding.
    pub interrupt_shadow: u8,
    /// The host asked for an exit when interrupts are allowed.
    pub irq_window: bool,
    /// The host asked for an exit when NMIs are allowed.
    pub nmi_window: bool,
    /// TPR threshold (update_cr8_intercept).
    pub tpr_threshold: u64,
    /// Highest in-service vector (hwapic_isr_update).
    pub max_isr: u64,
    /// Highest requested vector (hwapic_irr_update).
    pub max_irr: u64,
    /// EOI exit bitmap (256 bits).
    pub eoi_exitmap: [u64; 4],
    /// APICv is active.
    pub apicv_active: bool,
    /// Virtual APIC mode (set_virtual_apic_mode).
    pub apic_mode: u8,
    /// The last SIPI vector delivered.
    pub sipi_vector: Option<u8>,
    /// What the last entry into the guest delivered.
    pub delivered: Delivered,
}

impl InterruptState {
    /// Whether an event still needs to reach the guest through the
    /// hypervisor's injection slot, as KVM's `kvm_event_needs_reinjection`
    /// (which pKVM-IA's `pkvm_interrupt_allowed`/`pkvm_nmi_allowed`
    /// consult). It arises two ways: the host injected an interrupt or an
    /// NMI that no entry has delivered yet (KVM marks an event injected
    /// as it writes it for the next entry), or `cancel_injection` left a
    /// protected VM's software interrupt (or exception) with the
    /// hypervisor, which delivers it at the next entry. The next
    /// `vcpu_run` clears it.
    pub const fn needs_reinjection(&self) -> bool {
        self.pending_irq.is_some() || self.pending_nmi
    }
}
