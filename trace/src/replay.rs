//! Running a trace's calls through the hypervisor core and judging each
//! against its expectations.

use std::fmt;

use pvgate_codegen::Registry;
use pvgate_gate::{Phase, Policy, PvCall, Register};
use pvgate_hyp::error::errno_name;
use pvgate_hyp::{
    CpuModel, CpuidEntry, CpuidTable, Effect, Hyp, HypConfig, Outcome, Resource, VcpuHandle,
    VcpuState,
};
use serde::Serialize;

use crate::cpu::cpu_model;
use crate::error::TraceError;
use crate::guest_state::GuestExpect;
use crate::model::{CpuidBits, CpuidEdit, EditOp, Expect, MAX_TRACE_VCPUS, Trace};

/// The rule that decided a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    /// Its id.
    pub id: u32,
    /// Its name.
    pub name: String,
    /// Its policy line.
    pub line: u32,
}

/// What became of one call of a trace.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// 1-based index in the trace.
    pub index: usize,
    /// Its line in the trace.
    pub line: usize,
    /// The PV call's name.
    pub pv: &'static str,
    /// The vCPU index.
    pub vcpu: usize,
    /// `allow`, `deny`, `ignore`, `filter` or `invalid`.
    pub effect: &'static str,
    /// The ABI status (0 or `-errno`).
    pub status: i64,
    /// The deciding rule (`None`: default deny or an error before any
    /// decision).
    pub rule: Option<RuleRef>,
    /// What the decision was about (`call`, `msr 0x1a0`, `CPUID.(EAX=…)`, `vector 0x30`).
    pub resource: String,
    /// The error message, when the call failed.
    pub error: Option<String>,
    /// The trace's expectation.
    pub expect: Option<Expect>,
    /// Whether every expectation of the call held (`None`: it had none).
    pub met: Option<bool>,
    /// Why an expectation did not hold.
    pub mismatches: Vec<String>,
    /// The trace's note.
    pub note: Option<String>,
    /// For `vcpu_after_set_cpuid`: each register of the host's proposal
    /// that the hypervisor replaced (filtered, or reported as the
    /// correction of a rejected table).
    pub cpuid_changes: Vec<CpuidChange>,
    /// The phase of the call's vCPU when the call was made (`None` when
    /// the vCPU could not be inspected).
    #[serde(skip)]
    pub phase: Option<Phase>,
    /// The full outcome of a host PV call (`None` for a guest call, which
    /// has only a status).
    #[serde(skip)]
    pub outcome: Option<Outcome>,
}

/// One CPUID register where the table the host proposed and the table the
/// policy gives differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CpuidChange {
    /// The leaf.
    pub leaf: u32,
    /// The subleaf.
    pub subleaf: u32,
    /// The register.
    pub reg: &'static str,
    /// What the host proposed.
    pub proposed: u32,
    /// What the policy gives.
    pub effective: u32,
}

/// The registers where `returned` differs from `proposed`, for the
/// entries the host proposed.
fn cpuid_changes(proposed: &[CpuidEntry], returned: &[CpuidEntry]) -> Vec<CpuidChange> {
    let mut out = Vec::new();
    for p in proposed {
        let Some(r) = returned.iter().find(|r| r.is(p.leaf, p.subleaf)) else {
            continue;
        };
        for reg in Register::ALL {
            if p.reg(reg) != r.reg(reg) {
                out.push(CpuidChange {
                    leaf: p.leaf,
                    subleaf: p.subleaf,
                    reg: reg.name(),
                    proposed: p.reg(reg),
                    effective: r.reg(reg),
                });
            }
        }
    }
    out
}

/// The result of replaying a trace.
#[derive(Clone, Debug, Serialize)]
pub struct Replay {
    /// The trace's path.
    pub trace: String,
    /// Its title.
    pub title: String,
    /// The policy's name.
    pub policy: String,
    /// The VM kind.
    pub kind: &'static str,
    /// The CPU model used.
    pub cpu: String,
    /// One step per call.
    pub steps: Vec<Step>,
}

impl Replay {
    /// Whether every expectation in the trace held.
    pub fn all_met(&self) -> bool {
        self.steps.iter().all(|s| s.met != Some(false))
    }

