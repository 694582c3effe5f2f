//! Resolution of the hypervisor's supported-CPUID table
//! (`crate::support`): leaf selectors, register masks by name or number,
//! reasons, and overlaps between entries.

use pvgate_gate::{CpuidSupport, RegSupport, Register};
use toml::Spanned;

use super::Resolver;
use crate::diagnostic::{Diagnostic, ErrorKind};
use crate::ir::SupportEntry;
use crate::model::RawValue;
use crate::model::{SupportFile, SupportLeaf, SupportReg};
use crate::reason;

impl Resolver<'_> {
    /// Every entry of the table, checked one by one and against each
    /// other.
    pub(crate) fn support_table(&mut self, file: &SupportFile) -> Vec<SupportEntry> {
        if *file.format.get_ref() != 1 {
            self.error(Diagnostic::new(
                ErrorKind::BadHeader,
                format!(
                    "unsupported supported-CPUID format `{}`",
                    file.format.get_ref()
                ),
                file.format.span(),
                "this loader reads format 1",
            ));
        }
        let mut out: Vec<SupportEntry> = Vec::new();
        for raw in &file.leaf {
            let Some(entry) = self.support_entry(raw) else {
                continue;
            };
            if let Some(other) = out.iter().find(|o| overlaps(&o.support, &entry.support)) {
                self.error(
                    Diagnostic::new(
                        ErrorKind::Overlap,
                        format!(
                            "supported-CPUID entries overlap: {} is also declared at line {}",
                            describe(&entry.support),
                            other.line
                        ),
                        entry.span.clone(),
                        "second entry",
                    )
                    .with_related(other.span.clone(), "first entry")
                    .with_help("each leaf/subleaf is declared by exactly one entry"),
                );
                continue;
            }
            out.push(entry);
        }
        out
    }

    fn support_entry(&mut self, raw: &Spanned<SupportLeaf>) -> Option<SupportEntry> {
        let before = self.errors.len();
        let e = raw.get_ref();
        let header = self.header_span(&raw.span());
        let leaves = self.cpuid_leaves(&e.leaf);
        let subleaf = self.cpuid_subleaf(&e.subleaf);
        let reason = self.support_reason(&e.reason, &header);
        let mut regs = [RegSupport::NONE; 4];
        if let (Some(leaves), Some(subleaf)) = (leaves, subleaf) {
            for (reg, r) in [
                (Register::Eax, &e.eax),
                (Register::Ebx, &e.ebx),
                (Register::Ecx, &e.ecx),
                (Register::Edx, &e.edx),
            ] {
                if let Some(r) = r {
                    regs[reg as usize] = self.support_reg(r, reg, leaves, subleaf);
                }
            }
        }
        if self.errors.len() != before {
            return None;
        }
        let (leaf_first, leaf_last) = leaves?;
        let (line, _) = self.lines.line_col(header.start);
        Some(SupportEntry {
            support: CpuidSupport {
                leaf_first,
                leaf_last,
                subleaf: subleaf?,
                regs,
            },
            reason,
            line: line as u32,
            span: e.leaf.span(),
        })
    }

    fn support_reason(
        &mut self,
        reason: &Option<Spanned<String>>,
        header: &std::ops::Range<usize>,
    ) -> String {
        match reason {
            None => {
                self.error(
                    Diagnostic::new(
                        ErrorKind::MissingReason,
                        "supported-CPUID entry has no `reason`",
                        header.clone(),
                        "every entry must say why the hypervisor supports this",
                    )
                    .with_help("add `reason = \"...\"` citing the source (pKVM-IA or KVM function, SDM leaf)"),
                );
                String::new()
            }
            Some(r) => {
                if reason::problem(r.get_ref().trim()).is_some() {
                    self.error(
                        Diagnostic::new(
                            ErrorKind::MissingReason,
                            format!(
                                "supported-CPUID reason `{}` says nothing",
                                r.get_ref().trim()
                            ),
                            r.span(),
                            "a reviewer cannot check this",
                        )
                        .with_help("say why the hypervisor supports this and cite its source"),
                    );
                }
                r.get_ref().clone()
            }
        }
    }

    fn support_reg(
        &mut self,
        raw: &Spanned<SupportReg>,
        reg: Register,
        leaves: (u32, u32),
        subleaf: Option<u32>,
    ) -> RegSupport {
        let r = raw.get_ref();
        let pass = self.support_mask(r.pass.as_ref(), "pass", reg, leaves, subleaf);
        let except = self.support_mask(r.except.as_ref(), "except", reg, leaves, subleaf);
        let set = self.support_mask(r.set.as_ref(), "set", reg, leaves, subleaf);
        let context = format!("CPUID {}", reg.name().to_ascii_uppercase());
        if r.pass.is_none() && r.set.is_none() {
            self.error(Diagnostic::new(
                ErrorKind::BadMask,
                format!("`{}` supports nothing: name `pass` or `set`", reg.name()),
                raw.span(),
                "omit the register instead: a register not named is not supported",
            ));
        }
        if let Some(ex) = &r.except {
            if r.pass.is_none() {
                self.error(Diagnostic::new(
                    ErrorKind::MisplacedConstraint,
                    format!("`except` of {context} without `pass`"),
                    ex.span(),
                    "`except` takes bits out of `pass`",
                ));
            } else if except & !pass != 0 {
                self.error(Diagnostic::new(
                    ErrorKind::BadMask,
                    format!(
                        "`except` bits {:#x} of {context} are not in `pass`",
                        except & !pass
                    ),
                    ex.span(),
                    "nothing to take out",
                ));
            }
            if except & set != 0 {
                self.error(Diagnostic::new(
                    ErrorKind::BadMask,
                    format!(
                        "bits {:#x} of {context} are both `except` and `set`",
                        except & set
                    ),
                    ex.span(),
                    "overlaps `set`",
                ));
            }
        }
        if let Some(s) = &r.set
            && leaves.0 != leaves.1
        {
            self.error(Diagnostic::new(
                ErrorKind::BadSelector,
                format!("`set` of {context} on an entry for a leaf range"),
                s.span(),
                "the hypervisor sets bits of one leaf at a time",
            ));
        }
        RegSupport {
            pass: pass & !except,
            set,
        }
    }

    /// One mask of a register: `"all"`, a number, or a list of registry
    /// bit names (of this leaf, subleaf and register) and bit numbers.
    fn support_mask(
        &mut self,
        raw: Option<&RawValue>,
        key: &str,
        reg: Register,
        leaves: (u32, u32),
        subleaf: Option<u32>,
    ) -> u32 {
        let Some(raw) = raw else { return 0 };
        if matches!(raw.get_ref(), toml::Value::String(s) if s == "all") {
            return u32::MAX;
        }
        let leaf = (leaves.0 == leaves.1).then_some(leaves.0);
        if subleaf.is_none()
            && let Some(l) = leaf
            && self.named_bits_on_every_subleaf(raw, l)
        {
            return 0;
        }
        let sub = subleaf.unwrap_or(0);
        let context = match leaf {
            Some(l) => format!(
                "CPUID.(EAX={l:#x},ECX={sub}):{}",
                reg.name().to_ascii_uppercase()
            ),
            None => format!("CPUID {}", reg.name().to_ascii_uppercase()),
        };
        let registry = self.registry;
        let known: Vec<String> = leaf.map_or_else(Vec::new, |l| {
            registry
                .features_of(l, sub, reg)
                .map(|f| f.name.clone())
                .collect()
        });
        let lookup = |name: &str| -> Option<u64> {
            let f = registry.feature(name)?;
            (Some(f.leaf) == leaf && f.subleaf == sub && f.register() == Some(reg))
                .then(|| u64::from(f.mask()))
        };
        self.mask(raw, key, 32, &lookup, &known, &context)
            .map_or(0, |m| m as u32)
    }
}

/// Whether two entries cover a common (leaf, subleaf).
fn overlaps(a: &CpuidSupport, b: &CpuidSupport) -> bool {
    let leaves = a.leaf_first <= b.leaf_last && b.leaf_first <= a.leaf_last;
    let subleaves = match (a.subleaf, b.subleaf) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    };
    leaves && subleaves
}

/// `CPUID leaf 0x7.0`, `CPUID leaves 0x80000002..=0x80000006`.
fn describe(s: &CpuidSupport) -> String {
    let leaf = if s.leaf_first == s.leaf_last {
        format!("CPUID leaf {:#x}", s.leaf_first)
    } else {
        format!("CPUID leaves {:#x}..={:#x}", s.leaf_first, s.leaf_last)
    };
    match s.subleaf {
        Some(sub) => format!("{leaf}.{sub}"),
        None => leaf,
    }
}
