//! `pvgate image`: builds the C-callable staticlib (`pvgate-image`) for a
//! policy with cargo, checks that the digest embedded in the built library
//! is the policy's, and writes the library, `pvgate.h`, the policy's C
//! header and `manifest.json` to one directory (docs/image.md).
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use pvgate_codegen::{Compiled, RuleClass, digest};
use serde_json::{Value, json};

use crate::embedded;
use crate::error::{CliError, Outcome};
use crate::load;

mod build;

use self::build::{ImageError, LIBRARY, Target};

/// The policy's generated C header, as written to the output directory.
const POLICY_HEADER: &str = "pvgate_policy.h";

/// Build the hypervisor image (a static library) for a policy.
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "pvgate image [OPTIONS] <POLICY>",
    after_help = "Writes to DIR (default: <cargo target dir>/pvgate-image/<policy name>/) \
                  libpvgate_image.a, pvgate.h, pvgate_policy.h (`emit --lang c`) and \
                  manifest.json, after checking that the digest embedded in the library is the \
                  policy's. docs/image.md has the link command and a C example.\n\n\
                  Examples:\n  \
                  cargo pvgate image policy/strict.toml\n  \
                  cargo pvgate image policy/strict.toml --target none --out /tmp/pvgate-strict-none"
)]
pub struct Args {
    /// The policy to compile into the image.
    #[arg(
        value_name = "POLICY",
        required_unless_present = "deprecated_policy",
        conflicts_with = "deprecated_policy"
    )]
    pub policy_arg: Option<PathBuf>,
    /// Deprecated spelling of POLICY (one release).
    #[arg(long = "policy", value_name = "POLICY", hide = true)]
    pub deprecated_policy: Option<PathBuf>,
    /// The policy, from either spelling (filled by `resolve`).
    #[arg(skip)]
    pub policy: PathBuf,
    /// What to build for.
    #[arg(long, value_enum, default_value_t)]
    pub target: Target,
    /// Where to write the image.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Output format of the summary (`json`: the output directory and the
    /// manifest).
    #[arg(long, value_enum, default_value_t)]
    pub format: crate::format::Format,
}

/// Rule counts by class.
fn rule_counts(c: &Compiled) -> Value {
    let n = |class: RuleClass| c.ir.rules.iter().filter(|r| r.class == class).count();
    json!({
        "total": c.ir.rules.len(),
        "msr": n(RuleClass::Msr),
        "cpuid": n(RuleClass::Cpuid),
        "pv": n(RuleClass::Pv),
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    std::fs::write(path, bytes).map_err(|e| ImageError::Write(path.to_path_buf(), e))
}

impl Args {
    /// Settles the policy from either spelling (`policy_arg`).
    pub fn resolve(&mut self) -> Result<(), CliError> {
        self.policy = crate::policy_arg::resolve(
            "image",
            "POLICY [--target none|host] [--out DIR]",
            self.policy_arg.take(),
            self.deprecated_policy.take(),
            None,
        )?;
        Ok(())
    }
}

/// Runs `image`.
pub fn run(args: &Args) -> Result<Outcome, CliError> {
    let policy = load::policy(&args.policy)?;
    let name = policy.ir.name.clone();
    if pvgate_codegen::name::check(&name).is_err() {
        return Err(CliError::arg(format!(
            "the policy name `{name}` cannot name a directory; give --out DIR"
        )));
    }
    let hex = digest::hex(&digest::digest(&policy.ir));
    let ws = build::workspace()?;
    let (rustc, host) = build::toolchain(&ws)?;
    let triple = match args.target {
        Target::Host => host,
        Target::None => build::NONE_TRIPLE.to_string(),
    };
    let job = build::plan(&ws, &args.policy, args.target, &name)?;
    eprintln!(
        "building the image of policy `{name}` ({}) for {triple}:\n  {}",
        policy.path,
        job.shown()
    );
    build::run_build(&ws, &job)?;

    // The library must carry this policy's digest, or nothing is written.
    let embedded = embedded::digest(&job.library)
        .map_err(|e| ImageError::Unreadable(format!("{}: {e}", job.library.display())))?;
    let embedded = digest::hex(&embedded);
    if embedded != hex {
        eprintln!(
            "error: the built library carries digest {embedded}, but policy `{}` has {hex}; \
             nothing was written",
            policy.path
        );
        return Ok(Outcome::Found);
    }

    let out = match &args.out {
        Some(d) => d.clone(),
        None => ws.target_dir.join("pvgate-image").join(&name),
    };
    std::fs::create_dir_all(&out).map_err(|e| ImageError::Write(out.clone(), e))?;
    let library =
        std::fs::read(&job.library).map_err(|e| ImageError::Write(job.library.clone(), e))?;
    write(&out.join(LIBRARY), &library)?;
    let header = std::fs::read(ws.root.join("image/include/pvgate.h"))
        .map_err(|e| ImageError::Write(ws.root.join("image/include/pvgate.h"), e))?;
    write(&out.join("pvgate.h"), &header)?;
    let policy_header = pvgate_codegen::c_emit::c(&policy.ir, &policy.path);
    write(&out.join(POLICY_HEADER), policy_header.as_bytes())?;
    let manifest = json!({
        "format": 1,
        "policy": {
            "path": policy.path,
            "name": name,
            "digest": hex,
        },
        "baseline": {
            "file": policy.ir.baseline.file,
            "sha256": policy.ir.baseline.sha256,
            "invariants": policy.ir.baseline.invariants,
        },
        "rules": rule_counts(&policy),
        "target": {
            "name": args.target.to_possible_value().map(|v| v.get_name().to_string()),
            "triple": triple,
        },
        "toolchain": rustc,
        "build": {
            "command": job.shown(),
            "directory": ws.root.display().to_string(),
        },
        "library": {
            "file": LIBRARY,
            "embedded_digest": embedded,
            "digest_section": embedded::SECTION,
        },
        "headers": ["pvgate.h", POLICY_HEADER],
    });
    let manifest_text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
    write(
        &out.join("manifest.json"),
        format!("{manifest_text}\n").as_bytes(),
    )?;

    if args.format == crate::format::Format::Json {
        let v = json!({"out": out.display().to_string(), "manifest": manifest});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(Outcome::Clean);
    }
    let counts = rule_counts(&policy);
    println!("image    {name} ({})", policy.path);
    println!("digest   {hex} (verified in {LIBRARY})");
    println!(
        "baseline {} ({})",
        policy.ir.baseline.sha256, policy.ir.baseline.file
    );
    println!(
        "rules    {} ({} msr, {} cpuid, {} pv)",
        counts["total"], counts["msr"], counts["cpuid"], counts["pv"]
    );
    println!("target   {triple}");
    println!("out      {}", out.display());
    println!("         {LIBRARY}, pvgate.h, {POLICY_HEADER}, manifest.json");
    Ok(Outcome::Clean)
}
