//! Two values side by side, in hex and binary, with a caret under each bit
//! that differs (as Firecracker's `verify` shows CPUID mismatches).

use std::fmt::Write;

/// How many bits to draw: the highest set bit of either value, rounded up
/// to 16, at least 16 and at most `width`.
fn shown_bits(a: u64, b: u64, width: u32) -> u32 {
    let used = 64 - (a | b).leading_zeros();
    used.div_ceil(16)
        .max(1)
        .saturating_mul(16)
        .min(width)
        .max(width.min(16))
}

/// `0001_1000_0000_1001` for the low `bits` bits of `v`, most significant first.
fn binary(v: u64, bits: u32) -> String {
    let mut s = String::new();
    for i in (0..bits).rev() {
        s.push(if v >> i & 1 == 1 { '1' } else { '0' });
        if i % 4 == 0 && i != 0 {
            s.push('_');
        }
    }
    s
}

/// Carets under the bits set in `diff`, aligned with [`binary`].
fn carets(diff: u64, bits: u32) -> String {
    let mut s = String::new();
    for i in (0..bits).rev() {
        s.push(if diff >> i & 1 == 1 { '^' } else { ' ' });
        if i % 4 == 0 && i != 0 {
            s.push(' ');
        }
    }
    s.trim_end().to_string()
}

/// Two labelled values of a `width`-bit register and a caret under each
/// differing bit; every line starts with `indent`.
pub fn two_values(indent: &str, (la, a): (&str, u64), (lb, b): (&str, u64), width: u32) -> String {
    let bits = shown_bits(a, b, width);
    let hex_digits = (bits / 4) as usize;
    let label_w = la.len().max(lb.len());
    let mut out = String::new();
    for (label, v) in [(la, a), (lb, b)] {
        let _ = writeln!(
            out,
            "{indent}{label:<label_w$}  {v:#0w$x}  {}",
            binary(v, bits),
            w = hex_digits + 2
        );
    }
    let pad = label_w + 2 + hex_digits + 2 + 2;
    let _ = writeln!(out, "{indent}{:pad$}{}", "", carets(a ^ b, bits));
    out
}

/// The numbers of the bits set in `mask`, lowest first.
pub fn bit_numbers(mask: u64) -> Vec<u32> {
    (0..64).filter(|i| mask >> i & 1 == 1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carets_sit_under_the_differing_bits() {
        let s = two_values("", ("requested", 0x1809), ("allowed", 0x1801), 64);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "requested  0x1809  0001_1000_0000_1001");
        assert_eq!(lines[1], "allowed    0x1801  0001_1000_0000_0001");
        let caret = lines[2].find('^').unwrap();
        // Bit 3 is the fourth character from the right of the binary field.
        assert_eq!(caret, lines[0].len() - 4);
        assert_eq!(lines[2].matches('^').count(), 1);
    }

    #[test]
    fn wide_values_widen_the_drawing_and_cpuid_stays_32_bits() {
        let s = two_values("", ("old", 0), ("new", 1 << 40), 64);
        assert!(s.contains("0x000000000000  0000_0000"), "{s}");
        let s = two_values("", ("old", 0), ("new", 0xffff_ffff), 32);
        assert!(
            s.lines()
                .next()
                .unwrap()
                .ends_with("0000_0000_0000_0000_0000_0000_0000_0000")
        );
        assert_eq!(s.matches('^').count(), 32);
    }

    #[test]
    fn bit_numbers_lists_set_bits() {
        assert_eq!(bit_numbers(0x1801), vec![0, 11, 12]);
    }
}
