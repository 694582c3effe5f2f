//! `pvgate schema`: print the policy language's JSON Schema (generated
//! with schemars from the types the loader deserializes).

use crate::error::{CliError, Outcome};

/// Print the JSON Schema of the policy language.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  cargo pvgate schema > policy/schema.json")]
pub struct Args {}

/// Runs `schema`.
pub fn run(_args: &Args) -> Result<Outcome, CliError> {
    print!("{}", pvgate_codegen::model::schema_json());
    Ok(Outcome::Clean)
}
