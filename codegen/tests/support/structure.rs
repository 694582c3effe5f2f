//! The token structure of generated Rust and C, to prove that no string
//! from a policy changes it: two outputs have the same structure when they
//! tokenize to the same tokens with every literal replaced by a
//! placeholder, have the same lines, and keep comments on the same lines.
//!
//! Shared by `codegen/tests/hostile_strings.rs` and the `emit_structure`
//! fuzz target (included there with `#[path]`).

#![allow(dead_code)]

use std::str::FromStr;

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// Whether every character is printable ASCII, a newline or a tab: no CR,
/// NUL, line separator, bidi control or other text a reader or a compiler
/// could see differently from the emitter's intent.
pub fn plain_text(out: &str) -> Result<(), String> {
    match out
        .char_indices()
        .find(|(_, c)| !(matches!(c, ' '..='~' | '\n' | '\t')))
    {
        Some((at, c)) => Err(format!("{c:?} at byte {at}")),
        None => Ok(()),
    }
}

/// Rust tokens with literals replaced by `lit`. Comments are dropped by
/// the tokenizer, doc comments become `#[doc = lit]`.
pub fn rust_tokens(src: &str) -> Result<Vec<String>, String> {
    let stream = TokenStream::from_str(src).map_err(|e| format!("does not tokenize: {e}"))?;
    let mut out = Vec::new();
    flatten(stream, &mut out);
    Ok(out)
}

fn flatten(stream: TokenStream, out: &mut Vec<String>) {
    for tree in stream {
        match tree {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::None => ("<none>", "</none>"),
                };
                out.push(open.to_string());
                flatten(g.stream(), out);
                out.push(close.to_string());
            }
            TokenTree::Ident(i) => out.push(format!("ident {i}")),
            TokenTree::Punct(p) => out.push(format!(
                "punct {}{}",
                p.as_char(),
                if p.spacing() == Spacing::Joint {
                    " joint"
                } else {
                    ""
                }
            )),
            TokenTree::Literal(_) => out.push(String::from("lit")),
        }
    }
}

/// Rust outputs with the same structure: same tokens up to literal
/// contents, same number of lines, `//` comments on the same lines.
pub fn same_rust_structure(hostile: &str, plain: &str) -> Result<(), String> {
    plain_text(hostile).map_err(|e| format!("hostile output holds {e}"))?;
    let (h, p) = (rust_tokens(hostile)?, rust_tokens(plain)?);
    first_difference(&h, &p)?;
    same_comment_lines(hostile, plain, "//")
}

/// `prefix`-comment lines (after indentation) at the same line numbers, and
/// the same number of lines.
fn same_comment_lines(hostile: &str, plain: &str, prefix: &str) -> Result<(), String> {
    let (h, p): (Vec<&str>, Vec<&str>) = (hostile.lines().collect(), plain.lines().collect());
    if h.len() != p.len() {
        return Err(format!("{} lines, plain has {}", h.len(), p.len()));
    }
    for (i, (a, b)) in h.iter().zip(&p).enumerate() {
        let comment = |l: &str| l.trim_start().starts_with(prefix);
        if comment(a) != comment(b) {
            return Err(format!("line {}: {a:?} against {b:?}", i + 1));
        }
    }
    Ok(())
}

fn first_difference(h: &[String], p: &[String]) -> Result<(), String> {
    if let Some(i) = (0..h.len().min(p.len())).find(|&i| h[i] != p[i]) {
        return Err(format!(
            "token {i}: {:?} against {:?} (context {:?})",
            h[i],
            p[i],
            &p[i.saturating_sub(5)..(i + 5).min(p.len())]
        ));
    }
    if h.len() != p.len() {
        return Err(format!("{} tokens, plain has {}", h.len(), p.len()));
    }
    Ok(())
}

