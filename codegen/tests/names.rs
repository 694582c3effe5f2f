//! Names (the policy's, every rule's, every invariant's) follow one
//! grammar: kebab-case `[a-z][a-z0-9]*(-[a-z0-9]+)*`, at most 64 bytes.
//! Anything else is refused with a located `BadName` error, so no name can
//! carry text into generated code (issue 8, finding 1: a rule name with a
//! newline used to end a `//` comment in the Rust tables and add a match arm).
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // test and tool code: a panic is a failed run

use std::path::Path;

use pvgate_codegen::{Diagnostic, ErrorKind, PolicyErrors, compile_in_dir};

fn policy_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy")
}

fn compile(text: &str) -> Result<pvgate_codegen::Ir, PolicyErrors> {
    compile_in_dir(text, &policy_dir())
}

/// The first rule name of the shipped default policy, made an injection.
const INJECTED: &str = "pvm-always-allowed\\n        c if matches!(c, PvCall::GetRflags | PvCall::GetSegment | PvCall::SetRegs) => Some(RuleId(5)),\\n        // x";

/// `policy/default.toml` with its first rule name replaced by `name` (TOML
/// basic-string escapes allowed in `name`).
fn default_with_first_rule_name(name: &str) -> String {
    let text = std::fs::read_to_string(policy_dir().join("default.toml")).unwrap();
    text.replacen(
        "name = \"pvm-always-allowed\"",
        &format!("name = \"{name}\""),
        1,
    )
}

/// The only error, its 1-based line:col and the text its span underlines.
fn only_error(text: &str) -> (Diagnostic, (usize, usize), String) {
    let errors = match compile(text) {
        Ok(_) => panic!("policy compiled, expected a name error:\n{text}"),
        Err(e) => e.diagnostics,
    };
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    let d = errors.into_iter().next().unwrap();
    let pos = d.line_col(text);
    let under = text[d.span.clone()].to_string();
    (d, pos, under)
}

/// 1-based line:col of the first occurrence of `needle`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    let at = text.find(needle).unwrap();
    pvgate_codegen::diagnostic::line_col(text, at)
}

#[test]
fn the_issue_injection_is_refused_at_the_name() {
    let text = default_with_first_rule_name(INJECTED);
    assert!(compile(&default_with_first_rule_name("pvm-always-allowed")).is_ok());
    let (d, pos, under) = only_error(&text);
    assert_eq!(d.kind, ErrorKind::BadName);
    assert!(d.message.starts_with("bad rule name `"), "{}", d.message);
    assert_eq!(pos, position(&text, "\"pvm-always-allowed\\n"));
    assert!(under.starts_with("\"pvm-always-allowed\\n"), "{under}");
    // The rendered error names the file, line and column.
    let rendered = compile(&text).unwrap_err().render("evil.toml", &text);
    assert!(
        rendered.contains(&format!("evil.toml:{}:{}", pos.0, pos.1)),
        "{rendered}"
    );
}

const HEADER_REST: &str = "description = \"t\"\nformat = 1\ncpuid-violations = \"filter\"\n";

fn header(name: &str) -> String {
    format!("[policy]\nname = \"{name}\"\n{HEADER_REST}")
}

const MSR: &str = "[[msr]]\nmsr = 0x10\nvm = [\"normal\"]\nphase = [\"setup\"]\naccess = [\"read\"]\nverdict = \"allow\"\nreason = \"the TSC, as in pKVM-IA's handle_pvm_msr_read\"\n";
const CPUID: &str = "[[cpuid]]\nleaf = 0x1\nvm = [\"normal\"]\nphase = [\"setup\"]\nverdict = \"deny\"\nreason = \"leaf 1 is fixed, as in pKVM-IA's pkvm_init_cpuid\"\n";
/// The calls the mandatory baseline requires on protected VMs, so every
/// test policy here is valid but for the name under test.
const PV: &str = "[[pv]]\ncall = [\"vcpu_run\", \"vm_destroy\"]\nvm = [\"protected\"]\nphase = [\"setup\", \"running\"]\nverdict = \"allow\"\nreason = \"the host runs and destroys its vCPUs (pKVM-IA handle_vcpu_run)\"\n\n[[pv]]\ncall = \"vm_finalize\"\nvm = [\"protected\"]\nphase = [\"setup\"]\nverdict = \"allow\"\nreason = \"the baseline requires it\"\n";
const INVARIANT: &str = "[[invariant]]\nvm = [\"protected\"]\nphase = [\"running\"]\nforbid = \"pv-call\"\ncall = \"set_regs\"\nreason = \"a running protected vCPU's registers are its own\"\n";

/// Names the grammar refuses, with why.
const BAD: [&str; 12] = [
    "",
    "Default",
    "pvm_efer",
    "pvm efer",
    "-pvm",
    "pvm-",
    "pvm--efer",
    "9pvm",
    "pvm\\n// x",
    "pvm\\u202e",
    "pvm*/",
    "é",
];

