//! Swedish personal identity numbers (personnummer and samordningsnummer): recognised, so that a
//! register that sends one as a subject id can be refused (rrct must only ever hold pseudonymous
//! subject ids), and parsed into one canonical form, so that the key holder's pseudonymisation
//! ([`crate::pseudonym`]) gives one pseudonym for one person however a register spells the number.
//!
//! Both read a number through the same shape, date and Luhn rules; they differ only in the
//! century of a ten-digit number. Recognition accepts any century in which the date exists (a
//! refusal should err on the side of refusing). Parsing resolves it against a reference date the
//! caller passes in (the clock is read at the edge, never here): a ten-digit number written with
//! `-` or nothing is of someone under 100 on that date, with `+` of someone 100 or older.
//! Pure: no I/O, and no error message ever repeats the number's digits.

use std::fmt;

use chrono::{Datelike, NaiveDate};

/// Why a text is not a personal identity number. No variant holds the number's digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersonalIdentityNumberError {
    #[error("is empty")]
    Empty,
    #[error(
        "has a character other than a digit, `-` or `+` at character {position}; write \
         YYYYMMDD-NNNC, YYYYMMDDNNNC, YYMMDD-NNNC, YYMMDD+NNNC or YYMMDDNNNC"
    )]
    Character { position: usize },
    #[error(
        "has {digits} digits; a personal identity number has 10 (YYMMDDNNNC) or 12 (YYYYMMDDNNNC)"
    )]
    Length { digits: usize },
    #[error("has a `-` or `+` that does not stand once, right before the last four digits")]
    Separator,
    #[error(
        "has `+` (100 years or older) after a four-digit year; `+` belongs to the ten-digit \
         form only: write YYYYMMDD-NNNC or YYYYMMDDNNNC"
    )]
    PlusWithCentury,
    #[error("does not hold a real date (a samordningsnummer has 60 added to the day of birth)")]
    Date,
    #[error("has a date of birth after {reference}")]
    BornAfter { reference: NaiveDate },
    #[error("has a wrong check digit (the Luhn digit of the ten-digit form)")]
    CheckDigit,
}

/// A personal identity number in its one canonical form: twelve digits `YYYYMMDDNNNC`, the
/// century written out, no separator; a samordningsnummer keeps its day with 60 added (it is
/// another number than the personnummer the same person may later receive).
///
/// Its `Debug` shows no digit, so that a number in a value printed for debugging is not logged.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PersonalIdentityNumber(String);

impl fmt::Debug for PersonalIdentityNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PersonalIdentityNumber(..)")
    }
}

impl PersonalIdentityNumber {
    /// Parse any accepted spelling — `YYYYMMDDNNNC`, `YYYYMMDD-NNNC`, `YYMMDD-NNNC`,
    /// `YYMMDD+NNNC` or `YYMMDDNNNC`, surrounding whitespace ignored — into the canonical form.
    /// A ten-digit number's century is the one that makes its holder younger than 100 on
    /// `reference` (`-` or no separator) or 100 or older (`+`).
    ///
    /// ```
    /// use chrono::NaiveDate;
    /// use rrct::protocol::PersonalIdentityNumber as Pin;
    /// let on = NaiveDate::from_ymd_opt(2024, 6, 1).unwrap();
    /// for spelling in ["19121212-1212", "191212121212", "121212+1212"] {
    ///     assert_eq!(Pin::parse(spelling, on).unwrap().as_str(), "191212121212");
    /// }
    /// assert_eq!(Pin::parse("121212-1212", on).unwrap().as_str(), "201212121212");
    /// assert!(Pin::parse("19121212-1213", on).is_err());
    /// ```
    pub fn parse(
        text: &str,
        reference: NaiveDate,
    ) -> Result<PersonalIdentityNumber, PersonalIdentityNumberError> {
        use PersonalIdentityNumberError as E;
        let written = Written::read(text)?;
        let (month, day) = written.month_and_day();
        let year = match written.century {
            Some(century) => {
                if written.separator == Some('+') {
                    return Err(E::PlusWithCentury);
                }
                century * 100 + written.yy()
            }
            None => {
                let mut year = reference.year() - reference.year().rem_euclid(100) + written.yy();
                if (year, month, day) > (reference.year(), reference.month(), reference.day()) {
                    year -= 100;
                }
                if written.separator == Some('+') {
                    year -= 100;
                }
                year
            }
        };
        let born = NaiveDate::from_ymd_opt(year, month, day).ok_or(E::Date)?;
        if born > reference {
            return Err(E::BornAfter { reference });
        }
        if !luhn_ok(&written.ten) {
            return Err(E::CheckDigit);
        }
        let canonical = format!("{:04}{}", year, &written.digits_after_year());
        Ok(PersonalIdentityNumber(canonical))
    }

    /// The twelve digits `YYYYMMDDNNNC`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

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
    let Ok(written) = Written::read(s) else {
        return false;
    };
    let (month, day) = written.month_and_day();
    let yy = written.yy();
    let years = match written.century {
        Some(century) => vec![century * 100 + yy],
        None => vec![1800 + yy, 1900 + yy, 2000 + yy],
    };
    let date_ok = years
        .iter()
        .any(|&year| NaiveDate::from_ymd_opt(year, month, day).is_some());
    date_ok && luhn_ok(&written.ten)
}

/// A number as written: its shape checked, not yet its date or check digit.
struct Written {
    /// The first two digits of a twelve-digit number.
    century: Option<i32>,
    /// `YYMMDDNNNC`.
    ten: [u32; 10],
    separator: Option<char>,
}

