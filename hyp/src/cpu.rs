//! The CPU model: the hypervisor's base CPUID table (what the CPU and the
//! hypervisor support, like QEMU `-cpu host`) and its machine-check
//! capability, read through raw-cpuid from real hardware or from a recorded
//! dump.
//! Long because the model is one construction: which leaves and subleaves
//! are read, how topology levels are counted, and the MCG_CAP it reports,
//! each fact beside the others it depends on.

use core::fmt;

use heapless::Vec;
use pvgate_gate::Register;
use raw_cpuid::{CpuId, CpuIdReader, CpuIdResult};

/// raw-cpuid's reader of the CPU we run on (the CPUID instruction).
#[cfg(target_arch = "x86_64")]
pub use raw_cpuid::CpuIdReaderNative as NativeReader;

/// How many entries a CPUID table holds (KVM's `KVM_MAX_CPUID_ENTRIES` is 256).
pub const MAX_CPUID_ENTRIES: usize = 256;

/// One CPUID leaf/subleaf and its four output registers, as in
/// `struct kvm_cpuid_entry2` (without the flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(C)]
pub struct CpuidEntry {
    /// CPUID input EAX (the leaf).
    pub leaf: u32,
    /// CPUID input ECX (the subleaf; 0 for leaves without subleaves).
    pub subleaf: u32,
    /// Output EAX.
    pub eax: u32,
    /// Output EBX.
    pub ebx: u32,
    /// Output ECX.
    pub ecx: u32,
    /// Output EDX.
    pub edx: u32,
}

impl CpuidEntry {
    /// An entry with every output register zero.
    pub const fn zero(leaf: u32, subleaf: u32) -> CpuidEntry {
        CpuidEntry {
            leaf,
            subleaf,
            eax: 0,
            ebx: 0,
            ecx: 0,
            edx: 0,
        }
    }

    /// One output register.
    pub const fn reg(&self, r: Register) -> u32 {
        match r {
            Register::Eax => self.eax,
            Register::Ebx => self.ebx,
            Register::Ecx => self.ecx,
            Register::Edx => self.edx,
        }
    }

    /// Sets one output register.
    pub fn set_reg(&mut self, r: Register, value: u32) {
        match r {
            Register::Eax => self.eax = value,
            Register::Ebx => self.ebx = value,
            Register::Ecx => self.ecx = value,
            Register::Edx => self.edx = value,
        }
    }

    /// Whether this entry answers CPUID(leaf, subleaf).
    pub const fn is(&self, leaf: u32, subleaf: u32) -> bool {
        self.leaf == leaf && self.subleaf == subleaf
    }
}

/// A CPUID table of at most [`MAX_CPUID_ENTRIES`] entries.
pub type CpuidTable = Vec<CpuidEntry, MAX_CPUID_ENTRIES>;

/// The entry for (leaf, subleaf) in a table.
pub fn find_entry(table: &[CpuidEntry], leaf: u32, subleaf: u32) -> Option<&CpuidEntry> {
    table.iter().find(|e| e.is(leaf, subleaf))
}

/// Why a CPU model could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuModelError {
    /// A dump line is not `leaf subleaf eax ebx ecx edx` in hex.
    BadDumpLine {
        /// 1-based line number.
        line: usize,
    },
    /// The same (leaf, subleaf) appears twice in a dump.
    DuplicateEntry {
        /// 1-based line number of the second one.
        line: usize,
        /// The leaf.
        leaf: u32,
        /// The subleaf.
        subleaf: u32,
    },
    /// More than [`MAX_CPUID_ENTRIES`] entries.
    TooManyEntries,
    /// CPUID leaf 0 names no vendor this hypervisor knows (Intel, AMD).
    UnknownVendor,
}

impl fmt::Display for CpuModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpuModelError::BadDumpLine { line } => write!(
                f,
                "cpu dump line {line} is not `leaf subleaf eax ebx ecx edx` (hex) or `mcg_cap <hex>`"
            ),
            CpuModelError::DuplicateEntry {
                line,
                leaf,
                subleaf,
            } => write!(
                f,
                "cpu dump line {line} repeats CPUID.(EAX={leaf:#x},ECX={subleaf:#x})"
            ),
            CpuModelError::TooManyEntries => write!(
                f,
                "cpu model has more than {MAX_CPUID_ENTRIES} cpuid entries"
            ),
            CpuModelError::UnknownVendor => write!(
                f,
                "CPUID.(EAX=0x0):EBX,EDX,ECX names no known vendor (expected `GenuineIntel` or `AuthenticAMD`)"
            ),
        }
    }
}

