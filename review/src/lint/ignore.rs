//! `ignore` verdicts: stopgaps that hide failed host requests.

use pvgate_codegen::{IrRule, Registry, Resources};
use pvgate_gate::{Access, Verdict};

use super::finding::{Finding, LintId, Severity};
use super::rule::scope_of;
use crate::describe::{self, join_and};

/// Lint `ignore-verdict`: what the `ignore` hides.
pub(super) fn ignore_verdict(out: &mut Vec<Finding>, rule: &IrRule, registry: &Registry) {
    if rule.verdict != Verdict::Ignore {
        return;
    }
    let hides = match &rule.resources {
        Resources::Msr { ranges, accesses } => {
            let what: Vec<String> = ranges
                .iter()
                .map(|&(f, l)| describe::msr_range(registry, f, l))
                .collect();
            let acc: Vec<String> = accesses
                .iter()
                .map(|a| match a {
                    Access::Read => String::from("reads of them return zeros"),
                    Access::Write => {
                        String::from("writes to them report success and change nothing")
                    }
                })
                .collect();
            format!("{}: {}", join_and(&what), join_and(&acc))
        }
        Resources::Pv { calls } => {
            let names: Vec<String> = calls.iter().map(|c| format!("`{}`", c.name())).collect();
            format!(
                "calls to {} report success and change nothing (getters return zeros)",
                join_and(&names)
            )
        }
        Resources::Cpuid { .. } => String::from("host CPUID proposals are accepted and dropped"),
    };
    out.push(Finding {
        lint: LintId::IgnoreVerdict,
        severity: Severity::Warning,
        message: format!("`ignore` hides failed host requests on {}: {hides}", scope_of(rule, false)),
        rule: Some(rule.name.clone()),
        span: rule.spans.verdict.clone(),
        label: String::from("the VMM never learns these had no effect"),
        help: String::from(
            "`ignore` is a stopgap for a VMM that still makes the request: deny it once the VMM is fixed (policy/strict.toml shows how)",
        ),
    });
}
