//! The merge of `vcpu_after_set_cpuid` as specified, written the simple
//! way (every register through `merge_supported`, the proposal's entries
//! in its order and then the base entries it leaves out), and the
//! policies the merge is checked under; shared by
//! `cpuid_merge_reference.rs` (random proposals) and
//! `cpuid_merge_attacks.rs` (proposals aimed at the merge's shortcuts).
#![allow(dead_code)]

use crate::common::*;
use pvgate_codegen::Interpreter;
use pvgate_gate::{
    Access, CpuidSupport, Phase, Policy, PvCall, RegControl, Register, Rule, RuleId, Verdict,
    ViolationMode, VmKind, decide_cpuid, merge_supported, support_for,
};
use pvgate_hyp::{
    CallError, CpuModel, CpuidEntry, CpuidTable, MAX_CPUID_ENTRIES, VcpuHandle, supported_base,
};

/// What the specified merge gives.
#[derive(Debug, PartialEq, Eq)]
pub struct Expected {
    pub error: Option<CallError>,
    /// The outputs, for a merge that did not fail before merging.
    pub out: Option<[u64; 4]>,
    pub replaced: u32,
    /// The rule named for the first replaced register.
    pub rule: Option<Option<RuleId>>,
    pub table: Vec<CpuidEntry>,
    pub vcpu: Vec<CpuidEntry>,
}

pub fn key(e: &CpuidEntry) -> (u32, u32) {
    (e.leaf, e.subleaf)
}

/// The merge as specified, for a vCPU in `setup` whose table is `prior`.
pub fn reference<P: Policy>(
    policy: &P,
    cpu: &CpuModel,
    kind: VmKind,
    proposal: &[CpuidEntry],
    prior: &[CpuidEntry],
) -> Expected {
    let unchanged = |error| Expected {
        error: Some(error),
        out: None,
        replaced: 0,
        rule: None,
        table: proposal.to_vec(),
        vcpu: prior.to_vec(),
    };
    // The first entry whose key appears again later.
    for (i, e) in proposal.iter().enumerate() {
        if proposal[i + 1..].iter().any(|f| key(f) == key(e)) {
            return unchanged(CallError::CpuidDuplicate {
                leaf: e.leaf,
                subleaf: e.subleaf,
            });
        }
    }
    // The proposal's entries, then the base entries it leaves out, as
    // zeros.
    let base = supported_base(policy, cpu, kind);
    let mut entries: Vec<CpuidEntry> = proposal.to_vec();
    for b in &base {
        if !proposal.iter().any(|p| key(p) == key(b)) {
            entries.push(CpuidEntry::zero(b.leaf, b.subleaf));
        }
    }
    if entries.len() > MAX_CPUID_ENTRIES {
        return unchanged(CallError::CpuidTooLarge {
            count: entries.len() as u64,
        });
    }
    let mut effective = Vec::new();
    let mut first = None;
    let mut replaced = 0u32;
    for host in &entries {
        let (leaf, subleaf) = key(host);
        let d = decide_cpuid(policy, kind, Phase::Setup, leaf, subleaf);
        let controls = d
            .granted(|r| Some(r.cpuid_controls()))
            .unwrap_or([RegControl::FIXED; 4]);
        let support = support_for(policy.cpuid_support(), kind, leaf, subleaf);
        let hw = cpu.base_entry(leaf, subleaf);
        let mut e = CpuidEntry::zero(leaf, subleaf);
        for (i, reg) in Register::ALL.into_iter().enumerate() {
            let m = merge_supported(hw.reg(reg), host.reg(reg), controls[i], support[i]);
            e.set_reg(reg, m.effective);
            if m.violations != 0 && d.verdict != Verdict::Ignore {
                replaced += 1;
                first.get_or_insert((
                    (leaf, subleaf, reg, host.reg(reg), m.effective),
                    d.rule.map(|r| r.id),
                ));
            }
        }
        effective.push(e);
    }
    effective.sort_by_key(key);
    let len = effective.len() as u64;
    let Some(((leaf, subleaf, reg, host, eff), rule)) = first else {
        return Expected {
            error: None,
            out: Some([len, 0, 0, 0]),
            replaced: 0,
            rule: None,
            table: effective.clone(),
            vcpu: effective,
        };
    };
    let out = [
        len,
        u64::from(replaced),
        u64::from(leaf) << 32 | u64::from(subleaf),
        (reg as u64) << 32 | u64::from(host ^ eff),
    ];
    let (error, vcpu) = match policy.violation_mode() {
        ViolationMode::Filter => (None, effective.clone()),
        ViolationMode::Reject => (
            Some(CallError::CpuidRejected {
                leaf,
                subleaf,
                reg,
                host,
                effective: eff,
            }),
            prior.to_vec(),
        ),
    };
    Expected {
        error,
        out: Some(out),
        replaced,
        rule: Some(rule),
        table: effective,
        vcpu,
    }
}

