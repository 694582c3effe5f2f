//! The policy file as written: serde types with exact source spans.
//!
//! These types deserialize the TOML and generate the JSON Schema, so the
//! schema cannot drift from what the loader accepts. Values that may be
//! written several ways (an MSR by name or number, a mask as a number, a
//! hex string or a list of bit names) are kept as spanned TOML values and
//! resolved in `resolve`, which can then point at the exact text.

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

/// A spanned TOML value, resolved later.
pub type RawValue = Spanned<toml::Value>;
/// A spanned list of spanned strings.
pub type NameList = Spanned<Vec<Spanned<String>>>;

/// A whole policy file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "pvgate policy",
    description = "Which vCPU state an untrusted host may read or write, per VM kind and lifecycle phase. Default deny."
)]
pub struct PolicyFile {
    /// The policy header.
    #[schemars(with = "Header")]
    pub policy: Spanned<Header>,
    /// MSR rules.
    #[serde(default)]
    #[schemars(with = "Vec<MsrRule>")]
    pub msr: Vec<Spanned<MsrRule>>,
    /// CPUID rules.
    #[serde(default)]
    #[schemars(with = "Vec<CpuidRule>")]
    pub cpuid: Vec<Spanned<CpuidRule>>,
    /// PV call rules.
    #[serde(default)]
    #[schemars(with = "Vec<PvRule>")]
    pub pv: Vec<Spanned<PvRule>>,
    /// Security invariants the rules must satisfy.
    #[serde(default)]
    #[schemars(with = "Vec<Invariant>")]
    pub invariant: Vec<Spanned<Invariant>>,
}

/// A file of invariants shared by several policies (`include` in `[policy]`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "pvgate invariants",
    description = "Security invariants that every policy including this file must satisfy."
)]
pub struct InvariantFile {
    /// The invariants.
    #[serde(default)]
    #[schemars(with = "Vec<Invariant>")]
    pub invariant: Vec<Spanned<Invariant>>,
}

/// An `[[invariant]]`: what must stay true whatever the rules become.
/// Exactly one of `forbid` and `require`; the selector keys narrow it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Invariant {
    /// The invariant's name, shown in every violation.
    #[schemars(with = "Name")]
    pub name: Spanned<String>,
    /// Why it must hold (the threat it answers). Required.
    #[schemars(with = "String")]
    pub reason: Option<Spanned<String>>,
    /// VM kinds it constrains.
    #[schemars(with = "Vec<VmKindName>")]
    pub vm: NameList,
    /// Phases it constrains.
    #[schemars(with = "Vec<PhaseName>")]
    pub phase: NameList,
    /// What no rule may allow or ignore: `msr-write`, `msr-read`, `pv-call`,
    /// `cpuid-host-control`.
    #[serde(default)]
    #[schemars(with = "Option<ForbidName>")]
    pub forbid: Option<Spanned<String>>,
    /// What must hold: `pv-allowed` (each selected call allowed).
    #[serde(default)]
    #[schemars(with = "Option<RequireName>")]
    pub require: Option<Spanned<String>>,
    /// `msr-*`: one MSR or a list (default: every MSR).
    #[serde(default)]
    #[schemars(with = "Option<MsrSelector>")]
    pub msr: Option<RawValue>,
    /// `msr-*`: an inclusive range `[first, last]`.
    #[serde(default)]
    #[schemars(with = "Option<[MsrRef; 2]>")]
    pub range: Option<RawValue>,
    /// `msr-*`: every registry MSR with one of these attributes
    /// (`side-effect`, `read-only`, `write-only`).
    #[serde(default)]
    #[schemars(with = "Option<Vec<MsrAttrName>>")]
    pub msr_attrs: Option<NameList>,
    /// `pv-*`: a call, a list of calls, or `*`.
    #[serde(default)]
    #[schemars(with = "Option<CallSelector>")]
    pub call: Option<RawValue>,
    /// `pv-*`: calls taken out of `call`.
    #[serde(default)]
    #[schemars(with = "Option<CallSelector>")]
    pub except: Option<RawValue>,
    /// `cpuid-host-control`: `"security"` (every registry feature flagged
    /// security) or a list of feature names (default: `"security"`).
    #[serde(default)]
    #[schemars(with = "Option<FeatureSelector>")]
    pub features: Option<RawValue>,
}

