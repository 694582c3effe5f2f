//! Wording shared by the commands: MSR ranges by registry name, CPUID
//! locations, VM-kind/phase scopes and rule locations.

use pvgate_codegen::{IrRule, Registry};
use pvgate_gate::{Phase, RegControl, Register, Verdict, VmKind};

/// `a`, `a and b`, `a, b and c`.
pub fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// An MSR or an inclusive range, by registry name where known.
pub fn msr_range(registry: &Registry, first: u32, last: u32) -> String {
    if first == last {
        return registry.msr_display(first);
    }
    if first == 0 && last == u32::MAX {
        return String::from("every MSR (0x0-0xffffffff)");
    }
    match (registry.msr_by_index(first), registry.msr_by_index(last)) {
        (Some(a), Some(b)) => format!("MSRs {first:#x}-{last:#x} ({} .. {})", a.name, b.name),
        _ => format!("MSRs {first:#x}-{last:#x}"),
    }
}

/// `protected VMs in setup and running`; kinds and phases as given.
pub fn scope(kinds: &[VmKind], phases: &[Phase]) -> String {
    let k: Vec<String> = kinds.iter().map(|k| k.name().to_string()).collect();
    let p: Vec<String> = phases.iter().map(|p| p.name().to_string()).collect();
    let all_phases = phases.len() == Phase::ALL.len();
    if all_phases {
        format!("{} VMs in every phase", join_and(&k))
    } else {
        format!("{} VMs in {}", join_and(&k), join_and(&p))
    }
}

/// Several (kind, phase) pairs worded as few scopes as possible:
/// `protected VMs in setup; normal VMs in every phase`.
pub fn scopes(pairs: &[(VmKind, Phase)]) -> String {
    let mut parts = Vec::new();
    for kind in VmKind::ALL {
        let phases: Vec<Phase> = pairs
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, p)| *p)
            .collect();
        if !phases.is_empty() {
            parts.push((kind, phases));
        }
    }
    // Same phases for every kind: one scope.
    if parts.len() > 1 && parts.windows(2).all(|w| w[0].1 == w[1].1) {
        let kinds: Vec<VmKind> = parts.iter().map(|(k, _)| *k).collect();
        return scope(&kinds, &parts[0].1);
    }
    parts
        .iter()
        .map(|(k, p)| scope(&[*k], p))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `path:line:column` of a rule.
pub fn location(path: &str, rule: &IrRule) -> String {
    format!("{path}:{}:{}", rule.line, rule.column)
}

/// `rule `name` at path:line:col`.
pub fn rule_ref(path: &str, rule: &IrRule) -> String {
    format!("rule `{}` at {}", rule.name, location(path, rule))
}

/// A CPUID register location, SDM style: `CPUID.(EAX=0x7,ECX=0):EBX`,
/// `CPUID.(EAX=0x4):EAX` for every subleaf, ranges as `0x80000002..0x80000006`.
pub fn cpuid_reg(leaves: (u32, u32), subleaf: Option<u32>, reg: Register) -> String {
    format!(
        "{}:{}",
        cpuid_leaf(leaves, subleaf),
        reg.name().to_ascii_uppercase()
    )
}

/// `CPUID.(EAX=0x7,ECX=0)`, `CPUID.(EAX=0x4)` (every subleaf), or a leaf range.
pub fn cpuid_leaf(leaves: (u32, u32), subleaf: Option<u32>) -> String {
    let leaf = if leaves.0 == 0 && leaves.1 == u32::MAX {
        String::from("*")
    } else if leaves.0 == leaves.1 {
        format!("{:#x}", leaves.0)
    } else {
        format!("{:#x}..{:#x}", leaves.0, leaves.1)
    };
    match subleaf {
        Some(s) => format!("CPUID.(EAX={leaf},ECX={s})"),
        None => format!("CPUID.(EAX={leaf})"),
    }
}

/// Names of the registry features whose bits intersect `mask` in the given
/// leaves/subleaf/register; security-critical ones are marked `(security)`.
pub fn features(
    registry: &Registry,
    leaves: (u32, u32),
    subleaf: Option<u32>,
    reg: Register,
    mask: u32,
) -> Vec<String> {
    registry
        .features
        .iter()
        .filter(|f| {
            leaves.0 <= f.leaf
                && f.leaf <= leaves.1
                && subleaf.is_none_or(|s| s == f.subleaf)
                && f.register() == Some(reg)
                && f.mask() & mask != 0
        })
        .map(|f| {
            if f.security {
                format!("{} (security)", f.name)
            } else {
                f.name.clone()
            }
        })
        .collect()
}

/// One line per non-fixed mode of a register control: `host 0xff`.
pub fn reg_control(c: &RegControl) -> String {
    if *c == RegControl::FIXED {
        return String::from("fixed");
    }
    let mut parts = Vec::new();
    for (name, m) in [
        ("host", c.host),
        ("clear-only", c.clear_only),
        ("force-on", c.force_on),
        ("force-off", c.force_off),
    ] {
        if m != 0 {
            parts.push(format!("{name} {m:#x}"));
        }
    }
    parts.join(", ")
}

/// What a verdict means for the host, in a few words.
pub fn verdict_meaning(v: Verdict) -> &'static str {
    match v {
        Verdict::Allow => "carried out",
        Verdict::Deny => "refused with -EPERM",
        Verdict::Ignore => "reported as success, nothing changes (reads return zeros)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_collapse_kinds_with_the_same_phases() {
        let pairs = [
            (VmKind::Protected, Phase::Setup),
            (VmKind::Normal, Phase::Setup),
        ];
        assert_eq!(scopes(&pairs), "protected and normal VMs in setup");
        let pairs = [
            (VmKind::Protected, Phase::Setup),
            (VmKind::Protected, Phase::Running),
        ];
        assert_eq!(scopes(&pairs), "protected VMs in setup and running");
        let pairs = [
            (VmKind::Protected, Phase::Setup),
            (VmKind::Normal, Phase::Running),
        ];
        assert_eq!(
            scopes(&pairs),
            "protected VMs in setup; normal VMs in running"
        );
    }

    #[test]
    fn msr_ranges_use_registry_names() {
        let r = Registry::builtin();
        assert_eq!(msr_range(r, 0xda0, 0xda0), "IA32_XSS (0xda0)");
        assert_eq!(msr_range(r, 0, u32::MAX), "every MSR (0x0-0xffffffff)");
        assert_eq!(
            msr_range(r, 0x1234_5670, 0x1234_5671),
            "MSRs 0x12345670-0x12345671"
        );
    }

    #[test]
    fn cpuid_locations_read_like_the_sdm() {
        assert_eq!(
            cpuid_reg((7, 7), Some(0), Register::Ebx),
            "CPUID.(EAX=0x7,ECX=0):EBX"
        );
        assert_eq!(
            cpuid_leaf((0x80000002, 0x80000006), None),
            "CPUID.(EAX=0x80000002..0x80000006)"
        );
    }
}
