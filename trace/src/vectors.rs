//! Reading `pvgate-conformance/1` vector files (format in
//! `docs/conformance.md`): a header and `[[case]]`s, each either a
//! decision-only case (answered by the policy's decision functions) or a
//! hyp case (a call in the trace vocabulary, run through the hypervisor
//! core). A `pvgate-trace/1` file loads as a vector file too: its calls
//! with expectations are its cases. Every error of a file is collected,
//! located at its key.
//!
//! Which kind a case is, decided by its keys alone:
//!
//! * `access`, `effective`, `reg`, `bit`, `bits`, or `cpuid` as a string
//!   (`"0x7.0"`) make it decision-only;
//! * `preamble`, `vcpus`, `guest`, `errno`, `expect_value`,
//!   `expect_effective`, `expect_guest`, `cpuid` as a table, any call
//!   argument other than `msr` and `value` (`vector`, `soft`, `regs`, …),
//!   or `pv` together with `msr` or `value`, make it a hyp case;
//! * `hyp = true` makes a case with neither a hyp case (`hyp = false` a
//!   decision-only one);
//! * keys of both kinds in one case, or `hyp = false` with a hyp key, are
//!   an input error naming both keys: a case is never guessed.

use std::ops::Range;
use std::path::Path;

use pvgate_codegen::diagnostic::{LineIndex, suggest};
use pvgate_codegen::number;
use pvgate_codegen::{Diagnostic, ErrorKind, Registry};
use pvgate_gate::{Access, BitMode, Phase, PvCall, Register, Verdict, VmKind};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::TraceError;
use crate::load::{
    self, CALL_KEYS, KIND_NAMES, array_of_tables, call_from, msr_index, num, plain, pv_call,
    register, string_key, wrong_type,
};
use crate::model::{MAX_TRACE_VCPUS, Trace, TraceCall};
use crate::spanned::{
    FileErrors, KeyError, drop_explained_missing, entry, toml_error, unknown_keys, unknown_name,
};

/// The vector format this crate reads.
pub const VECTOR_FORMAT: &str = "pvgate-conformance/1";

/// The keys of a vector file's top level.
const TOP_KEYS: &[&str] = &["format", "title", "case"];
/// The keys a case adds to a call's.
pub(crate) const CASE_KEYS: &[&str] = &[
    "vm",
    "phase",
    "cite",
    "hyp",
    "vcpus",
    "preamble",
    "access",
    "effective",
    "reg",
    "bit",
    "bits",
];
/// Keys that make a case decision-only.
const DECISION_KEYS: &[&str] = &["access", "effective", "reg", "bit", "bits"];
/// Call keys a decision-only case also has (`cpuid` is decided by type).
const SHARED_KEYS: &[&str] = &["pv", "msr", "value", "expect", "note", "cpuid"];
/// The names `expect` takes on a decision-only PV case.
const PV_EXPECT: &[&str] = &["allow", "deny", "ignore"];
/// The names `expect` takes on a decision-only MSR case.
pub(crate) const MSR_EXPECT: &[&str] = &["allow", "deny", "ignore", "refused"];
/// The names `expect` takes on a decision-only CPUID case.
pub(crate) const CPUID_EXPECT: &[&str] = &["fixed", "host", "clear-only", "force-on", "force-off"];
/// The phase names.
const PHASE_NAMES: &[&str] = &["setup", "running", "teardown"];
/// The access names.
const ACCESS_NAMES: &[&str] = &["read", "write"];

/// A loaded vector file (or a trace loaded as one).
#[derive(Clone, Debug)]
pub struct VectorFile {
    /// The path as shown in messages.
    pub path: String,
    /// Its title.
    pub title: String,
    /// Its cases.
    pub body: VectorBody,
}

/// What a vector file holds.
#[derive(Clone, Debug)]
pub enum VectorBody {
    /// `pvgate-conformance/1`: independent cases.
    Cases(Vec<Case>),
    /// `pvgate-trace/1`: one ordered trace; each call with expectations
    /// counts as a case.
    Trace(Trace),
}

/// One `[[case]]`.
#[derive(Clone, Debug)]
pub struct Case {
    /// 1-based line of its `[[case]]` header.
    pub line: usize,
    /// The VM kind.
    pub kind: VmKind,
    /// The phase the request is made in.
    pub phase: Phase,
    /// The pKVM-IA function the expectation comes from.
    pub cite: Option<String>,
    /// Free text.
    pub note: Option<String>,
    /// The request and what it must give.
    pub check: Check,
}

