//! `emit --lang c`: the header compiles with `cc -std=c11 -Wall -Werror`
//! (and -Wextra -pedantic) and decides exactly as the interpreter (the
//! reference semantics) on the same boundary inputs the Rust tables are
//! tested on: every range boundary ±1, 0, u32::MAX, every kind × phase ×
//! access, every PV call, out-of-range enum values (fail closed), and the
//! MSR value checks and CPUID merge of every rule.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::fmt::Write;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{pvgate, root};
use pvgate_codegen::{Baseline, Interpreter, Ir, Resources, compile_file_with};
use pvgate_gate::{
    Access, Phase, Policy, PvCall, RuleDetail, VmKind, check_msr_write, merge_register,
};

const DRIVER: &str = r#"
#include <stdio.h>
#include "policy.h"

int main(void)
{
	char op;
	while (scanf(" %c", &op) == 1) {
		unsigned k, p, a, r, reg;
		unsigned long long v, base, host;
		switch (op) {
		case 'm':
			if (scanf("%u %u %u %llx", &k, &p, &a, &v) != 4) return 2;
			printf("%d %d\n", pvgate_msr_rule((enum pvgate_vm_kind)k, (enum pvgate_phase)p, (enum pvgate_access)a, (uint32_t)v),
			       (int)pvgate_decide_msr((enum pvgate_vm_kind)k, (enum pvgate_phase)p, (enum pvgate_access)a, (uint32_t)v));
			break;
		case 'c':
			if (scanf("%u %u %llx %llx", &k, &p, &base, &host) != 4) return 2;
			printf("%d\n", pvgate_cpuid_rule((enum pvgate_vm_kind)k, (enum pvgate_phase)p, (uint32_t)base, (uint32_t)host));
			break;
		case 'p':
			if (scanf("%u %u %llu", &k, &p, &v) != 3) return 2;
			printf("%d\n", pvgate_pv_rule((enum pvgate_vm_kind)k, (enum pvgate_phase)p, (enum pvgate_pv_call)v));
			break;
		case 'w': {
			uint64_t stored = 0;
			if (scanf("%u %llx", &r, &v) != 2) return 2;
			if (pvgate_check_msr_write(&pvgate_rule((int)r)->msr, v, &stored))
				printf("ok %llx\n", (unsigned long long)stored);
			else
				printf("refused\n");
			break;
		}
		case 'g': {
			uint32_t violations = 0, eff;
			if (scanf("%u %u %llx %llx", &r, &reg, &base, &host) != 4) return 2;
			eff = pvgate_merge_register((uint32_t)base, (uint32_t)host, &pvgate_rule((int)r)->cpuid[reg], &violations);
			printf("%x %x\n", (unsigned)eff, (unsigned)violations);
			break;
		}
		default:
			return 2;
		}
	}
	return 0;
}
"#;

fn id(r: Option<pvgate_gate::RuleId>) -> i32 {
    r.map_or(-1, |r| i32::try_from(r.0).expect("rule ids fit the C ABI"))
}

fn near(points: &mut BTreeSet<u32>, x: u32) {
    points.extend([x.saturating_sub(1), x, x.saturating_add(1)]);
}

