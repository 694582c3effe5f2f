//! Seeded random policies, valid by construction, for the conformance
//! tests (tables ≡ interpreter), the invariant property tests and the
//! benchmarks. Deterministic: the same seed gives the same text.

use std::fmt::Write;

use pvgate_gate::{Phase, PvCall, VmKind};

/// A tiny deterministic PRNG (xorshift64*), so samples need no dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for a seed (any value; 0 is remapped).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
}

/// Shape of a sampled policy.
#[derive(Clone, Copy, Debug)]
pub struct SampleSize {
    /// Number of disjoint MSR ranges.
    pub msr_ranges: usize,
    /// Number of disjoint CPUID leaf selectors.
    pub cpuid_leaves: usize,
}

/// A random valid policy. MSR ranges, CPUID leaves and PV call groups are
/// disjoint by construction; kinds, phases, accesses, verdicts and
/// constraints are random. Valid includes the mandatory protected-VM
/// baseline: a rule that breaks it is narrowed to normal VMs, and
/// `vcpu_run` and `vm_destroy` are allowed on protected VMs in setup and
/// running (the baseline requires it).
pub fn random_policy(seed: u64, size: SampleSize) -> String {
    let mut text = random_text(seed, size);
    // Each round narrows at least one rule; rules scoped to normal VMs
    // cannot break a protected-VM invariant, so this ends.
    for _ in 0..8 {
        let Ok(ir) = crate::lower_unproven(&text) else {
            return text;
        };
        let broken: Vec<u32> = crate::prove::check(&ir, crate::Registry::builtin())
            .iter()
            .flat_map(|v| v.rules.iter().filter_map(|id| ir.rule(*id)).map(|r| r.line))
            .collect();
        if broken.is_empty() {
            break;
        }
        text = narrow_to_normal(&text, &broken);
    }
    text
}

