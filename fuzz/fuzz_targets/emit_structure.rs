//! Arbitrary strings in every string field of a policy (its name and
//! description, each rule's name and reason, an invariant's name and
//! reason, the policy path) must never change the structure of the
//! generated code (issue 8, finding 1).
//!
//! Two checks per input. Through the front end: the policy with the
//! fuzzer's strings either is refused, or compiles and emits Rust tables
//! and a C header that tokenize like the same policy with plain strings,
//! literal contents aside. Behind the front end: the fuzzer's strings put
//! straight into a compiled IR's names and reasons (what a looser front end
//! could let through) give the same structure too.
#![no_main]

#[path = "../../codegen/tests/support/structure.rs"]
mod structure;

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use pvgate_codegen::emit::{Shape, rust_shaped};
use pvgate_codegen::{Ir, c_emit};

/// The strings of one policy.
struct Strings {
    name: String,
    description: String,
    rule_names: [String; 3],
    reasons: [String; 3],
    invariant_name: String,
    invariant_reason: String,
    path: String,
}

impl Strings {
    fn plain() -> Strings {
        let name = || String::from("plain-name");
        let reason = || String::from("plain reason citing the SDM");
        Strings {
            name: name(),
            description: String::from("plain description"),
            rule_names: [name(), name(), name()],
            reasons: [reason(), reason(), reason()],
            invariant_name: name(),
            invariant_reason: reason(),
            path: String::from("plain/plain.toml"),
        }
    }

    fn from(u: &mut Unstructured<'_>) -> Option<Strings> {
        let mut s = || u.arbitrary::<String>().ok();
        Some(Strings {
            name: s()?,
            description: s()?,
            rule_names: [s()?, s()?, s()?],
            reasons: [s()?, s()?, s()?],
            invariant_name: s()?,
            invariant_reason: s()?,
            path: s()?,
        })
    }

    /// A policy with one rule of each class (and the `vm_finalize` rule the
    /// baseline requires) and one invariant.
    fn policy(&self) -> String {
        let q = toml_string;
        format!(
            "[policy]\nname = {}\ndescription = {}\nformat = 1\ncpuid-violations = \"filter\"\n\n\
             [[msr]]\nname = {}\nmsr = [\"IA32_TSC\", 0x1a0]\nvm = [\"normal\"]\nphase = [\"setup\"]\naccess = [\"read\"]\nverdict = \"allow\"\nreason = {}\n\n\
             [[cpuid]]\nname = {}\nleaf = [0x1, 0x3]\nsubleaf = 0\nvm = [\"normal\"]\nphase = [\"setup\"]\nverdict = \"allow\"\nreason = {}\neax = {{ host = 0xff }}\n\n\
             [[pv]]\nname = {}\ncall = [\"vcpu_run\", \"vm_destroy\"]\nvm = [\"normal\", \"protected\"]\nphase = [\"setup\", \"running\"]\nverdict = \"allow\"\nreason = {}\n\n\
             [[pv]]\nname = {}\ncall = \"vm_finalize\"\nvm = [\"protected\"]\nphase = [\"setup\"]\nverdict = \"allow\"\nreason = {}\n\n\
             [[invariant]]\nname = {}\nvm = [\"protected\"]\nphase = [\"running\"]\nforbid = \"pv-call\"\ncall = \"set_regs\"\nreason = {}\n",
            q(&self.name),
            q(&self.description),
            q(&self.rule_names[0]),
            q(&self.reasons[0]),
            q(&self.rule_names[1]),
            q(&self.reasons[1]),
            q(&self.rule_names[2]),
            q(&self.reasons[2]),
            q(&self.rule_names[2]),
            q(&self.reasons[2]),
            q(&self.invariant_name),
            q(&self.invariant_reason),
        )
    }

    /// `ir` with these strings in every string the emitters write.
    fn put(&self, ir: &Ir) -> Ir {
        let mut ir = ir.clone();
        ir.name = self.name.clone();
        ir.description = self.description.clone();
        for (i, r) in ir.rules.iter_mut().enumerate() {
            r.name = self.rule_names[i % 3].clone();
            r.reason = self.reasons[i % 3].clone();
        }
        ir
    }
}

/// A TOML basic string holding `s`.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const SHAPES: [Shape; 4] = [Shape::Match, Shape::Sorted, Shape::Bitmap, Shape::Auto];

/// The plain policy, compiled, and its Rust (every shape) and C: the same
/// for every input, so made once.
struct Plain {
    ir: Ir,
    rust: Vec<String>,
    c: String,
}

fn plain() -> &'static Plain {
    static PLAIN: OnceLock<Plain> = OnceLock::new();
    PLAIN.get_or_init(|| {
        let strings = Strings::plain();
        let ir = match pvgate_codegen::compile_in_dir(&strings.policy(), Path::new("/nonexistent"))
        {
            Ok(ir) => ir,
            Err(e) => panic!("the plain policy does not compile: {:#?}", e.diagnostics),
        };
        let rust = SHAPES
            .iter()
            .map(|&s| rust_shaped(&ir, &strings.path, s))
            .collect();
        let c = c_emit::c(&ir, &strings.path);
        Plain { ir, rust, c }
    })
}

/// The Rust (every shape) and C of `evil` have the structure of the plain
/// policy's.
fn same_structure(evil: &Ir, evil_path: &str) {
    let plain = plain();
    for (shape, p) in SHAPES.into_iter().zip(&plain.rust) {
        let h = rust_shaped(evil, evil_path, shape);
        if let Err(e) = structure::same_rust_structure(&h, p) {
            panic!("Rust ({shape:?}) structure changed: {e}\n{h}");
        }
    }
    let h = c_emit::c(evil, evil_path);
    if let Err(e) = structure::same_c_structure(&h, &plain.c) {
        panic!("C structure changed: {e}\n{h}");
    }
}

fn compile(text: &str) -> Option<Ir> {
    pvgate_codegen::compile_in_dir(text, Path::new("/nonexistent")).ok()
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Some(evil) = Strings::from(&mut u) else {
        return;
    };
    if let Some(evil_ir) = compile(&evil.policy()) {
        same_structure(&evil_ir, &evil.path);
    }
    same_structure(&evil.put(&plain().ir), &evil.path);
});
