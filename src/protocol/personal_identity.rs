//! Recognising Swedish personal identity numbers, so a register that sends one as a subject id
//! can be refused: rrct must only ever hold pseudonymous subject ids.

use chrono::NaiveDate;

/// True when `s` is written like a valid Swedish personnummer or samordningsnummer:
/// `YYYYMMDDNNNC` or `YYMMDDNNNC`, optionally with `-` or `+` before the last four digits
/// (surrounding whitespace ignored), whose date part is a real date (for a samordningsnummer the
/// day has 60 added) and whose last digit is the Luhn check digit of the 10-digit form.
///
/// Ten-digit numbers carry no century, so their date is accepted if it exists in any of the
/// 1800s, 1900s or 2000s (this only matters for 29 February).
///
/// ```
/// use rrct::protocol::looks_like_personal_identity_number as pin;
/// assert!(pin("19121212-1212"));
/// assert!(pin("811218-9876"));
/// assert!(!pin("19121212-1213"));
/// assert!(!pin("subject-0042"));
/// ```
pub fn looks_like_personal_identity_number(s: &str) -> bool {
    let s = s.trim();
    let bytes = s.as_bytes();
    let digits: Vec<u8> = match bytes.len() {
        10 | 12 => bytes.to_vec(),
        11 | 13 => {
            let split = bytes.len() - 5;
            if !matches!(bytes[split], b'-' | b'+') {
                return false;
            }
            [&bytes[..split], &bytes[split + 1..]].concat()
        }
        _ => return false,
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let digits: Vec<u32> = digits.iter().map(|d| u32::from(d - b'0')).collect();
    let number = |ds: &[u32]| ds.iter().fold(0, |acc, d| acc * 10 + d);
    let (years, rest) = if digits.len() == 12 {
        let year = number(&digits[..4]) as i32;
        (vec![year], &digits[2..])
    } else {
        let yy = number(&digits[..2]) as i32;
        (vec![1800 + yy, 1900 + yy, 2000 + yy], &digits[..])
    };
    let month = number(&rest[2..4]);
    let mut day = number(&rest[4..6]);
    if day > 60 {
        day -= 60;
    }
    let date_ok = years
        .iter()
        .any(|&year| NaiveDate::from_ymd_opt(year, month, day).is_some());
    date_ok && luhn_ok(rest)
}

/// Luhn over the ten digits `YYMMDDNNNC`: weights 2,1,2,1..., digit sums, total divisible by 10.
fn luhn_ok(ten: &[u32]) -> bool {
    let sum: u32 = ten
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let p = if i % 2 == 0 { d * 2 } else { d };
            p / 10 + p % 10
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::looks_like_personal_identity_number as pin;

    #[test]
    fn known_test_numbers_are_recognised_in_every_spelling() {
        for s in [
            "19121212-1212",
            "191212121212",
            "121212-1212",
            "1212121212",
            "121212+1212",
            "811218-9876",
            "198112189876",
            " 8112189876 ",
        ] {
            assert!(pin(s), "{s} should be recognised");
        }
    }

    #[test]
    fn samordningsnummer_has_sixty_added_to_the_day() {
        // 1912-12-12 as a samordningsnummer: day 72; check digit recomputed by Luhn.
        assert!(pin("19121272-1219"));
        assert!(!pin("19121292-1219"));
    }

    #[test]
    fn wrong_check_digit_date_or_shape_is_not_a_number() {
        for s in [
            "19121212-1213",
            "811218-9875",
            "19121312-1212", // month 13
            "19120230-1212", // 30 February
            "12121212",
            "19121212_1212",
            "1912121-21212",
            "subject-0001",
            "",
            "١٩١٢١٢١٢١٢١٢",
        ] {
            assert!(!pin(s), "{s} should not be recognised");
        }
    }

    #[test]
    fn leap_day_needs_a_leap_year() {
        // 2000-02-29 exists, so exactly one check digit makes 20000229-123C valid.
        let valid: Vec<String> = (0..10)
            .map(|c| format!("20000229-123{c}"))
            .filter(|s| pin(s))
            .collect();
        assert_eq!(valid.len(), 1);
        // 2001-02-29 does not exist, whatever the check digit.
        assert!((0..10).all(|c| !pin(&format!("20010229-123{c}"))));
    }
}
