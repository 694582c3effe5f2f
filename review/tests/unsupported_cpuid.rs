//! Lint `cpuid-unsupported-bit`: a protected VM's rule that hands the host
//! (or forces on) CPUID bits the hypervisor does not support is flagged;
//! the shipped policies are not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use pvgate_codegen::{Compiled, Registry, compile_file};
use pvgate_review::lint::{LintId, Severity, findings};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn unsupported(c: &Compiled) -> Vec<String> {
    findings(c, Registry::builtin())
        .into_iter()
        .filter(|f| f.lint == LintId::CpuidUnsupportedBit)
        .inspect(|f| assert_eq!(f.severity, Severity::Warning))
        .map(|f| f.message)
        .collect()
}

#[test]
fn the_shipped_policies_give_the_host_no_unsupported_cpuid_bit() {
    for p in ["policy/default.toml", "policy/strict.toml"] {
        let c = compile_file(root().join(p)).unwrap();
        assert_eq!(unsupported(&c), Vec::<String>::new(), "{p}");
    }
}

#[test]
fn a_rule_handing_the_host_the_pmu_is_flagged() {
    let text = std::fs::read_to_string(root().join("policy/default.toml")).unwrap()
        + r#"
[[cpuid]]
name = "host-pmu"
leaf = 0xA
vm = ["protected"]
phase = ["setup"]
verdict = "allow"
eax = { host = 0xFF }
edx = { force-on = 0x1 }
reason = "a test rule handing the host the PMU version"
"#;
    let ir = pvgate_codegen::compile_in_dir(&text, &root().join("policy"))
        .unwrap_or_else(|e| panic!("{}", e.render("host-pmu.toml", &text)));
    let c = Compiled {
        path: String::from("host-pmu.toml"),
        text,
        ir,
    };
    let m = unsupported(&c);
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(
        m[0].contains("EAX bits 0xff of leaf 0xa (host-controlled)"),
        "{m:?}"
    );
    assert!(
        m[1].contains("EDX bits 0x1 of leaf 0xa (forced on)"),
        "{m:?}"
    );
}