/// Names it accepts.
const GOOD: [&str; 5] = ["a", "pvm-efer", "npvm-all-calls", "leaf7-2", "x9-9x"];

fn too_long() -> String {
    "a".repeat(65)
}

fn longest() -> String {
    format!("ab{}", "-b".repeat(31))
}

/// Every place a name is written, as a policy with `name` there.
fn policies_naming(name: &str) -> Vec<(&'static str, String)> {
    let ok = header("t");
    vec![
        ("policy", format!("{}{MSR}{PV}", header(name))),
        ("rule", format!("{ok}{MSR}name = \"{name}\"\n{PV}")),
        ("rule", format!("{ok}{CPUID}name = \"{name}\"\n{PV}")),
        ("rule", format!("{ok}{PV}name = \"{name}\"\n")),
        (
            "invariant",
            format!("{ok}{PV}{INVARIANT}name = \"{name}\"\n"),
        ),
    ]
}

#[test]
fn every_name_follows_the_grammar() {
    let mut bad: Vec<String> = BAD.iter().map(|s| s.to_string()).collect();
    bad.push(too_long());
    for name in &bad {
        for (what, text) in policies_naming(name) {
            let (d, pos, under) = only_error(&text);
            assert_eq!(d.kind, ErrorKind::BadName, "{what} `{name}`: {d:#?}");
            assert!(
                d.message.starts_with(&format!("bad {what} name `")),
                "{}",
                d.message
            );
            assert_eq!(under, format!("\"{name}\""), "{what} `{name}`");
            assert_eq!(pos, position(&text, &format!("\"{name}\"\n")));
            assert!(d.help.is_some(), "no help for {what} `{name}`");
        }
    }
    let mut good: Vec<String> = GOOD.iter().map(|s| s.to_string()).collect();
    good.push(longest());
    assert_eq!(longest().len(), 64);
    for name in &good {
        for (what, text) in policies_naming(name) {
            if let Err(e) = compile(&text) {
                panic!("{what} `{name}` refused: {:#?}", e.diagnostics);
            }
        }
    }
}

#[test]
fn an_included_invariant_file_is_held_to_the_grammar() {
    let dir = std::env::temp_dir().join(format!("pvgate-names-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let inc = format!("{INVARIANT}name = \"Bad Name\"\n");
    std::fs::write(dir.join("inv.toml"), &inc).unwrap();
    let text = format!("[policy]\nname = \"t\"\n{HEADER_REST}include = [\"inv.toml\"]\n{PV}");
    let errors = compile_in_dir(&text, &dir).unwrap_err().diagnostics;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let d = &errors[0];
    assert_eq!(d.kind, ErrorKind::BadName);
    let file = d.file.as_ref().expect("located in the included file");
    assert_eq!(&file.text[d.span.clone()], "\"Bad Name\"");
}

#[test]
fn derived_rule_names_need_no_grammar_and_stay_accepted() {
    // A rule without `name` is named after what it selects (registry names,
    // numbers): trusted text, escaped by the emitters like every string.
    let text = format!("{}{MSR}{CPUID}{PV}", header("t"));
    let ir = compile(&text).unwrap();
    // MSR, CPUID and the two PV rules the baseline requires.
    assert_eq!(ir.rules.len(), 4);
}

/// The `Name` definition of a committed schema file.
fn schema_name(file: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(policy_dir().join(file)).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    schema["$defs"]["Name"].clone()
}

proptest::proptest! {
    /// The editor (the schema's pattern and maxLength) and the compiler
    /// accept exactly the same names.
    #[test]
    fn schema_and_compiler_agree_on_names(
        name in "[a-z0-9_A-Z\\- \n\u{202e}é*/]{0,70}|[a-z][a-z0-9-]{0,70}"
    ) {
        for file in ["schema.json", "invariants/schema.json"] {
            let def = schema_name(file);
            let pattern = regex_lite::Regex::new(def["pattern"].as_str().unwrap()).unwrap();
            let max = def["maxLength"].as_u64().unwrap() as usize;
            let min = def["minLength"].as_u64().unwrap() as usize;
            let editor = pattern.is_match(&name) && (min..=max).contains(&name.chars().count());
            proptest::prop_assert_eq!(editor, pvgate_codegen::name::check(&name).is_ok(), "{:?}", name);
        }
    }
}

#[test]
fn schema_and_compiler_agree_on_the_listed_names() {
    let def = schema_name("schema.json");
    let pattern = regex_lite::Regex::new(def["pattern"].as_str().unwrap()).unwrap();
    let mut all: Vec<String> = GOOD
        .iter()
        .chain(BAD.iter())
        .map(|s| s.replace("\\n", "\n").replace("\\u202e", "\u{202e}"))
        .collect();
    all.extend([too_long(), longest()]);
    for name in all {
        let editor = pattern.is_match(&name) && name.chars().count() <= 64 && !name.is_empty();
        assert_eq!(
            editor,
            pvgate_codegen::name::check(&name).is_ok(),
            "{name:?}"
        );
    }
}
