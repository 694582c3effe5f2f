//! Reading `pvgate-trace/1` text: the serde model of the file and its
//! conversion into a [`Trace`], with errors located by line.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::path::Path;

use pvgate_codegen::Registry;
use pvgate_codegen::number::{self, NumberError};
use pvgate_gate::{PvCall, Register, VmKind};
use pvgate_hyp::error::errno_from_name;
use pvgate_hyp::{Call, DescTable, Gpr, GprWrite, GuestCall, SegReg, Segment};
use serde::Deserialize;

use crate::error::TraceError;
use crate::guest_state::{GuestExpect, GuestField};
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
    #[serde(default)]
    vcpus: Option<Num>,
}

/// A number in the one numeric grammar (`pvgate_codegen::number`), or a
/// name where the key allows one (`msr`, `subleaf`); checked on use.
type Num = toml::Value;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCall {
    pv: Option<String>,
    guest: Option<String>,
    pvmfw: Option<Num>,
    apic_id: Option<Num>,
    start_ip: Option<Num>,
    errno: Option<Num>,
    expect_guest: Option<BTreeMap<String, Num>>,
    vcpu: Option<Num>,
    msr: Option<Num>,
    value: Option<Num>,
    expect: Option<String>,
    expect_value: Option<Num>,
    note: Option<String>,
    seg: Option<String>,
    selector: Option<Num>,
    base: Option<Num>,
    limit: Option<Num>,
    ar: Option<Num>,
    regs: Option<BTreeMap<String, Num>>,
    root: Option<Num>,
    level: Option<Num>,
    mcg_cap: Option<Num>,
    vector: Option<Num>,
    soft: Option<bool>,
    for_injection: Option<bool>,
    error: Option<toml::Value>,
    size: Option<Num>,
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
    leaf: Num,
    #[serde(default)]
    subleaf: Option<Num>,
    reg: String,
    set: Option<Num>,
    clear: Option<Num>,
    value: Option<Num>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBits {
    leaf: Num,
    #[serde(default)]
    subleaf: Option<Num>,
    reg: String,
    set: Option<Num>,
    clear: Option<Num>,
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
    let raw: RawTrace = toml::from_str(text).map_err(|e| {
        let mut message = e.message().trim().to_string();
        if let Some(hint) = number::toml_error_hint(&message) {
            message = format!("{message}; {hint}");
        }
        TraceError::Parse {
            path: path.to_string(),
            line: e.span().map(|s| line_of(text, s.start)),
            message,
        }
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
    let vcpus: u64 = match &raw.vm.vcpus {
        None => 1,
        Some(v) => num(v, "vm.vcpus").map_err(top)?,
    };
    let vcpus = usize::try_from(vcpus).unwrap_or(usize::MAX);
    if vcpus == 0 || vcpus > MAX_TRACE_VCPUS {
        return Err(top(format!(
            "vm.vcpus = {vcpus} is outside 1..={MAX_TRACE_VCPUS}"
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

/// A number of the type `T` in the one numeric grammar: a TOML integer or
/// a `0x` string of at most as many hex digits as `T` has.
fn num<T: TryFrom<u64>>(v: &Num, key: &str) -> Result<T, String> {
    let bits = u32::try_from(8 * std::mem::size_of::<T>()).unwrap_or(64);
    let n = number::from_toml(v, bits).map_err(|e| {
        let shown = match v {
            toml::Value::String(s) => format!("`{s}`"),
            other => format!("`{other}`"),
        };
        match e {
            NumberError::Negative(_) | NumberError::TooLarge(_) | NumberError::TooManyDigits => {
                format!(
                    "`{key}` = {shown} is out of range (at most {:#x})",
                    number::max_of(bits)
                )
            }
            NumberError::BadString | NumberError::WrongType(_) => format!(
                "`{key}` = {shown} is not a number; {}",
                number::grammar_help(bits)
            ),
        }
    })?;
    T::try_from(n).map_err(|_| format!("`{key}` = {n:#x} is out of range"))
}

fn need<T: TryFrom<u64>>(v: &Option<Num>, pv: PvCall, key: &str) -> Result<T, String> {
    let v = v
        .as_ref()
        .ok_or_else(|| format!("`{}` needs `{key}`", pv.name()))?;
    num(v, key)
}

fn opt<T: TryFrom<u64>>(v: &Option<Num>, key: &str) -> Result<Option<T>, String> {
    v.as_ref().map(|v| num(v, key)).transpose()
}

fn vector(raw: &RawCall, pv: PvCall) -> Result<u8, String> {
    need(&raw.vector, pv, "vector")
}

/// `complete_emulated_msr`'s `error`: the host's result, an `int` (0 =
/// success, the default); a TOML integer, negative allowed.
fn emulation_error(v: Option<&toml::Value>) -> Result<i32, String> {
    match v {
        None => Ok(0),
        Some(toml::Value::Integer(n)) => {
            i32::try_from(*n).map_err(|_| format!("`error` = {n} is out of range (an int)"))
        }
        Some(other) => Err(format!("`error` = `{other}` is not an integer")),
    }
}

fn register(name: &str) -> Result<Register, String> {
    Register::from_name(name)
        .ok_or_else(|| format!("register `{name}` is not one of eax, ebx, ecx, edx"))
}

fn subleaf(s: &Option<Num>) -> Result<Subleaf, String> {
    match s {
        None => Ok(Subleaf::One(0)),
        Some(toml::Value::String(n)) if n == "all" => Ok(Subleaf::All),
        Some(toml::Value::String(n)) if !number::looks_numeric(n) => {
            Err(format!("subleaf `{n}` is neither a number nor `all`"))
        }
        Some(v) => Ok(Subleaf::One(num(v, "subleaf")?)),
    }
}

fn msr_index(m: &Num) -> Result<u32, String> {
    match m {
        toml::Value::String(name) if !number::looks_numeric(name) => Registry::builtin()
            .msr_by_name(name)
            .map(|e| e.index)
            .ok_or_else(|| format!("unknown msr `{name}`")),
        v => num(v, "msr"),
    }
}

fn bits(b: &RawBits) -> Result<CpuidBits, String> {
    let leaf: u32 = num(&b.leaf, "leaf")?;
    if b.set.is_none() && b.clear.is_none() {
        return Err(format!(
            "`expect_effective` entry for leaf {leaf:#x} needs `set` or `clear`"
        ));
    }
    Ok(CpuidBits {
        leaf,
        subleaf: subleaf(&b.subleaf)?,
        reg: register(&b.reg)?,
        set: opt(&b.set, "set")?.unwrap_or(0),
        clear: opt(&b.clear, "clear")?.unwrap_or(0),
    })
}

/// The errno an `errno` key names: a name of hyp's table (`EPERM`, …) or
/// its number.
fn errno(v: &Num) -> Result<i64, String> {
    let known = || {
        pvgate_hyp::error::ERRNOS
            .iter()
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match v {
        toml::Value::String(name) if !number::looks_numeric(name) => errno_from_name(name)
            .ok_or_else(|| format!("errno `{name}` is not one of {} (or a number)", known())),
        v => {
            let n: i64 = num(v, "errno")?;
            pvgate_hyp::error::errno_name(n)
                .map(|_| n)
                .ok_or_else(|| format!("errno {n} is not one hyp returns ({})", known()))
        }
    }
}

fn expect_guest(raw: &RawCall) -> Result<Vec<GuestExpect>, String> {
    let mut out = Vec::new();
    for (key, v) in raw.expect_guest.iter().flatten() {
        out.push(GuestExpect {
            key: key.clone(),
            field: GuestField::parse(key)?,
            value: num(v, key)?,
        });
    }
    Ok(out)
}

/// A guest call (`guest = "start_secondary"`): no host PV call keys.
fn convert_guest(raw: &RawCall, name: &str) -> Result<GuestCall, String> {
    if name != "start_secondary" {
        return Err(format!(
            "unknown guest call `{name}` (known: {})",
            GuestCall::NAMES.join(", ")
        ));
    }
    let need_key = |v: &Option<Num>, key: &str| -> Result<u64, String> {
        num(
            v.as_ref()
                .ok_or_else(|| format!("`{name}` needs `{key}`"))?,
            key,
        )
    };
    let apic_id = u32::try_from(need_key(&raw.apic_id, "apic_id")?)
        .map_err(|_| "`apic_id` is out of range (at most 0xffffffff)".to_string())?;
    Ok(GuestCall::StartSecondary {
        apic_id,
        start_ip: need_key(&raw.start_ip, "start_ip")?,
    })
}

fn convert_call(raw: &RawCall, line: usize, vcpus: usize) -> Result<TraceCall, String> {
    let vcpu: u64 = opt(&raw.vcpu, "vcpu")?.unwrap_or(0);
    let vcpu = usize::try_from(vcpu).unwrap_or(usize::MAX);
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
    let errno = raw.errno.as_ref().map(errno).transpose()?;
    if let (Some(_), Some(e)) = (errno, expect)
        && e != Expect::Deny
    {
        return Err(format!(
            "`errno` says the call fails, but `expect = \"{}\"` says it succeeds",
            e.name()
        ));
    }
    let pv_name = match (&raw.pv, &raw.guest) {
        (Some(pv), None) => pv,
        (None, Some(g)) => {
            if raw.pvmfw.is_some() {
                return Err("`pvmfw` is for `vm_finalize` only".to_string());
            }
            return Ok(TraceCall {
                line,
                vcpu,
                pv: None,
                guest: Some(convert_guest(raw, g)?),
                pvmfw: None,
                call: None,
                cpuid_edits: Vec::new(),
                expect_effective: Vec::new(),
                expect,
                expect_value: opt(&raw.expect_value, "expect_value")?,
                errno,
                expect_guest: expect_guest(raw)?,
                note: raw.note.clone(),
            });
        }
        (Some(_), Some(_)) => {
            return Err(
                "a call is either a host `pv` call or a `guest` call, not both".to_string(),
            );
        }
        (None, None) => return Err("a call needs `pv` (or `guest`)".to_string()),
    };
    let pv = PvCall::from_name(pv_name).ok_or_else(|| format!("unknown pv call `{pv_name}`"))?;
    if raw.apic_id.is_some() || raw.start_ip.is_some() {
        return Err(format!(
            "`apic_id` and `start_ip` are for `guest = \"start_secondary\"`, not `{}`",
            pv.name()
        ));
    }
    if raw.pvmfw.is_some() && pv != PvCall::VmFinalize {
        return Err(format!(
            "`pvmfw` is for `vm_finalize` only, not `{}`",
            pv.name()
        ));
    }
    let value = || need::<u64>(&raw.value, pv, "value");
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
            base: need(&raw.base, pv, "base")?,
            limit: need(&raw.limit, pv, "limit")?,
        })
    };
    let mut cpuid_edits = Vec::new();
    let mut expect_effective = Vec::new();
    for b in raw.expect_effective.iter().flatten() {
        expect_effective.push(bits(b)?);
    }
    let call = match pv {
        PvCall::VmDestroy | PvCall::VmFinalize => None,
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
        PvCall::WriteTscMultiplier => Some(Call::WriteTscMultiplier(
            NonZeroU64::new(value()?)
                .ok_or("`write_tsc_multiplier`: `value` = 0x0 is out of range")?,
        )),
        PvCall::SetSegment => Some(Call::SetSegment {
            seg: seg()?,
            segment: Segment {
                selector: need(&raw.selector, pv, "selector")?,
                base: need(&raw.base, pv, "base")?,
                limit: need(&raw.limit, pv, "limit")?,
                ar: need(&raw.ar, pv, "ar")?,
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
                    let known = Gpr::ALL.iter().map(|g| g.name());
                    let hint = pvgate_codegen::diagnostic::swallowed_key_help(
                        "call.regs",
                        name,
                        known,
                        "regs = { rax = 0x1 }",
                    );
                    let hint = hint.map(|h| format!("; {h}")).unwrap_or_default();
                    format!("`set_regs`: unknown register `{name}` (rax … r15, rip){hint}")
                })?;
                w = w.with(reg, num(v, name)?);
            }
            Some(Call::SetRegs(w))
        }
        PvCall::LoadMmuPgd => Some(Call::LoadMmuPgd {
            root: need(&raw.root, pv, "root")?,
            level: need(&raw.level, pv, "level")?,
        }),
        PvCall::SetupMce => Some(Call::SetupMce {
            mcg_cap: need(&raw.mcg_cap, pv, "mcg_cap")?,
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
        PvCall::InterruptAllowed => Some(Call::InterruptAllowed {
            for_injection: raw.for_injection.unwrap_or(false),
        }),
        PvCall::NmiAllowed => Some(Call::NmiAllowed {
            for_injection: raw.for_injection.unwrap_or(false),
        }),
        PvCall::CompleteEmulatedMsr => Some(Call::CompleteEmulatedMsr {
            error: emulation_error(raw.error.as_ref())?,
        }),
        PvCall::VcpuAddFpstate => Some(Call::VcpuAddFpstate {
            size: need(&raw.size, pv, "size")?,
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
                let leaf: u32 = num(&e.leaf, "leaf")?;
                let op = match (
                    opt(&e.set, "set")?,
                    opt(&e.clear, "clear")?,
                    opt(&e.value, "value")?,
                ) {
                    (Some(b), None, None) => EditOp::Set(b),
                    (None, Some(b), None) => EditOp::Clear(b),
                    (None, None, Some(v)) => EditOp::Value(v),
                    _ => {
                        return Err(format!(
                            "cpuid edit of leaf {leaf:#x} needs exactly one of `set`, `clear`, `value`"
                        ));
                    }
                };
                cpuid_edits.push(CpuidEdit {
                    leaf,
                    subleaf: subleaf(&e.subleaf)?,
                    reg: register(&e.reg)?,
                    op,
                });
            }
            for b in &c.expect_effective {
                expect_effective.push(bits(b)?);
            }
            // Not a `Call`: replay hands the edited table to
            // `vcpu_after_set_cpuid` itself.
            None
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
        pv: Some(pv),
        guest: None,
        pvmfw: opt(&raw.pvmfw, "pvmfw")?,
        call,
        cpuid_edits,
        expect_effective,
        expect,
        expect_value: opt(&raw.expect_value, "expect_value")?,
        errno,
        expect_guest: expect_guest(raw)?,
        note: raw.note.clone(),
    })
}
