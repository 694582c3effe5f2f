//! Reading a trace file: every error of it located in its text (underlined
//! like a policy error, with "did you mean"), by the trace crate's loader.

use std::path::Path;

use pvgate_trace::{Trace, TraceError};

use crate::error::CliError;

/// Reads and parses one trace; errors are located in its text.
pub(super) fn load_trace(path: &Path) -> Result<Trace, CliError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::arg(format!("cannot read trace `{shown}`: {e}")))?;
    pvgate_trace::parse(&text, &shown).map_err(trace_error)
}

/// A trace error as a command-line error.
pub(crate) fn trace_error(e: TraceError) -> CliError {
    match e {
        TraceError::Invalid(errors) => CliError::Files(errors),
        other => CliError::arg(other.to_string()),
    }
}
