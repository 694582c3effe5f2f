//! `pvgate schema`: print the policy language's JSON Schema (generated
//! with schemars from the types the loader deserializes), or with
//! `--vectors` the `pvgate-conformance/1` vector format's (generated from
//! the vector loader's key tables).

use crate::error::{CliError, Outcome};
use crate::format::Format;

/// Print the JSON Schema of the policy language (or of the vector format).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The schema is one JSON document in either format; `--format json` is \
                  accepted like on every command that prints data.\n\n\
                  Examples:\n  cargo pvgate schema > policy/schema.json\n  \
                  cargo pvgate schema --vectors > tests/conformance/schema.json\n  cargo pvgate schema --format json"
)]
pub struct Args {
    /// Print the schema of conformance vector files (`pvgate-conformance/1`,
    /// docs/conformance.md) instead of the policy language's.
    #[arg(long)]
    pub vectors: bool,
    /// Output format (the schema is JSON in both).
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Runs `schema`.
pub fn run(args: &Args) -> Result<Outcome, CliError> {
    if args.vectors {
        print!("{}", pvgate_trace::vector_schema_json());
    } else {
        print!("{}", pvgate_codegen::model::schema_json());
    }
    Ok(Outcome::Clean)
}
