//! Lint: findings a reviewer should look at in a valid policy, each with
//! its lint, a severity, the rule's span and a fix hint. `pvgate lint`
//! renders them (human, JSON, SARIF).

use std::ops::Range;

use pvgate_codegen::registry::MsrAttr;
use pvgate_codegen::{Compiled, Ir, IrRule, Registry, Resources};
use pvgate_gate::{
    Access, MsrConstraint, Phase, PvCall, PvClass, PvConstraint, RegControl, Register, RuleDetail,
    Verdict, VmKind,
};

use crate::describe::{self, join_and};

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Must be fixed: `lint` exits 1.
    Error,
    /// Should be looked at: exits 1 with `--deny-warnings`.
    Warning,
    /// For the reviewer's information.
    Info,
}

impl Severity {
    /// `error`, `warning`, `info`.
    pub const fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// A lint, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LintId {
    /// A protected VM's host may write an MSR with side effects.
    MsrSideEffectWrite,
    /// A protected VM's host may write a write-only (command) MSR.
    MsrWriteOnlyWrite,
    /// A protected VM's host may write a read-only MSR.
    MsrReadOnlyWrite,
    /// A write rule shaped "allow if unchanged".
    AllowIfUnchanged,
    /// A protected VM's host may control a security-critical CPUID bit.
    CpuidSecurityBit,
    /// An `ignore` verdict.
    IgnoreVerdict,
    /// The host may read or write guest state after the first run.
    RunningGuestState,
    /// A call that observes a running protected VM.
    RunningObservesGuest,
    /// Normal VMs are not allowed everything.
    NormalNotAllowAll,
    /// A boilerplate or copied reason.
    WeakReason,
}

impl LintId {
    /// Its stable id (`msr-side-effect-write`), used in output and SARIF.
    pub const fn name(self) -> &'static str {
        match self {
            LintId::MsrSideEffectWrite => "msr-side-effect-write",
            LintId::MsrWriteOnlyWrite => "msr-write-only-write",
            LintId::MsrReadOnlyWrite => "msr-read-only-write",
            LintId::AllowIfUnchanged => "allow-if-unchanged",
            LintId::CpuidSecurityBit => "cpuid-security-bit",
            LintId::IgnoreVerdict => "ignore-verdict",
            LintId::RunningGuestState => "running-guest-state",
            LintId::RunningObservesGuest => "running-observes-guest",
            LintId::NormalNotAllowAll => "normal-not-allow-all",
            LintId::WeakReason => "weak-reason",
        }
    }
}

/// One lint: its id, default severity and what it looks for.
#[derive(Clone, Copy, Debug)]
pub struct Lint {
    /// Which lint.
    pub id: LintId,
    /// Severity.
    pub severity: Severity,
    /// One line: what it finds.
    pub summary: &'static str,
}

/// Every lint, in the order they run.
pub const LINTS: [Lint; 10] = [
    Lint {
        id: LintId::MsrSideEffectWrite,
        severity: Severity::Error,
        summary: "the host of a protected VM may write an MSR whose write has side effects (a command)",
    },
    Lint {
        id: LintId::MsrWriteOnlyWrite,
        severity: Severity::Error,
        summary: "the host of a protected VM may write a write-only (command) MSR",
    },
    Lint {
        id: LintId::MsrReadOnlyWrite,
        severity: Severity::Warning,
        summary: "the host of a protected VM may write an architecturally read-only MSR",
    },
    Lint {
        id: LintId::AllowIfUnchanged,
        severity: Severity::Warning,
        summary: "a write rule with the unsafe \"allow the write if the value is unchanged\" shape",
    },
    Lint {
        id: LintId::CpuidSecurityBit,
        severity: Severity::Error,
        summary: "the host of a protected VM may control a security-critical CPUID bit",
    },
    Lint {
        id: LintId::IgnoreVerdict,
        severity: Severity::Warning,
        summary: "an `ignore` verdict: a stopgap that hides failed host requests",
    },
    Lint {
        id: LintId::RunningGuestState,
        severity: Severity::Warning,
        summary: "the host may read or write a protected VM's guest state after its first run",
    },
    Lint {
        id: LintId::RunningObservesGuest,
        severity: Severity::Info,
        summary: "a call that lets the host observe a running protected VM's state",
    },
    Lint {
        id: LintId::NormalNotAllowAll,
        severity: Severity::Info,
        summary: "normal VMs (which trust their host) are not allowed everything",
    },
    Lint {
        id: LintId::WeakReason,
        severity: Severity::Warning,
        summary: "a rule whose reason is boilerplate or copied from another rule",
    },
];

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The lint that found it.
    pub lint: LintId,
    /// Its severity.
    pub severity: Severity,
    /// Lowercase message; names in backticks.
    pub message: String,
    /// The rule it is about (`None`: the policy as a whole).
    pub rule: Option<String>,
    /// Where to point in the policy text.
    pub span: Range<usize>,
    /// Label under the span.
    pub label: String,
    /// How to fix it.
    pub help: String,
}

