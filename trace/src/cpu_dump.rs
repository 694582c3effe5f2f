//! Recorded CPUID dumps (`tests/data/cpu/*.cpuid`): the text parser and the
//! CPU model a dump gives.
//!
//! The parser lives here, in a std crate, and not in hyp: the image's
//! reference CPU is a `const` table that `image/build.rs` generates from
//! the dump with `cpu_table_rust` (`cpu_table.rs`), so the trusted
//! no_std core parses no text.

use std::fmt;

use pvgate_hyp::cpu::{CpuModelError, find_entry, table_reader};
use pvgate_hyp::{CpuModel, CpuidEntry, CpuidTable, MAX_CPUID_ENTRIES};
use raw_cpuid::CpuIdReader;

/// Why a CPUID dump could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuDumpError {
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
}

impl fmt::Display for CpuDumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpuDumpError::BadDumpLine { line } => write!(
                f,
                "cpu dump line {line} is not `leaf subleaf eax ebx ecx edx` (hex) or `mcg_cap <hex>`"
            ),
            CpuDumpError::DuplicateEntry {
                line,
                leaf,
                subleaf,
            } => write!(
                f,
                "cpu dump line {line} repeats CPUID.(EAX={leaf:#x},ECX={subleaf:#x})"
            ),
            // The same words as hyp's `CpuModelError::TooManyEntries`.
            CpuDumpError::TooManyEntries => write!(
                f,
                "cpu model has more than {MAX_CPUID_ENTRIES} cpuid entries"
            ),
        }
    }
}

impl std::error::Error for CpuDumpError {}

/// A recorded CPUID dump: a table answering CPUID like the CPU it came from
/// (absent leaves read as zeros).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuDump {
    /// The recorded entries, in the order of the file.
    pub entries: CpuidTable,
    /// The recorded IA32_MCG_CAP (MSR 0x179), if the dump carries one.
    pub mcg_cap: Option<u64>,
}

/// A `0x`-prefixed hex number (no sign, no separators).
fn parse_hex(word: &str) -> Option<u64> {
    let digits = word
        .strip_prefix("0x")
        .or_else(|| word.strip_prefix("0X"))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// One CPUID line's six words, or `None` if it is not six `0x` hex words
/// that each fit 32 bits.
fn parse_entry<'a>(words: impl Iterator<Item = &'a str>) -> Option<CpuidEntry> {
    let mut v = [0u32; 6];
    let mut n = 0usize;
    for word in words {
        let slot = v.get_mut(n)?;
        *slot = u32::try_from(parse_hex(word)?).ok()?;
        n += 1;
    }
    let [leaf, subleaf, eax, ebx, ecx, edx] = v;
    (n == 6).then_some(CpuidEntry {
        leaf,
        subleaf,
        eax,
        ebx,
        ecx,
        edx,
    })
}

impl CpuDump {
    /// Parses the dump format of `tests/data/cpu/*.cpuid`: `#` comments,
    /// `mcg_cap 0x…`, and lines `leaf subleaf eax ebx ecx edx` in `0x` hex.
    pub fn parse(text: &str) -> Result<CpuDump, CpuDumpError> {
        let mut dump = CpuDump::default();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let mut words = content.split_whitespace().peekable();
            if words.peek() == Some(&"mcg_cap") {
                words.next();
                match (words.next().and_then(parse_hex), words.next()) {
                    (Some(v), None) => dump.mcg_cap = Some(v),
                    _ => return Err(CpuDumpError::BadDumpLine { line }),
                }
                continue;
            }
            let entry = parse_entry(words).ok_or(CpuDumpError::BadDumpLine { line })?;
            if find_entry(&dump.entries, entry.leaf, entry.subleaf).is_some() {
                return Err(CpuDumpError::DuplicateEntry {
                    line,
                    leaf: entry.leaf,
                    subleaf: entry.subleaf,
                });
            }
            dump.entries
                .push(entry)
                .map_err(|_| CpuDumpError::TooManyEntries)?;
        }
        Ok(dump)
    }

    /// A raw-cpuid reader over this dump (absent leaves read as zeros).
    pub fn reader(&self) -> impl CpuIdReader + '_ {
        table_reader(&self.entries)
    }

    /// The CPU model this dump gives ([`CpuModel::from_entries`]); its
    /// IA32_MCG_CAP is the dump's own (0 if it has none).
    pub fn model(&self) -> Result<CpuModel, CpuModelError> {
        CpuModel::from_entries(&self.entries, self.mcg_cap.unwrap_or(0))
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
        let model = dump.model().unwrap();
        assert_eq!(model.base.len(), 2);
        assert_eq!(model.base_entry(1, 0).ecx, 0x21);
        assert_eq!(model.base_entry(0x7, 0), CpuidEntry::zero(7, 0));
        assert_eq!(model.mce_banks(), 0x14);
        assert_eq!(model.mce_caps(), 0x0f00_0c00);
        let r = dump.reader().cpuid2(1, 0);
        assert_eq!((r.eax, r.ecx, r.edx), (0x50657, 0x21, 0x4080));
    }

    #[test]
    fn bad_dumps_name_the_line() {
        assert_eq!(
            CpuDump::parse("0x0 0x0 0x1\n"),
            Err(CpuDumpError::BadDumpLine { line: 1 })
        );
        assert_eq!(
            CpuDump::parse("\n0x0 0x0 0x1 0x2 0x3 0x4 0x5\n"),
            Err(CpuDumpError::BadDumpLine { line: 2 })
        );
        assert_eq!(
            CpuDump::parse("0x0 0x0 0x1 0x2 0x3 0x4\n0x0 0x0 0x1 0x2 0x3 0x4\n"),
            Err(CpuDumpError::DuplicateEntry {
                line: 2,
                leaf: 0,
                subleaf: 0
            })
        );
        assert_eq!(
            CpuDump::parse("0x0 0x0 0x100000000 0x2 0x3 0x4\n"),
            Err(CpuDumpError::BadDumpLine { line: 1 })
        );
        for bad in [
            "mcg_cap\n",
            "mcg_cap 0x1 0x2\n",
            "mcg_cap 12\n",
            "0x 0x0 0x1 0x2 0x3 0x4\n",
        ] {
            assert_eq!(
                CpuDump::parse(bad),
                Err(CpuDumpError::BadDumpLine { line: 1 }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn errors_keep_their_words() {
        assert_eq!(
            CpuDumpError::BadDumpLine { line: 3 }.to_string(),
            "cpu dump line 3 is not `leaf subleaf eax ebx ecx edx` (hex) or `mcg_cap <hex>`"
        );
        assert_eq!(
            CpuDumpError::DuplicateEntry {
                line: 2,
                leaf: 0xd,
                subleaf: 1
            }
            .to_string(),
            "cpu dump line 2 repeats CPUID.(EAX=0xd,ECX=0x1)"
        );
        assert_eq!(
            CpuDumpError::TooManyEntries.to_string(),
            CpuModelError::TooManyEntries.to_string()
        );
    }

    #[test]
    fn a_dump_longer_than_a_table_is_refused() {
        let text: String = (0..=MAX_CPUID_ENTRIES)
            .map(|i| format!("{i:#x} 0x0 0x0 0x0 0x0 0x0\n"))
            .collect();
        assert_eq!(CpuDump::parse(&text), Err(CpuDumpError::TooManyEntries));
    }
}