/// The `[policy]` header.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Header {
    /// Short name of the policy.
    #[schemars(with = "Name")]
    pub name: Spanned<String>,
    /// What the policy is for.
    #[schemars(with = "String")]
    pub description: Spanned<String>,
    /// Format version of the policy language; this loader reads `1`.
    #[schemars(with = "u32")]
    pub format: Spanned<i64>,
    /// More invariant files (relative `.toml` paths inside the policy's
    /// directory tree) whose `[[invariant]]`s this policy must satisfy too;
    /// the protected-VM baseline is proven whether or not it is listed.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub include: Option<NameList>,
    /// What to do when a host proposes CPUID bits it may not control:
    /// `filter` (take the hypervisor's value, count it) or `reject` (fail
    /// the call, report the corrected table).
    #[schemars(with = "ViolationModeName")]
    pub cpuid_violations: Spanned<String>,
}

/// An `[[msr]]` rule: which MSR accesses the host may make.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MsrRule {
    /// Optional rule name; derived from the MSR when absent.
    #[serde(default)]
    #[schemars(with = "Option<Name>")]
    pub name: Option<Spanned<String>>,
    /// One MSR (registry name or number) or a list of them.
    #[serde(default)]
    #[schemars(with = "Option<MsrSelector>")]
    pub msr: Option<RawValue>,
    /// An inclusive range `[first, last]` of MSRs (names or numbers).
    #[serde(default)]
    #[schemars(with = "Option<[MsrRef; 2]>")]
    pub range: Option<RawValue>,
    /// VM kinds the rule applies to.
    #[schemars(with = "Vec<VmKindName>")]
    pub vm: NameList,
    /// Lifecycle phases the rule applies to.
    #[schemars(with = "Vec<PhaseName>")]
    pub phase: NameList,
    /// Accesses the rule applies to.
    #[schemars(with = "Vec<AccessName>")]
    pub access: NameList,
    /// `allow`, `deny` or `ignore`.
    #[schemars(with = "VerdictName")]
    pub verdict: Spanned<String>,
    /// Why the rule exists, citing its source. Required.
    #[schemars(with = "String")]
    pub reason: Option<Spanned<String>>,
    /// Writes: bits the host may set; a value with any other bit set is refused.
    #[serde(default)]
    #[schemars(with = "Option<Mask>")]
    pub write_mask: Option<RawValue>,
    /// Writes: bits the hypervisor sets after an allowed write.
    #[serde(default)]
    #[schemars(with = "Option<Mask>")]
    pub force_on: Option<RawValue>,
    /// Writes: bits the hypervisor clears after an allowed write.
    #[serde(default)]
    #[schemars(with = "Option<Mask>")]
    pub force_off: Option<RawValue>,
    /// Reads: the bits the host sees.
    #[serde(default)]
    #[schemars(with = "Option<Mask>")]
    pub read_mask: Option<RawValue>,
}

