//! What a lint reports: the lints, their severities and one finding.

use std::ops::Range;

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Must be fixed: `lint` exits 1.
    Error,
    /// Should be looked at: exits 1 with `--deny-warnings`.
    Warning,
    /// For the reviewer's information.
    Info,
}

impl Severity {
    /// `error`, `warning`, `info`.
    pub const fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// A lint, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LintId {
    /// A protected VM's host may write an MSR with side effects.
    MsrSideEffectWrite,
    /// A protected VM's host may write a write-only (command) MSR.
    MsrWriteOnlyWrite,
    /// A protected VM's host may write a read-only MSR.
    MsrReadOnlyWrite,
    /// A write rule shaped "allow if unchanged".
    AllowIfUnchanged,
    /// A protected VM's host may control a security-critical CPUID bit.
    CpuidSecurityBit,
    /// A protected VM's rule gives the host (or forces on) CPUID bits the
    /// hypervisor does not support.
    CpuidUnsupportedBit,
    /// An `ignore` verdict.
    IgnoreVerdict,
    /// The host may read or write guest state after the first run.
    RunningGuestState,
    /// A call that observes a running protected VM.
    RunningObservesGuest,
    /// Normal VMs are not allowed everything.
    NormalNotAllowAll,
    /// A boilerplate or copied reason.
    WeakReason,
}

impl LintId {
    /// Its stable id (`msr-side-effect-write`), used in output and SARIF.
    pub const fn name(self) -> &'static str {
        match self {
            LintId::MsrSideEffectWrite => "msr-side-effect-write",
            LintId::MsrWriteOnlyWrite => "msr-write-only-write",
            LintId::MsrReadOnlyWrite => "msr-read-only-write",
            LintId::AllowIfUnchanged => "allow-if-unchanged",
            LintId::CpuidSecurityBit => "cpuid-security-bit",
            LintId::CpuidUnsupportedBit => "cpuid-unsupported-bit",
            LintId::IgnoreVerdict => "ignore-verdict",
            LintId::RunningGuestState => "running-guest-state",
            LintId::RunningObservesGuest => "running-observes-guest",
            LintId::NormalNotAllowAll => "normal-not-allow-all",
            LintId::WeakReason => "weak-reason",
        }
    }
}

/// One lint: its id, default severity and what it looks for.
#[derive(Clone, Copy, Debug)]
pub struct Lint {
    /// Which lint.
    pub id: LintId,
    /// Severity.
    pub severity: Severity,
    /// One line: what it finds.
    pub summary: &'static str,
}

/// Every lint, in the order they run.
pub const LINTS: [Lint; 11] = [
    Lint {
        id: LintId::MsrSideEffectWrite,
        severity: Severity::Error,
        summary: "the host of a protected VM may write an MSR whose write has side effects (a command)",
    },
    Lint {
        id: LintId::MsrWriteOnlyWrite,
        severity: Severity::Error,
        summary: "the host of a protected VM may write a write-only (command) MSR",
    },
    Lint {
        id: LintId::MsrReadOnlyWrite,
        severity: Severity::Warning,
        summary: "the host of a protected VM may write an architecturally read-only MSR",
    },
    Lint {
        id: LintId::AllowIfUnchanged,
        severity: Severity::Warning,
        summary: "a write rule with the unsafe \"allow the write if the value is unchanged\" shape",
    },
    Lint {
        id: LintId::CpuidSecurityBit,
        severity: Severity::Error,
        summary: "the host of a protected VM may control a security-critical CPUID bit",
    },
    Lint {
        id: LintId::CpuidUnsupportedBit,
        severity: Severity::Warning,
        summary: "a protected VM's CPUID rule gives the host, or forces on, bits the hypervisor does not support (they stay 0)",
    },
    Lint {
        id: LintId::IgnoreVerdict,
        severity: Severity::Warning,
        summary: "an `ignore` verdict: a stopgap that hides failed host requests",
    },
    Lint {
        id: LintId::RunningGuestState,
        severity: Severity::Warning,
        summary: "the host may read or write a protected VM's guest state after its first run",
    },
    Lint {
        id: LintId::RunningObservesGuest,
        severity: Severity::Info,
        summary: "a call that lets the host observe a running protected VM's state",
    },
    Lint {
        id: LintId::NormalNotAllowAll,
        severity: Severity::Info,
        summary: "normal VMs (which trust their host) are not allowed everything",
    },
    Lint {
        id: LintId::WeakReason,
        severity: Severity::Warning,
        summary: "a rule whose reason is boilerplate or copied from another rule",
    },
];

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The lint that found it.
    pub lint: LintId,
    /// Its severity.
    pub severity: Severity,
    /// Lowercase message; names in backticks.
    pub message: String,
    /// The rule it is about (`None`: the policy as a whole).
    pub rule: Option<String>,
    /// Where to point in the policy text.
    pub span: Range<usize>,
    /// Label under the span.
    pub label: String,
    /// How to fix it.
    pub help: String,
}