/// Rewrites the `vm = ...` line of the rules whose headers are on the
/// given 1-based lines to `vm = ["normal"]`.
fn narrow_to_normal(text: &str, header_lines: &[u32]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_broken = false;
    for (i, line) in text.lines().enumerate() {
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if line.starts_with("[[") {
            in_broken = header_lines.contains(&n);
        }
        if in_broken && line.starts_with("vm = ") {
            out.push_str("vm = [\"normal\"]\n");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn random_text(seed: u64, size: SampleSize) -> String {
    let mut rng = Rng::new(seed);
    let mut o = String::new();
    let mode = if rng.chance(1, 2) { "filter" } else { "reject" };
    let _ = write!(
        o,
        "[policy]\nname = \"sample-{seed}\"\ndescription = \"seeded random policy\"\nformat = 1\ncpuid-violations = \"{mode}\"\n"
    );

    // MSR: sorted distinct boundaries, with the edges of the index space
    // and the architectural ranges likely.
    let mut points: Vec<u64> = vec![
        0,
        0x1a0,
        0x200,
        0x2ff,
        0x800,
        0x8ff,
        0xc000_0080,
        0xffff_ffff,
    ];
    while points.len() < size.msr_ranges * 2 + 2 {
        let p = match rng.below(4) {
            0 => rng.below(0x1000),
            1 => 0xc000_0000 + rng.below(0x200),
            _ => rng.below(1 << 32),
        };
        points.push(p);
    }
    points.sort();
    points.dedup();
    let mut i = 0;
    let mut emitted = 0;
    while i + 1 < points.len() && emitted < size.msr_ranges {
        let (first, last) = (
            points[i],
            if rng.chance(1, 3) {
                points[i]
            } else {
                points[i + 1] - 1
            },
        );
        let (first, last) = (first, last.max(first));
        i += if last == points[i] && rng.chance(1, 2) {
            1
        } else {
            2
        };
        if i > points.len() {
            break;
        }
        emitted += 1;
        let verdict = ["allow", "deny", "ignore"][rng.below(3) as usize];
        let accesses = pick(&mut rng, &["read", "write"]);
        let _ = write!(o, "\n[[msr]]\nrange = [{first:#x}, {last:#x}]\n");
        write_scope(&mut o, &mut rng);
        let _ = writeln!(o, "access = {}", list(&accesses));
        let _ = writeln!(o, "verdict = \"{verdict}\"");
        if verdict == "allow" {
            if accesses.contains(&"write") && rng.chance(1, 2) {
                let wm = rng.next_u64();
                let fon = rng.next_u64() & rng.next_u64();
                let foff = rng.next_u64() & rng.next_u64() & !fon;
                let _ = write!(
                    o,
                    "write-mask = \"{wm:#x}\"\nforce-on = \"{fon:#x}\"\nforce-off = \"{foff:#x}\"\n"
                );
            }
            if accesses.contains(&"read") && rng.chance(1, 3) {
                let _ = writeln!(o, "read-mask = \"{:#x}\"", rng.next_u64());
            }
        }
        let _ = writeln!(o, "reason = \"a sampled rule, number {emitted}\"");
    }

    // CPUID: distinct leaves, each with one subleaf or all.
    let mut leaves: Vec<u64> = Vec::new();
    while leaves.len() < size.cpuid_leaves {
        let l = match rng.below(3) {
            0 => rng.below(0x20),
            1 => 0x4000_0000 + rng.below(4),
            _ => 0x8000_0000 + rng.below(0x20),
        };
        if !leaves.contains(&l) {
            leaves.push(l);
        }
    }
    for leaf in leaves {
        let verdict = if rng.chance(3, 4) { "allow" } else { "deny" };
        let _ = write!(o, "\n[[cpuid]]\nleaf = {leaf:#x}\n");
        if rng.chance(1, 2) {
            let _ = writeln!(o, "subleaf = {}", rng.below(3));
        }
        write_scope(&mut o, &mut rng);
        let _ = writeln!(o, "verdict = \"{verdict}\"");
        if verdict == "allow" {
            for reg in ["eax", "ebx", "ecx", "edx"] {
                if rng.chance(1, 2) {
                    let host = rng.next_u64() as u32 & rng.next_u64() as u32;
                    let clear = rng.next_u64() as u32 & !host;
                    let on = rng.next_u64() as u32 & rng.next_u64() as u32 & !(host | clear);
                    let off = rng.next_u64() as u32 & rng.next_u64() as u32 & !(host | clear | on);
                    let _ = writeln!(
                        o,
                        "{reg} = {{ host = {host:#x}, clear-only = {clear:#x}, force-on = {on:#x}, force-off = {off:#x} }}"
                    );
                }
            }
        }
        let _ = writeln!(o, "reason = \"a sampled CPUID leaf\"");
    }

    // PV: the baseline's required calls, then the others split into
    // random groups.
    let _ = write!(
        o,
        "\n[[pv]]\ncall = [\"vcpu_run\", \"vm_destroy\"]\nvm = [\"protected\"]\nphase = [\"setup\", \"running\"]\nverdict = \"allow\"\nreason = \"the baseline requires these\"\n\n[[pv]]\ncall = \"vm_finalize\"\nvm = [\"protected\"]\nphase = [\"setup\"]\nverdict = \"allow\"\nreason = \"the baseline requires it\"\n"
    );
    let mut calls: Vec<PvCall> = PvCall::ALL
        .into_iter()
        .filter(|c| !matches!(c, PvCall::VcpuRun | PvCall::VmDestroy | PvCall::VmFinalize))
        .collect();
    while !calls.is_empty() {
        let n = (1 + rng.below(6) as usize).min(calls.len());
        let group: Vec<PvCall> = calls.drain(..n).collect();
        if rng.chance(1, 4) {
            continue;
        }
        let names: Vec<&str> = group.iter().map(|c| c.name()).collect();
        let verdict = ["allow", "deny", "ignore"][rng.below(3) as usize];
        let _ = write!(o, "\n[[pv]]\ncall = {}\n", list(&names));
        write_scope(&mut o, &mut rng);
        let _ = writeln!(o, "verdict = \"{verdict}\"");
        let getters = group
            .iter()
            .all(|c| c.access() == pvgate_gate::Access::Read);
        if verdict == "allow" && getters && rng.chance(1, 2) {
            let _ = writeln!(o, "read-mask = \"{:#x}\"", rng.next_u64());
        }
        let _ = writeln!(o, "reason = \"sampled PV calls\"");
    }
    o
}

/// A large policy of `rules` MSR rules on disjoint single-index ranges,
/// for the compiler's scaling benchmarks and the decision benchmarks:
/// rule `i` decides MSR [`large_policy_msr`]`(i)` for normal VMs in setup
/// and running, reads and writes, with a verdict cycling through allow, deny
/// and ignore. The first 16,384 rules fill KVM's two MSR-bitmap regions
/// (0x0–0x1FFF, 0xC0000000–0xC0001FFF); later ones lie above 0x40000000.
/// Plus the PV rules the mandatory baseline requires. Deterministic.
pub fn large_policy(rules: usize) -> String {
    let mut o = String::with_capacity(rules * 140 + 512);
    let _ = write!(
        o,
        "[policy]\nname = \"large-{rules}\"\ndescription = \"{rules} MSR rules on disjoint ranges\"\nformat = 1\ncpuid-violations = \"filter\"\n\n[[pv]]\ncall = [\"vcpu_run\", \"vm_destroy\"]\nvm = [\"protected\"]\nphase = [\"setup\", \"running\"]\nverdict = \"allow\"\nreason = \"the baseline requires these\"\n\n[[pv]]\ncall = \"vm_finalize\"\nvm = [\"protected\"]\nphase = [\"setup\"]\nverdict = \"allow\"\nreason = \"the baseline requires it\"\n"
    );
    for i in 0..rules {
        let msr = large_policy_msr(i);
        let verdict = ["allow", "deny", "ignore"][i % 3];
        let _ = write!(
            o,
            "\n[[msr]]\nmsr = {msr:#x}\nvm = [\"normal\"]\nphase = [\"setup\", \"running\"]\naccess = [\"read\", \"write\"]\nverdict = \"{verdict}\"\nreason = \"a generated rule, number {i}\"\n"
        );
    }
    o
}

/// The MSR index rule `i` of [`large_policy`] decides.
pub fn large_policy_msr(i: usize) -> u32 {
    let i = u32::try_from(i).unwrap_or(u32::MAX);
    match i {
        0..0x2000 => i,
        0x2000..0x4000 => 0xc000_0000 + (i - 0x2000),
        _ => 0x4000_0000u32.saturating_add(i.saturating_mul(2)),
    }
}

fn write_scope(o: &mut String, rng: &mut Rng) {
    let kinds = pick(rng, &VmKind::ALL.map(VmKind::name));
    let phases = pick(rng, &Phase::ALL.map(Phase::name));
    let _ = write!(o, "vm = {}\nphase = {}\n", list(&kinds), list(&phases));
}

/// A non-empty random subset, in the given order.
fn pick<'a>(rng: &mut Rng, all: &[&'a str]) -> Vec<&'a str> {
    loop {
        let chosen: Vec<&str> = all.iter().copied().filter(|_| rng.chance(1, 2)).collect();
        if !chosen.is_empty() {
            return chosen;
        }
    }
}

