//! The mandatory protected-VM baseline: a file of invariants that every
//! compilation proves, whether or not the policy includes it. A policy can
//! add invariants, never drop one.
//!
//! The shipped baseline (`policy/invariants/protected-baseline.toml`) is
//! compiled into this crate, so every entry point has one. A team with its
//! own baseline points the build and the command line at it with one
//! setting, [`BASELINE_ENV`] (`PVGATE_BASELINE`; the CLI also takes
//! `--baseline`). A baseline that is empty, or has no invariant about
//! protected VMs, is refused: "no baseline at all" cannot be configured.

use std::path::Path;

use pvgate_gate::VmKind;
use sha2::{Digest, Sha256};

use crate::diagnostic::{Diagnostic, ErrorKind, SourceFile};
use crate::invariant::Invariant;
use crate::ir::BaselineInfo;
use crate::registry::Registry;
use crate::resolve::Resolver;

/// The shipped baseline's text, compiled in.
pub const SHIPPED_BASELINE_TOML: &str =
    include_str!("../../policy/invariants/protected-baseline.toml");

/// The shipped baseline's path, relative to the repository root.
pub const SHIPPED_BASELINE_PATH: &str = "policy/invariants/protected-baseline.toml";

/// The one setting that replaces the shipped baseline: a path to another
/// baseline file (relative to the workspace root for `build.rs`, to the
/// current directory for the command line).
pub const BASELINE_ENV: &str = "PVGATE_BASELINE";

/// The largest baseline file read (the shipped one is about 5 KiB).
pub const MAX_BASELINE_BYTES: u64 = 1 << 20;

/// A baseline to prove: its name as shown, its text and the SHA-256 of
/// that text. Constructed only from the shipped text or a file; whether it
/// constrains protected VMs is checked when a policy is compiled against it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Baseline {
    shown: String,
    text: String,
    sha256: [u8; 32],
}

/// A baseline file that cannot be used.
#[derive(Debug)]
pub struct BaselineError(pub String);

impl std::fmt::Display for BaselineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Baseline {
    /// The shipped protected-VM baseline (compiled into this crate).
    pub fn shipped() -> Baseline {
        Baseline::from_text(SHIPPED_BASELINE_PATH, SHIPPED_BASELINE_TOML)
    }

    /// A baseline from text (named `shown` in messages).
    pub fn from_text(shown: &str, text: &str) -> Baseline {
        Baseline {
            shown: shown.to_string(),
            text: text.to_string(),
            sha256: Sha256::digest(text.as_bytes()).into(),
        }
    }

    /// Reads a baseline file: a regular `.toml` file of at most
    /// [`MAX_BASELINE_BYTES`] (following symlinks; the build machine's
    /// operator chooses this file, not the policy author).
    pub fn from_file(path: &Path, shown: &str) -> Result<Baseline, BaselineError> {
        let fail = |why: String| BaselineError(format!("cannot use baseline `{shown}`: {why}"));
        if path.extension().is_none_or(|e| e != "toml") {
            return Err(fail(String::from("a baseline is a `.toml` file")));
        }
        let text =
            crate::load::read_bounded(path, MAX_BASELINE_BYTES).map_err(|e| fail(e.to_string()))?;
        Ok(Baseline::from_text(shown, &text))
    }

    /// The baseline a setting names: `setting` is the value of
    /// [`BASELINE_ENV`] or of `--baseline` (relative to `root`); `None` or
    /// an empty value is the shipped baseline.
    pub fn from_setting(root: &Path, setting: Option<&str>) -> Result<Baseline, BaselineError> {
        match setting.map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(Baseline::shipped()),
            Some(s) => Baseline::from_file(&root.join(s), s),
        }
    }

    /// The file as shown in messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// SHA-256 of the text.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// Whether `text` is this baseline's text (an `include` of it is not
    /// proven twice).
    pub fn is_same_text(&self, text: &str) -> bool {
        let other: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        other == self.sha256
    }

    fn source(&self) -> SourceFile {
        SourceFile {
            path: self.shown.clone(),
            text: self.text.clone(),
        }
    }

    /// Resolves the baseline's invariants. Refused (located in the baseline
    /// file): TOML or invariant errors, and a baseline with no invariant
    /// about protected VMs (an empty file included).
    pub(crate) fn invariants(
        &self,
        registry: &Registry,
    ) -> Result<(Vec<Invariant>, BaselineInfo), Vec<Diagnostic>> {
        let source = self.source();
        let tag = |mut d: Diagnostic| {
            d.file = Some(source.clone());
            d
        };
        let file: crate::model::InvariantFile = toml::from_str(&self.text)
            .map_err(|e| vec![tag(crate::load::toml_error(&e, &self.text))])?;
        let mut resolver = Resolver::new(&self.text, registry);
        let mut found = Vec::new();
        for raw in &file.invariant {
            if let Some(mut inv) = resolver.invariant(raw, &self.shown, None) {
                inv.included = true;
                inv.baseline = true;
                found.push(inv);
            }
        }
        if !resolver.errors.is_empty() {
            return Err(resolver.errors.into_iter().map(tag).collect());
        }
        if !found.iter().any(|i| i.kinds.contains(&VmKind::Protected)) {
            let what = if found.is_empty() {
                "has no invariant"
            } else {
                "has no invariant about protected VMs"
            };
            return Err(vec![tag(Diagnostic::new(
                ErrorKind::Baseline,
                format!("baseline `{}` {what}", self.shown),
                0..0,
                "refused as the protected-VM baseline",
            )
            .with_help(format!(
                "a baseline must constrain protected VMs (`vm = [\"protected\"]`); point `{BASELINE_ENV}` \
                 (or `--baseline`) at another file, or unset it for the shipped `{SHIPPED_BASELINE_PATH}`"
            )))]);
        }
        let info = BaselineInfo {
            file: self.shown.clone(),
            sha256: crate::digest::hex(&self.sha256),
            invariants: found.len(),
        };
        Ok((found, info))
    }
}
