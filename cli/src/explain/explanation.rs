//! What `explain` found, before rendering, and the helpers every kind of
//! request shares.

use pvgate_codegen::{Compiled, IrRule};
use pvgate_gate::{Phase, Verdict, VmKind};
use pvgate_review::describe;
use serde_json::Value;

/// What `explain` found, before rendering.
pub(super) struct Explanation {
    /// The request, in words.
    pub(super) query: String,
    /// The verdict (a value check may turn the rule's `allow` into `deny`).
    pub(super) verdict: Verdict,
    /// Why the verdict differs from the rule's, if it does.
    pub(super) note: Option<String>,
    /// The deciding rule (`None`: default deny).
    pub(super) rule: Option<IrRule>,
    /// With default deny: rules that match in another scope, and where.
    pub(super) nearest: Vec<(IrRule, String)>,
    /// Value drawings and other detail lines.
    pub(super) details: Vec<String>,
    /// The request as JSON, for `--format json`.
    pub(super) extra: Value,
}

impl Explanation {
    /// A decision with no note, nearest rules or details yet.
    pub(super) fn new(
        query: String,
        verdict: Verdict,
        rule: Option<IrRule>,
        extra: Value,
    ) -> Explanation {
        Explanation {
            query,
            verdict,
            note: None,
            rule,
            nearest: Vec::new(),
            details: Vec::new(),
            extra,
        }
    }
}

/// The rule with this id, if any.
pub(super) fn rule_of(c: &Compiled, id: Option<pvgate_gate::RuleId>) -> Option<IrRule> {
    id.and_then(|id| c.ir.rule(id)).cloned()
}

/// The rule's scope in words, without the (kind, phase) asked about.
pub(super) fn scope_excluding(rule: &IrRule, kind: VmKind, phase: Phase) -> String {
    let pairs: Vec<(VmKind, Phase)> = rule
        .kinds
        .iter()
        .flat_map(|&k| rule.phases.iter().map(move |&p| (k, p)))
        .filter(|&(k, p)| (k, p) != (kind, phase))
        .collect();
    if pairs.is_empty() {
        describe::scope(&rule.kinds, &rule.phases)
    } else {
        describe::scopes(&pairs)
    }
}
