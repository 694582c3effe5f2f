//! Reading `pvgate-trace/1` text: the serde model of the file and its
//! conversion into a [`Trace`], with errors located by line.

use std::collections::BTreeMap;
use std::path::Path;

use pvgate_codegen::Registry;
use pvgate_gate::{PvCall, Register, VmKind};
use pvgate_hyp::{Call, DescTable, Gpr, GprWrite, SegReg, Segment};
use serde::Deserialize;

use crate::error::TraceError;
use crate::model::{
    CpuidBits, CpuidEdit, EditOp, Expect, MAX_TRACE_VCPUS, Subleaf, Trace, TraceCall,
};

/// The trace format this crate reads.
pub const FORMAT: &str = "pvgate-trace/1";

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