/// A C token (after translation phases 1 and 2: trigraphs and line
/// splices). Literal and comment contents are not kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CToken {
    /// A string literal.
    Str,
    /// A character constant.
    Char,
    /// A `/* */` or `//` comment.
    Comment,
    /// A number.
    Number,
    /// An identifier or keyword.
    Ident(String),
    /// One punctuation character.
    Punct(char),
    /// `#` opening a preprocessing directive (first on its logical line).
    Directive,
    /// The end of a directive's logical line.
    DirectiveEnd,
}

/// Translation phase 1 (trigraphs, which `-std=c11` honours) and 2
/// (backslash-newline splices).
fn phases_1_2(src: &str) -> String {
    let mut s = src.to_string();
    for (tri, c) in [
        ("??=", "#"),
        ("??/", "\\"),
        ("??'", "^"),
        ("??(", "["),
        ("??)", "]"),
        ("??!", "|"),
        ("??<", "{"),
        ("??>", "}"),
        ("??-", "~"),
    ] {
        s = s.replace(tri, c);
    }
    s.replace("\\\r\n", "").replace("\\\n", "")
}

/// Tokenizes C source: strings, characters, comments, identifiers,
/// numbers, punctuation and directive boundaries.
pub fn c_tokens(src: &str) -> Result<Vec<CToken>, String> {
    let s: Vec<char> = phases_1_2(src).chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line_start = true;
    let mut in_directive = false;
    while i < s.len() {
        let c = s[i];
        if c == '\n' {
            if in_directive {
                out.push(CToken::DirectiveEnd);
                in_directive = false;
            }
            line_start = true;
            i += 1;
            continue;
        }
        if c == ' ' || c == '\t' || c == '\r' || c == '\x0b' || c == '\x0c' {
            i += 1;
            continue;
        }
        if c == '/' && s.get(i + 1) == Some(&'*') {
            let end = (i + 2..s.len().saturating_sub(1))
                .find(|&j| s[j] == '*' && s[j + 1] == '/')
                .ok_or("unterminated comment")?;
            out.push(CToken::Comment);
            i = end + 2;
            continue;
        }
        if c == '/' && s.get(i + 1) == Some(&'/') {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
            out.push(CToken::Comment);
            continue;
        }
        let first_on_line = line_start;
        line_start = false;
        if c == '"' || c == '\'' {
            i += 1;
            loop {
                match s.get(i) {
                    None | Some('\n') => return Err(format!("unterminated {c} literal")),
                    Some('\\') => i += 2,
                    Some(&d) if d == c => break,
                    Some(_) => i += 1,
                }
            }
            i += 1;
            out.push(if c == '"' { CToken::Str } else { CToken::Char });
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == '_') {
                i += 1;
            }
            out.push(CToken::Ident(s[start..i].iter().collect()));
            continue;
        }
        if c.is_ascii_digit() {
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == '.') {
                i += 1;
            }
            out.push(CToken::Number);
            continue;
        }
        if c == '#' && first_on_line {
            in_directive = true;
            out.push(CToken::Directive);
            i += 1;
            continue;
        }
        if c.is_ascii_punctuation() {
            out.push(CToken::Punct(c));
            i += 1;
            continue;
        }
        return Err(format!("stray {c:?} in C source"));
    }
    if in_directive {
        out.push(CToken::DirectiveEnd);
    }
    Ok(out)
}

/// C outputs with the same structure: same tokens (comments and literals
/// as placeholders, directive boundaries kept) and the same lines.
pub fn same_c_structure(hostile: &str, plain: &str) -> Result<(), String> {
    plain_text(hostile).map_err(|e| format!("hostile output holds {e}"))?;
    let show = |t: Vec<CToken>| t.into_iter().map(|t| format!("{t:?}")).collect::<Vec<_>>();
    let (h, p) = (show(c_tokens(hostile)?), show(c_tokens(plain)?));
    first_difference(&h, &p)?;
    if hostile.lines().count() != plain.lines().count() {
        return Err(format!(
            "{} lines, plain has {}",
            hostile.lines().count(),
            plain.lines().count()
        ));
    }
    Ok(())
}