/// A policy whose rule named `ignored` has the verdict `ignore` (no policy
/// file can say so for CPUID; a hand-written policy can).
pub struct Ignoring {
    pub inner: Interpreter,
    pub ignored: &'static str,
}

impl Policy for Ignoring {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn digest(&self) -> [u8; 32] {
        self.inner.digest()
    }
    fn violation_mode(&self) -> ViolationMode {
        self.inner.violation_mode()
    }
    fn msr_rule(&self, kind: VmKind, phase: Phase, access: Access, index: u32) -> Option<RuleId> {
        self.inner.msr_rule(kind, phase, access, index)
    }
    fn cpuid_rule(&self, kind: VmKind, phase: Phase, leaf: u32, subleaf: u32) -> Option<RuleId> {
        self.inner.cpuid_rule(kind, phase, leaf, subleaf)
    }
    fn pv_rule(&self, kind: VmKind, phase: Phase, call: PvCall) -> Option<RuleId> {
        self.inner.pv_rule(kind, phase, call)
    }
    fn rule(&self, id: RuleId) -> Option<Rule<'_>> {
        self.inner.rule(id).map(|r| Rule {
            verdict: if r.name == self.ignored {
                Verdict::Ignore
            } else {
                r.verdict
            },
            ..r
        })
    }
    fn cpuid_support(&self) -> &[CpuidSupport] {
        self.inner.cpuid_support()
    }
}

/// The default policy plus rules that give the host bits the hypervisor
/// does not support, clear-only bits, and a leaf nothing supports.
pub fn careless() -> Interpreter {
    let text = std::fs::read_to_string(root().join("policy/default.toml")).unwrap()
        + r#"
[[cpuid]]
name = "careless-pmu"
leaf = 0xA
vm = ["protected"]
phase = ["setup"]
verdict = "allow"
eax = { host = 0xFFFFFFFF }
ecx = { clear-only = 0xFFFF0000, host = 0x0000FFFF }
reason = "a test rule"

[[cpuid]]
name = "careless-power"
leaf = 0x6
vm = ["protected"]
phase = ["setup"]
verdict = "allow"
ebx = { clear-only = 0xFFFFFFFF }
ecx = { host = 0xF0F0F0F0, force-on = 0x0F000000 }
edx = { force-off = 0xFFFF }
reason = "a test rule"

[[cpuid]]
name = "careless-own-leaf"
leaf = 0x40000010
vm = ["protected"]
phase = ["setup"]
verdict = "allow"
eax = { host = 0xFFFFFFFF }
reason = "a test rule"
"#;
    Interpreter::new(pvgate_codegen::compile_in_dir(&text, &root().join("policy")).unwrap())
}

/// Sends `table` to `vcpu_after_set_cpuid` on `v` and reads what it gave
/// in the terms of `expected` (the outputs and rule only where the
/// reference has them).
pub fn merged<P: Policy>(
    h: &SmallHyp<P>,
    v: VcpuHandle,
    table: &mut CpuidTable,
    expected: &Expected,
) -> Expected {
    let o = h.vcpu_after_set_cpuid(v, table);
    Expected {
        error: o.error,
        out: expected.out.map(|_| o.out),
        replaced: o.replaced,
        rule: expected.rule.map(|_| o.rule),
        table: table.to_vec(),
        vcpu: snapshot(h, v).cpuid.to_vec(),
    }
}

/// Merges `proposal` on `v` (a vCPU of `kind` in `setup`) and checks
/// every result against [`reference`]; returns what the reference gives.
pub fn check<P: Policy>(
    h: &SmallHyp<P>,
    kind: VmKind,
    v: VcpuHandle,
    proposal: &[CpuidEntry],
) -> Expected {
    let cpu = h.cpu_model().unwrap();
    let prior = snapshot(h, v).cpuid;
    let expected = reference(h.policy(), cpu, kind, proposal, &prior);
    let mut table = CpuidTable::new();
    for e in proposal {
        table.push(*e).unwrap();
    }
    let got = merged(h, v, &mut table, &expected);
    assert_eq!(got, expected, "{kind:?} proposal {proposal:x?}");
    expected
}
