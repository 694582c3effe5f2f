//! `pvgate fmt`: the canonical layout of a pvgate TOML file (a policy, an
//! invariant file, a trace or a conformance vector file).
//!
//! The canonical form keeps everything a reader chose: the order of the
//! rules (it is meaningful), every comment, every value as written. It
//! fixes what carries no meaning: the order of the keys inside a rule (the
//! language's order: name, selector, scope, verdict, constraints, reason),
//! indentation (none), spacing (`key = value`, `{ a = 1, b = 2 }`), array
//! layout (one line when it fits in `layout::WIDTH` columns, else two-space
//! indented lines with a trailing comma: broken where the author broke
//! them if they fit, else packed up to that width), blank lines (one
//! before each top-level table, none inside a table or before a sub-table
//! of an array entry such as `[call.regs]`) and a final newline.
//! Formatting twice changes nothing, and a formatted policy compiles to
//! the same IR (tests check both on every shipped file).

mod layout;

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::error::{CliError, Outcome};
use layout::format;

/// Format pvgate TOML files in place (or check that they are formatted).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cargo pvgate fmt policy/my-vm.toml\n  cargo pvgate fmt --check policy/*.toml policy/invariants/*.toml policy/examples/*.toml"
)]
pub struct Args {
    /// Files to format: policies, invariant files, traces, vector files.
    #[arg(required = true, value_name = "POLICY")]
    pub files: Vec<PathBuf>,
    /// Change nothing: print a diff of each file that is not formatted and
    /// exit 1 if there is one (for CI).
    #[arg(long)]
    pub check: bool,
}

/// Runs `fmt`.
pub fn run(args: &Args) -> Result<Outcome, CliError> {
    let mut unformatted = 0;
    for path in &args.files {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::arg(format!("cannot read `{shown}`: {e}")))?;
        let formatted =
            format(&text).map_err(|e| CliError::arg(format!("cannot format `{shown}`: {e}")))?;
        if formatted == text {
            continue;
        }
        if args.check {
            unformatted += 1;
            print!("{}", diff(&shown, &text, &formatted));
        } else {
            std::fs::write(path, &formatted)
                .map_err(|e| CliError::arg(format!("cannot write `{shown}`: {e}")))?;
            eprintln!("formatted {shown}");
        }
    }
    if unformatted > 0 {
        eprintln!(
            "fmt: {unformatted} file{} not formatted; run `cargo pvgate fmt` on {}",
            if unformatted == 1 { " is" } else { "s are" },
            if unformatted == 1 { "it" } else { "them" }
        );
        Ok(Outcome::Found)
    } else {
        Ok(Outcome::Clean)
    }
}

/// A line diff of `old` and `new` for `--check`: each changed line with
/// its line number, `-` in the file, `+` formatted (similar's Myers diff,
/// linear in memory whatever the file's size).
pub fn diff(path: &str, old: &str, new: &str) -> String {
    let mut out = format!("--- {path}\n+++ {path} (formatted)\n");
    let lines = similar::TextDiff::from_lines(old, new);
    for change in lines.iter_all_changes() {
        let text = change.value().trim_end_matches('\n');
        match (change.tag(), change.old_index(), change.new_index()) {
            (similar::ChangeTag::Delete, Some(i), _) => {
                let _ = writeln!(out, "{:>5} -{text}", i + 1);
            }
            (similar::ChangeTag::Insert, _, Some(j)) => {
                let _ = writeln!(out, "{:>5} +{text}", j + 1);
            }
            _ => {}
        }
    }
    out
}
