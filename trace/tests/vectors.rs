//! Vector files through the library: the shipped vectors pass on the
//! shipped policies (the image's const tables and the interpreter alike),
//! a hyp case reports each call's rule and what it probed, and a file's
//! every error is returned at once, located at its key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use std::path::PathBuf;

use pvgate_codegen::Interpreter;
use pvgate_gate::{Access, Phase, PvCall, VmKind};
use pvgate_trace::{
    Check, Probe, Probed, TraceError, VectorBody, load_vectors, parse, parse_vectors, run_vectors,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn interpreter(policy: &str) -> Interpreter {
    let compiled = pvgate_codegen::compile_file(root().join(policy)).expect("policy compiles");
    Interpreter::new(compiled.ir)
}

fn errors(e: TraceError) -> Vec<(usize, String, Option<String>)> {
    match e {
        TraceError::Invalid(f) => f
            .diagnostics
            .iter()
            .map(|d| (d.line_col(&f.text).0, d.message.clone(), d.help.clone()))
            .collect(),
        other => panic!("not a located error: {other}"),
    }
}

#[test]
fn the_shipped_vectors_pass_on_their_policies_through_the_image_and_the_interpreter() {
    let pkvm = load_vectors(root().join("tests/conformance/pkvm-ia.toml")).unwrap();
    let strict = load_vectors(root().join("tests/conformance/strict.toml")).unwrap();
    for (policy, file) in [
        (interpreter("policy/default.toml"), &pkvm),
        (interpreter("policy/strict.toml"), &strict),
    ] {
        let failed: Vec<String> = run_vectors(&policy, file)
            .into_iter()
            .filter(|r| !r.passed)
            .map(|r| format!("{}: {}: {}", r.line, r.request, r.got))
            .collect();
        assert!(failed.is_empty(), "{}: {failed:?}", file.path);
    }
    // The image is built from the default policy.
    assert!(run_vectors(&pvgate::POLICY, &pkvm).iter().all(|r| r.passed));
    // The pKVM-IA vectors split by subject pass too, on both.
    let default = interpreter("policy/default.toml");
    for name in ["pkvm-ia-cpuid", "pkvm-ia-msr", "pkvm-ia-calls"] {
        let file = load_vectors(root().join(format!("tests/conformance/{name}.toml"))).unwrap();
        let results = run_vectors(&default, &file);
        assert!(results.len() >= 30, "{name}: {} cases", results.len());
        for r in results.iter().chain(&run_vectors(&pvgate::POLICY, &file)) {
            assert!(r.passed, "{name}:{}: {}: {}", r.line, r.request, r.got);
        }
    }
}

const MASK_HEADER: &str = "format = \"pvgate-conformance/1\"\ntitle = \"t\"\n";

fn mask_case(body: &str) -> String {
    format!(
        "{MASK_HEADER}\n[[case]]\nvm = \"protected\"\nphase = \"setup\"\ncpuid = \"0x1\"\nreg = \"ecx\"\n{body}"
    )
}

#[test]
fn a_bits_mask_holds_every_bit_in_one_case() {
    let file = parse_vectors(
        &mask_case("bits = \"0x8100_0000\"\nexpect = \"host\"\n"),
        "mask.toml",
    )
    .unwrap();
    let VectorBody::Cases(cases) = &file.body else {
        panic!("not a vector file")
    };
    assert!(matches!(
        cases[0].check,
        Check::Cpuid {
            mask: 0x8100_0000,
            ..
        }
    ));
    let default = interpreter("policy/default.toml");
    let r = &run_vectors(&default, &file)[0];
    assert!(r.passed, "{}: {}", r.request, r.got);
    assert!(r.request.contains("bits 0x81000000"), "{}", r.request);
    // A bare number and `bit` for one bit mean the same as a one-bit mask.
    for body in [
        "bits = 0x20\nexpect = \"force-off\"\n",
        "bit = 5\nexpect = \"force-off\"\n",
    ] {
        let f = parse_vectors(&mask_case(body), "one.toml").unwrap();
        let VectorBody::Cases(c) = &f.body else {
            panic!()
        };
        assert!(
            matches!(c[0].check, Check::Cpuid { mask: 0x20, .. }),
            "{body}"
        );
        assert!(run_vectors(&default, &f)[0].passed, "{body}");
    }
}

#[test]
fn a_failing_mask_names_the_first_bit_whose_mode_differs() {
    // ECX bit 24 (TSC_DEADLINE) and bit 31 (HYPERVISOR) are the host's,
    // bit 21 (X2APIC) is forced on: the mask fails at bit 21.
    let file = parse_vectors(
        &mask_case("bits = \"0x8120_0000\"\nexpect = \"host\"\n"),
        "mask.toml",
    )
    .unwrap();
    let r = &run_vectors(&interpreter("policy/default.toml"), &file)[0];
    assert!(!r.passed);
    assert_eq!(r.expected, "host");
    assert_eq!(r.got, "force-on at bit 21");
    // After the first run every bit is fixed: the first bit of the mask
    // (24) is named, not a later one.
    let running = mask_case("bits = \"0x8100_0000\"\nexpect = \"host\"\n")
        .replace("\"setup\"", "\"running\"");
    let file = parse_vectors(&running, "running.toml").unwrap();
    let r = &run_vectors(&interpreter("policy/default.toml"), &file)[0];
    assert!(!r.passed);
    assert_eq!(r.got, "fixed at bit 24");
}

#[test]
fn bit_and_bits_are_exactly_one_and_a_mask_is_never_zero() {
    for (body, line, message) in [
        ("bit = 5\nbits = 0x20\nexpect = \"host\"\n", 10, "not both"),
        (
            "expect = \"host\"\n",
            4,
            "needs `bit` (one bit) or `bits` (a mask)",
        ),
        ("bits = 0\nexpect = \"host\"\n", 9, "names no bit"),
        ("bits = \"0x0\"\nexpect = \"host\"\n", 9, "names no bit"),
        (
            "bits = \"0x1_0000_0000\"\nexpect = \"host\"\n",
            9,
            "out of range",
        ),
        ("bits = \"lots\"\nexpect = \"host\"\n", 9, "bits"),
    ] {
        let e = parse_vectors(&mask_case(body), "bad.toml").unwrap_err();
        let errs = errors(e);
        assert!(
            errs.iter()
                .any(|(l, m, _)| *l == line && m.contains(message)),
            "{body:?}: {errs:?}"
        );
    }
}

#[test]
fn a_hyp_case_reports_every_call_its_rule_and_what_it_probed() {
    let file = parse_vectors(
        r#"format = "pvgate-conformance/1"
title = "t"

[[case]]
vm = "protected"
phase = "running"
preamble = [{ pv = "set_rflags", value = 0x202 }, { pv = "vm_finalize" }, { pv = "vcpu_run" }]
pv = "inject_irq"
vector = 31
errno = "EPERM"
cite = "pkvm_inject_irq"

[[case]]
vm = "protected"
phase = "setup"
msr = "IA32_PAT"
access = "write"
expect = "deny"
"#,
        "<t>",
    )
    .unwrap();
    let VectorBody::Cases(cases) = &file.body else {
        panic!("a vector file")
    };
    assert!(matches!(cases[0].check, Check::Hyp(_)));
    assert_eq!(cases[0].line, 4);
    assert_eq!(cases[1].line, 13);
    let r = run_vectors(&interpreter("policy/default.toml"), &file);
    assert!(r[0].passed, "{:?}", r[0]);
    assert!(r[0].hyp);
    assert_eq!(r[0].cite.as_deref(), Some("pkvm_inject_irq"));
    assert_eq!(r[0].request, "protected running `inject_irq` vector 0x1f");
    assert_eq!(r[0].expected, "errno EPERM");
    let names: Vec<&str> = r[0].decided_by.iter().map(|d| d.call.as_str()).collect();
    assert_eq!(
        names,
        ["set_rflags", "vm_finalize", "vcpu_run", "inject_irq"]
    );
    assert_eq!(
        r[0].decided_by[3].rule.as_ref().unwrap().name,
        "pvm-inject-irq"
    );
    let running = |what| Probe {
        kind: VmKind::Protected,
        phase: Phase::Running,
        what,
    };
    assert!(
        r[0].probes
            .contains(&running(Probed::Pv(PvCall::InjectIrq)))
    );
    assert!(r[0].probes.contains(&running(Probed::Vector(31))));
    assert!(r[0].probes.contains(&Probe {
        kind: VmKind::Protected,
        phase: Phase::Setup,
        what: Probed::Pv(PvCall::VmFinalize),
    }));
    // The decision-only case.
    assert!(r[1].passed && !r[1].hyp);
    assert_eq!(
        r[1].probes,
        [Probe {
            kind: VmKind::Protected,
            phase: Phase::Setup,
            what: Probed::Msr {
                access: Access::Write,
                index: 0x277
            },
        }]
    );
    assert_eq!(r[1].decided_by[0].rule, None, "default deny");
}

#[test]
fn driving_is_the_lifecycle_and_a_refused_driving_call_fails_the_case() {
    let text = |kind: &str, phase: &str| {
        format!(
            "format = \"pvgate-conformance/1\"\ntitle = \"t\"\n\n[[case]]\nvm = \"{kind}\"\nphase = \"{phase}\"\npv = \"get_nmi_mask\"\nhyp = true\nexpect = \"allow\"\n"
        )
    };
    let default = interpreter("policy/default.toml");
    for (kind, phase, calls) in [
        ("protected", "setup", vec!["get_nmi_mask"]),
        (
            "protected",
            "running",
            vec!["vm_finalize", "vcpu_run", "get_nmi_mask"],
        ),
        ("normal", "running", vec!["vcpu_run", "get_nmi_mask"]),
        (
            "normal",
            "teardown",
            vec!["vcpu_run", "vm_destroy", "get_nmi_mask"],
        ),
    ] {
        let file = parse_vectors(&text(kind, phase), "<t>").unwrap();
        let r = &run_vectors(&default, &file)[0];
        let names: Vec<&str> = r.decided_by.iter().map(|d| d.call.as_str()).collect();
        assert_eq!(names, calls, "{kind} {phase}");
        assert!(r.passed, "{kind} {phase}: {}", r.got);
    }
    // Protected teardown: get_nmi_mask is refused (the baseline), and the
    // driving reached teardown.
    let file = parse_vectors(&text("protected", "teardown"), "<t>").unwrap();
    let r = &run_vectors(&default, &file)[0];
    assert!(!r.passed);
    assert!(r.got.starts_with("deny (EPERM)"), "{}", r.got);
    // A secondary of a protected VM cannot be driven to running by the host.
    let file = parse_vectors(
        "format = \"pvgate-conformance/1\"\ntitle = \"t\"\n\n[[case]]\nvm = \"protected\"\nphase = \"running\"\nvcpus = 2\nvcpu = 1\npv = \"get_nmi_mask\"\nexpect = \"allow\"\n",
        "<t>",
    )
    .unwrap();
    let r = &run_vectors(&default, &file)[0];
    assert!(!r.passed);
    assert!(
        r.got
            .contains("driving call `vcpu_run` (to reach running) was refused"),
        "{}",
        r.got
    );
}

#[test]
fn every_error_of_a_vector_file_is_returned_at_once_at_its_key() {
    let text = r#"format = "pvgate-conformance/1"
title = "t"

[[case]]
vm = "protectd"
phase = "setup"
pv = "vcpu_run"
expect = "allow"

[[case]]
vm = "protected"
phase = "runing"
msr = "IA32_PAT"
acces = "read"
expect = "allow"

[[case]]
vm = "protected"
phase = "setup"
pv = "set_msr"
msr = "IA32_PATT"
value = 6
errno = "EPRM"
"#;
    let e = errors(parse_vectors(text, "<t>").unwrap_err());
    let want = [
        (5, "unknown vm kind `protectd`", "protected"),
        (12, "unknown phase `runing`", "running"),
        (14, "unknown key `acces`", "access"),
        (21, "unknown msr `IA32_PATT`", "IA32_PAT"),
        (23, "errno `EPRM`", "EPERM"),
    ];
    assert_eq!(e.len(), want.len(), "{e:?}");
    for ((line, message, help), (wl, wm, wh)) in e.iter().zip(want) {
        assert_eq!(*line, wl, "{message}");
        assert!(message.starts_with(wm), "{message}");
        assert_eq!(
            help.as_deref(),
            Some(format!("did you mean `{wh}`?").as_str())
        );
    }
}

#[test]
fn every_error_of_a_trace_is_returned_at_once_at_its_key() {
    let text = r#"format = "pvgate-trace/1"
title = "t"
sorce = "x"

[vm]
kind = "protected"
vcpu = 2

[[call]]
pv = "set_msr"
msr = "IA32_MISC_ENABL"
value = 1

[[call]]
pv = "vcpu_run"
expcet = "allow"

[[call]]
pv = "inject_irq"
vector = 32
errno = "EBUZY"
"#;
    let e = errors(parse(text, "<t>").unwrap_err());
    let lines: Vec<usize> = e.iter().map(|x| x.0).collect();
    assert_eq!(lines, [3, 7, 11, 16, 21], "{e:?}");
    assert_eq!(e[0].2.as_deref(), Some("did you mean `source`?"));
    assert_eq!(e[1].2.as_deref(), Some("did you mean `vcpus`?"));
    assert_eq!(e[2].2.as_deref(), Some("did you mean `IA32_MISC_ENABLE`?"));
    assert_eq!(e[3].2.as_deref(), Some("did you mean `expect`?"));
    assert_eq!(e[4].2.as_deref(), Some("did you mean `EBUSY`?"));
    // A hostile file: not TOML at all, a wrong type, a huge vcpu count.
    for bad in [
        "format = ",
        "format = \"pvgate-trace/1\"\ntitle = 1\n[vm]\nkind = \"normal\"\n",
        "format = \"pvgate-trace/1\"\ntitle = \"t\"\n[vm]\nkind = \"normal\"\nvcpus = 99999999999\n",
        "format = \"pvgate-trace/1\"\ntitle = \"t\"\n[vm]\nkind = \"normal\"\n[[call]]\nsoft = 3\npv = \"inject_irq\"\n",
        "format = \"pvgate-trace/1\"\ntitle = \"t\"\ncall = 3\n[vm]\nkind = \"normal\"\n",
    ] {
        assert!(!errors(parse(bad, "<t>").unwrap_err()).is_empty(), "{bad}");
        assert!(parse_vectors(bad, "<t>").is_err(), "{bad}");
    }
}

/// A hostile file: one line holding a 20,000-call preamble. Each call's
/// line comes from a line index (a binary search), not a scan of the
/// line, so loading stays linear in the file (it was quadratic: 80,000
/// calls took 35 s); the case runs every call and names its line.
#[test]
fn a_one_line_preamble_of_many_calls_loads_and_runs() {
    let calls = vec![r#"{ pv = "get_rflags" }"#; 20_000].join(", ");
    let text = format!(
        "format = \"pvgate-conformance/1\"\ntitle = \"long\"\n[[case]]\nvm = \"protected\"\nphase = \"setup\"\npreamble = [ {calls} ]\npv = \"get_rflags\"\nexpect = \"allow\"\n"
    );
    let file = parse_vectors(&text, "long.toml").expect("the file loads");
    let results = run_vectors(&interpreter("policy/default.toml"), &file);
    assert_eq!(results.len(), 1);
    assert!(results[0].passed, "{:?}", results[0]);
    assert_eq!(results[0].line, 3);
    assert_eq!(results[0].decided_by.len(), 20_001);
}
