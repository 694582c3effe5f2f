//! The compiler never panics on bad input: random edits of a real policy
//! (deleted, duplicated or replaced bytes, swapped lines) and random text
//! either compile or give located errors whose spans lie inside the text.
#![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)] // test and tool code: a panic is a failed run

use proptest::prelude::*;

#[test]
fn the_unedited_policy_compiles_here() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy");
    assert!(pvgate_codegen::compile_in_dir(&default_text(), &dir).is_ok());
}

fn default_text() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policy/default.toml"
    ))
    .unwrap()
}

fn check(text: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy");
    if let Err(e) = pvgate_codegen::compile_in_dir(text, &dir) {
        assert!(!e.diagnostics.is_empty());
        for d in &e.diagnostics {
            let source = d.file.as_ref().map_or(text, |f| f.text.as_str());
            assert!(
                d.span.start <= d.span.end && d.span.end <= source.len(),
                "span {:?} outside the text",
                d.span
            );
            let rendered = d.render("p.toml", source);
            assert!(rendered.contains("error: "), "{rendered}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn edited_policies_never_panic(edits in proptest::collection::vec((any::<usize>(), 0u8..4, any::<u8>()), 1..6)) {
        let mut bytes = default_text().into_bytes();
        for (at, op, byte) in edits {
            if bytes.is_empty() { break; }
            let at = at % bytes.len();
            match op {
                0 => { bytes.remove(at); }
                1 => { let b = bytes[at]; bytes.insert(at, b); }
                2 => { let alphabet = b" =[]\"x0,.#\n"; bytes[at] = alphabet[byte as usize % alphabet.len()] },
                _ => {
                    let end = (at + 1 + byte as usize).min(bytes.len());
                    bytes.drain(at..end);
                }
            }
        }
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn random_text_never_panics(text in "[\\[\\]a-z=\"0-9x,. \n_-]{0,300}") {
        check(&text);
    }
}
