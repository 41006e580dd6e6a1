//! Identity: the one canonical form of every identifier a register sends, and the one test for
//! personal identity numbers.
//!
//! One patient must be one subject however a register's software spells the id, so an id is
//! accepted only in a form that has one reading: no surrounding whitespace, no control
//! characters, no invisible or direction-changing characters (zero-width spaces, joiners,
//! bidirectional controls, byte-order marks, variation selectors, tag characters), no
//! whitespace but the plain space, and compared and stored in Unicode NFC, so that `Å` written
//! as one code point or as `A` plus a combining ring is the same subject. Personal identity
//! numbers are refused in every id and every free-text field: rrct holds pseudonyms only.
//!
//! Every path that takes an id — enrolment, screening report, events (HTTP and CSV),
//! randomised-in-error marks, reading an allocation back, tokens' site scopes — parses it here.
//! Pure: no I/O.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

use crate::protocol::looks_like_personal_identity_number;

/// Longest accepted id, in characters (after normalisation).
pub const MAX_ID_LEN: usize = 128;

/// Why an id or a text is refused. The caller names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdError {
    Empty,
    TooLong {
        max: usize,
    },
    SurroundingWhitespace,
    /// A character with no place in an id (or a text): control, invisible, bidirectional.
    Forbidden {
        character: char,
        position: usize,
    },
    PersonalIdentityNumber,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::Empty => f.write_str("must not be empty"),
            IdError::TooLong { max } => write!(f, "is longer than {max} characters"),
            IdError::SurroundingWhitespace => {
                f.write_str("has whitespace before or after it; send the id exactly")
            }
            IdError::Forbidden {
                character,
                position,
            } => write!(
                f,
                "contains the {} character U+{:04X} at character {}",
                kind_of(*character),
                u32::from(*character),
                position + 1
            ),
            IdError::PersonalIdentityNumber => f.write_str(
                "contains a personal identity number; send the register's pseudonym instead",
            ),
        }
    }
}

impl std::error::Error for IdError {}

fn kind_of(c: char) -> &'static str {
    if c.is_control() {
        "control"
    } else if is_bidirectional_control(c) {
        "bidirectional control"
    } else if c.is_whitespace() {
        "non-ASCII whitespace"
    } else {
        "invisible"
    }
}

fn is_bidirectional_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that change how text reads without being seen: format characters (Unicode
/// category Cf, which holds the zero-width and bidirectional controls), fillers, variation
/// selectors and tags.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{110BD}' | '\u{110CD}'
        | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}'
        | '\u{0600}'..='\u{0605}' | '\u{06DD}' | '\u{070F}' | '\u{08E2}')
}

/// `text` in NFC: as it is when the quick check finds it normalised already (all ASCII text,
/// and most other), else recomposed.
fn nfc(text: &str) -> String {
    match unicode_normalization::is_nfc_quick(text.chars()) {
        unicode_normalization::IsNormalized::Yes => text.to_owned(),
        _ => text.nfc().collect(),
    }
}

/// The first character with no place in an id: control, invisible, or whitespace other than
/// the plain space.
fn forbidden_in_id(text: &str) -> Option<(usize, char)> {
    text.chars()
        .enumerate()
        .find(|&(_, c)| c.is_control() || is_invisible(c) || (c.is_whitespace() && c != ' '))
}

/// The canonical form of an id, or why it has none.
///
/// ```
/// use rrct::identity::{canonical_id, IdError};
/// // NFD (A + combining ring) and NFC spell one id.
/// assert_eq!(canonical_id("A\u{030A}sa-1").unwrap(), canonical_id("\u{00C5}sa-1").unwrap());
/// assert_eq!(canonical_id(" P1"), Err(IdError::SurroundingWhitespace));
/// assert!(matches!(canonical_id("P\u{200B}1"), Err(IdError::Forbidden { .. })));
/// assert_eq!(canonical_id("19121212 1212"), Err(IdError::PersonalIdentityNumber));
/// ```
pub fn canonical_id(text: &str) -> Result<String, IdError> {
    if text.is_empty() {
        return Err(IdError::Empty);
    }
    if text.trim() != text {
        return Err(IdError::SurroundingWhitespace);
    }
    if let Some((position, character)) = forbidden_in_id(text) {
        return Err(IdError::Forbidden {
            character,
            position,
        });
    }
    let canonical = nfc(text);
    if canonical.chars().count() > MAX_ID_LEN {
        return Err(IdError::TooLong { max: MAX_ID_LEN });
    }
    if contains_personal_identity_number(&canonical) {
        return Err(IdError::PersonalIdentityNumber);
    }
    Ok(canonical)
}

/// A free text (a reason, a code, a source name) as stored: in NFC, without control characters
/// other than tab and line breaks when `multiline`, without invisible characters, and without a
/// personal identity number anywhere in it.
///
/// ```
/// use rrct::identity::free_text;
/// assert_eq!(free_text("found ineligible", 100, false).unwrap(), "found ineligible");
/// assert!(free_text("a\u{0}b", 100, false).is_err());
/// assert!(free_text("patient 811218-9876 died", 100, false).is_err());
/// assert!(free_text("first line\nsecond", 100, true).is_ok());
/// ```
pub fn free_text(text: &str, max: usize, multiline: bool) -> Result<String, IdError> {
    if let Some((position, character)) = text.chars().enumerate().find(|&(_, c)| {
        (c.is_control() && !(multiline && matches!(c, '\t' | '\n' | '\r'))) || is_invisible(c)
    }) {
        return Err(IdError::Forbidden {
            character,
            position,
        });
    }
    let canonical = nfc(text);
    if canonical.chars().count() > max {
        return Err(IdError::TooLong { max });
    }
    if contains_personal_identity_number(&canonical) {
        return Err(IdError::PersonalIdentityNumber);
    }
    Ok(canonical)
}

