//! The host of a protected VM controlling a security-critical CPUID bit.

use pvgate_codegen::{IrRule, Registry, Resources};
use pvgate_gate::{RegControl, Register, RuleDetail, Verdict};

use super::finding::{Finding, LintId, Severity};
use super::rule::{protected, scope_of};
use crate::describe::{self, join_and};

/// Lint `cpuid-security-bit`, one finding per register.
pub(super) fn cpuid_security(out: &mut Vec<Finding>, rule: &IrRule, registry: &Registry) {
    let Resources::Cpuid { leaves, subleaf } = &rule.resources else {
        return;
    };
    let RuleDetail::Cpuid(regs) = rule.detail else {
        return;
    };
    if rule.verdict != Verdict::Allow || !protected(rule) {
        return;
    }
    for reg in Register::ALL {
        let c: RegControl = regs[reg as usize];
        let mut hits = Vec::new();
        for f in registry.features.iter().filter(|f| {
            f.security
                && leaves.0 <= f.leaf
                && f.leaf <= leaves.1
                && subleaf.is_none_or(|s| s == f.subleaf)
                && f.register() == Some(reg)
        }) {
            let mode = if f.mask() & c.host != 0 {
                "set or clear"
            } else if f.mask() & c.clear_only != 0 {
                "clear"
            } else {
                continue;
            };
            hits.push(format!("`{}` ({}, host may {mode})", f.name, f.location()));
        }
        if hits.is_empty() {
            continue;
        }
        out.push(Finding {
            lint: LintId::CpuidSecurityBit,
            severity: Severity::Error,
            message: format!(
                "host may control security-critical CPUID bit{} {} on {}",
                if hits.len() == 1 { "" } else { "s" },
                join_and(&hits),
                scope_of(rule, true)
            ),
            rule: Some(rule.name.clone()),
            span: rule.spans.resource.clone(),
            label: format!("{} is host-controlled", describe::cpuid_reg(*leaves, *subleaf, reg)),
            help: String::from(
                "a protected VM relies on these bits for its own protection: leave them `fixed` (the hypervisor's base) or force them",
            ),
        });
    }
}
