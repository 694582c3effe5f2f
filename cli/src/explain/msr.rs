//! Explaining an MSR read or write, with the value checks of a write.

use std::fmt::Write;

use pvgate_codegen::{Compiled, Interpreter, Registry};
use pvgate_gate::{Access, Phase, Verdict, VmKind, check_msr_write, decide_msr};
use pvgate_review::bits::{bit_numbers, two_values};
use pvgate_review::describe::join_and;
use serde_json::{Value, json};

use super::explanation::{Explanation, rule_of, scope_excluding};

/// Why `access` of MSR `index` (with `value`, for a write) is decided so.
#[allow(clippy::too_many_arguments)]
pub(super) fn msr(
    c: &Compiled,
    registry: &Registry,
    kind: VmKind,
    phase: Phase,
    access: Access,
    index: u32,
    value: Option<u64>,
) -> Explanation {
    let interp = Interpreter::new(c.ir.clone());
    let d = decide_msr(&interp, kind, phase, access, index);
    let rule = rule_of(c, d.rule.map(|r| r.id));
    let what = registry.msr_display(index);
    let query = match value {
        Some(v) => format!(
            "host writes {v:#x} to {what} of a {} VM in `{}`",
            kind.name(),
            phase.name()
        ),
        None => format!(
            "host {}s {what} of a {} VM in `{}`",
            access.name(),
            kind.name(),
            phase.name()
        ),
    };
    let mut e = Explanation::new(
        query,
        d.verdict,
        rule,
        json!({"msr": format!("{index:#x}"), "access": access.name()}),
    );
    let Some(r) = d.rule else {
        for rule in c.ir.rules.iter() {
            let accs: Vec<Access> = Access::ALL
                .into_iter()
                .filter(|&a| rule.covers_msr(a, index))
                .collect();
            if accs.is_empty() {
                continue;
            }
            let same_scope = rule.applies(kind, phase);
            let where_ = if same_scope {
                format!(
                    "{} only",
                    join_and(
                        &accs
                            .iter()
                            .map(|a| a.name().to_string())
                            .collect::<Vec<_>>()
                    )
                )
            } else {
                format!(
                    "{} on {}",
                    join_and(
                        &accs
                            .iter()
                            .map(|a| a.name().to_string())
                            .collect::<Vec<_>>()
                    ),
                    scope_excluding(rule, kind, phase)
                )
            };
            e.nearest.push((rule.clone(), where_));
        }
        return e;
    };
    // `decide_msr` answers only MSR rules, so the constraint is there.
    let Some(con) = r.msr_constraint() else {
        return e;
    };
    if access == Access::Read && d.verdict == Verdict::Allow && con.read_mask != u64::MAX {
        e.details.push(format!(
            "the host sees only bits {:#x} of the value (read-mask)",
            con.read_mask
        ));
    }
    if let (Some(v), Verdict::Allow) = (value, d.verdict) {
        let bit_name = |b: u32| {
            registry
                .msr_by_index(index)
                .and_then(|m| m.bits.iter().find(|x| u32::from(x.bit) == b))
                .map_or_else(|| format!("bit {b}"), |x| format!("bit {b} ({})", x.name))
        };
        match check_msr_write(con, v) {
            Err(err) => {
                e.verdict = Verdict::Deny;
                e.note = Some(format!(
                    "the rule allows the write, but the value sets bits outside its write-mask {:#x}",
                    con.write_mask
                ));
                let mut s =
                    String::from("refused bits (requested value vs. the bits the host may set):\n");
                s.push_str(&two_values(
                    "  ",
                    ("requested", v),
                    ("permitted", v & con.write_mask),
                    64,
                ));
                let names: Vec<String> =
                    bit_numbers(err.refused).into_iter().map(bit_name).collect();
                let _ = write!(s, "  refused: {}", join_and(&names));
                e.details.push(s);
                e.extra["value"] = json!({"requested": format!("{v:#x}"), "write_mask": format!("{:#x}", con.write_mask), "refused": format!("{:#x}", err.refused), "stored": Value::Null});
            }
            Ok(stored) => {
                if stored != v {
                    let mut s = String::from(
                        "forced bits (requested value vs. what the MSR holds after the write):\n",
                    );
                    s.push_str(&two_values("  ", ("requested", v), ("stored", stored), 64));
                    let on: Vec<String> =
                        bit_numbers(stored & !v).into_iter().map(bit_name).collect();
                    let off: Vec<String> =
                        bit_numbers(v & !stored).into_iter().map(bit_name).collect();
                    if !on.is_empty() {
                        let _ = write!(s, "  forced on: {}", join_and(&on));
                    }
                    if !off.is_empty() {
                        let _ = write!(
                            s,
                            "{}  forced off: {}",
                            if on.is_empty() { "" } else { "\n" },
                            join_and(&off)
                        );
                    }
                    e.details.push(s);
                } else {
                    e.details
                        .push(format!("the value {v:#x} is stored unchanged"));
                }
                e.extra["value"] = json!({"requested": format!("{v:#x}"), "write_mask": format!("{:#x}", con.write_mask), "refused": "0x0", "stored": format!("{stored:#x}")});
            }
        }
    }
    e
}