/// Every finding in a compiled policy, in rule order.
pub fn findings(c: &Compiled, registry: &Registry) -> Vec<Finding> {
    let mut out = Vec::new();
    for rule in &c.ir.rules {
        msr_attr_writes(&mut out, rule, registry);
        allow_if_unchanged(&mut out, rule, &c.text, registry);
        cpuid_security(&mut out, rule, registry);
        ignore_verdict(&mut out, rule, registry);
        running_guest_state(&mut out, rule, registry);
    }
    weak_reasons(&mut out, &c.ir, &c.text);
    normal_allow_all(&mut out, &c.ir, &c.text);
    out.sort_by_key(|f| (f.span.start, f.severity, f.lint.name()));
    out
}

fn protected(rule: &IrRule) -> bool {
    rule.kinds.contains(&VmKind::Protected)
}

fn scope_of(rule: &IrRule, only_protected: bool) -> String {
    let kinds: Vec<VmKind> = if only_protected {
        vec![VmKind::Protected]
    } else {
        rule.kinds.clone()
    };
    describe::scope(&kinds, &rule.phases)
}

fn msr_attr_writes(out: &mut Vec<Finding>, rule: &IrRule, registry: &Registry) {
    let Resources::Msr { ranges, accesses } = &rule.resources else {
        return;
    };
    if rule.verdict != Verdict::Allow || !protected(rule) || !accesses.contains(&Access::Write) {
        return;
    }
    let checks = [
        (
            MsrAttr::WriteOnly,
            LintId::MsrWriteOnlyWrite,
            Severity::Error,
            ("write-only (command) MSR", "write-only (command) MSRs"),
            "a write-only MSR is a command, not state (writing it acts even when nothing changes): deny it for protected VMs",
        ),
        (
            MsrAttr::SideEffect,
            LintId::MsrSideEffectWrite,
            Severity::Error,
            ("MSR with side effects", "MSRs with side effects"),
            "a write acts even when the value is unchanged: deny it, or let the hypervisor perform the action itself",
        ),
        (
            MsrAttr::ReadOnly,
            LintId::MsrReadOnlyWrite,
            Severity::Warning,
            (
                "architecturally read-only MSR",
                "architecturally read-only MSRs",
            ),
            "the host would choose what the guest reads from a read-only MSR: deny the write, or fix the value in the hypervisor",
        ),
    ];
    let mut reported: Vec<u32> = Vec::new();
    for (attr, lint, severity, what, help) in checks {
        let hits: Vec<&pvgate_codegen::registry::MsrEntry> = registry
            .msrs
            .iter()
            .filter(|m| m.has(attr) && !reported.contains(&m.index))
            .filter(|m| {
                ranges
                    .iter()
                    .any(|&(lo, hi)| lo <= m.index && m.index <= hi)
            })
            .collect();
        if hits.is_empty() {
            continue;
        }
        reported.extend(hits.iter().map(|m| m.index));
        let names: Vec<String> = hits
            .iter()
            .map(|m| format!("`{}` ({:#x})", m.name, m.index))
            .collect();
        let what = if names.len() == 1 { what.0 } else { what.1 };
        out.push(Finding {
            lint,
            severity,
            message: format!(
                "host may write the {what} {} on {}",
                join_and(&names),
                scope_of(rule, true)
            ),
            rule: Some(rule.name.clone()),
            span: rule.spans.resource.clone(),
            label: format!("{} {what}", names.len()),
            help: help.to_string(),
        });
    }
}

