//! Judging a `reason`: a reason is a sentence that says why a rule or an
//! invariant exists. It is judged by its words, not by its exact text, so
//! `"TODO."`, `"  Fixme "` and `"see above"` are refused like `"TODO"`.
//!
//! The floor the compiler enforces: after lowercasing and turning every
//! character that is not a letter or a digit into a space, the reason
//!
//! * does not start with a placeholder marker word (`todo`, `tbd`, `tba`,
//!   `fixme`, `xxx`, `wip`, `placeholder`; a reason may cite an upstream
//!   "TODO" later on),
//! * is not a placeholder phrase (`n/a`, `none`, `reason`, `see above`,
//!   `same as above`, ...), and
//! * has at least [`MIN_WORDS`] different words that contain a letter.
//!
//! `pvgate lint` warns above this floor (short or copied reasons).

/// The fewest different words (each with a letter) a reason may have.
pub const MIN_WORDS: usize = 3;

/// Words that mark unfinished text when a reason starts with them.
const MARKERS: [&str; 7] = ["todo", "tbd", "tba", "fixme", "xxx", "wip", "placeholder"];

/// Whole reasons (normalised) that say nothing.
const PLACEHOLDERS: [&str; 22] = [
    "n a",
    "na",
    "none",
    "nothing",
    "reason",
    "the reason",
    "no reason",
    "reason here",
    "reason goes here",
    "see above",
    "see below",
    "as above",
    "as below",
    "as before",
    "same as above",
    "same as before",
    "same as below",
    "see previous rule",
    "see the rule above",
    "to be done",
    "to be determined",
    "not applicable",
];

/// Why a reason says nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReasonProblem {
    /// Empty, or only punctuation and spaces.
    Empty,
    /// It starts with a placeholder marker word (the word).
    Marker(&'static str),
    /// The whole reason is a placeholder phrase.
    Placeholder,
    /// Fewer than [`MIN_WORDS`] different words with letters (how many).
    TooFewWords(usize),
}

/// The reason's words: lowercase, split at every character that is not a
/// letter or a digit.
fn words(reason: &str) -> Vec<String> {
    reason
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// What is wrong with a reason, or `None` if it may say why.
pub fn problem(reason: &str) -> Option<ReasonProblem> {
    let all = words(reason);
    if all.is_empty() {
        return Some(ReasonProblem::Empty);
    }
    if let Some(m) = MARKERS
        .iter()
        .find(|m| all.first().is_some_and(|w| w == *m))
    {
        return Some(ReasonProblem::Marker(m));
    }
    if PLACEHOLDERS.contains(&all.join(" ").as_str()) {
        return Some(ReasonProblem::Placeholder);
    }
    let mut lettered: Vec<&String> = all
        .iter()
        .filter(|w| w.chars().any(char::is_alphabetic))
        .collect();
    lettered.sort();
    lettered.dedup();
    if lettered.len() < MIN_WORDS {
        return Some(ReasonProblem::TooFewWords(lettered.len()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_judged_by_words_not_by_exact_text() {
        assert_eq!(problem("TODO."), Some(ReasonProblem::Marker("todo")));
        assert_eq!(problem("see above."), Some(ReasonProblem::Placeholder));
        assert_eq!(problem("N/A"), Some(ReasonProblem::Placeholder));
        assert_eq!(problem(" ... "), Some(ReasonProblem::Empty));
        assert_eq!(problem("brand string"), Some(ReasonProblem::TooFewWords(2)));
        assert_eq!(problem("a a a a"), Some(ReasonProblem::TooFewWords(1)));
        assert_eq!(problem("crosvm writes EFER at boot"), None);
        assert_eq!(
            problem("a stopgap (TODO in pKVM-IA) that strict removes"),
            None
        );
        // Unicode tricks: a zero-width space splits like punctuation, and
        // full-width letters are one word, not a sentence.
        assert_eq!(
            problem("TODO\u{200b}: later"),
            Some(ReasonProblem::Marker("todo"))
        );
        assert_eq!(problem("ＴＯＤＯ."), Some(ReasonProblem::TooFewWords(1)));
        assert_eq!(
            problem("\u{202e}see above"),
            Some(ReasonProblem::Placeholder)
        );
    }
}
