//! Disclosure control for counts released outside the trial team (the blinded page and the
//! blinded summary API): which counts may be shown.
//!
//! # Rule
//! 1. **Primary suppression.** A count from 1 to [`SMALL_COUNT_LIMIT`] is never shown; it reads
//!    [`SMALL`] ("<5"). Zero is shown.
//! 2. **Secondary suppression.** Counts released together are tied by sums the reader can see:
//!    the sites add up to the trial's totals, the reasons of a flow box add up to the box, each
//!    box of the participant flow is the sum of the two boxes it splits into. A reader may solve
//!    these sums for a suppressed count. So after primary suppression every released count is
//!    given the interval the reader can narrow it to: shown counts their value, "<5" counts 1–4,
//!    withheld counts 5 or more, each sum then bounding its parts and its total in turn until
//!    nothing changes. While some "<5" count is pinned to a single value, the smallest shown
//!    non-zero count of a sum that pins it is withheld too (it reads [`WITHHELD`]); when every
//!    part of that sum is already hidden, its total is. A withheld count is always 5 or more.
//! 3. **Rates** (inclusion rate, follow-up completeness) are shown only when every count they
//!    are made of is shown.
//!
//! Step 2 covers the sums a page presents as parts and total. Differences of columns that are
//! not presented as a sum (such as screened minus eligible at one site) are outside it.
//!
//! This module is pure: the page and the API call it on the same figures, so both release
//! exactly the same counts.

use serde::{Serialize, Serializer};

/// Counts in `1..=SMALL_COUNT_LIMIT` are never shown.
pub const SMALL_COUNT_LIMIT: u64 = 4;

/// What a primarily suppressed count reads as.
pub const SMALL: &str = "<5";

/// What a secondarily suppressed count reads as.
pub const WITHHELD: &str = "withheld";

/// A count as released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    Shown(u64),
    /// 1 to [`SMALL_COUNT_LIMIT`].
    Small,
    /// More than [`SMALL_COUNT_LIMIT`], hidden so that a small count cannot be worked out.
    Withheld,
}

impl Released {
    pub fn is_shown(self) -> bool {
        matches!(self, Released::Shown(_))
    }

    pub fn shown(self) -> Option<u64> {
        match self {
            Released::Shown(n) => Some(n),
            _ => None,
        }
    }
}

impl std::fmt::Display for Released {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Released::Shown(n) => write!(f, "{n}"),
            Released::Small => f.write_str(SMALL),
            Released::Withheld => f.write_str(WITHHELD),
        }
    }
}

/// A number when shown, otherwise the string it reads as.
impl Serialize for Released {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Released::Shown(n) => s.serialize_u64(*n),
            Released::Small => s.serialize_str(SMALL),
            Released::Withheld => s.serialize_str(WITHHELD),
        }
    }
}

pub fn is_small(n: u64) -> bool {
    (1..=SMALL_COUNT_LIMIT).contains(&n)
}

/// A single count under primary suppression only (counts that are part of no released sum).
pub fn primary(n: u64) -> Released {
    if is_small(n) {
        Released::Small
    } else {
        Released::Shown(n)
    }
}

/// Handle of a count registered with a [`Disclosure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cell(usize);

impl Cell {
    /// Its position in [`Disclosure::solve`]'s result.
    pub fn index(self) -> usize {
        self.0
    }
}

/// Counts released together and the sums that tie them.
#[derive(Debug, Default)]
pub struct Disclosure {
    values: Vec<u64>,
    /// `(total, parts)`: the total is the sum of the parts.
    sums: Vec<(Cell, Vec<Cell>)>,
}

/// No bound: larger than any count.
const UNBOUNDED: u64 = u64::MAX / 4;

impl Disclosure {
    pub fn new() -> Self {
        Self::default()
    }

    /// Register a released count.
    pub fn cell(&mut self, value: u64) -> Cell {
        self.values.push(value);
        Cell(self.values.len() - 1)
    }

