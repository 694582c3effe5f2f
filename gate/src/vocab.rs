//! The fixed vocabulary of a policy: VM kinds, lifecycle phases, accesses
//! and verdicts (docs/design.md §3).

/// The kind of a VM, fixed when the VM is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum VmKind {
    /// A protected VM (pVM): its host is untrusted.
    Protected = 0,
    /// A normal VM (npVM): it trusts its host.
    Normal = 1,
}

impl VmKind {
    /// Every VM kind, in canonical order.
    pub const ALL: [VmKind; 2] = [VmKind::Protected, VmKind::Normal];

    /// The name used in policies (`protected`, `normal`).
    pub const fn name(self) -> &'static str {
        match self {
            VmKind::Protected => "protected",
            VmKind::Normal => "normal",
        }
    }

    /// Parses a policy name; `None` for anything else (fail closed).
    pub fn from_name(name: &str) -> Option<VmKind> {
        VmKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Decodes the ABI encoding (`0` protected, `1` normal).
    pub const fn from_u64(raw: u64) -> Option<VmKind> {
        match raw {
            0 => Some(VmKind::Protected),
            1 => Some(VmKind::Normal),
            _ => None,
        }
    }
}

/// A vCPU's lifecycle phase, owned by the hypervisor; it only moves forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Phase {
    /// Created, never entered: the host configures the vCPU.
    Setup = 0,
    /// Entered at least once: its state is protected.
    Running = 1,
    /// The VM is being destroyed.
    Teardown = 2,
}

impl Phase {
    /// Every phase, in lifecycle order.
    pub const ALL: [Phase; 3] = [Phase::Setup, Phase::Running, Phase::Teardown];

    /// The name used in policies (`setup`, `running`, `teardown`).
    pub const fn name(self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Running => "running",
            Phase::Teardown => "teardown",
        }
    }

    /// Parses a policy name; `None` for anything else (fail closed).
    pub fn from_name(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// Whether the host reads (a PV getter) or writes (a PV setter) state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Access {
    /// The host reads vCPU state.
    Read = 0,
    /// The host writes vCPU state.
    Write = 1,
}

impl Access {
    /// Both accesses, in canonical order.
    pub const ALL: [Access; 2] = [Access::Read, Access::Write];

    /// The name used in policies (`read`, `write`).
    pub const fn name(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }

    /// Parses a policy name; `None` for anything else.
    pub fn from_name(name: &str) -> Option<Access> {
        Access::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// What happens to a host request.
///
/// `Deny` is the zero value and the default: "allow" is always a positive,
/// explicit encoding (unlike KVM's MSR filter, whose default-allow flag is 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum Verdict {
    /// Refused with an error (-EPERM).
    #[default]
    Deny = 0,
    /// Carried out (within the rule's value constraints).
    Allow = 1,
    /// Reported as success, nothing changed; getters return zeros.
    Ignore = 2,
}

impl Verdict {
    /// Every verdict, in canonical order.
    pub const ALL: [Verdict; 3] = [Verdict::Deny, Verdict::Allow, Verdict::Ignore];

    /// The name used in policies (`allow`, `deny`, `ignore`).
    pub const fn name(self) -> &'static str {
        match self {
            Verdict::Deny => "deny",
            Verdict::Allow => "allow",
            Verdict::Ignore => "ignore",
        }
    }

    /// The verdict of a 2-bit code in a verdict map (the low two bits of
    /// `bits`: 0 deny, 1 allow, 2 ignore, the unused 3 deny: fail closed).
    /// The inverse of `verdict as u64`.
    /// A 4-entry table (one load), not a `match` (a compare chain): this
    /// is the verdict maps' hot path.
    #[inline]
    pub const fn from_bits(bits: u64) -> Verdict {
        const BY_BITS: [Verdict; 4] = [
            Verdict::Deny,
            Verdict::Allow,
            Verdict::Ignore,
            Verdict::Deny,
        ];
        match BY_BITS.split_at_checked((bits & 3) as usize) {
            Some((_, [v, ..])) => *v,
            _ => Verdict::Deny,
        }
    }

    /// Parses a policy name; `None` for anything else.
    pub fn from_name(name: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.name() == name)
    }
}
