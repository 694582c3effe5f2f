//! The canonical layout itself: key order, spacing, array layout, blank
//! lines and comments of one pvgate TOML document (`toml_edit`, so every
//! comment and value is kept as written). `fmt` applies it to files.

use toml_edit::{Array, DocumentMut, InlineTable, Item, RawString, Table, Value};

/// The widest line an array is laid out on.
pub const WIDTH: usize = 100;

/// The canonical order of the keys of each table of the policy language
/// (keys not listed keep their order, after the listed ones).
fn key_order(table: &str) -> &'static [&'static str] {
    match table {
        "policy" => &[
            "name",
            "description",
            "format",
            "include",
            "cpuid-violations",
        ],
        "msr" => &[
            "name",
            "msr",
            "range",
            "vm",
            "phase",
            "access",
            "verdict",
            "write-mask",
            "force-on",
            "force-off",
            "read-mask",
            "reason",
        ],
        "cpuid" => &[
            "name", "leaf", "subleaf", "vm", "phase", "verdict", "eax", "ebx", "ecx", "edx",
            "reason",
        ],
        "pv" => &[
            "name",
            "call",
            "vm",
            "phase",
            "verdict",
            "read-mask",
            "min-vector",
            "allow-soft",
            "reason",
        ],
        "invariant" => &[
            "name",
            "vm",
            "phase",
            "forbid",
            "require",
            "msr",
            "range",
            "msr-attrs",
            "call",
            "except",
            "features",
            "reason",
        ],
        _ => &[],
    }
}

/// The order of the keys of a CPUID register control.
const REGISTER_ORDER: &[&str] = &["host", "clear-only", "force-on", "force-off"];

/// Whether the document is a policy or an invariant file (whose keys are
/// reordered); traces and vector files keep their key order.
fn is_policy_language(doc: &DocumentMut) -> bool {
    ["policy", "msr", "cpuid", "pv", "invariant"]
        .iter()
        .any(|k| doc.contains_key(k))
        && !doc.contains_key("format")
}