/// The queries and the interpreter's answers, one line each.
fn queries(ir: &Ir) -> (String, String) {
    let interp = Interpreter::new(ir.clone());
    let (mut q, mut a) = (String::new(), String::new());
    let mut msr_points = BTreeSet::from([0, u32::MAX, 0x1a0, 0xda0, 0xc000_0080]);
    let mut leaf_points = BTreeSet::from([0, 1, 7, u32::MAX, 0x4000_0001, 0x8000_0000]);
    let mut subleaves = BTreeSet::from([0, 1, u32::MAX]);
    for r in &ir.rules {
        match &r.resources {
            Resources::Msr { ranges, .. } => ranges.iter().for_each(|&(f, l)| {
                near(&mut msr_points, f);
                near(&mut msr_points, l);
            }),
            Resources::Cpuid { leaves, subleaf } => {
                near(&mut leaf_points, leaves.0);
                near(&mut leaf_points, leaves.1);
                if let Some(s) = subleaf {
                    near(&mut subleaves, *s);
                }
            }
            Resources::Pv { .. } => {}
        }
    }
    for kind in VmKind::ALL {
        for phase in Phase::ALL {
            for access in Access::ALL {
                for &i in &msr_points {
                    let _ = writeln!(q, "m {} {} {} {i:x}", kind as u8, phase as u8, access as u8);
                    let rule = interp.msr_rule(kind, phase, access, i);
                    let verdict = pvgate_gate::decide_msr(&interp, kind, phase, access, i).verdict;
                    let _ = writeln!(a, "{} {}", id(rule), verdict as u8);
                }
            }
            for &leaf in &leaf_points {
                for &sub in &subleaves {
                    let _ = writeln!(q, "c {} {} {leaf:x} {sub:x}", kind as u8, phase as u8);
                    let _ = writeln!(a, "{}", id(interp.cpuid_rule(kind, phase, leaf, sub)));
                }
            }
            for call in PvCall::ALL {
                let _ = writeln!(q, "p {} {} {}", kind as u8, phase as u8, call.number());
                let _ = writeln!(a, "{}", id(interp.pv_rule(kind, phase, call)));
            }
        }
    }
    // Out-of-range enum values and call numbers fail closed.
    for (k, p, x) in [(2, 0, 0), (0, 3, 0), (0, 0, 2), (7, 9, 5)] {
        let _ = writeln!(q, "m {k} {p} {x} 1a0");
        let _ = writeln!(a, "-1 0");
    }
    for (k, p, c) in [(2, 0, 16), (0, 3, 16), (0, 0, 0), (0, 0, 55), (1, 0, 999)] {
        let _ = writeln!(q, "p {k} {p} {c}");
        let _ = writeln!(a, "-1");
    }
    // Value checks and CPUID merges of every rule.
    let values = [0, 1, 0x1801, 0x1809, u64::MAX, 1 << 63, 0xdead_beef];
    let regs = [0, u32::MAX, 0x8120_2000, 0xf7f8_3203, 0x80];
    for r in &ir.rules {
        match r.detail {
            RuleDetail::Msr(c) => {
                for v in values {
                    let _ = writeln!(q, "w {} {v:x}", r.id.0);
                    match check_msr_write(c, v) {
                        Ok(s) => writeln!(a, "ok {s:x}"),
                        Err(_) => writeln!(a, "refused"),
                    }
                    .unwrap();
                }
            }
            RuleDetail::Cpuid(controls) => {
                for (reg, c) in controls.iter().enumerate() {
                    for base in regs {
                        for host in regs {
                            let _ = writeln!(q, "g {} {reg} {base:x} {host:x}", r.id.0);
                            let m = merge_register(base, host, *c);
                            let _ = writeln!(a, "{:x} {:x}", m.effective, m.violations);
                        }
                    }
                }
            }
            RuleDetail::Pv(_) => {}
        }
    }
    (q, a)
}

/// The baseline of the fixtures that break the shipped one on purpose.
const FIXTURE_BASELINE: &str = "cli/tests/fixtures/fixture-baseline.toml";

fn compile_and_compare(policy: &Path, name: &str) {
    let baseline = match name {
        "risky" | "review-changed" => FIXTURE_BASELINE,
        _ => "",
    };
    compile_and_compare_with(policy, name, baseline);
}

