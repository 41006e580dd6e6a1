//! Small-cell suppression for aggregates released outside the trial team: counts from 1 to 4
//! are shown as "<5", and a rate is only shown when none of the counts it is made of is
//! suppressed (otherwise the rate and its denominator would give the count away).

/// Counts in `1..=SMALL_COUNT_LIMIT` are never shown.
pub const SMALL_COUNT_LIMIT: u64 = 4;

/// What a suppressed count reads as.
pub const SUPPRESSED: &str = "<5";

pub fn is_small(n: u64) -> bool {
    (1..=SMALL_COUNT_LIMIT).contains(&n)
}

/// A count as a blinded page shows it.
///
/// ```
/// use rrct::dashboard::suppress::count;
/// assert_eq!(count(0), "0");
/// assert_eq!(count(3), "<5");
/// assert_eq!(count(5), "5");
/// ```
pub fn count(n: u64) -> String {
    if is_small(n) {
        SUPPRESSED.to_string()
    } else {
        n.to_string()
    }
}

/// A proportion as a percentage, or "–" when it is undefined or any of `parts` is a small
/// count.
pub fn rate(value: Option<f64>, parts: &[u64]) -> String {
    match value {
        Some(v) if !parts.iter().any(|&n| is_small(n)) => percent(v),
        Some(_) => SUPPRESSED_RATE.to_string(),
        None => "–".to_string(),
    }
}

/// A rate withheld because it would reveal a small count.
pub const SUPPRESSED_RATE: &str = "suppressed";

/// A proportion as a percentage with one decimal.
pub fn percent(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_counts_and_rates_built_from_them_are_hidden() {
        assert_eq!(
            [0, 1, 4, 5, 120].map(count),
            ["0", "<5", "<5", "5", "120"].map(String::from)
        );
        assert_eq!(rate(Some(0.5), &[10, 20]), "50.0%");
        assert_eq!(rate(Some(0.75), &[3, 4]), SUPPRESSED_RATE);
        assert_eq!(rate(None, &[0, 0]), "–");
    }
}
