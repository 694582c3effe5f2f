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

pub mod c_emit;
pub mod diagnostic;
pub mod digest;
pub mod emit;
pub mod interp;
pub mod invariant;
pub mod ir;
pub mod model;
pub mod name;
mod overlap;
pub mod registry;
mod resolve;
pub mod sample;

use std::path::Path;

pub use diagnostic::{Diagnostic, ErrorKind};
pub use interp::Interpreter;
pub use ir::{Ir, IrRule, Resources, RuleClass};
pub use registry::Registry;

use pvgate_gate::RuleId;

use crate::diagnostic::suggest;
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
        let mut out = String::new();
        for d in &self.diagnostics {
            match &d.file {
                Some(f) => out.push_str(&d.render(&f.path, &f.text)),
                None => out.push_str(&d.render(path, text)),
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
        match self {
            LoadError::Io { path, error } => {
                format!("error: cannot read policy `{path}`: {error}\n")
            }
            LoadError::Invalid { path, text, errors } => errors.render(path, text),
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

/// Compiles policy text with the builtin registry. Invariant files it
/// includes are read relative to the current directory.
pub fn compile(text: &str) -> Result<Ir, PolicyErrors> {
    compile_with(text, Registry::builtin())
}

/// Reads and compiles a policy file.
pub fn compile_file(path: impl AsRef<Path>) -> Result<Compiled, LoadError> {
    let shown = path.as_ref().display().to_string();
    compile_file_as(path, &shown)
}

/// Reads and compiles a policy file, naming it `shown` in messages (and
/// its included files relative to `shown`).
pub fn compile_file_as(path: impl AsRef<Path>, shown: &str) -> Result<Compiled, LoadError> {
    let shown = shown.to_string();
    let text = std::fs::read_to_string(path.as_ref()).map_err(|error| LoadError::Io {
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
    let origin = Origin {
        shown: &shown,
        base: &base,
        shown_base: &shown_base,
    };
    match compile_in(&text, Registry::builtin(), &origin) {
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
/// (the directory the policy file lives in).
pub fn compile_in_dir(text: &str, dir: &Path) -> Result<Ir, PolicyErrors> {
    compile_in(
        text,
        Registry::builtin(),
        &Origin {
            shown: "the policy",
            base: dir,
            shown_base: dir,
        },
    )
}

/// Where a policy's relative include paths start: the real directory, and
/// the directory as shown in messages.
struct Origin<'p> {
    /// The policy's path as shown in messages.
    shown: &'p str,
    base: &'p Path,
    shown_base: &'p Path,
}

/// Compiles policy text with a given registry (includes relative to the
/// current directory).
pub fn compile_with(text: &str, registry: &Registry) -> Result<Ir, PolicyErrors> {
    let here = Path::new("");
    compile_in(
        text,
        registry,
        &Origin {
            shown: "the policy",
            base: here,
            shown_base: here,
        },
    )
}

fn compile_in(text: &str, registry: &Registry, origin: &Origin<'_>) -> Result<Ir, PolicyErrors> {
    let file: model::PolicyFile = toml::from_str(text).map_err(|e| PolicyErrors {
        diagnostics: vec![toml_error(&e, text)],
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
    if raw.len() > usize::from(u16::MAX) {
        return Err(PolicyErrors {
            diagnostics: vec![Diagnostic::new(
                ErrorKind::OutOfRange,
                format!(
                    "policy has {} rules; at most {} are supported",
                    raw.len(),
                    u16::MAX
                ),
                0..0,
                "too many rules",
            )],
        });
    }
    let mut rules = Vec::new();
    for (i, (_, r)) in raw.iter().enumerate() {
        let id = RuleId(i as u16);
        let rule = match r {
            Raw::Msr(r) => resolver.msr_rule(id, r),
            Raw::Cpuid(r) => resolver.cpuid_rule(id, r),
            Raw::Pv(r) => resolver.pv_rule(id, r),
        };
        rules.extend(rule);
    }
    let mut invariants = Vec::new();
    for raw in &file.invariant {
        invariants.extend(resolver.invariant(raw, origin.shown, None));
    }
    let mut diagnostics = resolver.errors;
    let mut included = Vec::new();
    if let Some(list) = &file.policy.get_ref().include {
        for entry in list.get_ref() {
            let shown = origin
                .shown_base
                .join(entry.get_ref())
                .display()
                .to_string();
            included.push(shown.clone());
            match load_invariants(
                &origin.base.join(entry.get_ref()),
                &shown,
                entry.span(),
                registry,
            ) {
                Ok(found) => invariants.extend(found),
                Err(errors) => diagnostics.extend(errors),
            }
        }
    }
    if diagnostics.is_empty() {
        diagnostics = overlap::check(&rules, registry);
    }
    if !diagnostics.is_empty() {
        diagnostics.sort_by_key(|d| d.span.start);
        return Err(PolicyErrors { diagnostics });
    }
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
    };
    ir.tabulate();
    let violations: Vec<Diagnostic> = invariant::check(&ir, registry)
        .iter()
        .filter_map(|v| invariant::diagnostic(&ir, v))
        .collect();
    if !violations.is_empty() {
        return Err(PolicyErrors {
            diagnostics: violations,
        });
    }
    Ok(ir)
}

/// The largest invariant file read (the shipped baseline is about 5 KiB).
const MAX_INCLUDE_BYTES: u64 = 1 << 20;

/// Reads an included file: a regular file of at most [`MAX_INCLUDE_BYTES`],
/// so a policy naming a device or a huge file fails instead of hanging.
fn read_include(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind as IoKind, Read};
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(Error::new(IoKind::InvalidInput, "not a regular file"));
    }
    if meta.len() > MAX_INCLUDE_BYTES {
        return Err(Error::new(
            IoKind::InvalidInput,
            format!("larger than {MAX_INCLUDE_BYTES} bytes"),
        ));
    }
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_INCLUDE_BYTES)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// Reads an invariant file and resolves its invariants; errors are located
/// in that file, or at the `include` entry when it cannot be read.
fn load_invariants(
    path: &Path,
    shown: &str,
    include_span: std::ops::Range<usize>,
    registry: &Registry,
) -> Result<Vec<invariant::Invariant>, Vec<Diagnostic>> {
    let text = read_include(path).map_err(|e| {
        vec![Diagnostic::new(
            ErrorKind::Include,
            format!("cannot read invariant file `{shown}`: {e}"),
            include_span.clone(),
            "included here",
        )]
    })?;
    let source = diagnostic::SourceFile {
        path: shown.to_string(),
        text: text.clone(),
    };
    let tag = |mut d: Diagnostic| {
        d.file = Some(source.clone());
        d
    };
    let file: model::InvariantFile =
        toml::from_str(&text).map_err(|e| vec![tag(toml_error(&e, &text))])?;
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

/// Turns a TOML/serde error into a located diagnostic.
fn toml_error(e: &toml::de::Error, text: &str) -> Diagnostic {
    let span = e.span().unwrap_or(0..0);
    let message = e.message().trim().to_string();
    let first = message.lines().next().unwrap_or("").to_string();
    if let Some(rest) = first.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or("");
        let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        return Diagnostic::new(
            ErrorKind::UnknownKey,
            format!("unknown key `{field}`"),
            span,
            format!(
                "expected one of {}",
                expected
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .with_suggestion(suggest(field, expected.iter().copied()));
    }
    if let Some(rest) = first.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or("");
        return Diagnostic::new(
            ErrorKind::MissingKey,
            format!("missing key `{field}`"),
            span,
            format!("this table needs `{field}`"),
        );
    }
    let _ = text;
    Diagnostic::new(ErrorKind::Syntax, first.clone(), span, first)
}
