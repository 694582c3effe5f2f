//! A protected VM's guest state the host may touch after its first run.

use pvgate_codegen::{IrRule, Registry, Resources};
use pvgate_gate::{
    Access, Phase, PvCall, PvClass, PvConstraint, Register, RuleDetail, Verdict, VmKind,
};

use super::finding::{Finding, LintId, Severity};
use super::rule::protected;
use crate::describe::{self, join_and};

/// Lints `running-guest-state` and `running-observes-guest`.
pub(super) fn running_guest_state(out: &mut Vec<Finding>, rule: &IrRule, registry: &Registry) {
    if !protected(rule) || !rule.phases.contains(&Phase::Running) || rule.verdict != Verdict::Allow
    {
        return;
    }
    let scope = describe::scope(&[VmKind::Protected], &[Phase::Running]);
    match &rule.resources {
        Resources::Msr { ranges, accesses } => {
            let what: Vec<String> = ranges
                .iter()
                .map(|&(f, l)| describe::msr_range(registry, f, l))
                .collect();
            let verbs: Vec<String> = accesses.iter().map(|a| a.name().to_string()).collect();
            let severity = if accesses.contains(&Access::Write) {
                Severity::Error
            } else {
                Severity::Warning
            };
            out.push(Finding {
                lint: LintId::RunningGuestState,
                severity,
                message: format!("host may {} {} of {scope}", join_and(&verbs).replace(" and ", " or "), join_and(&what)),
                rule: Some(rule.name.clone()),
                span: rule.spans.resource.clone(),
                label: String::from("guest MSR state after the first run"),
                help: String::from("after the first run a protected VM's MSRs are its own: limit the rule to `setup`"),
            });
        }
        Resources::Pv { calls } => {
            let state: Vec<&PvCall> = calls
                .iter()
                .filter(|c| matches!(c.class(), PvClass::Setup | PvClass::Denied))
                .collect();
            if !state.is_empty() {
                let names: Vec<String> = state.iter().map(|c| format!("`{}`", c.name())).collect();
                let severity = if state.iter().any(|c| c.access() == Access::Write) {
                    Severity::Error
                } else {
                    Severity::Warning
                };
                out.push(Finding {
                    lint: LintId::RunningGuestState,
                    severity,
                    message: format!(
                        "host may call {} on {scope}: they read or write guest state",
                        join_and(&names)
                    ),
                    rule: Some(rule.name.clone()),
                    span: rule.spans.resource.clone(),
                    label: String::from("guest state after the first run"),
                    help: String::from(
                        "pKVM-IA allows these only before the first run: limit the rule to `setup`",
                    ),
                });
            }
            let RuleDetail::Pv(c) = rule.detail else {
                return;
            };
            let observe: Vec<String> = calls
                .iter()
                .filter(|call| {
                    call.class() == PvClass::Always
                        && call.access() == Access::Read
                        && c.read_mask == PvConstraint::NONE.read_mask
                })
                .map(|call| format!("`{}`", call.name()))
                .collect();
            if !observe.is_empty() {
                out.push(Finding {
                    lint: LintId::RunningObservesGuest,
                    severity: Severity::Info,
                    message: format!("host may call {} on {scope}: each answer reveals guest state (`interrupt_allowed` reveals RFLAGS.IF)", join_and(&observe)),
                    rule: Some(rule.name.clone()),
                    span: rule.spans.resource.clone(),
                    label: String::from("observes a running guest"),
                    help: String::from("pKVM-IA allows these: KVM needs `interrupt_allowed` for `kvm_vcpu_has_events` (waking a halted vCPU); the review thread's `inject_irq_if_allowed` would not hide the answer (it still says whether the interrupt was taken) and saves exits only without APICv"),
                });
            }
        }
        Resources::Cpuid { leaves, subleaf } => {
            let RuleDetail::Cpuid(regs) = rule.detail else {
                return;
            };
            let controlled: Vec<String> = Register::ALL
                .into_iter()
                .filter(|r| regs[*r as usize].host | regs[*r as usize].clear_only != 0)
                .map(|r| describe::cpuid_reg(*leaves, *subleaf, r))
                .collect();
            if !controlled.is_empty() {
                out.push(Finding {
                    lint: LintId::RunningGuestState,
                    severity: Severity::Warning,
                    message: format!("host may change {} of {scope}", join_and(&controlled)),
                    rule: Some(rule.name.clone()),
                    span: rule.spans.resource.clone(),
                    label: String::from("CPUID after the first run"),
                    help: String::from("after the first run a new CPUID table must equal the current one: limit the rule to `setup`"),
                });
            }
        }
    }
}
