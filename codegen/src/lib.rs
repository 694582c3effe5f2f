//! pvgate-codegen: loads a policy with exact source spans, validates it,
//! normalises it to the IR, computes its digest, emits Rust const tables,
//! and interprets the IR (the reference semantics the tables must match).
//!
//! ```text
//! policy.toml --load (spans)--> model --resolve/validate--> rules --tabulate--> Ir
//!                                                                    |-> emit::rust  (build.rs)
//!                                                                    |-> digest
//!                                                                    `-> Interpreter (reference)
//! ```
// Std code: the workspace's no-panic list (Cargo.toml) applies, less the
// two lints only a no_std crate needs (docs/design.md, "Crate and
// dependency rules").
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

pub mod baseline;
pub mod c_emit;
pub mod diagnostic;
pub mod digest;
pub mod emit;
pub mod emit_common;
pub mod emit_msr;
pub mod interp;
pub mod invariant;
pub mod ir;
mod load;
pub mod model;
pub mod mutate;
pub mod name;
pub mod number;
mod overlap;
pub mod prove;
pub mod reason;
pub mod registry;
mod resolve;
pub mod sample;
pub mod support;

use std::path::Path;

pub use baseline::Baseline;
pub use diagnostic::{Diagnostic, ErrorKind};
pub use interp::Interpreter;
pub use ir::SupportEntry;
pub use ir::{BaselineInfo, Ir, IrRule, Resources, RuleClass};
pub use registry::Registry;
pub use support::SupportTable;

use pvgate_gate::RuleId;

use crate::load::{read_bounded, toml_errors};
use crate::resolve::Resolver;

/// A policy that did not compile: every error found, located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyErrors {
    /// The diagnostics, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

impl PolicyErrors {
    /// Renders every diagnostic against the policy text.
    pub fn render(&self, path: &str, text: &str) -> String {
        self.render_styled(path, text, false)
    }

    /// [`PolicyErrors::render`], with ANSI colours when `color` is true.
    pub fn render_styled(&self, path: &str, text: &str, color: bool) -> String {
        let mut out = String::new();
        for d in &self.diagnostics {
            match &d.file {
                Some(f) => out.push_str(&d.render_styled(&f.path, &f.text, color)),
                None => out.push_str(&d.render_styled(path, text, color)),
            }
            out.push('\n');
        }
        let n = self.diagnostics.len();
        out.push_str(&format!(
            "error: policy `{path}` is invalid ({n} error{})\n",
            if n == 1 { "" } else { "s" }
        ));
        out
    }
}

/// Why a policy file could not be compiled.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Io {
        /// The path.
        path: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// The file was read but is not a valid policy.
    Invalid {
        /// The path.
        path: String,
        /// The text that was read.
        text: String,
        /// What is wrong with it.
        errors: PolicyErrors,
    },
}

impl LoadError {
    /// A rendering for humans: located, underlined diagnostics.
    pub fn render(&self) -> String {
        self.render_styled(false)
    }

    /// [`LoadError::render`], with ANSI colours when `color` is true.
    pub fn render_styled(&self, color: bool) -> String {
        match self {
            LoadError::Io { path, error } => {
                format!("error: cannot read policy `{path}`: {error}\n")
            }
            LoadError::Invalid { path, text, errors } => errors.render_styled(path, text, color),
        }
    }
}

/// A compiled policy and where it came from.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The path as given (used in provenance and messages).
    pub path: String,
    /// The policy text.
    pub text: String,
    /// The normalised policy.
    pub ir: Ir,
}

/// Compiles policy text with the builtin registry, proving the shipped
/// baseline. Invariant files it includes are read relative to the current
/// directory (and must lie inside its policy root, see [`policy_root`]).
pub fn compile(text: &str) -> Result<Ir, PolicyErrors> {
    compile_with(text, Registry::builtin())
}

/// Reads and compiles a policy file, proving the shipped baseline.
pub fn compile_file(path: impl AsRef<Path>) -> Result<Compiled, LoadError> {
    let shown = path.as_ref().display().to_string();
    compile_file_as(path, &shown)
}

/// Reads and compiles a policy file, naming it `shown` in messages (and
/// its included files relative to `shown`), proving the shipped baseline.
pub fn compile_file_as(path: impl AsRef<Path>, shown: &str) -> Result<Compiled, LoadError> {
    compile_file_with(path, shown, &Baseline::shipped())
}

