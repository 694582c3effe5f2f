//! Colour for diagnostics (`--color auto|always|never`, `NO_COLOR`).
//!
//! `auto` colours a stream only when it is a terminal and `NO_COLOR` is
//! unset or empty (no-color.org); `always` and `never` win over both.

use std::io::IsTerminal;
use std::sync::OnceLock;

use clap::ValueEnum;

/// When to colour diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum Choice {
    /// On a terminal, unless `NO_COLOR` is set.
    #[default]
    Auto,
    /// Always, even through a pipe or with `NO_COLOR`.
    Always,
    /// Never.
    Never,
}

impl Choice {
    /// The same choice for clap's help and usage errors (whose `auto`
    /// also honours `NO_COLOR`).
    pub fn clap(self) -> clap::ColorChoice {
        match self {
            Choice::Auto => clap::ColorChoice::Auto,
            Choice::Always => clap::ColorChoice::Always,
            Choice::Never => clap::ColorChoice::Never,
        }
    }
}

/// `--color WHEN` or `--color=WHEN` from the raw arguments (the last one
/// wins, as clap would have it); `auto` when absent or not understood.
pub fn from_args(args: &[std::ffi::OsString]) -> Choice {
    let mut choice = Choice::Auto;
    let mut next_is_value = false;
    for a in args.iter().map(|a| a.to_string_lossy()) {
        let value = if next_is_value {
            next_is_value = false;
            Some(a.to_string())
        } else if a == "--color" {
            next_is_value = true;
            None
        } else {
            a.strip_prefix("--color=").map(String::from)
        };
        if let Some(v) = value.and_then(|v| Choice::from_str(&v, true).ok()) {
            choice = v;
        }
    }
    choice
}

static CHOICE: OnceLock<Choice> = OnceLock::new();

/// Records the global `--color` (once, from `main`).
pub fn set(choice: Choice) {
    let _ = CHOICE.set(choice);
}

fn enabled(is_terminal: bool) -> bool {
    match CHOICE.get().copied().unwrap_or_default() {
        Choice::Always => true,
        Choice::Never => false,
        Choice::Auto => is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

/// Whether what goes to stderr (errors) is coloured.
pub fn stderr() -> bool {
    enabled(std::io::stderr().is_terminal())
}

/// Whether what goes to stdout (lint findings) is coloured.
pub fn stdout() -> bool {
    enabled(std::io::stdout().is_terminal())
}

/// `error: ` as a diagnostic starts it: bold red when coloured.
pub fn error_prefix(color: bool) -> &'static str {
    if color {
        "\x1b[1m\x1b[91merror\x1b[0m\x1b[1m:\x1b[0m "
    } else {
        "error: "
    }
}
