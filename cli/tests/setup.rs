//! A fresh clone's setup: the pinned toolchain (`rust-toolchain.toml`) with
//! the no_std target and CI's components, the `cargo pvgate` alias that
//! shows cargo's progress, and the README's install note.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::root;

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_toolchain_is_pinned_to_an_exact_release_with_the_target_and_components_ci_uses() {
    let file: toml::Table = toml::from_str(&read("rust-toolchain.toml")).expect("valid TOML");
    let t = file["toolchain"].as_table().expect("[toolchain]");
    let channel = t["channel"].as_str().expect("channel");
    // An exact release, not a moving channel.
    let parts: Vec<&str> = channel.split('.').collect();
    assert!(
        parts.len() == 3 && parts.iter().all(|p| p.parse::<u32>().is_ok()),
        "channel `{channel}` is not an exact release"
    );
    let list = |key: &str| -> Vec<String> {
        t[key]
            .as_array()
            .expect(key)
            .iter()
            .map(|v| v.as_str().expect("string").to_string())
            .collect()
    };
    assert!(list("targets").contains(&"x86_64-unknown-none".to_string()));
    let components = list("components");
    for c in ["clippy", "rustfmt"] {
        assert!(components.contains(&c.to_string()), "{c} missing");
    }
    // It is the toolchain cargo uses here (rustup honours the pin).
    let out = Command::new("rustc")
        .arg("-V")
        .current_dir(root())
        .output()
        .expect("rustc runs");
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.starts_with(&format!("rustc {channel} ")),
        "rust-toolchain.toml pins {channel}, rustc is {version}"
    );
    // And it is not older than the workspace's rust-version.
    let ws: toml::Table = toml::from_str(&read("Cargo.toml")).expect("Cargo.toml");
    let msrv = ws["workspace"]["package"]["rust-version"]
        .as_str()
        .expect("rust-version");
    let key = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    assert!(key(channel) >= key(msrv), "{channel} < rust-version {msrv}");
}

#[test]
fn the_cargo_alias_shows_cargos_progress_and_runs_the_cli() {
    let config: toml::Table = toml::from_str(&read(".cargo/config.toml")).expect("valid TOML");
    let alias = config["alias"]["pvgate"].as_str().expect("alias pvgate");
    let words: Vec<&str> = alias.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"run"), "{alias}");
    for quiet in ["--quiet", "-q"] {
        assert!(
            !words.contains(&quiet),
            "the alias hides cargo's progress: {alias}"
        );
    }
    assert!(
        alias.contains("--package pvgate-cli --bin pvgate --"),
        "{alias}"
    );
}

#[test]
fn the_readme_says_how_to_install_and_that_no_extra_step_is_needed() {
    let readme = read("README.md");
    assert!(
        readme.contains("`cargo install --path cli`"),
        "install note"
    );
    assert!(readme.contains("rust-toolchain.toml"), "toolchain note");
}

#[test]
fn ci_keeps_the_pinned_toolchain() {
    let ci = read(".ci/run");
    // CI may install components, never a toolchain other than the pinned one.
    for line in ci.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        assert!(
            !line.contains("rustup default") && !line.contains("rustup override"),
            "CI fights the pin: {line}"
        );
        assert!(
            !(line.contains("cargo +") || line.contains("--toolchain")),
            "CI picks another toolchain: {line}"
        );
    }
}
