//! `include` reads only regular `.toml` files inside the policy root (the
//! nearest enclosing directory named `policy`, else the policy file's own
//! directory): no absolute paths, no `..` out of it, no symlink out of it,
//! no other kind of file. A refused include is named, located at its entry
//! in the policy, and never shows the file's contents.
#![allow(clippy::unwrap_used, clippy::panic)] // test and tool code: a panic is a failed run

use std::path::{Path, PathBuf};

use pvgate_codegen::{ErrorKind, LoadError, compile_file};

/// An invariant file that any policy allowing `set_efer` in setup breaks,
/// so reading it is visible in the result.
const EXTRA: &str = r#"
[[invariant]]
name = "extra-no-efer"
vm = ["protected"]
phase = ["setup"]
forbid = "pv-call"
call = ["set_efer"]
reason = "SECRET-MARKER: read only if the include was followed"
"#;

/// `<tmp>/<name>/policy/` holding a copy of the default policy as
/// `p.toml`, and `<tmp>/<name>/outside.toml` and `outside.txt` beside it.
fn tree(name: &str) -> PathBuf {
    let top = std::env::temp_dir().join(format!("pvgate-includes-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&top);
    let policy = top.join("policy");
    std::fs::create_dir_all(policy.join("invariants")).unwrap();
    std::fs::create_dir_all(policy.join("examples")).unwrap();
    std::fs::write(top.join("outside.toml"), EXTRA).unwrap();
    std::fs::write(
        top.join("outside.txt"),
        "SECRET-MARKER line one\nsecond line\n",
    )
    .unwrap();
    std::fs::write(policy.join("invariants/extra.toml"), EXTRA).unwrap();
    policy
}

fn default_with_include(include: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy/default.toml");
    std::fs::read_to_string(root).unwrap().replace(
        "include = [\"invariants/protected-baseline.toml\"]",
        &format!("include = [{include:?}]"),
    )
}

/// Compiles `<policy dir>/<file>` including `include`; the refusal.
fn refused(dir: &Path, file: &str, include: &str) -> (String, String) {
    let path = dir.join(file);
    std::fs::write(&path, default_with_include(include)).unwrap();
    match compile_file(&path) {
        Ok(_) => panic!("include `{include}` was followed"),
        Err(LoadError::Io { error, .. }) => panic!("{error}"),
        Err(e @ LoadError::Invalid { .. }) => {
            let LoadError::Invalid { errors, text, .. } = &e else {
                unreachable!()
            };
            let d = errors
                .diagnostics
                .iter()
                .find(|d| d.kind == ErrorKind::Include)
                .unwrap_or_else(|| panic!("{:#?}", errors.diagnostics));
            assert_eq!(
                &text[d.span.clone()],
                format!("{include:?}"),
                "located at the entry"
            );
            assert!(
                d.file.is_none(),
                "the error is in the policy, not in the included file"
            );
            let rendered = e.render();
            assert!(
                !rendered.contains("SECRET-MARKER"),
                "contents shown:\n{rendered}"
            );
            (d.message.clone(), rendered)
        }
    }
}

#[test]
fn absolute_include_paths_are_refused() {
    let dir = tree("absolute");
    let outside = dir.join("../outside.toml").display().to_string();
    for include in [outside.as_str(), "/etc/hostname", "/etc/passwd"] {
        let (message, _) = refused(&dir, "p.toml", include);
        assert_eq!(
            message,
            format!(
                "cannot include `{include}`: absolute include paths are refused; name a file relative to the policy"
            )
        );
    }
}

#[test]
fn dot_dot_escaping_the_policy_root_is_refused() {
    let dir = tree("dotdot");
    for include in [
        "../outside.toml",
        "invariants/../../outside.toml",
        "../../../../../../etc/passwd.toml",
    ] {
        let (message, _) = refused(&dir, "p.toml", include);
        assert!(
            message.starts_with(&format!("cannot include `{include}`: ")),
            "{message}"
        );
        assert!(
            message.contains("outside the policy root") || message.contains("cannot read it"),
            "{message}"
        );
    }
    let (message, _) = refused(&dir, "p.toml", "../outside.toml");
    assert!(
        message.contains("resolves outside the policy root"),
        "{message}"
    );
}

#[cfg(unix)]
#[test]
fn a_symlink_out_of_the_policy_root_is_refused() {
    let dir = tree("symlink");
    std::os::unix::fs::symlink(
        dir.join("../outside.toml"),
        dir.join("invariants/link.toml"),
    )
    .unwrap();
    let (message, _) = refused(&dir, "p.toml", "invariants/link.toml");
    assert!(
        message.contains("resolves outside the policy root"),
        "{message}"
    );
    // A symlinked directory out of the tree is refused the same way.
    std::os::unix::fs::symlink(dir.join(".."), dir.join("up")).unwrap();
    let (message, _) = refused(&dir, "p.toml", "up/outside.toml");
    assert!(
        message.contains("resolves outside the policy root"),
        "{message}"
    );
}

#[test]
fn a_file_that_is_not_toml_is_refused_without_showing_it() {
    let dir = tree("not-toml");
    std::fs::write(dir.join("notes.txt"), "SECRET-MARKER inside the tree\n").unwrap();
    let (message, _) = refused(&dir, "p.toml", "notes.txt");
    assert_eq!(
        message,
        "cannot include `notes.txt`: an included file is a `.toml` invariant file"
    );
    let (message, _) = refused(&dir, "p.toml", "../outside.txt");
    assert!(message.contains("`.toml` invariant file"), "{message}");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(dir.join("notes.txt"), dir.join("notes.toml")).unwrap();
        let (message, _) = refused(&dir, "p.toml", "notes.toml");
        assert!(
            message.contains("not a `.toml` invariant file"),
            "{message}"
        );
    }
    std::fs::create_dir_all(dir.join("dir.toml")).unwrap();
    let (message, _) = refused(&dir, "p.toml", "dir.toml");
    assert!(message.contains("not a regular file"), "{message}");
}

#[test]
fn includes_inside_the_policy_root_still_work() {
    let dir = tree("inside");
    for (file, include) in [
        ("p.toml", "invariants/extra.toml"),
        ("examples/q.toml", "../invariants/extra.toml"),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, default_with_include(include)).unwrap();
        let e = compile_file(&path).expect_err("the included invariant is proven");
        assert!(
            e.render().contains("invariant `extra-no-efer`"),
            "{}",
            e.render()
        );
    }
}

#[test]
fn the_shipped_example_including_dot_dot_invariants_compiles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy");
    for file in ["default.toml", "strict.toml", "examples/review-thread.toml"] {
        compile_file(root.join(file)).unwrap_or_else(|e| panic!("{file}: {}", e.render()));
    }
}