/// The first control or invisible character of a text, for texts that are checked against a
/// list rather than stored (a category value, a JSON key).
pub fn forbidden_character(text: &str) -> Option<IdError> {
    text.chars()
        .enumerate()
        .find(|&(_, c)| c.is_control() || is_invisible(c))
        .map(|(position, character)| IdError::Forbidden {
            character,
            position,
        })
}

/// Whether a personal identity number stands anywhere in `text`: ten or twelve digits, with or
/// without one `-`, `+` or space before the last four, not part of a longer run of digits, that
/// [`looks_like_personal_identity_number`] recognises (a real date and the Luhn check digit).
///
/// ```
/// use rrct::identity::contains_personal_identity_number as has_pin;
/// for s in ["19121212-1212", "191212121212", "121212 1212", "P 19121212+1212", "id:8112189876."] {
///     assert!(has_pin(s), "{s}");
/// }
/// for s in ["SCAAR-000123", "19121212-1213", "1191212121212", "2024-03-01"] {
///     assert!(!has_pin(s), "{s}");
/// }
/// ```
pub fn contains_personal_identity_number(text: &str) -> bool {
    // Every shape below has at least ten digits.
    if text.bytes().filter(u8::is_ascii_digit).count() < 10 {
        return false;
    }
    let chars: Vec<char> = text.chars().collect();
    let digit = |i: usize| chars.get(i).is_some_and(char::is_ascii_digit);
    for start in 0..chars.len() {
        if !digit(start) || (start > 0 && digit(start - 1)) {
            continue;
        }
        for (before, with_separator) in [(6, true), (8, true), (10, false), (12, false)] {
            let len = before + usize::from(with_separator) + if with_separator { 4 } else { 0 };
            let end = start + len;
            if end > chars.len() || digit(end) {
                continue;
            }
            let candidate: String = chars[start..end].iter().collect();
            let shaped = if with_separator {
                candidate.chars().take(before).all(|c| c.is_ascii_digit())
                    && matches!(chars[start + before], '-' | '+' | ' ')
                    && candidate
                        .chars()
                        .skip(before + 1)
                        .all(|c| c.is_ascii_digit())
            } else {
                candidate.chars().all(|c| c.is_ascii_digit())
            };
            if shaped {
                let written = candidate.replacen(' ', "-", 1);
                if looks_like_personal_identity_number(&written) {
                    return true;
                }
            }
        }
    }
    false
}

/// JSON with object keys sorted at every level, so the same request hashes the same whatever
/// key order the register's JSON library writes.
pub fn canonical_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String(k.clone()),
                        canonical_json(&m[k])
                    )
                })
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        serde_json::Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", inner.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_quick_check_gives_the_full_normalisation(text in "\\PC{0,12}|[A\u{030A}\u{00C5}e\u{0301}\u{00E9}a-z0-9]{0,12}") {
            let full: String = text.nfc().collect();
            prop_assert_eq!(nfc(&text), full);
        }
    }

    #[test]
    fn invisible_and_direction_characters_are_refused() {
        for c in [
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{202E}',
            '\u{2066}',
            '\u{00AD}',
            '\u{FE0F}',
            '\u{E0041}',
            '\u{0000}',
            '\u{0085}',
            '\u{00A0}',
            '\u{2028}',
        ] {
            let id = format!("P{c}1");
            assert!(
                matches!(
                    canonical_id(&id),
                    Err(IdError::Forbidden { position: 1, .. })
                ),
                "U+{:04X}",
                u32::from(c)
            );
        }
        assert!(canonical_id("P 1").is_ok(), "a plain space inside is kept");
        assert_eq!(canonical_id("P1\t"), Err(IdError::SurroundingWhitespace));
        assert_eq!(canonical_id(""), Err(IdError::Empty));
        assert_eq!(
            canonical_id(&"x".repeat(MAX_ID_LEN + 1)),
            Err(IdError::TooLong { max: MAX_ID_LEN })
        );
    }

    #[test]
    fn messages_name_the_character() {
        let e = canonical_id("P\u{202E}1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "contains the bidirectional control character U+202E at character 2"
        );
    }

    proptest! {
        /// Any two spellings equal after NFC are one id; whatever a register sends, an id has
        /// at most one canonical form and that form is stable.
        #[test]
        fn spellings_equal_after_nfc_are_one_id(s in "[a-zA-Z0-9ÅÄÖåäöéü\u{0301}\u{030A}\u{0308} -]{1,20}") {
            let nfc: String = s.nfc().collect();
            let nfd: String = s.nfd().collect();
            match (canonical_id(&nfc), canonical_id(&nfd)) {
                (Ok(a), Ok(b)) => {
                    prop_assert_eq!(&a, &b);
                    prop_assert_eq!(canonical_id(&a), Ok(a.clone()));
                }
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                (a, b) => prop_assert!(false, "{:?} vs {:?}", a, b),
            }
        }

        /// Any id holding a forbidden character anywhere is refused.
        #[test]
        fn a_forbidden_character_anywhere_is_refused(
            before in "[a-z0-9]{0,8}",
            after in "[a-z0-9]{0,8}",
            c in prop::sample::select(vec![
                '\u{0}', '\u{7}', '\u{1B}', '\u{7F}', '\u{9F}', '\u{200B}', '\u{200F}',
                '\u{202A}', '\u{2069}', '\u{FEFF}', '\u{00A0}', '\u{3000}', '\u{E0001}', '\n',
            ]),
        ) {
            let id = format!("{before}{c}{after}");
            prop_assert!(canonical_id(&id).is_err(), "{:?}", id);
        }
    }
}