impl Written {
    fn read(text: &str) -> Result<Written, PersonalIdentityNumberError> {
        use PersonalIdentityNumberError as E;
        let text = text.trim();
        if text.is_empty() {
            return Err(E::Empty);
        }
        let mut digits = Vec::with_capacity(12);
        let mut separator = None;
        for (i, c) in text.chars().enumerate() {
            match c {
                '0'..='9' => digits.push(c as u32 - '0' as u32),
                '-' | '+' => match separator {
                    None => separator = Some((c, digits.len())),
                    Some(_) => return Err(E::Separator),
                },
                _ => return Err(E::Character { position: i + 1 }),
            }
        }
        let n = digits.len();
        if n != 10 && n != 12 {
            return Err(E::Length { digits: n });
        }
        if separator.is_some_and(|(_, at)| at != n - 4) {
            return Err(E::Separator);
        }
        let century = (n == 12).then(|| (digits[0] * 10 + digits[1]) as i32);
        let mut ten = [0u32; 10];
        ten.copy_from_slice(&digits[n - 10..]);
        Ok(Written {
            century,
            ten,
            separator: separator.map(|(c, _)| c),
        })
    }

    fn number(digits: &[u32]) -> u32 {
        digits.iter().fold(0, |acc, d| acc * 10 + d)
    }

    fn yy(&self) -> i32 {
        Written::number(&self.ten[..2]) as i32
    }

    /// Month and day of birth (a samordningsnummer's 60 taken off the day).
    fn month_and_day(&self) -> (u32, u32) {
        let month = Written::number(&self.ten[2..4]);
        let day = Written::number(&self.ten[4..6]);
        (month, if day > 60 { day - 60 } else { day })
    }

    /// `MMDDNNNC` as written.
    fn digits_after_year(&self) -> String {
        self.ten[2..]
            .iter()
            .filter_map(|&d| char::from_digit(d, 10))
            .collect()
    }
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
    use super::{PersonalIdentityNumber as Pin, PersonalIdentityNumberError as E};
    use chrono::NaiveDate;

    fn on(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

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
        // Parsed, it keeps its day as written: it is not the personnummer 19121212-1212.
        let parsed = Pin::parse("121272+1219", on(2024, 6, 1)).unwrap();
        assert_eq!(parsed.as_str(), "191212721219");
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

    #[test]
    fn every_spelling_of_one_number_parses_to_one_canonical_form() {
        let day = on(2024, 6, 1);
        for s in [
            "811218-9876",
            "8112189876",
            "198112189876",
            "19811218-9876",
            "  811218-9876\t",
        ] {
            assert_eq!(Pin::parse(s, day).unwrap().as_str(), "198112189876", "{s}");
        }
    }

    #[test]
    fn a_ten_digit_century_is_resolved_against_the_reference_date() {
        // Born 1924-07-01 or 2024-07-01? On 2024-06-01 the latter has not happened yet.
        let (before, on_the_day) = (on(2024, 6, 1), on(2024, 7, 1));
        let number = "240701-";
        let check = (0..10)
            .map(|c| format!("{number}123{c}"))
            .find(|s| pin(s))
            .unwrap();
        assert!(Pin::parse(&check, before)
            .unwrap()
            .as_str()
            .starts_with("1924"));
        assert!(Pin::parse(&check, on_the_day)
            .unwrap()
            .as_str()
            .starts_with("2024"));
        // `+`: 100 or older on the reference date.
        let plus = check.replace('-', "+");
        assert!(Pin::parse(&plus, before)
            .unwrap()
            .as_str()
            .starts_with("1824"));
        assert!(Pin::parse(&plus, on_the_day)
            .unwrap()
            .as_str()
            .starts_with("1924"));
        // No separator reads as `-`.
        let bare = check.replace('-', "");
        assert_eq!(Pin::parse(&bare, before), Pin::parse(&check, before));
    }

    #[test]
    fn bad_numbers_get_a_specific_error() {
        let day = on(2024, 6, 1);
        let cases: [(&str, E); 12] = [
            ("", E::Empty),
            ("   ", E::Empty),
            ("19121212 1212", E::Character { position: 9 }),
            ("P1912121212", E::Character { position: 1 }),
            ("１９１２１２１２１２１２", E::Character { position: 1 }),
            ("12121212", E::Length { digits: 8 }),
            ("1912121212121", E::Length { digits: 13 }),
            ("1912121-21212", E::Separator),
            ("121212--1212", E::Separator),
            ("19121212+1212", E::PlusWithCentury),
            ("19121312-1212", E::Date),
            ("19121212-1213", E::CheckDigit),
        ];
        for (text, expected) in cases {
            assert_eq!(Pin::parse(text, day), Err(expected), "{text:?}");
        }
        assert_eq!(Pin::parse("20010229-1234", day), Err(E::Date));
        assert_eq!(
            Pin::parse("20250101-1234", day),
            Err(E::BornAfter { reference: day })
        );
        // Samordningsnummer day beyond 91 is no date.
        assert_eq!(Pin::parse("19121292-1219", day), Err(E::Date));
    }

    #[test]
    fn neither_errors_nor_debug_repeat_the_digits() {
        let day = on(2024, 6, 1);
        for text in [
            "19121212-1213",
            "19121312-1212",
            "1912121-21212",
            "19121212+1212",
        ] {
            let message = Pin::parse(text, day).unwrap_err().to_string();
            assert!(!message.contains("1212"), "{message}");
        }
        let parsed = Pin::parse("811218-9876", day).unwrap();
        assert!(!format!("{parsed:?}").contains("9876"));
    }
}