/// Formats a file's text (see the module documentation); an error if the
/// text is not TOML.
pub fn format(text: &str) -> Result<String, String> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| e.message().trim().to_string())?;
    let reorder = is_policy_language(&doc);
    let mut first = true;
    format_table(doc.as_table_mut(), "", reorder, &mut first, true, false);
    let trailing = doc.trailing().as_str().unwrap_or("").to_string();
    // Comments after the last key: one blank line before them if the
    // author left one.
    let lead = match trailing.trim_start_matches([' ', '\t']).starts_with('\n') {
        true if trailing.contains('#') => "\n",
        _ => "",
    };
    let block = comment_block(&trailing, true);
    doc.set_trailing(format!("{lead}{block}"));
    let mut out = doc.to_string();
    while out.ends_with("\n\n") {
        out.pop();
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// Comment lines of a decor, trimmed, with runs of blank lines collapsed to
/// one (kept only where `keep_blank`) and no blank line at the end.
fn comment_block(raw: &str, keep_blank: bool) -> String {
    let mut out = String::new();
    let mut blank = false;
    for segment in raw.split_inclusive('\n') {
        let line = segment.trim();
        if line.is_empty() && !segment.ends_with('\n') {
            // The indentation before a header or key, not a blank line.
            continue;
        }
        if line.is_empty() {
            blank = keep_blank && !out.is_empty();
            continue;
        }
        if blank {
            out.push('\n');
            blank = false;
        }
        out.push_str(line);
        out.push('\n');
    }
    if blank && keep_blank {
        out.push('\n');
    }
    out
}

/// Formats a table: its header decor, key order, each key and value, then
/// its sub-tables. `root` is the document itself (no header).
fn format_table(
    table: &mut Table,
    name: &str,
    reorder: bool,
    first: &mut bool,
    root: bool,
    nested: bool,
) {
    if !root && !table.is_implicit() {
        let prefix = table
            .decor()
            .prefix()
            .and_then(RawString::as_str)
            .unwrap_or("")
            .to_string();
        let block = comment_block(&prefix, true);
        let block = block.trim_start_matches('\n');
        // A sub-table of an array entry (`[call.regs]` under `[[call]]`)
        // follows its parent's keys directly.
        let lead = if *first || nested { "" } else { "\n" };
        table.decor_mut().set_prefix(format!("{lead}{block}"));
        table.decor_mut().set_suffix("");
        *first = false;
    }
    if reorder && !root {
        let order = key_order(name);
        let rank = |k: &str| order.iter().position(|o| *o == k).unwrap_or(order.len());
        table.sort_values_by(|a, _, b, _| rank(a.get()).cmp(&rank(b.get())));
    }
    let mut subtables = Vec::new();
    for (mut key, item) in table.iter_mut() {
        let key_name = key.get().to_string();
        match item {
            Item::Value(v) => {
                let prefix = key
                    .leaf_decor()
                    .prefix()
                    .and_then(RawString::as_str)
                    .unwrap_or("")
                    .to_string();
                let block = comment_block(&prefix, false);
                key.leaf_decor_mut().set_prefix(block);
                key.leaf_decor_mut().set_suffix(" ");
                if root {
                    *first = false;
                }
                let width = key_name.len() + 3;
                format_value(v, &key_name, width, reorder);
                let suffix = trailing_comment(v.decor().suffix());
                v.decor_mut().set_prefix(" ");
                v.decor_mut().set_suffix(suffix);
            }
            Item::Table(_) | Item::ArrayOfTables(_) => subtables.push(key_name),
            Item::None => {}
        }
    }
    for key in subtables {
        match table.get_mut(&key) {
            Some(Item::Table(t)) => format_table(t, &key, reorder, first, false, !root),
            Some(Item::ArrayOfTables(a)) => {
                for t in a.iter_mut() {
                    format_table(t, &key, reorder, first, false, !root);
                }
            }
            _ => {}
        }
    }
}

/// A value's trailing comment with the spacing before it as written (so
/// aligned comments stay aligned; at least one space), or nothing.
fn trailing_comment(suffix: Option<&RawString>) -> String {
    let raw = suffix.and_then(RawString::as_str).unwrap_or("");
    let s = raw.trim();
    if !s.starts_with('#') {
        return String::new();
    }
    let space = raw.len() - raw.trim_start().len();
    format!("{}{s}", " ".repeat(space.max(1)))
}

/// Whether any decor inside an array holds a comment (such an array keeps
/// its layout: moving its items would move its comments).
fn has_comment(a: &Array) -> bool {
    a.trailing().as_str().is_some_and(|t| t.contains('#'))
        || a.iter().any(|v| {
            let d = v.decor();
            [d.prefix(), d.suffix()]
                .into_iter()
                .flatten()
                .any(|r| r.as_str().is_some_and(|s| s.contains('#')))
        })
}

/// Formats a value written after `key = ` (`indent` columns).
fn format_value(v: &mut Value, key: &str, indent: usize, reorder: bool) {
    match v {
        Value::Array(a) => format_array(a, indent, reorder),
        Value::InlineTable(t) => format_inline(t, key, reorder),
        _ => {}
    }
}

/// An inline table on one line, its keys in canonical order for a CPUID
/// register control.
fn format_inline(t: &mut InlineTable, key: &str, reorder: bool) {
    if reorder && ["eax", "ebx", "ecx", "edx"].contains(&key) {
        let rank = |k: &str| {
            REGISTER_ORDER
                .iter()
                .position(|o| *o == k)
                .unwrap_or(REGISTER_ORDER.len())
        };
        t.sort_values_by(|a, _, b, _| rank(a.get()).cmp(&rank(b.get())));
    }
    for (k, v) in t.iter_mut() {
        let name = k.get().to_string();
        if let Value::Array(a) = v {
            one_line(a);
        } else {
            format_value(v, &name, usize::MAX / 2, reorder);
        }
    }
    t.fmt();
}

/// An array on one line: `[a, b, c]`.
fn one_line(a: &mut Array) {
    for v in a.iter_mut() {
        if let Value::InlineTable(t) = v {
            t.fmt();
        }
        if let Value::Array(inner) = v {
            one_line(inner);
        }
    }
    a.fmt();
    a.set_trailing("");
    a.set_trailing_comma(false);
}

/// An array on one line when `[...]` fits after `indent` columns in
/// [`WIDTH`], else items packed on two-space indented lines.
fn format_array(a: &mut Array, indent: usize, reorder: bool) {
    if has_comment(a) {
        return;
    }
    for v in a.iter_mut() {
        match v {
            Value::Array(inner) => one_line(inner),
            Value::InlineTable(t) => format_inline(t, "", reorder),
            _ => {}
        }
    }
    // Where the author broke the lines of a multi-line array (a reader's
    // grouping, e.g. related calls on one line).
    let breaks: Vec<bool> = a
        .iter()
        .map(|v| {
            v.decor()
                .prefix()
                .and_then(RawString::as_str)
                .is_some_and(|p| p.contains('\n'))
        })
        .collect();
    one_line(a);
    let items: Vec<String> = a.iter().map(|v| v.to_string().trim().to_string()).collect();
    if breaks.first() == Some(&true) && fits(&items, &breaks) {
        for (v, line_start) in a.iter_mut().zip(&breaks) {
            v.decor_mut()
                .set_prefix(if *line_start { "\n  " } else { " " });
            v.decor_mut().set_suffix("");
        }
        a.set_trailing("\n");
        a.set_trailing_comma(true);
        return;
    }
    let single = a.to_string();
    if indent.saturating_add(single.trim().len()) <= WIDTH || a.len() < 2 {
        return;
    }
    let mut column = 0;
    for (i, v) in a.iter_mut().enumerate() {
        let len = items.get(i).map_or(0, String::len) + 1;
        let decor = v.decor_mut();
        if column == 0 || column + 1 + len > WIDTH {
            decor.set_prefix("\n  ");
            column = 2 + len;
        } else {
            decor.set_prefix(" ");
            column += 1 + len;
        }
        decor.set_suffix("");
    }
    a.set_trailing("\n");
    a.set_trailing_comma(true);
}

/// Whether the items, on lines broken before each item marked in
/// `breaks`, two-space indented with a comma after each, fit in [`WIDTH`].
fn fits(items: &[String], breaks: &[bool]) -> bool {
    let mut column = 0;
    for (item, line_start) in items.iter().zip(breaks) {
        column = if *line_start { 2 } else { column + 1 } + item.len() + 1;
        if column > WIDTH {
            return false;
        }
    }
    true
}