/// What a case asks and expects.
#[derive(Clone, Debug)]
pub enum Check {
    /// A PV call's verdict, from the policy's decision function.
    Pv {
        /// The call.
        call: PvCall,
        /// The verdict required.
        expect: Verdict,
    },
    /// An MSR access's verdict (and, for a write with `value`, whether
    /// the rule's constraint takes the value).
    Msr {
        /// Read or write.
        access: Access,
        /// The MSR index.
        index: u32,
        /// The value written.
        value: Option<u64>,
        /// The effective value required (after forced bits).
        effective: Option<u64>,
        /// `allow`, `deny`, `ignore` or `refused`.
        expect: &'static str,
    },
    /// The control mode of CPUID bits: one (`bit`) or every bit of a mask
    /// (`bits`).
    Cpuid {
        /// The leaf.
        leaf: u32,
        /// The subleaf.
        subleaf: u32,
        /// The register.
        reg: Register,
        /// The bits that must have the mode: one bit for `bit`, the mask
        /// for `bits` (never zero).
        mask: u32,
        /// The bits as written (`bit 5`, a feature name, or `bits 0xff00`).
        shown: String,
        /// The mode required.
        expect: BitMode,
    },
    /// A call run through the hypervisor core.
    Hyp(Box<HypCase>),
}

/// A case run through hyp: a fresh VM, driven to the case's phase (or
/// given a preamble), then the call.
#[derive(Clone, Debug)]
pub struct HypCase {
    /// How many vCPUs the VM has.
    pub vcpus: usize,
    /// The calls that replace the driving (`None`: hyp drives).
    pub preamble: Option<Vec<TraceCall>>,
    /// The call and its expectations.
    pub call: TraceCall,
}

/// Reads and parses a vector file (or a trace).
pub fn load_vectors(path: impl AsRef<Path>) -> Result<VectorFile, TraceError> {
    let shown = path.as_ref().display().to_string();
    let text = std::fs::read_to_string(path.as_ref()).map_err(|error| TraceError::Io {
        path: shown.clone(),
        error,
    })?;
    parse_vectors(&text, &shown)
}

/// Parses a vector file's text (`path` is used in messages): a
/// `pvgate-conformance/1` file, or a `pvgate-trace/1` trace. Every error of
/// the text is returned at once ([`TraceError::Invalid`]).
pub fn parse_vectors(text: &str, path: &str) -> Result<VectorFile, TraceError> {
    let invalid = |diagnostics: Vec<Diagnostic>| {
        TraceError::Invalid(Box::new(FileErrors {
            what: "vector file",
            path: path.to_string(),
            text: text.to_string(),
            diagnostics,
        }))
    };
    let doc = DeTable::parse(text).map_err(|e| invalid(vec![toml_error(&e, 0..0)]))?;
    let root = doc.get_ref();
    if entry(root, "format").and_then(|(_, v)| v.get_ref().as_str()) == Some(load::FORMAT) {
        let trace = load::parse(text, path)?;
        return Ok(VectorFile {
            path: path.to_string(),
            title: trace.title.clone(),
            body: VectorBody::Trace(trace),
        });
    }
    let mut diags = Vec::new();
    unknown_keys(root, TOP_KEYS, "a vector file", &mut diags);
    if let Some((f, span)) = string_key(root, "format", true, 0..0, &mut diags)
        && f != VECTOR_FORMAT
    {
        diags.push(
            Diagnostic::new(
                ErrorKind::BadHeader,
                format!(
                    "unknown vector format `{f}`; expected `{VECTOR_FORMAT}` (or `{}`)",
                    load::FORMAT
                ),
                span,
                "unknown format",
            )
            .with_help(format!("write `format = \"{VECTOR_FORMAT}\"`")),
        );
    }
    let title = string_key(root, "title", true, 0..0, &mut diags);
    drop_explained_missing(&mut diags, 0);
    let mut cases = Vec::new();
    let lines = LineIndex::new(text);
    for (v, header) in array_of_tables(text, root, "case", &mut diags) {
        cases.extend(case_from(&lines, v, header, &mut diags));
    }
    if !diags.is_empty() {
        diags.sort_by_key(|d| d.span.start);
        return Err(invalid(diags));
    }
    Ok(VectorFile {
        path: path.to_string(),
        title: title.map(|t| t.0).unwrap_or_default(),
        body: VectorBody::Cases(cases),
    })
}

