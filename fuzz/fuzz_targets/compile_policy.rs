//! Any bytes, as (lossy UTF-8) policy text, into the policy compiler:
//! it must return located errors or an IR, never panic. Errors render,
//! and every span lies within (and on character boundaries of) the text
//! it refers to; an IR emits Rust tables and a digest.
#![no_main]

use std::ops::Range;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn policy_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policy"))
}

fn check_span(span: &Range<usize>, text: &str, what: &str) {
    assert!(
        span.start <= span.end && span.end <= text.len(),
        "{what} span {span:?} outside a text of {} bytes",
        text.len()
    );
    assert!(
        text.is_char_boundary(span.start) && text.is_char_boundary(span.end),
        "{what} span {span:?} splits a character"
    );
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match pvgate_codegen::compile_in_dir(&text, policy_dir()) {
        Err(errors) => {
            assert!(
                !errors.diagnostics.is_empty(),
                "an error without diagnostics"
            );
            let rendered = errors.render("fuzz.toml", &text);
            assert!(rendered.contains("error"));
            for d in &errors.diagnostics {
                let source = d.file.as_ref().map_or(&*text, |f| f.text.as_str());
                check_span(&d.span, source, "primary");
                for (span, _) in &d.related {
                    check_span(span, source, "related");
                }
            }
        }
        Ok(ir) => {
            let rust = pvgate_codegen::emit::rust(&ir, "fuzz.toml");
            assert!(!rust.is_empty());
            let digest = pvgate_codegen::digest::digest(&ir);
            assert_eq!(pvgate_codegen::digest::hex(&digest).len(), 64);
        }
    }
});
