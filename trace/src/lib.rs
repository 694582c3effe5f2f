//! pvgate-trace: loads `pvgate-trace/1` files (the sequence of PV calls a
//! host makes for one VM, with optional expectations; format in
//! `tests/data/traces/README.md`) and replays them through the real
//! hypervisor core ([`pvgate_hyp::Hyp`]) over any [`Policy`]: the image's
//! const tables or the codegen interpreter.
//!
//! [`replay`] returns one [`Step`] per call: what became of it, the rule
//! that decided it (name and policy line), and whether its expectation was
//! met, so a command line can print or serialise it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use pvgate_codegen::Registry;
use pvgate_gate::{Policy, PvCall, Register, VmKind};
use pvgate_hyp::{
    Call, CpuDump, CpuModel, CpuidEntry, CpuidTable, DescTable, Effect, Gpr, GprWrite, Hyp,
    HypConfig, Outcome, Resource, SegReg, Segment, VcpuHandle,
};
use serde::{Deserialize, Serialize};

/// The trace format this crate reads.
pub const FORMAT: &str = "pvgate-trace/1";

/// The `reference` CPU model's dump: a Xeon Gold 6252 (Cascade Lake),
/// values from raw-cpuid's test data (see the file's header).
pub const REFERENCE_CPU_DUMP: &str = include_str!("../../tests/data/cpu/xeon-gold-6252.cpuid");

/// The IA32_MCG_CAP offered by the `host` CPU model: MSRs cannot be read
/// from user space, so it is the reference model's (an assumption).
pub const HOST_MCG_CAP: u64 = 0x0f00_0c14;

/// The most vCPUs a trace may declare.
pub const MAX_TRACE_VCPUS: usize = 16;

