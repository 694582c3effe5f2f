//! No string from a policy changes the structure of generated code (issue
//! 8, finding 1). Every string an emitter writes (the policy's name, rule
//! names, reasons, the description, the policy path) is set to hostile
//! text: line breaks, comment delimiters, quotes, backslashes, `#`, NUL,
//! trigraphs, bidi controls, 10 KB. The Rust tables and the C header must
//! then tokenize exactly like the same policy with plain strings, literal
//! contents aside, and hold nothing but printable ASCII; the hostile C
//! header compiles with `-Wall -Wextra -Werror`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

#[path = "support/structure.rs"]
mod structure;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use pvgate_codegen::emit::{Shape, rust_shaped};
use pvgate_codegen::{Ir, c_emit, compile_in_dir};

/// Hostile texts: each alone, then all together.
fn hostile() -> Vec<String> {
    let parts = [
        "\n",
        "\r",
        "\r\n",
        "*/",
        "/*",
        "\"",
        "\\",
        "\\\n",
        "#",
        "\n#define PVGATE_NO_RULE 0\n",
        "\0",
        "??/",
        "??=",
        "\u{202e}",
        "\u{2066}",
        "\u{2028}",
        "\u{2029}",
        "\u{85}",
        "\u{feff}",
        "é",
        "'",
        "`",
        "}",
        "\n    _ => Some(RuleId(0)),\n//",
        "*/ return 0; /*",
        "\\u{41}",
        "\\x41",
        "%s%n",
    ];
    let mut all: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
    all.push(parts.concat());
    let mut big = String::new();
    while big.len() < 10 * 1024 {
        big.push_str(&parts.concat());
    }
    all.push(big);
    all
}

fn policy_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy")
}

/// Policies covering every emitter path: MSR singles and ranges, CPUID
/// leaf ranges and subleaves, PV calls, `match` and sorted shapes.
fn policies() -> Vec<(String, Ir)> {
    let mut texts: Vec<(String, String)> = ["default.toml", "strict.toml"]
        .iter()
        .map(|n| {
            (
                n.to_string(),
                std::fs::read_to_string(policy_dir().join(n)).unwrap(),
            )
        })
        .collect();
    texts.push((
        String::from("sample"),
        pvgate_codegen::sample::random_policy(
            11,
            pvgate_codegen::sample::SampleSize {
                msr_ranges: 100,
                cpuid_leaves: 8,
            },
        ),
    ));
    texts
        .into_iter()
        .map(|(n, t)| {
            let ir = compile_in_dir(&t, &policy_dir()).unwrap_or_else(|e| panic!("{n}: {e:?}"));
            (n, ir)
        })
        .collect()
}

/// `ir` with every string the emitters write set to `text` (a text over
/// 1 KiB only in the first rules, to keep the test fast in debug builds:
/// every rule is emitted by the same code).
fn with_strings(ir: &Ir, text: &str) -> Ir {
    let mut ir = ir.clone();
    ir.name = text.to_string();
    ir.description = text.to_string();
    let rules = if text.len() > 1024 { 4 } else { usize::MAX };
    for r in ir.rules.iter_mut().take(rules) {
        r.name = text.to_string();
        r.reason = text.to_string();
    }
    ir
}

/// Runs `check` over every policy and hostile text, for the string set
/// directly in the IR (what any front end could let through).
fn each_case(mut check: impl FnMut(&str, &Ir, &str, &Ir, &str)) {
    for (name, ir) in policies() {
        let plain = with_strings(&ir, "plain");
        let texts = hostile();
        // The large sampled policy gets the combined texts only (speed).
        let skip = if name == "sample" { texts.len() - 2 } else { 0 };
        for text in texts.into_iter().skip(skip) {
            let evil = with_strings(&ir, &text);
            let path = format!("policies/{text}/evil.toml");
            check(&name, &evil, &path, &plain, "policies/plain/plain.toml");
        }
    }
}

#[test]
fn hostile_strings_do_not_change_the_rust_token_structure() {
    let mut plain_out = std::collections::HashMap::new();
    each_case(|name, evil, path, plain, plain_path| {
        for shape in [Shape::Match, Shape::Sorted, Shape::Bitmap, Shape::Auto] {
            let h = rust_shaped(evil, path, shape);
            let p = plain_out
                .entry((name.to_string(), shape as u8))
                .or_insert_with(|| rust_shaped(plain, plain_path, shape));
            if let Err(e) = structure::same_rust_structure(&h, p) {
                panic!("{name} ({shape:?}), strings {path:?}: {e}");
            }
        }
    });
}

