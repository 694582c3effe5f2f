//! The tools around a policy (issue 12, item 8): `init`, `fmt`,
//! `completions`, `man` and `lint --explain`: exit codes and output.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use std::path::{Path, PathBuf};

use common::{pvgate, root};

/// A scratch `policy/` tree (with the shipped invariant files, so includes
/// resolve) under the system temp dir, unique per test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("pvgate-tools-{}-{name}", std::process::id()))
        .join("policy");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("invariants")).unwrap();
    for f in ["protected-baseline.toml", "schema.json"] {
        std::fs::copy(
            root().join("policy/invariants").join(f),
            dir.join("invariants").join(f),
        )
        .unwrap();
    }
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The shipped files `.ci/run` formats.
fn shipped() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["policy", "policy/invariants", "policy/examples"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                out.push(p);
            }
        }
    }
    out.sort();
    assert!(out.len() >= 5, "{out:?}");
    out
}

#[test]
fn init_writes_a_starter_that_checks_lints_and_formats_clean() {
    for kind in ["protected", "normal"] {
        let dir = scratch(&format!("init-{kind}"));
        let run = pvgate(&["init", "--kind", kind, "my-vm"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(
            run.stdout
                .contains("include = [\"invariants/protected-baseline.toml\"]")
        );
        assert!(run.stdout.starts_with("# pvgate policy `my-vm`"));
        let file = dir.join("my-vm.toml");
        std::fs::write(&file, &run.stdout).unwrap();
        let check = pvgate(&["check", s(&file)]);
        assert_eq!(check.code, 0, "{kind}: {}", check.stderr);
        assert!(check.stdout.contains("name:   my-vm"));
        let lint = pvgate(&["lint", "--deny-warnings", s(&file)]);
        assert_eq!(lint.code, 0, "{kind}: {}", lint.stdout);
        let fmt = pvgate(&["fmt", "--check", s(&file)]);
        assert_eq!(fmt.code, 0, "{kind}: {}", fmt.stdout);
    }
}

#[test]
fn init_out_writes_a_new_file_and_refuses_to_overwrite_or_bad_names() {
    let dir = scratch("init-out");
    let file = dir.join("fresh.toml");
    let run = pvgate(&["init", "--out", s(&file), "fresh"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("next: cargo pvgate check"));
    assert_eq!(pvgate(&["check", s(&file)]).code, 0);
    let again = pvgate(&["init", "--out", s(&file), "fresh"]);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("cannot create"), "{}", again.stderr);
    let bad = pvgate(&["init", "My_VM"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("is not a policy name"),
        "{}",
        bad.stderr
    );
    // Outside a policy tree the include is left as a comment; still checks.
    let lone = std::env::temp_dir().join(format!("pvgate-tools-{}-lone.toml", std::process::id()));
    let _ = std::fs::remove_file(&lone);
    assert_eq!(pvgate(&["init", "-o", s(&lone), "lone"]).code, 0);
    let text = std::fs::read_to_string(&lone).unwrap();
    assert!(text.contains("# include = ["), "{text}");
    assert_eq!(pvgate(&["check", s(&lone)]).code, 0);
    let _ = std::fs::remove_file(&lone);
}

#[test]
fn fmt_check_passes_on_every_shipped_file() {
    let files: Vec<String> = shipped().iter().map(|p| s(p).to_string()).collect();
    let mut args = vec!["fmt", "--check"];
    args.extend(files.iter().map(String::as_str));
    let run = pvgate(&args);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.is_empty());
}

/// A shuffled, badly laid out copy of a canonical file: keys of every table
/// in reverse order, every line indented, `=` padded, blank lines doubled,
/// trailing spaces. Comments stay where they were.
fn mess(text: &str, reorder: bool) -> String {
    let is_key = |l: &str| {
        l.split_once('=').is_some_and(|(k, _)| {
            !k.trim().is_empty()
                && k.trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() && !lines[i].starts_with('[') {
        out.push_str(lines[i]);
        out.push('\n');
        i += 1;
    }
    while i < lines.len() {
        let header = lines[i];
        i += 1;
        let mut body = Vec::new();
        while i < lines.len() && !lines[i].starts_with('[') {
            body.push(lines[i]);
            i += 1;
        }
        let mut tail = body.len();
        while tail > 0 && (body[tail - 1].trim().is_empty() || body[tail - 1].starts_with('#')) {
            tail -= 1;
        }
        let mut entries: Vec<Vec<&str>> = Vec::new();
        let mut pending = Vec::new();
        for l in &body[..tail] {
            if l.starts_with('#') || l.trim().is_empty() {
                pending.push(*l);
            } else if is_key(l) {
                pending.push(*l);
                entries.push(std::mem::take(&mut pending));
            } else {
                entries.last_mut().unwrap().push(*l);
            }
        }
        if reorder {
            entries.reverse();
        }
        out.push_str(&format!("   {header}   \n\n"));
        for e in entries {
            for l in e {
                out.push_str(&format!("    {}  \n", l.replacen(" = ", "   =   ", 1)));
            }
            out.push('\n');
        }
        for l in &body[tail..] {
            out.push_str(l);
            out.push('\n');
        }
        out.push_str("\n\n");
    }
    out
}

#[test]
fn fmt_of_a_shuffled_badly_indented_copy_gives_back_the_shipped_file_and_digest() {
    let dir = scratch("fmt-shipped");
    for path in shipped() {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let policy_language = !name.ends_with(".trace.toml");
        let messy = mess(&text, policy_language);
        assert_ne!(messy, text, "{name}: the copy must be messy");
        let sub = path.parent().unwrap().file_name().unwrap();
        let copy = if sub == "policy" {
            dir.join(&name)
        } else {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
            dir.join(sub).join(format!("messy-{name}"))
        };
        std::fs::write(&copy, &messy).unwrap();
        let is_policy = text.contains("\n[policy]\n");
        let digest = |p: &Path| {
            let r = pvgate(&["digest", s(p)]);
            assert_eq!(r.code, 0, "{}: {}", p.display(), r.stderr);
            r.stdout
        };
        if is_policy {
            assert_eq!(
                digest(&copy),
                digest(&path),
                "{name}: the messy copy compiles the same"
            );
        }
        let check = pvgate(&["fmt", "--check", s(&copy)]);
        assert_eq!(check.code, 1, "{name}: --check finds the mess");
        assert!(check.stdout.contains(&format!("--- {}", s(&copy))));
        assert_eq!(
            std::fs::read_to_string(&copy).unwrap(),
            messy,
            "--check writes nothing"
        );
        let run = pvgate(&["fmt", s(&copy)]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let formatted = std::fs::read_to_string(&copy).unwrap();
        assert_eq!(formatted, text, "{name}: fmt gives back the canonical file");
        if is_policy {
            assert_eq!(
                digest(&copy),
                digest(&path),
                "{name}: fmt never changes the digest"
            );
        }
        let again = pvgate(&["fmt", "--check", s(&copy)]);
        assert_eq!(again.code, 0, "{name}: idempotent\n{}", again.stdout);
    }
}

#[test]
fn fmt_keeps_every_comment_and_orders_keys_canonically() {
    let dir = scratch("fmt-comments");
    let file = dir.join("commented.toml");
    std::fs::write(
        &file,
        "# top comment\n\n\n[policy]\n  cpuid-violations=\"filter\"\n  # the name\n  name   = \"commented\"\n\n  description = \"a policy whose comments fmt keeps\"   # trailing\nformat = 1\n# before the rule\n[[pv]]\nreason = \"the baseline requires these calls to run and destroy the VM\"\nverdict = \"allow\"\nphase = [ \"setup\",\"running\" ]\nvm = [\"protected\"]\ncall = [\"vcpu_run\",   \"vm_destroy\"]\nname = \"pvm-run\"\n[[pv]]\nname = \"pvm-finalize\"\ncall = \"vm_finalize\"\nvm = [\"protected\"]\nphase = [\"setup\"]\nverdict = \"allow\"\nreason = \"the baseline requires it: the host ends the setup\"\n\n\n# the end\n",
    )
    .unwrap();
    let before = pvgate(&["digest", s(&file)]);
    assert_eq!(before.code, 0, "{}", before.stderr);
    assert_eq!(pvgate(&["fmt", s(&file)]).code, 0);
    let out = std::fs::read_to_string(&file).unwrap();
    insta::assert_snapshot!(out);
    for comment in [
        "# top comment",
        "# the name",
        "# trailing",
        "# before the rule",
        "# the end",
    ] {
        assert!(out.contains(comment), "{comment} lost:\n{out}");
    }
    assert_eq!(pvgate(&["digest", s(&file)]).stdout, before.stdout);
    assert_eq!(pvgate(&["fmt", "--check", s(&file)]).code, 0);
}

#[test]
fn fmt_refuses_text_that_is_not_toml() {
    let dir = scratch("fmt-bad");
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[policy\nname = \n").unwrap();
    let run = pvgate(&["fmt", "--check", s(&file)]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("cannot format"), "{}", run.stderr);
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = pvgate(&["completions", shell]);
        assert_eq!(run.code, 0, "{shell}: {}", run.stderr);
        for cmd in ["check", "fmt", "init", "lint"] {
            assert!(run.stdout.contains(cmd), "{shell}: {cmd}");
        }
    }
    assert_eq!(pvgate(&["completions", "tcsh"]).code, 2);
}

#[test]
fn man_pages_come_from_the_clap_definitions() {
    let run = pvgate(&["man"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(".TH pvgate 1"));
    assert!(run.stdout.contains("pvgate\\-fmt"), "{}", run.stdout);
    let dir = scratch("man").join("man");
    let run = pvgate(&["man", "--dir", s(&dir)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for page in ["pvgate.1", "pvgate-init.1", "pvgate-fmt.1", "pvgate-lint.1"] {
        assert!(dir.join(page).is_file(), "{page}");
    }
}

#[test]
fn lint_explain_prints_each_lint_and_suggests_near_names() {
    for lint in pvgate_review::lint::LINTS {
        let run = pvgate(&["lint", "--explain", lint.id.name()]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stdout.starts_with(lint.id.name()));
        assert!(run.stdout.contains(lint.summary));
        assert!(run.stdout.contains(lint.id.explanation()));
    }
    insta::assert_snapshot!(pvgate(&["lint", "--explain", "cpuid-security-bit"]).stdout);
    let typo = pvgate(&["lint", "--explain", "cpuid-securty-bit"]);
    assert_eq!(typo.code, 2);
    insta::assert_snapshot!(typo.stderr);
    assert_eq!(
        pvgate(&["lint", "--explain", "weak-reason", "policy/default.toml"]).code,
        2,
        "--explain takes no policy"
    );
}

/// Attack: a layout the shipped files never use (a rule before `[policy]`,
/// a dotted key inside a rule, keys in reverse order, a trailing comment)
/// must format to a file that means the same policy (same digest), keeps
/// its comments, and is then stable under `fmt --check`.
#[test]
fn fmt_of_a_hostile_layout_keeps_its_meaning() {
    let dir = scratch("hostile");
    let path = dir.join("hostile-layout.toml");
    std::fs::copy(
        root().join("cli/tests/fixtures/fmt/hostile-layout.toml"),
        &path,
    )
    .unwrap();
    let digest = |p: &Path| {
        let r = pvgate(&["digest", s(p)]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout
    };
    let before = digest(&path);
    let run = pvgate(&["fmt", s(&path)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_ne!(
        text,
        std::fs::read_to_string(root().join("cli/tests/fixtures/fmt/hostile-layout.toml")).unwrap(),
        "the keys were reordered"
    );
    assert_eq!(digest(&path), before, "fmt changed what the policy means");
    assert!(text.contains("eax.host = 0xFF"), "{text}");
    assert!(text.contains("name = \"run\" # trailing"), "{text}");
    assert!(text.contains("# a dotted key (`eax.host`)"), "{text}");
    assert_eq!(pvgate(&["fmt", "--check", s(&path)]).code, 0);
}
