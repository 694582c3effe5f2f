//! One numeric grammar (issue 8, finding 5): the compiler, the JSON Schema
//! an editor checks against, the `pvgate-trace/1` loader and the
//! `pvgate-conformance/1` loader are fed the same strings, good and
//! hostile, and must give the same answer: refused by all, or accepted by
//! all with the same value.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{pvgate, root};
use pvgate_codegen::{Resources, compile};

/// Strings written where a number goes (as TOML strings).
const STRINGS: &[&str] = &[
    "0x1A0",
    "0x1a0",
    "0x10",
    "0xffff_ffff",
    "0x0000_01A0",
    "0x00000001A0",
    "0x1_0000_0000",
    "0xFFFFFFFFFFFFFFFF",
    "0xFFFF_FFFF_FFFF_FFFF",
    "0x10000000000000000",
    "0x0000000000000000F",
    "0x+1A0",
    "0x-1",
    "+5",
    "-1",
    "0x",
    "0x_1",
    "0x1_",
    "0x1__0",
    "1_000",
    "416",
    " 0x10",
    "0x10 ",
    "0x1 0",
    "0X10",
    "0b101",
    "0o7",
    "0x１０",
    "１６",
    "0xg",
    "",
    "18446744073709551615",
    "18446744073709551616",
];

/// Bare TOML integers written where a number goes.
const INTEGERS: &[&str] = &[
    "0",
    "0x1A0",
    "0xFFFFFFFF",
    "0x1_0000_0000",
    "-1",
    "+5",
    "1_000",
    "0o7",
    "0b101",
    "0x7FFFFFFFFFFFFFFF",
    "0xFFFFFFFFFFFFFFFF",
    "18446744073709551616",
    "-9223372036854775809",
];

const HEADER: &str =
    "[policy]\nname = \"t\"\ndescription = \"t\"\nformat = 1\ncpuid-violations = \"filter\"\n";

/// A TOML literal for `text` (a quoted string) or the bare integer.
fn literal(text: &str, quoted: bool) -> String {
    if quoted {
        toml::Value::String(text.to_string()).to_string()
    } else {
        text.to_string()
    }
}

/// The compiler's answer for an MSR index (32 bits) or a write mask (64).
fn compiler(lit: &str, bits: u32) -> Option<u64> {
    let rule = if bits == 32 {
        format!("[[msr]]\nmsr = {lit}\n")
    } else {
        format!("[[msr]]\nmsr = 0x1a0\nwrite-mask = {lit}\n")
    };
    let text = format!(
        "{HEADER}{rule}vm = [\"normal\"]\nphase = [\"setup\"]\naccess = [\"write\"]\nverdict = \"allow\"\nreason = \"the numeric grammar test\"\n\
         [[pv]]\ncall = [\"vcpu_run\", \"vm_destroy\"]\nvm = [\"protected\"]\nphase = [\"setup\", \"running\"]\nverdict = \"allow\"\nreason = \"the baseline requires these\"\n\n[[pv]]\ncall = \"vm_finalize\"\nvm = [\"protected\"]\nphase = [\"setup\"]\nverdict = \"allow\"\nreason = \"the baseline requires it\"\n"
    );
    let ir = compile(&text).ok()?;
    let rule = ir.rules.first().unwrap();
    if bits == 32 {
        match &rule.resources {
            Resources::Msr { ranges, .. } => Some(u64::from(ranges[0].0)),
            other => panic!("{other:?}"),
        }
    } else {
        match rule.detail {
            pvgate_gate::RuleDetail::Msr(c) => Some(c.write_mask),
            other => panic!("{other:?}"),
        }
    }
}

/// The schema's answer: the committed `policy/schema.json`'s number type
/// of the field's width, checked with a regex engine for strings.
fn schema(text: &str, quoted: bool, bits: u32) -> bool {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("policy/schema.json")).unwrap())
            .unwrap();
    let def = &schema["$defs"][format!("Number{bits}")]["anyOf"];
    let int = &def[0];
    let string = &def[1];
    assert_eq!(int["type"], "integer");
    assert_eq!(string["type"], "string");
    if quoted {
        let re = regex_lite::Regex::new(string["pattern"].as_str().unwrap()).unwrap();
        re.is_match(text)
    } else {
        let Ok(v) = toml::from_str::<toml::Table>(&format!("v = {text}")) else {
            return false;
        };
        let n = v["v"].as_integer().unwrap();
        n >= int["minimum"].as_i64().unwrap()
            && int["maximum"]
                .as_u64()
                .is_some_and(|m| u64::try_from(n).is_ok_and(|n| n <= m))
    }
}