/// A recorded CPUID dump: a table answering CPUID like the CPU it came from
/// (absent leaves read as zeros).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuDump {
    /// The recorded entries.
    pub entries: CpuidTable,
    /// The recorded IA32_MCG_CAP (MSR 0x179), if the dump carries one.
    pub mcg_cap: Option<u64>,
}

fn parse_hex(word: &str) -> Option<u64> {
    let digits = word
        .strip_prefix("0x")
        .or_else(|| word.strip_prefix("0X"))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

impl CpuDump {
    /// Parses the dump format of `tests/data/cpu/*.cpuid`: `#` comments,
    /// `mcg_cap 0x…`, and lines `leaf subleaf eax ebx ecx edx` in `0x` hex.
    pub fn parse(text: &str) -> Result<CpuDump, CpuModelError> {
        let mut dump = CpuDump::default();
        for (i, raw) in text.lines().enumerate() {
            let line = i.saturating_add(1);
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let mut words = content.split_whitespace();
            let first = words.next().unwrap_or("");
            if first == "mcg_cap" {
                let value = words.next().and_then(parse_hex);
                match (value, words.next()) {
                    (Some(v), None) => dump.mcg_cap = Some(v),
                    _ => return Err(CpuModelError::BadDumpLine { line }),
                }
                continue;
            }
            let mut v = [0u32; 6];
            let mut n = 0;
            for word in core::iter::once(first).chain(words) {
                let parsed = parse_hex(word)
                    .and_then(|x| u32::try_from(x).ok())
                    .ok_or(CpuModelError::BadDumpLine { line })?;
                let slot = v.get_mut(n).ok_or(CpuModelError::BadDumpLine { line })?;
                *slot = parsed;
                n = n.saturating_add(1);
            }
            let [leaf, subleaf, eax, ebx, ecx, edx] = v;
            if n != 6 {
                return Err(CpuModelError::BadDumpLine { line });
            }
            if find_entry(&dump.entries, leaf, subleaf).is_some() {
                return Err(CpuModelError::DuplicateEntry {
                    line,
                    leaf,
                    subleaf,
                });
            }
            dump.entries
                .push(CpuidEntry {
                    leaf,
                    subleaf,
                    eax,
                    ebx,
                    ecx,
                    edx,
                })
                .map_err(|_| CpuModelError::TooManyEntries)?;
        }
        Ok(dump)
    }

    /// A raw-cpuid reader over this dump (absent leaves read as zeros).
    pub fn reader(&self) -> impl CpuIdReader + '_ {
        move |leaf: u32, subleaf: u32| {
            let e = find_entry(&self.entries, leaf, subleaf)
                .copied()
                .unwrap_or(CpuidEntry::zero(leaf, subleaf));
            CpuIdResult {
                eax: e.eax,
                ebx: e.ebx,
                ecx: e.ecx,
                edx: e.edx,
            }
        }
    }
}

/// IA32_MCG_CAP (MSR 0x179) bits 7:0: the number of error-reporting banks.
pub const MCG_BANK_COUNT: u64 = 0xff;
/// IA32_MCG_CAP bits 23:16: MCG_EXT_CNT, a count rather than a capability.
pub const MCG_EXT_CNT: u64 = 0xff_0000;

/// What the hypervisor offers its guests: the base CPUID table and the
/// machine-check capability.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuModel {
    /// The base CPUID table, sorted by (leaf, subleaf).
    pub base: CpuidTable,
    /// The largest IA32_MCG_CAP a vCPU may be given (banks in bits 7:0,
    /// capability flags elsewhere); 0 when the CPU has no MCA.
    pub mcg_cap: u64,
    /// The largest XSAVE area, in bytes (CPUID.(EAX=0xD,ECX=0):ECX).
    pub xsave_size: u32,
}

/// Leaves whose subleaves are enumerated by counting until an all-zero
/// subleaf, and the largest subleaf looked at.
const SUBLEAF_LEAVES: [(u32, u32); 10] = [
    (0x7, 8),
    (0xd, 63),
    (0xf, 8),
    (0x10, 8),
    (0x12, 8),
    (0x14, 8),
    (0x17, 8),
    (0x18, 8),
    (0x1d, 8),
    (0x8000_001d, 8),
];

