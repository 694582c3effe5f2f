//! Reasons a reviewer cannot check: boilerplate, too short, or copied.

use pvgate_codegen::Ir;

use super::finding::{Finding, LintId, Severity};
use super::rule::key_span;

/// Words that make a reason say nothing a reviewer can check.
const BOILERPLATE_STARTS: [&str; 8] = [
    "todo",
    "fixme",
    "tbd",
    "xxx",
    "wip",
    "temp",
    "placeholder",
    "see above",
];
const BOILERPLATE_WHOLE: [&str; 10] = [
    "needed",
    "required",
    "necessary",
    "as before",
    "as above",
    "legacy",
    "for now",
    "because",
    "allowed",
    "default",
];

/// Lint `weak-reason`: boilerplate, fewer than 4 words, or an earlier rule's reason.
pub(super) fn weak_reasons(out: &mut Vec<Finding>, ir: &Ir, text: &str) {
    for (i, rule) in ir.rules.iter().enumerate() {
        let reason = rule.reason.trim();
        let lower = reason.to_ascii_lowercase();
        let words = reason.split_whitespace().count();
        let span = key_span(text, rule, "reason").unwrap_or(rule.spans.rule.clone());
        let problem = if BOILERPLATE_STARTS.iter().any(|b| lower.starts_with(b))
            || BOILERPLATE_WHOLE.contains(&lower.trim_end_matches('.'))
        {
            Some(format!(
                "rule `{}` has a boilerplate reason `{reason}`",
                rule.name
            ))
        } else if words < 4 {
            Some(format!(
                "rule `{}` has a {words}-word reason `{reason}`",
                rule.name
            ))
        } else {
            ir.rules[..i]
                .iter()
                .find(|r| r.reason.trim() == reason)
                .map(|prev| {
                    format!(
                        "rule `{}` has the same reason as rule `{}` (line {})",
                        rule.name, prev.name, prev.line
                    )
                })
        };
        if let Some(message) = problem {
            out.push(Finding {
                lint: LintId::WeakReason,
                severity: Severity::Warning,
                message,
                rule: Some(rule.name.clone()),
                span,
                label: String::from("a reviewer cannot check this"),
                help: String::from("say why this rule exists and cite its source (pKVM-IA, the review thread, crosvm)"),
            });
        }
    }
}