fn allow_if_unchanged(out: &mut Vec<Finding>, rule: &IrRule, text: &str, registry: &Registry) {
    let Resources::Msr { ranges, accesses } = &rule.resources else {
        return;
    };
    let RuleDetail::Msr(c) = rule.detail else {
        return;
    };
    if rule.verdict != Verdict::Allow || !accesses.contains(&Access::Write) {
        return;
    }
    let what = ranges
        .iter()
        .map(|&(f, l)| describe::msr_range(registry, f, l))
        .collect::<Vec<_>>();
    let reason = rule.reason.to_ascii_lowercase();
    let phrase = [
        "unchanged",
        "same value",
        "current value",
        "if equal",
        "equals the current",
    ]
    .into_iter()
    .find(|p| reason.contains(p));
    let zero_only = c.write_mask == 0 && c.force_on == 0 && c.force_off == 0;
    if !zero_only && phrase.is_none() {
        return;
    }
    let message = if zero_only {
        format!(
            "rule lets the host write {} only when the value is 0: an \"allow if unchanged\" shape",
            join_and(&what)
        )
    } else {
        format!(
            "rule reason says the write of {} is allowed when the value is {}: an \"allow if unchanged\" shape",
            join_and(&what),
            phrase.unwrap_or("unchanged")
        )
    };
    let span = if zero_only {
        key_span(text, rule, "write-mask").unwrap_or(rule.spans.resource.clone())
    } else {
        key_span(text, rule, "reason").unwrap_or(rule.spans.rule.clone())
    };
    out.push(Finding {
        lint: LintId::AllowIfUnchanged,
        severity: Severity::Warning,
        message,
        rule: Some(rule.name.clone()),
        span,
        label: String::from("allow if unchanged"),
        help: String::from(
            "\"allow if unchanged\" is unsafe for MSRs with side effects (IA32_FLUSH_CMD, IA32_PRED_CMD) and for read-only or write-only MSRs: list exactly which bits the host may set with `write-mask`, or deny the write",
        ),
    });
}

fn cpuid_security(out: &mut Vec<Finding>, rule: &IrRule, registry: &Registry) {
    let Resources::Cpuid { leaves, subleaf } = &rule.resources else {
        return;
    };
    let RuleDetail::Cpuid(regs) = rule.detail else {
        return;
    };
    if rule.verdict != Verdict::Allow || !protected(rule) {
        return;
    }
    for reg in Register::ALL {
        let c: RegControl = regs[reg as usize];
        let mut hits = Vec::new();
        for f in registry.features.iter().filter(|f| {
            f.security
                && leaves.0 <= f.leaf
                && f.leaf <= leaves.1
                && subleaf.is_none_or(|s| s == f.subleaf)
                && f.register() == Some(reg)
        }) {
            let mode = if f.mask() & c.host != 0 {
                "set or clear"
            } else if f.mask() & c.clear_only != 0 {
                "clear"
            } else {
                continue;
            };
            hits.push(format!("`{}` ({}, host may {mode})", f.name, f.location()));
        }
        if hits.is_empty() {
            continue;
        }
        out.push(Finding {
            lint: LintId::CpuidSecurityBit,
            severity: Severity::Error,
            message: format!(
                "host may control security-critical CPUID bit{} {} on {}",
                if hits.len() == 1 { "" } else { "s" },
                join_and(&hits),
                scope_of(rule, true)
            ),
            rule: Some(rule.name.clone()),
            span: rule.spans.resource.clone(),
            label: format!("{} is host-controlled", describe::cpuid_reg(*leaves, *subleaf, reg)),
            help: String::from(
                "a protected VM relies on these bits for its own protection: leave them `fixed` (the hypervisor's base) or force them",
            ),
        });
    }
}

