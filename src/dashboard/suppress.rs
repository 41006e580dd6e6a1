//! Small-cell suppression as the pages show it. The rule itself (primary and secondary
//! suppression) lives in [`crate::analysis::disclosure`], shared with the summary API; this
//! module formats and adds what only a chart needs.

use chrono::NaiveDate;

pub use crate::analysis::disclosure::{is_small, SMALL as SUPPRESSED, SMALL_COUNT_LIMIT};

/// A count under primary suppression only, as a page shows it.
///
/// ```
/// use rrct::dashboard::suppress::count;
/// assert_eq!(count(0), "0");
/// assert_eq!(count(3), "<5");
/// assert_eq!(count(5), "5");
/// ```
pub fn count(n: u64) -> String {
    crate::analysis::disclosure::primary(n).to_string()
}

/// A rate withheld because it would reveal a small count.
pub const SUPPRESSED_RATE: &str = crate::analysis::release::WITHHELD_RATE;

/// A proportion as a percentage with one decimal.
pub fn percent(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

/// The points of a cumulative count line that may be drawn: the first once the count reaches
/// 5, then only where it has grown by 5 or more since the last point drawn, so that no step
/// of the line (a period's count, read by subtraction) is between 1 and 4. A remainder of 1 to
/// 4 after the last such point is merged into it (the line ends at the last period with the
/// final count). Empty when the final count is below 5.
pub fn recruitment_steps(points: &[(NaiveDate, u64)]) -> Vec<(NaiveDate, u64)> {
    let step = SMALL_COUNT_LIMIT + 1;
    let mut out: Vec<(NaiveDate, u64)> = Vec::new();
    let mut last = 0;
    for &(d, n) in points {
        if n >= last + step {
            out.push((d, n));
            last = n;
        }
    }
    if let (Some(&fin), Some(drawn)) = (points.last(), out.last_mut()) {
        *drawn = fin;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_counts_are_hidden_and_lines_step_by_five() {
        assert_eq!(
            [0, 1, 4, 5, 120].map(count),
            ["0", "<5", "<5", "5", "120"].map(String::from)
        );
        let d = |day: u32| NaiveDate::from_ymd_opt(2024, 1, day).unwrap();
        // Weekly cumulative 2, 6, 8, 13, 15: drawn 6 (first ≥ 5), 13 (+7), then the last +2
        // is merged: the line ends at day 29 with 15.
        let points = [(d(1), 2), (d(8), 6), (d(15), 8), (d(22), 13), (d(29), 15)];
        assert_eq!(recruitment_steps(&points), [(d(8), 6), (d(29), 15)]);
        assert_eq!(recruitment_steps(&[(d(1), 3)]), []);
        assert_eq!(
            recruitment_steps(&[(d(1), 5), (d(8), 10)]),
            [(d(1), 5), (d(8), 10)]
        );
    }
}
