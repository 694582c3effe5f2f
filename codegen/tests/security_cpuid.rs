//! The `security` CPUID feature set the baseline invariant
//! `pvm-no-host-controlled-security-cpuid` is proven over: every
//! speculation-control enumeration bit is in it, so a policy giving the
//! host any control over one of them is refused; and the full set is
//! pinned here, so adding or removing one is a visible review change.
#![allow(clippy::unwrap_used)] // test and tool code: a panic is a failed run

use std::path::PathBuf;

use pvgate_codegen::{Registry, compile_in_dir};

fn policy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policy")
}

/// The default policy plus a rule handing the host `mode` control of one
/// bit of a protected VM's CPUID in setup.
fn with_host_control(leaf: u32, subleaf: u32, reg: &str, bit: u8, mode: &str) -> String {
    let text = std::fs::read_to_string(policy_dir().join("default.toml")).unwrap();
    text + &format!(
        "\n[[cpuid]]\nname = \"test-host-speculation-bit\"\nleaf = {leaf:#x}\nsubleaf = {subleaf}\nvm = [\"protected\"]\nphase = [\"setup\"]\nverdict = \"allow\"\n{reg} = {{ {mode} = {:#x} }}\nreason = \"a test hands the host one speculation-control bit\"\n",
        1u32 << bit
    )
}

/// Speculation-control bits the set missed when finding 7 was filed:
/// `(leaf, subleaf, register, bit, registry name)`.
const FINDING_7: &[(u32, u32, &str, u8, &str)] = &[
    (0x7, 2, "edx", 0, "PSFD"),
    (0x7, 2, "edx", 1, "IPRED_CTRL"),
    (0x7, 2, "edx", 2, "RRSBA_CTRL"),
    (0x7, 2, "edx", 4, "BHI_CTRL"),
    (0x7, 0, "edx", 9, "SRBDS_CTRL"),
    (0x8000_0008, 0, "ebx", 12, "AMD_IBPB"),
    (0x8000_0008, 0, "ebx", 14, "AMD_IBRS"),
    (0x8000_0008, 0, "ebx", 15, "AMD_STIBP"),
    (0x8000_0008, 0, "ebx", 24, "AMD_SSBD"),
    (0x8000_0008, 0, "ebx", 25, "VIRT_SSBD"),
    (0x8000_0021, 0, "eax", 8, "AUTOIBRS"),
    (0x8000_0021, 0, "eax", 29, "SRSO_NO"),
];

#[test]
fn host_control_of_a_speculation_control_bit_breaks_the_baseline() {
    for &(leaf, subleaf, reg, bit, name) in FINDING_7 {
        for mode in ["clear-only", "host"] {
            let text = with_host_control(leaf, subleaf, reg, bit, mode);
            let e = compile_in_dir(&text, &policy_dir())
                .err()
                .unwrap_or_else(|| {
                    panic!("{name} ({leaf:#x}.{subleaf} {reg}[{bit}]) as `{mode}` passed")
                });
            let d = e
                .diagnostics
                .iter()
                .find(|d| {
                    d.message
                        .starts_with("invariant `pvm-no-host-controlled-security-cpuid` (")
                })
                .unwrap_or_else(|| panic!("{name}: {:#?}", e.diagnostics));
            assert!(
                d.message.contains(&format!("the host controls `{name}` (")),
                "{}",
                d.message
            );
            assert!(
                d.message.contains("by rule `test-host-speculation-bit`"),
                "{}",
                d.message
            );
        }
    }
}