fn ignore_verdict(out: &mut Vec<Finding>, rule: &IrRule, registry: &Registry) {
    if rule.verdict != Verdict::Ignore {
        return;
    }
    let hides = match &rule.resources {
        Resources::Msr { ranges, accesses } => {
            let what: Vec<String> = ranges
                .iter()
                .map(|&(f, l)| describe::msr_range(registry, f, l))
                .collect();
            let acc: Vec<String> = accesses
                .iter()
                .map(|a| match a {
                    Access::Read => String::from("reads of them return zeros"),
                    Access::Write => {
                        String::from("writes to them report success and change nothing")
                    }
                })
                .collect();
            format!("{}: {}", join_and(&what), join_and(&acc))
        }
        Resources::Pv { calls } => {
            let names: Vec<String> = calls.iter().map(|c| format!("`{}`", c.name())).collect();
            format!(
                "calls to {} report success and change nothing (getters return zeros)",
                join_and(&names)
            )
        }
        Resources::Cpuid { .. } => String::from("host CPUID proposals are accepted and dropped"),
    };
    out.push(Finding {
        lint: LintId::IgnoreVerdict,
        severity: Severity::Warning,
        message: format!("`ignore` hides failed host requests on {}: {hides}", scope_of(rule, false)),
        rule: Some(rule.name.clone()),
        span: rule.spans.verdict.clone(),
        label: String::from("the VMM never learns these had no effect"),
        help: String::from(
            "`ignore` is a stopgap for a VMM that still makes the request: deny it once the VMM is fixed (policy/strict.toml shows how)",
        ),
    });
}

fn running_guest_state(out: &mut Vec<Finding>, rule: &IrRule, registry: &Registry) {
    if !protected(rule) || !rule.phases.contains(&Phase::Running) || rule.verdict != Verdict::Allow
    {
        return;
    }
    let scope = describe::scope(&[VmKind::Protected], &[Phase::Running]);
    match &rule.resources {
        Resources::Msr { ranges, accesses } => {
            let what: Vec<String> = ranges
                .iter()
                .map(|&(f, l)| describe::msr_range(registry, f, l))
                .collect();
            let verbs: Vec<String> = accesses.iter().map(|a| a.name().to_string()).collect();
            let severity = if accesses.contains(&Access::Write) {
                Severity::Error
            } else {
                Severity::Warning
            };
            out.push(Finding {
                lint: LintId::RunningGuestState,
                severity,
                message: format!("host may {} {} of {scope}", join_and(&verbs).replace(" and ", " or "), join_and(&what)),
                rule: Some(rule.name.clone()),
                span: rule.spans.resource.clone(),
                label: String::from("guest MSR state after the first run"),
                help: String::from("after the first run a protected VM's MSRs are its own: limit the rule to `setup`"),
            });
        }
        Resources::Pv { calls } => {
            let state: Vec<&PvCall> = calls
                .iter()
                .filter(|c| matches!(c.class(), PvClass::Setup | PvClass::Denied))
                .collect();
            if !state.is_empty() {
                let names: Vec<String> = state.iter().map(|c| format!("`{}`", c.name())).collect();
                let severity = if state.iter().any(|c| c.access() == Access::Write) {
                    Severity::Error
                } else {
                    Severity::Warning
                };
                out.push(Finding {
                    lint: LintId::RunningGuestState,
                    severity,
                    message: format!(
                        "host may call {} on {scope}: they read or write guest state",
                        join_and(&names)
                    ),
                    rule: Some(rule.name.clone()),
                    span: rule.spans.resource.clone(),
                    label: String::from("guest state after the first run"),
                    help: String::from(
                        "pKVM-IA allows these only before the first run: limit the rule to `setup`",
                    ),
                });
            }
            let RuleDetail::Pv(c) = rule.detail else {
                return;
            };
            let observe: Vec<String> = calls
                .iter()
                .filter(|call| {
                    call.class() == PvClass::Always
                        && call.access() == Access::Read
                        && c.read_mask == PvConstraint::NONE.read_mask
                })
                .map(|call| format!("`{}`", call.name()))
                .collect();
            if !observe.is_empty() {
                out.push(Finding {
                    lint: LintId::RunningObservesGuest,
                    severity: Severity::Info,
                    message: format!("host may call {} on {scope}: each answer reveals guest state (`interrupt_allowed` reveals RFLAGS.IF)", join_and(&observe)),
                    rule: Some(rule.name.clone()),
                    span: rule.spans.resource.clone(),
                    label: String::from("observes a running guest"),
                    help: String::from("pKVM-IA allows these; the review thread proposes `inject_irq_if_allowed`, which checks and injects without telling the host"),
                });
            }
        }
        Resources::Cpuid { leaves, subleaf } => {
            let RuleDetail::Cpuid(regs) = rule.detail else {
                return;
            };
            let controlled: Vec<String> = Register::ALL
                .into_iter()
                .filter(|r| regs[*r as usize].host | regs[*r as usize].clear_only != 0)
                .map(|r| describe::cpuid_reg(*leaves, *subleaf, r))
                .collect();
            if !controlled.is_empty() {
                out.push(Finding {
                    lint: LintId::RunningGuestState,
                    severity: Severity::Warning,
                    message: format!("host may change {} of {scope}", join_and(&controlled)),
                    rule: Some(rule.name.clone()),
                    span: rule.spans.resource.clone(),
                    label: String::from("CPUID after the first run"),
                    help: String::from("after the first run a new CPUID table must equal the current one: limit the rule to `setup`"),
                });
            }
        }
    }
}

