//! The name registries in `policy/registry/`: MSRs (Intel SDM names, Linux
//! `msr-index.h` aliases, attributes, named bits) and CPUID feature bits
//! (with the `security` flag on those a protected VM relies on).
//!
//! The registries are data files, compiled into this crate so that
//! `build.rs` and the command line resolve names identically.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use pvgate_gate::Register;
use serde::Deserialize;

/// The MSR registry source.
pub const MSR_REGISTRY_TOML: &str = include_str!("../../policy/registry/msrs.toml");
/// The CPUID registry source.
pub const CPUID_REGISTRY_TOML: &str = include_str!("../../policy/registry/cpuid.toml");

/// An MSR attribute that makes "allow a write" dangerous.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MsrAttr {
    /// Writing it does something (a command), beyond storing a value.
    SideEffect,
    /// The architecture does not allow writing it.
    ReadOnly,
    /// The architecture does not allow reading it.
    WriteOnly,
}

impl MsrAttr {
    /// The attribute's name in the registry.
    pub const fn name(self) -> &'static str {
        match self {
            MsrAttr::SideEffect => "side-effect",
            MsrAttr::ReadOnly => "read-only",
            MsrAttr::WriteOnly => "write-only",
        }
    }
}

/// A named single bit of an MSR.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MsrBit {
    /// The bit's name (SDM mnemonic).
    pub name: String,
    /// The bit number, 0..=63.
    pub bit: u8,
}

/// One registry MSR.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MsrEntry {
    /// The Intel SDM name.
    pub name: String,
    /// The MSR index.
    pub index: u32,
    /// Linux `msr-index.h` names.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Attributes.
    #[serde(default)]
    pub attrs: Vec<MsrAttr>,
    /// Named bits.
    #[serde(default)]
    pub bits: Vec<MsrBit>,
}

impl MsrEntry {
    /// Whether the MSR has the attribute.
    pub fn has(&self, attr: MsrAttr) -> bool {
        self.attrs.contains(&attr)
    }
}

/// One named CPUID feature (a bit or a multi-bit field).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuidFeature {
    /// The feature's name.
    pub name: String,
    /// The leaf.
    pub leaf: u32,
    /// The subleaf (0 for leaves without subleaves).
    #[serde(default)]
    pub subleaf: u32,
    /// The register, `eax` … `edx`.
    pub reg: String,
    /// A single bit ...
    #[serde(default)]
    pub bit: Option<u8>,
    /// ... or an inclusive bit range.
    #[serde(default)]
    pub bits: Option<[u8; 2]>,
    /// Whether a protected VM relies on it for its own protection.
    #[serde(default)]
    pub security: bool,
    /// What it is.
    #[serde(default)]
    pub desc: String,
}

impl CpuidFeature {
    /// The register the feature lives in.
    pub fn register(&self) -> Option<Register> {
        Register::from_name(&self.reg)
    }

    /// The feature's bits as a mask of its register.
    pub fn mask(&self) -> u32 {
        let (lo, hi) = match (self.bit, self.bits) {
            (Some(b), _) => (b, b),
            (None, Some([lo, hi])) => (lo, hi),
            (None, None) => return 0,
        };
        (lo..=hi.min(31)).fold(0, |m, b| m | 1u32 << b)
    }

