//! Explaining a PV call.

use pvgate_codegen::{Compiled, Interpreter};
use pvgate_gate::{Phase, PvCall, Verdict, VmKind, decide_pv};
use serde_json::json;

use super::explanation::{Explanation, rule_of, scope_excluding};

/// Why a PV call is decided so, with its value checks.
pub(super) fn pv(c: &Compiled, kind: VmKind, phase: Phase, call: PvCall) -> Explanation {
    let interp = Interpreter::new(c.ir.clone());
    let d = decide_pv(&interp, kind, phase, call);
    let rule = rule_of(c, d.rule.map(|r| r.id));
    let query = format!(
        "host calls `{}` on a {} VM in `{}`",
        call.name(),
        kind.name(),
        phase.name()
    );
    let mut e = Explanation::new(query, d.verdict, rule, json!({"pv": call.name()}));
    match d.rule {
        None => {
            for rule in c.ir.rules.iter().filter(|r| r.covers_pv(call)) {
                e.nearest
                    .push((rule.clone(), scope_excluding(rule, kind, phase)));
            }
        }
        // `decide_pv` answers only PV rules, so the constraint is there.
        Some(r) if d.verdict == Verdict::Allow => {
            let Some(pc) = r.pv_constraint() else {
                return e;
            };
            if pc.read_mask != u64::MAX {
                e.details.push(format!(
                    "the host sees only bits {:#x} of the returned value (read-mask)",
                    pc.read_mask
                ));
            }
            if pc.min_vector != 0 || !pc.allow_soft {
                e.details.push(format!(
                    "value checks: vectors below {} are refused; software interrupts are {}",
                    pc.min_vector,
                    if pc.allow_soft { "allowed" } else { "refused" }
                ));
            }
        }
        Some(_) => {}
    }
    e
}