/// Reads and compiles a policy file, proving `baseline` (and whatever
/// invariants the policy adds).
pub fn compile_file_with(
    path: impl AsRef<Path>,
    shown: &str,
    baseline: &Baseline,
) -> Result<Compiled, LoadError> {
    let shown = shown.to_string();
    let text = read_bounded(path.as_ref(), MAX_POLICY_BYTES).map_err(|error| LoadError::Io {
        path: shown.clone(),
        error,
    })?;
    let base = path
        .as_ref()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let shown_base = Path::new(&shown)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let root = policy_root(&base);
    let origin = Origin {
        shown: &shown,
        base: &base,
        shown_base: &shown_base,
        root: &root,
    };
    match compile_in(&text, Registry::builtin(), &origin, baseline) {
        Ok(ir) => Ok(Compiled {
            path: shown,
            text,
            ir,
        }),
        Err(errors) => Err(LoadError::Invalid {
            path: shown,
            text,
            errors,
        }),
    }
}

/// Compiles policy text whose relative include paths start at `dir`
/// (the directory the policy file lives in), proving the shipped baseline.
pub fn compile_in_dir(text: &str, dir: &Path) -> Result<Ir, PolicyErrors> {
    compile_in_dir_with(text, dir, &Baseline::shipped())
}

/// Compiles policy text whose relative include paths start at `dir`,
/// proving `baseline`.
pub fn compile_in_dir_with(
    text: &str,
    dir: &Path,
    baseline: &Baseline,
) -> Result<Ir, PolicyErrors> {
    let root = policy_root(dir);
    compile_in(
        text,
        Registry::builtin(),
        &Origin {
            shown: "the policy",
            base: dir,
            shown_base: dir,
            root: &root,
        },
        baseline,
    )
}

/// Where a policy's relative include paths start: the real directory, and
/// the directory as shown in messages.
struct Origin<'p> {
    /// The policy's path as shown in messages.
    shown: &'p str,
    base: &'p Path,
    shown_base: &'p Path,
    /// The directory every include must resolve inside.
    root: &'p Path,
}

/// Compiles policy text with a given registry (includes relative to the
/// current directory), proving the shipped baseline.
pub fn compile_with(text: &str, registry: &Registry) -> Result<Ir, PolicyErrors> {
    compile_with_baseline(text, registry, &Baseline::shipped())
}

/// Compiles policy text with a given registry and baseline (includes
/// relative to the current directory).
pub fn compile_with_baseline(
    text: &str,
    registry: &Registry,
    baseline: &Baseline,
) -> Result<Ir, PolicyErrors> {
    let here = Path::new("");
    let root = policy_root(here);
    compile_in(
        text,
        registry,
        &Origin {
            shown: "the policy",
            base: here,
            shown_base: here,
            root: &root,
        },
        baseline,
    )
}

/// The policy root of a policy whose file lives in `dir`: the nearest
/// enclosing directory named `policy` (the repository's policy tree, so
/// `policy/examples/review-thread.toml` includes
/// `../invariants/protected-baseline.toml`), or `dir`
/// itself when no enclosing directory has that name. Every `include`
/// must resolve, symlinks followed, to a regular `.toml` file inside it.
pub fn policy_root(dir: &Path) -> std::path::PathBuf {
    let real = if dir.as_os_str().is_empty() {
        Path::new(".").canonicalize()
    } else {
        dir.canonicalize()
    };
    let Ok(real) = real else {
        return dir.to_path_buf();
    };
    real.ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == "policy"))
        .map_or_else(|| real.clone(), Path::to_path_buf)
}

/// The largest policy file read.
const MAX_POLICY_BYTES: u64 = 16 << 20;

fn compile_in(
    text: &str,
    registry: &Registry,
    origin: &Origin<'_>,
    baseline: &Baseline,
) -> Result<Ir, PolicyErrors> {
    let ir = lower(text, registry, origin, baseline)?;
    prove_all(&ir, registry)?;
    Ok(ir)
}

/// Rebuilds an IR whose rules were changed (e.g. a mutant of a compiled
/// policy, `mutate`) exactly as the compiler builds it once its rules are
/// resolved: refuses rules that decide the same input twice, re-tabulates
/// the decided ranges, and proves every invariant the IR carries (the
/// mandatory baseline's first). `ir.rules` must be numbered by position
/// (`rules[i].id == RuleId(i)`); the tables in `ir` are replaced.
pub fn rebuild(mut ir: Ir, registry: &Registry) -> Result<Ir, PolicyErrors> {
    check_and_tabulate(&mut ir, registry)?;
    prove_all(&ir, registry)?;
    Ok(ir)
}

