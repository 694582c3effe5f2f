//! `image` and `digest --image`: `image policy/strict.toml` builds
//! the staticlib (a real cargo build, in `<target dir>/pvgate-image-build`,
//! reused between runs), verifies and writes what docs/image.md lists; the
//! digest read back from the library is `digest policy/strict.toml`; and the
//! C example of docs/image.md, extracted from the page, compiles with `cc`,
//! links and passes against it. A tampered record is read as tampered.
//!
//! Skips, saying so, off x86_64 linux or without `cc`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Std test code: the two lints only a no_std crate needs (docs/design.md).
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{Run, pvgate, root};

const STRICT: &str = "policy/strict.toml";

fn skip(what: &str) -> bool {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        println!("SKIPPED {what}: the image test is written for x86_64 linux");
        return true;
    }
    let cc = Command::new("cc").arg("--version").output();
    if !cc.is_ok_and(|o| o.status.success()) {
        println!("SKIPPED {what}: no `cc` on PATH (install gcc or clang)");
        return true;
    }
    false
}

fn both(run: &Run) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        run.code, run.stdout, run.stderr
    )
}

/// The image of strict.toml, built once for every test here: its
/// directory and the run that built it.
fn strict_image() -> &'static (PathBuf, Run) {
    static IMAGE: OnceLock<(PathBuf, Run)> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let out = std::env::temp_dir().join(format!("pvgate-image-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let run = pvgate(&["image", STRICT, "--out", out.to_str().unwrap()]);
        assert_eq!(run.code, 0, "{}", both(&run));
        (out, run)
    })
}

fn strict_digest() -> String {
    pvgate(&["digest", STRICT]).stdout.trim().to_string()
}

#[test]
fn image_builds_the_library_of_the_policy_and_says_what_went_in() {
    if skip("image") {
        return;
    }
    let (out, run) = strict_image();
    let digest = strict_digest();
    // Cargo's own progress reached the terminal (stderr), not our stdout.
    assert!(
        run.stderr.contains("Finished `release` profile"),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("Finished"), "{}", run.stdout);
    assert!(
        run.stderr.contains("PVGATE_POLICY=policy/strict.toml cargo build --release --package pvgate-image --target-dir "),
        "{}",
        run.stderr
    );
    let shown = run.stdout.replace(out.to_str().unwrap(), "<OUT>");
    insta::assert_snapshot!(shown);
    assert!(run.stdout.contains(&format!(
        "digest   {digest} (verified in libpvgate_image.a)"
    )));

    // The files docs/image.md lists.
    let header = std::fs::read_to_string(out.join("pvgate.h")).unwrap();
    assert_eq!(
        header,
        std::fs::read_to_string(root().join("image/include/pvgate.h")).unwrap()
    );
    let policy_header = std::fs::read_to_string(out.join("pvgate_policy.h")).unwrap();
    assert_eq!(
        policy_header,
        pvgate(&["emit", "--lang", "c", STRICT]).stdout
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["policy"]["path"], STRICT);
    assert_eq!(m["policy"]["name"], "strict");
    assert_eq!(m["policy"]["digest"], digest.as_str());
    assert_eq!(m["library"]["embedded_digest"], digest.as_str());
    assert_eq!(m["library"]["file"], "libpvgate_image.a");
    assert_eq!(m["target"]["name"], "host");
    assert!(
        m["toolchain"].as_str().unwrap().starts_with("rustc 1."),
        "{m}"
    );
    let command = m["build"]["command"].as_str().unwrap();
    assert!(
        command.starts_with("PVGATE_POLICY=policy/strict.toml cargo build --release --package pvgate-image --target-dir "),
        "{command}"
    );
    // Baseline digest and rule counts are the policy's (as `check` reports them).
    let check: serde_json::Value =
        serde_json::from_str(&pvgate(&["check", "--format", "json", STRICT]).stdout).unwrap();
    let check = &check[0];
    assert_eq!(m["baseline"], check["baseline"]);
    assert_eq!(m["rules"]["total"], check["rules"]);
}

