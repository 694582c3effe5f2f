//! Lint: findings a reviewer should look at in a valid policy, each with
//! its lint, a severity, the rule's span and a fix hint. `pvgate lint`
//! renders them (human, JSON, SARIF). One module per group of checks.

mod cpuid;
mod explain;
mod finding;
mod ignore;
mod msr;
mod normal;
mod reasons;
mod rule;
mod running;

use pvgate_codegen::{Compiled, Registry};

pub use finding::{Finding, LINTS, Lint, LintId, Severity};
pub use rule::key_span;

/// Every finding in a compiled policy, in rule order.
pub fn findings(c: &Compiled, registry: &Registry) -> Vec<Finding> {
    let mut out = Vec::new();
    for rule in &c.ir.rules {
        msr::msr_attr_writes(&mut out, rule, registry);
        msr::allow_if_unchanged(&mut out, rule, &c.text, registry);
        cpuid::cpuid_security(&mut out, rule, registry);
        cpuid::cpuid_unsupported(&mut out, rule, &c.ir);
        ignore::ignore_verdict(&mut out, rule, registry);
        running::running_guest_state(&mut out, rule, registry);
    }
    reasons::weak_reasons(&mut out, &c.ir, &c.text);
    normal::normal_allow_all(&mut out, &c.ir, &c.text);
    out.sort_by_key(|f| (f.span.start, f.severity, f.lint.name()));
    out
}