/// The cross-rule check (no two rules decide one input), then the tables.
fn check_and_tabulate(ir: &mut Ir, registry: &Registry) -> Result<(), PolicyErrors> {
    let mut diagnostics = overlap::check(&ir.rules, registry);
    if !diagnostics.is_empty() {
        diagnostics.sort_by_key(|d| d.span.start);
        return Err(PolicyErrors { diagnostics });
    }
    ir.tabulate();
    Ok(())
}

/// Proves every invariant of a tabulated IR; each violation is located.
fn prove_all(ir: &Ir, registry: &Registry) -> Result<(), PolicyErrors> {
    let violations: Vec<Diagnostic> = prove::check(ir, registry)
        .iter()
        .filter_map(|v| prove::diagnostic(ir, v))
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(PolicyErrors {
            diagnostics: violations,
        })
    }
}

/// Resolves, validates and tabulates a policy and collects the invariants
/// it must satisfy (the baseline's first), without proving them. Private:
/// every public entry point proves them.
fn lower(
    text: &str,
    registry: &Registry,
    origin: &Origin<'_>,
    baseline: &Baseline,
) -> Result<Ir, PolicyErrors> {
    let file: model::PolicyFile = toml::from_str(text).map_err(|e| PolicyErrors {
        diagnostics: toml_errors(&e, text),
    })?;
    let mut resolver = Resolver::new(text, registry);
    let header = resolver.header(file.policy.get_ref());

    // Rule ids follow source order across the three arrays.
    enum Raw<'f> {
        Msr(&'f toml::Spanned<model::MsrRule>),
        Cpuid(&'f toml::Spanned<model::CpuidRule>),
        Pv(&'f toml::Spanned<model::PvRule>),
    }
    let mut raw: Vec<(usize, Raw<'_>)> = Vec::new();
    raw.extend(file.msr.iter().map(|r| (r.span().start, Raw::Msr(r))));
    raw.extend(file.cpuid.iter().map(|r| (r.span().start, Raw::Cpuid(r))));
    raw.extend(file.pv.iter().map(|r| (r.span().start, Raw::Pv(r))));
    raw.sort_by_key(|(start, _)| *start);
    if raw.len() > RuleId::MAX_RULES {
        return Err(PolicyErrors {
            diagnostics: vec![Diagnostic::new(
                ErrorKind::OutOfRange,
                format!(
                    "policy has {} rules; at most {} are supported",
                    raw.len(),
                    RuleId::MAX_RULES
                ),
                0..0,
                "too many rules",
            )],
        });
    }
    let mut rules = Vec::new();
    for (id, (_, r)) in (0..).map(RuleId).zip(raw.iter()) {
        let rule = match r {
            Raw::Msr(r) => resolver.msr_rule(id, r),
            Raw::Cpuid(r) => resolver.cpuid_rule(id, r),
            Raw::Pv(r) => resolver.pv_rule(id, r),
        };
        rules.extend(rule);
    }
    // The baseline first: every compilation proves it, included or not.
    let mut invariants = Vec::new();
    let mut baseline_info = None;
    let mut baseline_errors = Vec::new();
    match baseline.invariants(registry) {
        Ok((found, info)) => {
            invariants.extend(found);
            baseline_info = Some(info);
        }
        Err(errors) => baseline_errors = errors,
    }
    for raw in &file.invariant {
        invariants.extend(resolver.invariant(raw, origin.shown, None));
    }
    let mut diagnostics = resolver.errors;
    diagnostics.extend(baseline_errors);
    let mut included = Vec::new();
    if let Some(list) = &file.policy.get_ref().include {
        for entry in list.get_ref() {
            let shown = origin
                .shown_base
                .join(entry.get_ref())
                .display()
                .to_string();
            included.push(shown.clone());
            match load_invariants(entry, &shown, origin, registry, baseline) {
                Ok(found) => invariants.extend(found),
                Err(errors) => diagnostics.extend(errors),
            }
        }
    }
    let supported = match SupportTable::builtin() {
        Ok(t) => t.entries.clone(),
        Err(errors) => {
            diagnostics.extend(errors.iter().cloned());
            Vec::new()
        }
    };
    let Some(baseline) = baseline_info.filter(|_| diagnostics.is_empty()) else {
        diagnostics.sort_by_key(|d| d.span.start);
        return Err(PolicyErrors { diagnostics });
    };
    let mut ir = Ir {
        name: header.name,
        description: header.description,
        violation_mode: header.violation_mode,
        rules,
        msr: Default::default(),
        cpuid: Default::default(),
        pv: Default::default(),
        invariants,
        included,
        baseline,
        supported,
    };
    check_and_tabulate(&mut ir, registry)?;
    Ok(ir)
}

/// [`lower`] for in-memory text with the builtin registry and the shipped
/// baseline (for the sample generator, which repairs what breaks it).
pub(crate) fn lower_unproven(text: &str) -> Result<Ir, PolicyErrors> {
    let here = Path::new("");
    lower(
        text,
        Registry::builtin(),
        &Origin {
            shown: "the policy",
            base: here,
            shown_base: here,
            root: here,
        },
        &Baseline::shipped(),
    )
}

/// The largest invariant file read (the shipped baseline is about 5 KiB).
const MAX_INCLUDE_BYTES: u64 = 1 << 20;

/// Why an include entry is refused before anything is read from it.
fn include_path(entry: &str, origin: &Origin<'_>) -> Result<std::path::PathBuf, String> {
    let given = Path::new(entry);
    if entry.is_empty() {
        return Err(String::from("an include names a file"));
    }
    if given.has_root() || given.is_absolute() {
        return Err(String::from(
            "absolute include paths are refused; name a file relative to the policy",
        ));
    }
    if given.extension().is_none_or(|e| e != "toml") {
        return Err(String::from("an included file is a `.toml` invariant file"));
    }
    let root = origin.root.canonicalize().map_err(|e| {
        format!(
            "the policy root `{}` cannot be resolved: {e}",
            origin.root.display()
        )
    })?;
    let real = origin
        .base
        .join(given)
        .canonicalize()
        .map_err(|e| format!("cannot read it: {e}"))?;
    if !real.starts_with(&root) {
        return Err(format!(
            "it resolves outside the policy root `{}`; includes stay inside the policy's directory tree",
            root.display()
        ));
    }
    if real.extension().is_none_or(|e| e != "toml") {
        return Err(String::from(
            "it resolves (through a symlink) to a file that is not a `.toml` invariant file",
        ));
    }
    Ok(real)
}

/// Reads an included invariant file and resolves its invariants. Only a
/// regular `.toml` file inside the policy root is read; errors name the
/// include and are located at its entry in the policy, so the contents of
/// a file outside the policy tree are never shown. An include of the
/// baseline's own text adds nothing (the baseline is always proven).
fn load_invariants(
    entry: &toml::Spanned<String>,
    shown: &str,
    origin: &Origin<'_>,
    registry: &Registry,
    baseline: &Baseline,
) -> Result<Vec<invariant::Invariant>, Vec<Diagnostic>> {
    let include_span = entry.span();
    let refuse = |why: String| {
        vec![Diagnostic::new(
            ErrorKind::Include,
            format!("cannot include `{}`: {why}", entry.get_ref().escape_debug()),
            include_span.clone(),
            "included here",
        )]
    };
    let path = include_path(entry.get_ref(), origin).map_err(refuse)?;
    let text = read_bounded(&path, MAX_INCLUDE_BYTES).map_err(|e| refuse(e.to_string()))?;
    if baseline.is_same_text(&text) {
        return Ok(Vec::new());
    }
    let source = diagnostic::SourceFile {
        path: shown.to_string(),
        text: text.clone(),
    };
    let tag = |mut d: Diagnostic| {
        d.file = Some(source.clone());
        d
    };
    let file: model::InvariantFile = toml::from_str(&text).map_err(|e| {
        toml_errors(&e, &text)
            .into_iter()
            .map(tag)
            .collect::<Vec<_>>()
    })?;
    let mut resolver = Resolver::new(&text, registry);
    let found: Vec<_> = file
        .invariant
        .iter()
        .filter_map(|raw| resolver.invariant(raw, shown, Some(include_span.clone())))
        .collect();
    if resolver.errors.is_empty() {
        Ok(found)
    } else {
        Err(resolver.errors.into_iter().map(tag).collect())
    }
}