/// A `[[cpuid]]` rule: which bits of a leaf the host may control.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CpuidRule {
    /// Optional rule name; derived from the leaf when absent.
    #[serde(default)]
    #[schemars(with = "Option<Name>")]
    pub name: Option<Spanned<String>>,
    /// A leaf number, an inclusive range `[first, last]`, or `"all"`.
    #[schemars(with = "LeafSelector")]
    pub leaf: RawValue,
    /// A subleaf number or `"all"` (the default).
    #[serde(default)]
    #[schemars(with = "Option<SubleafSelector>")]
    pub subleaf: Option<RawValue>,
    /// VM kinds the rule applies to.
    #[schemars(with = "Vec<VmKindName>")]
    pub vm: NameList,
    /// Lifecycle phases the rule applies to.
    #[schemars(with = "Vec<PhaseName>")]
    pub phase: NameList,
    /// `allow` (the register controls apply) or `deny` (everything fixed).
    #[schemars(with = "VerdictName")]
    pub verdict: Spanned<String>,
    /// Why the rule exists, citing its source. Required.
    #[schemars(with = "String")]
    pub reason: Option<Spanned<String>>,
    /// Control of EAX; bits not named are fixed.
    #[serde(default)]
    #[schemars(with = "Option<RegisterControl>")]
    pub eax: Option<Spanned<RegisterControl>>,
    /// Control of EBX; bits not named are fixed.
    #[serde(default)]
    #[schemars(with = "Option<RegisterControl>")]
    pub ebx: Option<Spanned<RegisterControl>>,
    /// Control of ECX; bits not named are fixed.
    #[serde(default)]
    #[schemars(with = "Option<RegisterControl>")]
    pub ecx: Option<Spanned<RegisterControl>>,
    /// Control of EDX; bits not named are fixed.
    #[serde(default)]
    #[schemars(with = "Option<RegisterControl>")]
    pub edx: Option<Spanned<RegisterControl>>,
}

/// Per-bit control of one CPUID register. The masks must be disjoint;
/// bits in none of them are `fixed` (the hypervisor's base value is kept).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RegisterControl {
    /// `host`: the host's value is taken for these bits.
    #[serde(default)]
    #[schemars(with = "Option<Mask32>")]
    pub host: Option<RawValue>,
    /// `clear-only`: the host may clear these bits of the base, never set them.
    #[serde(default)]
    #[schemars(with = "Option<Mask32>")]
    pub clear_only: Option<RawValue>,
    /// `force`: these bits are forced to 1.
    #[serde(default)]
    #[schemars(with = "Option<Mask32>")]
    pub force_on: Option<RawValue>,
    /// `force`: these bits are forced to 0.
    #[serde(default)]
    #[schemars(with = "Option<Mask32>")]
    pub force_off: Option<RawValue>,
}

/// A `[[pv]]` rule: whether the host may make a PV call.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PvRule {
    /// Optional rule name; derived from the call when absent.
    #[serde(default)]
    #[schemars(with = "Option<Name>")]
    pub name: Option<Spanned<String>>,
    /// A PV call name, a list of them, or `"*"` for every call.
    #[schemars(with = "CallSelector")]
    pub call: RawValue,
    /// VM kinds the rule applies to.
    #[schemars(with = "Vec<VmKindName>")]
    pub vm: NameList,
    /// Lifecycle phases the rule applies to.
    #[schemars(with = "Vec<PhaseName>")]
    pub phase: NameList,
    /// `allow`, `deny` or `ignore`.
    #[schemars(with = "VerdictName")]
    pub verdict: Spanned<String>,
    /// Why the rule exists, citing its source. Required.
    #[schemars(with = "String")]
    pub reason: Option<Spanned<String>>,
    /// Getters: the bits of the returned value the host sees.
    #[serde(default)]
    #[schemars(with = "Option<Mask>")]
    pub read_mask: Option<RawValue>,
    /// `inject_irq`, `inject_irq_if_allowed`: the lowest vector allowed.
    #[serde(default)]
    #[schemars(with = "Option<Number<8>>")]
    pub min_vector: Option<RawValue>,
    /// `inject_irq`, `inject_irq_if_allowed`: whether software interrupts are allowed.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub allow_soft: Option<Spanned<bool>>,
}

/// The JSON Schema definition of the table written under `header`
/// (`policy`, `msr`, `cpuid`, `pv`, `invariant`), if it is one.
pub fn definition_of_table(header: &str) -> Option<&'static str> {
    match header {
        "policy" => Some("Header"),
        "msr" => Some("MsrRule"),
        "cpuid" => Some("CpuidRule"),
        "pv" => Some("PvRule"),
        "invariant" => Some("Invariant"),
        _ => None,
    }
}

