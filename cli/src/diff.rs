//! `pvgate diff OLD NEW`: parses the arguments, runs the semantic diff
//! ([`pvgate_review::diff`]) and renders its changes for people (grouped by
//! section, with both rule locations) or as JSON.

use std::fmt::Write;
use std::path::PathBuf;

use pvgate_codegen::{Compiled, Registry, digest};
use pvgate_gate::Access;
use pvgate_review::diff::{Change, ChangeData, Res, Section, diff};
use serde_json::{Value, json};

use crate::error::{CliError, Outcome};
use crate::format::Format;
use crate::load;

/// Show the semantic difference between two policies.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cargo pvgate diff policy/default.toml policy/strict.toml\n  git show HEAD:policy/default.toml > /tmp/old.toml && cargo pvgate diff --exit-code /tmp/old.toml policy/default.toml"
)]
pub struct Args {
    /// The policy before the change.
    #[arg(value_name = "OLD")]
    pub old: PathBuf,
    /// The policy after the change.
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    /// Exit 1 when the policies differ.
    #[arg(long)]
    pub exit_code: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Runs `diff`.
pub fn run(args: &Args) -> Result<Outcome, CliError> {
    let old = load::policy(&args.old)?;
    let new = load::policy(&args.new)?;
    let changes = diff(&old, &new, Registry::builtin());
    match args.format {
        Format::Human => print!("{}", render(&old, &new, &changes)),
        Format::Json => {
            let v = json!({
                "old": {"path": old.path, "digest": digest::hex(&digest::digest(&old.ir))},
                "new": {"path": new.path, "digest": digest::hex(&digest::digest(&new.ir))},
                "changes": changes.iter().map(|c| json!({
                    "section": format!("{:?}", c.section).to_ascii_lowercase(),
                    "summary": c.summary,
                    "details": c.details,
                    "old_rule": c.old_rule.as_ref().map(ToString::to_string),
                    "new_rule": c.new_rule.as_ref().map(ToString::to_string),
                    "data": data_json(&c.data),
                })).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
    }
    Ok(if args.exit_code && !changes.is_empty() {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}

/// The JSON form of a change's data.
fn data_json(d: &ChangeData) -> Value {
    match d {
        ChangeData::Wording => json!({}),
        ChangeData::ViolationMode { old, new } => {
            json!({"cpuid_violations": {"old": old.name(), "new": new.name()}})
        }
        ChangeData::Invariant {
            canonical,
            now_proven,
        } => {
            let side = if *now_proven { "new" } else { "old" };
            json!({"invariant": {side: canonical}})
        }
        ChangeData::Header { field, old, new } => {
            json!({field.name(): {"old": old, "new": new}})
        }
        ChangeData::Decisions {
            access,
            scopes,
            resources,
            old,
            new,
        } => json!({
            "access": access.map(Access::name),
            "scopes": scopes.iter().map(|(k, p)| json!({"vm": k.name(), "phase": p.name()})).collect::<Vec<_>>(),
            "resources": resources.iter().map(res_json).collect::<Vec<_>>(),
            "old": {"verdict": old.name()},
            "new": {"verdict": new.name()},
        }),
    }
}

fn res_json(r: &Res) -> Value {
    match *r {
        Res::Msr(f, l) => json!({"msr": [format!("{f:#x}"), format!("{l:#x}")]}),
        Res::Pv(c) => json!({"pv": c.name()}),
        Res::Cpuid(s) => {
            json!({"cpuid": {"leaves": [format!("{:#x}", s.leaves.0), format!("{:#x}", s.leaves.1)], "subleaf": s.subleaf, "other_subleaves": s.others}})
        }
    }
}

/// Renders changes for people, grouped by section.
pub fn render(old: &Compiled, new: &Compiled, changes: &[Change]) -> String {
    let mut o = String::new();
    let (da, db) = (
        digest::hex(&digest::digest(&old.ir)),
        digest::hex(&digest::digest(&new.ir)),
    );
    if changes.is_empty() {
        let _ = writeln!(
            o,
            "no semantic difference: {} and {} decide every request the same way",
            old.path, new.path
        );
        let _ = writeln!(o, "  digest {da}");
        return o;
    }
    let n = changes.len();
    let _ = writeln!(
        o,
        "{} -> {}: {n} change{}",
        old.path,
        new.path,
        if n == 1 { "" } else { "s" }
    );
    let _ = writeln!(o, "  old digest {da}");
    let _ = writeln!(o, "  new digest {db}");
    let mut section = None;
    for c in changes {
        if section != Some(c.section) {
            section = Some(c.section);
            let _ = writeln!(o, "\n{}", c.section.title());
        }
        let _ = writeln!(o, "  - {}", c.summary);
        for d in &c.details {
            for line in d.lines() {
                let _ = writeln!(o, "      {line}");
            }
        }
        if c.section != Section::Header {
            let _ = writeln!(
                o,
                "      old: {}",
                c.old_rule.as_ref().map_or_else(
                    || String::from("default deny (no rule)"),
                    ToString::to_string
                )
            );
            let _ = writeln!(
                o,
                "      new: {}",
                c.new_rule.as_ref().map_or_else(
                    || String::from("default deny (no rule)"),
                    ToString::to_string
                )
            );
        }
    }
    o
}