/// The trace loader's answer: `get_msr` (32-bit index) or `set_msr`'s value (64).
fn trace(lit: &str, bits: u32) -> Option<u64> {
    let call = if bits == 32 {
        format!("pv = \"get_msr\"\nmsr = {lit}\n")
    } else {
        format!("pv = \"set_msr\"\nmsr = 0x1a0\nvalue = {lit}\n")
    };
    let text = format!(
        "format = \"pvgate-trace/1\"\ntitle = \"t\"\n[vm]\nkind = \"protected\"\n[[call]]\n{call}"
    );
    let t = pvgate_trace::parse(&text, "<numbers>").ok()?;
    let shown = format!("{:?}", t.calls[0].call);
    // `Some(GetMsr { index: N })` / `Some(SetMsr { index: 416, value: N })`.
    let n = shown
        .rsplit_once(": ")
        .unwrap()
        .1
        .trim_end_matches(" })")
        .parse()
        .unwrap();
    Some(n)
}

/// The conformance loader's answer (the binary, as a reviewer runs it):
/// whether the vector file loads (exit 0 or 1) or is refused (exit 2).
fn vectors(lit: &str, bits: u32, name: &str) -> Option<u64> {
    let case = if bits == 32 {
        format!("msr = {lit}\naccess = \"read\"\n")
    } else {
        format!("msr = \"IA32_MISC_ENABLE\"\naccess = \"write\"\nvalue = {lit}\n")
    };
    let dir = std::env::temp_dir().join(format!("pvgate-numbers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "format = \"pvgate-conformance/1\"\ntitle = \"t\"\n[[case]]\nvm = \"protected\"\nphase = \"setup\"\n{case}expect = \"deny\"\n"
        ),
    )
    .unwrap();
    let run = pvgate(&[
        "conformance",
        "--format",
        "json",
        "policy/default.toml",
        path.to_str().unwrap(),
    ]);
    if run.code == 2 {
        return None;
    }
    assert!(run.code <= 1, "{lit}: {}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let request = v["files"][0]["cases"][0]["request"]
        .as_str()
        .unwrap()
        .to_string();
    if bits == 32 {
        // "... read of MSR NAME (0x1a0)" or "... read of MSR 0x1a0".
        let hex = request.rsplit("0x").next().unwrap().trim_end_matches(')');
        Some(u64::from_str_radix(hex, 16).unwrap())
    } else {
        // The value is not echoed; loading is the answer.
        Some(u64::MAX)
    }
}

#[test]
fn every_front_end_gives_the_same_answer_for_the_same_number() {
    let mut checked = 0;
    for (quoted, list) in [(true, STRINGS), (false, INTEGERS)] {
        for (i, text) in list.iter().enumerate() {
            for bits in [32, 64] {
                let lit = literal(text, quoted);
                let c = compiler(&lit, bits);
                let s = schema(text, quoted, bits);
                let t = trace(&lit, bits);
                let v = vectors(&lit, bits, &format!("{quoted}-{i}-{bits}"));
                let shown = format!("{lit} ({bits}-bit)");
                assert_eq!(c.is_some(), s, "{shown}: compiler {c:?}, schema {s}");
                assert_eq!(c, t, "{shown}: compiler and trace loader");
                assert_eq!(
                    c.is_some(),
                    v.is_some(),
                    "{shown}: compiler {c:?}, vectors {v:?}"
                );
                if bits == 32 {
                    assert_eq!(c, v, "{shown}: compiler and vector loader");
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * (STRINGS.len() + INTEGERS.len()));
}

#[test]
fn the_grammar_is_the_documented_one() {
    let ok = |t: &str, bits| compiler(&literal(t, true), bits);
    assert_eq!(ok("0x1A0", 32), Some(0x1a0));
    assert_eq!(ok("0xffff_ffff", 32), Some(0xffff_ffff));
    assert_eq!(ok("0xFFFF_FFFF_FFFF_FFFF", 64), Some(u64::MAX));
    for bad in [
        "0x+1A0", "0x-1", "+5", "0x", "0x_1", " 0x10", "0x10 ", "0X10", "0b101", "0o7", "1_000",
        "416", "１６", "",
    ] {
        assert_eq!(ok(bad, 64), None, "{bad:?} must be refused");
    }
    assert_eq!(ok("0x1_0000_0000", 32), None, "an MSR index is 32 bits");
    assert_eq!(ok("0x1_0000_0000", 64), Some(1 << 32));
    assert_eq!(ok("0x10000000000000000", 64), None, "u64::MAX + 1");
    assert_eq!(
        ok("0x00000001A0", 32),
        None,
        "leading zeros count as digits"
    );
}
