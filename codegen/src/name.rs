//! The name grammar: what a policy, rule or invariant `name` may be.
//!
//! A name is kebab-case ASCII (`[a-z][a-z0-9]*(-[a-z0-9]+)*`), at most
//! [`MAX_LEN`] bytes. Names reach reports, diagnostics and generated code;
//! with no quote, backslash, comment delimiter, line break or non-ASCII
//! character in the grammar, no name can change the structure of what it is
//! written into (issue 8: a rule name holding a newline ended a `//`
//! comment of the Rust tables and added a match arm). The JSON Schema
//! carries the same [`PATTERN`] and [`MAX_LEN`].

/// The longest name, in bytes. The longest shipped name is 37 bytes
/// (`pvm-no-host-controlled-security-cpuid`); 64 leaves room for
/// descriptive names while a name still fits one line of a diagnostic,
/// a table comment or a review report.
pub const MAX_LEN: usize = 64;

/// The grammar as a regular expression (for the JSON Schema; [`check`] is
/// the compiler's implementation of it).
pub const PATTERN: &str = "^[a-z][a-z0-9]*(-[a-z0-9]+)*$";

/// Why a name is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// A line break, tab or other control character (checked before
    /// anything else: it is what would break a comment or a line of
    /// generated code).
    Control,
    /// The name is longer than [`MAX_LEN`] bytes.
    TooLong,
    /// The first character is not a lowercase ASCII letter.
    BadStart,
    /// A character outside `a-z`, `0-9` and `-`.
    BadChar,
    /// A `-` at the end or next to another `-`.
    BadHyphen,
}

impl NameError {
    /// What is wrong, lowercase, for a diagnostic label.
    pub fn describe(self) -> &'static str {
        match self {
            NameError::Empty => "the name is empty",
            NameError::Control => "a line break or control character cannot appear in a name",
            NameError::TooLong => "longer than 64 bytes",
            NameError::BadStart => "a name starts with a lowercase letter `a`-`z`",
            NameError::BadChar => "only `a`-`z`, `0`-`9` and `-` may appear in a name",
            NameError::BadHyphen => "a `-` joins two words: none at the end, never two in a row",
        }
    }
}

/// Checks `name` against the grammar.
pub fn check(name: &str) -> Result<(), NameError> {
    let bytes = name.as_bytes();
    let Some(&first) = bytes.first() else {
        return Err(NameError::Empty);
    };
    if name.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    if bytes.len() > MAX_LEN {
        return Err(NameError::TooLong);
    }
    if !first.is_ascii_lowercase() {
        return Err(NameError::BadStart);
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    {
        return Err(NameError::BadChar);
    }
    if name.ends_with('-') || name.contains("--") {
        return Err(NameError::BadHyphen);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kebab_case_names_pass_and_others_say_why_not() {
        for ok in ["a", "pvm-efer", "leaf7-2", "x9-9x"] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        assert_eq!(check(""), Err(NameError::Empty));
        assert_eq!(check(&"a".repeat(MAX_LEN)), Ok(()));
        assert_eq!(check(&"a".repeat(MAX_LEN + 1)), Err(NameError::TooLong));
        assert_eq!(check("9a"), Err(NameError::BadStart));
        assert_eq!(check("-a"), Err(NameError::BadStart));
        assert_eq!(check("Ab"), Err(NameError::BadStart));
        assert_eq!(check("aB"), Err(NameError::BadChar));
        assert_eq!(check("a_b"), Err(NameError::BadChar));
        assert_eq!(check("a\nb"), Err(NameError::Control));
        assert_eq!(check("a\tb"), Err(NameError::Control));
        assert_eq!(check("a\0"), Err(NameError::Control));
        // A line break is named first, even in a name that is also too
        // long and has other bad characters (the issue-8 injection).
        let injection = format!("pvm-always-allowed\n{}", "c => Some(RuleId(5)),".repeat(4));
        assert_eq!(check(&injection), Err(NameError::Control));
        assert_eq!(check("a\u{202e}"), Err(NameError::BadChar));
        assert_eq!(check("a-"), Err(NameError::BadHyphen));
        assert_eq!(check("a--b"), Err(NameError::BadHyphen));
    }
}
