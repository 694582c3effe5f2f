//! `pvgate digest`: the canonical SHA-256 digest of a policy, as the image
//! embeds it (`POLICY_DIGEST_HEX`).

use std::path::PathBuf;

use pvgate_codegen::digest;
use serde_json::json;

use crate::error::{CliError, Outcome};
use crate::format::Format;
use crate::load;

/// Print a policy's canonical digest.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  cargo pvgate digest policy/default.toml")]
pub struct Args {
    /// The policy file.
    #[arg(value_name = "POLICY")]
    pub policy: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Runs `digest`.
pub fn run(args: &Args) -> Result<Outcome, CliError> {
    let c = load::policy(&args.policy)?;
    let hex = digest::hex(&digest::digest(&c.ir));
    match args.format {
        Format::Human => println!("{hex}"),
        Format::Json => println!(
            "{}",
            json!({"path": c.path, "name": c.ir.name, "digest": hex})
        ),
    }
    Ok(Outcome::Clean)
}