/// The required keys of a schema definition (`Header`, `MsrRule`, ...), in
/// the order the schema lists them: read from the schema the loader is
/// generated with, so they cannot drift from it.
pub fn required_keys(definition: &str) -> Vec<String> {
    let schema = schemars::schema_for!(PolicyFile);
    schema
        .get("$defs")
        .and_then(|d| d.get(definition))
        .and_then(|d| d.get("required"))
        .and_then(|r| r.as_array())
        .map(|r| {
            r.iter()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Types that exist only to describe, in the JSON Schema, what the spanned
/// raw values may hold; the loader resolves those values itself.
mod schema_only {
    #![allow(dead_code)]

    use std::borrow::Cow;

    use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

    use crate::number;

    /// A name: the grammar of [`crate::name`], as a pattern and a length.
    pub(super) struct Name;

    impl JsonSchema for Name {
        fn schema_name() -> Cow<'static, str> {
            Cow::Borrowed("Name")
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "description": "A name: kebab-case ASCII (lowercase words of a-z and 0-9 joined by single hyphens, starting with a letter), at most 64 bytes.",
                "type": "string",
                "pattern": crate::name::PATTERN,
                "minLength": 1,
                "maxLength": crate::name::MAX_LEN,
            })
        }
    }

    /// A number of a `BITS`-wide field in the one numeric grammar
    /// (`crate::number`): a non-negative TOML integer, or `0x` and at most
    /// `BITS / 4` hex digits as a string. The pattern is generated from
    /// the grammar, so the schema and the compiler cannot disagree.
    pub(super) struct Number<const BITS: u32>;

    impl<const BITS: u32> JsonSchema for Number<BITS> {
        fn schema_name() -> Cow<'static, str> {
            format!("Number{BITS}").into()
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            let max = number::max_of(BITS).min(number::TOML_INTEGER_MAX);
            json_schema!({
                "description": format!(
                    "A number of {BITS} bits: a TOML integer, or a string of `0x` and 1 to {} hex digits (`_` only between digits).",
                    number::hex_digits(BITS)
                ),
                "anyOf": [
                    { "type": "integer", "minimum": 0, "maximum": max },
                    { "type": "string", "pattern": number::schema_pattern(BITS) }
                ]
            })
        }
    }

    /// An MSR: a registry name (Intel SDM or Linux msr-index.h) or a number.
    #[derive(JsonSchema)]
    #[serde(untagged)]
    pub(super) enum MsrRef {
        Number(Number<32>),
        Name(String),
    }

    /// One MSR or a list of MSRs.
    #[derive(JsonSchema)]
    #[serde(untagged)]
    pub(super) enum MsrSelector {
        One(MsrRef),
        Many(Vec<MsrRef>),
    }

    /// A 64-bit mask (MSR values, PV getter values): a number, or a list
    /// of bit names / bit numbers.
    #[derive(JsonSchema)]
    #[serde(untagged)]
    pub(super) enum Mask {
        Value(Number<64>),
        Bits(Vec<BitRef>),
    }

    /// A mask of a 32-bit CPUID register: a number, or a list of bit names
    /// / bit numbers.
    #[derive(JsonSchema)]
    #[serde(untagged)]
    pub(super) enum Mask32 {
        Value(Number<32>),
        Bits(Vec<BitRef>),
    }

    /// A bit: a registry bit name or a bit number.
    #[derive(JsonSchema)]
    #[serde(untagged)]
    pub(super) enum BitRef {
        Number(u8),
        Name(String),
    }

    /// A CPUID leaf selector.
    #[derive(JsonSchema)]
    #[serde(untagged)]
    pub(super) enum LeafSelector {
        One(Number<32>),
        Range([Number<32>; 2]),
        All(AllName),
    }

    /// A CPUID subleaf selector.
    #[derive(JsonSchema)]
    #[serde(untagged)]
    pub(super) enum SubleafSelector {
        One(Number<32>),
        All(AllName),
    }

    /// A PV call selector.
    #[derive(JsonSchema)]
    #[serde(untagged)]
    pub(super) enum CallSelector {
        One(String),
        Many(Vec<String>),
    }

    /// What an invariant forbids.
    #[derive(JsonSchema)]
    #[serde(rename_all = "kebab-case")]
    pub(super) enum ForbidName {
        MsrWrite,
        MsrRead,
        PvCall,
        CpuidHostControl,
    }

    /// What an invariant requires.
    #[derive(JsonSchema)]
    #[serde(rename_all = "kebab-case")]
    pub(super) enum RequireName {
        PvAllowed,
    }

    /// An MSR registry attribute.
    #[derive(JsonSchema)]
    #[serde(rename_all = "kebab-case")]
    pub(super) enum MsrAttrName {
        SideEffect,
        ReadOnly,
        WriteOnly,
    }

    /// CPUID features: `"security"` or a list of registry feature names.
    #[derive(JsonSchema)]
    #[serde(untagged)]
    pub(super) enum FeatureSelector {
        Security(SecurityName),
        Names(Vec<String>),
    }

    /// The word `security`.
    #[derive(JsonSchema)]
    #[serde(rename_all = "kebab-case")]
    pub(super) enum SecurityName {
        Security,
    }

    /// The word `all`.
    #[derive(JsonSchema)]
    #[serde(rename_all = "kebab-case")]
    pub(super) enum AllName {
        All,
    }

    /// A VM kind.
    #[derive(JsonSchema)]
    #[serde(rename_all = "kebab-case")]
    pub(super) enum VmKindName {
        Protected,
        Normal,
    }

    /// A lifecycle phase.
    #[derive(JsonSchema)]
    #[serde(rename_all = "kebab-case")]
    pub(super) enum PhaseName {
        Setup,
        Running,
        Teardown,
    }

    /// An access.
    #[derive(JsonSchema)]
    #[serde(rename_all = "kebab-case")]
    pub(super) enum AccessName {
        Read,
        Write,
    }

    /// A verdict.
    #[derive(JsonSchema)]
    #[serde(rename_all = "kebab-case")]
    pub(super) enum VerdictName {
        Allow,
        Deny,
        Ignore,
    }

    /// A CPUID violation mode.
    #[derive(JsonSchema)]
    #[serde(rename_all = "kebab-case")]
    pub(super) enum ViolationModeName {
        Filter,
        Reject,
    }
}