/// `baseline`: a file relative to the workspace root, or "" for the shipped one.
fn compile_and_compare_with(policy: &Path, name: &str, baseline: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("c-header-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let shown = policy.display().to_string();
    let mut args = vec!["emit", "--lang", "c", &shown];
    if !baseline.is_empty() {
        args.extend(["--baseline", baseline]);
    }
    let run = pvgate(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    std::fs::write(dir.join("policy.h"), &run.stdout).unwrap();
    std::fs::write(dir.join("driver.c"), DRIVER).unwrap();
    let exe = dir.join("driver");
    let cc = Command::new("cc")
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-pedantic",
            "-Werror",
            "-O1",
            "-o",
        ])
        .arg(&exe)
        .arg(dir.join("driver.c"))
        .output()
        .expect("a C compiler (`cc`) is installed");
    assert!(
        cc.status.success(),
        "{name}: the header does not compile:\n{}",
        String::from_utf8_lossy(&cc.stderr)
    );

    let baseline = Baseline::from_setting(&root(), Some(baseline)).unwrap();
    let ir = compile_file_with(root().join(policy), &shown, &baseline)
        .unwrap_or_else(|e| panic!("{}", e.render()))
        .ir;
    let (q, expected) = queries(&ir);
    let mut child = Command::new(&exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(q.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{name}: driver failed");
    let got = String::from_utf8(out.stdout).unwrap();
    let (ql, gl, el): (Vec<&str>, Vec<&str>, Vec<&str>) = (
        q.lines().collect(),
        got.lines().collect(),
        expected.lines().collect(),
    );
    assert_eq!(gl.len(), el.len(), "{name}: answer count");
    for ((q, g), e) in ql.iter().zip(&gl).zip(&el) {
        assert_eq!(g, e, "{name}: C and the interpreter disagree on `{q}`");
    }
    assert!(el.len() > 500, "{name}: only {} inputs compared", el.len());
}

#[test]
fn c_header_agrees_with_the_interpreter_on_the_shipped_policies() {
    compile_and_compare(Path::new("policy/default.toml"), "default");
    compile_and_compare(Path::new("policy/strict.toml"), "strict");
}

#[test]
fn c_header_agrees_with_the_interpreter_on_the_fixtures() {
    for f in ["review", "review-changed", "risky"] {
        compile_and_compare(&PathBuf::from(format!("cli/tests/fixtures/{f}.toml")), f);
    }
}

#[test]
fn c_header_uses_a_sorted_table_for_large_policies_and_still_agrees() {
    let mut text = String::from(
        "[policy]\nname = \"large\"\ndescription = \"generated: many MSR ranges\"\nformat = 1\ncpuid-violations = \"filter\"\n\n[[pv]]\ncall = [\"vcpu_run\", \"vm_destroy\"]\nvm = [\"protected\"]\nphase = [\"setup\", \"running\"]\nverdict = \"allow\"\nreason = \"the protected-VM baseline requires these\"\n\n[[pv]]\ncall = \"vm_finalize\"\nvm = [\"protected\"]\nphase = [\"setup\"]\nverdict = \"allow\"\nreason = \"the baseline requires it\"\n",
    );
    for i in 0..100u32 {
        let first = 0x4000_0000 + i * 16;
        let verdict = ["allow", "deny", "ignore"][i as usize % 3];
        let _ = write!(
            text,
            "\n[[msr]]\nrange = [{first:#x}, {:#x}]\nvm = [\"protected\"]\nphase = [\"setup\"]\naccess = [\"write\"]\nverdict = \"{verdict}\"\nreason = \"generated rule number {i} for the sorted-table shape\"\n",
            first + i % 5
        );
    }
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("large-policy.toml");
    std::fs::write(&path, text).unwrap();
    let header = pvgate(&["emit", "--lang", "c", &path.display().to_string()]).stdout;
    assert!(
        header.contains("} table[100] = {"),
        "more than 64 ranges use a sorted table"
    );
    compile_and_compare(&path, "large");
}

#[test]
fn c_header_is_deterministic() {
    let a = pvgate(&["emit", "--lang", "c", "policy/default.toml"]).stdout;
    let b = pvgate(&["emit", "--lang", "c", "policy/default.toml"]).stdout;
    assert_eq!(a, b);
}
