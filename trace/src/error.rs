//! The one error type of this crate: why a trace could not be loaded or replayed.

use std::fmt;

use crate::spanned::FileErrors;

/// Why a trace could not be loaded or replayed.
#[derive(Debug)]
pub enum TraceError {
    /// The file could not be read.
    Io {
        /// The path.
        path: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// The text does not load: every error of the file, each located
    /// at its key with the source snippet ([`FileErrors::render`]).
    Invalid(Box<FileErrors>),
    /// The CPU model could not be built.
    Cpu {
        /// The model's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The hypervisor refused to create the trace's VM or vCPUs.
    Setup {
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceError::Io { path, error } => write!(f, "cannot read trace `{path}`: {error}"),
            TraceError::Invalid(e) => write!(f, "{e}"),
            TraceError::Cpu { name, message } => write!(f, "cpu model `{name}`: {message}"),
            TraceError::Setup { message } => write!(f, "cannot set up the trace's vm: {message}"),
        }
    }
}

impl std::error::Error for TraceError {}
