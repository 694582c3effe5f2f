//! Explaining a CPUID leaf, register or bit: `--reg`/`--bit` resolution
//! and each register's control mode.

use pvgate_codegen::{Compiled, Interpreter, Registry};
use pvgate_gate::{BitMode, Phase, RegControl, Register, Verdict, VmKind, decide_cpuid};
use pvgate_review::describe;
use serde_json::{Value, json};

use crate::error::CliError;
use crate::load;

use super::explanation::{Explanation, rule_of, scope_excluding};

/// Resolves `--reg`/`--bit` to a register and an optional bit number.
pub(super) fn cpuid_bit(
    registry: &Registry,
    leaf: u32,
    subleaf: u32,
    reg: Option<Register>,
    bit: Option<&str>,
) -> Result<(Option<Register>, Option<u32>), CliError> {
    let Some(bit) = bit else {
        return Ok((reg, None));
    };
    if let Some(n) = load::number(bit) {
        if n > 31 {
            return Err(CliError::arg(format!(
                "bit `{bit}` is out of range: CPUID registers have bits 0..=31"
            )));
        }
        if reg.is_none() {
            return Err(CliError::arg(
                "`--bit` with a bit number needs `--reg eax|ebx|ecx|edx`",
            ));
        }
        return Ok((reg, Some(n as u32)));
    }
    let upper = bit.to_ascii_uppercase();
    let Some(f) = registry.feature(&upper) else {
        let names = registry.features.iter().map(|f| f.name.as_str());
        return Err(CliError::arg_with(
            format!("unknown CPUID feature `{bit}`"),
            pvgate_codegen::diagnostic::suggest(bit, names).map(|s| format!("did you mean `{s}`?")),
        ));
    };
    if f.leaf != leaf || f.subleaf != subleaf || reg.is_some_and(|r| Some(r) != f.register()) {
        return Err(CliError::arg(format!(
            "`{}` is {}, not in the leaf and register asked about",
            f.name,
            f.location()
        )));
    }
    Ok((f.register(), Some(f.mask().trailing_zeros())))
}

/// A bit's control mode in words.
fn mode_of(c: &RegControl, bit: u32) -> &'static str {
    match c.mode_of(bit) {
        BitMode::Host => "host: the host's value is taken",
        BitMode::ClearOnly => "clear-only: the host may clear it, never set it",
        BitMode::ForceOn => "force-on: always 1",
        BitMode::ForceOff => "force-off: always 0",
        BitMode::Fixed => "fixed: the hypervisor's base value is kept",
    }
}

/// Why a CPUID proposal for a leaf (one register or bit) is decided so.
#[allow(clippy::too_many_arguments)]
pub(super) fn cpuid(
    c: &Compiled,
    registry: &Registry,
    kind: VmKind,
    phase: Phase,
    leaf: u32,
    subleaf: u32,
    reg: Option<Register>,
    bit: Option<u32>,
) -> Explanation {
    let interp = Interpreter::new(c.ir.clone());
    let d = decide_cpuid(&interp, kind, phase, leaf, subleaf);
    let rule = rule_of(c, d.rule.map(|r| r.id));
    let loc = describe::cpuid_leaf((leaf, leaf), Some(subleaf));
    let target = match (reg, bit) {
        (Some(r), Some(b)) => format!("{loc}:{}[{b}]", r.name().to_ascii_uppercase()),
        (Some(r), None) => format!("{loc}:{}", r.name().to_ascii_uppercase()),
        _ => loc.clone(),
    };
    let query = format!(
        "host proposes {target} for a {} VM in `{}`",
        kind.name(),
        phase.name()
    );
    let mut e = Explanation::new(
        query,
        d.verdict,
        rule,
        json!({"cpuid": {"leaf": format!("{leaf:#x}"), "subleaf": format!("{subleaf:#x}")}}),
    );
    let controls = d
        .rule
        .map(|r| r.cpuid_controls())
        .unwrap_or([RegControl::FIXED; 4]);
    if d.rule.is_none() {
        for rule in c.ir.rules.iter().filter(|r| r.covers_cpuid(leaf, subleaf)) {
            e.nearest
                .push((rule.clone(), scope_excluding(rule, kind, phase)));
        }
        e.details.push(format!(
            "every bit of {loc} keeps the hypervisor's base value"
        ));
    }
    let regs: Vec<Register> = reg.map_or_else(|| Register::ALL.to_vec(), |r| vec![r]);
    let mut regs_json = serde_json::Map::new();
    for r in regs {
        let ctl = controls[r as usize];
        let name = r.name().to_ascii_uppercase();
        match bit {
            Some(b) => {
                let feats = describe::features(registry, (leaf, leaf), Some(subleaf), r, 1 << b);
                let named = if feats.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", feats.join(", "))
                };
                e.details
                    .push(format!("{name}[{b}]{named} is {}", mode_of(&ctl, b)));
                regs_json.insert(
                    r.name().into(),
                    json!({"bit": b, "mode": mode_of(&ctl, b).split(':').next().unwrap_or("")}),
                );
            }
            None if d.rule.is_some() => {
                e.details
                    .push(format!("{name}: {}", describe::reg_control(&ctl)));
                let host_feats = describe::features(
                    registry,
                    (leaf, leaf),
                    Some(subleaf),
                    r,
                    ctl.host | ctl.clear_only,
                );
                if !host_feats.is_empty() {
                    e.details.push(format!(
                        "  host-controlled features: {}",
                        host_feats.join(", ")
                    ));
                }
                regs_json.insert(r.name().into(), json!({"host": format!("{:#x}", ctl.host), "clear_only": format!("{:#x}", ctl.clear_only), "force_on": format!("{:#x}", ctl.force_on), "force_off": format!("{:#x}", ctl.force_off)}));
            }
            None => {}
        }
    }
    if d.rule.is_some() && d.verdict == Verdict::Allow {
        e.details.push(format!(
            "host bits outside its control: {} ({})",
            c.ir.violation_mode.name(),
            match c.ir.violation_mode {
                pvgate_gate::ViolationMode::Filter =>
                    "the hypervisor's value is taken silently and counted",
                pvgate_gate::ViolationMode::Reject =>
                    "the call fails and the corrected table is reported",
            }
        ));
    }
    e.extra["registers"] = Value::Object(regs_json);
    e
}