#[test]
fn the_digest_read_back_from_the_library_is_the_policys() {
    if skip("digest --image") {
        return;
    }
    let (out, _) = strict_image();
    let lib = out.join("libpvgate_image.a");
    let run = pvgate(&["digest", "--image", lib.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", both(&run));
    assert_eq!(run.stdout.trim(), strict_digest());
    assert_ne!(
        run.stdout.trim(),
        pvgate(&["digest", "policy/default.toml"]).stdout.trim()
    );
    let json = pvgate(&[
        "digest",
        "--image",
        lib.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["digest"], strict_digest().as_str());
}

/// The fenced blocks of docs/image.md in `lang`.
fn blocks(lang: &str) -> Vec<String> {
    let doc = std::fs::read_to_string(root().join("docs/image.md")).unwrap();
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match &mut current {
            None if line == format!("```{lang}") => current = Some(String::new()),
            Some(text) if line == "```" => {
                out.push(std::mem::take(text));
                current = None;
            }
            Some(text) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    out
}

#[test]
fn the_documented_c_example_links_and_passes_against_the_strict_image() {
    if skip("docs/image.md C example") {
        return;
    }
    let (out, _) = strict_image();
    let work = out.join("example");
    std::fs::create_dir_all(&work).unwrap();
    // The C files, named by their first line (`/* NAME.c: ...`).
    let c = blocks("c");
    assert_eq!(c.len(), 2, "docs/image.md has two C files");
    for file in &c {
        let name = file
            .strip_prefix("/* ")
            .and_then(|r| r.split_once(':'))
            .map(|(n, _)| n)
            .expect("a C block starts with `/* NAME.c:`");
        std::fs::write(work.join(name), file).unwrap();
    }
    // The shell block: OUT=..., the image command, the cc line, the run.
    let sh = blocks("sh");
    let recipe = sh
        .iter()
        .find(|b| b.contains("cc "))
        .expect("the link block");
    let lines: Vec<&str> = recipe.lines().collect();
    assert!(lines[0].starts_with("OUT="), "{recipe}");
    let image: Vec<&str> = lines[1]
        .strip_prefix("cargo pvgate ")
        .expect("the image command")
        .split_whitespace()
        .collect();
    assert_eq!(image, ["image", STRICT, "--out", "\"$OUT\""]);
    // The image command itself ran as strict_image() (into our OUT); the
    // compile and run lines run as written, with OUT set to it.
    for line in &lines[2..] {
        let run = Command::new("sh")
            .args(["-c", line])
            .env("OUT", out)
            .current_dir(&work)
            .output()
            .expect("sh runs");
        let stdout = String::from_utf8_lossy(&run.stdout);
        println!("{stdout}");
        assert!(
            run.status.success(),
            "`{line}` failed ({}):\n{stdout}\n{}",
            run.status,
            String::from_utf8_lossy(&run.stderr)
        );
        if line.starts_with("./") {
            assert!(stdout.lines().any(|l| l == "PASSED"), "{stdout}");
            assert!(!stdout.contains("FAIL "), "{stdout}");
            assert!(
                stdout.starts_with(&format!("policy strict, digest {}\n", strict_digest())),
                "{stdout}"
            );
            // Strict denies what the default policy allows: the program
            // did not just agree with a constant.
            assert!(
                stdout.contains("ok   setup get_msr 0x10 -> -1 (want -1)"),
                "{stdout}"
            );
            assert!(
                stdout.contains("ok   setup get_msr 0x1a0 -> 0 (want 0)"),
                "{stdout}"
            );
        }
    }
}

/// Copies the strict library with its record's bytes changed by `edit`.
fn tampered(edit: impl Fn(&mut [u8])) -> PathBuf {
    let (out, _) = strict_image();
    let mut bytes = std::fs::read(out.join("libpvgate_image.a")).unwrap();
    let magic = b"PVGATE\x01\0";
    let at = bytes
        .windows(magic.len())
        .position(|w| w == magic)
        .expect("the record's magic is in the library");
    edit(&mut bytes[at..at + 40]);
    let path = out.join(format!("tampered-{at}-{}.a", bytes[at + 6]));
    std::fs::write(&path, &bytes).unwrap();
    path
}

fn read_back(path: &Path) -> Run {
    pvgate(&["digest", "--image", path.to_str().unwrap()])
}

#[test]
fn a_tampered_or_foreign_library_is_read_as_such() {
    if skip("digest --image (tampered)") {
        return;
    }
    // A changed digest byte: reported as it is, so it no longer matches.
    let lib = tampered(|r| r[8] ^= 0xff);
    let run = read_back(&lib);
    assert_eq!(run.code, 0, "{}", both(&run));
    assert_ne!(run.stdout.trim(), strict_digest());
    assert_eq!(run.stdout.len(), 65);
    // A record of another layout version is refused.
    let lib = tampered(|r| r[6] = 2);
    let version = read_back(&lib);
    // Not a library at all, and an empty archive.
    let text = read_back(Path::new("README.md"));
    let empty = std::env::temp_dir().join(format!("pvgate-empty-{}.a", std::process::id()));
    std::fs::write(&empty, b"!<arch>\n").unwrap();
    let none = read_back(&empty);
    let _ = std::fs::remove_file(&empty);
    let shown = format!("{}\n{}\n{}", both(&version), both(&text), both(&none))
        .replace(lib.to_str().unwrap(), "<TAMPERED>")
        .replace(empty.to_str().unwrap(), "<EMPTY>");
    insta::assert_snapshot!(shown);
}

#[test]
fn image_refuses_an_invalid_policy_before_building() {
    let run = pvgate(&["image", "cli/tests/broken/unknown-msr-name.toml"]);
    assert_eq!(run.code, 2, "{}", both(&run));
    assert!(!run.stderr.contains("Compiling"), "{}", run.stderr);
    assert!(run.stderr.contains("is invalid"), "{}", run.stderr);
}

#[test]
fn every_image_help_example_runs_as_written_and_none_builds_the_no_std_image() {
    if skip("image --help examples") {
        return;
    }
    strict_image(); // the host build first, so the two do not race for cargo's lock
    let help = pvgate(&["image", "--help"]).stdout;
    let examples: Vec<&str> = help
        .lines()
        .filter_map(|l| l.trim().strip_prefix("cargo pvgate "))
        .collect();
    assert!(
        examples.iter().any(|e| e.contains("--target none")),
        "{help}"
    );
    for example in examples {
        let args: Vec<&str> = example.split_whitespace().collect();
        let run = pvgate(&args);
        assert_eq!(run.code, 0, "`cargo pvgate {example}`: {}", both(&run));
        let out = run
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("out      "))
            .expect("the summary names the output directory");
        let m: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(Path::new(out).join("manifest.json")).unwrap(),
        )
        .unwrap();
        let lib = Path::new(out).join("libpvgate_image.a");
        let back = pvgate(&["digest", "--image", lib.to_str().unwrap()]);
        assert_eq!(back.stdout.trim(), m["policy"]["digest"].as_str().unwrap());
        if example.contains("--target none") {
            assert_eq!(m["target"]["name"], "none");
            assert_eq!(m["target"]["triple"], "x86_64-unknown-none");
            assert!(
                m["build"]["command"]
                    .as_str()
                    .unwrap()
                    .contains(" --target x86_64-unknown-none "),
                "{m}"
            );
        }
    }
}

#[test]
fn image_json_prints_the_output_directory_and_the_manifest() {
    if skip("image --format json") {
        return;
    }
    let (out, _) = strict_image();
    let json_out = out.with_extension("json");
    let _ = std::fs::remove_dir_all(&json_out);
    let run = pvgate(&[
        "image",
        STRICT,
        "--format",
        "json",
        "--out",
        json_out.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", both(&run));
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["out"], json_out.to_str().unwrap());
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json_out.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(v["manifest"], written, "the manifest that was written");
    assert_eq!(v["manifest"]["policy"]["digest"], strict_digest());
}
