//! Running a loaded vector file against a policy: decision-only cases
//! through the policy's decision functions, hyp cases (and traces) through
//! the hypervisor core by [`replay`](crate::replay). No file I/O: a file
//! is parsed once ([`parse_vectors`](crate::vectors::parse_vectors)) and run against any number of
//! policies.

use std::sync::OnceLock;

use pvgate_codegen::Registry;
use pvgate_gate::{
    Access, BitMode, Phase, Policy, PvCall, Rule, Verdict, VmKind, check_msr_write, decide_cpuid,
    decide_msr, decide_pv,
};
use pvgate_hyp::{Call, CpuModel, Resource};

use crate::cpu::cpu_model;
use crate::model::{Expect, Trace, TraceCall};
use crate::replay::{RuleRef, Step, replay, replay_with_cpu};
use crate::vectors::{Case, Check, HypCase, VectorBody, VectorFile};

/// The result of one case (or of one call with expectations of a trace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseResult {
    /// 1-based line of the `[[case]]` (or the trace's `[[call]]`).
    pub line: usize,
    /// Whether every expectation held.
    pub passed: bool,
    /// Whether it ran through hyp (a hyp case or a trace call).
    pub hyp: bool,
    /// The request, e.g. `protected running `inject_irq` vector 0x1f`.
    pub request: String,
    /// What the case expects.
    pub expected: String,
    /// What happened (on failure: every expectation that did not hold).
    pub got: String,
    /// Each call the case made (driving, preamble, the call) and the rule
    /// that decided it.
    pub decided_by: Vec<Decided>,
    /// What the case exercised, for coverage.
    pub probes: Vec<Probe>,
    /// The pKVM-IA function the expectation comes from.
    pub cite: Option<String>,
}

/// One call of a case and its deciding rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decided {
    /// The call's name (`set_msr`), or `msr`/`cpuid` for a decision-only
    /// resource case.
    pub call: String,
    /// What the decision was about (`call`, `msr IA32_PAT (0x277)`, …).
    pub resource: String,
    /// The rule (`None`: default deny, or an error before any decision).
    pub rule: Option<RuleRef>,
}

/// One request a case made of the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The VM kind.
    pub kind: VmKind,
    /// The vCPU's phase at the request.
    pub phase: Phase,
    /// What was asked.
    pub what: Probed,
}

/// What a probe asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probed {
    /// A PV call (its call rule).
    Pv(PvCall),
    /// An MSR access.
    Msr {
        /// Read or write.
        access: Access,
        /// The index.
        index: u32,
    },
    /// A CPUID leaf and subleaf.
    Cpuid {
        /// The leaf.
        leaf: u32,
        /// The subleaf.
        subleaf: u32,
    },
    /// An interrupt vector (injection).
    Vector(u8),
}

/// The reference CPU model, built once.
fn reference_cpu() -> Option<&'static CpuModel> {
    static CPU: OnceLock<Option<CpuModel>> = OnceLock::new();
    CPU.get_or_init(|| cpu_model("reference").ok()).as_ref()
}

/// Runs every case of `file` against `policy`, in file order.
pub fn run_vectors<P: Policy + ?Sized>(policy: &P, file: &VectorFile) -> Vec<CaseResult> {
    match &file.body {
        VectorBody::Cases(cases) => cases.iter().map(|c| run_case(policy, c)).collect(),
        VectorBody::Trace(trace) => run_trace(policy, trace),
    }
}

/// Runs one case against `policy`.
pub fn run_case<P: Policy + ?Sized>(policy: &P, case: &Case) -> CaseResult {
    decision_case(policy, case)
}

fn rule_ref(r: Option<Rule<'_>>) -> Option<RuleRef> {
    r.map(|r| RuleRef {
        id: r.id.0,
        name: r.name.to_string(),
        line: r.line,
    })
}