fn list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pvgate_gate::RuleId;

    #[test]
    fn samples_compile_and_are_deterministic() {
        for seed in 0..64 {
            let size = SampleSize {
                msr_ranges: 1 + (seed as usize % 90),
                cpuid_leaves: 1 + (seed as usize % 12),
            };
            let text = random_policy(seed, size);
            assert_eq!(text, random_policy(seed, size));
            if let Err(e) = crate::compile(&text) {
                panic!("seed {seed}:\n{}\n{text}", e.render("sample", &text));
            }
        }
    }

    // The overlap check's cost on large policies (the linear compiler).

    /// The algorithm, pinned without a clock: disjoint rules are never
    /// compared with each other (the old pairwise check made n²/2
    /// comparisons), and a wide rule is compared once with each rule it
    /// meets, not with every rule.
    #[test]
    fn disjoint_rules_are_not_compared() {
        let ir = crate::lower_unproven(&large_policy(3000)).expect("the large policy lowers");
        assert!(ir.rules.len() > 3000);
        let (pairs, compared) = crate::overlap::candidates(&ir.rules);
        assert!(pairs.is_empty());
        assert_eq!(compared, 0);
    }

    /// Rule ids are not limited to 16 bits: a policy of more than 65,535
    /// rules compiles, each rule keeps its own id, and the tables name the
    /// high ids (they wrapped to a low one, or the policy was refused,
    /// while a rule id was a `u16`).
    #[test]
    fn a_policy_of_more_than_65535_rules_keeps_every_rule_id() {
        let ir = crate::compile(&large_policy(66_000)).expect("the large policy compiles");
        assert!(ir.rules.len() > 66_000, "{}", ir.rules.len());
        for (i, rule) in ir.rules.iter().enumerate() {
            assert_eq!(rule.id, RuleId(u32::try_from(i).expect("fits")), "rule {i}");
        }
        let last = ir.rules.last().expect("rules").id;
        assert!(last.0 > u32::from(u16::MAX), "{last:?}");
        let tables = crate::emit::rust(&ir, "large.toml");
        assert!(
            tables.contains(&format!("RuleId({})", last.0)),
            "the tables name rule {last:?}"
        );
    }

    #[test]
    fn comparisons_grow_with_the_overlaps_only() {
        let mut ir = crate::lower_unproven(&large_policy(1000)).expect("the large policy lowers");
        // Widen the first MSR rule over every later one: 999 real
        // overlaps per key, each found once.
        let first = ir
            .rules
            .iter()
            .position(|r| r.class == crate::ir::RuleClass::Msr)
            .expect("an MSR rule");
        if let crate::ir::Resources::Msr { ranges, .. } = &mut ir.rules[first].resources {
            *ranges = vec![(0, u32::MAX)];
        }
        let (pairs, compared) = crate::overlap::candidates(&ir.rules);
        assert_eq!(pairs.len(), 999);
        // Two phases, two accesses: four keys, each with 999 meetings.
        assert_eq!(compared, 999 * 4);
        let found = crate::overlap::check(&ir.rules, crate::Registry::builtin());
        assert_eq!(found.len(), 999);
    }
}
