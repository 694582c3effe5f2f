//! The output format every reporting command takes (`--format`).

use clap::ValueEnum;

/// Output format of a reporting command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Text for people.
    #[default]
    Human,
    /// One JSON document on stdout.
    Json,
}