use schema_only::*;

/// The JSON Schema of the policy language, pretty-printed, as committed in
/// `policy/schema.json`.
pub fn schema_json() -> String {
    pretty(&schemars::schema_for!(PolicyFile))
}

/// The JSON Schema of an invariant file, as committed in
/// `policy/invariants/schema.json`.
pub fn invariant_schema_json() -> String {
    pretty(&schemars::schema_for!(InvariantFile))
}

fn pretty(schema: &schemars::Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

/// The hypervisor's supported-CPUID file as written
/// (`policy/registry/hypervisor-cpuid.toml`, see `crate::support`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupportFile {
    /// The format version, 1.
    pub format: Spanned<i64>,
    /// The entries.
    #[serde(default)]
    pub leaf: Vec<Spanned<SupportLeaf>>,
}

/// One `[[leaf]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupportLeaf {
    /// A leaf number or an inclusive range `[first, last]`.
    pub leaf: RawValue,
    /// A subleaf number, or `"all"` (the default).
    #[serde(default)]
    pub subleaf: Option<RawValue>,
    /// EAX's support; absent: not supported.
    #[serde(default)]
    pub eax: Option<Spanned<SupportReg>>,
    /// EBX's support.
    #[serde(default)]
    pub ebx: Option<Spanned<SupportReg>>,
    /// ECX's support.
    #[serde(default)]
    pub ecx: Option<Spanned<SupportReg>>,
    /// EDX's support.
    #[serde(default)]
    pub edx: Option<Spanned<SupportReg>>,
    /// Why, citing the source.
    pub reason: Option<Spanned<String>>,
}

/// One register's support as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupportReg {
    /// Hardware bits passed through: `"all"`, a number or a bit list.
    #[serde(default)]
    pub pass: Option<RawValue>,
    /// Bits taken out of `pass`.
    #[serde(default)]
    pub except: Option<RawValue>,
    /// Bits the hypervisor sets whatever the hardware says.
    #[serde(default)]
    pub set: Option<RawValue>,
}
