//! What the checks read off a rule: its scope and where its keys are written.

use std::ops::Range;

use pvgate_codegen::IrRule;
use pvgate_gate::VmKind;

use crate::describe;

/// Whether a rule applies to protected VMs.
pub(super) fn protected(rule: &IrRule) -> bool {
    rule.kinds.contains(&VmKind::Protected)
}

/// The rule's scope in words; only its protected part if `only_protected`.
pub(super) fn scope_of(rule: &IrRule, only_protected: bool) -> String {
    let kinds: Vec<VmKind> = if only_protected {
        vec![VmKind::Protected]
    } else {
        rule.kinds.clone()
    };
    describe::scope(&kinds, &rule.phases)
}

/// The span of `key = value`'s value inside a rule's table, if written there.
pub fn key_span(text: &str, rule: &IrRule, key: &str) -> Option<Range<usize>> {
    let start = rule.spans.rule.start;
    let body = text.get(start..)?;
    let mut offset = start;
    for (n, line) in body.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_start();
        if n > 0 && trimmed.starts_with('[') {
            return None;
        }
        if let Some(rest) = trimmed.strip_prefix(key) {
            let rest_trim = rest.trim_start();
            if let Some(value) = rest_trim.strip_prefix('=') {
                let value_start = offset + (line.len() - value.trim_start().len());
                let value_len = value.trim_end().len()
                    - (value.len() - value.trim_start().len()).min(value.trim_end().len());
                return Some(value_start..value_start + value_len.max(1));
            }
        }
        offset += line.len();
    }
    None
}
