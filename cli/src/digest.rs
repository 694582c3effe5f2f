//! `pvgate digest`: the canonical SHA-256 digest of a policy, as the image
//! embeds it (`POLICY_DIGEST_HEX`), or the digest a built image carries
//! (`--image`, read from its `.pvgate_policy_digest` record).

use std::path::PathBuf;

use pvgate_codegen::digest;
use serde_json::json;

use crate::embedded;
use crate::error::{CliError, Outcome};
use crate::format::Format;
use crate::load;

/// Print a policy's canonical digest, or the one a built image carries.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cargo pvgate digest policy/default.toml\n  cargo pvgate digest --image target/pvgate-image/default/libpvgate_image.a"
)]
pub struct Args {
    /// The policy file.
    #[arg(value_name = "POLICY", required_unless_present = "image")]
    pub policy: Option<PathBuf>,
    /// A built image (the static library `cargo pvgate image` writes, or an
    /// object or binary that kept its `.pvgate_policy_digest` section):
    /// print the policy digest embedded in it.
    #[arg(long, value_name = "FILE", conflicts_with = "policy")]
    pub image: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Runs `digest`.
pub fn run(args: &Args) -> Result<Outcome, CliError> {
    if let Some(image) = &args.image {
        let d = embedded::digest(image).map_err(|e| {
            CliError::arg(format!("no policy digest in `{}`: {e}", image.display()))
        })?;
        let hex = digest::hex(&d);
        match args.format {
            Format::Human => println!("{hex}"),
            Format::Json => println!(
                "{}",
                json!({"image": image.display().to_string(), "digest": hex})
            ),
        }
        return Ok(Outcome::Clean);
    }
    let Some(policy) = &args.policy else {
        return Err(CliError::arg("digest needs a POLICY or --image FILE"));
    };
    let c = load::policy(policy)?;
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
