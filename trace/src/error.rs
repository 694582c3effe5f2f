//! The one error type of this crate: why a trace could not be loaded or replayed.

use std::fmt;

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
    /// The text is not a `pvgate-trace/1` TOML document.
    Parse {
        /// The path (or `<text>`).
        path: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// A call in the trace is malformed.
    Call {
        /// The path (or `<text>`).
        path: String,
        /// 1-based index of the call in the trace.
        index: usize,
        /// 1-based line of its `[[call]]` header.
        line: usize,
        /// What is wrong.
        message: String,
    },
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
            TraceError::Parse {
                path,
                line: Some(line),
                message,
            } => write!(f, "{path}:{line}: {message}"),
            TraceError::Parse {
                path,
                line: None,
                message,
            } => write!(f, "{path}: {message}"),
            TraceError::Call {
                path,
                index,
                line,
                message,
            } => write!(f, "{path}:{line}: call #{index}: {message}"),
            TraceError::Cpu { name, message } => write!(f, "cpu model `{name}`: {message}"),
            TraceError::Setup { message } => write!(f, "cannot set up the trace's vm: {message}"),
        }
    }
}

impl std::error::Error for TraceError {}