    /// Declare that `total` is the sum of `parts` (as the reader can see). A sum that does not
    /// hold for the values (reasons of a not-eligible patient may be several) is not declared:
    /// a reader assuming it would only draw wrong conclusions.
    pub fn sum(&mut self, total: Cell, parts: &[Cell]) {
        let sum: u64 = parts.iter().map(|c| self.values[c.0]).sum();
        if parts.is_empty() || sum != self.values[total.0] {
            return;
        }
        self.sums.push((total, parts.to_vec()));
    }

    /// Apply the rule of the module docs.
    pub fn solve(&self) -> Vec<Released> {
        let mut state: Vec<Released> = self.values.iter().map(|&v| primary(v)).collect();
        loop {
            let bounds = self.bounds(&state);
            let pinned: Vec<usize> = (0..state.len())
                .filter(|&i| state[i] == Released::Small && bounds[i].0 == bounds[i].1)
                .collect();
            if pinned.is_empty() {
                return state;
            }
            // Candidates around each pinned count, in order of preference. A candidate that a
            // reader could still work out once withheld protects nothing: prefer one that
            // cannot be, else take the first (each step hides one more count, so this ends).
            let candidates: Vec<Cell> = pinned
                .iter()
                .flat_map(|&p| self.candidates(&state, p))
                .collect();
            let useful = candidates.iter().copied().find(|&c| {
                let mut trial = state.clone();
                trial[c.0] = Released::Withheld;
                let b = self.bounds(&trial)[c.0];
                b.0 != b.1
            });
            match useful.or_else(|| candidates.first().copied()) {
                Some(c) => state[c.0] = Released::Withheld,
                None => {
                    // Nothing left to hide around any of them (not expected with consistent
                    // sums): end safely by withholding every shown count.
                    for s in state.iter_mut().filter(|s| s.is_shown()) {
                        *s = Released::Withheld;
                    }
                    return state;
                }
            }
        }
    }

    /// Counts that could protect pinned count `p`: the shown non-zero parts of each sum
    /// involving it, smallest first, then those sums' shown totals.
    fn candidates(&self, state: &[Released], p: usize) -> Vec<Cell> {
        let involving: Vec<&(Cell, Vec<Cell>)> = self
            .sums
            .iter()
            .filter(|(total, parts)| *total == Cell(p) || parts.contains(&Cell(p)))
            .collect();
        let mut parts: Vec<Cell> = involving
            .iter()
            .flat_map(|(_, parts)| parts.iter().copied())
            .filter(|c| state[c.0].is_shown() && self.values[c.0] > 0)
            .collect();
        parts.sort_by_key(|c| (self.values[c.0], c.0));
        parts.dedup();
        parts.extend(
            involving
                .iter()
                .map(|(total, _)| *total)
                .filter(|t| state[t.0].is_shown() && self.values[t.0] > 0),
        );
        parts
    }

