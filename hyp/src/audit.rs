//! Audit: counters per (PV call, effect) and a fixed ring of the most
//! recent failures (with their errno), ignores and filters. Both are readable by the host: they
//! name calls, vCPU handles, resources (MSR index, CPUID leaf, vector) and
//! rule ids, never a value of protected state.

use core::sync::atomic::{AtomicU64, Ordering};

use pvgate_gate::{PvCall, RuleId};

use crate::guest_call::GuestCall;

/// What became of one PV call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Effect {
    /// Carried out as asked.
    Allow = 0,
    /// Refused by the policy (-EPERM).
    Deny = 1,
    /// Reported as success, nothing changed (getters return zeros).
    Ignore = 2,
    /// Accepted with the hypervisor's values in place of bits the host may
    /// not control (CPUID in `filter` mode).
    Filter = 3,
    /// Not a policy decision: a bad handle, argument or state (-EINVAL,
    /// -EBUSY, -ENOSPC, -EFAULT, -EOPNOTSUPP, -ENOMEM).
    Invalid = 4,
}

impl Effect {
    /// Every effect, in counter order.
    pub const ALL: [Effect; 5] = [
        Effect::Allow,
        Effect::Deny,
        Effect::Ignore,
        Effect::Filter,
        Effect::Invalid,
    ];

    /// The lowercase name (`allow`, `deny`, `ignore`, `filter`, `invalid`).
    pub const fn name(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
            Effect::Ignore => "ignore",
            Effect::Filter => "filter",
            Effect::Invalid => "invalid",
        }
    }

    /// Decodes the ABI number.
    pub fn from_u64(raw: u64) -> Option<Effect> {
        usize::try_from(raw)
            .ok()
            .and_then(|i| Effect::ALL.get(i).copied())
    }

    /// Whether the audit ring records this effect: every failure (deny,
    /// invalid, each with its errno) and every call that did not do what
    /// the host asked (ignore, filter).
    pub const fn is_recorded(self) -> bool {
        !matches!(self, Effect::Allow)
    }
}

/// The resource a decision was about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Resource {
    /// The PV call itself.
    #[default]
    Call,
    /// An MSR index.
    Msr(u32),
    /// A CPUID leaf and subleaf.
    Cpuid {
        /// The leaf.
        leaf: u32,
        /// The subleaf.
        subleaf: u32,
    },
    /// An interrupt or SIPI vector.
    Vector(u8),
}

impl Resource {
    /// ABI encoding: bits 63:60 the kind (0 call, 1 MSR, 2 CPUID, 3 vector);
    /// the MSR index, leaf or vector in bits 31:0; a CPUID subleaf's low 24
    /// bits in bits 55:32.
    pub const fn encode(self) -> u64 {
        match self {
            Resource::Call => 0,
            Resource::Msr(i) => 1 << 60 | i as u64,
            Resource::Cpuid { leaf, subleaf } => {
                2 << 60 | ((subleaf as u64 & 0xff_ffff) << 32) | leaf as u64
            }
            Resource::Vector(v) => 3 << 60 | v as u64,
        }
    }
}

/// One recorded failure, ignore or filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// Sequence number (1 for the first event ever recorded).
    pub seq: u64,
    /// The PV call.
    pub call: PvCall,
    /// The raw vCPU handle (for `vm_destroy`, the VM handle).
    pub vcpu: u64,
    /// What became of it.
    pub effect: Effect,
    /// What it was about.
    pub resource: Resource,
    /// The deciding rule; `None` for default deny.
    pub rule: Option<RuleId>,
    /// The errno the call failed with (`EPERM`, `EBUSY`, …, each named in
    /// the error module's table); 0 when it succeeded (ignore, filter).
    pub errno: i64,
}

/// The `audit_event` hypercall's output 1 keeps the errno in 7 bits
/// (31:25); every errno the ABI returns fits (checked where they are
/// listed).
pub const AUDIT_ERRNO_BITS: u32 = 7;

impl AuditEvent {
    /// The `audit_event` hypercall's output 1: call | effect << 16 |
    /// has-rule << 24 | errno << 25 | rule << 32.
    pub fn encode_word(&self) -> u64 {
        self.call.number()
            | (self.effect as u64) << 16
            | u64::from(self.rule.is_some()) << 24
            | (u64::try_from(self.errno).unwrap_or(0) & ((1 << AUDIT_ERRNO_BITS) - 1)) << 25
            | self.rule.map_or(0, |r| u64::from(r.0)) << 32
    }
}