/// Why a trace could not be loaded or replayed.
#[derive(Debug)]
pub enum TraceError {
    /// The file could not be read.
    Io {
        /// The path.
        path: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// The text is not a `pvgate-trace/1` TOML document.
    Parse {
        /// The path (or `<text>`).
        path: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// A call in the trace is malformed.
    Call {
        /// The path (or `<text>`).
        path: String,
        /// 1-based index of the call in the trace.
        index: usize,
        /// 1-based line of its `[[call]]` header.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The CPU model could not be built.
    Cpu {
        /// The model's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The hypervisor refused to create the trace's VM or vCPUs.
    Setup {
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceError::Io { path, error } => write!(f, "cannot read trace `{path}`: {error}"),
            TraceError::Parse {
                path,
                line: Some(line),
                message,
            } => write!(f, "{path}:{line}: {message}"),
            TraceError::Parse {
                path,
                line: None,
                message,
            } => write!(f, "{path}: {message}"),
            TraceError::Call {
                path,
                index,
                line,
                message,
            } => write!(f, "{path}:{line}: call #{index}: {message}"),
            TraceError::Cpu { name, message } => write!(f, "cpu model `{name}`: {message}"),
            TraceError::Setup { message } => write!(f, "cannot set up the trace's vm: {message}"),
        }
    }
}

impl std::error::Error for TraceError {}

// ---------------------------------------------------------------------------
// The file format (serde)
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrace {
    format: String,
    title: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    cpu: Option<String>,
    vm: RawVm,
    #[serde(default)]
    call: Vec<toml::Spanned<RawCall>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVm {
    kind: String,
    #[serde(default = "one")]
    vcpus: u64,
}

fn one() -> u64 {
    1
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum Num {
    Int(u64),
    Name(String),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCall {
    pv: String,
    vcpu: Option<u64>,
    msr: Option<Num>,
    value: Option<u64>,
    expect: Option<String>,
    expect_value: Option<u64>,
    note: Option<String>,
    seg: Option<String>,
    selector: Option<u64>,
    base: Option<u64>,
    limit: Option<u64>,
    ar: Option<u64>,
    regs: Option<BTreeMap<String, u64>>,
    root: Option<u64>,
    level: Option<u64>,
    mcg_cap: Option<u64>,
    vector: Option<u64>,
    soft: Option<bool>,
    size: Option<u64>,
    cpuid: Option<RawCpuid>,
    expect_effective: Option<Vec<RawBits>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCpuid {
    from: String,
    #[serde(default)]
    edits: Vec<RawEdit>,
    #[serde(default)]
    expect_effective: Vec<RawBits>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEdit {
    leaf: u32,
    #[serde(default)]
    subleaf: Option<Num>,
    reg: String,
    set: Option<u32>,
    clear: Option<u32>,
    value: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBits {
    leaf: u32,
    #[serde(default)]
    subleaf: Option<Num>,
    reg: String,
    set: Option<u32>,
    clear: Option<u32>,
}

// ---------------------------------------------------------------------------
// The validated trace
// ---------------------------------------------------------------------------

/// What a trace expects of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// Accepted as asked.
    Allow,
    /// Refused with an error.
    Deny,
    /// Reported as success, nothing changed.
    Ignore,
    /// Accepted with the hypervisor's values in place of some of the host's.
    Filter,
}

impl Expect {
    /// The name used in traces.
    pub const fn name(self) -> &'static str {
        match self {
            Expect::Allow => "allow",
            Expect::Deny => "deny",
            Expect::Ignore => "ignore",
            Expect::Filter => "filter",
        }
    }

    fn from_name(s: &str) -> Option<Expect> {
        [Expect::Allow, Expect::Deny, Expect::Ignore, Expect::Filter]
            .into_iter()
            .find(|e| e.name() == s)
    }
}

/// A CPUID subleaf selector in a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subleaf {
    /// One subleaf.
    One(u32),
    /// Every subleaf of the leaf present in the table.
    All,
}

impl Subleaf {
    fn matches(self, subleaf: u32) -> bool {
        match self {
            Subleaf::One(s) => s == subleaf,
            Subleaf::All => true,
        }
    }
}

/// How an edit changes a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EditOp {
    /// OR these bits in.
    Set(u32),
    /// Clear these bits.
    Clear(u32),
    /// Replace the value.
    Value(u32),
}

/// One edit of the supported CPUID table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuidEdit {
    /// The leaf.
    pub leaf: u32,
    /// The subleaf(s).
    pub subleaf: Subleaf,
    /// The register.
    pub reg: Register,
    /// The change.
    pub op: EditOp,
}

/// A bit expectation on the effective CPUID table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuidBits {
    /// The leaf.
    pub leaf: u32,
    /// The subleaf(s).
    pub subleaf: Subleaf,
    /// The register.
    pub reg: Register,
    /// Bits that must be 1.
    pub set: u32,
    /// Bits that must be 0.
    pub clear: u32,
}

/// One call of a trace, validated.
#[derive(Clone, Debug)]
pub struct TraceCall {
    /// 1-based line of its `[[call]]` header.
    pub line: usize,
    /// The vCPU index (0 for `vm_destroy`).
    pub vcpu: usize,
    /// The PV call.
    pub pv: PvCall,
    /// The typed call (`None` for `vm_destroy`).
    pub call: Option<Call>,
    /// For `vcpu_after_set_cpuid`: edits of the supported table.
    pub cpuid_edits: Vec<CpuidEdit>,
    /// For `vcpu_after_set_cpuid`: bits the effective table must show.
    pub expect_effective: Vec<CpuidBits>,
    /// The expectation.
    pub expect: Option<Expect>,
    /// For getters: the value output 0 must have.
    pub expect_value: Option<u64>,
    /// Free text.
    pub note: Option<String>,
}

/// A loaded trace.
#[derive(Clone, Debug)]
pub struct Trace {
    /// Where it came from (path or `<text>`).
    pub path: String,
    /// Its title.
    pub title: String,
    /// Where its facts came from.
    pub source: Option<String>,
    /// The CPU model named (`reference` when absent).
    pub cpu: String,
    /// The VM kind.
    pub kind: VmKind,
    /// How many vCPUs.
    pub vcpus: usize,
    /// The calls, in order.
    pub calls: Vec<TraceCall>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |t| t.matches('\n').count() + 1)
}

/// Reads and parses a trace file.
pub fn load(path: impl AsRef<Path>) -> Result<Trace, TraceError> {
    let shown = path.as_ref().display().to_string();
    let text = std::fs::read_to_string(path.as_ref()).map_err(|error| TraceError::Io {
        path: shown.clone(),
        error,
    })?;
    parse(&text, &shown)
}

/// Parses trace text (`path` is only used in messages).
pub fn parse(text: &str, path: &str) -> Result<Trace, TraceError> {
    let raw: RawTrace = toml::from_str(text).map_err(|e| TraceError::Parse {
        path: path.to_string(),
        line: e.span().map(|s| line_of(text, s.start)),
        message: e.message().trim().to_string(),
    })?;
    let top = |message: String| TraceError::Parse {
        path: path.to_string(),
        line: None,
        message,
    };
    if raw.format != FORMAT {
        return Err(top(format!("format `{}` is not `{FORMAT}`", raw.format)));
    }
    let kind = VmKind::from_name(&raw.vm.kind).ok_or_else(|| {
        top(format!(
            "vm kind `{}` is neither `protected` nor `normal`",
            raw.vm.kind
        ))
    })?;
    let vcpus = usize::try_from(raw.vm.vcpus).unwrap_or(usize::MAX);
    if vcpus == 0 || vcpus > MAX_TRACE_VCPUS {
        return Err(top(format!(
            "vm.vcpus = {} is outside 1..={MAX_TRACE_VCPUS}",
            raw.vm.vcpus
        )));
    }
    let mut calls = Vec::new();
    for (i, spanned) in raw.call.iter().enumerate() {
        let line = line_of(text, spanned.span().start);
        let call =
            convert_call(spanned.get_ref(), line, vcpus).map_err(|message| TraceError::Call {
                path: path.to_string(),
                index: i + 1,
                line,
                message,
            })?;
        calls.push(call);
    }
    Ok(Trace {
        path: path.to_string(),
        title: raw.title,
        source: raw.source,
        cpu: raw.cpu.unwrap_or_else(|| "reference".to_string()),
        kind,
        vcpus,
        calls,
    })
}

fn need<T: Copy>(v: Option<T>, pv: PvCall, key: &str) -> Result<T, String> {
    v.ok_or_else(|| format!("`{}` needs `{key}`", pv.name()))
}

fn narrow<T: TryFrom<u64>>(v: u64, key: &str) -> Result<T, String> {
    T::try_from(v).map_err(|_| format!("`{key}` = {v:#x} is out of range"))
}

fn vector(raw: &RawCall, pv: PvCall) -> Result<u8, String> {
    narrow(need(raw.vector, pv, "vector")?, "vector")
}

fn register(name: &str) -> Result<Register, String> {
    Register::from_name(name)
        .ok_or_else(|| format!("register `{name}` is not one of eax, ebx, ecx, edx"))
}

fn subleaf(s: &Option<Num>) -> Result<Subleaf, String> {
    match s {
        None => Ok(Subleaf::One(0)),
        Some(Num::Int(n)) => Ok(Subleaf::One(narrow(*n, "subleaf")?)),
        Some(Num::Name(n)) if n == "all" => Ok(Subleaf::All),
        Some(Num::Name(n)) => Err(format!("subleaf `{n}` is neither a number nor `all`")),
    }
}

fn msr_index(m: &Num) -> Result<u32, String> {
    match m {
        Num::Int(n) => narrow(*n, "msr"),
        Num::Name(name) => Registry::builtin()
            .msr_by_name(name)
            .map(|e| e.index)
            .ok_or_else(|| format!("unknown msr `{name}`")),
    }
}

fn bits(b: &RawBits) -> Result<CpuidBits, String> {
    if b.set.is_none() && b.clear.is_none() {
        return Err(format!(
            "`expect_effective` entry for leaf {:#x} needs `set` or `clear`",
            b.leaf
        ));
    }
    Ok(CpuidBits {
        leaf: b.leaf,
        subleaf: subleaf(&b.subleaf)?,
        reg: register(&b.reg)?,
        set: b.set.unwrap_or(0),
        clear: b.clear.unwrap_or(0),
    })
}

fn convert_call(raw: &RawCall, line: usize, vcpus: usize) -> Result<TraceCall, String> {
    let pv = PvCall::from_name(&raw.pv).ok_or_else(|| format!("unknown pv call `{}`", raw.pv))?;
    let vcpu = usize::try_from(raw.vcpu.unwrap_or(0)).unwrap_or(usize::MAX);
    if vcpu >= vcpus {
        return Err(format!("vcpu {vcpu} does not exist (the vm has {vcpus})"));
    }
    let expect = match &raw.expect {
        None => None,
        Some(e) => Some(
            Expect::from_name(e)
                .ok_or_else(|| format!("expect `{e}` is not one of allow, deny, ignore, filter"))?,
        ),
    };
    let value = || need(raw.value, pv, "value");
    let seg = || -> Result<SegReg, String> {
        let name = raw
            .seg
            .as_deref()
            .ok_or_else(|| format!("`{}` needs `seg`", pv.name()))?;
        SegReg::from_name(name).ok_or_else(|| {
            format!("segment `{name}` is not one of cs, ds, es, fs, gs, ss, tr, ldtr")
        })
    };
    let table = || -> Result<DescTable, String> {
        Ok(DescTable {
            base: need(raw.base, pv, "base")?,
            limit: narrow(need(raw.limit, pv, "limit")?, "limit")?,
        })
    };
    let mut cpuid_edits = Vec::new();
    let mut expect_effective = Vec::new();
    for b in raw.expect_effective.iter().flatten() {
        expect_effective.push(bits(b)?);
    }
    let call = match pv {
        PvCall::VmDestroy => None,
        PvCall::SetMsr => Some(Call::SetMsr {
            index: msr_index(raw.msr.as_ref().ok_or("`set_msr` needs `msr`")?)?,
            value: value()?,
        }),
        PvCall::GetMsr => Some(Call::GetMsr {
            index: msr_index(raw.msr.as_ref().ok_or("`get_msr` needs `msr`")?)?,
        }),
        PvCall::SetRflags => Some(Call::SetRflags(value()?)),
        PvCall::SetCr0 => Some(Call::SetCr0(value()?)),
        PvCall::SetCr4 => Some(Call::SetCr4(value()?)),
        PvCall::SetEfer => Some(Call::SetEfer(value()?)),
        PvCall::WriteTscOffset => Some(Call::WriteTscOffset(value()?)),
        PvCall::WriteTscMultiplier => Some(Call::WriteTscMultiplier(value()?)),
        PvCall::SetSegment => Some(Call::SetSegment {
            seg: seg()?,
            segment: Segment {
                selector: narrow(need(raw.selector, pv, "selector")?, "selector")?,
                base: need(raw.base, pv, "base")?,
                limit: narrow(need(raw.limit, pv, "limit")?, "limit")?,
                ar: narrow(need(raw.ar, pv, "ar")?, "ar")?,
            },
        }),
        PvCall::GetSegment => Some(Call::GetSegment(seg()?)),
        PvCall::GetSegmentBase => Some(Call::GetSegmentBase(seg()?)),
        PvCall::SetIdt => Some(Call::SetIdt(table()?)),
        PvCall::SetGdt => Some(Call::SetGdt(table()?)),
        PvCall::SetRegs => {
            let regs = raw.regs.as_ref().ok_or("`set_regs` needs `regs`")?;
            let mut w = GprWrite::default();
            for (name, v) in regs {
                let reg = Gpr::from_name(name).ok_or_else(|| {
                    format!("`set_regs`: unknown register `{name}` (rax … r15, rip)")
                })?;
                w = w.with(reg, *v);
            }
            Some(Call::SetRegs(w))
        }
        PvCall::LoadMmuPgd => Some(Call::LoadMmuPgd {
            root: need(raw.root, pv, "root")?,
            level: narrow(need(raw.level, pv, "level")?, "level")?,
        }),
        PvCall::SetupMce => Some(Call::SetupMce {
            mcg_cap: need(raw.mcg_cap, pv, "mcg_cap")?,
        }),
        PvCall::InjectIrq => Some(Call::InjectIrq {
            vector: vector(raw, pv)?,
            soft: raw.soft.unwrap_or(false),
        }),
        PvCall::InjectIrqIfAllowed => Some(Call::InjectIrqIfAllowed {
            vector: vector(raw, pv)?,
            soft: raw.soft.unwrap_or(false),
        }),
        PvCall::DeliverSipiVector => Some(Call::DeliverSipiVector {
            vector: vector(raw, pv)?,
        }),
        PvCall::VcpuAddFpstate => Some(Call::VcpuAddFpstate {
            size: need(raw.size, pv, "size")?,
        }),
        PvCall::VcpuAfterSetCpuid => {
            let c = raw
                .cpuid
                .as_ref()
                .ok_or("`vcpu_after_set_cpuid` needs a `cpuid` table")?;
            if c.from != "supported" {
                return Err(format!(
                    "cpuid.from = `{}`: only `supported` is known",
                    c.from
                ));
            }
            for e in &c.edits {
                let op = match (e.set, e.clear, e.value) {
                    (Some(b), None, None) => EditOp::Set(b),
                    (None, Some(b), None) => EditOp::Clear(b),
                    (None, None, Some(v)) => EditOp::Value(v),
                    _ => {
                        return Err(format!(
                            "cpuid edit of leaf {:#x} needs exactly one of `set`, `clear`, `value`",
                            e.leaf
                        ));
                    }
                };
                cpuid_edits.push(CpuidEdit {
                    leaf: e.leaf,
                    subleaf: subleaf(&e.subleaf)?,
                    reg: register(&e.reg)?,
                    op,
                });
            }
            for b in &c.expect_effective {
                expect_effective.push(bits(b)?);
            }
            Some(Call::VcpuAfterSetCpuid)
        }
        // Every other call takes no arguments the trace format names.
        other => Some(
            Call::example(other).ok_or_else(|| format!("`{}` cannot be replayed", other.name()))?,
        ),
    };
    // Calls with arguments beyond the format's: keep the example's,
    // except where the format gives them (handled above).
    Ok(TraceCall {
        line,
        vcpu,
        pv,
        call,
        cpuid_edits,
        expect_effective,
        expect,
        expect_value: raw.expect_value,
        note: raw.note.clone(),
    })
}

// ---------------------------------------------------------------------------
// CPU models
// ---------------------------------------------------------------------------

/// The CPU model a trace names: `reference` (the recorded Xeon Gold 6252)
/// or `host` (the CPU this runs on, through raw-cpuid).
pub fn cpu_model(name: &str) -> Result<CpuModel, TraceError> {
    let err = |message: String| TraceError::Cpu {
        name: name.to_string(),
        message,
    };
    match name {
        "reference" => {
            let dump = CpuDump::parse(REFERENCE_CPU_DUMP).map_err(|e| err(e.to_string()))?;
            CpuModel::from_dump(&dump).map_err(|e| err(e.to_string()))
        }
        "host" => host_cpu_model().map_err(err),
        other => Err(err(format!(
            "unknown cpu model `{other}` (known: reference, host)"
        ))),
    }
}

#[cfg(target_arch = "x86_64")]
fn host_cpu_model() -> Result<CpuModel, String> {
    CpuModel::from_reader(raw_cpuid::CpuIdReaderNative, HOST_MCG_CAP).map_err(|e| e.to_string())
}

#[cfg(not(target_arch = "x86_64"))]
fn host_cpu_model() -> Result<CpuModel, String> {
    Err("the `host` cpu model needs an x86_64 host".to_string())
}

// ---------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------

/// The rule that decided a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    /// Its id.
    pub id: u16,
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
    /// The full outcome.
    #[serde(skip)]
    pub outcome: Outcome,
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
            write!(f, ": {e}")?;
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
        let outcome = match (tc.call, vcpus.get(tc.vcpu)) {
            (None, _) => hyp.vm_destroy(vm),
            (Some(call), Some(&h)) => {
                if matches!(call, Call::VcpuAfterSetCpuid) {
                    table = hyp.supported_cpuid(trace.kind);
                    apply_edits(&mut table, &tc.cpuid_edits);
                }
                hyp.call(h, call, &mut table)
            }
            (Some(_), None) => {
                return Err(setup(format!(
                    "call #{}: vcpu {} does not exist",
                    i + 1,
                    tc.vcpu
                )));
            }
        };
        let mut mismatches = Vec::new();
        if let Some(expect) = tc.expect {
            let ok = match expect {
                Expect::Allow => outcome.effect == Effect::Allow && outcome.ok(),
                Expect::Deny => !outcome.ok(),
                Expect::Ignore => outcome.effect == Effect::Ignore && outcome.ok(),
                Expect::Filter => outcome.effect == Effect::Filter && outcome.ok(),
            };
            if !ok {
                mismatches.push(format!("got {}", outcome.effect.name()));
            }
        }
        if let Some(v) = tc.expect_value
            && outcome.out[0] != v
        {
            mismatches.push(format!("value {:#x}, expected {v:#x}", outcome.out[0]));
        }
        for b in &tc.expect_effective {
            check_bits(&table, b, &mut mismatches);
        }
        let has_expectation =
            tc.expect.is_some() || tc.expect_value.is_some() || !tc.expect_effective.is_empty();
        let rule = outcome
            .rule
            .and_then(|id| policy.rule(id))
            .map(|r| RuleRef {
                id: r.id.0,
                name: r.name.to_string(),
                line: r.line,
            });
        steps.push(Step {
            index: i + 1,
            line: tc.line,
            pv: tc.pv.name(),
            vcpu: tc.vcpu,
            effect: outcome.effect.name(),
            status: outcome.status(),
            rule,
            resource: resource_text(outcome.resource),
            error: outcome.error.map(|e| e.to_string()),
            expect: tc.expect,
            met: has_expectation.then_some(mismatches.is_empty()),
            mismatches,
            note: tc.note.clone(),
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