/// Words that make a reason say nothing a reviewer can check.
const BOILERPLATE_STARTS: [&str; 8] = [
    "todo",
    "fixme",
    "tbd",
    "xxx",
    "wip",
    "temp",
    "placeholder",
    "see above",
];
const BOILERPLATE_WHOLE: [&str; 10] = [
    "needed",
    "required",
    "necessary",
    "as before",
    "as above",
    "legacy",
    "for now",
    "because",
    "allowed",
    "default",
];

fn weak_reasons(out: &mut Vec<Finding>, ir: &Ir, text: &str) {
    for (i, rule) in ir.rules.iter().enumerate() {
        let reason = rule.reason.trim();
        let lower = reason.to_ascii_lowercase();
        let words = reason.split_whitespace().count();
        let span = key_span(text, rule, "reason").unwrap_or(rule.spans.rule.clone());
        let problem = if BOILERPLATE_STARTS.iter().any(|b| lower.starts_with(b))
            || BOILERPLATE_WHOLE.contains(&lower.trim_end_matches('.'))
        {
            Some(format!(
                "rule `{}` has a boilerplate reason `{reason}`",
                rule.name
            ))
        } else if words < 4 {
            Some(format!(
                "rule `{}` has a {words}-word reason `{reason}`",
                rule.name
            ))
        } else {
            ir.rules[..i]
                .iter()
                .find(|r| r.reason.trim() == reason)
                .map(|prev| {
                    format!(
                        "rule `{}` has the same reason as rule `{}` (line {})",
                        rule.name, prev.name, prev.line
                    )
                })
        };
        if let Some(message) = problem {
            out.push(Finding {
                lint: LintId::WeakReason,
                severity: Severity::Warning,
                message,
                rule: Some(rule.name.clone()),
                span,
                label: String::from("a reviewer cannot check this"),
                help: String::from("say why this rule exists and cite its source (pKVM-IA, the review thread, crosvm)"),
            });
        }
    }
}

