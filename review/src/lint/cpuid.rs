//! The host of a protected VM controlling a security-critical CPUID bit,
//! or a CPUID bit the hypervisor does not support.

use pvgate_codegen::{Ir, IrRule, Registry, Resources};
use pvgate_gate::{CpuidSupport, RegControl, Register, RuleDetail, Verdict, support_in};

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

/// The widest leaf range `cpuid-unsupported-bit` looks at leaf by leaf; a
/// wider rule (`leaf = "all"`) is not checked.
const MAX_RANGE: u32 = 0x100;

/// Lint `cpuid-unsupported-bit`, one finding per register: host-controlled
/// or forced-on bits outside the hypervisor's supported CPUID (the
/// supported mask wins, so those bits stay 0 whatever the rule says).
pub(super) fn cpuid_unsupported(out: &mut Vec<Finding>, rule: &IrRule, ir: &Ir) {
    let Resources::Cpuid { leaves, subleaf } = &rule.resources else {
        return;
    };
    let RuleDetail::Cpuid(regs) = rule.detail else {
        return;
    };
    if rule.verdict != Verdict::Allow
        || !protected(rule)
        || leaves.1.saturating_sub(leaves.0) >= MAX_RANGE
    {
        return;
    }
    let table: Vec<CpuidSupport> = ir.supported.iter().map(|e| e.support).collect();
    let sub = subleaf.unwrap_or(0);
    for reg in Register::ALL {
        let c: RegControl = regs[reg as usize];
        let mut hits = Vec::new();
        for leaf in leaves.0..=leaves.1 {
            let allowed = support_in(&table, leaf, sub)[reg as usize].allowed();
            let host = c.host & !allowed;
            let forced = c.force_on & !allowed;
            if host != 0 {
                hits.push(format!("{host:#x} of leaf {leaf:#x} (host-controlled)"));
            }
            if forced != 0 {
                hits.push(format!("{forced:#x} of leaf {leaf:#x} (forced on)"));
            }
        }
        if hits.is_empty() {
            continue;
        }
        out.push(Finding {
            lint: LintId::CpuidUnsupportedBit,
            severity: Severity::Warning,
            message: format!(
                "CPUID {} bits {} are not supported by the hypervisor on {}: they stay 0",
                reg.name().to_ascii_uppercase(),
                join_and(&hits),
                scope_of(rule, true)
            ),
            rule: Some(rule.name.clone()),
            span: rule.spans.resource.clone(),
            label: format!(
                "{} names unsupported bits",
                describe::cpuid_reg(*leaves, *subleaf, reg)
            ),
            help: String::from(
                "the hypervisor's supported CPUID (policy/registry/hypervisor-cpuid.toml) wins over the policy: drop these bits from the rule, or change the supported table with a cited reason",
            ),
        });
    }
}
