//! The repository stands alone: no tracked file refers to documents
//! outside it, and every `design.md §N` citation names a section that
//! `docs/design.md` has.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every tracked file (`git ls-files`), or, outside a git checkout, every
/// file under the root except `target/` and `.git/`; never this file,
/// whose tests spell the forms they look for.
fn tracked_files() -> Vec<PathBuf> {
    let this = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/self_contained.rs");
    let this = this.canonicalize().unwrap_or(this);
    all_files()
        .into_iter()
        .filter(|f| f.canonicalize().map_or(true, |c| c != this))
        .collect()
}

fn all_files() -> Vec<PathBuf> {
    let root = root();
    if let Ok(out) = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(&root)
        .output()
        && out.status.success()
    {
        return out
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| root.join(String::from_utf8_lossy(p).as_ref()))
            .collect();
    }
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            let name = e.file_name();
            if p.is_dir() {
                if name != "target" && name != ".git" {
                    walk(&p, out);
                }
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root, &mut out);
    out
}

/// The outside references no file may contain. Built at run time so this
/// file does not name them.
fn forbidden() -> Vec<String> {
    vec![
        ["..", "/shared"].concat(),
        ["DES", "IGN.md"].concat(),
        ["/work", "/shared"].concat(),
    ]
}

/// Lines of `text` that contain one of `needles`, as `path:line: text`.
fn hits(path: &str, text: &str, needles: &[String]) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| needles.iter().any(|n| l.contains(n.as_str())))
        .map(|(i, l)| format!("{path}:{}: {}", i + 1, l.trim()))
        .collect()
}

#[test]
fn no_tracked_file_refers_to_documents_outside_the_repository() {
    let files = tracked_files();
    assert!(files.len() > 100, "only {} files listed", files.len());
    let needles = forbidden();
    let mut found = Vec::new();
    for f in &files {
        let Ok(bytes) = std::fs::read(f) else {
            continue; // tracked but deleted in the working tree
        };
        let text = String::from_utf8_lossy(&bytes);
        let rel = f.strip_prefix(root()).unwrap_or(f).display().to_string();
        found.extend(hits(&rel, &text, &needles));
    }
    assert!(
        found.is_empty(),
        "files refer to documents outside the repository (cite docs/design.md §N or another docs/ page):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_outside_reference_check_finds_each_form() {
    let needles = forbidden();
    // The example is built from the needles, so this file names none.
    let text = format!(
        "a\nsee {}/traces\nb {} §5\n{}/x\ndocs/design.md §5\n",
        needles[0], needles[1], needles[2]
    );
    let h = hits("x.rs", &text, &needles);
    assert_eq!(h.len(), 3, "{h:?}");
    assert!(h[0].starts_with("x.rs:2:"), "{h:?}");
}

/// The section numbers `docs/design.md` has (`## N. Title`).
fn design_sections() -> Vec<u32> {
    let text = std::fs::read_to_string(root().join("docs/design.md")).expect("docs/design.md");
    text.lines()
        .filter_map(|l| l.strip_prefix("## "))
        .filter_map(|l| l.split_once('.'))
        .filter_map(|(n, _)| n.parse().ok())
        .collect()
}

/// The `N` of every `design.md §N` in `text`.
fn cited_sections(text: &str) -> Vec<Option<u32>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(k) = rest.find("design.md §") {
        rest = &rest[k + "design.md §".len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        out.push(digits.parse().ok());
    }
    out
}

#[test]
fn every_design_citation_names_a_section_that_exists() {
    let sections = design_sections();
    assert!(sections.len() >= 10, "{sections:?}");
    let mut bad = Vec::new();
    let mut cited = 0;
    for f in tracked_files() {
        let Ok(bytes) = std::fs::read(&f) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for n in cited_sections(&text) {
            cited += 1;
            if !n.is_some_and(|n| sections.contains(&n)) {
                bad.push(format!("{}: §{n:?}", f.display()));
            }
        }
    }
    assert!(cited > 20, "only {cited} citations found");
    assert!(
        bad.is_empty(),
        "citations of missing sections:\n{}",
        bad.join("\n")
    );
    assert_eq!(
        cited_sections("docs/design.md §5 and [design.md §12](design.md) and design.md §x"),
        vec![Some(5), Some(12), None]
    );
}

/// Phrases that are wrong wherever they appear: each once attributed to the
/// review thread (or to pKVM-IA) something neither says. The review thread
/// did not settle that failed calls are "counted and visible" (WARN_ON or
/// KVM_BUG_ON was discussed, not settled); `inject_irq_if_allowed` still
/// tells the host whether the interrupt was allowed; pKVM-IA's
/// `deliver_sipi_vector` is its own (normal VMs only), and a protected
/// guest starts its own secondaries (no SIPI path is "planned").
const WRONG_ANYWHERE: [&str; 7] = [
    "counted and visible",
    "without telling the host",
    "no rflags.if leak",
    "review thread; pkvm-ia deferred",
    "secure sipi path is planned",
    "secure sipi path exists",
    "22,000",
];

/// Words a line that names the review thread must not hold: IA32_PRED_CMD
/// is not in the thread, and the TSC TODO (a "FIXME") is pKVM-IA's source,
/// not the thread's.
const NOT_WITH_THE_THREAD: [&str; 2] = ["pred_cmd", "fixme"];

/// Words that must not follow a `review thread:` attribution on its line:
/// the ignore-and-TODO of the SYSCALL MSRs is pKVM-IA's (`pkvm_set_msr`;
/// the thread proposed allowing them), TSC writes are allowed on purpose,
/// and the SIPI rules are pKVM-IA's.
const NOT_AFTER_THE_THREAD: [&str; 3] = ["stopgap", "unprotected", "sipi"];

/// The lines of `text` that attribute to the review thread what it does
/// not say, as `path:line: text`.
fn misattributions(path: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let low = line.to_lowercase();
        let names_thread = ["review thread", "review's", "the thread"]
            .iter()
            .any(|m| low.contains(m));
        let after = low.find("review thread:").map_or("", |k| &low[k..]);
        let wrong = WRONG_ANYWHERE.iter().any(|p| low.contains(p))
            || (names_thread && NOT_WITH_THE_THREAD.iter().any(|w| low.contains(w)))
            || NOT_AFTER_THE_THREAD.iter().any(|w| after.contains(w));
        if wrong {
            out.push(format!("{path}:{}: {}", i + 1, line.trim()));
        }
    }
    out
}