/// The levels of topology leaf 0xB or 0x1F: its subleaves up to the first
/// whose level type (ECX[15:8]) is 0, none if the CPU lacks the leaf.
/// Counted here, not with raw-cpuid's topology iterator, which panics on a
/// level type it does not know (6 and above).
fn topology_levels<R: CpuIdReader>(reader: &R, leaf: u32) -> u32 {
    if leaf > reader.cpuid2(0, 0).eax {
        return 0;
    }
    let mut n: u32 = 0;
    while (n as usize) < MAX_CPUID_ENTRIES && (reader.cpuid2(leaf, n).ecx >> 8) & 0xff != 0 {
        n = n.saturating_add(1);
    }
    n
}

impl CpuModel {
    /// An empty model: no CPUID leaves, no MCA.
    pub const EMPTY: CpuModel = CpuModel {
        base: Vec::new(),
        mcg_cap: 0,
        xsave_size: 0,
    };

    /// Builds the model from any raw-cpuid reader: the CPU we run on
    /// (`raw_cpuid::CpuIdReaderNative`) or a recorded [`CpuDump`].
    ///
    /// Basic leaves 0..=CPUID.0:EAX and extended leaves
    /// 0x80000000..=CPUID.0x80000000:EAX are read; leaf 4 and the topology
    /// leaves 0xB / 0x1F are enumerated through raw-cpuid's iterators, other
    /// subleaf leaves until their first all-zero subleaf. `mcg_cap` is the
    /// IA32_MCG_CAP to offer (an MSR, not part of CPUID); it is dropped to 0
    /// when CPUID.1:EDX says the CPU has no MCE/MCA.
    pub fn from_reader<R: CpuIdReader>(reader: R, mcg_cap: u64) -> Result<CpuModel, CpuModelError> {
        let cpuid = CpuId::with_cpuid_reader(reader.clone());
        let known = cpuid
            .get_vendor_info()
            .is_some_and(|v| matches!(v.as_str(), "GenuineIntel" | "AuthenticAMD"));
        if !known {
            return Err(CpuModelError::UnknownVendor);
        }
        let has_mca = cpuid
            .get_feature_info()
            .is_some_and(|f| f.has_mce() && f.has_mca());
        let cache_levels = cpuid
            .get_cache_parameters()
            .map_or(0, |it| it.count() as u32);
        let topo_levels = topology_levels(&reader, 0xb);
        let topo2_levels = topology_levels(&reader, 0x1f);
        let xsave_size = cpuid
            .get_extended_state_info()
            .map_or(0, |x| x.xsave_area_size_supported_features());

        let mut base = CpuidTable::new();
        let mut add = |leaf: u32, subleaf: u32| -> Result<(), CpuModelError> {
            let r = reader.cpuid2(leaf, subleaf);
            base.push(CpuidEntry {
                leaf,
                subleaf,
                eax: r.eax,
                ebx: r.ebx,
                ecx: r.ecx,
                edx: r.edx,
            })
            .map_err(|_| CpuModelError::TooManyEntries)
        };
        let max_basic = reader.cpuid2(0, 0).eax.min(0xff);
        // No extended leaves unless CPUID.0x80000000:EAX names some.
        let ext = reader.cpuid2(0x8000_0000, 0).eax;
        let extended = (ext >= 0x8000_0000).then(|| 0x8000_0000..=ext.min(0x8000_00ff));
        for leaf in (0..=max_basic).chain(extended.into_iter().flatten()) {
            let subleaves = match leaf {
                0x4 => cache_levels.max(1),
                0xb => topo_levels.max(1),
                0x1f => topo2_levels.max(1),
                _ => match SUBLEAF_LEAVES.iter().find(|(l, _)| *l == leaf) {
                    Some(&(_, max)) => {
                        let mut n = 1;
                        while n <= max {
                            let r = reader.cpuid2(leaf, n);
                            // Leaves 0xD (XSAVE components) and 0x10 (RDT
                            // resources) may be sparse: look at every
                            // subleaf up to the bound.
                            if !matches!(leaf, 0xd | 0x10) && (r.eax | r.ebx | r.ecx | r.edx) == 0 {
                                break;
                            }
                            n = n.saturating_add(1);
                        }
                        n
                    }
                    None => 1,
                },
            };
            for subleaf in 0..subleaves {
                let r = reader.cpuid2(leaf, subleaf);
                if subleaf > 0 && (r.eax | r.ebx | r.ecx | r.edx) == 0 {
                    continue;
                }
                add(leaf, subleaf)?;
            }
        }
        Ok(CpuModel {
            base,
            mcg_cap: if has_mca { mcg_cap } else { 0 },
            xsave_size,
        })
    }