    /// The steps whose expectations did not hold.
    pub fn failures(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.met == Some(false))
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{:<3} {:<24} vcpu {} {:<7}",
            self.index, self.pv, self.vcpu, self.effect
        )?;
        if self.resource != "call" {
            write!(f, " {}", self.resource)?;
        }
        match &self.rule {
            Some(r) => write!(f, " rule `{}` (line {})", r.name, r.line)?,
            None if self.error.is_some() || self.effect == "deny" => write!(f, " (default deny)")?,
            None => {}
        }
        if let Some(e) = &self.error {
            match pvgate_hyp::error::errno_name(self.status.wrapping_neg()) {
                Some(name) => write!(f, ": {name}: {e}")?,
                None => write!(f, ": {e}")?,
            }
        }
        match (self.expect, self.met) {
            (Some(e), Some(true)) => write!(f, " [expected {}: ok]", e.name())?,
            (Some(e), _) => write!(
                f,
                " [expected {}: NOT MET: {}]",
                e.name(),
                self.mismatches.join("; ")
            )?,
            (None, Some(false)) => write!(f, " [NOT MET: {}]", self.mismatches.join("; "))?,
            _ => {}
        }
        Ok(())
    }
}

fn resource_text(r: Resource) -> String {
    match r {
        Resource::Call => "call".to_string(),
        Resource::Msr(i) => format!("msr {}", Registry::builtin().msr_display(i)),
        Resource::Cpuid { leaf, subleaf } => format!("CPUID.(EAX={leaf:#x},ECX={subleaf:#x})"),
        Resource::Vector(v) => format!("vector {v:#x}"),
    }
}

/// Applies a trace's edits to a table.
pub fn apply_edits(table: &mut CpuidTable, edits: &[CpuidEdit]) {
    for edit in edits {
        for e in table.iter_mut() {
            if e.leaf == edit.leaf && edit.subleaf.matches(e.subleaf) {
                let old = e.reg(edit.reg);
                let new = match edit.op {
                    EditOp::Set(b) => old | b,
                    EditOp::Clear(b) => old & !b,
                    EditOp::Value(v) => v,
                };
                e.set_reg(edit.reg, new);
            }
        }
    }
}

fn check_bits(table: &[CpuidEntry], b: &CpuidBits, mismatches: &mut Vec<String>) {
    let mut seen = false;
    for e in table
        .iter()
        .filter(|e| e.leaf == b.leaf && b.subleaf.matches(e.subleaf))
    {
        seen = true;
        let v = e.reg(b.reg);
        let loc = format!(
            "CPUID.(EAX={:#x},ECX={:#x}):{}",
            e.leaf,
            e.subleaf,
            b.reg.name().to_uppercase()
        );
        if v & b.set != b.set {
            mismatches.push(format!(
                "{loc} = {v:#010x}: bits {:#x} should be set",
                b.set & !v
            ));
        }
        if v & b.clear != 0 {
            mismatches.push(format!(
                "{loc} = {v:#010x}: bits {:#x} should be clear",
                v & b.clear
            ));
        }
    }
    if !seen {
        mismatches.push(format!(
            "CPUID.(EAX={:#x}) is not in the effective table",
            b.leaf
        ));
    }
}

/// An errno as `EPERM (1)`.
fn errno_text(errno: i64) -> String {
    match errno_name(errno) {
        Some(name) => format!("{name} ({errno})"),
        None => errno.to_string(),
    }
}

/// Checks `expect_guest` against the hypervisor's copy of the vCPU.
fn check_guest(v: &VcpuState, expects: &[GuestExpect], mismatches: &mut Vec<String>) {
    for e in expects {
        match e.field.read(v) {
            Some(got) if got == e.value => {}
            Some(got) => mismatches.push(format!(
                "guest {} = {got:#x}, expected {:#x}",
                e.key, e.value
            )),
            None => mismatches.push(format!(
                "guest {}: the vcpu's msr store does not hold it",
                e.key
            )),
        }
    }
}

/// Replays a trace through a fresh hypervisor over `policy`, with the CPU
/// model the trace names.
pub fn replay<P: Policy + ?Sized>(policy: &P, trace: &Trace) -> Result<Replay, TraceError> {
    let cpu = cpu_model(&trace.cpu)?;
    replay_with_cpu(policy, trace, cpu)
}