#[test]
fn hostile_strings_do_not_change_the_c_token_structure() {
    let mut plain_out = std::collections::HashMap::new();
    each_case(|name, evil, path, plain, plain_path| {
        let h = c_emit::c(evil, path);
        let p = plain_out
            .entry(name.to_string())
            .or_insert_with(|| c_emit::c(plain, plain_path));
        if let Err(e) = structure::same_c_structure(&h, p) {
            panic!("{name}, strings {path:?}: {e}");
        }
    });
}

#[test]
fn hostile_text_never_appears_verbatim() {
    for (name, ir) in policies() {
        for text in hostile() {
            if text == "\n" || text.chars().all(|c| matches!(c, ' '..='~')) {
                continue;
            }
            let evil = with_strings(&ir, &text);
            let rust = rust_shaped(&evil, &text, Shape::Auto);
            let c = c_emit::c(&evil, &text);
            assert!(
                !rust.contains(&text),
                "{name}: Rust holds {text:?} verbatim"
            );
            assert!(!c.contains(&text), "{name}: C holds {text:?} verbatim");
        }
    }
}

/// Hostile text in the fields the language accepts it in (the description
/// and reasons), through the whole front end.
#[test]
fn hostile_descriptions_and_reasons_compile_to_the_plain_structure() {
    let text = std::fs::read_to_string(policy_dir().join("default.toml")).unwrap();
    let set = |value: &str| -> String {
        text.lines()
            .map(|l| {
                if l.starts_with("reason = ") {
                    format!(
                        "reason = {}",
                        toml_string(&format!("because the SDM says so {value}"))
                    )
                } else if l.starts_with("description = ") {
                    format!("description = {}", toml_string(value))
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let plain = compile_in_dir(&set("plain"), &policy_dir()).unwrap();
    for h in hostile() {
        let evil = compile_in_dir(&set(&h), &policy_dir())
            .unwrap_or_else(|e| panic!("{h:?}: {:?}", e.diagnostics));
        assert!(evil.rules.iter().all(|r| r.reason.contains(&h)));
        let (hr, pr) = (
            pvgate_codegen::emit::rust(&evil, "p.toml"),
            pvgate_codegen::emit::rust(&plain, "p.toml"),
        );
        structure::same_rust_structure(&hr, &pr).unwrap_or_else(|e| panic!("{h:?}: {e}"));
        let (hc, pc) = (c_emit::c(&evil, "p.toml"), c_emit::c(&plain, "p.toml"));
        structure::same_c_structure(&hc, &pc).unwrap_or_else(|e| panic!("{h:?}: {e}"));
    }
}

/// A TOML basic string holding `s`.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The hostile C header compiles without a warning (a `*/` or `/*` in a
/// comment, a trigraph or a stray byte would warn or fail), and reads back
/// the strings it was given.
#[test]
fn the_hostile_c_header_compiles_with_werror_and_keeps_the_strings() {
    let (_, ir) = policies().into_iter().next().unwrap();
    let text = hostile().iter().rev().nth(1).unwrap().clone();
    let evil = with_strings(&ir, &text);
    let header = c_emit::c(&evil, &format!("dir/{text}/evil.toml"));
    let dir = std::env::temp_dir().join(format!("pvgate-hostile-c-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("policy.h"), &header).unwrap();
    let driver = "#include <stdio.h>\n#include <string.h>\n#include \"policy.h\"\nint main(void)\n{\n\tconst struct pvgate_rule *r = pvgate_rule(0);\n\tfwrite(PVGATE_POLICY_NAME, 1, sizeof(PVGATE_POLICY_NAME) - 1, stdout);\n\tfwrite(r->reason, 1, strlen(r->reason), stdout);\n\treturn 0;\n}\n";
    std::fs::write(dir.join("main.c"), driver).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| String::from("cc"));
    let out = Command::new(&cc)
        .current_dir(&dir)
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-o",
            "main",
            "main.c",
        ])
        .output()
        .expect("a C compiler runs (set CC)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(dir.join("main"))
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    // The name as a whole (NUL included, as sizeof counts it); the reason
    // up to its first NUL, as C strings end there.
    let name_bytes = text.as_bytes();
    let reason = text.split('\0').next().unwrap().as_bytes();
    let mut expected = name_bytes.to_vec();
    expected.extend_from_slice(reason);
    assert!(
        run.stdout == expected,
        "the C strings differ from the policy's"
    );
    let _ = std::io::stdout().flush();
}
