//! The CPU model: the hardware's CPUID table (what the CPU has, like QEMU
//! `-cpu host`; a protected VM's base is it masked by the hypervisor's
//! supported CPUID, `handlers::cpuid_base::supported_base`) and its machine-check
//! capability, read through raw-cpuid from real hardware or from a table of
//! recorded CPUID entries (the image's reference CPU is a `const` table
//! generated at build time; hyp parses no text).

use core::fmt;

use heapless::Vec;
use raw_cpuid::{CpuId, CpuIdReader, CpuIdResult};

/// raw-cpuid's reader of the CPU we run on (the CPUID instruction).
#[cfg(target_arch = "x86_64")]
pub use raw_cpuid::CpuIdReaderNative as NativeReader;

mod entry;

pub use entry::{CpuidEntry, CpuidTable, MAX_CPUID_ENTRIES, find_entry};

/// Why a CPU model could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuModelError {
    /// More than [`MAX_CPUID_ENTRIES`] entries.
    TooManyEntries,
    /// CPUID leaf 0 names no vendor this hypervisor knows (Intel, AMD).
    UnknownVendor,
}

impl fmt::Display for CpuModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
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

/// A raw-cpuid reader answering CPUID from a table of recorded entries
/// (absent leaves read as zeros), as the CPU they were recorded from would.
pub fn table_reader(entries: &[CpuidEntry]) -> impl CpuIdReader + '_ {
    move |leaf: u32, subleaf: u32| {
        let e = find_entry(entries, leaf, subleaf)
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

/// IA32_MCG_CAP (MSR 0x179) bits 7:0: the number of error-reporting banks.
pub const MCG_BANK_COUNT: u64 = 0xff;
/// IA32_MCG_CAP bits 23:16: MCG_EXT_CNT, a count rather than a capability.
pub const MCG_EXT_CNT: u64 = 0xff_0000;

/// The CPU the hypervisor runs on: its CPUID table (before the supported
/// mask) and the machine-check capability.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuModel {
    /// The hardware's CPUID table, sorted by (leaf, subleaf).
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
    /// (`raw_cpuid::CpuIdReaderNative`) or recorded entries
    /// ([`table_reader`], through [`CpuModel::from_entries`]).
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

    /// Builds the model from recorded CPUID entries (the image's generated
    /// reference table, or a parsed dump) answering as that CPU would;
    /// `mcg_cap` as for [`CpuModel::from_reader`].
    pub fn from_entries(entries: &[CpuidEntry], mcg_cap: u64) -> Result<CpuModel, CpuModelError> {
        CpuModel::from_reader(table_reader(entries), mcg_cap)
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

    const fn entry(leaf: u32, subleaf: u32, eax: u32, ebx: u32, ecx: u32, edx: u32) -> CpuidEntry {
        CpuidEntry {
            leaf,
            subleaf,
            eax,
            ebx,
            ecx,
            edx,
        }
    }

    /// CPUID.0: max leaf and "GenuineIntel" (EBX, EDX, ECX).
    const fn intel(max_leaf: u32) -> CpuidEntry {
        entry(0, 0, max_leaf, 0x756e_6547, 0x6c65_746e, 0x4965_6e69)
    }

    #[test]
    fn recorded_entries_feed_raw_cpuid() {
        let entries = [intel(1), entry(1, 0, 0x50657, 0, 0x21, 0x4080)];
        let model = CpuModel::from_entries(&entries, 0x0f00_0c14).unwrap();
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
        let entries = [
            intel(0x16),
            entry(0xb, 0, 0, 2, 0x0604, 0),
            entry(0xb, 1, 0, 8, 0x0201, 0),
        ];
        let model = CpuModel::from_entries(&entries, 0).unwrap();
        assert_eq!(model.base_entry(0xb, 0).ecx, 0x604);
        assert_eq!(model.base_entry(0xb, 1).ecx, 0x201);
        assert_eq!(model.base_entry(0xb, 2), CpuidEntry::zero(0xb, 2));
    }

    #[test]
    fn a_cpu_without_mca_offers_no_mcg_cap_and_no_vendor_is_refused() {
        let entries = [intel(1)];
        assert_eq!(CpuModel::from_entries(&entries, 0x14).unwrap().mcg_cap, 0);
        assert_eq!(
            CpuModel::from_entries(&[], 0x14),
            Err(CpuModelError::UnknownVendor)
        );
    }
}