/// Replays a trace with a given CPU model.
pub fn replay_with_cpu<P: Policy + ?Sized>(
    policy: &P,
    trace: &Trace,
    cpu: CpuModel,
) -> Result<Replay, TraceError> {
    let hyp: Box<Hyp<&P, 1, MAX_TRACE_VCPUS>> =
        Box::new(Hyp::with_cpu(policy, cpu, HypConfig::DEFAULT));
    let setup = |message: String| TraceError::Setup { message };
    let vm = hyp
        .create_vm(trace.kind)
        .map_err(|e| setup(e.to_string()))?;
    let mut vcpus: Vec<VcpuHandle> = Vec::new();
    for _ in 0..trace.vcpus {
        vcpus.push(hyp.create_vcpu(vm).map_err(|e| setup(e.to_string()))?);
    }
    let mut steps = Vec::new();
    for (i, tc) in trace.calls.iter().enumerate() {
        let mut table = CpuidTable::new();
        let mut proposed = CpuidTable::new();
        let Some(&h) = vcpus.get(tc.vcpu) else {
            return Err(setup(format!(
                "call #{}: vcpu {} does not exist",
                i + 1,
                tc.vcpu
            )));
        };
        let phase = hyp.phase(h);
        // A guest call has a status only; a host PV call an outcome.
        let (outcome, guest_result) = match (tc.pv, tc.guest, tc.call) {
            (None, Some(g), _) => (None, Some(hyp.guest_call(h, g))),
            (Some(PvCall::VmDestroy), _, _) => (Some(hyp.vm_destroy(vm)), None),
            (Some(PvCall::VmFinalize), _, _) => (Some(hyp.vm_finalize(vm, tc.pvmfw)), None),
            (Some(PvCall::VcpuAfterSetCpuid), _, _) => {
                table = hyp.supported_cpuid(trace.kind);
                apply_edits(&mut table, &tc.cpuid_edits);
                proposed = table.clone();
                (Some(hyp.vcpu_after_set_cpuid(h, &mut table)), None)
            }
            (Some(_), _, Some(call)) => (Some(hyp.call(h, call)), None),
            _ => {
                return Err(setup(format!(
                    "call #{}: `{}` has no arguments to replay",
                    i + 1,
                    tc.name()
                )));
            }
        };
        let (effect, status, error, out0) = match (&outcome, guest_result) {
            (Some(o), _) => (
                o.effect,
                o.status(),
                o.error.map(|e| e.to_string()),
                o.out[0],
            ),
            (None, Some(Ok(()))) => (Effect::Allow, 0, None, 0),
            (None, Some(Err(e))) => (
                Effect::Invalid,
                e.errno().wrapping_neg(),
                Some(e.to_string()),
                0,
            ),
            (None, None) => (Effect::Invalid, 0, None, 0),
        };
        let ok = status == 0;
        let mut mismatches = Vec::new();
        if let Some(expect) = tc.expect {
            let met = match expect {
                Expect::Allow => effect == Effect::Allow && ok,
                Expect::Deny => !ok,
                Expect::Ignore => effect == Effect::Ignore && ok,
                Expect::Filter => effect == Effect::Filter && ok,
            };
            if !met {
                mismatches.push(format!("got {}", effect.name()));
            }
        }
        if let Some(want) = tc.errno
            && status != want.wrapping_neg()
        {
            let got = if ok {
                "success".to_string()
            } else {
                errno_text(status.wrapping_neg())
            };
            mismatches.push(format!("errno {got}, expected {}", errno_text(want)));
        }
        if let Some(v) = tc.expect_value
            && out0 != v
        {
            mismatches.push(format!("value {out0:#x}, expected {v:#x}"));
        }
        for b in &tc.expect_effective {
            check_bits(&table, b, &mut mismatches);
        }
        if !tc.expect_guest.is_empty() {
            match hyp.inspect(h, |v| v.clone()) {
                Some(v) => check_guest(&v, &tc.expect_guest, &mut mismatches),
                None => mismatches.push(format!("vcpu {} is gone: no guest state", tc.vcpu)),
            }
        }
        let has_expectation = tc.expect.is_some()
            || tc.expect_value.is_some()
            || tc.errno.is_some()
            || !tc.expect_effective.is_empty()
            || !tc.expect_guest.is_empty();
        let rule = outcome
            .and_then(|o| o.rule)
            .and_then(|id| policy.rule(id))
            .map(|r| RuleRef {
                id: r.id.0,
                name: r.name.to_string(),
                line: r.line,
            });
        steps.push(Step {
            index: i + 1,
            line: tc.line,
            pv: tc.name(),
            vcpu: tc.vcpu,
            effect: effect.name(),
            status,
            rule,
            resource: resource_text(outcome.map_or(Resource::Call, |o| o.resource)),
            error,
            expect: tc.expect,
            met: has_expectation.then_some(mismatches.is_empty()),
            mismatches,
            note: tc.note.clone(),
            cpuid_changes: cpuid_changes(&proposed, &table),
            phase,
            outcome,
        });
    }
    Ok(Replay {
        trace: trace.path.clone(),
        title: trace.title.clone(),
        policy: policy.name().to_string(),
        kind: trace.kind.name(),
        cpu: trace.cpu.clone(),
        steps,
    })
}
