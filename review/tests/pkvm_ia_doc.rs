//! `docs/pkvm-ia.md` stays true to the code: every PV call of the gate's
//! vocabulary (and every guest call) has a row, no row names a call that
//! does not exist, and every "proved by" cell names files that exist and
//! test functions defined in them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

#[allow(dead_code)] // cargo_metadata serves the workspace-shape tests only.
mod common;

use std::collections::BTreeMap;
use std::path::Path;

use pvgate_gate::PvCall;
use pvgate_hyp::GuestCall;

/// The page, relative to the workspace root.
const DOC: &str = "docs/pkvm-ia.md";

/// One table row: the call it names, its line, and its "proved by" cell.
#[derive(Debug)]
struct Row {
    call: String,
    line: usize,
    proved_by: String,
}

/// Splits a table row on the `|` that are not escaped (`\|`), dropping the
/// empty cells before the first and after the last bar.
fn cells(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cur.push('|');
                chars.next();
            }
            '|' => out.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    // "| a | b |" gives ["", "a", "b", ""].
    if out.first().is_some_and(String::is_empty) {
        out.remove(0);
    }
    if out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    out
}

/// The call rows of `text`: lines starting with "| `name`".
fn rows(text: &str) -> Vec<Row> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("| `"))
        .map(|(i, l)| {
            let cs = cells(l);
            let call = cs[0].trim_matches('`').to_string();
            Row {
                call,
                line: i + 1,
                proved_by: cs.last().cloned().unwrap_or_default(),
            }
        })
        .collect()
}

/// The `code` spans of a cell, in order.
fn code_spans(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// What is wrong with one "proved by" cell: a span with a `/` is a path
/// (relative to `root`, must exist); a span that is an identifier is a
/// test function that must be defined (`fn name`) in the path before it.
fn proof_problems(root: &Path, row: &Row) -> Vec<String> {
    let at = format!("{DOC}:{} (`{}`)", row.line, row.call);
    let mut problems = Vec::new();
    let mut file: Option<(String, Option<String>)> = None;
    let spans = code_spans(&row.proved_by);
    if !spans.iter().any(|s| s.contains('/')) {
        problems.push(format!("{at}: the proved-by cell names no file"));
    }
    for span in spans {
        if span.contains('/') {
            let text = std::fs::read_to_string(root.join(span)).ok();
            if text.is_none() {
                problems.push(format!("{at}: `{span}` does not exist"));
            }
            file = Some((span.to_string(), text));
        } else if !span.is_empty()
            && span
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            match &file {
                None => problems.push(format!("{at}: `{span}` follows no file")),
                Some((path, Some(text))) => {
                    if !defines_fn(text, span) {
                        problems.push(format!("{at}: `{path}` defines no `fn {span}`"));
                    }
                }
                Some((_, None)) => {} // reported above
            }
        } else {
            problems.push(format!(
                "{at}: `{span}` is neither a path nor a function name"
            ));
        }
    }
    problems
}

/// Whether `text` defines `fn name` (followed by `(` or `<`).
fn defines_fn(text: &str, name: &str) -> bool {
    let needle = format!("fn {name}");
    text.match_indices(&needle).any(|(k, _)| {
        let before_ok = k == 0 || !text.as_bytes()[k - 1].is_ascii_alphanumeric();
        let after = text[k + needle.len()..].chars().next();
        before_ok && matches!(after, Some('(') | Some('<'))
    })
}

/// Every problem of the page: missing, unknown or repeated calls, and bad
/// proofs.
fn doc_problems(root: &Path, text: &str, known: &[&str]) -> Vec<String> {
    let rows = rows(text);
    let mut problems = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for row in &rows {
        if !known.contains(&row.call.as_str()) {
            problems.push(format!(
                "{DOC}:{}: `{}` is not a PV call or guest call",
                row.line, row.call
            ));
        }
        if let Some(first) = seen.insert(&row.call, row.line) {
            problems.push(format!(
                "{DOC}:{}: `{}` has a row already at line {first}",
                row.line, row.call
            ));
        }
        problems.extend(proof_problems(root, row));
    }
    for call in known {
        if !seen.contains_key(call) {
            problems.push(format!("{DOC}: no row for `{call}`"));
        }
    }
    problems
}

/// The names the page must cover: every PV call and every guest call.
fn known_calls() -> Vec<&'static str> {
    PvCall::ALL
        .iter()
        .map(|c| c.name())
        .chain(GuestCall::NAMES)
        .collect()
}

#[test]
fn every_call_has_a_row_and_every_proof_exists() {
    let root = common::workspace_root();
    let text = std::fs::read_to_string(root.join(DOC)).expect("docs/pkvm-ia.md is readable");
    let known = known_calls();
    assert_eq!(known.len(), 55, "54 PV calls and start_secondary");
    let problems = doc_problems(&root, &text, &known);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_check_catches_a_missing_row_an_unknown_call_and_a_bad_proof() {
    let root = common::workspace_root();
    let known = ["vcpu_run", "set_dr7"];
    let page = "\
| call | class | proved by |
|---|---|---|
| `vcpu_run` | always | `hyp/tests/vm_start.rs` `a_protected_vcpu_does_not_run_before_it_is_started_and_a_normal_one_does` |
| `set_drr7` | denied | `hyp/tests/handlers.rs` `no_such_test` |
| `vcpu_run` | always | `hyp/tests/nowhere.rs` `x`; `bad span!` |
| `set_dr7` | denied MCG_CTL_P \\| MCG_SER_P | `hyp/tests/conformance.rs` `hyp_over` |
";
    let problems = doc_problems(&root, page, &known);
    let has = |s: &str| problems.iter().any(|p| p.contains(s));
    assert!(has("`set_drr7` is not a PV call"), "{problems:#?}");
    assert!(has("defines no `fn no_such_test`"), "{problems:#?}");
    assert!(
        has("`vcpu_run` has a row already at line 3"),
        "{problems:#?}"
    );
    assert!(
        has("`hyp/tests/nowhere.rs` does not exist"),
        "{problems:#?}"
    );
    assert!(has("`bad span!` is neither"), "{problems:#?}");
    // A prefix of a function name is not that function.
    assert!(has("defines no `fn hyp_over`"), "{problems:#?}");
    assert_eq!(problems.len(), 6, "{problems:#?}");

    let missing = doc_problems(&root, "| `vcpu_run` | `docs/hypervisor.md` |\n", &known);
    assert_eq!(missing, [format!("{DOC}: no row for `set_dr7`")]);
    let no_file = doc_problems(
        &root,
        "| `vcpu_run` | `vcpu_run` |\n| `set_dr7` | x |\n",
        &known,
    );
    assert!(
        no_file
            .iter()
            .any(|p| p.contains(":1 (`vcpu_run`): `vcpu_run` follows no file")),
        "{no_file:#?}"
    );
    assert!(
        no_file
            .iter()
            .any(|p| p.contains(":2 (`set_dr7`): the proved-by cell names no file")),
        "{no_file:#?}"
    );
}
