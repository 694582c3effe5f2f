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
