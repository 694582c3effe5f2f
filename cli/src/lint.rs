//! `pvgate lint`: parses the arguments, runs the lint engine
//! ([`pvgate_review::lint`]) on each policy and renders its findings as
//! text with source snippets, as JSON, or as SARIF ([`crate::sarif`]).

use std::fmt::Write;
use std::path::PathBuf;

use annotate_snippets::{AnnotationKind, Level, Snippet};
use clap::ValueEnum;
use pvgate_codegen::diagnostic::line_col;
use pvgate_codegen::diagnostic::renderer;
use pvgate_codegen::{Compiled, Registry};
use pvgate_review::lint::{Finding, LINTS, Severity, findings};
use serde_json::{Value, json};

use crate::error::{CliError, Outcome};
use crate::{load, sarif};

/// Lint policies for risky shapes.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cargo pvgate lint policy/default.toml\n  cargo pvgate lint --deny-warnings --format sarif policy/*.toml > pvgate.sarif  # exit 1\n  cargo pvgate lint --explain cpuid-security-bit"
)]
pub struct Args {
    /// Policy files to lint.
    #[arg(required_unless_present = "explain", value_name = "POLICY")]
    pub policies: Vec<PathBuf>,
    /// Print the long explanation of a lint (its id, as shown in brackets
    /// in every finding: `cpuid-security-bit`) and exit.
    #[arg(long, value_name = "LINT", conflicts_with = "policies")]
    pub explain: Option<String>,
    /// Exit 1 on warnings too, not only on errors.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: LintFormat,
}

/// Output format of `lint`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum LintFormat {
    /// Rendered findings with source snippets.
    #[default]
    Human,
    /// A JSON array of findings.
    Json,
    /// SARIF 2.1.0, for code-scanning tools.
    Sarif,
}

/// Runs `lint`.
pub fn run(args: &Args) -> Result<Outcome, CliError> {
    if let Some(name) = &args.explain {
        print!("{}", explain(name)?);
        return Ok(Outcome::Clean);
    }
    let mut linted = Vec::new();
    for path in &args.policies {
        let c = load::policy(path)?;
        let f = findings(&c, Registry::builtin());
        linted.push((c, f));
    }
    let count = |s: Severity| {
        linted
            .iter()
            .flat_map(|(_, f)| f)
            .filter(|f| f.severity == s)
            .count()
    };
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    match args.format {
        LintFormat::Human => {
            for (c, f) in &linted {
                print!("{}", render_human(c, f, crate::color::stdout()));
            }
        }
        LintFormat::Json => {
            let all: Vec<Value> = linted
                .iter()
                .flat_map(|(c, f)| f.iter().map(move |f| finding_json(c, f)))
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&Value::Array(all)).unwrap_or_default()
            );
        }
        LintFormat::Sarif => {
            println!(
                "{}",
                serde_json::to_string_pretty(&sarif::log(&linted)).unwrap_or_default()
            );
        }
    }
    if errors > 0 || (args.deny_warnings && warnings > 0) {
        Ok(Outcome::Found)
    } else {
        Ok(Outcome::Clean)
    }
}

/// The text of `lint --explain NAME`: the lint's id, severity, summary and
/// long explanation.
fn explain(name: &str) -> Result<String, CliError> {
    let Some(lint) = LINTS.iter().find(|l| l.id.name() == name) else {
        let names: Vec<&str> = LINTS.iter().map(|l| l.id.name()).collect();
        let help = match pvgate_codegen::diagnostic::suggest(name, names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("the lints are {}", names.join(", ")),
        };
        return Err(CliError::arg_with(
            format!("unknown lint `{name}`"),
            Some(help),
        ));
    };
    Ok(format!(
        "{} ({} by default): {}\n\n{}\n",
        lint.id.name(),
        lint.severity.name(),
        lint.summary,
        lint.id.explanation()
    ))
}

/// Renders a policy's findings with source snippets and a summary line.
pub fn render_human(c: &Compiled, findings: &[Finding], color: bool) -> String {
    let mut o = String::new();
    for f in findings {
        let level = match f.severity {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
            Severity::Info => Level::INFO,
        };
        let span = f.span.start.min(c.text.len())..f.span.end.min(c.text.len());
        let group = [level
            .primary_title(&f.message)
            .id(f.lint.name())
            .element(
                Snippet::source(&c.text)
                    .path(&c.path)
                    .annotation(AnnotationKind::Primary.span(span).label(&f.label)),
            )
            .element(Level::HELP.message(&f.help))];
        let _ = writeln!(o, "{}\n", renderer(color).render(&group));
    }
    let n = |s| findings.iter().filter(|f| f.severity == s).count();
    let plural = |k: usize, w: &str| format!("{k} {w}{}", if k == 1 { "" } else { "s" });
    let _ = writeln!(
        o,
        "lint: {}: {}, {}, {}",
        c.path,
        plural(n(Severity::Error), "error"),
        plural(n(Severity::Warning), "warning"),
        plural(n(Severity::Info), "info")
    );
    o
}

fn finding_json(c: &Compiled, f: &Finding) -> Value {
    let (line, column) = line_col(&c.text, f.span.start);
    let (end_line, end_column) = line_col(&c.text, f.span.end);
    json!({
        "lint": f.lint.name(),
        "severity": f.severity.name(),
        "message": f.message,
        "rule": f.rule,
        "path": c.path,
        "line": line,
        "column": column,
        "end_line": end_line,
        "end_column": end_column,
        "help": f.help,
    })
}