/// A decision-only case (a hyp case goes to [`hyp_case`]).
fn decision_case<P: Policy + ?Sized>(policy: &P, case: &Case) -> CaseResult {
    let (kind, phase) = (case.kind, case.phase);
    let scope = format!("{} {}", kind.name(), phase.name());
    let (request, expected, got, decided, what) = match &case.check {
        Check::Pv { call, expect } => {
            let d = decide_pv(policy, kind, phase, *call);
            (
                format!("{scope} `{}`", call.name()),
                expect.name().to_string(),
                d.verdict.name().to_string(),
                Decided {
                    call: call.name().to_string(),
                    resource: "call".to_string(),
                    rule: rule_ref(d.rule),
                },
                Probed::Pv(*call),
            )
        }
        Check::Msr {
            access,
            index,
            value,
            effective,
            expect,
        } => {
            let d = decide_msr(policy, kind, phase, *access, *index);
            let mut got = d.verdict.name().to_string();
            if let (Some(value), Some(rule), Verdict::Allow) = (value, d.rule, d.verdict) {
                // A rule without an MSR constraint refuses (fail closed).
                match rule.msr_constraint().map(|c| check_msr_write(c, *value)) {
                    None | Some(Err(_)) => got = String::from("refused"),
                    Some(Ok(eff)) => {
                        if let Some(want) = effective
                            && *want != eff
                        {
                            got = format!("allow with effective value {eff:#x}, not {want:#x}");
                        }
                    }
                }
            }
            let shown = Registry::builtin().msr_display(*index);
            (
                format!("{scope} {} of MSR {shown}", access.name()),
                (*expect).to_string(),
                got,
                Decided {
                    call: "msr".to_string(),
                    resource: format!("msr {shown}"),
                    rule: rule_ref(d.rule),
                },
                Probed::Msr {
                    access: *access,
                    index: *index,
                },
            )
        }
        Check::Cpuid {
            leaf,
            subleaf,
            reg,
            mask,
            shown,
            expect,
        } => {
            let d = decide_cpuid(policy, kind, phase, *leaf, *subleaf);
            let mode_of = |bit: u32| match (d.verdict, d.rule) {
                (Verdict::Allow, Some(r)) => r.cpuid_controls()[*reg as usize].mode_of(bit),
                _ => BitMode::Fixed,
            };
            // The first bit of the mask whose mode differs names the failure.
            let differs = (0..32)
                .filter(|b| mask & (1 << b) != 0)
                .map(|b| (b, mode_of(b)))
                .find(|(_, m)| m != expect);
            let got = match differs {
                None => expect.name().to_string(),
                Some((_, m)) if mask.count_ones() == 1 => m.name().to_string(),
                Some((b, m)) => format!("{} at bit {b}", m.name()),
            };
            let sel = format!("CPUID.(EAX={leaf:#x},ECX={subleaf})");
            (
                format!("{scope} {sel}:{} {shown}", reg.name().to_ascii_uppercase()),
                expect.name().to_string(),
                got,
                Decided {
                    call: "cpuid".to_string(),
                    resource: sel,
                    rule: rule_ref(d.rule),
                },
                Probed::Cpuid {
                    leaf: *leaf,
                    subleaf: *subleaf,
                },
            )
        }
        Check::Hyp(h) => return hyp_case(policy, case, h),
    };
    CaseResult {
        line: case.line,
        passed: got == expected,
        hyp: false,
        request,
        expected,
        got,
        decided_by: vec![decided],
        probes: vec![Probe { kind, phase, what }],
        cite: case.cite.clone(),
    }
}

/// A driving call: the policy must allow it.
fn driving(line: usize, vcpu: usize, pv: PvCall) -> TraceCall {
    TraceCall {
        line,
        vcpu: if matches!(pv, PvCall::VmFinalize | PvCall::VmDestroy) {
            0
        } else {
            vcpu
        },
        pv: Some(pv),
        guest: None,
        pvmfw: None,
        call: match pv {
            PvCall::VmFinalize | PvCall::VmDestroy => None,
            other => Call::example(other),
        },
        cpuid_edits: Vec::new(),
        expect_effective: Vec::new(),
        expect: Some(Expect::Allow),
        expect_value: None,
        errno: None,
        expect_guest: Vec::new(),
        note: None,
    }
}

