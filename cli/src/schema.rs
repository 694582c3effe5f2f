//! `pvgate schema`: print the policy language's JSON Schema (generated
//! with schemars from the types the loader deserializes).

use crate::error::{CliError, Outcome};
use crate::format::Format;

/// Print the JSON Schema of the policy language.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The schema is one JSON document in either format; `--format json` is \
                  accepted like on every command that prints data.\n\n\
                  Examples:\n  cargo pvgate schema > policy/schema.json\n  cargo pvgate schema --format json"
)]
pub struct Args {
    /// Output format (the schema is JSON in both).
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Runs `schema`.
pub fn run(_args: &Args) -> Result<Outcome, CliError> {
    print!("{}", pvgate_codegen::model::schema_json());
    Ok(Outcome::Clean)
}
