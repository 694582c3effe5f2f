//! The hypervisor's supported CPUID (`policy/registry/hypervisor-cpuid.toml`):
//! per leaf/subleaf/register the hardware bits passed through to a
//! protected VM and the bits the hypervisor sets itself. Loaded with exact
//! spans and validated like a policy (unknown keys and names, bad masks,
//! overlapping entries and missing reasons are located errors), then
//! carried in every [`crate::Ir`]: emitted into the image's tables, served
//! by the interpreter, covered by the digest, shown by `report`.

use std::sync::OnceLock;

use pvgate_gate::CpuidSupport;

use crate::diagnostic::{Diagnostic, SourceFile};
use crate::ir::SupportEntry;
use crate::load::toml_error;
use crate::model::SupportFile;
use crate::registry::Registry;
use crate::resolve::Resolver;

/// The table's path in the repository (shown in diagnostics).
pub const SUPPORT_PATH: &str = "policy/registry/hypervisor-cpuid.toml";
/// The table's source, compiled into this crate like the registries.
pub const SUPPORT_TOML: &str = include_str!("../../policy/registry/hypervisor-cpuid.toml");

/// The resolved table, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SupportTable {
    /// The entries.
    pub entries: Vec<SupportEntry>,
}

impl SupportTable {
    /// Parses and validates a table's text; every error is located in
    /// `path` (the diagnostics carry the file, so they render against it
    /// whatever policy is being compiled).
    pub fn parse(
        text: &str,
        path: &str,
        registry: &Registry,
    ) -> Result<SupportTable, Vec<Diagnostic>> {
        let located = |mut diagnostics: Vec<Diagnostic>| {
            for d in &mut diagnostics {
                d.file = Some(SourceFile {
                    path: path.to_string(),
                    text: text.to_string(),
                });
            }
            diagnostics
        };
        let file: SupportFile =
            toml::from_str(text).map_err(|e| located(vec![toml_error(&e, text)]))?;
        let mut resolver = Resolver::new(text, registry);
        let entries = resolver.support_table(&file);
        if resolver.errors.is_empty() {
            Ok(SupportTable { entries })
        } else {
            let mut errors = resolver.errors;
            errors.sort_by_key(|d| d.span.start);
            Err(located(errors))
        }
    }

    /// The table compiled into this crate ([`SUPPORT_TOML`]), checked
    /// once; a table that does not load fails every compilation with its
    /// located errors.
    pub fn builtin() -> Result<&'static SupportTable, &'static [Diagnostic]> {
        static TABLE: OnceLock<Result<SupportTable, Vec<Diagnostic>>> = OnceLock::new();
        TABLE
            .get_or_init(|| SupportTable::parse(SUPPORT_TOML, SUPPORT_PATH, Registry::builtin()))
            .as_ref()
            .map_err(Vec::as_slice)
    }

    /// The gate's form of the table, in file order.
    pub fn gate_entries(&self) -> Vec<CpuidSupport> {
        self.entries.iter().map(|e| e.support).collect()
    }
}