/// The calls that take a fresh vCPU to `phase`.
pub fn driving_calls(kind: VmKind, phase: Phase) -> &'static [PvCall] {
    match (kind, phase) {
        (_, Phase::Setup) => &[],
        (VmKind::Protected, Phase::Running) => &[PvCall::VmFinalize, PvCall::VcpuRun],
        (VmKind::Normal, Phase::Running) => &[PvCall::VcpuRun],
        (VmKind::Protected, Phase::Teardown) => {
            &[PvCall::VmFinalize, PvCall::VcpuRun, PvCall::VmDestroy]
        }
        (VmKind::Normal, Phase::Teardown) => &[PvCall::VcpuRun, PvCall::VmDestroy],
    }
}

fn hyp_case<P: Policy + ?Sized>(policy: &P, case: &Case, h: &HypCase) -> CaseResult {
    let (kind, phase) = (case.kind, case.phase);
    let vcpu = h.call.vcpu;
    let before: Vec<TraceCall> = match &h.preamble {
        Some(p) => p.clone(),
        None => driving_calls(kind, phase)
            .iter()
            .map(|pv| driving(case.line, vcpu, *pv))
            .collect(),
    };
    let n = before.len();
    let mut calls = before;
    calls.push(h.call.clone());
    let trace = Trace {
        path: String::new(),
        title: String::new(),
        source: None,
        cpu: "reference".to_string(),
        kind,
        vcpus: h.vcpus,
        calls,
    };
    let request = format!("{} {} `{}`", kind.name(), phase.name(), h.call.name());
    let expected = expectations(&h.call);
    let replayed = match reference_cpu() {
        Some(cpu) => replay_with_cpu(policy, &trace, cpu.clone()),
        None => replay(policy, &trace),
    };
    let r = match replayed {
        Ok(r) => r,
        Err(e) => {
            return CaseResult {
                line: case.line,
                passed: false,
                hyp: true,
                request,
                expected,
                got: format!("could not run: {e}"),
                decided_by: Vec::new(),
                probes: Vec::new(),
                cite: case.cite.clone(),
            };
        }
    };
    let mut problems = Vec::new();
    for s in r.steps.iter().take(n) {
        if s.met != Some(false) {
            continue;
        }
        let by = s.rule.as_ref().map_or_else(
            || "default deny".to_string(),
            |r| format!("rule `{}` (policy line {})", r.name, r.line),
        );
        if h.preamble.is_some() {
            problems.push(format!(
                "preamble call #{} `{}` (line {}): {}",
                s.index,
                s.pv,
                s.line,
                s.mismatches.join("; ")
            ));
        } else {
            problems.push(format!(
                "driving call `{}` (to reach {}) was refused: {} by {by}{}",
                s.pv,
                phase.name(),
                s.effect,
                s.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
    }
    let last = r.steps.last();
    let mut request = request;
    if let Some(s) = last {
        if s.resource != "call" {
            request.push_str(&format!(" {}", s.resource));
        }
        if problems.is_empty()
            && let Some(p) = s.phase
            && p != phase
        {
            problems.push(format!(
                "the vcpu is in `{}` at the call, not `{}`",
                p.name(),
                phase.name()
            ));
        }
        if s.met == Some(false) {
            problems.extend(other_mismatches(s).map(str::to_string));
            if problems.is_empty() {
                problems.push(format!("expected {expected}"));
            }
        }
    }
    let got = match last {
        Some(s) if problems.is_empty() => outcome_text(s),
        Some(s) => format!("{} ({})", outcome_text(s), problems.join("; ")),
        None => "nothing ran".to_string(),
    };
    CaseResult {
        line: case.line,
        passed: problems.is_empty() && last.is_some(),
        hyp: true,
        request,
        expected,
        got,
        decided_by: r.steps.iter().map(decided).collect(),
        probes: r.steps.iter().flat_map(|s| probes(kind, s)).collect(),
        cite: case.cite.clone(),
    }
}

/// A step's mismatches but the one naming its effect, which
/// `outcome_text` already shows: what else did not hold.
fn other_mismatches(s: &Step) -> impl Iterator<Item = &str> {
    let effect = format!("got {}", s.effect);
    s.mismatches
        .iter()
        .filter(move |m| **m != effect)
        .map(String::as_str)
}

fn run_trace<P: Policy + ?Sized>(policy: &P, trace: &Trace) -> Vec<CaseResult> {
    let r = match replay(policy, trace) {
        Ok(r) => r,
        Err(e) => {
            return vec![CaseResult {
                line: 1,
                passed: false,
                hyp: true,
                request: format!("replay of `{}`", trace.title),
                expected: "the trace runs".to_string(),
                got: e.to_string(),
                decided_by: Vec::new(),
                probes: Vec::new(),
                cite: None,
            }];
        }
    };
    r.steps
        .iter()
        .zip(&trace.calls)
        .filter(|(s, _)| s.met.is_some())
        .map(|(s, tc)| {
            let phase = s.phase.map_or("?", Phase::name);
            let mut request = format!("{} {phase} `{}`", trace.kind.name(), s.pv);
            if s.resource != "call" {
                request.push_str(&format!(" {}", s.resource));
            }
            let rest: Vec<&str> = other_mismatches(s).collect();
            let got = if rest.is_empty() {
                outcome_text(s)
            } else {
                format!("{} ({})", outcome_text(s), rest.join("; "))
            };
            CaseResult {
                line: s.line,
                passed: s.met == Some(true),
                hyp: true,
                request,
                expected: expectations(tc),
                got,
                decided_by: vec![decided(s)],
                probes: probes(trace.kind, s),
                cite: None,
            }
        })
        .collect()
}

fn decided(s: &Step) -> Decided {
    Decided {
        call: s.pv.to_string(),
        resource: s.resource.clone(),
        rule: s.rule.clone(),
    }
}

/// The probes of one replayed call: the call itself and its resource.
fn probes(kind: VmKind, s: &Step) -> Vec<Probe> {
    let (Some(phase), Some(o)) = (s.phase, s.outcome) else {
        return Vec::new();
    };
    let mut out = vec![Probe {
        kind,
        phase,
        what: Probed::Pv(o.call),
    }];
    let what = match o.resource {
        Resource::Call => None,
        Resource::Msr(index) => Some(Probed::Msr {
            access: if o.call == PvCall::GetMsr {
                Access::Read
            } else {
                Access::Write
            },
            index,
        }),
        Resource::Cpuid { leaf, subleaf } => Some(Probed::Cpuid { leaf, subleaf }),
        Resource::Vector(v) => Some(Probed::Vector(v)),
    };
    out.extend(what.map(|what| Probe { kind, phase, what }));
    out
}

/// What happened to a call: its effect, and its errno when it failed.
fn outcome_text(s: &Step) -> String {
    match pvgate_hyp::error::errno_name(s.status.wrapping_neg()) {
        Some(name) if s.status != 0 => format!("{} ({name})", s.effect),
        _ => s.effect.to_string(),
    }
}

/// A call's expectations as text: `deny, errno EPERM, value 0x0, …`.
pub fn expectations(c: &TraceCall) -> String {
    let mut parts = Vec::new();
    if let Some(e) = c.expect {
        parts.push(e.name().to_string());
    }
    if let Some(e) = c.errno {
        parts.push(format!(
            "errno {}",
            pvgate_hyp::error::errno_name(e).map_or_else(|| e.to_string(), str::to_string)
        ));
    }
    if let Some(v) = c.expect_value {
        parts.push(format!("value {v:#x}"));
    }
    for g in &c.expect_guest {
        parts.push(format!("guest {} = {:#x}", g.key, g.value));
    }
    for b in &c.expect_effective {
        let sel = format!(
            "CPUID.(EAX={:#x}):{}",
            b.leaf,
            b.reg.name().to_ascii_uppercase()
        );
        if b.set != 0 {
            parts.push(format!("{sel} set {:#x}", b.set));
        }
        if b.clear != 0 {
            parts.push(format!("{sel} clear {:#x}", b.clear));
        }
    }
    parts.join(", ")
}