#[test]
fn no_tracked_file_attributes_to_the_review_thread_what_it_does_not_say() {
    let mut found = Vec::new();
    for f in tracked_files() {
        let Ok(bytes) = std::fs::read(&f) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        let rel = f.strip_prefix(root()).unwrap_or(&f).display().to_string();
        found.extend(misattributions(&rel, &text));
    }
    assert!(
        found.is_empty(),
        "claims the review thread does not make (docs/design.md §5 lists what it says; cite the pKVM-IA function for the code's facts):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_attribution_check_finds_each_known_wrong_claim() {
    // Each line is a claim that once stood in the repository.
    let wrong = [
        "reason = \"the review thread: writes to command MSRs (IA32_FLUSH_CMD, IA32_PRED_CMD) are never harmless\"",
        "reason = \"the review thread: pKVM-IA v6.18 carries a FIXME that TSC writes are still unprotected\"",
        "reason = \"the review thread: pKVM-IA v6.18 ignores these writes only as a stopgap for crosvm\"",
        "reason = \"review thread: protected VMs are to get a secure SIPI path in the hypervisor\"",
        "help: the review thread proposes `inject_irq_if_allowed`, which checks and injects without telling the host",
        "# interrupts with inject_irq_if_allowed (one call, no RFLAGS.IF leak)",
        "/// `deliver_sipi_vector`: Deliver a SIPI vector (review thread; pKVM-IA deferred it).",
        "the thread settled that failed calls are counted and visible",
    ];
    for claim in wrong {
        assert_eq!(misattributions("x", claim).len(), 1, "not caught: {claim}");
    }
    // What the thread does say, and the code's facts cited as the code's.
    let right = [
        "the review thread: 'allow a write if the value is unchanged' is wrong for MSRs with side effects (its example: IA32_FLUSH_CMD)",
        "pKVM-IA v6.18 pkvm_set_msr() ignores these writes, a stopgap by its own TODO (the review thread proposed allowing them instead)",
        "the registry marks `side-effect` (IA32_FLUSH_CMD, IA32_PRED_CMD, the microcode trigger)",
        "is_guest_vcpu_accessible() keeps TSC writes allowed on purpose, with a TODO",
    ];
    for claim in right {
        assert_eq!(misattributions("x", claim), Vec::<String>::new(), "{claim}");
    }
}

/// A string field of a TOML table (empty when absent).
fn field<'a>(v: &'a toml::Value, k: &str) -> &'a str {
    v.get(k).and_then(toml::Value::as_str).unwrap_or("")
}

/// The `[[pv]]` rules of `policy/examples/review-thread.toml` that decide
/// `call` for protected VMs in `running`.
fn example_rules_for(call: &str) -> Vec<toml::Value> {
    let text = std::fs::read_to_string(root().join("policy/examples/review-thread.toml"))
        .expect("the example policy");
    let doc: toml::Value = toml::from_str(&text).expect("the example is TOML");
    let names = |v: &toml::Value| -> Vec<String> {
        match v {
            toml::Value::String(s) => vec![s.clone()],
            toml::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        }
    };
    let key = |r: &toml::Value, k: &str| r.get(k).map(names).unwrap_or_default();
    doc.get("pv")
        .and_then(toml::Value::as_array)
        .expect("[[pv]] rules")
        .iter()
        .filter(|r| key(r, "call").iter().any(|c| c == call || c == "*"))
        .filter(|r| key(r, "vm").iter().any(|v| v == "protected"))
        .filter(|r| key(r, "phase").iter().any(|p| p == "running"))
        .cloned()
        .collect()
}

#[test]
fn the_review_thread_example_keeps_interrupt_allowed_and_says_whose_choices_are_whose() {
    // KVM needs interrupt_allowed for kvm_vcpu_has_events: the example may
    // not deny it without saying what that breaks.
    let rules = example_rules_for("interrupt_allowed");
    let [rule] = rules.as_slice() else {
        panic!("one rule decides interrupt_allowed: {rules:?}");
    };
    assert_eq!(field(rule, "verdict"), "allow", "{rule:?}");
    let reason = field(rule, "reason");
    assert!(reason.contains("kvm_vcpu_has_events"), "{reason}");
    let rules = example_rules_for("inject_irq_if_allowed");
    let [rule] = rules.as_slice() else {
        panic!("one rule decides inject_irq_if_allowed: {rules:?}");
    };
    let reason = field(rule, "reason");
    assert!(
        reason.starts_with("the review thread's proposal"),
        "{reason}"
    );
    assert!(reason.contains("APICv"), "{reason}");
    let text = std::fs::read_to_string(root().join("policy/examples/review-thread.toml"))
        .expect("the example policy");
    let header: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).collect();
    let header = header.join("\n");
    for says in [
        "the review thread's proposal",
        "not the thread's, kept from pKVM-IA",
        "not the thread's, pKVM-IA's",
    ] {
        assert!(
            header.contains(says),
            "the header says whose choice: {says}"
        );
    }
}