    /// Builds the model from a recorded dump; `mcg_cap` is the dump's own
    /// (0 if it has none).
    pub fn from_dump(dump: &CpuDump) -> Result<CpuModel, CpuModelError> {
        CpuModel::from_reader(dump.reader(), dump.mcg_cap.unwrap_or(0))
    }

    /// The base value of (leaf, subleaf); zeros for a leaf the model lacks.
    pub fn base_entry(&self, leaf: u32, subleaf: u32) -> CpuidEntry {
        find_entry(&self.base, leaf, subleaf)
            .copied()
            .unwrap_or(CpuidEntry::zero(leaf, subleaf))
    }

    /// The number of machine-check banks the model has.
    pub const fn mce_banks(&self) -> u64 {
        self.mcg_cap & MCG_BANK_COUNT
    }

    /// The machine-check capability flags the model has.
    pub const fn mce_caps(&self) -> u64 {
        self.mcg_cap & !(MCG_BANK_COUNT | MCG_EXT_CNT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "# test\nmcg_cap 0x0f000c14\n\
        0x0 0x0 0x1 0x756e6547 0x6c65746e 0x49656e69\n\
        0x1 0x0 0x50657 0x0 0x21 0x4080\n";

    #[test]
    fn a_dump_parses_and_feeds_raw_cpuid() {
        let dump = CpuDump::parse(DUMP).unwrap();
        assert_eq!(dump.entries.len(), 2);
        assert_eq!(dump.mcg_cap, Some(0x0f00_0c14));
        let model = CpuModel::from_dump(&dump).unwrap();
        assert_eq!(model.base.len(), 2);
        assert_eq!(model.base_entry(1, 0).ecx, 0x21);
        assert_eq!(model.base_entry(0x7, 0), CpuidEntry::zero(7, 0));
        assert_eq!(model.mce_banks(), 0x14);
        assert_eq!(model.mce_caps(), 0x0f00_0c00);
    }

    #[test]
    fn an_unknown_topology_level_type_is_counted_not_a_panic() {
        // Found by fuzz/cpu_dump: leaf 0xB subleaf 0 with level type 6
        // (ECX = 0x604) panicked inside raw-cpuid.
        let dump = CpuDump::parse(
            "0x0 0x0 0x16 0x756e6547 0x6c65746e 0x49656e69\n\
             0xb 0x0 0x0 0x2 0x0604 0x0\n\
             0xb 0x1 0x0 0x8 0x0201 0x0\n",
        )
        .unwrap();
        let model = CpuModel::from_dump(&dump).unwrap();
        assert_eq!(model.base_entry(0xb, 0).ecx, 0x604);
        assert_eq!(model.base_entry(0xb, 1).ecx, 0x201);
        assert_eq!(model.base_entry(0xb, 2), CpuidEntry::zero(0xb, 2));
    }

    #[test]
    fn bad_dumps_name_the_line() {
        assert_eq!(
            CpuDump::parse("0x0 0x0 0x1\n"),
            Err(CpuModelError::BadDumpLine { line: 1 })
        );
        assert_eq!(
            CpuDump::parse("\n0x0 0x0 0x1 0x2 0x3 0x4 0x5\n"),
            Err(CpuModelError::BadDumpLine { line: 2 })
        );
        assert_eq!(
            CpuDump::parse("0x0 0x0 0x1 0x2 0x3 0x4\n0x0 0x0 0x1 0x2 0x3 0x4\n"),
            Err(CpuModelError::DuplicateEntry {
                line: 2,
                leaf: 0,
                subleaf: 0
            })
        );
        assert_eq!(
            CpuDump::parse("0x0 0x0 0x100000000 0x2 0x3 0x4\n"),
            Err(CpuModelError::BadDumpLine { line: 1 })
        );
    }

    #[test]
    fn a_cpu_without_mca_offers_no_mcg_cap_and_no_vendor_is_refused() {
        let dump = CpuDump::parse("0x0 0x0 0x1 0x756e6547 0x6c65746e 0x49656e69\n").unwrap();
        assert_eq!(
            CpuModel::from_reader(dump.reader(), 0x14).unwrap().mcg_cap,
            0
        );
        let empty = CpuDump::default();
        assert_eq!(
            CpuModel::from_dump(&empty),
            Err(CpuModelError::UnknownVendor)
        );
    }
}
