//! Reading `pvgate-trace/1` text: a spanned parse of the file, every key
//! checked against the format's lists, and each call converted on its own
//! ([`call_from`], shared with the vector files of `crate::vectors`), so
//! every error of a file is reported at once, located at its key.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::ops::Range;
use std::path::Path;

use pvgate_codegen::diagnostic::{LineIndex, suggest};
use pvgate_codegen::number::{self, NumberError};
use pvgate_codegen::{Diagnostic, ErrorKind, Registry};
use pvgate_gate::{PvCall, Register, VmKind};
use pvgate_hyp::error::errno_from_name;
use pvgate_hyp::{Call, DescTable, Gpr, GprWrite, GuestCall, SegReg, Segment};
use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::error::TraceError;
use crate::guest_state::{GuestExpect, GuestField};
use crate::model::{
    CpuidBits, CpuidEdit, EditOp, Expect, MAX_TRACE_VCPUS, Subleaf, Trace, TraceCall,
};
use crate::spanned::{
    FileErrors, KeyError, drop_explained_missing, entry, header_span, toml_error, unknown_keys,
    unknown_name,
};

/// The trace format this crate reads.
pub const FORMAT: &str = "pvgate-trace/1";

/// The keys of a trace's top level.
const TOP_KEYS: &[&str] = &["format", "title", "source", "cpu", "vm", "call"];
/// The keys of `[vm]`.
const VM_KEYS: &[&str] = &["kind", "vcpus"];
/// The keys of a call (a trace's `[[call]]`, a vector's hyp case, a
/// preamble entry).
pub(crate) const CALL_KEYS: &[&str] = &[
    "pv",
    "guest",
    "vcpu",
    "msr",
    "value",
    "seg",
    "selector",
    "base",
    "limit",
    "ar",
    "regs",
    "root",
    "level",
    "mcg_cap",
    "vector",
    "soft",
    "for_injection",
    "error",
    "size",
    "cpuid",
    "pvmfw",
    "apic_id",
    "start_ip",
    "expect",
    "errno",
    "expect_value",
    "expect_effective",
    "expect_guest",
    "note",
];
/// The keys of a `cpuid` table.
const CPUID_KEYS: &[&str] = &["from", "edits", "expect_effective"];
/// The keys of a CPUID edit.
pub(crate) const EDIT_KEYS: &[&str] = &["leaf", "subleaf", "reg", "set", "clear", "value"];
/// The keys of an `expect_effective` entry.
pub(crate) const BITS_KEYS: &[&str] = &["leaf", "subleaf", "reg", "set", "clear"];
/// The names `expect` takes on a call.
pub(crate) const EXPECT_NAMES: &[&str] = &["allow", "deny", "ignore", "filter"];
/// The VM kinds.
pub(crate) const KIND_NAMES: &[&str] = &["protected", "normal"];

// ---------------------------------------------------------------------------
// The call (serde over one spanned table; keys are checked separately)
// ---------------------------------------------------------------------------

/// A number in the one numeric grammar (`pvgate_codegen::number`), or a
/// name where the key allows one (`msr`, `subleaf`); checked on use.
type Num = toml::Value;

#[derive(Deserialize, Default)]
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
    /// A table for a call; a vector's decision-only case writes a string
    /// here, which never reaches [`RawCall`].
    cpuid: Option<RawCpuid>,
    expect_effective: Option<Vec<RawBits>>,
}

#[derive(Deserialize)]
struct RawCpuid {
    from: String,
    #[serde(default)]
    edits: Vec<RawEdit>,
    #[serde(default)]
    expect_effective: Vec<RawBits>,
}