fn normal_allow_all(out: &mut Vec<Finding>, ir: &Ir, text: &str) {
    let mut gaps = Vec::new();
    let allow_all_rule = |id, full: &dyn Fn(&RuleDetail) -> bool| {
        ir.rule(id)
            .is_some_and(|r| r.verdict == Verdict::Allow && full(&r.detail))
    };
    for phase in Phase::ALL {
        let missing: Vec<PvCall> = PvCall::ALL
            .into_iter()
            .filter(|&call| {
                let id = ir
                    .pv
                    .get(&(VmKind::Normal, phase))
                    .and_then(|l| l.iter().find(|(c, _)| *c == call))
                    .map(|(_, id)| *id);
                !id.is_some_and(|id| {
                    allow_all_rule(id, &|d| *d == RuleDetail::Pv(PvConstraint::NONE))
                })
            })
            .collect();
        if !missing.is_empty() {
            let names: Vec<String> = missing
                .iter()
                .take(3)
                .map(|c| format!("`{}`", c.name()))
                .collect();
            let more = if missing.len() > 3 {
                format!(" and {} more", missing.len() - 3)
            } else {
                String::new()
            };
            gaps.push(format!(
                "PV calls {}{more} in {}",
                names.join(", "),
                phase.name()
            ));
        }
        for access in Access::ALL {
            let full = ir
                .msr
                .get(&(VmKind::Normal, phase, access))
                .is_some_and(|l| {
                    l.len() == 1
                        && l[0].first == 0
                        && l[0].last == u32::MAX
                        && allow_all_rule(l[0].rule, &|d| {
                            *d == RuleDetail::Msr(MsrConstraint::NONE)
                        })
                });
            if !full {
                gaps.push(format!("MSR {}s in {}", access.name(), phase.name()));
            }
        }
        let all = RegControl {
            host: u32::MAX,
            ..RegControl::FIXED
        };
        let full = ir.cpuid.get(&(VmKind::Normal, phase)).is_some_and(|l| {
            l.len() == 1
                && l[0].leaf_first == 0
                && l[0].leaf_last == u32::MAX
                && l[0].subleaf.is_none()
                && allow_all_rule(l[0].rule, &|d| *d == RuleDetail::Cpuid([all; 4]))
        });
        if !full {
            gaps.push(format!("CPUID control in {}", phase.name()));
        }
    }
    if gaps.is_empty() {
        return;
    }
    let first_normal = ir.rules.iter().find(|r| r.kinds.contains(&VmKind::Normal));
    let span = match first_normal {
        Some(r) => r.spans.rule.clone(),
        None => text
            .find("[policy]")
            .map_or(0..0, |i| i..i + "[policy]".len()),
    };
    let shown: Vec<String> = gaps.iter().take(4).cloned().collect();
    let more = if gaps.len() > 4 {
        format!("; and {} more", gaps.len() - 4)
    } else {
        String::new()
    };
    out.push(Finding {
        lint: LintId::NormalNotAllowAll,
        severity: Severity::Info,
        message: format!("normal VMs are not allowed everything: {}{more}", shown.join("; ")),
        rule: first_normal.map(|r| r.name.clone()),
        span,
        label: String::from("normal VMs trust their host"),
        help: String::from(
            "a normal VM trusts its host; if that is intended, write the restriction down with a reason, else allow everything explicitly",
        ),
    });
}

/// The span of `key = value`'s value inside a rule's table, if written there.
pub fn key_span(text: &str, rule: &IrRule, key: &str) -> Option<Range<usize>> {
    let start = rule.spans.rule.start;
    let body = text.get(start..)?;
    let mut offset = start;
    for (n, line) in body.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_start();
        if n > 0 && trimmed.starts_with('[') {
            return None;
        }
        if let Some(rest) = trimmed.strip_prefix(key) {
            let rest_trim = rest.trim_start();
            if let Some(value) = rest_trim.strip_prefix('=') {
                let value_start = offset + (line.len() - value.trim_start().len());
                let value_len = value.trim_end().len()
                    - (value.len() - value.trim_start().len()).min(value.trim_end().len());
                return Some(value_start..value_start + value_len.max(1));
            }
        }
        offset += line.len();
    }
    None
}
