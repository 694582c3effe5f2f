//! Const lookups the generated tables use for large policies.

use crate::rule::RuleId;

/// Binary search over sorted, disjoint, inclusive `(first, last, rule)`
/// ranges; the rule whose range holds `index`, or `None`.
pub const fn find_range(table: &[(u32, u32, RuleId)], index: u32) -> Option<RuleId> {
    let mut lo = 0;
    let mut hi = table.len();
    while lo < hi {
        // lo < hi <= table.len(): neither operation can wrap.
        let mid = lo.wrapping_add(hi.wrapping_sub(lo) >> 1);
        // `get` is not const yet: split at `mid` and take the first.
        let Some((_, from_mid)) = table.split_at_checked(mid) else {
            return None;
        };
        let Some(&(first, last, rule)) = from_mid.first() else {
            return None;
        };
        if index < first {
            hi = mid;
        } else if index > last {
            lo = mid.wrapping_add(1);
        } else {
            return Some(rule);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_boundary_and_nothing_between() {
        let t = [
            (0, 0, RuleId(0)),
            (5, 9, RuleId(1)),
            (u32::MAX, u32::MAX, RuleId(2)),
        ];
        assert_eq!(find_range(&t, 0), Some(RuleId(0)));
        assert_eq!(find_range(&t, 1), None);
        assert_eq!(find_range(&t, 4), None);
        assert_eq!(find_range(&t, 5), Some(RuleId(1)));
        assert_eq!(find_range(&t, 9), Some(RuleId(1)));
        assert_eq!(find_range(&t, 10), None);
        assert_eq!(find_range(&t, u32::MAX - 1), None);
        assert_eq!(find_range(&t, u32::MAX), Some(RuleId(2)));
        assert_eq!(find_range(&[], 7), None);
    }
}
