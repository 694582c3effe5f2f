//! `pvgate init`: a commented starter policy for a new VM type that passes
//! `check` (it allows what the protected-VM baseline requires and nothing
//! else for protected VMs; `--kind normal` also trusts normal VMs' hosts).

use std::path::{Path, PathBuf};

use clap::ValueEnum;

use crate::error::{CliError, Outcome};

/// Write a commented starter policy (stdout, or `--out FILE`).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cargo pvgate init --kind protected my-vm > policy/my-vm.toml\n  cargo pvgate init --kind normal --out policy/trusted.toml trusted"
)]
pub struct Args {
    /// The policy's name (kebab-case: `a-z`, `0-9`, `-`).
    #[arg(value_name = "NAME", default_value = "my-policy")]
    pub name: String,
    /// Which VMs the starter is for: `protected` allows protected VMs only
    /// what the baseline requires; `normal` also allows normal VMs (which
    /// trust their host) everything.
    #[arg(long, value_enum, default_value_t = Kind::Protected)]
    pub kind: Kind,
    /// Write the policy to FILE (refused if it exists) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The kind of starter policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Protected VMs: default deny, the baseline's required calls allowed.
    Protected,
    /// Protected VMs as above, and normal VMs allowed everything.
    Normal,
}

/// Where the shipped baseline is, relative to a policy in `policy/`.
const BASELINE_INCLUDE: &str = "invariants/protected-baseline.toml";

/// Runs `init`.
pub fn run(args: &Args) -> Result<Outcome, CliError> {
    if let Err(e) = pvgate_codegen::name::check(&args.name) {
        return Err(CliError::arg_with(
            format!("`{}` is not a policy name", args.name.escape_debug()),
            Some(e.describe().to_string()),
        ));
    }
    let include = match &args.out {
        // On stdout: assume the file goes to `policy/`, next to `invariants/`.
        None => true,
        Some(out) => out
            .parent()
            .map(|d| {
                if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                }
            })
            .is_some_and(|d| d.join(BASELINE_INCLUDE).is_file()),
    };
    let text = starter(&args.name, args.kind, include);
    match &args.out {
        None => print!("{text}"),
        Some(out) => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(out)
                .map_err(|e| CliError::arg(format!("cannot create `{}`: {e}", out.display())))?;
            std::io::Write::write_all(&mut file, text.as_bytes())
                .map_err(|e| CliError::arg(format!("cannot write `{}`: {e}", out.display())))?;
            eprintln!(
                "wrote {}; next: cargo pvgate check {}",
                out.display(),
                out.display()
            );
        }
    }
    Ok(Outcome::Clean)
}

/// The starter policy's text.
pub fn starter(name: &str, kind: Kind, include_baseline: bool) -> String {
    let include = if include_baseline {
        format!("include = [\"{BASELINE_INCLUDE}\"]\n")
    } else {
        format!(
            "# The baseline was not found next to this file; where it is, list it:\n# include = [\"{BASELINE_INCLUDE}\"]\n"
        )
    };
    let (what, normal) = match kind {
        Kind::Protected => ("protected VMs", ""),
        Kind::Normal => ("protected and normal VMs", NORMAL_RULES),
    };
    format!(
        "# pvgate policy `{name}`: a starter for {what}, written by `pvgate init`.\n\
# Everything not allowed below is denied (default deny). Add a rule for each\n\
# call, MSR or CPUID leaf the host needs, with a reason citing its source;\n\
# then `cargo pvgate check` and `cargo pvgate lint` this file, and\n\
# `cargo pvgate fmt` it. docs/policy-language.md describes every key.\n\
\n\
[policy]\n\
name = \"{name}\"\n\
description = \"A starter policy for {what}: default deny, the baseline's required calls allowed\"\n\
format = 1\n\
# The protected-VM baseline is proven whether or not it is listed here;\n\
# listing it tells a reader which invariants apply.\n\
{include}\
# `filter`: a CPUID bit the host may not control takes the hypervisor's value;\n\
# `reject`: such a CPUID table is refused.\n\
cpuid-violations = \"filter\"\n\
{PROTECTED_RULES}{normal}"
    )
}

/// The protected-VM rules every policy needs (the baseline requires them).
const PROTECTED_RULES: &str = r#"
# ---------------------------------------------------------------------------
# Protected VMs: what the baseline requires, and nothing else yet
# ---------------------------------------------------------------------------

[[pv]]
name = "pvm-run"
call = "vcpu_run"
vm = ["protected"]
phase = ["setup", "running"]
verdict = "allow"
reason = "the baseline requires it: the host runs the vCPU (pKVM-IA pkvm_vcpu_run)"

[[pv]]
name = "pvm-finalize"
call = "vm_finalize"
vm = ["protected"]
phase = ["setup"]
verdict = "allow"
reason = "the baseline requires it: the host ends the VM's setup before its first run"

[[pv]]
name = "pvm-destroy"
call = "vm_destroy"
vm = ["protected"]
phase = ["setup", "running", "teardown"]
verdict = "allow"
reason = "the baseline requires it: the host can always tear the VM down and reclaim its memory"

# An MSR the host may write while it builds the boot state, e.g.:
#
# [[msr]]
# name = "pvm-efer"
# msr = "IA32_EFER"
# vm = ["protected"]
# phase = ["setup"]
# access = ["write"]
# verdict = "allow"
# reason = "the VMM writes EFER while it builds the boot state"
"#;

/// Normal VMs trust their host: every call, MSR and CPUID bit allowed.
const NORMAL_RULES: &str = r#"
# ---------------------------------------------------------------------------
# Normal VMs trust their host
# ---------------------------------------------------------------------------

[[pv]]
name = "npvm-all-calls"
call = "*"
vm = ["normal"]
phase = ["setup", "running", "teardown"]
verdict = "allow"
reason = "normal VMs trust their host: every PV call is allowed, as in pKVM-IA for non-protected VMs"

[[msr]]
name = "npvm-all-msrs"
range = [0x0, 0xFFFFFFFF]
vm = ["normal"]
phase = ["setup", "running", "teardown"]
access = ["read", "write"]
verdict = "allow"
reason = "normal VMs trust their host: it may read and write every MSR of their vCPUs"

[[cpuid]]
name = "npvm-all-cpuid"
leaf = "all"
vm = ["normal"]
phase = ["setup", "running", "teardown"]
verdict = "allow"
eax = { host = 0xFFFFFFFF }
ebx = { host = 0xFFFFFFFF }
ecx = { host = 0xFFFFFFFF }
edx = { host = 0xFFFFFFFF }
reason = "normal VMs trust their host: it chooses their whole CPUID table"
"#;