/// Whether a key makes a case a hyp case (see the module's rule).
fn is_hyp_key(key: &str, v: &DeValue<'_>) -> bool {
    match key {
        "cpuid" => v.is_table(),
        "preamble" | "vcpus" => true,
        k => CALL_KEYS.contains(&k) && !SHARED_KEYS.contains(&k),
    }
}

/// Whether a key makes a case decision-only.
fn is_decision_key(key: &str, v: &DeValue<'_>) -> bool {
    match key {
        "cpuid" => v.is_str(),
        k => DECISION_KEYS.contains(&k),
    }
}

/// One case; its errors are pushed, located.
fn case_from(
    lines: &LineIndex<'_>,
    v: &Spanned<DeValue<'_>>,
    header: Range<usize>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Case> {
    let Some(table) = v.get_ref().as_table() else {
        diags.push(wrong_type("case", "a table", v));
        return None;
    };
    let before = diags.len();
    let known: Vec<&str> = CALL_KEYS.iter().chain(CASE_KEYS).copied().collect();
    unknown_keys(table, &known, "a [[case]]", diags);
    let line = lines.line(header.start);
    let kind = string_key(table, "vm", true, header.clone(), diags).and_then(|(k, _)| {
        VmKind::from_name(&k).or_else(|| {
            diags.push(unknown_name("vm", "vm kind", &k, KIND_NAMES).locate(table, header.clone()));
            None
        })
    });
    let phase = string_key(table, "phase", true, header.clone(), diags).and_then(|(p, _)| {
        Phase::from_name(&p).or_else(|| {
            diags.push(
                unknown_name("phase", "phase", &p, PHASE_NAMES).locate(table, header.clone()),
            );
            None
        })
    });
    let cite = string_key(table, "cite", false, header.clone(), diags).map(|c| c.0);
    let note = string_key(table, "note", false, header.clone(), diags).map(|c| c.0);
    let hyp_key = table
        .iter()
        .map(|(k, v)| (k.get_ref().as_ref(), v))
        .find(|(k, v)| is_hyp_key(k, v.get_ref()))
        .map(|(k, _)| k);
    let pv_with_args = entry(table, "pv").is_some()
        && (entry(table, "msr").is_some() || entry(table, "value").is_some());
    let decision_key = table
        .iter()
        .map(|(k, v)| (k.get_ref().as_ref(), v))
        .find(|(k, v)| is_decision_key(k, v.get_ref()))
        .map(|(k, _)| k);
    let forced = match entry(table, "hyp") {
        None => None,
        Some((_, v)) => match v.get_ref().as_bool() {
            Some(b) => Some(b),
            None => {
                diags.push(wrong_type("hyp", "a boolean", v));
                None
            }
        },
    };
    let hyp_reason = hyp_key
        .map(|k| format!("`{k}`"))
        .or_else(|| pv_with_args.then(|| "`pv` with `msr`/`value`".to_string()));
    let is_hyp = match (forced, &hyp_reason, decision_key) {
        (_, Some(h), Some(d)) => {
            diags.push(ambiguous(
                table,
                header.clone(),
                d,
                &format!("{h} makes it a hyp case"),
            ));
            return None;
        }
        (Some(false), Some(h), None) => {
            diags.push(ambiguous(
                table,
                header.clone(),
                "hyp",
                &format!("{h} makes it a hyp case"),
            ));
            return None;
        }
        (Some(true), None, Some(d)) => {
            diags.push(ambiguous(
                table,
                header.clone(),
                d,
                "`hyp = true` makes it a hyp case",
            ));
            return None;
        }
        (Some(b), _, _) => b,
        (None, Some(_), None) => true,
        (None, None, _) => false,
    };
    let check = if is_hyp {
        hyp_case(lines, table, v, header.clone(), diags)
    } else {
        decision_case(table, header.clone(), diags)
    };
    drop_explained_missing(diags, before);
    if diags.len() > before {
        return None;
    }
    Some(Case {
        line,
        kind: kind?,
        phase: phase?,
        cite,
        note,
        check: check?,
    })
}

/// "This case mixes the two kinds" at the decision-only key.
fn ambiguous(table: &DeTable<'_>, header: Range<usize>, at: &str, why: &str) -> Diagnostic {
    let at_key = ["access", "effective", "reg", "bit", "bits", "cpuid", "hyp"]
        .into_iter()
        .find(|k| *k == at)
        .unwrap_or("hyp");
    KeyError::at(
        at_key,
        ErrorKind::MisplacedConstraint,
        format!("ambiguous case: `{at}` makes it decision-only, but {why}"),
    )
    .help("a case is decision-only (`pv`, `msr` + `access`, `cpuid` + `reg` + `bit` or `bits`) or a hyp case (a call with arguments or hyp expectations; docs/conformance.md), never both")
    .locate(table, header)
}

/// A hyp case: `vcpus`, `preamble` and the call.
fn hyp_case(
    lines: &LineIndex<'_>,
    table: &DeTable<'_>,
    v: &Spanned<DeValue<'_>>,
    header: Range<usize>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Check> {
    let vcpus = match entry(table, "vcpus") {
        None => 1,
        Some((_, n)) => match plain(n).and_then(|x| num::<u64>(&x, "vcpus")) {
            Ok(n) if (1..=MAX_TRACE_VCPUS as u64).contains(&n) => usize::try_from(n).unwrap_or(1),
            Ok(n) => {
                diags.push(Diagnostic::new(
                    ErrorKind::OutOfRange,
                    format!("vcpus = {n} is outside 1..={MAX_TRACE_VCPUS}"),
                    n_span(n, table),
                    "out of range",
                ));
                return None;
            }
            Err(m) => {
                diags.push(Diagnostic::new(
                    ErrorKind::BadNumber,
                    m,
                    n.span(),
                    "not a number",
                ));
                return None;
            }
        },
    };
    let preamble = match entry(table, "preamble") {
        None => None,
        Some((_, p)) => {
            let Some(items) = p.get_ref().as_array() else {
                diags.push(wrong_type("preamble", "an array of calls", p));
                return None;
            };
            let mut calls = Vec::new();
            for item in items.iter() {
                calls.extend(call_from(
                    lines,
                    item,
                    item.span(),
                    vcpus,
                    &[],
                    "a preamble call",
                    diags,
                ));
            }
            Some(calls)
        }
    };
    let call = call_from(
        lines,
        v,
        header.clone(),
        vcpus,
        CASE_KEYS,
        "a [[case]]",
        diags,
    )?;
    let expects = call.expect.is_some()
        || call.errno.is_some()
        || call.expect_value.is_some()
        || !call.expect_effective.is_empty()
        || !call.expect_guest.is_empty();
    if !expects {
        diags.push(
            KeyError::whole(
                ErrorKind::MissingKey,
                "a case needs an expectation: `expect`, `errno`, `expect_value`, `expect_effective` or `expect_guest`",
            )
            .locate(table, header),
        );
        return None;
    }
    Some(Check::Hyp(Box::new(HypCase {
        vcpus,
        preamble,
        call,
    })))
}

/// The span of the `vcpus` value.
fn n_span(_n: u64, table: &DeTable<'_>) -> Range<usize> {
    entry(table, "vcpus").map_or(0..0, |(_, v)| v.span())
}

/// A decision-only case: exactly one of `pv`, `msr` + `access`, `cpuid` +
/// `reg` + `bit`, and `expect` in that resource's vocabulary.
fn decision_case(
    table: &DeTable<'_>,
    header: Range<usize>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Check> {
    let err =
        |e: KeyError, diags: &mut Vec<Diagnostic>| diags.push(e.locate(table, header.clone()));
    let expect = string_key(table, "expect", true, header.clone(), diags);
    let present: Vec<&str> = ["pv", "msr", "cpuid"]
        .into_iter()
        .filter(|k| entry(table, k).is_some())
        .collect();
    if present.len() != 1 {
        let at = present.get(1).copied().unwrap_or("pv");
        err(
            KeyError::at(
                if at == "msr" { "msr" } else if at == "cpuid" { "cpuid" } else { "pv" },
                ErrorKind::BadSelector,
                format!(
                    "a decision-only case names exactly one of `pv`, `msr`, `cpuid` (this one: {})",
                    if present.is_empty() { "none".to_string() } else { present.join(", ") }
                ),
            )
            .help("a call with arguments (`pv = \"set_msr\"`, `msr`, `value`) is a hyp case; docs/conformance.md"),
            diags,
        );
        return None;
    }
    let (expect, _) = expect?;
    let choose = |names: &'static [&'static str],
                  diags: &mut Vec<Diagnostic>|
     -> Option<&'static str> {
        let found = names.iter().find(|n| **n == expect).copied();
        if found.is_none() {
            let mut e = unknown_name("expect", "expectation", &expect, names);
            if ["filter"].contains(&expect.as_str())
                || crate::load::EXPECT_NAMES.contains(&expect.as_str())
            {
                e = e.help(format!(
                    "`{expect}` is decided by hyp: give the call's arguments or `hyp = true` (docs/conformance.md)"
                ));
            }
            err(e, diags);
        }
        found
    };
    match present.first().copied() {
        Some("pv") => {
            let name = string_key(table, "pv", true, header.clone(), diags)?;
            let call = pv_call(&name.0, "pv").map_err(|e| err(e, diags)).ok();
            let want = choose(PV_EXPECT, diags)?;
            Some(Check::Pv {
                call: call?,
                expect: Verdict::from_name(want)?,
            })
        }
        Some("msr") => {
            let index = entry(table, "msr").and_then(|(_, v)| match plain(v) {
                Ok(m) => msr_index(&m, "msr").map_err(|e| err(e, diags)).ok(),
                Err(m) => {
                    diags.push(Diagnostic::new(ErrorKind::Syntax, m, v.span(), "bad msr"));
                    None
                }
            });
            let access = match string_key(table, "access", false, header.clone(), diags) {
                None => {
                    err(
                        KeyError::whole(
                            ErrorKind::MissingKey,
                            "an MSR case needs `access` (read or write)",
                        ),
                        diags,
                    );
                    None
                }
                Some((a, _)) => Access::from_name(&a).or_else(|| {
                    err(unknown_name("access", "access", &a, ACCESS_NAMES), diags);
                    None
                }),
            };
            let value = number_key(table, "value", 64, header.clone(), diags);
            let effective = number_key(table, "effective", 64, header.clone(), diags);
            let want = choose(MSR_EXPECT, diags)?;
            Some(Check::Msr {
                access: access?,
                index: index?,
                value: value.ok()?,
                effective: effective.ok()?,
                expect: want,
            })
        }
        Some("cpuid") => {
            let (sel, _) = string_key(table, "cpuid", true, header.clone(), diags)?;
            let leaf_sub = cpuid_selector(&sel).map_err(|e| err(e, diags)).ok();
            let reg = match string_key(table, "reg", false, header.clone(), diags) {
                None => {
                    err(
                        KeyError::whole(ErrorKind::MissingKey, "a CPUID case needs `reg`"),
                        diags,
                    );
                    None
                }
                Some((r, _)) => register(&r, "reg").map_err(|e| err(e, diags)).ok(),
            };
            let bit = match (entry(table, "bit"), entry(table, "bits"), leaf_sub, reg) {
                (None, None, _, _) => {
                    err(
                        KeyError::whole(
                            ErrorKind::MissingKey,
                            "a CPUID case needs `bit` (one bit) or `bits` (a mask)",
                        ),
                        diags,
                    );
                    None
                }
                (Some(_), Some(_), _, _) => {
                    err(
                        KeyError::at(
                            "bits",
                            ErrorKind::MisplacedConstraint,
                            "a CPUID case has `bit` or `bits`, not both",
                        )
                        .help("`bit` names one bit, `bits` a mask whose every bit has the mode"),
                        diags,
                    );
                    None
                }
                (None, Some((_, v)), _, _) => mask_of(v).map_err(|e| err(e, diags)).ok(),
                (Some((_, v)), None, Some((leaf, subleaf)), Some(reg)) => {
                    bit_of(v, leaf, subleaf, reg)
                        .map_err(|e| err(e, diags))
                        .ok()
                }
                _ => None,
            };
            let want = choose(CPUID_EXPECT, diags)?;
            let mode = [
                BitMode::Fixed,
                BitMode::Host,
                BitMode::ClearOnly,
                BitMode::ForceOn,
                BitMode::ForceOff,
            ]
            .into_iter()
            .find(|m| m.name() == want)?;
            let (leaf, subleaf) = leaf_sub?;
            let (mask, shown) = bit?;
            Some(Check::Cpuid {
                leaf,
                subleaf,
                reg: reg?,
                mask,
                shown,
                expect: mode,
            })
        }
        _ => None,
    }
}

/// An optional number key of a decision-only case (`Ok(None)`: absent).
fn number_key(
    table: &DeTable<'_>,
    key: &'static str,
    bits: u32,
    header: Range<usize>,
    diags: &mut Vec<Diagnostic>,
) -> Result<Option<u64>, ()> {
    let Some((_, v)) = entry(table, key) else {
        return Ok(None);
    };
    let n = plain(v).and_then(|x| {
        number::from_toml(&x, bits).map_err(|_| {
            format!(
                "`{key}` = `{x}` is not a number; {}",
                number::grammar_help(bits)
            )
        })
    });
    match n {
        Ok(n) => Ok(Some(n)),
        Err(m) => {
            diags.push(KeyError::at(key, ErrorKind::BadNumber, m).locate(table, header));
            Err(())
        }
    }
}

/// A `bit`: a number 0..=31 or a feature name of the registry for the
/// leaf, subleaf and register.
fn bit_of(
    v: &Spanned<DeValue<'_>>,
    leaf: u32,
    subleaf: u32,
    reg: Register,
) -> Result<(u32, String), KeyError> {
    let x = plain(v).map_err(|m| KeyError::at("bit", ErrorKind::Syntax, m))?;
    match &x {
        toml::Value::String(name) if !number::looks_numeric(name) => {
            let registry = Registry::builtin();
            match registry.feature(name) {
                Some(f) => Ok((1 << f.mask().trailing_zeros(), name.clone())),
                None => {
                    let names: Vec<&str> = registry
                        .features_of(leaf, subleaf, reg)
                        .map(|f| f.name.as_str())
                        .collect();
                    Err(KeyError::at(
                        "bit",
                        ErrorKind::UnknownName,
                        format!("unknown CPUID feature `{name}`"),
                    )
                    .suggest(suggest(name, names)))
                }
            }
        }
        _ => {
            let b: u8 = num(&x, "bit").map_err(|m| KeyError::at("bit", ErrorKind::BadNumber, m))?;
            if b > 31 {
                return Err(KeyError::at(
                    "bit",
                    ErrorKind::OutOfRange,
                    format!("bit {b} is outside 0..=31"),
                ));
            }
            Ok((1 << b, format!("bit {b}")))
        }
    }
}

/// A `bits` mask: a non-zero 32-bit number (`0xFF00` or `"0xFFFF_0000"`).
fn mask_of(v: &Spanned<DeValue<'_>>) -> Result<(u32, String), KeyError> {
    let x = plain(v).map_err(|m| KeyError::at("bits", ErrorKind::Syntax, m))?;
    let mask: u32 = num(&x, "bits").map_err(|m| KeyError::at("bits", ErrorKind::BadNumber, m))?;
    if mask == 0 {
        return Err(
            KeyError::at("bits", ErrorKind::OutOfRange, "`bits` = 0 names no bit")
                .help("give a non-zero mask (e.g. `bits = \"0xFFFF_FF00\"`), or `bit` for one bit"),
        );
    }
    Ok((mask, format!("bits {mask:#x}")))
}

/// `LEAF[.SUBLEAF]` (subleaf 0 when absent).
fn cpuid_selector(text: &str) -> Result<(u32, u32), KeyError> {
    let (leaf, sub) = match text.split_once('.') {
        Some((l, s)) => (l, Some(s)),
        None => (text, None),
    };
    let parse = |s: &str, what: &str| {
        number::parse_arg(s, 32)
            .ok()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                KeyError::at(
                    "cpuid",
                    ErrorKind::BadNumber,
                    format!("bad CPUID {what} `{s}` in `{text}`; expected e.g. `0x7.0`"),
                )
            })
    };
    let leaf = parse(leaf, "leaf")?;
    let sub = match sub {
        Some(s) => parse(s, "subleaf")?,
        None => 0,
    };
    Ok((leaf, sub))
}
