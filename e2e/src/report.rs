//! What the guest reported on its console (the `/init` lines of
//! [`crate::initramfs`]), parsed.

use std::collections::{BTreeMap, BTreeSet};

use crate::initramfs::MARK;

/// The guest's report.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// `/init` started.
    pub started: bool,
    /// `/init` reached its end.
    pub ended: bool,
    /// `/sys/devices/system/cpu/online`.
    pub online: Option<String>,
    /// How many `processor` entries `/proc/cpuinfo` has.
    pub processors: Option<usize>,
    /// `/proc/cpuinfo` flags, per processor number.
    pub flags: BTreeMap<u32, BTreeSet<String>>,
    /// CPUID read through `/dev/cpu/N/cpuid`: (cpu, leaf, subleaf) -> EAX EBX ECX EDX.
    pub cpuid: BTreeMap<(u32, u32, u32), [u32; 4]>,
    /// Report lines that did not parse.
    pub unparsed: Vec<String>,
}

impl Report {
    /// Parses every report line of `console`; other lines are ignored.
    pub fn parse(console: &str) -> Report {
        let mut r = Report::default();
        for line in console.lines() {
            let Some(at) = line.find(MARK) else { continue };
            let rest = line[at + MARK.len()..].trim();
            if !r.line(rest) {
                r.unparsed.push(rest.to_string());
            }
        }
        r
    }

    fn line(&mut self, rest: &str) -> bool {
        let mut words = rest.split_whitespace();
        match words.next() {
            Some("start") => self.started = true,
            Some("end") => self.ended = true,
            Some("online") => self.online = words.next().map(str::to_string),
            Some("processors") => {
                self.processors = words.next().and_then(|w| w.parse().ok());
                return self.processors.is_some();
            }
            Some("flags") => {
                let Some(cpu) = words.next().and_then(|w| w.parse().ok()) else {
                    return false;
                };
                self.flags
                    .entry(cpu)
                    .or_default()
                    .extend(words.map(str::to_string));
            }
            Some("cpuid") => {
                let nums: Vec<&str> = words.collect();
                let [cpu, leaf, subleaf, a, b, c, d] = nums.as_slice() else {
                    return false;
                };
                let dec = |s: &str| s.parse::<u32>().ok();
                let hex = |s: &str| u32::from_str_radix(s.trim_start_matches("0x"), 16).ok();
                match (
                    dec(cpu),
                    hex(leaf),
                    dec(subleaf),
                    hex(a),
                    hex(b),
                    hex(c),
                    hex(d),
                ) {
                    (Some(cpu), Some(l), Some(s), Some(a), Some(b), Some(c), Some(d)) => {
                        self.cpuid.insert((cpu, l, s), [a, b, c, d]);
                    }
                    _ => return false,
                }
            }
            Some("no") => {} // "no cpuid.ko": the leaves are then missing
            _ => return false,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_parse_amid_kernel_output() {
        let console = "Linux version 6.1\n\
            E2E start\n\
            some kernel line\n\
            E2E online 0-1\n\
            E2E processors 2\n\
            E2E flags 0 fpu vme\n\
            E2E flags 0 x2apic\n\
            E2E flags 1 fpu\n\
            E2E cpuid 0 0x1 0 000a0f11 00000800 f6f83203 178bfbff\n\
            E2E cpuid 0 0x80000001 0 1 2 3 4\n\
            E2E bogus\n\
            E2E end\n";
        let r = Report::parse(console);
        assert!(r.started && r.ended);
        assert_eq!(r.online.as_deref(), Some("0-1"));
        assert_eq!(r.processors, Some(2));
        assert_eq!(r.flags[&0].len(), 3);
        assert!(r.flags[&0].contains("x2apic"));
        assert_eq!(
            r.cpuid[&(0, 1, 0)],
            [0xa0f11, 0x800, 0xf6f8_3203, 0x178b_fbff]
        );
        assert_eq!(r.cpuid[&(0, 0x8000_0001, 0)], [1, 2, 3, 4]);
        assert_eq!(r.unparsed, ["bogus"]);
    }
}