/// How many events the ring keeps (a power of two).
pub const AUDIT_RING_CAPACITY: usize = 32;
const _: () = assert!(AUDIT_RING_CAPACITY.is_power_of_two());
/// A sequence number's ring slot is its low bits.
const RING_MASK: u64 = (AUDIT_RING_CAPACITY as u64).wrapping_sub(1);

/// Counter slots: index 0 counts unknown call numbers, `n` counts PV call `n`.
pub const AUDIT_CALL_SLOTS: usize = PvCall::ALL.len() + 1;

/// A guest call's counter row.
const fn guest_slot(call: GuestCall) -> usize {
    match call {
        GuestCall::StartSecondary { .. } => 0,
    }
}

struct Ring {
    events: [Option<AuditEvent>; AUDIT_RING_CAPACITY],
    next_seq: u64,
}

/// The audit state: lock-free counters, and a small locked ring.
pub struct Audit {
    counters: [[AtomicU64; Effect::ALL.len()]; AUDIT_CALL_SLOTS],
    /// Guest calls, per (guest call, effect): `allow` or `invalid` (their
    /// own rules, no policy decision, so never in the ring).
    guest: [[AtomicU64; Effect::ALL.len()]; GuestCall::NAMES.len()],
    ring: spin::Mutex<Ring>,
}

impl Default for Audit {
    fn default() -> Self {
        Audit::new()
    }
}

impl Audit {
    /// Empty counters and ring.
    pub const fn new() -> Audit {
        Audit {
            counters: [const { [const { AtomicU64::new(0) }; Effect::ALL.len()] };
                AUDIT_CALL_SLOTS],
            guest: [const { [const { AtomicU64::new(0) }; Effect::ALL.len()] };
                GuestCall::NAMES.len()],
            ring: spin::Mutex::new(Ring {
                events: [None; AUDIT_RING_CAPACITY],
                next_seq: 1,
            }),
        }
    }

    #[inline(always)]
    fn slot(call: Option<PvCall>) -> usize {
        call.map_or(0, |c| c as usize)
    }

    /// Counts one outcome (`call` `None`: an unknown call number).
    #[inline]
    pub fn count(&self, call: Option<PvCall>, effect: Effect) {
        if let Some(c) = self
            .counters
            .get(Audit::slot(call))
            .and_then(|row| row.get(effect as usize))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counter of (call, effect).
    pub fn counter(&self, call: Option<PvCall>, effect: Effect) -> u64 {
        self.counters
            .get(Audit::slot(call))
            .and_then(|row| row.get(effect as usize))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Counts one guest call.
    pub fn count_guest(&self, call: GuestCall, effect: Effect) {
        if let Some(c) = self
            .guest
            .get(guest_slot(call))
            .and_then(|row| row.get(effect as usize))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counter of (guest call, effect).
    pub fn guest_counter(&self, call: GuestCall, effect: Effect) -> u64 {
        self.guest
            .get(guest_slot(call))
            .and_then(|row| row.get(effect as usize))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Records an event in the ring, overwriting the oldest (`errno` 0
    /// for a call that succeeded).
    #[inline]
    pub fn record(
        &self,
        call: PvCall,
        vcpu: u64,
        effect: Effect,
        resource: Resource,
        rule: Option<RuleId>,
        errno: i64,
    ) {
        let mut ring = self.ring.lock();
        let seq = ring.next_seq;
        ring.next_seq = seq.wrapping_add(1);
        // A power of two: the remainder is a mask.
        let at = (seq & RING_MASK) as usize;
        if let Some(slot) = ring.events.get_mut(at) {
            *slot = Some(AuditEvent {
                seq,
                call,
                vcpu,
                effect,
                resource,
                rule,
                errno,
            });
        }
    }

    /// The `back`-th most recent event (0 = newest), if still in the ring.
    pub fn recent(&self, back: u64) -> Option<AuditEvent> {
        let ring = self.ring.lock();
        let newest = ring.next_seq.checked_sub(1)?;
        if back >= AUDIT_RING_CAPACITY as u64 || back >= newest {
            return None;
        }
        let seq = newest.checked_sub(back)?;
        let at = seq.checked_rem(AUDIT_RING_CAPACITY as u64).unwrap_or(0) as usize;
        ring.events
            .get(at)
            .copied()
            .flatten()
            .filter(|e| e.seq == seq)
    }

    /// How many events were ever recorded.
    pub fn recorded(&self) -> u64 {
        self.ring.lock().next_seq.saturating_sub(1)
    }
}
