//! MSR write checks: attributes from the registry (write-only, side
//! effects, read-only) and the "allow if unchanged" shape.

use pvgate_codegen::registry::MsrAttr;
use pvgate_codegen::{IrRule, Registry, Resources};
use pvgate_gate::{Access, RuleDetail, Verdict};

use super::finding::{Finding, LintId, Severity};
use super::rule::{key_span, protected, scope_of};
use crate::describe::{self, join_and};

/// Lints `msr-write-only-write`, `msr-side-effect-write`, `msr-read-only-write`.
pub(super) fn msr_attr_writes(out: &mut Vec<Finding>, rule: &IrRule, registry: &Registry) {
    let Resources::Msr { ranges, accesses } = &rule.resources else {
        return;
    };
    if rule.verdict != Verdict::Allow || !protected(rule) || !accesses.contains(&Access::Write) {
        return;
    }
    let checks = [
        (
            MsrAttr::WriteOnly,
            LintId::MsrWriteOnlyWrite,
            Severity::Error,
            ("write-only (command) MSR", "write-only (command) MSRs"),
            "a write-only MSR is a command, not state (writing it acts even when nothing changes): deny it for protected VMs",
        ),
        (
            MsrAttr::SideEffect,
            LintId::MsrSideEffectWrite,
            Severity::Error,
            ("MSR with side effects", "MSRs with side effects"),
            "a write acts even when the value is unchanged: deny it, or let the hypervisor perform the action itself",
        ),
        (
            MsrAttr::ReadOnly,
            LintId::MsrReadOnlyWrite,
            Severity::Warning,
            (
                "architecturally read-only MSR",
                "architecturally read-only MSRs",
            ),
            "the host would choose what the guest reads from a read-only MSR: deny the write, or fix the value in the hypervisor",
        ),
    ];
    let mut reported: Vec<u32> = Vec::new();
    for (attr, lint, severity, what, help) in checks {
        let hits: Vec<&pvgate_codegen::registry::MsrEntry> = registry
            .msrs
            .iter()
            .filter(|m| m.has(attr) && !reported.contains(&m.index))
            .filter(|m| {
                ranges
                    .iter()
                    .any(|&(lo, hi)| lo <= m.index && m.index <= hi)
            })
            .collect();
        if hits.is_empty() {
            continue;
        }
        reported.extend(hits.iter().map(|m| m.index));
        let names: Vec<String> = hits
            .iter()
            .map(|m| format!("`{}` ({:#x})", m.name, m.index))
            .collect();
        let what = if names.len() == 1 { what.0 } else { what.1 };
        out.push(Finding {
            lint,
            severity,
            message: format!(
                "host may write the {what} {} on {}",
                join_and(&names),
                scope_of(rule, true)
            ),
            rule: Some(rule.name.clone()),
            span: rule.spans.resource.clone(),
            label: format!("{} {what}", names.len()),
            help: help.to_string(),
        });
    }
}

/// Lint `allow-if-unchanged`: a write allowed only as 0, or a reason saying "unchanged".
pub(super) fn allow_if_unchanged(
    out: &mut Vec<Finding>,
    rule: &IrRule,
    text: &str,
    registry: &Registry,
) {
    let Resources::Msr { ranges, accesses } = &rule.resources else {
        return;
    };
    let RuleDetail::Msr(c) = rule.detail else {
        return;
    };
    if rule.verdict != Verdict::Allow || !accesses.contains(&Access::Write) {
        return;
    }
    let what = ranges
        .iter()
        .map(|&(f, l)| describe::msr_range(registry, f, l))
        .collect::<Vec<_>>();
    let reason = rule.reason.to_ascii_lowercase();
    let phrase = [
        "unchanged",
        "same value",
        "current value",
        "if equal",
        "equals the current",
    ]
    .into_iter()
    .find(|p| reason.contains(p));
    let zero_only = c.write_mask == 0 && c.force_on == 0 && c.force_off == 0;
    if !zero_only && phrase.is_none() {
        return;
    }
    let message = if zero_only {
        format!(
            "rule lets the host write {} only when the value is 0: an \"allow if unchanged\" shape",
            join_and(&what)
        )
    } else {
        format!(
            "rule reason says the write of {} is allowed when the value is {}: an \"allow if unchanged\" shape",
            join_and(&what),
            phrase.unwrap_or("unchanged")
        )
    };
    let span = if zero_only {
        key_span(text, rule, "write-mask").unwrap_or(rule.spans.resource.clone())
    } else {
        key_span(text, rule, "reason").unwrap_or(rule.spans.rule.clone())
    };
    out.push(Finding {
        lint: LintId::AllowIfUnchanged,
        severity: Severity::Warning,
        message,
        rule: Some(rule.name.clone()),
        span,
        label: String::from("allow if unchanged"),
        help: String::from(
            "\"allow if unchanged\" is unsafe for MSRs with side effects (IA32_FLUSH_CMD, IA32_PRED_CMD) and for read-only or write-only MSRs: list exactly which bits the host may set with `write-mask`, or deny the write",
        ),
    });
}
