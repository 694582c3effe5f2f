//! Loading policies and parsing the values reviewers type on the command
//! line (MSR names and numbers, PV calls, CPUID selectors), with "did you
//! mean" for near names.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::ValueEnum;
use pvgate_codegen::baseline::BASELINE_ENV;
use pvgate_codegen::diagnostic::suggest;
use pvgate_codegen::number;
use pvgate_codegen::{Baseline, Compiled, LoadError, Registry, compile_file_with};
use pvgate_gate::{Access, Phase, PvCall, Register, VmKind};

use crate::error::CliError;

/// The `--baseline` given on the command line (set once, by `main`).
static BASELINE_FLAG: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Records the `--baseline` flag; called once, before any policy loads.
pub fn set_baseline_flag(path: Option<PathBuf>) {
    let _ = BASELINE_FLAG.set(path);
}

/// The protected-VM baseline every policy is proven against: `--baseline`,
/// else `PVGATE_BASELINE` (relative to the current directory), else the
/// shipped one compiled into this program.
pub fn baseline() -> Result<Baseline, CliError> {
    let setting = baseline_setting();
    Baseline::from_setting(Path::new(""), setting.as_deref()).map_err(|e| CliError::arg(e.0))
}

/// The baseline file named by `--baseline`, else by `PVGATE_BASELINE`
/// (a blank setting is passed on as given, for the build to refuse), or
/// `None` for the shipped one.
pub fn baseline_setting() -> Option<String> {
    match BASELINE_FLAG.get().cloned().flatten() {
        Some(p) => Some(p.display().to_string()),
        None => std::env::var(BASELINE_ENV).ok(),
    }
}

/// Reads and compiles a policy against [`baseline`]; an unusable one is a
/// [`CliError`].
pub fn policy(path: &Path) -> Result<Compiled, CliError> {
    Ok(compile(path, &baseline()?)?)
}

/// Reads and compiles a policy against a given baseline.
pub fn compile(path: &Path, baseline: &Baseline) -> Result<Compiled, LoadError> {
    compile_file_with(path, &path.display().to_string(), baseline)
}

/// Parses a number typed on the command line: decimal digits or the
/// string form of the one numeric grammar (`0x` and hex digits, `_` only
/// between digits); see `pvgate_codegen::number::parse_arg`.
pub fn number(text: &str) -> Option<u64> {
    number::parse_arg(text, 64).ok()
}

/// Resolves an MSR given by registry name (SDM or Linux alias) or number.
pub fn msr(registry: &Registry, text: &str) -> Result<u32, CliError> {
    if let Some(m) = registry.msr_by_name(text) {
        return Ok(m.index);
    }
    if let Some(m) = registry.msr_by_name(&text.to_ascii_uppercase()) {
        return Ok(m.index);
    }
    if number::looks_numeric(text) {
        return match number(text) {
            Some(n) => u32::try_from(n).map_err(|_| {
                CliError::arg(format!(
                    "MSR index `{text}` is out of range (the largest is 0xffffffff)"
                ))
            }),
            None => Err(CliError::arg(format!("bad MSR number `{text}`"))),
        };
    }
    Err(CliError::arg_with(
        format!("unknown MSR `{text}`"),
        suggest(text, registry.msr_names()).map(|s| format!("did you mean `{s}`?")),
    ))
}

/// Resolves a PV call name.
pub fn pv_call(text: &str) -> Result<PvCall, CliError> {
    PvCall::from_name(text).ok_or_else(|| {
        CliError::arg_with(
            format!("unknown PV call `{text}`"),
            suggest(text, PvCall::ALL.iter().map(|c| c.name()))
                .map(|s| format!("did you mean `{s}`?")),
        )
    })
}

/// Parses `LEAF[.SUBLEAF]` (subleaf 0 when absent).
pub fn cpuid_selector(text: &str) -> Result<(u32, u32), CliError> {
    let (leaf, sub) = match text.split_once('.') {
        Some((l, s)) => (l, Some(s)),
        None => (text, None),
    };
    let parse = |s: &str, what: &str| {
        number(s)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                CliError::arg(format!(
                    "bad CPUID {what} `{s}` in `{text}`; expected e.g. `0x7.0`"
                ))
            })
    };
    let leaf = parse(leaf, "leaf")?;
    let sub = match sub {
        Some(s) => parse(s, "subleaf")?,
        None => 0,
    };
    Ok((leaf, sub))
}

/// A VM kind on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// A protected VM: its host is untrusted.
    Protected,
    /// A normal VM: it trusts its host.
    Normal,
}

impl From<KindArg> for VmKind {
    fn from(k: KindArg) -> VmKind {
        match k {
            KindArg::Protected => VmKind::Protected,
            KindArg::Normal => VmKind::Normal,
        }
    }
}

/// A lifecycle phase on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PhaseArg {
    /// Created, never entered.
    Setup,
    /// Entered at least once.
    Running,
    /// Being destroyed.
    Teardown,
}

impl From<PhaseArg> for Phase {
    fn from(p: PhaseArg) -> Phase {
        match p {
            PhaseArg::Setup => Phase::Setup,
            PhaseArg::Running => Phase::Running,
            PhaseArg::Teardown => Phase::Teardown,
        }
    }
}

/// An access on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AccessArg {
    /// A PV getter.
    Read,
    /// A PV setter.
    Write,
}

impl From<AccessArg> for Access {
    fn from(a: AccessArg) -> Access {
        match a {
            AccessArg::Read => Access::Read,
            AccessArg::Write => Access::Write,
        }
    }
}

/// A CPUID output register on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RegArg {
    /// EAX.
    Eax,
    /// EBX.
    Ebx,
    /// ECX.
    Ecx,
    /// EDX.
    Edx,
}

impl From<RegArg> for Register {
    fn from(r: RegArg) -> Register {
        match r {
            RegArg::Eax => Register::Eax,
            RegArg::Ebx => Register::Ebx,
            RegArg::Ecx => Register::Ecx,
            RegArg::Edx => Register::Edx,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_in_hex_and_decimal_only() {
        assert_eq!(number("0x1A0"), Some(0x1a0));
        assert_eq!(number("416"), Some(416));
        assert_eq!(number("0xffff_ffff"), Some(0xffff_ffff));
        assert_eq!(number("0b101"), None);
        assert_eq!(number("0x+1A0"), None);
        assert_eq!(number(" 0x10"), None);
        assert_eq!(number("0xZZ"), None);
        assert_eq!(number("0x"), None);
    }

    #[test]
    fn msrs_resolve_by_name_alias_and_number_and_suggest_near_names() {
        let r = Registry::builtin();
        assert_eq!(msr(r, "IA32_LSTAR").ok(), Some(0xc000_0082));
        assert_eq!(msr(r, "MSR_SYSCALL_MASK").ok(), Some(0xc000_0084));
        assert_eq!(msr(r, "0xda0").ok(), Some(0xda0));
        let err = msr(r, "IA32_LSTAT").unwrap_err().render();
        assert!(err.contains("unknown MSR `IA32_LSTAT`"), "{err}");
        assert!(err.contains("did you mean `IA32_LSTAR`?"), "{err}");
        assert!(msr(r, "0x1_0000_0000").is_err());
    }

    #[test]
    fn cpuid_selectors_default_the_subleaf_to_zero() {
        assert_eq!(cpuid_selector("0x7").ok(), Some((7, 0)));
        assert_eq!(cpuid_selector("0x7.1").ok(), Some((7, 1)));
        assert_eq!(cpuid_selector("0xb.2").ok(), Some((0xb, 2)));
        assert!(cpuid_selector("leaf7").is_err());
    }
}
