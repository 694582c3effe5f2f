//! `pvgate emit`: print the generated tables for a policy, as Rust (what
//! build.rs compiles into the image) or as a C header for C hypervisors.

use std::path::PathBuf;

use clap::ValueEnum;
use pvgate_codegen::digest;
use serde_json::json;

use crate::error::{CliError, Outcome};
use crate::format::Format;
use crate::load;

/// The language to emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Rust `const fn` tables (what the image includes).
    Rust,
    /// A C11 header of `static inline` functions over `switch` statements.
    C,
}

/// Print the generated decision tables of a policy.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cargo pvgate emit --lang rust policy/default.toml\n  cargo pvgate emit --lang c policy/default.toml > pvgate_policy.h\n  cargo pvgate emit --lang c --format json policy/strict.toml"
)]
pub struct Args {
    /// The language to emit.
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: Lang,
    /// The policy file.
    #[arg(value_name = "POLICY")]
    pub policy: PathBuf,
    /// Output format (`json`: the policy, its digest, the language and the
    /// generated text).
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Runs `emit`.
pub fn run(args: &Args) -> Result<Outcome, CliError> {
    let c = load::policy(&args.policy)?;
    let text = match args.lang {
        Lang::Rust => pvgate_codegen::emit::rust(&c.ir, &c.path),
        Lang::C => pvgate_codegen::c_emit::c(&c.ir, &c.path),
    };
    match args.format {
        Format::Human => print!("{text}"),
        Format::Json => {
            let v = json!({
                "path": c.path,
                "name": c.ir.name,
                "digest": digest::hex(&digest::digest(&c.ir)),
                "lang": args.lang.to_possible_value().map(|v| v.get_name().to_string()),
                "text": text,
            });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
    }
    Ok(Outcome::Clean)
}
