//! What the Rust emitters share: the table shapes, the names of the
//! generated functions, and the escaping of policy text into generated
//! code (names and paths are hostile input: they never reach the output
//! unescaped).

use std::fmt::Write;

use pvgate_gate::{Access, Phase, VmKind};

use crate::ir::Ir;

/// Above this many ranges, an MSR table is a sorted slice, not a `match`.
pub const MATCH_LIMIT: usize = 64;

/// How to shape MSR lookups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// By density and size: verdict maps over the MSR-bitmap regions that
    /// hold at least [`crate::emit_msr::MAP_MIN_RANGES`] ranges, `match`
    /// up to [`MATCH_LIMIT`] ranges, else sorted slice.
    Auto,
    /// Always a `match`, no verdict map.
    Match,
    /// Always a sorted slice with binary search, no verdict map.
    Sorted,
    /// A verdict map over every MSR-bitmap region with a non-deny MSR,
    /// whatever the density; otherwise as [`Shape::Auto`].
    Bitmap,
}

/// The generated function's name for one (kind, phase[, access]).
pub(crate) fn fn_name(prefix: &str, kind: VmKind, phase: Phase, access: Option<Access>) -> String {
    match access {
        Some(a) => format!("{prefix}_{}_{}_{}", kind.name(), phase.name(), a.name()),
        None => format!("{prefix}_{}_{}", kind.name(), phase.name()),
    }
}

/// A rule's `file:line name` for a generated comment, escaped.
pub(crate) fn rule_comment(ir: &Ir, path: &str, id: pvgate_gate::RuleId) -> String {
    match ir.rule(id) {
        Some(r) => format!("{path}:{} {}", r.line, escaped(&r.name)),
        None => format!("{path}: rule {}", id.0),
    }
}

/// Text from a policy (a name, a reason, a path) as the contents of a
/// Rust string literal, safe in a `//` comment too: printable ASCII stays,
/// `"` and `\` are escaped, and every other character (line breaks, NUL,
/// bidi controls, any non-ASCII) becomes an escape (`\n`, `\u{202e}`).
/// The only way policy text enters the Rust tables: the output is
/// printable ASCII on the lines the emitter chose.
pub fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            _ => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
        }
    }
    out
}

/// A Rust string literal holding `text` (see [`escaped`]).
pub fn literal(text: &str) -> String {
    format!("\"{}\"", escaped(text))
}

/// Whether sorted, disjoint inclusive ranges cover every `u32` (then a
/// `_` arm would be unreachable, which rustc warns about).
pub(crate) fn covers_all(sorted: impl Iterator<Item = (u32, u32)>) -> bool {
    let mut next: u64 = 0;
    for (first, last) in sorted {
        if u64::from(first) != next {
            return false;
        }
        next = u64::from(last) + 1;
    }
    next == 1 << 32
}

/// `inject_irq` → `InjectIrq`.
pub(crate) fn camel(name: &str) -> String {
    name.split(['_', '-'])
        .map(|part| {
            let mut c = part.chars();
            c.next().map_or_else(String::new, |f| {
                f.to_ascii_uppercase().to_string() + c.as_str()
            })
        })
        .collect()
}
