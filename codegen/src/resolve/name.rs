//! Names against the grammar of [`crate::name`]: a refused name is a
//! located `BadName` error at the name's value.

use toml::Spanned;

use super::Resolver;
use crate::diagnostic::{Diagnostic, ErrorKind};
use crate::name;

impl Resolver<'_> {
    /// Checks a written name; `what` is `policy`, `rule` or `invariant`.
    /// Records an error and returns `false` when the grammar refuses it.
    pub(super) fn check_name(&mut self, what: &str, name: &Spanned<String>) -> bool {
        let Err(why) = name::check(name.get_ref()) else {
            return true;
        };
        self.error(
            Diagnostic::new(
                ErrorKind::BadName,
                format!("bad {what} name `{}`", shown(name.get_ref())),
                name.span(),
                why.describe(),
            )
            .with_help(format!(
                "a name is kebab-case: lowercase ASCII words of `a`-`z` and `0`-`9` joined by `-`, starting with a letter, at most {} bytes (e.g. `pvm-efer-setup`)",
                name::MAX_LEN
            )),
        );
        false
    }
}

/// The refused name for a one-line message: escaped (`\n`, `\u{202e}`)
/// and cut after 40 characters, so the message itself stays one line of
/// plain text whatever the name holds.
fn shown(name: &str) -> String {
    const KEEP: usize = 40;
    let mut out: String = name
        .chars()
        .take(KEEP)
        .flat_map(char::escape_debug)
        .collect();
    if name.chars().count() > KEEP {
        out.push('…');
    }
    out
}
