//! Colour for diagnostics: `--color always` gives ANSI escapes (even
//! through a pipe, even with `NO_COLOR`); `--color never`, `NO_COLOR=1`
//! and a pipe give none; `auto` on a terminal (a pty from `script`)
//! colours. Stripped of its escapes, the coloured text is the plain text.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{pvgate, root};

const BROKEN: &str = "cli/tests/broken/unknown-msr-name.toml";
const ESC: &str = "\x1b[";

/// Removes ANSI escape sequences (`ESC [ ... letter`).
fn strip(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn lint(color: &str) -> common::Run {
    pvgate(&[
        "--color",
        color,
        "--baseline",
        "cli/tests/fixtures/fixture-baseline.toml",
        "lint",
        "cli/tests/fixtures/risky.toml",
    ])
}

#[test]
fn always_colours_diagnostics_even_through_a_pipe() {
    let plain = pvgate(&["check", BROKEN]);
    let colored = pvgate(&["--color", "always", "check", BROKEN]);
    assert_eq!(colored.code, 2);
    assert!(colored.stderr.contains(ESC), "{}", colored.stderr);
    assert_eq!(strip(&colored.stderr), plain.stderr);
    // Lint findings go to stdout; `always` colours them too.
    let (plain, colored) = (lint("never"), lint("always"));
    assert!(colored.stdout.contains(ESC), "{}", colored.stdout);
    assert_eq!(strip(&colored.stdout), plain.stdout);
    // Argument errors and trace errors as well.
    let arg = pvgate(&[
        "--color",
        "always",
        "explain",
        "policy/default.toml",
        "--vm",
        "protected",
        "--phase",
        "setup",
        "--msr",
        "IA32_LSTAT",
        "--access",
        "read",
    ]);
    assert_eq!(arg.code, 2, "{}", arg.stderr);
    assert!(arg.stderr.contains(ESC), "{}", arg.stderr);
    let trace = pvgate(&[
        "--color",
        "always",
        "replay",
        "policy/default.toml",
        "cli/tests/traces/malformed.toml",
    ]);
    assert!(trace.stderr.contains(ESC), "{}", trace.stderr);
}

#[test]
fn never_no_color_and_a_pipe_give_no_escapes() {
    for args in [
        vec!["check", BROKEN],
        vec!["--color", "never", "check", BROKEN],
        vec!["--color", "auto", "check", BROKEN],
    ] {
        let run = pvgate(&args);
        assert_eq!(run.code, 2);
        assert!(!run.stderr.contains('\x1b'), "{args:?}: {}", run.stderr);
    }
    assert!(!lint("auto").stdout.contains('\x1b'));
    let out = Command::new(env!("CARGO_BIN_EXE_pvgate"))
        .args(["check", BROKEN])
        .env("NO_COLOR", "1")
        .current_dir(root())
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains('\x1b'));
    // An explicit `--color always` wins over NO_COLOR.
    let out = Command::new(env!("CARGO_BIN_EXE_pvgate"))
        .args(["--color", "always", "check", BROKEN])
        .env("NO_COLOR", "1")
        .current_dir(root())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains(ESC));
}

/// Runs `pvgate ARGS` on a pseudo-terminal (util-linux `script`), stderr
/// and stdout merged; None where `script` is not available.
fn on_a_terminal(args: &str, no_color: bool) -> Option<String> {
    let bin = env!("CARGO_BIN_EXE_pvgate");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &format!("{bin} {args}"), "/dev/null"])
        .current_dir(root())
        .env_remove("NO_COLOR");
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    let out = cmd.output().ok().filter(|o| o.status.code().is_some())?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn auto_colours_a_terminal_unless_no_color_or_never() {
    let check = format!("check {BROKEN}");
    let Some(tty) = on_a_terminal(&check, false) else {
        println!("SKIPPED terminal colour: no util-linux `script` to make a pty");
        return;
    };
    if !tty.contains("unknown MSR") {
        println!("SKIPPED terminal colour: `script` did not run the command: {tty}");
        return;
    }
    assert!(tty.contains(ESC), "auto on a terminal colours: {tty}");
    let no_color = on_a_terminal(&check, true).unwrap();
    assert!(no_color.contains("unknown MSR"), "{no_color}");
    assert!(!no_color.contains('\x1b'), "NO_COLOR=1: {no_color}");
    let never = on_a_terminal(&format!("--color never {check}"), false).unwrap();
    assert!(never.contains("unknown MSR"), "{never}");
    assert!(!never.contains('\x1b'), "--color never: {never}");
}

#[test]
fn color_is_a_global_option_in_the_help() {
    let help = pvgate(&["--help"]).stdout;
    assert!(help.contains("--color <WHEN>"), "{help}");
    assert!(help.contains("NO_COLOR"), "{help}");
    let help = pvgate(&["lint", "--help"]).stdout;
    assert!(help.contains("--color <WHEN>"), "{help}");
}

#[test]
fn clap_usage_errors_follow_color_too() {
    let always = pvgate(&["--color", "always", "replay", "policy/default.toml"]);
    assert_eq!(always.code, 2);
    assert!(always.stderr.contains(ESC), "{}", always.stderr);
    let never = pvgate(&["--color=never", "replay", "policy/default.toml"]);
    assert_eq!(never.code, 2);
    assert!(!never.stderr.contains('\x1b'), "{}", never.stderr);
    assert_eq!(strip(&always.stderr), never.stderr);
}