    /// The interval a reader can narrow each count to, given what is shown.
    fn bounds(&self, state: &[Released]) -> Vec<(u64, u64)> {
        let mut b: Vec<(u64, u64)> = state
            .iter()
            .map(|s| match s {
                Released::Shown(n) => (*n, *n),
                Released::Small => (1, SMALL_COUNT_LIMIT),
                Released::Withheld => (SMALL_COUNT_LIMIT + 1, UNBOUNDED),
            })
            .collect();
        // Each pass only narrows integer intervals, so this reaches a fixed point.
        for _ in 0..1000 {
            let mut changed = false;
            for (total, parts) in &self.sums {
                let lo_sum: u64 = parts.iter().map(|c| b[c.0].0).sum();
                let hi_sum: u64 = parts
                    .iter()
                    .map(|c| b[c.0].1)
                    .fold(0u64, |a, h| a.saturating_add(h).min(UNBOUNDED));
                let t = &mut b[total.0];
                let new_t = (t.0.max(lo_sum), t.1.min(hi_sum));
                if new_t != *t {
                    *t = new_t;
                    changed = true;
                }
                let (t_lo, t_hi) = b[total.0];
                for p in parts {
                    let others_lo = lo_sum - b[p.0].0;
                    let others_hi = parts
                        .iter()
                        .filter(|c| *c != p)
                        .map(|c| b[c.0].1)
                        .fold(0u64, |a, h| a.saturating_add(h).min(UNBOUNDED));
                    let lo = t_lo.saturating_sub(others_hi);
                    let hi = t_hi.saturating_sub(others_lo);
                    let cur = b[p.0];
                    let new = (cur.0.max(lo), cur.1.min(hi));
                    if new != cur {
                        b[p.0] = new;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::Released::{Shown, Small, Withheld};
    use super::*;

    /// Sites `values` and their shown total.
    fn sites(values: &[u64]) -> Vec<Released> {
        let mut d = Disclosure::new();
        let total = d.cell(values.iter().sum());
        let parts: Vec<Cell> = values.iter().map(|&v| d.cell(v)).collect();
        d.sum(total, &parts);
        d.solve()
    }

    #[test]
    fn one_small_part_of_a_shown_total_takes_the_next_smallest_with_it() {
        // 23 = 20 + 3: 3 would be 23 - 20.
        assert_eq!(sites(&[20, 3]), [Shown(23), Withheld, Small]);
        // The smallest non-zero shown part is withheld; zeros and larger parts stay.
        assert_eq!(
            sites(&[40, 0, 2, 9, 12]),
            [Shown(63), Shown(40), Shown(0), Small, Withheld, Shown(12)]
        );
    }

    #[test]
    fn small_parts_that_cannot_be_pinned_need_nothing_more() {
        // 6 = 3 + 3: each could be 2, 3 or 4.
        assert_eq!(sites(&[3, 3]), [Shown(6), Small, Small]);
        // A small total: its parts could be 1 to 3 each.
        assert_eq!(sites(&[1, 1]), [Small, Small, Small]);
        assert_eq!(sites(&[1, 1, 0]), [Small, Small, Small, Shown(0)]);
    }

    #[test]
    fn a_total_goes_when_no_part_is_left_to_hide() {
        // 8 = 4 + 4 + 0 pins both at 4, and zero hides nothing.
        assert_eq!(sites(&[4, 4, 0]), [Withheld, Small, Small, Shown(0)]);
    }

    #[test]
    fn chained_sums_are_followed() {
        // Flow: screened 25 = not eligible 1 + eligible 24; eligible 24 = not randomised 1
        // + randomised 23. Withholding eligible alone would not do: 23 + (1..4) and 25 - that.
        let mut d = Disclosure::new();
        let screened = d.cell(25);
        let not_eligible = d.cell(1);
        let eligible = d.cell(24);
        let not_randomised = d.cell(1);
        let randomised = d.cell(23);
        d.sum(screened, &[not_eligible, eligible]);
        d.sum(eligible, &[not_randomised, randomised]);
        let r = d.solve();
        assert_eq!(r[not_eligible.0], Small);
        assert_eq!(r[not_randomised.0], Small);
        let b = d.bounds(&r);
        assert!(b[not_eligible.0].0 < b[not_eligible.0].1, "{r:?} {b:?}");
        assert!(b[not_randomised.0].0 < b[not_randomised.0].1, "{r:?} {b:?}");
    }

    #[test]
    fn sums_that_do_not_hold_are_not_declared_and_json_reads_like_the_page() {
        let mut d = Disclosure::new();
        let total = d.cell(3);
        let a = d.cell(3);
        let b = d.cell(2);
        d.sum(total, &[a, b]);
        assert_eq!(d.solve(), [Small, Small, Small]);
        assert_eq!(
            serde_json::to_string(&[Shown(7), Small, Withheld]).unwrap(),
            r#"[7,"<5","withheld"]"#
        );
        assert_eq!(Small.to_string(), "<5");
    }
}