#[derive(Deserialize)]
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
struct RawBits {
    leaf: Num,
    #[serde(default)]
    subleaf: Option<Num>,
    reg: String,
    set: Option<Num>,
    clear: Option<Num>,
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

/// Parses trace text (`path` is only used in messages); every error of the
/// text is returned at once ([`TraceError::Invalid`]).
pub fn parse(text: &str, path: &str) -> Result<Trace, TraceError> {
    let invalid = |diagnostics: Vec<Diagnostic>| {
        TraceError::Invalid(Box::new(FileErrors {
            what: "trace",
            path: path.to_string(),
            text: text.to_string(),
            diagnostics,
        }))
    };
    let doc = DeTable::parse(text).map_err(|e| invalid(vec![toml_error(&e, 0..0)]))?;
    let root = doc.get_ref();
    let mut diags = Vec::new();
    unknown_keys(root, TOP_KEYS, "a trace", &mut diags);
    let format = string_key(root, "format", true, 0..0, &mut diags);
    if let Some((f, span)) = &format
        && f != FORMAT
    {
        diags.push(
            Diagnostic::new(
                ErrorKind::BadHeader,
                format!("format `{f}` is not `{FORMAT}`"),
                span.clone(),
                "unknown format",
            )
            .with_help(format!("write `format = \"{FORMAT}\"`")),
        );
    }
    let title = string_key(root, "title", true, 0..0, &mut diags);
    let source = string_key(root, "source", false, 0..0, &mut diags);
    let cpu = string_key(root, "cpu", false, 0..0, &mut diags);
    let (kind, vcpus) = vm_table(root, &mut diags);
    drop_explained_missing(&mut diags, 0);
    let mut calls = Vec::new();
    let lines = LineIndex::new(text);
    for (v, header) in array_of_tables(text, root, "call", &mut diags) {
        let call = call_from(
            &lines,
            v,
            header,
            vcpus.unwrap_or(MAX_TRACE_VCPUS),
            &[],
            "a [[call]]",
            &mut diags,
        );
        calls.extend(call);
    }
    if !diags.is_empty() {
        diags.sort_by_key(|d| d.span.start);
        return Err(invalid(diags));
    }
    match (title, kind, vcpus) {
        (Some((title, _)), Some(kind), Some(vcpus)) => Ok(Trace {
            path: path.to_string(),
            title,
            source: source.map(|s| s.0),
            cpu: cpu.map_or_else(|| "reference".to_string(), |c| c.0),
            kind,
            vcpus,
            calls,
        }),
        // Each missing piece pushed a diagnostic above.
        _ => Err(invalid(Vec::new())),
    }
}

/// `[vm]`: the kind and the vCPU count.
fn vm_table(root: &DeTable<'_>, diags: &mut Vec<Diagnostic>) -> (Option<VmKind>, Option<usize>) {
    let Some((_, vm)) = entry(root, "vm") else {
        diags.push(Diagnostic::new(
            ErrorKind::MissingKey,
            "a trace needs a `[vm]` table (`kind`, `vcpus`)",
            0..0,
            "no `[vm]`",
        ));
        return (None, None);
    };
    let Some(table) = vm.get_ref().as_table() else {
        diags.push(wrong_type("vm", "a table", vm));
        return (None, None);
    };
    unknown_keys(table, VM_KEYS, "`[vm]`", diags);
    let kind = string_key(table, "kind", true, vm.span(), diags).and_then(|(k, span)| {
        let kind = VmKind::from_name(&k);
        if kind.is_none() {
            diags.push(unknown_name("kind", "vm kind", &k, KIND_NAMES).locate(table, span));
        }
        kind
    });
    let vcpus = match entry(table, "vcpus") {
        None => Some(1),
        Some((_, v)) => {
            let n = plain(v).and_then(|n| num::<u64>(&n, "vm.vcpus"));
            match n {
                Ok(n) if (1..=MAX_TRACE_VCPUS as u64).contains(&n) => usize::try_from(n).ok(),
                Ok(n) => {
                    diags.push(Diagnostic::new(
                        ErrorKind::OutOfRange,
                        format!("vm.vcpus = {n} is outside 1..={MAX_TRACE_VCPUS}"),
                        v.span(),
                        "out of range",
                    ));
                    None
                }
                Err(m) => {
                    diags.push(Diagnostic::new(
                        ErrorKind::BadNumber,
                        m,
                        v.span(),
                        "not a number",
                    ));
                    None
                }
            }
        }
    };
    (kind, vcpus)
}

/// A spanned value as a plain `toml::Value` (for the numeric grammar).
pub(crate) fn plain(v: &Spanned<DeValue<'_>>) -> Result<toml::Value, String> {
    toml::Value::deserialize(ValueDeserializer::from(v.clone()))
        .map_err(|e| e.message().trim().to_string())
}

/// A "wrong type" diagnostic at a value.
pub(crate) fn wrong_type(key: &str, want: &str, v: &Spanned<DeValue<'_>>) -> Diagnostic {
    Diagnostic::new(
        ErrorKind::Syntax,
        format!("`{key}` must be {want}, not {}", v.get_ref().type_str()),
        v.span(),
        format!("expected {want}"),
    )
}

/// A string key of a table: its value and span; a missing required key
/// or a non-string is a diagnostic (at `whole` when missing).
pub(crate) fn string_key(
    table: &DeTable<'_>,
    key: &str,
    required: bool,
    whole: Range<usize>,
    diags: &mut Vec<Diagnostic>,
) -> Option<(String, Range<usize>)> {
    match entry(table, key) {
        None => {
            if required {
                diags.push(Diagnostic::new(
                    ErrorKind::MissingKey,
                    format!("missing key `{key}`"),
                    whole,
                    format!("needs `{key}`"),
                ));
            }
            None
        }
        Some((_, v)) => match v.get_ref().as_str() {
            Some(s) => Some((s.to_string(), v.span())),
            None => {
                diags.push(wrong_type(key, "a string", v));
                None
            }
        },
    }
}

/// The entries of an array of tables (`[[call]]`, `[[case]]`) with the
/// span of each one's header.
pub(crate) fn array_of_tables<'a, 'i>(
    text: &str,
    root: &'a DeTable<'i>,
    key: &str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<(&'a Spanned<DeValue<'i>>, Range<usize>)> {
    let Some((_, v)) = entry(root, key) else {
        return Vec::new();
    };
    let Some(items) = v.get_ref().as_array() else {
        diags.push(wrong_type(
            key,
            &format!("an array of tables (`[[{key}]]`)"),
            v,
        ));
        return Vec::new();
    };
    items
        .iter()
        .map(|item| (item, header_span(text, item.span(), key)))
        .collect()
}

/// Converts one call (a `[[call]]`, a hyp case, a preamble entry): its
/// keys checked (the call's, plus `extra`, the keys the enclosing format
/// adds), its values typed and converted; each error is pushed located at
/// its key's value (else at `header`). `what` names the call in messages.
pub(crate) fn call_from(
    lines: &LineIndex<'_>,
    v: &Spanned<DeValue<'_>>,
    header: Range<usize>,
    vcpus: usize,
    extra: &[&str],
    what: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<TraceCall> {
    let Some(table) = v.get_ref().as_table() else {
        diags.push(wrong_type("call", "a table", v));
        return None;
    };
    let before = diags.len();
    let known: Vec<&str> = CALL_KEYS.iter().chain(extra).copied().collect();
    unknown_keys(table, &known, what, diags);
    nested_keys(table, diags);
    let raw = match RawCall::deserialize(ValueDeserializer::from(v.clone())) {
        Ok(raw) => raw,
        Err(e) => {
            diags.push(toml_error(&e, header));
            return None;
        }
    };
    let line = lines.line(header.start);
    let call = match convert_call(&raw, line, vcpus) {
        Ok(call) => Some(call),
        Err(errs) => {
            diags.extend(errs.into_iter().map(|e| e.locate(table, header.clone())));
            None
        }
    };
    drop_explained_missing(diags, before);
    call.filter(|_| diags.len() == before)
}

/// Keys of the tables inside a call: `cpuid`, its edits and both
/// `expect_effective` lists.
fn nested_keys(table: &DeTable<'_>, diags: &mut Vec<Diagnostic>) {
    let each =
        |v: &Spanned<DeValue<'_>>, known: &[&str], what: &str, diags: &mut Vec<Diagnostic>| {
            for item in v.get_ref().as_array().into_iter().flatten() {
                if let Some(t) = item.get_ref().as_table() {
                    unknown_keys(t, known, what, diags);
                }
            }
        };
    if let Some((_, v)) = entry(table, "expect_effective") {
        each(v, BITS_KEYS, "an `expect_effective` entry", diags);
    }
    if let Some(cpuid) = entry(table, "cpuid").and_then(|(_, v)| v.get_ref().as_table()) {
        unknown_keys(cpuid, CPUID_KEYS, "a `cpuid` table", diags);
        if let Some((_, v)) = entry(cpuid, "edits") {
            each(v, EDIT_KEYS, "a CPUID edit", diags);
        }
        if let Some((_, v)) = entry(cpuid, "expect_effective") {
            each(v, BITS_KEYS, "an `expect_effective` entry", diags);
        }
    }
}

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

/// A number of the type `T` in the one numeric grammar: a TOML integer or
/// a `0x` string of at most as many hex digits as `T` has.
pub(crate) fn num<T: TryFrom<u64>>(v: &Num, key: &str) -> Result<T, String> {
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

/// [`num`] as a located error at `key`.
fn knum<T: TryFrom<u64>>(v: &Num, key: &'static str) -> Result<T, KeyError> {
    num(v, key).map_err(|m| KeyError::at(key, ErrorKind::BadNumber, m))
}

fn need<T: TryFrom<u64>>(v: &Option<Num>, pv: PvCall, key: &'static str) -> Result<T, KeyError> {
    let v = v.as_ref().ok_or_else(|| {
        KeyError::whole(
            ErrorKind::MissingKey,
            format!("`{}` needs `{key}`", pv.name()),
        )
    })?;
    knum(v, key)
}

fn opt<T: TryFrom<u64>>(v: &Option<Num>, key: &'static str) -> Result<Option<T>, KeyError> {
    v.as_ref().map(|v| knum(v, key)).transpose()
}

fn vector(raw: &RawCall, pv: PvCall) -> Result<u8, KeyError> {
    need(&raw.vector, pv, "vector")
}

/// `complete_emulated_msr`'s `error`: the host's result, an `int` (0 =
/// success, the default); a TOML integer, negative allowed.
fn emulation_error(v: Option<&toml::Value>) -> Result<i32, KeyError> {
    match v {
        None => Ok(0),
        Some(toml::Value::Integer(n)) => i32::try_from(*n).map_err(|_| {
            KeyError::at(
                "error",
                ErrorKind::OutOfRange,
                format!("`error` = {n} is out of range (an int)"),
            )
        }),
        Some(other) => Err(KeyError::at(
            "error",
            ErrorKind::Syntax,
            format!("`error` = `{other}` is not an integer"),
        )),
    }
}

/// A CPUID register name (`key` locates the error).
pub(crate) fn register(name: &str, key: &'static str) -> Result<Register, KeyError> {
    Register::from_name(name)
        .ok_or_else(|| unknown_name(key, "register", name, &["eax", "ebx", "ecx", "edx"]))
}

fn subleaf(s: &Option<Num>, key: &'static str) -> Result<Subleaf, KeyError> {
    match s {
        None => Ok(Subleaf::One(0)),
        Some(toml::Value::String(n)) if n == "all" => Ok(Subleaf::All),
        Some(toml::Value::String(n)) if !number::looks_numeric(n) => Err(KeyError::at(
            key,
            ErrorKind::BadNumber,
            format!("subleaf `{n}` is neither a number nor `all`"),
        )),
        Some(v) => Ok(Subleaf::One(knum(v, key)?)),
    }
}

/// An MSR index: a registry name (SDM or Linux alias) or a number; an
/// unknown name gets the registry's closest name.
pub(crate) fn msr_index(m: &Num, key: &'static str) -> Result<u32, KeyError> {
    match m {
        toml::Value::String(name) if !number::looks_numeric(name) => {
            let registry = Registry::builtin();
            registry
                .msr_by_name(name)
                .or_else(|| registry.msr_by_name(&name.to_ascii_uppercase()))
                .map(|e| e.index)
                .ok_or_else(|| {
                    KeyError::at(key, ErrorKind::UnknownName, format!("unknown msr `{name}`"))
                        .suggest(suggest(name, registry.msr_names()))
                })
        }
        v => knum(v, key),
    }
}

fn bits(b: &RawBits, key: &'static str) -> Result<CpuidBits, KeyError> {
    let leaf: u32 = knum(&b.leaf, key)?;
    if b.set.is_none() && b.clear.is_none() {
        return Err(KeyError::at(
            key,
            ErrorKind::MissingKey,
            format!("`expect_effective` entry for leaf {leaf:#x} needs `set` or `clear`"),
        ));
    }
    Ok(CpuidBits {
        leaf,
        subleaf: subleaf(&b.subleaf, key)?,
        reg: register(&b.reg, key)?,
        set: opt_at(&b.set, key)?.unwrap_or(0),
        clear: opt_at(&b.clear, key)?.unwrap_or(0),
    })
}

/// [`opt`] located at another key (an entry of a list).
fn opt_at<T: TryFrom<u64>>(v: &Option<Num>, key: &'static str) -> Result<Option<T>, KeyError> {
    v.as_ref().map(|v| knum(v, key)).transpose()
}

/// The errno an `errno` key names: a name of hyp's table (`EPERM`, …) or
/// its number.
fn errno(v: &Num) -> Result<i64, KeyError> {
    let names: Vec<&str> = pvgate_hyp::error::ERRNOS.iter().map(|(_, n)| *n).collect();
    match v {
        toml::Value::String(name) if !number::looks_numeric(name) => errno_from_name(name)
            .ok_or_else(|| {
                KeyError::at(
                    "errno",
                    ErrorKind::UnknownName,
                    format!(
                        "errno `{name}` is not one of {} (or a number)",
                        names.join(", ")
                    ),
                )
                .suggest(suggest(name, names.iter().copied()))
            }),
        v => {
            let n: i64 = knum(v, "errno")?;
            pvgate_hyp::error::errno_name(n).map(|_| n).ok_or_else(|| {
                KeyError::at(
                    "errno",
                    ErrorKind::UnknownName,
                    format!("errno {n} is not one hyp returns ({})", names.join(", ")),
                )
            })
        }
    }
}

fn expect_guest(raw: &RawCall) -> Result<Vec<GuestExpect>, KeyError> {
    let mut out = Vec::new();
    for (key, v) in raw.expect_guest.iter().flatten() {
        out.push(GuestExpect {
            key: key.clone(),
            field: GuestField::parse(key)
                .map_err(|m| KeyError::at("expect_guest", ErrorKind::UnknownKey, m))?,
            value: num(v, key)
                .map_err(|m| KeyError::at("expect_guest", ErrorKind::BadNumber, m))?,
        });
    }
    Ok(out)
}

/// The `expect` of a call.
pub(crate) fn expect_of(e: &str) -> Result<Expect, KeyError> {
    Expect::from_name(e).ok_or_else(|| unknown_name("expect", "expectation", e, EXPECT_NAMES))
}

/// A guest call (`guest = "start_secondary"`): no host PV call keys.
fn convert_guest(raw: &RawCall, name: &str) -> Result<GuestCall, KeyError> {
    if name != "start_secondary" {
        return Err(unknown_name("guest", "guest call", name, &GuestCall::NAMES));
    }
    let need_key = |v: &Option<Num>, key: &'static str| -> Result<u64, KeyError> {
        knum(
            v.as_ref().ok_or_else(|| {
                KeyError::whole(ErrorKind::MissingKey, format!("`{name}` needs `{key}`"))
            })?,
            key,
        )
    };
    let apic_id = u32::try_from(need_key(&raw.apic_id, "apic_id")?).map_err(|_| {
        KeyError::at(
            "apic_id",
            ErrorKind::OutOfRange,
            "`apic_id` is out of range (at most 0xffffffff)",
        )
    })?;
    Ok(GuestCall::StartSecondary {
        apic_id,
        start_ip: need_key(&raw.start_ip, "start_ip")?,
    })
}

/// A PV call name, with a suggestion when it is unknown.
pub(crate) fn pv_call(name: &str, key: &'static str) -> Result<PvCall, KeyError> {
    PvCall::from_name(name).ok_or_else(|| {
        KeyError::at(
            key,
            ErrorKind::UnknownName,
            format!("unknown pv call `{name}`"),
        )
        .suggest(suggest(name, PvCall::ALL.iter().map(|c| c.name())))
    })
}

/// A call's value, or `None` with its error recorded.
fn keep<T>(r: Result<T, KeyError>, errs: &mut Vec<KeyError>) -> Option<T> {
    r.map_err(|e| errs.push(e)).ok()
}

/// What a call does, apart from its expectations.
struct CallBody {
    pv: Option<PvCall>,
    guest: Option<GuestCall>,
    call: Option<Call>,
    cpuid_edits: Vec<CpuidEdit>,
    expect_effective: Vec<CpuidBits>,
}

/// Converts a call: the keys that do not depend on each other are checked
/// each on its own, so a call with a wrong `errno` and a wrong `msr` gets
/// both errors.
fn convert_call(raw: &RawCall, line: usize, vcpus: usize) -> Result<TraceCall, Vec<KeyError>> {
    let mut errs = Vec::new();
    let vcpu = keep(vcpu_of(raw, vcpus), &mut errs);
    let expect = keep(raw.expect.as_deref().map(expect_of).transpose(), &mut errs);
    let errno = keep(raw.errno.as_ref().map(errno).transpose(), &mut errs);
    let expect_value = keep(opt(&raw.expect_value, "expect_value"), &mut errs);
    let guest_state = keep(expect_guest(raw), &mut errs);
    let pvmfw = keep(opt(&raw.pvmfw, "pvmfw"), &mut errs);
    if let (Some(Some(_)), Some(Some(e))) = (errno, expect)
        && e != Expect::Deny
    {
        errs.push(KeyError::at(
            "errno",
            ErrorKind::MisplacedConstraint,
            format!(
                "`errno` says the call fails, but `expect = \"{}\"` says it succeeds",
                e.name()
            ),
        ));
    }
    let body = keep(call_body(raw), &mut errs);
    match (vcpu, expect, errno, expect_value, guest_state, pvmfw, body) {
        (
            Some(vcpu),
            Some(expect),
            Some(errno),
            Some(expect_value),
            Some(expect_guest),
            Some(pvmfw),
            Some(body),
        ) if errs.is_empty() => Ok(TraceCall {
            line,
            vcpu,
            pv: body.pv,
            guest: body.guest,
            pvmfw,
            call: body.call,
            cpuid_edits: body.cpuid_edits,
            expect_effective: body.expect_effective,
            expect,
            expect_value,
            errno,
            expect_guest,
            note: raw.note.clone(),
        }),
        _ => Err(errs),
    }
}

/// The `vcpu` of a call, which must exist.
fn vcpu_of(raw: &RawCall, vcpus: usize) -> Result<usize, KeyError> {
    let vcpu: u64 = opt(&raw.vcpu, "vcpu")?.unwrap_or(0);
    let vcpu = usize::try_from(vcpu).unwrap_or(usize::MAX);
    if vcpu >= vcpus {
        return Err(KeyError::at(
            "vcpu",
            ErrorKind::OutOfRange,
            format!("vcpu {vcpu} does not exist (the vm has {vcpus})"),
        ));
    }
    Ok(vcpu)
}

/// The call itself: a guest call, or a host PV call with its arguments.
fn call_body(raw: &RawCall) -> Result<CallBody, KeyError> {
    let pv_name = match (&raw.pv, &raw.guest) {
        (Some(pv), None) => pv,
        (None, Some(g)) => {
            if raw.pvmfw.is_some() {
                return Err(KeyError::at(
                    "pvmfw",
                    ErrorKind::MisplacedConstraint,
                    "`pvmfw` is for `vm_finalize` only",
                ));
            }
            return Ok(CallBody {
                pv: None,
                guest: Some(convert_guest(raw, g)?),
                call: None,
                cpuid_edits: Vec::new(),
                expect_effective: Vec::new(),
            });
        }
        (Some(_), Some(_)) => {
            return Err(KeyError::at(
                "guest",
                ErrorKind::MisplacedConstraint,
                "a call is either a host `pv` call or a `guest` call, not both",
            ));
        }
        (None, None) => {
            return Err(KeyError::whole(
                ErrorKind::MissingKey,
                "a call needs `pv` (or `guest`)",
            ));
        }
    };
    let pv = pv_call(pv_name, "pv")?;
    if raw.apic_id.is_some() || raw.start_ip.is_some() {
        let key = if raw.apic_id.is_some() {
            "apic_id"
        } else {
            "start_ip"
        };
        return Err(KeyError::at(
            key,
            ErrorKind::MisplacedConstraint,
            format!(
                "`apic_id` and `start_ip` are for `guest = \"start_secondary\"`, not `{}`",
                pv.name()
            ),
        ));
    }
    if raw.pvmfw.is_some() && pv != PvCall::VmFinalize {
        return Err(KeyError::at(
            "pvmfw",
            ErrorKind::MisplacedConstraint,
            format!("`pvmfw` is for `vm_finalize` only, not `{}`", pv.name()),
        ));
    }
    let value = || need::<u64>(&raw.value, pv, "value");
    let seg = || -> Result<SegReg, KeyError> {
        let name = raw.seg.as_deref().ok_or_else(|| {
            KeyError::whole(
                ErrorKind::MissingKey,
                format!("`{}` needs `seg`", pv.name()),
            )
        })?;
        SegReg::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = SegReg::ALL.iter().map(|s| s.name()).collect();
            unknown_name("seg", "segment", name, &names)
        })
    };
    let table = || -> Result<DescTable, KeyError> {
        Ok(DescTable {
            base: need(&raw.base, pv, "base")?,
            limit: need(&raw.limit, pv, "limit")?,
        })
    };
    let needs_msr = || {
        raw.msr.as_ref().ok_or_else(|| {
            KeyError::whole(
                ErrorKind::MissingKey,
                format!("`{}` needs `msr`", pv.name()),
            )
        })
    };
    let mut cpuid_edits = Vec::new();
    let mut expect_effective = Vec::new();
    for b in raw.expect_effective.iter().flatten() {
        expect_effective.push(bits(b, "expect_effective")?);
    }
    let call = match pv {
        PvCall::VmDestroy | PvCall::VmFinalize => None,
        PvCall::SetMsr => Some(Call::SetMsr {
            index: msr_index(needs_msr()?, "msr")?,
            value: value()?,
        }),
        PvCall::GetMsr => Some(Call::GetMsr {
            index: msr_index(needs_msr()?, "msr")?,
        }),
        PvCall::SetRflags => Some(Call::SetRflags(value()?)),
        PvCall::SetCr0 => Some(Call::SetCr0(value()?)),
        PvCall::SetCr4 => Some(Call::SetCr4(value()?)),
        PvCall::SetEfer => Some(Call::SetEfer(value()?)),
        PvCall::WriteTscOffset => Some(Call::WriteTscOffset(value()?)),
        PvCall::WriteTscMultiplier => Some(Call::WriteTscMultiplier(
            NonZeroU64::new(value()?).ok_or_else(|| {
                KeyError::at(
                    "value",
                    ErrorKind::OutOfRange,
                    "`write_tsc_multiplier`: `value` = 0x0 is out of range",
                )
            })?,
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
            let regs = raw
                .regs
                .as_ref()
                .ok_or_else(|| KeyError::whole(ErrorKind::MissingKey, "`set_regs` needs `regs`"))?;
            let mut w = GprWrite::default();
            for (name, v) in regs {
                let reg = Gpr::from_name(name).ok_or_else(|| {
                    let names: Vec<&str> =
                        Gpr::ALL.iter().map(|g| g.name()).chain(["rsp"]).collect();
                    let hint = pvgate_codegen::diagnostic::swallowed_key_help(
                        "call.regs",
                        name,
                        Gpr::ALL.iter().map(|g| g.name()),
                        "regs = { rax = 0x1 }",
                    );
                    let hint = hint.map(|h| format!("; {h}")).unwrap_or_default();
                    KeyError::at(
                        "regs",
                        ErrorKind::UnknownName,
                        format!("`set_regs`: unknown register `{name}` (rax … r15, rip){hint}"),
                    )
                    .suggest(suggest(name, names))
                })?;
                w = w.with(
                    reg,
                    num(v, name).map_err(|m| KeyError::at("regs", ErrorKind::BadNumber, m))?,
                );
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
            let c = raw.cpuid.as_ref().ok_or_else(|| {
                KeyError::whole(
                    ErrorKind::MissingKey,
                    "`vcpu_after_set_cpuid` needs a `cpuid` table",
                )
            })?;
            if c.from != "supported" {
                return Err(unknown_name(
                    "cpuid.from",
                    "cpuid source",
                    &c.from,
                    &["supported"],
                ));
            }
            for e in &c.edits {
                let key = "cpuid.edits";
                let leaf: u32 = knum(&e.leaf, key)?;
                let op = match (
                    opt_at(&e.set, key)?,
                    opt_at(&e.clear, key)?,
                    opt_at(&e.value, key)?,
                ) {
                    (Some(b), None, None) => EditOp::Set(b),
                    (None, Some(b), None) => EditOp::Clear(b),
                    (None, None, Some(v)) => EditOp::Value(v),
                    _ => {
                        return Err(KeyError::at(
                            key,
                            ErrorKind::MisplacedConstraint,
                            format!(
                                "cpuid edit of leaf {leaf:#x} needs exactly one of `set`, `clear`, `value`"
                            ),
                        ));
                    }
                };
                cpuid_edits.push(CpuidEdit {
                    leaf,
                    subleaf: subleaf(&e.subleaf, key)?,
                    reg: register(&e.reg, key)?,
                    op,
                });
            }
            for b in &c.expect_effective {
                expect_effective.push(bits(b, "cpuid.expect_effective")?);
            }
            // Not a `Call`: replay hands the edited table to
            // `vcpu_after_set_cpuid` itself.
            None
        }
        // Every other call takes no arguments the trace format names.
        other => Some(Call::example(other).ok_or_else(|| {
            KeyError::at(
                "pv",
                ErrorKind::UnknownName,
                format!("`{}` cannot be replayed", other.name()),
            )
        })?),
    };
    // Calls with arguments beyond the format's: keep the example's,
    // except where the format gives them (handled above).
    Ok(CallBody {
        pv: Some(pv),
        guest: None,
        call,
        cpuid_edits,
        expect_effective,
    })
}
