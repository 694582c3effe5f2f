//! The long explanation of each lint (`pvgate lint --explain LINT`): what
//! it finds, why it matters on a protected VM, and how to fix or accept it.

use super::finding::LintId;

impl LintId {
    /// Every lint id, in the order of [`super::LINTS`].
    pub const ALL: [LintId; 11] = [
        LintId::MsrSideEffectWrite,
        LintId::MsrWriteOnlyWrite,
        LintId::MsrReadOnlyWrite,
        LintId::AllowIfUnchanged,
        LintId::CpuidSecurityBit,
        LintId::CpuidUnsupportedBit,
        LintId::IgnoreVerdict,
        LintId::RunningGuestState,
        LintId::RunningObservesGuest,
        LintId::NormalNotAllowAll,
        LintId::WeakReason,
    ];

    /// The lint whose stable id is `name` (`msr-side-effect-write`).
    pub fn from_name(name: &str) -> Option<LintId> {
        LintId::ALL.into_iter().find(|l| l.name() == name)
    }

    /// The long explanation: what the lint finds, why it matters, how to
    /// fix it, and when a finding may be accepted.
    pub const fn explanation(self) -> &'static str {
        match self {
            LintId::MsrSideEffectWrite => {
                "A rule lets the host of a protected VM write an MSR that the registry marks \
`side-effect`: writing it does something (flushes a cache, starts a measurement, \
changes the speculation controls) rather than store a value the guest later reads.\n\n\
Why it matters: the host is untrusted. An MSR write with a side effect is a command \
issued on the guest's behalf; the guest never asked for it and cannot see that it \
happened.\n\n\
Fix: deny the write (remove the MSR from the allow rule), or narrow the rule with a \
`write-mask` that excludes the command bits. The baseline's invariants forbid the \
worst of these outright."
            }
            LintId::MsrWriteOnlyWrite => {
                "A rule lets the host of a protected VM write an MSR that the registry marks \
`write-only`: a command register with no state to read back (for example \
IA32_PRED_CMD or IA32_FLUSH_CMD).\n\n\
Why it matters: the write is an action, not configuration; a host issuing it can \
change the guest's microarchitectural state at a time of its choosing.\n\n\
Fix: deny the write. If pKVM-IA issues the command itself on the guest's behalf, no \
host write is needed."
            }
            LintId::MsrReadOnlyWrite => {
                "A rule lets the host of a protected VM write an MSR that the SDM defines as \
read-only.\n\n\
Why it matters: on hardware the write faults; a rule allowing it is either a mistake \
(the wrong MSR, or the wrong access) or lets the host make the hypervisor emulate a \
value the hardware would never hold.\n\n\
Fix: change `access` to `[\"read\"]`, or remove the MSR from the write rule."
            }
            LintId::AllowIfUnchanged => {
                "A write rule of the \"allow if unchanged\" shape: its `write-mask` is 0 with no \
forced bits (the host may write only 0), or its reason says the write is allowed when \
the value is unchanged, the same, or the current one.\n\n\
Why it matters: pvgate compares the written value with a mask, not with the guest's \
current value, so such a rule does not do what its reason says; the hypervisor \
already holds the value and a write of it gains the host nothing.\n\n\
Fix: decide which bits the host may change and write that as the `write-mask`, or \
deny (or `ignore`) the write if it may change nothing."
            }
            LintId::CpuidSecurityBit => {
                "A CPUID rule for protected VMs gives the host control (`host` or `clear-only`) \
of a bit the registry flags as security-critical (SMEP, SMAP, the speculation \
controls, ...).\n\n\
Why it matters: the guest decides which protections to enable from CPUID. A host that \
can clear such a bit can turn a protection off in the guest without the guest \
noticing.\n\n\
Fix: leave the bit fixed (remove it from `host`/`clear-only`) so the hypervisor's \
value is kept, or `force-on` it if the hypervisor supports it."
            }
            LintId::CpuidUnsupportedBit => {
                "A CPUID rule for protected VMs gives the host, or forces on, bits that the \
hypervisor's supported-CPUID table does not support.\n\n\
Why it matters: unsupported bits always read 0 in the guest whatever the rule says, so \
the rule promises something the image will not do; a reviewer reading it is misled.\n\n\
Fix: remove the bits from the rule, or add support for them to the supported-CPUID \
table first (with a reason citing where pKVM-IA or KVM supports them)."
            }
            LintId::IgnoreVerdict => {
                "A rule with `verdict = \"ignore\"`: the host's request is dropped and reported \
as a success.\n\n\
Why it matters: `ignore` is a stopgap for hosts that make requests the hypervisor \
refuses but cannot handle a failure. It hides the refused request from the host and \
from anyone debugging it.\n\n\
Fix: use `deny` once the host (crosvm) stops making the request; until then keep the \
reason citing why the stopgap exists."
            }
            LintId::RunningGuestState => {
                "A rule lets the host read or write a protected VM's guest state (registers, \
MSRs, segments, descriptor tables) in the `running` phase, after the vCPU first ran.\n\n\
Why it matters: before the first run the host builds the boot state; after it, the \
state belongs to the guest. Reads leak it, writes change it under the guest.\n\n\
Fix: limit the rule to `phase = [\"setup\"]`. pKVM-IA `is_guest_vcpu_accessible` \
allows these calls only while the vCPU has not run."
            }
            LintId::RunningObservesGuest => {
                "A call allowed on a running protected VM lets the host observe part of the \
guest's state (for example whether interrupts are allowed, or the NMI mask).\n\n\
Why it matters: each such call is a small, deliberate leak the host needs to run the \
vCPU; the reviewer should know which ones the policy grants.\n\n\
Nothing to fix if the call is needed: this finding is information. Remove the call \
from the running phase if the host can do without it."
            }
            LintId::NormalNotAllowAll => {
                "Normal VMs trust their host, so a policy normally allows everything for them; \
this one denies or ignores something for normal VMs.\n\n\
Why it matters: denying a normal VM's host a call it depends on breaks ordinary VMs \
for no security gain, since the host controls them anyway.\n\n\
Nothing to fix if the restriction is intended (say why in the rule's reason); \
otherwise allow every call, MSR and CPUID leaf for `vm = [\"normal\"]`."
            }
            LintId::WeakReason => {
                "A rule whose `reason` is boilerplate (\"needed\", \"allowed\", a TODO) or the \
same text as another rule's reason.\n\n\
Why it matters: the reason is what a reviewer signs off; it must say why this rule \
exists and cite its source (a pKVM-IA function, an SDM section, the review thread).\n\n\
Fix: write a reason of its own for each rule, naming the function or document that \
justifies it."
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::LINTS;

    #[test]
    fn every_lint_has_an_explanation_and_is_found_by_name() {
        assert_eq!(LintId::ALL.len(), LINTS.len());
        for (id, lint) in LintId::ALL.iter().zip(LINTS.iter()) {
            assert_eq!(*id, lint.id, "ALL follows LINTS");
            assert_eq!(LintId::from_name(id.name()), Some(*id));
            assert!(id.explanation().len() > 200, "{}", id.name());
        }
        assert_eq!(LintId::from_name("no-such-lint"), None);
    }
}
