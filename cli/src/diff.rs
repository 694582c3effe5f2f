//! `pvgate diff OLD NEW`: parses the arguments, runs the semantic diff
//! ([`pvgate_review::diff`]) and renders its changes for people (grouped by
//! section, with both rule locations) or as JSON.

use std::fmt::Write;

use pvgate_codegen::{Compiled, Registry, digest};
use pvgate_gate::Access;
use pvgate_review::diff::{Change, ChangeData, Res, Section, diff};
use serde_json::{Value, json};

use crate::error::{CliError, Outcome};
use crate::format::Format;
use crate::git::{self, Source};

/// Show the semantic difference between two policies.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Each policy is a file or `REV:path`, a file as it is at a git revision (read \
                  with its includes from that revision; `path` is relative to the repository's \
                  top level, as in `git show REV:path`).\n\n\
                  Examples:\n  \
                  cargo pvgate diff policy/default.toml policy/strict.toml\n  \
                  cargo pvgate diff --exit-code HEAD:policy/default.toml policy/default.toml\n  \
                  cargo pvgate diff --base HEAD policy/strict.toml"
)]
pub struct Args {
    /// The policy before the change: a file or `REV:path`. With `--base`,
    /// the working-copy file to compare with its version at that revision.
    #[arg(value_name = "OLD")]
    pub old: String,
    /// The policy after the change: a file or `REV:path` (not with `--base`).
    #[arg(
        value_name = "NEW",
        required_unless_present = "base",
        conflicts_with = "base"
    )]
    pub new: Option<String>,
    /// Review shorthand: compare OLD as it is at git revision REV with the
    /// working copy (`--base HEAD~1 policy/default.toml` is
    /// `HEAD~1:policy/default.toml policy/default.toml`).
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// Exit 1 when the policies differ.
    #[arg(long)]
    pub exit_code: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// The two policies `args` name.
fn sources(args: &Args) -> Result<(Source, Source), CliError> {
    match (&args.base, &args.new) {
        (Some(rev), _) => {
            let file = std::path::Path::new(&args.old);
            Ok((git::base_of(rev, file)?, Source::File(file.to_path_buf())))
        }
        (None, Some(new)) => Ok((Source::parse(&args.old), Source::parse(new))),
        (None, None) => Err(CliError::arg(
            "diff needs OLD and NEW, or --base REV POLICY",
        )),
    }
}

/// Runs `diff`.
pub fn run(args: &Args) -> Result<Outcome, CliError> {
    let (old, new) = sources(args)?;
    let old = git::compile(&old)?;
    let new = git::compile(&new)?;
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
