//! `pvgate check`: parse and validate policies; print name, digest and the
//! number of rules per VM kind and phase, or every error, located.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;

use pvgate_codegen::diagnostic::line_col;
use pvgate_codegen::{Diagnostic, Ir, LoadError, RuleClass, digest};
use pvgate_gate::{Phase, VmKind};
use serde_json::{Value, json};

use crate::error::{CliError, Outcome};
use crate::format::Format;

/// Parse and validate policies (exit 2 if any is invalid).
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  cargo pvgate check policy/default.toml policy/strict.toml")]
pub struct Args {
    /// Policy files to check.
    #[arg(required = true, value_name = "POLICY")]
    pub policies: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Runs `check`.
pub fn run(args: &Args) -> Result<Outcome, CliError> {
    let mut human = String::new();
    let mut json_out = Vec::new();
    let mut invalid = false;
    let baseline = crate::load::baseline()?;
    for path in &args.policies {
        match crate::load::compile(path, &baseline) {
            Ok(c) => {
                human.push_str(&summary(&c.path, &c.ir));
                json_out.push(summary_json(&c.path, &c.ir));
            }
            Err(e) => {
                invalid = true;
                if args.format == Format::Human {
                    eprint!("{}", e.render_styled(crate::color::stderr()));
                }
                json_out.push(error_json(&e));
            }
        }
    }
    match args.format {
        Format::Human => print!("{human}"),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&Value::Array(json_out)).unwrap_or_default()
        ),
    }
    if invalid {
        Err(CliError::Reported)
    } else {
        Ok(Outcome::Clean)
    }
}

/// The baseline proven: `FILE (sha256 HEX, N invariants)`.
pub fn baseline_line(ir: &Ir) -> String {
    format!(
        "{} (sha256 {}, {} invariant{})",
        ir.baseline.file,
        ir.baseline.sha256,
        ir.baseline.invariants,
        if ir.baseline.invariants == 1 { "" } else { "s" }
    )
}

/// The baseline proven, as JSON: file, SHA-256 and invariant count.
pub fn baseline_json(ir: &Ir) -> Value {
    json!({"file": ir.baseline.file, "sha256": ir.baseline.sha256, "invariants": ir.baseline.invariants})
}

/// The invariants proven, as JSON: name, file, line, and whether each
/// came from the baseline.
pub fn invariants_json(ir: &Ir) -> Value {
    ir.invariants
        .iter()
        .map(|i| json!({"name": i.name, "file": i.file, "line": i.line, "baseline": i.baseline}))
        .collect()
}

/// Rules per (kind, phase) and class.
pub fn counts(ir: &Ir) -> BTreeMap<(VmKind, Phase), [usize; 3]> {
    let mut out: BTreeMap<(VmKind, Phase), [usize; 3]> = BTreeMap::new();
    for k in VmKind::ALL {
        for p in Phase::ALL {
            out.insert((k, p), [0; 3]);
        }
    }
    for r in &ir.rules {
        for &k in &r.kinds {
            for &p in &r.phases {
                let slot = match r.class {
                    RuleClass::Msr => 0,
                    RuleClass::Cpuid => 1,
                    RuleClass::Pv => 2,
                };
                if let Some(c) = out.get_mut(&(k, p)) {
                    c[slot] += 1;
                }
            }
        }
    }
    out
}

fn summary(path: &str, ir: &Ir) -> String {
    let mut o = String::new();
    let by_class = |c: RuleClass| ir.rules.iter().filter(|r| r.class == c).count();
    let _ = writeln!(o, "{path}: ok");
    let _ = writeln!(o, "  name:   {}", ir.name);
    let _ = writeln!(o, "  digest: {}", digest::hex(&digest::digest(ir)));
    let _ = writeln!(
        o,
        "  rules:  {} ({} msr, {} cpuid, {} pv); cpuid violations: {}",
        ir.rules.len(),
        by_class(RuleClass::Msr),
        by_class(RuleClass::Cpuid),
        by_class(RuleClass::Pv),
        ir.violation_mode.name()
    );
    let _ = writeln!(
        o,
        "  invariants proven: {}{}",
        ir.invariants.len(),
        if ir.included.is_empty() {
            String::new()
        } else {
            format!(" (included: {})", ir.included.join(", "))
        }
    );
    let _ = writeln!(o, "  baseline: {}", baseline_line(ir));
    let _ = writeln!(o, "  rules active per VM kind and phase:");
    let _ = writeln!(
        o,
        "    {:<10} {:<9} {:>4} {:>6} {:>4}",
        "vm", "phase", "msr", "cpuid", "pv"
    );
    for ((k, p), [m, c, v]) in counts(ir) {
        let _ = writeln!(
            o,
            "    {:<10} {:<9} {m:>4} {c:>6} {v:>4}",
            k.name(),
            p.name()
        );
    }
    o
}

fn summary_json(path: &str, ir: &Ir) -> Value {
    let counts: Vec<Value> = counts(ir)
        .into_iter()
        .map(|((k, p), [m, c, v])| json!({"vm": k.name(), "phase": p.name(), "msr": m, "cpuid": c, "pv": v}))
        .collect();
    json!({
        "path": path,
        "valid": true,
        "name": ir.name,
        "digest": digest::hex(&digest::digest(ir)),
        "rules": ir.rules.len(),
        "cpuid_violations": ir.violation_mode.name(),
        "invariants": invariants_json(ir),
        "baseline": baseline_json(ir),
        "counts": counts,
    })
}

/// A diagnostic as JSON, with 1-based lines and columns.
pub fn diagnostic_json(path: &str, text: &str, d: &Diagnostic) -> Value {
    let (line, column) = line_col(text, d.span.start);
    let (end_line, end_column) = line_col(text, d.span.end);
    let related: Vec<Value> = d
        .related
        .iter()
        .map(|(span, label)| {
            let (l, c) = line_col(text, span.start);
            json!({"line": l, "column": c, "label": label})
        })
        .collect();
    json!({
        "kind": format!("{:?}", d.kind),
        "message": d.message,
        "path": path,
        "line": line,
        "column": column,
        "end_line": end_line,
        "end_column": end_column,
        "label": d.label,
        "help": d.help,
        "related": related,
    })
}

fn error_json(e: &LoadError) -> Value {
    match e {
        LoadError::Io { path, error } => json!({
            "path": path,
            "valid": false,
            "errors": [{"kind": "Io", "message": format!("cannot read policy `{path}`: {error}")}],
        }),
        LoadError::Invalid { path, text, errors } => json!({
            "path": path,
            "valid": false,
            "errors": errors.diagnostics.iter().map(|d| diagnostic_json(path, text, d)).collect::<Vec<_>>(),
        }),
    }
}