/// Every `security` feature: `leaf.subleaf REG[bits] NAME`. A change to
/// the set changes this list, in review.
const PINNED: &[&str] = &[
    "0x1.0 ECX[5] VMX",
    "0x1.0 ECX[6] SMX",
    "0x7.0 EBX[2] SGX",
    "0x7.0 EBX[7] SMEP",
    "0x7.0 EBX[20] SMAP",
    "0x7.0 ECX[2] UMIP",
    "0x7.0 ECX[3] PKU",
    "0x7.0 ECX[7] CET_SS",
    "0x7.0 ECX[30] SGX_LC",
    "0x7.0 ECX[31] PKS",
    "0x7.0 EDX[9] SRBDS_CTRL",
    "0x7.0 EDX[10] MD_CLEAR",
    "0x7.0 EDX[18] PCONFIG",
    "0x7.0 EDX[20] CET_IBT",
    "0x7.0 EDX[26] IBRS_IBPB",
    "0x7.0 EDX[27] STIBP",
    "0x7.0 EDX[28] L1D_FLUSH",
    "0x7.0 EDX[29] ARCH_CAPABILITIES",
    "0x7.0 EDX[30] CORE_CAPABILITIES",
    "0x7.0 EDX[31] SSBD",
    "0x7.2 EDX[0] PSFD",
    "0x7.2 EDX[1] IPRED_CTRL",
    "0x7.2 EDX[2] RRSBA_CTRL",
    "0x7.2 EDX[3] DDPD_U",
    "0x7.2 EDX[4] BHI_CTRL",
    "0x7.2 EDX[5] MCDT_NO",
    "0x7.2 EDX[6] UC_LOCK_DISABLE",
    "0x7.2 EDX[7] MONITOR_MITG_NO",
    "0x80000001.0 EDX[20] NX",
    "0x80000008.0 EBX[12] AMD_IBPB",
    "0x80000008.0 EBX[14] AMD_IBRS",
    "0x80000008.0 EBX[15] AMD_STIBP",
    "0x80000008.0 EBX[16] AMD_IBRS_ALWAYS_ON",
    "0x80000008.0 EBX[17] AMD_STIBP_ALWAYS_ON",
    "0x80000008.0 EBX[18] AMD_IBRS_PREFERRED",
    "0x80000008.0 EBX[19] AMD_IBRS_SAME_MODE",
    "0x80000008.0 EBX[24] AMD_SSBD",
    "0x80000008.0 EBX[25] VIRT_SSBD",
    "0x80000008.0 EBX[26] AMD_SSB_NO",
    "0x80000008.0 EBX[28] AMD_PSFD",
    "0x80000008.0 EBX[29] BTC_NO",
    "0x80000008.0 EBX[30] AMD_IBPB_RET",
    "0x80000021.0 EAX[2] LFENCE_RDTSC",
    "0x80000021.0 EAX[5] VERW_CLEAR",
    "0x80000021.0 EAX[8] AUTOIBRS",
    "0x80000021.0 EAX[27] SBPB",
    "0x80000021.0 EAX[28] IBPB_BRTYPE",
    "0x80000021.0 EAX[29] SRSO_NO",
    "0x80000021.0 EAX[30] SRSO_USER_KERNEL_NO",
    "0x80000021.0 EAX[31] SRSO_BP_SPEC_REDUCED",
    "0x80000021.0 ECX[1] TSA_SQ_NO",
    "0x80000021.0 ECX[2] TSA_L1_NO",
];

#[test]
fn the_security_feature_set_is_pinned() {
    let mut found: Vec<(u32, u32, String, u8, String)> = Registry::builtin()
        .features
        .iter()
        .filter(|f| f.security)
        .map(|f| {
            let low = f.mask().trailing_zeros() as u8;
            (
                f.leaf,
                f.subleaf,
                f.reg.to_ascii_uppercase(),
                low,
                f.name.clone(),
            )
        })
        .collect();
    found.sort();
    let found: Vec<String> = found
        .into_iter()
        .map(|(leaf, sub, reg, bit, name)| format!("{leaf:#x}.{sub} {reg}[{bit}] {name}"))
        .collect();
    let pinned: Vec<String> = PINNED.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        found, pinned,
        "the `security` set changed: update PINNED in review"
    );
    for f in Registry::builtin().features.iter().filter(|f| f.security) {
        assert_eq!(
            f.mask().count_ones(),
            1,
            "`{}`: security features are single bits",
            f.name
        );
    }
}
