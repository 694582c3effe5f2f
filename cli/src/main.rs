//! `pvgate`: the security reviewer's command line for pvgate policies.
//!
//! Exit codes (docs/design.md §8): 0 success; 1 the command ran and found
//! something (lint errors, a diff with `--exit-code`, an unmet trace
//! expectation); 2 unusable input (a policy or trace that does not load,
//! bad arguments).
// Std code: the workspace's no-panic list (Cargo.toml) applies, less the
// two lints only a no_std crate needs (docs/design.md, "Crate and
// dependency rules").
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

mod check;
mod color;
mod completions;
mod conformance;
mod diff;
mod digest;
mod embedded;
mod emit;
mod error;
mod explain;
mod fmt;
mod format;
mod git;
mod image;
mod init;
mod lint;
mod load;
mod policy_arg;
mod replay;
mod report;
mod sarif;
mod schema;
mod supported;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::{CliError, Outcome};

/// The reviewer's command line for pvgate policies.
#[derive(Debug, Parser)]
#[command(
    name = "pvgate",
    version,
    about = "Check, lint, explain, diff and report pvgate policies; replay host traces",
    long_about = "pvgate compiles a reviewed TOML policy (which vCPU state an untrusted host may \
                  read or write on a protected VM) into const tables. This command is for the \
                  reviewers who sign those policies off.\n\n\
                  Exit codes: 0 success; 1 the command found something (lint errors, a diff \
                  with --exit-code, an unmet trace expectation); 2 unusable input (invalid \
                  policy or trace, bad arguments).",
    after_help = "Examples:\n  cargo pvgate check policy/default.toml\n  cargo pvgate explain policy/default.toml --vm protected --phase setup \\\n    --msr IA32_MISC_ENABLE --access write --value 0x1809\n  cargo pvgate diff policy/default.toml policy/strict.toml\n  cargo pvgate replay policy/default.toml tests/data/traces/crosvm-boot-pvm.toml"
)]
struct Cli {
    /// The protected-VM baseline every policy is proven against, in
    /// addition to its own invariants (default: `PVGATE_BASELINE`, else the
    /// shipped policy/invariants/protected-baseline.toml).
    #[arg(long, global = true, value_name = "FILE")]
    baseline: Option<std::path::PathBuf>,
    /// When to colour diagnostics: `auto` on a terminal unless `NO_COLOR`
    /// is set, `always`, or `never`.
    #[arg(long, global = true, value_enum, default_value_t, value_name = "WHEN")]
    color: color::Choice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Check(check::Args),
    Conformance(conformance::Args),
    Lint(lint::Args),
    Explain(explain::Args),
    Diff(diff::Args),
    Report(report::Args),
    Replay(replay::Args),
    Schema(schema::Args),
    Digest(digest::Args),
    Emit(emit::Args),
    Image(image::Args),
    Init(init::Args),
    Fmt(fmt::Args),
    Completions(completions::CompletionsArgs),
    Man(completions::ManArgs),
}

fn run(cli: Cli) -> Result<Outcome, CliError> {
    load::set_baseline_flag(cli.baseline);
    color::set(cli.color);
    match cli.command {
        Command::Check(a) => check::run(&a),
        Command::Conformance(mut a) => {
            a.resolve()?;
            if a.mutants {
                conformance::mutants::run(&a)
            } else {
                conformance::run(&a)
            }
        }
        Command::Lint(a) => lint::run(&a),
        Command::Explain(mut a) => {
            a.resolve()?;
            explain::run(&a)
        }
        Command::Diff(a) => diff::run(&a),
        Command::Report(a) => report::run(&a),
        Command::Replay(mut a) => {
            a.resolve()?;
            replay::run(&a)
        }
        Command::Schema(a) => schema::run(&a),
        Command::Digest(a) => digest::run(&a),
        Command::Emit(a) => emit::run(&a),
        Command::Image(mut a) => {
            a.resolve()?;
            image::run(&a)
        }
        Command::Init(a) => init::run(&a),
        Command::Fmt(a) => fmt::run(&a),
        Command::Completions(a) => {
            completions::completions(&a, <Cli as clap::CommandFactory>::command())
        }
        Command::Man(a) => completions::man(&a, <Cli as clap::CommandFactory>::command()),
    }
}

/// Parses the command line; clap's own help and usage errors follow
/// `--color` too (read before parsing, since clap renders them while it
/// parses).
fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cmd = Cli::command().color(color::from_args(&args).clap());
    cmd.try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m))
        .unwrap_or_else(|e| e.exit())
}

fn main() -> ExitCode {
    match run(parse()) {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Found) => ExitCode::from(1),
        Err(e) => {
            eprint!("{}", e.render());
            ExitCode::from(2)
        }
    }
}
