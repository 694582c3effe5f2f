//! The hypervisor's supported CPUID in `report`: the declared table
//! (`policy/registry/hypervisor-cpuid.toml`, part of every policy's IR and
//! digest) and what it makes of the reference CPU's CPUID for a protected
//! VM, in markdown and JSON.

use std::fmt::Write;

use pvgate_codegen::{Compiled, Interpreter, Registry, SupportEntry, support::SUPPORT_PATH};
use pvgate_gate::{RegSupport, Register, VmKind};
use pvgate_review::describe;
use serde_json::{Value, json};

/// One entry of the reference comparison: (leaf, subleaf), the hardware's
/// EAX..EDX, the protected base's EAX..EDX.
type BaseRow = ((u32, u32), [u32; 4], [u32; 4]);

/// The reference CPU's hardware CPUID and a protected VM's supported base
/// on it, entry by entry: ((leaf, subleaf), hardware, base). Empty if the
/// reference model does not build (it is checked by its own tests).
fn reference_base(interp: &Interpreter) -> Vec<BaseRow> {
    let Ok(cpu) = pvgate_trace::cpu_model("reference") else {
        return Vec::new();
    };
    pvgate_trace::supported_base(interp, &cpu, VmKind::Protected)
        .iter()
        .map(|b| {
            let hw = cpu.base_entry(b.leaf, b.subleaf);
            (
                (b.leaf, b.subleaf),
                Register::ALL.map(|r| hw.reg(r)),
                Register::ALL.map(|r| b.reg(r)),
            )
        })
        .collect()
}

/// Named features (or the hex rest) of `mask` in one register.
fn named(
    registry: &Registry,
    leaves: (u32, u32),
    subleaf: Option<u32>,
    reg: Register,
    mask: u32,
) -> String {
    let names = describe::features(registry, leaves, subleaf, reg, mask);
    let covered = registry
        .features
        .iter()
        .filter(|f| {
            leaves.0 <= f.leaf
                && f.leaf <= leaves.1
                && subleaf.is_none_or(|s| s == f.subleaf)
                && f.register() == Some(reg)
        })
        .fold(0u32, |m, f| m | f.mask());
    let rest = mask & !covered;
    let mut parts = names;
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    parts.join(", ")
}

/// One register's support as a table cell.
fn cell(registry: &Registry, e: &SupportEntry, reg: Register, s: RegSupport) -> String {
    let leaves = (e.support.leaf_first, e.support.leaf_last);
    let sub = e.support.subleaf;
    let pass = match s.pass {
        0 => String::new(),
        u32::MAX => String::from("all"),
        p if p.count_ones() >= 16 => {
            format!("all but {}", named(registry, leaves, sub, reg, !p))
        }
        p => format!("`{p:#x}`"),
    };
    let set = match s.set {
        0 => String::new(),
        m => format!("set {}", named(registry, leaves, sub, reg, m)),
    };
    match (pass.is_empty(), set.is_empty()) {
        (true, true) => String::from("none"),
        (false, true) => pass,
        (true, false) => set,
        (false, false) => format!("{pass}; {set}"),
    }
}

/// The report's section.
pub fn markdown(c: &Compiled, registry: &Registry) -> String {
    let interp = Interpreter::new(c.ir.clone());
    let ir = interp.ir();
    let mut o = String::new();
    let _ = writeln!(o, "\n## Hypervisor-supported CPUID (protected VMs)\n");
    let _ = writeln!(
        o,
        "A protected VM's base CPUID is the hardware's masked by `{SUPPORT_PATH}`: per register, the hardware bits passed through and the bits the hypervisor sets. No effective bit outside it survives, whatever the host proposes or the rules above give the host (the supported mask wins). Leaves not listed read as zero. Normal VMs are not masked. The digest covers this table.\n"
    );
    let _ = writeln!(o, "| line | leaf | EAX | EBX | ECX | EDX | reason |");
    let _ = writeln!(o, "|---:|---|---|---|---|---|---|");
    for e in &ir.supported {
        let s = e.support;
        let cells = Register::ALL.map(|r| cell(registry, e, r, s.reg(r)));
        let _ = writeln!(
            o,
            "| {} | `{}` | {} | {} | {} | {} | {} |",
            e.line,
            describe::cpuid_leaf((s.leaf_first, s.leaf_last), s.subleaf),
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            e.reason.replace('|', "\\|")
        );
    }
    let _ = writeln!(
        o,
        "\nOn the reference CPU (Xeon Gold 6252), a protected VM's base differs from the hardware here (before this policy's rules):\n"
    );
    let _ = writeln!(
        o,
        "| leaf | register | hardware | protected base | hidden | added |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|");
    for ((leaf, sub), hw, base) in reference_base(&interp) {
        for reg in Register::ALL {
            let (h, b) = (hw[reg as usize], base[reg as usize]);
            if h == b {
                continue;
            }
            let leaves = (leaf, leaf);
            let _ = writeln!(
                o,
                "| `{}` | {} | `{h:#010x}` | `{b:#010x}` | {} | {} |",
                describe::cpuid_leaf(leaves, Some(sub)),
                reg.name().to_ascii_uppercase(),
                named(registry, leaves, Some(sub), reg, h & !b),
                named(registry, leaves, Some(sub), reg, b & !h),
            );
        }
    }
    o
}

/// The report's JSON member `supported_cpuid`.
pub fn json(c: &Compiled) -> Value {
    let interp = Interpreter::new(c.ir.clone());
    let regs = |r: [RegSupport; 4]| {
        let mut m = serde_json::Map::new();
        for (reg, s) in Register::ALL.into_iter().zip(r) {
            m.insert(
                reg.name().to_string(),
                json!({"pass": format!("{:#x}", s.pass), "set": format!("{:#x}", s.set)}),
            );
        }
        Value::Object(m)
    };
    let hex4 = |v: [u32; 4]| v.map(|x| format!("{x:#x}")).to_vec();
    json!({
        "file": SUPPORT_PATH,
        "entries": interp.ir().supported.iter().map(|e| json!({
            "line": e.line,
            "leaf_first": format!("{:#x}", e.support.leaf_first),
            "leaf_last": format!("{:#x}", e.support.leaf_last),
            "subleaf": e.support.subleaf.map(|s| format!("{s:#x}")),
            "registers": regs(e.support.regs),
            "reason": e.reason,
        })).collect::<Vec<_>>(),
        "protected_base_reference_cpu": reference_base(&interp).into_iter().map(|((leaf, subleaf), hw, base)| json!({
            "leaf": format!("{leaf:#x}"),
            "subleaf": format!("{subleaf:#x}"),
            "hardware": hex4(hw),
            "base": hex4(base),
        })).collect::<Vec<_>>(),
    })
}