    /// The SDM-style location, e.g. `CPUID.(EAX=7,ECX=0):EBX[7]`.
    pub fn location(&self) -> String {
        let bits = match (self.bit, self.bits) {
            (Some(b), _) => format!("{b}"),
            (None, Some([lo, hi])) => format!("{hi}:{lo}"),
            (None, None) => String::from("?"),
        };
        format!(
            "CPUID.(EAX={:#x},ECX={}):{}[{bits}]",
            self.leaf,
            self.subleaf,
            self.reg.to_ascii_uppercase()
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MsrFile {
    msr: Vec<MsrEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CpuidFile {
    feature: Vec<CpuidFeature>,
}

/// The CPUID registry read again for one fact [`CpuidFeature`] loses:
/// whether a feature's `subleaf` was written (its leaf has subleaves).
#[derive(Deserialize)]
struct SubleafProbe {
    feature: Vec<ProbedFeature>,
}

#[derive(Deserialize)]
struct ProbedFeature {
    name: String,
    leaf: u32,
    #[serde(default)]
    subleaf: Option<u32>,
}

/// The leaves whose features name a subleaf; a leaf whose features both
/// name one and omit it is an error.
fn leaves_with_subleaves(cpuid_toml: &str) -> Result<BTreeSet<u32>, RegistryError> {
    let probe = toml::from_str::<SubleafProbe>(cpuid_toml)
        .map_err(|e| RegistryError(format!("cpuid.toml: {e}")))?;
    let with: BTreeSet<u32> = probe
        .feature
        .iter()
        .filter(|f| f.subleaf.is_some())
        .map(|f| f.leaf)
        .collect();
    if let Some(f) = probe
        .feature
        .iter()
        .find(|f| f.subleaf.is_none() && with.contains(&f.leaf))
    {
        return Err(RegistryError(format!(
            "cpuid.toml: feature `{}` of leaf {:#x} has no `subleaf`, but other features of the leaf name one",
            f.name, f.leaf
        )));
    }
    Ok(with)
}

/// Both registries, indexed.
#[derive(Debug)]
pub struct Registry {
    /// Every MSR, in file order.
    pub msrs: Vec<MsrEntry>,
    /// Every CPUID feature, in file order.
    pub features: Vec<CpuidFeature>,
    msr_by_name: BTreeMap<String, usize>,
    msr_by_index: BTreeMap<u32, usize>,
    subleaf_leaves: BTreeSet<u32>,
}

/// A registry file that does not load.
#[derive(Debug)]
pub struct RegistryError(pub String);

impl Registry {
    /// Parses registry sources.
    pub fn parse(msr_toml: &str, cpuid_toml: &str) -> Result<Registry, RegistryError> {
        let msrs = toml::from_str::<MsrFile>(msr_toml)
            .map_err(|e| RegistryError(format!("msrs.toml: {e}")))?
            .msr;
        let features = toml::from_str::<CpuidFile>(cpuid_toml)
            .map_err(|e| RegistryError(format!("cpuid.toml: {e}")))?
            .feature;
        let mut msr_by_name = BTreeMap::new();
        let mut msr_by_index = BTreeMap::new();
        for (i, m) in msrs.iter().enumerate() {
            for name in std::iter::once(&m.name).chain(&m.aliases) {
                if msr_by_name.insert(name.clone(), i).is_some() {
                    return Err(RegistryError(format!(
                        "msrs.toml: `{name}` is defined twice"
                    )));
                }
            }
            if msr_by_index.insert(m.index, i).is_some() {
                return Err(RegistryError(format!(
                    "msrs.toml: index {:#x} is defined twice",
                    m.index
                )));
            }
        }
        for f in &features {
            if f.register().is_none() || f.bit.is_some() == f.bits.is_some() || f.mask() == 0 {
                return Err(RegistryError(format!(
                    "cpuid.toml: feature `{}` needs a register and exactly one of bit / bits",
                    f.name
                )));
            }
        }
        let subleaf_leaves = leaves_with_subleaves(cpuid_toml)?;
        Ok(Registry {
            msrs,
            features,
            msr_by_name,
            msr_by_index,
            subleaf_leaves,
        })
    }

    /// The registry compiled into this crate.
    pub fn builtin() -> &'static Registry {
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        REGISTRY.get_or_init(
            || match Registry::parse(MSR_REGISTRY_TOML, CPUID_REGISTRY_TOML) {
                Ok(r) => r,
                // The registry is a file of this repository, checked by a unit
                // test; a broken one must not silently resolve nothing.
                Err(RegistryError(e)) => unreachable!("builtin registry does not load: {e}"),
            },
        )
    }

    /// The MSR with this SDM name or Linux alias (exact spelling).
    pub fn msr_by_name(&self, name: &str) -> Option<&MsrEntry> {
        self.msr_by_name.get(name).and_then(|&i| self.msrs.get(i))
    }

    /// The MSR with this index.
    pub fn msr_by_index(&self, index: u32) -> Option<&MsrEntry> {
        self.msr_by_index
            .get(&index)
            .and_then(|&i| self.msrs.get(i))
    }

    /// Every MSR name and alias (for "did you mean").
    pub fn msr_names(&self) -> impl Iterator<Item = &str> {
        self.msr_by_name.keys().map(String::as_str)
    }

    /// The registry name of an MSR index, or its hex number.
    pub fn msr_display(&self, index: u32) -> String {
        match self.msr_by_index(index) {
            Some(m) => format!("{} ({index:#x})", m.name),
            None => format!("{index:#x}"),
        }
    }

    /// The CPUID feature with this name.
    pub fn feature(&self, name: &str) -> Option<&CpuidFeature> {
        self.features.iter().find(|f| f.name == name)
    }

    /// Whether the registry's features of `leaf` name their subleaf: the
    /// leaf has subleaves, so a feature name means one subleaf of it.
    pub fn leaf_has_subleaves(&self, leaf: u32) -> bool {
        self.subleaf_leaves.contains(&leaf)
    }

    /// Features of one register of one leaf/subleaf.
    pub fn features_of(
        &self,
        leaf: u32,
        subleaf: u32,
        reg: Register,
    ) -> impl Iterator<Item = &CpuidFeature> {
        self.features
            .iter()
            .filter(move |f| f.leaf == leaf && f.subleaf == subleaf && f.register() == Some(reg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_registry_loads_and_resolves_sdm_names_and_linux_aliases() {
        let r = Registry::parse(MSR_REGISTRY_TOML, CPUID_REGISTRY_TOML).unwrap();
        assert_eq!(r.msr_by_name("IA32_LSTAR").unwrap().index, 0xc000_0082);
        assert_eq!(
            r.msr_by_name("MSR_SYSCALL_MASK").unwrap().index,
            0xc000_0084
        );
        assert_eq!(
            r.msr_by_name("IA32_KERNEL_GS_BASE").unwrap().index,
            0xc000_0102
        );
        assert!(
            r.msr_by_name("IA32_FLUSH_CMD")
                .unwrap()
                .has(MsrAttr::SideEffect)
        );
        assert!(
            r.msr_by_name("IA32_PRED_CMD")
                .unwrap()
                .has(MsrAttr::WriteOnly)
        );
        assert!(
            r.msr_by_name("IA32_ARCH_CAPABILITIES")
                .unwrap()
                .has(MsrAttr::ReadOnly)
        );
        let smep = r.feature("SMEP").unwrap();
        assert!(smep.security);
        assert_eq!((smep.leaf, smep.mask()), (7, 1 << 7));
        assert_eq!(smep.location(), "CPUID.(EAX=0x7,ECX=0):EBX[7]");
    }

    #[test]
    fn leaves_with_subleaves_are_known_and_must_name_them_everywhere() {
        let r = Registry::builtin();
        assert!(r.leaf_has_subleaves(7));
        assert!(!r.leaf_has_subleaves(1));
        let mixed = "[[feature]]\nname = \"A\"\nleaf = 7\nsubleaf = 0\nreg = \"ebx\"\nbit = 0\n\
                     [[feature]]\nname = \"B\"\nleaf = 7\nreg = \"ebx\"\nbit = 1\n";
        let err = Registry::parse("msr = []", mixed).unwrap_err();
        assert!(
            err.0.contains("feature `B` of leaf 0x7 has no `subleaf`"),
            "{}",
            err.0
        );
    }

    #[test]
    fn duplicate_names_in_a_registry_are_refused() {
        let msrs = "[[msr]]\nname = \"A\"\nindex = 1\n[[msr]]\nname = \"A\"\nindex = 2\n";
        let err = Registry::parse(msrs, "feature = []").unwrap_err();
        assert!(err.0.contains("`A` is defined twice"), "{}", err.0);
    }
}
