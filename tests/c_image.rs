//! The image as C sees it: builds the `pvgate-image` staticlib (release,
//! `panic = "abort"`), compiles `image/tests/c/crosvm_boot.c` with `cc`
//! against `image/include/pvgate.h`, links it (`-Wl,--gc-sections`, the
//! linux-gnu pitfall) and runs it: crosvm's protected boot, then a denied
//! write after the first run. Skips, saying so, when `cc` is absent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn have_cc() -> bool {
    Command::new("cc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_c_program_links_the_image_and_replays_the_protected_crosvm_boot() {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        println!("SKIPPED c_image: the C link test is written for x86_64 linux");
        return;
    }
    if !have_cc() {
        println!("SKIPPED c_image: no `cc` on PATH (install gcc or clang to run the C ABI test)");
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // A target directory of its own: the outer `cargo test` holds the lock
    // of the shared one while tests run.
    let target = root.join("target").join("c-image");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--package",
            "pvgate-image",
            "--target-dir",
        ])
        .arg(&target)
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "cargo build --release -p pvgate-image failed"
    );
    let lib = target.join("release").join("libpvgate_image.a");
    assert!(lib.is_file(), "{} was not built", lib.display());

    let exe = target.join("crosvm_boot");
    let out = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root.join("image/include"))
        .arg(root.join("image/tests/c/crosvm_boot.c"))
        .arg(&lib)
        .args(["-Wl,--gc-sections", "-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe)
        .output()
        .expect("cc runs");
    assert!(
        out.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let run = Command::new(Path::new(&exe))
        .output()
        .expect("the C program runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    println!("{stdout}");
    assert!(
        run.status.success(),
        "the C program reported failures:\n{stdout}"
    );
    assert!(
        stdout.contains("ok   vcpu_after_set_cpuid accepted"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok   set_msr 0x1a0 = 0x1 -> -1 (want -1)"),
        "the denied write after run: {stdout}"
    );
    assert!(stdout.lines().any(|l| l == "PASSED"), "{stdout}");
    assert!(!stdout.contains("FAIL "), "{stdout}");
    // The image carries the digest of the policy it was built from.
    let digest = stdout
        .lines()
        .find_map(|l| l.strip_prefix("digest "))
        .expect("digest line");
    assert_eq!(digest, pvgate::POLICY_DIGEST_HEX);
}
