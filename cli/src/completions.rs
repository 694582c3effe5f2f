//! `pvgate completions SHELL` and `pvgate man`: shell completions and a
//! man page, both generated from the clap definitions of every command.

use std::path::PathBuf;

use clap_complete::Shell;

use crate::error::{CliError, Outcome};

/// Print a shell completion script.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cargo pvgate completions bash > ~/.local/share/bash-completion/completions/pvgate\n  cargo pvgate completions zsh > ~/.zfunc/_pvgate"
)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// Write the man page (pvgate(1), and pvgate-COMMAND(1) with `--dir`).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cargo pvgate man | man -l -\n  cargo pvgate man --dir target/man"
)]
pub struct ManArgs {
    /// Write pvgate.1 and one pvgate-COMMAND.1 per command into DIR
    /// instead of printing pvgate.1 on stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Runs `completions` for `cmd`, the whole command line's definition.
pub fn completions(args: &CompletionsArgs, mut cmd: clap::Command) -> Result<Outcome, CliError> {
    clap_complete::generate(args.shell, &mut cmd, "pvgate", &mut std::io::stdout());
    Ok(Outcome::Clean)
}

/// Runs `man` for `cmd`, the whole command line's definition.
pub fn man(args: &ManArgs, cmd: clap::Command) -> Result<Outcome, CliError> {
    match &args.dir {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(|e| CliError::arg(format!("cannot render the man page: {e}")))?;
            print!("{}", String::from_utf8_lossy(&out));
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::arg(format!("cannot create `{}`: {e}", dir.display())))?;
            clap_mangen::generate_to(cmd, dir).map_err(|e| {
                CliError::arg(format!("cannot write into `{}`: {e}", dir.display()))
            })?;
            eprintln!("wrote man pages into {}", dir.display());
        }
    }
    Ok(Outcome::Clean)
}
