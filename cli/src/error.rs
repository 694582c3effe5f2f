//! How a command ends: ran to completion (clean or with findings), or
//! could not run because its input is unusable (exit 2).

use pvgate_codegen::LoadError;

/// A command that ran to completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to report (exit 0).
    Clean,
    /// The command found something: lint errors, a difference (exit 1).
    Found,
}

/// Unusable input: the command could not run (exit 2).
#[derive(Debug)]
pub enum CliError {
    /// A policy that cannot be read or does not compile.
    Policy(Box<LoadError>),
    /// An argument whose value makes no sense; lowercase, input in backticks.
    Arg {
        /// What is wrong.
        message: String,
        /// A hint such as "did you mean `IA32_LSTAR`?".
        help: Option<String>,
    },
    /// A trace or vector file that does not load: every error of the
    /// file, each located and underlined like a policy error.
    Files(Box<pvgate_trace::FileErrors>),
    /// Policy errors already printed (e.g. as JSON on stdout).
    Reported,
}

impl CliError {
    /// An argument error without a hint.
    pub fn arg(message: impl Into<String>) -> CliError {
        CliError::Arg {
            message: message.into(),
            help: None,
        }
    }

    /// An argument error with an optional hint.
    pub fn arg_with(message: impl Into<String>, help: Option<String>) -> CliError {
        CliError::Arg {
            message: message.into(),
            help,
        }
    }

    /// The text printed on stderr (coloured as `--color` and the
    /// terminal say).
    pub fn render(&self) -> String {
        let color = crate::color::stderr();
        let error = crate::color::error_prefix(color);
        match self {
            CliError::Policy(e) => e.render_styled(color),
            CliError::Arg { message, help } => match help {
                Some(h) => format!("{error}{message}\n  = help: {h}\n"),
                None => format!("{error}{message}\n"),
            },
            CliError::Files(e) => e.render_styled(color),
            CliError::Reported => String::new(),
        }
    }
}

impl From<LoadError> for CliError {
    fn from(e: LoadError) -> CliError {
        CliError::Policy(Box::new(e))
    }
}
